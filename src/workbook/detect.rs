//! Finds questions and their answer slots by layout heuristics; does not read files, write, or ask a model.

use super::read::{SheetInfo, Visibility, WorkbookPackage};
use super::{AnswerSlot, CellRef, QuestionRow, Questionnaire, SheetPlan, SlotKind, WorkbookError};
use std::collections::BTreeSet;

/// Rows searched for the header, from the top of the sheet.
const HEADER_SEARCH_ROWS: u32 = 30;
/// Header cells longer than this are content, not headers.
const MAX_HEADER_LEN: usize = 80;

/// Opens and detects in one step.
pub fn inspect(bytes: &[u8]) -> Result<Questionnaire, WorkbookError> {
    Ok(detect(&super::read::open(bytes)?))
}

/// Plans every worksheet of the package.
pub fn detect(pkg: &WorkbookPackage) -> Questionnaire {
    Questionnaire {
        sheets: pkg.sheets.iter().map(plan_sheet).collect(),
    }
}

fn skipped(sheet: &SheetInfo, reason: String) -> SheetPlan {
    SheetPlan {
        name: sheet.name.clone(),
        fill: false,
        reason,
        header_row: None,
        questions: Vec::new(),
    }
}

fn plan_sheet(sheet: &SheetInfo) -> SheetPlan {
    match sheet.visibility {
        Visibility::Hidden => return skipped(sheet, "hidden sheet".into()),
        Visibility::VeryHidden => return skipped(sheet, "very hidden sheet".into()),
        Visibility::Visible => {}
    }
    if let Some(kind) = excluded_sheet_kind(&sheet.name) {
        return skipped(
            sheet,
            format!(
                "sheet name '{}' suggests {kind}, not questions to answer",
                sheet.name
            ),
        );
    }
    let Some(layout) = find_layout(sheet) else {
        return skipped(
            sheet,
            format!(
                "no header row with question and answer columns in the first {HEADER_SEARCH_ROWS} rows"
            ),
        );
    };
    let mut unresolved_lists = 0usize;
    let questions = question_rows(sheet, &layout, &mut unresolved_lists);
    let header_row = Some(layout.header_row + 1);
    let cols: Vec<String> = layout
        .answer_cols
        .iter()
        .map(|a| format!("{} ({})", CellRef::column_name(a.col), a.header))
        .collect();
    let mut reason = format!(
        "header row {}: question column {} ({}), answer columns {}",
        layout.header_row + 1,
        CellRef::column_name(layout.question_col),
        layout.question_header,
        if cols.is_empty() {
            "none".to_string()
        } else {
            cols.join(", ")
        }
    );
    if unresolved_lists > 0 {
        reason.push_str(&format!(
            "; {unresolved_lists} dropdown cell(s) skipped because their list could not be resolved"
        ));
    }
    let fill = !questions.is_empty();
    if fill {
        reason.push_str(&format!("; {} questions", questions.len()));
    } else {
        reason.push_str("; no row has question text and a writable answer cell");
    }
    SheetPlan {
        name: sheet.name.clone(),
        fill,
        reason,
        header_row,
        questions,
    }
}

/// Words in a sheet name that mark it as not for the respondent, with what they suggest.
fn excluded_sheet_kind(name: &str) -> Option<&'static str> {
    const KINDS: &[(&[&str], &str)] = &[
        (
            &[
                "analyst",
                "analysts",
                "evaluation",
                "scoring",
                "score",
                "backend",
                "crosswalk",
                "assessor",
                "reviewer",
            ],
            "an analyst/evaluation sheet",
        ),
        (
            &[
                "instructions",
                "instruction",
                "readme",
                "introduction",
                "intro",
                "guidance",
                "help",
            ],
            "instructions",
        ),
        (
            &[
                "values",
                "lists",
                "lookup",
                "lookups",
                "dropdown",
                "dropdowns",
                "choices",
            ],
            "a values/lists sheet",
        ),
        (
            &["changelog", "glossary", "definitions", "history"],
            "reference material",
        ),
    ];
    let lower = name.to_lowercase();
    let words: Vec<&str> = lower
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect();
    KINDS
        .iter()
        .find(|(keys, _)| words.iter().any(|w| keys.contains(w)))
        .map(|(_, kind)| *kind)
}

/// What a header cell says its column holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Id,
    Section,
    /// Question text, with a strength (5 = "Question", 1 = "Description").
    Question(u8),
    /// An answer column (choice or free text).
    Answer,
    /// A known non-answer column (guidance, analyst notes, severity, links…).
    Excluded,
    Unknown,
}

fn normalise(h: &str) -> String {
    let lower = h.to_lowercase();
    let cleaned: String = lower
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || c == '#' || c == '/' {
                c
            } else {
                ' '
            }
        })
        .collect();
    format!(
        " {} ",
        cleaned.split_whitespace().collect::<Vec<_>>().join(" ")
    )
}

fn has_any(n: &str, phrases: &[&str]) -> bool {
    phrases.iter().any(|p| n.contains(&format!(" {p} ")))
}

fn has_any_cjk(n: &str, phrases: &[&str]) -> bool {
    phrases.iter().any(|p| n.contains(p))
}

fn classify(header: &str) -> Role {
    let n = normalise(header);
    let word_count = n.split_whitespace().count();
    if word_count == 0 || header.chars().count() > MAX_HEADER_LEN {
        return Role::Unknown;
    }
    if has_any(
        &n,
        &[
            "analyst",
            "guidance",
            "reviewer",
            "assessor",
            "internal use",
            "score",
            "scoring",
            "weight",
            "more info",
            "training",
            "graph query",
            "guid",
            "severity",
            "priority",
            "risk level",
            "url",
            "link",
            "links",
            "mapping",
            "example",
            "examples",
            "instructions",
            "evaluation",
        ],
    ) {
        return Role::Excluded;
    }
    if word_count <= 3
        && !has_any(&n, &["yes no", "yes/no", "y/n"])
        && has_any(
            &n,
            &[
                "id",
                "ref",
                "#",
                "q#",
                "nr",
                "no",
                "num",
                "number",
                "identifier",
                "ref #",
                "ref no",
            ],
        )
    {
        return Role::Id;
    }
    if has_any(
        &n,
        &[
            "area", "domain", "section", "category", "topic", "chapter", "family", "theme",
        ],
    ) || has_any_cjk(&n, &["分類", "区分", "領域", "類別"])
    {
        return Role::Section;
    }
    if has_any(
        &n,
        &[
            "question",
            "questions",
            "query",
            "checklist item",
            "requirement",
            "requirements",
            "statement",
            "criteria",
            "criterion",
            "control description",
            "control specification",
        ],
    ) || has_any_cjk(&n, &["質問", "設問", "問題", "要件"])
    {
        let strong = has_any(&n, &["question", "questions", "query"])
            || has_any_cjk(&n, &["質問", "設問", "問題"]);
        return Role::Question(if strong { 5 } else { 4 });
    }
    if has_any(
        &n,
        &[
            "answer",
            "answers",
            "response",
            "responses",
            "status",
            "yes/no",
            "y/n",
            "yes no",
            "compliance",
            "compliant",
            "applicable",
            "comment",
            "comments",
            "explanation",
            "explain",
            "notes",
            "note",
            "additional information",
            "additional info",
            "remarks",
            "justification",
            "evidence",
            "details",
            "implementation",
            "supporting information",
        ],
    ) || has_any_cjk(
        &n,
        &[
            "回答",
            "答え",
            "状態",
            "ステータス",
            "状況",
            "備考",
            "コメント",
            "説明",
            "回覆",
            "答覆",
            "狀態",
            "評論",
            "註解",
            "備註",
            "說明",
        ],
    ) {
        return Role::Answer;
    }
    if has_any(&n, &["control", "controls", "item", "items", "check"]) {
        return Role::Question(3);
    }
    if has_any(&n, &["description", "text"]) || has_any_cjk(&n, &["項目", "内容", "內容"]) {
        return Role::Question(1);
    }
    Role::Unknown
}

#[derive(Debug, Clone)]
struct AnswerCol {
    col: u32,
    header: String,
    /// The header names it an answer column (free text allowed without a dropdown).
    by_header: bool,
}

#[derive(Debug, Clone)]
struct Layout {
    header_row: u32,
    question_col: u32,
    question_header: String,
    id_col: Option<u32>,
    section_cols: Vec<u32>,
    answer_cols: Vec<AnswerCol>,
}

/// Picks the header row and the columns' roles.
fn find_layout(sheet: &SheetInfo) -> Option<Layout> {
    let last = sheet.last_row()?;
    let mut best: Option<(u32, Layout)> = None;
    for r in 0..=last.min(HEADER_SEARCH_ROWS - 1) {
        let cells: Vec<(CellRef, &str, Role)> = sheet
            .row(r)
            .map(|(c, v)| (c, v.trim(), classify(v)))
            .filter(|(_, v, _)| !v.is_empty())
            .collect();
        if cells.len() < 2 {
            continue;
        }
        let answer_headers = cells
            .iter()
            .filter(|(_, _, role)| *role == Role::Answer)
            .count();
        let question = cells
            .iter()
            .filter_map(|(c, v, role)| match role {
                Role::Question(rank) => Some((*rank, *c, *v)),
                _ => None,
            })
            .max_by_key(|(rank, c, _)| (*rank, std::cmp::Reverse(c.col)));
        let known = cells
            .iter()
            .filter(|(_, _, role)| !matches!(role, Role::Unknown))
            .count();
        let Some(layout) = build_layout(
            sheet,
            r,
            &cells,
            question.map(|(_, c, v)| (c.col, v.to_string())),
        ) else {
            continue;
        };
        if layout.answer_cols.is_empty() {
            continue;
        }
        let q_rank = question.map_or(0, |(rank, _, _)| u32::from(rank));
        let score = 4 * q_rank
            + 3 * (answer_headers.min(3) as u32)
            + known as u32
            + layout.answer_cols.len().min(3) as u32;
        if q_rank == 0 && answer_headers == 0 {
            continue;
        }
        if best.as_ref().is_none_or(|(s, _)| score > *s) {
            best = Some((score, layout));
        }
    }
    best.map(|(_, l)| l)
}

fn build_layout(
    sheet: &SheetInfo,
    header_row: u32,
    cells: &[(CellRef, &str, Role)],
    question: Option<(u32, String)>,
) -> Option<Layout> {
    let id_col = cells
        .iter()
        .find(|(_, _, r)| *r == Role::Id)
        .map(|(c, _, _)| c.col);
    let section_cols: Vec<u32> = cells
        .iter()
        .filter(|(_, _, r)| *r == Role::Section)
        .map(|(c, _, _)| c.col)
        .collect();
    let excluded: BTreeSet<u32> = cells
        .iter()
        .filter(|(_, _, r)| *r == Role::Excluded)
        .map(|(c, _, _)| c.col)
        .collect();
    let (question_col, question_header) = match question {
        Some(q) => q,
        None => {
            let taken: BTreeSet<u32> = cells
                .iter()
                .filter(|(_, _, r)| !matches!(r, Role::Unknown | Role::Question(_)))
                .map(|(c, _, _)| c.col)
                .collect();
            let col = longest_text_column(sheet, header_row, &taken)?;
            let header = sheet
                .value(CellRef::new(header_row, col))
                .unwrap_or("")
                .trim()
                .to_string();
            (col, header)
        }
    };
    let header_of = |col: u32| {
        sheet
            .value(CellRef::new(header_row, col))
            .unwrap_or("")
            .trim()
            .to_string()
    };
    let first_col = cells.first().map_or(0, |(c, _, _)| c.col);
    let last_col = cells.last().map_or(0, |(c, _, _)| c.col);
    let data_rows = (header_row + 1, sheet.last_row().unwrap_or(header_row));
    let mut answer_cols = Vec::new();
    for col in first_col..=last_col {
        if col == question_col
            || Some(col) == id_col
            || section_cols.contains(&col)
            || excluded.contains(&col)
        {
            continue;
        }
        let role = cells
            .iter()
            .find(|(c, _, _)| c.col == col)
            .map_or(Role::Unknown, |(_, _, r)| *r);
        let by_header = role == Role::Answer;
        let has_list = sheet.validations.iter().any(|v| {
            v.is_list()
                && v.ranges.iter().any(|rg| {
                    (rg.start.col..=rg.end.col).contains(&col)
                        && rg.start.row <= data_rows.1
                        && rg.end.row >= data_rows.0
                })
        });
        if by_header || has_list {
            answer_cols.push(AnswerCol {
                col,
                header: header_of(col),
                by_header,
            });
        }
    }
    Some(Layout {
        header_row,
        question_col,
        question_header,
        id_col,
        section_cols,
        answer_cols,
    })
}

/// The column with the longest average text under the header, among columns not `taken`.
fn longest_text_column(sheet: &SheetInfo, header_row: u32, taken: &BTreeSet<u32>) -> Option<u32> {
    let mut totals: std::collections::BTreeMap<u32, (usize, usize)> = Default::default();
    let start = CellRef::new(header_row + 1, 0);
    for (c, v) in sheet.cells.range(start..).take(20_000) {
        if taken.contains(&c.col) {
            continue;
        }
        let e = totals.entry(c.col).or_default();
        e.0 += v.chars().count();
        e.1 += 1;
    }
    totals
        .into_iter()
        .filter(|(_, (_, n))| *n >= 2)
        .max_by_key(|(col, (len, n))| (len / n, std::cmp::Reverse(*col)))
        .map(|(col, _)| col)
}

fn question_rows(sheet: &SheetInfo, layout: &Layout, unresolved: &mut usize) -> Vec<QuestionRow> {
    let mut out = Vec::new();
    let mut current_section: Option<String> = None;
    let rows: BTreeSet<u32> = sheet
        .cells
        .range(CellRef::new(layout.header_row + 1, 0)..)
        .map(|(c, _)| c.row)
        .collect();
    for r in rows {
        let text = sheet
            .value(CellRef::new(r, layout.question_col))
            .map(str::trim)
            .unwrap_or("");
        if text.is_empty() {
            // A section banner: short text at or left of the question column.
            if layout.section_cols.is_empty()
                && let Some((_, v)) = sheet
                    .row(r)
                    .find(|(c, v)| c.col <= layout.question_col && !v.trim().is_empty())
                && v.trim().chars().count() <= 120
            {
                current_section = Some(v.trim().to_string());
            }
            continue;
        }
        if text == layout.question_header {
            continue; // a repeated header row
        }
        let slots = row_slots(sheet, layout, r, unresolved);
        if slots.is_empty() {
            continue;
        }
        let section = if layout.section_cols.is_empty() {
            current_section.clone()
        } else {
            let parts: Vec<&str> = layout
                .section_cols
                .iter()
                .filter_map(|c| sheet.value(CellRef::new(r, *c)).map(str::trim))
                .filter(|v| !v.is_empty())
                .collect();
            (!parts.is_empty()).then(|| parts.join(" / "))
        };
        let id = layout
            .id_col
            .and_then(|c| sheet.value(CellRef::new(r, c)))
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty());
        out.push(QuestionRow {
            sheet: sheet.name.clone(),
            row: r + 1,
            id,
            text: text.to_string(),
            section,
            slots,
        });
    }
    out
}

fn row_slots(
    sheet: &SheetInfo,
    layout: &Layout,
    r: u32,
    unresolved: &mut usize,
) -> Vec<AnswerSlot> {
    let mut slots = Vec::new();
    for ac in &layout.answer_cols {
        let cell = CellRef::new(r, ac.col);
        if sheet.is_formula(cell) {
            continue;
        }
        if sheet.merged_at(cell).is_some_and(|m| m.start != cell) {
            continue; // only the top-left cell of a merged range takes a value
        }
        let existing = sheet.value(cell).map(str::trim).filter(|v| !v.is_empty());
        match sheet.list_validation_at(cell) {
            Some(dv) if dv.choices.is_empty() => *unresolved += 1,
            // The list's first value pre-filled ("Not verified") is a default, not an answer.
            Some(dv)
                if existing
                    .is_none_or(|v| dv.choices.first().is_some_and(|first| first.trim() == v)) =>
            {
                slots.push(AnswerSlot {
                    cell,
                    kind: SlotKind::Choice,
                    choices: dv.choices.clone(),
                    header: ac.header.clone(),
                });
            }
            Some(_) => {} // already answered
            None if ac.by_header && existing.is_none() => {
                slots.push(AnswerSlot {
                    cell,
                    kind: SlotKind::Text,
                    choices: Vec::new(),
                    header: ac.header.clone(),
                });
            }
            None => {}
        }
    }
    slots
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_roles() {
        assert_eq!(classify("Checklist item"), Role::Question(4));
        assert_eq!(classify("Question"), Role::Question(5));
        assert_eq!(classify("Description (optional)"), Role::Question(1));
        assert_eq!(classify("Status"), Role::Answer);
        assert_eq!(classify("Comment"), Role::Answer);
        assert_eq!(classify("Vendor Answers"), Role::Answer);
        assert_eq!(classify("Additional Information"), Role::Answer);
        assert_eq!(classify("Analyst Notes"), Role::Excluded);
        assert_eq!(classify("Main Area"), Role::Section);
        assert_eq!(classify("Question ID"), Role::Id);
        assert_eq!(classify("GUID"), Role::Excluded);
        assert_eq!(classify("More info"), Role::Excluded);
        assert_eq!(classify("Severity"), Role::Excluded);
    }

    #[test]
    fn sheet_names() {
        assert!(excluded_sheet_kind("Values").is_some());
        assert!(excluded_sheet_kind("Institution Evaluation").is_some());
        assert!(excluded_sheet_kind("(backend scoring)").is_some());
        assert!(excluded_sheet_kind("Checklist").is_none());
        assert!(excluded_sheet_kind("Organization").is_none());
    }
}
