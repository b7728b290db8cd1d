//! The answer library: past answered questions as records (question → the values given),
//! read from answered questionnaires through the workbook engine and from Markdown answer
//! banks ("### Question?" followed by "**Yes.** …"), and reviewer-approved answers from an
//! rfpq review workbook. Does not search or embed them.

use crate::workbook::{self, CellRef, OtherRowKind, SkipReason, SlotKind, read};
use serde::{Deserialize, Serialize};

/// One value a past answer gave, under the column (or slot) it was written in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotValue {
    /// The answer column's header ("Answer", "Comments"), or "Answer" / "Comment" for Markdown.
    pub header: String,
    pub value: String,
}

/// A past question and the answer it was given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LibraryAnswer {
    /// The question's id in its questionnaire ("IAM-02"), when it had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub question_id: Option<String>,
    pub question: String,
    pub values: Vec<SlotValue>,
    /// Where it was found: "Sheet!row" for workbooks, the heading for Markdown.
    pub location: String,
    /// The section (sheet group or Markdown heading) above the question.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub section: Option<String>,
    /// A reviewer approved or wrote these values (read from an rfpq review workbook).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub approved: bool,
}

impl LibraryAnswer {
    /// Readable "question → values" text (shown in search results and given to the model).
    pub fn display_text(&self) -> String {
        let mut s = String::new();
        if let Some(id) = &self.question_id {
            s.push_str(id);
            s.push_str(": ");
        }
        s.push_str(&self.question);
        for v in &self.values {
            s.push_str(&format!("\n{}: {}", v.header, v.value));
        }
        s
    }
}

/// Every answered question of an answered workbook. A row counts when at least one of its
/// answer cells holds a value; formulas are never taken as answers.
pub fn from_workbook(bytes: Vec<u8>) -> Result<Vec<LibraryAnswer>, String> {
    let (loaded, q) = workbook::load_and_detect(bytes).map_err(|e| e.to_string())?;
    let pkg = read::open(&loaded.bytes).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for plan in &q.sheets {
        let Some(sheet) = pkg.sheet(&plan.name) else {
            continue;
        };
        let header = |col: u32| {
            plan.header_row
                .and_then(|r| sheet.value(CellRef::new(r.saturating_sub(1), col)))
                .map(|h| h.split_whitespace().collect::<Vec<_>>().join(" "))
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| format!("Column {}", CellRef::column_name(col)))
        };
        let values_in_row = |row: u32| -> Vec<SlotValue> {
            let mut values: Vec<SlotValue> = Vec::new();
            for cell in plan
                .skipped_in_row(row)
                .filter(|s| s.reason == SkipReason::Prefilled)
            {
                let Some(value) = cell.value.as_deref().map(str::trim) else {
                    continue;
                };
                let h = header(cell.cell.col);
                // An X-matrix mark answers with its column's label.
                let (h, value) = if value.eq_ignore_ascii_case("x") {
                    ("Answer".to_string(), h)
                } else {
                    (h, value.to_string())
                };
                values.push(SlotValue { header: h, value });
            }
            values
        };
        // Values detection still treats as slots: a dropdown's first value ("Yes" in a
        // Yes/No list) reads as an untouched default to the filler, but in an answered
        // questionnaire it is the answer.
        let slot_values = |qr: &crate::workbook::QuestionRow| -> Vec<SlotValue> {
            let mut values = Vec::new();
            for slot in &qr.slots {
                if slot.kind == SlotKind::Mark {
                    let chosen = slot.mark_cells.iter().zip(&slot.choices).find(|(cell, _)| {
                        sheet.value(**cell).is_some_and(|v| !v.trim().is_empty())
                    });
                    if let Some((_, label)) = chosen {
                        values.push(SlotValue {
                            header: "Answer".into(),
                            value: label.clone(),
                        });
                    }
                } else if let Some(v) = sheet
                    .value(slot.cell)
                    .map(str::trim)
                    .filter(|v| !v.is_empty())
                {
                    values.push(SlotValue {
                        header: slot.header.clone(),
                        value: v.to_string(),
                    });
                }
            }
            values
        };
        let answered_rows = plan
            .questions
            .iter()
            .map(|qr| {
                (
                    qr.row,
                    qr.id.clone(),
                    qr.text.clone(),
                    qr.section.clone(),
                    slot_values(qr),
                )
            })
            .chain(
                plan.other_rows
                    .iter()
                    .filter(|o| o.kind == OtherRowKind::NoAnswerCell)
                    .map(|o| (o.row, o.id.clone(), o.text.clone(), None, Vec::new())),
            );
        for (row, question_id, question, section, mut values) in answered_rows {
            values.extend(values_in_row(row));
            if values.is_empty() || question.trim().is_empty() {
                continue;
            }
            out.push(LibraryAnswer {
                question_id,
                question: question.trim().to_string(),
                values,
                location: format!("{}!{row}", plan.name),
                section,
                approved: false,
            });
        }
    }
    out.sort_by(|a, b| a.location.cmp(&b.location));
    Ok(out)
}

/// The approved and edited rows of a reviewed rfpq review workbook, marked `approved`, with
/// their Final values made legal. `Ok(None)` when `bytes` is not a review workbook; rows the
/// reviewer did not stand behind (no Decision, rejected, an illegal value) are left out.
pub fn from_review(bytes: &[u8]) -> Result<Option<Vec<LibraryAnswer>>, String> {
    use crate::workbook::review::{final_columns, read_review};
    let Ok(rows) = read_review(bytes) else {
        return Ok(None);
    };
    let mut out = Vec::new();
    for r in rows {
        if !r.verdict().is_ok_and(|v| v.reviewed()) {
            continue;
        }
        let Ok(values) = r.legal_finals() else {
            continue;
        };
        let names = final_columns(&r.slots);
        let values: Vec<SlotValue> = r
            .slots
            .iter()
            .zip(values)
            .zip(names)
            .filter_map(|((slot, v), name)| {
                let header = if slot.header.trim().is_empty() {
                    name.trim_start_matches(crate::workbook::review::FINAL_PREFIX)
                        .to_string()
                } else {
                    slot.header.split_whitespace().collect::<Vec<_>>().join(" ")
                };
                v.map(|value| SlotValue { header, value })
            })
            .collect();
        if values.is_empty() || r.question.trim().is_empty() {
            continue;
        }
        out.push(LibraryAnswer {
            question_id: r.id.clone(),
            question: r.question.trim().to_string(),
            values,
            location: r.location(),
            section: None,
            approved: true,
        });
    }
    out.sort_by(|a, b| a.location.cmp(&b.location));
    Ok(Some(out))
}

/// Verdicts a Markdown answer bank opens an answer with (`**Yes.**`).
const VERDICTS: &[&str] = &[
    "yes",
    "no",
    "partial",
    "partially",
    "n/a",
    "na",
    "not applicable",
    "info",
];

/// Question-and-answer pairs of a Markdown answer bank: a heading that asks ("…?") whose
/// first paragraph opens with a bold verdict. Guidance in block quotes is not part of the answer.
pub fn from_markdown(text: &str) -> Vec<LibraryAnswer> {
    let mut out = Vec::new();
    let lines: Vec<&str> = text.lines().collect();
    let mut section: Option<String> = None;
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i].trim();
        let level = line.bytes().take_while(|b| *b == b'#').count();
        if level == 0 || !line[level..].starts_with(' ') {
            i += 1;
            continue;
        }
        let title = line[level..].trim();
        i += 1;
        if !title.ends_with('?') {
            if level <= 2 {
                section = Some(title.to_string());
            }
            continue;
        }
        // The answer: the lines up to the next heading, rule or block quote.
        let mut body = Vec::new();
        while i < lines.len() {
            let l = lines[i].trim();
            if l.starts_with('#') || l.starts_with("---") || l.starts_with('>') {
                break;
            }
            body.push(l);
            i += 1;
        }
        let body = body
            .join(" ")
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        let Some(rest) = body.strip_prefix("**") else {
            continue;
        };
        let Some((verdict, explanation)) = rest.split_once("**") else {
            continue;
        };
        let verdict = verdict.trim().trim_end_matches(['.', ':']).trim();
        if !VERDICTS.contains(&verdict.to_ascii_lowercase().as_str()) {
            continue;
        }
        let mut values = Vec::new();
        if !verdict.eq_ignore_ascii_case("info") {
            values.push(SlotValue {
                header: "Answer".into(),
                value: verdict.to_string(),
            });
        }
        let explanation = explanation.trim();
        if !explanation.is_empty() {
            values.push(SlotValue {
                header: "Comment".into(),
                value: explanation.to_string(),
            });
        }
        if values.is_empty() {
            continue;
        }
        out.push(LibraryAnswer {
            question_id: None,
            question: title.to_string(),
            values,
            location: title.to_string(),
            section: section.clone(),
            approved: false,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_answer_bank_entries_are_read() {
        let md = "# Access control\n\nIntro.\n\n---\n\n### Is MFA enforced on admin accounts?\n\n**Yes.** MFA is on for\nthe hosting provider.\n\n> Go and check.\n\n---\n\n### Who has access?\n\n**Info.** Two people.\n\n### Not a question\n\nText.\n\n### Do you dance?\n\nNo verdict here.\n";
        let got = from_markdown(md);
        assert_eq!(got.len(), 2, "{got:?}");
        assert_eq!(got[0].question, "Is MFA enforced on admin accounts?");
        assert_eq!(got[0].section.as_deref(), Some("Access control"));
        assert_eq!(
            got[0].values,
            vec![
                SlotValue {
                    header: "Answer".into(),
                    value: "Yes".into()
                },
                SlotValue {
                    header: "Comment".into(),
                    value: "MFA is on for the hosting provider.".into()
                }
            ]
        );
        assert_eq!(got[1].values.len(), 1, "Info has no verdict value");
    }
}
