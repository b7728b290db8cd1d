//! Token log-probabilities of a structured reply → the probability of each option of the
//! reply's enum fields (`ChatResponse::choice_probs`), for the wire formats that return them:
//! OpenAI-compatible `choices[0].logprobs.content[]` and Ollama `logprobs[]`, whose items are
//! both `{token, logprob, bytes?, top_logprobs: [{token, logprob, bytes?}]}`.
//!
//! The tokens' bytes are concatenated to rebuild the output with each token's position (so an
//! item a server reports outside the content, as llama.cpp does for its first chunk, only shifts
//! the text it is searched in). For every enum field, the token where the field's string value
//! starts (after `"field":`, optional whitespace and the opening quote; top-level keys only) is
//! looked up. Each of that position's top alternatives (and the token itself) that opens the value
//! the same way gives its probability to every option whose JSON text plus closing quote it is a
//! prefix of, or which is a prefix of it (`N` counts for `No` and `N/A`, `Yes"` for `Yes`,
//! `Nothing` for neither). When the token actually generated is such a prefix of several options
//! (`[` of `[1]` and `[2]`), its mass is split by the same rule one token further on (the only
//! position whose alternatives follow it), recursively. The masses are then normalised over the
//! options. A field none of whose options gets any mass is left out, and so is every field when
//! an item is malformed (positions would be wrong).
//!
//! Does not talk to servers and does not decide whether to ask for logprobs.

use super::types::ChoiceProbs;
use serde_json::Value;

/// Alternatives asked for at each token position (`top_logprobs`).
pub const TOP_LOGPROBS: u32 = 10;

/// One enum field of a JSON schema: its name and its options in schema order.
#[derive(Debug, Clone, PartialEq)]
pub struct EnumField {
    pub name: String,
    pub options: Vec<String>,
}

/// The schema's top-level properties whose `enum` lists only strings: the `required` ones in
/// that order, then the others by name (the order the embedded model writes them in).
pub fn enum_fields(schema: &Value) -> Vec<EnumField> {
    let Some(props) = schema.get("properties").and_then(|p| p.as_object()) else {
        return Vec::new();
    };
    let required = schema
        .get("required")
        .and_then(|r| r.as_array())
        .into_iter()
        .flatten()
        .filter_map(|n| n.as_str())
        .filter(|n| props.contains_key(*n));
    let mut order: Vec<&str> = Vec::new();
    for name in required.chain(props.keys().map(String::as_str)) {
        if !order.contains(&name) {
            order.push(name);
        }
    }
    order
        .into_iter()
        .filter_map(|name| {
            let values = props[name].get("enum")?.as_array()?;
            let options: Option<Vec<String>> = values
                .iter()
                .map(|v| v.as_str().map(str::to_string))
                .collect();
            options.filter(|o| !o.is_empty()).map(|options| EnumField {
                name: name.to_string(),
                options,
            })
        })
        .collect()
}

/// One generated token with the alternatives at its position.
#[derive(Debug, Clone)]
struct Token {
    bytes: Vec<u8>,
    logprob: f64,
    top: Vec<(Vec<u8>, f64)>,
}

/// Token log-probabilities of one reply, collected chunk by chunk.
#[derive(Debug, Default)]
pub struct TokenLogprobs {
    tokens: Vec<Token>,
    malformed: bool,
}

/// `bytes` when present and valid, else the UTF-8 of `token`; with the `logprob`.
fn token_of(item: &Value) -> Option<(Vec<u8>, f64)> {
    let logprob = item.get("logprob")?.as_f64()?;
    let bytes = match item.get("bytes").and_then(|b| b.as_array()) {
        Some(b) => b
            .iter()
            .map(|x| x.as_u64().and_then(|x| u8::try_from(x).ok()))
            .collect::<Option<Vec<u8>>>()?,
        None => item.get("token")?.as_str()?.as_bytes().to_vec(),
    };
    Some((bytes, logprob))
}

impl TokenLogprobs {
    /// Adds one chunk's items (`null` or absent adds nothing). A malformed item disables the
    /// whole reply's probabilities, since every later position would be wrong.
    pub fn extend(&mut self, items: Option<&Value>) {
        let Some(items) = items.filter(|v| !v.is_null()) else {
            return;
        };
        let Some(items) = items.as_array() else {
            self.malformed = true;
            return;
        };
        for item in items {
            let Some((bytes, logprob)) = token_of(item) else {
                self.malformed = true;
                return;
            };
            let top = item
                .get("top_logprobs")
                .and_then(|t| t.as_array())
                .map(|t| t.iter().filter_map(token_of).collect())
                .unwrap_or_default();
            self.tokens.push(Token {
                bytes,
                logprob,
                top,
            });
        }
    }

    /// Whether no token was collected.
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// Per enum field found in the reply, its options' probabilities (see the module docs).
    pub fn choice_probs(&self, fields: &[EnumField]) -> Vec<ChoiceProbs> {
        if self.malformed || self.tokens.is_empty() || fields.is_empty() {
            return Vec::new();
        }
        let mut text: Vec<u8> = Vec::new();
        let mut starts: Vec<usize> = Vec::with_capacity(self.tokens.len());
        for t in &self.tokens {
            starts.push(text.len());
            text.extend_from_slice(&t.bytes);
        }
        let values = string_values(&text);
        fields
            .iter()
            .filter_map(|f| {
                let (_, at) = values.iter().find(|(k, _)| *k == f.name)?;
                // The token holding the value's first byte (the last one starting at or before it).
                let i = starts.partition_point(|s| s <= at).checked_sub(1)?;
                if starts[i] + self.tokens[i].bytes.len() <= *at {
                    return None;
                }
                let options: Vec<Vec<u8>> = f
                    .options
                    .iter()
                    .map(|o| {
                        let mut quoted = Value::String(o.clone()).to_string().into_bytes();
                        quoted.remove(0); // content + closing quote
                        quoted
                    })
                    .collect();
                let mass = self.masses(i, at - starts[i], &[], &options, 0);
                let total: f64 = mass.iter().sum();
                (total > 0.0 && total.is_finite()).then(|| ChoiceProbs {
                    field: f.name.clone(),
                    options: f
                        .options
                        .iter()
                        .cloned()
                        .zip(mass.iter().map(|m| (m / total) as f32))
                        .collect(),
                })
            })
            .collect()
    }

    /// Probability mass of each option (content + closing quote) at token `i`, whose first
    /// `skip` bytes precede the value, `done` being the value bytes fixed by earlier tokens.
    fn masses(
        &self,
        i: usize,
        skip: usize,
        done: &[u8],
        options: &[Vec<u8>],
        depth: usize,
    ) -> Vec<f64> {
        let t = &self.tokens[i];
        let opened = &t.bytes[..skip];
        let mut candidates: Vec<(&[u8], f64, bool)> = t
            .top
            .iter()
            .map(|(b, lp)| (b.as_slice(), *lp, *b == t.bytes))
            .collect();
        if !candidates.iter().any(|c| c.2) {
            candidates.push((t.bytes.as_slice(), t.logprob, true));
        }
        let mut mass = vec![0f64; options.len()];
        for (bytes, logprob, generated) in candidates {
            let Some(rest) = bytes.strip_prefix(opened).filter(|r| !r.is_empty()) else {
                continue;
            };
            let value = [done, rest].concat();
            let hits: Vec<usize> = (0..options.len())
                .filter(|&k| options[k].starts_with(&value) || value.starts_with(&options[k]))
                .collect();
            let p = logprob.exp();
            if generated && hits.len() > 1 && depth < MAX_DEPTH && i + 1 < self.tokens.len() {
                let next = self.masses(i + 1, 0, &value, options, depth + 1);
                let total: f64 = hits.iter().map(|&k| next[k]).sum();
                if total > 0.0 {
                    for &k in &hits {
                        mass[k] += p * next[k] / total;
                    }
                    continue;
                }
            }
            for &k in &hits {
                mass[k] += p;
            }
        }
        mass
    }
}

/// Tokens followed at most past the one where a value starts, to split a shared prefix.
const MAX_DEPTH: usize = 8;

/// Top-level keys of the JSON object in `text` whose value is a string, with the byte offset of
/// the value's first content byte (just after its opening quote). Tolerates text around the
/// object and an unfinished tail.
fn string_values(text: &[u8]) -> Vec<(String, usize)> {
    let mut out = Vec::new();
    let mut depth = 0usize;
    let mut key_next = false;
    let mut i = 0;
    while i < text.len() {
        match text[i] {
            b'{' => {
                depth += 1;
                key_next = depth == 1;
            }
            b'[' => depth += 1,
            b'}' | b']' => depth = depth.saturating_sub(1),
            b',' => key_next = depth == 1,
            b'"' => {
                let end = string_end(text, i + 1);
                if key_next && depth == 1 && end < text.len() {
                    key_next = false;
                    let key = serde_json::from_slice::<String>(&text[i..=end]).ok();
                    let mut j = skip_ws(text, end + 1);
                    if text.get(j) == Some(&b':') {
                        j = skip_ws(text, j + 1);
                        if let (Some(&b'"'), Some(key)) = (text.get(j), key) {
                            out.push((key, j + 1));
                        }
                    }
                }
                i = end + 1;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    out
}

/// Index of the quote closing the string whose content starts at `from` (`text.len()` if none).
fn string_end(text: &[u8], from: usize) -> usize {
    let mut i = from;
    while i < text.len() {
        match text[i] {
            b'\\' => i += 2,
            b'"' => return i,
            _ => i += 1,
        }
    }
    text.len()
}

fn skip_ws(text: &[u8], mut i: usize) -> usize {
    while text.get(i).is_some_and(|b| b.is_ascii_whitespace()) {
        i += 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields() -> Vec<EnumField> {
        enum_fields(&json!({"type": "object", "properties": {
            "explanation": {"type": "string"},
            "status": {"type": "string", "enum": ["Yes", "No", "N/A"]},
            "evidence": {"enum": ["[1]", "[2]", "insufficient"]},
            "n": {"enum": [1, 2]}},
            "required": ["status", "explanation", "evidence"]}))
    }

    fn item(token: &str, logprob: f64, top: &[(&str, f64)]) -> Value {
        json!({"token": token, "logprob": logprob, "bytes": token.as_bytes(),
               "top_logprobs": top.iter().map(|(t, l)| json!({"token": t, "logprob": l})).collect::<Vec<_>>()})
    }

    #[test]
    fn enum_fields_in_required_order_with_string_options_only() {
        let f = fields();
        assert_eq!(
            f.iter().map(|f| f.name.as_str()).collect::<Vec<_>>(),
            ["status", "evidence"]
        );
        assert_eq!(f[0].options, ["Yes", "No", "N/A"]);
        assert!(enum_fields(&json!({"type": "string"})).is_empty());
    }

    #[test]
    fn option_mass_comes_from_the_token_where_the_value_starts() {
        let mut lp = TokenLogprobs::default();
        // {"status": "Yes", "explanation": "ok", "evidence": "[1]"} in uneven chunks; the
        // value of `status` starts inside the token ` "Yes`, that of `evidence` at `[`.
        lp.extend(Some(&json!([
            item("{\"", -0.01, &[]),
            item("status", -0.01, &[]),
            item("\":", -0.01, &[])
        ])));
        lp.extend(Some(&json!([
            item(
                " \"Yes",
                0.7f64.ln(),
                &[
                    (" \"Yes", 0.7f64.ln()),
                    (" \"No", 0.2f64.ln()),
                    (" \"N", 0.05f64.ln()),
                    (" \"Maybe", 0.04f64.ln()),
                    ("\n", 0.01f64.ln())
                ]
            ),
            item("\", \"explanation\": \"ok\", \"evidence\": \"", -0.01, &[]),
            item(
                "[",
                0.5f64.ln(),
                &[
                    ("[", 0.5f64.ln()),
                    ("ins", 0.3f64.ln()),
                    ("none", 0.2f64.ln())
                ]
            ),
            item("1]\"}", 0.9f64.ln(), &[("2", 0.1f64.ln())])
        ])));
        lp.extend(Some(&Value::Null));
        let probs = lp.choice_probs(&fields());
        assert_eq!(probs.len(), 2);
        let status = &probs[0];
        assert_eq!(status.field, "status");
        let total = 0.7 + 0.25 + 0.05;
        assert!((status.prob("Yes").unwrap() - (0.7 / total) as f32).abs() < 1e-5);
        assert!((status.prob("No").unwrap() - (0.25 / total) as f32).abs() < 1e-5);
        assert!((status.prob("N/A").unwrap() - (0.05 / total) as f32).abs() < 1e-5);
        let evidence = &probs[1];
        // The generated `[` opens both citations: its 0.5 is split 0.9 / 0.1 by the next
        // position; `none` matches nothing. 0.45 / 0.05 / 0.3 over 0.8.
        assert!((evidence.prob("[1]").unwrap() - 0.5625).abs() < 1e-5);
        assert!((evidence.prob("[2]").unwrap() - 0.0625).abs() < 1e-5);
        assert!((evidence.prob("insufficient").unwrap() - 0.375).abs() < 1e-5);
        let sum: f32 = evidence.options.iter().map(|(_, p)| p).sum();
        assert!((sum - 1.0).abs() < 1e-5);
    }

    #[test]
    fn value_starting_at_a_token_boundary_and_the_chosen_token_outside_the_top_list() {
        let mut lp = TokenLogprobs::default();
        lp.extend(Some(&json!([
            item("{\"status\": \"", -0.01, &[]),
            // Sampled at temperature > 0: not among its position's top alternatives.
            item("No", 0.1f64.ln(), &[("Yes", 0.6f64.ln())]),
            item("\"}", -0.01, &[])
        ])));
        let probs = lp.choice_probs(&fields());
        assert_eq!(probs.len(), 1);
        assert!((probs[0].prob("Yes").unwrap() - 0.6 / 0.7).abs() < 1e-5);
        assert!((probs[0].prob("No").unwrap() - 0.1 / 0.7).abs() < 1e-5);
    }

    #[test]
    fn an_alternative_shared_by_two_options_counts_for_both() {
        let mut lp = TokenLogprobs::default();
        lp.extend(Some(&json!([
            item("{\"status\": \"", -0.01, &[]),
            item(
                "Yes",
                0.6f64.ln(),
                &[("Yes", 0.6f64.ln()), ("N", 0.4f64.ln())]
            ),
            item("\"}", -0.01, &[])
        ])));
        let probs = lp.choice_probs(&fields());
        assert!((probs[0].prob("Yes").unwrap() - 0.6 / 1.4).abs() < 1e-5);
        assert!((probs[0].prob("No").unwrap() - 0.4 / 1.4).abs() < 1e-5);
        assert!((probs[0].prob("N/A").unwrap() - 0.4 / 1.4).abs() < 1e-5);
    }

    #[test]
    fn no_probabilities_without_a_match_or_with_malformed_items() {
        let mut lp = TokenLogprobs::default();
        lp.extend(Some(&json!([
            item("{\"status\": \"", -0.01, &[]),
            item("Maybe", -0.1, &[("Perhaps", -2.0)]),
            item("\"}", -0.01, &[])
        ])));
        assert!(lp.choice_probs(&fields()).is_empty());
        lp.extend(Some(&json!([{"token": "x"}])));
        assert!(lp.choice_probs(&fields()).is_empty());
    }

    #[test]
    fn only_top_level_keys_with_string_values_count() {
        let v = string_values(br#"pre {"a": {"status": "x"}, "s" : "v", "t": 1, "u":"w\"q"}"#);
        let keys: Vec<&str> = v.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["s", "u"]);
        let text = br#"pre {"a": {"status": "x"}, "s" : "v", "t": 1, "u":"w\"q"}"#;
        assert_eq!(text[v[0].1], b'v');
        assert_eq!(text[v[1].1], b'w');
    }
}
