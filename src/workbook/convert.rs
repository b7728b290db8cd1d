//! Rebuilds a legacy Excel 97-2003 (.xls) or OpenDocument (.ods) workbook as a plain .xlsx that
//! the rest of the engine then treats as the original. It cannot preserve the source format
//! and says so in a warning; it carries over sheet names, visibility, values, merged cells and
//! (for .ods) dropdown lists. It never writes back into the legacy file.

use super::package::{self, Limits, Package};
use super::{CellRange, CellRef, MAX_COL, MAX_ROW, WorkbookError, xml};
use calamine::{Data, Reader, SheetType, SheetVisible};
use quick_xml::Reader as XmlReader;
use quick_xml::events::{BytesStart, Event};
use rust_xlsxwriter::{DataValidation, ExcelDateTime, Format, Formula, Workbook};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::io::Cursor;

/// Most cells a legacy workbook may expand to while it is read (calamine reads sheets densely).
const MAX_LEGACY_CELLS: u64 = 10_000_000;
/// Longest inline dropdown list Excel accepts (characters, separators included).
const MAX_INLINE_LIST: usize = 255;

/// What kind of file a submitted workbook is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum SourceFormat {
    #[default]
    Xlsx,
    /// Macro-enabled: patched in place like .xlsx, macros kept byte-identical.
    Xlsm,
    /// Legacy Excel 97-2003: read, answered into a new .xlsx.
    Xls,
    /// OpenDocument spreadsheet: read, answered into a new .xlsx.
    Ods,
}

impl SourceFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Xlsx => "xlsx",
            Self::Xlsm => "xlsm",
            Self::Xls => "xls",
            Self::Ods => "ods",
        }
    }

    /// The format named by [`Self::as_str`].
    pub fn parse(name: &str) -> Option<Self> {
        [Self::Xlsx, Self::Xlsm, Self::Xls, Self::Ods]
            .into_iter()
            .find(|f| f.as_str() == name)
    }

    /// Extension the filled workbook must carry (Excel refuses an .xlsm package named .xlsx).
    pub fn output_extension(self) -> &'static str {
        match self {
            Self::Xlsm => "xlsm",
            _ => "xlsx",
        }
    }

    /// Whether the filled workbook is a new file rather than the patched original.
    pub fn is_converted(self) -> bool {
        matches!(self, Self::Xls | Self::Ods)
    }
}

/// A workbook ready for detection and patching: the original package, or for .xls/.ods the
/// .xlsx rebuilt from it, with the warnings a user must see.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub bytes: Vec<u8>,
    pub format: SourceFormat,
    pub warnings: Vec<String>,
}

/// Tells the format of `bytes`; the sniffer's clear error for anything else.
pub fn source_format(bytes: &[u8]) -> Result<SourceFormat, WorkbookError> {
    if package::is_ole(bytes) && package::ole_kind(bytes) == package::OleKind::Xls {
        return Ok(SourceFormat::Xls);
    }
    let mut pkg = Package::open(bytes, Limits::default())?;
    if let Some(mime) = pkg.read_name("mimetype")? {
        let mime = String::from_utf8_lossy(&mime);
        if mime.trim() == "application/vnd.oasis.opendocument.spreadsheet" {
            return Ok(SourceFormat::Ods);
        }
    }
    let types = pkg.read_xml("[Content_Types].xml")?.unwrap_or_default();
    Ok(if types.contains("sheet.macroEnabled.main+xml") {
        SourceFormat::Xlsm
    } else {
        SourceFormat::Xlsx
    })
}

/// Loads any supported workbook: .xlsx/.xlsm as they are, .xls/.ods rebuilt as .xlsx.
pub fn load(bytes: Vec<u8>) -> Result<Loaded, WorkbookError> {
    let format = source_format(&bytes)?;
    match format {
        SourceFormat::Xlsx | SourceFormat::Xlsm => Ok(Loaded {
            bytes,
            format,
            warnings: Vec::new(),
        }),
        SourceFormat::Xls | SourceFormat::Ods => {
            let (xlsx, mut warnings) = guarded(|| convert(&bytes, format))?;
            warnings.insert(0, conversion_warning(format));
            Ok(Loaded {
                bytes: xlsx,
                format,
                warnings,
            })
        }
    }
}

fn conversion_warning(format: SourceFormat) -> String {
    let (what, kept) = match format {
        SourceFormat::Xls => (
            "a legacy Excel 97-2003 workbook (.xls)",
            "sheet names, hidden sheets, values and merged cells are carried over; formatting, \
             formulas (replaced by their last values) and dropdown lists are not",
        ),
        _ => (
            "an OpenDocument spreadsheet (.ods)",
            "sheet names, hidden sheets, values, merged cells and dropdown lists are carried \
             over; formatting and formulas (replaced by their last values) are not",
        ),
    };
    format!(
        "the original is {what}, whose format cannot be preserved: the answers go into a new \
         .xlsx built from it ({kept})"
    )
}

/// Runs a third-party reader so that a panic on a hostile file becomes an error (printed nowhere).
fn guarded<T>(f: impl FnOnce() -> Result<T, WorkbookError>) -> Result<T, WorkbookError> {
    crate::guard::quietly(f).unwrap_or_else(|panicked| {
        Err(WorkbookError::Corrupt(format!(
            "the workbook cannot be read (the reader failed: {panicked})"
        )))
    })
}

/// One sheet's extras that calamine does not expose.
#[derive(Debug, Default)]
struct SheetExtras {
    merged: Vec<CellRange>,
    /// Ranges with a dropdown, and the validation's name.
    validations: Vec<(CellRange, String)>,
}

fn convert(bytes: &[u8], format: SourceFormat) -> Result<(Vec<u8>, Vec<String>), WorkbookError> {
    let corrupt = |e: calamine::Error| {
        WorkbookError::Corrupt(format!("cannot read the {} workbook: {e}", format.as_str()))
    };
    match format {
        SourceFormat::Xls => {
            let xls: calamine::Xls<_> = calamine::open_workbook_from_rs(Cursor::new(bytes))
                .map_err(|e| {
                    WorkbookError::Corrupt(format!("cannot read the .xls workbook: {e}"))
                })?;
            let mut extras = BTreeMap::new();
            for name in xls.sheet_names() {
                let merged = xls
                    .merge_cells_by_sheet_name(&name)
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|d| dims_range(d.start, d.end))
                    .collect();
                extras.insert(
                    name,
                    SheetExtras {
                        merged,
                        validations: Vec::new(),
                    },
                );
            }
            let mut sheets = calamine::Sheets::Xls(xls);
            rebuild(&mut sheets, &extras, &HashMap::new()).map_err(|e| match e {
                Rebuild::Read(e) => corrupt(e),
                Rebuild::Other(e) => e,
            })
        }
        _ => {
            let scan = scan_ods(bytes)?;
            let mut sheets = calamine::Sheets::Ods(
                calamine::open_workbook_from_rs(Cursor::new(bytes)).map_err(|e| {
                    WorkbookError::Corrupt(format!("cannot read the .ods workbook: {e}"))
                })?,
            );
            rebuild(&mut sheets, &scan.sheets, &scan.lists).map_err(|e| match e {
                Rebuild::Read(e) => corrupt(e),
                Rebuild::Other(e) => e,
            })
        }
    }
}

fn dims_range(start: (u32, u32), end: (u32, u32)) -> Option<CellRange> {
    (start.0 <= end.0 && start.1 <= end.1 && end.0 <= MAX_ROW && end.1 <= MAX_COL).then(|| {
        CellRange {
            start: CellRef::new(start.0, start.1),
            end: CellRef::new(end.0, end.1),
        }
    })
}

enum Rebuild {
    Read(calamine::Error),
    Other(WorkbookError),
}

impl From<WorkbookError> for Rebuild {
    fn from(e: WorkbookError) -> Self {
        Self::Other(e)
    }
}

fn xlsx_err(e: rust_xlsxwriter::XlsxError) -> Rebuild {
    Rebuild::Other(WorkbookError::Corrupt(format!(
        "cannot rebuild the workbook as .xlsx: {e}"
    )))
}

/// Writes every worksheet of a calamine workbook into a new .xlsx.
fn rebuild<RS: std::io::Read + std::io::Seek>(
    sheets: &mut calamine::Sheets<RS>,
    extras: &BTreeMap<String, SheetExtras>,
    lists: &HashMap<String, ListRule>,
) -> Result<(Vec<u8>, Vec<String>), Rebuild> {
    let mut warnings = Vec::new();
    let meta: Vec<calamine::Sheet> = sheets.sheets_metadata().to_vec();
    let worksheets: Vec<&calamine::Sheet> = meta
        .iter()
        .filter(|s| s.typ == SheetType::WorkSheet)
        .collect();
    if worksheets.is_empty() {
        return Err(WorkbookError::NotAWorkbook("the workbook has no worksheet".into()).into());
    }
    // Excel's sheet-name rules are stricter than .ods ones: rename where needed, once.
    let mut names: HashMap<String, String> = HashMap::new();
    for s in &worksheets {
        let new = excel_sheet_name(&s.name, names.values());
        if new != s.name {
            warnings.push(format!(
                "sheet '{}' is named '{new}' in the new workbook (Excel does not allow the \
                 original name)",
                s.name
            ));
        }
        names.insert(s.name.clone(), new);
    }
    let mut book = Workbook::new();
    let wrap = Format::new()
        .set_text_wrap()
        .set_align(rust_xlsxwriter::FormatAlign::Top);
    let date = Format::new().set_num_format("yyyy-mm-dd");
    let datetime = Format::new().set_num_format("yyyy-mm-dd hh:mm:ss");
    let mut total_cells: u64 = 0;
    let first_visible = worksheets
        .iter()
        .position(|s| s.visible == SheetVisible::Visible);
    for (i, s) in worksheets.iter().enumerate() {
        let range = sheets.worksheet_range(&s.name).map_err(Rebuild::Read)?;
        let sheet = book.add_worksheet();
        sheet.set_name(&names[&s.name]).map_err(xlsx_err)?;
        match s.visible {
            SheetVisible::Visible => {}
            SheetVisible::Hidden => {
                sheet.set_hidden(true);
            }
            SheetVisible::VeryHidden => {
                sheet.set_very_hidden(true);
            }
        }
        if Some(i) == first_visible {
            sheet.set_active(true);
        }
        let extra = extras.get(&s.name);
        // Merges first (merge_range blanks its cells), then the values over their anchors.
        let mut anchors = std::collections::HashSet::new();
        for m in extra.map(|x| x.merged.as_slice()).unwrap_or_default() {
            if m.start == m.end {
                continue;
            }
            let res = sheet.merge_range(
                m.start.row,
                m.start.col as u16,
                m.end.row,
                m.end.col as u16,
                "",
                &wrap,
            );
            if res.is_ok() {
                anchors.insert((m.start.row, m.start.col));
            } else {
                warnings.push(format!(
                    "sheet '{}': the merged cells {m} overlap another merge and were not merged",
                    s.name
                ));
            }
        }
        let (r0, c0) = range.start().unwrap_or((0, 0));
        for (r, c, value) in range.used_cells() {
            total_cells += 1;
            if total_cells > MAX_LEGACY_CELLS {
                return Err(WorkbookError::TooLarge(format!(
                    "the workbook holds more than {MAX_LEGACY_CELLS} cells"
                ))
                .into());
            }
            let (row, col) = (r0 + r as u32, c0 + c as u32);
            if row > MAX_ROW || col > MAX_COL {
                continue;
            }
            let col16 = col as u16;
            let res = match value {
                Data::Empty => Ok(&mut *sheet),
                Data::String(t) | Data::DateTimeIso(t) | Data::DurationIso(t) => {
                    if t.chars().count() > 40 || t.contains('\n') || anchors.contains(&(row, col)) {
                        sheet.write_string_with_format(row, col16, t, &wrap)
                    } else {
                        sheet.write_string(row, col16, t)
                    }
                }
                Data::Int(n) => sheet.write_number(row, col16, *n as f64),
                Data::Float(f) => sheet.write_number(row, col16, *f),
                Data::Bool(b) => sheet.write_boolean(row, col16, *b),
                Data::Error(e) => sheet.write_string(row, col16, e.to_string()),
                Data::DateTime(dt) if dt.is_datetime() => {
                    let (y, m, d, hh, mm, ss, ms) = dt.to_ymd_hms_milli();
                    let secs = f64::from(ss) + f64::from(ms) / 1000.0;
                    match ExcelDateTime::from_ymd(y, m, d)
                        .and_then(|x| x.and_hms(u16::from(hh), mm, secs))
                    {
                        Ok(x) => {
                            let fmt = if (hh, mm, ss) == (0, 0, 0) {
                                &date
                            } else {
                                &datetime
                            };
                            sheet.write_datetime_with_format(row, col16, x, fmt)
                        }
                        Err(_) => sheet.write_number(row, col16, dt.as_f64()),
                    }
                }
                Data::DateTime(dt) => sheet.write_number(row, col16, dt.as_f64()),
            };
            res.map_err(xlsx_err)?;
        }
        if let Some(extra) = extra {
            for (cells, name) in &extra.validations {
                let Some(rule) = lists.get(name) else {
                    continue;
                };
                let dv = match rule {
                    ListRule::Values(values) => {
                        let joined: usize = values.iter().map(|v| v.chars().count() + 1).sum();
                        if values.is_empty() || joined > MAX_INLINE_LIST {
                            warnings.push(format!(
                                "sheet '{}': the dropdown on {cells} is too long for Excel and \
                                 was left out",
                                s.name
                            ));
                            continue;
                        }
                        DataValidation::new().allow_list_strings(values)
                    }
                    ListRule::Range { sheet: src, range } => {
                        let Some(target) = names.get(src) else {
                            continue;
                        };
                        let quoted = target.replace('\'', "''");
                        let abs =
                            |c: CellRef| format!("${}${}", CellRef::column_name(c.col), c.row + 1);
                        Ok(
                            DataValidation::new().allow_list_formula(Formula::new(format!(
                                "='{quoted}'!{}:{}",
                                abs(range.start),
                                abs(range.end)
                            ))),
                        )
                    }
                };
                let dv = dv.map_err(xlsx_err)?;
                sheet
                    .add_data_validation(
                        cells.start.row,
                        cells.start.col as u16,
                        cells.end.row,
                        cells.end.col as u16,
                        &dv,
                    )
                    .map_err(xlsx_err)?;
            }
        }
        sheet.set_autofit_max_width(420).autofit();
    }
    let bytes = book.save_to_buffer().map_err(xlsx_err)?;
    Ok((bytes, warnings))
}

/// A name Excel accepts (≤ 31 characters, none of `[]:*?/\`, not quoted), unique in `taken`.
fn excel_sheet_name<'a>(name: &str, taken: impl Iterator<Item = &'a String> + Clone) -> String {
    let mut base: String = name
        .chars()
        .map(|c| if "[]:*?/\\".contains(c) { '_' } else { c })
        .collect();
    base = base.trim_matches('\'').to_string();
    if base.trim().is_empty() || base.eq_ignore_ascii_case("history") {
        base = format!("Sheet {base}").trim().to_string();
    }
    let cut = |s: &str, n: usize| s.chars().take(n).collect::<String>();
    let mut candidate = cut(&base, 31);
    let mut n = 2;
    while taken
        .clone()
        .any(|t| t.to_lowercase() == candidate.to_lowercase())
    {
        let suffix = format!(" ({n})");
        candidate = format!("{}{suffix}", cut(&base, 31 - suffix.chars().count()));
        n += 1;
    }
    candidate
}

/// Where an .ods dropdown takes its values from.
#[derive(Debug, Clone, PartialEq)]
enum ListRule {
    Values(Vec<String>),
    Range { sheet: String, range: CellRange },
}

#[derive(Debug, Default)]
struct OdsScan {
    sheets: BTreeMap<String, SheetExtras>,
    lists: HashMap<String, ListRule>,
}

/// Reads content.xml of an .ods under the package limits: dropdowns, merged cells, and the
/// densest extent a reader would allocate (refused when it is absurd).
fn scan_ods(bytes: &[u8]) -> Result<OdsScan, WorkbookError> {
    let mut pkg = Package::open(bytes, Limits::default())?;
    if let Some(manifest) = pkg.read_xml("META-INF/manifest.xml")?
        && manifest.contains("encryption-data")
    {
        return Err(WorkbookError::Encrypted);
    }
    for i in 0..pkg.names().len() {
        let name = pkg.names()[i].clone();
        if name.to_ascii_lowercase().ends_with(".xml") {
            let data = pkg.read(i)?;
            xml::reject_doctype(&name, &data)?;
        }
    }
    let content = pkg
        .read_xml("content.xml")?
        .ok_or_else(|| WorkbookError::Corrupt("the .ods package has no content.xml".into()))?;
    parse_ods_content(&content)
}

fn num_attr(e: &BytesStart<'_>, name: &str) -> u64 {
    xml::attr(e, name)
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|n| *n >= 1)
        .unwrap_or(1)
}

fn range_at(row: u64, col: u64, rows: u64, cols: u64) -> Option<CellRange> {
    let last_row = (row + rows - 1).min(u64::from(MAX_ROW));
    let last_col = (col + cols - 1).min(u64::from(MAX_COL));
    (row <= u64::from(MAX_ROW) && col <= u64::from(MAX_COL)).then(|| CellRange {
        start: CellRef::new(row as u32, col as u32),
        end: CellRef::new(last_row as u32, last_col as u32),
    })
}

fn parse_ods_content(content: &str) -> Result<OdsScan, WorkbookError> {
    let bad = |e: quick_xml::Error| WorkbookError::Corrupt(format!("content.xml: {e}"));
    let mut out = OdsScan::default();
    let mut reader = XmlReader::from_str(content);
    let mut sheet: Option<String> = None;
    let (mut row, mut col) = (0u64, 0u64);
    let mut row_repeat = 1u64;
    // Densest extent (rows × columns holding values) of the current sheet.
    let (mut max_row, mut max_col) = (0u64, 0u64);
    let mut cell_depth = 0usize;
    let mut cell_has_value = false;
    let mut cell_extent = (0u64, 0u64);
    let mut total: u64 = 0;
    loop {
        let ev = reader.read_event().map_err(bad)?;
        let (e, empty) = match &ev {
            Event::Start(e) => (Some(e), false),
            Event::Empty(e) => (Some(e), true),
            _ => (None, false),
        };
        if let Some(e) = e {
            match e.local_name().as_ref() {
                "content-validation" => {
                    if let (Some(name), Some(cond)) =
                        (xml::attr(e, "name"), xml::attr(e, "condition"))
                        && let Some(rule) = parse_list_condition(&cond)
                    {
                        out.lists.insert(name, rule);
                    }
                }
                "table" => {
                    let name = xml::attr(e, "name").unwrap_or_default();
                    out.sheets.entry(name.clone()).or_default();
                    sheet = Some(name);
                    (row, max_row, max_col) = (0, 0, 0);
                }
                "table-row" if sheet.is_some() => {
                    row_repeat = num_attr(e, "number-rows-repeated");
                    col = 0;
                    if empty {
                        row += row_repeat;
                    }
                }
                "table-cell" | "covered-table-cell" if sheet.is_some() => {
                    let cols = num_attr(e, "number-columns-repeated");
                    let name = sheet.clone().unwrap_or_default();
                    let extras = out.sheets.entry(name).or_default();
                    if let Some(v) = xml::attr(e, "content-validation-name")
                        && let Some(r) = range_at(row, col, row_repeat, cols)
                    {
                        extras.validations.push((r, v));
                    }
                    let rs = num_attr(e, "number-rows-spanned");
                    let cs = num_attr(e, "number-columns-spanned");
                    if (rs > 1 || cs > 1)
                        && let Some(r) = range_at(row, col, rs, cs)
                    {
                        extras.merged.push(r);
                    }
                    cell_has_value = xml::attr(e, "value-type").is_some();
                    cell_extent = (row + row_repeat, col + cols);
                    if empty {
                        if cell_has_value {
                            max_row = max_row.max(cell_extent.0);
                            max_col = max_col.max(cell_extent.1);
                        }
                    } else {
                        cell_depth = 1;
                    }
                    col += cols;
                }
                _ if cell_depth > 0 && !empty => {
                    cell_depth += 1;
                    cell_has_value = true; // text:p and friends
                }
                _ => {}
            }
        }
        match &ev {
            Event::End(e) => match e.local_name().as_ref() {
                "table-cell" | "covered-table-cell" if cell_depth == 1 => {
                    cell_depth = 0;
                    if cell_has_value {
                        max_row = max_row.max(cell_extent.0);
                        max_col = max_col.max(cell_extent.1);
                    }
                }
                "table-row" if sheet.is_some() && cell_depth == 0 => {
                    row += row_repeat;
                    row_repeat = 1;
                }
                "table" if cell_depth == 0 => {
                    total = total.saturating_add(max_row.saturating_mul(max_col));
                    if total > MAX_LEGACY_CELLS {
                        return Err(WorkbookError::TooLarge(format!(
                            "the spreadsheet expands to more than {MAX_LEGACY_CELLS} cells \
                             (repeated rows or columns holding values)"
                        )));
                    }
                    sheet = None;
                }
                _ if cell_depth > 1 => cell_depth -= 1,
                _ => {}
            },
            Event::Eof => break,
            _ => {}
        }
    }
    for extras in out.sheets.values_mut() {
        coalesce(&mut extras.validations);
    }
    Ok(out)
}

/// Joins validation ranges of one name that continue each other down the same columns, so a
/// dropdown column becomes one rule instead of one per row.
fn coalesce(ranges: &mut Vec<(CellRange, String)>) {
    ranges.sort_by(|(a, an), (b, bn)| {
        (an, a.start.col, a.end.col, a.start.row).cmp(&(bn, b.start.col, b.end.col, b.start.row))
    });
    let mut out: Vec<(CellRange, String)> = Vec::with_capacity(ranges.len());
    for (r, name) in ranges.drain(..) {
        if let Some((last, last_name)) = out.last_mut()
            && *last_name == name
            && (last.start.col, last.end.col) == (r.start.col, r.end.col)
            && last.end.row.saturating_add(1) >= r.start.row
        {
            last.end.row = last.end.row.max(r.end.row);
            continue;
        }
        out.push((r, name));
    }
    *ranges = out;
}

/// `of:cell-content-is-in-list("Yes";"No")` or `…-in-list([.$Lists.$A$1:.$A$3])`.
fn parse_list_condition(cond: &str) -> Option<ListRule> {
    let start = cond.find("cell-content-is-in-list(")? + "cell-content-is-in-list(".len();
    let inner = cond[start..]
        .strip_suffix(')')
        .unwrap_or(&cond[start..])
        .trim();
    if inner.starts_with('"') {
        let mut values: Vec<String> = Vec::new();
        let mut cur = String::new();
        let mut in_quotes = false;
        let mut chars = inner.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '"' if in_quotes && chars.peek() == Some(&'"') => {
                    cur.push('"');
                    chars.next();
                }
                '"' => in_quotes = !in_quotes,
                ';' | ',' if !in_quotes => {
                    if !cur.trim().is_empty() && !values.contains(&cur) {
                        values.push(std::mem::take(&mut cur));
                    }
                    cur.clear();
                }
                _ if in_quotes => cur.push(c),
                _ => {}
            }
        }
        if !cur.trim().is_empty() && !values.contains(&cur) {
            values.push(cur);
        }
        return Some(ListRule::Values(values));
    }
    // A range: `[$Lists.$A$1:.$A$3]`, `$Lists.$A$1:$Lists.$A$3`, `['My sheet'.A1:.A3]`.
    let r = inner.trim_start_matches('[').trim_end_matches(']');
    let (a, b) = r.split_once(':')?;
    let (sheet, first) = a.rsplit_once('.')?;
    let last = b.rsplit_once('.').map_or(b, |(_, c)| c);
    let sheet = sheet.trim_start_matches('$');
    let sheet = sheet
        .strip_prefix('\'')
        .and_then(|s| s.strip_suffix('\''))
        .map_or_else(|| sheet.to_string(), |s| s.replace("''", "'"));
    let range = CellRange::parse(&format!("{first}:{last}"))?;
    Some(ListRule::Range { sheet, range })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_names_round_trip() {
        for f in [
            SourceFormat::Xlsx,
            SourceFormat::Xlsm,
            SourceFormat::Xls,
            SourceFormat::Ods,
        ] {
            assert_eq!(SourceFormat::parse(f.as_str()), Some(f));
        }
        assert_eq!(SourceFormat::parse("csv"), None);
        assert_eq!(SourceFormat::Ods.output_extension(), "xlsx");
    }

    #[test]
    fn list_conditions_parse() {
        assert_eq!(
            parse_list_condition(r#"of:cell-content-is-in-list("Yes";"No";"N/A")"#),
            Some(ListRule::Values(vec![
                "Yes".into(),
                "No".into(),
                "N/A".into()
            ]))
        );
        assert_eq!(
            parse_list_condition(r#"of:cell-content-is-in-list("Say ""hi""";"x")"#),
            Some(ListRule::Values(vec!["Say \"hi\"".into(), "x".into()]))
        );
        assert_eq!(
            parse_list_condition("of:cell-content-is-in-list([$Lists.$A$1:.$A$3])"),
            Some(ListRule::Range {
                sheet: "Lists".into(),
                range: CellRange::parse("A1:A3").unwrap()
            })
        );
        assert_eq!(
            parse_list_condition("of:cell-content-is-in-list(['My ''x'' list'.B2:.B9])"),
            Some(ListRule::Range {
                sheet: "My 'x' list".into(),
                range: CellRange::parse("B2:B9").unwrap()
            })
        );
        assert_eq!(
            parse_list_condition("of:cell-content-is-whole-number()"),
            None
        );
    }

    #[test]
    fn sheet_names_become_legal_and_unique() {
        let taken = ["Answers".to_string()];
        assert_eq!(excel_sheet_name("Q/A [v2]", taken.iter()), "Q_A _v2_");
        assert_eq!(excel_sheet_name("answers", taken.iter()), "answers (2)");
        let long = "A".repeat(40);
        assert_eq!(excel_sheet_name(&long, taken.iter()).chars().count(), 31);
    }

    #[test]
    fn ods_scan_never_expands_repeats_and_refuses_absurd_extents() {
        let row = |attrs: &str, cells: &str| {
            format!("<table:table-row {attrs}>{cells}</table:table-row>")
        };
        let doc = |body: &str| {
            format!(
                r#"<office:document-content xmlns:office="o" xmlns:table="t" xmlns:text="x"><office:body><office:spreadsheet>
                <table:content-validations><table:content-validation table:name="v1" table:condition="of:cell-content-is-in-list(&quot;Yes&quot;;&quot;No&quot;)"/></table:content-validations>
                <table:table table:name="S">{body}</table:table></office:spreadsheet></office:body></office:document-content>"#
            )
        };
        // An empty row repeated to the sheet's end plus a validated column: cheap.
        let ok = doc(&format!(
            "{}{}",
            row(
                "",
                r#"<table:table-cell office:value-type="string"><text:p>Q</text:p></table:table-cell><table:table-cell table:content-validation-name="v1" table:number-rows-spanned="1" table:number-columns-spanned="2"/>"#
            ),
            row(
                r#"table:number-rows-repeated="1048575""#,
                r#"<table:table-cell table:number-columns-repeated="16384"/>"#
            )
        ));
        let scan = parse_ods_content(&ok).unwrap();
        let s = &scan.sheets["S"];
        assert_eq!(s.validations.len(), 1);
        assert_eq!(s.validations[0].0.to_string(), "B1");
        assert_eq!(s.merged[0].to_string(), "B1:C1");
        assert!(matches!(scan.lists.get("v1"), Some(ListRule::Values(v)) if v.len() == 2));
        // A value repeated over a million rows and thousands of columns: refused.
        let bomb = doc(&row(
            r#"table:number-rows-repeated="1000000""#,
            r#"<table:table-cell office:value-type="string" table:number-columns-repeated="1000"><text:p>x</text:p></table:table-cell>"#,
        ));
        assert!(matches!(
            parse_ods_content(&bomb),
            Err(WorkbookError::TooLarge(_))
        ));
    }
}
