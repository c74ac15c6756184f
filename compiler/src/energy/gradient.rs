//! Reverse-mode differentiation of a plan's energy into a gradient graph.
//!
//! The gradient graph starts with a copy of the energy graph, with the same node ids. For
//! every node that depends on a decision (a state, action or design variable) it adds the
//! node's adjoint: the signal `adj_n(k) = ∂E / ∂n(k)` over the time grid, where `E` is the
//! total energy.
//! Adjoints are nodes too, hash-consed like the energy graph, so a partial derivative shared
//! by several parents (a softmin weight, a `cos a` for `sin a`) appears once.
//!
//! The seed is an impulse: a term's energy is its node's value at `k = 0`, so the adjoint of a
//! term's energy node is 1 at step 0 and 0 elsewhere. Pointwise nodes pass adjoints on step by
//! step. Temporal nodes pass them across steps through the adjoint kinds of [`GradNode`]
//! (`WindowAdjoint`, `UntilAdjoint`, `SumAdjoint`, `FinalAdjoint`), which transpose the
//! temporal node: where `always` at step `k` reads steps `j ∈ J(k)`, its adjoint at step `j`
//! collects from every `k` with `j ∈ J(k)`.
//!
//! Where a derivative does not exist the graph uses the conventions of `spec/energy.md`,
//! section 8, so a gradient is finite wherever the energy and its inputs are.
//!
//! The graph depends only on the plan, not on the inputs, so a caller that evaluates many
//! gradients builds it once with [`differentiate`] and evaluates it with [`evaluate_gradient`].

use std::collections::HashMap;
use std::fmt::Write as _;

use super::interpret::{Evaluator, Signal, evaluation_of, until_inner, window};
use super::{Evaluation, Gradient, Inputs, Shape, Status};
use crate::plan::{Graph, Node, NodeId, Num, Plan, format_number, node_text};

/// A node of the gradient graph.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum GradNode {
    /// A node of the energy graph, its children numbered in the gradient graph.
    Primal(Node),
    /// 1 at step 0 and 0 at every other step: the adjoint seed of a term's energy.
    Impulse,
    /// `adjoint · factor`, except that it is 0 wherever `adjoint` is 0, even if `factor` is
    /// not finite there: a decision that does not reach the energy gets no NaN from a branch
    /// it does not take.
    AdjointMul { adjoint: NodeId, factor: NodeId },
    /// `sign(a)`, with `sign(0) = 0`: the derivative of `|a|`.
    Sign { a: NodeId },
    /// 1 where `a < b`, `½` where `a = b`, 0 where `a > b`, NaN if either is NaN: the
    /// derivative of `min(a, b)` by `a`.
    Below { a: NodeId, b: NodeId },
    /// `a / b`, or 0 where `b = 0`.
    DivOrZero { a: NodeId, b: NodeId },
    /// The partial derivative of a distance lookup by `x` (axis 0) or `y` (axis 1).
    DistanceSlope { context: u32, x: NodeId, y: NodeId, axis: u8 },
    /// The adjoint of the body of `always` (`smooth: Min`) or `eventually` (`Max`) whose value
    /// is `value` and whose adjoint is `adjoint`: at step `j`, the sum over steps `k` whose
    /// window contains `j` of `adjoint(k) · w(k, j)`, with the log-sum-exp weight
    /// `w(k, j) = exp(∓(body(j) − value(k)) / τ)`.
    WindowAdjoint { body: NodeId, value: NodeId, adjoint: NodeId, from: u32, to: u32, temperature: Num, smooth: Smooth },
    /// The adjoint of one operand of `until` (see [`until_adjoint`] for the formula).
    UntilAdjoint { lhs: NodeId, rhs: NodeId, value: NodeId, adjoint: NodeId, temperature: Num, operand: UntilOperand },
    /// The adjoint of the body of `sum`: `Δt · Σ_{k ≤ j} adjoint(k)` at `j < H`, 0 at `H`.
    SumAdjoint { adjoint: NodeId },
    /// The adjoint of the body of `final`: `Σ_k adjoint(k)` at `H`, 0 elsewhere.
    FinalAdjoint { adjoint: NodeId },
}

/// The smooth extremum of a window: `Min` for `always`, `Max` for `eventually`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Smooth {
    Min,
    Max,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UntilOperand {
    Lhs,
    Rhs,
}

/// The adjoint of one decision leaf of the energy graph.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeafAdjoint {
    /// The `State`, `Action` or `Design` node, numbered as in the plan's graph.
    pub leaf: NodeId,
    /// The node of the gradient graph whose signal is the leaf's adjoint.
    pub adjoint: NodeId,
}

/// The energy graph of a plan followed by the adjoints of its nodes.
#[derive(Clone, Debug, Default)]
pub struct GradientGraph {
    /// Nodes in evaluation order; the first [`GradientGraph::primal_len`] are the plan's graph.
    pub nodes: Vec<GradNode>,
    /// Number of nodes copied from the plan's graph.
    pub primal_len: usize,
    /// Adjoints of the decision leaves that the energy depends on, in leaf order.
    pub leaves: Vec<LeafAdjoint>,
    index: HashMap<GradNode, NodeId>,
}

/// Computes the energy of `plan` at `inputs` and its gradient with respect to the states,
/// actions and design variables.
///
/// The status is that of [`super::evaluate`], and also [`Status::NonFinite`] (with no term)
/// when the energy is finite but a gradient entry is not.
///
/// # Panics
///
/// As [`super::evaluate`].
pub fn gradient(plan: &Plan, inputs: &Inputs) -> (Evaluation, Gradient) {
    evaluate_gradient(plan, &differentiate(plan), inputs)
}

/// Builds the gradient graph of `plan`'s total energy.
pub fn differentiate(plan: &Plan) -> GradientGraph {
    let mut graph = GradientGraph::default();
    for (i, node) in plan.graph.nodes.iter().enumerate() {
        let id = graph.insert(GradNode::Primal(node.clone()));
        assert_eq!(id as usize, i, "the plan's graph repeats a node");
    }
    graph.primal_len = plan.graph.nodes.len();

    let depends = decision_dependence(&plan.graph);
    let mut builder = Builder { graph, depends, contributions: vec![Vec::new(); plan.graph.nodes.len()] };

    let impulse = builder.graph.add(GradNode::Impulse);
    for term in &plan.terms {
        builder.contribute(term.energy, impulse);
    }

    // Children have smaller ids, so walking backwards finishes every node's adjoint before
    // passing it on to the node's children.
    for id in (0..plan.graph.nodes.len()).rev() {
        let parts = std::mem::take(&mut builder.contributions[id]);
        let Some(adjoint) = builder.graph.sum(&parts) else { continue };
        let node = &plan.graph.nodes[id];
        if matches!(node, Node::State { .. } | Node::Action { .. } | Node::Design { .. }) {
            builder.graph.leaves.push(LeafAdjoint { leaf: id as NodeId, adjoint });
        }
        builder.propagate(node, id as NodeId, adjoint);
    }
    builder.graph.leaves.reverse();
    builder.graph
}

/// Evaluates a gradient graph built by [`differentiate`] from the same `plan`.
///
/// # Panics
///
/// As [`super::evaluate`].
pub fn evaluate_gradient(plan: &Plan, graph: &GradientGraph, inputs: &Inputs) -> (Evaluation, Gradient) {
    let evaluator = Evaluator::new(plan, inputs);
    let mut values: Vec<Signal> = Vec::with_capacity(graph.nodes.len());
    for node in &graph.nodes {
        let value = match node {
            GradNode::Primal(node) => evaluator.node(node, &values),
            other => adjoint_node(&evaluator, other, &values),
        };
        values.push(value);
    }

    let mut evaluation = evaluation_of(plan, inputs, &values[..graph.primal_len]);
    let gradient = read_gradient(plan, graph, &values);
    let all_finite = [&gradient.states, &gradient.actions, &gradient.design].iter().all(|b| b.iter().all(|v| v.is_finite()));
    if evaluation.status == Status::Finite && !all_finite {
        evaluation.status = Status::NonFinite { term: None };
    }
    (evaluation, gradient)
}

/// Collects the adjoints of the decision leaves into the decision buffers' layout.
fn read_gradient(plan: &Plan, graph: &GradientGraph, values: &[Signal]) -> Gradient {
    let shape = Shape::of(plan);
    let mut gradient = Gradient { states: vec![0.0; shape.state_len()], actions: vec![0.0; shape.action_len()], design: vec![0.0; shape.n_design] };
    let last_action_row = shape.steps.max(1) - 1;
    for leaf in &graph.leaves {
        let adjoint = &values[leaf.adjoint as usize];
        match plan.graph.nodes[leaf.leaf as usize] {
            Node::State { agent, component } => {
                let column = Shape::state_column(plan, agent, component);
                for k in 0..=shape.steps {
                    gradient.states[k * shape.n_states + column] += adjoint.at(k);
                }
            }
            Node::Action { agent, component } => {
                // The action at step H is the held action of row H − 1, so both steps add
                // into that row.
                let column = Shape::action_column(plan, agent, component);
                for k in 0..=shape.steps {
                    gradient.actions[k.min(last_action_row) * shape.n_actions + column] += adjoint.at(k);
                }
            }
            Node::Design { variable } => {
                // A design variable has one value for all steps, so its derivative is the
                // sum of its adjoint over the steps.
                gradient.design[variable as usize] += (0..=shape.steps).map(|k| adjoint.at(k)).sum::<f64>();
            }
            ref other => unreachable!("{other:?} is not a decision leaf"),
        }
    }
    gradient
}

/// Marks the nodes that read a state, action or design variable, directly or through their
/// operands. Only these need adjoints. The index of a `select` does not count, because it gets no
/// gradient.
fn decision_dependence(graph: &Graph) -> Vec<bool> {
    let mut depends = vec![false; graph.nodes.len()];
    for (i, node) in graph.nodes.iter().enumerate() {
        depends[i] = match node {
            Node::State { .. } | Node::Action { .. } | Node::Design { .. } => true,
            Node::Select { options, .. } => options.iter().any(|&o| depends[o as usize]),
            other => other.children().iter().any(|&c| depends[c as usize]),
        };
    }
    depends
}

/// The state of [`differentiate`]: the graph so far, and the adjoint contributions each
/// primal node has received from its parents.
struct Builder {
    graph: GradientGraph,
    depends: Vec<bool>,
    contributions: Vec<Vec<NodeId>>,
}

impl Builder {
    /// Adds `part` to the adjoint of `node`, if the node depends on a decision.
    fn contribute(&mut self, node: NodeId, part: NodeId) {
        if self.depends[node as usize] {
            self.contributions[node as usize].push(part);
        }
    }

    /// Adds the part that `part` builds to the adjoint of `node`. The part is built only if
    /// the node depends on a decision, so the graph gets no unused nodes.
    fn contribute_with(&mut self, node: NodeId, part: impl FnOnce(&mut Builder) -> NodeId) {
        if self.depends[node as usize] {
            let part = part(self);
            self.contributions[node as usize].push(part);
        }
    }

    /// Adds `adjoint · ∂parent/∂node` to the adjoint of `node`, with `factor` building the
    /// partial derivative.
    fn chain(&mut self, node: NodeId, adjoint: NodeId, factor: impl FnOnce(&mut Builder) -> NodeId) {
        self.contribute_with(node, |b| {
            let factor = factor(b);
            b.graph.add(GradNode::AdjointMul { adjoint, factor })
        });
    }

    fn add(&mut self, node: GradNode) -> NodeId {
        self.graph.add(node)
    }

    fn primal(&mut self, node: Node) -> NodeId {
        self.graph.add(GradNode::Primal(node))
    }

    fn constant(&mut self, v: f64) -> NodeId {
        self.primal(Node::Const { value: Num::new(v) })
    }

    /// Passes the adjoint `adjoint` of node `id` (which is `node`) on to its operands.
    fn propagate(&mut self, node: &Node, id: NodeId, adjoint: NodeId) {
        match *node {
            Node::Const { .. } | Node::Param { .. } | Node::Time | Node::State { .. } | Node::Action { .. } | Node::Design { .. } => {}
            Node::Distance { context, x, y } => {
                self.chain(x, adjoint, |b| b.add(GradNode::DistanceSlope { context, x, y, axis: 0 }));
                self.chain(y, adjoint, |b| b.add(GradNode::DistanceSlope { context, x, y, axis: 1 }));
            }
            Node::Neg { a } => self.contribute_with(a, |b| b.primal(Node::Neg { a: adjoint })),
            Node::Add { a, b } => {
                self.contribute(a, adjoint);
                self.contribute(b, adjoint);
            }
            Node::Sub { a, b } => {
                self.contribute(a, adjoint);
                self.contribute_with(b, |builder| builder.primal(Node::Neg { a: adjoint }));
            }
            Node::Mul { a, b } => {
                self.chain(a, adjoint, |_| b);
                self.chain(b, adjoint, |_| a);
            }
            Node::Div { a, b } => {
                // ∂(a / b)/∂a = 1 / b and ∂(a / b)/∂b = −(a / b) / b.
                self.chain(a, adjoint, |builder| {
                    let one = builder.constant(1.0);
                    builder.primal(Node::Div { a: one, b })
                });
                self.chain(b, adjoint, |builder| {
                    let quotient = builder.primal(Node::Div { a: id, b });
                    builder.primal(Node::Neg { a: quotient })
                });
            }
            Node::Powi { a, n } => {
                if n != 0 {
                    self.chain(a, adjoint, |b| {
                        let lower = b.primal(Node::Powi { a, n: n - 1 });
                        let count = b.constant(n as f64);
                        b.primal(Node::Mul { a: count, b: lower })
                    });
                }
            }
            Node::Abs { a } => self.chain(a, adjoint, |b| b.add(GradNode::Sign { a })),
            Node::Sqrt { a } => {
                // 1 / (2·√a), and 0 at a = 0 where the derivative is infinite.
                self.chain(a, adjoint, |b| {
                    let half = b.constant(0.5);
                    b.add(GradNode::DivOrZero { a: half, b: id })
                });
            }
            Node::Sin { a } => self.chain(a, adjoint, |b| b.primal(Node::Cos { a })),
            Node::Cos { a } => {
                self.chain(a, adjoint, |b| {
                    let sine = b.primal(Node::Sin { a });
                    b.primal(Node::Neg { a: sine })
                });
            }
            Node::Tan { a } => {
                self.chain(a, adjoint, |b| {
                    let one = b.constant(1.0);
                    let square = b.primal(Node::Mul { a: id, b: id });
                    b.primal(Node::Add { a: one, b: square })
                });
            }
            Node::Atan2 { y, x } => {
                // ∂/∂y = x / (x² + y²) and ∂/∂x = −y / (x² + y²), both 0 at the origin.
                let radius_squared = |b: &mut Builder| {
                    let xx = b.primal(Node::Mul { a: x, b: x });
                    let yy = b.primal(Node::Mul { a: y, b: y });
                    b.primal(Node::Add { a: xx, b: yy })
                };
                self.chain(y, adjoint, |b| {
                    let r2 = radius_squared(b);
                    b.add(GradNode::DivOrZero { a: x, b: r2 })
                });
                self.chain(x, adjoint, |b| {
                    let r2 = radius_squared(b);
                    let minus_y = b.primal(Node::Neg { a: y });
                    b.add(GradNode::DivOrZero { a: minus_y, b: r2 })
                });
            }
            Node::Exp { a } => self.chain(a, adjoint, |_| id),
            Node::Log { a } => {
                self.chain(a, adjoint, |b| {
                    let one = b.constant(1.0);
                    b.primal(Node::Div { a: one, b: a })
                });
            }
            Node::Min { a, b } => {
                self.chain(a, adjoint, |builder| builder.add(GradNode::Below { a, b }));
                self.chain(b, adjoint, |builder| builder.add(GradNode::Below { a: b, b: a }));
            }
            Node::Max { a, b } => {
                self.chain(a, adjoint, |builder| builder.add(GradNode::Below { a: b, b: a }));
                self.chain(b, adjoint, |builder| builder.add(GradNode::Below { a, b }));
            }
            Node::SoftMin { ref args, temperature } | Node::SoftMax { ref args, temperature } => {
                // The weight of argument x is exp((value − x) / τ) for softmin and
                // exp((x − value) / τ) for softmax. Both are at most 1, so none overflows.
                let is_min = matches!(node, Node::SoftMin { .. });
                for &x in args {
                    self.chain(x, adjoint, |b| {
                        let gap = if is_min { Node::Sub { a: id, b: x } } else { Node::Sub { a: x, b: id } };
                        let gap = b.primal(gap);
                        let tau = b.constant(temperature.0);
                        let scaled = b.primal(Node::Div { a: gap, b: tau });
                        b.primal(Node::Exp { a: scaled })
                    });
                }
            }
            Node::SoftPlus { a, temperature } => self.chain(a, adjoint, |b| b.primal(Node::Sigmoid { a, temperature })),
            Node::Sigmoid { a, temperature } => {
                // σ′ = σ · (1 − σ) / τ.
                self.chain(a, adjoint, |b| {
                    let one = b.constant(1.0);
                    let rest = b.primal(Node::Sub { a: one, b: id });
                    let product = b.primal(Node::Mul { a: id, b: rest });
                    let tau = b.constant(temperature.0);
                    b.primal(Node::Div { a: product, b: tau })
                });
            }
            Node::Norm { ref args, .. } => {
                // ∂‖a‖_ε/∂aᵢ = aᵢ / ‖a‖_ε, finite because ‖a‖_ε ≥ ε > 0.
                for &x in args {
                    self.chain(x, adjoint, |b| b.primal(Node::Div { a: x, b: id }));
                }
            }
            Node::Select { index, ref options } => {
                // The chosen option gets the whole adjoint, through a mask that selects 1 at
                // its position and 0 elsewhere. The index gets none.
                for (position, &option) in options.iter().enumerate() {
                    self.chain(option, adjoint, |b| {
                        let zero = b.constant(0.0);
                        let one = b.constant(1.0);
                        let mask_options = (0..options.len()).map(|p| if p == position { one } else { zero }).collect();
                        b.primal(Node::Select { index, options: mask_options })
                    });
                }
            }
            Node::Always { body, from, to, temperature } | Node::Eventually { body, from, to, temperature } => {
                let smooth = if matches!(node, Node::Always { .. }) { Smooth::Min } else { Smooth::Max };
                self.contribute_with(body, |b| b.add(GradNode::WindowAdjoint { body, value: id, adjoint, from, to, temperature, smooth }));
            }
            Node::Until { lhs, rhs, temperature } => {
                for (operand, target) in [(UntilOperand::Lhs, lhs), (UntilOperand::Rhs, rhs)] {
                    self.contribute_with(target, |b| b.add(GradNode::UntilAdjoint { lhs, rhs, value: id, adjoint, temperature, operand }));
                }
            }
            Node::SumOver { body } => self.contribute_with(body, |b| b.add(GradNode::SumAdjoint { adjoint })),
            Node::Final { body } => self.contribute_with(body, |b| b.add(GradNode::FinalAdjoint { adjoint })),
        }
    }
}

impl GradientGraph {
    /// Adds a node without folding, or returns the id of an equal node added before.
    fn insert(&mut self, node: GradNode) -> NodeId {
        if let Some(&id) = self.index.get(&node) {
            return id;
        }
        let id = self.nodes.len() as NodeId;
        self.index.insert(node.clone(), id);
        self.nodes.push(node);
        id
    }

    /// Adds a node after simplifying it. It folds `neg`, `add` and `mul` of constants, `x + 0`,
    /// `x · 1`, `−(−x)`, `x⁰` and `x¹`, and an `AdjointMul` with a constant factor of 1 or a
    /// constant 0 on either side.
    ///
    /// Only new nodes pass through here: the copy of the energy graph is inserted as it is, so
    /// its ids match the plan's. A product with a constant 0 folds to 0 only for an adjoint
    /// (`AdjointMul`), whose convention makes it 0 even next to a non-finite factor.
    fn add(&mut self, node: GradNode) -> NodeId {
        let constant = |graph: &GradientGraph, id: NodeId| match &graph.nodes[id as usize] {
            GradNode::Primal(Node::Const { value }) => Some(value.0),
            _ => None,
        };
        match &node {
            GradNode::AdjointMul { adjoint, factor } => {
                if constant(self, *adjoint) == Some(0.0) || constant(self, *factor) == Some(0.0) {
                    return self.insert(GradNode::Primal(Node::Const { value: Num::new(0.0) }));
                }
                if constant(self, *factor) == Some(1.0) {
                    return *adjoint;
                }
            }
            GradNode::Primal(Node::Neg { a }) => {
                if let Some(v) = constant(self, *a) {
                    return self.insert(GradNode::Primal(Node::Const { value: Num::new(-v) }));
                }
                if let GradNode::Primal(Node::Neg { a: inner }) = &self.nodes[*a as usize] {
                    return *inner;
                }
            }
            GradNode::Primal(Node::Add { a, b }) => match (constant(self, *a), constant(self, *b)) {
                (Some(x), Some(y)) => return self.insert(GradNode::Primal(Node::Const { value: Num::new(x + y) })),
                (Some(0.0), None) => return *b,
                (None, Some(0.0)) => return *a,
                _ => {}
            },
            GradNode::Primal(Node::Mul { a, b }) => match (constant(self, *a), constant(self, *b)) {
                (Some(x), Some(y)) => return self.insert(GradNode::Primal(Node::Const { value: Num::new(x * y) })),
                (Some(1.0), None) => return *b,
                (None, Some(1.0)) => return *a,
                _ => {}
            },
            GradNode::Primal(Node::Powi { n: 0, .. }) => return self.insert(GradNode::Primal(Node::Const { value: Num::new(1.0) })),
            GradNode::Primal(Node::Powi { a, n: 1 }) => return *a,
            _ => {}
        }
        self.insert(node)
    }

    /// Adds up `parts` left to right, or returns `None` for no parts.
    fn sum(&mut self, parts: &[NodeId]) -> Option<NodeId> {
        let (&first, rest) = parts.split_first()?;
        Some(rest.iter().fold(first, |total, &part| self.add(GradNode::Primal(Node::Add { a: total, b: part }))))
    }

    /// Renders the graph one node per line, `n<id> = <node>`, with energy-graph nodes in the
    /// plan's text form and adjoint leaves listed at the end.
    pub fn to_text(&self, plan: &Plan) -> String {
        let mut out = String::new();
        let ids = |list: &[NodeId]| list.iter().map(|i| format!("n{i}")).collect::<Vec<_>>().join(" ");
        for (i, node) in self.nodes.iter().enumerate() {
            let text = match node {
                GradNode::Primal(node) => node_text(plan, node),
                GradNode::Impulse => "impulse".into(),
                GradNode::AdjointMul { adjoint, factor } => format!("adjoint_mul n{adjoint} n{factor}"),
                GradNode::Sign { a } => format!("sign n{a}"),
                GradNode::Below { a, b } => format!("below n{a} n{b}"),
                GradNode::DivOrZero { a, b } => format!("div_or_zero n{a} n{b}"),
                GradNode::DistanceSlope { context, x, y, axis } => {
                    let name = plan.contexts.get(*context as usize).map_or("?", |c| c.name.as_str());
                    format!("distance_slope[{}] {name} {}", if *axis == 0 { "x" } else { "y" }, ids(&[*x, *y]))
                }
                GradNode::WindowAdjoint { body, value, adjoint, from, to, temperature, smooth } => {
                    let kind = match smooth {
                        Smooth::Min => "always_adjoint",
                        Smooth::Max => "eventually_adjoint",
                    };
                    let to = if *to == u32::MAX { "end".to_string() } else { to.to_string() };
                    format!("{kind}[{}] [{from}, {to}] {}", format_number(temperature.0), ids(&[*body, *value, *adjoint]))
                }
                GradNode::UntilAdjoint { lhs, rhs, value, adjoint, temperature, operand } => {
                    let side = match operand {
                        UntilOperand::Lhs => "lhs",
                        UntilOperand::Rhs => "rhs",
                    };
                    format!("until_adjoint_{side}[{}] {}", format_number(temperature.0), ids(&[*lhs, *rhs, *value, *adjoint]))
                }
                GradNode::SumAdjoint { adjoint } => format!("sum_adjoint n{adjoint}"),
                GradNode::FinalAdjoint { adjoint } => format!("final_adjoint n{adjoint}"),
            };
            let _ = writeln!(out, "n{i} = {text}");
        }
        for leaf in &self.leaves {
            let _ = writeln!(out, "d/d n{} = n{}", leaf.leaf, leaf.adjoint);
        }
        out
    }
}

/// Computes an adjoint node, whose operands are in `values`.
fn adjoint_node(evaluator: &Evaluator, node: &GradNode, values: &[Signal]) -> Signal {
    let value = |id: NodeId| &values[id as usize];
    let steps = evaluator.steps();
    match *node {
        GradNode::Primal(_) => unreachable!("energy-graph nodes are evaluated by the interpreter"),
        GradNode::Impulse => evaluator.steps_signal(|k| if k == 0 { 1.0 } else { 0.0 }),
        GradNode::AdjointMul { adjoint, factor } => pointwise(evaluator, &[value(adjoint), value(factor)], |v| if v[0] == 0.0 { 0.0 } else { v[0] * v[1] }),
        GradNode::Sign { a } => pointwise(evaluator, &[value(a)], |v| if v[0] == 0.0 || v[0].is_nan() { v[0] } else { v[0].signum() }),
        GradNode::Below { a, b } => pointwise(evaluator, &[value(a), value(b)], |v| {
            if v[0].is_nan() || v[1].is_nan() {
                f64::NAN
            } else if v[0] < v[1] {
                1.0
            } else if v[0] == v[1] {
                0.5
            } else {
                0.0
            }
        }),
        GradNode::DivOrZero { a, b } => pointwise(evaluator, &[value(a), value(b)], |v| if v[1] == 0.0 { 0.0 } else { v[0] / v[1] }),
        GradNode::DistanceSlope { context, x, y, axis } => {
            let field = evaluator.field(context);
            pointwise(evaluator, &[value(x), value(y)], |v| {
                let sample = field.sample(v[0], v[1]);
                if axis == 0 { sample.slope_x } else { sample.slope_y }
            })
        }
        GradNode::WindowAdjoint { body, value: parent, adjoint, from, to, temperature, smooth } => {
            let (body, parent, adjoint) = (value(body), value(parent), value(adjoint));
            let tau = temperature.0;
            let mut out = vec![0.0; steps + 1];
            for k in 0..=steps {
                if adjoint.at(k) == 0.0 {
                    continue;
                }
                for j in window(k, from, to, steps) {
                    let gap = match smooth {
                        Smooth::Min => parent.at(k) - body.at(j),
                        Smooth::Max => body.at(j) - parent.at(k),
                    };
                    out[j] += adjoint.at(k) * (gap / tau).exp();
                }
            }
            Signal::Steps(out)
        }
        GradNode::UntilAdjoint { lhs, rhs, value: parent, adjoint, temperature, operand } => {
            until_adjoint(value(lhs), value(rhs), value(parent), value(adjoint), temperature.0, operand, steps)
        }
        GradNode::SumAdjoint { adjoint } => {
            let adjoint = value(adjoint);
            let mut out = vec![0.0; steps + 1];
            let mut running = 0.0;
            for (j, slot) in out.iter_mut().enumerate().take(steps) {
                running += adjoint.at(j);
                *slot = evaluator.step() * running;
            }
            Signal::Steps(out)
        }
        GradNode::FinalAdjoint { adjoint } => {
            let adjoint = value(adjoint);
            let mut out = vec![0.0; steps + 1];
            out[steps] = (0..=steps).map(|k| adjoint.at(k)).sum();
            Signal::Steps(out)
        }
    }
}

/// Applies `f` to the operands at each step, once if all of them are constant.
fn pointwise(evaluator: &Evaluator, operands: &[&Signal], f: impl Fn(&[f64]) -> f64) -> Signal {
    let at = |k: usize| operands.iter().map(|s| s.at(k)).collect::<Vec<f64>>();
    if operands.iter().all(|s| s.is_constant()) {
        return Signal::Constant(f(&at(0)));
    }
    evaluator.steps_signal(|k| f(&at(k)))
}

/// Computes the adjoint of one operand of `until`.
///
/// With `p(k) = softmax_τ over j = k..H of m(k, j)` and the inner smooth minimum
/// `m(k, j) = softmin_τ(r_j, l_k, …, l_{j−1})`, the chain rule through the two log-sum-exps
/// gives, with `α(k, j) = exp((m(k, j) − p(k)) / τ)`:
///
/// ```text
/// adj_r(j) = Σ_{k ≤ j}            adjoint(k) · α(k, j) · exp((m(k, j) − r_j) / τ)
/// adj_l(i) = Σ_{k ≤ i} Σ_{j > i}  adjoint(k) · α(k, j) · exp((m(k, j) − l_i) / τ)
/// ```
///
/// Every exponent is at most 0 because a softmax is at least each of its arguments and a
/// softmin at most each of its arguments, so no term overflows.
///
/// NOTE: the `lhs` adjoint takes `O(H³)` time, acceptable for a reference but not for long
/// horizons.
fn until_adjoint(lhs: &Signal, rhs: &Signal, parent: &Signal, adjoint: &Signal, tau: f64, operand: UntilOperand, steps: usize) -> Signal {
    let mut out = vec![0.0; steps + 1];
    for k in 0..=steps {
        if adjoint.at(k) == 0.0 {
            continue;
        }
        let inner = until_inner(lhs, rhs, k, steps, tau);
        let outer_weight = |j: usize| ((inner[j - k] - parent.at(k)) / tau).exp();
        match operand {
            UntilOperand::Rhs => {
                for j in k..=steps {
                    out[j] += adjoint.at(k) * outer_weight(j) * ((inner[j - k] - rhs.at(j)) / tau).exp();
                }
            }
            UntilOperand::Lhs => {
                for (i, slot) in out.iter_mut().enumerate().take(steps).skip(k) {
                    for j in i + 1..=steps {
                        *slot += adjoint.at(k) * outer_weight(j) * ((inner[j - k] - lhs.at(i)) / tau).exp();
                    }
                }
            }
        }
    }
    Signal::Steps(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Database;
    use crate::plan::{CompileOptions, compile};

    fn compile_spec(text: &str) -> Plan {
        let db = Database::new();
        let file = db.add_file("test.basin", text);
        let (plan, diagnostics) = compile(&db, file, &CompileOptions { base_dir: None, allow_outside: false });
        plan.unwrap_or_else(|| panic!("the spec did not compile: {diagnostics:?}"))
    }

    #[test]
    fn shared_partial_appears_once() {
        // `sin(x)` has two parents, so its adjoint has two parts, but `cos(x)` is built once.
        let plan = compile_spec(
            "use std.robots.double_integrator\nagent b = double_integrator {}\ngoal g { minimize sin(b.position / 1 m) + 2 * sin(b.position / 1 m) }\nplan { step: 1 s, horizon: 2 s }\n",
        );
        let graph = differentiate(&plan);
        let cosines = graph.nodes.iter().filter(|n| matches!(n, GradNode::Primal(Node::Cos { .. }))).count();
        assert_eq!(cosines, 1, "{}", graph.to_text(&plan));
    }

    #[test]
    fn gradient_graph_has_no_duplicates() {
        let plan = compile_spec(
            "use std.robots.double_integrator\nagent b = double_integrator {}\ngoal g { reach b.position -> 4 m within 1 cm\n finish_by 10 s }\nconstraint c { always abs(b.velocity) <= 2 m/s }\nplan { step: 1 s, horizon: 3 s }\n",
        );
        let graph = differentiate(&plan);
        let distinct: std::collections::HashSet<&GradNode> = graph.nodes.iter().collect();
        assert_eq!(distinct.len(), graph.nodes.len());
        assert_eq!(graph.primal_len, plan.graph.nodes.len());
    }

    #[test]
    fn energy_without_decisions_has_no_adjoints() {
        let plan = compile_spec("use std.robots.double_integrator\nagent b = double_integrator {}\nconstraint c { always b.max_speed >= 1 m/s hard }\nplan { step: 1 s, horizon: 2 s }\n");
        let graph = differentiate(&plan);
        assert!(graph.leaves.is_empty());
        assert_eq!(graph.nodes.len(), graph.primal_len + 1, "only the impulse is added: {}", graph.to_text(&plan));
    }
}
