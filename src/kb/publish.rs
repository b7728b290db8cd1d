//! Distribution of KB snapshots to workers on other machines, the file side: KB names, the
//! files a snapshot is published as (`snapshot_files`), publishing into a shared directory
//! (`publish_dir`), and installing a fetched copy into a worker's cache only after every file
//! matches the manifest's sha256 (`install_fetched`). It does not talk to Redis:
//! `queue::publish_kb` / `queue::materialize_kb` move the bytes.

use super::{KbError, Manifest, io_err, store};
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

/// A snapshot read for publishing: manifest, its bytes, and the data files by name.
pub type SnapshotFiles = (Manifest, Vec<u8>, Vec<(String, Vec<u8>)>);

/// Reads the current snapshot's manifest and data files.
pub fn snapshot_files(kb_dir: &Path) -> Result<SnapshotFiles, KbError> {
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

/// Checks a snapshot version named by a job (hex digits only, so it is a safe directory name)
/// and returns its directory in `cache` when a complete copy is already there.
pub fn cached(cache: &Path, version: &str) -> Result<Option<PathBuf>, KbError> {
    if version.is_empty() || !version.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(KbError::Publish(format!(
            "invalid knowledge base version '{version}'"
        )));
    }
    let dest = cache.join(version);
    Ok(store::is_complete(&dest).then_some(dest))
}

/// Installs a fetched copy of snapshot `version` (its manifest and data files) as
/// `cache/<version>` once every file matches the manifest's sha256; another worker's copy
/// installed meanwhile wins. Returns the directory.
pub fn install_fetched(
    cache: &Path,
    version: &str,
    manifest_bytes: &[u8],
    files: Vec<(String, Vec<u8>)>,
) -> Result<PathBuf, KbError> {
    let dest = cache.join(version);
    let manifest: Manifest = serde_json::from_slice(manifest_bytes)
        .map_err(|e| KbError::Publish(format!("knowledge base {version}: bad manifest: {e}")))?;
    let tmp = store::temp_dir(cache, version);
    std::fs::create_dir_all(&tmp).map_err(|e| io_err(&tmp, e))?;
    for (name, data) in files {
        if !store::DATA_FILES.contains(&name.as_str()) {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(KbError::Publish(format!(
                "knowledge base {version}: unexpected file '{name}'"
            )));
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
    std::fs::write(tmp.join(store::MANIFEST_FILE), manifest_bytes).map_err(|e| io_err(&tmp, e))?;
    if store::is_complete(&dest) {
        // Another worker fetched it meanwhile.
        let _ = std::fs::remove_dir_all(&tmp);
    } else {
        let _ = std::fs::remove_dir_all(&dest);
        std::fs::rename(&tmp, &dest).map_err(|e| io_err(&dest, e))?;
    }
    Ok(dest)
}
