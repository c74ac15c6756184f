//! Simulated training data: episodes of random smooth actions for agent plans, and random
//! designs under their load test for design plans, written to safetensors.
//!
//! Episodes run in parallel on rayon's thread pool, each in its own world. Episode `e`
//! resets with seed `derive_seed(seed, e)` and draws its actions from an independent stream
//! of that seed, so the data depends only on the plan, the options and the seed, never on
//! the number of threads.
//!
//! File layout (all values SI, `f64` unless noted):
//! - agent plans: `states` `[E, H + 1, n_states]`, `actions` `[E, H, n_actions]`, `contacts`
//!   `[E, H]` `u8` (obstacle contacts started in each step, saturating at 255) and `seeds`
//!   `[E]` `u64`;
//! - design plans: `designs` `[N, n_design]` (a discrete choice as its index), `outcomes`
//!   `[N, 5]` with columns `tip_margin`, `slip`, `max_displacement`, `max_tilt`, `tipped`
//!   (0 or 1) and `seeds` `[N]` `u64`.
//!
//! Metadata, all strings:
//! - always: `format` ([`DATASET_FORMAT`]), `kind` (`episodes` or `designs`), `plan_hash`
//!   ([`plan_hash`]), `source` and `seed`;
//! - episodes: `step` (seconds), `steps`, `start` (`plan` or `random`), `action_noise`
//!   (JSON), the JSON lists `state_names`, `state_units`, `action_names` and `action_units`,
//!   and `state_bounds` and `action_bounds`, JSON lists of `[lower, upper]` pairs with `null`
//!   for an open side;
//! - designs: `load` (N) and the JSON lists `design_names`, `design_units`, `outcome_names`
//!   and `outcome_units`.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use basin_compiler::plan::{Domain, Plan};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rayon::prelude::*;
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use sha2::{Digest, Sha256};

use super::chair::LoadTest;
use super::plan::{PlanScenario, Start, chair_from_plan, load_test_force, scenario_from_plan};
use super::rng::{OrnsteinUhlenbeck, Rng, derive_seed};
use super::{Channel, Event, Layout, Scenario, ScenarioError};

/// Version tag of the file layout above.
pub const DATASET_FORMAT: &str = "basin-simulation-1";

/// Names and units of the outcome columns of a design dataset.
const OUTCOMES: [(&str, &str); 5] = [
    ("tip_margin", "m"),
    ("slip", "m"),
    ("max_displacement", "m"),
    ("max_tilt", "rad"),
    ("tipped", "1"),
];

/// Options of [`simulate`].
#[derive(Clone, Debug)]
pub struct SimulateOptions {
    /// Episodes for an agent plan, or designs for a design plan.
    pub episodes: usize,
    pub seed: u64,
    /// Steps per episode; the plan's horizon steps when `None`.
    pub steps: Option<usize>,
    /// Seconds per step; the plan's step when `None`.
    pub step: Option<f64>,
    pub start: Start,
    /// Draw a progress bar on standard error.
    pub progress: bool,
}

/// Episodes of an agent plan.
#[derive(Clone, Debug, PartialEq)]
pub struct Episodes {
    pub layout: Layout,
    /// Seconds per step.
    pub step: f64,
    /// Steps per episode, `H`.
    pub steps: usize,
    pub start: Start,
    pub seeds: Vec<u64>,
    /// `[E, H + 1, n_states]`, row-major.
    pub states: Vec<f64>,
    /// `[E, H, n_actions]`, row-major: the actions applied.
    pub actions: Vec<f64>,
    /// `[E, H]`: obstacle contacts started in each step.
    pub contacts: Vec<u8>,
}

/// Random designs of a design plan and the outcomes of their load test.
#[derive(Clone, Debug, PartialEq)]
pub struct DesignSamples {
    pub design_names: Vec<String>,
    pub design_units: Vec<String>,
    /// The test load, N.
    pub load: f64,
    pub seeds: Vec<u64>,
    /// `[N, n_design]`.
    pub designs: Vec<f64>,
    /// `[N, 5]`; see the module documentation for the columns.
    pub outcomes: Vec<f64>,
}

/// The result of [`simulate`].
#[derive(Clone, Debug, PartialEq)]
pub enum SimulatedData {
    Episodes(Episodes),
    Designs(DesignSamples),
}

/// Computes the hex sha256 of the plan's compact JSON form (`serde_json::to_vec`), which ties data
/// to the exact plan it was simulated for.
pub fn plan_hash(plan: &Plan) -> String {
    let json = serde_json::to_vec(plan).expect("a plan serializes to JSON");
    Sha256::digest(&json)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// Simulates the plan's agents, or the load test of its chair design when it has no agent.
///
/// # Errors
///
/// Fails when the plan cannot be simulated (see [`scenario_from_plan`] and
/// [`chair_from_plan`]) or has no horizon and `options` give no steps.
pub fn simulate(
    plan: &Plan,
    base_dir: Option<&Path>,
    options: &SimulateOptions,
) -> Result<SimulatedData, ScenarioError> {
    if plan.agents.is_empty() && !plan.designs.is_empty() {
        return simulate_designs(plan, options).map(SimulatedData::Designs);
    }
    let scenario = scenario_from_plan(plan, base_dir, options.start)?;
    let steps = match (options.steps, &plan.horizon) {
        (Some(steps), _) => steps,
        (None, Some(horizon)) => horizon.steps as usize,
        (None, None) => return Err(ScenarioError::NoHorizon),
    };
    let step = match (options.step, &plan.horizon) {
        (Some(step), _) => step,
        (None, Some(horizon)) => horizon.step.0,
        (None, None) => return Err(ScenarioError::NoHorizon),
    };
    if !(step.is_finite() && step > 0.0) {
        return Err(ScenarioError::InvalidParam {
            name: "step".into(),
            value: step,
            reason: "it must be a positive number of seconds".into(),
        });
    }
    Ok(SimulatedData::Episodes(simulate_episodes(
        &scenario, steps, step, options,
    )))
}

fn progress_bar(total: usize, visible: bool, what: &str) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(
        Some(total as u64),
        if visible {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        },
    );
    let template = format!(
        "{{elapsed_precise}} [{{bar:40}}] {{pos}}/{{len}} {what} ({{per_sec}}, {{eta}} left)"
    );
    if let Ok(style) = ProgressStyle::with_template(&template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

struct EpisodeRecord {
    states: Vec<f64>,
    actions: Vec<f64>,
    contacts: Vec<u8>,
}

/// Runs `options.episodes` episodes of `steps` steps in parallel; see the module docs.
pub(crate) fn simulate_episodes(
    template: &PlanScenario,
    steps: usize,
    step: f64,
    options: &SimulateOptions,
) -> Episodes {
    let _span = tracing::info_span!(
        "simulate_episodes",
        episodes = options.episodes,
        steps,
        step
    )
    .entered();
    let seeds: Vec<u64> = (0..options.episodes as u64)
        .map(|index| derive_seed(options.seed, index))
        .collect();
    let bar = progress_bar(options.episodes, options.progress, "episodes");
    let records: Vec<EpisodeRecord> = seeds
        .par_iter()
        .map_init(
            || template.duplicate(),
            |scenario, &seed| {
                let record = run_episode(scenario, seed, steps, step);
                bar.inc(1);
                record
            },
        )
        .collect();
    bar.finish_and_clear();

    let mut episodes = Episodes {
        layout: template.layout().clone(),
        step,
        steps,
        start: template.start(),
        seeds,
        states: Vec::new(),
        actions: Vec::new(),
        contacts: Vec::new(),
    };
    for record in records {
        episodes.states.extend(record.states);
        episodes.actions.extend(record.actions);
        episodes.contacts.extend(record.contacts);
    }
    episodes
}

/// Action bounds for the noise process.
/// NOTE: an action without bounds gets ±1 in its SI unit; every `std.robots` action has
/// bounds.
fn action_bounds(channels: &[Channel]) -> Vec<(f64, f64)> {
    channels
        .iter()
        .map(|c| (c.lower.unwrap_or(-1.0), c.upper.unwrap_or(1.0)))
        .collect()
}

fn run_episode(scenario: &mut PlanScenario, seed: u64, steps: usize, step: f64) -> EpisodeRecord {
    let mut states = scenario.reset(seed);
    let mut rng = Rng::new(derive_seed(seed, u64::MAX));
    let mut noise = OrnsteinUhlenbeck::new(action_bounds(&scenario.layout().actions), &mut rng);
    let mut actions = Vec::with_capacity(steps * scenario.layout().actions.len());
    let mut contacts = Vec::with_capacity(steps);
    for _ in 0..steps {
        let result = scenario.step(&noise.action(), step);
        states.extend(result.state);
        actions.extend(result.action);
        let started = result
            .events
            .iter()
            .filter(|event| matches!(event, Event::ContactStarted { .. }))
            .count();
        contacts.push(started.min(u8::MAX as usize) as u8);
        noise.advance(step, &mut rng);
    }
    EpisodeRecord {
        states,
        actions,
        contacts,
    }
}

/// A design vector and its outcome row.
type DesignSample = (Vec<f64>, [f64; 5]);

/// Samples `options.episodes` designs uniformly (continuous variables over their range,
/// discrete ones over their choices) and runs the plan's load test on each, in parallel.
fn simulate_designs(
    plan: &Plan,
    options: &SimulateOptions,
) -> Result<DesignSamples, ScenarioError> {
    let _span = tracing::info_span!("simulate_designs", samples = options.episodes).entered();
    let load = load_test_force(plan)?;
    let variables: Vec<_> = plan
        .designs
        .iter()
        .flat_map(|d| d.variables.iter())
        .collect();
    // Building one chair first reports a plan that cannot be simulated before any work.
    let lower_corner: Vec<f64> = variables
        .iter()
        .map(|v| match &v.domain {
            Domain::Continuous { lower, .. } => lower.0,
            Domain::Discrete { .. } => 0.0,
        })
        .collect();
    chair_from_plan(plan, &lower_corner)?;

    let seeds: Vec<u64> = (0..options.episodes as u64)
        .map(|index| derive_seed(options.seed, index))
        .collect();
    let bar = progress_bar(options.episodes, options.progress, "designs");
    let test = LoadTest::new(load);
    let samples: Vec<Result<DesignSample, ScenarioError>> = seeds
        .par_iter()
        .map(|&seed| {
            let mut rng = Rng::new(seed);
            let design: Vec<f64> = variables
                .iter()
                .map(|v| match &v.domain {
                    Domain::Continuous { lower, upper } => rng.range(lower.0, upper.0),
                    Domain::Discrete { choices } => rng.index(choices.len().max(1)) as f64,
                })
                .collect();
            let outcome = chair_from_plan(plan, &design)?.load_test(&test);
            bar.inc(1);
            let tipped = if outcome.tipped { 1.0 } else { 0.0 };
            Ok((
                design,
                [
                    outcome.tip_margin,
                    outcome.slip,
                    outcome.max_displacement,
                    outcome.max_tilt,
                    tipped,
                ],
            ))
        })
        .collect();
    bar.finish_and_clear();

    let mut result = DesignSamples {
        design_names: variables.iter().map(|v| v.name.clone()).collect(),
        design_units: variables.iter().map(|v| v.unit.clone()).collect(),
        load,
        seeds,
        designs: Vec::new(),
        outcomes: Vec::new(),
    };
    for sample in samples {
        let (design, outcome) = sample?;
        result.designs.extend(design);
        result.outcomes.extend(outcome);
    }
    Ok(result)
}

fn f64_bytes(values: &[f64]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn json_list<'a>(items: impl IntoIterator<Item = &'a str>) -> String {
    serde_json::to_string(&items.into_iter().collect::<Vec<_>>())
        .expect("strings serialize to JSON")
}

/// Formats the bounds of each channel as a JSON list of `[lower, upper]` pairs, `null` where open.
fn json_bounds(channels: &[Channel]) -> String {
    let pairs: Vec<[Option<f64>; 2]> = channels.iter().map(|c| [c.lower, c.upper]).collect();
    serde_json::to_string(&pairs).expect("bounds serialize to JSON")
}

fn start_word(start: Start) -> &'static str {
    match start {
        Start::Plan => "plan",
        Start::Random => "random",
    }
}

/// Writes `data` for `plan` to `path` as safetensors, through a temporary file in the same
/// folder that is renamed over `path`, so readers never see a partial file.
///
/// # Errors
///
/// Fails when the file cannot be written.
pub fn write_dataset(
    path: &Path,
    plan: &Plan,
    seed: u64,
    data: &SimulatedData,
) -> Result<(), ScenarioError> {
    let mut metadata = HashMap::new();
    metadata.insert("format".to_string(), DATASET_FORMAT.to_string());
    metadata.insert("plan_hash".to_string(), plan_hash(plan));
    metadata.insert("source".to_string(), plan.source.clone());
    metadata.insert("seed".to_string(), seed.to_string());

    let mut buffers: Vec<(&str, Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
    match data {
        SimulatedData::Episodes(episodes) => {
            let count = episodes.seeds.len();
            let (n_states, n_actions) =
                (episodes.layout.states.len(), episodes.layout.actions.len());
            metadata.insert("kind".into(), "episodes".into());
            metadata.insert("step".into(), episodes.step.to_string());
            metadata.insert("steps".into(), episodes.steps.to_string());
            metadata.insert("start".into(), start_word(episodes.start).into());
            metadata.insert(
                "action_noise".into(),
                serde_json::json!({
                    "process": "ornstein_uhlenbeck",
                    "theta": OrnsteinUhlenbeck::DEFAULT_THETA,
                    "sigma": OrnsteinUhlenbeck::DEFAULT_SIGMA,
                })
                .to_string(),
            );
            metadata.insert(
                "state_names".into(),
                json_list(episodes.layout.states.iter().map(|c| c.name.as_str())),
            );
            metadata.insert(
                "state_units".into(),
                json_list(episodes.layout.states.iter().map(|c| c.unit.as_str())),
            );
            metadata.insert(
                "action_names".into(),
                json_list(episodes.layout.actions.iter().map(|c| c.name.as_str())),
            );
            metadata.insert(
                "action_units".into(),
                json_list(episodes.layout.actions.iter().map(|c| c.unit.as_str())),
            );
            metadata.insert("state_bounds".into(), json_bounds(&episodes.layout.states));
            metadata.insert(
                "action_bounds".into(),
                json_bounds(&episodes.layout.actions),
            );
            buffers.push((
                "states",
                Dtype::F64,
                vec![count, episodes.steps + 1, n_states],
                f64_bytes(&episodes.states),
            ));
            buffers.push((
                "actions",
                Dtype::F64,
                vec![count, episodes.steps, n_actions],
                f64_bytes(&episodes.actions),
            ));
            buffers.push((
                "contacts",
                Dtype::U8,
                vec![count, episodes.steps],
                episodes.contacts.clone(),
            ));
            buffers.push((
                "seeds",
                Dtype::U64,
                vec![count],
                episodes
                    .seeds
                    .iter()
                    .flat_map(|s| s.to_le_bytes())
                    .collect(),
            ));
        }
        SimulatedData::Designs(designs) => {
            let count = designs.seeds.len();
            metadata.insert("kind".into(), "designs".into());
            metadata.insert("load".into(), designs.load.to_string());
            metadata.insert(
                "design_names".into(),
                json_list(designs.design_names.iter().map(String::as_str)),
            );
            metadata.insert(
                "design_units".into(),
                json_list(designs.design_units.iter().map(String::as_str)),
            );
            metadata.insert(
                "outcome_names".into(),
                json_list(OUTCOMES.iter().map(|(name, _)| *name)),
            );
            metadata.insert(
                "outcome_units".into(),
                json_list(OUTCOMES.iter().map(|(_, unit)| *unit)),
            );
            buffers.push((
                "designs",
                Dtype::F64,
                vec![count, designs.design_names.len()],
                f64_bytes(&designs.designs),
            ));
            buffers.push((
                "outcomes",
                Dtype::F64,
                vec![count, OUTCOMES.len()],
                f64_bytes(&designs.outcomes),
            ));
            buffers.push((
                "seeds",
                Dtype::U64,
                vec![count],
                designs.seeds.iter().flat_map(|s| s.to_le_bytes()).collect(),
            ));
        }
    }

    let write_error = |source: std::io::Error| ScenarioError::Write {
        path: path.to_path_buf(),
        source,
    };
    let views = buffers
        .iter()
        .map(|(name, dtype, shape, bytes)| {
            TensorView::new(*dtype, shape.clone(), bytes)
                .map(|view| (*name, view))
                .map_err(|e| write_error(std::io::Error::other(e.to_string())))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let bytes = safetensors::serialize(views, Some(metadata))
        .map_err(|e| write_error(std::io::Error::other(e.to_string())))?;
    let bytes = sort_header(&bytes);

    let folder = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temporary = folder.join(format!(".{file_name}.tmp-{}", std::process::id()));
    std::fs::write(&temporary, &bytes).map_err(write_error)?;
    std::fs::rename(&temporary, path).map_err(|source| {
        let _ = std::fs::remove_file(&temporary);
        write_error(source)
    })
}

/// Rewrites a serialized safetensors buffer with the keys of its JSON header sorted.
///
/// safetensors 0.8 writes the metadata map in `HashMap` order, which changes from run to
/// run; sorting makes equal data give equal files. The tensor data is unchanged, because
/// its offsets count from the end of the header.
fn sort_header(bytes: &[u8]) -> Vec<u8> {
    let length = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes")) as usize;
    let header: BTreeMap<String, serde_json::Value> =
        serde_json::from_slice(&bytes[8..8 + length]).expect("safetensors wrote a JSON header");
    let sorted: BTreeMap<&String, SortedValue> = header
        .iter()
        .map(|(key, value)| (key, SortedValue(value)))
        .collect();
    let mut json = serde_json::to_vec(&sorted).expect("a JSON value serializes");
    // The format pads the header with spaces so the data starts 8-byte aligned.
    json.resize(json.len().next_multiple_of(8), b' ');
    let mut output = Vec::with_capacity(8 + json.len() + bytes.len() - 8 - length);
    output.extend_from_slice(&(json.len() as u64).to_le_bytes());
    output.extend_from_slice(&json);
    output.extend_from_slice(&bytes[8 + length..]);
    output
}

/// A JSON value that serializes the keys of every object in sorted order, whatever map type
/// `serde_json` was built with.
struct SortedValue<'a>(&'a serde_json::Value);

impl serde::Serialize for SortedValue<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            serde_json::Value::Object(map) => {
                let sorted: BTreeMap<&String, SortedValue> = map
                    .iter()
                    .map(|(key, value)| (key, SortedValue(value)))
                    .collect();
                sorted.serialize(serializer)
            }
            serde_json::Value::Array(items) => {
                serializer.collect_seq(items.iter().map(SortedValue))
            }
            other => other.serialize(serializer),
        }
    }
}

/// Reads a file written by [`write_dataset`], checking its format, tensor shapes and
/// metadata. The plan hash is returned for the caller to compare with its plan.
///
/// # Errors
///
/// Fails with a message naming the file when it is unreadable, not safetensors, of another
/// format, or inconsistent.
pub fn read_dataset(path: &Path) -> Result<(SimulatedData, String), ScenarioError> {
    let fail = |reason: String| ScenarioError::Read {
        path: path.to_path_buf(),
        reason,
    };
    let bytes = std::fs::read(path).map_err(|e| fail(e.to_string()))?;
    let (_, header) = SafeTensors::read_metadata(&bytes)
        .map_err(|e| fail(format!("not a safetensors file ({e}); try a file written by `basin simulate`")))?;
    let metadata = header.metadata().clone().unwrap_or_default();
    let tensors = SafeTensors::deserialize(&bytes)
        .map_err(|e| fail(format!("not a safetensors file ({e}); try a file written by `basin simulate`")))?;
    let get = |key: &str| {
        metadata
            .get(key)
            .cloned()
            .ok_or_else(|| fail(format!("metadata `{key}` is missing")))
    };
    let list = |key: &str| -> Result<Vec<String>, ScenarioError> {
        serde_json::from_str(&get(key)?).map_err(|e| {
            fail(format!(
                "metadata `{key}` is not a JSON list of strings: {e}"
            ))
        })
    };
    let number = |key: &str| -> Result<f64, ScenarioError> {
        get(key)?
            .parse()
            .map_err(|e| fail(format!("metadata `{key}` is not a number: {e}")))
    };
    let tensor = |name: &str, dtype: Dtype, shape: &[usize]| -> Result<Vec<u8>, ScenarioError> {
        let view = tensors
            .tensor(name)
            .map_err(|e| fail(format!("tensor `{name}`: {e}")))?;
        if view.dtype() != dtype || view.shape() != shape {
            return Err(fail(format!(
                "tensor `{name}` is {:?} {:?}, expected {dtype:?} {shape:?}",
                view.dtype(),
                view.shape()
            )));
        }
        Ok(view.data().to_vec())
    };
    let f64s = |bytes: Vec<u8>| {
        bytes
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")))
            .collect::<Vec<_>>()
    };
    let u64s = |bytes: Vec<u8>| {
        bytes
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")))
            .collect::<Vec<_>>()
    };

    let format = get("format")?;
    if format != DATASET_FORMAT {
        return Err(fail(format!(
            "format `{format}` is not `{DATASET_FORMAT}`; try simulating again with this version of Basin"
        )));
    }
    let hash = get("plan_hash")?;
    let seeds_view = tensors
        .tensor("seeds")
        .map_err(|e| fail(format!("tensor `seeds`: {e}")))?;
    let count = seeds_view.shape().first().copied().unwrap_or(0);
    let seeds = u64s(tensor("seeds", Dtype::U64, &[count])?);

    match get("kind")?.as_str() {
        "episodes" => {
            let channels = |prefix: &str| -> Result<Vec<Channel>, ScenarioError> {
                let names = list(&format!("{prefix}_names"))?;
                let units = list(&format!("{prefix}_units"))?;
                let key = format!("{prefix}_bounds");
                let bounds: Vec<[Option<f64>; 2]> =
                    serde_json::from_str(&get(&key)?).map_err(|e| {
                        fail(format!(
                            "metadata `{key}` is not a JSON list of [lower, upper] pairs: {e}"
                        ))
                    })?;
                if units.len() != names.len() || bounds.len() != names.len() {
                    return Err(fail(format!(
                        "metadata `{prefix}_names`, `{prefix}_units` and `{key}` differ in length"
                    )));
                }
                Ok(names
                    .into_iter()
                    .zip(units)
                    .zip(bounds)
                    .map(|((name, unit), [lower, upper])| Channel {
                        name,
                        unit,
                        lower,
                        upper,
                    })
                    .collect())
            };
            let layout = Layout {
                states: channels("state")?,
                actions: channels("action")?,
            };
            let steps = number("steps")? as usize;
            let start = match get("start")?.as_str() {
                "plan" => Start::Plan,
                _ => Start::Random,
            };
            let states = f64s(tensor(
                "states",
                Dtype::F64,
                &[count, steps + 1, layout.states.len()],
            )?);
            let actions = f64s(tensor(
                "actions",
                Dtype::F64,
                &[count, steps, layout.actions.len()],
            )?);
            let contacts = tensor("contacts", Dtype::U8, &[count, steps])?;
            let step = number("step")?;
            Ok((
                SimulatedData::Episodes(Episodes {
                    layout,
                    step,
                    steps,
                    start,
                    seeds,
                    states,
                    actions,
                    contacts,
                }),
                hash,
            ))
        }
        "designs" => {
            let design_names = list("design_names")?;
            let designs = f64s(tensor("designs", Dtype::F64, &[count, design_names.len()])?);
            let outcomes = f64s(tensor("outcomes", Dtype::F64, &[count, OUTCOMES.len()])?);
            let samples = DesignSamples {
                design_units: list("design_units")?,
                design_names,
                load: number("load")?,
                seeds,
                designs,
                outcomes,
            };
            Ok((SimulatedData::Designs(samples), hash))
        }
        other => Err(fail(format!(
            "metadata `kind` is `{other}`, expected `episodes` or `designs`"
        ))),
    }
}
