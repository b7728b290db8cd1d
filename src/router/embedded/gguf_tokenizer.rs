//! Rebuilds SmolLM2's byte-level BPE tokenizer from GGUF metadata (candle's `TokenizerFromGguf` is wrong for `pre = smollm`).

use std::path::Path;

use candle_core::quantized::gguf_file::{Content, Value};
use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::{BPE, Vocab};
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::{AddedToken, Tokenizer};

use super::EmbeddedError;

/// GGUF token types (llama.cpp `llama_token_type`).
const TOKEN_TYPE_CONTROL: i64 = 3;
const TOKEN_TYPE_USER_DEFINED: i64 = 4;

/// Tokenizer plus per-token facts the decoder needs.
pub(crate) struct GgufVocab {
    /// Recognises special tokens such as `<|im_start|>` written in the text.
    pub tokenizer: Tokenizer,
    /// Treats special-token strings in the text as plain text (for untrusted message content).
    pub plain: Tokenizer,
    /// Raw bytes of every token (empty for control tokens).
    pub token_bytes: Vec<Vec<u8>>,
    /// Control tokens (`<|im_start|>`, `<|im_end|>`, `<|endoftext|>`, ...).
    pub is_control: Vec<bool>,
    /// Tokens that end a JSON string value: control tokens and any containing `"`, `\n` or `\r`.
    pub stops_string: Vec<bool>,
    pub bos_id: u32,
    pub eos_id: u32,
}

impl GgufVocab {
    pub fn from_gguf(ct: &Content, path: &Path) -> Result<Self, EmbeddedError> {
        let bad = |m: String| EmbeddedError::invalid_model(path, m);
        let get = |key: &str| {
            ct.metadata
                .get(key)
                .ok_or_else(|| bad(format!("missing metadata `{key}`")))
        };
        let model = get("tokenizer.ggml.model")?
            .to_string()
            .map_err(|e| bad(e.to_string()))?;
        if model != "gpt2" {
            return Err(bad(format!(
                "tokenizer model `{model}` is not supported (only gpt2 byte-level BPE)"
            )));
        }
        let pre = match ct.metadata.get("tokenizer.ggml.pre") {
            Some(v) => v.to_string().map_err(|e| bad(e.to_string()))?.clone(),
            None => "gpt2".to_string(),
        };
        let tokens = string_array(get("tokenizer.ggml.tokens")?).map_err(bad)?;
        let merges = string_array(get("tokenizer.ggml.merges")?).map_err(bad)?;
        let types: Vec<i64> = match ct.metadata.get("tokenizer.ggml.token_type") {
            Some(v) => int_array(v).map_err(bad)?,
            None => vec![1; tokens.len()],
        };
        if types.len() != tokens.len() {
            return Err(bad("token_type and tokens differ in length".into()));
        }
        let id = |key: &str, default: u32| -> Result<u32, EmbeddedError> {
            match ct.metadata.get(key) {
                Some(v) => v.to_u32().map_err(|e| bad(format!("`{key}`: {e}"))),
                None => Ok(default),
            }
        };
        let bos_id = id("tokenizer.ggml.bos_token_id", 1)?;
        let eos_id = id("tokenizer.ggml.eos_token_id", 2)?;

        let vocab: Vocab = tokens
            .iter()
            .enumerate()
            .map(|(i, t)| (t.clone(), i as u32))
            .collect();
        let merges = merges
            .iter()
            .map(|m| {
                m.split_once(' ')
                    .map(|(a, b)| (a.to_string(), b.to_string()))
                    .ok_or_else(|| bad(format!("invalid merge `{m}`")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let bpe = BPE::builder()
            .vocab_and_merges(vocab, merges)
            .build()
            .map_err(|e| bad(format!("cannot build BPE: {e}")))?;

        // HF SmolLM2 tokenizer.json: Sequence[Digits(individual), ByteLevel(add_prefix_space=false)].
        let pre_tokenizer: PreTokenizerWrapper = match pre.as_str() {
            "smollm" => Sequence::new(vec![
                Digits::new(true).into(),
                ByteLevel::new(false, true, true).into(),
            ])
            .into(),
            "gpt2" => ByteLevel::new(false, true, true).into(),
            other => {
                return Err(bad(format!(
                    "tokenizer pre-tokenizer `{other}` is not supported"
                )));
            }
        };
        let mut tokenizer = Tokenizer::new(bpe);
        tokenizer.with_pre_tokenizer(Some(pre_tokenizer));
        tokenizer.with_decoder(Some(ByteLevelDecoder::default()));
        let control: Vec<AddedToken> = tokens
            .iter()
            .zip(&types)
            .filter(|(_, t)| **t == TOKEN_TYPE_CONTROL)
            .map(|(s, _)| AddedToken::from(s.clone(), true))
            .collect();
        let user: Vec<AddedToken> = tokens
            .iter()
            .zip(&types)
            .filter(|(_, t)| **t == TOKEN_TYPE_USER_DEFINED)
            .map(|(s, _)| AddedToken::from(s.clone(), false))
            .collect();
        tokenizer
            .add_special_tokens(control)
            .and_then(|_| tokenizer.add_tokens(user))
            .map_err(|e| bad(format!("cannot add special tokens: {e}")))?;
        let mut plain = tokenizer.clone();
        plain.set_encode_special_tokens(true);

        let unicode_to_byte = unicode_to_byte_table();
        let token_bytes: Vec<Vec<u8>> = tokens
            .iter()
            .zip(&types)
            .map(|(s, t)| {
                if *t == TOKEN_TYPE_CONTROL {
                    return Vec::new();
                }
                let mut out = Vec::with_capacity(s.len());
                for c in s.chars() {
                    match unicode_to_byte.get(&c) {
                        Some(b) => out.push(*b),
                        None => out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
                    }
                }
                out
            })
            .collect();
        let is_control: Vec<bool> = types.iter().map(|t| *t == TOKEN_TYPE_CONTROL).collect();
        let stops_string = token_bytes
            .iter()
            .zip(&is_control)
            .map(|(b, c): (&Vec<u8>, &bool)| {
                *c || b.iter().any(|x| matches!(x, b'"' | b'\n' | b'\r'))
            })
            .collect();
        Ok(Self {
            tokenizer,
            plain,
            token_bytes,
            is_control,
            stops_string,
            bos_id,
            eos_id,
        })
    }

    /// Encode text, recognising special-token strings.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, EmbeddedError> {
        encode_with(&self.tokenizer, text)
    }

    /// Encode text, treating special-token strings as ordinary text.
    pub fn encode_plain(&self, text: &str) -> Result<Vec<u32>, EmbeddedError> {
        encode_with(&self.plain, text)
    }

    /// Decode ids back to text.
    pub fn decode(&self, ids: &[u32], skip_special: bool) -> Result<String, EmbeddedError> {
        self.tokenizer
            .decode(ids, skip_special)
            .map_err(|e| EmbeddedError::Tokenizer(e.to_string()))
    }

    /// Byte length of a token (0 for control tokens and unknown ids).
    pub fn byte_len(&self, id: u32) -> usize {
        self.token_bytes.get(id as usize).map_or(0, Vec::len)
    }
}

fn encode_with(tok: &Tokenizer, text: &str) -> Result<Vec<u32>, EmbeddedError> {
    tok.encode(text, false)
        .map(|e| e.get_ids().to_vec())
        .map_err(|e| EmbeddedError::Tokenizer(e.to_string()))
}

/// Load only the tokenizer of a GGUF file (the same one [`super::EmbeddedChat`] uses).
pub fn load_gguf_tokenizer(gguf_path: &Path) -> Result<Tokenizer, EmbeddedError> {
    let mut file = std::fs::File::open(gguf_path).map_err(|e| EmbeddedError::io(gguf_path, e))?;
    let ct = Content::read(&mut file).map_err(|e| EmbeddedError::invalid_model(gguf_path, e))?;
    Ok(GgufVocab::from_gguf(&ct, gguf_path)?.tokenizer)
}

fn string_array(v: &Value) -> Result<Vec<String>, String> {
    let arr = v.to_vec().map_err(|e| e.to_string())?;
    arr.iter()
        .map(|v| v.to_string().cloned().map_err(|e| e.to_string()))
        .collect()
}

fn int_array(v: &Value) -> Result<Vec<i64>, String> {
    let arr = v.to_vec().map_err(|e| e.to_string())?;
    arr.iter()
        .map(|v| match v {
            Value::I32(x) => Ok(i64::from(*x)),
            Value::U32(x) => Ok(i64::from(*x)),
            Value::I64(x) => Ok(*x),
            Value::U8(x) => Ok(i64::from(*x)),
            Value::I8(x) => Ok(i64::from(*x)),
            Value::U16(x) => Ok(i64::from(*x)),
            Value::I16(x) => Ok(i64::from(*x)),
            other => Err(format!("token type is not an integer: {other:?}")),
        })
        .collect()
}

/// Inverse of GPT-2's `bytes_to_unicode`: printable bytes map to themselves, the rest to U+0100...
fn unicode_to_byte_table() -> std::collections::HashMap<char, u8> {
    let mut map = std::collections::HashMap::with_capacity(256);
    let mut n = 0u32;
    for b in 0u8..=255 {
        let printable = (b'!'..=b'~').contains(&b) || (0xA1..=0xAC).contains(&b) || b >= 0xAE;
        let c = if printable {
            char::from(b)
        } else {
            n += 1;
            char::from_u32(255 + n).unwrap_or(char::REPLACEMENT_CHARACTER)
        };
        map.insert(c, b);
    }
    map
}
