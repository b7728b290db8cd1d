//! Anthropic Messages API: `POST /v1/messages` with `x-api-key` and `anthropic-version`,
//! top-level `system`, required `max_tokens`, SSE events to `message_stop`, `event: error`
//! inside a 200 stream, and JSON output through one forced tool call. `GET /v1/models` for
//! health. Anthropic has no embeddings and no token log-probabilities (`choice_probs` stays
//! empty). Does not retry.

use super::config::ProviderConfig;
use super::error::{FailureKind, ProviderError, classify_stream_error};
use super::http::{Auth, HttpBase, Lines, count, is_stream, parse_chunk, read_json};
use super::provider::{ChatCall, ChatResponse, Deadlines, EmbedCall, EmbedResponse, Provider};
use super::types::Role;
use futures_util::future::BoxFuture;
use serde_json::{Value, json};
use std::time::Duration;

/// Name of the forced tool that carries structured output.
pub const TOOL_NAME: &str = "answer";

/// One Anthropic-compatible endpoint.
#[derive(Debug)]
pub struct Anthropic {
    http: HttpBase,
    stream: bool,
    version: String,
}

impl Anthropic {
    pub fn new(cfg: &ProviderConfig, connect: Duration) -> Result<Self, ProviderError> {
        let mut http = HttpBase::new(cfg, connect, Auth::XApiKey)?;
        // Accept both `https://api.anthropic.com` and `…/v1`.
        if let Some(stripped) = http.base_url.strip_suffix("/v1") {
            http.base_url = stripped.to_string();
        }
        Ok(Self {
            http,
            stream: cfg.stream,
            version: cfg
                .anthropic_version
                .clone()
                .unwrap_or_else(|| "2023-06-01".into()),
        })
    }

    async fn do_chat(&self, call: &ChatCall<'_>) -> Result<ChatResponse, ProviderError> {
        let system: Vec<&str> = call
            .req
            .messages
            .iter()
            .filter(|m| m.role == Role::System)
            .map(|m| m.content.as_str())
            .collect();
        let messages: Vec<Value> = call
            .req
            .messages
            .iter()
            .filter(|m| m.role != Role::System)
            .map(|m| json!({"role": m.role, "content": m.content}))
            .collect();
        let mut body = json!({"model": call.model, "max_tokens": call.req.max_tokens,
            "messages": messages, "temperature": call.req.temperature, "stream": self.stream});
        if !system.is_empty() {
            body["system"] = json!(system.join("\n\n"));
        }
        if let Some(schema) = call.req.json_schema {
            body["tools"] = json!([{"name": TOOL_NAME,
                "description": "Give the answer in this structure.", "input_schema": schema}]);
            body["tool_choice"] = json!({"type": "tool", "name": TOOL_NAME});
        }
        let resp = self
            .http
            .send(
                reqwest::Method::POST,
                "/v1/messages",
                Some(&body),
                &[("anthropic-version", self.version.as_str())],
                call.deadlines,
            )
            .await?;
        if is_stream(&resp) {
            return read_events(resp, call.deadlines).await;
        }
        let v: Value = read_json(resp, call.deadlines).await?;
        if let Some(e) = v.get("error") {
            return Err(classify_stream_error(e));
        }
        let mut text = String::new();
        for block in v
            .get("content")
            .and_then(|c| c.as_array())
            .into_iter()
            .flatten()
        {
            match block.get("type").and_then(|t| t.as_str()) {
                Some("text") => {
                    text.push_str(block.get("text").and_then(|t| t.as_str()).unwrap_or(""))
                }
                Some("tool_use") => {
                    text = block
                        .get("input")
                        .cloned()
                        .unwrap_or(Value::Null)
                        .to_string()
                }
                _ => {}
            }
        }
        Ok(ChatResponse {
            text,
            prompt_tokens: count(&v, "/usage/input_tokens"),
            eval_tokens: count(&v, "/usage/output_tokens"),
            done_reason: v
                .get("stop_reason")
                .and_then(|s| s.as_str())
                .map(str::to_string),
            ..Default::default()
        })
    }
}

/// Reads SSE events to `message_stop`; text deltas and tool-input JSON deltas are collected.
async fn read_events(
    resp: reqwest::Response,
    deadlines: Deadlines,
) -> Result<ChatResponse, ProviderError> {
    let mut lines = Lines::new(resp);
    let mut out = ChatResponse::default();
    let mut tool_json = String::new();
    let mut got_token = false;
    loop {
        let (deadline, what) = if got_token {
            deadlines.next_chunk()
        } else {
            (deadlines.before_first_token(), "no first token")
        };
        let Some((event, data)) = lines.next_event(deadline, what).await? else {
            return Err(ProviderError::new(
                FailureKind::StreamInterrupted,
                format!(
                    "stream ended without message_stop after {} characters",
                    out.text.len() + tool_json.len()
                ),
            ));
        };
        let v = parse_chunk(&data)?;
        let ty = event
            .or_else(|| v.get("type").and_then(|t| t.as_str()).map(str::to_string))
            .unwrap_or_default();
        match ty.as_str() {
            "error" => {
                return Err(classify_stream_error(v.get("error").unwrap_or(&v)));
            }
            "message_start" => {
                out.prompt_tokens = count(&v, "/message/usage/input_tokens");
            }
            "content_block_delta" => {
                let delta = v.get("delta").cloned().unwrap_or(Value::Null);
                if let Some(t) = delta.get("text").and_then(|t| t.as_str()) {
                    got_token |= !t.trim().is_empty();
                    out.text.push_str(t);
                }
                if let Some(j) = delta.get("partial_json").and_then(|t| t.as_str()) {
                    got_token |= !j.trim().is_empty();
                    tool_json.push_str(j);
                }
            }
            "message_delta" => {
                if let Some(r) = v.pointer("/delta/stop_reason").and_then(|s| s.as_str()) {
                    out.done_reason = Some(r.to_string());
                }
                let n = count(&v, "/usage/output_tokens");
                if n > 0 {
                    out.eval_tokens = n;
                }
            }
            "message_stop" => {
                if !tool_json.is_empty() {
                    out.text = tool_json;
                }
                return Ok(out);
            }
            _ => {}
        }
    }
}

impl Provider for Anthropic {
    fn chat<'a>(
        &'a self,
        call: &'a ChatCall<'a>,
    ) -> BoxFuture<'a, Result<ChatResponse, ProviderError>> {
        Box::pin(self.do_chat(call))
    }

    fn embed<'a>(
        &'a self,
        _call: &'a EmbedCall<'a>,
    ) -> BoxFuture<'a, Result<EmbedResponse, ProviderError>> {
        Box::pin(async {
            Err(ProviderError::new(
                FailureKind::BadRequest,
                "Anthropic has no embeddings endpoint",
            ))
        })
    }

    fn models<'a>(
        &'a self,
        deadlines: Deadlines,
    ) -> BoxFuture<'a, Result<Vec<String>, ProviderError>> {
        Box::pin(async move {
            let resp = self
                .http
                .send(
                    reqwest::Method::GET,
                    "/v1/models",
                    None,
                    &[("anthropic-version", self.version.as_str())],
                    deadlines,
                )
                .await?;
            let v: Value = read_json(resp, deadlines).await?;
            Ok(v.get("data")
                .and_then(|m| m.as_array())
                .map(|a| {
                    a.iter()
                        .filter_map(|m| m.get("id").and_then(|n| n.as_str()))
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default())
        })
    }
}
