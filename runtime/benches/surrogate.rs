//! Cost of one design's outcomes from the chair surrogate against one rapier load test,
//! measured side by side in one run, and the surrogate's training time.
//!
//! Run with `cargo bench -p basin-runtime --bench surrogate`. The surrogate is trained on
//! 500 designs of `examples/chair` with 1500 optimizer steps, into a scratch folder.

use std::path::Path;
use std::time::Instant;

use basin_compiler::Database;
use basin_compiler::plan::{CompileOptions, compile};
use basin_runtime::model::{SurrogateTarget, ensure_surrogate};
use basin_runtime::scenario::replay_design;

fn main() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/chair");
    let text = std::fs::read_to_string(dir.join("chair.basin")).expect("the chair example");
    let text = text.replace("samples: 2000, epochs: 1500", "samples: 500, epochs: 1500");
    let db = Database::new();
    let file = db.add_file("chair.basin", text);
    let options = CompileOptions { base_dir: Some(dir), allow_outside: false };
    let plan = compile(&db, file, &options).0.expect("the chair compiles");
    let target = SurrogateTarget::select(&plan).unwrap().expect("the chair reads outcomes");
    let scratch = std::env::temp_dir().join(format!("basin-bench-surrogate-{}", std::process::id()));
    let path = scratch.join("chair.surrogate.safetensors");

    let started = Instant::now();
    let (surrogate, _) = ensure_surrogate(&plan, &target, &path, None).expect("training");
    let train = started.elapsed().as_secs_f64();
    println!("simulate 500 designs and train 1500 steps: {train:.2} s ({})", surrogate.describe());

    let designs: Vec<Vec<f64>> =
        (0..512).map(|i| vec![0.008 + 0.022 * (i % 16) as f64 / 15.0, (i % 2) as f64, 0.25 + 0.15 * (i / 32) as f64 / 15.0]).collect();
    let started = Instant::now();
    let rounds = 20;
    for _ in 0..rounds {
        std::hint::black_box(surrogate.predict(&target, &designs).expect("prediction"));
    }
    let predict = started.elapsed().as_secs_f64() / (rounds * designs.len()) as f64;

    let started = Instant::now();
    let tests = 32;
    for design in designs.iter().take(tests) {
        std::hint::black_box(replay_design(&plan, design).expect("load test"));
    }
    let simulate = started.elapsed().as_secs_f64() / tests as f64;
    println!("surrogate, batches of 512 designs: {:.2} µs per design", predict * 1e6);
    println!("rapier load test, one thread:      {:.2} ms per design", simulate * 1e3);
    println!("ratio: the surrogate is {:.0}× faster per design", simulate / predict);
    std::fs::remove_dir_all(&scratch).ok();
}
