//! Prometheus metrics: owns every metric name and help text, records LLM calls, fallbacks,
//! cooldowns, retrieval time, rows, lock renewals and stalls (through the `metrics` facade, into
//! one per-process recorder), and renders the text exposition with the job, queue and worker
//! gauges read from Redis at scrape time. Serves `GET /metrics` for `rfpq worker
//! --metrics-addr`. Does not push anywhere, keep history or authenticate: nothing is recorded
//! before [`install`], and the worker's endpoint is meant for a private address.
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

use crate::pipeline::{RowOutcome, RowStatus};
use crate::queue::RfpQueue;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use metrics::{Unit, counter, describe_counter, describe_histogram, histogram};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use std::fmt::Write as _;
use std::net::SocketAddr;
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

/// At most this many jobs are counted per scrape for `rfpq_jobs` (the 7-day retention keeps
/// far fewer in practice).
pub const MAX_JOBS_COUNTED: usize = 200_000;

/// How long a scrape waits for Redis before it reports `rfpq_redis_up 0`.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(5);

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

/// The `rfpq_rows_total` outcome label of a row status.
pub fn row_label(status: RowStatus) -> &'static str {
    match status {
        RowStatus::Answered => "answered",
        RowStatus::NeedsReview => "needs_review",
        RowStatus::Failed => "failed",
        RowStatus::Skipped => "skipped",
        RowStatus::NotApplicable => "not_applicable",
    }
}

/// A row checkpoint was written with this outcome (call it once per row actually stored).
pub fn row_written(outcome: &RowOutcome) {
    counter!(ROWS, "outcome" => row_label(outcome.status)).increment(1);
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

/// The exposition text: this process's recorded series, then the gauges read from `queue`'s
/// Redis now (job phases, BullMQ counts, live workers). Installs the recorder if needed. Never
/// fails: when Redis does not answer, the Redis gauges are left out and `rfpq_redis_up` is 0.
pub async fn render(queue: &RfpQueue) -> String {
    let mut out = install().render();
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    out.push_str(&scrape_gauges(queue).await);
    out
}

/// The Content-Type of [`render`]'s text.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Writes one gauge family: `samples` are (label text, e.g. `state="queued"`, or empty; value).
fn gauge(out: &mut String, name: &str, help: &str, samples: &[(String, u64)]) {
    let _ = write!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n");
    for (labels, value) in samples {
        if labels.is_empty() {
            let _ = writeln!(out, "{name} {value}");
        } else {
            let _ = writeln!(out, "{name}{{{labels}}} {value}");
        }
    }
}

/// The gauges computed from Redis at scrape time. They are written as text rather than set in
/// the process-wide recorder, so two queues served by one process never mix.
async fn scrape_gauges(queue: &RfpQueue) -> String {
    let read = async {
        let workers = queue.workers().await?;
        let counts = queue.bull_counts().await?;
        let jobs = queue.job_phase_counts(MAX_JOBS_COUNTED).await?;
        Ok::<_, crate::queue::QueueError>((workers, counts, jobs))
    };
    let mut out = String::new();
    let read = match tokio::time::timeout(SCRAPE_TIMEOUT, read).await {
        Ok(Ok(r)) => Some(r),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "metrics: cannot read the queue");
            None
        }
        Err(_) => {
            tracing::warn!("metrics: Redis did not answer within 5 s");
            None
        }
    };
    gauge(
        &mut out,
        "rfpq_redis_up",
        "Whether the queue's Redis answered this scrape (0: the Redis gauges are missing).",
        &[(String::new(), u64::from(read.is_some()))],
    );
    let Some((workers, counts, jobs)) = read else {
        return out;
    };
    let state = |s: &str| format!("state=\"{s}\"");
    let phases: Vec<(String, u64)> = jobs.iter().map(|(p, n)| (state(p.as_str()), *n)).collect();
    gauge(
        &mut out,
        "rfpq_jobs",
        "Workbook jobs in Redis (7-day retention) by rfpq state.",
        &phases,
    );
    gauge(
        &mut out,
        "rfpq_queue_depth",
        "BullMQ jobs (plan, batch and assemble) by queue state.",
        &[
            (state("waiting"), counts.waiting),
            (state("prioritized"), counts.prioritized),
            (state("paused"), counts.paused),
            (state("active"), counts.active),
            (state("delayed"), counts.delayed),
            (state("waiting_children"), counts.waiting_children),
            (state("failed"), counts.failed),
            (state("completed"), counts.completed),
        ],
    );
    let slots: usize = workers.iter().map(|w| w.concurrency).sum();
    let active: usize = workers.iter().map(|w| w.active_jobs.len()).sum();
    gauge(
        &mut out,
        "rfpq_workers_live",
        "Live rfpq workers (a heartbeat within the last 30 s).",
        &[(String::new(), workers.len() as u64)],
    );
    gauge(
        &mut out,
        "rfpq_worker_slots",
        "Sum of the live workers' concurrency.",
        &[(String::new(), slots as u64)],
    );
    gauge(
        &mut out,
        "rfpq_worker_active_jobs",
        "Workbook jobs the live workers are working on (a job on two workers counts twice).",
        &[(String::new(), active as u64)],
    );
    out
}

async fn metrics_handler(State(queue): State<RfpQueue>) -> Response {
    (
        [(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE))],
        render(&queue).await,
    )
        .into_response()
}

/// Serves `GET /metrics` (no authentication) on `addr` in a spawned task, after installing
/// the recorder. Port 0 picks a free port. Logs `metrics listening on ADDR` at info level
/// (to stderr, with the bound address) and returns that address.
pub async fn serve(addr: SocketAddr, queue: RfpQueue) -> std::io::Result<SocketAddr> {
    install();
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let app = axum::Router::new()
        .route("/metrics", axum::routing::get(metrics_handler))
        .with_state(queue);
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "the metrics listener stopped");
        }
    });
    tracing::info!("metrics listening on {local}");
    Ok(local)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gauges_are_prometheus_text() {
        let mut out = String::new();
        gauge(
            &mut out,
            "x",
            "Help.",
            &[(String::new(), 1), ("state=\"a\"".into(), 2)],
        );
        assert_eq!(
            out,
            "# HELP x Help.\n# TYPE x gauge\nx 1\nx{state=\"a\"} 2\n"
        );
    }

    #[test]
    fn row_labels_are_snake_case() {
        assert_eq!(row_label(RowStatus::NeedsReview), "needs_review");
        assert_eq!(row_label(RowStatus::NotApplicable), "not_applicable");
        assert_eq!(row_label(RowStatus::Failed), "failed");
    }
}
