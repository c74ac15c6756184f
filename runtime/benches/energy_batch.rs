//! Time to evaluate the warehouse energy for 1024 samples × 40 steps with the batched tensor
//! backend on the CPU, forward only and forward plus backward.
//!
//! Run with `cargo bench -p basin-runtime --bench energy_batch`.

use std::hint::black_box;
use std::path::Path;

use basin_compiler::Database;
use basin_compiler::energy::DistanceGrid;
use basin_compiler::plan::{CompileOptions, compile};
use basin_runtime::energy::{BatchEnergy, BatchInputs};
use candle_core::{Device, Tensor, Var};
use criterion::{Criterion, criterion_group, criterion_main};

const SAMPLES: usize = 1024;

/// A synthetic 25 m × 20 m floor of 10 cm cells: the distance to the outer walls and to two
/// round pillars of radius 1 m.
fn floor_field() -> DistanceGrid {
    let (width, height, cell) = (250, 200, 0.1);
    let origin = (0.05, 0.05);
    let mut values = Vec::with_capacity(width * height);
    for row in 0..height {
        for col in 0..width {
            let (x, y) = (origin.0 + col as f64 * cell, origin.1 + row as f64 * cell);
            let walls = x.min(25.0 - x).min(y).min(20.0 - y);
            let pillars = [(8.0, 6.0), (15.0, 12.0)].iter().map(|&(cx, cy): &(f64, f64)| (x - cx).hypot(y - cy) - 1.0).fold(f64::INFINITY, f64::min);
            values.push(walls.min(pillars));
        }
    }
    DistanceGrid { width, height, cell, origin, values }
}

fn batched_energy(c: &mut Criterion) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/warehouse");
    let text = std::fs::read_to_string(dir.join("warehouse.basin")).expect("warehouse example");
    let db = Database::new();
    let file = db.add_file("examples/warehouse/warehouse.basin", &text);
    let (plan, diagnostics) = compile(&db, file, &CompileOptions { base_dir: Some(dir), allow_outside: false });
    let plan = plan.unwrap_or_else(|| panic!("the warehouse example did not compile: {diagnostics:?}"));
    let fields: Vec<Option<DistanceGrid>> = plan.contexts.iter().map(|c| (c.name == "floor").then(floor_field)).collect();

    let device = Device::Cpu;
    let energy = BatchEnergy::new(&plan, &fields, &device).expect("plan translates");
    let shape = energy.shape();
    assert_eq!(shape.steps, 40, "the warehouse plan has 40 steps");
    // Positions spread over the floor, other states and actions in [−1, 1).
    let states = Tensor::rand(0.0f32, 1.0, (SAMPLES, shape.steps + 1, shape.n_states), &device).unwrap().affine(15.0, 2.0).unwrap();
    let actions = Tensor::rand(-1.0f32, 1.0, (SAMPLES, shape.steps, shape.n_actions), &device).unwrap();
    let design = Tensor::zeros((SAMPLES, shape.n_design), candle_core::DType::F32, &device).unwrap();
    let params: Vec<f32> = plan.params.iter().map(|p| p.value.0 as f32).collect();
    let params = Tensor::from_vec(params.clone(), params.len(), &device).unwrap();

    let mut group = c.benchmark_group("batched_energy_warehouse_1024x40");
    group.sample_size(20);
    group.bench_function("forward", |b| {
        b.iter(|| {
            let inputs = BatchInputs { states: &states, actions: &actions, design: &design, params: &params, time0: 0.0 };
            black_box(energy.evaluate(black_box(&inputs)).unwrap())
        })
    });
    let actions_var = Var::from_tensor(&actions).unwrap();
    group.bench_function("forward_backward", |b| {
        b.iter(|| {
            let inputs = BatchInputs { states: &states, actions: actions_var.as_tensor(), design: &design, params: &params, time0: 0.0 };
            let evaluation = energy.evaluate(&inputs).unwrap();
            black_box(evaluation.total.sum_all().unwrap().backward().unwrap())
        })
    });
    group.finish();
}

criterion_group!(benches, batched_energy);
criterion_main!(benches);
