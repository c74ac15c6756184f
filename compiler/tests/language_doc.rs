//! Keeps the examples of `spec/language.md` true: a ```basin block passes `basin check`
//! without any diagnostic, and a ```basin error E0xxx block reports that code.

mod doc_blocks;

use basin_compiler::Database;
use doc_blocks::{blocks, check, describe, read_page};

const PAGE: &str = "spec/language.md";

#[test]
fn language_examples_check() {
    let page = read_page(PAGE);
    let db = Database::new();
    let mut checked = 0;
    let mut failures = Vec::new();
    for block in blocks(&page) {
        let info: Vec<&str> = block.info.iter().map(String::as_str).collect();
        let name = format!("language-line-{}.basin", block.line);
        let section = block.heading.as_deref().unwrap_or("the introduction");
        match info.as_slice() {
            ["basin"] => {
                let found = check(&db, &name, &block.text);
                if !found.is_empty() {
                    failures.push(format!("line {} ({section}): the example should pass; it reports:\n{}", block.line, describe(&found)));
                }
            }
            ["basin", "error", code] => {
                let found = check(&db, &name, &block.text);
                if !found.iter().any(|d| d.code.as_str() == *code) {
                    failures.push(format!("line {} ({section}): the example should report {code}; it reports:\n{}", block.line, describe(&found)));
                }
            }
            ["basin", ..] => failures.push(format!("line {}: unknown tag {info:?}, expected ```basin or ```basin error E0xxx", block.line)),
            _ => continue,
        }
        checked += 1;
    }
    assert!(checked > 0, "{PAGE} has no basin examples");
    assert!(failures.is_empty(), "{} of {checked} examples in {PAGE} are wrong:\n\n{}", failures.len(), failures.join("\n\n"));
}
