//! Router behaviour against real HTTP servers speaking the Ollama and OpenAI wire formats
//! (`common::llm_stub`): which target answers, what was sent, and how failures fall through.

mod common;

use common::llm_stub::{LlmStub, Proto, Step, ollama_error, openai_error};
use common::router;
use rfpq::router::config::Task;
use rfpq::router::types::ChatMessage;

/// The OpenAI-compatible fallback's model (LM Studio's name for it).
const LMSTUDIO_MODEL: &str = "qwen2.5-7b-instruct";

/// `openai` is the OpenAI-compatible base URL, `/v1` included (`LlmStub::url`).
fn config(ollama: &str, openai: &str) -> String {
    format!(
        "providers:\n  ollama: {{kind: ollama, base_url: '{ollama}', keep_alive: 30m, cooldown: {{initial_s: 60}}}}\n  \
         lmstudio: {{kind: openai, base_url: '{openai}'}}\n  embedded: {{kind: embedded}}\n\
         models:\n  'ollama:qwen2.5:7b': {{num_ctx: 4096}}\n\
         task_models:\n  classify: ollama:qwen2.5:7b\n  answer: ollama:qwen2.5:7b\n  embed: ollama:all-minilm\n\
         task_parameters:\n  answer: {{temperature: 0.1, max_tokens: 77}}\n\
         fallback_strategy:\n  answer: [lmstudio:qwen2.5-7b-instruct]\n"
    )
}

#[tokio::test]
async fn ollama_answers_first_with_the_native_wire_format() {
    let ollama = LlmStub::start(Proto::Ollama).await;
    ollama.set_default("/api/chat", Step::answer(r#"{"status":"Yes"}"#));
    let r = router(&config(&ollama.url(), "http://127.0.0.1:9/v1"));
    let schema = serde_json::json!({"type": "object", "properties": {"status": {"type": "string", "enum": ["Yes", "No"]}}});
    let (reply, record) = r
        .chat(
            Task::Answer,
            &[ChatMessage::user("Do you encrypt data?")],
            Some(&schema),
        )
        .await
        .unwrap();
    assert_eq!(reply.text, r#"{"status":"Yes"}"#);
    assert_eq!(
        (record.provider.as_str(), record.model.as_str()),
        ("ollama", "qwen2.5:7b")
    );
    assert_eq!((record.attempts, record.fallback_used), (1, false));
    assert_eq!((record.prompt_tokens, record.eval_tokens), (34, 12));
    let seen = &ollama.requests()[0];
    let (path, body) = (&seen.path, &seen.body);
    assert_eq!(path, "/api/chat");
    assert_eq!(
        body["stream"], true,
        "streams so a slow first token can be detected"
    );
    assert_eq!(body["format"], schema);
    assert_eq!(body["options"]["num_ctx"], 4096);
    assert_eq!(body["options"]["num_predict"], 77);
    assert_eq!(body["keep_alive"], "30m");
    assert_eq!(body["messages"][0]["role"], "user");
}

#[tokio::test]
async fn missing_model_falls_through_to_the_next_target_and_cools_down() {
    let ollama = LlmStub::start(Proto::Ollama).await;
    ollama.set_default(
        "/api/chat",
        ollama_error(404, "model 'qwen2.5:7b' not found"),
    );
    let openai = LlmStub::builder(Proto::OpenAi)
        .models(&[LMSTUDIO_MODEL])
        .start()
        .await;
    openai.set_default("/v1/chat/completions", Step::answer("fallback answer"));
    let r = router(&config(&ollama.url(), &openai.url()));
    let msgs = [ChatMessage::user("hello")];
    let (reply, record) = r.chat(Task::Answer, &msgs, None).await.unwrap();
    assert_eq!(reply.text, "fallback answer");
    assert_eq!(record.provider, "lmstudio");
    assert!(record.fallback_used);
    assert_eq!(record.attempts, 2);
    assert!(
        record.skipped[0].contains("model 'qwen2.5:7b' not found"),
        "{:?}",
        record.skipped
    );
    let sent = &openai.requests()[0].body;
    assert_eq!(sent["model"], LMSTUDIO_MODEL);
    assert_eq!(sent["max_tokens"], 77);

    // The missing model is now cooling down: the next call goes straight to the fallback.
    let (_, record) = r.chat(Task::Answer, &msgs, None).await.unwrap();
    assert_eq!(record.attempts, 1);
    assert_eq!(
        ollama.requests().len(),
        1,
        "a cooling target must not be called"
    );
}

#[tokio::test]
async fn connection_refused_and_server_errors_fall_through_and_all_failures_are_reported() {
    let broken = LlmStub::builder(Proto::OpenAi)
        .models(&[LMSTUDIO_MODEL])
        .start()
        .await;
    broken.set_default(
        "/v1/chat/completions",
        openai_error(500, "api_error", None, "boom"),
    );
    let r = router(&config("http://127.0.0.1:9", &broken.url()));
    let err = r
        .chat(Task::Answer, &[ChatMessage::user("hi")], None)
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("ollama:qwen2.5:7b: unreachable"), "{text}");
    assert!(text.contains("HTTP 500") && text.contains("boom"), "{text}");
}

#[tokio::test]
async fn embeddings_use_ollama_api_embed_with_a_batch() {
    let ollama = LlmStub::start(Proto::Ollama).await;
    ollama.set_default(
        "/api/embed",
        Step::status(
            200,
            serde_json::json!({"model": "all-minilm", "embeddings": [[0.6, 0.8], [1.0, 0.0]],
            "total_duration": 14143917, "load_duration": 1019500, "prompt_eval_count": 8}),
        ),
    );
    let r = router(&config(&ollama.url(), "http://127.0.0.1:9/v1"));
    let (v, record) = r.embed(&["a".to_string(), "b".to_string()]).await.unwrap();
    assert_eq!(v, vec![vec![0.6, 0.8], vec![1.0, 0.0]]);
    assert_eq!(record.model, "all-minilm");
    assert_eq!(
        ollama.requests()[0].body["input"],
        serde_json::json!(["a", "b"])
    );
}

#[test]
fn local_only_policy_refuses_cloud_targets() {
    let yaml = "data_policy: local_only\nproviders:\n  cloud: {kind: openai, base_url: 'http://127.0.0.1:9/v1', cloud: true}\n  embedded: {kind: embedded}\n\
                task_models:\n  classify: cloud:gpt\n  answer: cloud:gpt\n  embed: embedded:all-minilm-l6-v2\n";
    let r = router(yaml);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let err = rt
        .block_on(r.chat(Task::Answer, &[ChatMessage::user("secret question")], None))
        .unwrap_err();
    assert!(
        err.to_string().contains("local_only forbids cloud"),
        "{err}"
    );
}
