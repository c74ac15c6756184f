//! The formatter behind `basin fmt`: one canonical layout, with every comment kept.
//!
//! The file is cut into items with [`syntax::split`] and each item is parsed on its own. A
//! file with a syntax error is not formatted, and [`format_source`] returns the errors
//! instead. Otherwise each item is printed from its typed tree (see the `print` module):
//!
//! - 4 spaces of indentation and one field, clause, member or refinement step per line
//!   inside braces, with no `,` or `;` between them. A `;` is kept after a clause only
//!   where the next clause would otherwise read as its continuation, as before `-x <= 1 m`.
//! - `name: value` with one space after the colon, one space on each side of binary
//!   operators (`^` too, so `x^2` becomes `x ^ 2`), `->`, `=` and `*=`, and one space
//!   between a number and its unit. Units (`m/s^2`, `N*m`), numbers and strings are copied
//!   as written.
//! - The blocks of `world` and `context`, solver stages such as `mppi { samples: 1024 }`,
//!   and records stay on one line, with `, ` between fields, when that line up to the
//!   closing `}` fits in 100 characters and the block contains no comment. Every other block
//!   puts each element on its own line. Expressions are not broken across lines, except
//!   inside a record that does not fit on one.
//! - An optional block with nothing in it is left out (`agent a = m {}` becomes
//!   `agent a = m`), and a required one prints as `{}`.
//!
//! Comments are kept. Comments between items stay between the same items, with a doc comment
//! (`///`) right above its item. Inside an item, a comment goes back before the line,
//! field, clause or member it preceded, or stays at the end of its line. A comment that
//! sits where no line breaks in the canonical layout, such as inside an expression, keeps
//! its whole item as written, minus trailing whitespace. So does an item whose printed text
//! would parse to a different tree, which is checked for every item.
//!
//! One blank line is kept between items, and between the elements of a block, where the
//! source had at least one. A byte-order mark and CRLF line endings (judged by the first
//! line ending) are kept. The output ends with one newline, or is empty when the file has
//! neither items nor comments. Formatting formatted text changes nothing.

mod print;

use crate::diagnostics::{Code, Diagnostic, Label};
use crate::syntax::{self, Item, Span};
use print::{ItemComment, has_blank_line, print_item};

/// Formats a whole file, or returns its syntax errors with file offsets.
pub fn format_source(text: &str) -> Result<String, Vec<Diagnostic>> {
    let split = syntax::split(text);
    let mut items: Vec<(Span, Item)> = Vec::new();
    let mut errors = Vec::new();
    for raw in &split.items {
        let parsed = syntax::parse_item(&text[raw.span.range()], raw.too_deep_at.map(|at| at - raw.span.start));
        // An out-of-range number keeps its text in the tree, so it does not stop formatting.
        // Every other diagnostic of the parser means that the tree lost part of the source.
        let blocking: Vec<Diagnostic> =
            parsed.diagnostics.into_iter().filter(|d| d.code != Code::InvalidNumber).map(|d| d.shifted(raw.span.start)).collect();
        match parsed.item {
            Some(item) if blocking.is_empty() => items.push((raw.span, item)),
            Some(_) => errors.extend(blocking),
            None if blocking.is_empty() => errors.push(
                Diagnostic::error(Code::Syntax, "this declaration could not be parsed")
                    .with_label(Label::primary(raw.span, "not a declaration")),
            ),
            None => errors.extend(blocking),
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }

    let mut out = String::new();
    let mut comments = split.comments.iter().peekable();
    // The source offset where the last written item or comment ended.
    let mut cursor: Option<usize> = None;
    for (span, item) in &items {
        while let Some(c) = comments.next_if(|c| c.span.start < span.start) {
            write_comment(&mut out, text, &mut cursor, c);
        }
        let mut inside = Vec::new();
        while let Some(c) = comments.next_if(|c| c.span.start < span.end) {
            let text_of = comment_text(text, c);
            inside.push(ItemComment { span: Span { start: c.span.start - span.start, end: c.span.end - span.start }, trailing: c.trailing, text: text_of });
        }
        start_line(&mut out, text, cursor, span.start as usize);
        out.push_str(&format_item(&text[span.range()], item, &inside));
        cursor = Some(span.end as usize);
    }
    for c in comments {
        write_comment(&mut out, text, &mut cursor, c);
    }

    if !out.is_empty() {
        out.push('\n');
    }
    let mut result = String::with_capacity(out.len() + 3);
    if text.starts_with('\u{FEFF}') {
        result.push('\u{FEFF}');
    }
    let crlf = text.find('\n').is_some_and(|n| text[..n].ends_with('\r'));
    if crlf {
        result.push_str(&out.replace('\n', "\r\n"));
    } else {
        result.push_str(&out);
    }
    Ok(result)
}

/// Returns the text of a comment without trailing whitespace.
fn comment_text<'t>(text: &'t str, c: &syntax::Comment) -> &'t str {
    text[c.span.range()].trim_end()
}

/// Writes a comment that sits outside every item: at the end of the previous item's last
/// line when it followed code there, else on a line of its own.
fn write_comment(out: &mut String, text: &str, cursor: &mut Option<usize>, c: &syntax::Comment) {
    if c.trailing && !out.is_empty() {
        out.push(' ');
    } else {
        start_line(out, text, *cursor, c.span.start as usize);
    }
    out.push_str(comment_text(text, c));
    *cursor = Some(c.span.end as usize);
}

/// Starts a new top-level line for the item or comment at `start`, after a blank line when
/// the source had one since `cursor`.
fn start_line(out: &mut String, text: &str, cursor: Option<usize>, start: usize) {
    let Some(cursor) = cursor else { return };
    out.push('\n');
    if has_blank_line(text.get(cursor..start).unwrap_or_default()) {
        out.push('\n');
    }
}

/// Prints one item in the canonical layout, or returns it as written (minus trailing
/// whitespace) when a comment cannot be placed or the printed text would parse differently.
fn format_item(src: &str, item: &Item, comments: &[ItemComment<'_>]) -> String {
    if let Some(printed) = print_item(src, item, comments) {
        if reparses_to(&printed, item, comments.len()) {
            return printed;
        }
    }
    let lines: Vec<&str> = src.split('\n').map(str::trim_end).collect();
    lines.join("\n")
}

/// Checks whether `printed` is one item with `comment_count` comments whose tree equals
/// `item`'s, spans aside.
fn reparses_to(printed: &str, item: &Item, comment_count: usize) -> bool {
    let split = syntax::split(printed);
    let [raw] = split.items.as_slice() else { return false };
    if raw.span.start != 0 || raw.span.end as usize != printed.len() || split.comments.len() != comment_count {
        return false;
    }
    let reparsed = syntax::parse_item(printed, raw.too_deep_at);
    match reparsed.item {
        Some(again) if reparsed.diagnostics.iter().all(|d| d.code == Code::InvalidNumber) => shape(&again) == shape(item),
        _ => false,
    }
}

/// Serializes the tree with every span replaced by `null`, for comparing two trees.
fn shape(item: &Item) -> Option<String> {
    const SPAN_START: &str = "{\"start\":";
    let json = serde_json::to_string(item).ok()?;
    let mut out = String::with_capacity(json.len());
    let mut rest = json.as_str();
    while let Some(at) = rest.find(SPAN_START) {
        out.push_str(&rest[..at]);
        let after = &rest[at + SPAN_START.len()..];
        match span_body_len(after) {
            Some(len) => {
                out.push_str("null");
                rest = &after[len..];
            }
            None => {
                out.push_str(SPAN_START);
                rest = after;
            }
        }
    }
    out.push_str(rest);
    Some(out)
}

/// Returns the length of `12,"end":15}`, the rest of a serialized span, at the start of `s`.
fn span_body_len(s: &str) -> Option<usize> {
    const END: &str = ",\"end\":";
    let start_digits = s.bytes().take_while(u8::is_ascii_digit).count();
    let rest = s[start_digits..].strip_prefix(END)?;
    let end_digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let complete = start_digits > 0 && end_digits > 0 && rest[end_digits..].starts_with('}');
    complete.then_some(start_digits + END.len() + end_digits + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shape_ignores_spans_only() {
        let a = syntax::parse_item("let a = 1 m + b", None).item.expect("parses");
        let b = syntax::parse_item("let   a =  1 m+b", None).item.expect("parses");
        let c = syntax::parse_item("let a = 1 m - b", None).item.expect("parses");
        assert_eq!(shape(&a), shape(&b));
        assert_ne!(shape(&a), shape(&c));
    }

    #[test]
    fn blank_line_needs_an_empty_line() {
        assert!(has_blank_line("\n\n"));
        assert!(has_blank_line(" \r\n \t \r\n  "));
        assert!(!has_blank_line("\n   "));
        assert!(!has_blank_line(",\n"));
        assert!(!has_blank_line(""));
    }
}
