//! Redis killed (`kill -9`) and restarted mid-job, with AOF on: the worker and the status
//! reader reconnect by themselves, checkpoints survive, and the job completes with exactly
//! one answer per row. Uses a private `redis-server` on a free port (never the shared one).

mod common;

use rfpq::queue::{JobPhase, QueueConfig, RfpQueue};
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start_redis(port: u16, dir: &Path) -> Child {
    let child = std::process::Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--dir",
            dir.to_str().unwrap(),
            "--appendonly",
            "yes",
            "--appendfsync",
            "everysec",
            "--save",
            "",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server (Debian package) is installed");
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "redis did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    child
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_job_survives_a_redis_restart_with_aof() {
    let stub = common::answering_stub(300).await;
    let yaml = common::stub_chat_yaml(&stub.url(), "");
    let router = common::router_from_yaml(&yaml);
    let tmp = tempfile::tempdir().unwrap();
    let kb = common::small_kb(&router, tmp.path()).await;
    let data = tmp.path().join("redis");
    std::fs::create_dir_all(&data).unwrap();
    let port = free_port();
    let mut redis = start_redis(port, &data);
    let url = format!("redis://127.0.0.1:{port}");

    let path = common::questionnaire_file(tmp.path(), &common::mfa_questions(16));
    let cfg = QueueConfig::new(url, "{rfpq-restart}");
    let queue = RfpQueue::connect(cfg.clone()).await.unwrap();
    let id = common::submit(&queue, &path, Some(&kb), 4).await;
    let worker = common::start_worker(cfg, router).await;
    let started = Instant::now();
    while queue.status(&id).await.unwrap().rows_done < 4 {
        assert!(started.elapsed() < Duration::from_secs(120), "no progress");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Let AOF's once-a-second fsync catch up, then kill -9 and restart on the same files.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    redis.kill().unwrap();
    redis.wait().unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut redis = start_redis(port, &data);
    let restarted = Instant::now();

    let st = loop {
        match queue.status(&id).await {
            Ok(st) if st.state.is_final() => break st,
            Ok(_) | Err(_) => {}
        }
        assert!(
            restarted.elapsed() < Duration::from_secs(150),
            "the job did not finish after the restart"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    eprintln!("finished {:?} after the restart", restarted.elapsed());
    worker.shutdown().await.unwrap();
    assert_eq!(st.state, JobPhase::Completed, "{st:?}");
    assert_eq!((st.rows_total, st.rows_done, st.rows_failed), (16, 16, 0));
    assert_eq!(
        queue.rows(&id).await.unwrap().len(),
        16,
        "one answer per row"
    );
    redis.kill().unwrap();
    redis.wait().unwrap();
}
