//! `basin simulate` end to end: the binary compiles a spec, simulates it and writes a
//! safetensors file that the runtime reads back.

use std::path::PathBuf;
use std::process::Command;

use basin_runtime::scenario::{SimulatedData, read_dataset};

fn scratch_dir(test: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("basin-simulate-cli-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

const PENDULUM: &str = "use std.robots.pendulum\n\
agent arm = pendulum { max_torque: 2 N*m }\n\
plan { step: 50 ms, horizon: 1 s }\n";

#[test]
fn simulate_writes_a_readable_dataset() {
    let dir = scratch_dir("writes");
    std::fs::write(dir.join("arm.basin"), PENDULUM).unwrap();
    let output = dir.join("arm.safetensors");

    let run = Command::new(env!("CARGO_BIN_EXE_basin"))
        .args([
            "simulate",
            "arm.basin",
            "--episodes",
            "5",
            "--seed",
            "9",
            "-o",
            "arm.safetensors",
        ])
        .current_dir(&dir)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "basin simulate failed: {stderr}");
    assert!(stderr.contains("wrote 5 episodes of 20 steps"), "{stderr}");

    let (data, hash) = read_dataset(&output).unwrap();
    assert_eq!(hash.len(), 64, "plan hash {hash}");
    let SimulatedData::Episodes(episodes) = data else {
        panic!("expected episodes")
    };
    assert_eq!(episodes.seeds.len(), 5);
    assert_eq!(episodes.states.len(), 5 * 21 * 2);
    assert_eq!(episodes.layout.actions[0].name, "arm.torque");
    assert_eq!(episodes.layout.actions[0].upper, Some(2.0));
}

#[test]
fn simulate_same_seed_writes_same_bytes() {
    let dir = scratch_dir("same-seed");
    std::fs::write(dir.join("arm.basin"), PENDULUM).unwrap();
    for name in ["first.safetensors", "second.safetensors"] {
        let run = Command::new(env!("CARGO_BIN_EXE_basin"))
            .args([
                "simulate",
                "arm.basin",
                "--episodes",
                "3",
                "--seed",
                "4",
                "-o",
                name,
            ])
            .current_dir(&dir)
            .output()
            .unwrap();
        assert!(
            run.status.success(),
            "{}",
            String::from_utf8_lossy(&run.stderr)
        );
    }
    let first = std::fs::read(dir.join("first.safetensors")).unwrap();
    let second = std::fs::read(dir.join("second.safetensors")).unwrap();
    assert!(first == second, "the two files differ");
}

#[test]
fn simulate_reports_an_unsupported_model() {
    let dir = scratch_dir("unsupported");
    std::fs::write(
        dir.join("hover.basin"),
        "model hover { state height: m\n action thrust: N within -1 N ..= 1 N }\nagent drone = hover\nplan { step: 100 ms, horizon: 1 s }\n",
    )
    .unwrap();
    let run = Command::new(env!("CARGO_BIN_EXE_basin"))
        .args(["simulate", "hover.basin", "-o", "hover.safetensors"])
        .current_dir(&dir)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("no physics scenario for model `hover`"),
        "{stderr}"
    );
    assert!(
        !dir.join("hover.safetensors").exists(),
        "no file should be written"
    );
}
