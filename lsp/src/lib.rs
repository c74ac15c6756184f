//! The Basin language server: `basin lsp`, speaking LSP over stdin and stdout.
//!
//! Only this crate uses LSP types. Analyses come from `basin_compiler::ide` in byte offsets,
//! and `position.rs` converts them to the encoding negotiated with the client.

mod convert;
mod framing;
mod ordered;
mod position;
mod server;
mod state;
mod stdlib_files;

use std::sync::Arc;

use tower_lsp_server::{LspService, Server};

/// Serves one client over stdin and stdout until it sends `exit` or closes stdin.
pub fn run_stdio() -> std::io::Result<()> {
    std::panic::set_hook(Box::new(|info| {
        tracing::error!(panic = %info, "panic");
    }));
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    runtime.block_on(async {
        let state = Arc::new(state::State::new());
        let (service, socket) = LspService::build(|client| server::Backend::new(client, state.clone()))
            .custom_method("basin/documentText", server::Backend::document_text)
            .custom_method(framing::INVALID_MESSAGE, server::Backend::invalid_message)
            .custom_method("basin/debugPanic", server::Backend::debug_panic)
            .custom_method("basin/debugSleep", server::Backend::debug_sleep)
            .finish();
        let service = ordered::Ordered::new(service, state);
        Server::new(framing::sanitize(tokio::io::stdin()), tokio::io::stdout(), socket).serve(service).await;
    });
    // Reading stdin blocks a thread that the runtime cannot interrupt, so do not wait for it.
    runtime.shutdown_background();
    tracing::info!("language server stopped");
    Ok(())
}
