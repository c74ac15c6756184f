//! Training a plan's world model end to end, and reusing a checkpoint that fits the plan.
//!
//! [`ensure_model`] is what commands that need a model call: it loads the checkpoint when
//! its plan hash ([`WorldTarget::model_hash`]) matches, and otherwise simulates episodes,
//! trains, evaluates and saves a new one. Next to each checkpoint, `CHECKPOINT.eval.txt`
//! contains the evaluation report in plain text.
//!
//! What happens to an existing checkpoint depends on [`Reuse`]:
//!
//! | checkpoint                                   | `IfFits` | `IfFitsElseOverwrite` | `Never` |
//! |----------------------------------------------|----------|-----------------------|---------|
//! | missing                                      | train    | train                 | train   |
//! | fits the plan                                | load     | load                  | train   |
//! | another plan's hash, or an older format      | train    | train                 | train   |
//! | unreadable, corrupt, truncated or non-finite | error    | train                 | train   |
//!
//! A file that cannot be read is an error by default because it may not be a Basin
//! checkpoint at all, and replacing it would lose it.

use std::path::{Path, PathBuf};
use std::time::Instant;

use basin_compiler::plan::Plan;
use candle_core::{Device, Tensor};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::checkpoint::{self, CheckpointError, Meta};
use super::data::{Dataset, Normalization};
use super::eval::{EvalTable, effective_rank, evaluate, surprise_threshold};
use super::net::WorldModel;
use super::patch::{Observer, PatchSampler};
use super::train::{Losses, Prepared, TrainConfig, train_prepared};
use super::world::{Overrides, WorldModelError, WorldTarget};
use crate::context::Grid;

/// Fraction of the episodes held out for evaluation.
const HELD_OUT: f64 = 0.2;

/// At most this many held-out states are encoded to measure the effective rank.
const RANK_STATES: usize = 4096;

/// Opens the CPU, or the first CUDA device when `cuda` is set.
///
/// # Errors
///
/// [`WorldModelError::NoCuda`] when Basin was built without the `cuda` feature, and a tensor
/// error when no CUDA device can be opened.
pub fn open_device(cuda: bool) -> Result<Device, WorldModelError> {
    if !cuda {
        return Ok(Device::Cpu);
    }
    if cfg!(feature = "cuda") {
        Ok(Device::new_cuda(0)?)
    } else {
        Err(WorldModelError::NoCuda)
    }
}

/// A trained model with its metadata and the measurements behind its report.
pub struct Trained {
    pub model: WorldModel,
    pub meta: Meta,
    /// Mean losses of the last epoch.
    pub losses: Losses,
    pub effective_rank: f64,
    pub train_episodes: usize,
    pub held_out_episodes: usize,
    /// Wall-clock seconds of the optimizer steps, without evaluation.
    pub train_seconds: f64,
    /// Training windows processed per second: optimizer steps × batch / `train_seconds`.
    pub samples_per_second: f64,
    /// Wall-clock seconds spent computing the observations (occupancy patches) of the
    /// training episodes, included in `train_seconds`.
    pub observe_seconds: f64,
}

impl Trained {
    /// Renders the evaluation report stored next to the checkpoint.
    pub fn report(&self, target: &WorldTarget) -> String {
        let cfg = &self.meta.config;
        let l = &self.losses;
        let mut out = format!(
            "world model `{}` of agent `{}`\n\
             plan hash {}\n\
             trained on {} episodes, evaluated on {} held-out episodes\n\
             {} epochs of {} steps, batch {}, windows of {} steps, latent {}, hidden {}, seed {}\n\
             last epoch losses: total {:.5}, prediction {:.5}, variance {:.5}, covariance {:.5}, probe {:.5}\n\n",
            target.world.name,
            target.agent.name,
            self.meta.plan_hash,
            self.train_episodes,
            self.held_out_episodes,
            cfg.epochs,
            cfg.steps_per_epoch,
            cfg.batch,
            cfg.horizon,
            cfg.latent,
            cfg.hidden,
            cfg.seed,
            l.total,
            l.prediction,
            l.variance,
            l.covariance,
            l.probe,
        );
        match &self.meta.dims.patch {
            Some(p) => out.push_str(&format!(
                "observations: state and a {n}×{n} occupancy patch of {r} m cells ({a} m ahead, {b} m behind)\n\n",
                n = p.cells,
                r = p.resolution,
                a = p.cells as f64 * p.resolution - p.behind,
                b = p.behind,
            )),
            None if self.meta.dims.angle.is_some() => out.push_str(
                "observations: state, with its angle read as sine and cosine and integrated from its rate\n\n",
            ),
            None => out.push_str("observations: state only\n\n"),
        }
        out.push_str(&render_evaluation(&self.meta));
        out.push_str(&format!(
            "effective rank of the latent on held-out states: {:.2} of {}\n",
            self.effective_rank, cfg.latent
        ));
        out.push_str(&format!(
            "training: {:.0} samples/s ({} windows in {:.1} s, of which {:.2} s computing observations)\n",
            self.samples_per_second,
            cfg.epochs * cfg.steps_per_epoch * cfg.batch,
            self.train_seconds,
            self.observe_seconds,
        ));
        out
    }
}

/// Renders the evaluation table and surprise threshold stored in a checkpoint's metadata.
pub fn render_evaluation(meta: &Meta) -> String {
    let mut out = String::from(
        "open-loop RMS error on held-out episodes, in training standard deviations:\n",
    );
    match &meta.evaluation {
        Some(table) => out.push_str(&table.render()),
        None => out.push_str("(no evaluation stored)\n"),
    }
    out.push_str(&format!(
        "\nsurprise threshold (99th percentile on held-out transitions): {:.6}\n",
        meta.surprise_threshold
    ));
    out
}

/// Splits `data` 80/20 by episode, fits the normalization on the training part, trains,
/// evaluates on the held-out part and fills the metadata with `plan_hash`. `patches` cuts
/// the occupancy patch of each observation, for agents on a map.
///
/// `progress` draws a bar with the losses of each epoch on standard error.
///
/// # Errors
///
/// Fails when there are fewer than two episodes, when no training episode is as long as
/// the training window, or when a tensor operation fails.
pub fn train_model(
    data: &Dataset,
    config: &TrainConfig,
    patches: Option<PatchSampler>,
    angle: Option<[usize; 2]>,
    plan_hash: String,
    device: &Device,
    progress: bool,
) -> Result<Trained, WorldModelError> {
    data.validate().map_err(WorldModelError::Data)?;
    if data.episodes.len() < 2 {
        return Err(WorldModelError::Data(format!(
            "{} episode(s) cannot be split into training and held-out episodes; try at least 5",
            data.episodes.len()
        )));
    }
    let (train_data, test_data) = data.split(HELD_OUT);
    let longest = (0..train_data.episodes.len())
        .map(|e| train_data.len(e))
        .max()
        .unwrap_or(0);
    if longest < config.horizon {
        return Err(WorldModelError::Data(format!(
            "the longest training episode has {longest} steps, shorter than the training window of {} steps",
            config.horizon
        )));
    }
    let observer = Observer::new(Normalization::fit(&train_data), patches).with_angle(angle);

    let bar = epoch_bar(config.epochs, progress);
    let started = Instant::now();
    let prepared = Prepared::new(&train_data, &observer);
    let observe_seconds = started.elapsed().as_secs_f64();
    let (model, losses) =
        train_prepared(&prepared, &observer, config, device, |_, l| {
            bar.set_message(format!(
                "total {:.4}  prediction {:.4}  variance {:.4}  covariance {:.4}  probe {:.4}",
                l.total, l.prediction, l.variance, l.covariance, l.probe
            ));
            bar.inc(1);
        })?;
    let train_seconds = started.elapsed().as_secs_f64();
    bar.finish_and_clear();
    if !losses.total.is_finite() {
        return Err(WorldModelError::Data(format!(
            "training diverged: the last epoch's loss is {}; try fewer `epochs` or more episodes",
            losses.total
        )));
    }

    let table: EvalTable = evaluate(&model, &train_data, &test_data, &observer, device)?;
    let threshold = surprise_threshold(&model, &test_data, &observer, device)?;
    let rank = effective_rank(
        &model,
        &held_out_observations(&test_data, &observer, device)?,
    )?;
    let windows = (config.epochs * config.steps_per_epoch * config.batch) as f64;
    Ok(Trained {
        meta: Meta {
            plan_hash,
            dims: model.dims,
            normalization: observer.normalization,
            config: config.clone(),
            evaluation: Some(table),
            surprise_threshold: threshold,
        },
        model,
        losses,
        effective_rank: rank,
        train_episodes: train_data.episodes.len(),
        held_out_episodes: test_data.episodes.len(),
        train_seconds,
        samples_per_second: windows / train_seconds.max(1e-9),
        observe_seconds,
    })
}

fn epoch_bar(epochs: usize, visible: bool) -> ProgressBar {
    let target = if visible {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    };
    let bar = ProgressBar::with_draw_target(Some(epochs as u64), target);
    if let Ok(style) =
        ProgressStyle::with_template("{elapsed_precise} [{bar:30}] epoch {pos}/{len}  {msg}")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

/// Observations of held-out states, evenly thinned to at most [`RANK_STATES`] rows.
fn held_out_observations(
    data: &Dataset,
    observer: &Observer,
    device: &Device,
) -> Result<Tensor, WorldModelError> {
    let ns = data.n_states();
    let rows: Vec<&[f32]> = data
        .episodes
        .iter()
        .flat_map(|e| e.states.chunks(ns))
        .collect();
    let stride = rows.len().div_ceil(RANK_STATES).max(1);
    let picked: Vec<f32> = rows
        .iter()
        .step_by(stride)
        .flat_map(|row| row.iter().copied())
        .collect();
    let count = picked.len() / ns.max(1);
    let observations = observer.observe(&picked);
    Ok(Tensor::from_vec(
        observations,
        (count, observer.width()),
        device,
    )?)
}

/// Saves the checkpoint and writes `report` to [`eval_path`], both atomically.
pub fn save_with_report(
    path: &Path,
    trained: &Trained,
    report: &str,
) -> Result<(), WorldModelError> {
    checkpoint::save(path, &trained.model, &trained.meta)?;
    let report_path = eval_path(path);
    let write = |source| WorldModelError::Write {
        path: report_path.clone(),
        source,
    };
    let name = report_path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = report_path.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
    std::fs::write(&tmp, report).map_err(write)?;
    std::fs::rename(&tmp, &report_path).map_err(write)
}

/// Returns the path of the evaluation report of checkpoint `path`: `CHECKPOINT.eval.txt`.
pub fn eval_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_os_string();
    name.push(".eval.txt");
    PathBuf::from(name)
}

/// Policy for a checkpoint that already exists, as in the module documentation's table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reuse {
    /// Load a checkpoint that fits the plan; an unreadable one is an error.
    IfFits,
    /// Load a checkpoint that fits the plan; replace an unreadable one.
    IfFitsElseOverwrite,
    /// Train a new model and replace whatever is at the checkpoint path.
    Never,
}

/// Options of [`ensure_model`].
#[derive(Clone, Debug)]
pub struct EnsureOptions {
    /// Checkpoint path, [`WorldTarget::default_checkpoint`] when `None`.
    pub checkpoint: Option<PathBuf>,
    /// The learned world to train; the plan's first learned world when `None`.
    pub world: Option<String>,
    pub overrides: Overrides,
    /// Train on the episodes of this file (written by `basin simulate`) instead of
    /// simulating; their number replaces the `episodes` setting.
    pub data: Option<PathBuf>,
    /// Seed of the simulated episodes and of training.
    pub seed: u64,
    pub device: Device,
    pub reuse: Reuse,
    /// Draw progress bars on standard error.
    pub progress: bool,
}

impl Default for EnsureOptions {
    fn default() -> Self {
        EnsureOptions {
            checkpoint: None,
            world: None,
            overrides: Overrides::default(),
            data: None,
            seed: 0,
            device: Device::Cpu,
            reuse: Reuse::IfFits,
            progress: false,
        }
    }
}

/// Whether [`ensure_model`] loaded its model or trained it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    Loaded,
    Trained,
}

/// The result of [`ensure_model`].
pub struct EnsuredModel {
    pub model: WorldModel,
    pub meta: Meta,
    pub path: PathBuf,
    pub origin: Origin,
    /// The evaluation report: the new one after training, the stored one after loading.
    pub report: String,
    /// The map the model's occupancy patches are cut from, when its observations have one.
    pub grid: Option<Grid>,
}

/// The state of a checkpoint file relative to a plan hash.
enum Found {
    Missing,
    Fits,
    /// Written for another plan or by an older format; the reason is logged.
    Stale(String),
}

fn inspect(path: &Path, plan_hash: &str) -> Result<Found, CheckpointError> {
    match checkpoint::read_meta(path) {
        Ok(meta) if meta.plan_hash == plan_hash => Ok(Found::Fits),
        Ok(meta) => Ok(Found::Stale(format!(
            "it was trained for another plan (hash {})",
            meta.plan_hash
        ))),
        Err(CheckpointError::Io { source, .. })
            if source.kind() == std::io::ErrorKind::NotFound =>
        {
            Ok(Found::Missing)
        }
        Err(e @ CheckpointError::Format { .. }) => Ok(Found::Stale(e.to_string())),
        Err(e) => Err(e),
    }
}

/// Returns the world model of `plan`, loading the checkpoint when it fits the plan and
/// training (and saving) a new one otherwise, following the table in the module documentation.
/// `spec_dir` is the folder of the spec, which context files and the default checkpoint
/// path are relative to. A log line at `info` says whether the model was loaded or trained
/// and why.
///
/// # Errors
///
/// Fails when the plan has no learned world of an agent, the data file does not fit the
/// plan, simulation or training fails, or (with [`Reuse::IfFits`]) the checkpoint exists
/// but cannot be read; every error about a file names it.
pub fn ensure_model(
    plan: &Plan,
    spec_dir: &Path,
    options: &EnsureOptions,
) -> Result<EnsuredModel, WorldModelError> {
    let target = WorldTarget::select(plan, options.world.as_deref())?;

    // A data file is read first because its episode count is part of the plan hash.
    let data = match &options.data {
        Some(path) => Some(read_episodes(&target, path)?),
        None => None,
    };
    let overrides = Overrides {
        episodes: data
            .as_ref()
            .map(|d| d.episodes.len())
            .or(options.overrides.episodes),
        ..options.overrides
    };
    let mut settings = target.settings(overrides)?;
    settings.config.seed = options.seed;
    let plan_hash = target.model_hash(plan, &settings);
    let path = options
        .checkpoint
        .clone()
        .unwrap_or_else(|| target.default_checkpoint(plan, spec_dir));

    let why = match (options.reuse, inspect(&path, &plan_hash)) {
        (Reuse::Never, _) => "retraining was requested".to_string(),
        (_, Ok(Found::Missing)) => "no checkpoint exists".to_string(),
        (_, Ok(Found::Stale(reason))) => reason,
        (reuse, Ok(Found::Fits)) => match checkpoint::load(&path, &plan_hash, &options.device) {
            Ok((model, meta)) => {
                let grid = target.grid(Some(spec_dir))?;
                tracing::info!(path = %path.display(), "loaded world model checkpoint that fits the plan");
                let report = std::fs::read_to_string(eval_path(&path))
                    .unwrap_or_else(|_| render_evaluation(&meta));
                return Ok(EnsuredModel {
                    model,
                    meta,
                    path,
                    origin: Origin::Loaded,
                    report,
                    grid,
                });
            }
            Err(e) if reuse == Reuse::IfFitsElseOverwrite => format!("it is invalid: {e}"),
            Err(e) => return Err(e.into()),
        },
        (Reuse::IfFitsElseOverwrite, Err(e)) => format!("it is invalid: {e}"),
        (_, Err(e)) => return Err(e.into()),
    };
    tracing::info!(path = %path.display(), reason = %why, "training a new world model");

    let data = match data {
        Some(data) => data,
        None => target.simulate(
            plan,
            Some(spec_dir),
            settings.episodes,
            options.seed,
            options.progress,
        )?,
    };
    let grid = target.grid(Some(spec_dir))?;
    let patches = match (settings.patch, &grid) {
        (Some(spec), Some(grid)) => Some(PatchSampler::new(spec, grid)),
        _ => None,
    };
    let trained = train_model(
        &data,
        &settings.config,
        patches,
        settings.angle,
        plan_hash,
        &options.device,
        options.progress,
    )?;
    let report = trained.report(&target);
    save_with_report(&path, &trained, &report)?;
    tracing::info!(
        path = %path.display(),
        samples_per_second = trained.samples_per_second,
        "saved world model checkpoint"
    );
    Ok(EnsuredModel {
        model: trained.model,
        meta: trained.meta,
        path,
        origin: Origin::Trained,
        report,
        grid,
    })
}

/// Reads the episodes of a `basin simulate` file and checks that they fit `target`.
fn read_episodes(target: &WorldTarget, path: &Path) -> Result<Dataset, WorldModelError> {
    let (data, _) = crate::scenario::read_dataset(path)?;
    match data {
        crate::scenario::SimulatedData::Episodes(episodes) => target.dataset(&episodes, Some(path)),
        crate::scenario::SimulatedData::Designs(_) => Err(WorldModelError::DataMismatch {
            path: path.to_path_buf(),
            reason: "it holds load tests of designs, not episodes of an agent".into(),
        }),
    }
}
