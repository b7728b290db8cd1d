//! Typed provider failures: a closed set of `FailureKind`s that retry, cooldown and fallback key
//! off, and the classification of HTTP statuses and wire-format error bodies into them.
//! Does not decide policy (that is `layers`); it only says what went wrong.

use serde::Serialize;
use std::time::Duration;

/// What kind of failure a provider call ended with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// TCP/TLS connect failed (refused, DNS, connect timeout).
    ConnectError,
    /// No first token, or the whole attempt, within the time budget.
    Timeout,
    /// 429 with a retryable rate limit (honours Retry-After).
    RateLimited,
    /// 429 `insufficient_quota`, 402 billing: not retryable.
    QuotaExhausted,
    /// 401/403: wrong or missing key.
    AuthError,
    /// 500 and other 5xx without a more precise meaning.
    ServerError,
    /// Anthropic 529 `overloaded_error`, OpenAI 503 `server_is_overloaded`, 502/504.
    Overloaded,
    /// Ollama 503 "server busy … maximum pending requests exceeded".
    QueueFull,
    /// 503 "Loading model" (llama.cpp `unavailable_error`): the server is starting. Transient.
    Starting,
    /// 500 "out of memory" while loading a model.
    OutOfMemory,
    /// 404: the model is not pulled / does not exist.
    ModelNotFound,
    /// 400 and other 4xx: a problem in our request. Never retried.
    BadRequest,
    /// The prompt does not fit the target's context window (preflight or detected truncation).
    ContextWindow,
    /// The stream ended (or broke) before its end marker.
    StreamInterrupted,
    /// The output does not parse or does not match the schema.
    InvalidOutput,
    /// Structured output cut off at `max_tokens` (`length` / `max_tokens` stop reason).
    Truncated,
    /// Empty output, a refusal or a content filter stop.
    Refused,
    /// The target is cooling down (circuit breaker open); it was not called.
    CircuitOpen,
    /// The target is disabled by configuration or data policy; it was not called.
    Disabled,
}

impl FailureKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::ConnectError => "unreachable",
            FailureKind::Timeout => "timeout",
            FailureKind::RateLimited => "rate limited",
            FailureKind::QuotaExhausted => "quota exhausted",
            FailureKind::AuthError => "authentication failed",
            FailureKind::ServerError => "server error",
            FailureKind::Overloaded => "overloaded",
            FailureKind::QueueFull => "queue full",
            FailureKind::Starting => "server starting",
            FailureKind::OutOfMemory => "out of memory",
            FailureKind::ModelNotFound => "model not available",
            FailureKind::BadRequest => "bad request",
            FailureKind::ContextWindow => "context window exceeded",
            FailureKind::StreamInterrupted => "stream interrupted",
            FailureKind::InvalidOutput => "invalid output",
            FailureKind::Truncated => "output truncated",
            FailureKind::Refused => "refused",
            FailureKind::CircuitOpen => "cooling down",
            FailureKind::Disabled => "disabled",
        }
    }

    /// Whether the failure says something about the target's health (feeds the breaker).
    pub fn counts_against_target(self) -> bool {
        !matches!(
            self,
            FailureKind::BadRequest
                | FailureKind::ContextWindow
                | FailureKind::InvalidOutput
                | FailureKind::Truncated
                | FailureKind::Refused
                | FailureKind::Starting
                | FailureKind::CircuitOpen
                | FailureKind::Disabled
        )
    }

    /// Failures after which the target is useless for a while: the breaker opens at once.
    pub fn opens_immediately(self) -> bool {
        matches!(
            self,
            FailureKind::ConnectError
                | FailureKind::ModelNotFound
                | FailureKind::AuthError
                | FailureKind::QuotaExhausted
                | FailureKind::OutOfMemory
        )
    }

    /// Failures after which the target stays useless until someone acts: the breaker opens for
    /// the longest cooldown (`cooldown.max_s`), not the growing first periods.
    pub fn long_cooldown(self) -> bool {
        matches!(self, FailureKind::OutOfMemory)
    }

    /// Whether the retry layer may try the same target again (before config filters).
    pub fn retryable(self) -> bool {
        matches!(
            self,
            FailureKind::ConnectError
                | FailureKind::Timeout
                | FailureKind::RateLimited
                | FailureKind::ServerError
                | FailureKind::Overloaded
                | FailureKind::QueueFull
                | FailureKind::Starting
                | FailureKind::StreamInterrupted
        )
    }
}

impl std::fmt::Display for FailureKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why one target failed. Messages never contain API keys (requests are not echoed).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{kind}: {message}")]
pub struct ProviderError {
    pub kind: FailureKind,
    pub message: String,
    /// HTTP status, when the failure came with one.
    pub status: Option<u16>,
    /// Wait the server asked for (Retry-After / retry-after-ms), when it did.
    pub retry_after: Option<Duration>,
}

impl ProviderError {
    pub fn new(kind: FailureKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            status: None,
            retry_after: None,
        }
    }
    pub fn with_status(mut self, status: u16) -> Self {
        self.status = Some(status);
        self
    }
    pub fn with_retry_after(mut self, d: Option<Duration>) -> Self {
        self.retry_after = d;
        self
    }
}

/// Extracts `(error.type or code, message)` from any of the three wire formats:
/// Ollama `{"error":"…"}`, OpenAI `{"error":{"message","type","code"}}`,
/// Anthropic `{"type":"error","error":{"type","message"}}`.
pub fn error_parts(body: &str) -> (Option<String>, String) {
    let v: Option<serde_json::Value> = serde_json::from_str(body.trim()).ok();
    if let Some(e) = v.as_ref().and_then(|v| v.get("error")) {
        if let Some(s) = e.as_str() {
            return (None, s.to_string());
        }
        let msg = e
            .get("message")
            .and_then(|m| m.as_str())
            .unwrap_or_default()
            .to_string();
        let code = e.get("code").and_then(|c| c.as_str()).map(str::to_string);
        let ty = e.get("type").and_then(|t| t.as_str()).map(str::to_string);
        // OpenAI puts the precise reason in `code` (insufficient_quota), Anthropic in `type`.
        return (code.or(ty), msg);
    }
    (None, body.chars().take(300).collect())
}

/// Classifies an error status + body. `error_type` is `error.code`/`error.type` when present.
pub fn classify_status(status: u16, body: &str, retry_after: Option<Duration>) -> ProviderError {
    let (ty, msg) = error_parts(body);
    let lower = msg.to_lowercase();
    let ty_s = ty.as_deref().unwrap_or("");
    let kind = if is_context_overflow(&lower) {
        FailureKind::ContextWindow
    } else {
        match (status, ty_s) {
            (_, "insufficient_quota") | (402, _) | (_, "billing_error") => {
                FailureKind::QuotaExhausted
            }
            (429, _) if lower.contains("exceeded your current quota") => {
                FailureKind::QuotaExhausted
            }
            (429, _) => FailureKind::RateLimited,
            (401 | 403, _) => FailureKind::AuthError,
            (404, _) => FailureKind::ModelNotFound,
            (408, _) => FailureKind::Timeout,
            (409, _) => FailureKind::ServerError,
            (529, _) | (_, "overloaded_error") | (_, "server_is_overloaded") => {
                FailureKind::Overloaded
            }
            (503, _) if lower.contains("maximum pending requests") => FailureKind::QueueFull,
            (503, _) if lower.contains("loading model") || ty_s == "unavailable_error" => {
                FailureKind::Starting
            }
            (500, _) if is_out_of_memory(&lower) => FailureKind::OutOfMemory,
            (502..=504, _) => FailureKind::Overloaded,
            (500..=599, _) => FailureKind::ServerError,
            _ => FailureKind::BadRequest,
        }
    };
    let mut detail = match &ty {
        Some(t) => format!("HTTP {status} ({t}): {msg}"),
        None => format!("HTTP {status}: {msg}"),
    };
    if kind == FailureKind::OutOfMemory {
        detail.push_str(OOM_HINT);
    }
    ProviderError::new(kind, detail)
        .with_status(status)
        .with_retry_after(retry_after)
}

/// Classifies an error object that arrived inside a 200 stream (by type and message).
pub fn classify_stream_error(error_json: &serde_json::Value) -> ProviderError {
    let body = serde_json::json!({ "error": error_json }).to_string();
    let (ty, msg) = error_parts(&body);
    let lower = msg.to_lowercase();
    let kind = match ty.as_deref() {
        _ if is_context_overflow(&lower) => FailureKind::ContextWindow,
        Some("overloaded_error") | Some("server_is_overloaded") => FailureKind::Overloaded,
        Some("rate_limit_error") | Some("rate_limit_exceeded") => FailureKind::RateLimited,
        Some("insufficient_quota") | Some("billing_error") => FailureKind::QuotaExhausted,
        Some("invalid_request_error") => FailureKind::BadRequest,
        Some("authentication_error") | Some("permission_error") => FailureKind::AuthError,
        Some("not_found_error") => FailureKind::ModelNotFound,
        _ if is_out_of_memory(&lower) => FailureKind::OutOfMemory,
        _ => FailureKind::ServerError,
    };
    let mut detail = match ty {
        Some(t) => format!("error inside a 200 stream ({t}): {msg}"),
        None => format!("error inside a 200 stream: {msg}"),
    };
    if kind == FailureKind::OutOfMemory {
        detail.push_str(OOM_HINT);
    }
    ProviderError::new(kind, detail)
}

/// Appended to out-of-memory failures: what the operator can change.
pub const OOM_HINT: &str = " (hint: the model does not fit in memory; lower its num_ctx in \
    llm_models.yaml, lower OLLAMA_NUM_PARALLEL, or use a smaller model)";

/// Ollama's model-load memory errors (`llm/status.go`, `server/sched.go`).
fn is_out_of_memory(lower: &str) -> bool {
    lower.contains("out of memory")
        || lower.contains("insufficient memory")
        || lower.contains("requires more system memory")
}

fn is_context_overflow(lower: &str) -> bool {
    lower.contains("maximum context length")
        || lower.contains("prompt is too long")
        || lower.contains("exceeds the context length")
        || lower.contains("context window")
}

/// Parses `retry-after-ms`, then `retry-after` (seconds or an IMF-fixdate HTTP date).
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    if let Some(ms) = headers
        .get("retry-after-ms")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|v| v.is_finite() && *v >= 0.0)
    {
        return Some(Duration::from_secs_f64(ms / 1000.0));
    }
    let v = headers.get("retry-after")?.to_str().ok()?.trim();
    if let Ok(secs) = v.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs));
    }
    let at = parse_http_date(v)?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_secs();
    Some(Duration::from_secs(at.saturating_sub(now)))
}

/// `Sun, 06 Nov 1994 08:49:37 GMT` → seconds since the epoch.
fn parse_http_date(s: &str) -> Option<u64> {
    let parts: Vec<&str> = s.split_whitespace().collect();
    if parts.len() != 6 || parts[5] != "GMT" {
        return None;
    }
    let day: u64 = parts[1].parse().ok()?;
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ]
    .iter()
    .position(|m| *m == parts[2])? as u64
        + 1;
    let year: u64 = parts[3].parse().ok()?;
    let hms: Vec<u64> = parts[4]
        .split(':')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    if hms.len() != 3 || year < 1970 {
        return None;
    }
    // Days from civil (Howard Hinnant's algorithm).
    let (y, m) = if month <= 2 {
        (year - 1, month + 9)
    } else {
        (year, month - 3)
    };
    let era = y / 400;
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146097 + doe - 719468;
    Some(days * 86400 + hms[0] * 3600 + hms[1] * 60 + hms[2])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_and_bodies_map_to_kinds() {
        let k = |s, b: &str| classify_status(s, b, None).kind;
        assert_eq!(
            k(
                429,
                r#"{"error":{"message":"You exceeded your current quota","type":"insufficient_quota","param":null,"code":"insufficient_quota"}}"#
            ),
            FailureKind::QuotaExhausted
        );
        assert_eq!(
            k(
                429,
                r#"{"error":{"message":"Rate limit reached","type":"requests","code":"rate_limit_exceeded"}}"#
            ),
            FailureKind::RateLimited
        );
        assert_eq!(
            k(
                503,
                r#"{"error":"server busy, please try again.  maximum pending requests exceeded"}"#
            ),
            FailureKind::QueueFull
        );
        assert_eq!(
            k(
                529,
                r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#
            ),
            FailureKind::Overloaded
        );
        assert_eq!(
            k(404, r#"{"error":"model 'x' not found"}"#),
            FailureKind::ModelNotFound
        );
        assert_eq!(
            k(
                400,
                r#"{"error":"\"qwen2.5:7b\" does not support thinking"}"#
            ),
            FailureKind::BadRequest
        );
        assert_eq!(
            k(
                400,
                r#"{"type":"error","error":{"type":"invalid_request_error","message":"prompt is too long: 210000 tokens > 200000 maximum"}}"#
            ),
            FailureKind::ContextWindow
        );
        assert_eq!(
            k(
                500,
                r#"{"error":"model requires more system memory: out of memory"}"#
            ),
            FailureKind::OutOfMemory
        );
        assert_eq!(
            k(
                500,
                r#"{"error":"model requires more system memory (5.2 GiB) than is available (1.0 GiB)"}"#
            ),
            FailureKind::OutOfMemory
        );
        assert_eq!(
            k(
                503,
                r#"{"error":{"code":503,"message":"Loading model","type":"unavailable_error"}}"#
            ),
            FailureKind::Starting
        );
        assert_eq!(k(500, "boom"), FailureKind::ServerError);
        assert_eq!(k(401, "{}"), FailureKind::AuthError);
    }

    #[test]
    fn http_dates_parse() {
        assert_eq!(
            parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(784111777)
        );
        assert_eq!(parse_http_date("soon"), None);
    }

    #[test]
    fn kinds_policy_is_consistent() {
        assert!(!FailureKind::BadRequest.retryable());
        assert!(!FailureKind::QuotaExhausted.retryable());
        assert!(!FailureKind::BadRequest.counts_against_target());
        assert!(FailureKind::ConnectError.opens_immediately());
        assert!(FailureKind::ServerError.retryable());
    }
}
