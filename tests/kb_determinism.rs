//! Same inputs, same answers: the same sources ingested twice, into two directories (one
//! all at once, one in two steps), with the real embedded models, give the same KB version
//! and byte-identical snapshot files; searches of the two KBs return the same hits with the
//! same scores; and filling the same questionnaire against each (every draft written into
//! the file, `write_drafts: cells`) gives identical row outcomes and identical answer cells.
//! So when an answer changes, the KB or the router config changed, not a rebuild.

mod common;

use calamine::{Reader, Xlsx};
use rfpq::kb::{KnowledgeBase, store};
use rfpq::pipeline::config::{AnsweringConfig, WriteDrafts};
use rfpq::pipeline::{self, PipelineContext, Plan, RowOutcome};
use rfpq::router::Router;
use std::io::{Cursor, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Three of the bundled company's policies and its answered questionnaire of last year.
const SOURCES: [&str; 4] = [
    "fixtures/eval/company/business-continuity-and-backup-plan.md",
    "fixtures/eval/company/data-protection-and-retention-policy.md",
    "fixtures/eval/company/information-security-policy.md",
    "fixtures/eval/past-questionnaire.xlsx",
];

/// Questions the policies answer, questions last year's answers match, and two nothing covers.
const QUESTIONS: [&str; 14] = [
    "Is customer data encrypted at rest?",
    "Do you have a current SOC 2 Type II report?",
    "How often is a restore of the production database from backup tested?",
    "Are backups copied to a second region?",
    "What are your recovery time and recovery point objectives for the loss of the primary region?",
    "Where is customer data stored and processed?",
    "Have you appointed a Data Protection Officer?",
    "Does the service store or process payment card data?",
    "Can staff keep working if the office becomes unavailable?",
    "Is multi-factor authentication enforced for all employee accounts?",
    "Do you run a SIEM that is monitored around the clock?",
    "Do you operate a bug bounty programme?",
    "Do you support SCIM provisioning of users and groups?",
    "Are your developers trained in secure coding every year?",
];

async fn ingest(router: &Router, sources: &[&str], kb: &Path) -> String {
    let sources: Vec<PathBuf> = sources.iter().map(PathBuf::from).collect();
    rfpq::kb::ingest(router, &sources, kb, &common::no_cache())
        .await
        .expect("ingest works")
        .version
}

/// Plans and answers `bytes` against `kb` in-process, two rows at a time (`rfpq fill`'s
/// default), with every draft written into the file; returns the outcomes and the filled file.
async fn fill(
    router: Arc<Router>,
    kb: Arc<KnowledgeBase>,
    bytes: &[u8],
) -> (Vec<RowOutcome>, Vec<u8>) {
    let q = rfpq::workbook::detect::inspect(bytes).expect("workbook is detected");
    let answering = AnsweringConfig::default();
    let mut plan = Plan::build(&router, &answering, &q).await;
    plan.write_drafts = Some(WriteDrafts::Cells);
    let ctx = PipelineContext::new(router, answering, Some(kb));
    let outcomes = pipeline::answer_plan(&ctx, &plan, 2, |_, _| {}).await;
    let filled = pipeline::assemble(bytes, &plan, &outcomes)
        .expect("assembles")
        .filled;
    (outcomes, filled)
}

/// An outcome as JSON without what may differ between two identical runs: the times, the
/// calls made (a sentence embedded for one row is cached for the next, and which row comes
/// first depends on timing), and the worker.
fn comparable(o: &RowOutcome) -> serde_json::Value {
    let mut v = serde_json::to_value(o).unwrap();
    let map = v.as_object_mut().unwrap();
    for volatile in ["time", "calls", "worker"] {
        map.remove(volatile);
    }
    v
}

/// Every entry of an .xlsx package, uncompressed, by name.
fn entries(bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut zip = zip::ZipArchive::new(Cursor::new(bytes)).unwrap();
    (0..zip.len())
        .map(|i| {
            let mut f = zip.by_index(i).unwrap();
            let mut data = Vec::new();
            f.read_to_end(&mut data).unwrap();
            (f.name().unwrap().to_string(), data)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_sources_and_questions_give_the_same_kb_hits_and_answers() {
    let started = std::time::Instant::now();
    let router = common::embedded_router();
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));

    // Two ingests, the second in two steps (its vectors embedded in other company, the first
    // step's reused): the same version and byte-identical snapshot files.
    let version = ingest(&router, &SOURCES, &a).await;
    let first_step = ingest(&router, &SOURCES[..2], &b).await;
    assert_ne!(first_step, version);
    assert_eq!(ingest(&router, &SOURCES, &b).await, version);
    let (snap_a, snap_b) = (
        store::snapshot_dir(&a, &version),
        store::snapshot_dir(&b, &version),
    );
    for file in store::DATA_FILES {
        let (x, y) = (
            std::fs::read(snap_a.join(file)).unwrap(),
            std::fs::read(snap_b.join(file)).unwrap(),
        );
        assert!(
            x == y,
            "{file} differs between two ingests of the same sources"
        );
    }
    let ingested = started.elapsed();

    // The same hits, ids and scores, bit for bit.
    let kb_a = Arc::new(KnowledgeBase::open(&a).unwrap());
    let kb_b = Arc::new(KnowledgeBase::open(&b).unwrap());
    assert!(kb_a.exact_search(), "a KB this small is searched exactly");
    for query in [
        "Are backups encrypted and how long are they kept?",
        "Is customer data stored in the EU?",
        "Do you hold ISO 27001 certification?",
        "incident notification within 72 hours",
    ] {
        let hits_a = kb_a.search(&router, query, 12).await.unwrap();
        let hits_b = kb_b.search(&router, query, 12).await.unwrap();
        assert!(!hits_a.is_empty(), "{query}");
        let key = |hits: &[rfpq::kb::Hit]| -> Vec<(u64, u32, u32, u32)> {
            hits.iter()
                .map(|h| {
                    (
                        h.id,
                        h.score.to_bits(),
                        h.vector_score.to_bits(),
                        h.lexical_score.to_bits(),
                    )
                })
                .collect()
        };
        assert_eq!(key(&hits_a), key(&hits_b), "{query}");
        assert_eq!(hits_a, hits_b, "{query}");
    }

    // The same questionnaire filled against each: the same outcome for every row and the
    // same filled workbook.
    let refs: Vec<&str> = QUESTIONS.to_vec();
    let original = common::questionnaire(&refs);
    let (outcomes_a, filled_a) = fill(router.clone(), kb_a, &original).await;
    let (outcomes_b, filled_b) = fill(router.clone(), kb_b, &original).await;
    assert_eq!(outcomes_a.len(), QUESTIONS.len());
    let written = outcomes_a.iter().filter(|o| !o.values.is_empty()).count();
    assert!(
        written >= QUESTIONS.len() / 2,
        "most rows get a draft to compare: {written} of {}",
        QUESTIONS.len()
    );
    assert!(
        outcomes_a
            .iter()
            .all(|o| o.kb_version.as_deref() == Some(version.as_str()))
    );
    for (x, y) in outcomes_a.iter().zip(&outcomes_b) {
        assert_eq!(
            comparable(x),
            comparable(y),
            "row {} ({}) differs between the two KBs",
            x.row,
            x.question
        );
    }
    // The answer cells, as Excel reads them…
    let q = rfpq::workbook::detect::inspect(&original).unwrap();
    let cells: Vec<_> = q.questions().flat_map(|q| q.answer_cells()).collect();
    let mut book_a = Xlsx::new(Cursor::new(filled_a.clone())).unwrap();
    let mut book_b = Xlsx::new(Cursor::new(filled_b.clone())).unwrap();
    let (range_a, range_b) = (
        book_a.worksheet_range("Security").unwrap(),
        book_b.worksheet_range("Security").unwrap(),
    );
    let mut filled_cells = 0;
    for (sheet, cell) in &cells {
        assert_eq!(sheet, "Security");
        let (x, y) = (
            range_a.get_value((cell.row, cell.col)),
            range_b.get_value((cell.row, cell.col)),
        );
        assert_eq!(x, y, "answer cell {cell:?}");
        filled_cells += usize::from(x.is_some_and(|v| !v.to_string().is_empty()));
    }
    assert!(
        filled_cells >= written,
        "{filled_cells} cells for {written} rows"
    );
    // …and every part of the package, byte for byte.
    assert!(
        entries(&filled_a) == entries(&filled_b),
        "the filled workbooks differ"
    );
    eprintln!(
        "ingests {:.1} s, whole test {:.1} s, {written} of {} rows written, {filled_cells} cells",
        ingested.as_secs_f64(),
        started.elapsed().as_secs_f64(),
        QUESTIONS.len()
    );
}
