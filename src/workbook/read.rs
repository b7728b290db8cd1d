//! Opens a workbook for detection (limits, cached values, validations, formulas); never writes or evaluates.

use super::package::{self, Limits, Package, SheetKind};
use super::sheet_xml;
use super::{CellRange, CellRef, WorkbookError};
use calamine::{DataRef, Xlsx};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Cursor;

/// Most values a list validation may resolve to (a list is a dropdown, not a table).
const MAX_LIST_VALUES: usize = 1_000;

/// Sheet visibility as set in workbook.xml.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Visibility {
    Visible,
    Hidden,
    VeryHidden,
}

/// A `<definedName>` of workbook.xml.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DefinedName {
    pub name: String,
    /// Index of the sheet the name is local to (`localSheetId`), `None` for workbook scope.
    pub local_sheet: Option<usize>,
    pub hidden: bool,
    /// The formula text, e.g. `Values!$A$4:$A$5`.
    pub formula: String,
}

/// Where a list validation takes its values from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum ListSource {
    /// `"Yes,No,NA"`.
    Inline,
    /// A range on a sheet (the same or another one).
    Range { sheet: String, range: CellRange },
    /// A defined name that resolves to a range.
    Name {
        name: String,
        sheet: String,
        range: CellRange,
    },
    /// Anything else (`INDIRECT(...)`, `OFFSET(...)`, a missing sheet or name).
    Unresolved { formula: String },
}

/// A data validation of a sheet; `ranges` are never expanded into cells.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DataValidation {
    pub ranges: Vec<CellRange>,
    /// The `type` attribute (`list`, `whole`, `decimal`, `custom`, … or `none`).
    pub kind: String,
    pub formula1: Option<String>,
    /// True for an Excel 2010 `<x14:dataValidation>` inside `<extLst>`.
    pub extension: bool,
    /// For list validations: where the values come from.
    pub source: Option<ListSource>,
    /// For list validations: the allowed values in list order (empty when unresolved).
    pub choices: Vec<String>,
}

impl DataValidation {
    pub fn is_list(&self) -> bool {
        self.kind == "list"
    }

    pub fn applies_to(&self, cell: CellRef) -> bool {
        self.ranges.iter().any(|r| r.contains(cell))
    }
}

/// One worksheet as the detector sees it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SheetInfo {
    pub name: String,
    pub visibility: Visibility,
    /// Zip entry of the worksheet part, e.g. `xl/worksheets/sheet1.xml`.
    pub part: String,
    /// Whether `<sheetProtection sheet="1">` is set (values can still be patched).
    pub protected: bool,
    /// Cached values of non-empty cells, as text (numbers in their shortest form).
    pub cells: BTreeMap<CellRef, String>,
    /// Cells that hold a formula (their cached value is in `cells`).
    pub formulas: BTreeSet<CellRef>,
    /// Cells whose cached value is an error (`#REF!`, `#N/A`, …; the literal is in `cells`).
    pub errors: BTreeSet<CellRef>,
    pub validations: Vec<DataValidation>,
    pub merged: Vec<CellRange>,
}

impl SheetInfo {
    pub fn value(&self, cell: CellRef) -> Option<&str> {
        self.cells.get(&cell).map(String::as_str)
    }

    pub fn is_formula(&self, cell: CellRef) -> bool {
        self.formulas.contains(&cell)
    }

    /// Whether `cell` holds an error value: a cached error, or text that is an error literal
    /// (as a converted .xls or a pasted value may carry it).
    pub fn is_error(&self, cell: CellRef) -> bool {
        self.errors.contains(&cell) || self.value(cell).is_some_and(is_error_literal)
    }

    /// The list validation covering `cell`, if any (Excel allows one validation per cell).
    pub fn list_validation_at(&self, cell: CellRef) -> Option<&DataValidation> {
        self.validations
            .iter()
            .find(|v| v.is_list() && v.applies_to(cell))
    }

    /// The merged range that contains `cell`, if any.
    pub fn merged_at(&self, cell: CellRef) -> Option<&CellRange> {
        self.merged.iter().find(|m| m.contains(cell))
    }

    /// Non-empty cells of one row, left to right.
    pub fn row(&self, row: u32) -> impl Iterator<Item = (CellRef, &str)> {
        self.cells
            .range(CellRef::new(row, 0)..=CellRef::new(row, u32::MAX))
            .map(|(c, v)| (*c, v.as_str()))
    }

    /// Last row holding a value, 0-based.
    pub fn last_row(&self) -> Option<u32> {
        self.cells.keys().next_back().map(|c| c.row)
    }
}

/// Excel's error values, as a cell shows them.
pub const ERROR_LITERALS: [&str; 10] = [
    "#REF!",
    "#N/A",
    "#VALUE!",
    "#DIV/0!",
    "#NAME?",
    "#NULL!",
    "#NUM!",
    "#SPILL!",
    "#CALC!",
    "#GETTING_DATA",
];

/// Whether `text` (trimmed, any case) is one of Excel's error values.
pub fn is_error_literal(text: &str) -> bool {
    let t = text.trim();
    ERROR_LITERALS.iter().any(|e| e.eq_ignore_ascii_case(t))
}

/// A workbook opened for detection.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WorkbookPackage {
    /// Worksheets in workbook order (chart and macro sheets are left out).
    pub sheets: Vec<SheetInfo>,
    pub defined_names: Vec<DefinedName>,
}

impl WorkbookPackage {
    pub fn sheet(&self, name: &str) -> Option<&SheetInfo> {
        self.sheets.iter().find(|s| s.name == name)
    }
}

/// Opens a workbook with the default [`Limits`].
pub fn open(bytes: &[u8]) -> Result<WorkbookPackage, WorkbookError> {
    open_with_limits(bytes, Limits::default())
}

/// Opens a workbook under explicit limits. A panic inside calamine on a hostile file is an
/// error (printed nowhere), not a crash.
pub fn open_with_limits(bytes: &[u8], limits: Limits) -> Result<WorkbookPackage, WorkbookError> {
    crate::guard::quietly(|| open_unguarded(bytes, limits)).unwrap_or_else(|panicked| {
        Err(WorkbookError::Corrupt(format!(
            "the workbook cannot be read (the reader failed: {panicked})"
        )))
    })
}

fn open_unguarded(bytes: &[u8], limits: Limits) -> Result<WorkbookPackage, WorkbookError> {
    let mut pkg = Package::open(bytes, limits)?;
    let index = package::workbook_index(&mut pkg)?;

    // Decompress every part once under the limits (so calamine never meets a bomb), refuse
    // DTDs in every XML part, and keep the worksheet parts for the raw scan.
    let wanted: BTreeSet<&str> = index
        .sheets
        .iter()
        .filter(|s| s.kind == SheetKind::Worksheet)
        .filter_map(|s| s.part.as_deref())
        .collect();
    let mut sheet_xml: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for i in 0..pkg.names().len() {
        let name = pkg.names()[i].clone();
        if name.ends_with('/') {
            continue;
        }
        let data = pkg.read(i)?;
        let lower = name.to_ascii_lowercase();
        if lower.ends_with(".xml") || lower.ends_with(".rels") || lower.ends_with(".vml") {
            super::xml::reject_doctype(&name, &data)?;
        }
        if wanted.contains(name.as_str()) {
            sheet_xml.insert(name, data);
        }
    }

    let mut xl: Xlsx<_> = calamine::open_workbook_from_rs(Cursor::new(bytes))
        .map_err(|e| WorkbookError::Corrupt(format!("cannot read the workbook: {e}")))?;

    let mut sheets = Vec::new();
    let mut raw_validations = Vec::new();
    for entry in index
        .sheets
        .iter()
        .filter(|s| s.kind == SheetKind::Worksheet)
    {
        let Some(part) = entry.part.clone() else {
            continue;
        };
        let Some(data) = sheet_xml.get(&part) else {
            return Err(WorkbookError::Corrupt(format!(
                "sheet '{}' points at a missing part {part}",
                entry.name
            )));
        };
        let text = super::xml::as_text(&part, data)?;
        let scan = sheet_xml::scan_for_read(&part, text)?;
        let formulas = scan.formulas.iter().copied().collect();
        let mut cells = cached_values(&mut xl, &entry.name, scan.errors.len())?;
        // The raw literal is kept (calamine shows `#GETTING_DATA` as `#DATA!` and cannot
        // read newer errors such as `#SPILL!` at all).
        for (cell, literal) in &scan.errors {
            cells.insert(*cell, literal.clone());
        }
        let errors = scan.errors.iter().map(|(c, _)| *c).collect();
        raw_validations.push(scan.validations);
        sheets.push(SheetInfo {
            name: entry.name.clone(),
            visibility: entry.visibility,
            part,
            protected: scan.protected,
            cells,
            formulas,
            errors,
            validations: Vec::new(),
            merged: scan.merged,
        });
    }

    let mut pkg_out = WorkbookPackage {
        sheets,
        defined_names: index.defined_names,
    };
    let resolved: Vec<Vec<DataValidation>> = raw_validations
        .iter()
        .enumerate()
        .map(|(i, raws)| {
            raws.iter()
                .map(|raw| resolve_validation(&pkg_out, i, raw))
                .collect()
        })
        .collect();
    for (sheet, vals) in pkg_out.sheets.iter_mut().zip(resolved) {
        sheet.validations = vals;
    }
    Ok(pkg_out)
}

/// Cached values of one sheet. An error value calamine does not know (`#SPILL!`, `#CALC!`)
/// fails that one cell only: the reader has consumed it and goes on with the next, and the
/// caller fills it in from the raw scan, which found `error_cells` error cells on the sheet.
fn cached_values(
    xl: &mut Xlsx<Cursor<&[u8]>>,
    sheet: &str,
    error_cells: usize,
) -> Result<BTreeMap<CellRef, String>, WorkbookError> {
    let err = |e: calamine::XlsxError| {
        WorkbookError::Corrupt(format!("cannot read sheet '{sheet}': {e}"))
    };
    let mut reader = xl.worksheet_cells_reader(sheet).map_err(err)?;
    let mut cells = BTreeMap::new();
    let mut unknown_errors = 0usize;
    loop {
        let cell = match reader.next_cell() {
            Ok(Some(cell)) => cell,
            Ok(None) => break,
            Err(calamine::XlsxError::CellError(_)) if unknown_errors < error_cells => {
                unknown_errors += 1;
                continue;
            }
            Err(e) => return Err(err(e)),
        };
        let (row, col) = cell.get_position();
        if let Some(text) = data_text(cell.get_value()) {
            cells.insert(CellRef::new(row, col), text);
        }
    }
    Ok(cells)
}

/// A cached value as text; `None` for empty cells and empty strings.
fn data_text(d: &DataRef<'_>) -> Option<String> {
    let s = match d {
        DataRef::Empty => return None,
        DataRef::String(s) => s.clone(),
        DataRef::SharedString(s) => (*s).to_string(),
        DataRef::Int(i) => i.to_string(),
        DataRef::Float(f) => f.to_string(),
        DataRef::Bool(b) => if *b { "TRUE" } else { "FALSE" }.to_string(),
        DataRef::DateTime(dt) => excel_date_text(dt),
        DataRef::DateTimeIso(s) | DataRef::DurationIso(s) => s.clone(),
        DataRef::Error(e) => e.to_string(),
    };
    (!s.is_empty()).then_some(s)
}

/// A date-formatted cell as ISO text (`2024-05-20`, `2024-05-20 13:30:00`) instead of its
/// serial number, in the workbook's own date system (1900 or 1904, which calamine carries in
/// the value); durations and out-of-range values keep the number.
fn excel_date_text(dt: &calamine::ExcelDateTime) -> String {
    let serial = dt.as_f64();
    if dt.is_duration() || !(1.0..2_957_000.0).contains(&serial) {
        return dt.to_string();
    }
    let (y, m, d, hh, mm, ss, ms) = dt.to_ymd_hms_milli();
    // Round to whole seconds the way Excel displays them (never past the day's last second).
    let secs = (u32::from(hh) * 3600 + u32::from(mm) * 60 + u32::from(ss) + u32::from(ms >= 500))
        .min(86_399);
    if secs == 0 {
        format!("{y:04}-{m:02}-{d:02}")
    } else {
        format!(
            "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
            secs / 3600,
            secs / 60 % 60,
            secs % 60
        )
    }
}

fn resolve_validation(
    pkg: &WorkbookPackage,
    sheet_index: usize,
    raw: &sheet_xml::RawValidation,
) -> DataValidation {
    let mut v = DataValidation {
        ranges: CellRange::parse_list(&raw.sqref),
        kind: raw.kind.clone(),
        formula1: raw.formula1.clone(),
        extension: raw.extension,
        source: None,
        choices: Vec::new(),
    };
    if v.is_list() {
        let formula = raw.formula1.as_deref().unwrap_or("");
        let (source, choices) = resolve_list(pkg, sheet_index, formula);
        v.source = Some(source);
        v.choices = choices;
    }
    v
}

/// Resolves a list validation's `formula1` to its values.
pub(crate) fn resolve_list(
    pkg: &WorkbookPackage,
    sheet_index: usize,
    formula: &str,
) -> (ListSource, Vec<String>) {
    let f = formula.trim();
    let f = f.strip_prefix('=').unwrap_or(f).trim();
    if f.len() >= 2 && f.starts_with('"') && f.ends_with('"') {
        let inner = f[1..f.len() - 1].replace("\"\"", "\"");
        let mut choices: Vec<String> = Vec::new();
        for item in inner.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            if !choices.iter().any(|c| c == item) {
                choices.push(item.to_string());
            }
        }
        return (ListSource::Inline, choices);
    }
    let this_sheet = pkg
        .sheets
        .get(sheet_index)
        .map(|s| s.name.clone())
        .unwrap_or_default();
    if let Some((sheet, range)) = parse_reference(f, &this_sheet) {
        let values = range_values(pkg, &sheet, range);
        return match values {
            Some(v) => (ListSource::Range { sheet, range }, v),
            None => unresolved(formula),
        };
    }
    if is_name(f) {
        let found = pkg
            .defined_names
            .iter()
            .filter(|d| d.name.eq_ignore_ascii_case(f))
            .min_by_key(|d| {
                if d.local_sheet == Some(sheet_index) {
                    0
                } else if d.local_sheet.is_none() {
                    1
                } else {
                    2
                }
            });
        if let Some(d) =
            found.filter(|d| d.local_sheet.is_none() || d.local_sheet == Some(sheet_index))
        {
            let target = d.formula.trim().trim_start_matches('=');
            if let Some((sheet, range)) = parse_reference(target, &this_sheet)
                && let Some(values) = range_values(pkg, &sheet, range)
            {
                return (
                    ListSource::Name {
                        name: d.name.clone(),
                        sheet,
                        range,
                    },
                    values,
                );
            }
        }
    }
    unresolved(formula)
}

fn unresolved(formula: &str) -> (ListSource, Vec<String>) {
    (
        ListSource::Unresolved {
            formula: formula.to_string(),
        },
        Vec::new(),
    )
}

fn is_name(f: &str) -> bool {
    let mut chars = f.chars();
    chars
        .next()
        .is_some_and(|c| c.is_alphabetic() || c == '_' || c == '\\')
        && chars.all(|c| c.is_alphanumeric() || c == '_' || c == '.' || c == '\\')
}

/// `Values!$B$2:$B$6`, `'Auto Responses'!$J$3:$J$4`, `$B$2:$B$6` → (sheet, range).
pub(crate) fn parse_reference(f: &str, this_sheet: &str) -> Option<(String, CellRange)> {
    let (sheet, range) = match f.rfind('!') {
        Some(pos) => {
            let sheet = &f[..pos];
            let sheet = match sheet.strip_prefix('\'').and_then(|s| s.strip_suffix('\'')) {
                Some(quoted) => quoted.replace("''", "'"),
                None => sheet.to_string(),
            };
            (sheet, &f[pos + 1..])
        }
        None => (this_sheet.to_string(), f),
    };
    if sheet.contains(['[', ']']) {
        return None; // external workbook reference
    }
    Some((sheet, CellRange::parse(range)?))
}

/// Values of a range on a sheet, in row-major order, using only the cells that exist.
fn range_values(pkg: &WorkbookPackage, sheet: &str, range: CellRange) -> Option<Vec<String>> {
    let target = pkg
        .sheets
        .iter()
        .find(|s| s.name.eq_ignore_ascii_case(sheet))?;
    let mut out: Vec<String> = Vec::new();
    let cells = target
        .cells
        .range(range.start..=CellRef::new(range.end.row, range.end.col))
        .filter(|(c, _)| range.contains(**c));
    for (_, v) in cells {
        if !out.iter().any(|o| o == v) {
            out.push(v.clone());
        }
        if out.len() >= MAX_LIST_VALUES {
            break;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use calamine::{ExcelDateTime, ExcelDateTimeType};

    #[test]
    fn date_serials_read_as_iso_text() {
        let d =
            |v: f64| excel_date_text(&ExcelDateTime::new(v, ExcelDateTimeType::DateTime, false));
        assert_eq!(d(45_432.0), "2024-05-20");
        assert_eq!(d(45_432.562_5), "2024-05-20 13:30:00");
        assert_eq!(d(1.0), "1900-01-01");
        assert_eq!(d(61.0), "1900-03-01");
        assert_eq!(d(0.0), "0");
        let d1904 =
            |v: f64| excel_date_text(&ExcelDateTime::new(v, ExcelDateTimeType::DateTime, true));
        assert_eq!(d1904(43_970.0), "2024-05-20", "1904 date system");
        assert_eq!(d1904(1.0), "1904-01-02");
        let dur = ExcelDateTime::new(1.5, ExcelDateTimeType::TimeDelta, false);
        assert_eq!(excel_date_text(&dur), "1.5");
    }
}
