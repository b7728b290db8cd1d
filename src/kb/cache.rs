//! On-disk embedding cache keyed by (model, sha256 of the embedded text), so re-ingesting a
//! changed file or rebuilding a KB embeds only text never seen before. One append-only file per
//! model: a header, then fixed-size records (hash, vector). A torn last record is ignored.
//! Does not evict; delete the file to reclaim space.

use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::io::{Seek, Write};
use std::path::{Path, PathBuf};

/// Version 2: the embedded model's vectors no longer depend on the texts embedded beside them
/// (no padding), so version-1 vectors, which did, are not mixed with them.
const MAGIC: &[u8; 8] = b"RFPQEMB2";
const MAGIC_V1: &[u8; 8] = b"RFPQEMB1";

pub type TextHash = [u8; 32];

pub fn text_hash(text: &str) -> TextHash {
    Sha256::digest(text.as_bytes()).into()
}

/// Vectors of one embedding model, loaded from and appended to its cache file.
pub struct EmbeddingCache {
    path: Option<PathBuf>,
    dimensions: Option<usize>,
    vectors: HashMap<TextHash, Vec<f32>>,
    pending: Vec<TextHash>,
}

/// `flock(LOCK_EX)` held until dropped.
struct FileLock(std::os::fd::RawFd);

impl FileLock {
    fn exclusive(file: &std::fs::File) -> std::io::Result<Self> {
        use std::os::fd::AsRawFd;
        let fd = file.as_raw_fd();
        // SAFETY: `fd` is an open descriptor owned by `file`, which outlives the lock.
        if unsafe { libc::flock(fd, libc::LOCK_EX) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Self(fd))
    }
}

impl Drop for FileLock {
    fn drop(&mut self) {
        // SAFETY: unlocking the descriptor locked in `exclusive`, still open.
        unsafe { libc::flock(self.0, libc::LOCK_UN) };
    }
}

impl EmbeddingCache {
    /// A cache that keeps nothing on disk.
    pub fn in_memory() -> Self {
        Self {
            path: None,
            dimensions: None,
            vectors: HashMap::new(),
            pending: Vec::new(),
        }
    }

    /// Opens the cache file of `model` under `dir` (created on first flush). An unreadable or
    /// foreign file is ignored with a warning and replaced on flush.
    pub fn open(dir: &Path, model: &str) -> Self {
        let safe: String = model
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '-' | '.') {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let path = dir.join(format!("{safe}.bin"));
        let mut cache = Self {
            path: Some(path.clone()),
            ..Self::in_memory()
        };
        match std::fs::read(&path) {
            Ok(bytes) => {
                if let Err(why) = cache.load(&bytes) {
                    tracing::warn!(path = %path.display(), why, "ignoring the embedding cache");
                    cache.vectors.clear();
                    cache.dimensions = None;
                    let _ = std::fs::remove_file(&path);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot read the embedding cache")
            }
        }
        cache
    }

    fn load(&mut self, bytes: &[u8]) -> Result<(), &'static str> {
        if bytes.len() >= 8 && &bytes[..8] == MAGIC_V1 {
            return Err(
                "written by an older rfpq, whose embedded-model vectors depended on the texts embedded with them; it is rebuilt",
            );
        }
        if bytes.len() < 12 || &bytes[..8] != MAGIC {
            return Err("not an rfpq embedding cache");
        }
        let dims = u32::from_le_bytes(bytes[8..12].try_into().unwrap_or_default()) as usize;
        if dims == 0 || dims > 16_384 {
            return Err("implausible dimension");
        }
        let record = 32 + 4 * dims;
        for rec in bytes[12..].chunks_exact(record) {
            let mut hash = [0u8; 32];
            hash.copy_from_slice(&rec[..32]);
            let v = rec[32..]
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            self.vectors.insert(hash, v);
        }
        self.dimensions = Some(dims);
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.vectors.len()
    }

    pub fn is_empty(&self) -> bool {
        self.vectors.is_empty()
    }

    pub fn get(&self, hash: &TextHash) -> Option<&Vec<f32>> {
        self.vectors.get(hash)
    }

    /// Remembers a vector (written on the next flush). A vector of another dimension than the
    /// cache's is not kept.
    pub fn insert(&mut self, hash: TextHash, vector: Vec<f32>) {
        if *self.dimensions.get_or_insert(vector.len()) != vector.len() {
            return;
        }
        if self.vectors.insert(hash, vector).is_none() {
            self.pending.push(hash);
        }
    }

    /// Appends the vectors added since the last flush to the cache file.
    pub fn flush(&mut self) -> std::io::Result<()> {
        let (Some(path), Some(dims)) = (&self.path, self.dimensions) else {
            self.pending.clear();
            return Ok(());
        };
        if self.pending.is_empty() {
            return Ok(());
        }
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(path)?;
        // Other ingests (other processes) may append to the same file: hold an exclusive
        // lock, cut a torn tail back to whole records, and append at the real end.
        let _lock = FileLock::exclusive(&file)?;
        let record = (32 + 4 * dims) as u64;
        let len = file.metadata()?.len();
        let new_file = len < 12;
        if new_file {
            file.set_len(0)?;
        } else if (len - 12) % record != 0 {
            file.set_len(12 + (len - 12) / record * record)?;
        }
        file.seek(std::io::SeekFrom::End(0))?;
        let mut buf = Vec::with_capacity(self.pending.len() * (32 + 4 * dims) + 12);
        if new_file {
            buf.extend_from_slice(MAGIC);
            buf.extend_from_slice(&(dims as u32).to_le_bytes());
        }
        for hash in self.pending.drain(..) {
            if let Some(v) = self.vectors.get(&hash) {
                buf.extend_from_slice(&hash);
                for x in v {
                    buf.extend_from_slice(&x.to_le_bytes());
                }
            }
        }
        file.write_all(&buf)?;
        file.sync_data()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectors_survive_a_reopen_and_a_torn_tail_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = EmbeddingCache::open(dir.path(), "all-minilm-l6-v2");
        c.insert(text_hash("a"), vec![1.0, 2.0, 3.0]);
        c.insert(text_hash("b"), vec![4.0, 5.0, 6.0]);
        c.insert(text_hash("c"), vec![1.0]); // wrong dimension: dropped
        c.flush().unwrap();
        let file = dir.path().join("all-minilm-l6-v2.bin");
        let mut bytes = std::fs::read(&file).unwrap();
        bytes.extend_from_slice(&[7u8; 20]); // a torn record from a crash
        std::fs::write(&file, bytes).unwrap();
        let mut c = EmbeddingCache::open(dir.path(), "all-minilm-l6-v2");
        assert_eq!(c.len(), 2);
        assert_eq!(c.get(&text_hash("b")), Some(&vec![4.0, 5.0, 6.0]));
        // Appending after a torn tail keeps records aligned.
        c.insert(text_hash("d"), vec![7.0, 8.0, 9.0]);
        c.flush().unwrap();
        let c = EmbeddingCache::open(dir.path(), "all-minilm-l6-v2");
        assert_eq!(c.len(), 3);
        assert_eq!(c.get(&text_hash("d")), Some(&vec![7.0, 8.0, 9.0]));
    }

    #[test]
    fn a_version_1_cache_is_not_used() {
        let dir = tempfile::tempdir().unwrap();
        let mut bytes = MAGIC_V1.to_vec();
        bytes.extend_from_slice(&3u32.to_le_bytes());
        bytes.extend_from_slice(&text_hash("a"));
        for x in [1f32, 2.0, 3.0] {
            bytes.extend_from_slice(&x.to_le_bytes());
        }
        std::fs::write(dir.path().join("m.bin"), bytes).unwrap();
        assert_eq!(EmbeddingCache::open(dir.path(), "m").len(), 0);
    }
}
