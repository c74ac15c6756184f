//! Planning speed over the learned world model, measured side by side in one run.
//!
//! - `rollout`: the batched rollout kernel for 1024 samples × 40 steps beside candle's
//!   rollout of the same model, and the processor's fused multiply-add peak measured by a
//!   small kernel on the same threads. The kernel's share of the peak is therefore a ratio of
//!   two numbers taken under the same load.
//! - `loop`: closed-loop planning latency per control step (median, p95) on the warehouse and
//!   double-integrator examples at 1024 samples × 40 steps, with 1 and 2 sampling iterations
//!   plus the examples' gradient steps, and with the gradient by forward differences beside
//!   the reverse sweep.
//! - `versus`: the warehouse example planned over the learned model and over the rapier
//!   simulator in the loop: time per control step and the energy of the executed trajectory.
//!
//! Run with `cargo bench -p basin-runtime --bench planning [-- SECTION...]`. The loop and
//! versus sections train the examples' world models on first use (about a minute each in
//! the bench profile) and keep them under each example's `.basin/` folder.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use basin_compiler::Database;
use basin_compiler::plan::{CompileOptions, Plan, compile};
use basin_runtime::model::{
    Affine, Batch, Dims, EnsureOptions, Isa, Rollout, WorldModel, ensure_model,
};
use basin_runtime::mpc::{
    Dynamics, LoopOptions, ModelDynamics, MpcError, Planner, PlannerSettings, RunResult, Scorer,
    goal_blocks_of, judge, run_closed_loop, simulator_for_plan,
};
use basin_runtime::scenario::{Rng, Start, distance_grids, scenario_from_plan};
use candle_core::{Device, Tensor};

const SAMPLES: usize = 1024;
const STEPS: usize = 40;

fn main() {
    let sections: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let selected = |name: &str| sections.is_empty() || sections.iter().any(|s| s == name);
    println!(
        "rayon threads: {}, detected vector instructions: {:?}",
        rayon::current_num_threads(),
        Isa::detect()
    );
    if selected("rollout") {
        rollout();
    }
    if selected("loop") {
        closed_loop();
    }
    if selected("versus") {
        versus();
    }
}

/// Measures the median of `runs` timings of `f`, after one untimed call.
fn median_time(runs: usize, mut f: impl FnMut()) -> Duration {
    f();
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed()
        })
        .collect();
    times.sort();
    times[times.len() / 2]
}

fn rollout() {
    println!("\n## rollout: {SAMPLES} samples x {STEPS} steps");
    for (name, dims) in [
        (
            "training defaults (3 states, 2 actions, latent 32, hidden 128)",
            Dims {
                n_states: 3,
                n_actions: 2,
                latent: 32,
                hidden: 128,
                patch: None,
                angle: None,
            },
        ),
        (
            "warehouse example (3 states, 2 actions, latent 32, hidden 64)",
            Dims {
                n_states: 3,
                n_actions: 2,
                latent: 32,
                hidden: 64,
                patch: None,
                angle: None,
            },
        ),
        (
            "double-integrator example (2 states, 1 action, latent 8, hidden 32)",
            Dims {
                n_states: 2,
                n_actions: 1,
                latent: 8,
                hidden: 32,
                patch: None,
                angle: None,
            },
        ),
    ] {
        let model = WorldModel::new(dims, &Device::Cpu, 1).expect("model");
        let mut rng = Rng::new(2);
        let actions: Vec<f64> = (0..SAMPLES * STEPS * dims.n_actions)
            .map(|_| rng.uniform() * 2.0 - 1.0)
            .collect();
        let state: Vec<f32> = (0..dims.n_states).map(|_| rng.uniform() as f32).collect();
        let start: Vec<f32> = model
            .encode(&Tensor::from_vec(state, (1, dims.n_states), &Device::Cpu).unwrap())
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let (action_in, state_out) = (
            Affine::identity(dims.n_actions),
            Affine::identity(dims.n_states),
        );
        let first_row = vec![0.0; dims.n_states];
        let batch = Batch {
            start: &start,
            actions: &actions,
            action_in: &action_in,
            state_out: &state_out,
            first_row: &first_row,
            samples: SAMPLES,
            steps: STEPS,
        };
        let kernel = Rollout::new(&model).expect("kernel");
        let flops = (kernel.flops_per_step() * SAMPLES * STEPS) as f64;

        let single = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .expect("pool");
        let mut rows = Vec::new();
        let mut isas = vec![Isa::detect()];
        if Isa::detect() == Isa::Avx512 {
            isas.push(Isa::Avx2Fma);
        }
        if Isa::detect() != Isa::Baseline {
            isas.push(Isa::Baseline);
        }
        for isa in isas {
            let kernel = kernel.clone().with_isa(isa);
            let time = median_time(30, || {
                black_box(kernel.run(black_box(&batch)));
            });
            rows.push((
                format!("kernel, {isa:?}, {} threads", rayon::current_num_threads()),
                time,
            ));
            let time = single.install(|| {
                median_time(10, || {
                    black_box(kernel.run(black_box(&batch)));
                })
            });
            rows.push((format!("kernel, {isa:?}, 1 thread"), time));
        }
        // candle: one [samples, n_actions] tensor per step, as the planners used to build.
        let per_step: Vec<Tensor> = (0..STEPS)
            .map(|k| {
                let rows: Vec<f32> = (0..SAMPLES)
                    .flat_map(|s| {
                        actions[(s * STEPS + k) * dims.n_actions..][..dims.n_actions]
                            .iter()
                            .map(|&v| v as f32)
                            .collect::<Vec<_>>()
                    })
                    .collect();
                Tensor::from_vec(rows, (SAMPLES, dims.n_actions), &Device::Cpu).unwrap()
            })
            .collect();
        let states = Tensor::zeros(
            (SAMPLES, dims.n_states),
            candle_core::DType::F32,
            &Device::Cpu,
        )
        .unwrap();
        let candle = median_time(5, || {
            black_box(model.rollout(&states, &per_step).unwrap());
        });
        rows.push(("candle WorldModel::rollout".to_string(), candle));

        println!(
            "\n### {name}: {:.3} GFLOP per rollout ({} flops per sample-step)",
            flops / 1e9,
            kernel.flops_per_step()
        );
        println!("| routine | median time | sample-steps/s | GFLOP/s | candle time / this |");
        println!("|---|---|---|---|---|");
        for (label, time) in &rows {
            let seconds = time.as_secs_f64();
            println!(
                "| {label} | {:.2} ms | {:.1} M | {:.1} | {:.1}x |",
                seconds * 1e3,
                (SAMPLES * STEPS) as f64 / seconds / 1e6,
                flops / seconds / 1e9,
                candle.as_secs_f64() / seconds
            );
        }
        let peak = fma_peak(2);
        let best = rows[0].1.as_secs_f64();
        println!(
            "\nFMA peak measured now: {:.1} GFLOP/s (2 threads, {:?}); kernel reaches {:.1}% of it",
            peak.0,
            peak.1,
            100.0 * flops / best / 1e9 / peak.0
        );
    }
    println!("\n### fused multiply-add peak by instruction set");
    println!("| instructions | 1 thread GFLOP/s | 2 threads GFLOP/s |");
    println!("|---|---|---|");
    for isa in [Isa::Avx512, Isa::Avx2Fma, Isa::Baseline] {
        if isa == Isa::Baseline || Isa::detect() == Isa::Avx512 || Isa::detect() == isa {
            println!(
                "| {isa:?} | {:.1} | {:.1} |",
                peak_of(isa, 1),
                peak_of(isa, 2)
            );
        }
    }
}

/// Iterations of the peak kernel per thread.
const PEAK_ITERATIONS: usize = 20_000_000;
/// Independent accumulator vectors: enough to cover the latency of two FMA pipes.
const CHAINS: usize = 12;

/// Measures the best instruction set's peak on `threads` threads, in GFLOP/s, with that set.
fn fma_peak(threads: usize) -> (f64, Isa) {
    let isa = Isa::detect();
    (peak_of(isa, threads), isa)
}

/// Runs the peak kernel of `isa` on `threads` threads at once and returns GFLOP/s, the best of
/// three runs.
fn peak_of(isa: Isa, threads: usize) -> f64 {
    (0..3)
        .map(|_| {
            let start = Instant::now();
            let flops: usize = std::thread::scope(|scope| {
                let handles: Vec<_> = (0..threads)
                    .map(|_| scope.spawn(move || peak_kernel(isa, black_box(PEAK_ITERATIONS))))
                    .collect();
                handles
                    .into_iter()
                    .map(|h| h.join().expect("peak thread"))
                    .sum()
            });
            flops as f64 / start.elapsed().as_secs_f64() / 1e9
        })
        .fold(0.0, f64::max)
}

/// `CHAINS` independent accumulator vectors, each updated by `acc = acc · m + a`
/// `iterations` times, with explicit vector instructions (autovectorizing this loop gave
/// gathers); each function returns its flop count.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,fma")]
fn peak_avx512(iterations: usize) -> usize {
    use std::arch::x86_64::*;
    let mut acc = [_mm512_set1_ps(1.0); CHAINS];
    let (m, a) = (
        _mm512_set1_ps(black_box(0.999_999)),
        _mm512_set1_ps(black_box(1e-6)),
    );
    for _ in 0..iterations {
        for chain in acc.iter_mut() {
            *chain = _mm512_fmadd_ps(*chain, m, a);
        }
    }
    black_box(acc);
    iterations * CHAINS * 16 * 2
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn peak_avx2(iterations: usize) -> usize {
    use std::arch::x86_64::*;
    let mut acc = [_mm256_set1_ps(1.0); CHAINS];
    let (m, a) = (
        _mm256_set1_ps(black_box(0.999_999)),
        _mm256_set1_ps(black_box(1e-6)),
    );
    for _ in 0..iterations {
        for chain in acc.iter_mut() {
            *chain = _mm256_fmadd_ps(*chain, m, a);
        }
    }
    black_box(acc);
    iterations * CHAINS * 8 * 2
}

/// SSE2 multiply then add: the baseline x86-64 target's best.
#[cfg(target_arch = "x86_64")]
fn peak_sse2(iterations: usize) -> usize {
    use std::arch::x86_64::*;
    // SAFETY: SSE2 is part of every x86-64 processor.
    unsafe {
        let mut acc = [_mm_set1_ps(1.0); CHAINS];
        let (m, a) = (
            _mm_set1_ps(black_box(0.999_999)),
            _mm_set1_ps(black_box(1e-6)),
        );
        for _ in 0..iterations {
            for chain in acc.iter_mut() {
                *chain = _mm_add_ps(_mm_mul_ps(*chain, m), a);
            }
        }
        black_box(acc);
        iterations * CHAINS * 4 * 2
    }
}

fn peak_kernel(isa: Isa, iterations: usize) -> usize {
    match isa {
        // SAFETY: callers run these only where `Isa::detect` found the instructions.
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => unsafe { peak_avx512(iterations) },
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2Fma => unsafe { peak_avx2(iterations) },
        #[cfg(target_arch = "x86_64")]
        Isa::Baseline => peak_sse2(iterations),
        #[cfg(not(target_arch = "x86_64"))]
        _ => 0,
    }
}

/// The example's plan over `STEPS` steps: an 8 s horizon of 100 ms steps is cut to 4 s.
fn example(name: &str) -> (Plan, PathBuf, String) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(name);
    let path = dir.join(format!("{name}.basin"));
    let text = std::fs::read_to_string(&path).expect("example spec");
    let text = text.replace("step: 100 ms\n    horizon: 8 s", "step: 100 ms\n    horizon: 4 s");
    let db = Database::new();
    let file = db.add_file(path.display().to_string(), text.clone());
    let (plan, diagnostics) = compile(
        &db,
        file,
        &CompileOptions {
            base_dir: Some(dir.clone()),
            allow_outside: false,
        },
    );
    let plan =
        plan.unwrap_or_else(|| panic!("the {name} example does not compile: {diagnostics:?}"));
    assert_eq!(
        plan.horizon.as_ref().map(|h| h.steps),
        Some(STEPS as u32),
        "the {name} plan has {STEPS} steps"
    );
    (plan, dir, text)
}

fn model_dynamics(plan: &Plan, dir: &Path) -> ModelDynamics {
    let options = EnsureOptions {
        progress: true,
        ..EnsureOptions::default()
    };
    let ensured = ensure_model(plan, dir, &options).expect("world model");
    ModelDynamics::new(
        ensured.model,
        ensured.meta.normalization,
        ensured.meta.surprise_threshold,
        ensured.grid.as_ref(),
    )
    .expect("dynamics")
}

/// Model dynamics without their reverse pass, so the planner refines by forward differences.
struct Differences<'a>(&'a ModelDynamics);

impl Dynamics for Differences<'_> {
    fn n_states(&self) -> usize {
        self.0.n_states()
    }

    fn n_actions(&self) -> usize {
        self.0.n_actions()
    }

    fn rollout(
        &self,
        state: &[f64],
        actions: &[f64],
        samples: usize,
        steps: usize,
        dt: f64,
    ) -> Result<Vec<f64>, MpcError> {
        self.0.rollout(state, actions, samples, steps, dt)
    }

    fn name(&self) -> &'static str {
        "world model, finite differences"
    }
}

/// Runs `control_steps` steps of the closed loop at `SAMPLES` samples and `iterations`
/// iterations, with the plan's gradient steps.
fn run(
    plan: &Plan,
    dir: &Path,
    text: &str,
    dynamics: &dyn Dynamics,
    iterations: usize,
    control_steps: usize,
) -> RunResult {
    let settings = PlannerSettings::from_plan(plan)
        .expect("settings")
        .with_budget(Some(SAMPLES), Some(iterations));
    let mut planner = Planner::new(plan, settings).expect("planner");
    let fields = distance_grids(plan, Some(dir)).expect("fields");
    let mut scorer = Scorer::new(plan.clone(), fields);
    let mut plant = scenario_from_plan(plan, Some(dir), Start::Plan).expect("plant");
    let options = LoopOptions {
        seed: 0,
        max_steps: Some(control_steps),
        time_limit: None,
        goal_blocks: goal_blocks_of(text),
        ..LoopOptions::default()
    };
    run_closed_loop(
        &mut scorer,
        &mut plant,
        dynamics,
        &mut planner,
        &options,
        &mut |_| {},
    )
    .expect("closed loop")
}

/// CPU seconds this process has used, all threads together, from `/proc/self/stat` (Linux;
/// zero elsewhere).
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line, 11 and 12 here, in ticks of 1/100 s.
    let ticks: f64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i)?.parse::<f64>().ok())
        .sum();
    ticks / 100.0
}

/// Median and 95th percentile of the planning time per step, in seconds.
fn latency(result: &RunResult) -> (f64, f64) {
    let mut times: Vec<f64> = result.records.iter().map(|r| r.plan_seconds).collect();
    times.sort_by(f64::total_cmp);
    let at = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize];
    (at(0.5), at(0.95))
}

fn closed_loop() {
    const CONTROL_STEPS: usize = 40;
    println!(
        "\n## closed-loop planning: {SAMPLES} samples x {STEPS} steps, {CONTROL_STEPS} control steps from the start"
    );
    println!(
        "| example | iterations | gradient | median | p95 | replans/s (1 / median) | CPU per step, both threads |"
    );
    println!("|---|---|---|---|---|---|---|");
    for name in ["warehouse", "double-integrator"] {
        let (plan, dir, text) = example(name);
        let dynamics = model_dynamics(&plan, &dir);
        let gradient_steps = PlannerSettings::from_plan(&plan)
            .expect("settings")
            .gradient_steps;
        for (iterations, differences) in [(1, false), (2, false), (2, true)] {
            let cpu = cpu_seconds();
            let result = if differences {
                run(
                    &plan,
                    &dir,
                    &text,
                    &Differences(&dynamics),
                    iterations,
                    CONTROL_STEPS,
                )
            } else {
                run(&plan, &dir, &text, &dynamics, iterations, CONTROL_STEPS)
            };
            let cpu = (cpu_seconds() - cpu) / result.records.len() as f64;
            let (median, p95) = latency(&result);
            let method = if differences {
                "forward differences"
            } else {
                "reverse sweep"
            };
            println!(
                "| {name} | {iterations} | {gradient_steps} steps, {method} | {:.1} ms | {:.1} ms | {:.1} | {:.1} ms |",
                median * 1e3,
                p95 * 1e3,
                1.0 / median,
                cpu * 1e3
            );
        }
    }
}

fn versus() {
    const CONTROL_STEPS: usize = 30;
    const ITERATIONS: usize = 2;
    println!(
        "\n## warehouse: learned model beside the simulator in the loop ({SAMPLES} x {STEPS}, {ITERATIONS} iterations, {CONTROL_STEPS} control steps)"
    );
    let (plan, dir, text) = example("warehouse");
    let model = model_dynamics(&plan, &dir);
    let simulator = simulator_for_plan(&plan, Some(&dir), None).expect("simulator dynamics");
    let fields = distance_grids(&plan, Some(&dir)).expect("fields");
    println!(
        "| dynamics | median per step | p95 | CPU per step | executed trajectory energy | planned energy, mean over steps |"
    );
    println!("|---|---|---|---|---|---|");
    let mut rows = Vec::new();
    for dynamics in [&model as &dyn Dynamics, &simulator] {
        let cpu = cpu_seconds();
        let result = run(&plan, &dir, &text, dynamics, ITERATIONS, CONTROL_STEPS);
        let cpu = (cpu_seconds() - cpu) / result.records.len() as f64;
        let (median, p95) = latency(&result);
        let actions: Vec<Vec<f64>> = result.records.iter().map(|r| r.action.clone()).collect();
        // Judged with the phases the run ended in, as `basin judge` does.
        let mut params: Vec<f64> = plan.params.iter().map(|p| p.value.0).collect();
        for (name, value) in &result.phases {
            if let Some(index) = plan.params.iter().position(|p| &p.name == name) {
                params[index] = *value;
            }
        }
        let (executed, _) =
            judge(&plan, &params, &fields, &result.states, &actions).expect("judge");
        let planned =
            result.records.iter().map(|r| r.total).sum::<f64>() / result.records.len() as f64;
        println!(
            "| {} | {:.1} ms | {:.1} ms | {:.1} ms | {:.3} | {:.3} |",
            dynamics.name(),
            median * 1e3,
            p95 * 1e3,
            cpu * 1e3,
            executed.total,
            planned
        );
        rows.push((median, cpu, executed.total));
    }
    let (model_row, sim_row) = (rows[0], rows[1]);
    println!(
        "\nlearned model {:.1}x faster per step by wall time ({:.1}x by CPU time); executed energy {:+.1}% against the simulator's",
        sim_row.0 / model_row.0,
        sim_row.1 / model_row.1,
        100.0 * (model_row.2 - sim_row.2) / sim_row.2.abs()
    );
}
