//! `basin`: the command-line program of the Basin toolchain.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use basin_compiler::db::check_file;
use basin_compiler::diagnostics;
use basin_compiler::{Database, SourceFile};
use clap::{Parser, Subcommand, ValueEnum};

mod design_cmd;
mod run;
mod simulate;
mod snapshot;
mod train;

#[derive(Parser)]
#[command(name = "basin", version, about = "Compile, check and run Basin constraint specs")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
enum Format {
    Text,
    Json,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
enum Emit {
    Plan,
    Json,
    /// The Cranelift IR of the energy function that the JIT compiles, with term energies and
    /// the gradient.
    Clif,
}

#[derive(Subcommand)]
enum Command {
    /// Parse and check spec files, printing every diagnostic.
    Check {
        /// Spec files to check.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Output format of the diagnostics.
        #[arg(long, value_enum, default_value = "text")]
        format: Format,
    },
    /// Compile a spec into its plan: energy terms and the control problem.
    Compile {
        /// The spec file.
        file: PathBuf,
        /// What to print: the plan's text form, its JSON form, or the Cranelift IR of its
        /// energy function.
        #[arg(long, value_enum, default_value = "plan")]
        emit: Emit,
        /// Write the output to this file (atomically) instead of standard output.
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// Allow context files outside the spec's folder.
        #[arg(long)]
        allow_outside: bool,
    },
    /// Compare each spec's compiled plan with its committed snapshot `NAME.plan`.
    Test {
        /// Files or folders to search for `.basin` specs (default: the current folder).
        paths: Vec<PathBuf>,
        /// Write new and changed snapshots.
        #[arg(long)]
        accept: bool,
        /// Ask about each new or changed snapshot in the terminal.
        #[arg(long, conflicts_with = "accept")]
        review: bool,
        /// Output format of the results.
        #[arg(long, value_enum, default_value = "text")]
        format: Format,
        /// Also write the results as JUnit XML to this file.
        #[arg(long)]
        junit: Option<PathBuf>,
    },
    /// Simulate a spec's agents (or load-test random designs) and write the data as safetensors.
    Simulate(simulate::SimulateArgs),
    /// Train the world model of a spec's `learned` world block and save its checkpoint.
    Train(train::TrainArgs),
    /// Plan and act in closed loop on the spec's physics scenario, and report the run.
    Run(run::RunArgs),
    /// Score a trajectory recorded by `basin run --out` against a spec, without planning.
    Judge(run::JudgeArgs),
    /// Run the language server over stdin and stdout, for editors.
    Lsp,
    /// Format spec files in place, keeping comments.
    Fmt {
        /// Spec files to format.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Report files that are not formatted instead of rewriting them.
        #[arg(long)]
        check: bool,
    },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("BASIN_LOG").unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Check { files, format } => check(&files, format),
        Command::Fmt { files, check } => fmt(&files, check),
        Command::Lsp => basin_lsp::run_stdio().map(|()| ExitCode::SUCCESS).context("the language server failed"),
        Command::Test { paths, accept, review, format, junit } => {
            snapshot::run(snapshot::Options { paths, accept, review, json: format == Format::Json, junit })
        }
        Command::Compile { file, emit, output, allow_outside } => compile(&file, emit, output.as_ref(), allow_outside),
        Command::Simulate(args) => simulate::run(args),
        Command::Run(args) => run::run(args),
        Command::Judge(args) => run::judge_trajectory(args),
        Command::Train(args) => train::run(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// Reads a spec as UTF-8, naming the file in the error.
fn read_spec(path: &PathBuf) -> anyhow::Result<String> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read `{}`", path.display()))?;
    String::from_utf8(bytes).map_err(|e| {
        anyhow::anyhow!("`{}` is not valid UTF-8 (invalid byte at offset {}); try saving it as UTF-8", path.display(), e.utf8_error().valid_up_to())
    })
}

fn check(files: &[PathBuf], format: Format) -> anyhow::Result<ExitCode> {
    let db = Database::new();
    let mut errors = false;
    let mut records = Vec::new();
    let color = std::io::stderr().is_terminal();
    for path in files {
        let text = read_spec(path)?;
        let name = path.display().to_string();
        let file: SourceFile = db.add_file(name.clone(), text.clone());
        let checked = check_file(&db, file);
        errors |= checked.has_errors();
        match format {
            Format::Text => eprint!("{}", diagnostics::render(&name, &text, &checked.diagnostics, color)),
            Format::Json => records.extend(checked.diagnostics.iter().map(|d| diagnostics::to_json(&name, &text, d))),
        }
    }
    if format == Format::Json {
        write_stdout(&(serde_json::to_string_pretty(&records)? + "\n"))?;
    }
    Ok(if errors { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

fn compile(path: &PathBuf, emit: Emit, output: Option<&PathBuf>, allow_outside: bool) -> anyhow::Result<ExitCode> {
    let text = read_spec(path)?;
    let name = path.display().to_string();
    let db = Database::new();
    let file = db.add_file(name.clone(), text.clone());
    let base_dir = path.parent().map(|p| if p.as_os_str().is_empty() { PathBuf::from(".") } else { p.to_path_buf() });
    let options = basin_compiler::plan::CompileOptions { base_dir, allow_outside };
    let (plan, diagnostics) = basin_compiler::plan::compile(&db, file, &options);
    eprint!("{}", diagnostics::render(&name, &text, &diagnostics, std::io::stderr().is_terminal()));
    let Some(plan) = plan else {
        return Ok(ExitCode::from(1));
    };
    let rendered = match emit {
        Emit::Plan => basin_compiler::plan::to_text(&plan),
        Emit::Json => serde_json::to_string_pretty(&plan)? + "\n",
        Emit::Clif => basin_compiler::jit::clif(&plan, basin_compiler::jit::Outputs::ALL)?,
    };
    match output {
        Some(out) => write_atomically(out, &rendered)?,
        None => write_stdout(&rendered)?,
    }
    Ok(ExitCode::SUCCESS)
}

fn fmt(files: &[PathBuf], check_only: bool) -> anyhow::Result<ExitCode> {
    let mut unformatted = false;
    for path in files {
        let text = read_spec(path)?;
        let name = path.display().to_string();
        let formatted = match basin_compiler::fmt::format_source(&text) {
            Ok(f) => f,
            Err(diags) => {
                eprint!("{}", diagnostics::render(&name, &text, &diags, std::io::stderr().is_terminal()));
                eprintln!("error: `{name}` has syntax errors, so it was left unchanged");
                return Ok(ExitCode::from(1));
            }
        };
        if formatted == text {
            continue;
        }
        if check_only {
            println!("{name} is not formatted");
            unformatted = true;
        } else {
            write_atomically(path, &formatted)?;
        }
    }
    Ok(if unformatted { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

/// Writes to standard output. A reader that closed the pipe early, as `basin check --format
/// json | head` does, ends the output quietly instead of failing.
fn write_stdout(text: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}

/// Writes through a temporary file in the same folder, then renames it over `path`, so a
/// crash never leaves a half-written file.
fn write_atomically(path: &std::path::Path, text: &str) -> anyhow::Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.basin-tmp-{}", std::process::id()));
    std::fs::write(&tmp, text).with_context(|| format!("cannot write `{}`", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot replace `{}`", path.display()))?;
    Ok(())
}
