//! Worker liveness against real Redis and real processes: a `kill -9`ed worker process's batch
//! is re-run by another worker within 30 s without recomputing committed rows, and a job far
//! longer than the lock (time-compressed) is never re-run while its worker is healthy.
//! Chat goes to an Ollama stub with per-answer latency, so rows are in flight when it matters.

mod common;

use common::llm_stub::LlmStub;
use rfpq::queue::JobPhase;
use rfpq::worker::{RunningWorker, WorkerSettings};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Answer requests per question number ("Control 7: …" → 7), from the stub's log.
fn asks_per_row(stub: &LlmStub) -> HashMap<u32, usize> {
    let mut asks = HashMap::new();
    for r in stub.requests().iter().filter(|r| r.path == "/api/chat") {
        let user = r.body["messages"][1]["content"]
            .as_str()
            .unwrap_or_default();
        if let Some(n) = user
            .split("<question>Control ")
            .nth(1)
            .and_then(|t| t.split(':').next())
            .and_then(|n| n.parse().ok())
        {
            *asks.entry(n).or_default() += 1;
        }
    }
    asks
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_worker_process_is_replaced_within_30_s_without_recomputing_rows() {
    let t = common::stub_job("kill9", 400, 14).await;
    let (stub, queue, prefix) = (&t.stub, &t.queue, t.prefix.as_str());
    // One batch: the killed worker holds every unanswered row.
    let id = t.submit(14).await;

    let mut child = t
        .worker_command(&["--concurrency", "1"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("worker process starts");
    let started = Instant::now();
    while queue.status(&id).await.unwrap().rows_done < 4 {
        assert!(started.elapsed() < Duration::from_secs(120), "no progress");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    child.kill().expect("SIGKILL"); // kill -9: no shutdown, the lock is simply not renewed
    let killed = Instant::now();
    child.wait().unwrap();
    let committed: Vec<usize> = queue.rows(&id).await.unwrap().keys().copied().collect();
    let done_at_kill = queue.status(&id).await.unwrap().rows_done;
    assert!(done_at_kill < 14);

    // A fresh router, as a new worker process would have.
    let worker = common::start_worker(
        t.cfg.clone(),
        common::router_from_yaml(&common::stub_chat_yaml(&stub.url(), "")),
    )
    .await;
    while queue.status(&id).await.unwrap().rows_done <= done_at_kill {
        assert!(
            killed.elapsed() < Duration::from_secs(30),
            "the batch was not taken over within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let recovery = killed.elapsed();
    let st =
        common::wait_status(queue, &id, Duration::from_secs(120), |s| s.state.is_final()).await;
    worker.shutdown().await.unwrap();
    eprintln!("recovered {recovery:?} after kill -9; {done_at_kill} rows were committed");
    assert_eq!(st.state, JobPhase::Completed, "{st:?}");
    assert_eq!((st.rows_total, st.rows_done, st.rows_failed), (14, 14, 0));
    let rows = queue.rows(&id).await.unwrap();
    assert_eq!(rows.len(), 14, "exactly one answer per row");
    let asks = asks_per_row(stub);
    for i in committed {
        let n = rows[&i].row - 1; // sheet row 2 holds "Control 1"
        assert_eq!(
            asks.get(&n),
            Some(&1),
            "row {n} was committed before the kill: {asks:?}"
        );
    }
    assert!(
        asks.values().all(|n| *n <= 2),
        "only in-flight rows are asked twice: {asks:?}"
    );
    common::cleanup(prefix).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_job_far_longer_than_its_lock_is_never_rerun_while_healthy() {
    let t = common::stub_job("longjob", 300, 16).await;
    let (stub, queue, prefix) = (&t.stub, &t.queue, t.prefix.as_str());
    let (cfg, r) = (t.cfg.clone(), t.router.clone());
    let id = t.submit(16).await;
    // Time-compressed: a 1.5 s lock and 0.5 s stall checks against a ~5 s batch (3× the lock),
    // its rows answered one at a time.
    let settings = WorkerSettings {
        lock_duration: Duration::from_millis(1500),
        stalled_interval: Duration::from_millis(500),
        rows_in_flight: 1,
        ..Default::default()
    };
    let a = RunningWorker::start(cfg.clone(), r.clone(), settings.clone())
        .await
        .unwrap();
    let b = RunningWorker::start(cfg, r, settings).await.unwrap();
    let started = Instant::now();
    let st =
        common::wait_status(queue, &id, Duration::from_secs(120), |s| s.state.is_final()).await;
    let took = started.elapsed();
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
    assert_eq!(st.state, JobPhase::Completed, "{st:?}");
    assert!(
        took > Duration::from_millis(3000),
        "the batch outlived its lock: {took:?}"
    );
    let asks = asks_per_row(stub);
    assert_eq!(asks.len(), 16);
    assert!(
        asks.values().all(|n| *n == 1),
        "no row ran twice, so the batch was never taken over: {asks:?}"
    );
    common::cleanup(prefix).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_batch_that_keeps_killing_its_worker_fails_as_poison_and_workers_go_on() {
    // Every answer takes 3 s, so the batch is always mid-row when its worker is killed.
    let t = common::stub_job("poison", 3000, 3).await;
    let (stub, queue, prefix) = (&t.stub, &t.queue, t.prefix.as_str());
    let (cfg, r) = (t.cfg.clone(), t.router.clone());
    let id = t.submit(3).await;
    // Time-compressed liveness: 2 s lock, 0.5 s stall checks, one stall allowed.
    let args = [
        "--concurrency",
        "1",
        "--lock-ms",
        "2000",
        "--stalled-ms",
        "500",
        "--max-stalls",
        "1",
        // The warm-up's model load would count as the batch starting.
        "--no-warm-up",
    ];
    for attempt in 1..=2 {
        let asked = stub.hits("/api/chat");
        let mut child = t
            .worker_command(&args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let started = Instant::now();
        while stub.hits("/api/chat") == asked {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "attempt {attempt} never started"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        child.kill().unwrap(); // the "crash" this batch causes
        child.wait().unwrap();
    }
    // The batch's rows run at once, so each attempt asked up to 3 questions; let the stub
    // log every request the killed workers sent before counting.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let asked_by_attempts = stub.hits("/api/chat");
    let settings = WorkerSettings {
        lock_duration: Duration::from_millis(2000),
        stalled_interval: Duration::from_millis(500),
        max_stalls: 1,
        ..Default::default()
    };
    let worker = RunningWorker::start(cfg, r, settings).await.unwrap();
    let st = common::wait_status(queue, &id, Duration::from_secs(60), |s| s.state.is_final()).await;
    assert_eq!(st.state, JobPhase::Failed, "{st:?}");
    let reason = st.reason.unwrap_or_default();
    assert!(reason.contains("poison batch"), "{reason}");
    assert_eq!((st.rows_done, st.rows_failed), (3, 3));
    assert_eq!(
        stub.hits("/api/chat"),
        asked_by_attempts,
        "the poison batch was not run a third time"
    );

    // The worker goes on with the next job.
    let next_dir = t.tmp.path().join("next");
    std::fs::create_dir_all(&next_dir).unwrap();
    let next = common::questionnaire_file(&next_dir, &common::mfa_questions(1));
    let id2 = common::submit(queue, &next, Some(&t.kb), 1).await;
    let st =
        common::wait_status(queue, &id2, Duration::from_secs(60), |s| s.state.is_final()).await;
    assert_eq!(st.state, JobPhase::Completed, "{st:?}");
    worker.shutdown().await.unwrap();
    common::cleanup(prefix).await;
}
