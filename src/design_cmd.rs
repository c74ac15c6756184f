//! Design problems from the command line: solving, refining and judging a design.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use basin_compiler::plan::{Domain, Plan};
use basin_runtime::design::{self, DesignSettings, Explanation};

/// Names and values of the design variables, for reports.
fn format_values(plan: &Plan, values: &[f64]) -> String {
    let mut out = String::new();
    for (v, x) in plan.designs.iter().flat_map(|d| d.variables.iter()).zip(values) {
        let shown = match &v.domain {
            Domain::Continuous { .. } => format!("{x:.6} {}", v.unit),
            Domain::Discrete { choices } => choices.get(*x as usize).cloned().unwrap_or_else(|| format!("choice {x}")),
        };
        out.push_str(&format!("  {:<32} {shown}\n", v.name));
    }
    out
}

/// Prints two explanations side by side, term by term.
fn compare(before: &Explanation, after: &Explanation) -> String {
    let mut out = format!("{:<24} {:>14} {:>14} {:>14} {:>14}\n", "term", "energy before", "energy after", "margin before", "margin after");
    for (b, a) in before.terms.iter().zip(&after.terms) {
        let margin = |r: Option<f64>| r.map_or("-".to_string(), |r| format!("{r:.6}"));
        out.push_str(&format!("{:<24} {:>14.6} {:>14.6} {:>14} {:>14}\n", b.name, b.energy, a.energy, margin(b.robustness), margin(a.robustness)));
    }
    out.push_str(&format!("{:<24} {:>14.6} {:>14.6}\n", "total", before.total, after.total));
    out
}

/// Lists the hard terms that conflict, with their lines, or reports that none do.
fn report_conflict(plan: &Plan, params: &[f64], settings: &DesignSettings) -> String {
    let conflict = design::conflicting_hard_terms(plan, params, settings);
    if conflict.is_empty() {
        return "no set of hard constraints conflicts: the solver found no design that meets all of them, but each subset it tried was satisfiable\n".into();
    }
    let mut out = String::from("no design in the declared ranges satisfies these hard constraints together:\n");
    for i in conflict {
        let t = &plan.terms[i];
        out.push_str(&format!("  {} (line {}): `{}`\n", t.name, t.line, t.source));
    }
    out
}

/// Solves a design problem, applies refinements in order (all, or only `only`), and
/// reports each solution with its explanation. Exit status 2 when a hard term stays violated.
pub fn run(plan: &Plan, only: Option<&str>) -> anyhow::Result<ExitCode> {
    let settings = DesignSettings::from_plan(plan);
    let mut applied: Vec<&str> = Vec::new();
    let mut params = design::params_after(plan, &applied);
    let first = design::solve(plan, &params, &settings, None);
    println!("design\n{}", format_values(plan, &first.values));
    println!("{}", first.explanation.render());
    let mut current = first;
    let names: Vec<&str> = plan.refinements.iter().map(|r| r.name.as_str()).filter(|n| only.is_none_or(|o| o == *n)).collect();
    if let Some(o) = only {
        if names.is_empty() {
            let known: Vec<&str> = plan.refinements.iter().map(|r| r.name.as_str()).collect();
            bail!("no refinement named {o:?}; the spec has: {}", known.join(", "));
        }
    }
    for name in names {
        applied.push(name);
        params = design::params_after(plan, &applied);
        let next = design::solve(plan, &params, &settings, Some(&current.values));
        println!("refinement {name:?}, re-solved from the previous design\n{}", format_values(plan, &next.values));
        println!("{}", compare(&current.explanation, &next.explanation));
        current = next;
    }
    print!("{}", validate(plan, &current.values));
    if current.explanation.violated.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        print!("{}", report_conflict(plan, &params, &settings));
        Ok(ExitCode::from(2))
    }
}

/// Load-tests the design in its physics scenario, when the plan has one, and reports what
/// the simulation measured.
fn validate(plan: &Plan, values: &[f64]) -> String {
    if !plan.designs.iter().any(|d| d.model == "std.furniture.office_chair") {
        return String::new();
    }
    match basin_runtime::scenario::replay_design(plan, values) {
        Ok(outcome) => format!(
            "validated in the physics scenario (rapier3d load test):\n  tip margin {:.4} m, {}, largest tilt {:.4} rad, caster slip {:.4} m, armrest tip travel {:.4} m\n",
            outcome.tip_margin,
            if outcome.tipped { "TIPPED" } else { "did not tip" },
            outcome.max_tilt,
            outcome.slip,
            outcome.max_displacement
        ),
        Err(error) => format!("validation in the physics scenario failed: {error}\n"),
    }
}

/// Reads design values from JSON: an object from variable name to a number in SI units or,
/// for a discrete variable, the name of a choice.
pub fn read_values(plan: &Plan, path: &Path) -> anyhow::Result<Vec<f64>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read `{}`", path.display()))?;
    let json: serde_json::Value = serde_json::from_str(&text).with_context(|| format!("`{}` is not valid JSON", path.display()))?;
    let Some(object) = json.as_object() else {
        bail!("`{}` must hold a JSON object from design variable names to values", path.display());
    };
    let mut values = Vec::new();
    for v in plan.designs.iter().flat_map(|d| d.variables.iter()) {
        let Some(given) = object.get(&v.name) else {
            bail!("`{}` has no value for `{}`; try adding `\"{}\": …`", path.display(), v.name, v.name);
        };
        let x = match (&v.domain, given) {
            (Domain::Continuous { .. }, serde_json::Value::Number(n)) => n.as_f64().unwrap_or(f64::NAN),
            (Domain::Discrete { choices }, serde_json::Value::String(s)) => match choices.iter().position(|c| c == s) {
                Some(i) => i as f64,
                None => bail!("`{}`: `{}` has no choice `{s}`; the choices are {}", path.display(), v.name, choices.join(", ")),
            },
            (Domain::Continuous { .. }, other) => bail!("`{}`: `{}` expects a number in {}, found {other}", path.display(), v.name, v.unit),
            (Domain::Discrete { choices }, other) => bail!("`{}`: `{}` expects one of {}, found {other}", path.display(), v.name, choices.join(", ")),
        };
        if !x.is_finite() {
            bail!("`{}`: `{}` is not a finite number", path.display(), v.name);
        }
        values.push(x);
    }
    let known: Vec<&str> = plan.designs.iter().flat_map(|d| d.variables.iter()).map(|v| v.name.as_str()).collect();
    if let Some(extra) = object.keys().find(|k| !known.contains(&k.as_str())) {
        bail!("`{}`: `{extra}` is not a design variable of this spec; the variables are {}", path.display(), known.join(", "));
    }
    Ok(values)
}

/// Scores given design values without optimizing. Exit status 2 when a hard term is violated.
pub fn judge(plan: &Plan, values_path: &Path) -> anyhow::Result<ExitCode> {
    let values = read_values(plan, values_path)?;
    let params = design::params_after(plan, &[]);
    let explanation = design::explain(plan, &values, &params);
    println!("design\n{}", format_values(plan, &values));
    print!("{}", explanation.render());
    if explanation.violated.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        for &i in &explanation.violated {
            let t = &explanation.terms[i];
            println!("violated: {} (line {}): `{}`", t.name, t.line, t.source);
        }
        Ok(ExitCode::from(2))
    }
}
