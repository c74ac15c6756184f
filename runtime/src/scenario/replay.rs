//! Validation: run a plan's actions (or design) in the physics scenario and return what
//! really happens, in the layout the energy backends read (`basin_compiler::energy`).
//!
//! A replay starts from the plan's start state and applies action row `k` during step `k`.
//! Its `states` hold `H + 1` rows of every agent's state components in plan order. Its
//! `actions` hold `max(H, 1)` rows of the actions actually applied, clamped to their bounds.
//! Both buffers go to an energy evaluation as they are.

use std::path::Path;

use basin_compiler::energy::{DistanceGrid, Evaluation, Inputs, Shape, evaluate};
use basin_compiler::plan::Plan;

use super::chair::{LoadTest, LoadTestOutcome};
use super::plan::{
    PlanScenario, Start, chair_from_plan, load_grid, load_test_force, scenario_from_plan,
};
use super::{Event, Scenario, ScenarioError};
use crate::context::{DistanceField, Grid};

/// A replayed trajectory in the energy layout.
#[derive(Clone, Debug, PartialEq)]
pub struct Replay {
    /// Steps `H`.
    pub steps: usize,
    /// Seconds per step.
    pub step: f64,
    /// `(H + 1) × n_states`, row-major.
    pub states: Vec<f64>,
    /// `max(H, 1) × n_actions`, row-major.
    pub actions: Vec<f64>,
    /// Events with the step they happened in, from 0.
    pub events: Vec<(usize, Event)>,
}

/// Replays `actions` (`max(H, 1)` rows of the plan's actions, the layout of
/// `basin_compiler::energy::Inputs::actions`) over the plan's horizon.
///
/// # Errors
///
/// Fails when the plan has no horizon or cannot be simulated, or when `actions` has the
/// wrong length.
pub fn replay_actions(
    plan: &Plan,
    base_dir: Option<&Path>,
    actions: &[f64],
) -> Result<Replay, ScenarioError> {
    let horizon = plan.horizon.as_ref().ok_or(ScenarioError::NoHorizon)?;
    let mut scenario = scenario_from_plan(plan, base_dir, Start::Plan)?;
    replay_in(
        &mut scenario,
        horizon.steps as usize,
        horizon.step.0,
        actions,
    )
}

/// Replays `actions` for `steps` steps of `step` seconds in a built scenario, from the start
/// state of its reset with seed 0.
///
/// # Errors
///
/// Fails when `actions` does not hold `max(steps, 1)` rows of the scenario's actions.
pub fn replay_in(
    scenario: &mut PlanScenario,
    steps: usize,
    step: f64,
    actions: &[f64],
) -> Result<Replay, ScenarioError> {
    let n_actions = scenario.layout().actions.len();
    let expected = steps.max(1) * n_actions;
    if actions.len() != expected {
        return Err(ScenarioError::Shape {
            what: "action",
            expected,
            found: actions.len(),
        });
    }
    let mut states = scenario.reset(0);
    let mut applied = Vec::with_capacity(expected);
    let mut events = Vec::new();
    for (index, row) in actions.chunks(n_actions.max(1)).take(steps).enumerate() {
        let result = scenario.step(row, step);
        states.extend(result.state);
        applied.extend(result.action);
        events.extend(result.events.into_iter().map(|event| (index, event)));
    }
    if steps == 0 {
        applied.extend_from_slice(actions);
    }
    Ok(Replay {
        steps,
        step,
        states,
        actions: applied,
        events,
    })
}

/// Runs the load test of the plan's `load_test(…)` on the chair design `design` (the
/// plan's design layout).
///
/// # Errors
///
/// Fails when the plan has no chair design or no load test, or `design` is invalid.
pub fn replay_design(plan: &Plan, design: &[f64]) -> Result<LoadTestOutcome, ScenarioError> {
    let load = load_test_force(plan)?;
    Ok(chair_from_plan(plan, design)?.load_test(&LoadTest::new(load)))
}

/// Computes the signed distance field of every plan context in the energy layout: one entry per
/// context, `Some` for `image` and `map` contexts and `None` for the others.
///
/// # Errors
///
/// Fails when a map file cannot be loaded.
pub fn distance_grids(
    plan: &Plan,
    base_dir: Option<&Path>,
) -> Result<Vec<Option<DistanceGrid>>, ScenarioError> {
    plan.contexts
        .iter()
        .map(|context| {
            let grid = match context.loader.as_str() {
                "image" | "map" => load_grid(context, base_dir)?,
                _ => return Ok(None),
            };
            Ok(Some(distance_grid(&grid)))
        })
        .collect()
}

/// Largest cell of the distance fields the energy reads, metres. The field is exact along
/// the axes but interpolated bilinearly between cell centres, which near the corner of a
/// blocked cell overestimates the distance by up to about a third of a cell; the cells of
/// coarse maps (a MovingAI map at 2 m a cell) are split until they are this small.
pub const MAX_FIELD_CELL: f64 = 0.125;

/// Converts a grid's distance field to the energy layout, whose row 0 is the bottom row.
fn distance_grid(grid: &Grid) -> DistanceGrid {
    let factor = (grid.cell_size() / MAX_FIELD_CELL).ceil().max(1.0) as usize;
    let refined;
    let grid = if factor > 1 {
        refined = grid.refined(factor);
        &refined
    } else {
        grid
    };
    let field = DistanceField::new(grid);
    let (width, height, cell) = (grid.width(), grid.height(), grid.cell_size());
    let mut values = Vec::with_capacity(width * height);
    for row_from_bottom in 0..height {
        let row = height - 1 - row_from_bottom;
        values.extend((0..width).map(|col| field.value(col, row)));
    }
    let [x, y] = grid.origin();
    DistanceGrid {
        width,
        height,
        cell,
        origin: (x + cell / 2.0, y + cell / 2.0),
        values,
    }
}

/// Scores a replayed trajectory with the plan's energy, using the plan's parameters, the
/// distance fields of its maps and `design` (the plan's design layout; empty without
/// designs).
///
/// # Errors
///
/// Fails when a map cannot be loaded or the buffers do not fit the plan.
pub fn score_replay(
    plan: &Plan,
    base_dir: Option<&Path>,
    replay: &Replay,
    design: &[f64],
) -> Result<Evaluation, ScenarioError> {
    let shape = Shape::of(plan);
    for (what, expected, found) in [
        ("state", shape.state_len(), replay.states.len()),
        ("action", shape.action_len(), replay.actions.len()),
        ("design", shape.n_design, design.len()),
    ] {
        if expected != found {
            return Err(ScenarioError::Shape {
                what,
                expected,
                found,
            });
        }
    }
    let params: Vec<f64> = plan.params.iter().map(|p| p.value.0).collect();
    let fields = distance_grids(plan, base_dir)?;
    let inputs = Inputs {
        time0: 0.0,
        states: &replay.states,
        actions: &replay.actions,
        design,
        params: &params,
        fields: &fields,
    };
    Ok(evaluate(plan, &inputs))
}
