//! The worker registry (`rfpq workers`): heartbeats that also mark a worker's jobs alive, and
//! the once-a-minute sweep that replaces an `assemble` parent stuck waiting for children that
//! can no longer finish. Does not run jobs.

use super::*;
use bullmq::JobOptions;
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::LazyLock;
use std::time::Duration;

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

impl RfpQueue {
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
}
