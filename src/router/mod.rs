//! Routes each task (classify, relevance, answer, embed, translate) to an ordered list of
//! `provider:model` targets. Each target is a stack of policy layers (`layers`) over a
//! wire-format backend (`ollama`, `openai`, `anthropic`, `local`); the router itself only
//! enforces the data policy, skips targets whose context window is too small, falls through
//! to the next target on failure and records what every call did (`CallRecord`).
//! Does not build prompts (that is `pipeline`) and keeps no state beyond breakers and limits.

pub mod admin;
pub mod anthropic;
pub mod config;
pub mod embedded;
pub mod error;
pub mod http;
pub mod layers;
pub mod local;
pub mod logprobs;
pub mod ollama;
pub mod openai;
pub mod provider;
pub mod types;
pub mod validate;

pub use error::{FailureKind, ProviderError};
pub use provider::{ChatRequest, ChatResponse, EmbedResponse, Provider};

use config::{DataPolicy, ProviderKind, RouterConfig, Target, Task};
use layers::{
    Breaker, BreakerSnapshot, Budget, Concurrency, RateLimit, RateLimiter, Retry, Validate,
};
use provider::{CallMeter, ChatCall, Deadlines, EmbedCall, estimate_tokens};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use types::ChatMessage;

/// One target that failed or was skipped during a call.
#[derive(Debug, Clone, Serialize)]
pub struct TargetFailure {
    pub target: String,
    pub kind: FailureKind,
    /// Requests sent to this target during the call (0 when skipped).
    pub attempts: u32,
    pub error: String,
}

/// What one routed call did: shown by `rfpq ask --json`, summed in job reports.
#[derive(Debug, Clone, Serialize, Default)]
pub struct CallRecord {
    pub task: String,
    /// The target that answered.
    pub provider: String,
    pub model: String,
    /// Requests sent upstream during the call, over all targets, retries and repairs.
    pub attempts: u32,
    /// The answer came from a target after the first.
    pub fallback_used: bool,
    pub latency_ms: u64,
    pub prompt_tokens: u32,
    pub eval_tokens: u32,
    /// Repair re-prompts after invalid structured output.
    pub repairs: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub done_reason: Option<String>,
    /// `target: error` for every target that failed or was skipped before the answer.
    pub skipped: Vec<String>,
    /// The same failures, typed.
    pub failures: Vec<TargetFailure>,
    /// Retries and waits, in order.
    pub notes: Vec<String>,
}

/// Every target of a task failed (or none was usable).
#[derive(Debug, thiserror::Error)]
#[error("no model could do task '{task}': {}", .failures.join("; "))]
pub struct RouterError {
    pub task: String,
    pub failures: Vec<String>,
    /// The same failures, typed.
    pub details: Vec<TargetFailure>,
    /// Requests sent upstream during the call.
    pub attempts: u32,
    /// When every usable target is cooling down: the shortest remaining cooldown.
    pub retry_in: Option<Duration>,
}

/// Health of one target, for `rfpq models` and tests.
#[derive(Debug, Clone, Serialize)]
pub struct TargetHealth {
    pub target: String,
    pub kind: ProviderKind,
    pub cloud: bool,
    /// Why the target is never used (missing API key, data policy), if so.
    pub disabled: Option<String>,
    pub breaker: BreakerSnapshot,
}

struct Slot {
    stack: Arc<dyn Provider>,
    breaker: Arc<Breaker>,
    kind: ProviderKind,
    cloud: bool,
    disabled: Option<String>,
    window: Option<u32>,
    dimensions: Option<usize>,
}

/// What is asked of a target.
enum Call<'r, 'a> {
    Chat(&'r ChatRequest<'a>),
    Embed(&'r [String]),
}

/// What a target answered.
enum Reply {
    Chat(ChatResponse),
    Embed(EmbedResponse),
}

/// Builds the wire-format backend of provider `name`.
pub fn build_backend(cfg: &RouterConfig, name: &str) -> Result<Arc<dyn Provider>, ProviderError> {
    let p = cfg.provider(name).ok_or_else(|| {
        ProviderError::new(FailureKind::Disabled, format!("unknown provider '{name}'"))
    })?;
    let connect = cfg.timeouts(name).connect();
    Ok(match p.kind {
        ProviderKind::Ollama => Arc::new(ollama::Ollama::new(p, connect, num_ctx_of(cfg, name))?),
        ProviderKind::Openai => Arc::new(openai::OpenAi::new(p, connect)?),
        ProviderKind::Anthropic => Arc::new(anthropic::Anthropic::new(p, connect)?),
        ProviderKind::Embedded => {
            let dir = p
                .model_dir
                .clone()
                .unwrap_or_else(crate::models::default_model_dir);
            Arc::new(local::LocalModels::new(dir, p.max_concurrency))
        }
    })
}

/// The fixed `num_ctx` of each of an Ollama provider's models.
pub fn num_ctx_of(cfg: &RouterConfig, provider: &str) -> HashMap<String, u32> {
    cfg.models
        .iter()
        .filter_map(|(k, m)| {
            let t = config::parse_target(k).ok()?;
            (t.provider == provider).then_some((t.model, m.value.num_ctx?))
        })
        .collect()
}

/// Why a provider cannot be used at all (a cloud provider without its key), if so.
pub fn missing_key(cfg: &RouterConfig, name: &str) -> Option<String> {
    let p = cfg.provider(name)?;
    let var = p.api_key_env.as_ref()?;
    let set = std::env::var(var).map(|v| !v.is_empty()).unwrap_or(false);
    (!set && p.is_cloud()).then(|| format!("API key env var {var} is not set"))
}

/// The task router. Cheap to share behind an `Arc`.
pub struct Router {
    cfg: RouterConfig,
    slots: BTreeMap<Target, Slot>,
    policy_logged: AtomicBool,
}

impl Router {
    /// Builds every target's layer stack from a validated config. Embedded models load
    /// lazily on first use; nothing is contacted here.
    pub fn new(cfg: RouterConfig) -> Result<Self, ProviderError> {
        let mut backends: HashMap<String, Result<Arc<dyn Provider>, String>> = HashMap::new();
        let mut limits: HashMap<String, (Arc<Semaphore>, Arc<RateLimiter>)> = HashMap::new();
        for (name, p) in &cfg.providers {
            let p = &p.value;
            let backend = match missing_key(&cfg, name) {
                Some(why) => Err(why),
                None => build_backend(&cfg, name).map_err(|e| e.message),
            };
            backends.insert(name.clone(), backend);
            limits.insert(
                name.clone(),
                (
                    Arc::new(Semaphore::new(p.max_concurrency)),
                    Arc::new(RateLimiter::new(p.rpm, p.tpm)),
                ),
            );
        }
        let mut slots = BTreeMap::new();
        for target in cfg.all_targets() {
            let Some(p) = cfg.provider(&target.provider) else {
                continue;
            };
            let t = cfg.timeouts(&target.provider);
            let model = cfg.model(&target).cloned().unwrap_or_default();
            let (sem, limiter) = limits[&target.provider].clone();
            // Ollama gives each loaded model its own NUM_PARALLEL slots (the embedding model
            // runs beside the chat model), so its limit is per model; a cloud account's is per
            // provider.
            let sem = if p.kind == ProviderKind::Ollama {
                Arc::new(Semaphore::new(p.max_concurrency))
            } else {
                sem
            };
            let (base, disabled): (Arc<dyn Provider>, Option<String>) =
                match &backends[&target.provider] {
                    Ok(b) => (b.clone(), None),
                    Err(why) => (Arc::new(Unavailable(why.clone())), Some(why.clone())),
                };
            let budget: Arc<dyn Provider> =
                Arc::new(Budget::new(base, t.first_token(), t.total(), t.idle()));
            let limited: Arc<dyn Provider> = Arc::new(Concurrency::new(budget, sem));
            let limited: Arc<dyn Provider> = if limiter.is_active() {
                Arc::new(RateLimit::new(limited, limiter))
            } else {
                limited
            };
            let retry: Arc<dyn Provider> =
                Arc::new(Retry::new(limited, cfg.retry(&target.provider)));
            let probe_timeout = t
                .first_token()
                .or(t.total())
                .unwrap_or(Duration::from_secs(10))
                .min(Duration::from_secs(30))
                .max(t.connect());
            let breaker = Arc::new(Breaker::new(
                retry,
                target.to_string(),
                cfg.cooldown(&target.provider),
                probe_timeout,
            ));
            let stack: Arc<dyn Provider> = Arc::new(Validate::new(breaker.clone()));
            slots.insert(
                target,
                Slot {
                    stack,
                    breaker,
                    kind: p.kind,
                    cloud: p.is_cloud(),
                    disabled,
                    window: model.window(),
                    dimensions: model.dimensions,
                },
            );
        }
        Ok(Self {
            cfg,
            slots,
            policy_logged: AtomicBool::new(false),
        })
    }

    pub fn config(&self) -> &RouterConfig {
        &self.cfg
    }

    /// Identity of the embedding model (provider-independent: the model name), stored with a KB.
    pub fn embed_model(&self) -> String {
        self.cfg
            .targets(Task::Embed)
            .first()
            .map(|t| t.model.clone())
            .unwrap_or_default()
    }

    /// Breaker state and availability of every configured target.
    pub fn health(&self) -> Vec<TargetHealth> {
        self.slots
            .iter()
            .map(|(t, s)| TargetHealth {
                target: t.to_string(),
                kind: s.kind,
                cloud: s.cloud,
                disabled: s.disabled.clone().or_else(|| {
                    (s.cloud && self.cfg.data_policy == DataPolicy::LocalOnly)
                        .then(|| "data_policy local_only".to_string())
                }),
                breaker: s.breaker.snapshot(),
            })
            .collect()
    }

    /// One routed chat call for `task`. Without `json_schema`, the task's configured
    /// `output_schema` (if any) applies.
    pub async fn chat(
        &self,
        task: Task,
        messages: &[ChatMessage],
        json_schema: Option<&serde_json::Value>,
    ) -> Result<(ChatResponse, CallRecord), RouterError> {
        let params = self.cfg.parameters(task);
        let req = ChatRequest {
            messages,
            json_schema: json_schema.or(params.output_schema.as_ref()),
            max_tokens: params.max_tokens.unwrap_or(128),
            temperature: params.temperature.unwrap_or(0.0),
        };
        match self.route(task, Call::Chat(&req)).await? {
            (Reply::Chat(resp), mut record) => {
                record.prompt_tokens = resp.prompt_tokens;
                record.eval_tokens = resp.eval_tokens;
                record.done_reason = resp.done_reason.clone();
                Ok((resp, record))
            }
            (Reply::Embed(_), _) => unreachable!("a chat call gets a chat reply"),
        }
    }

    /// Embeds texts with the configured embedding model; it never falls back to a different
    /// embedding model (only to another server of the same one) and fails clearly instead.
    pub async fn embed(
        &self,
        texts: &[String],
    ) -> Result<(Vec<Vec<f32>>, CallRecord), RouterError> {
        match self.route(Task::Embed, Call::Embed(texts)).await? {
            (Reply::Embed(r), mut record) => {
                record.prompt_tokens = r.prompt_tokens;
                Ok((r.vectors, record))
            }
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
        let meter = CallMeter::default();
        let mut failures: Vec<TargetFailure> = Vec::new();
        let targets = self.cfg.targets(task);
        let mut cooling: Vec<Duration> = Vec::new();
        // Whether any target was handed the call (for the error metric when none was).
        let mut tried = false;
        for (i, target) in targets.iter().enumerate() {
            let Some(slot) = self.slots.get(target) else {
                continue;
            };
            let skip = |kind, error: String| TargetFailure {
                target: target.to_string(),
                kind,
                attempts: 0,
                error,
            };
            if let Some(why) = &slot.disabled {
                failures.push(skip(FailureKind::Disabled, why.clone()));
                continue;
            }
            if slot.cloud && self.cfg.data_policy == DataPolicy::LocalOnly {
                if !self.policy_logged.swap(true, Ordering::Relaxed) {
                    tracing::warn!(%target, "data_policy local_only: cloud targets are never called");
                }
                failures.push(skip(
                    FailureKind::Disabled,
                    "skipped, data_policy local_only forbids cloud providers".into(),
                ));
                continue;
            }
            if let (Call::Chat(req), Some(window)) = (&call, slot.window) {
                let need = estimate_tokens(req.messages) + req.max_tokens;
                if need > window {
                    failures.push(skip(
                        FailureKind::ContextWindow,
                        format!(
                            "prompt needs about {need} tokens with the reply, the context window is {window}"
                        ),
                    ));
                    continue;
                }
            }
            let before = meter.attempts();
            let target_started = Instant::now();
            let result = match &call {
                Call::Chat(req) => {
                    let c = ChatCall {
                        model: &target.model,
                        req: (*req).clone(),
                        deadlines: Deadlines::default(),
                        meter: &meter,
                    };
                    slot.stack.chat(&c).await.map(Reply::Chat)
                }
                Call::Embed(texts) => {
                    let c = EmbedCall {
                        model: &target.model,
                        texts,
                        deadlines: Deadlines::default(),
                        meter: &meter,
                    };
                    slot.stack
                        .embed(&c)
                        .await
                        .and_then(|r| check_embeddings(r, texts.len(), slot.dimensions))
                        .map(Reply::Embed)
                }
            };
            match result {
                Ok(reply) => {
                    let (prompt_tokens, eval_tokens) = match &reply {
                        Reply::Chat(r) => (r.prompt_tokens, r.eval_tokens),
                        Reply::Embed(r) => (r.prompt_tokens, 0),
                    };
                    crate::metrics::llm_call(
                        task.as_str(),
                        &target.provider,
                        &target.model,
                        target_started.elapsed(),
                        prompt_tokens,
                        eval_tokens,
                        true,
                    );
                    if i > 0 {
                        crate::metrics::fallback(
                            task.as_str(),
                            &targets[0].to_string(),
                            &target.to_string(),
                        );
                    }
                    let record = CallRecord {
                        task: task.as_str().into(),
                        provider: target.provider.clone(),
                        model: target.model.clone(),
                        attempts: meter.attempts(),
                        fallback_used: i > 0,
                        latency_ms: started.elapsed().as_millis() as u64,
                        repairs: meter.repairs(),
                        skipped: failures
                            .iter()
                            .map(|f| format!("{}: {}", f.target, f.error))
                            .collect(),
                        failures,
                        notes: meter.take_notes(),
                        ..Default::default()
                    };
                    return Ok((reply, record));
                }
                Err(e) => {
                    tried = true;
                    crate::metrics::llm_call(
                        task.as_str(),
                        &target.provider,
                        &target.model,
                        target_started.elapsed(),
                        0,
                        0,
                        false,
                    );
                    tracing::debug!(%target, error = %e, "target failed, falling through");
                    if e.kind == FailureKind::CircuitOpen
                        && let Some(d) = slot.breaker.open_for()
                    {
                        cooling.push(d);
                    }
                    failures.push(TargetFailure {
                        target: target.to_string(),
                        kind: e.kind,
                        attempts: meter.attempts() - before,
                        error: e.to_string(),
                    });
                }
            }
        }
        if !tried && let Some(first) = targets.first() {
            // Every target was skipped before a call: count one failed call at the first.
            crate::metrics::llm_call(
                task.as_str(),
                &first.provider,
                &first.model,
                started.elapsed(),
                0,
                0,
                false,
            );
        }
        if targets.is_empty() {
            failures.push(TargetFailure {
                target: String::new(),
                kind: FailureKind::Disabled,
                attempts: 0,
                error: format!("task '{}' has no targets configured", task.as_str()),
            });
        }
        let all_cooling = !failures.is_empty()
            && failures
                .iter()
                .all(|f| f.kind == FailureKind::CircuitOpen || f.kind == FailureKind::Disabled)
            && !cooling.is_empty();
        Err(RouterError {
            task: task.as_str().into(),
            failures: failures
                .iter()
                .map(|f| format!("{}: {}", f.target, f.error))
                .collect(),
            details: failures,
            attempts: meter.attempts(),
            retry_in: if all_cooling {
                cooling.into_iter().min()
            } else {
                None
            },
        })
    }
}

/// Rejects a batch with the wrong count, NaN/infinite values, mixed or unexpected lengths.
fn check_embeddings(
    r: EmbedResponse,
    asked: usize,
    dimensions: Option<usize>,
) -> Result<EmbedResponse, ProviderError> {
    let bad = |m: String| Err(ProviderError::new(FailureKind::InvalidOutput, m));
    if r.vectors.len() != asked {
        return bad(format!(
            "asked for {asked} embeddings, got {}",
            r.vectors.len()
        ));
    }
    let want = dimensions.or(r.vectors.first().map(Vec::len));
    for (i, v) in r.vectors.iter().enumerate() {
        if Some(v.len()) != want || v.is_empty() {
            return bad(format!(
                "embedding {i} has {} dimensions, expected {}",
                v.len(),
                want.unwrap_or(0)
            ));
        }
        if v.iter().any(|x| !x.is_finite()) {
            return bad(format!("embedding {i} contains NaN or infinite values"));
        }
    }
    Ok(r)
}

/// Stand-in backend of a disabled provider (never called: the router skips it).
struct Unavailable(String);

impl Provider for Unavailable {
    fn chat<'a>(
        &'a self,
        _call: &'a ChatCall<'a>,
    ) -> futures_util::future::BoxFuture<'a, Result<ChatResponse, ProviderError>> {
        Box::pin(async move { Err(ProviderError::new(FailureKind::Disabled, self.0.clone())) })
    }

    fn embed<'a>(
        &'a self,
        _call: &'a EmbedCall<'a>,
    ) -> futures_util::future::BoxFuture<'a, Result<EmbedResponse, ProviderError>> {
        Box::pin(async move { Err(ProviderError::new(FailureKind::Disabled, self.0.clone())) })
    }

    fn models<'a>(
        &'a self,
        _deadlines: Deadlines,
    ) -> futures_util::future::BoxFuture<'a, Result<Vec<String>, ProviderError>> {
        Box::pin(async move { Err(ProviderError::new(FailureKind::Disabled, self.0.clone())) })
    }
}
