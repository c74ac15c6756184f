//! Dynamics that planners roll out: a batch of action sequences from the current state to
//! predicted state trajectories.
//!
//! Two implementations exist. [`ModelDynamics`] runs the learned world model (encode, then
//! predict and probe at every step) and denormalizes its output to SI units.
//! [`SimulatorDynamics`] runs the physics scenario itself, which is exact but much slower,
//! for tests and for comparing the world model with the simulator in the loop.

use std::path::Path;
use std::sync::Mutex;

use basin_compiler::plan::Plan;
use candle_core::{Device, Tensor};
use rayon::prelude::*;

use super::MpcError;
use crate::model::{Normalization, WorldModel, surprise};
use crate::scenario::{
    DiffDrive, DiffDriveParams, DoubleIntegrator, DoubleIntegratorParams, Obstacle, Pendulum, PendulumParams,
    Scenario, Start, scenario_from_plan,
};

/// A batched rollout of action sequences.
pub trait Dynamics: Sync {
    fn n_states(&self) -> usize;
    fn n_actions(&self) -> usize;

    /// Rolls out `samples` action sequences of `steps` rows each (`actions` is
    /// `[samples, steps, n_actions]`, row-major) from `state` over steps of `dt` seconds, and
    /// returns the states `[samples, steps + 1, n_states]`, row 0 of each sample being `state`.
    fn rollout(
        &self,
        state: &[f64],
        actions: &[f64],
        samples: usize,
        steps: usize,
        dt: f64,
    ) -> Result<Vec<f64>, MpcError>;

    /// Returns the surprise of an observed transition and the threshold above which it counts
    /// as implausible, for dynamics that can judge one.
    fn surprise(&self, _state: &[f64], _action: &[f64], _next: &[f64]) -> Option<(f64, f64)> {
        None
    }

    /// A short name for reports, such as `world model` or `simulator`.
    fn name(&self) -> &'static str;

    /// Takes in an obstacle added to the map during a run, for dynamics that simulate
    /// contacts; the default ignores it.
    fn add_obstacle(&self, _obstacle: &Obstacle) {}
}

/// The learned world model as planner dynamics, with the normalization it was trained with.
pub struct ModelDynamics {
    pub model: WorldModel,
    pub normalization: Normalization,
    /// The surprise above which a transition counts as implausible (from the checkpoint).
    pub surprise_threshold: f64,
}

impl ModelDynamics {
    fn normalized(&self, rows: &[f64], mean: &[f32], std: &[f32]) -> Vec<f32> {
        let width = mean.len();
        rows.iter().enumerate().map(|(i, &v)| (v as f32 - mean[i % width]) / std[i % width]).collect()
    }

    fn device(&self) -> &Device {
        &self.model.device
    }
}

impl Dynamics for ModelDynamics {
    fn n_states(&self) -> usize {
        self.model.dims.n_states
    }

    fn n_actions(&self) -> usize {
        self.model.dims.n_actions
    }

    fn rollout(
        &self,
        state: &[f64],
        actions: &[f64],
        samples: usize,
        steps: usize,
        _dt: f64,
    ) -> Result<Vec<f64>, MpcError> {
        let (ns, na) = (self.n_states(), self.n_actions());
        let norm = &self.normalization;
        let start = self.normalized(state, &norm.state_mean, &norm.state_std);
        let start = Tensor::from_vec(start, (1, ns), self.device())?.repeat((samples, 1))?;
        let normalized = self.normalized(actions, &norm.action_mean, &norm.action_std);
        // [samples, steps, na] → one [samples, na] tensor per step.
        let all = Tensor::from_vec(normalized, (samples, steps, na), self.device())?;
        let per_step: Vec<Tensor> = (0..steps).map(|k| all.narrow(1, k, 1)?.squeeze(1)).collect::<Result<_, _>>()?;
        let predicted = self.model.rollout(&start, &per_step)?;
        let mut out = vec![0.0; samples * (steps + 1) * ns];
        for sample in 0..samples {
            out[sample * (steps + 1) * ns..][..ns].copy_from_slice(state);
        }
        for (k, tensor) in predicted.iter().enumerate() {
            let rows: Vec<f32> = tensor.flatten_all()?.to_vec1()?;
            for sample in 0..samples {
                let row = norm.unstate(&rows[sample * ns..(sample + 1) * ns]);
                let target = &mut out[(sample * (steps + 1) + k + 1) * ns..][..ns];
                for (t, v) in target.iter_mut().zip(row) {
                    *t = f64::from(v);
                }
            }
        }
        Ok(out)
    }

    fn surprise(&self, state: &[f64], action: &[f64], next: &[f64]) -> Option<(f64, f64)> {
        let norm = &self.normalization;
        let tensor = |rows: Vec<f32>| Tensor::from_vec(rows.clone(), (1, rows.len()), self.device()).ok();
        let s = tensor(self.normalized(state, &norm.state_mean, &norm.state_std))?;
        let a = tensor(self.normalized(action, &norm.action_mean, &norm.action_std))?;
        let n = tensor(self.normalized(next, &norm.state_mean, &norm.state_std))?;
        let value = surprise(&self.model, &s, &a, &n).ok()?.first().copied()?;
        Some((f64::from(value), self.surprise_threshold))
    }

    fn name(&self) -> &'static str {
        "world model"
    }
}

/// A scenario whose state can be set directly, so rollouts can start from any state.
pub trait SettableScenario: Scenario {
    /// Rebuilds the world at `state` (the layout's state order); velocities the state does
    /// not hold start at rest.
    fn set_state(&mut self, state: &[f64]);
}

impl SettableScenario for DoubleIntegrator {
    fn set_state(&mut self, state: &[f64]) {
        self.reset_to([state[0], state[1]]);
    }
}

impl SettableScenario for Pendulum {
    fn set_state(&mut self, state: &[f64]) {
        self.reset_to([state[0], state[1]]);
    }
}

impl SettableScenario for DiffDrive {
    fn set_state(&mut self, state: &[f64]) {
        self.reset_to([state[0], state[1], state[2]]);
    }
}

/// The physics scenario as planner dynamics: one copy per worker thread, reset to the
/// current state before each sample's rollout.
pub struct SimulatorDynamics {
    copies: Vec<Mutex<Box<dyn SettableScenario>>>,
    n_states: usize,
    n_actions: usize,
}

impl SimulatorDynamics {
    /// Wraps copies built by `build`, one per rayon worker thread.
    pub fn new(build: impl Fn() -> Box<dyn SettableScenario>) -> Self {
        let copies: Vec<_> = (0..rayon::current_num_threads().max(1)).map(|_| Mutex::new(build())).collect();
        let (n_states, n_actions) = {
            let first = copies[0].lock().expect("scenario lock");
            (first.layout().states.len(), first.layout().actions.len())
        };
        SimulatorDynamics { copies, n_states, n_actions }
    }

    fn roll_one(&self, scenario: &mut dyn SettableScenario, state: &[f64], actions: &[f64], steps: usize, dt: f64, out: &mut [f64]) {
        let (ns, na) = (self.n_states, self.n_actions);
        scenario.set_state(state);
        out[..ns].copy_from_slice(state);
        for k in 0..steps {
            let step = scenario.step(&actions[k * na..(k + 1) * na], dt);
            out[(k + 1) * ns..(k + 2) * ns].copy_from_slice(&step.state);
        }
    }
}

impl Dynamics for SimulatorDynamics {
    fn n_states(&self) -> usize {
        self.n_states
    }

    fn n_actions(&self) -> usize {
        self.n_actions
    }

    fn rollout(
        &self,
        state: &[f64],
        actions: &[f64],
        samples: usize,
        steps: usize,
        dt: f64,
    ) -> Result<Vec<f64>, MpcError> {
        let (ns, na) = (self.n_states, self.n_actions);
        let mut out = vec![0.0; samples * (steps + 1) * ns];
        out.par_chunks_mut((steps + 1) * ns).enumerate().for_each(|(sample, rows)| {
            let thread = rayon::current_thread_index().unwrap_or(0) % self.copies.len();
            let mut scenario = self.copies[thread].lock().expect("scenario lock");
            self.roll_one(scenario.as_mut(), state, &actions[sample * steps * na..(sample + 1) * steps * na], steps, dt, rows);
        });
        Ok(out)
    }

    fn name(&self) -> &'static str {
        "simulator"
    }

    fn add_obstacle(&self, obstacle: &Obstacle) {
        for copy in &self.copies {
            copy.lock().expect("scenario lock").add_obstacle(obstacle);
        }
    }
}

/// Builds simulator dynamics for a plan with one agent of a supported model, with physics
/// substeps of at most `max_substep` seconds (`None` keeps each scenario's default).
///
/// A coarser substep than the plant's makes rollouts faster at some loss of accuracy, which
/// the closed loop corrects at every step.
///
/// # Errors
///
/// Fails for plans with several agents or another model, or when a parameter or context is
/// missing.
pub fn simulator_for_plan(plan: &Plan, base_dir: Option<&Path>, max_substep: Option<f64>) -> Result<SimulatorDynamics, MpcError> {
    let [agent] = plan.agents.as_slice() else {
        return Err(MpcError::UnsupportedSimulator(format!("{} agents", plan.agents.len())));
    };
    let param = |name: &str| -> Result<f64, MpcError> {
        let full = format!("{}.{name}", agent.name);
        plan.params.iter().find(|p| p.name == full).map(|p| p.value.0).ok_or(MpcError::MissingParam(full))
    };
    let start: Vec<f64> = agent.states.iter().map(|s| s.initial.map_or(0.0, |v| v.0)).collect();
    let name = agent.name.clone();
    match agent.model.as_str() {
        "std.robots.double_integrator" => {
            let params = DoubleIntegratorParams { max_accel: param("max_accel")?, max_speed: param("max_speed")?, start: [start[0], start[1]] };
            Ok(SimulatorDynamics::new(|| {
                let mut s = DoubleIntegrator::new(&name, params.clone());
                if let Some(h) = max_substep {
                    s.max_substep = h;
                }
                Box::new(s)
            }))
        }
        "std.robots.pendulum" => {
            let params = PendulumParams { mass: param("mass")?, length: param("length")?, max_torque: param("max_torque")?, start: [start[0], start[1]] };
            Ok(SimulatorDynamics::new(|| {
                let mut s = Pendulum::new(&name, params.clone());
                if let Some(h) = max_substep {
                    s.max_substep = h;
                }
                Box::new(s)
            }))
        }
        "std.robots.diff_drive" => {
            let params = DiffDriveParams {
                radius: param("radius")?,
                max_speed: param("max_speed")?,
                max_accel: param("max_accel")?,
                max_turn_rate: param("max_turn_rate")?,
                start: [start[0], start[1], start[2]],
            };
            let obstacles = scenario_from_plan(plan, base_dir, Start::Plan)?.obstacles(0).to_vec();
            Ok(SimulatorDynamics::new(|| {
                let mut s = DiffDrive::new(&name, params.clone(), obstacles.clone());
                if let Some(h) = max_substep {
                    s.max_substep = h;
                }
                Box::new(s)
            }))
        }
        other => Err(MpcError::UnsupportedSimulator(format!("model `{other}`"))),
    }
}
