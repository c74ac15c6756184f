//! The learned world model: a joint-embedding predictive architecture trained on simulated
//! episodes, and what the planners need from it.
//!
//! An encoder maps an observation (the normalized state, and for a mobile robot on a map an
//! egocentric occupancy patch) to a latent vector, a predictor
//! maps a latent and an action to the next latent, and a probe reads the physical state
//! back out of a latent. The predictor is trained to match a slowly moving target encoder
//! with variance and covariance regularization instead of negative pairs.

mod cache;
mod checkpoint;
mod data;
mod eval;
mod kinematics;
mod net;
mod patch;
mod rollout;
mod surrogate;
mod train;
mod world;

pub use cache::{
    EnsureOptions, EnsuredModel, Origin, Reuse, Trained, ensure_model, eval_path, open_device,
    render_evaluation, save_with_report, train_model,
};
pub use checkpoint::{CheckpointError, FORMAT, Meta, load, read_meta, save};
pub use data::{Dataset, Episode, Normalization};
pub use eval::{
    EvalTable, HORIZONS, LinearModel, effective_rank, evaluate, surprise, surprise_threshold,
};
pub use kinematics::Kinematics;
pub use net::{Dims, LATENT_BOUND, WorldModel};
pub use patch::{Observer, PatchSampler, PatchSpec};
pub use rollout::{Affine, Batch, CHUNK, Isa, Rollout};
pub use surrogate::{
    Surrogate, SurrogateError, SurrogateMeta, SurrogateOrigin, SurrogateSettings, SurrogateTarget,
    ensure_surrogate, outcome_values,
};
pub use train::{
    Losses, Prepared, Rng, TrainConfig, batch_losses, sample_batch, train, train_prepared,
};
pub use world::{
    DEFAULT_EPISODES, Overrides, WorldModelError, WorldSettings, WorldTarget, min_episode_steps,
};
