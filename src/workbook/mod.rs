//! Workbook engine: reads a customer's questionnaire, finds questions and their answer slots,
//! patches answers back into the original package losslessly, and writes the review workbook.
//! It does not decide what to answer (that is `pipeline`), and it never evaluates formulas.

pub mod convert;
pub mod detect;
mod package;
pub mod patch;
pub mod read;
pub mod review;
mod sheet_xml;
pub mod values;
pub mod verify;
mod xml;

pub use convert::{Loaded, SourceFormat, load};
pub use detect::{detect, inspect, load_and_detect};
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

/// A cell position, 0-based internally; shown, serialized and deserialized as `A1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
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

impl Serialize for CellRef {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for CellRef {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
        Self::parse(&text).ok_or_else(|| {
            serde::de::Error::custom(format!("'{text}' is not a cell reference like C5"))
        })
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
    /// An X-matrix (CAIQ v3 Yes / No / Not Applicable columns): one value out of
    /// `AnswerSlot::choices` (the column labels), written as "X" into the matching cell of
    /// `AnswerSlot::mark_cells`.
    Mark,
    /// A date (date validation or a "Date" column), written as ISO text `YYYY-MM-DD`.
    Date,
}

/// The text an X-matrix cell receives.
pub const MARK: &str = "X";

/// One cell (or, for `Mark`, one group of cells) that receives part of the answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnswerSlot {
    /// The cell written; for `Mark`, the first cell of the group.
    pub cell: CellRef,
    pub kind: SlotKind,
    /// Legal values for `Choice` and `Mark` slots, in list order; empty otherwise.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub choices: Vec<String>,
    /// For `Mark`: the cell of each choice, in the order of `choices`; empty otherwise.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mark_cells: Vec<CellRef>,
    /// The column header above this slot (e.g. "Status", "Comment").
    pub header: String,
}

impl AnswerSlot {
    /// Whether the answer is one of `choices` (`Choice` and `Mark`).
    pub fn is_choice(&self) -> bool {
        matches!(self.kind, SlotKind::Choice | SlotKind::Mark)
    }

    /// Every cell a value for this slot may be written to (declare these to `verify`).
    pub fn cells(&self) -> Vec<CellRef> {
        if self.kind == SlotKind::Mark {
            self.mark_cells.clone()
        } else {
            vec![self.cell]
        }
    }

    /// The writes that put `value` into this slot. For `Choice` and `Mark` the value must be
    /// exactly one of `choices` (map it first, e.g. with the pipeline's `legal_choice`);
    /// otherwise nothing is written. A `Mark` writes "X" into the chosen cell only; a `Date`
    /// is written as given. An empty value writes nothing.
    pub fn writes_for(&self, sheet: &str, value: &str) -> Vec<CellWrite> {
        let value = value.trim();
        if value.is_empty() {
            return Vec::new();
        }
        let write = |cell: CellRef, value: &str| CellWrite {
            sheet: sheet.to_string(),
            cell,
            value: value.to_string(),
        };
        match self.kind {
            SlotKind::Text | SlotKind::Date => vec![write(self.cell, value)],
            SlotKind::Choice => {
                if self.choices.iter().any(|c| c == value) {
                    vec![write(self.cell, value)]
                } else {
                    Vec::new()
                }
            }
            SlotKind::Mark => self
                .choices
                .iter()
                .position(|c| c == value)
                .and_then(|i| self.mark_cells.get(i))
                .map(|cell| vec![write(*cell, MARK)])
                .unwrap_or_default(),
        }
    }
}

/// Why a cell in an answer column of a question row is not a slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    /// The cell holds a formula (never overwritten).
    Formula,
    /// The cell is inside a merged range but not its top-left cell.
    MergedNonAnchor,
    /// The cell already holds a value that is not the list's default (first) value.
    Prefilled,
    /// The cell has a dropdown whose list could not be resolved.
    UnresolvedList,
    /// The cell holds an error value (`#REF!`, `#N/A`, …) but no formula; a formula cell
    /// showing an error is `Formula` (its cached error is the skipped cell's `value`).
    ErrorValue,
}

/// A cell of an answer column that is not written, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SkippedCell {
    pub cell: CellRef,
    pub reason: SkipReason,
    /// The cell's current (cached) value, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
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

impl QuestionRow {
    /// Every cell the slots of this row may write (for `verify`).
    pub fn answer_cells(&self) -> Vec<(String, CellRef)> {
        self.slots
            .iter()
            .flat_map(AnswerSlot::cells)
            .map(|c| (self.sheet.clone(), c))
            .collect()
    }
}

/// What a non-question row is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OtherRowKind {
    /// Title / banner rows above the header.
    Banner,
    /// Long explanatory text.
    Instruction,
    /// The header row itself, its sub-header row, or a repeated header.
    Header,
    /// A section / group label between questions.
    SectionHeader,
    /// "End of Standard" and similar closing rows.
    Footer,
    Copyright,
    /// "Vendor name:", "Contact email" and similar fields about the respondent.
    Contact,
    /// Has question text but no writable answer cell (all formulas, merged or answered).
    NoAnswerCell,
    /// The question or ID cell holds an error value (`#REF!`, `#N/A`, …), e.g. a row whose
    /// lookup formula lost its source: never a question. `OtherRow::cell` names the cell.
    ErrorValue,
    /// "Note: …", "Please note …", "Important: …", "* required": a remark, not a question,
    /// even with an empty answer cell beside it.
    Note,
}

impl OtherRowKind {
    /// Whether a user may expect a row of this kind to be filled (it sits among the questions
    /// and is skipped for a reason worth showing row by row), unlike banners and headers.
    pub fn may_look_fillable(self) -> bool {
        matches!(
            self,
            Self::Contact | Self::NoAnswerCell | Self::ErrorValue | Self::Note
        )
    }
}

/// A non-empty row that is not answered, with what it is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OtherRow {
    /// 1-based row number.
    pub row: u32,
    pub kind: OtherRowKind,
    /// The row's most telling text (question column, else first non-empty cell).
    pub text: String,
    /// The question id, for a `NoAnswerCell` row that has one (an answered question).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// For `ErrorValue`: the cell holding the error (the error itself is `text`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cell: Option<CellRef>,
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
    /// Non-empty rows that are not questions, classified (only for sheets with a layout).
    #[serde(default)]
    pub other_rows: Vec<OtherRow>,
    /// Cells of answer columns on question (and `no_answer_cell`) rows that are not slots.
    #[serde(default)]
    pub skipped_cells: Vec<SkippedCell>,
}

impl SheetPlan {
    /// The skipped cells of one (1-based) row.
    pub fn skipped_in_row(&self, row: u32) -> impl Iterator<Item = &SkippedCell> {
        self.skipped_cells
            .iter()
            .filter(move |s| s.cell.row + 1 == row)
    }
}

/// A question's place: (sheet, 1-based row).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct QuestionKey {
    pub sheet: String,
    pub row: u32,
}

/// Everything detected in a workbook.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Questionnaire {
    pub sheets: Vec<SheetPlan>,
    /// Questions asked more than once on filled sheets (same ID, or same normalized text),
    /// each group in sheet then row order: answer the first, fill every member.
    #[serde(default)]
    pub duplicates: Vec<Vec<QuestionKey>>,
    /// The submitted file's format (.xls/.ods are answered into a new .xlsx).
    #[serde(default)]
    pub source_format: SourceFormat,
    /// What the user must know about how the file is handled (e.g. a format not preserved).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

impl Questionnaire {
    /// Every question on every sheet that is to be filled, in sheet then row order.
    pub fn questions(&self) -> impl Iterator<Item = &QuestionRow> {
        self.sheets
            .iter()
            .filter(|s| s.fill)
            .flat_map(|s| s.questions.iter())
    }

    /// Questions to answer once: every question except later copies of a duplicate group.
    pub fn unique_questions(&self) -> impl Iterator<Item = &QuestionRow> {
        self.questions()
            .filter(|q| self.duplicate_of(&q.sheet, q.row).is_none())
    }

    /// For a later copy of a repeated question, the first occurrence (whose answer it takes);
    /// `None` for first occurrences and questions asked once.
    pub fn duplicate_of(&self, sheet: &str, row: u32) -> Option<&QuestionKey> {
        self.duplicates.iter().find_map(|g| {
            let first = g.first()?;
            g.iter()
                .skip(1)
                .any(|k| k.sheet == sheet && k.row == row)
                .then_some(first)
        })
    }

    /// The question at (sheet, row), if detected.
    pub fn question(&self, sheet: &str, row: u32) -> Option<&QuestionRow> {
        self.questions().find(|q| q.sheet == sheet && q.row == row)
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
    fn cell_refs_serialize_as_a1() {
        let c = CellRef::new(4, 2);
        assert_eq!(serde_json::to_string(&c).unwrap(), r#""C5""#);
        assert_eq!(serde_json::from_str::<CellRef>(r#""C5""#).unwrap(), c);
        assert!(serde_json::from_str::<CellRef>(r#""5C""#).is_err());
        let w = CellWrite {
            sheet: "S".into(),
            cell: CellRef::new(MAX_ROW, MAX_COL),
            value: "v".into(),
        };
        let json = serde_json::to_string(&w).unwrap();
        assert!(json.contains(r#""cell":"XFD1048576""#), "{json}");
        assert_eq!(serde_json::from_str::<CellWrite>(&json).unwrap(), w);
    }

    #[test]
    fn mark_slot_writes_one_x() {
        let slot = AnswerSlot {
            cell: CellRef::new(4, 5),
            kind: SlotKind::Mark,
            choices: vec!["Yes".into(), "No".into(), "Not Applicable".into()],
            mark_cells: vec![CellRef::new(4, 5), CellRef::new(4, 6), CellRef::new(4, 7)],
            header: "Answer".into(),
        };
        assert!(slot.is_choice());
        let w = slot.writes_for("S", "No");
        assert_eq!(w.len(), 1);
        assert_eq!(
            (w[0].cell.to_string(), w[0].value.as_str()),
            ("G5".into(), "X")
        );
        assert!(slot.writes_for("S", "Maybe").is_empty());
        assert_eq!(slot.cells().len(), 3);
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
