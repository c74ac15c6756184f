//! From pest's parse tree of one item to the typed syntax tree.
//!
//! The grammar leaves expressions flat (`operand (infix operand)*`); [`fold_expr`] applies
//! precedence with an explicit operator stack, so a long chain such as `1+1+…+1` costs no
//! native stack. Every node records its depth, counted through brackets, calls and records,
//! and a tree deeper than [`MAX_EXPR_DEPTH`] is replaced by an error node, which bounds the
//! recursion of every later pass. Temporal formulas are bounded the same way: a formula with
//! more than [`MAX_EXPR_DEPTH`] temporal operators or `then` steps becomes an error node.

use pest::Parser;
use pest::error::{ErrorVariant, InputLocation};
use pest::iterators::Pair;

use super::ast::*;
use super::expected::describe_rule;
use crate::diagnostics::{Code, Diagnostic, Label};

#[derive(pest_derive::Parser)]
#[grammar = "syntax/grammar.pest"]
pub struct BasinParser;

/// The deepest expression tree accepted; deeper ones get `E0002`.
pub const MAX_EXPR_DEPTH: u32 = 256;

/// The result of parsing one item: a tree when the syntax was valid, and diagnostics with
/// spans relative to the item.
#[derive(Clone, Debug, PartialEq)]
pub struct ParsedItem {
    pub item: Option<Item>,
    pub diagnostics: Vec<Diagnostic>,
}

/// Parses the text of one top-level item (as cut by [`super::split`]).
pub fn parse_item(text: &str, too_deep_at: Option<u32>) -> ParsedItem {
    if let Some(at) = too_deep_at {
        let d = Diagnostic::error(Code::TooDeep, format!("brackets nested more than {} levels deep", super::split::MAX_NESTING))
            .with_label(Label::primary(Span::new(at as usize, at as usize + 1), "this bracket is too deep"))
            .with_help("try naming the inner parts with `let` declarations");
        return ParsedItem { item: None, diagnostics: vec![d] };
    }
    match BasinParser::parse(Rule::item, text) {
        Ok(mut pairs) => {
            let mut b = Builder { diagnostics: Vec::new(), deepest: 0 };
            let item_pair = pairs.next().expect("the item rule matched");
            let inner = item_pair.children().find(|p| p.as_rule() != Rule::EOI).expect("an item has a declaration");
            let item = b.item(inner);
            ParsedItem { item: Some(item), diagnostics: b.diagnostics }
        }
        Err(e) => ParsedItem { item: None, diagnostics: vec![syntax_error(text, e)] },
    }
}

/// Turns pest's error into a diagnostic that names what was expected in plain words.
fn syntax_error(text: &str, e: pest::error::Error<Rule>) -> Diagnostic {
    let pos = match e.location {
        InputLocation::Pos(p) => p,
        InputLocation::Span((s, _)) => s,
    };
    let mut expected: Vec<&'static str> = match &e.variant {
        ErrorVariant::ParsingError { positives, .. } => positives.iter().filter_map(|r| describe_rule(*r)).collect(),
        ErrorVariant::CustomError { .. } => Vec::new(),
    };
    // After a complete value, pest lists every operator that could continue it; one
    // phrase reads better than eight.
    let continuation = ["`.`, `(` or `[` after a value", "`and` or `or`", "`|` between choices", "a comparison such as `<=`", "a range such as `1 m ..= 2 m`", "an operator such as `+` or `*`"];
    if expected.iter().filter(|e| continuation.contains(e)).count() >= 3 {
        expected.retain(|e| !continuation.contains(e) && !e.starts_with("a unit"));
        expected.push("an operator");
    }
    expected.sort_unstable();
    expected.dedup();
    if let Some(quote) = unterminated_string(text) {
        return Diagnostic::error(Code::Syntax, "unterminated string")
            .with_label(Label::primary(Span::new(quote, quote + 1), "this string is not closed on its line"))
            .with_help("try closing the string with `\"` on the same line");
    }
    if let Some((open, close)) = unclosed_bracket(text) {
        let pos = pos.min(text.len());
        return Diagnostic::error(Code::Syntax, format!("unclosed `{}`", &text[open..open + 1]))
            .with_label(Label::primary(Span::new(open, open + 1), "opened here"))
            .with_label(Label::secondary(Span::new(pos, pos), format!("expected `{close}` by here")))
            .with_help(format!("try adding `{close}`"));
    }
    let keyword = keyword_at(text, pos);
    let found = match keyword {
        Some(word) => format!("the keyword `{word}`"),
        None => describe_found(text, pos),
    };
    let message = if expected.is_empty() {
        format!("unexpected {found}")
    } else {
        format!("expected {}, found {found}", join_or(&expected))
    };
    let len = match keyword {
        Some(word) => word.len(),
        None => text[pos..].chars().next().map_or(0, |c| if c == '\n' || c == '\r' { 0 } else { c.len_utf8() }),
    };
    let (label_span, label) = if pos >= text.len() {
        (Span::new(pos, pos), "the declaration ends here".to_string())
    } else {
        let label = if keyword.is_some() { "a keyword, not a name".to_string() } else { format!("unexpected {found}") };
        (Span::new(pos, pos + len.max(1)), label)
    };
    let mut d = Diagnostic::error(Code::Syntax, message).with_label(Label::primary(label_span, label));
    let help = match keyword {
        Some(word) if expected.contains(&"a name") => Some(format!("try another name: `{word}` is a keyword")),
        _ => syntax_help(text, pos, &expected),
    };
    if let Some(help) = help {
        d = d.with_help(help);
    }
    d
}

/// Finds the keyword of the grammar that starts at `pos`, if any.
fn keyword_at(text: &str, pos: usize) -> Option<&str> {
    let rest = text.get(pos..)?;
    let word_len = rest.find(|c: char| !(c.is_alphanumeric() || c == '_')).unwrap_or(rest.len());
    let word = &rest[..word_len];
    let matched = BasinParser::parse(Rule::keyword, word).ok()?.next()?;
    (!word.is_empty() && matched.as_str() == word).then_some(word)
}

/// Finds the first `"` whose string is not closed before the end of its line, skipping
/// comments.
fn unterminated_string(text: &str) -> Option<usize> {
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => loop {
                match chars.next() {
                    Some((_, '\\')) => {
                        if chars.peek().is_some_and(|&(_, d)| d != '\n') {
                            chars.next();
                        }
                    }
                    Some((_, '"')) => break,
                    Some((_, '\n')) | None => return Some(i),
                    Some(_) => {}
                }
            },
            '/' if chars.peek().map(|p| p.1) == Some('/') => {
                for (_, d) in chars.by_ref() {
                    if d == '\n' {
                        break;
                    }
                }
            }
            _ => {}
        }
    }
    None
}

/// The first opening bracket left unclosed at the end of `text`, with its closing partner;
/// strings and comments are skipped.
fn unclosed_bracket(text: &str) -> Option<(usize, char)> {
    let mut stack: Vec<(usize, char)> = Vec::new();
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => {
                while let Some((_, d)) = chars.next() {
                    if d == '\\' {
                        chars.next();
                    } else if d == '"' || d == '\n' {
                        break;
                    }
                }
            }
            '/' if chars.peek().map(|p| p.1) == Some('/') => {
                for (_, d) in chars.by_ref() {
                    if d == '\n' {
                        break;
                    }
                }
            }
            '(' => stack.push((i, ')')),
            '[' => stack.push((i, ']')),
            '{' => stack.push((i, '}')),
            ')' | ']' | '}' => {
                // A stray closer means the brackets do not simply nest; leave it to pest.
                if stack.pop().map(|(_, close)| close) != Some(c) {
                    return None;
                }
            }
            _ => {}
        }
    }
    stack.first().copied()
}

fn syntax_help(text: &str, pos: usize, expected: &[&str]) -> Option<String> {
    let rest = &text[pos.min(text.len())..];
    if rest.starts_with('"') && !rest[1..].lines().next().unwrap_or("").contains('"') {
        return Some("try closing the string with `\"` on the same line".into());
    }
    if expected.iter().any(|e| e.contains("`}`")) {
        return Some("try closing the block with `}`".into());
    }
    if expected.iter().any(|e| e.contains("`)`")) {
        return Some("try closing the parenthesis with `)`".into());
    }
    if expected.iter().any(|e| e.starts_with("a unit")) {
        return Some("try a unit such as `m`, `m/s` or `N*m`, written without spaces around `*` and `/`".into());
    }
    None
}

fn describe_found(text: &str, pos: usize) -> String {
    let rest = &text[pos.min(text.len())..];
    let Some(c) = rest.chars().next() else {
        return "the end of the declaration".into();
    };
    if c == '\n' || c == '\r' {
        return "the end of the line".into();
    }
    if c.is_alphanumeric() || c == '_' {
        let word: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_' || *c == '.').take(40).collect();
        return format!("`{word}`");
    }
    format!("`{c}`")
}

fn join_or(items: &[&str]) -> String {
    match items {
        [] => String::new(),
        [one] => one.to_string(),
        [rest @ .., last] => format!("{} or {last}", rest.join(", ")),
    }
}

/// Child pairs without the keyword tokens (`k_then`, `k_within`, …), which only mark word
/// boundaries in the grammar.
trait Children<'i> {
    fn children(self) -> std::iter::Filter<pest::iterators::Pairs<'i, Rule>, fn(&Pair<'i, Rule>) -> bool>;
}

impl<'i> Children<'i> for Pair<'i, Rule> {
    fn children(self) -> std::iter::Filter<pest::iterators::Pairs<'i, Rule>, fn(&Pair<'i, Rule>) -> bool> {
        fn keep(p: &Pair<'_, Rule>) -> bool {
            !is_keyword_token(p.as_rule())
        }
        self.into_inner().filter(keep as fn(&Pair<'i, Rule>) -> bool)
    }
}

fn is_keyword_token(rule: Rule) -> bool {
    matches!(
        rule,
        Rule::k_then
            | Rule::k_reach
            | Rule::k_within
            | Rule::k_finish_by
            | Rule::k_minimize
            | Rule::k_maximize
            | Rule::k_until
            | Rule::k_always
            | Rule::k_eventually
            | Rule::k_hard
            | Rule::k_soft
            | Rule::k_weight
            | Rule::k_from
            | Rule::k_at
            | Rule::k_add
            | Rule::k_obstacle
            | Rule::k_rerun
            | Rule::k_use
    )
}

fn span_of(pair: &Pair<'_, Rule>) -> Span {
    let s = pair.as_span();
    Span::new(s.start(), s.end())
}

/// Computes the span of `pair` without the whitespace and comments at its end. pest skips
/// them before trying an optional last part such as `hard` or `= default`, and keeps them
/// in the span when that part is absent, which would stretch labels to the next line.
fn trimmed_span(pair: &Pair<'_, Rule>) -> Span {
    let span = pair.as_span();
    let mut text = span.as_str();
    loop {
        let trimmed = text.trim_end();
        let line_start = trimmed.rfind('\n').map_or(0, |n| n + 1);
        match comment_start(&trimmed[line_start..]) {
            Some(at) => text = &trimmed[..line_start + at],
            None => {
                text = trimmed;
                break;
            }
        }
    }
    Span::new(span.start(), span.start() + text.len())
}

/// Finds where a `//` comment starts in one line, skipping strings.
fn comment_start(line: &str) -> Option<usize> {
    let mut in_string = false;
    let mut chars = line.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' if in_string => {
                chars.next();
            }
            '"' => in_string = !in_string,
            '/' if !in_string && chars.peek().map(|p| p.1) == Some('/') => return Some(i),
            _ => {}
        }
    }
    None
}

struct Builder {
    diagnostics: Vec<Diagnostic>,
    /// The depth of the deepest expression finished since [`Builder::measured`] last reset
    /// it.
    deepest: u32,
}

/// One entry on the operator stack of [`Builder::fold_expr`].
enum StackOp {
    Prefix(UnOp, Span),
    Infix(BinOp),
}

impl Builder {
    fn item(&mut self, pair: Pair<'_, Rule>) -> Item {
        match pair.as_rule() {
            Rule::use_decl => self.use_decl(pair),
            Rule::context_decl => self.context_decl(pair),
            Rule::agent_decl => self.instance(pair, ItemKind::Agent),
            Rule::design_decl => self.instance(pair, ItemKind::Design),
            Rule::site_decl => Item::Site(self.value_decl(pair)),
            Rule::let_decl => Item::Let(self.value_decl(pair)),
            Rule::goal_decl => Item::Goal(self.clause_block(pair)),
            Rule::constraint_decl => Item::Constraint(self.clause_block(pair)),
            Rule::world_decl => self.world_decl(pair),
            Rule::plan_decl => self.plan_decl(pair),
            Rule::refine_decl => self.refine_decl(pair),
            Rule::model_decl => self.model_decl(pair),
            Rule::fn_decl => self.fn_decl(pair),
            other => unreachable!("the item rule has no alternative {other:?}"),
        }
    }

    fn ident(&self, pair: Pair<'_, Rule>) -> Ident {
        Ident { name: pair.as_str().to_string(), span: span_of(&pair) }
    }

    fn path(&self, pair: Pair<'_, Rule>) -> Path {
        let span = span_of(&pair);
        Path { segments: pair.children().map(|p| self.ident(p)).collect(), span }
    }

    /// `use std.robots.diff_drive` or `use std.materials.{a, b}`
    fn use_decl(&mut self, pair: Pair<'_, Rule>) -> Item {
        let mut inner = pair.children();
        let path = self.path(inner.next().expect("use has a path"));
        let group = inner.next().map(|g| g.children().map(|p| self.ident(p)).collect());
        Item::Use(UseDecl { path, group })
    }

    /// `context NAME = LOADER(ARGS) { FIELDS }`
    fn context_decl(&mut self, pair: Pair<'_, Rule>) -> Item {
        let mut inner = pair.children();
        let name = self.ident(inner.next().expect("context name"));
        let loader = self.ident(inner.next().expect("context loader"));
        let args = self.call_args(inner.next().expect("context arguments"));
        let fields = inner.next().map(|p| self.field_block(p)).unwrap_or_default();
        Item::Context(ContextDecl { name, loader, args, fields })
    }

    /// `agent NAME = MODEL { FIELDS }` and `design NAME = MODEL { FIELDS }`
    fn instance(&mut self, pair: Pair<'_, Rule>, kind: ItemKind) -> Item {
        let mut inner = pair.children();
        let name = self.ident(inner.next().expect("instance name"));
        let model = self.path(inner.next().expect("instance model"));
        let fields = inner.next().map(|p| self.field_block(p)).unwrap_or_default();
        Item::Instance(InstanceDecl { kind, name, model, fields })
    }

    /// `site NAME = EXPR` and `let NAME = EXPR`
    fn value_decl(&mut self, pair: Pair<'_, Rule>) -> ValueDecl {
        let mut inner = pair.children();
        let name = self.ident(inner.next().expect("declared name"));
        let value = self.expr(inner.next().expect("declared value"));
        ValueDecl { name, value }
    }

    /// `goal NAME { CLAUSES }` and `constraint NAME { CLAUSES }`
    fn clause_block(&mut self, pair: Pair<'_, Rule>) -> ClauseBlock {
        let mut inner = pair.children();
        let name = self.ident(inner.next().expect("block name"));
        let clauses = inner.map(|c| self.clause(c)).collect();
        ClauseBlock { name, clauses }
    }

    fn clause(&mut self, pair: Pair<'_, Rule>) -> Clause {
        let span = trimmed_span(&pair);
        let mut inner = pair.children();
        let body = inner.next().expect("clause body");
        let kind = match body.as_rule() {
            Rule::reach => {
                let mut parts = body.children().peekable();
                let then = parts.peek().is_some_and(|p| p.as_rule() == Rule::then_kw);
                if then {
                    parts.next();
                }
                let what = self.expr(parts.next().expect("reach subject"));
                let target = self.expr(parts.next().expect("reach target"));
                let tolerance = parts.next().map(|p| self.expr(p));
                ClauseKind::Reach { then, what, target, tolerance }
            }
            Rule::finish_by => ClauseKind::FinishBy(self.expr(body.children().next().expect("deadline"))),
            Rule::minimize => ClauseKind::Minimize(self.expr(body.children().next().expect("objective"))),
            Rule::maximize => ClauseKind::Maximize(self.expr(body.children().next().expect("objective"))),
            Rule::formula => ClauseKind::Formula(self.formula(body)),
            other => unreachable!("clause body {other:?}"),
        };
        let strength = inner.next().map(|s| {
            let s = s.children().next().expect("hard or soft");
            let span = span_of(&s);
            match s.as_rule() {
                Rule::hard => Strength::Hard(span),
                Rule::soft => Strength::Soft { weight: s.children().next().map(|w| self.expr(w)), span },
                other => unreachable!("strength {other:?}"),
            }
        });
        Clause { kind, strength, span }
    }

    /// `[then] A [until B] (then C [until D])*`
    fn formula(&mut self, pair: Pair<'_, Rule>) -> Formula {
        let span = span_of(&pair);
        let mut parts: Vec<Formula> = Vec::new();
        for p in pair.children() {
            if p.as_rule() == Rule::until_f {
                parts.push(self.until(p));
            }
        }
        if parts.len() > MAX_EXPR_DEPTH as usize {
            self.formula_too_deep(span, "`then` steps");
            return Formula::Atom(Expr { kind: ExprKind::Error, span });
        }
        // `A then B then C` nests to the right: A, then (B, then C).
        let mut iter = parts.into_iter().rev();
        let mut acc = iter.next().expect("a formula has a part");
        for first in iter {
            let span = first.span().to(acc.span());
            acc = Formula::Then { first: Box::new(first), next: Box::new(acc), span };
        }
        acc
    }

    fn until(&mut self, pair: Pair<'_, Rule>) -> Formula {
        let mut inner = pair.children();
        let lhs = self.temporal(inner.next().expect("until lhs"));
        match inner.next() {
            Some(rhs) => {
                let rhs = self.temporal(rhs);
                let span = lhs.span().to(rhs.span());
                Formula::Until { lhs: Box::new(lhs), rhs: Box::new(rhs), span }
            }
            None => lhs,
        }
    }

    /// `(always [window] | eventually [window] | window)* EXPR`
    fn temporal(&mut self, pair: Pair<'_, Rule>) -> Formula {
        let mut ops: Vec<(Rule, Option<Window>, Span)> = Vec::new();
        let mut body = None;
        for p in pair.children() {
            match p.as_rule() {
                Rule::temporal_op => {
                    let op = p.children().next().expect("temporal operator");
                    let span = span_of(&op);
                    let rule = op.as_rule();
                    let window = if rule == Rule::window {
                        Some(self.window(op))
                    } else {
                        op.children().next().map(|w| self.window(w))
                    };
                    ops.push((rule, window, span));
                }
                Rule::expr => body = Some(Formula::Atom(self.expr(p))),
                other => unreachable!("temporal part {other:?}"),
            }
        }
        let mut acc = body.expect("a temporal formula has a body");
        if ops.len() > MAX_EXPR_DEPTH as usize {
            let span = ops[0].2.to(acc.span());
            self.formula_too_deep(span, "temporal operators");
            return Formula::Atom(Expr { kind: ExprKind::Error, span });
        }
        for (rule, window, span) in ops.into_iter().rev() {
            let span = span.to(acc.span());
            acc = match rule {
                Rule::always => Formula::Always { window, body: Box::new(acc), span },
                // A bare `within [a, b] P` means P holds at some time in the window.
                Rule::eventually | Rule::window => Formula::Eventually { window, body: Box::new(acc), span },
                other => unreachable!("temporal operator {other:?}"),
            };
        }
        acc
    }

    /// Reports a formula nested past [`MAX_EXPR_DEPTH`], once per item. Nested formulas are
    /// built, compared and dropped by recursion, like expressions.
    fn formula_too_deep(&mut self, span: Span, what: &str) {
        if !self.diagnostics.iter().any(|d| d.code == Code::TooDeep) {
            self.diagnostics.push(
                Diagnostic::error(Code::TooDeep, format!("formula with more than {MAX_EXPR_DEPTH} {what}"))
                    .with_label(Label::primary(span, "this formula is too deep"))
                    .with_help("try splitting the formula into several clauses"),
            );
        }
    }

    fn window(&mut self, pair: Pair<'_, Rule>) -> Window {
        let span = span_of(&pair);
        let mut inner = pair.children();
        let start = self.expr(inner.next().expect("window start"));
        let end = self.expr(inner.next().expect("window end"));
        Window { start, end, span }
    }

    /// `world NAME = KIND { [from EXPR] FIELDS }`
    fn world_decl(&mut self, pair: Pair<'_, Rule>) -> Item {
        let mut inner = pair.children();
        let name = self.ident(inner.next().expect("world name"));
        let kind = self.ident(inner.next().expect("world kind"));
        let mut from = None;
        let mut fields = Vec::new();
        for p in inner {
            match p.as_rule() {
                Rule::world_from => from = Some(self.expr(p.children().next().expect("world source"))),
                Rule::field => fields.push(self.field(p)),
                other => unreachable!("world part {other:?}"),
            }
        }
        Item::World(WorldDecl { name, kind, from, fields })
    }

    /// `plan { FIELDS }`
    fn plan_decl(&mut self, pair: Pair<'_, Rule>) -> Item {
        let span = span_of(&pair);
        let keyword = Span { start: span.start, end: span.start + 4 };
        let block = pair.children().next().expect("plan block");
        Item::Plan(PlanDecl { keyword, fields: self.field_block(block) })
    }

    /// `refine "NAME" { STEPS }`
    fn refine_decl(&mut self, pair: Pair<'_, Rule>) -> Item {
        let mut inner = pair.children();
        let name_pair = inner.next().expect("refine name");
        let name_span = span_of(&name_pair);
        let name = unescape(name_pair.as_str());
        let steps = inner.map(|p| self.refine_step(p)).collect();
        Item::Refine(RefineDecl { name, name_span, steps })
    }

    fn refine_step(&mut self, pair: Pair<'_, Rule>) -> RefineStep {
        let span = trimmed_span(&pair);
        let inner = pair.children().next().expect("refine step");
        if inner.as_rule() == Rule::timed {
            let mut parts = inner.children();
            let at = self.expr(parts.next().expect("refine time"));
            let action = self.refine_action(parts.next().expect("timed action"));
            RefineStep { at: Some(at), action, span }
        } else {
            RefineStep { at: None, action: self.refine_action(inner), span }
        }
    }

    fn refine_action(&mut self, pair: Pair<'_, Rule>) -> RefineAction {
        match pair.as_rule() {
            Rule::add_obstacle => {
                let mut parts = pair.children();
                let shape = self.expr(parts.next().expect("obstacle shape"));
                let at = self.expr(parts.next().expect("obstacle position"));
                RefineAction::AddObstacle { shape, at }
            }
            Rule::rerun => RefineAction::Rerun(self.ident(pair.children().next().expect("rerun target"))),
            Rule::assign => {
                let mut parts = pair.children();
                let target = self.path(parts.next().expect("assign target"));
                let op = match parts.next().expect("assign operator").as_str() {
                    "*=" => AssignOp::Mul,
                    "/=" => AssignOp::Div,
                    "+=" => AssignOp::Add,
                    "-=" => AssignOp::Sub,
                    _ => AssignOp::Set,
                };
                let value = self.expr(parts.next().expect("assigned value"));
                RefineAction::Assign { target, op, value }
            }
            other => unreachable!("refine action {other:?}"),
        }
    }

    /// `model NAME { (state|action|param|signal) NAME: UNIT [= EXPR] [within EXPR] }`
    fn model_decl(&mut self, pair: Pair<'_, Rule>) -> Item {
        let mut inner = pair.children();
        let name = self.ident(inner.next().expect("model name"));
        let members = inner.map(|m| self.member(m)).collect();
        Item::Model(ModelDecl { name, members })
    }

    fn member(&mut self, pair: Pair<'_, Rule>) -> Member {
        let span = trimmed_span(&pair);
        let mut inner = pair.children();
        let kind = match inner.next().expect("member kind").as_str() {
            "state" => MemberKind::State,
            "action" => MemberKind::Action,
            "param" => MemberKind::Param,
            _ => MemberKind::Signal,
        };
        let name = self.ident(inner.next().expect("member name"));
        let ty = self.type_expr(inner.next().expect("member type"));
        let mut default = None;
        let mut bounds = None;
        for p in inner {
            let rule = p.as_rule();
            let e = self.expr(p.children().next().expect("member expression"));
            if rule == Rule::member_default {
                default = Some(e);
            } else {
                bounds = Some(e);
            }
        }
        Member { kind, name, ty, default, bounds, span }
    }

    /// `fn NAME(PARAM: UNIT, …) -> UNIT = EXPR`
    fn fn_decl(&mut self, pair: Pair<'_, Rule>) -> Item {
        let mut inner = pair.children();
        let name = self.ident(inner.next().expect("function name"));
        let mut params = Vec::new();
        let mut ret = None;
        let mut body = None;
        for p in inner {
            match p.as_rule() {
                Rule::fn_param => {
                    let mut parts = p.children();
                    let name = self.ident(parts.next().expect("parameter name"));
                    let ty = self.type_expr(parts.next().expect("parameter type"));
                    params.push(FnParam { name, ty });
                }
                Rule::unit_type => ret = Some(self.type_expr(p)),
                Rule::expr => body = Some(self.expr(p)),
                other => unreachable!("function part {other:?}"),
            }
        }
        Item::Fn(FnDecl { name, params, ret: ret.expect("return unit"), body: body.expect("function body") })
    }

    fn field_block(&mut self, pair: Pair<'_, Rule>) -> Vec<Field> {
        pair.children().map(|f| self.field(f)).collect()
    }

    /// `NAME: EXPR` or `NAME: STAGE then STAGE …`
    fn field(&mut self, pair: Pair<'_, Rule>) -> Field {
        let span = trimmed_span(&pair);
        let mut inner = pair.children();
        let name = self.ident(inner.next().expect("field name"));
        let mut parts = inner.next().expect("field value").children();
        let first = self.expr(parts.next().expect("field value expression"));
        let stages: Vec<Stage> = parts.map(|st| self.stage(st)).collect();
        let value = if stages.is_empty() { FieldValue::Expr(first) } else { self.stages(first, stages) };
        Field { name, value, span }
    }

    /// `FIRST then STAGE …`: the first stage was read as an expression and must be a name or
    /// a record. Another expression is reported and left out, so the stages after it are
    /// still checked.
    fn stages(&mut self, first: Expr, rest: Vec<Stage>) -> FieldValue {
        let span = first.span;
        let head = match first.kind {
            ExprKind::Name(name) => Stage { name, fields: Vec::new(), span },
            ExprKind::Record { name, fields } => Stage { name, fields, span },
            _ => {
                self.diagnostics.push(
                    Diagnostic::error(Code::Syntax, "expected a solver stage before `then`")
                        .with_label(Label::primary(span, "not a solver stage"))
                        .with_help("try a stage such as `mppi { samples: 1024 }`"),
                );
                return FieldValue::Stages(rest);
            }
        };
        FieldValue::Stages(std::iter::once(head).chain(rest).collect())
    }

    /// `NAME [{ FIELDS }]`
    fn stage(&mut self, pair: Pair<'_, Rule>) -> Stage {
        let span = trimmed_span(&pair);
        let mut inner = pair.children();
        let name = self.ident(inner.next().expect("stage name"));
        let fields = inner.next().map(|b| self.field_block(b)).unwrap_or_default();
        Stage { name, fields, span }
    }

    fn call_args(&mut self, pair: Pair<'_, Rule>) -> Vec<Expr> {
        pair.children().map(|e| self.expr(e)).collect()
    }

    /// `UNIT`, `1`, `NAME` or `(TYPE, TYPE, …)`
    fn type_expr(&mut self, pair: Pair<'_, Rule>) -> TypeExpr {
        let inner = pair.children().next().expect("type body");
        let span = span_of(&inner);
        if inner.as_rule() == Rule::tuple_type {
            TypeExpr::Tuple(inner.children().map(|p| self.type_expr(p)).collect(), span)
        } else {
            let mut factors = Vec::new();
            let mut sign = 1;
            collect_unit(inner, &mut factors, &mut sign);
            TypeExpr::Unit(UnitExpr { factors, span })
        }
    }

    /// Folds `operand (infix operand)*` by precedence with an explicit stack.
    fn expr(&mut self, pair: Pair<'_, Rule>) -> Expr {
        let mut operands: Vec<(Expr, u32)> = Vec::new();
        let mut ops: Vec<StackOp> = Vec::new();

        for p in pair.children() {
            if p.as_rule() == Rule::operand {
                for part in p.children() {
                    if part.as_rule() == Rule::prefix {
                        let op_pair = part.children().next().expect("prefix operator");
                        let op = if op_pair.as_rule() == Rule::neg { UnOp::Neg } else { UnOp::Not };
                        ops.push(StackOp::Prefix(op, span_of(&op_pair)));
                    } else {
                        let e = self.postfix_expr(part);
                        operands.push(e);
                    }
                }
            } else {
                let op = binop(p.as_rule());
                while let Some(top) = ops.last() {
                    let pop = match top {
                        StackOp::Prefix(u, _) => u.precedence() >= op.precedence(),
                        StackOp::Infix(b) => {
                            b.precedence() > op.precedence() || (b.precedence() == op.precedence() && !op.right_associative())
                        }
                    };
                    if !pop {
                        break;
                    }
                    let top = ops.pop().expect("checked non-empty");
                    self.reduce(top, &mut operands);
                }
                ops.push(StackOp::Infix(op));
            }
        }
        while let Some(top) = ops.pop() {
            self.reduce(top, &mut operands);
        }
        let (e, depth) = operands.pop().expect("an expression has an operand");
        self.deepest = self.deepest.max(depth);
        e
    }

    /// Runs `build` and returns its result with the depth of the deepest expression it
    /// built, so that a bracket, call or record counts the depth of its contents.
    fn measured<T>(&mut self, build: impl FnOnce(&mut Self) -> T) -> (T, u32) {
        let outer = std::mem::replace(&mut self.deepest, 0);
        let value = build(self);
        let inner = self.deepest;
        self.deepest = outer.max(inner);
        (value, inner)
    }

    fn reduce(&mut self, op: StackOp, operands: &mut Vec<(Expr, u32)>) {
        match op {
            StackOp::Prefix(op, span) => {
                let (operand, depth) = operands.pop().expect("prefix operand");
                let span = span.to(operand.span);
                let e = Expr { kind: ExprKind::Unary { op, operand: Box::new(operand) }, span };
                operands.push(self.bounded(e, depth + 1));
            }
            StackOp::Infix(op) => {
                let (rhs, rd) = operands.pop().expect("infix rhs");
                let (lhs, ld) = operands.pop().expect("infix lhs");
                let span = lhs.span.to(rhs.span);
                let e = Expr { kind: ExprKind::Binary { op, lhs: Box::new(lhs), rhs: Box::new(rhs) }, span };
                operands.push(self.bounded(e, ld.max(rd) + 1));
            }
        }
    }

    /// Replaces a node deeper than [`MAX_EXPR_DEPTH`] with an error node, reporting it once
    /// per item.
    fn bounded(&mut self, e: Expr, depth: u32) -> (Expr, u32) {
        if depth <= MAX_EXPR_DEPTH {
            return (e, depth);
        }
        if !self.diagnostics.iter().any(|d| d.code == Code::TooDeep) {
            self.diagnostics.push(
                Diagnostic::error(Code::TooDeep, format!("expression nested more than {MAX_EXPR_DEPTH} operators deep"))
                    .with_label(Label::primary(e.span, "this expression is too deep"))
                    .with_help("try naming parts of the expression with `let` declarations"),
            );
        }
        let span = e.span;
        drop_iteratively(e);
        (Expr { kind: ExprKind::Error, span }, 1)
    }

    fn postfix_expr(&mut self, pair: Pair<'_, Rule>) -> (Expr, u32) {
        let mut inner = pair.children();
        let (mut e, mut depth) = self.primary(inner.next().expect("primary"));
        for post in inner {
            let post = post.children().next().expect("postfix body");
            let span = e.span.to(span_of(&post));
            let (kind, child_depth) = match post.as_rule() {
                Rule::field_access => {
                    let field = self.ident(post.children().next().expect("field name"));
                    (ExprKind::Field { base: Box::new(e), field }, depth)
                }
                Rule::call_args => {
                    let (args, args_depth) = self.measured(|b| b.call_args(post));
                    (ExprKind::Call { callee: Box::new(e), args }, depth.max(args_depth))
                }
                Rule::index => {
                    let (index, index_depth) = self.measured(|b| b.expr(post.children().next().expect("index expression")));
                    (ExprKind::Index { base: Box::new(e), index: Box::new(index) }, depth.max(index_depth))
                }
                other => unreachable!("postfix {other:?}"),
            };
            (e, depth) = self.bounded(Expr { kind, span }, child_depth + 1);
        }
        (e, depth)
    }

    fn primary(&mut self, pair: Pair<'_, Rule>) -> (Expr, u32) {
        let inner = pair.children().next().expect("primary body");
        let span = span_of(&inner);
        let (kind, children_depth) = self.measured(|b| b.primary_kind(inner));
        self.bounded(Expr { kind, span }, children_depth + 1)
    }

    fn primary_kind(&mut self, inner: Pair<'_, Rule>) -> ExprKind {
        let span = span_of(&inner);
        match inner.as_rule() {
            Rule::quantity => {
                let mut parts = inner.children();
                let number = parts.next().expect("number");
                let text = number.as_str().to_string();
                let value = text.replace('_', "").parse::<f64>().unwrap_or(f64::NAN);
                let unit = parts.next().map(|u| {
                    let span = span_of(&u);
                    let mut factors = Vec::new();
                    let mut sign = 1;
                    collect_unit(u, &mut factors, &mut sign);
                    UnitExpr { factors, span }
                });
                if !value.is_finite() {
                    self.diagnostics.push(
                        Diagnostic::error(Code::InvalidNumber, format!("number `{text}` is out of range"))
                            .with_label(Label::primary(span, "this number does not fit in a 64-bit float"))
                            .with_help("try a smaller exponent or a larger unit"),
                    );
                }
                ExprKind::Quantity { value, text, unit }
            }
            Rule::string => ExprKind::Str(unescape(inner.as_str())),
            Rule::boolean => ExprKind::Bool(inner.as_str() == "true"),
            Rule::ident => ExprKind::Name(self.ident(inner)),
            Rule::paren => {
                let mut parts: Vec<Expr> = inner.children().map(|e| self.expr(e)).collect();
                match parts.pop() {
                    Some(only) if parts.is_empty() => ExprKind::Paren(Box::new(only)),
                    Some(last) => {
                        parts.push(last);
                        ExprKind::Tuple(parts)
                    }
                    None => unreachable!("the paren rule holds an expression"),
                }
            }
            Rule::list => ExprKind::List(inner.children().map(|e| self.expr(e)).collect()),
            Rule::record => {
                let mut parts = inner.children();
                let name = self.ident(parts.next().expect("record name"));
                let fields = self.field_block(parts.next().expect("record fields"));
                ExprKind::Record { name, fields }
            }
            other => unreachable!("primary {other:?}"),
        }
    }
}

/// Frees a deep tree without recursing once per level.
fn drop_iteratively(e: Expr) {
    let mut stack = vec![e];
    while let Some(mut e) = stack.pop() {
        match std::mem::replace(&mut e.kind, ExprKind::Error) {
            ExprKind::Binary { lhs, rhs, .. } => {
                stack.push(*lhs);
                stack.push(*rhs);
            }
            ExprKind::Unary { operand, .. } => stack.push(*operand),
            ExprKind::Field { base, .. } => stack.push(*base),
            ExprKind::Call { callee, args } => {
                stack.push(*callee);
                stack.extend(args);
            }
            ExprKind::Index { base, index } => {
                stack.push(*base);
                stack.push(*index);
            }
            ExprKind::Paren(inner) => stack.push(*inner),
            ExprKind::Tuple(es) | ExprKind::List(es) => stack.extend(es),
            _ => {}
        }
    }
}

fn collect_unit(pair: Pair<'_, Rule>, factors: &mut Vec<UnitFactor>, sign: &mut i32) {
    for p in pair.children() {
        match p.as_rule() {
            Rule::unit => collect_unit(p, factors, sign),
            Rule::unit_op => *sign = if p.as_str() == "/" { -1 } else { 1 },
            Rule::unit_pow => {
                let span = span_of(&p);
                let mut parts = p.children();
                let name = parts.next().expect("unit name").as_str().to_string();
                let power = parts.next().map_or(1, |n| n.as_str().parse::<i32>().unwrap_or(i32::MAX).clamp(-99, 99));
                factors.push(UnitFactor { name, power: power * *sign, span });
            }
            _ => {}
        }
    }
}

fn binop(rule: Rule) -> BinOp {
    match rule {
        Rule::or => BinOp::Or,
        Rule::and => BinOp::And,
        Rule::le => BinOp::Le,
        Rule::ge => BinOp::Ge,
        Rule::ne => BinOp::Ne,
        Rule::eq => BinOp::Eq,
        Rule::lt => BinOp::Lt,
        Rule::gt => BinOp::Gt,
        Rule::range_incl => BinOp::RangeIncl,
        Rule::range => BinOp::Range,
        Rule::choice => BinOp::Choice,
        Rule::add => BinOp::Add,
        Rule::sub => BinOp::Sub,
        Rule::mul => BinOp::Mul,
        Rule::div => BinOp::Div,
        Rule::pow => BinOp::Pow,
        other => unreachable!("infix operator {other:?}"),
    }
}

/// Decodes the escapes of a quoted string literal (quotes included in `raw`).
pub fn unescape(raw: &str) -> String {
    let body = raw.strip_prefix('"').and_then(|s| s.strip_suffix('"')).unwrap_or(raw);
    let mut out = String::with_capacity(body.len());
    let mut chars = body.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some(other) => out.push(other),
            None => {}
        }
    }
    out
}
