//! The worker daemon: takes `plan`, `batch` and `assemble` jobs off the queue and runs them.
//! Plan parses the workbook and fans out row batches; a batch answers its rows with per-row
//! checkpoints, fenced by the job lock; assemble patches the original file from the checkpoints.
//! Lock renewal stays on the async runtime; parsing and inference run on blocking threads.

use crate::kb::KnowledgeBase;
use crate::pipeline::config::{AnsweringConfig, WriteDrafts};
use crate::pipeline::{self, PipelineContext, Plan, RowOutcome, RowStatus};
use crate::queue::{
    BatchSpec, HEARTBEAT, JOB_ASSEMBLE, JOB_BATCH, JOB_PLAN, JobPhase, QUEUE_NAME, QueueConfig,
    QueueError, RfpQueue, WorkerInfo,
};
use crate::router::Router;
use bullmq::worker::{CancellationToken, WorkerEvent};
use bullmq::{Job, Worker};
use futures_util::TryStreamExt;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
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

/// Plans kept parsed per process (the jobs a worker is on at once, with room to spare).
const PLAN_CACHE: usize = 16;

/// A job's parsed plan with what every batch derives from it.
struct CachedPlan {
    /// The `plan_version` it was stored under (none: not cached).
    version: Option<String>,
    plan: Plan,
    /// `Plan::groups`, in order.
    groups: Vec<Vec<usize>>,
    /// For each row answered for copies of it, those copies.
    copies: HashMap<usize, Vec<usize>>,
}

impl CachedPlan {
    fn new(plan: Plan, version: Option<String>) -> Self {
        let mut copies: HashMap<usize, Vec<usize>> = HashMap::new();
        for (i, row) in plan.rows.iter().enumerate() {
            if let Some(s) = &row.same_as {
                copies.entry(s.index).or_default().push(i);
            }
        }
        Self {
            version,
            groups: plan.groups(),
            plan,
            copies,
        }
    }
}

/// One batch run's shared state, borrowed by its concurrent row groups.
struct BatchRun<'a> {
    id: &'a str,
    job: &'a Job,
    plan: &'a Plan,
    ctx: PipelineContext,
    lock: Option<String>,
    /// Rows of this batch checkpointed by an earlier run.
    existing: HashMap<usize, RowOutcome>,
    /// For each answered row, the copies that take its answer.
    copies: &'a HashMap<usize, Vec<usize>>,
    /// Set when the user cancels the job.
    cancel: tokio_util::sync::CancellationToken,
    /// Set when this worker shuts down.
    shutdown: &'a CancellationToken,
    /// A row was left for the queue because the worker is shutting down.
    handed_back: AtomicBool,
    written: AtomicUsize,
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

/// How often a worker looks for parents stuck waiting (one worker sweeps at a time).
const SWEEP_EVERY: Duration = Duration::from_secs(60);
/// A parent waiting this long with no child that can still finish is repaired.
const STUCK_AFTER: Duration = Duration::from_secs(120);

/// How often a running batch looks at the job's cancel flag while a row is in flight.
const CANCEL_POLL: Duration = Duration::from_millis(500);

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

impl Shared {
    /// The KB a job names, opened once per worker: the pinned snapshot version, fetched from
    /// Redis into the local cache the first time (or, for a job without a version, a path).
    async fn kb(&self, name: &str, version: Option<&str>) -> Result<Arc<KnowledgeBase>, String> {
        let key = version.unwrap_or(name).to_string();
        let cached = || {
            self.kbs
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(&key)
                .cloned()
        };
        if let Some(kb) = cached() {
            return Ok(kb);
        }
        let _loading = self.kb_loading.lock().await;
        if let Some(kb) = cached() {
            return Ok(kb);
        }
        let dir = match version {
            Some(v) => {
                crate::kb::publish::materialize(&self.queue, v, &crate::kb::cache_root().join("kb"))
                    .await
                    .map_err(|e| e.to_string())?
            }
            None => std::path::PathBuf::from(name),
        };
        let kb = tokio::task::spawn_blocking(move || KnowledgeBase::open(&dir))
            .await
            .map_err(|e| format!("opening the knowledge base crashed: {e}"))?
            .map_err(|e| e.to_string())?;
        kb.check_model(&self.router).map_err(|e| e.to_string())?;
        tracing::info!(
            kb = name,
            version = kb.version(),
            chunks = kb.manifest.chunks,
            "knowledge base loaded"
        );
        let kb = Arc::new(kb);
        self.kbs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, kb.clone());
        Ok(kb)
    }

    async fn plan(&self, id: &str) -> Result<serde_json::Value, bullmq::Error> {
        if self.queue.cancel_requested(id).await.map_err(retry)? {
            self.queue
                .set_phase(id, JobPhase::Cancelled, Some("cancelled before it started"))
                .await
                .map_err(retry)?;
            return Ok(serde_json::json!({"cancelled": true}));
        }
        // Timing bookkeeping for the job report is best effort: it never fails a job.
        let _ = self
            .queue
            .mark(id, crate::queue::Milestone::PlanStarted)
            .await;
        let bytes = self.queue.file(id).await.map_err(|e| fail(e.to_string()))?;
        self.queue
            .set_phase(id, JobPhase::Running, None)
            .await
            .map_err(retry)?;
        let workbook_started = std::time::Instant::now();
        let parsed = tokio::task::spawn_blocking(move || crate::workbook::load_and_detect(bytes))
            .await
            .map_err(|e| fail(format!("workbook parser crashed: {e}")));
        // Unrecoverable errors end the job; the processor wrapper records them as `failed`.
        let (loaded, questionnaire) = parsed.and_then(|r| r.map_err(|e| fail(e.to_string())))?;
        if loaded.format.is_converted() {
            // A producer queued an .xls/.ods as is: from now on the job works on the .xlsx.
            self.queue
                .replace_file(id, &loaded.bytes, loaded.format, &loaded.warnings)
                .await
                .map_err(retry)?;
        }
        let workbook_time = workbook_started.elapsed();
        let _ = self
            .queue
            .record_time(id, crate::queue::Stage::Workbook, workbook_time)
            .await;
        let plan_started = std::time::Instant::now();
        crate::submit::require_questions(&questionnaire).map_err(fail)?;
        let mut plan = Plan::build(&self.router, &self.answering, &questionnaire).await;
        // The job's own write_drafts (`rfpq --write-drafts … submit`), else this worker's config.
        plan.write_drafts = self
            .queue
            .meta(id)
            .await
            .map_err(retry)?
            .get("write_drafts")
            .and_then(|w| WriteDrafts::parse(w));
        let _ = self
            .queue
            .record_time(id, crate::queue::Stage::Plan, plan_started.elapsed())
            .await;
        let _ = self.queue.mark(id, crate::queue::Milestone::Planned).await;
        for w in &plan.warnings {
            tracing::warn!(job = id, warning = w.as_str(), "plan");
        }
        let batches = self.queue.start_batches(id, &plan).await.map_err(retry)?;
        tracing::info!(
            job = id,
            rows = plan.rows.len(),
            questions = plan.question_count(),
            copies = plan.rows.iter().filter(|r| r.same_as.is_some()).count(),
            language = plan.language.name(),
            classify_calls = plan.calls.classify,
            batches,
            data_policy = ?self.router.config().data_policy,
            "planned"
        );
        Ok(serde_json::json!({"rows": plan.rows.len(), "batches": batches}))
    }

    /// A job's plan, parsed once per process with what every batch derives from it: a job's
    /// batches all read the same plan, and parsing a 1,000-row plan costs milliseconds. `version`
    /// is the job meta's `plan_version`; a cached plan of another version (or of a job stored
    /// without one) is read again.
    async fn plan_of(
        &self,
        id: &str,
        version: Option<&str>,
    ) -> Result<Arc<CachedPlan>, bullmq::Error> {
        if let Some(v) = version
            && let Some(cached) = self.plans.lock().unwrap_or_else(|p| p.into_inner()).get(id)
            && cached.version.as_deref() == Some(v)
        {
            return Ok(cached.clone());
        }
        let (bytes, version) = self.queue.plan_bytes(id).await.map_err(no_plan)?;
        let plan: Plan = serde_json::from_slice(&bytes)
            .map_err(|e| fail(format!("the job's plan is damaged: {e}")))?;
        let cached = Arc::new(CachedPlan::new(plan, version));
        if cached.version.is_some() {
            let mut plans = self.plans.lock().unwrap_or_else(|p| p.into_inner());
            if plans.len() >= PLAN_CACHE && !plans.contains_key(id) {
                plans.clear();
            }
            plans.insert(id.to_string(), cached.clone());
        }
        Ok(cached)
    }

    /// Answers a batch's rows: groups (a question and the questions that depend on it, in
    /// order) run concurrently, up to `rows_in_flight` at once, so one batch can keep every
    /// slot of the backend busy. Each row is checkpointed as soon as it is answered, fenced by
    /// the job lock.
    async fn batch(
        &self,
        job: &Job,
        token: &CancellationToken,
    ) -> Result<serde_json::Value, bullmq::Error> {
        let spec: BatchSpec = serde_json::from_value(job.data().clone())
            .map_err(|e| fail(format!("bad batch data: {e}")))?;
        let id = spec.job.as_str();
        let meta = self.queue.meta(id).await.map_err(retry)?;
        let cached = self
            .plan_of(id, meta.get(crate::queue::PLAN_VERSION).map(String::as_str))
            .await?;
        let plan = &cached.plan;
        let kb = match meta.get("kb") {
            Some(name) => Some(
                self.kb(name, meta.get("kb_version").map(String::as_str))
                    .await
                    .map_err(fail)?,
            ),
            None => None,
        };
        if self.queue.cancel_requested(id).await.map_err(retry)? {
            return Err(cancelled());
        }
        let end = spec.end.min(plan.rows.len());
        let range = spec.start..end;
        // One read for the rows an earlier run of this batch already answered.
        let existing = self.queue.rows_at(id, range.clone()).await.map_err(retry)?;
        // The rows' question embeddings in a few calls for the whole batch, not one per row.
        let mut prefetched = HashMap::new();
        if kb.is_some() {
            let ahead = pipeline::prefetch_embeddings(
                &self.router,
                plan,
                range.clone().filter(|i| !existing.contains_key(i)),
            )
            .await;
            let _ = self
                .queue
                .record_shared_calls(id, &ahead.calls, ahead.embed_ms)
                .await;
            prefetched = ahead.vectors;
        }
        let groups: Vec<Vec<usize>> = cached
            .groups
            .iter()
            .filter(|g| g.iter().any(|i| range.contains(i)))
            .map(|g| g.iter().copied().filter(|i| range.contains(i)).collect())
            .collect();
        // The cancel flag is watched once per batch, not once per row.
        let cancel = tokio_util::sync::CancellationToken::new();
        let _watch = self.watch_cancel(id, cancel.clone());
        let run = BatchRun {
            id,
            job,
            plan,
            ctx: PipelineContext {
                prefetched: Arc::new(prefetched),
                ..PipelineContext::new(self.router.clone(), self.answering.clone(), kb)
            },
            lock: job.token().map(str::to_string),
            existing,
            copies: &cached.copies,
            cancel,
            shutdown: token,
            handed_back: AtomicBool::new(false),
            written: AtomicUsize::new(0),
        };
        let result = futures_util::stream::iter(groups.into_iter().map(Ok))
            .try_for_each_concurrent(self.rows_in_flight, |group| self.group(&run, group))
            .await;
        if run.cancel.is_cancelled() {
            return Err(cancelled());
        }
        result?;
        if run.handed_back.load(Ordering::SeqCst) {
            // Shutdown: finished rows are checkpointed; hand the rest of the batch back to
            // the queue at once, without spending a retry or waiting for stall detection.
            if let Some(t) = &run.lock {
                job.move_to_wait(Some(t)).await?;
                tracing::info!(job = id, "batch handed back to the queue");
                return Err(bullmq::Error::Delayed);
            }
            return Err(bullmq::Error::ProcessingError(
                "worker shutting down".into(),
            ));
        }
        Ok(serde_json::json!({"rows_written": run.written.load(Ordering::SeqCst)}))
    }

    /// Polls job `id`'s cancel flag until the returned guard is dropped; cancels `token` when
    /// a cancel is requested.
    fn watch_cancel(
        &self,
        id: &str,
        token: tokio_util::sync::CancellationToken,
    ) -> tokio_util::sync::DropGuard {
        let queue = self.queue.clone();
        let id = id.to_string();
        let stop = tokio_util::sync::CancellationToken::new();
        let stopped = stop.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = stopped.cancelled() => return,
                    () = tokio::time::sleep(CANCEL_POLL) => {}
                }
                if queue.cancel_requested(&id).await.unwrap_or(false) {
                    token.cancel();
                    return;
                }
            }
        });
        stop.drop_guard()
    }

    /// Answers one group's rows in order (a dependent row sees its parent's answer).
    async fn group(&self, run: &BatchRun<'_>, group: Vec<usize>) -> Result<(), bullmq::Error> {
        let mut done: HashMap<usize, RowOutcome> = HashMap::new();
        for index in group {
            if run.shutdown.is_cancelled() {
                run.handed_back.store(true, Ordering::SeqCst);
                return Ok(());
            }
            if run.cancel.is_cancelled() {
                return Err(cancelled());
            }
            let row = &run.plan.rows[index];
            let span = tracing::info_span!(
                "row",
                job = run.id,
                row = index,
                cell = %format!("{}!{}", row.question.sheet, row.question.row),
                task = "answer",
                model = tracing::field::Empty,
            );
            let outcome = self.row(run, index, &done).instrument(span).await?;
            // Fan the answer out to every copy of a repeated question, each with its own place.
            if let Some(copies) = run.copies.get(&index) {
                self.fence(run.job, &run.lock, index).await?;
                for &c in copies {
                    let mut copy = pipeline::copy_outcome(run.plan, c, &outcome);
                    copy.worker = Some(self.id.clone());
                    if self.commit(run.id, c, &copy).await? {
                        run.written.fetch_add(1, Ordering::SeqCst);
                    }
                }
            }
            done.insert(index, outcome);
        }
        Ok(())
    }

    /// One row: its earlier checkpoint, or a fresh answer checkpointed under the job lock.
    async fn row(
        &self,
        run: &BatchRun<'_>,
        index: usize,
        done: &HashMap<usize, RowOutcome>,
    ) -> Result<RowOutcome, bullmq::Error> {
        if let Some(o) = run.existing.get(&index) {
            // Answered by an earlier run of this batch; its copies may still be missing.
            return Ok(o.clone());
        }
        let parent = match run.plan.parent_key(index) {
            Some(p) => match done.get(&p).or_else(|| run.existing.get(&p)) {
                Some(o) => Some(o.clone()),
                None => self.queue.row(run.id, p).await.map_err(retry)?,
            },
            None => None,
        };
        let started = std::time::Instant::now();
        // A cancel drops the row in flight (and its LLM request) at once.
        let mut outcome = tokio::select! {
            o = pipeline::answer_planned(&run.ctx, run.plan, index, parent.as_ref()) => o,
            () = run.cancel.cancelled() => return Err(cancelled()),
        };
        outcome.worker = Some(self.id.clone());
        tracing::Span::current().record("model", outcome.model.as_str());
        self.fence(run.job, &run.lock, index).await?;
        if self.commit(run.id, index, &outcome).await? {
            run.written.fetch_add(1, Ordering::SeqCst);
        }
        tracing::info!(
            status = outcome.status.label(),
            confidence = outcome.confidence,
            llm_calls = outcome.calls.llm_calls(),
            ms = started.elapsed().as_millis() as u64,
            "row done"
        );
        Ok(outcome)
    }

    /// Writes row `index`'s checkpoint (false: it was already written) and counts it in the
    /// row metrics. Callers fence with the job lock first where a batch could be taken over.
    async fn commit(
        &self,
        id: &str,
        index: usize,
        outcome: &RowOutcome,
    ) -> Result<bool, bullmq::Error> {
        let written = self
            .queue
            .checkpoint(id, index, outcome)
            .await
            .map_err(retry)?;
        if written {
            crate::metrics::row_written(outcome);
        }
        Ok(written)
    }

    /// Only the holder of the job lock may write: extends it, or stops the batch.
    async fn fence(
        &self,
        job: &Job,
        lock: &Option<String>,
        index: usize,
    ) -> Result<(), bullmq::Error> {
        if let Some(t) = lock {
            let extended = job.extend_lock(t, self.lock_ms).await;
            crate::metrics::lock_renewal(extended.is_ok());
            extended.map_err(|e| {
                bullmq::Error::ProcessingError(format!(
                    "lost the job lock, not writing row {index}: {e}"
                ))
            })?;
        }
        Ok(())
    }

    async fn assemble(&self, job: &Job) -> Result<serde_json::Value, bullmq::Error> {
        let id = job
            .data()
            .get("job")
            .and_then(|j| j.as_str())
            .ok_or_else(|| fail("assemble job without 'job'"))?;
        let plan = self.queue.plan(id).await.map_err(no_plan)?;
        let mut rows = self.queue.rows(id).await.map_err(retry)?;
        let failures: Vec<String> = job
            .get_ignored_children_failures()
            .await
            .unwrap_or_default()
            .into_values()
            .map(|why| {
                if why.contains("stalled more than allowable limit") {
                    format!(
                        "poison batch: it stalled or crashed its worker more than {} time(s), \
                         so it was not run again ({why})",
                        self.max_stalls
                    )
                } else {
                    why
                }
            })
            .collect();
        let mut outcomes: Vec<Option<RowOutcome>> =
            (0..plan.rows.len()).map(|i| rows.remove(&i)).collect();
        // A copy whose first copy was answered but not fanned out (its batch crashed between
        // the two writes) takes the answer now.
        for (i, row) in plan.rows.iter().enumerate() {
            if outcomes[i].is_none()
                && let Some(same) = &row.same_as
                && let Some(first) = &outcomes[same.index]
            {
                let copy = pipeline::copy_outcome(&plan, i, first);
                self.commit(id, i, &copy).await?;
                outcomes[i] = Some(copy);
            }
        }
        // Rows no batch answered become failed rows, checkpointed like any other, so the
        // counters add up to the plan (`rfpq retry` runs them again). After a cancel they
        // stay unanswered: they were not done, and did not fail.
        let cancel = self.queue.cancel_requested(id).await.map_err(retry)?;
        let mut all = Vec::with_capacity(outcomes.len());
        for (i, (o, row)) in outcomes.into_iter().zip(&plan.rows).enumerate() {
            let o = match o {
                Some(o) => o,
                None => {
                    let why = failures
                        .first()
                        .cloned()
                        .unwrap_or_else(|| "row was never answered".into());
                    let o = RowOutcome::unanswered(&row.question, format!("batch failed: {why}"));
                    if !cancel {
                        self.commit(id, i, &o).await?;
                    }
                    o
                }
            };
            all.push(o);
        }
        let outcomes = all;
        let original = self.queue.file(id).await.map_err(|e| fail(e.to_string()))?;
        let failed = outcomes
            .iter()
            .filter(|o| o.status == RowStatus::Failed)
            .count();
        let total = outcomes.len();
        // The job report as it stands, for the review workbook's Summary sheet.
        let summary = self
            .queue
            .status(id)
            .await
            .map_err(retry)?
            .report
            .fill_summary();
        let assembled = tokio::task::spawn_blocking(move || {
            pipeline::assemble_with(&original, &outcomes, &summary)
        })
        .await
        .map_err(|e| fail(format!("assembly crashed: {e}")))?;
        let assembled =
            assembled.map_err(|e| fail(format!("could not write the filled workbook: {e}")))?;
        let _ = self
            .queue
            .record_time(id, crate::queue::Stage::Workbook, assembled.elapsed)
            .await;
        self.queue
            .store_results(id, &assembled.filled, &assembled.review)
            .await
            .map_err(retry)?;
        let (phase, reason) = if cancel {
            let answered = total - failed;
            (
                JobPhase::Cancelled,
                Some(format!(
                    "cancelled by user; {answered} of {} rows were done before the cancel \
                     (see the partial result)",
                    total
                )),
            )
        } else if failed == 0 {
            (JobPhase::Completed, None)
        } else if failed == total {
            (
                JobPhase::Failed,
                Some(format!(
                    "every row failed: {}",
                    failures
                        .first()
                        .cloned()
                        .unwrap_or_else(|| "see the review workbook".into())
                )),
            )
        } else {
            (
                JobPhase::CompletedWithErrors,
                Some(format!("{failed} row(s) failed; see the review workbook")),
            )
        };
        self.queue
            .set_phase(id, phase, reason.as_deref())
            .await
            .map_err(retry)?;
        tracing::info!(job = id, state = phase.as_str(), "assembled");
        Ok(serde_json::json!({"failed_rows": failed}))
    }
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

/// This process's resident memory, bytes (0 when it cannot be read).
fn rss_bytes(sys: &mut Option<sysinfo::System>) -> u64 {
    let (Some(sys), Ok(pid)) = (sys.as_mut(), sysinfo::get_current_pid()) else {
        return 0;
    };
    sys.refresh_processes(sysinfo::ProcessesToUpdate::Some(&[pid]), false);
    sys.process(pid).map_or(0, |p| p.memory())
}

/// Beats every `HEARTBEAT`: the worker's registry entry (`rfpq workers`) and, in each of its
/// jobs, `last_beat_ms` (`rfpq status`). Runs on the async runtime; CPU work never does.
fn spawn_heartbeat(
    shared: Arc<Shared>,
    id: String,
    concurrency: usize,
) -> tokio::task::JoinHandle<()> {
    let host = sysinfo::System::host_name().unwrap_or_else(|_| "unknown".into());
    let started_ms = crate::queue::now_ms();
    tokio::spawn(async move {
        let mut sys = sysinfo::System::new().ok();
        let mut last_sweep = std::time::Instant::now();
        loop {
            let active_jobs: Vec<String> = {
                let a = shared.active.lock().unwrap_or_else(|p| p.into_inner());
                let mut jobs: Vec<String> = a.keys().filter(|k| !k.is_empty()).cloned().collect();
                jobs.sort();
                jobs
            };
            let info = WorkerInfo {
                id: id.clone(),
                host: host.clone(),
                pid: std::process::id(),
                concurrency,
                active_jobs,
                started_ms,
                last_beat_ms: crate::queue::now_ms(),
                rss_bytes: rss_bytes(&mut sys),
                version: env!("CARGO_PKG_VERSION").into(),
            };
            if let Err(e) = shared.queue.heartbeat(&info).await {
                tracing::warn!(error = %e, "heartbeat failed");
            }
            if last_sweep.elapsed() >= SWEEP_EVERY {
                last_sweep = std::time::Instant::now();
                if let Err(e) = shared.queue.sweep_stuck_parents(STUCK_AFTER).await {
                    tracing::warn!(error = %e, "sweeping stuck parents failed");
                }
            }
            tokio::time::sleep(HEARTBEAT).await;
        }
    })
}

/// Loads the models this worker will call before the first batch needs them: each Ollama
/// model that is the first choice of the classify or answer task (with its `num_ctx` and
/// `keep_alive`), and the embedding model (one tiny embedding). Runs in the background;
/// a failure is logged and changes nothing (the first real call then pays the load).
fn spawn_warm_up(router: Arc<Router>) -> tokio::task::JoinHandle<()> {
    use crate::router::config::{ProviderKind, Task};
    tokio::spawn(async move {
        let cfg = router.config();
        let mut chat: Vec<crate::router::config::Target> = Vec::new();
        for task in [Task::Answer, Task::Classify] {
            if let Some(t) = cfg.targets(task).into_iter().next()
                && cfg
                    .provider(&t.provider)
                    .is_some_and(|p| p.kind == ProviderKind::Ollama)
                && !chat.contains(&t)
            {
                chat.push(t);
            }
        }
        for t in chat {
            match crate::router::admin::warm(cfg, &t, WARM_UP_TIMEOUT).await {
                Ok(_) => tracing::info!(target = %t, "model warmed up"),
                Err(e) => tracing::warn!(target = %t, error = %e, "model warm-up failed"),
            }
        }
        match router.embed(&["warm-up".to_string()]).await {
            Ok((_, record)) => tracing::info!(
                target = %format!("{}:{}", record.provider, record.model),
                ms = record.latency_ms,
                "embedding model warmed up"
            ),
            Err(e) => tracing::warn!(error = %e, "embedding model warm-up failed"),
        }
    })
}

/// How long a warm-up load may take (a cold 7B model from disk takes seconds to a minute).
const WARM_UP_TIMEOUT: Duration = Duration::from_secs(120);

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
