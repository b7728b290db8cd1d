//! Checks a model's structured output against the JSON schema it was asked for: it must parse
//! as JSON, have the right types, every required key, no extra keys when
//! `additionalProperties: false`, only legal `enum` values, and strings no shorter than
//! `minLength` (an empty explanation is a failure to repair, not an answer).
//! Does not implement all of JSON Schema (no `pattern`, `maxLength`, `$ref`, `oneOf`, …).

use serde_json::Value;

/// Parses `text` as JSON and checks it against `schema`; the error says what is wrong.
pub fn check_output(schema: &Value, text: &str) -> Result<Value, String> {
    let value: Value = serde_json::from_str(text.trim()).map_err(|e| {
        let shown: String = text.chars().take(120).collect();
        format!("the reply is not JSON ({e}): {shown:?}")
    })?;
    check(schema, &value, "$")?;
    Ok(value)
}

/// Checks `value` against `schema` at `path` (`$.field[0]`).
pub fn check(schema: &Value, value: &Value, path: &str) -> Result<(), String> {
    if let Some(allowed) = schema.get("enum").and_then(|e| e.as_array())
        && !allowed.contains(value)
    {
        return Err(format!(
            "{path} is {value}, which is not one of {}",
            Value::Array(allowed.clone())
        ));
    }
    if let Some(ty) = schema.get("type") {
        let types: Vec<&str> = match ty {
            Value::String(s) => vec![s.as_str()],
            Value::Array(a) => a.iter().filter_map(|t| t.as_str()).collect(),
            _ => vec![],
        };
        if !types.is_empty() && !types.iter().any(|t| has_type(value, t)) {
            return Err(format!(
                "{path} should be {} but is {}",
                types.join(" or "),
                type_name(value)
            ));
        }
    }
    if let (Value::String(s), Some(min)) = (value, schema.get("minLength").and_then(Value::as_u64))
        && (s.trim().chars().count() as u64) < min
    {
        return Err(format!("{path} is shorter than {min} character(s)"));
    }
    if let Value::Object(map) = value {
        let props = schema.get("properties").and_then(|p| p.as_object());
        if let Some(req) = schema.get("required").and_then(|r| r.as_array()) {
            for key in req.iter().filter_map(|k| k.as_str()) {
                if !map.contains_key(key) {
                    return Err(format!("{path} is missing the required key \"{key}\""));
                }
            }
        }
        let closed = schema.get("additionalProperties") == Some(&Value::Bool(false));
        for (k, v) in map {
            match props.and_then(|p| p.get(k)) {
                Some(sub) => check(sub, v, &format!("{path}.{k}"))?,
                None if closed => return Err(format!("{path} has an unexpected key \"{k}\"")),
                None => {}
            }
        }
    }
    if let (Value::Array(items), Some(sub)) = (value, schema.get("items")) {
        for (i, v) in items.iter().enumerate() {
            check(sub, v, &format!("{path}[{i}]"))?;
        }
    }
    Ok(())
}

fn has_type(v: &Value, t: &str) -> bool {
    match t {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "number" => v.is_number(),
        "integer" => v.is_i64() || v.is_u64(),
        "boolean" => v.is_boolean(),
        "null" => v.is_null(),
        _ => true,
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({"type": "object", "properties": {
            "status": {"type": "string", "enum": ["Yes", "No"]},
            "confidence": {"type": "number"}},
            "required": ["status"], "additionalProperties": false})
    }

    #[test]
    fn valid_output_passes() {
        assert!(check_output(&schema(), r#" {"status":"Yes","confidence":0.5} "#).is_ok());
    }

    #[test]
    fn each_violation_is_named() {
        let e = |t: &str| check_output(&schema(), t).unwrap_err();
        assert!(e("Sure! {\"status\":\"Yes\"}").contains("not JSON"));
        assert!(e(r#"{"status":"Maybe"}"#).contains("not one of"));
        assert!(e(r#"{"confidence":1}"#).contains("missing the required key \"status\""));
        assert!(e(r#"{"status":"No","extra":1}"#).contains("unexpected key"));
        assert!(e(r#"{"status":"No","confidence":"high"}"#).contains("should be number"));
        assert!(e(r#"["Yes"]"#).contains("should be object"));
        let text =
            json!({"type": "object", "properties": {"why": {"type": "string", "minLength": 1}}});
        assert!(
            check_output(&text, r#"{"why":"  "}"#)
                .unwrap_err()
                .contains("$.why is shorter than 1")
        );
        assert!(check_output(&text, r#"{"why":"ok"}"#).is_ok());
    }
}
