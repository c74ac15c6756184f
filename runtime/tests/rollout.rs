//! The fast rollout kernel against the world model's candle rollout, and its action gradient
//! against finite differences, on random weights and inputs; then the same through the
//! planner's model dynamics in SI units.

use basin_runtime::model::{
    Affine, Batch, Dims, Isa, LATENT_BOUND, Normalization, Rollout, WorldModel,
};
use basin_runtime::mpc::{Dynamics, ModelDynamics, Scorer};
use basin_runtime::scenario::Rng;
use candle_core::{Device, Tensor};

/// A model with every weight and bias drawn uniformly from `±scale / √fan_in` (biases
/// `±0.5`), so no part of the networks is zero.
fn random_model(dims: Dims, seed: u64, scale: f64) -> WorldModel {
    let model = WorldModel::new(dims, &Device::Cpu, seed).expect("model");
    let mut rng = Rng::new(seed ^ 0x5eed);
    let data = model.vars.data().lock().expect("variables");
    let mut names: Vec<&String> = data.keys().collect();
    names.sort();
    for name in names {
        let var = &data[name];
        let shape = var.as_tensor().dims().to_vec();
        let fan_in = *shape.last().expect("shape") as f64;
        let bound = if name.ends_with("bias") {
            0.5
        } else {
            scale / fan_in.sqrt()
        };
        let values: Vec<f32> = (0..shape.iter().product::<usize>())
            .map(|_| ((rng.uniform() * 2.0 - 1.0) * bound) as f32)
            .collect();
        var.set(&Tensor::from_vec(values, shape, &Device::Cpu).expect("tensor"))
            .expect("set");
    }
    drop(data);
    model
}

fn uniform(rng: &mut Rng, n: usize, bound: f64) -> Vec<f32> {
    (0..n)
        .map(|_| ((rng.uniform() * 2.0 - 1.0) * bound) as f32)
        .collect()
}

struct Case {
    name: &'static str,
    dims: Dims,
    samples: usize,
    steps: usize,
    /// Weight scale; a large one drives latents into the clip.
    scale: f64,
    /// Whether the case must drive some latent entry to the bound.
    expect_clipped: bool,
}

/// Rolls out with candle and with the kernel (each instruction set this processor has) and
/// compares the probed states.
fn check_against_candle(case: &Case) {
    let Dims {
        n_states: ns,
        n_actions: na,
        latent,
        ..
    } = case.dims;
    let (samples, steps) = (case.samples, case.steps);
    let model = random_model(case.dims, 7, case.scale);
    let mut rng = Rng::new(11);
    let states = uniform(&mut rng, samples * ns, 2.0);
    let actions = uniform(&mut rng, samples * steps * na, 1.5);

    let start = Tensor::from_vec(states.clone(), (samples, ns), &Device::Cpu).expect("tensor");
    let per_step: Vec<Tensor> = (0..steps)
        .map(|k| {
            let rows: Vec<f32> = (0..samples)
                .flat_map(|s| actions[(s * steps + k) * na..][..na].to_vec())
                .collect();
            Tensor::from_vec(rows, (samples, na), &Device::Cpu).expect("tensor")
        })
        .collect();
    let expected: Vec<Vec<f32>> = model
        .rollout(&start, &per_step)
        .expect("candle rollout")
        .iter()
        .map(|t| t.flatten_all().and_then(|t| t.to_vec1()).expect("values"))
        .collect();

    // Whether the clip is exercised: some latent entry reaches the bound.
    let mut z = model.encode(&start).expect("encode");
    let mut clipped = 0;
    for a in &per_step {
        z = model.predict(&z, a).expect("predict");
        let values: Vec<f32> = z.flatten_all().and_then(|t| t.to_vec1()).expect("values");
        clipped += values.iter().filter(|v| v.abs() >= LATENT_BOUND).count();
    }
    if case.expect_clipped {
        assert!(
            clipped > 0,
            "{}: no latent entry reaches the bound",
            case.name
        );
    }

    let z0: Vec<f32> = model
        .encode(&start)
        .and_then(|t| t.flatten_all())
        .and_then(|t| t.to_vec1())
        .expect("start latents");
    assert_eq!(z0.len(), samples * latent);
    let actions64: Vec<f64> = actions.iter().map(|&v| f64::from(v)).collect();
    let first_row = vec![-9.0; ns];
    let (action_in, state_out) = (Affine::identity(na), Affine::identity(ns));
    let batch = Batch {
        start: &z0,
        actions: &actions64,
        action_in: &action_in,
        state_out: &state_out,
        first_row: &first_row,
        samples,
        steps,
    };
    // Every instruction set this processor has (an AVX-512 processor also has AVX2).
    let isas = match Isa::detect() {
        Isa::Avx512 => vec![Isa::Baseline, Isa::Avx2Fma, Isa::Avx512],
        Isa::Avx2Fma => vec![Isa::Baseline, Isa::Avx2Fma],
        Isa::Baseline => vec![Isa::Baseline],
    };
    for isa in isas {
        let kernel = Rollout::new(&model).expect("kernel").with_isa(isa);
        let got = kernel.run(&batch);
        assert_eq!(got.len(), samples * (steps + 1) * ns);
        let scale = expected
            .iter()
            .flatten()
            .fold(0.0f32, |m, v| m.max(v.abs()));
        for s in 0..samples {
            assert_eq!(
                &got[s * (steps + 1) * ns..][..ns],
                &first_row[..],
                "{}: row 0 of sample {s}",
                case.name
            );
            for k in 0..steps {
                for j in 0..ns {
                    let (g, e) = (
                        got[(s * (steps + 1) + k + 1) * ns + j],
                        f64::from(expected[k][s * ns + j]),
                    );
                    assert!(
                        (g - e).abs() <= 1e-4 * (e.abs() + 1e-2 * f64::from(scale)),
                        "{} ({isa:?}): sample {s}, step {k}, state {j}: kernel {g}, candle {e}",
                        case.name
                    );
                }
            }
        }
    }
}

#[test]
fn kernel_matches_candle_rollout() {
    let cases = [
        Case {
            name: "small, chunk remainder",
            dims: Dims {
                n_states: 2,
                n_actions: 1,
                latent: 8,
                hidden: 16,
                patch: None,
                angle: None,
            },
            samples: 70,
            steps: 6,
            scale: 1.0,
            expect_clipped: false,
        },
        Case {
            name: "odd sizes",
            dims: Dims {
                n_states: 5,
                n_actions: 2,
                latent: 13,
                hidden: 23,
                patch: None,
                angle: None,
            },
            samples: 3,
            steps: 4,
            scale: 1.0,
            expect_clipped: false,
        },
        Case {
            name: "clipped latents",
            dims: Dims {
                n_states: 3,
                n_actions: 2,
                latent: 8,
                hidden: 12,
                patch: None,
                angle: None,
            },
            samples: 40,
            steps: 5,
            scale: 6.0,
            expect_clipped: true,
        },
    ];
    for case in &cases {
        check_against_candle(case);
    }
}

/// A NaN action makes every later state of its sample NaN, as in candle, and leaves the
/// other samples alone.
#[test]
fn kernel_propagates_nan_actions() {
    let dims = Dims {
        n_states: 2,
        n_actions: 1,
        latent: 8,
        hidden: 16,
        patch: None,
        angle: None,
    };
    let model = random_model(dims, 13, 1.0);
    let (samples, steps) = (4, 5);
    let mut actions = vec![0.25; samples * steps];
    actions[steps + 2] = f64::NAN;
    let z0 = vec![0.5; dims.latent];
    let (action_in, state_out, first_row) = (Affine::identity(1), Affine::identity(2), [0.0, 0.0]);
    let batch = Batch {
        start: &z0,
        actions: &actions,
        action_in: &action_in,
        state_out: &state_out,
        first_row: &first_row,
        samples,
        steps,
    };
    for isa in [Isa::Baseline, Isa::detect()] {
        let got = Rollout::new(&model)
            .expect("kernel")
            .with_isa(isa)
            .run(&batch);
        for s in 0..samples {
            for k in 1..=steps {
                for j in 0..2 {
                    let v = got[(s * (steps + 1) + k) * 2 + j];
                    let poisoned = s == 1 && k >= 3;
                    assert_eq!(
                        v.is_nan(),
                        poisoned,
                        "{isa:?}: sample {s}, step {k}, state {j} is {v}"
                    );
                }
            }
        }
    }
}

#[test]
fn action_gradient_matches_differences() {
    let dims = Dims {
        n_states: 3,
        n_actions: 2,
        latent: 6,
        hidden: 10,
        patch: None,
        angle: None,
    };
    let (ns, na, steps) = (dims.n_states, dims.n_actions, 5);
    let model = random_model(dims, 3, 1.0);
    let kernel = Rollout::new(&model).expect("kernel");
    let mut rng = Rng::new(5);
    let z0 = uniform(&mut rng, dims.latent, 1.0);
    let actions: Vec<f64> = uniform(&mut rng, steps * na, 1.0)
        .iter()
        .map(|&v| f64::from(v))
        .collect();
    let weights: Vec<f64> = uniform(&mut rng, (steps + 1) * ns, 1.0)
        .iter()
        .map(|&v| f64::from(v))
        .collect();
    // Units that are not the model's, so the maps' scales enter the gradient.
    let action_in = Affine {
        scale: vec![0.5, 2.0],
        offset: vec![0.1, -0.2],
    };
    let state_out = Affine {
        scale: vec![3.0, 0.5, 1.5],
        offset: vec![1.0, 0.0, -1.0],
    };
    let first_row = vec![0.0; ns];
    let objective = |a: &[f64]| -> f64 {
        let batch = Batch {
            start: &z0,
            actions: a,
            action_in: &action_in,
            state_out: &state_out,
            first_row: &first_row,
            samples: 1,
            steps,
        };
        kernel
            .run(&batch)
            .iter()
            .zip(&weights)
            .map(|(s, w)| s * w)
            .sum()
    };
    let gradient = kernel.action_gradient(&z0, &actions, &action_in, &state_out, &weights);
    assert_eq!(gradient.len(), steps * na);
    let largest = gradient.iter().fold(0.0f64, |m, g| m.max(g.abs()));
    assert!(largest > 1e-2, "gradient {gradient:?} is too small to test");
    for i in 0..steps * na {
        let h = 1e-2;
        let (mut up, mut down) = (actions.clone(), actions.clone());
        up[i] += h;
        down[i] -= h;
        let numeric = (objective(&up) - objective(&down)) / (2.0 * h);
        assert!(
            (gradient[i] - numeric).abs() <= 2e-3 * largest,
            "action {i}: reverse sweep {}, central difference {numeric}",
            gradient[i]
        );
    }
}

fn double_integrator() -> basin_compiler::plan::Plan {
    use basin_compiler::plan::{CompileOptions, compile};
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/double-integrator");
    let path = dir.join("double-integrator.basin");
    let text = std::fs::read_to_string(&path)
        .expect("example spec")
        .replace("horizon: 8 s", "horizon: 1 s");
    let db = basin_compiler::Database::new();
    let file = db.add_file(path.display().to_string(), text);
    let (plan, diagnostics) = compile(
        &db,
        file,
        &CompileOptions {
            base_dir: Some(dir),
            allow_outside: false,
        },
    );
    plan.unwrap_or_else(|| panic!("the example does not compile: {diagnostics:?}"))
}

/// A world model for the double integrator's two states and one action, with a
/// normalization that is not the identity.
fn double_integrator_dynamics() -> ModelDynamics {
    let dims = Dims {
        n_states: 2,
        n_actions: 1,
        latent: 6,
        hidden: 12,
        patch: None,
        angle: None,
    };
    let normalization = Normalization {
        state_mean: vec![4.0, 1.0],
        state_std: vec![3.0, 0.8],
        action_mean: vec![0.1],
        action_std: vec![0.6],
    };
    ModelDynamics::new(random_model(dims, 9, 1.0), normalization, 1.0, None).expect("dynamics")
}

#[test]
fn model_dynamics_match_candle_in_si_units() {
    let dynamics = double_integrator_dynamics();
    let norm = dynamics.normalization.clone();
    let (samples, steps) = (5, 7);
    let mut rng = Rng::new(21);
    let state = [2.5, -0.3];
    let actions: Vec<f64> = (0..samples * steps)
        .map(|_| rng.uniform() * 2.0 - 1.0)
        .collect();
    let got = dynamics
        .rollout(&state, &actions, samples, steps, 0.1)
        .expect("rollout");

    let model = &dynamics.model;
    let start: Vec<f32> = state
        .iter()
        .enumerate()
        .map(|(j, &v)| (v as f32 - norm.state_mean[j]) / norm.state_std[j])
        .collect();
    let start = Tensor::from_vec(start, (1, 2), &Device::Cpu)
        .and_then(|t| t.repeat((samples, 1)))
        .expect("start");
    let per_step: Vec<Tensor> = (0..steps)
        .map(|k| {
            let rows: Vec<f32> = (0..samples)
                .map(|s| (actions[s * steps + k] as f32 - norm.action_mean[0]) / norm.action_std[0])
                .collect();
            Tensor::from_vec(rows, (samples, 1), &Device::Cpu).expect("tensor")
        })
        .collect();
    let expected = model.rollout(&start, &per_step).expect("candle rollout");
    for s in 0..samples {
        assert_eq!(
            &got[s * (steps + 1) * 2..][..2],
            &state[..],
            "row 0 of sample {s}"
        );
        for (k, tensor) in expected.iter().enumerate() {
            let rows: Vec<f32> = tensor
                .flatten_all()
                .and_then(|t| t.to_vec1())
                .expect("values");
            for j in 0..2 {
                let e = f64::from(rows[s * 2 + j] * norm.state_std[j] + norm.state_mean[j]);
                let g = got[(s * (steps + 1) + k + 1) * 2 + j];
                assert!(
                    (g - e).abs() <= 1e-4 * (1.0 + e.abs()),
                    "sample {s}, step {k}, state {j}: kernel {g}, candle {e}"
                );
            }
        }
    }
}

/// The gradient the refinement uses, the JIT's energy gradient carried back through the
/// model's rollout plus its direct action part, against central differences of the energy.
#[test]
fn energy_gradient_through_the_model_matches_differences() {
    let plan = double_integrator();
    let scorer = Scorer::new(plan.clone(), vec![None; plan.contexts.len()]);
    let dynamics = double_integrator_dynamics();
    let steps = plan.horizon.as_ref().expect("horizon").steps as usize;
    let state = [1.0, 0.5];
    let mut rng = Rng::new(4);
    let actions: Vec<f64> = (0..steps).map(|_| rng.uniform() * 1.6 - 0.8).collect();
    let energy = |a: &[f64]| -> f64 {
        let states = dynamics.rollout(&state, a, 1, steps, 0.1).expect("rollout");
        scorer.evaluate(0.0, &states, a).total
    };
    let states = dynamics
        .rollout(&state, &actions, 1, steps, 0.1)
        .expect("rollout");
    let (evaluation, direct) = scorer.gradient(0.0, &states, &actions);
    assert!(evaluation.total.is_finite());
    let through = dynamics
        .action_gradient(&state, &actions, 0.1, &direct.states)
        .expect("the model has a reverse pass")
        .expect("gradient");
    let gradient: Vec<f64> = through
        .iter()
        .zip(&direct.actions)
        .map(|(t, d)| t + d)
        .collect();
    let largest = gradient.iter().fold(0.0f64, |m, g| m.max(g.abs()));
    assert!(largest > 1e-3, "gradient {gradient:?} is too small to test");
    // The penalties are sharp (softplus at τ = 0.01), so the step is small; the states are
    // `f32`, so the tolerance is loose.
    for i in 0..steps {
        let h = 1e-4;
        let (mut up, mut down) = (actions.clone(), actions.clone());
        up[i] += h;
        down[i] -= h;
        let numeric = (energy(&up) - energy(&down)) / (2.0 * h);
        assert!(
            (gradient[i] - numeric).abs() <= 3e-2 * largest,
            "action {i}: reverse sweep {}, central difference {numeric}",
            gradient[i]
        );
    }
}
