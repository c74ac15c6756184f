//! Reports of a closed-loop run or a given trajectory: hard-constraint margins, the energy
//! of each term, the dominant term, solver statuses, and the JSON trace and SVG plot.

use std::fmt::Write as _;

use basin_compiler::energy::{DistanceGrid, Evaluation, Inputs, Shape, evaluate_nodes};
use basin_compiler::plan::{Node, Plan, TermKind};

use super::MpcError;
use super::closed_loop::{RunResult, shortened};

/// The margin of one hard term over a whole trajectory.
#[derive(Clone, Debug, serde::Serialize)]
pub struct HardMargin {
    pub term: String,
    pub source: String,
    /// Robustness at step 0 over the whole trajectory, in the SI unit of the condition,
    /// with exact minima and maxima; negative means violated.
    pub margin: f64,
    pub energy: f64,
}

/// The scores of a trajectory and, for a run, how it went.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Summary {
    pub goal_met: Option<bool>,
    /// Run time when the goal held, seconds.
    pub goal_time: Option<f64>,
    pub duration: f64,
    pub steps: usize,
    pub hard: Vec<HardMargin>,
    pub violated: Vec<String>,
    /// `(term, source, energy)` of the whole trajectory.
    pub terms: Vec<(String, String, f64)>,
    /// The term with the largest mean planned energy over the run (or the largest energy of
    /// a judged trajectory).
    pub dominant: Option<String>,
    /// `(status, count)` over the control steps.
    pub statuses: Vec<(String, usize)>,
    pub collisions: usize,
    /// Median and 95th percentile of the planning time per step, seconds.
    pub plan_seconds: Option<(f64, f64)>,
}

impl Summary {
    /// Whether the run succeeded: the goal held (when there is one to judge) and no hard
    /// term was violated.
    pub fn success(&self) -> bool {
        self.goal_met != Some(false) && self.violated.is_empty()
    }
}

/// Scores a trajectory of `states` (`L + 1` rows) and `actions` (`L` rows) as one horizon of
/// `L` steps: the energy of every term and the robustness at step 0 of each term that has one.
///
/// The energies are the plan's smooth ones, as the planner scores them. The robustness is exact:
/// a smooth minimum over `N` equal values lies `τ ln N` below them, so a trajectory that
/// runs along a bound for a few hundred steps (a robot at its speed limit) would read as
/// violating it by several hundredths. Robustness is evaluated with every soft minimum and
/// maximum sharpened to a hard one ([`sharpened`]).
///
/// # Errors
///
/// Fails when the rows do not fit the plan's state and action columns.
pub fn judge(plan: &Plan, params: &[f64], fields: &[Option<DistanceGrid>], states: &[Vec<f64>], actions: &[Vec<f64>]) -> Result<(Evaluation, Vec<Option<f64>>), MpcError> {
    let shape = Shape::of(plan);
    if states.is_empty() {
        return Err(MpcError::Trajectory("the trajectory has no states".into()));
    }
    let steps = states.len() - 1;
    if let Some(row) = states.iter().position(|s| s.len() != shape.n_states) {
        return Err(MpcError::Trajectory(format!("state row {row} has {} values, expected {}", states[row].len(), shape.n_states)));
    }
    if let Some(row) = actions.iter().position(|a| a.len() != shape.n_actions) {
        return Err(MpcError::Trajectory(format!("action row {row} has {} values, expected {}", actions[row].len(), shape.n_actions)));
    }
    if actions.len() != steps.max(1) && !(steps == 0 && actions.is_empty()) {
        return Err(MpcError::Trajectory(format!("{} states need {} action rows, found {}", states.len(), steps.max(1), actions.len())));
    }
    let plan = shortened(plan, steps);
    let flat_states: Vec<f64> = states.concat();
    let mut flat_actions: Vec<f64> = actions.concat();
    if flat_actions.is_empty() {
        flat_actions = vec![0.0; shape.n_actions];
    }
    let inputs = Inputs { time0: 0.0, states: &flat_states, actions: &flat_actions, design: &[], params, fields };
    let nodes = evaluate_nodes(&sharpened(&plan), &inputs);
    let evaluation = basin_compiler::energy::evaluate(&plan, &inputs);
    let robustness = plan.terms.iter().map(|t| t.robustness.map(|r| nodes[r as usize].at(0))).collect();
    Ok((evaluation, robustness))
}

/// Temperature of the soft minima and maxima in [`sharpened`] plans: far below any margin
/// a report prints, yet nonzero, so the log-sum-exp stays defined.
const SHARP_TEMPERATURE: f64 = 1e-12;

/// Returns the plan with every soft minimum and maximum (`and`, `or`, `always`,
/// `eventually`, `until`) at [`SHARP_TEMPERATURE`], so robustness nodes compute exact
/// margins.
fn sharpened(plan: &Plan) -> Plan {
    let mut plan = plan.clone();
    let sharp = basin_compiler::plan::Num::new(SHARP_TEMPERATURE);
    for node in &mut plan.graph.nodes {
        match node {
            Node::SoftMin { temperature, .. }
            | Node::SoftMax { temperature, .. }
            | Node::Always { temperature, .. }
            | Node::Eventually { temperature, .. }
            | Node::Until { temperature, .. } => *temperature = sharp,
            _ => {}
        }
    }
    plan
}

/// Builds the summary of a judged trajectory, with the run's details when `run` is given.
pub fn summarize(plan: &Plan, evaluation: &Evaluation, robustness: &[Option<f64>], run: Option<&RunResult>) -> Summary {
    let mut hard = Vec::new();
    let mut violated = Vec::new();
    for (index, term) in plan.terms.iter().enumerate() {
        if !term.hard || term.kind == TermKind::Reach {
            continue;
        }
        let Some(margin) = robustness[index] else { continue };
        if !(margin >= 0.0) {
            violated.push(term.name.clone());
        }
        hard.push(HardMargin { term: term.name.clone(), source: term.source.clone(), margin, energy: evaluation.terms[index] });
    }
    let terms: Vec<(String, String, f64)> = plan.terms.iter().zip(&evaluation.terms).map(|(t, &e)| (t.name.clone(), t.source.clone(), e)).collect();
    let mut summary = Summary {
        goal_met: None,
        goal_time: None,
        duration: 0.0,
        steps: 0,
        hard,
        violated,
        terms: terms.clone(),
        dominant: terms.iter().max_by(|a, b| a.2.total_cmp(&b.2)).map(|t| t.0.clone()),
        statuses: Vec::new(),
        collisions: 0,
        plan_seconds: None,
    };
    if let Some(run) = run {
        summary.goal_met = Some(run.goal_met);
        summary.goal_time = run.goal_time;
        summary.steps = run.records.len();
        summary.duration = run.records.len() as f64 * run.step;
        summary.collisions = run.collisions;
        if run.collisions > 0 {
            summary.violated.push(format!("{} collision(s) with obstacles", run.collisions));
        }
        let mut means = vec![0.0; plan.terms.len()];
        for record in &run.records {
            for (m, e) in means.iter_mut().zip(&record.energies) {
                *m += e / run.records.len() as f64;
            }
        }
        summary.dominant = means.iter().enumerate().filter(|(_, m)| m.is_finite()).max_by(|a, b| a.1.total_cmp(b.1)).map(|(i, _)| plan.terms[i].name.clone());
        for record in &run.records {
            let status = record.status.to_string();
            match summary.statuses.iter_mut().find(|(s, _)| *s == status) {
                Some(entry) => entry.1 += 1,
                None => summary.statuses.push((status, 1)),
            }
        }
        let mut times: Vec<f64> = run.records.iter().map(|r| r.plan_seconds).collect();
        times.sort_by(f64::total_cmp);
        if !times.is_empty() {
            let at = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize];
            summary.plan_seconds = Some((at(0.5), at(0.95)));
        }
    }
    summary
}

/// Renders the summary as a terminal table.
pub fn render_summary(summary: &Summary) -> String {
    let mut out = String::new();
    match (summary.goal_met, summary.goal_time) {
        (Some(true), Some(time)) => writeln!(out, "goal met at {time:.2} s after {} steps", summary.steps).ok(),
        (Some(false), _) => writeln!(out, "goal NOT met within {:.2} s ({} steps)", summary.duration, summary.steps).ok(),
        _ => None,
    };
    if let Some((median, p95)) = summary.plan_seconds {
        writeln!(out, "planning time per step: median {:.1} ms, p95 {:.1} ms", median * 1e3, p95 * 1e3).ok();
    }
    if !summary.hard.is_empty() {
        writeln!(out, "\nhard constraints (margin over the whole trajectory):").ok();
        for h in &summary.hard {
            let verdict = if h.margin >= 0.0 { "ok" } else { "VIOLATED" };
            writeln!(out, "  {:<12} {:>12.4}  {:<8}  {}", h.term, h.margin, verdict, h.source).ok();
        }
    }
    writeln!(out, "\nenergy per term:").ok();
    for (name, source, energy) in &summary.terms {
        let mark = if summary.dominant.as_deref() == Some(name.as_str()) { " (dominant)" } else { "" };
        writeln!(out, "  {name:<12} {energy:>12.4}  {source}{mark}").ok();
    }
    if !summary.statuses.is_empty() {
        writeln!(out, "\nsolver status per step:").ok();
        for (status, count) in &summary.statuses {
            writeln!(out, "  {count:>5}  {status}").ok();
        }
    }
    if summary.collisions > 0 {
        writeln!(out, "\n{} collision(s) with obstacles", summary.collisions).ok();
    }
    for v in &summary.violated {
        writeln!(out, "violated: {v}").ok();
    }
    out
}

/// The JSON trace: column names, and the state, action and energy of every term at every step.
pub fn trace_json(plan: &Plan, run: &RunResult) -> serde_json::Value {
    let states: Vec<String> = plan.agents.iter().flat_map(|a| a.states.iter().map(move |c| format!("{}.{}", a.name, c.name))).collect();
    let actions: Vec<String> = plan.agents.iter().flat_map(|a| a.actions.iter().map(move |c| format!("{}.{}", a.name, c.name))).collect();
    serde_json::json!({
        "source": plan.source,
        "source_sha256": plan.source_sha256,
        "step": run.step,
        "dynamics": run.dynamics,
        "goal_met": run.goal_met,
        "goal_time": run.goal_time,
        "state_names": states,
        "action_names": actions,
        "term_names": plan.terms.iter().map(|t| t.name.clone()).collect::<Vec<_>>(),
        "phases": run.phases,
        "routes": run.routes,
        "map_updates": run.map_updates,
        "steps": run.records,
        "final_state": run.states.last(),
    })
}

/// Reads the states and actions of a trace written by [`trace_json`]: `L + 1` state rows
/// (with the final state) and `L` action rows.
///
/// # Errors
///
/// Fails when the JSON lacks the fields of a trace.
pub fn read_trace(trace: &serde_json::Value) -> Result<(Vec<Vec<f64>>, Vec<Vec<f64>>), MpcError> {
    let rows = |value: &serde_json::Value, what: &str| -> Result<Vec<f64>, MpcError> {
        let list = value.as_array().ok_or_else(|| MpcError::Trajectory(format!("`{what}` is not a list of numbers")))?;
        list.iter()
            .map(|v| v.as_f64().ok_or_else(|| MpcError::Trajectory(format!("`{what}` contains a value that is not a number: {v}"))))
            .collect()
    };
    let steps = trace["steps"].as_array().ok_or_else(|| MpcError::Trajectory("missing the list `steps`".into()))?;
    let mut states = Vec::with_capacity(steps.len() + 1);
    let mut actions = Vec::with_capacity(steps.len());
    for step in steps {
        states.push(rows(&step["state"], "state")?);
        actions.push(rows(&step["action"], "action")?);
    }
    states.push(rows(&trace["final_state"], "final_state")?);
    Ok((states, actions))
}

/// Draws the run as SVG: the trajectory over the map (obstacles, clearance, sites) or the
/// first state over time when there is no map, and the energy of each term over time.
pub fn render_svg(plan: &Plan, run: &RunResult, fields: &[Option<DistanceGrid>]) -> String {
    let (width, height) = (900.0, 420.0);
    let mut svg = format!(r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{}" font-family="sans-serif" font-size="11">"#, height * 2.0);
    svg.push_str(r#"<rect width="100%" height="100%" fill="white"/>"#);
    let columns: Vec<String> = plan.agents.iter().flat_map(|a| a.states.iter().map(|c| c.name.clone())).collect();
    let x_col = columns.iter().position(|c| c == "x");
    let y_col = columns.iter().position(|c| c == "y");
    let field = fields.iter().flatten().next();
    match (x_col, y_col) {
        (Some(xc), Some(yc)) => map_panel(&mut svg, plan, run, field, xc, yc, width, height),
        _ => time_panel(&mut svg, plan, run, width, height),
    }
    energy_panel(&mut svg, plan, run, width, height);
    svg.push_str("</svg>\n");
    svg
}

/// A linear map from a data range onto a pixel range.
fn scale(lower: f64, upper: f64, from: f64, to: f64) -> impl Fn(f64) -> f64 {
    let span = if upper > lower { upper - lower } else { 1.0 };
    move |v| from + (v - lower) / span * (to - from)
}

fn polyline(svg: &mut String, points: impl Iterator<Item = (f64, f64)>, colour: &str) {
    let text: Vec<String> = points.filter(|(x, y)| x.is_finite() && y.is_finite()).map(|(x, y)| format!("{x:.1},{y:.1}")).collect();
    write!(svg, r#"<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{}"/>"#, text.join(" ")).ok();
}

#[allow(clippy::too_many_arguments)]
fn map_panel(svg: &mut String, plan: &Plan, run: &RunResult, field: Option<&DistanceGrid>, xc: usize, yc: usize, width: f64, height: f64) {
    let margin = 30.0;
    let (mut x0, mut x1, mut y0, mut y1) = (f64::INFINITY, f64::NEG_INFINITY, f64::INFINITY, f64::NEG_INFINITY);
    if let Some(f) = field {
        x0 = f.origin.0 - f.cell / 2.0;
        y0 = f.origin.1 - f.cell / 2.0;
        x1 = x0 + f.width as f64 * f.cell;
        y1 = y0 + f.height as f64 * f.cell;
    }
    for s in &run.states {
        (x0, x1, y0, y1) = (x0.min(s[xc]), x1.max(s[xc]), y0.min(s[yc]), y1.max(s[yc]));
    }
    // One scale for both axes keeps the map's proportions.
    let side = (x1 - x0).max(y1 - y0).max(1e-6);
    let pixels = (height - 2.0 * margin).min(width - 2.0 * margin);
    let px = |x: f64| margin + (x - x0) / side * pixels;
    let py = |y: f64| height - margin - (y - y0) / side * pixels;
    let cell_px = field.map_or(0.0, |f| f.cell / side * pixels);
    if let Some(f) = field {
        // Blocked cells dark, cells within 0.5 m of an obstacle light: the clearance band.
        for row in 0..f.height {
            for col in 0..f.width {
                let d = f.values[row * f.width + col];
                let colour = if d < 0.0 { "#444" } else if d < 0.5 { "#f3d9a4" } else { continue };
                let (cx, cy) = (f.origin.0 + col as f64 * f.cell, f.origin.1 + row as f64 * f.cell);
                write!(svg, r#"<rect x="{:.1}" y="{:.1}" width="{:.2}" height="{:.2}" fill="{colour}"/>"#, px(cx - f.cell / 2.0), py(cy + f.cell / 2.0), cell_px + 0.1, cell_px + 0.1).ok();
            }
        }
    }
    for site in &plan.sites {
        if let [x, y, ..] = site.position.as_slice() {
            write!(svg, r##"<circle cx="{:.1}" cy="{:.1}" r="5" fill="#2a7"/><text x="{:.1}" y="{:.1}">{}</text>"##, px(x.0), py(y.0), px(x.0) + 7.0, py(y.0) - 7.0, site.name).ok();
        }
    }
    for edit in &run.map_updates {
        match edit.shape {
            super::EditShape::Box { half } => write!(
                svg,
                r##"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="none" stroke="#d0452b" stroke-width="2"/>"##,
                px(edit.center[0] - half[0]),
                py(edit.center[1] + half[1]),
                2.0 * half[0] / side * pixels,
                2.0 * half[1] / side * pixels
            ),
            super::EditShape::Circle { radius } => write!(
                svg,
                r##"<circle cx="{:.1}" cy="{:.1}" r="{:.1}" fill="none" stroke="#d0452b" stroke-width="2"/>"##,
                px(edit.center[0]),
                py(edit.center[1]),
                radius / side * pixels
            ),
        }
        .ok();
        write!(svg, r##"<text x="{:.1}" y="{:.1}" fill="#d0452b">added at {:.1} s</text>"##, px(edit.center[0]) + 8.0, py(edit.center[1]) + 4.0, edit.at).ok();
    }
    for route in &run.routes {
        let points: Vec<String> = route.points.iter().map(|p| format!("{:.1},{:.1}", px(p[0]), py(p[1]))).collect();
        write!(svg, r##"<polyline fill="none" stroke="#c98a00" stroke-width="1.2" stroke-dasharray="4 3" points="{}"/>"##, points.join(" ")).ok();
    }
    polyline(svg, run.states.iter().map(|s| (px(s[xc]), py(s[yc]))), "#1f5fbf");
    write!(
        svg,
        r#"<text x="{margin}" y="18">trajectory over the map (dark: obstacles, light: within 0.5 m of one, green: sites, dashed: global routes, red: obstacles added during the run)</text>"#
    )
    .ok();
}

fn time_panel(svg: &mut String, plan: &Plan, run: &RunResult, width: f64, height: f64) {
    let margin = 40.0;
    let values: Vec<f64> = run.states.iter().map(|s| s[0]).collect();
    let (lower, upper) = values.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| (a.min(v), b.max(v)));
    let end = (run.states.len().max(2) - 1) as f64 * run.step;
    let px = scale(0.0, end, margin, width - margin);
    let py = scale(lower, upper, height - margin, margin);
    polyline(svg, values.iter().enumerate().map(|(k, &v)| (px(k as f64 * run.step), py(v))), "#1f5fbf");
    let name = plan.agents.first().and_then(|a| a.states.first()).map_or("state 0".to_string(), |c| format!("{} ({})", c.name, c.unit));
    write!(svg, r#"<text x="{margin}" y="18">{name} over time, {lower:.3} to {upper:.3}, 0 to {end:.2} s</text>"#).ok();
}

fn energy_panel(svg: &mut String, plan: &Plan, run: &RunResult, width: f64, height: f64) {
    let margin = 40.0;
    let top = height;
    const COLOURS: [&str; 6] = ["#1f5fbf", "#d0452b", "#2a7", "#8a3ab9", "#c98a00", "#555"];
    // log10(1 + E) keeps hard penalties and soft terms on one readable axis.
    let transform = |e: f64| (1.0 + e.max(0.0)).log10();
    let upper = run.records.iter().flat_map(|r| r.energies.iter().map(|&e| transform(e))).filter(|v| v.is_finite()).fold(0.0, f64::max);
    let end = run.records.len().max(2) as f64 * run.step;
    let px = scale(0.0, end, margin, width - margin);
    let py = scale(0.0, upper, top + height - margin, top + margin);
    for (index, term) in plan.terms.iter().enumerate() {
        let colour = COLOURS[index % COLOURS.len()];
        polyline(svg, run.records.iter().map(|r| (px(r.time), py(transform(r.energies[index])))), colour);
        write!(svg, r#"<text x="{:.1}" y="{:.1}" fill="{colour}">{} {}</text>"#, width - 260.0, top + margin + 14.0 * index as f64, term.name, escape(&term.source)).ok();
    }
    write!(svg, r#"<text x="{margin}" y="{:.1}">planned energy per term, log10(1 + E), over 0 to {end:.2} s</text>"#, top + 18.0).ok();
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// A progress bar over `steps` control steps on standard error, hidden when standard error
/// is not a terminal.
pub fn progress_bar(steps: u64) -> indicatif::ProgressBar {
    use std::io::IsTerminal;
    let bar = indicatif::ProgressBar::new(steps);
    if !std::io::stderr().is_terminal() {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    bar.set_style(indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} steps {msg}").expect("a valid progress template"));
    bar
}
