//! Writes the review workbook (the Review sheet with its dropdowns and colours, the Summary
//! sheet with counts and the job report); does not read a reviewed one back (`read` does).

use super::{
    DECISIONS, FINAL_PREFIX, MAX_CELL_TEXT, REPORT_HEADERS, ReviewReport, ReviewRow, final_columns,
};
use crate::workbook::{SlotKind, WorkbookError};
use rust_xlsxwriter::{
    ConditionalFormatCell, ConditionalFormatCellRule, DataValidation, DataValidationErrorStyle,
    Format, FormatAlign, Workbook, Worksheet, XlsxError,
};
use std::collections::BTreeMap;

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

/// Excel's limit on a dropdown's comma-joined list.
const MAX_LIST_CHARS: usize = 255;

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workbook::review::{UsageLine, write_review};
    use calamine::{Data, Reader, Xlsx};

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
