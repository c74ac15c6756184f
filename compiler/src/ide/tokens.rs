//! Token classes for semantic highlighting.
//!
//! A small lexer finds keywords, numbers, strings and operators, so that an item that does
//! not parse is still highlighted. Names and units come from the walk, classified by what
//! they resolve to. Tokens never span lines and never overlap.

use crate::check::{Origin, Ty};
use crate::db::{Db, SourceFile, file_env, file_items};
use crate::syntax::{ItemKind, Span};

use super::walk::{Ref, walk_file};

/// The reserved words of the grammar, plus the words that only some rules accept.
pub(crate) const KEYWORDS: &[&str] = &[
    "use", "context", "agent", "design", "site", "let", "goal", "constraint", "world", "plan", "refine", "model", "fn", "reach",
    "finish_by", "minimize", "maximize", "always", "eventually", "within", "until", "then", "hard", "soft", "weight", "and", "or",
    "not", "true", "false", "at", "add", "rerun", "obstacle", "from", "state", "action", "param", "signal",
];

pub(crate) fn is_keyword(word: &str) -> bool {
    KEYWORDS.contains(&word)
}

/// The class of a token, which chooses its color.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TokenKind {
    Keyword,
    Number,
    Unit,
    String,
    Comment,
    Operator,
    Model,
    Function,
    /// An agent, design, `let`, `site` or context.
    Variable,
    /// A goal, constraint or world: a named block.
    Block,
    Member,
    Parameter,
    Module,
    /// A setting of `plan`, `world`, a loader or a solver.
    Setting,
    /// A word the language defines: a loader, solver or world kind.
    Builtin,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Token {
    pub span: Span,
    pub kind: TokenKind,
    /// The token declares the name.
    pub declaration: bool,
    /// The token names something from the standard library or the prelude.
    pub library: bool,
}

/// Classifies every token of `file`, in source order.
pub fn semantic_tokens(db: &dyn Db, file: SourceFile) -> Vec<Token> {
    let _span = tracing::debug_span!("ide::semantic_tokens").entered();
    let text = file.text(db);
    let env = file_env(db, file);
    let mut tokens: Vec<Token> = Vec::new();

    for o in &walk_file(db, file).occurrences {
        let (kind, library) = match &o.target {
            Ref::Item(name) => match env.lookup(name) {
                Some(symbol) => (symbol_kind(&symbol.ty, symbol.kind), symbol.origin != Origin::Local),
                None => continue,
            },
            Ref::ItemPath { module, name } => match env.paths.get(&format!("{module}.{name}")) {
                Some(symbol) => (symbol_kind(&symbol.ty, symbol.kind), true),
                None => continue,
            },
            Ref::Module(_) => (TokenKind::Module, true),
            Ref::Member { .. } | Ref::TupleField(_) => (TokenKind::Member, false),
            Ref::Param { .. } => (TokenKind::Parameter, false),
            Ref::Unit(_) => (TokenKind::Unit, false),
            Ref::Setting { .. } => (TokenKind::Setting, false),
            Ref::Solver(_) | Ref::Loader(_) | Ref::WorldKind(_) => (TokenKind::Builtin, true),
        };
        tokens.push(Token { span: o.span, kind, declaration: o.def, library });
    }
    for c in &file_items(db, file).comments {
        tokens.push(Token { span: c.span, kind: TokenKind::Comment, declaration: false, library: false });
    }
    lex(text, &mut tokens);

    tokens.sort_by_key(|t| (t.span.start, std::cmp::Reverse(t.span.end)));
    let mut out: Vec<Token> = Vec::with_capacity(tokens.len());
    for t in tokens {
        if t.span.is_empty() || out.last().is_some_and(|last| t.span.start < last.span.end) {
            continue;
        }
        out.push(t);
    }
    out
}

fn symbol_kind(ty: &Ty, kind: Option<ItemKind>) -> TokenKind {
    match ty {
        Ty::Model(_) => TokenKind::Model,
        Ty::Fn(_) => TokenKind::Function,
        Ty::Block(_) => TokenKind::Block,
        _ if kind.is_none() => TokenKind::Builtin,
        _ => TokenKind::Variable,
    }
}

/// Adds keywords, numbers, strings and operators; comments are skipped, and names are left
/// to the walk.
fn lex(text: &str, out: &mut Vec<Token>) {
    let bytes = text.as_bytes();
    let mut push = |start: usize, end: usize, kind: TokenKind| {
        out.push(Token { span: Span::new(start, end), kind, declaration: false, library: false });
    };
    let mut i = 0;
    let mut previous_is_word = false;
    while i < bytes.len() {
        let c = text[i..].chars().next().unwrap_or(' ');
        let width = c.len_utf8();
        if c == '/' && bytes.get(i + 1) == Some(&b'/') {
            i = text[i..].find('\n').map_or(text.len(), |n| i + n);
            previous_is_word = false;
            continue;
        }
        if c == '"' {
            let mut j = i + 1;
            while j < bytes.len() && bytes[j] != b'"' && bytes[j] != b'\n' {
                j += if bytes[j] == b'\\' && j + 1 < bytes.len() && bytes[j + 1] != b'\n' { 2 } else { 1 };
            }
            let end = if j < bytes.len() && bytes[j] == b'"' { j + 1 } else { j };
            let end = if text[..end].ends_with('\r') { end - 1 } else { end };
            push(i, end, TokenKind::String);
            i = end.max(i + 1);
            previous_is_word = false;
            continue;
        }
        if c.is_ascii_digit() && !previous_is_word {
            let mut j = i;
            while j < bytes.len() && (bytes[j].is_ascii_digit() || bytes[j] == b'_') {
                j += 1;
            }
            if j + 1 < bytes.len() && bytes[j] == b'.' && bytes[j + 1].is_ascii_digit() {
                j += 1;
                while j < bytes.len() && (bytes[j].is_ascii_digit() || bytes[j] == b'_') {
                    j += 1;
                }
            }
            if j < bytes.len() && (bytes[j] == b'e' || bytes[j] == b'E') {
                let mut k = j + 1;
                if k < bytes.len() && (bytes[k] == b'+' || bytes[k] == b'-') {
                    k += 1;
                }
                if k < bytes.len() && bytes[k].is_ascii_digit() {
                    while k < bytes.len() && bytes[k].is_ascii_digit() {
                        k += 1;
                    }
                    j = k;
                }
            }
            push(i, j, TokenKind::Number);
            i = j;
            previous_is_word = false;
            continue;
        }
        if c == '_' || c.is_alphabetic() {
            let end = text[i..].char_indices().find(|&(_, ch)| !(ch == '_' || ch.is_alphanumeric())).map_or(text.len(), |(n, _)| i + n);
            if is_keyword(&text[i..end]) {
                push(i, end, TokenKind::Keyword);
            }
            i = end;
            previous_is_word = true;
            continue;
        }
        let operator_len = ["..=", "->", "<=", ">=", "==", "!=", "+=", "-=", "*=", "/=", ".."]
            .iter()
            .find(|op| text[i..].starts_with(**op))
            .map(|op| op.len())
            .or_else(|| "+-*/^<>=|".contains(c).then_some(1));
        if let Some(len) = operator_len {
            push(i, i + len, TokenKind::Operator);
            i += len;
            previous_is_word = false;
            continue;
        }
        previous_is_word = false;
        i += width;
    }
}
