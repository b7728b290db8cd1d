//! `config/llm_models.yaml`: providers, models, task → targets, task parameters, fallbacks,
//! data policy, timeouts, retry and cooldown settings. Validated at load (unknown fields,
//! duplicate keys, unknown providers, bad values) with errors naming the line and field.
//! Does not open connections or read API keys' values (only the env var names).

use serde::Deserialize;
use serde_saphyr::Spanned;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The tasks the pipeline routes.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, serde::Serialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Task {
    Classify,
    Relevance,
    Answer,
    Embed,
    Translate,
}

impl Task {
    pub const ALL: [Task; 5] = [
        Task::Classify,
        Task::Relevance,
        Task::Answer,
        Task::Embed,
        Task::Translate,
    ];
    /// Tasks every config must configure.
    pub const REQUIRED: [Task; 3] = [Task::Classify, Task::Answer, Task::Embed];

    pub fn as_str(self) -> &'static str {
        match self {
            Task::Classify => "classify",
            Task::Relevance => "relevance",
            Task::Answer => "answer",
            Task::Embed => "embed",
            Task::Translate => "translate",
        }
    }
}

impl std::str::FromStr for Task {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Task::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown task '{s}' (expected classify, relevance, answer, embed or translate)"
                )
            })
    }
}

/// Wire format of a provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    /// Ollama native API (`/api/chat`, `/api/embed`, `/api/tags`, `/api/pull`).
    Ollama,
    /// Any OpenAI-compatible server (`/v1/chat/completions`, `/v1/embeddings`, `/v1/models`).
    Openai,
    /// Anthropic Messages API (`/v1/messages`).
    Anthropic,
    /// In-process candle models from the model cache.
    Embedded,
}

/// Time budget of one attempt. Every field is optional; unset fields come from `defaults`.
#[derive(Debug, Clone, Copy, Deserialize, Default, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Timeouts {
    /// TCP/TLS connect.
    #[serde(default)]
    pub connect_s: Option<f64>,
    /// Until the first token (streaming) or the response headers arrive.
    #[serde(default)]
    pub first_token_s: Option<f64>,
    /// The whole attempt.
    #[serde(default)]
    pub total_s: Option<f64>,
    /// Longest gap between streamed chunks after the first token (a stalled decode).
    #[serde(default)]
    pub idle_s: Option<f64>,
}

impl Timeouts {
    fn or(self, base: Timeouts) -> Timeouts {
        Timeouts {
            connect_s: self.connect_s.or(base.connect_s),
            first_token_s: self.first_token_s.or(base.first_token_s),
            total_s: self.total_s.or(base.total_s),
            idle_s: self.idle_s.or(base.idle_s),
        }
    }
    pub fn connect(&self) -> Duration {
        secs(self.connect_s.unwrap_or(2.0))
    }
    pub fn first_token(&self) -> Option<Duration> {
        self.first_token_s.map(secs)
    }
    pub fn total(&self) -> Option<Duration> {
        self.total_s.map(secs)
    }
    pub fn idle(&self) -> Option<Duration> {
        self.idle_s.map(secs)
    }
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s.max(0.0))
}

/// The single retry layer's settings (per target; no SDK-level retries exist).
#[derive(Debug, Clone, Copy, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RetryConfig {
    /// Attempts per target, including the first (1 = never retry).
    pub max_attempts: u32,
    pub initial_backoff_ms: u64,
    pub max_backoff_ms: u64,
    pub multiplier: f32,
    /// Adds a random part to each backoff.
    pub jitter: bool,
    /// Waits at least Retry-After / retry-after-ms when the server sends it.
    pub honor_retry_after: bool,
    /// A longer Retry-After is not waited for: the target cools down and the next one is tried.
    pub max_retry_after_s: f64,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            max_attempts: 2,
            initial_backoff_ms: 500,
            max_backoff_ms: 8000,
            multiplier: 2.0,
            jitter: true,
            honor_retry_after: true,
            max_retry_after_s: 60.0,
        }
    }
}

/// Circuit breaker of a target (provider + model).
#[derive(Debug, Clone, Copy, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct CooldownConfig {
    /// Failed calls in a row that open the breaker (connection refused, missing model, auth and
    /// quota errors open it at once).
    pub consecutive_failures: u32,
    /// First open period; each further trip multiplies it, up to `max_s`.
    pub initial_s: f64,
    pub multiplier: f64,
    pub max_s: f64,
}

impl Default for CooldownConfig {
    fn default() -> Self {
        Self {
            consecutive_failures: 3,
            initial_s: 10.0,
            multiplier: 2.0,
            max_s: 600.0,
        }
    }
}

/// Global defaults, overridable per provider.
#[derive(Debug, Clone, Copy, Deserialize, Default, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Defaults {
    pub timeouts: Timeouts,
    pub retry: RetryConfig,
    pub cooldown: CooldownConfig,
}

/// Connection-level settings of one provider.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    pub kind: ProviderKind,
    /// Base URL (Ollama: `http://host:11434`; OpenAI-compatible: `…/v1`; Anthropic:
    /// `https://api.anthropic.com`).
    #[serde(default)]
    pub base_url: Option<String>,
    /// Env var that overrides `base_url` when set.
    #[serde(default)]
    pub base_url_env: Option<String>,
    /// Env var holding the API key (the key itself is never logged or shown).
    #[serde(default)]
    pub api_key_env: Option<String>,
    #[serde(default)]
    pub timeouts: Timeouts,
    /// Parallel calls allowed (Ollama: its NUM_PARALLEL, per model, as Ollama runs each loaded
    /// model with its own slots; embedded: model instances; others: for the whole provider).
    #[serde(default = "default_concurrency")]
    pub max_concurrency: usize,
    /// Requests per minute sent to this provider (client-side limit).
    #[serde(default)]
    pub rpm: Option<u32>,
    /// Estimated tokens per minute sent to this provider (client-side limit).
    #[serde(default)]
    pub tpm: Option<u32>,
    /// Whether the provider sends data off this machine. Default: Anthropic yes; others yes
    /// unless the base URL is a loopback or private address.
    #[serde(default)]
    pub cloud: Option<bool>,
    /// Stream replies (default true): needed to detect a slow first token and a cut stream.
    #[serde(default = "yes")]
    pub stream: bool,
    /// Ollama only: keep_alive sent with every call (`30m`, `-1`, …).
    #[serde(default)]
    pub keep_alive: Option<String>,
    /// OpenAI-compatible only: `max_tokens` (default, local servers) or `max_completion_tokens`.
    #[serde(default)]
    pub max_tokens_param: Option<String>,
    /// Ollama and OpenAI-compatible: ask for token log-probabilities (`logprobs`,
    /// `top_logprobs`) on structured calls whose schema has enum fields, to fill
    /// `ChatResponse::choice_probs` (default true). `false` never sends them.
    #[serde(default = "yes")]
    pub logprobs: bool,
    /// Anthropic only: the `anthropic-version` header (default 2023-06-01).
    #[serde(default)]
    pub anthropic_version: Option<String>,
    /// Replaces `defaults.retry` for this provider.
    #[serde(default)]
    pub retry: Option<RetryConfig>,
    /// Replaces `defaults.cooldown` for this provider.
    #[serde(default)]
    pub cooldown: Option<CooldownConfig>,
    /// Embedded only: directory with the unpacked model wheels (default: the model cache).
    #[serde(default)]
    pub model_dir: Option<PathBuf>,
}

/// Debug output names the env vars, never their values.
impl std::fmt::Debug for ProviderConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderConfig")
            .field("kind", &self.kind)
            .field("base_url", &self.base_url)
            .field("base_url_env", &self.base_url_env)
            .field("api_key_env", &self.api_key_env)
            .field("max_concurrency", &self.max_concurrency)
            .finish_non_exhaustive()
    }
}

fn default_concurrency() -> usize {
    1
}
fn yes() -> bool {
    true
}

impl ProviderConfig {
    /// The base URL after the env override, without a trailing slash.
    pub fn resolved_base_url(&self) -> Option<String> {
        self.base_url_env
            .as_ref()
            .and_then(|v| std::env::var(v).ok())
            .filter(|v| !v.is_empty())
            .or_else(|| self.base_url.clone())
            .map(|u| u.trim_end_matches('/').to_string())
    }

    /// Whether data sent here leaves the machine.
    pub fn is_cloud(&self) -> bool {
        if let Some(c) = self.cloud {
            return c;
        }
        match self.kind {
            ProviderKind::Embedded => false,
            ProviderKind::Anthropic => true,
            _ => !self
                .resolved_base_url()
                .as_deref()
                .map(is_local_url)
                .unwrap_or(false),
        }
    }
}

/// Loopback, private-network and `.local` hosts count as local.
pub fn is_local_url(url: &str) -> bool {
    let rest = url.split("://").nth(1).unwrap_or(url);
    let hostport = rest.split('/').next().unwrap_or("");
    let host = if let Some(h) = hostport.strip_prefix('[') {
        h.split(']').next().unwrap_or("")
    } else {
        hostport.split(':').next().unwrap_or("")
    };
    if host == "localhost" || host.ends_with(".local") || host.ends_with(".localhost") {
        return true;
    }
    match host.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(ip)) => ip.is_loopback() || ip.is_private() || ip.is_link_local(),
        Ok(std::net::IpAddr::V6(ip)) => ip.is_loopback() || ip.is_unique_local(),
        Err(_) => false,
    }
}

/// What a model can do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Capability {
    Chat,
    JsonSchema,
    Embed,
}

/// Per-model settings, keyed `provider:model` in `models`.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// Tokens the model accepts (prompt + output); prompts estimated larger skip this target.
    #[serde(default)]
    pub context_window: Option<u32>,
    /// Ollama only: the fixed `options.num_ctx` sent with every call (changing it reloads the
    /// model). Also the effective context window when smaller than `context_window`.
    #[serde(default)]
    pub num_ctx: Option<u32>,
    #[serde(default)]
    pub capabilities: Vec<Capability>,
    /// Embedding models: expected vector length (replies of another length are invalid).
    #[serde(default)]
    pub dimensions: Option<usize>,
    /// How this model's answers get their free text: `generated` (the model writes it, and
    /// the pipeline checks it against the cited source) or `extractive` (built from the cited
    /// passage's sentences closest to the question; the model only decides choices and the
    /// citation). Default: extractive for the embedded provider, generated otherwise.
    #[serde(default)]
    pub text: Option<TextMode>,
}

/// How an answer's free text is produced (`text:` of a model entry).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TextMode {
    Generated,
    Extractive,
}

impl ModelConfig {
    /// Tokens that fit (the smaller of `num_ctx` and `context_window`).
    pub fn window(&self) -> Option<u32> {
        match (self.num_ctx, self.context_window) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// Sampling and output parameters of a task.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct TaskParameters {
    #[serde(default)]
    pub temperature: Option<f32>,
    #[serde(default)]
    pub max_tokens: Option<u32>,
    /// Answer task: characters of evidence put into the prompt (split over the sources).
    /// Small local models answer much faster with a small budget.
    #[serde(default)]
    pub evidence_chars: Option<usize>,
    /// JSON schema the output must match when the caller passes none.
    #[serde(default)]
    pub output_schema: Option<serde_json::Value>,
}

/// Who may see questionnaire text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DataPolicy {
    /// Cloud providers may be used.
    #[default]
    AllowCloud,
    /// Cloud providers are never called with questionnaire text.
    LocalOnly,
}

/// The whole router configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouterConfig {
    #[serde(default)]
    pub version: Option<u32>,
    #[serde(default)]
    pub data_policy: DataPolicy,
    #[serde(default)]
    pub defaults: Defaults,
    pub providers: BTreeMap<String, Spanned<ProviderConfig>>,
    /// Per-model settings keyed `provider:model`.
    #[serde(default)]
    pub models: BTreeMap<String, Spanned<ModelConfig>>,
    /// First target per task, as `provider:model`.
    pub task_models: BTreeMap<Task, Spanned<String>>,
    #[serde(default)]
    pub task_parameters: BTreeMap<Task, TaskParameters>,
    /// Targets tried in order after the first one fails.
    #[serde(default)]
    pub fallback_strategy: BTreeMap<Task, Vec<Spanned<String>>>,
    /// How the answer pipeline decides, cites and flags (thresholds, source caps).
    #[serde(default)]
    pub answering: AnsweringConfig,
}

/// The answer pipeline's knobs (`answering:` in the config file).
#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AnsweringConfig {
    /// Rows whose confidence is below this are flagged `needs review`.
    pub review_threshold: f32,
    /// A past answered question at least this similar (cosine) answers directly.
    pub library_threshold: f32,
    /// Sources shown to the model and cited, at most.
    pub max_sources: usize,
    /// Evidence whose cosine similarity to the question is below this is dropped.
    pub min_evidence_score: f32,
    /// Evidence more than this below the best source's similarity is dropped.
    pub evidence_drop: f32,
    /// One extra batched LLM call per question that drops sources judged irrelevant.
    pub relevance_check: bool,
    /// Questions at least this similar (cosine, plus word overlap) are answered once.
    pub duplicate_similarity: f32,
    /// Ambiguous rows sent to the classifier per call (with their neighbours as context).
    pub classify_window: usize,
    /// A row whose best evidence sentence is less similar (cosine) to the question than this
    /// abstains: no retrieved passage addresses it.
    pub min_support: f32,
    /// Generated text must share at least this share of its content words with its source.
    pub min_text_overlap: f32,
    /// Generated text must be at least this similar (cosine) to its source.
    pub min_text_agreement: f32,
    /// Where an untrusted draft (band `review`) goes: the review workbook only (default), or
    /// the customer's cells too (the behaviour before drafts were kept apart).
    pub write_drafts: WriteDrafts,
}

/// Where a draft that is not trusted (band `review`) is written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WriteDrafts {
    /// Only `library` and `high` answers go into the customer's file; drafts go to the review
    /// workbook, with their sources and the reason they need review.
    #[default]
    ReviewOnly,
    /// Every draft with a value is written into the customer's cells as well.
    Cells,
}

impl WriteDrafts {
    pub fn as_str(self) -> &'static str {
        match self {
            WriteDrafts::ReviewOnly => "review_only",
            WriteDrafts::Cells => "cells",
        }
    }

    /// `review_only` or `cells` (as the config and `--write-drafts` spell them).
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim() {
            "review_only" | "review-only" => Some(WriteDrafts::ReviewOnly),
            "cells" => Some(WriteDrafts::Cells),
            _ => None,
        }
    }
}

impl Default for AnsweringConfig {
    fn default() -> Self {
        Self {
            review_threshold: 0.5,
            library_threshold: 0.77,
            max_sources: 5,
            min_evidence_score: 0.30,
            evidence_drop: 0.2,
            relevance_check: false,
            duplicate_similarity: 0.95,
            classify_window: 8,
            min_support: 0.45,
            min_text_overlap: 0.5,
            min_text_agreement: 0.5,
            write_drafts: WriteDrafts::ReviewOnly,
        }
    }
}

/// A resolved `provider:model` target.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub struct Target {
    pub provider: String,
    pub model: String,
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.provider, self.model)
    }
}

/// Config errors, with the file and position where known.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read router config {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid router config {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid router config {path}, line {line}: {field}: {message}")]
    Invalid {
        path: PathBuf,
        line: u64,
        field: String,
        message: String,
    },
}

/// The configuration shipped with rfpq (also `config/llm_models.yaml`).
pub const DEFAULT_CONFIG: &str = include_str!("../../config/llm_models.yaml");

/// A validation failure before the file name is attached.
struct Invalid {
    line: u64,
    field: String,
    message: String,
}

fn invalid(line: u64, field: impl Into<String>, message: impl Into<String>) -> Invalid {
    Invalid {
        line,
        field: field.into(),
        message: message.into(),
    }
}

impl AnsweringConfig {
    fn check(&self) -> Result<(), Invalid> {
        let unit = [
            ("review_threshold", self.review_threshold),
            ("library_threshold", self.library_threshold),
            ("min_evidence_score", self.min_evidence_score),
            ("evidence_drop", self.evidence_drop),
            ("duplicate_similarity", self.duplicate_similarity),
            ("min_support", self.min_support),
            ("min_text_overlap", self.min_text_overlap),
            ("min_text_agreement", self.min_text_agreement),
        ];
        for (name, v) in unit {
            if !(0.0..=1.0).contains(&v) {
                return Err(invalid(
                    0,
                    format!("answering.{name}"),
                    format!("{v} is not between 0 and 1"),
                ));
            }
        }
        if self.max_sources == 0 || self.max_sources > 20 {
            return Err(invalid(0, "answering.max_sources", "must be 1..=20"));
        }
        if self.classify_window == 0 || self.classify_window > 50 {
            return Err(invalid(0, "answering.classify_window", "must be 1..=50"));
        }
        Ok(())
    }
}

impl RouterConfig {
    /// A short content hash of the whole configuration (12 hex digits of a sha256 over its
    /// parsed form): the same settings give the same hash, so an answer records which
    /// configuration produced it. It names env vars, never their values.
    /// Where a setting stands in the file (its YAML line and column) is not part of it, so a
    /// comment or a blank line does not change the hash.
    pub fn hash(&self) -> String {
        use sha2::{Digest, Sha256};
        fn values<K: Ord + Clone, T: Clone>(m: &BTreeMap<K, Spanned<T>>) -> BTreeMap<K, T> {
            m.iter()
                .map(|(k, v)| (k.clone(), v.value.clone()))
                .collect()
        }
        let fallbacks: BTreeMap<Task, Vec<String>> = self
            .fallback_strategy
            .iter()
            .map(|(k, v)| (*k, v.iter().map(|s| s.value.clone()).collect()))
            .collect();
        let settings = format!(
            "{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{fallbacks:?}|{:?}",
            self.version,
            self.data_policy,
            self.defaults,
            values(&self.providers),
            values(&self.models),
            values(&self.task_models),
            self.task_parameters,
            self.answering,
        );
        let digest = Sha256::digest(settings.as_bytes());
        digest.iter().take(6).map(|b| format!("{b:02x}")).collect()
    }

    /// Loads and validates a config file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// The built-in default configuration.
    pub fn builtin() -> Self {
        Self::parse(
            DEFAULT_CONFIG,
            Path::new("<built-in config/llm_models.yaml>"),
        )
        .expect("the built-in router config is valid (checked by tests)")
    }

    /// Parses and validates YAML text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &Path) -> Result<Self, ConfigError> {
        let cfg: RouterConfig = serde_saphyr::from_str(text).map_err(|e| ConfigError::Parse {
            path: origin.to_path_buf(),
            message: e.to_string(),
        })?;
        cfg.validate().map_err(|i| ConfigError::Invalid {
            path: origin.to_path_buf(),
            line: i.line,
            field: i.field,
            message: i.message,
        })?;
        Ok(cfg)
    }

    fn validate(&self) -> Result<(), Invalid> {
        if let Some(v) = self.version
            && v != 1
        {
            return Err(invalid(0, "version", format!("unsupported version {v}")));
        }
        check_retry(&self.defaults.retry, 0, "defaults.retry")?;
        check_cooldown(&self.defaults.cooldown, 0, "defaults.cooldown")?;
        check_timeouts(&self.defaults.timeouts, 0, "defaults.timeouts")?;
        self.answering.check()?;
        for (name, p) in &self.providers {
            let line = p.referenced.line();
            let field = |f: &str| format!("providers.{name}.{f}");
            let p = &p.value;
            if p.max_concurrency == 0 {
                return Err(invalid(
                    line,
                    field("max_concurrency"),
                    "must be at least 1",
                ));
            }
            if p.kind != ProviderKind::Embedded && p.base_url.is_none() && p.base_url_env.is_none()
            {
                return Err(invalid(
                    line,
                    field("base_url"),
                    format!("required for kind {:?}", p.kind),
                ));
            }
            if let Some(u) = &p.base_url
                && !(u.starts_with("http://") || u.starts_with("https://"))
            {
                return Err(invalid(
                    line,
                    field("base_url"),
                    format!("'{u}' must start with http:// or https://"),
                ));
            }
            if p.rpm == Some(0) || p.tpm == Some(0) {
                return Err(invalid(line, field("rpm"), "rpm/tpm must be at least 1"));
            }
            if let Some(m) = &p.max_tokens_param
                && m != "max_tokens"
                && m != "max_completion_tokens"
            {
                return Err(invalid(
                    line,
                    field("max_tokens_param"),
                    "must be max_tokens or max_completion_tokens",
                ));
            }
            check_timeouts(&p.timeouts, line, &field("timeouts"))?;
            if let Some(r) = &p.retry {
                check_retry(r, line, &field("retry"))?;
            }
            if let Some(c) = &p.cooldown {
                check_cooldown(c, line, &field("cooldown"))?;
            }
        }
        for (key, m) in &self.models {
            let line = m.referenced.line();
            let t = parse_target(key).map_err(|e| invalid(line, format!("models.{key}"), e))?;
            let Some(p) = self.providers.get(&t.provider) else {
                return Err(invalid(
                    line,
                    format!("models.{key}"),
                    format!("unknown provider '{}'", t.provider),
                ));
            };
            if m.value.num_ctx.is_some() && p.value.kind != ProviderKind::Ollama {
                return Err(invalid(
                    line,
                    format!("models.{key}.num_ctx"),
                    "num_ctx is only sent to Ollama providers; use context_window",
                ));
            }
            if m.value.num_ctx == Some(0) || m.value.context_window == Some(0) {
                return Err(invalid(
                    line,
                    format!("models.{key}"),
                    "num_ctx/context_window must be at least 1",
                ));
            }
        }
        self.check_num_ctx_aliases()?;
        for task in Task::REQUIRED {
            if !self.task_models.contains_key(&task) {
                return Err(invalid(
                    0,
                    format!("task_models.{}", task.as_str()),
                    "missing",
                ));
            }
        }
        for task in Task::ALL {
            if self.fallback_strategy.contains_key(&task) && !self.task_models.contains_key(&task) {
                let line = self.fallback_strategy[&task]
                    .first()
                    .map(|s| s.referenced.line())
                    .unwrap_or(0);
                return Err(invalid(
                    line,
                    format!("fallback_strategy.{}", task.as_str()),
                    "the task has no task_models entry",
                ));
            }
            for t in self.targets_spanned(task) {
                let line = t.referenced.line();
                let field = format!("task {}", task.as_str());
                let target = parse_target(&t.value).map_err(|e| invalid(line, &field, e))?;
                let Some(p) = self.providers.get(&target.provider) else {
                    return Err(invalid(
                        line,
                        field,
                        format!(
                            "target '{}' names unknown provider '{}' (known: {})",
                            t.value,
                            target.provider,
                            self.providers
                                .keys()
                                .cloned()
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    ));
                };
                let caps = self
                    .model(&target)
                    .map(|m| m.capabilities.clone())
                    .unwrap_or_default();
                if task == Task::Embed && !caps.is_empty() && !caps.contains(&Capability::Embed) {
                    return Err(invalid(
                        line,
                        field,
                        format!("'{}' is not declared as an embedding model", t.value),
                    ));
                }
                if task != Task::Embed && !caps.is_empty() && !caps.contains(&Capability::Chat) {
                    return Err(invalid(
                        line,
                        field,
                        format!("'{}' is not declared as a chat model", t.value),
                    ));
                }
                let structured = task == Task::Answer
                    || self
                        .task_parameters
                        .get(&task)
                        .is_some_and(|p| p.output_schema.is_some());
                if structured && !caps.is_empty() && !caps.contains(&Capability::JsonSchema) {
                    return Err(invalid(
                        line,
                        field,
                        format!(
                            "task '{}' needs structured output, but '{}' lacks the json_schema \
                             capability in models",
                            task.as_str(),
                            t.value
                        ),
                    ));
                }
                if task == Task::Embed && p.value.kind == ProviderKind::Anthropic {
                    return Err(invalid(line, field, "Anthropic has no embeddings endpoint"));
                }
            }
        }
        let embed = self.targets_spanned(Task::Embed);
        if let Some(first) = embed.first() {
            let model = parse_target(&first.value)
                .map_err(|e| invalid(first.referenced.line(), "task embed", e))?
                .model;
            for other in &embed[1..] {
                let m = parse_target(&other.value)
                    .map_err(|e| invalid(other.referenced.line(), "task embed", e))?
                    .model;
                if m != model {
                    return Err(invalid(
                        other.referenced.line(),
                        "fallback_strategy.embed",
                        format!(
                            "'{}' is a different embedding model than '{}'; vectors of different \
                             models are incompatible, so embeddings may only fall back to another \
                             server of the same model",
                            other.value, first.value
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    /// `num_ctx` lives on the model, so every task using a model shares it. Two `models` keys
    /// can still name one Ollama model (`x` and `x:latest`): they must agree, or each call
    /// would reload the model with the other context size.
    fn check_num_ctx_aliases(&self) -> Result<(), Invalid> {
        let mut seen: BTreeMap<(String, String), (&str, u32)> = BTreeMap::new();
        for (key, m) in &self.models {
            let (Ok(t), Some(n)) = (parse_target(key), m.value.num_ctx) else {
                continue;
            };
            let model = if t.model.contains(':') {
                t.model.clone()
            } else {
                format!("{}:latest", t.model)
            };
            match seen.get(&(t.provider.clone(), model.clone())) {
                Some((other, n0)) if *n0 != n => {
                    return Err(invalid(
                        m.referenced.line(),
                        format!("models.{key}.num_ctx"),
                        format!(
                            "{n} differs from num_ctx {n0} of '{other}', the same Ollama model; \
                             one model must use one num_ctx (a change reloads it)"
                        ),
                    ));
                }
                _ => {
                    seen.insert((t.provider, model), (key.as_str(), n));
                }
            }
        }
        Ok(())
    }

    fn targets_spanned(&self, task: Task) -> Vec<&Spanned<String>> {
        let mut v: Vec<&Spanned<String>> = self.task_models.get(&task).into_iter().collect();
        if let Some(f) = self.fallback_strategy.get(&task) {
            v.extend(f.iter());
        }
        v
    }

    /// Ordered targets for a task: the task model, then its fallbacks (empty if unconfigured).
    pub fn targets(&self, task: Task) -> Vec<Target> {
        self.targets_spanned(task)
            .into_iter()
            .filter_map(|t| parse_target(&t.value).ok())
            .collect()
    }

    /// Parameters of a task (defaults when not configured).
    pub fn parameters(&self, task: Task) -> TaskParameters {
        self.task_parameters.get(&task).cloned().unwrap_or_default()
    }

    /// A provider's settings.
    pub fn provider(&self, name: &str) -> Option<&ProviderConfig> {
        self.providers.get(name).map(|p| &p.value)
    }

    /// A target's model settings, if configured.
    pub fn model(&self, target: &Target) -> Option<&ModelConfig> {
        self.models.get(&target.to_string()).map(|m| &m.value)
    }

    /// A provider's timeouts merged over the defaults.
    pub fn timeouts(&self, provider: &str) -> Timeouts {
        self.provider(provider)
            .map(|p| p.timeouts)
            .unwrap_or_default()
            .or(self.defaults.timeouts)
    }

    /// A provider's retry settings.
    pub fn retry(&self, provider: &str) -> RetryConfig {
        self.provider(provider)
            .and_then(|p| p.retry)
            .unwrap_or(self.defaults.retry)
    }

    /// A provider's cooldown settings.
    pub fn cooldown(&self, provider: &str) -> CooldownConfig {
        self.provider(provider)
            .and_then(|p| p.cooldown)
            .unwrap_or(self.defaults.cooldown)
    }

    /// Every configured target (task targets and `models` keys), deduplicated and sorted.
    pub fn all_targets(&self) -> Vec<Target> {
        let mut v: Vec<Target> = Task::ALL
            .into_iter()
            .flat_map(|t| self.targets(t))
            .chain(self.models.keys().filter_map(|k| parse_target(k).ok()))
            .collect();
        v.sort();
        v.dedup();
        v
    }
}

fn check_timeouts(t: &Timeouts, line: u64, field: &str) -> Result<(), Invalid> {
    for (name, v) in [
        ("connect_s", t.connect_s),
        ("first_token_s", t.first_token_s),
        ("total_s", t.total_s),
        ("idle_s", t.idle_s),
    ] {
        if let Some(v) = v
            && !(v.is_finite() && v > 0.0)
        {
            return Err(invalid(
                line,
                format!("{field}.{name}"),
                format!("{v} must be a positive number of seconds"),
            ));
        }
    }
    Ok(())
}

fn check_retry(r: &RetryConfig, line: u64, field: &str) -> Result<(), Invalid> {
    if r.max_attempts == 0 {
        return Err(invalid(
            line,
            format!("{field}.max_attempts"),
            "must be at least 1 (the first attempt counts)",
        ));
    }
    if !(r.multiplier.is_finite() && r.multiplier >= 1.0) {
        return Err(invalid(
            line,
            format!("{field}.multiplier"),
            "must be at least 1",
        ));
    }
    if !(r.max_retry_after_s.is_finite() && r.max_retry_after_s >= 0.0) {
        return Err(invalid(
            line,
            format!("{field}.max_retry_after_s"),
            "must be a non-negative number of seconds",
        ));
    }
    Ok(())
}

fn check_cooldown(c: &CooldownConfig, line: u64, field: &str) -> Result<(), Invalid> {
    if c.consecutive_failures == 0 {
        return Err(invalid(
            line,
            format!("{field}.consecutive_failures"),
            "must be at least 1",
        ));
    }
    if !(c.initial_s.is_finite() && c.initial_s > 0.0 && c.max_s >= c.initial_s) {
        return Err(invalid(
            line,
            format!("{field}.initial_s"),
            "must be positive and not above max_s",
        ));
    }
    if !(c.multiplier.is_finite() && c.multiplier >= 1.0) {
        return Err(invalid(
            line,
            format!("{field}.multiplier"),
            "must be at least 1",
        ));
    }
    Ok(())
}

/// Splits `provider:model` at the first colon (model names may contain colons: `qwen2.5:7b`).
pub fn parse_target(s: &str) -> Result<Target, String> {
    match s.split_once(':') {
        Some((p, m)) if !p.is_empty() && !m.is_empty() => Ok(Target {
            provider: p.to_string(),
            model: m.to_string(),
        }),
        _ => Err(format!("target '{s}' must look like provider:model")),
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn config_hash_ignores_comments_and_layout_but_not_settings() {
        let base = RouterConfig::builtin();
        let text = DEFAULT_CONFIG;
        let commented = format!("# a comment that moves every line\n\n{text}");
        let moved = RouterConfig::parse(&commented, Path::new("x.yaml")).unwrap();
        assert_eq!(base.hash(), moved.hash());
        let mut changed = base.clone();
        changed.answering.review_threshold += 0.1;
        assert_ne!(base.hash(), changed.hash());
    }
    use super::*;

    #[test]
    fn builtin_config_is_valid_and_ollama_comes_first() {
        let cfg = RouterConfig::builtin();
        let answer = cfg.targets(Task::Answer);
        assert_eq!(answer[0].provider, "ollama");
        assert_eq!(answer.last().map(|t| t.provider.as_str()), Some("embedded"));
        assert_eq!(cfg.data_policy, DataPolicy::LocalOnly);
    }

    #[test]
    fn target_keeps_colons_in_model_names() {
        let t = parse_target("ollama:qwen2.5:7b").unwrap();
        assert_eq!(
            (t.provider.as_str(), t.model.as_str()),
            ("ollama", "qwen2.5:7b")
        );
        assert!(parse_target("nocolon").is_err());
    }

    #[test]
    fn unknown_provider_and_unknown_field_are_rejected_with_names_and_lines() {
        let bad = "providers:\n  embedded: {kind: embedded}\ntask_models:\n  classify: embedded:a\n  answer: nope:b\n  embed: embedded:c\n";
        let e = RouterConfig::parse(bad, Path::new("x.yaml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown provider 'nope'"), "{e}");
        assert!(e.contains("line 5"), "{e}");
        let bad = "providers:\n  embedded: {kind: embedded, colour: red}\ntask_models: {}\n";
        let e = RouterConfig::parse(bad, Path::new("x.yaml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("colour") && e.contains("line 2"), "{e}");
    }

    #[test]
    fn bad_values_name_their_field_and_line() {
        let bad = "providers:\n  embedded: {kind: embedded}\n  o:\n    kind: ollama\n    base_url: http://x\n    retry: {max_attempts: 0}\n\
                   task_models:\n  classify: embedded:a\n  answer: embedded:a\n  embed: embedded:c\n";
        let e = RouterConfig::parse(bad, Path::new("x.yaml"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("providers.o.retry.max_attempts") && e.contains("line 4"),
            "{e}"
        );
        let bad = "providers:\n  embedded: {kind: embedded}\n  o: {kind: openai, base_url: 'http://x', timeouts: {first_token_s: -1}}\n\
                   task_models:\n  classify: embedded:a\n  answer: embedded:a\n  embed: embedded:c\n";
        let e = RouterConfig::parse(bad, Path::new("x.yaml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("timeouts.first_token_s"), "{e}");
    }

    #[test]
    fn embeddings_never_fall_back_to_another_model() {
        let bad = "providers:\n  embedded: {kind: embedded}\n  ollama: {kind: ollama, base_url: 'http://x'}\ntask_models:\n  classify: embedded:a\n  answer: embedded:a\n  embed: embedded:all-minilm-l6-v2\nfallback_strategy:\n  embed: [ollama:nomic-embed-text]\n";
        let e = RouterConfig::parse(bad, Path::new("x.yaml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("incompatible") && e.contains("line 9"), "{e}");
    }

    #[test]
    fn cloud_is_inferred_from_the_url_and_kind() {
        let yaml = "providers:\n  embedded: {kind: embedded}\n  a: {kind: openai, base_url: 'http://127.0.0.1:8080/v1'}\n  \
                    b: {kind: openai, base_url: 'https://api.openai.com/v1'}\n  c: {kind: anthropic, base_url: 'http://127.0.0.1:1'}\n  \
                    d: {kind: ollama, base_url: 'http://192.168.1.5:11434'}\n\
                    task_models:\n  classify: embedded:a\n  answer: embedded:a\n  embed: embedded:c\n";
        let cfg = RouterConfig::parse(yaml, Path::new("x.yaml")).unwrap();
        let cloud = |n: &str| cfg.provider(n).unwrap().is_cloud();
        assert!(!cloud("a") && cloud("b") && cloud("c") && !cloud("d") && !cloud("embedded"));
    }
}
