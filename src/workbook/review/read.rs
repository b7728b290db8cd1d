//! Reads a reviewed workbook's Review sheet back (`read_review`) and turns each row's
//! Decision and Final cells into a verdict with legal values; does not write workbooks or
//! decide what a verdict does to the customer's file (`pipeline::apply` does).

use super::{DECISIONS, Decision, MAX_CELL_TEXT, ReviewSlot, ReviewedRow, Verdict, final_columns};
use crate::workbook::{SlotKind, WorkbookError};

impl ReviewSlot {
    /// `raw` as this slot may hold it: a choice mapped onto its legal values ("y" → "Yes",
    /// "n/a" → "N/A"), a date as `YYYY-MM-DD`, text as given (within a cell's limit).
    pub fn legal_value(&self, raw: &str, column: &str) -> Result<String, String> {
        let raw = raw.trim();
        match self.kind {
            SlotKind::Choice | SlotKind::Mark => {
                crate::workbook::values::legal_choice(raw, &self.choices).ok_or_else(|| {
                    format!(
                        "'{raw}' in {column} is not one of the cell's values ({})",
                        self.choices.join(", ")
                    )
                })
            }
            SlotKind::Date => crate::workbook::values::legal_date(raw)
                .ok_or_else(|| format!("'{raw}' in {column} is not a date (YYYY-MM-DD)")),
            SlotKind::Text => {
                if raw.encode_utf16().count() > MAX_CELL_TEXT {
                    Err(format!(
                        "the text in {column} is longer than a cell holds ({MAX_CELL_TEXT} characters)"
                    ))
                } else {
                    Ok(raw.to_string())
                }
            }
        }
    }
}

impl ReviewedRow {
    /// "Sheet!row" of the question in the customer's file.
    pub fn location(&self) -> String {
        format!("{}!{}", self.sheet, self.row)
    }

    /// Whether any Final value differs from its draft.
    pub fn changed(&self) -> bool {
        self.slots.iter().zip(&self.finals).any(|(slot, value)| {
            let draft = slot.draft.as_deref().map(str::trim).unwrap_or("");
            value.as_deref().unwrap_or("") != draft
        })
    }

    /// What the row asks for; `Err` names an unreadable row or an unknown Decision.
    pub fn verdict(&self) -> Result<Verdict, String> {
        if let Some(problem) = &self.problem {
            return Err(problem.clone());
        }
        let decision = if self.decision.is_empty() {
            None
        } else {
            Some(Decision::parse(&self.decision).ok_or_else(|| {
                format!(
                    "Decision '{}' is not one of {}",
                    self.decision,
                    DECISIONS.join(", ")
                )
            })?)
        };
        Ok(match decision {
            Some(Decision::Reject) => Verdict::Reject,
            Some(Decision::Edit) => Verdict::Edit,
            Some(Decision::Approve) if self.changed() => Verdict::Edit,
            Some(Decision::Approve) => Verdict::Approve,
            None if self.changed() => Verdict::Edit,
            None if self.written => Verdict::Keep,
            None => Verdict::Undecided,
        })
    }

    /// The Final values made legal, one per slot (`None`: empty); `Err` names the first value
    /// the customer's cell cannot take, or a row with nothing to write.
    pub fn legal_finals(&self) -> Result<Vec<Option<String>>, String> {
        let names = final_columns(&self.slots);
        let mut out = Vec::with_capacity(self.slots.len());
        for ((slot, value), name) in self.slots.iter().zip(&self.finals).zip(&names) {
            out.push(match value {
                Some(v) => Some(slot.legal_value(v, name)?),
                None => None,
            });
        }
        if out.iter().all(Option::is_none) {
            return Err(
                "every Final cell is empty: nothing to write (reject the row to leave it empty)"
                    .into(),
            );
        }
        Ok(out)
    }
}

/// A cell of a reviewed sheet as text: numbers without a trailing ".0", dates as
/// `YYYY-MM-DD`, booleans as Excel shows them; `None` when empty.
fn cell_text(d: &calamine::Data) -> Option<String> {
    use calamine::Data;
    let text = match d {
        Data::Empty | Data::Error(_) => return None,
        Data::String(s) | Data::DateTimeIso(s) | Data::DurationIso(s) => s.clone(),
        Data::Int(n) => n.to_string(),
        Data::Float(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", *f as i64),
        Data::Float(f) => f.to_string(),
        Data::Bool(b) => if *b { "TRUE" } else { "FALSE" }.to_string(),
        Data::DateTime(dt) => {
            let (y, m, day, ..) = dt.to_ymd_hms_milli();
            format!("{y:04}-{m:02}-{day:02}")
        }
    };
    let text = text.trim().to_string();
    (!text.is_empty()).then_some(text)
}

/// Reads a reviewed workbook's Review sheet (columns found by their headers, so a reviewer
/// may reorder or sort them). Rows the reader cannot make sense of carry a `problem`;
/// the error is for a file that is not a review workbook at all.
pub fn read_review(bytes: &[u8]) -> Result<Vec<ReviewedRow>, WorkbookError> {
    use calamine::Reader;
    let mut xl: calamine::Xlsx<_> = calamine::open_workbook_from_rs(std::io::Cursor::new(bytes))
        .map_err(|e: calamine::XlsxError| {
            WorkbookError::Review(format!("not a readable .xlsx review workbook: {e}"))
        })?;
    let range = xl.worksheet_range("Review").map_err(|_| {
        WorkbookError::Review("no Review sheet: not an rfpq review workbook".into())
    })?;
    let mut lines = range.rows();
    let headers: Vec<String> = lines
        .next()
        .ok_or_else(|| WorkbookError::Review("the Review sheet is empty".into()))?
        .iter()
        .map(|d| cell_text(d).unwrap_or_default())
        .collect();
    let find = |name: &str| headers.iter().position(|h| h == name);
    let need = |name: &str| {
        find(name).ok_or_else(|| {
            WorkbookError::Review(format!(
                "the Review sheet has no '{name}' column (was it made by an older rfpq, or the column deleted?)"
            ))
        })
    };
    let (c_sheet, c_row, c_question, c_decision, c_slots) = (
        need("Sheet")?,
        need("Row")?,
        need("Question")?,
        need("Decision")?,
        need("Slots")?,
    );
    let (c_id, c_written) = (find("ID"), find("Written"));
    let first_line = range.start().map_or(0, |(r, _)| r) + 1;
    let mut out = Vec::new();
    for (i, cells) in lines.enumerate() {
        let get = |c: usize| cells.get(c).and_then(cell_text);
        let Some(sheet) = get(c_sheet) else {
            continue;
        };
        let line = first_line + i as u32 + 1;
        let mut problem = None;
        let row = match get(c_row).and_then(|r| r.parse::<u32>().ok()) {
            Some(r) if r > 0 => r,
            _ => {
                problem = Some("its Row is not a row number".to_string());
                0
            }
        };
        let slots: Vec<ReviewSlot> = match get(c_slots).map(|j| serde_json::from_str(&j)) {
            Some(Ok(slots)) => slots,
            _ => {
                problem.get_or_insert("its hidden Slots cell is missing or changed".to_string());
                Vec::new()
            }
        };
        let mut finals = Vec::with_capacity(slots.len());
        for name in final_columns(&slots) {
            match find(&name) {
                Some(c) => finals.push(get(c)),
                None => {
                    problem.get_or_insert(format!("the '{name}' column is missing"));
                    finals.push(None);
                }
            }
        }
        out.push(ReviewedRow {
            line,
            sheet,
            row,
            id: c_id.and_then(get),
            question: get(c_question).unwrap_or_default(),
            written: c_written
                .and_then(get)
                .is_some_and(|w| w.eq_ignore_ascii_case("yes")),
            decision: get(c_decision).unwrap_or_default(),
            slots,
            finals,
            problem,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workbook::review::{ReviewRow, write_review};
    use rust_xlsxwriter::Workbook;

    fn row(r: u32, written: bool, slots: Vec<ReviewSlot>) -> ReviewRow {
        ReviewRow {
            sheet: "Security".into(),
            row: r,
            cells: format!("C{r}"),
            id: Some(format!("Q{r}")),
            question: format!("Question {r}?"),
            answers: String::new(),
            confidence: 0.5,
            band: "review".into(),
            sources: vec![],
            model: "embedded".into(),
            status: "needs review".into(),
            note: None,
            written,
            slots,
            kb_version: Some("abc".into()),
            config_hash: Some("cfg".into()),
        }
    }

    fn yes_no(draft: Option<&str>) -> ReviewSlot {
        ReviewSlot {
            header: "Answer".into(),
            kind: SlotKind::Choice,
            choices: vec!["Yes".into(), "No".into(), "N/A".into()],
            draft: draft.map(Into::into),
        }
    }

    fn comment(draft: Option<&str>) -> ReviewSlot {
        ReviewSlot {
            header: "Comments".into(),
            kind: SlotKind::Text,
            choices: vec![],
            draft: draft.map(Into::into),
        }
    }

    #[test]
    fn review_reads_back_with_decisions_and_verdicts() {
        let rows = vec![
            row(
                2,
                true,
                vec![yes_no(Some("Yes")), comment(Some("Encrypted."))],
            ),
            row(3, false, vec![yes_no(Some("No")), comment(None)]),
            row(4, false, vec![yes_no(None), comment(None)]),
            // Two slots under one header get numbered Final columns.
            row(
                5,
                false,
                vec![comment(Some("a")), comment(Some("b")), yes_no(Some("N/A"))],
            ),
        ];
        let bytes = write_review(&rows).unwrap();
        let back = read_review(&bytes).unwrap();
        assert_eq!(back.len(), 4);
        assert_eq!(
            back[0].finals,
            vec![Some("Yes".to_string()), Some("Encrypted.".to_string())]
        );
        assert_eq!(back[0].line, 2);
        assert!(back[0].written && !back[1].written);
        assert_eq!(back[3].finals.len(), 3);
        assert_eq!(back[3].finals[1].as_deref(), Some("b"));
        // Nothing decided: a written row is kept, a draft stays out.
        assert_eq!(back[0].verdict(), Ok(Verdict::Keep));
        assert_eq!(back[1].verdict(), Ok(Verdict::Undecided));
        let mut r = back[1].clone();
        r.decision = "Approved".into();
        assert_eq!(r.verdict(), Ok(Verdict::Approve));
        r.finals[0] = Some("yes".into());
        assert_eq!(
            r.verdict(),
            Ok(Verdict::Edit),
            "approve over a change is an edit"
        );
        assert_eq!(r.legal_finals().unwrap()[0].as_deref(), Some("Yes"));
        r.finals[0] = Some("Maybe".into());
        let why = r.legal_finals().unwrap_err();
        assert!(why.contains("'Maybe' in Final: Answer"), "{why}");
        r.decision = "later".into();
        assert!(r.verdict().unwrap_err().contains("'later'"));
        r.decision = "reject".into();
        assert_eq!(r.verdict(), Ok(Verdict::Reject));
        // A row with nothing to write cannot be approved.
        let mut empty = back[2].clone();
        empty.decision = "approve".into();
        assert!(empty.legal_finals().is_err());
        // A changed Final with no Decision is taken as an edit.
        let mut typed = back[2].clone();
        typed.finals[0] = Some("No".into());
        assert_eq!(typed.verdict(), Ok(Verdict::Edit));
    }

    #[test]
    fn a_workbook_without_the_review_columns_is_refused() {
        let mut wb = Workbook::new();
        wb.add_worksheet().set_name("Review").unwrap();
        let bytes = wb.save_to_buffer().unwrap();
        assert!(read_review(&bytes).is_err());
        let mut wb = Workbook::new();
        wb.add_worksheet().write_string(0, 0, "Question").unwrap();
        assert!(read_review(&wb.save_to_buffer().unwrap()).is_err());
    }
}
