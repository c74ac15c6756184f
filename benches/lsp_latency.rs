//! Latency of `basin lsp` as an editor sees it, over stdio with the real binary:
//! diagnostics after a one-character edit in a 2,000-line spec, and completion requests.
//!
//! Run with `cargo bench --bench lsp_latency`. Each sample is the wall time from writing the
//! message to reading the reply, so it includes JSON encoding and the pipe.

#[path = "../tests/lsp_client/mod.rs"]
mod lsp_client;

use std::time::{Duration, Instant};

use lsp_client::{Client, position};
use serde_json::json;

const URI: &str = "file:///bench/large.basin";
const SAMPLES: usize = 200;

/// Builds a spec of `lines` lines: an agent, then blocks of `let`s, sites and constraints.
fn large_spec(lines: usize) -> String {
    let mut text = String::from(
        "use std.robots.diff_drive\n\nagent robot = diff_drive {\n    radius: 30 cm\n    max_speed: 1.2 m/s\n}\n\n",
    );
    let mut i = 0;
    while text.lines().count() < lines {
        text.push_str(&format!(
            "/// Clearance of section {i}.\nlet gap_{i} = {} cm\nsite waypoint_{i} = ({} m, {} m)\nconstraint keep_{i} {{\n    always robot.speed <= {} m/s hard\n    always robot.speed * 1 s <= gap_{i} + 1 m\n}}\n\n",
            20 + i % 50,
            i % 40,
            (i * 7) % 40,
            1 + i % 3,
        ));
        i += 1;
    }
    text
}

/// Median and 95th percentile of `samples`, in milliseconds.
fn summarize(samples: &mut [Duration]) -> (f64, f64) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize].as_secs_f64() * 1000.0;
    (at(0.5), at(0.95))
}

fn main() {
    let text = large_spec(2000);
    let lines = text.lines().count();
    let (mut client, _) = Client::initialized(&[]);
    client.open(URI, &text);
    client.diagnostics(URI, 1);

    // One-character edits inside a `let` near the middle: type a digit, then delete it.
    let target = text.lines().position(|l| l.starts_with("let gap_")).unwrap_or(0) + lines / 2 / 8 * 8;
    let line = text.lines().enumerate().skip(target).find(|(_, l)| l.starts_with("let gap_")).map_or(0, |(n, _)| n) as u32;
    let column = text.lines().nth(line as usize).map_or(0, |l| l.find(" cm").unwrap_or(0)) as u32;
    let mut diagnostics = Vec::with_capacity(SAMPLES);
    for i in 0..SAMPLES {
        let version = i as i64 + 2;
        let change = if i % 2 == 0 {
            json!({ "range": { "start": position(line, column), "end": position(line, column) }, "text": "5" })
        } else {
            json!({ "range": { "start": position(line, column), "end": position(line, column + 1) }, "text": "" })
        };
        let started = Instant::now();
        client.notify("textDocument/didChange", json!({ "textDocument": { "uri": URI, "version": version }, "contentChanges": [change] }));
        client.diagnostics(URI, version);
        diagnostics.push(started.elapsed());
    }

    // Completion after `robot.`, after a number and at the start of a clause.
    let member_line = text.lines().position(|l| l.contains("always robot.speed <=")).unwrap_or(0) as u32;
    let unit_line = line;
    let places = [position(member_line, 17), position(unit_line, column + 1), position(member_line, 4)];
    let mut completion = Vec::with_capacity(SAMPLES);
    for i in 0..SAMPLES {
        let params = json!({ "textDocument": { "uri": URI }, "position": places[i % places.len()] });
        let started = Instant::now();
        client.result("textDocument/completion", params);
        completion.push(started.elapsed());
    }
    client.shutdown();

    let (d50, d95) = summarize(&mut diagnostics);
    let (c50, c95) = summarize(&mut completion);
    println!("spec: {lines} lines, {} bytes; {SAMPLES} samples each", text.len());
    println!("diagnostics after a one-character edit: median {d50:.2} ms, p95 {d95:.2} ms");
    println!("completion: median {c50:.2} ms, p95 {c95:.2} ms");
}
