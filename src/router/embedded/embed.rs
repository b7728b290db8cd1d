//! all-MiniLM-L6-v2 sentence embeddings: BERT from safetensors, mean pooling, L2-normalised.
//! Texts are never padded (a forward pass takes texts of one token length), so a text's
//! vector is bit for bit the same whatever it is embedded with.

use std::path::{Path, PathBuf};

use candle_core::{D, DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use std::collections::BTreeMap;
use tokenizers::{Encoding, Tokenizer, TruncationParams};

use super::EmbeddedError;

/// Texts per forward pass (at most; only texts of one token length share a pass).
const BATCH: usize = 32;
/// Token limit per text, as sentence-transformers uses for this model.
const MAX_SEQ_LEN: usize = 256;

/// all-MiniLM-L6-v2 run in-process (384 dimensions, unit vectors). `Send + Sync`: `embed`
/// takes `&self`, so one instance can be shared behind an `Arc`.
pub struct EmbeddedEmbedder {
    model: BertModel,
    tokenizer: Tokenizer,
    device: Device,
    dims: usize,
}

fn inference(e: candle_core::Error) -> EmbeddedError {
    EmbeddedError::Inference(e.to_string())
}

impl EmbeddedEmbedder {
    /// Load `config.json`, `tokenizer.json` and `model.safetensors` from `model_dir`.
    pub fn load(model_dir: &Path) -> Result<Self, EmbeddedError> {
        let started = std::time::Instant::now();
        let file = |name: &str| -> Result<PathBuf, EmbeddedError> {
            let p = model_dir.join(name);
            if p.is_file() {
                Ok(p)
            } else {
                Err(EmbeddedError::ModelNotFound { path: p })
            }
        };
        let (config_path, tokenizer_path, weights_path) = (
            file("config.json")?,
            file("tokenizer.json")?,
            file("model.safetensors")?,
        );

        let config_bytes =
            std::fs::read(&config_path).map_err(|e| EmbeddedError::io(&config_path, e))?;
        let config: Config = serde_json::from_slice(&config_bytes)
            .map_err(|e| EmbeddedError::invalid_model(&config_path, e))?;

        let mut tokenizer = Tokenizer::from_file(&tokenizer_path)
            .map_err(|e| EmbeddedError::invalid_model(&tokenizer_path, e))?;
        // tokenizer.json ships fixed padding/truncation at 128; sentence-transformers uses
        // 256 tokens. No padding: padded positions change the summation order inside
        // attention, so a padded text's vector would depend on the longest text beside it
        // (in its last bits, enough to reorder near-equal search results).
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: MAX_SEQ_LEN,
                ..Default::default()
            }))
            .map_err(|e| EmbeddedError::invalid_model(&tokenizer_path, e))?;

        let device = Device::Cpu;
        let bytes =
            std::fs::read(&weights_path).map_err(|e| EmbeddedError::io(&weights_path, e))?;
        let vb = VarBuilder::from_buffered_safetensors(bytes, DType::F32, &device)
            .map_err(|e| EmbeddedError::invalid_model(&weights_path, e))?;
        let model = BertModel::load(vb, &config)
            .map_err(|e| EmbeddedError::invalid_model(&weights_path, e))?;
        tracing::info!(
            path = %model_dir.display(),
            load_ms = started.elapsed().as_millis() as u64,
            "embedded embedding model loaded"
        );
        Ok(Self {
            model,
            tokenizer,
            device,
            dims: config.hidden_size,
        })
    }

    /// `"all-minilm-l6-v2"`.
    pub fn model_name(&self) -> &str {
        "all-minilm-l6-v2"
    }

    /// Embedding size (384).
    pub fn dimensions(&self) -> usize {
        self.dims
    }

    /// One unit-length vector per text, in order. Texts of the same token length go through
    /// the model together (up to 32 at a time), so none is padded: a vector depends only on
    /// its text, and no time goes on padding (72 policy chunks: 3.7 s unpadded against 8.3 s
    /// in padded batches of 32).
    pub fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbeddedError> {
        let inputs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let encodings = self
            .tokenizer
            .encode_batch(inputs, true)
            .map_err(|e| EmbeddedError::Tokenizer(e.to_string()))?;
        let mut by_len: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        for (i, e) in encodings.iter().enumerate() {
            by_len.entry(e.get_ids().len()).or_default().push(i);
        }
        let mut out = vec![Vec::new(); texts.len()];
        for group in by_len.values() {
            for batch in group.chunks(BATCH) {
                let same: Vec<&Encoding> = batch.iter().map(|&i| &encodings[i]).collect();
                for (&i, v) in batch.iter().zip(self.embed_batch(&same)?) {
                    out[i] = v;
                }
            }
        }
        Ok(out)
    }

    /// Embeds encodings of one length (no padding, so the mask is all ones).
    fn embed_batch(&self, encodings: &[&Encoding]) -> Result<Vec<Vec<f32>>, EmbeddedError> {
        let n = encodings.len();
        let len = encodings.first().map_or(0, |e| e.get_ids().len());
        let mut ids = Vec::with_capacity(n * len);
        let mut mask = Vec::with_capacity(n * len);
        for e in encodings {
            debug_assert_eq!(e.get_ids().len(), len, "one length per forward pass");
            ids.extend_from_slice(e.get_ids());
            mask.extend_from_slice(e.get_attention_mask());
        }
        let ids = Tensor::from_vec(ids, (n, len), &self.device).map_err(inference)?;
        let mask = Tensor::from_vec(mask, (n, len), &self.device).map_err(inference)?;
        let type_ids = ids.zeros_like().map_err(inference)?;
        let hidden = self
            .model
            .forward(&ids, &type_ids, Some(&mask))
            .map_err(inference)?;
        let pooled = (|| {
            let m = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
            let sum = hidden.broadcast_mul(&m)?.sum(1)?;
            let count = m.sum(1)?.clamp(1e-9, f64::INFINITY)?;
            let mean = sum.broadcast_div(&count)?;
            let norm = mean
                .sqr()?
                .sum_keepdim(D::Minus1)?
                .sqrt()?
                .clamp(1e-12, f64::INFINITY)?;
            mean.broadcast_div(&norm)?.to_vec2::<f32>()
        })();
        pooled.map_err(inference)
    }
}
