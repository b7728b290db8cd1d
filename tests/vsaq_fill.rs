//! End to end with the real embedded models: the VSAQ questionnaire (111 question rows with
//! dropdowns, free text, formulas, dependent and repeated questions) answered from the CC0
//! answer bank through `rfpq fill --json`; then `rfpq eval` on a copy with planted errors.

mod common;

use calamine::{Data, Reader, Xlsx};
use rfpq::workbook::{CellWrite, SlotKind};
use std::collections::BTreeMap;
use std::io::Cursor;
use std::path::Path;

const VSAQ: &str = "fixtures/vsaq/vsaq-questionnaire.xlsx";

fn run(args: &[&str]) -> serde_json::Value {
    let out = common::rfpq_command("{rfpq-test-vsaq}")
        .args(args)
        .output()
        .expect("rfpq runs");
    assert!(
        out.status.success(),
        "rfpq {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON on stdout")
}

/// (sheet, row) → (status, sources) from the review workbook.
fn review_rows(path: &Path) -> BTreeMap<(String, u32), (String, String)> {
    let mut xl: Xlsx<_> = calamine::open_workbook(path).expect("review opens");
    let range = xl.worksheet_range("Review").unwrap();
    let (status, sources) = (
        common::column(&range, "Status") as usize,
        common::column(&range, "Sources") as usize,
    );
    range
        .rows()
        .skip(1)
        .map(|r| {
            let row = match &r[1] {
                Data::Float(f) => *f as u32,
                other => other.to_string().parse().unwrap(),
            };
            (
                (r[0].to_string(), row),
                (r[status].to_string(), r[sources].to_string()),
            )
        })
        .collect()
}

#[test]
fn vsaq_questionnaire_filled_from_the_answer_bank_and_evaluated() {
    let tmp = tempfile::tempdir().unwrap();
    let kb = tmp.path().join("kb");
    let kb_s = kb.to_str().unwrap();
    run(&[
        "kb",
        "ingest",
        "fixtures/answer-bank-plainanswer",
        "--kb",
        kb_s,
        "--json",
    ]);
    let filled = tmp.path().join("vsaq.filled.xlsx");
    let review = tmp.path().join("vsaq.filled.review.xlsx");
    // The VSAQ bank's questions are not in the answer bank's words (no library match), so
    // nothing would be trusted enough to write; this test checks the cells path and `eval`'s
    // arithmetic, so it asks for the drafts in the cells.
    let report = run(&[
        "--write-drafts",
        "cells",
        "fill",
        VSAQ,
        "--kb",
        kb_s,
        "-o",
        filled.to_str().unwrap(),
        "--json",
    ]);
    let s = &report["summary"];
    eprintln!("{}", serde_json::to_string_pretty(s).unwrap());
    assert_eq!(s["questions"], 111);
    assert_eq!(s["failed"], 0);
    assert_eq!(
        s["drafted"], 0,
        "every draft is written under --write-drafts cells"
    );
    assert!(s["copies"].as_u64().unwrap() >= 8, "Key Controls repeats");
    let per_q = s["llm_calls_per_question"].as_f64().unwrap();
    assert!(per_q <= 2.0, "{per_q} LLM calls per question");
    assert_eq!(
        s["llm_calls"].as_u64().unwrap(),
        s["calls"]["classify"].as_u64().unwrap()
            + s["calls"]["relevance"].as_u64().unwrap()
            + s["calls"]["answer"].as_u64().unwrap()
    );

    // Every choice slot holds a legal value or its row is flagged; nothing outside the answer
    // cells changed (the Score formulas in column E included); answered rows cite sources.
    let original = std::fs::read(VSAQ).unwrap();
    let filled_bytes = std::fs::read(&filled).unwrap();
    let plan = rfpq::workbook::detect::inspect(&original).unwrap();
    let reviewed = review_rows(&review);
    let mut book = Xlsx::new(Cursor::new(filled_bytes.clone())).unwrap();
    let mut choice_slots = 0;
    for q in plan.questions() {
        assert!(
            q.slots.iter().all(|s| s.cell.col != 4),
            "the formula column is no slot"
        );
        let range = book.worksheet_range(&q.sheet).unwrap();
        let (status, sources) = reviewed
            .get(&(q.sheet.clone(), q.row))
            .unwrap_or_else(|| panic!("{}!{} is in the review", q.sheet, q.row));
        for slot in q.slots.iter().filter(|s| s.kind == SlotKind::Choice) {
            choice_slots += 1;
            let v = range
                .get_value((slot.cell.row, slot.cell.col))
                .map(|d| d.to_string())
                .unwrap_or_default();
            if v.is_empty() {
                assert!(
                    status == "needs review" || status == "not applicable",
                    "{}!{} has an empty choice but is '{status}'",
                    q.sheet,
                    q.row
                );
            } else {
                assert!(slot.choices.contains(&v), "{}!{}: {v:?}", q.sheet, q.row);
            }
        }
        if status == "answered" {
            assert!(
                !sources.trim().is_empty(),
                "{}!{} cites nothing",
                q.sheet,
                q.row
            );
        }
    }
    assert!(choice_slots > 80);
    let declared: Vec<_> = plan.questions().flat_map(|q| q.answer_cells()).collect();
    let diffs = rfpq::workbook::verify(&original, &filled_bytes, &declared).unwrap();
    assert!(diffs.is_empty(), "changes outside answer cells: {diffs:?}");

    // A copy of the filled workbook with every other answered choice changed to another legal
    // value: `rfpq eval` must report exactly the agreement planted.
    let mut writes = Vec::new();
    let mut answered = 0;
    for q in plan.questions() {
        let range = book.worksheet_range(&q.sheet).unwrap();
        for slot in q.slots.iter().filter(|s| s.kind == SlotKind::Choice) {
            let v = range
                .get_value((slot.cell.row, slot.cell.col))
                .map(|d| d.to_string())
                .unwrap_or_default();
            if v.is_empty() {
                continue;
            }
            answered += 1;
            if answered % 2 == 0 {
                let other = slot.choices.iter().find(|c| **c != v).unwrap().clone();
                writes.push(CellWrite {
                    sheet: q.sheet.clone(),
                    cell: slot.cell,
                    value: other,
                });
            }
        }
    }
    let planted = writes.len();
    assert!(answered >= 20, "{answered} answered choices");
    let wrong = rfpq::workbook::patch(&filled_bytes, &writes).unwrap();
    let wrong_path = tmp.path().join("half-wrong.xlsx");
    std::fs::write(&wrong_path, wrong).unwrap();
    let ev = run(&[
        "eval",
        wrong_path.to_str().unwrap(),
        filled.to_str().unwrap(),
        "--review",
        review.to_str().unwrap(),
        "--json",
    ]);
    let o = &ev["overall"];
    assert_eq!(o["choice_answered"], answered);
    assert_eq!(o["choice_agree"], answered - planted);
    let agreement = o["choice_agreement"].as_f64().unwrap();
    assert!(
        (agreement - (answered - planted) as f64 / answered as f64).abs() < 1e-9,
        "{agreement}"
    );
    assert!(
        o["text_mean_similarity"].as_f64().unwrap() > 0.999,
        "texts are unchanged"
    );
    assert_eq!(o["coverage"].as_f64(), Some(1.0));
    let bands = ev["by_band"].as_object().unwrap();
    assert!(
        bands
            .keys()
            .all(|b| ["library", "high", "review"].contains(&b.as_str())),
        "{bands:?}"
    );
    let in_bands: u64 = bands
        .values()
        .map(|b| b["choice_answered"].as_u64().unwrap())
        .sum();
    assert_eq!(
        in_bands, answered as u64,
        "every compared slot is in a band"
    );
}
