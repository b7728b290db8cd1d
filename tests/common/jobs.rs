//! Queued jobs in tests: the answering LLM stub, a questionnaire and KB to submit, polling a
//! job's status, and the workers that run it. Does not build routers or Redis keys itself (see
//! the parent module).

use super::llm_stub;
use super::{
    prefix, questionnaire, queue, rfpq_command, router_from_yaml, small_kb, stub_chat_yaml,
};
use rfpq::queue::{QueueConfig, RfpQueue};
use rfpq::router::Router;
use rfpq::worker::{RunningWorker, WorkerSettings};
use std::path::Path;
use std::sync::Arc;

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

/// Submits the questionnaire at `path` (answered from the KB at `kb`, if any) in batches of
/// `batch_size` rows; the job id.
pub async fn submit(queue: &RfpQueue, path: &Path, kb: Option<&Path>, batch_size: usize) -> String {
    let kb = kb.map(|k| k.to_str().unwrap());
    rfpq::submit::submit_file(queue, path, kb, batch_size, None)
        .await
        .expect("submit")
        .id
}

/// An in-process worker on the queue `cfg` with `router` and the default settings.
pub async fn start_worker(cfg: QueueConfig, router: Arc<Router>) -> RunningWorker {
    RunningWorker::start(cfg, router, WorkerSettings::default())
        .await
        .expect("worker starts")
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
        submit(&self.queue, &self.questionnaire, Some(&self.kb), batch_size).await
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
