//! Keeps malformed input from stopping the server.
//!
//! tower-lsp-server 0.23 replies to a message it cannot decode with a parse error, but its
//! reader (tokio-util's `FramedRead`) ends the input stream after any decode error, so the
//! server exits. This module reads the client's frames first and passes on only messages
//! the transport can decode. A frame whose body is not JSON, or not a JSON-RPC message,
//! becomes a request `basin/invalidMessage` with id `null`, which the server answers with
//! the JSON-RPC error (parse error or invalid request) and id `null`, as the JSON-RPC 2.0
//! specification asks for input it cannot read.

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader, DuplexStream};
use tower_lsp_server::jsonrpc::{Request, Response};

/// Frames larger than this are rejected rather than buffered.
const MAX_BODY: usize = 256 << 20;

/// The method of the stand-in request for a message that could not be read.
pub const INVALID_MESSAGE: &str = "basin/invalidMessage";

/// The reason a frame cannot be passed on.
#[derive(Debug, PartialEq)]
enum Invalid {
    /// JSON-RPC parse error: the header or body could not be read.
    Parse(String),
    /// JSON-RPC invalid request: JSON, but not a request, notification or response.
    Request(String),
}

impl Invalid {
    fn stand_in(&self) -> Vec<u8> {
        let (code, message) = match self {
            Invalid::Parse(m) => (-32700, m),
            Invalid::Request(m) => (-32600, m),
        };
        json!({ "jsonrpc": "2.0", "id": null, "method": INVALID_MESSAGE, "params": { "code": code, "message": message } }).to_string().into_bytes()
    }
}

/// Checks that `body` is a message the transport decodes.
fn check(body: &[u8]) -> Result<(), Invalid> {
    let value: Value = serde_json::from_slice(body).map_err(|e| Invalid::Parse(format!("invalid JSON: {e}")))?;
    let valid = if value.get("method").is_some() {
        serde_json::from_value::<Request>(value).map(|_| ()).map_err(|e| e.to_string())
    } else {
        serde_json::from_value::<Response>(value).map(|_| ()).map_err(|e| e.to_string())
    };
    valid.map_err(|e| Invalid::Request(format!("not a JSON-RPC message: {e}")))
}

/// Reads one header block; `Ok(None)` at the end of input.
async fn read_header(input: &mut (impl AsyncBufReadExt + Unpin)) -> std::io::Result<Option<Result<usize, Invalid>>> {
    let mut length = None;
    let mut lines = 0;
    loop {
        let mut line = Vec::new();
        if input.read_until(b'\n', &mut line).await? == 0 {
            return Ok(None);
        }
        let line = String::from_utf8_lossy(&line);
        let line = line.trim_end_matches(['\r', '\n']);
        if line.is_empty() {
            if lines == 0 {
                // Stray blank lines between frames are harmless.
                continue;
            }
            break;
        }
        lines += 1;
        if let Some((name, value)) = line.split_once(':') {
            if name.trim().eq_ignore_ascii_case("content-length") {
                length = value.trim().parse::<usize>().ok();
            }
        }
    }
    Ok(Some(match length {
        Some(n) if n <= MAX_BODY => Ok(n),
        Some(n) => Err(Invalid::Parse(format!("a message of {n} bytes is larger than the limit of {MAX_BODY}"))),
        None => Err(Invalid::Parse("missing or invalid Content-Length header".to_string())),
    }))
}

async fn write_frame(output: &mut (impl AsyncWrite + Unpin), body: &[u8]) -> std::io::Result<()> {
    output.write_all(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes()).await?;
    output.write_all(body).await?;
    output.flush().await
}

/// Copies frames from `input` to `output`, replacing unreadable ones, until either ends.
async fn relay(input: impl AsyncRead + Unpin, mut output: impl AsyncWrite + Unpin) -> std::io::Result<()> {
    let mut input = BufReader::new(input);
    while let Some(header) = read_header(&mut input).await? {
        let body = match header {
            Ok(length) => {
                let mut body = vec![0; length];
                input.read_exact(&mut body).await?;
                match check(&body) {
                    Ok(()) => body,
                    Err(invalid) => {
                        tracing::error!(error = ?invalid, "malformed message from the client");
                        invalid.stand_in()
                    }
                }
            }
            Err(invalid) => {
                tracing::error!(error = ?invalid, "malformed message header from the client");
                invalid.stand_in()
            }
        };
        write_frame(&mut output, &body).await?;
    }
    Ok(())
}

/// Starts a background task that reads `input` and returns a stream of its frames, with
/// unreadable ones replaced.
pub fn sanitize(input: impl AsyncRead + Unpin + Send + 'static) -> DuplexStream {
    let (writer, reader) = tokio::io::duplex(1 << 16);
    tokio::spawn(async move {
        if let Err(e) = relay(input, writer).await {
            tracing::info!(error = %e, "client input ended");
        }
    });
    reader
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(body: &str) -> String {
        format!("Content-Length: {}\r\n\r\n{body}", body.len())
    }

    async fn relayed(input: String) -> String {
        let mut output = Vec::new();
        relay(input.as_bytes(), &mut output).await.expect("relay");
        String::from_utf8(output).expect("UTF-8")
    }

    #[tokio::test]
    async fn valid_frames_pass_unchanged() {
        let body = r#"{"jsonrpc":"2.0","id":1,"method":"shutdown"}"#;
        assert_eq!(relayed(frame(body)).await, frame(body));
    }

    #[tokio::test]
    async fn malformed_frames_become_stand_ins() {
        let valid = r#"{"jsonrpc":"2.0","method":"exit"}"#;
        let input = format!("{}{}Content-Type: x\r\n\r\n{}", frame("{\"jsonrpc\": "), frame("[1, 2]"), frame(valid));
        let output = relayed(input).await;
        let mut bodies: Vec<Value> = Vec::new();
        let mut rest = output.as_str();
        while let Some((header, tail)) = rest.split_once("\r\n\r\n") {
            let length: usize = header.strip_prefix("Content-Length: ").and_then(|n| n.parse().ok()).expect("a length");
            bodies.push(serde_json::from_str(&tail[..length]).expect("JSON"));
            rest = &tail[length..];
        }
        assert_eq!(bodies[0]["params"]["code"], -32700);
        assert_eq!(bodies[1]["params"]["code"], -32600);
        assert_eq!(bodies[2]["params"]["code"], -32700, "a header without Content-Length");
        assert_eq!(bodies[3]["method"], "exit");
        assert!(bodies[..3].iter().all(|b| b["id"].is_null() && b["method"] == INVALID_MESSAGE));
    }
}
