//! OpenAI-compatible servers (OpenAI, vLLM, llama.cpp server, LM Studio): `/chat/completions`
//! (SSE with `data: [DONE]`, `stream_options.include_usage`, `response_format` json_schema),
//! `/embeddings`, `/models`. The base URL includes `/v1`.
//! A schema with enum fields also asks for `logprobs` / `top_logprobs` (unless the provider's
//! `logprobs: false`), read into `choice_probs` (see `logprobs`). A server that refuses them
//! with a 400 naming logprobs is asked once more without, and never again for that model; that
//! is the only second request. Does not retry otherwise.

use super::config::ProviderConfig;
use super::error::{FailureKind, ProviderError, classify_stream_error};
use super::http::{Auth, HttpBase, Lines, count, is_stream, parse_chunk, read_json};
use super::logprobs::{TOP_LOGPROBS, TokenLogprobs, enum_fields};
use super::provider::{ChatCall, ChatResponse, Deadlines, EmbedCall, EmbedResponse, Provider};
use futures_util::future::BoxFuture;
use serde_json::{Value, json};
use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Duration;

/// One OpenAI-compatible server.
#[derive(Debug)]
pub struct OpenAi {
    http: HttpBase,
    stream: bool,
    max_tokens_param: String,
    /// Ask for logprobs on calls whose schema has enum fields.
    logprobs: bool,
    /// Models whose server refused logprobs: they are not asked for again.
    no_logprobs: Mutex<HashSet<String>>,
}

/// A 400 (or 422) whose message names logprobs: the server does not support them.
fn rejects_logprobs(e: &ProviderError) -> bool {
    matches!(e.status, Some(400 | 422)) && e.message.to_lowercase().contains("logprob")
}

impl OpenAi {
    pub fn new(cfg: &ProviderConfig, connect: Duration) -> Result<Self, ProviderError> {
        Ok(Self {
            http: HttpBase::new(cfg, connect, Auth::Bearer)?,
            stream: cfg.stream,
            max_tokens_param: cfg
                .max_tokens_param
                .clone()
                .unwrap_or_else(|| "max_tokens".into()),
            logprobs: cfg.logprobs,
            no_logprobs: Mutex::new(HashSet::new()),
        })
    }

    fn chat_body(&self, call: &ChatCall<'_>, logprobs: bool) -> Value {
        let mut body = json!({"model": call.model, "messages": call.req.messages,
            "temperature": call.req.temperature, "stream": self.stream});
        body[self.max_tokens_param.as_str()] = json!(call.req.max_tokens);
        if self.stream {
            body["stream_options"] = json!({"include_usage": true});
        }
        if let Some(schema) = call.req.json_schema {
            body["response_format"] = json!({"type": "json_schema",
                "json_schema": {"name": "answer", "schema": schema, "strict": true}});
        }
        if logprobs {
            body["logprobs"] = json!(true);
            body["top_logprobs"] = json!(TOP_LOGPROBS);
        }
        body
    }

    async fn do_chat(&self, call: &ChatCall<'_>) -> Result<ChatResponse, ProviderError> {
        let fields = call.req.json_schema.map(enum_fields).unwrap_or_default();
        let refused = |m: &str| {
            self.no_logprobs
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .contains(m)
        };
        let mut logprobs = self.logprobs && !fields.is_empty() && !refused(call.model);
        let resp = loop {
            let body = self.chat_body(call, logprobs);
            match self
                .http
                .send(
                    reqwest::Method::POST,
                    "/chat/completions",
                    Some(&body),
                    &[],
                    call.deadlines,
                )
                .await
            {
                Ok(resp) => break resp,
                Err(e) if logprobs && rejects_logprobs(&e) => {
                    self.no_logprobs
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(call.model.to_string());
                    call.meter.note(format!(
                        "{} refused logprobs ({e}); asked again without them",
                        call.model
                    ));
                    call.meter.attempt();
                    logprobs = false;
                }
                Err(e) => return Err(e),
            }
        };
        let mut tokens = TokenLogprobs::default();
        let mut out = if is_stream(&resp) {
            read_sse(resp, call.deadlines, &mut tokens).await?
        } else {
            let v: Value = read_json(resp, call.deadlines).await?;
            tokens.extend(v.pointer("/choices/0/logprobs/content"));
            read_reply(&v)?
        };
        out.choice_probs = tokens.choice_probs(&fields);
        Ok(out)
    }

    async fn do_embed(&self, call: &EmbedCall<'_>) -> Result<EmbedResponse, ProviderError> {
        let body = json!({"model": call.model, "input": call.texts, "encoding_format": "float"});
        let resp = self
            .http
            .send(
                reqwest::Method::POST,
                "/embeddings",
                Some(&body),
                &[],
                call.deadlines,
            )
            .await?;
        let v: Value = read_json(resp, call.deadlines).await?;
        let mut items: Vec<(u64, Vec<f32>)> = v
            .get("data")
            .and_then(|d| d.as_array())
            .ok_or_else(|| {
                ProviderError::new(FailureKind::InvalidOutput, "embeddings reply without data")
            })?
            .iter()
            .enumerate()
            .map(|(i, item)| {
                let idx = item
                    .get("index")
                    .and_then(|n| n.as_u64())
                    .unwrap_or(i as u64);
                let vec = item
                    .get("embedding")
                    .cloned()
                    .and_then(|e| serde_json::from_value(e).ok())
                    .ok_or_else(|| {
                        ProviderError::new(
                            FailureKind::InvalidOutput,
                            "embedding item without a float vector",
                        )
                    })?;
                Ok((idx, vec))
            })
            .collect::<Result<_, ProviderError>>()?;
        items.sort_by_key(|(i, _)| *i);
        Ok(EmbedResponse {
            vectors: items.into_iter().map(|(_, v)| v).collect(),
            prompt_tokens: count(&v, "/usage/prompt_tokens"),
        })
    }
}

/// One non-streamed reply.
fn read_reply(v: &Value) -> Result<ChatResponse, ProviderError> {
    if let Some(e) = v.get("error") {
        return Err(classify_stream_error(e));
    }
    if let Some(r) = v
        .pointer("/choices/0/message/refusal")
        .and_then(|r| r.as_str())
    {
        return Err(ProviderError::new(
            FailureKind::Refused,
            format!("the model refused: {r}"),
        ));
    }
    let text = v
        .pointer("/choices/0/message/content")
        .and_then(|c| c.as_str())
        .ok_or_else(|| {
            ProviderError::new(
                FailureKind::ServerError,
                "reply without choices[0].message.content",
            )
        })?;
    Ok(ChatResponse {
        text: text.to_string(),
        prompt_tokens: count(v, "/usage/prompt_tokens"),
        eval_tokens: count(v, "/usage/completion_tokens"),
        done_reason: v
            .pointer("/choices/0/finish_reason")
            .and_then(|f| f.as_str())
            .map(str::to_string),
        ..Default::default()
    })
}

/// Reads `data:` chunks to `[DONE]` (or a final `finish_reason`); an `error` chunk is a failure.
/// Each chunk's `choices[0].logprobs.content` goes into `tokens`.
async fn read_sse(
    resp: reqwest::Response,
    deadlines: Deadlines,
    tokens: &mut TokenLogprobs,
) -> Result<ChatResponse, ProviderError> {
    let mut lines = Lines::new(resp);
    let mut out = ChatResponse::default();
    let mut got_token = false;
    loop {
        let (deadline, what) = if got_token {
            deadlines.next_chunk()
        } else {
            (deadlines.before_first_token(), "no first token")
        };
        let Some((_, data)) = lines.next_event(deadline, what).await? else {
            if out.done_reason.is_some() {
                // Some servers omit [DONE]; a finish_reason marks the end well enough.
                return Ok(out);
            }
            return Err(ProviderError::new(
                FailureKind::StreamInterrupted,
                format!(
                    "stream ended without finish_reason or [DONE] after {} characters",
                    out.text.len()
                ),
            ));
        };
        if data.trim() == "[DONE]" {
            if out.done_reason.is_none() {
                return Err(ProviderError::new(
                    FailureKind::StreamInterrupted,
                    "[DONE] without a finish_reason",
                ));
            }
            return Ok(out);
        }
        let v = parse_chunk(&data)?;
        if let Some(e) = v.get("error") {
            return Err(classify_stream_error(e));
        }
        if let Some(c) = v
            .pointer("/choices/0/delta/content")
            .and_then(|c| c.as_str())
        {
            got_token |= !c.trim().is_empty();
            out.text.push_str(c);
        }
        tokens.extend(v.pointer("/choices/0/logprobs/content"));
        if let Some(r) = v
            .pointer("/choices/0/delta/refusal")
            .and_then(|r| r.as_str())
        {
            return Err(ProviderError::new(
                FailureKind::Refused,
                format!("the model refused: {r}"),
            ));
        }
        if let Some(f) = v
            .pointer("/choices/0/finish_reason")
            .and_then(|f| f.as_str())
        {
            out.done_reason = Some(f.to_string());
        }
        if v.get("usage").is_some_and(|u| !u.is_null()) {
            out.prompt_tokens = count(&v, "/usage/prompt_tokens");
            out.eval_tokens = count(&v, "/usage/completion_tokens");
        }
    }
}

impl Provider for OpenAi {
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
            let v: Value = self.http.get_json("/models", deadlines).await?;
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
