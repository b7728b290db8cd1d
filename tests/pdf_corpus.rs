//! rfpq's PDF extraction over the corpus in fixtures/pdf/ (see its README.md): every file with
//! known text must give back at least 95 % of its words (case-insensitive word multiset, no
//! ligature folding), with pages numbered 1..n; the scan without a text layer must come back as
//! "no text", not as a panic or garbage. Does not score reading order.

use rfpq::kb::extract::{Page, SourceKind, extract, pages_without_text};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

const MIN_RECALL: f64 = 0.95;

fn words(text: &str) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for w in text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        *counts.entry(w.to_lowercase()).or_insert(0) += 1;
    }
    counts
}

/// Share of the known words, with multiplicity, that `got` contains.
fn recall(known: &str, got: &str) -> f64 {
    let known = words(known);
    let got = words(got);
    let total: usize = known.values().sum();
    let found: usize = known
        .iter()
        .map(|(w, n)| got.get(w).copied().unwrap_or(0).min(*n))
        .sum();
    found as f64 / total.max(1) as f64
}

fn corpus() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/pdf");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "pdf"))
        .collect();
    files.sort();
    files
}

#[test]
fn recall_against_known_text() {
    let files = corpus();
    assert!(files.len() >= 10, "corpus has {} PDFs", files.len());
    let mut failures = Vec::new();
    for file in &files {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let bytes = std::fs::read(file).unwrap();
        let known = std::fs::read_to_string(file.with_extension("txt"))
            .unwrap_or_else(|e| panic!("{name}: its .txt: {e}"));
        let result = extract(SourceKind::Pdf, &bytes);
        if known.trim().is_empty() {
            // No text layer: must be reported as such.
            match &result {
                Err(e) if e.contains("no extractable text") => {
                    eprintln!("{name}: no text, as expected ({e})")
                }
                other => failures.push(format!(
                    "{name}: expected 'no extractable text', got {other:?}"
                )),
            }
            continue;
        }
        let pages: Vec<Page> = match result {
            Ok(pages) => pages,
            Err(e) => {
                failures.push(format!("{name}: error: {e}"));
                continue;
            }
        };
        let numbers: Vec<Option<u32>> = pages.iter().map(|p| p.number).collect();
        let expected: Vec<Option<u32>> = (1..=pages.len() as u32).map(Some).collect();
        if numbers != expected {
            failures.push(format!("{name}: page numbers {numbers:?}"));
        }
        if !pages_without_text(&pages).is_empty() {
            failures.push(format!(
                "{name}: pages without text {:?}",
                pages_without_text(&pages)
            ));
        }
        let text: String = pages
            .iter()
            .map(|p| p.text.as_str())
            .collect::<Vec<_>>()
            .join("\n");
        let r = recall(&known, &text);
        eprintln!("{name}: recall {:.1} %, {} page(s)", r * 100.0, pages.len());
        if r < MIN_RECALL {
            failures.push(format!("{name}: recall {:.3} < {MIN_RECALL}", r));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn numbered_headings_survive_extraction() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/pdf");
    for name in [
        "libreoffice-writer.pdf",
        "encrypted-aes256-empty-password.pdf",
    ] {
        let bytes = std::fs::read(dir.join(name)).unwrap();
        let pages = extract(SourceKind::Pdf, &bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        let text = &pages[0].text;
        assert!(text.contains("## 3.2 Key management\n"), "{name}:\n{text}");
        assert!(text.contains("# 4 Incident response\n"), "{name}:\n{text}");
    }
}

#[test]
fn a_two_page_file_keeps_its_page_numbers() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/pdf");
    let bytes = std::fs::read(dir.join("reportlab-ttf.pdf")).unwrap();
    let pages = extract(SourceKind::Pdf, &bytes).unwrap();
    assert_eq!(pages.len(), 2, "{pages:?}");
    assert!(pages.iter().all(Page::has_text), "{pages:?}");
    assert_eq!(pages[1].number, Some(2));
}

#[test]
fn a_pdf_with_a_user_password_is_refused_in_words() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/pdf/password");
    let bytes = std::fs::read(dir.join("user-password.pdf")).unwrap();
    let result = extract(SourceKind::Pdf, &bytes);
    assert!(
        matches!(&result, Err(e) if e.contains("encrypted with a password")),
        "{result:?}"
    );
}
