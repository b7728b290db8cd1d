//! Builds a new snapshot of a KB from files, incrementally: a file whose bytes are unchanged
//! keeps its chunks and vectors, a changed file replaces its chunks, a new file is added, and a
//! file that cannot be read is skipped with a warning naming it (the rest is ingested).
//! Embeddings go through the router's `embed` task in batches and an on-disk cache. Also
//! `remove`. Does not search.

use super::cache::{EmbeddingCache, text_hash};
use super::extract::{self, SourceKind};
use super::{
    Chunk, KbError, KnowledgeBase, Manifest, Quantization, RecordKind, SourceEntry, chunk, io_err,
    library, store,
};
use crate::router::Router;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Texts per `embed` call.
pub const EMBED_BATCH: usize = 32;

/// How to ingest.
#[derive(Debug, Clone)]
pub struct IngestOptions {
    /// Start from an empty KB instead of the current snapshot (needed after changing the
    /// embedding model).
    pub rebuild: bool,
    /// Vector storage; `None` keeps the current snapshot's (f32 for a new KB).
    pub quantization: Option<Quantization>,
    /// Directory of the embedding cache; `None` caches in memory only.
    pub embed_cache: Option<PathBuf>,
    /// Draw progress bars on stderr (hidden anyway when stderr is not a terminal).
    pub progress: bool,
}

impl Default for IngestOptions {
    fn default() -> Self {
        Self {
            rebuild: false,
            quantization: None,
            embed_cache: Some(super::cache_root().join("embeddings")),
            progress: false,
        }
    }
}

/// A file that was not ingested, and why.
#[derive(Debug, Clone, Serialize)]
pub struct SkippedFile {
    pub path: String,
    pub reason: String,
}

/// A document some of whose pages have no text layer (a scan that needs OCR first, or a page
/// that is only a picture).
#[derive(Debug, Clone, Serialize)]
pub struct PagesWithoutText {
    pub path: String,
    /// 1-based numbers of the pages without text.
    pub pages: Vec<u32>,
    /// Pages in the document.
    pub of: usize,
}

/// What one file gave: its records and its pages without text.
#[derive(Debug, Clone, Default)]
pub struct FileRecords {
    pub chunks: Vec<Chunk>,
    /// Pages (PDF) or 1 (every other document kind; 0 for a workbook).
    pub pages: usize,
    /// 1-based numbers of the PDF pages that had no text.
    pub pages_without_text: Vec<u32>,
}

/// What an ingest did.
#[derive(Debug, Clone, Serialize)]
pub struct IngestReport {
    /// Version of the current snapshot after the ingest.
    pub version: String,
    pub previous_version: Option<String>,
    /// Nothing changed: no snapshot was written.
    pub unchanged: bool,
    pub added: Vec<String>,
    pub updated: Vec<String>,
    pub unchanged_files: usize,
    pub skipped: Vec<SkippedFile>,
    /// Files extracted this run that were ingested with some of their pages empty.
    pub pages_without_text: Vec<PagesWithoutText>,
    pub sources: usize,
    pub chunks: usize,
    pub answers: usize,
    /// Texts sent to the embedding model (the rest came from the cache or the old snapshot).
    pub embedded: usize,
    pub reused_vectors: usize,
    pub embed_model: String,
    pub dimensions: usize,
    pub quantization: Quantization,
    /// Bytes of the files read and extracted this run.
    pub bytes_read: u64,
    /// Seconds reading, extracting and chunking files (no embedding).
    pub extract_secs: f64,
    pub embed_secs: f64,
    /// Seconds building and writing the index and snapshot.
    pub index_secs: f64,
}

/// What `remove` did.
#[derive(Debug, Clone, Serialize)]
pub struct RemoveReport {
    pub version: String,
    pub removed: Vec<String>,
    pub sources: usize,
    pub chunks: usize,
}

/// A file to ingest under its source name.
struct Input {
    name: String,
    path: PathBuf,
    kind: SourceKind,
}

/// Every ingestible file under `inputs`: a directory contributes `<dir name>/<relative path>`
/// for each supported file (hidden entries skipped), a file contributes its name.
fn collect_inputs(
    inputs: &[PathBuf],
    skipped: &mut Vec<SkippedFile>,
) -> Result<Vec<Input>, KbError> {
    let mut out = Vec::new();
    for root in inputs {
        if !root.exists() {
            return Err(io_err(root, "no such file or directory"));
        }
        let root_name = std::fs::canonicalize(root)
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_else(|| root.to_string_lossy().into_owned());
        if root.is_file() {
            match SourceKind::of(root) {
                Some(kind) => out.push(Input {
                    name: root_name,
                    path: root.clone(),
                    kind,
                }),
                None => skipped.push(SkippedFile {
                    path: root.display().to_string(),
                    reason: "unsupported file type (use .md, .txt, .html, .pdf, .docx or an answered .xlsx)".into(),
                }),
            }
            continue;
        }
        let mut stack = vec![root.clone()];
        let mut found = Vec::new();
        while let Some(dir) = stack.pop() {
            let entries = std::fs::read_dir(&dir).map_err(|e| io_err(&dir, e))?;
            for entry in entries {
                let path = entry.map_err(|e| io_err(&dir, e))?.path();
                let hidden = path
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with('.'));
                if hidden {
                    continue;
                }
                if path.is_dir() {
                    stack.push(path);
                } else if let Some(kind) = SourceKind::of(&path) {
                    let rel = path.strip_prefix(root).unwrap_or(&path);
                    let rel = rel
                        .components()
                        .map(|c| c.as_os_str().to_string_lossy().into_owned())
                        .collect::<Vec<_>>()
                        .join("/");
                    found.push(Input {
                        name: format!("{root_name}/{rel}"),
                        path,
                        kind,
                    });
                }
            }
        }
        found.sort_by(|a, b| a.name.cmp(&b.name));
        out.extend(found);
    }
    Ok(out)
}

/// The records of one file: document chunks, and answer-library records for answered
/// workbooks and Markdown answer banks.
pub fn records_of(name: &str, kind: SourceKind, bytes: Vec<u8>) -> Result<FileRecords, String> {
    if kind == SourceKind::Workbook {
        // An rfpq review workbook gives its reviewer-approved answers; any other workbook,
        // its answered questions.
        let read = crate::guard::quietly(|| match library::from_review(&bytes) {
            Ok(Some(approved)) => Ok((true, approved)),
            Ok(None) => library::from_workbook(bytes).map(|answered| (false, answered)),
            Err(e) => Err(e),
        });
        let (review, answers) =
            read.map_err(|p| format!("the workbook reader failed on this file ({p})"))??;
        if answers.is_empty() {
            return Err(if review {
                "a review workbook with no approved or edited row (set Decision to approve or edit first)"
            } else {
                "no answered questions found (an answered questionnaire needs question rows with answers filled in)"
            }
            .into());
        }
        return Ok(FileRecords {
            chunks: answers
                .into_iter()
                .map(|a| chunk::answer_chunk(name, a))
                .collect(),
            ..FileRecords::default()
        });
    }
    let pages = extract::extract(kind, &bytes)?;
    let pages_without_text = extract::pages_without_text(&pages);
    let mut chunks = chunk::chunk_pages(name, &pages);
    if kind == SourceKind::Markdown {
        for page in &pages {
            chunks.extend(
                library::from_markdown(&page.text)
                    .into_iter()
                    .map(|a| chunk::answer_chunk(name, a)),
            );
        }
    }
    Ok(FileRecords {
        chunks,
        pages: pages.len(),
        pages_without_text,
    })
}

/// The version of a snapshot's content: what it was built with and every source's bytes.
fn content_version(
    model: &str,
    dimensions: usize,
    quantization: Quantization,
    sources: &[SourceEntry],
) -> String {
    let mut key = format!(
        "format={}\nmodel={model}\ndims={dimensions}\nquant={quantization:?}\nchunker={}\n",
        super::FORMAT,
        chunk::CHUNKER_VERSION
    );
    for s in sources {
        key.push_str(&format!("{}\t{}\n", s.name, s.sha256));
    }
    store::sha256_hex(key.as_bytes())[..16].to_string()
}

fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn bar(show: bool, len: usize, what: &str) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new(len as u64);
    pb.set_style(
        ProgressStyle::with_template(&format!(
            "{{msg:>10}} [{{bar:30}}] {{pos}}/{{len}} {what} ({{eta}})"
        ))
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    pb
}

/// A source's records plus, for records carried from the previous snapshot, their old ids.
struct SourceRecords {
    entry: SourceEntry,
    chunks: Vec<Chunk>,
    old_ids: Option<Vec<u64>>,
}

fn carried_sources(prev: &KnowledgeBase) -> BTreeMap<String, SourceRecords> {
    let mut by_source: BTreeMap<String, SourceRecords> = prev
        .manifest
        .sources
        .iter()
        .map(|e| {
            (
                e.name.clone(),
                SourceRecords {
                    entry: e.clone(),
                    chunks: Vec::new(),
                    old_ids: Some(Vec::new()),
                },
            )
        })
        .collect();
    for c in prev.chunks() {
        if let Some(s) = by_source.get_mut(&c.source) {
            s.chunks.push(c.clone());
            if let Some(ids) = &mut s.old_ids {
                ids.push(c.id);
            }
        }
    }
    by_source
}

/// Ingests `inputs` into the KB at `kb_dir`, writing a new snapshot unless nothing changed.
pub async fn ingest(
    router: &Router,
    inputs: &[PathBuf],
    kb_dir: &Path,
    opts: &IngestOptions,
) -> Result<IngestReport, KbError> {
    let model = router.embed_model();
    let previous = if opts.rebuild {
        None
    } else {
        match KnowledgeBase::open(kb_dir) {
            Ok(kb) => Some(kb),
            Err(KbError::Missing(_)) => None,
            Err(e) => return Err(e),
        }
    };
    if let Some(prev) = &previous
        && prev.manifest.embed_model != model
    {
        return Err(KbError::ModelMismatch {
            built: prev.manifest.embed_model.clone(),
            current: model,
        });
    }
    let quantization = opts
        .quantization
        .or(previous.as_ref().map(|p| p.manifest.quantization))
        .unwrap_or_default();
    let reuse_chunks = previous
        .as_ref()
        .is_some_and(|p| p.manifest.chunker == chunk::CHUNKER_VERSION);

    let mut skipped = Vec::new();
    let mut pages_without_text = Vec::new();
    let files = collect_inputs(inputs, &mut skipped)?;
    let mut sources = previous.as_ref().map(carried_sources).unwrap_or_default();
    let (mut added, mut updated, mut unchanged_files, mut bytes_read) =
        (Vec::new(), Vec::new(), 0, 0u64);

    let started = Instant::now();
    let pb = bar(opts.progress, files.len(), "files");
    pb.set_message("reading");
    for file in files {
        pb.inc(1);
        let path = file.path.clone();
        let bytes = match tokio::fs::read(&path).await {
            Ok(b) => b,
            Err(e) => {
                skipped.push(SkippedFile {
                    path: file.name,
                    reason: format!("cannot read: {e}"),
                });
                continue;
            }
        };
        let sha256 = store::sha256_hex(&bytes);
        let size = bytes.len() as u64;
        if reuse_chunks
            && sources
                .get(&file.name)
                .is_some_and(|s| s.entry.sha256 == sha256)
        {
            unchanged_files += 1;
            continue;
        }
        bytes_read += size;
        let (name, kind) = (file.name.clone(), file.kind);
        let extracted = tokio::task::spawn_blocking(move || records_of(&name, kind, bytes))
            .await
            .unwrap_or_else(|e| Err(format!("extractor crashed: {e}")));
        match extracted {
            Ok(records) if !records.chunks.is_empty() => {
                if !records.pages_without_text.is_empty() {
                    pages_without_text.push(PagesWithoutText {
                        path: file.name.clone(),
                        pages: records.pages_without_text,
                        of: records.pages,
                    });
                }
                let chunks = records.chunks;
                let answers = chunks
                    .iter()
                    .filter(|c| c.kind == RecordKind::Answer)
                    .count();
                let entry = SourceEntry {
                    name: file.name.clone(),
                    kind: file.kind,
                    sha256,
                    bytes: size,
                    chunks: chunks.len(),
                    answers,
                };
                let replaced = sources.insert(
                    file.name.clone(),
                    SourceRecords {
                        entry,
                        chunks,
                        old_ids: None,
                    },
                );
                if replaced.is_some() {
                    updated.push(file.name);
                } else {
                    added.push(file.name);
                }
            }
            result => {
                let reason = result.err().unwrap_or_else(|| "no text".into());
                let kept = sources.contains_key(&file.name);
                tracing::info!(file = %path.display(), %reason, kept_previous = kept, "skipping a file that cannot be ingested");
                pb.suspend(|| {
                    eprintln!("warning: skipped {}: {reason}", path.display());
                });
                skipped.push(SkippedFile {
                    path: file.name,
                    reason: if kept {
                        format!("{reason}; the previously ingested version is kept")
                    } else {
                        reason
                    },
                });
            }
        }
    }
    pb.finish_and_clear();
    let extract_secs = started.elapsed().as_secs_f64();
    if sources.is_empty() {
        return Err(KbError::Empty(inputs.first().cloned().unwrap_or_default()));
    }

    // Final record list (sources in name order), each with where its vector comes from.
    let mut chunks = Vec::new();
    let mut old_ids: Vec<Option<u64>> = Vec::new();
    let mut entries = Vec::new();
    for (_, s) in sources {
        for (i, mut c) in s.chunks.into_iter().enumerate() {
            c.id = chunks.len() as u64;
            old_ids.push(s.old_ids.as_ref().and_then(|ids| ids.get(i).copied()));
            chunks.push(c);
        }
        entries.push(s.entry);
    }

    // Vectors: cache, else the previous snapshot, else the embedding model.
    let embed_started = Instant::now();
    let mut cache = match &opts.embed_cache {
        Some(dir) => EmbeddingCache::open(dir, &model),
        None => EmbeddingCache::in_memory(),
    };
    let hashes: Vec<_> = chunks
        .iter()
        .map(|c| text_hash(&chunk::embedding_text(c)))
        .collect();
    let mut vectors: Vec<Option<Vec<f32>>> = vec![None; chunks.len()];
    let mut reused_vectors = 0;
    let mut missing: HashMap<[u8; 32], Vec<usize>> = HashMap::new();
    let mut order = Vec::new();
    for (i, hash) in hashes.iter().enumerate() {
        if let Some(v) = cache.get(hash) {
            vectors[i] = Some(v.clone());
            reused_vectors += 1;
        } else if let Some(v) = old_ids[i]
            .zip(previous.as_ref())
            .and_then(|(old, prev)| prev.vector(old))
        {
            vectors[i] = Some(v);
            reused_vectors += 1;
        } else {
            let slot = missing.entry(*hash).or_default();
            if slot.is_empty() {
                order.push(i);
            }
            slot.push(i);
        }
    }
    let pb = bar(opts.progress, order.len(), "chunks");
    pb.set_message("embedding");
    for batch in order.chunks(EMBED_BATCH) {
        let texts: Vec<String> = batch
            .iter()
            .map(|i| chunk::embedding_text(&chunks[*i]))
            .collect();
        let (got, _) = router
            .embed(&texts)
            .await
            .map_err(|e| KbError::Embed(e.to_string()))?;
        if got.len() != batch.len() {
            return Err(KbError::Embed(format!(
                "asked for {} vectors, got {}",
                batch.len(),
                got.len()
            )));
        }
        for (i, v) in batch.iter().zip(got) {
            for j in &missing[&hashes[*i]] {
                vectors[*j] = Some(v.clone());
            }
            cache.insert(hashes[*i], v);
        }
        pb.inc(batch.len() as u64);
    }
    pb.finish_and_clear();
    if let Err(e) = cache.flush() {
        tracing::warn!(error = %e, "could not write the embedding cache");
    }
    let embed_secs = embed_started.elapsed().as_secs_f64();
    let vectors: Vec<Vec<f32>> = vectors.into_iter().map(Option::unwrap_or_default).collect();
    let dimensions = vectors.first().map_or(0, Vec::len);
    if let Some(bad) = vectors.iter().position(|v| v.len() != dimensions) {
        return Err(KbError::Embed(format!(
            "vector {bad} has {} dimensions, the others {dimensions}",
            vectors[bad].len()
        )));
    }
    if let Some(prev) = &previous
        && prev.manifest.dimensions != dimensions
    {
        return Err(KbError::ModelMismatch {
            built: format!(
                "{} ({} dimensions)",
                prev.manifest.embed_model, prev.manifest.dimensions
            ),
            current: format!("{model} ({dimensions} dimensions)"),
        });
    }

    let version = content_version(&model, dimensions, quantization, &entries);
    let previous_version = previous.as_ref().map(|p| p.manifest.version.clone());
    let answers = chunks
        .iter()
        .filter(|c| c.kind == RecordKind::Answer)
        .count();
    let mut report = IngestReport {
        version: version.clone(),
        previous_version: previous_version.clone(),
        unchanged: previous_version.as_deref() == Some(version.as_str()),
        added,
        updated,
        unchanged_files,
        skipped,
        pages_without_text,
        sources: entries.len(),
        chunks: chunks.len(),
        answers,
        embedded: order.len(),
        reused_vectors,
        embed_model: model.clone(),
        dimensions,
        quantization,
        bytes_read,
        extract_secs,
        embed_secs,
        index_secs: 0.0,
    };
    if report.unchanged {
        return Ok(report);
    }
    drop(previous);
    let mut manifest = Manifest {
        format: super::FORMAT,
        version,
        created_unix: now_unix(),
        embed_model: model,
        dimensions,
        quantization,
        chunker: chunk::CHUNKER_VERSION,
        chunks: chunks.len(),
        answers,
        sources: entries,
        files: Vec::new(),
    };
    let index_started = Instant::now();
    let dir = kb_dir.to_path_buf();
    tokio::task::spawn_blocking(move || {
        store::write_snapshot(&dir, &mut manifest, &chunks, &vectors)
    })
    .await
    .map_err(|e| KbError::Index(e.to_string()))??;
    report.index_secs = index_started.elapsed().as_secs_f64();
    Ok(report)
}

/// Whether a source name is meant by what the user typed: the exact name, a path suffix
/// after `/`, or (for convenience) the file name.
fn names_source(source: &str, wanted: &str) -> bool {
    source == wanted || source.ends_with(&format!("/{wanted}"))
}

/// Writes a snapshot without the sources `names` (no embedding needed).
pub fn remove(kb_dir: &Path, names: &[String]) -> Result<RemoveReport, KbError> {
    let prev = KnowledgeBase::open(kb_dir)?;
    let mut removed = Vec::new();
    for wanted in names {
        let hits: Vec<&SourceEntry> = prev
            .manifest
            .sources
            .iter()
            .filter(|s| names_source(&s.name, wanted))
            .collect();
        if hits.is_empty() {
            let known: Vec<&str> = prev
                .manifest
                .sources
                .iter()
                .map(|s| s.name.as_str())
                .collect();
            return Err(io_err(
                kb_dir,
                format!("no source '{wanted}' (sources: {})", known.join(", ")),
            ));
        }
        removed.extend(hits.into_iter().map(|s| s.name.clone()));
    }
    removed.sort();
    removed.dedup();
    let entries: Vec<SourceEntry> = prev
        .manifest
        .sources
        .iter()
        .filter(|s| !removed.contains(&s.name))
        .cloned()
        .collect();
    if entries.is_empty() {
        return Err(io_err(
            kb_dir,
            "that would remove every source; delete the KB directory instead",
        ));
    }
    let mut chunks = Vec::new();
    let mut vectors = Vec::new();
    for c in prev.chunks() {
        if removed.contains(&c.source) {
            continue;
        }
        let v = prev
            .vector(c.id)
            .ok_or_else(|| KbError::Index(format!("chunk {} has no vector", c.id)))?;
        let mut c = c.clone();
        c.id = chunks.len() as u64;
        chunks.push(c);
        vectors.push(v);
    }
    let m = &prev.manifest;
    let mut manifest = Manifest {
        format: super::FORMAT,
        version: content_version(&m.embed_model, m.dimensions, m.quantization, &entries),
        created_unix: now_unix(),
        embed_model: m.embed_model.clone(),
        dimensions: m.dimensions,
        quantization: m.quantization,
        chunker: m.chunker,
        chunks: chunks.len(),
        answers: chunks
            .iter()
            .filter(|c| c.kind == RecordKind::Answer)
            .count(),
        sources: entries,
        files: Vec::new(),
    };
    drop(prev);
    store::write_snapshot(kb_dir, &mut manifest, &chunks, &vectors)?;
    Ok(RemoveReport {
        version: manifest.version,
        removed,
        sources: manifest.sources.len(),
        chunks: manifest.chunks,
    })
}
