//! One provider's connection settings (`providers:`), the per-attempt time budget, retry and
//! cooldown settings with their global `defaults:`, and whether a provider is local or cloud.
//! Plain config types with their defaults; does not validate them (that is `validate`) and
//! opens no connection.

use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

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
    pub(super) fn or(self, base: Timeouts) -> Timeouts {
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

#[cfg(test)]
mod tests {
    use super::super::RouterConfig;
    use std::path::Path;

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
