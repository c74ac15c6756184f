//! Planner checks on the double-integrator example with exact, fast dynamics written here,
//! so the checks exercise the planner and not the physics.

use std::path::Path;

use basin_compiler::Database;
use basin_compiler::plan::{CompileOptions, Plan, compile};
use basin_runtime::mpc::{Dynamics, Fallback, MpcError, Planner, PlannerSettings, Scorer, SolverStatus, judge};

fn double_integrator() -> Plan {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/double-integrator");
    let path = dir.join("double-integrator.basin");
    let text = std::fs::read_to_string(&path).expect("example spec").replace("step: 200 ms", "step: 100 ms").replace("horizon: 8 s", "horizon: 2 s");
    let db = Database::new();
    let file = db.add_file(path.display().to_string(), text);
    let (plan, diagnostics) = compile(&db, file, &CompileOptions { base_dir: Some(dir), allow_outside: false });
    plan.unwrap_or_else(|| panic!("the example does not compile: {diagnostics:?}"))
}

/// Exact double-integrator steps; `poison` makes every predicted state NaN.
struct Exact {
    poison: bool,
}

impl Dynamics for Exact {
    fn n_states(&self) -> usize {
        2
    }

    fn n_actions(&self) -> usize {
        1
    }

    fn rollout(&self, state: &[f64], actions: &[f64], samples: usize, steps: usize, dt: f64) -> Result<Vec<f64>, MpcError> {
        let mut out = Vec::with_capacity(samples * (steps + 1) * 2);
        for sample in 0..samples {
            let (mut x, mut v) = (state[0], state[1]);
            out.extend([x, v]);
            for &a in &actions[sample * steps..(sample + 1) * steps] {
                x += v * dt + 0.5 * a * dt * dt;
                v += a * dt;
                out.extend(if self.poison { [f64::NAN, f64::NAN] } else { [x, v] });
            }
        }
        Ok(out)
    }

    fn name(&self) -> &'static str {
        "exact"
    }
}

fn planner(plan: &Plan) -> Planner {
    let settings = PlannerSettings::from_plan(plan).expect("solver settings").with_budget(Some(32), Some(2));
    Planner::new(plan, PlannerSettings { gradient_steps: 2, ..settings }).expect("planner")
}

#[test]
fn solution_stays_within_action_bounds() {
    let plan = double_integrator();
    let scorer = Scorer::new(plan.clone(), vec![None; plan.contexts.len()]);
    let mut planner = planner(&plan);
    let solution = planner.solve(&scorer, &Exact { poison: false }, &[0.0, 0.0], 0.0).expect("solve");
    assert_eq!(solution.actions.len(), 20);
    for (k, a) in solution.actions.iter().enumerate() {
        assert!((-1.0..=1.0).contains(a), "action {k} is {a}, outside [-1, 1]");
    }
    assert!(solution.evaluation.total.is_finite(), "energy {}", solution.evaluation.total);
}

#[test]
fn planner_pushes_toward_target() {
    let plan = double_integrator();
    let scorer = Scorer::new(plan.clone(), vec![None; plan.contexts.len()]);
    let mut planner = planner(&plan);
    let at_rest = scorer.evaluate(0.0, &Exact { poison: false }.rollout(&[0.0, 0.0], &[0.0; 20], 1, 20, 0.1).unwrap(), &[0.0; 20]).total;
    let solution = planner.solve(&scorer, &Exact { poison: false }, &[0.0, 0.0], 0.0).expect("solve");
    assert!(solution.evaluation.total < at_rest, "planned energy {} is not below the energy at rest {at_rest}", solution.evaluation.total);
    assert!(solution.actions[0] > 0.0, "first action {} does not push toward the target", solution.actions[0]);
}

#[test]
fn shift_moves_warm_start_one_step() {
    let plan = double_integrator();
    let scorer = Scorer::new(plan.clone(), vec![None; plan.contexts.len()]);
    let mut planner = planner(&plan);
    let solution = planner.solve(&scorer, &Exact { poison: false }, &[0.0, 0.0], 0.0).expect("solve");
    planner.shift();
    assert_eq!(&planner.mean()[..19], &solution.actions[1..]);
    assert_eq!(planner.mean()[19], solution.actions[19]);
}

#[test]
fn non_finite_energy_falls_back_to_safe_stop() {
    let plan = double_integrator();
    let scorer = Scorer::new(plan.clone(), vec![None; plan.contexts.len()]);
    let mut planner = planner(&plan);
    let solution = planner.solve(&scorer, &Exact { poison: true }, &[0.0, 0.0], 0.0).expect("solve");
    assert_eq!(solution.status, SolverStatus::NonFiniteEnergy { fallback: Fallback::SafeStop });
    assert!(solution.actions.iter().all(|a| *a == 0.0), "safe stop actions {:?}", solution.actions);
}

#[test]
fn sampling_noise_comes_from_the_plan() {
    let plan = double_integrator();
    let settings = PlannerSettings::from_plan(&plan).expect("solver settings");
    assert_eq!(settings.noise, 1.0, "the example sets `noise: 1` on its mppi stage");
}

/// A solve without a warm start runs four times the plan's iterations; one after a solve,
/// and before a reset, runs the plan's own.
#[test]
fn cold_start_runs_more_iterations_than_warm_start() {
    let plan = double_integrator();
    let scorer = Scorer::new(plan.clone(), vec![None; plan.contexts.len()]);
    let mut planner = planner(&plan);
    let mut iterations = Vec::new();
    for reset in [false, false, true] {
        if reset {
            planner.reset();
        }
        iterations.push(planner.solve(&scorer, &Exact { poison: false }, &[0.0, 0.0], 0.0).expect("solve").iterations);
        planner.shift();
    }
    assert_eq!(iterations, vec![8, 2, 8]);
}

/// A trajectory that runs along a hard bound for 300 steps has margin 0, not the
/// `−τ ln 300` a smooth minimum over the steps would give.
#[test]
fn judged_margin_is_exact_along_a_bound() {
    let source = "use std.robots.double_integrator\nagent block = double_integrator {}\nconstraint cap { always block.velocity <= 2 m/s hard }\nplan { step: 100 ms, horizon: 1 s }\n";
    let db = Database::new();
    let file = db.add_file("cap.basin".to_string(), source.to_string());
    let (plan, diagnostics) = compile(&db, file, &CompileOptions::default());
    let plan = plan.unwrap_or_else(|| panic!("the spec does not compile: {diagnostics:?}"));
    let states: Vec<Vec<f64>> = (0..=300).map(|k| vec![0.2 * k as f64, 2.0]).collect();
    let actions = vec![vec![0.0]; 300];
    let params: Vec<f64> = plan.params.iter().map(|p| p.value.0).collect();
    let (_, robustness) = judge(&plan, &params, &[], &states, &actions).expect("judged");
    let margin = robustness[0].expect("the hard term has a robustness");
    assert!(margin.abs() < 1e-9, "margin {margin} along the bound");
    let faster: Vec<Vec<f64>> = states.iter().enumerate().map(|(k, s)| if k == 150 { vec![s[0], 2.03] } else { s.clone() }).collect();
    let (_, robustness) = judge(&plan, &params, &[], &faster, &actions).expect("judged");
    let margin = robustness[0].expect("the hard term has a robustness");
    assert!((margin + 0.03).abs() < 1e-9, "margin {margin} with one step 3 cm/s over");
}
