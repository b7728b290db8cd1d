//! The labelled set's acceptance (`fixtures/eval/`), with the real embedded models: the
//! company's documents and last year's answered questionnaire become a knowledge base, the
//! new questionnaire is filled in-process once, and `eval::evaluate` compares it with its
//! truth, the review workbook giving the drafts and the past questionnaire the copy-nearest
//! baseline. Written choices must be ≥ 95 % right (at least 10 of them), the `high` band
//! ≥ 90 % right, and the report must carry both baselines on the same rows.

mod common;

use rfpq::kb::KnowledgeBase;
use rfpq::pipeline::config::AnsweringConfig;
use rfpq::pipeline::{self, FillSummary, PipelineContext, Plan};
use std::path::PathBuf;
use std::sync::Arc;

/// The shipped config's embedded settings (`config/llm_models.yaml`, whose Ollama targets
/// fall through to these): two model instances, the answer's tokens and evidence size.
fn embedded_defaults() -> String {
    common::embedded_yaml(
        2,
        "  classify: {temperature: 0, max_tokens: 256}
  relevance: {temperature: 0, max_tokens: 128}
  answer: {temperature: 0, max_tokens: 64, evidence_chars: 900}
",
    )
}

#[tokio::test]
async fn written_choices_on_the_labelled_set_beat_their_baselines() {
    let started = std::time::Instant::now();
    let router = common::router_from_yaml(&embedded_defaults());
    let tmp = tempfile::tempdir().unwrap();
    let kb = tmp.path().join("kb");
    let past = PathBuf::from("fixtures/eval/past-questionnaire.xlsx");
    rfpq::kb::ingest(
        &router,
        &[PathBuf::from("fixtures/eval/company"), past.clone()],
        &kb,
        &common::no_cache(),
    )
    .await
    .expect("the labelled set's KB is ingested");
    let ingested = started.elapsed();

    // One in-process fill, as `rfpq fill` does it.
    let bytes = std::fs::read("fixtures/eval/questionnaire.xlsx").unwrap();
    let questionnaire = rfpq::workbook::detect::inspect(&bytes).unwrap();
    let base = KnowledgeBase::open(&kb).unwrap();
    base.check_model(&router).unwrap();
    let answering = AnsweringConfig::default();
    let plan = Plan::build(&router, &answering, &questionnaire).await;
    let ctx = PipelineContext::new(router.clone(), answering, Some(Arc::new(base)));
    let outcomes = pipeline::answer_plan(&ctx, &plan, 2, |_, _| {}).await;
    let summary = FillSummary::of(&outcomes, &plan.calls);
    let assembled = pipeline::assemble_with(&bytes, &plan, &outcomes, &summary).unwrap();
    let filled_in = started.elapsed();

    let report = rfpq::eval::evaluate(
        &router,
        assembled.filled,
        std::fs::read("fixtures/eval/truth.xlsx").unwrap(),
        Some(assembled.review),
        Some(std::fs::read(&past).unwrap()),
        0.7,
    )
    .await
    .expect("the fill is evaluated");
    println!("{}", report.render());
    println!(
        "ingest {:.1} s, fill {:.1} s, eval {:.1} s",
        ingested.as_secs_f64(),
        (filled_in - ingested).as_secs_f64(),
        (started.elapsed() - filled_in).as_secs_f64()
    );

    let q = &report.quality;
    assert_eq!(q.choice_slots, 111, "every question of the set is labelled");
    assert!(
        q.written.answered >= 10,
        "at least 10 choices written, got {}",
        q.written.answered
    );
    let precision = q.written.precision.unwrap();
    assert!(
        precision >= 0.95,
        "written choices {}/{} right",
        q.written.right,
        q.written.answered
    );
    if let Some(high) = q.written_by_band.get("high").filter(|h| h.answered > 0) {
        assert!(
            high.precision.unwrap() >= 0.90,
            "`high` band {}/{} right",
            high.right,
            high.answered
        );
    }
    // Every figure has its baselines on the same slots.
    assert_eq!(q.majority.len(), 1);
    assert_eq!(q.majority[0].value, "Yes");
    assert_eq!(q.always_majority.all.answered, 111);
    assert_eq!(q.always_majority.on_written.answered, q.written.answered);
    let drafts = q
        .drafts
        .as_ref()
        .expect("the review workbook gives the drafts");
    assert_eq!(
        q.always_majority.on_drafts.as_ref().unwrap().answered,
        drafts.answered
    );
    let copy = q.copy_nearest.as_ref().expect("the copy-nearest baseline");
    assert_eq!(copy.past_questions, 42);
    assert_eq!(copy.scores.all.answered, 111);
    assert_eq!(copy.scores.on_written.answered, q.written.answered);
    assert!(q.recall.iter().any(|r| r.value == "No" && !r.majority));
    let text = report.render();
    assert!(text.contains("always \"Yes\", same slots"));
    assert!(text.contains("copy nearest, same slots"));
}
