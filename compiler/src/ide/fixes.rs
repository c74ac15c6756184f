//! Quick fixes for diagnostics: the closest-match suggestions of unknown names, units,
//! fields and imports, the `use` lines that help texts propose, and units that give a
//! literal the wrong dimension.
//!
//! Fixes are read from the help each diagnostic carries, so a fix never proposes more
//! than the checker does, and every suggestion the checker makes can be applied.

use crate::db::{Db, SourceFile, check_file};
use crate::diagnostics::{Code, Diagnostic};
use crate::syntax::{Item, Span};

use super::values::{parse_unit, unit_of};
use super::walk::walk_file;

/// One code action: a title, the edits that apply it and the diagnostic it fixes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fix {
    pub title: String,
    pub edits: Vec<(Span, String)>,
    pub diagnostic: Diagnostic,
}

/// Fixes for the diagnostics whose primary span touches `range`.
pub fn code_actions(db: &dyn Db, file: SourceFile, range: Span) -> Vec<Fix> {
    let _span = tracing::debug_span!("ide::code_actions").entered();
    let text = file.text(db);
    let mut out = Vec::new();
    let mut walk = None;
    for d in &check_file(db, file).diagnostics {
        let span = d.primary_span();
        if span.start > range.end || range.start > span.end {
            continue;
        }
        let Some(help) = &d.help else { continue };
        let written = text.get(span.range()).unwrap_or("");
        if let Some(suggestion) = help.strip_prefix("try `").and_then(|h| h.strip_suffix("`, the closest match")) {
            // A unit factor's span covers its exponent, which the suggestion leaves alone.
            let (span, old) = match d.code {
                Code::UnknownUnit => {
                    let name = written.split('^').next().unwrap_or(written);
                    (Span { start: span.start, end: span.start + name.len() as u32 }, name)
                }
                _ => (span, written),
            };
            out.push(Fix { title: format!("Replace `{old}` with `{suggestion}`"), edits: vec![(span, suggestion.to_string())], diagnostic: d.clone() });
            continue;
        }
        if let Some(import) = backticked(help).into_iter().find(|b| b.starts_with("use ")) {
            let (at, newline_first) = import_offset(db, file);
            let title = match import.strip_prefix("use ").and_then(|p| p.rsplit_once('.')) {
                Some((module, name)) => format!("Import `{name}` from `{module}`"),
                None => format!("Add `{import}`"),
            };
            let line = if newline_first { format!("\n{import}\n") } else { format!("{import}\n") };
            out.push(Fix { title, edits: vec![(Span { start: at, end: at }, line)], diagnostic: d.clone() });
            continue;
        }
        let dimension_error = matches!(d.code, Code::ArithmeticDimension | Code::ComparisonDimension | Code::ArgumentDimension | Code::FieldDimension);
        if !dimension_error {
            continue;
        }
        let walk = walk.get_or_insert_with(|| walk_file(db, file));
        let Some(q) = walk.quantities.iter().find(|q| q.span == span) else { continue };
        let current = unit_of(&q.unit);
        for candidate in backticked(help) {
            let candidate = candidate.strip_prefix("1 ").unwrap_or(candidate);
            let Some(unit) = parse_unit(candidate) else { continue };
            if current.is_some_and(|c| c.dim == unit.dim) {
                continue;
            }
            let fix = match (q.unit.first(), q.unit.last()) {
                (Some(first), Some(last)) => {
                    let unit_span = first.span.to(last.span);
                    let old = text.get(unit_span.range()).unwrap_or("");
                    Fix { title: format!("Change the unit `{old}` to `{candidate}`"), edits: vec![(unit_span, candidate.to_string())], diagnostic: d.clone() }
                }
                _ => {
                    let end = q.span.start + q.text.len() as u32;
                    Fix { title: format!("Add the unit `{candidate}`"), edits: vec![(Span { start: end, end }, format!(" {candidate}"))], diagnostic: d.clone() }
                }
            };
            if !out.contains(&fix) {
                out.push(fix);
            }
        }
    }
    out
}

/// Collects the words between backticks in a help text.
fn backticked(help: &str) -> Vec<&str> {
    help.split('`').skip(1).step_by(2).collect()
}

/// Finds where a new `use` line goes: after the last `use` item, or before the first item.
/// The flag is set when the last `use` ends the file without a line break.
fn import_offset(db: &dyn Db, file: SourceFile) -> (u32, bool) {
    let items = crate::db::file_items(db, file);
    let text = file.text(db);
    let last_use = items.items.iter().filter(|e| matches!(crate::db::parse(db, e.key).item, Some(Item::Use(_)))).last();
    match last_use {
        Some(entry) => {
            let end = (entry.offset as usize + entry.key.text(db).len()).min(text.len());
            match text[end..].find('\n') {
                Some(n) => ((end + n + 1) as u32, false),
                None => (text.len() as u32, true),
            }
        }
        None => (items.items.first().map_or(0, |e| e.offset - line_column_of(text, e.offset)), false),
    }
}

/// Measures the byte distance from the start of the line to `offset`.
fn line_column_of(text: &str, offset: u32) -> u32 {
    let before = &text[..offset as usize];
    before.rfind('\n').map_or(offset, |n| offset - n as u32 - 1)
}
