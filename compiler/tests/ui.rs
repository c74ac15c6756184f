//! UI tests: every `tests/ui/*.basin` file of the repository is checked, and its rendered
//! diagnostics (no color) and their JSON records are pinned by one insta snapshot named
//! after the file, in `tests/ui/snapshots/`. Inputs too large to commit are generated here
//! and snapshotted the same way.
//!
//! Accept new or changed snapshots with `INSTA_UPDATE=always cargo test -p basin-compiler
//! --test ui`, then read every changed `.snap` before committing it.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use basin_compiler::db::check_file;
use basin_compiler::diagnostics::{self, render};
use basin_compiler::{Code, Database, Diagnostic};
use serde_json::Value;

/// The folder of UI cases, relative to the compiler crate.
const UI_DIR: &str = "../tests/ui";

/// Stack size of the thread that checks each case: the default of spawned threads, and
/// less than a main thread gets, so the bounds on recursion are tested with a margin.
const CHECK_STACK: usize = 2 * 1024 * 1024;

/// One checked input.
struct Outcome {
    diagnostics: Vec<Diagnostic>,
    rendered: String,
    json: Vec<Value>,
}

impl Outcome {
    fn codes(&self) -> Vec<&'static str> {
        self.diagnostics.iter().map(|d| d.code.as_str()).collect()
    }

    /// Formats the snapshot text: the rendered report, then the JSON records.
    fn snapshot(&self) -> String {
        let rendered = if self.rendered.is_empty() { "(no diagnostics)\n" } else { self.rendered.as_str() };
        let json = serde_json::to_string_pretty(&self.json).expect("JSON records serialize");
        format!("{rendered}\n--- json ---\n{json}\n")
    }
}

/// Checks `text` as the file `name` on a thread with a [`CHECK_STACK`] stack, and renders
/// the diagnostics.
fn check_source(name: &str, text: &str) -> Outcome {
    let name = name.to_string();
    let text = text.to_string();
    std::thread::Builder::new()
        .name(format!("check {name}"))
        .stack_size(CHECK_STACK)
        .spawn(move || {
            let db = Database::new();
            let file = db.add_file(name.clone(), text.clone());
            let diagnostics = check_file(&db, file).diagnostics.clone();
            let rendered = render(&name, &text, &diagnostics, false);
            let json = diagnostics.iter().map(|d| diagnostics::to_json(&name, &text, d)).collect();
            Outcome { diagnostics, rendered, json }
        })
        .expect("the check thread starts")
        .join()
        .unwrap_or_else(|_| panic!("checking a case panicked"))
}

/// A UI case: the snapshot name, the file name shown in diagnostics, and the text.
struct Case {
    name: String,
    file_name: String,
    text: String,
}

fn ui_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(UI_DIR)
}

/// Reads the committed cases byte for byte, sorted by name.
fn committed_cases() -> Vec<Case> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(ui_dir())
        .expect("tests/ui exists")
        .map(|entry| entry.expect("tests/ui is readable").path())
        .filter(|p| p.extension().is_some_and(|e| e == "basin"))
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|path| {
            let name = path.file_stem().expect("a case has a name").to_string_lossy().into_owned();
            let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
            let text = String::from_utf8(bytes).unwrap_or_else(|e| panic!("{} is not UTF-8: {e}", path.display()));
            Case { file_name: format!("tests/ui/{name}.basin"), name, text }
        })
        .collect()
}

/// Builds one `let` on a single line of about 200 KB: a list of 40,000 lengths.
fn long_line_list() -> String {
    let elements = vec!["1 m"; 40_000].join(", ");
    format!("let total = [{elements}]\n")
}

/// Builds the same list with a time as its last element.
fn long_line_list_with_error() -> String {
    let elements = vec!["1 m"; 40_000].join(", ");
    format!("let total = [{elements}, 2 s]\n")
}

/// Builds a sum of 40,000 lengths on one line, far deeper than the parser folds.
fn long_line_sum() -> String {
    let terms = vec!["1 m"; 40_000].join(" + ");
    format!("let total = {terms}\n")
}

/// Builds 10,000 nested parentheses around one length.
fn deep_parentheses() -> String {
    format!("let deep = {}1 m{}\n", "(".repeat(10_000), ")".repeat(10_000))
}

/// Builds the cases too large to commit.
fn generated_cases() -> Vec<Case> {
    let cases: [(&str, fn() -> String); 4] = [
        ("generated_long_line_list", long_line_list),
        ("generated_long_line_list_error", long_line_list_with_error),
        ("generated_long_line_sum", long_line_sum),
        ("generated_deep_parentheses", deep_parentheses),
    ];
    cases
        .into_iter()
        .map(|(name, build)| Case { name: name.to_string(), file_name: format!("generated/{name}.basin"), text: build() })
        .collect()
}

fn all_cases() -> Vec<Case> {
    let mut cases = committed_cases();
    cases.extend(generated_cases());
    cases
}

#[test]
fn ui_snapshots() {
    let mut failed = Vec::new();
    for case in all_cases() {
        let outcome = check_source(&case.file_name, &case.text);
        let snapshot = outcome.snapshot();
        let mut settings = insta::Settings::clone_current();
        settings.set_snapshot_path("../../tests/ui/snapshots");
        settings.set_prepend_module_to_snapshot(false);
        settings.set_omit_expression(true);
        settings.set_description(case.file_name.clone());
        let assert = || settings.bind(|| insta::assert_snapshot!(case.name.clone(), snapshot));
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(assert));
        if result.is_err() {
            failed.push(case.name);
        }
    }
    assert!(failed.is_empty(), "snapshots differ for: {}", failed.join(", "));
}

#[test]
fn every_snapshot_has_a_case() {
    let names: BTreeSet<String> = all_cases().into_iter().map(|c| c.name).collect();
    let snapshots = ui_dir().join("snapshots");
    for entry in std::fs::read_dir(&snapshots).expect("tests/ui/snapshots exists") {
        let path = entry.expect("snapshots are readable").path();
        if path.extension().is_some_and(|e| e == "snap") {
            let stem = path.file_stem().expect("a snapshot has a name").to_string_lossy().into_owned();
            assert!(names.contains(&stem), "{} has no case; delete it or restore its .basin file", path.display());
        }
    }
}

#[test]
fn every_code_has_a_ui_case() {
    let mut seen = BTreeSet::new();
    for case in committed_cases() {
        seen.extend(check_source(&case.file_name, &case.text).diagnostics.iter().map(|d| d.code));
    }
    let missing: Vec<&str> = Code::ALL.iter().filter(|c| !seen.contains(c)).map(|c| c.as_str()).collect();
    assert!(missing.is_empty(), "no file in tests/ui produces {}", missing.join(", "));
}

#[test]
fn ok_cases_have_no_diagnostics() {
    let cases: Vec<Case> = committed_cases().into_iter().filter(|c| c.name.starts_with("ok_")).collect();
    assert!(cases.len() >= 3, "expected several ok_ cases, found {}", cases.len());
    for case in cases {
        let outcome = check_source(&case.file_name, &case.text);
        assert_eq!(outcome.codes(), Vec::<&str>::new(), "{}:\n{}", case.file_name, outcome.rendered);
    }
}

#[test]
fn rendered_header_matches_json_position() {
    for case in all_cases() {
        let outcome = check_source(&case.file_name, &case.text);
        let mut rest = outcome.rendered.as_str();
        for record in &outcome.json {
            let header = format!("[{}:{}:{}]", case.file_name, record["line"], record["column"]);
            match rest.find(&header) {
                Some(at) => rest = &rest[at + header.len()..],
                None => panic!("{}: header {header} not found in:\n{}", case.name, outcome.rendered),
            }
        }
    }
}

/// Extracts the line and column fields of a JSON record and its labels, without byte
/// offsets.
fn positions(record: &Value) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for key in ["code", "message", "line", "column", "end_line", "end_column"] {
        out.push((key.to_string(), record[key].clone()));
    }
    for (i, label) in record["labels"].as_array().expect("labels are a list").iter().enumerate() {
        out.push((format!("label {i} line"), label["line"].clone()));
        out.push((format!("label {i} column"), label["column"].clone()));
    }
    out
}

fn committed_case(name: &str) -> Case {
    committed_cases().into_iter().find(|c| c.name == name).unwrap_or_else(|| panic!("tests/ui/{name}.basin is missing"))
}

#[test]
fn crlf_positions_match_lf() {
    let case = committed_case("crlf_line_endings");
    assert!(case.text.contains("\r\n"), "{} lost its CRLF line endings; check .gitattributes", case.file_name);
    assert!(!case.text.replace("\r\n", "").contains('\n'), "{} mixes LF into CRLF", case.file_name);
    let crlf = check_source(&case.file_name, &case.text);
    let lf = check_source(&case.file_name, &case.text.replace("\r\n", "\n"));
    assert!(!crlf.json.is_empty(), "the CRLF case should report diagnostics");
    assert_eq!(crlf.json.len(), lf.json.len(), "CRLF and LF give different diagnostics");
    for (c, l) in crlf.json.iter().zip(&lf.json) {
        assert_eq!(positions(c), positions(l));
    }
}

#[test]
fn bom_positions_match_plain() {
    let case = committed_case("byte_order_mark");
    let plain = case.text.strip_prefix('\u{FEFF}').unwrap_or_else(|| panic!("{} lost its byte-order mark", case.file_name));
    let with_bom = check_source(&case.file_name, &case.text);
    let without = check_source(&case.file_name, plain);
    assert!(!with_bom.json.is_empty(), "the byte-order mark case should report diagnostics");
    assert_eq!(with_bom.json.len(), without.json.len(), "the byte-order mark changes the diagnostics");
    for (b, p) in with_bom.json.iter().zip(&without.json) {
        assert_eq!(positions(b), positions(p));
        assert_eq!(b["start"].as_u64(), p["start"].as_u64().map(|s| s + 3), "byte offsets count the mark");
    }
}

#[test]
fn tabs_count_one_column() {
    let case = committed_case("tabs");
    assert!(case.text.contains('\t'), "{} lost its tabs", case.file_name);
    let outcome = check_source(&case.file_name, &case.text);
    for record in &outcome.json {
        let line_number = record["line"].as_u64().expect("a line") as usize;
        let line = case.text.lines().nth(line_number - 1).expect("the line exists");
        let start = record["start"].as_u64().expect("a start") as usize;
        let line_start = case.text[..start].rfind('\n').map_or(0, |n| n + 1);
        let expected = case.text[line_start..start].chars().count() + 1;
        assert_eq!(record["column"].as_u64(), Some(expected as u64), "column on line {line:?}");
    }
}

#[test]
fn empty_file_has_no_diagnostics() {
    let case = committed_case("empty");
    assert!(case.text.is_empty(), "{} should be empty", case.file_name);
    assert!(check_source(&case.file_name, "").diagnostics.is_empty());
}

#[test]
fn long_line_list_checks_clean() {
    let text = long_line_list();
    assert!(text.len() >= 200_000, "the line is {} bytes", text.len());
    assert_eq!(text.lines().count(), 1);
    let outcome = check_source("long.basin", &text);
    assert_eq!(outcome.codes(), Vec::<&str>::new());
}

#[test]
fn long_line_list_error_is_at_its_column() {
    let text = long_line_list_with_error();
    let outcome = check_source("long.basin", &text);
    assert_eq!(outcome.codes(), vec!["E0205"]);
    let at = text.rfind("2 s").expect("the odd element") + 1;
    assert_eq!(outcome.json[0]["line"], 1);
    assert_eq!(outcome.json[0]["column"].as_u64(), Some(at as u64));
    assert!(outcome.rendered.len() < 4_000, "the report shows the whole line: {} bytes", outcome.rendered.len());
}

#[test]
fn long_line_sum_is_too_deep() {
    let outcome = check_source("long.basin", &long_line_sum());
    assert_eq!(outcome.codes(), vec!["E0002"]);
    assert!(outcome.rendered.len() < 4_000, "the report shows the whole line: {} bytes", outcome.rendered.len());
}

#[test]
fn deep_parentheses_are_too_deep() {
    let outcome = check_source("deep.basin", &deep_parentheses());
    assert_eq!(outcome.codes(), vec!["E0002"]);
    assert_eq!(outcome.json[0]["column"].as_u64(), Some(12 + 64));
}
