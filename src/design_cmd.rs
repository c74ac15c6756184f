//! Design problems from the command line: solving over the scenario's surrogate, validating
//! in rapier, refining through the query database, and judging a given design.

use std::fmt::Write as _;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use basin_compiler::Database;
use basin_compiler::energy::Shape;
use basin_compiler::plan::refine::{Applied, Refiner};
use basin_compiler::plan::{Domain, Node, Plan};
use basin_runtime::design::{
    self, DesignSettings, DesignSolution, Explanation, OutcomeModel, Problem, SurrogateOutcomes,
};
use basin_runtime::model::{
    Surrogate, SurrogateOrigin, SurrogateTarget, ensure_surrogate, outcome_values,
};

/// Prints to standard output through `write_stdout`, so a reader that closes the pipe
/// early (`basin run … | head`) ends the output quietly instead of a panic.
macro_rules! out {
    ($($arg:tt)*) => {
        super::write_stdout(&format!($($arg)*))?
    };
}

macro_rules! outln {
    ($($arg:tt)*) => {
        super::write_stdout(&(format!($($arg)*) + "\n"))?
    };
}

/// Options of a design run from `basin run`.
pub struct DesignOptions<'a> {
    /// Apply only this refinement (default: all, in order).
    pub refine: Option<&'a str>,
    /// CEM samples and iterations, replacing the plan's settings.
    pub samples: Option<usize>,
    pub iterations: Option<usize>,
    pub seed: u64,
}

/// Names and values of the design variables, for reports.
fn format_values(plan: &Plan, values: &[f64]) -> String {
    let mut out = String::new();
    for (v, x) in plan
        .designs
        .iter()
        .flat_map(|d| d.variables.iter())
        .zip(values)
    {
        let shown = match &v.domain {
            Domain::Continuous { .. } => format!("{x:.6} {}", v.unit),
            Domain::Discrete { choices } => choices
                .get(*x as usize)
                .cloned()
                .unwrap_or_else(|| format!("choice {x}")),
        };
        let _ = writeln!(out, "  {:<32} {shown}", v.name);
    }
    out
}

/// Prints two explanations side by side, term by term.
fn compare(before: &Explanation, after: &Explanation) -> String {
    let mut out = format!(
        "{:<24} {:>14} {:>14} {:>14} {:>14}\n",
        "term", "energy before", "energy after", "margin before", "margin after"
    );
    for (b, a) in before.terms.iter().zip(&after.terms) {
        let margin = |r: Option<f64>| r.map_or("-".to_string(), |r| format!("{r:.6}"));
        let _ = writeln!(
            out,
            "{:<24} {:>14.6} {:>14.6} {:>14} {:>14}",
            b.name,
            b.energy,
            a.energy,
            margin(b.robustness),
            margin(a.robustness)
        );
    }
    let _ = writeln!(
        out,
        "{:<24} {:>14.6} {:>14.6}",
        "total", before.total, after.total
    );
    out
}

/// Lists the hard terms that conflict, with their lines, or reports that none do.
fn report_conflict(problem: &Problem<'_>, settings: &DesignSettings) -> String {
    let conflict = design::conflicting_hard_terms(problem, settings);
    if conflict.is_empty() {
        return "no set of hard constraints conflicts: the solver found no design that meets all of them, but each subset it tried was satisfiable\n".into();
    }
    let mut out = String::from(
        "no design in the declared ranges satisfies these hard constraints together:\n",
    );
    for i in conflict {
        let t = &problem.plan.terms[i];
        let _ = writeln!(out, "  {} (line {}): `{}`", t.name, t.line, t.source);
    }
    out
}

/// The surrogate of the plan's design scenario and what it stands for.
struct Outcomes {
    surrogate: Surrogate,
}

impl Outcomes {
    fn model<'a>(&'a self, plan: &'a Plan) -> anyhow::Result<SurrogateOutcomes<'a>> {
        let target = SurrogateTarget::select(plan)?.context("the plan has no design outcomes")?;
        Ok(SurrogateOutcomes {
            surrogate: &self.surrogate,
            target,
            n_states: Shape::of(plan).n_states,
        })
    }
}

/// Trains, loads, reuses or fine-tunes the surrogate of `plan`'s design scenario, and says
/// which. `None` when no term reads an outcome.
fn surrogate_for(
    plan: &Plan,
    spec_dir: &Path,
    previous: Option<Surrogate>,
) -> anyhow::Result<Option<Outcomes>> {
    let Some(target) = SurrogateTarget::select(plan)? else {
        return Ok(None);
    };
    let path = target.default_checkpoint(plan, spec_dir);
    let (surrogate, origin) = ensure_surrogate(plan, &target, &path, previous)
        .context("cannot get a surrogate of the design scenario")?;
    let world = &target.world.name;
    match origin {
        SurrogateOrigin::Loaded(p) => outln!(
            "surrogate `{world}`: loaded `{}` ({})",
            p.display(),
            surrogate.describe()
        ),
        SurrogateOrigin::Reused => outln!(
            "surrogate `{world}`: reused, since the refinement changes no input of the scenario"
        ),
        SurrogateOrigin::Trained(p) => outln!(
            "surrogate `{world}`: trained on {}, saved to `{}`",
            surrogate.describe(),
            p.display()
        ),
        SurrogateOrigin::FineTuned { path, changed } => outln!(
            "surrogate `{world}`: fine-tuned from the previous weights because the refinement changes {}; {}, saved to `{}`",
            changed.join(", "),
            surrogate.describe(),
            path.display()
        ),
    }
    Ok(Some(Outcomes { surrogate }))
}

/// Solves a design problem, applies refinements in order (all, or only `options.refine`)
/// and reports each solution with its explanation, validation and comparison. Exit status
/// 2 when a hard term stays violated.
pub fn run(plan: &Plan, spec_dir: &Path, options: &DesignOptions<'_>) -> anyhow::Result<ExitCode> {
    let mut settings = DesignSettings {
        seed: options.seed,
        ..DesignSettings::from_plan(plan)
    };
    settings.samples = options.samples.unwrap_or(settings.samples).max(2);
    settings.iterations = options.iterations.unwrap_or(settings.iterations).max(1);
    settings.elites = settings.elites.min(settings.samples);
    let names: Vec<&str> = plan
        .refinements
        .iter()
        .map(|r| r.name.as_str())
        .filter(|n| options.refine.is_none_or(|o| o == *n))
        .collect();
    if let Some(o) = options.refine {
        if names.is_empty() {
            let known: Vec<String> = plan
                .refinements
                .iter()
                .map(|r| format!("{:?}", r.name))
                .collect();
            bail!(
                "no refinement named {o:?}; the spec has {}",
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            );
        }
    }

    let mut db = Database::new();
    let refiner = Refiner::new(&db, plan.clone());
    let mut current_plan = refiner.plan(&db);
    let mut outcomes = surrogate_for(&current_plan, spec_dir, None)?;
    let mut current = solve(
        &current_plan,
        &refiner.values(&db),
        outcomes.as_ref(),
        &settings,
        None,
    )?;
    outln!("design\n{}", format_values(plan, &current.values));
    outln!("{}", current.explanation.render());
    out!(
        "{}",
        validate(&current_plan, &current.values, outcomes.as_ref())
    );

    for name in names {
        let refinement = plan
            .refinements
            .iter()
            .find(|r| r.name == name)
            .expect("names come from the plan");
        let applied = refiner.apply(&mut db, refinement);
        let refined = refiner.plan(&db);
        outln!("\nrefinement {name:?}");
        out!("{}", describe_applied(&refiner, &db, &applied));
        outcomes = match outcomes {
            Some(o) => surrogate_for(&refined, spec_dir, Some(o.surrogate))?,
            None => None,
        };
        let next = solve(
            &refined,
            &refiner.values(&db),
            outcomes.as_ref(),
            &settings,
            Some(&current.values),
        )?;
        outln!(
            "re-solved warm from the previous design\n{}",
            format_values(plan, &next.values)
        );
        outln!("{}", compare(&current.explanation, &next.explanation));
        out!("{}", validate(&refined, &next.values, outcomes.as_ref()));
        current = next;
        current_plan = refined;
    }
    if current.explanation.violated.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        let model = outcomes
            .as_ref()
            .map(|o| o.model(&current_plan))
            .transpose()?;
        let params = refiner.values(&db);
        let problem = Problem::new(
            &current_plan,
            &params,
            model.as_ref().map(|m| m as &dyn OutcomeModel),
        );
        out!("{}", report_conflict(&problem, &settings));
        Ok(ExitCode::from(2))
    }
}

fn solve(
    plan: &Plan,
    params: &[f64],
    outcomes: Option<&Outcomes>,
    settings: &DesignSettings,
    warm: Option<&[f64]>,
) -> anyhow::Result<DesignSolution> {
    let model = outcomes.map(|o| o.model(plan)).transpose()?;
    let problem = Problem::new(plan, params, model.as_ref().map(|m| m as &dyn OutcomeModel));
    Ok(design::solve(&problem, settings, warm))
}

/// Lists a refinement's parameter edits and the terms rebuilt for them.
fn describe_applied(refiner: &Refiner, db: &Database, applied: &Applied) -> String {
    let mut out = String::new();
    for c in &applied.changes {
        let _ = writeln!(out, "  {} {} -> {}", c.name, c.before, c.after);
    }
    let changed: Vec<&str> = applied
        .changes
        .iter()
        .filter(|c| c.before != c.after)
        .map(|c| c.name.as_str())
        .collect();
    let rebuilt = refiner.terms_reading(db, &changed);
    let _ = writeln!(
        out,
        "  rebuilt terms: {}",
        if rebuilt.is_empty() {
            "none".to_string()
        } else {
            rebuilt.join(", ")
        }
    );
    if !applied.reruns.is_empty() {
        let _ = writeln!(out, "  rerun: {}", applied.reruns.join(", "));
    }
    if applied.skipped > 0 {
        let _ = writeln!(
            out,
            "  {} step(s) that add obstacles do not apply to a design and were skipped",
            applied.skipped
        );
    }
    out
}

/// Indices, within the design's outcomes, of the outcomes some term reads.
fn outcomes_read(plan: &Plan, target: &SurrogateTarget<'_>) -> Vec<usize> {
    let agents = plan.agents.len() as u32;
    let index = plan
        .designs
        .iter()
        .position(|d| d.name == target.design.name)
        .unwrap_or(0) as u32;
    let mut read: Vec<usize> = plan
        .graph
        .nodes
        .iter()
        .filter_map(|n| match n {
            Node::State { agent, component } if *agent == agents + index => {
                Some(*component as usize)
            }
            _ => None,
        })
        .collect();
    read.sort_unstable();
    read.dedup();
    read
}

/// Load-tests the design in its physics scenario, when the plan has one, and reports what
/// the simulation measured beside what the surrogate predicted for every outcome a term reads.
fn validate(plan: &Plan, values: &[f64], outcomes: Option<&Outcomes>) -> String {
    if !plan
        .designs
        .iter()
        .any(|d| d.model == "std.furniture.office_chair")
    {
        return String::new();
    }
    let outcome = match basin_runtime::scenario::replay_design(plan, values) {
        Ok(outcome) => outcome,
        Err(error) => return format!("validation in the physics scenario failed: {error}\n"),
    };
    let mut out = format!(
        "validated in the physics scenario (rapier3d load test): {}\n",
        if outcome.tipped {
            "the chair TIPPED"
        } else {
            "the chair did not tip"
        }
    );
    let target = match SurrogateTarget::select(plan) {
        Ok(Some(t)) => t,
        _ => {
            let _ = writeln!(
                out,
                "  tip margin {:.4} m, largest tilt {:.4} rad, caster slip {:.4} m, armrest tip travel {:.4} m",
                outcome.tip_margin, outcome.max_tilt, outcome.slip, outcome.max_displacement
            );
            return out;
        }
    };
    let simulated = outcome_values(&target, &outcome);
    let predicted = outcomes
        .and_then(|o| {
            o.surrogate
                .predict(&target, std::slice::from_ref(&values.to_vec()))
                .ok()
        })
        .and_then(|mut p| p.pop());
    let _ = writeln!(
        out,
        "  {:<28} {:>14} {:>14} {:>14}",
        "quantity", "surrogate", "simulation", "difference"
    );
    for j in outcomes_read(plan, &target) {
        let state = &target.design.states[j];
        let name = format!("{}.{} ({})", target.design.name, state.name, state.unit);
        match &predicted {
            Some(p) => {
                let _ = writeln!(
                    out,
                    "  {name:<28} {:>14.6} {:>14.6} {:>+14.6}",
                    p[j],
                    simulated[j],
                    p[j] - simulated[j]
                );
            }
            None => {
                let _ = writeln!(
                    out,
                    "  {name:<28} {:>14} {:>14.6} {:>14}",
                    "-", simulated[j], "-"
                );
            }
        }
    }
    // Score the design again with the simulated outcomes: a hard constraint the surrogate
    // met by less than its error can fail in simulation, and the report says so.
    let params: Vec<f64> = plan.params.iter().map(|p| p.value.0).collect();
    let mut states = vec![0.0; Shape::of(plan).n_states];
    states[target.state_offset..target.state_offset + simulated.len()].copy_from_slice(&simulated);
    let checked = design::explain(plan, values, &params, &states);
    if checked.violated.is_empty() {
        let _ = writeln!(
            out,
            "  every hard constraint holds with the simulated outcomes"
        );
    }
    for &i in &checked.violated {
        let t = &checked.terms[i];
        let _ = writeln!(
            out,
            "  with the simulated outcomes, {} (line {}) is violated by {:.6} SI units: `{}`",
            t.name,
            t.line,
            -t.robustness.unwrap_or(0.0),
            t.source
        );
    }
    out
}

/// Reads design values from JSON: an object from variable name to a number in SI units or,
/// for a discrete variable, the name of a choice.
pub fn read_values(plan: &Plan, path: &Path) -> anyhow::Result<Vec<f64>> {
    if plan.designs.iter().all(|d| d.variables.is_empty()) {
        bail!(
            "this spec has no design variables to judge `{}` against; try `--trajectory trace.json` with a trace written by `basin run --out` for a spec with agents",
            path.display()
        );
    }
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read `{}`", path.display()))?;
    let json: serde_json::Value = serde_json::from_str(&text).with_context(|| {
        format!(
            "`{}` is not valid JSON; try an object such as {{\"NAME\": 0.02}} with every design variable in SI units",
            path.display()
        )
    })?;
    let Some(object) = json.as_object() else {
        bail!(
            "`{}` must hold a JSON object from design variable names to values",
            path.display()
        );
    };
    let mut values = Vec::new();
    for v in plan.designs.iter().flat_map(|d| d.variables.iter()) {
        let Some(given) = object.get(&v.name) else {
            bail!(
                "`{}` has no value for `{}`; try adding `\"{}\": …`",
                path.display(),
                v.name,
                v.name
            );
        };
        let x = match (&v.domain, given) {
            (Domain::Continuous { .. }, serde_json::Value::Number(n)) => {
                n.as_f64().unwrap_or(f64::NAN)
            }
            (Domain::Discrete { choices }, serde_json::Value::String(s)) => {
                match choices.iter().position(|c| c == s) {
                    Some(i) => i as f64,
                    None => bail!(
                        "`{}`: `{}` has no choice `{s}`; the choices are {}",
                        path.display(),
                        v.name,
                        choices.join(", ")
                    ),
                }
            }
            (Domain::Continuous { .. }, other) => bail!(
                "`{}`: `{}` expects a number in {}, found {other}; try a bare JSON number in SI units, such as 0.02 for 20 mm",
                path.display(),
                v.name,
                v.unit
            ),
            (Domain::Discrete { choices }, other) => bail!(
                "`{}`: `{}` expects one of {}, found {other}",
                path.display(),
                v.name,
                choices.join(", ")
            ),
        };
        if !x.is_finite() {
            bail!("`{}`: `{}` is not a finite number", path.display(), v.name);
        }
        if let Domain::Continuous { lower, upper } = &v.domain
            && !(lower.0..=upper.0).contains(&x)
        {
            bail!(
                "`{}`: `{}` is {x} {}, outside its range {} to {} {}; try a value within the range the spec declares",
                path.display(),
                v.name,
                v.unit,
                lower.0,
                upper.0,
                v.unit
            );
        }
        values.push(x);
    }
    let known: Vec<&str> = plan
        .designs
        .iter()
        .flat_map(|d| d.variables.iter())
        .map(|v| v.name.as_str())
        .collect();
    if let Some(extra) = object.keys().find(|k| !known.contains(&k.as_str())) {
        bail!(
            "`{}`: `{extra}` is not a design variable of this spec; the variables are {}",
            path.display(),
            known.join(", ")
        );
    }
    Ok(values)
}

/// Scores given design values without optimizing; outcomes come from one load test in the
/// physics scenario, not from a surrogate. Exit status 2 when a hard term is violated.
pub fn judge(plan: &Plan, values_path: &Path) -> anyhow::Result<ExitCode> {
    let values = read_values(plan, values_path)?;
    let params: Vec<f64> = plan.params.iter().map(|p| p.value.0).collect();
    let mut states = vec![f64::NAN; Shape::of(plan).n_states];
    if let Some(target) = SurrogateTarget::select(plan)? {
        let outcome = basin_runtime::scenario::replay_design(plan, &values)
            .context("cannot load-test the design in its physics scenario")?;
        let simulated = outcome_values(&target, &outcome);
        states[target.state_offset..target.state_offset + simulated.len()]
            .copy_from_slice(&simulated);
        outln!("outcomes simulated in the physics scenario (rapier3d load test)");
    }
    let explanation = design::explain(plan, &values, &params, &states);
    outln!("design\n{}", format_values(plan, &values));
    out!("{}", explanation.render());
    if explanation.violated.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        for &i in &explanation.violated {
            let t = &explanation.terms[i];
            outln!("violated: {} (line {}): `{}`", t.name, t.line, t.source);
        }
        Ok(ExitCode::from(2))
    }
}
