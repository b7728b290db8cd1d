//! HTTP API producer (`rfpq serve`): the queue's submit, status, result and cancel over HTTP
//! (axum), for callers that cannot run the CLI or share a drop folder.
//!
//! Intended CLI (wired in `cli`):
//! `rfpq serve [--addr 127.0.0.1:8080] [--token-env RFPQ_API_TOKEN] [--no-auth] [--kb KB]
//! [--max-upload-mb 50] [--batch-size N]`
//!
//! What it does:
//! - `POST /jobs` (multipart: `file`, optional `kb`, `batch_size`) validates the workbook
//!   exactly like `rfpq submit` (`submit::check`, then `submit::enqueue`)
//!   and queues it: 201 `{"id", "status_url", "warnings"}`. A refused workbook is 422 with the
//!   reason and queues nothing; an upload over `max_upload_bytes` is 413.
//! - `GET /jobs/{id}` is the status JSON of `rfpq status --json`; `GET /jobs/{id}/result` and
//!   `/review` download the filled and review workbooks (409 until the job has finished);
//!   `POST /jobs/{id}/cancel` cancels like `rfpq cancel`.
//! - `GET /healthz` (Redis reachable: 200, else 503), `GET /metrics` (Prometheus text, see
//!   `crate::metrics`: jobs by state, BullMQ queue depth, live workers, their slots and active
//!   jobs, read from Redis at scrape time, this process's recorded series, and this server's
//!   request counters) and
//!   `GET /openapi.json` (an OpenAPI 3.0 description).
//! - Every endpoint but `/healthz` and `/openapi.json` needs `Authorization: Bearer <token>`,
//!   compared in constant time, and checked before an upload's body is read. The token is never
//!   logged. Every error is JSON `{"error": "..."}`.
//!
//! What it does not do: answer anything (workers do), TLS (put it behind a reverse proxy),
//! per-user tokens or rate limits, or list jobs. A `kb` form field may only name a KB published with
//! `rfpq kb publish`; only the operator's `--kb` may be a directory on the server.
//!
//! This file holds the server (state, routes, auth, errors, health, metrics); `upload` takes a
//! workbook upload and queues it, `jobs` serves a job's status, files, apply and cancel, and
//! `openapi` describes it all.

mod jobs;
mod openapi;
mod upload;

pub use openapi::openapi_document;

use jobs::*;
use openapi::*;
use upload::*;

use crate::queue::{CancelOutcome, JobPhase, KbRef, QueueError, RfpQueue};
use crate::submit::{self, SubmitError};
use crate::workbook::SourceFormat;
use axum::extract::multipart::{Field, MultipartRejection};
use axum::extract::{DefaultBodyLimit, Multipart, Path, RawQuery, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Default upload limit: 50 MiB.
pub const DEFAULT_MAX_UPLOAD_BYTES: usize = 50 * 1024 * 1024;
/// Room for the multipart framing and the small text fields on top of the workbook itself.
const MULTIPART_SLACK: usize = 64 * 1024;
/// Longest text field (`kb`, `batch_size`) read from an upload.
const MAX_TEXT_FIELD: usize = 1024;
/// Largest `batch_size` an upload may ask for.
const MAX_BATCH_SIZE: usize = 10_000;
/// How long `/healthz` waits for Redis.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(3);

const XLSX: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";
const XLSM: &str = "application/vnd.ms-excel.sheet.macroEnabled.12";

/// How to serve.
#[derive(Clone)]
pub struct ServeOptions {
    pub addr: SocketAddr,
    /// Bearer token every protected endpoint requires; `None` serves without auth.
    pub token: Option<String>,
    /// Largest workbook an upload may carry.
    pub max_upload_bytes: usize,
    /// KB for uploads that name none: a KB directory (published to Redis) or a published name.
    pub kb: Option<String>,
    /// Rows per batch job for uploads that do not say.
    pub batch_size: usize,
}

impl Default for ServeOptions {
    /// `127.0.0.1:8080`, no token, 50 MiB, no KB, `DEFAULT_BATCH_SIZE`.
    fn default() -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            token: None,
            max_upload_bytes: DEFAULT_MAX_UPLOAD_BYTES,
            kb: None,
            batch_size: submit::DEFAULT_BATCH_SIZE,
        }
    }
}

impl std::fmt::Debug for ServeOptions {
    // The token is never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServeOptions")
            .field("addr", &self.addr)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("max_upload_bytes", &self.max_upload_bytes)
            .field("kb", &self.kb)
            .field("batch_size", &self.batch_size)
            .finish()
    }
}

/// Why the API could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot use the knowledge base: {0}")]
    Kb(SubmitError),
    #[error("the HTTP server stopped: {0}")]
    Io(#[from] std::io::Error),
}

/// Request counters of one API server (for `/metrics`). They belong to the server rather than
/// to the process-wide `metrics` recorder, so two servers in one process (tests) never share
/// them.
#[derive(Default)]
struct Counters {
    submitted: AtomicU64,
    refused: AtomicU64,
    too_large: AtomicU64,
    unauthorized: AtomicU64,
}

/// What the handlers share. Cheap to clone.
#[derive(Clone)]
pub struct ApiState {
    queue: RfpQueue,
    token: Option<Arc<str>>,
    max_upload_bytes: usize,
    kb: Option<String>,
    batch_size: usize,
    counters: Arc<Counters>,
}

impl ApiState {
    pub fn new(queue: RfpQueue, opts: &ServeOptions) -> Self {
        Self {
            queue,
            token: opts.token.as_deref().map(Arc::from),
            max_upload_bytes: opts.max_upload_bytes.max(1),
            kb: opts.kb.clone(),
            batch_size: opts.batch_size.max(1),
            counters: Arc::default(),
        }
    }
}

/// A JSON error response: `{"error": message}` (+ `state` when it helps).
#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    message: String,
    state: Option<JobPhase>,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            state: None,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({"error": self.message});
        if let Some(state) = self.state {
            body["state"] = json!(state.as_str());
        }
        let mut resp = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"rfpq\""),
            );
        }
        resp
    }
}

impl From<QueueError> for ApiError {
    fn from(e: QueueError) -> Self {
        let status = match &e {
            QueueError::UnknownJob(_) => StatusCode::NOT_FOUND,
            QueueError::Unreachable { .. } | QueueError::Redis(_) | QueueError::Bull(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            QueueError::Damaged(..) | QueueError::BadPrefix(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        if status != StatusCode::NOT_FOUND {
            tracing::warn!(error = %e, "queue error in the HTTP API");
        }
        ApiError::new(status, e.to_string())
    }
}

/// The API's routes, auth and body limit over `state`.
pub fn router(state: ApiState) -> Router {
    let protected = Router::new()
        .route("/jobs", post(create_job))
        .route("/jobs/{id}", get(job_status))
        .route("/jobs/{id}/result", get(job_result))
        .route("/jobs/{id}/review", get(job_review))
        .route("/jobs/{id}/apply", post(job_apply))
        .route("/jobs/{id}/cancel", post(job_cancel))
        .route("/metrics", get(metrics))
        // A route layer runs before the handler's extractors: a request without the token is
        // answered 401 before a byte of its body is read.
        .route_layer(middleware::from_fn_with_state(state.clone(), require_token));
    Router::new()
        .route("/healthz", get(healthz))
        .route("/openapi.json", get(openapi))
        .merge(protected)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(
            state.max_upload_bytes.saturating_add(MULTIPART_SLACK),
        ))
        .with_state(state)
}

/// Binds `opts.addr`, then [`serve_on`].
pub async fn serve(
    queue: RfpQueue,
    opts: ServeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let listener = bind(opts.addr).await?;
    serve_on(listener, queue, opts, shutdown).await
}

/// A listener on `addr` (port 0 picks a free port; see `local_addr`).
pub async fn bind(addr: SocketAddr) -> Result<tokio::net::TcpListener, ServeError> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr, source })
}

/// Serves the API on `listener` until `shutdown` resolves (requests in flight finish). A
/// default KB that cannot be resolved is refused here, before anything is served.
pub async fn serve_on(
    listener: tokio::net::TcpListener,
    queue: RfpQueue,
    opts: ServeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    if let Some(kb) = &opts.kb {
        submit::resolve_kb(&queue, kb)
            .await
            .map_err(ServeError::Kb)?;
    }
    if opts.token.is_none() {
        tracing::warn!("the HTTP API runs without authentication");
    }
    crate::metrics::install();
    let local = listener.local_addr()?;
    tracing::info!(addr = %local, auth = opts.token.is_some(), max_upload_bytes = opts.max_upload_bytes, "serving the HTTP API");
    let app = router(ApiState::new(queue, &opts));
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await?;
    tracing::info!("HTTP API stopped");
    Ok(())
}

/// Equal in time independent of where `a` and `b` differ (their lengths may leak).
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The bearer token of an `Authorization` header (scheme case-insensitive).
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

async fn require_token(State(s): State<ApiState>, req: Request, next: Next) -> Response {
    if let Some(want) = &s.token {
        let ok = bearer(req.headers())
            .is_some_and(|given| constant_time_eq(given.as_bytes(), want.as_bytes()));
        if !ok {
            s.counters.unauthorized.fetch_add(1, Ordering::Relaxed);
            return ApiError::new(StatusCode::UNAUTHORIZED, "missing or invalid bearer token")
                .into_response();
        }
    }
    next.run(req).await
}

async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "no such endpoint (see /openapi.json)",
    )
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method not allowed on this endpoint (see /openapi.json)",
    )
}

/// Job ids are UUIDs; anything else is no job (and never reaches a Redis key).
fn check_id(id: &str) -> Result<(), ApiError> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no job '{}'", id.chars().take(64).collect::<String>()),
        ))
    }
}

async fn healthz(State(s): State<ApiState>) -> Response {
    match tokio::time::timeout(HEALTH_TIMEOUT, s.queue.workers()).await {
        Ok(Ok(_)) => (StatusCode::OK, Json(json!({"redis": "ok"}))).into_response(),
        Ok(Err(e)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"redis": "down", "error": e.to_string()})),
        )
            .into_response(),
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"redis": "down", "error": "Redis did not answer within 3 s"})),
        )
            .into_response(),
    }
}

/// `queue::render_metrics` (this process's recorded series and the gauges read from Redis now)
/// followed by this server's own request counters.
async fn metrics(State(s): State<ApiState>) -> Response {
    let mut out = crate::queue::render_metrics(&s.queue).await;
    let c = &s.counters;
    for (name, help, value) in [
        (
            "rfpq_api_jobs_submitted_total",
            "Jobs queued through this API server.",
            &c.submitted,
        ),
        (
            "rfpq_api_uploads_refused_total",
            "Uploads refused by validation (422) by this API server.",
            &c.refused,
        ),
        (
            "rfpq_api_uploads_too_large_total",
            "Uploads over the size limit (413) at this API server.",
            &c.too_large,
        ),
        (
            "rfpq_api_unauthorized_total",
            "Requests refused for a missing or wrong token (401) by this API server.",
            &c.unauthorized,
        ),
    ] {
        let value = value.load(Ordering::Relaxed);
        out.push_str(&format!(
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}\n"
        ));
    }
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(crate::queue::METRICS_CONTENT_TYPE),
        )],
        out,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_whole() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret2"));
        assert!(!constant_time_eq(b"", b"x"));
    }

    #[test]
    fn bearer_header_is_parsed() {
        let mut h = HeaderMap::new();
        assert_eq!(bearer(&h), None);
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("bearer  abc "),
        );
        assert_eq!(bearer(&h), Some("abc"));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(bearer(&h), None);
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer "));
        assert_eq!(bearer(&h), None);
    }

    #[test]
    fn upload_names_lose_directories_and_control_characters() {
        assert_eq!(upload_name(Some("../../etc/q.xlsx")), "q.xlsx");
        assert_eq!(upload_name(Some("C:\\docs\\Q 1.xlsm")), "Q 1.xlsm");
        assert_eq!(upload_name(Some("a\r\nb.xlsx")), "ab.xlsx");
        assert_eq!(upload_name(Some("..")), "workbook.xlsx");
        assert_eq!(upload_name(None), "workbook.xlsx");
    }

    #[test]
    fn content_disposition_is_a_safe_header() {
        let v = content_disposition("Fragebogen \"ü\".filled.xlsx");
        let s = v.to_str().unwrap();
        assert!(
            s.starts_with("attachment; filename=\"Fragebogen ___.filled.xlsx\""),
            "{s}"
        );
        assert!(
            s.contains("filename*=UTF-8''Fragebogen%20%22%C3%BC%22.filled.xlsx"),
            "{s}"
        );
    }

    #[test]
    fn ids_are_checked() {
        assert!(check_id("0190f3c2-7b1a-7c3e-9a51-0123456789ab").is_ok());
        assert!(check_id("x:file").is_err());
        assert!(check_id("").is_err());
    }

    #[test]
    fn openapi_names_every_route() {
        let doc = openapi_document();
        for p in [
            "/jobs",
            "/jobs/{id}",
            "/jobs/{id}/result",
            "/jobs/{id}/review",
            "/jobs/{id}/cancel",
            "/healthz",
            "/metrics",
            "/openapi.json",
        ] {
            assert!(doc["paths"][p].is_object(), "{p}");
        }
        assert_eq!(
            doc["components"]["securitySchemes"]["bearerAuth"]["scheme"],
            "bearer"
        );
    }
}
