//! Controlling jobs from other processes, against real Redis: `rfpq cancel` (running and
//! queued jobs), `rfpq retry` of failed rows only, the worker registry (`rfpq workers`) and
//! the live status fields (ETA, heartbeat, models).

mod common;

use common::llm_stub::{LlmStub, Proto, Step, ollama_error};
use rfpq::queue::JobPhase;
use std::time::{Duration, Instant};

fn cli(prefix: &str, args: &[&str]) -> String {
    let out = common::rfpq_command(prefix).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "rfpq {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cancel_from_another_process_stops_a_running_job_and_keeps_finished_rows() {
    let tmp = tempfile::tempdir().unwrap();
    let router = common::embedded_router();
    let kb = common::small_kb(&router, tmp.path()).await;
    let path = common::questionnaire_file(tmp.path(), &common::mfa_questions(16));
    let prefix = common::prefix("cancel");
    let (cfg, queue) = common::queue(&prefix).await;
    let id = common::submit(&queue, &path, Some(&kb), 4).await;
    let worker = common::start_worker(cfg, router).await;

    // While it runs: an ETA, a fresh heartbeat, the model, and the worker in the registry.
    let st = common::wait_status(&queue, &id, Duration::from_secs(120), |s| {
        s.rows_done >= 3 && s.last_heartbeat_ms.is_some()
    })
    .await;
    assert_eq!(st.state, JobPhase::Running);
    assert!(st.eta_s.is_some_and(|e| e > 0.0), "{st:?}");
    assert!(rfpq::queue::now_ms() - st.last_heartbeat_ms.unwrap() < 10_000);
    assert!(
        st.models.contains_key("embedded:smollm2-135m-instruct"),
        "{:?}",
        st.models
    );
    let workers = queue.workers().await.unwrap();
    let me = workers
        .iter()
        .find(|w| w.id == worker.id())
        .expect("the worker is registered");
    assert_eq!((me.pid, me.concurrency), (std::process::id(), 2));
    assert!(me.rss_bytes > 10 << 20, "{me:?}");
    assert!(me.active_jobs.contains(&id), "{me:?}");
    let listed: serde_json::Value =
        serde_json::from_str(&cli(&prefix, &["workers", "--json"])).unwrap();
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w["id"] == worker.id())
    );

    // Cancel from another process.
    let asked = Instant::now();
    let out = cli(&prefix, &["cancel", &id]);
    assert!(out.contains("cancel requested"), "{out}");
    let st =
        common::wait_status(&queue, &id, Duration::from_secs(30), |s| s.state.is_final()).await;
    let took = asked.elapsed();
    assert_eq!(st.state, JobPhase::Cancelled, "{st:?}");
    assert!(took < Duration::from_secs(10), "cancel took {took:?}");
    assert!(st.reason.as_deref().unwrap().contains("cancelled by user"));
    assert!(st.rows_done < 16, "the job was stopped: {st:?}");
    assert!(
        queue.result(&id, false).await.unwrap().is_some(),
        "partial result kept"
    );
    // Nothing is written after the job ended, and a second cancel changes nothing.
    let rows = queue.rows(&id).await.unwrap().len();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(queue.rows(&id).await.unwrap().len(), rows);
    assert!(cli(&prefix, &["cancel", &id]).contains("already cancelled"));

    worker.shutdown().await.unwrap();
    assert!(
        queue.workers().await.unwrap().iter().all(|w| w.id != me.id),
        "a stopped worker leaves the registry"
    );
    common::cleanup(&prefix).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_queued_job_is_cancelled_atomically_and_never_planned() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("q.xlsx");
    std::fs::write(
        &path,
        common::questionnaire(&["Is customer data encrypted at rest?"]),
    )
    .unwrap();
    let prefix = common::prefix("cancel-queued");
    let (cfg, queue) = common::queue(&prefix).await;
    let id = common::submit(&queue, &path, None, 4).await;
    assert_eq!(
        queue.cancel(&id).await.unwrap(),
        rfpq::queue::CancelOutcome::Cancelled
    );
    assert_eq!(queue.status(&id).await.unwrap().state, JobPhase::Cancelled);
    let worker = common::start_worker(cfg, common::embedded_router()).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    worker.shutdown().await.unwrap();
    let st = queue.status(&id).await.unwrap();
    assert_eq!(
        (st.state, st.rows_total),
        (JobPhase::Cancelled, 0),
        "{st:?}"
    );
    assert!(queue.plan(&id).await.is_err(), "never planned");
    common::cleanup(&prefix).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn retry_answers_only_the_failed_rows() {
    let stub = LlmStub::start(Proto::Ollama).await;
    // The first two answer calls are refused for good (400: never retried); the rest answer.
    stub.script(
        "/api/chat",
        [
            ollama_error(400, "invalid request"),
            ollama_error(400, "invalid request"),
        ],
    );
    stub.set_default("/api/chat", Step::answer(common::STUB_ANSWER));
    let router = common::router_from_yaml(&common::stub_chat_yaml(&stub.url(), ""));
    let tmp = tempfile::tempdir().unwrap();
    let kb = common::small_kb(&router, tmp.path()).await;
    let path = common::questionnaire_file(tmp.path(), &common::mfa_questions(6));
    let prefix = common::prefix("retry");
    let (cfg, queue) = common::queue(&prefix).await;
    let id = common::submit(&queue, &path, Some(&kb), 3).await;
    let worker = common::start_worker(cfg, router).await;
    let st = common::wait_status(&queue, &id, Duration::from_secs(120), |s| {
        s.state.is_final()
    })
    .await;
    assert_eq!(st.state, JobPhase::CompletedWithErrors, "{st:?}");
    assert_eq!((st.rows_done, st.rows_failed), (6, 2));
    assert_eq!(st.errors.len(), 2, "{:?}", st.errors);
    assert!(st.errors[0].starts_with("Security!"), "{:?}", st.errors);
    let calls_before = stub.hits("/api/chat");
    assert_eq!(calls_before, 6);
    let answered_before: Vec<usize> = {
        let rows = queue.rows(&id).await.unwrap();
        let mut ok: Vec<usize> = rows
            .iter()
            .filter(|(_, o)| o.status != rfpq::pipeline::RowStatus::Failed)
            .map(|(i, _)| *i)
            .collect();
        ok.sort();
        ok
    };

    let out = cli(&prefix, &["retry", &id]);
    assert!(out.contains("2 row(s) queued again"), "{out}");
    // Progress never goes backwards: the reopened rows stay counted until answered again.
    let st = common::wait_status(&queue, &id, Duration::from_secs(120), |s| {
        assert!(s.rows_done >= 6, "progress went backwards: {s:?}");
        s.state.is_final()
    })
    .await;
    assert!(st.errors.is_empty(), "{:?}", st.errors);
    worker.shutdown().await.unwrap();
    assert_eq!(st.state, JobPhase::Completed, "{st:?}");
    assert_eq!((st.rows_done, st.rows_failed), (6, 0));
    assert_eq!(
        stub.hits("/api/chat"),
        calls_before + 2,
        "only the two failed rows were asked again"
    );
    let rows = queue.rows(&id).await.unwrap();
    assert!(answered_before.iter().all(|i| rows[i].calls.answer == 1));
    // Nothing failed any more: a second retry is refused with a reason.
    let again = common::rfpq_command(&prefix)
        .args(["retry", &id])
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("nothing to retry"));
    common::cleanup(&prefix).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_parent_stuck_waiting_for_a_dead_child_is_repaired_by_the_sweeper() {
    use bullmq::options::RedisConnectionOptions;
    use bullmq::{FlowJob, FlowProducer, FlowProducerOptions, JobOptions, QueueOptions};
    let tmp = tempfile::tempdir().unwrap();
    let path = common::questionnaire_file(tmp.path(), &common::mfa_questions(2));
    let prefix = common::prefix("sweep");
    let (cfg, queue) = common::queue(&prefix).await;
    let id = common::submit(&queue, &path, None, 2).await;
    // Replace rfpq's own plan with the trap BullMQ documents: a child that fails for good
    // without `ignore_dependency_on_failure` leaves its parent waiting forever.
    let conn = RedisConnectionOptions::new().url(common::redis_url());
    let bull = bullmq::Queue::with_options(
        "rfpq",
        QueueOptions::new()
            .connection(conn.clone())
            .prefix(prefix.clone()),
    )
    .await
    .unwrap();
    assert!(bull.remove(&format!("{id}-plan")).await.unwrap());
    let flows = FlowProducer::with_options(
        FlowProducerOptions::new()
            .connection(conn)
            .prefix(prefix.clone()),
    )
    .await
    .unwrap();
    let parent = FlowJob::new("assemble", "rfpq", serde_json::json!({"job": id}))
        .unwrap()
        .options(JobOptions::new().job_id(format!("{id}-stuck")))
        .add_child(
            FlowJob::new(
                "batch",
                "rfpq",
                serde_json::json!({"job": id, "start": "bad"}),
            )
            .unwrap()
            .options(JobOptions::new().job_id(format!("{id}-dead")).attempts(1)),
        );
    flows.add(parent).await.unwrap();
    let worker = common::start_worker(cfg, common::embedded_router()).await;
    let started = Instant::now();
    while format!(
        "{:?}",
        bull.get_job_state(&format!("{id}-dead")).await.unwrap()
    )
    .to_lowercase()
        != "failed"
    {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the child never failed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        format!(
            "{:?}",
            bull.get_job_state(&format!("{id}-stuck")).await.unwrap()
        )
        .to_lowercase(),
        "waitingchildren",
        "the parent is stuck"
    );
    // The sweeper (run here at once instead of waiting for a worker's minute) repairs it.
    let repaired = queue.sweep_stuck_parents(Duration::ZERO).await.unwrap();
    assert_eq!(repaired, vec![id.clone()]);
    let st =
        common::wait_status(&queue, &id, Duration::from_secs(60), |s| s.state.is_final()).await;
    worker.shutdown().await.unwrap();
    assert_eq!(
        st.state,
        JobPhase::Failed,
        "the job leaves limbo with a reason: {st:?}"
    );
    assert!(st.reason.is_some());
    assert!(
        queue
            .sweep_stuck_parents(Duration::ZERO)
            .await
            .unwrap()
            .is_empty(),
        "nothing left to repair (and a second sweep in the same period is skipped)"
    );
    common::cleanup(&prefix).await;
}
