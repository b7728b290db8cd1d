//! Detection and lossless fill on a HECVAT 4 START HERE-like tab: question text from lookup
//! formulas (cached values), a general-information block above the header, "Note: …" rows
//! between blocks, error values (`#REF!`, `#N/A`, `#SPILL!`) in ID, question and answer cells.

mod common;

use common::synthetic::{START_HERE_GNRL, START_HERE_REQU, hecvat4_start_here};
use common::workbook_util::{entry_text, fill_all, raw_entries};
use rfpq::workbook::{self, CellRef, OtherRowKind, Questionnaire, SheetPlan, SkipReason, SlotKind};

const SHEET: &str = "START HERE";
const PART: &str = "xl/worksheets/sheet1.xml";

/// (row, kind, id, cell, text) of a non-question row.
type Other<'a> = (u32, OtherRowKind, Option<&'a str>, Option<String>, &'a str);

fn plan(q: &Questionnaire) -> &SheetPlan {
    q.sheets.iter().find(|s| s.name == SHEET).expect("sheet")
}

fn cell(a1: &str) -> CellRef {
    CellRef::parse(a1).expect("cell")
}

/// (cell, kind, choices) of each slot of the question at `row`.
fn slots(p: &SheetPlan, row: u32) -> Vec<(String, SlotKind, Vec<String>)> {
    let q = p.questions.iter().find(|q| q.row == row).expect("question");
    q.slots
        .iter()
        .map(|s| (s.cell.to_string(), s.kind, s.choices.clone()))
        .collect()
}

fn skipped(p: &SheetPlan, row: u32) -> Vec<(String, SkipReason, Option<&str>)> {
    p.skipped_in_row(row)
        .map(|s| (s.cell.to_string(), s.reason, s.value.as_deref()))
        .collect()
}

#[test]
fn errors_are_read_with_their_literal_even_when_calamine_does_not_know_them() {
    let bytes = hecvat4_start_here();
    let pkg = workbook::open(&bytes).expect("open");
    let sheet = pkg.sheet(SHEET).expect("sheet");
    let errors: Vec<String> = sheet.errors.iter().map(ToString::to_string).collect();
    let mut want = vec!["C18".to_string(), "C19".to_string()];
    for r in 20..=26 {
        want.extend([format!("A{r}"), format!("B{r}"), format!("E{r}")]);
    }
    want.sort_by_key(|c| cell(c));
    assert_eq!(errors, want);
    assert_eq!(sheet.value(cell("B26")), Some("#SPILL!"));
    assert_eq!(sheet.value(cell("C18")), Some("#N/A"));
    assert!(
        !sheet.is_formula(cell("C18")),
        "a literal error, no formula"
    );
    assert!(sheet.is_formula(cell("A20")) && sheet.is_formula(cell("B4")));
    assert_eq!(
        sheet.value(cell("B4")),
        Some("Company name"),
        "a formula's cached value"
    );
    assert_eq!(sheet.value(cell("A27")), None, "nothing after the last row");
}

#[test]
fn blocks_notes_and_errors_detect_exactly() {
    let q = workbook::inspect(&hecvat4_start_here()).expect("inspect");
    let fills: Vec<(&str, bool, &str)> = q
        .sheets
        .iter()
        .map(|s| (s.name.as_str(), s.fill, s.reason.as_str()))
        .collect();
    assert_eq!(fills[1], ("Questions", false, "hidden sheet"));
    let p = plan(&q);
    assert!(p.fill);
    assert_eq!(p.header_row, Some(10));
    assert!(
        p.reason
            .ends_with("; 12 questions (5 in a block above the header row)"),
        "{}",
        p.reason
    );

    let got: Vec<(u32, Option<&str>, &str, Option<&str>)> = p
        .questions
        .iter()
        .map(|r| {
            (
                r.row,
                r.id.as_deref(),
                r.text.as_str(),
                r.section.as_deref(),
            )
        })
        .collect();
    let mut want: Vec<(u32, Option<&str>, &str, Option<&str>)> = Vec::new();
    for (i, (id, text)) in START_HERE_GNRL.iter().enumerate() {
        want.push((4 + i as u32, Some(id), text, Some("General Information")));
    }
    for ((id, text), row) in START_HERE_REQU[..7]
        .iter()
        .zip([11, 12, 13, 14, 16, 17, 18])
    {
        want.push((row, Some(id), text, None));
    }
    assert_eq!(got, want);

    let yes_no = vec!["Yes".to_string(), "No".to_string()];
    let text = |c: &str| (c.to_string(), SlotKind::Text, Vec::new());
    let choice = |c: &str| (c.to_string(), SlotKind::Choice, yes_no.clone());
    for row in 4..=8 {
        assert_eq!(slots(p, row), vec![text(&format!("C{row}"))], "row {row}");
        assert_eq!(
            skipped(p, row),
            vec![(format!("D{row}"), SkipReason::MergedNonAnchor, None)]
        );
    }
    for row in [11, 12, 13, 16, 17] {
        assert_eq!(
            slots(p, row),
            vec![choice(&format!("C{row}")), text(&format!("D{row}"))],
            "row {row}"
        );
        assert!(skipped(p, row).is_empty());
    }
    assert_eq!(
        slots(p, 14),
        vec![text("C14"), text("D14")],
        "'Please describe …' is a question"
    );
    assert_eq!(slots(p, 18), vec![text("D18")]);
    assert_eq!(
        skipped(p, 18),
        vec![("C18".to_string(), SkipReason::ErrorValue, Some("#N/A"))],
        "a literal error is neither an answer nor a formula"
    );
    assert_eq!(
        skipped(p, 19),
        vec![
            ("C19".to_string(), SkipReason::Formula, Some("#N/A")),
            ("D19".to_string(), SkipReason::Formula, Some("Not stated")),
        ],
        "a formula showing an error is still a formula"
    );

    let others: Vec<Other<'_>> = p
        .other_rows
        .iter()
        .map(|o| {
            (
                o.row,
                o.kind,
                o.id.as_deref(),
                o.cell.map(|c| c.to_string()),
                o.text.as_str(),
            )
        })
        .collect();
    let mut want = vec![
        (
            1,
            OtherRowKind::Banner,
            None,
            None,
            "HECVAT 4.1.4 | START HERE",
        ),
        (2, OtherRowKind::Instruction, None, None, ""),
        (3, OtherRowKind::Banner, None, None, "General Information"),
        (
            9,
            OtherRowKind::Note,
            None,
            None,
            "Note: The Privacy tab is required for every product that stores personal data.",
        ),
        (10, OtherRowKind::Header, None, None, "ID"),
        (
            15,
            OtherRowKind::Note,
            None,
            None,
            "NOTE - Answer REQU-05 and REQU-06 for the product named in GNRL-02.",
        ),
        (
            19,
            OtherRowKind::NoAnswerCell,
            Some("REQU-08"),
            None,
            START_HERE_REQU[7].1,
        ),
    ];
    for r in 20..=26 {
        want.push((
            r,
            OtherRowKind::ErrorValue,
            None,
            Some(format!("A{r}")),
            "#REF!",
        ));
    }
    // The instruction's text is long; compare it by its start.
    let others: Vec<_> = others
        .into_iter()
        .map(|(r, k, i, c, t)| {
            let t = if k == OtherRowKind::Instruction {
                assert!(t.starts_with("Complete the general information"), "{t}");
                ""
            } else {
                t
            };
            (r, k, i, c, t)
        })
        .collect();
    assert_eq!(others, want);

    // The new kinds and fields reach the JSON that `rfpq inspect --json` prints.
    let json = serde_json::to_value(&q).expect("json");
    let rows = json["sheets"][0]["other_rows"].as_array().expect("rows");
    let row = |n: u64| rows.iter().find(|o| o["row"] == n).expect("row");
    assert_eq!(
        row(20),
        &serde_json::json!({"row": 20, "kind": "error_value", "text": "#REF!", "cell": "A20"})
    );
    assert_eq!(row(15)["kind"], "note");
    let skipped = json["sheets"][0]["skipped_cells"]
        .as_array()
        .expect("cells");
    assert!(
        skipped.contains(
            &serde_json::json!({"cell": "C18", "reason": "error_value", "value": "#N/A"})
        ),
        "{skipped:?}"
    );
}

#[test]
fn filling_changes_only_answer_cells_and_never_a_formula() {
    let original = hecvat4_start_here();
    let q = workbook::inspect(&original).expect("inspect");
    let writes = fill_all(&q, |i| format!("=answer {i} & <text>"));
    // 5 GNRL (C) + REQU-01..06 (C and D) + REQU-07 (D).
    assert_eq!(writes.len(), 5 + 6 * 2 + 1);
    let filled = workbook::patch(&original, &writes).expect("patch");

    // Every other zip entry is copied raw, in the same order.
    let (a, b) = (raw_entries(&original), raw_entries(&filled));
    assert_eq!(
        a.iter().map(|e| &e.name).collect::<Vec<_>>(),
        b.iter().map(|e| &e.name).collect::<Vec<_>>()
    );
    for (x, y) in a.iter().zip(&b) {
        if x.name == PART {
            assert_ne!(x.crc32, y.crc32);
        } else {
            assert_eq!(x, y, "{} must be copied raw", x.name);
        }
    }
    // verify sees changes only in the declared answer cells.
    let declared: Vec<(String, CellRef)> = q
        .questions()
        .flat_map(workbook::QuestionRow::answer_cells)
        .collect();
    let diffs = workbook::verify(&original, &filled, &declared).expect("verify");
    assert!(diffs.is_empty(), "{diffs:#?}");

    // Every formula cell (question lookups, the `=#REF!` IDs, the formula answers of row 19)
    // is byte-identical in the sheet XML.
    let pkg = workbook::open(&original).expect("open");
    let formulas = &pkg.sheet(SHEET).expect("sheet").formulas;
    assert_eq!(formulas.len(), 2 + 5 * 2 + 8 + 2 + 7 * 3);
    let (before, after) = (entry_text(&original, PART), entry_text(&filled, PART));
    let cell_xml = |xml: &str, c: &CellRef| {
        let start = xml.find(&format!("<c r=\"{c}\"")).expect("cell");
        let end = start + xml[start..].find("</c>").expect("end");
        xml[start..end].to_string()
    };
    for c in formulas {
        assert_eq!(cell_xml(&before, c), cell_xml(&after, c), "{c}");
    }
    assert_eq!(
        cell_xml(&before, &cell("C18")),
        cell_xml(&after, &cell("C18"))
    );

    // The written values read back; the filled tab has no open slot, and the error, note
    // and formula rows are still what they were.
    let again = workbook::open(&filled).expect("open filled");
    let sheet = again.sheet(SHEET).expect("sheet");
    for w in &writes {
        assert_eq!(sheet.value(w.cell), Some(w.value.as_str()), "{}", w.cell);
    }
    let q2 = workbook::inspect(&filled).expect("inspect filled");
    assert_eq!(q2.questions().count(), 0);
    let kinds = |q: &Questionnaire, k: OtherRowKind| {
        plan(q)
            .other_rows
            .iter()
            .filter(|o| o.kind == k)
            .map(|o| o.row)
            .collect::<Vec<_>>()
    };
    for k in [OtherRowKind::ErrorValue, OtherRowKind::Note] {
        assert_eq!(kinds(&q2, k), kinds(&q, k), "{k:?}");
    }
    assert_eq!(
        kinds(&q2, OtherRowKind::NoAnswerCell),
        vec![4, 5, 6, 7, 8, 11, 12, 13, 14, 16, 17, 18, 19],
        "answered questions, above the header too"
    );
}
