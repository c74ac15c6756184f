//! Lowering a checked spec to a compiled plan.
//!
//! Lowering runs only on a spec without errors, so it can assume names resolve and
//! dimensions agree; where it still meets something it cannot lower it reports a
//! diagnostic instead of guessing. Every number is converted to SI here. Named constants
//! (lets, agent and design parameters, material properties) become plan parameters rather
//! than folded constants, so refinements can edit them and reports can name them.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path as FsPath, PathBuf};

use sha2::{Digest, Sha256};

use super::graph::{Graph, Node, NodeId, Num};
use super::*;
use crate::db::{Db, SourceFile, check_file, file_env, file_items, parse};
use crate::diagnostics::{Code, Diagnostic, Label};
use crate::syntax::{self, *};
use crate::units::{self, Dim};

/// Weight of a `hard` term: large against soft terms, small enough to keep gradients sane.
pub const HARD_WEIGHT: f64 = 1000.0;
/// Temperature of the smooth minimum and maximum in robustness, in the SI unit of the
/// margins it combines.
pub const ROBUSTNESS_TEMPERATURE: f64 = 0.01;
/// Temperature of the smooth `max(0, ·)` in penalties.
pub const PENALTY_TEMPERATURE: f64 = 0.01;
/// `ε` of the smoothed Euclidean norm, metres.
pub const NORM_EPSILON: f64 = 1e-6;
/// Context files larger than this are rejected.
pub const MAX_CONTEXT_BYTES: u64 = 64 * 1024 * 1024;
/// Default memory budget of one planning iteration, MiB.
pub const DEFAULT_MEMORY_BUDGET_MB: f64 = 4096.0;
/// Agent index of the first design's outcome nodes while lowering; see `lower_design`.
const DESIGN_STATE_BASE: u32 = 1 << 30;
/// Nested function calls deeper than this are reported instead of lowered (a recursive
/// `fn` would otherwise never finish).
const MAX_CALL_DEPTH: u32 = 32;

#[derive(Clone, Debug, Default)]
pub struct CompileOptions {
    /// The folder context paths are relative to; `None` skips reading context files.
    pub base_dir: Option<PathBuf>,
    /// Accept context paths that leave the spec's folder.
    pub allow_outside: bool,
}

/// Compiles a file: its check diagnostics, then the plan when there are no errors.
pub fn compile(db: &dyn Db, file: SourceFile, options: &CompileOptions) -> (Option<Plan>, Vec<Diagnostic>) {
    let _span = tracing::info_span!("compile", path = %file.path(db)).entered();
    let checked = check_file(db, file);
    if checked.has_errors() {
        return (None, checked.diagnostics.clone());
    }
    let mut lowering = Lowering::new(db, file, options);
    lowering.run();
    let mut diagnostics = checked.diagnostics.clone();
    diagnostics.extend(lowering.diagnostics.iter().cloned());
    diagnostics.sort_by_key(|d| (d.primary_span().start, d.code));
    let failed = diagnostics.iter().any(Diagnostic::is_error);
    let plan = lowering.finish();
    (if failed { None } else { Some(plan) }, diagnostics)
}

/// A value during lowering.
#[derive(Clone, Debug)]
enum Val {
    Num(NodeId),
    Tuple(Vec<Val>),
    /// A condition, as its robustness node.
    Cond(NodeId),
    Agent(u32),
    Design(u32),
    Record { name: String, fields: Vec<(String, Val)> },
    /// A discrete design choice among records: the variable's node and the options.
    Choice { index: NodeId, options: Vec<(String, Val)> },
    Context(u32),
    Str,
    Shape(Shape),
    Unknown,
}

#[derive(Clone, Debug)]
enum Shape {
    Box { width: NodeId, depth: NodeId },
    Circle { radius: NodeId },
}

/// A model declaration with the module it came from.
#[derive(Clone)]
struct ModelDef {
    path: String,
    decl: ModelDecl,
}

struct AgentInfo {
    name: String,
    model: ModelDef,
    /// Members bound to values: states and actions to graph nodes, params to parameters.
    members: Vec<(String, Val)>,
}

struct DesignInfo {
    name: String,
    model: ModelDef,
    members: Vec<(String, Val)>,
}

/// The parts of a `reach` clause that other clauses of its goal read.
#[derive(Clone)]
struct ReachInfo {
    subject: Vec<NodeId>,
    target: Vec<NodeId>,
    tolerance: NodeId,
    phase: u32,
    agent: Option<u32>,
}

pub(super) struct Lowering<'a> {
    db: &'a dyn Db,
    file: SourceFile,
    options: &'a CompileOptions,
    /// Items of the file: offset and tree.
    items: Vec<(u32, Item)>,
    text: String,
    graph: Graph,
    params: Vec<ParamPlan>,
    param_index: HashMap<String, u32>,
    lets: BTreeMap<String, Val>,
    lets_visiting: Vec<String>,
    agents: Vec<AgentInfo>,
    agent_plans: Vec<AgentPlan>,
    designs: Vec<DesignInfo>,
    design_plans: Vec<DesignPlan>,
    contexts: Vec<ContextPlan>,
    context_index: BTreeMap<String, u32>,
    sites: Vec<SitePlan>,
    horizon: Option<HorizonPlan>,
    solver: Vec<SolverStage>,
    worlds: Vec<WorldPlan>,
    terms: Vec<Term>,
    refinements: Vec<RefinementPlan>,
    diagnostics: Vec<Diagnostic>,
    /// Offset of the item being lowered, to turn its spans into file spans.
    offset: u32,
    call_depth: u32,
    /// Names bound by a model or function scope.
    scope: Vec<BTreeMap<String, Val>>,
    /// The instance whose signal is being lowered, so signals can read sibling signals.
    signal_owner: Vec<(ModelDef, Vec<(String, Val)>)>,
    /// For each term: the two sides of its comparison, for infeasibility reports.
    comparisons: BTreeMap<u32, (NodeId, NodeId, Span)>,
}

impl<'a> Lowering<'a> {
    fn new(db: &'a dyn Db, file: SourceFile, options: &'a CompileOptions) -> Lowering<'a> {
        let items = file_items(db, file).items.iter().filter_map(|e| parse(db, e.key).item.clone().map(|i| (e.offset, i))).collect();
        Lowering {
            db,
            file,
            options,
            items,
            text: file.text(db).clone(),
            graph: Graph::default(),
            params: Vec::new(),
            param_index: HashMap::new(),
            lets: BTreeMap::new(),
            lets_visiting: Vec::new(),
            agents: Vec::new(),
            agent_plans: Vec::new(),
            designs: Vec::new(),
            design_plans: Vec::new(),
            contexts: Vec::new(),
            context_index: BTreeMap::new(),
            sites: Vec::new(),
            horizon: None,
            solver: Vec::new(),
            worlds: Vec::new(),
            terms: Vec::new(),
            refinements: Vec::new(),
            diagnostics: Vec::new(),
            offset: 0,
            call_depth: 0,
            scope: Vec::new(),
            signal_owner: Vec::new(),
            comparisons: BTreeMap::new(),
        }
    }

    fn error(&self, code: Code, message: String, span: Span, label: &str) -> Diagnostic {
        Diagnostic::error(code, message).with_label(Label::primary(span.shift(self.offset), label))
    }

    fn run(&mut self) {
        let items = self.items.clone();
        // Plan settings first: temporal windows need the step.
        for (offset, item) in &items {
            self.offset = *offset;
            if let Item::Plan(p) = item {
                self.lower_plan(p);
            }
        }
        for (offset, item) in &items {
            self.offset = *offset;
            match item {
                Item::Context(c) => self.lower_context(c),
                Item::Instance(i) if i.kind == ItemKind::Agent => self.lower_agent(i),
                Item::Instance(i) => self.lower_design(i),
                _ => {}
            }
        }
        for (offset, item) in &items {
            self.offset = *offset;
            if let Item::Site(v) = item {
                let val = self.lower_let(&v.name.name);
                let position = self.constant_parts(&val);
                self.sites.push(SitePlan { name: v.name.name.clone(), position: position.into_iter().map(Num::new).collect() });
            }
        }
        let has_agents = !self.agents.is_empty();
        if has_agents && self.horizon.is_none() {
            let span = items.iter().find_map(|(o, i)| match i {
                Item::Instance(inst) if inst.kind == ItemKind::Agent => Some(inst.name.span.shift(*o)),
                _ => None,
            });
            self.diagnostics.push(
                Diagnostic::error(Code::MissingPlan, "a spec with an agent needs a `plan` block with `step` and `horizon`")
                    .with_label(Label::primary(span.unwrap_or_default(), "this agent is planned over a horizon"))
                    .with_help("try adding `plan { step: 100 ms, horizon: 4 s }`"),
            );
        }
        for (offset, item) in &items {
            self.offset = *offset;
            match item {
                Item::Goal(b) => self.lower_block(b, true),
                Item::Constraint(b) => self.lower_block(b, false),
                Item::World(w) => self.lower_world(w),
                Item::Refine(r) => self.lower_refine(r),
                _ => {}
            }
        }
        self.check_memory_budget(&items);
        let comparisons = std::mem::take(&mut self.comparisons);
        super::checks::run(self, &comparisons);
    }

    fn finish(mut self) -> Plan {
        self.graph.renumber_design_states(DESIGN_STATE_BASE, self.agent_plans.len() as u32);
        // Keep only what the terms read, numbered in evaluation order.
        let mut roots: Vec<NodeId> = Vec::new();
        for t in &self.terms {
            roots.push(t.energy);
            roots.extend(t.robustness);
        }
        let map = self.graph.prune(&roots);
        for t in &mut self.terms {
            t.energy = map[t.energy as usize].expect("roots are kept");
            t.robustness = t.robustness.map(|r| map[r as usize].expect("roots are kept"));
        }
        // Keep the parameters the graph reads, a refinement edits or an agent or design owns,
        // in first-use order.
        let edited: std::collections::HashSet<String> = self
            .refinements
            .iter()
            .flat_map(|r| r.steps.iter())
            .filter_map(|s| match &s.edit {
                Edit::Param { param, .. } => Some(param.clone()),
                _ => None,
            })
            .collect();
        let mut used = vec![false; self.params.len()];
        for node in &self.graph.nodes {
            if let Node::Param { index } = node {
                used[*index as usize] = true;
            }
        }
        // The runtime builds scenarios from agent and design parameters, read or not.
        let owners: Vec<String> = self.agents.iter().map(|a| format!("{}.", a.name)).chain(self.designs.iter().map(|d| format!("{}.", d.name))).collect();
        for (i, p) in self.params.iter().enumerate() {
            if edited.contains(&p.name) || owners.iter().any(|o| p.name.starts_with(o.as_str())) {
                used[i] = true;
            }
        }
        let mut renumber = vec![0u32; self.params.len()];
        let mut kept = Vec::new();
        for (i, p) in self.params.iter().enumerate() {
            if used[i] {
                renumber[i] = kept.len() as u32;
                kept.push(p.clone());
            }
        }
        self.params = kept;
        self.graph.renumber_params(&renumber);
        let text = self.file.text(self.db);
        Plan {
            version: PLAN_VERSION,
            source: self.file.path(self.db).clone(),
            source_sha256: sha256_hex(text.as_bytes()),
            contexts: self.contexts,
            agents: self.agent_plans,
            designs: self.design_plans,
            sites: self.sites,
            params: self.params,
            horizon: self.horizon,
            solver: self.solver,
            worlds: self.worlds,
            terms: self.terms,
            graph: self.graph,
            refinements: self.refinements,
        }
    }

    // Parameters and constants -------------------------------------------------------------

    /// Returns the parameter node named `name`, creating it with `value` the first time.
    fn param(&mut self, name: &str, value: f64, dim: Dim) -> NodeId {
        let index = match self.param_index.get(name) {
            Some(&i) => i,
            None => {
                let i = self.params.len() as u32;
                self.params.push(ParamPlan { name: name.to_string(), value: Num::new(value), unit: dim.unit_name() });
                self.param_index.insert(name.to_string(), i);
                i
            }
        };
        self.graph.add(Node::Param { index })
    }

    /// Turns constant numbers inside `val` into parameters named after `name`.
    fn parametrize(&mut self, name: &str, val: Val, dim: Option<&crate::check::Ty>) -> Val {
        match val {
            Val::Num(id) => match self.graph.const_value(id) {
                Some(v) => {
                    let d = dim.and_then(|t| t.dim()).unwrap_or(Dim::NONE);
                    Val::Num(self.param(name, v, d))
                }
                None => Val::Num(id),
            },
            Val::Tuple(parts) => {
                let tys: Vec<Option<crate::check::Ty>> = match dim {
                    Some(crate::check::Ty::Tuple(ts)) => ts.iter().cloned().map(Some).collect(),
                    _ => vec![None; parts.len()],
                };
                Val::Tuple(
                    parts
                        .into_iter()
                        .enumerate()
                        .map(|(i, p)| self.parametrize(&format!("{name}[{i}]"), p, tys.get(i).and_then(|t| t.as_ref())))
                        .collect(),
                )
            }
            other => other,
        }
    }

    fn constant_parts(&self, val: &Val) -> Vec<f64> {
        match val {
            Val::Num(id) => vec![self.value_of(*id).unwrap_or(f64::NAN)],
            Val::Tuple(parts) => parts.iter().flat_map(|p| self.constant_parts(p)).collect(),
            _ => Vec::new(),
        }
    }

    /// Evaluates a node built from constants and parameters only.
    fn value_of(&self, id: NodeId) -> Option<f64> {
        let node = self.graph.nodes.get(id as usize)?;
        Some(match node {
            Node::Const { value } => value.0,
            Node::Param { index } => self.params[*index as usize].value.0,
            Node::Neg { a } => -self.value_of(*a)?,
            Node::Add { a, b } => self.value_of(*a)? + self.value_of(*b)?,
            Node::Sub { a, b } => self.value_of(*a)? - self.value_of(*b)?,
            Node::Mul { a, b } => self.value_of(*a)? * self.value_of(*b)?,
            Node::Div { a, b } => self.value_of(*a)? / self.value_of(*b)?,
            Node::Powi { a, n } => self.value_of(*a)?.powi(*n),
            Node::Abs { a } => self.value_of(*a)?.abs(),
            Node::Sqrt { a } => self.value_of(*a)?.sqrt(),
            Node::Min { a, b } => self.value_of(*a)?.min(self.value_of(*b)?),
            Node::Max { a, b } => self.value_of(*a)?.max(self.value_of(*b)?),
            _ => return None,
        })
    }

    fn num_of(&self, val: &Val) -> Option<f64> {
        match val {
            Val::Num(id) => self.value_of(*id),
            _ => None,
        }
    }

    // Declarations -----------------------------------------------------------------------

    fn lower_plan(&mut self, p: &PlanDecl) {
        let mut step = None;
        let mut horizon = None;
        let mut time_limit = None;
        for f in &p.fields {
            match (f.name.name.as_str(), &f.value) {
                ("step", FieldValue::Expr(e)) => step = Some((self.const_expr(e), e.span)),
                ("horizon", FieldValue::Expr(e)) => horizon = Some((self.const_expr(e), e.span)),
                ("time_limit", FieldValue::Expr(e)) => time_limit = self.const_expr(e),
                ("solver", value) => self.solver = self.solver_stages(value),
                _ => {}
            }
        }
        let (step_value, step_span, horizon_value, horizon_span) = match (step, horizon) {
            // A design problem's plan may only choose a solver.
            (None, None) => return,
            (Some((Some(s), ss)), Some((Some(h), hs))) => (s, ss, h, hs),
            (None, _) => {
                let d = self.error(Code::MissingPlan, "the plan has a `horizon` but no `step`".into(), p.keyword, "needs `step`");
                self.diagnostics.push(d.with_help("try adding `step: 100 ms`"));
                return;
            }
            (_, None) => {
                let d = self.error(Code::MissingPlan, "the plan has a `step` but no `horizon`".into(), p.keyword, "needs `horizon`");
                self.diagnostics.push(d.with_help("try adding `horizon: 4 s`"));
                return;
            }
            // A value that is not constant was reported when it was checked.
            _ => return,
        };
        if step_value <= 0.0 {
            let d = self
                .error(Code::NonPositiveStep, format!("the step must be positive, found {} s", format_number(step_value)), step_span, "not a positive time")
                .with_help("try a step such as `100 ms`");
            self.diagnostics.push(d);
            return;
        }
        if horizon_value < step_value {
            let d = self
                .error(
                    Code::EmptyHorizon,
                    format!("the horizon ({} s) is shorter than one step ({} s)", format_number(horizon_value), format_number(step_value)),
                    horizon_span,
                    "no step fits in this horizon",
                )
                .with_help(format!("try a horizon of at least `{} s`", format_number(step_value)));
            self.diagnostics.push(d);
            return;
        }
        let ratio = horizon_value / step_value;
        let steps = ratio.round();
        if (ratio - steps).abs() > 1e-9 * ratio.max(1.0) {
            let lower = ratio.floor() * step_value;
            let upper = ratio.ceil() * step_value;
            let d = self
                .error(
                    Code::HorizonNotWhole,
                    format!(
                        "the horizon ({} s) is not a whole number of steps ({} s each): it is {} steps",
                        format_number(horizon_value),
                        format_number(step_value),
                        format_number(ratio)
                    ),
                    horizon_span,
                    "not a multiple of the step",
                )
                .with_help(format!("try `horizon: {} s` or `horizon: {} s`", format_number(lower), format_number(upper)));
            self.diagnostics.push(d);
            return;
        }
        if steps > 100_000.0 {
            let d = self.error(Code::MemoryBudget, format!("the horizon has {steps} steps, more than 100000"), horizon_span, "too many steps");
            self.diagnostics.push(d.with_help("try a longer step or a shorter horizon"));
            return;
        }
        self.horizon = Some(HorizonPlan {
            step: Num::new(step_value),
            horizon: Num::new(horizon_value),
            steps: steps as u32,
            time_limit: time_limit.map(Num::new),
        });
    }

    fn solver_stages(&mut self, value: &FieldValue) -> Vec<SolverStage> {
        let stages: Vec<(String, Vec<Field>)> = match value {
            FieldValue::Stages(stages) => stages.iter().map(|s| (s.name.name.clone(), s.fields.clone())).collect(),
            FieldValue::Expr(Expr { kind: ExprKind::Record { name, fields }, .. }) => vec![(name.name.clone(), fields.clone())],
            FieldValue::Expr(Expr { kind: ExprKind::Name(name), .. }) => vec![(name.name.clone(), Vec::new())],
            FieldValue::Expr(_) => Vec::new(),
        };
        stages.into_iter().map(|(name, fields)| SolverStage { name, settings: self.settings(&fields) }).collect()
    }

    fn settings(&mut self, fields: &[Field]) -> Vec<Setting> {
        let mut out: Vec<Setting> = fields
            .iter()
            .filter_map(|f| {
                let FieldValue::Expr(e) = &f.value else { return None };
                let value = match &e.kind {
                    ExprKind::Name(id) => SettingValue::Word(id.name.clone()),
                    ExprKind::Str(s) => SettingValue::Word(s.clone()),
                    _ => SettingValue::Number(Num::new(self.const_expr(e)?)),
                };
                Some(Setting { name: f.name.name.clone(), value })
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// Evaluates an expression that must be constant, in SI.
    fn const_expr(&mut self, e: &Expr) -> Option<f64> {
        let v = self.expr(e);
        self.num_of(&v)
    }

    fn lower_context(&mut self, c: &ContextDecl) {
        let index = self.contexts.len() as u32;
        self.context_index.insert(c.name.name.clone(), index);
        let arg = match c.args.first().map(|a| &a.kind) {
            Some(ExprKind::Str(s)) => s.clone(),
            _ => String::new(),
        };
        let arg_span = c.args.first().map_or(c.loader.span, |a| a.span);
        let settings = self.settings(&c.fields);
        let inline_text = c.loader.name == "text" && !looks_like_file(&arg);
        let (sha, size) = if inline_text {
            (Some(sha256_hex(arg.as_bytes())), Some(arg.len() as u64))
        } else {
            match self.read_context(&c.loader.name, &arg, arg_span) {
                Some((sha, size)) => (Some(sha), Some(size)),
                None => (None, None),
            }
        };
        self.contexts.push(ContextPlan { name: c.name.name.clone(), loader: c.loader.name.clone(), path: arg, sha256: sha, size, settings });
    }

    /// Checks and hashes a context file. Returns `None` when files are not read (no base
    /// folder) or on error, which is reported.
    fn read_context(&mut self, loader: &str, path: &str, span: Span) -> Option<(String, u64)> {
        let base = self.options.base_dir.clone()?;
        let relative = FsPath::new(path);
        let escapes = relative.is_absolute() || {
            let mut depth: i32 = 0;
            relative.components().any(|c| {
                match c {
                    std::path::Component::ParentDir => depth -= 1,
                    std::path::Component::Normal(_) => depth += 1,
                    _ => {}
                }
                depth < 0
            })
        };
        if escapes && !self.options.allow_outside {
            let d = self
                .error(Code::ContextOutside, format!("context path `{path}` leaves the spec's folder"), span, "outside the project folder")
                .with_help("try copying the file next to the spec, or pass `--allow-outside`");
            self.diagnostics.push(d);
            return None;
        }
        let full = base.join(relative);
        let meta = match std::fs::metadata(&full) {
            Ok(m) if m.is_file() => m,
            Ok(_) => {
                let d = self.error(Code::ContextMissing, format!("context path `{path}` is not a file"), span, "not a file");
                self.diagnostics.push(d.with_help("try the path of a file, relative to the spec"));
                return None;
            }
            Err(e) => {
                let d = self
                    .error(Code::ContextMissing, format!("cannot read context file `{path}`: {e}"), span, "file not found or unreadable")
                    .with_help(format!("try a path relative to the spec's folder `{}`", base.display()));
                self.diagnostics.push(d);
                return None;
            }
        };
        if meta.len() > MAX_CONTEXT_BYTES {
            let d = self
                .error(
                    Code::ContextTooLarge,
                    format!("context file `{path}` is {} bytes, more than the limit of {MAX_CONTEXT_BYTES}", meta.len()),
                    span,
                    "file too large",
                )
                .with_help("try a smaller or downsampled file");
            self.diagnostics.push(d);
            return None;
        }
        let bytes = match std::fs::read(&full) {
            Ok(b) => b,
            Err(e) => {
                let d = self.error(Code::ContextMissing, format!("cannot read context file `{path}`: {e}"), span, "unreadable");
                self.diagnostics.push(d);
                return None;
            }
        };
        if let Some(problem) = format_problem(loader, &bytes) {
            let d = self
                .error(Code::ContextFormat, format!("context file `{path}` is not a valid `{loader}` file: {problem}"), span, "wrong format")
                .with_help(format!("try a file in the format `{loader}` reads; see spec/language.md"));
            self.diagnostics.push(d);
            return None;
        }
        Some((sha256_hex(&bytes), bytes.len() as u64))
    }

    fn find_model(&self, path: &syntax::Path) -> Option<ModelDef> {
        let name = &path.segments.last()?.name;
        if path.segments.len() == 1 {
            // A local model, or one imported with `use`.
            for (_, item) in &self.items {
                if let Item::Model(m) = item {
                    if &m.name.name == name {
                        return Some(ModelDef { path: name.clone(), decl: m.clone() });
                    }
                }
            }
            let env = file_env(self.db, self.file);
            if let Some(crate::check::Symbol { origin: crate::check::Origin::Module(module), .. }) = env.symbols.get(name) {
                return self.model_in_module(module, name);
            }
            return None;
        }
        let module: Vec<&str> = path.segments[..path.segments.len() - 1].iter().map(|s| s.name.as_str()).collect();
        self.model_in_module(&module.join("."), name)
    }

    fn model_in_module(&self, module: &str, name: &str) -> Option<ModelDef> {
        let file = self.db.module(module)?;
        for e in &file_items(self.db, file).items {
            if let Some(Item::Model(m)) = &parse(self.db, e.key).item {
                if m.name.name == name {
                    return Some(ModelDef { path: format!("{module}.{name}"), decl: m.clone() });
                }
            }
        }
        None
    }

    /// Binds a model's members for one instance: parameters from the fields or defaults.
    fn bind_params(&mut self, instance: &str, model: &ModelDef, fields: &[Field], design: Option<u32>) -> Vec<(String, Val)> {
        let mut members: Vec<(String, Val)> = Vec::new();
        let env = file_env(self.db, self.file).clone();
        let mut checker = crate::check::Checker::new(&env);
        let types: BTreeMap<String, crate::check::Ty> =
            model.decl.members.iter().map(|m| (m.name.name.clone(), checker.type_of_annotation(&m.ty))).collect();
        for m in &model.decl.members {
            if m.kind != MemberKind::Param {
                continue;
            }
            let name = format!("{instance}.{}", m.name.name);
            let field = fields.iter().find(|f| f.name.name == m.name.name);
            let val = match field.map(|f| &f.value) {
                Some(FieldValue::Expr(e)) => match (&e.kind, design) {
                    (ExprKind::Binary { op: BinOp::RangeIncl | BinOp::Range, lhs, rhs }, Some(d)) => {
                        let lower = self.const_expr(lhs).unwrap_or(f64::NAN);
                        let upper = self.const_expr(rhs).unwrap_or(f64::NAN);
                        let unit = types.get(&m.name.name).and_then(|t| t.dim()).unwrap_or(Dim::NONE).unit_name();
                        self.design_variable(d, &name, unit, Domain::Continuous { lower: Num::new(lower), upper: Num::new(upper) })
                    }
                    (ExprKind::Binary { op: BinOp::Choice, .. }, Some(d)) => {
                        let mut options = Vec::new();
                        for option in choice_options(e) {
                            let label = match &option.kind {
                                ExprKind::Name(id) => id.name.clone(),
                                _ => self.text_of(option.span),
                            };
                            let v = self.expr(option);
                            options.push((label, v));
                        }
                        let names: Vec<String> = options.iter().map(|(n, _)| n.clone()).collect();
                        let var = self.design_variable(d, &name, String::new(), Domain::Discrete { choices: names });
                        match var {
                            Val::Num(index) => Val::Choice { index, options },
                            other => other,
                        }
                    }
                    _ => {
                        let v = self.expr(e);
                        self.parametrize(&name, v, types.get(&m.name.name))
                    }
                },
                _ => match &m.default {
                    Some(default) => {
                        // Defaults may read other parameters of the same instance.
                        self.scope.push(members.iter().cloned().collect());
                        let v = self.expr(default);
                        self.scope.pop();
                        self.parametrize(&name, v, types.get(&m.name.name))
                    }
                    None => Val::Unknown,
                },
            };
            members.push((m.name.name.clone(), val));
        }
        members
    }

    fn design_variable(&mut self, design: u32, name: &str, unit: String, domain: Domain) -> Val {
        let plan = &mut self.design_plans[design as usize];
        let variable = plan.variables.len() as u32 + self.design_plans[..design as usize].iter().map(|d| d.variables.len() as u32).sum::<u32>();
        self.design_plans[design as usize].variables.push(DesignVariable { name: name.to_string(), unit, domain });
        Val::Num(self.graph.add(Node::Design { variable }))
    }

    fn lower_agent(&mut self, i: &InstanceDecl) {
        let Some(model) = self.find_model(&i.model) else { return };
        let index = self.agents.len() as u32;
        let mut members = self.bind_params(&i.name.name, &model, &i.fields, None);
        let mut states = Vec::new();
        let mut actions = Vec::new();
        for m in &model.decl.members {
            let unit = self.unit_of(&m.ty);
            match m.kind {
                MemberKind::State => {
                    let component = states.len() as u32;
                    states.push(Component { name: m.name.name.clone(), unit, lower: None, upper: None, initial: None });
                    members.push((m.name.name.clone(), Val::Num(self.graph.add(Node::State { agent: index, component }))));
                }
                MemberKind::Action => {
                    let component = actions.len() as u32;
                    actions.push(Component { name: m.name.name.clone(), unit, lower: None, upper: None, initial: None });
                    members.push((m.name.name.clone(), Val::Num(self.graph.add(Node::Action { agent: index, component }))));
                }
                _ => {}
            }
        }
        // Bounds read parameters, so they are evaluated once all members are bound.
        self.scope.push(members.iter().cloned().collect());
        let mut state_i = 0;
        let mut action_i = 0;
        for m in &model.decl.members {
            let target = match m.kind {
                MemberKind::State => {
                    state_i += 1;
                    Some((true, state_i - 1))
                }
                MemberKind::Action => {
                    action_i += 1;
                    Some((false, action_i - 1))
                }
                _ => None,
            };
            let (Some((is_state, k)), Some(bounds)) = (target, &m.bounds) else { continue };
            let (lower, upper) = match &bounds.kind {
                ExprKind::Binary { op: BinOp::RangeIncl | BinOp::Range, lhs, rhs } => (self.const_expr(lhs), self.const_expr(rhs)),
                _ => (None, None),
            };
            let c = if is_state { &mut states[k] } else { &mut actions[k] };
            c.lower = lower.map(Num::new);
            c.upper = upper.map(Num::new);
        }
        self.scope.pop();
        // The `start` parameter gives the leading states in declaration order. States after
        // it (velocities a model adds to its pose) start at zero, at rest.
        if let Some((_, start)) = members.iter().find(|(n, _)| n == "start") {
            let values = self.constant_parts(start);
            if !values.is_empty() && values.len() <= states.len() {
                let rest = std::iter::repeat(0.0);
                for (s, v) in states.iter_mut().zip(values.into_iter().chain(rest)) {
                    s.initial = Some(Num::new(v));
                }
            }
            self.check_initial(i, &states);
        }
        self.agents.push(AgentInfo { name: i.name.name.clone(), model: model.clone(), members });
        self.agent_plans.push(AgentPlan { name: i.name.name.clone(), model: model.path.clone(), states, actions });
    }

    fn check_initial(&mut self, i: &InstanceDecl, states: &[Component]) {
        for s in states {
            let Some(x) = s.initial else { continue };
            let below = s.lower.filter(|l| x.0 < l.0);
            let above = s.upper.filter(|u| x.0 > u.0);
            if below.is_none() && above.is_none() {
                continue;
            }
            let span = i.fields.iter().find(|f| f.name.name == "start").map_or(i.name.span, |f| f.span);
            let (which, bound) = match below {
                Some(l) => ("lower", l.0),
                None => ("upper", above.map_or(0.0, |u| u.0)),
            };
            let d = self
                .error(
                    Code::InitialOutsideBounds,
                    format!(
                        "initial `{}` of `{}` is {} {}, outside its {which} bound {} {}",
                        s.name,
                        i.name.name,
                        format_number(x.0),
                        s.unit,
                        format_number(bound),
                        s.unit
                    ),
                    span,
                    "the start is outside the state's bounds",
                )
                .with_help(format!("try a start value for `{}` between its bounds", s.name));
            self.diagnostics.push(d);
        }
    }

    fn lower_design(&mut self, i: &InstanceDecl) {
        let Some(model) = self.find_model(&i.model) else { return };
        let index = self.designs.len() as u32;
        self.design_plans.push(DesignPlan { name: i.name.name.clone(), model: model.path.clone(), variables: Vec::new(), states: Vec::new() });
        let mut members = self.bind_params(&i.name.name, &model, &i.fields, Some(index));
        // A design's states are the outcomes of its scenario. Their nodes name the design by
        // a placeholder until every agent is known (`finish` renumbers them after the agents).
        for m in &model.decl.members {
            if m.kind == MemberKind::State {
                let unit = self.unit_of(&m.ty);
                let states = &mut self.design_plans[index as usize].states;
                let component = states.len() as u32;
                states.push(Component { name: m.name.name.clone(), unit, lower: None, upper: None, initial: None });
                let node = self.graph.add(Node::State { agent: DESIGN_STATE_BASE + index, component });
                members.push((m.name.name.clone(), Val::Num(node)));
            }
        }
        self.designs.push(DesignInfo { name: i.name.name.clone(), model, members });
    }

    fn unit_of(&mut self, t: &TypeExpr) -> String {
        let env = file_env(self.db, self.file).clone();
        let mut checker = crate::check::Checker::new(&env);
        match checker.type_of_annotation(t) {
            crate::check::Ty::Num(d) => d.unit_name(),
            other => other.short(),
        }
    }

    fn text_of(&self, span: Span) -> String {
        let s = span.shift(self.offset);
        self.text.get(s.range()).unwrap_or("").split_whitespace().collect::<Vec<_>>().join(" ")
    }

    fn lower_let(&mut self, name: &str) -> Val {
        if let Some(v) = self.lets.get(name) {
            return v.clone();
        }
        if self.lets_visiting.iter().any(|n| n == name) {
            return Val::Unknown;
        }
        let found = self.items.iter().find_map(|(o, item)| match item {
            Item::Let(v) | Item::Site(v) if v.name.name == name => Some((*o, v.value.clone())),
            _ => None,
        });
        let Some((offset, value)) = found else { return Val::Unknown };
        self.lets_visiting.push(name.to_string());
        let saved = std::mem::replace(&mut self.offset, offset);
        let saved_scope = std::mem::take(&mut self.scope);
        let v = self.expr(&value);
        self.scope = saved_scope;
        self.offset = saved;
        self.lets_visiting.pop();
        let env = file_env(self.db, self.file);
        let ty = env.symbols.get(name).map(|s| s.ty.clone());
        let v = self.parametrize(name, v, ty.as_ref());
        self.lets.insert(name.to_string(), v.clone());
        v
    }

    /// Lowers a `let` of a standard library module, such as a material.
    fn module_let(&mut self, module: &str, name: &str) -> Val {
        let key = format!("{module}.{name}");
        if let Some(v) = self.lets.get(&key) {
            return v.clone();
        }
        let Some(file) = self.db.module(module) else { return Val::Unknown };
        let value = file_items(self.db, file).items.iter().find_map(|e| match &parse(self.db, e.key).item {
            Some(Item::Let(v)) if v.name.name == name => Some(v.value.clone()),
            _ => None,
        });
        let Some(value) = value else { return Val::Unknown };
        let saved_scope = std::mem::take(&mut self.scope);
        let v = self.expr(&value);
        self.scope = saved_scope;
        let v = match v {
            Val::Record { name: model, fields } => {
                let info = match file_env(self.db, file).symbols.get(&model).map(|s| &s.ty) {
                    Some(crate::check::Ty::Model(m)) => Some(m.clone()),
                    _ => None,
                };
                let fields = fields
                    .into_iter()
                    .map(|(f, fv)| {
                        let ty = info.as_ref().and_then(|m| m.member(&f)).map(|m| m.ty.clone());
                        (f.clone(), self.parametrize(&format!("{name}.{f}"), fv, ty.as_ref()))
                    })
                    .collect();
                Val::Record { name: model, fields }
            }
            other => self.parametrize(name, other, None),
        };
        self.lets.insert(key, v.clone());
        v
    }

    // Expressions ------------------------------------------------------------------------

    fn expr(&mut self, e: &Expr) -> Val {
        match &e.kind {
            ExprKind::Quantity { value, unit, .. } => {
                let factor = match unit {
                    None => 1.0,
                    Some(u) => unit_factor(u).unwrap_or(f64::NAN),
                };
                Val::Num(self.graph.constant(value * factor))
            }
            ExprKind::Str(_) => Val::Str,
            ExprKind::Bool(b) => Val::Cond(self.graph.constant(if *b { 1.0 } else { -1.0 })),
            ExprKind::Error => Val::Unknown,
            ExprKind::Paren(inner) => self.expr(inner),
            ExprKind::Name(id) => self.name(&id.name),
            ExprKind::Tuple(parts) | ExprKind::List(parts) => Val::Tuple(parts.iter().map(|p| self.expr(p)).collect()),
            ExprKind::Record { name, fields } => {
                let fields = fields
                    .iter()
                    .filter_map(|f| match &f.value {
                        FieldValue::Expr(e) => Some((f.name.name.clone(), self.expr(e))),
                        FieldValue::Stages(_) => None,
                    })
                    .collect();
                Val::Record { name: name.name.clone(), fields }
            }
            ExprKind::Field { base, field } => {
                let b = self.expr(base);
                self.field(b, &field.name)
            }
            ExprKind::Index { base, index } => {
                let b = self.expr(base);
                match (b, self.const_expr(index)) {
                    (Val::Tuple(parts), Some(i)) if i >= 0.0 && (i as usize) < parts.len() => parts[i as usize].clone(),
                    _ => Val::Unknown,
                }
            }
            ExprKind::Call { callee, args } => match &callee.kind {
                ExprKind::Name(id) => self.call(&id.name, args, e.span),
                _ => Val::Unknown,
            },
            ExprKind::Unary { op, operand } => {
                let v = self.expr(operand);
                match (op, v) {
                    (UnOp::Neg, v) => self.map_num(v, &|g, a| g.add(Node::Neg { a })),
                    (UnOp::Not, Val::Cond(a)) => Val::Cond(self.graph.add(Node::Neg { a })),
                    _ => Val::Unknown,
                }
            }
            ExprKind::Binary { op, lhs, rhs } => self.binary(*op, lhs, rhs),
        }
    }

    fn map_num(&mut self, v: Val, f: &dyn Fn(&mut Graph, NodeId) -> NodeId) -> Val {
        match v {
            Val::Num(a) => Val::Num(f(&mut self.graph, a)),
            Val::Tuple(parts) => Val::Tuple(parts.into_iter().map(|p| self.map_num(p, f)).collect()),
            _ => Val::Unknown,
        }
    }

    fn name(&mut self, name: &str) -> Val {
        for scope in self.scope.iter().rev() {
            if let Some(v) = scope.get(name) {
                return v.clone();
            }
        }
        if let Some((model, members)) = self.signal_owner.last().cloned() {
            if model.decl.members.iter().any(|m| m.name.name == name && m.kind == MemberKind::Signal) {
                return self.signal(&model, &members, name);
            }
        }
        if let Some(i) = self.agents.iter().position(|a| a.name == name) {
            return Val::Agent(i as u32);
        }
        if let Some(i) = self.designs.iter().position(|d| d.name == name) {
            return Val::Design(i as u32);
        }
        if let Some(&i) = self.context_index.get(name) {
            return Val::Context(i);
        }
        let is_local_value = self.items.iter().any(|(_, item)| matches!(item, Item::Let(v) | Item::Site(v) if v.name.name == name));
        if is_local_value {
            return self.lower_let(name);
        }
        let env = file_env(self.db, self.file);
        if let Some(crate::check::Symbol { origin: crate::check::Origin::Module(module), .. }) = env.symbols.get(name) {
            let module = module.clone();
            return self.module_let(&module, name);
        }
        match name {
            "time" => Val::Num(self.graph.add(Node::Time)),
            "pi" => Val::Num(self.graph.constant(std::f64::consts::PI)),
            _ => Val::Unknown,
        }
    }

    fn field(&mut self, base: Val, field: &str) -> Val {
        match base {
            Val::Agent(i) => {
                let members = self.agents[i as usize].members.clone();
                if let Some((_, v)) = members.iter().find(|(n, _)| n == field) {
                    return v.clone();
                }
                let model = self.agents[i as usize].model.clone();
                self.signal(&model, &members, field)
            }
            Val::Design(i) => {
                let members = self.designs[i as usize].members.clone();
                if let Some((_, v)) = members.iter().find(|(n, _)| n == field) {
                    return v.clone();
                }
                let model = self.designs[i as usize].model.clone();
                self.signal(&model, &members, field)
            }
            Val::Record { fields, .. } => fields.into_iter().find(|(n, _)| n == field).map_or(Val::Unknown, |(_, v)| v),
            Val::Choice { index, options } => {
                let mut nodes = Vec::new();
                for (_, option) in options {
                    match self.field(option, field) {
                        Val::Num(n) => nodes.push(n),
                        _ => return Val::Unknown,
                    }
                }
                Val::Num(self.graph.add(Node::Select { index, options: nodes }))
            }
            Val::Tuple(parts) => {
                let i = match field {
                    "x" => 0,
                    "y" => 1,
                    "z" => 2,
                    _ => return Val::Unknown,
                };
                parts.get(i).cloned().unwrap_or(Val::Unknown)
            }
            _ => Val::Unknown,
        }
    }

    /// Lowers a derived signal of a model with the instance's members in scope.
    fn signal(&mut self, model: &ModelDef, members: &[(String, Val)], field: &str) -> Val {
        let Some(m) = model.decl.members.iter().find(|m| m.name.name == field && m.kind == MemberKind::Signal) else {
            return Val::Unknown;
        };
        let Some(body) = m.default.clone() else { return Val::Unknown };
        if self.call_depth >= MAX_CALL_DEPTH {
            return Val::Unknown;
        }
        self.call_depth += 1;
        self.scope.push(members.iter().cloned().collect());
        self.signal_owner.push((model.clone(), members.to_vec()));
        let v = self.expr(&body);
        self.signal_owner.pop();
        self.scope.pop();
        self.call_depth -= 1;
        v
    }

    fn nums(&self, args: &[Val]) -> Option<Vec<NodeId>> {
        args.iter()
            .map(|a| match a {
                Val::Num(n) => Some(*n),
                _ => None,
            })
            .collect()
    }

    fn call(&mut self, name: &str, args: &[Expr], span: Span) -> Val {
        let vals: Vec<Val> = args.iter().map(|a| self.expr(a)).collect();
        let is_local = self.scope.iter().any(|s| s.contains_key(name));
        let env = file_env(self.db, self.file).clone();
        let user_fn = env.symbols.get(name).filter(|s| matches!(s.ty, crate::check::Ty::Fn(_))).cloned();
        if user_fn.is_none() && !is_local {
            if let Some(v) = self.intrinsic(name, &vals) {
                return v;
            }
        }
        // A `fn` from the file or the standard library: lower its body with the arguments
        // bound to its parameters.
        let decl = self.find_fn(name, user_fn.as_ref());
        let Some(decl) = decl else { return Val::Unknown };
        if self.call_depth >= MAX_CALL_DEPTH {
            let d = self
                .error(Code::TooDeep, format!("calls nested more than {MAX_CALL_DEPTH} deep while lowering `{name}`"), span, "is a function calling itself?")
                .with_help("try removing the recursion: functions are expanded inline");
            self.diagnostics.push(d);
            return Val::Unknown;
        }
        let scope: BTreeMap<String, Val> = decl.params.iter().map(|p| p.name.name.clone()).zip(vals).collect();
        self.call_depth += 1;
        self.scope.push(scope);
        let v = self.expr(&decl.body);
        self.scope.pop();
        self.call_depth -= 1;
        v
    }

    fn find_fn(&self, name: &str, symbol: Option<&crate::check::Symbol>) -> Option<FnDecl> {
        let module = match symbol.map(|s| &s.origin) {
            Some(crate::check::Origin::Module(m)) => Some(m.clone()),
            _ => None,
        };
        let items: Vec<Item> = match &module {
            Some(m) => {
                let file = self.db.module(m)?;
                file_items(self.db, file).items.iter().filter_map(|e| parse(self.db, e.key).item.clone()).collect()
            }
            None => self.items.iter().map(|(_, i)| i.clone()).collect(),
        };
        items.into_iter().find_map(|i| match i {
            Item::Fn(f) if f.name.name == name => Some(f),
            _ => None,
        })
    }

    fn intrinsic(&mut self, name: &str, vals: &[Val]) -> Option<Val> {
        let unary = |g: &mut Graph, a: NodeId, name: &str| -> NodeId {
            match name {
                "abs" => g.add(Node::Abs { a }),
                "sqrt" => g.add(Node::Sqrt { a }),
                "sin" => g.add(Node::Sin { a }),
                "cos" => g.add(Node::Cos { a }),
                "tan" => g.add(Node::Tan { a }),
                "exp" => g.add(Node::Exp { a }),
                _ => g.add(Node::Log { a }),
            }
        };
        Some(match name {
            "abs" | "sqrt" | "sin" | "cos" | "tan" | "exp" | "log" => match vals.first()? {
                Val::Num(a) => Val::Num(unary(&mut self.graph, *a, name)),
                Val::Tuple(_) if name == "abs" => {
                    let parts = self.flatten(&vals[0])?;
                    Val::Num(self.graph.add(Node::Norm { args: parts, epsilon: Num::new(NORM_EPSILON) }))
                }
                _ => Val::Unknown,
            },
            "min" | "max" => {
                let nodes = self.nums(vals)?;
                let mut acc = nodes[0];
                for &n in &nodes[1..] {
                    acc = if name == "min" { self.graph.add(Node::Min { a: acc, b: n }) } else { self.graph.add(Node::Max { a: acc, b: n }) };
                }
                Val::Num(acc)
            }
            "atan2" => {
                let nodes = self.nums(vals)?;
                Val::Num(self.graph.add(Node::Atan2 { y: nodes[0], x: nodes[1] }))
            }
            "norm" => {
                let parts = self.flatten(vals.first()?)?;
                Val::Num(self.graph.add(Node::Norm { args: parts, epsilon: Num::new(NORM_EPSILON) }))
            }
            "pose" => Val::Tuple(vals.to_vec()),
            "box" => {
                let nodes = self.nums(vals)?;
                Val::Shape(Shape::Box { width: nodes[0], depth: nodes[1] })
            }
            "circle" => {
                let nodes = self.nums(vals)?;
                Val::Shape(Shape::Circle { radius: nodes[0] })
            }
            "clearance" => {
                let (Val::Agent(agent), Val::Context(context)) = (vals.first()?, vals.get(1)?) else { return Some(Val::Unknown) };
                let members = self.agents[*agent as usize].members.clone();
                let get = |n: &str| members.iter().find(|(m, _)| m == n).map(|(_, v)| v.clone());
                let (Some(Val::Num(x)), Some(Val::Num(y))) = (get("x"), get("y")) else { return Some(Val::Unknown) };
                let distance = self.graph.add(Node::Distance { context: *context, x, y });
                match get("radius") {
                    Some(Val::Num(r)) => Val::Num(self.graph.add(Node::Sub { a: distance, b: r })),
                    _ => Val::Num(distance),
                }
            }
            _ => return None,
        })
    }

    fn flatten(&self, v: &Val) -> Option<Vec<NodeId>> {
        match v {
            Val::Num(n) => Some(vec![*n]),
            Val::Tuple(parts) => {
                let mut out = Vec::new();
                for p in parts {
                    out.extend(self.flatten(p)?);
                }
                Some(out)
            }
            _ => None,
        }
    }

    fn binary(&mut self, op: BinOp, lhs: &Expr, rhs: &Expr) -> Val {
        let l = self.expr(lhs);
        let r = self.expr(rhs);
        match op {
            BinOp::And | BinOp::Or => match (l, r) {
                (Val::Cond(a), Val::Cond(b)) => {
                    let t = Num::new(ROBUSTNESS_TEMPERATURE);
                    Val::Cond(if op == BinOp::And {
                        self.graph.add(Node::SoftMin { args: vec![a, b], temperature: t })
                    } else {
                        self.graph.add(Node::SoftMax { args: vec![a, b], temperature: t })
                    })
                }
                _ => Val::Unknown,
            },
            _ if op.is_comparison() => {
                let (Some(a), Some(b)) = (self.scalar_or_norm(&l), self.scalar_or_norm(&r)) else { return Val::Unknown };
                let g = &mut self.graph;
                let margin = match op {
                    BinOp::Lt | BinOp::Le => g.add(Node::Sub { a: b, b: a }),
                    BinOp::Gt | BinOp::Ge => g.add(Node::Sub { a, b }),
                    BinOp::Eq => {
                        let d = g.add(Node::Sub { a, b });
                        let abs = g.add(Node::Abs { a: d });
                        g.add(Node::Neg { a: abs })
                    }
                    _ => {
                        let d = g.add(Node::Sub { a, b });
                        g.add(Node::Abs { a: d })
                    }
                };
                Val::Cond(margin)
            }
            BinOp::Add | BinOp::Sub => self.zip(l, r, &|g, a, b| if op == BinOp::Add { g.add(Node::Add { a, b }) } else { g.add(Node::Sub { a, b }) }),
            BinOp::Mul | BinOp::Div => {
                let f = |g: &mut Graph, a: NodeId, b: NodeId| if op == BinOp::Mul { g.add(Node::Mul { a, b }) } else { g.add(Node::Div { a, b }) };
                match (l, r) {
                    (Val::Num(a), Val::Num(b)) => Val::Num(f(&mut self.graph, a, b)),
                    (Val::Tuple(parts), Val::Num(b)) => self.map_num(Val::Tuple(parts), &|g, a| f(g, a, b)),
                    (Val::Num(a), Val::Tuple(parts)) if op == BinOp::Mul => self.map_num(Val::Tuple(parts), &|g, b| f(g, a, b)),
                    _ => Val::Unknown,
                }
            }
            BinOp::Pow => match (l, literal_int(rhs)) {
                (Val::Num(a), Some(n)) => Val::Num(self.graph.add(Node::Powi { a, n })),
                (Val::Num(a), None) => match r {
                    // x^y = exp(y · ln x) for dimensionless x > 0.
                    Val::Num(b) => {
                        let ln = self.graph.add(Node::Log { a });
                        let prod = self.graph.add(Node::Mul { a: b, b: ln });
                        Val::Num(self.graph.add(Node::Exp { a: prod }))
                    }
                    _ => Val::Unknown,
                },
                _ => Val::Unknown,
            },
            // Ranges and choices only mean something as design fields, handled there.
            BinOp::Range | BinOp::RangeIncl | BinOp::Choice => Val::Unknown,
            _ => Val::Unknown,
        }
    }

    /// Lowers a comparison operand: a number, or the length of a vector.
    fn scalar_or_norm(&mut self, v: &Val) -> Option<NodeId> {
        match v {
            Val::Num(n) => Some(*n),
            Val::Tuple(_) => {
                let parts = self.flatten(v)?;
                Some(self.graph.add(Node::Norm { args: parts, epsilon: Num::new(NORM_EPSILON) }))
            }
            _ => None,
        }
    }

    fn zip(&mut self, l: Val, r: Val, f: &dyn Fn(&mut Graph, NodeId, NodeId) -> NodeId) -> Val {
        match (l, r) {
            (Val::Num(a), Val::Num(b)) => Val::Num(f(&mut self.graph, a, b)),
            (Val::Tuple(xs), Val::Tuple(ys)) if xs.len() == ys.len() => Val::Tuple(xs.into_iter().zip(ys).map(|(x, y)| self.zip(x, y, f)).collect()),
            _ => Val::Unknown,
        }
    }

    // Goals and constraints --------------------------------------------------------------

    fn steps_of(&mut self, e: &Expr) -> u32 {
        let t = self.const_expr(e).unwrap_or(0.0);
        match &self.horizon {
            Some(h) => (t / h.step.0).round().clamp(0.0, u32::MAX as f64) as u32,
            None => 0,
        }
    }

    fn formula(&mut self, f: &Formula, term: u32) -> Option<NodeId> {
        let t = Num::new(ROBUSTNESS_TEMPERATURE);
        Some(match f {
            Formula::Atom(e) => {
                if let ExprKind::Binary { op, lhs, rhs } = &e.kind {
                    if op.is_comparison() {
                        let l = self.expr(lhs);
                        let r = self.expr(rhs);
                        if let (Some(a), Some(b)) = (self.scalar_or_norm(&l), self.scalar_or_norm(&r)) {
                            self.comparisons.entry(term).or_insert((a, b, e.span.shift(self.offset)));
                        }
                    }
                }
                match self.expr(e) {
                    Val::Cond(n) => n,
                    _ => return None,
                }
            }
            Formula::Always { window, body, .. } | Formula::Eventually { window, body, .. } => {
                let body = self.formula(body, term)?;
                let (from, to) = match window {
                    Some(w) => (self.steps_of(&w.start), self.steps_of(&w.end)),
                    None => (0, u32::MAX),
                };
                if matches!(f, Formula::Always { .. }) {
                    self.graph.add(Node::Always { body, from, to, temperature: t })
                } else {
                    self.graph.add(Node::Eventually { body, from, to, temperature: t })
                }
            }
            Formula::Until { lhs, rhs, .. } => {
                let lhs = self.formula(lhs, term)?;
                let rhs = self.formula(rhs, term)?;
                self.graph.add(Node::Until { lhs, rhs, temperature: t })
            }
            Formula::Then { first, next, .. } => {
                let a = self.formula(first, term)?;
                let b = self.formula(next, term)?;
                let later = self.graph.add(Node::Eventually { body: b, from: 0, to: u32::MAX, temperature: t });
                let both = self.graph.add(Node::SoftMin { args: vec![a, later], temperature: t });
                self.graph.add(Node::Eventually { body: both, from: 0, to: u32::MAX, temperature: t })
            }
        })
    }

    fn penalty(&mut self, robustness: NodeId, weight: f64) -> NodeId {
        let neg = self.graph.add(Node::Neg { a: robustness });
        let soft = self.graph.add(Node::SoftPlus { a: neg, temperature: Num::new(PENALTY_TEMPERATURE) });
        let w = self.graph.constant(weight);
        self.graph.add(Node::Mul { a: w, b: soft })
    }

    fn lower_block(&mut self, b: &ClauseBlock, is_goal: bool) {
        // Reach clauses first: their phases and targets feed `duration` and `finish_by`.
        // A reach that cannot be lowered is reported and keeps its slot as `None`, so the
        // others stay paired with their clauses.
        let mut reaches: Vec<Option<ReachInfo>> = Vec::new();
        let mut phase = 0u32;
        for clause in &b.clauses {
            if let ClauseKind::Reach { then, what, target, tolerance } = &clause.kind {
                if *then && !reaches.is_empty() {
                    phase += 1;
                }
                let subject = self.expr(what);
                let goal = self.expr(target);
                let tolerance = match tolerance.as_ref().map(|t| self.expr(t)) {
                    Some(Val::Num(n)) => n,
                    _ => self.graph.constant(0.0),
                };
                let agent = root_agent(what).and_then(|n| self.agents.iter().position(|a| a.name == n)).map(|i| i as u32);
                match (self.flatten(&subject), self.flatten(&goal)) {
                    (Some(subject), Some(target)) => reaches.push(Some(ReachInfo { subject, target, tolerance, phase, agent })),
                    _ => {
                        let source = self.text_of(clause.span);
                        self.unlowerable(clause.span, &source);
                        reaches.push(None);
                    }
                }
            }
        }
        let known: Vec<ReachInfo> = reaches.iter().flatten().cloned().collect();
        let phases = known.iter().map(|r| r.phase + 1).max().unwrap_or(0);
        let phase_param = if known.is_empty() { None } else { Some(self.param(&format!("{}.phase", b.name.name), 0.0, Dim::NONE)) };

        // Conditions of a goal define when it is met, for `duration` without reach targets;
        // they are lowered before any clause reads them, whatever the source order.
        let mut goal_conditions: Vec<NodeId> = Vec::new();
        if is_goal {
            for clause in &b.clauses {
                if let ClauseKind::Formula(f) = &clause.kind {
                    let body = match f {
                        Formula::Eventually { body, window: None, .. } => body.as_ref(),
                        other => other,
                    };
                    if let Some(rho) = self.formula(body, u32::MAX) {
                        goal_conditions.push(rho);
                    }
                }
            }
        }

        let mut reach_i = 0;
        for (index, clause) in b.clauses.iter().enumerate() {
            let id = self.terms.len() as u32;
            let line = crate::diagnostics::line_column(&self.text, (clause.span.start + self.offset) as usize).0 as u32;
            let source = self.text_of(clause.span);
            let weight_value = match &clause.strength {
                Some(Strength::Soft { weight: Some(w), .. }) => match self.const_expr(w) {
                    Some(v) => Some(v),
                    None => {
                        let d = self
                            .error(Code::TypeMismatch, "a weight must be a constant number".into(), w.span, "not constant")
                            .with_help("try a literal such as `soft weight 10`, or a `let` holding one");
                        self.diagnostics.push(d);
                        continue;
                    }
                },
                _ => None,
            };
            let (hard, weight) = match &clause.strength {
                Some(Strength::Hard(_)) => (true, HARD_WEIGHT),
                Some(Strength::Soft { .. }) => (false, weight_value.unwrap_or(1.0)),
                // Constraints and deadlines are requirements unless marked soft; other goal
                // clauses are aims.
                None if !is_goal || matches!(clause.kind, ClauseKind::FinishBy(_)) => (true, HARD_WEIGHT),
                None => (false, 1.0),
            };
            let (kind, energy, robustness, phase) = match &clause.kind {
                ClauseKind::Reach { .. } => {
                    let slot = reaches.get(reach_i).cloned().flatten();
                    reach_i += 1;
                    let Some(r) = slot else { continue };
                    let (energy, robustness) = self.reach_energy(&r, phase_param, phases, weight);
                    (TermKind::Reach, energy, Some(robustness), Some(r.phase))
                }
                ClauseKind::FinishBy(deadline) => {
                    let Val::Num(deadline) = self.expr(deadline) else {
                        self.unlowerable(clause.span, &source);
                        continue;
                    };
                    let estimate = self.duration_estimate(&known, phase_param, &goal_conditions);
                    let time0 = self.graph.add(Node::Time);
                    let finish = self.graph.add(Node::Add { a: time0, b: estimate });
                    let slack = self.graph.add(Node::Sub { a: deadline, b: finish });
                    let energy = self.penalty(slack, weight);
                    (TermKind::Deadline, energy, Some(slack), None)
                }
                ClauseKind::Minimize(e) | ClauseKind::Maximize(e) => {
                    let value = if is_duration(e) {
                        Val::Num(self.duration_estimate(&known, phase_param, &goal_conditions))
                    } else {
                        self.expr(e)
                    };
                    let Val::Num(v) = value else {
                        self.unlowerable(clause.span, &source);
                        continue;
                    };
                    // `duration` is already an integral over the horizon; other signals are
                    // averaged over it.
                    let v = if !is_duration(e) && self.depends_on_time(v) { self.time_average(v) } else { v };
                    let maximize = matches!(clause.kind, ClauseKind::Maximize(_));
                    let v = if maximize { self.graph.add(Node::Neg { a: v }) } else { v };
                    let w = self.graph.constant(weight);
                    let energy = self.graph.add(Node::Mul { a: w, b: v });
                    (if maximize { TermKind::Maximize } else { TermKind::Minimize }, energy, None, None)
                }
                ClauseKind::Formula(f) => {
                    // A bare condition must hold throughout in a constraint, and at some time
                    // in a goal.
                    let f = match f {
                        Formula::Atom(_) if !is_goal => Formula::Always { window: None, body: Box::new(f.clone()), span: f.span() },
                        Formula::Atom(_) => Formula::Eventually { window: None, body: Box::new(f.clone()), span: f.span() },
                        other => other.clone(),
                    };
                    let Some(rho) = self.formula(&f, id) else {
                        self.unlowerable(clause.span, &source);
                        continue;
                    };
                    let energy = self.penalty(rho, weight);
                    (TermKind::Condition, energy, Some(rho), None)
                }
            };
            self.push_term(id, b, index, line, source, kind, hard, weight, energy, robustness, phase);
        }
    }

    fn unlowerable(&mut self, span: Span, source: &str) {
        let d = self
            .error(Code::WrongKind, format!("cannot turn `{source}` into an energy: part of it has no numeric value"), span, "not lowered")
            .with_help("try reading numbers of agents, designs or `let`s; strings, shapes and models have no value here");
        self.diagnostics.push(d);
    }

    #[allow(clippy::too_many_arguments)]
    fn push_term(
        &mut self,
        id: u32,
        b: &ClauseBlock,
        index: usize,
        line: u32,
        source: String,
        kind: TermKind,
        hard: bool,
        weight: f64,
        energy: NodeId,
        robustness: Option<NodeId>,
        phase: Option<u32>,
    ) {
        self.terms.push(Term {
            id,
            name: format!("{}.{}", b.name.name, index + 1),
            block: b.name.name.clone(),
            line,
            source,
            kind,
            hard,
            weight: Num::new(weight),
            energy,
            robustness,
            phase,
        });
    }

    /// Distance beyond the tolerance to a reach target at each step, smoothed at zero.
    fn reach_gap(&mut self, r: &ReachInfo) -> NodeId {
        let diffs: Vec<NodeId> = r.subject.iter().zip(&r.target).map(|(&a, &b)| self.graph.add(Node::Sub { a, b })).collect();
        let dist = self.graph.add(Node::Norm { args: diffs, epsilon: Num::new(NORM_EPSILON) });
        self.graph.add(Node::Sub { a: dist, b: r.tolerance })
    }

    /// `w · [phase = p] · (mean gap over the horizon + final gap)`, with the gap smoothed by
    /// softplus; the robustness is the best approach within the horizon.
    fn reach_energy(&mut self, r: &ReachInfo, phase: Option<NodeId>, phases: u32, weight: f64) -> (NodeId, NodeId) {
        let gap = self.reach_gap(r);
        let relu = self.graph.add(Node::SoftPlus { a: gap, temperature: Num::new(PENALTY_TEMPERATURE) });
        let mean = self.time_average(relu);
        let last = self.graph.add(Node::Final { body: relu });
        let sum = self.graph.add(Node::Add { a: mean, b: last });
        let active = self.phase_indicator(phase, r.phase, phases);
        let w = self.graph.constant(weight);
        let weighted = self.graph.add(Node::Mul { a: w, b: sum });
        let energy = self.graph.add(Node::Mul { a: active, b: weighted });
        let neg = self.graph.add(Node::Neg { a: gap });
        let robustness = self.graph.add(Node::Eventually { body: neg, from: 0, to: u32::MAX, temperature: Num::new(ROBUSTNESS_TEMPERATURE) });
        (energy, robustness)
    }

    /// 1 while the goal's phase is `p`, else 0. The phase counts reached targets; past the
    /// last phase it clamps to the last, which keeps the final target active.
    fn phase_indicator(&mut self, phase: Option<NodeId>, p: u32, phases: u32) -> NodeId {
        let Some(index) = phase else { return self.graph.constant(1.0) };
        if phases <= 1 {
            return self.graph.constant(1.0);
        }
        let options: Vec<NodeId> = (0..phases).map(|i| self.graph.constant(if i == p { 1.0 } else { 0.0 })).collect();
        self.graph.add(Node::Select { index, options })
    }

    /// Estimated seconds until the goal is met, from step 0: time within the horizon not
    /// yet at the active target, plus the remaining path at the agent's top speed.
    fn duration_estimate(&mut self, reaches: &[ReachInfo], phase: Option<NodeId>, conditions: &[NodeId]) -> NodeId {
        let t = Num::new(ROBUSTNESS_TEMPERATURE);
        if reaches.is_empty() {
            // Without reach targets, the goal is met once its conditions hold.
            let Some(&first) = conditions.first() else { return self.graph.constant(0.0) };
            let rho = if conditions.len() == 1 { first } else { self.graph.add(Node::SoftMin { args: conditions.to_vec(), temperature: t }) };
            let neg = self.graph.add(Node::Neg { a: rho });
            let Some(horizon) = self.horizon.as_ref() else {
                let not_done = self.graph.add(Node::Sigmoid { a: neg, temperature: t });
                return self.graph.add(Node::SumOver { body: not_done });
            };
            // The goal is met at the first step where its conditions hold, so step `j`
            // counts while they failed at every step up to `j`: the soft minimum of `−ρ`
            // over steps `0..=j`, read at step 0. Steps after a first arrival add nothing,
            // even where the plan drifts out again. Otherwise a plan that arrives early and
            // must then hold still would pay for every wobble of the hold (`spec/energy.md`
            // §6.4). The minimum grows one step at a time (`always` over `[j, j]` is `−ρ`
            // at step `j`, and a soft minimum of soft minima is the soft minimum of all),
            // so the sum costs `O(H)` when read at step 0, as the JIT reads it.
            // NOTE: the graph gains three nodes per step, and the interpreter computes each at
            // every step, `O(H²)` in all: about 3·10⁸ node values at 10,000 steps.
            let (steps, dt) = (horizon.steps, horizon.step);
            let mut total: Option<NodeId> = None;
            let mut failing: Option<NodeId> = None;
            for j in 0..steps {
                let at_j = self.graph.add(Node::Always { body: neg, from: j, to: j, temperature: t });
                let so_far = match failing {
                    Some(before) => self.graph.add(Node::SoftMin { args: vec![before, at_j], temperature: t }),
                    None => at_j,
                };
                failing = Some(so_far);
                let not_yet = self.graph.add(Node::Sigmoid { a: so_far, temperature: t });
                total = Some(match total {
                    Some(sum) => self.graph.add(Node::Add { a: sum, b: not_yet }),
                    None => not_yet,
                });
            }
            let Some(total) = total else { return self.graph.constant(0.0) };
            let dt = self.graph.add(Node::Const { value: dt });
            return self.graph.add(Node::Mul { a: dt, b: total });
        }
        let phases = reaches.iter().map(|r| r.phase).max().unwrap_or(0) + 1;
        let mut per_phase = Vec::new();
        for p in 0..phases {
            let Some(r) = reaches.iter().find(|r| r.phase == p) else { continue };
            let gap = self.reach_gap(r);
            let not_done = self.graph.add(Node::Sigmoid { a: gap, temperature: t });
            let inside = self.graph.add(Node::SumOver { body: not_done });
            let relu = self.graph.add(Node::SoftPlus { a: gap, temperature: Num::new(PENALTY_TEMPERATURE) });
            let mut remaining = self.graph.add(Node::Final { body: relu });
            // Legs after this phase, target to target.
            let mut previous = r.target.clone();
            for later in reaches.iter().filter(|x| x.phase > p) {
                let diffs: Vec<NodeId> = later.target.iter().zip(&previous).map(|(&a, &b)| self.graph.add(Node::Sub { a, b })).collect();
                let leg = self.graph.add(Node::Norm { args: diffs, epsilon: Num::new(NORM_EPSILON) });
                remaining = self.graph.add(Node::Add { a: remaining, b: leg });
                previous = later.target.clone();
            }
            let speed = r.agent.and_then(|a| {
                self.agents[a as usize].members.iter().find(|(n, _)| n == "max_speed").and_then(|(_, v)| match v {
                    Val::Num(n) => Some(*n),
                    _ => None,
                })
            });
            // Without a top speed the remaining path has no time equivalent, so only the
            // time within the horizon counts.
            let total = match speed {
                Some(s) => {
                    let to_go = self.graph.add(Node::Div { a: remaining, b: s });
                    self.graph.add(Node::Add { a: inside, b: to_go })
                }
                None => inside,
            };
            per_phase.push(total);
        }
        match (phase, per_phase.len()) {
            (_, 0) => self.graph.constant(0.0),
            (None, _) | (_, 1) => per_phase[0],
            (Some(index), _) => self.graph.add(Node::Select { index, options: per_phase }),
        }
    }

    fn depends_on_time(&self, id: NodeId) -> bool {
        let mut stack = vec![id];
        let mut seen = std::collections::HashSet::new();
        while let Some(n) = stack.pop() {
            if !seen.insert(n) {
                continue;
            }
            let node = &self.graph.nodes[n as usize];
            if matches!(node, Node::State { .. } | Node::Action { .. } | Node::Time) {
                return true;
            }
            stack.extend(node.children());
        }
        false
    }

    /// `(1 / T) Σ step · v`: the time average of a signal over the horizon.
    fn time_average(&mut self, v: NodeId) -> NodeId {
        let Some(h) = &self.horizon else { return v };
        let inv = 1.0 / h.horizon.0;
        let sum = self.graph.add(Node::SumOver { body: v });
        let scale = self.graph.constant(inv);
        self.graph.add(Node::Mul { a: scale, b: sum })
    }

    fn lower_world(&mut self, w: &WorldDecl) {
        let (source, inputs) = match &w.from {
            Some(e) => {
                let mut names: Vec<String> = crate::db::free_names(e).into_iter().filter(|n| !crate::check::INTRINSICS.iter().any(|(i, _)| i == n)).collect();
                names.sort();
                (Some(self.text_of(e.span)), names)
            }
            None => (None, Vec::new()),
        };
        let settings = self.settings(&w.fields);
        self.worlds.push(WorldPlan { name: w.name.name.clone(), kind: w.kind.name.clone(), source, inputs, settings });
    }

    fn lower_refine(&mut self, r: &RefineDecl) {
        let mut steps = Vec::new();
        for step in &r.steps {
            let at = step.at.as_ref().and_then(|t| self.const_expr(t)).map(Num::new);
            match &step.action {
                RefineAction::Rerun(id) => steps.push(RefinementStep { at, edit: Edit::Rerun { name: id.name.clone() } }),
                RefineAction::AddObstacle { shape, at: position } => {
                    let shape = self.expr(shape);
                    let p = self.expr(position);
                    let xy = self.constant_parts(&p);
                    let (x, y) = (xy.first().copied().unwrap_or(f64::NAN), xy.get(1).copied().unwrap_or(f64::NAN));
                    let edit = match shape {
                        Val::Shape(Shape::Box { width, depth }) => Edit::AddBox {
                            width: Num::new(self.value_of(width).unwrap_or(f64::NAN)),
                            depth: Num::new(self.value_of(depth).unwrap_or(f64::NAN)),
                            x: Num::new(x),
                            y: Num::new(y),
                        },
                        Val::Shape(Shape::Circle { radius }) => {
                            Edit::AddCircle { radius: Num::new(self.value_of(radius).unwrap_or(f64::NAN)), x: Num::new(x), y: Num::new(y) }
                        }
                        _ => continue,
                    };
                    steps.push(RefinementStep { at, edit });
                }
                RefineAction::Assign { target, op, value } => {
                    let mut v = self.name(&target.segments[0].name);
                    for seg in &target.segments[1..] {
                        v = self.field(v, &seg.name);
                    }
                    let operand = self.const_expr(value).unwrap_or(f64::NAN);
                    let params = self.params_of(&v);
                    if params.is_empty() {
                        let d = self
                            .error(Code::WrongKind, format!("`{}` is not a parameter a refinement can change", target.dotted()), target.span, "not a parameter")
                            .with_help("try a parameter of an agent, a design, a material or a `let`");
                        self.diagnostics.push(d);
                        continue;
                    }
                    for p in params {
                        let param = self.params[p as usize].name.clone();
                        steps.push(RefinementStep { at, edit: Edit::Param { param, op: op.symbol().to_string(), value: Num::new(operand) } });
                    }
                }
            }
        }
        self.refinements.push(RefinementPlan { name: r.name.clone(), steps });
    }

    /// Parameters a value reads directly: one for a parameter, one per option of a choice.
    fn params_of(&self, v: &Val) -> Vec<u32> {
        match v {
            Val::Num(n) => match &self.graph.nodes[*n as usize] {
                Node::Param { index } => vec![*index],
                Node::Select { options, .. } => options
                    .iter()
                    .filter_map(|o| match &self.graph.nodes[*o as usize] {
                        Node::Param { index } => Some(*index),
                        _ => None,
                    })
                    .collect(),
                _ => Vec::new(),
            },
            _ => Vec::new(),
        }
    }

    fn check_memory_budget(&mut self, items: &[(u32, Item)]) {
        let Some(h) = &self.horizon else { return };
        let samples = self
            .solver
            .iter()
            .flat_map(|s| s.settings.iter())
            .filter(|s| s.name == "samples")
            .filter_map(|s| match s.value {
                SettingValue::Number(n) => Some(n.0),
                _ => None,
            })
            .fold(1.0f64, f64::max);
        let state: usize = self.agent_plans.iter().map(|a| a.states.len() + a.actions.len()).sum();
        let latent = self
            .worlds
            .iter()
            .flat_map(|w| w.settings.iter())
            .filter(|s| s.name == "latent")
            .filter_map(|s| match s.value {
                SettingValue::Number(n) => Some(n.0),
                _ => None,
            })
            .fold(0.0f64, f64::max);
        let width = (state as f64).max(latent);
        // f32 rollouts of every sample over every step, one buffer for values and one for
        // gradients.
        let bytes = samples * (h.steps as f64 + 1.0) * width * 4.0 * 2.0;
        let budget_mb = items
            .iter()
            .find_map(|(_, i)| match i {
                Item::Plan(p) => p.fields.iter().find(|f| f.name.name == "memory_budget_mb").and_then(|f| match &f.value {
                    FieldValue::Expr(e) => literal_number(e),
                    _ => None,
                }),
                _ => None,
            })
            .unwrap_or(DEFAULT_MEMORY_BUDGET_MB);
        let mb = bytes / (1024.0 * 1024.0);
        if mb > budget_mb {
            let (offset, span) = items
                .iter()
                .find_map(|(o, i)| match i {
                    Item::Plan(p) => Some((*o, p.keyword)),
                    _ => None,
                })
                .unwrap_or_default();
            self.diagnostics.push(
                Diagnostic::error(
                    Code::MemoryBudget,
                    format!(
                        "one planning iteration needs about {} MiB ({} samples × {} steps × {} values × 8 bytes), more than the budget of {} MiB",
                        format_number(mb.round()),
                        format_number(samples),
                        h.steps + 1,
                        format_number(width),
                        format_number(budget_mb)
                    ),
                    )
                .with_label(Label::primary(span.shift(offset), "this plan is too large"))
                .with_help("try fewer samples, a longer step or a shorter horizon, or raise `memory_budget_mb`"),
            );
        }
    }

    pub(super) fn graph(&self) -> &Graph {
        &self.graph
    }

    pub(super) fn terms(&self) -> &[Term] {
        &self.terms
    }

    pub(super) fn agent_components(&self) -> (&[AgentPlan], &[DesignPlan], &[ParamPlan]) {
        (&self.agent_plans, &self.design_plans, &self.params)
    }

    pub(super) fn report(&mut self, d: Diagnostic) {
        self.diagnostics.push(d);
    }

    pub(super) fn term_span(&self, term: &Term) -> Span {
        // The clause's line start to its end, as a label for term-level diagnostics.
        let start = self.text.split('\n').take(term.line as usize - 1).map(|l| l.len() + 1).sum::<usize>();
        let line = self.text[start..].split('\n').next().unwrap_or("");
        let indent = line.len() - line.trim_start().len();
        let trimmed = line.trim_end().trim_end_matches('\r');
        Span::new(start + indent, start + trimmed.len())
    }
}

fn root_agent(e: &Expr) -> Option<&str> {
    match &e.kind {
        ExprKind::Name(id) => Some(&id.name),
        ExprKind::Field { base, .. } => root_agent(base),
        _ => None,
    }
}

fn is_duration(e: &Expr) -> bool {
    matches!(&e.kind, ExprKind::Name(id) if id.name == "duration")
}

fn choice_options(e: &Expr) -> Vec<&Expr> {
    let mut out = Vec::new();
    let mut stack = vec![e];
    while let Some(e) = stack.pop() {
        match &e.kind {
            ExprKind::Binary { op: BinOp::Choice, lhs, rhs } => {
                stack.push(rhs);
                stack.push(lhs);
            }
            ExprKind::Paren(inner) => stack.push(inner),
            _ => out.push(e),
        }
    }
    out
}

fn literal_int(e: &Expr) -> Option<i32> {
    let v = literal_number(e)?;
    (v.fract() == 0.0 && v.abs() <= 64.0).then_some(v as i32)
}

fn literal_number(e: &Expr) -> Option<f64> {
    match &e.kind {
        ExprKind::Quantity { value, unit: None, .. } => Some(*value),
        ExprKind::Paren(inner) => literal_number(inner),
        ExprKind::Unary { op: UnOp::Neg, operand } => literal_number(operand).map(|v| -v),
        _ => None,
    }
}

fn unit_factor(u: &UnitExpr) -> Option<f64> {
    let mut factor = 1.0;
    for f in &u.factors {
        factor *= units::lookup(&f.name)?.factor.powi(f.power);
    }
    Some(factor)
}

pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Reports whether a `text("…")` argument names a file rather than containing the note.
fn looks_like_file(s: &str) -> bool {
    !s.contains('\n') && (s.ends_with(".txt") || s.ends_with(".md"))
}

/// Describes why `bytes` is not in the format `loader` reads, or returns `None` when it is.
fn format_problem(loader: &str, bytes: &[u8]) -> Option<String> {
    let text = || std::str::from_utf8(bytes).ok();
    match loader {
        "image" => {
            let png = bytes.starts_with(&[0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a]);
            let jpeg = bytes.starts_with(&[0xff, 0xd8, 0xff]);
            (!png && !jpeg).then(|| "it starts with neither the PNG nor the JPEG signature".to_string())
        }
        "map" => match text() {
            Some(t) if t.trim_start().starts_with("type octile") => None,
            Some(_) => Some("the first line is not `type octile`".into()),
            None => Some("it is not UTF-8 text".into()),
        },
        "scen" => match text() {
            Some(t) if t.trim_start().starts_with("version") => None,
            Some(_) => Some("the first line is not `version 1`".into()),
            None => Some("it is not UTF-8 text".into()),
        },
        "urdf" => match text() {
            Some(t) if t.contains("<robot") => None,
            Some(_) => Some("it has no `<robot>` element".into()),
            None => Some("it is not UTF-8 text".into()),
        },
        "scene" => match text() {
            Some(t) => serde_json::from_str::<serde_json::Value>(t).err().map(|e| format!("invalid JSON: {e}")),
            None => Some("it is not UTF-8 text".into()),
        },
        "text" => text().is_none().then(|| "it is not UTF-8 text".to_string()),
        _ => None,
    }
}
