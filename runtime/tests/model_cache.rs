//! `ensure_model`: training once, reusing a checkpoint that fits the plan, retraining when
//! the model-relevant part of the plan changes, and the policy for unreadable checkpoints.

use std::path::{Path, PathBuf};

use basin_compiler::plan::{CompileOptions, Plan, compile};
use basin_runtime::model::{
    self, EnsureOptions, Origin, Overrides, Reuse, WorldModelError, WorldTarget, ensure_model,
};

/// A double integrator with a world block small enough to train in about a second.
const SPEC: &str = "use std.robots.double_integrator
agent block = double_integrator { max_accel: 1 m/s^2 }
goal arrive { reach block.position -> 2 m within 5 cm }
world dynamics = learned { from simulate(block), episodes: 6, latent: 4, hidden: 16, epochs: 2, steps: 5 }
plan { step: 100 ms, horizon: 5 s }
";

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("basin-model-cache-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch folder");
    dir
}

fn compile_spec(dir: &Path, text: &str) -> Plan {
    let db = basin_compiler::Database::new();
    let file = db.add_file("cache.basin".to_string(), text.to_string());
    let options = CompileOptions {
        base_dir: Some(dir.to_path_buf()),
        allow_outside: false,
    };
    let (plan, diagnostics) = compile(&db, file, &options);
    plan.unwrap_or_else(|| panic!("the spec did not compile: {diagnostics:#?}"))
}

fn origin(plan: &Plan, dir: &Path, reuse: Reuse) -> Result<Origin, WorldModelError> {
    let options = EnsureOptions {
        reuse,
        ..EnsureOptions::default()
    };
    ensure_model(plan, dir, &options).map(|ensured| ensured.origin)
}

#[test]
fn ensure_model_trains_once_then_loads() {
    let dir = scratch("reuse");
    let plan = compile_spec(&dir, SPEC);
    let first = ensure_model(&plan, &dir, &EnsureOptions::default()).expect("first call");
    assert_eq!(first.origin, Origin::Trained);
    assert_eq!(
        first.path,
        dir.join(".basin/cache.dynamics.world.safetensors")
    );
    assert!(
        first.report.contains("surprise threshold"),
        "{}",
        first.report
    );

    let second = ensure_model(&plan, &dir, &EnsureOptions::default()).expect("second call");
    assert_eq!(second.origin, Origin::Loaded);
    assert_eq!(second.meta, first.meta);
    assert_eq!(
        second.report, first.report,
        "the stored report was not returned"
    );

    // Goals are not part of the model hash.
    let goal = compile_spec(&dir, &SPEC.replace("2 m within", "3 m within"));
    assert_eq!(
        origin(&goal, &dir, Reuse::IfFits).expect("goal edit"),
        Origin::Loaded
    );

    // A physical parameter and a world setting are.
    let heavier = compile_spec(&dir, &SPEC.replace("1 m/s^2", "2 m/s^2"));
    assert_eq!(
        origin(&heavier, &dir, Reuse::IfFits).expect("parameter edit"),
        Origin::Trained
    );
    let wider = compile_spec(&dir, &SPEC.replace("latent: 4", "latent: 6"));
    assert_eq!(
        origin(&wider, &dir, Reuse::IfFits).expect("setting edit"),
        Origin::Trained
    );
    assert_eq!(
        origin(&wider, &dir, Reuse::IfFits).expect("same settings"),
        Origin::Loaded
    );
    assert_eq!(
        origin(&wider, &dir, Reuse::Never).expect("forced"),
        Origin::Trained
    );
}

#[test]
fn model_hash_covers_model_only() {
    let dir = scratch("hash");
    let hash = |text: &str, overrides: Overrides| {
        let plan = compile_spec(&dir, text);
        let target = WorldTarget::select(&plan, None).expect("world target");
        let settings = target.settings(overrides).expect("settings");
        target.model_hash(&plan, &settings)
    };
    let base = hash(SPEC, Overrides::default());

    let constraint = SPEC.replace(
        "plan {",
        "constraint c { always abs(block.velocity) <= 1 m/s }\nplan {",
    );
    assert_eq!(
        hash(&constraint, Overrides::default()),
        base,
        "a constraint changed the hash"
    );
    assert_eq!(
        hash(
            &SPEC.replace("horizon: 5 s", "horizon: 6 s"),
            Overrides::default()
        ),
        base,
        "the horizon changed the hash"
    );
    assert_ne!(
        hash(
            &SPEC.replace("step: 100 ms", "step: 50 ms"),
            Overrides::default()
        ),
        base,
        "the step did not change the hash"
    );
    assert_ne!(
        hash(
            SPEC,
            Overrides {
                epochs: Some(3),
                episodes: None
            }
        ),
        base,
        "`--epochs` did not change the hash"
    );
    assert_ne!(
        hash(
            SPEC,
            Overrides {
                epochs: None,
                episodes: Some(7)
            }
        ),
        base,
        "`--episodes` did not change the hash"
    );
    // A flag equal to the world block's setting resolves to the same settings.
    let without_epochs = SPEC.replace("epochs: 2, ", "");
    assert_eq!(
        hash(
            &without_epochs,
            Overrides {
                epochs: Some(2),
                episodes: None
            }
        ),
        base
    );
}

#[test]
fn unreadable_checkpoint_is_error_unless_overwrite() {
    let dir = scratch("corrupt");
    let plan = compile_spec(&dir, SPEC);
    let path = dir.join(".basin/cache.dynamics.world.safetensors");
    std::fs::create_dir_all(path.parent().expect("folder")).expect("create folder");
    std::fs::write(&path, b"not a checkpoint").expect("write garbage");

    let error = origin(&plan, &dir, Reuse::IfFits).expect_err("garbage accepted");
    assert!(
        matches!(
            error,
            WorldModelError::Checkpoint(model::CheckpointError::Corrupt { .. })
        ),
        "{error}"
    );
    assert!(
        error
            .to_string()
            .contains("cache.dynamics.world.safetensors"),
        "{error}"
    );
    assert_eq!(
        std::fs::read(&path).expect("read"),
        b"not a checkpoint",
        "the file was replaced"
    );

    assert_eq!(
        origin(&plan, &dir, Reuse::IfFitsElseOverwrite).expect("overwrite"),
        Origin::Trained
    );
    assert_eq!(
        origin(&plan, &dir, Reuse::IfFits).expect("reuse"),
        Origin::Loaded
    );
}

#[test]
fn design_world_is_rejected() {
    let dir = scratch("design");
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/chair/chair.basin"),
    )
    .expect("chair example");
    let plan = compile_spec(&dir, &text);
    let error = WorldTarget::select(&plan, None).expect_err("design world accepted");
    assert!(
        matches!(error, WorldModelError::DesignWorld { .. }),
        "{error}"
    );
    let unknown = WorldTarget::select(&plan, Some("nothing")).expect_err("unknown world accepted");
    assert!(unknown.to_string().contains("`stability`"), "{unknown}");
}
