//! Knowledge base: evidence for answers. A KB is a directory of immutable, versioned snapshots
//! (chunk records + a usearch index + a manifest); `ingest` builds a new snapshot incrementally,
//! `KnowledgeBase` opens one (memory-mapped index) and searches it (hybrid vector + BM25, answer
//! library first; vector search is exact up to `search::EXACT_SEARCH_MAX` records and uses an
//! index built deterministically above, so results are a function of the snapshot's version).
//! Does not talk to Redis itself: publishing goes through `queue`.

pub mod cache;
pub mod chunk;
pub mod eval;
pub mod extract;
pub mod ingest;
pub mod library;
pub mod publish;
pub mod search;
pub mod store;

use crate::router::Router;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use usearch::{Index, ScalarKind};

pub use extract::SourceKind;
pub use ingest::{
    FileRecords, IngestOptions, IngestReport, PagesWithoutText, RemoveReport, SkippedFile, ingest,
    remove,
};
pub use library::{LibraryAnswer, SlotValue};
pub use search::{EXACT_SEARCH_MAX, Hit, LIBRARY_THRESHOLD, Rerank};

/// Snapshot format written by this rfpq.
pub const FORMAT: u32 = 2;

/// Whether a record is a document chunk or a past answer (the answer library).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RecordKind {
    #[default]
    Doc,
    Answer,
}

/// How the index stores vectors: f32 (exact), f16 (half the memory) or i8 (a quarter).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Quantization {
    #[default]
    F32,
    F16,
    I8,
}

impl Quantization {
    pub fn scalar_kind(self) -> ScalarKind {
        match self {
            Self::F32 => ScalarKind::F32,
            Self::F16 => ScalarKind::F16,
            Self::I8 => ScalarKind::I8,
        }
    }
}

impl std::str::FromStr for Quantization {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "f32" => Ok(Self::F32),
            "f16" => Ok(Self::F16),
            "i8" => Ok(Self::I8),
            other => Err(format!(
                "unknown quantization '{other}' (use f32, f16 or i8)"
            )),
        }
    }
}

/// One stored piece of evidence: a document chunk or an answer-library record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Chunk {
    /// Position in the snapshot, and the vector's key in the index.
    pub id: u64,
    #[serde(default)]
    pub kind: RecordKind,
    /// The file it came from (`<ingested folder>/<relative path>`, or the file name).
    pub source: String,
    /// Heading path above the chunk ("Policy > 3 Encryption"), or the record's section.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heading: Option<String>,
    /// 1-based PDF page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page: Option<u32>,
    /// Byte range of `text` in the extracted text of its page (or document).
    #[serde(default)]
    pub start: usize,
    #[serde(default)]
    pub end: usize,
    pub text: String,
    /// For answer records: the past question and its values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer: Option<LibraryAnswer>,
}

/// One ingested file as the snapshot records it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceEntry {
    pub name: String,
    pub kind: SourceKind,
    /// sha256 of the file's bytes: an unchanged file is not re-read.
    pub sha256: String,
    pub bytes: u64,
    pub chunks: usize,
    pub answers: usize,
}

/// sha256 and size of one file of a snapshot (checked when a worker fetches it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileDigest {
    pub name: String,
    pub sha256: String,
    pub bytes: u64,
}

/// What a snapshot holds and how it was built; a KB is only searched with the same
/// embedding model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    /// Content version: a hash of the embedding model, chunker and every source's hash.
    pub version: String,
    /// Unix seconds when the snapshot was written.
    pub created_unix: u64,
    pub embed_model: String,
    pub dimensions: usize,
    pub quantization: Quantization,
    pub chunker: u32,
    pub chunks: usize,
    pub answers: usize,
    pub sources: Vec<SourceEntry>,
    /// The snapshot's data files (the manifest excluded).
    pub files: Vec<FileDigest>,
}

#[derive(Debug, thiserror::Error)]
pub enum KbError {
    #[error("knowledge base {path}: {message}")]
    Io { path: PathBuf, message: String },
    #[error(
        "knowledge base {0} does not exist or is not built; run `rfpq kb ingest DOCS --kb {0}`"
    )]
    Missing(PathBuf),
    #[error(
        "knowledge base {0} was built by an older rfpq; rebuild it with `rfpq kb ingest DOCS --kb {0} --rebuild`"
    )]
    OldFormat(PathBuf),
    #[error(
        "knowledge base was built with embedding model '{built}', but the router embeds with '{current}'; \
         vectors of different models cannot be mixed: rebuild it with `rfpq kb ingest … --rebuild`"
    )]
    ModelMismatch { built: String, current: String },
    #[error(
        "nothing to ingest under {0}: no readable .md, .txt, .html, .pdf, .docx or answered workbook"
    )]
    Empty(PathBuf),
    #[error("embedding failed: {0}")]
    Embed(String),
    #[error("vector index: {0}")]
    Index(String),
    #[error("{0}")]
    Publish(String),
}

fn io_err(path: &Path, e: impl std::fmt::Display) -> KbError {
    KbError::Io {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

fn index_err(e: impl std::fmt::Display) -> KbError {
    KbError::Index(e.to_string())
}

/// Where rfpq keeps caches: `$RFPQ_CACHE_DIR`, else `$XDG_CACHE_HOME/rfpq`, else `~/.cache/rfpq`.
pub fn cache_root() -> PathBuf {
    match std::env::var_os("RFPQ_CACHE_DIR").filter(|d| !d.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => crate::models::user_cache_dir(),
    }
}

/// An opened snapshot.
pub struct KnowledgeBase {
    pub manifest: Manifest,
    /// The snapshot directory.
    pub dir: PathBuf,
    chunks: Vec<Chunk>,
    index: Index,
    lexical: OnceLock<search::Lexical>,
    /// Records up to which vector search is exact ([`search::EXACT_SEARCH_MAX`]).
    exact_max: usize,
    /// The stored vectors exact search scans, read on first use.
    exact: OnceLock<Result<search::Exact, String>>,
    reranker: Option<std::sync::Arc<dyn search::Rerank>>,
}

/// Figures `rfpq kb stats` shows.
#[derive(Debug, Clone, Serialize)]
pub struct KbStats {
    pub path: PathBuf,
    pub version: String,
    pub embed_model: String,
    pub dimensions: usize,
    pub quantization: Quantization,
    pub sources: usize,
    pub chunks: usize,
    pub answers: usize,
    pub index_bytes: u64,
    pub index_memory_bytes: usize,
    pub created_unix: u64,
    pub by_source: Vec<SourceEntry>,
}

impl KnowledgeBase {
    /// The manifest of the current snapshot of `dir`, without loading its index.
    pub fn read_meta(dir: &Path) -> Result<Manifest, KbError> {
        store::read_manifest(&store::resolve(dir)?)
    }

    /// Opens the current snapshot of a KB directory (or a snapshot directory itself).
    /// The index is memory-mapped, so opening is fast and pages load on demand.
    pub fn open(dir: &Path) -> Result<Self, KbError> {
        Self::open_snapshot(&store::resolve(dir)?)
    }

    /// Opens one snapshot directory.
    pub fn open_snapshot(dir: &Path) -> Result<Self, KbError> {
        let manifest = store::read_manifest(dir)?;
        let chunks = store::read_chunks(dir)?;
        let index = Index::restore_view(&dir.join(store::INDEX_FILE).to_string_lossy())
            .map_err(index_err)?;
        index.change_expansion_search(store::EXPANSION_SEARCH);
        if index.size() != chunks.len() || chunks.len() != manifest.chunks {
            return Err(io_err(
                dir,
                format!(
                    "index has {} vectors, chunks file {} records, manifest says {}",
                    index.size(),
                    chunks.len(),
                    manifest.chunks
                ),
            ));
        }
        if chunks.iter().enumerate().any(|(i, c)| c.id != i as u64) {
            return Err(io_err(dir, "chunk ids are not their positions"));
        }
        Ok(Self {
            manifest,
            dir: dir.to_path_buf(),
            chunks,
            index,
            lexical: OnceLock::new(),
            exact_max: search::EXACT_SEARCH_MAX,
            exact: OnceLock::new(),
            reranker: None,
        })
    }

    pub fn version(&self) -> &str {
        &self.manifest.version
    }

    pub fn chunks(&self) -> &[Chunk] {
        &self.chunks
    }

    /// The stored vector of a chunk (dequantized).
    pub fn vector(&self, id: u64) -> Option<Vec<f32>> {
        let mut v = vec![0f32; self.manifest.dimensions];
        match self.index.get(id, &mut v) {
            Ok(n) if n > 0 => Some(v),
            _ => None,
        }
    }

    /// Refuses a router whose embedding model differs from the one the KB was built with.
    pub fn check_model(&self, router: &Router) -> Result<(), KbError> {
        let current = router.embed_model();
        if current != self.manifest.embed_model {
            return Err(KbError::ModelMismatch {
                built: self.manifest.embed_model.clone(),
                current,
            });
        }
        Ok(())
    }

    pub fn stats(&self) -> KbStats {
        let index_bytes = std::fs::metadata(self.dir.join(store::INDEX_FILE))
            .map(|m| m.len())
            .unwrap_or(0);
        KbStats {
            path: self.dir.clone(),
            version: self.manifest.version.clone(),
            embed_model: self.manifest.embed_model.clone(),
            dimensions: self.manifest.dimensions,
            quantization: self.manifest.quantization,
            sources: self.manifest.sources.len(),
            chunks: self.manifest.chunks,
            answers: self.manifest.answers,
            index_bytes,
            index_memory_bytes: self.index.memory_usage(),
            created_unix: self.manifest.created_unix,
            by_source: self.manifest.sources.clone(),
        }
    }

    /// Embeds `query` with the router and runs [`Self::search_embedded`].
    pub async fn search(
        &self,
        router: &Router,
        query: &str,
        k: usize,
    ) -> Result<Vec<Hit>, KbError> {
        self.check_model(router)?;
        let (v, _) = router
            .embed(&[query.to_string()])
            .await
            .map_err(|e| KbError::Embed(e.to_string()))?;
        let v = v
            .into_iter()
            .next()
            .ok_or_else(|| KbError::Embed("no vector returned".into()))?;
        self.search_embedded(query, &v, k)
    }
}
