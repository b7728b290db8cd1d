//! Shared test helpers: a real Redis URL, a unique key prefix per test, a router that uses only
//! the real embedded models, and small questionnaire workbooks built with rust_xlsxwriter.
#![allow(dead_code)]

#[path = "../support/llm_stub.rs"]
pub mod llm_stub;
pub mod stub;

use rfpq::router::Router;
use rfpq::router::config::RouterConfig;
use rust_xlsxwriter::{DataValidation, Format, Workbook};
use std::path::Path;
use std::sync::Arc;

/// One sheet of a workbook as calamine reads it.
pub fn sheet_cells(bytes: &[u8], sheet: &str) -> calamine::Range<calamine::Data> {
    use calamine::Reader;
    let mut book = calamine::Xlsx::new(std::io::Cursor::new(bytes.to_vec())).unwrap();
    book.worksheet_range(sheet).unwrap()
}

/// A cell's value as trimmed text (empty for an empty cell); 0-based row and column.
pub fn cell_text(range: &calamine::Range<calamine::Data>, row: u32, col: u32) -> String {
    range
        .get_value((row, col))
        .map(|v| v.to_string())
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// The 0-based column of the header `name` in row 0 (review sheets are read by header).
pub fn column(range: &calamine::Range<calamine::Data>, name: &str) -> u32 {
    (0..range.width() as u32)
        .find(|c| cell_text(range, 0, *c) == name)
        .unwrap_or_else(|| panic!("no '{name}' column"))
}

/// Redis the tests talk to (scripts/test.sh starts one when nothing answers).
pub fn redis_url() -> String {
    std::env::var("RFPQ_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// A key prefix no other test (or run) shares.
pub fn prefix(test: &str) -> String {
    format!("{{rfpq-test-{test}-{}}}", uuid::Uuid::now_v7().simple())
}

/// Router config using only the embedded models (no accidental local Ollama in tests).
pub const EMBEDDED_ONLY: &str = "
providers:
  embedded: {kind: embedded, max_concurrency: 1}
task_models:
  classify: embedded:smollm2-135m-instruct
  answer: embedded:smollm2-135m-instruct
  embed: embedded:all-minilm-l6-v2
task_parameters:
  answer: {temperature: 0, max_tokens: 48, evidence_chars: 600}
";

pub fn embedded_router() -> Arc<Router> {
    let cfg =
        RouterConfig::parse(EMBEDDED_ONLY, Path::new("test-config")).expect("test config parses");
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
    let mut cursor: u64 = 0;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut conn)
            .await
            .expect("scan");
        if !keys.is_empty() {
            let _: () = redis::cmd("DEL")
                .arg(&keys)
                .query_async(&mut conn)
                .await
                .expect("del");
        }
        if next == 0 {
            break;
        }
        cursor = next;
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

pub fn router_from_yaml(yaml: &str) -> Arc<Router> {
    let cfg = RouterConfig::parse(yaml, Path::new("test.yaml")).expect("config parses");
    Arc::new(Router::new(cfg).expect("router builds"))
}

/// `n` distinct questions (numbered, so never repeats) that `small_kb` has evidence for.
pub fn mfa_questions(n: u32) -> Vec<String> {
    (1..=n)
        .map(|i| {
            format!("Control {i}: is multi-factor authentication enforced for administrators?")
        })
        .collect()
}

/// Writes a `questionnaire` of `questions` into `dir/q.xlsx` and returns its path.
pub fn questionnaire_file(dir: &Path, questions: &[String]) -> std::path::PathBuf {
    let refs: Vec<&str> = questions.iter().map(String::as_str).collect();
    let path = dir.join("q.xlsx");
    std::fs::write(&path, questionnaire(&refs)).unwrap();
    path
}

/// Polls a job's status until `done` holds; panics after `limit`.
pub async fn wait_status(
    queue: &rfpq::queue::RfpQueue,
    id: &str,
    limit: std::time::Duration,
    done: impl Fn(&rfpq::queue::JobStatus) -> bool,
) -> rfpq::queue::JobStatus {
    let started = std::time::Instant::now();
    loop {
        if let Ok(st) = queue.status(id).await
            && done(&st)
        {
            return st;
        }
        assert!(started.elapsed() < limit, "job {id} timed out");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// The stub's reply for a `questionnaire` row (Answer + Comments), citing source 1.
pub const STUB_ANSWER: &str =
    r#"{"answer": "Yes", "comments": "Enforced for every administrator.", "evidence": "[1]"}"#;

/// An Ollama stub that answers every chat with [`STUB_ANSWER`] after `delay_ms`.
pub async fn answering_stub(delay_ms: u64) -> llm_stub::LlmStub {
    let stub = llm_stub::LlmStub::start(llm_stub::Proto::Ollama).await;
    stub.set_default(
        "/api/chat",
        llm_stub::Step::Answer(llm_stub::Answer::new(STUB_ANSWER).delay_first(delay_ms)),
    );
    stub
}

/// A queue client on the test Redis under `prefix`, and its config (for workers).
pub async fn queue(prefix: &str) -> (rfpq::queue::QueueConfig, rfpq::queue::RfpQueue) {
    let cfg = rfpq::queue::QueueConfig::new(redis_url(), prefix);
    let queue = rfpq::queue::RfpQueue::connect(cfg.clone())
        .await
        .expect("the test Redis is reachable");
    (cfg, queue)
}

/// What a queued-job test against the answering stub starts from: the stub (answers after
/// `delay_ms`), its router config (also written to `config` for `rfpq worker` processes), the
/// router, a small KB and an `n`-question questionnaire under `tmp`, and a queue client
/// under a key prefix of the test's own.
pub struct StubJob {
    pub stub: llm_stub::LlmStub,
    pub tmp: tempfile::TempDir,
    pub config: std::path::PathBuf,
    pub router: Arc<Router>,
    pub kb: std::path::PathBuf,
    pub questionnaire: std::path::PathBuf,
    pub prefix: String,
    pub cfg: rfpq::queue::QueueConfig,
    pub queue: rfpq::queue::RfpQueue,
}

/// Sets up a [`StubJob`] for `test` (the prefix's name) with `n` questions.
pub async fn stub_job(test: &str, delay_ms: u64, n: u32) -> StubJob {
    let stub = answering_stub(delay_ms).await;
    let yaml = stub_chat_yaml(&stub.url(), "");
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("stub.yaml");
    std::fs::write(&config, &yaml).unwrap();
    let router = router_from_yaml(&yaml);
    let kb = small_kb(&router, tmp.path()).await;
    let questionnaire = questionnaire_file(tmp.path(), &mfa_questions(n));
    let prefix = prefix(test);
    let (cfg, queue) = queue(&prefix).await;
    StubJob {
        stub,
        tmp,
        config,
        router,
        kb,
        questionnaire,
        prefix,
        cfg,
        queue,
    }
}

impl StubJob {
    /// `rfpq --config <the stub config> worker ARGS…` under the test's prefix.
    pub fn worker_command(&self, args: &[&str]) -> std::process::Command {
        let mut cmd = rfpq_command(&self.prefix);
        cmd.args(["--config", self.config.to_str().unwrap(), "worker"])
            .args(args);
        cmd
    }

    /// Submits the questionnaire with the KB in batches of `batch_size` rows; the job id.
    pub async fn submit(&self, batch_size: usize) -> String {
        rfpq::submit::submit_file(
            &self.queue,
            &self.questionnaire,
            Some(self.kb.to_str().unwrap()),
            batch_size,
            None,
        )
        .await
        .expect("submit")
        .id
    }

    /// Waits (60 s at most) until at least `n` workers are registered.
    pub async fn wait_for_workers(&self, n: usize) {
        let started = std::time::Instant::now();
        while self.queue.workers().await.unwrap().len() < n {
            assert!(
                started.elapsed() < std::time::Duration::from_secs(60),
                "{n} worker(s) did not register"
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
}
