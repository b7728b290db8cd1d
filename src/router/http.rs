//! Shared HTTP plumbing for the wire-format providers: one reqwest client per provider (connect
//! timeout, no redirects, no retries), the API key as a redacted `Secret`, error-status
//! classification, and deadline-aware readers for NDJSON lines and SSE events.
//! Does not know any wire format's fields and never retries.

use super::config::ProviderConfig;
use super::error::{FailureKind, ProviderError, classify_status, retry_after};
use super::provider::Deadlines;
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use serde_json::Value;
use std::time::{Duration, Instant};

/// An API key. Its Debug/Display never show the value.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// How a provider authenticates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    /// `Authorization: Bearer <key>` (OpenAI-compatible, Ollama behind a proxy).
    Bearer,
    /// `x-api-key: <key>` (Anthropic).
    XApiKey,
}

/// Base URL + client + key of one HTTP provider.
#[derive(Debug, Clone)]
pub struct HttpBase {
    pub base_url: String,
    api_key: Option<Secret>,
    auth: Auth,
    client: reqwest::Client,
}

impl HttpBase {
    /// Builds the client; `api_key` is read from `api_key_env` (env var name only in errors).
    pub fn new(cfg: &ProviderConfig, connect: Duration, auth: Auth) -> Result<Self, ProviderError> {
        crate::install_tls_provider();
        let base_url = cfg
            .resolved_base_url()
            .ok_or_else(|| ProviderError::new(FailureKind::Disabled, "no base_url configured"))?;
        let api_key = cfg
            .api_key_env
            .as_ref()
            .and_then(|v| std::env::var(v).ok())
            .filter(|k| !k.is_empty())
            .map(Secret);
        let client = reqwest::Client::builder()
            .connect_timeout(connect)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| ProviderError::new(FailureKind::Disabled, format!("http client: {e}")))?;
        Ok(Self {
            base_url,
            api_key,
            auth,
            client,
        })
    }

    pub fn has_key(&self) -> bool {
        self.api_key.is_some()
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let mut req = self
            .client
            .request(method, format!("{}{}", self.base_url, path));
        if let Some(key) = &self.api_key {
            req = match self.auth {
                Auth::Bearer => req.bearer_auth(key.expose()),
                Auth::XApiKey => req.header("x-api-key", key.expose()),
            };
        }
        req
    }

    /// Sends a request and waits for a success status before the first-token deadline.
    /// Error statuses are read and classified (the body wait is bounded by the total deadline).
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
        deadlines: Deadlines,
    ) -> Result<reqwest::Response, ProviderError> {
        let mut req = self.request(method, path);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = with_deadline(
            deadlines.before_first_token(),
            "no response headers",
            async { req.send().await.map_err(classify_reqwest) },
        )
        .await?;
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let ra = retry_after(resp.headers());
        let text = with_deadline(deadlines.total, "error body not complete", async {
            resp.text().await.map_err(classify_reqwest)
        })
        .await
        .unwrap_or_default();
        Err(classify_status(status.as_u16(), &text, ra))
    }

    /// GET → JSON.
    pub async fn get_json(&self, path: &str, deadlines: Deadlines) -> Result<Value, ProviderError> {
        let resp = self
            .send(reqwest::Method::GET, path, None, &[], deadlines)
            .await?;
        read_json(resp, deadlines).await
    }
}

/// Reads a whole JSON body before the deadline.
pub async fn read_json<T: serde::de::DeserializeOwned>(
    resp: reqwest::Response,
    deadlines: Deadlines,
) -> Result<T, ProviderError> {
    let text = with_deadline(deadlines.total, "response body not complete", async {
        resp.text().await.map_err(|e| {
            ProviderError::new(
                FailureKind::StreamInterrupted,
                format!("response body broke off: {}", chain(&e)),
            )
        })
    })
    .await?;
    serde_json::from_str(&text).map_err(|e| {
        ProviderError::new(
            FailureKind::ServerError,
            format!("malformed JSON response ({e}): {}", snippet(&text)),
        )
    })
}

/// Whether a response is a stream (NDJSON or SSE) rather than one JSON object.
pub fn is_stream(resp: &reqwest::Response) -> bool {
    resp.headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|ct| ct.contains("ndjson") || ct.contains("event-stream"))
        .unwrap_or(false)
}

/// Runs `fut` until `deadline`; on expiry a `Timeout` failure saying `what`.
pub async fn with_deadline<T>(
    deadline: Option<Instant>,
    what: &str,
    fut: impl Future<Output = Result<T, ProviderError>>,
) -> Result<T, ProviderError> {
    match deadline {
        None => fut.await,
        Some(d) => {
            let started = Instant::now();
            match tokio::time::timeout_at(d.into(), fut).await {
                Ok(r) => r,
                Err(_) => Err(ProviderError::new(
                    FailureKind::Timeout,
                    format!(
                        "{what} within the time budget ({} ms waited)",
                        started.elapsed().as_millis()
                    ),
                )),
            }
        }
    }
}

/// Lines of a streamed body, each read under a deadline.
pub struct Lines {
    stream: BoxStream<'static, reqwest::Result<Vec<u8>>>,
    buf: Vec<u8>,
    ended: bool,
}

impl Lines {
    pub fn new(resp: reqwest::Response) -> Self {
        Self {
            stream: resp.bytes_stream().map(|r| r.map(|b| b.to_vec())).boxed(),
            buf: Vec::new(),
            ended: false,
        }
    }

    /// The next line (without its newline), `None` at a clean end of the body. A broken
    /// connection is `StreamInterrupted`; no data by `deadline` is a `Timeout` saying `what`.
    pub async fn next_line(
        &mut self,
        deadline: Option<Instant>,
        what: &str,
    ) -> Result<Option<String>, ProviderError> {
        loop {
            if let Some(pos) = self.buf.iter().position(|b| *b == b'\n') {
                let mut line: Vec<u8> = self.buf.drain(..=pos).collect();
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                return Ok(Some(String::from_utf8_lossy(&line).into_owned()));
            }
            if self.ended {
                if self.buf.is_empty() {
                    return Ok(None);
                }
                let line = std::mem::take(&mut self.buf);
                return Ok(Some(String::from_utf8_lossy(&line).into_owned()));
            }
            let next =
                with_deadline(deadline, what, async { Ok(self.stream.next().await) }).await?;
            match next {
                None => self.ended = true,
                Some(Ok(bytes)) => self.buf.extend_from_slice(&bytes),
                Some(Err(e)) => {
                    return Err(ProviderError::new(
                        FailureKind::StreamInterrupted,
                        format!("stream broke off: {}", chain(&e)),
                    ));
                }
            }
        }
    }

    /// The next SSE event as `(event name, data)`; comments and ids are skipped.
    pub async fn next_event(
        &mut self,
        deadline: Option<Instant>,
        what: &str,
    ) -> Result<Option<(Option<String>, String)>, ProviderError> {
        let mut event = None;
        let mut data: Option<String> = None;
        loop {
            let Some(line) = self.next_line(deadline, what).await? else {
                return Ok(data.map(|d| (event, d)));
            };
            if line.is_empty() {
                if let Some(d) = data.take() {
                    return Ok(Some((event, d)));
                }
                event = None;
                continue;
            }
            if let Some(v) = line.strip_prefix("event:") {
                event = Some(v.trim().to_string());
            } else if let Some(v) = line.strip_prefix("data:") {
                let v = v.strip_prefix(' ').unwrap_or(v);
                match &mut data {
                    Some(d) => {
                        d.push('\n');
                        d.push_str(v);
                    }
                    None => data = Some(v.to_string()),
                }
            }
        }
    }
}

/// Parses one stream line/event payload; a malformed one is a server fault.
pub fn parse_chunk(text: &str) -> Result<Value, ProviderError> {
    serde_json::from_str(text).map_err(|e| {
        ProviderError::new(
            FailureKind::ServerError,
            format!("malformed stream chunk ({e}): {}", snippet(text)),
        )
    })
}

pub fn snippet(s: &str) -> String {
    s.chars().take(200).collect()
}

/// reqwest error with its causes (e.g. "Connection refused").
pub fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        s.push_str(": ");
        s.push_str(&c.to_string());
        src = c.source();
    }
    s
}

pub fn classify_reqwest(e: reqwest::Error) -> ProviderError {
    let kind = if e.is_connect() {
        FailureKind::ConnectError
    } else if e.is_timeout() {
        FailureKind::Timeout
    } else {
        // Accepted, then closed before a full response (e.g. the server restarted).
        FailureKind::StreamInterrupted
    };
    ProviderError::new(kind, chain(&e))
}

/// `u64` field as `u32` (saturating), 0 when absent.
pub fn count(v: &Value, pointer: &str) -> u32 {
    v.pointer(pointer)
        .and_then(|n| n.as_u64())
        .map(|n| n.min(u32::MAX as u64) as u32)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted_in_debug() {
        let s = Secret("sk-very-secret".into());
        assert_eq!(format!("{s:?}"), "Secret(***)");
    }
}
