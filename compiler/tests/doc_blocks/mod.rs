//! Reading fenced code blocks out of the Markdown pages in `spec/`, and checking Basin
//! snippets with the compiler, for the tests that keep those pages true.

use basin_compiler::db::check_file;
use basin_compiler::{Database, Diagnostic};

/// One fenced block of a Markdown page.
pub struct Block {
    /// The words after the opening fence, e.g. `["basin", "triggers"]`.
    pub info: Vec<String>,
    pub text: String,
    /// The line of the opening fence, from 1.
    pub line: usize,
    /// The text of the nearest `## ` heading above the block, without the hashes.
    pub heading: Option<String>,
}

/// Reads the page at `relative`, a path from the repository root.
pub fn read_page(relative: &str) -> String {
    let path = format!("{}/../{relative}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {relative}: {e}"))
}

/// Collects the fenced blocks of `page` in order. A fence is a line that starts with
/// three backticks, and blocks do not nest.
pub fn blocks(page: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let mut heading = None;
    let mut open: Option<Block> = None;
    for (index, line) in page.lines().enumerate() {
        match open.as_mut() {
            Some(block) => {
                if line.trim_end() == "```" {
                    out.push(open.take().expect("a block is open"));
                } else {
                    block.text.push_str(line);
                    block.text.push('\n');
                }
            }
            None => {
                if let Some(info) = line.strip_prefix("```") {
                    let info = info.split_whitespace().map(str::to_string).collect();
                    open = Some(Block { info, text: String::new(), line: index + 1, heading: heading.clone() });
                } else if let Some(title) = line.strip_prefix("## ") {
                    heading = Some(title.trim().to_string());
                }
            }
        }
    }
    assert!(open.is_none(), "a fenced block is not closed");
    out
}

/// Checks `text` as a file of its own and returns every diagnostic.
pub fn check(db: &Database, name: &str, text: &str) -> Vec<Diagnostic> {
    let file = db.add_file(name, text);
    check_file(db, file).diagnostics.clone()
}

/// Formats diagnostics one per line, as `E0200: message`, for failure messages.
pub fn describe(diagnostics: &[Diagnostic]) -> String {
    if diagnostics.is_empty() {
        return "no diagnostics".to_string();
    }
    let lines: Vec<String> = diagnostics.iter().map(|d| format!("{}: {}", d.code.as_str(), d.message)).collect();
    lines.join("\n")
}
