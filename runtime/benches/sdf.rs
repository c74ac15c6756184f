//! Time to compute the signed distance field of a 512×512 grid with random obstacles.
//!
//! Run with `cargo bench -p basin-runtime --bench sdf`.

use std::hint::black_box;

use basin_runtime::{DistanceField, Grid};
use criterion::{Criterion, criterion_group, criterion_main};

/// A `side × side` grid where each cell is blocked with probability `density`, drawn from a
/// fixed-seed xorshift generator so every run measures the same grid.
fn random_grid(side: usize, density: f64) -> Grid {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let cells = (0..side * side)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            ((state >> 11) as f64 / (1u64 << 53) as f64) < density
        })
        .collect();
    Grid::from_cells(side, side, 0.05, cells)
}

fn distance_field(c: &mut Criterion) {
    let grid = random_grid(512, 0.2);
    c.bench_function("distance_field_512x512_20pct", |b| {
        b.iter(|| DistanceField::new(black_box(&grid)))
    });

    let sparse = random_grid(512, 0.001);
    c.bench_function("distance_field_512x512_0.1pct", |b| {
        b.iter(|| DistanceField::new(black_box(&sparse)))
    });
}

criterion_group!(benches, distance_field);
criterion_main!(benches);
