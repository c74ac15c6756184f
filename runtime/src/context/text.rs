//! Text notes: `context notes = text("notes.md")`. The runtime keeps the text with its size and
//! SHA-256 digest, so a compiled plan can record exactly which notes it was built from.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::error::{ContextError, read_text};

/// A UTF-8 text file with its size and digest.
#[derive(Clone, Debug, PartialEq)]
pub struct TextNote {
    pub path: PathBuf,
    pub text: String,
    /// Size of the file in bytes.
    pub bytes: u64,
    /// SHA-256 digest of the file's bytes.
    pub sha256: [u8; 32],
}

impl TextNote {
    /// The SHA-256 digest as 64 lowercase hexadecimal digits.
    pub fn sha256_hex(&self) -> String {
        self.sha256
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect()
    }
}

/// Reads a UTF-8 text file of at most [`super::MAX_FILE_BYTES`] bytes.
#[tracing::instrument(skip_all, fields(path = %path.display()))]
pub fn load_text(path: &Path) -> Result<TextNote, ContextError> {
    let text = read_text(path)?;
    Ok(TextNote {
        path: path.to_path_buf(),
        bytes: text.len() as u64,
        sha256: Sha256::digest(text.as_bytes()).into(),
        text,
    })
}
