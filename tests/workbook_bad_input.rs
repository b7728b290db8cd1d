//! Non-workbooks and hostile packages get a specific WorkbookError; no panic, hang or unbounded allocation.

mod common;

use common::workbook_util::*;
use rfpq::workbook::{self, Limits, WorkbookError};

fn err(bytes: &[u8]) -> WorkbookError {
    workbook::inspect(bytes).expect_err("must be refused")
}

#[test]
fn text_and_csv_renamed_to_xlsx() {
    let e = err(b"Security questionnaire notes\nplease fill in by Friday\n");
    assert!(matches!(e, WorkbookError::NotAWorkbook(_)), "{e}");
    assert!(e.to_string().contains("looks like text/CSV"), "{e}");
    assert!(e.to_string().contains("plain text"), "{e}");

    let e = err("Question,Answer\nDo you encrypt data at rest?,Yes\n¿Cifrado?,Sí\n".as_bytes());
    assert!(matches!(e, WorkbookError::NotAWorkbook(_)), "{e}");
    assert!(e.to_string().contains("looks like text/CSV"), "{e}");
    assert!(e.to_string().contains("CSV/TSV"), "{e}");

    let e = err(b"<html><body><table><tr><td>Q</td></tr></table></body></html>");
    assert!(e.to_string().contains("HTML"), "{e}");
}

#[test]
fn empty_file() {
    let e = err(b"");
    assert!(matches!(e, WorkbookError::NotAWorkbook(_)), "{e}");
    assert!(e.to_string().contains("empty"), "{e}");
}

#[test]
fn truncated_real_checklist() {
    let bytes = checklist("security_checklist.en.xlsx");
    for keep in [bytes.len() / 2, bytes.len() - 10, 100] {
        let e = err(&bytes[..keep]);
        assert!(matches!(e, WorkbookError::Corrupt(_)), "{keep}: {e}");
        assert!(e.to_string().contains("truncated"), "{e}");
    }
    // Patching and verifying refuse it the same way.
    assert!(matches!(
        workbook::patch(&bytes[..bytes.len() / 2], &[]),
        Err(WorkbookError::Corrupt(_))
    ));
    assert!(matches!(
        workbook::verify(&bytes, &bytes[..200], &[]),
        Err(WorkbookError::Corrupt(_))
    ));
}

#[test]
fn too_many_zip_entries() {
    let names: Vec<String> = (0..10_001).map(|i| format!("junk/{i}.txt")).collect();
    let entries: Vec<(&str, &[u8])> = names.iter().map(|n| (n.as_str(), &b""[..])).collect();
    let e = err(&zip_of(&entries));
    assert!(matches!(e, WorkbookError::TooLarge(_)), "{e}");
    assert!(e.to_string().contains("10001 zip entries"), "{e}");
}

/// Rewrites the uncompressed size of `name` in the central directory (and, if `local`, in
/// the local header too).
fn set_declared_size(bytes: &mut [u8], name: &str, size: u32, local: bool) {
    let mut i = 0;
    let mut hits = 0;
    while i + 46 < bytes.len() {
        let sig = &bytes[i..i + 4];
        if sig == b"PK\x01\x02" {
            let n = u16::from_le_bytes([bytes[i + 28], bytes[i + 29]]) as usize;
            if &bytes[i + 46..i + 46 + n] == name.as_bytes() {
                bytes[i + 24..i + 28].copy_from_slice(&size.to_le_bytes());
                hits += 1;
            }
        } else if local && sig == b"PK\x03\x04" {
            let n = u16::from_le_bytes([bytes[i + 26], bytes[i + 27]]) as usize;
            if &bytes[i + 30..i + 30 + n] == name.as_bytes() {
                bytes[i + 22..i + 26].copy_from_slice(&size.to_le_bytes());
                hits += 1;
            }
        }
        i += 1;
    }
    assert!(hits >= 1, "entry {name} found");
}

#[test]
fn declared_size_over_the_limit() {
    let mut bytes = checklist("security_checklist.en.xlsx");
    set_declared_size(&mut bytes, "xl/worksheets/sheet1.xml", 0x7FFF_FFFF, false);
    let e = err(&bytes);
    assert!(matches!(e, WorkbookError::TooLarge(_)), "{e}");
    assert!(
        e.to_string().contains("xl/worksheets/sheet1.xml declares"),
        "{e}"
    );

    // The total is checked too.
    let small = Limits {
        max_entries: 100,
        max_total_uncompressed: 100_000,
        max_part_size: 1_000_000,
    };
    let e =
        workbook::open_with_limits(&checklist("security_checklist.en.xlsx"), small).unwrap_err();
    assert!(matches!(e, WorkbookError::TooLarge(_)), "{e}");
    assert!(e.to_string().contains("in total"), "{e}");
}

#[test]
fn lying_sizes_are_caught_while_decompressing() {
    // 3 MiB of zeros declared as 1000 bytes: the limit is enforced on the bytes produced.
    let sheet = format!("{SHEET_OPEN}<sheetData/></worksheet>");
    let base = hand_package(&sheet, &sheet, "", "visible");
    let zeros = vec![0u8; 3 * 1024 * 1024];
    let mut entries: Vec<(String, Vec<u8>)> = Vec::new();
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(&base)).unwrap();
    for i in 0..zip.len() {
        let mut f = zip.by_index(i).unwrap();
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut f, &mut data).unwrap();
        entries.push((f.name().unwrap().into_owned(), data));
    }
    entries.push(("xl/media/blob.bin".into(), zeros));
    let refs: Vec<(&str, &[u8])> = entries
        .iter()
        .map(|(n, d)| (n.as_str(), d.as_slice()))
        .collect();
    let mut bomb = zip_of(&refs);
    set_declared_size(&mut bomb, "xl/media/blob.bin", 1000, true);
    let e = err(&bomb);
    assert!(matches!(e, WorkbookError::TooLarge(_)), "{e}");
    assert!(
        e.to_string()
            .contains("xl/media/blob.bin decompresses to more than its declared"),
        "{e}"
    );

    // Honest sizes over a per-part limit stop at the limit as well.
    let honest = zip_of(&refs);
    let limits = Limits {
        max_part_size: 1024 * 1024,
        ..Limits::default()
    };
    let e = workbook::open_with_limits(&honest, limits).unwrap_err();
    assert!(
        e.to_string().contains("xl/media/blob.bin declares 3.0 MiB"),
        "{e}"
    );
}

#[test]
fn doctype_entities_are_refused() {
    let evil = format!(
        r#"<?xml version="1.0"?><!DOCTYPE worksheet [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>{}<sheetData><row r="1">{}</row></sheetData></worksheet>"#,
        &SHEET_OPEN[SHEET_OPEN.find("<worksheet").unwrap()..],
        istr("A1", "&b;")
    );
    let ok = format!("{SHEET_OPEN}<sheetData/></worksheet>");
    let e = err(&hand_package(&evil, &ok, "", "visible"));
    assert!(matches!(e, WorkbookError::Corrupt(_)), "{e}");
    assert!(
        e.to_string()
            .contains("xl/worksheets/sheet1.xml declares a DTD"),
        "{e}"
    );

    // Also in a part the engine does not otherwise interpret.
    let good = hand_package(&ok, &ok, "", "visible");
    let bad = replace_entry(
        &good,
        "[Content_Types].xml",
        b"<!DOCTYPE Types SYSTEM \"http://example.invalid/x.dtd\"><Types/>",
    );
    let e = err(&bad);
    assert!(e.to_string().contains("DTD"), "{e}");
    // Patching refuses a sheet with a DTD as well.
    let e = workbook::patch(
        &hand_package(&evil, &ok, "", "visible"),
        &[rfpq::workbook::CellWrite {
            sheet: "Form".into(),
            cell: rfpq::workbook::CellRef::new(0, 1),
            value: "x".into(),
        }],
    )
    .unwrap_err();
    assert!(e.to_string().contains("DTD"), "{e}");
}

const OLE_MAGIC: [u8; 8] = [0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1];

/// A minimal compound file: header, one directory sector with the given stream names, one FAT sector.
fn ole_with_streams(names: &[&str]) -> Vec<u8> {
    let mut f = vec![0u8; 512 * 3];
    f[..8].copy_from_slice(&OLE_MAGIC);
    f[0x1A..0x1C].copy_from_slice(&3u16.to_le_bytes()); // major version 3
    f[0x1C..0x1E].copy_from_slice(&0xFFFEu16.to_le_bytes());
    f[0x1E..0x20].copy_from_slice(&9u16.to_le_bytes()); // 512-byte sectors
    f[0x20..0x22].copy_from_slice(&6u16.to_le_bytes());
    f[0x2C..0x30].copy_from_slice(&1u32.to_le_bytes()); // one FAT sector
    f[0x30..0x34].copy_from_slice(&0u32.to_le_bytes()); // directory starts at sector 0
    for i in 0..109 {
        let v: u32 = if i == 0 { 1 } else { 0xFFFF_FFFF };
        f[0x4C + 4 * i..0x50 + 4 * i].copy_from_slice(&v.to_le_bytes());
    }
    // Sector 0 (file offset 512): directory entries.
    for (k, name) in std::iter::once(&"Root Entry").chain(names).enumerate() {
        let at = 512 + 128 * k;
        let units: Vec<u16> = name.encode_utf16().chain([0]).collect();
        for (j, u) in units.iter().enumerate() {
            f[at + 2 * j..at + 2 * j + 2].copy_from_slice(&u.to_le_bytes());
        }
        f[at + 64..at + 66].copy_from_slice(&((units.len() * 2) as u16).to_le_bytes());
    }
    // Sector 1 (file offset 1024): FAT.
    f[1024..1028].copy_from_slice(&0xFFFF_FFFEu32.to_le_bytes());
    f[1028..1032].copy_from_slice(&0xFFFF_FFFDu32.to_le_bytes());
    for i in 2..128 {
        f[1024 + 4 * i..1028 + 4 * i].copy_from_slice(&0xFFFF_FFFFu32.to_le_bytes());
    }
    f
}

#[test]
fn ole_containers() {
    // Header only.
    let mut header = OLE_MAGIC.to_vec();
    header.resize(512, 0);
    let e = err(&header);
    assert!(matches!(e, WorkbookError::Unsupported(_)), "{e}");
    assert!(e.to_string().contains("OLE compound file"), "{e}");

    let e = err(&ole_with_streams(&["EncryptionInfo", "EncryptedPackage"]));
    assert!(matches!(e, WorkbookError::Encrypted), "{e}");
    assert!(e.to_string().contains("password"), "{e}");

    // An .xls container whose Workbook stream is not BIFF: read as .xls, refused as damaged.
    let e = err(&ole_with_streams(&["Workbook", "\u{5}SummaryInformation"]));
    assert!(matches!(e, WorkbookError::Corrupt(_)), "{e}");
    assert!(e.to_string().contains(".xls workbook"), "{e}");
}

#[test]
fn other_zip_documents() {
    let e = err(&zip_of(&[
        ("word/document.xml", b"<w:document/>"),
        ("[Content_Types].xml", b"<Types/>"),
    ]));
    assert!(matches!(e, WorkbookError::NotAWorkbook(_)), "{e}");
    assert!(e.to_string().contains("Word"), "{e}");

    let e = err(&zip_of(&[
        ("xl/workbook.bin", b"\x83\x01\x00"),
        ("[Content_Types].xml", b"<Types/>"),
    ]));
    assert!(matches!(e, WorkbookError::Unsupported(_)), "{e}");
    assert!(e.to_string().contains(".xlsb"), "{e}");

    let e = err(&zip_of(&[("readme.txt", b"hello")]));
    assert!(matches!(e, WorkbookError::NotAWorkbook(_)), "{e}");
}

/// A questionnaire next to a million-row data sheet: the data sheet is read as a stream, is not
/// mistaken for questions, and the questionnaire is found and patched as usual.
#[test]
fn million_row_sheet_is_read_and_skipped() {
    let mut wb = rust_xlsxwriter::Workbook::new();
    let form = wb.add_worksheet();
    form.set_name("Form").unwrap();
    for (c, h) in ["ID", "Question", "Answer", "Comments"].iter().enumerate() {
        form.write_string(0, c as u16, *h).unwrap();
    }
    for r in 1..=20u32 {
        form.write_string(r, 0, format!("Q-{r}")).unwrap();
        form.write_string(r, 1, format!("Do you meet control {r}?"))
            .unwrap();
    }
    let data = wb.add_worksheet();
    data.set_name("Data").unwrap();
    for r in 0..1_000_000u32 {
        data.write_number(r, 0, f64::from(r)).unwrap();
    }
    let bytes = wb.save_to_buffer().unwrap();
    let q = workbook::inspect(&bytes).expect("a million rows are normal input");
    let data = q.sheets.iter().find(|s| s.name == "Data").unwrap();
    assert!(!data.fill && data.questions.is_empty(), "{}", data.reason);
    let form = q.sheets.iter().find(|s| s.name == "Form").unwrap();
    assert_eq!(form.questions.len(), 20);
    let writes: Vec<_> = q
        .questions()
        .flat_map(|r| r.slots[0].writes_for(&r.sheet, "Yes"))
        .collect();
    let filled = workbook::patch(&bytes, &writes).unwrap();
    let declared: Vec<_> = q.questions().flat_map(|r| r.answer_cells()).collect();
    assert!(
        workbook::verify(&bytes, &filled, &declared)
            .unwrap()
            .is_empty()
    );
}
