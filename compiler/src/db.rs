//! The incremental query database shared by `basin check` and the language server.
//!
//! Inputs are source texts. A file is cut into items ([`file_items`]); each item is parsed
//! on its own ([`parse`]) and checked on its own ([`check_item`]) against the file's
//! environment ([`file_env`]), which holds the types of every visible name and nothing
//! that moves when text moves. One pass over the items ([`file_scope`]) builds the
//! environment and the file-level diagnostics together. After an edit inside one item,
//! salsa re-runs the cut, the parse and check of that item, and that pass; when the
//! environment comes out equal (the edit changed a value, not a type) the checks of all
//! other items are reused. `compiler/tests/incremental.rs` asserts this, and
//! `compiler/benches/check.rs` measures it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use crate::check::{Checker, Env, FnSig, MemberInfo, ModelInfo, Origin, Symbol, Ty};
use crate::diagnostics::{Code, Diagnostic, Label};
use crate::names::NameMap;
use crate::stdlib;
use crate::syntax::{self, Expr, ExprKind, Item, ItemKind, ParsedItem, Span};

/// One source text: a user's spec or a standard library module.
#[salsa::input(debug)]
pub struct SourceFile {
    #[returns(ref)]
    pub path: String,
    #[returns(ref)]
    pub text: String,
    /// `Some("std.robots")` for a standard library module.
    #[returns(ref)]
    pub module: Option<String>,
}

/// The text of one item of one file, where it was cut. Items with equal text in the same
/// file share a key, and so share their parse and check.
#[salsa::interned(debug)]
pub struct ItemKey<'db> {
    pub file: SourceFile,
    #[returns(ref)]
    pub text: String,
    /// Offset, relative to the item, of a bracket nested too deep to parse.
    pub too_deep_at: Option<u32>,
}

/// One item of a file with its position.
#[derive(Clone, Debug, Eq, salsa::SalsaValue)]
pub struct ItemEntry<'db> {
    pub key: ItemKey<'db>,
    pub offset: u32,
    pub kind: Option<ItemKind>,
    pub docs: String,
}

/// Written out to compare empty doc strings by length, as [`Symbol`]'s equality does.
impl PartialEq for ItemEntry<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key && self.offset == other.offset && self.kind == other.kind && crate::check::same_text(&self.docs, &other.docs)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, salsa::SalsaValue)]
pub struct FileItems<'db> {
    pub items: Vec<ItemEntry<'db>>,
    pub comments: Vec<syntax::Comment>,
}

/// Access to the standard library from queries.
#[salsa::db]
pub trait Db: salsa::Database {
    fn module(&self, path: &str) -> Option<SourceFile>;
    fn module_names(&self) -> Vec<String>;
}

/// The database: salsa storage plus the standard library modules, loaded once.
#[salsa::db]
#[derive(Clone)]
pub struct Database {
    storage: salsa::Storage<Self>,
    modules: Arc<BTreeMap<String, SourceFile>>,
    /// The query log of [`Database::with_query_log`]: `None` until a log is started.
    log: Option<QueryLog>,
}

type QueryLog = Arc<Mutex<Option<Vec<String>>>>;

impl Default for Database {
    fn default() -> Self {
        Database::new()
    }
}

impl Database {
    /// Creates a database for checking, as the command line and the language server use.
    pub fn new() -> Database {
        Database::with_storage(salsa::Storage::new(None), None)
    }

    /// Creates a database that can record which queries execute, for incrementality tests
    /// (see [`Database::start_log`]). Recording makes salsa report every query fetch as an
    /// event, which took about 9% of a re-check in the `check` benchmark, so
    /// [`Database::new`] does without it.
    pub fn with_query_log() -> Database {
        let log: QueryLog = Arc::default();
        let sink = log.clone();
        let storage = salsa::Storage::new(Some(Box::new(move |event: salsa::Event| {
            if let salsa::EventKind::WillExecute { database_key } = event.kind {
                if let Ok(mut guard) = sink.lock() {
                    if let Some(entries) = guard.as_mut() {
                        entries.push(format!("{database_key:?}"));
                    }
                }
            }
        })));
        Database::with_storage(storage, Some(log))
    }

    fn with_storage(storage: salsa::Storage<Self>, log: Option<QueryLog>) -> Database {
        let mut db = Database { storage, modules: Arc::new(BTreeMap::new()), log };
        let mut modules = BTreeMap::new();
        for m in stdlib::MODULES {
            let file = SourceFile::new(&db, format!("<{}>", m.path), m.source.to_string(), Some(m.path.to_string()));
            modules.insert(m.path.to_string(), file);
        }
        db.modules = Arc::new(modules);
        db
    }

    /// Starts recording which queries execute.
    ///
    /// # Panics
    ///
    /// On a database made by [`Database::new`], which cannot record.
    pub fn start_log(&self) {
        let log = self.log.as_ref().expect("start_log needs a database made by Database::with_query_log");
        if let Ok(mut guard) = log.lock() {
            *guard = Some(Vec::new());
        }
    }

    /// The queries executed since [`Database::start_log`], e.g. `parse(Id(402))`.
    pub fn take_log(&self) -> Vec<String> {
        let Some(log) = &self.log else { return Vec::new() };
        log.lock().ok().and_then(|mut g| g.as_mut().map(std::mem::take)).unwrap_or_default()
    }

    pub fn add_file(&self, path: impl Into<String>, text: impl Into<String>) -> SourceFile {
        SourceFile::new(self, path.into(), text.into(), None)
    }
}

#[salsa::db]
impl salsa::Database for Database {}

#[salsa::db]
impl Db for Database {
    fn module(&self, path: &str) -> Option<SourceFile> {
        self.modules.get(path).copied()
    }

    fn module_names(&self) -> Vec<String> {
        self.modules.keys().cloned().collect()
    }
}

/// Cuts a file into items.
#[salsa::tracked(returns(ref))]
pub fn file_items<'db>(db: &'db dyn Db, file: SourceFile) -> FileItems<'db> {
    let _span = tracing::debug_span!("file_items", path = %file.path(db)).entered();
    let text = file.text(db);
    let split = syntax::split(text);
    let items = split
        .items
        .into_iter()
        .map(|raw| {
            // Interning by `&str` allocates only for an item text not seen before.
            let item_text = &text[raw.span.range()];
            let too_deep_at = raw.too_deep_at.map(|at| at - raw.span.start);
            ItemEntry { key: ItemKey::new(db, file, item_text, too_deep_at), offset: raw.span.start, kind: raw.kind, docs: raw.docs }
        })
        .collect();
    FileItems { items, comments: split.comments }
}

/// Parses one item; spans are relative to the item.
#[salsa::tracked(returns(ref))]
pub fn parse<'db>(db: &'db dyn Db, key: ItemKey<'db>) -> ParsedItem {
    let _span = tracing::debug_span!("parse").entered();
    let text = key.text(db);
    if !text.is_empty() && syntax::split(text).items.first().is_some_and(|i| i.kind.is_none()) {
        let word: String = text.chars().take_while(|c| !c.is_whitespace()).take(40).collect();
        let end = word.len().max(1).min(text.len());
        let d = Diagnostic::error(Code::Syntax, format!("expected a declaration, found `{word}`"))
            .with_label(Label::primary(Span::new(0, end), "not a declaration"))
            .with_help("try starting the line with `let`, `agent`, `goal`, `constraint` or another declaration keyword");
        return ParsedItem { item: None, diagnostics: vec![d] };
    }
    syntax::parse_item(text, *key.too_deep_at(db))
}

/// The environment of a file and its file-level diagnostics, computed in one pass. Each
/// is a tracked field, which salsa compares on its own after an edit: when the edit moves
/// a diagnostic but leaves every type as it was, the checks that read the environment are
/// still reused.
#[salsa::tracked(debug)]
pub struct FileScope<'db> {
    #[tracked]
    #[returns(ref)]
    pub env: Env,
    /// Duplicates, import errors and cycles among values, with file offsets.
    #[tracked]
    #[returns(ref)]
    pub diagnostics: Vec<Diagnostic>,
}

/// Builds the [`FileScope`] of a file.
#[salsa::tracked]
pub fn file_scope<'db>(db: &'db dyn Db, file: SourceFile) -> FileScope<'db> {
    let _span = tracing::debug_span!("file_scope", path = %file.path(db)).entered();
    let parsed = parsed_items(db, file);
    let (env, mut diagnostics) = build_env(db, file, &parsed);
    diagnostics.extend(duplicates(&parsed));
    FileScope::new(db, env, diagnostics)
}

/// Returns the names visible in a file, with their types.
pub fn file_env(db: &dyn Db, file: SourceFile) -> &Env {
    file_scope(db, file).env(db)
}

/// Returns the file-level diagnostics: duplicates, import errors and cycles among values.
pub fn file_diagnostics(db: &dyn Db, file: SourceFile) -> &Vec<Diagnostic> {
    file_scope(db, file).diagnostics(db)
}

/// Reports every name defined a second time.
fn duplicates(parsed: &[(u32, &Item, &str)]) -> Vec<Diagnostic> {
    let mut diagnostics = Vec::new();
    let mut first: NameMap<&str, Span> = NameMap::default();
    for (offset, item, _) in parsed {
        let Some(name) = item.name() else { continue };
        let span = name.span.shift(*offset);
        if let Some(prev) = first.get(name.name.as_str()) {
            diagnostics.push(
                Diagnostic::error(Code::Duplicate, format!("`{}` is defined more than once", name.name))
                    .with_label(Label::primary(span, "defined again here"))
                    .with_label(Label::secondary(*prev, "first defined here"))
                    .with_help("try renaming one of the two"),
            );
        } else {
            first.insert(&name.name, span);
        }
    }
    diagnostics
}

/// Parses and checks one item. The result is its syntax errors, or else the checks of its
/// tree against its file's environment, with spans relative to the item.
#[salsa::tracked(returns(ref))]
pub fn check_item<'db>(db: &'db dyn Db, key: ItemKey<'db>) -> Vec<Diagnostic> {
    let _span = tracing::debug_span!("check_item").entered();
    let parsed = parse(db, key);
    let mut diagnostics = parsed.diagnostics.clone();
    if let Some(item) = &parsed.item {
        let env = file_env(db, *key.file(db));
        diagnostics.extend(crate::check::items::check(item, env));
    }
    diagnostics
}

/// Every diagnostic of a file, with file offsets, in source order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckedFile {
    pub diagnostics: Vec<Diagnostic>,
}

impl CheckedFile {
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }
}

/// Parses and checks a whole file.
#[salsa::tracked(returns(ref))]
pub fn check_file(db: &dyn Db, file: SourceFile) -> CheckedFile {
    let _span = tracing::debug_span!("check_file", path = %file.path(db)).entered();
    let mut diagnostics = Vec::new();
    for entry in &file_items(db, file).items {
        diagnostics.extend(check_item(db, entry.key).iter().cloned().map(|d| d.shifted(entry.offset)));
    }
    diagnostics.extend(file_diagnostics(db, file).iter().cloned());
    diagnostics.sort_by_key(|d| (d.primary_span().start, d.code));
    diagnostics.dedup();
    CheckedFile { diagnostics }
}

/// Collects the items of `file` that parsed, with their offsets and doc comments.
fn parsed_items(db: &dyn Db, file: SourceFile) -> Vec<(u32, &Item, &str)> {
    file_items(db, file).items.iter().filter_map(|e| parse(db, e.key).item.as_ref().map(|i| (e.offset, i, e.docs.as_str()))).collect()
}

/// Builds the environment of `file` and the diagnostics of its imports and cycles.
fn build_env(db: &dyn Db, file: SourceFile, parsed: &[(u32, &Item, &str)]) -> (Env, Vec<Diagnostic>) {
    let mut env = Env::default();
    let mut diagnostics = Vec::new();

    // Standard library items are reachable by full path from user files.
    if file.module(db).is_none() {
        for name in db.module_names() {
            if let Some(module) = db.module(&name) {
                for (item_name, sym) in &file_env(db, module).symbols {
                    if sym.origin == Origin::Local {
                        let mut s = sym.clone();
                        s.origin = Origin::Module(name.clone());
                        env.paths.insert(format!("{name}.{item_name}"), s);
                    }
                }
            }
        }
    }

    // Imports.
    for (offset, item, _) in parsed {
        let Item::Use(u) = item else { continue };
        let (module_segments, names): (&[syntax::Ident], Vec<&syntax::Ident>) = match &u.group {
            Some(group) => (&u.path.segments[..], group.iter().collect()),
            None => (&u.path.segments[..u.path.segments.len() - 1], vec![u.path.segments.last().expect("a path has a segment")]),
        };
        let module_path: Vec<&str> = module_segments.iter().map(|s| s.name.as_str()).collect();
        let module_path = module_path.join(".");
        let Some(module) = db.module(&module_path) else {
            let span = match (module_segments.first(), module_segments.last()) {
                (Some(a), Some(b)) => a.span.to(b.span),
                _ => u.path.span,
            };
            let known = db.module_names();
            let mut d = Diagnostic::error(Code::UnknownImport, format!("no module `{module_path}` in the standard library"))
                .with_label(Label::primary(span.shift(*offset), "unknown module"));
            d = match crate::names::closest(&module_path, known.iter().map(String::as_str)) {
                Some(s) => d.with_help(format!("try `{s}`, the closest match")),
                None => d.with_help(crate::names::try_one_of("the modules", known.iter().map(String::as_str))),
            };
            diagnostics.push(d);
            continue;
        };
        if module == file {
            continue;
        }
        let module_env = file_env(db, module);
        for n in names {
            match module_env.symbols.get(&n.name).filter(|s| s.origin == Origin::Local) {
                Some(sym) => {
                    let mut s = sym.clone();
                    s.origin = Origin::Module(module_path.clone());
                    env.symbols.insert(n.name.clone(), s);
                }
                None => {
                    let local: Vec<&str> =
                        module_env.symbols.iter().filter(|(_, s)| s.origin == Origin::Local).map(|(k, _)| k.as_str()).collect();
                    let mut d = Diagnostic::error(Code::UnknownImport, format!("module `{module_path}` has no item `{}`", n.name))
                        .with_label(Label::primary(n.span.shift(*offset), "not in this module"));
                    d = match crate::names::closest(&n.name, local.iter().copied()) {
                        Some(s) => d.with_help(format!("try `{s}`, the closest match")),
                        None => d.with_help(crate::names::try_one_of(&format!("the items of `{module_path}`"), local.iter().copied())),
                    };
                    diagnostics.push(d);
                }
            }
        }
    }

    let local = |ty: Ty, kind: ItemKind, docs: &str| Symbol { kind: Some(kind), ty, docs: docs.to_string(), origin: Origin::Local };

    // Models first, so that members, functions and instances can name them.
    for (_, item, docs) in parsed {
        if let Item::Model(m) = item {
            let info = model_info(&env, m, docs);
            env.symbols.insert(m.name.name.clone(), local(Ty::Model(Arc::new(info)), ItemKind::Model, docs));
        }
    }
    for (_, item, docs) in parsed {
        match item {
            Item::Fn(f) => {
                let mut checker = Checker::new(&env);
                let params = f.params.iter().map(|p| (p.name.name.clone(), checker.type_of_annotation(&p.ty))).collect();
                let ret = checker.type_of_annotation(&f.ret);
                let sig = FnSig { name: f.name.name.clone(), params, ret, docs: docs.to_string() };
                env.symbols.insert(f.name.name.clone(), local(Ty::Fn(Arc::new(sig)), ItemKind::Fn, docs));
            }
            Item::Context(c) => {
                env.symbols.insert(c.name.name.clone(), local(Ty::Context(c.loader.name.clone()), ItemKind::Context, docs));
            }
            Item::Instance(i) => {
                let ty = match resolve_path(&env, &i.model) {
                    Some(Ty::Model(m)) => Ty::Instance(m),
                    _ => Ty::Unknown,
                };
                env.symbols.insert(i.name.name.clone(), local(ty, i.kind, docs));
            }
            Item::Goal(b) | Item::Constraint(b) => {
                let kind = item.kind();
                env.symbols.insert(b.name.name.clone(), local(Ty::Block(kind), kind, docs));
            }
            Item::World(w) => {
                env.symbols.insert(w.name.name.clone(), local(Ty::Block(ItemKind::World), ItemKind::World, docs));
            }
            _ => {}
        }
    }

    add_values(&mut env, parsed, &mut diagnostics);
    (env, diagnostics)
}

/// One `let` or `site` of a file, for ordering values by dependency.
struct Value<'a> {
    name: &'a str,
    expr: &'a Expr,
    kind: ItemKind,
    docs: &'a str,
    /// The offset of the item in the file.
    offset: u32,
    /// The declared name, relative to the item.
    span: Span,
}

/// Types the `let` and `site` values of a file in dependency order and adds them to `env`.
/// Each cycle is reported once, and the members of a cycle stay unknown.
fn add_values(env: &mut Env, parsed: &[(u32, &Item, &str)], diagnostics: &mut Vec<Diagnostic>) {
    const UNSEEN: u8 = 0;
    const VISITING: u8 = 1;
    const DONE: u8 = 2;
    let values: Vec<Value<'_>> = parsed
        .iter()
        .filter_map(|&(offset, item, docs)| match item {
            Item::Let(v) | Item::Site(v) => Some(Value { name: &v.name.name, expr: &v.value, kind: item.kind(), docs, offset, span: v.name.span }),
            _ => None,
        })
        .collect();
    // A name defined twice means its last definition, because the later entry replaces the
    // earlier one in `index`. The earlier is never typed, and `duplicates` reports it.
    // Values are visited in source order.
    let index: NameMap<&str, usize> = values.iter().enumerate().map(|(i, v)| (v.name, i)).collect();
    let mut state: Vec<u8> = values.iter().enumerate().map(|(i, v)| if index[v.name] == i { UNSEEN } else { DONE }).collect();
    let mut in_cycle = vec![false; values.len()];
    let mut names: Vec<&str> = Vec::new();
    for start in 0..values.len() {
        // Depth-first search with an explicit stack: (value, children pushed?).
        let mut stack: Vec<(usize, bool)> = vec![(start, false)];
        while let Some((at, expanded)) = stack.pop() {
            if state[at] == DONE {
                continue;
            }
            let value = &values[at];
            if expanded {
                let ty = if in_cycle[at] { Ty::Unknown } else { Checker::new(env).expr(value.expr) };
                let symbol = Symbol { kind: Some(value.kind), ty, docs: value.docs.to_string(), origin: Origin::Local };
                env.symbols.insert(value.name.to_string(), symbol);
                state[at] = DONE;
                continue;
            }
            state[at] = VISITING;
            stack.push((at, true));
            read_names_into(value.expr, &mut names);
            for &dep_name in &names {
                let Some(&dep) = index.get(dep_name) else { continue };
                match state[dep] {
                    VISITING => {
                        if !in_cycle[dep] {
                            in_cycle[dep] = true;
                            diagnostics.push(cycle_error(&values[dep], value));
                        }
                        in_cycle[at] = true;
                    }
                    DONE => {}
                    _ => stack.push((dep, false)),
                }
            }
        }
    }
}

/// Reports a cycle through `value`, found while visiting `user`, which reads it.
fn cycle_error(value: &Value<'_>, user: &Value<'_>) -> Diagnostic {
    // A value that names itself gets its use pointed at, not its name twice.
    let other = if value.name == user.name {
        let use_span = first_use(user.expr, user.name).unwrap_or(user.span);
        Label::secondary(use_span.shift(user.offset), "used in its own definition")
    } else {
        Label::secondary(user.span.shift(user.offset), format!("`{}` takes part in the cycle", user.name))
    };
    Diagnostic::error(Code::Cycle, format!("`{}` is defined in terms of itself", value.name))
        .with_label(Label::primary(value.span.shift(value.offset), "this definition depends on itself"))
        .with_label(other)
        .with_help("try giving one of the values a literal")
}

fn model_info(env: &Env, m: &syntax::ModelDecl, docs: &str) -> ModelInfo {
    let mut checker = Checker::new(env);
    let members = m
        .members
        .iter()
        .map(|mm| MemberInfo {
            name: mm.name.name.clone(),
            kind: mm.kind,
            ty: checker.type_of_annotation(&mm.ty),
            has_default: mm.default.is_some() || mm.kind != syntax::MemberKind::Param,
        })
        .collect();
    ModelInfo { name: m.name.name.clone(), members, docs: docs.to_string() }
}

/// Resolves `name` or `std.module.name` to a type.
pub fn resolve_path(env: &Env, path: &syntax::Path) -> Option<Ty> {
    if path.segments.len() == 1 {
        return env.lookup(&path.segments[0].name).map(|s| s.ty.clone());
    }
    env.paths.get(&path.dotted()).map(|s| s.ty.clone())
}

/// Finds the first place `e` reads `name`, in source order.
fn first_use(e: &Expr, name: &str) -> Option<Span> {
    let mut stack = vec![e];
    let mut first: Option<Span> = None;
    while let Some(e) = stack.pop() {
        if let ExprKind::Name(id) = &e.kind {
            if id.name == name && first.is_none_or(|f| id.span.start < f.start) {
                first = Some(id.span);
            }
        }
        stack.extend(children(e));
    }
    first
}

/// Lists the subexpressions of `e`.
fn children(e: &Expr) -> Vec<&Expr> {
    match &e.kind {
        ExprKind::Field { base, .. } => vec![base],
        ExprKind::Call { callee, args } => std::iter::once(callee.as_ref()).chain(args).collect(),
        ExprKind::Index { base, index } => vec![base, index],
        ExprKind::Tuple(es) | ExprKind::List(es) => es.iter().collect(),
        ExprKind::Record { fields, .. } => fields
            .iter()
            .filter_map(|f| match &f.value {
                syntax::FieldValue::Expr(e) => Some(e),
                syntax::FieldValue::Stages(_) => None,
            })
            .collect(),
        ExprKind::Paren(inner) => vec![inner],
        ExprKind::Unary { operand, .. } => vec![operand],
        ExprKind::Binary { lhs, rhs, .. } => vec![lhs, rhs],
        ExprKind::Name(_) | ExprKind::Quantity { .. } | ExprKind::Str(_) | ExprKind::Bool(_) | ExprKind::Error => Vec::new(),
    }
}

/// Names an expression reads, sorted and without duplicates.
pub fn free_names(e: &Expr) -> Vec<String> {
    let mut names = Vec::new();
    read_names_into(e, &mut names);
    names.into_iter().map(str::to_string).collect()
}

/// Replaces the contents of `out` with the names `e` reads, sorted and without duplicates.
/// The names are borrowed from the tree, and the caller reuses `out` to save an allocation
/// per expression.
fn read_names_into<'a>(e: &'a Expr, out: &mut Vec<&'a str>) {
    out.clear();
    // Most values are a literal or a name, which need no stack.
    match &e.kind {
        ExprKind::Name(id) => {
            out.push(id.name.as_str());
            return;
        }
        ExprKind::Quantity { .. } | ExprKind::Str(_) | ExprKind::Bool(_) | ExprKind::Error => return,
        _ => {}
    }
    let mut stack = vec![e];
    while let Some(e) = stack.pop() {
        match &e.kind {
            ExprKind::Name(id) => out.push(id.name.as_str()),
            ExprKind::Field { base, .. } => stack.push(base),
            ExprKind::Call { callee, args } => {
                stack.push(callee);
                stack.extend(args);
            }
            ExprKind::Index { base, index } => {
                stack.push(base);
                stack.push(index);
            }
            ExprKind::Tuple(es) | ExprKind::List(es) => stack.extend(es),
            ExprKind::Record { fields, .. } => {
                for f in fields {
                    if let syntax::FieldValue::Expr(e) = &f.value {
                        stack.push(e);
                    }
                }
            }
            ExprKind::Paren(inner) => stack.push(inner),
            ExprKind::Unary { operand, .. } => stack.push(operand),
            ExprKind::Binary { lhs, rhs, .. } => {
                stack.push(lhs);
                stack.push(rhs);
            }
            ExprKind::Quantity { .. } | ExprKind::Str(_) | ExprKind::Bool(_) | ExprKind::Error => {}
        }
    }
    out.sort_unstable();
    out.dedup();
}
