//! Picks a sheet's header row and its columns (question, ID, sections, answers, X-mark
//! groups); does not read the rows below it.

use super::header::{Role, classify, normalise};
use crate::workbook::CellRef;
use crate::workbook::read::SheetInfo;
use std::collections::{BTreeMap, BTreeSet};

/// Rows searched for the header, from the top of the sheet.
pub(super) const HEADER_SEARCH_ROWS: u32 = 30;

#[derive(Debug, Clone)]
pub(super) struct AnswerCol {
    pub(super) col: u32,
    pub(super) header: String,
    /// The header names it an answer column (free text allowed without a dropdown).
    pub(super) by_header: bool,
}

/// Adjacent columns whose sub-headers are Yes / No / N/A labels: an X-mark matrix.
#[derive(Debug, Clone)]
pub(super) struct MarkGroup {
    pub(super) cols: Vec<u32>,
    pub(super) labels: Vec<String>,
    pub(super) header: String,
}

#[derive(Debug, Clone)]
pub(super) struct Layout {
    pub(super) header_row: u32,
    /// First row that may hold questions (after the header and any sub-header row).
    pub(super) data_start: u32,
    pub(super) mark_groups: Vec<MarkGroup>,
    pub(super) question_col: u32,
    pub(super) question_header: String,
    pub(super) id_col: Option<u32>,
    pub(super) section_cols: Vec<u32>,
    pub(super) answer_cols: Vec<AnswerCol>,
}

/// Picks the header row and the columns' roles.
pub(super) fn find_layout(sheet: &SheetInfo) -> Option<Layout> {
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
        if layout.answer_cols.is_empty() && layout.mark_groups.is_empty() {
            continue;
        }
        let q_rank = question.map_or(0, |(rank, _, _)| u32::from(rank));
        let score = 4 * q_rank
            + 3 * (answer_headers.min(3) as u32)
            + known as u32
            + layout.answer_cols.len().min(3) as u32
            + 3 * (layout.mark_groups.len().min(1) as u32);
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
    let (mark_groups, data_start) = mark_groups(sheet, header_row);
    let in_mark = |col: u32| mark_groups.iter().any(|g| g.cols.contains(&col));
    // Prefer an ID header that names questions ("Question ID" over "Control ID").
    let ids: Vec<(u32, &str)> = cells
        .iter()
        .filter(|(c, _, r)| *r == Role::Id && !in_mark(c.col))
        .map(|(c, v, _)| (c.col, *v))
        .collect();
    let id_col = ids
        .iter()
        .find(|(_, v)| normalise(v).contains(" question"))
        .or(ids.first())
        .map(|(c, _)| *c);
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
    let id_col = id_col.or_else(|| infer_id_col(sheet, header_row, question_col));
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
            || in_mark(col)
        {
            continue;
        }
        let role = cells
            .iter()
            .find(|(c, _, _)| c.col == col)
            .map_or(Role::Unknown, |(_, _, r)| *r);
        let by_header = role == Role::Answer;
        let has_list = sheet.validations.iter().any(|v| {
            (v.is_list() || v.kind == "date")
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
        data_start,
        mark_groups,
        question_col,
        question_header,
        id_col,
        section_cols,
        answer_cols,
    })
}

/// Looks like a question ID: `DOCU-01`, `A&A-01.1`, `A.5.1`, `AIS- 02.2`.
pub(super) fn looks_like_id(v: &str) -> bool {
    let v = v.trim();
    let compact: String = v.chars().filter(|c| !c.is_whitespace()).collect();
    (2..=16).contains(&compact.chars().count())
        && v.split_whitespace().count() <= 2
        && compact.chars().next().is_some_and(char::is_alphanumeric)
        && compact.chars().any(|c| c.is_ascii_digit())
        && compact
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '-' | '.' | '_' | '&'))
}

/// Without an ID header: the column left of the question column whose values, on rows with
/// question text, mostly look like IDs.
fn infer_id_col(sheet: &SheetInfo, header_row: u32, question_col: u32) -> Option<u32> {
    let mut rows = 0usize;
    let mut hits: BTreeMap<u32, usize> = BTreeMap::new();
    for (c, _) in sheet
        .cells
        .range(CellRef::new(header_row + 1, 0)..)
        .filter(|(c, v)| c.col == question_col && !v.trim().is_empty())
        .take(2_000)
    {
        rows += 1;
        for (cell, v) in sheet.row(c.row).filter(|(x, _)| x.col < question_col) {
            if looks_like_id(v) {
                *hits.entry(cell.col).or_default() += 1;
            }
        }
    }
    hits.into_iter()
        .filter(|(_, n)| *n * 2 > rows)
        .max_by_key(|(col, n)| (*n, std::cmp::Reverse(*col)))
        .map(|(col, _)| col)
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

/// A Yes / No / N/A label of an X-matrix column, normalized; `None` for anything else.
fn mark_label(text: &str) -> Option<&'static str> {
    match normalise(text).trim() {
        "yes" | "y" => Some("yes"),
        "no" | "n" => Some("no"),
        "n/a" | "na" | "not applicable" | "n a" | "not available" => Some("na"),
        _ => None,
    }
}

/// X-mark groups in the header row or the two rows below it, and the first data row.
fn mark_groups(sheet: &SheetInfo, header_row: u32) -> (Vec<MarkGroup>, u32) {
    for r in header_row..=header_row + 2 {
        let mut groups = Vec::new();
        let mut run: Vec<(u32, String)> = Vec::new();
        let cells: Vec<(CellRef, &str)> = sheet.row(r).collect();
        let mut flush = |run: &mut Vec<(u32, String)>| {
            let kinds: Vec<&str> = run.iter().filter_map(|(_, l)| mark_label(l)).collect();
            if run.len() >= 2 && kinds.contains(&"yes") && kinds.contains(&"no") {
                let first = run[0].0;
                // The group's header: the (merged) cell above its first column.
                let header = (r > header_row)
                    .then(|| value_merged(sheet, CellRef::new(header_row, first)))
                    .flatten()
                    .map(|v| v.trim().to_string())
                    .filter(|v| !v.is_empty())
                    .unwrap_or_else(|| "Answer".to_string());
                groups.push(MarkGroup {
                    cols: run.iter().map(|(c, _)| *c).collect(),
                    labels: run.iter().map(|(_, l)| l.clone()).collect(),
                    header,
                });
            }
            run.clear();
        };
        for (c, v) in cells {
            if mark_label(v).is_none() {
                flush(&mut run);
                continue;
            }
            if run.last().is_some_and(|(last, _)| *last + 1 != c.col) {
                flush(&mut run);
            }
            run.push((c.col, v.trim().to_string()));
        }
        flush(&mut run);
        if !groups.is_empty() {
            return (groups, r + 1);
        }
    }
    (Vec::new(), header_row + 1)
}

/// The value of a cell, or of the top-left cell of the merged range it lies in.
pub(super) fn value_merged(sheet: &SheetInfo, cell: CellRef) -> Option<&str> {
    sheet
        .value(cell)
        .or_else(|| sheet.merged_at(cell).and_then(|m| sheet.value(m.start)))
}
