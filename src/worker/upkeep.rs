//! What runs beside a worker's jobs: the heartbeat (registry entry, jobs marked alive, and the
//! once-a-minute stuck-parent sweep), the model warm-up before the first batch, and the
//! `GET /metrics` endpoint of `rfpq worker --metrics-addr`. Runs on the async runtime and never
//! does CPU work there; does not touch rows.

use super::Shared;
use crate::queue::{HEARTBEAT, RfpQueue, WorkerInfo};
use crate::router::Router;
use axum::response::IntoResponse;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// How often a worker looks for parents stuck waiting (one worker sweeps at a time).
const SWEEP_EVERY: Duration = Duration::from_secs(60);
/// A parent waiting this long with no child that can still finish is repaired.
const STUCK_AFTER: Duration = Duration::from_secs(120);

/// This process's resident memory, bytes (0 when it cannot be read).
fn rss_bytes(sys: &mut Option<sysinfo::System>) -> u64 {
    let (Some(sys), Ok(pid)) = (sys.as_mut(), sysinfo::get_current_pid()) else {
        return 0;
    };
    sys.refresh_processes(sysinfo::ProcessesToUpdate::Some(&[pid]), false);
    sys.process(pid).map_or(0, |p| p.memory())
}

/// Beats every `HEARTBEAT`: the worker's registry entry (`rfpq workers`) and, in each of its
/// jobs, `last_beat_ms` (`rfpq status`). Runs on the async runtime; CPU work never does.
pub(super) fn spawn_heartbeat(
    shared: Arc<Shared>,
    id: String,
    concurrency: usize,
) -> tokio::task::JoinHandle<()> {
    let host = sysinfo::System::host_name().unwrap_or_else(|_| "unknown".into());
    let started_ms = crate::queue::now_ms();
    tokio::spawn(async move {
        let mut sys = sysinfo::System::new().ok();
        let mut last_sweep = std::time::Instant::now();
        loop {
            let active_jobs: Vec<String> = {
                let a = shared.active.lock().unwrap_or_else(|p| p.into_inner());
                let mut jobs: Vec<String> = a.keys().filter(|k| !k.is_empty()).cloned().collect();
                jobs.sort();
                jobs
            };
            let info = WorkerInfo {
                id: id.clone(),
                host: host.clone(),
                pid: std::process::id(),
                concurrency,
                active_jobs,
                started_ms,
                last_beat_ms: crate::queue::now_ms(),
                rss_bytes: rss_bytes(&mut sys),
                version: env!("CARGO_PKG_VERSION").into(),
            };
            if let Err(e) = shared.queue.heartbeat(&info).await {
                tracing::warn!(error = %e, "heartbeat failed");
            }
            if last_sweep.elapsed() >= SWEEP_EVERY {
                last_sweep = std::time::Instant::now();
                if let Err(e) = shared.queue.sweep_stuck_parents(STUCK_AFTER).await {
                    tracing::warn!(error = %e, "sweeping stuck parents failed");
                }
            }
            tokio::time::sleep(HEARTBEAT).await;
        }
    })
}

/// Loads the models this worker will call before the first batch needs them: each Ollama
/// model that is the first choice of the classify or answer task (with its `num_ctx` and
/// `keep_alive`), and the embedding model (one tiny embedding). Runs in the background;
/// a failure is logged and changes nothing (the first real call then pays the load).
pub(super) fn spawn_warm_up(router: Arc<Router>) -> tokio::task::JoinHandle<()> {
    use crate::router::config::{ProviderKind, Task};
    tokio::spawn(async move {
        let cfg = router.config();
        let mut chat: Vec<crate::router::config::Target> = Vec::new();
        for task in [Task::Answer, Task::Classify] {
            if let Some(t) = cfg.targets(task).into_iter().next()
                && cfg
                    .provider(&t.provider)
                    .is_some_and(|p| p.kind == ProviderKind::Ollama)
                && !chat.contains(&t)
            {
                chat.push(t);
            }
        }
        for t in chat {
            match crate::router::admin::warm(cfg, &t, WARM_UP_TIMEOUT).await {
                Ok(_) => tracing::info!(target = %t, "model warmed up"),
                Err(e) => tracing::warn!(target = %t, error = %e, "model warm-up failed"),
            }
        }
        match router.embed(&["warm-up".to_string()]).await {
            Ok((_, record)) => tracing::info!(
                target = %format!("{}:{}", record.provider, record.model),
                ms = record.latency_ms,
                "embedding model warmed up"
            ),
            Err(e) => tracing::warn!(error = %e, "embedding model warm-up failed"),
        }
    })
}

/// How long a warm-up load may take (a cold 7B model from disk takes seconds to a minute).
const WARM_UP_TIMEOUT: Duration = Duration::from_secs(120);

async fn metrics_handler(
    axum::extract::State(queue): axum::extract::State<RfpQueue>,
) -> axum::response::Response {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            axum::http::HeaderValue::from_static(crate::queue::METRICS_CONTENT_TYPE),
        )],
        crate::queue::render_metrics(&queue).await,
    )
        .into_response()
}

/// Serves `GET /metrics` (no authentication) on `addr` in a spawned task, after installing
/// the recorder. Port 0 picks a free port. Logs `metrics listening on ADDR` at info level
/// (to stderr, with the bound address) and returns that address.
pub async fn serve_metrics(addr: SocketAddr, queue: RfpQueue) -> std::io::Result<SocketAddr> {
    crate::metrics::install();
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
