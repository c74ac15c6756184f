//! Benchmarks of `check_file` on a generated spec of about 2,000 lines that checks without
//! errors: a cold check in a new database, and a re-check after a one-token edit in the
//! same database. Afterwards it prints where a re-check spends its time, query by query,
//! and the ratio of a cold check to a re-check, measured in alternation.
//!
//! Run with `cargo bench -p basin-compiler --bench check`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use basin_compiler::Database;
use basin_compiler::db::{check_file, file_items, file_scope};
use criterion::{Criterion, criterion_group, criterion_main};
use salsa::Setter;

/// Lines of the generated spec, at least.
const SPEC_LINES: usize = 2_000;

/// The edited token: the value of the first `let` alternates between these two texts.
const EDIT_FROM: &str = "let today_0 = 60 s";
const EDIT_TO: &str = "let today_0 = 61 s";

/// Generates a spec of at least [`SPEC_LINES`] lines: blocks of one agent with its sites,
/// values, goal and constraint, then one plan.
fn generate_spec() -> String {
    let mut text = String::from("use std.robots.diff_drive\n\n");
    let mut block = 0;
    while text.lines().count() < SPEC_LINES {
        let i = block;
        text.push_str(&format!(
            "\
agent robot_{i} = diff_drive {{ radius: 30 cm, max_speed: 1.2 m/s, start: pose({i} m, 3 m, 0 deg) }}
site pick_{i} = ({i}.5 m, 4 m)
site drop_{i} = (3 m, {i} m)
let today_{i} = 60 s
let margin_{i} = 20 cm + {i} mm
goal deliver_{i} {{
    reach robot_{i}.position -> pick_{i} within margin_{i}
    then reach robot_{i}.position -> drop_{i} within 10 cm
    finish_by 0.8 * today_{i}
    minimize duration
}}
constraint safety_{i} {{
    always robot_{i}.speed <= robot_{i}.max_speed hard
}}

"
        ));
        block += 1;
    }
    text.push_str("plan {\n    step: 100 ms\n    horizon: 4 s\n}\n");
    text
}

fn bench_check(c: &mut Criterion) {
    let spec = generate_spec();
    let lines = spec.lines().count();
    let db = Database::new();
    let file = db.add_file("bench.basin", spec.clone());
    let diagnostics = &check_file(&db, file).diagnostics;
    assert!(diagnostics.is_empty(), "the generated spec has diagnostics: {diagnostics:?}");
    assert_eq!(spec.matches(EDIT_FROM).count(), 1, "the edited `let` must occur once");
    println!("generated spec: {lines} lines, {} bytes", spec.len());

    let mut group = c.benchmark_group(format!("check_{lines}_lines"));
    // The database is returned, so criterion drops it outside the timed part.
    group.bench_function("cold", |b| {
        b.iter_with_large_drop(|| {
            let db = Database::new();
            let file = db.add_file("bench.basin", spec.clone());
            black_box(check_file(&db, file).diagnostics.len());
            db
        })
    });

    let mut db = Database::new();
    let file = db.add_file("bench.basin", spec.clone());
    check_file(&db, file);
    let mut next = spec.replace(EDIT_FROM, EDIT_TO);
    group.bench_function("recheck_after_one_token_edit", |b| {
        b.iter(|| {
            // `to` returns the previous text, which becomes the next edit.
            next = file.set_text(&mut db).to(std::mem::take(&mut next));
            black_box(check_file(&db, file).diagnostics.len());
        })
    });
    group.finish();

    print_recheck_breakdown(&spec);
    print_interleaved_ratio(&spec);
}

/// Re-checks after the one-token edit [`BREAKDOWN_RUNS`] times, calling the file queries
/// one by one, and prints the mean time of each: where a re-check spends its time.
fn print_recheck_breakdown(spec: &str) {
    let mut db = Database::new();
    let file = db.add_file("bench.basin", spec.to_string());
    check_file(&db, file);
    let mut next = spec.replace(EDIT_FROM, EDIT_TO);
    let mut totals = [Duration::ZERO; 4];
    for _ in 0..BREAKDOWN_RUNS {
        let start = Instant::now();
        next = file.set_text(&mut db).to(std::mem::take(&mut next));
        let steps: [&dyn Fn(); 3] = [
            &|| {
                black_box(file_items(&db, file).items.len());
            },
            &|| {
                black_box(file_scope(&db, file));
            },
            &|| {
                black_box(check_file(&db, file).diagnostics.len());
            },
        ];
        let mut last = Instant::now();
        totals[0] += last - start;
        for (i, step) in steps.iter().enumerate() {
            step();
            let now = Instant::now();
            totals[i + 1] += now - last;
            last = now;
        }
    }
    let names = ["set_text", "file_items", "file_scope", "check_file and check_item"];
    let parts: Vec<String> =
        names.iter().zip(totals).map(|(name, total)| format!("{name} {:.0} µs", total.as_secs_f64() * 1e6 / BREAKDOWN_RUNS as f64)).collect();
    println!("re-check by query, mean of {BREAKDOWN_RUNS} runs: {}", parts.join(", "));
}

/// Re-checks timed query by query in [`print_recheck_breakdown`].
const BREAKDOWN_RUNS: u32 = 200;

/// Rounds of [`print_interleaved_ratio`], and re-checks timed in each.
const RATIO_ROUNDS: usize = 40;
const RECHECKS_PER_ROUND: u32 = 20;

/// Prints the ratio of a cold check to a re-check, measured in alternation. Each round
/// times one cold check and then [`RECHECKS_PER_ROUND`] re-checks, so that both see the
/// same load on a shared machine, and the median over the rounds is printed. As in
/// criterion's measurement, a cold check here leaves out dropping its database.
fn print_interleaved_ratio(spec: &str) {
    let mut db = Database::new();
    let file = db.add_file("bench.basin", spec.to_string());
    check_file(&db, file);
    let mut next = spec.replace(EDIT_FROM, EDIT_TO);
    let mut ratios = Vec::with_capacity(RATIO_ROUNDS);
    for _ in 0..RATIO_ROUNDS {
        let start = Instant::now();
        let cold_db = Database::new();
        let cold_file = cold_db.add_file("bench.basin", spec.to_string());
        black_box(check_file(&cold_db, cold_file).diagnostics.len());
        let cold = start.elapsed();
        drop(cold_db);

        // One untimed re-check first, so that the timed ones do not pay for the caches
        // the cold check emptied.
        next = file.set_text(&mut db).to(std::mem::take(&mut next));
        check_file(&db, file);
        let start = Instant::now();
        for _ in 0..RECHECKS_PER_ROUND {
            next = file.set_text(&mut db).to(std::mem::take(&mut next));
            black_box(check_file(&db, file).diagnostics.len());
        }
        let recheck = start.elapsed() / RECHECKS_PER_ROUND;
        ratios.push(cold.as_secs_f64() / recheck.as_secs_f64());
    }
    ratios.sort_by(f64::total_cmp);
    println!(
        "cold / re-check, interleaved over {RATIO_ROUNDS} rounds: median {:.0}x (lowest {:.0}x, highest {:.0}x)",
        ratios[RATIO_ROUNDS / 2],
        ratios[0],
        ratios[RATIO_ROUNDS - 1]
    );
}

criterion_group!(benches, bench_check);
criterion_main!(benches);
