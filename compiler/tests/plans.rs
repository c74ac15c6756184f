//! Snapshot tests of compiled plans: every example, and a table of small specs that each
//! exercise one construct.

use std::path::{Path, PathBuf};

use basin_compiler::Database;
use basin_compiler::plan::{CompileOptions, Plan, compile, to_text};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Compiles `text` as the file `name`, reading context files from `base`, and returns the
/// plan text or the rendered diagnostics.
fn compile_text(name: &str, text: &str, base: Option<PathBuf>) -> (Option<Plan>, String) {
    let db = Database::new();
    let file = db.add_file(name, text);
    let (plan, diagnostics) = compile(&db, file, &CompileOptions { base_dir: base, allow_outside: false });
    let rendered = basin_compiler::diagnostics::render(name, text, &diagnostics, false);
    (plan, rendered)
}

#[test]
fn examples_compile_to_reviewed_plans() {
    let mut names: Vec<String> = std::fs::read_dir(repo().join("examples"))
        .expect("examples folder")
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert!(names.len() >= 4, "found examples {names:?}");
    for name in names {
        let dir = repo().join("examples").join(&name);
        let path = dir.join(format!("{name}.basin"));
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let shown = format!("examples/{name}/{name}.basin");
        let (plan, diagnostics) = compile_text(&shown, &text, Some(dir.clone()));
        let plan = plan.unwrap_or_else(|| panic!("{shown} did not compile:\n{diagnostics}"));
        let first = to_text(&plan);
        // Compiling again, in a fresh database, gives the same bytes.
        let (again, _) = compile_text(&shown, &text, Some(dir));
        assert_eq!(first, to_text(&again.expect("second compile")), "{shown} is not deterministic");
        insta::assert_snapshot!(format!("example_{name}"), first);
    }
}

/// Small specs, one construct each: `(name, spec)`.
const CASES: &[(&str, &str)] = &[
    (
        "always_window",
        "use std.robots.double_integrator\nagent b = double_integrator {}\nconstraint c { always within [1 s, 2 s] b.velocity <= 2 m/s hard }\ngoal g { minimize abs(b.position) }\nplan { step: 0.5 s, horizon: 3 s }\n",
    ),
    (
        "eventually_soft_weight",
        "use std.robots.double_integrator\nagent b = double_integrator {}\ngoal g { eventually b.position >= 3 m soft weight 5 }\nplan { step: 1 s, horizon: 4 s }\n",
    ),
    (
        "until_and_or",
        "use std.robots.double_integrator\nagent b = double_integrator {}\ngoal g { b.velocity <= 1 m/s until b.position >= 2 m\n always b.position >= 0 m and b.position <= 5 m or b.velocity == 0 m/s }\nplan { step: 1 s, horizon: 2 s }\n",
    ),
    (
        "then_sequence",
        "use std.robots.double_integrator\nagent b = double_integrator {}\ngoal g { eventually b.position >= 1 m then eventually b.position <= 0 m }\nplan { step: 1 s, horizon: 2 s }\n",
    ),
    (
        "maximize_and_deadline",
        "use std.robots.double_integrator\nagent b = double_integrator {}\nlet target = 4 m\ngoal g { reach b.position -> target within 1 cm\n finish_by 10 s\n maximize b.velocity soft weight 0.5 }\nplan { step: 1 s, horizon: 2 s, time_limit: 30 s }\n",
    ),
    (
        "design_ranges_and_choice",
        "use std.materials.{abs_plastic, aluminum_6061, material}\nmodel beam { param height: m\n param stuff: material\n signal mass: kg = stuff.density * height * 1 m^2 }\ndesign d = beam { height: 1 cm ..= 5 cm, stuff: abs_plastic | aluminum_6061 }\ngoal g { minimize d.mass }\nrefine \"stiffer\" { d.stuff.elastic_modulus *= 1.1\n rerun g }\n",
    ),
    (
        "refine_timed_obstacle",
        "use std.robots.diff_drive\nagent r = diff_drive {}\ngoal g { reach r.position -> (1 m, 1 m) }\nplan { step: 1 s, horizon: 2 s }\nrefine \"pallet\" { at 3 s: add obstacle circle(40 cm) at (2 m, 2 m)\n at 5 s: r.max_speed = 0.5 m/s }\n",
    ),
];

#[test]
fn construct_table() {
    for (name, spec) in CASES {
        let (plan, diagnostics) = compile_text(&format!("{name}.basin"), spec, None);
        let plan = plan.unwrap_or_else(|| panic!("{name} did not compile:\n{diagnostics}"));
        insta::assert_snapshot!(format!("construct_{name}"), to_text(&plan));
    }
}

/// The parts of a plan that do not depend on how its source was written.
fn without_source(plan: &Plan) -> String {
    let text = to_text(plan);
    text.lines().filter(|l| !l.starts_with("source ") && !l.trim_start().starts_with('`')).collect::<Vec<_>>().join("\n")
}

#[test]
fn millimetres_and_grams_give_the_same_plan() {
    let metric = "use std.robots.double_integrator\nagent b = double_integrator { max_accel: 1.5 m/s^2, start: (0.25 m, 0 m/s) }\nlet mass = 2.5 kg\ngoal g { reach b.position -> 1.2 m within 0.01 m\n minimize abs(b.velocity) * mass }\nplan { step: 0.1 s, horizon: 1 s }\n";
    let small = "use std.robots.double_integrator\nagent b = double_integrator { max_accel: 1500 mm/s^2, start: (250 mm, 0 mm/s) }\nlet mass = 2500 g\ngoal g { reach b.position -> 1200 mm within 10 mm\n minimize abs(b.velocity) * mass }\nplan { step: 100 ms, horizon: 1000 ms }\n";
    let (a, da) = compile_text("metric.basin", metric, None);
    let (b, db) = compile_text("small.basin", small, None);
    let (a, b) = (a.unwrap_or_else(|| panic!("{da}")), b.unwrap_or_else(|| panic!("{db}")));
    assert_eq!(without_source(&a), without_source(&b));
}

#[test]
fn json_form_is_deterministic() {
    let spec = CASES[0].1;
    let (a, _) = compile_text("a.basin", spec, None);
    let (b, _) = compile_text("a.basin", spec, None);
    let a = serde_json::to_string_pretty(&a.expect("plan")).expect("json");
    let b = serde_json::to_string_pretty(&b.expect("plan")).expect("json");
    assert_eq!(a, b);
    assert!(!a.contains("-0.0"), "negative zero in {a}");
}

/// Specs that compile with a plan-level error: `(spec, expected code)`.
const PLAN_ERRORS: &[(&str, &str)] = &[
    ("use std.robots.double_integrator\nagent b = double_integrator {}\ngoal g { minimize abs(b.position) }\nplan { step: 0.3 s, horizon: 1 s }\n", "E0300"),
    ("use std.robots.double_integrator\nagent b = double_integrator {}\ngoal g { minimize abs(b.position) }\nplan { step: 0 s, horizon: 1 s }\n", "E0301"),
    ("use std.robots.double_integrator\nagent b = double_integrator {}\ngoal g { minimize abs(b.position) }\nplan { step: 2 s, horizon: 1 s }\n", "E0302"),
    (
        "use std.robots.double_integrator\nagent b = double_integrator {}\ngoal g { minimize abs(b.position) }\nplan { step: 1 ms, horizon: 60 s, solver: mppi { samples: 100000 } }\n",
        "E0303",
    ),
    ("use std.robots.double_integrator\nagent b = double_integrator { max_speed: 1 m/s, start: (0 m, 3 m/s) }\ngoal g { minimize abs(b.position) }\nplan { step: 1 s, horizon: 2 s }\n", "E0304"),
    ("use std.robots.double_integrator\nagent b = double_integrator {}\nlet k = 3 m\ngoal g { minimize k }\nplan { step: 1 s, horizon: 2 s }\n", "E0305"),
    ("use std.robots.double_integrator\nagent b = double_integrator {}\ngoal g { minimize abs(b.position) }\n", "E0307"),
];

#[test]
fn plan_errors() {
    for (spec, code) in PLAN_ERRORS {
        let db = Database::new();
        let file = db.add_file("case.basin", *spec);
        let (plan, diagnostics) = compile(&db, file, &CompileOptions::default());
        let codes: Vec<&str> = diagnostics.iter().map(|d| d.code.as_str()).collect();
        assert!(plan.is_none(), "{code}: a plan was produced for\n{spec}");
        assert!(codes.contains(code), "expected {code}, got {codes:?} for\n{spec}");
    }
}

#[test]
fn stdlib_modules_check_cleanly() {
    for m in basin_compiler::stdlib::MODULES {
        let db = Database::new();
        let file = db.add_file(m.path, m.source);
        let checked = basin_compiler::db::check_file(&db, file);
        let rendered = basin_compiler::diagnostics::render(m.path, m.source, &checked.diagnostics, false);
        assert!(checked.diagnostics.is_empty(), "{} has diagnostics:\n{rendered}", m.path);
    }
}

#[test]
fn infeasible_hard_constraint_is_a_warning() {
    let spec = "use std.robots.double_integrator\nagent b = double_integrator {}\nconstraint c { always abs(b.acceleration) >= 5 m/s^2 hard }\ngoal g { minimize abs(b.position) }\nplan { step: 1 s, horizon: 2 s }\n";
    let db = Database::new();
    let file = db.add_file("case.basin", spec);
    let (plan, diagnostics) = compile(&db, file, &CompileOptions::default());
    let codes: Vec<&str> = diagnostics.iter().map(|d| d.code.as_str()).collect();
    assert_eq!(codes, vec!["W0306"]);
    assert!(plan.is_some(), "the plan is still produced, so the run can explain the conflict");
    let note = &diagnostics[0].notes[0];
    assert!(note.contains("[0, 1]") && note.contains("[5, 5]"), "{note}");
}
