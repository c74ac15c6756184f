//! The typed syntax tree of one top-level item.
//!
//! Spans are byte offsets into the item's own text, not the file: an item that did not
//! change keeps an equal tree when an edit above it moves it, so the query database can
//! reuse everything computed from it. The file-level queries add each item's offset.

use serde::Serialize;

/// A half-open byte range `start..end`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct Span {
    pub start: u32,
    pub end: u32,
}

impl Span {
    pub fn new(start: usize, end: usize) -> Span {
        Span { start: start as u32, end: end as u32 }
    }

    pub fn shift(self, by: u32) -> Span {
        Span { start: self.start + by, end: self.end + by }
    }

    pub fn to(self, other: Span) -> Span {
        Span { start: self.start.min(other.start), end: self.end.max(other.end) }
    }

    pub fn len(self) -> u32 {
        self.end - self.start
    }

    pub fn is_empty(self) -> bool {
        self.start == self.end
    }

    pub fn contains(self, offset: u32) -> bool {
        self.start <= offset && offset <= self.end
    }

    pub fn range(self) -> std::ops::Range<usize> {
        self.start as usize..self.end as usize
    }
}

/// A name with the span it was written at.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct Ident {
    pub name: String,
    pub span: Span,
}

/// A dotted path such as `std.robots.diff_drive`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct Path {
    pub segments: Vec<Ident>,
    pub span: Span,
}

impl Path {
    pub fn dotted(&self) -> String {
        let names: Vec<&str> = self.segments.iter().map(|s| s.name.as_str()).collect();
        names.join(".")
    }
}

/// A unit as written, e.g. `m/s^2`: factors with signed exponents.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct UnitExpr {
    pub factors: Vec<UnitFactor>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct UnitFactor {
    pub name: String,
    pub power: i32,
    pub span: Span,
}

impl UnitExpr {
    /// The unit as written, normalized: `m/s^2`, `N*m`.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for (i, f) in self.factors.iter().enumerate() {
            let (op, power) = if f.power < 0 && i > 0 { ("/", -f.power) } else { ("*", f.power) };
            if i > 0 {
                out.push_str(op);
            }
            out.push_str(&f.name);
            if power != 1 {
                out.push_str(&format!("^{power}"));
            }
        }
        if out.is_empty() {
            out.push('1');
        }
        out
    }
}

/// A type annotation of a model member or function parameter.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum TypeExpr {
    /// A unit such as `m/s`, or a type name such as `material` (one factor, power 1).
    Unit(UnitExpr),
    Tuple(Vec<TypeExpr>, Span),
}

impl TypeExpr {
    pub fn span(&self) -> Span {
        match self {
            TypeExpr::Unit(u) => u.span,
            TypeExpr::Tuple(_, span) => *span,
        }
    }

    pub fn text(&self) -> String {
        match self {
            TypeExpr::Unit(u) => u.text(),
            TypeExpr::Tuple(parts, _) => {
                let parts: Vec<String> = parts.iter().map(|p| p.text()).collect();
                format!("({})", parts.join(", "))
            }
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum BinOp {
    Or,
    And,
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
    Choice,
    Range,
    RangeIncl,
    Add,
    Sub,
    Mul,
    Div,
    Pow,
}

impl BinOp {
    pub fn symbol(self) -> &'static str {
        match self {
            BinOp::Or => "or",
            BinOp::And => "and",
            BinOp::Lt => "<",
            BinOp::Le => "<=",
            BinOp::Gt => ">",
            BinOp::Ge => ">=",
            BinOp::Eq => "==",
            BinOp::Ne => "!=",
            BinOp::Choice => "|",
            BinOp::Range => "..",
            BinOp::RangeIncl => "..=",
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::Pow => "^",
        }
    }

    /// Binding power: higher binds tighter. Prefix `not` sits at 3 and prefix `-` at 9.
    pub fn precedence(self) -> u8 {
        match self {
            BinOp::Or => 1,
            BinOp::And => 2,
            BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge | BinOp::Eq | BinOp::Ne => 4,
            BinOp::Choice => 5,
            BinOp::Range | BinOp::RangeIncl => 6,
            BinOp::Add | BinOp::Sub => 7,
            BinOp::Mul | BinOp::Div => 8,
            BinOp::Pow => 10,
        }
    }

    pub fn is_comparison(self) -> bool {
        matches!(self, BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge | BinOp::Eq | BinOp::Ne)
    }

    pub fn right_associative(self) -> bool {
        self == BinOp::Pow
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum UnOp {
    Neg,
    Not,
}

impl UnOp {
    pub fn precedence(self) -> u8 {
        match self {
            UnOp::Not => 3,
            UnOp::Neg => 9,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Expr {
    pub kind: ExprKind,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum ExprKind {
    /// A number with an optional unit, as written (not yet converted to SI).
    Quantity { value: f64, text: String, unit: Option<UnitExpr> },
    Str(String),
    Bool(bool),
    Name(Ident),
    Field { base: Box<Expr>, field: Ident },
    Call { callee: Box<Expr>, args: Vec<Expr> },
    Index { base: Box<Expr>, index: Box<Expr> },
    Tuple(Vec<Expr>),
    List(Vec<Expr>),
    Record { name: Ident, fields: Vec<Field> },
    Paren(Box<Expr>),
    Unary { op: UnOp, operand: Box<Expr> },
    Binary { op: BinOp, lhs: Box<Expr>, rhs: Box<Expr> },
    /// Stands in for an expression that could not be built; a diagnostic was reported.
    Error,
}

/// `name: value` inside braces.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Field {
    pub name: Ident,
    pub value: FieldValue,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum FieldValue {
    Expr(Expr),
    /// `mppi { … } then gradient { … }`: stages run in order.
    Stages(Vec<Stage>),
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Stage {
    pub name: Ident,
    pub fields: Vec<Field>,
    pub span: Span,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum ItemKind {
    Use,
    Context,
    Agent,
    Design,
    Site,
    Let,
    Goal,
    Constraint,
    World,
    Plan,
    Refine,
    Model,
    Fn,
}

impl ItemKind {
    pub fn keyword(self) -> &'static str {
        match self {
            ItemKind::Use => "use",
            ItemKind::Context => "context",
            ItemKind::Agent => "agent",
            ItemKind::Design => "design",
            ItemKind::Site => "site",
            ItemKind::Let => "let",
            ItemKind::Goal => "goal",
            ItemKind::Constraint => "constraint",
            ItemKind::World => "world",
            ItemKind::Plan => "plan",
            ItemKind::Refine => "refine",
            ItemKind::Model => "model",
            ItemKind::Fn => "fn",
        }
    }

    pub fn from_keyword(word: &str) -> Option<ItemKind> {
        ItemKind::ALL.into_iter().find(|k| k.keyword() == word)
    }

    pub const ALL: [ItemKind; 13] = [
        ItemKind::Use,
        ItemKind::Context,
        ItemKind::Agent,
        ItemKind::Design,
        ItemKind::Site,
        ItemKind::Let,
        ItemKind::Goal,
        ItemKind::Constraint,
        ItemKind::World,
        ItemKind::Plan,
        ItemKind::Refine,
        ItemKind::Model,
        ItemKind::Fn,
    ];
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum Item {
    Use(UseDecl),
    Context(ContextDecl),
    /// `agent` and `design` share a shape: a name, a model path and field overrides.
    Instance(InstanceDecl),
    Site(ValueDecl),
    Let(ValueDecl),
    Goal(ClauseBlock),
    Constraint(ClauseBlock),
    World(WorldDecl),
    Plan(PlanDecl),
    Refine(RefineDecl),
    Model(ModelDecl),
    Fn(FnDecl),
}

impl Item {
    pub fn kind(&self) -> ItemKind {
        match self {
            Item::Use(_) => ItemKind::Use,
            Item::Context(_) => ItemKind::Context,
            Item::Instance(i) => i.kind,
            Item::Site(_) => ItemKind::Site,
            Item::Let(_) => ItemKind::Let,
            Item::Goal(_) => ItemKind::Goal,
            Item::Constraint(_) => ItemKind::Constraint,
            Item::World(_) => ItemKind::World,
            Item::Plan(_) => ItemKind::Plan,
            Item::Refine(_) => ItemKind::Refine,
            Item::Model(_) => ItemKind::Model,
            Item::Fn(_) => ItemKind::Fn,
        }
    }

    /// The name this item defines, if it defines one.
    pub fn name(&self) -> Option<&Ident> {
        match self {
            Item::Use(_) | Item::Plan(_) | Item::Refine(_) => None,
            Item::Context(c) => Some(&c.name),
            Item::Instance(i) => Some(&i.name),
            Item::Site(v) | Item::Let(v) => Some(&v.name),
            Item::Goal(b) | Item::Constraint(b) => Some(&b.name),
            Item::World(w) => Some(&w.name),
            Item::Model(m) => Some(&m.name),
            Item::Fn(f) => Some(&f.name),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct UseDecl {
    pub path: Path,
    /// `use std.materials.{a, b}` imports `a` and `b`; without braces the last segment is
    /// the imported name.
    pub group: Option<Vec<Ident>>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ContextDecl {
    pub name: Ident,
    /// The loader: `image`, `map`, `scen`, `urdf`, `scene` or `text`.
    pub loader: Ident,
    pub args: Vec<Expr>,
    pub fields: Vec<Field>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct InstanceDecl {
    pub kind: ItemKind,
    pub name: Ident,
    pub model: Path,
    pub fields: Vec<Field>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ValueDecl {
    pub name: Ident,
    pub value: Expr,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ClauseBlock {
    pub name: Ident,
    pub clauses: Vec<Clause>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Clause {
    pub kind: ClauseKind,
    pub strength: Option<Strength>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum Strength {
    Hard(Span),
    Soft { weight: Option<Expr>, span: Span },
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum ClauseKind {
    /// `[then] reach A -> B [within TOL]`
    Reach { then: bool, what: Expr, target: Expr, tolerance: Option<Expr> },
    FinishBy(Expr),
    Minimize(Expr),
    Maximize(Expr),
    Formula(Formula),
}

/// A signal temporal logic formula.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum Formula {
    Atom(Expr),
    Always { window: Option<Window>, body: Box<Formula>, span: Span },
    Eventually { window: Option<Window>, body: Box<Formula>, span: Span },
    Until { lhs: Box<Formula>, rhs: Box<Formula>, span: Span },
    /// `A then B`: B holds at some time after A first holds.
    Then { first: Box<Formula>, next: Box<Formula>, span: Span },
}

impl Formula {
    pub fn span(&self) -> Span {
        match self {
            Formula::Atom(e) => e.span,
            Formula::Always { span, .. }
            | Formula::Eventually { span, .. }
            | Formula::Until { span, .. }
            | Formula::Then { span, .. } => *span,
        }
    }
}

/// `within [a, b]`: a time window relative to now.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Window {
    pub start: Expr,
    pub end: Expr,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct WorldDecl {
    pub name: Ident,
    /// The kind of world model, e.g. `learned`.
    pub kind: Ident,
    pub from: Option<Expr>,
    pub fields: Vec<Field>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PlanDecl {
    pub keyword: Span,
    pub fields: Vec<Field>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RefineDecl {
    pub name: String,
    pub name_span: Span,
    pub steps: Vec<RefineStep>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RefineStep {
    /// `at 12 s: …` applies the edit during a run at that time.
    pub at: Option<Expr>,
    pub action: RefineAction,
    pub span: Span,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum AssignOp {
    Set,
    Add,
    Sub,
    Mul,
    Div,
}

impl AssignOp {
    pub fn symbol(self) -> &'static str {
        match self {
            AssignOp::Set => "=",
            AssignOp::Add => "+=",
            AssignOp::Sub => "-=",
            AssignOp::Mul => "*=",
            AssignOp::Div => "/=",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum RefineAction {
    AddObstacle { shape: Expr, at: Expr },
    Rerun(Ident),
    Assign { target: Path, op: AssignOp, value: Expr },
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ModelDecl {
    pub name: Ident,
    pub members: Vec<Member>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum MemberKind {
    State,
    Action,
    Param,
    Signal,
}

impl MemberKind {
    pub fn keyword(self) -> &'static str {
        match self {
            MemberKind::State => "state",
            MemberKind::Action => "action",
            MemberKind::Param => "param",
            MemberKind::Signal => "signal",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Member {
    pub kind: MemberKind,
    pub name: Ident,
    pub ty: TypeExpr,
    pub default: Option<Expr>,
    pub bounds: Option<Expr>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FnDecl {
    pub name: Ident,
    pub params: Vec<FnParam>,
    pub ret: TypeExpr,
    pub body: Expr,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FnParam {
    pub name: Ident,
    pub ty: TypeExpr,
}
