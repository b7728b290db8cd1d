//! Validation of a parsed router config: values in range, providers and models that exist,
//! targets with the capabilities their task needs, one `num_ctx` per Ollama model and
//! embeddings that never fall back to another model. Each failure names its field and YAML
//! line. Does not parse YAML (that is serde, in the parent module) or attach the file name.

use super::{
    Capability, CooldownConfig, ProviderKind, RetryConfig, RouterConfig, Task, Timeouts,
    parse_target,
};
use std::collections::BTreeMap;

/// A validation failure before the file name is attached.
pub(super) struct Invalid {
    pub(super) line: u64,
    pub(super) field: String,
    pub(super) message: String,
}

fn invalid(line: u64, field: impl Into<String>, message: impl Into<String>) -> Invalid {
    Invalid {
        line,
        field: field.into(),
        message: message.into(),
    }
}

impl RouterConfig {
    /// Checks every rule above; the first failure comes back with its line and field.
    pub(super) fn validate(&self) -> Result<(), Invalid> {
        if let Some(v) = self.version
            && v != 1
        {
            return Err(invalid(0, "version", format!("unsupported version {v}")));
        }
        check_retry(&self.defaults.retry, 0, "defaults.retry")?;
        check_cooldown(&self.defaults.cooldown, 0, "defaults.cooldown")?;
        check_timeouts(&self.defaults.timeouts, 0, "defaults.timeouts")?;
        for (name, p) in &self.providers {
            let line = p.referenced.line();
            let field = |f: &str| format!("providers.{name}.{f}");
            let p = &p.value;
            if p.max_concurrency == 0 {
                return Err(invalid(
                    line,
                    field("max_concurrency"),
                    "must be at least 1",
                ));
            }
            if p.kind != ProviderKind::Embedded && p.base_url.is_none() && p.base_url_env.is_none()
            {
                return Err(invalid(
                    line,
                    field("base_url"),
                    format!("required for kind {:?}", p.kind),
                ));
            }
            if let Some(u) = &p.base_url
                && !(u.starts_with("http://") || u.starts_with("https://"))
            {
                return Err(invalid(
                    line,
                    field("base_url"),
                    format!("'{u}' must start with http:// or https://"),
                ));
            }
            if p.rpm == Some(0) || p.tpm == Some(0) {
                return Err(invalid(line, field("rpm"), "rpm/tpm must be at least 1"));
            }
            if let Some(m) = &p.max_tokens_param
                && m != "max_tokens"
                && m != "max_completion_tokens"
            {
                return Err(invalid(
                    line,
                    field("max_tokens_param"),
                    "must be max_tokens or max_completion_tokens",
                ));
            }
            check_timeouts(&p.timeouts, line, &field("timeouts"))?;
            if let Some(r) = &p.retry {
                check_retry(r, line, &field("retry"))?;
            }
            if let Some(c) = &p.cooldown {
                check_cooldown(c, line, &field("cooldown"))?;
            }
        }
        for (key, m) in &self.models {
            let line = m.referenced.line();
            let t = parse_target(key).map_err(|e| invalid(line, format!("models.{key}"), e))?;
            let Some(p) = self.providers.get(&t.provider) else {
                return Err(invalid(
                    line,
                    format!("models.{key}"),
                    format!("unknown provider '{}'", t.provider),
                ));
            };
            if m.value.num_ctx.is_some() && p.value.kind != ProviderKind::Ollama {
                return Err(invalid(
                    line,
                    format!("models.{key}.num_ctx"),
                    "num_ctx is only sent to Ollama providers; use context_window",
                ));
            }
            if m.value.num_ctx == Some(0) || m.value.context_window == Some(0) {
                return Err(invalid(
                    line,
                    format!("models.{key}"),
                    "num_ctx/context_window must be at least 1",
                ));
            }
        }
        self.check_num_ctx_aliases()?;
        for task in Task::REQUIRED {
            if !self.task_models.contains_key(&task) {
                return Err(invalid(
                    0,
                    format!("task_models.{}", task.as_str()),
                    "missing",
                ));
            }
        }
        for task in Task::ALL {
            if self.fallback_strategy.contains_key(&task) && !self.task_models.contains_key(&task) {
                let line = self.fallback_strategy[&task]
                    .first()
                    .map(|s| s.referenced.line())
                    .unwrap_or(0);
                return Err(invalid(
                    line,
                    format!("fallback_strategy.{}", task.as_str()),
                    "the task has no task_models entry",
                ));
            }
            for t in self.targets_spanned(task) {
                let line = t.referenced.line();
                let field = format!("task {}", task.as_str());
                let target = parse_target(&t.value).map_err(|e| invalid(line, &field, e))?;
                let Some(p) = self.providers.get(&target.provider) else {
                    return Err(invalid(
                        line,
                        field,
                        format!(
                            "target '{}' names unknown provider '{}' (known: {})",
                            t.value,
                            target.provider,
                            self.providers
                                .keys()
                                .cloned()
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    ));
                };
                let caps = self
                    .model(&target)
                    .map(|m| m.capabilities.clone())
                    .unwrap_or_default();
                if task == Task::Embed && !caps.is_empty() && !caps.contains(&Capability::Embed) {
                    return Err(invalid(
                        line,
                        field,
                        format!("'{}' is not declared as an embedding model", t.value),
                    ));
                }
                if task != Task::Embed && !caps.is_empty() && !caps.contains(&Capability::Chat) {
                    return Err(invalid(
                        line,
                        field,
                        format!("'{}' is not declared as a chat model", t.value),
                    ));
                }
                let structured = task == Task::Answer
                    || self
                        .task_parameters
                        .get(&task)
                        .is_some_and(|p| p.output_schema.is_some());
                if structured && !caps.is_empty() && !caps.contains(&Capability::JsonSchema) {
                    return Err(invalid(
                        line,
                        field,
                        format!(
                            "task '{}' needs structured output, but '{}' lacks the json_schema \
                             capability in models",
                            task.as_str(),
                            t.value
                        ),
                    ));
                }
                if task == Task::Embed && p.value.kind == ProviderKind::Anthropic {
                    return Err(invalid(line, field, "Anthropic has no embeddings endpoint"));
                }
            }
        }
        let embed = self.targets_spanned(Task::Embed);
        if let Some(first) = embed.first() {
            let model = parse_target(&first.value)
                .map_err(|e| invalid(first.referenced.line(), "task embed", e))?
                .model;
            for other in &embed[1..] {
                let m = parse_target(&other.value)
                    .map_err(|e| invalid(other.referenced.line(), "task embed", e))?
                    .model;
                if m != model {
                    return Err(invalid(
                        other.referenced.line(),
                        "fallback_strategy.embed",
                        format!(
                            "'{}' is a different embedding model than '{}'; vectors of different \
                             models are incompatible, so embeddings may only fall back to another \
                             server of the same model",
                            other.value, first.value
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    /// `num_ctx` lives on the model, so every task using a model shares it. Two `models` keys
    /// can still name one Ollama model (`x` and `x:latest`): they must agree, or each call
    /// would reload the model with the other context size.
    fn check_num_ctx_aliases(&self) -> Result<(), Invalid> {
        let mut seen: BTreeMap<(String, String), (&str, u32)> = BTreeMap::new();
        for (key, m) in &self.models {
            let (Ok(t), Some(n)) = (parse_target(key), m.value.num_ctx) else {
                continue;
            };
            let model = if t.model.contains(':') {
                t.model.clone()
            } else {
                format!("{}:latest", t.model)
            };
            match seen.get(&(t.provider.clone(), model.clone())) {
                Some((other, n0)) if *n0 != n => {
                    return Err(invalid(
                        m.referenced.line(),
                        format!("models.{key}.num_ctx"),
                        format!(
                            "{n} differs from num_ctx {n0} of '{other}', the same Ollama model; \
                             one model must use one num_ctx (a change reloads it)"
                        ),
                    ));
                }
                _ => {
                    seen.insert((t.provider, model), (key.as_str(), n));
                }
            }
        }
        Ok(())
    }
}

fn check_timeouts(t: &Timeouts, line: u64, field: &str) -> Result<(), Invalid> {
    for (name, v) in [
        ("connect_s", t.connect_s),
        ("first_token_s", t.first_token_s),
        ("total_s", t.total_s),
        ("idle_s", t.idle_s),
    ] {
        if let Some(v) = v
            && !(v.is_finite() && v > 0.0)
        {
            return Err(invalid(
                line,
                format!("{field}.{name}"),
                format!("{v} must be a positive number of seconds"),
            ));
        }
    }
    Ok(())
}

fn check_retry(r: &RetryConfig, line: u64, field: &str) -> Result<(), Invalid> {
    if r.max_attempts == 0 {
        return Err(invalid(
            line,
            format!("{field}.max_attempts"),
            "must be at least 1 (the first attempt counts)",
        ));
    }
    if !(r.multiplier.is_finite() && r.multiplier >= 1.0) {
        return Err(invalid(
            line,
            format!("{field}.multiplier"),
            "must be at least 1",
        ));
    }
    if !(r.max_retry_after_s.is_finite() && r.max_retry_after_s >= 0.0) {
        return Err(invalid(
            line,
            format!("{field}.max_retry_after_s"),
            "must be a non-negative number of seconds",
        ));
    }
    Ok(())
}

fn check_cooldown(c: &CooldownConfig, line: u64, field: &str) -> Result<(), Invalid> {
    if c.consecutive_failures == 0 {
        return Err(invalid(
            line,
            format!("{field}.consecutive_failures"),
            "must be at least 1",
        ));
    }
    if !(c.initial_s.is_finite() && c.initial_s > 0.0 && c.max_s >= c.initial_s) {
        return Err(invalid(
            line,
            format!("{field}.initial_s"),
            "must be positive and not above max_s",
        ));
    }
    if !(c.multiplier.is_finite() && c.multiplier >= 1.0) {
        return Err(invalid(
            line,
            format!("{field}.multiplier"),
            "must be at least 1",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::RouterConfig;
    use std::path::Path;

    #[test]
    fn unknown_provider_and_unknown_field_are_rejected_with_names_and_lines() {
        let bad = "providers:\n  embedded: {kind: embedded}\ntask_models:\n  classify: embedded:a\n  answer: nope:b\n  embed: embedded:c\n";
        let e = RouterConfig::parse(bad, Path::new("x.yaml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown provider 'nope'"), "{e}");
        assert!(e.contains("line 5"), "{e}");
        let bad = "providers:\n  embedded: {kind: embedded, colour: red}\ntask_models: {}\n";
        let e = RouterConfig::parse(bad, Path::new("x.yaml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("colour") && e.contains("line 2"), "{e}");
    }

    #[test]
    fn bad_values_name_their_field_and_line() {
        let bad = "providers:\n  embedded: {kind: embedded}\n  o:\n    kind: ollama\n    base_url: http://x\n    retry: {max_attempts: 0}\n\
                   task_models:\n  classify: embedded:a\n  answer: embedded:a\n  embed: embedded:c\n";
        let e = RouterConfig::parse(bad, Path::new("x.yaml"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("providers.o.retry.max_attempts") && e.contains("line 4"),
            "{e}"
        );
        let bad = "providers:\n  embedded: {kind: embedded}\n  o: {kind: openai, base_url: 'http://x', timeouts: {first_token_s: -1}}\n\
                   task_models:\n  classify: embedded:a\n  answer: embedded:a\n  embed: embedded:c\n";
        let e = RouterConfig::parse(bad, Path::new("x.yaml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("timeouts.first_token_s"), "{e}");
    }

    #[test]
    fn embeddings_never_fall_back_to_another_model() {
        let bad = "providers:\n  embedded: {kind: embedded}\n  ollama: {kind: ollama, base_url: 'http://x'}\ntask_models:\n  classify: embedded:a\n  answer: embedded:a\n  embed: embedded:all-minilm-l6-v2\nfallback_strategy:\n  embed: [ollama:nomic-embed-text]\n";
        let e = RouterConfig::parse(bad, Path::new("x.yaml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("incompatible") && e.contains("line 9"), "{e}");
    }
}
