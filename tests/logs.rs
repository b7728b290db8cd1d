//! `rfpq worker --log-format json`: a real worker process answers a job against the Ollama
//! stub; every line it writes to stderr is one JSON object, and each row's "row done" event
//! carries the job span (job id, step) and the row span (job id, row, cell, task, model).

mod common;

use serde_json::Value;
use std::collections::BTreeSet;
use std::process::Stdio;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_parse_line_by_line_with_job_and_row_spans() {
    let t = common::stub_job("logs", 20, 5).await;
    let log_path = t.tmp.path().join("worker.log");
    let mut worker = t
        .worker_command(&[])
        .args(["--log-format", "json"])
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .expect("worker process starts");
    t.wait_for_workers(1).await;
    let id = t.submit(2).await;
    let queue = &t.queue;
    let st =
        common::wait_status(queue, &id, Duration::from_secs(120), |s| s.state.is_final()).await;
    assert_eq!(st.rows_done, 5, "{st:?}");
    let ok = std::process::Command::new("kill")
        .args(["-TERM", &worker.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
    assert!(worker.wait().unwrap().success());

    let text = std::fs::read_to_string(&log_path).unwrap();
    let mut events = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let v: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("log line {} is not JSON ({e}): {line}", n + 1));
        assert!(
            v["timestamp"].is_string() && v["level"].is_string(),
            "{line}"
        );
        events.push(v);
    }
    assert!(
        events
            .iter()
            .any(|e| e["fields"]["message"] == "worker started"),
        "{text}"
    );
    let rows: Vec<&Value> = events
        .iter()
        .filter(|e| e["fields"]["message"] == "row done")
        .collect();
    assert_eq!(rows.len(), 5, "one 'row done' per row: {text}");
    let mut seen = BTreeSet::new();
    for e in &rows {
        let row = &e["span"];
        assert_eq!(row["name"], "row", "{e}");
        assert_eq!(row["job"], id.as_str(), "{e}");
        assert_eq!(row["task"], "answer", "{e}");
        assert_eq!(row["model"], "stub:qwen2.5:7b", "{e}");
        assert!(
            row["cell"].as_str().unwrap().starts_with("Security!"),
            "{e}"
        );
        seen.insert(row["row"].as_u64().expect("row index"));
        let job = e["spans"]
            .as_array()
            .and_then(|s| s.iter().find(|s| s["name"] == "job"))
            .unwrap_or_else(|| panic!("no job span around the row: {e}"));
        assert_eq!(job["job"], id.as_str(), "{e}");
        assert_eq!(job["step"], "batch", "{e}");
        assert!(
            ["answered", "needs review"].contains(&e["fields"]["status"].as_str().unwrap_or("")),
            "{e}"
        );
    }
    assert_eq!(seen, (0..5).collect(), "every row index once");
    // The plan and assemble steps log inside their job spans too.
    for step in ["plan", "assemble"] {
        assert!(
            events
                .iter()
                .any(|e| e["spans"].as_array().is_some_and(|s| s
                    .iter()
                    .any(|s| s["step"] == step && s["job"] == id.as_str()))),
            "no event inside the {step} span: {text}"
        );
    }
    common::cleanup(&t.prefix).await;
}
