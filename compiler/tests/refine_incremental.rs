//! Incremental refinement: applying a refinement sets the edited parameters' inputs in the
//! query database, and rebuilding the plan re-executes `term_build` only for the terms that
//! read an edited parameter. Every other term's build is reused, and so is every term's
//! `term_reads`, which depends on the plan's structure alone.
//!
//! Each case compiles an example, builds its plan once, applies one refinement while the
//! database records which queries execute (`Database::start_log`), builds the plan again,
//! and compares the executed queries with the expected set, named `term_build(TERM)`.

use std::collections::BTreeSet;
use std::path::Path;

use basin_compiler::Database;
use basin_compiler::energy::{Inputs, evaluate};
use basin_compiler::plan::refine::Refiner;
use basin_compiler::plan::{CompileOptions, Plan, compile};

fn example(name: &str) -> Plan {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(name);
    let text = std::fs::read_to_string(dir.join(format!("{name}.basin"))).expect("example");
    let db = Database::new();
    let file = db.add_file(format!("{name}.basin"), text);
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

/// Applies `refinement` of example `name` and returns the queries that executed while the
/// plan was rebuilt, each `query(TERM)`, with the plans before and after.
fn refine(name: &str, refinement: &str) -> (BTreeSet<String>, Plan, Plan) {
    let plan = example(name);
    let mut db = Database::with_query_log();
    let refiner = Refiner::new(&db, plan.clone());
    let before = refiner.plan(&db);
    let step = plan
        .refinements
        .iter()
        .find(|r| r.name == refinement)
        .expect("refinement");
    db.start_log();
    refiner.apply(&mut db, step);
    let after = refiner.plan(&db);
    let log = db.take_log();
    // The log names a term by its salsa id; `term_ids` maps ids back to term names.
    let names = term_ids(&plan);
    let executed = log.iter().map(|entry| readable(entry, &names)).collect();
    (executed, before, after)
}

/// The salsa id of each term's `TermRef`, as the query log prints it, with the term's name.
/// Ids are assigned in the order `Refiner::plan` interns the terms, so a fresh database
/// that builds the same plan gives the same ids.
fn term_ids(plan: &Plan) -> Vec<(String, String)> {
    let db = Database::with_query_log();
    let refiner = Refiner::new(&db, plan.clone());
    db.start_log();
    refiner.plan(&db);
    let log = db.take_log();
    let builds: Vec<&String> = log
        .iter()
        .filter(|e| e.starts_with("term_build("))
        .collect();
    assert_eq!(
        builds.len(),
        plan.terms.len(),
        "one build per term on the first run: {log:?}"
    );
    builds
        .iter()
        .zip(&plan.terms)
        .map(|(e, t)| {
            (
                e.trim_start_matches("term_build").to_string(),
                t.name.clone(),
            )
        })
        .collect()
}

fn readable(entry: &str, names: &[(String, String)]) -> String {
    let Some((query, rest)) = entry.split_once('(') else {
        return entry.to_string();
    };
    let id = format!("({rest}");
    match names.iter().find(|(i, _)| *i == id) {
        Some((_, name)) => format!("{query}({name})"),
        None => entry.to_string(),
    }
}

#[test]
fn stronger_armrest_rebuilds_only_the_bending_term() {
    let (executed, before, after) = refine("chair", "stronger armrest");
    let expected: BTreeSet<String> = ["term_build(holds_weight.1)".to_string()].into();
    assert_eq!(
        executed, expected,
        "queries that executed after the refinement"
    );

    // The rebuilt term folds the new strength: its margin grows by 15% of the allowed stress.
    let value = |plan: &Plan, term: usize| {
        let params: Vec<f64> = plan.params.iter().map(|p| p.value.0).collect();
        let states = vec![0.03; 4];
        let inputs = Inputs {
            time0: 0.0,
            states: &states,
            actions: &[],
            design: &[0.014, 1.0, 0.36],
            params: &params,
            fields: &[],
        };
        let nodes = basin_compiler::energy::evaluate_nodes(plan, &inputs);
        (
            plan.terms[term].robustness.map(|r| nodes[r as usize].at(0)),
            evaluate(plan, &inputs).terms[term],
        )
    };
    let (margin_before, margin_after) = (value(&before, 0).0.unwrap(), value(&after, 0).0.unwrap());
    let allowed = 310e6 / 1.5;
    assert!(
        (margin_after - margin_before - 0.15 * allowed).abs() < 1e-3,
        "margin {margin_before} -> {margin_after}"
    );
    // Terms that read no edited parameter keep their values.
    for term in 1..before.terms.len() {
        assert_eq!(
            value(&before, term),
            value(&after, term),
            "term {}",
            before.terms[term].name
        );
    }
    // The refined plan reads no parameter: every value is folded in.
    assert!(
        !after
            .graph
            .nodes
            .iter()
            .any(|n| matches!(n, basin_compiler::plan::Node::Param { .. }))
    );
    let tensile = after
        .params
        .iter()
        .find(|p| p.name == "aluminum_6061.tensile_strength")
        .unwrap();
    assert_eq!(tensile.value.0, 310e6 * 1.15);
}

#[test]
fn refined_plan_before_any_edit_matches_the_compiled_energy() {
    let plan = example("chair");
    let db = Database::new();
    let refined = Refiner::new(&db, plan.clone()).plan(&db);
    let params: Vec<f64> = plan.params.iter().map(|p| p.value.0).collect();
    for design in [[0.01, 0.0, 0.25], [0.02, 1.0, 0.38], [0.014, 1.0, 0.36]] {
        let states = [0.0, 0.021, 0.0, 0.001];
        let inputs = Inputs {
            time0: 0.0,
            states: &states,
            actions: &[],
            design: &design,
            params: &params,
            fields: &[],
        };
        let (a, b) = (evaluate(&plan, &inputs), evaluate(&refined, &inputs));
        for (x, y) in a.terms.iter().zip(&b.terms) {
            assert!(
                (x - y).abs() <= 1e-12 * x.abs().max(1.0),
                "{design:?}: {x} vs {y}"
            );
        }
    }
}
