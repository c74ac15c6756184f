//! Differential tests of the cranelift JIT against the reference interpreter: every example
//! and random graphs must give the same energies, term energies, gradients and statuses.
//! Snapshot tests pin the generated Cranelift IR of small energies.
//!
//! Agreement means a relative difference of at most 1e-12, measured against the larger of
//! the two values. For gradient entries it is measured against the largest gradient entry or
//! the total energy when either is larger. A gradient entry is a sum of contributions that
//! the two backends add in different orders, so an entry that cancels to nearly 0 can differ
//! by a few ulps of the terms that cancelled.

use std::path::{Path, PathBuf};

use basin_compiler::Database;
use basin_compiler::energy::{self, DistanceGrid, Evaluation, Gradient, Inputs, Shape, Status};
use basin_compiler::jit::{self, Outputs};
use basin_compiler::plan::{
    AgentPlan, CompileOptions, Component, ContextPlan, DesignPlan, DesignVariable, Domain, Graph, HorizonPlan, Node, NodeId, Num, ParamPlan, Plan, Term,
    TermKind, compile,
};
use proptest::prelude::*;
use proptest::strategy::ValueTree;

const TOLERANCE: f64 = 1e-12;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn compile_in(name: &str, text: &str, base: Option<PathBuf>) -> Plan {
    let db = Database::new();
    let file = db.add_file(name, text);
    let (plan, diagnostics) = compile(&db, file, &CompileOptions { base_dir: base, allow_outside: false });
    let rendered = basin_compiler::diagnostics::render(name, text, &diagnostics, false);
    plan.unwrap_or_else(|| panic!("{name} did not compile:\n{rendered}"))
}

fn compile_spec(text: &str) -> Plan {
    compile_in("test.basin", text, None)
}

fn example_names() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(repo().join("examples"))
        .expect("examples folder")
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn compile_example(name: &str) -> Plan {
    let dir = repo().join("examples").join(name);
    let path = dir.join(format!("{name}.basin"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    compile_in(&format!("examples/{name}/{name}.basin"), &text, Some(dir))
}

/// A small deterministic generator (splitmix64), so that failures reproduce.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Returns a number in `[lo, hi)`.
    fn range(&mut self, lo: f64, hi: f64) -> f64 {
        let unit = (self.next() >> 11) as f64 / (1u64 << 53) as f64;
        lo + (hi - lo) * unit
    }
}

/// Owned inputs, lent as [`Inputs`].
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
    /// Random states, actions and design values of the plan's shape, the plan's parameter
    /// values, and a synthetic distance field for every context named `floor`.
    fn random(plan: &Plan, seed: u64) -> Decision {
        let shape = Shape::of(plan);
        let mut random = Random(seed);
        let states = (0..shape.state_len()).map(|_| random.range(1.0, 15.0)).collect();
        let actions = (0..shape.action_len()).map(|_| random.range(-1.5, 1.5)).collect();
        let design = plan
            .designs
            .iter()
            .flat_map(|d| &d.variables)
            .map(|v| match &v.domain {
                Domain::Continuous { lower, upper } => random.range(lower.0, upper.0),
                Domain::Discrete { choices } => (random.next() % choices.len() as u64) as f64,
            })
            .collect();
        let params = plan.params.iter().map(|p| p.value.0).collect();
        let fields = plan.contexts.iter().map(|c| matches!(c.loader.as_str(), "image" | "map").then(synthetic_floor)).collect();
        Decision { time0: random.range(0.0, 5.0), states, actions, design, params, fields }
    }

    fn inputs(&self) -> Inputs<'_> {
        Inputs { time0: self.time0, states: &self.states, actions: &self.actions, design: &self.design, params: &self.params, fields: &self.fields }
    }
}

/// Builds a 20 m × 20 m floor with 0.25 m cells: the signed distance to two round pillars and
/// the outer walls, positive in free space.
fn synthetic_floor() -> DistanceGrid {
    let (width, height, cell, origin) = (81, 81, 0.25, (0.0, 0.0));
    let mut values = Vec::with_capacity(width * height);
    for row in 0..height {
        for col in 0..width {
            let (x, y) = (origin.0 + col as f64 * cell, origin.1 + row as f64 * cell);
            let walls = x.min(y).min(20.0 - x).min(20.0 - y);
            let pillar_a = ((x - 7.0).powi(2) + (y - 10.0).powi(2)).sqrt() - 1.5;
            let pillar_b = ((x - 13.0).powi(2) + (y - 6.0).powi(2)).sqrt() - 1.0;
            values.push(walls.min(pillar_a).min(pillar_b));
        }
    }
    DistanceGrid { width, height, cell, origin, values }
}

/// Returns whether `got` and `expected` agree to [`TOLERANCE`], relative to the larger of the
/// two and of `scale`.
fn agree(got: f64, expected: f64, scale: f64) -> bool {
    if got == expected || (got.is_nan() && expected.is_nan()) {
        return true;
    }
    (got - expected).abs() <= TOLERANCE * got.abs().max(expected.abs()).max(scale)
}

fn largest(values: &[f64]) -> f64 {
    values.iter().fold(0.0f64, |m, v| m.max(v.abs()))
}

fn assert_evaluations_agree(jit: &Evaluation, reference: &Evaluation, what: &str) {
    assert_eq!(jit.status, reference.status, "{what}: status\n jit {jit:?}\n interpreter {reference:?}");
    assert!(agree(jit.total, reference.total, 0.0), "{what}: total: jit {}, interpreter {}", jit.total, reference.total);
    assert_eq!(jit.terms.len(), reference.terms.len(), "{what}: term count");
    for (i, (a, b)) in jit.terms.iter().zip(&reference.terms).enumerate() {
        assert!(agree(*a, *b, 0.0), "{what}: term {i}: jit {a}, interpreter {b}");
    }
}

/// Asserts that two gradients agree, with `energy` (the total) as a lower bound of the scale
/// that entries near 0 are measured against.
fn assert_gradients_agree(jit: &Gradient, reference: &Gradient, energy: f64, what: &str) {
    let scale = largest(&reference.states).max(largest(&reference.actions)).max(largest(&reference.design)).max(energy.abs());
    for (name, a, b) in [("states", &jit.states, &reference.states), ("actions", &jit.actions, &reference.actions), ("design", &jit.design, &reference.design)] {
        assert_eq!(a.len(), b.len(), "{what}: gradient of {name}: length");
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            assert!(agree(*x, *y, scale), "{what}: gradient of {name}[{i}]: jit {x}, interpreter {y} (scale {scale})");
        }
    }
}

/// Compares the JIT with the interpreter on one input: energy with term energies, and the
/// gradient, each from its own compiled variant.
fn check_against_interpreter(plan: &Plan, decision: &Decision, what: &str) {
    let inputs = decision.inputs();
    let reference = energy::evaluate(plan, &inputs);
    let (reference_with_gradient, reference_gradient) = energy::gradient(plan, &inputs);

    let terms_only = jit::compile(plan, Outputs { terms: true, gradient: false }).expect("compiles");
    assert_evaluations_agree(&terms_only.evaluate(&inputs), &reference, &format!("{what}, terms"));

    let all = jit::compile(plan, Outputs::ALL).expect("compiles");
    let (evaluation, gradient) = all.gradient(&inputs);
    assert_evaluations_agree(&evaluation, &reference_with_gradient, &format!("{what}, gradient"));
    if reference_with_gradient.status == Status::Finite {
        assert_gradients_agree(&gradient, &reference_gradient, reference_with_gradient.total, what);
    }

    let energy_only = jit::compile(plan, Outputs::ENERGY).expect("compiles");
    let total = energy_only.evaluate(&inputs).total;
    assert!(agree(total, reference.total, 0.0), "{what}, energy only: jit {total}, interpreter {}", reference.total);
}

#[test]
fn examples_agree_with_interpreter() {
    let names = example_names();
    assert!(names.len() >= 4, "found examples {names:?}");
    for name in names {
        let plan = compile_example(&name);
        for seed in 0..5 {
            let decision = Decision::random(&plan, seed);
            check_against_interpreter(&plan, &decision, &format!("example {name}, seed {seed}"));
        }
    }
}

#[test]
fn examples_have_finite_gradients() {
    // Guards the differential test above against comparing only non-finite results.
    for name in example_names() {
        let plan = compile_example(&name);
        let decision = Decision::random(&plan, 7);
        let (evaluation, gradient) = jit::compile(&plan, Outputs::ALL).expect("compiles").gradient(&decision.inputs());
        assert_eq!(evaluation.status, Status::Finite, "example {name}: {evaluation:?}");
        let nonzero = gradient.states.iter().chain(&gradient.actions).chain(&gradient.design).filter(|g| **g != 0.0).count();
        assert!(nonzero > 0, "example {name}: the gradient is all zeros");
    }
}

#[test]
fn warehouse_active_phase_agrees() {
    // Phase 1 switches the first reach off and the second on, through `select`.
    let plan = compile_example("warehouse");
    let phase = plan.params.iter().position(|p| p.name == "deliver.phase").expect("phase parameter");
    for value in [1.0, 0.4, 0.5, 7.0, -3.0] {
        let mut decision = Decision::random(&plan, 3);
        decision.params[phase] = value;
        check_against_interpreter(&plan, &decision, &format!("warehouse, phase {value}"));
    }
}

const DOUBLE_INTEGRATOR: &str = "use std.robots.double_integrator\nagent b = double_integrator {}\n";

/// Specs that exercise one construct each, over short horizons.
const CONSTRUCTS: &[&str] = &[
    "constraint c { always within [1 s, 2 s] b.velocity <= 2 m/s hard }\ngoal g { minimize abs(b.position) }\nplan { step: 0.5 s, horizon: 3 s }\n",
    "goal g { eventually b.position >= 3 m soft weight 5 }\nplan { step: 1 s, horizon: 4 s }\n",
    "goal g { b.velocity <= 1 m/s until b.position >= 2 m\n always b.position >= 0 m and b.position <= 5 m or b.velocity == 0 m/s }\nplan { step: 1 s, horizon: 5 s }\n",
    "goal g { eventually b.position >= 1 m then eventually b.position <= 0 m }\nplan { step: 1 s, horizon: 6 s }\n",
    "goal g { reach b.position -> 4 m within 1 cm\n finish_by 10 s\n maximize b.velocity soft weight 0.5 }\nplan { step: 1 s, horizon: 2 s, time_limit: 30 s }\n",
    "goal g { eventually within [7 s, 9 s] b.position >= 1 m }\nplan { step: 1 s, horizon: 4 s }\n",
    "goal g { minimize b.position * b.position / 1 m + sqrt(abs(b.position) * 1 m) }\nplan { step: 0.25 s, horizon: 2 s }\n",
];

#[test]
fn constructs_agree_with_interpreter() {
    for (i, spec) in CONSTRUCTS.iter().enumerate() {
        let plan = compile_spec(&format!("{DOUBLE_INTEGRATOR}{spec}"));
        for seed in 0..4 {
            let mut decision = Decision::random(&plan, seed);
            // Positions and velocities near the thresholds, so that no smoothing saturates.
            for (j, x) in decision.states.iter_mut().enumerate() {
                *x = Random(seed * 1000 + j as u64).range(-1.0, 4.0);
            }
            check_against_interpreter(&plan, &decision, &format!("construct {i}, seed {seed}"));
        }
    }
}

#[test]
fn non_finite_state_gives_non_finite_status() {
    let plan = compile_example("warehouse");
    let compiled = jit::compile(&plan, Outputs::ALL).expect("compiles");
    for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        let mut decision = Decision::random(&plan, 1);
        decision.states[5] = bad;
        let (evaluation, _) = compiled.gradient(&decision.inputs());
        assert!(matches!(evaluation.status, Status::NonFinite { .. }), "state {bad}: {evaluation:?}");
        assert_eq!(evaluation.status, energy::evaluate(&plan, &decision.inputs()).status, "state {bad}");
    }
}

#[test]
fn non_finite_unread_input_gives_non_finite_status() {
    let plan = compile_spec(&format!("{DOUBLE_INTEGRATOR}goal g {{ minimize abs(b.velocity) }}\nplan {{ step: 1 s, horizon: 2 s }}\n"));
    let compiled = jit::compile(&plan, Outputs::ALL).expect("compiles");
    let mut decision = Decision::random(&plan, 2);
    decision.actions[0] = f64::INFINITY;
    let (evaluation, _) = compiled.gradient(&decision.inputs());
    assert!(evaluation.total.is_finite(), "{evaluation:?}");
    assert_eq!(evaluation.status, Status::NonFinite { term: None });
}

#[test]
fn non_finite_time_gives_non_finite_status() {
    let plan = compile_example("warehouse");
    let compiled = jit::compile(&plan, Outputs::ALL).expect("compiles");
    let mut decision = Decision::random(&plan, 4);
    decision.time0 = f64::NAN;
    let (evaluation, _) = compiled.gradient(&decision.inputs());
    assert_eq!(evaluation.status, energy::gradient(&plan, &decision.inputs()).0.status);
    assert!(matches!(evaluation.status, Status::NonFinite { term: Some(_) }), "{evaluation:?}");
}

#[test]
fn workspace_reuse_overwrites_gradient() {
    let plan = compile_example("warehouse");
    let compiled = jit::compile(&plan, Outputs::ALL).expect("compiles");
    let decision = Decision::random(&plan, 5);
    let mut workspace = compiled.workspace();
    let first = compiled.run(&decision.inputs(), &mut workspace);
    let gradient = workspace.gradient.clone();
    let second = compiled.run(&decision.inputs(), &mut workspace);
    assert_eq!(first, second);
    assert_eq!(workspace.gradient, gradient);
}

#[test]
fn one_compiled_energy_serves_threads() {
    let plan = compile_example("warehouse");
    let compiled = jit::compile(&plan, Outputs::ALL).expect("compiles");
    let decisions: Vec<Decision> = (0..4).map(|seed| Decision::random(&plan, seed)).collect();
    let alone: Vec<(Evaluation, Gradient)> = decisions.iter().map(|d| compiled.gradient(&d.inputs())).collect();
    let together: Vec<(Evaluation, Gradient)> = std::thread::scope(|scope| {
        let handles: Vec<_> = decisions.iter().map(|d| scope.spawn(|| compiled.gradient(&d.inputs()))).collect();
        handles.into_iter().map(|h| h.join().expect("thread")).collect()
    });
    assert_eq!(alone, together);
}

#[test]
#[should_panic(expected = "distance field of context `floor`")]
fn missing_distance_field_panics() {
    let plan = compile_example("warehouse");
    let compiled = jit::compile(&plan, Outputs::ENERGY).expect("compiles");
    let mut decision = Decision::random(&plan, 0);
    decision.fields = vec![None; plan.contexts.len()];
    compiled.evaluate(&decision.inputs());
}

#[test]
#[should_panic(expected = "Inputs::states has 3 values")]
fn short_state_buffer_panics() {
    let plan = compile_example("warehouse");
    let compiled = jit::compile(&plan, Outputs::ENERGY).expect("compiles");
    let mut decision = Decision::random(&plan, 0);
    decision.states.truncate(3);
    compiled.evaluate(&decision.inputs());
}

#[test]
#[should_panic(expected = "compiled without its gradient")]
fn gradient_of_energy_only_function_panics() {
    let plan = compile_example("double-integrator");
    let compiled = jit::compile(&plan, Outputs::ENERGY).expect("compiles");
    compiled.gradient(&Decision::random(&plan, 0).inputs());
}

// ---- snapshots of the generated IR ----

#[test]
fn clif_minimize_abs_two_steps() {
    let plan = compile_spec(&format!("{DOUBLE_INTEGRATOR}goal g {{ minimize abs(b.position) }}\nplan {{ step: 1 s, horizon: 2 s }}\n"));
    insta::assert_snapshot!("minimize_abs_energy", jit::clif(&plan, Outputs::ENERGY).expect("builds"));
    insta::assert_snapshot!("minimize_abs_gradient", jit::clif(&plan, Outputs::ALL).expect("builds"));
}

#[test]
fn clif_always_three_steps() {
    let plan = compile_spec(&format!("{DOUBLE_INTEGRATOR}constraint c {{ always b.velocity <= 2 m/s hard }}\nplan {{ step: 1 s, horizon: 3 s }}\n"));
    insta::assert_snapshot!("always_gradient", jit::clif(&plan, Outputs::GRADIENT).expect("builds"));
}

#[test]
fn clif_design_problem() {
    let plan = compile_spec(
        "use std.materials.{abs_plastic, aluminum_6061, material}\nmodel beam { param height: m\n param stuff: material\n signal mass: kg = stuff.density * height * 1 m^2 }\ndesign d = beam { height: 1 cm ..= 5 cm, stuff: abs_plastic | aluminum_6061 }\ngoal g { minimize d.mass }\n",
    );
    insta::assert_snapshot!("design_gradient", jit::clif(&plan, Outputs::ALL).expect("builds"));
}

// ---- random graphs ----

/// One step of a random graph: a node kind and choices of operands and settings.
#[derive(Clone, Debug)]
struct Op {
    kind: u8,
    operands: [u16; 3],
    /// Prefer operands among the last few nodes, which makes deep graphs.
    recent: bool,
    small: i8,
    from: u8,
    to: u8,
}

fn op_strategy() -> impl Strategy<Value = Op> {
    (any::<u8>(), any::<[u16; 3]>(), any::<bool>(), any::<i8>(), any::<u8>(), any::<u8>())
        .prop_map(|(kind, operands, recent, small, from, to)| Op { kind, operands, recent, small, from, to })
}

/// Builds a random plan: one agent with two states and one action, two design variables,
/// three parameters, one map context, and a graph built from `ops` over those leaves.
fn random_plan(ops: &[Op], steps: u32, term_picks: &[u16]) -> Plan {
    let mut graph = Graph::default();
    let mut ids: Vec<NodeId> = Vec::new();
    for leaf in [
        Node::State { agent: 0, component: 0 },
        Node::State { agent: 0, component: 1 },
        Node::Action { agent: 0, component: 0 },
        Node::Design { variable: 0 },
        Node::Design { variable: 1 },
        Node::Param { index: 0 },
        Node::Param { index: 1 },
        Node::Time,
        Node::Const { value: Num::new(0.5) },
        Node::Const { value: Num::new(-1.25) },
    ] {
        ids.push(graph.add(leaf));
    }
    let temperatures = [0.01, 0.1, 1.0];
    for op in ops {
        let pick = |i: usize| -> NodeId {
            let raw = op.operands[i] as usize;
            if op.recent { ids[ids.len() - 1 - raw % ids.len().min(6)] } else { ids[raw % ids.len()] }
        };
        let tau = Num::new(temperatures[op.from as usize % 3]);
        let (a, b, c) = (pick(0), pick(1), pick(2));
        let window_end = |to: u8| if to.is_multiple_of(4) { u32::MAX } else { (to % 8) as u32 };
        let node = match op.kind % 29 {
            0 => Node::Neg { a },
            1 => Node::Add { a, b },
            2 => Node::Sub { a, b },
            3 => Node::Mul { a, b },
            4 => Node::Div { a, b },
            5 => Node::Powi { a, n: (op.small % 5) as i32 },
            6 => Node::Abs { a },
            7 => Node::Sqrt { a },
            8 => Node::Sin { a },
            9 => Node::Cos { a },
            10 => Node::Tan { a },
            11 => Node::Atan2 { y: a, x: b },
            12 => Node::Exp { a },
            13 => Node::Log { a },
            14 => Node::Min { a, b },
            15 => Node::Max { a, b },
            16 => Node::SoftMin { args: vec![a, b, c][..2 + op.to as usize % 2].to_vec(), temperature: tau },
            17 => Node::SoftMax { args: vec![a, b, c][..2 + op.to as usize % 2].to_vec(), temperature: tau },
            18 => Node::SoftPlus { a, temperature: tau },
            19 => Node::Sigmoid { a, temperature: tau },
            20 => Node::Norm { args: vec![a, b, c][..1 + op.to as usize % 3].to_vec(), epsilon: Num::new(1e-6) },
            21 => Node::Select { index: ids[5 + op.to as usize % 2], options: vec![a, b, c][..2 + op.small as usize % 2].to_vec() },
            22 => Node::Distance { context: 0, x: a, y: b },
            23 => Node::Always { body: a, from: (op.small as u8 % 4) as u32, to: window_end(op.to), temperature: tau },
            24 => Node::Eventually { body: a, from: (op.small as u8 % 4) as u32, to: window_end(op.to), temperature: tau },
            25 => Node::Until { lhs: a, rhs: b, temperature: tau },
            26 => Node::SumOver { body: a },
            27 => Node::Final { body: a },
            _ => Node::Mul { a, b: ids[8] },
        };
        ids.push(graph.add(node));
    }

    let terms: Vec<Term> = term_picks
        .iter()
        .enumerate()
        .map(|(i, &pick)| {
            // The last node always, then nodes among the last ten.
            let back = if i == 0 { 0 } else { pick as usize % ids.len().min(10) };
            let energy = ids[ids.len() - 1 - back];
            Term {
                id: i as u32,
                name: format!("g.{}", i + 1),
                block: "g".into(),
                line: 1,
                source: String::new(),
                kind: TermKind::Minimize,
                hard: false,
                weight: Num::new(1.0),
                energy,
                robustness: None,
                phase: None,
            }
        })
        .collect();

    let component = |name: &str| Component { name: name.into(), unit: "m".into(), lower: None, upper: None, initial: None };
    let variable = |name: &str| DesignVariable { name: name.into(), unit: "m".into(), domain: Domain::Continuous { lower: Num::new(0.2), upper: Num::new(2.0) } };
    let param = |name: &str, value: f64| ParamPlan { name: name.into(), value: Num::new(value), unit: "".into() };
    Plan {
        version: 1,
        source: "random.basin".into(),
        source_sha256: String::new(),
        contexts: vec![ContextPlan { name: "floor".into(), loader: "image".into(), path: "floor.png".into(), sha256: None, size: None, settings: Vec::new() }],
        agents: vec![AgentPlan { name: "r".into(), model: "test".into(), states: vec![component("x"), component("y")], actions: vec![component("u")] }],
        designs: vec![DesignPlan { name: "d".into(), model: "test".into(), variables: vec![variable("d.a"), variable("d.b")], states: Vec::new() }],
        sites: Vec::new(),
        params: vec![param("p0", 0.7), param("p1", 1.6), param("p2", 3.0)],
        horizon: (steps > 0).then(|| HorizonPlan { step: Num::new(0.25), horizon: Num::new(0.25 * steps as f64), steps, time_limit: None }),
        solver: Vec::new(),
        worlds: Vec::new(),
        terms,
        graph,
        refinements: Vec::new(),
    }
}

fn random_decision(plan: &Plan, seed: u64) -> Decision {
    let mut decision = Decision::random(plan, seed);
    let mut random = Random(seed ^ 0x5eed);
    for x in decision.states.iter_mut().chain(decision.actions.iter_mut()) {
        *x = random.range(-2.0, 22.0);
    }
    // Parameters 0 and 1 serve as select indices; they land on and between options.
    decision.params = vec![random.range(-0.5, 2.5), (random.next() % 3) as f64, random.range(0.5, 1.5)];
    decision
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_graphs_agree_with_interpreter(
        ops in prop::collection::vec(op_strategy(), 1..24),
        steps in prop::sample::select(vec![0u32, 1, 2, 3, 5, 8]),
        term_picks in prop::collection::vec(any::<u16>(), 1..4),
        seed in any::<u64>(),
    ) {
        let plan = random_plan(&ops, steps, &term_picks);
        let decision = random_decision(&plan, seed);
        check_against_interpreter(&plan, &decision, "random graph");
    }
}

#[test]
fn random_graphs_are_mostly_finite() {
    // The differential test compares values only where the interpreter's result is finite;
    // this keeps that share from silently dropping to nothing.
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let mut finite = 0;
    let total = 200;
    for _ in 0..total {
        let ops = prop::collection::vec(op_strategy(), 1..24).new_tree(&mut runner).expect("generates").current();
        let plan = random_plan(&ops, 3, &[1, 2]);
        let decision = random_decision(&plan, ops.len() as u64);
        if energy::gradient(&plan, &decision.inputs()).0.status == Status::Finite {
            finite += 1;
        }
    }
    assert!(finite * 4 >= total, "only {finite} of {total} random graphs have a finite energy and gradient");
}
