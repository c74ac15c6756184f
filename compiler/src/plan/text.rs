//! The text form of a compiled plan, documented in `spec/plan.md`.
//!
//! It is meant to be read in a diff: one fact per line, names instead of indices where a
//! name exists, numbers in SI printed the same way on every platform.

use std::fmt::Write as _;

use super::graph::Node;
use super::*;

/// Prints a number in SI the same way everywhere: rounded to 12 significant digits, then
/// Rust's shortest round-trip form (which does not depend on the C library), without `-0`.
pub fn format_number(v: f64) -> String {
    if v.is_nan() {
        return "nan".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "inf".into() } else { "-inf".into() };
    }
    let rounded: f64 = format!("{v:.11e}").parse().unwrap_or(v);
    let rounded = if rounded == 0.0 { 0.0 } else { rounded };
    let plain = format!("{rounded}");
    if plain.len() > 16 { format!("{rounded:e}") } else { plain }
}

fn n(v: Num) -> String {
    format_number(v.0)
}

fn settings(list: &[Setting]) -> String {
    if list.is_empty() {
        return String::new();
    }
    let parts: Vec<String> = list
        .iter()
        .map(|s| match &s.value {
            SettingValue::Number(v) => format!("{}: {}", s.name, n(*v)),
            SettingValue::Word(w) => format!("{}: {}", s.name, w),
        })
        .collect();
    format!(" {{ {} }}", parts.join(", "))
}

fn bounds(c: &Component) -> String {
    match (c.lower, c.upper) {
        (None, None) => String::new(),
        (l, u) => format!(" in [{}, {}]", l.map_or("-inf".into(), n), u.map_or("inf".into(), n)),
    }
}

/// Renders the plan's text form.
pub fn to_text(plan: &Plan) -> String {
    let mut out = String::new();
    let w = &mut out;
    let _ = writeln!(w, "basin plan v{}", plan.version);
    let _ = writeln!(w, "source {:?} sha256 {}", plan.source, plan.source_sha256);

    if !plan.contexts.is_empty() {
        let _ = writeln!(w, "\ncontexts");
        for c in &plan.contexts {
            let hash = c.sha256.as_deref().map_or(String::new(), |h| format!(" sha256 {h}"));
            let size = c.size.map_or(String::new(), |s| format!(" size {s}"));
            let _ = writeln!(w, "  {}: {} {:?}{hash}{size}{}", c.name, c.loader, c.path, settings(&c.settings));
        }
    }
    if !plan.agents.is_empty() {
        let _ = writeln!(w, "\nagents");
        for a in &plan.agents {
            let _ = writeln!(w, "  {}: {}", a.name, a.model);
            for (i, s) in a.states.iter().enumerate() {
                let init = s.initial.map_or(String::new(), |v| format!(" start {}", n(v)));
                let _ = writeln!(w, "    state {i} {} {}{}{init}", s.name, s.unit, bounds(s));
            }
            for (i, s) in a.actions.iter().enumerate() {
                let _ = writeln!(w, "    action {i} {} {}{}", s.name, s.unit, bounds(s));
            }
        }
    }
    if !plan.designs.is_empty() {
        let _ = writeln!(w, "\ndesigns");
        let mut index = 0;
        for d in &plan.designs {
            let _ = writeln!(w, "  {}: {}", d.name, d.model);
            for v in &d.variables {
                let domain = match &v.domain {
                    Domain::Continuous { lower, upper } => format!("{} in [{}, {}]", v.unit, n(*lower), n(*upper)),
                    Domain::Discrete { choices } => format!("one of {}", choices.join(" | ")),
                };
                let _ = writeln!(w, "    variable {index} {} {domain}", v.name);
                index += 1;
            }
            for (i, s) in d.states.iter().enumerate() {
                let _ = writeln!(w, "    outcome {i} {} {}", s.name, s.unit);
            }
        }
    }
    if !plan.sites.is_empty() {
        let _ = writeln!(w, "\nsites");
        for s in &plan.sites {
            let parts: Vec<String> = s.position.iter().map(|v| n(*v)).collect();
            let _ = writeln!(w, "  {} ({}) m", s.name, parts.join(", "));
        }
    }
    if !plan.params.is_empty() {
        let _ = writeln!(w, "\nparams");
        for (i, p) in plan.params.iter().enumerate() {
            let unit = if p.unit == "1" { String::new() } else { format!(" {}", p.unit) };
            let _ = writeln!(w, "  p{i} {} = {}{unit}", p.name, n(p.value));
        }
    }
    if let Some(h) = &plan.horizon {
        let limit = h.time_limit.map_or(String::new(), |t| format!(", time limit {} s", n(t)));
        let _ = writeln!(w, "\nhorizon {} s in {} steps of {} s{limit}", n(h.horizon), h.steps, n(h.step));
    }
    if !plan.solver.is_empty() {
        let stages: Vec<String> = plan.solver.iter().map(|s| format!("{}{}", s.name, settings(&s.settings))).collect();
        let _ = writeln!(w, "solver {}", stages.join(" then "));
    }
    if !plan.worlds.is_empty() {
        let _ = writeln!(w, "\nworlds");
        for wp in &plan.worlds {
            let from = wp.source.as_deref().map_or(String::new(), |s| format!(" from `{s}`"));
            let _ = writeln!(w, "  {}: {}{from}{}", wp.name, wp.kind, settings(&wp.settings));
        }
    }
    if !plan.terms.is_empty() {
        let _ = writeln!(w, "\nterms");
        for t in &plan.terms {
            let strength = if t.hard { "hard".to_string() } else { format!("soft weight {}", n(t.weight)) };
            let kind = serde_json::to_value(t.kind).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default();
            let phase = t.phase.map_or(String::new(), |p| format!(" phase {p}"));
            let rho = t.robustness.map_or(String::new(), |r| format!(", robustness n{r}"));
            let _ = writeln!(w, "  t{} {} {kind} {strength}{phase} (line {}): energy n{}{rho}", t.id, t.name, t.line, t.energy);
            let _ = writeln!(w, "    `{}`", t.source);
        }
    }
    let _ = writeln!(w, "\ngraph");
    for (i, node) in plan.graph.nodes.iter().enumerate() {
        let _ = writeln!(w, "  n{i} = {}", node_text(plan, node));
    }
    if !plan.refinements.is_empty() {
        let _ = writeln!(w, "\nrefinements");
        for r in &plan.refinements {
            let _ = writeln!(w, "  {:?}", r.name);
            for s in &r.steps {
                let at = s.at.map_or(String::new(), |t| format!("at {} s: ", n(t)));
                let edit = match &s.edit {
                    Edit::Param { param, op, value } => format!("{param} {op} {}", n(*value)),
                    Edit::AddBox { width, depth, x, y } => format!("add box {} x {} m at ({}, {}) m", n(*width), n(*depth), n(*x), n(*y)),
                    Edit::AddCircle { radius, x, y } => format!("add circle radius {} m at ({}, {}) m", n(*radius), n(*x), n(*y)),
                    Edit::Rerun { name } => format!("rerun {name}"),
                };
                let _ = writeln!(w, "    {at}{edit}");
            }
        }
    }
    out
}

fn window(from: u32, to: u32) -> String {
    if from == 0 && to == u32::MAX { String::new() } else if to == u32::MAX { format!(" [{from}, end]") } else { format!(" [{from}, {to}]") }
}

/// Renders one graph node as it appears after `nN = ` in the plan text.
pub(crate) fn node_text(plan: &Plan, node: &Node) -> String {
    let ids = |v: &[u32]| v.iter().map(|i| format!("n{i}")).collect::<Vec<_>>().join(" ");
    match node {
        Node::Const { value } => format!("const {}", n(*value)),
        Node::Param { index } => format!("param {}", plan.params.get(*index as usize).map_or("?", |p| p.name.as_str())),
        Node::Time => "time".into(),
        Node::State { agent, component } => match plan.state_component(*agent, *component) {
            Some((owner, c)) => format!("state {owner}.{}", c.name),
            None => "state ?".into(),
        },
        Node::Action { agent, component } => {
            let a = &plan.agents[*agent as usize];
            format!("action {}.{}", a.name, a.actions[*component as usize].name)
        }
        Node::Design { variable } => {
            let name = plan.designs.iter().flat_map(|d| d.variables.iter()).nth(*variable as usize).map_or("?", |v| v.name.as_str());
            format!("design {name}")
        }
        Node::Distance { context, x, y } => {
            format!("distance {} n{x} n{y}", plan.contexts.get(*context as usize).map_or("?", |c| c.name.as_str()))
        }
        Node::Neg { a } => format!("neg n{a}"),
        Node::Add { a, b } => format!("add n{a} n{b}"),
        Node::Sub { a, b } => format!("sub n{a} n{b}"),
        Node::Mul { a, b } => format!("mul n{a} n{b}"),
        Node::Div { a, b } => format!("div n{a} n{b}"),
        Node::Powi { a, n: p } => format!("powi n{a} {p}"),
        Node::Abs { a } => format!("abs n{a}"),
        Node::Sqrt { a } => format!("sqrt n{a}"),
        Node::Sin { a } => format!("sin n{a}"),
        Node::Cos { a } => format!("cos n{a}"),
        Node::Tan { a } => format!("tan n{a}"),
        Node::Atan2 { y, x } => format!("atan2 n{y} n{x}"),
        Node::Exp { a } => format!("exp n{a}"),
        Node::Log { a } => format!("log n{a}"),
        Node::Min { a, b } => format!("min n{a} n{b}"),
        Node::Max { a, b } => format!("max n{a} n{b}"),
        Node::SoftMin { args, temperature } => format!("softmin[{}] {}", n(*temperature), ids(args)),
        Node::SoftMax { args, temperature } => format!("softmax[{}] {}", n(*temperature), ids(args)),
        Node::SoftPlus { a, temperature } => format!("softplus[{}] n{a}", n(*temperature)),
        Node::Sigmoid { a, temperature } => format!("sigmoid[{}] n{a}", n(*temperature)),
        Node::Norm { args, epsilon } => format!("norm[{}] {}", n(*epsilon), ids(args)),
        Node::Select { index, options } => format!("select n{index} {}", ids(options)),
        Node::Always { body, from, to, temperature } => format!("always[{}]{} n{body}", n(*temperature), window(*from, *to)),
        Node::Eventually { body, from, to, temperature } => format!("eventually[{}]{} n{body}", n(*temperature), window(*from, *to)),
        Node::Until { lhs, rhs, temperature } => format!("until[{}] n{lhs} n{rhs}", n(*temperature)),
        Node::SumOver { body } => format!("sum n{body}"),
        Node::Final { body } => format!("final n{body}"),
    }
}

#[cfg(test)]
mod tests {
    use super::format_number;

    #[test]
    fn numbers_print_stably() {
        let cases = [(0.1 + 0.2, "0.3"), (-0.0, "0"), (1e-7, "0.0000001"), (1234.5, "1234.5"), (1e300, "1e300"), (0.3048, "0.3048")];
        for (v, want) in cases {
            assert_eq!(format_number(v), want, "{v}");
        }
    }
}
