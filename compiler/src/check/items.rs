//! Checks of each kind of top-level item: the fields a block accepts, the dimensions its
//! settings need, and which clauses belong in goals and constraints.

use super::{Checker, Env, Ty, compatible};
use crate::db::resolve_path;
use crate::diagnostics::{Code, Diagnostic, Label};
use crate::names::{closest, try_one_of};
use crate::syntax::*;
use crate::units::Dim;

/// The loaders a `context` may use, with the fields each accepts.
pub const LOADERS: &[(&str, &[(&str, Setting)])] = &[
    ("image", &[("scale", Setting::Num(Dim::LENGTH)), ("obstacles", Setting::Word(&["dark", "light"])), ("threshold", Setting::Num(Dim::NONE))]),
    ("map", &[("cell_size", Setting::Num(Dim::LENGTH))]),
    ("scen", &[("row", Setting::Num(Dim::NONE))]),
    ("urdf", &[]),
    ("scene", &[]),
    ("text", &[]),
];

/// The solver stages a `plan` may chain, with their settings.
pub const SOLVERS: &[(&str, &[(&str, Setting)])] = &[
    ("mppi", &[("samples", Setting::Num(Dim::NONE)), ("iterations", Setting::Num(Dim::NONE)), ("temperature", Setting::Num(Dim::NONE)), ("noise", Setting::Num(Dim::NONE))]),
    ("cem", &[("samples", Setting::Num(Dim::NONE)), ("iterations", Setting::Num(Dim::NONE)), ("elites", Setting::Num(Dim::NONE))]),
    ("gradient", &[("steps", Setting::Num(Dim::NONE)), ("learning_rate", Setting::Num(Dim::NONE))]),
];

/// Settings of the `plan` block.
pub const PLAN_FIELDS: &[(&str, Setting)] = &[
    ("step", Setting::Num(Dim::TIME)),
    ("horizon", Setting::Num(Dim::TIME)),
    ("time_limit", Setting::Num(Dim::TIME)),
    ("solver", Setting::Solver),
    ("seed", Setting::Num(Dim::NONE)),
    ("memory_budget_mb", Setting::Num(Dim::NONE)),
];

/// Settings of a `world` block.
pub const WORLD_FIELDS: &[(&str, Setting)] = &[
    ("episodes", Setting::Num(Dim::NONE)),
    ("samples", Setting::Num(Dim::NONE)),
    ("latent", Setting::Num(Dim::NONE)),
    ("epochs", Setting::Num(Dim::NONE)),
    ("steps", Setting::Num(Dim::NONE)),
    ("hidden", Setting::Num(Dim::NONE)),
];

/// The world-model kinds a `world` may declare.
pub const WORLD_KINDS: &[&str] = &["learned", "simulator"];

#[derive(Clone, Copy, Debug)]
pub enum Setting {
    Num(Dim),
    /// One of a fixed set of words, or a string.
    Word(&'static [&'static str]),
    /// Solver stages chained with `then`.
    Solver,
}

/// Checks one item against the environment; spans are relative to the item.
pub fn check(item: &Item, env: &Env) -> Vec<Diagnostic> {
    let mut c = Checker::new(env);
    match item {
        Item::Use(_) => {}
        Item::Context(ctx) => check_context(&mut c, ctx),
        Item::Instance(i) => check_instance(&mut c, i),
        Item::Site(v) => {
            let t = c.expr(&v.value);
            let planar = Ty::Tuple(vec![Ty::Num(Dim::LENGTH), Ty::Num(Dim::LENGTH)]);
            let spatial = Ty::Tuple(vec![Ty::Num(Dim::LENGTH); 3]);
            if !compatible(&planar, &t) && !compatible(&spatial, &t) {
                c.diagnostics.push(
                    Diagnostic::error(Code::TypeMismatch, format!("a site is a point such as `(2 m, 3 m)`, found {}", t.describe()))
                        .with_label(Label::primary(v.value.span, format!("this is {}", t.describe())))
                        .with_help("try two or three lengths in parentheses"),
                );
            }
        }
        Item::Let(v) => {
            c.expr(&v.value);
        }
        Item::Goal(b) => check_clauses(&mut c, b, true),
        Item::Constraint(b) => check_clauses(&mut c, b, false),
        Item::World(w) => check_world(&mut c, w),
        Item::Plan(p) => check_settings(&mut c, &p.fields, PLAN_FIELDS, "the plan"),
        Item::Refine(r) => check_refine(&mut c, r),
        Item::Model(m) => check_model(&mut c, m),
        Item::Fn(f) => check_fn(&mut c, f),
    }
    c.diagnostics
}

fn check_context(c: &mut Checker<'_>, ctx: &ContextDecl) {
    let Some((_, fields)) = LOADERS.iter().find(|(n, _)| *n == ctx.loader.name) else {
        let names: Vec<&str> = LOADERS.iter().map(|(n, _)| *n).collect();
        let mut d = Diagnostic::error(Code::UnknownName, format!("unknown context loader `{}`", ctx.loader.name))
            .with_label(Label::primary(ctx.loader.span, "not a loader"));
        d = match closest(&ctx.loader.name, names.iter().copied()) {
            Some(s) => d.with_help(format!("try `{s}`, the closest match")),
            None => d.with_help(try_one_of("the loaders", names.iter().copied())),
        };
        c.diagnostics.push(d);
        return;
    };
    let arg_ok = matches!(ctx.args.as_slice(), [Expr { kind: ExprKind::Str(_), .. }]);
    if !arg_ok {
        let span = ctx.args.iter().map(|a| a.span).reduce(Span::to).unwrap_or(ctx.loader.span);
        c.diagnostics.push(
            Diagnostic::error(Code::ArgumentCount, format!("`{}` takes one string: a path relative to the spec", ctx.loader.name))
                .with_label(Label::primary(span, "expected one string"))
                .with_help(format!("try `{}(\"file\")`", ctx.loader.name)),
        );
    }
    check_settings(c, &ctx.fields, fields, &format!("`{}`", ctx.loader.name));
}

fn check_instance(c: &mut Checker<'_>, i: &InstanceDecl) {
    match resolve_path(c.env, &i.model) {
        Some(Ty::Model(m)) => {
            if i.kind == ItemKind::Agent && !m.members.iter().any(|mm| mm.kind == MemberKind::State) {
                c.diagnostics.push(
                    Diagnostic::error(Code::WrongKind, format!("`{}` has no state, so it cannot be an agent", m.name))
                        .with_label(Label::primary(i.model.span, "a model without dynamics"))
                        .with_help("try `design` for a model whose parameters are decided once"),
                );
            }
            c.fields_against_model(&m, &i.fields, i.model.span, true);
        }
        Some(other) => {
            c.diagnostics.push(
                Diagnostic::error(Code::WrongKind, format!("`{}` is {}, not a model", i.model.dotted(), other.describe()))
                    .with_label(Label::primary(i.model.span, "expected a model")),
            );
        }
        None => {
            let dotted = i.model.dotted();
            let mut d = Diagnostic::error(Code::UnknownName, format!("cannot find model `{dotted}`")).with_label(Label::primary(i.model.span, "not found"));
            let last = &i.model.segments.last().expect("a path has a segment").name;
            let candidates: Vec<&str> = c.env.paths.keys().map(String::as_str).collect();
            if let Some(full) = c.env.paths.keys().find(|p| p.rsplit('.').next() == Some(last.as_str())) {
                d = d.with_help(format!("try `use {full}` or write the full path `{full}`"));
            } else if let Some(s) = closest(&dotted, candidates) {
                d = d.with_help(format!("try `{s}`, the closest match"));
            }
            c.diagnostics.push(d);
            for f in &i.fields {
                if let FieldValue::Expr(e) = &f.value {
                    c.expr(e);
                }
            }
        }
    }
}

fn check_clauses(c: &mut Checker<'_>, b: &ClauseBlock, is_goal: bool) {
    for clause in &b.clauses {
        match &clause.kind {
            ClauseKind::Reach { what, target, tolerance, .. } => {
                if !is_goal {
                    misplaced(c, clause.span, "`reach`");
                }
                let wt = c.expr(what);
                let tt = c.expr(target);
                if !compatible(&wt, &tt) {
                    c.diagnostics.push(
                        Diagnostic::error(Code::ComparisonDimension, format!("the target of `reach` is {}, but what reaches it is {}", tt.describe(), wt.describe()))
                            .with_label(Label::primary(target.span, format!("this is {}", tt.describe())))
                            .with_label(Label::secondary(what.span, format!("this is {}", wt.describe())))
                            .with_help("try a target of the same kind, e.g. a site for `robot.position`"),
                    );
                }
                if let Some(tol) = tolerance {
                    let element = match &wt {
                        Ty::Tuple(parts) => parts.first().cloned().unwrap_or(Ty::Unknown),
                        other => other.clone(),
                    };
                    c.expect(tol, &element, "the tolerance of `reach`");
                }
            }
            ClauseKind::FinishBy(e) => {
                if !is_goal {
                    misplaced(c, clause.span, "`finish_by`");
                }
                c.expect(e, &Ty::Num(Dim::TIME), "`finish_by`");
            }
            ClauseKind::Minimize(e) | ClauseKind::Maximize(e) => {
                if !is_goal {
                    misplaced(c, clause.span, "an objective");
                }
                let t = c.expr(e);
                if !matches!(t, Ty::Num(_) | Ty::Unknown) {
                    c.diagnostics.push(
                        Diagnostic::error(Code::TypeMismatch, format!("an objective must be a number, found {}", t.describe()))
                            .with_label(Label::primary(e.span, format!("this is {}", t.describe()))),
                    );
                }
                if let Some(Strength::Hard(span)) = &clause.strength {
                    c.diagnostics.push(
                        Diagnostic::error(Code::MisplacedClause, "an objective cannot be `hard`")
                            .with_label(Label::primary(*span, "objectives are minimized, not enforced"))
                            .with_help("try a constraint such as `always x <= 2 m hard`"),
                    );
                }
            }
            ClauseKind::Formula(f) => check_formula(c, f),
        }
        if let Some(Strength::Soft { weight: Some(w), .. }) = &clause.strength {
            c.expect(w, &Ty::Num(Dim::NONE), "a weight");
        }
    }
}

fn misplaced(c: &mut Checker<'_>, span: Span, what: &str) {
    c.diagnostics.push(
        Diagnostic::error(Code::MisplacedClause, format!("{what} belongs in a `goal`, not a `constraint`"))
            .with_label(Label::primary(span, "not allowed in a constraint"))
            .with_help("try moving this clause into a `goal` block"),
    );
}

fn check_formula(c: &mut Checker<'_>, f: &Formula) {
    // Formulas nest at most a handful of levels per temporal keyword, and keywords repeat
    // iteratively in the grammar, so an explicit stack keeps this safe for any input.
    let mut stack = vec![f];
    while let Some(f) = stack.pop() {
        match f {
            Formula::Atom(e) => {
                let t = c.expr(e);
                if !matches!(t, Ty::Bool | Ty::Unknown) {
                    c.diagnostics.push(
                        Diagnostic::error(Code::NotACondition, format!("expected a condition, found {}", t.describe()))
                            .with_label(Label::primary(e.span, "this is not true or false"))
                            .with_help("try a comparison such as `robot.speed <= 1 m/s`"),
                    );
                }
            }
            Formula::Always { window, body, .. } | Formula::Eventually { window, body, .. } => {
                if let Some(w) = window {
                    c.expect(&w.start, &Ty::Num(Dim::TIME), "a time window");
                    c.expect(&w.end, &Ty::Num(Dim::TIME), "a time window");
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

fn check_world(c: &mut Checker<'_>, w: &WorldDecl) {
    if !WORLD_KINDS.contains(&w.kind.name.as_str()) {
        let mut d = Diagnostic::error(Code::UnknownName, format!("unknown world model kind `{}`", w.kind.name))
            .with_label(Label::primary(w.kind.span, "not a world model kind"));
        d = match closest(&w.kind.name, WORLD_KINDS.iter().copied()) {
            Some(s) => d.with_help(format!("try `{s}`, the closest match")),
            None => d.with_help(try_one_of("the kinds", WORLD_KINDS.iter().copied())),
        };
        c.diagnostics.push(d);
    }
    if let Some(from) = &w.from {
        c.expr(from);
    }
    check_settings(c, &w.fields, WORLD_FIELDS, "a world model");
}

fn check_settings(c: &mut Checker<'_>, fields: &[Field], known: &[(&str, Setting)], owner: &str) {
    let mut seen: Vec<(&str, Span)> = Vec::new();
    for f in fields {
        if let Some((_, first)) = seen.iter().find(|(n, _)| *n == f.name.name) {
            c.diagnostics.push(
                Diagnostic::error(Code::Duplicate, format!("setting `{}` is given twice", f.name.name))
                    .with_label(Label::primary(f.name.span, "given again here"))
                    .with_label(Label::secondary(*first, "first given here"))
                    .with_help("try removing one of them"),
            );
        }
        seen.push((&f.name.name, f.name.span));
        let Some((_, setting)) = known.iter().find(|(n, _)| *n == f.name.name) else {
            let names: Vec<&str> = known.iter().map(|(n, _)| *n).collect();
            let mut d = Diagnostic::error(Code::UnknownField, format!("{owner} has no setting `{}`", f.name.name))
                .with_label(Label::primary(f.name.span, "unknown setting"));
            d = match closest(&f.name.name, names.iter().copied()) {
                Some(s) => d.with_help(format!("try `{s}`, the closest match")),
                None if names.is_empty() => d.with_help(format!("{owner} takes no settings")),
                None => d.with_help(try_one_of("the settings", names.iter().copied())),
            };
            c.diagnostics.push(d);
            continue;
        };
        match (setting, &f.value) {
            (Setting::Num(dim), FieldValue::Expr(e)) => {
                c.expect(e, &Ty::Num(*dim), &format!("setting `{}`", f.name.name));
            }
            (Setting::Word(words), FieldValue::Expr(e)) => match &e.kind {
                ExprKind::Name(id) if words.contains(&id.name.as_str()) => {}
                ExprKind::Str(_) => {}
                _ => {
                    c.diagnostics.push(
                        Diagnostic::error(Code::TypeMismatch, format!("setting `{}` takes one of: {}", f.name.name, words.join(", ")))
                            .with_label(Label::primary(e.span, "not one of the options"))
                            .with_help(format!("try `{}: {}`, or a color as a string such as `\"#ff0000\"`", f.name.name, words[0])),
                    );
                }
            },
            (Setting::Solver, value) => check_solver(c, value),
            (_, FieldValue::Stages(stages)) => {
                let span = stages.first().map_or(f.span, |s| s.span);
                c.diagnostics.push(
                    Diagnostic::error(Code::TypeMismatch, format!("setting `{}` takes a value, not solver stages", f.name.name))
                        .with_label(Label::primary(span, "unexpected stages")),
                );
            }
        }
    }
}

fn check_solver(c: &mut Checker<'_>, value: &FieldValue) {
    let stages: Vec<(Ident, &[Field], Span)> = match value {
        FieldValue::Stages(stages) => stages.iter().map(|s| (s.name.clone(), s.fields.as_slice(), s.span)).collect(),
        FieldValue::Expr(Expr { kind: ExprKind::Record { name, fields }, span }) => vec![(name.clone(), fields.as_slice(), *span)],
        FieldValue::Expr(Expr { kind: ExprKind::Name(name), span }) => vec![(name.clone(), &[][..], *span)],
        FieldValue::Expr(e) => {
            c.diagnostics.push(
                Diagnostic::error(Code::TypeMismatch, "a solver is a chain of stages such as `mppi { samples: 1024 } then gradient { steps: 10 }`")
                    .with_label(Label::primary(e.span, "not a solver stage"))
                    .with_help("try `solver: mppi { samples: 1024, iterations: 4 }`"),
            );
            return;
        }
    };
    for (name, fields, _) in stages {
        match SOLVERS.iter().find(|(n, _)| *n == name.name) {
            Some((_, known)) => check_settings(c, fields, known, &format!("solver `{}`", name.name)),
            None => {
                let names: Vec<&str> = SOLVERS.iter().map(|(n, _)| *n).collect();
                let mut d = Diagnostic::error(Code::UnknownName, format!("unknown solver `{}`", name.name))
                    .with_label(Label::primary(name.span, "not a solver"));
                d = match closest(&name.name, names.iter().copied()) {
                    Some(s) => d.with_help(format!("try `{s}`, the closest match")),
                    None => d.with_help(try_one_of("the solvers", names.iter().copied())),
                };
                c.diagnostics.push(d);
            }
        }
    }
}

fn check_refine(c: &mut Checker<'_>, r: &RefineDecl) {
    for step in &r.steps {
        if let Some(at) = &step.at {
            c.expect(at, &Ty::Num(Dim::TIME), "`at`");
        }
        match &step.action {
            RefineAction::AddObstacle { shape, at } => {
                let t = c.expr(shape);
                if !matches!(t, Ty::Shape | Ty::Unknown) {
                    c.diagnostics.push(
                        Diagnostic::error(Code::TypeMismatch, format!("an obstacle is a shape, found {}", t.describe()))
                            .with_label(Label::primary(shape.span, "not a shape"))
                            .with_help("try `box(1 m, 2 m)` or `circle(50 cm)`"),
                    );
                }
                let pt = c.expr(at);
                if !compatible(&Ty::Tuple(vec![Ty::Num(Dim::LENGTH), Ty::Num(Dim::LENGTH)]), &pt) {
                    c.diagnostics.push(
                        Diagnostic::error(Code::TypeMismatch, format!("an obstacle is placed at a point such as `(2 m, 3 m)`, found {}", pt.describe()))
                            .with_label(Label::primary(at.span, format!("this is {}", pt.describe()))),
                    );
                }
            }
            RefineAction::Rerun(id) => match c.env.lookup(&id.name) {
                Some(s) if matches!(s.ty, Ty::Block(_)) => {}
                Some(s) => {
                    let what = s.ty.describe();
                    c.diagnostics.push(
                        Diagnostic::error(Code::WrongKind, format!("`rerun` takes a world, goal or constraint, and `{}` is {what}", id.name))
                            .with_label(Label::primary(id.span, "cannot be rerun")),
                    );
                }
                None => {
                    c.expr(&Expr { kind: ExprKind::Name(id.clone()), span: id.span });
                }
            },
            RefineAction::Assign { target, op, value } => {
                let mut it = target.segments.iter();
                let first = it.next().expect("a path has a segment");
                let mut t = c.expr(&Expr { kind: ExprKind::Name(first.clone()), span: first.span });
                for seg in it {
                    t = c.field_of(&t, seg);
                }
                let vt = c.expr(value);
                let want = match op {
                    AssignOp::Mul | AssignOp::Div => Ty::Num(Dim::NONE),
                    _ => t.clone(),
                };
                if !compatible(&want, &vt) {
                    let assignment = format!("{} {}", target.dotted(), op.symbol());
                    let found = vt.describe();
                    let d = if matches!(op, AssignOp::Mul | AssignOp::Div) {
                        Diagnostic::error(Code::FieldDimension, format!("`{assignment}` takes a dimensionless factor, found {found}"))
                            .with_label(Label::primary(value.span, format!("this is {found}")))
                            .with_help("try a plain factor such as `1.15`, or `=` to set a new value with a unit")
                    } else {
                        let mut d = Diagnostic::error(Code::FieldDimension, format!("`{assignment}` expects {}, found {found}", want.describe()))
                            .with_label(Label::primary(value.span, format!("this is {found}")))
                            .with_label(Label::secondary(target.span, format!("this is {}", t.describe())));
                        if let Some(fix) = super::fix_for(&vt, &want) {
                            d = d.with_help(fix);
                        }
                        d
                    };
                    c.diagnostics.push(d);
                }
            }
        }
    }
}

fn check_model(c: &mut Checker<'_>, m: &ModelDecl) {
    for mm in &m.members {
        let t = c.type_of_annotation(&mm.ty);
        c.locals.insert(mm.name.name.clone(), t);
    }
    for mm in &m.members {
        let declared = c.locals.get(&mm.name.name).cloned().unwrap_or(Ty::Unknown);
        if let Some(d) = &mm.default {
            c.expect(d, &declared, &format!("member `{}`", mm.name.name));
        }
        if let Some(b) = &mm.bounds {
            let t = c.expr(b);
            if !compatible(&Ty::Range(Box::new(declared.clone())), &t) {
                c.diagnostics.push(
                    Diagnostic::error(Code::FieldDimension, format!("bounds of `{}` must be a range of {}, found {}", mm.name.name, declared.describe(), t.describe()))
                        .with_label(Label::primary(b.span, format!("this is {}", t.describe())))
                        .with_help("try `within -limit ..= limit`"),
                );
            }
        }
    }
}

fn check_fn(c: &mut Checker<'_>, f: &FnDecl) {
    for p in &f.params {
        let t = c.type_of_annotation(&p.ty);
        c.locals.insert(p.name.name.clone(), t);
    }
    let ret = c.type_of_annotation(&f.ret);
    let body = c.expr(&f.body);
    if !compatible(&ret, &body) {
        c.diagnostics.push(
            Diagnostic::error(Code::FieldDimension, format!("`{}` returns {}, but its body is {}", f.name.name, ret.describe(), body.describe()))
                .with_label(Label::primary(f.body.span, format!("this is {}", body.describe())))
                .with_label(Label::secondary(f.ret.span(), format!("declared as {}", ret.describe()))),
        );
    }
}
