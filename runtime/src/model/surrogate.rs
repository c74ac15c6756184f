//! The learned surrogate of a design's scenario: design variables in, the scenario's outcomes
//! (tip margin, slip, …) out, in SI units.
//!
//! A design problem searches thousands of candidate designs, and one rapier load test costs
//! far more than one energy evaluation, so the search reads the outcomes from a network
//! trained on simulations instead. It has the world model's parts with a horizon of one. An
//! encoder maps the design's features to a latent state, and a predictor takes that latent
//! one step (the load test) as a residual `z + f(z)`. A probe reads the outcomes out of the
//! result. Each part is a two-layer perceptron with a linear skip, like the world model's.
//! Unlike the world model it is trained only on the probe's supervised loss: a load test has
//! no next observation to embed, so there is no latent target to predict.
//!
//! Features: a continuous variable is mapped linearly from its range to `[-1, 1]`; a
//! discrete one (a material) becomes a one-hot block, so the network never reads a choice's
//! index as a quantity. Outcomes are standardized by their training mean and spread, and
//! the spread is floored so a constant outcome (slip on a floor that holds) stays finite.
//!
//! Training data: designs drawn uniformly across the declared ranges and choices, each
//! load-tested in the rapier chair scenario on rayon's threads ([`crate::scenario::simulate`],
//! as `basin simulate` does), 20% held out to measure the mean absolute error per outcome,
//! which the checkpoint keeps.
//!
//! Checkpoints are safetensors next to the spec, `.basin/SPEC.WORLD.surrogate.safetensors`,
//! with metadata. [`Surrogate::plan_hash`] covers only what changes the outcomes: the design's
//! model and variables, every parameter the scenario reads (the design's own parameters,
//! the densities of the material choices, the load), the outcome names and the training
//! settings. A refinement that edits anything else, such as a tensile strength that only a
//! formula reads, keeps the checkpoint; one that edits an input retrains it, starting from
//! the previous weights (fine-tuning).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use basin_compiler::plan::{DesignPlan, Domain, Plan, SettingValue, WorldPlan};
use candle_core::{DType, Device, Module, Tensor, Var};
use candle_nn::{
    AdamW, Linear, Optimizer, ParamsAdamW, VarBuilder, VarMap, linear, linear_no_bias,
};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use sha2::{Digest, Sha256};

use super::train::Rng;
use crate::scenario::{
    LoadTestOutcome, ScenarioError, SimulateOptions, SimulatedData, Start, simulate,
};

/// Version of the checkpoint layout and of the hashed description.
pub const SURROGATE_FORMAT: &str = "basin-surrogate-1";

/// Fraction of the simulated designs held out for evaluation.
const HELD_OUT: f64 = 0.2;

/// Designs per optimizer step.
const BATCH: usize = 256;

/// Smallest spread an outcome is divided by, in its SI unit.
const MIN_SPREAD: f64 = 1e-4;

/// Outcomes a design scenario can report, by the state names of its model.
const OUTCOMES: [&str; 4] = ["tilt", "tip_margin", "slip", "displacement"];

#[derive(Debug, thiserror::Error)]
pub enum SurrogateError {
    #[error("design `{design}` reads outcome `{name}`, which its scenario does not measure; the load test measures {}", OUTCOMES.join(", "))]
    UnknownOutcome { design: String, name: String },
    #[error(
        "the spec reads outcomes of design `{design}` but has no `learned` world that simulates it; try `world stability = learned {{ from simulate({design}, load_test(LOAD)), samples: 2000 }}`"
    )]
    NoWorld { design: String },
    #[error("invalid value {value} for setting `{setting}` of world `{world}`: {reason}")]
    InvalidSetting {
        world: String,
        setting: String,
        value: f64,
        reason: String,
    },
    #[error(transparent)]
    Scenario(#[from] ScenarioError),
    #[error("surrogate computation failed: {0}")]
    Tensor(#[from] candle_core::Error),
    #[error(
        "cannot use surrogate checkpoint `{path}`: {reason}; try deleting it so it is trained again"
    )]
    Checkpoint { path: PathBuf, reason: String },
    #[error("cannot write `{path}`: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("every simulated design failed: {0}")]
    NoData(String),
}

/// Training settings of a surrogate, from the world block.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SurrogateSettings {
    /// Designs to simulate (`samples`).
    pub samples: usize,
    /// Width of the hidden layers (`hidden`).
    pub hidden: usize,
    /// Size of the latent state (`latent`).
    pub latent: usize,
    /// Optimizer steps on batches of 256 designs (`epochs`).
    pub epochs: usize,
    pub learning_rate: f64,
    pub seed: u64,
}

impl Default for SurrogateSettings {
    fn default() -> Self {
        SurrogateSettings {
            samples: 500,
            hidden: 64,
            latent: 16,
            epochs: 1500,
            learning_rate: 3e-3,
            seed: 0,
        }
    }
}

impl SurrogateSettings {
    /// Reads `samples`, `hidden`, `latent` and `epochs` from the world block.
    pub fn from_world(world: &WorldPlan) -> Result<SurrogateSettings, SurrogateError> {
        let mut s = SurrogateSettings::default();
        for setting in &world.settings {
            let SettingValue::Number(n) = setting.value else {
                continue;
            };
            let slot = match setting.name.as_str() {
                "samples" => &mut s.samples,
                "hidden" => &mut s.hidden,
                "latent" => &mut s.latent,
                "epochs" => &mut s.epochs,
                _ => continue,
            };
            let lowest = if setting.name == "samples" { 8.0 } else { 1.0 };
            if !(n.0.is_finite() && n.0 >= lowest && n.0 <= 1e7 && n.0.fract() == 0.0) {
                return Err(SurrogateError::InvalidSetting {
                    world: world.name.clone(),
                    setting: setting.name.clone(),
                    value: n.0,
                    reason: format!("expected a whole number from {lowest} to 1e7"),
                });
            }
            *slot = n.0 as usize;
        }
        Ok(s)
    }
}

/// The design and world a surrogate stands for.
#[derive(Clone, Copy, Debug)]
pub struct SurrogateTarget<'a> {
    pub design: &'a DesignPlan,
    /// Index of the design's first outcome column in the energy's state row.
    pub state_offset: usize,
    /// Index of the design's first variable in the plan's design layout.
    pub variable_offset: usize,
    pub world: &'a WorldPlan,
}

impl<'a> SurrogateTarget<'a> {
    /// Finds the design whose outcomes the plan reads and the learned world that simulates
    /// it. Returns `Ok(None)` when no design has outcomes.
    pub fn select(plan: &'a Plan) -> Result<Option<SurrogateTarget<'a>>, SurrogateError> {
        let states_before: usize = plan.agents.iter().map(|a| a.states.len()).sum();
        let mut state_offset = states_before;
        let mut variable_offset = 0;
        for design in &plan.designs {
            if !design.states.is_empty() {
                for s in &design.states {
                    if !OUTCOMES.contains(&s.name.as_str()) {
                        return Err(SurrogateError::UnknownOutcome {
                            design: design.name.clone(),
                            name: s.name.clone(),
                        });
                    }
                }
                let world = plan
                    .worlds
                    .iter()
                    .find(|w| w.kind == "learned" && w.inputs.contains(&design.name))
                    .ok_or_else(|| SurrogateError::NoWorld {
                        design: design.name.clone(),
                    })?;
                // NOTE: one design with outcomes per plan; the chair scenario is the only one.
                return Ok(Some(SurrogateTarget {
                    design,
                    state_offset,
                    variable_offset,
                    world,
                }));
            }
            state_offset += design.states.len();
            variable_offset += design.variables.len();
        }
        Ok(None)
    }

    /// Default checkpoint path: `SPEC_DIR/.basin/SPEC.WORLD.surrogate.safetensors`.
    pub fn default_checkpoint(&self, plan: &Plan, spec_dir: &Path) -> PathBuf {
        let stem = Path::new(&plan.source)
            .file_stem()
            .map_or_else(|| "spec".to_string(), |s| s.to_string_lossy().into_owned());
        spec_dir
            .join(".basin")
            .join(format!("{stem}.{}.surrogate.safetensors", self.world.name))
    }

    /// Names of the parameters the scenario reads, with their current values in `plan`.
    pub fn inputs(&self, plan: &Plan) -> Vec<(String, f64)> {
        let prefix = format!("{}.", self.design.name);
        let choices: Vec<String> = self
            .design
            .variables
            .iter()
            .filter_map(|v| match &v.domain {
                Domain::Discrete { choices } => Some(
                    choices
                        .iter()
                        .map(|c| format!("{c}.density"))
                        .collect::<Vec<_>>(),
                ),
                Domain::Continuous { .. } => None,
            })
            .flatten()
            .collect();
        let load = self
            .world
            .source
            .as_deref()
            .and_then(|s| s.split("load_test(").nth(1))
            .and_then(|r| r.split(')').next())
            .map(str::trim);
        plan.params
            .iter()
            .filter(|p| {
                p.name.starts_with(&prefix)
                    || choices.contains(&p.name)
                    || Some(p.name.as_str()) == load
            })
            .map(|p| (p.name.clone(), p.value.0))
            .collect()
    }

    /// Hashes everything that changes the outcomes (see the module documentation) as hex sha256.
    pub fn plan_hash(&self, plan: &Plan, settings: &SurrogateSettings) -> String {
        let description = serde_json::json!({
            "format": SURROGATE_FORMAT,
            "design": { "name": self.design.name, "model": self.design.model, "variables": self.design.variables },
            "outcomes": self.design.states.iter().map(|s| &s.name).collect::<Vec<_>>(),
            "inputs": self.inputs(plan),
            "world": { "name": self.world.name, "source": self.world.source },
            "settings": SurrogateSettings { seed: 0, ..settings.clone() },
        });
        let bytes = serde_json::to_vec(&description).expect("the description serializes");
        Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// Number of input features: one per continuous variable, one per choice.
    fn n_features(&self) -> usize {
        self.design
            .variables
            .iter()
            .map(|v| match &v.domain {
                Domain::Continuous { .. } => 1,
                Domain::Discrete { choices } => choices.len(),
            })
            .sum()
    }

    /// Encodes one design's variables (its slice of the plan's design layout) as features.
    fn features(&self, values: &[f64]) -> Vec<f32> {
        let mut out = Vec::with_capacity(self.n_features());
        for (v, &x) in self.design.variables.iter().zip(values) {
            match &v.domain {
                Domain::Continuous { lower, upper } => {
                    let span = (upper.0 - lower.0).max(f64::MIN_POSITIVE);
                    out.push((2.0 * (x - lower.0) / span - 1.0) as f32);
                }
                Domain::Discrete { choices } => {
                    let k = (x.round().max(0.0) as usize).min(choices.len().saturating_sub(1));
                    out.extend((0..choices.len()).map(|i| if i == k { 1.0 } else { 0.0 }));
                }
            }
        }
        out
    }
}

/// Simulates `samples` random designs with [`crate::scenario::simulate`] (rayon, progress
/// bar) and returns them with their outcomes in the design's state order.
pub fn simulate_designs(
    plan: &Plan,
    target: &SurrogateTarget<'_>,
    samples: usize,
    seed: u64,
) -> Result<(Vec<Vec<f64>>, Vec<Vec<f64>>), SurrogateError> {
    let options = SimulateOptions {
        episodes: samples,
        seed,
        steps: None,
        step: None,
        start: Start::Random,
        progress: true,
    };
    let SimulatedData::Designs(data) = simulate(plan, None, &options)? else {
        return Err(SurrogateError::NoData(
            "the plan's scenario is not a design load test".into(),
        ));
    };
    let n_design = data.design_names.len();
    let designs: Vec<Vec<f64>> = data
        .designs
        .chunks(n_design.max(1))
        .map(<[f64]>::to_vec)
        .collect();
    let outcomes: Vec<Vec<f64>> = data
        .outcomes
        .chunks(5)
        .map(|row| {
            let outcome = LoadTestOutcome {
                tip_margin: row[0],
                slip: row[1],
                max_displacement: row[2],
                max_tilt: row[3],
                tipped: row[4] > 0.5,
            };
            outcome_values(target, &outcome)
        })
        .collect();
    if designs.len() != outcomes.len() || designs.is_empty() {
        return Err(SurrogateError::NoData(format!(
            "{} designs and {} outcomes",
            designs.len(),
            outcomes.len()
        )));
    }
    Ok((designs, outcomes))
}

/// Lists the outcomes of a load test in the order of the design's states.
pub fn outcome_values(target: &SurrogateTarget<'_>, outcome: &LoadTestOutcome) -> Vec<f64> {
    target
        .design
        .states
        .iter()
        .map(|s| match s.name.as_str() {
            "tilt" => outcome.max_tilt,
            "tip_margin" => outcome.tip_margin,
            "slip" => outcome.slip,
            _ => outcome.max_displacement,
        })
        .collect()
}

/// `in → hidden → out` with a GELU between, plus a linear skip without bias.
struct Mlp {
    first: Linear,
    second: Linear,
    skip: Linear,
}

impl Mlp {
    fn new(input: usize, hidden: usize, output: usize, vb: VarBuilder) -> candle_core::Result<Mlp> {
        Ok(Mlp {
            first: linear(input, hidden, vb.pp("first"))?,
            second: linear(hidden, output, vb.pp("second"))?,
            skip: linear_no_bias(input, output, vb.pp("skip"))?,
        })
    }
}

impl Module for Mlp {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        self.second.forward(&self.first.forward(x)?.gelu()?)? + self.skip.forward(x)?
    }
}

/// Training data description and accuracy of a surrogate, stored in its checkpoint.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SurrogateMeta {
    pub plan_hash: String,
    pub outcomes: Vec<String>,
    pub units: Vec<String>,
    pub mean: Vec<f64>,
    pub spread: Vec<f64>,
    pub settings: SurrogateSettings,
    pub train_samples: usize,
    pub held_out_samples: usize,
    /// Mean absolute error per outcome on the held-out designs, SI units.
    pub held_out_error: Vec<f64>,
    /// Mean squared error of the standardized outcomes on the training designs.
    pub train_loss: f64,
}

/// Source of the surrogate that [`ensure_surrogate`] returns.
#[derive(Clone, Debug, PartialEq)]
pub enum SurrogateOrigin {
    /// The checkpoint at this path fitted the plan.
    Loaded(PathBuf),
    /// The previous surrogate fitted the refined plan as it was.
    Reused,
    /// Trained from scratch and saved.
    Trained(PathBuf),
    /// Trained starting from the previous surrogate's weights, because the refinement
    /// changed these inputs of the scenario.
    FineTuned { path: PathBuf, changed: Vec<String> },
}

/// A trained surrogate.
pub struct Surrogate {
    pub meta: SurrogateMeta,
    /// Input parameters of the scenario when it was trained.
    pub inputs: Vec<(String, f64)>,
    vars: VarMap,
    encoder: Mlp,
    predictor: Mlp,
    probe: Mlp,
    n_features: usize,
}

impl Surrogate {
    fn build(
        n_features: usize,
        n_outcomes: usize,
        settings: &SurrogateSettings,
    ) -> candle_core::Result<Surrogate> {
        let vars = VarMap::new();
        let vb = VarBuilder::from_varmap(&vars, DType::F32, &Device::Cpu);
        let (h, l) = (settings.hidden, settings.latent);
        let encoder = Mlp::new(n_features, h, l, vb.pp("encoder"))?;
        let predictor = Mlp::new(l, h, l, vb.pp("predictor"))?;
        let probe = Mlp::new(l, h, n_outcomes, vb.pp("probe"))?;
        let s = Surrogate {
            meta: SurrogateMeta {
                plan_hash: String::new(),
                outcomes: Vec::new(),
                units: Vec::new(),
                mean: vec![0.0; n_outcomes],
                spread: vec![1.0; n_outcomes],
                settings: settings.clone(),
                train_samples: 0,
                held_out_samples: 0,
                held_out_error: Vec::new(),
                train_loss: f64::NAN,
            },
            inputs: Vec::new(),
            vars,
            encoder,
            predictor,
            probe,
            n_features,
        };
        s.reinitialize(settings.seed)?;
        Ok(s)
    }

    /// Draws weights uniformly from `±1/√fan_in` in name order from a seeded generator, so
    /// the same data and settings train the same surrogate.
    fn reinitialize(&self, seed: u64) -> candle_core::Result<()> {
        let mut rng = Rng::new(seed);
        let data = self.vars.data().lock().expect("variable map lock");
        let mut names: Vec<&String> = data.keys().collect();
        names.sort();
        for name in names {
            let var = &data[name];
            let dims = var.as_tensor().dims().to_vec();
            let count: usize = dims.iter().product();
            let values: Vec<f32> = if name.ends_with("bias") {
                vec![0.0; count]
            } else {
                let bound = 1.0 / (dims.last().copied().unwrap_or(1) as f64).sqrt();
                (0..count)
                    .map(|_| {
                        (((rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0) * bound)
                            as f32
                    })
                    .collect()
            };
            var.set(&Tensor::from_vec(values, dims, &Device::Cpu)?)?;
        }
        Ok(())
    }

    /// Standardized outcomes of features `[B, F]`: probe(z + predictor(z)), z = encoder(x).
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let z = self.encoder.forward(x)?;
        let z = (&z + self.predictor.forward(&z)?)?;
        self.probe.forward(&z)
    }

    fn features(
        &self,
        target: &SurrogateTarget<'_>,
        designs: &[Vec<f64>],
    ) -> candle_core::Result<Tensor> {
        let range = target.variable_offset..target.variable_offset + target.design.variables.len();
        let rows: Vec<f32> = designs
            .iter()
            .flat_map(|d| target.features(&d[range.clone()]))
            .collect();
        Tensor::from_vec(rows, (designs.len(), self.n_features), &Device::Cpu)
    }

    fn unstandardize(&self, row: &[f32]) -> Vec<f64> {
        row.iter()
            .enumerate()
            .map(|(j, &y)| f64::from(y) * self.meta.spread[j] + self.meta.mean[j])
            .collect()
    }

    /// Predicts the outcomes, SI units, of each design (the plan's full design layout).
    pub fn predict(
        &self,
        target: &SurrogateTarget<'_>,
        designs: &[Vec<f64>],
    ) -> Result<Vec<Vec<f64>>, SurrogateError> {
        if designs.is_empty() {
            return Ok(Vec::new());
        }
        let y = self
            .forward(&self.features(target, designs)?)?
            .to_vec2::<f32>()?;
        Ok(y.iter().map(|row| self.unstandardize(row)).collect())
    }

    /// Predicts the outcomes of `design` and the gradient of `Σ cotangent_j · outcome_j` with
    /// respect to every design variable, by candle's autograd through the three networks. The
    /// gradient is zero for discrete variables and for variables of other designs.
    pub fn vjp(
        &self,
        target: &SurrogateTarget<'_>,
        design: &[f64],
        cotangent: &[f64],
    ) -> Result<(Vec<f64>, Vec<f64>), SurrogateError> {
        let input =
            Var::from_tensor(&self.features(target, std::slice::from_ref(&design.to_vec()))?)?;
        let y = self.forward(input.as_tensor())?;
        let weights: Vec<f32> = cotangent
            .iter()
            .zip(&self.meta.spread)
            .map(|(c, s)| (c * s) as f32)
            .collect();
        let w = Tensor::from_vec(weights, (1, cotangent.len()), &Device::Cpu)?;
        let objective = (&y * &w)?.sum_all()?;
        let grads = objective.backward()?;
        let dx = match grads.get(input.as_tensor()) {
            Some(g) => g.flatten_all()?.to_vec1::<f32>()?,
            None => vec![0.0; self.n_features],
        };
        let outcomes = self.unstandardize(&y.flatten_all()?.to_vec1::<f32>()?);
        let mut grad = vec![0.0; design.len()];
        let mut f = 0;
        for (i, v) in target.design.variables.iter().enumerate() {
            match &v.domain {
                Domain::Continuous { lower, upper } => {
                    grad[target.variable_offset + i] =
                        f64::from(dx[f]) * 2.0 / (upper.0 - lower.0).max(f64::MIN_POSITIVE);
                    f += 1;
                }
                Domain::Discrete { choices } => f += choices.len(),
            }
        }
        Ok((outcomes, grad))
    }

    /// Trains on `designs` and their simulated `outcomes`, holding out the last 20%.
    fn fit(
        &mut self,
        target: &SurrogateTarget<'_>,
        designs: &[Vec<f64>],
        outcomes: &[Vec<f64>],
        steps: usize,
        standardize: bool,
    ) -> Result<(), SurrogateError> {
        let _span =
            tracing::info_span!("train surrogate", samples = designs.len(), steps).entered();
        let n = designs.len();
        let held = ((n as f64 * HELD_OUT).round() as usize).clamp(1, n.saturating_sub(1).max(1));
        let split = n - held;
        let m = outcomes[0].len();
        if standardize {
            for j in 0..m {
                let mean = outcomes[..split].iter().map(|o| o[j]).sum::<f64>() / split as f64;
                let var = outcomes[..split]
                    .iter()
                    .map(|o| (o[j] - mean).powi(2))
                    .sum::<f64>()
                    / split as f64;
                self.meta.mean[j] = mean;
                self.meta.spread[j] = var.sqrt().max(MIN_SPREAD);
            }
        }
        let x = self.features(target, &designs[..split])?;
        let ys: Vec<f32> = outcomes[..split]
            .iter()
            .flat_map(|o| {
                o.iter()
                    .enumerate()
                    .map(|(j, v)| ((v - self.meta.mean[j]) / self.meta.spread[j]) as f32)
            })
            .collect();
        let y = Tensor::from_vec(ys, (split, m), &Device::Cpu)?;
        let mut opt = AdamW::new(
            self.vars.all_vars(),
            ParamsAdamW {
                lr: self.meta.settings.learning_rate,
                weight_decay: 0.0,
                ..Default::default()
            },
        )?;
        let bar = ProgressBar::with_draw_target(Some(steps as u64), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template("training surrogate {pos}/{len} loss {msg} {wide_bar}")
                .expect("valid template"),
        );
        let mut rng = Rng::new(self.meta.settings.seed ^ 0xba7c);
        for step in 0..steps {
            // Cosine decay of the learning rate to a tenth.
            let phase = step as f64 / steps.max(1) as f64;
            opt.set_learning_rate(
                self.meta.settings.learning_rate
                    * (0.55 + 0.45 * (std::f64::consts::PI * phase).cos()),
            );
            let (xb, yb) = if split > BATCH {
                let rows: Vec<u32> = (0..BATCH)
                    .map(|_| (rng.next_u64() % split as u64) as u32)
                    .collect();
                let rows = Tensor::from_vec(rows, BATCH, &Device::Cpu)?;
                (x.index_select(&rows, 0)?, y.index_select(&rows, 0)?)
            } else {
                (x.clone(), y.clone())
            };
            let loss = candle_nn::loss::mse(&self.forward(&xb)?, &yb)?;
            opt.backward_step(&loss)?;
            if step % 100 == 0 {
                bar.set_message(format!("{:.5}", loss.to_scalar::<f32>()?));
            }
            bar.inc(1);
        }
        bar.finish_and_clear();
        let last = f64::from(candle_nn::loss::mse(&self.forward(&x)?, &y)?.to_scalar::<f32>()?);
        let predicted = self.predict(target, &designs[split..])?;
        self.meta.held_out_error = (0..m)
            .map(|j| {
                predicted
                    .iter()
                    .zip(&outcomes[split..])
                    .map(|(p, o)| (p[j] - o[j]).abs())
                    .sum::<f64>()
                    / held as f64
            })
            .collect();
        self.meta.train_loss = last;
        self.meta.train_samples = split;
        self.meta.held_out_samples = held;
        Ok(())
    }

    /// Writes the checkpoint atomically: a temporary file, then a rename.
    pub fn save(&self, path: &Path) -> Result<(), SurrogateError> {
        let write = |source| SurrogateError::Write {
            path: path.to_path_buf(),
            source,
        };
        let data = self.vars.data().lock().expect("variable map lock");
        let mut tensors: HashMap<String, Tensor> = HashMap::new();
        for (name, var) in data.iter() {
            tensors.insert(name.clone(), var.as_tensor().clone());
        }
        drop(data);
        let mut metadata = HashMap::new();
        metadata.insert("format".to_string(), SURROGATE_FORMAT.to_string());
        metadata.insert(
            "meta".to_string(),
            serde_json::to_string(&self.meta).unwrap_or_default(),
        );
        metadata.insert(
            "inputs".to_string(),
            serde_json::to_string(&self.inputs).unwrap_or_default(),
        );
        let views: Vec<(String, Tensor)> = tensors.into_iter().collect();
        let bytes =
            safetensors::serialize(views.iter().map(|(n, t)| (n.as_str(), t)), Some(metadata))
                .map_err(|e| SurrogateError::Checkpoint {
                    path: path.to_path_buf(),
                    reason: e.to_string(),
                })?;
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(write)?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
        std::fs::write(&tmp, bytes).map_err(write)?;
        std::fs::rename(&tmp, path).map_err(write)?;
        Ok(())
    }

    /// Loads a checkpoint for `target`. A file that is not a surrogate of this shape, or that
    /// contains non-finite weights, is an error naming the file.
    pub fn load(path: &Path, target: &SurrogateTarget<'_>) -> Result<Surrogate, SurrogateError> {
        let bad = |reason: String| SurrogateError::Checkpoint {
            path: path.to_path_buf(),
            reason,
        };
        let bytes = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
        let (_, header) = safetensors::SafeTensors::read_metadata(&bytes)
            .map_err(|e| bad(format!("not a safetensors file ({e})")))?;
        let metadata = header.metadata().clone().unwrap_or_default();
        if metadata.get("format").map(String::as_str) != Some(SURROGATE_FORMAT) {
            return Err(bad(format!("its format is not `{SURROGATE_FORMAT}`")));
        }
        let meta: SurrogateMeta =
            serde_json::from_str(metadata.get("meta").map_or("", String::as_str))
                .map_err(|e| bad(format!("unreadable metadata ({e})")))?;
        let inputs: Vec<(String, f64)> =
            serde_json::from_str(metadata.get("inputs").map_or("[]", String::as_str))
                .map_err(|e| bad(format!("unreadable inputs ({e})")))?;
        let mut s = Surrogate::build(
            target.n_features(),
            target.design.states.len(),
            &meta.settings,
        )?;
        if meta.mean.len() != target.design.states.len() || meta.spread.len() != meta.mean.len() {
            return Err(bad("its outcomes do not match the design's".into()));
        }
        let loaded = candle_core::safetensors::load_buffer(&bytes, &Device::Cpu)
            .map_err(|e| bad(e.to_string()))?;
        {
            let data = s.vars.data().lock().expect("variable map lock");
            for (name, var) in data.iter() {
                let t = loaded
                    .get(name)
                    .ok_or_else(|| bad(format!("tensor `{name}` is missing")))?;
                if t.dims() != var.as_tensor().dims() {
                    return Err(bad(format!(
                        "tensor `{name}` has shape {:?}, expected {:?}",
                        t.dims(),
                        var.as_tensor().dims()
                    )));
                }
                let values = t.flatten_all()?.to_vec1::<f32>()?;
                if values.iter().any(|v| !v.is_finite()) {
                    return Err(bad(format!(
                        "tensor `{name}` holds values that are not finite"
                    )));
                }
                var.set(t)?;
            }
        }
        s.meta = meta;
        s.inputs = inputs;
        Ok(s)
    }

    /// Renders what the surrogate was trained on and its held-out error per outcome.
    pub fn describe(&self) -> String {
        let errors: Vec<String> = self
            .meta
            .outcomes
            .iter()
            .zip(&self.meta.units)
            .zip(&self.meta.held_out_error)
            .map(|((o, u), e)| format!("{o} {e:.2e} {u}"))
            .collect();
        format!(
            "{} simulated designs ({} held out); held-out mean absolute error: {}",
            self.meta.train_samples + self.meta.held_out_samples,
            self.meta.held_out_samples,
            errors.join(", ")
        )
    }
}

/// Returns a surrogate that fits `plan`: `previous` when it still fits, else the checkpoint
/// at `path` when it fits, else one trained on new simulations (from `previous`'s weights
/// when there is one) and saved at `path`. A checkpoint of another plan is replaced, but a
/// file at `path` that is not a readable surrogate is an error, so it is never overwritten.
pub fn ensure_surrogate(
    plan: &Plan,
    target: &SurrogateTarget<'_>,
    path: &Path,
    previous: Option<Surrogate>,
) -> Result<(Surrogate, SurrogateOrigin), SurrogateError> {
    let settings = SurrogateSettings::from_world(target.world)?;
    let hash = target.plan_hash(plan, &settings);
    let previous = match previous {
        Some(p) if p.meta.plan_hash == hash => return Ok((p, SurrogateOrigin::Reused)),
        other => other,
    };
    if previous.is_none() && path.exists() {
        match Surrogate::load(path, target) {
            Ok(s) if s.meta.plan_hash == hash => {
                return Ok((s, SurrogateOrigin::Loaded(path.to_path_buf())));
            }
            Ok(_) => {
                tracing::info!(path = %path.display(), "surrogate checkpoint is for another plan; training a new one")
            }
            // A file that is not a readable surrogate may be something else: keep it.
            Err(e) => return Err(e),
        }
    }
    let (designs, outcomes) = simulate_designs(plan, target, settings.samples, settings.seed)?;
    let inputs = target.inputs(plan);
    let (mut surrogate, steps, origin) = match previous {
        Some(p) => {
            let changed: Vec<String> = inputs
                .iter()
                .filter(|(n, v)| {
                    p.inputs
                        .iter()
                        .find(|(pn, _)| pn == n)
                        .is_none_or(|(_, pv)| pv != v)
                })
                .map(|(n, _)| n.clone())
                .collect();
            // Fine-tuning starts near the previous solution, so it takes a third of the steps.
            let steps = (settings.epochs / 3).max(1);
            (
                p,
                steps,
                SurrogateOrigin::FineTuned {
                    path: path.to_path_buf(),
                    changed,
                },
            )
        }
        None => (
            Surrogate::build(target.n_features(), target.design.states.len(), &settings)?,
            settings.epochs,
            SurrogateOrigin::Trained(path.to_path_buf()),
        ),
    };
    let fresh = matches!(origin, SurrogateOrigin::Trained(_));
    surrogate.fit(target, &designs, &outcomes, steps, fresh)?;
    surrogate.meta.plan_hash = hash;
    surrogate.meta.outcomes = target
        .design
        .states
        .iter()
        .map(|s| s.name.clone())
        .collect();
    surrogate.meta.units = target
        .design
        .states
        .iter()
        .map(|s| s.unit.clone())
        .collect();
    surrogate.inputs = inputs;
    if surrogate.meta.held_out_error.iter().any(|e| !e.is_finite()) {
        return Err(SurrogateError::NoData(
            "training diverged: the held-out error is not finite".into(),
        ));
    }
    surrogate.save(path)?;
    Ok((surrogate, origin))
}
