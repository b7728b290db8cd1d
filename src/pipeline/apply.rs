//! Applies a reviewed review workbook to the customer's original file: approved and edited
//! answers (and the answers rfpq wrote that nobody rejected) are patched in losslessly and
//! the result verified; rejected rows are never touched; a value the customer's cell cannot
//! take is refused with its row and the reason. Reads and writes no files; learning the
//! approved answers is `kb::ingest` of the same review workbook.

use crate::workbook::review::{ReviewedRow, Verdict, read_review};
use crate::workbook::{self, CellRef, CellWrite, Questionnaire, WorkbookError};
use serde::{Deserialize, Serialize};

/// Why applying a review stopped without a final workbook.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("the original workbook cannot be read: {0}")]
    Original(WorkbookError),
    #[error("the review workbook cannot be read: {0}")]
    Review(WorkbookError),
    #[error(
        "none of the review's rows is a question of the original workbook: is it the review of another file?"
    )]
    NoMatch,
    #[error("{} row(s) refused, nothing written (strict): {}", .0.len(), .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Refused(Vec<Refusal>),
    #[error("patching the answers failed: {0}")]
    Patch(WorkbookError),
    #[error(
        "the final workbook would change more than the answer cells ({0}); nothing was written"
    )]
    NotLossless(String),
}

/// A row of the review that was not applied, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Refusal {
    /// Its line in the Review sheet.
    pub review_line: u32,
    /// "Sheet!row" in the customer's file.
    pub location: String,
    pub reason: String,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} (Review line {}): {}",
            self.location, self.review_line, self.reason
        )
    }
}

/// What applying did, row by row counted.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ApplyReport {
    pub approved: usize,
    pub edited: usize,
    pub rejected: usize,
    /// Answers rfpq wrote that had no Decision: kept as written.
    pub kept: usize,
    /// Drafts with no Decision: left out.
    pub undecided: usize,
    pub refused: Vec<Refusal>,
    /// Cells written into the final workbook.
    pub cells: usize,
    /// Locations of the approved and edited rows (what `--learn` adds to the answer library).
    pub reviewed: Vec<String>,
}

/// The final workbook and what went into it.
pub struct Applied {
    pub workbook: Vec<u8>,
    /// The original's format (an .xls/.ods original comes back as .xlsx).
    pub format: workbook::SourceFormat,
    pub report: ApplyReport,
}

fn same_text(a: &str, b: &str) -> bool {
    let norm = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    norm(a) == norm(b)
}

/// Checks a reviewed row against the original's question; returns its writes.
fn writes_of(q: &Questionnaire, r: &ReviewedRow) -> Result<Vec<CellWrite>, String> {
    let question = q.question(&r.sheet, r.row).ok_or_else(|| {
        "not a question row of the original workbook (is this the review of another file?)"
            .to_string()
    })?;
    if !same_text(&question.text, &r.question) {
        return Err(format!(
            "the question differs from the original's (\"{}\")",
            crate::pipeline::support::cut(&question.text, 80)
        ));
    }
    let same_slots = question.slots.len() == r.slots.len()
        && question
            .slots
            .iter()
            .zip(&r.slots)
            .all(|(a, b)| a.kind == b.kind && a.choices == b.choices);
    if !same_slots {
        return Err("its answer cells differ from the original's".into());
    }
    let values = r.legal_finals()?;
    Ok(question
        .slots
        .iter()
        .zip(values)
        .filter_map(|(slot, v)| v.map(|v| slot.writes_for(&r.sheet, &v)))
        .flatten()
        .collect())
}

/// Applies `review` (a review workbook rfpq wrote, as a reviewer left it) to `original` (the
/// customer's file). With `strict`, any refused row fails the whole apply; otherwise refused
/// rows are left out and listed. The final workbook is verified to differ from the original
/// in answer cells only.
pub fn apply(original: &[u8], review: &[u8], strict: bool) -> Result<Applied, ApplyError> {
    let (loaded, questionnaire) =
        workbook::load_and_detect(original.to_vec()).map_err(ApplyError::Original)?;
    let rows = read_review(review).map_err(ApplyError::Review)?;
    let mut report = ApplyReport::default();
    let mut writes: Vec<CellWrite> = Vec::new();
    let mut matched = 0;
    for r in &rows {
        if questionnaire.question(&r.sheet, r.row).is_some() {
            matched += 1;
        }
        let refuse = |reason: String| Refusal {
            review_line: r.line,
            location: r.location(),
            reason,
        };
        let verdict = match r.verdict() {
            Ok(v) => v,
            Err(reason) => {
                report.refused.push(refuse(reason));
                continue;
            }
        };
        match verdict {
            Verdict::Reject => report.rejected += 1,
            Verdict::Undecided => report.undecided += 1,
            Verdict::Approve | Verdict::Edit | Verdict::Keep => {
                match writes_of(&questionnaire, r) {
                    Ok(w) => {
                        writes.extend(w);
                        match verdict {
                            Verdict::Approve => report.approved += 1,
                            Verdict::Edit => report.edited += 1,
                            _ => report.kept += 1,
                        }
                        if verdict.reviewed() {
                            report.reviewed.push(r.location());
                        }
                    }
                    Err(reason) => report.refused.push(refuse(reason)),
                }
            }
        }
    }
    if matched == 0 && !rows.is_empty() {
        return Err(ApplyError::NoMatch);
    }
    if strict && !report.refused.is_empty() {
        return Err(ApplyError::Refused(report.refused));
    }
    let patched = workbook::patch::patch(&loaded.bytes, &writes).map_err(ApplyError::Patch)?;
    let declared: Vec<(String, CellRef)> =
        writes.iter().map(|w| (w.sheet.clone(), w.cell)).collect();
    let differences =
        workbook::verify::verify(&loaded.bytes, &patched, &declared).map_err(ApplyError::Patch)?;
    if let Some(d) = differences.first() {
        return Err(ApplyError::NotLossless(format!(
            "{} difference(s), first: {d}",
            differences.len()
        )));
    }
    report.cells = writes.len();
    Ok(Applied {
        workbook: patched,
        format: questionnaire.source_format,
        report,
    })
}
