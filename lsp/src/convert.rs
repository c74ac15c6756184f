//! Conversions from the compiler's byte spans and analysis results to LSP types.

use basin_compiler::diagnostics::{Diagnostic, Severity};
use basin_compiler::ide::{self, CompletionKind, OutlineKind, TokenKind};
use basin_compiler::syntax::{ItemKind, MemberKind, Span};
use tower_lsp_server::ls_types::{self as lsp, Position, Range, Uri};

use crate::position::{Cursor, Encoding, LineIndex};
use crate::state::Snapshot;

pub fn range(snapshot: &Snapshot, span: Span) -> Range {
    range_in(&snapshot.index, snapshot.text(), span, snapshot.encoding)
}

pub fn range_in(index: &LineIndex, text: &str, span: Span, encoding: Encoding) -> Range {
    Range { start: index.position(text, span.start, encoding), end: index.position(text, span.end, encoding) }
}

pub fn offset(snapshot: &Snapshot, position: Position) -> u32 {
    snapshot.index.offset(snapshot.text(), position, snapshot.encoding)
}

pub fn span(snapshot: &Snapshot, range: Range) -> Span {
    let start = offset(snapshot, range.start);
    let end = offset(snapshot, range.end).max(start);
    Span { start, end }
}

/// A compiler diagnostic as the editor shows it: the help and notes follow the message,
/// and secondary labels become related information.
pub fn diagnostic(snapshot: &Snapshot, uri: &Uri, d: &Diagnostic) -> lsp::Diagnostic {
    let mut message = d.message.clone();
    for note in &d.notes {
        message.push_str(&format!("\nnote: {note}"));
    }
    if let Some(help) = &d.help {
        message.push_str(&format!("\nhelp: {help}"));
    }
    let related: Vec<lsp::DiagnosticRelatedInformation> = d
        .labels
        .iter()
        .filter(|l| !l.primary)
        .map(|l| lsp::DiagnosticRelatedInformation { location: lsp::Location { uri: uri.clone(), range: range(snapshot, l.span) }, message: l.message.clone() })
        .collect();
    lsp::Diagnostic {
        range: range(snapshot, d.primary_span()),
        severity: Some(match d.severity {
            Severity::Error => lsp::DiagnosticSeverity::ERROR,
            Severity::Warning => lsp::DiagnosticSeverity::WARNING,
        }),
        code: Some(lsp::NumberOrString::String(d.code.as_str().to_string())),
        source: Some("basin".to_string()),
        message,
        related_information: (!related.is_empty()).then_some(related),
        ..Default::default()
    }
}

pub fn completion_kind(kind: CompletionKind) -> lsp::CompletionItemKind {
    match kind {
        CompletionKind::Keyword => lsp::CompletionItemKind::KEYWORD,
        CompletionKind::Model => lsp::CompletionItemKind::STRUCT,
        CompletionKind::Function => lsp::CompletionItemKind::FUNCTION,
        CompletionKind::Variable => lsp::CompletionItemKind::VARIABLE,
        CompletionKind::Block => lsp::CompletionItemKind::EVENT,
        CompletionKind::Member(MemberKind::Param) => lsp::CompletionItemKind::PROPERTY,
        CompletionKind::Member(_) => lsp::CompletionItemKind::FIELD,
        CompletionKind::Parameter => lsp::CompletionItemKind::VARIABLE,
        CompletionKind::Unit => lsp::CompletionItemKind::UNIT,
        CompletionKind::Module => lsp::CompletionItemKind::MODULE,
        CompletionKind::Setting => lsp::CompletionItemKind::PROPERTY,
        CompletionKind::Builtin => lsp::CompletionItemKind::CONSTANT,
    }
}

pub fn completion(c: ide::Completion) -> lsp::CompletionItem {
    lsp::CompletionItem {
        kind: Some(completion_kind(c.kind)),
        detail: c.detail,
        documentation: c.docs.map(|value| lsp::Documentation::MarkupContent(lsp::MarkupContent { kind: lsp::MarkupKind::Markdown, value })),
        insert_text: c.insert_text,
        label: c.label,
        ..Default::default()
    }
}

pub fn symbol_kind(kind: OutlineKind) -> lsp::SymbolKind {
    match kind {
        OutlineKind::Item(ItemKind::Model) => lsp::SymbolKind::STRUCT,
        OutlineKind::Item(ItemKind::Fn) => lsp::SymbolKind::FUNCTION,
        OutlineKind::Item(ItemKind::Use) => lsp::SymbolKind::MODULE,
        OutlineKind::Item(ItemKind::Goal | ItemKind::Constraint | ItemKind::Refine) => lsp::SymbolKind::EVENT,
        OutlineKind::Item(ItemKind::Plan | ItemKind::World) => lsp::SymbolKind::NAMESPACE,
        OutlineKind::Item(ItemKind::Site | ItemKind::Let) => lsp::SymbolKind::CONSTANT,
        OutlineKind::Item(ItemKind::Agent | ItemKind::Design | ItemKind::Context) => lsp::SymbolKind::OBJECT,
        OutlineKind::Member(_) | OutlineKind::Field => lsp::SymbolKind::FIELD,
        OutlineKind::Parameter => lsp::SymbolKind::VARIABLE,
    }
}

#[allow(deprecated)]
pub fn outline(snapshot: &Snapshot, o: ide::Outline) -> lsp::DocumentSymbol {
    let children: Vec<lsp::DocumentSymbol> = o.children.into_iter().map(|c| outline(snapshot, c)).collect();
    lsp::DocumentSymbol {
        name: o.name,
        detail: o.detail,
        kind: symbol_kind(o.kind),
        tags: None,
        deprecated: None,
        range: range(snapshot, o.span),
        selection_range: range(snapshot, o.name_span),
        children: (!children.is_empty()).then_some(children),
    }
}

/// The token types of the legend, indexed by [`token_type`].
pub const TOKEN_TYPES: [lsp::SemanticTokenType; 14] = [
    lsp::SemanticTokenType::KEYWORD,
    lsp::SemanticTokenType::NUMBER,
    lsp::SemanticTokenType::TYPE,
    lsp::SemanticTokenType::STRING,
    lsp::SemanticTokenType::COMMENT,
    lsp::SemanticTokenType::OPERATOR,
    lsp::SemanticTokenType::STRUCT,
    lsp::SemanticTokenType::FUNCTION,
    lsp::SemanticTokenType::VARIABLE,
    lsp::SemanticTokenType::EVENT,
    lsp::SemanticTokenType::PROPERTY,
    lsp::SemanticTokenType::PARAMETER,
    lsp::SemanticTokenType::NAMESPACE,
    lsp::SemanticTokenType::ENUM_MEMBER,
];

pub const TOKEN_MODIFIERS: [lsp::SemanticTokenModifier; 2] = [lsp::SemanticTokenModifier::DECLARATION, lsp::SemanticTokenModifier::DEFAULT_LIBRARY];

/// The index of a token kind in [`TOKEN_TYPES`]. Units are shown as types, settings as
/// properties, and the loader, solver and world-kind words as enum members.
fn token_type(kind: TokenKind) -> u32 {
    match kind {
        TokenKind::Keyword => 0,
        TokenKind::Number => 1,
        TokenKind::Unit => 2,
        TokenKind::String => 3,
        TokenKind::Comment => 4,
        TokenKind::Operator => 5,
        TokenKind::Model => 6,
        TokenKind::Function => 7,
        TokenKind::Variable => 8,
        TokenKind::Block => 9,
        TokenKind::Member | TokenKind::Setting => 10,
        TokenKind::Parameter => 11,
        TokenKind::Module => 12,
        TokenKind::Builtin => 13,
    }
}

/// Tokens in the protocol's relative encoding; the input is sorted and single-line.
pub fn semantic_tokens(snapshot: &Snapshot, tokens: &[ide::Token]) -> Vec<lsp::SemanticToken> {
    let text = snapshot.text();
    let mut cursor = Cursor::new(&snapshot.index, text, snapshot.encoding);
    let mut out = Vec::with_capacity(tokens.len());
    let mut previous = Position { line: 0, character: 0 };
    for t in tokens {
        let start = cursor.position(t.span.start);
        let end = cursor.position(t.span.end);
        if end.line != start.line || end.character <= start.character {
            continue;
        }
        let delta_line = start.line - previous.line;
        let delta_start = if delta_line == 0 { start.character - previous.character } else { start.character };
        let modifiers = u32::from(t.declaration) | (u32::from(t.library) << 1);
        out.push(lsp::SemanticToken { delta_line, delta_start, length: end.character - start.character, token_type: token_type(t.kind), token_modifiers_bitset: modifiers });
        previous = start;
    }
    out
}
