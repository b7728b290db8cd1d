//! .xlsm patched in place (macros byte-identical); .xls and .ods read and answered into a new .xlsx.

mod common;

use calamine::{Data, Reader, Xlsx};
use common::synthetic::caiq_v4;
use common::workbook_util::*;
use rfpq::workbook::{self, CellRef, SlotKind, SourceFormat, WorkbookError};
use std::io::{Cursor, Write};
use zip::write::SimpleFileOptions;

const LEGACY_XLS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/fixtures/legacy/vendor-questionnaire.xls"
);

fn cell_text(bytes: &[u8], sheet: &str, cell: CellRef) -> Option<String> {
    let mut xl: Xlsx<_> = calamine::open_workbook_from_rs(Cursor::new(bytes)).expect("opens");
    let range = xl.worksheet_range(sheet).expect("sheet");
    match range.get_value((cell.row, cell.col))? {
        Data::Empty => None,
        d => Some(d.to_string()),
    }
}

/// Patches every slot, then proves with verify and calamine that exactly the answers landed.
fn round_trip(base: &[u8], q: &workbook::Questionnaire) -> Vec<u8> {
    let writes = fill_all(q, |i| format!("Answer {i}: =not a formula"));
    assert!(!writes.is_empty());
    let filled = workbook::patch(base, &writes).expect("patch");
    let declared: Vec<(String, CellRef)> = q.questions().flat_map(|r| r.answer_cells()).collect();
    let diffs = workbook::verify(base, &filled, &declared).expect("verify");
    assert!(diffs.is_empty(), "{diffs:#?}");
    for w in &writes {
        assert_eq!(
            cell_text(&filled, &w.sheet, w.cell).as_deref(),
            Some(w.value.as_str()),
            "{} {}",
            w.sheet,
            w.cell
        );
    }
    filled
}

#[test]
fn xls_is_read_and_answered_into_a_new_xlsx_with_a_warning() {
    let bytes = std::fs::read(LEGACY_XLS).expect("fixture");
    let (loaded, q) = workbook::load_and_detect(bytes).expect("loads");
    assert_eq!(loaded.format, SourceFormat::Xls);
    assert_eq!(q.source_format, SourceFormat::Xls);
    assert!(
        q.warnings[0].contains(".xls") && q.warnings[0].contains("cannot be preserved"),
        "{:?}",
        q.warnings
    );
    assert!(loaded.bytes.starts_with(b"PK"), "rebuilt as a zip package");

    let sheet = &q.sheets[0];
    assert_eq!(sheet.name, "Questionnaire");
    assert!(sheet.fill, "{}", sheet.reason);
    assert_eq!(sheet.header_row, Some(3));
    let ids: Vec<&str> = sheet
        .questions
        .iter()
        .filter_map(|r| r.id.as_deref())
        .collect();
    assert_eq!(ids, ["AC-01", "AC-02", "AC-03", "AC-04", "AC-05"]);
    for r in &sheet.questions {
        let slots: Vec<(String, SlotKind, Vec<String>)> = r
            .slots
            .iter()
            .map(|s| (s.cell.to_string(), s.kind, s.choices.clone()))
            .collect();
        // No dropdown survives .xls, but the header spells out the answers.
        assert_eq!(
            slots,
            [
                (
                    format!("C{}", r.row),
                    SlotKind::Choice,
                    vec!["Yes".to_string(), "No".into(), "N/A".into()]
                ),
                (format!("D{}", r.row), SlotKind::Text, vec![]),
            ]
        );
    }
    assert!(
        sheet
            .other_rows
            .iter()
            .any(|o| o.row == 11 && o.text == "Last reviewed: 2024-05-20"),
        "a dated field is not a question: {:?}",
        sheet.other_rows
    );
    let scoring = q.sheets.iter().find(|s| s.name == "Scoring").unwrap();
    assert!(
        !scoring.fill,
        "the hidden sheet stays hidden and is skipped"
    );

    // Values, merges and the 1904 date system survive the rebuild.
    let pkg = workbook::open(&loaded.bytes).unwrap();
    let qs = pkg.sheet("Questionnaire").unwrap();
    assert_eq!(qs.value(CellRef::parse("B11").unwrap()), Some("2024-05-20"));
    assert!(
        qs.merged.iter().any(|m| m.to_string() == "A1:D1"),
        "{:?}",
        qs.merged
    );
    round_trip(&loaded.bytes, &q);
}

const ODS_MANIFEST: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<manifest:manifest xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0" manifest:version="1.2"><manifest:file-entry manifest:full-path="/" manifest:media-type="application/vnd.oasis.opendocument.spreadsheet"/><manifest:file-entry manifest:full-path="content.xml" manifest:media-type="text/xml"/></manifest:manifest>"#;

fn ods_of(content: &str, manifest: &str) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let stored = SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    w.start_file("mimetype", stored).unwrap();
    w.write_all(b"application/vnd.oasis.opendocument.spreadsheet")
        .unwrap();
    w.start_file("META-INF/manifest.xml", SimpleFileOptions::default())
        .unwrap();
    w.write_all(manifest.as_bytes()).unwrap();
    w.start_file("content.xml", SimpleFileOptions::default())
        .unwrap();
    w.write_all(content.as_bytes()).unwrap();
    w.finish().unwrap().into_inner()
}

fn text_cell(text: &str, attrs: &str) -> String {
    format!(
        r#"<table:table-cell office:value-type="string" {attrs}><text:p>{text}</text:p></table:table-cell>"#
    )
}

/// A LibreOffice-like questionnaire: banner merged over A1:D1, a header, four questions whose
/// C column has an inline Yes/No/N/A dropdown and whose E column takes its list from a
/// hidden "Lists" sheet, D free text, and the usual empty rows repeated to the sheet's end.
fn ods_questionnaire() -> Vec<u8> {
    let mut rows = String::new();
    rows.push_str(&format!(
        r#"<table:table-row>{}<table:covered-table-cell table:number-columns-repeated="3"/></table:table-row>"#,
        text_cell(
            "Cloud Security Review",
            r#"table:number-columns-spanned="4" table:number-rows-spanned="1""#
        )
    ));
    rows.push_str(&format!(
        "<table:table-row>{}{}{}{}{}</table:table-row>",
        text_cell("Ref", ""),
        text_cell("Question", ""),
        text_cell("Answer", ""),
        text_cell("Comments", ""),
        text_cell("Ownership", "")
    ));
    for (i, q) in [
        "Is customer data encrypted at rest?",
        "Is customer data encrypted in transit?",
        "Do you run annual penetration tests?",
        "Do you keep audit logs for at least one year?",
    ]
    .iter()
    .enumerate()
    {
        rows.push_str(&format!(
            r#"<table:table-row>{}{}<table:table-cell table:content-validation-name="val1"/><table:table-cell/><table:table-cell table:content-validation-name="val2"/></table:table-row>"#,
            text_cell(&format!("CS-{}", i + 1), ""),
            text_cell(q, ""),
        ));
    }
    rows.push_str(
        r#"<table:table-row table:number-rows-repeated="1048570"><table:table-cell table:number-columns-repeated="1024"/></table:table-row>"#,
    );
    let lists = format!(
        "<table:table-row>{}</table:table-row><table:table-row>{}</table:table-row><table:table-row>{}</table:table-row>",
        text_cell("Provider", ""),
        text_cell("Customer", ""),
        text_cell("Shared", "")
    );
    let content = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<office:document-content xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" xmlns:style="urn:oasis:names:tc:opendocument:xmlns:style:1.0" office:version="1.2">
<office:automatic-styles><style:style style:name="ta1" style:family="table"><style:table-properties table:display="true"/></style:style><style:style style:name="ta2" style:family="table"><style:table-properties table:display="false"/></style:style></office:automatic-styles>
<office:body><office:spreadsheet>
<table:content-validations>
<table:content-validation table:name="val1" table:condition="of:cell-content-is-in-list(&quot;Yes&quot;;&quot;No&quot;;&quot;N/A&quot;)" table:allow-empty-cell="true"/>
<table:content-validation table:name="val2" table:condition="of:cell-content-is-in-list([$Lists.$A$1:.$A$3])" table:allow-empty-cell="true"/>
</table:content-validations>
<table:table table:name="Security" table:style-name="ta1">{rows}</table:table>
<table:table table:name="Lists" table:style-name="ta2">{lists}</table:table>
</office:spreadsheet></office:body></office:document-content>"#
    );
    ods_of(&content, ODS_MANIFEST)
}

#[test]
fn ods_is_read_with_its_dropdowns_and_answered_into_a_new_xlsx() {
    let (loaded, q) = workbook::load_and_detect(ods_questionnaire()).expect("loads");
    assert_eq!(loaded.format, SourceFormat::Ods);
    assert!(q.warnings[0].contains(".ods"), "{:?}", q.warnings);
    let sheet = q.sheets.iter().find(|s| s.name == "Security").unwrap();
    assert!(sheet.fill, "{}", sheet.reason);
    assert_eq!(sheet.header_row, Some(2));
    assert_eq!(sheet.questions.len(), 4);
    for r in &sheet.questions {
        let kinds: Vec<(String, SlotKind, Vec<String>)> = r
            .slots
            .iter()
            .map(|s| (s.cell.to_string(), s.kind, s.choices.clone()))
            .collect();
        assert_eq!(
            kinds,
            [
                (
                    format!("C{}", r.row),
                    SlotKind::Choice,
                    vec!["Yes".to_string(), "No".into(), "N/A".into()]
                ),
                (format!("D{}", r.row), SlotKind::Text, vec![]),
                (
                    format!("E{}", r.row),
                    SlotKind::Choice,
                    vec!["Provider".to_string(), "Customer".into(), "Shared".into()]
                ),
            ]
        );
    }
    let lists = q.sheets.iter().find(|s| s.name == "Lists").unwrap();
    assert!(!lists.fill, "the hidden list sheet is skipped");
    let pkg = workbook::open(&loaded.bytes).unwrap();
    assert!(
        pkg.sheet("Security")
            .unwrap()
            .merged
            .iter()
            .any(|m| m.to_string() == "A1:D1")
    );
    round_trip(&loaded.bytes, &q);
}

#[test]
fn hostile_ods_files_are_refused_clearly() {
    let encrypted_manifest = ODS_MANIFEST.replace(
        r#"manifest:media-type="text/xml"/>"#,
        r#"manifest:media-type="text/xml"><manifest:encryption-data manifest:checksum-type="SHA1/1K"/></manifest:file-entry>"#,
    );
    let enc = ods_of("<office:document-content/>", &encrypted_manifest);
    assert!(matches!(workbook::load(enc), Err(WorkbookError::Encrypted)));

    // One value repeated over 1M rows × 1000 columns would expand to 10⁹ cells in a reader.
    let bomb = r#"<office:document-content xmlns:office="o" xmlns:table="t" xmlns:text="x"><office:body><office:spreadsheet><table:table table:name="S"><table:table-row table:number-rows-repeated="1000000"><table:table-cell office:value-type="string" table:number-columns-repeated="1000"><text:p>x</text:p></table:table-cell></table:table-row></table:table></office:spreadsheet></office:body></office:document-content>"#;
    let err = workbook::load(ods_of(bomb, ODS_MANIFEST)).unwrap_err();
    assert!(
        matches!(err, WorkbookError::TooLarge(_)),
        "{err}: expected a size refusal"
    );

    let dtd = r#"<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><office:document-content/>"#;
    let err = workbook::load(ods_of(dtd, ODS_MANIFEST)).unwrap_err();
    assert!(err.to_string().contains("DTD"), "{err}");

    let truncated = &ods_questionnaire()[..300];
    assert!(workbook::load(truncated.to_vec()).is_err());
}

/// The CAIQ-v4-like fixture turned macro-enabled: content type, a VBA project and its
/// relationship, exactly as Excel writes an .xlsm.
fn xlsm() -> Vec<u8> {
    let base = caiq_v4();
    let types = entry_text(&base, "[Content_Types].xml")
        .replace(
            "spreadsheetml.sheet.main+xml",
            "ms-excel.sheet.macroEnabled.main+xml",
        )
        .replace(
            "<Default Extension=\"xml\"",
            "<Default Extension=\"bin\" ContentType=\"application/vnd.ms-office.vbaProject\"/><Default Extension=\"xml\"",
        );
    assert!(types.contains("macroEnabled"), "{types}");
    let rels = entry_text(&base, "xl/_rels/workbook.xml.rels").replace(
        "</Relationships>",
        r#"<Relationship Id="rIdVba" Type="http://schemas.microsoft.com/office/2006/relationships/vbaProject" Target="vbaProject.bin"/></Relationships>"#,
    );
    let with_types = replace_entry(&base, "[Content_Types].xml", types.as_bytes());
    let with_rels = replace_entry(&with_types, "xl/_rels/workbook.xml.rels", rels.as_bytes());
    // Append the VBA project (opaque binary: it must come back byte for byte).
    let mut zip = zip::ZipArchive::new(Cursor::new(with_rels)).unwrap();
    let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
    for i in 0..zip.len() {
        w.raw_copy_file(zip.by_index_raw(i).unwrap()).unwrap();
    }
    w.start_file("xl/vbaProject.bin", SimpleFileOptions::default())
        .unwrap();
    let vba: Vec<u8> = (0..4096u32).map(|i| (i * 7 % 251) as u8).collect();
    w.write_all(&vba).unwrap();
    w.finish().unwrap().into_inner()
}

#[test]
fn xlsm_is_patched_in_place_and_keeps_its_macros() {
    let original = xlsm();
    let (loaded, q) = workbook::load_and_detect(original.clone()).expect("loads");
    assert_eq!(loaded.format, SourceFormat::Xlsm);
    assert_eq!(loaded.format.output_extension(), "xlsm");
    assert!(q.warnings.is_empty());
    assert_eq!(loaded.bytes, original, "an .xlsm is patched as it is");
    let plain = workbook::inspect(&caiq_v4()).unwrap();
    assert_eq!(q.sheets, plain.sheets, "macros change nothing in detection");

    let filled = round_trip(&original, &q);
    let before = raw_entries(&original);
    let after = raw_entries(&filled);
    let vba = |e: &[RawEntry]| e.iter().find(|x| x.name == "xl/vbaProject.bin").cloned();
    assert_eq!(vba(&before), vba(&after), "VBA project raw-copied");
    assert!(vba(&after).is_some());
    assert_eq!(
        entry(&original, "[Content_Types].xml"),
        entry(&filled, "[Content_Types].xml"),
        "still macro-enabled"
    );
}
