//! Structured diagnostics, and the one place that renders them.
//!
//! Analyses produce [`Diagnostic`] values with byte spans and stable codes; they stay data
//! until [`render`] draws them with miette for a terminal or [`to_json`] turns them into
//! records for tools. The language server converts the same values at its own edge.

use std::fmt;

use miette::{GraphicalReportHandler, GraphicalTheme, LabeledSpan, NamedSource};
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

/// miette's view of one diagnostic with its source.
struct Rendered<'a> {
    diagnostic: &'a Diagnostic,
    source: NamedSource<String>,
    len: usize,
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
        let mut text = String::new();
        for note in &self.diagnostic.notes {
            text.push_str("note: ");
            text.push_str(note);
            text.push('\n');
        }
        if let Some(help) = &self.diagnostic.help {
            text.push_str(help);
        }
        let text = text.trim_end().to_string();
        if text.is_empty() { None } else { Some(Box::new(text)) }
    }

    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        Some(&self.source)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        let len = self.len;
        Some(Box::new(self.diagnostic.labels.iter().map(move |l| {
            // miette draws nothing for an empty span at the very end, so widen it backwards.
            let (mut start, mut width) = (l.span.start as usize, l.span.len() as usize);
            if start >= len && len > 0 {
                start = len - 1;
                width = 1;
            }
            if l.primary {
                LabeledSpan::new_primary_with_span(Some(l.message.clone()), (start, width))
            } else {
                LabeledSpan::new_with_span(Some(l.message.clone()), (start, width))
            }
        })))
    }
}

/// Draws diagnostics as text, with source excerpts; `color` adds ANSI colors.
pub fn render(file_name: &str, text: &str, diagnostics: &[Diagnostic], color: bool) -> String {
    let theme = if color { GraphicalTheme::unicode() } else { GraphicalTheme::unicode_nocolor() };
    let handler = GraphicalReportHandler::new_themed(theme).with_width(100);
    let mut out = String::new();
    for d in diagnostics {
        let rendered = Rendered { diagnostic: d, source: NamedSource::new(file_name, text.to_string()), len: text.len() };
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
        for c in Code::ALL {
            assert!(seen.insert(c.as_str()), "duplicate code {c}");
        }
    }
}
