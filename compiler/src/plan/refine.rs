//! Applying refinements to a compiled plan through the query database, so that a refinement
//! rebuilds only the terms it changes.
//!
//! A refinement edits named parameters (`aluminum_6061.tensile_strength *= 1.15`). Each
//! parameter is its own salsa input ([`ParamCell`]), and each term is rebuilt by its own
//! tracked query ([`term_build`]). A build is the term's part of the graph with the current
//! parameter values folded into constants, ready for a backend that compiles constants in. A term's
//! query reads only the cells of the parameters its expression reads ([`term_reads`]), so
//! after an edit salsa re-executes the builds of the terms that read an edited parameter
//! and reuses every other build. `compiler/tests/refine_incremental.rs` shows this with the
//! database's query log.
//!
//! [`Refiner::plan`] joins the term builds into one hash-consed graph. The joined plan keeps
//! its parameter list, with the refined values, because scenarios read their physical
//! constants from it; the graph itself no longer reads any parameter.

use salsa::Setter;

use super::graph::{Graph, Node, NodeId, Num};
use super::{Edit, Plan, RefinementPlan, Term};
use crate::db::{Database, Db};

/// The compiled plan a refinement session starts from.
#[salsa::input(debug)]
pub struct PlanInput {
    #[returns(ref)]
    pub plan: Plan,
}

/// The current value of one plan parameter, SI units.
#[salsa::input(debug)]
pub struct ParamCell {
    #[returns(copy)]
    pub value: f64,
}

/// The cells of every parameter, in plan order.
#[salsa::input(debug)]
pub struct ParamTable {
    #[returns(ref)]
    pub cells: Vec<ParamCell>,
}

/// One term of a plan in a refinement session.
#[salsa::interned(debug)]
pub struct TermRef<'db> {
    pub plan: PlanInput,
    pub params: ParamTable,
    #[returns(copy)]
    pub index: u32,
}

/// A term rebuilt with the current parameter values.
#[derive(Clone, Debug, PartialEq)]
pub struct TermBuild {
    /// The term's nodes only, parameters folded into constants.
    pub graph: Graph,
    pub energy: NodeId,
    pub robustness: Option<NodeId>,
    /// The parameters the term reads and the values folded in.
    pub reads: Vec<(String, f64)>,
}

/// The parameters (plan indices) that a term's energy and robustness read, in index order.
#[salsa::tracked(returns(ref))]
pub fn term_reads<'db>(db: &'db dyn Db, term: TermRef<'db>) -> Vec<u32> {
    let plan = term.plan(db).plan(db);
    let t = &plan.terms[term.index(db) as usize];
    let mut seen = vec![false; plan.graph.nodes.len()];
    let mut stack: Vec<NodeId> = std::iter::once(t.energy).chain(t.robustness).collect();
    let mut reads = Vec::new();
    while let Some(n) = stack.pop() {
        if std::mem::replace(&mut seen[n as usize], true) {
            continue;
        }
        let node = &plan.graph.nodes[n as usize];
        if let Node::Param { index } = node {
            reads.push(*index);
        }
        stack.extend(node.children());
    }
    reads.sort_unstable();
    reads
}

/// Rebuilds one term: copies its nodes into a graph of its own with every parameter it
/// reads replaced by the parameter's current value, which the graph folds into constants.
#[salsa::tracked(returns(ref))]
pub fn term_build<'db>(db: &'db dyn Db, term: TermRef<'db>) -> TermBuild {
    let _span = tracing::debug_span!("term_build", index = term.index(db)).entered();
    let plan = term.plan(db).plan(db);
    let cells = term.params(db).cells(db);
    let values: Vec<(u32, f64)> = term_reads(db, term)
        .iter()
        .map(|&i| (i, cells[i as usize].value(db)))
        .collect();
    let t = &plan.terms[term.index(db) as usize];
    let mut graph = Graph::default();
    let mut map: Vec<Option<NodeId>> = vec![None; plan.graph.nodes.len()];
    let last = t.energy.max(t.robustness.unwrap_or(0));
    let mut needed = vec![false; plan.graph.nodes.len()];
    needed[t.energy as usize] = true;
    if let Some(r) = t.robustness {
        needed[r as usize] = true;
    }
    // Children have smaller ids: mark backwards, copy forwards.
    for i in (0..=last as usize).rev() {
        if needed[i] {
            for c in plan.graph.nodes[i].children() {
                needed[c as usize] = true;
            }
        }
    }
    for i in 0..=last as usize {
        if !needed[i] {
            continue;
        }
        let node = match &plan.graph.nodes[i] {
            Node::Param { index } => {
                let v = values
                    .iter()
                    .find(|(p, _)| p == index)
                    .map_or(f64::NAN, |(_, v)| *v);
                Node::Const { value: Num::new(v) }
            }
            other => {
                let mut n = other.clone();
                n.remap(|c| map[c as usize].expect("children are copied first"));
                n
            }
        };
        map[i] = Some(graph.add(node));
    }
    let get = |id: NodeId| map[id as usize].expect("the term's roots are copied");
    TermBuild {
        energy: get(t.energy),
        robustness: t.robustness.map(get),
        reads: values
            .iter()
            .map(|(i, v)| (plan.params[*i as usize].name.clone(), *v))
            .collect(),
        graph,
    }
}

/// A parameter edit a refinement made.
#[derive(Clone, Debug, PartialEq)]
pub struct ParamChange {
    pub name: String,
    pub before: f64,
    pub after: f64,
}

/// What applying one refinement did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Applied {
    pub changes: Vec<ParamChange>,
    /// Names given to `rerun` steps: world models, goals or constraints to refresh.
    pub reruns: Vec<String>,
    /// Steps that do not edit parameters (obstacles), which a design problem cannot apply.
    pub skipped: usize,
}

/// A refinement session: a compiled plan whose parameters refinements edit in place.
#[derive(Clone, Copy, Debug)]
pub struct Refiner {
    plan: PlanInput,
    table: ParamTable,
}

impl Refiner {
    /// Starts a session on `plan` in `db`.
    pub fn new(db: &Database, plan: Plan) -> Refiner {
        let cells: Vec<ParamCell> = plan
            .params
            .iter()
            .map(|p| ParamCell::new(db, p.value.0))
            .collect();
        let table = ParamTable::new(db, cells);
        Refiner {
            plan: PlanInput::new(db, plan),
            table,
        }
    }

    /// The current value of every parameter, in plan order.
    pub fn values(&self, db: &Database) -> Vec<f64> {
        self.table.cells(db).iter().map(|c| c.value(db)).collect()
    }

    /// Applies the parameter edits of `refinement`, timed ones included (a design has no
    /// time). An edit of a parameter the plan does not have is skipped with a warning.
    pub fn apply(&self, db: &mut Database, refinement: &RefinementPlan) -> Applied {
        let mut applied = Applied::default();
        for step in &refinement.steps {
            match &step.edit {
                Edit::Param { param, op, value } => {
                    let plan = self.plan.plan(db);
                    let Some(i) = plan.params.iter().position(|p| &p.name == param) else {
                        tracing::warn!(param = %param, "refinement edits a parameter the plan does not have");
                        applied.skipped += 1;
                        continue;
                    };
                    let cell = self.table.cells(db)[i];
                    let before = cell.value(db);
                    let after = apply_op(before, op, value.0);
                    if after.to_bits() != before.to_bits() {
                        cell.set_value(db).to(after);
                    }
                    applied.changes.push(ParamChange {
                        name: param.clone(),
                        before,
                        after,
                    });
                }
                Edit::Rerun { name } => applied.reruns.push(name.clone()),
                Edit::AddBox { .. } | Edit::AddCircle { .. } => applied.skipped += 1,
            }
        }
        applied
    }

    /// Names of the terms that read any of the parameters `names`, in term order.
    pub fn terms_reading(&self, db: &Database, names: &[&str]) -> Vec<String> {
        let plan = self.plan.plan(db);
        (0..plan.terms.len())
            .filter(|&i| {
                let reads = term_reads(db, TermRef::new(db, self.plan, self.table, i as u32));
                reads
                    .iter()
                    .any(|&p| names.contains(&plan.params[p as usize].name.as_str()))
            })
            .map(|i| plan.terms[i].name.clone())
            .collect()
    }

    /// The plan with every term rebuilt for the current parameter values (reusing the builds
    /// of terms whose parameters did not change) and its parameter list updated.
    pub fn plan(&self, db: &Database) -> Plan {
        let base = self.plan.plan(db);
        let mut graph = Graph::default();
        let mut terms: Vec<Term> = Vec::with_capacity(base.terms.len());
        for (i, t) in base.terms.iter().enumerate() {
            let build = term_build(db, TermRef::new(db, self.plan, self.table, i as u32));
            let mut map: Vec<NodeId> = Vec::with_capacity(build.graph.nodes.len());
            for node in &build.graph.nodes {
                let mut n = node.clone();
                n.remap(|c| map[c as usize]);
                map.push(graph.add(n));
            }
            terms.push(Term {
                energy: map[build.energy as usize],
                robustness: build.robustness.map(|r| map[r as usize]),
                ..t.clone()
            });
        }
        let mut plan = base.clone();
        for (p, v) in plan.params.iter_mut().zip(self.values(db)) {
            p.value = Num::new(v);
        }
        // Joining may leave constants that only a folded parent read; drop them.
        let roots: Vec<NodeId> = terms
            .iter()
            .flat_map(|t| std::iter::once(t.energy).chain(t.robustness))
            .collect();
        let map = graph.prune(&roots);
        for t in &mut terms {
            t.energy = map[t.energy as usize].expect("roots are kept");
            t.robustness = t
                .robustness
                .map(|r| map[r as usize].expect("roots are kept"));
        }
        plan.graph = graph;
        plan.terms = terms;
        plan
    }
}

/// `before OP operand` for a refinement's `=`, `+=`, `-=`, `*=` or `/=`.
pub fn apply_op(before: f64, op: &str, operand: f64) -> f64 {
    match op {
        "=" => operand,
        "+=" => before + operand,
        "-=" => before - operand,
        "*=" => before * operand,
        "/=" => before / operand,
        _ => before,
    }
}
