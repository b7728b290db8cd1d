//! Producers' entry point: validates a workbook before it is queued, so a bad file is refused
//! at once with a clear reason instead of failing later in a worker.

use crate::queue::{QueueError, RfpQueue};
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

/// Validates `path` and queues it.
pub async fn submit_file(
    queue: &RfpQueue,
    path: &Path,
    kb: Option<&str>,
    batch_size: usize,
) -> Result<Submitted, SubmitError> {
    let (bytes, q) = validate_file(path).await?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "workbook.xlsx".into());
    let id = queue
        .submit_loaded(&name, &bytes, kb, batch_size, q.source_format, &q.warnings)
        .await?;
    Ok(Submitted {
        id,
        warnings: q.warnings,
    })
}
