//! Model-predictive control: sampling planners over a batch of action sequences, the
//! dynamics they roll out, and the closed loop that runs a plan on a plant.
//!
//! Every control step observes the plant, solves the plan's energy over the horizon from the
//! observed state (MPPI or CEM, then optional gradient refinement, warm-started from the
//! previous solution shifted by one step), applies the first action and steps the plant.
//! Buffers use the layout of `basin_compiler::energy` (row `k` of `H + 1` state rows and of
//! `H` action rows), with a leading sample index for batches.

mod closed_loop;
mod dynamics;
mod navigate;
mod planner;
mod report;
mod score;

pub use closed_loop::{DEFAULT_TIME_LIMIT, Goal, LoopOptions, Navigation, RunResult, StepRecord, goal_blocks_of, run_closed_loop};
pub use navigate::{EditShape, MapEdit, Navigator, RouteRecord, refinement_map_edits};
pub use dynamics::{Dynamics, ModelDynamics, SettableScenario, SimulatorDynamics, simulator_for_plan};
pub use planner::{Fallback, Method, Planner, PlannerSettings, Solution, SolverStatus};
pub use report::{HardMargin, Summary, judge, progress_bar, read_trace, render_summary, render_svg, summarize, trace_json};
pub use score::Scorer;

/// Why a closed-loop run or a planner could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum MpcError {
    #[error("the plan has no `plan` block with a step and a horizon, so there is nothing to control")]
    NoHorizon,
    #[error("the plan has no agent to control")]
    NoAgent,
    #[error("invalid solver setting `{stage}.{setting}` = {value}: {reason}")]
    InvalidSetting { stage: String, setting: String, value: f64, reason: String },
    #[error("unknown solver `{0}`; the closed loop runs `mppi`, `cem` and `gradient` stages")]
    UnknownSolver(String),
    #[error(
        "simulator dynamics support one agent of model `std.robots.double_integrator`, \
         `std.robots.pendulum` or `std.robots.diff_drive`, not {0}"
    )]
    UnsupportedSimulator(String),
    #[error("the plan has no parameter `{0}`; try compiling the spec again with this version of Basin")]
    MissingParam(String),
    #[error(transparent)]
    Scenario(#[from] crate::scenario::ScenarioError),
    #[error("the world model failed: {0}")]
    Model(#[from] candle_core::Error),
    #[error(transparent)]
    Navigation(#[from] crate::context::NavError),
    #[error("{0}")]
    Refinement(String),
    #[error("invalid trajectory: {0}")]
    Trajectory(String),
    #[error(
        "the world model reads an occupancy patch of the map, but no map was given; try naming the map context in the world block, as in `from simulate(robot, floor)`, and training again"
    )]
    NoMap,
}
