//! Builds the reviewer's workbook (an editable Review sheet + Summary) and reads a reviewed
//! one back (`read_review`); never touches the customer's file and does not decide what a
//! review means for it (`pipeline::apply` does).
//!
//! The Review sheet holds, per question row, the draft (`Answer`), whether it went into the
//! customer's file (`Written`), a `Decision` dropdown (approve / edit / reject) and one
//! `Final: <slot header>` column per answer slot, pre-filled with the draft, choice slots
//! carrying their legal values as a dropdown. A hidden `Slots` column keeps each row's slots
//! (header, kind, legal values, draft) as JSON, so the reviewed file can be read back and
//! checked without the original.

use super::{SlotKind, WorkbookError};
use rust_xlsxwriter::{
    ConditionalFormatCell, ConditionalFormatCellRule, DataValidation, DataValidationErrorStyle,
    Format, FormatAlign, Workbook, Worksheet, XlsxError,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One line of the review sheet.
#[derive(Debug, Clone, PartialEq)]
pub struct ReviewRow {
    pub sheet: String,
    /// 1-based row of the question in its sheet.
    pub row: u32,
    /// The answer cell(s), e.g. `F8, G8`.
    pub cells: String,
    pub id: Option<String>,
    pub question: String,
    pub answers: String,
    /// 0.0 ..= 1.0.
    pub confidence: f32,
    /// `library`, `high` or `review` (empty for rows not answered).
    pub band: String,
    pub sources: Vec<String>,
    pub model: String,
    /// `answered`, `needs review`, `not applicable`, `failed` (others are shown uncoloured).
    pub status: String,
    /// Why the row needs review or failed, for the reviewer.
    pub note: Option<String>,
    /// The values went into the customer's file (otherwise they are a draft here only).
    pub written: bool,
    /// The row's answer slots with the draft of each, in slot order.
    pub slots: Vec<ReviewSlot>,
    /// The knowledge-base version and router configuration hash that produced the answer.
    pub kb_version: Option<String>,
    pub config_hash: Option<String>,
}

/// One answer slot of a review row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReviewSlot {
    /// The slot's column header in the customer's sheet ("Answer", "Comments").
    pub header: String,
    pub kind: SlotKind,
    /// Legal values of a choice or X-matrix slot.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub choices: Vec<String>,
    /// What rfpq drafted for it (a choice slot's label).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub draft: Option<String>,
}

/// What the reviewer decided for a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    /// Write the Final values as they stand.
    Approve,
    /// Write the Final values the reviewer changed.
    Edit,
    /// Write nothing for this row.
    Reject,
}

/// The Decision dropdown's values, in list order.
pub const DECISIONS: [&str; 3] = ["approve", "edit", "reject"];

impl Decision {
    /// Reads a Decision cell ("Approve", "approved", " edit " …); `None` for anything else.
    pub fn parse(text: &str) -> Option<Self> {
        match text.trim().to_lowercase().as_str() {
            "approve" | "approved" | "ok" => Some(Self::Approve),
            "edit" | "edited" => Some(Self::Edit),
            "reject" | "rejected" => Some(Self::Reject),
            _ => None,
        }
    }
}

/// One row of a reviewed Review sheet, as the reviewer left it.
#[derive(Debug, Clone, PartialEq)]
pub struct ReviewedRow {
    /// 1-based row of the Review sheet (for messages).
    pub line: u32,
    pub sheet: String,
    pub row: u32,
    pub id: Option<String>,
    pub question: String,
    pub written: bool,
    /// The Decision cell's text, trimmed (empty: no decision).
    pub decision: String,
    /// The row's slots as written (from the hidden Slots column).
    pub slots: Vec<ReviewSlot>,
    /// The Final value of each slot, in slot order (`None`: empty cell).
    pub finals: Vec<Option<String>>,
    /// Why the row cannot be read (missing Slots, a Final column removed …).
    pub problem: Option<String>,
}

/// What the whole job did, for the Summary sheet (under the status and band counts).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReviewReport {
    /// (label, value) lines: counts, questions per minute, calls, tokens, fallbacks.
    pub figures: Vec<(String, f64)>,
    /// Calls and tokens per task and model.
    pub usage: Vec<UsageLine>,
    /// (stage, seconds).
    pub time: Vec<(String, f64)>,
    /// What the times mean, written under them.
    pub time_note: String,
}

/// One line of the Summary sheet's calls-and-tokens table.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UsageLine {
    pub task: String,
    /// `provider:model`.
    pub model: String,
    pub calls: u64,
    pub prompt_tokens: u64,
    /// Generated tokens.
    pub eval_tokens: u64,
}

/// Headers of the Summary sheet's sections: job figures, usage table, time split.
pub const REPORT_HEADERS: [&str; 3] = ["Job", "Task", "Time"];

/// Statuses with a colour, in summary order: (status, fill, font).
const STATUS_COLOURS: [(&str, u32, u32); 4] = [
    ("answered", 0xC6EFCE, 0x006100),
    ("not applicable", 0xDDEBF7, 0x1F4E78),
    ("needs review", 0xFFEB9C, 0x9C5700),
    ("failed", 0xFFC7CE, 0x9C0006),
];

/// (header, width) of the Review sheet's columns before the Final columns.
const LEADING: [(&str, f64); 8] = [
    ("Sheet", 16.0),
    ("Row", 6.0),
    ("Cell(s)", 10.0),
    ("ID", 12.0),
    ("Question", 60.0),
    ("Answer", 40.0),
    ("Written", 9.0),
    ("Decision", 11.0),
];

/// (header, width) of the columns after the Final columns; `Slots` is hidden.
const TRAILING: [(&str, f64); 9] = [
    ("Confidence", 12.0),
    ("Band", 9.0),
    ("Sources", 40.0),
    ("Model", 18.0),
    ("Status", 14.0),
    ("Note", 50.0),
    ("KB version", 18.0),
    ("Config", 14.0),
    ("Slots", 10.0),
];

/// Prefix of the editable answer columns' headers.
pub const FINAL_PREFIX: &str = "Final: ";

/// Excel's limit on a dropdown's comma-joined list.
const MAX_LIST_CHARS: usize = 255;

/// The Final column name of each slot of a row: `Final: <header>`, a repeated header numbered.
pub fn final_columns(slots: &[ReviewSlot]) -> Vec<String> {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    slots
        .iter()
        .map(|slot| {
            let header = slot.header.split_whitespace().collect::<Vec<_>>().join(" ");
            let header = if header.is_empty() {
                "Answer".to_string()
            } else {
                header
            };
            let n = seen.entry(header.clone()).or_default();
            *n += 1;
            if *n == 1 {
                format!("{FINAL_PREFIX}{header}")
            } else {
                format!("{FINAL_PREFIX}{header} ({n})")
            }
        })
        .collect()
}

/// Excel's limit for one cell's text (UTF-16 code units).
const MAX_CELL_TEXT: usize = 32_767;

fn review_err(e: XlsxError) -> WorkbookError {
    WorkbookError::Review(e.to_string())
}

/// Cuts text to what one cell can hold, marking the cut.
fn fit(text: &str) -> String {
    if text.encode_utf16().count() <= MAX_CELL_TEXT {
        return text.to_string();
    }
    let mut out = String::new();
    let mut units = 0;
    for ch in text.chars() {
        units += ch.len_utf16();
        if units > MAX_CELL_TEXT - 1 {
            break;
        }
        out.push(ch);
    }
    out.push('…');
    out
}

/// Builds the review workbook in memory (its Summary sheet has the status and band counts).
pub fn write_review(rows: &[ReviewRow]) -> Result<Vec<u8>, WorkbookError> {
    build(rows, None)
}

/// [`write_review`] with the job's report on the Summary sheet, under the counts: figures
/// (questions, outcomes, questions per minute, calls, tokens, fallbacks), calls and tokens per
/// task and model, and the time split.
pub fn write_review_report(
    rows: &[ReviewRow],
    report: &ReviewReport,
) -> Result<Vec<u8>, WorkbookError> {
    build(rows, Some(report))
}

fn build(rows: &[ReviewRow], report: Option<&ReviewReport>) -> Result<Vec<u8>, WorkbookError> {
    let mut wb = Workbook::new();
    let header = Format::new()
        .set_bold()
        .set_background_color(0xD9E1F2)
        .set_align(FormatAlign::Top);
    let wrap = Format::new().set_text_wrap().set_align(FormatAlign::Top);
    let top = Format::new().set_align(FormatAlign::Top);
    let percent = Format::new()
        .set_num_format("0%")
        .set_align(FormatAlign::Top);

    let ws = wb.add_worksheet();
    ws.set_name("Review").map_err(review_err)?;
    write_review_sheet(ws, rows, &header, &wrap, &top, &percent)?;

    let summary = wb.add_worksheet();
    summary.set_name("Summary").map_err(review_err)?;
    let next = write_summary(summary, rows, &header)?;
    if let Some(report) = report {
        write_report(summary, next + 2, report, &header)?;
    }

    wb.save_to_buffer().map_err(review_err)
}

/// A Final column and the legal values of its dropdown.
type DropdownKey = (u16, Vec<String>);
/// First and last line of a run of consecutive lines.
type LineRun = (u32, u32);

/// The Review sheet: one line per question row, Final columns between the leading and the
/// trailing columns.
fn write_review_sheet(
    ws: &mut Worksheet,
    rows: &[ReviewRow],
    header: &Format,
    wrap: &Format,
    top: &Format,
    percent: &Format,
) -> Result<(), WorkbookError> {
    // Every Final column any row needs, in order of first appearance; text columns are wide.
    let per_row: Vec<Vec<String>> = rows.iter().map(|r| final_columns(&r.slots)).collect();
    let mut finals: Vec<(String, bool)> = Vec::new();
    for (r, names) in rows.iter().zip(&per_row) {
        for (slot, name) in r.slots.iter().zip(names) {
            if !finals.iter().any(|(n, _)| n == name) {
                finals.push((name.clone(), slot.kind == SlotKind::Text));
            }
        }
    }
    if finals.is_empty() {
        finals.push((format!("{FINAL_PREFIX}Answer"), false));
    }
    let first_final = LEADING.len() as u16;
    let first_trailing = first_final + finals.len() as u16;
    let col_of = |name: &str| -> Option<u16> {
        if let Some(i) = LEADING.iter().position(|(n, _)| *n == name) {
            return Some(i as u16);
        }
        if let Some(i) = finals.iter().position(|(n, _)| n == name) {
            return Some(first_final + i as u16);
        }
        TRAILING
            .iter()
            .position(|(n, _)| *n == name)
            .map(|i| first_trailing + i as u16)
    };
    let col = |name: &str| col_of(name).expect("a known column");
    let editable = Format::new()
        .set_text_wrap()
        .set_align(FormatAlign::Top)
        .set_background_color(0xFFF9E5);
    let editable_header = header.clone().set_background_color(0xFFE699);
    for (i, (title, width)) in LEADING.iter().enumerate() {
        let format = if *title == "Decision" {
            &editable_header
        } else {
            header
        };
        ws.write_string_with_format(0, i as u16, *title, format)
            .map_err(review_err)?;
        ws.set_column_width(i as u16, *width).map_err(review_err)?;
    }
    for (i, (title, text)) in finals.iter().enumerate() {
        let c = first_final + i as u16;
        ws.write_string_with_format(0, c, title, &editable_header)
            .map_err(review_err)?;
        ws.set_column_width(c, if *text { 45.0 } else { 14.0 })
            .map_err(review_err)?;
    }
    for (i, (title, width)) in TRAILING.iter().enumerate() {
        let c = first_trailing + i as u16;
        ws.write_string_with_format(0, c, *title, header)
            .map_err(review_err)?;
        ws.set_column_width(c, *width).map_err(review_err)?;
    }
    ws.set_column_hidden(col("Slots")).map_err(review_err)?;

    // (column, legal values) → runs of consecutive lines, for the dropdowns.
    let mut lists: BTreeMap<DropdownKey, Vec<LineRun>> = BTreeMap::new();
    for (i, (r, names)) in rows.iter().zip(&per_row).enumerate() {
        let line =
            u32::try_from(i + 1).map_err(|_| WorkbookError::Review("too many rows".into()))?;
        let slots_json = serde_json::to_string(&r.slots)
            .map_err(|e| WorkbookError::Review(format!("cannot record the slots: {e}")))?;
        let texts = [
            ("Sheet", r.sheet.as_str(), top),
            ("Cell(s)", r.cells.as_str(), top),
            ("ID", r.id.as_deref().unwrap_or(""), top),
            ("Question", r.question.as_str(), wrap),
            ("Answer", r.answers.as_str(), wrap),
            ("Written", if r.written { "yes" } else { "no" }, top),
            ("Decision", "", &editable),
            ("Band", r.band.as_str(), top),
            ("Model", r.model.as_str(), top),
            ("Status", r.status.as_str(), top),
            ("Note", r.note.as_deref().unwrap_or(""), wrap),
            ("KB version", r.kb_version.as_deref().unwrap_or(""), top),
            ("Config", r.config_hash.as_deref().unwrap_or(""), top),
            ("Slots", slots_json.as_str(), top),
        ];
        for (name, text, format) in texts {
            ws.write_string_with_format(line, col(name), fit(text), format)
                .map_err(review_err)?;
        }
        ws.write_number_with_format(line, col("Row"), f64::from(r.row), top)
            .map_err(review_err)?;
        ws.write_number_with_format(
            line,
            col("Confidence"),
            f64::from(r.confidence.clamp(0.0, 1.0)),
            percent,
        )
        .map_err(review_err)?;
        ws.write_string_with_format(line, col("Sources"), fit(&r.sources.join("\n")), wrap)
            .map_err(review_err)?;
        for (slot, name) in r.slots.iter().zip(names) {
            let c = col(name);
            ws.write_string_with_format(
                line,
                c,
                fit(slot.draft.as_deref().unwrap_or("")),
                &editable,
            )
            .map_err(review_err)?;
            if !slot.choices.is_empty() {
                let runs = lists.entry((c, slot.choices.clone())).or_default();
                match runs.last_mut() {
                    Some((_, last)) if *last + 1 == line => *last = line,
                    _ => runs.push((line, line)),
                }
            }
        }
    }
    let last_line =
        u32::try_from(rows.len()).map_err(|_| WorkbookError::Review("too many rows".into()))?;
    if last_line > 0 {
        let decision = DataValidation::new()
            .allow_list_strings(&DECISIONS)
            .map_err(review_err)?
            .ignore_blank(true)
            .set_input_title("Decision")
            .map_err(review_err)?
            .set_input_message(
                "approve: write the Final values\nedit: write the Final values you changed\nreject: leave the row empty",
            )
            .map_err(review_err)?;
        ws.add_data_validation(1, col("Decision"), last_line, col("Decision"), &decision)
            .map_err(review_err)?;
    }
    for ((c, choices), runs) in &lists {
        if choices.iter().map(|v| v.chars().count() + 1).sum::<usize>() > MAX_LIST_CHARS
            || choices.iter().any(|v| v.contains(','))
        {
            // Excel cannot show this list as a dropdown; `apply` still checks the value.
            continue;
        }
        let dv = DataValidation::new()
            .allow_list_strings(choices)
            .map_err(review_err)?
            .ignore_blank(true)
            .set_error_style(DataValidationErrorStyle::Stop)
            .set_error_title("Not a legal value")
            .map_err(review_err)?
            .set_error_message(format!(
                "The customer's cell only takes: {}",
                choices.join(", ")
            ))
            .map_err(review_err)?;
        for (first, last) in runs {
            ws.add_data_validation(*first, *c, *last, *c, &dv)
                .map_err(review_err)?;
        }
    }
    ws.set_freeze_panes(1, 0).map_err(review_err)?;
    ws.autofilter(0, 0, last_line, first_trailing + TRAILING.len() as u16 - 2)
        .map_err(review_err)?;
    if !rows.is_empty() {
        colour_statuses(ws, last_line, col("Status"))?;
    }
    Ok(())
}

fn colour_statuses(ws: &mut Worksheet, last_row: u32, col: u16) -> Result<(), WorkbookError> {
    for (status, fill, font) in STATUS_COLOURS {
        let cf = ConditionalFormatCell::new()
            .set_rule(ConditionalFormatCellRule::EqualTo(status))
            .set_format(
                Format::new()
                    .set_background_color(fill)
                    .set_font_color(font),
            );
        ws.add_conditional_format(1, col, last_row, col, &cf)
            .map_err(review_err)?;
    }
    Ok(())
}

/// Writes the status and band counts; returns the last row written.
fn write_summary(
    ws: &mut Worksheet,
    rows: &[ReviewRow],
    header: &Format,
) -> Result<u32, WorkbookError> {
    let mut counts: BTreeMap<&str, u32> = BTreeMap::new();
    for r in rows {
        *counts.entry(r.status.as_str()).or_default() += 1;
    }
    let known: Vec<&str> = STATUS_COLOURS.iter().map(|(s, _, _)| *s).collect();
    let mut order: Vec<&str> = known.clone();
    order.extend(counts.keys().filter(|s| !known.contains(s)));

    ws.write_string_with_format(0, 0, "Status", header)
        .map_err(review_err)?;
    ws.write_string_with_format(0, 1, "Count", header)
        .map_err(review_err)?;
    ws.set_column_width(0, 18).map_err(review_err)?;
    ws.set_column_width(1, 10).map_err(review_err)?;
    let mut row = 1;
    for status in &order {
        ws.write_string(row, 0, fit(status)).map_err(review_err)?;
        ws.write_number(row, 1, f64::from(counts.get(status).copied().unwrap_or(0)))
            .map_err(review_err)?;
        row += 1;
    }
    let bold = Format::new().set_bold();
    ws.write_string_with_format(row, 0, "Total", &bold)
        .map_err(review_err)?;
    ws.write_number_with_format(row, 1, rows.len() as f64, &bold)
        .map_err(review_err)?;
    // Confidence bands, for calibrating the review threshold.
    row += 2;
    ws.write_string_with_format(row, 0, "Band", header)
        .map_err(review_err)?;
    ws.write_string_with_format(row, 1, "Count", header)
        .map_err(review_err)?;
    for band in ["library", "high", "review"] {
        row += 1;
        ws.write_string(row, 0, band).map_err(review_err)?;
        let n = rows.iter().filter(|r| r.band == band).count();
        ws.write_number(row, 1, n as f64).map_err(review_err)?;
    }
    Ok(row)
}

/// Writes the job report from `row` down: figures, the usage table, the time split.
fn write_report(
    ws: &mut Worksheet,
    mut row: u32,
    report: &ReviewReport,
    header: &Format,
) -> Result<(), WorkbookError> {
    let number = Format::new().set_num_format("#,##0");
    let decimal = Format::new().set_num_format("0.0");
    let seconds = Format::new().set_num_format("0.00");
    let italic = Format::new().set_italic();
    ws.set_column_width(0, 32).map_err(review_err)?;
    ws.set_column_width(1, 24).map_err(review_err)?;
    for col in 2..5 {
        ws.set_column_width(col, 14).map_err(review_err)?;
    }
    let heads = |ws: &mut Worksheet, row: u32, titles: &[&str]| {
        for (col, title) in titles.iter().enumerate() {
            ws.write_string_with_format(row, col as u16, *title, header)
                .map_err(review_err)?;
        }
        Ok::<(), WorkbookError>(())
    };
    heads(ws, row, &[REPORT_HEADERS[0], "Value"])?;
    for (label, value) in &report.figures {
        row += 1;
        let format = if value.fract() == 0.0 {
            &number
        } else {
            &decimal
        };
        ws.write_string(row, 0, fit(label)).map_err(review_err)?;
        ws.write_number_with_format(row, 1, *value, format)
            .map_err(review_err)?;
    }
    row += 2;
    heads(
        ws,
        row,
        &[
            REPORT_HEADERS[1],
            "Model",
            "Calls",
            "Prompt tokens",
            "Output tokens",
        ],
    )?;
    for u in &report.usage {
        row += 1;
        ws.write_string(row, 0, fit(&u.task)).map_err(review_err)?;
        ws.write_string(row, 1, fit(&u.model)).map_err(review_err)?;
        for (col, n) in [(2, u.calls), (3, u.prompt_tokens), (4, u.eval_tokens)] {
            ws.write_number_with_format(row, col, n as f64, &number)
                .map_err(review_err)?;
        }
    }
    row += 2;
    heads(ws, row, &[REPORT_HEADERS[2], "Seconds"])?;
    for (label, secs) in &report.time {
        row += 1;
        ws.write_string(row, 0, fit(label)).map_err(review_err)?;
        ws.write_number_with_format(row, 1, *secs, &seconds)
            .map_err(review_err)?;
    }
    if !report.time_note.is_empty() {
        ws.write_string_with_format(row + 1, 0, fit(&report.time_note), &italic)
            .map_err(review_err)?;
    }
    Ok(())
}

/// What a reviewed row asks for, its Decision and Final cells read together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Approved as drafted.
    Approve,
    /// Final values changed (by `edit`, by `approve` over changed values, or with no Decision).
    Edit,
    /// Rejected: nothing is written for the row.
    Reject,
    /// No Decision on an answer rfpq already wrote into the file: it stays as written.
    Keep,
    /// No Decision on a draft: it stays out of the file.
    Undecided,
}

impl Verdict {
    /// The reviewer stood behind the values (approve or edit): they may be learnt.
    pub fn reviewed(self) -> bool {
        matches!(self, Self::Approve | Self::Edit)
    }

    /// The values go into the final file.
    pub fn writes(self) -> bool {
        matches!(self, Self::Approve | Self::Edit | Self::Keep)
    }
}

impl ReviewSlot {
    /// `raw` as this slot may hold it: a choice mapped onto its legal values ("y" → "Yes",
    /// "n/a" → "N/A"), a date as `YYYY-MM-DD`, text as given (within a cell's limit).
    pub fn legal_value(&self, raw: &str, column: &str) -> Result<String, String> {
        let raw = raw.trim();
        match self.kind {
            SlotKind::Choice | SlotKind::Mark => super::values::legal_choice(raw, &self.choices)
                .ok_or_else(|| {
                    format!(
                        "'{raw}' in {column} is not one of the cell's values ({})",
                        self.choices.join(", ")
                    )
                }),
            SlotKind::Date => super::values::legal_date(raw)
                .ok_or_else(|| format!("'{raw}' in {column} is not a date (YYYY-MM-DD)")),
            SlotKind::Text => {
                if raw.encode_utf16().count() > MAX_CELL_TEXT {
                    Err(format!(
                        "the text in {column} is longer than a cell holds ({MAX_CELL_TEXT} characters)"
                    ))
                } else {
                    Ok(raw.to_string())
                }
            }
        }
    }
}

impl ReviewedRow {
    /// "Sheet!row" of the question in the customer's file.
    pub fn location(&self) -> String {
        format!("{}!{}", self.sheet, self.row)
    }

    /// Whether any Final value differs from its draft.
    pub fn changed(&self) -> bool {
        self.slots.iter().zip(&self.finals).any(|(slot, value)| {
            let draft = slot.draft.as_deref().map(str::trim).unwrap_or("");
            value.as_deref().unwrap_or("") != draft
        })
    }

    /// What the row asks for; `Err` names an unreadable row or an unknown Decision.
    pub fn verdict(&self) -> Result<Verdict, String> {
        if let Some(problem) = &self.problem {
            return Err(problem.clone());
        }
        let decision = if self.decision.is_empty() {
            None
        } else {
            Some(Decision::parse(&self.decision).ok_or_else(|| {
                format!(
                    "Decision '{}' is not one of {}",
                    self.decision,
                    DECISIONS.join(", ")
                )
            })?)
        };
        Ok(match decision {
            Some(Decision::Reject) => Verdict::Reject,
            Some(Decision::Edit) => Verdict::Edit,
            Some(Decision::Approve) if self.changed() => Verdict::Edit,
            Some(Decision::Approve) => Verdict::Approve,
            None if self.changed() => Verdict::Edit,
            None if self.written => Verdict::Keep,
            None => Verdict::Undecided,
        })
    }

    /// The Final values made legal, one per slot (`None`: empty); `Err` names the first value
    /// the customer's cell cannot take, or a row with nothing to write.
    pub fn legal_finals(&self) -> Result<Vec<Option<String>>, String> {
        let names = final_columns(&self.slots);
        let mut out = Vec::with_capacity(self.slots.len());
        for ((slot, value), name) in self.slots.iter().zip(&self.finals).zip(&names) {
            out.push(match value {
                Some(v) => Some(slot.legal_value(v, name)?),
                None => None,
            });
        }
        if out.iter().all(Option::is_none) {
            return Err(
                "every Final cell is empty: nothing to write (reject the row to leave it empty)"
                    .into(),
            );
        }
        Ok(out)
    }
}

/// A cell of a reviewed sheet as text: numbers without a trailing ".0", dates as
/// `YYYY-MM-DD`, booleans as Excel shows them; `None` when empty.
fn cell_text(d: &calamine::Data) -> Option<String> {
    use calamine::Data;
    let text = match d {
        Data::Empty | Data::Error(_) => return None,
        Data::String(s) | Data::DateTimeIso(s) | Data::DurationIso(s) => s.clone(),
        Data::Int(n) => n.to_string(),
        Data::Float(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", *f as i64),
        Data::Float(f) => f.to_string(),
        Data::Bool(b) => if *b { "TRUE" } else { "FALSE" }.to_string(),
        Data::DateTime(dt) => {
            let (y, m, day, ..) = dt.to_ymd_hms_milli();
            format!("{y:04}-{m:02}-{day:02}")
        }
    };
    let text = text.trim().to_string();
    (!text.is_empty()).then_some(text)
}

/// Reads a reviewed workbook's Review sheet (columns found by their headers, so a reviewer
/// may reorder or sort them). Rows the reader cannot make sense of carry a `problem`;
/// the error is for a file that is not a review workbook at all.
pub fn read_review(bytes: &[u8]) -> Result<Vec<ReviewedRow>, WorkbookError> {
    use calamine::Reader;
    let mut xl: calamine::Xlsx<_> = calamine::open_workbook_from_rs(std::io::Cursor::new(bytes))
        .map_err(|e: calamine::XlsxError| {
            WorkbookError::Review(format!("not a readable .xlsx review workbook: {e}"))
        })?;
    let range = xl.worksheet_range("Review").map_err(|_| {
        WorkbookError::Review("no Review sheet: not an rfpq review workbook".into())
    })?;
    let mut lines = range.rows();
    let headers: Vec<String> = lines
        .next()
        .ok_or_else(|| WorkbookError::Review("the Review sheet is empty".into()))?
        .iter()
        .map(|d| cell_text(d).unwrap_or_default())
        .collect();
    let find = |name: &str| headers.iter().position(|h| h == name);
    let need = |name: &str| {
        find(name).ok_or_else(|| {
            WorkbookError::Review(format!(
                "the Review sheet has no '{name}' column (was it made by an older rfpq, or the column deleted?)"
            ))
        })
    };
    let (c_sheet, c_row, c_question, c_decision, c_slots) = (
        need("Sheet")?,
        need("Row")?,
        need("Question")?,
        need("Decision")?,
        need("Slots")?,
    );
    let (c_id, c_written) = (find("ID"), find("Written"));
    let first_line = range.start().map_or(0, |(r, _)| r) + 1;
    let mut out = Vec::new();
    for (i, cells) in lines.enumerate() {
        let get = |c: usize| cells.get(c).and_then(cell_text);
        let Some(sheet) = get(c_sheet) else {
            continue;
        };
        let line = first_line + i as u32 + 1;
        let mut problem = None;
        let row = match get(c_row).and_then(|r| r.parse::<u32>().ok()) {
            Some(r) if r > 0 => r,
            _ => {
                problem = Some("its Row is not a row number".to_string());
                0
            }
        };
        let slots: Vec<ReviewSlot> = match get(c_slots).map(|j| serde_json::from_str(&j)) {
            Some(Ok(slots)) => slots,
            _ => {
                problem.get_or_insert("its hidden Slots cell is missing or changed".to_string());
                Vec::new()
            }
        };
        let mut finals = Vec::with_capacity(slots.len());
        for name in final_columns(&slots) {
            match find(&name) {
                Some(c) => finals.push(get(c)),
                None => {
                    problem.get_or_insert(format!("the '{name}' column is missing"));
                    finals.push(None);
                }
            }
        }
        out.push(ReviewedRow {
            line,
            sheet,
            row,
            id: c_id.and_then(get),
            question: get(c_question).unwrap_or_default(),
            written: c_written
                .and_then(get)
                .is_some_and(|w| w.eq_ignore_ascii_case("yes")),
            decision: get(c_decision).unwrap_or_default(),
            slots,
            finals,
            problem,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use calamine::{Data, Reader, Xlsx};

    fn row(r: u32, written: bool, slots: Vec<ReviewSlot>) -> ReviewRow {
        ReviewRow {
            sheet: "Security".into(),
            row: r,
            cells: format!("C{r}"),
            id: Some(format!("Q{r}")),
            question: format!("Question {r}?"),
            answers: String::new(),
            confidence: 0.5,
            band: "review".into(),
            sources: vec![],
            model: "embedded".into(),
            status: "needs review".into(),
            note: None,
            written,
            slots,
            kb_version: Some("abc".into()),
            config_hash: Some("cfg".into()),
        }
    }

    fn yes_no(draft: Option<&str>) -> ReviewSlot {
        ReviewSlot {
            header: "Answer".into(),
            kind: SlotKind::Choice,
            choices: vec!["Yes".into(), "No".into(), "N/A".into()],
            draft: draft.map(Into::into),
        }
    }

    fn comment(draft: Option<&str>) -> ReviewSlot {
        ReviewSlot {
            header: "Comments".into(),
            kind: SlotKind::Text,
            choices: vec![],
            draft: draft.map(Into::into),
        }
    }

    #[test]
    fn review_reads_back_with_decisions_and_verdicts() {
        let rows = vec![
            row(
                2,
                true,
                vec![yes_no(Some("Yes")), comment(Some("Encrypted."))],
            ),
            row(3, false, vec![yes_no(Some("No")), comment(None)]),
            row(4, false, vec![yes_no(None), comment(None)]),
            // Two slots under one header get numbered Final columns.
            row(
                5,
                false,
                vec![comment(Some("a")), comment(Some("b")), yes_no(Some("N/A"))],
            ),
        ];
        let bytes = write_review(&rows).unwrap();
        let back = read_review(&bytes).unwrap();
        assert_eq!(back.len(), 4);
        assert_eq!(
            back[0].finals,
            vec![Some("Yes".to_string()), Some("Encrypted.".to_string())]
        );
        assert_eq!(back[0].line, 2);
        assert!(back[0].written && !back[1].written);
        assert_eq!(back[3].finals.len(), 3);
        assert_eq!(back[3].finals[1].as_deref(), Some("b"));
        // Nothing decided: a written row is kept, a draft stays out.
        assert_eq!(back[0].verdict(), Ok(Verdict::Keep));
        assert_eq!(back[1].verdict(), Ok(Verdict::Undecided));
        let mut r = back[1].clone();
        r.decision = "Approved".into();
        assert_eq!(r.verdict(), Ok(Verdict::Approve));
        r.finals[0] = Some("yes".into());
        assert_eq!(
            r.verdict(),
            Ok(Verdict::Edit),
            "approve over a change is an edit"
        );
        assert_eq!(r.legal_finals().unwrap()[0].as_deref(), Some("Yes"));
        r.finals[0] = Some("Maybe".into());
        let why = r.legal_finals().unwrap_err();
        assert!(why.contains("'Maybe' in Final: Answer"), "{why}");
        r.decision = "later".into();
        assert!(r.verdict().unwrap_err().contains("'later'"));
        r.decision = "reject".into();
        assert_eq!(r.verdict(), Ok(Verdict::Reject));
        // A row with nothing to write cannot be approved.
        let mut empty = back[2].clone();
        empty.decision = "approve".into();
        assert!(empty.legal_finals().is_err());
        // A changed Final with no Decision is taken as an edit.
        let mut typed = back[2].clone();
        typed.finals[0] = Some("No".into());
        assert_eq!(typed.verdict(), Ok(Verdict::Edit));
    }

    #[test]
    fn a_workbook_without_the_review_columns_is_refused() {
        let mut wb = Workbook::new();
        wb.add_worksheet().set_name("Review").unwrap();
        let bytes = wb.save_to_buffer().unwrap();
        assert!(read_review(&bytes).is_err());
        let mut wb = Workbook::new();
        wb.add_worksheet().write_string(0, 0, "Question").unwrap();
        assert!(read_review(&wb.save_to_buffer().unwrap()).is_err());
    }

    #[test]
    fn report_goes_under_the_counts_on_the_summary_sheet() {
        let report = ReviewReport {
            figures: vec![
                ("Questions".into(), 3.0),
                ("Questions per minute".into(), 12.5),
            ],
            usage: vec![UsageLine {
                task: "answer".into(),
                model: "stub:qwen2.5:7b".into(),
                calls: 3,
                prompt_tokens: 102,
                eval_tokens: 36,
            }],
            time: vec![("Wall clock".into(), 4.25), ("Queue wait".into(), 0.5)],
            time_note: "summed over rows".into(),
        };
        let bytes = write_review_report(&[], &report).unwrap();
        let mut xl: Xlsx<_> = calamine::open_workbook_from_rs(std::io::Cursor::new(bytes)).unwrap();
        assert_eq!(xl.sheet_names(), vec!["Review", "Summary"]);
        let s = xl.worksheet_range("Summary").unwrap();
        let cell = |r: u32, c: u32| s.get_value((r, c)).cloned().unwrap_or(Data::Empty);
        let text = |r: u32, c: u32| cell(r, c).to_string();
        // The counts keep their place (rows 0..=10); the report starts two rows below.
        assert_eq!(
            (text(0, 0), text(5, 0), text(7, 0)),
            ("Status".into(), "Total".into(), "Band".into())
        );
        assert_eq!((text(12, 0), text(12, 1)), ("Job".into(), "Value".into()));
        assert_eq!(cell(13, 1), Data::Float(3.0));
        assert_eq!(
            (text(14, 0), cell(14, 1)),
            ("Questions per minute".into(), Data::Float(12.5))
        );
        assert_eq!(text(16, 0), "Task");
        assert_eq!(
            (1..5).map(|c| text(16, c)).collect::<Vec<_>>(),
            ["Model", "Calls", "Prompt tokens", "Output tokens"]
        );
        assert_eq!(text(17, 1), "stub:qwen2.5:7b");
        assert_eq!(
            (2..5).map(|c| cell(17, c)).collect::<Vec<_>>(),
            [Data::Float(3.0), Data::Float(102.0), Data::Float(36.0)]
        );
        assert_eq!(
            (text(19, 0), text(19, 1)),
            ("Time".into(), "Seconds".into())
        );
        assert_eq!(
            (text(20, 0), cell(20, 1)),
            ("Wall clock".into(), Data::Float(4.25))
        );
        assert_eq!(cell(21, 1), Data::Float(0.5));
        assert_eq!(text(22, 0), "summed over rows");

        // Without a report the sheet ends with the band counts.
        let plain = write_review(&[]).unwrap();
        let mut xl: Xlsx<_> = calamine::open_workbook_from_rs(std::io::Cursor::new(plain)).unwrap();
        assert_eq!(xl.worksheet_range("Summary").unwrap().height(), 11);
    }
}
