//! Structured diagnostics, and the one place that renders them.
//!
//! Analyses produce [`Diagnostic`] values with byte spans and stable codes; they stay data
//! until [`render`] draws them with miette for a terminal or [`to_json`] turns them into
//! records for tools. The language server converts the same values at its own edge.

use std::fmt;

use miette::{GraphicalReportHandler, GraphicalTheme, LabeledSpan, MietteError, MietteSpanContents, SourceCode, SourceSpan, SpanContents};
use serde::Serialize;

use crate::syntax::Span;

/// Stable diagnostic codes, documented one by one in `spec/diagnostics.md`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum Code {
    Syntax,
    TooDeep,
    InvalidNumber,
    MisplacedClause,
    UnknownName,
    Duplicate,
    UnknownImport,
    UnknownUnit,
    UnknownField,
    MissingField,
    Cycle,
    WrongKind,
    ArithmeticDimension,
    ComparisonDimension,
    ArgumentDimension,
    FieldDimension,
    ArgumentCount,
    TypeMismatch,
    InvalidExponent,
    ChainedComparison,
    NotACondition,
    HorizonNotWhole,
    NonPositiveStep,
    EmptyHorizon,
    MemoryBudget,
    InitialOutsideBounds,
    NoInfluence,
    InfeasibleHard,
    MissingPlan,
    ContextMissing,
    ContextOutside,
    ContextTooLarge,
    ContextFormat,
}

impl Code {
    pub const ALL: [Code; 21] = [
        Code::Syntax,
        Code::TooDeep,
        Code::InvalidNumber,
        Code::MisplacedClause,
        Code::UnknownName,
        Code::Duplicate,
        Code::UnknownImport,
        Code::UnknownUnit,
        Code::UnknownField,
        Code::MissingField,
        Code::Cycle,
        Code::WrongKind,
        Code::ArithmeticDimension,
        Code::ComparisonDimension,
        Code::ArgumentDimension,
        Code::FieldDimension,
        Code::ArgumentCount,
        Code::TypeMismatch,
        Code::InvalidExponent,
        Code::ChainedComparison,
        Code::NotACondition,
    ];

    /// Codes reported when compiling a checked spec into a plan (`basin compile`).
    pub const PLAN: [Code; 12] = [
        Code::HorizonNotWhole,
        Code::NonPositiveStep,
        Code::EmptyHorizon,
        Code::MemoryBudget,
        Code::InitialOutsideBounds,
        Code::NoInfluence,
        Code::InfeasibleHard,
        Code::MissingPlan,
        Code::ContextMissing,
        Code::ContextOutside,
        Code::ContextTooLarge,
        Code::ContextFormat,
    ];

    /// The code as printed, e.g. `E0200`.
    pub fn as_str(self) -> &'static str {
        match self {
            Code::Syntax => "E0001",
            Code::TooDeep => "E0002",
            Code::InvalidNumber => "E0003",
            Code::MisplacedClause => "E0004",
            Code::UnknownName => "E0100",
            Code::Duplicate => "E0101",
            Code::UnknownImport => "E0102",
            Code::UnknownUnit => "E0103",
            Code::UnknownField => "E0104",
            Code::MissingField => "E0105",
            Code::Cycle => "E0106",
            Code::WrongKind => "E0107",
            Code::ArithmeticDimension => "E0200",
            Code::ComparisonDimension => "E0201",
            Code::ArgumentDimension => "E0202",
            Code::FieldDimension => "E0203",
            Code::ArgumentCount => "E0204",
            Code::TypeMismatch => "E0205",
            Code::InvalidExponent => "E0206",
            Code::ChainedComparison => "E0207",
            Code::NotACondition => "E0208",
            Code::HorizonNotWhole => "E0300",
            Code::NonPositiveStep => "E0301",
            Code::EmptyHorizon => "E0302",
            Code::MemoryBudget => "E0303",
            Code::InitialOutsideBounds => "E0304",
            Code::NoInfluence => "E0305",
            Code::InfeasibleHard => "W0306",
            Code::MissingPlan => "E0307",
            Code::ContextMissing => "E0400",
            Code::ContextOutside => "E0401",
            Code::ContextTooLarge => "E0402",
            Code::ContextFormat => "E0403",
        }
    }

    pub fn severity(self) -> Severity {
        if self.as_str().starts_with('W') { Severity::Warning } else { Severity::Error }
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct Label {
    pub span: Span,
    pub message: String,
    pub primary: bool,
}

impl Label {
    pub fn primary(span: Span, message: impl Into<String>) -> Label {
        Label { span, message: message.into(), primary: true }
    }

    pub fn secondary(span: Span, message: impl Into<String>) -> Label {
        Label { span, message: message.into(), primary: false }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct Diagnostic {
    pub code: Code,
    pub severity: Severity,
    pub message: String,
    pub labels: Vec<Label>,
    pub help: Option<String>,
    pub notes: Vec<String>,
}

impl Diagnostic {
    pub fn error(code: Code, message: impl Into<String>) -> Diagnostic {
        Diagnostic { code, severity: code.severity(), message: message.into(), labels: Vec::new(), help: None, notes: Vec::new() }
    }

    pub fn with_label(mut self, label: Label) -> Diagnostic {
        self.labels.push(label);
        self
    }

    pub fn with_help(mut self, help: impl Into<String>) -> Diagnostic {
        self.help = Some(help.into());
        self
    }

    pub fn with_note(mut self, note: impl Into<String>) -> Diagnostic {
        self.notes.push(note.into());
        self
    }

    /// Moves every label by `by` bytes, from item-relative to file offsets.
    pub fn shifted(mut self, by: u32) -> Diagnostic {
        for l in &mut self.labels {
            l.span = l.span.shift(by);
        }
        self
    }

    pub fn primary_span(&self) -> Span {
        self.labels.iter().find(|l| l.primary).or(self.labels.first()).map_or(Span::default(), |l| l.span)
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// Line and column of a byte offset, both from 1. Columns count Unicode scalar values, so a
/// tab, an emoji and an `a` each count one; `\r\n` ends a line like `\n`, and a byte-order
/// mark at the start of the file is not counted.
pub fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let offset = floor_char_boundary(text, offset.min(text.len()));
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |n| n + 1);
    let mut column_text = &text[line_start..offset];
    if line_start == 0 {
        column_text = column_text.strip_prefix('\u{FEFF}').unwrap_or(column_text);
    }
    (line, column_text.chars().count() + 1)
}

fn floor_char_boundary(text: &str, mut offset: usize) -> usize {
    while offset > 0 && !text.is_char_boundary(offset) {
        offset -= 1;
    }
    offset
}

/// miette's view of one diagnostic with the excerpt of source it points into.
struct Rendered<'a> {
    diagnostic: &'a Diagnostic,
    source: Excerpt<'a>,
    /// The labels' spans, moved into the excerpt.
    spans: Vec<(usize, usize)>,
}

impl fmt::Debug for Rendered<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.diagnostic.message)
    }
}

impl fmt::Display for Rendered<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.diagnostic.message)
    }
}

impl std::error::Error for Rendered<'_> {}

impl miette::Diagnostic for Rendered<'_> {
    fn code<'b>(&'b self) -> Option<Box<dyn fmt::Display + 'b>> {
        Some(Box::new(self.diagnostic.code))
    }

    fn severity(&self) -> Option<miette::Severity> {
        Some(match self.diagnostic.severity {
            Severity::Error => miette::Severity::Error,
            Severity::Warning => miette::Severity::Warning,
        })
    }

    fn help<'b>(&'b self) -> Option<Box<dyn fmt::Display + 'b>> {
        // miette has one help block, so the help comes first, after the `help:` that
        // miette prints, and each note follows on its own line.
        let mut text = self.diagnostic.help.clone().unwrap_or_default();
        for note in &self.diagnostic.notes {
            text.push_str("\nnote: ");
            text.push_str(note);
        }
        let text = text.trim().to_string();
        if text.is_empty() { None } else { Some(Box::new(text)) }
    }

    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        Some(&self.source)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        Some(Box::new(self.diagnostic.labels.iter().zip(&self.spans).map(|(l, &(start, end))| {
            let span = (start, end - start);
            if l.primary {
                LabeledSpan::new_primary_with_span(Some(l.message.clone()), span)
            } else {
                LabeledSpan::new_with_span(Some(l.message.clone()), span)
            }
        })))
    }
}

/// Lines of source shown above and below a label.
const CONTEXT_LINES: usize = 1;

/// Lines longer than this many bytes are shortened around the labels before drawing.
/// miette draws every line whole, and it panics on an underline that starts past column
/// 65,535 (the limit of a format width), so a label deep in a generated one-line file
/// would otherwise crash the renderer.
const MAX_SHOWN_LINE: usize = 200;

/// Bytes kept at the start of a shortened line, and on each side of a label's ends.
const KEPT_AROUND: usize = 40;

/// Marks the text left out of a shortened line.
const ELISION: &str = " … ";

/// The part of a file that one diagnostic shows: the lines its labels touch plus context,
/// with long lines shortened. Blank lines stand in for the lines above the excerpt, so
/// miette counts line numbers as in the file. The byte-order mark is left out.
struct Excerpt<'a> {
    name: String,
    text: String,
    original: &'a str,
    /// Runs of bytes copied unchanged: (offset in `original`, offset in `text`, length).
    runs: Vec<(usize, usize, usize)>,
}

impl<'a> Excerpt<'a> {
    /// Cuts the excerpt of `original` for labels at the byte ranges `spans`.
    fn new(name: &str, original: &'a str, spans: &[(usize, usize)]) -> Excerpt<'a> {
        let body_start = if original.starts_with('\u{FEFF}') { 3 } else { 0 };
        let first = spans.iter().map(|s| s.0).min().unwrap_or(body_start).max(body_start);
        let last = spans.iter().map(|s| s.1).max().unwrap_or(body_start).max(first);
        let mut window_start = line_start(original, first);
        for _ in 0..CONTEXT_LINES {
            if window_start <= body_start {
                break;
            }
            window_start = line_start(original, window_start - 1);
        }
        let window_start = window_start.max(body_start);
        let mut window_end = line_end(original, last);
        for _ in 0..CONTEXT_LINES {
            if window_end >= original.len() {
                break;
            }
            window_end = line_end(original, window_end + 1);
        }

        let blank_lines = original.as_bytes()[..window_start].iter().filter(|&&b| b == b'\n').count();
        let mut excerpt = Excerpt { name: name.to_string(), text: "\n".repeat(blank_lines), original, runs: Vec::new() };
        let mut at = window_start;
        while at < window_end {
            let end = line_end(original, at);
            let next = if end < original.len() { end + 1 } else { end };
            if end - at <= MAX_SHOWN_LINE {
                excerpt.copy(at, next);
            } else {
                excerpt.shorten_line(at, end, spans);
                excerpt.copy(end, next);
            }
            at = next;
        }
        excerpt
    }

    /// Copies `original[from..to]` unchanged.
    fn copy(&mut self, from: usize, to: usize) {
        if from < to {
            self.runs.push((from, self.text.len(), to - from));
            self.text.push_str(&self.original[from..to]);
        }
    }

    /// Copies the line `original[start..end]` with only its head and the text around label
    /// ends, joined by [`ELISION`].
    fn shorten_line(&mut self, start: usize, end: usize, spans: &[(usize, usize)]) {
        let mut keep: Vec<(usize, usize)> = vec![(start, start + KEPT_AROUND)];
        for &(s, e) in spans {
            for point in [s, e] {
                if (start..=end).contains(&point) {
                    keep.push((point.saturating_sub(KEPT_AROUND).max(start), point + KEPT_AROUND));
                }
            }
        }
        keep.sort_unstable();
        let mut merged: Vec<(usize, usize)> = Vec::new();
        for (s, e) in keep {
            let s = floor_char_boundary(self.original, s);
            let e = ceil_char_boundary(self.original, e.min(end));
            match merged.last_mut() {
                Some(last) if s <= last.1 => last.1 = last.1.max(e),
                _ => merged.push((s, e)),
            }
        }
        for (i, &(s, e)) in merged.iter().enumerate() {
            if i > 0 || s > start {
                self.text.push_str(ELISION);
            }
            self.copy(s, e);
        }
        if merged.last().is_some_and(|&(_, e)| e < end) {
            self.text.push_str(ELISION);
        }
    }

    /// Maps an offset of the original to the excerpt. An offset that was left out maps to
    /// the end of the run before it.
    fn to_excerpt(&self, offset: usize) -> usize {
        let i = self.runs.partition_point(|r| r.0 <= offset);
        match i.checked_sub(1).map(|i| self.runs[i]) {
            Some((orig, ex, len)) => ex + (offset - orig).min(len),
            None => self.runs.first().map_or(self.text.len(), |r| r.1),
        }
    }

    /// Maps an offset of the excerpt to the original, the inverse of [`Excerpt::to_excerpt`].
    fn to_original(&self, offset: usize) -> usize {
        let i = self.runs.partition_point(|r| r.1 <= offset);
        match i.checked_sub(1).map(|i| self.runs[i]) {
            Some((orig, ex, len)) => orig + (offset - ex).min(len),
            None => self.runs.first().map_or(0, |r| r.0),
        }
    }
}

/// miette reads lines from the excerpt, but columns come from the original file, so that
/// the `file:line:column` header counts characters like [`line_column`] and JSON records
/// do (miette itself counts bytes).
impl SourceCode for Excerpt<'_> {
    fn read_span<'a>(&'a self, span: &SourceSpan, before: usize, after: usize) -> Result<Box<dyn SpanContents<'a> + 'a>, MietteError> {
        let inner = self.text.read_span(span, before, after)?;
        let (_, column) = line_column(self.original, self.to_original(inner.span().offset()));
        Ok(Box::new(MietteSpanContents::new_named(
            self.name.clone(),
            inner.data(),
            *inner.span(),
            inner.line(),
            column - 1,
            inner.line_count(),
        )))
    }
}

/// Finds where the line containing `offset` starts.
fn line_start(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].rfind('\n').map_or(0, |n| n + 1)
}

/// Finds the newline that ends the line containing `offset`, or the end of the text. A
/// `\r` before the newline stays part of the line.
fn line_end(text: &str, offset: usize) -> usize {
    let offset = offset.min(text.len());
    text[offset..].find('\n').map_or(text.len(), |n| offset + n)
}

fn ceil_char_boundary(text: &str, mut offset: usize) -> usize {
    while offset < text.len() && !text.is_char_boundary(offset) {
        offset += 1;
    }
    offset.min(text.len())
}

/// Draws diagnostics as text, with source excerpts; `color` adds ANSI colors.
pub fn render(file_name: &str, text: &str, diagnostics: &[Diagnostic], color: bool) -> String {
    let theme = if color { GraphicalTheme::unicode() } else { GraphicalTheme::unicode_nocolor() };
    let handler = GraphicalReportHandler::new_themed(theme).with_width(100).with_context_lines(CONTEXT_LINES);
    let mut out = String::new();
    for d in diagnostics {
        // miette draws nothing for an empty span at the very end, so widen it backwards
        // over the last character.
        let spans: Vec<(usize, usize)> = d
            .labels
            .iter()
            .map(|l| {
                let start = (l.span.start as usize).min(text.len());
                let end = (l.span.end as usize).clamp(start, text.len());
                if start == text.len() && !text.is_empty() {
                    (floor_char_boundary(text, text.len() - 1), text.len())
                } else {
                    (start, end)
                }
            })
            .collect();
        let source = Excerpt::new(file_name, text, &spans);
        let spans = spans.iter().map(|&(s, e)| (source.to_excerpt(s), source.to_excerpt(e))).collect();
        let rendered = Rendered { diagnostic: d, source, spans };
        if handler.render_report(&mut out, &rendered).is_err() {
            out.push_str(&format!("{}[{}]: {}\n", severity_word(d.severity), d.code, d.message));
        }
    }
    out
}

fn severity_word(s: Severity) -> &'static str {
    match s {
        Severity::Error => "error",
        Severity::Warning => "warning",
    }
}

/// One diagnostic as a JSON record: file, byte range, line and column (from 1), code,
/// severity, message, labels and help.
pub fn to_json(file_name: &str, text: &str, d: &Diagnostic) -> serde_json::Value {
    let span = d.primary_span();
    let (line, column) = line_column(text, span.start as usize);
    let (end_line, end_column) = line_column(text, span.end as usize);
    let labels: Vec<serde_json::Value> = d
        .labels
        .iter()
        .map(|l| {
            let (line, column) = line_column(text, l.span.start as usize);
            serde_json::json!({
                "start": l.span.start, "end": l.span.end, "line": line, "column": column,
                "message": l.message, "primary": l.primary,
            })
        })
        .collect();
    serde_json::json!({
        "file": file_name,
        "code": d.code.as_str(),
        "severity": severity_word(d.severity),
        "message": d.message,
        "start": span.start,
        "end": span.end,
        "line": line,
        "column": column,
        "end_line": end_line,
        "end_column": end_column,
        "labels": labels,
        "help": d.help,
        "notes": d.notes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_column_cases() {
        let cases: &[(&str, usize, (usize, usize))] = &[
            ("abc", 0, (1, 1)),
            ("abc\ndef", 5, (2, 2)),
            ("abc\r\ndef", 6, (2, 2)),
            ("\u{FEFF}abc", 4, (1, 2)),
            ("\tx", 1, (1, 2)),
            ("é😀x", 6, (1, 3)),
            ("ab", 99, (1, 3)),
        ];
        for (text, offset, expected) in cases {
            assert_eq!(line_column(text, *offset), *expected, "{text:?} at {offset}");
        }
    }

    #[test]
    fn codes_are_unique() {
        let mut seen = std::collections::BTreeSet::new();
        for c in Code::ALL.into_iter().chain(Code::PLAN) {
            assert!(seen.insert(c.as_str()), "duplicate code {c}");
        }
    }
}
