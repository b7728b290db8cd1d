//! The queue boundary: BullMQ (`bullmq-official`, pinned) for job state, plus rfpq's own keys
//! for workbook bytes, the detected plan, per-row checkpoints and results — all under one
//! hash-tagged prefix so Redis Cluster keeps them in one slot — and the published knowledge-base
//! snapshots workers fetch (`kb:*`). Nothing else talks to Redis.

use crate::pipeline::{CallTally, FillSummary, ModelUsage, Plan, RowOutcome, TimeSplit};
use crate::workbook::SourceFormat;
use bullmq::options::RedisConnectionOptions;
use bullmq::types::{BackoffStrategy, KeepJobs, RemoveOnFinish};
use bullmq::{FlowJob, FlowProducer, FlowProducerOptions, JobOptions, Queue, QueueOptions};
use redis::AsyncCommands;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

/// BullMQ queue name every rfpq job lives in.
pub const QUEUE_NAME: &str = "rfpq";
/// Job names (the worker dispatches on them).
pub const JOB_PLAN: &str = "plan";
pub const JOB_BATCH: &str = "batch";
pub const JOB_ASSEMBLE: &str = "assemble";
/// How long a job's files, checkpoints and status are kept (7 days).
pub const RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);
/// Size of the pieces a published KB snapshot file is stored in.
pub const KB_PIECE_BYTES: usize = 8 * 1024 * 1024;

/// Where the queue lives.
#[derive(Debug, Clone)]
pub struct QueueConfig {
    pub redis_url: String,
    /// Key prefix, hash-tagged (`{rfpq}`) so every key of every job shares one cluster slot.
    pub prefix: String,
}

impl QueueConfig {
    pub fn new(redis_url: impl Into<String>, prefix: impl Into<String>) -> Self {
        Self {
            redis_url: redis_url.into(),
            prefix: prefix.into(),
        }
    }

    pub(crate) fn connection(&self) -> RedisConnectionOptions {
        RedisConnectionOptions::new().url(self.redis_url.clone())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("cannot reach Redis at {url}: {message}")]
    Unreachable { url: String, message: String },
    #[error(
        "invalid queue prefix '{0}': it must be non-empty and contain no ':' (use a hash tag like {{rfpq}})"
    )]
    BadPrefix(String),
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("queue: {0}")]
    Bull(#[from] bullmq::Error),
    #[error("no job '{0}' (unknown id, or older than the 7-day retention)")]
    UnknownJob(String),
    #[error("stored data for job {0} is damaged: {1}")]
    Damaged(String, String),
}

/// Lifecycle of a workbook job as users see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobPhase {
    Queued,
    Running,
    Completed,
    CompletedWithErrors,
    Failed,
    Cancelled,
}

impl JobPhase {
    pub fn as_str(self) -> &'static str {
        match self {
            JobPhase::Queued => "queued",
            JobPhase::Running => "running",
            JobPhase::Completed => "completed",
            JobPhase::CompletedWithErrors => "completed_with_errors",
            JobPhase::Failed => "failed",
            JobPhase::Cancelled => "cancelled",
        }
    }
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "queued" => JobPhase::Queued,
            "running" => JobPhase::Running,
            "completed" => JobPhase::Completed,
            "completed_with_errors" => JobPhase::CompletedWithErrors,
            "failed" => JobPhase::Failed,
            "cancelled" => JobPhase::Cancelled,
            _ => return None,
        })
    }
    pub fn is_final(self) -> bool {
        matches!(
            self,
            JobPhase::Completed
                | JobPhase::CompletedWithErrors
                | JobPhase::Failed
                | JobPhase::Cancelled
        )
    }
}

/// The knowledge base a job uses: what the user named (a path or a published name) and the
/// snapshot version pinned at submit time (workers fetch exactly that version).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KbRef {
    pub name: String,
    pub version: String,
}

/// What `rfpq status` shows.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobStatus {
    pub id: String,
    pub state: JobPhase,
    pub file_name: String,
    pub rows_total: u64,
    pub rows_done: u64,
    pub rows_failed: u64,
    pub needs_review: u64,
    pub reason: Option<String>,
    pub kb: Option<String>,
    /// The KB snapshot version the job uses.
    pub kb_version: Option<String>,
    /// The hash of the configuration the job was planned with (`pipeline::config::config_hash`).
    /// With `kb_version` it names everything its answers depend on besides the workbook.
    #[serde(default)]
    pub config_hash: Option<String>,
    /// Rows answered per router configuration hash (failed rows and copies of a repeated
    /// question not counted). More than one key: workers with different configurations
    /// answered this job.
    #[serde(default)]
    pub config_hashes: BTreeMap<String, u64>,
    /// Format of the submitted file (`xlsx`, `xlsm`, `xls`, `ods`).
    pub source_format: String,
    pub warnings: Vec<String>,
    pub created_ms: u64,
    pub finished_ms: Option<u64>,
    /// Seconds left at the throughput of the last rows committed (`None` until two rows are
    /// done, and once the job is final).
    pub eta_s: Option<f64>,
    /// When a worker last reported this job alive (its heartbeat, every few seconds).
    pub last_heartbeat_ms: Option<u64>,
    /// A cancel was requested (the job stops at its workers' next check).
    pub cancel_requested: bool,
    /// Rows answered per model (`provider:model`, or `library`).
    pub models: BTreeMap<String, u64>,
    /// The latest failed rows, oldest first ("Sheet!row: reason"; at most 20).
    pub errors: Vec<String>,
    /// What the pipeline did so far.
    pub report: JobReport,
}

impl JobStatus {
    /// The submitted file's format (`xlsx` when unknown).
    pub fn format(&self) -> SourceFormat {
        SourceFormat::parse(&self.source_format).unwrap_or_default()
    }

    /// The status as `rfpq status --json` and `GET /jobs/{id}` show it (`state` as its name).
    pub fn to_json(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(self).unwrap_or_default();
        v["state"] = serde_json::json!(self.state.as_str());
        v
    }
}

/// The pipeline's counts for a job (`rfpq status --json` → `report`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct JobReport {
    /// Rows classified as questions.
    pub questions: u64,
    /// Answered without a flag (library and high bands).
    pub answered: u64,
    /// Rows whose answer was written into the customer's file.
    #[serde(default)]
    pub written: u64,
    /// Rows with a draft in the review workbook only (not written, not abstained).
    #[serde(default)]
    pub drafted: u64,
    pub library_matches: u64,
    pub needs_review: u64,
    /// Left unanswered for lack of evidence (also counted in `needs_review`).
    pub abstained: u64,
    pub not_applicable: u64,
    /// Repeated questions that took the answer of their first copy.
    pub copies: u64,
    /// LLM generation calls by task (plan-time classification included).
    pub llm_calls: BTreeMap<String, u64>,
    pub llm_calls_total: u64,
    pub llm_calls_per_question: f64,
    pub embed_calls: u64,
    pub prompt_tokens: u64,
    pub eval_tokens: u64,
    /// From submission to the end (or to now, while running).
    pub duration_s: f64,
    /// Question rows that failed.
    #[serde(default)]
    pub failed: u64,
    /// Question rows finished (answered, needing review, not applicable or failed) per minute,
    /// from the first row's start to the job's end (or to now, while running); 0 until a row
    /// is done.
    #[serde(default)]
    pub questions_per_minute: f64,
    /// Successful calls and tokens per task and model (`provider:model`), planning included,
    /// sorted by task then model.
    #[serde(default)]
    pub calls_by_model: Vec<ModelUsage>,
    /// Successful calls answered by a fallback target, planning included.
    #[serde(default)]
    pub fallbacks: u64,
    /// Where the time went: `wall_s` is `duration_s`; `queue_s` is submission to planning plus
    /// planning's end to the first row's start; `llm_s`, `embed_s` and `retrieval_s` are
    /// summed over rows, which run concurrently, so they can exceed `wall_s`.
    #[serde(default)]
    pub time: TimeSplit,
}

impl JobReport {
    /// The report as the pipeline's summary, for the review workbook's Summary sheet.
    pub fn fill_summary(&self) -> FillSummary {
        let calls = CallTally {
            classify: self.llm_calls.get("classify").copied().unwrap_or(0) as u32,
            relevance: self.llm_calls.get("relevance").copied().unwrap_or(0) as u32,
            answer: self.llm_calls.get("answer").copied().unwrap_or(0) as u32,
            embed: self.embed_calls as u32,
            prompt_tokens: self.prompt_tokens,
            eval_tokens: self.eval_tokens,
            fallbacks: self.fallbacks as u32,
            by_model: self.calls_by_model.clone(),
            ..Default::default()
        };
        FillSummary {
            questions: self.questions as usize,
            answered: self.answered as usize,
            written: self.written as usize,
            drafted: self.drafted as usize,
            library_matches: self.library_matches as usize,
            needs_review: self.needs_review as usize,
            abstained: self.abstained as usize,
            not_applicable: self.not_applicable as usize,
            copies: self.copies as usize,
            failed: self.failed as usize,
            skipped: 0,
            llm_calls: calls.llm_calls(),
            calls,
            llm_calls_per_question: self.llm_calls_per_question,
            duration_s: self.duration_s,
            calls_by_model: self.calls_by_model.clone(),
            fallbacks: self.fallbacks,
            questions_per_minute: self.questions_per_minute,
            time: self.time,
        }
    }
}

/// The meta field naming the stored plan's version: a fresh id each time a plan is stored, so
/// a worker that cached a parsed plan knows from the meta it reads anyway whether the plan is
/// still the same, without fetching it again.
pub const PLAN_VERSION: &str = "plan_version";

/// Data of a `batch` job: row indexes `[start, end)` of the job's plan.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BatchSpec {
    pub job: String,
    pub start: usize,
    pub end: usize,
}

/// A worker entry older than this is dead (it beats every `HEARTBEAT`).
pub const WORKER_STALE: Duration = Duration::from_secs(30);
/// How often a worker reports itself and its jobs alive.
pub const HEARTBEAT: Duration = Duration::from_secs(5);

/// One worker process as `rfpq workers` lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerInfo {
    /// `host:pid:boot-id`, new at every start.
    pub id: String,
    pub host: String,
    pub pid: u32,
    pub concurrency: usize,
    /// Workbook jobs it is working on.
    pub active_jobs: Vec<String>,
    pub started_ms: u64,
    pub last_beat_ms: u64,
    /// Resident memory, bytes.
    pub rss_bytes: u64,
    pub version: String,
}

/// Records a worker's beat and marks its jobs alive: KEYS = registry hash; ARGV = worker id,
/// worker JSON, now ms, then the meta keys of its jobs (only existing ones are touched).
static HEARTBEAT_SCRIPT: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
for i = 4, #ARGV do
  if redis.call('EXISTS', ARGV[i]) == 1 then
    redis.call('HSET', ARGV[i], 'last_beat_ms', ARGV[3])
  end
end
return 1",
    )
});

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

/// Rows whose commit times the ETA is computed from.
const ETA_WINDOW: usize = 20;

/// Writes a row checkpoint exactly once, counts it, notes its time for the ETA (and a failed
/// row's error) and keeps the keys for the retention, atomically: KEYS = rows hash, meta hash,
/// recent-commits list, redo set (rows a retry reopened: already counted as done), errors list;
/// ARGV = row index, outcome JSON, TTL s, now ms, window, error line (may be empty), the row's
/// start (Unix ms, 0 when not measured; the earliest becomes `first_row_ms`), then (counter,
/// increment) pairs.
static CHECKPOINT_SCRIPT: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 1 then
  redis.call('EXPIRE', KEYS[1], ARGV[3])
  if redis.call('SREM', KEYS[4], ARGV[1]) == 0 then
    redis.call('HINCRBY', KEYS[2], 'rows_done', 1)
  end
  redis.call('HSET', KEYS[2], 'last_row_ms', ARGV[4])
  redis.call('LPUSH', KEYS[3], ARGV[4])
  redis.call('LTRIM', KEYS[3], 0, tonumber(ARGV[5]) - 1)
  redis.call('EXPIRE', KEYS[3], ARGV[3])
  if ARGV[6] ~= '' then
    redis.call('LPUSH', KEYS[5], ARGV[6])
    redis.call('LTRIM', KEYS[5], 0, 19)
    redis.call('EXPIRE', KEYS[5], ARGV[3])
  end
  local started = tonumber(ARGV[7])
  if started and started > 0 then
    local first = tonumber(redis.call('HGET', KEYS[2], 'first_row_ms'))
    if not first or started < first then
      redis.call('HSET', KEYS[2], 'first_row_ms', ARGV[7])
    end
  end
  for i = 8, #ARGV - 1, 2 do
    redis.call('HINCRBY', KEYS[2], ARGV[i], ARGV[i + 1])
  end
  return 1
end
return 0",
    )
});

/// The per-model meta counters of `calls`: `{prefix}calls:<task>:<provider:model>`, with
/// `tok_in:` (prompt tokens) and `tok_out:` (generated tokens) alike. Zeros are left out.
fn usage_counters(prefix: &str, calls: &CallTally) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    for u in &calls.by_model {
        for (kind, n) in [
            ("calls", u.calls),
            ("tok_in", u.prompt_tokens),
            ("tok_out", u.eval_tokens),
        ] {
            if n > 0 {
                out.push((format!("{prefix}{kind}:{}:{}", u.task, u.model), n));
            }
        }
    }
    out
}

/// Reads the per-model counters back from a job's meta (row and plan-time ones added up),
/// sorted by task then model.
fn usage_from_meta(meta: &HashMap<String, String>) -> Vec<ModelUsage> {
    let mut usage: BTreeMap<(String, String), ModelUsage> = BTreeMap::new();
    for (key, value) in meta {
        let Ok(n) = value.parse::<u64>() else {
            continue;
        };
        let key = key.strip_prefix("plan_").unwrap_or(key);
        let Some((kind, rest)) = key.split_once(':') else {
            continue;
        };
        if !matches!(kind, "calls" | "tok_in" | "tok_out") {
            continue;
        }
        let Some((task, model)) = rest.split_once(':') else {
            continue;
        };
        let u = usage
            .entry((task.to_string(), model.to_string()))
            .or_insert_with(|| ModelUsage {
                task: task.into(),
                model: model.into(),
                ..Default::default()
            });
        match kind {
            "calls" => u.calls += n,
            "tok_in" => u.prompt_tokens += n,
            _ => u.eval_tokens += n,
        }
    }
    usage.into_values().collect()
}

/// Notes a moment once (`HSETNX`) in an existing job's meta: KEYS = meta; ARGV = field, value.
static MARK_SCRIPT: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
return redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2])",
    )
});

/// Adds to counters of an existing job's meta: KEYS = meta; ARGV = (field, increment) pairs.
static COUNT_SCRIPT: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
for i = 1, #ARGV - 1, 2 do
  redis.call('HINCRBY', KEYS[1], ARGV[i], ARGV[i + 1])
end
return 1",
    )
});

/// A part of a job's time a worker measures itself ([`RfpQueue::record_time`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Reading and detecting the workbook; writing the filled and review workbooks.
    Workbook,
    /// Planning, the workbook aside.
    Plan,
}

impl Stage {
    fn field(self) -> &'static str {
        match self {
            Stage::Workbook => "ms_workbook",
            Stage::Plan => "ms_plan",
        }
    }
}

/// A moment of a job's life ([`RfpQueue::mark`]); the first time it is reached is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Milestone {
    /// A worker started planning (`started_ms`).
    PlanStarted,
    /// Planning ended and the rows are about to be queued (`planned_ms`).
    Planned,
}

impl Milestone {
    fn field(self) -> &'static str {
        match self {
            Milestone::PlanStarted => "started_ms",
            Milestone::Planned => "planned_ms",
        }
    }
}

pub use crate::now_ms;

/// What a submission carries besides the file: its format and warnings (from loading it) and
/// the job's own `write_drafts` (`None`: the answering worker's config decides).
#[derive(Debug, Clone, Default)]
pub struct SubmitExtras {
    pub format: SourceFormat,
    pub warnings: Vec<String>,
    pub write_drafts: Option<crate::pipeline::config::WriteDrafts>,
}

/// Handle on the queue: producers and workers both use it. Cheap to clone.
#[derive(Clone)]
pub struct RfpQueue {
    cfg: QueueConfig,
    conn: ConnectionManager,
    bull: Arc<Queue>,
    flows: Arc<FlowProducer>,
}

impl RfpQueue {
    /// Connects (and checks Redis answers).
    pub async fn connect(cfg: QueueConfig) -> Result<Self, QueueError> {
        if cfg.prefix.is_empty() || cfg.prefix.contains(':') {
            return Err(QueueError::BadPrefix(cfg.prefix));
        }
        let unreachable = |e: redis::RedisError| QueueError::Unreachable {
            url: cfg.redis_url.clone(),
            message: e.to_string(),
        };
        let client = redis::Client::open(cfg.redis_url.as_str()).map_err(unreachable)?;
        let mcfg = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(3)))
            .set_response_timeout(Some(Duration::from_secs(10)))
            .set_number_of_retries(2);
        let conn = tokio::time::timeout(
            Duration::from_secs(5),
            client.get_connection_manager_with_config(mcfg),
        )
        .await
        .map_err(|_| QueueError::Unreachable {
            url: cfg.redis_url.clone(),
            message: "timed out".into(),
        })?
        .map_err(unreachable)?;
        let bull = Queue::with_options(
            QUEUE_NAME,
            QueueOptions::new()
                .connection(cfg.connection())
                .prefix(cfg.prefix.clone()),
        )
        .await?;
        let flows = FlowProducer::with_options(
            FlowProducerOptions::new()
                .connection(cfg.connection())
                .prefix(cfg.prefix.clone()),
        )
        .await?;
        Ok(Self {
            cfg,
            conn,
            bull: Arc::new(bull),
            flows: Arc::new(flows),
        })
    }

    pub fn config(&self) -> &QueueConfig {
        &self.cfg
    }

    fn key(&self, id: &str, part: &str) -> String {
        format!("{}:rfpq-job:{id}:{part}", self.cfg.prefix)
    }

    fn keep() -> RemoveOnFinish {
        RemoveOnFinish::Options(KeepJobs {
            age: Some(RETENTION.as_millis() as u64),
            count: None,
            limit: None,
        })
    }

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

    pub async fn file(&self, id: &str) -> Result<Vec<u8>, QueueError> {
        let bytes: Option<Vec<u8>> = self.conn.clone().get(self.key(id, "file")).await?;
        bytes.ok_or_else(|| QueueError::UnknownJob(id.into()))
    }

    pub async fn meta(&self, id: &str) -> Result<HashMap<String, String>, QueueError> {
        let m: HashMap<String, String> = self.conn.clone().hgetall(self.key(id, "meta")).await?;
        if m.is_empty() {
            return Err(QueueError::UnknownJob(id.into()));
        }
        Ok(m)
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

    fn workers_key(&self) -> String {
        format!("{}:rfpq-workers", self.cfg.prefix)
    }

    /// Registers (or refreshes) a worker and marks its active jobs alive.
    pub async fn heartbeat(&self, info: &WorkerInfo) -> Result<(), QueueError> {
        let json = serde_json::to_string(info)
            .map_err(|e| QueueError::Damaged(info.id.clone(), e.to_string()))?;
        let mut script = HEARTBEAT_SCRIPT.key(self.workers_key());
        script.arg(&info.id).arg(json).arg(info.last_beat_ms);
        for job in &info.active_jobs {
            script.arg(self.key(job, "meta"));
        }
        let _: i64 = script.invoke_async(&mut self.conn.clone()).await?;
        Ok(())
    }

    /// Removes a worker from the registry (clean shutdown).
    pub async fn unregister(&self, worker_id: &str) -> Result<(), QueueError> {
        let _: i64 = self
            .conn
            .clone()
            .hdel(self.workers_key(), worker_id)
            .await?;
        Ok(())
    }

    /// Live workers, oldest first; entries without a beat for `WORKER_STALE` are removed.
    pub async fn workers(&self) -> Result<Vec<WorkerInfo>, QueueError> {
        let raw: HashMap<String, String> = self.conn.clone().hgetall(self.workers_key()).await?;
        let now = now_ms();
        let mut live = Vec::new();
        for (id, json) in raw {
            match serde_json::from_str::<WorkerInfo>(&json) {
                Ok(w) if now.saturating_sub(w.last_beat_ms) < WORKER_STALE.as_millis() as u64 => {
                    live.push(w)
                }
                _ => {
                    let _: i64 = self.conn.clone().hdel(self.workers_key(), &id).await?;
                }
            }
        }
        live.sort_by(|a, b| a.started_ms.cmp(&b.started_ms).then(a.id.cmp(&b.id)));
        Ok(live)
    }

    /// Repairs parents stuck waiting: an `assemble` job in `waiting-children` for at least
    /// `older_than` none of whose pending children can still finish (each failed for good, or
    /// was removed). The stuck parent is removed and a childless `assemble` is queued in its
    /// place, which writes the result with the unfinished rows marked failed. Run by one
    /// worker at a time (a Redis `SET NX` guard). Returns the workbook jobs repaired.
    pub async fn sweep_stuck_parents(
        &self,
        older_than: Duration,
    ) -> Result<Vec<String>, QueueError> {
        let guard: Option<String> = redis::cmd("SET")
            .arg(format!("{}:rfpq-sweeper", self.cfg.prefix))
            .arg(now_ms())
            .arg("NX")
            .arg("PX")
            .arg(older_than.as_millis().max(1000) as u64 / 2)
            .query_async(&mut self.conn.clone())
            .await?;
        if guard.is_none() {
            return Ok(Vec::new());
        }
        let mut repaired = Vec::new();
        let now = now_ms();
        for parent in self.bull.get_waiting_children(0, 499).await? {
            if parent.name() != JOB_ASSEMBLE
                || now.saturating_sub(parent.timestamp()) < older_than.as_millis() as u64
            {
                continue;
            }
            let pending = self
                .bull
                .get_dependencies(parent.id(), "pending", 0, -1)
                .await?;
            let mut can_finish = false;
            for item in &pending.items {
                let child = item.id.rsplit(':').next().unwrap_or_default();
                let state = format!("{:?}", self.bull.get_job_state(child).await?).to_lowercase();
                if state != "failed" && state != "unknown" {
                    can_finish = true;
                    break;
                }
            }
            if can_finish {
                continue;
            }
            let Some(job) = parent.data().get("job").and_then(|j| j.as_str()) else {
                continue;
            };
            let job = job.to_string();
            self.bull.remove(parent.id()).await?;
            self.bull
                .add(JOB_ASSEMBLE, serde_json::json!({"job": job, "swept": true}))
                .options(
                    JobOptions::new()
                        .job_id(format!("{}-swept", parent.id()))
                        .attempts(3)
                        .remove_on_complete(Self::keep())
                        .remove_on_fail(Self::keep()),
                )
                .await?;
            tracing::warn!(
                job,
                parent = parent.id(),
                "repaired a parent stuck waiting for children"
            );
            repaired.push(job);
        }
        Ok(repaired)
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

    /// Counts calls a worker made for several rows at once (a batch's prefetched embeddings)
    /// in the job's report, with the time they took (`ms_embed`); no effect on an unknown job.
    /// Rows count their own calls in their checkpoints.
    pub async fn record_shared_calls(
        &self,
        id: &str,
        calls: &CallTally,
        embed_ms: u64,
    ) -> Result<(), QueueError> {
        let mut counters: Vec<(String, u64)> = [
            ("embed_calls", u64::from(calls.embed)),
            ("prompt_tokens", calls.prompt_tokens),
            ("eval_tokens", calls.eval_tokens),
            ("fallbacks", u64::from(calls.fallbacks)),
            ("ms_embed", embed_ms),
        ]
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .map(|(k, n)| (k.to_string(), n))
        .collect();
        counters.extend(usage_counters("", calls));
        if counters.is_empty() {
            return Ok(());
        }
        let mut script = COUNT_SCRIPT.key(self.key(id, "meta"));
        for (field, n) in &counters {
            script.arg(field).arg(*n);
        }
        let _: i64 = script.invoke_async(&mut self.conn.clone()).await?;
        Ok(())
    }

    /// Adds `elapsed` to one of the job's stage times (no effect on an unknown job).
    pub async fn record_time(
        &self,
        id: &str,
        stage: Stage,
        elapsed: Duration,
    ) -> Result<(), QueueError> {
        let mut script = COUNT_SCRIPT.key(self.key(id, "meta"));
        script.arg(stage.field()).arg(elapsed.as_millis() as u64);
        let _: i64 = script.invoke_async(&mut self.conn.clone()).await?;
        Ok(())
    }

    /// Notes that the job reached `milestone` now, unless it did before (no effect on an
    /// unknown job).
    pub async fn mark(&self, id: &str, milestone: Milestone) -> Result<(), QueueError> {
        let mut script = MARK_SCRIPT.key(self.key(id, "meta"));
        script.arg(milestone.field()).arg(now_ms());
        let _: i64 = script.invoke_async(&mut self.conn.clone()).await?;
        Ok(())
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

    pub async fn plan(&self, id: &str) -> Result<Plan, QueueError> {
        let bytes: Option<Vec<u8>> = self.conn.clone().get(self.key(id, "plan")).await?;
        let bytes = bytes.ok_or_else(|| QueueError::UnknownJob(id.into()))?;
        serde_json::from_slice(&bytes).map_err(|e| QueueError::Damaged(id.into(), e.to_string()))
    }

    /// The job's stored plan as bytes (JSON) with the `plan_version` it was stored under (none
    /// for a job planned before versions existed), read together, for callers that cache the
    /// parsed plan by version.
    pub async fn plan_bytes(&self, id: &str) -> Result<(Vec<u8>, Option<String>), QueueError> {
        let (bytes, version): (Option<Vec<u8>>, Option<String>) = redis::pipe()
            .atomic()
            .get(self.key(id, "plan"))
            .hget(self.key(id, "meta"), PLAN_VERSION)
            .query_async(&mut self.conn.clone())
            .await?;
        let bytes = bytes.ok_or_else(|| QueueError::UnknownJob(id.into()))?;
        Ok((bytes, version))
    }

    /// The checkpointed outcomes among rows `range`, in one read.
    pub async fn rows_at(
        &self,
        id: &str,
        range: std::ops::Range<usize>,
    ) -> Result<HashMap<usize, RowOutcome>, QueueError> {
        if range.is_empty() {
            return Ok(HashMap::new());
        }
        let indexes: Vec<usize> = range.collect();
        let raw: Vec<Option<String>> = redis::cmd("HMGET")
            .arg(self.key(id, "rows"))
            .arg(&indexes)
            .query_async(&mut self.conn.clone())
            .await?;
        indexes
            .into_iter()
            .zip(raw)
            .filter_map(|(i, s)| s.map(|s| (i, s)))
            .map(|(i, s)| {
                serde_json::from_str(&s)
                    .map(|o| (i, o))
                    .map_err(|e| QueueError::Damaged(id.into(), e.to_string()))
            })
            .collect()
    }

    /// Row `index`'s checkpointed outcome, if it has one.
    pub async fn row(&self, id: &str, index: usize) -> Result<Option<RowOutcome>, QueueError> {
        let raw: Option<String> = self.conn.clone().hget(self.key(id, "rows"), index).await?;
        raw.map(|s| serde_json::from_str(&s))
            .transpose()
            .map_err(|e| QueueError::Damaged(id.into(), e.to_string()))
    }

    /// Writes row `index`'s outcome once; returns false when it was already there.
    pub async fn checkpoint(
        &self,
        id: &str,
        index: usize,
        outcome: &RowOutcome,
    ) -> Result<bool, QueueError> {
        let json = serde_json::to_string(outcome)
            .map_err(|e| QueueError::Damaged(id.into(), e.to_string()))?;
        let c = &outcome.calls;
        let t = &outcome.time;
        let counters: [(&str, u64); 16] = [
            (outcome.status.counter(), 1),
            ("written", u64::from(outcome.written)),
            ("drafted", u64::from(outcome.drafted())),
            (
                "library_matches",
                u64::from(outcome.band == Some(crate::pipeline::Band::Library)),
            ),
            ("abstained", u64::from(outcome.abstained)),
            ("copies", u64::from(outcome.same_as.is_some())),
            ("answer_calls", u64::from(c.answer)),
            ("relevance_calls", u64::from(c.relevance)),
            ("row_classify_calls", u64::from(c.classify)),
            ("embed_calls", u64::from(c.embed)),
            ("prompt_tokens", c.prompt_tokens),
            ("eval_tokens", c.eval_tokens),
            ("fallbacks", u64::from(c.fallbacks)),
            ("ms_llm", t.llm_ms),
            ("ms_embed", t.embed_ms),
            ("ms_retrieval", t.retrieval_ms),
        ];
        let rows = self.key(id, "rows");
        let mut script = CHECKPOINT_SCRIPT.key(&rows);
        let error = match outcome.status {
            crate::pipeline::RowStatus::Failed => format!(
                "{}: {}",
                outcome.location(),
                outcome.note.as_deref().unwrap_or("failed")
            ),
            _ => String::new(),
        };
        script
            .key(self.key(id, "meta"))
            .key(self.key(id, "recent"))
            .key(self.key(id, "redo"))
            .key(self.key(id, "errors"))
            .arg(index)
            .arg(json)
            .arg(RETENTION.as_secs())
            .arg(now_ms())
            .arg(ETA_WINDOW)
            .arg(error)
            .arg(t.started_ms);
        for (field, n) in counters.iter().filter(|(_, n)| *n > 0) {
            script.arg(*field).arg(*n);
        }
        for (field, n) in usage_counters("", c) {
            script.arg(field).arg(n);
        }
        if !outcome.model.is_empty() && outcome.same_as.is_none() {
            script.arg(format!("model:{}", outcome.model)).arg(1);
        }
        if let Some(hash) = &outcome.config_hash
            && outcome.same_as.is_none()
            && outcome.status != crate::pipeline::RowStatus::Failed
        {
            script.arg(format!("config:{hash}")).arg(1);
        }
        let written: i64 = script.invoke_async(&mut self.conn.clone()).await?;
        Ok(written == 1)
    }

    /// Every checkpointed row, by question index.
    pub async fn rows(&self, id: &str) -> Result<HashMap<usize, RowOutcome>, QueueError> {
        let raw: HashMap<usize, String> = self.conn.clone().hgetall(self.key(id, "rows")).await?;
        raw.into_iter()
            .map(|(i, s)| {
                serde_json::from_str(&s)
                    .map(|o| (i, o))
                    .map_err(|e| QueueError::Damaged(id.into(), e.to_string()))
            })
            .collect()
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

    fn kb_key(&self, part: &str) -> String {
        format!("{}:kb:{part}", self.cfg.prefix)
    }

    /// Whether the snapshot `version` is stored completely (its meta is written last).
    pub async fn kb_has(&self, version: &str) -> Result<bool, QueueError> {
        Ok(self
            .conn
            .clone()
            .exists(self.kb_key(&format!("snap:{version}:meta")))
            .await?)
    }

    /// Every key of a stored snapshot, given its files as (name, pieces).
    fn kb_version_keys(&self, version: &str, files: &[(String, usize)]) -> Vec<String> {
        let mut keys = vec![self.kb_key(&format!("snap:{version}:meta"))];
        for (file, pieces) in files {
            keys.extend((0..*pieces).map(|n| self.kb_key(&format!("snap:{version}:{file}:{n}"))));
        }
        keys
    }

    /// Stores a KB snapshot (immutable, content-addressed by `version`) in pieces of
    /// [`KB_PIECE_BYTES`], then its meta (manifest and file list) — a reader sees it only once
    /// complete — then points `name` at it. Storing a version that is already complete only
    /// moves the name. A named version is kept until its name moves on; an unnamed one (a job
    /// submitted with a KB directory) expires after the job retention, refreshed by each use.
    pub async fn kb_publish(
        &self,
        name: Option<&str>,
        version: &str,
        manifest: &[u8],
        files: &[(String, Vec<u8>)],
    ) -> Result<bool, QueueError> {
        let mut conn = self.conn.clone();
        let listing: Vec<(String, usize)> = files
            .iter()
            .map(|(f, b)| (f.clone(), b.len().div_ceil(KB_PIECE_BYTES).max(1)))
            .collect();
        let keys = self.kb_version_keys(version, &listing);
        let ttl = RETENTION.as_secs() as i64;
        let uploaded = !self.kb_has(version).await?;
        if uploaded {
            for (file, bytes) in files {
                let mut pieces: Vec<&[u8]> = bytes.chunks(KB_PIECE_BYTES).collect();
                if pieces.is_empty() {
                    pieces.push(&[]);
                }
                for (n, piece) in pieces.iter().enumerate() {
                    let key = self.kb_key(&format!("snap:{version}:{file}:{n}"));
                    let _: () = conn.set_ex(&key, *piece, ttl as u64).await?;
                }
            }
            let listing_json: Vec<serde_json::Value> = listing
                .iter()
                .map(|(f, p)| serde_json::json!({"name": f, "pieces": p}))
                .collect();
            let meta = self.kb_key(&format!("snap:{version}:meta"));
            redis::pipe()
                .atomic()
                .hset(&meta, "manifest", manifest)
                .hset(
                    &meta,
                    "files",
                    serde_json::to_string(&listing_json).unwrap_or_default(),
                )
                .expire(&meta, ttl)
                .exec_async(&mut conn)
                .await?;
        }
        let mut pipe = redis::pipe();
        match name {
            Some(name) => {
                let old: Option<String> = conn.hget(self.kb_key("names"), name).await?;
                for key in &keys {
                    pipe.persist(key).ignore();
                }
                pipe.hset(self.kb_key("names"), name, version).ignore();
                pipe.exec_async(&mut conn).await?;
                // The version the name left expires unless another name still holds it.
                if let Some(old) = old.filter(|o| o != version) {
                    let still_named = self.kb_names().await?.iter().any(|(_, v)| *v == old);
                    if !still_named && let Some((_, old_files)) = self.kb_listing(&old).await? {
                        let mut pipe = redis::pipe();
                        for key in self.kb_version_keys(&old, &old_files) {
                            pipe.expire(key, ttl).ignore();
                        }
                        pipe.exec_async(&mut conn).await?;
                    }
                }
            }
            None => {
                // Refresh the expiry of an unnamed version; a named one (no TTL) stays.
                for key in &keys {
                    pipe.cmd("EXPIRE").arg(key).arg(ttl).arg("XX").ignore();
                }
                pipe.exec_async(&mut conn).await?;
            }
        }
        Ok(uploaded)
    }

    /// The version a published KB name currently points at.
    pub async fn kb_resolve(&self, name: &str) -> Result<Option<String>, QueueError> {
        Ok(self.conn.clone().hget(self.kb_key("names"), name).await?)
    }

    /// Every published name and its version.
    pub async fn kb_names(&self) -> Result<Vec<(String, String)>, QueueError> {
        let mut names: Vec<(String, String)> = self
            .conn
            .clone()
            .hgetall::<_, HashMap<String, String>>(self.kb_key("names"))
            .await?
            .into_iter()
            .collect();
        names.sort();
        Ok(names)
    }

    /// The manifest of a stored snapshot and its files as (name, pieces); `None` when absent.
    pub async fn kb_listing(
        &self,
        version: &str,
    ) -> Result<Option<(Vec<u8>, Vec<(String, usize)>)>, QueueError> {
        let meta: HashMap<String, Vec<u8>> = self
            .conn
            .clone()
            .hgetall(self.kb_key(&format!("snap:{version}:meta")))
            .await?;
        let (Some(manifest), Some(files)) = (meta.get("manifest"), meta.get("files")) else {
            return Ok(None);
        };
        let listing: Vec<serde_json::Value> = serde_json::from_slice(files)
            .map_err(|e| QueueError::Damaged(format!("kb {version}"), e.to_string()))?;
        let files = listing
            .iter()
            .filter_map(|f| {
                Some((
                    f.get("name")?.as_str()?.to_string(),
                    f.get("pieces")?.as_u64()? as usize,
                ))
            })
            .collect();
        Ok(Some((manifest.clone(), files)))
    }

    /// One piece of a stored snapshot file.
    pub async fn kb_piece(
        &self,
        version: &str,
        file: &str,
        n: usize,
    ) -> Result<Vec<u8>, QueueError> {
        let piece: Option<Vec<u8>> = self
            .conn
            .clone()
            .get(self.kb_key(&format!("snap:{version}:{file}:{n}")))
            .await?;
        piece.ok_or_else(|| {
            QueueError::Damaged(
                format!("kb {version}"),
                format!("{file} piece {n} is missing"),
            )
        })
    }

    pub async fn status(&self, id: &str) -> Result<JobStatus, QueueError> {
        let m = self.meta(id).await?;
        let recent: Vec<u64> = self
            .conn
            .clone()
            .lrange(self.key(id, "recent"), 0, -1)
            .await?;
        let mut errors: Vec<String> = self
            .conn
            .clone()
            .lrange(self.key(id, "errors"), 0, -1)
            .await?;
        errors.reverse();
        let num = |k: &str| m.get(k).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        Ok(JobStatus {
            id: id.into(),
            state: m
                .get("state")
                .and_then(|s| JobPhase::parse(s))
                .unwrap_or(JobPhase::Queued),
            file_name: m.get("file_name").cloned().unwrap_or_default(),
            rows_total: num("rows_total"),
            rows_done: num("rows_done"),
            rows_failed: num("rows_failed"),
            needs_review: num("needs_review"),
            reason: m.get("reason").cloned(),
            kb: m.get("kb").cloned(),
            kb_version: m.get("kb_version").cloned(),
            config_hash: m.get("config_hash").cloned(),
            config_hashes: m
                .iter()
                .filter_map(|(k, v)| {
                    Some((k.strip_prefix("config:")?.to_string(), v.parse().ok()?))
                })
                .collect(),
            source_format: m
                .get("source_format")
                .cloned()
                .unwrap_or_else(|| "xlsx".into()),
            warnings: m
                .get("warnings")
                .and_then(|w| serde_json::from_str(w).ok())
                .unwrap_or_default(),
            created_ms: num("created_ms"),
            finished_ms: m.get("finished_ms").and_then(|v| v.parse().ok()),
            eta_s: {
                let state = m.get("state").and_then(|s| JobPhase::parse(s));
                let left = num("rows_total").saturating_sub(num("rows_done"));
                match (recent.first(), recent.last()) {
                    (Some(newest), Some(oldest))
                        if recent.len() >= 2
                            && newest > oldest
                            && !state.is_some_and(JobPhase::is_final) =>
                    {
                        let per_row = (newest - oldest) as f64 / (recent.len() - 1) as f64;
                        Some(left as f64 * per_row / 1000.0)
                    }
                    _ => None,
                }
            },
            last_heartbeat_ms: m.get("last_beat_ms").and_then(|v| v.parse().ok()),
            cancel_requested: m.contains_key("cancel_requested"),
            models: m
                .iter()
                .filter_map(|(k, v)| Some((k.strip_prefix("model:")?.to_string(), v.parse().ok()?)))
                .collect(),
            errors,
            report: {
                let llm_calls: BTreeMap<String, u64> = [
                    (
                        "classify",
                        num("classify_calls") + num("row_classify_calls"),
                    ),
                    ("relevance", num("relevance_calls")),
                    ("answer", num("answer_calls")),
                ]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect();
                let total: u64 = llm_calls.values().sum();
                let questions = num("questions");
                let end = m
                    .get("finished_ms")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or_else(now_ms);
                let at = |k: &str| m.get(k).and_then(|v| v.parse::<u64>().ok());
                let created = num("created_ms");
                let first_row = at("first_row_ms");
                // Submission → planning, then planning's end → the first row's start.
                let queue_ms = match (at("started_ms"), at("planned_ms")) {
                    (Some(s), Some(p)) => {
                        s.saturating_sub(created)
                            + first_row.unwrap_or(end).max(p).saturating_sub(p)
                    }
                    (Some(s), None) => s.saturating_sub(created),
                    // Not planned yet (or a job from before these counters, if rows are done).
                    (None, _) if num("rows_done") == 0 => end.saturating_sub(created),
                    (None, _) => 0,
                };
                let finished_questions = num("answered")
                    + num("needs_review")
                    + num("not_applicable")
                    + num("rows_failed");
                let secs = |k: &str| num(k) as f64 / 1000.0;
                JobReport {
                    questions,
                    answered: num("answered"),
                    written: num("written"),
                    drafted: num("drafted"),
                    library_matches: num("library_matches"),
                    needs_review: num("needs_review"),
                    abstained: num("abstained"),
                    not_applicable: num("not_applicable"),
                    copies: num("copies"),
                    llm_calls,
                    llm_calls_total: total,
                    llm_calls_per_question: if questions == 0 {
                        0.0
                    } else {
                        total as f64 / questions as f64
                    },
                    embed_calls: num("embed_calls") + num("plan_embed_calls"),
                    prompt_tokens: num("prompt_tokens") + num("plan_prompt_tokens"),
                    eval_tokens: num("eval_tokens") + num("plan_eval_tokens"),
                    duration_s: end.saturating_sub(num("created_ms")) as f64 / 1000.0,
                    failed: num("rows_failed"),
                    questions_per_minute: first_row.map_or(0.0, |f| {
                        crate::pipeline::per_minute(finished_questions, end.saturating_sub(f))
                    }),
                    calls_by_model: usage_from_meta(&m),
                    fallbacks: num("fallbacks") + num("plan_fallbacks"),
                    time: TimeSplit {
                        wall_s: end.saturating_sub(created) as f64 / 1000.0,
                        queue_s: queue_ms as f64 / 1000.0,
                        workbook_s: secs("ms_workbook"),
                        plan_s: secs("ms_plan"),
                        llm_s: secs("ms_llm"),
                        embed_s: secs("ms_embed"),
                        retrieval_s: secs("ms_retrieval"),
                    },
                }
            },
        })
    }

    /// BullMQ's job counts by queue state (plan, batch and assemble jobs alike), for metrics.
    pub async fn bull_counts(&self) -> Result<bullmq::types::JobCounts, QueueError> {
        Ok(self.bull.get_job_counts().await?)
    }

    /// Workbook jobs by phase, every phase in lifecycle order (0 when none), for metrics. Jobs
    /// are found by a `SCAN` of their meta keys under this prefix (there is no job index), one
    /// pipelined `HGET state` per page; at most `limit` jobs are counted.
    pub async fn job_phase_counts(&self, limit: usize) -> Result<Vec<(JobPhase, u64)>, QueueError> {
        let mut counts: Vec<(JobPhase, u64)> = [
            JobPhase::Queued,
            JobPhase::Running,
            JobPhase::Completed,
            JobPhase::CompletedWithErrors,
            JobPhase::Failed,
            JobPhase::Cancelled,
        ]
        .into_iter()
        .map(|p| (p, 0))
        .collect();
        let mut escaped = String::with_capacity(self.cfg.prefix.len());
        for c in self.cfg.prefix.chars() {
            if matches!(c, '*' | '?' | '[' | ']' | '\\') {
                escaped.push('\\');
            }
            escaped.push(c);
        }
        let pattern = format!("{escaped}:rfpq-job:*:meta");
        let mut conn = self.conn.clone();
        let mut cursor: u64 = 0;
        let mut seen = 0usize;
        loop {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut conn)
                .await?;
            let keys = &keys[..keys.len().min(limit - seen)];
            if !keys.is_empty() {
                let mut pipe = redis::pipe();
                for k in keys {
                    pipe.hget(k, "state");
                }
                let states: Vec<Option<String>> = pipe.query_async(&mut conn).await?;
                for phase in states.iter().flatten().filter_map(|s| JobPhase::parse(s)) {
                    if let Some(c) = counts.iter_mut().find(|(p, _)| *p == phase) {
                        c.1 += 1;
                    }
                }
                seen += keys.len();
            }
            if next == 0 || seen >= limit {
                break;
            }
            cursor = next;
        }
        Ok(counts)
    }
}

#[cfg(test)]
mod report_tests {
    use super::*;
    use crate::router::CallRecord;
    use crate::router::config::Task;

    #[test]
    fn per_model_counters_round_trip_through_meta() {
        let record = |provider: &str, model: &str, p: u32, e: u32| CallRecord {
            provider: provider.into(),
            model: model.into(),
            prompt_tokens: p,
            eval_tokens: e,
            ..Default::default()
        };
        let mut row = CallTally::default();
        row.add(Task::Answer, &record("stub", "qwen2.5:7b", 34, 12));
        row.add(Task::Embed, &record("embedded", "all-minilm-l6-v2", 9, 0));
        let mut plan = CallTally::default();
        plan.add(Task::Classify, &record("stub", "qwen2.5:7b", 100, 3));
        plan.add(Task::Embed, &record("embedded", "all-minilm-l6-v2", 40, 0));
        // Two rows' HINCRBYs, then the plan's fields, as Redis would hold them.
        let mut meta: HashMap<String, String> = HashMap::new();
        for _ in 0..2 {
            for (k, n) in usage_counters("", &row) {
                let v = meta.entry(k).or_insert_with(|| "0".into());
                *v = (v.parse::<u64>().unwrap() + n).to_string();
            }
        }
        meta.extend(
            usage_counters("plan_", &plan)
                .into_iter()
                .map(|(k, n)| (k, n.to_string())),
        );
        assert_eq!(meta["calls:answer:stub:qwen2.5:7b"], "2");
        assert_eq!(meta["tok_in:answer:stub:qwen2.5:7b"], "68");
        assert!(
            !meta.contains_key("tok_out:embed:embedded:all-minilm-l6-v2"),
            "zeros are not written"
        );
        meta.insert("model:stub:qwen2.5:7b".into(), "2".into());
        meta.insert("prompt_tokens".into(), "86".into());
        let usage = usage_from_meta(&meta);
        let line = |task: &str, model: &str, calls, p, e| ModelUsage {
            task: task.into(),
            model: model.into(),
            calls,
            prompt_tokens: p,
            eval_tokens: e,
        };
        assert_eq!(
            usage,
            vec![
                line("answer", "stub:qwen2.5:7b", 2, 68, 24),
                line("classify", "stub:qwen2.5:7b", 1, 100, 3),
                line("embed", "embedded:all-minilm-l6-v2", 3, 58, 0),
            ]
        );
    }
}
