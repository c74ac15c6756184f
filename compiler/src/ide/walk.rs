//! A walk over the syntax trees of a file that records every name, unit and literal together
//! with what it refers to.
//!
//! Field accesses are resolved by typing their base with the checker, so `robot.speed`
//! records a member of the model that `robot` instantiates. Inside a model the members are
//! in scope by their bare names, and inside a function its parameters are.

use std::collections::BTreeMap;

use crate::check::items::{LOADERS, PLAN_FIELDS, SOLVERS, WORLD_FIELDS};
use crate::check::{Checker, Env, Ty};
use crate::db::{Db, SourceFile, file_env, file_items, parse, resolve_path};
use crate::syntax::*;

/// The target of a name, unit or word in the source.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ref {
    /// A top-level name: an item of this file, an imported item or a prelude name.
    Item(String),
    /// An item written by its full path, such as `std.robots.diff_drive`.
    ItemPath { module: String, name: String },
    /// A standard library module, or a prefix of its path, in `use` or a full path.
    Module(String),
    /// A member of the model named `model`.
    Member { model: String, name: String },
    /// A parameter of the function whose item starts at file offset `item`.
    Param { item: u32, name: String },
    Unit(String),
    /// A setting of a block without a model: `plan`, `world`, a context loader or a solver.
    Setting { owner: SettingOwner, name: String },
    Solver(String),
    Loader(String),
    WorldKind(String),
    /// `.x`, `.y` or `.z` of a tuple.
    TupleField(String),
}

/// The block whose settings a [`Ref::Setting`] belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SettingOwner {
    Plan,
    World,
    Loader(String),
    Solver(String),
}

impl SettingOwner {
    /// Returns the settings the block accepts, from the checker's tables.
    pub fn settings(&self) -> &'static [(&'static str, crate::check::items::Setting)] {
        match self {
            SettingOwner::Plan => PLAN_FIELDS,
            SettingOwner::World => WORLD_FIELDS,
            SettingOwner::Loader(l) => LOADERS.iter().find(|(n, _)| n == l).map_or(&[], |(_, s)| s),
            SettingOwner::Solver(s) => SOLVERS.iter().find(|(n, _)| n == s).map_or(&[], |(_, f)| f),
        }
    }

    pub fn describe(&self) -> String {
        match self {
            SettingOwner::Plan => "the plan".into(),
            SettingOwner::World => "a world model".into(),
            SettingOwner::Loader(l) => format!("the `{l}` loader"),
            SettingOwner::Solver(s) => format!("the solver `{s}`"),
        }
    }
}

/// One name, unit or word with its span in the file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Occurrence {
    pub span: Span,
    pub target: Ref,
    /// True where the name is declared rather than used.
    pub def: bool,
}

impl Occurrence {
    /// Returns the name as it is spelled in the source.
    pub fn name(&self) -> &str {
        match &self.target {
            Ref::Item(n) | Ref::Unit(n) | Ref::Solver(n) | Ref::Loader(n) | Ref::WorldKind(n) | Ref::TupleField(n) => n,
            Ref::ItemPath { name, .. } | Ref::Member { name, .. } | Ref::Param { name, .. } | Ref::Setting { name, .. } => name,
            Ref::Module(path) => path.rsplit('.').next().unwrap_or(path),
        }
    }
}

/// A unit factor with its span in the file.
#[derive(Clone, Debug, PartialEq)]
pub struct UnitPart {
    pub name: String,
    pub power: i32,
    pub span: Span,
}

/// A number literal, with its unit as written.
#[derive(Clone, Debug, PartialEq)]
pub struct Quantity {
    /// The whole literal, number and unit.
    pub span: Span,
    pub value: f64,
    pub text: String,
    pub unit: Vec<UnitPart>,
}

/// Everything the walk found in a file, in source order within each item.
#[derive(Clone, Debug, Default)]
pub struct FileWalk {
    pub occurrences: Vec<Occurrence>,
    pub quantities: Vec<Quantity>,
}

impl FileWalk {
    /// Finds the occurrence whose span contains `offset`, preferring one that starts there.
    pub fn occurrence_at(&self, offset: u32) -> Option<&Occurrence> {
        self.occurrences
            .iter()
            .filter(|o| o.span.contains(offset))
            .min_by_key(|o| (o.span.end == offset && o.span.start != offset, o.span.len()))
    }
}

/// Walks every item of `file` that parsed.
pub fn walk_file(db: &dyn Db, file: SourceFile) -> FileWalk {
    let env = file_env(db, file);
    let mut walker = Walker::new(env);
    for entry in &file_items(db, file).items {
        if let Some(item) = &parse(db, entry.key).item {
            walker.item(item, entry.offset);
        }
    }
    walker.out
}

/// Walks the one item that starts at `offset`, or nothing when it does not parse.
pub fn walk_item_at(db: &dyn Db, file: SourceFile, offset: u32) -> FileWalk {
    let env = file_env(db, file);
    let mut walker = Walker::new(env);
    if let Some(entry) = file_items(db, file).items.iter().find(|e| e.offset == offset) {
        if let Some(item) = &parse(db, entry.key).item {
            walker.item(item, entry.offset);
        }
    }
    walker.out
}

/// Puts the names an item binds (model members, function parameters) into `checker`.
pub fn bind_locals(checker: &mut Checker<'_>, item: &Item) {
    match item {
        Item::Model(m) => {
            for mm in &m.members {
                let t = checker.type_of_annotation(&mm.ty);
                checker.locals.insert(mm.name.name.clone(), t);
            }
        }
        Item::Fn(f) => {
            for p in &f.params {
                let t = checker.type_of_annotation(&p.ty);
                checker.locals.insert(p.name.name.clone(), t);
            }
        }
        _ => {}
    }
    checker.diagnostics.clear();
}

/// Returns the name of the model a type refers to, if it refers to one.
fn model_name(ty: &Ty) -> Option<String> {
    match ty {
        Ty::Model(m) | Ty::Instance(m) => Some(m.name.clone()),
        _ => None,
    }
}

/// The local names of the current item, which bare names resolve to before the
/// environment.
enum Scope {
    None,
    Model(String),
    Fn(u32),
}

struct Walker<'a> {
    env: &'a Env,
    checker: Checker<'a>,
    scope: Scope,
    offset: u32,
    out: FileWalk,
}

impl<'a> Walker<'a> {
    fn new(env: &'a Env) -> Walker<'a> {
        Walker { env, checker: Checker::new(env), scope: Scope::None, offset: 0, out: FileWalk::default() }
    }

    fn push(&mut self, span: Span, target: Ref, def: bool) {
        self.out.occurrences.push(Occurrence { span: span.shift(self.offset), target, def });
    }

    fn type_of(&mut self, e: &Expr) -> Ty {
        let t = self.checker.expr(e);
        self.checker.diagnostics.clear();
        t
    }

    fn item(&mut self, item: &Item, offset: u32) {
        self.offset = offset;
        self.checker.locals = BTreeMap::new();
        self.scope = Scope::None;
        bind_locals(&mut self.checker, item);
        if let Some(name) = item.name() {
            self.push(name.span, Ref::Item(name.name.clone()), true);
        }
        match item {
            Item::Use(u) => self.use_decl(u),
            Item::Context(c) => {
                self.push(c.loader.span, Ref::Loader(c.loader.name.clone()), false);
                for a in &c.args {
                    self.expr(a);
                }
                self.settings(&c.fields, SettingOwner::Loader(c.loader.name.clone()));
            }
            Item::Instance(i) => {
                let model = self.model_path(&i.model);
                self.model_fields(&i.fields, model.as_deref());
            }
            Item::Site(v) | Item::Let(v) => self.expr(&v.value),
            Item::Goal(b) | Item::Constraint(b) => {
                for c in &b.clauses {
                    self.clause(c);
                }
            }
            Item::World(w) => {
                self.push(w.kind.span, Ref::WorldKind(w.kind.name.clone()), false);
                if let Some(from) = &w.from {
                    self.expr(from);
                }
                self.settings(&w.fields, SettingOwner::World);
            }
            Item::Plan(p) => self.settings(&p.fields, SettingOwner::Plan),
            Item::Refine(r) => {
                for step in &r.steps {
                    if let Some(at) = &step.at {
                        self.expr(at);
                    }
                    match &step.action {
                        RefineAction::AddObstacle { shape, at } => {
                            self.expr(shape);
                            self.expr(at);
                        }
                        RefineAction::Rerun(id) => self.push(id.span, Ref::Item(id.name.clone()), false),
                        RefineAction::Assign { target, value, .. } => {
                            self.assign_target(target);
                            self.expr(value);
                        }
                    }
                }
            }
            Item::Model(m) => {
                self.scope = Scope::Model(m.name.name.clone());
                for mm in &m.members {
                    self.push(mm.name.span, Ref::Member { model: m.name.name.clone(), name: mm.name.name.clone() }, true);
                    self.type_expr(&mm.ty);
                    if let Some(d) = &mm.default {
                        self.expr(d);
                    }
                    if let Some(b) = &mm.bounds {
                        self.expr(b);
                    }
                }
            }
            Item::Fn(f) => {
                self.scope = Scope::Fn(offset);
                for p in &f.params {
                    self.push(p.name.span, Ref::Param { item: offset, name: p.name.name.clone() }, true);
                    self.type_expr(&p.ty);
                }
                self.type_expr(&f.ret);
                self.expr(&f.body);
            }
        }
    }

    fn use_decl(&mut self, u: &UseDecl) {
        let segments = &u.path.segments;
        let module_len = if u.group.is_some() { segments.len() } else { segments.len().saturating_sub(1) };
        for i in 0..module_len {
            let path: Vec<&str> = segments[..=i].iter().map(|s| s.name.as_str()).collect();
            self.push(segments[i].span, Ref::Module(path.join(".")), false);
        }
        let imported: Vec<&Ident> = match &u.group {
            Some(group) => group.iter().collect(),
            None => segments.last().into_iter().collect(),
        };
        for id in imported {
            self.push(id.span, Ref::Item(id.name.clone()), false);
        }
    }

    /// Records the segments of a model path and returns the model's name.
    fn model_path(&mut self, path: &Path) -> Option<String> {
        let segments = &path.segments;
        match segments.as_slice() {
            [] => {}
            [only] => self.push(only.span, Ref::Item(only.name.clone()), false),
            [modules @ .., last] => {
                for i in 0..modules.len() {
                    let p: Vec<&str> = modules[..=i].iter().map(|s| s.name.as_str()).collect();
                    self.push(modules[i].span, Ref::Module(p.join(".")), false);
                }
                let module: Vec<&str> = modules.iter().map(|s| s.name.as_str()).collect();
                self.push(last.span, Ref::ItemPath { module: module.join("."), name: last.name.clone() }, false);
            }
        }
        resolve_path(self.env, path).as_ref().and_then(model_name)
    }

    fn model_fields(&mut self, fields: &[Field], model: Option<&str>) {
        for f in fields {
            if let Some(model) = model {
                self.push(f.name.span, Ref::Member { model: model.to_string(), name: f.name.name.clone() }, false);
            }
            if let FieldValue::Expr(e) = &f.value {
                self.expr(e);
            }
        }
    }

    fn settings(&mut self, fields: &[Field], owner: SettingOwner) {
        for f in fields {
            self.push(f.name.span, Ref::Setting { owner: owner.clone(), name: f.name.name.clone() }, false);
            match &f.value {
                FieldValue::Expr(Expr { kind: ExprKind::Record { name, fields }, .. }) if f.name.name == "solver" => {
                    self.stage(name, fields);
                }
                FieldValue::Expr(Expr { kind: ExprKind::Name(name), .. }) if f.name.name == "solver" => self.stage(name, &[]),
                FieldValue::Expr(Expr { kind: ExprKind::Name(name), .. }) if matches!(owner, SettingOwner::Loader(_)) => {
                    // An option word such as `dark`: not a name to resolve.
                    let _ = name;
                }
                FieldValue::Expr(e) => self.expr(e),
                FieldValue::Stages(stages) => {
                    for s in stages {
                        self.stage(&s.name, &s.fields);
                    }
                }
            }
        }
    }

    fn stage(&mut self, name: &Ident, fields: &[Field]) {
        self.push(name.span, Ref::Solver(name.name.clone()), false);
        self.settings(fields, SettingOwner::Solver(name.name.clone()));
    }

    fn assign_target(&mut self, target: &Path) {
        let mut segments = target.segments.iter();
        let Some(first) = segments.next() else { return };
        let mut base = Expr { kind: ExprKind::Name(first.clone()), span: first.span };
        self.expr(&base);
        for seg in segments {
            let t = self.type_of(&base);
            self.field(&t, seg);
            let span = base.span.to(seg.span);
            base = Expr { kind: ExprKind::Field { base: Box::new(base), field: seg.clone() }, span };
        }
    }

    fn clause(&mut self, c: &Clause) {
        match &c.kind {
            ClauseKind::Reach { what, target, tolerance, .. } => {
                self.expr(what);
                self.expr(target);
                if let Some(t) = tolerance {
                    self.expr(t);
                }
            }
            ClauseKind::FinishBy(e) | ClauseKind::Minimize(e) | ClauseKind::Maximize(e) => self.expr(e),
            ClauseKind::Formula(f) => self.formula(f),
        }
        if let Some(Strength::Soft { weight: Some(w), .. }) = &c.strength {
            self.expr(w);
        }
    }

    fn formula(&mut self, f: &Formula) {
        let mut stack = vec![f];
        while let Some(f) = stack.pop() {
            match f {
                Formula::Atom(e) => self.expr(e),
                Formula::Always { window, body, .. } | Formula::Eventually { window, body, .. } => {
                    if let Some(w) = window {
                        self.expr(&w.start);
                        self.expr(&w.end);
                    }
                    stack.push(body);
                }
                Formula::Until { lhs, rhs, .. } => {
                    stack.push(rhs);
                    stack.push(lhs);
                }
                Formula::Then { first, next, .. } => {
                    stack.push(next);
                    stack.push(first);
                }
            }
        }
    }

    fn type_expr(&mut self, t: &TypeExpr) {
        match t {
            TypeExpr::Tuple(parts, _) => {
                for p in parts {
                    self.type_expr(p);
                }
            }
            TypeExpr::Unit(u) => {
                if let [only] = u.factors.as_slice() {
                    if only.power == 1 && crate::units::lookup(&only.name).is_none() && self.env.lookup(&only.name).is_some() {
                        self.push(only.span, Ref::Item(only.name.clone()), false);
                        return;
                    }
                }
                self.unit(u);
            }
        }
    }

    fn unit(&mut self, u: &UnitExpr) -> Vec<UnitPart> {
        let mut parts = Vec::new();
        for f in &u.factors {
            // The span of a factor covers its exponent too; the name starts it.
            let name_span = Span { start: f.span.start, end: f.span.start + f.name.len() as u32 };
            self.push(name_span, Ref::Unit(f.name.clone()), false);
            parts.push(UnitPart { name: f.name.clone(), power: f.power, span: f.span.shift(self.offset) });
        }
        parts
    }

    fn name(&mut self, id: &Ident) {
        let target = match &self.scope {
            Scope::Model(model) if self.checker.locals.contains_key(&id.name) => Ref::Member { model: model.clone(), name: id.name.clone() },
            Scope::Fn(item) if self.checker.locals.contains_key(&id.name) => Ref::Param { item: *item, name: id.name.clone() },
            _ => Ref::Item(id.name.clone()),
        };
        self.push(id.span, target, false);
    }

    fn field(&mut self, base: &Ty, field: &Ident) {
        let target = match base {
            Ty::Instance(m) | Ty::Model(m) => Some(Ref::Member { model: m.name.clone(), name: field.name.clone() }),
            Ty::Choice(inner) | Ty::Range(inner) => match inner.as_ref() {
                Ty::Instance(m) => Some(Ref::Member { model: m.name.clone(), name: field.name.clone() }),
                _ => None,
            },
            Ty::Tuple(_) => Some(Ref::TupleField(field.name.clone())),
            _ => None,
        };
        if let Some(target) = target {
            self.push(field.span, target, false);
        }
    }

    fn expr(&mut self, e: &Expr) {
        match &e.kind {
            ExprKind::Quantity { value, text, unit } => {
                let unit = unit.as_ref().map(|u| self.unit(u)).unwrap_or_default();
                self.out.quantities.push(Quantity { span: e.span.shift(self.offset), value: *value, text: text.clone(), unit });
            }
            ExprKind::Str(_) | ExprKind::Bool(_) | ExprKind::Error => {}
            ExprKind::Name(id) => self.name(id),
            ExprKind::Field { base, field } => {
                self.expr(base);
                let t = self.type_of(base);
                self.field(&t, field);
            }
            ExprKind::Call { callee, args } => {
                self.expr(callee);
                for a in args {
                    self.expr(a);
                }
            }
            ExprKind::Index { base, index } => {
                self.expr(base);
                self.expr(index);
            }
            ExprKind::Tuple(es) | ExprKind::List(es) => {
                for x in es {
                    self.expr(x);
                }
            }
            ExprKind::Record { name, fields } => {
                self.push(name.span, Ref::Item(name.name.clone()), false);
                let model = self.env.lookup(&name.name).and_then(|s| model_name(&s.ty));
                self.model_fields(fields, model.as_deref());
            }
            ExprKind::Paren(inner) => self.expr(inner),
            ExprKind::Unary { operand, .. } => self.expr(operand),
            ExprKind::Binary { lhs, rhs, .. } => {
                self.expr(lhs);
                self.expr(rhs);
            }
        }
    }
}

/// Lists the expressions directly inside `e`.
pub fn children(e: &Expr) -> Vec<&Expr> {
    match &e.kind {
        ExprKind::Field { base, .. } => vec![base],
        ExprKind::Call { callee, args } => std::iter::once(callee.as_ref()).chain(args).collect(),
        ExprKind::Index { base, index } => vec![base, index],
        ExprKind::Tuple(es) | ExprKind::List(es) => es.iter().collect(),
        ExprKind::Record { fields, .. } => fields
            .iter()
            .filter_map(|f| match &f.value {
                FieldValue::Expr(e) => Some(e),
                FieldValue::Stages(_) => None,
            })
            .collect(),
        ExprKind::Paren(inner) => vec![inner],
        ExprKind::Unary { operand, .. } => vec![operand],
        ExprKind::Binary { lhs, rhs, .. } => vec![lhs, rhs],
        _ => Vec::new(),
    }
}

/// Lists the top-level expressions of an item, in source order.
pub fn item_exprs(item: &Item) -> Vec<&Expr> {
    fn fields<'a>(out: &mut Vec<&'a Expr>, fs: &'a [Field]) {
        for f in fs {
            match &f.value {
                FieldValue::Expr(e) => out.push(e),
                FieldValue::Stages(stages) => {
                    for s in stages {
                        fields(out, &s.fields);
                    }
                }
            }
        }
    }
    let mut out: Vec<&Expr> = Vec::new();
    match item {
        Item::Use(_) => {}
        Item::Context(c) => {
            out.extend(&c.args);
            fields(&mut out, &c.fields);
        }
        Item::Instance(i) => fields(&mut out, &i.fields),
        Item::Site(v) | Item::Let(v) => out.push(&v.value),
        Item::Goal(b) | Item::Constraint(b) => {
            for c in &b.clauses {
                match &c.kind {
                    ClauseKind::Reach { what, target, tolerance, .. } => {
                        out.push(what);
                        out.push(target);
                        out.extend(tolerance);
                    }
                    ClauseKind::FinishBy(e) | ClauseKind::Minimize(e) | ClauseKind::Maximize(e) => out.push(e),
                    ClauseKind::Formula(f) => {
                        let mut stack = vec![f];
                        while let Some(f) = stack.pop() {
                            match f {
                                Formula::Atom(e) => out.push(e),
                                Formula::Always { window, body, .. } | Formula::Eventually { window, body, .. } => {
                                    if let Some(w) = window {
                                        out.push(&w.start);
                                        out.push(&w.end);
                                    }
                                    stack.push(body);
                                }
                                Formula::Until { lhs, rhs, .. } => {
                                    stack.push(rhs);
                                    stack.push(lhs);
                                }
                                Formula::Then { first, next, .. } => {
                                    stack.push(next);
                                    stack.push(first);
                                }
                            }
                        }
                    }
                }
                if let Some(Strength::Soft { weight: Some(w), .. }) = &c.strength {
                    out.push(w);
                }
            }
        }
        Item::World(w) => {
            out.extend(&w.from);
            fields(&mut out, &w.fields);
        }
        Item::Plan(p) => fields(&mut out, &p.fields),
        Item::Refine(r) => {
            for s in &r.steps {
                out.extend(&s.at);
                match &s.action {
                    RefineAction::AddObstacle { shape, at } => {
                        out.push(shape);
                        out.push(at);
                    }
                    RefineAction::Rerun(_) => {}
                    RefineAction::Assign { value, .. } => out.push(value),
                }
            }
        }
        Item::Model(m) => {
            for mm in &m.members {
                out.extend(&mm.default);
                out.extend(&mm.bounds);
            }
        }
        Item::Fn(f) => out.push(&f.body),
    }
    out
}

/// Finds the innermost expression of `item` whose span contains the item-relative `offset`.
pub fn innermost_expr(item: &Item, offset: u32) -> Option<&Expr> {
    let mut current = item_exprs(item).into_iter().find(|e| e.span.contains(offset))?;
    loop {
        match children(current).into_iter().find(|c| c.span.contains(offset)) {
            Some(child) => current = child,
            None => return Some(current),
        }
    }
}
