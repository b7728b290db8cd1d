//! Prometheus metrics (`rfpq::metrics`): a real `rfpq worker --metrics-addr 127.0.0.1:0`
//! process with the stub router answers a small job with a KB; its `/metrics` has the LLM,
//! token, retrieval, row, lock and queue series, with values that match the stub's request log
//! and the job. A real `rfpq serve` reports the same job and queue state at scrape time. An
//! in-process router with a failing first target counts errors, the fallback and the cooldown.

mod common;

use common::llm_stub::{LlmStub, Proto};
use rfpq::queue::JobPhase;
use rfpq::router::config::{RouterConfig, Task};
use rfpq::router::types::ChatMessage;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

const TOKEN: &str = "metrics-test-token-0123456789";
const MODEL: &str = "qwen2.5:7b";

/// One sample of the text exposition.
#[derive(Debug, Clone)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// Parses the Prometheus text format (comments skipped, quoted label values unescaped).
fn parse(text: &str) -> Vec<Sample> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let name_end = line.find(['{', ' ']).expect("a sample line has a value");
        let name = line[..name_end].to_string();
        let mut labels = BTreeMap::new();
        let mut rest = &line[name_end..];
        if rest.starts_with('{') {
            let mut chars = rest[1..].char_indices();
            let mut key = String::new();
            let mut end = None;
            while let Some((i, c)) = chars.next() {
                match c {
                    '}' => {
                        end = Some(i + 2);
                        break;
                    }
                    ',' | ' ' => {}
                    '=' => {
                        assert_eq!(chars.next().map(|(_, c)| c), Some('"'), "{line}");
                        let mut value = String::new();
                        while let Some((_, c)) = chars.next() {
                            match c {
                                '\\' => match chars.next().map(|(_, c)| c) {
                                    Some('n') => value.push('\n'),
                                    Some(c) => value.push(c),
                                    None => panic!("{line}"),
                                },
                                '"' => break,
                                c => value.push(c),
                            }
                        }
                        labels.insert(std::mem::take(&mut key), value);
                    }
                    c => key.push(c),
                }
            }
            rest = &rest[end.expect("labels are closed")..];
        }
        let value = rest.split_whitespace().next().expect("a value");
        let value = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("bad value in {line}")),
        };
        out.push(Sample {
            name,
            labels,
            value,
        });
    }
    out
}

/// The samples of `name` whose labels include every `want` pair.
fn select<'a>(samples: &'a [Sample], name: &str, want: &[(&str, &str)]) -> Vec<&'a Sample> {
    samples
        .iter()
        .filter(|s| s.name == name)
        .filter(|s| {
            want.iter()
                .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .collect()
}

/// The sum of the matching samples (0 when none match).
fn sum(samples: &[Sample], name: &str, want: &[(&str, &str)]) -> f64 {
    select(samples, name, want).iter().map(|s| s.value).sum()
}

/// The value of exactly one matching sample.
fn one(samples: &[Sample], name: &str, want: &[(&str, &str)]) -> f64 {
    let found = select(samples, name, want);
    assert_eq!(found.len(), 1, "{name} {want:?}: {found:?}");
    found[0].value
}

/// A child process killed when dropped, with its stderr kept for failure messages.
struct Proc {
    child: Child,
    log: Arc<Mutex<String>>,
}

impl Proc {
    /// Starts `cmd` and waits until a stderr line contains `marker`; returns the process and
    /// the word that follows the marker (an address).
    fn start(mut cmd: Command, marker: &'static str) -> (Proc, String) {
        let mut child = cmd
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the process starts");
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel();
        let keep = log.clone();
        // Reads stderr to the end (a full pipe would block the process).
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(at) = line.find(marker)
                    && let Some(tx) = tx.take()
                {
                    let word: String = line[at + marker.len()..]
                        .chars()
                        .take_while(|c| !c.is_whitespace() && *c != '\x1b')
                        .collect();
                    let _ = tx.send(word);
                }
                let mut log = keep.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let proc = Proc { child, log };
        let word = rx
            .recv_timeout(Duration::from_secs(120))
            .unwrap_or_else(|_| panic!("no '{marker}' line; stderr:\n{}", proc.log()));
        (proc, word)
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn scrape(url: &str, token: Option<&str>) -> Vec<Sample> {
    rfpq::install_tls_provider();
    let mut req = reqwest::Client::new().get(url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.expect("the metrics endpoint answers");
    assert_eq!(resp.status(), reqwest::StatusCode::OK);
    let ctype = resp.headers()[reqwest::header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .to_string();
    assert!(ctype.starts_with("text/plain; version=0.0.4"), "{ctype}");
    parse(&resp.text().await.unwrap())
}

/// Checks one histogram: cumulative buckets at the configured bounds, `+Inf` equal to the
/// count; returns (count, sum).
fn histogram(samples: &[Sample], name: &str, want: &[(&str, &str)]) -> (f64, f64) {
    let mut buckets: Vec<(f64, f64)> = select(samples, &format!("{name}_bucket"), want)
        .iter()
        .map(|s| {
            let le = match s.labels["le"].as_str() {
                "+Inf" => f64::INFINITY,
                le => le.parse().unwrap(),
            };
            (le, s.value)
        })
        .collect();
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    let bounds: Vec<f64> = buckets.iter().map(|b| b.0).collect();
    let mut expected = rfpq::metrics::BUCKETS.to_vec();
    expected.push(f64::INFINITY);
    assert_eq!(bounds, expected, "{name} {want:?} buckets");
    assert!(
        buckets.windows(2).all(|w| w[0].1 <= w[1].1),
        "{name} buckets are cumulative: {buckets:?}"
    );
    let count = one(samples, &format!("{name}_count"), want);
    let total = one(samples, &format!("{name}_sum"), want);
    assert_eq!(buckets.last().unwrap().1, count, "{name}: +Inf == count");
    (count, total)
}

/// The bucket count at `le`.
fn bucket(samples: &[Sample], name: &str, want: &[(&str, &str)], le: &str) -> f64 {
    let mut w = want.to_vec();
    w.push(("le", le));
    one(samples, &format!("{name}_bucket"), &w)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn worker_and_serve_expose_llm_row_retrieval_lock_and_queue_metrics() {
    const N: u32 = 4;
    const DELAY_MS: u64 = 150;
    let t = common::stub_job("metrics", DELAY_MS, N).await;
    let (stub, queue, prefix) = (&t.stub, &t.queue, t.prefix.as_str());
    let cmd = t.worker_command(&["--concurrency", "2", "--metrics-addr", "127.0.0.1:0"]);
    let (worker, addr) = Proc::start(cmd, "metrics listening on ");
    let worker_url = format!("http://{addr}/metrics");
    t.wait_for_workers(1).await;
    // Before any job: the endpoint answers, Redis gauges are there, no job yet.
    let before = scrape(&worker_url, None).await;
    assert_eq!(one(&before, "rfpq_redis_up", &[]), 1.0);
    assert_eq!(one(&before, "rfpq_jobs", &[("state", "completed")]), 0.0);
    assert_eq!(one(&before, "rfpq_workers_live", &[]), 1.0);

    let id = t.submit(2).await;
    let st =
        common::wait_status(queue, &id, Duration::from_secs(180), |s| s.state.is_final()).await;
    assert_eq!(st.state, JobPhase::Completed, "{st:?}\n{}", worker.log());
    assert_eq!(st.rows_total, u64::from(N));

    let m = scrape(&worker_url, None).await;

    // LLM calls: every routed chat the stub saw (warm-up loads send no messages), by task.
    let chats: Vec<_> = stub
        .requests()
        .into_iter()
        .filter(|r| r.path == "/api/chat")
        .filter(|r| r.body["messages"].as_array().is_some_and(|m| !m.is_empty()))
        .collect();
    let answers = chats
        .iter()
        .filter(|r| {
            r.body["messages"].as_array().unwrap().iter().any(|m| {
                m["content"]
                    .as_str()
                    .unwrap_or_default()
                    .contains("<question>")
            })
        })
        .count() as f64;
    assert_eq!(answers, f64::from(N), "one answer call per question");
    let stub_ok = [("provider", "stub"), ("model", MODEL), ("outcome", "ok")];
    assert_eq!(
        sum(&m, "rfpq_llm_calls_total", &stub_ok),
        chats.len() as f64,
        "calls to the stub, over all tasks, match its request log"
    );
    let mut answer_ok = stub_ok.to_vec();
    answer_ok.push(("task", "answer"));
    assert_eq!(one(&m, "rfpq_llm_calls_total", &answer_ok), answers);
    assert_eq!(
        sum(&m, "rfpq_llm_calls_total", &[("outcome", "error")]),
        0.0,
        "no call failed"
    );
    let embeds = one(
        &m,
        "rfpq_llm_calls_total",
        &[
            ("provider", "embedded"),
            ("model", "all-minilm-l6-v2"),
            ("task", "embed"),
            ("outcome", "ok"),
        ],
    );
    assert!(embeds >= 1.0, "embedding calls are counted");

    // Latency: one observation per answer, each at least the stub's delay.
    let answer_labels = [("provider", "stub"), ("model", MODEL), ("task", "answer")];
    let (count, total) = histogram(&m, "rfpq_llm_call_seconds", &answer_labels);
    assert_eq!(count, answers);
    assert!(
        total >= answers * DELAY_MS as f64 / 1000.0,
        "latency sum {total} covers the stub's delay"
    );
    assert_eq!(
        bucket(&m, "rfpq_llm_call_seconds", &answer_labels, "0.1"),
        0.0,
        "no answer was faster than the stub's {DELAY_MS} ms delay"
    );
    assert_eq!(
        bucket(&m, "rfpq_llm_call_seconds", &answer_labels, "120"),
        answers
    );
    histogram(
        &m,
        "rfpq_llm_call_seconds",
        &[("provider", "embedded"), ("task", "embed")],
    );

    // Tokens: the stub reports 34 prompt and 12 generated tokens per answer.
    let tokens = |kind| {
        let mut w = answer_labels.to_vec();
        w.push(("kind", kind));
        one(&m, "rfpq_llm_tokens_total", &w)
    };
    assert_eq!(tokens("prompt"), 34.0 * answers);
    assert_eq!(tokens("generated"), 12.0 * answers);

    // Retrieval: one search per answered question at least.
    let (searches, _) = histogram(&m, "rfpq_retrieval_seconds", &[]);
    assert!(searches >= f64::from(N), "{searches} searches");

    // Lock: the fence before each checkpoint renewed the lock; none was lost.
    assert!(
        one(&m, "rfpq_lock_renewals_total", &[("outcome", "ok")]) >= f64::from(N),
        "a renewal before each row"
    );
    assert_eq!(
        sum(&m, "rfpq_lock_renewals_total", &[("outcome", "lost")]),
        0.0
    );

    // Scrape-time gauges from Redis.
    assert_eq!(one(&m, "rfpq_redis_up", &[]), 1.0);
    assert_eq!(one(&m, "rfpq_jobs", &[("state", "completed")]), 1.0);
    for state in [
        "queued",
        "running",
        "completed_with_errors",
        "failed",
        "cancelled",
    ] {
        assert_eq!(one(&m, "rfpq_jobs", &[("state", state)]), 0.0, "{state}");
    }
    // plan and both batches are completed (assemble may still be moving there).
    assert!(one(&m, "rfpq_queue_depth", &[("state", "completed")]) >= 3.0);
    for state in ["waiting", "delayed", "failed"] {
        assert_eq!(
            one(&m, "rfpq_queue_depth", &[("state", state)]),
            0.0,
            "{state}"
        );
    }
    one(&m, "rfpq_queue_depth", &[("state", "active")]);
    one(&m, "rfpq_queue_depth", &[("state", "waiting_children")]);
    assert_eq!(one(&m, "rfpq_workers_live", &[]), 1.0);
    assert_eq!(one(&m, "rfpq_worker_slots", &[]), 2.0);

    // `rfpq serve` reads the same job and queue state from Redis.
    let mut cmd = common::rfpq_command(prefix);
    cmd.env("RFPQ_API_TOKEN", TOKEN)
        .args(["serve", "--addr", "127.0.0.1:0"]);
    let (serve, addr) = Proc::start(cmd, "serving the rfpq API on ");
    let s = scrape(&format!("{addr}/metrics"), Some(TOKEN)).await;
    assert_eq!(one(&s, "rfpq_redis_up", &[]), 1.0, "{}", serve.log());
    assert_eq!(one(&s, "rfpq_jobs", &[("state", "completed")]), 1.0);
    assert_eq!(one(&s, "rfpq_jobs", &[("state", "queued")]), 0.0);
    assert!(one(&s, "rfpq_queue_depth", &[("state", "completed")]) >= 3.0);
    assert_eq!(one(&s, "rfpq_queue_depth", &[("state", "waiting")]), 0.0);
    assert_eq!(one(&s, "rfpq_workers_live", &[]), 1.0);
    assert_eq!(one(&s, "rfpq_api_jobs_submitted_total", &[]), 0.0);
    assert!(
        select(&s, "rfpq_llm_calls_total", &[]).is_empty(),
        "the API process makes no LLM calls"
    );
    drop(serve);

    // Rows: one checkpoint per row, by outcome, adding up to the job's rows.
    let rows = sum(&m, "rfpq_rows_total", &[]);
    assert_eq!(
        rows,
        st.rows_total as f64,
        "rows_total by outcome sums to the job's rows: {:?}",
        select(&m, "rfpq_rows_total", &[])
    );
    assert_eq!(
        sum(&m, "rfpq_rows_total", &[("outcome", "answered")])
            + sum(&m, "rfpq_rows_total", &[("outcome", "needs_review")]),
        f64::from(N)
    );
    assert_eq!(sum(&m, "rfpq_rows_total", &[("outcome", "failed")]), 0.0);

    drop(worker);
    common::cleanup(prefix).await;
}

#[tokio::test]
async fn router_counts_errors_fallbacks_and_cooldowns() {
    let handle = rfpq::metrics::install();
    // The first target's server lacks the model: 404, never retried, the breaker opens.
    let first = LlmStub::builder(Proto::Ollama)
        .models(&["other:1b"])
        .start()
        .await;
    let second = LlmStub::start(Proto::Ollama).await;
    let yaml = format!(
        "defaults:\n  retry: {{max_attempts: 1}}\n  cooldown: {{consecutive_failures: 3, initial_s: 30, multiplier: 2, max_s: 60}}\n\
         providers:\n  mfirst: {{kind: ollama, base_url: '{}'}}\n  msecond: {{kind: ollama, base_url: '{}'}}\n  embedded: {{kind: embedded}}\n\
         task_models:\n  classify: msecond:{MODEL}\n  answer: mfirst:{MODEL}\n  embed: embedded:all-minilm-l6-v2\n\
         fallback_strategy:\n  answer: [msecond:{MODEL}]\n",
        first.url(),
        second.url()
    );
    let router = rfpq::router::Router::new(
        RouterConfig::parse(&yaml, Path::new("metrics-test.yaml")).unwrap(),
    )
    .unwrap();
    let msgs = vec![ChatMessage::user("Do you encrypt data at rest?")];
    for _ in 0..2 {
        let (_, rec) = router.chat(Task::Answer, &msgs, None).await.unwrap();
        assert_eq!(rec.provider, "msecond");
    }
    let m = parse(&handle.render());
    let from = format!("mfirst:{MODEL}");
    let to = format!("msecond:{MODEL}");
    // The 404 and then the open breaker's refusal: two failed calls at the first target.
    assert_eq!(
        one(
            &m,
            "rfpq_llm_calls_total",
            &[
                ("provider", "mfirst"),
                ("task", "answer"),
                ("outcome", "error")
            ]
        ),
        2.0
    );
    assert_eq!(
        one(
            &m,
            "rfpq_llm_calls_total",
            &[
                ("provider", "msecond"),
                ("task", "answer"),
                ("outcome", "ok")
            ]
        ),
        2.0
    );
    assert_eq!(
        one(
            &m,
            "rfpq_llm_fallbacks_total",
            &[("task", "answer"), ("from", &from), ("to", &to)]
        ),
        2.0
    );
    assert_eq!(
        one(&m, "rfpq_llm_cooldowns_total", &[("target", &from)]),
        1.0,
        "the breaker opened once"
    );
    assert!(select(&m, "rfpq_llm_cooldowns_total", &[("target", &to)]).is_empty());
    assert!(
        select(&m, "rfpq_llm_call_seconds_count", &[("provider", "mfirst")]).is_empty(),
        "failed calls have no latency"
    );
}
