//! Editor analyses over the query database: what is at an offset, hover text, definitions,
//! references, renames, completion, signature help, outlines, token classes, folding
//! ranges, inlay hints and quick fixes.
//!
//! Everything here works in byte offsets of one file's text and returns plain data. The
//! language server converts offsets to editor positions at its own edge. The analyses are
//! fail-soft like the checker: an item that does not parse contributes nothing, and text
//! scans stand in for the tree where the user is in the middle of typing (completion and
//! signature help).
//!
//! Definitions may live in the standard library. They are reported as a [`Location`] with
//! the module path (`std.robots`) and a span in that module's embedded source, which the
//! caller may show however suits its client.

mod complete;
mod fixes;
mod hints;
mod hover;
mod navigate;
mod outline;
mod tokens;
mod values;
mod walk;

#[cfg(test)]
mod tests;

pub use complete::{Completion, CompletionKind, Signature, completions, signature_help};
pub use fixes::{Fix, code_actions};
pub use hints::{InlayHint, inlay_hints};
pub use hover::{HoverInfo, hover};
pub use navigate::{Location, RenameError, definition, prepare_rename, references, rename};
pub use outline::{Fold, FoldKind, Outline, OutlineKind, document_symbols, folding_ranges};
pub use tokens::{Token, TokenKind, semantic_tokens};
