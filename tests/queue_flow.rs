//! End to end through real Redis, the real BullMQ protocol and the real embedded models:
//! submit → worker (plan, batches, assemble) → status → result, plus a corrupt file in the queue.

mod common;

use rfpq::queue::{JobPhase, RfpQueue};
use std::time::{Duration, Instant};

async fn wait_final(queue: &RfpQueue, id: &str, limit: Duration) -> rfpq::queue::JobStatus {
    let started = Instant::now();
    let mut last_done = 0;
    loop {
        let st = queue.status(id).await.expect("status");
        assert!(
            st.rows_done >= last_done,
            "progress went backwards: {} < {last_done}",
            st.rows_done
        );
        last_done = st.rows_done;
        if st.state.is_final() {
            return st;
        }
        assert!(
            started.elapsed() < limit,
            "job {id} did not finish within {limit:?}: {st:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn submitted_workbook_is_answered_and_written_back_losslessly() {
    let tmp = tempfile::tempdir().unwrap();
    let router = common::embedded_router();
    let kb = common::small_kb(&router, tmp.path()).await;
    let questions = [
        "Is customer data encrypted at rest?",
        "Is multi-factor authentication enforced for administrators?",
        "How often are backups tested?",
        "Do you have a documented incident response plan?",
        "Is data encrypted in transit?",
    ];
    let original = common::questionnaire(&questions);
    let path = tmp.path().join("q.xlsx");
    std::fs::write(&path, &original).unwrap();

    let prefix = common::prefix("flow");
    let (cfg, queue) = common::queue(&prefix).await;
    // This job asks for its drafts in the cells too (`rfpq --write-drafts cells submit`).
    let id = rfpq::submit::submit_file(
        &queue,
        &path,
        Some(kb.to_str().unwrap()),
        2,
        Some(rfpq::pipeline::config::WriteDrafts::Cells),
    )
    .await
    .expect("submit")
    .id;
    let queued = queue.status(&id).await.unwrap();
    assert_eq!(queued.state, JobPhase::Queued);
    // The job pins the KB snapshot it will use; the worker fetches that version from Redis.
    let version = rfpq::kb::KnowledgeBase::read_meta(&kb).unwrap().version;
    assert_eq!(queued.kb_version.as_deref(), Some(version.as_str()));
    assert!(queue.kb_has(&version).await.unwrap());

    let hash = rfpq::pipeline::config::config_hash(router.config(), &Default::default());
    let worker = common::start_worker(cfg, router).await;
    let st = wait_final(&queue, &id, Duration::from_secs(600)).await;
    worker.shutdown().await.unwrap();

    assert_eq!(st.state, JobPhase::Completed, "{st:?}");
    assert_eq!((st.rows_total, st.rows_done, st.rows_failed), (5, 5, 0));
    // The status names what the answers depend on: the KB version and the router config.
    assert_eq!(st.kb_version.as_deref(), Some(version.as_str()));
    assert_eq!(st.config_hash.as_deref(), Some(hash.as_str()), "{st:?}");
    assert_eq!(
        st.config_hashes.iter().collect::<Vec<_>>(),
        vec![(&hash, &5)],
        "every row answered under the planning config"
    );
    assert_eq!(st.to_json()["config_hash"], hash.as_str());

    let filled = queue
        .result(&id, false)
        .await
        .unwrap()
        .expect("filled workbook stored");
    let review = queue
        .result(&id, true)
        .await
        .unwrap()
        .expect("review workbook stored");
    let range = common::sheet_cells(&filled, "Security");
    let review_sheet = common::sheet_cells(&review, "Review");
    common::assert_answered_or_flagged(&range, &review_sheet, questions.len() as u32, "filled");
    // The incident-response question has no evidence in the KB: it abstains, and says why.
    assert_eq!(
        range
            .get_value((4, 2))
            .map(|v| v.to_string())
            .unwrap_or_default(),
        ""
    );
    assert!(
        review_sheet
            .get_value((4, common::column(&review_sheet, "Note")))
            .unwrap()
            .to_string()
            .contains("insufficient evidence")
    );
    let r = &st.report;
    // The incident-response row abstains, and so does "How often are backups tested?": the
    // backup passage's best sentence is below `min_support` for it.
    assert_eq!((r.questions, r.abstained), (5, 2), "{r:?}");
    assert!(
        review_sheet
            .get_value((3, common::column(&review_sheet, "Note")))
            .unwrap()
            .to_string()
            .contains("min_support")
    );
    // The job's own write_drafts reached the worker: every answered row is written, drafts
    // (band `review`) included.
    assert_eq!(
        (r.written, r.drafted),
        (r.questions - r.abstained, 0),
        "{r:?}"
    );
    let (band, written) = (
        common::column(&review_sheet, "Band"),
        common::column(&review_sheet, "Written"),
    );
    assert!(
        (1..review_sheet.height() as u32).any(|l| {
            common::cell_text(&review_sheet, l, band) == "review"
                && common::cell_text(&review_sheet, l, written) == "yes"
        }),
        "a draft was written into the cells"
    );
    assert_eq!(
        r.llm_calls["classify"], 0,
        "every row is clearly a question"
    );
    assert_eq!(r.llm_calls_total, r.llm_calls["answer"]);
    assert!((3..=4).contains(&r.llm_calls["answer"]), "{r:?}");
    assert!(
        r.embed_calls >= 4 && r.prompt_tokens > 0 && r.duration_s > 0.0,
        "{r:?}"
    );
    let review_rows = review_sheet.height();
    assert_eq!(
        review_rows,
        questions.len() + 1,
        "one review row per question plus the header"
    );

    // Nothing but the answer cells changed.
    let plan = rfpq::workbook::detect::inspect(&original).unwrap();
    let declared: Vec<(String, rfpq::workbook::CellRef)> =
        plan.questions().flat_map(|q| q.answer_cells()).collect();
    let diffs = rfpq::workbook::verify::verify(&original, &filled, &declared).unwrap();
    assert!(diffs.is_empty(), "changes outside answer cells: {diffs:?}");
    common::cleanup(&prefix).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn corrupt_file_in_queue_fails_with_reason_and_worker_goes_on() {
    let prefix = common::prefix("corrupt");
    let (cfg, queue) = common::queue(&prefix).await;
    let good = common::questionnaire(&["Is data encrypted in transit?"]);
    let truncated = &good[..good.len() / 2];
    // Enqueued raw, bypassing the producer's validation, as a hostile producer could.
    let bad_id = queue
        .submit("broken.xlsx", truncated, None, 10)
        .await
        .unwrap();
    let text_id = queue
        .submit("notes.xlsx", b"id,question\n1,Do you?\n", None, 10)
        .await
        .unwrap();
    let good_id = queue.submit("good.xlsx", &good, None, 10).await.unwrap();
    // A legacy .xls queued as is: the worker rebuilds it as .xlsx and records the warning.
    let xls = std::fs::read("fixtures/legacy/vendor-questionnaire.xls").unwrap();
    let xls_id = queue.submit("legacy.xls", &xls, None, 10).await.unwrap();

    let worker = common::start_worker(cfg, common::embedded_router()).await;
    let bad = wait_final(&queue, &bad_id, Duration::from_secs(120)).await;
    let text = wait_final(&queue, &text_id, Duration::from_secs(120)).await;
    let ok = wait_final(&queue, &good_id, Duration::from_secs(300)).await;
    let legacy = wait_final(&queue, &xls_id, Duration::from_secs(300)).await;
    worker.shutdown().await.unwrap();

    assert_eq!(legacy.state, JobPhase::Completed, "{legacy:?}");
    assert_eq!(legacy.source_format, "xls");
    assert!(
        legacy.warnings[0].contains("cannot be preserved"),
        "{legacy:?}"
    );
    assert_eq!(legacy.rows_done, 5);
    let filled = queue.result(&xls_id, false).await.unwrap().unwrap();
    let q = rfpq::workbook::inspect(&filled).unwrap();
    assert_eq!(
        q.source_format,
        rfpq::workbook::SourceFormat::Xlsx,
        "an .xlsx comes back"
    );

    assert_eq!(bad.state, JobPhase::Failed);
    let reason = bad.reason.unwrap_or_default();
    assert!(
        reason.contains("damaged") || reason.contains("truncated"),
        "reason: {reason}"
    );
    assert_eq!(text.state, JobPhase::Failed);
    assert!(text.reason.unwrap_or_default().contains("not a workbook"));
    assert_eq!(ok.state, JobPhase::Completed, "{ok:?}");
    assert!(queue.result(&good_id, false).await.unwrap().is_some());
    assert!(queue.result(&bad_id, false).await.unwrap().is_none());
    common::cleanup(&prefix).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn shutdown_mid_batch_hands_rows_back_and_another_worker_finishes_each_row_once() {
    // Numbered so no two are repeats; about MFA so the KB has evidence and each row is a call.
    let questions: Vec<String> = (1..=12)
        .map(|i| {
            format!("Control {i}: is multi-factor authentication enforced for administrators?")
        })
        .collect();
    let refs: Vec<&str> = questions.iter().map(String::as_str).collect();
    let tmp = tempfile::tempdir().unwrap();
    let kb = common::small_kb(&common::embedded_router(), tmp.path()).await;
    let path = tmp.path().join("q.xlsx");
    std::fs::write(&path, common::questionnaire(&refs)).unwrap();
    let prefix = common::prefix("handoff");
    let (cfg, queue) = common::queue(&prefix).await;
    // One batch holding every row, so the shutdown lands in the middle of it.
    let id = common::submit(&queue, &path, Some(&kb), 12).await;

    let first = common::start_worker(cfg.clone(), common::embedded_router()).await;
    let started = Instant::now();
    while queue.status(&id).await.unwrap().rows_done < 2 {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "first rows never came"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let stopping = Instant::now();
    first.shutdown().await.unwrap();
    // The grace is 25 s; handing back takes about one row, not the rest of the batch.
    assert!(
        stopping.elapsed() < Duration::from_secs(10),
        "shutdown took {:?}",
        stopping.elapsed()
    );
    let done_at_stop = queue.status(&id).await.unwrap().rows_done;
    assert!(done_at_stop < 12, "the batch should have been interrupted");
    // Handed back to the queue, not left active for stall detection to find.
    assert_eq!(queue.batch_state(&id, 0).await.unwrap(), "waiting");

    let second = common::start_worker(cfg, common::embedded_router()).await;
    let st = wait_final(&queue, &id, Duration::from_secs(300)).await;
    second.shutdown().await.unwrap();
    assert_eq!(st.state, JobPhase::Completed, "{st:?}");
    assert_eq!((st.rows_total, st.rows_done, st.rows_failed), (12, 12, 0));
    let rows = queue.rows(&id).await.unwrap();
    assert_eq!(rows.len(), 12, "exactly one checkpoint per row");
    common::cleanup(&prefix).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_repeated_question_is_answered_once_and_checkpointed_for_every_copy() {
    let tmp = tempfile::tempdir().unwrap();
    let router = common::embedded_router();
    let kb = common::small_kb(&router, tmp.path()).await;
    let q = "Is customer data encrypted at rest?";
    let questions = [q, "Are backups restored in a test every quarter?", q, q];
    let path = tmp.path().join("q.xlsx");
    std::fs::write(&path, common::questionnaire(&questions)).unwrap();
    let prefix = common::prefix("repeats");
    let (cfg, queue) = common::queue(&prefix).await;
    // One row per batch: the copies sit in other batches than the row that is answered.
    let id = common::submit(&queue, &path, Some(&kb), 1).await;
    let worker = common::start_worker(cfg, router).await;
    let st = wait_final(&queue, &id, Duration::from_secs(300)).await;
    worker.shutdown().await.unwrap();
    assert_eq!(st.state, JobPhase::Completed, "{st:?}");
    assert_eq!((st.rows_total, st.rows_done), (4, 4));
    assert_eq!(st.report.copies, 2, "{:?}", st.report);
    assert!(st.report.llm_calls["answer"] <= 2, "{:?}", st.report);
    let rows = queue.rows(&id).await.unwrap();
    assert_eq!(rows.len(), 4);
    for i in [2, 3] {
        assert_eq!(rows[&i].same_as.as_deref(), Some("Security!2"));
        assert_eq!(rows[&i].slot_values, rows[&0].slot_values);
        assert_eq!(rows[&i].calls.answer, 0);
        assert!(
            rows[&i]
                .values
                .iter()
                .all(|v| v.cell.row + 1 == rows[&i].row)
        );
    }
    common::cleanup(&prefix).await;
}
