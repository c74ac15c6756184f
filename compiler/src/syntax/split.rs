//! Cutting a file into top-level items before parsing.
//!
//! A hand-written scan finds where each declaration starts, so that pest parses every item
//! on its own: a syntax error in one item is reported and the next item is parsed as usual.
//! An item starts at a declaration keyword that begins a line outside any bracket, or at a
//! declaration keyword in the first column even inside brackets, so an unclosed `{` cannot
//! swallow the rest of the file. The scan also measures bracket nesting, so input nested
//! deeper than the parser's stack allows is rejected before pest recurses into it, and it
//! records comments, which the formatter puts back.

use super::ast::{ItemKind, Span};

/// Brackets nested deeper than this are rejected before parsing; engineers' specs nest a few
/// levels, and pest recurses once per level.
pub const MAX_NESTING: u32 = 64;

/// One top-level item as found by the scan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawItem {
    /// From the first character of the keyword to the end of the last token, comments and
    /// trailing whitespace excluded.
    pub span: Span,
    /// `None` for text before the first declaration keyword.
    pub kind: Option<ItemKind>,
    /// The text of the `///` lines right above the item, without the slashes.
    pub docs: String,
    /// Where the bracket nesting first passed [`MAX_NESTING`].
    pub too_deep_at: Option<u32>,
}

/// A `//` comment, from the slashes to the end of its line (newline excluded).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Comment {
    pub span: Span,
    /// True when code precedes the comment on the same line.
    pub trailing: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Split {
    pub items: Vec<RawItem>,
    pub comments: Vec<Comment>,
}

fn is_ident_start(c: char) -> bool {
    c == '_' || c.is_alphabetic()
}

fn is_ident_continue(c: char) -> bool {
    c == '_' || c.is_alphanumeric()
}

/// Whether the scan must look at byte `b` on its own: whitespace, which ends a token, and
/// the starts of comments, strings and brackets.
fn matters(b: u8) -> bool {
    MATTERS[b as usize]
}

/// [`matters`] as a table, which the scan reads once per byte of most lines.
static MATTERS: [bool; 256] = {
    let mut table = [false; 256];
    let bytes = b"\n\r \t/\"()[]{}";
    let mut i = 0;
    while i < bytes.len() {
        table[bytes[i] as usize] = true;
        i += 1;
    }
    table
};

/// Splits `text` into items and comments.
pub fn split(text: &str) -> Split {
    let bytes = text.as_bytes();
    let mut out = Split::default();
    let mut i = if text.starts_with('\u{FEFF}') { 3 } else { 0 };
    let mut depth: u32 = 0;
    let mut line_start = true;
    let mut line_has_code = false;
    let mut column_zero = true;
    // The item being collected: start, kind, last code byte, first too-deep position.
    let mut current: Option<(usize, Option<ItemKind>, usize, Option<u32>)> = None;

    let finish = |out: &mut Split, current: Option<(usize, Option<ItemKind>, usize, Option<u32>)>| {
        if let Some((start, kind, last, deep)) = current {
            let docs = doc_comments_above(text, start);
            out.items.push(RawItem { span: Span::new(start, last.max(start)), kind, docs, too_deep_at: deep });
        }
    };

    while i < bytes.len() {
        // Decoding only non-ASCII bytes keeps the scan cheap on the re-check of every edit.
        let c = if bytes[i].is_ascii() { bytes[i] as char } else { text[i..].chars().next().unwrap_or('\0') };
        let width = c.len_utf8();

        if c == '\n' {
            line_start = true;
            line_has_code = false;
            column_zero = true;
            i += 1;
            continue;
        }
        if c == ' ' || c == '\t' || c == '\r' {
            column_zero = false;
            i += 1;
            while i < bytes.len() && matches!(bytes[i], b' ' | b'\t') {
                i += 1;
            }
            continue;
        }
        if c == '/' && bytes.get(i + 1) == Some(&b'/') {
            let end = text[i..].find('\n').map_or(text.len(), |n| i + n);
            let end = if text[..end].ends_with('\r') { end - 1 } else { end };
            out.comments.push(Comment { span: Span::new(i, end), trailing: line_has_code });
            i = end;
            continue;
        }

        // A declaration keyword at the start of a line may start a new item.
        if line_start && is_ident_start(c) {
            let word_end = text[i..]
                .char_indices()
                .find(|&(_, ch)| !is_ident_continue(ch))
                .map_or(text.len(), |(n, _)| i + n);
            if let Some(kind) = ItemKind::from_keyword(&text[i..word_end]) {
                if depth == 0 || column_zero {
                    finish(&mut out, current.take());
                    depth = 0;
                    current = Some((i, Some(kind), word_end, None));
                    line_start = false;
                    line_has_code = true;
                    i = word_end;
                    continue;
                }
            }
        }
        line_start = false;
        column_zero = false;
        line_has_code = true;

        if current.is_none() {
            current = Some((i, None, i, None));
        }
        let item = current.as_mut().expect("an item is open");

        match c {
            '"' => {
                // Strings may not span lines; an unterminated one ends at the newline.
                let mut j = i + 1;
                while j < bytes.len() && bytes[j] != b'"' && bytes[j] != b'\n' {
                    j += if bytes[j] == b'\\' && j + 1 < bytes.len() && bytes[j + 1] != b'\n' { 2 } else { 1 };
                }
                let end = if j < bytes.len() && bytes[j] == b'"' { j + 1 } else { j };
                item.2 = end;
                i = end;
                continue;
            }
            '(' | '[' | '{' => {
                depth += 1;
                if depth > MAX_NESTING && item.3.is_none() {
                    item.3 = Some(i as u32);
                }
            }
            ')' | ']' | '}' => depth = depth.saturating_sub(1),
            _ => {
                // The rest of a word or number changes nothing but the item's end, so it is
                // skipped in one step. Every byte that matters is ASCII, so the run ends on
                // a character boundary.
                let run = bytes[i + width..].iter().position(|&b| matters(b)).map_or(bytes.len(), |n| i + width + n);
                item.2 = run;
                i = run;
                continue;
            }
        }
        item.2 = i + width;
        i += width;
    }
    finish(&mut out, current);
    out
}

/// Collects the `///` lines directly above `start`, in order.
fn doc_comments_above(text: &str, start: usize) -> String {
    let before = &text[..start];
    let mut lines: Vec<&str> = Vec::new();
    // Skip the (possibly indented) beginning of the keyword's own line.
    let mut rest = match before.rfind('\n') {
        Some(n) => &before[..n],
        None => return String::new(),
    };
    loop {
        let (head, line) = match rest.rfind('\n') {
            Some(n) => (&rest[..n], &rest[n + 1..]),
            None => ("", rest),
        };
        let trimmed = line.trim();
        match trimmed.strip_prefix("///") {
            Some(doc) => lines.push(doc.strip_prefix(' ').unwrap_or(doc).trim_end()),
            None => break,
        }
        if head.is_empty() && !rest.contains('\n') {
            break;
        }
        rest = head;
    }
    lines.reverse();
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(text: &str) -> Vec<(Option<ItemKind>, String)> {
        split(text).items.iter().map(|i| (i.kind, text[i.span.range()].to_string())).collect()
    }

    #[test]
    fn split_items_at_keywords() {
        let got = kinds("let a = 1 m\n// note\nlet b = (1,\n  2)\n\ngoal g { minimize a }\n");
        assert_eq!(
            got,
            vec![
                (Some(ItemKind::Let), "let a = 1 m".to_string()),
                (Some(ItemKind::Let), "let b = (1,\n  2)".to_string()),
                (Some(ItemKind::Goal), "goal g { minimize a }".to_string()),
            ]
        );
    }

    #[test]
    fn unclosed_brace_stops_at_column_zero_keyword() {
        let got = kinds("goal g {\n  minimize a\nlet b = 2\n");
        assert_eq!(got.len(), 2);
        assert_eq!(got[1].1, "let b = 2");
    }

    #[test]
    fn indented_keyword_inside_braces_stays() {
        let got = kinds("plan {\n  site: 1\n}\n");
        assert_eq!(got.len(), 1);
    }

    #[test]
    fn leading_garbage_is_its_own_item() {
        let got = kinds("oops\nlet a = 1\n");
        assert_eq!(got[0], (None, "oops".to_string()));
    }

    #[test]
    fn deep_nesting_is_flagged() {
        let text = format!("let a = {}1{}", "(".repeat(100), ")".repeat(100));
        let split = split(&text);
        assert_eq!(split.items[0].too_deep_at, Some(8 + MAX_NESTING));
    }

    #[test]
    fn doc_comments_attach_to_next_item() {
        let split = split("// plain\n/// First line.\n/// Second line.\nlet a = 1\n");
        assert_eq!(split.items[0].docs, "First line.\nSecond line.");
        assert_eq!(split.comments.len(), 3);
    }

    #[test]
    fn strings_hide_brackets_and_comments() {
        let got = kinds("let a = \"({// \"\nlet b = 2\n");
        assert_eq!(got.len(), 2);
    }
}
