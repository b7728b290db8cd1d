//! The per-job report end to end: a job runs through Redis and an in-process worker against a
//! stub LLM with a fixed latency, then its status report (calls and tokens per task and model,
//! fallbacks, questions per minute, time split), `rfpq status` and the review workbook's
//! Summary sheet are checked against what the stub saw.

mod common;

use calamine::{Data, DataType, Reader, Xlsx};
use rfpq::queue::JobPhase;
use std::io::Cursor;
use std::time::Duration;

const STUB_LATENCY_MS: u64 = 50;
/// The stub's scripted token counts per answer (`llm_stub::Answer::new`).
const STUB_PROMPT_TOKENS: u64 = 34;
const STUB_EVAL_TOKENS: u64 = 12;
const MODEL: &str = "stub:qwen2.5:7b";

/// The Summary sheet's value next to `label` in the first column.
fn figure(sheet: &calamine::Range<Data>, label: &str) -> f64 {
    (0..sheet.height() as u32)
        .find(|&r| sheet.get_value((r, 0)).map(|v| v.to_string()).as_deref() == Some(label))
        .and_then(|r| sheet.get_value((r, 1)))
        .and_then(|v| v.as_f64())
        .unwrap_or_else(|| panic!("no figure '{label}' on the Summary sheet"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn job_report_counts_calls_tokens_and_time() {
    let t = common::stub_job("job-report", STUB_LATENCY_MS, 6).await;
    let (stub, queue, prefix) = (&t.stub, &t.queue, t.prefix.as_str());
    let hash = rfpq::pipeline::config::config_hash(t.router.config(), &Default::default());
    let id = t.submit(3).await;
    // The job waits in the queue until a worker starts.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let queued = queue.status(&id).await.unwrap();
    assert!(queued.report.time.queue_s >= 0.2, "{:?}", queued.report);
    assert_eq!(queued.report.questions_per_minute, 0.0);

    let worker = common::start_worker(t.cfg.clone(), t.router.clone()).await;
    let st =
        common::wait_status(queue, &id, Duration::from_secs(300), |s| s.state.is_final()).await;
    worker.shutdown().await.unwrap();
    assert_eq!(st.state, JobPhase::Completed, "{st:?}");
    let r = &st.report;

    // Every chat request the stub saw is a classify, relevance or answer call.
    let chats = stub.hits("/api/chat") as u64;
    let other = r.llm_calls["classify"] + r.llm_calls["relevance"];
    let answer = r
        .calls_by_model
        .iter()
        .find(|u| u.task == "answer" && u.model == MODEL)
        .unwrap_or_else(|| panic!("no answer calls on {MODEL}: {r:?}"));
    assert!(answer.calls > 0, "{r:?}");
    assert_eq!(answer.calls, chats - other, "{r:?}");
    assert_eq!(answer.calls, r.llm_calls["answer"]);
    assert_eq!(answer.prompt_tokens, answer.calls * STUB_PROMPT_TOKENS);
    assert_eq!(answer.eval_tokens, answer.calls * STUB_EVAL_TOKENS);
    // Embeddings (question, agreement; planning's duplicate search) on the embedded model.
    let embeds: u64 = r
        .calls_by_model
        .iter()
        .filter(|u| u.task == "embed")
        .map(|u| u.calls)
        .sum();
    assert_eq!(embeds, r.embed_calls, "{r:?}");
    // Each batch (2 of 3 rows) embeds its questions in one call ahead of its rows, so rows
    // only count their own calls: the evidence sentences not yet embedded in the batch (one
    // call) and the agreement check of generated text (one call); the job counts both, and
    // planning's calls.
    let plan_embeds = u64::from(queue.plan(&id).await.unwrap().calls.embed);
    let row_embeds: u64 = queue
        .rows(&id)
        .await
        .unwrap()
        .values()
        .map(|o| u64::from(o.calls.embed))
        .sum();
    assert!(
        row_embeds <= 12,
        "at most one sentence call and one agreement check per row: {row_embeds}"
    );
    assert_eq!(
        r.embed_calls - plan_embeds - row_embeds,
        2,
        "one prefetch call per batch: {r:?}"
    );
    let prompt: u64 = r.calls_by_model.iter().map(|u| u.prompt_tokens).sum();
    let eval: u64 = r.calls_by_model.iter().map(|u| u.eval_tokens).sum();
    assert_eq!((prompt, eval), (r.prompt_tokens, r.eval_tokens), "{r:?}");
    assert_eq!(r.fallbacks, 0, "a single target never falls back");

    // Bookkeeping, not speed: every answer call waited at least the stub's latency.
    let t = &r.time;
    let floor = answer.calls as f64 * STUB_LATENCY_MS as f64 / 1000.0;
    assert!(t.llm_s >= floor, "llm_s {} < {floor}: {t:?}", t.llm_s);
    assert!(t.embed_s > 0.0, "{t:?}");
    assert!(t.queue_s >= 0.2, "the job waited for a worker: {t:?}");
    assert!(t.workbook_s > 0.0 && t.plan_s >= 0.0, "{t:?}");
    assert!(t.wall_s >= t.queue_s && t.wall_s == r.duration_s, "{t:?}");
    assert!(r.questions_per_minute > 0.0, "{r:?}");
    assert_eq!(r.failed, 0);

    // The JSON names `rfpq status --json` and `GET /jobs/{id}` show.
    let json = st.to_json();
    let report = &json["report"];
    for key in ["questions_per_minute", "fallbacks", "failed"] {
        assert!(report[key].is_number(), "{key}: {report}");
    }
    for key in [
        "wall_s",
        "queue_s",
        "workbook_s",
        "plan_s",
        "llm_s",
        "embed_s",
        "retrieval_s",
    ] {
        assert!(report["time"][key].is_number(), "time.{key}: {report}");
    }
    let line = report["calls_by_model"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["task"] == "answer")
        .unwrap();
    assert_eq!(line["model"], MODEL);
    assert_eq!(line["calls"], answer.calls);
    assert_eq!(line["prompt_tokens"], answer.prompt_tokens);
    assert_eq!(line["eval_tokens"], answer.eval_tokens);

    // The review workbook's Summary sheet has the same figures.
    let review = queue.result(&id, true).await.unwrap().expect("review");
    let mut book: Xlsx<_> = Xlsx::new(Cursor::new(review)).expect("review opens");
    assert_eq!(book.sheet_names(), vec!["Review", "Summary"]);
    let sheet = book.worksheet_range("Summary").unwrap();
    assert_eq!(figure(&sheet, "Questions"), 6.0);
    assert_eq!(
        figure(&sheet, "Answered") + figure(&sheet, "Needs review"),
        6.0
    );
    assert!(figure(&sheet, "Questions per minute") > 0.0);
    assert_eq!(figure(&sheet, "LLM calls"), r.llm_calls_total as f64);
    assert_eq!(figure(&sheet, "Prompt tokens"), r.prompt_tokens as f64);
    assert_eq!(figure(&sheet, "Output tokens"), r.eval_tokens as f64);
    assert_eq!(figure(&sheet, "Fallbacks"), 0.0);
    let usage_row = (0..sheet.height() as u32)
        .find(|&row| {
            sheet.get_value((row, 0)).map(|v| v.to_string()).as_deref() == Some("answer")
                && sheet.get_value((row, 1)).map(|v| v.to_string()).as_deref() == Some(MODEL)
        })
        .expect("a usage line for the answer model");
    let numbers: Vec<f64> = (2..5)
        .map(|c| {
            sheet
                .get_value((usage_row, c))
                .and_then(|v| v.as_f64())
                .unwrap()
        })
        .collect();
    assert_eq!(
        numbers,
        [
            answer.calls as f64,
            answer.prompt_tokens as f64,
            answer.eval_tokens as f64
        ]
    );
    assert!(figure(&sheet, "LLM calls (summed over rows)") >= floor);
    assert!(figure(&sheet, "Queue wait") >= 0.2);
    assert!(figure(&sheet, "Wall clock") > 0.0);

    // `rfpq status` shows the throughput, the calls per model and the time split.
    let out = common::rfpq_command(prefix)
        .args(["status", &id])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("questions/min"), "{text}");
    assert!(
        text.contains(&format!("answer {MODEL} ×{}", answer.calls)),
        "{text}"
    );
    assert!(
        text.contains("s queued") && text.contains("s LLM"),
        "{text}"
    );
    // … and the router config that planned and answered it.
    assert!(text.contains(&format!("router config: {hash}")), "{text}");
    assert!(!text.contains("other router configs"), "{text}");
    assert_eq!(st.config_hashes.get(&hash), Some(&6), "{st:?}");

    common::cleanup(prefix).await;
}
