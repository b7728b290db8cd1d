//! Sorts the rows of a planned sheet into questions and other rows (banners, sections,
//! footers, contact fields); does not find a row's answer slots (`slots` does).

use super::header::{has_word, normalise};
use super::layout::{Layout, value_merged};
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

/// The first non-empty text of a row.
fn first_text(sheet: &SheetInfo, r: u32) -> Option<&str> {
    sheet.row(r).map(|(_, v)| v.trim()).find(|v| !v.is_empty())
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
    let rows: BTreeSet<u32> = sheet.cells.keys().map(|c| c.row).collect();
    let push_other = |other: &mut Vec<OtherRow>, r: u32, kind, text: &str| {
        other.push(OtherRow {
            row: r + 1,
            kind,
            text: text.to_string(),
            id: None,
        });
    };
    for r in rows {
        let Some(first) = first_text(sheet, r) else {
            continue;
        };
        if r < layout.header_row {
            let kind = if first.chars().count() > 80 {
                OtherRowKind::Instruction
            } else {
                OtherRowKind::Banner
            };
            push_other(&mut other, r, kind, first);
            continue;
        }
        if r < layout.data_start {
            push_other(&mut other, r, OtherRowKind::Header, first);
            continue;
        }
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
        let section = if layout.section_cols.is_empty() {
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
