//! Knowledge base: chunks documents, embeds the chunks through the router's `embed` task and
//! keeps the vectors in a usearch index next to the chunk metadata on disk. Searches by vector.
//! Does not yet do incremental re-ingest, PDF/DOCX or hybrid lexical scoring (issue 5).

use crate::router::Router;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use text_splitter::{ChunkConfig, MarkdownSplitter};
use usearch::{Index, IndexOptions, MetricKind, ScalarKind};

const META_FILE: &str = "kb.json";
const CHUNKS_FILE: &str = "chunks.jsonl";
const INDEX_FILE: &str = "index.usearch";
/// Chunk size in characters (all-MiniLM-L6-v2 reads at most 256 word pieces).
const CHUNK_CHARS: std::ops::Range<usize> = 300..900;
const EMBED_BATCH: usize = 32;

/// What a KB was built with; a KB is only searched with the same embedding model.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KbMeta {
    pub format: u32,
    pub embed_model: String,
    pub dimensions: usize,
    pub chunks: usize,
    pub sources: usize,
}

/// One stored piece of evidence.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Chunk {
    pub id: u64,
    /// File the chunk came from, relative to the ingested directory.
    pub source: String,
    /// Markdown heading path above the chunk, when any.
    pub heading: Option<String>,
    pub text: String,
}

/// A search result.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Hit {
    pub score: f32,
    pub source: String,
    pub heading: Option<String>,
    pub text: String,
}

#[derive(Debug, thiserror::Error)]
pub enum KbError {
    #[error("knowledge base {path}: {message}")]
    Io { path: PathBuf, message: String },
    #[error("knowledge base {0} does not exist or is not built; run `rfpq kb ingest DIR --kb {0}`")]
    Missing(PathBuf),
    #[error(
        "knowledge base was built with embedding model '{built}', but the router embeds with '{current}'; \
         rebuild it with `rfpq kb ingest`"
    )]
    ModelMismatch { built: String, current: String },
    #[error("no documents (.md, .markdown, .txt) found under {0}")]
    Empty(PathBuf),
    #[error("embedding failed: {0}")]
    Embed(String),
    #[error("vector index: {0}")]
    Index(String),
}

fn io_err(path: &Path, e: impl std::fmt::Display) -> KbError {
    KbError::Io {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// An opened knowledge base.
pub struct KnowledgeBase {
    pub meta: KbMeta,
    chunks: Vec<Chunk>,
    index: Index,
}

/// Summary of an ingest run.
#[derive(Debug, Clone, Serialize)]
pub struct IngestReport {
    pub sources: usize,
    pub chunks: usize,
    pub embed_model: String,
    pub dimensions: usize,
}

fn index_options(dimensions: usize) -> IndexOptions {
    IndexOptions {
        dimensions,
        metric: MetricKind::Cos,
        quantization: ScalarKind::F32,
        ..Default::default()
    }
}

/// Files under `root` that can be ingested, sorted for a stable result.
fn document_files(root: &Path) -> Result<Vec<PathBuf>, KbError> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        if dir.is_file() {
            out.push(dir);
            continue;
        }
        let entries = std::fs::read_dir(&dir).map_err(|e| io_err(&dir, e))?;
        for entry in entries {
            let path = entry.map_err(|e| io_err(&dir, e))?.path();
            if path.is_dir() {
                stack.push(path);
            } else if matches!(
                path.extension()
                    .and_then(|e| e.to_str())
                    .map(str::to_ascii_lowercase)
                    .as_deref(),
                Some("md" | "markdown" | "txt")
            ) {
                out.push(path);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Splits one document into chunks with the heading path above each.
pub fn chunk_document(source: &str, text: &str, first_id: u64) -> Vec<Chunk> {
    // Markdown headings as (byte offset, level, title), in document order.
    let mut headings: Vec<(usize, usize, &str)> = Vec::new();
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let level = line.bytes().take_while(|b| *b == b'#').count();
        if level > 0 && line[level..].starts_with(' ') {
            headings.push((offset, level, line[level..].trim()));
        }
        offset += line.len();
    }
    let splitter = MarkdownSplitter::new(ChunkConfig::new(CHUNK_CHARS));
    splitter
        .chunk_indices(text)
        .enumerate()
        .map(|(n, (start, chunk))| {
            // The heading path in force where the chunk starts: each heading replaces those
            // of its level and deeper.
            let mut path: Vec<(usize, &str)> = Vec::new();
            for (_, level, title) in headings.iter().take_while(|(at, _, _)| *at <= start) {
                path.retain(|(l, _)| l < level);
                path.push((*level, title));
            }
            let heading = (!path.is_empty())
                .then(|| path.iter().map(|(_, t)| *t).collect::<Vec<_>>().join(" > "));
            Chunk {
                id: first_id + n as u64,
                source: source.to_string(),
                heading,
                text: chunk.to_string(),
            }
        })
        .collect()
}

/// The text that gets embedded for a chunk: heading path, then the chunk.
fn embedding_text(c: &Chunk) -> String {
    match &c.heading {
        Some(h) if !c.text.contains(h.rsplit(" > ").next().unwrap_or(h)) => {
            format!("{h}\n{}", c.text)
        }
        _ => c.text.clone(),
    }
}

/// Builds (or rebuilds) the KB at `kb_dir` from every document under `inputs`.
pub async fn ingest(
    router: &Router,
    inputs: &[PathBuf],
    kb_dir: &Path,
) -> Result<IngestReport, KbError> {
    let mut chunks = Vec::new();
    let mut sources = 0;
    for root in inputs {
        if !root.exists() {
            return Err(io_err(root, "no such file or directory"));
        }
        for file in document_files(root)? {
            let text = match std::fs::read(&file) {
                Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
                Err(e) => {
                    tracing::warn!(file = %file.display(), error = %e, "skipping unreadable document");
                    continue;
                }
            };
            let rel = file
                .strip_prefix(root)
                .ok()
                .filter(|r| !r.as_os_str().is_empty())
                .unwrap_or(&file);
            let name = rel.to_string_lossy().into_owned();
            let new = chunk_document(&name, &text, chunks.len() as u64);
            if !new.is_empty() {
                sources += 1;
            }
            chunks.extend(new);
        }
    }
    if chunks.is_empty() {
        return Err(KbError::Empty(inputs.first().cloned().unwrap_or_default()));
    }
    let mut vectors = Vec::with_capacity(chunks.len());
    for batch in chunks.chunks(EMBED_BATCH) {
        let texts: Vec<String> = batch.iter().map(embedding_text).collect();
        let (v, _) = router
            .embed(&texts)
            .await
            .map_err(|e| KbError::Embed(e.to_string()))?;
        vectors.extend(v);
    }
    let dimensions = vectors.first().map(Vec::len).unwrap_or(0);
    let meta = KbMeta {
        format: 1,
        embed_model: router.embed_model(),
        dimensions,
        chunks: chunks.len(),
        sources,
    };
    let dir = kb_dir.to_path_buf();
    let report = IngestReport {
        sources,
        chunks: chunks.len(),
        embed_model: meta.embed_model.clone(),
        dimensions,
    };
    tokio::task::spawn_blocking(move || write_kb(&dir, &meta, &chunks, &vectors))
        .await
        .map_err(|e| KbError::Index(e.to_string()))??;
    Ok(report)
}

fn write_kb(
    dir: &Path,
    meta: &KbMeta,
    chunks: &[Chunk],
    vectors: &[Vec<f32>],
) -> Result<(), KbError> {
    std::fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
    let index =
        Index::new(&index_options(meta.dimensions)).map_err(|e| KbError::Index(e.to_string()))?;
    index
        .reserve(chunks.len())
        .map_err(|e| KbError::Index(e.to_string()))?;
    for (c, v) in chunks.iter().zip(vectors) {
        index
            .add(c.id, v)
            .map_err(|e| KbError::Index(e.to_string()))?;
    }
    // Write to temporary names, then rename: a reader never sees a half-written KB.
    let tmp = |name: &str| dir.join(format!(".{name}.tmp"));
    let index_tmp = tmp(INDEX_FILE);
    index
        .save(&index_tmp.to_string_lossy())
        .map_err(|e| KbError::Index(e.to_string()))?;
    let mut lines = String::new();
    for c in chunks {
        lines.push_str(&serde_json::to_string(c).map_err(|e| io_err(dir, e))?);
        lines.push('\n');
    }
    std::fs::write(tmp(CHUNKS_FILE), lines).map_err(|e| io_err(dir, e))?;
    std::fs::write(
        tmp(META_FILE),
        serde_json::to_vec_pretty(meta).map_err(|e| io_err(dir, e))?,
    )
    .map_err(|e| io_err(dir, e))?;
    for name in [INDEX_FILE, CHUNKS_FILE, META_FILE] {
        std::fs::rename(tmp(name), dir.join(name)).map_err(|e| io_err(dir, e))?;
    }
    Ok(())
}

impl KnowledgeBase {
    /// What a built KB records about itself, without loading its index (a cheap existence check).
    pub fn read_meta(dir: &Path) -> Result<KbMeta, KbError> {
        let meta_path = dir.join(META_FILE);
        if !meta_path.exists() {
            return Err(KbError::Missing(dir.to_path_buf()));
        }
        let bytes = std::fs::read(&meta_path).map_err(|e| io_err(&meta_path, e))?;
        serde_json::from_slice(&bytes).map_err(|e| io_err(&meta_path, e))
    }

    /// Opens a KB built by `ingest`.
    pub fn open(dir: &Path) -> Result<Self, KbError> {
        let meta = Self::read_meta(dir)?;
        let chunks_path = dir.join(CHUNKS_FILE);
        let chunks = std::fs::read_to_string(&chunks_path)
            .map_err(|e| io_err(&chunks_path, e))?
            .lines()
            .map(serde_json::from_str::<Chunk>)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| io_err(&chunks_path, e))?;
        let index = Index::new(&index_options(meta.dimensions))
            .map_err(|e| KbError::Index(e.to_string()))?;
        index
            .load(&dir.join(INDEX_FILE).to_string_lossy())
            .map_err(|e| KbError::Index(e.to_string()))?;
        if index.size() != chunks.len() {
            return Err(io_err(
                dir,
                format!(
                    "index has {} vectors but {} chunks",
                    index.size(),
                    chunks.len()
                ),
            ));
        }
        Ok(Self {
            meta,
            chunks,
            index,
        })
    }

    /// Refuses a router whose embedding model differs from the one the KB was built with.
    pub fn check_model(&self, router: &Router) -> Result<(), KbError> {
        let current = router.embed_model();
        if current != self.meta.embed_model {
            return Err(KbError::ModelMismatch {
                built: self.meta.embed_model.clone(),
                current,
            });
        }
        Ok(())
    }

    /// Nearest chunks to an embedded query, best first; score is cosine similarity.
    pub fn search_vector(&self, query: &[f32], k: usize) -> Result<Vec<Hit>, KbError> {
        let found = self
            .index
            .search(query, k)
            .map_err(|e| KbError::Index(e.to_string()))?;
        Ok(found
            .keys
            .iter()
            .zip(&found.distances)
            .filter_map(|(key, d)| {
                let c = self.chunks.get(*key as usize)?;
                Some(Hit {
                    score: 1.0 - d,
                    source: c.source.clone(),
                    heading: c.heading.clone(),
                    text: c.text.clone(),
                })
            })
            .collect())
    }

    /// Embeds `query` with the router and searches.
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
        self.search_vector(&v, k)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_carry_their_heading_path() {
        let text = "# Access control\n\n## MFA\n\n### Do you enforce MFA?\n\nYes. All staff use hardware keys.\n\n## Passwords\n\nMinimum 14 characters.\n";
        let chunks = chunk_document("a.md", text, 0);
        assert!(!chunks.is_empty());
        let last = chunks.last().unwrap();
        assert!(last.text.contains("14 characters"));
        assert!(
            last.heading
                .as_deref()
                .unwrap()
                .starts_with("Access control"),
            "{:?}",
            last.heading
        );
    }
}
