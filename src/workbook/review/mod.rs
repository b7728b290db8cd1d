//! Builds the reviewer's workbook (an editable Review sheet + Summary) and reads a reviewed
//! one back (`read_review`); never touches the customer's file and does not decide what a
//! review means for it (`pipeline::apply` does).
//!
//! The Review sheet holds, per question row, the draft (`Answer`), whether it went into the
//! customer's file (`Written`), a `Decision` dropdown (approve / edit / reject) and one
//! `Final: <slot header>` column per answer slot, pre-filled with the draft, choice slots
//! carrying their legal values as a dropdown. A hidden `Slots` column keeps each row's slots
//! (header, kind, legal values, draft) as JSON, so the reviewed file can be read back and
//! checked without the original.
//!
//! The shared types and column names are here; `write` builds the workbook, `read` reads a
//! reviewed one back and turns each row's Decision and Final cells into a [`Verdict`].

mod read;
mod write;

pub use read::read_review;
pub use write::{write_review, write_review_report};

use super::SlotKind;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One line of the review sheet.
#[derive(Debug, Clone, PartialEq)]
pub struct ReviewRow {
    pub sheet: String,
    /// 1-based row of the question in its sheet.
    pub row: u32,
    /// The answer cell(s), e.g. `F8, G8`.
    pub cells: String,
    pub id: Option<String>,
    pub question: String,
    pub answers: String,
    /// 0.0 ..= 1.0.
    pub confidence: f32,
    /// `library`, `high` or `review` (empty for rows not answered).
    pub band: String,
    pub sources: Vec<String>,
    pub model: String,
    /// `answered`, `needs review`, `not applicable`, `failed` (others are shown uncoloured).
    pub status: String,
    /// Why the row needs review or failed, for the reviewer.
    pub note: Option<String>,
    /// The values went into the customer's file (otherwise they are a draft here only).
    pub written: bool,
    /// The row's answer slots with the draft of each, in slot order.
    pub slots: Vec<ReviewSlot>,
    /// The knowledge-base version and router configuration hash that produced the answer.
    pub kb_version: Option<String>,
    pub config_hash: Option<String>,
}

/// One answer slot of a review row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReviewSlot {
    /// The slot's column header in the customer's sheet ("Answer", "Comments").
    pub header: String,
    pub kind: SlotKind,
    /// Legal values of a choice or X-matrix slot.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub choices: Vec<String>,
    /// What rfpq drafted for it (a choice slot's label).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub draft: Option<String>,
}

/// What the reviewer decided for a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    /// Write the Final values as they stand.
    Approve,
    /// Write the Final values the reviewer changed.
    Edit,
    /// Write nothing for this row.
    Reject,
}

/// The Decision dropdown's values, in list order.
pub const DECISIONS: [&str; 3] = ["approve", "edit", "reject"];

impl Decision {
    /// Reads a Decision cell ("Approve", "approved", " edit " …); `None` for anything else.
    pub fn parse(text: &str) -> Option<Self> {
        match text.trim().to_lowercase().as_str() {
            "approve" | "approved" | "ok" => Some(Self::Approve),
            "edit" | "edited" => Some(Self::Edit),
            "reject" | "rejected" => Some(Self::Reject),
            _ => None,
        }
    }
}

/// One row of a reviewed Review sheet, as the reviewer left it.
#[derive(Debug, Clone, PartialEq)]
pub struct ReviewedRow {
    /// 1-based row of the Review sheet (for messages).
    pub line: u32,
    pub sheet: String,
    pub row: u32,
    pub id: Option<String>,
    pub question: String,
    pub written: bool,
    /// The Decision cell's text, trimmed (empty: no decision).
    pub decision: String,
    /// The row's slots as written (from the hidden Slots column).
    pub slots: Vec<ReviewSlot>,
    /// The Final value of each slot, in slot order (`None`: empty cell).
    pub finals: Vec<Option<String>>,
    /// Why the row cannot be read (missing Slots, a Final column removed …).
    pub problem: Option<String>,
}

/// What the whole job did, for the Summary sheet (under the status and band counts).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReviewReport {
    /// (label, value) lines: counts, questions per minute, calls, tokens, fallbacks.
    pub figures: Vec<(String, f64)>,
    /// Calls and tokens per task and model.
    pub usage: Vec<UsageLine>,
    /// (stage, seconds).
    pub time: Vec<(String, f64)>,
    /// What the times mean, written under them.
    pub time_note: String,
}

/// One line of the Summary sheet's calls-and-tokens table.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UsageLine {
    pub task: String,
    /// `provider:model`.
    pub model: String,
    pub calls: u64,
    pub prompt_tokens: u64,
    /// Generated tokens.
    pub eval_tokens: u64,
}

/// Headers of the Summary sheet's sections: job figures, usage table, time split.
pub const REPORT_HEADERS: [&str; 3] = ["Job", "Task", "Time"];

/// Prefix of the editable answer columns' headers.
pub const FINAL_PREFIX: &str = "Final: ";

/// The Final column name of each slot of a row: `Final: <header>`, a repeated header numbered.
pub fn final_columns(slots: &[ReviewSlot]) -> Vec<String> {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    slots
        .iter()
        .map(|slot| {
            let header = slot.header.split_whitespace().collect::<Vec<_>>().join(" ");
            let header = if header.is_empty() {
                "Answer".to_string()
            } else {
                header
            };
            let n = seen.entry(header.clone()).or_default();
            *n += 1;
            if *n == 1 {
                format!("{FINAL_PREFIX}{header}")
            } else {
                format!("{FINAL_PREFIX}{header} ({n})")
            }
        })
        .collect()
}

/// Excel's limit for one cell's text (UTF-16 code units).
const MAX_CELL_TEXT: usize = 32_767;

/// What a reviewed row asks for, its Decision and Final cells read together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Approved as drafted.
    Approve,
    /// Final values changed (by `edit`, by `approve` over changed values, or with no Decision).
    Edit,
    /// Rejected: nothing is written for the row.
    Reject,
    /// No Decision on an answer rfpq already wrote into the file: it stays as written.
    Keep,
    /// No Decision on a draft: it stays out of the file.
    Undecided,
}

impl Verdict {
    /// The reviewer stood behind the values (approve or edit): they may be learnt.
    pub fn reviewed(self) -> bool {
        matches!(self, Self::Approve | Self::Edit)
    }

    /// The values go into the final file.
    pub fn writes(self) -> bool {
        matches!(self, Self::Approve | Self::Edit | Self::Keep)
    }
}
