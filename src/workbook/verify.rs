//! Proves a filled package changed only the declared answer cells; does not judge the answers themselves.

use super::package::{self, Limits, Package};
use super::sheet_xml::{self, RowSpan};
use super::xml;
use super::{CellRef, WorkbookError};
use quick_xml::Reader;
use quick_xml::events::Event;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;

/// What kind of change a [`Difference`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DifferenceKind {
    /// A zip entry of the original is missing.
    EntryMissing,
    /// The filled package has an entry the original has not.
    EntryAdded,
    /// The entries are in another order.
    EntryOrder,
    /// Same content stored differently (compression method or recompressed bytes).
    EntryStorage,
    /// A non-worksheet part changed.
    PartContent,
    /// A worksheet changed outside `<sheetData>`.
    SheetOutsideData,
    /// A row was added, removed or had its attributes changed.
    Row,
    /// A cell that is not a declared answer cell changed.
    Cell,
}

/// One difference between the original and the filled package that was not declared.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Difference {
    pub kind: DifferenceKind,
    /// Zip entry name.
    pub part: String,
    pub sheet: Option<String>,
    /// `A1` reference, for cell and row differences.
    pub cell: Option<String>,
    /// Human-readable explanation.
    pub description: String,
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.description)
    }
}

/// Compares with the default [`Limits`]; `declared` lists (sheet name, cell) answer cells.
pub fn verify(
    original: &[u8],
    filled: &[u8],
    declared: &[(String, CellRef)],
) -> Result<Vec<Difference>, WorkbookError> {
    verify_with_limits(original, filled, declared, Limits::default())
}

pub fn verify_with_limits(
    original: &[u8],
    filled: &[u8],
    declared: &[(String, CellRef)],
    limits: Limits,
) -> Result<Vec<Difference>, WorkbookError> {
    let mut a = Package::open(original, limits)?;
    let mut b = Package::open(filled, limits)?;
    let index = package::workbook_index(&mut a)?;
    let sheet_of_part: HashMap<String, String> = index
        .sheets
        .iter()
        .filter(|s| s.kind == package::SheetKind::Worksheet)
        .filter_map(|s| s.part.clone().map(|p| (p, s.name.clone())))
        .collect();
    let mut declared_by_sheet: HashMap<&str, HashSet<CellRef>> = HashMap::new();
    for (sheet, cell) in declared {
        declared_by_sheet
            .entry(sheet.as_str())
            .or_default()
            .insert(*cell);
    }

    let mut diffs = Vec::new();
    let names_a: Vec<String> = a.names().to_vec();
    let names_b: Vec<String> = b.names().to_vec();
    let set_a: BTreeSet<&String> = names_a.iter().collect();
    let set_b: BTreeSet<&String> = names_b.iter().collect();
    let entry_diff = |kind, part: &str, description: String| Difference {
        kind,
        part: part.to_string(),
        sheet: None,
        cell: None,
        description,
    };
    for n in names_a.iter().filter(|n| !set_b.contains(n)) {
        diffs.push(entry_diff(
            DifferenceKind::EntryMissing,
            n,
            format!("zip entry {n} is missing from the filled file"),
        ));
    }
    for n in names_b.iter().filter(|n| !set_a.contains(n)) {
        diffs.push(entry_diff(
            DifferenceKind::EntryAdded,
            n,
            format!("zip entry {n} was added to the filled file"),
        ));
    }
    let common_a: Vec<&String> = names_a.iter().filter(|n| set_b.contains(n)).collect();
    let common_b: Vec<&String> = names_b.iter().filter(|n| set_a.contains(n)).collect();
    if common_a != common_b {
        diffs.push(entry_diff(
            DifferenceKind::EntryOrder,
            "",
            "the zip entries are in a different order".into(),
        ));
    }

    for (ia, name) in names_a.iter().enumerate() {
        let Some(ib) = names_b.iter().position(|n| n == name) else {
            continue;
        };
        let ra = a.read_raw(ia)?;
        let rb = b.read_raw(ib)?;
        if ra == rb {
            continue;
        }
        let da = a.read(ia)?;
        let db = b.read(ib)?;
        if da == db {
            let how = if ra.method == rb.method {
                "was recompressed (same content, different stored bytes)".to_string()
            } else {
                format!("changed compression from {} to {}", ra.method, rb.method)
            };
            diffs.push(entry_diff(
                DifferenceKind::EntryStorage,
                name,
                format!("zip entry {name} {how}"),
            ));
            continue;
        }
        match sheet_of_part.get(name) {
            Some(sheet) => {
                let empty = HashSet::new();
                let declared = declared_by_sheet.get(sheet.as_str()).unwrap_or(&empty);
                compare_sheet(name, sheet, &da, &db, declared, &mut diffs)?;
            }
            None => diffs.push(entry_diff(
                DifferenceKind::PartContent,
                name,
                format!("part {name} changed ({} → {} bytes)", da.len(), db.len()),
            )),
        }
    }
    Ok(diffs)
}

fn compare_sheet(
    part: &str,
    sheet: &str,
    a: &[u8],
    b: &[u8],
    declared: &HashSet<CellRef>,
    diffs: &mut Vec<Difference>,
) -> Result<(), WorkbookError> {
    xml::reject_doctype(part, a)?;
    xml::reject_doctype(part, b)?;
    let ta = xml::as_text(part, a)?;
    let tb = xml::as_text(part, b)?;
    let diff = |kind, cell: Option<String>, description: String| Difference {
        kind,
        part: part.to_string(),
        sheet: Some(sheet.to_string()),
        cell,
        description,
    };
    let sa = sheet_xml::scan(part, ta)?;
    let sb = match sheet_xml::scan(part, tb) {
        Ok(s) => s,
        Err(e) => {
            diffs.push(diff(
                DifferenceKind::SheetOutsideData,
                None,
                format!("sheet '{sheet}' is no longer readable XML: {e}"),
            ));
            return Ok(());
        }
    };
    let (Some(da), Some(db)) = (sa.sheet_data, sb.sheet_data) else {
        diffs.push(diff(
            DifferenceKind::SheetOutsideData,
            None,
            format!("sheet '{sheet}' lost or gained its <sheetData>"),
        ));
        return Ok(());
    };
    if let Some(at) = first_difference(&ta[..da.start], &tb[..db.start]) {
        diffs.push(diff(
            DifferenceKind::SheetOutsideData,
            None,
            format!(
                "sheet '{sheet}' changed before <sheetData> at byte {at}: {}",
                snippet_pair(ta, tb, at, at)
            ),
        ));
    }
    if let Some(at) = first_difference(&ta[da.end..], &tb[db.end..]) {
        diffs.push(diff(
            DifferenceKind::SheetOutsideData,
            None,
            format!(
                "sheet '{sheet}' changed after <sheetData>: {}",
                snippet_pair(ta, tb, da.end + at, db.end + at)
            ),
        ));
    }
    if open_tag(&ta[da.start..da.open_end]) != open_tag(&tb[db.start..db.open_end]) {
        diffs.push(diff(
            DifferenceKind::SheetOutsideData,
            None,
            format!("sheet '{sheet}': the <sheetData> tag changed"),
        ));
    }

    let rows_a: BTreeMap<u32, &RowSpan> = sa.rows.iter().map(|r| (r.row, r)).collect();
    let rows_b: BTreeMap<u32, &RowSpan> = sb.rows.iter().map(|r| (r.row, r)).collect();
    let all_rows: BTreeSet<u32> = rows_a.keys().chain(rows_b.keys()).copied().collect();
    for r in all_rows {
        let row_ref = Some(format!("{}", u64::from(r) + 1));
        match (rows_a.get(&r), rows_b.get(&r)) {
            (Some(ra), Some(rb)) => {
                if open_tag(&ta[ra.start..ra.tag_end]) != open_tag(&tb[rb.start..rb.tag_end]) {
                    diffs.push(diff(
                        DifferenceKind::Row,
                        row_ref.clone(),
                        format!("sheet '{sheet}': the attributes of row {} changed", r + 1),
                    ));
                }
                if row_gaps(ta, ra) != row_gaps(tb, rb) {
                    diffs.push(diff(
                        DifferenceKind::Row,
                        row_ref,
                        format!("sheet '{sheet}': row {} has other non-cell content", r + 1),
                    ));
                }
                compare_cells(
                    sheet,
                    ta,
                    tb,
                    &ra.cells,
                    &rb.cells,
                    declared,
                    &mut |k, c, d| diffs.push(diff(k, c, d)),
                );
            }
            (None, Some(rb)) => {
                let only_r = row_attributes(&tb[rb.start..rb.tag_end])
                    .iter()
                    .all(|k| k == "r");
                if !only_r {
                    diffs.push(diff(
                        DifferenceKind::Row,
                        row_ref,
                        format!("sheet '{sheet}': row {} was added with attributes", r + 1),
                    ));
                }
                compare_cells(sheet, ta, tb, &[], &rb.cells, declared, &mut |k, c, d| {
                    diffs.push(diff(k, c, d))
                });
            }
            (Some(_), None) => {
                diffs.push(diff(
                    DifferenceKind::Row,
                    row_ref,
                    format!("sheet '{sheet}': row {} was removed", r + 1),
                ));
            }
            (None, None) => {}
        }
    }
    Ok(())
}

fn compare_cells(
    sheet: &str,
    ta: &str,
    tb: &str,
    ca: &[sheet_xml::CellSpan],
    cb: &[sheet_xml::CellSpan],
    declared: &HashSet<CellRef>,
    push: &mut dyn FnMut(DifferenceKind, Option<String>, String),
) {
    let map_a: BTreeMap<CellRef, &str> = ca.iter().map(|c| (c.cell, &ta[c.start..c.end])).collect();
    let map_b: BTreeMap<CellRef, &str> = cb.iter().map(|c| (c.cell, &tb[c.start..c.end])).collect();
    let all: BTreeSet<CellRef> = map_a.keys().chain(map_b.keys()).copied().collect();
    for cell in all {
        let (xa, xb) = (map_a.get(&cell).copied(), map_b.get(&cell).copied());
        if xa == xb || declared.contains(&cell) {
            continue;
        }
        let (va, vb) = (
            xa.map(cell_value).unwrap_or_default(),
            xb.map(cell_value).unwrap_or_default(),
        );
        let description = match (xa, xb) {
            (None, Some(_)) => format!(
                "sheet '{sheet}': cell {cell} was added with \"{}\"",
                short(&vb)
            ),
            (Some(_), None) => format!(
                "sheet '{sheet}': cell {cell} was removed (it held \"{}\")",
                short(&va)
            ),
            _ if va != vb => format!(
                "sheet '{sheet}': cell {cell} changed from \"{}\" to \"{}\"",
                short(&va),
                short(&vb)
            ),
            _ => format!(
                "sheet '{sheet}': cell {cell} changed its XML (style, type or formula): {} → {}",
                short(xa.unwrap_or("")),
                short(xb.unwrap_or(""))
            ),
        };
        push(DifferenceKind::Cell, Some(cell.to_string()), description);
    }
}

/// The text of a cell's `<v>` or inline `<t>` elements.
fn cell_value(raw: &str) -> String {
    let mut reader = Reader::from_str(raw);
    let mut out = String::new();
    let mut in_value = false;
    loop {
        match reader.read_event() {
            Ok(Event::Start(e)) => in_value = matches!(xml::local_name(&e), "v" | "t"),
            Ok(Event::End(_)) => in_value = false,
            Ok(Event::Text(t)) if in_value => out.push_str(&t.xml10_content()),
            Ok(Event::GeneralRef(r)) if in_value => xml::push_ref(&mut out, &r),
            Ok(Event::Eof) | Err(_) => break,
            _ => {}
        }
    }
    out
}

/// A start tag without its closing `>`/`/>` and trailing whitespace, so `<row r="5"/>`
/// and `<row r="5">` compare equal.
fn open_tag(tag: &str) -> &str {
    let t = tag
        .strip_suffix("/>")
        .or_else(|| tag.strip_suffix('>'))
        .unwrap_or(tag);
    t.trim_end()
}

fn row_attributes(tag: &str) -> Vec<String> {
    let mut reader = Reader::from_str(tag);
    match reader.read_event() {
        Ok(Event::Start(e) | Event::Empty(e)) => e
            .attributes()
            .with_checks(false)
            .flatten()
            .map(|a| a.key.into_inner().to_string())
            .collect(),
        _ => Vec::new(),
    }
}

/// Non-whitespace content of a row other than its cells.
fn row_gaps(text: &str, row: &RowSpan) -> String {
    if row.empty_tag {
        return String::new();
    }
    let close = text[row.start..row.end]
        .rfind("</")
        .map_or(row.end, |i| row.start + i);
    let mut out = String::new();
    let mut pos = row.tag_end;
    for c in &row.cells {
        out.push_str(text[pos..c.start].trim());
        pos = c.end;
    }
    out.push_str(text[pos..close.max(pos)].trim());
    out
}

fn first_difference(a: &str, b: &str) -> Option<usize> {
    if a == b {
        return None;
    }
    let common = a.bytes().zip(b.bytes()).take_while(|(x, y)| x == y).count();
    Some(common)
}

fn snippet_pair(a: &str, b: &str, at_a: usize, at_b: usize) -> String {
    format!("\"{}\" → \"{}\"", snippet(a, at_a), snippet(b, at_b))
}

fn snippet(text: &str, at: usize) -> String {
    let mut start = at.saturating_sub(20);
    while !text.is_char_boundary(start) {
        start -= 1;
    }
    let mut end = (at + 40).min(text.len());
    while !text.is_char_boundary(end) {
        end += 1;
    }
    text[start..end].to_string()
}

fn short(s: &str) -> String {
    let mut out: String = s.chars().take(80).collect();
    if s.chars().count() > 80 {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cell_values_and_tags() {
        assert_eq!(
            cell_value(r#"<c r="A1" t="inlineStr"><is><t>a&amp;b</t></is></c>"#),
            "a&b"
        );
        assert_eq!(cell_value(r#"<c r="A1"><v>3</v></c>"#), "3");
        assert_eq!(open_tag(r#"<row r="5" />"#), open_tag(r#"<row r="5">"#));
        assert_eq!(row_attributes(r#"<row r="5" ht="3">"#), vec!["r", "ht"]);
    }
}
