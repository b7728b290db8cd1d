//! The queue boundary: BullMQ (`bullmq-official`, pinned) for job state, plus rfpq's own keys
//! for workbook bytes, the detected plan, per-row checkpoints and results — all under one
//! hash-tagged prefix so Redis Cluster keeps them in one slot — and the published knowledge-base
//! snapshots workers fetch (`kb:*`). Nothing else talks to Redis.
//!
//! This file holds the connection, the key layout and the job phases; each concern has its own
//! file: `jobs` (submit, phases, cancel, retry, the batch flow, results), `rows` (the plan and
//! per-row checkpoints), `report` (status, ETA and the job report's counters), `workers` (the
//! registry, heartbeats and the stuck-parent sweeper), `kb` (KB snapshot storage, publishing
//! and fetching) and `gauges` (the Prometheus gauges read from Redis at scrape time). It does
//! not answer rows or parse workbooks: callers hand it plans and outcomes.

mod gauges;
mod jobs;
mod kb;
mod report;
mod rows;
mod workers;

pub use gauges::{METRICS_CONTENT_TYPE, render_metrics};
pub use jobs::{BatchSpec, CancelOutcome, RetryError, SubmitExtras};
pub use kb::{KB_PIECE_BYTES, materialize_kb, publish_kb};
pub use report::{JobReport, JobStatus, Milestone, Stage};
pub use rows::PLAN_VERSION;
pub use workers::{HEARTBEAT, WORKER_STALE, WorkerInfo};

use bullmq::options::RedisConnectionOptions;
use bullmq::types::{KeepJobs, RemoveOnFinish};
use bullmq::{FlowProducer, FlowProducerOptions, Queue, QueueOptions};
use redis::AsyncCommands;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// BullMQ queue name every rfpq job lives in.
pub const QUEUE_NAME: &str = "rfpq";

/// Job names (the worker dispatches on them).
pub const JOB_PLAN: &str = "plan";

pub const JOB_BATCH: &str = "batch";

pub const JOB_ASSEMBLE: &str = "assemble";

/// How long a job's files, checkpoints and status are kept (7 days).
pub const RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);

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

pub use crate::now_ms;

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
}
