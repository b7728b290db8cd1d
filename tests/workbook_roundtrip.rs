//! Detect → fill → patch → verify on the four real Azure checklists; synthetic traps live in workbook_detect.

mod common;

use calamine::Data;
use common::workbook_util::*;
use rfpq::workbook::{self, CellRef, CellWrite, DifferenceKind, SlotKind, WorkbookError};

const EN_CHOICES: [&str; 5] = ["Not verified", "Open", "Fulfilled", "Not required", "N/A"];
const JA_CHOICES: [&str; 5] = ["未確認", "開ける", "達成", "必要なし", "該当なし"];
const ZH_CHOICES: [&str; 5] = ["未驗證", "打開", "實現", "不需要", "不適用"];

struct Case {
    file: &'static str,
    questions: usize,
    choices: [&'static str; 5],
}

const CASES: [Case; 4] = [
    Case {
        file: "security_checklist.en.xlsx",
        questions: 157,
        choices: EN_CHOICES,
    },
    Case {
        file: "security_checklist.ja.xlsx",
        questions: 157,
        choices: JA_CHOICES,
    },
    Case {
        file: "datasecurity_checklist.en.xlsx",
        questions: 100,
        choices: EN_CHOICES,
    },
    Case {
        file: "datasecurity_checklist.zh-Hant.xlsx",
        questions: 100,
        choices: ZH_CHOICES,
    },
];

/// A text answer exercising escaping, formula-looking text, newlines and CJK.
fn text_answer(i: usize) -> String {
    format!("=SUM(A1) & <b>\"quoted\"</b> 'single' #{i}\nsecond line: 暗号化は有効です 已啟用 ")
}

fn declared(writes: &[CellWrite]) -> Vec<(String, CellRef)> {
    writes.iter().map(|w| (w.sheet.clone(), w.cell)).collect()
}

/// The `<dataValidations>…</dataValidations>` and every `<conditionalFormatting>` of a sheet.
fn validation_and_cf_xml(sheet_xml: &str) -> (String, Vec<String>) {
    let dv_start = sheet_xml.find("<dataValidations").expect("validations");
    let dv_end = sheet_xml
        .find("</dataValidations>")
        .expect("validations end");
    let dv = sheet_xml[dv_start..dv_end].to_string();
    let cf = sheet_xml
        .match_indices("<conditionalFormatting")
        .map(|(i, _)| {
            let end = sheet_xml[i..]
                .find("</conditionalFormatting>")
                .expect("cf end");
            sheet_xml[i..i + end].to_string()
        })
        .collect();
    (dv, cf)
}

#[test]
fn real_checklists_detect_exactly() {
    for case in &CASES {
        let bytes = checklist(case.file);
        let q = workbook::inspect(&bytes).unwrap_or_else(|e| panic!("{}: {e}", case.file));
        let plans: Vec<(&str, bool)> = q.sheets.iter().map(|s| (s.name.as_str(), s.fill)).collect();
        assert_eq!(
            plans,
            vec![("Checklist", true), ("Values", false)],
            "{}",
            case.file
        );
        assert!(
            q.sheets[1].reason.contains("values/lists"),
            "{}",
            q.sheets[1].reason
        );
        let checklist = &q.sheets[0];
        assert_eq!(checklist.header_row, Some(7), "{}", case.file);
        assert_eq!(checklist.questions.len(), case.questions, "{}", case.file);
        let first = &checklist.questions[0];
        assert_eq!(first.row, 8);
        if case.file == "security_checklist.en.xlsx" {
            assert_eq!(
                first.section.as_deref(),
                Some("Defender For Cloud / Pricing & Settings")
            );
        }
        // Every section is "Main Area / Sub Area" as calamine reads them.
        let cells = common::sheet_cells(&bytes, "Checklist");
        for row in &checklist.questions {
            let part = |col: u32| {
                cells
                    .get_value((row.row - 1, col))
                    .map(|d| d.to_string().trim().to_string())
                    .filter(|s| !s.is_empty())
            };
            let expected: Vec<String> = [part(0), part(1)].into_iter().flatten().collect();
            assert_eq!(
                row.section.clone().unwrap_or_default(),
                expected.join(" / "),
                "{} row {}",
                case.file,
                row.row
            );
            assert_eq!(Some(row.text.clone()), part(2), "question text is column C");
        }
        assert_eq!(
            checklist.questions.last().map(|r| r.row),
            Some(7 + case.questions as u32)
        );
        for row in &checklist.questions {
            assert!(!row.text.is_empty());
            assert_eq!(row.slots.len(), 2, "{} row {}", case.file, row.row);
            let at = format!("{} row {}", case.file, row.row);
            let (status, comment) = (&row.slots[0], &row.slots[1]);
            assert_slot(
                status,
                (row.row - 1, 5),
                SlotKind::Choice,
                &case.choices,
                "Status",
                &at,
            );
            assert_slot(
                comment,
                (row.row - 1, 6),
                SlotKind::Text,
                &[],
                "Comment",
                &at,
            );
        }
    }
}

/// Asserts one answer slot of a checklist row: its cell (0-based `(row, col)`), kind, legal
/// choices (none for a text slot) and the header above it; `at` names the row in failures.
fn assert_slot(
    slot: &workbook::AnswerSlot,
    (row, col): (u32, u32),
    kind: SlotKind,
    choices: &[&str],
    header: &str,
    at: &str,
) {
    assert_eq!(slot.cell, CellRef { row, col }, "{at}");
    assert_eq!(slot.kind, kind, "{at}");
    assert_eq!(slot.choices, choices, "{at}");
    assert_eq!(slot.header, header, "{at}");
}

#[test]
fn en_choice_list_is_read_from_the_values_sheet() {
    // The expected list above, read independently from the package with calamine.
    let bytes = checklist("security_checklist.en.xlsx");
    let values = common::sheet_cells(&bytes, "Values");
    let from_file: Vec<String> = (1..=5)
        .map(|r| values.get_value((r, 1)).expect("B cell").to_string())
        .collect();
    assert_eq!(from_file, EN_CHOICES);
    let pkg = workbook::open(&bytes).expect("open");
    let sheet = pkg.sheet("Checklist").expect("sheet");
    assert_eq!(sheet.validations.len(), 1);
    let dv = &sheet.validations[0];
    assert_eq!(dv.formula1.as_deref(), Some("=Values!$B$2:$B$6"));
    assert_eq!(dv.ranges.len(), 1);
    assert_eq!(dv.ranges[0].to_string(), "F8:F165");
    assert!(
        matches!(&dv.source, Some(workbook::ListSource::Range { sheet, .. }) if sheet == "Values")
    );
    assert!(sheet.formulas.is_empty());
}

#[test]
fn fill_patch_verify_every_real_checklist() {
    for case in &CASES {
        let original = checklist(case.file);
        let q = workbook::inspect(&original).expect("inspect");
        let writes = fill_all(&q, text_answer);
        assert_eq!(writes.len(), case.questions * 2);
        let filled =
            workbook::patch(&original, &writes).unwrap_or_else(|e| panic!("{}: {e}", case.file));

        // (a) Every entry but the checklist sheet is byte-identical as stored, in the same order.
        let (ra, rb) = (raw_entries(&original), raw_entries(&filled));
        assert_eq!(
            ra.iter().map(|e| &e.name).collect::<Vec<_>>(),
            rb.iter().map(|e| &e.name).collect::<Vec<_>>()
        );
        for (a, b) in ra.iter().zip(&rb) {
            if a.name == "xl/worksheets/sheet1.xml" {
                assert_ne!(a.crc32, b.crc32);
                assert_eq!(a.method, b.method, "compression method kept");
            } else {
                assert_eq!(a, b, "{}: entry {} must be copied raw", case.file, a.name);
            }
        }

        // (b) verify finds nothing outside the declared cells.
        let diffs = workbook::verify(&original, &filled, &declared(&writes)).expect("verify");
        assert!(diffs.is_empty(), "{}: {diffs:#?}", case.file);

        // (c) …but undeclared cells are reported.
        let diffs = workbook::verify(&original, &filled, &declared(&writes[2..])).expect("verify");
        let cells: Vec<_> = diffs.iter().map(|d| (d.kind, d.cell.clone())).collect();
        assert_eq!(
            cells,
            vec![
                (DifferenceKind::Cell, Some("F8".into())),
                (DifferenceKind::Cell, Some("G8".into()))
            ],
            "{}",
            case.file
        );

        // (d) calamine sees every written value; Values, validations and CF are unchanged.
        let range = common::sheet_cells(&filled, "Checklist");
        for w in &writes {
            let got = range
                .get_value((w.cell.row, w.cell.col))
                .map(|d| d.to_string())
                .unwrap_or_default();
            assert_eq!(got, w.value, "{} {}", case.file, w.cell);
        }
        assert_eq!(
            common::sheet_cells(&filled, "Values"),
            common::sheet_cells(&original, "Values")
        );
        let before = entry_text(&original, "xl/worksheets/sheet1.xml");
        let after = entry_text(&filled, "xl/worksheets/sheet1.xml");
        assert_eq!(
            validation_and_cf_xml(&before),
            validation_and_cf_xml(&after)
        );
        assert!(after.ends_with(&before[before.find("</sheetData>").expect("end")..]));
        assert!(after.starts_with(&before[..before.find("<sheetData>").expect("start")]));
        // Every other cell reads the same.
        let written: std::collections::HashSet<(u32, u32)> =
            writes.iter().map(|w| (w.cell.row, w.cell.col)).collect();
        let original_range = common::sheet_cells(&original, "Checklist");
        for (r, c, v) in original_range.used_cells() {
            let (r, c) = (
                r as u32 + original_range.start().unwrap().0,
                c as u32 + original_range.start().unwrap().1,
            );
            if !written.contains(&(r, c)) {
                assert_eq!(
                    range.get_value((r, c)),
                    Some(v),
                    "{} cell ({r},{c})",
                    case.file
                );
            }
        }

        // The filled file detects as fully answered: no slot is left.
        let again = workbook::inspect(&filled).expect("inspect filled");
        assert_eq!(again.questions().count(), 0, "{}", case.file);
    }
}

#[test]
fn written_cells_keep_their_style_and_escape_text() {
    let original = checklist("security_checklist.en.xlsx");
    let writes = vec![
        CellWrite {
            sheet: "Checklist".into(),
            cell: CellRef::parse("G8").unwrap(),
            value: " <a&b> \"q\" 'x'\n=1+1 ".into(),
        },
        CellWrite {
            sheet: "Checklist".into(),
            cell: CellRef::parse("F8").unwrap(),
            value: "Open".into(),
        },
    ];
    let filled = workbook::patch(&original, &writes).expect("patch");
    let xml = entry_text(&filled, "xl/worksheets/sheet1.xml");
    assert!(xml.contains(r#"<c r="F8" t="inlineStr"><is><t>Open</t></is></c>"#));
    assert!(xml.contains(
        r#"<c r="G8" s="21" t="inlineStr"><is><t xml:space="preserve"> &lt;a&amp;b&gt; "q" 'x'
=1+1 </t></is></c>"#
    ));
}

#[test]
fn patching_is_idempotent() {
    let original = checklist("security_checklist.ja.xlsx");
    let writes = fill_all(&workbook::inspect(&original).expect("inspect"), text_answer);
    let once = workbook::patch(&original, &writes).expect("patch");
    let twice = workbook::patch(&original, &writes).expect("patch again");
    assert_eq!(once, twice, "same writes, same bytes");
    let over = workbook::patch(&once, &writes).expect("patch the filled file");
    assert_eq!(
        over, once,
        "re-applying the writes to the filled file changes nothing"
    );
}

#[test]
fn verify_reports_tampering() {
    let original = checklist("datasecurity_checklist.en.xlsx");
    let writes = fill_all(&workbook::inspect(&original).expect("inspect"), text_answer);
    let decl = declared(&writes);

    // A question cell (not declared) changed along with the answers.
    let mut tampered_writes = writes.clone();
    tampered_writes.push(CellWrite {
        sheet: "Checklist".into(),
        cell: CellRef::parse("C9").unwrap(),
        value: "edited".into(),
    });
    let tampered = workbook::patch(&original, &tampered_writes).expect("patch");
    let diffs = workbook::verify(&original, &tampered, &decl).expect("verify");
    assert_eq!(diffs.len(), 1, "{diffs:#?}");
    assert_eq!(diffs[0].kind, DifferenceKind::Cell);
    assert_eq!(diffs[0].cell.as_deref(), Some("C9"));
    assert!(
        diffs[0].description.contains("\"edited\""),
        "{}",
        diffs[0].description
    );

    // Another part changed.
    let filled = workbook::patch(&original, &writes).expect("patch");
    let app = entry(&filled, "docProps/app.xml");
    let mut app2 = app.clone();
    app2.extend_from_slice(b"<!-- x -->");
    let tampered = replace_entry(&filled, "docProps/app.xml", &app2);
    let diffs = workbook::verify(&original, &tampered, &decl).expect("verify");
    assert!(
        diffs
            .iter()
            .any(|d| d.kind == DifferenceKind::PartContent && d.part == "docProps/app.xml"),
        "{diffs:#?}"
    );

    // Same content, recompressed.
    let recompressed = replace_entry(&filled, "docProps/app.xml", &app);
    let diffs = workbook::verify(&original, &recompressed, &decl).expect("verify");
    assert!(
        diffs.iter().any(|d| d.kind == DifferenceKind::EntryStorage),
        "{diffs:#?}"
    );

    // A byte outside <sheetData> of the patched sheet.
    let sheet = entry_text(&filled, "xl/worksheets/sheet1.xml")
        .replace("zoomScale=\"80\"", "zoomScale=\"90\"");
    let tampered = replace_entry(&filled, "xl/worksheets/sheet1.xml", sheet.as_bytes());
    let diffs = workbook::verify(&original, &tampered, &decl).expect("verify");
    assert!(
        diffs
            .iter()
            .any(|d| d.kind == DifferenceKind::SheetOutsideData),
        "{diffs:#?}"
    );

    // Differences serialise for the CLI.
    let json = serde_json::to_string(&diffs).expect("json");
    assert!(json.contains("sheet_outside_data"));
}

#[test]
fn unknown_sheet_and_formula_cells_are_refused() {
    let original = checklist("security_checklist.en.xlsx");
    let err = workbook::patch(
        &original,
        &[CellWrite {
            sheet: "Nope".into(),
            cell: CellRef::new(0, 0),
            value: "x".into(),
        }],
    )
    .unwrap_err();
    assert!(matches!(err, WorkbookError::Refused { .. }), "{err}");

    // A workbook with a formula, built with rust_xlsxwriter.
    let mut wb = rust_xlsxwriter::Workbook::new();
    let ws = wb.add_worksheet();
    ws.set_name("Form").unwrap();
    ws.write_string(0, 0, "Question").unwrap();
    ws.write_string(0, 1, "Answer").unwrap();
    ws.write_string(1, 0, "Do you encrypt data at rest?")
        .unwrap();
    ws.write_formula(
        1,
        1,
        rust_xlsxwriter::Formula::new("=\"Yes\"").set_result("Yes"),
    )
    .unwrap();
    ws.write_string(2, 0, "Do you have an incident response plan?")
        .unwrap();
    let bytes = wb.save_to_buffer().unwrap();

    let q = workbook::inspect(&bytes).expect("inspect");
    let rows: Vec<(u32, Vec<String>)> = q
        .questions()
        .map(|r| (r.row, r.slots.iter().map(|s| s.cell.to_string()).collect()))
        .collect();
    assert_eq!(
        rows,
        vec![(3, vec!["B3".to_string()])],
        "the formula row offers no slot"
    );

    let err = workbook::patch(
        &bytes,
        &[CellWrite {
            sheet: "Form".into(),
            cell: CellRef::parse("B2").unwrap(),
            value: "No".into(),
        }],
    )
    .unwrap_err();
    match err {
        WorkbookError::Refused {
            sheet,
            cell,
            reason,
        } => {
            assert_eq!((sheet.as_str(), cell.as_str()), ("Form", "B2"));
            assert!(reason.contains("formula"), "{reason}");
        }
        other => panic!("expected Refused, got {other}"),
    }
    // The answer to the other question goes in, and nothing else moves.
    let writes = [CellWrite {
        sheet: "Form".into(),
        cell: CellRef::parse("B3").unwrap(),
        value: "+ yes, tested yearly".into(),
    }];
    let filled = workbook::patch(&bytes, &writes).expect("patch");
    assert!(
        workbook::verify(&bytes, &filled, &declared(&writes))
            .expect("verify")
            .is_empty()
    );
    assert_eq!(
        common::sheet_cells(&filled, "Form").get_value((2, 1)),
        Some(&Data::String("+ yes, tested yearly".into()))
    );
}
