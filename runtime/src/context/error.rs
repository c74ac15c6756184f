//! The one error type of every context loader, and the size-checked file read they share.
//!
//! Each variant names the file, so a caller can turn any loader failure into a diagnostic on
//! the `context` item without knowing which loader ran.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// Largest file, in bytes, that the text-based loaders (`map`, `scen`, `urdf`, `scene`, `text`)
/// and the image loader read into memory: 64 MiB.
///
/// NOTE: this leaves room for the largest MovingAI maps (a few MiB) and a 4096×4096 PNG; it is
/// a guard against pointing a spec at a disk image by mistake, not a measured need.
pub const MAX_FILE_BYTES: u64 = 64 * 1024 * 1024;

/// Failure to load a context file; every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum ContextError {
    /// The file does not exist.
    #[error("{}: file not found", path.display())]
    NotFound { path: PathBuf },

    /// The file exists but could not be read.
    #[error("{}: cannot read the file: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// The file is larger than the loader accepts.
    #[error("{}: the file has {bytes} bytes, more than the limit of {limit}", path.display())]
    FileTooLarge {
        path: PathBuf,
        bytes: u64,
        limit: u64,
    },

    /// The image has more pixels on a side than the image loader accepts.
    #[error(
        "{}: the image is {width}×{height} pixels, larger than the limit of {max_side}×{max_side}",
        path.display()
    )]
    ImageTooLarge {
        path: PathBuf,
        width: u32,
        height: u32,
        max_side: u32,
    },

    /// The file content is not in the expected format. `line` and `column` count from 1 and
    /// are present where the format has lines.
    #[error("{}{}: {message}", path.display(), Location(*line, *column))]
    Format {
        path: PathBuf,
        line: Option<usize>,
        column: Option<usize>,
        message: String,
    },

    /// The file is well formed but a loader option or a derived quantity is unusable.
    #[error("{}: {message}", path.display())]
    Invalid { path: PathBuf, message: String },

    /// Geometry that a caller requires refers to mesh files that could not be found.
    #[error("{}: missing geometry: {}", path.display(), missing.join(", "))]
    MissingGeometry { path: PathBuf, missing: Vec<String> },
}

impl ContextError {
    /// The context file that the error is about.
    pub fn path(&self) -> &Path {
        match self {
            ContextError::NotFound { path }
            | ContextError::Read { path, .. }
            | ContextError::FileTooLarge { path, .. }
            | ContextError::ImageTooLarge { path, .. }
            | ContextError::Format { path, .. }
            | ContextError::Invalid { path, .. }
            | ContextError::MissingGeometry { path, .. } => path,
        }
    }

    pub(crate) fn format(path: &Path, message: impl Into<String>) -> Self {
        ContextError::Format {
            path: path.to_path_buf(),
            line: None,
            column: None,
            message: message.into(),
        }
    }

    pub(crate) fn format_at(
        path: &Path,
        line: usize,
        column: Option<usize>,
        message: impl Into<String>,
    ) -> Self {
        ContextError::Format {
            path: path.to_path_buf(),
            line: Some(line),
            column,
            message: message.into(),
        }
    }

    pub(crate) fn invalid(path: &Path, message: impl Into<String>) -> Self {
        ContextError::Invalid {
            path: path.to_path_buf(),
            message: message.into(),
        }
    }
}

/// Renders `:line` or `:line:column` after a path, or nothing.
struct Location(Option<usize>, Option<usize>);

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.0, self.1) {
            (Some(line), Some(column)) => write!(f, ":{line}:{column}"),
            (Some(line), None) => write!(f, ":{line}"),
            _ => Ok(()),
        }
    }
}

/// Reads a whole file after checking that it exists, is a regular file and is at most
/// [`MAX_FILE_BYTES`] long.
pub(crate) fn read_file(path: &Path) -> Result<Vec<u8>, ContextError> {
    let metadata = std::fs::metadata(path).map_err(|source| io_error(path, source))?;
    if !metadata.is_file() {
        return Err(ContextError::Read {
            path: path.to_path_buf(),
            source: io::Error::other("not a regular file"),
        });
    }
    if metadata.len() > MAX_FILE_BYTES {
        return Err(ContextError::FileTooLarge {
            path: path.to_path_buf(),
            bytes: metadata.len(),
            limit: MAX_FILE_BYTES,
        });
    }
    std::fs::read(path).map_err(|source| io_error(path, source))
}

/// Reads a whole file as UTF-8 text, with the checks of [`read_file`].
pub(crate) fn read_text(path: &Path) -> Result<String, ContextError> {
    let bytes = read_file(path)?;
    String::from_utf8(bytes).map_err(|error| {
        let offset = error.utf8_error().valid_up_to();
        ContextError::format(
            path,
            format!("the file is not UTF-8 text (invalid byte at offset {offset})"),
        )
    })
}

fn io_error(path: &Path, source: io::Error) -> ContextError {
    if source.kind() == io::ErrorKind::NotFound {
        ContextError::NotFound {
            path: path.to_path_buf(),
        }
    } else {
        ContextError::Read {
            path: path.to_path_buf(),
            source,
        }
    }
}
