//! Knowledge-base snapshots in Redis: stored in pieces under `kb:snap:<version>:*`, named by
//! `kb:names`, published from a KB directory and fetched into a worker's verified local cache.
//! The snapshot layout, the manifest and the hash check belong to `kb::publish`.

use super::*;
use crate::kb::KbError;
use crate::kb::publish::{self, PublishReport};
use redis::AsyncCommands;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Size of the pieces a published KB snapshot file is stored in.
pub const KB_PIECE_BYTES: usize = 8 * 1024 * 1024;

impl RfpQueue {
    fn kb_key(&self, part: &str) -> String {
        format!("{}:kb:{part}", self.cfg.prefix)
    }

    /// Whether the snapshot `version` is stored completely (its meta is written last).
    pub async fn kb_has(&self, version: &str) -> Result<bool, QueueError> {
        Ok(self
            .conn
            .clone()
            .exists(self.kb_key(&format!("snap:{version}:meta")))
            .await?)
    }

    /// Every key of a stored snapshot, given its files as (name, pieces).
    fn kb_version_keys(&self, version: &str, files: &[(String, usize)]) -> Vec<String> {
        let mut keys = vec![self.kb_key(&format!("snap:{version}:meta"))];
        for (file, pieces) in files {
            keys.extend((0..*pieces).map(|n| self.kb_key(&format!("snap:{version}:{file}:{n}"))));
        }
        keys
    }

    /// Stores a KB snapshot (immutable, content-addressed by `version`) in pieces of
    /// [`KB_PIECE_BYTES`], then its meta (manifest and file list) — a reader sees it only once
    /// complete — then points `name` at it. Storing a version that is already complete only
    /// moves the name. A named version is kept until its name moves on; an unnamed one (a job
    /// submitted with a KB directory) expires after the job retention, refreshed by each use.
    pub async fn kb_publish(
        &self,
        name: Option<&str>,
        version: &str,
        manifest: &[u8],
        files: &[(String, Vec<u8>)],
    ) -> Result<bool, QueueError> {
        let mut conn = self.conn.clone();
        let listing: Vec<(String, usize)> = files
            .iter()
            .map(|(f, b)| (f.clone(), b.len().div_ceil(KB_PIECE_BYTES).max(1)))
            .collect();
        let keys = self.kb_version_keys(version, &listing);
        let ttl = RETENTION.as_secs() as i64;
        let uploaded = !self.kb_has(version).await?;
        if uploaded {
            for (file, bytes) in files {
                let mut pieces: Vec<&[u8]> = bytes.chunks(KB_PIECE_BYTES).collect();
                if pieces.is_empty() {
                    pieces.push(&[]);
                }
                for (n, piece) in pieces.iter().enumerate() {
                    let key = self.kb_key(&format!("snap:{version}:{file}:{n}"));
                    let _: () = conn.set_ex(&key, *piece, ttl as u64).await?;
                }
            }
            let listing_json: Vec<serde_json::Value> = listing
                .iter()
                .map(|(f, p)| serde_json::json!({"name": f, "pieces": p}))
                .collect();
            let meta = self.kb_key(&format!("snap:{version}:meta"));
            redis::pipe()
                .atomic()
                .hset(&meta, "manifest", manifest)
                .hset(
                    &meta,
                    "files",
                    serde_json::to_string(&listing_json).unwrap_or_default(),
                )
                .expire(&meta, ttl)
                .exec_async(&mut conn)
                .await?;
        }
        let mut pipe = redis::pipe();
        match name {
            Some(name) => {
                let old: Option<String> = conn.hget(self.kb_key("names"), name).await?;
                for key in &keys {
                    pipe.persist(key).ignore();
                }
                pipe.hset(self.kb_key("names"), name, version).ignore();
                pipe.exec_async(&mut conn).await?;
                // The version the name left expires unless another name still holds it.
                if let Some(old) = old.filter(|o| o != version) {
                    let still_named = self.kb_names().await?.iter().any(|(_, v)| *v == old);
                    if !still_named && let Some((_, old_files)) = self.kb_listing(&old).await? {
                        let mut pipe = redis::pipe();
                        for key in self.kb_version_keys(&old, &old_files) {
                            pipe.expire(key, ttl).ignore();
                        }
                        pipe.exec_async(&mut conn).await?;
                    }
                }
            }
            None => {
                // Refresh the expiry of an unnamed version; a named one (no TTL) stays.
                for key in &keys {
                    pipe.cmd("EXPIRE").arg(key).arg(ttl).arg("XX").ignore();
                }
                pipe.exec_async(&mut conn).await?;
            }
        }
        Ok(uploaded)
    }

    /// The version a published KB name currently points at.
    pub async fn kb_resolve(&self, name: &str) -> Result<Option<String>, QueueError> {
        Ok(self.conn.clone().hget(self.kb_key("names"), name).await?)
    }

    /// Every published name and its version.
    pub async fn kb_names(&self) -> Result<Vec<(String, String)>, QueueError> {
        let mut names: Vec<(String, String)> = self
            .conn
            .clone()
            .hgetall::<_, HashMap<String, String>>(self.kb_key("names"))
            .await?
            .into_iter()
            .collect();
        names.sort();
        Ok(names)
    }

    /// The manifest of a stored snapshot and its files as (name, pieces); `None` when absent.
    pub async fn kb_listing(
        &self,
        version: &str,
    ) -> Result<Option<(Vec<u8>, Vec<(String, usize)>)>, QueueError> {
        let meta: HashMap<String, Vec<u8>> = self
            .conn
            .clone()
            .hgetall(self.kb_key(&format!("snap:{version}:meta")))
            .await?;
        let (Some(manifest), Some(files)) = (meta.get("manifest"), meta.get("files")) else {
            return Ok(None);
        };
        let listing: Vec<serde_json::Value> = serde_json::from_slice(files)
            .map_err(|e| QueueError::Damaged(format!("kb {version}"), e.to_string()))?;
        let files = listing
            .iter()
            .filter_map(|f| {
                Some((
                    f.get("name")?.as_str()?.to_string(),
                    f.get("pieces")?.as_u64()? as usize,
                ))
            })
            .collect();
        Ok(Some((manifest.clone(), files)))
    }

    /// One piece of a stored snapshot file.
    pub async fn kb_piece(
        &self,
        version: &str,
        file: &str,
        n: usize,
    ) -> Result<Vec<u8>, QueueError> {
        let piece: Option<Vec<u8>> = self
            .conn
            .clone()
            .get(self.kb_key(&format!("snap:{version}:{file}:{n}")))
            .await?;
        piece.ok_or_else(|| {
            QueueError::Damaged(
                format!("kb {version}"),
                format!("{file} piece {n} is missing"),
            )
        })
    }
}

/// Stores the current snapshot of `kb_dir` in Redis, under `name` when given (a job submitted
/// with a KB directory stores it unnamed: the job pins the version).
pub async fn publish_kb(
    queue: &RfpQueue,
    kb_dir: &Path,
    name: Option<&str>,
) -> Result<PublishReport, KbError> {
    if let Some(name) = name {
        publish::check_name(name)?;
    }
    let publish_err =
        |e: &dyn std::fmt::Display| KbError::Publish(format!("publishing the knowledge base: {e}"));
    let dir = kb_dir.to_path_buf();
    let (manifest, manifest_bytes, files) =
        tokio::task::spawn_blocking(move || publish::snapshot_files(&dir))
            .await
            .map_err(|e| publish_err(&e))??;
    let bytes = files.iter().map(|(_, b)| b.len() as u64).sum();
    let uploaded = queue
        .kb_publish(name, &manifest.version, &manifest_bytes, &files)
        .await
        .map_err(|e| publish_err(&e))?;
    Ok(PublishReport {
        name: name.unwrap_or_default().to_string(),
        version: manifest.version,
        bytes,
        uploaded,
        target: "redis".into(),
    })
}

/// A local directory holding snapshot `version`: the worker's cache entry, fetched from Redis
/// the first time and installed only once every file matches the manifest's sha256.
pub async fn materialize_kb(
    queue: &RfpQueue,
    version: &str,
    cache: &Path,
) -> Result<PathBuf, KbError> {
    if let Some(dir) = publish::cached(cache, version)? {
        return Ok(dir);
    }
    let fetch_err =
        |e: QueueError| KbError::Publish(format!("fetching knowledge base {version}: {e}"));
    let Some((manifest_bytes, listing)) = queue.kb_listing(version).await.map_err(fetch_err)?
    else {
        return Err(KbError::Publish(format!(
            "knowledge base version {version} is not published in Redis (run `rfpq kb publish`)"
        )));
    };
    let mut files = Vec::with_capacity(listing.len());
    for (name, pieces) in listing {
        let mut data = Vec::new();
        for n in 0..pieces {
            data.extend(queue.kb_piece(version, &name, n).await.map_err(fetch_err)?);
        }
        files.push((name, data));
    }
    let cache = cache.to_path_buf();
    let version = version.to_string();
    tokio::task::spawn_blocking(move || {
        publish::install_fetched(&cache, &version, &manifest_bytes, files)
    })
    .await
    .map_err(|e| KbError::Publish(format!("installing a fetched knowledge base: {e}")))?
}
