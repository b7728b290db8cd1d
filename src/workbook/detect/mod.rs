//! Finds questions and their answer slots by layout heuristics; does not read files, write, or ask a model.
//!
//! This file has the entry points (`inspect`, `load_and_detect`, `detect`), each sheet's plan
//! and cross-sheet duplicates. `header` gives header cells their roles, `layout` picks the
//! header row and columns, `rows` sorts the rows under it, `slots` finds a row's answer slots.

mod header;
mod layout;
mod rows;
mod slots;

use super::read::{SheetInfo, Visibility, WorkbookPackage};
use super::{CellRef, QuestionKey, QuestionRow, Questionnaire, SheetPlan, WorkbookError};
use layout::{HEADER_SEARCH_ROWS, find_layout};
use rows::question_rows;
use std::collections::{BTreeMap, BTreeSet};

/// Opens and detects in one step (.xls/.ods are rebuilt as .xlsx first, with a warning).
pub fn inspect(bytes: &[u8]) -> Result<Questionnaire, WorkbookError> {
    Ok(load_and_detect(bytes.to_vec())?.1)
}

/// Loads any supported workbook and detects its questions; the loaded bytes are the package
/// to patch (the original, or the .xlsx rebuilt from an .xls/.ods).
pub fn load_and_detect(bytes: Vec<u8>) -> Result<(super::Loaded, Questionnaire), WorkbookError> {
    let loaded = super::convert::load(bytes)?;
    let mut q = detect(&super::read::open(&loaded.bytes)?);
    q.source_format = loaded.format;
    q.warnings = loaded.warnings.clone();
    Ok((loaded, q))
}

/// Plans every worksheet of the package.
pub fn detect(pkg: &WorkbookPackage) -> Questionnaire {
    let sheets: Vec<SheetPlan> = pkg.sheets.iter().map(plan_sheet).collect();
    let duplicates = duplicate_groups(&sheets);
    Questionnaire {
        sheets,
        duplicates,
        source_format: super::SourceFormat::Xlsx,
        warnings: Vec::new(),
    }
}

/// Shortest question text that may match another by text alone ("Please explain" may not).
const MIN_DUPLICATE_TEXT: usize = 20;

/// Text key for duplicate detection: lowercase alphanumeric words, trailing `*` dropped.
fn text_key(text: &str) -> String {
    text.to_lowercase()
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Groups of questions on filled sheets that share an ID or a normalized text, when the
/// group spans at least two sheets.
fn duplicate_groups(sheets: &[SheetPlan]) -> Vec<Vec<QuestionKey>> {
    let qs: Vec<&QuestionRow> = sheets
        .iter()
        .filter(|s| s.fill)
        .flat_map(|s| s.questions.iter())
        .collect();
    let mut parent: Vec<usize> = (0..qs.len()).collect();
    fn root(parent: &mut [usize], mut i: usize) -> usize {
        while parent[i] != i {
            parent[i] = parent[parent[i]];
            i = parent[i];
        }
        i
    }
    let mut by_key: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, q) in qs.iter().enumerate() {
        if let Some(id) = &q.id {
            let id: String = id.chars().filter(|c| !c.is_whitespace()).collect();
            by_key
                .entry(format!("id:{}", id.to_uppercase()))
                .or_default()
                .push(i);
        }
        let t = text_key(&q.text);
        if t.chars().count() >= MIN_DUPLICATE_TEXT {
            by_key.entry(format!("text:{t}")).or_default().push(i);
        }
    }
    for members in by_key.values() {
        let sheets: BTreeSet<&str> = members.iter().map(|i| qs[*i].sheet.as_str()).collect();
        if sheets.len() < 2 {
            continue;
        }
        for w in members.windows(2) {
            let (a, b) = (root(&mut parent, w[0]), root(&mut parent, w[1]));
            if a != b {
                parent[b.max(a)] = a.min(b);
            }
        }
    }
    let mut groups: BTreeMap<usize, Vec<QuestionKey>> = BTreeMap::new();
    for (i, q) in qs.iter().enumerate() {
        let r = root(&mut parent, i);
        groups.entry(r).or_default().push(QuestionKey {
            sheet: q.sheet.clone(),
            row: q.row,
        });
    }
    groups.into_values().filter(|g| g.len() > 1).collect()
}

fn skipped(sheet: &SheetInfo, reason: String) -> SheetPlan {
    SheetPlan {
        name: sheet.name.clone(),
        fill: false,
        reason,
        header_row: None,
        questions: Vec::new(),
        other_rows: Vec::new(),
        skipped_cells: Vec::new(),
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
    let (questions, other_rows, skipped_cells) =
        question_rows(sheet, &layout, &mut unresolved_lists);
    let header_row = Some(layout.header_row + 1);
    let mut cols: Vec<String> = layout
        .answer_cols
        .iter()
        .map(|a| format!("{} ({})", CellRef::column_name(a.col), a.header))
        .collect();
    for g in &layout.mark_groups {
        cols.push(format!(
            "{}:{} (X-mark: {})",
            CellRef::column_name(g.cols[0]),
            CellRef::column_name(g.cols[g.cols.len() - 1]),
            g.labels.join(" / ")
        ));
    }
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
        let above = questions
            .iter()
            .filter(|q| q.row <= layout.header_row)
            .count();
        if above > 0 {
            reason.push_str(&format!(" ({above} in a block above the header row)"));
        }
    } else {
        reason.push_str("; no row has question text and a writable answer cell");
    }
    SheetPlan {
        name: sheet.name.clone(),
        fill,
        reason,
        header_row,
        questions,
        other_rows,
        skipped_cells,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sheet_names() {
        assert!(excluded_sheet_kind("Values").is_some());
        assert!(excluded_sheet_kind("Institution Evaluation").is_some());
        assert!(excluded_sheet_kind("(backend scoring)").is_some());
        assert!(excluded_sheet_kind("Checklist").is_none());
        assert!(excluded_sheet_kind("Organization").is_none());
    }
}
