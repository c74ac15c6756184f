//! `basin test`: compare each spec's compiled plan with the snapshot committed beside it.
//!
//! A spec `NAME.basin` has its snapshot in `NAME.plan`, the plan's text form. A changed plan
//! fails with a unified diff; `--accept` writes new and changed snapshots atomically, and
//! `--review` prompts for each change in a terminal.

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use basin_compiler::Database;
use basin_compiler::diagnostics;
use basin_compiler::plan::{CompileOptions, compile, to_text};

/// The outcome of one spec.
#[derive(Debug)]
enum Outcome {
    Passed,
    /// The plan differs from the snapshot: the unified diff.
    Changed { diff: String, plan: String },
    /// No snapshot yet.
    Missing { plan: String },
    /// The spec has errors: rendered diagnostics.
    Broken { diagnostics: String },
}

struct Case {
    spec: PathBuf,
    snapshot: PathBuf,
    outcome: Outcome,
    seconds: f64,
}

pub struct Options {
    pub paths: Vec<PathBuf>,
    pub accept: bool,
    pub review: bool,
    pub json: bool,
    pub junit: Option<PathBuf>,
}

/// Finds every `.basin` file under `paths`, skipping hidden and git-ignored folders, sorted.
fn find_specs(paths: &[PathBuf]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for root in paths {
        if root.is_file() {
            out.push(root.clone());
            continue;
        }
        for entry in ignore::WalkBuilder::new(root).hidden(true).git_ignore(true).require_git(false).build().flatten() {
            let p = entry.path();
            if p.is_file() && p.extension().is_some_and(|e| e == "basin") {
                out.push(p.strip_prefix(".").unwrap_or(p).to_path_buf());
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

fn run_case(spec: &Path) -> Case {
    let started = std::time::Instant::now();
    let snapshot = spec.with_extension("plan");
    let name = spec.display().to_string();
    // The plan names its source by file name only, so a snapshot does not depend on the
    // folder `basin test` was started from.
    let source_name = spec.file_name().map_or(name.clone(), |n| n.to_string_lossy().into_owned());
    let outcome = match std::fs::read_to_string(spec) {
        Err(e) => Outcome::Broken { diagnostics: format!("error: cannot read `{name}`: {e}\n") },
        Ok(text) => {
            let db = Database::new();
            let file = db.add_file(source_name, text.clone());
            let base_dir = spec.parent().map(|p| if p.as_os_str().is_empty() { PathBuf::from(".") } else { p.to_path_buf() });
            let (plan, diags) = compile(&db, file, &CompileOptions { base_dir, allow_outside: false });
            match plan {
                None => Outcome::Broken { diagnostics: diagnostics::render(&name, &text, &diags, false) },
                Some(plan) => {
                    let plan = to_text(&plan);
                    match std::fs::read_to_string(&snapshot) {
                        Err(_) => Outcome::Missing { plan },
                        Ok(old) if old.replace("\r\n", "\n") == plan => Outcome::Passed,
                        Ok(old) => {
                            let old = old.replace("\r\n", "\n");
                            let diff = similar::TextDiff::from_lines(&old, &plan)
                                .unified_diff()
                                .context_radius(3)
                                .header(&snapshot.display().to_string(), "compiled plan")
                                .to_string();
                            Outcome::Changed { diff, plan }
                        }
                    }
                }
            }
        }
    };
    Case { spec: spec.to_path_buf(), snapshot, outcome, seconds: started.elapsed().as_secs_f64() }
}

pub fn run(options: Options) -> anyhow::Result<ExitCode> {
    if options.review && !std::io::stdin().is_terminal() {
        anyhow::bail!("`--review` needs a terminal to ask about each change; try `--accept` to write every new and changed snapshot");
    }
    let paths = if options.paths.is_empty() { vec![PathBuf::from(".")] } else { options.paths.clone() };
    let specs = find_specs(&paths);
    let mut cases: Vec<Case> = specs.iter().map(|s| run_case(s)).collect();
    let stdin = std::io::stdin();
    for case in &mut cases {
        let plan = match &case.outcome {
            Outcome::Changed { plan, .. } | Outcome::Missing { plan } => plan.clone(),
            _ => continue,
        };
        let accept = if options.review {
            match &case.outcome {
                Outcome::Changed { diff, .. } => eprintln!("{diff}"),
                _ => eprintln!("new snapshot for {}:\n{plan}", case.spec.display()),
            }
            eprint!("accept {}? [a]ccept, [r]eject, [s]kip: ", case.snapshot.display());
            std::io::stderr().flush()?;
            let mut answer = String::new();
            stdin.lock().read_line(&mut answer)?;
            answer.trim().starts_with('a')
        } else {
            options.accept
        };
        if accept {
            crate::write_atomically(&case.snapshot, &plan)?;
            case.outcome = Outcome::Passed;
        }
    }

    let passed = cases.iter().filter(|c| matches!(c.outcome, Outcome::Passed)).count();
    let failed = cases.len() - passed;
    if options.json {
        let records: Vec<serde_json::Value> = cases.iter().map(json_record).collect();
        println!("{}", serde_json::to_string_pretty(&serde_json::json!({ "passed": passed, "failed": failed, "specs": records }))?);
    } else {
        for case in &cases {
            print_case(case);
        }
    }
    if let Some(path) = &options.junit {
        crate::write_atomically(path, &junit(&cases))?;
    }
    if !options.json {
        println!("{passed} passed, {failed} failed");
    }
    Ok(if failed == 0 { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

fn print_case(case: &Case) {
    let spec = case.spec.display();
    match &case.outcome {
        Outcome::Passed => println!("pass    {spec}"),
        Outcome::Changed { diff, .. } => println!("changed {spec}\n{diff}"),
        Outcome::Missing { .. } => println!(
            "missing {spec}: no snapshot `{}`; try `basin test --accept {spec}` to create it",
            case.snapshot.display()
        ),
        Outcome::Broken { diagnostics } => println!("broken  {spec}\n{diagnostics}"),
    }
}

fn status(o: &Outcome) -> &'static str {
    match o {
        Outcome::Passed => "passed",
        Outcome::Changed { .. } => "changed",
        Outcome::Missing { .. } => "missing",
        Outcome::Broken { .. } => "broken",
    }
}

fn detail(o: &Outcome) -> String {
    match o {
        Outcome::Passed => String::new(),
        Outcome::Changed { diff, .. } => diff.clone(),
        Outcome::Missing { .. } => "no snapshot; run `basin test --accept` to create it".into(),
        Outcome::Broken { diagnostics } => diagnostics.clone(),
    }
}

fn json_record(case: &Case) -> serde_json::Value {
    serde_json::json!({
        "spec": case.spec.display().to_string(),
        "snapshot": case.snapshot.display().to_string(),
        "status": status(&case.outcome),
        "detail": detail(&case.outcome),
        "seconds": case.seconds,
    })
}

fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Control characters other than tab and newline are not allowed in XML 1.0.
            c if (c as u32) < 0x20 && c != '\t' && c != '\n' && c != '\r' => {}
            c => out.push(c),
        }
    }
    out
}

/// JUnit XML: one test suite, one test case per spec.
fn junit(cases: &[Case]) -> String {
    let failures = cases.iter().filter(|c| !matches!(c.outcome, Outcome::Passed)).count();
    let total: f64 = cases.iter().map(|c| c.seconds).sum();
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    out.push_str(&format!("<testsuites tests=\"{}\" failures=\"{failures}\" time=\"{total:.3}\">\n", cases.len()));
    out.push_str(&format!("  <testsuite name=\"basin plans\" tests=\"{}\" failures=\"{failures}\" time=\"{total:.3}\">\n", cases.len()));
    for c in cases {
        let name = xml_escape(&c.spec.display().to_string());
        out.push_str(&format!("    <testcase classname=\"basin.plan\" name=\"{name}\" time=\"{:.3}\"", c.seconds));
        if matches!(c.outcome, Outcome::Passed) {
            out.push_str("/>\n");
        } else {
            out.push_str(">\n");
            out.push_str(&format!(
                "      <failure message=\"{}\" type=\"{}\">{}</failure>\n",
                status(&c.outcome),
                status(&c.outcome),
                xml_escape(&detail(&c.outcome))
            ));
            out.push_str("    </testcase>\n");
        }
    }
    out.push_str("  </testsuite>\n</testsuites>\n");
    out
}
