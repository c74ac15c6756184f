//! `basin train`: trains the world model of a spec's `learned` world block on simulated
//! episodes (or a `basin simulate` file), prints its evaluation and saves the checkpoint.
//!
//! The checkpoint goes to `.basin/SPEC.WORLD.world.safetensors` in the spec's folder unless
//! `-o` names another path, with the evaluation report beside it as `CHECKPOINT.eval.txt`.
//! A checkpoint that already fits the plan and the requested settings is reused, so running
//! the command twice trains once; `--retrain` trains anyway.
//!
//! A world that learns from a design (`from simulate(DESIGN, load_test(…))`) is a surrogate
//! of the design's scenario: the command simulates the world block's `samples` random
//! designs, trains the surrogate `basin run` would train, and prints its held-out error.
//! Its checkpoint is `.basin/SPEC.WORLD.surrogate.safetensors`.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use basin_compiler::diagnostics;
use anyhow::Context as _;
use basin_compiler::plan::Plan;
use basin_runtime::model::{
    EnsureOptions, Origin, Overrides, Reuse, Surrogate, SurrogateOrigin, SurrogateTarget,
    ensure_model, ensure_surrogate, open_device,
};

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DeviceArg {
    Cpu,
    /// The first CUDA GPU; needs a build with `--features cuda`.
    Cuda,
}

#[derive(clap::Args)]
pub struct TrainArgs {
    /// The spec file.
    file: PathBuf,
    /// Train on the episodes of this file, written by `basin simulate`, instead of
    /// simulating new ones.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Device to train on.
    #[arg(long, value_enum, default_value = "cpu")]
    device: DeviceArg,
    /// Training epochs (default: the world block's `epochs`, else 20).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    epochs: Option<u32>,
    /// Episodes to simulate (default: the world block's `episodes`, else 100).
    #[arg(long, conflicts_with = "data", value_parser = clap::value_parser!(u32).range(2..))]
    episodes: Option<u32>,
    /// The learned world to train (default: the spec's first learned world).
    #[arg(long)]
    world: Option<String>,
    /// Seed of the simulated episodes and of training.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// The checkpoint file to write (default: `.basin/SPEC.WORLD.world.safetensors` next to
    /// the spec).
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// Train even when the checkpoint fits the plan, replacing it (also an unreadable one).
    #[arg(long)]
    retrain: bool,
    /// Allow context files outside the spec's folder.
    #[arg(long)]
    allow_outside: bool,
}

pub fn run(args: TrainArgs) -> anyhow::Result<ExitCode> {
    // The device is checked first, so a build without CUDA fails before any work.
    let device = open_device(args.device == DeviceArg::Cuda)?;

    let text = super::read_spec(&args.file)?;
    let name = args.file.display().to_string();
    let db = basin_compiler::Database::new();
    let file = db.add_file(name.clone(), text.clone());
    let spec_dir = match args.file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let options = basin_compiler::plan::CompileOptions {
        base_dir: Some(spec_dir.clone()),
        allow_outside: args.allow_outside,
    };
    let (plan, found) = basin_compiler::plan::compile(&db, file, &options);
    eprint!(
        "{}",
        diagnostics::render(&name, &text, &found, std::io::stderr().is_terminal())
    );
    let Some(plan) = plan else {
        return Ok(ExitCode::from(1));
    };

    if plan.agents.is_empty()
        && let Some(target) = SurrogateTarget::select(&plan)?
        && args.world.as_deref().is_none_or(|w| w == target.world.name)
    {
        return train_surrogate(&plan, &target, &spec_dir, &args);
    }

    let options = EnsureOptions {
        checkpoint: args.output,
        world: args.world,
        overrides: Overrides {
            episodes: args.episodes.map(|n| n as usize),
            epochs: args.epochs.map(|n| n as usize),
        },
        data: args.data,
        seed: args.seed,
        device,
        reuse: if args.retrain {
            Reuse::Never
        } else {
            Reuse::IfFits
        },
        progress: std::io::stderr().is_terminal(),
    };
    let ensured = ensure_model(&plan, &spec_dir, &options)?;
    print!("{}", ensured.report);
    match ensured.origin {
        Origin::Trained => eprintln!("wrote `{}`", ensured.path.display()),
        Origin::Loaded => eprintln!(
            "`{}` already fits this plan, so it was reused; pass `--retrain` to train again",
            ensured.path.display()
        ),
    }
    Ok(ExitCode::SUCCESS)
}

/// Trains (or reuses) the surrogate of a design problem's scenario and prints what it is.
fn train_surrogate(
    plan: &Plan,
    target: &SurrogateTarget<'_>,
    spec_dir: &std::path::Path,
    args: &TrainArgs,
) -> anyhow::Result<ExitCode> {
    let world = &target.world.name;
    let unused = [
        (args.data.is_some(), "--data"),
        (args.episodes.is_some(), "--episodes"),
        (args.epochs.is_some(), "--epochs"),
        (args.device == DeviceArg::Cuda, "--device cuda"),
    ];
    if let Some((_, flag)) = unused.iter().find(|(given, _)| *given) {
        anyhow::bail!(
            "`{flag}` does not apply to world `{world}`, which learns a surrogate of design `{}`; try setting `samples` and `epochs` in its world block instead",
            target.design.name
        );
    }
    let path = args
        .output
        .clone()
        .unwrap_or_else(|| target.default_checkpoint(plan, spec_dir));
    if args.retrain && path.exists() {
        // Only a readable surrogate is replaced, so a wrong `-o` never deletes another file.
        Surrogate::load(&path, target)
            .with_context(|| format!("`{}` is not a surrogate checkpoint; not replacing it", path.display()))?;
        std::fs::remove_file(&path).with_context(|| format!("cannot replace `{}`", path.display()))?;
    }
    let (surrogate, origin) = ensure_surrogate(plan, target, &path, None)
        .context("cannot train the surrogate of the design scenario")?;
    println!("surrogate `{world}` of design `{}`", target.design.name);
    println!("{}", surrogate.describe());
    match origin {
        SurrogateOrigin::Loaded(p) => eprintln!(
            "`{}` already fits this plan, so it was reused; pass `--retrain` to train again",
            p.display()
        ),
        _ => eprintln!("wrote `{}`", path.display()),
    }
    Ok(ExitCode::SUCCESS)
}
