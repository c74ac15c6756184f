//! The request handlers.
//!
//! Each request takes a snapshot and runs its analysis on a blocking thread, so a slow
//! analysis neither stalls the message loop nor keeps other requests waiting. The analysis
//! runs under `catch_unwind`: a panic becomes an error response and a log line, and salsa's
//! cancellation after an edit becomes "content modified". A `$/cancelRequest` drops the
//! waiting handler, and the client gets "request cancelled" at once.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use basin_compiler::db::check_file;
use basin_compiler::ide;
use basin_compiler::syntax::Span;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tower_lsp_server::jsonrpc::{Error, ErrorCode, Result};
use tower_lsp_server::ls_types::*;
use tower_lsp_server::{Client, LanguageServer};

use crate::convert;
use crate::position::{Encoding, LineIndex};
use crate::state::{Snapshot, State};

pub struct Backend {
    client: Client,
    state: Arc<State>,
    /// The version of the last diagnostics published for each document.
    published: Arc<tokio::sync::Mutex<HashMap<String, i32>>>,
}

/// Extracts the message of a panic payload, when it carries one.
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic without a message".to_string()
    }
}

/// Builds the error for a request that was understood but cannot be carried out
/// (`RequestFailed` in LSP 3.17).
fn request_failed(message: impl Into<String>) -> Error {
    Error { code: ErrorCode::ServerError(-32803), message: message.into().into(), data: None }
}

/// Runs `work` on a blocking thread, turning panics and salsa cancellation into errors.
async fn run_blocking<T: Send + 'static>(what: &'static str, work: impl FnOnce() -> T + Send + 'static) -> Result<T> {
    let task = tokio::task::spawn_blocking(move || {
        let _span = tracing::debug_span!("handler", request = what).entered();
        std::panic::catch_unwind(AssertUnwindSafe(|| salsa::Cancelled::catch(AssertUnwindSafe(work))))
    });
    match task.await {
        Ok(Ok(Ok(value))) => Ok(value),
        Ok(Ok(Err(cancelled))) => {
            tracing::debug!(request = what, %cancelled, "analysis cancelled by an edit");
            Err(Error::content_modified())
        }
        Ok(Err(payload)) => {
            let message = panic_message(payload.as_ref());
            tracing::error!(request = what, panic = %message, "handler panicked; the server goes on");
            Err(Error { code: ErrorCode::InternalError, message: format!("internal error in {what}: {message}").into(), data: None })
        }
        Err(e) => {
            tracing::error!(request = what, error = %e, "handler task failed");
            Err(Error::internal_error())
        }
    }
}

/// Parameters of `basin/documentText`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DocumentTextParams {
    pub text_document: TextDocumentIdentifier,
}

/// The server's copy of a document, for tests and debugging.
#[derive(Serialize)]
pub struct DocumentText {
    pub text: String,
    pub version: i32,
}

/// Parameters of `basin/invalidMessage`: the JSON-RPC error to return.
#[derive(Deserialize)]
pub struct InvalidMessageParams {
    pub code: i64,
    pub message: String,
}

/// Parameters of the test hook `basin/debugSleep`.
#[derive(Deserialize)]
pub struct SleepParams {
    pub milliseconds: u64,
}

impl Backend {
    pub fn new(client: Client, state: Arc<State>) -> Backend {
        Backend { client, state, published: Arc::default() }
    }

    fn snapshot(&self, uri: &Uri) -> Result<Snapshot> {
        self.state.snapshot(uri).ok_or_else(|| Error::invalid_params(format!("the document `{}` is not open", uri.as_str())))
    }

    /// Runs `work` against a snapshot of `uri` on a blocking thread.
    async fn analyze<T: Send + 'static>(&self, uri: &Uri, what: &'static str, work: impl FnOnce(&Snapshot) -> T + Send + 'static) -> Result<T> {
        let snapshot = self.snapshot(uri)?;
        run_blocking(what, move || work(&snapshot)).await
    }

    /// Checks the document and publishes its diagnostics, unless a newer version arrives
    /// first; the task for that version publishes instead.
    fn schedule_diagnostics(&self, uri: Uri) {
        let state = self.state.clone();
        let client = self.client.clone();
        let published = self.published.clone();
        tokio::spawn(async move {
            let Some(snapshot) = state.snapshot(&uri) else { return };
            let version = snapshot.version;
            let latest = snapshot.latest.clone();
            let target = uri.clone();
            let diagnostics = run_blocking("diagnostics", move || {
                let checked = check_file(&snapshot.db, snapshot.file);
                checked.diagnostics.iter().map(|d| convert::diagnostic(&snapshot, &target, d)).collect::<Vec<_>>()
            })
            .await;
            let Ok(diagnostics) = diagnostics else { return };
            let mut published = published.lock().await;
            if !state.is_open(&uri) {
                return;
            }
            if latest.load(Ordering::SeqCst) != version || published.get(uri.as_str()).is_some_and(|&v| v >= version) {
                tracing::debug!(uri = uri.as_str(), version, "stale diagnostics dropped");
                return;
            }
            published.insert(uri.as_str().to_string(), version);
            client.publish_diagnostics(uri, diagnostics, Some(version)).await;
        });
    }

    pub async fn document_text(&self, params: DocumentTextParams) -> Result<DocumentText> {
        let snapshot = self.snapshot(&params.text_document.uri)?;
        Ok(DocumentText { text: snapshot.text().to_string(), version: snapshot.version })
    }

    /// Returns the error carried by the stand-in for a message that could not be read (see
    /// `framing.rs`).
    pub async fn invalid_message(&self, params: InvalidMessageParams) -> Result<Value> {
        Err(Error { code: ErrorCode::from(params.code), message: params.message.into(), data: None })
    }

    pub async fn debug_panic(&self, _params: Value) -> Result<Value> {
        if !self.state.test_hooks {
            return Err(Error::method_not_found());
        }
        run_blocking("basin/debugPanic", || -> Value { panic!("panic requested by basin/debugPanic") }).await
    }

    pub async fn debug_sleep(&self, params: SleepParams) -> Result<Value> {
        if !self.state.test_hooks {
            return Err(Error::method_not_found());
        }
        run_blocking("basin/debugSleep", move || {
            std::thread::sleep(std::time::Duration::from_millis(params.milliseconds));
            Value::Null
        })
        .await
    }
}

/// Converts a definition to an LSP location, in the document or in a copy of a standard
/// library module.
fn location(snapshot: &Snapshot, uri: &Uri, target: ide::Location) -> Option<Location> {
    match target.module {
        None => Some(Location { uri: uri.clone(), range: convert::range(snapshot, target.span) }),
        Some(module) => {
            let source = basin_compiler::stdlib::MODULES.iter().find(|m| m.path == module)?.source;
            let index = LineIndex::new(source);
            let range = convert::range_in(&index, source, target.span, snapshot.encoding);
            Some(Location { uri: crate::stdlib_files::module_uri(&module)?, range })
        }
    }
}

impl LanguageServer for Backend {
    async fn initialize(&self, params: InitializeParams) -> Result<InitializeResult> {
        let offered = params.capabilities.general.as_ref().and_then(|g| g.position_encodings.as_ref());
        let utf8 = offered.is_some_and(|kinds| kinds.contains(&PositionEncodingKind::UTF8));
        let encoding = if utf8 { Encoding::Utf8 } else { Encoding::Utf16 };
        self.state.set_encoding(encoding);
        self.state.set_initialized();
        tracing::info!(?encoding, "initialize");
        let legend = SemanticTokensLegend { token_types: convert::TOKEN_TYPES.to_vec(), token_modifiers: convert::TOKEN_MODIFIERS.to_vec() };
        Ok(InitializeResult {
            capabilities: ServerCapabilities {
                position_encoding: Some(if utf8 { PositionEncodingKind::UTF8 } else { PositionEncodingKind::UTF16 }),
                text_document_sync: Some(TextDocumentSyncCapability::Kind(TextDocumentSyncKind::INCREMENTAL)),
                hover_provider: Some(HoverProviderCapability::Simple(true)),
                definition_provider: Some(OneOf::Left(true)),
                references_provider: Some(OneOf::Left(true)),
                rename_provider: Some(OneOf::Right(RenameOptions { prepare_provider: Some(true), work_done_progress_options: Default::default() })),
                completion_provider: Some(CompletionOptions { trigger_characters: Some(vec![".".into(), " ".into()]), ..Default::default() }),
                signature_help_provider: Some(SignatureHelpOptions {
                    trigger_characters: Some(vec!["(".into(), ",".into()]),
                    ..Default::default()
                }),
                document_symbol_provider: Some(OneOf::Left(true)),
                semantic_tokens_provider: Some(SemanticTokensServerCapabilities::SemanticTokensOptions(SemanticTokensOptions {
                    legend,
                    full: Some(SemanticTokensFullOptions::Bool(true)),
                    range: None,
                    ..Default::default()
                })),
                document_formatting_provider: Some(OneOf::Left(true)),
                folding_range_provider: Some(FoldingRangeProviderCapability::Simple(true)),
                inlay_hint_provider: Some(OneOf::Left(true)),
                code_action_provider: Some(CodeActionProviderCapability::Options(CodeActionOptions {
                    code_action_kinds: Some(vec![CodeActionKind::QUICKFIX]),
                    ..Default::default()
                })),
                ..Default::default()
            },
            server_info: Some(ServerInfo { name: "basin".into(), version: Some(env!("CARGO_PKG_VERSION").into()) }),
            ..Default::default()
        })
    }

    async fn initialized(&self, _: InitializedParams) {
        tracing::info!("initialized");
    }

    async fn shutdown(&self) -> Result<()> {
        tracing::info!("shutdown");
        Ok(())
    }

    // The text was applied in arrival order by `Ordered`; these only schedule diagnostics.
    async fn did_open(&self, params: DidOpenTextDocumentParams) {
        self.schedule_diagnostics(params.text_document.uri);
    }

    async fn did_change(&self, params: DidChangeTextDocumentParams) {
        self.schedule_diagnostics(params.text_document.uri);
    }

    async fn did_close(&self, params: DidCloseTextDocumentParams) {
        self.published.lock().await.remove(params.text_document.uri.as_str());
        self.client.publish_diagnostics(params.text_document.uri, Vec::new(), None).await;
    }

    async fn hover(&self, params: HoverParams) -> Result<Option<Hover>> {
        let p = params.text_document_position_params;
        self.analyze(&p.text_document.uri, "hover", move |s| {
            let info = ide::hover(&s.db, s.file, convert::offset(s, p.position))?;
            Some(Hover {
                contents: HoverContents::Markup(MarkupContent { kind: MarkupKind::Markdown, value: info.markdown }),
                range: Some(convert::range(s, info.span)),
            })
        })
        .await
    }

    async fn goto_definition(&self, params: GotoDefinitionParams) -> Result<Option<GotoDefinitionResponse>> {
        let p = params.text_document_position_params;
        let uri = p.text_document.uri.clone();
        self.analyze(&p.text_document.uri, "definition", move |s| {
            let target = ide::definition(&s.db, s.file, convert::offset(s, p.position))?;
            location(s, &uri, target).map(GotoDefinitionResponse::Scalar)
        })
        .await
    }

    async fn references(&self, params: ReferenceParams) -> Result<Option<Vec<Location>>> {
        let p = params.text_document_position;
        let uri = p.text_document.uri.clone();
        let include = params.context.include_declaration;
        self.analyze(&p.text_document.uri, "references", move |s| {
            let spans = ide::references(&s.db, s.file, convert::offset(s, p.position), include);
            Some(spans.into_iter().map(|span| Location { uri: uri.clone(), range: convert::range(s, span) }).collect())
        })
        .await
    }

    async fn prepare_rename(&self, params: TextDocumentPositionParams) -> Result<Option<PrepareRenameResponse>> {
        let result = self
            .analyze(&params.text_document.uri, "prepareRename", move |s| {
                if s.read_only {
                    return Err("this is a read-only copy of the standard library".to_string());
                }
                ide::prepare_rename(&s.db, s.file, convert::offset(s, params.position)).map(|span| convert::range(s, span))
            })
            .await?;
        result.map(|range| Some(PrepareRenameResponse::Range(range))).map_err(request_failed)
    }

    async fn rename(&self, params: RenameParams) -> Result<Option<WorkspaceEdit>> {
        let p = params.text_document_position;
        let uri = p.text_document.uri.clone();
        let new_name = params.new_name;
        let result = self
            .analyze(&p.text_document.uri, "rename", move |s| {
                if s.read_only {
                    return Err("this is a read-only copy of the standard library".to_string());
                }
                let spans = ide::rename(&s.db, s.file, convert::offset(s, p.position), &new_name)?;
                let edits = spans.into_iter().map(|span| TextEdit { range: convert::range(s, span), new_text: new_name.clone() }).collect();
                Ok(WorkspaceEdit { changes: Some(HashMap::from([(uri, edits)])), ..Default::default() })
            })
            .await?;
        result.map(Some).map_err(request_failed)
    }

    async fn completion(&self, params: CompletionParams) -> Result<Option<CompletionResponse>> {
        let p = params.text_document_position;
        // A space triggers completion only for the unit after a number, so that typing
        // `let x = ` does not open a list of every name.
        let after_space = params.context.as_ref().and_then(|c| c.trigger_character.as_deref()) == Some(" ");
        self.analyze(&p.text_document.uri, "completion", move |s| {
            let items = ide::completions(&s.db, s.file, convert::offset(s, p.position));
            if after_space && !items.iter().all(|c| c.kind == ide::CompletionKind::Unit) {
                return None;
            }
            Some(CompletionResponse::Array(items.into_iter().map(convert::completion).collect()))
        })
        .await
    }

    async fn signature_help(&self, params: SignatureHelpParams) -> Result<Option<SignatureHelp>> {
        let p = params.text_document_position_params;
        self.analyze(&p.text_document.uri, "signatureHelp", move |s| {
            let sig = ide::signature_help(&s.db, s.file, convert::offset(s, p.position))?;
            let parameters = sig.parameters.into_iter().map(|label| ParameterInformation { label: ParameterLabel::Simple(label), documentation: None }).collect();
            Some(SignatureHelp {
                signatures: vec![SignatureInformation {
                    label: sig.label,
                    documentation: sig.docs.map(|value| Documentation::MarkupContent(MarkupContent { kind: MarkupKind::Markdown, value })),
                    parameters: Some(parameters),
                    active_parameter: Some(sig.active_parameter as u32),
                }],
                active_signature: Some(0),
                active_parameter: Some(sig.active_parameter as u32),
            })
        })
        .await
    }

    async fn document_symbol(&self, params: DocumentSymbolParams) -> Result<Option<DocumentSymbolResponse>> {
        self.analyze(&params.text_document.uri, "documentSymbol", |s| {
            let symbols = ide::document_symbols(&s.db, s.file).into_iter().map(|o| convert::outline(s, o)).collect();
            Some(DocumentSymbolResponse::Nested(symbols))
        })
        .await
    }

    async fn semantic_tokens_full(&self, params: SemanticTokensParams) -> Result<Option<SemanticTokensResult>> {
        self.analyze(&params.text_document.uri, "semanticTokens", |s| {
            let tokens = ide::semantic_tokens(&s.db, s.file);
            let data = convert::semantic_tokens(s, &tokens);
            Some(SemanticTokensResult::Tokens(SemanticTokens { result_id: None, data }))
        })
        .await
    }

    async fn formatting(&self, params: DocumentFormattingParams) -> Result<Option<Vec<TextEdit>>> {
        self.analyze(&params.text_document.uri, "formatting", |s| {
            if s.read_only {
                return None;
            }
            let text = s.text();
            match basin_compiler::fmt::format_source(text) {
                Ok(formatted) if formatted != text => {
                    let whole = convert::range(s, Span { start: 0, end: text.len() as u32 });
                    Some(vec![TextEdit { range: whole, new_text: formatted }])
                }
                Ok(_) => Some(Vec::new()),
                Err(errors) => {
                    // A file with syntax errors is left as it is, and its diagnostics show why.
                    tracing::info!(errors = errors.len(), "formatting skipped: the file has syntax errors");
                    None
                }
            }
        })
        .await
    }

    async fn folding_range(&self, params: FoldingRangeParams) -> Result<Option<Vec<FoldingRange>>> {
        self.analyze(&params.text_document.uri, "foldingRange", |s| {
            let folds = ide::folding_ranges(&s.db, s.file)
                .into_iter()
                .filter_map(|f| {
                    let range = convert::range(s, f.span);
                    (range.end.line > range.start.line).then(|| FoldingRange {
                        start_line: range.start.line,
                        end_line: range.end.line,
                        kind: Some(match f.kind {
                            ide::FoldKind::Comment => FoldingRangeKind::Comment,
                            ide::FoldKind::Region => FoldingRangeKind::Region,
                        }),
                        ..Default::default()
                    })
                })
                .collect();
            Some(folds)
        })
        .await
    }

    async fn inlay_hint(&self, params: InlayHintParams) -> Result<Option<Vec<InlayHint>>> {
        self.analyze(&params.text_document.uri, "inlayHint", move |s| {
            let span = convert::span(s, params.range);
            let hints = ide::inlay_hints(&s.db, s.file, span)
                .into_iter()
                .map(|h| InlayHint {
                    position: s.index.position(s.text(), h.offset, s.encoding),
                    label: InlayHintLabel::String(h.label),
                    kind: None,
                    text_edits: None,
                    tooltip: None,
                    padding_left: Some(true),
                    padding_right: None,
                    data: None,
                })
                .collect();
            Some(hints)
        })
        .await
    }

    async fn code_action(&self, params: CodeActionParams) -> Result<Option<CodeActionResponse>> {
        let uri = params.text_document.uri.clone();
        self.analyze(&params.text_document.uri, "codeAction", move |s| {
            if s.read_only {
                return None;
            }
            let span = convert::span(s, params.range);
            let actions = ide::code_actions(&s.db, s.file, span)
                .into_iter()
                .map(|fix| {
                    let edits = fix.edits.into_iter().map(|(span, new_text)| TextEdit { range: convert::range(s, span), new_text }).collect();
                    CodeActionOrCommand::CodeAction(CodeAction {
                        title: fix.title,
                        kind: Some(CodeActionKind::QUICKFIX),
                        diagnostics: Some(vec![convert::diagnostic(s, &uri, &fix.diagnostic)]),
                        edit: Some(WorkspaceEdit { changes: Some(HashMap::from([(uri.clone(), edits)])), ..Default::default() }),
                        ..Default::default()
                    })
                })
                .collect();
            Some(actions)
        })
        .await
    }
}
