//! Tests of the formatter: a table of inputs with the text they format to, then properties of
//! every example spec.

use basin_compiler::Database;
use basin_compiler::db::check_file;
use basin_compiler::fmt::format_source;
use basin_compiler::syntax;

/// Returns the comments of `text` as the splitter finds them, without trailing whitespace,
/// sorted.
fn comment_texts(text: &str) -> Vec<String> {
    let mut texts: Vec<String> = syntax::split(text).comments.iter().map(|c| text[c.span.range()].trim_end().to_string()).collect();
    texts.sort();
    texts
}

/// Checks `text` as a file and returns its diagnostic codes, sorted.
fn diagnostic_codes(text: &str) -> Vec<&'static str> {
    let db = Database::new();
    let file = db.add_file("spec.basin", text.to_string());
    let mut codes: Vec<&'static str> = check_file(&db, file).diagnostics.iter().map(|d| d.code.as_str()).collect();
    codes.sort();
    codes
}

/// Checks that `input` formats to `expected`, that `expected` is left as it is, and that
/// formatting keeps the comments and the diagnostics.
fn assert_formats(case: &str, input: &str, expected: &str) {
    let formatted = match format_source(input) {
        Ok(text) => text,
        Err(diagnostics) => panic!("case `{case}`: unexpected syntax errors {diagnostics:?}"),
    };
    assert_eq!(formatted, expected, "case `{case}`: formatted text differs");
    let again = format_source(&formatted).unwrap_or_else(|d| panic!("case `{case}`: formatted text has syntax errors {d:?}"));
    assert_eq!(again, formatted, "case `{case}`: formatting is not idempotent");
    assert_eq!(comment_texts(&formatted), comment_texts(input), "case `{case}`: comments changed");
    assert_eq!(diagnostic_codes(&formatted), diagnostic_codes(input), "case `{case}`: diagnostics changed");
}

/// One formatting case: a name, the input and the expected output.
type Case = (&'static str, &'static str, &'static str);

const DECLARATIONS: &[Case] = &[
    ("use", "use   std.robots.diff_drive", "use std.robots.diff_drive\n"),
    ("use group", "use std.materials.{ aluminum_6061 ,abs_plastic, }\n", "use std.materials.{aluminum_6061, abs_plastic}\n"),
    (
        "context with settings",
        "context floor=image( \"floor.png\" ){scale:5 cm/px,obstacles:dark}\n",
        "context floor = image(\"floor.png\") { scale: 5 cm/px, obstacles: dark }\n",
    ),
    ("context with empty block", "context grid = map(\"grid.map\") {}\n", "context grid = map(\"grid.map\")\n"),
    (
        "agent",
        "agent robot = std.robots.diff_drive { radius: 30cm, max_speed: 1.2m/s,\n start: pose(2 m,3 m,0 deg) }\n",
        "agent robot = std.robots.diff_drive {\n    radius: 30 cm\n    max_speed: 1.2 m/s\n    start: pose(2 m, 3 m, 0 deg)\n}\n",
    ),
    ("agent with empty block", "agent arm = pendulum {}\n", "agent arm = pendulum\n"),
    (
        "design with range and choice",
        "design chair = seat { seat_height: 45 cm..=50 cm, legs: 3|4 }\n",
        "design chair = seat {\n    seat_height: 45 cm ..= 50 cm\n    legs: 3 | 4\n}\n",
    ),
    ("site", "site pick=(12.5 m,4 m)\n", "site pick = (12.5 m, 4 m)\n"),
    ("let with unit and operator", "let g = 9.81m/s^2*2\n", "let g = 9.81 m/s^2 * 2\n"),
    ("let keeps number text", "let n = 1_000.50e+3   N*m\n", "let n = 1_000.50e+3 N*m\n"),
    ("let with operators", "let r=-a..=b+c*d^2\n", "let r = -a ..= b + c * d ^ 2\n"),
    ("let with logic", "let ok = not a and(b or c)\n", "let ok = not a and (b or c)\n"),
    ("let with postfix", "let v = robot .position[0]\n", "let v = robot.position[0]\n"),
    ("let with list", "let l = [ 1 m,2 m, ]\n", "let l = [1 m, 2 m]\n"),
    ("let with short record", "let m = material{density:2700 kg/m^3}\n", "let m = material { density: 2700 kg/m^3 }\n"),
    (
        "let with long record",
        "let aluminum = material { density: 2700 kg/m^3, yield_strength: 276 MPa, tensile_strength: 310 MPa, elastic_modulus: 68.9 GPa }\n",
        "let aluminum = material {\n    density: 2700 kg/m^3\n    yield_strength: 276 MPa\n    tensile_strength: 310 MPa\n    elastic_modulus: 68.9 GPa\n}\n",
    ),
    (
        "goal",
        "goal deliver { reach robot.position->pick within 10cm; then reach robot.position -> drop\n finish_by 0.8*today, minimize duration }\n",
        "goal deliver {\n    reach robot.position -> pick within 10 cm\n    then reach robot.position -> drop\n    finish_by 0.8 * today\n    minimize duration\n}\n",
    ),
    (
        "constraint",
        "constraint motor {\nalways abs(arm.torque)<=arm.max_torque hard\n  always within [0 s,2 s] x<=1 m soft weight 0.1\neventually always y until z\n}\n",
        "constraint motor {\n    always abs(arm.torque) <= arm.max_torque hard\n    always within [0 s, 2 s] x <= 1 m soft weight 0.1\n    eventually always y until z\n}\n",
    ),
    (
        "formula with bare window and then",
        "goal g { within [0 s, 5 s] x > 1 m then always y }\n",
        "goal g {\n    within [0 s, 5 s] x > 1 m then always y\n}\n",
    ),
    ("empty goal", "goal nothing {\n\n}\n", "goal nothing {}\n"),
    (
        "separator kept before a minus",
        "goal g { minimize cost; -x <= 3 m }\n",
        "goal g {\n    minimize cost;\n    -x <= 3 m\n}\n",
    ),
    (
        "separator kept before a bare window",
        "goal g { reach a -> b; within [0 s, 1 s] c }\n",
        "goal g {\n    reach a -> b;\n    within [0 s, 1 s] c\n}\n",
    ),
    (
        "separator dropped after hard",
        "constraint c { always x hard; -y < 0 m; }\n",
        "constraint c {\n    always x hard\n    -y < 0 m\n}\n",
    ),
    (
        "short world",
        "world dynamics = learned {from simulate(robot,floor),episodes:400,latent:32}\n",
        "world dynamics = learned { from simulate(robot, floor), episodes: 400, latent: 32 }\n",
    ),
    (
        "long world",
        "world dynamics = learned { from simulate(robot, floor, obstacles), episodes: 400, latent: 32, epochs: 50 }\n",
        "world dynamics = learned {\n    from simulate(robot, floor, obstacles)\n    episodes: 400\n    latent: 32\n    epochs: 50\n}\n",
    ),
    (
        "plan with stages",
        "plan{step:100ms,horizon:4 s\nsolver:mppi{samples:1024,iterations:6}then gradient{steps:10} then cem {}}\n",
        "plan {\n    step: 100 ms\n    horizon: 4 s\n    solver: mppi { samples: 1024, iterations: 6 } then gradient { steps: 10 } then cem\n}\n",
    ),
    (
        "refine",
        "refine \"stray pallet\" { at 12 s: add obstacle box(1.2 m, 1.0 m) at (7 m, 10 m); robot.max_speed*=1.15, rerun deliver }\n",
        "refine \"stray pallet\" {\n    at 12 s: add obstacle box(1.2 m, 1.0 m) at (7 m, 10 m)\n    robot.max_speed *= 1.15\n    rerun deliver\n}\n",
    ),
    (
        "model",
        "model cart { state x: m, action f: N within -max_f..=max_f, param max_f: N = 10 N, param start: (m,m/s)=(0 m,0 m/s), param rate: 1/s }\n",
        "model cart {\n    state x: m\n    action f: N within -max_f ..= max_f\n    param max_f: N = 10 N\n    param start: (m, m/s) = (0 m, 0 m/s)\n    param rate: 1/s\n}\n",
    ),
    ("fn", "fn area(w:m,h:m)->m^2=w*h\n", "fn area(w: m, h: m) -> m^2 = w * h\n"),
    ("fn without parameters", "fn one()->1=1\n", "fn one() -> 1 = 1\n"),
];

const COMMENTS: &[Case] = &[
    (
        "comments between items",
        "// header\n\n\n\nlet a = 1\n// about b\nlet b = 2   // trailing b\n\n\n/// Docs of c.\n/// Second line.\nlet c = 3\n// end\n",
        "// header\n\nlet a = 1\n// about b\nlet b = 2 // trailing b\n\n/// Docs of c.\n/// Second line.\nlet c = 3\n// end\n",
    ),
    ("comments only", "// one\n\n\n   // two   \n", "// one\n\n// two\n"),
    (
        "comments inside a block",
        "agent robot = diff_drive { // the robot\n  // before radius\n  radius: 30 cm, // trailing radius\n\n\n  max_speed: 1 m/s\n  // before the brace\n}\n",
        "agent robot = diff_drive { // the robot\n    // before radius\n    radius: 30 cm // trailing radius\n\n    max_speed: 1 m/s\n    // before the brace\n}\n",
    ),
    (
        "comments in clauses",
        "goal g {\n    // first\n    reach a -> b // close enough\n\n    // then\n    minimize duration\n}\n",
        "goal g {\n    // first\n    reach a -> b // close enough\n\n    // then\n    minimize duration\n}\n",
    ),
    (
        "comment in an empty block",
        "constraint later {\n  // nothing yet\n}\n",
        "constraint later {\n    // nothing yet\n}\n",
    ),
    (
        "comment in a nested block",
        "plan {\n  solver: mppi { samples: 1024,\n  // fewer is faster\n  iterations: 6 } then gradient\n}\n",
        "plan {\n    solver: mppi {\n        samples: 1024\n        // fewer is faster\n        iterations: 6\n    } then gradient\n}\n",
    ),
    (
        "comment in a record",
        "let m = material { density: 1 kg/m^3 // guessed\n }\n",
        "let m = material {\n    density: 1 kg/m^3 // guessed\n}\n",
    ),
    (
        "comment in a model and a refinement",
        "model m {\n  /// The position.\n  state x: m\n}\nrefine \"r\" {\n  rerun g // again\n}\n",
        "model m {\n    /// The position.\n    state x: m\n}\nrefine \"r\" {\n    rerun g // again\n}\n",
    ),
    (
        "comment inside an expression keeps the item",
        "let a   = 1 +   // why\n        2   \nlet  b = 3\n",
        "let a   = 1 +   // why\n        2\nlet b = 3\n",
    ),
    (
        "comment in a header keeps the item",
        "agent a = // which model\n  pendulum { mass: 1 kg }\n",
        "agent a = // which model\n  pendulum { mass: 1 kg }\n",
    ),
    ("comment in a use group keeps the item", "use std.materials.{a, // first\n  b}\n", "use std.materials.{a, // first\n  b}\n"),
    ("comment-like text in a string", "let s = \"a // b\" // real\n", "let s = \"a // b\" // real\n"),
];

const TEXT: &[Case] = &[
    ("empty file", "", ""),
    ("blank file", "  \n\n\t\n", ""),
    ("no final newline", "let a = 1", "let a = 1\n"),
    ("many final newlines", "let a = 1\n\n\n\n", "let a = 1\n"),
    ("crlf", "let a=1\r\n\r\n\r\n// note  \r\nplan {\r\n  step: 1 s // t\r\n}\r\n", "let a = 1\r\n\r\n// note\r\nplan {\r\n    step: 1 s // t\r\n}\r\n"),
    ("byte-order mark", "\u{FEFF}let a=1", "\u{FEFF}let a = 1\n"),
    ("byte-order mark and crlf", "\u{FEFF}// spec\r\nlet a=1\r\n", "\u{FEFF}// spec\r\nlet a = 1\r\n"),
    ("byte-order mark alone", "\u{FEFF}", "\u{FEFF}"),
    ("tabs", "plan {\n\tstep:\t1 s\n\thorizon: 2\ts\n}\nlet t = \"a\tb\"\t// tab\n", "plan {\n    step: 1 s\n    horizon: 2 s\n}\nlet t = \"a\tb\" // tab\n"),
    (
        "non-ASCII names and strings",
        "let größe=2 m // Größe ✓\nlet 名前 = \"Zürich 🚀\"\ncontext note = text(\"naïve → café\")\n",
        "let größe = 2 m // Größe ✓\nlet 名前 = \"Zürich 🚀\"\ncontext note = text(\"naïve → café\")\n",
    ),
    ("string escapes", "let s = \"say \\\"hi\\\"\\n\"\n", "let s = \"say \\\"hi\\\"\\n\"\n"),
];

#[test]
fn formats_each_declaration() {
    for (case, input, expected) in DECLARATIONS {
        assert_formats(case, input, expected);
    }
}

#[test]
fn keeps_comments_in_every_position() {
    for (case, input, expected) in COMMENTS {
        assert_formats(case, input, expected);
    }
}

#[test]
fn keeps_encoding_and_line_endings() {
    for (case, input, expected) in TEXT {
        assert_formats(case, input, expected);
    }
}

#[test]
fn syntax_errors_have_file_offsets() {
    let text = "let a = 1\nlet b = (2\nlet c = 3 +\n";
    let errors = format_source(text).expect_err("the file has syntax errors");
    let starts: Vec<usize> = errors.iter().map(|d| d.primary_span().start as usize).collect();
    assert_eq!(errors.len(), 2, "one error per broken item: {errors:?}");
    assert_eq!(&text[starts[0]..starts[0] + 1], "(", "the unclosed bracket of `b`");
    assert!(starts[1] >= text.find("let c").expect("c is there"), "the error of `c` lies in `c`: {starts:?}");
}

#[test]
fn too_deep_expression_is_an_error() {
    let text = format!("let a = {}1{}\n", "(".repeat(300), ")".repeat(300));
    let errors = format_source(&text).expect_err("too deep to format");
    assert_eq!(errors[0].code.as_str(), "E0002");
}

/// Reads the example specs, `examples/*/*.basin`, with their paths.
fn examples() -> Vec<(String, String)> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut found = Vec::new();
    for folder in std::fs::read_dir(&root).expect("examples folder") {
        let folder = folder.expect("examples entry").path();
        let Ok(entries) = std::fs::read_dir(&folder) else { continue };
        for entry in entries {
            let path = entry.expect("example entry").path();
            if path.extension().is_some_and(|e| e == "basin") {
                let text = std::fs::read_to_string(&path).expect("example is UTF-8");
                found.push((path.display().to_string(), text));
            }
        }
    }
    found.sort();
    assert!(!found.is_empty(), "no examples found under {}", root.display());
    found
}

#[test]
fn examples_format_idempotently() {
    for (path, text) in examples() {
        let formatted = format_source(&text).unwrap_or_else(|d| panic!("{path}: syntax errors {d:?}"));
        let again = format_source(&formatted).unwrap_or_else(|d| panic!("{path}: formatted text has syntax errors {d:?}"));
        assert_eq!(again, formatted, "{path}: formatting is not idempotent");
        assert_eq!(comment_texts(&formatted), comment_texts(&text), "{path}: comments changed");
    }
}

#[test]
fn examples_keep_diagnostics() {
    for (path, text) in examples() {
        let formatted = format_source(&text).unwrap_or_else(|d| panic!("{path}: syntax errors {d:?}"));
        assert_eq!(diagnostic_codes(&formatted), diagnostic_codes(&text), "{path}: diagnostics changed");
    }
}

#[test]
fn standard_library_formats_idempotently() {
    for module in basin_compiler::stdlib::MODULES {
        let formatted = format_source(module.source).unwrap_or_else(|d| panic!("{}: syntax errors {d:?}", module.path));
        assert_eq!(format_source(&formatted).as_ref(), Ok(&formatted), "{}: formatting is not idempotent", module.path);
        assert_eq!(comment_texts(&formatted), comment_texts(module.source), "{}: comments changed", module.path);
    }
}

#[test]
fn semantic_errors_survive_formatting() {
    let text = "let a = 1 m+2 s\nlet b = missing\ngoal g { minimize a; minimize a }\n";
    let formatted = format_source(text).expect("no syntax errors");
    assert_eq!(diagnostic_codes(&formatted), diagnostic_codes(text));
    assert!(!diagnostic_codes(text).is_empty(), "the case has diagnostics to compare");
}
