//! Units and dimensional analysis.
//!
//! A dimension is a vector of integer exponents over the seven SI base dimensions plus
//! plane angle. Angle is kept as its own dimension, unlike in SI where the radian is 1,
//! so that `deg` and `rad` cannot be mixed up with plain numbers; `rad` converts to 1 only
//! where a function requires it (trigonometry takes an angle). Every literal is converted to
//! SI at compile time: `30 cm` becomes `0.3` with the dimension of length.
//!
//! Conversion factors are exact by definition: the inch is 0.0254 m and the pound
//! 0.45359237 kg (international yard and pound agreement, 1959), standard gravity is
//! 9.80665 m/s² (3rd CGPM, 1901), so the pound-force is 4.4482216152605 N.

use std::fmt;
use std::sync::OnceLock;

use serde::Serialize;

use crate::names::NameMap;

const NAMES: [&str; 8] = ["m", "kg", "s", "A", "K", "mol", "cd", "rad"];

/// Exponents of length, mass, time, current, temperature, amount, luminous intensity and
/// angle.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct Dim(pub [i8; 8]);

impl Dim {
    pub const NONE: Dim = Dim([0; 8]);
    pub const LENGTH: Dim = Dim([1, 0, 0, 0, 0, 0, 0, 0]);
    pub const MASS: Dim = Dim([0, 1, 0, 0, 0, 0, 0, 0]);
    pub const TIME: Dim = Dim([0, 0, 1, 0, 0, 0, 0, 0]);
    pub const ANGLE: Dim = Dim([0, 0, 0, 0, 0, 0, 0, 1]);
    pub const VELOCITY: Dim = Dim([1, 0, -1, 0, 0, 0, 0, 0]);
    pub const ACCELERATION: Dim = Dim([1, 0, -2, 0, 0, 0, 0, 0]);
    pub const FORCE: Dim = Dim([1, 1, -2, 0, 0, 0, 0, 0]);
    pub const PRESSURE: Dim = Dim([-1, 1, -2, 0, 0, 0, 0, 0]);
    pub const ENERGY: Dim = Dim([2, 1, -2, 0, 0, 0, 0, 0]);
    pub const POWER: Dim = Dim([2, 1, -3, 0, 0, 0, 0, 0]);

    pub fn mul(self, other: Dim) -> Dim {
        let mut out = [0i8; 8];
        for (i, o) in out.iter_mut().enumerate() {
            *o = self.0[i].saturating_add(other.0[i]);
        }
        Dim(out)
    }

    pub fn div(self, other: Dim) -> Dim {
        self.mul(other.powi(-1))
    }

    pub fn powi(self, n: i32) -> Dim {
        let mut out = [0i8; 8];
        for (i, o) in out.iter_mut().enumerate() {
            *o = (self.0[i] as i32 * n).clamp(-100, 100) as i8;
        }
        Dim(out)
    }

    /// Returns the square root, when every exponent is even.
    pub fn sqrt(self) -> Option<Dim> {
        if self.0.iter().all(|e| e % 2 == 0) {
            let mut out = self.0;
            for e in &mut out {
                *e /= 2;
            }
            Some(Dim(out))
        } else {
            None
        }
    }

    pub fn is_none(self) -> bool {
        self == Dim::NONE
    }

    /// Writes the dimension in SI base units, e.g. `kg*m/s^2`, or `1`.
    pub fn si_unit(self) -> String {
        let mut num = Vec::new();
        let mut den = Vec::new();
        for (i, &e) in self.0.iter().enumerate() {
            let name = NAMES[i];
            match e {
                0 => {}
                1 => num.push(name.to_string()),
                e if e > 0 => num.push(format!("{name}^{e}")),
                -1 => den.push(name.to_string()),
                e => den.push(format!("{name}^{}", -e)),
            }
        }
        let mut out = if num.is_empty() { "1".to_string() } else { num.join("*") };
        for d in den {
            out.push('/');
            out.push_str(&d);
        }
        out
    }

    /// Returns the SI unit engineers write for this dimension: a coherent derived unit such as `N`,
    /// `Pa`, `J`, `W` or `Hz` where one exists, else the base units (`m/s^2`).
    pub fn unit_name(self) -> String {
        let derived = [(Dim::FORCE, "N"), (Dim::PRESSURE, "Pa"), (Dim::ENERGY, "J"), (Dim::POWER, "W"), (Dim([0, 0, -1, 0, 0, 0, 0, 0]), "Hz")];
        match derived.iter().find(|(d, _)| *d == self) {
            Some((_, name)) => name.to_string(),
            None => self.si_unit(),
        }
    }

    /// Returns the name engineers use for this dimension, if it has one.
    pub fn common_name(self) -> Option<&'static str> {
        let names: &[(Dim, &str)] = &[
            (Dim::NONE, "dimensionless"),
            (Dim::LENGTH, "length"),
            (Dim::MASS, "mass"),
            (Dim::TIME, "time"),
            (Dim::ANGLE, "angle"),
            (Dim([0, 0, 0, 1, 0, 0, 0, 0]), "electric current"),
            (Dim([0, 0, 0, 0, 1, 0, 0, 0]), "temperature"),
            (Dim([2, 0, 0, 0, 0, 0, 0, 0]), "area"),
            (Dim([3, 0, 0, 0, 0, 0, 0, 0]), "volume"),
            (Dim::VELOCITY, "velocity"),
            (Dim::ACCELERATION, "acceleration"),
            (Dim::FORCE, "force"),
            (Dim::PRESSURE, "pressure"),
            (Dim::ENERGY, "energy or torque"),
            (Dim::POWER, "power"),
            (Dim([0, 0, -1, 0, 0, 0, 0, 0]), "frequency"),
            (Dim([0, 0, -1, 0, 0, 0, 0, 1]), "angular velocity"),
            (Dim([0, 0, -2, 0, 0, 0, 0, 1]), "angular acceleration"),
            (Dim([-3, 1, 0, 0, 0, 0, 0, 0]), "density"),
            (Dim([1, 1, -1, 0, 0, 0, 0, 0]), "momentum"),
            (Dim([2, 1, 0, 0, 0, 0, 0, 0]), "moment of inertia"),
            (Dim([4, 0, 0, 0, 0, 0, 0, 0]), "second moment of area"),
        ];
        names.iter().find(|(d, _)| *d == self).map(|(_, n)| *n)
    }

    /// `force (kg*m/s^2)`, or just the SI unit when the dimension has no common name.
    pub fn describe(self) -> String {
        match self.common_name() {
            Some("dimensionless") => "dimensionless".to_string(),
            Some(name) => format!("{name} ({})", self.unit_name()),
            None => self.si_unit(),
        }
    }
}

impl fmt::Display for Dim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())
    }
}

/// A unit: its SI factor and its dimension.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Unit {
    pub factor: f64,
    pub dim: Dim,
}

struct UnitDef {
    name: &'static str,
    factor: f64,
    dim: Dim,
    /// Whether SI prefixes (`k`, `m`, `µ`, …) apply.
    prefixable: bool,
    description: &'static str,
}

const fn d(e: [i8; 8]) -> Dim {
    Dim(e)
}

const POUND: f64 = 0.453_592_37;
const STANDARD_GRAVITY: f64 = 9.806_65;
const INCH: f64 = 0.0254;

const UNITS: &[UnitDef] = &[
    UnitDef { name: "m", factor: 1.0, dim: Dim::LENGTH, prefixable: true, description: "metre" },
    UnitDef { name: "g", factor: 1e-3, dim: Dim::MASS, prefixable: true, description: "gram" },
    UnitDef { name: "s", factor: 1.0, dim: Dim::TIME, prefixable: true, description: "second" },
    UnitDef { name: "A", factor: 1.0, dim: d([0, 0, 0, 1, 0, 0, 0, 0]), prefixable: true, description: "ampere" },
    UnitDef { name: "K", factor: 1.0, dim: d([0, 0, 0, 0, 1, 0, 0, 0]), prefixable: true, description: "kelvin" },
    UnitDef { name: "mol", factor: 1.0, dim: d([0, 0, 0, 0, 0, 1, 0, 0]), prefixable: true, description: "mole" },
    UnitDef { name: "cd", factor: 1.0, dim: d([0, 0, 0, 0, 0, 0, 1, 0]), prefixable: false, description: "candela" },
    UnitDef { name: "rad", factor: 1.0, dim: Dim::ANGLE, prefixable: true, description: "radian" },
    UnitDef { name: "deg", factor: std::f64::consts::PI / 180.0, dim: Dim::ANGLE, prefixable: false, description: "degree" },
    UnitDef { name: "°", factor: std::f64::consts::PI / 180.0, dim: Dim::ANGLE, prefixable: false, description: "degree" },
    UnitDef { name: "rev", factor: std::f64::consts::TAU, dim: Dim::ANGLE, prefixable: false, description: "revolution" },
    UnitDef { name: "rpm", factor: std::f64::consts::TAU / 60.0, dim: d([0, 0, -1, 0, 0, 0, 0, 1]), prefixable: false, description: "revolution per minute" },
    UnitDef { name: "N", factor: 1.0, dim: Dim::FORCE, prefixable: true, description: "newton" },
    UnitDef { name: "Pa", factor: 1.0, dim: Dim::PRESSURE, prefixable: true, description: "pascal" },
    UnitDef { name: "J", factor: 1.0, dim: Dim::ENERGY, prefixable: true, description: "joule" },
    UnitDef { name: "W", factor: 1.0, dim: Dim::POWER, prefixable: true, description: "watt" },
    UnitDef { name: "Hz", factor: 1.0, dim: d([0, 0, -1, 0, 0, 0, 0, 0]), prefixable: true, description: "hertz" },
    UnitDef { name: "V", factor: 1.0, dim: d([2, 1, -3, -1, 0, 0, 0, 0]), prefixable: true, description: "volt" },
    UnitDef { name: "L", factor: 1e-3, dim: d([3, 0, 0, 0, 0, 0, 0, 0]), prefixable: true, description: "litre" },
    UnitDef { name: "min", factor: 60.0, dim: Dim::TIME, prefixable: false, description: "minute" },
    UnitDef { name: "h", factor: 3600.0, dim: Dim::TIME, prefixable: false, description: "hour" },
    UnitDef { name: "in", factor: INCH, dim: Dim::LENGTH, prefixable: false, description: "inch" },
    UnitDef { name: "ft", factor: 12.0 * INCH, dim: Dim::LENGTH, prefixable: false, description: "foot" },
    UnitDef { name: "yd", factor: 36.0 * INCH, dim: Dim::LENGTH, prefixable: false, description: "yard" },
    UnitDef { name: "mi", factor: 63_360.0 * INCH, dim: Dim::LENGTH, prefixable: false, description: "mile" },
    UnitDef { name: "lb", factor: POUND, dim: Dim::MASS, prefixable: false, description: "pound (mass)" },
    UnitDef { name: "lbf", factor: POUND * STANDARD_GRAVITY, dim: Dim::FORCE, prefixable: false, description: "pound-force" },
    UnitDef { name: "mph", factor: 63_360.0 * INCH / 3600.0, dim: Dim::VELOCITY, prefixable: false, description: "mile per hour" },
    UnitDef { name: "psi", factor: POUND * STANDARD_GRAVITY / (INCH * INCH), dim: Dim::PRESSURE, prefixable: false, description: "pound-force per square inch" },
    UnitDef { name: "%", factor: 0.01, dim: Dim::NONE, prefixable: false, description: "percent" },
    UnitDef { name: "px", factor: 1.0, dim: Dim::NONE, prefixable: false, description: "pixel (a count)" },
    UnitDef { name: "cell", factor: 1.0, dim: Dim::NONE, prefixable: false, description: "grid cell (a count)" },
    UnitDef { name: "g0", factor: STANDARD_GRAVITY, dim: Dim::ACCELERATION, prefixable: false, description: "standard gravity" },
];

const PREFIXES: &[(&str, f64)] = &[
    ("Y", 1e24),
    ("Z", 1e21),
    ("E", 1e18),
    ("P", 1e15),
    ("T", 1e12),
    ("G", 1e9),
    ("M", 1e6),
    ("k", 1e3),
    ("h", 1e2),
    ("da", 1e1),
    ("d", 1e-1),
    ("c", 1e-2),
    ("m", 1e-3),
    ("µ", 1e-6),
    ("μ", 1e-6),
    ("u", 1e-6),
    ("n", 1e-9),
    ("p", 1e-12),
    ("f", 1e-15),
    ("a", 1e-18),
];

/// Looks up one unit name, with or without an SI prefix.
pub fn lookup(name: &str) -> Option<Unit> {
    unit_table().get(name).copied()
}

/// Builds, once, the table of every unit name with and without prefixes. A name that is a
/// unit itself (`min`, `h`) means that unit. Otherwise the first prefix in [`PREFIXES`]
/// order that leaves a prefixable unit wins, so `dam` is deca-metre, not deci-`am`. The
/// table turns the check of each literal into one hash lookup instead of hundreds of string
/// comparisons.
fn unit_table() -> &'static NameMap<String, Unit> {
    static TABLE: OnceLock<NameMap<String, Unit>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut table = NameMap::default();
        for u in UNITS {
            table.entry(u.name.to_string()).or_insert(Unit { factor: u.factor, dim: u.dim });
        }
        for (prefix, scale) in PREFIXES {
            for u in UNITS.iter().filter(|u| u.prefixable) {
                table.entry(format!("{prefix}{}", u.name)).or_insert(Unit { factor: scale * u.factor, dim: u.dim });
            }
        }
        table
    })
}

/// A human description of a unit name, for hover: `kilo` + `metre`.
pub fn describe_unit(name: &str) -> Option<String> {
    if let Some(u) = UNITS.iter().find(|u| u.name == name) {
        return Some(u.description.to_string());
    }
    for (prefix, _) in PREFIXES {
        if let Some(base) = name.strip_prefix(prefix) {
            if let Some(u) = UNITS.iter().find(|u| u.name == base && u.prefixable) {
                return Some(format!("{prefix}-prefixed {}", u.description));
            }
        }
    }
    None
}

/// Lists every unit name without prefixes, for completion and suggestions.
pub fn unit_names() -> impl Iterator<Item = &'static str> {
    UNITS.iter().map(|u| u.name)
}

/// Units that are common enough to suggest after a number, with their dimension.
pub fn common_units() -> Vec<(&'static str, Dim)> {
    let names = [
        "m", "cm", "mm", "km", "kg", "g", "s", "ms", "min", "h", "deg", "rad", "N", "kN", "Pa", "kPa", "MPa", "GPa", "J", "W",
        "Hz", "m/s", "m/s^2", "rad/s", "N*m", "kg/m^3", "in", "ft", "mi", "lb", "lbf", "mph", "psi", "%",
    ];
    names
        .iter()
        .filter_map(|n| {
            let mut dim = Dim::NONE;
            for (i, part) in n.split('/').enumerate() {
                for factor in part.split('*') {
                    let (base, pow) = factor.split_once('^').map_or((factor, 1), |(b, p)| (b, p.parse().unwrap_or(1)));
                    let u = lookup(base)?;
                    let pow = if i > 0 { -pow } else { pow };
                    dim = dim.mul(u.dim.powi(pow));
                }
            }
            Some((*n, dim))
        })
        .collect()
}

/// Spellings engineers write that are not unit names here, with the unit they mean.
const ALIASES: &[(&str, &str)] = &[
    ("meter", "m"),
    ("meters", "m"),
    ("metre", "m"),
    ("metres", "m"),
    ("sec", "s"),
    ("secs", "s"),
    ("second", "s"),
    ("seconds", "s"),
    ("hr", "h"),
    ("hour", "h"),
    ("hours", "h"),
    ("minute", "min"),
    ("minutes", "min"),
    ("kilogram", "kg"),
    ("kilograms", "kg"),
    ("gram", "g"),
    ("grams", "g"),
    ("newton", "N"),
    ("newtons", "N"),
    ("Nm", "N*m"),
    ("kmh", "km/h"),
    ("kph", "km/h"),
    ("mps", "m/s"),
    ("degree", "deg"),
    ("degrees", "deg"),
    ("inch", "in"),
    ("inches", "in"),
    ("foot", "ft"),
    ("feet", "ft"),
    ("pound", "lb"),
    ("pounds", "lb"),
];

/// The unit a misspelled or spelled-out unit name most likely means, with or without an SI
/// prefix (`cmm` gives `cm`).
pub fn suggest(name: &str) -> Option<String> {
    if let Some((_, unit)) = ALIASES.iter().find(|(alias, _)| *alias == name) {
        return Some(unit.to_string());
    }
    let prefixed = UNITS
        .iter()
        .filter(|u| u.prefixable)
        .flat_map(|u| PREFIXES.iter().map(move |(prefix, _)| format!("{prefix}{}", u.name)));
    let candidates: Vec<String> = unit_names().map(str::to_string).chain(prefixed).collect();
    crate::names::closest(name, candidates.iter().map(String::as_str)).map(str::to_string)
}

/// A sentence proposing a unit of dimension `expected` where `found` was written, or `None`
/// when no simple fix is known.
pub fn propose_fix(found: Dim, expected: Dim) -> Option<String> {
    propose(found, expected, false)
}

/// Like [`propose_fix`], and also names the dimension that would convert `found` into
/// `expected`, for arithmetic and comparisons between two expressions (`2 s` against a
/// length: "or multiply by a velocity").
pub fn propose_fix_or_conversion(found: Dim, expected: Dim) -> Option<String> {
    propose(found, expected, true)
}

fn propose(found: Dim, expected: Dim, with_conversion: bool) -> Option<String> {
    if found == Dim::FORCE && expected == Dim::MASS {
        return Some(
            "try a mass unit such as `kg` or `lb` (not `lbf`, which is a force), or divide the force by standard gravity `1 g0`"
                .to_string(),
        );
    }
    if found == Dim::MASS && expected == Dim::FORCE {
        return Some(
            "try a force unit such as `N` or `lbf` (not `lb`, which is a mass), or multiply the mass by standard gravity `1 g0`"
                .to_string(),
        );
    }
    if expected.is_none() {
        return Some("try a plain number without a unit".to_string());
    }
    if found.is_none() {
        let unit = example_unit(expected);
        return Some(format!("try writing a unit after the number, e.g. `{unit}`"));
    }
    let ratio = expected.div(found);
    if ratio == Dim::ANGLE || ratio == Dim::ANGLE.powi(-1) {
        return Some("try multiplying or dividing by `1 rad`: angles carry their own dimension in Basin".to_string());
    }
    let wanted = match expected.common_name() {
        Some(name) => format!("try {} such as `1 {}`", with_article(name), example_unit(expected)),
        None => format!("try a quantity in `{}`", example_unit(expected)),
    };
    Some(match conversion(ratio).filter(|_| with_conversion) {
        Some(step) => format!("{wanted}, or {step}"),
        None => wanted,
    })
}

/// How to turn a quantity into one `ratio` times larger: multiply by a named dimension or
/// divide by one, preferring the dimension without negative exponents (`divide by a time`
/// reads better than `multiply by a frequency`).
// NOTE: the units here are not in backticks on purpose: the editor's quick fixes offer
// every backticked unit of a dimension error's help as a replacement unit.
fn conversion(ratio: Dim) -> Option<String> {
    let named = |d: Dim| d.common_name().filter(|n| *n != "dimensionless");
    let multiply = named(ratio).map(|n| (format!("multiply by {} ({})", with_article(n), example_unit(ratio)), ratio));
    let inverse = ratio.powi(-1);
    let divide = named(inverse).map(|n| (format!("divide by {} ({})", with_article(n), example_unit(inverse)), inverse));
    let positive = |d: &Dim| d.0.iter().all(|e| *e >= 0);
    match (multiply, divide) {
        (Some(m), Some(d)) => Some(if !positive(&m.1) && positive(&d.1) { d.0 } else { m.0 }),
        (Some(m), None) => Some(m.0),
        (None, Some(d)) => Some(d.0),
        (None, None) => None,
    }
}

/// `a length`, `an angle`.
fn with_article(noun: &str) -> String {
    let article = if noun.starts_with(['a', 'e', 'i', 'o', 'u']) { "an" } else { "a" };
    format!("{article} {noun}")
}

/// Picks a unit that engineers would write for a dimension.
pub fn example_unit(dim: Dim) -> String {
    for (name, d) in common_units() {
        if d == dim {
            return name.to_string();
        }
    }
    dim.si_unit()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-12 * b.abs().max(1.0)
    }

    #[test]
    fn lookup_cases() {
        let cases: &[(&str, f64, Dim)] = &[
            ("m", 1.0, Dim::LENGTH),
            ("cm", 0.01, Dim::LENGTH),
            ("mm", 0.001, Dim::LENGTH),
            ("km", 1000.0, Dim::LENGTH),
            ("kg", 1.0, Dim::MASS),
            ("g", 0.001, Dim::MASS),
            ("ms", 0.001, Dim::TIME),
            ("min", 60.0, Dim::TIME),
            ("h", 3600.0, Dim::TIME),
            ("in", 0.0254, Dim::LENGTH),
            ("ft", 0.3048, Dim::LENGTH),
            ("mi", 1609.344, Dim::LENGTH),
            ("lb", 0.45359237, Dim::MASS),
            ("lbf", 4.4482216152605, Dim::FORCE),
            ("mph", 0.44704, Dim::VELOCITY),
            ("psi", 6894.757293168361, Dim::PRESSURE),
            ("MPa", 1e6, Dim::PRESSURE),
            ("kN", 1e3, Dim::FORCE),
            ("deg", std::f64::consts::PI / 180.0, Dim::ANGLE),
            ("%", 0.01, Dim::NONE),
            ("µm", 1e-6, Dim::LENGTH),
            ("hPa", 100.0, Dim::PRESSURE),
        ];
        for (name, factor, dim) in cases {
            let u = lookup(name).unwrap_or_else(|| panic!("{name} not found"));
            assert!(close(u.factor, *factor), "{name}: {} vs {factor}", u.factor);
            assert_eq!(u.dim, *dim, "{name}");
        }
    }

    #[test]
    fn unknown_units() {
        for name in ["meter", "kmin", "cdeg", "x"] {
            assert_eq!(lookup(name), None, "{name}");
        }
    }

    #[test]
    fn dimension_names() {
        assert_eq!(Dim::FORCE.describe(), "force (N)");
        assert_eq!(Dim::NONE.describe(), "dimensionless");
        assert_eq!(Dim::LENGTH.powi(5).describe(), "m^5");
    }

    #[test]
    fn propose_fix_cases() {
        let cases: &[(Dim, Dim, &str)] = &[
            (Dim::TIME, Dim::LENGTH, "try a length such as `1 m`, or multiply by a velocity (m/s)"),
            (Dim::LENGTH, Dim::VELOCITY, "try a velocity such as `1 m/s`, or divide by a time (s)"),
            (Dim::MASS, Dim::LENGTH, "try a length such as `1 m`"),
            (Dim::LENGTH, Dim::ANGLE, "try an angle such as `1 deg`"),
            (Dim::TIME, Dim::NONE, "try a plain number without a unit"),
            (Dim::NONE, Dim::TIME, "try writing a unit after the number, e.g. `s`"),
            (Dim::NONE, Dim::ANGLE, "try writing a unit after the number, e.g. `deg`"),
            (Dim::LENGTH.powi(5), Dim::LENGTH.powi(7), "try a quantity in `m^7`, or multiply by an area (m^2)"),
        ];
        for (found, expected, fix) in cases {
            assert_eq!(propose_fix_or_conversion(*found, *expected).as_deref(), Some(*fix), "{found} for {expected}");
        }
        assert_eq!(propose_fix(Dim::TIME, Dim::LENGTH).as_deref(), Some("try a length such as `1 m`"));
    }

    #[test]
    fn suggest_cases() {
        let cases = [("meter", "m"), ("sec", "s"), ("Nm", "N*m"), ("kmh", "km/h"), ("kgg", "kg"), ("cmm", "cm"), ("Mpa", "MPa")];
        for (written, unit) in cases {
            assert_eq!(suggest(written).as_deref(), Some(unit), "{written}");
        }
    }

    #[test]
    fn force_against_mass_fix() {
        let fix = propose_fix(Dim::FORCE, Dim::MASS).expect("a fix");
        assert!(fix.contains("lbf"), "{fix}");
    }
}
