//! World model tests on episodes of a damped, driven pendulum integrated in the test (RK4),
//! so the data and its physics are known independently of the simulator.

use std::path::PathBuf;

use basin_runtime::model::{self, CheckpointError, Dataset, Episode, Meta, Normalization, Observer, TrainConfig};
use candle_core::{Device, Tensor};

/// `θ'' = -(g/l) sin θ - c θ' + u / (m l²)` with `g/l = 9.81`, `c = 0.1`, `m l² = 1`.
fn pendulum_step(state: [f64; 2], torque: f64, dt: f64) -> [f64; 2] {
    let f = |s: [f64; 2]| [s[1], -9.81 * s[0].sin() - 0.1 * s[1] + torque];
    let k1 = f(state);
    let k2 = f([state[0] + 0.5 * dt * k1[0], state[1] + 0.5 * dt * k1[1]]);
    let k3 = f([state[0] + 0.5 * dt * k2[0], state[1] + 0.5 * dt * k2[1]]);
    let k4 = f([state[0] + dt * k3[0], state[1] + dt * k3[1]]);
    [
        state[0] + dt / 6.0 * (k1[0] + 2.0 * k2[0] + 2.0 * k3[0] + k4[0]),
        state[1] + dt / 6.0 * (k1[1] + 2.0 * k2[1] + 2.0 * k3[1] + k4[1]),
    ]
}

/// Episodes with smooth random torques within ±2 N·m, from random starts.
fn pendulum_data(episodes: usize, steps: usize, seed: u64) -> Dataset {
    let mut rng = model::Rng::new(seed);
    let mut uniform = move || (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
    let dt = 0.05;
    let mut out = Vec::new();
    for _ in 0..episodes {
        // Large swings, where the dynamics are far from linear, but never over the top, so
        // held-out episodes stay within the range of angles seen in training.
        let mut s = [(uniform() - 0.5) * 5.6, (uniform() - 0.5) * 1.0];
        let mut u = 0.0;
        let mut states = vec![s[0] as f32, s[1] as f32];
        let mut actions = Vec::new();
        for _ in 0..steps {
            // Ornstein-Uhlenbeck torque, clipped to the motor's limit.
            u = (u + 0.15 * (0.0 - u) + 0.6 * (uniform() - 0.5)).clamp(-2.0, 2.0);
            s = pendulum_step(s, u, dt);
            actions.push(u as f32);
            states.extend([s[0] as f32, s[1] as f32]);
        }
        out.push(Episode { states, actions });
    }
    Dataset { state_names: vec!["angle".into(), "angular_velocity".into()], action_names: vec!["torque".into()], step: dt, episodes: out }
}

fn small_config() -> TrainConfig {
    TrainConfig { latent: 16, hidden: 128, epochs: 12, steps_per_epoch: 40, batch: 64, horizon: 16, seed: 0, ..TrainConfig::default() }
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("basin-model-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch folder");
    dir.join("model.safetensors")
}

#[test]
fn training_beats_baselines_on_pendulum() {
    let data = pendulum_data(96, 100, 1);
    data.validate().expect("valid data");
    let (train, test) = data.split(0.2);
    let norm = Normalization::fit(&train);
    let observer = Observer::new(norm.clone(), None);
    let device = Device::Cpu;
    let cfg = small_config();
    let mut totals = Vec::new();
    let (world, _) = model::train(&train, &observer, &cfg, &device, |e, l| {
        println!("epoch {e}: {l:?}");
        totals.push(l.total)
    })
    .expect("training");
    assert!(totals.last() < totals.first(), "loss did not fall: {totals:?}");
    let table = model::evaluate(&world, &train, &test, &observer, &device).expect("evaluation");
    println!("{}", table.render());
    assert!(table.learned_wins_from(10), "learned model lost to a baseline:\n{}", table.render());

    let rows: Vec<f32> = train.episodes.iter().flat_map(|e| norm.state(&e.states[..2]).into_iter()).collect();
    let n = rows.len() / 2;
    let states = Tensor::from_vec(rows, (n, 2), &device).expect("tensor");
    let rank = model::effective_rank(&world, &states).expect("rank");
    // A collapsed embedding has an effective rank near 1; the pendulum state has two
    // dimensions, so the latent must spread over more than one direction.
    assert!(rank > 1.3, "latent collapsed: effective rank {rank}");
}

fn trained() -> (model::WorldModel, Meta) {
    let data = pendulum_data(8, 40, 2);
    let norm = Normalization::fit(&data);
    let observer = Observer::new(norm.clone(), None);
    let cfg = TrainConfig { epochs: 2, steps_per_epoch: 5, ..small_config() };
    let (world, _) = model::train(&data, &observer, &cfg, &Device::Cpu, |_, _| {}).expect("training");
    let threshold = model::surprise_threshold(&world, &data, &observer, &Device::Cpu).expect("threshold");
    assert!(threshold.is_finite() && threshold >= 0.0, "threshold {threshold}");
    let meta = Meta { plan_hash: "abc".into(), dims: world.dims, normalization: norm, config: cfg, evaluation: None, surprise_threshold: threshold };
    (world, meta)
}

#[test]
fn checkpoint_round_trip() {
    let (world, meta) = trained();
    let path = scratch("round-trip");
    model::save(&path, &world, &meta).expect("save");
    let (loaded, loaded_meta) = model::load(&path, "abc", &Device::Cpu).expect("load");
    assert_eq!(loaded_meta, meta);
    let s = Tensor::new(&[[0.3f32, -0.2], [1.0, 0.5]], &Device::Cpu).expect("tensor");
    let a = [Tensor::new(&[[0.1f32], [-0.4]], &Device::Cpu).expect("tensor")];
    let before: Vec<Vec<f32>> = world.rollout(&s, &a).expect("rollout")[0].to_vec2().expect("values");
    let after: Vec<Vec<f32>> = loaded.rollout(&s, &a).expect("rollout")[0].to_vec2().expect("values");
    assert_eq!(before, after);
}

#[test]
fn checkpoint_rejects_bad_files() {
    let (world, meta) = trained();
    let path = scratch("bad");
    model::save(&path, &world, &meta).expect("save");
    let good = std::fs::read(&path).expect("read");

    let mismatch = model::load(&path, "other", &Device::Cpu);
    assert!(matches!(mismatch, Err(CheckpointError::PlanMismatch { .. })), "{mismatch:?}", mismatch = mismatch.err());

    std::fs::write(&path, &good[..good.len() / 2]).expect("truncate");
    let truncated = model::load(&path, "abc", &Device::Cpu).err().expect("truncated file rejected");
    assert!(truncated.to_string().contains("model.safetensors"), "{truncated}");

    std::fs::write(&path, b"not a checkpoint at all").expect("garbage");
    let garbage = model::load(&path, "abc", &Device::Cpu).err().expect("garbage rejected");
    assert!(matches!(garbage, CheckpointError::Corrupt { .. }), "{garbage}");

    // A NaN in the last weight: the data section ends with the last tensor's bytes.
    let mut poisoned = good.clone();
    let n = poisoned.len();
    poisoned[n - 4..].copy_from_slice(&f32::NAN.to_le_bytes());
    std::fs::write(&path, &poisoned).expect("poison");
    let nan = model::load(&path, "abc", &Device::Cpu).err().expect("NaN rejected");
    assert!(nan.to_string().contains("non-finite"), "{nan}");

    let missing = model::load(&scratch("missing").with_file_name("absent.safetensors"), "abc", &Device::Cpu).err().expect("missing rejected");
    assert!(matches!(missing, CheckpointError::Io { .. }), "{missing}");
}
