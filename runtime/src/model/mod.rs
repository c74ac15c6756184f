//! The learned world model: a joint-embedding predictive architecture trained on simulated
//! episodes, and what the planners need from it.
//!
//! An encoder maps an observation (the normalized state) to a latent vector, a predictor
//! maps a latent and an action to the next latent, and a probe reads the physical state
//! back out of a latent. The predictor is trained to match a slowly moving target encoder
//! with variance and covariance regularization instead of negative pairs.

mod checkpoint;
mod data;
mod eval;
mod net;
mod train;

pub use checkpoint::{CheckpointError, FORMAT, Meta, load, read_meta, save};
pub use data::{Dataset, Episode, Normalization};
pub use eval::{
    EvalTable, HORIZONS, LinearModel, effective_rank, evaluate, surprise, surprise_threshold,
};
pub use net::{Dims, WorldModel};
pub use train::{Losses, Rng, TrainConfig, batch_losses, sample_batch, train};
