//! Decides how a plan's graph becomes straight-line code and loops before any code is
//! generated.
//!
//! Terms are read at step 0, so most nodes are needed at far fewer steps than the whole grid
//! `0..=H`. The body of `final` is needed only at `H`, and a node under nothing but pointwise
//! nodes of a term only at 0. A backward pass over the graph gives every node the interval of
//! steps its readers need (its *demand*), and each needed node gets a [`Place`]:
//!
//! - [`Place::Uniform`]: one value for every step (constants, parameters, design variables,
//!   `final`, and pointwise nodes of those). Computed once into an SSA value, which is also
//!   kept in a scratch cell for readers in other blocks.
//! - [`Place::Input`]: `time`, a state or an action, read from the inputs at any step.
//! - [`Place::Single`]: needed at one step only. Computed once, like a uniform node.
//! - [`Place::Row`]: needed at several steps. Pointwise rows are computed in loops over `k`,
//!   one loop per group of rows with the same interval, and their values are kept in rows of
//!   the scratch buffer. Temporal rows get their own loops.
//!
//! A temporal node at step `k` reads its body at later steps, so its body must be complete
//! before it runs. Each node gets a *stage*: 0 for leaves, the largest stage of its operands
//! for a pointwise node, and one more than that for a temporal node. The forward code runs
//! the stages in order; within a stage it runs the temporal nodes, then the uniform pointwise
//! nodes, then the row loops (longest interval first, since a row's operands cover at least
//! its own interval), then the single-step nodes. The reverse sweep runs the same items in
//! the opposite order, each loop from its last step to its first.

use std::collections::HashMap;

use crate::plan::{Node, NodeId, Plan};

/// The storage of a node's value in the generated code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Place {
    /// No term reads the node.
    Unused,
    /// `time`, a state or an action: loaded from the inputs wherever it is read.
    Input,
    /// The same value at every step.
    Uniform,
    /// Needed at this step only.
    Single(usize),
    /// Needed at every step of `lo..=hi`, with `lo < hi`.
    Row { lo: usize, hi: usize },
}

/// One unit of the forward code, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Item {
    /// Straight-line code for one uniform or single-step node, or the loops of one temporal
    /// row node.
    Node(NodeId),
    /// A loop over `k = lo..=hi` computing pointwise row nodes, in id order.
    Loop { lo: usize, hi: usize, nodes: Vec<NodeId> },
}

/// The code generator's facts about one node.
#[derive(Clone, Debug)]
pub(super) struct NodeInfo {
    pub place: Place,
    /// Whether the node carries an adjoint: it depends on a state, action or design variable,
    /// and a term's energy reads it through operands that pass a gradient.
    pub active: bool,
    /// The loop item computing this node, for pointwise row nodes.
    pub loop_index: Option<usize>,
    /// Scratch index of step 0 of the node's value row: step `k` is at `values + k`. Only the
    /// cells of the node's own steps are allocated, so the index may be negative.
    pub values: Option<i64>,
    /// Scratch index of step 0 of the node's adjoint row, for active rows read outside their
    /// own loop, and of the adjoint cell of an active uniform or single-step node. A single
    /// node at step `k` has its cell at `adjoints + k`, like a row.
    pub adjoints: Option<i64>,
    /// The scratch index where a computed uniform or single-step node keeps its value. Code
    /// in other blocks reloads it from there rather than keeping it in a register across the
    /// loops in between.
    pub cell: Option<i64>,
    /// Scratch indices of step 0 of the slope rows `∂d/∂x` and `∂d/∂y` of a distance node.
    pub slopes: Option<(i64, i64)>,
    /// A node of the graph whose value is this node's derivative, computed at every step
    /// this node is: `sigmoid` for `softplus` with the same operand and temperature, `cos`
    /// for `sin`, and `sin` for `cos` (whose derivative is its negation).
    pub derivative: Option<NodeId>,
    /// For `until`: scratch indices of step 0 of two work rows over `0..=H`, the inner smooth
    /// minima `m(k, j)` for the step `k` being computed and, with the gradient, the outer
    /// weights times the adjoint.
    pub until_rows: Option<(i64, i64)>,
}

/// The full plan of the generated function.
#[derive(Clone, Debug)]
pub(super) struct Layout {
    /// Horizon steps `H` (0 without a horizon).
    pub steps: usize,
    /// Seconds per step `Δt` (0 without a horizon).
    pub step: f64,
    pub nodes: Vec<NodeInfo>,
    pub items: Vec<Item>,
    /// Number of `f64` cells the function needs in its scratch buffer.
    pub scratch_len: usize,
    /// The adjoint rows and cells occupy cells `0..adjoint_len` of the scratch buffer, which
    /// the function zeroes before the reverse sweep.
    pub adjoint_len: usize,
}

impl Layout {
    /// Lays out `plan`'s energy; `gradient` adds the adjoint rows and distance slopes the
    /// reverse sweep needs.
    pub(super) fn new(plan: &Plan, gradient: bool) -> Layout {
        let nodes = &plan.graph.nodes;
        let steps = plan.horizon.as_ref().map_or(0, |h| h.steps as usize);
        let step = plan.horizon.as_ref().map_or(0.0, |h| h.step.0);

        let mut demand = demand(plan, steps);
        let uniform = uniform(nodes);
        let depends = depends_on_decisions(nodes);
        let derivatives = if gradient { derivative_nodes(nodes, &depends, &mut demand) } else { vec![None; nodes.len()] };
        let active = reached_by_adjoint(plan, &depends, &demand);
        let places: Vec<Place> = (0..nodes.len())
            .map(|i| match demand[i] {
                None => Place::Unused,
                Some(_) if uniform[i] => Place::Uniform,
                Some(_) if matches!(nodes[i], Node::Time | Node::State { .. } | Node::Action { .. }) => Place::Input,
                Some((lo, hi)) if lo == hi => Place::Single(lo),
                Some((lo, hi)) => Place::Row { lo, hi },
            })
            .collect();

        let stages = stages(nodes, &places);
        let items = order(nodes, &places, &stages);

        let mut info: Vec<NodeInfo> = places
            .iter()
            .zip(&active)
            .map(|(&place, &active)| NodeInfo { place, active, loop_index: None, values: None, adjoints: None, cell: None, slopes: None, derivative: None, until_rows: None })
            .collect();
        for (n, derivative) in info.iter_mut().zip(derivatives) {
            n.derivative = derivative;
        }
        for (index, item) in items.iter().enumerate() {
            if let Item::Loop { nodes: members, .. } = item {
                for &n in members {
                    info[n as usize].loop_index = Some(index);
                }
            }
        }

        // A row read outside its own loop needs its values in memory, and, when it is active,
        // a memory adjoint row that those readers add into.
        let mut read_outside = vec![false; nodes.len()];
        for term in &plan.terms {
            read_outside[term.energy as usize] = true;
        }
        for (parent, node) in nodes.iter().enumerate() {
            if info[parent].place == Place::Unused {
                continue;
            }
            for child in node.children() {
                let same_loop = info[parent].loop_index.is_some() && info[parent].loop_index == info[child as usize].loop_index;
                if !same_loop {
                    read_outside[child as usize] = true;
                }
            }
        }

        let mut scratch = Scratch::default();
        if gradient {
            for (i, n) in info.iter_mut().enumerate() {
                if !n.active {
                    continue;
                }
                match n.place {
                    Place::Row { lo, hi } if read_outside[i] => n.adjoints = Some(scratch.allocate(lo, hi)),
                    Place::Single(k) => n.adjoints = Some(scratch.allocate(k, k)),
                    Place::Uniform => n.adjoints = Some(scratch.allocate(0, 0)),
                    _ => {}
                }
            }
        }
        let adjoint_len = scratch.len;
        for (i, n) in info.iter_mut().enumerate() {
            if let Place::Row { lo, hi } = n.place
                && (gradient || read_outside[i])
            {
                n.values = Some(scratch.allocate(lo, hi));
            }
            let leaf = matches!(nodes[i], Node::Const { .. } | Node::Param { .. } | Node::Design { .. });
            if !leaf && matches!(n.place, Place::Uniform | Place::Single(_)) {
                n.cell = Some(scratch.allocate(0, 0));
            }
            if gradient && n.active && matches!(nodes[i], Node::Distance { .. }) {
                let (lo, hi) = match n.place {
                    Place::Row { lo, hi } => (lo, hi),
                    Place::Single(k) => (k, k),
                    _ => (0, 0),
                };
                n.slopes = Some((scratch.allocate(lo, hi), scratch.allocate(lo, hi)));
            }
            if n.place != Place::Unused && matches!(nodes[i], Node::Until { .. }) {
                n.until_rows = Some((scratch.allocate(0, steps), scratch.allocate(0, steps)));
            }
        }

        Layout { steps, step, nodes: info, items, scratch_len: scratch.len, adjoint_len }
    }
}

/// The scratch buffer's cells handed out so far.
#[derive(Default)]
struct Scratch {
    len: usize,
}

impl Scratch {
    /// Allocates the cells of steps `lo..=hi` of a row and returns the index of its step 0.
    fn allocate(&mut self, lo: usize, hi: usize) -> i64 {
        let base = self.len as i64 - lo as i64;
        self.len += hi - lo + 1;
        base
    }
}

/// Computes the interval of steps at which each node is read, `None` for nodes no term
/// reads. Terms read their energy at step 0.
fn demand(plan: &Plan, steps: usize) -> Vec<Option<(usize, usize)>> {
    let nodes = &plan.graph.nodes;
    let mut demand: Vec<Option<(usize, usize)>> = vec![None; nodes.len()];
    let merge = |demand: &mut Vec<Option<(usize, usize)>>, id: NodeId, lo: usize, hi: usize| {
        let slot = &mut demand[id as usize];
        *slot = Some(match *slot {
            None => (lo, hi),
            Some((a, b)) => (a.min(lo), b.max(hi)),
        });
    };
    for term in &plan.terms {
        merge(&mut demand, term.energy, 0, 0);
    }
    // Parents have larger ids than their children, so one pass from the top finishes each
    // node's demand before its children need it.
    for id in (0..nodes.len()).rev() {
        let Some((lo, hi)) = demand[id] else { continue };
        match &nodes[id] {
            Node::Final { body } => merge(&mut demand, *body, steps, steps),
            Node::SumOver { body } => {
                if lo < steps {
                    merge(&mut demand, *body, lo, steps - 1);
                }
            }
            Node::Always { body, from, to, .. } | Node::Eventually { body, from, to, .. } => {
                // Windows move right with `k`, so the first and last windows bound the union.
                let first = crate::energy::window(lo, *from, *to, steps);
                let last = crate::energy::window(hi, *from, *to, steps);
                merge(&mut demand, *body, *first.start(), *last.end());
            }
            Node::Until { lhs, rhs, .. } => {
                merge(&mut demand, *rhs, lo, steps);
                if lo < steps {
                    merge(&mut demand, *lhs, lo, steps - 1);
                }
            }
            node => {
                for child in node.children() {
                    merge(&mut demand, child, lo, hi);
                }
            }
        }
    }
    demand
}

/// Returns whether each node has the same value at every step.
fn uniform(nodes: &[Node]) -> Vec<bool> {
    let mut uniform = Vec::with_capacity(nodes.len());
    for node in nodes {
        let value = match node {
            Node::Const { .. } | Node::Param { .. } | Node::Design { .. } | Node::Final { .. } => true,
            Node::Time | Node::State { .. } | Node::Action { .. } => false,
            Node::Always { .. } | Node::Eventually { .. } | Node::Until { .. } | Node::SumOver { .. } => false,
            node => node.children().iter().all(|&c| uniform[c as usize]),
        };
        uniform.push(value);
    }
    uniform
}

/// Returns whether each node depends on a state, action or design variable through operands
/// that pass a gradient (every operand except the index of `select`).
fn depends_on_decisions(nodes: &[Node]) -> Vec<bool> {
    let mut active = Vec::with_capacity(nodes.len());
    for node in nodes {
        let value = match node {
            Node::State { .. } | Node::Action { .. } | Node::Design { .. } => true,
            Node::Select { options, .. } => options.iter().any(|&o| active[o as usize]),
            node => node.children().iter().any(|&c| active[c as usize]),
        };
        active.push(value);
    }
    active
}

/// Returns whether each node carries an adjoint: it depends on a decision, and a term's energy
/// reads it through operands that pass a gradient.
fn reached_by_adjoint(plan: &Plan, depends: &[bool], demand: &[Option<(usize, usize)>]) -> Vec<bool> {
    let nodes = &plan.graph.nodes;
    let mut reached = vec![false; nodes.len()];
    for term in &plan.terms {
        reached[term.energy as usize] = true;
    }
    for id in (0..nodes.len()).rev() {
        if !reached[id] || !depends[id] {
            continue;
        }
        let operands = match &nodes[id] {
            Node::Select { options, .. } => options.clone(),
            node => node.children(),
        };
        for child in operands {
            reached[child as usize] = true;
        }
    }
    (0..nodes.len()).map(|i| reached[i] && depends[i] && demand[i].is_some()).collect()
}

/// Finds, for each `softplus`, `sin` and `cos` node that carries a gradient, a node of the
/// graph whose value is its derivative, and extends that node's demand to the steps the
/// gradient needs it at. Reading that value in the reverse sweep replaces a call to `exp`,
/// `sin` or `cos`, and gives the same bits, because both compute the same expression.
fn derivative_nodes(nodes: &[Node], depends: &[bool], demand: &mut [Option<(usize, usize)>]) -> Vec<Option<NodeId>> {
    let index: HashMap<&Node, NodeId> = nodes.iter().enumerate().map(|(i, n)| (n, i as NodeId)).collect();
    let mut derivatives = vec![None; nodes.len()];
    for (id, node) in nodes.iter().enumerate() {
        let Some((lo, hi)) = demand[id] else { continue };
        if !depends[id] {
            continue;
        }
        let wanted = match *node {
            Node::SoftPlus { a, temperature } => Node::Sigmoid { a, temperature },
            Node::Sin { a } => Node::Cos { a },
            Node::Cos { a } => Node::Sin { a },
            _ => continue,
        };
        let Some(&other) = index.get(&wanted) else { continue };
        // The derivative node's operand is this node's operand, whose demand already covers
        // `lo..=hi`, so nothing below it changes.
        let slot = &mut demand[other as usize];
        *slot = Some(match *slot {
            None => (lo, hi),
            Some((a, b)) => (a.min(lo), b.max(hi)),
        });
        derivatives[id] = Some(other);
    }
    derivatives
}

fn is_temporal(node: &Node) -> bool {
    matches!(node, Node::Always { .. } | Node::Eventually { .. } | Node::Until { .. } | Node::SumOver { .. } | Node::Final { .. })
}

/// Computes the stage of every needed node: 0 for leaves, the largest stage of the operands
/// for a pointwise node, one more for a temporal node.
fn stages(nodes: &[Node], places: &[Place]) -> Vec<usize> {
    let mut stages = vec![0usize; nodes.len()];
    for (id, node) in nodes.iter().enumerate() {
        if places[id] == Place::Unused {
            continue;
        }
        let operands = node.children().iter().map(|&c| stages[c as usize]).max().unwrap_or(0);
        stages[id] = if is_temporal(node) { operands + 1 } else { operands };
    }
    stages
}

/// Orders the forward items, stage by stage.
fn order(nodes: &[Node], places: &[Place], stages: &[usize]) -> Vec<Item> {
    let last_stage = stages.iter().copied().max().unwrap_or(0);
    let mut items = Vec::new();
    for stage in 0..=last_stage {
        let in_stage = |id: &usize| places[*id] != Place::Unused && places[*id] != Place::Input && stages[*id] == stage;
        let ids: Vec<usize> = (0..nodes.len()).filter(in_stage).collect();

        for &id in &ids {
            if is_temporal(&nodes[id]) {
                items.push(Item::Node(id as NodeId));
            }
        }
        for &id in &ids {
            if !is_temporal(&nodes[id]) && places[id] == Place::Uniform {
                items.push(Item::Node(id as NodeId));
            }
        }
        let mut loops: HashMap<(usize, usize), Vec<NodeId>> = HashMap::new();
        for &id in &ids {
            if let Place::Row { lo, hi } = places[id]
                && !is_temporal(&nodes[id])
            {
                loops.entry((lo, hi)).or_default().push(id as NodeId);
            }
        }
        let mut intervals: Vec<(usize, usize)> = loops.keys().copied().collect();
        intervals.sort_by_key(|&(lo, hi)| (std::cmp::Reverse(hi - lo), lo));
        for (lo, hi) in intervals {
            items.push(Item::Loop { lo, hi, nodes: loops.remove(&(lo, hi)).unwrap_or_default() });
        }
        for &id in &ids {
            if !is_temporal(&nodes[id]) && matches!(places[id], Place::Single(_)) {
                items.push(Item::Node(id as NodeId));
            }
        }
    }
    items
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{Graph, HorizonPlan, Num, Term, TermKind};

    /// A plan over `steps` steps whose graph is built by `build`, with one term reading the
    /// node it returns.
    fn plan_with(steps: u32, build: impl FnOnce(&mut Graph) -> NodeId) -> Plan {
        let mut graph = Graph::default();
        let energy = build(&mut graph);
        let term = Term {
            id: 0,
            name: "g.1".into(),
            block: "g".into(),
            line: 1,
            source: String::new(),
            kind: TermKind::Minimize,
            hard: false,
            weight: Num::new(1.0),
            energy,
            robustness: None,
            phase: None,
        };
        Plan {
            version: 1,
            source: "test.basin".into(),
            source_sha256: String::new(),
            contexts: Vec::new(),
            agents: Vec::new(),
            designs: Vec::new(),
            sites: Vec::new(),
            params: Vec::new(),
            horizon: Some(HorizonPlan { step: Num::new(1.0), horizon: Num::new(steps as f64), steps, time_limit: None }),
            solver: Vec::new(),
            worlds: Vec::new(),
            terms: vec![term],
            graph,
            refinements: Vec::new(),
        }
    }

    #[test]
    fn final_body_is_needed_at_last_step() {
        let mut body = 0;
        let plan = plan_with(5, |g| {
            let x = g.add(Node::State { agent: 0, component: 0 });
            body = g.add(Node::Abs { a: x });
            g.add(Node::Final { body })
        });
        let layout = Layout::new(&plan, true);
        assert_eq!(layout.nodes[body as usize].place, Place::Single(5));
    }

    #[test]
    fn window_body_is_a_row_over_window() {
        let (mut body, mut always) = (0, 0);
        let plan = plan_with(10, |g| {
            let x = g.add(Node::State { agent: 0, component: 0 });
            body = g.add(Node::Abs { a: x });
            always = g.add(Node::Always { body, from: 2, to: 4, temperature: Num::new(0.01) });
            g.add(Node::Neg { a: always })
        });
        let layout = Layout::new(&plan, true);
        assert_eq!(layout.nodes[always as usize].place, Place::Single(0));
        assert_eq!(layout.nodes[body as usize].place, Place::Row { lo: 2, hi: 4 });
        assert_eq!(layout.items, vec![Item::Loop { lo: 2, hi: 4, nodes: vec![body] }, Item::Node(always), Item::Node(always + 1)]);
    }

    #[test]
    fn nested_window_is_a_row() {
        let (mut inner, mut body) = (0, 0);
        let plan = plan_with(6, |g| {
            let x = g.add(Node::State { agent: 0, component: 0 });
            body = g.add(Node::Abs { a: x });
            inner = g.add(Node::Eventually { body, from: 0, to: u32::MAX, temperature: Num::new(0.01) });
            g.add(Node::Always { body: inner, from: 1, to: 3, temperature: Num::new(0.01) })
        });
        let layout = Layout::new(&plan, true);
        assert_eq!(layout.nodes[inner as usize].place, Place::Row { lo: 1, hi: 3 });
        assert_eq!(layout.nodes[body as usize].place, Place::Row { lo: 1, hi: 6 });
    }

    #[test]
    fn select_index_carries_no_adjoint() {
        let (mut index, mut option) = (0, 0);
        let plan = plan_with(2, |g| {
            index = g.add(Node::State { agent: 0, component: 0 });
            let rounded = g.add(Node::Abs { a: index });
            option = g.add(Node::State { agent: 0, component: 1 });
            let zero = g.constant(0.0);
            g.add(Node::Select { index: rounded, options: vec![option, zero] })
        });
        let layout = Layout::new(&plan, true);
        assert!(!layout.nodes[index as usize + 1].active, "the index expression");
        assert!(layout.nodes[option as usize].active, "the option");
    }

    #[test]
    fn softplus_reuses_sigmoid_node() {
        let (mut softplus, mut sigmoid) = (0, 0);
        let plan = plan_with(4, |g| {
            let x = g.add(Node::State { agent: 0, component: 0 });
            softplus = g.add(Node::SoftPlus { a: x, temperature: Num::new(0.01) });
            sigmoid = g.add(Node::Sigmoid { a: x, temperature: Num::new(0.01) });
            let total = g.add(Node::SumOver { body: sigmoid });
            let end = g.add(Node::Final { body: softplus });
            g.add(Node::Add { a: total, b: end })
        });
        let layout = Layout::new(&plan, true);
        assert_eq!(layout.nodes[softplus as usize].derivative, Some(sigmoid));
        // The sum needs the sigmoid at 0..=3 and the softplus gradient at 4.
        assert_eq!(layout.nodes[sigmoid as usize].place, Place::Row { lo: 0, hi: 4 });
        assert_eq!(Layout::new(&plan, false).nodes[sigmoid as usize].place, Place::Row { lo: 0, hi: 3 });
    }
}
