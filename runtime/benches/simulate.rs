//! Simulated steps per second of each physics scenario, one thread, with smooth random
//! actions; then the episode throughput of `simulate` on all cores for the warehouse example.
//!
//! Run with `cargo bench -p basin-runtime --bench simulate`. A step is one plan step of the
//! stated length; the scenario runs its physics substeps inside it.

use std::path::Path;
use std::time::{Duration, Instant};

use basin_compiler::plan::{CompileOptions, compile};
use basin_runtime::context::{ObstacleRule, load_image};
use basin_runtime::scenario::{
    CartPole, CartPoleParams, Chair, ChairParams, DiffDrive, DiffDriveParams, DoubleIntegrator,
    DoubleIntegratorParams, OrnsteinUhlenbeck, Pendulum, PendulumParams, Rng, Scenario,
    SimulateOptions, SimulatedData, Start, obstacles_from_grid, simulate,
};

/// Steps `scenario` with random smooth actions for at least `budget` and returns steps/s.
fn steps_per_second(scenario: &mut dyn Scenario, step: f64, budget: Duration) -> f64 {
    let mut rng = Rng::new(1);
    let bounds = scenario
        .layout()
        .actions
        .iter()
        .map(|c| (c.lower.unwrap_or(0.0), c.upper.unwrap_or(1000.0)))
        .collect();
    let mut noise = OrnsteinUhlenbeck::new(bounds, &mut rng);
    scenario.reset(0);
    let started = Instant::now();
    let mut steps = 0u64;
    while started.elapsed() < budget {
        for _ in 0..50 {
            std::hint::black_box(scenario.step(&noise.action(), step));
            noise.advance(step, &mut rng);
        }
        steps += 50;
        scenario.reset(steps);
    }
    steps as f64 / started.elapsed().as_secs_f64()
}

fn main() {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let budget = Duration::from_secs(3);

    let floor = load_image(
        &examples.join("warehouse/floor.png"),
        0.05,
        &ObstacleRule::Dark { threshold: 0.5 },
    )
    .expect("the warehouse floor plan loads");
    let warehouse = obstacles_from_grid(&floor);
    let mut cases: Vec<(String, Box<dyn Scenario>, f64)> = vec![
        (
            format!("diff_drive, warehouse floor ({} boxes)", warehouse.len()),
            Box::new(DiffDrive::new(
                "robot",
                DiffDriveParams {
                    start: [2.0, 3.0, 0.0],
                    ..DiffDriveParams::default()
                },
                warehouse,
            )),
            0.1,
        ),
        (
            "diff_drive, open floor".into(),
            Box::new(DiffDrive::new(
                "robot",
                DiffDriveParams::default(),
                Vec::new(),
            )),
            0.1,
        ),
        (
            "pendulum".into(),
            Box::new(Pendulum::new("arm", PendulumParams::default())),
            0.05,
        ),
        (
            "cart_pole".into(),
            Box::new(CartPole::new("pole", CartPoleParams::default())),
            0.05,
        ),
        (
            "double_integrator".into(),
            Box::new(DoubleIntegrator::new(
                "block",
                DoubleIntegratorParams::default(),
            )),
            0.1,
        ),
    ];
    let chair = ChairParams {
        armrest_thickness: 0.02,
        armrest_width: 0.05,
        armrest_length: 0.25,
        armrest_offset: 0.3,
        armrest_density: 2700.0,
        base_radius: 0.35,
        frame_mass: 8.0,
        base_arm_mass_per_length: 2.5,
    };
    cases.push((
        "office_chair load test".into(),
        Box::new(Chair::new("chair", chair).expect("valid chair")),
        0.01,
    ));

    println!(
        "{:<44} {:>8} {:>12} {:>14}",
        "scenario (1 thread)", "step", "steps/s", "x real time"
    );
    for (name, mut scenario, step) in cases {
        let rate = steps_per_second(scenario.as_mut(), step, budget);
        println!(
            "{name:<44} {:>6} ms {rate:>12.0} {:>14.0}",
            step * 1000.0,
            rate * step
        );
    }

    let spec = examples.join("warehouse/warehouse.basin");
    let text = std::fs::read_to_string(&spec).expect("the warehouse example exists");
    let db = basin_compiler::Database::new();
    let file = db.add_file("warehouse.basin".to_string(), text);
    let options = CompileOptions {
        base_dir: Some(examples.join("warehouse")),
        allow_outside: false,
    };
    let plan = compile(&db, file, &options)
        .0
        .expect("the warehouse example compiles");
    let episodes = 512;
    let simulate_options = SimulateOptions {
        episodes,
        seed: 0,
        steps: None,
        step: None,
        start: Start::Random,
        progress: false,
    };
    let started = Instant::now();
    let data = simulate(&plan, Some(&examples.join("warehouse")), &simulate_options)
        .expect("the warehouse simulates");
    let seconds = started.elapsed().as_secs_f64();
    let SimulatedData::Episodes(data) = data else {
        unreachable!("the warehouse has an agent")
    };
    let steps = episodes * data.steps;
    println!(
        "simulate warehouse.basin: {episodes} episodes of {} steps on {} threads in {seconds:.2} s = {:.0} steps/s (map loading included)",
        data.steps,
        rayon::current_num_threads(),
        steps as f64 / seconds
    );
}
