//! The energy expression graph: a DAG of numeric nodes shared by every term of a plan.
//!
//! Nodes are hash-consed: adding a node equal to an existing one returns the existing id,
//! which is common-subexpression elimination by construction. Children always have smaller
//! ids than their parents, so the node list is already in evaluation order and every
//! backend can evaluate it with one forward loop, never recursion.
//!
//! Most nodes are signals: they have a value at each time step `k = 0..=H` of the horizon.
//! Temporal nodes (`Always`, `Eventually`, `Until`, `SumOver`, `Final`) read their body over
//! a range of steps; their semantics are in `spec/energy.md`.

use std::collections::HashMap;

use serde::Serialize;

/// A node id: an index into [`Graph::nodes`].
pub type NodeId = u32;

/// An `f64` compared and hashed by its bits, with `-0.0` folded into `0.0` so equal plans
/// print equal text.
#[derive(Clone, Copy, Debug, Serialize)]
#[serde(transparent)]
pub struct Num(pub f64);

impl Num {
    pub fn new(v: f64) -> Num {
        Num(if v == 0.0 { 0.0 } else { v })
    }
}

impl PartialEq for Num {
    fn eq(&self, other: &Num) -> bool {
        self.0.to_bits() == other.0.to_bits()
    }
}

impl Eq for Num {}

impl std::hash::Hash for Num {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.to_bits().hash(state);
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Node {
    Const { value: Num },
    /// A named parameter of the plan (`Plan::params[index]`); refinements edit these.
    Param { index: u32 },
    /// Absolute time in seconds at step `k`: the run's elapsed time plus `k · step`.
    Time,
    /// A state component of an agent at step `k`.
    State { agent: u32, component: u32 },
    /// An action component of an agent at step `k` (the last action is held at `k = H`).
    Action { agent: u32, component: u32 },
    /// A design variable (constant over time).
    Design { variable: u32 },
    /// The signed distance (metres, positive in free space) from `(x, y)` to the nearest
    /// obstacle of a map context, by bilinear interpolation of its distance field.
    Distance { context: u32, x: NodeId, y: NodeId },
    Neg { a: NodeId },
    Add { a: NodeId, b: NodeId },
    Sub { a: NodeId, b: NodeId },
    Mul { a: NodeId, b: NodeId },
    Div { a: NodeId, b: NodeId },
    /// `a` to an integer power.
    Powi { a: NodeId, n: i32 },
    Abs { a: NodeId },
    Sqrt { a: NodeId },
    Sin { a: NodeId },
    Cos { a: NodeId },
    Tan { a: NodeId },
    Atan2 { y: NodeId, x: NodeId },
    Exp { a: NodeId },
    Log { a: NodeId },
    Min { a: NodeId, b: NodeId },
    Max { a: NodeId, b: NodeId },
    /// `-τ · ln Σ exp(-x_i / τ)`: a smooth lower bound of the minimum, within `τ · ln n`.
    SoftMin { args: Vec<NodeId>, temperature: Num },
    /// `τ · ln Σ exp(x_i / τ)`: a smooth upper bound of the maximum, within `τ · ln n`.
    SoftMax { args: Vec<NodeId>, temperature: Num },
    /// `τ · ln(1 + exp(a / τ))`: a smooth `max(0, a)`, within `τ · ln 2`.
    SoftPlus { a: NodeId, temperature: Num },
    /// `1 / (1 + exp(-a / τ))`: a smooth step from 0 to 1 around `a = 0`.
    Sigmoid { a: NodeId, temperature: Num },
    /// Euclidean length `sqrt(Σ a_i² + ε²)`; `ε` keeps the gradient finite at zero.
    Norm { args: Vec<NodeId>, epsilon: Num },
    /// `options[i]` where `i` is the value of `index` rounded and clamped to the options:
    /// a discrete design choice, or the active phase of a `then` sequence.
    Select { index: NodeId, options: Vec<NodeId> },
    /// Smooth minimum of `body` over steps `k + from ..= k + to` (clipped to the horizon).
    Always { body: NodeId, from: u32, to: u32, temperature: Num },
    /// Smooth maximum of `body` over steps `k + from ..= k + to` (clipped to the horizon).
    Eventually { body: NodeId, from: u32, to: u32, temperature: Num },
    /// Robustness of `lhs until rhs`: the smooth maximum over `j ≥ k` of the smooth minimum
    /// of `rhs(j)` and `lhs(i)` for `k ≤ i < j`, both with `temperature`.
    Until { lhs: NodeId, rhs: NodeId, temperature: Num },
    /// `Σ_{j=k}^{H-1} step · body(j)`: an integral over the rest of the horizon.
    SumOver { body: NodeId },
    /// `body(H)`: the value at the end of the horizon.
    Final { body: NodeId },
}

impl Node {
    /// Rewrites every child id through `f`.
    pub fn remap(&mut self, f: impl Fn(NodeId) -> NodeId) {
        match self {
            Node::Const { .. } | Node::Param { .. } | Node::Time | Node::State { .. } | Node::Action { .. } | Node::Design { .. } => {}
            Node::Distance { x, y, .. } => {
                *x = f(*x);
                *y = f(*y);
            }
            Node::Neg { a }
            | Node::Powi { a, .. }
            | Node::Abs { a }
            | Node::Sqrt { a }
            | Node::Sin { a }
            | Node::Cos { a }
            | Node::Tan { a }
            | Node::Exp { a }
            | Node::Log { a }
            | Node::SoftPlus { a, .. }
            | Node::Sigmoid { a, .. } => *a = f(*a),
            Node::Add { a, b } | Node::Sub { a, b } | Node::Mul { a, b } | Node::Div { a, b } | Node::Min { a, b } | Node::Max { a, b } => {
                *a = f(*a);
                *b = f(*b);
            }
            Node::Atan2 { y, x } => {
                *y = f(*y);
                *x = f(*x);
            }
            Node::SoftMin { args, .. } | Node::SoftMax { args, .. } | Node::Norm { args, .. } => {
                for a in args {
                    *a = f(*a);
                }
            }
            Node::Select { index, options } => {
                *index = f(*index);
                for o in options {
                    *o = f(*o);
                }
            }
            Node::Always { body, .. } | Node::Eventually { body, .. } | Node::SumOver { body } | Node::Final { body } => *body = f(*body),
            Node::Until { lhs, rhs, .. } => {
                *lhs = f(*lhs);
                *rhs = f(*rhs);
            }
        }
    }

    /// Ids of the nodes this node reads.
    pub fn children(&self) -> Vec<NodeId> {
        match self {
            Node::Const { .. } | Node::Param { .. } | Node::Time | Node::State { .. } | Node::Action { .. } | Node::Design { .. } => Vec::new(),
            Node::Distance { x, y, .. } => vec![*x, *y],
            Node::Neg { a }
            | Node::Powi { a, .. }
            | Node::Abs { a }
            | Node::Sqrt { a }
            | Node::Sin { a }
            | Node::Cos { a }
            | Node::Tan { a }
            | Node::Exp { a }
            | Node::Log { a }
            | Node::SoftPlus { a, .. }
            | Node::Sigmoid { a, .. } => vec![*a],
            Node::Add { a, b } | Node::Sub { a, b } | Node::Mul { a, b } | Node::Div { a, b } | Node::Min { a, b } | Node::Max { a, b } => {
                vec![*a, *b]
            }
            Node::Atan2 { y, x } => vec![*y, *x],
            Node::SoftMin { args, .. } | Node::SoftMax { args, .. } | Node::Norm { args, .. } => args.clone(),
            Node::Select { index, options } => {
                let mut out = vec![*index];
                out.extend(options);
                out
            }
            Node::Always { body, .. } | Node::Eventually { body, .. } | Node::SumOver { body } | Node::Final { body } => vec![*body],
            Node::Until { lhs, rhs, .. } => vec![*lhs, *rhs],
        }
    }
}

/// The graph: nodes in evaluation order, deduplicated.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Graph {
    pub nodes: Vec<Node>,
    #[serde(skip)]
    index: HashMap<Node, NodeId>,
}

impl Graph {
    /// Adds a node, or returns the id of an equal node added before. Constant operands are
    /// folded, so `2 * 3` is one constant node.
    pub fn add(&mut self, node: Node) -> NodeId {
        let node = self.fold(node);
        // Identities: x * 1, 1 * x, x + 0, 0 + x, x - 0, x / 1.
        let is = |id: &NodeId, v: f64| self.const_value(*id) == Some(v);
        match &node {
            Node::Mul { a, b } if is(b, 1.0) => return *a,
            Node::Mul { a, b } if is(a, 1.0) => return *b,
            Node::Add { a, b } if is(b, 0.0) => return *a,
            Node::Add { a, b } if is(a, 0.0) => return *b,
            Node::Sub { a, b } if is(b, 0.0) => return *a,
            Node::Div { a, b } if is(b, 1.0) => return *a,
            _ => {}
        }
        if let Some(&id) = self.index.get(&node) {
            return id;
        }
        let id = self.nodes.len() as NodeId;
        self.index.insert(node.clone(), id);
        self.nodes.push(node);
        id
    }

    pub fn constant(&mut self, v: f64) -> NodeId {
        self.add(Node::Const { value: Num::new(v) })
    }

    pub fn const_value(&self, id: NodeId) -> Option<f64> {
        match self.nodes.get(id as usize) {
            Some(Node::Const { value }) => Some(value.0),
            _ => None,
        }
    }

    /// Drops nodes that no root reads and renumbers the rest in order. Returns the new id
    /// of every old node (`None` for dropped ones).
    pub fn prune(&mut self, roots: &[NodeId]) -> Vec<Option<NodeId>> {
        let mut live = vec![false; self.nodes.len()];
        for &r in roots {
            live[r as usize] = true;
        }
        // Children have smaller ids, so one backward pass marks everything reachable.
        for i in (0..self.nodes.len()).rev() {
            if live[i] {
                for c in self.nodes[i].children() {
                    live[c as usize] = true;
                }
            }
        }
        let mut map = vec![None; self.nodes.len()];
        let mut kept = Vec::new();
        for (i, node) in self.nodes.iter().enumerate() {
            if live[i] {
                map[i] = Some(kept.len() as NodeId);
                kept.push(node.clone());
            }
        }
        let remap = |id: NodeId| map[id as usize].expect("children of live nodes are live");
        for node in &mut kept {
            node.remap(remap);
        }
        self.nodes = kept;
        self.index = self.nodes.iter().enumerate().map(|(i, n)| (n.clone(), i as NodeId)).collect();
        map
    }

    /// Rewrites parameter indices through `map` (old index to new index).
    /// Moves the state nodes of designs, numbered from `base` while lowering, to follow the
    /// `agents` agents, as the plan's energy layout numbers them.
    pub fn renumber_design_states(&mut self, base: u32, agents: u32) {
        for node in &mut self.nodes {
            if let Node::State { agent, .. } = node {
                if *agent >= base {
                    *agent = *agent - base + agents;
                }
            }
        }
        self.index = self.nodes.iter().enumerate().map(|(i, n)| (n.clone(), i as NodeId)).collect();
    }

    pub fn renumber_params(&mut self, map: &[u32]) {
        for node in &mut self.nodes {
            if let Node::Param { index } = node {
                *index = map[*index as usize];
            }
        }
        self.index = self.nodes.iter().enumerate().map(|(i, n)| (n.clone(), i as NodeId)).collect();
    }

    fn fold(&self, node: Node) -> Node {
        let c = |id: &NodeId| self.const_value(*id);
        let folded = match &node {
            Node::Neg { a } => c(a).map(|x| -x),
            Node::Add { a, b } => c(a).zip(c(b)).map(|(x, y)| x + y),
            Node::Sub { a, b } => c(a).zip(c(b)).map(|(x, y)| x - y),
            Node::Mul { a, b } => c(a).zip(c(b)).map(|(x, y)| x * y),
            Node::Div { a, b } => c(a).zip(c(b)).filter(|(_, y)| *y != 0.0).map(|(x, y)| x / y),
            Node::Powi { a, n } => c(a).map(|x| x.powi(*n)),
            Node::Abs { a } => c(a).map(f64::abs),
            Node::Min { a, b } => c(a).zip(c(b)).map(|(x, y)| x.min(y)),
            Node::Max { a, b } => c(a).zip(c(b)).map(|(x, y)| x.max(y)),
            _ => None,
        };
        match folded {
            Some(v) if v.is_finite() => Node::Const { value: Num::new(v) },
            _ => node,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_nodes_share_an_id() {
        let mut g = Graph::default();
        let x = g.add(Node::State { agent: 0, component: 0 });
        let one = g.constant(1.0);
        let a = g.add(Node::Add { a: x, b: one });
        let b = g.add(Node::Add { a: x, b: one });
        assert_eq!(a, b);
        assert_eq!(g.nodes.len(), 3);
    }

    #[test]
    fn constants_fold() {
        let mut g = Graph::default();
        let two = g.constant(2.0);
        let three = g.constant(3.0);
        let six = g.add(Node::Mul { a: two, b: three });
        assert_eq!(g.const_value(six), Some(6.0));
    }

    #[test]
    fn negative_zero_is_zero() {
        let mut g = Graph::default();
        let a = g.constant(-0.0);
        let b = g.constant(0.0);
        assert_eq!(a, b);
    }
}
