//! The two files a finished job produces: every written outcome patched into the original
//! package, and the review workbook with every question's draft, sources and the job's
//! summary. Does not answer or decide what is written (`RowOutcome::written` says), and does
//! not parse the original again: the plan carries every question's slots.

use super::classify::RowKind;
use super::{CallTally, FillSummary, Plan, RowOutcome};
use crate::workbook::review::{ReviewRow, ReviewSlot, write_review_report};
use crate::workbook::{CellWrite, QuestionRow, WorkbookError};
use std::collections::HashMap;
use std::time::Instant;

/// The two files a finished job produces.
pub struct Assembled {
    pub filled: Vec<u8>,
    pub review: Vec<u8>,
    /// How long patching and writing both workbooks took.
    pub elapsed: std::time::Duration,
}

/// Patches every outcome's values into the original package and writes the review workbook,
/// whose Summary sheet reports what the outcomes themselves tell (row calls and times; no
/// planning or queue figures). Callers that know the whole job use [`assemble_with`].
pub fn assemble(
    original: &[u8],
    plan: &Plan,
    outcomes: &[RowOutcome],
) -> Result<Assembled, WorkbookError> {
    assemble_with(
        original,
        plan,
        outcomes,
        &FillSummary::of(outcomes, &CallTally::default()),
    )
}

/// [`assemble`] with the job's summary (plan-time calls, queue and workbook times) for the
/// review workbook's Summary sheet. `plan` is the job's plan (`outcomes` answer its rows): its
/// question rows give the review workbook's Final columns their headers and legal values, so
/// the original is not parsed again.
pub fn assemble_with(
    original: &[u8],
    plan: &Plan,
    outcomes: &[RowOutcome],
    summary: &FillSummary,
) -> Result<Assembled, WorkbookError> {
    let started = Instant::now();
    let writes: Vec<CellWrite> = outcomes
        .iter()
        .filter(|o| o.written)
        .flat_map(|o| {
            o.values.iter().map(|v| CellWrite {
                sheet: o.sheet.clone(),
                cell: v.cell,
                value: v.value.clone(),
            })
        })
        .collect();
    let filled = crate::workbook::patch::patch(original, &writes)?;
    // The slots (headers, legal values) of every question, for the editable Final columns.
    let questions: HashMap<(&str, u32), &QuestionRow> = plan
        .rows
        .iter()
        .map(|r| ((r.question.sheet.as_str(), r.question.row), &r.question))
        .collect();
    let rows: Vec<ReviewRow> = outcomes
        .iter()
        .filter(|o| o.kind == RowKind::Question)
        .map(|o| ReviewRow {
            sheet: o.sheet.clone(),
            row: o.row,
            band: o.band.map(|b| b.as_str().to_string()).unwrap_or_default(),
            cells: o
                .values
                .iter()
                .map(|v| v.cell.to_string())
                .collect::<Vec<_>>()
                .join(", "),
            id: o.id.clone(),
            question: o.question.clone(),
            answers: o.answers.join(" | "),
            confidence: o.confidence,
            sources: o.sources.clone(),
            model: o.model.clone(),
            status: o.status.label().to_string(),
            note: o.note.clone(),
            written: o.written,
            slots: review_slots(questions.get(&(o.sheet.as_str(), o.row)).copied(), o),
            kb_version: o.kb_version.clone(),
            config_hash: o.config_hash.clone(),
        })
        .collect();
    let review = write_review_report(&rows, &summary.review_report())?;
    Ok(Assembled {
        filled,
        review,
        elapsed: started.elapsed(),
    })
}

/// The review workbook's slots of a row: header, kind and legal values from the questionnaire,
/// the draft from the outcome (a row the questionnaire does not list gets none).
fn review_slots(q: Option<&QuestionRow>, o: &RowOutcome) -> Vec<ReviewSlot> {
    let Some(q) = q else {
        return Vec::new();
    };
    q.slots
        .iter()
        .enumerate()
        .map(|(i, slot)| ReviewSlot {
            header: slot.header.clone(),
            kind: slot.kind,
            choices: slot.choices.clone(),
            draft: o.slot_values.get(i).cloned().flatten(),
        })
        .collect()
}
