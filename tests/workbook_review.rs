//! The review workbook read back (calamine) and its layout checked in XML; not the customer's file.

#[path = "support/workbook_util.rs"]
mod util;

use calamine::{Data, Reader, Xlsx};
use rfpq::workbook::{ReviewRow, write_review};
use std::io::Cursor;
use util::entry_text;

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
    let header: Vec<String> = (0..12)
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
            "Confidence",
            "Band",
            "Sources",
            "Model",
            "Status",
            "Note"
        ]
    );
    assert_eq!(review.height(), 6);
    assert_eq!(review.get_value((1, 1)), Some(&Data::Float(8.0)));
    assert_eq!(
        review.get_value((1, 5)),
        Some(&Data::String(rows[0].answers.clone()))
    );
    assert_eq!(
        review.get_value((1, 6)),
        Some(&Data::Float(0.8999999761581421))
    );
    assert_eq!(
        review.get_value((4, 6)),
        Some(&Data::Float(1.0)),
        "confidence clamped"
    );
    assert_eq!(
        review.get_value((2, 7)),
        Some(&Data::String("review".into()))
    );
    assert_eq!(
        review.get_value((2, 8)),
        Some(&Data::String(rows[1].sources.join("\n")))
    );
    assert_eq!(
        review.get_value((3, 10)),
        Some(&Data::String("failed".into()))
    );
    assert_eq!(
        review.get_value((3, 11)),
        Some(&Data::String("why it is failed".into())),
        "the reason has its own column, so the status stays countable"
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
    assert!(xml.contains(r#"<autoFilter ref="A1:L6"/>"#));
    assert_eq!(xml.matches("<cfRule").count(), 4);
    for s in ["answered", "not applicable", "needs review", "failed"] {
        assert!(
            xml.contains(&format!("<formula>\"{s}\"</formula>")),
            "conditional format for {s}: {xml}"
        );
    }
    assert!(
        xml.contains(r#"<col min="5" max="6" width="60.7109375""#),
        "question/answer columns are wide"
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
