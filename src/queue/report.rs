//! What a user sees of a job: `status` (phase, progress, ETA, errors) and `JobReport`, computed
//! from the counters the checkpoints and the plan/assemble steps add to the job's meta; also the
//! counts metrics read. Does not change a job's phase (`jobs`).

use super::rows::usage_counters;
use super::*;
use crate::pipeline::{CallTally, FillSummary, ModelUsage, TimeSplit};
use crate::workbook::SourceFormat;
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::sync::LazyLock;
use std::time::Duration;

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

impl RfpQueue {
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

    /// Reads the job's status every half second, handing each to `on_status`, until it
    /// reaches a final state; returns that status.
    pub async fn follow(
        &self,
        id: &str,
        mut on_status: impl FnMut(&JobStatus),
    ) -> Result<JobStatus, QueueError> {
        loop {
            let st = self.status(id).await?;
            on_status(&st);
            if st.state.is_final() {
                return Ok(st);
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
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

    #[test]
    fn per_model_counters_round_trip_through_meta() {
        let usage = |task: &str, model: &str, calls, p, e| ModelUsage {
            task: task.into(),
            model: model.into(),
            calls,
            prompt_tokens: p,
            eval_tokens: e,
        };
        let row = CallTally {
            by_model: vec![
                usage("answer", "stub:qwen2.5:7b", 1, 34, 12),
                usage("embed", "embedded:all-minilm-l6-v2", 1, 9, 0),
            ],
            ..Default::default()
        };
        let plan = CallTally {
            by_model: vec![
                usage("classify", "stub:qwen2.5:7b", 1, 100, 3),
                usage("embed", "embedded:all-minilm-l6-v2", 1, 40, 0),
            ],
            ..Default::default()
        };
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
        let line = usage;
        let usage = usage_from_meta(&meta);
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
