//! The worker daemon: takes `plan`, `batch` and `assemble` jobs off the queue and runs them.
//! Plan parses the workbook and fans out row batches; a batch answers its rows with per-row
//! checkpoints, fenced by the job lock; assemble patches the original file from the checkpoints.
//! Lock renewal stays on the async runtime; parsing and inference run on blocking threads.
//!
//! This file starts and stops a worker and dispatches jobs; the steps are `plan`, `batch` and
//! `assemble`, and `upkeep` holds what runs beside them (heartbeat, sweeper, warm-up, the
//! metrics endpoint). It does not talk to Redis except through `queue`, and answers rows only
//! through `pipeline`.

mod assemble;
mod batch;
mod plan;
mod upkeep;

pub use upkeep::serve_metrics;
use upkeep::{spawn_heartbeat, spawn_warm_up};

use crate::kb::KnowledgeBase;
use crate::pipeline::config::AnsweringConfig;
use crate::queue::{
    JOB_ASSEMBLE, JOB_BATCH, JOB_PLAN, JobPhase, QUEUE_NAME, QueueConfig, QueueError, RfpQueue,
};
use crate::router::Router;
use bullmq::worker::{CancellationToken, WorkerEvent};
use bullmq::{Job, Worker};
use plan::CachedPlan;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tracing::Instrument;

/// Worker settings.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// Jobs (batches) processed at once.
    pub concurrency: usize,
    /// Job lock; renewed every half of it while the job runs.
    pub lock_duration: Duration,
    /// How often stalled jobs (crashed workers) are looked for.
    pub stalled_interval: Duration,
    /// Grace for in-flight work at shutdown.
    pub shutdown_grace: Duration,
    /// Stalls (a worker died or hung holding the batch) after which a batch is failed as a
    /// poison batch instead of being run again.
    pub max_stalls: usize,
    /// Rows a batch answers at once (0: the parallel slots of the answer task's first
    /// provider, its `max_concurrency`). The router's per-provider limit still caps the calls
    /// of all batches of this process together.
    pub rows_in_flight: usize,
    /// Load the models before the first batch (see `spawn_warm_up`). Off by default for
    /// embedders and tests; `rfpq worker` turns it on unless `--no-warm-up`.
    pub warm_up: bool,
    /// The pipeline's `answering:` settings, from the same config file as the router (default:
    /// the built-in defaults of that section).
    pub answering: AnsweringConfig,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        Self {
            concurrency: 2,
            // A killed worker's batch is re-run when its lock has expired and a stall check
            // has run: about max(lock, 3 × stalled_interval) with bullmq-official's timer.
            lock_duration: Duration::from_secs(15),
            stalled_interval: Duration::from_secs(5),
            shutdown_grace: Duration::from_secs(25),
            max_stalls: 3,
            rows_in_flight: 0,
            warm_up: false,
            answering: AnsweringConfig::default(),
        }
    }
}

impl WorkerSettings {
    /// `rows_in_flight`, with 0 resolved from the router config: the answer task's first
    /// provider's `max_concurrency` (its parallel slots), at least 1.
    pub fn rows_in_flight(&self, router: &Router) -> usize {
        if self.rows_in_flight > 0 {
            return self.rows_in_flight;
        }
        let cfg = router.config();
        cfg.targets(crate::router::config::Task::Answer)
            .first()
            .and_then(|t| cfg.provider(&t.provider))
            .map_or(1, |p| p.max_concurrency)
            .max(1)
    }
}

struct Shared {
    queue: RfpQueue,
    router: Arc<Router>,
    answering: Arc<AnsweringConfig>,
    kbs: Mutex<HashMap<String, Arc<KnowledgeBase>>>,
    /// Held while a KB is fetched and opened, so concurrent batches load it once.
    kb_loading: tokio::sync::Mutex<()>,
    lock_ms: u64,
    /// Workbook jobs this process works on (a job may have several batches here at once).
    active: Mutex<HashMap<String, usize>>,
    /// This worker's registry id, recorded in every checkpoint it writes.
    id: String,
    max_stalls: usize,
    /// Rows one batch answers at once.
    rows_in_flight: usize,
    /// Parsed plans by job id.
    plans: Mutex<HashMap<String, Arc<CachedPlan>>>,
}

fn cancelled() -> bullmq::Error {
    bullmq::Error::Unrecoverable("cancelled by user".into())
}

fn fail(msg: impl Into<String>) -> bullmq::Error {
    bullmq::Error::Unrecoverable(msg.into())
}

/// The workbook job id a plan or assemble job works on.
fn job_ref(job: &Job) -> String {
    job.data()
        .get("job")
        .and_then(|j| j.as_str())
        .unwrap_or_default()
        .to_string()
}

/// Whether this failure ends the job: unrecoverable, or the last configured attempt.
fn is_last_attempt(job: &Job, e: &bullmq::Error) -> bool {
    matches!(e, bullmq::Error::Unrecoverable(_))
        || job.attempts_started().max(job.attempts_made() + 1) >= job.opts().attempts.unwrap_or(1)
}

/// A missing plan will not appear by retrying: the job ends with a reason users can act on.
fn no_plan(e: QueueError) -> bullmq::Error {
    match e {
        QueueError::UnknownJob(_) => fail(
            "the job's plan is missing (it was never planned, or its data expired); submit the file again",
        ),
        e => retry(e),
    }
}

fn retry(e: QueueError) -> bullmq::Error {
    bullmq::Error::ProcessingError(e.to_string())
}

/// A running worker; `shutdown` stops it.
pub struct RunningWorker {
    worker: Arc<Worker>,
    grace: Duration,
    events: tokio::task::JoinHandle<()>,
    beat: tokio::task::JoinHandle<()>,
    warm: tokio::task::JoinHandle<()>,
    shared: Arc<Shared>,
    id: String,
}

impl RunningWorker {
    /// Starts a worker on the queue with the given router.
    pub async fn start(
        cfg: QueueConfig,
        router: Arc<Router>,
        settings: WorkerSettings,
    ) -> Result<Self, QueueError> {
        let queue = RfpQueue::connect(cfg.clone()).await?;
        let id = format!(
            "{}:{}:{}",
            sysinfo::System::host_name().unwrap_or_else(|_| "unknown".into()),
            std::process::id(),
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        let rows_in_flight = settings.rows_in_flight(&router);
        let shared = Arc::new(Shared {
            queue,
            router,
            answering: Arc::new(settings.answering.clone()),
            kbs: Mutex::new(HashMap::new()),
            kb_loading: tokio::sync::Mutex::new(()),
            lock_ms: settings.lock_duration.as_millis() as u64,
            active: Mutex::new(HashMap::new()),
            id: id.clone(),
            max_stalls: settings.max_stalls.max(1),
            rows_in_flight,
            plans: Mutex::new(HashMap::new()),
        });
        let beat = spawn_heartbeat(shared.clone(), id.clone(), settings.concurrency.max(1));
        let warm = if settings.warm_up {
            spawn_warm_up(shared.router.clone())
        } else {
            tokio::spawn(async {})
        };
        let for_processor = shared.clone();
        let processor = move |job: Job, token: CancellationToken| {
            let shared = for_processor.clone();
            // One span per queue job: the workbook job it works on, and which step.
            let span = tracing::info_span!(
                "job",
                job = %job_ref(&job),
                step = job.name(),
                queue_job = job.id(),
            );
            async move {
                let workbook = job_ref(&job);
                *shared
                    .active
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .entry(workbook.clone())
                    .or_default() += 1;
                let result = match job.name() {
                    JOB_PLAN => shared.plan(&job_ref(&job)).await,
                    JOB_BATCH => shared.batch(&job, &token).await,
                    JOB_ASSEMBLE => shared.assemble(&job).await,
                    other => Err(fail(format!("unknown job name '{other}'"))),
                };
                {
                    let mut active = shared.active.lock().unwrap_or_else(|p| p.into_inner());
                    if let Some(n) = active.get_mut(&workbook) {
                        *n -= 1;
                        if *n == 0 {
                            active.remove(&workbook);
                        }
                    }
                }
                // A plan or assemble job that gives up for good (retries spent on a transient
                // error) must not leave the user-visible state at "running".
                if let Err(e) = &result
                    && job.name() != JOB_BATCH
                    && is_last_attempt(&job, e)
                {
                    let id = job_ref(&job);
                    if let Err(store) = shared
                        .queue
                        .set_phase(&id, JobPhase::Failed, Some(&e.to_string()))
                        .await
                    {
                        tracing::error!(job = id, error = %store, "could not record the failure");
                    }
                }
                result
            }
            .instrument(span)
        };
        let opts = bullmq::WorkerOptions::new()
            .connection(cfg.connection())
            .prefix(cfg.prefix.clone())
            .concurrency(settings.concurrency.max(1))
            .lock_duration(settings.lock_duration)
            .stalled_interval(settings.stalled_interval)
            .max_stalled_count(u32::try_from(settings.max_stalls.max(1)).unwrap_or(u32::MAX))
            .drain_delay(Duration::from_secs(1));
        let worker = Arc::new(Worker::with_options(QUEUE_NAME, processor, opts).await?);
        let events = {
            // The worker's event channel is unbounded: always drain it.
            let w = worker.clone();
            tokio::spawn(async move {
                while let Some(ev) = w.next_event().await {
                    match ev {
                        WorkerEvent::Failed { job_id, error } => {
                            tracing::warn!(job_id, error, "job attempt failed")
                        }
                        WorkerEvent::Error(e) => tracing::warn!(error = e, "worker error"),
                        WorkerEvent::Stalled { job_id } => {
                            crate::metrics::stalled_job();
                            tracing::warn!(job_id, "stalled job recovered")
                        }
                        WorkerEvent::Closed => break,
                        _ => {}
                    }
                }
            })
        };
        Ok(Self {
            worker,
            grace: settings.shutdown_grace,
            events,
            beat,
            warm,
            shared,
            id,
        })
    }

    /// This worker's registry id (`host:pid:boot-id`).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Stops fetching, lets each batch finish the row it is on (up to the grace), checkpoints
    /// it, and hands unfinished batches back to the queue.
    pub async fn shutdown(self) -> Result<(), QueueError> {
        self.worker.cancel_all_jobs().await;
        self.worker.close(self.grace.as_millis() as u64).await?;
        self.events.abort();
        self.beat.abort();
        self.warm.abort();
        if let Err(e) = self.shared.queue.unregister(&self.id).await {
            tracing::warn!(error = %e, "could not leave the worker registry");
        }
        Ok(())
    }
}
