//! Closed-loop navigation on the mobile-robot examples: global routes around shelves and
//! random obstacles, and an obstacle that appears mid-run.
//!
//! Most runs plan over the physics simulator with coarse substeps and few samples, so they
//! stay fast in the debug profile. One trains a small world model and plans over it, as
//! `basin run` does. The energy, the plant and the goal test are the ones `basin run`
//! uses.

use std::path::{Path, PathBuf};

use basin_compiler::Database;
use basin_compiler::energy::DistanceGrid;
use basin_compiler::plan::{CompileOptions, Plan, compile};
use basin_runtime::model::{EnsureOptions, Overrides, Reuse, ensure_model};
use basin_runtime::mpc::{
    Dynamics, ModelDynamics, LoopOptions, MapEdit, Planner, PlannerSettings, RunResult, Scorer, goal_blocks_of, judge, refinement_map_edits, render_svg,
    run_closed_loop, simulator_for_plan, summarize, trace_json,
};
use basin_runtime::context::{Geometry, MobileBaseOptions, load_scen, load_urdf};
use basin_runtime::scenario::{Scenario, Start, distance_grids, scenario_from_plan};

fn example_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples").join(name)
}

fn example(name: &str) -> (Plan, String) {
    let dir = example_dir(name);
    let text = std::fs::read_to_string(dir.join(format!("{name}.basin"))).expect("example");
    let db = Database::new();
    let file = db.add_file(format!("{name}.basin"), text.clone());
    let (plan, diagnostics) = compile(&db, file, &CompileOptions { base_dir: Some(dir), allow_outside: false });
    (plan.unwrap_or_else(|| panic!("{name} did not compile: {diagnostics:?}")), text)
}

/// What a test run found.
struct Outcome {
    result: RunResult,
    /// The smallest margin of the clearance term over the run, metres.
    clearance_margin: f64,
}

/// Runs example `name` in closed loop with the simulator as dynamics (physics substeps of
/// 0.1 s), `samples` MPPI samples and one iteration per step, no gradient stage, and the
/// given map edits.
fn run(name: &str, samples: usize, map_edits: Vec<MapEdit>) -> Outcome {
    run_steps(name, samples, map_edits, None).0
}

/// [`run`], stopping after `max_steps` steps; also returns the plan and the final fields.
fn run_steps(name: &str, samples: usize, map_edits: Vec<MapEdit>, max_steps: Option<usize>) -> (Outcome, Plan, Vec<Option<DistanceGrid>>) {
    let (plan, _) = example(name);
    let dynamics = simulator_for_plan(&plan, Some(&example_dir(name)), Some(0.1)).unwrap();
    run_over(name, &dynamics, samples, map_edits, max_steps)
}

/// [`run_steps`] over the given dynamics.
fn run_over(name: &str, dynamics: &dyn Dynamics, samples: usize, map_edits: Vec<MapEdit>, max_steps: Option<usize>) -> (Outcome, Plan, Vec<Option<DistanceGrid>>) {
    let (plan, text) = example(name);
    let dir = example_dir(name);
    let fields = distance_grids(&plan, Some(&dir)).unwrap();
    let mut plant = scenario_from_plan(&plan, Some(&dir), Start::Plan).unwrap();
    let mut settings = PlannerSettings { seed: 1, ..PlannerSettings::from_plan(&plan).unwrap() }.with_budget(Some(samples), Some(1));
    settings.gradient_steps = 0;
    let mut planner = Planner::new(&plan, settings).unwrap();
    let mut scorer = Scorer::new(plan.clone(), fields);
    let options = LoopOptions { seed: 0, goal_blocks: goal_blocks_of(&text), map_edits, max_steps, ..LoopOptions::default() };
    let result = run_closed_loop(&mut scorer, &mut plant as &mut dyn Scenario, dynamics, &mut planner, &options, &mut |_| {}).unwrap();
    let actions: Vec<Vec<f64>> = result.records.iter().map(|r| r.action.clone()).collect();
    let (evaluation, robustness) = judge(&plan, &scorer.params, &scorer.fields, &result.states, &actions).unwrap();
    let summary = summarize(&plan, &evaluation, &robustness, Some(&result));
    let clearance_margin = summary.hard.iter().find(|h| h.source.contains("clearance")).map(|h| h.margin).expect("a clearance term");
    (Outcome { clearance_margin, result }, plan, scorer.fields)
}

/// Asserts that the run met its goal (both reach phases, judged at the real sites) before
/// `deadline` without a collision and with its clearance held.
fn assert_delivered(name: &str, outcome: &Outcome, deadline: f64) {
    let result = &outcome.result;
    eprintln!(
        "{name}: goal at {:?} s (deadline {deadline} s), {} collisions, clearance margin {:.3} m, {:.1} s of wall time",
        result.goal_time, result.collisions, outcome.clearance_margin, result.wall_seconds
    );
    let time = result.goal_time.unwrap_or_else(|| panic!("{name}: goal not met; final state {:?}", result.states.last()));
    assert!(time <= deadline, "{name}: goal met at {time} s, after the deadline {deadline} s");
    assert_eq!(result.collisions, 0, "{name}: collided");
    assert!(outcome.clearance_margin >= 0.0, "{name}: clearance margin {}", outcome.clearance_margin);
    assert!(!result.routes.is_empty(), "{name}: no global route was planned");
}

/// The warehouse over a world model trained here on half the example's episodes, with a
/// quarter of its samples: `basin run`'s own path.
#[test]
fn warehouse_meets_its_goal_over_a_learned_model() {
    let (plan, _) = example("warehouse");
    let scratch = std::env::temp_dir().join(format!("basin-navigation-model-{}", std::process::id()));
    let options = EnsureOptions {
        checkpoint: Some(scratch.join("warehouse.safetensors")),
        overrides: Overrides { episodes: Some(200), epochs: Some(40) },
        reuse: Reuse::Never,
        ..EnsureOptions::default()
    };
    let ensured = ensure_model(&plan, &example_dir("warehouse"), &options).expect("a trained model");
    let _ = std::fs::remove_dir_all(&scratch);
    let dynamics = ModelDynamics::new(ensured.model, ensured.meta.normalization, ensured.meta.surprise_threshold, ensured.grid.as_ref()).expect("model dynamics");
    let (outcome, _, _) = run_over("warehouse", &dynamics, 256, Vec::new(), None);
    assert_delivered("warehouse over the learned model", &outcome, 0.8 * 62.0);
}

#[test]
fn warehouse_picks_and_drops_before_the_deadline() {
    let outcome = run("warehouse", 48, Vec::new());
    assert_delivered("warehouse", &outcome, 0.8 * 62.0);
    // The whole way at the start (to the pick site, then on to the drop site), then the way
    // to the drop site again from where the robot picked.
    let routes: Vec<(&str, f64)> = outcome.result.routes.iter().map(|r| (r.site.as_str(), r.time)).collect();
    assert_eq!(routes.len(), 3, "{routes:?}");
    assert_eq!(routes[..2], [("pick", 0.0), ("drop", 0.0)]);
    assert_eq!(routes[2].0, "drop");
    assert!(routes[2].1 > 0.0);
}

/// The stray pallet brought forward to 0.3 s: the update reaches the trace, the energy's
/// field, the plant and the route within a few steps.
#[test]
fn a_map_update_reaches_the_field_the_route_and_the_trace() {
    let (plan, _) = example("warehouse");
    let mut edits = refinement_map_edits(&plan, "stray pallet").unwrap();
    edits[0].at = 0.3;
    let pallet = edits[0].clone();
    let (outcome, plan, fields) = run_steps("warehouse", 8, edits, Some(6));
    let result = &outcome.result;
    assert_eq!(result.records.len(), 6);
    let events: Vec<(f64, &String)> = result.records.iter().flat_map(|r| r.events.iter().map(move |e| (r.time, e))).collect();
    assert!(
        events.iter().any(|(time, e)| (time - 0.3).abs() < 1e-9 && e.contains("map update at 0.3 s: refinement \"stray pallet\" adds a 1.2 m × 1 m box at (3, 12) m")),
        "{events:?}"
    );
    // The energy's field reads the pallet: negative at its centre, about its half depth.
    let field = fields.iter().flatten().next().unwrap();
    assert!((field.sample(3.0, 12.0).value + 0.5).abs() < 0.05, "field at the pallet {}", field.sample(3.0, 12.0).value);
    // The drop route was planned again at the update, around the pallet.
    let replanned: Vec<_> = result.routes.iter().filter(|r| r.reason == "map update").collect();
    assert_eq!(replanned.iter().map(|r| r.site.as_str()).collect::<Vec<_>>(), ["pick", "drop"]);
    assert!((replanned[0].time - 0.3).abs() < 1e-9);
    assert!(replanned[1].points.iter().all(|&p| pallet.distance(p) >= 0.5));
    // The trace lists the update, and the plot draws it and the routes.
    let trace = trace_json(&plan, result);
    let listed: Vec<MapEdit> = serde_json::from_value(trace["map_updates"].clone()).unwrap();
    assert_eq!(listed, [pallet]);
    assert_eq!(trace["routes"].as_array().unwrap().len(), 4);
    let svg = render_svg(&plan, result, &fields);
    assert!(svg.contains("added at 0.3 s") && svg.contains("stroke-dasharray"), "the plot lacks the pallet or the routes");
}

#[test]
fn stray_pallet_appears_and_the_robot_goes_around_it() {
    let (plan, _) = example("warehouse");
    let edits = refinement_map_edits(&plan, "stray pallet").unwrap();
    assert_eq!(edits.len(), 1);
    let pallet = edits[0].clone();
    let outcome = run("warehouse", 48, edits);
    assert_delivered("warehouse with the stray pallet", &outcome, 0.8 * 62.0);
    let result = &outcome.result;
    // The update is in the trace at 12 s, and the step after it planned from scratch.
    let step = result.records.iter().position(|r| r.events.iter().any(|e| e.starts_with("map update at 12.0 s"))).expect("a map update event");
    assert!((result.records[step].time - 12.0).abs() < 1e-9);
    assert_eq!(result.map_updates, [pallet.clone()]);
    // The pallet lies across the route to the drop site planned before it appeared, and the
    // route planned at the update goes around it.
    let drop_route = |reason: &str| result.routes.iter().find(|r| r.site == "drop" && r.reason == reason).unwrap_or_else(|| panic!("no drop route for {reason:?}"));
    let before = drop_route("site");
    assert!(before.time < 12.0);
    assert!(before.points.iter().any(|&p| pallet.distance(p) < 0.0), "the pallet at {:?} does not lie across the route {:?}", pallet.center, before.points);
    let after = drop_route("map update");
    assert!(after.points.iter().all(|&p| pallet.distance(p) >= 0.5), "the new route passes the pallet: {:?}", after.points);
    assert!(after.length > before.length, "the detour is no longer than the blocked route");
    // The robot keeps its clearance from the pallet too.
    for state in &result.states {
        assert!(pallet.distance([state[0], state[1]]) >= 0.5 - 1e-6, "the robot came within {} m of the pallet's edge", pallet.distance([state[0], state[1]]));
    }
}

#[test]
fn warehouse_grid_goes_there_and_back_between_random_obstacles() {
    let outcome = run("warehouse-grid", 48, Vec::new());
    assert_delivered("warehouse-grid", &outcome, 0.8 * (2.0 * 5.8284 * 2.5 / 0.5));
}

/// The grid example's start, sites and limits are the ones its scenario row and URDF give.
#[test]
fn warehouse_grid_numbers_come_from_its_scenario_and_urdf() {
    let (plan, _) = example("warehouse-grid");
    let dir = example_dir("warehouse-grid");
    let param = |name: &str| plan.params.iter().find(|p| p.name == name).unwrap_or_else(|| panic!("no parameter {name}")).value.0;
    let cell = 2.5;
    let centre = |x: usize, y: usize| [(x as f64 + 0.5) * cell, (32.0 - y as f64 - 0.5) * cell];

    let tasks = load_scen(&dir.join("random-32-32-20-random-1.scen")).unwrap();
    let task = &tasks[354];
    assert_eq!(task.map, "random-32-32-20.map");
    let start = centre(task.start.0, task.start.1);
    let goal = centre(task.goal.0, task.goal.1);
    assert_eq!([param("robot.start[0]"), param("robot.start[1]")], start);
    assert_eq!([param("pick[0]"), param("pick[1]")], goal);
    assert_eq!([param("drop[0]"), param("drop[1]")], start);
    assert!((param("today") - 2.0 * task.optimal_length * cell / 0.5).abs() < 0.01, "today = {} s", param("today"));

    let robot = load_urdf(&dir.join("husky/husky.urdf")).unwrap();
    let collision = robot.link("base_link").unwrap().collisions.iter().find_map(|shape| match shape.geometry {
        Geometry::Box { size } => Some(size),
        _ => None,
    });
    let size = collision.expect("the Husky's base has a collision box");
    assert!((param("robot.radius") - size[0].hypot(size[1]) / 2.0).abs() < 0.001, "radius {}", param("robot.radius"));
    let base = robot.mobile_base(&MobileBaseOptions { max_wheel_speed: Some(1.0 / 0.17775), ..MobileBaseOptions::default() }).unwrap();
    assert!((param("robot.max_speed") - base.max_speed.unwrap()).abs() < 1e-9);
    assert!((param("robot.max_turn_rate") - base.max_turn_rate.unwrap()).abs() < 0.01, "turn rate {}", base.max_turn_rate.unwrap());
}
