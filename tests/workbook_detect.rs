//! Detection traps on synthetic workbooks (huge validation, named/x14 lists, formulas); not the real fixtures.

mod common;

use calamine::{Data, Reader, Xlsx};
use common::workbook_util::*;
use rfpq::workbook::{self, CellRef, CellWrite, ListSource, SlotKind};
use rust_xlsxwriter::{DataValidation, Formula, Workbook};
use std::io::Cursor;

/// (cell, kind, choices) of one slot.
type Slot = (String, SlotKind, Vec<String>);
/// (row, id, text, section, slots) of one detected question.
type DetectedRow<'a> = (u32, Option<&'a str>, &'a str, Option<&'a str>, Vec<Slot>);
/// (cell, choices) of one slot.
type SlotChoices = (String, Vec<String>);

fn c(a1: &str) -> CellRef {
    CellRef::parse(a1).expect("cell ref")
}

/// A HECVAT-like vendor tab.
fn vendor_workbook() -> Vec<u8> {
    let mut wb = Workbook::new();
    wb.define_name("YesNo", "=Lists!$A$1:$A$2").unwrap();
    let ws = wb.add_worksheet();
    ws.set_name("Vendor").unwrap();
    ws.write_string(0, 0, "Vendor security questionnaire")
        .unwrap();
    for (col, h) in [
        "ID",
        "Question",
        "Vendor Answers",
        "Additional Information",
        "Guidance",
        "Analyst Notes",
    ]
    .iter()
    .enumerate()
    {
        ws.write_string(2, col as u16, *h).unwrap();
    }
    ws.write_string(3, 0, "Documentation").unwrap();
    let questions = [
        ("DOCU-01", "Do you have a security policy?"),
        ("DOCU-02", "Is it reviewed yearly?"),
        ("DOCU-03", "Do you have an ISMS?"),
        ("DOCU-04", ""),
        ("DOCU-05", "Do you encrypt backups?"),
        ("DOCU-06", "Rate your patch cadence."),
    ];
    for (i, (id, q)) in questions.iter().enumerate() {
        let r = 4 + i as u32;
        ws.write_string(r, 0, *id).unwrap();
        if !q.is_empty() {
            ws.write_string(r, 1, *q).unwrap();
        }
        ws.write_formula(
            r,
            4,
            Formula::new(format!("=\"See guidance \"&A{}", r + 1)).set_result("See guidance"),
        )
        .unwrap();
    }
    // Question text that only exists as a formula's cached value (HECVAT's VLOOKUP).
    ws.write_formula(
        7,
        1,
        Formula::new("=Lists!B1").set_result("What is your uptime SLA?"),
    )
    .unwrap();
    ws.write_string(5, 2, "No").unwrap(); // a real pre-filled answer
    ws.write_formula(6, 2, Formula::new("=\"Yes\"").set_result("Yes"))
        .unwrap(); // answer that is a formula
    let inline = DataValidation::new()
        .allow_list_strings(&["Yes", "No", "N/A"])
        .unwrap();
    ws.add_data_validation(4, 2, 7, 2, &inline).unwrap();
    let named = DataValidation::new().allow_list_formula(Formula::new("=YesNo"));
    ws.add_data_validation(8, 2, 8, 2, &named).unwrap();
    let cross = DataValidation::new().allow_list_formula(Formula::new("='My Lists'!$A$1:$A$3"));
    ws.add_data_validation(9, 2, 9, 2, &cross).unwrap();
    // The pathological validation from a real HECVAT template: ~17 billion cells.
    let huge = DataValidation::new()
        .allow_list_strings(&["a", "b"])
        .unwrap();
    ws.add_data_validation(0, 13, 1_048_575, 16_383, &huge)
        .unwrap();

    let lists = wb.add_worksheet();
    lists.set_name("Lists").unwrap();
    lists.write_string(0, 0, "Yes").unwrap();
    lists.write_string(1, 0, "No").unwrap();
    lists
        .write_string(0, 1, "What is your uptime SLA?")
        .unwrap();
    lists.set_hidden(true);
    let my = wb.add_worksheet();
    my.set_name("My Lists").unwrap();
    for (i, v) in ["Low", "Medium", "High"].iter().enumerate() {
        my.write_string(i as u32, 0, *v).unwrap();
    }
    let eval = wb.add_worksheet();
    eval.set_name("Institution Evaluation").unwrap();
    eval.write_string(0, 0, "Question").unwrap();
    eval.write_string(0, 1, "Score").unwrap();
    eval.write_string(1, 0, "Anything?").unwrap();
    wb.save_to_buffer().unwrap()
}

#[test]
fn vendor_tab_traps() {
    let bytes = vendor_workbook();
    let pkg = workbook::open(&bytes).expect("open");
    let vendor = pkg.sheet("Vendor").expect("sheet");
    let huge = vendor
        .validations
        .iter()
        .find(|v| v.ranges[0].start == c("N1"))
        .expect("huge validation");
    assert_eq!(huge.ranges[0].end, c("XFD1048576"));
    assert_eq!(huge.ranges[0].cell_count(), 16_371 * 1_048_576);
    assert!(vendor.is_formula(c("B8")) && vendor.is_formula(c("C7")) && vendor.is_formula(c("E5")));

    let q = workbook::detect(&pkg);
    assert_eq!(workbook::inspect(&bytes).expect("inspect"), q);
    let plans: Vec<(&str, bool)> = q.sheets.iter().map(|s| (s.name.as_str(), s.fill)).collect();
    assert_eq!(
        plans,
        vec![
            ("Vendor", true),
            ("Lists", false),
            ("My Lists", false),
            ("Institution Evaluation", false)
        ]
    );
    assert_eq!(q.sheets[1].reason, "hidden sheet");
    assert!(
        q.sheets[3].reason.contains("analyst/evaluation"),
        "{}",
        q.sheets[3].reason
    );
    let vendor_plan = &q.sheets[0];
    assert_eq!(vendor_plan.header_row, Some(3));

    let got: Vec<DetectedRow<'_>> = vendor_plan
        .questions
        .iter()
        .map(|r| {
            (
                r.row,
                r.id.as_deref(),
                r.text.as_str(),
                r.section.as_deref(),
                r.slots
                    .iter()
                    .map(|s| (s.cell.to_string(), s.kind, s.choices.clone()))
                    .collect(),
            )
        })
        .collect();
    let yn_na = vec!["Yes".to_string(), "No".into(), "N/A".into()];
    let text = |cell: &str| (cell.to_string(), SlotKind::Text, Vec::new());
    let sec = Some("Documentation");
    assert_eq!(
        got,
        vec![
            (
                5,
                Some("DOCU-01"),
                "Do you have a security policy?",
                sec,
                vec![("C5".into(), SlotKind::Choice, yn_na.clone()), text("D5")]
            ),
            (
                6,
                Some("DOCU-02"),
                "Is it reviewed yearly?",
                sec,
                vec![text("D6")]
            ),
            (
                7,
                Some("DOCU-03"),
                "Do you have an ISMS?",
                sec,
                vec![text("D7")]
            ),
            (
                8,
                Some("DOCU-04"),
                "What is your uptime SLA?",
                sec,
                vec![("C8".into(), SlotKind::Choice, yn_na), text("D8")]
            ),
            (
                9,
                Some("DOCU-05"),
                "Do you encrypt backups?",
                sec,
                vec![
                    (
                        "C9".into(),
                        SlotKind::Choice,
                        vec!["Yes".into(), "No".into()]
                    ),
                    text("D9")
                ]
            ),
            (
                10,
                Some("DOCU-06"),
                "Rate your patch cadence.",
                sec,
                vec![
                    (
                        "C10".into(),
                        SlotKind::Choice,
                        vec!["Low".into(), "Medium".into(), "High".into()]
                    ),
                    text("D10")
                ]
            ),
        ]
    );
    let named = vendor.list_validation_at(c("C9")).expect("validation");
    assert!(
        matches!(&named.source, Some(ListSource::Name { name, sheet, .. }) if name == "YesNo" && sheet == "Lists")
    );

    // Fill it: cells that do not exist yet in the XML (D5…) are inserted; verify is clean.
    let writes: Vec<CellWrite> = q
        .questions()
        .flat_map(|r| {
            r.slots.iter().map(|s| CellWrite {
                sheet: r.sheet.clone(),
                cell: s.cell,
                value: if s.kind == SlotKind::Choice {
                    s.choices[0].clone()
                } else {
                    format!("@ answer for {}", r.row)
                },
            })
        })
        .collect();
    let filled = workbook::patch(&bytes, &writes).expect("patch");
    let decl: Vec<(String, CellRef)> = writes.iter().map(|w| (w.sheet.clone(), w.cell)).collect();
    assert_eq!(
        workbook::verify(&bytes, &filled, &decl).expect("verify"),
        vec![]
    );
    let mut xl: Xlsx<_> = calamine::open_workbook_from_rs(Cursor::new(filled.clone())).unwrap();
    let range = xl.worksheet_range("Vendor").unwrap();
    for w in &writes {
        assert_eq!(
            range.get_value((w.cell.row, w.cell.col)),
            Some(&Data::String(w.value.clone())),
            "{}",
            w.cell
        );
    }
    // The cached question formula is untouched.
    let formulas = xl.worksheet_formula("Vendor").unwrap();
    assert_eq!(
        formulas.get_value((7, 1)).map(String::as_str),
        Some("Lists!B1")
    );
}

#[test]
fn x14_extension_lists_and_prefilled_defaults() {
    let sheet1 = format!(
        r#"{SHEET_OPEN}<dimension ref="A1:C4"/><sheetData><row r="1">{}{}{}</row><row r="2" spans="1:3">{}{}</row><row r="3">{}</row><row r="4">{}<c r="B4" s="0"><v>7</v></c></row></sheetData><dataValidations count="1"><dataValidation type="list" allowBlank="1" sqref="B4"><formula1>Choices</formula1></dataValidation></dataValidations><extLst><ext uri="{{CCE6A557-97BC-4b89-ADB6-D9C93CAAB3DF}}" xmlns:x14="http://schemas.microsoft.com/office/spreadsheetml/2009/9/main"><x14:dataValidations count="1" xmlns:xm="http://schemas.microsoft.com/office/excel/2006/main"><x14:dataValidation type="list" allowBlank="1" showInputMessage="1" showErrorMessage="1"><x14:formula1><xm:f>Lists!$A$1:$A$3</xm:f></x14:formula1><xm:sqref>B2:B3</xm:sqref></x14:dataValidation></x14:dataValidations></ext></extLst></worksheet>"#,
        istr("A1", "Question"),
        istr("B1", "Answer"),
        istr("C1", "Comments"),
        istr("A2", "Do you use MFA?"),
        istr("B2", "Select…"),
        istr("A3", "Do you log access?"),
        istr("A4", "How many admins?"),
    );
    let sheet2 = format!(
        r#"{SHEET_OPEN}<sheetData><row r="1">{}</row><row r="2">{}</row><row r="3">{}</row></sheetData></worksheet>"#,
        istr("A1", "Select…"),
        istr("A2", "Yes"),
        istr("A3", "No"),
    );
    let names = r#"<definedNames><definedName name="Choices" localSheetId="0">Lists!$A$2:$A$3</definedName></definedNames>"#;
    let bytes = hand_package(&sheet1, &sheet2, names, "hidden");
    let pkg = workbook::open(&bytes).expect("open");
    let form = pkg.sheet("Form").expect("form");
    let x14 = form.list_validation_at(c("B2")).expect("x14 validation");
    assert!(x14.extension);
    assert_eq!(x14.choices, ["Select…", "Yes", "No"]);

    let q = workbook::detect(&pkg);
    let rows: Vec<(u32, Vec<SlotChoices>)> = q
        .questions()
        .map(|r| {
            (
                r.row,
                r.slots
                    .iter()
                    .map(|s| (s.cell.to_string(), s.choices.clone()))
                    .collect(),
            )
        })
        .collect();
    let abc = vec!["Select…".to_string(), "Yes".into(), "No".into()];
    assert_eq!(
        rows,
        vec![
            // B2 holds the list's first value ("Select…"): a default, so still a slot.
            (2, vec![("B2".into(), abc.clone()), ("C2".into(), vec![])]),
            (3, vec![("B3".into(), abc), ("C3".into(), vec![])]),
            // B4 holds 7, which is an answer already (and not in the list): left alone.
            (4, vec![("C4".into(), vec![])]),
        ]
    );

    let writes = vec![
        CellWrite {
            sheet: "Form".into(),
            cell: c("B2"),
            value: "Yes".into(),
        },
        CellWrite {
            sheet: "Form".into(),
            cell: c("C3"),
            value: "Logged to SIEM".into(),
        },
        CellWrite {
            sheet: "Form".into(),
            cell: c("C9"),
            value: "new row".into(),
        },
    ];
    let filled = workbook::patch(&bytes, &writes).expect("patch");
    let after = entry_text(&filled, "xl/worksheets/sheet1.xml");
    let tail = &sheet1[sheet1.find("</sheetData>").unwrap()..];
    assert!(
        after.ends_with(tail),
        "x14 extension list kept byte for byte"
    );
    assert!(after.contains(r#"<row r="2" spans="1:3"><c r="A2" t="inlineStr"><is><t>Do you use MFA?</t></is></c><c r="B2" t="inlineStr"><is><t>Yes</t></is></c></row>"#));
    assert!(after.contains(r#"<row r="3"><c r="A3" t="inlineStr"><is><t>Do you log access?</t></is></c><c r="C3" t="inlineStr"><is><t>Logged to SIEM</t></is></c></row>"#));
    assert!(after.contains(
        r#"</row><row r="9"><c r="C9" t="inlineStr"><is><t>new row</t></is></c></row></sheetData>"#
    ));
    let decl: Vec<(String, CellRef)> = writes.iter().map(|w| (w.sheet.clone(), w.cell)).collect();
    assert_eq!(
        workbook::verify(&bytes, &filled, &decl).expect("verify"),
        vec![]
    );
    // Without declaring the new row, verify reports it.
    let diffs = workbook::verify(&bytes, &filled, &decl[..2]).expect("verify");
    assert_eq!(diffs.len(), 1, "{diffs:#?}");
    assert_eq!(diffs[0].cell.as_deref(), Some("C9"));
}
