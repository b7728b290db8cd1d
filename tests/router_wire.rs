//! What the router sends and understands on each wire format (OpenAI SSE, Anthropic Messages),
//! that API keys never show up in errors or Debug output, the client-side rate limit, and the
//! operator functions (`admin::check`, `pull`, `warm`), all against real HTTP stubs.

mod common;

use common::llm_stub::{LlmStub, Proto, Step, anthropic_error};
use common::router;
use rfpq::router::admin;
use rfpq::router::config::{RouterConfig, Target, Task};
use rfpq::router::types::ChatMessage;
use serde_json::json;
use std::path::Path;
use std::time::{Duration, Instant};

fn cfg(providers: &str, answer: &str) -> String {
    common::wire_yaml(providers, answer, "{temperature: 0.1, max_tokens: 77}")
}

fn schema() -> serde_json::Value {
    json!({"type": "object", "properties": {"status": {"type": "string", "enum": ["Yes", "No"]}},
           "required": ["status"], "additionalProperties": false})
}

#[tokio::test]
async fn openai_streams_with_sse_and_sends_a_json_schema_response_format() {
    let oa = LlmStub::start(Proto::OpenAi).await;
    oa.set_default("/v1/chat/completions", Step::answer(r#"{"status":"Yes"}"#));
    let yaml = cfg(
        &format!(
            "  oa: {{kind: openai, base_url: '{}', max_tokens_param: max_completion_tokens}}\n",
            oa.url()
        ),
        "oa:gpt-4o-mini",
    );
    let r = router(&yaml);
    let s = schema();
    let msgs = [ChatMessage::system("Classify."), ChatMessage::user("SSO?")];
    let (reply, rec) = r.chat(Task::Answer, &msgs, Some(&s)).await.unwrap();
    assert_eq!(reply.text, r#"{"status":"Yes"}"#);
    assert_eq!((rec.prompt_tokens, rec.eval_tokens), (34, 12));
    assert_eq!(rec.done_reason.as_deref(), Some("stop"));
    let body = &oa.requests()[0].body;
    assert_eq!(body["stream"], true);
    assert_eq!(body["stream_options"]["include_usage"], true);
    assert_eq!(body["max_completion_tokens"], 77);
    assert_eq!(body["response_format"]["type"], "json_schema");
    assert_eq!(body["response_format"]["json_schema"]["schema"], s);
    assert_eq!(body["messages"][0]["role"], "system");
}

#[tokio::test]
async fn anthropic_gets_its_headers_top_level_system_and_a_forced_tool() {
    // SAFETY: set before any thread reads it; the name is unique to this test.
    unsafe { std::env::set_var("RFPQ_TEST_ANTHROPIC_KEY_1", "sk-ant-secret-value-1") };
    let an = LlmStub::start(Proto::Anthropic).await;
    an.set_default("/v1/messages", Step::answer(r#"{"status":"No"}"#));
    let yaml = cfg(
        &format!(
            "  an: {{kind: anthropic, base_url: '{}', api_key_env: RFPQ_TEST_ANTHROPIC_KEY_1}}\n",
            an.url()
        ),
        "an:claude-3-haiku-20240307",
    );
    let r = router(&yaml);
    let s = schema();
    let msgs = [
        ChatMessage::system("You classify RFP questions."),
        ChatMessage::user("SSO?"),
    ];
    let (reply, rec) = r.chat(Task::Answer, &msgs, Some(&s)).await.unwrap();
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&reply.text).unwrap(),
        json!({"status": "No"})
    );
    assert_eq!((rec.prompt_tokens, rec.eval_tokens), (34, 12));
    let seen = &an.requests()[0];
    assert_eq!(seen.headers["x-api-key"], "sk-ant-secret-value-1");
    assert_eq!(seen.headers["anthropic-version"], "2023-06-01");
    assert!(!seen.headers.contains_key("authorization"));
    assert_eq!(seen.body["system"], "You classify RFP questions.");
    assert_eq!(seen.body["messages"].as_array().unwrap().len(), 1);
    assert_eq!(seen.body["max_tokens"], 77);
    assert_eq!(
        seen.body["tool_choice"],
        json!({"type": "tool", "name": "answer"})
    );
    assert_eq!(seen.body["tools"][0]["input_schema"], s);
}

#[tokio::test]
async fn api_keys_never_appear_in_errors_or_debug_output() {
    unsafe { std::env::set_var("RFPQ_TEST_ANTHROPIC_KEY_2", "sk-ant-secret-value-2") };
    let an = LlmStub::start(Proto::Anthropic).await;
    an.set_default(
        "/v1/messages",
        anthropic_error(401, "authentication_error", "invalid x-api-key"),
    );
    let yaml = cfg(
        &format!(
            "  an: {{kind: anthropic, base_url: '{}', api_key_env: RFPQ_TEST_ANTHROPIC_KEY_2}}\n",
            an.url()
        ),
        "an:claude-3-haiku-20240307",
    );
    let r = router(&yaml);
    let err = r
        .chat(Task::Answer, &[ChatMessage::user("q")], None)
        .await
        .unwrap_err();
    assert_eq!(an.hits("/v1/messages"), 1, "auth errors are not retried");
    let shown = format!("{err} {err:?} {:?}", r.config());
    assert!(shown.contains("authentication"), "{shown}");
    assert!(!shown.contains("sk-ant-secret-value-2"), "{shown}");
    let json = serde_json::to_string(&r.health()).unwrap();
    assert!(!json.contains("sk-ant-secret-value-2"));
}

#[tokio::test]
async fn a_cloud_provider_without_its_key_is_disabled_not_called() {
    let oa = LlmStub::start(Proto::OpenAi).await;
    let yaml = cfg(
        &format!(
            "  oa: {{kind: openai, base_url: '{}', cloud: true, api_key_env: RFPQ_TEST_KEY_NEVER_SET}}\n",
            oa.url()
        ),
        "oa:gpt-4o-mini",
    );
    let r = router(&yaml);
    let err = r
        .chat(Task::Answer, &[ChatMessage::user("q")], None)
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("RFPQ_TEST_KEY_NEVER_SET is not set"),
        "{err}"
    );
    assert!(oa.requests().is_empty());
}

#[tokio::test]
async fn rpm_limit_spaces_requests() {
    let ollama = LlmStub::start(Proto::Ollama).await;
    let yaml = cfg(
        &format!(
            "  ollama: {{kind: ollama, base_url: '{}', max_concurrency: 4, rpm: 300}}\n",
            ollama.url()
        ),
        "ollama:qwen2.5:7b",
    );
    let r = router(&yaml);
    let started = Instant::now();
    let msgs = [ChatMessage::user("q")];
    let calls = (0..3).map(|_| r.chat(Task::Answer, &msgs, None));
    for res in futures_util::future::join_all(calls).await {
        res.unwrap();
    }
    // 300 rpm = one start per 200 ms: the third starts >= 400 ms after the first.
    let seen = ollama.requests();
    assert_eq!(seen.len(), 3);
    assert!(
        seen[2].at - seen[0].at >= Duration::from_millis(380),
        "{:?}",
        seen[2].at - seen[0].at
    );
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn check_reports_reachability_and_missing_models() {
    let ollama = LlmStub::builder(Proto::Ollama)
        .models(&["qwen2.5:7b"])
        .start()
        .await;
    let oa = LlmStub::start(Proto::OpenAi).await;
    let yaml = format!(
        "providers:\n  embedded: {{kind: embedded, model_dir: /nonexistent}}\n  ollama: {{kind: ollama, base_url: '{}'}}\n  \
         oa: {{kind: openai, base_url: '{}'}}\n  down: {{kind: ollama, base_url: 'http://127.0.0.1:9'}}\n  \
         cloud: {{kind: anthropic, base_url: 'http://127.0.0.1:9'}}\n\
         data_policy: local_only\n\
         task_models:\n  classify: ollama:qwen2.5:7b\n  answer: ollama:qwen2.5:7b\n  embed: ollama:nomic-embed-text\n\
         fallback_strategy:\n  answer: [oa:gpt-4o-mini, down:qwen2.5:7b, cloud:claude-3-haiku-20240307]\n",
        ollama.url(),
        oa.url()
    );
    let cfg = RouterConfig::parse(&yaml, Path::new("t.yaml")).unwrap();
    let report = admin::check(&cfg).await;
    let by = |n: &str| {
        report
            .providers
            .iter()
            .find(|p| p.provider == n)
            .unwrap()
            .clone()
    };
    let o = by("ollama");
    assert!(o.reachable);
    assert_eq!(o.missing, vec!["nomic-embed-text".to_string()]);
    assert!(by("oa").reachable && by("oa").missing.is_empty());
    let d = by("down");
    assert!(
        !d.reachable && d.error.as_deref().unwrap().contains("unreachable"),
        "{d:?}"
    );
    let c = by("cloud");
    assert!(!c.contacted && c.error.as_deref().unwrap().contains("local_only"));
    assert!(!report.ok);
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["providers"][0]["provider"], "cloud");
    assert_eq!(ollama.hits("/api/tags"), 1);
}

#[tokio::test]
async fn pull_streams_progress_and_warm_loads_the_model() {
    let ollama = LlmStub::builder(Proto::Ollama)
        .models(&["qwen2.5:7b"])
        .start()
        .await;
    let yaml = format!(
        "providers:\n  embedded: {{kind: embedded}}\n  ollama: {{kind: ollama, base_url: '{}', keep_alive: 30m}}\n\
         models:\n  'ollama:qwen2.5:7b': {{num_ctx: 8192}}\n\
         task_models:\n  classify: ollama:qwen2.5:7b\n  answer: ollama:qwen2.5:7b\n  embed: embedded:all-minilm-l6-v2\n",
        ollama.url()
    );
    let cfg = RouterConfig::parse(&yaml, Path::new("t.yaml")).unwrap();
    let target = Target {
        provider: "ollama".into(),
        model: "nomic-embed-text".into(),
    };
    let mut statuses = Vec::new();
    let report = admin::pull(&cfg, &target, Duration::from_secs(5), |p| {
        statuses.push((p.status.clone(), p.completed))
    })
    .await
    .unwrap();
    assert_eq!(report.status, "success");
    assert_eq!(statuses.first().unwrap().0, "pulling manifest");
    assert!(statuses.iter().any(|(_, c)| *c == Some(500)));
    assert_eq!(
        ollama.requests()[0].body,
        json!({"model": "nomic-embed-text", "stream": true})
    );
    // The pulled model is now listed.
    let check = admin::check(&cfg).await;
    assert!(
        check
            .providers
            .iter()
            .find(|p| p.provider == "ollama")
            .unwrap()
            .available
            .contains(&"nomic-embed-text".to_string())
    );

    let qwen = Target {
        provider: "ollama".into(),
        model: "qwen2.5:7b".into(),
    };
    let warm = admin::warm(&cfg, &qwen, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(warm.done_reason.as_deref(), Some("load"));
    let sent = ollama.requests().last().unwrap().body.clone();
    assert_eq!(sent["messages"], json!([]));
    assert_eq!(sent["keep_alive"], "30m");
    assert_eq!(sent["options"]["num_ctx"], 8192);

    let local = Target {
        provider: "embedded".into(),
        model: "x".into(),
    };
    let err = admin::warm(&cfg, &local, Duration::from_secs(1))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("only with Ollama"), "{err}");
}
