//! The learned world model against its two baselines on the dynamics of the example
//! scenarios other than the pendulum (which `model.rs` covers), with settings small enough
//! for the debug profile; and the occupancy patch a mobile robot's model reads.
//!
//! - The double integrator is linear, so linear least squares fits it to round-off and no
//!   model can beat it; the learned model must come within [`LINEAR_TOLERANCE`] of it.
//! - The warehouse robot (`std.robots.diff_drive` on the example's floor plan) is simulated
//!   by its rapier scenario, and its model reads the egocentric occupancy patch.

use std::path::{Path, PathBuf};

use basin_compiler::plan::{CompileOptions, Plan, compile};
use basin_runtime::context::Grid;
use basin_runtime::model::{
    self, CheckpointError, Dataset, Dims, EvalTable, Episode, Meta, Normalization, Overrides, PatchSampler, PatchSpec,
    TrainConfig, WorldModel, WorldSettings, WorldTarget,
};
use basin_runtime::mpc::{Dynamics, ModelDynamics, MpcError};
use candle_core::Device;

/// How far the learned model may trail least squares on linear dynamics, in training
/// standard deviations of open-loop RMS error (the unit of the evaluation table). Least
/// squares reaches round-off there; a network trained by stochastic gradients in `f32`
/// starting from least squares stays within a few 1e-4 of it.
const LINEAR_TOLERANCE: f64 = 0.005;

/// Trains on 80% of `data` and returns the evaluation table on the held-out 20%.
fn evaluation(data: &Dataset, config: &TrainConfig, patches: Option<PatchSampler>) -> EvalTable {
    let trained = model::train_model(data, config, patches, None, "test".into(), &Device::Cpu, false).expect("training");
    let table = trained.meta.evaluation.expect("an evaluation table");
    println!("{}", table.render());
    table
}

/// Returns the rows of `table` at 10 and 40 steps: `(steps, learned, constant velocity, linear)`.
fn long_rows(table: &EvalTable) -> Vec<(usize, f64, f64, f64)> {
    let rows: Vec<_> = (0..table.horizons.len())
        .filter(|&i| table.horizons[i] >= 10)
        .map(|i| (table.horizons[i], table.learned[i], table.constant_velocity[i], table.linear[i]))
        .collect();
    assert_eq!(rows.iter().map(|r| r.0).collect::<Vec<_>>(), [10, 40], "{}", table.render());
    rows
}

/// `x'' = u`, integrated exactly over steps of `dt` (the block of
/// `examples/double-integrator`, without its physics engine).
fn double_integrator_data(episodes: usize, steps: usize, seed: u64) -> Dataset {
    let mut rng = model::Rng::new(seed);
    let mut uniform = move || (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
    let dt = 0.1;
    let episodes = (0..episodes)
        .map(|_| {
            let (mut x, mut v) = ((uniform() - 0.5) * 10.0, (uniform() - 0.5) * 2.0);
            let mut u = 0.0;
            let mut states = vec![x as f32, v as f32];
            let mut actions = Vec::new();
            for _ in 0..steps {
                // Smooth random acceleration within the example's ±1 m/s².
                u = (u + 0.15 * (0.0 - u) + 0.6 * (uniform() - 0.5)).clamp(-1.0, 1.0);
                x += v * dt + 0.5 * u * dt * dt;
                v += u * dt;
                actions.push(u as f32);
                states.extend([x as f32, v as f32]);
            }
            Episode { states, actions }
        })
        .collect();
    Dataset { state_names: vec!["position".into(), "velocity".into()], action_names: vec!["acceleration".into()], step: dt, episodes }
}

#[test]
fn double_integrator_matches_least_squares() {
    let data = double_integrator_data(60, 80, 3);
    let config = TrainConfig { latent: 8, hidden: 32, epochs: 20, steps_per_epoch: 40, batch: 64, ..TrainConfig::default() };
    let table = evaluation(&data, &config, None);
    for (steps, learned, constant_velocity, linear) in long_rows(&table) {
        assert!(linear < 1e-3, "least squares should fit linear dynamics to round-off at {steps} steps: {linear}");
        assert!(
            learned <= linear + LINEAR_TOLERANCE,
            "learned {learned} trails least squares {linear} by more than {LINEAR_TOLERANCE} at {steps} steps"
        );
        assert!(learned < constant_velocity, "learned {learned} lost to constant velocity {constant_velocity} at {steps} steps");
    }
}

fn warehouse() -> (Plan, PathBuf) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/warehouse");
    let path = dir.join("warehouse.basin");
    let text = std::fs::read_to_string(&path).expect("the warehouse example");
    let db = basin_compiler::Database::new();
    let file = db.add_file(path.display().to_string(), text);
    let options = CompileOptions { base_dir: Some(dir.clone()), allow_outside: false };
    let (plan, diagnostics) = compile(&db, file, &options);
    (plan.unwrap_or_else(|| panic!("the example did not compile: {diagnostics:#?}")), dir)
}

#[test]
fn warehouse_model_with_patch_beats_baselines() {
    let (plan, dir) = warehouse();
    let target = WorldTarget::select(&plan, None).expect("a learned world");
    let spec = target.patch_spec().expect("the robot on a floor plan observes a patch");
    // The pose is integrated from the base's forward velocity and turn rate.
    assert_eq!(spec, PatchSpec::standard([0, 1, 2]).with_velocity([3, 4]));
    let grid = target.grid(Some(&dir)).expect("the floor plan").expect("a grid");
    let data = target.simulate(&plan, Some(&dir), 120, 0, false).expect("simulated episodes");
    let config = TrainConfig { latent: 16, hidden: 64, epochs: 8, steps_per_epoch: 40, batch: 64, ..TrainConfig::default() };
    let table = evaluation(&data, &config, Some(PatchSampler::new(spec, &grid)));
    for (steps, learned, constant_velocity, linear) in long_rows(&table) {
        assert!(
            learned < constant_velocity && learned < linear,
            "at {steps} steps learned {learned} did not beat constant velocity {constant_velocity} and least squares {linear}"
        );
    }
}

/// An untrained model of a diff-drive robot (pose and velocities) whose observations carry
/// the standard patch.
fn patch_model() -> (WorldModel, Normalization) {
    let dims = Dims { n_states: 5, n_actions: 2, latent: 8, hidden: 16, patch: Some(PatchSpec::standard([0, 1, 2]).with_velocity([3, 4])), angle: None };
    let norm = Normalization { state_mean: vec![5.0, 5.0, 0.0, 0.0, 0.0], state_std: vec![3.0, 3.0, 1.0, 0.5, 1.0], action_mean: vec![0.0; 2], action_std: vec![1.0; 2] };
    (WorldModel::new(dims, &Device::Cpu, 7).expect("model"), norm)
}

#[test]
fn model_dynamics_cuts_the_patch_from_the_current_map() {
    let (model, norm) = patch_model();
    let missing = ModelDynamics::new(model, norm.clone(), 1.0, None);
    assert!(matches!(missing, Err(MpcError::NoMap)), "a patch model without a map was accepted");

    // 10 m × 10 m of 10 cm cells, free; then a wall across x ≥ 6 m.
    let free = Grid::free(100, 100, 0.1);
    let walled = Grid::from_cells(100, 100, 0.1, (0..100 * 100).map(|i| i % 100 >= 60).collect());
    let (model, norm) = patch_model();
    let dynamics = ModelDynamics::new(model, norm, 1.0, Some(&free)).expect("dynamics");
    let state = [4.5, 5.0, 0.0, 0.3, 0.0];
    let actions = [0.5, 0.0].repeat(5);

    let observation = dynamics.observe(&state);
    assert_eq!(observation.len(), 5 + 256);
    assert_eq!(observation[..3], [0.0; 3], "the encoder saw the pose of a base whose pose is integrated");
    assert!(observation[5..].iter().all(|v| *v == 0.0), "a free map gave a blocked patch");
    let before = dynamics.rollout(&state, &actions, 1, 5, 0.1).expect("rollout");

    // The run's map gains the wall: the next rollout must see it 1.5 m ahead (patch rows
    // 10 to 15 of 16, each 25 cm deep from 1 m behind the robot).
    dynamics.replace_grid(&walled);
    let observation = dynamics.observe(&state);
    let blocked: usize = observation[5..].iter().filter(|v| **v == 1.0).count();
    assert_eq!(blocked, 6 * 16, "expected six blocked rows of 16 cells");
    let after = dynamics.rollout(&state, &actions, 1, 5, 0.1).expect("rollout");
    assert_eq!(&after[..5], &state, "row 0 of a rollout is the start state");
    assert_ne!(before[5..], after[5..], "the rollout ignored the new obstacle");
    // Each pose follows from the previous one and the velocities at both ends of the step.
    for k in 1..=5 {
        let (previous, row) = (&after[(k - 1) * 5..k * 5], &after[k * 5..(k + 1) * 5]);
        let heading = previous[2] + 0.05 * (previous[4] + row[4]);
        let distance = 0.05 * (previous[3] + row[3]);
        let mid = 0.5 * (previous[2] + heading);
        assert!((row[2] - heading).abs() < 1e-12, "heading of row {k}");
        assert!((row[0] - previous[0] - distance * mid.cos()).abs() < 1e-12, "x of row {k}");
        assert!((row[1] - previous[1] - distance * mid.sin()).abs() < 1e-12, "y of row {k}");
    }
}

#[test]
fn patch_settings_are_part_of_the_model_hash_and_checkpoint() {
    let (plan, _) = warehouse();
    let target = WorldTarget::select(&plan, None).expect("a learned world");
    let settings = target.settings(Overrides::default()).expect("settings");
    let spec = settings.patch.expect("a patch");
    let base = target.model_hash(&plan, &settings);
    let finer = WorldSettings { patch: Some(PatchSpec { resolution: 0.1, ..spec }), ..settings.clone() };
    assert_ne!(target.model_hash(&plan, &finer), base, "the patch resolution did not change the hash");
    let without = WorldSettings { patch: None, ..settings.clone() };
    assert_ne!(target.model_hash(&plan, &without), base, "dropping the patch did not change the hash");

    let (model, normalization) = patch_model();
    let meta = Meta { plan_hash: base.clone(), dims: model.dims, normalization, config: settings.config, evaluation: None, surprise_threshold: 1.0 };
    let dir = std::env::temp_dir().join(format!("basin-model-patch-{}", std::process::id()));
    let path = dir.join("patch.safetensors");
    model::save(&path, &model, &meta).expect("save");
    let (loaded, loaded_meta) = model::load(&path, &base, &Device::Cpu).expect("load");
    assert_eq!(loaded_meta, meta);
    assert_eq!(loaded.dims.patch, Some(spec));
    let other = model::load(&path, &target.model_hash(&plan, &finer), &Device::Cpu).err().expect("a checkpoint of another patch is rejected");
    assert!(matches!(other, CheckpointError::PlanMismatch { .. }), "{other}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A checkpoint whose angle columns lie outside the state is rejected on load, before any
/// observation indexes them.
#[test]
fn checkpoint_angle_columns_are_checked() {
    let (plan, _) = warehouse();
    let target = WorldTarget::select(&plan, None).expect("a learned world");
    let settings = target.settings(Overrides::default()).expect("settings");
    let (mut model, normalization) = patch_model();
    model.dims.angle = Some([7, 8]);
    let meta = Meta { plan_hash: "angle".into(), dims: model.dims, normalization, config: settings.config, evaluation: None, surprise_threshold: 1.0 };
    let dir = std::env::temp_dir().join(format!("basin-model-angle-{}", std::process::id()));
    let path = dir.join("angle.safetensors");
    model::save(&path, &model, &meta).expect("save");
    let error = model::load(&path, "angle", &Device::Cpu).err().expect("out-of-range angle columns are rejected");
    assert!(error.to_string().contains("angle columns [7, 8]"), "{error}");
    let _ = std::fs::remove_dir_all(&dir);
}
