//! HTTP API producer (`rfpq serve`): the queue's submit, status, result and cancel over HTTP
//! (axum), for callers that cannot run the CLI or share a drop folder.
//!
//! Intended CLI (wired in `cli`):
//! `rfpq serve [--addr 127.0.0.1:8080] [--token-env RFPQ_API_TOKEN] [--no-auth] [--kb KB]
//! [--max-upload-mb 50] [--batch-size N]`
//!
//! What it does:
//! - `POST /jobs` (multipart: `file`, optional `kb`, `batch_size`) validates the workbook
//!   exactly like `rfpq submit` (`workbook::load_and_detect` + `submit::require_questions`)
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

/// The uploaded file's name without any directory part or control characters.
fn upload_name(raw: Option<&str>) -> String {
    let base = raw
        .unwrap_or_default()
        .rsplit(['/', '\\'])
        .next()
        .unwrap_or_default();
    let clean: String = base.chars().filter(|c| !c.is_control()).take(200).collect();
    let clean = clean.trim();
    if clean.is_empty() || clean == "." || clean == ".." {
        "workbook.xlsx".into()
    } else {
        clean.to_string()
    }
}

/// What a multipart upload carried.
#[derive(Default)]
struct Upload {
    file: Option<(String, Vec<u8>)>,
    kb: Option<String>,
    batch_size: Option<usize>,
}

fn too_large(limit: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!(
            "the upload is larger than the limit of {} bytes ({:.1} MiB)",
            limit,
            limit as f64 / (1024.0 * 1024.0)
        ),
    )
}

fn multipart_error(e: axum::extract::multipart::MultipartError, limit: usize) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        too_large(limit)
    } else {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("bad multipart body: {}", e.body_text()),
        )
    }
}

/// Reads a field, refusing it past `limit` bytes without reading the rest.
async fn read_field(
    field: &mut Field<'_>,
    limit: usize,
    upload_limit: usize,
) -> Result<Option<Vec<u8>>, ApiError> {
    let mut buf = Vec::new();
    while let Some(chunk) = field
        .chunk()
        .await
        .map_err(|e| multipart_error(e, upload_limit))?
    {
        if buf.len() + chunk.len() > limit {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(Some(buf))
}

async fn read_upload(mut mp: Multipart, limit: usize) -> Result<Upload, ApiError> {
    let mut up = Upload::default();
    while let Some(mut field) = mp
        .next_field()
        .await
        .map_err(|e| multipart_error(e, limit))?
    {
        let name = field.name().unwrap_or_default().to_string();
        match name.as_str() {
            "file" => {
                if up.file.is_some() {
                    return Err(ApiError::new(
                        StatusCode::BAD_REQUEST,
                        "more than one 'file' field: upload one workbook per request",
                    ));
                }
                let file_name = upload_name(field.file_name());
                let bytes = read_field(&mut field, limit, limit)
                    .await?
                    .ok_or_else(|| too_large(limit))?;
                up.file = Some((file_name, bytes));
            }
            "kb" | "batch_size" => {
                let bytes = read_field(&mut field, MAX_TEXT_FIELD, limit)
                    .await?
                    .ok_or_else(|| {
                        ApiError::new(
                            StatusCode::BAD_REQUEST,
                            format!("field '{name}' is too long"),
                        )
                    })?;
                let text = String::from_utf8(bytes).map_err(|_| {
                    ApiError::new(
                        StatusCode::BAD_REQUEST,
                        format!("field '{name}' is not UTF-8"),
                    )
                })?;
                let text = text.trim();
                if name == "kb" {
                    up.kb = (!text.is_empty()).then(|| text.to_string());
                } else if !text.is_empty() {
                    let n = text
                        .parse::<usize>()
                        .ok()
                        .filter(|n| (1..=MAX_BATCH_SIZE).contains(n))
                        .ok_or_else(|| {
                            ApiError::new(
                                StatusCode::BAD_REQUEST,
                                format!(
                                    "batch_size must be a whole number from 1 to {MAX_BATCH_SIZE}"
                                ),
                            )
                        })?;
                    up.batch_size = Some(n);
                }
            }
            // Unknown fields are skipped (next_field discards their data).
            _ => {}
        }
    }
    Ok(up)
}

/// The KB an upload uses: a published name from the form (never a server path), else the
/// server's default (which may be a directory), else none.
async fn upload_kb(s: &ApiState, asked: Option<&str>) -> Result<Option<KbRef>, ApiError> {
    let refused = |e: SubmitError| match e {
        SubmitError::Queue(q) => ApiError::from(q),
        other => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, other.to_string()),
    };
    match asked {
        Some(name) => {
            let unknown = || refused(SubmitError::UnknownKb(name.to_string()));
            if crate::kb::publish::check_name(name).is_err() {
                return Err(unknown());
            }
            match s.queue.kb_resolve(name).await? {
                Some(version) => Ok(Some(KbRef {
                    name: name.to_string(),
                    version,
                })),
                None => Err(unknown()),
            }
        }
        None => match &s.kb {
            Some(kb) => submit::resolve_kb(&s.queue, kb)
                .await
                .map(Some)
                .map_err(refused),
            None => Ok(None),
        },
    }
}

async fn create_job(
    State(s): State<ApiState>,
    headers: HeaderMap,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Response, ApiError> {
    let limit = s.max_upload_bytes;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit.saturating_add(MULTIPART_SLACK) as u64) {
        s.counters.too_large.fetch_add(1, Ordering::Relaxed);
        return Err(too_large(limit));
    }
    let mp = multipart.map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!(
                "expected a multipart/form-data upload with a 'file' field: {}",
                e.body_text()
            ),
        )
    })?;
    let up = match read_upload(mp, limit).await {
        Ok(up) => up,
        Err(e) => {
            if e.status == StatusCode::PAYLOAD_TOO_LARGE {
                s.counters.too_large.fetch_add(1, Ordering::Relaxed);
            }
            return Err(e);
        }
    };
    let Some((name, bytes)) = up.file else {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "missing the multipart field 'file' (the workbook)",
        ));
    };
    let refuse = |why: String| {
        s.counters.refused.fetch_add(1, Ordering::Relaxed);
        tracing::info!(file = %name, reason = %why, "upload refused");
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, why)
    };
    // The same checks as `rfpq submit` (`submit::validate_file`), on the uploaded bytes.
    let found = tokio::task::spawn_blocking(move || crate::workbook::load_and_detect(bytes))
        .await
        .map_err(|e| refuse(format!("{name}: the workbook could not be read ({e})")))?;
    let (loaded, q) = found.map_err(|e| refuse(format!("{name}: {e}")))?;
    submit::require_questions(&q).map_err(|why| refuse(format!("{name}: {why}")))?;
    let kb = upload_kb(&s, up.kb.as_deref()).await.inspect_err(|e| {
        if e.status == StatusCode::UNPROCESSABLE_ENTITY {
            s.counters.refused.fetch_add(1, Ordering::Relaxed);
        }
    })?;
    let id = s
        .queue
        .submit_loaded(
            &name,
            &loaded.bytes,
            kb.as_ref(),
            up.batch_size.unwrap_or(s.batch_size),
            &crate::queue::SubmitExtras {
                format: q.source_format,
                warnings: q.warnings.clone(),
                write_drafts: None,
            },
        )
        .await?;
    s.counters.submitted.fetch_add(1, Ordering::Relaxed);
    tracing::info!(job = %id, file = %name, format = q.source_format.as_str(), "job queued over HTTP");
    let url = format!("/jobs/{id}");
    let mut resp = (
        StatusCode::CREATED,
        Json(json!({"id": id, "status_url": url, "warnings": q.warnings})),
    )
        .into_response();
    if let Ok(v) = HeaderValue::from_str(&url) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    Ok(resp)
}

/// `rfpq status --json`'s object.
async fn job_status(
    State(s): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    check_id(&id)?;
    Ok(Json(s.queue.status(&id).await?.to_json()))
}

async fn job_result(
    State(s): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    download(&s, &id, false).await
}

async fn job_review(
    State(s): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    download(&s, &id, true).await
}

/// The submitted file's name without its extension, for the names of the files a job returns.
fn file_stem(file_name: &str) -> String {
    std::path::Path::new(file_name)
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "workbook".into())
}

/// The content type of a workbook written back in `format` (macros keep their .xlsm type).
fn workbook_content_type(format: SourceFormat) -> &'static str {
    if format == SourceFormat::Xlsm {
        XLSM
    } else {
        XLSX
    }
}

/// JSON with every non-ASCII character escaped, fit for a header value.
fn ascii_json(v: &Value) -> String {
    let mut out = String::new();
    for ch in v.to_string().chars() {
        if ch.is_ascii() && !ch.is_ascii_control() {
            out.push(ch);
        } else {
            let mut units = [0u16; 2];
            for u in ch.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{u:04x}"));
            }
        }
    }
    out
}

/// `POST /jobs/{id}/apply` (multipart field `file`: the reviewed review workbook; `?strict=true`
/// refuses the whole apply when any row is refused): the job's original with the review
/// applied, losslessly. What was applied is in the `x-rfpq-apply-report` header (JSON).
async fn job_apply(
    State(s): State<ApiState>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Response, ApiError> {
    check_id(&id)?;
    let strict = query.as_deref().is_some_and(|q| {
        q.split('&')
            .any(|kv| matches!(kv, "strict" | "strict=true" | "strict=1"))
    });
    let st = s.queue.status(&id).await?;
    if !st.state.is_final() {
        return Err(ApiError {
            state: Some(st.state),
            ..ApiError::new(StatusCode::CONFLICT, "job is running")
        });
    }
    let mp = multipart.map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!(
                "expected a multipart/form-data upload with a 'file' field (the review workbook): {}",
                e.body_text()
            ),
        )
    })?;
    let up = read_upload(mp, s.max_upload_bytes).await?;
    let Some((_, review)) = up.file else {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "missing the multipart field 'file' (the review workbook)",
        ));
    };
    let original = s.queue.file(&id).await?;
    let applied = tokio::task::spawn_blocking(move || {
        crate::pipeline::apply::apply(&original, &review, strict)
    })
    .await
    .map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("applying crashed: {e}"),
        )
    })?;
    use crate::pipeline::apply::ApplyError;
    let applied = applied.map_err(|e| {
        let status = match &e {
            ApplyError::Review(_) | ApplyError::NoMatch | ApplyError::Refused(_) => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, e.to_string())
    })?;
    let mut report = applied.report;
    report.refused.truncate(20);
    report.reviewed.clear();
    let ext = applied.format.output_extension();
    let stem = file_stem(&st.file_name);
    let content_type = workbook_content_type(applied.format);
    let report = HeaderValue::from_str(&ascii_json(&json!(report)))
        .unwrap_or_else(|_| HeaderValue::from_static("{}"));
    Ok((
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (
                header::CONTENT_DISPOSITION,
                content_disposition(&format!("{stem}.final.{ext}")),
            ),
            (
                header::HeaderName::from_static("x-rfpq-apply-report"),
                report,
            ),
        ],
        applied.workbook,
    )
        .into_response())
}

/// `filename` for an ASCII-only quoted form; `filename*` (RFC 5987) keeps the real name.
fn content_disposition(file: &str) -> HeaderValue {
    let ascii: String = file
        .chars()
        .map(|c| {
            if (c.is_ascii_graphic() && c != '"' && c != '\\') || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let encoded: String = file
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    HeaderValue::from_str(&format!(
        "attachment; filename=\"{ascii}\"; filename*=UTF-8''{encoded}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("attachment"))
}

async fn download(s: &ApiState, id: &str, review: bool) -> Result<Response, ApiError> {
    check_id(id)?;
    let st = s.queue.status(id).await?;
    if !st.state.is_final() {
        return Err(ApiError {
            state: Some(st.state),
            ..ApiError::new(StatusCode::CONFLICT, "job is running")
        });
    }
    let Some(bytes) = s.queue.result(id, review).await? else {
        let why = st.reason.as_deref().unwrap_or("no reason recorded");
        return Err(ApiError {
            state: Some(st.state),
            ..ApiError::new(
                StatusCode::CONFLICT,
                format!("job ended {} without a result: {why}", st.state.as_str()),
            )
        });
    };
    let format = st.format();
    let stem = file_stem(&st.file_name);
    let (file, content_type) = if review {
        (format!("{stem}.review.xlsx"), XLSX)
    } else {
        let ext = format.output_extension();
        (
            format!("{stem}.filled.{ext}"),
            workbook_content_type(format),
        )
    };
    Ok((
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CONTENT_DISPOSITION, content_disposition(&file)),
        ],
        bytes,
    )
        .into_response())
}

async fn job_cancel(
    State(s): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    check_id(&id)?;
    let outcome = s.queue.cancel(&id).await?;
    let (name, state) = match outcome {
        CancelOutcome::Cancelled => ("cancelled", JobPhase::Cancelled),
        CancelOutcome::Requested => (
            "requested",
            s.queue
                .status(&id)
                .await
                .map(|st| st.state)
                .unwrap_or(JobPhase::Running),
        ),
        CancelOutcome::AlreadyFinal(p) => ("already_final", p),
    };
    tracing::info!(job = %id, outcome = name, "cancel over HTTP");
    Ok(Json(json!({"outcome": name, "state": state.as_str()})))
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

/// `crate::metrics::render` (this process's recorded series and the gauges read from Redis now)
/// followed by this server's own request counters.
async fn metrics(State(s): State<ApiState>) -> Response {
    let mut out = crate::metrics::render(&s.queue).await;
    let c = &s.counters;
    let mut metric = |name: &str, help: &str, value: u64| {
        out.push_str(&format!(
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}\n"
        ));
    };
    metric(
        "rfpq_api_jobs_submitted_total",
        "Jobs queued through this API server.",
        c.submitted.load(Ordering::Relaxed),
    );
    metric(
        "rfpq_api_uploads_refused_total",
        "Uploads refused by validation (422) by this API server.",
        c.refused.load(Ordering::Relaxed),
    );
    metric(
        "rfpq_api_uploads_too_large_total",
        "Uploads over the size limit (413) at this API server.",
        c.too_large.load(Ordering::Relaxed),
    );
    metric(
        "rfpq_api_unauthorized_total",
        "Requests refused for a missing or wrong token (401) by this API server.",
        c.unauthorized.load(Ordering::Relaxed),
    );
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(crate::metrics::CONTENT_TYPE),
        )],
        out,
    )
        .into_response()
}

async fn openapi() -> Json<Value> {
    Json(openapi_document())
}

/// The hand-written OpenAPI 3.0 description served at `/openapi.json`.
pub fn openapi_document() -> Value {
    let error = |description: &str| {
        json!({
            "description": description,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
        })
    };
    let id_param = json!([{
        "name": "id", "in": "path", "required": true,
        "description": "Job id (as returned by POST /jobs).",
        "schema": {"type": "string"}
    }]);
    let workbook = |what: &str| {
        json!({
            "description": what,
            "headers": {"Content-Disposition": {
                "description": "attachment; filename=\"<stem>.filled.xlsx\" (.xlsm for a macro-enabled workbook; <stem>.review.xlsx for the review)",
                "schema": {"type": "string"}
            }},
            "content": {
                XLSX: {"schema": {"type": "string", "format": "binary"}},
                XLSM: {"schema": {"type": "string", "format": "binary"}}
            }
        })
    };
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "rfpq HTTP API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Queue security questionnaires (.xlsx, .xlsm, .xls, .ods) for rfpq workers, follow them and download the filled and review workbooks."
        },
        "security": [{"bearerAuth": []}],
        "paths": {
            "/jobs": {"post": {
                "summary": "Validate a workbook and queue it (like `rfpq submit`)",
                "requestBody": {"required": true, "content": {"multipart/form-data": {"schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {"type": "string", "format": "binary", "description": "The workbook; its file name is kept for the result's name."},
                        "kb": {"type": "string", "description": "A KB name published with `rfpq kb publish` (default: the server's --kb)."},
                        "batch_size": {"type": "integer", "minimum": 1, "maximum": MAX_BATCH_SIZE, "description": "Rows per batch job."}
                    }
                }}}},
                "responses": {
                    "201": {"description": "Queued", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Submitted"}}}},
                    "400": error("Not a multipart upload, no 'file' field, or a bad field"),
                    "401": error("Missing or invalid bearer token (nothing is read or queued)"),
                    "413": error("The upload is over the size limit"),
                    "422": error("The workbook is refused (not a workbook, damaged, encrypted, no questions) or the KB is unknown; nothing is queued"),
                    "503": error("Redis is unreachable")
                }
            }},
            "/jobs/{id}": {"get": {
                "summary": "A job's status (as `rfpq status --json`)",
                "parameters": id_param,
                "responses": {
                    "200": {"description": "Status", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/JobStatus"}}}},
                    "401": error("Missing or invalid bearer token"),
                    "404": error("Unknown job (or older than the 7-day retention)"),
                    "503": error("Redis is unreachable")
                }
            }},
            "/jobs/{id}/result": {"get": {
                "summary": "The filled workbook",
                "parameters": id_param,
                "responses": {
                    "200": workbook("The filled workbook"),
                    "401": error("Missing or invalid bearer token"),
                    "404": error("Unknown job"),
                    "409": error("The job has not finished (`job is running`), or it ended without a result")
                }
            }},
            "/jobs/{id}/review": {"get": {
                "summary": "The review workbook (confidence, sources, rows that need review)",
                "parameters": id_param,
                "responses": {
                    "200": workbook("The review workbook (.xlsx)"),
                    "401": error("Missing or invalid bearer token"),
                    "404": error("Unknown job"),
                    "409": error("The job has not finished (`job is running`), or it ended without a result")
                }
            }},
            "/jobs/{id}/apply": {"post": {
                "summary": "The job's original with a reviewed review workbook applied (approved and edited answers, rfpq's written answers nobody rejected), verified lossless; ?strict=true refuses it all when any row is refused",
                "parameters": id_param,
                "requestBody": {"required": true, "content": {"multipart/form-data": {"schema": {
                    "type": "object", "required": ["file"],
                    "properties": {"file": {"type": "string", "format": "binary", "description": "The review workbook, as the reviewer left it"}}
                }}}},
                "responses": {
                    "200": workbook("The final workbook; the x-rfpq-apply-report header holds what was applied (JSON)"),
                    "401": error("Missing or invalid bearer token"),
                    "404": error("Unknown job"),
                    "409": error("The job has not finished"),
                    "422": error("Not a review workbook of this job, or (strict) a row was refused: the message names the rows and reasons")
                }
            }},
            "/jobs/{id}/cancel": {"post": {
                "summary": "Cancel a job (a queued job at once, a running one within a second; finished rows are kept)",
                "parameters": id_param,
                "responses": {
                    "200": {"description": "What the cancel did", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/CancelResult"}}}},
                    "401": error("Missing or invalid bearer token"),
                    "404": error("Unknown job")
                }
            }},
            "/healthz": {"get": {
                "summary": "Whether Redis answers",
                "security": [],
                "responses": {
                    "200": {"description": "Redis answers", "content": {"application/json": {"schema": {
                        "type": "object", "properties": {"redis": {"type": "string", "enum": ["ok"]}}
                    }}}},
                    "503": {"description": "Redis is down", "content": {"application/json": {"schema": {
                        "type": "object", "properties": {"redis": {"type": "string", "enum": ["down"]}, "error": {"type": "string"}}
                    }}}}
                }
            }},
            "/metrics": {"get": {
                "summary": "Prometheus metrics: rfpq_jobs{state}, rfpq_queue_depth{state}, rfpq_workers_live, rfpq_worker_slots, rfpq_worker_active_jobs and rfpq_redis_up (read from Redis at scrape time), the process's recorded rfpq_* series, and this server's rfpq_api_* counters",
                "description": "When Redis does not answer, the response is still 200: rfpq_redis_up is 0 and the series read from Redis are left out.",
                "responses": {
                    "200": {"description": "Prometheus text exposition format 0.0.4", "content": {"text/plain": {"schema": {"type": "string"}}}},
                    "401": error("Missing or invalid bearer token")
                }
            }},
            "/openapi.json": {"get": {
                "summary": "This document",
                "security": [],
                "responses": {"200": {"description": "OpenAPI 3.0 document", "content": {"application/json": {"schema": {"type": "object"}}}}}
            }}
        },
        "components": {
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": {"type": "object", "required": ["error"], "properties": {
                    "error": {"type": "string"},
                    "state": {"type": "string", "description": "The job's state, when it explains the error"}
                }},
                "Submitted": {"type": "object", "required": ["id", "status_url", "warnings"], "properties": {
                    "id": {"type": "string"},
                    "status_url": {"type": "string", "example": "/jobs/0190f3c2-…"},
                    "warnings": {"type": "array", "items": {"type": "string"}}
                }},
                "CancelResult": {"type": "object", "required": ["outcome", "state"], "properties": {
                    "outcome": {"type": "string", "enum": ["cancelled", "requested", "already_final"]},
                    "state": {"$ref": "#/components/schemas/JobState"}
                }},
                "JobState": {"type": "string", "enum": ["queued", "running", "completed", "completed_with_errors", "failed", "cancelled"]},
                "JobStatus": {"type": "object", "properties": {
                    "id": {"type": "string"},
                    "state": {"$ref": "#/components/schemas/JobState"},
                    "file_name": {"type": "string"},
                    "rows_total": {"type": "integer"},
                    "rows_done": {"type": "integer"},
                    "rows_failed": {"type": "integer"},
                    "needs_review": {"type": "integer"},
                    "reason": {"type": "string", "nullable": true},
                    "kb": {"type": "string", "nullable": true},
                    "kb_version": {"type": "string", "nullable": true},
                    "config_hash": {"type": "string", "nullable": true, "description": "Hash of the router configuration the job was planned with; with kb_version, what its answers depend on besides the workbook"},
                    "config_hashes": {"type": "object", "additionalProperties": {"type": "integer"}, "description": "Rows answered per router configuration hash (more than one: workers with different configurations)"},
                    "source_format": {"type": "string", "enum": ["xlsx", "xlsm", "xls", "ods"]},
                    "warnings": {"type": "array", "items": {"type": "string"}},
                    "created_ms": {"type": "integer"},
                    "finished_ms": {"type": "integer", "nullable": true},
                    "eta_s": {"type": "number", "nullable": true},
                    "last_heartbeat_ms": {"type": "integer", "nullable": true},
                    "cancel_requested": {"type": "boolean"},
                    "models": {"type": "object", "additionalProperties": {"type": "integer"}},
                    "report": {"type": "object", "description": "The pipeline's counts (questions, answered, library_matches, needs_review, abstained, llm_calls, tokens, duration_s …)"}
                }}
            }
        }
    })
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
