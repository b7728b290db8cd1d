//! What the router routes and to what: the tasks, a model's capabilities and settings
//! (`models:`), how an answer's text is produced (`text:`) and each task's sampling and output
//! parameters (`task_parameters:`). Plain config types; does not validate them (that is
//! `validate`) or resolve targets (that is the parent module).

use serde::Deserialize;

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
