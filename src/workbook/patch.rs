//! Lossless write-back of answer cells into the original package; does not choose answers or touch formulas.

use super::package::{self, Limits, Package};
use super::sheet_xml::{self, CellSpan, RowSpan, SheetScan};
use super::xml;
use super::{CellRef, CellWrite, MAX_COL, MAX_ROW, WorkbookError};
use quick_xml::Reader;
use quick_xml::events::Event;
use std::collections::BTreeMap;
use std::io::{Cursor, Write};
use zip::CompressionMethod;
use zip::write::{SimpleFileOptions, ZipWriter};

/// Excel's limit for the text of one cell (UTF-16 code units).
const MAX_CELL_TEXT: usize = 32_767;

/// Patches `writes` into `original` with the default [`Limits`]. The last write to a cell wins;
/// the same writes always give the same bytes.
pub fn patch(original: &[u8], writes: &[CellWrite]) -> Result<Vec<u8>, WorkbookError> {
    patch_with_limits(original, writes, Limits::default())
}

/// Writes grouped by sheet part: part → (sheet name, cell → value).
type PartWrites<'w> = BTreeMap<String, (String, BTreeMap<CellRef, &'w str>)>;

pub fn patch_with_limits(
    original: &[u8],
    writes: &[CellWrite],
    limits: Limits,
) -> Result<Vec<u8>, WorkbookError> {
    let mut pkg = Package::open(original, limits)?;
    let index = package::workbook_index(&mut pkg)?;

    let mut by_part: PartWrites<'_> = BTreeMap::new();
    for w in writes {
        let refuse = |reason: String| WorkbookError::Refused {
            sheet: w.sheet.clone(),
            cell: w.cell.to_string(),
            reason,
        };
        let Some(part) = index.worksheet_part(&w.sheet) else {
            return Err(refuse(format!(
                "the workbook has no worksheet named '{}'",
                w.sheet
            )));
        };
        if w.cell.row > MAX_ROW || w.cell.col > MAX_COL {
            return Err(refuse("the cell is outside Excel's grid".into()));
        }
        if w.value.encode_utf16().count() > MAX_CELL_TEXT {
            return Err(refuse(format!(
                "the text is longer than Excel's {MAX_CELL_TEXT}-character cell limit"
            )));
        }
        by_part
            .entry(part.to_string())
            .or_insert_with(|| (w.sheet.clone(), BTreeMap::new()))
            .1
            .insert(w.cell, w.value.as_str());
    }

    let mut patched: BTreeMap<usize, Vec<u8>> = BTreeMap::new();
    for (part, (sheet, cells)) in &by_part {
        let Some(i) = pkg.index_of(part) else {
            return Err(WorkbookError::Corrupt(format!(
                "sheet '{sheet}' points at a missing part {part}"
            )));
        };
        let bytes = pkg.read(i)?;
        xml::reject_doctype(part, &bytes)?;
        let text = xml::as_text(part, &bytes)?;
        let new = patch_sheet(part, sheet, text, cells)?;
        if new.as_bytes() != bytes.as_slice() {
            patched.insert(i, new.into_bytes());
        }
    }
    write_package(&mut pkg, &patched)
}

/// Rebuilds the zip: patched entries recompressed with their original method and timestamp,
/// all others copied raw, in the original order, with the original archive comment.
fn write_package(
    pkg: &mut Package<'_>,
    patched: &BTreeMap<usize, Vec<u8>>,
) -> Result<Vec<u8>, WorkbookError> {
    let out_err = |e: zip::result::ZipError| {
        WorkbookError::Corrupt(format!("cannot write the patched package: {e}"))
    };
    let mut writer = ZipWriter::new(Cursor::new(Vec::new()));
    for i in 0..pkg.names().len() {
        match patched.get(&i) {
            Some(bytes) => {
                let entry = pkg.zip.by_index_data(i).map_err(package::zip_error)?;
                let method = match entry.compression() {
                    CompressionMethod::Stored => CompressionMethod::Stored,
                    _ => CompressionMethod::Deflated,
                };
                let mut options = SimpleFileOptions::default()
                    .compression_method(method)
                    .last_modified_time(entry.last_modified().unwrap_or_default());
                if let Some(mode) = entry.unix_mode() {
                    options = options.unix_permissions(mode);
                }
                let name = entry.name().map_err(package::zip_error)?.into_owned();
                writer.start_file(name, options).map_err(out_err)?;
                writer.write_all(bytes).map_err(|e| {
                    WorkbookError::Corrupt(format!("cannot write the patched package: {e}"))
                })?;
            }
            None => {
                let file = pkg.zip.by_index_raw(i).map_err(package::zip_error)?;
                writer.raw_copy_file(file).map_err(out_err)?;
            }
        }
    }
    let comment = pkg.zip.comment().to_vec();
    if !comment.is_empty() {
        writer
            .set_raw_comment(comment.into_boxed_slice())
            .map_err(out_err)?;
    }
    Ok(writer.finish().map_err(out_err)?.into_inner())
}

/// One splice of the output: replace `start..end` of the original with `text`.
struct Splice {
    start: usize,
    end: usize,
    text: String,
}

/// Patches one worksheet's XML text.
pub(crate) fn patch_sheet(
    part: &str,
    sheet: &str,
    text: &str,
    writes: &BTreeMap<CellRef, &str>,
) -> Result<String, WorkbookError> {
    let scan = sheet_xml::scan(part, text)?;
    let Some(sd) = scan.sheet_data else {
        return Err(WorkbookError::Corrupt(format!("{part} has no <sheetData>")));
    };
    let refuse = |cell: CellRef, reason: String| WorkbookError::Refused {
        sheet: sheet.to_string(),
        cell: cell.to_string(),
        reason,
    };
    for cell in writes.keys() {
        if let Some(m) = scan
            .merged
            .iter()
            .find(|m| m.contains(*cell) && m.start != *cell)
        {
            return Err(refuse(
                *cell,
                format!(
                    "the cell is covered by merged range {m}; write its top-left cell {}",
                    m.start
                ),
            ));
        }
    }
    let implicit = |what: &str, cell: CellRef| {
        WorkbookError::Unsupported(format!(
            "cannot insert {cell} on sheet '{sheet}': the sheet XML numbers its {what} implicitly (no r attribute)"
        ))
    };

    let p = scan.prefix.as_str();
    let mut splices: Vec<Splice> = Vec::new();
    let mut pending = writes.iter().map(|(c, v)| (*c, *v)).peekable();

    for row in &scan.rows {
        // Rows missing before this one.
        let mut new_rows = String::new();
        while let Some(&(c, _)) = pending.peek() {
            if c.row >= row.row {
                break;
            }
            new_rows.push_str(&new_row(&scan, c.row, &mut pending));
        }
        if !new_rows.is_empty() {
            if !row.has_r {
                return Err(implicit("rows", CellRef::new(row.row, 0)));
            }
            splices.push(Splice {
                start: row.start,
                end: row.start,
                text: new_rows,
            });
        }
        // Writes into this row.
        let mut row_writes = Vec::new();
        while let Some(&(c, v)) = pending.peek() {
            if c.row != row.row {
                break;
            }
            row_writes.push((c, v));
            pending.next();
        }
        if row_writes.is_empty() {
            continue;
        }
        if row.empty_tag {
            let tag = &text[row.start..row.end];
            let open = tag.strip_suffix("/>").unwrap_or(tag).trim_end();
            let mut s = format!("{open}>");
            for (c, v) in &row_writes {
                s.push_str(&new_cell(&scan, row.style.as_deref(), *c, v));
            }
            s.push_str(&format!("</{p}row>"));
            splices.push(Splice {
                start: row.start,
                end: row.end,
                text: s,
            });
            continue;
        }
        patch_row(
            text,
            &scan,
            row,
            &row_writes,
            &mut splices,
            &refuse,
            &implicit,
        )?;
    }
    // Rows after the last existing one.
    let mut tail = String::new();
    while pending.peek().is_some() {
        let r = pending.peek().map_or(0, |(c, _)| c.row);
        tail.push_str(&new_row(&scan, r, &mut pending));
    }
    if !tail.is_empty() {
        if sd.empty_tag {
            splices.push(Splice {
                start: sd.start,
                end: sd.end,
                text: format!("<{p}sheetData>{tail}</{p}sheetData>"),
            });
        } else {
            splices.push(Splice {
                start: sd.close_start,
                end: sd.close_start,
                text: tail,
            });
        }
    }

    let mut out =
        String::with_capacity(text.len() + splices.iter().map(|s| s.text.len()).sum::<usize>());
    let mut pos = 0;
    for s in &splices {
        out.push_str(&text[pos..s.start]);
        out.push_str(&s.text);
        pos = s.end;
    }
    out.push_str(&text[pos..]);
    Ok(out)
}

fn patch_row(
    text: &str,
    scan: &SheetScan,
    row: &RowSpan,
    row_writes: &[(CellRef, &str)],
    splices: &mut Vec<Splice>,
    refuse: &dyn Fn(CellRef, String) -> WorkbookError,
    implicit: &dyn Fn(&str, CellRef) -> WorkbookError,
) -> Result<(), WorkbookError> {
    let mut cells = row.cells.iter().peekable();
    for &(c, v) in row_writes {
        while cells.peek().is_some_and(|cell| cell.cell.col < c.col) {
            cells.next();
        }
        match cells.peek() {
            Some(cell) if cell.cell.col == c.col => {
                if cell.formula {
                    return Err(refuse(
                        c,
                        "the cell holds a formula; answers are never written over formulas".into(),
                    ));
                }
                splices.push(Splice {
                    start: cell.start,
                    end: cell.end,
                    text: replaced_cell(text, cell, v)?,
                });
                cells.next();
            }
            Some(cell) => {
                if !cell.has_r {
                    return Err(implicit("cells", c));
                }
                splices.push(Splice {
                    start: cell.start,
                    end: cell.start,
                    text: new_cell(scan, row.style.as_deref(), c, v),
                });
            }
            None => {
                let inner = &text[row.start..row.end];
                let close = inner.rfind("</").map_or(row.end, |i| row.start + i);
                splices.push(Splice {
                    start: close,
                    end: close,
                    text: new_cell(scan, row.style.as_deref(), c, v),
                });
            }
        }
    }
    Ok(())
}

/// A new `<row>` holding every pending write of row `r`.
fn new_row<'a, I>(scan: &SheetScan, r: u32, pending: &mut std::iter::Peekable<I>) -> String
where
    I: Iterator<Item = (CellRef, &'a str)>,
{
    let p = scan.prefix.as_str();
    let mut s = format!("<{p}row r=\"{}\">", u64::from(r) + 1);
    while let Some(&(c, v)) = pending.peek() {
        if c.row != r {
            break;
        }
        s.push_str(&new_cell(scan, None, c, v));
        pending.next();
    }
    s.push_str(&format!("</{p}row>"));
    s
}

/// A `<c>` that did not exist: the row's or column's default style, an inline string.
fn new_cell(scan: &SheetScan, row_style: Option<&str>, cell: CellRef, value: &str) -> String {
    let mut attrs = format!(" r=\"{cell}\"");
    if let Some(style) = scan.new_cell_style(row_style, cell.col) {
        attrs.push_str(&format!(" s=\"{}\"", xml::escape_attr(&style)));
    }
    cell_element(&format!("{}c", scan.prefix), &scan.prefix, &attrs, value)
}

/// The replacement for an existing `<c>`: its attributes (`r`, `s`, …) as written, minus
/// the value-related ones (`t`, `cm`, `vm`), then an inline string.
fn replaced_cell(text: &str, cell: &CellSpan, value: &str) -> Result<String, WorkbookError> {
    let mut reader = Reader::from_str(&text[cell.start..cell.end]);
    let start = match reader.read_event() {
        Ok(Event::Start(e) | Event::Empty(e)) => e,
        _ => {
            return Err(WorkbookError::Corrupt(format!(
                "cell {} cannot be parsed",
                cell.cell
            )));
        }
    };
    let mut attrs = String::new();
    for a in start.attributes().with_checks(false).flatten() {
        let key = a.key.into_inner();
        if matches!(a.key.local_name().into_inner(), "t" | "cm" | "vm") {
            continue;
        }
        let q = if a.value.contains('"') { '\'' } else { '"' };
        attrs.push_str(&format!(" {key}={q}{}{q}", a.value));
    }
    let name = start.name().into_inner().to_string();
    let prefix = name
        .rsplit_once(':')
        .map_or(String::new(), |(p, _)| format!("{p}:"));
    Ok(cell_element(&name, &prefix, &attrs, value))
}

fn cell_element(name: &str, p: &str, attrs: &str, value: &str) -> String {
    if value.is_empty() {
        return format!("<{name}{attrs}/>");
    }
    let preserve = value.starts_with(char::is_whitespace)
        || value.ends_with(char::is_whitespace)
        || value.contains(['\n', '\r', '\t']);
    let space = if preserve {
        " xml:space=\"preserve\""
    } else {
        ""
    };
    format!(
        "<{name}{attrs} t=\"inlineStr\"><{p}is><{p}t{space}>{}</{p}t></{p}is></{name}>",
        xml::escape_cell_text(value)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(xml_text: &str, writes: &[(&str, &str)]) -> Result<String, WorkbookError> {
        let map: BTreeMap<CellRef, &str> = writes
            .iter()
            .map(|(c, v)| (CellRef::parse(c).unwrap(), *v))
            .collect();
        patch_sheet("sheet.xml", "S", xml_text, &map)
    }

    #[test]
    fn replaces_inserts_and_keeps_the_rest() {
        let x = r#"<worksheet xmlns="m"><cols><col min="3" max="3" style="7" width="9"/></cols><sheetData><row r="2" spans="1:3"><c r="A2" s="1" t="s"><v>0</v></c><c r="C2" s="21" t="n" /></row><row r="5"/></sheetData><pageMargins left="0.7"/></worksheet>"#;
        let writes = [
            ("A2", "a&b"),
            ("B2", " x"),
            ("C2", "=1+1"),
            ("D2", "d"),
            ("A1", "top"),
            ("B5", "five"),
            ("A9", "nine"),
        ];
        let out = run(x, &writes).unwrap();
        assert_eq!(
            out,
            r#"<worksheet xmlns="m"><cols><col min="3" max="3" style="7" width="9"/></cols><sheetData><row r="1"><c r="A1" t="inlineStr"><is><t>top</t></is></c></row><row r="2" spans="1:3"><c r="A2" s="1" t="inlineStr"><is><t>a&amp;b</t></is></c><c r="B2" t="inlineStr"><is><t xml:space="preserve"> x</t></is></c><c r="C2" s="21" t="inlineStr"><is><t>=1+1</t></is></c><c r="D2" t="inlineStr"><is><t>d</t></is></c></row><row r="5"><c r="B5" t="inlineStr"><is><t>five</t></is></c></row><row r="9"><c r="A9" t="inlineStr"><is><t>nine</t></is></c></row></sheetData><pageMargins left="0.7"/></worksheet>"#
        );
        // Same writes on the result: same bytes.
        let again = run(&out, &writes).unwrap();
        assert_eq!(again, out);
    }

    #[test]
    fn prefixed_namespace_and_empty_sheet_data() {
        let x = r#"<x:worksheet xmlns:x="m"><x:sheetData/></x:worksheet>"#;
        let out = run(x, &[("B3", "v")]).unwrap();
        assert_eq!(
            out,
            r#"<x:worksheet xmlns:x="m"><x:sheetData><x:row r="3"><x:c r="B3" t="inlineStr"><x:is><x:t>v</x:t></x:is></x:c></x:row></x:sheetData></x:worksheet>"#
        );
    }

    #[test]
    fn refuses_formulas_and_merged_interiors() {
        let x = r#"<worksheet><sheetData><row r="1"><c r="A1"><f>1+1</f><v>2</v></c></row></sheetData><mergeCells><mergeCell ref="B1:C2"/></mergeCells></worksheet>"#;
        assert!(matches!(
            run(x, &[("A1", "x")]),
            Err(WorkbookError::Refused { .. })
        ));
        assert!(matches!(
            run(x, &[("C2", "x")]),
            Err(WorkbookError::Refused { .. })
        ));
        assert!(run(x, &[("B1", "x")]).is_ok());
    }
}
