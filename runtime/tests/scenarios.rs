//! Physics scenarios built from compiled specs, checked against values computed here from
//! first principles, plus determinism, datasets and replays.

use std::path::{Path, PathBuf};

use basin_compiler::plan::{CompileOptions, Plan, compile};
use basin_runtime::scenario::{
    Event, Scenario, SimulateOptions, SimulatedData, Start, chair_from_plan, plan_hash,
    read_dataset, replay_actions, replay_design, scenario_from_plan, score_replay, simulate,
    write_dataset,
};

const G0: f64 = 9.806_65;

/// A fresh folder for one test's files.
fn scratch_dir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("basin-scenarios-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Compiles `text` as `dir/spec.basin` and returns its plan, failing on any diagnostic error.
fn compile_spec(dir: &Path, text: &str) -> Plan {
    let path = dir.join("spec.basin");
    std::fs::write(&path, text).unwrap();
    let db = basin_compiler::Database::new();
    let file = db.add_file("spec.basin".to_string(), text.to_string());
    let options = CompileOptions {
        base_dir: Some(dir.to_path_buf()),
        allow_outside: false,
    };
    let (plan, diagnostics) = compile(&db, file, &options);
    plan.unwrap_or_else(|| panic!("the spec did not compile: {diagnostics:#?}"))
}

#[test]
fn pendulum_released_horizontal_reaches_energy_speed() {
    let dir = scratch_dir("pendulum");
    let plan = compile_spec(
        &dir,
        "use std.robots.pendulum\n\
         agent arm = pendulum { mass: 2 kg, length: 0.8 m, max_torque: 2 N*m, start: (90 deg, 0 rad/s) }\n\
         plan { step: 10 ms, horizon: 2 s }\n",
    );
    let mut scenario = scenario_from_plan(&plan, Some(&dir), Start::Plan).unwrap();
    let start = scenario.reset(0);
    assert!(
        (start[0] - std::f64::consts::FRAC_PI_2).abs() < 1e-6,
        "start angle {}",
        start[0]
    );

    // Energy conservation: m·g·l = ½·I·ω² at the bottom, with I = m·l² + (2/5)·m·r² for a
    // ball bob of radius r = 2 cm on a massless rod.
    let (mass, length, bob_radius) = (2.0, 0.8, 0.02);
    let inertia = mass * length * length + 0.4 * mass * bob_radius * bob_radius;
    let expected = (2.0 * mass * G0 * length / inertia).sqrt();

    let mut previous = start;
    let mut speed_at_bottom = None;
    for _ in 0..500 {
        let state = scenario.step(&[0.0], 0.002).state;
        if previous[0] > 0.0 && state[0] <= 0.0 {
            // Interpolate the angular velocity to the crossing of the bottom.
            let fraction = previous[0] / (previous[0] - state[0]);
            speed_at_bottom = Some((previous[1] + fraction * (state[1] - previous[1])).abs());
            break;
        }
        previous = state;
    }
    let speed = speed_at_bottom.expect("the pendulum reached the bottom within 1 s");
    let error = (speed - expected).abs() / expected;
    assert!(
        error < 0.02,
        "angular speed at the bottom {speed} rad/s, energy conservation gives {expected} rad/s ({:.2} %)",
        error * 100.0
    );
}

/// Least-squares circle through points (Kåsa's algebraic fit): minimizes
/// Σ (x² + y² + D·x + E·y + F)², returning the centre and radius.
fn fit_circle(points: &[[f64; 2]]) -> ([f64; 2], f64) {
    // Normal equations of the linear least-squares problem in (D, E, F).
    let mut matrix = [[0.0; 3]; 3];
    let mut rhs = [0.0; 3];
    for &[x, y] in points {
        let row = [x, y, 1.0];
        let target = -(x * x + y * y);
        for i in 0..3 {
            for j in 0..3 {
                matrix[i][j] += row[i] * row[j];
            }
            rhs[i] += row[i] * target;
        }
    }
    // Gaussian elimination on the 3×3 system.
    for pivot in 0..3 {
        for below in pivot + 1..3 {
            let factor = matrix[below][pivot] / matrix[pivot][pivot];
            let pivot_row = matrix[pivot];
            for (entry, pivot_entry) in matrix[below].iter_mut().zip(pivot_row).skip(pivot) {
                *entry -= factor * pivot_entry;
            }
            rhs[below] -= factor * rhs[pivot];
        }
    }
    let mut solution = [0.0; 3];
    for row in (0..3).rev() {
        let known: f64 = (row + 1..3)
            .map(|col| matrix[row][col] * solution[col])
            .sum();
        solution[row] = (rhs[row] - known) / matrix[row][row];
    }
    let [d, e, f] = solution;
    let center = [-d / 2.0, -e / 2.0];
    (center, (center[0].powi(2) + center[1].powi(2) - f).sqrt())
}

#[test]
fn diff_drive_constant_wheel_speeds_drive_a_circle() {
    let dir = scratch_dir("circle");
    let plan = compile_spec(
        &dir,
        "use std.robots.diff_drive\n\
         agent robot = diff_drive { radius: 25 cm, max_speed: 1 m/s, max_accel: 1 m/s^2, start: pose(1 m, 2 m, 0 deg) }\n\
         plan { step: 100 ms, horizon: 4 s }\n",
    );
    let mut scenario = scenario_from_plan(&plan, Some(&dir), Start::Plan).unwrap();
    scenario.reset(0);

    // Wheels on the rim of a 25 cm base: track b = 0.5 m. Wheel speeds of 0.3 and 0.5 m/s give
    // v = (vl + vr)/2 = 0.4 m/s and ω = (vr − vl)/b = 0.4 rad/s, a circle of radius
    // (b/2)·(vr + vl)/(vr − vl) = 1 m.
    let (left, right, track) = (0.3, 0.5, 0.5);
    let forward = (left + right) / 2.0;
    let turn = (right - left) / track;
    let expected_radius = track / 2.0 * (right + left) / (right - left);

    let mut points = Vec::new();
    for index in 0..300 {
        let state = scenario.step(&[forward, turn], 0.1).state;
        // Skip the first 2 s, while the speeds ramp up.
        if index >= 20 {
            points.push([state[0], state[1]]);
        }
    }
    let (center, radius) = fit_circle(&points);
    let error = (radius - expected_radius).abs() / expected_radius;
    assert!(
        error < 0.01,
        "fitted radius {radius} m, analytic {expected_radius} m"
    );
    let worst = points
        .iter()
        .map(|p| ((p[0] - center[0]).hypot(p[1] - center[1]) - radius).abs())
        .fold(0.0, f64::max);
    assert!(
        worst < 0.01,
        "points stray {worst} m from the fitted circle"
    );
}

const CHAIR_SPEC: &str = "use std.materials.{abs_plastic, aluminum_6061}\n\
use std.furniture.office_chair\n\
design chair = office_chair {\n\
    armrest_thickness: 8 mm ..= 30 mm\n\
    armrest_material: abs_plastic | aluminum_6061\n\
    base_radius: 25 cm ..= 40 cm\n\
}\n\
use std.mechanics.tip_margin\n\
let occupant = 300 lbf\n\
constraint stable { tip_margin(chair.base_radius, occupant, chair.armrest_offset, chair.mass * 1 g0) >= 2 cm hard }\n\
goal light { minimize chair.mass }\n\
world stability = learned { from simulate(chair, load_test(occupant)), samples: 20 }\n";

/// Distance by which the resultant of the load at the armrest tip and the chair's weight
/// stays inside the tipping line of a five-star base, from the moment balance about that
/// line: positive holds, negative tips.
fn static_tip_margin(base_radius: f64, thickness: f64, density: f64) -> f64 {
    let load = 300.0 * 4.448_221_615_260_5;
    let (width, length, offset, frame_mass, arm_mass_per_length) = (0.05, 0.25, 0.3, 8.0, 2.5);
    let mass = frame_mass
        + 2.0 * density * thickness * width * length
        + 5.0 * arm_mass_per_length * base_radius;
    let weight = mass * G0;
    let tipping_line = base_radius * 36f64.to_radians().cos();
    tipping_line - load * offset / (load + weight)
}

#[test]
fn chair_that_balances_holds_300_lbf() {
    let dir = scratch_dir("chair-holds");
    let plan = compile_spec(&dir, CHAIR_SPEC);
    // Aluminium armrests 20 mm thick on a 40 cm base.
    let margin = static_tip_margin(0.40, 0.02, 2700.0);
    assert!(
        margin > 0.03,
        "the test design should hold by a clear margin, got {margin}"
    );

    let outcome = replay_design(&plan, &[0.02, 1.0, 0.40]).unwrap();
    assert!(!outcome.tipped, "the chair tipped: {outcome:?}");
    assert!(outcome.max_tilt < 0.01, "tilt {} rad", outcome.max_tilt);
    assert!(
        (outcome.tip_margin - margin).abs() < 4e-3,
        "simulated margin {} m, moment balance {margin} m",
        outcome.tip_margin
    );
    assert!(outcome.slip < 1e-3, "slip {} m", outcome.slip);
}

#[test]
fn chair_that_does_not_balance_tips() {
    let dir = scratch_dir("chair-tips");
    let plan = compile_spec(&dir, CHAIR_SPEC);
    // ABS armrests 10 mm thick on a 28 cm base.
    let margin = static_tip_margin(0.28, 0.01, 1050.0);
    assert!(
        margin < -0.03,
        "the test design should tip by a clear margin, got {margin}"
    );

    let outcome = replay_design(&plan, &[0.01, 0.0, 0.28]).unwrap();
    assert!(outcome.tipped, "the chair did not tip: {outcome:?}");
    assert!(
        (outcome.tip_margin - margin).abs() < 4e-3,
        "simulated margin {} m, moment balance {margin} m",
        outcome.tip_margin
    );
}

#[test]
fn chair_reports_a_tip_event() {
    let dir = scratch_dir("chair-event");
    let plan = compile_spec(&dir, CHAIR_SPEC);
    let mut chair = chair_from_plan(&plan, &[0.01, 0.0, 0.28]).unwrap();
    let mut events = Vec::new();
    for _ in 0..150 {
        events.extend(chair.step(&[1334.0], 0.01).events);
    }
    assert_eq!(events, vec![Event::Tipped]);
}

/// A 6 m × 4 m room of 0.25 m cells with a pillar in the middle, as a MovingAI map.
const ROOM_MAP: &str = "type octile\nheight 16\nwidth 24\nmap\n\
........................\n\
........................\n\
........................\n\
........................\n\
........................\n\
........................\n\
..........@@@@..........\n\
..........@@@@..........\n\
..........@@@@..........\n\
..........@@@@..........\n\
........................\n\
........................\n\
........................\n\
........................\n\
........................\n\
........................\n";

fn room_plan(dir: &Path) -> Plan {
    std::fs::write(dir.join("room.map"), ROOM_MAP).unwrap();
    compile_spec(
        dir,
        "use std.robots.diff_drive\n\
         context room = map(\"room.map\") { cell_size: 25 cm }\n\
         agent robot = diff_drive { radius: 20 cm, max_speed: 1.5 m/s, start: pose(1 m, 1 m, 0 deg) }\n\
         world dynamics = learned { from simulate(robot, room), episodes: 8 }\n\
         plan { step: 100 ms, horizon: 3 s }\n",
    )
}

fn options(seed: u64) -> SimulateOptions {
    SimulateOptions {
        episodes: 6,
        seed,
        steps: Some(40),
        step: None,
        start: Start::Random,
        progress: false,
    }
}

fn episodes(data: SimulatedData) -> basin_runtime::scenario::Episodes {
    match data {
        SimulatedData::Episodes(episodes) => episodes,
        SimulatedData::Designs(_) => panic!("expected episodes"),
    }
}

#[test]
fn same_seed_gives_bit_identical_episodes() {
    let dir = scratch_dir("determinism");
    let plan = room_plan(&dir);
    let first = episodes(simulate(&plan, Some(&dir), &options(7)).unwrap());
    let second = episodes(simulate(&plan, Some(&dir), &options(7)).unwrap());
    let bits = |values: &[f64]| values.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&first.states), bits(&second.states));
    assert_eq!(bits(&first.actions), bits(&second.actions));
    assert_eq!(first.contacts, second.contacts);

    let other = episodes(simulate(&plan, Some(&dir), &options(8)).unwrap());
    assert_ne!(
        bits(&first.states),
        bits(&other.states),
        "another seed should give other episodes"
    );
}

#[test]
fn episodes_do_not_depend_on_thread_count() {
    let dir = scratch_dir("threads");
    let plan = room_plan(&dir);
    let parallel = episodes(simulate(&plan, Some(&dir), &options(3)).unwrap());
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    let serial = episodes(
        pool.install(|| simulate(&plan, Some(&dir), &options(3)))
            .unwrap(),
    );
    let bits = |values: &[f64]| values.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&parallel.states), bits(&serial.states));
}

#[test]
fn episodes_stay_in_the_room_and_within_action_bounds() {
    let dir = scratch_dir("bounds");
    let plan = room_plan(&dir);
    let data = episodes(simulate(&plan, Some(&dir), &options(11)).unwrap());
    // x, y, heading, forward velocity, turn rate.
    assert_eq!(data.states.len(), 6 * 41 * 5);
    assert_eq!(data.actions.len(), 6 * 40 * 2);
    for row in data.states.chunks(5) {
        // The base of radius 0.2 m stays inside the 6 m × 4 m walls, allowing 2 cm of
        // contact penetration.
        assert!(
            (0.18..=5.82).contains(&row[0]) && (0.18..=3.82).contains(&row[1]),
            "state {row:?} left the room"
        );
    }
    for row in data.actions.chunks(2) {
        assert!(
            row[0].abs() <= 1.5 && row[1].abs() <= 2.0,
            "action {row:?} is out of bounds"
        );
    }
}

#[test]
fn dataset_round_trips_through_safetensors() {
    let dir = scratch_dir("dataset");
    let plan = room_plan(&dir);
    let data = simulate(&plan, Some(&dir), &options(5)).unwrap();
    let path = dir.join("data.safetensors");
    write_dataset(&path, &plan, 5, &data).unwrap();
    let (read, hash) = read_dataset(&path).unwrap();
    assert_eq!(hash, plan_hash(&plan));
    assert_eq!(read, data);
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp-"))
        .collect();
    assert!(
        leftovers.is_empty(),
        "temporary files left behind: {leftovers:?}"
    );
}

#[test]
fn dataset_file_is_byte_identical_per_seed() {
    let dir = scratch_dir("dataset-bytes");
    let plan = room_plan(&dir);
    let mut files = Vec::new();
    for name in ["first.safetensors", "second.safetensors"] {
        let data = simulate(&plan, Some(&dir), &options(5)).unwrap();
        write_dataset(&dir.join(name), &plan, 5, &data).unwrap();
        files.push(std::fs::read(dir.join(name)).unwrap());
    }
    assert!(files[0] == files[1], "two files of one seed differ");
}

#[test]
fn design_dataset_records_load_test_outcomes() {
    let dir = scratch_dir("designs");
    let plan = compile_spec(&dir, CHAIR_SPEC);
    let options = SimulateOptions {
        episodes: 4,
        seed: 1,
        steps: None,
        step: None,
        start: Start::Random,
        progress: false,
    };
    let SimulatedData::Designs(samples) = simulate(&plan, Some(&dir), &options).unwrap() else {
        panic!("expected designs")
    };
    assert_eq!(
        samples.design_names,
        [
            "chair.armrest_thickness",
            "chair.armrest_material",
            "chair.base_radius"
        ]
    );
    assert_eq!(samples.designs.len(), 4 * 3);
    assert_eq!(samples.outcomes.len(), 4 * 5);
    for (design, outcome) in samples.designs.chunks(3).zip(samples.outcomes.chunks(5)) {
        let density = if design[1] == 0.0 { 1050.0 } else { 2700.0 };
        let margin = static_tip_margin(design[2], design[0], density);
        assert!(
            (outcome[0] - margin).abs() < 4e-3,
            "design {design:?}: margin {} m, moment balance {margin} m",
            outcome[0]
        );
        if margin.abs() > 0.01 {
            assert_eq!(
                outcome[4] == 1.0,
                margin < 0.0,
                "design {design:?} with margin {margin} m: outcome {outcome:?}"
            );
        }
    }
}

#[test]
fn replay_returns_the_energy_layout() {
    let dir = scratch_dir("replay");
    let plan = compile_spec(
        &dir,
        "use std.robots.double_integrator\n\
         agent block = double_integrator { max_accel: 1 m/s^2, start: (0 m, 0 m/s) }\n\
         goal arrive { reach block.position -> 2 m within 5 cm }\n\
         plan { step: 100 ms, horizon: 2 s }\n",
    );
    // Bang-bang: accelerate for 1 s, brake for 1 s, covering 1 m.
    let actions: Vec<f64> = (0..20).map(|k| if k < 10 { 1.0 } else { -1.0 }).collect();
    let replay = replay_actions(&plan, Some(&dir), &actions).unwrap();
    assert_eq!(replay.states.len(), 21 * 2);
    assert_eq!(replay.actions, actions);
    let last = &replay.states[40..];
    assert!((last[0] - 1.0).abs() < 0.01, "final position {}", last[0]);
    assert!(last[1].abs() < 1e-4, "final velocity {}", last[1]);

    let evaluation = score_replay(&plan, Some(&dir), &replay, &[]).unwrap();
    assert_eq!(evaluation.terms.len(), plan.terms.len());
    assert!(
        evaluation.total.is_finite() && evaluation.total > 0.0,
        "total {}",
        evaluation.total
    );
}

#[test]
fn replay_rejects_wrong_action_count() {
    let dir = scratch_dir("replay-shape");
    let plan = compile_spec(
        &dir,
        "use std.robots.double_integrator\nagent block = double_integrator\nplan { step: 100 ms, horizon: 1 s }\n",
    );
    let error = replay_actions(&plan, Some(&dir), &[0.0; 3]).unwrap_err();
    assert_eq!(error.to_string(), "expected 10 action values, found 3");
}

#[test]
fn unknown_model_is_rejected_with_the_known_ones() {
    let dir = scratch_dir("unknown");
    let plan = compile_spec(
        &dir,
        "model hover { state height: m\n action thrust: N within -1 N ..= 1 N }\nagent drone = hover\nplan { step: 100 ms, horizon: 1 s }\n",
    );
    let error = scenario_from_plan(&plan, Some(&dir), Start::Plan)
        .err()
        .expect("hover has no scenario");
    let message = error.to_string();
    assert!(
        message.contains("`hover`") && message.contains("std.robots.diff_drive"),
        "{message}"
    );
}
