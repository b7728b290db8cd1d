//! `rfpq demo` as a newcomer runs it: the bundled real checklist is filled through real Redis
//! with the embedded models, every detected question gets its answer cells, and nothing else in
//! the package changes.

mod common;

use calamine::{Data, Reader, Xlsx};
use std::io::Cursor;

#[test]
fn demo_fills_every_question_and_changes_nothing_else() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("demo");
    let prefix = common::prefix("demo");
    let status = common::rfpq_command(&prefix)
        .args(["demo", "--out", out.to_str().unwrap()])
        .status()
        .expect("rfpq demo runs");
    assert!(status.success());

    let original =
        std::fs::read("fixtures/azure-review-checklists/datasecurity_checklist.en.xlsx").unwrap();
    let filled = std::fs::read(out.join("datasecurity_checklist.en.filled.xlsx"))
        .expect("filled file written");
    assert!(out.join("datasecurity_checklist.en.review.xlsx").exists());

    let plan = rfpq::workbook::detect::inspect(&original).unwrap();
    let questions: Vec<_> = plan.questions().collect();
    assert_eq!(questions.len(), 100);

    // Every detected question has its answer cells filled.
    // Rows the review workbook flags (an abstention, or an unusable explanation) may keep a
    // cell as it was; every other row is filled completely.
    let mut review: Xlsx<_> =
        calamine::open_workbook(out.join("datasecurity_checklist.en.review.xlsx")).unwrap();
    let flagged: std::collections::BTreeSet<u32> = review
        .worksheet_range("Review")
        .unwrap()
        .rows()
        .skip(1)
        .filter(|r| r[10] == "needs review" && !r[11].to_string().is_empty())
        .map(|r| match &r[1] {
            Data::Float(f) => *f as u32,
            other => other.to_string().parse().unwrap(),
        })
        .collect();
    let abstained = review
        .worksheet_range("Review")
        .unwrap()
        .rows()
        .filter(|r| r[11].to_string().contains("insufficient evidence"))
        .count();
    assert!(
        abstained < 50,
        "most rows have evidence: {abstained} abstained"
    );

    let mut book = Xlsx::new(Cursor::new(filled.clone())).unwrap();
    let range = book.worksheet_range("Checklist").unwrap();
    for q in &questions {
        for slot in &q.slots {
            let v = range
                .get_value((slot.cell.row, slot.cell.col))
                .cloned()
                .unwrap_or(Data::Empty);
            let text = v.to_string();
            assert!(
                !text.trim().is_empty() || flagged.contains(&q.row),
                "row {} cell {} is empty",
                q.row,
                slot.cell
            );
            if !slot.choices.is_empty() {
                assert!(
                    slot.choices.contains(&text),
                    "row {}: {text:?} is not a legal choice",
                    q.row
                );
            }
        }
    }

    // Everything outside the answer cells is byte-identical.
    let declared: Vec<_> = questions.iter().flat_map(|q| q.answer_cells()).collect();
    let diffs = rfpq::workbook::verify::verify(&original, &filled, &declared).unwrap();
    assert!(diffs.is_empty(), "changes outside answer cells: {diffs:?}");
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(common::cleanup(&prefix));
}
