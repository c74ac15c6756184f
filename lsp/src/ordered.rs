//! Applies document-sync notifications in the order they arrive.
//!
//! tower-lsp-server 0.23 runs handlers concurrently (up to four at once), so two
//! `didChange` handlers could run out of order. Its transport calls `Service::call` once
//! per message, in arrival order, from its read loop. This layer applies `didOpen`,
//! `didChange` and `didClose` to the document store right there, before the message is
//! passed on; the handlers that run afterwards only schedule diagnostics.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::task::{Context, Poll};

use serde::de::DeserializeOwned;
use tower_lsp_server::jsonrpc::Request;
use tower_service::Service;

use crate::state::State;

pub struct Ordered<S> {
    inner: S,
    state: Arc<State>,
}

impl<S> Ordered<S> {
    pub fn new(inner: S, state: Arc<State>) -> Ordered<S> {
        Ordered { inner, state }
    }
}

fn params<P: DeserializeOwned>(request: &Request) -> Option<P> {
    let value = request.params()?.clone();
    match serde_json::from_value(value) {
        Ok(p) => Some(p),
        Err(e) => {
            tracing::error!(method = request.method(), error = %e, "invalid notification parameters, ignored");
            None
        }
    }
}

impl<S: Service<Request>> Service<Request> for Ordered<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        if self.state.is_initialized() {
            let state = &self.state;
            let applied = std::panic::catch_unwind(AssertUnwindSafe(|| match request.method() {
                "textDocument/didOpen" => {
                    if let Some(p) = params(&request) {
                        state.open(p);
                    }
                }
                "textDocument/didChange" => {
                    if let Some(p) = params(&request) {
                        state.change(p);
                    }
                }
                "textDocument/didClose" => {
                    if let Some(p) = params(&request) {
                        state.close(p);
                    }
                }
                _ => {}
            }));
            if applied.is_err() {
                tracing::error!(method = request.method(), "panic while applying a document change; the change was dropped");
            }
        }
        self.inner.call(request)
    }
}
