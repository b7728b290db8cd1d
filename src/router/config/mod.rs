//! `config/llm_models.yaml`: providers, models, task → targets, task parameters, fallbacks,
//! data policy, timeouts, retry and cooldown settings. Validated at load (unknown fields,
//! duplicate keys, unknown providers, bad values) with errors naming the line and field.
//! Does not open connections or read API keys' values (only the env var names), and does not
//! interpret the file's `answering:` section (the answer pipeline's own settings).
//!
//! `task` has the tasks and per-model settings, `provider` the connection settings, `validate`
//! the rules a loaded file must pass; this module has the file as a whole and its targets.

mod provider;
mod task;
mod validate;

pub use provider::{
    CooldownConfig, Defaults, ProviderConfig, ProviderKind, RetryConfig, Timeouts, is_local_url,
};
pub use task::{Capability, ModelConfig, Task, TaskParameters, TextMode};

use serde::Deserialize;
use serde_saphyr::Spanned;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

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
    /// `answering:` configures the answer pipeline, which reads it from the same text. The
    /// router accepts the section so that one file configures both, and never looks inside.
    #[serde(default, rename = "answering")]
    _answering: Option<serde::de::IgnoredAny>,
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
pub const DEFAULT_CONFIG: &str = include_str!("../../../config/llm_models.yaml");

/// How [`DEFAULT_CONFIG`] is named in errors.
pub const BUILTIN_ORIGIN: &str = "<built-in config/llm_models.yaml>";

/// The text of a config file (the error names the file).
pub fn read_text(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// YAML text as `T`, unvalidated; a syntax or type error names `origin` and the position.
pub fn from_yaml<T: serde::de::DeserializeOwned>(
    text: &str,
    origin: &Path,
) -> Result<T, ConfigError> {
    serde_saphyr::from_str(text).map_err(|e| ConfigError::Parse {
        path: origin.to_path_buf(),
        message: e.to_string(),
    })
}

impl RouterConfig {
    /// The routing settings as text, for a configuration hash: the same settings give the same
    /// text. It names env vars, never their values. Where a setting stands in the file (its
    /// YAML line and column) is not part of it, so a comment or a blank line does not change
    /// it. The `answering:` section is not part of it either (its owner adds it).
    pub fn settings_text(&self) -> String {
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
        format!(
            "{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{fallbacks:?}",
            self.version,
            self.data_policy,
            self.defaults,
            values(&self.providers),
            values(&self.models),
            values(&self.task_models),
            self.task_parameters,
        )
    }

    /// Loads and validates a config file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        Self::parse(&read_text(path)?, path)
    }

    /// The built-in default configuration.
    pub fn builtin() -> Self {
        Self::parse(DEFAULT_CONFIG, Path::new(BUILTIN_ORIGIN))
            .expect("the built-in router config is valid (checked by tests)")
    }

    /// Parses and validates YAML text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &Path) -> Result<Self, ConfigError> {
        let cfg: RouterConfig = from_yaml(text, origin)?;
        cfg.validate().map_err(|i| ConfigError::Invalid {
            path: origin.to_path_buf(),
            line: i.line,
            field: i.field,
            message: i.message,
        })?;
        Ok(cfg)
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
}
