//! `rfpq demo` as a newcomer runs it: the bundled customer questionnaire is filled through
//! real Redis with the embedded models from the bundled company's KB. At least 60 % of the
//! rows are written, written answers are ≥ 95 % right against the demo's truth, every written
//! explanation is supported by a knowledge-base passage, drafts stay in the review workbook,
//! and nothing outside the answer cells changes.

mod common;

use rfpq::pipeline::support;

#[test]
fn demo_writes_trusted_answers_and_drafts_the_rest() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("demo");
    let prefix = common::prefix("demo");
    let started = std::time::Instant::now();
    let run = common::rfpq_command(&prefix)
        .args(["demo", "--out", out.to_str().unwrap()])
        .output()
        .expect("rfpq demo runs");
    let stdout = String::from_utf8_lossy(&run.stdout);
    eprintln!(
        "{stdout}{}\ndemo took {:.1} s",
        String::from_utf8_lossy(&run.stderr),
        started.elapsed().as_secs_f64()
    );
    assert!(run.status.success());
    assert!(stdout.contains("rfpq apply"), "the next step is printed");

    let original = std::fs::read("fixtures/eval/demo-questionnaire.xlsx").unwrap();
    let filled = std::fs::read(out.join("customer-questionnaire.filled.xlsx")).unwrap();
    let truth = std::fs::read("fixtures/eval/demo-truth.xlsx").unwrap();
    assert!(out.join("customer-questionnaire.review.xlsx").exists());
    let plan = rfpq::workbook::detect::inspect(&original).unwrap();
    let questions: Vec<_> = plan.questions().collect();
    assert_eq!(questions.len(), 62);

    // Everything outside the answer cells is byte-identical.
    let declared: Vec<_> = questions.iter().flat_map(|q| q.answer_cells()).collect();
    let diffs = rfpq::workbook::verify::verify(&original, &filled, &declared).unwrap();
    assert!(diffs.is_empty(), "changes outside answer cells: {diffs:?}");

    // The knowledge base's text: every passage and every past answer.
    let kb = out.join("kb");
    let version = std::fs::read_to_string(kb.join("CURRENT")).unwrap();
    let chunks = std::fs::read_to_string(
        kb.join("snapshots")
            .join(version.trim())
            .join("chunks.jsonl"),
    )
    .unwrap();
    let passages: Vec<String> = chunks
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let mut t = v["text"].as_str().unwrap_or_default().to_string();
            for a in v["answer"]["values"].as_array().into_iter().flatten() {
                t.push('\n');
                t.push_str(a["value"].as_str().unwrap_or_default());
            }
            t
        })
        .collect();

    let (filled_cells, truth_cells) = (
        common::sheet_cells(&filled, "Security Questionnaire"),
        common::sheet_cells(&truth, "Security Questionnaire"),
    );
    let (mut written, mut right) = (0, 0);
    for q in &questions {
        let choice = q.slots.iter().find(|s| !s.choices.is_empty()).unwrap();
        let comment = q.slots.iter().find(|s| s.choices.is_empty()).unwrap();
        let got = common::cell_text(&filled_cells, choice.cell.row, choice.cell.col);
        let explanation = common::cell_text(&filled_cells, comment.cell.row, comment.cell.col);
        if got.is_empty() {
            assert!(
                explanation.is_empty(),
                "row {}: text without a choice",
                q.row
            );
            continue;
        }
        written += 1;
        let want = common::cell_text(&truth_cells, choice.cell.row, choice.cell.col);
        right += usize::from(got == want);
        // The support check: a written explanation is (nearly) all words of one passage.
        if !explanation.is_empty() {
            let best = passages
                .iter()
                .map(|p| support::overlap(&explanation, p))
                .fold(0.0f32, f32::max);
            assert!(
                best >= 0.9,
                "row {}: {explanation:?} is not supported by any passage ({best:.2})",
                q.row
            );
        }
    }
    let share = written as f64 / questions.len() as f64;
    let precision = right as f64 / written.max(1) as f64;
    eprintln!(
        "written {written}/{} ({:.0} %), right {right}/{written} ({:.0} %)",
        questions.len(),
        share * 100.0,
        precision * 100.0
    );
    assert!(share >= 0.6, "at least 60 % of rows written");
    assert!(precision >= 0.95, "written answers at least 95 % right");

    // rfpq eval prints the figures beside the baseline.
    let eval = common::rfpq_command(&prefix)
        .args([
            "eval",
            out.join("customer-questionnaire.filled.xlsx")
                .to_str()
                .unwrap(),
            "fixtures/eval/demo-truth.xlsx",
        ])
        .output()
        .unwrap();
    eprintln!("{}", String::from_utf8_lossy(&eval.stdout));
    assert!(eval.status.success());
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(common::cleanup(&prefix));
}
