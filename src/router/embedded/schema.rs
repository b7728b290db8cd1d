//! JSON-schema subset and constrained decoding: the skeleton is forced, enums are scored, free strings and numbers are generated.
//!
//! Supported schema: `{"type":"object","properties":{...},"required":[...]}` where every property
//! is `{"type":"string"}` (optional `maxLength`, `minLength` 0 or 1), a string `enum` / `const`,
//! or `{"type":"number"}` / `{"type":"integer"}`; `title`, `description`, `$schema`, `$id`,
//! `$comment` and a boolean `additionalProperties` are accepted and ignored. Anything else is
//! rejected with [`EmbeddedError::UnsupportedSchema`] because the output could not be guaranteed.
//!
//! Every property is emitted, in the order of `required` followed by the remaining properties in
//! name order (serde_json maps are sorted, so `required` is the only ordered list available).
//! The output is `{"a": "x", "b": 1}`; the model is fed exactly that text, so later fields are
//! conditioned on the earlier ones.
//!
//! Enum rule: each option is written as JSON string content followed by the text that comes after
//! it (closing quote and the next key, or `"}`), tokenized as the model would see it, and scored by
//! the mean log-probability of its tokens up to and including the token that contains the closing
//! quote (softmax over the whole vocabulary, no penalties). The highest mean wins; ties go to the
//! option listed first. All options branch from the same KV state (truncated back after each).
//! The field's option probabilities are the softmax over those same scores (a single option:
//! probability 1), so the chosen option always has the highest probability. Being built from
//! mean (length-normalised) log-probabilities, they are a confidence signal that agrees with the
//! choice, not the exact probability of each option's whole token sequence.

use serde_json::Value;

use super::EmbeddedError;
use super::chat::Session;
use super::gguf_tokenizer::GgufVocab;
use crate::router::types::ChoiceProbs;

/// Tokens at most for a number value.
const MAX_NUMBER_TOKENS: usize = 12;
/// Significant digits at most in a number value.
const MAX_NUMBER_DIGITS: usize = 15;
/// A free string cannot end before this many tokens (if the budget allows): left alone, the
/// 135M model often closes an explanation right after one word ("Yes").
const MIN_TEXT_TOKENS: usize = 4;
/// Repeat penalty for free strings (same as plain generation).
const REPEAT_PENALTY: f32 = 1.1;
const REPEAT_LAST_N: usize = 64;

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum FieldKind {
    Enum(Vec<String>),
    Text {
        max_chars: Option<usize>,
        non_empty: bool,
    },
    Number {
        integer: bool,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Field {
    pub name: String,
    pub kind: FieldKind,
}

fn unsupported(msg: impl Into<String>) -> EmbeddedError {
    EmbeddedError::UnsupportedSchema(msg.into())
}

/// Parse and check a schema; see the module docs for the subset.
pub(crate) fn parse(schema: &Value) -> Result<Vec<Field>, EmbeddedError> {
    let obj = schema
        .as_object()
        .ok_or_else(|| unsupported("the schema must be a JSON object"))?;
    for (key, value) in obj {
        match key.as_str() {
            "type" if value == "object" => {}
            "type" => {
                return Err(unsupported(format!(
                    "top-level type must be \"object\", got {value}"
                )));
            }
            "properties" | "required" | "title" | "description" | "$schema" | "$id"
            | "$comment" => {}
            "additionalProperties" if value.is_boolean() => {}
            other => {
                return Err(unsupported(format!(
                    "top-level keyword `{other}` is not supported"
                )));
            }
        }
    }
    if obj.get("type").is_none() {
        return Err(unsupported("top-level \"type\": \"object\" is required"));
    }
    let props = match obj.get("properties") {
        Some(p) => p
            .as_object()
            .ok_or_else(|| unsupported("`properties` must be an object"))?,
        None => return Err(unsupported("`properties` is required")),
    };
    let mut order: Vec<&str> = Vec::new();
    if let Some(req) = obj.get("required") {
        let req = req
            .as_array()
            .ok_or_else(|| unsupported("`required` must be an array"))?;
        for r in req {
            let name = r
                .as_str()
                .ok_or_else(|| unsupported("`required` entries must be strings"))?;
            if !props.contains_key(name) {
                return Err(unsupported(format!(
                    "required property `{name}` is not in `properties`"
                )));
            }
            if !order.contains(&name) {
                order.push(name);
            }
        }
    }
    for name in props.keys() {
        if !order.contains(&name.as_str()) {
            order.push(name);
        }
    }
    order
        .into_iter()
        .map(|name| {
            let kind = parse_property(name, &props[name])?;
            Ok(Field {
                name: name.to_string(),
                kind,
            })
        })
        .collect()
}

fn parse_property(name: &str, p: &Value) -> Result<FieldKind, EmbeddedError> {
    let obj = p
        .as_object()
        .ok_or_else(|| unsupported(format!("property `{name}` must be a schema object")))?;
    let ty = match obj.get("type") {
        None => None,
        Some(Value::String(t)) => Some(t.as_str()),
        Some(other) => {
            return Err(unsupported(format!(
                "property `{name}`: type {other} is not supported"
            )));
        }
    };
    for key in obj.keys() {
        let ok = match key.as_str() {
            "type" | "title" | "description" => true,
            "enum" | "const" | "maxLength" | "minLength" => ty.is_none() || ty == Some("string"),
            _ => false,
        };
        if !ok {
            return Err(unsupported(format!(
                "property `{name}`: keyword `{key}` is not supported here"
            )));
        }
    }
    let max_chars = match obj.get("maxLength") {
        None => None,
        Some(v) => Some(
            v.as_u64()
                .map(|n| usize::try_from(n).unwrap_or(usize::MAX))
                .ok_or_else(|| {
                    unsupported(format!(
                        "property `{name}`: maxLength must be a non-negative integer"
                    ))
                })?,
        ),
    };
    let min_chars = match obj.get("minLength") {
        None => 0,
        Some(v) => match v.as_u64() {
            Some(n @ 0..=1) => n as usize,
            _ => {
                return Err(unsupported(format!(
                    "property `{name}`: only minLength 0 or 1 is supported"
                )));
            }
        },
    };
    if let (Some(max), 1) = (max_chars, min_chars)
        && max == 0
    {
        return Err(unsupported(format!(
            "property `{name}`: minLength exceeds maxLength"
        )));
    }
    let options = match (obj.get("enum"), obj.get("const")) {
        (Some(_), Some(_)) => {
            return Err(unsupported(format!(
                "property `{name}`: both enum and const"
            )));
        }
        (Some(Value::Array(values)), None) => Some(values.clone()),
        (Some(_), None) => {
            return Err(unsupported(format!(
                "property `{name}`: enum must be an array"
            )));
        }
        (None, Some(c)) => Some(vec![c.clone()]),
        (None, None) => None,
    };
    if let Some(values) = options {
        if values.is_empty() {
            return Err(unsupported(format!("property `{name}`: enum is empty")));
        }
        let mut out = Vec::with_capacity(values.len());
        for v in values {
            let s = v.as_str().ok_or_else(|| {
                unsupported(format!(
                    "property `{name}`: only string enum values are supported, got {v}"
                ))
            })?;
            let len = s.chars().count();
            if max_chars.is_some_and(|m| len > m) || len < min_chars {
                return Err(unsupported(format!(
                    "property `{name}`: enum value {v} violates min/maxLength"
                )));
            }
            out.push(s.to_string());
        }
        return Ok(FieldKind::Enum(out));
    }
    match ty {
        Some("string") => Ok(FieldKind::Text {
            max_chars,
            non_empty: min_chars > 0,
        }),
        Some("number") => Ok(FieldKind::Number { integer: false }),
        Some("integer") => Ok(FieldKind::Number { integer: true }),
        Some(other) => Err(unsupported(format!(
            "property `{name}`: type \"{other}\" is not supported"
        ))),
        None => Err(unsupported(format!(
            "property `{name}`: needs a type or an enum"
        ))),
    }
}

/// JSON string literal content (escaped, without the surrounding quotes).
fn json_body(s: &str) -> String {
    let quoted = Value::String(s.to_string()).to_string();
    quoted[1..quoted.len() - 1].to_string()
}

fn is_string(kind: &FieldKind) -> bool {
    !matches!(kind, FieldKind::Number { .. })
}

/// Forced text before value `i`: closing quote of the previous value, separator, key, opening quote.
fn text_before(fields: &[Field], i: usize) -> String {
    let mut s = String::new();
    if i == 0 {
        s.push('{');
    } else {
        if is_string(&fields[i - 1].kind) {
            s.push('"');
        }
        s.push_str(", ");
    }
    s.push_str(&Value::String(fields[i].name.clone()).to_string());
    s.push_str(": ");
    if is_string(&fields[i].kind) {
        s.push('"');
    }
    s
}

/// Forced text after value `i` up to the next value (or the end of the object).
fn text_after(fields: &[Field], i: usize) -> String {
    if i + 1 < fields.len() {
        text_before(fields, i + 1)
    } else if is_string(&fields[i].kind) {
        "\"}".to_string()
    } else {
        "}".to_string()
    }
}

/// Text to force right after the assistant header (`{` and the first key, or `{}`).
pub(crate) fn opening(fields: &[Field]) -> String {
    if fields.is_empty() {
        "{}".to_string()
    } else {
        text_before(fields, 0)
    }
}

/// Upper estimate of the forced (non-free-text) tokens from value `from` on, for budgeting.
fn forced_estimate(
    vocab: &GgufVocab,
    fields: &[Field],
    from: usize,
) -> Result<usize, EmbeddedError> {
    let mut n = 0;
    for (i, f) in fields.iter().enumerate().skip(from) {
        n += vocab.encode_plain(&text_after(fields, i))?.len();
        n += match &f.kind {
            FieldKind::Enum(opts) => {
                let mut m = 0;
                for o in opts {
                    m = m.max(vocab.encode_plain(&json_body(o))?.len());
                }
                m
            }
            FieldKind::Number { .. } => MAX_NUMBER_TOKENS,
            FieldKind::Text { .. } => 0,
        };
    }
    Ok(n)
}

/// Tokens the skeleton and enum values need (prompt clamping reserves at least this).
pub(crate) fn skeleton_tokens(vocab: &GgufVocab, fields: &[Field]) -> Result<usize, EmbeddedError> {
    Ok(vocab.encode_plain(&opening(fields))?.len() + forced_estimate(vocab, fields, 0)?)
}

/// Generate all values; the session must have been fed [`opening`] already.
/// Returns the JSON text and, per enum field, its options' probabilities.
pub(crate) fn generate(
    s: &mut Session<'_>,
    fields: &[Field],
    max_tokens: usize,
) -> Result<(String, Vec<ChoiceProbs>), EmbeddedError> {
    let mut values: Vec<Value> = Vec::with_capacity(fields.len());
    let mut probs: Vec<ChoiceProbs> = Vec::new();
    for (i, field) in fields.iter().enumerate() {
        let after = text_after(fields, i);
        let value = match &field.kind {
            FieldKind::Enum(options) => {
                let (chosen, options) = choose_enum(s, options, &after)?;
                probs.push(ChoiceProbs {
                    field: field.name.clone(),
                    options,
                });
                Value::String(chosen)
            }
            FieldKind::Number { integer } => {
                let text = gen_number(s, *integer)?;
                s.force_text(&after)?;
                Value::Number(text)
            }
            FieldKind::Text {
                max_chars,
                non_empty,
            } => {
                let later = forced_estimate(s.vocab, fields, i + 1)?;
                let texts_left = fields[i..]
                    .iter()
                    .filter(|f| matches!(f.kind, FieldKind::Text { .. }))
                    .count();
                let budget = max_tokens.saturating_sub(s.answer_tokens + later) / texts_left.max(1);
                let budget = budget.min(s.room().saturating_sub(later + after.len()));
                let (text, tail) = gen_text(s, budget, *max_chars)?;
                let mut forced = tail;
                forced.push_str(&after);
                s.force_text(&forced)?;
                let text = if *non_empty && text.is_empty() {
                    "-".to_string()
                } else {
                    text
                };
                Value::String(text)
            }
        };
        values.push(value);
    }
    let mut out = String::from("{");
    for (i, (f, v)) in fields.iter().zip(&values).enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str(&Value::String(f.name.clone()).to_string());
        out.push_str(": ");
        out.push_str(&v.to_string());
    }
    out.push('}');
    Ok((out, probs))
}

/// Score every option (see module docs), force the winner plus the following skeleton text.
/// Returns the winner and every option with its probability (softmax over the scores).
fn choose_enum(
    s: &mut Session<'_>,
    options: &[String],
    after: &str,
) -> Result<(String, Vec<(String, f32)>), EmbeddedError> {
    let mut scores: Vec<f32> = Vec::with_capacity(options.len());
    let mut tokens: Vec<Vec<u32>> = Vec::with_capacity(options.len());
    for option in options {
        let body = json_body(option);
        let ids = s.vocab.encode_plain(&format!("{body}{after}"))?;
        // Tokens up to and including the one holding the closing quote (first byte after `body`).
        let mut bytes = 0;
        let mut k = ids.len().saturating_sub(1);
        for (j, id) in ids.iter().enumerate() {
            bytes += s.vocab.byte_len(*id);
            if bytes > body.len() {
                k = j;
                break;
            }
        }
        let score = if options.len() == 1 {
            0.0
        } else {
            s.score(&ids[..=k])?
        };
        scores.push(score);
        tokens.push(ids);
    }
    let best = best_index(&scores)
        .ok_or_else(|| EmbeddedError::Inference("enum without options".into()))?;
    s.force(&tokens[best]);
    let probs = softmax(&scores);
    Ok((
        options[best].clone(),
        options.iter().cloned().zip(probs).collect(),
    ))
}

/// Index of the highest score; ties go to the first. `None` when empty.
fn best_index(scores: &[f32]) -> Option<usize> {
    let mut best: Option<usize> = None;
    for (i, &sc) in scores.iter().enumerate() {
        if best.is_none_or(|b| sc > scores[b]) {
            best = Some(i);
        }
    }
    best
}

/// Softmax of `scores` (probabilities summing to 1; non-finite scores get 0, and if none is
/// finite every option gets the same share).
fn softmax(scores: &[f32]) -> Vec<f32> {
    let max = scores
        .iter()
        .copied()
        .filter(|x| x.is_finite())
        .fold(f32::NEG_INFINITY, f32::max);
    if !max.is_finite() {
        return vec![1.0 / scores.len().max(1) as f32; scores.len()];
    }
    let exp: Vec<f32> = scores
        .iter()
        .map(|&x| if x.is_finite() { (x - max).exp() } else { 0.0 })
        .collect();
    let sum: f32 = exp.iter().sum();
    exp.into_iter().map(|e| e / sum).collect()
}

/// Greedy free string. Returns (content, text of the stop token before its quote, to be forced).
fn gen_text(
    s: &mut Session<'_>,
    budget: usize,
    max_chars: Option<usize>,
) -> Result<(String, String), EmbeddedError> {
    let mut bytes: Vec<u8> = Vec::new();
    let mut generated: Vec<u32> = Vec::new();
    let mut tail = String::new();
    let limit = max_chars.unwrap_or(usize::MAX);
    while generated.len() < budget && limit > 0 && s.room() > 0 {
        s.advance()?;
        let may_stop = generated.len() >= MIN_TEXT_TOKENS;
        let window = &generated[generated.len().saturating_sub(REPEAT_LAST_N)..];
        let next = s.pick(REPEAT_PENALTY, window, |id| {
            may_stop || !s.vocab.stops_string[id as usize]
        });
        let Some(next) = next else { break };
        if s.vocab.is_control[next as usize] {
            break;
        }
        let tb = &s.vocab.token_bytes[next as usize];
        if let Some(pos) = tb.iter().position(|b| matches!(b, b'"' | b'\n' | b'\r')) {
            bytes.extend_from_slice(&tb[..pos]);
            tail = String::from_utf8_lossy(&tb[..pos]).into_owned();
            break;
        }
        bytes.extend_from_slice(tb);
        generated.push(next);
        s.push(next);
        if max_chars.is_some() && String::from_utf8_lossy(&bytes).chars().count() >= limit {
            break;
        }
    }
    Ok((clean_text(&bytes, max_chars), tail))
}

/// Model bytes → string value: complete UTF-8 only, JSON escapes interpreted when valid,
/// control characters replaced, trimmed, cut to `max_chars`.
fn clean_text(bytes: &[u8], max_chars: Option<usize>) -> String {
    let valid = match std::str::from_utf8(bytes) {
        Ok(s) => s.to_string(),
        Err(e) if e.error_len().is_none() => {
            String::from_utf8_lossy(&bytes[..e.valid_up_to()]).into_owned()
        }
        Err(_) => String::from_utf8_lossy(bytes).into_owned(),
    };
    let mut text = if valid.contains('\\') {
        serde_json::from_str::<String>(&format!("\"{valid}\""))
            .unwrap_or_else(|_| valid.trim_end_matches('\\').to_string())
    } else {
        valid
    };
    text = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let mut text = text.trim().to_string();
    if let Some(max) = max_chars
        && text.chars().count() > max
    {
        text = text
            .chars()
            .take(max)
            .collect::<String>()
            .trim_end()
            .to_string();
    }
    text
}

/// Greedy number restricted to JSON number syntax.
fn gen_number(s: &mut Session<'_>, integer: bool) -> Result<serde_json::Number, EmbeddedError> {
    let mut text = String::new();
    for _ in 0..MAX_NUMBER_TOKENS {
        if s.room() == 0 {
            break;
        }
        s.advance()?;
        let extend = |id: u32| extend_number(&text, &s.vocab.token_bytes[id as usize], integer);
        let Some(best) = s.pick(1.0, &[], |_| true) else {
            break;
        };
        let next = match extend(best) {
            Some(t) => Some((best, t)),
            None if !text.bytes().any(|b| b.is_ascii_digit()) => s
                .pick(1.0, &[], |id| extend(id).is_some())
                .and_then(|id| extend(id).map(|t| (id, t))),
            None => None,
        };
        let Some((id, t)) = next else { break };
        text = t;
        s.push(id);
    }
    let text = text.trim_end_matches('.');
    let text = if text.bytes().any(|b| b.is_ascii_digit()) {
        text
    } else {
        "0"
    };
    Ok(serde_json::from_str::<serde_json::Number>(text)
        .unwrap_or_else(|_| serde_json::Number::from(0)))
}

/// `text` extended by `bytes` if the result is still a prefix of a JSON number.
fn extend_number(text: &str, bytes: &[u8], integer: bool) -> Option<String> {
    if bytes.is_empty() {
        return None;
    }
    let mut t = text.to_string();
    for &b in bytes {
        let digits = t.bytes().filter(u8::is_ascii_digit).count();
        let ok = match b {
            b'-' => t.is_empty(),
            b'.' => !integer && !t.contains('.') && t.ends_with(|c: char| c.is_ascii_digit()),
            b'0'..=b'9' => digits < MAX_NUMBER_DIGITS && t.trim_start_matches('-') != "0",
            _ => false,
        };
        if !ok {
            return None;
        }
        t.push(char::from(b));
    }
    Some(t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn accepts_an_answer_schema_with_every_field_kind() {
        // What the answer pipeline asks for (pipeline/answer.rs pins its schema to this one):
        // a choice and a mark slot (enums), a text slot, a date and the cited source.
        let schema = json!({"type": "object", "properties": {
            "choice": {"type": "string", "enum": ["Yes", "No"]},
            "mark": {"type": "string", "enum": ["Yes", "No", "Not Applicable"]},
            "text": {"type": "string", "minLength": 1, "maxLength": 400},
            "date": {"type": "string", "maxLength": 10},
            "evidence": {"type": "string", "enum": ["[1]", "[2]", "[3]", "insufficient"]}},
            "required": ["choice", "mark", "text", "date", "evidence"],
            "additionalProperties": false});
        let fields = parse(&schema).expect("the embedded model can answer every field kind");
        assert_eq!(fields.len(), 5);
        assert_eq!(fields[4].name, "evidence");
        assert_eq!(
            fields[2].kind,
            FieldKind::Text {
                max_chars: Some(400),
                non_empty: true
            }
        );
    }

    #[test]
    fn parses_router_schema_in_required_order() {
        let schema = json!({"type":"object","properties":{
            "explanation":{"type":"string","maxLength":300},
            "choice":{"type":"string","enum":["Yes","No","N/A"]}},
            "required":["choice","explanation"]});
        let fields = parse(&schema).unwrap();
        assert_eq!(fields[0].name, "choice");
        assert_eq!(
            fields[0].kind,
            FieldKind::Enum(vec!["Yes".into(), "No".into(), "N/A".into()])
        );
        assert_eq!(
            fields[1].kind,
            FieldKind::Text {
                max_chars: Some(300),
                non_empty: false
            }
        );
    }

    #[test]
    fn rejects_outside_subset() {
        for bad in [
            json!({"type":"array","items":{"type":"string"}}),
            json!({"type":"object","properties":{"a":{"type":"object"}}}),
            json!({"type":"object","properties":{"a":{"type":"string","pattern":"x"}}}),
            json!({"type":"object","properties":{"a":{"enum":[1,2]}}}),
            json!({"type":"object","properties":{"a":{"type":["string","null"]}}}),
            json!({"type":"object","properties":{"a":{"type":"string"}},"required":["b"]}),
            json!({"type":"object","properties":{"a":{"type":"number","minimum":0}}}),
            json!({"type":"object","properties":{"a":{"type":"string"}},"oneOf":[]}),
        ] {
            assert!(
                matches!(parse(&bad), Err(EmbeddedError::UnsupportedSchema(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn skeleton_text() {
        let fields = parse(&json!({"type":"object","properties":{
            "a":{"type":"string"},"n":{"type":"number"}},"required":["a","n"]}))
        .unwrap();
        assert_eq!(opening(&fields), "{\"a\": \"");
        assert_eq!(text_after(&fields, 0), "\", \"n\": ");
        assert_eq!(text_after(&fields, 1), "}");
    }

    #[test]
    fn number_prefixes() {
        assert_eq!(extend_number("", b"-", false).as_deref(), Some("-"));
        assert_eq!(extend_number("-", b"4", false).as_deref(), Some("-4"));
        assert_eq!(extend_number("4", b".", true), None);
        assert_eq!(extend_number("0", b"1", false), None);
        assert_eq!(extend_number("4", b" ", false), None);
    }

    #[test]
    fn option_probabilities_sum_to_one_and_favour_the_chosen_option() {
        for scores in [
            vec![-0.1f32, -2.3, -5.0],
            vec![-3.0, -0.5],
            vec![-1.0, -1.0, -4.0],
            vec![-40.0, -0.01, -90.0, f32::NEG_INFINITY],
            vec![0.0],
        ] {
            let probs = softmax(&scores);
            let sum: f32 = probs.iter().sum();
            assert!((sum - 1.0).abs() < 1e-5, "{scores:?} -> {probs:?}");
            let chosen = best_index(&scores).unwrap();
            assert!(
                probs.iter().all(|p| *p <= probs[chosen]),
                "{scores:?}: chosen {chosen}, probs {probs:?}"
            );
        }
        // A single option (scored 0 without running the model) is certain.
        assert_eq!(softmax(&[0.0]), vec![1.0]);
        // Ties go to the first option, as the choice does.
        assert_eq!(best_index(&[-1.0, -1.0]), Some(0));
        assert_eq!(softmax(&[f32::NEG_INFINITY; 2]), vec![0.5, 0.5]);
    }

    #[test]
    fn cleans_text() {
        assert_eq!(clean_text(b"  a\\nb ", None), "a b");
        assert_eq!(clean_text("caf\u{e9}".as_bytes(), Some(3)), "caf");
        assert_eq!(clean_text(&[b'a', 0xE2, 0x82], None), "a");
        assert_eq!(clean_text(b"trailing\\", None), "trailing");
    }
}
