//! Completion and signature help.
//!
//! Both run while the user is typing, when the item under the cursor usually does not
//! parse. They read the context from the text before the cursor (the open brackets, the
//! word before a `.`, a number before a unit) and take names and types from the file's
//! environment, which the other items keep valid.

use crate::check::items::{LOADERS, PLAN_FIELDS, SOLVERS, WORLD_FIELDS};
use crate::check::{Checker, Env, INTRINSICS, Origin, Ty};
use crate::db::{Db, SourceFile, file_env, file_items, parse};
use crate::syntax::{ItemKind, MemberKind};
use crate::units;

use super::walk::bind_locals;

/// The kind of thing a completion inserts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CompletionKind {
    Keyword,
    Model,
    Function,
    /// An agent, design, `let`, `site` or context.
    Variable,
    /// A goal, constraint or world.
    Block,
    Member(MemberKind),
    Parameter,
    Unit,
    Module,
    Setting,
    /// A prelude value such as `duration`, a solver, loader or world kind.
    Builtin,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Completion {
    pub label: String,
    pub kind: CompletionKind,
    pub detail: Option<String>,
    pub docs: Option<String>,
    /// Text to insert when it differs from the label, e.g. `radius: ` for a field.
    pub insert_text: Option<String>,
}

impl Completion {
    fn new(label: impl Into<String>, kind: CompletionKind, detail: Option<String>) -> Completion {
        Completion { label: label.into(), kind, detail, docs: None, insert_text: None }
    }
}

/// A function signature for the call around the cursor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Signature {
    /// `bending_stress(load: N, length: m) -> Pa`
    pub label: String,
    /// Each parameter as it appears in `label`.
    pub parameters: Vec<String>,
    pub active_parameter: usize,
    pub docs: Option<String>,
}

const ITEM_KEYWORDS: [&str; 13] = ["use", "context", "agent", "design", "site", "let", "goal", "constraint", "world", "plan", "refine", "model", "fn"];
const CLAUSE_KEYWORDS: [&str; 9] = ["reach", "then", "finish_by", "minimize", "maximize", "always", "eventually", "within", "until"];
const EXPRESSION_KEYWORDS: [&str; 5] = ["and", "or", "not", "true", "false"];

fn is_word_char(c: char) -> bool {
    c == '_' || c.is_alphanumeric()
}

/// One open bracket before the cursor.
#[derive(Clone, Debug)]
struct Open {
    bracket: u8,
    /// Byte offset of the bracket in the scanned text.
    at: usize,
    /// Commas seen directly inside it so far.
    commas: usize,
    /// The start of the current entry inside the bracket: after the bracket, a comma or a
    /// line break.
    entry_start: usize,
}

/// Lists the brackets still open at the end of `text`, skipping strings and comments.
fn open_brackets(text: &str) -> Vec<Open> {
    let bytes = text.as_bytes();
    let mut stack: Vec<Open> = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' && bytes[i] != b'\n' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
            }
            b'/' if bytes.get(i + 1) == Some(&b'/') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            b'(' | b'[' | b'{' => stack.push(Open { bracket: bytes[i], at: i, commas: 0, entry_start: i + 1 }),
            b')' | b']' | b'}' => {
                stack.pop();
            }
            b',' | b';' | b'\n' => {
                if let Some(open) = stack.last_mut() {
                    if bytes[i] == b',' {
                        open.commas += 1;
                    }
                    open.entry_start = i + 1;
                }
            }
            _ => {}
        }
        i += 1;
    }
    stack
}

/// Returns the word of identifier characters that ends at `end`.
fn word_before(text: &str, end: usize) -> &str {
    let start = text[..end].char_indices().rev().take_while(|&(_, c)| is_word_char(c)).last().map_or(end, |(i, _)| i);
    &text[start..end]
}

/// Tells whether a unit may be typed at `pos`: after a number and optional spaces, or after `*`
/// or `/` inside a unit that follows a number.
fn unit_position(text: &str, pos: usize) -> bool {
    let before = &text[..pos];
    let trimmed = before.trim_end_matches([' ', '\t']);
    let spaced = trimmed.len() < before.len();
    let Some(last) = trimmed.chars().last() else { return false };
    if last.is_ascii_digit() || last == '.' {
        let run = trimmed.trim_end_matches(|c: char| c.is_ascii_digit() || c == '.' || c == '_');
        let starts_number = run.chars().last().is_none_or(|c| !is_word_char(c));
        return starts_number && (spaced || pos == trimmed.len());
    }
    if !spaced && matches!(last, '/' | '*' | '·') {
        let unit = word_before(trimmed, trimmed.len() - last.len_utf8());
        return !unit.is_empty() && unit_position(trimmed, trimmed.len() - last.len_utf8() - unit.len());
    }
    false
}

/// Completions at `offset` in `file`, unfiltered: the editor filters by what is typed.
pub fn completions(db: &dyn Db, file: SourceFile, offset: u32) -> Vec<Completion> {
    let _span = tracing::debug_span!("ide::completions", offset).entered();
    let text = file.text(db);
    let mut offset = (offset as usize).min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let env = file_env(db, file);
    let word = word_before(text, offset);
    let word_start = offset - word.len();

    if unit_position(text, word_start) {
        return unit_completions();
    }
    if text[..word_start].ends_with('.') && !text[..word_start].ends_with("..") {
        return member_completions(db, env, text, word_start - 1);
    }

    let items = file_items(db, file);
    let entry = items.items.iter().rev().find(|e| (e.offset as usize) <= word_start);
    let line_start = text[..word_start].rfind('\n').map_or(0, |n| n + 1);
    let line_blank = text[line_start..word_start].trim().is_empty();
    let Some(entry) = entry else { return keyword_completions(&ITEM_KEYWORDS) };
    let item_text = &text[entry.offset as usize..word_start];
    let open = open_brackets(item_text);

    let Some(innermost) = open.last() else {
        let continues = item_text.trim_end().ends_with(['=', '+', '-', '*', '/', '^', '<', '>', '|', ',']);
        if line_blank && !continues {
            return keyword_completions(&ITEM_KEYWORDS);
        }
        return expression_completions(db, file, env, entry.offset, entry.kind);
    };
    let entry_text = &item_text[innermost.entry_start..];
    let at_entry_start = entry_text.trim().is_empty();
    let depth = open.len();

    if innermost.bracket == b'{' {
        let head = item_text[..innermost.at].trim_end();
        let head_word = word_before(head, head.len());
        match entry.kind {
            Some(ItemKind::Goal | ItemKind::Constraint) if depth == 1 => {
                let mut out = keyword_completions(&CLAUSE_KEYWORDS);
                out.extend(expression_completions(db, file, env, entry.offset, entry.kind));
                return out;
            }
            Some(ItemKind::Model) if depth == 1 && at_entry_start => {
                return keyword_completions(&["state", "action", "param", "signal"]);
            }
            Some(ItemKind::Plan) if at_entry_start => {
                let fields: &[(&str, _)] = if depth == 1 { PLAN_FIELDS } else { SOLVERS.iter().find(|(n, _)| *n == head_word).map_or(&[], |(_, f)| f) };
                return setting_completions(fields);
            }
            Some(ItemKind::World) if depth == 1 && at_entry_start => {
                let mut out = setting_completions(WORLD_FIELDS);
                out.extend(keyword_completions(&["from"]));
                return out;
            }
            Some(ItemKind::Context) if depth == 1 && at_entry_start => {
                let loader = item_text.split_once('=').map(|(_, rest)| rest.trim_start()).map(|rest| word_before(rest, rest.find('(').unwrap_or(0)));
                let fields = LOADERS.iter().find(|(n, _)| Some(*n) == loader).map_or(&[][..], |(_, f)| f);
                return setting_completions(fields);
            }
            _ => {}
        }
        if at_entry_start {
            if let Some(m) = model_named(env, head_word) {
                let given = &item_text[innermost.at..];
                return m
                    .members
                    .iter()
                    .filter(|mm| mm.kind == MemberKind::Param && !given.contains(&format!("{}:", mm.name)))
                    .map(|mm| Completion {
                        insert_text: Some(format!("{}: ", mm.name)),
                        ..Completion::new(mm.name.clone(), CompletionKind::Member(mm.kind), Some(mm.ty.short()))
                    })
                    .collect();
            }
        }
        if entry.kind == Some(ItemKind::Plan) {
            let value = entry_text.trim_start();
            if value.starts_with("solver:") && (value.trim_end().ends_with(':') || value.trim_end().ends_with("then")) {
                return SOLVERS.iter().map(|(n, _)| Completion::new(*n, CompletionKind::Builtin, Some("solver stage".into()))).collect();
            }
        }
    }
    expression_completions(db, file, env, entry.offset, entry.kind)
}

fn keyword_completions(words: &[&str]) -> Vec<Completion> {
    words.iter().map(|w| Completion::new(*w, CompletionKind::Keyword, None)).collect()
}

fn setting_completions(fields: &[(&str, crate::check::items::Setting)]) -> Vec<Completion> {
    fields
        .iter()
        .map(|(name, setting)| {
            let detail = match setting {
                crate::check::items::Setting::Num(d) => d.describe(),
                crate::check::items::Setting::Word(words) => words.join(" | "),
                crate::check::items::Setting::Solver => "solver stages".to_string(),
            };
            Completion { insert_text: Some(format!("{name}: ")), ..Completion::new(*name, CompletionKind::Setting, Some(detail)) }
        })
        .collect()
}

fn unit_completions() -> Vec<Completion> {
    let mut out: Vec<Completion> = units::common_units().into_iter().map(|(name, dim)| Completion::new(name, CompletionKind::Unit, Some(dim.describe()))).collect();
    for name in units::unit_names() {
        if !out.iter().any(|c| c.label == name) {
            let detail = units::lookup(name).map(|u| u.dim.describe());
            out.push(Completion::new(name, CompletionKind::Unit, detail));
        }
    }
    for c in &mut out {
        c.docs = units::describe_unit(&c.label);
    }
    out
}

fn model_named(env: &Env, name: &str) -> Option<std::sync::Arc<crate::check::ModelInfo>> {
    match env.lookup(name).map(|s| &s.ty) {
        Some(Ty::Model(m)) => Some(m.clone()),
        _ => None,
    }
}

fn kind_of(ty: &Ty, item: Option<ItemKind>) -> CompletionKind {
    match ty {
        Ty::Model(_) => CompletionKind::Model,
        Ty::Fn(_) => CompletionKind::Function,
        Ty::Block(_) => CompletionKind::Block,
        _ if item.is_none() => CompletionKind::Builtin,
        _ => CompletionKind::Variable,
    }
}

/// Names in scope: the file's items and imports, the prelude, and the members or
/// parameters of the enclosing model or function when it parses.
fn expression_completions(db: &dyn Db, file: SourceFile, env: &Env, item_offset: u32, kind: Option<ItemKind>) -> Vec<Completion> {
    let mut out = Vec::new();
    if matches!(kind, Some(ItemKind::Model | ItemKind::Fn)) {
        if let Some(entry) = file_items(db, file).items.iter().find(|e| e.offset == item_offset) {
            if let Some(item) = &parse(db, entry.key).item {
                let mut checker = Checker::new(env);
                bind_locals(&mut checker, item);
                let local_kind = if kind == Some(ItemKind::Fn) { CompletionKind::Parameter } else { CompletionKind::Member(MemberKind::Param) };
                for (name, ty) in &checker.locals {
                    out.push(Completion::new(name.clone(), local_kind, Some(ty.short())));
                }
            }
        }
    }
    for (name, symbol) in env.symbols.iter().chain(crate::check::prelude().iter().filter(|(n, _)| !env.symbols.contains_key(*n))) {
        let mut c = Completion::new(name.clone(), kind_of(&symbol.ty, symbol.kind), Some(symbol.ty.short()));
        if let Ty::Fn(sig) = &symbol.ty {
            c.detail = Some(if symbol.origin == Origin::Builtin {
                INTRINSICS.iter().find(|(n, _)| n == name).map_or(name.clone(), |(_, d)| d.split(':').next().unwrap_or(name).to_string())
            } else {
                sig.label()
            });
        }
        if !symbol.docs.is_empty() {
            c.docs = Some(symbol.docs.clone());
        }
        out.push(c);
    }
    out.extend(keyword_completions(&EXPRESSION_KEYWORDS));
    out
}

/// Completions after the `.` at `dot`: module paths after `std`, members of agents,
/// designs and records, and `x`, `y`, `z` of tuples.
fn member_completions(db: &dyn Db, env: &Env, text: &str, dot: usize) -> Vec<Completion> {
    // The chain `a.b.c` that ends at the dot.
    let mut segments: Vec<&str> = Vec::new();
    let mut end = dot;
    loop {
        let word = word_before(text, end);
        if word.is_empty() {
            break;
        }
        segments.push(word);
        let start = end - word.len();
        if start > 0 && text[..start].ends_with('.') && !text[..start].ends_with("..") {
            end = start - 1;
        } else {
            break;
        }
    }
    segments.reverse();
    let Some(first) = segments.first() else { return Vec::new() };

    if *first == "std" {
        let prefix = format!("{}.", segments.join("."));
        let mut out: Vec<Completion> = Vec::new();
        for module in db.module_names() {
            if let Some(rest) = module.strip_prefix(&prefix) {
                let next = rest.split('.').next().unwrap_or(rest).to_string();
                if !out.iter().any(|c| c.label == next) {
                    out.push(Completion::new(next, CompletionKind::Module, Some(module.clone())));
                }
            }
        }
        for (path, symbol) in &env.paths {
            if let Some(name) = path.strip_prefix(&prefix).filter(|n| !n.contains('.')) {
                let mut c = Completion::new(name, kind_of(&symbol.ty, symbol.kind), Some(symbol.ty.short()));
                if !symbol.docs.is_empty() {
                    c.docs = Some(symbol.docs.clone());
                }
                out.push(c);
            }
        }
        return out;
    }

    let mut ty = match env.lookup(first) {
        Some(symbol) => symbol.ty.clone(),
        None => return Vec::new(),
    };
    let mut checker = Checker::new(env);
    for segment in &segments[1..] {
        let id = crate::syntax::Ident { name: segment.to_string(), span: Default::default() };
        ty = checker.field_of(&ty, &id);
    }
    match ty {
        Ty::Instance(m) | Ty::Model(m) => m
            .members
            .iter()
            .map(|mm| Completion::new(mm.name.clone(), CompletionKind::Member(mm.kind), Some(format!("{} {}", mm.kind.keyword(), mm.ty.short()))))
            .collect(),
        Ty::Tuple(parts) => ["x", "y", "z"].iter().zip(&parts).map(|(n, t)| Completion::new(*n, CompletionKind::Member(MemberKind::Signal), Some(t.short()))).collect(),
        _ => Vec::new(),
    }
}

/// The signature of the function called around `offset`, with the argument the cursor is in.
pub fn signature_help(db: &dyn Db, file: SourceFile, offset: u32) -> Option<Signature> {
    let _span = tracing::debug_span!("ide::signature_help", offset).entered();
    let text = file.text(db);
    let mut offset = (offset as usize).min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let entry = file_items(db, file).items.iter().rev().find(|e| (e.offset as usize) <= offset)?;
    let item_text = &text[entry.offset as usize..offset];
    let open = open_brackets(item_text);
    let call = open.last().filter(|o| o.bracket == b'(')?;
    let name = word_before(item_text, call.at);
    if name.is_empty() {
        return None;
    }
    let env = file_env(db, file);
    let user_defined = env.symbols.contains_key(name);
    if !user_defined {
        if let Some((_, doc)) = INTRINSICS.iter().find(|(n, _)| *n == name) {
            let (label, docs) = doc.split_once(": ").unwrap_or((doc, ""));
            let inside = label.split_once('(').and_then(|(_, rest)| rest.strip_suffix(')')).unwrap_or("");
            let parameters: Vec<String> = inside.split(", ").filter(|p| !p.is_empty()).map(str::to_string).collect();
            let variadic = parameters.last().is_some_and(|p| p == "…");
            let last = parameters.len().saturating_sub(if variadic { 2 } else { 1 });
            let active_parameter = call.commas.min(last);
            return Some(Signature { label: label.to_string(), parameters, active_parameter, docs: Some(docs.to_string()) });
        }
    }
    match &env.lookup(name)?.ty {
        Ty::Fn(sig) => {
            let parameters: Vec<String> = sig.params.iter().map(|(n, t)| format!("{n}: {}", t.short())).collect();
            let active_parameter = call.commas.min(parameters.len().saturating_sub(1));
            let docs = (!sig.docs.is_empty()).then(|| sig.docs.clone());
            Some(Signature { label: sig.label(), parameters, active_parameter, docs })
        }
        _ => None,
    }
}
