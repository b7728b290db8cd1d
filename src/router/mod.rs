//! Routes each task (classify, answer, embed) to an ordered list of `provider:model` targets:
//! the first target that answers wins; connection failures and missing models cool a target
//! down and fall through to the next. Records what every call did (`CallRecord`).
//! Does not build prompts (that is `pipeline`) and keeps no state beyond cooldowns.

pub mod config;
pub mod embedded;
pub mod http;
pub mod local;
pub mod types;

use config::{DataPolicy, ProviderKind, RouterConfig, Target, Task};
use serde::Serialize;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use types::ChatMessage;

/// One chat call as providers see it.
#[derive(Debug, Clone)]
pub struct ChatRequest<'a> {
    pub messages: &'a [ChatMessage],
    pub json_schema: Option<&'a serde_json::Value>,
    pub max_tokens: u32,
    pub temperature: f32,
}

/// A provider's reply.
#[derive(Debug, Clone, Serialize)]
pub struct ChatResponse {
    pub text: String,
    pub prompt_tokens: u32,
    pub eval_tokens: u32,
}

/// Why one target failed; decides cooldown and fallback.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ProviderError {
    #[error("unreachable: {0}")]
    Unreachable(String),
    #[error("model not available: {0}")]
    ModelMissing(String),
    #[error("{0}")]
    Transient(String),
    #[error("{0}")]
    Permanent(String),
}

/// What one routed call did: shown by `rfpq ask --json`, summed in job reports.
#[derive(Debug, Clone, Serialize, Default)]
pub struct CallRecord {
    pub task: String,
    pub provider: String,
    pub model: String,
    pub attempts: u32,
    pub fallback_used: bool,
    pub latency_ms: u64,
    pub prompt_tokens: u32,
    pub eval_tokens: u32,
    /// `target: error` for every target that failed or was skipped before the answer.
    pub skipped: Vec<String>,
}

/// Every target of a task failed.
#[derive(Debug, thiserror::Error)]
#[error("no model could do task '{task}': {}", .failures.join("; "))]
pub struct RouterError {
    pub task: String,
    pub failures: Vec<String>,
}

/// What is asked of a target.
enum Call<'r, 'a> {
    Chat(&'r ChatRequest<'a>),
    Embed(&'r [String]),
}

/// What a target answered.
enum Reply {
    Chat(ChatResponse),
    Embed(Vec<Vec<f32>>),
}

enum Backend {
    Http {
        provider: http::HttpProvider,
        limit: Arc<Semaphore>,
    },
    Local(Arc<local::LocalModels>),
}

struct ProviderSlot {
    backend: Backend,
    cloud: bool,
    cooldown: Duration,
}

/// The task router. Cheap to share behind an `Arc`.
pub struct Router {
    cfg: RouterConfig,
    providers: HashMap<String, ProviderSlot>,
    cooling: Mutex<HashMap<Target, Instant>>,
}

impl Router {
    /// Builds providers from a validated config. Embedded models load lazily on first use.
    pub fn new(cfg: RouterConfig) -> Result<Self, ProviderError> {
        let mut providers = HashMap::new();
        for (name, p) in &cfg.providers {
            let backend = match p.kind {
                ProviderKind::Embedded => {
                    let dir = p
                        .model_dir
                        .clone()
                        .unwrap_or_else(crate::models::default_model_dir);
                    Backend::Local(Arc::new(local::LocalModels::new(dir, p.max_concurrency)))
                }
                _ => Backend::Http {
                    provider: http::HttpProvider::new(p)?,
                    limit: Arc::new(Semaphore::new(p.max_concurrency)),
                },
            };
            providers.insert(
                name.clone(),
                ProviderSlot {
                    backend,
                    cloud: p.cloud,
                    cooldown: Duration::from_secs_f64(p.cooldown_s),
                },
            );
        }
        Ok(Self {
            cfg,
            providers,
            cooling: Mutex::new(HashMap::new()),
        })
    }

    pub fn config(&self) -> &RouterConfig {
        &self.cfg
    }

    /// Identity of the embedding model (`provider-independent`: the model name), stored with a KB.
    pub fn embed_model(&self) -> String {
        self.cfg
            .targets(Task::Embed)
            .first()
            .map(|t| t.model.clone())
            .unwrap_or_default()
    }

    fn usable(&self, target: &Target, failures: &mut Vec<String>) -> Option<&ProviderSlot> {
        let slot = self.providers.get(&target.provider)?;
        if slot.cloud && self.cfg.data_policy == DataPolicy::LocalOnly {
            failures.push(format!(
                "{target}: skipped, data_policy local_only forbids cloud providers"
            ));
            return None;
        }
        let mut cooling = self.cooling.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(until) = cooling.get(target) {
            if Instant::now() < *until {
                failures.push(format!("{target}: cooling down after an earlier failure"));
                return None;
            }
            cooling.remove(target);
        }
        Some(slot)
    }

    fn fail(&self, target: &Target, slot: &ProviderSlot, err: &ProviderError) {
        if matches!(
            err,
            ProviderError::Unreachable(_) | ProviderError::ModelMissing(_)
        ) {
            let mut cooling = self.cooling.lock().unwrap_or_else(|p| p.into_inner());
            cooling.insert(target.clone(), Instant::now() + slot.cooldown);
        }
    }

    /// One routed chat call for `task`.
    pub async fn chat(
        &self,
        task: Task,
        messages: &[ChatMessage],
        json_schema: Option<&serde_json::Value>,
    ) -> Result<(ChatResponse, CallRecord), RouterError> {
        let params = self.cfg.parameters(task);
        let req = ChatRequest {
            messages,
            json_schema,
            max_tokens: params.max_tokens.unwrap_or(128),
            temperature: params.temperature.unwrap_or(0.0),
        };
        match self.route(task, Call::Chat(&req)).await? {
            (Reply::Chat(resp), mut record) => {
                record.prompt_tokens = resp.prompt_tokens;
                record.eval_tokens = resp.eval_tokens;
                Ok((resp, record))
            }
            (Reply::Embed(_), _) => unreachable!("a chat call gets a chat reply"),
        }
    }

    /// Embeds texts with the configured embedding model (never a different model).
    pub async fn embed(
        &self,
        texts: &[String],
    ) -> Result<(Vec<Vec<f32>>, CallRecord), RouterError> {
        match self.route(Task::Embed, Call::Embed(texts)).await? {
            (Reply::Embed(vectors), record) => Ok((vectors, record)),
            (Reply::Chat(_), _) => unreachable!("an embed call gets vectors"),
        }
    }

    /// Tries the task's targets in order; the first that answers wins.
    async fn route(
        &self,
        task: Task,
        call: Call<'_, '_>,
    ) -> Result<(Reply, CallRecord), RouterError> {
        let started = Instant::now();
        let mut failures = Vec::new();
        let mut attempts = 0;
        for (i, target) in self.cfg.targets(task).iter().enumerate() {
            let Some(slot) = self.usable(target, &mut failures) else {
                continue;
            };
            attempts += 1;
            let result = match (&slot.backend, &call) {
                (Backend::Http { provider, limit }, call) => {
                    let _permit = limit.acquire().await.map_err(|_| self.closed(task))?;
                    match call {
                        Call::Chat(req) => provider.chat(&target.model, req).await.map(Reply::Chat),
                        Call::Embed(texts) => {
                            provider.embed(&target.model, texts).await.map(Reply::Embed)
                        }
                    }
                }
                (Backend::Local(models), Call::Chat(req)) => {
                    models.chat(&target.model, req).await.map(Reply::Chat)
                }
                (Backend::Local(models), Call::Embed(texts)) => {
                    models.embed(&target.model, texts).await.map(Reply::Embed)
                }
            };
            match result {
                Ok(reply) => {
                    let record = CallRecord {
                        task: task.as_str().into(),
                        provider: target.provider.clone(),
                        model: target.model.clone(),
                        attempts,
                        fallback_used: i > 0,
                        latency_ms: started.elapsed().as_millis() as u64,
                        skipped: failures,
                        ..Default::default()
                    };
                    return Ok((reply, record));
                }
                Err(e) => {
                    tracing::debug!(%target, error = %e, "target failed, falling through");
                    self.fail(target, slot, &e);
                    failures.push(format!("{target}: {e}"));
                }
            }
        }
        Err(RouterError {
            task: task.as_str().into(),
            failures,
        })
    }

    fn closed(&self, task: Task) -> RouterError {
        RouterError {
            task: task.as_str().into(),
            failures: vec!["router is shutting down".into()],
        }
    }
}
