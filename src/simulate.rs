//! `basin simulate`: runs a spec's physics scenarios and writes the episodes (or, for a
//! design problem, the load-test outcomes of random designs) as a safetensors file.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use basin_compiler::diagnostics;
use basin_runtime::scenario::{SimulateOptions, SimulatedData, Start, simulate, write_dataset};

#[derive(clap::Args)]
pub struct SimulateArgs {
    /// The spec file.
    file: PathBuf,
    /// Episodes to simulate; for a design problem, random designs to load-test.
    #[arg(long, default_value_t = 100)]
    episodes: usize,
    /// Seed of the random starts, actions and designs; the same seed writes the same data.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// The safetensors file to write (atomically).
    #[arg(short, long)]
    output: PathBuf,
    /// Steps per episode (default: the plan's horizon).
    #[arg(long)]
    steps: Option<usize>,
    /// Seconds per step (default: the plan's step).
    #[arg(long)]
    step: Option<f64>,
    /// Start every episode at the plan's start state instead of a random one.
    #[arg(long)]
    plan_start: bool,
    /// Allow context files outside the spec's folder.
    #[arg(long)]
    allow_outside: bool,
}

pub fn run(args: SimulateArgs) -> anyhow::Result<ExitCode> {
    let text = super::read_spec(&args.file)?;
    let name = args.file.display().to_string();
    let db = basin_compiler::Database::new();
    let file = db.add_file(name.clone(), text.clone());
    let base_dir = args.file.parent().map(|p| {
        if p.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            p.to_path_buf()
        }
    });
    let options = basin_compiler::plan::CompileOptions {
        base_dir: base_dir.clone(),
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

    let options = SimulateOptions {
        episodes: args.episodes,
        seed: args.seed,
        steps: args.steps,
        step: args.step,
        start: if args.plan_start {
            Start::Plan
        } else {
            Start::Random
        },
        progress: std::io::stderr().is_terminal(),
    };
    let started = Instant::now();
    let data = simulate(&plan, base_dir.as_deref(), &options)?;
    let seconds = started.elapsed().as_secs_f64();
    write_dataset(&args.output, &plan, args.seed, &data)?;

    match &data {
        SimulatedData::Episodes(episodes) => {
            let steps = episodes.seeds.len() * episodes.steps;
            eprintln!(
                "wrote {} episodes of {} steps to `{}` ({steps} steps in {seconds:.1} s, {:.0} steps/s)",
                episodes.seeds.len(),
                episodes.steps,
                args.output.display(),
                steps as f64 / seconds.max(1e-9)
            );
        }
        SimulatedData::Designs(designs) => {
            eprintln!(
                "wrote {} load-tested designs to `{}` in {seconds:.1} s",
                designs.seeds.len(),
                args.output.display()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
