//! Training: multi-step latent prediction against the stop-gradient target embedding, with
//! variance and covariance regularization against collapse and a supervised probe.
//!
//! For a batch of windows of observations `o_t … o_{t+K}` (normalized state and occupancy
//! patch, `super::patch`) with normalized actions `a_t … a_{t+K−1}`:
//!
//! - prediction: `ẑ_0 = E(o_t)`, `ẑ_{k+1} = P(ẑ_k, a_{t+k})`, loss `mean_k ‖ẑ_k − sg(Ē(o_{t+k}))‖²`;
//! - variance: `mean_j max(0, γ − std_j(E(o_t)))` over latent dimensions `j`, with `γ = 0.5`
//!   (inputs are normalized to unit scale, so latents of unit scale need no extra gain);
//! - covariance: the sum of squared off-diagonal entries of the batch covariance of
//!   `E(o_t)`, divided by `L`;
//! - both regularizers treat the first `n_states` latent entries as constants (stop
//!   gradient): those entries start as the normalized state and the probe keeps them there,
//!   so they cannot collapse, and letting the regularizers decorrelate them would bend the
//!   linear part (on the double integrator it cost a factor of 30 in 40-step error);
//! - probe: `mean_k ‖D(ẑ_k) − s_{t+k}‖²` with `s` the normalized state part of `o`, so
//!   predicted latents decode to physical states.
//!
//! No negative pairs are used: the regularizers keep the embedding from collapsing.
//!
//! The networks start from the least-squares linear model of the training transitions
//! ([`WorldModel::start_from_linear`]): their linear skips reproduce it exactly, so the
//! perceptrons only learn the part of the dynamics a linear model misses, and linear
//! dynamics (the double integrator) stay at least-squares accuracy instead of being
//! approached from a random start.
//!
//! The learning rate follows a cosine from its configured value down to a tenth of it over
//! the run, so the last epochs settle instead of jittering at the full step size.
//! Observations are computed once for every state of the training episodes before the
//! first step ([`Prepared`]), so cutting occupancy patches costs one parallel pass over
//! the data, not one per batch.

use candle_core::{Device, Result, Tensor};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};

use super::data::Dataset;
use super::eval::LinearModel;
use super::net::{Dims, WorldModel};
use super::patch::Observer;

/// The standard deviation each latent dimension is pushed to reach.
const VARIANCE_TARGET: f64 = 0.5;

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TrainConfig {
    pub latent: usize,
    pub hidden: usize,
    pub epochs: usize,
    /// Optimizer steps per epoch.
    pub steps_per_epoch: usize,
    pub batch: usize,
    /// Prediction steps per window (`K`).
    pub horizon: usize,
    pub learning_rate: f64,
    pub ema_decay: f64,
    pub variance_weight: f64,
    pub covariance_weight: f64,
    pub probe_weight: f64,
    pub seed: u64,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            latent: 32,
            hidden: 128,
            epochs: 20,
            steps_per_epoch: 40,
            batch: 128,
            horizon: 16,
            learning_rate: 1e-3,
            ema_decay: 0.99,
            variance_weight: 0.5,
            covariance_weight: 0.5,
            probe_weight: 10.0,
            seed: 0,
        }
    }
}

/// Losses of the last epoch, averaged over its steps.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Losses {
    pub prediction: f64,
    pub variance: f64,
    pub covariance: f64,
    pub probe: f64,
    pub total: f64,
}

/// A small deterministic generator (SplitMix64), so training is reproducible per seed.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x9e37_79b9_7f4a_7c15)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }
}

/// Episodes as training reads them: the observation of every state and the normalized
/// actions, per episode.
pub struct Prepared {
    /// Per episode, `(len + 1) × n_obs` values.
    observations: Vec<Vec<f32>>,
    /// Per episode, `len × n_actions` values.
    actions: Vec<Vec<f32>>,
    n_obs: usize,
    n_states: usize,
    n_actions: usize,
}

impl Prepared {
    pub fn new(data: &Dataset, observer: &Observer) -> Prepared {
        let norm = &observer.normalization;
        let na = data.n_actions();
        Prepared {
            observations: data
                .episodes
                .iter()
                .map(|e| observer.observe(&e.states))
                .collect(),
            actions: data
                .episodes
                .iter()
                .map(|e| {
                    e.actions
                        .chunks(na.max(1))
                        .flat_map(|a| norm.action(a))
                        .collect()
                })
                .collect(),
            n_obs: observer.width(),
            n_states: observer.n_states(),
            n_actions: na,
        }
    }

    /// Fits the least-squares linear model the networks start from
    /// ([`WorldModel::start_from_linear`]) to every transition, in normalized units.
    pub fn linear_fit(&self) -> LinearModel {
        let (no, ns, na) = (self.n_obs, self.n_states, self.n_actions);
        let rows = (0..self.observations.len()).flat_map(|e| {
            (0..self.len(e)).map(move |t| {
                let o = &self.observations[e];
                (
                    o[t * no..t * no + ns].to_vec(),
                    self.actions[e][t * na..(t + 1) * na].to_vec(),
                    o[(t + 1) * no..(t + 1) * no + ns].to_vec(),
                )
            })
        });
        LinearModel::fit_rows(rows, ns, na)
    }

    /// Steps in episode `e`.
    fn len(&self, e: usize) -> usize {
        self.actions[e].len() / self.n_actions.max(1)
    }
}

/// Draws a batch of `B` windows of `horizon + 1` observations and `horizon` normalized
/// actions. Returns the observations `[(K+1)·B, n_obs]` and the actions `[K·B, n_actions]`,
/// both step-major: rows `k·B .. (k+1)·B` belong to step `k` of every window, so one network
/// call covers every step.
pub fn sample_batch(
    data: &Prepared,
    cfg: &TrainConfig,
    rng: &mut Rng,
    device: &Device,
) -> Result<(Tensor, Tensor)> {
    let (no, na, k, b) = (data.n_obs, data.n_actions, cfg.horizon, cfg.batch);
    let usable: Vec<usize> = (0..data.observations.len())
        .filter(|&e| data.len(e) >= k)
        .collect();
    let mut observations = vec![0f32; (k + 1) * b * no];
    let mut actions = vec![0f32; k * b * na];
    for row in 0..b {
        let e = usable[rng.below(usable.len())];
        let t = rng.below(data.len(e) - k + 1);
        for i in 0..=k {
            observations[(i * b + row) * no..][..no]
                .copy_from_slice(&data.observations[e][(t + i) * no..(t + i + 1) * no]);
        }
        for i in 0..k {
            actions[(i * b + row) * na..][..na]
                .copy_from_slice(&data.actions[e][(t + i) * na..(t + i + 1) * na]);
        }
    }
    Ok((
        Tensor::from_vec(observations, ((k + 1) * b, no), device)?,
        Tensor::from_vec(actions, (k * b, na), device)?,
    ))
}

fn mse(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    (a - b)?.sqr()?.mean_all()
}

/// Computes the losses of one batch from [`sample_batch`], as tensors for backpropagation.
/// The target encoder and the probe run once over every step of the batch.
pub fn batch_losses(
    model: &WorldModel,
    observations: &Tensor,
    actions: &Tensor,
    cfg: &TrainConfig,
) -> Result<(Tensor, Losses)> {
    let ns = model.dims.n_states;
    let (b, k) = (cfg.batch, cfg.horizon);
    let z0 = model.encode(&observations.narrow(0, 0, b)?)?;
    let mut latents = Vec::with_capacity(k + 1);
    latents.push(z0.clone());
    for step in 0..k {
        let z = model.predict(&latents[step], &actions.narrow(0, step * b, b)?)?;
        latents.push(z);
    }
    let latents = Tensor::cat(&latents, 0)?;
    let prediction = mse(&latents, &model.encode_target(observations)?)?;
    let probe = mse(&model.probe(&latents)?, &observations.narrow(1, 0, ns)?)?;

    // The state entries of the latent are tied to the state by the probe and the linear
    // start, so the regularizers see them as constants and move only the other entries.
    let (batch, latent) = z0.dims2()?;
    let z0 = if latent > ns {
        Tensor::cat(
            &[
                z0.narrow(1, 0, ns)?.detach(),
                z0.narrow(1, ns, latent - ns)?,
            ],
            1,
        )?
    } else {
        z0.detach()
    };
    let centred = z0.broadcast_sub(&z0.mean_keepdim(0)?)?;
    let var = (centred.sqr()?.sum_keepdim(0)? / (batch as f64 - 1.0).max(1.0))?;
    let std = (var + 1e-4)?.sqrt()?;
    let variance = (std.affine(-1.0, VARIANCE_TARGET)?.relu()?).mean_all()?;
    let cov = (centred.t()?.matmul(&centred)? / (batch as f64 - 1.0).max(1.0))?;
    let diag_sq = cov.sqr()?.sum_all()?;
    let eye = Tensor::eye(latent, candle_core::DType::F32, z0.device())?;
    let diag = (cov * eye)?.sqr()?.sum_all()?;
    let covariance = ((diag_sq - diag)? / latent as f64)?;

    let total = (prediction.clone()
        + (variance.clone() * cfg.variance_weight)?
        + (covariance.clone() * cfg.covariance_weight)?
        + (probe.clone() * cfg.probe_weight)?)?;
    let scalar = |t: &Tensor| -> Result<f64> { Ok(t.to_scalar::<f32>()? as f64) };
    let losses = Losses {
        prediction: scalar(&prediction)?,
        variance: scalar(&variance)?,
        covariance: scalar(&covariance)?,
        probe: scalar(&probe)?,
        total: scalar(&total)?,
    };
    Ok((total, losses))
}

/// Trains a model on `data`, whose states `observer` turns into observations. `progress` is
/// called after each epoch with the epoch index and its mean losses.
pub fn train(
    data: &Dataset,
    observer: &Observer,
    cfg: &TrainConfig,
    device: &Device,
    progress: impl FnMut(usize, &Losses),
) -> Result<(WorldModel, Losses)> {
    let prepared = Prepared::new(data, observer);
    train_prepared(&prepared, observer, cfg, device, progress)
}

/// Trains a model on episodes prepared by `observer`, whose patch and angle the model's
/// dimensions record.
pub fn train_prepared(
    prepared: &Prepared,
    observer: &Observer,
    cfg: &TrainConfig,
    device: &Device,
    mut progress: impl FnMut(usize, &Losses),
) -> Result<(WorldModel, Losses)> {
    let dims = Dims {
        n_states: prepared.n_states,
        n_actions: prepared.n_actions,
        latent: cfg.latent,
        hidden: cfg.hidden,
        patch: observer.patch_spec(),
        angle: observer.angle,
    };
    let model = WorldModel::new(dims, device, cfg.seed)?;
    model.start_from_linear(&prepared.linear_fit())?;
    let mut opt = AdamW::new(
        model.vars.all_vars(),
        ParamsAdamW {
            lr: cfg.learning_rate,
            weight_decay: 1e-4,
            ..Default::default()
        },
    )?;
    let mut rng = Rng::new(cfg.seed);
    let mut last = Losses::default();
    let total_steps = (cfg.epochs * cfg.steps_per_epoch).max(1) as f64;
    for epoch in 0..cfg.epochs {
        let mut sum = Losses::default();
        for step in 0..cfg.steps_per_epoch {
            let done = (epoch * cfg.steps_per_epoch + step) as f64 / total_steps;
            let cosine = 0.5 * (1.0 + (std::f64::consts::PI * done).cos());
            opt.set_learning_rate(cfg.learning_rate * (0.1 + 0.9 * cosine));
            let (observations, actions) = sample_batch(prepared, cfg, &mut rng, device)?;
            let (loss, losses) = batch_losses(&model, &observations, &actions, cfg)?;
            opt.backward_step(&loss)?;
            model.update_target(cfg.ema_decay)?;
            sum.prediction += losses.prediction;
            sum.variance += losses.variance;
            sum.covariance += losses.covariance;
            sum.probe += losses.probe;
            sum.total += losses.total;
        }
        let n = cfg.steps_per_epoch.max(1) as f64;
        last = Losses {
            prediction: sum.prediction / n,
            variance: sum.variance / n,
            covariance: sum.covariance / n,
            probe: sum.probe / n,
            total: sum.total / n,
        };
        tracing::debug!(
            epoch,
            total = last.total,
            prediction = last.prediction,
            probe = last.probe,
            "training epoch"
        );
        progress(epoch, &last);
    }
    Ok((model, last))
}
