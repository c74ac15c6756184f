//! Hover text: the kind, type or dimension and SI value of what is under the cursor, with
//! the `///` docs of items that have them.

use std::sync::Arc;

use crate::check::items::Setting;
use crate::check::{Checker, Env, INTRINSICS, ModelInfo, Origin, Ty};
use crate::db::{Db, SourceFile, file_env, file_items, parse};
use crate::syntax::{Item, ItemKind, Span};
use crate::units;

use super::navigate::{item_offset_at, resolve, Def, Location};
use super::values::{self, format_quantity};
use super::walk::{Occurrence, Ref, bind_locals, innermost_expr, walk_item_at};

/// Markdown for the hovered span.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HoverInfo {
    pub span: Span,
    pub markdown: String,
}

/// Hover text for `offset` in `file`, or `None` over whitespace, comments and keywords.
pub fn hover(db: &dyn Db, file: SourceFile, offset: u32) -> Option<HoverInfo> {
    let _span = tracing::debug_span!("ide::hover", offset).entered();
    let item_offset = item_offset_at(db, file, offset)?;
    let walk = walk_item_at(db, file, item_offset);
    let env = file_env(db, file);

    if let Some(occurrence) = walk.occurrence_at(offset) {
        if let Some(markdown) = occurrence_hover(db, file, env, occurrence) {
            return Some(HoverInfo { span: occurrence.span, markdown });
        }
    }
    if let Some(q) = walk.quantities.iter().find(|q| q.span.contains(offset)) {
        let unit = values::unit_of(&q.unit)?;
        let written = &text_of(db, file, q.span);
        let mut markdown = format!("```basin\n{written}\n```\n{}", unit.dim.describe());
        markdown.push_str(&format!("\n\n= {}", format_quantity(q.value * unit.factor, unit.dim)));
        return Some(HoverInfo { span: q.span, markdown });
    }

    // Any other expression: its type, and its value when it is a constant.
    let entry = file_items(db, file).items.iter().find(|e| e.offset == item_offset)?;
    let item = parse(db, entry.key).item.as_ref()?;
    let expr = innermost_expr(item, offset - item_offset)?;
    let mut checker = Checker::new(env);
    bind_locals(&mut checker, item);
    let ty = checker.expr(expr);
    if ty == Ty::Unknown {
        return None;
    }
    let mut markdown = format!("**{}**", ty.describe());
    if let Some(value) = values::eval(db, file, expr) {
        markdown.push_str(&format!("\n\n= {}", value.display()));
    }
    Some(HoverInfo { span: expr.span.shift(item_offset), markdown })
}

fn text_of(db: &dyn Db, file: SourceFile, span: Span) -> String {
    file.text(db).get(span.range()).unwrap_or("").to_string()
}

fn code_block(line: &str) -> String {
    format!("```basin\n{line}\n```")
}

/// Finds a model by name among the models this file can see.
fn model_info(env: &Env, model: &str) -> Option<Arc<ModelInfo>> {
    env.symbols.values().chain(env.paths.values()).find_map(|s| match &s.ty {
        Ty::Model(m) if m.name == model => Some(m.clone()),
        _ => None,
    })
}

fn occurrence_hover(db: &dyn Db, file: SourceFile, env: &Env, occurrence: &Occurrence) -> Option<String> {
    match &occurrence.target {
        Ref::Item(name) => symbol_hover(db, file, name, env.lookup(name).cloned()),
        Ref::ItemPath { module, name } => symbol_hover(db, file, name, env.paths.get(&format!("{module}.{name}")).cloned()),
        Ref::Module(path) => {
            let mut markdown = code_block(&format!("module {path}"));
            if db.module(path).is_some() {
                let prefix = format!("{path}.");
                let names: Vec<String> = env.paths.keys().filter_map(|p| p.strip_prefix(&prefix)).map(|n| format!("`{n}`")).collect();
                markdown.push_str(&format!("\na standard library module with {}", names.join(", ")));
            } else {
                markdown.push_str("\nthe root of the standard library's module paths");
            }
            Some(markdown)
        }
        Ref::Member { model, name } => {
            let info = model_info(env, model)?;
            let member = info.member(name)?;
            let mut markdown = code_block(&format!("{} {}: {}", member.kind.keyword(), name, member.ty.short()));
            markdown.push_str(&format!("\n{}, a member of `{model}`", member.ty.describe()));
            if let Some(Def::At(location)) = resolve(db, file, occurrence) {
                if let Some(docs) = member_default(db, file, &location) {
                    markdown.push_str(&format!("\n\ndefault `{docs}`"));
                }
            }
            Some(markdown)
        }
        Ref::Param { item, name } => {
            let entry = file_items(db, file).items.iter().find(|e| e.offset == *item)?;
            let Some(Item::Fn(f)) = parse(db, entry.key).item.as_ref() else { return None };
            let param = f.params.iter().find(|p| p.name.name == *name)?;
            let ty = Checker::new(env).type_of_annotation(&param.ty);
            Some(format!("{}\n{}, a parameter of `{}`", code_block(&format!("{name}: {}", ty.short())), ty.describe(), f.name.name))
        }
        Ref::Unit(name) => {
            let unit = units::lookup(name)?;
            let description = units::describe_unit(name).unwrap_or_default();
            let mut markdown = format!("{}\n{description}: {}", code_block(name), unit.dim.describe());
            if unit.factor != 1.0 || unit.dim.is_none() {
                markdown.push_str(&format!("\n\n1 {name} = {}", format_quantity(unit.factor, unit.dim)));
            }
            Some(markdown)
        }
        Ref::Setting { owner, name } => {
            let (_, setting) = owner.settings().iter().find(|(n, _)| n == name)?;
            let what = match setting {
                Setting::Num(dim) => dim.describe(),
                Setting::Word(words) => format!("one of {}", words.iter().map(|w| format!("`{w}`")).collect::<Vec<_>>().join(", ")),
                Setting::Solver => "solver stages chained with `then`".to_string(),
            };
            Some(format!("{}\na setting of {}: {what}", code_block(name), owner.describe()))
        }
        Ref::Solver(name) => Some(format!("{}\na solver stage of the plan", code_block(name))),
        Ref::Loader(name) => Some(format!("{}\na context loader", code_block(name))),
        Ref::WorldKind(name) => Some(format!("{}\na kind of world model", code_block(name))),
        Ref::TupleField(_) => None,
    }
}

/// Returns the source text of the default value of the member declared at `location`.
fn member_default(db: &dyn Db, file: SourceFile, location: &Location) -> Option<String> {
    let source = match &location.module {
        None => file,
        Some(module) => db.module(module)?,
    };
    let items = file_items(db, source);
    items.items.iter().find_map(|entry| match parse(db, entry.key).item.as_ref()? {
        Item::Model(m) => m.members.iter().find(|mm| mm.name.span.shift(entry.offset) == location.span).and_then(|mm| {
            let d = mm.default.as_ref()?;
            source.text(db).get(d.span.shift(entry.offset).range()).map(str::to_string)
        }),
        _ => None,
    })
}

fn symbol_hover(db: &dyn Db, file: SourceFile, name: &str, symbol: Option<crate::check::Symbol>) -> Option<String> {
    let symbol = symbol?;
    let keyword = symbol.kind.map(ItemKind::keyword);
    let line = match (&symbol.ty, keyword) {
        (Ty::Fn(_), _) if symbol.origin == Origin::Builtin => {
            let doc = INTRINSICS.iter().find(|(n, _)| *n == name).map(|(_, d)| *d).unwrap_or(name);
            format!("fn {}", doc.split(':').next().unwrap_or(name))
        }
        (Ty::Fn(sig), _) => format!("fn {}", sig.label()),
        (Ty::Model(m), _) => {
            let members: Vec<String> = m.members.iter().map(|mm| format!("    {} {}: {}", mm.kind.keyword(), mm.name, mm.ty.short())).collect();
            format!("model {name} {{\n{}\n}}", members.join("\n"))
        }
        (Ty::Instance(m), Some(k)) => format!("{k} {name}: {}", m.name),
        (Ty::Context(loader), _) => format!("context {name} = {loader}(…)"),
        (Ty::Block(k), _) => format!("{} {name}", k.keyword()),
        (ty, Some(k)) => format!("{k} {name}: {}", ty.short()),
        (ty, None) => format!("{name}: {}", ty.short()),
    };
    let mut markdown = code_block(&line);
    match &symbol.ty {
        Ty::Num(_) | Ty::Tuple(_) | Ty::Instance(_) | Ty::Range(_) | Ty::Choice(_) => markdown.push_str(&format!("\n{}", symbol.ty.describe())),
        _ => {}
    }
    if symbol.origin == Origin::Local {
        if let Some(value) = local_value(db, file, name) {
            markdown.push_str(&format!("\n\n= {}", value.display()));
        }
    }
    if let Origin::Module(module) = &symbol.origin {
        markdown.push_str(&format!("\n\nfrom `{module}`"));
    }
    if !symbol.docs.is_empty() {
        markdown.push_str("\n\n---\n");
        markdown.push_str(&symbol.docs);
    }
    Some(markdown)
}

/// Evaluates the `let` or `site` called `name` in `file` to SI, when it is a constant.
fn local_value(db: &dyn Db, file: SourceFile, name: &str) -> Option<values::Value> {
    let items = file_items(db, file);
    let value = items.items.iter().find_map(|entry| match parse(db, entry.key).item.as_ref()? {
        Item::Let(v) | Item::Site(v) if v.name.name == name => Some(v.value.clone()),
        _ => None,
    })?;
    values::eval(db, file, &value)
}
