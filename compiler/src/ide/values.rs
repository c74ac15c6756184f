//! SI values of literals and constant expressions, for hover text and inlay hints.

use crate::db::{Db, SourceFile, file_items, parse};
use crate::syntax::{BinOp, Expr, ExprKind, Item, UnOp};
use crate::units::{self, Dim};

use super::walk::UnitPart;

/// How many `let` indirections a constant may follow before evaluation gives up.
const MAX_NAME_DEPTH: u32 = 16;

/// A constant in SI units.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Num(f64, Dim),
    Tuple(Vec<Value>),
}

impl Value {
    /// `0.3 m`, `(12.5 m, 4 m)`, or a plain number when dimensionless.
    pub fn display(&self) -> String {
        match self {
            Value::Num(v, d) => format_quantity(*v, *d),
            Value::Tuple(parts) => {
                let parts: Vec<String> = parts.iter().map(Value::display).collect();
                format!("({})", parts.join(", "))
            }
        }
    }
}

/// Computes the SI factor and dimension of a unit as written, or `None` when a factor is
/// unknown.
pub fn unit_of(parts: &[UnitPart]) -> Option<units::Unit> {
    let mut factor = 1.0;
    let mut dim = Dim::NONE;
    for p in parts {
        let base = units::lookup(&p.name)?;
        factor *= base.factor.powi(p.power);
        dim = dim.mul(base.dim.powi(p.power));
    }
    Some(units::Unit { factor, dim })
}

/// Names the coherent SI unit engineers write for a dimension: `N` rather than `m*kg/s^2`.
pub fn si_unit_name(dim: Dim) -> String {
    if dim.is_none() {
        return String::new();
    }
    for (name, d) in units::common_units() {
        if d == dim && parse_unit(name).is_some_and(|u| u.factor == 1.0) {
            return name.to_string();
        }
    }
    dim.si_unit()
}

/// Parses a unit written like `kg/m^3` or `N*m`, as completion and help texts write them.
pub fn parse_unit(text: &str) -> Option<units::Unit> {
    let mut factor = 1.0;
    let mut dim = Dim::NONE;
    for (i, part) in text.split('/').enumerate() {
        for f in part.split('*') {
            let (base, power) = match f.split_once('^') {
                Some((b, p)) => (b, p.parse::<i32>().ok()?),
                None => (f, 1),
            };
            let power = if i > 0 { -power } else { power };
            let unit = units::lookup(base)?;
            factor *= unit.factor.powi(power);
            dim = dim.mul(unit.dim.powi(power));
        }
    }
    Some(units::Unit { factor, dim })
}

/// Formats a number rounded to 12 significant digits, so that `30 * 0.01` prints as `0.3`.
pub fn format_number(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return format!("{}", if v == 0.0 { 0.0 } else { v });
    }
    let rounded: f64 = format!("{v:.11e}").parse().unwrap_or(v);
    let magnitude = rounded.abs();
    if !(1e-4..1e7).contains(&magnitude) {
        let text = format!("{rounded:e}");
        return text;
    }
    format!("{rounded}")
}

pub fn format_quantity(v: f64, dim: Dim) -> String {
    let unit = si_unit_name(dim);
    if unit.is_empty() { format_number(v) } else { format!("{} {unit}", format_number(v)) }
}

/// Evaluates a constant expression of `file`, following `let` and `site` names.
pub fn eval(db: &dyn Db, file: SourceFile, e: &Expr) -> Option<Value> {
    Evaluator { db, file }.eval(e, 0)
}

struct Evaluator<'a> {
    db: &'a dyn Db,
    file: SourceFile,
}

impl Evaluator<'_> {
    fn eval(&self, e: &Expr, depth: u32) -> Option<Value> {
        match &e.kind {
            ExprKind::Quantity { value, unit, .. } => {
                let (factor, dim) = match unit {
                    None => (1.0, Dim::NONE),
                    Some(u) => {
                        let parts: Vec<UnitPart> = u.factors.iter().map(|f| UnitPart { name: f.name.clone(), power: f.power, span: f.span }).collect();
                        let unit = unit_of(&parts)?;
                        (unit.factor, unit.dim)
                    }
                };
                Some(Value::Num(value * factor, dim))
            }
            ExprKind::Paren(inner) => self.eval(inner, depth),
            ExprKind::Tuple(parts) => parts.iter().map(|p| self.eval(p, depth)).collect::<Option<Vec<_>>>().map(Value::Tuple),
            ExprKind::Unary { op: UnOp::Neg, operand } => match self.eval(operand, depth)? {
                Value::Num(v, d) => Some(Value::Num(-v, d)),
                Value::Tuple(parts) => Some(Value::Tuple(parts.into_iter().map(negate).collect::<Option<Vec<_>>>()?)),
            },
            ExprKind::Binary { op, lhs, rhs } => {
                let (Value::Num(a, da), Value::Num(b, db)) = (self.eval(lhs, depth)?, self.eval(rhs, depth)?) else { return None };
                match op {
                    BinOp::Add | BinOp::Sub if da == db => Some(Value::Num(if *op == BinOp::Add { a + b } else { a - b }, da)),
                    BinOp::Mul => Some(Value::Num(a * b, da.mul(db))),
                    BinOp::Div => Some(Value::Num(a / b, da.div(db))),
                    BinOp::Pow if db.is_none() && b.fract() == 0.0 && b.abs() <= 16.0 => Some(Value::Num(a.powf(b), da.powi(b as i32))),
                    _ => None,
                }
            }
            ExprKind::Name(id) if depth < MAX_NAME_DEPTH => {
                if id.name == "pi" {
                    return Some(Value::Num(std::f64::consts::PI, Dim::NONE));
                }
                let items = file_items(self.db, self.file);
                let value = items.items.iter().find_map(|entry| match &parse(self.db, entry.key).item {
                    Some(Item::Let(v) | Item::Site(v)) if v.name.name == id.name => Some(v.value.clone()),
                    _ => None,
                })?;
                self.eval(&value, depth + 1)
            }
            _ => None,
        }
    }
}

fn negate(v: Value) -> Option<Value> {
    match v {
        Value::Num(x, d) => Some(Value::Num(-x, d)),
        Value::Tuple(_) => None,
    }
}
