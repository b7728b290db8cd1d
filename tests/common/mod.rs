//! Shared test helpers, compiled into every test binary (`mod common;`) and `benches/throughput`:
//! a real Redis URL, a unique key prefix per test, routers that use only the real embedded
//! models or an LLM stub, and small questionnaire workbooks built with rust_xlsxwriter.
//! Submodules: `llm_stub` (the protocol-faithful LLM server), `jobs` (queued jobs against it),
//! `cells` (reading answered workbooks), `synthetic` and `workbook_util` (the workbook tests'
//! synthetic layouts and raw zip access). Nothing here runs at load time: no statics, no
//! models loaded, no servers started until a test calls a function.
#![allow(dead_code)]

pub mod cells;
pub mod jobs;
pub mod llm_stub;
pub mod synthetic;
pub mod workbook_util;

// Re-exported so tests write `common::cell_text`, `common::stub_job`…; a test binary that uses
// none of them would otherwise warn.
#[allow(unused_imports)]
pub use cells::*;
#[allow(unused_imports)]
pub use jobs::*;

use rfpq::router::Router;
use rfpq::router::config::RouterConfig;
use rust_xlsxwriter::{DataValidation, Format, Workbook};
use std::path::Path;
use std::sync::Arc;

/// Redis the tests talk to (scripts/test.sh starts one when nothing answers).
pub fn redis_url() -> String {
    std::env::var("RFPQ_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// A key prefix no other test (or run) shares.
pub fn prefix(test: &str) -> String {
    format!("{{rfpq-test-{test}-{}}}", uuid::Uuid::now_v7().simple())
}

/// Router config using only the embedded models: `max_concurrency` instances of the embedded
/// provider, smollm2 for the chat tasks, all-MiniLM-L6-v2 for embeddings, and the
/// `task_parameters` lines given (indented YAML, one task a line).
pub fn embedded_yaml(max_concurrency: usize, task_parameters: &str) -> String {
    format!(
        "
providers:
  embedded: {{kind: embedded, max_concurrency: {max_concurrency}}}
task_models:
  classify: embedded:smollm2-135m-instruct
  answer: embedded:smollm2-135m-instruct
  embed: embedded:all-minilm-l6-v2
task_parameters:
{task_parameters}"
    )
}

/// Router config using only the embedded models (no accidental local Ollama in tests).
pub fn embedded_only() -> String {
    embedded_yaml(
        1,
        "  answer: {temperature: 0, max_tokens: 48, evidence_chars: 600}\n",
    )
}

pub fn embedded_router() -> Arc<Router> {
    let cfg = RouterConfig::parse(&embedded_only(), Path::new("test-config"))
        .expect("test config parses");
    Arc::new(Router::new(cfg).expect("router builds"))
}

/// A small questionnaire: header row 1 (ID, Question, Answer, Comments), questions from row 2,
/// a Yes/No/N/A dropdown on the answer column.
pub fn questionnaire(questions: &[&str]) -> Vec<u8> {
    let mut wb = Workbook::new();
    let ws = wb.add_worksheet();
    ws.set_name("Security").unwrap();
    let bold = Format::new().set_bold();
    for (c, h) in ["ID", "Question", "Answer", "Comments"].iter().enumerate() {
        ws.write_string_with_format(0, c as u16, *h, &bold).unwrap();
    }
    for (i, q) in questions.iter().enumerate() {
        let r = i as u32 + 1;
        ws.write_string(r, 0, format!("SEC-{:02}", i + 1)).unwrap();
        ws.write_string(r, 1, *q).unwrap();
    }
    let dv = DataValidation::new()
        .allow_list_strings(&["Yes", "No", "N/A"])
        .unwrap();
    ws.add_data_validation(1, 2, questions.len() as u32, 2, &dv)
        .unwrap();
    ws.set_column_width(1, 60).unwrap();
    wb.save_to_buffer().unwrap()
}

/// Ingest options that keep the embedding cache in memory (tests never share a cache file).
pub fn no_cache() -> rfpq::kb::IngestOptions {
    rfpq::kb::IngestOptions {
        embed_cache: None,
        ..Default::default()
    }
}

/// A tiny knowledge base on disk, built with the real embedding model.
pub async fn small_kb(router: &Router, dir: &Path) -> std::path::PathBuf {
    let docs = dir.join("docs");
    std::fs::create_dir_all(&docs).unwrap();
    std::fs::write(
        docs.join("security.md"),
        "# Encryption\n\nAll customer data is encrypted at rest with AES-256 and in transit with TLS 1.2 or newer.\n\n\
         # Access control\n\nMulti-factor authentication is enforced for every administrative account.\n\n\
         # Backups\n\nBackups run daily and are restored in a test every quarter.\n",
    )
    .unwrap();
    let kb = dir.join("kb");
    rfpq::kb::ingest(router, &[docs], &kb, &no_cache())
        .await
        .expect("ingest works");
    kb
}

/// The `rfpq` binary, pointed at the test Redis under `prefix`, and at a closed port for
/// Ollama so the embedded models answer.
pub fn rfpq_command(prefix: &str) -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_rfpq"));
    cmd.env("RFPQ_REDIS_URL", redis_url())
        .env("RFPQ_PREFIX", prefix)
        .env("RFPQ_OLLAMA_URL", "http://127.0.0.1:9");
    cmd
}

/// Deletes every key under `prefix` (the test's own namespace) from the test Redis.
pub async fn cleanup(prefix: &str) {
    let client = redis::Client::open(redis_url()).expect("redis url");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("redis reachable");
    // Glob-escape the hash-tag braces' neighbours: only `*?[]\` are special in MATCH.
    let pattern = format!("{}*", prefix.replace('[', "\\[").replace(']', "\\]"));
    let mut keys: Vec<String> = Vec::new();
    {
        let opts = redis::ScanOptions::default()
            .with_pattern(pattern)
            .with_count(1000);
        let mut iter = redis::AsyncCommands::scan_options::<String>(&mut conn, opts)
            .await
            .expect("scan");
        while let Some(key) = iter.next_item().await {
            keys.push(key.expect("scan"));
        }
    }
    for chunk in keys.chunks(1000) {
        let _: () = redis::cmd("DEL")
            .arg(chunk)
            .query_async(&mut conn)
            .await
            .expect("del");
    }
}

/// Router config: chat tasks go to an Ollama-protocol stub at `url`, embeddings to the real
/// all-MiniLM-L6-v2 (the KB's model); one attempt per call. `extra` is appended as is.
pub fn stub_chat_yaml(url: &str, extra: &str) -> String {
    format!(
        "defaults:\n  retry: {{max_attempts: 1}}\n\
         providers:\n  embedded: {{kind: embedded, max_concurrency: 1}}\n  \
         stub: {{kind: ollama, base_url: '{url}', max_concurrency: 4}}\n\
         models:\n  \"stub:qwen2.5:7b\": {{capabilities: [chat, json_schema], context_window: 32768}}\n\
         task_models:\n  classify: stub:qwen2.5:7b\n  answer: stub:qwen2.5:7b\n  embed: embedded:all-minilm-l6-v2\n{extra}"
    )
}

/// Router config for wire-format tests: 2 attempts with a 20 ms backoff and no jitter,
/// `providers` (YAML lines) beside the embedded provider, classify and answer on the target
/// `answer`, embeddings on the embedded all-MiniLM-L6-v2, and the answer task's parameters
/// `answer_params` (a YAML flow mapping).
pub fn wire_yaml(providers: &str, answer: &str, answer_params: &str) -> String {
    format!(
        "defaults:\n  retry: {{max_attempts: 2, initial_backoff_ms: 20, jitter: false}}\n\
         providers:\n  embedded: {{kind: embedded}}\n{providers}\
         task_models:\n  classify: {answer}\n  answer: {answer}\n  embed: embedded:all-minilm-l6-v2\n\
         task_parameters:\n  answer: {answer_params}\n"
    )
}

/// A router built from a YAML config (named `test.yaml` in errors).
pub fn router(yaml: &str) -> Router {
    let cfg = RouterConfig::parse(yaml, Path::new("test.yaml")).expect("config parses");
    Router::new(cfg).expect("router builds")
}

/// [`router`], shared (what pipelines and workers take).
pub fn router_from_yaml(yaml: &str) -> Arc<Router> {
    Arc::new(router(yaml))
}

/// A queue client on the test Redis under `prefix`, and its config (for workers).
pub async fn queue(prefix: &str) -> (rfpq::queue::QueueConfig, rfpq::queue::RfpQueue) {
    let cfg = rfpq::queue::QueueConfig::new(redis_url(), prefix);
    let queue = rfpq::queue::RfpQueue::connect(cfg.clone())
        .await
        .expect("the test Redis is reachable");
    (cfg, queue)
}
