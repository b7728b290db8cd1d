//! Prometheus metrics, recording side: owns every metric name and help text and records LLM
//! calls, fallbacks, cooldowns, retrieval time, rows, lock renewals and stalls (through the
//! `metrics` facade, into one per-process recorder). A leaf every layer may call: it imports
//! nothing from the crate. It does not read Redis or serve HTTP (`queue::render_metrics` adds
//! the gauges read from Redis to this recorder's text; the worker and `rfpq serve` expose it),
//! and nothing is recorded before [`install`].
//!
//! Series (every counter is per process, from its start):
//! - `rfpq_llm_calls_total{provider,model,task,outcome="ok|error"}`: one per target a routed
//!   call was handed to (a refusal by an open breaker counts as an error; targets the router
//!   skips before calling, for data policy, a missing key or a small context window, do not).
//! - `rfpq_llm_call_seconds{provider,model,task}`: histogram of successful calls' latency at
//!   the answering target (retries and repairs included).
//! - `rfpq_llm_tokens_total{provider,model,task,kind="prompt|generated"}`.
//! - `rfpq_llm_fallbacks_total{task,from,to}`: answers that came from a later target than the
//!   task's first (`from`, `to`: `provider:model`).
//! - `rfpq_llm_cooldowns_total{target}`: breaker openings.
//! - `rfpq_retrieval_seconds`: histogram of knowledge-base searches.
//! - `rfpq_rows_total{outcome="answered|needs_review|failed|skipped|not_applicable"}`: row
//!   checkpoints written.
//! - `rfpq_lock_renewals_total{outcome="ok|lost"}`, `rfpq_stalled_jobs_total`.
//! - At scrape time, from Redis: `rfpq_jobs{state}` (rfpq job phases), `rfpq_queue_depth{state}`
//!   (BullMQ's job counts), `rfpq_workers_live`, `rfpq_worker_slots`,
//!   `rfpq_worker_active_jobs`, and `rfpq_redis_up` (0 when those could not be read).

use metrics::{Unit, counter, describe_counter, describe_histogram, histogram};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;
use std::time::Duration;

/// `rfpq_llm_calls_total`.
pub const LLM_CALLS: &str = "rfpq_llm_calls_total";
/// `rfpq_llm_call_seconds` (histogram).
pub const LLM_CALL_SECONDS: &str = "rfpq_llm_call_seconds";
/// `rfpq_llm_tokens_total`.
pub const LLM_TOKENS: &str = "rfpq_llm_tokens_total";
/// `rfpq_llm_fallbacks_total`.
pub const LLM_FALLBACKS: &str = "rfpq_llm_fallbacks_total";
/// `rfpq_llm_cooldowns_total`.
pub const LLM_COOLDOWNS: &str = "rfpq_llm_cooldowns_total";
/// `rfpq_retrieval_seconds` (histogram).
pub const RETRIEVAL_SECONDS: &str = "rfpq_retrieval_seconds";
/// `rfpq_rows_total`.
pub const ROWS: &str = "rfpq_rows_total";
/// `rfpq_lock_renewals_total`.
pub const LOCK_RENEWALS: &str = "rfpq_lock_renewals_total";
/// `rfpq_stalled_jobs_total`.
pub const STALLED_JOBS: &str = "rfpq_stalled_jobs_total";

/// Histogram buckets, in seconds: from a fast KB search to a slow CPU-only LLM call.
pub const BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
];

/// How often the recorder's histograms are compacted.
const UPKEEP_EVERY: Duration = Duration::from_secs(10);

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs this process's recorder (once; later calls return the same handle) and describes
/// every series. Until it runs, the recording functions below do nothing.
pub fn install() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let builder = || {
            PrometheusBuilder::new()
                .set_buckets(&BUCKETS)
                .expect("the bucket list is not empty")
        };
        let handle = match builder().install_recorder() {
            Ok(h) => h,
            Err(e) => {
                // Another recorder owns the process: render an empty one rather than fail.
                tracing::warn!(error = %e, "cannot install the metrics recorder");
                builder().build_recorder().handle()
            }
        };
        describe();
        let upkeep = handle.clone();
        let _ = std::thread::Builder::new()
            .name("metrics-upkeep".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(UPKEEP_EVERY);
                    upkeep.run_upkeep();
                }
            });
        handle
    })
}

fn describe() {
    describe_counter!(
        LLM_CALLS,
        Unit::Count,
        "LLM calls per target the router handed them to, by outcome (ok or error)."
    );
    describe_histogram!(
        LLM_CALL_SECONDS,
        Unit::Seconds,
        "Latency of successful LLM calls at the answering target, retries and repairs included."
    );
    describe_counter!(
        LLM_TOKENS,
        Unit::Count,
        "Tokens of successful LLM calls, by kind (prompt or generated)."
    );
    describe_counter!(
        LLM_FALLBACKS,
        Unit::Count,
        "Calls answered by a later target than the task's first (from: the first, to: the answering one)."
    );
    describe_counter!(
        LLM_COOLDOWNS,
        Unit::Count,
        "Times a target's circuit breaker opened (the target cools down)."
    );
    describe_histogram!(
        RETRIEVAL_SECONDS,
        Unit::Seconds,
        "Knowledge-base searches for one question (hybrid search and evidence selection)."
    );
    describe_counter!(
        ROWS,
        Unit::Count,
        "Row checkpoints written by this process, by outcome."
    );
    describe_counter!(
        LOCK_RENEWALS,
        Unit::Count,
        "Job-lock extensions rfpq asks for before writing a row (ok, or lost: the row is not written). BullMQ's own background renewals are not seen."
    );
    describe_counter!(
        STALLED_JOBS,
        Unit::Count,
        "Stalled jobs (their worker died or hung) this process's stall check recovered."
    );
}

/// One routed LLM call at one target: `ok` counts it under `outcome="ok"` and records its
/// `latency` and tokens (`eval_tokens` under `kind="generated"`); a failure only counts it
/// under `outcome="error"`. `task` is a `Task::as_str` (`embed` for embeddings).
pub fn llm_call(
    task: &str,
    provider: &str,
    model: &str,
    latency: Duration,
    prompt_tokens: u32,
    eval_tokens: u32,
    ok: bool,
) {
    let outcome = if ok { "ok" } else { "error" };
    counter!(LLM_CALLS,
        "provider" => provider.to_string(),
        "model" => model.to_string(),
        "task" => task.to_string(),
        "outcome" => outcome)
    .increment(1);
    if !ok {
        return;
    }
    histogram!(LLM_CALL_SECONDS,
        "provider" => provider.to_string(),
        "model" => model.to_string(),
        "task" => task.to_string())
    .record(latency.as_secs_f64());
    for (kind, n) in [("prompt", prompt_tokens), ("generated", eval_tokens)] {
        counter!(LLM_TOKENS,
            "provider" => provider.to_string(),
            "model" => model.to_string(),
            "task" => task.to_string(),
            "kind" => kind)
        .increment(u64::from(n));
    }
}

/// A `task` call answered by target `to` after its first target `from` (both `provider:model`)
/// failed or was skipped.
pub fn fallback(task: &str, from: &str, to: &str) {
    counter!(LLM_FALLBACKS,
        "task" => task.to_string(),
        "from" => from.to_string(),
        "to" => to.to_string())
    .increment(1);
}

/// The circuit breaker of `target` (`provider:model`) opened.
pub fn cooldown(target: &str) {
    counter!(LLM_COOLDOWNS, "target" => target.to_string()).increment(1);
}

/// One knowledge-base search took `latency`.
pub fn retrieval(latency: Duration) {
    histogram!(RETRIEVAL_SECONDS).record(latency.as_secs_f64());
}

/// A row checkpoint was written with this outcome label (`answered`, `needs_review`, `failed`,
/// `skipped`, `not_applicable`: `RowStatus::metric_label`); call it once per row actually stored.
pub fn row_written(outcome: &'static str) {
    counter!(ROWS, "outcome" => outcome).increment(1);
}

/// rfpq asked to extend a job lock before writing a row: `ok`, or the lock was lost.
///
/// bullmq-official renews the locks of running jobs itself, on its own timer and without a
/// hook, so those renewals are not counted; this counts the fence rfpq runs before each
/// checkpoint (`Job::extend_lock`), the renewal that decides whether a row is written.
pub fn lock_renewal(ok: bool) {
    counter!(LOCK_RENEWALS, "outcome" => if ok { "ok" } else { "lost" }).increment(1);
}

/// This process's stall check found a stalled job (and moved it back to wait, or failed it).
pub fn stalled_job() {
    counter!(STALLED_JOBS).increment(1);
}
