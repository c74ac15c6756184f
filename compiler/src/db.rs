//! The incremental query database shared by `basin check` and the language server.
//!
//! Inputs are source texts. A file is cut into items ([`file_items`]); each item is parsed
//! on its own ([`parse`]) and checked on its own ([`check_item`]) against the file's
//! environment ([`file_env`]), which holds the types of every visible name and nothing
//! that moves when text moves. After an edit inside one item, salsa re-runs the cut, the
//! parse and check of that item, and the environment; when the environment comes out equal
//! (the edit changed a value, not a type) the checks of all other items are reused.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use crate::check::{Checker, Env, FnSig, MemberInfo, ModelInfo, Origin, Symbol, Ty};
use crate::diagnostics::{Code, Diagnostic, Label};
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
#[derive(Clone, Debug, PartialEq, Eq, salsa::SalsaValue)]
pub struct ItemEntry<'db> {
    pub key: ItemKey<'db>,
    pub offset: u32,
    pub kind: Option<ItemKind>,
    pub docs: String,
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
    log: Arc<Mutex<Option<Vec<String>>>>,
}

impl Default for Database {
    fn default() -> Self {
        Database::new()
    }
}

impl Database {
    pub fn new() -> Database {
        let log: Arc<Mutex<Option<Vec<String>>>> = Arc::default();
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
        let mut db = Database { storage, modules: Arc::new(BTreeMap::new()), log };
        let mut modules = BTreeMap::new();
        for m in stdlib::MODULES {
            let file = SourceFile::new(&db, format!("<{}>", m.path), m.source.to_string(), Some(m.path.to_string()));
            modules.insert(m.path.to_string(), file);
        }
        db.modules = Arc::new(modules);
        db
    }

    /// Starts recording which queries execute, for incrementality tests.
    pub fn start_log(&self) {
        if let Ok(mut guard) = self.log.lock() {
            *guard = Some(Vec::new());
        }
    }

    /// The queries executed since [`Database::start_log`], e.g. `parse(Id(402))`.
    pub fn take_log(&self) -> Vec<String> {
        self.log.lock().ok().and_then(|mut g| g.as_mut().map(std::mem::take)).unwrap_or_default()
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
            let item_text = text[raw.span.range()].to_string();
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

/// The names visible in a file, with their types.
#[salsa::tracked(returns(ref))]
pub fn file_env(db: &dyn Db, file: SourceFile) -> Env {
    let _span = tracing::debug_span!("file_env", path = %file.path(db)).entered();
    build_env(db, file).0
}

/// File-level diagnostics: duplicates, import errors and cycles among `let`s.
#[salsa::tracked(returns(ref))]
pub fn file_diagnostics(db: &dyn Db, file: SourceFile) -> Vec<Diagnostic> {
    let (_, mut diagnostics) = build_env(db, file);
    let items = file_items(db, file);
    let mut first: BTreeMap<&str, Span> = BTreeMap::new();
    for entry in &items.items {
        let Some(item) = &parse(db, entry.key).item else { continue };
        let Some(name) = item.name() else { continue };
        let span = name.span.shift(entry.offset);
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

/// Checks one item against its file's environment; spans are relative to the item.
#[salsa::tracked(returns(ref))]
pub fn check_item<'db>(db: &'db dyn Db, key: ItemKey<'db>) -> Vec<Diagnostic> {
    let _span = tracing::debug_span!("check_item").entered();
    let parsed = parse(db, key);
    let Some(item) = &parsed.item else { return Vec::new() };
    let env = file_env(db, *key.file(db));
    crate::check::items::check(item, env)
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
        let parsed = parse(db, entry.key);
        diagnostics.extend(parsed.diagnostics.iter().cloned().map(|d| d.shifted(entry.offset)));
        diagnostics.extend(check_item(db, entry.key).iter().cloned().map(|d| d.shifted(entry.offset)));
    }
    diagnostics.extend(file_diagnostics(db, file).iter().cloned());
    diagnostics.sort_by_key(|d| (d.primary_span().start, d.code));
    diagnostics.dedup();
    CheckedFile { diagnostics }
}

/// Builds the environment of `file` and the file-level diagnostics found on the way.
fn build_env(db: &dyn Db, file: SourceFile) -> (Env, Vec<Diagnostic>) {
    let mut env = Env::default();
    let mut diagnostics = Vec::new();
    let items = file_items(db, file);
    let parsed: Vec<(u32, &Item, &str)> = items
        .items
        .iter()
        .filter_map(|e| parse(db, e.key).item.as_ref().map(|i| (e.offset, i, e.docs.as_str())))
        .collect();

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
    for (offset, item, _) in &parsed {
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
                Some(s) => d.with_help(format!("did you mean `{s}`?")),
                None => d.with_help(format!("the modules are: {}", known.join(", "))),
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
                        Some(s) => d.with_help(format!("did you mean `{s}`?")),
                        None => d.with_help(format!("`{module_path}` contains: {}", local.join(", "))),
                    };
                    diagnostics.push(d);
                }
            }
        }
    }

    let local = |ty: Ty, kind: ItemKind, docs: &str| Symbol { kind: Some(kind), ty, docs: docs.to_string(), origin: Origin::Local };

    // Models first, so that members, functions and instances can name them.
    for (_, item, docs) in &parsed {
        if let Item::Model(m) = item {
            let info = model_info(&env, m, docs);
            env.symbols.insert(m.name.name.clone(), local(Ty::Model(Arc::new(info)), ItemKind::Model, docs));
        }
    }
    for (_, item, docs) in &parsed {
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

    // `let` and `site` values, in dependency order; members of a cycle stay unknown.
    let values: BTreeMap<&str, (&Expr, ItemKind, &str, u32, Span)> = parsed
        .iter()
        .filter_map(|(offset, item, docs)| match item {
            Item::Let(v) | Item::Site(v) => Some((v.name.name.as_str(), (&v.value, item.kind(), *docs, *offset, v.name.span))),
            _ => None,
        })
        .collect();
    let mut state: BTreeMap<&str, u8> = BTreeMap::new(); // 1 = visiting, 2 = done
    let mut reported_cycle: BTreeSet<&str> = BTreeSet::new();
    for start in values.keys().copied() {
        // Depth-first search with an explicit stack: (name, children pushed?).
        let mut stack: Vec<(&str, bool)> = vec![(start, false)];
        while let Some((name, expanded)) = stack.pop() {
            if state.get(name) == Some(&2) {
                continue;
            }
            let (expr, kind, docs, _, _) = values[name];
            if expanded {
                let ty = if reported_cycle.contains(name) { Ty::Unknown } else { Checker::new(&env).expr(expr) };
                env.symbols.insert(name.to_string(), local(ty, kind, docs));
                state.insert(name, 2);
                continue;
            }
            state.insert(name, 1);
            stack.push((name, true));
            for dep in free_names(expr) {
                let Some((dep_name, _)) = values.get_key_value(dep.as_str()) else { continue };
                match state.get(dep_name) {
                    Some(1) => {
                        if reported_cycle.insert(dep_name) {
                            let (_, _, _, offset, span) = values[dep_name];
                            let (_, _, _, user_offset, user_span) = values[name];
                            diagnostics.push(
                                Diagnostic::error(Code::Cycle, format!("`{dep_name}` is defined in terms of itself"))
                                    .with_label(Label::primary(span.shift(offset), "this definition depends on itself"))
                                    .with_label(Label::secondary(user_span.shift(user_offset), format!("`{name}` takes part in the cycle")))
                                    .with_help("try giving one of the values a literal"),
                            );
                        }
                        reported_cycle.insert(name);
                    }
                    Some(_) => {}
                    None => stack.push((dep_name, false)),
                }
            }
        }
    }
    (env, diagnostics)
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

/// Names an expression reads, without duplicates.
pub fn free_names(e: &Expr) -> Vec<String> {
    let mut out = BTreeSet::new();
    let mut stack = vec![e];
    while let Some(e) = stack.pop() {
        match &e.kind {
            ExprKind::Name(id) => {
                out.insert(id.name.clone());
            }
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
    out.into_iter().collect()
}
