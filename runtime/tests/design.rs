//! Design problems on the chair examples, checked against the beam and tipping formulas
//! evaluated independently in the test.

use std::path::{Path, PathBuf};

use basin_compiler::Database;
use basin_compiler::plan::{CompileOptions, Plan, compile};
use basin_runtime::design::{self, DesignSettings};

fn example(name: &str) -> Plan {
    let dir: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples").join(name);
    let text = std::fs::read_to_string(dir.join(format!("{name}.basin"))).expect("example");
    let db = Database::new();
    let file = db.add_file(format!("{name}.basin"), text);
    let (plan, diagnostics) = compile(&db, file, &CompileOptions { base_dir: Some(dir), allow_outside: false });
    plan.unwrap_or_else(|| panic!("{name} did not compile: {diagnostics:?}"))
}

const LBF: f64 = 4.4482216152605;
const G0: f64 = 9.80665;

/// The chair's mass from its geometry, as `std.furniture.office_chair` defines it.
fn chair_mass(thickness: f64, density: f64, radius: f64) -> f64 {
    8.0 + 2.0 * density * thickness * 0.05 * 0.25 + 5.0 * 2.5 * radius
}

#[test]
fn chair_design_is_light_and_holds() {
    let plan = example("chair");
    let params = design::params_after(&plan, &[]);
    let settings = DesignSettings::from_plan(&plan);
    let solution = design::solve(&plan, &params, &settings, None);
    let [thickness, material, radius] = solution.values[..] else { panic!("three design variables: {:?}", solution.values) };
    println!("{}", solution.explanation.render());

    // ABS cannot hold the load at the thickest allowed armrest, so aluminum is the answer.
    assert_eq!(material, 1.0, "expected aluminum_6061, got choice {material}");

    // Thinnest armrest that holds: σ = 6 F L / (b h²) ≤ yield / 1.5.
    let load = 300.0 * LBF;
    let allowed = 276e6 / 1.5;
    let h_min = (6.0 * load * 0.25 / (0.05 * allowed)).sqrt();
    assert!(thickness >= h_min * 0.999, "armrest {thickness} m is thinner than the {h_min} m that holds");
    assert!(thickness <= h_min * 1.05, "armrest {thickness} m is heavier than needed ({h_min} m holds)");

    // Smallest base that keeps 2 cm of tip margin, by fixed-point iteration on the weight.
    let mut r_min = 0.3;
    for _ in 0..50 {
        let weight = chair_mass(thickness, 2700.0, r_min) * G0;
        let lever = load * 0.30 / (load + weight);
        r_min = (lever + 0.02) / (36f64.to_radians().cos());
    }
    assert!(radius >= r_min * 0.995, "base radius {radius} m tips (needs {r_min} m)");
    assert!(radius <= r_min * 1.05, "base radius {radius} m is larger than needed ({r_min} m)");
    assert!(solution.explanation.violated.is_empty(), "hard terms violated: {:?}", solution.explanation.violated);
}

#[test]
fn stronger_armrest_resolves_warm_and_no_heavier() {
    let plan = example("chair");
    let settings = DesignSettings::from_plan(&plan);
    let before = design::solve(&plan, &design::params_after(&plan, &[]), &settings, None);
    let params = design::params_after(&plan, &["stronger armrest"]);
    let tensile = plan.params.iter().position(|p| p.name == "aluminum_6061.tensile_strength").expect("param");
    assert!((params[tensile] - 310e6 * 1.15).abs() < 1.0, "tensile strength {}", params[tensile]);
    let after = design::solve(&plan, &params, &settings, Some(&before.values));
    let mass = |v: &[f64]| chair_mass(v[0], if v[1] == 1.0 { 2700.0 } else { 1050.0 }, v[2]);
    assert!(mass(&after.values) <= mass(&before.values) + 1e-9, "after {:?} before {:?}", after.values, before.values);
    assert!(after.explanation.violated.is_empty());

    // The refined design holds the load in the physics scenario, not only in the formulas.
    let outcome = basin_runtime::scenario::replay_design(&plan, &after.values).expect("load test");
    assert!(!outcome.tipped, "the chair tipped in simulation: {outcome:?}");
    assert!(outcome.tip_margin > 0.0, "simulated tip margin {} m", outcome.tip_margin);
}

#[test]
fn overload_names_the_conflicting_constraint() {
    let plan = example("chair-overload");
    let params = design::params_after(&plan, &[]);
    let settings = DesignSettings { samples: 64, iterations: 4, ..DesignSettings::from_plan(&plan) };
    let solution = design::solve(&plan, &params, &settings, None);
    assert!(!solution.explanation.violated.is_empty(), "no hard term violated:\n{}", solution.explanation.render());
    let conflict = design::conflicting_hard_terms(&plan, &params, &settings);
    let names: Vec<&str> = conflict.iter().map(|&i| plan.terms[i].name.as_str()).collect();
    assert_eq!(names, vec!["holds_weight.1"], "the bending constraint alone is infeasible");
}

#[test]
fn explanation_shares_sum_to_one() {
    let plan = example("chair");
    let params = design::params_after(&plan, &[]);
    let explanation = design::explain(&plan, &[0.02, 1.0, 0.38], &params);
    let sum: f64 = explanation.terms.iter().map(|t| t.share).sum();
    assert!((sum - 1.0).abs() < 1e-9, "shares sum to {sum}");
    let dominant = explanation.dominant.expect("a dominant term");
    assert_eq!(explanation.terms[dominant].name, "light.1", "{}", explanation.render());
}
