//! `rfpq verify ORIGINAL FILLED`: silent about answer cells, loud (exit 1) about anything else.

mod common;

use rfpq::workbook::{CellRef, CellWrite};

fn run(original: &std::path::Path, filled: &std::path::Path, json: bool) -> (i32, String) {
    let mut cmd = common::rfpq_command(&common::prefix("verify"));
    cmd.args([
        "verify",
        original.to_str().unwrap(),
        filled.to_str().unwrap(),
    ]);
    if json {
        cmd.arg("--json");
    }
    let out = cmd.output().expect("binary runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn verify_accepts_answer_cells_and_reports_anything_else() {
    let tmp = tempfile::tempdir().unwrap();
    let original = common::workbook_util::checklist("security_checklist.en.xlsx");
    let orig_path = tmp.path().join("orig.xlsx");
    std::fs::write(&orig_path, &original).unwrap();
    let write = |cell: &str, value: &str| CellWrite {
        sheet: "Checklist".into(),
        cell: CellRef::parse(cell).unwrap(),
        value: value.into(),
    };

    // Only answer cells (Status F, Comment G) written: no differences, exit 0.
    let answered = rfpq::workbook::patch::patch(
        &original,
        &[write("F8", "Fulfilled"), write("G8", "Enabled everywhere")],
    )
    .unwrap();
    let ok_path = tmp.path().join("answered.xlsx");
    std::fs::write(&ok_path, &answered).unwrap();
    let (code, out) = run(&orig_path, &ok_path, false);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("no differences outside the 314 answer cells"),
        "{out}"
    );

    // A question cell (C8) changed as well: reported, exit 1.
    let tampered =
        rfpq::workbook::patch::patch(&answered, &[write("C8", "edited question")]).unwrap();
    let bad_path = tmp.path().join("tampered.xlsx");
    std::fs::write(&bad_path, &tampered).unwrap();
    let (code, out) = run(&orig_path, &bad_path, true);
    assert_eq!(code, 1, "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("JSON on stdout");
    let diffs = v["differences"].as_array().unwrap();
    assert_eq!(diffs.len(), 1, "{out}");
    assert_eq!(diffs[0]["cell"], "C8");
}
