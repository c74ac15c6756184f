//! The outline of a file (document symbols) and its folding ranges.

use crate::db::{Db, SourceFile, file_items, parse};
use crate::syntax::{FieldValue, Item, ItemKind, MemberKind, Span};

/// The kind of an outline entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutlineKind {
    Item(ItemKind),
    Member(MemberKind),
    /// A field or setting inside a block.
    Field,
    Parameter,
}

/// One entry of the outline, with the entries nested in it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outline {
    pub name: String,
    pub kind: OutlineKind,
    pub detail: Option<String>,
    /// The whole declaration.
    pub span: Span,
    /// The name, which the editor selects.
    pub name_span: Span,
    pub children: Vec<Outline>,
}

/// Builds the outline of `file`: its items, with members, parameters and fields nested.
pub fn document_symbols(db: &dyn Db, file: SourceFile) -> Vec<Outline> {
    let _span = tracing::debug_span!("ide::document_symbols").entered();
    let mut out = Vec::new();
    for entry in &file_items(db, file).items {
        let Some(item) = &parse(db, entry.key).item else { continue };
        let span = Span::new(0, entry.key.text(db).len()).shift(entry.offset);
        let at = |s: Span| s.shift(entry.offset);
        let field_children = |fields: &[crate::syntax::Field]| -> Vec<Outline> {
            fields
                .iter()
                .map(|f| Outline {
                    name: f.name.name.clone(),
                    kind: OutlineKind::Field,
                    detail: match &f.value {
                        FieldValue::Expr(e) => file.text(db).get(at(e.span).range()).map(str::to_string),
                        FieldValue::Stages(_) => None,
                    },
                    span: at(f.span),
                    name_span: at(f.name.span),
                    children: Vec::new(),
                })
                .collect()
        };
        let (name, name_span, detail, children) = match item {
            Item::Use(u) => (format!("use {}", u.path.dotted()), u.path.span, None, Vec::new()),
            Item::Plan(p) => ("plan".to_string(), p.keyword, None, field_children(&p.fields)),
            Item::Refine(r) => (format!("refine \"{}\"", r.name), r.name_span, None, Vec::new()),
            Item::Context(c) => (c.name.name.clone(), c.name.span, Some(c.loader.name.clone()), field_children(&c.fields)),
            Item::Instance(i) => (i.name.name.clone(), i.name.span, Some(i.model.dotted()), field_children(&i.fields)),
            Item::World(w) => (w.name.name.clone(), w.name.span, Some(w.kind.name.clone()), field_children(&w.fields)),
            Item::Model(m) => {
                let children = m
                    .members
                    .iter()
                    .map(|mm| Outline {
                        name: mm.name.name.clone(),
                        kind: OutlineKind::Member(mm.kind),
                        detail: Some(mm.ty.text()),
                        span: at(mm.span),
                        name_span: at(mm.name.span),
                        children: Vec::new(),
                    })
                    .collect();
                (m.name.name.clone(), m.name.span, None, children)
            }
            Item::Fn(f) => {
                let children = f
                    .params
                    .iter()
                    .map(|p| Outline {
                        name: p.name.name.clone(),
                        kind: OutlineKind::Parameter,
                        detail: Some(p.ty.text()),
                        span: at(p.name.span.to(p.ty.span())),
                        name_span: at(p.name.span),
                        children: Vec::new(),
                    })
                    .collect();
                (f.name.name.clone(), f.name.span, Some(format!("-> {}", f.ret.text())), children)
            }
            Item::Site(v) | Item::Let(v) => (v.name.name.clone(), v.name.span, file.text(db).get(at(v.value.span).range()).map(str::to_string), Vec::new()),
            Item::Goal(b) | Item::Constraint(b) => (b.name.name.clone(), b.name.span, None, Vec::new()),
        };
        let detail = detail.map(|d| if d.len() > 60 { format!("{}…", truncate(&d, 60)) } else { d });
        out.push(Outline { name, kind: OutlineKind::Item(item.kind()), detail, span, name_span: at(name_span), children });
    }
    out
}

fn truncate(text: &str, max: usize) -> &str {
    let mut end = max.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// The reason a range folds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FoldKind {
    /// A run of two or more comment lines.
    Comment,
    /// An item or a bracketed block that spans lines.
    Region,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fold {
    pub span: Span,
    pub kind: FoldKind,
}

/// Items and bracketed blocks that span lines, and runs of comment lines. The caller drops
/// folds that turn out to sit on one line.
pub fn folding_ranges(db: &dyn Db, file: SourceFile) -> Vec<Fold> {
    let _span = tracing::debug_span!("ide::folding_ranges").entered();
    let text = file.text(db);
    let items = file_items(db, file);
    let mut out = Vec::new();
    for entry in &items.items {
        let item_text = entry.key.text(db);
        if item_text.contains('\n') {
            out.push(Fold { span: Span::new(0, item_text.len()).shift(entry.offset), kind: FoldKind::Region });
        }
        // Brackets inside the item; strings and comments cannot hide brackets here because
        // both end at the line, and a bracket fold needs two lines anyway.
        let mut open: Vec<usize> = Vec::new();
        let mut in_string = false;
        let bytes = item_text.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'"' => in_string = !in_string,
                b'\n' => in_string = false,
                b'\\' if in_string => i += 1,
                b'/' if !in_string && bytes.get(i + 1) == Some(&b'/') => {
                    while i < bytes.len() && bytes[i] != b'\n' {
                        i += 1;
                    }
                    continue;
                }
                b'{' | b'(' | b'[' if !in_string => open.push(i),
                b'}' | b')' | b']' if !in_string => {
                    if let Some(start) = open.pop() {
                        if item_text[start..i].contains('\n') && item_text[..start].contains('\n') {
                            out.push(Fold { span: Span::new(start, i + 1).shift(entry.offset), kind: FoldKind::Region });
                        }
                    }
                }
                _ => {}
            }
            i += 1;
        }
    }
    // Runs of whole-line comments.
    let mut run: Option<(Span, Span)> = None;
    for c in items.comments.iter().filter(|c| !c.trailing) {
        run = match run {
            Some((first, last)) if text.get(last.end as usize..c.span.start as usize).is_some_and(|gap| gap.matches('\n').count() == 1 && gap.trim().is_empty()) => {
                Some((first, c.span))
            }
            Some((first, last)) => {
                if first != last {
                    out.push(Fold { span: first.to(last), kind: FoldKind::Comment });
                }
                Some((c.span, c.span))
            }
            None => Some((c.span, c.span)),
        };
    }
    if let Some((first, last)) = run {
        if first != last {
            out.push(Fold { span: first.to(last), kind: FoldKind::Comment });
        }
    }
    out.sort_by_key(|f| (f.span.start, f.span.end));
    out
}
