//! The failure scenarios of `shared/reference/llm-backends-and-routing.md` §6, each against real
//! HTTP servers speaking the Ollama / OpenAI / Anthropic wire formats (tests/common/llm_stub.rs).
//! Each test asserts which target answered, how many requests each server got, the breaker state
//! and loose time bounds (generous upper bounds: CI is a loaded 2-core machine).

mod common;

use common::llm_stub::{
    Answer, Blackhole, LlmStub, Proto, Step, anthropic_error, ollama_error, openai_error,
    openai_refusal,
};
use common::router;
use rfpq::router::config::{RouterConfig, Task};
use rfpq::router::layers::BreakerState;
use rfpq::router::types::ChatMessage;
use rfpq::router::{FailureKind, Router};
use serde_json::json;
use std::path::Path;
use std::time::{Duration, Instant};

/// Fast policy for tests: 3 attempts per target, 20 ms backoff, breaker after 3 failures for 0.3 s.
const DEFAULTS: &str = "defaults:
  timeouts: {connect_s: 1, first_token_s: 3, total_s: 6}
  retry: {max_attempts: 3, initial_backoff_ms: 20, max_backoff_ms: 100, jitter: false}
  cooldown: {consecutive_failures: 3, initial_s: 0.3, multiplier: 2, max_s: 30}
";

/// Providers `ollama` (at `o`) and `oa` (OpenAI-compatible at `a`, local so allowed), plus `extra`.
fn yaml(o: &str, a: &str, extra: &str, tasks: &str) -> String {
    format!(
        "{DEFAULTS}providers:\n  ollama: {{kind: ollama, base_url: '{o}'}}\n  oa: {{kind: openai, base_url: '{a}'}}\n  embedded: {{kind: embedded}}\n{extra}\
         models:\n  'ollama:qwen2.5:7b': {{num_ctx: 4096, context_window: 32768}}\n\
         task_models:\n  classify: ollama:llama3.2:3b\n  embed: embedded:all-minilm-l6-v2\n{tasks}"
    )
}

/// Answer task: Ollama first, then the OpenAI-compatible server.
const TWO: &str = "  answer: ollama:qwen2.5:7b\nfallback_strategy:\n  answer: [oa:gpt-4o-mini]\n";

fn msgs() -> Vec<ChatMessage> {
    vec![ChatMessage::user("Do you encrypt data at rest?")]
}

fn breaker(r: &Router, target: &str) -> rfpq::router::layers::BreakerSnapshot {
    r.health()
        .into_iter()
        .find(|h| h.target == target)
        .expect("target configured")
        .breaker
}

async fn ask(
    r: &Router,
) -> Result<(rfpq::router::ChatResponse, rfpq::router::CallRecord), rfpq::router::RouterError> {
    r.chat(Task::Answer, &msgs(), None).await
}

const OCHAT: &str = "/api/chat";
const ACHAT: &str = "/v1/chat/completions";

/// Where no OpenAI-compatible server listens (for configs that never reach `oa`).
const NO_OA: &str = "http://127.0.0.1:9/v1";

/// Answer task: the OpenAI-compatible server first, then Ollama.
const OA_FIRST: &str =
    "  answer: oa:gpt-4o-mini\nfallback_strategy:\n  answer: [ollama:qwen2.5:7b]\n";

/// An Ollama stub and an OpenAI-compatible stub.
async fn two_stubs() -> (LlmStub, LlmStub) {
    (
        LlmStub::start(Proto::Ollama).await,
        LlmStub::start(Proto::OpenAi).await,
    )
}

/// The config with [`TWO`]'s answer task: `ollama` first, then `oa`.
fn fallback_yaml(ollama: &LlmStub, oa: &LlmStub) -> String {
    yaml(&ollama.url(), &oa.url(), "", TWO)
}

/// A router on [`fallback_yaml`].
fn fallback_router(ollama: &LlmStub, oa: &LlmStub) -> Router {
    router(&fallback_yaml(ollama, oa))
}

/// The provider line declaring `an` (Anthropic) at `an`'s URL, for [`yaml`]'s `extra`.
fn anthropic_at(an: &LlmStub) -> String {
    format!("  an: {{kind: anthropic, base_url: '{}'}}\n", an.url())
}

/// One stub per protocol: Ollama, OpenAI-compatible (`oa`) and Anthropic (`an`).
struct Stubs {
    ollama: LlmStub,
    oa: LlmStub,
    an: LlmStub,
}

impl Stubs {
    async fn start() -> Self {
        let (ollama, oa) = two_stubs().await;
        let an = LlmStub::start(Proto::Anthropic).await;
        Self { ollama, oa, an }
    }

    /// Each stub with the answer target it serves.
    fn each(&self) -> [(&LlmStub, &'static str); 3] {
        [
            (&self.ollama, "ollama:qwen2.5:7b"),
            (&self.oa, "oa:gpt-4o-mini"),
            (&self.an, "an:claude-3-haiku-20240307"),
        ]
    }

    /// The config declaring all three stubs, with the task lines `tasks`.
    fn yaml(&self, tasks: &str) -> String {
        yaml(
            &self.ollama.url(),
            &self.oa.url(),
            &anthropic_at(&self.an),
            tasks,
        )
    }

    /// [`Stubs::yaml`] with `target` as the answer task's only target.
    fn only(&self, target: &str) -> String {
        self.yaml(&format!("  answer: {target}\n"))
    }
}

/// Asserts the first failed target of `rec` failed with `kind` after `attempts` attempts, and
/// returns that failure.
fn first_failure(
    rec: &rfpq::router::CallRecord,
    kind: FailureKind,
    attempts: u32,
) -> &rfpq::router::TargetFailure {
    let f = &rec.failures[0];
    assert_eq!((f.kind, f.attempts), (kind, attempts), "{f:?}");
    f
}

/// Asserts `target`'s breaker is closed with no failure counted against it.
fn assert_closed_and_clean(r: &Router, target: &str) {
    let b = breaker(r, target);
    assert_eq!((b.state, b.consecutive_failures), (BreakerState::Closed, 0));
}

/// `y` with `settings` (flow-mapping entries ending in a comma) added to the `ollama` provider.
fn ollama_with(y: &str, settings: &str) -> String {
    y.replace(
        "ollama: {kind: ollama,",
        &format!("ollama: {{kind: ollama, {settings}"),
    )
}

// §6 #1, #26, #28: connection refused opens the breaker at once; later calls skip the target
// without connecting; after the cooldown only a successful health probe brings it back.
#[tokio::test]
async fn connection_refused_opens_breaker_falls_back_and_probe_recovers() {
    let (ollama, oa) = two_stubs().await;
    ollama.refuse().await;
    let r = fallback_router(&ollama, &oa);
    let (reply, rec) = ask(&r).await.unwrap();
    assert_eq!(reply.text, "stub answer");
    assert_eq!((rec.provider.as_str(), rec.fallback_used), ("oa", true));
    assert_eq!(rec.failures[0].kind, FailureKind::ConnectError);
    assert_eq!(
        rec.failures[0].attempts, 2,
        "connect errors get one fast retry, not max_attempts (3)"
    );
    assert_eq!(breaker(&r, "ollama:qwen2.5:7b").state, BreakerState::Open);

    // While open: skipped without any connection attempt.
    let (_, rec) = ask(&r).await.unwrap();
    assert_eq!(rec.attempts, 1);
    assert_eq!(rec.failures[0].kind, FailureKind::CircuitOpen);

    // Back up; after the cooldown a probe (/api/tags) succeeds and traffic returns.
    ollama.restart().await;
    tokio::time::sleep(Duration::from_millis(350)).await;
    let (_, rec) = ask(&r).await.unwrap();
    assert_eq!(rec.provider, "ollama");
    assert_eq!(ollama.hits("/api/tags"), 1, "exactly one health probe");
    assert_eq!(breaker(&r, "ollama:qwen2.5:7b").state, BreakerState::Closed);
}

// §6 #3: 404 model missing is not retried; the breaker opens for that target only.
#[tokio::test]
async fn missing_model_is_not_retried_and_only_that_target_cools_down() {
    let ollama = LlmStub::builder(Proto::Ollama)
        .models(&["llama3.2:3b"])
        .start()
        .await;
    let oa = LlmStub::start(Proto::OpenAi).await;
    let r = fallback_router(&ollama, &oa);
    let (_, rec) = ask(&r).await.unwrap();
    assert_eq!(rec.provider, "oa");
    assert_eq!(ollama.hits(OCHAT), 1, "404 is never retried");
    assert_eq!(rec.failures[0].kind, FailureKind::ModelNotFound);
    assert!(
        rec.failures[0]
            .error
            .contains("model 'qwen2.5:7b' not found"),
        "{:?}",
        rec.failures
    );
    assert_eq!(breaker(&r, "ollama:qwen2.5:7b").state, BreakerState::Open);
    // Another model on the same server is unaffected.
    let (_, rec) = r.chat(Task::Classify, &msgs(), None).await.unwrap();
    assert_eq!(
        (rec.provider.as_str(), rec.model.as_str()),
        ("ollama", "llama3.2:3b")
    );
    assert_eq!(
        breaker(&r, "ollama:llama3.2:3b").state,
        BreakerState::Closed
    );
}

// §6 #7, #25: 500 forever: exactly max_attempts requests per target, no amplification.
#[tokio::test]
async fn server_errors_make_exactly_the_configured_attempts_per_target() {
    let (ollama, oa) = two_stubs().await;
    ollama.set_default(
        OCHAT,
        ollama_error(500, "llama runner process has terminated"),
    );
    oa.set_default(
        ACHAT,
        openai_error(500, "server_error", None, "The server had an error"),
    );
    let r = fallback_router(&ollama, &oa);
    let started = Instant::now();
    let err = ask(&r).await.unwrap_err();
    assert_eq!((ollama.hits(OCHAT), oa.hits(ACHAT)), (3, 3));
    assert_eq!(err.attempts, 6);
    assert!(
        err.details
            .iter()
            .all(|d| d.kind == FailureKind::ServerError && d.attempts == 3)
    );
    // Backoff 20 + 40 ms per target was waited, and nothing much more.
    let el = started.elapsed();
    assert!(
        el >= Duration::from_millis(110) && el < Duration::from_secs(5),
        "{el:?}"
    );
    assert_eq!(breaker(&r, "ollama:qwen2.5:7b").consecutive_failures, 1);
}

// §6 #4: 400 is never retried and does not count against the target.
#[tokio::test]
async fn bad_request_is_never_retried_and_does_not_trip_the_breaker() {
    let (ollama, oa) = two_stubs().await;
    ollama.set_default(
        OCHAT,
        ollama_error(400, "\"qwen2.5:7b\" does not support thinking"),
    );
    let r = fallback_router(&ollama, &oa);
    for _ in 0..4 {
        let (_, rec) = ask(&r).await.unwrap();
        assert_eq!(rec.provider, "oa");
        assert_eq!(rec.failures[0].kind, FailureKind::BadRequest);
        assert_eq!(rec.failures[0].attempts, 1);
    }
    assert_eq!(ollama.hits(OCHAT), 4, "one request per call, never a retry");
    assert_closed_and_clean(&r, "ollama:qwen2.5:7b");
}

// §6 #9: 503 queue full is backed off and retried; the client never exceeds max_concurrency.
#[tokio::test]
async fn queue_full_backs_off_and_client_side_limit_keeps_the_server_queue_empty() {
    let ollama = LlmStub::builder(Proto::Ollama).capacity(1, 1).start().await;
    let oa = LlmStub::start(Proto::OpenAi).await;
    ollama.script(
        OCHAT,
        [ollama_error(
            503,
            "server busy, please try again.  maximum pending requests exceeded",
        )],
    );
    ollama.set_default(OCHAT, Step::Answer(Answer::new("ok").delay_first(60)));
    let r = fallback_router(&ollama, &oa);
    let (_, rec) = ask(&r).await.unwrap();
    assert_eq!((rec.provider.as_str(), rec.attempts), ("ollama", 2));
    assert!(rec.notes[0].contains("queue full"), "{:?}", rec.notes);

    // max_concurrency 1 (the default) = the server's parallel 1: 4 concurrent calls queue
    // client-side and reach the server one at a time, never a 503.
    let calls = (0..4).map(|_| ask(&r));
    let results = futures_util::future::join_all(calls).await;
    for res in results {
        let (_, rec) = res.unwrap();
        assert_eq!((rec.provider.as_str(), rec.attempts), ("ollama", 1));
    }
    assert_eq!(ollama.max_in_flight(), 1);
}

// Ollama runs each loaded model with its own NUM_PARALLEL slots: with one slot each, an
// embedding is answered while an answer call holds the chat model's slot, both in the router
// (its Ollama limit is per model) and at the server (the stub's slots are per model too).
#[tokio::test]
async fn ollama_embeddings_do_not_wait_behind_answer_calls() {
    let ollama = LlmStub::builder(Proto::Ollama)
        .capacity(1, 8)
        .dims(384)
        .start()
        .await;
    let oa = LlmStub::start(Proto::OpenAi).await;
    // The answer holds the chat slot far longer than any embedding takes.
    ollama.set_default(OCHAT, Step::Answer(Answer::new("slow").delay_first(30_000)));
    let y = ollama_with(
        &fallback_yaml(&ollama, &oa)
            .replace(
                "embed: embedded:all-minilm-l6-v2",
                "embed: ollama:all-minilm:latest",
            )
            .replace(
                "\nmodels:\n",
                "\nmodels:\n  'ollama:all-minilm:latest': {capabilities: [embed]}\n",
            ),
        "max_concurrency: 1,",
    );
    let r = router(&y);
    let answer = ask(&r);
    tokio::pin!(answer);
    // Let the answer call take the slot first.
    tokio::select! {
        _ = &mut answer => panic!("the answer call finished before its delay"),
        () = tokio::time::sleep(Duration::from_millis(300)) => {}
    }
    assert_eq!(
        ollama.max_in_flight_of("qwen2.5:7b"),
        1,
        "the answer holds its slot"
    );
    let texts = ["Do you encrypt backups?".to_string()];
    tokio::select! {
        _ = &mut answer => panic!("the embedding waited for the answer call"),
        embedded = r.embed(&texts) => {
            let (vectors, rec) = embedded.expect("the embedding is answered");
            assert_eq!((vectors.len(), vectors[0].len()), (1, 384));
            assert_eq!(rec.provider, "ollama");
        }
    }
}

// §6 #9 (overflow): a server whose queue is full while the client allows more in flight.
#[tokio::test]
async fn a_full_server_queue_overflows_to_the_next_target() {
    let ollama = LlmStub::builder(Proto::Ollama).capacity(1, 0).start().await;
    let oa = LlmStub::start(Proto::OpenAi).await;
    ollama.set_default(OCHAT, Step::Answer(Answer::new("slow").delay_first(400)));
    let y = ollama_with(
        &fallback_yaml(&ollama, &oa),
        "max_concurrency: 2, retry: {max_attempts: 1},",
    );
    let r = router(&y);
    let (a, b) = tokio::join!(ask(&r), ask(&r));
    let providers = [a.unwrap().1.provider, b.unwrap().1.provider];
    assert!(
        providers.contains(&"ollama".to_string()) && providers.contains(&"oa".to_string()),
        "{providers:?}"
    );
}

// §6 #11: 429 with retry-after-ms is waited for, then retried on the same target.
#[tokio::test]
async fn rate_limit_retry_after_is_honoured() {
    let (ollama, oa) = two_stubs().await;
    oa.script(
        ACHAT,
        [openai_error(
            429,
            "requests",
            Some("rate_limit_exceeded"),
            "Rate limit reached",
        )
        .header("retry-after-ms", "300")],
    );
    let r = router(&yaml(
        &ollama.url(),
        &oa.url(),
        "",
        "  answer: oa:gpt-4o-mini\n",
    ));
    let started = Instant::now();
    let (_, rec) = ask(&r).await.unwrap();
    let el = started.elapsed();
    assert_eq!((rec.provider.as_str(), rec.attempts), ("oa", 2));
    assert!(
        el >= Duration::from_millis(290) && el < Duration::from_secs(5),
        "{el:?}"
    );
    let (a, b) = (oa.requests()[0].at, oa.requests()[1].at);
    assert!(b - a >= Duration::from_millis(290));
}

// §6 #11: a Retry-After above max_retry_after is not waited for: fall through, cool down that long.
#[tokio::test]
async fn long_retry_after_falls_through_and_cools_the_target_that_long() {
    let (ollama, oa) = two_stubs().await;
    ollama.set_default(
        OCHAT,
        ollama_error(429, "rate limited").header("Retry-After", "120"),
    );
    let r = fallback_router(&ollama, &oa);
    let started = Instant::now();
    let (_, rec) = ask(&r).await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(rec.provider, "oa");
    assert_eq!(ollama.hits(OCHAT), 1);
    let b = breaker(&r, "ollama:qwen2.5:7b");
    assert_eq!(b.state, BreakerState::Open);
    assert!(b.open_for_ms > 100_000, "{b:?}");
}

// §6 #12: 429 insufficient_quota is permanent: no retry, long cooldown, fall back.
#[tokio::test]
async fn insufficient_quota_is_not_retried() {
    let (ollama, oa) = two_stubs().await;
    oa.set_default(
        ACHAT,
        openai_error(
            429,
            "insufficient_quota",
            Some("insufficient_quota"),
            "You exceeded your current quota, please check your plan and billing details.",
        ),
    );
    let r = router(&yaml(&ollama.url(), &oa.url(), "", OA_FIRST));
    let (_, rec) = ask(&r).await.unwrap();
    assert_eq!(rec.provider, "ollama");
    assert_eq!(oa.hits(ACHAT), 1);
    assert_eq!(rec.failures[0].kind, FailureKind::QuotaExhausted);
    assert_eq!(breaker(&r, "oa:gpt-4o-mini").state, BreakerState::Open);
}

// §6 #13: Anthropic 529 overloaded is retried with backoff.
#[tokio::test]
async fn anthropic_overloaded_is_retried() {
    let ollama = LlmStub::start(Proto::Ollama).await;
    let an = LlmStub::start(Proto::Anthropic).await;
    an.script(
        "/v1/messages",
        [anthropic_error(529, "overloaded_error", "Overloaded")],
    );
    let extra = anthropic_at(&an);
    let r = router(&yaml(
        &ollama.url(),
        NO_OA,
        &extra,
        "  answer: an:claude-3-haiku-20240307\n",
    ));
    let (reply, rec) = ask(&r).await.unwrap();
    assert_eq!((reply.text.as_str(), rec.attempts), ("stub answer", 2));
    assert!(rec.notes[0].contains("overloaded"), "{:?}", rec.notes);
}

// §6 #14: slow first token: the attempt is abandoned at the first-token budget, then fallback.
#[tokio::test]
async fn slow_first_token_times_out_and_falls_back() {
    let (ollama, oa) = two_stubs().await;
    ollama.set_default(OCHAT, Step::Answer(Answer::new("late").delay_first(3000)));
    let y = ollama_with(
        &fallback_yaml(&ollama, &oa),
        "timeouts: {first_token_s: 0.2}, retry: {max_attempts: 1},",
    );
    let r = router(&y);
    let started = Instant::now();
    let (_, rec) = ask(&r).await.unwrap();
    let el = started.elapsed();
    assert_eq!(rec.provider, "oa");
    assert_eq!(rec.failures[0].kind, FailureKind::Timeout);
    assert!(
        rec.failures[0].error.contains("no first token"),
        "{:?}",
        rec.failures
    );
    assert!(
        el >= Duration::from_millis(190) && el < Duration::from_millis(2500),
        "{el:?}"
    );
}

// §6 #14 (no headers at all) and #21 (total budget exceeded while streaming).
#[tokio::test]
async fn no_headers_and_total_budget_time_out() {
    let (ollama, oa) = two_stubs().await;
    ollama.script(OCHAT, [Step::Answer(Answer::new("x").delay_headers(3000))]);
    ollama.script(
        OCHAT,
        [Step::Answer(
            Answer::new("a long answer that keeps coming").delay_between(100),
        )],
    );
    let y = ollama_with(
        &yaml(
            &ollama.url(),
            &oa.url(),
            "",
            "  answer: ollama:qwen2.5:7b\n",
        ),
        "timeouts: {first_token_s: 0.2, total_s: 0.4}, retry: {max_attempts: 1},",
    );
    let r = router(&y);
    let started = Instant::now();
    let err = ask(&r).await.unwrap_err();
    assert!(err.failures[0].contains("no response headers"), "{err}");
    let err = ask(&r).await.unwrap_err();
    assert!(err.failures[0].contains("timeout"), "{err}");
    assert!(
        err.failures[0].contains("not finished") || err.failures[0].contains("not complete"),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(3));
}

// §6 #16: a stream cut before its end marker is never a success; retried in full.
#[tokio::test]
async fn cut_streams_are_detected_in_every_protocol() {
    let stubs = Stubs::start().await;
    for (stub, target) in stubs.each() {
        stub.script(
            stub.chat_path(),
            [Step::Answer(
                Answer::new("partial answer text").cut_after(2),
            )],
        );
        stub.script(stub.chat_path(), [Step::answer("complete answer")]);
        let r = router(&stubs.only(target));
        let (reply, rec) = ask(&r).await.unwrap();
        assert_eq!(reply.text, "complete answer", "{target}");
        assert_eq!(rec.attempts, 2, "{target}");
        assert!(rec.notes[0].contains("stream"), "{target}: {:?}", rec.notes);
    }
}

// §6 #17: an error inside a 200 stream is classified by its body and retried.
#[tokio::test]
async fn error_lines_inside_200_streams_are_failures() {
    let stubs = Stubs::start().await;
    let kinds = ["server error", "server error", "overloaded"];
    for ((stub, target), kind) in stubs.each().into_iter().zip(kinds) {
        stub.script(
            stub.chat_path(),
            [Step::Answer(Answer::new("partial answer").error_after(1))],
        );
        let r = router(&stubs.only(target));
        let (reply, rec) = ask(&r).await.unwrap();
        assert_eq!(reply.text, "stub answer", "{target}");
        assert_eq!(rec.attempts, 2, "{target}");
        assert!(
            rec.notes[0].contains(kind) && rec.notes[0].contains("200 stream"),
            "{target}: {:?}",
            rec.notes
        );
    }
}

fn schema() -> serde_json::Value {
    json!({"type": "object", "properties": {"status": {"type": "string", "enum": ["Yes", "No"]}},
           "required": ["status"], "additionalProperties": false})
}

// §6 #18: invalid structured output: one repair re-prompt on the same target, then fallback.
#[tokio::test]
async fn malformed_json_gets_one_repair_then_falls_back() {
    let (ollama, oa) = two_stubs().await;
    ollama.script(
        OCHAT,
        [
            Step::answer("Sure! {\"status\": \"Yes\"}"),
            Step::answer("{\"status\": \"Yes\"}"),
        ],
    );
    ollama.set_default(OCHAT, Step::answer("{\"status\": \"Maybe\"}"));
    oa.set_default(ACHAT, Step::answer("{\"status\": \"No\"}"));
    let r = fallback_router(&ollama, &oa);
    let s = schema();
    // Repaired on the same target.
    let (reply, rec) = r.chat(Task::Answer, &msgs(), Some(&s)).await.unwrap();
    assert_eq!(
        (reply.text.as_str(), rec.provider.as_str(), rec.repairs),
        ("{\"status\": \"Yes\"}", "ollama", 1)
    );
    let repair = &ollama.requests()[1].body;
    assert_eq!(repair["messages"][1]["role"], "assistant");
    assert!(
        repair["messages"][2]["content"]
            .as_str()
            .unwrap()
            .contains("not JSON")
    );
    // Still invalid after the repair (enum value outside the set): next target.
    let (reply, rec) = r.chat(Task::Answer, &msgs(), Some(&s)).await.unwrap();
    assert_eq!(
        (reply.text.as_str(), rec.provider.as_str()),
        ("{\"status\": \"No\"}", "oa")
    );
    assert_eq!(rec.failures[0].kind, FailureKind::InvalidOutput);
    assert!(
        rec.failures[0].error.contains("not one of"),
        "{:?}",
        rec.failures
    );
    assert_eq!(ollama.hits(OCHAT), 4);
    assert_eq!(breaker(&r, "ollama:qwen2.5:7b").consecutive_failures, 0);
}

// §6 #5: silent truncation (prompt_eval_count == num_ctx) is a context-window failure, and an
// oversize prompt skips a target whose window is too small without sending anything.
#[tokio::test]
async fn context_truncation_and_preflight_use_the_next_target() {
    let (ollama, oa) = two_stubs().await;
    ollama.set_default(
        OCHAT,
        Step::Answer(Answer::new("truncated answer").prompt_tokens(4096)),
    );
    let r = fallback_router(&ollama, &oa);
    let (_, rec) = ask(&r).await.unwrap();
    assert_eq!(rec.provider, "oa");
    assert_eq!(rec.failures[0].kind, FailureKind::ContextWindow);
    assert_eq!(ollama.hits(OCHAT), 1, "no retry on the same target");
    assert_eq!(ollama.requests()[0].body["options"]["num_ctx"], 4096);
    assert_eq!(breaker(&r, "ollama:qwen2.5:7b").consecutive_failures, 0);

    let big = vec![ChatMessage::user("word ".repeat(4000))];
    let (_, rec) = r.chat(Task::Answer, &big, None).await.unwrap();
    assert_eq!(rec.provider, "oa");
    assert_eq!(rec.failures[0].kind, FailureKind::ContextWindow);
    assert_eq!(rec.failures[0].attempts, 0);
    assert_eq!(ollama.hits(OCHAT), 1, "preflight sends nothing");
}

// §6 #26: single-target task: the breaker opens, cooldowns grow on a failed probe, and only a
// successful probe reopens traffic.
#[tokio::test]
async fn cooldown_expiry_needs_a_successful_probe_even_for_a_single_target() {
    let ollama = LlmStub::start(Proto::Ollama).await;
    ollama.set_default(OCHAT, ollama_error(500, "boom"));
    ollama.set_default("/api/tags", ollama_error(500, "still broken"));
    let y = ollama_with(
        &yaml(&ollama.url(), NO_OA, "", "  answer: ollama:qwen2.5:7b\n"),
        "retry: {max_attempts: 1}, cooldown: {consecutive_failures: 2, initial_s: 0.3, max_s: 30},",
    );
    let r = router(&y);
    for _ in 0..2 {
        ask(&r).await.unwrap_err();
    }
    assert_eq!(breaker(&r, "ollama:qwen2.5:7b").state, BreakerState::Open);
    let err = ask(&r).await.unwrap_err();
    assert_eq!(ollama.hits(OCHAT), 2, "open breaker: no request");
    assert!(
        err.retry_in
            .is_some_and(|d| d <= Duration::from_millis(300)),
        "{err:?}"
    );

    // Cooldown over, probe fails: still no chat request, and the next period is longer.
    tokio::time::sleep(Duration::from_millis(350)).await;
    ask(&r).await.unwrap_err();
    assert_eq!((ollama.hits(OCHAT), ollama.hits("/api/tags")), (2, 1));
    let b = breaker(&r, "ollama:qwen2.5:7b");
    assert_eq!((b.state, b.trips), (BreakerState::Open, 2));
    assert!(b.open_for_ms > 300, "second period is longer: {b:?}");

    // Healthy again: after the (longer) cooldown the probe passes and the call goes through.
    ollama.set_default(
        "/api/tags",
        Step::status(200, json!({"models": [{"name": "qwen2.5:7b"}]})),
    );
    ollama.set_default(OCHAT, Step::answer("back"));
    tokio::time::sleep(Duration::from_millis(650)).await;
    let (reply, _) = ask(&r).await.unwrap();
    assert_eq!(reply.text, "back");
    assert_eq!(breaker(&r, "ollama:qwen2.5:7b").state, BreakerState::Closed);
}

// data_policy local_only: cloud targets are never contacted.
#[tokio::test]
async fn local_only_never_contacts_a_cloud_provider() {
    let ollama = LlmStub::start(Proto::Ollama).await;
    let an = LlmStub::start(Proto::Anthropic).await;
    let extra = anthropic_at(&an);
    let y = format!(
        "data_policy: local_only\n{}",
        yaml(
            &ollama.url(),
            NO_OA,
            &extra,
            "  answer: an:claude-3-haiku-20240307\nfallback_strategy:\n  answer: [ollama:qwen2.5:7b]\n"
        )
    );
    let r = router(&y);
    let (_, rec) = ask(&r).await.unwrap();
    assert_eq!(rec.provider, "ollama");
    assert!(rec.skipped[0].contains("local_only"), "{:?}", rec.skipped);
    assert!(
        an.requests().is_empty(),
        "nothing at all was sent to the cloud provider"
    );
}

// §6 #24: embeddings fail clearly instead of using another model; bad batches are rejected.
#[tokio::test]
async fn embeddings_fail_clearly_and_bad_batches_are_rejected() {
    let ollama = LlmStub::start(Proto::Ollama).await;
    let y = yaml(&ollama.url(), NO_OA, "", "  answer: ollama:qwen2.5:7b\n").replace(
        "embed: embedded:all-minilm-l6-v2",
        "embed: ollama:all-minilm",
    );
    let r = router(&y);
    let (v, rec) = r.embed(&["a".into(), "b".into()]).await.unwrap();
    assert_eq!(
        (v.len(), v[0].len(), rec.model.as_str()),
        (2, 4, "all-minilm")
    );
    assert_eq!(ollama.requests()[0].body["input"], json!(["a", "b"]));

    ollama.set_default(
        "/api/embed",
        Step::status(
            200,
            json!({"model": "all-minilm", "embeddings": [[0.6, 0.8]]}),
        ),
    );
    let err = r.embed(&["a".into(), "b".into()]).await.unwrap_err();
    assert!(
        err.to_string().contains("asked for 2 embeddings, got 1"),
        "{err}"
    );
    assert_eq!(err.details.len(), 1, "no other embedding model is tried");
}

// §6 #2: a connect that never completes fails after connect_s and is handled like #1: one fast
// retry, breaker open at once, fallback, later calls skip the target without connecting.
#[tokio::test]
async fn connect_timeout_to_a_blackhole_opens_the_breaker_and_falls_back() {
    let hole = Blackhole::start();
    let oa = LlmStub::start(Proto::OpenAi).await;
    let y = ollama_with(
        &yaml(&format!("http://{}", hole.addr), &oa.url(), "", TWO),
        "timeouts: {connect_s: 0.3},",
    );
    let r = router(&y);
    let started = Instant::now();
    let (reply, rec) = ask(&r).await.unwrap();
    let el = started.elapsed();
    assert_eq!(
        (reply.text.as_str(), rec.provider.as_str()),
        ("stub answer", "oa")
    );
    assert_eq!(
        rec.failures[0].kind,
        FailureKind::ConnectError,
        "{:?}",
        rec.failures
    );
    assert_eq!(rec.failures[0].attempts, 2, "one fast retry only");
    // Two connect timeouts of 0.3 s (not the 3 s first-token budget), then the fallback.
    assert!(
        el >= Duration::from_millis(550) && el < Duration::from_secs(4),
        "{el:?}"
    );
    assert_eq!(breaker(&r, "ollama:qwen2.5:7b").state, BreakerState::Open);
    let (_, rec) = ask(&r).await.unwrap();
    first_failure(&rec, FailureKind::CircuitOpen, 0);
}

// §6 #8: Ollama 500 out of memory: not retried, breaker open at once for the longest cooldown,
// fallback, and the message says what to change.
#[tokio::test]
async fn out_of_memory_is_not_retried_and_cools_down_long_with_a_hint() {
    let (ollama, oa) = two_stubs().await;
    ollama.set_default(
        OCHAT,
        ollama_error(
            500,
            "model requires more system memory (5.2 GiB) than is available (1.0 GiB)",
        ),
    );
    let r = fallback_router(&ollama, &oa);
    let (_, rec) = ask(&r).await.unwrap();
    assert_eq!(rec.provider, "oa");
    assert_eq!(ollama.hits(OCHAT), 1, "OOM is never retried");
    let f = first_failure(&rec, FailureKind::OutOfMemory, 1);
    assert!(
        f.error.contains("5.2 GiB")
            && f.error.contains("num_ctx")
            && f.error.contains("OLLAMA_NUM_PARALLEL"),
        "{}",
        f.error
    );
    let b = breaker(&r, "ollama:qwen2.5:7b");
    assert_eq!(b.state, BreakerState::Open);
    // cooldown.max_s is 30 s; a normal first trip would be 0.3 s.
    assert!(b.open_for_ms > 20_000, "{b:?}");
    let (_, rec) = ask(&r).await.unwrap();
    assert_eq!(rec.failures[0].kind, FailureKind::CircuitOpen);
    assert_eq!(ollama.hits(OCHAT), 1);
}

fn loading() -> Step {
    Step::status(
        503,
        json!({"error": {"code": 503, "message": "Loading model", "type": "unavailable_error"}}),
    )
}

/// `oa` (and `ollama`) open their breaker after a single failed call.
fn touchy(y: &str) -> String {
    let c = "cooldown: {consecutive_failures: 1, initial_s: 0.3, max_s: 30},";
    ollama_with(
        &y.replace("oa: {kind: openai,", &format!("oa: {{kind: openai, {c}")),
        c,
    )
}

// §6 #10: 503 "Loading model" (llama.cpp) is transient: retried with backoff, and it never opens
// the breaker, even when it outlasts the retries.
#[tokio::test]
async fn loading_model_is_retried_and_never_opens_the_breaker() {
    let (ollama, oa) = two_stubs().await;
    oa.script(ACHAT, [loading(), loading()]);
    let y = touchy(&yaml(&ollama.url(), &oa.url(), "", OA_FIRST));
    let r = router(&y);
    let started = Instant::now();
    let (reply, rec) = ask(&r).await.unwrap();
    assert_eq!(
        (reply.text.as_str(), rec.provider.as_str(), rec.attempts),
        ("stub answer", "oa", 3)
    );
    assert!(rec.notes[0].contains("server starting"), "{:?}", rec.notes);
    // Backoff 20 ms then 40 ms was waited.
    assert!(started.elapsed() >= Duration::from_millis(55));
    let (a, b, c) = (
        oa.requests()[0].at,
        oa.requests()[1].at,
        oa.requests()[2].at,
    );
    assert!(b - a >= Duration::from_millis(15) && c - b >= Duration::from_millis(35));

    // Still loading after every retry: fall back, but the breaker stays closed.
    oa.set_default(ACHAT, loading());
    for round in 1..=2 {
        let (_, rec) = ask(&r).await.unwrap();
        assert_eq!(rec.provider, "ollama");
        first_failure(&rec, FailureKind::Starting, 3);
        assert_eq!(oa.hits(ACHAT), 3 + 3 * round);
    }
    assert_closed_and_clean(&r, "oa:gpt-4o-mini");
}

// §6 #15: tokens arrive, then a gap longer than idle_s: the attempt is abandoned, the partial
// output discarded, and the request retried (every protocol's stream reader), then falls back.
#[tokio::test]
async fn an_idle_gap_after_the_first_token_aborts_and_retries() {
    let stubs = Stubs::start().await;
    let Stubs { ollama, .. } = &stubs;
    let stall = || Step::Answer(Answer::new("partial then a stall").delay_between(2000));
    let with_idle = |y: String| {
        y.replace(
            "defaults:\n  timeouts: {connect_s: 1,",
            "defaults:\n  timeouts: {idle_s: 0.2, connect_s: 1,",
        )
    };
    for (stub, target) in stubs.each() {
        stub.script(stub.chat_path(), [stall(), Step::answer("complete answer")]);
        let r = router(&with_idle(stubs.only(target)));
        let started = Instant::now();
        let (reply, rec) = ask(&r).await.unwrap();
        assert_eq!(reply.text, "complete answer", "{target}");
        assert_eq!(rec.attempts, 2, "{target}");
        assert!(
            rec.notes[0].contains("timeout") && rec.notes[0].contains("idle"),
            "{target}: {:?}",
            rec.notes
        );
        // Far below the 2 s gap and the 3 s first-token / 6 s total budgets.
        assert!(started.elapsed() < Duration::from_millis(1800), "{target}");
    }

    // Stalls on every attempt: all 3 attempts abandoned, then the next target answers.
    ollama.set_default(OCHAT, stall());
    let r = router(&with_idle(stubs.yaml(TWO)));
    let before = ollama.hits(OCHAT);
    let (reply, rec) = ask(&r).await.unwrap();
    assert_eq!(
        (reply.text.as_str(), rec.provider.as_str()),
        ("stub answer", "oa")
    );
    let f = first_failure(&rec, FailureKind::Timeout, 3);
    assert_eq!(ollama.hits(OCHAT) - before, 3);
    assert!(f.error.contains("idle_s"), "{}", f.error);
}

// §6 #19: structured output cut off at max_tokens (Ollama done_reason length, OpenAI
// finish_reason length, Anthropic stop_reason max_tokens) is asked again once on the same target
// with twice the max_tokens; cut off again, the next target answers.
#[tokio::test]
async fn truncated_output_is_retried_once_with_more_tokens_then_falls_back() {
    let stubs = Stubs::start().await;
    let Stubs { ollama, oa, .. } = &stubs;
    let s = schema();
    let limits = [
        ("length", "/options/num_predict"),
        ("length", "/max_tokens"),
        ("max_tokens", "/max_tokens"),
    ];
    for ((stub, target), (reason, field)) in stubs.each().into_iter().zip(limits) {
        let cut = || Step::Answer(Answer::new("{\"status\": \"Ye").done_reason(reason));
        stub.script(
            stub.chat_path(),
            [cut(), Step::answer("{\"status\": \"Yes\"}")],
        );
        let r = router(&stubs.only(target));
        let (reply, rec) = r.chat(Task::Answer, &msgs(), Some(&s)).await.unwrap();
        assert_eq!(reply.text, "{\"status\": \"Yes\"}", "{target}");
        assert_eq!((rec.attempts, rec.repairs), (2, 0), "{target}");
        let reqs = stub.requests();
        let n = reqs.len();
        assert_eq!(
            reqs[n - 2].body.pointer(field),
            Some(&json!(128)),
            "{target}"
        );
        assert_eq!(
            reqs[n - 1].body.pointer(field),
            Some(&json!(256)),
            "{target}"
        );
        assert!(rec.notes[0].contains("max_tokens"), "{:?}", rec.notes);
    }

    // Cut off twice: Truncated, next target, no breaker penalty.
    ollama.set_default(
        OCHAT,
        Step::Answer(Answer::new("{\"status\": \"Ye").done_reason("length")),
    );
    oa.set_default(ACHAT, Step::answer("{\"status\": \"No\"}"));
    let r = router(&touchy(&fallback_yaml(ollama, oa)));
    let before = ollama.hits(OCHAT);
    let (reply, rec) = r.chat(Task::Answer, &msgs(), Some(&s)).await.unwrap();
    assert_eq!(
        (reply.text.as_str(), rec.provider.as_str()),
        ("{\"status\": \"No\"}", "oa")
    );
    first_failure(&rec, FailureKind::Truncated, 2);
    assert_eq!(ollama.hits(OCHAT) - before, 2);
    assert_eq!(
        ollama.requests().last().unwrap().body["options"]["num_predict"],
        256
    );
    assert_closed_and_clean(&r, "ollama:qwen2.5:7b");
}

// §6 #20: an OpenAI refusal, a content_filter stop and an empty reply are `refused`: no retry,
// fallback, no breaker penalty (the breakers here open after one counted failure).
#[tokio::test]
async fn refusals_and_empty_output_fall_back_without_breaker_penalty() {
    let (ollama, oa) = two_stubs().await;
    let r = router(&touchy(&yaml(&ollama.url(), &oa.url(), "", OA_FIRST)));
    oa.script(
        ACHAT,
        [
            openai_refusal("I'm sorry, I cannot assist with that request."),
            Step::Answer(Answer::new("").done_reason("content_filter")),
        ],
    );
    for why in ["cannot assist", "content filter"] {
        let (reply, rec) = ask(&r).await.unwrap();
        assert_eq!(
            (reply.text.as_str(), rec.provider.as_str()),
            ("stub answer", "ollama")
        );
        let f = first_failure(&rec, FailureKind::Refused, 1);
        assert!(f.error.contains(why), "{}", f.error);
    }
    assert_eq!(oa.hits(ACHAT), 2);
    assert_closed_and_clean(&r, "oa:gpt-4o-mini");

    // Empty content from Ollama.
    ollama.script(OCHAT, [Step::answer("")]);
    let r = router(&touchy(&fallback_yaml(&ollama, &oa)));
    let (_, rec) = ask(&r).await.unwrap();
    assert_eq!(rec.provider, "oa");
    let f = first_failure(&rec, FailureKind::Refused, 1);
    assert!(f.error.contains("empty output"), "{}", f.error);
    assert_eq!(breaker(&r, "ollama:qwen2.5:7b").state, BreakerState::Closed);
}

// §6 #23: dropping the router future mid-request closes the connection (the server sees it, like
// Ollama's 499), releases the concurrency permit, and nothing is retried afterwards.
#[tokio::test]
async fn cancelled_calls_close_the_connection_and_release_the_permit() {
    let ollama = LlmStub::start(Proto::Ollama).await;
    ollama.script(OCHAT, [Step::Answer(Answer::new("slow").delay_first(5000))]);
    // max_concurrency 1 (the default): a leaked permit would block every later call.
    let r = router(&yaml(
        &ollama.url(),
        NO_OA,
        "",
        "  answer: ollama:qwen2.5:7b\n",
    ));
    let cancelled = tokio::time::timeout(Duration::from_millis(300), ask(&r)).await;
    assert!(cancelled.is_err(), "the slow call was still running");
    let t = Instant::now();
    while ollama.disconnects() == 0 && t.elapsed() < Duration::from_secs(3) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(ollama.disconnects(), 1, "the stub saw the connection close");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(ollama.hits(OCHAT), 1, "no retry after the cancel");

    let started = Instant::now();
    let (reply, rec) = tokio::time::timeout(Duration::from_secs(3), ask(&r))
        .await
        .expect("the permit of the cancelled call was released")
        .unwrap();
    assert_eq!((reply.text.as_str(), rec.attempts), ("stub answer", 1));
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(ollama.hits(OCHAT), 2);
    assert_eq!(breaker(&r, "ollama:qwen2.5:7b").consecutive_failures, 0);
}

fn config_error(y: &str) -> String {
    RouterConfig::parse(y, Path::new("bad.yaml"))
        .expect_err("config rejected")
        .to_string()
}

const CFG_HEAD: &str = "providers:
  ollama: {kind: ollama, base_url: 'http://127.0.0.1:11434'}
  embedded: {kind: embedded}
models:
  'ollama:qwen2.5:7b': {capabilities: [chat, json_schema], num_ctx: 4096}
  'ollama:tinyllama': {capabilities: [chat], num_ctx: 2048}
  'ollama:tinyllama:latest': {capabilities: [chat], num_ctx: NCTX}
task_models:
  embed: embedded:all-minilm-l6-v2
";

// §6 #27: structured output on a model without json_schema, and one Ollama model with two
// num_ctx values, are rejected at load with the line. (num_ctx is set per model, not per task,
// so two tasks cannot ask for different values of one model key; the remaining ways, an alias
// key `x` / `x:latest`, a duplicate key, num_ctx under task_parameters, are all rejected.)
#[test]
fn config_errors_name_the_line() {
    let base = CFG_HEAD.replace("NCTX", "2048");
    // answer (line 10) needs structured output.
    let e = config_error(&format!(
        "{base}  classify: ollama:qwen2.5:7b\n  answer: ollama:tinyllama\n"
    ));
    assert!(
        e.contains("line 11") && e.contains("json_schema") && e.contains("ollama:tinyllama"),
        "{e}"
    );
    // So does any task with an output_schema.
    let e = config_error(&format!(
        "{base}  classify: ollama:tinyllama\n  answer: ollama:qwen2.5:7b\n\
         task_parameters:\n  classify: {{output_schema: {{type: object}}}}\n"
    ));
    assert!(e.contains("line 10") && e.contains("json_schema"), "{e}");
    // Without output_schema classify may use it.
    let ok = format!("{base}  classify: ollama:tinyllama\n  answer: ollama:qwen2.5:7b\n");
    RouterConfig::parse(&ok, Path::new("ok.yaml")).unwrap();

    // Two tasks on one Ollama model (`tinyllama` = `tinyllama:latest`) with different num_ctx.
    let e = config_error(
        &(CFG_HEAD.replace("NCTX", "8192")
            + "  classify: ollama:tinyllama\n  answer: ollama:qwen2.5:7b\n  relevance: ollama:tinyllama:latest\n"),
    );
    assert!(
        e.contains("line 7") && e.contains("num_ctx") && e.contains("2048"),
        "{e}"
    );
    // A duplicate key and a per-task num_ctx are rejected too.
    let e = config_error(&format!(
        "{base}  classify: ollama:qwen2.5:7b\n  answer: ollama:qwen2.5:7b\n  answer: ollama:tinyllama\n"
    ));
    assert!(e.to_lowercase().contains("duplicate"), "{e}");
    let e = config_error(&format!(
        "{base}  classify: ollama:qwen2.5:7b\n  answer: ollama:qwen2.5:7b\n\
         task_parameters:\n  answer: {{num_ctx: 8192}}\n"
    ));
    assert!(e.contains("num_ctx") && e.contains("line 13"), "{e}");
}
