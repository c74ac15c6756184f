//! Navigation in the closed loop: the global route to the active site becomes a moving
//! target of the local planner, and map updates reach the planner, the energy and the plant.
//!
//! A reach clause compiles to energy terms that read the site's coordinates as plan
//! parameters (`pick[0]`, `pick[1]`). Before each solve, [`Navigator::steer`] sets those
//! parameters to a lookahead point on the global route from the robot to the site (see
//! `context::navigation`), the way the loop already advances `BLOCK.phase`. After the solve,
//! [`Navigator::restore`] puts the real coordinates back. Phase changes, the goal test, the
//! report and `basin judge` therefore all read the real sites. The compiled energy is unchanged:
//! only the values of its parameters move.
//!
//! The route is planned over the distance field that the plan's hard `clearance` condition
//! reads, with obstacles inflated by what that condition requires (the robot's radius plus
//! the clearance). The cost-to-go field of each site is computed when the site becomes
//! active and again after every map update.

use basin_compiler::energy::DistanceGrid;
use basin_compiler::plan::{Edit, Graph, Node, NodeId, Plan, TermKind};

use super::MpcError;
use super::score::Scorer;
use crate::context::{CostToGo, NavError, NavMap};
use crate::scenario::Obstacle;

/// Margin added to the required clearance when planning routes, metres: room for the local
/// planner's tracking error and the distance field's interpolation.
const PLANNING_MARGIN: f64 = 0.05;

/// A reach term whose target the navigator moves.
struct Target {
    term: usize,
    site: String,
    /// Indices of the target's x and y parameters.
    params: [usize; 2],
    /// State columns of the robot's x and y.
    columns: [usize; 2],
    /// The site's real coordinates.
    real: [f64; 2],
    to_go: Option<CostToGo>,
}

/// A route planned during a run, for the trace and the plot.
#[derive(Clone, Debug, serde::Serialize)]
pub struct RouteRecord {
    /// Run time when the route was planned, seconds.
    pub time: f64,
    pub site: String,
    /// Why it was planned: `site` (the site became active) or `map update`.
    pub reason: String,
    /// Length of the route, metres.
    pub length: f64,
    pub points: Vec<[f64; 2]>,
}

/// An obstacle added to the map during a run.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MapEdit {
    /// Run time at which it appears, seconds.
    pub at: f64,
    /// Source of the edit, such as `refinement "stray pallet"`.
    pub label: String,
    /// Centre, metres.
    pub center: [f64; 2],
    pub shape: EditShape,
}

/// The outline of an added obstacle.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EditShape {
    /// An axis-aligned box with these half extents, metres.
    Box { half: [f64; 2] },
    /// A round obstacle, metres.
    Circle { radius: f64 },
}

impl MapEdit {
    /// Converts the edit to a physics-scenario obstacle, as tall as the maps' obstacles.
    pub fn obstacle(&self) -> Obstacle {
        let half_z = crate::scenario::MAP_OBSTACLE_HEIGHT / 2.0;
        let center = [self.center[0], self.center[1], half_z];
        match self.shape {
            EditShape::Box { half } => Obstacle::Box { center, half: [half[0], half[1], half_z], yaw: 0.0 },
            EditShape::Circle { radius } => Obstacle::Cylinder { center, radius, half_height: half_z },
        }
    }

    /// Signed distance from `point` to the obstacle, negative inside.
    pub fn distance(&self, point: [f64; 2]) -> f64 {
        match self.shape {
            EditShape::Box { half } => box_distance(point, self.center, half),
            EditShape::Circle { radius } => (point[0] - self.center[0]).hypot(point[1] - self.center[1]) - radius,
        }
    }

    /// Adds the obstacle to a distance field: outside both, the distance to the union of two
    /// obstacles is the smaller of the two distances.
    pub fn apply_to_field(&self, field: &mut DistanceGrid) {
        for row in 0..field.height {
            for col in 0..field.width {
                let x = field.origin.0 + col as f64 * field.cell;
                let y = field.origin.1 + row as f64 * field.cell;
                let value = &mut field.values[row * field.width + col];
                *value = value.min(self.distance([x, y]));
            }
        }
    }

    /// Marks the cells of `grid` whose centre lies inside the obstacle as blocked.
    pub fn apply_to_grid(&self, grid: &mut crate::context::Grid) {
        for row in 0..grid.height() {
            for col in 0..grid.width() {
                if self.distance(grid.cell_center(col, row)) <= 0.0 {
                    grid.set_blocked(col, row, true);
                }
            }
        }
    }

    pub fn describe(&self) -> String {
        let shape = match self.shape {
            EditShape::Box { half } => format!("a {} m × {} m box", 2.0 * half[0], 2.0 * half[1]),
            EditShape::Circle { radius } => format!("a round obstacle of radius {radius} m"),
        };
        format!("map update at {:.1} s: {} adds {shape} at ({}, {}) m", self.at, self.label, self.center[0], self.center[1])
    }
}

/// The obstacles refinement `name` adds, for a closed-loop run: each at its time, or at the
/// start when untimed. Parameter edits are left to the caller (see
/// `design::params_after`).
///
/// # Errors
///
/// Fails when the plan has no refinement `name`, or when the refinement changes a parameter at
/// a time or requests a rerun, because closed-loop runs do not support either.
pub fn refinement_map_edits(plan: &Plan, name: &str) -> Result<Vec<MapEdit>, MpcError> {
    let Some(refinement) = plan.refinements.iter().find(|r| r.name == name) else {
        let known: Vec<String> = plan.refinements.iter().map(|r| format!("{:?}", r.name)).collect();
        return Err(MpcError::Refinement(if known.is_empty() {
            format!("no refinement named {name:?}: the spec has no `refine` block")
        } else {
            format!("no refinement named {name:?}; the spec has {}", known.join(", "))
        }));
    };
    let label = format!("refinement {name:?}");
    let mut edits = Vec::new();
    for step in &refinement.steps {
        let at = step.at.map_or(0.0, |t| t.0);
        let (center, shape) = match &step.edit {
            Edit::AddBox { width, depth, x, y } => ([x.0, y.0], EditShape::Box { half: [width.0 / 2.0, depth.0 / 2.0] }),
            Edit::AddCircle { radius, x, y } => ([x.0, y.0], EditShape::Circle { radius: radius.0 }),
            Edit::Param { param, .. } if step.at.is_some() => {
                return Err(MpcError::Refinement(format!(
                    "{label} changes `{param}` at {at} s, but closed-loop runs apply parameter edits only before the run; try removing `at {at} s:`"
                )));
            }
            Edit::Param { .. } => continue,
            Edit::Rerun { name: what } => {
                return Err(MpcError::Refinement(format!("{label} asks to rerun `{what}`, which closed-loop runs do not support; try running the spec again")));
            }
        };
        edits.push(MapEdit { at, label: label.clone(), center, shape });
    }
    Ok(edits)
}

/// Signed distance from `point` to an axis-aligned box, negative inside.
fn box_distance(point: [f64; 2], center: [f64; 2], half: [f64; 2]) -> f64 {
    let dx = (point[0] - center[0]).abs() - half[0];
    let dy = (point[1] - center[1]).abs() - half[1];
    let outside = dx.max(0.0).hypot(dy.max(0.0));
    outside + dx.max(dy).min(0.0)
}

/// Moves the targets of reach terms along global routes; see the module documentation.
pub struct Navigator {
    /// The plan context whose distance field the routes avoid.
    context: usize,
    required: f64,
    /// How far along the route the target lies, metres.
    lookahead: f64,
    map: NavMap,
    targets: Vec<Target>,
    /// Every route planned, in order.
    pub routes: Vec<RouteRecord>,
    /// The site whose route was recorded last, so a route is recorded once per change.
    recorded: Option<(usize, u64)>,
    map_version: u64,
}

impl Navigator {
    /// Builds a navigator for a plan whose reach terms read a 2-D site from parameters and
    /// whose hard conditions read a map's distance field. Returns `None` for any other plan.
    pub fn from_scorer(scorer: &Scorer) -> Option<Navigator> {
        let plan = &scorer.plan;
        let (context, required) = clearance_requirement(plan, &scorer.params)?;
        let field = scorer.fields.get(context)?.as_ref()?;
        let targets: Vec<Target> = plan
            .terms
            .iter()
            .enumerate()
            .filter(|(_, term)| term.kind == TermKind::Reach)
            .filter_map(|(index, term)| reach_target(plan, scorer, index, term.robustness?))
            .collect();
        if targets.is_empty() {
            return None;
        }
        let horizon = plan.horizon.as_ref()?;
        let speed = plan
            .agents
            .iter()
            .flat_map(|a| a.actions.iter())
            .filter(|c| c.unit == "m/s")
            .filter_map(|c| c.upper.map(|u| u.0))
            .fold(0.0, f64::max);
        let lookahead = (speed.max(0.5) * horizon.horizon.0).max(1.0);
        let map = NavMap::new(field, required + PLANNING_MARGIN);
        tracing::info!(required, lookahead, cell = map.cell_size(), "global navigation over context {context}");
        Some(Navigator { context, required, lookahead, map, targets, routes: Vec::new(), recorded: None, map_version: 0 })
    }

    /// Radius plus required clearance, metres, as the plan's hard conditions state it.
    pub fn required_clearance(&self) -> f64 {
        self.required
    }

    /// Returns the plan context whose field the routes avoid.
    pub fn context(&self) -> usize {
        self.context
    }

    /// Sets the target parameters of the `active` reach terms to lookahead points from
    /// `state`; returns the targets set, by site.
    ///
    /// # Errors
    ///
    /// Fails when an active site cannot be reached.
    pub fn steer(&mut self, scorer: &mut Scorer, active: &[usize], state: &[f64], time: f64) -> Result<Vec<(String, [f64; 2])>, NavError> {
        let mut set = Vec::new();
        for index in 0..self.targets.len() {
            if !active.contains(&self.targets[index].term) {
                continue;
            }
            let from = [state[self.targets[index].columns[0]], state[self.targets[index].columns[1]]];
            if self.recorded != Some((index, self.map_version)) {
                let reason = if self.recorded.is_some_and(|(i, version)| i == index && version != self.map_version) { "map update" } else { "site" };
                self.record_routes(index, from, time, reason)?;
                self.recorded = Some((index, self.map_version));
            }
            let target = &self.targets[index];
            let to_go = target.to_go.as_ref().expect("computed when recorded");
            let point = to_go.lookahead(&self.map, from, self.lookahead)?;
            scorer.params[target.params[0]] = point[0];
            scorer.params[target.params[1]] = point[1];
            set.push((target.site.clone(), point));
        }
        Ok(set)
    }

    /// Plans and records the route from `from` to target `first`, then on from each site to
    /// the next in the order of the reach terms, so the trace shows the whole planned way.
    fn record_routes(&mut self, first: usize, from: [f64; 2], time: f64, reason: &str) -> Result<(), NavError> {
        let mut start = from;
        for index in first..self.targets.len() {
            let target = &mut self.targets[index];
            if target.to_go.is_none() {
                target.to_go = Some(self.map.cost_to_go(&target.site, target.real)?);
            }
            let to_go = target.to_go.as_ref().expect("computed above");
            let points = to_go.path_from(&self.map, start)?;
            let length = crate::context::path_length(&points);
            tracing::info!(time, site = %target.site, length, reason, "planned a global route");
            self.routes.push(RouteRecord { time, site: target.site.clone(), reason: reason.to_string(), length, points });
            start = target.real;
        }
        Ok(())
    }

    /// Puts the real site coordinates back into the parameters.
    pub fn restore(&self, scorer: &mut Scorer) {
        for target in &self.targets {
            scorer.params[target.params[0]] = target.real[0];
            scorer.params[target.params[1]] = target.real[1];
        }
    }

    /// Re-reads the distance field after a map update and drops every cost-to-go field, so
    /// the next [`Navigator::steer`] plans again.
    pub fn map_changed(&mut self, scorer: &Scorer) {
        if let Some(Some(field)) = scorer.fields.get(self.context) {
            self.map = NavMap::new(field, self.required + PLANNING_MARGIN);
        }
        for target in &mut self.targets {
            target.to_go = None;
        }
        self.map_version += 1;
    }
}

/// Finds the map context of the plan's hard clearance condition and the distance it requires
/// from the robot's centre, taking the largest over hard conditions that read a distance field.
fn clearance_requirement(plan: &Plan, params: &[f64]) -> Option<(usize, f64)> {
    let mut found: Option<(usize, f64)> = None;
    for term in plan.terms.iter().filter(|t| t.hard && t.kind == TermKind::Condition) {
        let Some(root) = term.robustness else { continue };
        for node in subtree(&plan.graph, root) {
            if let Some((context, offset)) = distance_offset(&plan.graph, node, params) {
                if found.is_none_or(|(_, best)| offset > best) {
                    found = Some((context, offset));
                }
            }
        }
    }
    found
}

/// Collects every node under `root`, `root` included.
fn subtree(graph: &Graph, root: NodeId) -> Vec<NodeId> {
    let mut seen = vec![false; graph.nodes.len()];
    let mut stack = vec![root];
    let mut out = Vec::new();
    while let Some(node) = stack.pop() {
        if std::mem::replace(&mut seen[node as usize], true) {
            continue;
        }
        out.push(node);
        stack.extend(graph.nodes[node as usize].children());
    }
    out
}

/// When `node` is `distance(c, x, y) − v` for a constant `v` (as `clearance(robot, map) − d`
/// lowers), returns `(c, v)`.
fn distance_offset(graph: &Graph, node: NodeId, params: &[f64]) -> Option<(usize, f64)> {
    match &graph.nodes[node as usize] {
        Node::Distance { context, .. } => Some((*context as usize, 0.0)),
        Node::Sub { a, b } => {
            let (context, offset) = distance_offset(graph, *a, params)?;
            Some((context, offset + constant(graph, *b, params)?))
        }
        Node::Add { a, b } => {
            let (context, offset) = distance_offset(graph, *a, params)?;
            Some((context, offset - constant(graph, *b, params)?))
        }
        _ => None,
    }
}

/// Evaluates a node that reads only constants and parameters.
fn constant(graph: &Graph, node: NodeId, params: &[f64]) -> Option<f64> {
    match &graph.nodes[node as usize] {
        Node::Const { value } => Some(value.0),
        Node::Param { index } => params.get(*index as usize).copied(),
        Node::Neg { a } => Some(-constant(graph, *a, params)?),
        Node::Add { a, b } => Some(constant(graph, *a, params)? + constant(graph, *b, params)?),
        Node::Sub { a, b } => Some(constant(graph, *a, params)? - constant(graph, *b, params)?),
        Node::Mul { a, b } => Some(constant(graph, *a, params)? * constant(graph, *b, params)?),
        _ => None,
    }
}

/// Extracts the target of a reach term when it is a 2-D point read from two parameters and
/// compared with two state columns (`state − param` under the term's robustness).
fn reach_target(plan: &Plan, scorer: &Scorer, term: usize, robustness: NodeId) -> Option<Target> {
    let graph = &plan.graph;
    let mut pairs: Vec<(usize, usize)> = Vec::new();
    for node in subtree(graph, robustness) {
        if let Node::Sub { a, b } = &graph.nodes[node as usize] {
            if let (Node::State { agent, component }, Node::Param { index }) = (&graph.nodes[*a as usize], &graph.nodes[*b as usize]) {
                let column = plan.agents[..*agent as usize].iter().map(|a| a.states.len()).sum::<usize>() + *component as usize;
                pairs.push((column, *index as usize));
            }
        }
    }
    pairs.sort_unstable();
    pairs.dedup();
    let [(x_column, x_param), (y_column, y_param)] = pairs.as_slice() else { return None };
    let name = &plan.params[*x_param].name;
    let site = name.strip_suffix("[0]").unwrap_or(name).to_string();
    Some(Target {
        term,
        site,
        params: [*x_param, *y_param],
        columns: [*x_column, *y_column],
        real: [scorer.params[*x_param], scorer.params[*y_param]],
        to_go: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn box_distance_is_signed() {
        let (center, half) = ([7.0, 10.0], [0.6, 0.5]);
        assert_eq!(box_distance([7.0, 12.0], center, half), 1.5);
        assert!((box_distance([8.6, 11.5], center, half) - 2.0f64.sqrt()).abs() < 1e-12);
        assert_eq!(box_distance([7.0, 10.0], center, half), -0.5);
    }

    #[test]
    fn box_edit_lowers_field() {
        let mut field = DistanceGrid { width: 5, height: 1, cell: 1.0, origin: (0.0, 0.0), values: vec![9.0; 5] };
        let edit = MapEdit { at: 0.0, label: "test".into(), center: [0.0, 0.0], shape: EditShape::Box { half: [0.5, 0.5] } };
        edit.apply_to_field(&mut field);
        assert_eq!(field.values, vec![-0.5, 0.5, 1.5, 2.5, 3.5]);
    }
}
