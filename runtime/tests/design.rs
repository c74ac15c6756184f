//! Design problems on the chair examples: solved over a small surrogate of the rapier load
//! test, validated in rapier, refined through the query database, and explained. The
//! expected values come from the beam formula and the energy definitions, evaluated
//! independently in the test.

use std::path::{Path, PathBuf};

use basin_compiler::Database;
use basin_compiler::energy::Shape;
use basin_compiler::plan::refine::Refiner;
use basin_compiler::plan::{CompileOptions, Plan, compile};
use basin_runtime::design::{self, DesignSettings, OutcomeModel, Problem, SurrogateOutcomes};
use basin_runtime::model::{Surrogate, SurrogateOrigin, SurrogateTarget, ensure_surrogate};

/// Compiles an example with a smaller surrogate than its spec requests, so tests stay fast.
fn example(name: &str) -> Plan {
    let dir: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(name);
    let text = std::fs::read_to_string(dir.join(format!("{name}.basin"))).expect("example");
    let small = text.replace("samples: 2000, epochs: 1500", "samples: 300, epochs: 400");
    assert_ne!(
        small, text,
        "the example's world settings changed; update this test"
    );
    let db = Database::new();
    let file = db.add_file(format!("{name}.basin"), small);
    let (plan, diagnostics) = compile(
        &db,
        file,
        &CompileOptions {
            base_dir: Some(dir),
            allow_outside: false,
        },
    );
    plan.unwrap_or_else(|| panic!("{name} did not compile: {diagnostics:?}"))
}

/// Creates a scratch folder of this test process for surrogate checkpoints.
fn scratch(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("basin-design-{test}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn train(plan: &Plan, dir: &Path, previous: Option<Surrogate>) -> (Surrogate, SurrogateOrigin) {
    let target = SurrogateTarget::select(plan)
        .unwrap()
        .expect("the chair reads outcomes");
    ensure_surrogate(
        plan,
        &target,
        &dir.join("chair.surrogate.safetensors"),
        previous,
    )
    .expect("surrogate")
}

fn outcomes<'a>(plan: &'a Plan, surrogate: &'a Surrogate) -> SurrogateOutcomes<'a> {
    SurrogateOutcomes {
        surrogate,
        target: SurrogateTarget::select(plan).unwrap().unwrap(),
        n_states: Shape::of(plan).n_states,
    }
}

const LBF: f64 = 4.4482216152605;

/// The chair's mass from its geometry, as `std.furniture.office_chair` defines it.
fn chair_mass(v: &[f64]) -> f64 {
    let density = if v[1] == 1.0 { 2700.0 } else { 1050.0 };
    8.0 + 2.0 * density * v[0] * 0.05 * 0.25 + 5.0 * 2.5 * v[2]
}

/// Thinnest aluminium armrest whose bending stress σ = 6 F L / (b h²) stays within the
/// tensile strength over the safety factor 1.5.
fn thinnest(tensile: f64) -> f64 {
    (6.0 * 300.0 * LBF * 0.25 / (0.05 * tensile / 1.5)).sqrt()
}

#[test]
fn chair_holds_in_simulation_and_stronger_armrest_is_no_heavier() {
    let dir = scratch("chair");
    let plan = example("chair");
    let settings = DesignSettings::from_plan(&plan);
    let mut db = Database::new();
    let refiner = Refiner::new(&db, plan.clone());
    let before_plan = refiner.plan(&db);
    let (surrogate, origin) = train(&before_plan, &dir, None);
    assert!(matches!(origin, SurrogateOrigin::Trained(_)), "{origin:?}");
    let params = refiner.values(&db);
    let model = outcomes(&before_plan, &surrogate);
    let before = design::solve(
        &Problem::new(&before_plan, &params, Some(&model as &dyn OutcomeModel)),
        &settings,
        None,
    );
    println!("{}", before.explanation.render());
    let [thickness, material, _] = before.values[..] else {
        panic!("three design variables: {:?}", before.values)
    };
    // ABS cannot carry the load at the thickest allowed armrest, so aluminium is expected.
    assert_eq!(
        material, 1.0,
        "expected aluminum_6061, got choice {material}"
    );
    let h = thinnest(310e6);
    assert!(
        thickness >= h * 0.999 && thickness <= h * 1.05,
        "armrest {thickness} m, the thinnest that holds is {h} m"
    );
    assert!(
        before.explanation.violated.is_empty(),
        "{}",
        before.explanation.render()
    );

    // The validated design carries the load in the physics scenario, not only in the surrogate.
    let outcome =
        basin_runtime::scenario::replay_design(&before_plan, &before.values).expect("load test");
    assert!(
        !outcome.tipped && outcome.tip_margin > 0.0,
        "the chair tips in simulation: {outcome:?}"
    );

    // The refinement edits a strength that only the bending formula reads, so the
    // surrogate is reused and the re-solve starts from the previous solution.
    let stronger = plan
        .refinements
        .iter()
        .find(|r| r.name == "stronger armrest")
        .expect("refinement");
    let applied = refiner.apply(&mut db, stronger);
    assert!(
        applied
            .changes
            .iter()
            .any(|c| c.name == "aluminum_6061.tensile_strength"
                && (c.after - 310e6 * 1.15).abs() < 1.0),
        "{applied:?}"
    );
    assert_eq!(applied.reruns, vec!["stability".to_string()]);
    let after_plan = refiner.plan(&db);
    let (surrogate, origin) = train(&after_plan, &dir, Some(surrogate));
    assert_eq!(origin, SurrogateOrigin::Reused);
    let params = refiner.values(&db);
    let model = outcomes(&after_plan, &surrogate);
    let after = design::solve(
        &Problem::new(&after_plan, &params, Some(&model as &dyn OutcomeModel)),
        &settings,
        Some(&before.values),
    );
    let h = thinnest(310e6 * 1.15);
    assert!(
        after.values[0] >= h * 0.999 && after.values[0] <= h * 1.05,
        "armrest {} m, the thinnest that holds is {h} m",
        after.values[0]
    );
    assert!(
        chair_mass(&after.values) <= chair_mass(&before.values),
        "after {:?} ({} kg), before {:?} ({} kg)",
        after.values,
        chair_mass(&after.values),
        before.values,
        chair_mass(&before.values)
    );
    let outcome =
        basin_runtime::scenario::replay_design(&after_plan, &after.values).expect("load test");
    assert!(
        !outcome.tipped && outcome.tip_margin > 0.0,
        "the refined chair tips in simulation: {outcome:?}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn surrogate_retrains_when_a_refinement_edits_a_scenario_input() {
    let dir = scratch("retrain");
    let plan = example("chair");
    let (first, _) = train(&plan, &dir, None);
    let mut heavier = plan.clone();
    let frame = heavier
        .params
        .iter()
        .position(|p| p.name == "chair.frame_mass")
        .expect("frame mass");
    heavier.params[frame].value.0 = 12.0;
    let (_, origin) = train(&heavier, &dir, Some(first));
    assert_eq!(
        origin,
        SurrogateOrigin::FineTuned {
            path: dir.join("chair.surrogate.safetensors"),
            changed: vec!["chair.frame_mass".into()]
        }
    );
    // The fine-tuned checkpoint is saved and fits the edited plan on the next run.
    let (_, origin) = train(&heavier, &dir, None);
    assert!(matches!(origin, SurrogateOrigin::Loaded(_)), "{origin:?}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn overload_names_the_conflicting_constraint() {
    let dir = scratch("overload");
    let plan = example("chair-overload");
    let (surrogate, _) = train(&plan, &dir, None);
    let params: Vec<f64> = plan.params.iter().map(|p| p.value.0).collect();
    let settings = DesignSettings {
        samples: 64,
        iterations: 4,
        ..DesignSettings::from_plan(&plan)
    };
    let model = outcomes(&plan, &surrogate);
    let problem = Problem::new(&plan, &params, Some(&model as &dyn OutcomeModel));
    let solution = design::solve(&problem, &settings, None);
    assert!(
        !solution.explanation.violated.is_empty(),
        "no hard term violated:\n{}",
        solution.explanation.render()
    );
    let conflict = design::conflicting_hard_terms(&problem, &settings);
    let names: Vec<(&str, u32)> = conflict
        .iter()
        .map(|&i| (plan.terms[i].name.as_str(), plan.terms[i].line))
        .collect();
    // 2000 lbf needs a 35.9 mm aluminium armrest (σ = 6 F L / (b h²)), more than 30 mm.
    assert!(thinnest(310e6) * (2000.0f64 / 300.0).sqrt() > 0.03);
    assert_eq!(
        names,
        vec![("holds_weight.1", 19)],
        "the bending constraint alone is infeasible"
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// `W · softplus_τ(−r)`, the energy of a hard condition with robustness `r`.
fn hard_energy(r: f64) -> f64 {
    1000.0 * 0.01 * (1.0 + (-r / 0.01).exp()).ln()
}

/// Explanations name the dominant term and the tightest hard constraint, for designs and
/// simulated tip margins given as data. The expected names come from energies computed by
/// hand.
#[test]
fn explanations_name_dominant_and_tightest_terms() {
    let plan = example("chair");
    let params: Vec<f64> = plan.params.iter().map(|p| p.value.0).collect();
    let tip = SurrogateTarget::select(&plan)
        .unwrap()
        .unwrap()
        .design
        .states
        .iter()
        .position(|s| s.name == "tip_margin")
        .unwrap();
    let cases: [([f64; 3], f64); 4] = [
        // Feasible and roomy: the mass dominates.
        ([0.02, 1.0, 0.38], 0.05),
        // Tipping: the tip constraint dominates and is the tightest.
        ([0.02, 1.0, 0.26], -0.03),
        // ABS at 10 mm breaks: the bending constraint dominates and is the tightest.
        ([0.01, 0.0, 0.38], 0.05),
        // Aluminium just holding at 14 mm: 1.2% of bending margin is tighter than 1 mm of
        // tip margin (4.8%), though 1 mm is the smaller number in SI units.
        ([0.014, 1.0, 0.36], 0.021),
    ];
    for (design, tip_margin) in cases {
        let mut states = vec![0.0; Shape::of(&plan).n_states];
        states[tip] = tip_margin;
        let explanation = design::explain(&plan, &design, &params, &states);
        let tensile = if design[1] == 1.0 { 310e6 } else { 44e6 };
        let bending = tensile / 1.5 - 6.0 * 300.0 * LBF * 0.25 / (0.05 * design[0] * design[0]);

        let stress = 6.0 * 300.0 * LBF * 0.25 / (0.05 * design[0] * design[0]);
        // Margins relative to the larger side of each comparison.
        let relative = [
            bending / stress.max(tensile / 1.5),
            (tip_margin - 0.02) / tip_margin.abs().max(0.02),
        ];
        let expected = [
            ("holds_weight.1", Some(bending), hard_energy(bending)),
            (
                "holds_weight.2",
                Some(tip_margin - 0.02),
                hard_energy(tip_margin - 0.02),
            ),
            ("light.1", None, chair_mass(&design)),
        ];
        for ((name, r, e), t) in expected.iter().zip(&explanation.terms) {
            assert_eq!(t.name, *name);
            assert!(
                (t.energy - e).abs() <= 1e-9 * e.abs().max(1.0),
                "{name} at {design:?}: energy {} expected {e}",
                t.energy
            );
            if let Some(r) = r {
                assert!(
                    (t.robustness.unwrap() - r).abs() <= 1e-9 * r.abs().max(1.0),
                    "{name}: margin {:?} expected {r}",
                    t.robustness
                );
            }
        }
        let dominant = expected
            .iter()
            .max_by(|a, b| a.2.total_cmp(&b.2))
            .unwrap()
            .0;
        let tightest = if relative[0] < relative[1] {
            "holds_weight.1"
        } else {
            "holds_weight.2"
        };
        for (t, r) in explanation.terms.iter().zip(relative) {
            assert!(
                (t.relative.unwrap() - r).abs() < 1e-9,
                "{}: relative margin {:?} expected {r}",
                t.name,
                t.relative
            );
        }
        assert_eq!(
            explanation.terms[explanation.dominant.unwrap()].name,
            dominant,
            "dominant at {design:?}\n{}",
            explanation.render()
        );
        assert_eq!(
            explanation.terms[explanation.tightest_hard.unwrap().0].name,
            tightest,
            "tightest at {design:?}\n{}",
            explanation.render()
        );
        let sum: f64 = explanation.terms.iter().map(|t| t.share).sum();
        assert!((sum - 1.0).abs() < 1e-9, "shares sum to {sum}");
    }
}

/// Compiles a spec given as text.
fn spec(text: &str) -> Plan {
    let db = Database::new();
    let file = db.add_file("spec.basin", text.to_string());
    let (plan, diagnostics) = compile(&db, file, &CompileOptions::default());
    plan.unwrap_or_else(|| panic!("the spec did not compile: {diagnostics:?}"))
}

#[test]
fn outcome_setup_errors_are_reported() {
    let chair = "use std.materials.{abs_plastic, aluminum_6061}\nuse std.furniture.office_chair\n\
        design chair = office_chair { armrest_thickness: 8 mm ..= 30 mm, armrest_material: abs_plastic | aluminum_6061, base_radius: 25 cm ..= 40 cm }\n\
        let occupant = 300 lbf\nconstraint stands { chair.tip_margin >= 2 cm hard }\ngoal light { minimize chair.mass }\n";
    let error = SurrogateTarget::select(&spec(chair))
        .err()
        .expect("no world simulates the chair")
        .to_string();
    assert!(
        error.contains("has no `learned` world that simulates it"),
        "{error}"
    );
    assert!(
        error.contains("try `world stability = learned { from simulate(chair, load_test(LOAD))"),
        "{error}"
    );

    // A file at the checkpoint path that is not a surrogate is reported, not overwritten.
    let plan = spec(&format!(
        "{chair}world stability = learned {{ from simulate(chair, load_test(occupant)), samples: 16, epochs: 2 }}\n"
    ));
    let dir = scratch("corrupt");
    let path = dir.join("chair.surrogate.safetensors");
    std::fs::write(&path, b"not a checkpoint").unwrap();
    let target = SurrogateTarget::select(&plan).unwrap().unwrap();
    let error = ensure_surrogate(&plan, &target, &path, None)
        .err()
        .expect("an unreadable checkpoint")
        .to_string();
    assert!(
        error.contains("chair.surrogate.safetensors") && error.contains("not a safetensors file"),
        "{error}"
    );
    assert_eq!(std::fs::read(&path).unwrap(), b"not a checkpoint");
    std::fs::remove_dir_all(&dir).ok();
}
