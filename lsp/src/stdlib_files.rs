//! Read-only copies of the standard library modules, for "go to definition".
//!
//! The modules are compiled into the program, so they have no file of their own. Every
//! editor can open a `file:` URI, while a custom URI scheme would need client code in each
//! editor, so the server writes each module once to a cache folder and points definitions
//! there. The folder name carries a hash of the module texts, so a newer `basin` never shows
//! an older copy: `$XDG_CACHE_HOME/basin/stdlib-HASH/std/robots.basin`, falling back to
//! `$HOME/.cache` and then to the system's temporary folder.

use std::path::PathBuf;
use std::sync::OnceLock;

use basin_compiler::stdlib::MODULES;
use tower_lsp_server::ls_types::Uri;

/// FNV-1a over every module path and text: stable across runs and platforms.
fn modules_hash() -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for m in MODULES {
        for byte in m.path.bytes().chain(m.source.bytes()) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    hash
}

fn cache_root() -> PathBuf {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").filter(|v| !v.is_empty()).map(|home| PathBuf::from(home).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("basin").join(format!("stdlib-{:016x}", modules_hash()))
}

/// The folder holding the copies; computed once per process.
fn root() -> &'static PathBuf {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(cache_root)
}

/// The file of module `path` (`std.robots` → `std/robots.basin`) under the cache folder.
fn module_file(path: &str) -> PathBuf {
    let mut file = root().clone();
    for segment in path.split('.') {
        file.push(segment);
    }
    file.set_extension("basin");
    file
}

/// The URI of a copy of module `path`, writing the copy first when it is missing or stale.
pub fn module_uri(path: &str) -> Option<Uri> {
    let module = MODULES.iter().find(|m| m.path == path)?;
    let file = module_file(path);
    let current = std::fs::read_to_string(&file).ok();
    if current.as_deref() != Some(module.source) {
        if let Err(e) = write_copy(&file, module.source) {
            tracing::error!(file = %file.display(), error = %e, "failed to write a standard library copy");
            return None;
        }
    }
    Uri::from_file_path(&file)
}

fn write_copy(file: &std::path::Path, source: &str) -> std::io::Result<()> {
    if let Some(parent) = file.parent() {
        std::fs::create_dir_all(parent)?;
    }
    // Write under another name and rename, so a reader never sees half a file.
    let partial = file.with_extension(format!("basin.{}.partial", std::process::id()));
    std::fs::write(&partial, source)?;
    let mut permissions = std::fs::metadata(&partial)?.permissions();
    permissions.set_readonly(true);
    std::fs::set_permissions(&partial, permissions)?;
    std::fs::rename(&partial, file)
}

/// Whether `uri` names one of the copies, which the server treats as read-only.
pub fn is_stdlib_copy(uri: &Uri) -> bool {
    uri.to_file_path().is_some_and(|p| p.starts_with(root()))
}
