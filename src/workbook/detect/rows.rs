//! Sorts the rows of a planned sheet into questions and other rows (banners, sections, notes,
//! error-value rows, footers, contact fields), including a block of questions above the header
//! row; does not find a row's answer slots (`slots` does).

use super::header::{has_word, normalise};
use super::layout::{Layout, looks_like_id, value_merged};
use super::slots::row_slots;
use crate::workbook::read::SheetInfo;
use crate::workbook::{CellRef, OtherRow, OtherRowKind, QuestionRow, SkippedCell};
use std::collections::BTreeSet;

/// A closing row ("End of Standard").
fn is_footer(text: &str) -> bool {
    let n = normalise(text);
    let n = n.trim();
    [
        "end of standard",
        "end of questionnaire",
        "end of document",
        "end of survey",
        "end of form",
    ]
    .iter()
    .any(|p| n.starts_with(p))
}

fn is_copyright(text: &str) -> bool {
    text.contains('©')
        || text.contains("(c) ")
        || has_word(text, &["copyright", "all rights reserved"])
}

/// A field about the respondent ("Vendor name:", "Contact email").
fn is_contact(text: &str) -> bool {
    let t = text.trim();
    !t.contains('?')
        && t.chars().count() <= 60
        && normalise(t).split_whitespace().count() <= 5
        && has_word(
            t,
            &[
                "name",
                "email",
                "e mail",
                "phone",
                "telephone",
                "address",
                "website",
                "contact",
                "job title",
            ],
        )
}

/// A remark among the rows ("Note: …", "NOTE - …", "Please note …", "Important: …",
/// "Instructions: …", "* required"). "Please describe …" and anything ending in `?` are not.
fn is_note(text: &str) -> bool {
    let lower = text.trim().to_lowercase();
    if lower.ends_with('?') {
        return false;
    }
    if let Some(rest) = lower.strip_prefix('*')
        && has_word(
            rest,
            &["required", "mandatory", "critical", "indicates", "denotes"],
        )
    {
        return true;
    }
    let core = lower.trim_start_matches(|c: char| c == '*' || c == '(' || c.is_whitespace());
    if core.starts_with("please note") || core.starts_with("note that") {
        return true;
    }
    const MARKERS: [&str; 13] = [
        "note",
        "notes",
        "nb",
        "n.b.",
        "n.b",
        "important",
        "instructions",
        "instruction",
        "reminder",
        "disclaimer",
        "tip",
        "hint",
        "attention",
    ];
    MARKERS.iter().any(|m| {
        core.strip_prefix(m)
            .map(str::trim_start)
            .and_then(|rest| rest.strip_prefix([':', '-', '–', '—']))
            .is_some_and(|after| after.split_whitespace().count() >= 2)
    })
}

/// The shape of an ID: letter runs become `A`, digit runs `9`, other characters stay
/// (`GNRL-01` → `A-9`, `A&A-01.1` → `A&A-9.9`).
fn id_shape(id: &str) -> String {
    let mut out = String::new();
    for c in id.chars().filter(|c| !c.is_whitespace()) {
        let k = if c.is_alphabetic() {
            'A'
        } else if c.is_ascii_digit() {
            '9'
        } else {
            c
        };
        if !(matches!(k, 'A' | '9') && out.ends_with(k)) {
            out.push(k);
        }
    }
    out
}

/// The cell that makes row `r` an error row: an error in the ID or question cell, or a row
/// whose only values are errors.
fn error_cell(sheet: &SheetInfo, layout: &Layout, r: u32) -> Option<CellRef> {
    let id = layout.id_col.map(|c| CellRef::new(r, c));
    let question = CellRef::new(r, layout.question_col);
    if let Some(cell) = id
        .into_iter()
        .chain([question])
        .find(|c| sheet.is_error(*c))
    {
        return Some(cell);
    }
    let mut values = sheet.row(r).filter(|(_, v)| !v.trim().is_empty());
    let (first, _) = values.next()?;
    (sheet.is_error(first) && values.all(|(c, _)| sheet.is_error(c))).then_some(first)
}

/// The first non-empty text of a row.
fn first_text(sheet: &SheetInfo, r: u32) -> Option<&str> {
    sheet.row(r).map(|(_, v)| v.trim()).find(|v| !v.is_empty())
}

/// Shapes of the IDs of the block under the header (rows with an ID and question text).
fn main_id_shapes(sheet: &SheetInfo, layout: &Layout) -> BTreeSet<String> {
    let Some(id_col) = layout.id_col else {
        return BTreeSet::new();
    };
    sheet
        .cells
        .range(CellRef::new(layout.data_start, 0)..)
        .filter(|(c, v)| c.col == id_col && looks_like_id(v) && !sheet.is_error(**c))
        .filter(|(c, _)| {
            sheet
                .value(CellRef::new(c.row, layout.question_col))
                .is_some_and(|t| !t.trim().is_empty())
        })
        .map(|(_, v)| id_shape(v))
        .collect()
}

/// A row above the header that belongs to a block of questions of its own (HECVAT's general
/// information above the main header): an ID in the layout's ID column shaped like the IDs
/// under the header, and question text in the question column.
fn is_block_above_header(
    sheet: &SheetInfo,
    layout: &Layout,
    shapes: &BTreeSet<String>,
    r: u32,
) -> bool {
    let Some(id) = layout
        .id_col
        .and_then(|c| sheet.value(CellRef::new(r, c)))
        .map(str::trim)
    else {
        return false;
    };
    let text = sheet
        .value(CellRef::new(r, layout.question_col))
        .map_or("", str::trim);
    looks_like_id(id)
        && shapes.contains(&id_shape(id))
        && text.chars().filter(|c| c.is_alphabetic()).count() >= 3
}

pub(super) fn question_rows(
    sheet: &SheetInfo,
    layout: &Layout,
    unresolved: &mut usize,
) -> (Vec<QuestionRow>, Vec<OtherRow>, Vec<SkippedCell>) {
    let mut out = Vec::new();
    let mut all_skipped = Vec::new();
    let mut other = Vec::new();
    // A header row without a question header names the first section there (HECVAT 3's
    // "Documentation | Vendor Answers | Additional Information").
    let mut current_section: Option<String> = (layout.question_header.is_empty()
        && layout.section_cols.is_empty())
    .then(|| {
        sheet
            .row(layout.header_row)
            .find(|(c, v)| c.col <= layout.question_col && !v.trim().is_empty())
            .map(|(_, v)| v.trim().to_string())
    })
    .flatten();
    // The section of rows above the header: the last short banner at or left of the
    // question column.
    let mut section_above: Option<String> = None;
    let mut block_above_seen = false;
    let shapes = main_id_shapes(sheet, layout);
    let rows: BTreeSet<u32> = sheet.cells.keys().map(|c| c.row).collect();
    let push_other = |other: &mut Vec<OtherRow>, r: u32, kind, text: &str| {
        other.push(OtherRow {
            row: r + 1,
            kind,
            text: text.to_string(),
            id: None,
            cell: None,
        });
    };
    for r in rows {
        let Some(first) = first_text(sheet, r) else {
            continue;
        };
        if (layout.header_row..layout.data_start).contains(&r) {
            push_other(&mut other, r, OtherRowKind::Header, first);
            continue;
        }
        if let Some(cell) = error_cell(sheet, layout, r) {
            push_other(
                &mut other,
                r,
                OtherRowKind::ErrorValue,
                sheet.value(cell).unwrap_or(""),
            );
            if let Some(last) = other.last_mut() {
                last.cell = Some(cell);
                last.id = layout
                    .id_col
                    .map(|c| CellRef::new(r, c))
                    .filter(|c| !sheet.is_error(*c))
                    .and_then(|c| sheet.value(c))
                    .map(|v| v.trim().to_string())
                    .filter(|v| !v.is_empty());
            }
            continue;
        }
        let above = r < layout.header_row;
        if above && !is_block_above_header(sheet, layout, &shapes, r) {
            // A note after a block of questions above the header sits between blocks; above
            // every question it is part of the sheet's instructions.
            let kind = if block_above_seen && is_note(first) {
                OtherRowKind::Note
            } else if first.chars().count() > 80 {
                OtherRowKind::Instruction
            } else {
                if sheet
                    .row(r)
                    .find(|(_, v)| !v.trim().is_empty())
                    .is_some_and(|(c, _)| c.col <= layout.question_col)
                {
                    section_above = Some(first.to_string());
                }
                OtherRowKind::Banner
            };
            push_other(&mut other, r, kind, first);
            continue;
        }
        block_above_seen |= above;
        let text = sheet
            .value(CellRef::new(r, layout.question_col))
            .map(str::trim)
            .unwrap_or("");
        let label = if text.is_empty() { first } else { text };
        let closing = if is_footer(label) {
            Some(OtherRowKind::Footer)
        } else if is_copyright(label) {
            Some(OtherRowKind::Copyright)
        } else {
            None
        };
        if let Some(kind) = closing {
            push_other(&mut other, r, kind, label);
            continue;
        }
        if is_note(label) {
            push_other(&mut other, r, OtherRowKind::Note, label);
            continue;
        }
        if text.is_empty() {
            let kind = if first.chars().count() > 120 {
                OtherRowKind::Instruction
            } else {
                // A section banner: short text at or left of the question column.
                if layout.section_cols.is_empty()
                    && let Some((_, v)) = sheet
                        .row(r)
                        .find(|(c, v)| c.col <= layout.question_col && !v.trim().is_empty())
                    && v.trim().chars().count() <= 120
                {
                    current_section = Some(v.trim().to_string());
                }
                OtherRowKind::SectionHeader
            };
            push_other(&mut other, r, kind, first);
            continue;
        }
        if text == layout.question_header {
            push_other(&mut other, r, OtherRowKind::Header, text);
            continue;
        }
        let id = layout
            .id_col
            .and_then(|c| sheet.value(CellRef::new(r, c)))
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty());
        let (slots, skipped) = row_slots(sheet, layout, r, unresolved);
        if id.is_none() && is_contact(text) {
            push_other(&mut other, r, OtherRowKind::Contact, text);
            continue;
        }
        // A date, number or code in the question column ("Last reviewed | 2024-05-20") is a
        // field of the document, not a question.
        if text.chars().filter(|c| c.is_alphabetic()).count() < 3 {
            let label = id
                .as_deref()
                .map_or(text.to_string(), |i| format!("{i}: {text}"));
            push_other(&mut other, r, OtherRowKind::Contact, &label);
            continue;
        }
        let any_skipped = !skipped.is_empty();
        all_skipped.extend(skipped);
        if slots.is_empty() {
            let kind = if id.is_some() || any_skipped {
                OtherRowKind::NoAnswerCell
            } else if text.chars().count() > 120 && !text.contains('?') {
                OtherRowKind::Instruction
            } else {
                OtherRowKind::SectionHeader
            };
            push_other(&mut other, r, kind, text);
            if kind == OtherRowKind::NoAnswerCell
                && let Some(last) = other.last_mut()
            {
                last.id = id;
            }
            continue;
        }
        let section = if above {
            section_above.clone()
        } else if layout.section_cols.is_empty() {
            current_section.clone()
        } else {
            let parts: Vec<&str> = layout
                .section_cols
                .iter()
                .filter_map(|c| value_merged(sheet, CellRef::new(r, *c)).map(str::trim))
                .filter(|v| !v.is_empty())
                .collect();
            (!parts.is_empty()).then(|| parts.join(" / "))
        };
        out.push(QuestionRow {
            sheet: sheet.name.clone(),
            row: r + 1,
            id,
            text: text.to_string(),
            section,
            slots,
        });
    }
    (out, other, all_skipped)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notes_are_told_from_questions() {
        for note in [
            "Note: The Privacy tab is required for every product that stores personal data.",
            "NOTE - Answer REQU-05 and REQU-06 for the product named above.",
            "Please note that answers are shared with the institution.",
            "Important: complete every tab before submitting.",
            "Instructions: answer Yes or No in column C.",
            "* required",
            "* indicates a critical question",
            "(Note: answers may be audited)",
            "N.B. - all dates are UTC",
        ] {
            assert!(is_note(note), "{note}");
        }
        for question in [
            "Please describe your incident response process.",
            "Please provide your SOC 2 report.",
            "Important: is MFA enforced for administrators?",
            "Notes:",
            "Notebook encryption is enabled on all laptops",
            "Describe the notes you keep on access reviews",
            "Tip the balance: do you encrypt backups?",
            "Do you require MFA? *",
        ] {
            assert!(!is_note(question), "{question}");
        }
    }

    #[test]
    fn id_shapes() {
        assert_eq!(id_shape("GNRL-01"), "A-9");
        assert_eq!(id_shape("REQU-12"), id_shape("GNRL-01"));
        assert_eq!(id_shape("A&A-01.1"), "A&A-9.9");
        assert_eq!(id_shape("AIS- 02.2"), "A-9.9");
        assert_ne!(id_shape("Version 4.1.4"), id_shape("A.5.1"));
    }
}
