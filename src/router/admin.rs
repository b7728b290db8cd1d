//! Operator functions behind `rfpq models check|pull|warm`: which providers answer and which
//! configured models they lack (`/api/tags`, `/v1/models`, model files), pulling an Ollama
//! model with progress, and loading (warming) an Ollama model. Results serialize to JSON.
//! Does not print anything and sends no questionnaire text anywhere.

use super::config::{DataPolicy, ProviderKind, RouterConfig, Target};
use super::error::ProviderError;
use super::ollama::{Ollama, PullProgress, WarmReport};
use super::provider::{Deadlines, same_model};
use serde::Serialize;
use std::time::{Duration, Instant};

/// Reachability and model availability of one provider.
#[derive(Debug, Clone, Serialize)]
pub struct ProviderCheck {
    pub provider: String,
    pub kind: ProviderKind,
    /// After env overrides (never contains a key).
    pub base_url: Option<String>,
    pub cloud: bool,
    /// `set`, `missing` or `not_needed`.
    pub api_key: &'static str,
    /// Whether the provider was contacted (cloud providers are not under `local_only`).
    pub contacted: bool,
    pub reachable: bool,
    pub latency_ms: u64,
    pub error: Option<String>,
    /// Models this config routes to on this provider.
    pub configured: Vec<String>,
    /// Models the provider reports.
    pub available: Vec<String>,
    /// Configured models the provider does not have.
    pub missing: Vec<String>,
}

/// Result of `check`: one entry per provider.
#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    pub data_policy: DataPolicy,
    pub providers: Vec<ProviderCheck>,
    /// Every provider that was contacted is reachable and has every configured model.
    pub ok: bool,
}

/// Result of `pull`.
#[derive(Debug, Clone, Serialize)]
pub struct PullReport {
    pub provider: String,
    pub model: String,
    pub elapsed_ms: u64,
    /// The last progress line (`success`).
    pub status: String,
}

/// Operator-function failures.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("unknown provider '{0}'")]
    UnknownProvider(String),
    #[error("provider '{provider}' is {kind:?}; {what} works only with Ollama")]
    NotOllama {
        provider: String,
        kind: ProviderKind,
        what: &'static str,
    },
    #[error("{0}: {1}")]
    Provider(String, ProviderError),
}

fn deadline(d: Duration) -> Deadlines {
    let at = Instant::now() + d;
    Deadlines {
        first_token: Some(at),
        total: Some(at),
        idle: None,
    }
}

/// Contacts every provider (except cloud ones under `local_only`) and lists missing models.
pub async fn check(cfg: &RouterConfig) -> CheckReport {
    let targets = cfg.all_targets();
    let mut providers = Vec::new();
    for (name, p) in &cfg.providers {
        let p = &p.value;
        let configured: Vec<String> = targets
            .iter()
            .filter(|t| &t.provider == name)
            .map(|t| t.model.clone())
            .collect();
        let api_key = match &p.api_key_env {
            None => "not_needed",
            Some(v) if std::env::var(v).map(|k| !k.is_empty()).unwrap_or(false) => "set",
            Some(_) => "missing",
        };
        let mut c = ProviderCheck {
            provider: name.clone(),
            kind: p.kind,
            base_url: p.resolved_base_url(),
            cloud: p.is_cloud(),
            api_key,
            contacted: false,
            reachable: false,
            latency_ms: 0,
            error: None,
            configured: configured.clone(),
            available: vec![],
            missing: vec![],
        };
        if c.cloud && cfg.data_policy == DataPolicy::LocalOnly {
            c.error = Some("not contacted: data_policy local_only forbids cloud providers".into());
            providers.push(c);
            continue;
        }
        if let Some(why) = super::missing_key(cfg, name) {
            c.error = Some(why);
            providers.push(c);
            continue;
        }
        let t = cfg.timeouts(name);
        let budget = t.connect() + t.first_token().unwrap_or(Duration::from_secs(10));
        let started = Instant::now();
        c.contacted = true;
        let listed = match super::build_backend(cfg, name) {
            Ok(b) => b.models(deadline(budget)).await,
            Err(e) => Err(e),
        };
        c.latency_ms = started.elapsed().as_millis() as u64;
        match listed {
            Ok(models) => {
                c.reachable = true;
                c.missing = configured
                    .iter()
                    .filter(|m| !models.iter().any(|a| same_model(a, m)))
                    .cloned()
                    .collect();
                c.available = models;
            }
            Err(e) => {
                c.error = Some(e.to_string());
                c.missing = configured;
            }
        }
        providers.push(c);
    }
    let ok = providers
        .iter()
        .filter(|c| c.contacted)
        .all(|c| c.reachable && c.missing.is_empty());
    CheckReport {
        data_policy: cfg.data_policy,
        providers,
        ok,
    }
}

fn ollama(cfg: &RouterConfig, provider: &str, what: &'static str) -> Result<Ollama, AdminError> {
    let p = cfg
        .provider(provider)
        .ok_or_else(|| AdminError::UnknownProvider(provider.to_string()))?;
    if p.kind != ProviderKind::Ollama {
        return Err(AdminError::NotOllama {
            provider: provider.to_string(),
            kind: p.kind,
            what,
        });
    }
    let connect = cfg.timeouts(provider).connect();
    Ollama::new(p, connect, super::num_ctx_of(cfg, provider))
        .map_err(|e| AdminError::Provider(provider.to_string(), e))
}

/// Pulls `target.model` on the Ollama provider `target.provider`; `progress` sees every
/// status line (`pulling manifest`, `pulling <digest>` with `total`/`completed`, …, `success`).
pub async fn pull(
    cfg: &RouterConfig,
    target: &Target,
    timeout: Duration,
    mut progress: impl FnMut(&PullProgress) + Send,
) -> Result<PullReport, AdminError> {
    let o = ollama(cfg, &target.provider, "pull")?;
    let started = Instant::now();
    let mut last = String::new();
    let mut cb = |p: &PullProgress| {
        last = p.status.clone();
        progress(p)
    };
    o.pull(&target.model, deadline(timeout), &mut cb)
        .await
        .map_err(|e| AdminError::Provider(target.to_string(), e))?;
    Ok(PullReport {
        provider: target.provider.clone(),
        model: target.model.clone(),
        elapsed_ms: started.elapsed().as_millis() as u64,
        status: last,
    })
}

/// Loads `target.model` into the Ollama server's memory (with the configured `num_ctx` and
/// `keep_alive`), so the first real call does not pay the load time.
pub async fn warm(
    cfg: &RouterConfig,
    target: &Target,
    timeout: Duration,
) -> Result<WarmReport, AdminError> {
    let o = ollama(cfg, &target.provider, "warm")?;
    o.warm(&target.model, deadline(timeout))
        .await
        .map_err(|e| AdminError::Provider(target.to_string(), e))
}
