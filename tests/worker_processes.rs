//! Worker processes sharing one job, and SIGTERM to one of them: real `rfpq worker` processes,
//! real Redis, an Ollama stub with per-answer latency. The stopped worker finishes its row,
//! hands its batch back at once (no stall wait), exits 0, and the other finishes the job;
//! every row is asked once and answered once.

mod common;

use rfpq::queue::JobPhase;
use std::collections::{BTreeSet, HashMap};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

fn spawn_worker(t: &common::StubJob) -> Child {
    t.worker_command(&["--concurrency", "1"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("worker process starts")
}

fn sigterm(child: &Child) {
    let ok = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -TERM");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_worker_processes_share_a_job_and_sigterm_hands_rows_back() {
    let t = common::stub_job("procs", 400, 16).await;
    let (stub, queue) = (&t.stub, &t.queue);
    let mut a = spawn_worker(&t);
    let mut b = spawn_worker(&t);
    // Both registered before the job arrives, so both take batches.
    t.wait_for_workers(2).await;
    let started = Instant::now();
    let id = t.submit(2).await;
    while queue.status(&id).await.unwrap().rows_done < 6 {
        assert!(started.elapsed() < Duration::from_secs(120), "no progress");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let a_id = {
        let workers = queue.workers().await.unwrap();
        workers
            .iter()
            .find(|w| w.pid == a.id())
            .expect("worker A is registered")
            .id
            .clone()
    };
    sigterm(&a);
    let stopping = Instant::now();
    let status = a.wait().unwrap();
    let exit_took = stopping.elapsed();
    assert!(status.success(), "SIGTERM exits 0: {status:?}");
    assert!(
        exit_took < Duration::from_secs(25),
        "drained within the grace: {exit_took:?}"
    );

    let st = loop {
        let st = queue.status(&id).await.unwrap();
        if st.state.is_final() {
            break st;
        }
        // The lock is 15 s: finishing sooner than that means the batch was handed back, not
        // found by stall detection.
        assert!(
            stopping.elapsed() < Duration::from_secs(14),
            "the job waited for stall detection: {st:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    sigterm(&b);
    assert!(b.wait().unwrap().success());
    assert_eq!(st.state, JobPhase::Completed, "{st:?}");
    assert_eq!((st.rows_total, st.rows_done, st.rows_failed), (16, 16, 0));
    let rows = queue.rows(&id).await.unwrap();
    assert_eq!(rows.len(), 16);
    let by: BTreeSet<&str> = rows.values().filter_map(|o| o.worker.as_deref()).collect();
    assert_eq!(by.len(), 2, "both processes answered rows: {by:?}");
    assert!(by.contains(a_id.as_str()));
    let mut asks: HashMap<String, usize> = HashMap::new();
    // Answer calls only: the workers' warm-up loads are chat requests without messages.
    let answers = stub.requests().into_iter().filter(|r| {
        r.path == "/api/chat" && r.body["messages"].as_array().is_some_and(|m| !m.is_empty())
    });
    for r in answers {
        let user = r.body["messages"][1]["content"]
            .as_str()
            .unwrap_or_default();
        let q = user
            .split("<question>")
            .nth(1)
            .unwrap_or_default()
            .to_string();
        *asks.entry(q).or_default() += 1;
    }
    assert_eq!(asks.len(), 16);
    assert!(
        asks.values().all(|n| *n == 1),
        "no row was asked twice: {asks:?}"
    );
    assert!(
        queue.workers().await.unwrap().is_empty(),
        "both left the registry"
    );
    common::cleanup(&t.prefix).await;
}
