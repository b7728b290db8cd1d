//! `ChatResponse::choice_probs`: the probability of each option of a structured reply's enum
//! fields, from OpenAI-compatible and Ollama logprobs (streamed and not) against real HTTP stubs,
//! a server that refuses logprobs with a 400 (answered again without them), the `logprobs:
//! false` switch, and the embedded model's own option scores (real model, one short call).

mod common;

use common::llm_stub::{Builder, LlmStub, Proto, Step};
use common::router;
use rfpq::router::ChatResponse;
use rfpq::router::config::Task;
use rfpq::router::types::ChatMessage;
use serde_json::{Value, json};

fn cfg(providers: &str, answer: &str) -> String {
    common::wire_yaml(providers, answer, "{temperature: 0, max_tokens: 64}")
}

/// The answer pipeline's shape: a choice slot, then the evidence citation.
fn schema() -> Value {
    json!({"type": "object", "properties": {
        "status": {"type": "string", "enum": ["Yes", "No", "N/A"]},
        "evidence": {"type": "string", "enum": ["[1]", "[2]", "insufficient"]}},
        "required": ["status", "evidence"], "additionalProperties": false})
}

/// The stub's tokens for this answer: `{"`, `status`, `": "`, `Yes`, `", "`, `evidence`,
/// `": "[`, `1`, `]"}`: `status`'s value starts a token, `evidence`'s starts inside one.
const ANSWER: &str = r#"{"status": "Yes", "evidence": "[1]"}"#;

fn scripted(proto: Proto) -> Builder {
    LlmStub::builder(proto)
        .logprobs_at("Yes", 0.7, &[("No", 0.2), ("N", 0.05), ("Maybe", 0.05)])
        .logprobs_at(
            "\": \"[",
            0.6,
            &[("\": \"ins", 0.3), ("\":", 0.05), ("\": \"none", 0.05)],
        )
        .logprobs_at("1", 0.8, &[("2", 0.2)])
}

fn close(got: Option<f32>, want: f32) -> bool {
    got.is_some_and(|g| (g - want).abs() < 1e-4)
}

/// `Yes` 0.7; `No` 0.2 + 0.05 from `N`; `N/A` 0.05 from `N`; `Maybe` matches nothing.
/// The generated `[` (0.6) opens both citations, so the next position (`1` 0.8, `2` 0.2) splits
/// it; `ins` (0.3) opens `insufficient`; `":` does not open the value and `none` matches
/// nothing: 0.48 / 0.12 / 0.3 over 0.9.
fn assert_scripted_probs(reply: &ChatResponse, what: &str) {
    assert_eq!(reply.text, ANSWER, "{what}");
    assert_eq!(
        reply.choice_probs.len(),
        2,
        "{what}: {:?}",
        reply.choice_probs
    );
    assert_eq!(reply.choice_probs[0].field, "status");
    assert_eq!(
        reply.choice_probs[0]
            .options
            .iter()
            .map(|(o, _)| o.as_str())
            .collect::<Vec<_>>(),
        ["Yes", "No", "N/A"],
        "{what}: schema order"
    );
    assert!(
        close(reply.prob_of("status", "Yes"), 0.7),
        "{what}: {reply:?}"
    );
    assert!(
        close(reply.prob_of("status", "No"), 0.25),
        "{what}: {reply:?}"
    );
    assert!(
        close(reply.prob_of("status", "N/A"), 0.05),
        "{what}: {reply:?}"
    );
    assert!(
        close(reply.prob_of("evidence", "[1]"), 0.48 / 0.9),
        "{what}: {reply:?}"
    );
    assert!(
        close(reply.prob_of("evidence", "[2]"), 0.12 / 0.9),
        "{what}: {reply:?}"
    );
    assert!(
        close(reply.prob_of("evidence", "insufficient"), 0.3 / 0.9),
        "{what}: {reply:?}"
    );
    assert_eq!(reply.prob_of("status", "Maybe"), None);
    assert_eq!(reply.prob_of("explanation", "Yes"), None);
}

#[tokio::test]
async fn openai_logprobs_give_each_enum_options_probability() {
    for stream in [true, false] {
        let oa = scripted(Proto::OpenAi).start().await;
        oa.set_default("/v1/chat/completions", Step::answer(ANSWER));
        let r = router(&cfg(
            &format!(
                "  oa: {{kind: openai, base_url: '{}', stream: {stream}}}\n",
                oa.url()
            ),
            "oa:gpt-4o-mini",
        ));
        let s = schema();
        let (reply, rec) = r
            .chat(Task::Answer, &[ChatMessage::user("SSO?")], Some(&s))
            .await
            .unwrap();
        assert_scripted_probs(&reply, &format!("openai stream={stream}"));
        assert_eq!(rec.attempts, 1);
        let body = &oa.requests()[0].body;
        assert_eq!(body["logprobs"], true);
        assert_eq!(body["top_logprobs"], 10);
        assert_eq!(body["stream"], stream);
    }
}

#[tokio::test]
async fn ollama_logprobs_give_each_enum_options_probability() {
    for stream in [true, false] {
        let ol = scripted(Proto::Ollama).start().await;
        ol.set_default("/api/chat", Step::answer(ANSWER));
        let r = router(&cfg(
            &format!(
                "  ollama: {{kind: ollama, base_url: '{}', stream: {stream}}}\n",
                ol.url()
            ),
            "ollama:qwen2.5:7b",
        ));
        let s = schema();
        let (reply, rec) = r
            .chat(Task::Answer, &[ChatMessage::user("SSO?")], Some(&s))
            .await
            .unwrap();
        assert_scripted_probs(&reply, &format!("ollama stream={stream}"));
        assert_eq!(rec.attempts, 1);
        let body = &ol.requests()[0].body;
        assert_eq!(body["logprobs"], true);
        assert_eq!(body["top_logprobs"], 10);
        assert_eq!(body["format"], s);
    }
}

#[tokio::test]
async fn a_server_refusing_logprobs_still_answers_and_is_not_asked_for_them_again() {
    let oa = LlmStub::builder(Proto::OpenAi)
        .reject_logprobs()
        .start()
        .await;
    oa.set_default("/v1/chat/completions", Step::answer(ANSWER));
    let r = router(&cfg(
        &format!("  oa: {{kind: openai, base_url: '{}'}}\n", oa.url()),
        "oa:gpt-4o-mini",
    ));
    let s = schema();
    let msgs = [ChatMessage::user("SSO?")];
    let (reply, rec) = r.chat(Task::Answer, &msgs, Some(&s)).await.unwrap();
    assert_eq!(reply.text, ANSWER);
    assert!(reply.choice_probs.is_empty(), "{:?}", reply.choice_probs);
    assert!(!rec.fallback_used);
    assert_eq!(
        rec.attempts, 2,
        "the refused request and the one without logprobs"
    );
    assert!(
        rec.notes.iter().any(|n| n.contains("refused logprobs")),
        "{:?}",
        rec.notes
    );
    let seen = oa.requests();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].body["logprobs"], true);
    assert!(seen[1].body.get("logprobs").is_none());
    assert!(seen[1].body.get("top_logprobs").is_none());

    // Remembered for the model: the next call goes out once, without logprobs.
    let (reply, rec) = r.chat(Task::Answer, &msgs, Some(&s)).await.unwrap();
    assert_eq!(reply.text, ANSWER);
    assert_eq!(rec.attempts, 1);
    let seen = oa.requests();
    assert_eq!(seen.len(), 3);
    assert!(seen[2].body.get("logprobs").is_none());

    // An Ollama without logprobs support ignores the field: one request, no probabilities.
    let ol = LlmStub::builder(Proto::Ollama)
        .reject_logprobs()
        .start()
        .await;
    ol.set_default("/api/chat", Step::answer(ANSWER));
    let r = router(&cfg(
        &format!("  ollama: {{kind: ollama, base_url: '{}'}}\n", ol.url()),
        "ollama:qwen2.5:7b",
    ));
    let (reply, rec) = r.chat(Task::Answer, &msgs, Some(&s)).await.unwrap();
    assert_eq!(reply.text, ANSWER);
    assert!(reply.choice_probs.is_empty());
    assert_eq!((rec.attempts, ol.hits("/api/chat")), (1, 1));
}

#[tokio::test]
async fn logprobs_are_asked_only_for_enum_schemas_and_can_be_switched_off() {
    let oa = scripted(Proto::OpenAi).start().await;
    oa.set_default("/v1/chat/completions", Step::answer(ANSWER));
    let ol = scripted(Proto::Ollama).start().await;
    ol.set_default("/api/chat", Step::answer(ANSWER));
    let providers = format!(
        "  oa: {{kind: openai, base_url: '{}', logprobs: false}}\n  \
         ollama: {{kind: ollama, base_url: '{}', logprobs: false}}\n",
        oa.url(),
        ol.url()
    );
    let s = schema();
    let msgs = [ChatMessage::user("SSO?")];
    for target in ["oa:gpt-4o-mini", "ollama:qwen2.5:7b"] {
        let r = router(&cfg(&providers, target));
        let (reply, _) = r.chat(Task::Answer, &msgs, Some(&s)).await.unwrap();
        assert!(reply.choice_probs.is_empty(), "{target}");
    }
    // Switched on (the default) but no enum field, or no schema: not asked for either.
    let providers = format!(
        "  oa: {{kind: openai, base_url: '{}'}}\n  ollama: {{kind: ollama, base_url: '{}'}}\n",
        oa.url(),
        ol.url()
    );
    let text_only = json!({"type": "object", "properties": {"explanation": {"type": "string"}},
        "required": ["explanation"]});
    for target in ["oa:gpt-4o-mini", "ollama:qwen2.5:7b"] {
        let r = router(&cfg(&providers, target));
        r.chat(Task::Answer, &msgs, Some(&text_only)).await.ok();
        r.chat(Task::Answer, &msgs, None).await.unwrap();
    }
    for seen in oa.requests().iter().chain(ol.requests().iter()) {
        assert!(seen.body.get("logprobs").is_none(), "{}", seen.body);
        assert!(seen.body.get("top_logprobs").is_none(), "{}", seen.body);
    }
}

#[tokio::test]
async fn the_embedded_model_gives_its_option_probabilities() {
    let r = router(&cfg("", "embedded:smollm2-135m-instruct"));
    let s = schema();
    let msgs = [
        ChatMessage::system(
            "You answer security questionnaires. Reply with JSON: status is Yes, No or N/A; \
             evidence is the source you used ([1] or [2]) or insufficient.",
        ),
        ChatMessage::user(
            "[1] All customer data is encrypted at rest with AES-256.\n\
             Question: Is customer data encrypted at rest?",
        ),
    ];
    let (reply, rec) = r
        .chat(Task::Answer, &msgs, Some(&s))
        .await
        .unwrap_or_else(|e| panic!("the embedded model answers (model files present?): {e}"));
    assert_eq!(rec.provider, "embedded");
    let v: Value = serde_json::from_str(&reply.text).unwrap();
    assert_eq!(reply.choice_probs.len(), 2, "{:?}", reply.choice_probs);
    for (probs, field) in reply.choice_probs.iter().zip(["status", "evidence"]) {
        assert_eq!(probs.field, field);
        let sum: f32 = probs.options.iter().map(|(_, p)| p).sum();
        assert!((sum - 1.0).abs() < 1e-4, "{probs:?}");
        let chosen = v[field].as_str().unwrap();
        let p = probs.prob(chosen).unwrap();
        assert!(
            probs.options.iter().all(|(_, q)| *q <= p),
            "{field}: chose {chosen} but {probs:?}"
        );
        eprintln!("{field}: {:?}", probs.options);
    }
}
