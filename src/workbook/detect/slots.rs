//! Finds one row's answer slots (dropdowns, dates, free text, X-mark groups, choices a header
//! spells out) and the cells it must skip; does not classify rows.

use super::header::has_word;
use super::layout::Layout;
use crate::workbook::read::SheetInfo;
use crate::workbook::{AnswerSlot, CellRef, SkipReason, SkippedCell, SlotKind};

/// Why `cell` cannot take a value, if it cannot (formula, error value or merged interior).
/// A formula showing an error is `Formula`: that is why it is never written.
fn blocked(sheet: &SheetInfo, cell: CellRef) -> Option<SkipReason> {
    if sheet.is_formula(cell) {
        Some(SkipReason::Formula)
    } else if sheet.is_error(cell) {
        Some(SkipReason::ErrorValue)
    } else if sheet.merged_at(cell).is_some_and(|m| m.start != cell) {
        Some(SkipReason::MergedNonAnchor)
    } else {
        None
    }
}

pub(super) fn row_slots(
    sheet: &SheetInfo,
    layout: &Layout,
    r: u32,
    unresolved: &mut usize,
) -> (Vec<AnswerSlot>, Vec<SkippedCell>) {
    let mut slots = Vec::new();
    let mut skipped = Vec::new();
    let value_of = |cell: CellRef| sheet.value(cell).map(str::trim).filter(|v| !v.is_empty());
    let mut skip = |cell: CellRef, reason: SkipReason| {
        skipped.push(SkippedCell {
            cell,
            reason,
            value: value_of(cell).map(str::to_string),
        });
    };
    // (column, slot or skip) in column order.
    let mut by_col: Vec<(u32, AnswerSlot)> = Vec::new();
    for g in &layout.mark_groups {
        let cells: Vec<CellRef> = g.cols.iter().map(|c| CellRef::new(r, *c)).collect();
        let mut ok = true;
        for cell in &cells {
            if let Some(reason) = blocked(sheet, *cell) {
                skip(*cell, reason);
                ok = false;
            } else if value_of(*cell).is_some() {
                skip(*cell, SkipReason::Prefilled);
                ok = false;
            }
        }
        if ok {
            by_col.push((
                g.cols[0],
                AnswerSlot {
                    cell: cells[0],
                    kind: SlotKind::Mark,
                    choices: g.labels.clone(),
                    mark_cells: cells,
                    header: g.header.clone(),
                },
            ));
        }
    }
    for ac in &layout.answer_cols {
        let cell = CellRef::new(r, ac.col);
        if let Some(reason) = blocked(sheet, cell) {
            skip(cell, reason);
            continue;
        }
        let existing = value_of(cell);
        let slot = |kind, choices: Vec<String>| AnswerSlot {
            cell,
            kind,
            choices,
            mark_cells: Vec::new(),
            header: ac.header.clone(),
        };
        let is_date = sheet
            .validations
            .iter()
            .any(|v| v.kind == "date" && v.applies_to(cell));
        match sheet.list_validation_at(cell) {
            Some(dv) if dv.choices.is_empty() => {
                *unresolved += 1;
                skip(cell, SkipReason::UnresolvedList);
            }
            // The list's first value pre-filled ("Not verified") is a default, not an answer.
            Some(dv)
                if existing
                    .is_none_or(|v| dv.choices.first().is_some_and(|first| first.trim() == v)) =>
            {
                by_col.push((ac.col, slot(SlotKind::Choice, dv.choices.clone())));
            }
            Some(_) => skip(cell, SkipReason::Prefilled),
            None if existing.is_some() && (ac.by_header || is_date) => {
                skip(cell, SkipReason::Prefilled);
            }
            // A value in a column that is neither named an answer nor validated: not ours.
            None if existing.is_some() => {}
            None if is_date || (ac.by_header && has_word(&ac.header, &["date"])) => {
                by_col.push((ac.col, slot(SlotKind::Date, Vec::new())));
            }
            None if ac.by_header => match header_choices(&ac.header) {
                // No dropdown, but the header names the answers: "Answer (Yes/No/N/A)".
                Some(choices) => by_col.push((ac.col, slot(SlotKind::Choice, choices))),
                None => by_col.push((ac.col, slot(SlotKind::Text, Vec::new()))),
            },
            None => {}
        }
    }
    by_col.sort_by_key(|(c, _)| *c);
    slots.extend(by_col.into_iter().map(|(_, s)| s));
    skipped.sort_by_key(|s| s.cell);
    (slots, skipped)
}

/// The answers a header spells out, as in "Answer (Yes/No/N/A)" or "Yes/No": 2–6 short
/// slash-separated values that include Yes and No. Anything else is a free-text header.
fn header_choices(header: &str) -> Option<Vec<String>> {
    let h = header.trim();
    let inner = match (h.rfind('('), h.ends_with(')')) {
        (Some(open), true) => &h[open + 1..h.len() - 1],
        _ => h,
    };
    let parts: Vec<String> = inner
        .split('/')
        .map(|p| p.trim().to_string())
        .collect::<Vec<_>>();
    // "N/A" is split in two by the separator: glue it back.
    let mut values: Vec<String> = Vec::new();
    for p in parts {
        if p.eq_ignore_ascii_case("a") && values.last().is_some_and(|l| l.eq_ignore_ascii_case("n"))
        {
            let n = values.pop().unwrap_or_default();
            values.push(format!("{n}/{p}"));
        } else {
            values.push(p);
        }
    }
    let has = |w: &str| values.iter().any(|v| v.eq_ignore_ascii_case(w));
    let ok = (2..=6).contains(&values.len())
        && values
            .iter()
            .all(|v| !v.is_empty() && v.chars().count() <= 20)
        && has("yes")
        && has("no");
    ok.then_some(values)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_that_spell_out_their_answers() {
        let v = |h: &str| header_choices(h);
        assert_eq!(
            v("Answer (Yes/No/N/A)"),
            Some(vec!["Yes".into(), "No".into(), "N/A".into()])
        );
        assert_eq!(v("Yes / No"), Some(vec!["Yes".into(), "No".into()]));
        assert_eq!(v("Answer"), None);
        assert_eq!(v("Comments (Yes/No answers need an explanation)"), None);
        assert_eq!(v("Response (Yes/Partial)"), None);
    }
}
