//! `basin train` through the real binary: training the example specs with small settings,
//! reusing a checkpoint that fits, rejecting corrupt, truncated and non-finite checkpoints,
//! checking `--data` files against the plan, `--device cuda` in a build without CUDA, and
//! the surrogate of a design world.

use std::path::{Path, PathBuf};
use std::process::Command;

use basin_runtime::model;

/// Small settings that keep each training run to a few seconds in a debug build.
const SMALL: [&str; 4] = ["--epochs", "2", "--episodes", "10"];

struct Output {
    code: i32,
    stdout: String,
    stderr: String,
}

fn basin(dir: &Path, args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_basin"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run basin");
    Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Creates a fresh folder containing a copy of `examples/NAME/NAME.basin`.
fn fixture(name: &str, test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("basin-train-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create fixture folder");
    let example = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(name)
        .join(format!("{name}.basin"));
    std::fs::copy(&example, dir.join(format!("{name}.basin"))).expect("copy example spec");
    dir
}

fn train(dir: &Path, spec: &str, extra: &[&str]) -> Output {
    let mut args = vec!["train", spec];
    args.extend(SMALL);
    args.extend(extra);
    basin(dir, &args)
}

/// Loads the checkpoint with the hash its own metadata stores and checks its shapes.
fn assert_loads(path: &Path, n_states: usize, n_actions: usize, latent: usize) -> model::Meta {
    let meta = model::read_meta(path).expect("checkpoint metadata");
    let device = model::open_device(false).expect("CPU device");
    let (world, loaded) = model::load(path, &meta.plan_hash, &device).expect("checkpoint loads");
    assert_eq!(world.dims.n_states, n_states);
    assert_eq!(world.dims.n_actions, n_actions);
    assert_eq!(world.dims.latent, latent);
    assert_eq!(loaded.config.epochs, 2);
    assert!(
        loaded.evaluation.is_some(),
        "no evaluation stored in {}",
        path.display()
    );
    assert!(
        loaded.surprise_threshold.is_finite(),
        "threshold {}",
        loaded.surprise_threshold
    );
    meta
}

#[test]
fn double_integrator_trains_then_reuses() {
    let dir = fixture("double-integrator", "reuse");
    let out = train(&dir, "double-integrator.basin", &[]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains("linear least squares"),
        "no evaluation table: {}",
        out.stdout
    );
    assert!(
        out.stdout.contains("samples/s"),
        "no training speed: {}",
        out.stdout
    );

    let checkpoint = dir.join(".basin/double-integrator.dynamics.world.safetensors");
    assert!(
        checkpoint.is_file(),
        "{} missing: {}",
        checkpoint.display(),
        out.stderr
    );
    let report = std::fs::read_to_string(model::eval_path(&checkpoint)).expect("evaluation report");
    assert!(report.contains("surprise threshold"), "{report}");
    // The spec's world block sets `latent: 8`.
    assert_loads(&checkpoint, 2, 1, 8);

    let before = std::fs::read(&checkpoint).expect("read checkpoint");
    let again = train(&dir, "double-integrator.basin", &[]);
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert!(
        again.stderr.contains("reused"),
        "second run did not reuse: {}",
        again.stderr
    );
    assert!(
        again.stdout.contains("linear least squares"),
        "stored report not printed: {}",
        again.stdout
    );
    assert_eq!(
        std::fs::read(&checkpoint).expect("read checkpoint"),
        before,
        "checkpoint was rewritten"
    );

    // A goal edit keeps the checkpoint, because goals are not part of the model hash.
    let spec = dir.join("double-integrator.basin");
    let text = std::fs::read_to_string(&spec).expect("read spec");
    std::fs::write(&spec, text.replace("within 5 cm", "within 2 cm")).expect("edit goal");
    let edited = train(&dir, "double-integrator.basin", &[]);
    assert_eq!(edited.code, 0, "{}", edited.stderr);
    assert!(
        edited.stderr.contains("reused"),
        "goal edit forced retraining: {}",
        edited.stderr
    );
}

#[test]
fn pendulum_trains_to_output_path() {
    let dir = fixture("pendulum", "output");
    let out = train(&dir, "pendulum.basin", &["-o", "models/arm.safetensors"]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let checkpoint = dir.join("models/arm.safetensors");
    assert!(
        checkpoint.is_file(),
        "{} missing: {}",
        checkpoint.display(),
        out.stderr
    );
    assert!(
        !dir.join(".basin").exists(),
        "the default path was written despite `-o`"
    );
    // The spec's world block sets `latent: 16`.
    assert_loads(&checkpoint, 2, 1, 16);
}

/// Writes `bytes` over the checkpoint, runs `basin train` again and checks the failure.
fn assert_rejected(dir: &Path, checkpoint: &Path, bytes: &[u8], expected: &str) {
    std::fs::write(checkpoint, bytes).expect("write damaged checkpoint");
    let out = train(dir, "double-integrator.basin", &[]);
    assert_eq!(
        out.code, 1,
        "damaged checkpoint ({expected}) accepted: {}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("double-integrator.dynamics.world.safetensors"),
        "error does not name the file: {}",
        out.stderr
    );
    assert!(
        out.stderr.contains(expected),
        "expected `{expected}` in: {}",
        out.stderr
    );
}

#[test]
fn damaged_checkpoints_are_errors() {
    let dir = fixture("double-integrator", "damaged");
    let out = train(&dir, "double-integrator.basin", &[]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let checkpoint = dir.join(".basin/double-integrator.dynamics.world.safetensors");
    let good = std::fs::read(&checkpoint).expect("read checkpoint");

    assert_rejected(
        &dir,
        &checkpoint,
        &good[..good.len() / 2],
        "not a valid safetensors file",
    );
    assert_rejected(
        &dir,
        &checkpoint,
        b"not a checkpoint",
        "not a valid safetensors file",
    );
    // The data section ends with the last tensor's bytes, so this poisons one weight.
    let mut poisoned = good.clone();
    let n = poisoned.len();
    poisoned[n - 4..].copy_from_slice(&f32::NAN.to_le_bytes());
    assert_rejected(&dir, &checkpoint, &poisoned, "non-finite");

    let retrained = train(&dir, "double-integrator.basin", &["--retrain"]);
    assert_eq!(
        retrained.code, 0,
        "--retrain did not replace the damaged file: {}",
        retrained.stderr
    );
    assert_loads(&checkpoint, 2, 1, 8);
}

#[test]
fn data_file_must_fit_plan() {
    let dir = fixture("pendulum", "data");
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("examples/double-integrator/double-integrator.basin"),
        dir.join("double-integrator.basin"),
    )
    .expect("copy second spec");
    let sim = basin(
        &dir,
        &[
            "simulate",
            "pendulum.basin",
            "--episodes",
            "10",
            "-o",
            "arm.safetensors",
        ],
    );
    assert_eq!(sim.code, 0, "{}", sim.stderr);

    // The double integrator's plan steps 200 ms, the pendulum's 50 ms.
    let step = basin(
        &dir,
        &[
            "train",
            "double-integrator.basin",
            "--data",
            "arm.safetensors",
        ],
    );
    assert_eq!(
        step.code, 1,
        "data with another step accepted: {}",
        step.stderr
    );
    assert!(
        step.stderr.contains("`arm.safetensors`"),
        "error does not name the file: {}",
        step.stderr
    );
    assert!(
        step.stderr.contains("step is 0.05 s"),
        "error does not give the step: {}",
        step.stderr
    );

    let sim = basin(
        &dir,
        &[
            "simulate",
            "pendulum.basin",
            "--episodes",
            "4",
            "--step",
            "0.2",
            "-o",
            "slow.safetensors",
        ],
    );
    assert_eq!(sim.code, 0, "{}", sim.stderr);
    let names = basin(
        &dir,
        &[
            "train",
            "double-integrator.basin",
            "--data",
            "slow.safetensors",
        ],
    );
    assert_eq!(
        names.code, 1,
        "data of another agent accepted: {}",
        names.stderr
    );
    assert!(
        names.stderr.contains("`slow.safetensors`"),
        "error does not name the file: {}",
        names.stderr
    );
    assert!(
        names.stderr.contains("no state `block.position`"),
        "error does not name the state: {}",
        names.stderr
    );

    let right = basin(
        &dir,
        &[
            "train",
            "pendulum.basin",
            "--data",
            "arm.safetensors",
            "--epochs",
            "2",
        ],
    );
    assert_eq!(right.code, 0, "{}", right.stderr);
    assert!(
        right.stdout.contains("trained on 8 episodes"),
        "{}",
        right.stdout
    );
    assert_loads(
        &dir.join(".basin/pendulum.dynamics.world.safetensors"),
        2,
        1,
        16,
    );
}

#[cfg(not(feature = "cuda"))]
#[test]
fn cuda_without_feature_is_error() {
    let dir = fixture("pendulum", "cuda");
    let out = basin(&dir, &["train", "pendulum.basin", "--device", "cuda"]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("built without CUDA; rebuild with `--features cuda`"),
        "{}",
        out.stderr
    );
    assert!(
        !dir.join(".basin").exists(),
        "work started before the device check"
    );
}

/// A design world trains the surrogate `basin run` uses, reuses it, retrains on request,
/// and refuses the flags of agent worlds.
#[test]
fn design_world_trains_its_surrogate() {
    let dir = fixture("chair", "surrogate");
    let spec = dir.join("chair.basin");
    let text = std::fs::read_to_string(&spec).expect("spec");
    let small = text.replace("samples: 2000, epochs: 1500", "samples: 40, epochs: 20");
    assert_ne!(small, text, "the chair's world block changed; update this test");
    std::fs::write(&spec, small).expect("write spec");

    let first = basin(&dir, &["train", "chair.basin"]);
    assert_eq!(first.code, 0, "{}", first.stderr);
    assert!(first.stdout.contains("surrogate `stability` of design `chair`"), "{}", first.stdout);
    assert!(first.stdout.contains("40 simulated designs (8 held out)"), "{}", first.stdout);
    let checkpoint = dir.join(".basin/chair.stability.surrogate.safetensors");
    assert!(checkpoint.is_file(), "no surrogate at {}", checkpoint.display());

    let second = basin(&dir, &["train", "chair.basin"]);
    assert_eq!(second.code, 0, "{}", second.stderr);
    assert!(second.stderr.contains("already fits this plan"), "{}", second.stderr);

    let again = basin(&dir, &["train", "chair.basin", "--retrain"]);
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert!(again.stderr.contains("wrote"), "{}", again.stderr);

    let flag = basin(&dir, &["train", "chair.basin", "--episodes", "10"]);
    assert_eq!(flag.code, 1, "{}", flag.stderr);
    assert!(flag.stderr.contains("`--episodes` does not apply to world `stability`"), "{}", flag.stderr);

    // `--retrain` never deletes a file that is not a surrogate checkpoint.
    let notes = dir.join("notes.safetensors");
    std::fs::write(&notes, "keep me").expect("write notes");
    let other = basin(&dir, &["train", "chair.basin", "--retrain", "-o", "notes.safetensors"]);
    assert_eq!(other.code, 1, "{}", other.stderr);
    assert!(other.stderr.contains("is not a surrogate checkpoint; not replacing it"), "{}", other.stderr);
    assert_eq!(std::fs::read_to_string(&notes).expect("notes kept"), "keep me");
    let _ = std::fs::remove_dir_all(&dir);
}
