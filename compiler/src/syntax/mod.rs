//! Syntax: cutting a file into items, the pest grammar, and the typed tree.
//!
//! This module knows nothing of the query database, the language server or the runtime.
//! Parsing never panics: every input gives a tree or diagnostics, or both.

mod ast;
mod expected;
mod parse;
mod split;

pub use ast::*;
pub use parse::{MAX_EXPR_DEPTH, ParsedItem, parse_item, unescape};
pub use split::{Comment, MAX_NESTING, RawItem, Split, split};
