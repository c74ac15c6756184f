//! Physics scenarios: rapier3d worlds built from a compiled plan, stepped with actions in
//! the plan's layout, for training data (`basin simulate`) and for checking plans against
//! physics.
//!
//! Each agent model of `std.robots` and the design model `std.furniture.office_chair` has a
//! scenario. All of them share these conventions:
//!
//! - The world is z-up with gravity `−g0 ẑ` ([`GRAVITY`]); planar motion is in x–y.
//! - [`Scenario::observe`] returns the state in the plan's component order and SI units, and
//!   [`Scenario::step`] takes the action in the plan's order. An action outside its bounds
//!   is clamped to them, and the step reports the action it applied.
//! - A step of `dt` seconds runs as many equal physics substeps as needed to keep each at
//!   or below the scenario's `max_substep`.
//! - [`Scenario::reset`] rebuilds the world from scratch, so the same scenario and seed give
//!   bit-identical trajectories on one machine and build.
//!
//! `rapier3d` computes in `f32`, so states carry about 7 significant digits.

mod cart_pole;
mod chair;
mod dataset;
mod diff_drive;
mod double_integrator;
mod obstacles;
mod pendulum;
mod physics;
mod plan;
mod replay;
mod rng;

pub use cart_pole::{CART_HALF_EXTENTS, CartPole, CartPoleParams, POLE_THICKNESS};
pub use chair::{
    ARMREST_HEIGHT, BASE_ARMS, CASTER_FRICTION, CASTER_RADIUS, Chair, ChairParams, LoadTest,
    LoadTestOutcome, TIP_ANGLE, UPRIGHT_TILT,
};
pub use dataset::{
    DATASET_FORMAT, DesignSamples, Episodes, SimulateOptions, SimulatedData, plan_hash,
    read_dataset, simulate, write_dataset,
};
pub use diff_drive::{BASE_FRICTION, BASE_HEIGHT, BASE_MASS, DiffDrive, DiffDriveParams};
pub use double_integrator::{
    BLOCK_HALF_SIDE, BLOCK_MASS, DoubleIntegrator, DoubleIntegratorParams,
};
pub use obstacles::{
    CellRect, MAP_OBSTACLE_HEIGHT, Obstacle, merge_blocked_cells, obstacles_from_grid,
    obstacles_from_scene,
};
pub use pendulum::{BOB_RADIUS, Pendulum, PendulumParams};
pub use physics::GRAVITY;
pub use plan::{PlanScenario, Start, chair_from_plan, load_test_force, scenario_from_plan};
pub(crate) use plan::load_grid;
pub use replay::{Replay, distance_grids, replay_actions, replay_design, replay_in, score_replay};
pub use rng::{OrnsteinUhlenbeck, Rng, derive_seed};

use std::path::PathBuf;

/// A state or action component: its qualified name (`robot.x`), SI unit and bounds.
#[derive(Clone, Debug, PartialEq)]
pub struct Channel {
    pub name: String,
    pub unit: String,
    pub lower: Option<f64>,
    pub upper: Option<f64>,
}

impl Channel {
    pub fn new(name: impl Into<String>, unit: impl Into<String>) -> Self {
        Channel {
            name: name.into(),
            unit: unit.into(),
            lower: None,
            upper: None,
        }
    }

    pub fn bounded(
        name: impl Into<String>,
        unit: impl Into<String>,
        lower: f64,
        upper: f64,
    ) -> Self {
        Channel {
            name: name.into(),
            unit: unit.into(),
            lower: Some(lower),
            upper: Some(upper),
        }
    }

    /// Clamps `value` into the channel's bounds where it has them.
    pub fn clamp(&self, value: f64) -> f64 {
        let value = self.lower.map_or(value, |lower| value.max(lower));
        self.upper.map_or(value, |upper| value.min(upper))
    }

    /// Checks whether `value` lies within the channel's bounds (NaN never does).
    pub fn contains(&self, value: f64) -> bool {
        !value.is_nan()
            && self.lower.is_none_or(|lower| value >= lower)
            && self.upper.is_none_or(|upper| value <= upper)
    }
}

/// The state and action components of a scenario, in order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Layout {
    pub states: Vec<Channel>,
    pub actions: Vec<Channel>,
}

/// Something that happened during a step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// The agent's body started touching an obstacle; `obstacle` indexes the scenario's
    /// obstacle list ([`DiffDrive::obstacles`]).
    ContactStarted { agent: usize, obstacle: usize },
    /// The agent's body stopped touching an obstacle.
    ContactStopped { agent: usize, obstacle: usize },
    /// A joint reached the end of its travel, such as a cart at the end of its rail.
    JointLimit { agent: usize },
    /// State column `column` left the bounds the plan gives it.
    OutOfBounds { column: usize },
    /// The chair tilted past [`TIP_ANGLE`] and counts as tipped over.
    Tipped,
}

/// The result of one step.
#[derive(Clone, Debug, PartialEq)]
pub struct Step {
    /// The state after the step, as [`Scenario::observe`] returns it.
    pub state: Vec<f64>,
    /// The action actually applied, after clamping to the bounds.
    pub action: Vec<f64>,
    pub events: Vec<Event>,
}

/// A simulated system that takes actions and reports its state in a plan's layout.
pub trait Scenario: Send {
    fn layout(&self) -> &Layout;

    /// Rebuilds the world in its start state and returns that state. The seed drives every
    /// random choice of the reset, such as a random start (see [`Start`]).
    fn reset(&mut self, seed: u64) -> Vec<f64>;

    /// Returns the current state in the layout's order and SI units.
    fn observe(&self) -> Vec<f64>;

    /// Applies `action` (clamped to its bounds) for `dt` seconds and returns the new state.
    ///
    /// # Panics
    ///
    /// Panics if `action` does not have one value per action channel, or if `dt` is not a
    /// positive finite number.
    fn step(&mut self, action: &[f64], dt: f64) -> Step;

    /// Adds a fixed obstacle to the running world, keeping the current state, for maps that
    /// change during a run; returns `false` when the scenario has no obstacles to add to.
    fn add_obstacle(&mut self, _obstacle: &Obstacle) -> bool {
        false
    }
}

/// Why a scenario could not be built from a plan.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("the plan has no agent and no design that Basin can simulate")]
    NothingToSimulate,
    #[error("no physics scenario for model `{model}` of `{name}`; simulated models are {known}")]
    UnsupportedModel {
        name: String,
        model: String,
        known: String,
    },
    #[error(
        "the plan has no parameter `{0}`; try compiling the spec again with this version of Basin"
    )]
    MissingParam(String),
    #[error("invalid value {value} for `{name}`: {reason}")]
    InvalidParam {
        name: String,
        value: f64,
        reason: String,
    },
    #[error("invalid design `{name}`: {reason}")]
    InvalidDesign { name: String, reason: String },
    #[error(
        "context `{name}` needs the setting `{setting}`; try adding `{setting}: …` to its block"
    )]
    MissingSetting { name: String, setting: String },
    #[error("context `{name}` has an invalid setting: {reason}")]
    InvalidSetting { name: String, reason: String },
    #[error("context files are not available: the spec's folder is unknown")]
    NoBaseDir,
    #[error(transparent)]
    Context(#[from] crate::context::ContextError),
    #[error("expected {expected} {what} values, found {found}")]
    Shape {
        what: &'static str,
        expected: usize,
        found: usize,
    },
    #[error("cannot find the load of the load test: {0}")]
    LoadTest(String),
    #[error(
        "the plan has no horizon, so the episode length is unknown; try passing a number of steps"
    )]
    NoHorizon,
    #[error("cannot write `{path}`: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read `{path}`: {reason}")]
    Read { path: PathBuf, reason: String },
}

/// Splits `dt` into the fewest equal substeps of at most `max_substep` seconds.
pub(crate) fn substeps(dt: f64, max_substep: f64) -> (usize, f64) {
    assert!(
        dt.is_finite() && dt > 0.0,
        "the step must be a positive number of seconds, got {dt}"
    );
    let count = (dt / max_substep).ceil().max(1.0) as usize;
    (count, dt / count as f64)
}

/// Checks the action length and clamps each value to its channel's bounds.
pub(crate) fn clamp_action(layout: &Layout, action: &[f64]) -> Vec<f64> {
    assert_eq!(
        action.len(),
        layout.actions.len(),
        "expected {} action values, found {}",
        layout.actions.len(),
        action.len()
    );
    action
        .iter()
        .zip(&layout.actions)
        .map(|(&value, channel)| channel.clamp(value))
        .collect()
}

/// Wraps an angle into `(−π, π]`.
pub(crate) fn wrap_angle(angle: f64) -> f64 {
    let wrapped = angle.rem_euclid(std::f64::consts::TAU);
    if wrapped > std::f64::consts::PI {
        wrapped - std::f64::consts::TAU
    } else {
        wrapped
    }
}
