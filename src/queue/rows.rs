//! The stored plan and the per-row checkpoints: each row's outcome is written once (`HSETNX`)
//! by a Lua script that also counts it into the job's meta and notes its time for the ETA. Does
//! not decide whether a writer still holds its lock: the worker fences before it calls here.

use super::*;
use crate::pipeline::{CallTally, Plan, RowOutcome};
use redis::AsyncCommands;
use std::collections::HashMap;
use std::sync::LazyLock;

/// The meta field naming the stored plan's version: a fresh id each time a plan is stored, so
/// a worker that cached a parsed plan knows from the meta it reads anyway whether the plan is
/// still the same, without fetching it again.
pub const PLAN_VERSION: &str = "plan_version";

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
pub(super) fn usage_counters(prefix: &str, calls: &CallTally) -> Vec<(String, u64)> {
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

impl RfpQueue {
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
}
