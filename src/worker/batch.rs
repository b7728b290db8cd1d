//! The `batch` step: answers a range of rows, groups concurrently (a question with the
//! questions that depend on it, in order), each row checkpointed as soon as it is answered and
//! only after the job lock was extended; copies of a repeated question get its answer. Watches
//! the job's cancel flag. Does not plan or assemble.

use super::{Shared, cancelled, fail, retry};
use crate::pipeline::{self, PipelineContext, Plan, RowOutcome};
use crate::queue::BatchSpec;
use bullmq::Job;
use bullmq::worker::CancellationToken;
use futures_util::TryStreamExt;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;
use tracing::Instrument;

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

/// How often a running batch looks at the job's cancel flag while a row is in flight.
const CANCEL_POLL: Duration = Duration::from_millis(500);

impl Shared {
    /// Answers a batch's rows: groups (a question and the questions that depend on it, in
    /// order) run concurrently, up to `rows_in_flight` at once, so one batch can keep every
    /// slot of the backend busy. Each row is checkpointed as soon as it is answered, fenced by
    /// the job lock.
    pub(super) async fn batch(
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
    pub(super) fn watch_cancel(
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
    pub(super) async fn commit(
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
            crate::metrics::row_written(outcome.status.metric_label());
        }
        Ok(written)
    }

    /// Only the holder of the job lock may write: extends it, or stops the batch.
    pub(super) async fn fence(
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
}
