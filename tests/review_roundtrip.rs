//! The review round-trip as a proposal team does it, through the `rfpq` binary with the
//! embedded models: fill a questionnaire from the bundled company's KB → edit the review
//! workbook as a person would (approve, change a choice, rewrite a comment, reject a row,
//! answer an abstained row, type an illegal value) → `rfpq apply --learn` → the final file is
//! lossless and holds exactly the decided answers, the illegal value is refused with its row
//! → a second questionnaire with paraphrased questions answers the reviewed rows from the
//! answer library, marked reviewer-approved, with no LLM call.

mod common;

use calamine::Data;
use rfpq::workbook::{CellRef, CellWrite};
use std::collections::HashMap;
use std::io::Cursor;
use std::path::Path;
use std::process::Output;

const QUESTIONS: [&str; 8] = [
    "Do you have an information security policy that is approved by management?",
    "Are you ISO 27001 certified?",
    "Do you have cyber insurance cover?",
    "Do you run phishing simulations for your staff?",
    "Is SCIM user provisioning supported?",
    "Do user sessions time out after a period of inactivity?",
    "Do you perform on-site audits of your key suppliers?",
    "Do you publish a DMARC policy for your email domains?",
];

fn run(args: &[&str]) -> Output {
    let out = common::rfpq_command(&common::prefix("review-roundtrip"))
        .args(args)
        .output()
        .expect("rfpq runs");
    eprintln!(
        "$ rfpq {}\n{}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The review sheet's columns by header, and its line (0-based) per question row.
struct ReviewSheet {
    cols: HashMap<String, u32>,
    line_of_row: HashMap<u32, u32>,
    range: calamine::Range<Data>,
}

impl ReviewSheet {
    fn read(bytes: &[u8]) -> Self {
        let range = common::sheet_cells(bytes, "Review");
        let cols: HashMap<String, u32> = (0..range.width() as u32)
            .map(|c| (common::cell_text(&range, 0, c), c))
            .collect();
        let row_col = cols["Row"];
        let line_of_row = (1..range.height() as u32)
            .map(|l| {
                (
                    common::cell_text(&range, l, row_col)
                        .parse::<u32>()
                        .unwrap(),
                    l,
                )
            })
            .collect();
        Self {
            cols,
            line_of_row,
            range,
        }
    }

    fn get(&self, row: u32, col: &str) -> String {
        common::cell_text(&self.range, self.line_of_row[&row], self.cols[col])
    }

    /// A person typing `value` into `col` of the line of question row `row`.
    fn edit(&self, row: u32, col: &str, value: &str) -> CellWrite {
        CellWrite {
            sheet: "Review".into(),
            cell: CellRef::new(self.line_of_row[&row], self.cols[col]),
            value: value.into(),
        }
    }
}

fn outcomes(path: &Path) -> HashMap<u32, serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (v["row"].as_u64().unwrap() as u32, v)
        })
        .collect()
}

#[test]
fn review_is_applied_losslessly_and_learnt() {
    let tmp = tempfile::tempdir().unwrap();
    let p = |name: &str| tmp.path().join(name).to_string_lossy().into_owned();
    let original = common::questionnaire(&QUESTIONS);
    std::fs::write(p("q.xlsx"), &original).unwrap();

    let ingest = run(&[
        "kb",
        "ingest",
        "fixtures/eval/company",
        "fixtures/eval/past-questionnaire.xlsx",
        "--kb",
        &p("kb"),
        "--no-cache",
    ]);
    assert!(ingest.status.success());
    let fill = run(&[
        "fill",
        &p("q.xlsx"),
        "--kb",
        &p("kb"),
        "-o",
        &p("q.filled.xlsx"),
        "--outcomes",
        &p("q.outcomes.jsonl"),
    ]);
    assert!(fill.status.success());
    let first = outcomes(Path::new(&p("q.outcomes.jsonl")));
    let review = std::fs::read(p("q.filled.review.xlsx")).unwrap();
    let sheet_view = ReviewSheet::read(&review);
    for h in ["Written", "Decision", "Final: Answer", "Final: Comments"] {
        assert!(sheet_view.cols.contains_key(h), "review has a '{h}' column");
    }
    // The draft is pre-filled in the Final columns, and the Written column says which rows
    // went into the customer's file.
    for (row, o) in &first {
        let draft = o["slot_values"][0].as_str().unwrap_or_default();
        assert_eq!(sheet_view.get(*row, "Final: Answer"), draft, "row {row}");
        let written = if o["written"].as_bool().unwrap() {
            "yes"
        } else {
            "no"
        };
        assert_eq!(sheet_view.get(*row, "Written"), written);
    }
    // The reviewer's dropdowns: Decision, and the legal values of the Answer column.
    let sheet_xml = String::from_utf8(common_entry(&review, "xl/worksheets/sheet1.xml")).unwrap();
    assert!(
        sheet_xml.contains("\"approve,edit,reject\""),
        "Decision dropdown"
    );
    assert!(sheet_xml.contains("\"Yes,No,N/A\""), "Answer dropdown");

    // Rows 2..=9 hold QUESTIONS[0..8].
    let kept = 2; // no Decision: stays as rfpq wrote it (if it did)
    let (approved, approve_changed, edited, rejected, illegal, abstained) = (3, 4, 5, 6, 7, 8);
    let comment = "We do not run phishing simulations; every employee completes security awareness training when they join and each year.";
    let audit = "Suppliers are assessed by questionnaire before we engage them; we do not audit them on site.";
    let edits = vec![
        sheet_view.edit(approved, "Decision", "approve"),
        sheet_view.edit(approve_changed, "Decision", "approve"),
        sheet_view.edit(
            approve_changed,
            "Final: Comments",
            "Cyber insurance cover is in place.",
        ),
        sheet_view.edit(approve_changed, "Final: Answer", "Yes"),
        sheet_view.edit(edited, "Decision", "Edit"),
        sheet_view.edit(edited, "Final: Answer", "no"),
        sheet_view.edit(edited, "Final: Comments", comment),
        sheet_view.edit(rejected, "Decision", "reject"),
        sheet_view.edit(illegal, "Decision", "edit"),
        sheet_view.edit(illegal, "Final: Answer", "Maybe"),
        sheet_view.edit(abstained, "Decision", "edit"),
        sheet_view.edit(abstained, "Final: Answer", "No"),
        sheet_view.edit(abstained, "Final: Comments", audit),
    ];
    let reviewed = rfpq::workbook::patch::patch(&review, &edits).unwrap();
    std::fs::write(p("q.reviewed.xlsx"), &reviewed).unwrap();

    // --strict refuses the whole apply over the illegal value and writes nothing.
    let strict = run(&[
        "apply",
        &p("q.xlsx"),
        &p("q.reviewed.xlsx"),
        "-o",
        &p("strict.xlsx"),
        "--strict",
    ]);
    assert!(!strict.status.success());
    assert!(String::from_utf8_lossy(&strict.stderr).contains("'Maybe'"));
    assert!(!Path::new(&p("strict.xlsx")).exists());

    let apply = run(&[
        "apply",
        &p("q.xlsx"),
        &p("q.reviewed.xlsx"),
        "-o",
        &p("q.final.xlsx"),
        "--learn",
        &p("kb"),
    ]);
    assert!(apply.status.success());
    let stderr = String::from_utf8_lossy(&apply.stderr);
    assert!(
        stderr.contains(&format!("refused: Security!{illegal}"))
            && stderr.contains(
                "'Maybe' in Final: Answer is not one of the cell's values (Yes, No, N/A)"
            ),
        "the illegal value is refused with its row and the reason"
    );
    let stdout = String::from_utf8_lossy(&apply.stdout);
    assert!(stdout.contains("learnt: 4 reviewer-approved answers"));

    // Lossless: only answer cells differ from the original.
    let final_bytes = std::fs::read(p("q.final.xlsx")).unwrap();
    let plan = rfpq::workbook::detect::inspect(&original).unwrap();
    let declared: Vec<_> = plan.questions().flat_map(|q| q.answer_cells()).collect();
    let diffs = rfpq::workbook::verify::verify(&original, &final_bytes, &declared).unwrap();
    assert!(diffs.is_empty(), "changes outside answer cells: {diffs:?}");

    let fin = common::sheet_cells(&final_bytes, "Security");
    let filled = common::sheet_cells(&std::fs::read(p("q.filled.xlsx")).unwrap(), "Security");
    let cell = |r: &calamine::Range<Data>, row: u32, col: u32| common::cell_text(r, row - 1, col);
    // Kept: exactly what rfpq wrote (or nothing, for a draft).
    assert_eq!(cell(&fin, kept, 2), cell(&filled, kept, 2));
    assert_eq!(cell(&fin, kept, 3), cell(&filled, kept, 3));
    // Approved as drafted: the draft, even where rfpq had not written it.
    assert_eq!(
        cell(&fin, approved, 2),
        first[&approved]["slot_values"][0]
            .as_str()
            .unwrap_or_default()
    );
    assert_eq!(cell(&fin, approve_changed, 2), "Yes");
    assert_eq!(
        cell(&fin, approve_changed, 3),
        "Cyber insurance cover is in place."
    );
    assert_eq!(
        (cell(&fin, edited, 2), cell(&fin, edited, 3)),
        ("No".to_string(), comment.to_string()),
        "a typed 'no' is written as the list's 'No'"
    );
    assert_eq!(
        (cell(&fin, rejected, 2), cell(&fin, rejected, 3)),
        (String::new(), String::new())
    );
    assert_eq!(
        (cell(&fin, illegal, 2), cell(&fin, illegal, 3)),
        (String::new(), String::new())
    );
    assert_eq!(
        (cell(&fin, abstained, 2), cell(&fin, abstained, 3)),
        ("No".to_string(), audit.to_string())
    );

    // A second questionnaire asks the reviewed questions in other words.
    let second = common::questionnaire(&[
        "Do you run phishing simulations for your employees?",
        "Do you carry out on-site audits of your key suppliers?",
        "Do user sessions time out after a period of inactivity in the application?",
        "Is SCIM-based user provisioning supported?",
    ]);
    std::fs::write(p("q2.xlsx"), &second).unwrap();
    let fill2 = run(&[
        "fill",
        &p("q2.xlsx"),
        "--kb",
        &p("kb"),
        "-o",
        &p("q2.filled.xlsx"),
        "--outcomes",
        &p("q2.outcomes.jsonl"),
    ]);
    assert!(fill2.status.success());
    let second = outcomes(Path::new(&p("q2.outcomes.jsonl")));
    for (row, want, text_want) in [(2, "No", comment), (3, "No", audit)] {
        let o = &second[&row];
        assert_eq!(o["band"], "library", "row {row}: {o}");
        assert_eq!(o["slot_values"][0], want);
        assert_eq!(o["slot_values"][1], text_want);
        assert!(
            o["sources"][0]
                .as_str()
                .unwrap()
                .contains("q.reviewed.xlsx")
                && o["sources"][0]
                    .as_str()
                    .unwrap()
                    .contains("[reviewer-approved]"),
            "{o}"
        );
        let calls = &o["calls"];
        assert_eq!(
            (
                calls["classify"].as_u64(),
                calls["relevance"].as_u64(),
                calls["answer"].as_u64()
            ),
            (Some(0), Some(0), Some(0)),
            "answered from the library with no LLM call: {o}"
        );
    }
    // Neither the refused nor the rejected row was learnt.
    for row in [4, 5] {
        let sources = second[&row]["sources"].to_string();
        assert!(
            !sources.contains("reviewer-approved"),
            "row {row}: {sources}"
        );
    }
}

fn common_entry(bytes: &[u8], name: &str) -> Vec<u8> {
    use std::io::Read;
    let mut zip = zip::ZipArchive::new(Cursor::new(bytes)).unwrap();
    let mut out = Vec::new();
    zip.by_name(name).unwrap().read_to_end(&mut out).unwrap();
    out
}
