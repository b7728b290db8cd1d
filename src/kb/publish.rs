//! Distribution of KB snapshots to workers on other machines: `publish` stores the current
//! snapshot in Redis (through `queue`, content-addressed by version, pieces of 8 MiB) or copies
//! it into a shared directory under a name; `materialize` gives a worker a local copy of the
//! version a job names, fetched once into its cache and checked against the manifest's hashes.

use super::{KbError, Manifest, io_err, store};
use crate::queue::RfpQueue;
use serde::Serialize;
use std::path::{Path, PathBuf};

/// What a publish did.
#[derive(Debug, Clone, Serialize)]
pub struct PublishReport {
    pub name: String,
    pub version: String,
    pub bytes: u64,
    /// Whether data was copied (false: that version was already there, only the name moved).
    pub uploaded: bool,
    /// `redis` or the shared directory.
    pub target: String,
}

/// A KB name: letters, digits, `.`, `_`, `-`, at most 64 characters.
pub fn check_name(name: &str) -> Result<(), KbError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        && !name.starts_with('.');
    if ok {
        Ok(())
    } else {
        Err(KbError::Publish(format!(
            "invalid knowledge base name '{name}': use letters, digits, '.', '_' or '-' (at most 64)"
        )))
    }
}

fn publish_err(e: impl std::fmt::Display) -> KbError {
    KbError::Publish(format!("publishing the knowledge base: {e}"))
}

/// A snapshot read for publishing: manifest, its bytes, and the data files by name.
type SnapshotFiles = (Manifest, Vec<u8>, Vec<(String, Vec<u8>)>);

/// Reads the current snapshot's manifest and data files.
fn snapshot_files(kb_dir: &Path) -> Result<SnapshotFiles, KbError> {
    let snap = store::resolve(kb_dir)?;
    let manifest = store::read_manifest(&snap)?;
    let manifest_bytes =
        std::fs::read(snap.join(store::MANIFEST_FILE)).map_err(|e| io_err(&snap, e))?;
    let files = store::DATA_FILES
        .iter()
        .map(|name| {
            let path = snap.join(name);
            std::fs::read(&path)
                .map(|b| (name.to_string(), b))
                .map_err(|e| io_err(&path, e))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok((manifest, manifest_bytes, files))
}

/// Stores the current snapshot of `kb_dir` in Redis, under `name` when given (a job submitted
/// with a KB directory stores it unnamed: the job pins the version).
pub async fn publish_redis(
    queue: &RfpQueue,
    kb_dir: &Path,
    name: Option<&str>,
) -> Result<PublishReport, KbError> {
    if let Some(name) = name {
        check_name(name)?;
    }
    let dir = kb_dir.to_path_buf();
    let (manifest, manifest_bytes, files) =
        tokio::task::spawn_blocking(move || snapshot_files(&dir))
            .await
            .map_err(publish_err)??;
    let bytes = files.iter().map(|(_, b)| b.len() as u64).sum();
    let uploaded = queue
        .kb_publish(name, &manifest.version, &manifest_bytes, &files)
        .await
        .map_err(publish_err)?;
    Ok(PublishReport {
        name: name.unwrap_or_default().to_string(),
        version: manifest.version,
        bytes,
        uploaded,
        target: "redis".into(),
    })
}

/// Copies the current snapshot of `kb_dir` into `shared/<name>/` (a KB directory workers can
/// open like any other) and makes it current there.
pub fn publish_dir(kb_dir: &Path, shared: &Path, name: &str) -> Result<PublishReport, KbError> {
    check_name(name)?;
    let snap = store::resolve(kb_dir)?;
    let manifest = store::read_manifest(&snap)?;
    let target_kb = shared.join(name);
    let dest = store::snapshot_dir(&target_kb, &manifest.version);
    let mut bytes = 0;
    let uploaded = !store::is_complete(&dest);
    if uploaded {
        let tmp = store::temp_dir(&target_kb.join(store::SNAPSHOTS_DIR), &manifest.version);
        std::fs::create_dir_all(&tmp).map_err(|e| io_err(&tmp, e))?;
        for name in store::DATA_FILES.iter().chain([&store::MANIFEST_FILE]) {
            bytes += std::fs::copy(snap.join(name), tmp.join(name)).map_err(|e| io_err(&tmp, e))?;
        }
        store::install_snapshot(&target_kb, &manifest.version, &tmp)?;
    }
    store::set_current(&target_kb, &manifest.version)?;
    Ok(PublishReport {
        name: name.to_string(),
        version: manifest.version,
        bytes,
        uploaded,
        target: target_kb.display().to_string(),
    })
}

/// A local directory holding snapshot `version`: the worker's cache entry, fetched from Redis
/// the first time and verified against the manifest's sha256 of each file.
pub async fn materialize(
    queue: &RfpQueue,
    version: &str,
    cache: &Path,
) -> Result<PathBuf, KbError> {
    if version.is_empty() || !version.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(KbError::Publish(format!(
            "invalid knowledge base version '{version}'"
        )));
    }
    let dest = cache.join(version);
    if store::is_complete(&dest) {
        return Ok(dest);
    }
    let fetch_err = |e: crate::queue::QueueError| {
        KbError::Publish(format!("fetching knowledge base {version}: {e}"))
    };
    let Some((manifest_bytes, files)) = queue.kb_listing(version).await.map_err(fetch_err)? else {
        return Err(KbError::Publish(format!(
            "knowledge base version {version} is not published in Redis (run `rfpq kb publish`)"
        )));
    };
    let manifest: Manifest = serde_json::from_slice(&manifest_bytes)
        .map_err(|e| KbError::Publish(format!("knowledge base {version}: bad manifest: {e}")))?;
    let tmp = store::temp_dir(cache, version);
    std::fs::create_dir_all(&tmp).map_err(|e| io_err(&tmp, e))?;
    for (name, pieces) in files {
        if !store::DATA_FILES.contains(&name.as_str()) {
            return Err(KbError::Publish(format!(
                "knowledge base {version}: unexpected file '{name}'"
            )));
        }
        let mut data = Vec::new();
        for n in 0..pieces {
            data.extend(queue.kb_piece(version, &name, n).await.map_err(fetch_err)?);
        }
        let digest = manifest.files.iter().find(|f| f.name == name);
        if digest.is_none_or(|d| d.sha256 != store::sha256_hex(&data)) {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(KbError::Publish(format!(
                "knowledge base {version}: {name} does not match its manifest hash"
            )));
        }
        std::fs::write(tmp.join(&name), data).map_err(|e| io_err(&tmp, e))?;
    }
    std::fs::write(tmp.join(store::MANIFEST_FILE), &manifest_bytes).map_err(|e| io_err(&tmp, e))?;
    if store::is_complete(&dest) {
        // Another worker fetched it meanwhile.
        let _ = std::fs::remove_dir_all(&tmp);
    } else {
        let _ = std::fs::remove_dir_all(&dest);
        std::fs::rename(&tmp, &dest).map_err(|e| io_err(&dest, e))?;
    }
    Ok(dest)
}
