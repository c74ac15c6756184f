//! The Basin compiler: syntax, names, units, checking, and the query database shared by the
//! command-line program and the language server.

pub mod db;
pub mod diagnostics;
pub mod energy;
pub mod fmt;
pub mod ide;
pub mod jit;
pub mod names;
pub mod plan;
pub mod stdlib;
pub mod syntax;
pub mod units;

mod check;

pub use db::{CheckedFile, Database, SourceFile};
pub use diagnostics::{Code, Diagnostic, Label, Severity};
