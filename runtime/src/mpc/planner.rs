//! Sampling planners over a batch of action sequences: MPPI and CEM, then optional gradient
//! refinement, warm-started from the previous solution shifted by one step.
//!
//! Samples are drawn around the current mean sequence and clamped to the action bounds, so
//! every sequence a planner scores or returns is within bounds. Sample 0 of every batch is
//! the mean itself, so an iteration never loses the warm start.

use std::time::{Duration, Instant};

use basin_compiler::energy::{Evaluation, Status};
use basin_compiler::plan::{Plan, SettingValue, TermKind};

use super::score::Scorer;
use super::{Dynamics, MpcError};
use crate::scenario::Rng;

/// `τ_p` of `spec/energy.md`: a condition's penalty `w · softplus_τp(−ρ)` equals
/// `w · τ_p · ln 2` at `ρ = 0`, so a larger energy means the condition is violated.
const PENALTY_TEMPERATURE: f64 = 0.01;
/// An iteration that lowers the best energy by less than this fraction counts as converged.
const CONVERGED_RELATIVE_CHANGE: f64 = 1e-3;
/// Finite-difference step of the refinement, as a fraction of an action's half range. It is
/// large because the physics scenarios compute in `f32`.
const DIFFERENCE_STEP: f64 = 1e-2;
/// Correlation of the sampling noise between consecutive steps.
const NOISE_CORRELATION: f64 = 0.9;
/// Samples draw their noise at these fractions of the spread, in turn: the wide ones explore,
/// the narrow ones refine a mean that is nearly right. A goal that is a small region of the
/// state space (arriving at rest at a point) is hopeless with wide noise alone, since almost
/// every wide perturbation of a sequence that arrives misses, and with narrow noise alone,
/// since the search never leaves the first local minimum.
const NOISE_SCALES: [f64; 6] = [1.0, 0.5, 0.25, 0.125, 0.0625, 0.03125];
/// Every this many samples, one is drawn around zero (clamped to the bounds) at the full
/// spread instead of around the mean, so a mean stuck in a poor local minimum, or pressed
/// against a bound, still sees different sequences.
const FREE_SAMPLE_EVERY: usize = 8;
/// MPPI temperature when the plan gives none, in energy units.
const DEFAULT_TEMPERATURE: f64 = 0.1;
/// Sampling noise when the plan gives none, as a fraction of each action's half range.
const DEFAULT_NOISE: f64 = 0.5;
/// A solve without a warm start (the first control step, or the step after a reset) runs
/// this many times the plan's iterations, since it starts from a sequence that knows
/// nothing of the problem; later steps start from the previous solution and need few.
const COLD_START_FACTOR: usize = 4;

/// The sampling method and its settings.
#[derive(Clone, Debug, PartialEq)]
pub enum Method {
    /// Model-predictive path integral: the mean becomes the average of the samples weighted
    /// by `exp(−(E − E_min) / temperature)`.
    Mppi { samples: usize, iterations: usize, temperature: f64 },
    /// Cross-entropy method: the mean and spread become those of the `elites` best samples.
    Cem { samples: usize, iterations: usize, elites: usize },
}

/// Planner settings, normally read from the plan's `solver:` stages.
#[derive(Clone, Debug, PartialEq)]
pub struct PlannerSettings {
    pub method: Method,
    /// Gradient refinement steps after sampling (0 for none).
    pub gradient_steps: usize,
    /// Length of a refinement step as a fraction of each action's half range.
    pub learning_rate: f64,
    /// Standard deviation of the sampling noise as a fraction of each action's half range
    /// (of 1 for an unbounded action).
    pub noise: f64,
    /// Wall-clock budget of one solve; `None` for no limit.
    pub time_budget: Option<Duration>,
    pub seed: u64,
}

impl PlannerSettings {
    /// Reads the settings from the plan's solver stages. Without a sampling stage the
    /// planner runs MPPI with 256 samples and 4 iterations.
    ///
    /// # Errors
    ///
    /// Fails on an unknown stage or a setting that is not a positive number.
    pub fn from_plan(plan: &Plan) -> Result<PlannerSettings, MpcError> {
        let mut settings = PlannerSettings {
            method: Method::Mppi { samples: 256, iterations: 4, temperature: DEFAULT_TEMPERATURE },
            gradient_steps: 0,
            learning_rate: 0.05,
            noise: DEFAULT_NOISE,
            time_budget: None,
            seed: 0,
        };
        for stage in &plan.solver {
            let number = |name: &str, default: f64| -> Result<f64, MpcError> {
                let Some(setting) = stage.settings.iter().find(|s| s.name == name) else {
                    return Ok(default);
                };
                match &setting.value {
                    SettingValue::Number(n) if n.0.is_finite() && n.0 > 0.0 => Ok(n.0),
                    SettingValue::Number(n) => Err(MpcError::InvalidSetting {
                        stage: stage.name.clone(),
                        setting: name.to_string(),
                        value: n.0,
                        reason: "expected a positive number".into(),
                    }),
                    SettingValue::Word(w) => Err(MpcError::InvalidSetting {
                        stage: stage.name.clone(),
                        setting: format!("{name} ({w})"),
                        value: f64::NAN,
                        reason: "expected a number".into(),
                    }),
                }
            };
            match stage.name.as_str() {
                "mppi" => {
                    settings.method = Method::Mppi {
                        samples: number("samples", 256.0)? as usize,
                        iterations: number("iterations", 4.0)? as usize,
                        temperature: number("temperature", DEFAULT_TEMPERATURE)?,
                    };
                    settings.noise = number("noise", DEFAULT_NOISE)?;
                }
                "cem" => {
                    let samples = number("samples", 256.0)? as usize;
                    settings.method = Method::Cem {
                        samples,
                        iterations: number("iterations", 4.0)? as usize,
                        elites: (number("elites", (samples / 8).max(1) as f64)? as usize).min(samples),
                    }
                }
                "gradient" => {
                    settings.gradient_steps = number("steps", 10.0)? as usize;
                    settings.learning_rate = number("learning_rate", settings.learning_rate)?;
                }
                other => return Err(MpcError::UnknownSolver(other.to_string())),
            }
        }
        Ok(settings)
    }

    /// Replaces the sample and iteration counts where given, for quick runs.
    pub fn with_budget(mut self, samples: Option<usize>, iterations: Option<usize>) -> PlannerSettings {
        match &mut self.method {
            Method::Mppi { samples: s, iterations: i, .. } => {
                *s = samples.unwrap_or(*s).max(1);
                *i = iterations.unwrap_or(*i).max(1);
            }
            Method::Cem { samples: s, iterations: i, elites } => {
                *s = samples.unwrap_or(*s).max(1);
                *i = iterations.unwrap_or(*i).max(1);
                *elites = (*elites).clamp(1, *s);
            }
        }
        self
    }

    pub fn samples(&self) -> usize {
        match self.method {
            Method::Mppi { samples, .. } | Method::Cem { samples, .. } => samples,
        }
    }
}

/// What the closed loop applies when no sample has a finite energy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Fallback {
    /// The previous step's solution shifted by one step, whose energy was finite.
    ShiftedPlan,
    /// Every action at zero (clamped to its bounds).
    SafeStop,
}

/// How a solve ended.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum SolverStatus {
    /// The best energy changed by less than 0.1% in the last iteration.
    Converged,
    /// The iterations ran out while the energy was still falling.
    IterationLimit,
    /// The wall-clock budget ran out before the iterations did.
    TimeBudgetExceeded,
    /// No sample had a finite energy.
    NonFiniteEnergy { fallback: Fallback },
    /// The hard term `term` was violated by every sample of the last iteration.
    Infeasible { term: String },
}

impl std::fmt::Display for SolverStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SolverStatus::Converged => write!(f, "converged"),
            SolverStatus::IterationLimit => write!(f, "iteration limit"),
            SolverStatus::TimeBudgetExceeded => write!(f, "time budget exceeded"),
            SolverStatus::NonFiniteEnergy { fallback: Fallback::ShiftedPlan } => write!(f, "non-finite energy, applied the previous shifted plan"),
            SolverStatus::NonFiniteEnergy { fallback: Fallback::SafeStop } => write!(f, "non-finite energy, applied a safe stop"),
            SolverStatus::Infeasible { term } => write!(f, "infeasible: `{term}` violated by every sample"),
        }
    }
}

/// The planned trajectory of one solve.
#[derive(Clone, Debug)]
pub struct Solution {
    /// `H × n_actions`, within bounds and finite.
    pub actions: Vec<f64>,
    /// `(H + 1) × n_states` as the dynamics predict them.
    pub states: Vec<f64>,
    pub evaluation: Evaluation,
    pub status: SolverStatus,
    /// Sampling iterations run.
    pub iterations: usize,
    pub elapsed: Duration,
}

/// A sampling planner with its warm start.
pub struct Planner {
    pub settings: PlannerSettings,
    steps: usize,
    dt: f64,
    n_actions: usize,
    /// Per action column: lower and upper bound (infinite where the plan has none).
    bounds: Vec<(f64, f64)>,
    /// Per action column: the noise's standard deviation at the start of a solve.
    spread: Vec<f64>,
    mean: Vec<f64>,
    rng: Rng,
    /// Hard condition terms: index and the energy above which the condition is violated.
    hard_terms: Vec<(usize, f64)>,
    /// Whether the mean holds a previous solution, so a solve starts warm.
    warm: bool,
}

impl Planner {
    /// # Errors
    ///
    /// Fails when the plan has no horizon or no agent.
    pub fn new(plan: &Plan, settings: PlannerSettings) -> Result<Planner, MpcError> {
        let horizon = plan.horizon.as_ref().ok_or(MpcError::NoHorizon)?;
        if plan.agents.is_empty() {
            return Err(MpcError::NoAgent);
        }
        let bounds: Vec<(f64, f64)> = plan
            .agents
            .iter()
            .flat_map(|a| &a.actions)
            .map(|c| (c.lower.map_or(f64::NEG_INFINITY, |v| v.0), c.upper.map_or(f64::INFINITY, |v| v.0)))
            .collect();
        let spread = bounds
            .iter()
            .map(|&(lower, upper)| settings.noise * if lower.is_finite() && upper.is_finite() { (upper - lower) / 2.0 } else { 1.0 })
            .collect();
        let hard_terms = plan
            .terms
            .iter()
            .enumerate()
            .filter(|(_, t)| t.hard && matches!(t.kind, TermKind::Condition | TermKind::Deadline))
            .map(|(i, t)| (i, t.weight.0 * PENALTY_TEMPERATURE * std::f64::consts::LN_2))
            .collect();
        let steps = horizon.steps as usize;
        let rng = Rng::new(settings.seed);
        let mut planner = Planner { settings, steps, dt: horizon.step.0, n_actions: bounds.len(), bounds, spread, mean: Vec::new(), rng, hard_terms, warm: false };
        planner.reset();
        Ok(planner)
    }

    /// Forgets the warm start: the mean sequence becomes zero, clamped to the bounds.
    pub fn reset(&mut self) {
        self.mean = self.safe_stop();
        self.warm = false;
    }

    /// Shifts the current mean by one step, repeating the last row, for the next control step.
    pub fn shift(&mut self) {
        let na = self.n_actions;
        if self.steps > 1 {
            self.mean.copy_within(na.., 0);
        }
    }

    fn safe_stop(&self) -> Vec<f64> {
        (0..self.steps * self.n_actions).map(|i| self.clamp(i % self.n_actions, 0.0)).collect()
    }

    fn clamp(&self, column: usize, value: f64) -> f64 {
        let (lower, upper) = self.bounds[column];
        value.clamp(lower, upper)
    }

    /// The current mean sequence, `H × n_actions`.
    pub fn mean(&self) -> &[f64] {
        &self.mean
    }

    /// Solves from `state` at run time `time0` and keeps the solution as the next warm start
    /// (call [`Planner::shift`] before the next step's solve).
    ///
    /// # Errors
    ///
    /// Fails only when the dynamics fail.
    pub fn solve(&mut self, scorer: &Scorer, dynamics: &dyn Dynamics, state: &[f64], time0: f64) -> Result<Solution, MpcError> {
        let start = Instant::now();
        let (h, na) = (self.steps, self.n_actions);
        let samples = self.settings.samples().max(1);
        let iterations = match self.settings.method {
            Method::Mppi { iterations, .. } | Method::Cem { iterations, .. } => iterations.max(1),
        } * if self.warm { 1 } else { COLD_START_FACTOR };
        let warm_start = self.mean.clone();
        let mut spread: Vec<f64> = (0..h * na).map(|i| self.spread[i % na]).collect();
        let mut best: Option<(Vec<f64>, Vec<f64>, Evaluation)> = None;
        let mut previous_best = f64::INFINITY;
        let mut converged = false;
        let mut out_of_time = false;
        let mut every_sample_violates: Option<usize> = None;
        let mut done = 0;
        for _ in 0..iterations {
            if self.settings.time_budget.is_some_and(|budget| start.elapsed() > budget) {
                out_of_time = true;
                break;
            }
            let actions = self.sample(samples, &spread);
            let states = dynamics.rollout(state, &actions, samples, h, self.dt)?;
            let evaluations = scorer.evaluate_batch(time0, &states, &actions, samples);
            done += 1;
            let energies: Vec<f64> = evaluations.iter().map(|e| if e.status == Status::Finite { e.total } else { f64::INFINITY }).collect();
            every_sample_violates = self.hard_terms.iter().find(|&&(term, limit)| evaluations.iter().all(|e| !(e.terms[term] <= limit))).map(|&(term, _)| term);

            let Some((index, &lowest)) = energies.iter().enumerate().filter(|(_, e)| e.is_finite()).min_by(|a, b| a.1.total_cmp(b.1)) else {
                continue;
            };
            if best.as_ref().is_none_or(|(_, _, b)| lowest < b.total) {
                let stride = (h + 1) * scorer.shape.n_states;
                best = Some((actions[index * h * na..(index + 1) * h * na].to_vec(), states[index * stride..(index + 1) * stride].to_vec(), evaluations[index].clone()));
            }
            self.update(&actions, &energies, &mut spread);
            let best_total = best.as_ref().map_or(f64::INFINITY, |b| b.2.total);
            converged = previous_best.is_finite() && (previous_best - best_total).abs() <= CONVERGED_RELATIVE_CHANGE * previous_best.abs().max(1e-9);
            previous_best = best_total;
        }

        // The updated mean may beat every sample.
        if best.is_some() {
            let states = dynamics.rollout(state, &self.mean, 1, h, self.dt)?;
            let evaluation = scorer.evaluate(time0, &states, &self.mean);
            if evaluation.status == Status::Finite && best.as_ref().is_some_and(|b| evaluation.total < b.2.total) {
                best = Some((self.mean.clone(), states, evaluation));
            }
        }

        let Some((mut actions, mut states, mut evaluation)) = best else {
            return self.fall_back(scorer, dynamics, state, time0, warm_start, done, start);
        };
        self.refine(scorer, dynamics, state, time0, &mut actions, &mut states, &mut evaluation)?;
        self.mean = actions.clone();
        self.warm = true;

        let status = if let Some(term) = every_sample_violates.filter(|&t| !(evaluation.terms[t] <= self.hard_terms.iter().find(|h| h.0 == t).map_or(0.0, |h| h.1))) {
            SolverStatus::Infeasible { term: scorer.plan.terms[term].name.clone() }
        } else if out_of_time {
            SolverStatus::TimeBudgetExceeded
        } else if converged {
            SolverStatus::Converged
        } else {
            SolverStatus::IterationLimit
        };
        Ok(Solution { actions, states, evaluation, status, iterations: done, elapsed: start.elapsed() })
    }

    /// Draws `samples` sequences around the mean; sample 0 is the mean itself.
    ///
    /// The noise of each action is correlated over time (a first-order autoregressive
    /// process with coefficient [`NOISE_CORRELATION`] and unit variance), so samples explore
    /// sustained pushes, not only jitter that averages out over a few steps. Its scale is the
    /// one of [`NOISE_SCALES`] that the sample's index picks; every [`FREE_SAMPLE_EVERY`]th
    /// sample is drawn around zero at the full spread instead.
    fn sample(&mut self, samples: usize, spread: &[f64]) -> Vec<f64> {
        let (len, na) = (self.steps * self.n_actions, self.n_actions);
        let innovation = (1.0 - NOISE_CORRELATION * NOISE_CORRELATION).sqrt();
        let mut actions = Vec::with_capacity(samples * len);
        actions.extend_from_slice(&self.mean);
        let mut noise = vec![0.0; na];
        let zero = self.safe_stop();
        for sample in 1..samples {
            let free = sample % FREE_SAMPLE_EVERY == 0;
            let (center, scale) = if free { (&zero, 1.0) } else { (&self.mean, NOISE_SCALES[(sample - 1) % NOISE_SCALES.len()]) };
            for n in noise.iter_mut() {
                *n = self.rng.normal();
            }
            for i in 0..len {
                let column = i % na;
                if i >= na {
                    noise[column] = NOISE_CORRELATION * noise[column] + innovation * self.rng.normal();
                }
                actions.push(self.clamp(column, center[i] + scale * spread[i] * noise[column]));
            }
        }
        actions
    }

    /// Moves the mean (and for CEM the spread) toward the low-energy samples.
    fn update(&mut self, actions: &[f64], energies: &[f64], spread: &mut [f64]) {
        let len = self.steps * self.n_actions;
        let lowest = energies.iter().copied().fold(f64::INFINITY, f64::min);
        match self.settings.method {
            Method::Mppi { temperature, .. } => {
                let weights: Vec<f64> = energies.iter().map(|&e| if e.is_finite() { (-(e - lowest) / temperature).exp() } else { 0.0 }).collect();
                let total: f64 = weights.iter().sum();
                let mut mean = vec![0.0; len];
                for (sample, &w) in weights.iter().enumerate().filter(|(_, w)| **w > 0.0) {
                    for (m, &a) in mean.iter_mut().zip(&actions[sample * len..(sample + 1) * len]) {
                        *m += w / total * a;
                    }
                }
                self.mean = mean;
            }
            Method::Cem { elites, .. } => {
                let mut order: Vec<usize> = (0..energies.len()).filter(|&i| energies[i].is_finite()).collect();
                order.sort_by(|&a, &b| energies[a].total_cmp(&energies[b]));
                order.truncate(elites.max(1));
                let n = order.len() as f64;
                for i in 0..len {
                    let mean = order.iter().map(|&s| actions[s * len + i]).sum::<f64>() / n;
                    let variance = order.iter().map(|&s| (actions[s * len + i] - mean).powi(2)).sum::<f64>() / n;
                    self.mean[i] = mean;
                    // A floor keeps the search alive after the elites agree.
                    spread[i] = variance.sqrt().max(1e-3 * self.spread[i % self.n_actions]);
                }
            }
        }
    }

    /// Gradient refinement of the action sequence, accepting a step only when the rolled-out
    /// energy falls, and halving the step otherwise. Each step moves every action against
    /// the gradient by up to `learning_rate` of its half range, scaled by the largest entry.
    ///
    /// The gradient is the total derivative of the energy through the dynamics. Where the
    /// dynamics have a reverse pass ([`Dynamics::action_gradient`]), it is one reverse sweep:
    /// the JIT's gradient with respect to the states, carried back through the rollout, plus
    /// its gradient with respect to the actions. Otherwise it comes from forward differences
    /// ([`Planner::difference_gradient`]).
    #[allow(clippy::too_many_arguments)]
    fn refine(&self, scorer: &Scorer, dynamics: &dyn Dynamics, state: &[f64], time0: f64, actions: &mut Vec<f64>, states: &mut Vec<f64>, evaluation: &mut Evaluation) -> Result<(), MpcError> {
        let na = self.n_actions;
        let half_range: Vec<f64> = (0..na).map(|c| self.spread[c] / self.settings.noise).collect();
        let mut rate = self.settings.learning_rate;
        for _ in 0..self.settings.gradient_steps {
            let (energy, direct) = scorer.gradient(time0, states, actions);
            let gradient = match dynamics.action_gradient(state, actions, self.dt, &direct.states) {
                Some(through) if energy.status == Status::Finite => through?.iter().zip(&direct.actions).map(|(t, d)| t + d).collect(),
                Some(_) => break,
                None => self.difference_gradient(scorer, dynamics, state, time0, actions, evaluation, &half_range)?,
            };
            let largest = gradient.iter().fold(0.0f64, |m, g| m.max(g.abs()));
            if !largest.is_finite() || largest == 0.0 {
                break;
            }
            let candidate: Vec<f64> = actions
                .iter()
                .zip(&gradient)
                .enumerate()
                .map(|(i, (&a, &g))| self.clamp(i % na, a - rate * half_range[i % na] * g / largest))
                .collect();
            let rolled = dynamics.rollout(state, &candidate, 1, self.steps, self.dt)?;
            let scored = scorer.evaluate(time0, &rolled, &candidate);
            if scored.status == Status::Finite && scored.total < evaluation.total {
                *actions = candidate;
                *states = rolled;
                *evaluation = scored;
            } else {
                rate /= 2.0;
            }
        }
        Ok(())
    }

    /// The gradient of the energy with respect to the actions by forward differences: one
    /// batched rollout of `H · n_actions` sequences, each with one action moved by
    /// [`DIFFERENCE_STEP`] of its half range (away from a bound it touches).
    #[allow(clippy::too_many_arguments)]
    fn difference_gradient(&self, scorer: &Scorer, dynamics: &dyn Dynamics, state: &[f64], time0: f64, actions: &[f64], evaluation: &Evaluation, half_range: &[f64]) -> Result<Vec<f64>, MpcError> {
        let (len, na) = (self.steps * self.n_actions, self.n_actions);
        let mut batch = Vec::with_capacity(len * len);
        let mut deltas = Vec::with_capacity(len);
        for i in 0..len {
            let column = i % na;
            let mut delta = DIFFERENCE_STEP * half_range[column];
            if actions[i] + delta > self.bounds[column].1 {
                delta = -delta;
            }
            let start = batch.len();
            batch.extend_from_slice(actions);
            batch[start + i] += delta;
            deltas.push(delta);
        }
        let rolled = dynamics.rollout(state, &batch, len, self.steps, self.dt)?;
        let scored = scorer.evaluate_batch(time0, &rolled, &batch, len);
        Ok(scored.iter().zip(&deltas).map(|(e, d)| (e.total - evaluation.total) / d).collect())
    }

    /// Returns the warm start when its energy is finite, or a safe stop.
    #[allow(clippy::too_many_arguments)]
    fn fall_back(&mut self, scorer: &Scorer, dynamics: &dyn Dynamics, state: &[f64], time0: f64, warm_start: Vec<f64>, done: usize, start: Instant) -> Result<Solution, MpcError> {
        let shifted_ok = warm_start.iter().all(|v| v.is_finite());
        let (actions, fallback) = if shifted_ok {
            let states = dynamics.rollout(state, &warm_start, 1, self.steps, self.dt)?;
            if scorer.evaluate(time0, &states, &warm_start).status == Status::Finite { (warm_start, Fallback::ShiftedPlan) } else { (self.safe_stop(), Fallback::SafeStop) }
        } else {
            (self.safe_stop(), Fallback::SafeStop)
        };
        let states = dynamics.rollout(state, &actions, 1, self.steps, self.dt)?;
        let evaluation = scorer.evaluate(time0, &states, &actions);
        self.mean = actions.clone();
        Ok(Solution { actions, states, evaluation, status: SolverStatus::NonFiniteEnergy { fallback }, iterations: done, elapsed: start.elapsed() })
    }
}
