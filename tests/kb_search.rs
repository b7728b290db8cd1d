//! Knowledge base with the real embedding model: ingest, persist, reopen, search.

mod common;

use rfpq::kb::{self, KnowledgeBase};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingested_answer_bank_finds_the_right_section() {
    let tmp = tempfile::tempdir().unwrap();
    let router = common::embedded_router();
    let report = kb::ingest(
        &router,
        &["fixtures/answer-bank-plainanswer".into()],
        &tmp.path().join("kb"),
    )
    .await
    .expect("ingest");
    assert!(report.chunks > 50, "{report:?}");
    assert_eq!(
        (report.embed_model.as_str(), report.dimensions),
        ("all-minilm-l6-v2", 384)
    );

    let base = KnowledgeBase::open(&tmp.path().join("kb")).expect("reopens from disk");
    let cases = [
        (
            "Do you require MFA for admin accounts?",
            "answers_04-access-control.md",
        ),
        (
            "How often do you back up customer data?",
            "answers_06-backup-and-continuity.md",
        ),
        (
            "Do you have an incident response plan?",
            "answers_07-incident-response.md",
        ),
        (
            "Which subprocessors handle our data?",
            "answers_08-subprocessors-and-vendors.md",
        ),
    ];
    for (query, expected) in cases {
        let hits = base.search(&router, query, 3).await.unwrap();
        assert!(
            hits.windows(2).all(|w| w[0].score >= w[1].score),
            "hits sorted by score"
        );
        assert!(
            hits.iter().any(|h| h.source == expected),
            "{query}: {:?}",
            hits.iter().map(|h| &h.source).collect::<Vec<_>>()
        );
    }
}

#[tokio::test]
async fn a_kb_built_with_another_embedding_model_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let router = common::embedded_router();
    let kb_dir = common::small_kb(&router, tmp.path()).await;
    let meta = kb_dir.join("kb.json");
    let text = std::fs::read_to_string(&meta)
        .unwrap()
        .replace("all-minilm-l6-v2", "nomic-embed-text");
    std::fs::write(&meta, text).unwrap();
    let base = KnowledgeBase::open(&kb_dir).unwrap();
    let err = base
        .search(&router, "anything", 3)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("nomic-embed-text") && err.contains("rebuild"),
        "{err}"
    );
}

#[test]
fn a_missing_kb_says_how_to_build_it() {
    let err = KnowledgeBase::open(std::path::Path::new("/nonexistent/kb"))
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("rfpq kb ingest"), "{err}");
}
