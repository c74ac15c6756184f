//! Closed-loop checks of the double-integrator and pendulum examples: the planner drives the
//! rapier plant to each example's goal.
//!
//! Most runs roll out the physics scenario itself (`SimulatorDynamics`) with a few physics
//! substeps per control step. The plant keeps its fine substeps, so the coarse rollouts
//! differ slightly from what the plant does, and the closed loop has to absorb that as it
//! would a model's error. The pendulum also swings up over a world model trained here with
//! the episodes and epochs of its world block, as `basin run` plans.

use std::path::Path;

use basin_compiler::Database;
use basin_compiler::plan::{CompileOptions, Plan, compile};
use basin_runtime::model::{EnsureOptions, Overrides, Reuse, ensure_model};
use basin_runtime::mpc::{
    Dynamics, LoopOptions, ModelDynamics, Planner, PlannerSettings, RunResult, Scorer, goal_blocks_of, run_closed_loop,
    simulator_for_plan,
};
use basin_runtime::scenario::{Scenario, Start, scenario_from_plan};

/// Compiles `examples/NAME/NAME.basin` with each `(from, to)` text replacement applied.
fn example(name: &str, edits: &[(&str, &str)]) -> (Plan, String) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(name);
    let path = dir.join(format!("{name}.basin"));
    let mut text = std::fs::read_to_string(&path).expect("example spec");
    for (from, to) in edits {
        assert!(text.contains(from), "`{from}` is not in {}", path.display());
        text = text.replace(from, to);
    }
    let db = Database::new();
    let file = db.add_file(path.display().to_string(), text.clone());
    let (plan, diagnostics) = compile(
        &db,
        file,
        &CompileOptions {
            base_dir: Some(dir),
            allow_outside: false,
        },
    );
    (
        plan.unwrap_or_else(|| panic!("{name} does not compile: {diagnostics:?}")),
        text,
    )
}

/// Runs the example in closed loop on its rapier plant with `samples` samples and
/// `iterations` iterations per step, for at most `time_limit` simulated seconds.
fn run(plan: &Plan, text: &str, samples: usize, iterations: usize, time_limit: f64) -> RunResult {
    let step = plan.horizon.as_ref().expect("a plan block").step.0;
    let dynamics = simulator_for_plan(plan, None, Some(step / 5.0)).expect("simulator dynamics");
    run_over(plan, text, &dynamics, samples, iterations, time_limit)
}

/// [`run`] over the given dynamics.
fn run_over(plan: &Plan, text: &str, dynamics: &dyn Dynamics, samples: usize, iterations: usize, time_limit: f64) -> RunResult {
    let mut plant = scenario_from_plan(plan, None, Start::Plan).expect("plant");
    let settings = PlannerSettings::from_plan(plan)
        .expect("solver settings")
        .with_budget(Some(samples), Some(iterations));
    let mut planner = Planner::new(plan, settings).expect("planner");
    let mut scorer = Scorer::new(plan.clone(), vec![None; plan.contexts.len()]);
    let options = LoopOptions {
        seed: 0,
        max_steps: None,
        time_limit: Some(time_limit),
        goal_blocks: goal_blocks_of(text),
        ..LoopOptions::default()
    };
    run_closed_loop(
        &mut scorer,
        &mut plant as &mut dyn Scenario,
        dynamics,
        &mut planner,
        &options,
        &mut |_| {},
    )
    .expect("closed loop")
}

/// The run as lines of time, state, action, energy and solver status, for failure messages.
fn describe(result: &RunResult) -> String {
    let mut out = String::new();
    for r in &result.records {
        let state: Vec<String> = r.state.iter().map(|v| format!("{v:8.3}")).collect();
        let action: Vec<String> = r.action.iter().map(|v| format!("{v:7.3}")).collect();
        out.push_str(&format!(
            "t {:5.2}  state {}  action {}  energy {:8.3}  {}  error {:.4}\n",
            r.time,
            state.join(" "),
            action.join(" "),
            r.total,
            r.status,
            r.prediction_error
        ));
    }
    out
}

#[test]
fn double_integrator_arrives_at_rest_near_minimum_time() {
    let (plan, text) = example("double-integrator", &[]);
    let result = run(&plan, &text, 1024, 2, 10.0);
    let optimum = 2.0 * 10f64.sqrt();
    let Some(time) = result.goal_time else {
        panic!("the goal was not met within 10 s:\n{}", describe(&result));
    };
    eprintln!("arrived at rest after {time:.2} s (optimum {optimum:.3} s)");
    let last = result.states.last().expect("a final state");
    assert!(
        (last[0] - 10.0).abs() <= 0.05 && last[1].abs() <= 0.05,
        "the goal held at {time} s away from rest at 10 m: {last:?}"
    );
    // With 200 ms steps the earliest arrival at rest is 6.4 s: 32 steps cover at most
    // 10.24 m from rest to rest, 31 steps at most 9.61 m.
    assert!(
        time <= 1.05 * optimum,
        "arrived at rest after {time:.2} s, more than 5% above the optimum {optimum:.3} s:\n{}",
        describe(&result)
    );
    for r in &result.records {
        assert!(
            r.action[0].abs() <= 1.0,
            "acceleration {} at {} s exceeds 1 m/s^2",
            r.action[0],
            r.time
        );
    }
}

#[test]
fn pendulum_swings_up_and_holds_upright() {
    let (plan, text) = example("pendulum", &[]);
    let result = run(&plan, &text, 256, 2, 15.0);
    let Some(time) = result.goal_time else {
        panic!(
            "the pendulum did not swing up and hold within 15 s:\n{}",
            describe(&result)
        );
    };
    eprintln!("upright and held after {time:.2} s");
    let held = (2.0 / result.step).round() as usize;
    for state in &result.states[result.states.len() - 1 - held..] {
        // The angle is not wrapped: upright is any odd multiple of 180 deg.
        let off = state[0].sin().atan2(-state[0].cos()).abs().to_degrees();
        assert!(
            off <= 10.0,
            "the goal held at {time} s, yet the angle was {off:.1} deg from upright in the last 2 s"
        );
    }
    for r in &result.records {
        assert!(
            r.action[0].abs() <= 2.0,
            "torque {} at {} s exceeds 2 N*m",
            r.action[0],
            r.time
        );
    }
}

/// Trains the example's world model with `episodes` and `epochs` into a scratch folder.
fn learned(name: &str, plan: &Plan, episodes: usize, epochs: usize) -> ModelDynamics {
    let scratch = std::env::temp_dir().join(format!("basin-control-{name}-{}", std::process::id()));
    let options = EnsureOptions {
        checkpoint: Some(scratch.join("model.safetensors")),
        overrides: Overrides { episodes: Some(episodes), epochs: Some(epochs) },
        reuse: Reuse::Never,
        ..EnsureOptions::default()
    };
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples").join(name);
    let ensured = ensure_model(plan, &dir, &options).expect("a trained model");
    let _ = std::fs::remove_dir_all(&scratch);
    ModelDynamics::new(ensured.model, ensured.meta.normalization, ensured.meta.surprise_threshold, None).expect("model dynamics")
}

/// The learned model integrates the pendulum's angle from its rate and reads it as sine and
/// cosine, so going over the top leaves no training range behind.
#[test]
fn pendulum_swings_up_over_a_learned_model() {
    let (plan, text) = example("pendulum", &[]);
    let dynamics = learned("pendulum", &plan, 300, 20);
    assert_eq!(dynamics.model.dims.angle, Some([0, 1]), "the pendulum's angle is not integrated");
    let result = run_over(&plan, &text, &dynamics, 1024, 2, 15.0);
    let Some(time) = result.goal_time else {
        panic!("the pendulum did not swing up and hold within 15 s over the learned model:\n{}", describe(&result));
    };
    eprintln!("upright and held after {time:.2} s over the learned model");
    let held = (2.0 / result.step).round() as usize;
    for state in &result.states[result.states.len() - 1 - held..] {
        let off = state[0].sin().atan2(-state[0].cos()).abs().to_degrees();
        assert!(off <= 10.0, "the goal held at {time} s, yet the angle was {off:.1} deg from upright in the last 2 s");
    }
}
