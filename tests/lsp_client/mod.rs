//! A JSON-RPC client for `basin lsp`, shared by the end-to-end tests and the latency
//! benchmark: it starts the real binary and speaks LSP over its stdin and stdout with
//! Content-Length framing.

#![allow(dead_code)]

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// How long any one reply may take in a debug build on a loaded 2-core machine.
pub const TIMEOUT: Duration = Duration::from_secs(20);

/// A client talking to one server process.
pub struct Client {
    child: Child,
    stdin: ChildStdin,
    messages: Receiver<Value>,
    /// Notifications and requests from the server not consumed yet.
    pending: VecDeque<Value>,
    next_id: i64,
    stderr_path: std::path::PathBuf,
    _cache: TempDir,
}

/// A folder removed on drop.
pub struct TempDir(std::path::PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let path = std::env::temp_dir().join(format!("basin-lsp-test-{tag}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&path).expect("create a temporary folder");
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = make_writable(&self.0);
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Makes the read-only standard library copies removable.
fn make_writable(dir: &std::path::Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            make_writable(&path)?;
        } else {
            let mut permissions = std::fs::metadata(&path)?.permissions();
            #[allow(clippy::permissions_set_readonly_false)]
            permissions.set_readonly(false);
            std::fs::set_permissions(&path, permissions)?;
        }
    }
    Ok(())
}

/// Reads Content-Length framed messages until the stream ends.
fn read_messages(stdout: impl Read + Send + 'static) -> Receiver<Value> {
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        loop {
            let mut length = None;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    return;
                }
                let line = line.trim_end();
                if line.is_empty() {
                    break;
                }
                if let Some(value) = line.strip_prefix("Content-Length: ") {
                    length = value.parse::<usize>().ok();
                }
            }
            let mut body = vec![0; length.expect("a Content-Length header")];
            if reader.read_exact(&mut body).is_err() {
                return;
            }
            let message: Value = serde_json::from_slice(&body).expect("the server sends valid JSON");
            if tx.send(message).is_err() {
                return;
            }
        }
    });
    rx
}

impl Client {
    pub fn start() -> Client {
        let cache = TempDir::new("cache");
        let stderr_path = cache.0.join("stderr.log");
        let stderr = std::fs::File::create(&stderr_path).expect("create the stderr log");
        let mut child = Command::new(env!("CARGO_BIN_EXE_basin"))
            .arg("lsp")
            .env("XDG_CACHE_HOME", &cache.0)
            .env("BASIN_LSP_TEST_HOOKS", "1")
            .env("BASIN_LOG", "warn")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("start basin lsp");
        let stdin = child.stdin.take().expect("stdin");
        let messages = read_messages(child.stdout.take().expect("stdout"));
        Client { child, stdin, messages, pending: VecDeque::new(), next_id: 1, stderr_path, _cache: cache }
    }

    /// Starts a server and completes the handshake, waiting for the initialize response.
    pub fn initialized(position_encodings: &[&str]) -> (Client, Value) {
        let mut client = Client::start();
        let mut capabilities = json!({});
        if !position_encodings.is_empty() {
            capabilities = json!({ "general": { "positionEncodings": position_encodings } });
        }
        let response = client.request("initialize", json!({ "processId": null, "rootUri": null, "capabilities": capabilities }));
        client.notify("initialized", json!({}));
        (client, response["result"].clone())
    }

    pub fn send_raw(&mut self, body: &[u8]) {
        let header = format!("Content-Length: {}\r\n\r\n", body.len());
        self.stdin.write_all(header.as_bytes()).expect("write header");
        self.stdin.write_all(body).expect("write body");
        self.stdin.flush().expect("flush");
    }

    pub fn send(&mut self, message: Value) {
        self.send_raw(message.to_string().as_bytes());
    }

    pub fn notify(&mut self, method: &str, params: Value) {
        self.send(json!({ "jsonrpc": "2.0", "method": method, "params": params }));
    }

    /// Sends a request and returns its id without waiting.
    pub fn send_request(&mut self, method: &str, params: Value) -> i64 {
        let id = self.next_id;
        self.next_id += 1;
        self.send(json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params }));
        id
    }

    pub fn receive(&mut self, deadline: Instant) -> Option<Value> {
        let left = deadline.saturating_duration_since(Instant::now());
        match self.messages.recv_timeout(left) {
            Ok(m) => Some(m),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => panic!("the server closed stdout; stderr:\n{}", self.stderr()),
        }
    }

    /// Waits for the response to request `id`, keeping other messages for later.
    pub fn response(&mut self, id: &Value) -> Value {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let message = self.receive(deadline).unwrap_or_else(|| panic!("no response to request {id} within {TIMEOUT:?}"));
            if message.get("id") == Some(id) && message.get("method").is_none() {
                return message;
            }
            self.pending.push_back(message);
        }
    }

    /// Sends a request and waits for its whole response (`result` or `error`).
    pub fn request(&mut self, method: &str, params: Value) -> Value {
        let id = self.send_request(method, params);
        self.response(&json!(id))
    }

    /// Sends a request and returns its `result`, failing the test on an error response.
    pub fn result(&mut self, method: &str, params: Value) -> Value {
        let response = self.request(method, params);
        assert!(response.get("error").is_none(), "{method} failed: {response}");
        response["result"].clone()
    }

    /// Waits for a notification that `accept` takes.
    pub fn notification(&mut self, method: &str, accept: impl Fn(&Value) -> bool) -> Value {
        if let Some(i) = self.pending.iter().position(|m| m["method"] == method && accept(&m["params"])) {
            return self.pending.remove(i).expect("present")["params"].clone();
        }
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let message = self.receive(deadline).unwrap_or_else(|| panic!("no {method} notification within {TIMEOUT:?}"));
            if message["method"] == method && accept(&message["params"]) {
                return message["params"].clone();
            }
            self.pending.push_back(message);
        }
    }

    /// Waits for the diagnostics of `uri` at `version`.
    pub fn diagnostics(&mut self, uri: &str, version: i64) -> Vec<Value> {
        let params = self.notification("textDocument/publishDiagnostics", |p| p["uri"] == uri && p["version"] == version);
        params["diagnostics"].as_array().cloned().unwrap_or_default()
    }

    pub fn open(&mut self, uri: &str, text: &str) {
        self.notify("textDocument/didOpen", json!({ "textDocument": { "uri": uri, "languageId": "basin", "version": 1, "text": text } }));
    }

    pub fn document_text(&mut self, uri: &str) -> String {
        let result = self.result("basin/documentText", json!({ "textDocument": { "uri": uri } }));
        result["text"].as_str().expect("text").to_string()
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    pub fn shutdown(mut self) {
        let response = self.request("shutdown", Value::Null);
        assert!(response.get("error").is_none(), "{response}");
        self.notify("exit", Value::Null);
        let deadline = Instant::now() + TIMEOUT;
        loop {
            match self.child.try_wait().expect("wait for the server") {
                Some(status) => {
                    assert!(status.success(), "the server exited with {status}; stderr:\n{}", self.stderr());
                    return;
                }
                None if Instant::now() > deadline => panic!("the server did not exit after `exit`"),
                None => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn position(line: u32, character: u32) -> Value {
    json!({ "line": line, "character": character })
}

pub fn at(uri: &str, line: u32, character: u32) -> Value {
    json!({ "textDocument": { "uri": uri }, "position": position(line, character) })
}

/// Finds the line and UTF-16 column of the first occurrence of `needle` in `text`.
pub fn find(text: &str, needle: &str) -> (u32, u32) {
    let offset = text.find(needle).unwrap_or_else(|| panic!("{needle:?} not in the text"));
    let before = &text[..offset];
    let line = before.matches('\n').count() as u32;
    let line_start = before.rfind('\n').map_or(0, |n| n + 1);
    (line, before[line_start..].encode_utf16().count() as u32)
}

/// Converts a UTF-16 position to a byte offset the way a client does. Lines end at `\n`.
pub fn client_offset(text: &str, line: u32, character: u32) -> usize {
    let mut offset = 0;
    for _ in 0..line {
        offset += text[offset..].find('\n').map_or(text.len() - offset, |n| n + 1);
    }
    let mut units = 0;
    for (i, c) in text[offset..].char_indices() {
        if units >= character || c == '\n' || c == '\r' {
            return offset + i;
        }
        units += c.len_utf16() as u32;
    }
    text.len()
}

