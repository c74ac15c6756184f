//! `basin run`: plan and act in closed loop on a spec's physics scenario, and `basin judge`:
//! score a recorded trajectory against a spec without planning.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use basin_compiler::Database;
use basin_compiler::diagnostics;
use basin_compiler::plan::{CompileOptions, Plan};
use basin_runtime::model::{EnsureOptions, ensure_model};
use basin_runtime::mpc::{
    Dynamics, LoopOptions, MapEdit, ModelDynamics, Navigation, Planner, PlannerSettings, Scorer, goal_blocks_of, judge, progress_bar, read_trace, refinement_map_edits,
    render_summary, render_svg, run_closed_loop, simulator_for_plan, summarize, trace_json,
};
use basin_runtime::scenario::{Scenario, Start, distance_grids, scenario_from_plan};
use clap::ValueEnum;

/// Exit status of a run whose goal was not met or that violated a hard constraint.
const EXIT_NOT_MET: u8 = 2;

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum DynamicsKind {
    /// The learned world model, trained first when no checkpoint fits the plan.
    Model,
    /// The physics scenario itself (exact, slower).
    Simulator,
}

#[derive(clap::Args)]
pub struct RunArgs {
    /// The spec file.
    file: PathBuf,
    /// Write `trace.json` and `plot.svg` into this folder.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Seed of the plant's reset and of the planner's sampling.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Stop after this many control steps.
    #[arg(long)]
    steps_limit: Option<usize>,
    /// What the planner rolls out.
    #[arg(long, value_enum, default_value = "model")]
    dynamics: DynamicsKind,
    /// Samples per iteration, replacing the plan's setting.
    #[arg(long)]
    samples: Option<usize>,
    /// Sampling iterations per step, replacing the plan's setting.
    #[arg(long)]
    iterations: Option<usize>,
    /// Allow context files outside the spec's folder.
    #[arg(long)]
    allow_outside: bool,
    /// For a design problem, apply only this refinement (default: every refinement in
    /// order); for a trajectory problem, apply this refinement (default: none), its timed
    /// steps at their time into the run.
    #[arg(long)]
    refine: Option<String>,
    /// Let reach terms pull straight at their sites instead of following global routes.
    #[arg(long)]
    no_global_planner: bool,
}

#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("input").required(true).args(["trajectory", "design"])))]
pub struct JudgeArgs {
    /// The spec file.
    file: PathBuf,
    /// A trace written by `basin run --out`.
    #[arg(long)]
    trajectory: Option<PathBuf>,
    /// Design values as JSON: variable name to a number in SI units or a choice's name.
    #[arg(long)]
    design: Option<PathBuf>,
    /// Allow context files outside the spec's folder.
    #[arg(long)]
    allow_outside: bool,
}

/// Compiles the spec, printing its diagnostics; `None` when it has errors.
fn compile(path: &Path, allow_outside: bool) -> anyhow::Result<Option<(Plan, PathBuf, String)>> {
    let text = super::read_spec(&path.to_path_buf())?;
    let name = path.display().to_string();
    let db = Database::new();
    let file = db.add_file(name.clone(), text.clone());
    let base_dir = path.parent().map(|p| if p.as_os_str().is_empty() { PathBuf::from(".") } else { p.to_path_buf() }).unwrap_or_else(|| PathBuf::from("."));
    let options = CompileOptions { base_dir: Some(base_dir.clone()), allow_outside };
    let (plan, diagnostics) = basin_compiler::plan::compile(&db, file, &options);
    eprint!("{}", diagnostics::render(&name, &text, &diagnostics, std::io::stderr().is_terminal()));
    Ok(plan.map(|plan| (plan, base_dir, text)))
}

pub fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let Some((plan, base_dir, text)) = compile(&args.file, args.allow_outside)? else {
        return Ok(ExitCode::from(1));
    };
    if plan.agents.is_empty() && !plan.designs.is_empty() {
        let options = super::design_cmd::DesignOptions { refine: args.refine.as_deref(), samples: args.samples, iterations: args.iterations, seed: args.seed };
        return super::design_cmd::run(&plan, &base_dir, &options);
    }
    let fields = distance_grids(&plan, Some(&base_dir)).context("cannot load the map contexts")?;
    let mut plant = scenario_from_plan(&plan, Some(&base_dir), Start::Plan).context("cannot build the plant")?;
    let dynamics: Box<dyn Dynamics> = match args.dynamics {
        DynamicsKind::Simulator => Box::new(simulator_for_plan(&plan, Some(&base_dir), None)?),
        DynamicsKind::Model => {
            let options = EnsureOptions { seed: args.seed, progress: std::io::stderr().is_terminal(), ..EnsureOptions::default() };
            let ensured = ensure_model(&plan, &base_dir, &options).context("cannot get a world model for the plan")?;
            let model = ModelDynamics::new(ensured.model, ensured.meta.normalization, ensured.meta.surprise_threshold, ensured.grid.as_ref())?;
            Box::new(ModelOnMap { model, grid: std::sync::Mutex::new(ensured.grid) })
        }
    };
    let settings = PlannerSettings { seed: args.seed, ..PlannerSettings::from_plan(&plan)? }.with_budget(args.samples, args.iterations);
    let mut planner = Planner::new(&plan, settings)?;
    let (params, map_edits) = match args.refine.as_deref() {
        Some(name) => refinement_edits(&plan, name)?,
        None => (plan.params.iter().map(|p| p.value.0).collect(), Vec::new()),
    };
    let mut scorer = Scorer::new(plan.clone(), fields);
    scorer.params = params;
    let options = LoopOptions {
        seed: args.seed,
        max_steps: args.steps_limit,
        time_limit: None,
        goal_blocks: goal_blocks_of(&text),
        map_edits,
        navigation: if args.no_global_planner { Navigation::Off } else { Navigation::Auto },
    };

    let step = plan.horizon.as_ref().map_or(1.0, |h| h.step.0);
    let limit = options.max_steps.unwrap_or(usize::MAX).min((plan.horizon.as_ref().and_then(|h| h.time_limit).map_or(basin_runtime::mpc::DEFAULT_TIME_LIMIT, |t| t.0) / step).round() as usize);
    let bar = progress_bar(limit as u64);
    let result = run_closed_loop(&mut scorer, &mut plant as &mut dyn Scenario, dynamics.as_ref(), &mut planner, &options, &mut |record| {
        bar.inc(1);
        bar.set_message(format!("t = {:.1} s, energy {:.3}, {}", record.time, record.total, record.status));
    })?;
    bar.finish_and_clear();

    let actions: Vec<Vec<f64>> = result.records.iter().map(|r| r.action.clone()).collect();
    let (evaluation, robustness) = judge(&plan, &scorer.params, &scorer.fields, &result.states, &actions)?;
    let summary = summarize(&plan, &evaluation, &robustness, Some(&result));
    println!("planned with the {} in {:.1} s of wall time", result.dynamics, result.wall_seconds);
    print!("{}", render_summary(&summary));
    print!("{}", render_contexts(&plan));
    if let Some(out) = &args.out {
        std::fs::create_dir_all(out).with_context(|| format!("cannot create `{}`", out.display()))?;
        let trace = serde_json::to_string_pretty(&trace_json(&plan, &result))? + "\n";
        super::write_atomically(&out.join("trace.json"), &trace)?;
        super::write_atomically(&out.join("plot.svg"), &render_svg(&plan, &result, &scorer.fields))?;
    }
    Ok(if summary.success() { ExitCode::SUCCESS } else { ExitCode::from(EXIT_NOT_MET) })
}

pub fn judge_trajectory(args: JudgeArgs) -> anyhow::Result<ExitCode> {
    let Some((plan, base_dir, _)) = compile(&args.file, args.allow_outside)? else {
        return Ok(ExitCode::from(1));
    };
    if let Some(values) = &args.design {
        return super::design_cmd::judge(&plan, values);
    }
    let Some(trajectory) = &args.trajectory else {
        anyhow::bail!("give `--trajectory trace.json` or `--design values.json`");
    };
    let text = std::fs::read_to_string(trajectory).with_context(|| format!("cannot read `{}`", trajectory.display()))?;
    let trace: serde_json::Value = serde_json::from_str(&text).with_context(|| format!("`{}` is not valid JSON; try a `trace.json` written by `basin run --out DIR`", trajectory.display()))?;
    let (states, actions) = read_trace(&trace).with_context(|| format!("`{}` is not a trace written by `basin run --out`", trajectory.display()))?;
    let mut fields = distance_grids(&plan, Some(&base_dir)).context("cannot load the map contexts")?;
    // Judge against the map as the run left it, with the obstacles added during the run.
    if let Some(updates) = trace.get("map_updates") {
        let edits: Vec<MapEdit> = serde_json::from_value(updates.clone()).with_context(|| format!("`{}` has invalid `map_updates`", trajectory.display()))?;
        for edit in &edits {
            for field in fields.iter_mut().flatten() {
                edit.apply_to_field(field);
            }
        }
    }
    let mut params: Vec<f64> = plan.params.iter().map(|p| p.value.0).collect();
    // Judge with the phases the run ended in, so finished reach phases are not scored again.
    if let Some(phases) = trace["phases"].as_array() {
        for pair in phases.iter().filter_map(|p| p.as_array()) {
            if let (Some(name), Some(value)) = (pair.first().and_then(|n| n.as_str()), pair.get(1).and_then(|v| v.as_f64())) {
                if let Some(index) = plan.params.iter().position(|p| p.name == name) {
                    params[index] = value;
                }
            }
        }
    }
    let (evaluation, robustness) = judge(&plan, &params, &fields, &states, &actions).with_context(|| {
        format!("`{}` does not fit this spec; try a trace that `basin run --out` wrote for this spec (or `--design` for a design problem)", trajectory.display())
    })?;
    let summary = summarize(&plan, &evaluation, &robustness, None);
    println!("judged {} steps from `{}`", actions.len(), trajectory.display());
    print!("{}", render_summary(&summary));
    Ok(if summary.success() { ExitCode::SUCCESS } else { ExitCode::from(EXIT_NOT_MET) })
}

/// The world model with the map its occupancy patches are cut from, so an obstacle added
/// during a run reaches the model's observations without retraining.
struct ModelOnMap {
    model: ModelDynamics,
    grid: std::sync::Mutex<Option<basin_runtime::Grid>>,
}

impl Dynamics for ModelOnMap {
    fn n_states(&self) -> usize {
        self.model.n_states()
    }

    fn n_actions(&self) -> usize {
        self.model.n_actions()
    }

    fn rollout(&self, state: &[f64], actions: &[f64], samples: usize, steps: usize, dt: f64) -> Result<Vec<f64>, basin_runtime::mpc::MpcError> {
        self.model.rollout(state, actions, samples, steps, dt)
    }

    fn action_gradient(&self, state: &[f64], actions: &[f64], dt: f64, grad_states: &[f64]) -> Option<Result<Vec<f64>, basin_runtime::mpc::MpcError>> {
        self.model.action_gradient(state, actions, dt, grad_states)
    }

    fn surprise(&self, state: &[f64], action: &[f64], next: &[f64]) -> Option<(f64, f64)> {
        self.model.surprise(state, action, next)
    }

    fn name(&self) -> &'static str {
        self.model.name()
    }

    fn add_obstacle(&self, obstacle: &basin_runtime::scenario::Obstacle) {
        let mut grid = self.grid.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(grid) = grid.as_mut() {
            let edit = match *obstacle {
                basin_runtime::scenario::Obstacle::Box { center, half, .. } => {
                    MapEdit { at: 0.0, label: String::new(), center: [center[0], center[1]], shape: basin_runtime::mpc::EditShape::Box { half: [half[0], half[1]] } }
                }
                basin_runtime::scenario::Obstacle::Cylinder { center, radius, .. } => {
                    MapEdit { at: 0.0, label: String::new(), center: [center[0], center[1]], shape: basin_runtime::mpc::EditShape::Circle { radius } }
                }
            };
            edit.apply_to_grid(grid);
            self.model.replace_grid(grid);
            if self.model.model.dims.patch.is_some() {
                tracing::info!("the world model reads the added obstacle through its occupancy patch, without retraining");
            }
        }
    }
}

/// The parameter values and map edits of refinement `name` for a closed-loop run.
fn refinement_edits(plan: &Plan, name: &str) -> anyhow::Result<(Vec<f64>, Vec<MapEdit>)> {
    let edits = refinement_map_edits(plan, name)?;
    Ok((basin_runtime::design::params_after(plan, &[name]), edits))
}

/// The spec's context files and notes, with their size and content hash, so a report says
/// exactly which floor plan, map or brief it was run against.
fn render_contexts(plan: &Plan) -> String {
    if plan.contexts.is_empty() {
        return String::new();
    }
    let mut out = String::from("\ncontext:\n");
    for c in &plan.contexts {
        let size = c.size.map_or(String::new(), |s| format!(", {s} bytes"));
        let hash = c.sha256.as_deref().map_or(String::new(), |h| format!(", sha256 {}", &h[..h.len().min(16)]));
        let shown = if c.loader == "text" && c.path.chars().count() > 60 {
            format!("{}…", c.path.chars().take(60).collect::<String>())
        } else {
            c.path.clone()
        };
        out.push_str(&format!("  {:<12} {} {:?}{size}{hash}\n", c.name, c.loader, shown));
    }
    out
}
