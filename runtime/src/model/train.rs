//! Training: multi-step latent prediction against the stop-gradient target embedding, with
//! variance and covariance regularization against collapse and a supervised probe.
//!
//! For a batch of windows `o_t … o_{t+K}` with actions `a_t … a_{t+K−1}` (normalized):
//!
//! - prediction: `ẑ_0 = E(o_t)`, `ẑ_{k+1} = P(ẑ_k, a_{t+k})`, loss `mean_k ‖ẑ_k − sg(Ē(o_{t+k}))‖²`;
//! - variance: `mean_j max(0, γ − std_j(E(o_t)))` over latent dimensions `j`, with `γ = 1`
//!   (inputs are normalized to unit scale, so latents of unit scale need no extra gain);
//! - covariance: the sum of squared off-diagonal entries of the batch covariance of
//!   `E(o_t)`, divided by `L`;
//! - probe: `mean_k ‖D(ẑ_k) − o_{t+k}‖²`, so predicted latents decode to physical states.
//!
//! No negative pairs are used: the regularizers keep the embedding from collapsing.

use candle_core::{Device, Result, Tensor};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};

use super::data::{Dataset, Normalization};
use super::net::{Dims, WorldModel};

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
            epochs: 30,
            steps_per_epoch: 50,
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

/// Windows of `horizon + 1` normalized states and `horizon` normalized actions, as
/// `[K+1]` tensors of `[B, n_states]` and `[K]` tensors of `[B, n_actions]`.
pub fn sample_batch(
    data: &Dataset,
    norm: &Normalization,
    cfg: &TrainConfig,
    rng: &mut Rng,
    device: &Device,
) -> Result<(Vec<Tensor>, Vec<Tensor>)> {
    let (ns, na, k) = (data.n_states(), data.n_actions(), cfg.horizon);
    let usable: Vec<usize> = (0..data.episodes.len())
        .filter(|&e| data.len(e) >= k)
        .collect();
    let mut states = vec![Vec::with_capacity(cfg.batch * ns); k + 1];
    let mut actions = vec![Vec::with_capacity(cfg.batch * na); k];
    for _ in 0..cfg.batch {
        let e = usable[rng.below(usable.len())];
        let ep = &data.episodes[e];
        let t = rng.below(data.len(e) - k + 1);
        for i in 0..=k {
            states[i].extend(norm.state(&ep.states[(t + i) * ns..(t + i + 1) * ns]));
        }
        for i in 0..k {
            actions[i].extend(norm.action(&ep.actions[(t + i) * na..(t + i + 1) * na]));
        }
    }
    let s = states
        .into_iter()
        .map(|v| Tensor::from_vec(v, (cfg.batch, ns), device))
        .collect::<Result<Vec<_>>>()?;
    let a = actions
        .into_iter()
        .map(|v| Tensor::from_vec(v, (cfg.batch, na), device))
        .collect::<Result<Vec<_>>>()?;
    Ok((s, a))
}

fn mse(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    (a - b)?.sqr()?.mean_all()
}

/// Computes the losses of one batch, as tensors for backpropagation.
pub fn batch_losses(
    model: &WorldModel,
    states: &[Tensor],
    actions: &[Tensor],
    cfg: &TrainConfig,
) -> Result<(Tensor, Losses)> {
    let z0 = model.encode(&states[0])?;
    let mut z = z0.clone();
    let mut prediction = mse(&z, &model.encode_target(&states[0])?)?;
    let mut probe = mse(&model.probe(&z)?, &states[0])?;
    for (k, a) in actions.iter().enumerate() {
        z = model.predict(&z, a)?;
        prediction = (prediction + mse(&z, &model.encode_target(&states[k + 1])?)?)?;
        probe = (probe + mse(&model.probe(&z)?, &states[k + 1])?)?;
    }
    let steps = (actions.len() + 1) as f64;
    let prediction = (prediction / steps)?;
    let probe = (probe / steps)?;

    let (batch, latent) = z0.dims2()?;
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

/// Trains a model on `data`. `progress` is called after each epoch with the epoch index and
/// its mean losses.
pub fn train(
    data: &Dataset,
    norm: &Normalization,
    cfg: &TrainConfig,
    device: &Device,
    mut progress: impl FnMut(usize, &Losses),
) -> Result<(WorldModel, Losses)> {
    let dims = Dims {
        n_states: data.n_states(),
        n_actions: data.n_actions(),
        latent: cfg.latent,
        hidden: cfg.hidden,
    };
    let model = WorldModel::new(dims, device, cfg.seed)?;
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
    for epoch in 0..cfg.epochs {
        let mut sum = Losses::default();
        for _ in 0..cfg.steps_per_epoch {
            let (states, actions) = sample_batch(data, norm, cfg, &mut rng, device)?;
            let (loss, losses) = batch_losses(&model, &states, &actions, cfg)?;
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
