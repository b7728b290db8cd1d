//! The Prometheus text rfpq serves at `/metrics`: this process's recorded series (from
//! `crate::metrics`) followed by the job, queue-depth and worker gauges read from Redis at
//! scrape time. Does not record anything itself, and does not serve HTTP (the worker's
//! endpoint and `rfpq serve` do).

use super::{QueueError, RfpQueue};
use std::fmt::Write as _;
use std::time::Duration;

/// At most this many jobs are counted for `rfpq_jobs` per scrape.
pub const MAX_JOBS_COUNTED: usize = 200_000;

/// How long a scrape waits for Redis before leaving the Redis gauges out.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(5);

/// The Content-Type of [`render_metrics`]'s text.
pub const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The exposition text: this process's recorded series, then the gauges read from `queue`'s
/// Redis now (job phases, BullMQ counts, live workers). Installs the recorder if needed. Never
/// fails: when Redis does not answer, the Redis gauges are left out and `rfpq_redis_up` is 0.
pub async fn render_metrics(queue: &RfpQueue) -> String {
    let mut out = crate::metrics::install().render();
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    out.push_str(&scrape_gauges(queue).await);
    out
}

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
        Ok::<_, QueueError>((workers, counts, jobs))
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
}
