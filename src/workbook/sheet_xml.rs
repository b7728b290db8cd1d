//! One streaming scan of a worksheet part (row/cell spans, validations, merges); never expands ranges.

use super::xml;
use super::{CellRange, CellRef, WorkbookError};
use quick_xml::Reader;
use quick_xml::events::{BytesStart, Event};

/// Where `<sheetData>` sits in the part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SheetDataSpan {
    /// First byte of the `<sheetData>` tag.
    pub start: usize,
    /// One past the start tag (equals `end` for `<sheetData/>`).
    pub open_end: usize,
    /// First byte of `</sheetData>` (equals `end` for `<sheetData/>`).
    pub close_start: usize,
    /// One past the element.
    pub end: usize,
    pub empty_tag: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CellSpan {
    pub cell: CellRef,
    pub has_r: bool,
    pub start: usize,
    pub end: usize,
    pub formula: bool,
    pub empty_tag: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RowSpan {
    /// 0-based row.
    pub row: u32,
    pub has_r: bool,
    pub start: usize,
    /// One past the start tag.
    pub tag_end: usize,
    /// One past the element.
    pub end: usize,
    pub empty_tag: bool,
    /// Row style applied to new cells (`s` with `customFormat="1"`).
    pub style: Option<String>,
    pub cells: Vec<CellSpan>,
}

/// A `<dataValidation>` as written (standard or x14 extension), not yet resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RawValidation {
    pub sqref: String,
    pub kind: String,
    pub formula1: Option<String>,
    pub extension: bool,
}

/// Column default style (0-based inclusive columns).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ColStyle {
    pub min: u32,
    pub max: u32,
    pub style: String,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct SheetScan {
    /// Namespace prefix of the SpreadsheetML elements, with colon (`x:`), usually empty.
    pub prefix: String,
    pub sheet_data: Option<SheetDataSpan>,
    pub rows: Vec<RowSpan>,
    pub cols: Vec<ColStyle>,
    pub validations: Vec<RawValidation>,
    pub merged: Vec<CellRange>,
    pub protected: bool,
    /// Cells holding a formula (always collected, also when `rows` is not).
    pub formulas: Vec<CellRef>,
    /// Cells whose cached value is an error (`t="e"`), with its literal (`#REF!`, `#SPILL!`).
    pub errors: Vec<(CellRef, String)>,
}

impl SheetScan {
    /// Style for a cell created in `row` at `col`: the row's custom style, else the column's.
    pub(crate) fn new_cell_style(&self, row_style: Option<&str>, col: u32) -> Option<String> {
        row_style
            .map(str::to_string)
            .or_else(|| {
                self.cols
                    .iter()
                    .find(|c| (c.min..=c.max).contains(&col))
                    .map(|c| c.style.clone())
            })
            .filter(|s| s != "0")
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Capture {
    Formula1,
    Sqref,
}

fn row_of(e: &BytesStart<'_>, last: Option<u32>) -> (u32, bool) {
    match xml::attr(e, "r")
        .and_then(|r| r.trim().parse::<u32>().ok())
        .filter(|r| *r >= 1)
    {
        Some(r) => (r - 1, true),
        None => (last.map_or(0, |l| l + 1), false),
    }
}

/// Scans a worksheet part, keeping every row and cell span (for patching and verifying).
pub(crate) fn scan(part: &str, text: &str) -> Result<SheetScan, WorkbookError> {
    scan_with(part, text, true)
}

/// Scans a worksheet part for reading: formulas, validations, merges and protection, without
/// keeping row spans, so a million-row sheet costs no memory per row here.
pub(crate) fn scan_for_read(part: &str, text: &str) -> Result<SheetScan, WorkbookError> {
    scan_with(part, text, false)
}

fn scan_with(part: &str, text: &str, keep_rows: bool) -> Result<SheetScan, WorkbookError> {
    let mut out = SheetScan::default();
    let mut reader = Reader::from_str(text);
    let mut in_sheet_data = false;
    let mut row: Option<RowSpan> = None;
    let mut cell: Option<CellSpan> = None;
    let mut cell_depth = 0usize;
    let mut last_row: Option<u32> = None;
    let mut last_col: Option<u32> = None;
    let mut ext_depth = 0usize;
    let mut validation: Option<RawValidation> = None;
    let mut capture: Option<(Capture, String)> = None;
    // The cached `<v>` of a `t="e"` cell being read: (inside `<v>`, text so far).
    let mut error_value: Option<(bool, String)> = None;
    let err = |e: quick_xml::Error, pos: u64| {
        WorkbookError::Corrupt(format!("{part} at byte {pos}: {e}"))
    };

    loop {
        let start = reader.buffer_position() as usize;
        let ev = reader
            .read_event()
            .map_err(|e| err(e, reader.error_position()))?;
        let end = reader.buffer_position() as usize;
        let empty = matches!(ev, Event::Empty(_));
        match ev {
            Event::Eof => break,
            Event::Start(e) | Event::Empty(e) if in_sheet_data => {
                let local = xml::local_name(&e);
                if let Some(c) = cell.as_mut() {
                    if local == "f" {
                        c.formula = true;
                    }
                    if local == "v"
                        && !empty
                        && let Some((inside, _)) = error_value.as_mut()
                    {
                        *inside = true;
                    }
                    if !empty {
                        cell_depth += 1;
                    }
                    continue;
                }
                match local {
                    "row" if row.is_none() => {
                        let (r, has_r) = row_of(&e, last_row);
                        last_row = Some(r);
                        last_col = None;
                        let custom =
                            xml::attr(&e, "customFormat").is_some_and(|v| v == "1" || v == "true");
                        let style = xml::attr(&e, "s").filter(|_| custom);
                        let span = RowSpan {
                            row: r,
                            has_r,
                            start,
                            tag_end: end,
                            end,
                            empty_tag: empty,
                            style,
                            cells: Vec::new(),
                        };
                        if empty {
                            if keep_rows {
                                out.rows.push(span);
                            }
                        } else {
                            row = Some(span);
                        }
                    }
                    "c" if row.is_some() => {
                        let r = row.as_ref().map_or(0, |r| r.row);
                        let parsed = xml::attr(&e, "r").and_then(|a| CellRef::parse(a.trim()));
                        let (at, has_r) = match parsed {
                            Some(c) => (c, true),
                            None => (CellRef::new(r, last_col.map_or(0, |c| c + 1)), false),
                        };
                        last_col = Some(at.col);
                        error_value = xml::attr(&e, "t")
                            .is_some_and(|t| t == "e")
                            .then(|| (false, String::new()));
                        let span = CellSpan {
                            cell: at,
                            has_r,
                            start,
                            end,
                            formula: false,
                            empty_tag: empty,
                        };
                        if empty {
                            if let Some(rw) = row.as_mut().filter(|_| keep_rows) {
                                rw.cells.push(span);
                            }
                        } else {
                            cell = Some(span);
                            cell_depth = 0;
                        }
                    }
                    _ => {}
                }
            }
            Event::End(e) if in_sheet_data => {
                let local = e.local_name().into_inner();
                if let Some(mut c) = cell.take() {
                    if cell_depth == 0 && local == "c" {
                        c.end = end;
                        if c.formula {
                            out.formulas.push(c.cell);
                        }
                        if let Some((_, text)) = error_value.take()
                            && !text.trim().is_empty()
                        {
                            out.errors.push((c.cell, text.trim().to_string()));
                        }
                        if let Some(rw) = row.as_mut().filter(|_| keep_rows) {
                            rw.cells.push(c);
                        }
                    } else {
                        if local == "v"
                            && let Some((inside, _)) = error_value.as_mut()
                        {
                            *inside = false;
                        }
                        cell_depth = cell_depth.saturating_sub(1);
                        cell = Some(c);
                    }
                    continue;
                }
                match local {
                    "row" => {
                        if let Some(mut rw) = row.take().filter(|_| keep_rows) {
                            rw.end = end;
                            out.rows.push(rw);
                        }
                    }
                    "sheetData" => {
                        in_sheet_data = false;
                        if let Some(sd) = out.sheet_data.as_mut() {
                            sd.close_start = start;
                            sd.end = end;
                        }
                    }
                    _ => {}
                }
            }
            Event::Start(e) | Event::Empty(e) => match xml::local_name(&e) {
                "sheetData" if out.sheet_data.is_none() => {
                    out.prefix = xml::prefix_of(&e);
                    out.sheet_data = Some(SheetDataSpan {
                        start,
                        open_end: end,
                        close_start: end,
                        end,
                        empty_tag: empty,
                    });
                    in_sheet_data = !empty;
                }
                "col" => {
                    let num = |k| {
                        xml::attr(&e, k)
                            .and_then(|v| v.parse::<u32>().ok())
                            .filter(|v| *v >= 1)
                    };
                    if let (Some(min), Some(max), Some(style)) =
                        (num("min"), num("max"), xml::attr(&e, "style"))
                    {
                        out.cols.push(ColStyle {
                            min: min - 1,
                            max: max - 1,
                            style,
                        });
                    }
                }
                "mergeCell" => {
                    if let Some(r) = xml::attr(&e, "ref").and_then(|r| CellRange::parse(&r)) {
                        out.merged.push(r);
                    }
                }
                "sheetProtection" => {
                    out.protected = xml::attr(&e, "sheet").is_some_and(|v| v == "1" || v == "true");
                }
                "extLst" if !empty => ext_depth += 1,
                "dataValidation" => {
                    let v = RawValidation {
                        sqref: xml::attr(&e, "sqref").unwrap_or_default(),
                        kind: xml::attr(&e, "type").unwrap_or_else(|| "none".into()),
                        formula1: None,
                        extension: ext_depth > 0,
                    };
                    if empty {
                        out.validations.push(v);
                    } else {
                        validation = Some(v);
                    }
                }
                "formula1" if validation.is_some() && !empty => {
                    capture = Some((Capture::Formula1, String::new()))
                }
                "sqref" if validation.is_some() && !empty => {
                    capture = Some((Capture::Sqref, String::new()))
                }
                _ => {}
            },
            Event::End(e) => match e.local_name().into_inner() {
                "extLst" => ext_depth = ext_depth.saturating_sub(1),
                "formula1" | "sqref" => {
                    if let (Some((what, text)), Some(v)) = (capture.take(), validation.as_mut()) {
                        match what {
                            Capture::Formula1 => v.formula1 = Some(text),
                            Capture::Sqref => v.sqref = text,
                        }
                    }
                }
                "dataValidation" => {
                    if let Some(v) = validation.take() {
                        out.validations.push(v);
                    }
                }
                _ => {}
            },
            Event::Text(t) => {
                if let Some((_, buf)) = capture.as_mut() {
                    buf.push_str(&t.xml10_content());
                } else if let Some((true, buf)) = error_value.as_mut() {
                    buf.push_str(&t.xml10_content());
                }
            }
            Event::CData(t) => {
                if let Some((_, buf)) = capture.as_mut() {
                    buf.push_str(&t.xml10_content());
                }
            }
            Event::GeneralRef(r) => {
                if let Some((_, buf)) = capture.as_mut() {
                    xml::push_ref(buf, &r);
                }
            }
            Event::DocType(_) => {
                return Err(WorkbookError::Corrupt(format!(
                    "part {part} declares a DTD (<!DOCTYPE …>), which workbook XML must not contain"
                )));
            }
            _ => {}
        }
    }
    if in_sheet_data {
        return Err(WorkbookError::Corrupt(format!(
            "{part}: <sheetData> is not closed"
        )));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_formulas_and_validations() {
        let x = r#"<worksheet><cols><col min="2" max="3" style="4"/></cols><sheetData><row r="2"><c r="A2" t="inlineStr"><is><t>Q</t></is></c><c r="B2"><f>1+1</f><v>2</v></c><c r="C2" s="1"/></row><row r="4"/></sheetData><mergeCells count="1"><mergeCell ref="A5:B6"/></mergeCells><dataValidations><dataValidation type="list" sqref="N1:XFD1048576"><formula1>"a,b"</formula1></dataValidation></dataValidations><extLst><ext><x14:dataValidations><x14:dataValidation type="list"><x14:formula1><xm:f>'My Lists'!$A$1:$A$2</xm:f></x14:formula1><xm:sqref>C2:C9</xm:sqref></x14:dataValidation></x14:dataValidations></ext></extLst></worksheet>"#;
        let s = scan("t", x).unwrap();
        assert_eq!(s.rows.len(), 2);
        let r = &s.rows[0];
        assert_eq!(r.row, 1);
        assert_eq!(r.cells.len(), 3);
        assert!(!r.cells[0].formula && r.cells[1].formula && r.cells[2].empty_tag);
        assert_eq!(
            &x[r.cells[1].start..r.cells[1].end],
            r#"<c r="B2"><f>1+1</f><v>2</v></c>"#
        );
        assert!(s.rows[1].empty_tag);
        assert_eq!(s.validations.len(), 2);
        assert_eq!(s.validations[0].formula1.as_deref(), Some("\"a,b\""));
        assert!(s.validations[1].extension);
        assert_eq!(s.validations[1].sqref, "C2:C9");
        assert_eq!(
            s.validations[1].formula1.as_deref(),
            Some("'My Lists'!$A$1:$A$2")
        );
        assert_eq!(s.merged.len(), 1);
        assert_eq!(s.new_cell_style(None, 2).as_deref(), Some("4"));
    }

    #[test]
    fn error_values_are_collected_with_their_literal() {
        let x = r#"<worksheet><sheetData><row r="3"><c r="A3" t="e"><f>#REF!</f><v>#REF!</v></c><c r="B3" t="e"><v>#SPILL!</v></c><c r="C3" t="str"><f>A1</f><v>#N/A</v></c><c r="D3" t="e"/></row></sheetData></worksheet>"#;
        let s = scan_for_read("t", x).unwrap();
        assert_eq!(
            s.errors,
            vec![
                (CellRef::new(2, 0), "#REF!".to_string()),
                (CellRef::new(2, 1), "#SPILL!".to_string())
            ],
            "a text result that reads like an error is not an error cell"
        );
        assert_eq!(s.formulas, vec![CellRef::new(2, 0), CellRef::new(2, 2)]);
    }
}
