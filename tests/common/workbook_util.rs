//! Helpers for the workbook tests (fixtures, raw zip access, hand-built packages); not used by the library.
#![allow(dead_code)]

use rfpq::workbook::{self, CellWrite, SlotKind};
use std::io::{Cursor, Read, Write};
use zip::write::SimpleFileOptions;

pub const CHECKLISTS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/fixtures/azure-review-checklists"
);

pub fn checklist(name: &str) -> Vec<u8> {
    std::fs::read(format!("{CHECKLISTS}/{name}")).expect("fixture present")
}

/// One write per slot of `q`: for the i-th question a legal choice (the (i mod (n−1) + 1)-th of
/// n, never the first, which is often the default), `text(i)` in a text slot, a fixed date in a
/// date slot.
pub fn fill_all(q: &workbook::Questionnaire, text: impl Fn(usize) -> String) -> Vec<CellWrite> {
    let mut writes = Vec::new();
    for (i, row) in q.questions().enumerate() {
        for slot in &row.slots {
            let value = match slot.kind {
                SlotKind::Choice | SlotKind::Mark => {
                    slot.choices[1 + i % (slot.choices.len() - 1)].clone()
                }
                SlotKind::Text => text(i),
                SlotKind::Date => "2024-05-20".to_string(),
            };
            writes.extend(slot.writes_for(&row.sheet, &value));
        }
    }
    writes
}

/// One zip entry as stored: name, method, crc, sizes and the compressed bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawEntry {
    pub name: String,
    pub method: String,
    pub crc32: u32,
    pub size: u64,
    pub compressed_size: u64,
    pub compressed: Vec<u8>,
}

pub fn raw_entries(bytes: &[u8]) -> Vec<RawEntry> {
    let mut zip = zip::ZipArchive::new(Cursor::new(bytes)).expect("zip");
    (0..zip.len())
        .map(|i| {
            let mut f = zip.by_index_raw(i).expect("entry");
            let mut compressed = Vec::new();
            let name = f.name().expect("name").into_owned();
            let (method, crc32, size, compressed_size) = (
                format!("{:?}", f.compression()),
                f.crc32(),
                f.size(),
                f.compressed_size(),
            );
            f.read_to_end(&mut compressed).expect("read raw");
            RawEntry {
                name,
                method,
                crc32,
                size,
                compressed_size,
                compressed,
            }
        })
        .collect()
}

/// Decompressed content of one entry.
pub fn entry(bytes: &[u8], name: &str) -> Vec<u8> {
    let mut zip = zip::ZipArchive::new(Cursor::new(bytes)).expect("zip");
    let mut f = zip.by_name(name).expect("entry present");
    let mut out = Vec::new();
    f.read_to_end(&mut out).expect("read");
    out
}

pub fn entry_text(bytes: &[u8], name: &str) -> String {
    String::from_utf8(entry(bytes, name)).expect("utf8")
}

/// The same package with one entry's content replaced (others copied raw).
pub fn replace_entry(bytes: &[u8], name: &str, content: &[u8]) -> Vec<u8> {
    let mut zip = zip::ZipArchive::new(Cursor::new(bytes)).expect("zip");
    let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
    for i in 0..zip.len() {
        let n = zip
            .by_index_raw(i)
            .expect("entry")
            .name()
            .expect("name")
            .into_owned();
        if n == name {
            w.start_file(n, SimpleFileOptions::default())
                .expect("start");
            w.write_all(content).expect("write");
        } else {
            w.raw_copy_file(zip.by_index_raw(i).expect("entry"))
                .expect("copy");
        }
    }
    w.finish().expect("finish").into_inner()
}

/// A zip of the given entries, deflated, in order.
pub fn zip_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
    for (name, data) in entries {
        w.start_file(*name, SimpleFileOptions::default())
            .expect("start");
        w.write_all(data).expect("write");
    }
    w.finish().expect("finish").into_inner()
}

const CONTENT_TYPES: &str = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/><Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/><Override PartName="/xl/worksheets/sheet2.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/></Types>"#;
const ROOT_RELS: &str = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="xl/workbook.xml"/></Relationships>"#;
const WB_RELS: &str = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet1.xml"/><Relationship Id="rId2" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet2.xml"/></Relationships>"#;

/// A hand-written two-sheet package ("Form" = sheet1, "Lists" = sheet2) with the given
/// worksheet XML and `<definedNames>` content, so tests control every byte of the sheets.
pub fn hand_package(sheet1: &str, sheet2: &str, defined_names: &str, lists_state: &str) -> Vec<u8> {
    let workbook = format!(
        r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"><sheets><sheet name="Form" sheetId="1" r:id="rId1"/><sheet name="Lists" sheetId="2" state="{lists_state}" r:id="rId2"/></sheets>{defined_names}</workbook>"#
    );
    zip_of(&[
        ("[Content_Types].xml", CONTENT_TYPES.as_bytes()),
        ("_rels/.rels", ROOT_RELS.as_bytes()),
        ("xl/workbook.xml", workbook.as_bytes()),
        ("xl/_rels/workbook.xml.rels", WB_RELS.as_bytes()),
        ("xl/worksheets/sheet1.xml", sheet1.as_bytes()),
        ("xl/worksheets/sheet2.xml", sheet2.as_bytes()),
    ])
}

/// `<c>` with an inline string.
pub fn istr(cell: &str, text: &str) -> String {
    format!(r#"<c r="{cell}" t="inlineStr"><is><t>{text}</t></is></c>"#)
}

pub const SHEET_OPEN: &str = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?><worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" xmlns:mc="http://schemas.openxmlformats.org/markup-compatibility/2006" xmlns:x14ac="http://schemas.microsoft.com/office/spreadsheetml/2009/9/ac" mc:Ignorable="x14ac">"#;
