//! Ollama-native and OpenAI-compatible providers over reqwest (non-streaming calls).
//! Does not retry: retries, cooldown and fallback belong to the router above it.

use super::config::{ProviderConfig, ProviderKind};
use super::types::ChatMessage;
use super::{ChatRequest, ChatResponse, ProviderError};
use serde_json::{Value, json};
use std::time::Duration;

/// One HTTP provider: Ollama native or OpenAI-compatible.
pub struct HttpProvider {
    kind: ProviderKind,
    base_url: String,
    api_key: Option<String>,
    client: reqwest::Client,
    num_ctx: Option<u32>,
    keep_alive: Option<String>,
}

impl HttpProvider {
    pub fn new(cfg: &ProviderConfig) -> Result<Self, ProviderError> {
        crate::install_tls_provider();
        let base_url = cfg
            .base_url_env
            .as_ref()
            .and_then(|v| std::env::var(v).ok())
            .filter(|v| !v.is_empty())
            .or_else(|| cfg.base_url.clone())
            .ok_or_else(|| ProviderError::Permanent("no base_url configured".into()))?;
        let api_key = cfg
            .api_key_env
            .as_ref()
            .and_then(|v| std::env::var(v).ok())
            .filter(|k| !k.is_empty());
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs_f64(cfg.connect_timeout_s))
            .timeout(Duration::from_secs_f64(cfg.timeout_s))
            .build()
            .map_err(|e| ProviderError::Permanent(format!("http client: {e}")))?;
        Ok(Self {
            kind: cfg.kind,
            base_url: base_url.trim_end_matches('/').to_string(),
            api_key,
            client,
            num_ctx: cfg.num_ctx,
            keep_alive: cfg.keep_alive.clone(),
        })
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    async fn post(&self, path: &str, body: &Value) -> Result<Value, ProviderError> {
        let mut req = self
            .client
            .post(format!("{}{}", self.base_url, path))
            .json(body);
        if let Some(key) = &self.api_key {
            req = req.bearer_auth(key);
        }
        let resp = req.send().await.map_err(classify_reqwest)?;
        let status = resp.status();
        let text = resp.text().await.map_err(classify_reqwest)?;
        if !status.is_success() {
            let msg = error_message(&text);
            return Err(match status.as_u16() {
                404 => ProviderError::ModelMissing(msg),
                400 | 401 | 403 | 422 => ProviderError::Permanent(format!("HTTP {status}: {msg}")),
                _ => ProviderError::Transient(format!("HTTP {status}: {msg}")),
            });
        }
        let v: Value = serde_json::from_str(&text)
            .map_err(|e| ProviderError::Transient(format!("malformed JSON response: {e}")))?;
        if let Some(err) = v.get("error") {
            return Err(ProviderError::Transient(format!(
                "error in response: {err}"
            )));
        }
        Ok(v)
    }

    pub async fn chat(
        &self,
        model: &str,
        req: &ChatRequest<'_>,
    ) -> Result<ChatResponse, ProviderError> {
        match self.kind {
            ProviderKind::Ollama => self.ollama_chat(model, req).await,
            _ => self.openai_chat(model, req).await,
        }
    }

    pub async fn embed(
        &self,
        model: &str,
        texts: &[String],
    ) -> Result<Vec<Vec<f32>>, ProviderError> {
        let v = match self.kind {
            ProviderKind::Ollama => {
                let v = self
                    .post("/api/embed", &json!({"model": model, "input": texts}))
                    .await?;
                v.get("embeddings").cloned()
            }
            _ => {
                let v = self
                    .post("/embeddings", &json!({"model": model, "input": texts}))
                    .await?;
                v.get("data").and_then(|d| d.as_array()).map(|items| {
                    Value::Array(
                        items
                            .iter()
                            .filter_map(|i| i.get("embedding").cloned())
                            .collect(),
                    )
                })
            }
        };
        let vectors: Vec<Vec<f32>> = v
            .and_then(|e| serde_json::from_value(e).ok())
            .ok_or_else(|| ProviderError::Transient("embedding response without vectors".into()))?;
        if vectors.len() != texts.len() {
            return Err(ProviderError::Transient(format!(
                "asked for {} embeddings, got {}",
                texts.len(),
                vectors.len()
            )));
        }
        Ok(vectors)
    }

    async fn ollama_chat(
        &self,
        model: &str,
        req: &ChatRequest<'_>,
    ) -> Result<ChatResponse, ProviderError> {
        let mut options = json!({"num_predict": req.max_tokens, "temperature": req.temperature});
        if let Some(n) = self.num_ctx {
            options["num_ctx"] = json!(n);
        }
        let mut body = json!({"model": model, "messages": messages_json(req.messages), "stream": false, "options": options});
        if let Some(schema) = req.json_schema {
            body["format"] = schema.clone();
        }
        if let Some(k) = &self.keep_alive {
            body["keep_alive"] = json!(k);
        }
        let v = self.post("/api/chat", &body).await?;
        let text = v
            .pointer("/message/content")
            .and_then(|c| c.as_str())
            .ok_or_else(|| {
                ProviderError::Transient("Ollama reply without message.content".into())
            })?;
        let prompt_tokens = v
            .get("prompt_eval_count")
            .and_then(|n| n.as_u64())
            .unwrap_or(0) as u32;
        if let Some(n) = self.num_ctx
            && prompt_tokens + 16 >= n
        {
            return Err(ProviderError::Transient(format!(
                "prompt filled the whole context ({prompt_tokens} of num_ctx {n} tokens): truncated"
            )));
        }
        Ok(ChatResponse {
            text: text.to_string(),
            prompt_tokens,
            eval_tokens: v.get("eval_count").and_then(|n| n.as_u64()).unwrap_or(0) as u32,
        })
    }

    async fn openai_chat(
        &self,
        model: &str,
        req: &ChatRequest<'_>,
    ) -> Result<ChatResponse, ProviderError> {
        let mut body = json!({"model": model, "messages": messages_json(req.messages),
            "max_tokens": req.max_tokens, "temperature": req.temperature});
        if let Some(schema) = req.json_schema {
            body["response_format"] = json!({"type": "json_schema",
                "json_schema": {"name": "answer", "schema": schema, "strict": true}});
        }
        let v = self.post("/chat/completions", &body).await?;
        let text = v
            .pointer("/choices/0/message/content")
            .and_then(|c| c.as_str())
            .ok_or_else(|| {
                ProviderError::Transient("reply without choices[0].message.content".into())
            })?;
        Ok(ChatResponse {
            text: text.to_string(),
            prompt_tokens: v
                .pointer("/usage/prompt_tokens")
                .and_then(|n| n.as_u64())
                .unwrap_or(0) as u32,
            eval_tokens: v
                .pointer("/usage/completion_tokens")
                .and_then(|n| n.as_u64())
                .unwrap_or(0) as u32,
        })
    }
}

fn messages_json(messages: &[ChatMessage]) -> Value {
    serde_json::to_value(messages).unwrap_or(Value::Null)
}

/// Extracts the message from Ollama (`{"error":"…"}`) or OpenAI (`{"error":{"message":…}}`) bodies.
fn error_message(body: &str) -> String {
    let v: Option<Value> = serde_json::from_str(body).ok();
    let msg = v.as_ref().and_then(|v| {
        let e = v.get("error")?;
        e.as_str().map(str::to_string).or_else(|| {
            e.get("message")
                .and_then(|m| m.as_str())
                .map(str::to_string)
        })
    });
    msg.unwrap_or_else(|| body.chars().take(200).collect())
}

fn classify_reqwest(e: reqwest::Error) -> ProviderError {
    if e.is_connect() {
        ProviderError::Unreachable(e.to_string())
    } else {
        ProviderError::Transient(e.to_string())
    }
}
