//! Incrementality: after an edit to one item, the query database re-runs the cut into
//! items, the parse and check of the edited item, and the file-level queries, and reuses
//! the parse and check of every other item. Item spans are relative to the item, so items
//! that only moved are reused too. The file's environment and its file-level diagnostics
//! come from one query, `file_scope`, whose two results salsa compares one by one.
//!
//! Each case edits a checked spec, records which queries executed while it was checked
//! again (`Database::start_log`), and compares them with the expected set. A query is
//! written `parse(ITEM)` with the first line of the item's text, or `file_env` for the
//! queries of the file.

use std::collections::{BTreeMap, BTreeSet};

use basin_compiler::db::{check_file, file_items};
use basin_compiler::{Database, Diagnostic, SourceFile};
use salsa::Setter;
use salsa::plumbing::AsId;

const SPEC: &str = "\
use std.robots.diff_drive

agent robot = diff_drive { radius: 30 cm, max_speed: 1.2 m/s }

site pick = (12.5 m, 4 m)
site drop = (3 m, 18 m)

let today = 62 s
let margin = 20 cm
let mixed = margin + 2 s

goal deliver {
    reach robot.position -> pick within 10 cm
    then reach robot.position -> drop within 10 cm
    finish_by 0.8 * today
    minimize duration
}

// Keep moving slowly.
constraint safety {
    always robot.speed <= robot.max_speed hard
}

plan { step: 100 ms, horizon: 4 s }
";

/// The queries of the file itself that re-run after any edit of its text.
const FILE_QUERIES: [&str; 3] = ["file_items", "file_scope", "check_file"];

/// The result of checking a spec, editing it, and checking it again.
struct Edit {
    executed: Vec<String>,
    before: Vec<Diagnostic>,
    after: Vec<Diagnostic>,
    new_text: String,
}

/// Checks `SPEC`, replaces `from` (which must occur once) with `to`, and checks again.
fn edit_spec(from: &str, to: &str) -> Edit {
    edit(SPEC, from, to)
}

/// Checks `text`, replaces `from` (which must occur once) with `to`, and checks again.
fn edit(text: &str, from: &str, to: &str) -> Edit {
    assert_eq!(text.matches(from).count(), 1, "`{from}` must occur once in the spec");
    let new_text = text.replace(from, to);
    let mut db = Database::with_query_log();
    let file = db.add_file("spec.basin", text);
    let before = check_file(&db, file).diagnostics.clone();
    let mut names = item_names(&db, file);

    db.start_log();
    file.set_text(&mut db).to(new_text.clone());
    let after = check_file(&db, file).diagnostics.clone();
    let log = db.take_log();

    names.extend(item_names(&db, file));
    names.insert(id_of(file), String::new());
    let executed = log.iter().map(|entry| readable(entry, &names)).collect();
    Edit { executed, before, after, new_text }
}

/// Formats the salsa id of `value` as the query log prints it.
fn id_of(value: impl AsId) -> String {
    format!("{:?}", value.as_id())
}

/// Maps each item's id to the first line of its text.
fn item_names(db: &Database, file: SourceFile) -> BTreeMap<String, String> {
    file_items(db, file)
        .items
        .iter()
        .map(|entry| (id_of(entry.key), entry.key.text(db).lines().next().unwrap_or("").to_string()))
        .collect()
}

/// `parse(Id(90))` as `parse(let today = 75 s)`, and `file_env(Id(5))` as `file_env`.
fn readable(entry: &str, names: &BTreeMap<String, String>) -> String {
    let Some((query, rest)) = entry.split_once('(') else { return entry.to_string() };
    let id = rest.strip_suffix(')').unwrap_or(rest);
    match names.get(id) {
        Some(name) if name.is_empty() => query.to_string(),
        Some(name) => format!("{query}({name})"),
        None => entry.to_string(),
    }
}

/// Lists the file queries plus `parse` and `check_item` of each item in `items`.
fn expected(items: &[&str]) -> BTreeSet<String> {
    let mut out: BTreeSet<String> = FILE_QUERIES.iter().map(|q| q.to_string()).collect();
    for item in items {
        out.insert(format!("parse({item})"));
        out.insert(format!("check_item({item})"));
    }
    out
}

fn as_set(executed: &[String]) -> BTreeSet<String> {
    executed.iter().cloned().collect()
}

/// Pairs the code of each diagnostic with the source text of its primary span.
fn located(diagnostics: &[Diagnostic], text: &str) -> Vec<(&'static str, String)> {
    diagnostics.iter().map(|d| (d.code.as_str(), text[d.primary_span().range()].to_string())).collect()
}

#[test]
fn value_edit_rechecks_one_item() {
    let edit = edit_spec("let today = 62 s", "let today = 75 s");
    assert_eq!(as_set(&edit.executed), expected(&["let today = 75 s"]));
    assert_eq!(edit.executed.len(), 5, "a query ran twice: {:?}", edit.executed);
    assert_eq!(edit.after, edit.before);
}

#[test]
fn type_edit_rechecks_dependents() {
    let edit = edit_spec("let today = 62 s", "let today = 62 m");
    let executed = as_set(&edit.executed);
    for query in expected(&["let today = 62 m"]) {
        assert!(executed.contains(&query), "{query} did not re-run: {executed:?}");
    }
    assert!(executed.contains("check_item(goal deliver {)"), "the goal reads `today`: {executed:?}");
    let parsed: Vec<&String> = executed.iter().filter(|q| q.starts_with("parse(")).collect();
    assert_eq!(parsed, vec!["parse(let today = 62 m)"], "only the edited item is parsed again");
    let new_errors = located(&edit.after, &edit.new_text);
    assert!(new_errors.contains(&("E0203", "0.8 * today".to_string())), "{new_errors:?}");
}

#[test]
fn edit_above_moves_items_without_rechecking() {
    let edit = edit_spec("radius: 30 cm", "radius: 300 mm");
    assert_eq!(as_set(&edit.executed), expected(&["agent robot = diff_drive { radius: 300 mm, max_speed: 1.2 m/s }"]));
    let before = located(&edit.before, SPEC);
    let after = located(&edit.after, &edit.new_text);
    assert_eq!(before, vec![("E0200", "2 s".to_string())]);
    assert_eq!(after, before, "the reused diagnostic must move with its item");
    assert_eq!(edit.after[0].primary_span().start, edit.before[0].primary_span().start + 1);
}

#[test]
fn moved_file_diagnostic_keeps_checks() {
    let text = format!("{SPEC}let margin = 30 cm\n");
    let edit = edit(&text, "radius: 30 cm", "radius: 300 mm");
    assert_eq!(as_set(&edit.executed), expected(&["agent robot = diff_drive { radius: 300 mm, max_speed: 1.2 m/s }"]));
    let duplicate = |diagnostics: &[Diagnostic]| diagnostics.iter().find(|d| d.code.as_str() == "E0101").map(|d| d.primary_span().start);
    let before = duplicate(&edit.before).expect("the duplicate `margin` is reported");
    assert_eq!(duplicate(&edit.after), Some(before + 1), "the file-level diagnostic must move");
}

#[test]
fn comment_edit_parses_nothing() {
    let edit = edit_spec("// Keep moving slowly.", "// Keep moving slowly, and keep a margin.");
    let executed = as_set(&edit.executed);
    assert!(executed.iter().all(|q| !q.starts_with("parse(") && !q.starts_with("check_item(")), "{executed:?}");
    assert_eq!(located(&edit.after, &edit.new_text), located(&edit.before, SPEC));
}

#[test]
fn unchanged_text_reruns_only_the_cut() {
    let edit = edit_spec("let margin = 20 cm", "let margin = 20 cm");
    assert_eq!(edit.executed, vec!["file_items".to_string()]);
}
