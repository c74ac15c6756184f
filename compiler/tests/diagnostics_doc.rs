//! Keeps `spec/diagnostics.md` true: every code of `Code::ALL` has a section, the
//! `basin triggers` snippet of each section reports that code, its `basin ok` snippet
//! passes `basin check` without any diagnostic, and every code of `Code::PLAN` has a row
//! in the table of `basin compile` codes.

mod doc_blocks;

use std::collections::BTreeMap;

use basin_compiler::{Code, Database};
use doc_blocks::{Block, blocks, check, describe, read_page};

const PAGE: &str = "spec/diagnostics.md";

/// The snippets of one `## E0xxx: title` section.
#[derive(Default)]
struct Section<'a> {
    triggers: Vec<&'a Block>,
    ok: Vec<&'a Block>,
}

/// Collects the codes named by the page's `## E0xxx: title` headings, in page order.
fn heading_codes(page: &str) -> Vec<String> {
    page.lines()
        .filter_map(|line| line.strip_prefix("## "))
        .filter_map(|title| title.split_once(':'))
        .map(|(code, _)| code.trim().to_string())
        .filter(|code| code.starts_with('E') || code.starts_with('W'))
        .collect()
}

/// Groups the `basin` blocks of the page by the code of their section.
fn sections(all: &[Block]) -> BTreeMap<String, Section<'_>> {
    let mut out: BTreeMap<String, Section<'_>> = BTreeMap::new();
    for block in all {
        if block.info.first().map(String::as_str) != Some("basin") {
            continue;
        }
        let heading = block.heading.as_deref().unwrap_or_else(|| panic!("line {}: a basin block before any heading", block.line));
        let code = heading.split_once(':').map_or(heading, |(code, _)| code).trim().to_string();
        let section = out.entry(code).or_default();
        match block.info.get(1).map(String::as_str) {
            Some("triggers") => section.triggers.push(block),
            Some("ok") => section.ok.push(block),
            other => panic!("line {}: a basin block tagged {other:?}, expected `triggers` or `ok`", block.line),
        }
    }
    out
}

#[test]
fn every_code_has_a_section() {
    let page = read_page(PAGE);
    let documented = heading_codes(&page);
    for code in Code::ALL {
        assert!(documented.iter().any(|c| c == code.as_str()), "{PAGE} has no `## {}: …` section", code.as_str());
    }
}

#[test]
fn plan_codes_are_listed() {
    let page = read_page(PAGE);
    for code in Code::PLAN {
        assert!(page.contains(&format!("| {} |", code.as_str())), "{PAGE} has no table row for `{}`", code.as_str());
    }
}

#[test]
fn sections_name_known_codes_once() {
    let page = read_page(PAGE);
    let documented = heading_codes(&page);
    for (i, code) in documented.iter().enumerate() {
        assert!(Code::ALL.iter().any(|c| c.as_str() == code), "{PAGE} documents `{code}`, which is not in `Code::ALL`");
        assert!(!documented[..i].contains(code), "{PAGE} documents `{code}` twice");
    }
}

#[test]
fn sections_have_one_snippet_each() {
    let page = read_page(PAGE);
    let all = blocks(&page);
    let sections = sections(&all);
    for code in heading_codes(&page) {
        let section = sections.get(&code);
        assert_eq!(section.map_or(0, |s| s.triggers.len()), 1, "{code}: expected one ```basin triggers``` block");
        assert_eq!(section.map_or(0, |s| s.ok.len()), 1, "{code}: expected one ```basin ok``` block");
    }
}

#[test]
fn triggers_snippets_report_their_code() {
    let page = read_page(PAGE);
    let all = blocks(&page);
    let db = Database::new();
    let mut failures = Vec::new();
    for (code, section) in sections(&all) {
        for block in section.triggers {
            let found = check(&db, &format!("{code}-triggers.basin"), &block.text);
            if !found.iter().any(|d| d.code.as_str() == code) {
                failures.push(format!(
                    "line {}: the `triggers` snippet of {code} does not report {code}; it reports:\n{}",
                    block.line,
                    describe(&found)
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{PAGE} has wrong snippets:\n\n{}", failures.join("\n\n"));
}

#[test]
fn ok_snippets_pass_check() {
    let page = read_page(PAGE);
    let all = blocks(&page);
    let db = Database::new();
    let mut failures = Vec::new();
    for (code, section) in sections(&all) {
        for block in section.ok {
            let found = check(&db, &format!("{code}-ok.basin"), &block.text);
            if !found.is_empty() {
                failures.push(format!("line {}: the `ok` snippet of {code} should pass; it reports:\n{}", block.line, describe(&found)));
            }
        }
    }
    assert!(failures.is_empty(), "{PAGE} has wrong snippets:\n\n{}", failures.join("\n\n"));
}
