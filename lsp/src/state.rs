//! Open documents, the query database, and read snapshots of both.
//!
//! Text changes are applied under one mutex, in the order the client sent them (see
//! `ordered.rs`). A request takes a [`Snapshot`]: a clone of the database plus the document's
//! line index, made under the mutex and used without it. Salsa's `set_text` waits until
//! every clone is dropped and makes queries running on a clone unwind with
//! `salsa::Cancelled`, so an edit never waits for a slow request to finish; the request
//! answers "content modified" instead.
//!
//! NOTE: a snapshot must never be held while locking the store, or `set_text` would wait
//! for it forever. Versions are read through an atomic for that reason.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use basin_compiler::{Database, SourceFile};
use salsa::Setter;
use tower_lsp_server::ls_types::{DidChangeTextDocumentParams, DidCloseTextDocumentParams, DidOpenTextDocumentParams, Uri};

use crate::position::{Encoding, LineIndex};

/// One open document.
struct Document {
    file: SourceFile,
    index: Arc<LineIndex>,
    version: Arc<AtomicI32>,
    /// A standard library module shown to the user; edits to it are not offered.
    read_only: bool,
}

#[derive(Default)]
struct Store {
    db: Database,
    documents: HashMap<String, Document>,
}

/// A consistent view of one document for a request.
pub struct Snapshot {
    pub db: Database,
    pub file: SourceFile,
    pub index: Arc<LineIndex>,
    pub encoding: Encoding,
    pub version: i32,
    /// The document's latest version, which moves on when an edit arrives.
    pub latest: Arc<AtomicI32>,
    pub read_only: bool,
}

impl Snapshot {
    pub fn text(&self) -> &str {
        self.file.text(&self.db)
    }
}

/// State shared by the request handlers and the ordered notification path.
pub struct State {
    store: Mutex<Store>,
    encoding: AtomicU8,
    initialized: AtomicBool,
    /// Debug requests for tests (`basin/debugPanic`, `basin/debugSleep`), enabled by the
    /// environment variable `BASIN_LSP_TEST_HOOKS=1`.
    pub test_hooks: bool,
}

impl State {
    pub fn new() -> State {
        State {
            store: Mutex::new(Store::default()),
            encoding: AtomicU8::new(0),
            initialized: AtomicBool::new(false),
            test_hooks: std::env::var("BASIN_LSP_TEST_HOOKS").is_ok_and(|v| v == "1"),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Store> {
        // A panic while applying a change poisons the mutex; the store is still usable,
        // because every change is applied whole or not at all.
        self.store.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn set_encoding(&self, encoding: Encoding) {
        self.encoding.store(if encoding == Encoding::Utf8 { 1 } else { 0 }, Ordering::SeqCst);
    }

    pub fn encoding(&self) -> Encoding {
        if self.encoding.load(Ordering::SeqCst) == 1 { Encoding::Utf8 } else { Encoding::Utf16 }
    }

    pub fn set_initialized(&self) {
        self.initialized.store(true, Ordering::SeqCst);
    }

    pub fn is_initialized(&self) -> bool {
        self.initialized.load(Ordering::SeqCst)
    }

    pub fn snapshot(&self, uri: &Uri) -> Option<Snapshot> {
        let store = self.lock();
        let doc = store.documents.get(uri.as_str())?;
        Some(Snapshot {
            db: store.db.clone(),
            file: doc.file,
            index: doc.index.clone(),
            encoding: self.encoding(),
            version: doc.version.load(Ordering::SeqCst),
            latest: doc.version.clone(),
            read_only: doc.read_only,
        })
    }

    pub fn is_open(&self, uri: &Uri) -> bool {
        self.lock().documents.contains_key(uri.as_str())
    }

    pub fn open(&self, params: DidOpenTextDocumentParams) {
        let uri = params.text_document.uri;
        let text = params.text_document.text;
        let read_only = crate::stdlib_files::is_stdlib_copy(&uri);
        let mut store = self.lock();
        let index = Arc::new(LineIndex::new(&text));
        let file = store.db.add_file(uri.as_str(), text);
        let version = Arc::new(AtomicI32::new(params.text_document.version));
        store.documents.insert(uri.as_str().to_string(), Document { file, index, version, read_only });
    }

    /// Applies content changes in order: a change without a range replaces the text, and a
    /// change with a range is interpreted against the text left by the previous one.
    pub fn change(&self, params: DidChangeTextDocumentParams) {
        let encoding = self.encoding();
        let mut store = self.lock();
        let Some(doc) = store.documents.get(params.text_document.uri.as_str()) else {
            tracing::warn!(uri = params.text_document.uri.as_str(), "change to a document that is not open, ignored");
            return;
        };
        let file = doc.file;
        let mut text = file.text(&store.db).clone();
        let mut index = (*doc.index).clone();
        for change in params.content_changes {
            match change.range {
                None => text = change.text,
                Some(range) => {
                    let start = index.offset(&text, range.start, encoding) as usize;
                    let end = (index.offset(&text, range.end, encoding) as usize).max(start);
                    text.replace_range(start..end, &change.text);
                }
            }
            index = LineIndex::new(&text);
        }
        let doc = store.documents.get_mut(params.text_document.uri.as_str()).expect("checked above");
        doc.index = Arc::new(index);
        doc.version.store(params.text_document.version, Ordering::SeqCst);
        file.set_text(&mut store.db).to(text);
    }

    pub fn close(&self, params: DidCloseTextDocumentParams) {
        self.lock().documents.remove(params.text_document.uri.as_str());
    }
}
