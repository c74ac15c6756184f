//! Tests of the reference energy interpreter: values worked out by hand, every example, and
//! the non-finite status.

use std::path::{Path, PathBuf};

use basin_compiler::Database;
use basin_compiler::energy::{DistanceGrid, Evaluation, Inputs, Shape, Status, evaluate, evaluate_nodes};
use basin_compiler::plan::{CompileOptions, Domain, Plan, compile};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Compiles a spec given as text, panicking with the diagnostics if it does not compile.
fn compile_spec(text: &str) -> Plan {
    compile_in("test.basin", text, None)
}

fn compile_in(name: &str, text: &str, base: Option<PathBuf>) -> Plan {
    let db = Database::new();
    let file = db.add_file(name, text);
    let (plan, diagnostics) = compile(&db, file, &CompileOptions { base_dir: base, allow_outside: false });
    let rendered = basin_compiler::diagnostics::render(name, text, &diagnostics, false);
    plan.unwrap_or_else(|| panic!("{name} did not compile:\n{rendered}"))
}

fn compile_example(name: &str) -> Plan {
    let dir = repo().join("examples").join(name);
    let path = dir.join(format!("{name}.basin"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    compile_in(&format!("examples/{name}/{name}.basin"), &text, Some(dir))
}

/// Owned decision buffers, with [`Decision::inputs`] lending them as [`Inputs`].
#[derive(Clone, Debug)]
struct Decision {
    time0: f64,
    states: Vec<f64>,
    actions: Vec<f64>,
    design: Vec<f64>,
    params: Vec<f64>,
    fields: Vec<Option<DistanceGrid>>,
}

impl Decision {
    /// Zero states, actions and design, the plan's parameter values, and no fields.
    fn zeros(plan: &Plan) -> Decision {
        let shape = Shape::of(plan);
        Decision {
            time0: 0.0,
            states: vec![0.0; shape.state_len()],
            actions: vec![0.0; shape.action_len()],
            design: vec![0.0; shape.n_design],
            params: plan.params.iter().map(|p| p.value.0).collect(),
            fields: vec![None; plan.contexts.len()],
        }
    }

    fn inputs(&self) -> Inputs<'_> {
        Inputs { time0: self.time0, states: &self.states, actions: &self.actions, design: &self.design, params: &self.params, fields: &self.fields }
    }
}

/// A small deterministic generator (SplitMix64), so failures reproduce.
struct Random(u64);

impl Random {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A uniform number in `[lo, hi)`.
    fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Signed distance in metres from `(x, y)` to an axis-aligned box given by its centre and
/// half sizes: negative inside.
fn box_distance(x: f64, y: f64, centre: (f64, f64), half: (f64, f64)) -> f64 {
    let qx = (x - centre.0).abs() - half.0;
    let qy = (y - centre.1).abs() - half.1;
    let outside = qx.max(0.0).hypot(qy.max(0.0));
    let inside = qx.max(qy).min(0.0);
    outside + inside
}

/// A synthetic distance field the size of the warehouse floor (500 × 400 cells of 5 cm, so
/// 25 m × 20 m): the distance to the outer walls and to three shelf boxes, at cell centres.
fn warehouse_field() -> DistanceGrid {
    let (width, height, cell) = (500, 400, 0.05);
    let origin = (cell / 2.0, cell / 2.0);
    let shelves = [((8.0, 8.0), (1.0, 4.0)), ((16.0, 8.0), (1.0, 4.0)), ((12.0, 15.0), (5.0, 0.5))];
    let mut values = Vec::with_capacity(width * height);
    for row in 0..height {
        for col in 0..width {
            let (x, y) = (origin.0 + col as f64 * cell, origin.1 + row as f64 * cell);
            let walls = x.min(25.0 - x).min(y).min(20.0 - y);
            let nearest_shelf = shelves.iter().map(|&(c, h)| box_distance(x, y, c, h)).fold(f64::INFINITY, f64::min);
            values.push(walls.min(nearest_shelf));
        }
    }
    DistanceGrid { width, height, cell, origin, values }
}

/// Random states, actions and continuous design values within bounds (or within ±2 where a
/// component is unbounded), the plan's parameters, and the synthetic field for every context
/// named `floor`.
fn random_decision(plan: &Plan, random: &mut Random) -> Decision {
    let mut decision = Decision::zeros(plan);
    decision.time0 = random.uniform(0.0, 5.0);
    let range = |lower: Option<f64>, upper: Option<f64>| (lower.unwrap_or(-2.0), upper.unwrap_or(2.0));
    let states: Vec<_> = plan.agents.iter().flat_map(|a| a.states.iter()).collect();
    for (i, value) in decision.states.iter_mut().enumerate() {
        let component = states[i % states.len()];
        let (lo, hi) = range(component.lower.map(|v| v.0), component.upper.map(|v| v.0));
        *value = random.uniform(lo, hi);
    }
    let actions: Vec<_> = plan.agents.iter().flat_map(|a| a.actions.iter()).collect();
    for (i, value) in decision.actions.iter_mut().enumerate() {
        let component = actions[i % actions.len()];
        let (lo, hi) = range(component.lower.map(|v| v.0), component.upper.map(|v| v.0));
        *value = random.uniform(lo, hi);
    }
    let variables: Vec<_> = plan.designs.iter().flat_map(|d| d.variables.iter()).collect();
    for (value, variable) in decision.design.iter_mut().zip(variables) {
        *value = match &variable.domain {
            Domain::Continuous { lower, upper } => random.uniform(lower.0, upper.0),
            Domain::Discrete { choices } => (random.next_u64() % choices.len() as u64) as f64,
        };
    }
    for (field, context) in decision.fields.iter_mut().zip(&plan.contexts) {
        if context.name == "floor" {
            *field = Some(warehouse_field());
        }
    }
    decision
}

/// Names of the examples, each compiled from `examples/NAME/NAME.basin`.
fn example_names() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(repo().join("examples"))
        .expect("examples folder")
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert!(names.len() >= 4, "found examples {names:?}");
    names
}

fn softplus(a: f64, tau: f64) -> f64 {
    tau * (1.0 + (a / tau).exp()).ln()
}

fn assert_close(got: f64, expected: f64, tolerance: f64, what: &str) {
    assert!((got - expected).abs() <= tolerance, "{what}: got {got}, expected {expected} (tolerance {tolerance})");
}

const DOUBLE_INTEGRATOR: &str = "use std.robots.double_integrator\nagent b = double_integrator {}\n";

#[test]
fn always_over_three_steps_is_softmin() {
    let plan = compile_spec(&format!("{DOUBLE_INTEGRATOR}constraint c {{ always b.position >= 0 m hard }}\nplan {{ step: 1 s, horizon: 2 s }}\n"));
    let mut decision = Decision::zeros(&plan);
    let positions = [0.02, 0.05, 0.03];
    for (k, x) in positions.iter().enumerate() {
        decision.states[k * 2] = *x;
    }

    let tau = 0.01;
    let softmin = -tau * ((-0.02f64 / tau).exp() + (-0.05f64 / tau).exp() + (-0.03f64 / tau).exp()).ln();
    let values = evaluate_nodes(&plan, &decision.inputs());
    let term = &plan.terms[0];
    assert_close(values[term.robustness.unwrap() as usize].at(0), softmin, 1e-15, "robustness");

    let evaluation = evaluate(&plan, &decision.inputs());
    assert_close(evaluation.terms[0], 1000.0 * softplus(-softmin, tau), 1e-12, "energy");
    assert_eq!(evaluation.total, evaluation.terms[0]);
    assert_eq!(evaluation.status, Status::Finite);
}

#[test]
fn reach_energy_on_straight_line() {
    let plan = compile_spec(&format!("{DOUBLE_INTEGRATOR}goal g {{ reach b.position -> 4 m within 10 cm }}\nplan {{ step: 0.5 s, horizon: 2 s }}\n"));
    let mut decision = Decision::zeros(&plan);
    // x_k = k metres for k = 0..=4, so the path ends on the target.
    for k in 0..=4 {
        decision.states[k * 2] = k as f64;
    }

    let (tau, epsilon, radius, step, horizon) = (0.01, 1e-6, 0.1, 0.5, 2.0);
    let gap = |x: f64| ((x - 4.0f64).powi(2) + epsilon * epsilon).sqrt() - radius;
    let along: f64 = (0..4).map(|k| step * softplus(gap(k as f64), tau)).sum();
    let expected = along / horizon + softplus(gap(4.0), tau);

    let evaluation = evaluate(&plan, &decision.inputs());
    assert_close(evaluation.terms[0], expected, 1e-12, "reach energy");
    // Most of it is the mean gap along the way, (3.9 + 2.9 + 1.9 + 0.9) / 4 m.
    assert_close(evaluation.terms[0], 2.4, 1e-5, "reach energy, rounded");
}

#[test]
fn until_matches_formula() {
    let plan = compile_spec(&format!("{DOUBLE_INTEGRATOR}goal g {{ b.velocity <= 1 m/s until b.position >= 2 m }}\nplan {{ step: 1 s, horizon: 2 s }}\n"));
    let mut decision = Decision::zeros(&plan);
    let positions = [1.97, 1.99, 2.01];
    let velocities = [0.99, 0.98, 1.02];
    for k in 0..3 {
        decision.states[k * 2] = positions[k];
        decision.states[k * 2 + 1] = velocities[k];
    }

    let tau: f64 = 0.01;
    let lhs: Vec<f64> = velocities.iter().map(|v| 1.0 - v).collect();
    let rhs: Vec<f64> = positions.iter().map(|x| x - 2.0).collect();
    // m(0, j) = softmin(r_j, l_0, …, l_{j−1}), spelled out.
    let softmin = |xs: &[f64]| -tau * xs.iter().map(|x| (-x / tau).exp()).sum::<f64>().ln();
    let inner = [softmin(&[rhs[0]]), softmin(&[rhs[1], lhs[0]]), softmin(&[rhs[2], lhs[0], lhs[1]])];
    let expected = tau * inner.iter().map(|m| (m / tau).exp()).sum::<f64>().ln();

    let values = evaluate_nodes(&plan, &decision.inputs());
    let robustness = values[plan.terms[0].robustness.unwrap() as usize].at(0);
    assert_close(robustness, expected, 1e-14, "until robustness");
}

#[test]
fn window_after_horizon_reads_last_step() {
    // The window [3 s, 4 s] starts after the 2 s horizon, so it reads step H alone.
    let plan = compile_spec(&format!("{DOUBLE_INTEGRATOR}goal g {{ eventually within [3 s, 4 s] b.position >= 1 m }}\nplan {{ step: 1 s, horizon: 2 s }}\n"));
    let mut decision = Decision::zeros(&plan);
    decision.states[2 * 2] = 1.3;
    let values = evaluate_nodes(&plan, &decision.inputs());
    let robustness = values[plan.terms[0].robustness.unwrap() as usize].at(0);
    assert_close(robustness, 0.3, 1e-12, "robustness of an empty window");
}

#[test]
fn inactive_phase_has_zero_energy() {
    let plan = compile_spec(&format!("{DOUBLE_INTEGRATOR}goal g {{ reach b.position -> 1 m\n then reach b.position -> 2 m }}\nplan {{ step: 1 s, horizon: 2 s }}\n"));
    let decision = Decision::zeros(&plan);
    let evaluation = evaluate(&plan, &decision.inputs());
    assert!(evaluation.terms[0] > 0.5, "{evaluation:?}");
    assert_eq!(evaluation.terms[1], 0.0, "{evaluation:?}");
}

#[test]
fn nan_state_is_non_finite() {
    let plan = compile_spec(&format!("{DOUBLE_INTEGRATOR}goal g {{ minimize abs(b.velocity) }}\nconstraint c {{ always b.position >= 0 m hard }}\nplan {{ step: 1 s, horizon: 2 s }}\n"));
    let mut decision = Decision::zeros(&plan);
    decision.states[2 * 2] = f64::NAN;
    let evaluation = evaluate(&plan, &decision.inputs());
    assert_eq!(evaluation.status, Status::NonFinite { term: Some(1) }, "{evaluation:?}");
    assert!(evaluation.terms[0].is_finite());
}

#[test]
fn unread_nan_input_is_non_finite() {
    let plan = compile_spec(&format!("{DOUBLE_INTEGRATOR}goal g {{ minimize abs(b.velocity) }}\nplan {{ step: 1 s, horizon: 2 s }}\n"));
    let mut decision = Decision::zeros(&plan);
    // The action is read by no term.
    decision.actions[0] = f64::INFINITY;
    let evaluation = evaluate(&plan, &decision.inputs());
    assert!(evaluation.total.is_finite());
    assert_eq!(evaluation.status, Status::NonFinite { term: None }, "{evaluation:?}");
}

#[test]
fn overflowing_result_is_non_finite() {
    let plan = compile_spec(&format!("{DOUBLE_INTEGRATOR}goal g {{ minimize exp(b.position / 1 m) }}\nplan {{ step: 1 s, horizon: 2 s }}\n"));
    let mut decision = Decision::zeros(&plan);
    decision.states[0] = 800.0;
    let evaluation: Evaluation = evaluate(&plan, &decision.inputs());
    assert_eq!(evaluation.status, Status::NonFinite { term: Some(0) }, "{evaluation:?}");
}

#[test]
fn examples_evaluate_to_finite_energy() {
    let mut random = Random(7);
    for name in example_names() {
        let plan = compile_example(&name);
        let decision = random_decision(&plan, &mut random);
        let evaluation = evaluate(&plan, &decision.inputs());
        assert_eq!(evaluation.status, Status::Finite, "{name}: {evaluation:?}");
        assert_eq!(evaluation.terms.len(), plan.terms.len(), "{name}");
        assert_eq!(evaluation.total, evaluation.terms.iter().sum::<f64>(), "{name}");
    }
}

#[test]
fn warehouse_clearance_reads_field() {
    let plan = compile_example("warehouse");
    let mut decision = random_decision(&plan, &mut Random(3));
    // Every step at (4 m, 8 m), 3 m left of the first shelf (x from 7 m to 9 m). The field
    // is linear in x there, so bilinear interpolation is exact. The robustness is that 3 m
    // less the robot's 0.3 m radius and the 0.2 m margin.
    for k in 0..=40 {
        decision.states[k * 3] = 4.0;
        decision.states[k * 3 + 1] = 8.0;
    }
    let values = evaluate_nodes(&plan, &decision.inputs());
    let clearance = plan.terms.iter().find(|t| t.name == "safety.1").and_then(|t| t.robustness).expect("safety.1 robustness");
    // always over 41 equal values is the value minus τ · ln 41.
    let expected = 3.0 - 0.3 - 0.2 - 0.01 * 41f64.ln();
    assert_close(values[clearance as usize].at(0), expected, 1e-9, "clearance robustness");
}
