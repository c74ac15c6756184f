//! Context loaders against real files: the MovingAI benchmark map and scenarios, the Husky and
//! racecar URDFs from pybullet_data (all in `tests/data`, unchanged), and floor plans, notes and
//! scenes that the tests write to a temporary folder.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::f64::consts::SQRT_2;
use std::fs;
use std::path::{Path, PathBuf};

use basin_runtime::context::{
    ColourMatch, ContextError, DistanceField, FloorImage, Grid, MAX_FILE_BYTES, MobileBaseOptions,
    ObstacleRule, Rgb, SceneShape, UrdfRobot, UrdfWarning, load_image, load_map, load_scen,
    load_scene, load_text, load_urdf,
};

fn data(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/data")
        .join(relative)
}

/// Creates a fresh, empty folder for one test's files.
fn scratch(test: &str) -> PathBuf {
    let folder = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("context")
        .join(test);
    let _ = fs::remove_dir_all(&folder);
    fs::create_dir_all(&folder).unwrap();
    folder
}

// MovingAI map and scenarios

/// An open-list entry ordered so that `BinaryHeap` pops the smallest `f = g + h` first.
struct Entry {
    f: f64,
    g: f64,
    cell: (usize, usize),
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.f == other.f
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    fn cmp(&self, other: &Self) -> Ordering {
        other.f.total_cmp(&self.f)
    }
}

/// Length of a shortest 8-connected path in cells, with diagonal steps of √2 that need both
/// orthogonally adjacent cells free (no corner cutting), by A* with the octile heuristic.
fn shortest_path_length(grid: &Grid, start: (usize, usize), goal: (usize, usize)) -> Option<f64> {
    let octile = |(x, y): (usize, usize)| {
        let dx = x.abs_diff(goal.0) as f64;
        let dy = y.abs_diff(goal.1) as f64;
        dx.max(dy) - dx.min(dy) + SQRT_2 * dx.min(dy)
    };
    let free = |x: isize, y: isize| x >= 0 && y >= 0 && !grid.is_blocked(x as usize, y as usize);

    let mut best = vec![f64::INFINITY; grid.width() * grid.height()];
    let mut open = BinaryHeap::new();
    best[start.1 * grid.width() + start.0] = 0.0;
    open.push(Entry {
        f: octile(start),
        g: 0.0,
        cell: start,
    });

    while let Some(Entry { g, cell, .. }) = open.pop() {
        if cell == goal {
            return Some(g);
        }
        if g > best[cell.1 * grid.width() + cell.0] {
            continue;
        }
        for dx in -1isize..=1 {
            for dy in -1isize..=1 {
                if (dx, dy) == (0, 0) {
                    continue;
                }
                let (x, y) = (cell.0 as isize, cell.1 as isize);
                let (nx, ny) = (x + dx, y + dy);
                if !free(nx, ny) {
                    continue;
                }
                let diagonal = dx != 0 && dy != 0;
                if diagonal && !(free(x + dx, y) && free(x, y + dy)) {
                    continue;
                }
                let next = (nx as usize, ny as usize);
                let cost = g + if diagonal { SQRT_2 } else { 1.0 };
                let index = next.1 * grid.width() + next.0;
                if cost < best[index] {
                    best[index] = cost;
                    open.push(Entry {
                        f: cost + octile(next),
                        g: cost,
                        cell: next,
                    });
                }
            }
        }
    }
    None
}

#[test]
fn map_has_benchmark_shape() {
    let grid = load_map(&data("movingai/random-32-32-20.map"), 1.0).unwrap();

    assert_eq!((grid.width(), grid.height()), (32, 32));
    // Row 0 of the file starts `..........@`, so column 10 of the top row is blocked.
    assert!(!grid.is_blocked(9, 0));
    assert!(grid.is_blocked(10, 0));
    // Row 1 starts with `@`.
    assert!(grid.is_blocked(0, 1));
    let blocked_share = grid.blocked_count() as f64 / 1024.0;
    assert!(
        (0.15..0.25).contains(&blocked_share),
        "blocked share {blocked_share}, expected about 20%"
    );
}

#[test]
fn astar_matches_every_scenario_length() {
    let grid = load_map(&data("movingai/random-32-32-20.map"), 1.0).unwrap();
    let scenarios = load_scen(&data("movingai/random-32-32-20-random-1.scen")).unwrap();
    assert_eq!(scenarios.len(), 409);

    for (index, scenario) in scenarios.iter().enumerate() {
        assert_eq!(scenario.map, "random-32-32-20.map");
        assert_eq!((scenario.map_width, scenario.map_height), (32, 32));
        let length = shortest_path_length(&grid, scenario.start, scenario.goal);
        let Some(length) = length else {
            panic!(
                "scenario {index}: no path from {:?} to {:?}",
                scenario.start, scenario.goal
            );
        };
        assert!(
            (length - scenario.optimal_length).abs() <= 1e-6,
            "scenario {index} from {:?} to {:?}: A* found {length}, the file says {}",
            scenario.start,
            scenario.goal,
            scenario.optimal_length
        );
    }
}

#[test]
fn scenario_endpoints_are_clear_in_distance_field() {
    let grid = load_map(&data("movingai/random-32-32-20.map"), 0.5).unwrap();
    let field = DistanceField::new(&grid);
    let scenarios = load_scen(&data("movingai/random-32-32-20-random-1.scen")).unwrap();

    for scenario in &scenarios {
        for (x, y) in [scenario.start, scenario.goal] {
            assert!(!grid.is_blocked(x, y), "cell ({x}, {y}) is blocked");
            assert!(
                field.value(x, y) >= 0.25,
                "cell ({x}, {y}): {}",
                field.value(x, y)
            );
            assert_eq!(field.sample(grid.cell_center(x, y)), field.value(x, y));
        }
    }
}

// URDF

/// Sum of every `<mass value="…"/>` in the file, found by scanning the text, independently of
/// the XML loader.
fn masses_by_text_scan(text: &str) -> f64 {
    let mut total = 0.0;
    for (position, _) in text.match_indices("<mass") {
        let rest = &text[position..];
        let value = rest
            .find("value=")
            .map(|offset| &rest[offset + "value=".len()..]);
        let value = value.expect("every <mass> has a value attribute");
        let quote = value.chars().next().unwrap();
        let end = value[1..].find(quote).unwrap() + 1;
        total += value[1..end].parse::<f64>().unwrap();
    }
    total
}

#[test]
fn husky_masses_sum_to_file_total() {
    let path = data("urdf/husky/husky.urdf");
    let robot = load_urdf(&path).unwrap();
    let scanned = masses_by_text_scan(&fs::read_to_string(&path).unwrap());

    assert!(
        (robot.total_mass() - scanned).abs() < 1e-9,
        "loader sums {} kg, the text scan {scanned} kg",
        robot.total_mass()
    );
    assert!(
        (robot.total_mass() - 44.0).abs() < 0.01,
        "total mass {} kg, expected 44.0 kg",
        robot.total_mass()
    );
    assert_eq!(robot.name, "husky_robot");
    assert_eq!(robot.root, "base_footprint");
}

#[test]
fn husky_mobile_base_is_plausible() {
    let robot = load_urdf(&data("urdf/husky/husky.urdf")).unwrap();
    // The file gives the wheel joints no <limit>, so the spec has to declare the wheel speed:
    // here 1.0 m/s, the Husky's published top speed, over the wheel radius.
    let wheel_speed = 1.0 / 0.17775;
    let options = MobileBaseOptions {
        max_wheel_speed: Some(wheel_speed),
        ..MobileBaseOptions::default()
    };

    let base = robot.mobile_base(&options).unwrap();

    assert_eq!(
        base.wheel_joints,
        [
            "front_left_wheel",
            "front_right_wheel",
            "rear_left_wheel",
            "rear_right_wheel"
        ]
    );
    assert_eq!(base.wheel_radius, 0.17775);
    assert!(
        (base.track_width - 0.5708).abs() < 1e-9,
        "track {}",
        base.track_width
    );
    let max_speed = base.max_speed.unwrap();
    assert!((max_speed - 1.0).abs() < 1e-12, "max speed {max_speed}");
    let turn_rate = base.max_turn_rate.unwrap();
    assert!(
        (turn_rate - 2.0 / 0.5708).abs() < 1e-9,
        "turn rate {turn_rate}"
    );

    let from_file_only = robot.mobile_base(&MobileBaseOptions::default()).unwrap();
    assert_eq!(from_file_only.max_speed, None);
}

#[test]
fn husky_joints_and_warnings() {
    let robot = load_urdf(&data("urdf/husky/husky.urdf")).unwrap();

    let wheel = robot.joint("front_left_wheel").unwrap();
    assert_eq!(wheel.parent, "base_link");
    assert_eq!(wheel.axis, [0.0, 1.0, 0.0]);
    assert_eq!(wheel.origin.xyz, [0.256, 0.2854, 0.03282]);
    assert_eq!(wheel.limit, None);

    // The IMU joint's origin still contains `$(optenv …)` substitutions from xacro.
    assert_eq!(robot.warnings.len(), 2, "{:?}", robot.warnings);
    for warning in &robot.warnings {
        assert!(
            matches!(warning, UrdfWarning::UnexpandedXacro { value, .. } if value.starts_with("$(optenv HUSKY_IMU")),
            "{warning}"
        );
    }

    let meshes = robot.require_meshes().unwrap();
    assert_eq!(meshes.len(), 5, "{meshes:?}");
    assert!(meshes.iter().all(|mesh| mesh.is_file()));
}

#[test]
fn racecar_warns_about_gazebo_plugins() {
    let robot = load_urdf(&data("urdf/racecar/racecar.urdf")).unwrap();

    let plugins: Vec<String> = robot
        .warnings
        .iter()
        .filter_map(|warning| match warning {
            UrdfWarning::GazeboPlugin { filename, .. } => Some(filename.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(
        plugins,
        [
            "libgazebo_ros_control.so",
            "libgazebo_ros_laser.so",
            "libgazebo_ros_camera.so"
        ]
    );
    assert_eq!(robot.warnings.len(), 3, "{:?}", robot.warnings);
    assert_eq!(
        robot.warnings[0].to_string(),
        "Gazebo plugin `gazebo_ros_control` from library `libgazebo_ros_control.so` is not loaded"
    );
    assert_eq!(robot.require_meshes().unwrap().len(), 8);
}

#[test]
fn racecar_mobile_base_from_joint_limits() {
    let robot = load_urdf(&data("urdf/racecar/racecar.urdf")).unwrap();

    let base = robot.mobile_base(&MobileBaseOptions::default()).unwrap();

    assert_eq!(
        base.wheel_joints,
        [
            "left_rear_wheel_joint",
            "right_rear_wheel_joint",
            "left_front_wheel_joint",
            "right_front_wheel_joint"
        ]
    );
    assert_eq!(base.wheel_radius, 0.05);
    // The front wheels hang from steering hinges at y = ±0.1 m, like the rear wheels.
    assert!(
        (base.track_width - 0.2).abs() < 1e-9,
        "track {}",
        base.track_width
    );
    assert_eq!(base.max_wheel_speed, Some(100.0));
    assert!((base.max_speed.unwrap() - 5.0).abs() < 1e-12);
    assert!((base.max_turn_rate.unwrap() - 50.0).abs() < 1e-9);
    let scanned =
        masses_by_text_scan(&fs::read_to_string(data("urdf/racecar/racecar.urdf")).unwrap());
    assert!(
        (robot.total_mass() - scanned).abs() < 1e-9,
        "{} vs {scanned}",
        robot.total_mass()
    );
}

#[test]
fn racecar_without_meshes_fails_only_when_geometry_required() {
    let folder = scratch("racecar_without_meshes");
    let urdf = folder.join("racecar.urdf");
    fs::copy(data("urdf/racecar/racecar.urdf"), &urdf).unwrap();

    let robot = load_urdf(&urdf).unwrap();

    let missing: Vec<&str> = robot
        .warnings
        .iter()
        .filter_map(|warning| match warning {
            UrdfWarning::MissingMesh { filename, .. } => Some(filename.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(missing.len(), 8, "{missing:?}");
    assert!(missing.contains(&"meshes/chassis.STL"));
    assert!(robot.mobile_base(&MobileBaseOptions::default()).is_ok());
    let error = robot.require_meshes().unwrap_err();
    assert!(matches!(&error, ContextError::MissingGeometry { missing, .. } if missing.len() == 8));
    assert!(error.to_string().contains("meshes/hokuyo.obj"), "{error}");
}

// Errors shared by every loader

#[test]
fn missing_files_are_not_found_errors() {
    let path = data("no-such-file.map");
    type Loader = Box<dyn Fn(&Path) -> Option<ContextError>>;
    let loaders: [(&str, Loader); 6] = [
        ("map", Box::new(|path| load_map(path, 1.0).err())),
        ("scen", Box::new(|path| load_scen(path).err())),
        ("urdf", Box::new(|path| UrdfRobot::load(path).err())),
        ("image", Box::new(|path| FloorImage::load(path, 0.05).err())),
        ("scene", Box::new(|path| load_scene(path).err())),
        ("text", Box::new(|path| load_text(path).err())),
    ];

    for (name, load) in loaders {
        let error = load(&path).unwrap_or_else(|| panic!("{name} loader accepted a missing file"));
        assert!(
            matches!(error, ContextError::NotFound { .. }),
            "{name}: {error}"
        );
        assert_eq!(error.path(), path);
        assert!(
            error
                .to_string()
                .ends_with("no-such-file.map: file not found"),
            "{error}"
        );
    }
}

#[test]
fn folder_is_unreadable() {
    let folder = scratch("folder_is_unreadable");

    let error = load_text(&folder).unwrap_err();

    assert!(matches!(error, ContextError::Read { .. }), "{error}");
    assert!(error.to_string().contains("not a regular file"), "{error}");
}

#[test]
fn oversized_file_is_rejected_unread() {
    let path = scratch("oversized_file_is_rejected_unread").join("huge.map");
    // A sparse file: it takes no disk space.
    fs::File::create(&path)
        .unwrap()
        .set_len(MAX_FILE_BYTES + 1)
        .unwrap();

    let error = load_map(&path, 1.0).unwrap_err();

    assert!(
        matches!(error, ContextError::FileTooLarge { bytes, .. } if bytes == MAX_FILE_BYTES + 1),
        "{error}"
    );
    assert!(error.to_string().contains("huge.map"), "{error}");
}

#[test]
fn binary_file_is_not_a_map() {
    let path = scratch("binary_file_is_not_a_map").join("plan.map");
    fs::write(&path, b"\x89PNG\r\n\x1a\n\xff\xfe").unwrap();

    let error = load_map(&path, 1.0).unwrap_err();

    assert!(
        error
            .to_string()
            .ends_with("plan.map: the file is not UTF-8 text (invalid byte at offset 0)"),
        "{error}"
    );
}

// Floor-plan images

/// Writes a 40×30 plan: white floor, a black wall along the left 4 columns, a red pick mark at
/// columns 20..=23 and rows 10..=13, and a blue drop mark at columns 30..=31 and rows 24..=25.
fn write_plan(path: &Path) {
    let mut plan = image::RgbImage::from_pixel(40, 30, image::Rgb([255, 255, 255]));
    for (x, y, pixel) in plan.enumerate_pixels_mut() {
        if x < 4 {
            *pixel = image::Rgb([0, 0, 0]);
        } else if (20..=23).contains(&x) && (10..=13).contains(&y) {
            *pixel = image::Rgb([255, 0, 0]);
        } else if (30..=31).contains(&x) && (24..=25).contains(&y) {
            *pixel = image::Rgb([0, 0, 255]);
        }
    }
    plan.save(path).unwrap();
}

#[test]
fn png_plan_gives_grid_and_sites() {
    let path = scratch("png_plan_gives_grid_and_sites").join("floor.png");
    write_plan(&path);
    let markers = [ColourMatch::exact(Rgb::RED), ColourMatch::exact(Rgb::BLUE)];

    let floor = FloorImage::load(&path, 0.05).unwrap();
    let grid = floor.occupancy(&ObstacleRule::Dark { threshold: 0.5 }, &markers);

    assert_eq!((grid.width(), grid.height()), (40, 30));
    assert_eq!(grid.blocked_count(), 4 * 30);
    assert!(grid.is_blocked(3, 0));
    assert!(!grid.is_blocked(21, 11));

    let picks = floor.sites(&ColourMatch::exact(Rgb::RED));
    let drops = floor.sites(&ColourMatch::exact(Rgb::BLUE));
    assert_eq!(picks.len(), 1);
    assert_eq!(drops.len(), 1);
    // Pick centroid: column 22, row 12 from the top, so y = (30 − 12) · 0.05.
    assert!((picks[0].position[0] - 1.1).abs() < 1e-12, "{:?}", picks[0]);
    assert!((picks[0].position[1] - 0.9).abs() < 1e-12, "{:?}", picks[0]);
    assert!(
        (drops[0].position[0] - 1.55).abs() < 1e-12,
        "{:?}",
        drops[0]
    );
    assert!(
        (drops[0].position[1] - 0.25).abs() < 1e-12,
        "{:?}",
        drops[0]
    );

    let light = load_image(&path, 0.05, &"light".parse().unwrap()).unwrap();
    assert!(light.is_blocked(10, 0));
    assert!(!light.is_blocked(0, 0));
}

#[test]
fn jpeg_plan_loads() {
    let folder = scratch("jpeg_plan_loads");
    let png = folder.join("floor.png");
    write_plan(&png);
    let jpeg = folder.join("floor.jpg");
    image::open(&png).unwrap().save(&jpeg).unwrap();

    let grid = load_image(&jpeg, 0.05, &ObstacleRule::Dark { threshold: 0.5 }).unwrap();

    assert_eq!((grid.width(), grid.height()), (40, 30));
    assert!(grid.is_blocked(1, 15));
    assert!(!grid.is_blocked(12, 15));
}

#[test]
fn text_named_png_is_rejected() {
    let path = scratch("text_named_png_is_rejected").join("floor.png");
    fs::write(&path, "this is a note, not a floor plan\n").unwrap();

    let error = FloorImage::load(&path, 0.05).unwrap_err();

    assert!(matches!(error, ContextError::Format { .. }), "{error}");
    assert!(
        error
            .to_string()
            .ends_with("floor.png: expected a PNG or JPEG image, but it looks like text"),
        "{error}"
    );
}

#[test]
fn oversized_image_names_file_and_size() {
    let path = scratch("oversized_image_names_file_and_size").join("huge.png");
    image::GrayImage::new(4097, 3).save(&path).unwrap();

    let error = FloorImage::load(&path, 0.05).unwrap_err();

    assert!(
        matches!(
            error,
            ContextError::ImageTooLarge {
                width: 4097,
                height: 3,
                ..
            }
        ),
        "{error}"
    );
    assert!(
        error
            .to_string()
            .ends_with("huge.png: the image is 4097×3 pixels, larger than the limit of 4096×4096"),
        "{error}"
    );
}

// Notes and scenes

#[test]
fn text_note_has_size_and_sha256() {
    let path = scratch("text_note_has_size_and_sha256").join("notes.md");
    fs::write(&path, "abc").unwrap();

    let note = load_text(&path).unwrap();

    assert_eq!(note.text, "abc");
    assert_eq!(note.bytes, 3);
    // SHA-256 of "abc" from FIPS 180-2, appendix B.1.
    assert_eq!(
        note.sha256_hex(),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
}

#[test]
fn scene_file_loads() {
    let path = scratch("scene_file_loads").join("scene.json");
    fs::write(
        &path,
        r#"{"version": 1,
            "obstacles": [{"name": "pillar", "pose": {"xyz": [1, 2, 1.5]},
                           "shape": {"type": "cylinder", "radius": 0.2, "length": 3}}],
            "sites": [{"name": "drop", "pose": {"xyz": [4, 0, 0], "rpy": [0, 0, 3.0]}}]}"#,
    )
    .unwrap();

    let scene = load_scene(&path).unwrap();

    assert_eq!(
        scene.obstacles[0].shape,
        SceneShape::Cylinder {
            radius: 0.2,
            length: 3.0
        }
    );
    assert_eq!(scene.site("drop").unwrap().pose.rpy[2], 3.0);
}
