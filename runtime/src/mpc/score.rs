//! Scoring trajectories with the plan's energy.
//!
//! Samples are scored in parallel by the plan's energy compiled with the cranelift JIT,
//! which computes the same values and gradients as the reference interpreter (the JIT's
//! differential tests check this to 1e-12). Should the JIT reject a plan, the interpreter
//! scores it instead, and a warning says so.
//!
//! Two functions are compiled: the term energies alone for scoring samples, and the terms
//! with the gradient for refinement (on first use), so scoring a batch does not pay for a
//! reverse sweep it discards. Each rayon task reuses one workspace for its samples.

use std::sync::OnceLock;

use basin_compiler::energy::{DistanceGrid, Evaluation, Gradient, Inputs, Shape, evaluate, gradient};
use basin_compiler::jit::{self, JitEnergy, Outputs};
use basin_compiler::plan::Plan;
use rayon::prelude::*;

/// The plan with everything its energy reads besides the decision buffers.
pub struct Scorer {
    pub plan: Plan,
    /// Current parameter values; the closed loop advances `BLOCK.phase` here.
    pub params: Vec<f64>,
    pub fields: Vec<Option<DistanceGrid>>,
    pub shape: Shape,
    /// The term energies as native code, or `None` when compilation failed.
    compiled: Option<JitEnergy>,
    /// The term energies and the gradient, compiled on first use.
    with_gradient: OnceLock<Option<JitEnergy>>,
}

impl Scorer {
    pub fn new(plan: Plan, fields: Vec<Option<DistanceGrid>>) -> Scorer {
        let params = plan.params.iter().map(|p| p.value.0).collect();
        let shape = Shape::of(&plan);
        let compiled = match jit::compile(&plan, Outputs { terms: true, gradient: false }) {
            Ok(compiled) => Some(compiled),
            Err(error) => {
                tracing::warn!(%error, "the JIT could not compile the plan's energy; scoring with the interpreter");
                None
            }
        };
        Scorer { plan, params, fields, shape, compiled, with_gradient: OnceLock::new() }
    }

    fn inputs<'a>(&'a self, time0: f64, states: &'a [f64], actions: &'a [f64]) -> Inputs<'a> {
        Inputs { time0, states, actions, design: &[], params: &self.params, fields: &self.fields }
    }

    /// Scores one trajectory in the plan's buffer layout.
    pub fn evaluate(&self, time0: f64, states: &[f64], actions: &[f64]) -> Evaluation {
        let inputs = self.inputs(time0, states, actions);
        match &self.compiled {
            Some(compiled) => compiled.evaluate(&inputs),
            None => evaluate(&self.plan, &inputs),
        }
    }

    /// Scores `samples` trajectories stored one after another.
    pub fn evaluate_batch(&self, time0: f64, states: &[f64], actions: &[f64], samples: usize) -> Vec<Evaluation> {
        let (state_len, action_len) = (self.shape.state_len(), self.shape.action_len());
        let one = |i: usize| self.inputs(time0, &states[i * state_len..(i + 1) * state_len], &actions[i * action_len..(i + 1) * action_len]);
        match &self.compiled {
            Some(compiled) => (0..samples).into_par_iter().map_init(|| compiled.workspace(), |workspace, i| compiled.evaluate_with(&one(i), workspace)).collect(),
            None => (0..samples).into_par_iter().map(|i| evaluate(&self.plan, &one(i))).collect(),
        }
    }

    /// The energy and its gradient with respect to the buffers of one trajectory.
    pub fn gradient(&self, time0: f64, states: &[f64], actions: &[f64]) -> (Evaluation, Gradient) {
        let inputs = self.inputs(time0, states, actions);
        let compiled = self.with_gradient.get_or_init(|| match jit::compile(&self.plan, Outputs::ALL) {
            Ok(compiled) => Some(compiled),
            Err(error) => {
                tracing::warn!(%error, "the JIT could not compile the plan's energy gradient; using the interpreter");
                None
            }
        });
        match compiled {
            Some(compiled) => compiled.gradient(&inputs),
            None => gradient(&self.plan, &inputs),
        }
    }

    /// Index of parameter `name`.
    pub fn param_index(&self, name: &str) -> Option<usize> {
        self.plan.params.iter().position(|p| p.name == name)
    }
}
