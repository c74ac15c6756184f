//! Checks that matter to engineers, run on the lowered graph: terms that no decision can
//! change, and hard constraints that no value in the declared ranges can satisfy.
//!
//! Infeasibility uses interval arithmetic: every state, action and design variable ranges
//! over its declared bounds (unbounded when none is declared), and each node's interval is
//! computed in one forward pass. The result is conservative: a reported constraint is
//! violated for every value in the ranges, but some infeasible constraints go unreported.

use std::collections::BTreeMap;

use super::graph::{Node, NodeId};
use super::lower::Lowering;
use super::{Domain, TermKind, format_number};
use crate::diagnostics::{Code, Diagnostic, Label};
use crate::syntax::Span;

#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct Interval {
    pub lo: f64,
    pub hi: f64,
}

impl Interval {
    const ALL: Interval = Interval { lo: f64::NEG_INFINITY, hi: f64::INFINITY };

    fn point(v: f64) -> Interval {
        Interval { lo: v, hi: v }
    }

    fn hull(self, o: Interval) -> Interval {
        Interval { lo: self.lo.min(o.lo), hi: self.hi.max(o.hi) }
    }
}

fn mul(a: Interval, b: Interval) -> Interval {
    let products = [a.lo * b.lo, a.lo * b.hi, a.hi * b.lo, a.hi * b.hi];
    if products.iter().any(|p| p.is_nan()) {
        return Interval::ALL;
    }
    Interval { lo: products.iter().copied().fold(f64::INFINITY, f64::min), hi: products.iter().copied().fold(f64::NEG_INFINITY, f64::max) }
}

/// Interval of every node, given the bounds of the decision variables.
pub(super) fn intervals(l: &Lowering<'_>) -> Vec<Interval> {
    let (agents, designs, params) = l.agent_components();
    let design_vars: Vec<Interval> = designs
        .iter()
        .flat_map(|d| d.variables.iter())
        .map(|v| match &v.domain {
            Domain::Continuous { lower, upper } => Interval { lo: lower.0, hi: upper.0 },
            Domain::Discrete { choices } => Interval { lo: 0.0, hi: choices.len().saturating_sub(1) as f64 },
        })
        .collect();
    let bound = |lower: Option<super::Num>, upper: Option<super::Num>| Interval {
        lo: lower.map_or(f64::NEG_INFINITY, |v| v.0),
        hi: upper.map_or(f64::INFINITY, |v| v.0),
    };
    let graph = l.graph();
    let mut out: Vec<Interval> = Vec::with_capacity(graph.nodes.len());
    for node in graph.nodes.iter().cloned() {
        let get = |id: NodeId| out[id as usize];
        let iv = match node {
            Node::Const { value } => Interval::point(value.0),
            Node::Param { index } => Interval::point(params[index as usize].value.0),
            Node::Time => Interval { lo: 0.0, hi: f64::INFINITY },
            Node::State { agent, component } => match agents.get(agent as usize) {
                Some(a) => {
                    let c = &a.states[component as usize];
                    bound(c.lower, c.upper)
                }
                // A design's outcome: any value until the scenario is simulated.
                None => Interval::ALL,
            },
            Node::Action { agent, component } => {
                let c = &agents[agent as usize].actions[component as usize];
                bound(c.lower, c.upper)
            }
            Node::Design { variable } => design_vars.get(variable as usize).copied().unwrap_or(Interval::ALL),
            Node::Neg { a } => Interval { lo: -get(a).hi, hi: -get(a).lo },
            Node::Add { a, b } => Interval { lo: get(a).lo + get(b).lo, hi: get(a).hi + get(b).hi },
            Node::Sub { a, b } => Interval { lo: get(a).lo - get(b).hi, hi: get(a).hi - get(b).lo },
            Node::Mul { a, b } => mul(get(a), get(b)),
            Node::Div { a, b } => {
                let d = get(b);
                if d.lo > 0.0 || d.hi < 0.0 { mul(get(a), Interval { lo: 1.0 / d.hi, hi: 1.0 / d.lo }) } else { Interval::ALL }
            }
            Node::Powi { a, n } => {
                let x = get(a);
                let ends = [x.lo.powi(n), x.hi.powi(n)];
                let mut iv = Interval { lo: ends[0].min(ends[1]), hi: ends[0].max(ends[1]) };
                if n % 2 == 0 && n > 0 && x.lo < 0.0 && x.hi > 0.0 {
                    iv.lo = 0.0;
                }
                if n < 0 && x.lo <= 0.0 && x.hi >= 0.0 { Interval::ALL } else { iv }
            }
            Node::Abs { a } => {
                let x = get(a);
                if x.lo >= 0.0 {
                    x
                } else if x.hi <= 0.0 {
                    Interval { lo: -x.hi, hi: -x.lo }
                } else {
                    Interval { lo: 0.0, hi: x.hi.max(-x.lo) }
                }
            }
            Node::Sqrt { a } => Interval { lo: get(a).lo.max(0.0).sqrt(), hi: get(a).hi.max(0.0).sqrt() },
            Node::Min { a, b } => Interval { lo: get(a).lo.min(get(b).lo), hi: get(a).hi.min(get(b).hi) },
            Node::Max { a, b } => Interval { lo: get(a).lo.max(get(b).lo), hi: get(a).hi.max(get(b).hi) },
            Node::Select { options, .. } => options.iter().map(|o| get(*o)).reduce(Interval::hull).unwrap_or(Interval::ALL),
            // Smooth minima and maxima stay within the hull of their arguments, widened by the
            // smoothing error; time aggregates stay within the hull of the body's values.
            Node::SoftMin { args, temperature } => {
                let lo = args.iter().map(|a| get(*a).lo).fold(f64::INFINITY, f64::min) - temperature.0 * (args.len() as f64).ln();
                let hi = args.iter().map(|a| get(*a).hi).fold(f64::INFINITY, f64::min);
                Interval { lo, hi }
            }
            Node::SoftMax { args, temperature } => {
                let lo = args.iter().map(|a| get(*a).lo).fold(f64::NEG_INFINITY, f64::max);
                let hi = args.iter().map(|a| get(*a).hi).fold(f64::NEG_INFINITY, f64::max) + temperature.0 * (args.len() as f64).ln();
                Interval { lo, hi }
            }
            Node::Always { body, .. } | Node::Eventually { body, .. } | Node::Final { body } => {
                // Windows of unknown length: widen by a generous smoothing margin.
                let x = get(body);
                Interval { lo: x.lo - 1.0, hi: x.hi + 1.0 }
            }
            _ => Interval::ALL,
        };
        out.push(iv);
    }
    out
}

/// Whether `id` reads a state, action or design variable.
fn influenced(l: &Lowering<'_>, id: NodeId) -> bool {
    let graph = l.graph();
    let mut stack = vec![id];
    let mut seen = std::collections::HashSet::new();
    while let Some(n) = stack.pop() {
        if !seen.insert(n) {
            continue;
        }
        let node = &graph.nodes[n as usize];
        if matches!(node, Node::State { .. } | Node::Action { .. } | Node::Design { .. }) {
            return true;
        }
        stack.extend(node.children());
    }
    false
}

pub(super) fn run(l: &mut Lowering<'_>, comparisons: &BTreeMap<u32, (NodeId, NodeId, Span)>) {
    let terms = l.terms().to_vec();
    for term in &terms {
        let goal_term = matches!(term.kind, TermKind::Reach | TermKind::Minimize | TermKind::Maximize);
        if goal_term && !influenced(l, term.energy) {
            let span = l.term_span(term);
            l.report(
                Diagnostic::error(Code::NoInfluence, format!("no decision can change `{}`: it reads no state, action or design variable", term.source))
                    .with_label(Label::primary(span, "constant whatever the plan does"))
                    .with_help("try an objective that reads an agent or a design, such as `minimize duration`"),
            );
        }
    }
    let iv = intervals(l);
    for term in &terms {
        if !term.hard {
            continue;
        }
        let Some(&(lhs, rhs, span)) = comparisons.get(&term.id) else { continue };
        let Some(rho) = term.robustness else { continue };
        if iv[rho as usize].hi >= 0.0 {
            continue;
        }
        let (a, b) = (iv[lhs as usize], iv[rhs as usize]);
        l.report(
            Diagnostic::error(Code::InfeasibleHard, format!("hard constraint `{}` is violated for every value in the declared ranges", term.source))
                .with_label(Label::primary(span, "cannot hold"))
                .with_note(format!("the left side ranges over [{}, {}] and the right side over [{}, {}] (SI units)", show(a.lo), show(a.hi), show(b.lo), show(b.hi)))
                .with_help("try widening the design ranges, or relaxing the bound"),
        );
    }
}

fn show(v: f64) -> String {
    if v.is_infinite() {
        if v > 0.0 { "inf".into() } else { "-inf".into() }
    } else {
        format_number(v)
    }
}
