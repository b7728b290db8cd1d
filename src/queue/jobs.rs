//! A job's life in the queue: submit (workbook bytes, meta and the `plan` job), the user-visible
//! phase, cancel and retry (each one Lua script, so atomic), the batch flow (an `assemble` parent
//! over row `batch` children) and the stored results. Does not checkpoint rows (`rows`) or
//! compute the status (`report`).

use super::rows::usage_counters;
use super::*;
use crate::pipeline::Plan;
use crate::workbook::SourceFormat;
use bullmq::types::BackoffStrategy;
use bullmq::{FlowJob, JobOptions};
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};
use std::sync::LazyLock;

/// Data of a `batch` job: row indexes `[start, end)` of the job's plan.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BatchSpec {
    pub job: String,
    pub start: usize,
    pub end: usize,
}

/// Why a job cannot be retried.
#[derive(Debug, thiserror::Error)]
pub enum RetryError {
    #[error("the job is still {0}; retry it once it has finished (or cancel it first)")]
    NotFinished(String),
    #[error("the job failed before its rows were planned (see its reason); submit the file again")]
    NeverPlanned,
    #[error("every row of the job is answered; there is nothing to retry")]
    NothingFailed,
    #[error(transparent)]
    Queue(#[from] QueueError),
}

impl From<redis::RedisError> for RetryError {
    fn from(e: redis::RedisError) -> Self {
        RetryError::Queue(e.into())
    }
}

impl From<bullmq::Error> for RetryError {
    fn from(e: bullmq::Error) -> Self {
        RetryError::Queue(e.into())
    }
}

/// Drops the checkpoints of failed rows and reopens the job: KEYS = rows hash, meta hash,
/// redo set, errors list. Returns {rows dropped, retry round}. The dropped rows stay counted
/// as done (progress never goes backwards): they go into the redo set, so their new
/// checkpoint is not counted twice; they no longer count as failed.
static RETRY_SCRIPT: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
local dropped = 0
local rows = redis.call('HGETALL', KEYS[1])
for i = 1, #rows, 2 do
  local ok, row = pcall(cjson.decode, rows[i + 1])
  if ok and row['status'] == 'failed' then
    redis.call('HDEL', KEYS[1], rows[i])
    redis.call('SADD', KEYS[3], rows[i])
    dropped = dropped + 1
  end
end
redis.call('EXPIRE', KEYS[3], 604800)
redis.call('DEL', KEYS[4])
redis.call('HINCRBY', KEYS[2], 'rows_failed', -dropped)
redis.call('HDEL', KEYS[2], 'cancel_requested', 'reason', 'finished_ms')
redis.call('HSET', KEYS[2], 'state', 'running')
local round = redis.call('HINCRBY', KEYS[2], 'retry_round', 1)
return {dropped, round}",
    )
});

/// What `cancel` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CancelOutcome {
    /// The job was still queued: it is cancelled and no worker will plan it.
    Cancelled,
    /// The job is running: its workers stop at their next check (within about a second).
    Requested,
    /// The job had already ended in this state.
    AlreadyFinal(JobPhase),
}

/// Sets `state` (+ `reason`, + `finished_ms` when given) unless the job is cancelled:
/// KEYS = meta; ARGV = state, reason (may be empty), finished_ms (may be empty).
static SET_PHASE_SCRIPT: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
if redis.call('HGET', KEYS[1], 'state') == 'cancelled' then return 0 end
redis.call('HSET', KEYS[1], 'state', ARGV[1])
if ARGV[2] ~= '' then redis.call('HSET', KEYS[1], 'reason', ARGV[2]) end
if ARGV[3] ~= '' then redis.call('HSET', KEYS[1], 'finished_ms', ARGV[3]) end
return 1",
    )
});

/// Cancels atomically: KEYS = meta; ARGV = now ms. Returns `unknown`, `final:<state>`,
/// `cancelled` (was queued: now final) or `requested` (running: workers stop).
static CANCEL_SCRIPT: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return 'unknown' end
if state == 'completed' or state == 'completed_with_errors' or state == 'failed'
  or state == 'cancelled' then return 'final:' .. state end
redis.call('HSET', KEYS[1], 'cancel_requested', ARGV[1])
if state == 'queued' then
  redis.call('HSET', KEYS[1], 'state', 'cancelled', 'reason', 'cancelled before it started',
    'finished_ms', ARGV[1])
  return 'cancelled'
end
return 'requested'",
    )
});

/// What a submission carries besides the file: its format and warnings (from loading it) and
/// the job's own `write_drafts` (`None`: the answering worker's config decides).
#[derive(Debug, Clone, Default)]
pub struct SubmitExtras {
    pub format: SourceFormat,
    pub warnings: Vec<String>,
    pub write_drafts: Option<crate::pipeline::config::WriteDrafts>,
}

impl RfpQueue {
    /// Stores the workbook and enqueues its `plan` job. The caller validates the file first;
    /// a file that fails in the worker ends `failed` with the reason.
    pub async fn submit(
        &self,
        file_name: &str,
        bytes: &[u8],
        kb: Option<&KbRef>,
        batch_size: usize,
    ) -> Result<String, QueueError> {
        self.submit_loaded(file_name, bytes, kb, batch_size, &SubmitExtras::default())
            .await
    }

    /// [`Self::submit`] for a workbook already loaded by [`crate::workbook::load`]: `bytes` is
    /// the package to patch; `extras` the submitted file's format, what the user must be told
    /// about it (shown by `status`) and the job's own `write_drafts`.
    pub async fn submit_loaded(
        &self,
        file_name: &str,
        bytes: &[u8],
        kb: Option<&KbRef>,
        batch_size: usize,
        extras: &SubmitExtras,
    ) -> Result<String, QueueError> {
        let (format, warnings) = (extras.format, &extras.warnings);
        let id = uuid::Uuid::now_v7().to_string();
        let mut conn = self.conn.clone();
        let ttl = RETENTION.as_secs();
        let meta = self.key(&id, "meta");
        let mut fields: Vec<(&str, String)> = vec![
            ("state", JobPhase::Queued.as_str().into()),
            ("file_name", file_name.into()),
            ("created_ms", now_ms().to_string()),
            ("batch_size", batch_size.max(1).to_string()),
            ("rows_total", "0".into()),
            ("rows_done", "0".into()),
        ];
        if let Some(kb) = kb {
            fields.push(("kb", kb.name.clone()));
            fields.push(("kb_version", kb.version.clone()));
        }
        fields.push(("source_format", format.as_str().into()));
        if let Some(w) = extras.write_drafts {
            fields.push(("write_drafts", w.as_str().into()));
        }
        if !warnings.is_empty() {
            fields.push((
                "warnings",
                serde_json::to_string(warnings).unwrap_or_default(),
            ));
        }
        redis::pipe()
            .atomic()
            .set_ex(self.key(&id, "file"), bytes, ttl)
            .hset_multiple(&meta, &fields)
            .expire(&meta, ttl as i64)
            .exec_async(&mut conn)
            .await?;
        self.bull
            .add(JOB_PLAN, serde_json::json!({"job": id}))
            .options(
                JobOptions::new()
                    .job_id(format!("{id}-plan"))
                    .attempts(3)
                    .backoff(BackoffStrategy::Exponential(2000))
                    .remove_on_complete(Self::keep())
                    .remove_on_fail(Self::keep()),
            )
            .await?;
        Ok(id)
    }

    /// Replaces a job's stored workbook by the .xlsx rebuilt from it (a producer queued an
    /// .xls/.ods as is) and records the format and warnings.
    pub async fn replace_file(
        &self,
        id: &str,
        bytes: &[u8],
        format: SourceFormat,
        warnings: &[String],
    ) -> Result<(), QueueError> {
        let mut conn = self.conn.clone();
        redis::pipe()
            .atomic()
            .set_ex(self.key(id, "file"), bytes, RETENTION.as_secs())
            .hset(self.key(id, "meta"), "source_format", format.as_str())
            .hset(
                self.key(id, "meta"),
                "warnings",
                serde_json::to_string(warnings).unwrap_or_default(),
            )
            .exec_async(&mut conn)
            .await?;
        Ok(())
    }

    /// Sets the user-visible state (and reason). A cancelled job stays cancelled: a worker that
    /// finishes a step after the cancel cannot move it back to running or completed.
    pub async fn set_phase(
        &self,
        id: &str,
        phase: JobPhase,
        reason: Option<&str>,
    ) -> Result<(), QueueError> {
        let mut script = SET_PHASE_SCRIPT.key(self.key(id, "meta"));
        script
            .arg(phase.as_str())
            .arg(reason.unwrap_or_default())
            .arg(if phase.is_final() {
                now_ms().to_string()
            } else {
                String::new()
            });
        let _: i64 = script.invoke_async(&mut self.conn.clone()).await?;
        Ok(())
    }

    /// Cancels a job from any process. A queued job is cancelled at once (its plan job is
    /// removed, and a worker that already took it stops at its first check); a running job is
    /// flagged, and its workers stop before the next row or LLM call, dropping calls in flight.
    pub async fn cancel(&self, id: &str) -> Result<CancelOutcome, QueueError> {
        let mut script = CANCEL_SCRIPT.key(self.key(id, "meta"));
        script.arg(now_ms().to_string());
        let answer: String = script.invoke_async(&mut self.conn.clone()).await?;
        match answer.as_str() {
            "unknown" => Err(QueueError::UnknownJob(id.into())),
            "cancelled" => {
                // Best effort: a plan job a worker holds cannot be removed, but that worker
                // sees the flag before it plans.
                let _ = self.bull.remove(&format!("{id}-plan")).await;
                Ok(CancelOutcome::Cancelled)
            }
            "requested" => Ok(CancelOutcome::Requested),
            other => Ok(CancelOutcome::AlreadyFinal(
                other
                    .strip_prefix("final:")
                    .and_then(JobPhase::parse)
                    .unwrap_or(JobPhase::Failed),
            )),
        }
    }

    /// Whether a cancel was requested for the job.
    pub async fn cancel_requested(&self, id: &str) -> Result<bool, QueueError> {
        let v: Option<String> = self
            .conn
            .clone()
            .hget(self.key(id, "meta"), "cancel_requested")
            .await?;
        Ok(v.is_some())
    }

    /// Stores the job's plan and enqueues the batch flow: a parent `assemble` job whose
    /// children are row batches (a failed batch does not strand the parent).
    pub async fn start_batches(&self, id: &str, plan: &Plan) -> Result<usize, QueueError> {
        let meta = self.meta(id).await?;
        let batch_size: usize = meta
            .get("batch_size")
            .and_then(|b| b.parse().ok())
            .unwrap_or(10)
            .max(1);
        let bytes =
            serde_json::to_vec(plan).map_err(|e| QueueError::Damaged(id.into(), e.to_string()))?;
        let calls = &plan.calls;
        let mut fields: Vec<(String, u64)> = [
            ("rows_total", plan.rows.len() as u64),
            ("questions", plan.question_count() as u64),
            ("classify_calls", u64::from(calls.classify)),
            ("plan_embed_calls", u64::from(calls.embed)),
            ("plan_prompt_tokens", calls.prompt_tokens),
            ("plan_eval_tokens", calls.eval_tokens),
            ("plan_fallbacks", u64::from(calls.fallbacks)),
        ]
        .map(|(k, v)| (k.to_string(), v))
        .into();
        fields.extend(usage_counters("plan_", calls));
        let mut conn = self.conn.clone();
        let mut pipe = redis::pipe();
        pipe.atomic()
            .set_ex(self.key(id, "plan"), bytes, RETENTION.as_secs())
            .hset_multiple(self.key(id, "meta"), &fields);
        if let Some(hash) = &plan.config_hash {
            pipe.hset(self.key(id, "meta"), "config_hash", hash);
        }
        pipe.hset(
            self.key(id, "meta"),
            PLAN_VERSION,
            uuid::Uuid::new_v4().simple().to_string(),
        )
        .exec_async(&mut conn)
        .await?;
        self.enqueue_flow(id, plan, batch_size, "").await
    }

    /// The flow of batches + assemble for `plan`; `round` tells retries' job ids apart
    /// (BullMQ keeps a finished job's id, so a retry needs new ones).
    async fn enqueue_flow(
        &self,
        id: &str,
        plan: &Plan,
        batch_size: usize,
        round: &str,
    ) -> Result<usize, QueueError> {
        let child_opts = |n: usize| {
            JobOptions::new()
                .job_id(format!("{id}{round}-batch-{n}"))
                .attempts(3)
                .backoff(BackoffStrategy::Exponential(2000))
                .ignore_dependency_on_failure()
                .remove_on_complete(Self::keep())
                .remove_on_fail(Self::keep())
        };
        let mut parent = FlowJob::new(JOB_ASSEMBLE, QUEUE_NAME, serde_json::json!({"job": id}))?
            .options(
                JobOptions::new()
                    .job_id(format!("{id}{round}-assemble"))
                    .attempts(3)
                    .remove_on_complete(Self::keep())
                    .remove_on_fail(Self::keep()),
            );
        let mut batches = 0;
        for (n, (start, end)) in plan.batch_ranges(batch_size).into_iter().enumerate() {
            let spec = BatchSpec {
                job: id.into(),
                start,
                end,
            };
            parent =
                parent.add_child(FlowJob::new(JOB_BATCH, QUEUE_NAME, spec)?.options(child_opts(n)));
            batches += 1;
        }
        self.flows.add(parent).await?;
        Ok(batches)
    }

    /// Re-runs only the failed rows of a finished job (`completed_with_errors`, `cancelled`,
    /// or `failed` after planning): their checkpoints are dropped, the job is running again,
    /// and a new flow's batches answer every row without a checkpoint. Returns how many rows
    /// will be answered again.
    pub async fn retry(&self, id: &str) -> Result<usize, RetryError> {
        let meta = self.meta(id).await?;
        let state = meta.get("state").and_then(|s| JobPhase::parse(s));
        if !state.is_some_and(JobPhase::is_final) {
            return Err(RetryError::NotFinished(
                state.map_or("unknown", JobPhase::as_str).into(),
            ));
        }
        let plan = match self.plan(id).await {
            Ok(p) => p,
            Err(QueueError::UnknownJob(_)) => return Err(RetryError::NeverPlanned),
            Err(e) => return Err(e.into()),
        };
        let done = self.rows(id).await?;
        let missing = (0..plan.rows.len())
            .filter(|i| {
                done.get(i)
                    .is_none_or(|o| o.status == crate::pipeline::RowStatus::Failed)
            })
            .count();
        if missing == 0 {
            return Err(RetryError::NothingFailed);
        }
        let mut script = RETRY_SCRIPT.key(self.key(id, "rows"));
        script
            .key(self.key(id, "meta"))
            .key(self.key(id, "redo"))
            .key(self.key(id, "errors"));
        let (dropped, round): (i64, i64) = script.invoke_async(&mut self.conn.clone()).await?;
        let batch_size: usize = meta
            .get("batch_size")
            .and_then(|b| b.parse().ok())
            .unwrap_or(10)
            .max(1);
        self.enqueue_flow(id, &plan, batch_size, &format!("-r{round}"))
            .await?;
        tracing::info!(job = id, dropped, missing, round, "retrying failed rows");
        Ok(missing)
    }

    /// BullMQ state of batch `n` of job `id` (`waiting`, `active`, `completed`, …).
    pub async fn batch_state(&self, id: &str, n: usize) -> Result<String, QueueError> {
        let state = self.bull.get_job_state(&format!("{id}-batch-{n}")).await?;
        Ok(format!("{state:?}").to_lowercase())
    }

    pub async fn store_results(
        &self,
        id: &str,
        filled: &[u8],
        review: &[u8],
    ) -> Result<(), QueueError> {
        let ttl = RETENTION.as_secs();
        let mut conn = self.conn.clone();
        redis::pipe()
            .atomic()
            .set_ex(self.key(id, "result"), filled, ttl)
            .set_ex(self.key(id, "review"), review, ttl)
            .exec_async(&mut conn)
            .await?;
        Ok(())
    }

    /// The filled workbook (`review = false`) or the review workbook, once the job finished.
    pub async fn result(&self, id: &str, review: bool) -> Result<Option<Vec<u8>>, QueueError> {
        self.meta(id).await?;
        Ok(self
            .conn
            .clone()
            .get(self.key(id, if review { "review" } else { "result" }))
            .await?)
    }
}
