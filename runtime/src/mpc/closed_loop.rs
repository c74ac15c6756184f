//! The closed loop: observe the plant, plan, apply the first action, step, repeat until the
//! goal holds or the time limit passes.
//!
//! The goal holds when every goal block has passed all its reach phases (the loop advances
//! `BLOCK.phase` when every reach of the active phase is within its radius at the current
//! state) and each goal condition holds on the executed trajectory, judged over its most
//! recent steps so that every time window it reads lies completely in the past.
//!
//! On a map, a [`Navigator`] moves the targets of the active reach terms along global routes
//! before each solve and puts the real sites back before the goal is judged (see
//! `navigate.rs`). Map edits given in the options apply at their time: the plant gains the
//! collider, the energy's distance field and the routes gain the obstacle, the step records a
//! `map update` event, and the next step plans from scratch.

use std::collections::HashMap;
use std::time::Instant;

use basin_compiler::energy::{Inputs, Signal, evaluate_nodes};
use basin_compiler::plan::{Node, NodeId, Plan, TermKind};

use super::navigate::{MapEdit, Navigator, RouteRecord};
use super::planner::{Planner, SolverStatus};
use super::score::Scorer;
use super::{Dynamics, MpcError};
use crate::scenario::{Event, Scenario};

/// A window end at or above this many steps counts as unbounded (the rest of the horizon).
const UNBOUNDED_WINDOW: u32 = 1_000_000;
/// Simulated seconds a run may take when neither the plan nor the caller sets a limit.
pub const DEFAULT_TIME_LIMIT: f64 = 120.0;

/// Settings of a closed-loop run.
#[derive(Clone, Debug, Default)]
pub struct LoopOptions {
    /// Seed of the plant's reset.
    pub seed: u64,
    /// Stop after this many control steps.
    pub max_steps: Option<usize>,
    /// Stop after this many simulated seconds (default: the plan's time limit, or
    /// [`DEFAULT_TIME_LIMIT`]).
    pub time_limit: Option<f64>,
    /// Names of the plan's goal blocks; their conditions decide when the goal holds.
    pub goal_blocks: Vec<String>,
    /// Obstacles that appear during the run, in time order.
    pub map_edits: Vec<MapEdit>,
    /// Whether to steer reach targets along global routes on maps (see [`Navigator`]).
    pub navigation: Navigation,
}

/// Whether the closed loop plans global routes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Navigation {
    /// On plans with a map, a hard clearance condition and reach targets read from
    /// parameters; off for every other plan.
    #[default]
    Auto,
    /// Reach terms pull straight at their sites.
    Off,
}

/// One control step.
#[derive(Clone, Debug, serde::Serialize)]
pub struct StepRecord {
    /// Run time at the start of the step, seconds.
    pub time: f64,
    /// The observed state the planner started from.
    pub state: Vec<f64>,
    /// The action sent to the plant, after the plant's clamping.
    pub action: Vec<f64>,
    /// Energy of every plan term over the planned horizon.
    pub energies: Vec<f64>,
    pub total: f64,
    pub status: SolverStatus,
    pub iterations: usize,
    /// Wall-clock seconds spent planning.
    pub plan_seconds: f64,
    /// Surprise of the observed transition, where the dynamics judge one.
    pub surprise: Option<f64>,
    /// Whether the surprise exceeded its threshold, so the next step planned from scratch.
    pub replanned: bool,
    /// Distance between the predicted and the observed next state (SI units, all columns).
    pub prediction_error: f64,
    pub events: Vec<String>,
    /// The reach targets the planner steered to, by site, when they differ from the sites.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<(String, [f64; 2])>,
}

/// The outcome of a closed-loop run.
#[derive(Clone, Debug)]
pub struct RunResult {
    pub records: Vec<StepRecord>,
    /// Every observed state, one more row than `records`.
    pub states: Vec<Vec<f64>>,
    pub goal_met: bool,
    /// Run time at which the goal held, seconds.
    pub goal_time: Option<f64>,
    /// Seconds per step.
    pub step: f64,
    /// Contacts with obstacles that started during the run.
    pub collisions: usize,
    pub wall_seconds: f64,
    /// The final value of each phase parameter.
    pub phases: Vec<(String, f64)>,
    pub dynamics: &'static str,
    /// Global routes planned during the run.
    pub routes: Vec<RouteRecord>,
    /// Map edits applied during the run.
    pub map_updates: Vec<MapEdit>,
}

/// A block's reach terms and its active phase.
struct ReachBlock {
    name: String,
    /// Index of the `BLOCK.phase` parameter; a block with one phase has none.
    param: Option<usize>,
    /// Reach terms of each phase.
    phases: Vec<Vec<usize>>,
    active: usize,
}

/// Goal state tracked during a run.
pub struct Goal {
    reach_blocks: Vec<ReachBlock>,
    conditions: Vec<usize>,
    /// Plans with a shortened horizon, by step count, for judging recent history.
    cache: HashMap<usize, Plan>,
}

/// Finds the goal blocks of a spec's source: lines of the form `goal NAME {`.
///
/// NOTE: this reads the text, not the syntax tree, so a `goal` line inside a block comment
/// would count too.
pub fn goal_blocks_of(source: &str) -> Vec<String> {
    source
        .lines()
        .filter_map(|line| line.trim_start().strip_prefix("goal "))
        .filter_map(|rest| rest.split(|c: char| !(c.is_alphanumeric() || c == '_')).next())
        .filter(|name| !name.is_empty())
        .map(str::to_string)
        .collect()
}

impl Goal {
    pub fn new(scorer: &Scorer, goal_blocks: &[String]) -> Goal {
        let plan = &scorer.plan;
        let mut reach_blocks: Vec<ReachBlock> = Vec::new();
        let mut conditions = Vec::new();
        for (index, term) in plan.terms.iter().enumerate() {
            if term.kind == TermKind::Reach {
                let phase = term.phase.unwrap_or(0) as usize;
                let entry = match reach_blocks.iter().position(|b| b.name == term.block) {
                    Some(i) => &mut reach_blocks[i].phases,
                    None => {
                        let param = scorer.param_index(&format!("{}.phase", term.block));
                        let active = param.map_or(0, |p| scorer.params[p].round().max(0.0) as usize);
                        reach_blocks.push(ReachBlock { name: term.block.clone(), param, phases: Vec::new(), active });
                        &mut reach_blocks.last_mut().expect("just pushed").phases
                    }
                };
                if entry.len() <= phase {
                    entry.resize(phase + 1, Vec::new());
                }
                entry[phase].push(index);
            } else if term.kind == TermKind::Condition && goal_blocks.contains(&term.block) {
                conditions.push(index);
            }
        }
        Goal { reach_blocks, conditions, cache: HashMap::new() }
    }

    /// Evaluates every node over the last `steps + 1` states of `history`.
    fn recent_nodes(&mut self, scorer: &Scorer, history: &[Vec<f64>], actions: &[Vec<f64>], steps: usize, time0: f64) -> Vec<Signal> {
        let plan = self.cache.entry(steps).or_insert_with(|| shortened(&scorer.plan, steps));
        let first = history.len() - 1 - steps;
        let states: Vec<f64> = history[first..].concat();
        let na = scorer.shape.n_actions;
        let mut flat: Vec<f64> = actions[first.min(actions.len())..].concat();
        // The last row is held: pad up to `max(steps, 1)` rows with the latest action (or zeros).
        let last: Vec<f64> = actions.last().cloned().unwrap_or_else(|| vec![0.0; na]);
        while flat.len() < steps.max(1) * na {
            flat.extend_from_slice(&last);
        }
        flat.truncate(steps.max(1) * na);
        let inputs = Inputs { time0, states: &states, actions: &flat, design: &[], params: &scorer.params, fields: &scorer.fields };
        evaluate_nodes(plan, &inputs)
    }

    /// Advances the phase of every block whose active reaches all hold at the latest state;
    /// returns the names of the phases passed.
    pub fn advance(&mut self, scorer: &mut Scorer, history: &[Vec<f64>], actions: &[Vec<f64>], time: f64) -> Vec<String> {
        let mut passed = Vec::new();
        loop {
            let nodes = self.recent_nodes(scorer, history, actions, 0, time);
            let mut changed = false;
            for block in &mut self.reach_blocks {
                let Some(terms) = block.phases.get(block.active) else { continue };
                let reached = terms.iter().all(|&t| scorer.plan.terms[t].robustness.is_some_and(|r| nodes[r as usize].at(0) >= 0.0));
                if reached {
                    block.active += 1;
                    if let Some(param) = block.param {
                        scorer.params[param] = block.active as f64;
                    }
                    passed.push(format!("{}.phase = {}", block.name, block.active));
                    changed = true;
                }
            }
            if !changed {
                return passed;
            }
        }
    }

    /// The reach terms of every block's active phase.
    pub fn active_reach_terms(&self) -> Vec<usize> {
        self.reach_blocks.iter().filter_map(|block| block.phases.get(block.active)).flatten().copied().collect()
    }

    /// Whether every reach phase is passed and every goal condition holds.
    pub fn holds(&mut self, scorer: &Scorer, history: &[Vec<f64>], actions: &[Vec<f64>], time: f64) -> bool {
        let phases_done = self.reach_blocks.iter().all(|block| block.active >= block.phases.len());
        if !phases_done {
            return false;
        }
        for &term in &self.conditions.clone() {
            let Some(robustness) = scorer.plan.terms[term].robustness else { continue };
            let graph = &scorer.plan.graph;
            // A goal condition is `eventually` at its top: judge its body at the oldest step
            // of a slice long enough for the body's windows.
            let (node, window) = match &graph.nodes[robustness as usize] {
                Node::Eventually { body, from: 0, to, .. } if *to >= UNBOUNDED_WINDOW => (*body, window_of(&scorer.plan, *body)),
                _ => (robustness, window_of(&scorer.plan, robustness)),
            };
            if history.len() < window + 1 {
                return false;
            }
            let nodes = self.recent_nodes(scorer, history, actions, window, time - window as f64 * scorer.plan.horizon.as_ref().map_or(0.0, |h| h.step.0));
            if nodes[node as usize].at(0) < 0.0 {
                return false;
            }
        }
        true
    }
}

/// The plan with its horizon cut to `steps` steps, for judging a stretch of history.
pub(crate) fn shortened(plan: &Plan, steps: usize) -> Plan {
    let mut plan = plan.clone();
    if let Some(horizon) = plan.horizon.as_mut() {
        horizon.steps = steps as u32;
        horizon.horizon = basin_compiler::plan::Num::new(steps as f64 * horizon.step.0);
    }
    plan
}

/// The number of steps past `k` that the value of `node` at `k` reads through bounded
/// windows; unbounded windows add nothing.
fn window_of(plan: &Plan, node: NodeId) -> usize {
    let mut memo: HashMap<NodeId, usize> = HashMap::new();
    fn walk(plan: &Plan, node: NodeId, memo: &mut HashMap<NodeId, usize>) -> usize {
        if let Some(&w) = memo.get(&node) {
            return w;
        }
        let value = &plan.graph.nodes[node as usize];
        let own = match value {
            Node::Always { to, .. } | Node::Eventually { to, .. } if *to < UNBOUNDED_WINDOW => *to as usize,
            _ => 0,
        };
        let inner = value.children().into_iter().map(|c| walk(plan, c, memo)).max().unwrap_or(0);
        memo.insert(node, own + inner);
        own + inner
    }
    walk(plan, node, &mut memo)
}

/// Runs `planner` on `plant` until the goal holds or the time limit passes, calling
/// `on_step` after every control step.
///
/// # Errors
///
/// Fails when the plan has no horizon, the dynamics fail or an active site cannot be
/// reached on the map.
pub fn run_closed_loop(
    scorer: &mut Scorer,
    plant: &mut dyn Scenario,
    dynamics: &dyn Dynamics,
    planner: &mut Planner,
    options: &LoopOptions,
    on_step: &mut dyn FnMut(&StepRecord),
) -> Result<RunResult, MpcError> {
    let horizon = scorer.plan.horizon.clone().ok_or(MpcError::NoHorizon)?;
    let dt = horizon.step.0;
    let time_limit = options.time_limit.or(horizon.time_limit.map(|t| t.0)).unwrap_or(DEFAULT_TIME_LIMIT);
    let max_steps = options.max_steps.unwrap_or(usize::MAX).min((time_limit / dt).round() as usize);
    let start = Instant::now();
    let mut goal = Goal::new(scorer, &options.goal_blocks);
    let bounds: Vec<(f64, f64)> = plant.layout().actions.iter().map(|c| (c.lower.unwrap_or(f64::NEG_INFINITY), c.upper.unwrap_or(f64::INFINITY))).collect();

    let mut state = plant.reset(options.seed);
    let mut history = vec![state.clone()];
    let mut applied: Vec<Vec<f64>> = Vec::new();
    let mut records = Vec::new();
    let mut collisions = 0;
    let mut goal_time = None;
    let mut replan = false;
    let mut navigator = match options.navigation {
        Navigation::Auto => Navigator::from_scorer(scorer),
        Navigation::Off => None,
    };
    let mut pending: Vec<&MapEdit> = options.map_edits.iter().collect();
    pending.sort_by(|a, b| a.at.total_cmp(&b.at));
    let mut map_updates = Vec::new();
    goal.advance(scorer, &history, &applied, 0.0);
    if goal.holds(scorer, &history, &applied, 0.0) {
        goal_time = Some(0.0);
    }
    while goal_time.is_none() && records.len() < max_steps {
        let time = records.len() as f64 * dt;
        let mut events: Vec<String> = Vec::new();
        // Map edits due by now (with half a step of slack against rounding).
        while pending.first().is_some_and(|edit| edit.at <= time + dt / 2.0) {
            let edit = pending.remove(0);
            let added = plant.add_obstacle(&edit.obstacle());
            dynamics.add_obstacle(&edit.obstacle());
            for field in scorer.fields.iter_mut().flatten() {
                edit.apply_to_field(field);
            }
            if let Some(navigator) = navigator.as_mut() {
                navigator.map_changed(scorer);
            }
            tracing::warn!(time, added_to_plant = added, "{}; planning again from scratch", edit.describe());
            events.push(edit.describe());
            map_updates.push(edit.clone());
            replan = true;
        }
        if replan {
            planner.reset();
        }
        let targets = match navigator.as_mut() {
            Some(navigator) => navigator.steer(scorer, &goal.active_reach_terms(), &state, time)?,
            None => Vec::new(),
        };
        let solved = planner.solve(scorer, dynamics, &state, time);
        if let Some(navigator) = &navigator {
            navigator.restore(scorer);
        }
        let solution = solved?;
        let na = bounds.len();
        let mut action = solution.actions[..na].to_vec();
        if action.iter().any(|a| !a.is_finite()) {
            // Never send a non-finite command: stop instead.
            tracing::error!(time, ?action, "the planner returned a non-finite action; sending a safe stop");
            action = bounds.iter().map(|&(lower, upper)| 0.0f64.clamp(lower, upper)).collect();
        }
        let step = plant.step(&action, dt);
        let ns = state.len();
        let predicted = &solution.states[ns..2 * ns];
        let prediction_error = predicted.iter().zip(&step.state).map(|(p, o)| (p - o).powi(2)).sum::<f64>().sqrt();
        let surprise = dynamics.surprise(&state, &step.action, &step.state);
        replan = surprise.is_some_and(|(value, threshold)| value > threshold);
        if replan {
            tracing::warn!(time, surprise = surprise.map(|s| s.0), threshold = surprise.map(|s| s.1), "surprising transition; planning the next step from scratch");
        }
        collisions += step.events.iter().filter(|e| matches!(e, Event::ContactStarted { .. })).count();
        events.extend(step.events.iter().map(|e| format!("{e:?}")));

        applied.push(step.action.clone());
        history.push(step.state.clone());
        state = step.state;
        events.extend(goal.advance(scorer, &history, &applied, time + dt));
        let record = StepRecord {
            time,
            state: history[history.len() - 2].clone(),
            action: step.action,
            energies: solution.evaluation.terms.clone(),
            total: solution.evaluation.total,
            status: solution.status,
            iterations: solution.iterations,
            plan_seconds: solution.elapsed.as_secs_f64(),
            surprise: surprise.map(|s| s.0),
            replanned: replan,
            prediction_error,
            events,
            targets,
        };
        on_step(&record);
        records.push(record);
        if goal.holds(scorer, &history, &applied, time + dt) {
            goal_time = Some(time + dt);
        }
        planner.shift();
    }
    let phases = goal.reach_blocks.iter().map(|block| (format!("{}.phase", block.name), block.active as f64)).collect();
    Ok(RunResult {
        records,
        states: history,
        goal_met: goal_time.is_some(),
        goal_time,
        step: dt,
        collisions,
        wall_seconds: start.elapsed().as_secs_f64(),
        phases,
        dynamics: dynamics.name(),
        routes: navigator.map(|n| n.routes).unwrap_or_default(),
        map_updates,
    })
}
