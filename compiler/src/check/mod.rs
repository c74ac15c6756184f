//! Types, dimensions and names of expressions.
//!
//! The checker infers a [`Ty`] for each expression against an [`Env`] and reports
//! mismatches. It is fail-soft: an expression it cannot type gets [`Ty::Unknown`], which
//! agrees with everything, so one mistake produces one diagnostic, not a cascade.
//! Environments hold types only, never spans or values, so editing a value in one item
//! leaves every environment equal and the query database reuses the checks of the others.

use std::collections::BTreeMap;
use std::sync::Arc;

pub mod items;

use crate::diagnostics::{Code, Diagnostic, Label};
use crate::names::{closest, try_one_of};
use crate::syntax::*;
use crate::units::{self, Dim};

/// The type of a Basin value.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Ty {
    /// A scalar quantity, constant or varying over time.
    Num(Dim),
    Tuple(Vec<Ty>),
    Bool,
    Str,
    /// `a ..= b`: a continuous range of a design or bound.
    Range(Box<Ty>),
    /// `a | b`: a discrete choice among values of one type.
    Choice(Box<Ty>),
    /// A value of a model: an agent, a design, or a record such as a material.
    Instance(Arc<ModelInfo>),
    /// The model itself, used in `agent x = MODEL` or `MODEL { … }`.
    Model(Arc<ModelInfo>),
    Fn(Arc<FnSig>),
    /// A context reference, with its loader (`image`, `map`, …).
    Context(String),
    /// An obstacle shape such as `box(1 m, 2 m)`.
    Shape,
    /// A goal, constraint or world: referable by name but not a value.
    Block(ItemKind),
    /// The word of a context option, such as `dark`.
    Word,
    /// Not known because of an earlier error; agrees with every type.
    Unknown,
}

impl Ty {
    pub fn describe(&self) -> String {
        match self {
            Ty::Num(d) if d.is_none() => "a dimensionless number".into(),
            Ty::Num(d) => d.describe(),
            Ty::Tuple(parts) => {
                let parts: Vec<String> = parts.iter().map(|p| p.short()).collect();
                format!("a tuple ({})", parts.join(", "))
            }
            Ty::Bool => "a condition".into(),
            Ty::Str => "a string".into(),
            Ty::Range(t) => format!("a range of {}", t.describe()),
            Ty::Choice(t) => format!("a choice of {}", t.describe()),
            Ty::Instance(m) => format!("a `{}`", m.name),
            Ty::Model(m) => format!("the model `{}`", m.name),
            Ty::Fn(f) => format!("the function `{}`", f.name),
            Ty::Context(l) => format!("a `{l}` context"),
            Ty::Shape => "a shape".into(),
            Ty::Block(k) => format!("a `{}` block", k.keyword()),
            Ty::Word => "an option word".into(),
            Ty::Unknown => "unknown".into(),
        }
    }

    /// Describes the type briefly, for tuples and signatures: a number as the unit an
    /// engineer would write (`N`, `Pa`, `1`), anything else as [`Ty::describe`] does.
    pub fn short(&self) -> String {
        match self {
            Ty::Num(d) if d.is_none() => "1".into(),
            Ty::Num(d) => units::example_unit(*d),
            other => other.describe(),
        }
    }

    pub fn dim(&self) -> Option<Dim> {
        match self {
            Ty::Num(d) => Some(*d),
            _ => None,
        }
    }
}

/// A model's members with their types.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ModelInfo {
    pub name: String,
    pub members: Vec<MemberInfo>,
    pub docs: String,
}

impl ModelInfo {
    pub fn member(&self, name: &str) -> Option<&MemberInfo> {
        self.members.iter().find(|m| m.name == name)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct MemberInfo {
    pub name: String,
    pub kind: MemberKind,
    pub ty: Ty,
    pub has_default: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct FnSig {
    pub name: String,
    pub params: Vec<(String, Ty)>,
    pub ret: Ty,
    pub docs: String,
}

impl FnSig {
    /// `bending_stress(load: N, length: m) -> Pa`
    pub fn label(&self) -> String {
        let params: Vec<String> = self.params.iter().map(|(n, t)| format!("{n}: {}", t.short())).collect();
        format!("{}({}) -> {}", self.name, params.join(", "), self.ret.short())
    }
}

/// Where a symbol comes from.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Origin {
    Local,
    /// Imported from a standard library module, e.g. `std.robots`.
    Module(String),
    Builtin,
}

#[derive(Clone, Debug, Eq)]
pub struct Symbol {
    pub kind: Option<ItemKind>,
    pub ty: Ty,
    pub docs: String,
    pub origin: Origin,
}

// NOTE: written out so that empty doc strings, the usual case, compare by length alone.
// The derived comparison calls `memcmp` on the dangling pointers of two empty `String`s.
// That took about 150 ns per call in the `check` benchmark (glibc's AVX-512 `memcmp`, on
// an AMD EPYC), so comparing the environment of a 2,000-line spec cost 200 µs, and salsa
// makes that comparison after every edit.
impl PartialEq for Symbol {
    fn eq(&self, other: &Self) -> bool {
        self.kind == other.kind && self.ty == other.ty && same_text(&self.docs, &other.docs) && self.origin == other.origin
    }
}

impl std::hash::Hash for Symbol {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.kind.hash(state);
        self.ty.hash(state);
        self.docs.hash(state);
        self.origin.hash(state);
    }
}

/// String equality that skips `memcmp` for empty strings (see [`Symbol`]'s `PartialEq`).
pub(crate) fn same_text(a: &str, b: &str) -> bool {
    a.len() == b.len() && (a.is_empty() || a == b)
}

/// Names visible in a file: its own items, its imports, and the prelude.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Env {
    pub symbols: BTreeMap<String, Symbol>,
    /// Every item of every module this file may name by path, e.g.
    /// `std.furniture.office_chair`, whether imported or not.
    pub paths: BTreeMap<String, Symbol>,
}

impl Env {
    pub fn lookup(&self, name: &str) -> Option<&Symbol> {
        self.symbols.get(name).or_else(|| prelude_symbol(name))
    }
}

/// Names available everywhere without `use`.
pub fn prelude() -> &'static BTreeMap<String, Symbol> {
    static PRELUDE: std::sync::OnceLock<BTreeMap<String, Symbol>> = std::sync::OnceLock::new();
    PRELUDE.get_or_init(|| {
        let mut m = BTreeMap::new();
        let mut add = |name: &str, ty: Ty, docs: &str| {
            m.insert(name.to_string(), Symbol { kind: None, ty, docs: docs.to_string(), origin: Origin::Builtin });
        };
        add("duration", Ty::Num(Dim::TIME), "Time from the start of the run until the goal is met.");
        add("time", Ty::Num(Dim::TIME), "Time since the start of the run.");
        add("pi", Ty::Num(Dim::NONE), "The ratio of a circle's circumference to its diameter.");
        for (name, docs) in INTRINSICS {
            add(name, Ty::Fn(Arc::new(FnSig { name: name.to_string(), params: Vec::new(), ret: Ty::Unknown, docs: docs.to_string() })), docs);
        }
        m
    })
}

fn prelude_symbol(name: &str) -> Option<&'static Symbol> {
    prelude().get(name)
}

/// Built-in functions, typed by rules in [`Checker::intrinsic`] rather than a signature.
pub const INTRINSICS: &[(&str, &str)] = &[
    ("abs", "abs(x): the magnitude of `x`, in the unit of `x`."),
    ("sqrt", "sqrt(x): the square root; the dimension of `x` must have even exponents."),
    ("min", "min(a, b, …): the smallest argument; all arguments share one dimension."),
    ("max", "max(a, b, …): the largest argument; all arguments share one dimension."),
    ("sin", "sin(angle): the sine of an angle."),
    ("cos", "cos(angle): the cosine of an angle."),
    ("tan", "tan(angle): the tangent of an angle."),
    ("atan2", "atan2(y, x): the angle of the vector (x, y); y and x share one dimension."),
    ("exp", "exp(x): e to a dimensionless power."),
    ("log", "log(x): the natural logarithm of a dimensionless number."),
    ("norm", "norm(v): the Euclidean length of a tuple whose parts share one dimension."),
    ("clearance", "clearance(agent, context): the distance from the agent's outline to the nearest obstacle of a map."),
    ("pose", "pose(x, y, heading): a planar position and heading."),
    ("box", "box(width, depth): a rectangular obstacle."),
    ("circle", "circle(radius): a round obstacle."),
    ("simulate", "simulate(…): generate training data by simulating the named agents or designs in their context."),
    ("load_test", "load_test(force): a static load test of a design under the given force."),
];

/// Collects diagnostics while typing expressions of one item.
pub struct Checker<'a> {
    pub env: &'a Env,
    /// Names bound inside the item: model members or function parameters.
    pub locals: BTreeMap<String, Ty>,
    pub diagnostics: Vec<Diagnostic>,
}

impl<'a> Checker<'a> {
    pub fn new(env: &'a Env) -> Checker<'a> {
        Checker { env, locals: BTreeMap::new(), diagnostics: Vec::new() }
    }

    fn report(&mut self, d: Diagnostic) {
        self.diagnostics.push(d);
    }

    /// Resolves a type annotation: units, tuples, or a model name such as `material`.
    pub fn type_of_annotation(&mut self, t: &TypeExpr) -> Ty {
        match t {
            TypeExpr::Tuple(parts, _) => Ty::Tuple(parts.iter().map(|p| self.type_of_annotation(p)).collect()),
            TypeExpr::Unit(u) => {
                if let [only] = u.factors.as_slice() {
                    if only.power == 1 && units::lookup(&only.name).is_none() {
                        if let Some(Symbol { ty: Ty::Model(m), .. }) = self.env.lookup(&only.name) {
                            return Ty::Instance(m.clone());
                        }
                    }
                }
                match self.unit(u) {
                    Some(unit) => Ty::Num(unit.dim),
                    None => Ty::Unknown,
                }
            }
        }
    }

    /// Converts a written unit to its SI factor and dimension, reporting unknown names.
    pub fn unit(&mut self, u: &UnitExpr) -> Option<units::Unit> {
        let mut factor = 1.0;
        let mut dim = Dim::NONE;
        let mut ok = true;
        for f in &u.factors {
            match units::lookup(&f.name) {
                Some(base) => {
                    factor *= base.factor.powi(f.power);
                    dim = dim.mul(base.dim.powi(f.power));
                }
                None => {
                    ok = false;
                    let mut d = Diagnostic::error(Code::UnknownUnit, format!("unknown unit `{}`", f.name))
                        .with_label(Label::primary(f.span, "not a unit Basin knows"));
                    d = match units::suggest(&f.name) {
                        Some(s) => d.with_help(format!("try `{s}`, the closest match")),
                        None => d.with_help("try an SI unit such as `m`, `kg`, `s`, `N` with a prefix, or one of `in`, `ft`, `lb`, `lbf`, `psi`, `deg`, `%`"),
                    };
                    self.report(d);
                }
            }
        }
        ok.then_some(units::Unit { factor, dim })
    }

    /// Infers the type of `e`, reporting every problem found inside it.
    pub fn expr(&mut self, e: &Expr) -> Ty {
        match &e.kind {
            ExprKind::Quantity { unit, .. } => match unit {
                None => Ty::Num(Dim::NONE),
                Some(u) => self.unit(u).map_or(Ty::Unknown, |u| Ty::Num(u.dim)),
            },
            ExprKind::Str(_) => Ty::Str,
            ExprKind::Bool(_) => Ty::Bool,
            ExprKind::Error => Ty::Unknown,
            ExprKind::Paren(inner) => self.expr(inner),
            ExprKind::Name(id) => self.name(id),
            ExprKind::Tuple(parts) => Ty::Tuple(parts.iter().map(|p| self.expr(p)).collect()),
            ExprKind::List(parts) => {
                let mut first: Option<(Ty, Span)> = None;
                for p in parts {
                    let t = self.expr(p);
                    match &first {
                        None => first = Some((t, p.span)),
                        Some((ft, fspan)) => {
                            if !compatible(ft, &t) {
                                self.report(type_mismatch_pair(Code::TypeMismatch, "list elements differ", *fspan, ft, p.span, &t));
                            }
                        }
                    }
                }
                first.map_or(Ty::Unknown, |(t, _)| t)
            }
            ExprKind::Record { name, fields } => self.record(name, fields),
            ExprKind::Field { base, field } => {
                let bt = self.expr(base);
                self.field_of(&bt, field)
            }
            ExprKind::Index { base, index } => {
                let bt = self.expr(base);
                let it = self.expr(index);
                if !matches!(it, Ty::Num(d) if d.is_none()) && it != Ty::Unknown {
                    self.report(
                        Diagnostic::error(Code::TypeMismatch, "an index must be a plain number")
                            .with_label(Label::primary(index.span, format!("this is {}", it.describe()))),
                    );
                }
                match bt {
                    Ty::Tuple(parts) => match literal_number(index) {
                        Some(value) if value >= 0.0 && value.fract() == 0.0 && (value as usize) < parts.len() => parts[value as usize].clone(),
                        found => {
                            let (message, label) = match found {
                                Some(value) if value.fract() != 0.0 => (format!("tuple index `{value}` is not a whole number"), "not a whole number"),
                                Some(value) => (format!("tuple index `{value}` is out of range: the tuple has {} parts", parts.len()), "out of range"),
                                None => ("a tuple index must be a literal whole number".to_string(), "not a literal"),
                            };
                            self.report(
                                Diagnostic::error(Code::TypeMismatch, message)
                                    .with_label(Label::primary(index.span, label))
                                    .with_help(format!("try an index from 0 to {}", parts.len().saturating_sub(1))),
                            );
                            Ty::Unknown
                        }
                    },
                    Ty::Unknown => Ty::Unknown,
                    // FIXME: a list is typed as its elements, so indexing a list is reported
                    // here as indexing its element type.
                    other => {
                        self.report(
                            Diagnostic::error(Code::TypeMismatch, format!("cannot index {}", other.describe()))
                                .with_label(Label::primary(base.span, "not a tuple")),
                        );
                        Ty::Unknown
                    }
                }
            }
            ExprKind::Call { callee, args } => self.call(e, callee, args),
            ExprKind::Unary { op, operand } => {
                let t = self.expr(operand);
                match op {
                    UnOp::Neg => match t {
                        Ty::Num(_) | Ty::Tuple(_) | Ty::Unknown => t,
                        other => {
                            self.report(
                                Diagnostic::error(Code::TypeMismatch, format!("cannot negate {}", other.describe()))
                                    .with_label(Label::primary(operand.span, "expected a number")),
                            );
                            Ty::Unknown
                        }
                    },
                    UnOp::Not => {
                        self.expect_bool(operand, &t);
                        Ty::Bool
                    }
                }
            }
            ExprKind::Binary { op, lhs, rhs } => self.binary(e, *op, lhs, rhs),
        }
    }

    fn name(&mut self, id: &Ident) -> Ty {
        if let Some(t) = self.locals.get(&id.name) {
            return t.clone();
        }
        if let Some(s) = self.env.lookup(&id.name) {
            return s.ty.clone();
        }
        // Goals, constraints and worlds are not values, so they are never suggested here.
        let values = self.env.symbols.iter().filter(|(_, s)| !matches!(s.ty, Ty::Block(_))).map(|(k, _)| k.as_str());
        let candidates: Vec<&str> = self.locals.keys().map(String::as_str).chain(values).chain(prelude().keys().map(String::as_str)).collect();
        let mut d = Diagnostic::error(Code::UnknownName, format!("cannot find `{}` in this scope", id.name))
            .with_label(Label::primary(id.span, "not found"));
        if let Some(s) = closest(&id.name, candidates) {
            d = d.with_help(format!("try `{s}`, the closest match"));
        } else if let Some(path) = self.env.paths.keys().find(|p| p.rsplit('.').next() == Some(id.name.as_str())) {
            let module = path.rsplit_once('.').map_or(path.as_str(), |(m, _)| m);
            d = d.with_help(format!("try importing it with `use {module}.{}`", id.name));
        }
        self.report(d);
        Ty::Unknown
    }

    pub fn field_of(&mut self, base: &Ty, field: &Ident) -> Ty {
        match base {
            Ty::Instance(m) => match m.member(&field.name) {
                Some(member) => member.ty.clone(),
                None => {
                    let names: Vec<&str> = m.members.iter().map(|m| m.name.as_str()).collect();
                    let mut d = Diagnostic::error(Code::UnknownField, format!("`{}` has no field `{}`", m.name, field.name))
                        .with_label(Label::primary(field.span, "unknown field"));
                    d = match closest(&field.name, names.iter().copied()) {
                        Some(s) => d.with_help(format!("try `{s}`, the closest match")),
                        None => d.with_help(try_one_of(&format!("the fields of `{}`", m.name), names.iter().copied())),
                    };
                    self.report(d);
                    Ty::Unknown
                }
            },
            Ty::Choice(inner) | Ty::Range(inner) => self.field_of(inner, field),
            Ty::Tuple(parts) => {
                let index = match field.name.as_str() {
                    "x" => Some(0),
                    "y" => Some(1),
                    "z" => Some(2),
                    _ => None,
                };
                match index.and_then(|i| parts.get(i)) {
                    Some(t) => t.clone(),
                    None => {
                        self.report(
                            Diagnostic::error(Code::UnknownField, format!("a tuple of {} parts has no field `{}`", parts.len(), field.name))
                                .with_label(Label::primary(field.span, "unknown field"))
                                .with_help("try `.x`, `.y` or `.z`, or an index such as `[0]`"),
                        );
                        Ty::Unknown
                    }
                }
            }
            Ty::Unknown => Ty::Unknown,
            other => {
                self.report(
                    Diagnostic::error(Code::UnknownField, format!("{} has no fields", other.describe()))
                        .with_label(Label::primary(field.span, format!("no field `{}` here", field.name))),
                );
                Ty::Unknown
            }
        }
    }

    /// `MODEL { FIELDS }`: a record value such as a material.
    fn record(&mut self, name: &Ident, fields: &[Field]) -> Ty {
        match self.env.lookup(&name.name).map(|s| s.ty.clone()) {
            Some(Ty::Model(m)) => {
                self.fields_against_model(&m, fields, name.span, true);
                Ty::Instance(m)
            }
            Some(other) => {
                self.report(
                    Diagnostic::error(Code::WrongKind, format!("`{}` is {}, not a model", name.name, other.describe()))
                        .with_label(Label::primary(name.span, "expected a model name")),
                );
                Ty::Unknown
            }
            None => {
                self.name(name);
                for f in fields {
                    self.field_value(f);
                }
                Ty::Unknown
            }
        }
    }

    fn field_value(&mut self, f: &Field) -> Ty {
        match &f.value {
            FieldValue::Expr(e) => self.expr(e),
            FieldValue::Stages(_) => Ty::Unknown,
        }
    }

    /// Checks field overrides against a model's members: known names, matching dimensions,
    /// and (when `require_all`) a value for every member without a default.
    pub fn fields_against_model(&mut self, m: &ModelInfo, fields: &[Field], anchor: Span, require_all: bool) {
        let mut seen: BTreeMap<&str, Span> = BTreeMap::new();
        for f in fields {
            if let Some(first) = seen.insert(&f.name.name, f.name.span) {
                self.report(
                    Diagnostic::error(Code::Duplicate, format!("field `{}` is set twice", f.name.name))
                        .with_label(Label::primary(f.name.span, "set again here"))
                        .with_label(Label::secondary(first, "first set here"))
                        .with_help("try removing one of them"),
                );
            }
            let value_ty = self.field_value(f);
            let Some(member) = m.member(&f.name.name) else {
                let names: Vec<&str> = m.members.iter().filter(|m| m.kind == MemberKind::Param).map(|m| m.name.as_str()).collect();
                let mut d = Diagnostic::error(Code::UnknownField, format!("`{}` has no parameter `{}`", m.name, f.name.name))
                    .with_label(Label::primary(f.name.span, "unknown field"));
                d = match closest(&f.name.name, names.iter().copied()) {
                    Some(s) => d.with_help(format!("try `{s}`, the closest match")),
                    None => d.with_help(try_one_of(&format!("the parameters of `{}`", m.name), names.iter().copied())),
                };
                self.report(d);
                continue;
            };
            if member.kind != MemberKind::Param {
                self.report(
                    Diagnostic::error(Code::WrongKind, format!("`{}` is a {} of `{}`, not a parameter", f.name.name, member.kind.keyword(), m.name))
                        .with_label(Label::primary(f.name.span, "cannot be set here"))
                        .with_help("try setting a parameter; states start from the `start` parameter"),
                );
                continue;
            }
            // A design may give a range or a choice where the model expects one value.
            let offered = match &value_ty {
                Ty::Range(inner) | Ty::Choice(inner) => inner.as_ref().clone(),
                other => other.clone(),
            };
            if !compatible(&member.ty, &offered) {
                let span = match &f.value {
                    FieldValue::Expr(e) => e.span,
                    FieldValue::Stages(s) => s.first().map_or(f.span, |s| s.span),
                };
                let mut d = Diagnostic::error(
                    Code::FieldDimension,
                    format!("field `{}` of `{}` expects {}, found {}", f.name.name, m.name, member.ty.describe(), offered.describe()),
                )
                .with_label(Label::primary(span, format!("this is {}", offered.describe())))
                .with_label(Label::secondary(f.name.span, format!("declared as {}", member.ty.describe())));
                if let Some(fix) = fix_for(&offered, &member.ty) {
                    d = d.with_help(fix);
                }
                self.report(d);
            }
        }
        if require_all {
            let missing: Vec<&str> = m
                .members
                .iter()
                .filter(|mm| mm.kind == MemberKind::Param && !mm.has_default && !seen.contains_key(mm.name.as_str()))
                .map(|mm| mm.name.as_str())
                .collect();
            if !missing.is_empty() {
                let list: Vec<String> = missing.iter().map(|n| format!("`{n}`")).collect();
                self.report(
                    Diagnostic::error(Code::MissingField, format!("`{}` needs a value for {}", m.name, list.join(", ")))
                        .with_label(Label::primary(anchor, if missing.len() == 1 { "a field is missing".to_string() } else { format!("{} fields are missing", missing.len()) }))
                        .with_help(format!("try adding `{}: …`", missing[0])),
                );
            }
        }
    }

    fn call(&mut self, whole: &Expr, callee: &Expr, args: &[Expr]) -> Ty {
        let ExprKind::Name(id) = &callee.kind else {
            let t = self.expr(callee);
            for a in args {
                self.expr(a);
            }
            if t != Ty::Unknown {
                self.report(
                    Diagnostic::error(Code::WrongKind, format!("{} cannot be called", t.describe()))
                        .with_label(Label::primary(callee.span, "not a function")),
                );
            }
            return Ty::Unknown;
        };
        let arg_tys: Vec<Ty> = args.iter().map(|a| self.expr(a)).collect();
        self.call_named(whole, callee, id, args, arg_tys)
    }

    /// The type of a call of a named function, given the types of the arguments. It is
    /// kept apart from `call` for the reason given at `binary_result`.
    #[inline(never)]
    fn call_named(&mut self, whole: &Expr, callee: &Expr, id: &Ident, args: &[Expr], arg_tys: Vec<Ty>) -> Ty {
        if !self.locals.contains_key(&id.name) {
            if INTRINSICS.iter().any(|(n, _)| *n == id.name) && self.env.symbols.get(&id.name).is_none() {
                return self.intrinsic(whole, id, args, &arg_tys);
            }
        }
        let callee_ty = self.name(id);
        match callee_ty {
            Ty::Fn(sig) => {
                if sig.params.len() != args.len() {
                    self.report(
                        Diagnostic::error(Code::ArgumentCount, format!("`{}` takes {}, found {}", sig.name, arguments(sig.params.len()), args.len()))
                            .with_label(Label::primary(whole.span, format!("called with {}", arguments(args.len()))))
                            .with_help(format!("try calling `{}` with {}", sig.name, arguments(sig.params.len())))
                            .with_note(format!("the signature is `{}`", sig.label())),
                    );
                    return sig.ret.clone();
                }
                for ((pname, pty), (a, aty)) in sig.params.iter().zip(args.iter().zip(&arg_tys)) {
                    if !compatible(pty, aty) {
                        let mut d = Diagnostic::error(
                            Code::ArgumentDimension,
                            format!("argument `{pname}` of `{}` expects {}, found {}", sig.name, pty.describe(), aty.describe()),
                        )
                        .with_label(Label::primary(a.span, format!("this is {}", aty.describe())))
                        .with_note(format!("the signature is `{}`", sig.label()));
                        if let Some(fix) = fix_for(aty, pty) {
                            d = d.with_help(fix);
                        }
                        self.report(d);
                    }
                }
                sig.ret.clone()
            }
            Ty::Unknown => Ty::Unknown,
            Ty::Model(m) => {
                self.report(
                    Diagnostic::error(Code::WrongKind, format!("`{}` is a model, not a function", m.name))
                        .with_label(Label::primary(callee.span, "cannot be called"))
                        .with_help(format!("try `{} {{ … }}` to give its parameters", m.name)),
                );
                Ty::Unknown
            }
            other => {
                self.report(
                    Diagnostic::error(Code::WrongKind, format!("`{}` is {}, not a function", id.name, other.describe()))
                        .with_label(Label::primary(callee.span, "cannot be called")),
                );
                Ty::Unknown
            }
        }
    }

    /// Types a call of a built-in function by its rule.
    fn intrinsic(&mut self, whole: &Expr, id: &Ident, args: &[Expr], tys: &[Ty]) -> Ty {
        let name = id.name.as_str();
        let arity = |n: usize| -> Option<usize> { (args.len() != n).then_some(n) };
        let expected_count = match name {
            "abs" | "sqrt" | "sin" | "cos" | "tan" | "exp" | "log" | "norm" | "circle" | "load_test" => arity(1),
            "atan2" | "box" | "clearance" => arity(2),
            "pose" => arity(3),
            "min" | "max" => (args.len() < 2).then_some(2),
            _ => None,
        };
        if let Some(n) = expected_count {
            let doc = INTRINSICS.iter().find(|(n, _)| *n == name).map_or("", |(_, d)| d);
            let count = if matches!(name, "min" | "max") { format!("at least {}", arguments(n)) } else { arguments(n) };
            self.report(
                Diagnostic::error(Code::ArgumentCount, format!("`{name}` takes {count}, found {}", args.len()))
                    .with_label(Label::primary(whole.span, format!("called with {}", arguments(args.len()))))
                    .with_help(format!("try `{}`", doc.split(':').next().unwrap_or(name))),
            );
            return Ty::Unknown;
        }
        let num = |i: usize| -> Option<Dim> { tys.get(i).and_then(Ty::dim) };
        let any_unknown = tys.iter().any(|t| *t == Ty::Unknown);
        match name {
            "abs" => tys[0].clone(),
            "sqrt" => match num(0) {
                Some(d) => match d.sqrt() {
                    Some(r) => Ty::Num(r),
                    None => {
                        self.report(
                            Diagnostic::error(Code::ArgumentDimension, format!("cannot take the square root of {}", d.describe()))
                                .with_label(Label::primary(args[0].span, "odd exponents in this dimension"))
                                .with_help("try squaring the quantity first, e.g. `sqrt(x * x)`"),
                        );
                        Ty::Unknown
                    }
                },
                None => self.expect_num_arg(name, &args[0], &tys[0]),
            },
            "min" | "max" => {
                let first = tys[0].clone();
                for (a, t) in args.iter().zip(tys).skip(1) {
                    if !compatible(&first, t) {
                        self.report(type_mismatch_pair(
                            Code::ArgumentDimension,
                            &format!("arguments of `{name}` must share one dimension"),
                            args[0].span,
                            &first,
                            a.span,
                            t,
                        ));
                    }
                }
                first
            }
            "sin" | "cos" | "tan" => {
                if !matches!(num(0), Some(d) if d == Dim::ANGLE || d.is_none()) && !any_unknown {
                    self.report(argument_error(name, "an angle", &args[0], &tys[0], Dim::ANGLE));
                }
                Ty::Num(Dim::NONE)
            }
            "exp" | "log" => {
                if !matches!(num(0), Some(d) if d.is_none()) && !any_unknown {
                    self.report(argument_error(name, "a dimensionless number", &args[0], &tys[0], Dim::NONE));
                }
                Ty::Num(Dim::NONE)
            }
            "atan2" => {
                if !compatible(&tys[0], &tys[1]) {
                    self.report(type_mismatch_pair(Code::ArgumentDimension, "arguments of `atan2` must share one dimension", args[0].span, &tys[0], args[1].span, &tys[1]));
                }
                Ty::Num(Dim::ANGLE)
            }
            "norm" => match &tys[0] {
                Ty::Tuple(parts) if !parts.is_empty() => {
                    let first = parts[0].clone();
                    if parts.iter().any(|p| !compatible(p, &first)) {
                        self.report(
                            Diagnostic::error(Code::ArgumentDimension, "the parts of a vector must share one dimension")
                                .with_label(Label::primary(args[0].span, format!("this is {}", tys[0].describe()))),
                        );
                    }
                    first
                }
                Ty::Num(d) => Ty::Num(*d),
                Ty::Unknown => Ty::Unknown,
                other => self.expect_num_arg(name, &args[0], other),
            },
            "clearance" => {
                if !matches!(tys[0], Ty::Instance(_) | Ty::Unknown) {
                    self.report(
                        Diagnostic::error(Code::TypeMismatch, format!("`clearance` expects an agent first, found {}", tys[0].describe()))
                            .with_label(Label::primary(args[0].span, "expected an agent")),
                    );
                }
                if !matches!(tys[1], Ty::Context(_) | Ty::Unknown) {
                    self.report(
                        Diagnostic::error(Code::TypeMismatch, format!("`clearance` expects a map context second, found {}", tys[1].describe()))
                            .with_label(Label::primary(args[1].span, "expected a context such as `image(…)` or `map(…)`")),
                    );
                }
                Ty::Num(Dim::LENGTH)
            }
            "pose" => {
                let wanted = [Dim::LENGTH, Dim::LENGTH, Dim::ANGLE];
                for (i, want) in wanted.iter().enumerate() {
                    if !compatible(&Ty::Num(*want), &tys[i]) {
                        let what = if i < 2 { "a length" } else { "an angle" };
                        self.report(argument_error(name, what, &args[i], &tys[i], *want));
                    }
                }
                Ty::Tuple(vec![Ty::Num(Dim::LENGTH), Ty::Num(Dim::LENGTH), Ty::Num(Dim::ANGLE)])
            }
            "box" | "circle" => {
                for (a, t) in args.iter().zip(tys) {
                    if !compatible(&Ty::Num(Dim::LENGTH), t) {
                        self.report(argument_error(name, "a length", a, t, Dim::LENGTH));
                    }
                }
                Ty::Shape
            }
            "load_test" => {
                if !compatible(&Ty::Num(Dim::FORCE), &tys[0]) {
                    self.report(argument_error(name, "a force", &args[0], &tys[0], Dim::FORCE));
                }
                Ty::Unknown
            }
            _ => Ty::Unknown,
        }
    }

    fn expect_num_arg(&mut self, name: &str, arg: &Expr, t: &Ty) -> Ty {
        if *t != Ty::Unknown {
            self.report(
                Diagnostic::error(Code::TypeMismatch, format!("`{name}` expects a number, found {}", t.describe()))
                    .with_label(Label::primary(arg.span, "expected a number")),
            );
        }
        Ty::Unknown
    }

    fn expect_bool(&mut self, e: &Expr, t: &Ty) {
        if !matches!(t, Ty::Bool | Ty::Unknown) {
            self.report(
                Diagnostic::error(Code::NotACondition, format!("expected a condition, found {}", t.describe()))
                    .with_label(Label::primary(e.span, "this is not true or false"))
                    .with_help("try a comparison such as `x <= 2 m`"),
            );
        }
    }

    fn binary(&mut self, whole: &Expr, op: BinOp, lhs: &Expr, rhs: &Expr) -> Ty {
        if op.is_comparison() {
            if let ExprKind::Binary { op: inner, .. } = &lhs.kind {
                if inner.is_comparison() {
                    self.expr(lhs);
                    self.expr(rhs);
                    self.report(
                        Diagnostic::error(Code::ChainedComparison, "comparisons cannot be chained")
                            .with_label(Label::primary(whole.span, "two comparisons in a row"))
                            .with_help("try joining two comparisons with `and`, e.g. `a <= x and x <= b`"),
                    );
                    return Ty::Bool;
                }
            }
        }
        let lt = self.expr(lhs);
        let rt = self.expr(rhs);
        self.binary_result(op, lhs, rhs, lt, rt)
    }

    /// The type of a binary operation, given the types of its operands.
    // NOTE: kept apart from `binary`, which recurses into the operands, so that the locals
    // of these rules are not on the stack once per level of a deep expression. An
    // unoptimized build gives every local of a function its own stack slot.
    #[inline(never)]
    fn binary_result(&mut self, op: BinOp, lhs: &Expr, rhs: &Expr, lt: Ty, rt: Ty) -> Ty {
        if lt == Ty::Unknown || rt == Ty::Unknown {
            return match op {
                _ if op.is_comparison() => Ty::Bool,
                BinOp::And | BinOp::Or => Ty::Bool,
                BinOp::Add | BinOp::Sub | BinOp::Choice | BinOp::Range | BinOp::RangeIncl => {
                    let known = if lt == Ty::Unknown { rt } else { lt };
                    match op {
                        BinOp::Range | BinOp::RangeIncl if known != Ty::Unknown => Ty::Range(Box::new(known)),
                        BinOp::Choice if matches!(known, Ty::Choice(_)) => known,
                        BinOp::Choice if known != Ty::Unknown => Ty::Choice(Box::new(known)),
                        _ => known,
                    }
                }
                _ => Ty::Unknown,
            };
        }
        match op {
            BinOp::And | BinOp::Or => {
                self.expect_bool(lhs, &lt);
                self.expect_bool(rhs, &rt);
                Ty::Bool
            }
            _ if op.is_comparison() => {
                let comparable = matches!((&lt, &rt), (Ty::Num(_), Ty::Num(_)) | (Ty::Tuple(_), Ty::Tuple(_)));
                if comparable && !compatible(&lt, &rt) {
                    let mut d = type_mismatch_pair(
                        Code::ComparisonDimension,
                        &format!("cannot compare {} with {}", lt.describe(), rt.describe()),
                        lhs.span,
                        &lt,
                        rhs.span,
                        &rt,
                    );
                    if let Some(fix) = conversion_fix_for(&rt, &lt) {
                        d = d.with_help(fix);
                    }
                    self.report(d);
                } else if !comparable && lt != rt {
                    self.report(type_mismatch_pair(
                        Code::TypeMismatch,
                        &format!("cannot compare {} with {}", lt.describe(), rt.describe()),
                        lhs.span,
                        &lt,
                        rhs.span,
                        &rt,
                    ));
                }
                Ty::Bool
            }
            BinOp::Add | BinOp::Sub => {
                if !compatible(&lt, &rt) || !matches!(lt, Ty::Num(_) | Ty::Tuple(_)) {
                    let verb = if op == BinOp::Add { "add" } else { "subtract" };
                    let (a, b) = if op == BinOp::Add { (&lt, &rt) } else { (&rt, &lt) };
                    let message = if op == BinOp::Add {
                        format!("cannot add {} to {}", b.describe(), a.describe())
                    } else {
                        format!("cannot {verb} {} from {}", a.describe(), b.describe())
                    };
                    let mut d = type_mismatch_pair(Code::ArithmeticDimension, &message, lhs.span, &lt, rhs.span, &rt);
                    if let Some(fix) = conversion_fix_for(&rt, &lt) {
                        d = d.with_help(fix);
                    }
                    self.report(d);
                    return Ty::Unknown;
                }
                lt
            }
            BinOp::Mul | BinOp::Div => match (&lt, &rt) {
                (Ty::Num(a), Ty::Num(b)) => Ty::Num(if op == BinOp::Mul { a.mul(*b) } else { a.div(*b) }),
                (Ty::Tuple(parts), Ty::Num(b)) => {
                    Ty::Tuple(parts.iter().map(|p| p.dim().map_or(Ty::Unknown, |a| Ty::Num(if op == BinOp::Mul { a.mul(*b) } else { a.div(*b) }))).collect())
                }
                (Ty::Num(a), Ty::Tuple(parts)) if op == BinOp::Mul => {
                    Ty::Tuple(parts.iter().map(|p| p.dim().map_or(Ty::Unknown, |b| Ty::Num(a.mul(b)))).collect())
                }
                _ => {
                    self.report(type_mismatch_pair(
                        Code::TypeMismatch,
                        &format!("cannot {} {} by {}", if op == BinOp::Mul { "multiply" } else { "divide" }, lt.describe(), rt.describe()),
                        lhs.span,
                        &lt,
                        rhs.span,
                        &rt,
                    ));
                    Ty::Unknown
                }
            },
            BinOp::Pow => {
                let Ty::Num(base) = lt else {
                    return self.expect_num_arg("^", lhs, &lt);
                };
                let exponent = literal_number(rhs);
                if !matches!(rt, Ty::Num(d) if d.is_none()) {
                    self.report(
                        Diagnostic::error(Code::InvalidExponent, format!("an exponent must be dimensionless, found {}", rt.describe()))
                            .with_label(Label::primary(rhs.span, format!("this is {}", rt.describe())))
                            .with_help("try dividing the exponent by its unit"),
                    );
                    return Ty::Unknown;
                }
                if base.is_none() {
                    return Ty::Num(Dim::NONE);
                }
                match exponent {
                    Some(n) if n.fract() == 0.0 && n.abs() <= MAX_UNIT_EXPONENT => Ty::Num(base.powi(n as i32)),
                    found => {
                        let (message, label) = match found {
                            None => (format!("the exponent of {} must be a literal number", base.describe()), "not a literal".to_string()),
                            Some(n) if n.fract() != 0.0 => (format!("{} cannot be raised to a fractional power", base.describe()), "not a whole number".to_string()),
                            Some(n) => (format!("{} cannot be raised to the power {n}", base.describe()), format!("more than {MAX_UNIT_EXPONENT} in magnitude")),
                        };
                        self.report(
                            Diagnostic::error(Code::InvalidExponent, message)
                                .with_label(Label::primary(rhs.span, label))
                                .with_label(Label::secondary(lhs.span, format!("this is {}", base.describe())))
                                .with_help("try a whole literal exponent such as `^2`, or make the base dimensionless"),
                        );
                        Ty::Unknown
                    }
                }
            }
            BinOp::Range | BinOp::RangeIncl | BinOp::Choice => {
                // `a | b | c` folds to `(a | b) | c`, whose left side is a choice already.
                let lt = match lt {
                    Ty::Choice(inner) if op == BinOp::Choice => *inner,
                    other => other,
                };
                if !compatible(&lt, &rt) {
                    let what = if op == BinOp::Choice { "the choices" } else { "the ends of a range" };
                    let mut d = type_mismatch_pair(
                        Code::ArithmeticDimension,
                        &format!("{what} differ: {} and {}", lt.describe(), rt.describe()),
                        lhs.span,
                        &lt,
                        rhs.span,
                        &rt,
                    );
                    if let Some(fix) = conversion_fix_for(&rt, &lt) {
                        d = d.with_help(fix);
                    }
                    self.report(d);
                }
                if op == BinOp::Choice { Ty::Choice(Box::new(lt)) } else { Ty::Range(Box::new(lt)) }
            }
            _ => Ty::Unknown,
        }
    }

    /// Checks that `e` has type `want`, as a field or setting of a block.
    pub fn expect(&mut self, e: &Expr, want: &Ty, what: &str) -> Ty {
        let t = self.expr(e);
        if !compatible(want, &t) {
            let mut d = Diagnostic::error(Code::FieldDimension, format!("{what} expects {}, found {}", want.describe(), t.describe()))
                .with_label(Label::primary(e.span, format!("this is {}", t.describe())));
            if let Some(fix) = fix_for(&t, want) {
                d = d.with_help(fix);
            }
            self.report(d);
        }
        t
    }
}

/// Whether two types agree, treating [`Ty::Unknown`] as a wildcard.
pub fn compatible(a: &Ty, b: &Ty) -> bool {
    match (a, b) {
        (Ty::Unknown, _) | (_, Ty::Unknown) => true,
        (Ty::Num(x), Ty::Num(y)) => x == y,
        (Ty::Tuple(xs), Ty::Tuple(ys)) => xs.len() == ys.len() && xs.iter().zip(ys).all(|(x, y)| compatible(x, y)),
        (Ty::Instance(x), Ty::Instance(y)) => x.name == y.name,
        (Ty::Range(x), Ty::Range(y)) | (Ty::Choice(x), Ty::Choice(y)) => compatible(x, y),
        (x, y) => x == y,
    }
}

/// The largest exponent a quantity with a unit may take: dimension exponents are small
/// integers, and no engineering formula needs more.
const MAX_UNIT_EXPONENT: f64 = 16.0;

/// `1 argument`, `2 arguments`.
fn arguments(n: usize) -> String {
    if n == 1 { "1 argument".to_string() } else { format!("{n} arguments") }
}

fn literal_number(e: &Expr) -> Option<f64> {
    match &e.kind {
        ExprKind::Quantity { value, unit: None, .. } => Some(*value),
        ExprKind::Paren(inner) => literal_number(inner),
        ExprKind::Unary { op: UnOp::Neg, operand } => literal_number(operand).map(|v| -v),
        _ => None,
    }
}

/// Help for a value written with the wrong dimension, such as a setting or an argument.
fn fix_for(found: &Ty, expected: &Ty) -> Option<String> {
    match (found, expected) {
        (Ty::Num(f), Ty::Num(e)) => units::propose_fix(*f, *e),
        _ => None,
    }
}

/// Help for two operands of different dimensions, which may also be fixed by converting one
/// with a factor of another dimension.
fn conversion_fix_for(found: &Ty, expected: &Ty) -> Option<String> {
    match (found, expected) {
        (Ty::Num(f), Ty::Num(e)) => units::propose_fix_or_conversion(*f, *e),
        _ => None,
    }
}

fn type_mismatch_pair(code: Code, message: &str, ls: Span, lt: &Ty, rs: Span, rt: &Ty) -> Diagnostic {
    Diagnostic::error(code, message.to_string())
        .with_label(Label::primary(rs, format!("this is {}", rt.describe())))
        .with_label(Label::secondary(ls, format!("this is {}", lt.describe())))
}

fn argument_error(function: &str, what: &str, arg: &Expr, t: &Ty, want: Dim) -> Diagnostic {
    let mut d = Diagnostic::error(Code::ArgumentDimension, format!("`{function}` expects {what}, found {}", t.describe()))
        .with_label(Label::primary(arg.span, format!("this is {}", t.describe())));
    if let Some(fix) = fix_for(t, &Ty::Num(want)) {
        d = d.with_help(fix);
    }
    d
}
