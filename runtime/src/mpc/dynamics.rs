//! Dynamics that planners roll out: a batch of action sequences from the current state to
//! predicted state trajectories.
//!
//! Two implementations exist. [`ModelDynamics`] runs the learned world model (encode, then
//! predict and probe at every step) and denormalizes its output to SI units. Its encoder
//! reads the state and, for a robot on a map, an occupancy patch cut from the map it holds,
//! which [`ModelDynamics::replace_grid`] swaps when the map changes during a run. For a
//! mobile base whose state contains its velocities, the pose in the rollout is integrated
//! from the predicted velocities ([`Kinematics`]).
//! [`SimulatorDynamics`] runs the physics scenario itself, which is exact but much slower,
//! for tests and for comparing the world model with the simulator in the loop.

use std::path::Path;
use std::sync::{Mutex, RwLock};

use basin_compiler::plan::Plan;
use candle_core::{Device, Tensor};
use rayon::prelude::*;

use super::MpcError;
use crate::context::Grid;
use crate::model::{Affine, Batch, Kinematics, Normalization, Observer, PatchSampler, Rollout, WorldModel, surprise};
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

    /// The gradient of `Σ grad_states · states` with respect to `actions` (`[steps, n_actions]`,
    /// one sequence), where `states` is what [`Dynamics::rollout`] returns for this one
    /// sequence and `grad_states` is `[steps + 1, n_states]`: a vector-Jacobian product through
    /// the rollout. Dynamics without a reverse pass return `None`, and planners fall back to
    /// finite differences.
    fn action_gradient(&self, _state: &[f64], _actions: &[f64], _dt: f64, _grad_states: &[f64]) -> Option<Result<Vec<f64>, MpcError>> {
        None
    }

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
///
/// Rollouts run on the fast `f32` kernel ([`Rollout`]), whose weights are copied out of the
/// model when the dynamics are built; the start latent comes from [`WorldModel::encode`].
pub struct ModelDynamics {
    pub model: WorldModel,
    pub normalization: Normalization,
    /// The surprise above which a transition counts as implausible (from the checkpoint).
    pub surprise_threshold: f64,
    kernel: Rollout,
    /// SI actions to normalized ones.
    action_in: Affine,
    /// Normalized states to SI ones.
    state_out: Affine,
    /// Builds encoder inputs; holds the map the occupancy patch is cut from.
    observer: RwLock<Observer>,
    /// The latest observed state and its latent; cleared when the map changes.
    latest: Mutex<Option<(Vec<f64>, Vec<f32>)>>,
    /// For a mobile base with velocities in its state, how rollouts integrate its pose.
    kinematics: Option<Kinematics>,
}

impl ModelDynamics {
    /// Wraps `model` with the normalization it was trained with. `grid` is the map its
    /// occupancy patches are cut from; it is required when the model's observations carry
    /// a patch and ignored otherwise.
    ///
    /// # Errors
    ///
    /// Fails when the model's variables do not fit its dimensions or the normalization's
    /// lengths do not fit the model, and with [`MpcError::NoMap`] when the model reads a
    /// patch and `grid` is `None`.
    pub fn new(model: WorldModel, normalization: Normalization, surprise_threshold: f64, grid: Option<&Grid>) -> Result<ModelDynamics, MpcError> {
        let (ns, na) = (model.dims.n_states, model.dims.n_actions);
        let norm = &normalization;
        if [norm.state_mean.len(), norm.state_std.len()] != [ns, ns] || [norm.action_mean.len(), norm.action_std.len()] != [na, na] {
            return Err(MpcError::Model(candle_core::Error::Msg(format!(
                "the normalization has {} state and {} action columns, but the model has {ns} and {na}",
                norm.state_mean.len(),
                norm.action_mean.len()
            ))));
        }
        let patches = match (model.dims.patch, grid) {
            (Some(spec), Some(grid)) => Some(PatchSampler::new(spec, grid)),
            (Some(_), None) => return Err(MpcError::NoMap),
            (None, _) => None,
        };
        let observer = RwLock::new(Observer::new(normalization.clone(), patches).with_angle(model.dims.angle));
        let kernel = Rollout::new(&model)?;
        let action_in = Affine {
            scale: norm.action_std.iter().map(|s| 1.0 / s).collect(),
            offset: norm.action_mean.iter().zip(&norm.action_std).map(|(m, s)| -m / s).collect(),
        };
        let state_out = Affine { scale: norm.state_std.clone(), offset: norm.state_mean.clone() };
        let kinematics = Kinematics::of(&model.dims);
        Ok(ModelDynamics { model, normalization, surprise_threshold, kernel, action_in, state_out, observer, latest: Mutex::new(None), kinematics })
    }

    /// Replaces the map that occupancy patches are cut from, for an obstacle added or
    /// removed during a run; later rollouts encode the state against the new map. Does
    /// nothing for a model without a patch.
    pub fn replace_grid(&self, grid: &Grid) {
        let mut observer = self.observer.write().unwrap_or_else(|e| e.into_inner());
        if let Some(spec) = observer.patch_spec() {
            observer.patches = Some(PatchSampler::new(spec, grid));
            *self.latest.lock().unwrap_or_else(|e| e.into_inner()) = None;
        }
    }

    /// Returns the encoder inputs `[rows, n_obs]` of states in SI units (rows of `n_states`):
    /// the normalized state, then the occupancy patch around it.
    pub fn observe(&self, states: &[f64]) -> Vec<f32> {
        self.observer.read().unwrap_or_else(|e| e.into_inner()).observe_f64(states)
    }

    fn normalized(&self, rows: &[f64], mean: &[f32], std: &[f32]) -> Vec<f32> {
        let width = mean.len();
        rows.iter().enumerate().map(|(i, &v)| (v as f32 - mean[i % width]) / std[i % width]).collect()
    }

    fn device(&self) -> &Device {
        &self.model.device
    }

    /// The latent of the observed `state`, by the world model's encoder: the state and, for
    /// a robot on a map, the occupancy patch around it.
    ///
    /// A solve rolls out from the same state a dozen times or more, and each candle call costs
    /// tens of microseconds (candle 0.11 counts the processor's cores, reading `/proc/cpuinfo`,
    /// on every matrix product), so the latest state's latent is kept until the map changes.
    fn start_latent(&self, state: &[f64]) -> Result<Vec<f32>, MpcError> {
        let mut cached = self.latest.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((seen, latent)) = cached.as_ref()
            && seen.as_slice() == state
        {
            return Ok(latent.clone());
        }
        let start = Tensor::from_vec(self.observe(state), (1, self.model.dims.n_obs()), self.device())?;
        let latent: Vec<f32> = self.model.encode(&start)?.flatten_all()?.to_vec1()?;
        *cached = Some((state.to_vec(), latent.clone()));
        Ok(latent)
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
        dt: f64,
    ) -> Result<Vec<f64>, MpcError> {
        let start = self.start_latent(state)?;
        let batch = Batch { start: &start, actions, action_in: &self.action_in, state_out: &self.state_out, first_row: state, samples, steps };
        let mut rows = self.kernel.run(&batch);
        if let Some(kinematics) = self.kinematics {
            let ns = self.model.dims.n_states;
            rows.par_chunks_mut((steps + 1) * ns).for_each(|sample| kinematics.integrate(sample, ns, dt));
        }
        Ok(rows)
    }

    fn action_gradient(&self, state: &[f64], actions: &[f64], dt: f64, grad_states: &[f64]) -> Option<Result<Vec<f64>, MpcError>> {
        let start = match self.start_latent(state) {
            Ok(start) => start,
            Err(error) => return Some(Err(error)),
        };
        let Some(kinematics) = self.kinematics else {
            return Some(Ok(self.kernel.action_gradient(&start, actions, &self.action_in, &self.state_out, grad_states)));
        };
        // The energy reads integrated poses: pass their gradient on to the velocities first.
        let ns = self.model.dims.n_states;
        let steps = actions.len() / self.model.dims.n_actions.max(1);
        let batch = Batch { start: &start, actions, action_in: &self.action_in, state_out: &self.state_out, first_row: state, samples: 1, steps };
        let mut rows = self.kernel.run(&batch);
        kinematics.integrate(&mut rows, ns, dt);
        let mut grad = grad_states.to_vec();
        kinematics.pull_back(&rows, &mut grad, ns, dt);
        Some(Ok(self.kernel.action_gradient(&start, actions, &self.action_in, &self.state_out, &grad)))
    }

    fn surprise(&self, state: &[f64], action: &[f64], next: &[f64]) -> Option<(f64, f64)> {
        let norm = &self.normalization;
        let tensor = |rows: Vec<f32>| Tensor::from_vec(rows.clone(), (1, rows.len()), self.device()).ok();
        let s = tensor(self.observe(state))?;
        let a = tensor(self.normalized(action, &norm.action_mean, &norm.action_std))?;
        let n = tensor(self.observe(next))?;
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
        self.reset_moving([state[0], state[1], state[2]], [state[3], state[4]]);
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
