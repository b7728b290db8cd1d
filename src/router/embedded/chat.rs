//! SmolLM2-135M-Instruct chat: ChatML prompt, prompt clamping, prefix KV reuse and greedy decoding.

use std::io::BufReader;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use candle_core::quantized::gguf_file::Content;

use super::gguf_tokenizer::GgufVocab;
use super::llama::{KvState, LlamaWeights, Logits};
use super::{EmbeddedCompletion, EmbeddedError, EmbeddedRequest, schema};
use crate::router::types::{ChatMessage, Role};

/// System prompt the GGUF chat template inserts when the conversation has none.
const DEFAULT_SYSTEM: &str = "You are a helpful AI assistant named SmolLM, trained by Hugging Face";
/// Repeat penalty for plain generation (applied to the last answer tokens only, not the prompt).
const REPEAT_PENALTY: f32 = 1.1;
const REPEAT_LAST_N: usize = 64;
/// Prefix cache: at most this many KV snapshots...
const MAX_SLOTS: usize = 4;
/// ...holding at most this many positions together (46 KB each for SmolLM2-135M).
const MAX_CACHED_TOKENS: usize = 6144;
/// Inserted where the middle of an over-long user message was cut.
const CUT_MARKER: &str = "\n[...]\n";

/// SmolLM2-135M-Instruct run in-process.
///
/// Weights are re-quantized from Q4_1 to int8 with one f32 scale per 32 values (Q8_0-like, see
/// `q8.rs`) at load. Every forward pass runs on the calling thread only, with no thread pool, so
/// two instances on two OS threads run in parallel without contending (see `llama.rs` for why
/// candle's `quantized_llama` is not used); [`EmbeddedChat::fork`] makes the second instance
/// without loading the weights again. The instance keeps KV snapshots of recent prompts and
/// resumes from the longest shared token prefix; the result is bit-identical to a cold run.
pub struct EmbeddedChat {
    weights: Arc<LlamaWeights>,
    vocab: Arc<GgufVocab>,
    newline: Vec<u32>,
    /// KV snapshots, least recently used first.
    slots: Vec<KvState>,
    last_reused_tokens: usize,
    context_limit: usize,
}

/// State of one completion: KV cache, current logits, accepted tokens not yet fed.
pub(crate) struct Session<'a> {
    weights: &'a LlamaWeights,
    pub vocab: &'a GgufVocab,
    st: KvState,
    logits: Vec<f32>,
    pending: Vec<u32>,
    /// Tokens accepted after the prompt (fed or pending).
    pub answer_tokens: usize,
    /// Usable context window.
    ctx: usize,
}

impl Session<'_> {
    /// Positions still free in the context window.
    pub fn room(&self) -> usize {
        self.ctx.saturating_sub(self.st.len() + self.pending.len())
    }

    /// Feed pending tokens so `logits` predict the next one.
    pub fn advance(&mut self) -> Result<(), EmbeddedError> {
        if !self.pending.is_empty() {
            let pending = std::mem::take(&mut self.pending);
            self.logits = self.weights.forward(&mut self.st, &pending, Logits::Last)?;
        }
        Ok(())
    }

    /// Accept one generated token.
    pub fn push(&mut self, id: u32) {
        self.pending.push(id);
        self.answer_tokens += 1;
    }

    /// Accept forced tokens.
    pub fn force(&mut self, ids: &[u32]) {
        self.pending.extend_from_slice(ids);
        self.answer_tokens += ids.len();
    }

    /// Accept forced text (tokenized on its own).
    pub fn force_text(&mut self, text: &str) -> Result<(), EmbeddedError> {
        let ids = self.vocab.encode_plain(text)?;
        self.force(&ids);
        Ok(())
    }

    /// Greedy pick among tokens passing `allow`, with a repeat penalty over `recent`.
    /// Call [`Session::advance`] first.
    pub fn pick(&self, penalty: f32, recent: &[u32], allow: impl Fn(u32) -> bool) -> Option<u32> {
        let adjusted;
        let logits: &[f32] = if penalty != 1.0 && !recent.is_empty() {
            let mut l = self.logits.clone();
            let mut ids = recent.to_vec();
            ids.sort_unstable();
            ids.dedup();
            for id in ids {
                if let Some(v) = l.get_mut(id as usize) {
                    *v = if *v >= 0.0 {
                        *v / penalty
                    } else {
                        *v * penalty
                    };
                }
            }
            adjusted = l;
            &adjusted
        } else {
            &self.logits
        };
        let mut best: Option<(f32, u32)> = None;
        for (id, &l) in logits.iter().enumerate() {
            if best.is_some_and(|(b, _)| l <= b) || !allow(id as u32) {
                continue;
            }
            best = Some((l, id as u32));
        }
        best.map(|(_, id)| id)
    }

    /// Mean log-probability of `ids` continuing the current state; the state is unchanged after.
    pub fn score(&mut self, ids: &[u32]) -> Result<f32, EmbeddedError> {
        self.advance()?;
        let Some(&first) = ids.first() else {
            return Ok(0.0);
        };
        let mut total = log_prob(&self.logits, first);
        let mut n = 1;
        if ids.len() > 1 && self.room() >= ids.len() {
            let base = self.st.len();
            let all = self
                .weights
                .forward(&mut self.st, &ids[..ids.len() - 1], Logits::All)?;
            self.st.truncate(base);
            let vocab = self.weights.cfg.vocab;
            for (row, &id) in all.chunks_exact(vocab).zip(&ids[1..]) {
                total += log_prob(row, id);
                n += 1;
            }
        }
        Ok(total / n as f32)
    }
}

fn log_prob(logits: &[f32], id: u32) -> f32 {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f32 = logits.iter().map(|l| (l - max).exp()).sum();
    logits
        .get(id as usize)
        .map_or(f32::NEG_INFINITY, |l| l - max - sum.ln())
}

fn common_prefix(a: &[u32], b: &[u32]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

impl EmbeddedChat {
    /// Load the GGUF (weights re-quantized to int8, tokenizer rebuilt from its metadata).
    pub fn load(gguf_path: &Path) -> Result<Self, EmbeddedError> {
        let started = Instant::now();
        let file = std::fs::File::open(gguf_path).map_err(|e| EmbeddedError::io(gguf_path, e))?;
        let mut reader = BufReader::new(file);
        let ct =
            Content::read(&mut reader).map_err(|e| EmbeddedError::invalid_model(gguf_path, e))?;
        let vocab = GgufVocab::from_gguf(&ct, gguf_path)?;
        let weights = LlamaWeights::from_gguf(&ct, &mut reader, gguf_path)?;
        if vocab.token_bytes.len() != weights.cfg.vocab {
            return Err(EmbeddedError::invalid_model(
                gguf_path,
                "tokenizer and model vocabulary sizes differ",
            ));
        }
        let newline = vocab.encode_plain("\n")?;
        tracing::info!(
            path = %gguf_path.display(),
            load_ms = started.elapsed().as_millis() as u64,
            context_length = weights.cfg.context_length,
            "embedded chat model loaded"
        );
        let context_limit = weights.cfg.context_length;
        Ok(Self {
            weights: Arc::new(weights),
            vocab: Arc::new(vocab),
            newline,
            slots: Vec::new(),
            last_reused_tokens: 0,
            context_limit,
        })
    }

    /// A second instance sharing this one's weights and tokenizer, with an empty prefix cache
    /// (cheap; use one per worker thread).
    pub fn fork(&self) -> Self {
        Self {
            weights: Arc::clone(&self.weights),
            vocab: Arc::clone(&self.vocab),
            newline: self.newline.clone(),
            slots: Vec::new(),
            last_reused_tokens: 0,
            context_limit: self.context_limit,
        }
    }

    /// `"smollm2-135m-instruct"`.
    pub fn model_name(&self) -> &str {
        "smollm2-135m-instruct"
    }

    /// Context window in tokens (prompt + answer): the GGUF's 8192 unless lowered with
    /// [`EmbeddedChat::set_context_limit`].
    pub fn context_length(&self) -> usize {
        self.context_limit
    }

    /// Use at most `tokens` of context (clamped to 64..=model maximum), e.g. to bound the prefill
    /// time of one request (prefill runs at roughly 250 tokens/s on one core with AVX512-VNNI,
    /// slower with AVX2 only and for long prompts).
    pub fn set_context_limit(&mut self, tokens: usize) {
        self.context_limit = tokens.clamp(64, self.weights.cfg.context_length);
    }

    /// Token ids of `text`; special-token strings such as `<|im_start|>` are recognised.
    pub fn tokenize(&self, text: &str) -> Result<Vec<u32>, EmbeddedError> {
        self.vocab.encode(text)
    }

    /// Text of `ids`, special tokens included.
    pub fn detokenize(&self, ids: &[u32]) -> Result<String, EmbeddedError> {
        self.vocab.decode(ids, false)
    }

    /// Prompt tokens the last [`EmbeddedChat::complete`] reused from the prefix cache.
    pub fn last_reused_tokens(&self) -> usize {
        self.last_reused_tokens
    }

    /// Drop every cached KV snapshot.
    pub fn clear_cache(&mut self) {
        self.slots.clear();
    }

    /// Complete a conversation greedily (repeat penalty 1.1 over the last 64 answer tokens).
    ///
    /// The ChatML prompt is `<|im_start|>{role}\n{content}<|im_end|>\n` per message, then
    /// `<|im_start|>assistant\n`; the GGUF template's default system message is prepended when
    /// the first message is not a system message. Plain generation stops at `<|im_end|>` (or any
    /// control token), `max_tokens`, or the end of the context.
    ///
    /// With `json_schema`, the output is built by constrained decoding (see `schema.rs`): always
    /// a JSON object satisfying the schema; free-string fields share the token budget left by
    /// `max_tokens` after the skeleton. Every enum field also gets its options' probabilities
    /// (`choice_probs`, softmax over the scores that chose the option).
    ///
    /// If the prompt plus the reserved answer space (`max_tokens`, at most half the context)
    /// does not fit, the middle of the longest user message is cut out (marked `[...]`),
    /// repeatedly if needed, and `truncated` is set; if no user text is left to cut,
    /// [`EmbeddedError::ContextOverflow`] is returned.
    pub fn complete(
        &mut self,
        req: &EmbeddedRequest<'_>,
    ) -> Result<EmbeddedCompletion, EmbeddedError> {
        let started = Instant::now();
        let fields = req.json_schema.map(schema::parse).transpose()?;
        if req.messages.is_empty() {
            return Err(EmbeddedError::InvalidRequest("no messages".into()));
        }
        let weights = Arc::clone(&self.weights);
        let vocab = Arc::clone(&self.vocab);
        let ctx = self.context_limit;

        let opening = match &fields {
            Some(f) => vocab.encode_plain(&schema::opening(f))?,
            None => Vec::new(),
        };
        let skeleton = match &fields {
            Some(f) => schema::skeleton_tokens(&vocab, f)?,
            None => 0,
        };
        let reserve = req.max_tokens.max(skeleton).min(ctx / 2);
        let (prompt, truncated) = self.render_prompt(req.messages, ctx - reserve)?;
        let prompt_len = prompt.len();
        let mut all = prompt;
        all.extend_from_slice(&opening);

        let (mut st, reused) = self.take_state(&all);
        self.last_reused_tokens = reused.min(prompt_len);
        let prefill_started = Instant::now();
        let logits = weights.forward(&mut st, &all[reused..], Logits::Last)?;
        let prefill = prefill_started.elapsed();
        let mut s = Session {
            weights: &weights,
            vocab: &vocab,
            st,
            logits,
            pending: Vec::new(),
            answer_tokens: opening.len(),
            ctx,
        };

        let (text, choice_probs) = match &fields {
            Some(f) => schema::generate(&mut s, f, req.max_tokens)?,
            None => {
                let mut out: Vec<u32> = Vec::new();
                while out.len() < req.max_tokens && s.room() > 0 {
                    s.advance()?;
                    let window = &out[out.len().saturating_sub(REPEAT_LAST_N)..];
                    let Some(next) = s.pick(REPEAT_PENALTY, window, |_| true) else {
                        break;
                    };
                    if vocab.is_control[next as usize] {
                        break;
                    }
                    out.push(next);
                    s.push(next);
                }
                (vocab.decode(&out, true)?.trim().to_string(), Vec::new())
            }
        };
        let eval_tokens = s.answer_tokens;
        let st = s.st;
        self.put_back(st);
        tracing::debug!(
            prompt_tokens = prompt_len,
            reused_tokens = self.last_reused_tokens,
            eval_tokens,
            prefill_ms = prefill.as_millis() as u64,
            total_ms = started.elapsed().as_millis() as u64,
            truncated,
            "embedded completion"
        );
        Ok(EmbeddedCompletion {
            text,
            prompt_tokens: u32::try_from(prompt_len).unwrap_or(u32::MAX),
            eval_tokens: u32::try_from(eval_tokens).unwrap_or(u32::MAX),
            truncated,
            choice_probs,
        })
    }

    /// Tokens of one ChatML message (message text can not inject special tokens).
    fn encode_message(&self, role: Role, content: &str) -> Result<Vec<u32>, EmbeddedError> {
        let role = match role {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
        };
        let mut ids = vec![self.vocab.bos_id];
        ids.extend(self.vocab.encode_plain(&format!("{role}\n{content}"))?);
        ids.push(self.vocab.eos_id);
        ids.extend_from_slice(&self.newline);
        Ok(ids)
    }

    /// ChatML prompt ids, shortened to at most `limit` tokens; `true` if anything was cut.
    fn render_prompt(
        &self,
        messages: &[ChatMessage],
        limit: usize,
    ) -> Result<(Vec<u32>, bool), EmbeddedError> {
        let mut msgs: Vec<(Role, String)> = messages
            .iter()
            .map(|m| (m.role, m.content.clone()))
            .collect();
        if msgs.first().is_none_or(|(r, _)| *r != Role::System) {
            msgs.insert(0, (Role::System, DEFAULT_SYSTEM.to_string()));
        }
        let mut header = vec![self.vocab.bos_id];
        header.extend(self.vocab.encode_plain("assistant\n")?);
        let mut encoded: Vec<Vec<u32>> = msgs
            .iter()
            .map(|(r, c)| self.encode_message(*r, c))
            .collect::<Result<_, _>>()?;
        let mut truncated = false;
        let mut attempt = 0;
        loop {
            let total = encoded.iter().map(Vec::len).sum::<usize>() + header.len();
            if total <= limit {
                let mut ids: Vec<u32> = encoded.into_iter().flatten().collect();
                ids.extend(header);
                return Ok((ids, truncated));
            }
            let excess = total - limit;
            let longest = msgs
                .iter()
                .enumerate()
                .filter(|(_, (r, c))| *r == Role::User && !c.is_empty())
                .max_by_key(|(i, _)| encoded[*i].len())
                .map(|(i, _)| i);
            let Some(i) = longest.filter(|_| attempt < 64) else {
                return Err(EmbeddedError::ContextOverflow {
                    needed: total,
                    context_length: self.context_length(),
                });
            };
            let content = &msgs[i].1;
            let chars: Vec<char> = content.chars().collect();
            let tokens = encoded[i].len().max(1);
            let remove = ((excess + 8) * chars.len()).div_ceil(tokens) + 1;
            let new = if remove + CUT_MARKER.len() >= chars.len() {
                String::new()
            } else {
                let keep = chars.len() - remove;
                let head: String = chars[..keep / 2].iter().collect();
                let tail: String = chars[chars.len() - (keep - keep / 2)..].iter().collect();
                format!("{head}{CUT_MARKER}{tail}")
            };
            tracing::warn!(
                message = i,
                removed_chars = chars.len() - new.chars().count(),
                "embedded prompt clamped to context"
            );
            msgs[i].1 = new;
            encoded[i] = self.encode_message(msgs[i].0, &msgs[i].1)?;
            truncated = true;
            attempt += 1;
        }
    }

    /// KV state to continue `tokens` from, and how many leading tokens it already holds
    /// (always fewer than `tokens.len()`, so the last token is fed to get logits).
    ///
    /// The slot with the longest common prefix is reused in place when that prefix covers its
    /// first message (the system prompt); otherwise the shared part is copied into a new state so
    /// snapshots for other system prompts survive.
    fn take_state(&mut self, tokens: &[u32]) -> (KvState, usize) {
        let best = self
            .slots
            .iter()
            .enumerate()
            .map(|(i, s)| (common_prefix(&s.tokens, tokens), i))
            .max();
        let limit = tokens.len().saturating_sub(1);
        match best {
            Some((lcp, i)) if lcp > 0 => {
                let keep = lcp.min(limit);
                if lcp >= first_message_len(&self.slots[i].tokens, self.vocab.eos_id) {
                    let mut st = self.slots.remove(i);
                    st.truncate(keep);
                    (st, keep)
                } else {
                    (self.slots[i].prefix(keep), keep)
                }
            }
            _ => (KvState::new(&self.weights.cfg), 0),
        }
    }

    /// Store a finished state as the most recent snapshot; evict the oldest beyond the limits.
    fn put_back(&mut self, st: KvState) {
        self.slots.push(st);
        while self.slots.len() > MAX_SLOTS
            || (self.slots.len() > 1
                && self.slots.iter().map(KvState::len).sum::<usize>() > MAX_CACHED_TOKENS)
        {
            self.slots.remove(0);
        }
    }
}

/// Length of the first ChatML message (through `<|im_end|>\n`), or of everything if unfinished.
fn first_message_len(tokens: &[u32], eos: u32) -> usize {
    tokens
        .iter()
        .position(|t| *t == eos)
        .map_or(tokens.len(), |p| (p + 2).min(tokens.len()))
}
