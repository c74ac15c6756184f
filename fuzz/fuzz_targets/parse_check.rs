//! Feeds arbitrary bytes to the whole front end: cutting, parsing and checking through the
//! query database, then the formatter, which must be idempotent when it succeeds.

#![no_main]

use std::sync::Mutex;

use basin_compiler::db::check_file;
use basin_compiler::fmt::format_source;
use basin_compiler::{Database, SourceFile};
use libfuzzer_sys::fuzz_target;
use salsa::Setter;

/// One database for the whole run. Each input replaces the text of the same file, as an editor
/// would, so the standard library is checked once. A fresh database per input made the run
/// about six times slower when measured.
static DATABASE: Mutex<Option<(Database, SourceFile)>> = Mutex::new(None);

fuzz_target!(|data: &[u8]| {
    // Invalid UTF-8 is replaced rather than skipped, so every input reaches the parser.
    let text = String::from_utf8_lossy(data).into_owned();

    let mut guard = DATABASE.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let (db, file) = guard.get_or_insert_with(|| {
        let db = Database::new();
        let file = db.add_file("fuzz.basin", String::new());
        (db, file)
    });
    file.set_text(db).to(text.clone());
    let _ = check_file(db, *file);

    if let Ok(formatted) = format_source(&text) {
        let again = format_source(&formatted).expect("formatted text has no syntax errors");
        assert_eq!(again, formatted, "formatting formatted text changed it");
    }
});
