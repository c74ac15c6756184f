//! `basin compile --emit clif` through the real binary.

use std::process::Command;

#[test]
fn emit_clif_prints_energy_function() {
    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/warehouse/warehouse.basin");
    let output = Command::new(env!("CARGO_BIN_EXE_basin")).args(["compile", example.to_str().unwrap(), "--emit", "clif"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "stderr:\n{stderr}");
    assert!(stdout.starts_with("; u0:0 = basin_energy\n"), "the header names the function first:\n{}", &stdout[..stdout.len().min(400)]);
    assert!(stdout.contains("; u0:1 = basin_"), "the header names the helpers");
    assert!(stdout.contains("function u0:0(i64, i64, i64, i64, i64, f64, i64, i64, i64, i64, i64) -> f64"), "signature missing");
    assert!(stdout.contains("call fn"), "a warehouse energy calls helpers");
    assert!(stdout.trim_end().ends_with('}'), "the function is complete");
}
