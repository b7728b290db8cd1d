//! Throughput benchmark. (a) An N-row questionnaire through the real queue (Redis and W
//! `rfpq worker` processes) against the protocol-faithful LLM stub speaking Ollama's wire
//! format with a fixed latency L and P parallel slots (further requests wait in its queue, like
//! OLLAMA_NUM_PARALLEL): wall time / ideal, where ideal = LLM calls × L / P. (b) The same
//! against an instant backend: the non-LLM cost per row. (e) The workers' peak resident memory.
//! (f) The embedded models: prefill and generation tokens/s, embeddings/s.
//! Retrieval (c) and workbook (d) figures come from `benches/kb.rs` and `benches/workbook.rs`.
//!
//! `cargo bench --bench throughput -- [--rows 1000] [--latency-ms 200] [--slots 4]
//! [--workers 2] [--runs 3] [--batch-size 10] [--only queue|embedded]`
//! Needs Redis (`RFPQ_TEST_REDIS_URL`, default 127.0.0.1:6379) and, for (f), the embedded
//! models (`scripts/setup.sh`). Every run uses its own key prefix and removes it afterwards.

#[path = "../tests/common/mod.rs"]
mod common;

use common::llm_stub::{Answer, LlmStub, Proto, Step};
use rfpq::queue::JobStatus;
use rfpq::router::config::Task;
use rfpq::router::types::ChatMessage;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

struct Args {
    rows: u32,
    latency_ms: u64,
    slots: usize,
    workers: usize,
    runs: usize,
    batch_size: usize,
    only: Option<String>,
}

fn args() -> Args {
    let mut a = Args {
        rows: 1000,
        latency_ms: 200,
        slots: 4,
        workers: 2,
        runs: 3,
        batch_size: rfpq::submit::DEFAULT_BATCH_SIZE,
        only: None,
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut it = argv.iter();
    while let Some(k) = it.next() {
        let mut v = || it.next().cloned().unwrap_or_default();
        match k.as_str() {
            "--rows" => a.rows = v().parse().expect("--rows N"),
            "--latency-ms" => a.latency_ms = v().parse().expect("--latency-ms MS"),
            "--slots" => a.slots = v().parse().expect("--slots P"),
            "--workers" => a.workers = v().parse().expect("--workers W"),
            "--runs" => a.runs = v().parse().expect("--runs R"),
            "--batch-size" => a.batch_size = v().parse().expect("--batch-size B"),
            "--only" => a.only = Some(v()),
            _ => {} // cargo bench passes --bench
        }
    }
    a
}

/// `n` distinct questions (10 subjects × 10 controls × 10 scopes, then numbered).
fn questions(n: u32) -> Vec<String> {
    const SUBJECTS: [&str; 10] = [
        "customer data",
        "backups",
        "administrator accounts",
        "production servers",
        "source code repositories",
        "audit logs",
        "API keys",
        "employee laptops",
        "database replicas",
        "support tickets",
    ];
    const CONTROLS: [&str; 10] = [
        "encrypted at rest",
        "encrypted in transit",
        "reviewed every quarter",
        "protected by multi-factor authentication",
        "monitored for anomalies",
        "restricted by role",
        "retained for at least one year",
        "tested for restore",
        "scanned for vulnerabilities",
        "covered by the incident response plan",
    ];
    const SCOPES: [&str; 10] = [
        "in all regions",
        "in the EU region",
        "for enterprise customers",
        "during onboarding",
        "after a security incident",
        "by an independent third party",
        "at the disaster recovery site",
        "in staging environments",
        "for contractors",
        "within the SOC 2 scope",
    ];
    (0..n)
        .map(|i| {
            let (s, c, p) = (i % 10, (i / 10) % 10, (i / 100) % 10);
            let round = i / 1000;
            let base = format!(
                "Are {} {} {}?",
                SUBJECTS[s as usize], CONTROLS[c as usize], SCOPES[p as usize]
            );
            if round == 0 {
                base
            } else {
                format!("{base} (set {})", round + 1)
            }
        })
        .collect()
}

fn config_yaml(url: &str, slots: usize) -> String {
    format!(
        "defaults:\n  retry: {{max_attempts: 2}}\n\
         providers:\n  stub: {{kind: ollama, base_url: '{url}', max_concurrency: {slots}}}\n\
         models:\n  \"stub:qwen2.5:7b\": {{capabilities: [chat, json_schema], context_window: 32768}}\n  \
         \"stub:all-minilm:latest\": {{capabilities: [embed]}}\n\
         task_models:\n  classify: stub:qwen2.5:7b\n  answer: stub:qwen2.5:7b\n  embed: stub:all-minilm:latest\n\
         answering: {{library_threshold: 1.0, min_evidence_score: 0.0, duplicate_similarity: 1.0}}\n"
    )
}

/// Peak resident memory of a process, MiB (`VmHWM`).
fn peak_rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .unwrap_or(0.0)
        / 1024.0
}

/// CPU time a process has used so far (user + system), seconds.
fn cpu_s(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            // Fields after the command name (which may hold spaces) start at ") ".
            let rest = s.rsplit_once(") ")?.1;
            let f: Vec<&str> = rest.split_whitespace().collect();
            Some(f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?)
        })
        .unwrap_or(0.0)
        / 100.0
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

struct QueueRun {
    wall_s: f64,
    llm_calls: usize,
    ideal_s: f64,
    max_in_flight: usize,
    peak_rss_mib: f64,
    /// CPU the worker processes spent on the job (all of them together), seconds.
    worker_cpu_s: f64,
    status: JobStatus,
}

/// One job of `a.rows` rows through W worker processes against a stub with `latency_ms`.
async fn queue_run(a: &Args, latency_ms: u64) -> QueueRun {
    let prefix = common::prefix("bench");
    let (_cfg, queue) = common::queue(&prefix).await;
    let stub = LlmStub::builder(Proto::Ollama)
        .capacity(a.slots, 1_000_000)
        .dims(384)
        .keep_alive()
        .start()
        .await;
    stub.set_default(
        "/api/chat",
        Step::Answer(Answer::new(common::STUB_ANSWER).delay_first(latency_ms)),
    );
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("bench.yaml");
    let yaml = config_yaml(&stub.url(), a.slots);
    std::fs::write(&config, &yaml).unwrap();
    let router = common::router_from_yaml(&yaml);
    let kb = common::small_kb(&router, dir.path()).await;
    let path = common::questionnaire_file(dir.path(), &questions(a.rows));
    let mut workers: Vec<Child> = (0..a.workers)
        .map(|_| {
            common::rfpq_command(&prefix)
                .args(["--config", config.to_str().unwrap(), "worker"])
                .env("RUST_LOG", "warn")
                .stdout(Stdio::null())
                .stderr(Stdio::inherit())
                .spawn()
                .expect("rfpq worker starts")
        })
        .collect();
    let started = Instant::now();
    while queue.workers().await.map(|w| w.len()).unwrap_or(0) < a.workers {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "workers never registered"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Let the warm-up loads finish; they are not part of the job.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let chat_before = stub.hits("/api/chat");
    let cpu_before: f64 = workers.iter().map(|c| cpu_s(c.id())).sum();
    let id = common::submit(&queue, &path, Some(&kb), a.batch_size).await;
    let status = common::wait_status(&queue, &id, Duration::from_secs(3600), |s| {
        s.state.is_final()
    })
    .await;
    let llm_calls = stub.hits("/api/chat") - chat_before;
    let worker_cpu_s = workers.iter().map(|c| cpu_s(c.id())).sum::<f64>() - cpu_before;
    let peak_rss_mib = workers
        .iter()
        .map(|c| peak_rss_mib(c.id()))
        .fold(0.0, f64::max);
    for w in &mut workers {
        unsafe { libc::kill(w.id() as i32, libc::SIGTERM) };
    }
    for w in &mut workers {
        let _ = w.wait();
    }
    common::cleanup(&prefix).await;
    let wall_s = status
        .finished_ms
        .unwrap_or(status.created_ms)
        .saturating_sub(status.created_ms) as f64
        / 1000.0;
    QueueRun {
        wall_s,
        llm_calls,
        ideal_s: llm_calls as f64 * latency_ms as f64 / 1000.0 / a.slots as f64,
        max_in_flight: stub.max_in_flight_of("qwen2.5:7b"),
        peak_rss_mib,
        worker_cpu_s,
        status,
    }
}

async fn bench_queue(a: &Args) {
    println!(
        "## queue: {} rows, {} worker processes, batches of {}, stub L = {} ms, P = {} slots\n",
        a.rows, a.workers, a.batch_size, a.latency_ms, a.slots
    );
    println!(
        "| run | backend | state | wall s | LLM calls | ideal s | wall/ideal | ms/row | worker CPU ms/row | peak answers in flight | worker peak RSS MiB |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    let mut ratios = Vec::new();
    let mut overheads = Vec::new();
    let mut rss = Vec::new();
    let mut last_report = None;
    let mut instant_report = None;
    let mut cpus = Vec::new();
    for run in 1..=a.runs {
        for latency in [a.latency_ms, 0] {
            let r = queue_run(a, latency).await;
            let per_row_ms = r.wall_s * 1000.0 / f64::from(a.rows);
            let ratio = if r.ideal_s > 0.0 {
                r.wall_s / r.ideal_s
            } else {
                f64::NAN
            };
            println!(
                "| {run} | {} | {} | {:.2} | {} | {:.2} | {} | {:.2} | {:.2} | {} | {:.0} |",
                if latency == 0 {
                    "instant".to_string()
                } else {
                    format!("{latency} ms")
                },
                r.status.state.as_str(),
                r.wall_s,
                r.llm_calls,
                r.ideal_s,
                if latency == 0 {
                    "–".to_string()
                } else {
                    format!("{ratio:.3}")
                },
                per_row_ms,
                r.worker_cpu_s * 1000.0 / f64::from(a.rows),
                r.max_in_flight,
                r.peak_rss_mib,
            );
            rss.push(r.peak_rss_mib);
            if latency == 0 {
                overheads.push(per_row_ms);
                cpus.push(r.worker_cpu_s * 1000.0 / f64::from(a.rows));
                instant_report = Some(r.status.report.clone());
            } else {
                ratios.push(ratio);
                last_report = Some(r.status.report.clone());
            }
        }
    }
    println!();
    println!(
        "median wall/ideal {:.3} (L = {} ms, P = {}); median overhead {:.3} ms/row wall, {:.3} ms/row worker CPU (instant backend); worker peak RSS median {:.0} MiB",
        median(ratios),
        a.latency_ms,
        a.slots,
        median(overheads),
        median(cpus),
        median(rss)
    );
    for (what, rep) in [("timed", last_report), ("instant", instant_report)] {
        if let Some(rep) = rep {
            println!(
                "\nlast {what} run's report: {}",
                serde_json::to_string(&rep).unwrap_or_default()
            );
        }
    }
    println!();
}

async fn bench_embedded(a: &Args) {
    println!("## embedded models, one instance each (SmolLM2-135M Q8_0 GGUF, all-MiniLM-L6-v2)\n");
    let gen_yaml = |max_tokens: u32| {
        format!(
            "providers:\n  embedded: {{kind: embedded, max_concurrency: 1}}\n\
             task_models:\n  classify: embedded:smollm2-135m-instruct\n  answer: embedded:smollm2-135m-instruct\n  embed: embedded:all-minilm-l6-v2\n\
             task_parameters:\n  answer: {{temperature: 0, max_tokens: {max_tokens}}}\n"
        )
    };
    let evidence = "All customer data is encrypted at rest with AES-256 and in transit with TLS 1.2 or newer. \
        Multi-factor authentication is enforced for every administrative account. Backups run daily \
        and are restored in a test every quarter. ";
    // Each round's prompt starts with its own number, so no prefix KV cache can serve it. The
    // two routers are separate model instances: both calls prefill the prompt cold, so the
    // 1-token call measures prefill and the difference between the two measures generation.
    let messages = |round: usize| {
        [
            ChatMessage::system(format!(
                "Round {round}. You answer security questionnaires from the evidence given. \
                 Reply in one short sentence."
            )),
            ChatMessage::user(format!(
                "Evidence:\n{}\nQuestion: Is customer data encrypted at rest?",
                evidence.repeat(4)
            )),
        ]
    };
    let prefill = common::router_from_yaml(&gen_yaml(1));
    let full = common::router_from_yaml(&gen_yaml(64));
    // Load both models once before timing.
    let _ = prefill.chat(Task::Answer, &messages(0), None).await;
    let _ = full.chat(Task::Answer, &messages(0), None).await;
    let mut pre = Vec::new();
    let mut dec = Vec::new();
    let mut prompt_tokens = 0;
    let mut eval_tokens = 0;
    for round in 1..=a.runs.max(3) {
        let m = messages(round);
        let t = Instant::now();
        let (_, r1) = prefill
            .chat(Task::Answer, &m, None)
            .await
            .expect("embedded prefill");
        let t_prefill = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let (_, r2) = full
            .chat(Task::Answer, &m, None)
            .await
            .expect("embedded generation");
        let t_full = t.elapsed().as_secs_f64();
        prompt_tokens = r1.prompt_tokens;
        eval_tokens = r2.eval_tokens;
        pre.push(f64::from(r1.prompt_tokens) / t_prefill);
        dec.push(f64::from(r2.eval_tokens.saturating_sub(1)) / (t_full - t_prefill).max(1e-6));
    }
    let texts: Vec<String> = questions(256);
    let mut eps = Vec::new();
    for _ in 0..a.runs.max(3) {
        let t = Instant::now();
        for chunk in texts.chunks(64) {
            full.embed(chunk).await.expect("embedded embeddings");
        }
        eps.push(texts.len() as f64 / t.elapsed().as_secs_f64());
    }
    let t = Instant::now();
    for q in texts.iter().take(32) {
        full.embed(std::slice::from_ref(q)).await.expect("embed");
    }
    let single_ms = t.elapsed().as_secs_f64() * 1000.0 / 32.0;
    println!("| what | median of {} | note |", a.runs.max(3));
    println!("|---|---|---|");
    println!(
        "| prefill, cold | {:.0} tokens/s | {prompt_tokens}-token prompt, 1 token generated |",
        median(pre)
    );
    println!(
        "| generation | {:.1} tokens/s | {eval_tokens} tokens after the same prompt (time beyond its prefill) |",
        median(dec)
    );
    println!(
        "| embeddings, batches of 64 | {:.0} texts/s | 256 questions of ~10 words |",
        median(eps)
    );
    println!("| embedding, one text per call | {single_ms:.1} ms/text | the same questions |");
    println!();
}

fn main() {
    let a = args();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        if a.only.as_deref() != Some("embedded") {
            bench_queue(&a).await;
        }
        if a.only.as_deref() != Some("queue") {
            bench_embedded(&a).await;
        }
    });
}
