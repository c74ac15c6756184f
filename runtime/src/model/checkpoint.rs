//! Checkpoints: the networks' weights in safetensors, with metadata that ties them to the
//! plan they were trained for.
//!
//! Metadata keys: `format` (this module's version), `plan_hash` (sha256 of the
//! model-relevant part of the plan), `dims` (network sizes and the occupancy patch the
//! encoder reads), `normalization`, `config`, `evaluation` and
//! `surprise_threshold` (JSON). Loading checks every one of them and every tensor's shape
//! and values, so a corrupt, truncated, mismatched or NaN-containing file is an error that
//! names the file and the problem, never a panic.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use safetensors::tensor::{Dtype, TensorView};

use super::data::Normalization;
use super::eval::EvalTable;
use super::net::{Dims, WorldModel};
use super::train::TrainConfig;

pub const FORMAT: &str = "basin-world-model-3";

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("cannot read checkpoint `{path}`: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "checkpoint `{path}` is not a valid safetensors file ({reason}); try deleting it so a new model is trained"
    )]
    Corrupt { path: PathBuf, reason: String },
    #[error(
        "checkpoint `{path}` is missing metadata `{key}`; it was not written by this version of Basin"
    )]
    MissingMetadata { path: PathBuf, key: &'static str },
    #[error(
        "checkpoint `{path}` has format `{found}`, expected `{FORMAT}`; try retraining with `basin train`"
    )]
    Format { path: PathBuf, found: String },
    #[error(
        "checkpoint `{path}` was trained for another plan (hash {found}, this plan has {expected}); try `basin train` to train one for this plan"
    )]
    PlanMismatch {
        path: PathBuf,
        found: String,
        expected: String,
    },
    #[error("checkpoint `{path}`: tensor `{name}` {problem}")]
    Tensor {
        path: PathBuf,
        name: String,
        problem: String,
    },
    #[error("checkpoint `{path}`: {0}", .source)]
    Model {
        path: PathBuf,
        source: candle_core::Error,
    },
}

/// Everything saved beside the weights.
#[derive(Clone, Debug, PartialEq)]
pub struct Meta {
    pub plan_hash: String,
    pub dims: Dims,
    pub normalization: Normalization,
    pub config: TrainConfig,
    pub evaluation: Option<EvalTable>,
    pub surprise_threshold: f64,
}

fn tensors_of(model: &WorldModel) -> candle_core::Result<Vec<(String, Vec<usize>, Vec<f32>)>> {
    let mut out = Vec::new();
    for (prefix, vars) in [("online", &model.vars), ("target", &model.target_vars)] {
        let data = vars.data().lock().expect("variable map lock");
        let mut names: Vec<&String> = data.keys().collect();
        names.sort();
        for name in names {
            let t = data[name].as_tensor();
            out.push((
                format!("{prefix}.{name}"),
                t.dims().to_vec(),
                t.flatten_all()?.to_vec1::<f32>()?,
            ));
        }
    }
    Ok(out)
}

/// Writes the checkpoint through a temporary file and a rename, so an interrupted write
/// never replaces a good checkpoint with a broken one.
pub fn save(path: &Path, model: &WorldModel, meta: &Meta) -> Result<(), CheckpointError> {
    let io = |source| CheckpointError::Io {
        path: path.to_path_buf(),
        source,
    };
    let tensors = tensors_of(model).map_err(|source| CheckpointError::Model {
        path: path.to_path_buf(),
        source,
    })?;
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .into_iter()
        .map(|(n, shape, values)| {
            (
                n,
                shape,
                values.iter().flat_map(|v| v.to_le_bytes()).collect(),
            )
        })
        .collect();
    let views: Vec<(String, TensorView<'_>)> = bytes
        .iter()
        .map(|(n, shape, data)| {
            (
                n.clone(),
                TensorView::new(Dtype::F32, shape.clone(), data)
                    .expect("shape matches the data length"),
            )
        })
        .collect();
    let json = |v: serde_json::Result<String>| v.unwrap_or_default();
    let mut metadata = HashMap::new();
    metadata.insert("format".to_string(), FORMAT.to_string());
    metadata.insert("plan_hash".to_string(), meta.plan_hash.clone());
    metadata.insert("dims".to_string(), json(serde_json::to_string(&meta.dims)));
    metadata.insert(
        "normalization".to_string(),
        json(serde_json::to_string(&meta.normalization)),
    );
    metadata.insert(
        "config".to_string(),
        json(serde_json::to_string(&meta.config)),
    );
    metadata.insert(
        "evaluation".to_string(),
        json(serde_json::to_string(&meta.evaluation)),
    );
    metadata.insert(
        "surprise_threshold".to_string(),
        meta.surprise_threshold.to_string(),
    );
    let data =
        safetensors::serialize(views, Some(metadata)).map_err(|e| CheckpointError::Corrupt {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    std::fs::write(&tmp, data).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)?;
    Ok(())
}

/// Reads only the metadata, to decide whether a checkpoint fits a plan.
pub fn read_meta(path: &Path) -> Result<Meta, CheckpointError> {
    let bytes = std::fs::read(path).map_err(|source| CheckpointError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    meta_of(path, &bytes)
}

fn meta_of(path: &Path, bytes: &[u8]) -> Result<Meta, CheckpointError> {
    let corrupt = |reason: String| CheckpointError::Corrupt {
        path: path.to_path_buf(),
        reason,
    };
    let (_, header) =
        safetensors::SafeTensors::read_metadata(bytes).map_err(|e| corrupt(e.to_string()))?;
    let map = header.metadata().clone().unwrap_or_default();
    let get = |key: &'static str| {
        map.get(key)
            .cloned()
            .ok_or(CheckpointError::MissingMetadata {
                path: path.to_path_buf(),
                key,
            })
    };
    let format = get("format")?;
    if format != FORMAT {
        return Err(CheckpointError::Format {
            path: path.to_path_buf(),
            found: format,
        });
    }
    let parse = |key: &'static str, text: String| -> Result<serde_json::Value, CheckpointError> {
        serde_json::from_str(&text)
            .map_err(|e| corrupt(format!("metadata `{key}` is not valid JSON: {e}")))
    };
    let dims: Dims = serde_json::from_value(parse("dims", get("dims")?)?)
        .map_err(|e| corrupt(format!("metadata `dims`: {e}")))?;
    let normalization: Normalization =
        serde_json::from_value(parse("normalization", get("normalization")?)?)
            .map_err(|e| corrupt(format!("metadata `normalization`: {e}")))?;
    let config: TrainConfig = serde_json::from_value(parse("config", get("config")?)?)
        .map_err(|e| corrupt(format!("metadata `config`: {e}")))?;
    let evaluation: Option<EvalTable> =
        serde_json::from_value(parse("evaluation", get("evaluation")?)?)
            .map_err(|e| corrupt(format!("metadata `evaluation`: {e}")))?;
    let surprise_threshold: f64 = get("surprise_threshold")?
        .parse()
        .map_err(|e| corrupt(format!("metadata `surprise_threshold`: {e}")))?;
    if normalization.state_mean.len() != dims.n_states
        || normalization.action_mean.len() != dims.n_actions
    {
        return Err(corrupt(
            "normalization statistics do not match the dimensions".into(),
        ));
    }
    if let Some(patch) = &dims.patch {
        let fits = (1..=64).contains(&patch.cells)
            && patch.resolution.is_finite()
            && patch.resolution > 0.0
            && patch.behind.is_finite()
            && patch.pose.iter().all(|&c| c < dims.n_states)
            && patch.velocity.iter().flatten().all(|&c| c < dims.n_states);
        if !fits {
            return Err(corrupt(format!(
                "metadata `dims` has an invalid occupancy patch {patch:?}; expected 1 to 64 cells of a positive size and pose columns below {}",
                dims.n_states
            )));
        }
    }
    if let Some(columns) = dims.angle
        && !columns.iter().all(|&c| c < dims.n_states)
    {
        return Err(corrupt(format!(
            "metadata `dims` has angle columns {columns:?}; expected columns below {}",
            dims.n_states
        )));
    }
    Ok(Meta {
        plan_hash: get("plan_hash")?,
        dims,
        normalization,
        config,
        evaluation,
        surprise_threshold,
    })
}

/// Loads a checkpoint trained for the plan whose model-relevant hash is `plan_hash`.
pub fn load(
    path: &Path,
    plan_hash: &str,
    device: &Device,
) -> Result<(WorldModel, Meta), CheckpointError> {
    let bytes = std::fs::read(path).map_err(|source| CheckpointError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let meta = meta_of(path, &bytes)?;
    if meta.plan_hash != plan_hash {
        return Err(CheckpointError::PlanMismatch {
            path: path.to_path_buf(),
            found: meta.plan_hash,
            expected: plan_hash.to_string(),
        });
    }
    let file =
        safetensors::SafeTensors::deserialize(&bytes).map_err(|e| CheckpointError::Corrupt {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    let model = WorldModel::new(meta.dims, device, 0).map_err(|source| CheckpointError::Model {
        path: path.to_path_buf(),
        source,
    })?;
    for (prefix, vars) in [("online", &model.vars), ("target", &model.target_vars)] {
        let data = vars.data().lock().expect("variable map lock");
        for (name, var) in data.iter() {
            let key = format!("{prefix}.{name}");
            let bad = |problem: String| CheckpointError::Tensor {
                path: path.to_path_buf(),
                name: key.clone(),
                problem,
            };
            let view = file.tensor(&key).map_err(|_| bad("is missing".into()))?;
            if view.dtype() != Dtype::F32 {
                return Err(bad(format!("has type {:?}, expected F32", view.dtype())));
            }
            if view.shape() != var.as_tensor().dims() {
                return Err(bad(format!(
                    "has shape {:?}, expected {:?}",
                    view.shape(),
                    var.as_tensor().dims()
                )));
            }
            let values: Vec<f32> = view
                .data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            if let Some(i) = values.iter().position(|v| !v.is_finite()) {
                return Err(bad(format!("holds a non-finite value at index {i}")));
            }
            let t = Tensor::from_vec(values, view.shape(), device)
                .and_then(|t| t.to_dtype(DType::F32))
                .map_err(|source| CheckpointError::Model {
                    path: path.to_path_buf(),
                    source,
                })?;
            var.set(&t).map_err(|source| CheckpointError::Model {
                path: path.to_path_buf(),
                source,
            })?;
        }
    }
    Ok((model, meta))
}
