//! Go to definition, find references and rename, by name resolution over the walk.
//!
//! Two occurrences refer to the same thing when they resolve to the same definition site,
//! so a member `speed` and a `let speed` never mix. References are searched in the one file
//! given; the standard library is never rewritten, so renaming anything defined there is
//! rejected with a message.

use crate::check::{Origin, prelude};
use crate::db::{Db, SourceFile, file_env, file_items, parse};
use crate::syntax::{Item, Span};

use super::tokens::is_keyword;
use super::walk::{Occurrence, Ref, walk_file, walk_item_at};

/// A span in the file being edited (`module` is `None`) or in a standard library module
/// such as `std.robots`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    pub module: Option<String>,
    pub span: Span,
}

/// The definition site of an occurrence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Def {
    At(Location),
    /// A prelude name such as `duration` or `sqrt`, defined by the compiler itself.
    Builtin(String),
}

/// The reason a rename cannot be done, as a message for the user.
pub type RenameError = String;

/// Finds the item of `file` whose text contains `offset`, and returns its start offset.
pub(crate) fn item_offset_at(db: &dyn Db, file: SourceFile, offset: u32) -> Option<u32> {
    file_items(db, file)
        .items
        .iter()
        .find(|e| e.offset <= offset && offset <= e.offset + e.key.text(db).len() as u32)
        .map(|e| e.offset)
}

/// Finds the occurrence at `offset` by walking its item only.
pub(crate) fn occurrence_at(db: &dyn Db, file: SourceFile, offset: u32) -> Option<Occurrence> {
    let item = item_offset_at(db, file, offset)?;
    walk_item_at(db, file, item).occurrence_at(offset).cloned()
}

/// Finds the span of the name of the item called `name` in `file`.
fn find_item(db: &dyn Db, file: SourceFile, name: &str) -> Option<Span> {
    file_items(db, file).items.iter().find_map(|entry| {
        let item = parse(db, entry.key).item.as_ref()?;
        let id = item.name().filter(|id| id.name == name)?;
        Some(id.span.shift(entry.offset))
    })
}

/// Finds the span of member `member` of the model called `model` in `file`.
fn find_member(db: &dyn Db, file: SourceFile, model: &str, member: &str) -> Option<Span> {
    file_items(db, file).items.iter().find_map(|entry| match parse(db, entry.key).item.as_ref()? {
        Item::Model(m) if m.name.name == model => m.members.iter().find(|mm| mm.name.name == member).map(|mm| mm.name.span.shift(entry.offset)),
        _ => None,
    })
}

/// Resolves `occurrence` to its definition site.
pub(crate) fn resolve(db: &dyn Db, file: SourceFile, occurrence: &Occurrence) -> Option<Def> {
    let in_module = |module: &str, name: &str| -> Option<Def> {
        let source = db.module(module)?;
        let span = find_item(db, source, name)?;
        Some(Def::At(Location { module: Some(module.to_string()), span }))
    };
    match &occurrence.target {
        Ref::Item(name) => {
            let env = file_env(db, file);
            match env.symbols.get(name).map(|s| &s.origin) {
                Some(Origin::Local) => find_item(db, file, name).map(|span| Def::At(Location { module: None, span })),
                Some(Origin::Module(module)) => in_module(module, name),
                Some(Origin::Builtin) => Some(Def::Builtin(name.clone())),
                None if prelude().contains_key(name) => Some(Def::Builtin(name.clone())),
                None => None,
            }
        }
        Ref::ItemPath { module, name } => in_module(module, name),
        Ref::Module(path) => db.module(path).map(|_| Def::At(Location { module: Some(path.clone()), span: Span::default() })),
        Ref::Member { model, name } => {
            if let Some(span) = find_member(db, file, model, name) {
                return Some(Def::At(Location { module: None, span }));
            }
            db.module_names().into_iter().find_map(|module| {
                let source = db.module(&module)?;
                let span = find_member(db, source, model, name)?;
                Some(Def::At(Location { module: Some(module), span }))
            })
        }
        Ref::Param { item, name } => {
            let entry = file_items(db, file).items.iter().find(|e| e.offset == *item)?;
            match parse(db, entry.key).item.as_ref()? {
                Item::Fn(f) => f.params.iter().find(|p| p.name.name == *name).map(|p| Def::At(Location { module: None, span: p.name.span.shift(*item) })),
                _ => None,
            }
        }
        Ref::Unit(_) | Ref::Setting { .. } | Ref::Solver(_) | Ref::Loader(_) | Ref::WorldKind(_) | Ref::TupleField(_) => None,
    }
}

/// Finds where the name at `offset` is defined, in this file or in the standard library.
pub fn definition(db: &dyn Db, file: SourceFile, offset: u32) -> Option<Location> {
    let _span = tracing::debug_span!("ide::definition", offset).entered();
    let occurrence = occurrence_at(db, file, offset)?;
    match resolve(db, file, &occurrence)? {
        Def::At(location) => Some(location),
        Def::Builtin(_) => None,
    }
}

/// Lists every span in `file` that refers to the same definition as the name at `offset`,
/// in source order. The declaration itself is included only when `include_declaration` is set.
pub fn references(db: &dyn Db, file: SourceFile, offset: u32, include_declaration: bool) -> Vec<Span> {
    let _span = tracing::debug_span!("ide::references", offset).entered();
    let Some(occurrence) = occurrence_at(db, file, offset) else { return Vec::new() };
    let Some(target) = resolve(db, file, &occurrence) else { return Vec::new() };
    let declaration = match &target {
        Def::At(Location { module: None, span }) => Some(*span),
        _ => None,
    };
    let name = occurrence.name().to_string();
    let mut spans: Vec<Span> = walk_file(db, file)
        .occurrences
        .iter()
        .filter(|o| o.name() == name && matches!(o.target, Ref::Module(_)) == matches!(occurrence.target, Ref::Module(_)))
        .filter(|o| include_declaration || (!o.def && Some(o.span) != declaration))
        .filter(|o| resolve(db, file, o).as_ref() == Some(&target))
        .map(|o| o.span)
        .collect();
    spans.sort();
    spans.dedup();
    spans
}

/// Returns the span of the name at `offset` if it can be renamed, else the reason it cannot.
pub fn prepare_rename(db: &dyn Db, file: SourceFile, offset: u32) -> Result<Span, RenameError> {
    let occurrence = occurrence_at(db, file, offset).ok_or_else(|| "there is no name here to rename".to_string())?;
    let name = occurrence.name().to_string();
    match &occurrence.target {
        Ref::Item(_) | Ref::ItemPath { .. } | Ref::Member { .. } | Ref::Param { .. } => {}
        Ref::Unit(_) => return Err(format!("`{name}` is a unit, and units cannot be renamed")),
        _ => return Err(format!("`{name}` is a word of the language, not a name declared in this file")),
    }
    match resolve(db, file, &occurrence) {
        Some(Def::At(Location { module: None, .. })) => Ok(occurrence.span),
        Some(Def::At(Location { module: Some(module), .. })) => {
            Err(format!("`{name}` is defined in the standard library module `{module}`, which cannot be renamed"))
        }
        Some(Def::Builtin(_)) => Err(format!("`{name}` is built into the language and cannot be renamed")),
        None => Err(format!("cannot find the definition of `{name}`")),
    }
}

/// Lists the spans to replace with `new_name` to rename the name at `offset` in `file`.
pub fn rename(db: &dyn Db, file: SourceFile, offset: u32, new_name: &str) -> Result<Vec<Span>, RenameError> {
    let _span = tracing::debug_span!("ide::rename", offset).entered();
    prepare_rename(db, file, offset)?;
    let mut chars = new_name.chars();
    let valid = chars.next().is_some_and(|c| c == '_' || c.is_alphabetic()) && chars.all(|c| c == '_' || c.is_alphanumeric());
    if !valid {
        return Err(format!("`{new_name}` is not a valid name; try letters, digits and `_`, starting with a letter"));
    }
    if is_keyword(new_name) {
        return Err(format!("`{new_name}` is a keyword; try another name"));
    }
    Ok(references(db, file, offset, true))
}
