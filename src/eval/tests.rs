//! The evaluation end to end on small workbooks built here: comparing a filled copy and its
//! review workbook with the truth, scoring written choices and drafts beside the baselines,
//! and rendering the report. Unit tests of one file's functions live in that file.

use super::baseline::{apply_copies, nearest};
use super::compare::{compare, open, read_review};
use super::score::quality;
use super::*;
use crate::kb::library::LibraryAnswer;
use std::collections::BTreeMap;

const QUESTIONS: [&str; 10] = [
    "Do you encrypt customer data at rest?",
    "Do you enforce multi-factor authentication for administrators?",
    "Do you review access rights every quarter?",
    "Do you run daily backups of production databases?",
    "Do you test restoring a backup at least once a year?",
    "Do you keep an asset inventory of production systems?",
    "Are you certified to ISO 27001?",
    "Do you run phishing simulations for staff?",
    "Do you operate a security information and event management system?",
    "Do you operate your own data centres?",
];
/// The truth: six Yes, three No, one N/A.
const TRUTH: [&str; 10] = [
    "Yes", "Yes", "Yes", "Yes", "Yes", "Yes", "No", "No", "No", "N/A",
];

/// A questionnaire (header row 1: ID, Question, Answer, Comments; a Yes/No/N/A dropdown
/// on Answer) with `answers[i]` in row i + 2's Answer cell and a comment beside each.
fn book(answers: &[Option<&str>], comments: bool) -> Vec<u8> {
    use rust_xlsxwriter::{DataValidation, Workbook};
    let mut wb = Workbook::new();
    let ws = wb.add_worksheet();
    ws.set_name("Security").unwrap();
    for (c, h) in ["ID", "Question", "Answer", "Comments"].iter().enumerate() {
        ws.write_string(0, c as u16, *h).unwrap();
    }
    for (i, q) in QUESTIONS.iter().enumerate() {
        let r = i as u32 + 1;
        ws.write_string(r, 0, format!("SEC-{:02}", i + 1)).unwrap();
        ws.write_string(r, 1, *q).unwrap();
        if let Some(Some(a)) = answers.get(i) {
            ws.write_string(r, 2, *a).unwrap();
            if comments {
                ws.write_string(r, 3, "As our policy states.").unwrap();
            }
        }
    }
    let dv = DataValidation::new()
        .allow_list_strings(&["Yes", "No", "N/A"])
        .unwrap();
    ws.add_data_validation(1, 2, QUESTIONS.len() as u32, 2, &dv)
        .unwrap();
    wb.save_to_buffer().unwrap()
}

/// A review workbook: (row, answer, band, written) per line, columns in an unusual order;
/// without the Written column when `written_column` is false.
fn review_book(lines: &[(u32, &str, &str, bool)], written_column: bool) -> Vec<u8> {
    use rust_xlsxwriter::Workbook;
    let mut wb = Workbook::new();
    let ws = wb.add_worksheet();
    ws.set_name("Review").unwrap();
    let mut heads = vec!["Sheet", "Row", "Band", "Question", "Answer", "Confidence"];
    if written_column {
        heads.insert(2, "Written");
    }
    for (c, h) in heads.iter().enumerate() {
        ws.write_string(0, c as u16, *h).unwrap();
    }
    for (i, (row, answer, band, written)) in lines.iter().enumerate() {
        let r = i as u32 + 1;
        for (c, h) in heads.iter().enumerate() {
            let c = c as u16;
            match *h {
                "Sheet" => ws.write_string(r, c, "Security"),
                "Row" => ws.write_number(r, c, f64::from(*row)),
                "Band" => ws.write_string(r, c, *band),
                "Question" => ws.write_string(r, c, QUESTIONS[*row as usize - 2]),
                "Answer" => ws.write_string(r, c, *answer),
                "Confidence" => ws.write_number(r, c, 0.5),
                _ => ws.write_string(r, c, if *written { "yes" } else { "no" }),
            }
            .unwrap();
        }
    }
    wb.save_to_buffer().unwrap()
}

fn compare_bytes(truth: Vec<u8>, filled: Vec<u8>, review: Option<&[u8]>) -> Vec<SlotComparison> {
    let (tp, tq) = open(truth, "truth").unwrap();
    let (fp, fq) = open(filled, "filled").unwrap();
    let reviewed = review.map(|r| read_review(r).unwrap());
    compare((&tp, &tq), (&fp, &fq), reviewed.as_ref())
}

/// Written: rows 2, 3 (Yes, right), 8 (No, right), 9 (Yes, wrong), 11 ("NA" for N/A,
/// right). Drafts: rows 4 (Yes, right), 5 (No, wrong), 7 (Yes, right), 10 (N/A, wrong);
/// row 6 abstained.
fn filled_and_review(written_column: bool) -> (Vec<u8>, Vec<u8>) {
    let filled = book(
        &[
            Some("Yes"),
            Some("Yes"),
            None,
            None,
            None,
            None,
            Some("No"),
            Some("Yes"),
            None,
            Some("NA"),
        ],
        false,
    );
    let review = review_book(
        &[
            (2, "Yes | Encrypted with AES-256.", "library", true),
            (3, "Yes", "high", true),
            (4, "Yes | Every quarter.", "review", false),
            (5, "We restore it. | No", "review", false),
            (6, "", "", false),
            (7, "Yes", "review", false),
            (8, "No | Not certified.", "high", true),
            (9, "Yes | Yearly.", "high", true),
            (10, "N/A | No SIEM.", "review", false),
            (11, "N/A", "library", true),
        ],
        written_column,
    );
    (filled, review)
}

fn truth_book() -> Vec<u8> {
    let truth: Vec<Option<&str>> = TRUTH.iter().map(|t| Some(*t)).collect();
    book(&truth, true)
}

#[test]
fn written_choices_and_drafts_are_scored_beside_always_majority() {
    let (filled, review) = filled_and_review(true);
    let slots = compare_bytes(truth_book(), filled, Some(&review));
    let q = quality(&slots, true, None);
    assert_eq!(q.choice_slots, 10);
    assert_eq!(q.written, Score::new(5, 4, 10));
    assert_eq!(q.written.precision, Some(0.8));
    assert_eq!(q.written.coverage, Some(0.5));
    assert_eq!(q.written_by_band["library"], Score::new(2, 2, 10));
    assert_eq!(q.written_by_band["high"], Score::new(3, 2, 10));
    assert_eq!(q.drafts, Some(Score::new(4, 2, 10)));
    assert_eq!(q.majority.len(), 1);
    assert_eq!(q.majority[0].value, "Yes");
    assert_eq!(q.majority[0].count, 6);
    // Always "Yes" on every slot, on the written slots (Yes, Yes, No, No, N/A) and on the
    // drafted ones (Yes, Yes, Yes, No).
    assert_eq!(q.always_majority.all, Score::new(10, 6, 10));
    assert_eq!(q.always_majority.on_written, Score::new(5, 2, 10));
    assert_eq!(q.always_majority.on_drafts, Some(Score::new(4, 3, 10)));
    let recall: Vec<(&str, usize, usize, Option<usize>, usize)> = q
        .recall
        .iter()
        .map(|r| {
            (
                r.value.as_str(),
                r.truth,
                r.written,
                r.drafted,
                r.always_majority,
            )
        })
        .collect();
    assert_eq!(
        recall,
        [
            ("Yes", 6, 2, Some(2), 6),
            ("No", 3, 1, Some(0), 0),
            ("N/A", 1, 1, Some(0), 0)
        ]
    );
    assert!(q.recall[0].majority && !q.recall[1].majority);
    let text = q.render();
    assert!(text.contains("always \"Yes\", same slots"), "{text}");
    assert!(text.contains("rfpq: drafts"), "{text}");
}

#[test]
fn without_a_written_column_the_filled_copy_says_what_was_written() {
    let (filled, review) = filled_and_review(true);
    let with = quality(
        &compare_bytes(truth_book(), filled.clone(), Some(&review)),
        true,
        None,
    );
    let (_, review) = filled_and_review(false);
    let slots = compare_bytes(truth_book(), filled, Some(&review));
    assert_eq!(quality(&slots, true, None), with);
    // Row 5's draft is found after its comment.
    let row5 = slots
        .iter()
        .find(|s| s.row == 5 && s.kind == "choice")
        .unwrap();
    assert_eq!(row5.written, Some(false));
    assert_eq!(row5.draft.as_deref(), Some("No"));
    assert_eq!(row5.draft_agrees, Some(false));
}

#[test]
fn without_a_review_workbook_there_are_no_drafts() {
    let (filled, _) = filled_and_review(true);
    let slots = compare_bytes(truth_book(), filled, None);
    let q = quality(&slots, false, None);
    assert_eq!(q.written, Score::new(5, 4, 10));
    assert_eq!(q.drafts, None);
    assert_eq!(q.always_majority.on_drafts, None);
    assert!(q.written_by_band.is_empty());
    assert!(slots.iter().all(|s| s.draft.is_none()));
}

#[test]
fn copy_nearest_takes_the_most_similar_past_answer_mapped_to_legal_values() {
    let (filled, review) = filled_and_review(true);
    let mut slots = compare_bytes(truth_book(), filled, Some(&review));
    let past = |q: &str, a: &str| LibraryAnswer {
        question_id: None,
        question: q.into(),
        values: vec![
            crate::kb::library::SlotValue {
                header: "Comments".into(),
                value: "See the policy.".into(),
            },
            crate::kb::library::SlotValue {
                header: "Answer".into(),
                value: a.into(),
            },
        ],
        location: format!("Past!{q}"),
        section: None,
        approved: false,
    };
    let past = vec![past("yes", "yes"), past("no", "No"), past("na", "NA")];
    let vectors = [
        vec![1.0, 0.0, 0.0],
        vec![0.0, 1.0, 0.0],
        vec![0.0, 0.0, 1.0],
    ];
    assert_eq!(nearest(&[0.1, 0.9, 0.2], &vectors).map(|n| n.0), Some(1));
    // Rows 2-7 copy "yes" (0.9), rows 8-9 "No" (0.6), rows 10-11 "NA" (0.95): all
    // right except row 10 (truly No).
    let mut nearest_of_row = BTreeMap::new();
    for row in 2..=11u32 {
        let n = match row {
            2..=7 => (0, 0.9),
            8 | 9 => (1, 0.6),
            _ => (2, 0.95),
        };
        nearest_of_row.insert(("Security".to_string(), row), n);
    }
    apply_copies(&mut slots, &nearest_of_row, &past);
    let row11 = slots
        .iter()
        .find(|s| s.row == 11 && s.kind == "choice")
        .unwrap();
    assert_eq!(row11.copied.as_deref(), Some("N/A"));
    let q = quality(&slots, true, Some((3, 0.8)));
    let c = q.copy_nearest.as_ref().unwrap();
    assert_eq!(c.scores.all, Score::new(10, 9, 10));
    // At cosine >= 0.8: rows 2-7 and 10-11; row 10 is wrong.
    assert_eq!(c.above_cutoff, Score::new(8, 7, 10));
    // Written rows 2, 3, 8, 9, 11: all right; drafted rows 4, 5, 7, 10: 10 is wrong.
    assert_eq!(c.scores.on_written, Score::new(5, 5, 10));
    assert_eq!(c.scores.on_drafts, Some(Score::new(4, 3, 10)));
    let no = q.recall.iter().find(|r| r.value == "No").unwrap();
    assert_eq!(no.copy_nearest, Some(2));
    assert!(q.render().contains("copy nearest of 3 past questions"));
}
