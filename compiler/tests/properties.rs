//! Property tests of the front end.
//!
//! Robustness: arbitrary text and mutated example specs never make the splitter, the parser,
//! the checker (through the query database) or the formatter panic or overflow the stack.
//! Formatting: specs built from random valid pieces, with comments in random places, format
//! without errors, idempotently, and with the same comments.
//!
//! Each property runs in a thread with a 2 MiB stack, smaller than a main thread's, so that
//! recursion too deep for an ordinary thread shows up here. Case counts are kept small for a
//! debug build; `PROPTEST_CASES` raises them for a longer run.

use std::cell::RefCell;
use std::fmt::Debug;

use basin_compiler::db::check_file;
use basin_compiler::fmt::format_source;
use basin_compiler::{Database, SourceFile, syntax};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use salsa::Setter;

const STACK_SIZE: usize = 2 << 20;

/// Runs `property` on `cases` values (or `PROPTEST_CASES` values) of the strategy that
/// `make_strategy` builds, in a thread with a [`STACK_SIZE`] stack, and fails with proptest's
/// minimal failing input. The strategy is built in that thread because recursive strategies
/// cannot be sent to it.
fn check_property<S>(cases: u32, make_strategy: impl FnOnce() -> S + Send + 'static, property: fn(S::Value) -> Result<(), TestCaseError>)
where
    S: Strategy + 'static,
    S::Value: Debug + 'static,
{
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(cases);
    let thread = std::thread::Builder::new()
        .stack_size(STACK_SIZE)
        .spawn(move || {
            let mut runner = TestRunner::new(Config { cases, failure_persistence: None, ..Config::default() });
            runner.run(&make_strategy(), property).map_err(|e| e.to_string())
        })
        .expect("spawn a test thread");
    match thread.join() {
        Ok(Ok(())) => {}
        Ok(Err(failure)) => panic!("{failure}"),
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

thread_local! {
    /// One database per test thread. Its one file takes each input in turn, as in an editor,
    /// so the standard library is checked once.
    static DATABASE: RefCell<Option<(Database, SourceFile)>> = const { RefCell::new(None) };
}

/// Checks `text` as a file of the thread's database and returns its diagnostic codes, sorted.
fn diagnostic_codes(text: &str) -> Vec<&'static str> {
    DATABASE.with(|cell| {
        let mut slot = cell.borrow_mut();
        let (db, file) = slot.get_or_insert_with(|| {
            let db = Database::new();
            let file = db.add_file("property.basin", String::new());
            (db, file)
        });
        file.set_text(db).to(text.to_string());
        let mut codes: Vec<&'static str> = check_file(db, *file).diagnostics.iter().map(|d| d.code.as_str()).collect();
        codes.sort();
        codes
    })
}

/// Returns the comments of `text` without trailing whitespace, sorted.
fn comment_texts(text: &str) -> Vec<String> {
    let mut texts: Vec<String> = syntax::split(text).comments.iter().map(|c| text[c.span.range()].trim_end().to_string()).collect();
    texts.sort();
    texts
}

/// Runs every stage of the front end on `text`. Formatting must be idempotent when it
/// succeeds.
fn run_front_end(text: &str) -> Result<(), TestCaseError> {
    let split = syntax::split(text);
    for raw in &split.items {
        let item_text = &text[raw.span.range()];
        let parsed = syntax::parse_item(item_text, raw.too_deep_at.map(|at| at - raw.span.start));
        for d in &parsed.diagnostics {
            for label in &d.labels {
                prop_assert!(label.span.end as usize <= item_text.len(), "label {:?} outside the item {item_text:?}", label.span);
            }
        }
    }
    diagnostic_codes(text);
    if let Ok(formatted) = format_source(text) {
        let again = format_source(&formatted);
        prop_assert_eq!(again.as_ref(), Ok(&formatted), "formatting is not idempotent");
    }
    Ok(())
}

/// Reads the example specs and the standard library modules, the seeds for mutation.
fn seed_texts() -> Vec<String> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut texts: Vec<String> = basin_compiler::stdlib::MODULES.iter().map(|m| m.source.to_string()).collect();
    for folder in std::fs::read_dir(root).expect("examples folder").flatten() {
        for entry in std::fs::read_dir(folder.path()).into_iter().flatten().flatten() {
            if entry.path().extension().is_some_and(|e| e == "basin") {
                texts.push(std::fs::read_to_string(entry.path()).expect("example is UTF-8"));
            }
        }
    }
    texts.sort();
    texts
}

/// One edit of a text, at positions taken modulo its length.
#[derive(Clone, Debug)]
enum Mutation {
    InsertChar(usize, char),
    InsertByte(usize, u8),
    Delete(usize, usize),
    Swap(usize, usize),
    Truncate(usize),
}

/// Generates characters that matter to the grammar, and some that are unusual in a spec.
fn interesting_char() -> impl Strategy<Value = char> {
    prop_oneof![
        4 => prop::sample::select(vec![
            '{', '}', '(', ')', '[', ']', '"', '\\', '/', '\n', '\r', '\t', ' ', ',', ';', ':', '=', '<', '>', '-', '+', '*',
            '^', '|', '.', '°', 'µ', '%', 'e', '1', '_', 'é', '😀', '\u{FEFF}', '\u{2028}', '\0',
        ]),
        1 => any::<char>(),
    ]
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        3 => (any::<usize>(), interesting_char()).prop_map(|(at, c)| Mutation::InsertChar(at, c)),
        1 => (any::<usize>(), any::<u8>()).prop_map(|(at, b)| Mutation::InsertByte(at, b)),
        2 => (any::<usize>(), 1..8usize).prop_map(|(at, len)| Mutation::Delete(at, len)),
        2 => (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Mutation::Swap(a, b)),
        1 => any::<usize>().prop_map(Mutation::Truncate),
    ]
}

/// Applies `mutations` to the bytes of `text` and replaces any invalid UTF-8 that results.
fn mutate(text: &str, mutations: &[Mutation]) -> String {
    let mut bytes = text.as_bytes().to_vec();
    for m in mutations {
        let len = bytes.len();
        match *m {
            Mutation::InsertChar(at, c) => {
                let mut buffer = [0; 4];
                let at = at % (len + 1);
                bytes.splice(at..at, c.encode_utf8(&mut buffer).bytes());
            }
            Mutation::InsertByte(at, b) => bytes.insert(at % (len + 1), b),
            Mutation::Delete(at, n) if len > 0 => {
                let at = at % len;
                bytes.drain(at..(at + n).min(len));
            }
            Mutation::Swap(a, b) if len > 0 => bytes.swap(a % len, b % len),
            Mutation::Truncate(at) => bytes.truncate(at % (len + 1)),
            Mutation::Delete(..) | Mutation::Swap(..) => {}
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

#[test]
fn arbitrary_text_never_panics() {
    check_property(256, any::<String>, |text| run_front_end(&text));
}

#[test]
fn spec_like_text_never_panics() {
    check_property(256, spec_like_text, |text| run_front_end(&text));
}

/// Generates text from the characters and words of the language, in random order.
fn spec_like_text() -> impl Strategy<Value = String> {
    let alphabet = "[a-z0-9 _.,:;=<>+*/^|(){}\\[\\]\"\n\t-]{0,120}";
    let words = prop::sample::select(vec![
        "let ", "site ", "goal ", "constraint ", "plan ", "world ", "agent ", "model ", "fn ", "use ", "refine ", "reach ", "within ",
        "always ", "eventually ", "then ", "until ", "hard ", "soft weight ", "-> ", "..= ", "m/s^2 ", "N*m ", "// c\n", "{ ", "} ",
        "( ", ") ", "[", "]", "\"s\" ", "x ", "1 ", "2.5 ", ": ", ", ", "\n",
    ]);
    prop_oneof![
        proptest::string::string_regex(alphabet).expect("valid regex"),
        prop::collection::vec(words, 0..40).prop_map(|w| w.concat()),
    ]
}

#[test]
fn mutated_examples_never_panic() {
    let texts = seed_texts();
    let strategy = move || (prop::sample::select(texts), prop::collection::vec(mutation(), 1..6));
    check_property(192, strategy, |(text, mutations)| run_front_end(&mutate(&text, &mutations)));
}

// Valid specs from random pieces ---------------------------------------------------------

/// Generates a name that is not a keyword, sometimes a non-ASCII one.
fn name() -> impl Strategy<Value = String> {
    prop::sample::select(vec!["x", "speed", "arm", "robot", "d1", "total_mass", "größe", "θ"]).prop_map(str::to_string)
}

/// Generates a quantity as written: a number with an optional unit, with or without blanks
/// between them.
fn quantity() -> impl Strategy<Value = String> {
    let number = prop::sample::select(vec!["0", "1", "2.5", "1_000", "3e2", "0.25", "12.50"]);
    let unit = prop::option::of(prop::sample::select(vec!["m", "m/s", "m/s^2", "N*m", "kg/m^3", "s", "ms", "deg", "rad/s", "%", "cm"]));
    let gap = prop::sample::select(vec!["", " ", "  ", "\t"]);
    (number, gap, unit).prop_map(|(n, gap, unit)| match unit {
        Some(u) => format!("{n}{gap}{u}"),
        None => n.to_string(),
    })
}

/// Generates the blanks between two tokens, sometimes a line break.
fn blank() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![" ", " ", "  ", "\t", "\n    "])
}

fn expression() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![quantity(), name(), Just("\"text ✓\"".to_string())];
    leaf.prop_recursive(4, 24, 3, |inner| {
        prop_oneof![
            (inner.clone(), prop::sample::select(vec!["+", "-", "*", "/", "..=", "|"]), inner.clone(), blank())
                .prop_map(|(a, op, b, gap)| format!("{a}{gap}{op} {b}")),
            inner.clone().prop_map(|e| format!("({e})")),
            inner.clone().prop_map(|e| format!("-{e}")),
            (name(), prop::collection::vec(inner.clone(), 0..3)).prop_map(|(f, args)| format!("{f}({})", args.join(","))),
            (inner.clone(), inner).prop_map(|(a, b)| format!("({a}, {b})")),
        ]
    })
}

/// Generates a comment, sometimes empty or with non-ASCII text and trailing blanks.
fn comment() -> impl Strategy<Value = String> {
    prop::sample::select(vec!["//", "// note", "/// Docs.", "// größe ✓ 😀", "// trailing blanks   ", "//no space", "// a // b"])
        .prop_map(str::to_string)
}

/// Joins block elements with random separators, adding comments on their own lines or at
/// the ends of lines.
fn with_comments(elements: Vec<String>, comments: Vec<(bool, String)>, separators: Vec<&'static str>) -> String {
    let mut out = String::new();
    for (i, element) in elements.iter().enumerate() {
        if let Some((own_line, text)) = comments.get(i) {
            if *own_line {
                out.push_str(&format!("\n  {text}\n  "));
            }
        }
        out.push_str(element);
        out.push_str(separators.get(i).copied().unwrap_or("\n  "));
        if let Some((false, text)) = comments.get(i) {
            out.push_str(&format!(" {text}\n  "));
        }
    }
    out
}

fn clause() -> impl Strategy<Value = String> {
    prop_oneof![
        (expression(), expression(), quantity()).prop_map(|(a, b, t)| format!("reach {a} -> {b} within {t}")),
        (expression(), expression()).prop_map(|(a, b)| format!("then reach {a} -> {b}")),
        expression().prop_map(|e| format!("minimize {e}")),
        expression().prop_map(|e| format!("finish_by {e}")),
        (expression(), expression()).prop_map(|(a, b)| format!("always {a} <= {b} hard")),
        (expression(), expression()).prop_map(|(a, b)| format!("always within [0 s,2 s] {a} >= {b} soft weight 0.5")),
        (name(), name()).prop_map(|(a, b)| format!("eventually {a} < 1 m until {b} > 2 m")),
        expression().prop_map(|e| format!("{e} <= 3 m")),
    ]
}

fn separator() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec!["\n  ", "; ", ", ", ";\n  ", "\n\n  "])
}

fn block_comments() -> impl Strategy<Value = Vec<(bool, String)>> {
    prop::collection::vec((any::<bool>(), comment()), 0..4)
}

fn item() -> impl Strategy<Value = String> {
    prop_oneof![
        (name(), expression()).prop_map(|(n, e)| format!("let {n} = {e}")),
        (name(), quantity(), quantity()).prop_map(|(n, a, b)| format!("site {n}=({a},{b})")),
        (name(), prop::collection::vec(clause(), 0..5), block_comments(), prop::collection::vec(separator(), 5))
            .prop_map(|(n, clauses, comments, separators)| format!("goal {n} {{\n  {}}}", with_comments(clauses, comments, separators))),
        (name(), prop::collection::vec(clause(), 1..4), block_comments(), prop::collection::vec(separator(), 4))
            .prop_map(|(n, clauses, comments, separators)| format!("constraint {n} {{ {}}}", with_comments(clauses, comments, separators))),
        (quantity(), quantity(), 1..2000u32, 1..20u32, block_comments()).prop_map(|(step, horizon, samples, steps, comments)| {
            let fields = vec![
                format!("step: {step}"),
                format!("horizon:{horizon}"),
                format!("solver: mppi {{ samples: {samples}, iterations: 6 }} then gradient {{steps:{steps}}}"),
            ];
            format!("plan {{ {}}}", with_comments(fields, comments, vec!["\n  ", ", ", "\n"]))
        }),
        (name(), name(), 1..500u32).prop_map(|(w, a, n)| format!("world {w} = learned {{ from simulate({a}), episodes: {n} }}")),
    ]
}

/// Generates a spec: items separated by blank lines or comments, some of them followed by a
/// comment on their last line.
fn spec() -> impl Strategy<Value = String> {
    let piece = (item(), prop::option::of(comment()), prop::option::of(comment()), prop::sample::select(vec!["\n", "\n\n", "\n\n\n"]));
    prop::collection::vec(piece, 0..6).prop_map(|pieces| {
        let mut out = String::new();
        for (item, above, trailing, gap) in pieces {
            if let Some(c) = above {
                out.push_str(&c);
                out.push('\n');
            }
            out.push_str(&item);
            if let Some(c) = trailing {
                out.push(' ');
                out.push_str(&c);
            }
            out.push_str(gap);
        }
        out
    })
}

#[test]
fn generated_specs_format_idempotently() {
    check_property(128, spec, |text| {
        let formatted = match format_source(&text) {
            Ok(formatted) => formatted,
            Err(errors) => return Err(TestCaseError::fail(format!("syntax errors {errors:?} in\n{text}"))),
        };
        let again = format_source(&formatted).map_err(|e| TestCaseError::fail(format!("formatted text has syntax errors {e:?}")))?;
        prop_assert_eq!(&again, &formatted, "formatting is not idempotent");
        prop_assert_eq!(comment_texts(&formatted), comment_texts(&text), "comments changed");
        prop_assert_eq!(diagnostic_codes(&formatted), diagnostic_codes(&text), "diagnostics changed");
        Ok(())
    });
}

// Regressions ----------------------------------------------------------------------------

/// Runs `text` through the front end in a thread with a [`STACK_SIZE`] stack and returns its
/// diagnostic codes.
fn codes_in_small_stack(text: String) -> Vec<&'static str> {
    let thread = std::thread::Builder::new()
        .stack_size(STACK_SIZE)
        .spawn(move || {
            let _ = format_source(&text);
            diagnostic_codes(&text)
        })
        .expect("spawn a test thread");
    thread.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

/// Symptom: `basin check` overflowed the stack on a 250-deep chain such as `1+1+…+1` in a
/// 2 MiB thread, and on parenthesized chains in any thread. Cause: the expression depth
/// restarted inside brackets, and each level of the checker's recursion took about 10 KiB in
/// a debug build.
#[test]
fn check_deepest_expressions_in_small_stack() {
    let deepest = [
        ("chain", format!("let a = 1{}\n", "+1".repeat(255))),
        ("prefixes", format!("let a = {}x\n", "-".repeat(255))),
        ("calls", format!("let a = f{}\n", "()".repeat(255))),
        ("indexes", format!("let a = t{}\n", "[0]".repeat(255))),
        ("fields", format!("let a = r{}\n", ".x".repeat(255))),
        ("temporal operators", format!("constraint c {{ {}x }}\n", "always ".repeat(255))),
        ("then steps", format!("constraint c {{ {}x }}\n", "x then ".repeat(255))),
    ];
    for (case, text) in deepest {
        let codes = codes_in_small_stack(text);
        assert!(!codes.contains(&"E0002"), "{case}: the deepest accepted form was rejected: {codes:?}");
    }
    let too_deep = [
        ("chain", format!("let a = 1{}\n", "+1".repeat(256))),
        ("chains in parentheses", format!("let a = ((1{chain})+1{chain})+1{chain}\n", chain = "+1".repeat(200))),
        ("temporal operators", format!("constraint c {{ {}x }}\n", "always ".repeat(1_000))),
        ("then steps", format!("constraint c {{ {}x }}\n", "x then ".repeat(1_000))),
    ];
    for (case, text) in too_deep {
        let codes = codes_in_small_stack(text);
        assert!(codes.contains(&"E0002"), "{case}: expected E0002, found {codes:?}");
    }
}

/// Symptom: checking `(((1, 2), 3), 4)` or `m { a: m { a: 1 } }` took time that doubled with
/// each level of nesting, so 30 levels hung `basin check`. Cause: the grammar tried `(e)`
/// before a tuple, and solver stages before an expression, parsing the inner text twice.
#[test]
fn parse_nested_tuples_and_records_in_linear_time() {
    let nested = [
        ("tuples", format!("let a = {}1{}\n", "(".repeat(60), ", 1)".repeat(60))),
        ("records", format!("let a = {}1{}\n", "m { a: ".repeat(60), " }".repeat(60))),
        ("stages", format!("plan {{ solver: {}1{} then b }}\n", "m { a: ".repeat(60), " }".repeat(60))),
    ];
    for (case, text) in nested {
        let started = std::time::Instant::now();
        codes_in_small_stack(text);
        let elapsed = started.elapsed();
        assert!(elapsed.as_secs() < 10, "{case}: checking took {elapsed:?}, expected well under 10 s");
    }
}

/// Symptom: brackets after a string ending in `\` and a line break were invisible to the
/// nesting limit, so pest could recurse past it. Cause: the grammar let a backslash escape the
/// line break while the splitter ended the string at the line's end.
#[test]
fn string_ends_at_line_break() {
    let hidden = format!("let a = f(\"\\\n\"{}\n", "(".repeat(5_000));
    let codes = codes_in_small_stack(hidden);
    assert!(codes.contains(&"E0001") || codes.contains(&"E0002"), "expected a syntax error, found {codes:?}");
    let codes = codes_in_small_stack("let a = \"one\\\ntwo\"\n".to_string());
    assert!(codes.contains(&"E0001"), "a string may not span lines: {codes:?}");
}

#[test]
fn stages_need_a_stage_before_then() {
    let codes = codes_in_small_stack("plan { solver: 1 + 2 then gradient }\n".to_string());
    assert_eq!(codes, vec!["E0001"]);
    let codes = codes_in_small_stack("plan { step: 1 s, horizon: 2 s, solver: mppi { samples: 8 } then gradient }\n".to_string());
    assert!(!codes.contains(&"E0001"), "stages parse: {codes:?}");
}
