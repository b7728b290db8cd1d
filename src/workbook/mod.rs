//! Workbook engine: reads a customer's questionnaire, finds questions and their answer slots,
//! patches answers back into the original package losslessly, and writes the review workbook.
//! It does not decide what to answer (that is `pipeline`), and it never evaluates formulas.

pub mod detect;
mod package;
pub mod patch;
pub mod read;
pub mod review;
mod sheet_xml;
pub mod verify;
mod xml;

pub use detect::{detect, inspect};
pub use package::Limits;
pub use patch::patch;
pub use read::{
    DataValidation, DefinedName, ListSource, SheetInfo, Visibility, WorkbookPackage, open,
    open_with_limits,
};
pub use review::{ReviewRow, write_review};
pub use verify::{Difference, DifferenceKind, verify};

use serde::{Deserialize, Serialize};
use std::fmt;

/// A cell position, 0-based internally; shown as `A1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct CellRef {
    pub row: u32,
    pub col: u32,
}

/// Excel's last column (XFD) and row, 0-based.
pub const MAX_COL: u32 = 16_383;
pub const MAX_ROW: u32 = 1_048_575;

impl CellRef {
    pub const fn new(row: u32, col: u32) -> Self {
        Self { row, col }
    }

    /// Parses `A1`, `$AB$12` (absolute markers are ignored); `None` for anything else,
    /// including positions past Excel's limits (XFD1048576).
    pub fn parse(text: &str) -> Option<Self> {
        let (col, rest) = parse_col_prefix(text)?;
        let row = parse_row(rest)?;
        Some(Self { row, col })
    }

    /// The column letters, e.g. `AB` for col 27.
    pub fn column_name(col: u32) -> String {
        let mut n = col + 1;
        let mut letters = Vec::new();
        while n > 0 {
            let rem = (n - 1) % 26;
            letters.push(b'A' + rem as u8);
            n = (n - 1) / 26;
        }
        letters.reverse();
        String::from_utf8_lossy(&letters).into_owned()
    }
}

/// `$AB` / `AB` at the start of `text`: (0-based column, rest of the text).
fn parse_col_prefix(text: &str) -> Option<(u32, &str)> {
    let text = text.strip_prefix('$').unwrap_or(text);
    let letters = text.bytes().take_while(u8::is_ascii_alphabetic).count();
    if letters == 0 || letters > 3 {
        return None;
    }
    let mut col: u32 = 0;
    for b in text[..letters].bytes() {
        col = col * 26 + u32::from(b.to_ascii_uppercase() - b'A' + 1);
    }
    let col = col - 1;
    (col <= MAX_COL).then_some((col, &text[letters..]))
}

/// `$12` / `12` (the whole text): 0-based row.
fn parse_row(text: &str) -> Option<u32> {
    let digits = text.strip_prefix('$').unwrap_or(text);
    if digits.is_empty() || digits.len() > 7 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let row: u32 = digits.parse().ok()?;
    (1..=MAX_ROW + 1).contains(&row).then(|| row - 1)
}

impl fmt::Display for CellRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}{}",
            Self::column_name(self.col),
            u64::from(self.row) + 1
        )
    }
}

impl std::str::FromStr for CellRef {
    type Err = WorkbookError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s).ok_or_else(|| {
            WorkbookError::Unsupported(format!("'{s}' is not a cell reference like B7"))
        })
    }
}

/// A rectangle of cells (inclusive). Never expanded into cells: a range over a whole sheet
/// (`N1:XFD1048576`) costs the same as `A1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CellRange {
    pub start: CellRef,
    pub end: CellRef,
}

impl CellRange {
    /// Parses `A1`, `A1:B7`, `$A$1:$B$7`, whole columns `A:C` and whole rows `3:5`.
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        let Some((a, b)) = text.split_once(':') else {
            return CellRef::parse(text).map(|c| Self { start: c, end: c });
        };
        if let (Some(s), Some(e)) = (CellRef::parse(a), CellRef::parse(b)) {
            return Some(Self::normalised(s, e));
        }
        // Whole columns (`A:C`).
        if let (Some((c1, "")), Some((c2, ""))) = (parse_col_prefix(a), parse_col_prefix(b)) {
            return Some(Self::normalised(
                CellRef::new(0, c1),
                CellRef::new(MAX_ROW, c2),
            ));
        }
        // Whole rows (`3:5`).
        if let (Some(r1), Some(r2)) = (parse_row(a), parse_row(b)) {
            return Some(Self::normalised(
                CellRef::new(r1, 0),
                CellRef::new(r2, MAX_COL),
            ));
        }
        None
    }

    /// Parses a space-separated `sqref` list (`F8:F165 H2`); unparsable pieces are skipped.
    pub fn parse_list(text: &str) -> Vec<Self> {
        text.split_ascii_whitespace()
            .filter_map(Self::parse)
            .collect()
    }

    fn normalised(a: CellRef, b: CellRef) -> Self {
        Self {
            start: CellRef::new(a.row.min(b.row), a.col.min(b.col)),
            end: CellRef::new(a.row.max(b.row), a.col.max(b.col)),
        }
    }

    pub fn contains(&self, cell: CellRef) -> bool {
        (self.start.row..=self.end.row).contains(&cell.row)
            && (self.start.col..=self.end.col).contains(&cell.col)
    }

    /// Number of cells, without enumerating them.
    pub fn cell_count(&self) -> u64 {
        (u64::from(self.end.row - self.start.row) + 1)
            * (u64::from(self.end.col - self.start.col) + 1)
    }
}

impl fmt::Display for CellRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.start == self.end {
            write!(f, "{}", self.start)
        } else {
            write!(f, "{}:{}", self.start, self.end)
        }
    }
}

/// What an answer slot takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SlotKind {
    /// One value out of `AnswerSlot::choices` (from the cell's data validation).
    Choice,
    /// Free text (explanation, comment).
    Text,
}

/// One cell that receives (part of) the answer to a question.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnswerSlot {
    pub cell: CellRef,
    pub kind: SlotKind,
    /// Legal values for `Choice` slots, in list order; empty for `Text`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub choices: Vec<String>,
    /// The column header above this slot (e.g. "Status", "Comment").
    pub header: String,
}

/// A row that asks something and has at least one answer slot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuestionRow {
    pub sheet: String,
    /// 1-based row number as Excel shows it.
    pub row: u32,
    pub id: Option<String>,
    pub text: String,
    /// Nearest section / area label, when the layout has one (context, not a question).
    pub section: Option<String>,
    pub slots: Vec<AnswerSlot>,
}

/// Detection result for one sheet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SheetPlan {
    pub name: String,
    /// Whether the sheet is to be filled.
    pub fill: bool,
    /// Why it is (not) filled.
    pub reason: String,
    /// 1-based header row, when one was found.
    pub header_row: Option<u32>,
    pub questions: Vec<QuestionRow>,
}

/// Everything detected in a workbook.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Questionnaire {
    pub sheets: Vec<SheetPlan>,
}

impl Questionnaire {
    /// Every question on every sheet that is to be filled, in sheet then row order.
    pub fn questions(&self) -> impl Iterator<Item = &QuestionRow> {
        self.sheets
            .iter()
            .filter(|s| s.fill)
            .flat_map(|s| s.questions.iter())
    }
}

/// One value to write into one cell of the original package.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CellWrite {
    pub sheet: String,
    pub cell: CellRef,
    pub value: String,
}

/// Errors at the workbook boundary; each message is fit to show a user as is.
#[derive(Debug, thiserror::Error)]
pub enum WorkbookError {
    #[error("not a workbook: {0}")]
    NotAWorkbook(String),
    #[error(
        "the workbook is password-protected (encrypted); remove the password and submit it again"
    )]
    Encrypted,
    #[error("the workbook is damaged or truncated: {0}")]
    Corrupt(String),
    #[error("the workbook exceeds a safety limit: {0}")]
    TooLarge(String),
    #[error("unsupported workbook: {0}")]
    Unsupported(String),
    #[error("cannot write {cell} on sheet '{sheet}': {reason}")]
    Refused {
        sheet: String,
        cell: String,
        reason: String,
    },
    #[error("cannot write the review workbook: {0}")]
    Review(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cell_refs_parse_and_print() {
        assert_eq!(CellRef::parse("A1"), Some(CellRef::new(0, 0)));
        assert_eq!(CellRef::parse("$AB$12"), Some(CellRef::new(11, 27)));
        assert_eq!(
            CellRef::parse("XFD1048576"),
            Some(CellRef::new(MAX_ROW, MAX_COL))
        );
        assert_eq!(CellRef::parse("XFE1"), None);
        assert_eq!(CellRef::parse("A0"), None);
        assert_eq!(CellRef::parse("A1048577"), None);
        assert_eq!(CellRef::parse("1A"), None);
        assert_eq!(CellRef::new(7, 5).to_string(), "F8");
        assert_eq!(CellRef::new(MAX_ROW, MAX_COL).to_string(), "XFD1048576");
        assert_eq!("G8".parse::<CellRef>().ok(), Some(CellRef::new(7, 6)));
    }

    #[test]
    fn ranges_are_never_expanded() {
        let r = CellRange::parse("N1:XFD1048576").unwrap();
        assert_eq!(r.cell_count(), 16_371 * 1_048_576);
        assert!(r.contains(CellRef::new(MAX_ROW, MAX_COL)) && !r.contains(CellRef::new(0, 12)));
        assert_eq!(CellRange::parse("$B$2:$B$6").unwrap().to_string(), "B2:B6");
        assert_eq!(
            CellRange::parse("C:D").unwrap().end,
            CellRef::new(MAX_ROW, 3)
        );
        assert_eq!(CellRange::parse("3:4").unwrap().start, CellRef::new(2, 0));
        assert_eq!(CellRange::parse("abc"), None, "a name is not a range");
        assert_eq!(CellRange::parse_list("F8:F165 H2").len(), 2);
    }
}
