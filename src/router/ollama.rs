//! Ollama native API: `/api/chat` (NDJSON stream or one object; `format` schema,
//! `options.num_ctx`/`num_predict`/`temperature`, `keep_alive`), `/api/embed` (batched),
//! `/api/tags`, `/api/show`, `/api/pull` (streamed progress) and warm-up loads.
//! Detects silent truncation (`prompt_eval_count` ≈ `num_ctx`). A schema with enum fields also
//! asks for `logprobs` / `top_logprobs` (unless the provider's `logprobs: false`; Ollama before
//! v0.12.11 ignores them), read from each chunk's `logprobs[]` into `choice_probs` (see
//! `logprobs`). Does not retry or time out by itself beyond the deadlines it is given.

use super::config::ProviderConfig;
use super::error::{FailureKind, ProviderError, classify_stream_error};
use super::http::{Auth, HttpBase, Lines, count, is_stream, parse_chunk, read_json};
use super::logprobs::{TOP_LOGPROBS, TokenLogprobs, enum_fields};
use super::provider::{
    CallMeter, ChatCall, ChatResponse, Deadlines, EmbedCall, EmbedResponse, Provider,
};
use futures_util::future::BoxFuture;
use serde::Serialize;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::time::Duration;

/// Tokens below `num_ctx` at which a prompt counts as silently truncated.
pub fn truncation_margin(num_ctx: u32) -> u32 {
    (num_ctx / 64).max(8)
}

/// One Ollama server.
#[derive(Debug)]
pub struct Ollama {
    http: HttpBase,
    stream: bool,
    keep_alive: Option<String>,
    /// Fixed `num_ctx` per model (never varied: a change reloads the model).
    num_ctx: HashMap<String, u32>,
    /// Ask for logprobs on calls whose schema has enum fields.
    logprobs: bool,
}

/// One progress line of `/api/pull`.
#[derive(Debug, Clone, Serialize, Default)]
pub struct PullProgress {
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completed: Option<u64>,
}

/// Outcome of a warm-up load.
#[derive(Debug, Clone, Serialize)]
pub struct WarmReport {
    pub model: String,
    /// `load` when Ollama loaded (or already had) the model.
    pub done_reason: Option<String>,
    pub load_ms: u64,
    pub elapsed_ms: u64,
}

impl Ollama {
    pub fn new(
        cfg: &ProviderConfig,
        connect: Duration,
        num_ctx: HashMap<String, u32>,
    ) -> Result<Self, ProviderError> {
        Ok(Self {
            http: HttpBase::new(cfg, connect, Auth::Bearer)?,
            stream: cfg.stream,
            keep_alive: cfg.keep_alive.clone(),
            num_ctx,
            logprobs: cfg.logprobs,
        })
    }

    pub fn base_url(&self) -> &str {
        &self.http.base_url
    }

    /// POSTs `body` to `path` (`/api/…`), with the configured `keep_alive` when `keep`.
    async fn post(
        &self,
        path: &str,
        mut body: Value,
        keep: bool,
        deadlines: Deadlines,
    ) -> Result<reqwest::Response, ProviderError> {
        if keep && let Some(k) = &self.keep_alive {
            body["keep_alive"] = keep_alive_json(k);
        }
        self.http
            .send(reqwest::Method::POST, path, Some(&body), &[], deadlines)
            .await
    }

    async fn do_chat(&self, call: &ChatCall<'_>) -> Result<ChatResponse, ProviderError> {
        let num_ctx = self.num_ctx.get(call.model).copied();
        let mut options =
            json!({"num_predict": call.req.max_tokens, "temperature": call.req.temperature});
        if let Some(n) = num_ctx {
            options["num_ctx"] = json!(n);
        }
        let mut body = json!({"model": call.model, "messages": call.req.messages,
            "stream": self.stream, "options": options});
        if let Some(schema) = call.req.json_schema {
            body["format"] = schema.clone();
        }
        let fields = call.req.json_schema.map(enum_fields).unwrap_or_default();
        if self.logprobs && !fields.is_empty() {
            body["logprobs"] = json!(true);
            body["top_logprobs"] = json!(TOP_LOGPROBS);
        }
        let resp = self.post("/api/chat", body, true, call.deadlines).await?;
        let mut tokens = TokenLogprobs::default();
        let (text, last) = if is_stream(&resp) {
            read_chat_stream(resp, call.deadlines, call.meter, &mut tokens).await?
        } else {
            let v: Value = read_json(resp, call.deadlines).await?;
            if let Some(e) = v.get("error") {
                return Err(classify_stream_error(e));
            }
            tokens.extend(v.get("logprobs"));
            let text = v
                .pointer("/message/content")
                .and_then(|c| c.as_str())
                .ok_or_else(|| {
                    ProviderError::new(
                        FailureKind::ServerError,
                        "Ollama reply without message.content",
                    )
                })?
                .to_string();
            (text, v)
        };
        let prompt_tokens = count(&last, "/prompt_eval_count");
        if let Some(n) = num_ctx
            && prompt_tokens + truncation_margin(n) >= n
        {
            return Err(ProviderError::new(
                FailureKind::ContextWindow,
                format!(
                    "prompt filled the whole context ({prompt_tokens} of num_ctx {n} tokens): Ollama truncated it"
                ),
            ));
        }
        Ok(ChatResponse {
            text,
            prompt_tokens,
            eval_tokens: count(&last, "/eval_count"),
            done_reason: last
                .get("done_reason")
                .and_then(|d| d.as_str())
                .map(str::to_string),
            choice_probs: tokens.choice_probs(&fields),
        })
    }

    async fn do_embed(&self, call: &EmbedCall<'_>) -> Result<EmbedResponse, ProviderError> {
        let body = json!({"model": call.model, "input": call.texts});
        let resp = self.post("/api/embed", body, true, call.deadlines).await?;
        // Parsed straight into vectors: a reply holds hundreds of floats per text.
        #[derive(serde::Deserialize)]
        struct Reply {
            embeddings: Option<Vec<Vec<f32>>>,
            #[serde(default)]
            prompt_eval_count: Option<u64>,
        }
        let v: Reply = read_json(resp, call.deadlines).await?;
        let vectors = v.embeddings.ok_or_else(|| {
            ProviderError::new(FailureKind::InvalidOutput, "embed reply without embeddings")
        })?;
        Ok(EmbedResponse {
            vectors,
            prompt_tokens: v
                .prompt_eval_count
                .map_or(0, |n| u32::try_from(n).unwrap_or(u32::MAX)),
        })
    }

    /// Model details from `/api/show` (`model_info`, `capabilities`, …).
    pub async fn show(&self, model: &str, deadlines: Deadlines) -> Result<Value, ProviderError> {
        let resp = self
            .post("/api/show", json!({"model": model}), false, deadlines)
            .await?;
        read_json(resp, deadlines).await
    }

    /// Downloads a model, calling `progress` for every status line; ends at `success`.
    pub async fn pull(
        &self,
        model: &str,
        deadlines: Deadlines,
        progress: &mut (dyn FnMut(&PullProgress) + Send),
    ) -> Result<(), ProviderError> {
        let resp = self
            .post(
                "/api/pull",
                json!({"model": model, "stream": true}),
                false,
                deadlines,
            )
            .await?;
        let mut lines = Lines::new(resp);
        let mut last = String::new();
        while let Some(line) = lines
            .next_line(deadlines.total, "pull not finished")
            .await?
        {
            if line.trim().is_empty() {
                continue;
            }
            let v = parse_chunk(&line)?;
            if let Some(e) = v.get("error") {
                return Err(classify_stream_error(e));
            }
            let p = PullProgress {
                status: v
                    .get("status")
                    .and_then(|s| s.as_str())
                    .unwrap_or_default()
                    .to_string(),
                digest: v.get("digest").and_then(|s| s.as_str()).map(str::to_string),
                total: v.get("total").and_then(|n| n.as_u64()),
                completed: v.get("completed").and_then(|n| n.as_u64()),
            };
            progress(&p);
            last = p.status;
        }
        if last == "success" {
            Ok(())
        } else {
            Err(ProviderError::new(
                FailureKind::StreamInterrupted,
                format!("pull ended without success (last status '{last}')"),
            ))
        }
    }

    /// Loads a model into memory (empty chat with keep_alive) without generating anything.
    pub async fn warm(
        &self,
        model: &str,
        deadlines: Deadlines,
    ) -> Result<WarmReport, ProviderError> {
        let started = std::time::Instant::now();
        let mut body = json!({"model": model, "messages": [], "stream": false});
        if let Some(n) = self.num_ctx.get(model) {
            body["options"] = json!({"num_ctx": n});
        }
        let resp = self.post("/api/chat", body, true, deadlines).await?;
        let v: Value = read_json(resp, deadlines).await?;
        if let Some(e) = v.get("error") {
            return Err(classify_stream_error(e));
        }
        Ok(WarmReport {
            model: model.to_string(),
            done_reason: v
                .get("done_reason")
                .and_then(|d| d.as_str())
                .map(str::to_string),
            load_ms: v.get("load_duration").and_then(|n| n.as_u64()).unwrap_or(0) / 1_000_000,
            elapsed_ms: started.elapsed().as_millis() as u64,
        })
    }
}

/// `"30m"` stays a string; `"-1"` / `"0"` / `"300"` become numbers as Ollama documents.
fn keep_alive_json(k: &str) -> Value {
    match k.parse::<i64>() {
        Ok(n) => json!(n),
        Err(_) => json!(k),
    }
}

/// Reads an NDJSON chat stream to its `done:true` line; returns the text and that last line.
/// Each line's `logprobs` go into `tokens`.
async fn read_chat_stream(
    resp: reqwest::Response,
    deadlines: Deadlines,
    _meter: &CallMeter,
    tokens: &mut TokenLogprobs,
) -> Result<(String, Value), ProviderError> {
    let mut lines = Lines::new(resp);
    let mut text = String::new();
    let mut got_token = false;
    loop {
        let (deadline, what) = if got_token {
            deadlines.next_chunk()
        } else {
            (deadlines.before_first_token(), "no first token")
        };
        let Some(line) = lines.next_line(deadline, what).await? else {
            return Err(ProviderError::new(
                FailureKind::StreamInterrupted,
                format!(
                    "stream ended without done:true after {} characters",
                    text.len()
                ),
            ));
        };
        if line.trim().is_empty() {
            continue;
        }
        let v = parse_chunk(&line)?;
        if let Some(e) = v.get("error") {
            return Err(classify_stream_error(e));
        }
        if let Some(c) = v.pointer("/message/content").and_then(|c| c.as_str())
            && !c.is_empty()
        {
            // Whitespace-only chunks do not count as the first token.
            got_token |= !c.trim().is_empty();
            text.push_str(c);
        }
        tokens.extend(v.get("logprobs"));
        if v.get("done").and_then(|d| d.as_bool()) == Some(true) {
            return Ok((text, v));
        }
    }
}

impl Provider for Ollama {
    fn chat<'a>(
        &'a self,
        call: &'a ChatCall<'a>,
    ) -> BoxFuture<'a, Result<ChatResponse, ProviderError>> {
        Box::pin(self.do_chat(call))
    }

    fn embed<'a>(
        &'a self,
        call: &'a EmbedCall<'a>,
    ) -> BoxFuture<'a, Result<EmbedResponse, ProviderError>> {
        Box::pin(self.do_embed(call))
    }

    fn models<'a>(
        &'a self,
        deadlines: Deadlines,
    ) -> BoxFuture<'a, Result<Vec<String>, ProviderError>> {
        Box::pin(async move {
            let v = self.http.get_json("/api/tags", deadlines).await?;
            Ok(v.get("models")
                .and_then(|m| m.as_array())
                .map(|a| {
                    a.iter()
                        .filter_map(|m| m.get("name").or(m.get("model")))
                        .filter_map(|n| n.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default())
        })
    }
}
