//! Benchmarks of the energy backends on the warehouse example. The first group times its
//! energy and gradient over the full horizon (40 steps) by the reference interpreter, by the
//! cranelift JIT, and by two hand-written Rust functions of the same energy. The second times
//! the JIT's compile time for the warehouse and for a spec with ten times its goals and
//! constraints. At the end it prints the medians and their ratios side by side.
//!
//! The hand-written functions follow `tests/snapshots/plans__example_warehouse.snap` term by
//! term. `hand_mirrored` evaluates the same formulas as the interpreter's gradient graph,
//! which the JIT copies (softplus slopes recomputed as sigmoids, window weights as
//! `exp((value − x) / τ)`), so it measures what the JIT's code costs against rustc's for the
//! same arithmetic. `hand_reuse` takes the shortcuts a person would (slopes and weights from
//! the exponentials of the forward pass), for about 40% fewer calls to `exp`.
//!
//! The interpreter is timed twice: `evaluate_gradient` with the gradient graph built once,
//! as a caller evaluating many gradients would use it, and the one-shot `energy::gradient`,
//! which builds the graph on every call.
//!
//! Run with `cargo bench -p basin-compiler --bench energy`.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use basin_compiler::Database;
use basin_compiler::energy::{self, DistanceGrid, Gradient, Inputs, Shape, differentiate, evaluate_gradient};
use basin_compiler::jit::{self, Outputs};
use basin_compiler::plan::{CompileOptions, Plan, compile};
use criterion::{Criterion, criterion_group, criterion_main};

fn warehouse_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/warehouse")
}

fn compile_text(name: &str, text: &str) -> Plan {
    let db = Database::new();
    let file = db.add_file(name, text);
    let (plan, diagnostics) = compile(&db, file, &CompileOptions { base_dir: Some(warehouse_dir()), allow_outside: false });
    plan.unwrap_or_else(|| panic!("{name} did not compile: {diagnostics:?}"))
}

fn warehouse() -> Plan {
    let text = std::fs::read_to_string(warehouse_dir().join("warehouse.basin")).expect("warehouse example");
    compile_text("warehouse.basin", &text)
}

/// Compiles the warehouse spec with `copies` goal and constraint blocks, each with its own
/// sites and margins so that no two blocks share nodes.
fn warehouse_times(copies: usize) -> Plan {
    let mut text = String::from(
        "use std.robots.diff_drive\n\ncontext floor = image(\"floor.png\") { scale: 5 cm/px, obstacles: dark }\n\n\
         agent robot = diff_drive { radius: 30 cm, max_speed: 1.2 m/s, max_accel: 0.8 m/s^2, start: pose(2 m, 3 m, 0 deg) }\n\n",
    );
    for i in 0..copies {
        text.push_str(&format!(
            "site pick_{i} = ({}.5 m, 4 m)\nsite drop_{i} = (3 m, {} m)\nlet today_{i} = {} s\n\
             goal deliver_{i} {{\n  reach robot.position -> pick_{i} within 10 cm\n  then reach robot.position -> drop_{i} within 10 cm\n  \
             finish_by 0.8 * today_{i}\n  minimize duration\n}}\n\
             constraint safety_{i} {{\n  always clearance(robot, floor) >= {} cm hard\n  always robot.speed <= {}.{} m/s hard\n}}\n\n",
            10 + i,
            12 + i,
            60 + i,
            20 + i,
            1,
            10 + i,
        ));
    }
    text.push_str("plan { step: 100 ms, horizon: 4 s }\n");
    compile_text("warehouse_many.basin", &text)
}

/// Builds a 20 m × 20 m floor with 0.25 m cells: signed distance to the walls and two pillars.
fn synthetic_floor() -> DistanceGrid {
    let (width, height, cell) = (81, 81, 0.25);
    let mut values = Vec::with_capacity(width * height);
    for row in 0..height {
        for col in 0..width {
            let (x, y) = (col as f64 * cell, row as f64 * cell);
            let walls = x.min(y).min(20.0 - x).min(20.0 - y);
            let pillar_a = ((x - 7.0).powi(2) + (y - 10.0).powi(2)).sqrt() - 1.5;
            let pillar_b = ((x - 13.0).powi(2) + (y - 6.0).powi(2)).sqrt() - 1.0;
            values.push(walls.min(pillar_a).min(pillar_b));
        }
    }
    DistanceGrid { width, height, cell, origin: (0.0, 0.0), values }
}

/// Owned inputs: a path from the start towards the pick site with some wiggle, speeds near
/// the limit, and the synthetic floor for context 0.
struct Decision {
    states: Vec<f64>,
    actions: Vec<f64>,
    params: Vec<f64>,
    fields: Vec<Option<DistanceGrid>>,
}

impl Decision {
    fn new(plan: &Plan) -> Decision {
        let shape = Shape::of(plan);
        let mut states = vec![0.0; shape.state_len()];
        for k in 0..=shape.steps {
            let t = k as f64 / shape.steps as f64;
            states[k * shape.n_states] = 2.0 + 9.0 * t + 0.3 * (7.0 * t).sin();
            states[k * shape.n_states + 1] = 3.0 + 1.2 * t + 0.2 * (5.0 * t).cos();
            states[k * shape.n_states + 2] = 0.1 * t;
        }
        let actions = (0..shape.action_len()).map(|i| 1.1 * ((i as f64) * 0.37).sin()).collect();
        let params = plan.params.iter().map(|p| p.value.0).collect();
        let fields = plan.contexts.iter().map(|c| (c.name == "floor").then(synthetic_floor)).collect();
        Decision { states, actions, params, fields }
    }

    fn inputs(&self) -> Inputs<'_> {
        Inputs { time0: 0.5, states: &self.states, actions: &self.actions, design: &[], params: &self.params, fields: &self.fields }
    }
}

// ---- the hand-written warehouse energy ----

/// Horizon steps of the warehouse plan.
const STEPS: usize = 40;
const DT: f64 = 0.1;
const INVERSE_HORIZON: f64 = 0.25;
const TAU: f64 = 0.01;
const EPSILON: f64 = 1e-6;
const WITHIN: f64 = 0.1;
const HARD: f64 = 1000.0;
const DEADLINE_FACTOR: f64 = 0.8;
const CLEARANCE: f64 = 0.2;

fn softplus(a: f64) -> f64 {
    a.max(0.0) + TAU * (-a.abs() / TAU).exp().ln_1p()
}

fn sigmoid(a: f64) -> f64 {
    1.0 / (1.0 + (-a / TAU).exp())
}

/// `softplus(a)` and its slope `σ(a)` from one exponential.
fn softplus_and_slope(a: f64) -> (f64, f64) {
    let e = (-a.abs() / TAU).exp();
    let slope = if a >= 0.0 { 1.0 / (1.0 + e) } else { e / (1.0 + e) };
    (a.max(0.0) + TAU * e.ln_1p(), slope)
}

/// Returns the phase indicator `select(φ, e_P)` for a list of two.
fn phase_mask(phase: f64, position: usize) -> f64 {
    let chosen = phase.round().clamp(0.0, 1.0) as usize;
    if chosen == position { 1.0 } else { 0.0 }
}

/// Per-step values the reverse pass reads.
struct Steps {
    dx: [[f64; STEPS + 1]; 2],
    dy: [[f64; STEPS + 1]; 2],
    length: [[f64; STEPS + 1]; 2],
    gap: [[f64; STEPS + 1]; 2],
    /// `σ(gap)` (the softplus slope), and `σ(gap)` again for the duration estimate.
    slope: [[f64; STEPS + 1]; 2],
    clearance: [f64; STEPS + 1],
    slope_x: [f64; STEPS + 1],
    slope_y: [f64; STEPS + 1],
    speed_margin: [f64; STEPS + 1],
    /// `exp` terms of the two windows, kept by `hand_reuse`.
    clearance_exp: [f64; STEPS + 1],
    speed_exp: [f64; STEPS + 1],
}

/// Computes the warehouse energy and its gradient, written out by hand, and returns the total
/// energy. `REUSE` selects the shortcuts described in the module documentation.
fn hand_written<const REUSE: bool>(inputs: &Inputs, grid: &DistanceGrid, gradient: &mut Gradient) -> f64 {
    let p = inputs.params;
    let (radius, max_speed, phase, today) = (p[0], p[1], p[11], p[12]);
    let targets = [(p[7], p[8]), (p[9], p[10])];
    let (n_states, n_actions) = (3, 2);
    let mut s = Steps {
        dx: [[0.0; STEPS + 1]; 2],
        dy: [[0.0; STEPS + 1]; 2],
        length: [[0.0; STEPS + 1]; 2],
        gap: [[0.0; STEPS + 1]; 2],
        slope: [[0.0; STEPS + 1]; 2],
        clearance: [0.0; STEPS + 1],
        slope_x: [0.0; STEPS + 1],
        slope_y: [0.0; STEPS + 1],
        speed_margin: [0.0; STEPS + 1],
        clearance_exp: [0.0; STEPS + 1],
        speed_exp: [0.0; STEPS + 1],
    };

    // Forward: the per-step signals.
    let mut along = [0.0; 2];
    let mut time_outside = [0.0; 2];
    let mut end_softplus = [0.0; 2];
    for k in 0..=STEPS {
        let (x, y) = (inputs.states[k * n_states], inputs.states[k * n_states + 1]);
        for (t, &(tx, ty)) in targets.iter().enumerate() {
            let (dx, dy) = (x - tx, y - ty);
            let length = (dx * dx + dy * dy + EPSILON * EPSILON).sqrt();
            let gap = length - WITHIN;
            let (value, slope) = if REUSE { softplus_and_slope(gap) } else { (softplus(gap), sigmoid(gap)) };
            if k < STEPS {
                along[t] += DT * value;
                time_outside[t] += DT * if REUSE { slope } else { sigmoid(gap) };
            } else {
                end_softplus[t] = value;
            }
            (s.dx[t][k], s.dy[t][k], s.length[t][k], s.gap[t][k], s.slope[t][k]) = (dx, dy, length, gap, slope);
        }
        let sample = grid.sample(x, y);
        s.clearance[k] = sample.value - radius - CLEARANCE;
        (s.slope_x[k], s.slope_y[k]) = (sample.slope_x, sample.slope_y);
        s.speed_margin[k] = max_speed - inputs.actions[k.min(STEPS - 1) * n_actions].abs();
    }

    // Reach terms and the duration estimate of each phase.
    let masks = [phase_mask(phase, 0), phase_mask(phase, 1)];
    let reach: Vec<f64> = (0..2).map(|t| masks[t] * (INVERSE_HORIZON * along[t] + end_softplus[t])).collect();
    let (dxl, dyl) = (targets[1].0 - targets[0].0, targets[1].1 - targets[0].1);
    let leg = (dxl * dxl + dyl * dyl + EPSILON * EPSILON).sqrt();
    let durations = [time_outside[0] + (end_softplus[0] + leg) / max_speed, time_outside[1] + end_softplus[1] / max_speed];
    let duration = if masks[0] == 1.0 { durations[0] } else { durations[1] };
    let slack = DEADLINE_FACTOR * today - (inputs.time0 + duration);
    let deadline = HARD * softplus(-slack);

    // The two `always` windows over all steps, as soft minima.
    let (clearance_min, speed_min) = if REUSE {
        (soft_minimum_keeping(&s.clearance, &mut s.clearance_exp), soft_minimum_keeping(&s.speed_margin, &mut s.speed_exp))
    } else {
        (soft_minimum(&s.clearance), soft_minimum(&s.speed_margin))
    };
    let clearance_energy = HARD * softplus(-clearance_min);
    let speed_energy = HARD * softplus(-speed_min);
    let total = reach[0] + reach[1] + deadline + duration + clearance_energy + speed_energy;

    // Reverse.
    gradient.states.fill(0.0);
    gradient.actions.fill(0.0);
    let duration_adjoint = 1.0 + HARD * sigmoid(-slack);
    for (t, &mask) in masks.iter().enumerate() {
        let reach_adjoint = mask;
        let phase_adjoint = duration_adjoint * mask;
        let end_weight = reach_adjoint + phase_adjoint / max_speed;
        for k in 0..=STEPS {
            let slope = s.slope[t][k];
            let mut adjoint = if k < STEPS { reach_adjoint * INVERSE_HORIZON * DT * slope } else { end_weight * slope };
            if k < STEPS {
                adjoint += phase_adjoint * DT * slope * (1.0 - slope) / TAU;
            }
            let along_length = adjoint / s.length[t][k];
            gradient.states[k * n_states] += along_length * s.dx[t][k];
            gradient.states[k * n_states + 1] += along_length * s.dy[t][k];
        }
    }
    let clearance_adjoint = -HARD * sigmoid(-clearance_min);
    let speed_adjoint = -HARD * sigmoid(-speed_min);
    let clearance_sum: f64 = if REUSE { s.clearance_exp.iter().sum() } else { 0.0 };
    let speed_sum: f64 = if REUSE { s.speed_exp.iter().sum() } else { 0.0 };
    for k in 0..=STEPS {
        let weight = if REUSE { s.clearance_exp[k] / clearance_sum } else { ((clearance_min - s.clearance[k]) / TAU).exp() };
        let d = clearance_adjoint * weight;
        gradient.states[k * n_states] += d * s.slope_x[k];
        gradient.states[k * n_states + 1] += d * s.slope_y[k];

        let weight = if REUSE { s.speed_exp[k] / speed_sum } else { ((speed_min - s.speed_margin[k]) / TAU).exp() };
        let row = k.min(STEPS - 1) * n_actions;
        let u = inputs.actions[row];
        let sign = if u == 0.0 { 0.0 } else { u.signum() };
        gradient.actions[row] -= speed_adjoint * weight * sign;
    }
    total
}

/// `softmin_τ(x)` in the overflow-free form.
fn soft_minimum(xs: &[f64]) -> f64 {
    let m = xs.iter().fold(f64::INFINITY, |m, &x| m.min(x));
    let sum: f64 = xs.iter().map(|x| ((m - x) / TAU).exp()).sum();
    m - TAU * sum.ln()
}

/// `softmin_τ(x)`, keeping each `exp((m − x) / τ)` in `terms`.
fn soft_minimum_keeping(xs: &[f64], terms: &mut [f64]) -> f64 {
    let m = xs.iter().fold(f64::INFINITY, |m, &x| m.min(x));
    let mut sum = 0.0;
    for (t, x) in terms.iter_mut().zip(xs) {
        *t = ((m - x) / TAU).exp();
        sum += *t;
    }
    m - TAU * sum.ln()
}

// ---- timing ----

/// Rounds of [`interleaved`]: each round times every routine once.
const ROUNDS: usize = 40;
/// Wall time of one timed batch of calls, seconds.
const BATCH_SECONDS: f64 = 0.004;

/// Times the routines in turn, round after round, and returns the seconds per call of each in
/// its fastest round. Taking turns exposes every routine to the same background load, which
/// on a shared machine moves much more than the difference between two routines, and the
/// fastest round is the one that load disturbed least.
fn interleaved(routines: &mut [(&str, &mut dyn FnMut())]) -> Vec<f64> {
    let batch: Vec<u64> = routines
        .iter_mut()
        .map(|(_, routine)| {
            let start = Instant::now();
            let mut calls = 0u64;
            while start.elapsed().as_secs_f64() < BATCH_SECONDS {
                routine();
                calls += 1;
            }
            calls
        })
        .collect();
    let mut samples: Vec<Vec<f64>> = vec![Vec::with_capacity(ROUNDS); routines.len()];
    for _ in 0..ROUNDS {
        for (i, (_, routine)) in routines.iter_mut().enumerate() {
            let start = Instant::now();
            for _ in 0..batch[i] {
                routine();
            }
            samples[i].push(start.elapsed().as_secs_f64() / batch[i] as f64);
        }
    }
    samples.into_iter().map(|s| s.into_iter().fold(f64::INFINITY, f64::min)).collect()
}

/// Checks that a hand-written result matches the interpreter before timing it.
fn assert_matches(name: &str, total: f64, gradient: &Gradient, reference_total: f64, reference: &Gradient) {
    let close = |a: f64, b: f64, scale: f64| (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(scale);
    assert!(close(total, reference_total, 0.0), "{name}: total {total}, interpreter {reference_total}");
    for (what, got, expected) in [("states", &gradient.states, &reference.states), ("actions", &gradient.actions, &reference.actions)] {
        let scale = expected.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        for (i, (a, b)) in got.iter().zip(expected).enumerate() {
            assert!(close(*a, *b, scale), "{name}: gradient of {what}[{i}]: {a}, interpreter {b}");
        }
    }
}

fn bench_energy(c: &mut Criterion) {
    let plan = warehouse();
    let shape = Shape::of(&plan);
    assert_eq!(shape.steps, STEPS, "the hand-written energy assumes the warehouse's horizon");
    let decision = Decision::new(&plan);
    let inputs = decision.inputs();
    let grid = decision.fields[0].as_ref().expect("context 0 is the floor");

    let graph = differentiate(&plan);
    let (reference, reference_gradient) = evaluate_gradient(&plan, &graph, &inputs);
    let compiled = jit::compile(&plan, Outputs::GRADIENT).expect("the warehouse compiles");
    let mut workspace = compiled.workspace();
    let jit_total = compiled.run(&inputs, &mut workspace);
    assert_matches("jit", jit_total, &workspace.gradient, reference.total, &reference_gradient);
    let mut hand = Gradient { states: vec![0.0; shape.state_len()], actions: vec![0.0; shape.action_len()], design: Vec::new() };
    let total = hand_written::<false>(&inputs, grid, &mut hand);
    assert_matches("hand_mirrored", total, &hand, reference.total, &reference_gradient);
    let total = hand_written::<true>(&inputs, grid, &mut hand);
    assert_matches("hand_reuse", total, &hand, reference.total, &reference_gradient);

    let mut group = c.benchmark_group("warehouse_energy_gradient");
    group.bench_function("interpreter", |b| b.iter(|| evaluate_gradient(&plan, &graph, black_box(&inputs))));
    group.bench_function("interpreter_one_shot", |b| b.iter(|| energy::gradient(&plan, black_box(&inputs))));
    group.bench_function("jit", |b| b.iter(|| compiled.run(black_box(&inputs), &mut workspace)));
    group.bench_function("hand_mirrored", |b| b.iter(|| hand_written::<false>(black_box(&inputs), grid, &mut hand)));
    group.bench_function("hand_reuse", |b| b.iter(|| hand_written::<true>(black_box(&inputs), grid, &mut hand)));
    group.finish();

    let larger = warehouse_times(10);
    let mut group = c.benchmark_group("jit_compile");
    group.bench_function("warehouse", |b| b.iter(|| jit::compile(black_box(&plan), Outputs::GRADIENT).expect("compiles")));
    group.bench_function("warehouse_x10", |b| b.iter(|| jit::compile(black_box(&larger), Outputs::GRADIENT).expect("compiles")));
    group.finish();

    let mut hand_again = hand.clone();
    let medians = interleaved(&mut [
        ("interpreter", &mut || drop(black_box(evaluate_gradient(&plan, &graph, black_box(&inputs))))),
        ("interpreter_one_shot", &mut || drop(black_box(energy::gradient(&plan, black_box(&inputs))))),
        ("jit", &mut || { black_box(compiled.run(black_box(&inputs), &mut workspace)); }),
        ("hand_mirrored", &mut || { black_box(hand_written::<false>(black_box(&inputs), grid, &mut hand)); }),
        ("hand_reuse", &mut || { black_box(hand_written::<true>(black_box(&inputs), grid, &mut hand_again)); }),
    ]);
    let [interpreter, one_shot, jit, mirrored, reuse] = medians[..] else { unreachable!("five routines") };
    println!("warehouse energy + gradient, {STEPS} steps, time per call in the fastest of {ROUNDS} interleaved rounds:");
    println!(
        "  interpreter {:.1} µs (one-shot `energy::gradient` {:.1} µs) | jit {:.2} µs | hand-written, mirrored {:.2} µs | hand-written, reusing exponentials {:.2} µs",
        interpreter * 1e6,
        one_shot * 1e6,
        jit * 1e6,
        mirrored * 1e6,
        reuse * 1e6
    );
    println!(
        "  interpreter / jit = {:.0}x (one-shot {:.0}x) | jit / hand-written, mirrored = {:.2}x | jit / hand-written, reusing = {:.2}x",
        interpreter / jit,
        one_shot / jit,
        jit / mirrored,
        jit / reuse
    );

    let medians = interleaved(&mut [
        ("warehouse", &mut || drop(black_box(jit::compile(black_box(&plan), Outputs::GRADIENT).expect("compiles")))),
        ("warehouse_x10", &mut || drop(black_box(jit::compile(black_box(&larger), Outputs::GRADIENT).expect("compiles")))),
    ]);
    let [small, large] = medians[..] else { unreachable!("two routines") };
    let (small_nodes, large_nodes) = (plan.graph.nodes.len(), larger.graph.nodes.len());
    println!(
        "jit compile with gradient: warehouse {:.2} ms ({small_nodes} nodes) | x10 {:.2} ms ({large_nodes} nodes) | time ratio {:.1}x for {:.1}x the nodes",
        small * 1e3,
        large * 1e3,
        large / small,
        large_nodes as f64 / small_nodes as f64
    );
}

fn config() -> Criterion {
    Criterion::default().measurement_time(Duration::from_secs(4)).warm_up_time(Duration::from_secs(1))
}

criterion_group! {
    name = benches;
    config = config();
    targets = bench_energy
}
criterion_main!(benches);
