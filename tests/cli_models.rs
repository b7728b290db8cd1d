//! The operator commands against real HTTP: `rfpq ask --json` through a stub acting as Ollama,
//! `rfpq models check|pull|warm`, and `rfpq doctor --json` on this (GPU-less) machine.

mod common;

use common::llm_stub::{LlmStub, Proto, Step};
use serde_json::Value;

fn config(dir: &std::path::Path, ollama_url: &str) -> std::path::PathBuf {
    let yaml = format!(
        "providers:\n  ollama: {{kind: ollama, base_url: '{ollama_url}'}}\n  embedded: {{kind: embedded}}\n\
         task_models:\n  classify: ollama:qwen2.5:7b\n  answer: ollama:qwen2.5:7b\n  embed: embedded:all-minilm-l6-v2\n"
    );
    let path = dir.join("llm_models.yaml");
    std::fs::write(&path, yaml).unwrap();
    path
}

fn run(config: &std::path::Path, args: &[&str]) -> (i32, String, String) {
    let out = common::rfpq_command(&common::prefix("cli-models"))
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .expect("binary runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn ask_json_goes_through_the_stub_acting_as_ollama() {
    let stub = LlmStub::builder(Proto::Ollama)
        .models(&["qwen2.5:7b"])
        .start()
        .await;
    stub.set_default("/api/chat", Step::answer("Hello from the stub."));
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &stub.url());
    let (code, out, err) = run(&cfg, &["ask", "--task", "answer", "Say hello", "--json"]);
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).expect("JSON on stdout");
    let record = &v["record"];
    assert_eq!(record["provider"], "ollama", "{v}");
    assert_eq!(record["model"], "qwen2.5:7b");
    assert_eq!(record["attempts"], 1);
    assert_eq!(record["fallback_used"], false);
    assert!(v.to_string().contains("Hello from the stub."), "{v}");
    let sent = &stub.requests()[0].body;
    assert_eq!(sent["model"], "qwen2.5:7b");
    assert_eq!(
        sent["messages"].as_array().unwrap().last().unwrap()["content"],
        "Say hello"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn models_check_reports_missing_models_and_pull_fetches_them() {
    let stub = LlmStub::builder(Proto::Ollama)
        .models(&["llama3.2:3b"])
        .start()
        .await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &stub.url());

    let (code, out, _) = run(&cfg, &["models", "check", "--json"]);
    assert_eq!(code, 1, "a missing model fails the check: {out}");
    let v: Value = serde_json::from_str(&out).unwrap();
    let ollama = v["providers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["provider"] == "ollama")
        .unwrap();
    assert_eq!(ollama["reachable"], true);
    assert_eq!(ollama["missing"], serde_json::json!(["qwen2.5:7b"]));

    let (code, out, err) = run(&cfg, &["models", "pull"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("ollama:qwen2.5:7b: success"), "{out}");
    let pulled = stub
        .requests()
        .into_iter()
        .filter(|r| r.path == "/api/pull")
        .count();
    assert_eq!(pulled, 1);

    let (code, out, err) = run(&cfg, &["models", "warm", "--json"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("qwen2.5:7b"), "{out}");
}

#[test]
fn doctor_json_reads_the_machine_and_sizes_the_configured_models() {
    let out = common::rfpq_command(&common::prefix("cli-doctor"))
        .args(["doctor", "--json"])
        .output()
        .expect("binary runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert!(v["logical_cpus"].as_u64().unwrap() >= 1);
    assert!(v["memory_total_gib"].as_f64().unwrap() > 0.0);
    if v["gpus"].as_array().unwrap().is_empty() {
        assert!(v["summary"].as_str().unwrap().starts_with("no GPU"), "{v}");
    }
    let models = v["models"].as_array().unwrap();
    let qwen = models
        .iter()
        .find(|m| m["target"] == "ollama:qwen2.5:7b")
        .expect("the default config's answer model");
    assert_eq!(qwen["estimated_gib"], 4.5);
    let minilm = models
        .iter()
        .find(|m| m["target"] == "embedded:all-minilm-l6-v2")
        .unwrap();
    assert_eq!(minilm["fits"], "unknown");
}

#[test]
fn ask_json_works_against_the_real_embedded_model() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("embedded.yaml");
    std::fs::write(&cfg, common::embedded_only()).unwrap();
    let (code, out, err) = run(
        &cfg,
        &[
            "ask",
            "--task",
            "answer",
            "In one sentence: why encrypt backups?",
            "--json",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).expect("JSON on stdout");
    assert_eq!(v["record"]["provider"], "embedded", "{v}");
    assert_eq!(v["record"]["model"], "smollm2-135m-instruct");
    assert!(v["record"]["eval_tokens"].as_u64().unwrap() > 0, "{v}");
    assert!(v["record"]["prompt_tokens"].as_u64().unwrap() > 5, "{v}");
}
