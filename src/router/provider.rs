//! The `Provider` trait every backend and every policy layer implements, and the call,
//! reply and per-call meter types passed through the layer stack.
//! Does not contain any policy or wire format itself.

use super::error::ProviderError;
use super::types::{ChatMessage, ChoiceProbs};
use futures_util::future::BoxFuture;
use serde::Serialize;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// One chat call as providers see it.
#[derive(Debug, Clone)]
pub struct ChatRequest<'a> {
    pub messages: &'a [ChatMessage],
    pub json_schema: Option<&'a serde_json::Value>,
    pub max_tokens: u32,
    pub temperature: f32,
}

/// A provider's chat reply.
#[derive(Debug, Clone, Serialize, Default)]
pub struct ChatResponse {
    pub text: String,
    pub prompt_tokens: u32,
    pub eval_tokens: u32,
    /// `stop`, `length`, `end_turn`, … as the provider said it (normalised lower case).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub done_reason: Option<String>,
    /// For each enum field of the requested JSON schema whose probabilities the backend gave:
    /// the options' probabilities (normalised over the field's options, summing to 1), in the
    /// schema's option order. Empty when the backend gives none (Anthropic, a server without
    /// logprobs, a reply without a schema): callers must treat it as optional.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub choice_probs: Vec<ChoiceProbs>,
}

impl ChatResponse {
    /// The probability the model gave `option` of enum field `field`, when the backend said.
    pub fn prob_of(&self, field: &str, option: &str) -> Option<f32> {
        self.choice_probs
            .iter()
            .find(|c| c.field == field)
            .and_then(|c| c.prob(option))
    }
}

/// A provider's embedding reply.
#[derive(Debug, Clone, Default)]
pub struct EmbedResponse {
    pub vectors: Vec<Vec<f32>>,
    pub prompt_tokens: u32,
}

/// Deadlines of one attempt, set by the time-budget layer and honoured by the wire code
/// (which alone knows when the first token arrived).
#[derive(Debug, Clone, Copy, Default)]
pub struct Deadlines {
    /// Response headers and the first content token must arrive by then.
    pub first_token: Option<Instant>,
    /// The attempt must be complete by then.
    pub total: Option<Instant>,
    /// Longest gap between streamed chunks once the first token has arrived.
    pub idle: Option<Duration>,
}

impl Deadlines {
    /// The earlier of the two, for waits before the first token.
    pub fn before_first_token(&self) -> Option<Instant> {
        match (self.first_token, self.total) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The deadline of the next chunk after the first token (idle gap or total, the earlier),
    /// and what missing it means.
    pub fn next_chunk(&self) -> (Option<Instant>, &'static str) {
        let idle = self.idle.map(|d| Instant::now() + d);
        match (idle, self.total) {
            (Some(i), Some(t)) if t <= i => (Some(t), "stream not finished"),
            (Some(i), _) => (
                Some(i),
                "no new token during the idle_s gap (stalled decode)",
            ),
            (None, t) => (t, "stream not finished"),
        }
    }
}

/// Counts what happened during one routed call, across layers and targets.
#[derive(Debug, Default)]
pub struct CallMeter {
    attempts: AtomicU32,
    repairs: AtomicU32,
    notes: Mutex<Vec<String>>,
}

impl CallMeter {
    /// One request actually sent upstream.
    pub fn attempt(&self) {
        self.attempts.fetch_add(1, Ordering::Relaxed);
    }
    pub fn attempts(&self) -> u32 {
        self.attempts.load(Ordering::Relaxed)
    }
    /// One repair re-prompt after invalid structured output.
    pub fn repair(&self) {
        self.repairs.fetch_add(1, Ordering::Relaxed);
    }
    pub fn repairs(&self) -> u32 {
        self.repairs.load(Ordering::Relaxed)
    }
    /// A line for the record (retries, waits).
    pub fn note(&self, s: String) {
        self.notes.lock().unwrap_or_else(|p| p.into_inner()).push(s);
    }
    pub fn take_notes(&self) -> Vec<String> {
        std::mem::take(&mut *self.notes.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// A chat call travelling down the layer stack.
#[derive(Debug, Clone)]
pub struct ChatCall<'a> {
    pub model: &'a str,
    pub req: ChatRequest<'a>,
    pub deadlines: Deadlines,
    pub meter: &'a CallMeter,
}

/// An embedding call travelling down the layer stack.
#[derive(Debug, Clone)]
pub struct EmbedCall<'a> {
    pub model: &'a str,
    pub texts: &'a [String],
    pub deadlines: Deadlines,
    pub meter: &'a CallMeter,
}

/// A backend (Ollama, OpenAI-compatible, Anthropic, embedded) or a policy layer wrapping one.
pub trait Provider: Send + Sync {
    fn chat<'a>(
        &'a self,
        call: &'a ChatCall<'a>,
    ) -> BoxFuture<'a, Result<ChatResponse, ProviderError>>;

    fn embed<'a>(
        &'a self,
        call: &'a EmbedCall<'a>,
    ) -> BoxFuture<'a, Result<EmbedResponse, ProviderError>>;

    /// Models the backend can serve now (`/api/tags`, `/v1/models`, model files on disk).
    fn models<'a>(
        &'a self,
        deadlines: Deadlines,
    ) -> BoxFuture<'a, Result<Vec<String>, ProviderError>>;

    /// Health probe for one model: reachable and the model is available. Sends no user data.
    fn probe<'a>(
        &'a self,
        model: &'a str,
        deadlines: Deadlines,
    ) -> BoxFuture<'a, Result<(), ProviderError>> {
        Box::pin(async move {
            let models = self.models(deadlines).await?;
            if models.iter().any(|m| same_model(m, model)) {
                Ok(())
            } else {
                Err(ProviderError::new(
                    super::error::FailureKind::ModelNotFound,
                    format!("'{model}' is not among the server's models"),
                ))
            }
        })
    }
}

/// `qwen2.5:7b` == `qwen2.5:7b`, and `all-minilm` == `all-minilm:latest` (Ollama's default tag).
pub fn same_model(listed: &str, wanted: &str) -> bool {
    let norm = |s: &str| {
        if s.contains(':') {
            s.to_string()
        } else {
            format!("{s}:latest")
        }
    };
    listed == wanted || norm(listed) == norm(wanted)
}

/// Rough token count for context checks: ~4 characters per token plus per-message overhead.
pub fn estimate_tokens(messages: &[ChatMessage]) -> u32 {
    messages
        .iter()
        .map(|m| (m.content.chars().count() as u32).div_ceil(4) + 4)
        .sum()
}
