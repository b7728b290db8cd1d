//! On-disk layout of a KB: `CURRENT` names the live snapshot, `snapshots/<version>/` holds
//! `manifest.json`, `chunks.jsonl` and `index.usearch`. A snapshot is written under a temporary
//! name and renamed, then `CURRENT` is replaced atomically: a reader never sees half a KB.
//! The index is built on one thread in key order with pinned settings, so a snapshot's files
//! are a function of its content.

use super::{Chunk, FileDigest, KbError, Manifest, index_err, io_err};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use usearch::{Index, IndexOptions, MetricKind};

pub const CURRENT_FILE: &str = "CURRENT";
pub const SNAPSHOTS_DIR: &str = "snapshots";
pub const MANIFEST_FILE: &str = "manifest.json";
pub const CHUNKS_FILE: &str = "chunks.jsonl";
pub const INDEX_FILE: &str = "index.usearch";
/// Data files of a snapshot besides the manifest, in publishing order.
pub const DATA_FILES: [&str; 2] = [CHUNKS_FILE, INDEX_FILE];
/// Snapshots kept besides the current one (a worker may still be reading the previous one).
const KEEP_PREVIOUS: usize = 1;

/// The snapshot directory `dir` stands for: `dir` itself when it is a snapshot, else the one
/// its `CURRENT` names.
pub fn resolve(dir: &Path) -> Result<PathBuf, KbError> {
    if dir.join(MANIFEST_FILE).is_file() {
        return Ok(dir.to_path_buf());
    }
    if let Some(version) = current_version(dir)? {
        let snap = snapshot_dir(dir, &version);
        if snap.join(MANIFEST_FILE).is_file() {
            return Ok(snap);
        }
        return Err(io_err(
            dir,
            format!("CURRENT names snapshot {version}, which is missing"),
        ));
    }
    if dir.join("kb.json").is_file() {
        return Err(KbError::OldFormat(dir.to_path_buf()));
    }
    Err(KbError::Missing(dir.to_path_buf()))
}

/// A fresh hidden directory name under `parent` for building `version` (unique per call, so
/// concurrent writers in one process never share one).
pub fn temp_dir(parent: &Path, version: &str) -> PathBuf {
    parent.join(format!(".tmp-{version}-{}", uuid::Uuid::now_v7().simple()))
}

/// Whether `dir` holds a complete snapshot (every file is renamed into place together, so a
/// partial one means someone tampered with it).
pub fn is_complete(dir: &Path) -> bool {
    dir.join(MANIFEST_FILE).is_file() && DATA_FILES.iter().all(|f| dir.join(f).is_file())
}

pub fn snapshot_dir(kb_dir: &Path, version: &str) -> PathBuf {
    kb_dir.join(SNAPSHOTS_DIR).join(version)
}

/// The version `CURRENT` names, if the KB has been built.
pub fn current_version(kb_dir: &Path) -> Result<Option<String>, KbError> {
    let path = kb_dir.join(CURRENT_FILE);
    match std::fs::read_to_string(&path) {
        Ok(s) => {
            let v = s.trim().to_string();
            if v.is_empty() || !v.chars().all(|c| c.is_ascii_alphanumeric()) {
                return Err(io_err(&path, "not a snapshot version"));
            }
            Ok(Some(v))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err(&path, e)),
    }
}

pub fn read_manifest(snapshot: &Path) -> Result<Manifest, KbError> {
    let path = snapshot.join(MANIFEST_FILE);
    let bytes = std::fs::read(&path).map_err(|e| io_err(&path, e))?;
    let manifest: Manifest = serde_json::from_slice(&bytes).map_err(|e| io_err(&path, e))?;
    if manifest.format != super::FORMAT {
        return Err(io_err(
            &path,
            format!(
                "snapshot format {} is not {} (rebuild it with `rfpq kb ingest --rebuild`)",
                manifest.format,
                super::FORMAT
            ),
        ));
    }
    Ok(manifest)
}

pub fn read_chunks(snapshot: &Path) -> Result<Vec<Chunk>, KbError> {
    let path = snapshot.join(CHUNKS_FILE);
    let text = std::fs::read_to_string(&path).map_err(|e| io_err(&path, e))?;
    text.lines()
        .enumerate()
        .map(|(n, line)| {
            serde_json::from_str::<Chunk>(line)
                .map_err(|e| io_err(&path, format!("line {}: {e}", n + 1)))
        })
        .collect()
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// HNSW graph degree (usearch's default, pinned so an upgrade cannot change the graph).
pub const CONNECTIVITY: usize = 16;
/// Candidates examined per insertion (usearch's default, pinned likewise).
pub const EXPANSION_ADD: usize = 128;
/// Candidates examined per approximate search (usearch's default; not stored in the file, so
/// set again whenever an index is opened).
pub const EXPANSION_SEARCH: usize = 64;

/// The index options of a snapshot built from `manifest`.
fn index_options(manifest: &Manifest) -> IndexOptions {
    IndexOptions {
        dimensions: manifest.dimensions,
        metric: MetricKind::Cos,
        quantization: manifest.quantization.scalar_kind(),
        connectivity: CONNECTIVITY,
        expansion_add: EXPANSION_ADD,
        expansion_search: EXPANSION_SEARCH,
        multi: false,
    }
}

/// Builds the usearch index of `vectors` (key = position), on one thread, in key order, with
/// pinned settings: the graph depends only on the vectors, so two builds of the same content
/// are byte-identical (a graph built on several threads depends on how they interleave, and
/// so would approximate search results). Costs little: embedding the records takes hundreds
/// of times longer than indexing them.
pub fn build_index(manifest: &Manifest, vectors: &[Vec<f32>]) -> Result<Index, KbError> {
    let index = Index::new(&index_options(manifest)).map_err(index_err)?;
    index
        .reserve_capacity_and_threads(vectors.len().max(1), 1)
        .map_err(index_err)?;
    for (key, v) in vectors.iter().enumerate() {
        index.add(key as u64, v).map_err(index_err)?;
    }
    Ok(index)
}

/// Writes a new snapshot of `kb_dir` and makes it current. `manifest.files` is filled in here.
pub fn write_snapshot(
    kb_dir: &Path,
    manifest: &mut Manifest,
    chunks: &[Chunk],
    vectors: &[Vec<f32>],
) -> Result<PathBuf, KbError> {
    let snapshots = kb_dir.join(SNAPSHOTS_DIR);
    std::fs::create_dir_all(&snapshots).map_err(|e| io_err(&snapshots, e))?;
    let tmp = temp_dir(&snapshots, &manifest.version);
    std::fs::create_dir_all(&tmp).map_err(|e| io_err(&tmp, e))?;

    let mut lines = String::new();
    for c in chunks {
        lines.push_str(&serde_json::to_string(c).map_err(|e| io_err(&tmp, e))?);
        lines.push('\n');
    }
    std::fs::write(tmp.join(CHUNKS_FILE), &lines).map_err(|e| io_err(&tmp, e))?;
    let index = build_index(manifest, vectors)?;
    index
        .save(&tmp.join(INDEX_FILE).to_string_lossy())
        .map_err(index_err)?;
    manifest.files = DATA_FILES
        .iter()
        .map(|name| {
            let path = tmp.join(name);
            let bytes = std::fs::read(&path).map_err(|e| io_err(&path, e))?;
            Ok(FileDigest {
                name: name.to_string(),
                sha256: sha256_hex(&bytes),
                bytes: bytes.len() as u64,
            })
        })
        .collect::<Result<_, KbError>>()?;
    std::fs::write(
        tmp.join(MANIFEST_FILE),
        serde_json::to_vec_pretty(manifest).map_err(|e| io_err(&tmp, e))?,
    )
    .map_err(|e| io_err(&tmp, e))?;
    let dest = install_snapshot(kb_dir, &manifest.version, &tmp)?;
    set_current(kb_dir, &manifest.version)?;
    prune(kb_dir, &manifest.version);
    Ok(dest)
}

/// Moves a complete snapshot directory into place (an existing one of the same version is
/// identical by construction and is kept).
pub fn install_snapshot(kb_dir: &Path, version: &str, tmp: &Path) -> Result<PathBuf, KbError> {
    let dest = snapshot_dir(kb_dir, version);
    if is_complete(&dest) {
        let _ = std::fs::remove_dir_all(tmp);
    } else {
        if dest.exists() {
            std::fs::remove_dir_all(&dest).map_err(|e| io_err(&dest, e))?;
        }
        std::fs::rename(tmp, &dest).map_err(|e| io_err(&dest, e))?;
    }
    Ok(dest)
}

/// Points `CURRENT` at `version` (write a temporary file, then rename over).
pub fn set_current(kb_dir: &Path, version: &str) -> Result<(), KbError> {
    let tmp = kb_dir.join(format!(".{CURRENT_FILE}.{}", uuid::Uuid::now_v7().simple()));
    std::fs::write(&tmp, format!("{version}\n")).map_err(|e| io_err(&tmp, e))?;
    std::fs::rename(&tmp, kb_dir.join(CURRENT_FILE)).map_err(|e| io_err(kb_dir, e))
}

/// Removes old snapshots, keeping the current one and the newest [`KEEP_PREVIOUS`] others.
fn prune(kb_dir: &Path, current: &str) {
    let Ok(entries) = std::fs::read_dir(kb_dir.join(SNAPSHOTS_DIR)) else {
        return;
    };
    let now = std::time::SystemTime::now();
    let mut old: Vec<(std::time::SystemTime, PathBuf)> = Vec::new();
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(modified) = e.metadata().ok().and_then(|m| m.modified().ok()) else {
            continue;
        };
        if name.starts_with(".tmp-") {
            // Left by a writer that crashed: gone after an hour (a live one finishes sooner).
            let stale = now
                .duration_since(modified)
                .is_ok_and(|age| age.as_secs() > 3600);
            if stale {
                let _ = std::fs::remove_dir_all(e.path());
            }
        } else if name != current && !name.starts_with('.') {
            old.push((modified, e.path()));
        }
    }
    old.sort_by_key(|b| std::cmp::Reverse(b.0));
    for (_, path) in old.into_iter().skip(KEEP_PREVIOUS) {
        if let Err(e) = std::fs::remove_dir_all(&path) {
            tracing::warn!(path = %path.display(), error = %e, "could not remove an old KB snapshot");
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::kb::{Quantization, RecordKind};

    /// `n` reproducible pseudo-random unit vectors of `dims` (xorshift; no crate needed).
    pub fn vectors(n: usize, dims: usize, seed: u64) -> Vec<Vec<f32>> {
        let mut state = seed | 1;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        };
        (0..n)
            .map(|_| {
                let mut v: Vec<f32> = (0..dims).map(|_| next()).collect();
                let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
                v.iter_mut().for_each(|x| *x /= norm);
                v
            })
            .collect()
    }

    pub fn manifest(n: usize, dims: usize, quantization: Quantization) -> Manifest {
        Manifest {
            format: crate::kb::FORMAT,
            version: "test".into(),
            created_unix: 0,
            embed_model: "test".into(),
            dimensions: dims,
            quantization,
            chunker: 0,
            chunks: n,
            answers: 0,
            sources: Vec::new(),
            files: Vec::new(),
        }
    }

    pub fn chunks(n: usize) -> Vec<Chunk> {
        (0..n as u64)
            .map(|id| Chunk {
                id,
                kind: RecordKind::Doc,
                source: format!("doc-{}.md", id % 7),
                heading: None,
                page: None,
                start: 0,
                end: 0,
                text: format!("record {id}"),
                answer: None,
            })
            .collect()
    }

    fn bytes(index: &Index) -> Vec<u8> {
        let mut buf = vec![0u8; index.serialized_length()];
        index.save_to_buffer(&mut buf).unwrap();
        buf
    }

    #[test]
    fn two_builds_of_the_same_vectors_are_byte_identical() {
        for quantization in [Quantization::F32, Quantization::I8] {
            let v = vectors(3_000, 48, 7);
            let m = manifest(v.len(), 48, quantization);
            let (a, b) = (build_index(&m, &v).unwrap(), build_index(&m, &v).unwrap());
            assert_eq!(a.size(), 3_000);
            assert!(bytes(&a) == bytes(&b), "{quantization:?} builds differ");
        }
    }

    #[test]
    fn two_snapshots_of_the_same_content_are_byte_identical() {
        let tmp = tempfile::tempdir().unwrap();
        let v = vectors(500, 32, 3);
        let c = chunks(v.len());
        let mut files = Vec::new();
        for name in ["a", "b"] {
            let mut m = manifest(v.len(), 32, Quantization::F32);
            let snap = write_snapshot(&tmp.path().join(name), &mut m, &c, &v).unwrap();
            files.push((
                m.files,
                std::fs::read(snap.join(INDEX_FILE)).unwrap(),
                std::fs::read(snap.join(CHUNKS_FILE)).unwrap(),
            ));
        }
        assert_eq!(files[0].0, files[1].0, "manifest digests differ");
        assert!(files[0].1 == files[1].1 && files[0].2 == files[1].2);
    }
}
