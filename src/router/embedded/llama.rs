//! Single-threaded llama forward pass over int8 weights (`q8.rs`) with a truncatable KV cache.
//!
//! Why not `candle_transformers::models::quantized_llama::ModelWeights`: in candle 0.11.1 every
//! quantized matmul runs on one process-wide barrier pool whose calls are serialised by a mutex
//! (two model instances on two OS threads would take turns, each spreading every small matmul
//! over all cores, which collapses on a busy 2-core box), its KV cache is private (no truncation
//! to a shared prefix), and
//! its attention goes through gemm, whose results may differ in the last bits between a one-shot
//! and a chunked prefill. Here every operation runs on the calling thread, and each position's
//! keys/values depend only on the tokens up to it (fixed-order loops, row-independent matmuls), so
//! a prefill resumed from a cached prefix is bit-identical to a cold one.

use std::io::{Read, Seek};
use std::path::Path;

use candle_core::Device;
use candle_core::quantized::GgmlDType;
use candle_core::quantized::gguf_file::Content;

use super::EmbeddedError;
use super::q8::{Kernel, Q8Acts, Q8Mat, QK};

/// Rows processed per prefill chunk (bounds activation memory; results do not depend on it).
const CHUNK: usize = 64;

/// Hyper-parameters read from GGUF metadata.
#[derive(Debug, Clone)]
pub(crate) struct LlamaConfig {
    pub n_layer: usize,
    pub n_embd: usize,
    pub n_head: usize,
    pub n_kv_head: usize,
    pub head_dim: usize,
    pub n_ff: usize,
    pub vocab: usize,
    pub context_length: usize,
    pub rms_eps: f32,
    pub rope_base: f32,
}

struct Layer {
    attn_norm: Vec<f32>,
    wq: Q8Mat,
    wk: Q8Mat,
    wv: Q8Mat,
    wo: Q8Mat,
    ffn_norm: Vec<f32>,
    w_gate: Q8Mat,
    w_up: Q8Mat,
    w_down: Q8Mat,
}

/// Model weights (read-only, shareable between instances).
pub(crate) struct LlamaWeights {
    pub cfg: LlamaConfig,
    tok_embd: Q8Mat,
    /// `None` when the output projection is tied to `tok_embd`.
    output: Option<Q8Mat>,
    out_norm: Vec<f32>,
    layers: Vec<Layer>,
    rope_cos: Vec<f32>,
    rope_sin: Vec<f32>,
}

/// KV cache plus the tokens it holds. Keys/values are stored per (layer, kv head) as
/// `[position][head_dim]` so attention walks contiguous memory.
#[derive(Clone)]
pub(crate) struct KvState {
    pub tokens: Vec<u32>,
    head_dim: usize,
    k: Vec<Vec<f32>>,
    v: Vec<Vec<f32>>,
}

impl KvState {
    pub fn new(cfg: &LlamaConfig) -> Self {
        let n = cfg.n_layer * cfg.n_kv_head;
        Self {
            tokens: Vec::new(),
            head_dim: cfg.head_dim,
            k: vec![Vec::new(); n],
            v: vec![Vec::new(); n],
        }
    }

    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    /// Forget every position from `n` on.
    pub fn truncate(&mut self, n: usize) {
        self.tokens.truncate(n);
        for buf in self.k.iter_mut().chain(self.v.iter_mut()) {
            buf.truncate(n * self.head_dim);
        }
    }

    /// Copy of the first `n` positions.
    pub fn prefix(&self, n: usize) -> Self {
        let n = n.min(self.tokens.len());
        let cut = |bufs: &Vec<Vec<f32>>| {
            bufs.iter()
                .map(|b| b[..n * self.head_dim].to_vec())
                .collect()
        };
        Self {
            tokens: self.tokens[..n].to_vec(),
            head_dim: self.head_dim,
            k: cut(&self.k),
            v: cut(&self.v),
        }
    }
}

/// Which logits a forward pass returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Logits {
    /// Only for the last token fed (`vocab` values).
    Last,
    /// For every token fed (`n × vocab` values, row-major).
    All,
}

impl LlamaWeights {
    /// Read a llama-architecture GGUF and convert every matrix to int8 (`q8.rs`).
    pub fn from_gguf<R: Read + Seek>(
        ct: &Content,
        reader: &mut R,
        path: &Path,
    ) -> Result<Self, EmbeddedError> {
        let bad = |m: String| EmbeddedError::invalid_model(path, m);
        let md = |key: &str| {
            ct.metadata
                .get(key)
                .ok_or_else(|| bad(format!("missing metadata `{key}`")))
        };
        let md_u = |key: &str| -> Result<usize, EmbeddedError> {
            md(key)?
                .to_u32()
                .map(|v| v as usize)
                .map_err(|e| bad(format!("`{key}`: {e}")))
        };
        let md_f = |key: &str| -> Result<f32, EmbeddedError> {
            md(key)?.to_f32().map_err(|e| bad(format!("`{key}`: {e}")))
        };
        let arch = md("general.architecture")?
            .to_string()
            .map_err(|e| bad(e.to_string()))?;
        if arch != "llama" {
            return Err(bad(format!(
                "architecture `{arch}` is not supported (only llama)"
            )));
        }
        let n_embd = md_u("llama.embedding_length")?;
        let n_head = md_u("llama.attention.head_count")?;
        let n_kv_head = md_u("llama.attention.head_count_kv")?;
        let head_dim = n_embd / n_head.max(1);
        let rope_dim = md_u("llama.rope.dimension_count").unwrap_or(head_dim);
        if n_head == 0
            || n_kv_head == 0
            || !n_head.is_multiple_of(n_kv_head)
            || head_dim * n_head != n_embd
            || rope_dim != head_dim
        {
            return Err(bad(format!(
                "unsupported attention shape: {n_head} heads, {n_kv_head} kv heads, embedding {n_embd}, rope dim {rope_dim}"
            )));
        }
        let expert_count = md_u("llama.expert_count").unwrap_or(0);
        if expert_count > 1 {
            return Err(bad("mixture-of-experts models are not supported".into()));
        }
        let tokens = md("tokenizer.ggml.tokens")?
            .to_vec()
            .map_err(|e| bad(e.to_string()))?
            .len();
        let cfg = LlamaConfig {
            n_layer: md_u("llama.block_count")?,
            n_embd,
            n_head,
            n_kv_head,
            head_dim,
            n_ff: md_u("llama.feed_forward_length")?,
            vocab: tokens,
            context_length: md_u("llama.context_length")?,
            rms_eps: md_f("llama.attention.layer_norm_rms_epsilon")?,
            rope_base: md_f("llama.rope.freq_base").unwrap_or(10_000.0),
        };
        if !n_embd.is_multiple_of(QK) || !cfg.n_ff.is_multiple_of(QK) {
            return Err(bad(
                "embedding and feed-forward sizes must be multiples of 32".into(),
            ));
        }

        let mut load = |name: &str, rows: usize, cols: usize| -> Result<Vec<f32>, EmbeddedError> {
            let qt = ct
                .tensor(reader, name, &Device::Cpu)
                .map_err(|e| bad(format!("tensor `{name}`: {e}")))?;
            let dims = qt.shape().dims().to_vec();
            let expected: Vec<usize> = if rows == 1 {
                vec![cols]
            } else {
                vec![rows, cols]
            };
            if dims != expected {
                return Err(bad(format!(
                    "tensor `{name}` has shape {dims:?}, expected {expected:?}"
                )));
            }
            if qt.dtype() == GgmlDType::F32 || rows > 1 {
                let t = qt
                    .dequantize(&Device::Cpu)
                    .and_then(|t| t.flatten_all())
                    .and_then(|t| t.to_vec1::<f32>());
                t.map_err(|e| bad(format!("tensor `{name}`: {e}")))
            } else {
                Err(bad(format!(
                    "tensor `{name}` should be F32, is {:?}",
                    qt.dtype()
                )))
            }
        };
        let (e, kv, ff) = (n_embd, n_kv_head * head_dim, cfg.n_ff);
        let kernel = Kernel::detect();
        let q8 =
            |data: Vec<f32>, rows: usize, cols: usize| Q8Mat::quantize(&data, rows, cols, kernel);
        let tok_embd = q8(load("token_embd.weight", cfg.vocab, e)?, cfg.vocab, e);
        let output = if ct.tensor_infos.contains_key("output.weight") {
            Some(q8(load("output.weight", cfg.vocab, e)?, cfg.vocab, e))
        } else {
            None
        };
        let out_norm = load("output_norm.weight", 1, e)?;
        let mut layers = Vec::with_capacity(cfg.n_layer);
        for i in 0..cfg.n_layer {
            let p = |s: &str| format!("blk.{i}.{s}.weight");
            layers.push(Layer {
                attn_norm: load(&p("attn_norm"), 1, e)?,
                wq: q8(load(&p("attn_q"), e, e)?, e, e),
                wk: q8(load(&p("attn_k"), kv, e)?, kv, e),
                wv: q8(load(&p("attn_v"), kv, e)?, kv, e),
                wo: q8(load(&p("attn_output"), e, e)?, e, e),
                ffn_norm: load(&p("ffn_norm"), 1, e)?,
                w_gate: q8(load(&p("ffn_gate"), ff, e)?, ff, e),
                w_up: q8(load(&p("ffn_up"), ff, e)?, ff, e),
                w_down: q8(load(&p("ffn_down"), e, ff)?, e, ff),
            });
        }

        // Interleaved ("NORM") RoPE as llama.cpp uses for llama: pairs (2i, 2i+1).
        let half = head_dim / 2;
        let mut rope_cos = Vec::with_capacity(cfg.context_length * half);
        let mut rope_sin = Vec::with_capacity(cfg.context_length * half);
        let theta: Vec<f32> = (0..half)
            .map(|i| 1f32 / cfg.rope_base.powf((2 * i) as f32 / head_dim as f32))
            .collect();
        for pos in 0..cfg.context_length {
            for t in &theta {
                let a = pos as f32 * t;
                rope_cos.push(a.cos());
                rope_sin.push(a.sin());
            }
        }
        Ok(Self {
            cfg,
            tok_embd,
            output,
            out_norm,
            layers,
            rope_cos,
            rope_sin,
        })
    }

    /// Feed `tokens` after the positions already in `st` and return logits.
    pub fn forward(
        &self,
        st: &mut KvState,
        tokens: &[u32],
        mode: Logits,
    ) -> Result<Vec<f32>, EmbeddedError> {
        let cfg = &self.cfg;
        if tokens.is_empty() {
            return Err(EmbeddedError::Inference(
                "forward called with no tokens".into(),
            ));
        }
        if st.len() + tokens.len() > cfg.context_length {
            return Err(EmbeddedError::ContextOverflow {
                needed: st.len() + tokens.len(),
                context_length: cfg.context_length,
            });
        }
        if let Some(bad) = tokens.iter().find(|t| **t as usize >= cfg.vocab) {
            return Err(EmbeddedError::Inference(format!(
                "token id {bad} outside the vocabulary"
            )));
        }
        let mut logits = Vec::new();
        let n_chunks = tokens.len().div_ceil(CHUNK);
        for (ci, chunk) in tokens.chunks(CHUNK).enumerate() {
            let hidden = self.forward_chunk(st, chunk);
            let rows: &[f32] = match mode {
                Logits::All => &hidden,
                Logits::Last if ci + 1 == n_chunks => &hidden[(chunk.len() - 1) * cfg.n_embd..],
                Logits::Last => continue,
            };
            logits.extend(self.lm_head(rows));
        }
        Ok(logits)
    }

    /// Runs the transformer over one chunk; returns the final hidden states (`n × n_embd`).
    fn forward_chunk(&self, st: &mut KvState, chunk: &[u32]) -> Vec<f32> {
        let cfg = &self.cfg;
        let (e, hd, n) = (cfg.n_embd, cfg.head_dim, chunk.len());
        let kv = cfg.n_kv_head * hd;
        let p0 = st.len();
        let mut x = vec![0f32; n * e];
        for (t, &tok) in chunk.iter().enumerate() {
            self.tok_embd
                .dequantize_row(tok as usize, &mut x[t * e..(t + 1) * e]);
        }
        let mut h = vec![0f32; n * e];
        let mut q = vec![0f32; n * e];
        let mut k = vec![0f32; n * kv];
        let mut v = vec![0f32; n * kv];
        let mut att = vec![0f32; n * e];
        let mut proj = vec![0f32; n * e];
        let mut gate = vec![0f32; n * cfg.n_ff];
        let mut up = vec![0f32; n * cfg.n_ff];
        let mut scores = Vec::with_capacity(p0 + n);
        let group = cfg.n_head / cfg.n_kv_head;
        let scale = 1.0 / (hd as f32).sqrt();

        for (li, layer) in self.layers.iter().enumerate() {
            rms_norm(&x, &layer.attn_norm, cfg.rms_eps, &mut h);
            let hq = self.quantize(&h, e);
            layer.wq.matmul(&hq, &mut q);
            layer.wk.matmul(&hq, &mut k);
            layer.wv.matmul(&hq, &mut v);
            for t in 0..n {
                self.rope(&mut q[t * e..(t + 1) * e], p0 + t);
                self.rope(&mut k[t * kv..(t + 1) * kv], p0 + t);
            }
            for kvh in 0..cfg.n_kv_head {
                let idx = li * cfg.n_kv_head + kvh;
                for t in 0..n {
                    let off = t * kv + kvh * hd;
                    st.k[idx].extend_from_slice(&k[off..off + hd]);
                    st.v[idx].extend_from_slice(&v[off..off + hd]);
                }
            }
            for (t, (q_row, att_row)) in q.chunks_exact(e).zip(att.chunks_exact_mut(e)).enumerate()
            {
                let n_ctx = p0 + t + 1;
                for (head, (qh, out)) in q_row
                    .chunks_exact(hd)
                    .zip(att_row.chunks_exact_mut(hd))
                    .enumerate()
                {
                    let idx = li * cfg.n_kv_head + head / group;
                    attend(qh, &st.k[idx], &st.v[idx], n_ctx, scale, &mut scores, out);
                }
            }
            layer.wo.matmul(&self.quantize(&att, e), &mut proj);
            add_assign(&mut x, &proj);

            rms_norm(&x, &layer.ffn_norm, cfg.rms_eps, &mut h);
            let hq = self.quantize(&h, e);
            layer.w_gate.matmul(&hq, &mut gate);
            layer.w_up.matmul(&hq, &mut up);
            for (g, u) in gate.iter_mut().zip(&up) {
                *g = *g / (1.0 + (-*g).exp()) * u;
            }
            layer
                .w_down
                .matmul(&self.quantize(&gate, cfg.n_ff), &mut proj);
            add_assign(&mut x, &proj);
        }
        st.tokens.extend_from_slice(chunk);
        rms_norm(&x, &self.out_norm, cfg.rms_eps, &mut h);
        h
    }

    /// Logits for each row of final-normed hidden states.
    fn lm_head(&self, rows: &[f32]) -> Vec<f32> {
        let head = self.output.as_ref().unwrap_or(&self.tok_embd);
        let m = rows.len() / self.cfg.n_embd;
        let mut out = vec![0f32; m * head.rows];
        head.matmul(&self.quantize(rows, self.cfg.n_embd), &mut out);
        out
    }

    /// Quantize activations for this model's kernel.
    fn quantize(&self, x: &[f32], cols: usize) -> Q8Acts {
        Q8Acts::quantize(x, cols, self.tok_embd.kernel())
    }

    /// Rotate every head of one row in place (interleaved pairs).
    fn rope(&self, row: &mut [f32], pos: usize) {
        let half = self.cfg.head_dim / 2;
        let cos = &self.rope_cos[pos * half..(pos + 1) * half];
        let sin = &self.rope_sin[pos * half..(pos + 1) * half];
        for head in row.chunks_exact_mut(self.cfg.head_dim) {
            for (i, pair) in head.chunks_exact_mut(2).enumerate() {
                let (a, b) = (pair[0], pair[1]);
                pair[0] = a * cos[i] - b * sin[i];
                pair[1] = a * sin[i] + b * cos[i];
            }
        }
    }
}

fn rms_norm(x: &[f32], w: &[f32], eps: f32, out: &mut [f32]) {
    let e = w.len();
    for (xr, or) in x.chunks_exact(e).zip(out.chunks_exact_mut(e)) {
        let ms = xr.iter().map(|v| v * v).sum::<f32>() / e as f32;
        let inv = 1.0 / (ms + eps).sqrt();
        for ((o, xv), wv) in or.iter_mut().zip(xr).zip(w) {
            *o = xv * inv * wv;
        }
    }
}

fn add_assign(x: &mut [f32], y: &[f32]) {
    for (a, b) in x.iter_mut().zip(y) {
        *a += b;
    }
}

/// Softmax attention of one query head over the first `n_ctx` cached keys/values
/// (`[position][head_dim]`), written to `out`. Compiled for AVX2 when the CPU has it.
fn attend(
    q: &[f32],
    keys: &[f32],
    values: &[f32],
    n_ctx: usize,
    scale: f32,
    scores: &mut Vec<f32>,
    out: &mut [f32],
) {
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx2") {
        /// # Safety
        /// The CPU must support AVX2.
        #[target_feature(enable = "avx2")]
        unsafe fn attend_avx2(
            q: &[f32],
            k: &[f32],
            v: &[f32],
            n: usize,
            s: f32,
            sc: &mut Vec<f32>,
            o: &mut [f32],
        ) {
            attend_body(q, k, v, n, s, sc, o);
        }
        // SAFETY: AVX2 was detected; the body is safe code.
        unsafe { attend_avx2(q, keys, values, n_ctx, scale, scores, out) };
        return;
    }
    attend_body(q, keys, values, n_ctx, scale, scores, out);
}

#[inline(always)]
fn attend_body(
    q: &[f32],
    keys: &[f32],
    values: &[f32],
    n_ctx: usize,
    scale: f32,
    scores: &mut Vec<f32>,
    out: &mut [f32],
) {
    let hd = q.len();
    scores.clear();
    let mut max = f32::NEG_INFINITY;
    for key in keys.chunks_exact(hd).take(n_ctx) {
        let s = dot(q, key) * scale;
        max = max.max(s);
        scores.push(s);
    }
    let mut sum = 0f32;
    for s in scores.iter_mut() {
        *s = (*s - max).exp();
        sum += *s;
    }
    let inv = 1.0 / sum;
    out.fill(0.0);
    for (s, value) in scores.iter().zip(values.chunks_exact(hd)) {
        let p = s * inv;
        for (o, x) in out.iter_mut().zip(value) {
            *o += p * x;
        }
    }
}

/// Dot product with eight independent accumulators (lets the compiler vectorise; fixed order).
#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    let mut s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (x, y) in ra.iter().zip(rb) {
        s += x * y;
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_matches_naive() {
        let a: Vec<f32> = (0..67).map(|i| i as f32 * 0.5 - 3.0).collect();
        let b: Vec<f32> = (0..67).map(|i| 1.0 - i as f32 * 0.25).collect();
        let naive: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        assert!((dot(&a, &b) - naive).abs() < 1e-3);
    }
}
