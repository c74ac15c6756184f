//! `basin run` and `basin judge` on the chair design examples through the real binary, with
//! a small surrogate and few solver samples.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Copies example `name` into a scratch folder with a smaller surrogate, so the checkpoint
/// lands there and the test stays fast.
fn scratch_example(name: &str, test: &str) -> (PathBuf, PathBuf) {
    let dir = std::env::temp_dir().join(format!("basin-design-cli-{test}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let source = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(name)
        .join(format!("{name}.basin"));
    let text = std::fs::read_to_string(source).unwrap();
    let small = text.replace("samples: 2000, epochs: 1500", "samples: 200, epochs: 300");
    assert_ne!(
        small, text,
        "the example's world settings changed; update this test"
    );
    let spec = dir.join(format!("{name}.basin"));
    std::fs::write(&spec, small).unwrap();
    (dir, spec)
}

fn basin(args: &[&str]) -> (Output, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_basin"))
        .args(args)
        .output()
        .unwrap();
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output, text)
}

#[test]
fn infeasible_chair_names_conflicting_constraints_and_exits_2() {
    let (dir, spec) = scratch_example("chair-overload", "overload");
    let (output, text) = basin(&[
        "run",
        spec.to_str().unwrap(),
        "--samples",
        "64",
        "--iterations",
        "3",
    ]);
    assert_eq!(output.status.code(), Some(2), "output:\n{text}");
    assert!(
        text.contains("no design in the declared ranges satisfies these hard constraints together"),
        "output:\n{text}"
    );
    let conflict = text
        .split("satisfies these hard constraints together:\n")
        .nth(1)
        .unwrap_or("");
    let named: Vec<&str> = conflict
        .lines()
        .take_while(|l| l.starts_with("  "))
        .map(|l| l.split(": `").next().unwrap_or("").trim())
        .collect();
    assert_eq!(
        named,
        vec!["holds_weight.1 (line 19)"],
        "only the bending constraint on line 19 conflicts:\n{text}"
    );
    // The surrogate was trained and saved next to the spec.
    assert!(
        dir.join(".basin/chair-overload.stability.surrogate.safetensors")
            .exists(),
        "output:\n{text}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn chair_run_reports_validation_and_refinement_then_judge_scores_a_design() {
    let (dir, spec) = scratch_example("chair", "chair");
    let (output, text) = basin(&[
        "run",
        spec.to_str().unwrap(),
        "--samples",
        "128",
        "--iterations",
        "4",
        "--refine",
        "stronger armrest",
    ]);
    assert_eq!(output.status.code(), Some(0), "output:\n{text}");
    for expected in [
        "surrogate `stability`: trained on",
        "quantity                          surrogate     simulation     difference",
        "chair.tip_margin (m)",
        "the chair did not tip",
        "refinement \"stronger armrest\"",
        "rebuilt terms: holds_weight.1\n",
        "surrogate `stability`: reused, since the refinement changes no input of the scenario",
        "re-solved warm from the previous design",
        "energy before   energy after",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
    let (output, text) = basin(&["run", spec.to_str().unwrap(), "--refine", "no such step"]);
    assert_eq!(output.status.code(), Some(1), "output:\n{text}");
    assert!(
        text.contains("no refinement named \"no such step\"; the spec has \"stronger armrest\""),
        "output:\n{text}"
    );

    // An ABS armrest of 10 mm breaks under 300 lbf: judged by the formula, exit status 2.
    let values = dir.join("values.json");
    std::fs::write(&values, r#"{"chair.armrest_thickness": 0.01, "chair.armrest_material": "abs_plastic", "chair.base_radius": 0.38}"#).unwrap();
    let (output, text) = basin(&[
        "judge",
        spec.to_str().unwrap(),
        "--design",
        values.to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(2), "output:\n{text}");
    assert!(
        text.contains("outcomes simulated in the physics scenario"),
        "output:\n{text}"
    );
    assert!(
        text.contains("violated: holds_weight.1 (line 21)"),
        "output:\n{text}"
    );
    assert!(
        !text.contains("violated: holds_weight.2"),
        "a 38 cm base holds 300 lbf:\n{text}"
    );

    // A thickness of 2 m lies outside the declared range: an error naming the range.
    std::fs::write(&values, r#"{"chair.armrest_thickness": 2, "chair.armrest_material": "abs_plastic", "chair.base_radius": 0.38}"#).unwrap();
    let (output, text) = basin(&["judge", spec.to_str().unwrap(), "--design", values.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1), "output:\n{text}");
    assert!(text.contains("`chair.armrest_thickness` is 2 m, outside its range"), "output:\n{text}");
    std::fs::remove_dir_all(&dir).ok();
}
