//! The review workbook read back (calamine) and its layout checked in XML; not the customer's file.

mod common;

use calamine::{Data, Reader, Xlsx};
use common::workbook_util::entry_text;
use rfpq::workbook::review::ReviewSlot;
use rfpq::workbook::{ReviewRow, SlotKind, write_review};
use std::io::Cursor;

fn row(status: &str, confidence: f32) -> ReviewRow {
    ReviewRow {
        sheet: "Checklist".into(),
        row: 8,
        cells: "F8, G8".into(),
        id: Some("DOCU-01".into()),
        question: "Security Center/Defender enabled in all subscriptions".into(),
        answers: "Fulfilled\n=Enabled & audited <yearly> 暗号化".into(),
        confidence,
        band: if confidence >= 0.6 { "high" } else { "review" }.into(),
        sources: vec![
            "policies/security.md#defender".into(),
            "past-answers/2024.xlsx!B7".into(),
        ],
        model: "qwen2.5-7b".into(),
        status: status.into(),
        note: (status != "answered").then(|| format!("why it is {status}")),
        written: status == "answered",
        slots: vec![
            ReviewSlot {
                header: "Status".into(),
                kind: SlotKind::Choice,
                choices: vec!["Fulfilled".into(), "Not fulfilled".into()],
                draft: Some("Fulfilled".into()),
            },
            ReviewSlot {
                header: "Comment".into(),
                kind: SlotKind::Text,
                choices: vec![],
                draft: Some("=Enabled & audited <yearly> 暗号化".into()),
            },
        ],
        kb_version: Some("3f2a9c1d0e4b5a67".into()),
        config_hash: Some("9a8b7c6d".into()),
    }
}

#[test]
fn review_workbook_content_and_layout() {
    let rows = vec![
        row("answered", 0.9),
        row("needs review", 0.4),
        row("failed", 0.0),
        row("answered", 1.5),
        row("not applicable", 1.0),
    ];
    let bytes = write_review(&rows).expect("review");
    let mut xl: Xlsx<_> =
        calamine::open_workbook_from_rs(Cursor::new(bytes.clone())).expect("opens");
    assert_eq!(xl.sheet_names(), vec!["Review", "Summary"]);

    let review = xl.worksheet_range("Review").expect("review sheet");
    let header: Vec<String> = (0..review.width() as u32)
        .map(|c| review.get_value((0, c)).unwrap().to_string())
        .collect();
    assert_eq!(
        header,
        [
            "Sheet",
            "Row",
            "Cell(s)",
            "ID",
            "Question",
            "Answer",
            "Written",
            "Decision",
            "Final: Status",
            "Final: Comment",
            "Confidence",
            "Band",
            "Sources",
            "Model",
            "Status",
            "Note",
            "KB version",
            "Config",
            "Slots"
        ]
    );
    let col = |name: &str| header.iter().position(|h| h == name).unwrap() as u32;
    let at = |r: u32, name: &str| review.get_value((r, col(name))).cloned();
    assert_eq!(review.height(), 6);
    assert_eq!(at(1, "Row"), Some(Data::Float(8.0)));
    assert_eq!(at(1, "Answer"), Some(Data::String(rows[0].answers.clone())));
    assert_eq!(at(1, "Written"), Some(Data::String("yes".into())));
    assert_eq!(at(2, "Written"), Some(Data::String("no".into())));
    assert_eq!(
        at(1, "Decision"),
        Some(Data::Empty),
        "no decision until the reviewer makes one"
    );
    assert_eq!(
        at(1, "Final: Status"),
        Some(Data::String("Fulfilled".into()))
    );
    assert_eq!(
        at(1, "Final: Comment"),
        Some(Data::String("=Enabled & audited <yearly> 暗号化".into())),
        "a draft that looks like a formula stays text"
    );
    assert_eq!(at(1, "Confidence"), Some(Data::Float(0.8999999761581421)));
    assert_eq!(
        at(4, "Confidence"),
        Some(Data::Float(1.0)),
        "confidence clamped"
    );
    assert_eq!(at(2, "Band"), Some(Data::String("review".into())));
    assert_eq!(
        at(2, "Sources"),
        Some(Data::String(rows[1].sources.join("\n")))
    );
    assert_eq!(at(3, "Status"), Some(Data::String("failed".into())));
    assert_eq!(
        at(3, "Note"),
        Some(Data::String("why it is failed".into())),
        "the reason has its own column, so the status stays countable"
    );
    assert_eq!(
        at(1, "KB version"),
        Some(Data::String("3f2a9c1d0e4b5a67".into()))
    );
    assert_eq!(at(1, "Config"), Some(Data::String("9a8b7c6d".into())));

    // Read back: the reviewer's columns and the hidden slots survive the round trip.
    let back = rfpq::workbook::review::read_review(&bytes).unwrap();
    assert_eq!(back.len(), 5);
    assert_eq!(back[0].slots, rows[0].slots);
    assert_eq!(
        back[0].finals,
        vec![
            Some("Fulfilled".to_string()),
            Some("=Enabled & audited <yearly> 暗号化".to_string())
        ]
    );

    let summary = xl.worksheet_range("Summary").expect("summary sheet");
    let counts: Vec<(String, String)> = (0..6)
        .map(|r| {
            (
                summary.get_value((r, 0)).unwrap().to_string(),
                summary.get_value((r, 1)).unwrap().to_string(),
            )
        })
        .collect();
    let expect = [
        ("Status", "Count"),
        ("answered", "2"),
        ("not applicable", "1"),
        ("needs review", "1"),
        ("failed", "1"),
        ("Total", "5"),
    ];
    assert_eq!(counts, expect.map(|(a, b)| (a.to_string(), b.to_string())));

    let xml = entry_text(&bytes, "xl/worksheets/sheet1.xml");
    assert!(
        xml.contains(
            r#"<pane ySplit="1" topLeftCell="A2" activePane="bottomLeft" state="frozen"/>"#
        ),
        "{xml}"
    );
    assert!(xml.contains(r#"<autoFilter ref="A1:R6"/>"#), "{xml}");
    // Dropdowns: Decision on every line, the slot's legal values on its Final column.
    assert!(xml.contains(r#"sqref="H2:H6""#) && xml.contains("\"approve,edit,reject\""));
    assert!(xml.contains(r#"sqref="I2:I6""#) && xml.contains("\"Fulfilled,Not fulfilled\""));
    // The Slots column is hidden.
    assert!(xml.contains(r#"<col min="19" max="19""#) && xml.contains(r#"hidden="1""#));
    assert_eq!(xml.matches("<cfRule").count(), 4);
    for s in ["answered", "not applicable", "needs review", "failed"] {
        assert!(
            xml.contains(&format!("<formula>\"{s}\"</formula>")),
            "conditional format for {s}: {xml}"
        );
    }
    assert!(
        xml.contains(r#"<col min="5" max="5" width="60.7109375""#),
        "the question column is wide"
    );
    let styles = entry_text(&bytes, "xl/styles.xml");
    assert!(styles.contains("<b/>") && styles.contains(r#"wrapText="1""#));
}

#[test]
fn empty_review_and_oversized_text() {
    let bytes = write_review(&[]).expect("empty review");
    let mut xl: Xlsx<_> = calamine::open_workbook_from_rs(Cursor::new(bytes)).expect("opens");
    assert_eq!(xl.worksheet_range("Review").unwrap().height(), 1);

    let mut big = row("answered", 0.5);
    big.answers = "x".repeat(40_000);
    let bytes = write_review(&[big]).expect("long answers are cut, not rejected");
    let mut xl: Xlsx<_> = calamine::open_workbook_from_rs(Cursor::new(bytes)).expect("opens");
    let text = xl
        .worksheet_range("Review")
        .unwrap()
        .get_value((1, 5))
        .unwrap()
        .to_string();
    assert_eq!(text.chars().count(), 32_767);
    assert!(text.ends_with('…'));
}
