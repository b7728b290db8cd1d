//! The `embedded` provider: a small pool of in-process candle models, each call on a blocking
//! thread so async work (lock renewal, heartbeats) is never starved. Loads models lazily.
//! Does not apply timeouts or retries itself (the router's layers do).

use super::embedded::{EmbeddedChat, EmbeddedEmbedder, EmbeddedError, EmbeddedRequest};
use super::error::{FailureKind, ProviderError};
use super::provider::{
    ChatCall, ChatRequest, ChatResponse, Deadlines, EmbedCall, EmbedResponse, Provider,
};
use futures_util::future::BoxFuture;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use tokio::sync::{OnceCell, Semaphore};

/// Model name of the embedded chat model.
pub const CHAT_MODEL: &str = "smollm2-135m-instruct";
/// Model name of the embedded embedding model.
pub const EMBED_MODEL: &str = "all-minilm-l6-v2";

pub struct LocalModels {
    dir: PathBuf,
    /// The first loaded chat model; further instances are forks sharing its weights.
    prototype: Arc<Mutex<Option<EmbeddedChat>>>,
    idle: Arc<Mutex<Vec<EmbeddedChat>>>,
    limit: Semaphore,
    embedder: OnceCell<Arc<EmbeddedEmbedder>>,
}

/// Missing or broken model files cool the target down; a request the model cannot take is
/// permanent; anything else may pass on a retry.
fn provider_error(e: EmbeddedError) -> ProviderError {
    match e {
        EmbeddedError::ModelNotFound { .. }
        | EmbeddedError::Io { .. }
        | EmbeddedError::InvalidModel { .. } => {
            ProviderError::new(FailureKind::ModelNotFound, e.to_string())
        }
        EmbeddedError::ContextOverflow { .. } => {
            ProviderError::new(FailureKind::ContextWindow, e.to_string())
        }
        EmbeddedError::UnsupportedSchema(_) | EmbeddedError::InvalidRequest(_) => {
            ProviderError::new(FailureKind::BadRequest, e.to_string())
        }
        EmbeddedError::Tokenizer(_) | EmbeddedError::Inference(_) => {
            ProviderError::new(FailureKind::ServerError, e.to_string())
        }
    }
}

fn blocking_failed(e: tokio::task::JoinError) -> ProviderError {
    ProviderError::new(
        FailureKind::ServerError,
        format!("embedded model thread failed: {e}"),
    )
}

impl LocalModels {
    pub fn new(dir: PathBuf, instances: usize) -> Self {
        Self {
            dir,
            prototype: Arc::new(Mutex::new(None)),
            idle: Arc::new(Mutex::new(Vec::new())),
            limit: Semaphore::new(instances.max(1)),
            embedder: OnceCell::new(),
        }
    }

    pub async fn chat(
        &self,
        model: &str,
        req: &ChatRequest<'_>,
    ) -> Result<ChatResponse, ProviderError> {
        if model != CHAT_MODEL {
            return Err(ProviderError::new(
                FailureKind::ModelNotFound,
                format!("the embedded provider has only '{CHAT_MODEL}', not '{model}'"),
            ));
        }
        let _permit =
            self.limit.acquire().await.map_err(|_| {
                ProviderError::new(FailureKind::Disabled, "embedded provider closed")
            })?;
        let instance = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let path = crate::models::smollm2_gguf(&self.dir);
        let messages = req.messages.to_vec();
        let schema = req.json_schema.cloned();
        let max_tokens = req.max_tokens as usize;
        let idle = self.idle.clone();
        let prototype = self.prototype.clone();
        tokio::task::spawn_blocking(move || {
            let mut chat = match instance {
                Some(c) => c,
                None => {
                    let mut proto = prototype.lock().unwrap_or_else(|p| p.into_inner());
                    let first = match proto.take() {
                        Some(p) => p,
                        None => EmbeddedChat::load(&path).map_err(provider_error)?,
                    };
                    let chat = first.fork();
                    *proto = Some(first);
                    chat
                }
            };
            let out = chat.complete(&EmbeddedRequest {
                messages: &messages,
                max_tokens,
                json_schema: schema.as_ref(),
            });
            idle.lock().unwrap_or_else(|p| p.into_inner()).push(chat);
            let c = out.map_err(provider_error)?;
            Ok(ChatResponse {
                text: c.text,
                prompt_tokens: c.prompt_tokens,
                eval_tokens: c.eval_tokens,
                done_reason: None,
                choice_probs: c.choice_probs,
            })
        })
        .await
        .map_err(blocking_failed)?
    }

    pub async fn embed(
        &self,
        model: &str,
        texts: &[String],
    ) -> Result<Vec<Vec<f32>>, ProviderError> {
        if model != EMBED_MODEL {
            return Err(ProviderError::new(
                FailureKind::ModelNotFound,
                format!("the embedded provider has only '{EMBED_MODEL}', not '{model}'"),
            ));
        }
        let dir = crate::models::minilm_dir(&self.dir);
        let embedder = self
            .embedder
            .get_or_try_init(|| async move {
                tokio::task::spawn_blocking(move || EmbeddedEmbedder::load(&dir).map(Arc::new))
                    .await
                    .map_err(blocking_failed)?
                    .map_err(provider_error)
            })
            .await?
            .clone();
        let texts = texts.to_vec();
        tokio::task::spawn_blocking(move || embedder.embed(&texts))
            .await
            .map_err(blocking_failed)?
            .map_err(provider_error)
    }
}

impl LocalModels {
    /// Models whose files are present in the model directory.
    pub fn available(&self) -> Vec<String> {
        let mut v = Vec::new();
        if crate::models::smollm2_gguf(&self.dir).exists() {
            v.push(CHAT_MODEL.to_string());
        }
        if crate::models::minilm_dir(&self.dir).exists() {
            v.push(EMBED_MODEL.to_string());
        }
        v
    }
}

impl Provider for LocalModels {
    fn chat<'a>(
        &'a self,
        call: &'a ChatCall<'a>,
    ) -> BoxFuture<'a, Result<ChatResponse, ProviderError>> {
        Box::pin(LocalModels::chat(self, call.model, &call.req))
    }

    fn embed<'a>(
        &'a self,
        call: &'a EmbedCall<'a>,
    ) -> BoxFuture<'a, Result<EmbedResponse, ProviderError>> {
        Box::pin(async move {
            let vectors = LocalModels::embed(self, call.model, call.texts).await?;
            Ok(EmbedResponse {
                vectors,
                prompt_tokens: 0,
            })
        })
    }

    fn models<'a>(
        &'a self,
        _deadlines: Deadlines,
    ) -> BoxFuture<'a, Result<Vec<String>, ProviderError>> {
        Box::pin(async move { Ok(self.available()) })
    }
}
