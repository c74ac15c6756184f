//! End-to-end sessions with `basin lsp`: the real binary over stdio, JSON-RPC with
//! Content-Length framing, one scripted session per feature.

mod lsp_client;

use std::time::{Duration, Instant};

use lsp_client::{Client, TIMEOUT, at, client_offset, find, position};
use serde_json::{Value, json};

const URI: &str = "file:///work/spec.basin";

const WAREHOUSE: &str = "use std.robots.diff_drive

agent robot = diff_drive {
    radius: 30 cm
    max_speed: 1.2 m/s
}

site pick = (12.5 m, 4 m)
let today = 62 s

goal deliver {
    reach robot.position -> pick within 10 cm
    finish_by 0.8 * today
}
";

#[test]
fn initialize_negotiates_position_encoding() {
    let (client, result) = Client::initialized(&[]);
    assert_eq!(result["capabilities"]["positionEncoding"], "utf-16");
    assert_eq!(result["capabilities"]["textDocumentSync"], 2, "incremental sync");
    client.shutdown();
    let (client, result) = Client::initialized(&["utf-8", "utf-16"]);
    assert_eq!(result["capabilities"]["positionEncoding"], "utf-8");
    client.shutdown();
}

#[test]
fn diagnostics_follow_open_and_change() {
    let (mut client, _) = Client::initialized(&[]);
    client.open(URI, WAREHOUSE);
    assert_eq!(client.diagnostics(URI, 1), Vec::<Value>::new());

    let (line, character) = find(WAREHOUSE, "today\n}");
    client.notify(
        "textDocument/didChange",
        json!({ "textDocument": { "uri": URI, "version": 2 }, "contentChanges": [
            { "range": { "start": position(line, character + 2), "end": position(line, character + 3) }, "text": "" }
        ] }),
    );
    let diagnostics = client.diagnostics(URI, 2);
    assert_eq!(diagnostics.len(), 1, "{diagnostics:?}");
    assert_eq!(diagnostics[0]["code"], "E0100");
    assert_eq!(diagnostics[0]["range"]["start"], position(line, character));
    assert!(diagnostics[0]["message"].as_str().unwrap().contains("try `today`, the closest match"), "{}", diagnostics[0]);
    client.shutdown();
}

#[test]
fn crlf_and_emoji_columns_in_utf16() {
    let (mut client, _) = Client::initialized(&[]);
    let text = "// 😀😀 crlf\r\nlet a = 1 m\r\nlet b = \"😀\" + misspelled\r\n";
    client.open(URI, text);
    let diagnostics = client.diagnostics(URI, 1);
    let unknown = diagnostics.iter().find(|d| d["code"] == "E0100").unwrap_or_else(|| panic!("{diagnostics:?}"));
    // `let b = "` is 9 units, the emoji 2, `" + ` 4: the name starts at 15.
    assert_eq!(unknown["range"]["start"], position(2, 15));
    assert_eq!(unknown["range"]["end"], position(2, 25));
    client.shutdown();
}

#[test]
fn emoji_columns_in_utf8_when_negotiated() {
    let (mut client, _) = Client::initialized(&["utf-8"]);
    let text = "let b = \"😀\" + misspelled\n";
    client.open(URI, text);
    let diagnostics = client.diagnostics(URI, 1);
    let unknown = diagnostics.iter().find(|d| d["code"] == "E0100").unwrap_or_else(|| panic!("{diagnostics:?}"));
    assert_eq!(unknown["range"]["start"], position(0, 17), "bytes: the emoji is 4");
    client.shutdown();
}

#[test]
fn byte_order_mark_and_tabs_count_as_characters() {
    let (mut client, _) = Client::initialized(&[]);
    let text = "\u{FEFF}let a = 1 m\n\tlet b = misspelled\n";
    client.open(URI, text);
    let diagnostics = client.diagnostics(URI, 1);
    let unknown = diagnostics.iter().find(|d| d["code"] == "E0100").unwrap_or_else(|| panic!("{diagnostics:?}"));
    assert_eq!(unknown["range"]["start"], position(1, 9));
    let hover = client.result("textDocument/hover", at(URI, 0, 11));
    assert!(hover["contents"]["value"].as_str().unwrap().contains("metre"), "the BOM is one unit before `let`: {hover}");
    client.shutdown();
}

#[test]
fn sixty_incremental_edits_back_to_back() {
    let (mut client, _) = Client::initialized(&[]);
    let mut text = String::from("let a = 1 m\r\n// 😀 notes\nlet b = 2 m\n");
    client.open(URI, &text);
    // Insertions and deletions at lines with CRLF, after an emoji and at the end.
    let mut version = 1;
    for i in 0..60u32 {
        version += 1;
        let line = i % 3;
        let content = text.split('\n').nth(line as usize).unwrap_or("").trim_end_matches('\r');
        // Columns between characters, in UTF-16 units: never inside the emoji.
        let mut columns = vec![0u32];
        for c in content.chars() {
            columns.push(columns.last().unwrap() + c.len_utf16() as u32);
        }
        let k = (i as usize * 7) % columns.len();
        let character = columns[k];
        let delete = i % 4 == 3 && k + 1 < columns.len();
        let (range_end, new_text) = if delete { (columns[k + 1], String::new()) } else { (character, ((b'a' + (i % 26) as u8) as char).to_string()) };
        let start = client_offset(&text, line, character);
        let end = client_offset(&text, line, range_end);
        text.replace_range(start..end, &new_text);
        client.notify(
            "textDocument/didChange",
            json!({ "textDocument": { "uri": URI, "version": version }, "contentChanges": [
                { "range": { "start": position(line, character), "end": position(line, range_end) }, "text": new_text }
            ] }),
        );
    }
    assert_eq!(client.document_text(URI), text);
    client.diagnostics(URI, version);
    client.shutdown();
}

#[test]
fn full_text_changes_replace_the_document() {
    let (mut client, _) = Client::initialized(&[]);
    client.open(URI, "let a = 1 m\n");
    client.notify("textDocument/didChange", json!({ "textDocument": { "uri": URI, "version": 2 }, "contentChanges": [{ "text": "let b = 2 s\n" }] }));
    assert_eq!(client.document_text(URI), "let b = 2 s\n");
    client.shutdown();
}

#[test]
fn out_of_range_positions_are_clamped() {
    let (mut client, _) = Client::initialized(&[]);
    client.open(URI, "let a = 1 m\nlet b = 2 m");
    let hover = client.request("textDocument/hover", at(URI, 999, 999));
    assert!(hover.get("error").is_none(), "{hover}");
    let completion = client.request("textDocument/completion", at(URI, 0, 999));
    assert!(completion.get("error").is_none(), "{completion}");
    client.notify(
        "textDocument/didChange",
        json!({ "textDocument": { "uri": URI, "version": 2 }, "contentChanges": [
            { "range": { "start": position(1, 50), "end": position(7, 3) }, "text": " // end" },
            { "range": { "start": position(0, 1), "end": position(0, 0) }, "text": "" }
        ] }),
    );
    assert_eq!(client.document_text(URI), "let a = 1 m\nlet b = 2 m // end");
    client.shutdown();
}

#[test]
fn hover_shows_dimension_value_and_docs() {
    let (mut client, _) = Client::initialized(&[]);
    client.open(URI, WAREHOUSE);
    let (line, character) = find(WAREHOUSE, "30 cm");
    let literal = client.result("textDocument/hover", at(URI, line, character));
    let value = literal["contents"]["value"].as_str().unwrap();
    assert!(value.contains("length (m)"), "{value}");
    assert!(value.contains("= 0.3 m"), "{value}");
    assert_eq!(literal["range"]["start"], position(line, character));

    let (line, character) = find(WAREHOUSE, "diff_drive {");
    let model = client.result("textDocument/hover", at(URI, line, character + 3));
    let value = model["contents"]["value"].as_str().unwrap();
    assert!(value.contains("A differential-drive mobile base"), "stdlib docs: {value}");

    let (line, character) = find(WAREHOUSE, "today\n}");
    let name = client.result("textDocument/hover", at(URI, line, character));
    let value = name["contents"]["value"].as_str().unwrap();
    assert!(value.contains("let today"), "{value}");
    assert!(value.contains("time (s)"), "{value}");
    assert!(value.contains("= 62 s"), "{value}");
    client.shutdown();
}

#[test]
fn definition_in_file_and_in_stdlib() {
    let (mut client, _) = Client::initialized(&[]);
    client.open(URI, WAREHOUSE);
    let (line, character) = find(WAREHOUSE, "pick within");
    let local = client.result("textDocument/definition", at(URI, line, character));
    assert_eq!(local["uri"], URI);
    let (def_line, def_character) = find(WAREHOUSE, "pick =");
    assert_eq!(local["range"]["start"], position(def_line, def_character));

    let (line, character) = find(WAREHOUSE, "position");
    let member = client.result("textDocument/definition", at(URI, line, character + 1));
    let uri = member["uri"].as_str().expect("a uri");
    assert!(uri.starts_with("file://"), "{uri}");
    assert!(uri.ends_with("/std/robots.basin"), "{uri}");
    let path = uri.strip_prefix("file://").unwrap();
    let module = std::fs::read_to_string(path).expect("the stdlib copy exists");
    let start = client_offset(&module, member["range"]["start"]["line"].as_u64().unwrap() as u32, member["range"]["start"]["character"].as_u64().unwrap() as u32);
    assert!(module[start..].starts_with("position:"), "{}", &module[start..start + 20]);
    client.shutdown();
}

#[test]
fn references_and_rename() {
    let (mut client, _) = Client::initialized(&[]);
    client.open(URI, WAREHOUSE);
    let (line, character) = find(WAREHOUSE, "robot =");
    let params = json!({ "textDocument": { "uri": URI }, "position": position(line, character), "context": { "includeDeclaration": true } });
    let references = client.result("textDocument/references", params);
    assert_eq!(references.as_array().unwrap().len(), 2, "{references}");

    let prepare = client.result("textDocument/prepareRename", at(URI, line, character));
    assert_eq!(prepare["start"], position(line, character));
    let rename = client.result("textDocument/rename", json!({ "textDocument": { "uri": URI }, "position": position(line, character), "newName": "rover" }));
    let edits = rename["changes"][URI].as_array().expect("edits for the file");
    assert_eq!(edits.len(), 2);
    assert!(edits.iter().all(|e| e["newText"] == "rover"));

    let (line, character) = find(WAREHOUSE, "diff_drive {");
    let refused = client.request("textDocument/rename", json!({ "textDocument": { "uri": URI }, "position": position(line, character), "newName": "x" }));
    let message = refused["error"]["message"].as_str().unwrap_or_else(|| panic!("expected an error: {refused}"));
    assert!(message.contains("standard library"), "{message}");
    client.shutdown();
}

#[test]
fn completion_by_context() {
    let (mut client, _) = Client::initialized(&[]);
    let text = format!("{WAREHOUSE}let speed = 3 \nconstraint c {{\n    always robot.\n}}\n");
    client.open(URI, &text);
    let labels = |result: &Value| -> Vec<String> { result.as_array().unwrap().iter().map(|i| i["label"].as_str().unwrap().to_string()).collect() };

    let (line, _) = find(&text, "let speed");
    let units = client.result("textDocument/completion", at(URI, line, 14));
    assert!(labels(&units).contains(&"m/s".to_string()), "{units}");

    let (line, character) = find(&text, "robot.\n");
    let members = client.result("textDocument/completion", at(URI, line, character + 6));
    let members = labels(&members);
    assert!(members.contains(&"speed".to_string()), "{members:?}");
    assert!(members.contains(&"heading".to_string()), "{members:?}");

    let end = text.matches('\n').count() as u32;
    let keywords = client.result("textDocument/completion", at(URI, end, 0));
    assert!(labels(&keywords).contains(&"goal".to_string()), "{keywords}");
    client.shutdown();
}

#[test]
fn signature_help_for_stdlib_function() {
    let (mut client, _) = Client::initialized(&[]);
    let text = "use std.mechanics.bending_stress\nlet s = bending_stress(10 N, 1 m, \n";
    client.open(URI, text);
    let help = client.result("textDocument/signatureHelp", at(URI, 1, 34));
    assert!(help["signatures"][0]["label"].as_str().unwrap().starts_with("bending_stress(load: "), "{help}");
    assert_eq!(help["activeParameter"], 2);
    client.shutdown();
}

#[test]
fn document_symbols_folding_and_inlay_hints() {
    let (mut client, _) = Client::initialized(&[]);
    client.open(URI, WAREHOUSE);
    let symbols = client.result("textDocument/documentSymbol", json!({ "textDocument": { "uri": URI } }));
    let names: Vec<&str> = symbols.as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(names, vec!["use std.robots.diff_drive", "robot", "pick", "today", "deliver"]);
    assert_eq!(symbols[1]["children"][0]["name"], "radius");

    let folds = client.result("textDocument/foldingRange", json!({ "textDocument": { "uri": URI } }));
    let (start, _) = find(WAREHOUSE, "agent robot");
    assert!(folds.as_array().unwrap().iter().any(|f| f["startLine"] == start && f["endLine"] == start + 3), "{folds}");

    let range = json!({ "start": position(0, 0), "end": position(99, 0) });
    let hints = client.result("textDocument/inlayHint", json!({ "textDocument": { "uri": URI }, "range": range }));
    let (line, character) = find(WAREHOUSE, "30 cm");
    assert_eq!(hints[0]["label"], "= 0.3 m");
    assert_eq!(hints[0]["position"], position(line, character + 5));
    client.shutdown();
}

#[test]
fn semantic_tokens_are_relative_and_classified() {
    let (mut client, result) = Client::initialized(&[]);
    let legend: Vec<String> = result["capabilities"]["semanticTokensProvider"]["legend"]["tokenTypes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_string())
        .collect();
    client.open(URI, "let a = 30 cm // 😀\nlet b = a\n");

    let tokens = client.result("textDocument/semanticTokens/full", json!({ "textDocument": { "uri": URI } }));
    let data: Vec<u64> = tokens["data"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect();
    let mut decoded = Vec::new();
    let (mut line, mut start) = (0, 0);
    for chunk in data.chunks(5) {
        if chunk[0] > 0 {
            line += chunk[0];
            start = chunk[1];
        } else {
            start += chunk[1];
        }
        decoded.push((line, start, chunk[2], legend[chunk[3] as usize].clone()));
    }

    let expected = [
        (0, 0, 3, "keyword"),
        (0, 4, 1, "variable"),
        (0, 6, 1, "operator"),
        (0, 8, 2, "number"),
        (0, 11, 2, "type"),
        (0, 14, 5, "comment"),
        (1, 0, 3, "keyword"),
        (1, 4, 1, "variable"),
        (1, 6, 1, "operator"),
        (1, 8, 1, "variable"),
    ];
    let expected: Vec<(u64, u64, u64, String)> = expected.iter().map(|(l, s, n, t)| (*l, *s, *n, t.to_string())).collect();
    assert_eq!(decoded, expected);
    client.shutdown();
}

#[test]
fn formatting_returns_edits() {
    let (mut client, _) = Client::initialized(&[]);
    client.open(URI, WAREHOUSE);
    let response = client.request("textDocument/formatting", json!({ "textDocument": { "uri": URI }, "options": { "tabSize": 4, "insertSpaces": true } }));
    assert!(response.get("error").is_none(), "{response}");
    assert!(response["result"].is_array(), "{response}");
    client.shutdown();
}

#[test]
fn code_actions_fix_name_and_unit() {
    let (mut client, _) = Client::initialized(&[]);
    let text = WAREHOUSE.replace("0.8 * today", "0.8 * tody").replace("max_speed: 1.2 m/s", "max_speed: 1.2");
    client.open(URI, &text);
    let range = json!({ "start": position(0, 0), "end": position(99, 0) });
    let actions = client.result("textDocument/codeAction", json!({ "textDocument": { "uri": URI }, "range": range, "context": { "diagnostics": [] } }));
    let titles: Vec<&str> = actions.as_array().unwrap().iter().map(|a| a["title"].as_str().unwrap()).collect();
    assert!(titles.contains(&"Replace `tody` with `today`"), "{titles:?}");
    let unit = actions.as_array().unwrap().iter().find(|a| a["title"] == "Add the unit `m/s`").unwrap_or_else(|| panic!("{titles:?}"));
    let edit = &unit["edit"]["changes"][URI][0];
    let (line, character) = find(&text, "1.2\n");
    assert_eq!(edit["range"]["start"], position(line, character + 3));
    assert_eq!(edit["newText"], " m/s");
    assert_eq!(unit["kind"], "quickfix");
    client.shutdown();
}

#[test]
fn failing_request_gets_error_and_server_stays_up() {
    let (mut client, _) = Client::initialized(&[]);
    let failed = client.request("textDocument/hover", at("file:///work/never-opened.basin", 0, 0));
    assert!(failed["error"]["message"].as_str().unwrap().contains("is not open"), "{failed}");
    let unknown = client.request("basin/noSuchMethod", json!({}));
    assert_eq!(unknown["error"]["code"], -32601);
    client.open(URI, "let a = 1 m\n");
    assert_eq!(client.document_text(URI), "let a = 1 m\n");
    client.shutdown();
}

#[test]
fn panic_in_handler_is_caught_and_logged() {
    let (mut client, _) = Client::initialized(&[]);
    let response = client.request("basin/debugPanic", json!({}));
    assert_eq!(response["error"]["code"], -32603, "{response}");
    assert!(response["error"]["message"].as_str().unwrap().contains("panic requested"), "{response}");
    client.open(URI, "let a = 1 m\n");
    assert_eq!(client.document_text(URI), "let a = 1 m\n");
    assert!(client.stderr().contains("handler panicked"), "stderr:\n{}", client.stderr());
    client.shutdown();
}

#[test]
fn malformed_json_is_reported_not_fatal() {
    let (mut client, _) = Client::initialized(&[]);
    client.send_raw(b"{\"jsonrpc\": \"2.0\", \"id\": 99, \"method\": ");
    let deadline = Instant::now() + TIMEOUT;
    let error = loop {
        let message = client.receive(deadline).expect("an error response to malformed JSON");
        if message.get("error").is_some() {
            break message;
        }
    };
    assert_eq!(error["error"]["code"], -32700, "{error}");
    assert_eq!(error["id"], Value::Null);
    client.open(URI, "let a = 1 m\n");
    assert_eq!(client.document_text(URI), "let a = 1 m\n");
    client.shutdown();
}

#[test]
fn cancelled_request_answers_at_once() {
    let (mut client, _) = Client::initialized(&[]);
    let started = Instant::now();
    let id = client.send_request("basin/debugSleep", json!({ "milliseconds": 10_000 }));
    client.notify("$/cancelRequest", json!({ "id": id }));
    let response = client.response(&json!(id));
    assert_eq!(response["error"]["code"], -32800, "{response}");
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
    client.open(URI, "let a = 1 m\n");
    assert_eq!(client.document_text(URI), "let a = 1 m\n");
    client.shutdown();
}

#[test]
fn long_single_line_stays_responsive() {
    let (mut client, _) = Client::initialized(&[]);
    let mut text = String::from("let big = [");
    let mut i = 0;
    while text.len() < 200_000 {
        text.push_str(&format!("{i} cm, "));
        i += 1;
    }
    text.push_str("1 m]");
    client.open(URI, &text);
    let started = Instant::now();
    client.diagnostics(URI, 1);
    let end = text.encode_utf16().count() as u32;
    let hover = client.result("textDocument/hover", at(URI, 0, end - 3));
    assert!(hover["contents"]["value"].as_str().unwrap().contains("length"), "{hover}");
    client.result("textDocument/completion", at(URI, 0, end - 2));
    client.result("textDocument/semanticTokens/full", json!({ "textDocument": { "uri": URI } }));
    client.notify(
        "textDocument/didChange",
        json!({ "textDocument": { "uri": URI, "version": 2 }, "contentChanges": [
            { "range": { "start": position(0, end - 1), "end": position(0, end - 1) }, "text": "0" }
        ] }),
    );
    client.diagnostics(URI, 2);
    assert!(started.elapsed() < Duration::from_secs(15), "took {:?}", started.elapsed());
    client.shutdown();
}
