//! Reads cells back from a workbook with calamine (answers, review sheets by header); does not
//! build or patch workbooks.

/// One sheet of a workbook as calamine reads it.
pub fn sheet_cells(bytes: &[u8], sheet: &str) -> calamine::Range<calamine::Data> {
    use calamine::Reader;
    let mut book = calamine::Xlsx::new(std::io::Cursor::new(bytes.to_vec())).unwrap();
    book.worksheet_range(sheet).unwrap()
}

/// A cell's value as trimmed text (empty for an empty cell); 0-based row and column.
pub fn cell_text(range: &calamine::Range<calamine::Data>, row: u32, col: u32) -> String {
    range
        .get_value((row, col))
        .map(|v| v.to_string())
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// The 0-based column of the header `name` in row 0 (review sheets are read by header).
pub fn column(range: &calamine::Range<calamine::Data>, name: &str) -> u32 {
    (0..range.width() as u32)
        .find(|c| cell_text(range, 0, *c) == name)
        .unwrap_or_else(|| panic!("no '{name}' column"))
}

/// Every question row (1..=`questions`) of a filled [`questionnaire`](super::questionnaire)
/// sheet holds a legal value in its Answer column (C), or is empty and flagged `needs review`
/// in the review sheet (an abstention). `what` names the file in a failure.
pub fn assert_answered_or_flagged(
    filled: &calamine::Range<calamine::Data>,
    review: &calamine::Range<calamine::Data>,
    questions: u32,
    what: &str,
) {
    for row in 1..=questions {
        let answer = filled
            .get_value((row, 2))
            .map(|v| v.to_string())
            .unwrap_or_default();
        let status = review
            .get_value((row, column(review, "Status")))
            .unwrap()
            .to_string();
        assert!(
            ["Yes", "No", "N/A"].contains(&answer.as_str())
                || (answer.is_empty() && status == "needs review"),
            "{what} row {row}: answer {answer:?}, status {status}"
        );
    }
}
