//! Editor analyses on small specs; `$0` marks the cursor.

use super::*;
use crate::db::{Database, Db};
use crate::syntax::Span;

/// Builds a database with `source` minus its `$0` marker, and returns the marker's offset.
fn fixture(source: &str) -> (Database, crate::SourceFile, u32) {
    let offset = source.find("$0").unwrap_or(source.len()) as u32;
    let text = source.replacen("$0", "", 1);
    let db = Database::new();
    let file = db.add_file("test.basin", text);
    (db, file, offset)
}

fn text_at(db: &Database, file: crate::SourceFile, span: Span) -> String {
    file.text(db)[span.range()].to_string()
}

const WAREHOUSE: &str = "use std.robots.diff_drive

agent robot = diff_drive {
    radius: 30 cm
    max_speed: 1.2 m/s
}

site pick = (12.5 m, 4 m)
let today = 62 s

goal deliver {
    reach robot.position -> pick within 10 cm
    finish_by 0.8 * today
}
";

#[test]
fn hover_literal_shows_si_value() {
    let (db, file, offset) = fixture(&WAREHOUSE.replace("30 cm", "3$00 cm"));
    let info = hover(&db, file, offset).expect("a hover");
    assert!(info.markdown.contains("length (m)"), "{}", info.markdown);
    assert!(info.markdown.contains("= 0.3 m"), "{}", info.markdown);
}

#[test]
fn hover_unit_describes_it() {
    let (db, file, offset) = fixture(&WAREHOUSE.replace("10 cm", "10 c$0m"));
    let info = hover(&db, file, offset).expect("a hover");
    assert!(info.markdown.contains("metre"), "{}", info.markdown);
    assert!(info.markdown.contains("1 cm = 0.01 m"), "{}", info.markdown);
}

#[test]
fn hover_stdlib_model_shows_docs() {
    let (db, file, offset) = fixture(&WAREHOUSE.replace("= diff_drive", "= diff_$0drive"));
    let info = hover(&db, file, offset).expect("a hover");
    assert!(info.markdown.contains("model diff_drive"), "{}", info.markdown);
    assert!(info.markdown.contains("differential-drive"), "{}", info.markdown);
    assert!(info.markdown.contains("from `std.robots`"), "{}", info.markdown);
}

#[test]
fn hover_let_shows_kind_dimension_value() {
    let (db, file, offset) = fixture(&WAREHOUSE.replace("0.8 * today", "0.8 * to$0day"));
    let info = hover(&db, file, offset).expect("a hover");
    assert!(info.markdown.contains("let today: s"), "{}", info.markdown);
    assert!(info.markdown.contains("time (s)"), "{}", info.markdown);
    assert!(info.markdown.contains("= 62 s"), "{}", info.markdown);
}

#[test]
fn hover_expression_shows_dimension() {
    let (db, file, offset) = fixture(&WAREHOUSE.replace("0.8 * today", "0.8 $0* today"));
    let info = hover(&db, file, offset).expect("a hover");
    assert!(info.markdown.contains("time (s)"), "{}", info.markdown);
    assert!(info.markdown.contains("= 49.6 s"), "{}", info.markdown);
}

#[test]
fn definition_of_local_site() {
    let (db, file, offset) = fixture(&WAREHOUSE.replace("-> pick", "-> pi$0ck"));
    let location = definition(&db, file, offset).expect("a definition");
    assert_eq!(location.module, None);
    assert_eq!(text_at(&db, file, location.span), "pick");
    assert_eq!(location.span.start as usize, WAREHOUSE.find("pick =").unwrap());
}

#[test]
fn definition_of_member_in_stdlib() {
    let (db, file, offset) = fixture(&WAREHOUSE.replace("robot.position", "robot.posi$0tion"));
    let location = definition(&db, file, offset).expect("a definition");
    assert_eq!(location.module.as_deref(), Some("std.robots"));
    let module = db.module("std.robots").expect("module");
    assert_eq!(&module.text(&db)[location.span.range()], "position");
}

#[test]
fn references_include_fields_and_uses() {
    let (db, file, offset) = fixture(&WAREHOUSE.replace("agent robot", "agent ro$0bot"));
    let spans = references(&db, file, offset, true);
    let texts: Vec<String> = spans.iter().map(|s| text_at(&db, file, *s)).collect();
    assert_eq!(texts, vec!["robot", "robot"]);
    let without = references(&db, file, offset, false);
    assert_eq!(without.len(), 1);
}

#[test]
fn rename_local_and_reject_stdlib() {
    let (db, file, offset) = fixture(&WAREHOUSE.replace("let today", "let to$0day"));
    let spans = rename(&db, file, offset, "baseline").expect("renamable");
    assert_eq!(spans.len(), 2);
    let (db, file, offset) = fixture(&WAREHOUSE.replace("= diff_drive", "= diff$0_drive"));
    let error = rename(&db, file, offset, "other").expect_err("stdlib names are not renamable");
    assert!(error.contains("standard library"), "{error}");
    let (db, file, offset) = fixture(&WAREHOUSE.replace("let today", "let to$0day"));
    assert!(rename(&db, file, offset, "goal").is_err());
    assert!(rename(&db, file, offset, "9lives").is_err());
}

#[test]
fn completion_units_after_number() {
    let (db, file, offset) = fixture(&WAREHOUSE.replace("62 s", "62 $0"));
    let labels: Vec<String> = completions(&db, file, offset).into_iter().map(|c| c.label).collect();
    assert!(labels.contains(&"cm".to_string()), "{labels:?}");
    assert!(labels.contains(&"m/s".to_string()), "{labels:?}");
}

#[test]
fn completion_members_after_dot() {
    let (db, file, offset) = fixture(&WAREHOUSE.replace("reach robot.position", "reach robot.$0"));
    let items = completions(&db, file, offset);
    let labels: Vec<&str> = items.iter().map(|c| c.label.as_str()).collect();
    assert!(labels.contains(&"position"), "{labels:?}");
    assert!(labels.contains(&"max_speed"), "{labels:?}");
}

#[test]
fn completion_keywords_at_top_level() {
    let (db, file, offset) = fixture(&format!("{WAREHOUSE}\n$0"));
    let labels: Vec<String> = completions(&db, file, offset).into_iter().map(|c| c.label).collect();
    assert!(labels.contains(&"constraint".to_string()), "{labels:?}");
    assert!(!labels.contains(&"robot".to_string()), "{labels:?}");
}

#[test]
fn completion_names_and_clause_keywords_in_goal() {
    let (db, file, offset) = fixture(&WAREHOUSE.replace("    finish_by", "    $0\n    finish_by"));
    let labels: Vec<String> = completions(&db, file, offset).into_iter().map(|c| c.label).collect();
    for expected in ["always", "minimize", "robot", "today", "duration"] {
        assert!(labels.contains(&expected.to_string()), "{expected} missing from {labels:?}");
    }
}

#[test]
fn completion_model_parameters_in_agent_block() {
    let (db, file, offset) = fixture(&WAREHOUSE.replace("    max_speed: 1.2 m/s\n", "    max_speed: 1.2 m/s\n    $0\n"));
    let labels: Vec<String> = completions(&db, file, offset).into_iter().map(|c| c.label).collect();
    assert!(labels.contains(&"max_accel".to_string()), "{labels:?}");
    assert!(!labels.contains(&"radius".to_string()), "already given: {labels:?}");
    assert!(!labels.contains(&"x".to_string()), "states are not parameters: {labels:?}");
}

#[test]
fn signature_help_for_stdlib_and_intrinsic() {
    let source = "use std.mechanics.bending_stress\nlet s = bending_stress(10 N, $0\n";
    let (db, file, offset) = fixture(source);
    let sig = signature_help(&db, file, offset).expect("a signature");
    assert!(sig.label.starts_with("bending_stress(load: "), "{}", sig.label);
    assert_eq!(sig.parameters.len(), 4);
    assert_eq!(sig.active_parameter, 1);
    let (db, file, offset) = fixture("let a = atan2(1 m, $0");
    let sig = signature_help(&db, file, offset).expect("a signature");
    assert_eq!(sig.label, "atan2(y, x)");
    assert_eq!(sig.parameters, vec!["y", "x"]);
    assert_eq!(sig.active_parameter, 1);
}

#[test]
fn outline_nests_members() {
    let (db, file, _) = fixture("model cart {\n    state x: m\n    param mass: kg = 1 kg\n}\nlet a = 1 m\n");
    let outline = document_symbols(&db, file);
    assert_eq!(outline.len(), 2);
    assert_eq!(outline[0].name, "cart");
    let members: Vec<&str> = outline[0].children.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(members, vec!["x", "mass"]);
}

#[test]
fn semantic_tokens_classify_names_units_keywords() {
    let (db, file, _) = fixture(WAREHOUSE);
    let tokens = semantic_tokens(&db, file);
    let kind_of = |needle: &str| {
        let start = WAREHOUSE.find(needle).unwrap() as u32;
        tokens.iter().find(|t| t.span.start == start).map(|t| t.kind)
    };
    assert_eq!(kind_of("agent"), Some(TokenKind::Keyword));
    assert_eq!(kind_of("diff_drive {"), Some(TokenKind::Model));
    assert_eq!(kind_of("cm\n"), Some(TokenKind::Unit));
    assert_eq!(kind_of("30"), Some(TokenKind::Number));
    assert_eq!(kind_of("position"), Some(TokenKind::Member));
    for pair in tokens.windows(2) {
        assert!(pair[0].span.end <= pair[1].span.start, "overlap: {pair:?}");
    }
}

#[test]
fn folding_ranges_cover_blocks_and_comments() {
    let (db, file, _) = fixture("// one\n// two\nagent r = diff_drive {\n    radius: 1 m\n}\n");
    let folds = folding_ranges(&db, file);
    assert!(folds.iter().any(|f| f.kind == FoldKind::Comment), "{folds:?}");
    assert!(folds.iter().any(|f| f.kind == FoldKind::Region), "{folds:?}");
}

#[test]
fn inlay_hints_for_non_si_units() {
    let (db, file, _) = fixture(WAREHOUSE);
    let hints = inlay_hints(&db, file, Span::new(0, WAREHOUSE.len()));
    let labels: Vec<&str> = hints.iter().map(|h| h.label.as_str()).collect();
    assert_eq!(labels, vec!["= 0.3 m", "= 0.1 m"]);
}

#[test]
fn code_actions_fix_misspelled_name_and_unit() {
    let source = WAREHOUSE.replace("0.8 * today", "0.8 * tody").replace("30 cm", "30 cmm");
    let (db, file, _) = fixture(&source);
    let fixes = code_actions(&db, file, Span::new(0, source.len()));
    let titles: Vec<&str> = fixes.iter().map(|f| f.title.as_str()).collect();
    assert!(titles.contains(&"Replace `tody` with `today`"), "{titles:?}");
    assert!(titles.iter().any(|t| t.starts_with("Replace `cmm` with `")), "{titles:?}");
}

#[test]
fn code_actions_fix_unit_mismatch() {
    let source = WAREHOUSE.replace("max_speed: 1.2 m/s", "max_speed: 1.2");
    let (db, file, _) = fixture(&source);
    let fixes = code_actions(&db, file, Span::new(0, source.len()));
    let fix = fixes.iter().find(|f| f.title.starts_with("Add the unit")).unwrap_or_else(|| panic!("no unit fix in {fixes:?}"));
    assert_eq!(fix.edits[0].1, " m/s");
}

#[test]
fn code_actions_import_missing_name() {
    let source = "agent robot = diff_drive {\n    radius: 30 cm\n}\n";
    let (db, file, _) = fixture(source);
    let fixes = code_actions(&db, file, Span::new(0, source.len()));
    let fix = fixes.iter().find(|f| f.title.starts_with("Import")).unwrap_or_else(|| panic!("no import fix in {fixes:?}"));
    assert_eq!(fix.edits[0], (Span::new(0, 0), "use std.robots.diff_drive\n".to_string()));
}
