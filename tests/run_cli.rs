//! `basin run` and `basin judge` through the real binary, with tiny planner settings.

use std::process::Command;

#[test]
fn run_writes_trace_and_judge_reads_it() {
    let dir = std::env::temp_dir().join(format!("basin-run-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/double-integrator/double-integrator.basin");
    // A hard constraint of the test's own, so the summary has a margin to report.
    let text = std::fs::read_to_string(example).unwrap().replace("horizon: 8 s", "horizon: 1 s")
        + "\nconstraint limits {\n    always abs(block.velocity) <= block.max_speed hard\n}\n";
    let spec = dir.join("block.basin");
    std::fs::write(&spec, text).unwrap();
    let out = dir.join("out");

    let run = Command::new(env!("CARGO_BIN_EXE_basin"))
        .args(["run", spec.to_str().unwrap(), "--dynamics", "simulator", "--samples", "8", "--iterations", "1", "--steps-limit", "3", "--out", out.to_str().unwrap()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert_eq!(run.status.code(), Some(2), "three steps cannot reach the goal; output:\n{stdout}\n{}", String::from_utf8_lossy(&run.stderr));
    assert!(stdout.contains("goal NOT met"), "summary:\n{stdout}");
    assert!(stdout.contains("limits.1"), "summary lacks the hard constraint margins:\n{stdout}");

    let trace: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("trace.json")).unwrap()).unwrap();
    assert_eq!(trace["steps"].as_array().unwrap().len(), 3);
    assert_eq!(trace["steps"][0]["energies"].as_array().unwrap().len(), 4);
    let svg = std::fs::read_to_string(out.join("plot.svg")).unwrap();
    roxmltree::Document::parse(&svg).expect("plot.svg is well-formed XML");

    let judge = Command::new(env!("CARGO_BIN_EXE_basin"))
        .args(["judge", spec.to_str().unwrap(), "--trajectory", out.join("trace.json").to_str().unwrap()])
        .output()
        .unwrap();
    let judged = String::from_utf8_lossy(&judge.stdout);
    assert!(judged.contains("judged 3 steps"), "judge output:\n{judged}");
    assert_eq!(judge.status.code(), Some(0), "no hard constraint is violated; output:\n{judged}");
    std::fs::remove_dir_all(&dir).ok();
}

/// `basin judge` on inputs that do not fit: each error names the file and says what to give.
#[test]
fn judge_rejects_inputs_that_do_not_fit() {
    let dir = std::env::temp_dir().join(format!("basin-judge-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let spec = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/double-integrator/double-integrator.basin");
    let judge = |flag: &str, file: &std::path::Path| {
        let output = Command::new(env!("CARGO_BIN_EXE_basin")).args(["judge", spec.to_str().unwrap(), flag, file.to_str().unwrap()]).output().unwrap();
        (output.status.code(), String::from_utf8_lossy(&output.stderr).into_owned())
    };

    let not_json = dir.join("notes.txt");
    std::fs::write(&not_json, "not a trace").unwrap();
    let (code, stderr) = judge("--trajectory", &not_json);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("notes.txt` is not valid JSON; try a `trace.json` written by `basin run --out DIR`"), "{stderr}");

    // A trace with three state columns, as a diff-drive trace has; the block has two.
    let wide = dir.join("wide.json");
    std::fs::write(&wide, r#"{"steps": [{"state": [0, 0, 0], "action": [0]}], "final_state": [0, 0, 0]}"#).unwrap();
    let (code, stderr) = judge("--trajectory", &wide);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("wide.json` does not fit this spec"), "{stderr}");
    assert!(stderr.contains("state row 0 has 3 values, expected 2"), "{stderr}");

    // The double integrator has agents and no design variables.
    let values = dir.join("values.json");
    std::fs::write(&values, r#"{"block.mass": 1}"#).unwrap();
    let (code, stderr) = judge("--design", &values);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("this spec has no design variables to judge"), "{stderr}");
    assert!(stderr.contains("try `--trajectory trace.json`"), "{stderr}");
    std::fs::remove_dir_all(&dir).ok();
}
