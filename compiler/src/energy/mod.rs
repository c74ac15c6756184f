//! Evaluating the energy of a compiled plan: the inputs every backend reads, and the
//! result every backend returns.
//!
//! The semantics are in `spec/energy.md`. Three backends implement them and are tested
//! against each other: the reference interpreter (`interpret`), the cranelift JIT
//! (`crate::jit`) and the batched tensor backend in the runtime.
//!
//! Layout of the decision buffers, shared by all backends:
//! - `states` holds `H + 1` rows of `n_states` values, row `k` for step `k`; the columns are
//!   the state components of every agent in plan order (agent 0's components, then agent
//!   1's, …).
//! - `actions` holds `max(H, 1)` rows of `n_actions` values in the same column order; the
//!   action at step `H` is row `H − 1` (the last action is held).
//! - `design` holds one value per design variable, numbered across designs in plan order;
//!   a discrete variable holds the index of its choice.
//! - `params` holds one value per plan parameter (`Plan::params`), possibly edited by
//!   refinements.

pub mod gradient;
pub mod interpret;

pub use gradient::{GradNode, GradientGraph, differentiate, evaluate_gradient, gradient};
pub use interpret::{DistanceSample, Signal, angle, evaluate, evaluate_nodes, window};

use crate::plan::Plan;

/// A map context's signed distance field: metres, positive in free space.
#[derive(Clone, Debug, PartialEq)]
pub struct DistanceGrid {
    pub width: usize,
    pub height: usize,
    /// Metres per cell.
    pub cell: f64,
    /// World coordinates of the centre of cell `(0, 0)`, metres.
    pub origin: (f64, f64),
    /// Row-major, `values[row * width + col]`; row 0 is at `origin.1`, rows grow with y.
    pub values: Vec<f64>,
}

/// Everything an energy evaluation reads besides the plan's graph.
#[derive(Clone, Copy, Debug)]
pub struct Inputs<'a> {
    /// Seconds since the start of the run at step 0 (`t_run`).
    pub time0: f64,
    pub states: &'a [f64],
    pub actions: &'a [f64],
    pub design: &'a [f64],
    pub params: &'a [f64],
    /// One entry per plan context, in plan order; `None` for contexts that are not maps.
    pub fields: &'a [Option<DistanceGrid>],
}

/// Sizes of the decision buffers of a plan.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shape {
    /// Horizon steps `H` (0 for a design problem).
    pub steps: usize,
    pub n_states: usize,
    pub n_actions: usize,
    pub n_design: usize,
    pub n_params: usize,
}

impl Shape {
    pub fn of(plan: &Plan) -> Shape {
        Shape {
            steps: plan.horizon.as_ref().map_or(0, |h| h.steps as usize),
            n_states: plan.agents.iter().map(|a| a.states.len()).sum::<usize>() + plan.designs.iter().map(|d| d.states.len()).sum::<usize>(),
            n_actions: plan.agents.iter().map(|a| a.actions.len()).sum(),
            n_design: plan.designs.iter().map(|d| d.variables.len()).sum(),
            n_params: plan.params.len(),
        }
    }

    pub fn state_len(&self) -> usize {
        (self.steps + 1) * self.n_states
    }

    pub fn action_len(&self) -> usize {
        self.steps.max(1) * self.n_actions
    }

    /// Column of `component` of `agent` in the state rows. Agents' states come first, then
    /// the outcomes of each design (`agent ≥ agents.len()` names design `agent − agents.len()`).
    pub fn state_column(plan: &Plan, agent: u32, component: u32) -> usize {
        let agent = agent as usize;
        let agents = plan.agents.len();
        let before_agents: usize = plan.agents[..agent.min(agents)].iter().map(|a| a.states.len()).sum();
        let before_designs: usize = plan.designs[..agent.saturating_sub(agents).min(plan.designs.len())].iter().map(|d| d.states.len()).sum();
        before_agents + before_designs + component as usize
    }

    /// Column of `component` of `agent` in the action rows.
    pub fn action_column(plan: &Plan, agent: u32, component: u32) -> usize {
        plan.agents[..agent as usize].iter().map(|a| a.actions.len()).sum::<usize>() + component as usize
    }
}

/// Whether an evaluation produced only finite numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Finite,
    /// Some term's energy or some gradient entry is NaN or infinite; the index is the
    /// first such term, if a term is to blame.
    NonFinite { term: Option<usize> },
}

/// The energy of every term, their sum, and the status.
#[derive(Clone, Debug, PartialEq)]
pub struct Evaluation {
    pub total: f64,
    pub terms: Vec<f64>,
    pub status: Status,
}

/// The gradient of the total energy with respect to the decision buffers, in their layout.
#[derive(Clone, Debug, PartialEq)]
pub struct Gradient {
    pub states: Vec<f64>,
    pub actions: Vec<f64>,
    pub design: Vec<f64>,
}
