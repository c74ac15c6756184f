//! The plan side of a `learned` world block: the agent it learns, the training settings,
//! the hash that ties a checkpoint to the plan, and the dataset of that agent's episodes.
//!
//! The hash covers only what changes the learned dynamics, so editing a goal or a constraint
//! keeps a checkpoint valid: the agent's name, model path, state and action components
//! (units and bounds), every plan parameter of the agent (physical constants and the start
//! state, which some scenarios centre random starts on), the control step, the world block's name, kind and
//! `from` expression, its resolved training settings, and the name, loader, settings and
//! file hash of each context the world block names, and the occupancy patch the encoder
//! reads.
//!
//! A world whose agent has a periodic angle and its rate (a pendulum) learns it through the
//! angle's sine and cosine and integrates it in rollouts ([`WorldTarget::angle_columns`]).
//!
//! A world learns with an egocentric occupancy patch ([`PatchSpec::standard`]) when its
//! agent has `x`, `y` and `heading` states and the world block names an `image` or `map`
//! context: the first such context is the map the patch is cut from, in training and when
//! planning.

use std::path::{Path, PathBuf};

use basin_compiler::plan::{AgentPlan, Component, ContextPlan, Plan, SettingValue, WorldPlan};
use sha2::{Digest, Sha256};

use super::checkpoint::CheckpointError;
use super::data::{Dataset, Episode};
use super::eval::HORIZONS;
use super::patch::PatchSpec;
use super::train::TrainConfig;
use crate::context::Grid;
use crate::scenario::{
    Channel, Episodes, ScenarioError, SimulateOptions, SimulatedData, Start, load_grid, simulate,
};

/// Episodes simulated when neither the world block nor the caller gives a number.
pub const DEFAULT_EPISODES: usize = 100;

/// Version of the hashed description below; bump it when that description changes shape.
const HASH_SCHEME: u32 = 3;

/// Errors of training or loading a plan's world model.
#[derive(Debug, thiserror::Error)]
pub enum WorldModelError {
    #[error(
        "the plan has no `learned` world block; try adding `world dynamics = learned {{ from simulate(AGENT) }}`"
    )]
    NoLearnedWorld,
    #[error("the plan has no learned world named `{name}`; its learned worlds are {known}")]
    UnknownWorld { name: String, known: String },
    #[error(
        "world `{world}` learns from design `{design}`, but only world models of agents can be trained; design worlds are not supported yet"
    )]
    DesignWorld { world: String, design: String },
    #[error(
        "world `{world}` names no agent in its `from` expression (`{source_text}`); try `from simulate(AGENT)`"
    )]
    NoAgent { world: String, source_text: String },
    #[error(
        "the plan has no `step`, so the world model's time step is unknown; try adding `step: 100 ms` to the `plan` block"
    )]
    NoStep,
    #[error("invalid value {value} for setting `{setting}` of world `{world}`: {reason}")]
    InvalidSetting {
        world: String,
        setting: String,
        value: f64,
        reason: String,
    },
    #[error("data file `{path}` does not fit the plan: {reason}")]
    DataMismatch { path: PathBuf, reason: String },
    #[error("cannot train the world model: {0}")]
    Data(String),
    #[error(transparent)]
    Scenario(#[from] ScenarioError),
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error("cannot write `{path}`: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("world model computation failed: {0}")]
    Tensor(#[from] candle_core::Error),
    #[error("built without CUDA; rebuild with `--features cuda`")]
    NoCuda,
}

/// Overrides of the world block's settings, as command-line flags give them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Overrides {
    pub episodes: Option<usize>,
    pub epochs: Option<usize>,
}

/// The training settings of a world block with defaults filled in and overrides applied.
#[derive(Clone, Debug, PartialEq)]
pub struct WorldSettings {
    /// Episodes to simulate, or the number read from a data file.
    pub episodes: usize,
    /// `latent`, `hidden`, `epochs` and `steps` (optimizer steps per epoch) come from the
    /// world block; the rest are [`TrainConfig::default`].
    pub config: TrainConfig,
    /// The occupancy patch observations carry, if the agent moves on a map.
    pub patch: Option<PatchSpec>,
    /// Columns of a periodic angle and its rate ([`WorldTarget::angle_columns`]).
    pub angle: Option<[usize; 2]>,
}

/// A `learned` world block of a plan and the agent whose dynamics it learns.
#[derive(Clone, Copy, Debug)]
pub struct WorldTarget<'a> {
    pub world: &'a WorldPlan,
    pub agent: &'a AgentPlan,
    /// Seconds per control step.
    pub step: f64,
    /// The first `image` or `map` context the world block names: the map of the patch.
    pub map: Option<&'a ContextPlan>,
}

impl<'a> WorldTarget<'a> {
    /// Selects the learned world named `name`, or the plan's first learned world, and the
    /// first agent its `from` expression names.
    ///
    /// NOTE: a world that names several agents learns only the first one.
    pub fn select(plan: &'a Plan, name: Option<&str>) -> Result<Self, WorldModelError> {
        let learned: Vec<&WorldPlan> = plan.worlds.iter().filter(|w| w.kind == "learned").collect();
        let world = match name {
            Some(name) => learned
                .iter()
                .find(|w| w.name == name)
                .copied()
                .ok_or_else(|| WorldModelError::UnknownWorld {
                    name: name.to_string(),
                    known: if learned.is_empty() {
                        "none".to_string()
                    } else {
                        learned
                            .iter()
                            .map(|w| format!("`{}`", w.name))
                            .collect::<Vec<_>>()
                            .join(", ")
                    },
                })?,
            None => learned
                .first()
                .copied()
                .ok_or(WorldModelError::NoLearnedWorld)?,
        };
        let agent = world
            .inputs
            .iter()
            .find_map(|input| plan.agents.iter().find(|a| &a.name == input));
        let Some(agent) = agent else {
            if let Some(design) = world
                .inputs
                .iter()
                .find(|input| plan.designs.iter().any(|d| &d.name == *input))
            {
                return Err(WorldModelError::DesignWorld {
                    world: world.name.clone(),
                    design: design.clone(),
                });
            }
            return Err(WorldModelError::NoAgent {
                world: world.name.clone(),
                source_text: world.source.clone().unwrap_or_default(),
            });
        };
        let step = plan
            .horizon
            .as_ref()
            .map(|h| h.step.0)
            .ok_or(WorldModelError::NoStep)?;
        let map = plan.contexts.iter().find(|c| {
            world.inputs.contains(&c.name) && matches!(c.loader.as_str(), "image" | "map")
        });
        Ok(WorldTarget {
            world,
            agent,
            step,
            map,
        })
    }

    /// Resolves the training settings from the world block, the defaults and `overrides`.
    pub fn settings(&self, overrides: Overrides) -> Result<WorldSettings, WorldModelError> {
        let defaults = TrainConfig::default();
        let count = |key: &str, default: usize| self.count_setting(key, default);
        let episodes = match overrides.episodes {
            Some(n) => n,
            None => count("episodes", DEFAULT_EPISODES)?,
        };
        let epochs = match overrides.epochs {
            Some(n) => n,
            None => count("epochs", defaults.epochs)?,
        };
        let config = TrainConfig {
            latent: count("latent", defaults.latent)?,
            hidden: count("hidden", defaults.hidden)?,
            epochs,
            steps_per_epoch: count("steps", defaults.steps_per_epoch)?,
            ..defaults
        };
        Ok(WorldSettings {
            episodes,
            config,
            patch: self.patch_spec(),
            angle: self.angle_columns(),
        })
    }

    /// Returns the patch the world's observations carry: the standard one when the agent
    /// has `x`, `y` and `heading` states and the world names an `image` or `map` context,
    /// with the pose integrated from `forward_velocity` and `turn_velocity` states when the
    /// agent has both.
    pub fn patch_spec(&self) -> Option<PatchSpec> {
        let column = |name: &str| self.agent.states.iter().position(|c| c.name == name);
        let pose = [column("x")?, column("y")?, column("heading")?];
        self.map?;
        let spec = PatchSpec::standard(pose);
        Some(match (column("forward_velocity"), column("turn_velocity")) {
            (Some(forward), Some(turn)) => spec.with_velocity([forward, turn]),
            _ => spec,
        })
    }

    /// Returns the columns of a periodic angle and its rate: a state `…angle` in radians with
    /// a state `…angular_velocity` beside it, as the pendulum's `angle` and the cart-pole's
    /// `pole_angle` have. A pose's heading is left to the patch's kinematics.
    ///
    /// NOTE: only the first such pair is found; a model with two swinging links would read
    /// the second angle as a plain number.
    pub fn angle_columns(&self) -> Option<[usize; 2]> {
        let states = &self.agent.states;
        states.iter().enumerate().find_map(|(i, c)| {
            let stem = c.name.strip_suffix("angle")?;
            if c.unit != "rad" {
                return None;
            }
            let rate = format!("{stem}angular_velocity");
            let j = states.iter().position(|r| r.name == rate)?;
            Some([i, j])
        })
    }

    /// Loads the occupancy grid the patch is cut from ([`WorldTarget::map`]); `None` when
    /// the world has no patch.
    pub fn grid(&self, base_dir: Option<&Path>) -> Result<Option<Grid>, WorldModelError> {
        match (self.patch_spec(), self.map) {
            (Some(_), Some(context)) => Ok(Some(load_grid(context, base_dir)?)),
            _ => Ok(None),
        }
    }

    /// Reads a setting that must be a whole number of at least 1.
    fn count_setting(&self, key: &str, default: usize) -> Result<usize, WorldModelError> {
        let Some(setting) = self.world.settings.iter().find(|s| s.name == key) else {
            return Ok(default);
        };
        let invalid = |value: f64, reason: &str| WorldModelError::InvalidSetting {
            world: self.world.name.clone(),
            setting: key.to_string(),
            value,
            reason: reason.to_string(),
        };
        match &setting.value {
            SettingValue::Number(n) if n.0.fract() == 0.0 && n.0 >= 1.0 && n.0 <= 1e9 => {
                Ok(n.0 as usize)
            }
            SettingValue::Number(n) => Err(invalid(n.0, "expected a whole number from 1 to 1e9")),
            SettingValue::Word(_) => Err(invalid(f64::NAN, "expected a number")),
        }
    }

    /// Computes the hex sha256 of the model-relevant part of the plan (see the module
    /// documentation) with the resolved `settings`. The training seed is left out, so
    /// retraining with another seed is not required to reuse a checkpoint.
    pub fn model_hash(&self, plan: &Plan, settings: &WorldSettings) -> String {
        let components = |list: &[Component]| {
            list.iter()
                .map(|c| {
                    serde_json::json!({
                        "name": c.name,
                        "unit": c.unit,
                        "lower": c.lower.map(|n| n.0),
                        "upper": c.upper.map(|n| n.0),
                    })
                })
                .collect::<Vec<_>>()
        };
        let prefix = format!("{}.", self.agent.name);
        let params: Vec<_> = plan
            .params
            .iter()
            .filter(|p| p.name.starts_with(&prefix))
            .map(|p| serde_json::json!([p.name, p.value.0, p.unit]))
            .collect();
        let contexts: Vec<_> = plan
            .contexts
            .iter()
            .filter(|c| self.world.inputs.contains(&c.name))
            .map(|c| {
                serde_json::json!({
                    "name": c.name,
                    "loader": c.loader,
                    "sha256": c.sha256,
                    "settings": c.settings,
                })
            })
            .collect();
        let config = TrainConfig {
            seed: 0,
            ..settings.config.clone()
        };
        let description = serde_json::json!({
            "scheme": HASH_SCHEME,
            "agent": {
                "name": self.agent.name,
                "model": self.agent.model,
                "states": components(&self.agent.states),
                "actions": components(&self.agent.actions),
            },
            "params": params,
            "step": self.step,
            "world": {
                "name": self.world.name,
                "kind": self.world.kind,
                "source": self.world.source,
                "episodes": settings.episodes,
                "config": config,
                "patch": settings.patch,
                "angle": settings.angle,
            },
            "contexts": contexts,
        });
        let bytes = serde_json::to_vec(&description).expect("the description serializes");
        Sha256::digest(&bytes)
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect()
    }

    /// Returns the default checkpoint path, `SPEC_DIR/.basin/SPEC.WORLD.world.safetensors`
    /// with `SPEC` the spec's file stem, so two specs in one folder keep separate models.
    pub fn default_checkpoint(&self, plan: &Plan, spec_dir: &Path) -> PathBuf {
        let stem = Path::new(&plan.source)
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "spec".to_string());
        spec_dir
            .join(".basin")
            .join(format!("{stem}.{}.world.safetensors", self.world.name))
    }

    /// Returns the agent's state and action channels, named as in scenarios and data files.
    fn channels(&self) -> (Vec<Channel>, Vec<Channel>) {
        let channel = |c: &Component| Channel {
            name: format!("{}.{}", self.agent.name, c.name),
            unit: c.unit.clone(),
            lower: c.lower.map(|n| n.0),
            upper: c.upper.map(|n| n.0),
        };
        (
            self.agent.states.iter().map(channel).collect(),
            self.agent.actions.iter().map(channel).collect(),
        )
    }

    /// Simulates `episodes` episodes of the agent alone from random starts, each at least
    /// [`min_episode_steps`] steps long and as long as the plan's horizon.
    pub fn simulate(
        &self,
        plan: &Plan,
        base_dir: Option<&Path>,
        episodes: usize,
        seed: u64,
        progress: bool,
    ) -> Result<Dataset, WorldModelError> {
        // Only this agent is simulated, so other agents cost nothing and the columns are its own.
        let mut single = plan.clone();
        single.agents.retain(|a| a.name == self.agent.name);
        let horizon_steps = plan.horizon.as_ref().map_or(0, |h| h.steps as usize);
        let options = SimulateOptions {
            episodes,
            seed,
            steps: Some(horizon_steps.max(min_episode_steps())),
            step: Some(self.step),
            start: Start::Random,
            progress,
        };
        match simulate(&single, base_dir, &options)? {
            SimulatedData::Episodes(data) => self.dataset(&data, None),
            SimulatedData::Designs(_) => Err(WorldModelError::DesignWorld {
                world: self.world.name.clone(),
                design: plan
                    .designs
                    .first()
                    .map(|d| d.name.clone())
                    .unwrap_or_default(),
            }),
        }
    }

    /// Builds the agent's dataset from simulated episodes, picking its columns by name.
    /// `source` names the file the episodes came from; its layout and step must fit the plan.
    pub fn dataset(
        &self,
        data: &Episodes,
        source: Option<&Path>,
    ) -> Result<Dataset, WorldModelError> {
        let mismatch = |reason: String| match source {
            Some(path) => WorldModelError::DataMismatch {
                path: path.to_path_buf(),
                reason,
            },
            None => WorldModelError::Data(reason),
        };
        let tolerance = 1e-9 * self.step.abs().max(data.step.abs());
        if (data.step - self.step).abs() > tolerance {
            return Err(mismatch(format!(
                "its step is {} s but the plan's step is {} s; try `basin simulate` again",
                data.step, self.step
            )));
        }
        let (states, actions) = self.channels();
        let state_columns = columns("state", &states, &data.layout.states).map_err(&mismatch)?;
        let action_columns =
            columns("action", &actions, &data.layout.actions).map_err(&mismatch)?;

        let (ns_data, na_data) = (data.layout.states.len(), data.layout.actions.len());
        let steps = data.steps;
        let mut episodes = Vec::with_capacity(data.seeds.len());
        for e in 0..data.seeds.len() {
            let state_rows =
                &data.states[e * (steps + 1) * ns_data..(e + 1) * (steps + 1) * ns_data];
            let action_rows = &data.actions[e * steps * na_data..(e + 1) * steps * na_data];
            let pick = |rows: &[f64], width: usize, picked: &[usize]| -> Vec<f32> {
                rows.chunks(width.max(1))
                    .flat_map(|row| picked.iter().map(|&i| row[i] as f32))
                    .collect()
            };
            episodes.push(Episode {
                states: pick(state_rows, ns_data, &state_columns),
                actions: pick(action_rows, na_data, &action_columns),
            });
        }
        let dataset = Dataset {
            state_names: states.into_iter().map(|c| c.name).collect(),
            action_names: actions.into_iter().map(|c| c.name).collect(),
            step: self.step,
            episodes,
        };
        dataset.validate().map_err(mismatch)?;
        Ok(dataset)
    }
}

/// Returns the minimum simulated episode length: the longest evaluation horizon plus the
/// training window, so every horizon has start points.
pub fn min_episode_steps() -> usize {
    HORIZONS.iter().max().copied().unwrap_or(0) + TrainConfig::default().horizon
}

/// Finds each expected channel among the data's channels by name and checks its unit and
/// bounds, returning the data's column of each.
fn columns(what: &str, expected: &[Channel], found: &[Channel]) -> Result<Vec<usize>, String> {
    expected
        .iter()
        .map(|channel| {
            let index = found.iter().position(|c| c.name == channel.name).ok_or_else(|| {
                format!(
                    "it has no {what} `{}` (its {what}s are {:?}); try `basin simulate` with this spec",
                    channel.name,
                    found.iter().map(|c| c.name.as_str()).collect::<Vec<_>>()
                )
            })?;
            let other = &found[index];
            if other.unit != channel.unit {
                return Err(format!(
                    "{what} `{}` is in `{}` but the plan has `{}`",
                    channel.name, other.unit, channel.unit
                ));
            }
            if other.lower != channel.lower || other.upper != channel.upper {
                return Err(format!(
                    "{what} `{}` has bounds {:?}..{:?} but the plan has {:?}..{:?}; try `basin simulate` again",
                    channel.name, other.lower, other.upper, channel.lower, channel.upper
                ));
            }
            Ok(index)
        })
        .collect()
}
