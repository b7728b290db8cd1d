//! Real-model tests for the embedded SmolLM2 chat and MiniLM embedder (no mocks); they fail, not skip, without the model files.

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Instant;

use rfpq::models::{default_model_dir, minilm_dir, smollm2_gguf};
use rfpq::router::embedded::{
    EmbeddedChat, EmbeddedCompletion, EmbeddedEmbedder, EmbeddedError, EmbeddedRequest,
    load_gguf_tokenizer,
};
use rfpq::router::types::ChatMessage;
use serde_json::{Value, json};

const SETUP_HINT: &str =
    "model files missing: run scripts/setup.sh (or set RFPQ_MODEL_DIR to the unpacked models)";

fn gguf_path() -> PathBuf {
    smollm2_gguf(&default_model_dir())
}

/// One loaded model per test binary; tests work on cheap forks (shared weights, own KV cache).
fn base_chat() -> &'static EmbeddedChat {
    static CHAT: OnceLock<EmbeddedChat> = OnceLock::new();
    CHAT.get_or_init(|| {
        let path = gguf_path();
        let started = Instant::now();
        let chat = EmbeddedChat::load(&path)
            .unwrap_or_else(|e| panic!("{SETUP_HINT}\ncannot load {}: {e}", path.display()));
        eprintln!("SmolLM2 loaded in {:?}", started.elapsed());
        chat
    })
}

fn embedder() -> &'static EmbeddedEmbedder {
    static EMB: OnceLock<EmbeddedEmbedder> = OnceLock::new();
    EMB.get_or_init(|| {
        let dir = minilm_dir(&default_model_dir());
        let started = Instant::now();
        let emb = EmbeddedEmbedder::load(&dir)
            .unwrap_or_else(|e| panic!("{SETUP_HINT}\ncannot load {}: {e}", dir.display()));
        eprintln!("MiniLM loaded in {:?}", started.elapsed());
        emb
    })
}

fn answer_schema() -> Value {
    json!({"type":"object","properties":{
        "choice":{"type":"string","enum":["Yes","No","N/A"]},
        "explanation":{"type":"string","maxLength":300}},
        "required":["choice","explanation"]})
}

const SYSTEM: &str = "You answer security questionnaires for Acme Cloud. Use only the provided context. \
Reply with JSON: choice is Yes, No or N/A; explanation is one short sentence.";

fn question(q: &str) -> Vec<ChatMessage> {
    vec![
        ChatMessage::system(SYSTEM),
        ChatMessage::user(format!(
            "Context: Acme Cloud stores all customer data in AES-256 encrypted databases in two EU regions. \
             Access requires SSO with multi-factor authentication and is reviewed every quarter.\n\nQuestion: {q}"
        )),
    ]
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[test]
fn minilm_reproduces_published_similarities() {
    let emb = embedder();
    let texts: Vec<String> = [
        "The new movie is awesome",
        "The new movie is so great",
        "A man is playing guitar",
        "A woman watches TV",
    ]
    .map(String::from)
    .to_vec();
    let v = emb.embed(&texts).expect("embed");
    let movie = cosine(&v[0], &v[1]);
    let unrelated = cosine(&v[2], &v[3]);
    assert_eq!(format!("{movie:.3}"), "0.894", "movie pair cosine {movie}");
    assert_eq!(
        format!("{unrelated:.3}"),
        "-0.033",
        "guitar/TV cosine {unrelated}"
    );
}

#[test]
fn minilm_vectors_are_unit_and_batch_independent() {
    let emb = embedder();
    assert_eq!(emb.model_name(), "all-minilm-l6-v2");
    assert_eq!(emb.dimensions(), 384);
    // 40 texts of varied length (before texts were grouped by length, the shorter ones were
    // padded, which changed their vectors' last bits).
    let texts: Vec<String> = (0..40)
        .map(|i| {
            format!(
                "Question {i}: do you {} encrypt backups at rest?",
                "really ".repeat(i % 7)
            )
        })
        .collect();
    let started = Instant::now();
    let batch = emb.embed(&texts).expect("embed batch");
    eprintln!("embedded 40 texts in {:?}", started.elapsed());
    assert_eq!(batch.len(), 40);
    for (i, text) in texts.iter().enumerate().step_by(7) {
        let single = emb.embed(std::slice::from_ref(text)).expect("embed single");
        assert_eq!(single[0].len(), 384);
        let norm: f32 = single[0].iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "norm {norm}");
        // Bit for bit: a vector never depends on the texts embedded beside it.
        assert!(single[0] == batch[i], "text {i}: batch vs single differ");
    }
    // Texts of one token length share a forward pass; each still gets its own vector.
    let same_len = [
        "The cat sat on the mat.",
        "The dog sat on the rug.",
        "A man ran to the car.",
    ];
    let same_len: Vec<String> = same_len.iter().map(|s| s.to_string()).collect();
    let together = emb.embed(&same_len).expect("embed");
    for (text, v) in same_len.iter().zip(&together) {
        assert!(
            emb.embed(std::slice::from_ref(text)).unwrap()[0] == *v,
            "{text}"
        );
    }
    assert!(together[0] != together[1]);
    assert!(emb.embed(&[]).expect("empty").is_empty());
}

#[test]
fn smollm_tokenizer_matches_reference_ids_and_round_trips() {
    let chat = base_chat();
    assert_eq!(
        chat.tokenize("<|im_start|>system\n").unwrap(),
        vec![1, 9690, 198]
    );
    assert_eq!(
        chat.tokenize("Hello").unwrap(),
        vec![19556],
        "no prefix space (ĠHello would be 38699)"
    );
    let s = "Mixed: 12345 digits, punctuation!?; accents ça, naïve, Ünïcödé — CJK 你好世界, emoji 🙂 and\ttabs\n";
    let ids = chat.tokenize(s).unwrap();
    assert_eq!(chat.detokenize(&ids).unwrap(), s);
    // Digits are split one by one (SmolLM2 pre-tokenizer).
    let digits = chat.tokenize("2024").unwrap();
    assert_eq!(digits.len(), 4);
    // The standalone loader builds the same tokenizer.
    let tok = load_gguf_tokenizer(&gguf_path()).unwrap();
    assert_eq!(tok.encode(s, false).unwrap().get_ids(), ids.as_slice());
}

fn constrained(chat: &mut EmbeddedChat, q: &str) -> EmbeddedCompletion {
    let msgs = question(q);
    let schema = answer_schema();
    let req = EmbeddedRequest {
        messages: &msgs,
        max_tokens: 96,
        json_schema: Some(&schema),
    };
    chat.complete(&req).expect("complete")
}

fn check_answer(text: &str) -> (String, String) {
    let v: Value = serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
    let obj = v.as_object().expect("object");
    assert_eq!(obj.len(), 2, "{text}");
    let choice = obj["choice"]
        .as_str()
        .expect("choice is a string")
        .to_string();
    assert!(["Yes", "No", "N/A"].contains(&choice.as_str()), "{text}");
    let explanation = obj["explanation"]
        .as_str()
        .expect("explanation is a string")
        .to_string();
    assert!(explanation.chars().count() <= 300);
    (choice, explanation)
}

#[test]
fn constrained_completion_satisfies_the_schema() {
    let mut chat = base_chat().fork();
    assert_eq!(chat.model_name(), "smollm2-135m-instruct");
    assert_eq!(chat.context_length(), 8192);
    let started = Instant::now();
    let c = constrained(&mut chat, "Is customer data encrypted at rest?");
    let elapsed = started.elapsed();
    eprintln!(
        "constrained answer in {elapsed:?}: prompt {} tokens, {} answer tokens: {}",
        c.prompt_tokens, c.eval_tokens, c.text
    );
    let (_, explanation) = check_answer(&c.text);
    assert!(!explanation.is_empty());
    assert!(!c.truncated);
    assert!(c.prompt_tokens > 50 && c.eval_tokens > 5);

    // Other shapes of the subset: const, number, integer, minLength 1, tiny budget.
    let schema = json!({"type":"object","properties":{
        "kind":{"const":"answer"},
        "score":{"type":"number"},
        "count":{"type":"integer"},
        "note":{"type":"string","minLength":1,"maxLength":20}},
        "required":["kind","note","score","count"]});
    let msgs = vec![ChatMessage::user(
        "Rate our encryption from 1 to 10 and count the regions (2).",
    )];
    for max_tokens in [0, 40] {
        let req = EmbeddedRequest {
            messages: &msgs,
            max_tokens,
            json_schema: Some(&schema),
        };
        let c = chat.complete(&req).expect("complete");
        let v: Value =
            serde_json::from_str(&c.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", c.text));
        assert_eq!(v["kind"], "answer");
        assert!(v["score"].is_number() && v["count"].is_i64(), "{}", c.text);
        let note = v["note"].as_str().unwrap();
        assert!((1..=20).contains(&note.chars().count()), "{}", c.text);
        assert!(
            c.text.starts_with("{\"kind\": \"answer\", \"note\": "),
            "required order: {}",
            c.text
        );
    }
}

#[test]
fn plain_completion_stops_and_counts() {
    let mut chat = base_chat().fork();
    let msgs = vec![ChatMessage::user(
        "What is the capital of France? Answer in one word.",
    )];
    let c = chat
        .complete(&EmbeddedRequest {
            messages: &msgs,
            max_tokens: 16,
            json_schema: None,
        })
        .unwrap();
    eprintln!("plain: {:?}", c.text);
    assert!(c.text.contains("Paris"), "{}", c.text);
    assert!(c.eval_tokens >= 1 && c.eval_tokens <= 16);
    let c = chat
        .complete(&EmbeddedRequest {
            messages: &msgs,
            max_tokens: 0,
            json_schema: None,
        })
        .unwrap();
    assert_eq!((c.text.as_str(), c.eval_tokens), ("", 0));
}

#[test]
fn prefix_reuse_gives_the_same_output_as_a_cold_instance() {
    let mut warm = base_chat().fork();
    let first = constrained(&mut warm, "Do you support multi-factor authentication?");
    check_answer(&first.text);
    assert_eq!(warm.last_reused_tokens(), 0);

    // Same system prompt and context, different question: resumes after the shared prefix.
    let started = Instant::now();
    let second = constrained(&mut warm, "Is data stored outside the EU?");
    let warm_time = started.elapsed();
    let reused = warm.last_reused_tokens();
    assert!(reused > 40, "reused only {reused} tokens");
    let mut cold = base_chat().fork();
    let started = Instant::now();
    let cold_second = constrained(&mut cold, "Is data stored outside the EU?");
    let cold_time = started.elapsed();
    eprintln!(
        "reused {reused}/{} prompt tokens: warm {warm_time:?}, cold {cold_time:?}",
        second.prompt_tokens
    );
    assert_eq!(second, cold_second);

    // Identical request again: everything but the last prompt token comes from the cache.
    let again = constrained(&mut warm, "Is data stored outside the EU?");
    assert_eq!(again, cold_second);
    assert_eq!(warm.last_reused_tokens(), again.prompt_tokens as usize);

    // A different system prompt gets its own snapshot; the first one is kept.
    let other = vec![
        ChatMessage::system("You are terse."),
        ChatMessage::user("Name a colour."),
    ];
    let req = EmbeddedRequest {
        messages: &other,
        max_tokens: 8,
        json_schema: None,
    };
    let plain_warm = warm.complete(&req).unwrap();
    let plain_cold = base_chat().fork().complete(&req).unwrap();
    assert_eq!(plain_warm, plain_cold);
    let back = constrained(&mut warm, "Is data stored outside the EU?");
    assert_eq!(back, cold_second);
    assert!(warm.last_reused_tokens() > 40);
}

#[test]
fn two_instances_run_on_two_threads() {
    let q = ["Do you encrypt backups?", "Do you review access quarterly?"];
    let sequential: Vec<String> = q
        .iter()
        .map(|q| constrained(&mut base_chat().fork(), q).text)
        .collect();
    let parallel: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = q
            .iter()
            .map(|q| {
                let mut chat = base_chat().fork();
                s.spawn(move || constrained(&mut chat, q).text)
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect()
    });
    assert_eq!(sequential, parallel);
}

#[test]
fn long_prompts_are_clamped_to_the_context() {
    let mut chat = base_chat().fork();
    chat.set_context_limit(256);
    assert_eq!(chat.context_length(), 256);
    let filler =
        "Our policies cover encryption, access control, logging and incident response. ".repeat(60);
    let msgs = vec![
        ChatMessage::system("Answer briefly."),
        ChatMessage::user(format!("{filler}\nQuestion: Do you log access?")),
    ];
    let schema = answer_schema();
    let req = EmbeddedRequest {
        messages: &msgs,
        max_tokens: 48,
        json_schema: Some(&schema),
    };
    let c = chat.complete(&req).expect("clamped completion");
    assert!(c.truncated);
    assert!(
        c.prompt_tokens as usize + 48 <= 256,
        "prompt {}",
        c.prompt_tokens
    );
    check_answer(&c.text);

    // Nothing left to cut (only a system message) is an error, not a silent truncation.
    let msgs = vec![ChatMessage::system(filler)];
    let err = chat
        .complete(&EmbeddedRequest {
            messages: &msgs,
            max_tokens: 8,
            json_schema: None,
        })
        .unwrap_err();
    assert!(
        matches!(err, EmbeddedError::ContextOverflow { .. }),
        "{err}"
    );
}

#[test]
fn unsupported_schema_and_bad_requests_are_errors() {
    let mut chat = base_chat().fork();
    let msgs = question("Anything?");
    let schema =
        json!({"type":"object","properties":{"items":{"type":"array","items":{"type":"string"}}}});
    let err = chat
        .complete(&EmbeddedRequest {
            messages: &msgs,
            max_tokens: 8,
            json_schema: Some(&schema),
        })
        .unwrap_err();
    assert!(matches!(err, EmbeddedError::UnsupportedSchema(_)), "{err}");
    assert!(err.to_string().contains("items"), "{err}");
    let err = chat
        .complete(&EmbeddedRequest {
            messages: &[],
            max_tokens: 8,
            json_schema: None,
        })
        .unwrap_err();
    assert!(matches!(err, EmbeddedError::InvalidRequest(_)), "{err}");
}

#[test]
fn missing_model_files_give_a_clear_error() {
    let missing = PathBuf::from("/nonexistent/rfpq-models/SmolLM2-135M-Instruct.Q4_1.gguf");
    let err = EmbeddedChat::load(&missing).err().expect("must fail");
    assert!(matches!(err, EmbeddedError::ModelNotFound { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains(&missing.display().to_string())
            && msg.contains("run scripts/setup.sh or set RFPQ_MODEL_DIR"),
        "{msg}"
    );

    let err = EmbeddedEmbedder::load(&PathBuf::from("/nonexistent/minilm"))
        .err()
        .expect("must fail");
    assert!(
        err.to_string().contains("/nonexistent/minilm/config.json")
            && err.to_string().contains("scripts/setup.sh"),
        "{err}"
    );
}

#[test]
fn public_types_are_thread_safe() {
    fn send<T: Send>() {}
    fn send_sync<T: Send + Sync>() {}
    send::<EmbeddedChat>();
    send_sync::<EmbeddedEmbedder>();
    send_sync::<EmbeddedError>();
}
