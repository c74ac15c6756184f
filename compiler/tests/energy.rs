//! Tests of the reference energy interpreter and its gradient: values worked out by hand,
//! gradients against central finite differences on every example and on random graphs, finite
//! gradients at kinks, and the non-finite status.

use std::path::{Path, PathBuf};

use basin_compiler::Database;
use basin_compiler::energy::{DistanceGrid, Evaluation, Gradient, Inputs, Shape, Signal, Status, differentiate, evaluate, evaluate_nodes, gradient};
use basin_compiler::plan::{
    AgentPlan, CompileOptions, Component, ContextPlan, DesignPlan, DesignVariable, Domain, Graph, HorizonPlan, Node, NodeId, Num, ParamPlan, Plan, Term, TermKind, compile,
};
use proptest::prelude::*;

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
    // Agents' states, then the outcomes of designs, as the energy layout orders them.
    let states: Vec<_> = plan.agents.iter().flat_map(|a| a.states.iter()).chain(plan.designs.iter().flat_map(|d| d.states.iter())).collect();
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
        if matches!(context.loader.as_str(), "image" | "map") {
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
    let width = plan.agents[0].states.len();
    for k in 0..=40 {
        decision.states[k * width] = 4.0;
        decision.states[k * width + 1] = 8.0;
    }
    let values = evaluate_nodes(&plan, &decision.inputs());
    let clearance = plan.terms.iter().find(|t| t.name == "safety.1").and_then(|t| t.robustness).expect("safety.1 robustness");
    // always over 41 equal values is the value minus τ · ln 41.
    let expected = 3.0 - 0.3 - 0.2 - 0.01 * 41f64.ln();
    assert_close(values[clearance as usize].at(0), expected, 1e-9, "clearance robustness");
}

/// Sums the term energies read from node values.
fn total_of(plan: &Plan, values: &[Signal]) -> f64 {
    plan.terms.iter().map(|t| values[t.energy as usize].at(0)).sum()
}

/// Whether `u` and `v` lie on different sides of 0 (a change to or from exactly 0 counts).
fn crosses_zero(u: f64, v: f64) -> bool {
    (u < 0.0) != (v < 0.0) || (u > 0.0) != (v > 0.0)
}

/// Which cell of a distance grid's axis a coordinate falls in, with the outside on either
/// side as cells of their own, so that a change of cell marks a kink of the lookup.
fn axis_cell(coordinate: f64, origin: f64, cell: f64, count: usize) -> i64 {
    let position = (coordinate - origin) / cell;
    if position < 0.0 {
        -1
    } else if position > (count - 1) as f64 {
        count as i64
    } else {
        position.floor() as i64
    }
}

/// Checks whether some node of the graph has a kink between the evaluations `below` and
/// `above`. Kinks are an `abs` or `min`/`max` whose operands change order, a `select` that
/// changes option, a distance lookup that changes cell, and an `atan2` that crosses its branch
/// cut. A finite difference across a kink measures no derivative, so such entries are skipped.
fn kink_between(plan: &Plan, fields: &[Option<DistanceGrid>], below: &[Signal], above: &[Signal]) -> bool {
    let steps = Shape::of(plan).steps;
    plan.graph.nodes.iter().any(|node| {
        (0..=steps).any(|k| {
            let lo = |id: u32| below[id as usize].at(k);
            let hi = |id: u32| above[id as usize].at(k);
            match node {
                Node::Abs { a } => crosses_zero(lo(*a), hi(*a)),
                Node::Min { a, b } | Node::Max { a, b } => crosses_zero(lo(*a) - lo(*b), hi(*a) - hi(*b)),
                Node::Select { index, .. } => lo(*index).round() != hi(*index).round(),
                Node::Atan2 { y, x } => crosses_zero(lo(*y), hi(*y)) && (lo(*x) <= 0.0 || hi(*x) <= 0.0),
                Node::Distance { context, x, y } => {
                    let grid = fields[*context as usize].as_ref().expect("distance field");
                    let column = |v: f64| axis_cell(v, grid.origin.0, grid.cell, grid.width);
                    let row = |v: f64| axis_cell(v, grid.origin.1, grid.cell, grid.height);
                    column(lo(*x)) != column(hi(*x)) || row(lo(*y)) != row(hi(*y))
                }
                _ => false,
            }
        })
    })
}

/// One decision entry: which buffer and where.
#[derive(Clone, Copy, Debug)]
enum Entry {
    State(usize),
    Action(usize),
    Design(usize),
}

impl Entry {
    fn slot(self, decision: &mut Decision) -> &mut f64 {
        match self {
            Entry::State(i) => &mut decision.states[i],
            Entry::Action(i) => &mut decision.actions[i],
            Entry::Design(i) => &mut decision.design[i],
        }
    }

    fn of(self, gradient: &Gradient) -> f64 {
        match self {
            Entry::State(i) => gradient.states[i],
            Entry::Action(i) => gradient.actions[i],
            Entry::Design(i) => gradient.design[i],
        }
    }
}

/// How a finite-difference comparison went.
#[derive(Debug, Default)]
struct Comparison {
    compared: usize,
    /// Entries skipped because the step crosses a kink.
    skipped: usize,
}

/// Compares the gradient at `decision` with central finite differences of the total energy.
///
/// Tolerance: `|g − fd| ≤ 1e-4 · max(|g|, |fd|) + 1e-6 · max(1, |E|)` with the step
/// `h = 1e-5 · max(1, |x|)`. The truncation error of a central difference is
/// `h² · |E‴| / 6`, and for log-sum-exp nodes `|E‴|` scales with `|E′| / τ²`, so for
/// `τ ≥ 0.01` the relative error is below `1e-10 · 1e4 / 6 ≈ 2e-7`, far inside `1e-4`. The
/// rounding error of the quotient is about `u · n · |E| / h` for unit roundoff
/// `u ≈ 1.1e-16` and `n` operations, which for `n` up to 1000 is `1e-8 · |E|`, 100 times
/// inside the absolute term.
///
/// Discrete design variables get no finite difference: their gradient must be exactly 0.
fn compare_with_finite_differences(plan: &Plan, decision: &Decision, what: &str) -> Comparison {
    let (evaluation, analytic) = gradient(plan, &decision.inputs());
    assert_eq!(evaluation.status, Status::Finite, "{what}: {evaluation:?}");
    assert_eq!(evaluation, evaluate(plan, &decision.inputs()), "{what}: the gradient's evaluation differs from evaluate");

    let discrete: Vec<bool> = plan.designs.iter().flat_map(|d| &d.variables).map(|v| matches!(v.domain, Domain::Discrete { .. })).collect();
    let mut entries: Vec<Entry> = (0..decision.states.len()).map(Entry::State).collect();
    entries.extend((0..decision.actions.len()).map(Entry::Action));
    entries.extend((0..decision.design.len()).filter(|&i| !discrete[i]).map(Entry::Design));
    for (i, _) in discrete.iter().enumerate().filter(|(_, d)| **d) {
        assert_eq!(analytic.design[i], 0.0, "{what}: discrete design variable {i}");
    }

    let mut comparison = Comparison::default();
    for entry in entries {
        let g = entry.of(&analytic);
        assert!(g.is_finite(), "{what}: {entry:?} has gradient {g}");

        let mut shifted = decision.clone();
        let x = *entry.slot(&mut shifted);
        let h = 1e-5 * x.abs().max(1.0);
        *entry.slot(&mut shifted) = x + h;
        let above = evaluate_nodes(plan, &shifted.inputs());
        *entry.slot(&mut shifted) = x - h;
        let below = evaluate_nodes(plan, &shifted.inputs());
        if kink_between(plan, &decision.fields, &below, &above) {
            comparison.skipped += 1;
            continue;
        }
        let fd = (total_of(plan, &above) - total_of(plan, &below)) / (2.0 * h);
        let tolerance = 1e-4 * g.abs().max(fd.abs()) + 1e-6 * evaluation.total.abs().max(1.0);
        assert!((g - fd).abs() <= tolerance, "{what}: {entry:?}: gradient {g}, finite difference {fd}, tolerance {tolerance}");
        comparison.compared += 1;
    }
    comparison
}

#[test]
fn example_gradients_match_finite_differences() {
    let mut random = Random(11);
    for name in example_names() {
        let plan = compile_example(&name);
        for trial in 0..3 {
            let decision = random_decision(&plan, &mut random);
            let comparison = compare_with_finite_differences(&plan, &decision, &format!("{name}, trial {trial}"));
            assert!(comparison.compared > 0, "{name}: {comparison:?}");
            assert!(comparison.skipped * 10 <= comparison.compared, "{name}: too many kinks skipped: {comparison:?}");
        }
    }
}

#[test]
fn always_gradient_is_softmin_weights() {
    let plan = compile_spec(&format!("{DOUBLE_INTEGRATOR}constraint c {{ always b.position >= 0 m hard }}\nplan {{ step: 1 s, horizon: 2 s }}\n"));
    let mut decision = Decision::zeros(&plan);
    let positions = [0.02, 0.05, 0.03];
    for (k, x) in positions.iter().enumerate() {
        decision.states[k * 2] = *x;
    }

    // E = W · softplus(−ρ) with ρ = softmin(x), so ∂E/∂x_j = −W · σ(−ρ / τ) · w_j with the
    // softmin weights w_j = exp(−x_j / τ) / Σ exp(−x_i / τ).
    let tau: f64 = 0.01;
    let sum: f64 = positions.iter().map(|x| (-x / tau).exp()).sum();
    let rho = -tau * sum.ln();
    let sigmoid = 1.0 / (1.0 + (rho / tau).exp());
    let (_, gradient) = gradient(&plan, &decision.inputs());
    for (k, x) in positions.iter().enumerate() {
        let expected = -1000.0 * sigmoid * (-x / tau).exp() / sum;
        assert_close(gradient.states[k * 2], expected, 1e-10, &format!("∂E/∂x_{k}"));
        assert_eq!(gradient.states[k * 2 + 1], 0.0, "∂E/∂v_{k}");
    }
}

#[test]
fn gradient_graph_text_is_reviewed() {
    let plan = compile_spec(&format!("{DOUBLE_INTEGRATOR}constraint c {{ always b.position >= 0 m hard }}\ngoal g {{ reach b.position -> 1 m }}\nplan {{ step: 1 s, horizon: 2 s }}\n"));
    insta::assert_snapshot!(differentiate(&plan).to_text(&plan));
}

#[test]
fn held_action_gradient_adds_into_last_row() {
    // The action at step H = 2 is row 1 held, so row 1 gets the adjoints of steps 1 and 2.
    let plan = compile_spec(&format!("{DOUBLE_INTEGRATOR}goal g {{ minimize b.acceleration * 1 s }}\nconstraint c {{ always b.acceleration <= 0.5 m/s^2 soft }}\nplan {{ step: 1 s, horizon: 2 s }}\n"));
    let mut decision = Decision::zeros(&plan);
    decision.actions.copy_from_slice(&[0.1, 0.2]);
    let comparison = compare_with_finite_differences(&plan, &decision, "held action");
    assert_eq!(comparison.compared, 2 * 3 + 2);
}

/// The gradient at a point where some derivative does not exist: every entry must be finite.
fn gradient_at_kink(spec: &str, set: impl Fn(&mut Decision)) -> Gradient {
    let plan = compile_spec(spec);
    let mut decision = Decision::zeros(&plan);
    set(&mut decision);
    let (evaluation, gradient) = gradient(&plan, &decision.inputs());
    assert_eq!(evaluation.status, Status::Finite, "{spec}: {evaluation:?}");
    for (i, g) in gradient.states.iter().chain(&gradient.actions).chain(&gradient.design).enumerate() {
        assert!(g.is_finite(), "{spec}: entry {i} is {g}");
    }
    gradient
}

#[test]
fn norm_gradient_at_target_is_zero() {
    let spec = format!("{DOUBLE_INTEGRATOR}goal g {{ reach b.position -> 1 m }}\nplan {{ step: 1 s, horizon: 2 s }}\n");
    let gradient = gradient_at_kink(&spec, |d| {
        for k in 0..3 {
            d.states[k * 2] = 1.0;
        }
    });
    for k in 0..3 {
        assert_eq!(gradient.states[k * 2], 0.0, "∂E/∂x_{k}");
    }
}

#[test]
fn abs_gradient_at_zero_is_zero() {
    let spec = format!("{DOUBLE_INTEGRATOR}goal g {{ minimize abs(b.velocity) }}\nplan {{ step: 1 s, horizon: 2 s }}\n");
    let gradient = gradient_at_kink(&spec, |_| {});
    assert_eq!(gradient.states, vec![0.0; 6]);
}

#[test]
fn max_tie_splits_gradient() {
    // E = (1/T) · Σ_{j<H} Δt · max(x_j, 1 m) with T = 2 s and Δt = 1 s; at the tie x_j = 1 m
    // each operand gets half, so ∂E/∂x_j = ½ · Δt / T for j < H.
    let spec = format!("{DOUBLE_INTEGRATOR}goal g {{ minimize max(b.position, 1 m) }}\nplan {{ step: 1 s, horizon: 2 s }}\n");
    let gradient = gradient_at_kink(&spec, |d| {
        for k in 0..3 {
            d.states[k * 2] = 1.0;
        }
    });
    assert_eq!(gradient.states[0], 0.25);
    assert_eq!(gradient.states[2], 0.25);
    assert_eq!(gradient.states[4], 0.0);
}

#[test]
fn sqrt_gradient_at_zero_is_zero() {
    let spec = format!("{DOUBLE_INTEGRATOR}goal g {{ minimize sqrt(b.position * b.position) }}\nplan {{ step: 1 s, horizon: 2 s }}\n");
    let gradient = gradient_at_kink(&spec, |_| {});
    assert_eq!(gradient.states, vec![0.0; 6]);
}

#[test]
fn atan2_gradient_at_origin_is_zero() {
    let spec = format!("{DOUBLE_INTEGRATOR}goal g {{ minimize atan2(b.position, b.velocity * 1 s) }}\nplan {{ step: 1 s, horizon: 2 s }}\n");
    let gradient = gradient_at_kink(&spec, |_| {});
    assert_eq!(gradient.states, vec![0.0; 6]);
}

/// On the negative `x` axis `atan2` is `π` whether `y` is `+0` or `-0` (the energy is a
/// function of real numbers; `spec/energy.md` gives the range `(−π, π]`), in the interpreter
/// and the JIT alike.
#[test]
fn atan2_of_negative_zero_is_pi() {
    let spec = format!("{DOUBLE_INTEGRATOR}goal g {{ minimize atan2(-1 * b.position, b.velocity * 1 s) }}\nplan {{ step: 1 s, horizon: 2 s }}\n");
    let plan = compile_spec(&spec);
    let mut decision = Decision::zeros(&plan);
    for k in 0..3 {
        decision.states[k * 2 + 1] = -1.0;
    }
    let interpreted = evaluate(&plan, &decision.inputs());
    let compiled = basin_compiler::jit::compile(&plan, basin_compiler::jit::Outputs::ALL).expect("compiles").evaluate(&decision.inputs());
    for (what, evaluation) in [("interpreter", &interpreted), ("jit", &compiled)] {
        assert_eq!(evaluation.status, Status::Finite, "{what}: {evaluation:?}");
        assert!(evaluation.terms[0] > 0.0, "{what}: atan2(-0, -1) gave {:?}, expected π per step", evaluation.terms);
    }
    assert_eq!(interpreted.terms, compiled.terms);
}

#[test]
fn select_index_gets_no_gradient() {
    let plan = compile_example("chair");
    let mut decision = random_decision(&plan, &mut Random(5));
    let material = plan.designs.iter().flat_map(|d| &d.variables).position(|v| matches!(v.domain, Domain::Discrete { .. })).expect("a discrete variable");
    for choice in [0.0, 0.5, 1.0] {
        decision.design[material] = choice;
        let (evaluation, gradient) = gradient(&plan, &decision.inputs());
        assert_eq!(evaluation.status, Status::Finite, "{evaluation:?}");
        assert_eq!(gradient.design[material], 0.0, "choice {choice}");
    }
}

#[test]
fn distance_gradient_finite_on_cell_border_and_outside() {
    let plan = compile_example("warehouse");
    let field = warehouse_field();
    for (x, y) in [(field.origin.0 + 100.0 * field.cell, 5.0), (-1.0, 3.0), (30.0, 25.0), (field.origin.0, field.origin.1)] {
        let mut decision = random_decision(&plan, &mut Random(9));
        let width = plan.agents[0].states.len();
        for k in 0..=40 {
            decision.states[k * width] = x;
            decision.states[k * width + 1] = y;
        }
        let (evaluation, gradient) = gradient(&plan, &decision.inputs());
        assert_eq!(evaluation.status, Status::Finite, "({x}, {y}): {evaluation:?}");
        for (i, g) in gradient.states.iter().enumerate() {
            assert!(g.is_finite(), "({x}, {y}): state entry {i} is {g}");
        }
    }
}

#[test]
fn nan_input_gradient_is_non_finite() {
    let plan = compile_example("double-integrator");
    let mut decision = random_decision(&plan, &mut Random(2));
    // The example's terms read states, not actions, since its actuator limit is a bound.
    decision.states[3] = f64::NAN;
    let (evaluation, _) = gradient(&plan, &decision.inputs());
    assert!(matches!(evaluation.status, Status::NonFinite { term: Some(_) }), "{evaluation:?}");
}

/// One step of a random graph recipe: an operation code and three numbers that pick its
/// operands and settings.
type RecipeStep = (u8, u32, u32, u32);

/// Number of operation codes that [`random_plan`] builds.
const OPERATIONS: u8 = 28;

/// Builds a plan over one agent (states `x`, `v`, action `u`), one design variable, two parameters and
/// one map context, whose graph is built from `recipe` on top of those leaves. Its terms read
/// the last node, a `sum` of the one before, and an `always` of one in the middle.
///
/// Operands that need a restricted domain get one by construction: a denominator or logarithm
/// reads a norm with `ε = 0.5`, `tan` and `exp` read a sine. Temporal windows start within 2
/// steps and end within 3 steps after that or at the horizon.
fn random_plan(steps: u32, recipe: &[RecipeStep]) -> Plan {
    let mut graph = Graph::default();
    let mut nodes: Vec<NodeId> = vec![
        graph.add(Node::State { agent: 0, component: 0 }),
        graph.add(Node::State { agent: 0, component: 1 }),
        graph.add(Node::Action { agent: 0, component: 0 }),
        graph.add(Node::Design { variable: 0 }),
        graph.add(Node::Param { index: 0 }),
        graph.add(Node::Time),
        graph.constant(0.5),
    ];
    let temperatures = [0.05, 0.2, 1.0];
    for &(operation, p, q, r) in recipe {
        let pick = |i: u32| nodes[i as usize % nodes.len()];
        let (a, b, c) = (pick(p), pick(q), pick(r));
        let temperature = Num::new(temperatures[(p ^ q) as usize % temperatures.len()]);
        let from = p % 3;
        let to = if q % 5 == 4 { u32::MAX } else { from + q % 4 };
        let wide = Num::new(0.5);
        let id = match operation % OPERATIONS {
            0 => graph.add(Node::Neg { a }),
            1 => graph.add(Node::Add { a, b }),
            2 => graph.add(Node::Sub { a, b }),
            3 => graph.add(Node::Mul { a, b }),
            4 => {
                let denominator = graph.add(Node::Norm { args: vec![b], epsilon: wide });
                graph.add(Node::Div { a, b: denominator })
            }
            5 => graph.add(Node::Powi { a, n: 1 + (r % 3) as i32 }),
            6 => graph.add(Node::Abs { a }),
            7 => {
                let length = graph.add(Node::Norm { args: vec![a, b], epsilon: Num::new(0.1) });
                graph.add(Node::Sqrt { a: length })
            }
            8 => graph.add(Node::Sin { a }),
            9 => graph.add(Node::Cos { a }),
            10 => {
                let sine = graph.add(Node::Sin { a });
                graph.add(Node::Tan { a: sine })
            }
            11 => graph.add(Node::Atan2 { y: a, x: b }),
            12 => {
                let sine = graph.add(Node::Sin { a });
                graph.add(Node::Exp { a: sine })
            }
            13 => {
                let length = graph.add(Node::Norm { args: vec![a], epsilon: wide });
                graph.add(Node::Log { a: length })
            }
            14 => graph.add(Node::Min { a, b }),
            15 => graph.add(Node::Max { a, b }),
            16 => graph.add(Node::SoftMin { args: vec![a, b, c], temperature }),
            17 => graph.add(Node::SoftMax { args: vec![a, b], temperature }),
            18 => graph.add(Node::SoftPlus { a, temperature }),
            19 => graph.add(Node::Sigmoid { a, temperature }),
            20 => graph.add(Node::Norm { args: vec![a, b, c], epsilon: Num::new(1e-6) }),
            21 => {
                let index = graph.add(Node::Param { index: 1 });
                graph.add(Node::Select { index, options: vec![a, b, c] })
            }
            22 => graph.add(Node::Distance { context: 0, x: a, y: b }),
            23 => graph.add(Node::Always { body: a, from, to, temperature }),
            24 => graph.add(Node::Eventually { body: a, from, to, temperature }),
            25 => graph.add(Node::Until { lhs: a, rhs: b, temperature }),
            26 => graph.add(Node::SumOver { body: a }),
            _ => graph.add(Node::Final { body: a }),
        };
        nodes.push(id);
    }

    let last = nodes[nodes.len() - 1];
    let before_last = nodes[nodes.len().saturating_sub(2)];
    let middle = nodes[nodes.len() / 2];
    let sum = graph.add(Node::SumOver { body: before_last });
    let always = graph.add(Node::Always { body: middle, from: 0, to: u32::MAX, temperature: Num::new(0.2) });
    let term = |id: u32, energy: NodeId| Term {
        id,
        name: format!("g.{}", id + 1),
        block: "g".into(),
        line: 1,
        source: String::new(),
        kind: TermKind::Minimize,
        hard: false,
        weight: Num::new(1.0),
        energy,
        robustness: None,
        phase: None,
    };
    let component = |name: &str| Component { name: name.into(), unit: "1".into(), lower: None, upper: None, initial: Some(Num::new(0.0)) };
    let step = 0.5;
    Plan {
        version: 1,
        source: "random.basin".into(),
        source_sha256: String::new(),
        contexts: vec![ContextPlan { name: "floor".into(), loader: "image".into(), path: "floor.png".into(), sha256: None, size: None, settings: Vec::new() }],
        agents: vec![AgentPlan { name: "a".into(), model: "test".into(), states: vec![component("x"), component("v")], actions: vec![component("u")] }],
        designs: vec![DesignPlan {
            name: "d".into(),
            model: "test".into(),
            variables: vec![DesignVariable { name: "d.w".into(), unit: "1".into(), domain: Domain::Continuous { lower: Num::new(-2.0), upper: Num::new(2.0) } }],
            states: Vec::new(),
        }],
        sites: Vec::new(),
        params: vec![
            ParamPlan { name: "p".into(), value: Num::new(0.7), unit: "1".into() },
            ParamPlan { name: "choice".into(), value: Num::new(1.0), unit: "1".into() },
        ],
        horizon: Some(HorizonPlan { step: Num::new(step), horizon: Num::new(step * steps as f64), steps, time_limit: None }),
        solver: Vec::new(),
        worlds: Vec::new(),
        terms: vec![term(0, last), term(1, sum), term(2, always)],
        graph,
        refinements: Vec::new(),
    }
}

/// Builds a 16 × 16 field of 0.3 m cells around the origin: the signed distance to one box.
fn small_field() -> DistanceGrid {
    let (width, height, cell, origin) = (16, 16, 0.3, (-2.25, -2.25));
    let mut values = Vec::with_capacity(width * height);
    for row in 0..height {
        for col in 0..width {
            let (x, y) = (origin.0 + col as f64 * cell, origin.1 + row as f64 * cell);
            values.push(box_distance(x, y, (0.3, -0.2), (0.5, 0.8)));
        }
    }
    DistanceGrid { width, height, cell, origin, values }
}

/// Decision values for [`random_plan`] from a list of numbers, reused cyclically.
fn decision_from(plan: &Plan, numbers: &[f64]) -> Decision {
    let mut decision = Decision::zeros(plan);
    let mut next = numbers.iter().cycle();
    for slot in decision.states.iter_mut().chain(decision.actions.iter_mut()).chain(decision.design.iter_mut()) {
        *slot = *next.next().expect("at least one number");
    }
    decision.time0 = 0.25;
    decision.fields = vec![Some(small_field())];
    decision
}

fn recipe_strategy() -> impl Strategy<Value = Vec<RecipeStep>> {
    prop::collection::vec((0..OPERATIONS, any::<u32>(), any::<u32>(), any::<u32>()), 1..24)
}

proptest! {
    #[test]
    fn random_graph_gradients_match_finite_differences(
        steps in 1u32..5,
        recipe in recipe_strategy(),
        numbers in prop::collection::vec(-2.0f64..2.0, 24),
    ) {
        let plan = random_plan(steps, &recipe);
        let decision = decision_from(&plan, &numbers);
        let evaluation = evaluate(&plan, &decision.inputs());
        // Deep products can overflow, and such a graph has no finite gradient to check.
        if evaluation.status == Status::Finite {
            compare_with_finite_differences(&plan, &decision, "random graph");
        } else {
            prop_assert!(!evaluation.total.is_finite() || evaluation.terms.iter().any(|e| !e.is_finite()), "{:?}", evaluation);
        }
    }

    #[test]
    fn random_graph_nan_state_is_non_finite(
        steps in 1u32..5,
        recipe in recipe_strategy(),
        numbers in prop::collection::vec(-2.0f64..2.0, 24),
        position in 0usize..64,
    ) {
        let plan = random_plan(steps, &recipe);
        let mut decision = decision_from(&plan, &numbers);
        let index = position % decision.states.len();
        decision.states[index] = f64::NAN;
        let evaluation = evaluate(&plan, &decision.inputs());
        prop_assert!(matches!(evaluation.status, Status::NonFinite { .. }), "{:?}", evaluation);
        let (with_gradient, _) = gradient(&plan, &decision.inputs());
        prop_assert!(matches!(with_gradient.status, Status::NonFinite { .. }), "{:?}", with_gradient);
    }
}

/// `minimize duration` without reach clauses counts the steps before the conditions first
/// hold, and nothing for steps after that where they fail again.
#[test]
fn duration_stops_at_the_first_arrival() {
    let plan = compile_spec(&format!("{DOUBLE_INTEGRATOR}goal g {{\n    eventually b.position >= 1 m\n    minimize duration\n}}\nplan {{ step: 1 s, horizon: 8 s }}\n"));
    let duration = plan.terms.iter().position(|t| t.source == "minimize duration").expect("a duration term");
    let run = |positions: [f64; 9]| {
        let mut decision = Decision::zeros(&plan);
        for (k, x) in positions.iter().enumerate() {
            decision.states[k * 2] = *x;
        }
        evaluate(&plan, &decision.inputs()).terms[duration]
    };
    // Arrives at step 3 and stays: steps 0, 1 and 2 count, 1 s each.
    let stays = run([0.0, 0.3, 0.6, 1.2, 1.5, 1.5, 1.5, 1.5, 1.5]);
    assert_close(stays, 3.0, 1e-6, "duration of a plan that arrives at step 3 and stays");
    // Arrives at step 3, leaves at steps 5 and 6: still 3 s.
    let wobbles = run([0.0, 0.3, 0.6, 1.2, 1.5, 0.5, 0.5, 1.5, 1.5]);
    assert_close(wobbles, 3.0, 1e-6, "duration of a plan that arrives at step 3 and wobbles out");
    // Never arrives within the 8 steps the sum covers.
    let never = run([0.0; 9]);
    assert_close(never, 8.0, 1e-6, "duration of a plan that never arrives");
}
