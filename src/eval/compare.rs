//! Reading the three workbooks (truth, filled copy, review workbook) and comparing them
//! answer unit by answer unit (a cell, or an X-matrix group): what the truth says, what the
//! filled copy says, whether the row was written and its draft. Does not score (that is
//! `score`) or embed anything.

use super::score::agrees_with;
use super::{EvalError, SlotComparison};
use crate::pipeline::answer::legal_choice;
use crate::workbook::{
    self, CellRef, OtherRowKind, SheetInfo, SkipReason, SlotKind, WorkbookPackage,
};
use std::collections::{BTreeMap, BTreeSet};

/// What the review workbook says about one row.
#[derive(Debug, Clone, Default)]
pub(super) struct ReviewEntry {
    pub(super) confidence: Option<f64>,
    pub(super) band: String,
    /// The draft: slot values joined with " | ", in slot order.
    pub(super) answer: Option<String>,
    /// The Written column ("yes"/"no"), when the workbook has one.
    pub(super) written: Option<bool>,
}

/// A compared unit: one cell, or one X-matrix group.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Unit {
    Cell(CellRef),
    Marks(Vec<(CellRef, String)>),
}

pub(super) fn open(
    bytes: Vec<u8>,
    which: &'static str,
) -> Result<(WorkbookPackage, workbook::Questionnaire), EvalError> {
    let err = |source| EvalError::Workbook { which, source };
    let (loaded, q) = workbook::load_and_detect(bytes).map_err(err)?;
    let pkg = workbook::open(&loaded.bytes).map_err(err)?;
    Ok((pkg, q))
}

/// The answer units of every question row (answered or not) of a detected workbook.
fn units(q: &workbook::Questionnaire) -> BTreeMap<(String, u32), BTreeSet<Unit>> {
    let mut out: BTreeMap<(String, u32), BTreeSet<Unit>> = BTreeMap::new();
    for plan in q.sheets.iter().filter(|s| s.fill) {
        for qr in &plan.questions {
            let set = out.entry((plan.name.clone(), qr.row)).or_default();
            for slot in &qr.slots {
                if slot.kind == SlotKind::Mark {
                    set.insert(Unit::Marks(
                        slot.mark_cells
                            .iter()
                            .copied()
                            .zip(slot.choices.iter().cloned())
                            .collect(),
                    ));
                } else {
                    set.insert(Unit::Cell(slot.cell));
                }
            }
        }
        for o in plan
            .other_rows
            .iter()
            .filter(|o| o.kind == OtherRowKind::NoAnswerCell)
        {
            out.entry((plan.name.clone(), o.row)).or_default();
        }
        for s in plan
            .skipped_cells
            .iter()
            .filter(|s| s.reason == SkipReason::Prefilled)
        {
            if let Some(set) = out.get_mut(&(plan.name.clone(), s.cell.row + 1)) {
                set.insert(Unit::Cell(s.cell));
            }
        }
    }
    out
}

/// A unit's value in one sheet: the marked label of an X-matrix, or the cell's text.
fn value_of(sheet: Option<&SheetInfo>, unit: &Unit) -> Option<String> {
    let sheet = sheet?;
    match unit {
        Unit::Cell(c) => sheet
            .value(*c)
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_string),
        Unit::Marks(cells) => cells
            .iter()
            .find(|(c, _)| sheet.value(*c).is_some_and(|v| !v.trim().is_empty()))
            .map(|(_, label)| label.clone()),
    }
}

/// Reads the review workbook's Review sheet: (sheet, row) → confidence and band.
pub(super) fn read_review(bytes: &[u8]) -> Result<BTreeMap<(String, u32), ReviewEntry>, EvalError> {
    use calamine::{Data, Reader, Xlsx};
    let mut xl: Xlsx<_> = calamine::open_workbook_from_rs(std::io::Cursor::new(bytes))
        .map_err(|e: calamine::XlsxError| EvalError::Review(e.to_string()))?;
    let range = xl
        .worksheet_range("Review")
        .map_err(|e| EvalError::Review(format!("no Review sheet: {e}")))?;
    let mut rows = range.rows();
    let header: Vec<String> = rows
        .next()
        .ok_or_else(|| EvalError::Review("the Review sheet is empty".into()))?
        .iter()
        .map(|c| c.to_string())
        .collect();
    let col = |name: &str| {
        header
            .iter()
            .position(|h| h == name)
            .ok_or_else(|| EvalError::Review(format!("no '{name}' column")))
    };
    let (c_sheet, c_row, c_conf, c_band) =
        (col("Sheet")?, col("Row")?, col("Confidence")?, col("Band")?);
    let (c_answer, c_written) = (col("Answer").ok(), col("Written").ok());
    let mut out = BTreeMap::new();
    for r in rows {
        let num = |c: usize| match r.get(c) {
            Some(Data::Float(f)) => Some(*f),
            Some(Data::Int(i)) => Some(*i as f64),
            Some(Data::String(s)) => s.trim().parse().ok(),
            _ => None,
        };
        let Some(row) = num(c_row) else { continue };
        let sheet = r.get(c_sheet).map(|c| c.to_string()).unwrap_or_default();
        let text = |c: Option<usize>| {
            c.and_then(|c| r.get(c))
                .map(|v| v.to_string().trim().to_string())
                .filter(|v| !v.is_empty())
        };
        out.insert(
            (sheet, row as u32),
            ReviewEntry {
                confidence: num(c_conf),
                band: r.get(c_band).map(|c| c.to_string()).unwrap_or_default(),
                answer: text(c_answer),
                written: text(c_written)
                    .map(|w| matches!(w.to_ascii_lowercase().as_str(), "yes" | "y" | "true" | "1")),
            },
        );
    }
    Ok(out)
}

fn unit_cells(unit: &Unit) -> String {
    match unit {
        Unit::Cell(c) => c.to_string(),
        Unit::Marks(cells) => match (cells.first(), cells.last()) {
            (Some(a), Some(b)) => format!("{}:{}", a.0, b.0),
            _ => String::new(),
        },
    }
}

/// The legal values of a choice unit: an X-matrix's labels, else the cell's dropdown in the
/// truth (or, failing that, in the filled copy).
fn options_of(unit: &Unit, truth: Option<&SheetInfo>, filled: Option<&SheetInfo>) -> Vec<String> {
    match unit {
        Unit::Marks(cells) => cells.iter().map(|(_, label)| label.clone()).collect(),
        Unit::Cell(c) => [truth, filled]
            .into_iter()
            .flatten()
            .filter_map(|s| s.list_validation_at(*c))
            .map(|v| v.choices.clone())
            .find(|c| !c.is_empty())
            .unwrap_or_default(),
    }
}

/// The question text of every question row of a detected workbook.
pub(super) fn question_texts(
    q: &workbook::Questionnaire,
    out: &mut BTreeMap<(String, u32), String>,
) {
    for plan in q.sheets.iter().filter(|s| s.fill) {
        let rows = plan.questions.iter().map(|qr| (qr.row, &qr.text)).chain(
            plan.other_rows
                .iter()
                .filter(|o| o.kind == OtherRowKind::NoAnswerCell)
                .map(|o| (o.row, &o.text)),
        );
        for (row, text) in rows {
            if !text.trim().is_empty() {
                out.entry((plan.name.clone(), row))
                    .or_insert_with(|| text.trim().to_string());
            }
        }
    }
}

/// Compares every answer unit the truth answers with the filled copy, and, with the review
/// workbook, marks which rows were written and gives the others' drafts.
pub(super) fn compare(
    truth: (&WorkbookPackage, &workbook::Questionnaire),
    filled: (&WorkbookPackage, &workbook::Questionnaire),
    reviewed: Option<&BTreeMap<(String, u32), ReviewEntry>>,
) -> Vec<SlotComparison> {
    let (truth_pkg, truth_q) = truth;
    let (filled_pkg, filled_q) = filled;
    let mut rows = units(truth_q);
    for (key, set) in units(filled_q) {
        rows.entry(key).or_default().extend(set);
    }
    let mut slots: Vec<SlotComparison> = Vec::new();
    for ((sheet, row), set) in &rows {
        let first = slots.len();
        // An X-matrix group covers its cells: do not compare them one by one as well.
        let marked: BTreeSet<CellRef> = set
            .iter()
            .filter_map(|u| match u {
                Unit::Marks(c) => Some(c.iter().map(|(c, _)| *c)),
                Unit::Cell(_) => None,
            })
            .flatten()
            .collect();
        let mut seen_marks = false;
        for unit in set {
            match unit {
                Unit::Cell(c) if marked.contains(c) => continue,
                Unit::Marks(_) if seen_marks => continue,
                Unit::Marks(_) => seen_marks = true,
                Unit::Cell(_) => {}
            }
            let (truth_sheet, filled_sheet) = (truth_pkg.sheet(sheet), filled_pkg.sheet(sheet));
            let Some(t) = value_of(truth_sheet, unit) else {
                continue;
            };
            let f = value_of(filled_sheet, unit);
            // A dropdown cell, an X-matrix group, or an answered X-matrix cell ("X").
            let choice = match unit {
                Unit::Marks(_) => true,
                Unit::Cell(c) => {
                    t.eq_ignore_ascii_case(workbook::MARK)
                        || truth_sheet.and_then(|s| s.list_validation_at(*c)).is_some()
                }
            };
            let agrees = choice.then(|| f.as_deref().is_some_and(|f| agrees_with(f, &t)));
            slots.push(SlotComparison {
                sheet: sheet.clone(),
                row: *row,
                cells: unit_cells(unit),
                kind: if choice { "choice" } else { "text" }.into(),
                truth: t,
                filled: f,
                agrees,
                similarity: None,
                options: if choice {
                    options_of(unit, truth_sheet, filled_sheet)
                } else {
                    Vec::new()
                },
                ..Default::default()
            });
        }
        mark_written_and_drafts(
            &mut slots[first..],
            reviewed.and_then(|r| r.get(&(sheet.clone(), *row))),
        );
    }
    slots
}

/// Sets one row's band, whether it was written, and its draft choices: the review workbook's
/// Answer split at " | " (slot values in slot order), each choice slot taking the next part
/// that is one of its legal values.
fn mark_written_and_drafts(row: &mut [SlotComparison], entry: Option<&ReviewEntry>) {
    let written = entry
        .and_then(|e| e.written)
        .unwrap_or_else(|| row.iter().any(|s| s.agrees.is_some() && s.filled.is_some()));
    let band = entry.map(|e| e.band.clone()).filter(|b| !b.is_empty());
    let mut parts: Vec<&str> = match entry.and_then(|e| e.answer.as_deref()) {
        Some(a) if !written => a.split(" | ").map(str::trim).collect(),
        _ => Vec::new(),
    };
    for s in row.iter_mut() {
        s.band.clone_from(&band);
        if s.agrees.is_none() {
            continue;
        }
        s.written = Some(written);
        if s.options.is_empty() {
            continue;
        }
        let Some(i) = parts
            .iter()
            .position(|p| legal_choice(p, &s.options).is_some())
        else {
            continue;
        };
        let draft = legal_choice(parts[i], &s.options);
        parts.drain(..=i);
        s.draft_agrees = draft.as_deref().map(|d| agrees_with(d, &s.truth));
        s.draft = draft;
    }
}
