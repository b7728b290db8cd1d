//! Producers' entry point: validates a workbook before it is queued, so a bad file is refused
//! at once with a clear reason instead of failing later in a worker.

use crate::kb::{KbError, KnowledgeBase, publish};
use crate::queue::{KbRef, QueueError, RfpQueue};
use crate::workbook::{Questionnaire, WorkbookError};
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Workbook { path: String, source: WorkbookError },
    #[error("{path}: {why}")]
    NoQuestions { path: String, why: String },
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error(transparent)]
    Kb(#[from] KbError),
    #[error(
        "no knowledge base '{0}': not a KB directory here, and no KB of that name is published (run `rfpq kb publish DIR --name {0}`)"
    )]
    UnknownKb(String),
}

/// The KB a job will use, pinned to one snapshot version. A directory is published to Redis
/// (content-addressed, a no-op when that version is already there) so workers on any machine
/// can fetch it; anything else is a name given to `rfpq kb publish`.
pub async fn resolve_kb(queue: &RfpQueue, kb: &str) -> Result<KbRef, SubmitError> {
    let path = Path::new(kb);
    if path.is_dir() {
        let manifest = KnowledgeBase::read_meta(path)?;
        let report = publish::publish_redis(queue, path, None).await?;
        debug_assert_eq!(report.version, manifest.version);
        return Ok(KbRef {
            name: std::path::absolute(path)
                .unwrap_or_else(|_| path.to_path_buf())
                .display()
                .to_string(),
            version: report.version,
        });
    }
    if publish::check_name(kb).is_err() {
        return Err(SubmitError::UnknownKb(kb.to_string()));
    }
    match queue.kb_resolve(kb).await? {
        Some(version) => Ok(KbRef {
            name: kb.to_string(),
            version,
        }),
        None => Err(SubmitError::UnknownKb(kb.to_string())),
    }
}

/// Default rows per batch job.
pub const DEFAULT_BATCH_SIZE: usize = 10;

/// `Err(why)` when a workbook has no question to answer, naming each sheet's reason.
pub fn require_questions(questionnaire: &Questionnaire) -> Result<(), String> {
    if questionnaire.questions().next().is_some() {
        return Ok(());
    }
    let why: Vec<String> = questionnaire
        .sheets
        .iter()
        .map(|s| format!("{}: {}", s.name, s.reason))
        .collect();
    Err(format!(
        "no questions with answer cells were found ({})",
        why.join("; ")
    ))
}

/// Reads and checks a workbook, returning the package to patch (the file itself, or the .xlsx
/// rebuilt from an .xls/.ods) and what was detected in it (with its format and warnings).
pub async fn validate_file(path: &Path) -> Result<(Vec<u8>, Questionnaire), SubmitError> {
    let shown = path.display().to_string();
    let bytes = tokio::fs::read(path)
        .await
        .map_err(|source| SubmitError::Read {
            path: shown.clone(),
            source,
        })?;
    let found = tokio::task::spawn_blocking(move || crate::workbook::load_and_detect(bytes))
        .await
        .map_err(|e| SubmitError::Read {
            path: shown.clone(),
            source: std::io::Error::other(e.to_string()),
        })?;
    let (loaded, questionnaire) = found.map_err(|source| SubmitError::Workbook {
        path: shown.clone(),
        source,
    })?;
    let bytes = loaded.bytes;
    require_questions(&questionnaire)
        .map_err(|why| SubmitError::NoQuestions { path: shown, why })?;
    Ok((bytes, questionnaire))
}

/// A queued job and what its submitter must be told.
#[derive(Debug, Clone)]
pub struct Submitted {
    pub id: String,
    pub warnings: Vec<String>,
}

/// Validates `path` and queues it; `write_drafts` is the job's own policy (`None`: the
/// worker's config decides).
pub async fn submit_file(
    queue: &RfpQueue,
    path: &Path,
    kb: Option<&str>,
    batch_size: usize,
    write_drafts: Option<crate::pipeline::config::WriteDrafts>,
) -> Result<Submitted, SubmitError> {
    let (bytes, q) = validate_file(path).await?;
    let kb = match kb {
        Some(kb) => Some(resolve_kb(queue, kb).await?),
        None => None,
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "workbook.xlsx".into());
    let id = queue
        .submit_loaded(
            &name,
            &bytes,
            kb.as_ref(),
            batch_size,
            &crate::queue::SubmitExtras {
                format: q.source_format,
                warnings: q.warnings.clone(),
                write_drafts,
            },
        )
        .await?;
    Ok(Submitted {
        id,
        warnings: q.warnings,
    })
}
