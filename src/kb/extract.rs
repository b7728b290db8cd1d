//! Turns one source file into text the chunker understands: Markdown-style `#` headings, one
//! `Page` per PDF page. Does not chunk, embed, or read answered questionnaires (see `library`).
//! Hostile files are normal input: every extractor runs behind `guard::quietly` (a panic is an
//! error, no backtrace) and a size cap.
//! PDFs are read with pdf_oxide (chosen by measurement: benches/pdf-extractors/RESULTS.md), with
//! the empty user password tried for encrypted files; a page without text is kept, empty, so the
//! caller can report it (`pages_without_text`). No OCR: a scanned page stays textless.

use std::path::Path;

/// Files larger than this are skipped (a policy or trust document is far smaller).
pub const MAX_DOCUMENT_BYTES: usize = 200 * 1024 * 1024;

/// What kind of source a file is, by its extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    Markdown,
    Text,
    Html,
    Pdf,
    Docx,
    /// An answered questionnaire (.xlsx, .xlsm, .xls, .ods): becomes answer-library records.
    Workbook,
}

impl SourceKind {
    /// The kind of `path`, or `None` for a file the knowledge base does not read.
    pub fn of(path: &Path) -> Option<Self> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        Some(match ext.as_str() {
            "md" | "markdown" => Self::Markdown,
            "txt" | "text" => Self::Text,
            "html" | "htm" | "xhtml" => Self::Html,
            "pdf" => Self::Pdf,
            "docx" => Self::Docx,
            "xlsx" | "xlsm" | "xls" | "ods" => Self::Workbook,
            _ => return None,
        })
    }
}

/// Text of one page (PDF) or of the whole document (every other kind).
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    /// 1-based page number, for PDFs.
    pub number: Option<u32>,
    /// The text, with headings as Markdown `#` lines where the format has them. Empty for a PDF
    /// page that has no text layer (a scan) or whose text could not be read.
    pub text: String,
}

impl Page {
    /// Whether the page has any text at all.
    pub fn has_text(&self) -> bool {
        !self.text.trim().is_empty()
    }
}

/// Numbers of the pages that have no text (scanned pages without an OCR layer, mostly).
pub fn pages_without_text(pages: &[Page]) -> Vec<u32> {
    pages
        .iter()
        .filter(|p| !p.has_text())
        .filter_map(|p| p.number)
        .collect()
}

/// Extracts the text of a document (not a workbook). `Err` says why in words a user can act on.
pub fn extract(kind: SourceKind, bytes: &[u8]) -> Result<Vec<Page>, String> {
    if bytes.len() > MAX_DOCUMENT_BYTES {
        return Err(format!(
            "file is {} MB; documents over {} MB are not ingested",
            bytes.len() / (1024 * 1024),
            MAX_DOCUMENT_BYTES / (1024 * 1024)
        ));
    }
    let whole = |text: String| vec![Page { number: None, text }];
    let pages = match kind {
        SourceKind::Markdown | SourceKind::Text => whole(decode_text(bytes)),
        SourceKind::Html => whole(guarded("HTML", || html_text(bytes))?),
        SourceKind::Docx => whole(guarded("DOCX", || docx_text(bytes))?),
        SourceKind::Pdf => guarded("PDF", || pdf_pages(bytes))?,
        SourceKind::Workbook => {
            return Err("a workbook is read as an answer library, not as a document".into());
        }
    };
    if !pages.iter().any(Page::has_text) {
        return Err(match kind {
            SourceKind::Pdf => format!(
                "no extractable text on any of its {} page(s) (scanned? it needs OCR first)",
                pages.len()
            ),
            _ => "no text".into(),
        });
    }
    Ok(pages)
}

/// Runs an extractor, turning a panic inside a third-party parser into an error (printed
/// nowhere: the caller names the file in its one-line warning).
fn guarded<T>(what: &str, f: impl FnOnce() -> Result<T, String>) -> Result<T, String> {
    crate::guard::quietly(f).unwrap_or_else(|panicked| {
        Err(format!(
            "not a readable {what} file (the {what} parser failed: {panicked})"
        ))
    })
}

/// UTF-8 (with or without BOM), else UTF-16 with BOM, else lossy UTF-8.
fn decode_text(bytes: &[u8]) -> String {
    if let Some(rest) = bytes.strip_prefix(b"\xEF\xBB\xBF") {
        return String::from_utf8_lossy(rest).into_owned();
    }
    let utf16 = |le: bool, rest: &[u8]| {
        let units: Vec<u16> = rest
            .chunks_exact(2)
            .map(|b| {
                if le {
                    u16::from_le_bytes([b[0], b[1]])
                } else {
                    u16::from_be_bytes([b[0], b[1]])
                }
            })
            .collect();
        String::from_utf16_lossy(&units)
    };
    if let Some(rest) = bytes.strip_prefix(b"\xFF\xFE") {
        return utf16(true, rest);
    }
    if let Some(rest) = bytes.strip_prefix(b"\xFE\xFF") {
        return utf16(false, rest);
    }
    String::from_utf8_lossy(bytes).into_owned()
}

fn html_text(bytes: &[u8]) -> Result<String, String> {
    html2text::config::plain()
        .link_footnotes(false)
        .string_from_read(bytes, 10_000)
        .map_err(|e| format!("not a readable HTML file ({e})"))
}

fn pdf_pages(bytes: &[u8]) -> Result<Vec<Page>, String> {
    let unreadable = |e: pdf_oxide::Error| format!("not a readable PDF file ({e})");
    let doc = pdf_oxide::PdfDocument::from_bytes(bytes.to_vec()).map_err(unreadable)?;
    // Files "protected" with an empty user password open without a prompt in every viewer.
    if !doc.authenticate(b"").map_err(unreadable)? {
        return Err("the PDF is encrypted with a password; save an unprotected copy".into());
    }
    let count = doc.page_count().map_err(unreadable)?;
    let mut first_failure: Option<(u32, String)> = None;
    let pages: Vec<Page> = (0..count)
        .map(|index| {
            let number = index as u32 + 1;
            // One bad page (parser error or panic) leaves that page empty, not the whole file.
            let text = guarded("PDF page", || {
                doc.extract_text(index).map_err(|e| e.to_string())
            })
            .unwrap_or_else(|e| {
                tracing::debug!(page = number, error = %e, "cannot read the text of a PDF page");
                first_failure.get_or_insert((number, e));
                String::new()
            });
            Page {
                number: Some(number),
                text: mark_numbered_headings(&text),
            }
        })
        .collect();
    // No page gave text and one failed: the file is broken, not a scan.
    if let Some((number, e)) = first_failure
        && !pages.iter().any(Page::has_text)
    {
        return Err(format!("not a readable PDF file (page {number}: {e})"));
    }
    Ok(pages)
}

/// PDF text has no heading markup; a short line that starts with a section number and reads
/// like a title ("3.2 Key management") becomes a Markdown heading of its depth.
fn mark_numbered_headings(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 64);
    for line in text.lines() {
        let t = line.trim();
        let number: String = t
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == '.')
            .collect();
        let rest = t[number.len()..].trim();
        let depth = number.split('.').filter(|p| !p.is_empty()).count();
        let is_heading = depth > 0
            && number.starts_with(|c: char| c.is_ascii_digit())
            && t[number.len()..].starts_with(' ')
            && (3..=80).contains(&rest.chars().count())
            && rest.starts_with(|c: char| c.is_uppercase())
            && !rest.ends_with(['.', ',', ';', ':']);
        if is_heading {
            out.push_str(&"#".repeat(depth.min(6)));
            out.push(' ');
            out.push_str(t);
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    out
}

fn docx_text(bytes: &[u8]) -> Result<String, String> {
    use docx_rs::{DocumentChild, TableCellContent, TableChild, TableRowChild};
    let doc = docx_rs::read_docx(bytes).map_err(|e| format!("not a readable DOCX file ({e})"))?;
    let mut out = String::new();
    for child in &doc.document.children {
        match child {
            DocumentChild::Paragraph(p) => {
                let text = p.raw_text();
                let text = text.trim();
                if text.is_empty() {
                    continue;
                }
                let style = p.property.style.as_ref().map(|s| s.val.as_str());
                match style.and_then(heading_level) {
                    Some(level) => {
                        out.push_str(&"#".repeat(level));
                        out.push(' ');
                        out.push_str(&text.replace('\n', " "));
                    }
                    None => out.push_str(text),
                }
                out.push_str("\n\n");
            }
            DocumentChild::Table(table) => {
                for TableChild::TableRow(row) in &table.rows {
                    let cells: Vec<String> = row
                        .cells
                        .iter()
                        .map(|TableRowChild::TableCell(cell)| {
                            cell.children
                                .iter()
                                .filter_map(|c| match c {
                                    TableCellContent::Paragraph(p) => Some(p.raw_text()),
                                    _ => None,
                                })
                                .collect::<Vec<_>>()
                                .join(" ")
                                .trim()
                                .to_string()
                        })
                        .collect();
                    if cells.iter().any(|c| !c.is_empty()) {
                        out.push_str(&cells.join(" | "));
                        out.push('\n');
                    }
                }
                out.push('\n');
            }
            _ => {}
        }
    }
    Ok(out)
}

/// Heading level of a Word paragraph style id ("Heading2" → 2, "Title" → 1).
fn heading_level(style: &str) -> Option<usize> {
    let s = style.to_ascii_lowercase().replace([' ', '-', '_'], "");
    if s == "title" {
        return Some(1);
    }
    let n: usize = s.strip_prefix("heading")?.parse().ok()?;
    (1..=9).contains(&n).then_some(n.min(6))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbered_pdf_lines_become_headings() {
        let text = "3 Encryption\nAll data is encrypted.\n3.2 Key management\nKeys rotate.\n1. This sentence ends with a period.\n";
        let marked = mark_numbered_headings(text);
        assert!(marked.contains("# 3 Encryption\n"), "{marked}");
        assert!(marked.contains("## 3.2 Key management\n"), "{marked}");
        assert!(marked.contains("\n1. This sentence"), "{marked}");
    }

    #[test]
    fn word_heading_styles_have_levels() {
        assert_eq!(heading_level("Heading1"), Some(1));
        assert_eq!(heading_level("heading 3"), Some(3));
        assert_eq!(heading_level("Title"), Some(1));
        assert_eq!(heading_level("Normal"), None);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let pdf = extract(
            SourceKind::Pdf,
            b"%PDF-1.7\n1 0 obj << /Type /Catalog >>\ntrailer",
        );
        assert!(pdf.is_err(), "{pdf:?}");
        let docx = extract(SourceKind::Docx, b"PK\x03\x04 not really a zip");
        assert!(docx.is_err(), "{docx:?}");
    }

    #[test]
    fn html_keeps_headings_and_drops_scripts() {
        let html = b"<html><head><style>p{color:red}</style><script>var secret=1;</script></head><body><h1>Trust</h1><h2>Availability</h2><p>99.9% uptime.</p></body></html>";
        let pages = extract(SourceKind::Html, html).unwrap();
        let text = &pages[0].text;
        assert!(text.contains("# Trust"), "{text}");
        assert!(text.contains("## Availability"), "{text}");
        assert!(!text.contains("secret"), "{text}");
    }
}
