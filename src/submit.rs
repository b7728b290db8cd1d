//! Producers' entry point: validates a workbook before it is queued, so a bad file is refused
//! at once with a clear reason instead of failing later in a worker. One path for every
//! producer: [`check`] (also the worker's own re-check), the caller's KB choice, [`enqueue`].
//! Does not answer or store anything but the job.

use crate::kb::{KbError, KnowledgeBase, publish};
use crate::pipeline::config::WriteDrafts;
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
    #[error("{path}: the workbook could not be read ({why})")]
    Crashed { path: String, why: String },
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error(transparent)]
    Kb(#[from] KbError),
    #[error(
        "no knowledge base '{0}': not a KB directory here, and no KB of that name is published (run `rfpq kb publish DIR --name {0}`)"
    )]
    UnknownKb(String),
}

impl SubmitError {
    /// Why a workbook was refused, without the file name (a job's failure reason).
    pub fn reason(&self) -> String {
        match self {
            SubmitError::Workbook { source, .. } => source.to_string(),
            SubmitError::NoQuestions { why, .. } => why.clone(),
            SubmitError::Crashed { why, .. } => format!("workbook parser crashed: {why}"),
            other => other.to_string(),
        }
    }
}

/// The KB a job will use, pinned to one snapshot version. A directory is published to Redis
/// (content-addressed, a no-op when that version is already there) so workers on any machine
/// can fetch it; anything else is a name given to `rfpq kb publish`.
pub async fn resolve_kb(queue: &RfpQueue, kb: &str) -> Result<KbRef, SubmitError> {
    let path = Path::new(kb);
    if path.is_dir() {
        let manifest = KnowledgeBase::read_meta(path)?;
        let report = crate::queue::publish_kb(queue, path, None).await?;
        debug_assert_eq!(report.version, manifest.version);
        return Ok(KbRef {
            name: std::path::absolute(path)
                .unwrap_or_else(|_| path.to_path_buf())
                .display()
                .to_string(),
            version: report.version,
        });
    }
    resolve_published(queue, kb).await
}

/// The snapshot version a KB name published with `rfpq kb publish` points at (never a path:
/// an upload may only name a published KB).
pub async fn resolve_published(queue: &RfpQueue, name: &str) -> Result<KbRef, SubmitError> {
    if publish::check_name(name).is_err() {
        return Err(SubmitError::UnknownKb(name.to_string()));
    }
    match queue.kb_resolve(name).await? {
        Some(version) => Ok(KbRef {
            name: name.to_string(),
            version,
        }),
        None => Err(SubmitError::UnknownKb(name.to_string())),
    }
}

/// Default rows per batch job.
pub const DEFAULT_BATCH_SIZE: usize = 10;

/// `Err(why)` when a workbook has no question to answer, naming each sheet's reason.
fn require_questions(questionnaire: &Questionnaire) -> Result<(), String> {
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

/// A workbook that passed the producers' checks, ready to queue.
pub struct Checked {
    /// The name it is queued under (a file name, never a path).
    pub name: String,
    /// The package to patch: the file itself, or the .xlsx rebuilt from an .xls/.ods.
    pub bytes: Vec<u8>,
    /// What was detected in it, with its source format and warnings.
    pub questionnaire: Questionnaire,
}

/// The one workbook check of every producer (`rfpq submit`, the HTTP upload, the drop folder)
/// and of the worker's `plan` step, which trusts nothing that was queued: format sniffing and
/// limits, .xls/.ods rebuilt as .xlsx, detection, and at least one question. Runs on a
/// blocking thread. `shown` names the file in errors.
pub async fn check(shown: &str, name: &str, bytes: Vec<u8>) -> Result<Checked, SubmitError> {
    let found = tokio::task::spawn_blocking(move || crate::workbook::load_and_detect(bytes))
        .await
        .map_err(|e| SubmitError::Crashed {
            path: shown.to_string(),
            why: e.to_string(),
        })?;
    let (loaded, questionnaire) = found.map_err(|source| SubmitError::Workbook {
        path: shown.to_string(),
        source,
    })?;
    require_questions(&questionnaire).map_err(|why| SubmitError::NoQuestions {
        path: shown.to_string(),
        why,
    })?;
    Ok(Checked {
        name: name.to_string(),
        bytes: loaded.bytes,
        questionnaire,
    })
}

/// Reads and checks a workbook file ([`check`]).
pub async fn validate_file(path: &Path) -> Result<Checked, SubmitError> {
    let shown = path.display().to_string();
    let bytes = tokio::fs::read(path)
        .await
        .map_err(|source| SubmitError::Read {
            path: shown.clone(),
            source,
        })?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "workbook.xlsx".into());
    check(&shown, &name, bytes).await
}

/// A queued job and what its submitter must be told.
#[derive(Debug, Clone)]
pub struct Submitted {
    pub id: String,
    pub warnings: Vec<String>,
}

/// How a checked workbook is queued.
#[derive(Debug, Clone)]
pub struct SubmitOptions {
    /// Rows per batch job.
    pub batch_size: usize,
    /// The job's own draft policy (`None`: the worker's config decides).
    pub write_drafts: Option<WriteDrafts>,
}

impl Default for SubmitOptions {
    fn default() -> Self {
        Self {
            batch_size: DEFAULT_BATCH_SIZE,
            write_drafts: None,
        }
    }
}

/// Queues a [`check`]ed workbook with its KB (resolved by the caller: a path or name for the
/// CLI, only a published name for an upload).
pub async fn enqueue(
    queue: &RfpQueue,
    checked: &Checked,
    kb: Option<&KbRef>,
    opts: &SubmitOptions,
) -> Result<Submitted, SubmitError> {
    let q = &checked.questionnaire;
    let id = queue
        .submit_loaded(
            &checked.name,
            &checked.bytes,
            kb,
            opts.batch_size,
            &crate::queue::SubmitExtras {
                format: q.source_format,
                warnings: q.warnings.clone(),
                write_drafts: opts.write_drafts,
            },
        )
        .await?;
    Ok(Submitted {
        id,
        warnings: q.warnings.clone(),
    })
}

/// Validates `path` and queues it with `kb` (a KB directory, published on the way, or a
/// published name); `write_drafts` is the job's own policy (`None`: the worker's config
/// decides).
pub async fn submit_file(
    queue: &RfpQueue,
    path: &Path,
    kb: Option<&str>,
    batch_size: usize,
    write_drafts: Option<WriteDrafts>,
) -> Result<Submitted, SubmitError> {
    let checked = validate_file(path).await?;
    let kb = match kb {
        Some(kb) => Some(resolve_kb(queue, kb).await?),
        None => None,
    };
    let opts = SubmitOptions {
        batch_size,
        write_drafts,
    };
    enqueue(queue, &checked, kb.as_ref(), &opts).await
}
