//! `basin test` on a fixture project, through the real binary: passing, changed, missing
//! and broken specs, JSON and JUnit output, and `--accept` turning failures into passes.

use std::path::{Path, PathBuf};
use std::process::Command;

const GOOD: &str = "use std.robots.double_integrator\nagent b = double_integrator {}\ngoal g { reach b.position -> 2 m within 1 cm }\nplan { step: 1 s, horizon: 2 s }\n";
const BROKEN: &str = "let x = 3 m + 2 s\n";

fn basin(dir: &Path, args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_basin")).args(args).current_dir(dir).output().expect("run basin");
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

/// A fresh fixture folder with four specs; `good` and `changed` get snapshots.
fn fixture(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("basin-snapshot-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("specs/.hidden")).expect("create fixture");
    for spec in ["good", "changed", "missing"] {
        std::fs::write(dir.join(format!("specs/{spec}.basin")), GOOD).expect("write spec");
    }
    std::fs::write(dir.join("specs/broken.basin"), BROKEN).expect("write spec");
    // Hidden folders are skipped, so this broken spec must not count.
    std::fs::write(dir.join("specs/.hidden/skipped.basin"), BROKEN).expect("write spec");
    let (code, out) = basin(&dir, &["test", "--accept", "specs/good.basin", "specs/changed.basin"]);
    assert_eq!(code, 0, "{out}");
    std::fs::write(dir.join("specs/changed.basin"), GOOD.replace("2 m within", "3 m within")).expect("edit spec");
    dir
}

#[test]
fn fixture_reports_each_outcome() {
    let dir = fixture("outcomes");
    let (code, out) = basin(&dir, &["test"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("1 passed, 3 failed"), "{out}");
    assert!(out.contains("pass    specs/good.basin") || out.contains("pass    ./specs/good.basin"), "{out}");
    assert!(out.contains("-    `reach b.position -> 2 m within 1 cm`"), "old clause missing from the diff: {out}");
    assert!(out.contains("+    `reach b.position -> 3 m within 1 cm`"), "new clause missing from the diff: {out}");
    assert!(out.contains("+") && out.contains("@@"), "no unified diff in {out}");
    assert!(out.contains("basin test --accept"), "no hint to create the snapshot in {out}");
    assert!(out.contains("E0200"), "broken spec diagnostics missing in {out}");
    assert!(!out.contains("skipped.basin"), "hidden folder was searched: {out}");
}

#[test]
fn changed_plan_diff_names_the_new_value() {
    let dir = fixture("diff");
    let (_, out) = basin(&dir, &["test", "specs/changed.basin"]);
    let minus: Vec<&str> = out.lines().filter(|l| l.starts_with('-') && !l.starts_with("---")).collect();
    let plus: Vec<&str> = out.lines().filter(|l| l.starts_with('+') && !l.starts_with("+++")).collect();
    assert!(minus.iter().any(|l| l.contains("const 2")), "{out}");
    assert!(plus.iter().any(|l| l.contains("const 3")), "{out}");
}

#[test]
fn json_and_junit_outputs() {
    let dir = fixture("reports");
    let (code, out) = basin(&dir, &["test", "--format", "json", "--junit", "report.xml", "specs"]);
    assert_eq!(code, 1);
    let json: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(json["passed"], 1);
    assert_eq!(json["failed"], 3);
    let statuses: Vec<&str> = json["specs"].as_array().expect("specs").iter().map(|s| s["status"].as_str().unwrap_or("")).collect();
    assert_eq!(statuses, vec!["broken", "changed", "passed", "missing"]);

    let xml = std::fs::read_to_string(dir.join("report.xml")).expect("junit file");
    let doc = roxmltree::Document::parse(&xml).expect("valid XML");
    let cases: Vec<_> = doc.descendants().filter(|n| n.has_tag_name("testcase")).collect();
    assert_eq!(cases.len(), 4);
    let failures = doc.descendants().filter(|n| n.has_tag_name("failure")).count();
    assert_eq!(failures, 3);
    let suite = doc.descendants().find(|n| n.has_tag_name("testsuite")).expect("suite");
    assert_eq!(suite.attribute("failures"), Some("3"));
}

#[test]
fn accept_then_rerun_passes() {
    let dir = fixture("accept");
    std::fs::remove_file(dir.join("specs/broken.basin")).expect("remove broken");
    let (code, out) = basin(&dir, &["test", "--accept"]);
    assert_eq!(code, 0, "{out}");
    assert!(dir.join("specs/missing.plan").exists());
    let (code, out) = basin(&dir, &["test"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("3 passed, 0 failed"), "{out}");
}

#[test]
fn review_without_terminal_is_rejected() {
    let dir = fixture("review");
    let out = Command::new(env!("CARGO_BIN_EXE_basin"))
        .args(["test", "--review"])
        .current_dir(&dir)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run basin");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--accept"), "{err}");
}
