//! In-process models (SmolLM2-135M-Instruct chat, all-MiniLM-L6-v2 embeddings) behind the router.
//!
//! Files: `chat.rs` (prompting, prefix KV reuse, decoding), `schema.rs` (JSON-schema-constrained
//! output), `llama.rs` (single-threaded forward pass), `q8.rs` (int8 weights and SIMD matmul
//! kernels), `gguf_tokenizer.rs` (tokenizer rebuilt from GGUF metadata), `embed.rs` (sentence
//! embeddings).

mod chat;
mod embed;
mod gguf_tokenizer;
mod llama;
mod q8;
mod schema;

use std::path::{Path, PathBuf};

use crate::router::types::{ChatMessage, ChoiceProbs};

pub use chat::EmbeddedChat;
pub use embed::EmbeddedEmbedder;
pub use gguf_tokenizer::load_gguf_tokenizer;

/// Errors from the embedded models.
#[derive(Debug, thiserror::Error)]
pub enum EmbeddedError {
    /// A model file or directory is missing.
    #[error("model file not found at {}; run scripts/setup.sh or set RFPQ_MODEL_DIR", path.display())]
    ModelNotFound { path: PathBuf },
    /// A model file exists but could not be read.
    #[error("cannot read model file {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A model file was read but its content is not what this module expects.
    #[error("invalid model file {}: {message}", path.display())]
    InvalidModel { path: PathBuf, message: String },
    /// The JSON schema is outside the subset the constrained decoder supports.
    #[error("unsupported JSON schema for embedded structured output: {0}")]
    UnsupportedSchema(String),
    /// The request itself is unusable (no messages, ...).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// The prompt cannot be made to fit the context window.
    #[error(
        "prompt needs {needed} tokens but the context window is {context_length} tokens and it cannot be shortened further"
    )]
    ContextOverflow {
        needed: usize,
        context_length: usize,
    },
    /// Tokenizer failure.
    #[error("tokenizer error: {0}")]
    Tokenizer(String),
    /// Failure while running a model.
    #[error("inference error: {0}")]
    Inference(String),
}

impl EmbeddedError {
    pub(crate) fn invalid_model(path: &Path, message: impl std::fmt::Display) -> Self {
        Self::InvalidModel {
            path: path.to_path_buf(),
            message: message.to_string(),
        }
    }

    /// `ModelNotFound` when `path` does not exist, else `Io`.
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        if source.kind() == std::io::ErrorKind::NotFound {
            Self::ModelNotFound {
                path: path.to_path_buf(),
            }
        } else {
            Self::Io {
                path: path.to_path_buf(),
                source,
            }
        }
    }
}

/// One chat completion request for [`EmbeddedChat::complete`].
#[derive(Debug, Clone, Copy)]
pub struct EmbeddedRequest<'a> {
    pub messages: &'a [ChatMessage],
    /// Upper bound on the answer length in tokens. With a schema it covers the whole JSON
    /// object; the skeleton, enum values and numbers are always emitted (even past this bound),
    /// free strings get what is left.
    pub max_tokens: usize,
    /// Optional JSON schema the output must satisfy (flat object of string / enum / number
    /// properties; see [`EmbeddedChat::complete`]).
    pub json_schema: Option<&'a serde_json::Value>,
}

/// Result of [`EmbeddedChat::complete`].
#[derive(Debug, Clone, PartialEq)]
pub struct EmbeddedCompletion {
    /// Generated text; with a schema, a JSON object that satisfies it.
    pub text: String,
    /// Tokens in the rendered ChatML prompt (after clamping).
    pub prompt_tokens: u32,
    /// Answer tokens the model generated or was forced through after the prompt.
    pub eval_tokens: u32,
    /// The prompt was shortened to fit the context window.
    pub truncated: bool,
    /// With a schema: per enum field, in output order, every option's probability (softmax
    /// over the option scores; a single option has 1). Empty without a schema.
    pub choice_probs: Vec<ChoiceProbs>,
}
