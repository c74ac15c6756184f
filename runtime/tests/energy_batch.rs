//! Differential tests of the batched tensor energy against the reference interpreter: every
//! example plan and random graphs, the finiteness flag, and a gradient through candle's
//! autograd.
//!
//! Decisions are drawn in `f64`, rounded to `f32`, and the rounded values go to both
//! backends, so the comparison measures only the `f32` arithmetic of the batched backend.

use std::path::{Path, PathBuf};

use basin_compiler::Database;
use basin_compiler::energy::{DistanceGrid, Inputs, Shape, Status, evaluate, gradient};
use basin_compiler::plan::{
    AgentPlan, CompileOptions, Component, ContextPlan, DesignPlan, DesignVariable, Domain, Graph, HorizonPlan, Node, NodeId, Num, ParamPlan, Plan, Term, TermKind, compile,
};
use basin_runtime::energy::{BatchEnergy, BatchEvaluation, BatchInputs};
use candle_core::{Device, Tensor, Var};
use proptest::prelude::*;

/// Relative tolerance between the `f32` backend and the `f64` interpreter.
const RELATIVE: f64 = 1e-5;

/// Energies below this magnitude are compared with the absolute tolerance
/// `RELATIVE · ENERGY_FLOOR = 1e-5`. The tail of a satisfied constraint,
/// `W · τ · exp(−ρ / τ)`, can be any small number, and there the `f32` rounding of `ρ` is
/// amplified by `1 / τ = 100` in relative terms, so a relative bound alone is not meaningful.
const ENERGY_FLOOR: f64 = 1.0;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn compile_example(name: &str) -> Plan {
    let dir = repo().join("examples").join(name);
    let path = dir.join(format!("{name}.basin"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let db = Database::new();
    let file = db.add_file(&format!("examples/{name}/{name}.basin"), &text);
    let (plan, diagnostics) = compile(&db, file, &CompileOptions { base_dir: Some(dir), allow_outside: false });
    plan.unwrap_or_else(|| panic!("example {name} did not compile: {diagnostics:?}"))
}

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

/// SplitMix64, so failures reproduce from the seed.
struct Random(u64);

impl Random {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A uniform number in `[lo, hi)`, rounded to `f32`.
    fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        let unit = (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        (lo + (hi - lo) * unit) as f32 as f64
    }
}

/// A synthetic 25 m × 20 m floor of 10 cm cells: the distance to the outer walls and to two
/// round pillars of radius 1 m at (8, 6) and (15, 12).
fn floor_field() -> DistanceGrid {
    let (width, height, cell) = (250, 200, 0.1);
    let origin = (0.05, 0.05);
    let mut values = Vec::with_capacity(width * height);
    for row in 0..height {
        for col in 0..width {
            let (x, y) = (origin.0 + col as f64 * cell, origin.1 + row as f64 * cell);
            let walls = x.min(25.0 - x).min(y).min(20.0 - y);
            let pillars = [(8.0, 6.0), (15.0, 12.0)].iter().map(|&(cx, cy): &(f64, f64)| (x - cx).hypot(y - cy) - 1.0).fold(f64::INFINITY, f64::min);
            values.push(walls.min(pillars));
        }
    }
    DistanceGrid { width, height, cell, origin, values }
}

/// One sample's decision buffers in the interpreter's layout.
#[derive(Clone, Debug)]
struct Decision {
    states: Vec<f64>,
    actions: Vec<f64>,
    design: Vec<f64>,
}

/// Random decisions within the declared bounds (±2 where unbounded, ±25 m for positions
/// of agents on a map).
fn random_decision(plan: &Plan, random: &mut Random) -> Decision {
    let shape = Shape::of(plan);
    let range = |c: &Component| (c.lower.map_or(-2.0, |v| v.0), c.upper.map_or(2.0, |v| v.0));
    // Agents' states, then the outcomes of designs, as the energy layout orders them.
    let states: Vec<&Component> = plan.agents.iter().flat_map(|a| a.states.iter()).chain(plan.designs.iter().flat_map(|d| d.states.iter())).collect();
    let on_map = !plan.contexts.is_empty();
    let state_values = (0..shape.state_len())
        .map(|i| {
            let component = states[i % states.len()];
            match component.name.as_str() {
                "x" if on_map => random.uniform(1.0, 24.0),
                "y" if on_map => random.uniform(1.0, 19.0),
                _ => {
                    let (lo, hi) = range(component);
                    random.uniform(lo, hi)
                }
            }
        })
        .collect();
    let actions: Vec<&Component> = plan.agents.iter().flat_map(|a| a.actions.iter()).collect();
    let action_values = (0..shape.action_len())
        .map(|i| {
            let (lo, hi) = range(actions[i % actions.len()]);
            random.uniform(lo, hi)
        })
        .collect();
    let design = plan
        .designs
        .iter()
        .flat_map(|d| d.variables.iter())
        .map(|v| match &v.domain {
            Domain::Continuous { lower, upper } => random.uniform(lower.0, upper.0),
            Domain::Discrete { choices } => (random.next_u64() % choices.len() as u64) as f64,
        })
        .collect();
    Decision { states: state_values, actions: action_values, design }
}

/// The map fields of a plan: the synthetic floor for every image or grid-map context.
fn fields_of(plan: &Plan) -> Vec<Option<DistanceGrid>> {
    plan.contexts.iter().map(|c| matches!(c.loader.as_str(), "image" | "map").then(floor_field)).collect()
}

fn params_of(plan: &Plan) -> Vec<f64> {
    plan.params.iter().map(|p| p.value.0 as f32 as f64).collect()
}

/// Stacks decisions into the batched input tensors `(states, actions, design)`.
fn batch_tensors(shape: Shape, decisions: &[Decision], device: &Device) -> (Tensor, Tensor, Tensor) {
    let n = decisions.len();
    let flat = |pick: fn(&Decision) -> &Vec<f64>| decisions.iter().flat_map(|d| pick(d).iter().map(|&v| v as f32)).collect::<Vec<f32>>();
    let states = Tensor::from_vec(flat(|d| &d.states), (n, shape.steps + 1, shape.n_states), device).unwrap();
    let actions = Tensor::from_vec(flat(|d| &d.actions), (n, shape.steps.max(1), shape.n_actions), device).unwrap();
    let design = Tensor::from_vec(flat(|d| &d.design), (n, shape.n_design), device).unwrap();
    (states, actions, design)
}

/// Evaluates `decisions` in one batch.
fn evaluate_batch(plan: &Plan, fields: &[Option<DistanceGrid>], params: &[f64], time0: f64, decisions: &[Decision]) -> BatchEvaluation {
    let device = Device::Cpu;
    let energy = BatchEnergy::new(plan, fields, &device).expect("plan translates");
    let (states, actions, design) = batch_tensors(energy.shape(), decisions, &device);
    let params: Vec<f32> = params.iter().map(|&p| p as f32).collect();
    let params = Tensor::from_vec(params.clone(), params.len(), &device).unwrap();
    energy.evaluate(&BatchInputs { states: &states, actions: &actions, design: &design, params: &params, time0 }).expect("batch evaluates")
}

fn interpreter_inputs<'a>(decision: &'a Decision, params: &'a [f64], fields: &'a [Option<DistanceGrid>], time0: f64) -> Inputs<'a> {
    Inputs { time0, states: &decision.states, actions: &decision.actions, design: &decision.design, params, fields }
}

/// Asserts that the batch agrees with the interpreter on every sample: the same finiteness
/// and, where finite, every term and the total within `tolerance(expected, sample)`.
fn assert_batch_matches(plan: &Plan, fields: &[Option<DistanceGrid>], params: &[f64], time0: f64, decisions: &[Decision], what: &str, tolerance: impl Fn(f64, usize) -> f64) {
    let batch = evaluate_batch(plan, fields, params, time0, decisions);
    let terms = batch.terms.to_vec2::<f32>().unwrap();
    let totals = batch.total.to_vec1::<f32>().unwrap();
    let flags = batch.finite_flags().unwrap();
    for (i, decision) in decisions.iter().enumerate() {
        let expected = evaluate(plan, &interpreter_inputs(decision, params, fields, time0));
        let expected_finite = expected.status == Status::Finite;
        assert_eq!(flags[i], expected_finite, "{what}, sample {i}: finite flag {}, interpreter {:?}, batch terms {:?}", flags[i], expected, terms[i]);
        if !expected_finite {
            continue;
        }
        for (term, (&got, &want)) in terms[i].iter().zip(&expected.terms).enumerate() {
            // A term's weight multiplies the `f32` rounding of the times and positions it
            // reads, which reach 64 s or 64 m in these examples (the grid map is 80 m wide).
            let rounding = plan.terms[term].weight.0 * f64::from(f32::EPSILON) * 64.0;
            let allowed = tolerance(want, i) + rounding;
            let error = (got as f64 - want).abs();
            assert!(error <= allowed, "{what}, sample {i}, term {} ({}): batch {got}, interpreter {want}, error {error:e} > {allowed:e}", term, plan.terms[term].name);
        }
        let allowed = tolerance(expected.total, i);
        let error = (totals[i] as f64 - expected.total).abs();
        assert!(error <= allowed, "{what}, sample {i}, total: batch {}, interpreter {}, error {error:e} > {allowed:e}", totals[i], expected.total);
    }
}

fn energy_tolerance(expected: f64) -> f64 {
    RELATIVE * expected.abs().max(ENERGY_FLOOR)
}

#[test]
fn examples_match_interpreter() {
    for name in example_names() {
        let plan = compile_example(&name);
        let fields = fields_of(&plan);
        let params = params_of(&plan);
        let mut random = Random(11);
        let decisions: Vec<Decision> = (0..16).map(|_| random_decision(&plan, &mut random)).collect();
        assert_batch_matches(&plan, &fields, &params, 1.5, &decisions, &name, |expected, _| energy_tolerance(expected));
    }
}

#[test]
fn example_flags_nan_sample_only() {
    for name in example_names() {
        let plan = compile_example(&name);
        let fields = fields_of(&plan);
        let params = params_of(&plan);
        let mut random = Random(5);
        let mut decisions: Vec<Decision> = (0..4).map(|_| random_decision(&plan, &mut random)).collect();
        let sample = &mut decisions[2];
        if sample.states.is_empty() {
            sample.design[0] = f64::NAN;
        } else {
            sample.states[0] = f64::NAN;
        }
        let batch = evaluate_batch(&plan, &fields, &params, 0.0, &decisions);
        assert_eq!(batch.finite_flags().unwrap(), vec![true, true, false, true], "{name}");
    }
}

#[test]
fn infinite_action_flags_sample() {
    let plan = compile_example("double-integrator");
    let params = params_of(&plan);
    let mut random = Random(8);
    let mut decisions: Vec<Decision> = (0..3).map(|_| random_decision(&plan, &mut random)).collect();
    decisions[0].actions[7] = f64::INFINITY;
    let batch = evaluate_batch(&plan, &[], &params, 0.0, &decisions);
    assert_eq!(batch.finite_flags().unwrap(), vec![false, true, true]);
}

#[test]
fn nan_parameter_flags_every_sample() {
    let plan = compile_example("warehouse");
    let fields = fields_of(&plan);
    let mut params = params_of(&plan);
    params[0] = f64::NAN;
    let mut random = Random(9);
    let decisions: Vec<Decision> = (0..3).map(|_| random_decision(&plan, &mut random)).collect();
    let batch = evaluate_batch(&plan, &fields, &params, 0.0, &decisions);
    assert_eq!(batch.finite_flags().unwrap(), vec![false, false, false]);
}

#[test]
fn wrong_input_shape_is_rejected() {
    let plan = compile_example("double-integrator");
    let device = Device::Cpu;
    let energy = BatchEnergy::new(&plan, &[], &device).unwrap();
    let shape = energy.shape();
    let states = Tensor::zeros((2, shape.steps, shape.n_states), candle_core::DType::F32, &device).unwrap();
    let actions = Tensor::zeros((2, shape.steps, shape.n_actions), candle_core::DType::F32, &device).unwrap();
    let design = Tensor::zeros((2, 0), candle_core::DType::F32, &device).unwrap();
    let params = Tensor::zeros(shape.n_params, candle_core::DType::F32, &device).unwrap();
    let error = energy.evaluate(&BatchInputs { states: &states, actions: &actions, design: &design, params: &params, time0: 0.0 }).unwrap_err();
    assert!(error.to_string().contains("states input must have shape"), "{error}");
}

#[test]
fn missing_field_is_rejected() {
    let plan = compile_example("warehouse");
    let error = BatchEnergy::new(&plan, &vec![None; plan.contexts.len()], &Device::Cpu).unwrap_err();
    assert!(error.to_string().contains("distance field of context `floor`"), "{error}");
}

/// Backpropagates the summed total energy of a batch through candle's autograd and compares
/// the gradient of every sample with the interpreter's.
fn assert_gradient_matches(name: &str) {
    let plan = compile_example(name);
    let fields = fields_of(&plan);
    let params = params_of(&plan);
    let mut random = Random(21);
    let decisions: Vec<Decision> = (0..4).map(|_| random_decision(&plan, &mut random)).collect();
    let device = Device::Cpu;
    let energy = BatchEnergy::new(&plan, &fields, &device).unwrap();
    let (states, actions, design) = batch_tensors(energy.shape(), &decisions, &device);
    let (states, actions, design) = (Var::from_tensor(&states).unwrap(), Var::from_tensor(&actions).unwrap(), Var::from_tensor(&design).unwrap());
    let params_f32: Vec<f32> = params.iter().map(|&p| p as f32).collect();
    let params_tensor = Tensor::from_vec(params_f32, params.len(), &device).unwrap();
    let time0 = 0.5;
    let batch = energy.evaluate(&BatchInputs { states: states.as_tensor(), actions: actions.as_tensor(), design: design.as_tensor(), params: &params_tensor, time0 }).unwrap();
    let grads = batch.total.sum_all().unwrap().backward().unwrap();
    let per_sample = |var: &Var| -> Vec<Vec<f32>> {
        match grads.get(var.as_tensor()) {
            Some(g) => g.flatten_from(1).unwrap().to_vec2::<f32>().unwrap(),
            None => vec![vec![0.0; var.as_tensor().elem_count() / decisions.len()]; decisions.len()],
        }
    };
    let (got_states, got_actions, got_design) = (per_sample(&states), per_sample(&actions), per_sample(&design));

    for (i, decision) in decisions.iter().enumerate() {
        let (evaluation, expected) = gradient(&plan, &interpreter_inputs(decision, &params, &fields, time0));
        assert_eq!(evaluation.status, Status::Finite, "{name}, sample {i}");
        let buffers = [("states", &got_states[i], &expected.states), ("actions", &got_actions[i], &expected.actions), ("design", &got_design[i], &expected.design)];
        for (buffer, got, want) in buffers {
            assert_eq!(got.len(), want.len(), "{name}, {buffer}");
            let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs()));
            for (j, (&g, &w)) in got.iter().zip(want).enumerate() {
                // Relative to the largest entry, because a gradient entry is a sum of
                // contributions of both signs and can cancel to near 0.
                let allowed = 1e-4 * scale.max(1.0);
                assert!((g as f64 - w).abs() <= allowed, "{name}, sample {i}, d total / d {buffer}[{j}]: batch {g}, interpreter {w}, allowed {allowed:e}");
            }
        }
    }
}

#[test]
fn warehouse_gradient_matches_interpreter() {
    assert_gradient_matches("warehouse");
}

#[test]
fn double_integrator_gradient_matches_interpreter() {
    assert_gradient_matches("double-integrator");
}

#[test]
fn chair_gradient_matches_interpreter() {
    assert_gradient_matches("chair");
}

/// A gradient at kinks is finite and follows the spec's conventions: `|a|` at 0 and `√a` at 0
/// have derivative 0, and `max` splits a tie.
#[test]
fn kink_gradients_follow_conventions() {
    let x = Var::new(&[[0.0f32, 1.0]], &Device::Cpu).unwrap();
    let mut graph = Graph::default();
    let state = graph.add(Node::State { agent: 0, component: 0 });
    let absolute = graph.add(Node::Abs { a: state });
    let root = graph.add(Node::Sqrt { a: absolute });
    let one = graph.constant(1.0);
    let tie = graph.add(Node::Max { a: state, b: one });
    let plan = plan_with(graph, 1, vec![root, tie]);
    let energy = BatchEnergy::new(&plan, &[Some(test_field())], &Device::Cpu).unwrap();
    let states = x.as_tensor().reshape((1, 2, 1)).unwrap().broadcast_as((1, 2, 2)).unwrap().contiguous().unwrap();
    let actions = Tensor::zeros((1, 1, 1), candle_core::DType::F32, &Device::Cpu).unwrap();
    let design = Tensor::zeros((1, 1), candle_core::DType::F32, &Device::Cpu).unwrap();
    let params = Tensor::new(&[0.7f32, 1.0], &Device::Cpu).unwrap();
    let batch = energy.evaluate(&BatchInputs { states: &states, actions: &actions, design: &design, params: &params, time0: 0.0 }).unwrap();
    let grads = batch.total.sum_all().unwrap().backward().unwrap();
    let g = grads.get(x.as_tensor()).unwrap().to_vec2::<f32>().unwrap();
    // Step 0 has x = 0: √|x| and max(x, 1) both read it. The terms read step 0 only.
    assert_eq!(g[0][0], 0.0, "derivative of √|x| + max(x, 1) at x = 0 is 0 by the conventions");
    assert_eq!(g[0][1], 0.0, "step 1 does not reach the energy");
}

#[test]
fn max_tie_splits_gradient() {
    let x = Var::new(&[[1.0f32, 1.0]], &Device::Cpu).unwrap();
    let mut graph = Graph::default();
    let state = graph.add(Node::State { agent: 0, component: 0 });
    let one = graph.constant(1.0);
    let tie = graph.add(Node::Max { a: state, b: one });
    let plan = plan_with(graph, 1, vec![tie]);
    let energy = BatchEnergy::new(&plan, &[Some(test_field())], &Device::Cpu).unwrap();
    let states = x.as_tensor().reshape((1, 2, 1)).unwrap().broadcast_as((1, 2, 2)).unwrap().contiguous().unwrap();
    let actions = Tensor::zeros((1, 1, 1), candle_core::DType::F32, &Device::Cpu).unwrap();
    let design = Tensor::zeros((1, 1), candle_core::DType::F32, &Device::Cpu).unwrap();
    let params = Tensor::new(&[0.7f32, 1.0], &Device::Cpu).unwrap();
    let batch = energy.evaluate(&BatchInputs { states: &states, actions: &actions, design: &design, params: &params, time0: 0.0 }).unwrap();
    let grads = batch.total.sum_all().unwrap().backward().unwrap();
    let g = grads.get(x.as_tensor()).unwrap().to_vec2::<f32>().unwrap();
    // The state column is broadcast into both state components, and only component 0 is read.
    assert_eq!(g[0][0], 0.5);
}

/// Builds a plan over one agent (states `x`, `v`, action `u`), one design variable, two
/// parameters (`p` = 0.7 and `choice` = 1) and one map context, with `roots` as the energies
/// of its terms.
fn plan_with(graph: Graph, steps: u32, roots: Vec<NodeId>) -> Plan {
    let term = |id: usize, energy: NodeId| Term {
        id: id as u32,
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
    let step = 0.25;
    Plan {
        version: 1,
        source: "random.basin".into(),
        source_sha256: String::new(),
        contexts: vec![ContextPlan { name: "map".into(), loader: "image".into(), path: "map.png".into(), sha256: None, size: None, settings: Vec::new() }],
        agents: vec![AgentPlan { name: "a".into(), model: "test".into(), states: vec![component("x"), component("v")], actions: vec![component("u")] }],
        designs: vec![DesignPlan {
            name: "d".into(),
            model: "test".into(),
            variables: vec![DesignVariable { name: "d.w".into(), unit: "1".into(), domain: Domain::Continuous { lower: Num::new(-2.0), upper: Num::new(2.0) } }],
            states: Vec::new(),
        }],
        sites: Vec::new(),
        params: vec![ParamPlan { name: "p".into(), value: Num::new(0.7), unit: "1".into() }, ParamPlan { name: "choice".into(), value: Num::new(1.0), unit: "1".into() }],
        horizon: Some(HorizonPlan { step: Num::new(step), horizon: Num::new(step * steps as f64), steps, time_limit: None }),
        solver: Vec::new(),
        worlds: Vec::new(),
        terms: roots.into_iter().enumerate().map(|(i, r)| term(i, r)).collect(),
        graph,
        refinements: Vec::new(),
    }
}

/// A 12 × 10 field of 0.4 m cells from (−2.2, −1.8): the distance to a disc of radius 0.6 m
/// at (0.4, 0.2).
fn test_field() -> DistanceGrid {
    let (width, height, cell, origin) = (12, 10, 0.4, (-2.2, -1.8));
    let mut values = Vec::with_capacity(width * height);
    for row in 0..height {
        for col in 0..width {
            let (x, y): (f64, f64) = (origin.0 + col as f64 * cell, origin.1 + row as f64 * cell);
            values.push((x - 0.4).hypot(y - 0.2) - 0.6);
        }
    }
    DistanceGrid { width, height, cell, origin, values }
}

/// One step of a random graph: an operation code and three numbers that pick its operands
/// and settings.
type RecipeStep = (u8, u32, u32, u32);

const OPERATIONS: u8 = 28;

/// Builds a random graph on top of the leaves of [`plan_with`]. Operands that need a
/// restricted domain get one by construction: a denominator or a logarithm reads a norm with
/// `ε = 0.5`, and `tan` and `exp` read a sine. The terms read the last node, a `sum` of the one
/// before and an `always` of one in the middle.
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
        let safe = |graph: &mut Graph, x: NodeId| graph.add(Node::Norm { args: vec![x], epsilon: Num::new(0.5) });
        let id = match operation % OPERATIONS {
            0 => graph.add(Node::Neg { a }),
            1 => graph.add(Node::Add { a, b }),
            2 => graph.add(Node::Sub { a, b }),
            3 => graph.add(Node::Mul { a, b }),
            4 => {
                let denominator = safe(&mut graph, b);
                graph.add(Node::Div { a, b: denominator })
            }
            5 => graph.add(Node::Powi { a, n: [1, 2, 3, -1][(r % 4) as usize] }),
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
                let length = safe(&mut graph, a);
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
    let before_last = nodes[nodes.len() - 2];
    let middle = nodes[nodes.len() / 2];
    let sum = graph.add(Node::SumOver { body: before_last });
    let always = graph.add(Node::Always { body: middle, from: 0, to: u32::MAX, temperature: Num::new(0.2) });
    plan_with(graph, steps, vec![last, sum, always])
}

/// Decisions for [`random_plan`] from a list of numbers, reused cyclically per sample.
fn decisions_from(plan: &Plan, numbers: &[f64], samples: usize) -> Vec<Decision> {
    let shape = Shape::of(plan);
    (0..samples)
        .map(|s| {
            let mut next = numbers.iter().cycle().skip(s * 7).map(|&v| v as f32 as f64);
            let mut take = |n: usize| (0..n).map(|_| next.next().expect("numbers")).collect::<Vec<f64>>();
            Decision { states: take(shape.state_len()), actions: take(shape.action_len()), design: take(shape.n_design) }
        })
        .collect()
}

/// How far the interpreter's energies move when every input moves by a relative `2⁻²⁰`
/// (about 16 `f32` roundings): the error that `f32` rounding inside an ill-conditioned graph
/// (cancellation, a branch cut of `atan2`, a `select` index near a half) can cause. Returns
/// the largest change over a few random perturbations, per term and for the total.
fn sensitivity(plan: &Plan, decision: &Decision, params: &[f64], fields: &[Option<DistanceGrid>], time0: f64) -> f64 {
    let base = evaluate(plan, &interpreter_inputs(decision, params, fields, time0));
    let mut random = Random(99);
    let mut largest = 0.0f64;
    for _ in 0..6 {
        let mut jiggle = |values: &[f64]| values.iter().map(|v| v * (1.0 + random.uniform(-1.0, 1.0) * 2f64.powi(-20))).collect::<Vec<f64>>();
        let moved = Decision { states: jiggle(&decision.states), actions: jiggle(&decision.actions), design: jiggle(&decision.design) };
        let moved_params = jiggle(params);
        let other = evaluate(plan, &interpreter_inputs(&moved, &moved_params, fields, time0));
        for (a, b) in base.terms.iter().zip(&other.terms).chain([(&base.total, &other.total)]) {
            let change = (a - b).abs();
            largest = largest.max(if change.is_nan() { f64::INFINITY } else { change });
        }
    }
    largest
}

fn recipe_strategy() -> impl Strategy<Value = Vec<RecipeStep>> {
    prop::collection::vec((0..OPERATIONS, any::<u32>(), any::<u32>(), any::<u32>()), 1..24)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// Random graphs agree with the interpreter to `1e-5` relative, with an absolute floor of
    /// `1e-5` (values near 0 of graphs whose leaves are of order 1), widened by the measured
    /// sensitivity of ill-conditioned graphs.
    #[test]
    fn random_graphs_match_interpreter(
        steps in 1u32..6,
        recipe in recipe_strategy(),
        numbers in prop::collection::vec(-2.0f64..2.0, 32),
    ) {
        let plan = random_plan(steps, &recipe);
        let fields = vec![Some(test_field())];
        let params = vec![0.7f32 as f64, 1.0];
        let decisions = decisions_from(&plan, &numbers, 3);
        let widening: Vec<f64> = decisions.iter().map(|d| sensitivity(&plan, d, &params, &fields, 0.25)).collect();
        assert_batch_matches(&plan, &fields, &params, 0.25, &decisions, "random graph", |expected, sample| {
            RELATIVE * expected.abs().max(1.0) + 4.0 * widening[sample]
        });
    }

    #[test]
    fn random_graph_nan_state_is_flagged(
        steps in 1u32..6,
        recipe in recipe_strategy(),
        numbers in prop::collection::vec(-2.0f64..2.0, 32),
        position in 0usize..64,
    ) {
        let plan = random_plan(steps, &recipe);
        let fields = vec![Some(test_field())];
        let params = vec![0.7, 1.0];
        let mut decisions = decisions_from(&plan, &numbers, 2);
        let index = position % decisions[1].states.len();
        decisions[1].states[index] = f64::NAN;
        let batch = evaluate_batch(&plan, &fields, &params, 0.25, &decisions);
        let flags = batch.finite_flags().unwrap();
        prop_assert!(!flags[1], "the sample with a NaN state is flagged finite");
        let expected = evaluate(&plan, &interpreter_inputs(&decisions[0], &params, &fields, 0.25));
        prop_assert_eq!(flags[0], expected.status == Status::Finite);
    }
}
