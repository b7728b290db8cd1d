//! `config/llm_models.yaml`: providers, task → model targets, task parameters, fallbacks.
//! Validates at load (unknown fields, duplicate keys, unknown providers) with line-precise errors.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The tasks the pipeline routes.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, serde::Serialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Task {
    Classify,
    Answer,
    Embed,
}

impl Task {
    pub fn as_str(self) -> &'static str {
        match self {
            Task::Classify => "classify",
            Task::Answer => "answer",
            Task::Embed => "embed",
        }
    }
}

impl std::str::FromStr for Task {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "classify" => Ok(Task::Classify),
            "answer" => Ok(Task::Answer),
            "embed" => Ok(Task::Embed),
            other => Err(format!(
                "unknown task '{other}' (expected classify, answer or embed)"
            )),
        }
    }
}

/// Wire format of a provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    /// Ollama native API (`/api/chat`, `/api/embed`).
    Ollama,
    /// Any OpenAI-compatible server (`/v1/chat/completions`, `/v1/embeddings`).
    Openai,
    /// In-process candle models from the model cache.
    Embedded,
}

/// Connection-level settings of one provider.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    pub kind: ProviderKind,
    /// Base URL (Ollama: `http://host:11434`; OpenAI-compatible: `…/v1`).
    #[serde(default)]
    pub base_url: Option<String>,
    /// Env var that overrides `base_url` when set.
    #[serde(default)]
    pub base_url_env: Option<String>,
    /// Env var holding the API key (never logged).
    #[serde(default)]
    pub api_key_env: Option<String>,
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout_s: f64,
    #[serde(default = "default_total_timeout")]
    pub timeout_s: f64,
    /// Parallel calls allowed (Ollama: its NUM_PARALLEL; embedded: model instances).
    #[serde(default = "default_concurrency")]
    pub max_concurrency: usize,
    /// How long a target that failed to connect is skipped.
    #[serde(default = "default_cooldown")]
    pub cooldown_s: f64,
    /// Whether the provider sends data off this machine (forbidden under `data_policy: local_only`).
    #[serde(default)]
    pub cloud: bool,
    /// Embedded only: directory with the unpacked model wheels (default: the model cache).
    #[serde(default)]
    pub model_dir: Option<PathBuf>,
    /// Ollama only: fixed context size sent with every call.
    #[serde(default)]
    pub num_ctx: Option<u32>,
    /// Ollama only: keep_alive sent with every call.
    #[serde(default)]
    pub keep_alive: Option<String>,
}

fn default_connect_timeout() -> f64 {
    2.0
}
fn default_total_timeout() -> f64 {
    300.0
}
fn default_concurrency() -> usize {
    1
}
fn default_cooldown() -> f64 {
    30.0
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
}

/// Who may see questionnaire text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
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
    pub providers: BTreeMap<String, ProviderConfig>,
    /// First target per task, as `provider:model`.
    pub task_models: BTreeMap<Task, String>,
    #[serde(default)]
    pub task_parameters: BTreeMap<Task, TaskParameters>,
    /// Targets tried in order after the first one fails.
    #[serde(default)]
    pub fallback_strategy: BTreeMap<Task, Vec<String>>,
    #[serde(default)]
    pub data_policy: DataPolicy,
}

/// A resolved `provider:model` target.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
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
    #[error("invalid router config {path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

/// The configuration shipped with rfpq (also `config/llm_models.yaml`).
pub const DEFAULT_CONFIG: &str = include_str!("../../config/llm_models.yaml");

impl RouterConfig {
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
        cfg.validate().map_err(|message| ConfigError::Invalid {
            path: origin.to_path_buf(),
            message,
        })?;
        Ok(cfg)
    }

    fn validate(&self) -> Result<(), String> {
        for (name, p) in &self.providers {
            if p.max_concurrency == 0 {
                return Err(format!(
                    "providers.{name}.max_concurrency must be at least 1"
                ));
            }
            if p.kind != ProviderKind::Embedded && p.base_url.is_none() && p.base_url_env.is_none()
            {
                return Err(format!(
                    "providers.{name}: base_url is required for kind {:?}",
                    p.kind
                ));
            }
        }
        for task in [Task::Classify, Task::Answer, Task::Embed] {
            if !self.task_models.contains_key(&task) {
                return Err(format!("task_models.{} is missing", task.as_str()));
            }
            for t in self.targets_raw(task) {
                let target = parse_target(t)?;
                if !self.providers.contains_key(&target.provider) {
                    return Err(format!(
                        "task {}: target '{t}' names unknown provider '{}' (known: {})",
                        task.as_str(),
                        target.provider,
                        self.providers
                            .keys()
                            .cloned()
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                }
            }
        }
        let embed = self.targets_raw(Task::Embed);
        if let Some(first) = embed.first() {
            let model = parse_target(first)?.model;
            for other in &embed[1..] {
                if parse_target(other)?.model != model {
                    return Err(format!(
                        "fallback_strategy.embed: '{other}' is a different embedding model than '{first}'; \
                         vectors of different models are incompatible, so embeddings may only fall back \
                         to another server of the same model"
                    ));
                }
            }
        }
        Ok(())
    }

    fn targets_raw(&self, task: Task) -> Vec<&String> {
        let mut v: Vec<&String> = self.task_models.get(&task).into_iter().collect();
        if let Some(f) = self.fallback_strategy.get(&task) {
            v.extend(f.iter());
        }
        v
    }

    /// Ordered targets for a task: the task model, then its fallbacks.
    pub fn targets(&self, task: Task) -> Vec<Target> {
        self.targets_raw(task)
            .into_iter()
            .filter_map(|t| parse_target(t).ok())
            .collect()
    }

    /// Parameters of a task (defaults when not configured).
    pub fn parameters(&self, task: Task) -> TaskParameters {
        self.task_parameters.get(&task).cloned().unwrap_or_default()
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
    fn unknown_provider_and_unknown_field_are_rejected_with_names() {
        let bad = "providers:\n  embedded: {kind: embedded}\ntask_models:\n  classify: embedded:a\n  answer: nope:b\n  embed: embedded:c\n";
        let e = RouterConfig::parse(bad, Path::new("x.yaml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown provider 'nope'"), "{e}");
        let bad = "providers:\n  embedded: {kind: embedded, colour: red}\ntask_models: {}\n";
        let e = RouterConfig::parse(bad, Path::new("x.yaml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("colour"), "{e}");
    }

    #[test]
    fn embeddings_never_fall_back_to_another_model() {
        let bad = "providers:\n  embedded: {kind: embedded}\n  ollama: {kind: ollama, base_url: 'http://x'}\ntask_models:\n  classify: embedded:a\n  answer: embedded:a\n  embed: embedded:all-minilm-l6-v2\nfallback_strategy:\n  embed: [ollama:nomic-embed-text]\n";
        let e = RouterConfig::parse(bad, Path::new("x.yaml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("incompatible"), "{e}");
    }
}
