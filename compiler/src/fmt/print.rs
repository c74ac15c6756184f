//! Printing one item from its syntax tree, with the comments that sit inside it.
//!
//! The printer walks the typed tree and writes every token in source order, so the printed
//! text parses to the same tree. It changes only layout: whitespace, the optional `,` and
//! `;` between the elements of a multi-line block, and empty `{}` where the grammar makes
//! a block optional. Number literals, units, strings and the refinement name are copied
//! from the source as written.
//!
//! Comments can go only where the printed text breaks a line: after the `{` of a
//! multi-line block, between two of its elements, and before its `}`. A comment found
//! anywhere else (inside an expression, a header or a one-line item) cannot be placed, and
//! [`print_item`] returns `None` so that the caller keeps the item as written.

use crate::syntax::*;

/// The widest line, in characters, that a short block may be joined onto.
pub(super) const MAX_WIDTH: usize = 100;

const INDENT: usize = 4;

/// A comment inside an item, with its span relative to the item's text.
pub(super) struct ItemComment<'a> {
    pub span: Span,
    /// True when code precedes the comment on its line.
    pub trailing: bool,
    /// The comment without trailing whitespace.
    pub text: &'a str,
}

/// Prints `item`, whose source is `src`, in the canonical layout with `comments` placed at
/// line breaks. Returns `None` when a comment cannot be placed.
pub(super) fn print_item(src: &str, item: &Item, comments: &[ItemComment<'_>]) -> Option<String> {
    let mut printer =
        Printer { src, comments, placed: vec![false; comments.len()], out: String::new(), indent: 0, flat: false, broken: false };
    printer.item(item);
    let all_placed = printer.placed.iter().all(|&p| p);
    (all_placed && !printer.broken).then_some(printer.out)
}

/// The layout rule of a block.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Layout {
    /// One element per line: the blocks of `agent`, `design`, `goal`, `constraint`,
    /// `plan`, `refine` and `model`.
    Lines,
    /// On one line when short and free of comments: the blocks of `world` and `context`,
    /// solver stages and records.
    Joinable,
}

/// One line-sized element of a block.
enum Element<'t> {
    Field(&'t Field),
    Clause(&'t Clause),
    Member(&'t Member),
    Step(&'t RefineStep),
    /// `from EXPR` in a `world` block, with the offset of `from`.
    From(&'t Expr, usize),
}

impl Element<'_> {
    fn start(&self) -> usize {
        match self {
            Element::Field(f) => f.span.start as usize,
            Element::Clause(c) => c.span.start as usize,
            Element::Member(m) => m.span.start as usize,
            Element::Step(s) => s.span.start as usize,
            Element::From(_, keyword) => *keyword,
        }
    }

    /// Returns the end of the element's last token. The parser's spans of fields, clauses,
    /// members and steps can run on over the whitespace and comments after them, so the end
    /// is taken from the last node inside.
    fn end(&self, src: &str) -> usize {
        let end = match self {
            Element::Field(f) => field_end(src, f),
            Element::Clause(c) => clause_end(c),
            Element::Member(m) => m.bounds.as_ref().or(m.default.as_ref()).map_or(m.ty.span().end, |e| e.span.end),
            Element::Step(s) => match &s.action {
                RefineAction::AddObstacle { at, .. } => at.span.end,
                RefineAction::Rerun(name) => name.span.end,
                RefineAction::Assign { value, .. } => value.span.end,
            },
            Element::From(e, _) => e.span.end,
        };
        end as usize
    }
}

fn field_end(src: &str, f: &Field) -> u32 {
    match &f.value {
        FieldValue::Expr(e) => e.span.end,
        FieldValue::Stages(stages) => match stages.last() {
            Some(s) if stage_has_block(src, s) => s.span.end,
            Some(s) => s.name.span.end,
            None => f.name.span.end,
        },
    }
}

/// Checks whether a solver stage was written with a block, whose `}` then ends its span.
fn stage_has_block(src: &str, stage: &Stage) -> bool {
    let after_name = next_token(src, stage.name.span.end as usize);
    after_name < stage.span.end as usize && src.as_bytes()[after_name] == b'{'
}

/// Returns the offset of the first token at or after `from`, past whitespace and comments.
fn next_token(src: &str, from: usize) -> usize {
    let bytes = src.as_bytes();
    let mut i = from;
    while i < bytes.len() {
        match bytes[i] {
            b' ' | b'\t' | b'\r' | b'\n' => i += 1,
            b'/' if bytes.get(i + 1) == Some(&b'/') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            _ => return i,
        }
    }
    i
}

fn clause_end(c: &Clause) -> u32 {
    match &c.strength {
        Some(Strength::Hard(span)) => return span.end,
        Some(Strength::Soft { weight: Some(w), .. }) => return w.span.end,
        Some(Strength::Soft { weight: None, span }) => return span.start + "soft".len() as u32,
        None => {}
    }
    match &c.kind {
        ClauseKind::Reach { target, tolerance, .. } => tolerance.as_ref().unwrap_or(target).span.end,
        ClauseKind::FinishBy(e) | ClauseKind::Minimize(e) | ClauseKind::Maximize(e) => e.span.end,
        ClauseKind::Formula(f) => f.span().end,
    }
}

struct Printer<'a> {
    src: &'a str,
    comments: &'a [ItemComment<'a>],
    placed: Vec<bool>,
    out: String,
    indent: usize,
    /// Set while a block is tried on one line, so that blocks nested in it join it.
    flat: bool,
    /// Set when the source has no brace where the tree has a block.
    broken: bool,
}

impl Printer<'_> {
    fn push(&mut self, s: &str) {
        self.out.push_str(s);
    }

    /// Returns the source text of `span`, such as a string literal or a unit as written.
    fn source(&self, span: Span) -> &str {
        self.src.get(span.range()).unwrap_or_default()
    }

    fn column(&self) -> usize {
        let line_start = self.out.rfind('\n').map_or(0, |n| n + 1);
        self.out[line_start..].chars().count()
    }

    fn new_line(&mut self, blank: bool) {
        if blank {
            self.out.push('\n');
        }
        self.out.push('\n');
        self.out.extend(std::iter::repeat_n(' ', self.indent));
    }

    fn has_comments(&self, from: usize, to: usize) -> bool {
        self.comments.iter().any(|c| (from..to).contains(&(c.span.start as usize)))
    }

    /// Finds the `{` that opens a block at or after `from` and returns the offset after it.
    fn open_brace(&mut self, from: usize) -> usize {
        let bytes = self.src.as_bytes();
        let mut i = from;
        while i < bytes.len() {
            match bytes[i] {
                b'{' => return i + 1,
                b'/' if bytes.get(i + 1) == Some(&b'/') => {
                    while i < bytes.len() && bytes[i] != b'\n' {
                        i += 1;
                    }
                }
                _ => i += 1,
            }
        }
        self.broken = true;
        bytes.len()
    }

    /// Returns the offset of the `}` that ends a block whose construct ends at `end`.
    fn close_brace(&mut self, end: usize) -> usize {
        if end == 0 || self.src.as_bytes().get(end - 1) != Some(&b'}') {
            self.broken = true;
            return end;
        }
        end - 1
    }

    fn item(&mut self, item: &Item) {
        match item {
            Item::Use(u) => {
                self.push("use ");
                self.push(&u.path.dotted());
                if let Some(group) = &u.group {
                    let names: Vec<&str> = group.iter().map(|n| n.name.as_str()).collect();
                    self.push(".{");
                    self.push(&names.join(", "));
                    self.push("}");
                }
            }
            Item::Context(c) => {
                self.push("context ");
                self.push(&c.name.name);
                self.push(" = ");
                self.push(&c.loader.name);
                self.arguments(&c.args);
                if self.src.ends_with('}') {
                    let after_args = c.args.last().map_or(c.loader.span.end, |a| a.span.end) as usize;
                    let open = self.open_brace(after_args);
                    let close = self.close_brace(self.src.len());
                    self.fields_block(&c.fields, open, close, Layout::Joinable, true);
                }
            }
            Item::Instance(i) => {
                self.push(i.kind.keyword());
                self.push(" ");
                self.push(&i.name.name);
                self.push(" = ");
                self.push(&i.model.dotted());
                if self.src.ends_with('}') {
                    let open = self.open_brace(i.model.span.end as usize);
                    let close = self.close_brace(self.src.len());
                    self.fields_block(&i.fields, open, close, Layout::Lines, true);
                }
            }
            Item::Site(v) | Item::Let(v) => {
                self.push(item.kind().keyword());
                self.push(" ");
                self.push(&v.name.name);
                self.push(" = ");
                self.expr(&v.value);
            }
            Item::Goal(b) | Item::Constraint(b) => {
                self.push(item.kind().keyword());
                self.push(" ");
                self.push(&b.name.name);
                let open = self.open_brace(b.name.span.end as usize);
                let close = self.close_brace(self.src.len());
                let elements: Vec<Element<'_>> = b.clauses.iter().map(Element::Clause).collect();
                self.block(&elements, open, close, Layout::Lines, false);
            }
            Item::World(w) => {
                self.push("world ");
                self.push(&w.name.name);
                self.push(" = ");
                self.push(&w.kind.name);
                let open = self.open_brace(w.kind.span.end as usize);
                let close = self.close_brace(self.src.len());
                let mut elements = Vec::new();
                if let Some(from) = &w.from {
                    elements.push(Element::From(from, next_token(self.src, open)));
                }
                elements.extend(w.fields.iter().map(Element::Field));
                self.block(&elements, open, close, Layout::Joinable, false);
            }
            Item::Plan(p) => {
                self.push("plan");
                let open = self.open_brace(p.keyword.end as usize);
                let close = self.close_brace(self.src.len());
                self.fields_block(&p.fields, open, close, Layout::Lines, false);
            }
            Item::Refine(r) => {
                self.push("refine ");
                let name = self.source(r.name_span).to_string();
                self.push(&name);
                let open = self.open_brace(r.name_span.end as usize);
                let close = self.close_brace(self.src.len());
                let elements: Vec<Element<'_>> = r.steps.iter().map(Element::Step).collect();
                self.block(&elements, open, close, Layout::Lines, false);
            }
            Item::Model(m) => {
                self.push("model ");
                self.push(&m.name.name);
                let open = self.open_brace(m.name.span.end as usize);
                let close = self.close_brace(self.src.len());
                let elements: Vec<Element<'_>> = m.members.iter().map(Element::Member).collect();
                self.block(&elements, open, close, Layout::Lines, false);
            }
            Item::Fn(f) => {
                self.push("fn ");
                self.push(&f.name.name);
                self.push("(");
                for (i, p) in f.params.iter().enumerate() {
                    if i > 0 {
                        self.push(", ");
                    }
                    self.push(&p.name.name);
                    self.push(": ");
                    self.type_expr(&p.ty);
                }
                self.push(") -> ");
                self.type_expr(&f.ret);
                self.push(" = ");
                self.expr(&f.body);
            }
        }
    }

    fn fields_block(&mut self, fields: &[Field], open: usize, close: usize, layout: Layout, omit_empty: bool) {
        let elements: Vec<Element<'_>> = fields.iter().map(Element::Field).collect();
        self.block(&elements, open, close, layout, omit_empty);
    }

    /// Prints ` { … }` for a block whose `{` ends at `open` and whose `}` is at `close`.
    /// A block with no elements and no comments prints as ` {}`, or as nothing when
    /// `omit_empty` is set because the grammar makes the block optional.
    fn block(&mut self, elements: &[Element<'_>], open: usize, close: usize, layout: Layout, omit_empty: bool) {
        let has_comments = self.has_comments(open, close);
        if elements.is_empty() && !has_comments {
            if !omit_empty {
                self.push(" {}");
            }
            return;
        }
        if self.flat || (layout == Layout::Joinable && !has_comments) {
            let mark = self.out.len();
            let was_flat = std::mem::replace(&mut self.flat, true);
            self.push(" { ");
            for (i, e) in elements.iter().enumerate() {
                if i > 0 {
                    self.push(", ");
                }
                self.element(e);
            }
            self.push(" }");
            self.flat = was_flat;
            if was_flat || self.column() <= MAX_WIDTH {
                return;
            }
            self.out.truncate(mark);
        }

        self.push(" {");
        self.indent += INDENT;
        let mut previous_end = open;
        let mut after_open = true;
        for (i, e) in elements.iter().enumerate() {
            self.line_break(previous_end, e.start(), after_open, false);
            self.element(e);
            if let Some(next) = elements.get(i + 1) {
                if self.needs_separator(e, next) {
                    self.push(";");
                }
            }
            previous_end = e.end(self.src);
            after_open = false;
        }
        self.line_break(previous_end, close, after_open, true);
        self.push("}");
    }

    /// Ends the current line before the construct at `to`, first writing the comments that
    /// start in `from..to`. A comment that followed code on its line stays at the end of the
    /// current line, and the others get lines of their own. One blank line is kept where the
    /// source had at least one, except right after `{` and right before `}`. With
    /// `closing`, the next line is the block's `}`, one level out.
    fn line_break(&mut self, from: usize, to: usize, mut after_open: bool, closing: bool) {
        let comments = self.comments;
        let mut cursor = from;
        let mut on_code_line = true;
        for (i, c) in comments.iter().enumerate() {
            let start = c.span.start as usize;
            if self.placed[i] || start < from || start >= to {
                continue;
            }
            self.placed[i] = true;
            if c.trailing && on_code_line {
                self.push(" ");
            } else {
                let blank = !after_open && has_blank_line(self.src.get(cursor..start).unwrap_or_default());
                self.new_line(blank);
                on_code_line = false;
                after_open = false;
            }
            self.push(c.text);
            cursor = c.span.end as usize;
        }
        if closing {
            self.indent -= INDENT;
        }
        let blank = !after_open && !closing && has_blank_line(self.src.get(cursor..to).unwrap_or_default());
        self.new_line(blank);
    }

    fn element(&mut self, e: &Element<'_>) {
        match e {
            Element::Field(f) => self.field(f),
            Element::Clause(c) => self.clause(c),
            Element::Member(m) => self.member(m),
            Element::Step(s) => self.refine_step(s),
            Element::From(source, _) => {
                self.push("from ");
                self.expr(source);
            }
        }
    }

    /// Checks whether a `;` must follow clause `e` so that `next` is not read as its
    /// continuation, as in `minimize cost` followed by `-x <= 1 m`, which would read
    /// `cost - x <= 1 m`.
    fn needs_separator(&self, e: &Element<'_>, next: &Element<'_>) -> bool {
        let (Element::Clause(clause), Element::Clause(next)) = (e, next) else { return false };
        let ClauseKind::Formula(next_formula) = &next.kind else { return false };
        let ends_with_expression = match &clause.strength {
            None => true,
            Some(Strength::Soft { weight, .. }) => weight.is_some(),
            Some(Strength::Hard(_)) => false,
        };
        if !ends_with_expression {
            return false;
        }
        if self.formula_has_leading_then(next) {
            // `then` continues a formula, and nothing else.
            return clause.strength.is_none() && matches!(clause.kind, ClauseKind::Formula(_));
        }
        let mut f = next_formula;
        loop {
            match f {
                Formula::Until { lhs, .. } => f = lhs,
                Formula::Then { first, .. } => f = first,
                Formula::Always { .. } => return false,
                // A bare window would read as the tolerance of a `reach` that has none.
                Formula::Eventually { span, .. } => {
                    let open_reach = matches!(clause.kind, ClauseKind::Reach { tolerance: None, .. });
                    return open_reach && clause.strength.is_none() && self.is_bare_window(*span);
                }
                Formula::Atom(e) => return expr_starts_with_bracket_or_minus(e),
            }
        }
    }

    /// Checks whether a formula clause starts with `then`, which the tree does not record.
    fn formula_has_leading_then(&self, clause: &Clause) -> bool {
        let rest = self.src.get(clause.span.start as usize..).unwrap_or_default();
        rest.strip_prefix("then").is_some_and(|after| !after.starts_with(|c: char| c == '_' || c.is_alphanumeric()))
    }

    /// Checks whether an `eventually` node was written as a bare `within [a, b]` window.
    fn is_bare_window(&self, span: Span) -> bool {
        self.src.get(span.start as usize..).is_some_and(|rest| rest.starts_with("within"))
    }

    fn field(&mut self, f: &Field) {
        self.push(&f.name.name);
        self.push(": ");
        match &f.value {
            FieldValue::Expr(e) => self.expr(e),
            FieldValue::Stages(stages) => {
                for (i, stage) in stages.iter().enumerate() {
                    if i > 0 {
                        self.push(" then ");
                    }
                    self.push(&stage.name.name);
                    if stage_has_block(self.src, stage) {
                        let open = self.open_brace(stage.name.span.end as usize);
                        let close = self.close_brace(stage.span.end as usize);
                        self.fields_block(&stage.fields, open, close, Layout::Joinable, true);
                    }
                }
            }
        }
    }

    fn clause(&mut self, c: &Clause) {
        match &c.kind {
            ClauseKind::Reach { then, what, target, tolerance } => {
                if *then {
                    self.push("then ");
                }
                self.push("reach ");
                self.expr(what);
                self.push(" -> ");
                self.expr(target);
                if let Some(t) = tolerance {
                    self.push(" within ");
                    self.expr(t);
                }
            }
            ClauseKind::FinishBy(e) => {
                self.push("finish_by ");
                self.expr(e);
            }
            ClauseKind::Minimize(e) => {
                self.push("minimize ");
                self.expr(e);
            }
            ClauseKind::Maximize(e) => {
                self.push("maximize ");
                self.expr(e);
            }
            ClauseKind::Formula(f) => {
                if self.formula_has_leading_then(c) {
                    self.push("then ");
                }
                self.formula(f);
            }
        }
        match &c.strength {
            None => {}
            Some(Strength::Hard(_)) => self.push(" hard"),
            Some(Strength::Soft { weight, .. }) => {
                self.push(" soft");
                if let Some(w) = weight {
                    self.push(" weight ");
                    self.expr(w);
                }
            }
        }
    }

    fn formula(&mut self, f: &Formula) {
        match f {
            Formula::Atom(e) => self.expr(e),
            Formula::Always { window, body, .. } => {
                self.push("always");
                if let Some(w) = window {
                    self.push(" ");
                    self.window(w);
                }
                self.push(" ");
                self.formula(body);
            }
            Formula::Eventually { window, body, span } => {
                if !self.is_bare_window(*span) {
                    self.push("eventually");
                    if window.is_some() {
                        self.push(" ");
                    }
                }
                if let Some(w) = window {
                    self.window(w);
                }
                self.push(" ");
                self.formula(body);
            }
            Formula::Until { lhs, rhs, .. } => {
                self.formula(lhs);
                self.push(" until ");
                self.formula(rhs);
            }
            Formula::Then { first, next, .. } => {
                self.formula(first);
                self.push(" then ");
                self.formula(next);
            }
        }
    }

    fn window(&mut self, w: &Window) {
        self.push("within [");
        self.expr(&w.start);
        self.push(", ");
        self.expr(&w.end);
        self.push("]");
    }

    fn refine_step(&mut self, s: &RefineStep) {
        if let Some(at) = &s.at {
            self.push("at ");
            self.expr(at);
            self.push(": ");
        }
        match &s.action {
            RefineAction::AddObstacle { shape, at } => {
                self.push("add obstacle ");
                self.expr(shape);
                self.push(" at ");
                self.expr(at);
            }
            RefineAction::Rerun(name) => {
                self.push("rerun ");
                self.push(&name.name);
            }
            RefineAction::Assign { target, op, value } => {
                self.push(&target.dotted());
                self.push(" ");
                self.push(op.symbol());
                self.push(" ");
                self.expr(value);
            }
        }
    }

    fn member(&mut self, m: &Member) {
        self.push(m.kind.keyword());
        self.push(" ");
        self.push(&m.name.name);
        self.push(": ");
        self.type_expr(&m.ty);
        if let Some(d) = &m.default {
            self.push(" = ");
            self.expr(d);
        }
        if let Some(b) = &m.bounds {
            self.push(" within ");
            self.expr(b);
        }
    }

    fn type_expr(&mut self, t: &TypeExpr) {
        match t {
            TypeExpr::Unit(u) => {
                let text = self.source(u.span).to_string();
                self.push(&text);
            }
            TypeExpr::Tuple(parts, _) => {
                self.push("(");
                for (i, p) in parts.iter().enumerate() {
                    if i > 0 {
                        self.push(", ");
                    }
                    self.type_expr(p);
                }
                self.push(")");
            }
        }
    }

    fn arguments(&mut self, args: &[Expr]) {
        self.push("(");
        self.expr_list(args);
        self.push(")");
    }

    fn expr_list(&mut self, exprs: &[Expr]) {
        for (i, e) in exprs.iter().enumerate() {
            if i > 0 {
                self.push(", ");
            }
            self.expr(e);
        }
    }

    /// Prints an expression on the current line. Only a record's block may break it. Binary
    /// operators get a space on each side, which also keeps `2 m * k` apart from the unit
    /// `m*k`.
    fn expr(&mut self, e: &Expr) {
        match &e.kind {
            ExprKind::Quantity { text, unit, .. } => {
                self.push(text);
                if let Some(u) = unit {
                    let unit_text = self.source(u.span).to_string();
                    self.push(" ");
                    self.push(&unit_text);
                }
            }
            ExprKind::Str(_) => {
                let literal = self.source(e.span).to_string();
                self.push(&literal);
            }
            ExprKind::Bool(b) => self.push(if *b { "true" } else { "false" }),
            ExprKind::Name(id) => self.push(&id.name),
            ExprKind::Field { base, field } => {
                self.expr(base);
                self.push(".");
                self.push(&field.name);
            }
            ExprKind::Call { callee, args } => {
                self.expr(callee);
                self.arguments(args);
            }
            ExprKind::Index { base, index } => {
                self.expr(base);
                self.push("[");
                self.expr(index);
                self.push("]");
            }
            ExprKind::Tuple(parts) => self.arguments(parts),
            ExprKind::List(parts) => {
                self.push("[");
                self.expr_list(parts);
                self.push("]");
            }
            ExprKind::Record { name, fields } => {
                self.push(&name.name);
                let open = self.open_brace(name.span.end as usize);
                let close = self.close_brace(e.span.end as usize);
                self.fields_block(fields, open, close, Layout::Joinable, false);
            }
            ExprKind::Paren(inner) => {
                self.push("(");
                self.expr(inner);
                self.push(")");
            }
            ExprKind::Unary { op, operand } => {
                self.push(match op {
                    UnOp::Neg => "-",
                    UnOp::Not => "not ",
                });
                self.expr(operand);
            }
            ExprKind::Binary { op, lhs, rhs } => {
                self.expr(lhs);
                self.push(" ");
                self.push(op.symbol());
                self.push(" ");
                self.expr(rhs);
            }
            // The parser reported this node, and the caller formats only items without errors.
            ExprKind::Error => self.broken = true,
        }
    }
}

/// Checks whether an expression's first token is `-`, `(` or `[`, which could continue the
/// expression before it.
fn expr_starts_with_bracket_or_minus(e: &Expr) -> bool {
    let mut e = e;
    loop {
        match &e.kind {
            ExprKind::Unary { op: UnOp::Neg, .. } | ExprKind::Paren(_) | ExprKind::Tuple(_) | ExprKind::List(_) => return true,
            ExprKind::Binary { lhs, .. } => e = lhs,
            ExprKind::Field { base, .. } | ExprKind::Index { base, .. } => e = base,
            ExprKind::Call { callee, .. } => e = callee,
            _ => return false,
        }
    }
}

/// Checks whether `gap`, the text between two printed things, contains an empty line.
pub(super) fn has_blank_line(gap: &str) -> bool {
    let mut lines = gap.split('\n');
    lines.next();
    let mut interior: Vec<&str> = lines.collect();
    interior.pop();
    interior.iter().any(|line| line.trim().is_empty())
}
