//! `rfpq demo`: the bundled evaluation company (fictional Kestrel Analytics Ltd: its policies,
//! its answered past questionnaire, and a new customer questionnaire its knowledge base
//! covers), so a newcomer sees one whole job run on the embedded models with no other input:
//! answers reused from the library, grounded answers written, drafts left for review. Writes
//! the bundled files out, builds the KB, then runs the job through the queue with a worker in
//! this process ([`run`]), or in-process (`fill`) when Redis is not reachable. Prints nothing:
//! the caller follows it through [`DemoProgress`].

use crate::fill::{FillError, FillFiles};
use crate::kb::{IngestReport, KbError};
use crate::pipeline::FillSummary;
use crate::pipeline::config::AnsweringConfig;
use crate::pipeline::config::WriteDrafts;
use crate::queue::{JobPhase, JobStatus, QueueConfig, QueueError, RfpQueue};
use crate::router::Router;
use crate::submit::SubmitError;
use crate::worker::{RunningWorker, WorkerSettings};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

/// The customer questionnaire the demo fills (see fixtures/eval/SOURCE.md).
pub const QUESTIONNAIRE_NAME: &str = "customer-questionnaire.xlsx";
pub const QUESTIONNAIRE: &[u8] = include_bytes!("../fixtures/eval/demo-questionnaire.xlsx");

/// The answered questionnaire from last year: the answer library.
pub const PAST_NAME: &str = "past-questionnaire.xlsx";
pub const PAST: &[u8] = include_bytes!("../fixtures/eval/past-questionnaire.xlsx");

/// The company's documents (CC0, written for rfpq; see fixtures/eval/SOURCE.md).
pub const DOCUMENTS: &[(&str, &[u8])] = &[
    (
        "access-control-standard.docx",
        include_bytes!("../fixtures/eval/company/access-control-standard.docx"),
    ),
    (
        "business-continuity-and-backup-plan.md",
        include_bytes!("../fixtures/eval/company/business-continuity-and-backup-plan.md"),
    ),
    (
        "data-protection-and-retention-policy.md",
        include_bytes!("../fixtures/eval/company/data-protection-and-retention-policy.md"),
    ),
    (
        "incident-response-plan.pdf",
        include_bytes!("../fixtures/eval/company/incident-response-plan.pdf"),
    ),
    (
        "information-security-policy.md",
        include_bytes!("../fixtures/eval/company/information-security-policy.md"),
    ),
    (
        "secure-development-policy.md",
        include_bytes!("../fixtures/eval/company/secure-development-policy.md"),
    ),
    (
        "trust-page-and-subprocessors.md",
        include_bytes!("../fixtures/eval/company/trust-page-and-subprocessors.md"),
    ),
];

/// Where [`unpack`] put the demo's inputs.
pub struct DemoFiles {
    /// The questionnaire to fill.
    pub questionnaire: PathBuf,
    /// What the knowledge base is built from: the documents folder and the past questionnaire.
    pub kb_sources: Vec<PathBuf>,
}

/// Writes the bundled questionnaire, documents and past questionnaire under `dir`.
pub fn unpack(dir: &Path) -> std::io::Result<DemoFiles> {
    let docs = dir.join("company");
    std::fs::create_dir_all(&docs)?;
    for (name, bytes) in DOCUMENTS {
        std::fs::write(docs.join(name), bytes)?;
    }
    let past = dir.join(PAST_NAME);
    std::fs::write(&past, PAST)?;
    let questionnaire = dir.join(QUESTIONNAIRE_NAME);
    std::fs::write(&questionnaire, QUESTIONNAIRE)?;
    Ok(DemoFiles {
        questionnaire,
        kb_sources: vec![docs, past],
    })
}

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("cannot write into {path}: {source}")]
    Unpack {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Kb(#[from] KbError),
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error(transparent)]
    Submit(#[from] SubmitError),
    #[error(transparent)]
    Fill(#[from] FillError),
    #[error("demo job {id} failed: {reason}")]
    JobFailed { id: String, reason: String },
    #[error("demo job {0} finished without a result")]
    NoResult(String),
}

/// Where the demo's files are.
pub struct DemoPaths {
    pub questionnaire: PathBuf,
    pub kb_dir: PathBuf,
    pub filled: PathBuf,
    pub review: PathBuf,
    /// Where `rfpq apply` would write the reviewed result (the suggested next step).
    pub final_output: PathBuf,
}

/// How the demo job ran.
pub enum DemoRun {
    /// Through the queue, with a worker in this process.
    Queued {
        id: String,
        status: Box<JobStatus>,
        secs: f64,
    },
    /// In-process (Redis was not reachable).
    Local {
        summary: Box<FillSummary>,
        warnings: Vec<String>,
    },
}

/// What the demo did.
pub struct DemoOutcome {
    pub paths: DemoPaths,
    pub kb: IngestReport,
    pub kb_secs: f64,
    pub run: DemoRun,
}

/// What the demo tells its caller while it runs (all default to doing nothing).
pub trait DemoProgress {
    /// The KB is about to be built.
    fn building_kb(&mut self) {}
    /// The KB was built in `secs` seconds.
    fn kb_built(&mut self, _report: &IngestReport, _secs: f64) {}
    /// The job is queued on `redis_url`, a worker runs in this process.
    fn queued(&mut self, _questionnaire: &Path, _redis_url: &str) {}
    /// The queued job's status, every half second until it ends.
    fn status(&mut self, _status: &JobStatus) {}
    /// Redis could not be reached (`why`): the job runs in-process.
    fn local(&mut self, _why: &str) {}
    /// In-process: `done` of `total` rows answered.
    fn rows(&self, _done: usize, _total: usize) {}
}

/// Unpacks the demo under `out`, builds its KB and fills its questionnaire: through the queue
/// at `queue` with a worker in this process, else in-process.
pub async fn run(
    router: Arc<Router>,
    answering: AnsweringConfig,
    queue: QueueConfig,
    write_drafts: Option<WriteDrafts>,
    out: &Path,
    progress: &mut impl DemoProgress,
) -> Result<DemoOutcome, DemoError> {
    let files = unpack(out).map_err(|source| DemoError::Unpack {
        path: out.display().to_string(),
        source,
    })?;
    let kb_dir = out.join("kb");
    progress.building_kb();
    let started = Instant::now();
    let kb = crate::kb::ingest(
        &router,
        &files.kb_sources,
        &kb_dir,
        &crate::kb::IngestOptions::default(),
    )
    .await?;
    let kb_secs = started.elapsed().as_secs_f64();
    progress.kb_built(&kb, kb_secs);
    let stem = files
        .questionnaire
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let paths = DemoPaths {
        filled: out.join(format!("{stem}.filled.xlsx")),
        review: out.join(format!("{stem}.review.xlsx")),
        final_output: out.join(format!("{stem}.final.xlsx")),
        questionnaire: files.questionnaire,
        kb_dir,
    };
    let run = match RfpQueue::connect(queue.clone()).await {
        Ok(q) => {
            progress.queued(&paths.questionnaire, &queue.redis_url);
            run_queued(router, answering, &q, queue, write_drafts, &paths, progress).await?
        }
        Err(e) => {
            progress.local(&e.to_string());
            let files = FillFiles {
                input: &paths.questionnaire,
                kb: Some(&paths.kb_dir),
                output: &paths.filled,
                review: &paths.review,
                outcomes: None,
            };
            let report = crate::fill::fill(router, answering, &files, 2, |done, total| {
                progress.rows(done, total)
            })
            .await?;
            DemoRun::Local {
                summary: Box::new(report.summary),
                warnings: report.warnings,
            }
        }
    };
    Ok(DemoOutcome {
        paths,
        kb,
        kb_secs,
        run,
    })
}

/// The demo job through the queue, with a worker in this process stopped at the end.
async fn run_queued(
    router: Arc<Router>,
    answering: AnsweringConfig,
    queue: &RfpQueue,
    cfg: QueueConfig,
    write_drafts: Option<WriteDrafts>,
    paths: &DemoPaths,
    progress: &mut impl DemoProgress,
) -> Result<DemoRun, DemoError> {
    let settings = WorkerSettings {
        answering,
        ..WorkerSettings::default()
    };
    let worker = RunningWorker::start(cfg, router, settings).await?;
    let kb = std::path::absolute(&paths.kb_dir).unwrap_or_else(|_| paths.kb_dir.clone());
    let submitted = crate::submit::submit_file(
        queue,
        &paths.questionnaire,
        Some(&kb.display().to_string()),
        crate::submit::DEFAULT_BATCH_SIZE,
        write_drafts,
    )
    .await;
    let id = match submitted {
        Ok(s) => s.id,
        Err(e) => {
            worker.shutdown().await?;
            return Err(e.into());
        }
    };
    let started = Instant::now();
    let status = queue.follow(&id, |st| progress.status(st)).await;
    let secs = started.elapsed().as_secs_f64();
    worker.shutdown().await?;
    let status = status?;
    if status.state == JobPhase::Failed {
        return Err(DemoError::JobFailed {
            id,
            reason: status.reason.clone().unwrap_or_default(),
        });
    }
    let filled = queue
        .result(&id, false)
        .await?
        .ok_or_else(|| DemoError::NoResult(id.clone()))?;
    crate::fill::write_file(&paths.filled, &filled)?;
    if let Some(r) = queue.result(&id, true).await? {
        crate::fill::write_file(&paths.review, &r)?;
    }
    Ok(DemoRun::Queued {
        id,
        status: Box::new(status),
        secs,
    })
}
