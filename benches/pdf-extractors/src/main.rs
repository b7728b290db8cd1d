//! Runs each candidate PDF text extractor over fixtures/pdf/*.pdf and prints a Markdown table of
//! word recall against NAME.txt (case-insensitive word multiset, no ligature folding), panics,
//! errors and time per file. Does not judge layout or reading order.

use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::time::Instant;

type Pages = Vec<String>;

fn words(text: &str) -> HashMap<String, usize> {
    let mut m = HashMap::new();
    for w in text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        *m.entry(w.to_lowercase()).or_insert(0) += 1;
    }
    m
}

/// Share of the known words (with multiplicity) found in `got`.
fn recall(known: &str, got: &str) -> (f64, Vec<String>) {
    let k = words(known);
    let g = words(got);
    let total: usize = k.values().sum();
    let mut hit = 0;
    let mut missing = vec![];
    for (w, n) in &k {
        let found = (*g.get(w).unwrap_or(&0)).min(*n);
        hit += found;
        if found < *n {
            missing.push(w.clone());
        }
    }
    missing.sort();
    (hit as f64 / total.max(1) as f64, missing)
}

fn pdf_extract(bytes: &[u8]) -> Result<Pages, String> {
    pdf_extract::extract_text_from_mem_by_pages(bytes).map_err(|e| e.to_string())
}

fn lopdf(bytes: &[u8]) -> Result<Pages, String> {
    let mut doc = lopdf::Document::load_mem(bytes).map_err(|e| e.to_string())?;
    if doc.is_encrypted() {
        doc.decrypt("").map_err(|e| e.to_string())?;
    }
    let pages: Vec<u32> = doc.get_pages().keys().copied().collect();
    Ok(pages
        .iter()
        .map(|&n| doc.extract_text(&[n]).unwrap_or_default())
        .collect())
}

fn pdf_oxide(bytes: &[u8]) -> Result<Pages, String> {
    let doc = pdf_oxide::PdfDocument::from_bytes(bytes.to_vec()).map_err(|e| e.to_string())?;
    let _ = doc.authenticate(b"");
    let n = doc.page_count().map_err(|e| e.to_string())?;
    (0..n)
        .map(|i| doc.extract_text(i).map_err(|e| e.to_string()))
        .collect()
}

fn pdfium(lib: &Path) -> impl Fn(&[u8]) -> Result<Pages, String> + use<> {
    let bindings = pdfium_render::prelude::Pdfium::bind_to_library(lib)
        .unwrap_or_else(|e| panic!("cannot load {}: {e}", lib.display()));
    let pdfium = pdfium_render::prelude::Pdfium::new(bindings);
    move |bytes: &[u8]| {
        let doc = pdfium
            .load_pdf_from_byte_slice(bytes, None)
            .map_err(|e| e.to_string())?;
        doc.pages()
            .iter()
            .map(|p| p.text().map(|t| t.all()).map_err(|e| e.to_string()))
            .collect()
    }
}

enum Outcome {
    Pages(Pages, f64),
    Error(String),
    Panic(String),
}

fn run(f: &dyn Fn(&[u8]) -> Result<Pages, String>, bytes: &[u8]) -> Outcome {
    let mut best = f64::MAX;
    let mut last = None;
    for _ in 0..3 {
        let t = Instant::now();
        let r = catch_unwind(AssertUnwindSafe(|| f(bytes)));
        let ms = t.elapsed().as_secs_f64() * 1000.0;
        match r {
            Err(p) => {
                let msg = p
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                return Outcome::Panic(msg);
            }
            Ok(Err(e)) => return Outcome::Error(e),
            Ok(Ok(pages)) => {
                best = best.min(ms);
                last = Some(pages);
            }
        }
    }
    Outcome::Pages(last.unwrap(), best)
}

fn main() {
    let dir = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/pdf"));
    let verbose = std::env::var_os("VERBOSE").is_some();
    std::panic::set_hook(Box::new(|_| {}));

    let mut extractors: Vec<(&str, Box<dyn Fn(&[u8]) -> Result<Pages, String>>)> = vec![
        ("pdf-extract 0.12.1", Box::new(pdf_extract)),
        ("lopdf 0.47.0", Box::new(lopdf)),
        ("pdf_oxide 0.3.78", Box::new(pdf_oxide)),
    ];
    if let Some(lib) = std::env::var_os("PDFIUM_LIB") {
        extractors.push((
            "pdfium (pdfium-render 0.9.5)",
            Box::new(pdfium(Path::new(&lib))),
        ));
    }

    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("fixtures dir")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "pdf"))
        .collect();
    files.sort();

    let names: Vec<&str> = extractors.iter().map(|(n, _)| *n).collect();
    println!("| file | {} |", names.join(" | "));
    println!("|---|{}", "---|".repeat(names.len()));
    let mut panics = vec![0; names.len()];
    let mut errors = vec![0; names.len()];
    let mut below = vec![0; names.len()];
    let mut ms_sum = vec![0.0; names.len()];
    let mut ms_n = vec![0; names.len()];
    let mut recall_sum = vec![0.0; names.len()];
    let mut text_files = 0;
    for file in &files {
        let bytes = std::fs::read(file).unwrap();
        let known = std::fs::read_to_string(file.with_extension("txt")).unwrap_or_default();
        let has_text = !known.trim().is_empty();
        if has_text {
            text_files += 1;
        }
        let mut cells = vec![];
        for (i, (name, f)) in extractors.iter().enumerate() {
            let cell = match run(f.as_ref(), &bytes) {
                Outcome::Panic(m) => {
                    panics[i] += 1;
                    below[i] += has_text as usize;
                    if verbose {
                        eprintln!("{name} {}: PANIC {m}", file.display());
                    }
                    "**panic**".to_string()
                }
                Outcome::Error(e) => {
                    errors[i] += 1;
                    below[i] += has_text as usize;
                    if verbose {
                        eprintln!("{name} {}: ERROR {e}", file.display());
                    }
                    "**error**".to_string()
                }
                Outcome::Pages(pages, ms) => {
                    ms_sum[i] += ms;
                    ms_n[i] += 1;
                    let all = pages.join("\n");
                    if has_text {
                        let (r, missing) = recall(&known, &all);
                        recall_sum[i] += r;
                        if r < 0.95 {
                            below[i] += 1;
                        }
                        if verbose && r < 1.0 {
                            eprintln!("{name} {}: {:.3} missing {:?}", file.display(), r, missing);
                        }
                        format!("{:.1} % ({:.1} ms)", r * 100.0, ms)
                    } else {
                        let chars = all.chars().filter(|c| !c.is_whitespace()).count();
                        format!("{} pages, {chars} chars ({:.1} ms)", pages.len(), ms)
                    }
                }
            };
            cells.push(cell);
        }
        let name = file.file_name().unwrap().to_string_lossy();
        println!("| {name} | {} |", cells.join(" | "));
    }
    let row = |label: &str, v: Vec<String>| println!("| **{label}** | {} |", v.join(" | "));
    row(
        "mean recall (text files; panic/error = 0)",
        recall_sum
            .iter()
            .map(|r| format!("{:.1} %", r / text_files as f64 * 100.0))
            .collect(),
    );
    row(
        "text files below 95 %",
        below
            .iter()
            .map(|n| format!("{n} of {text_files}"))
            .collect(),
    );
    row("panics", panics.iter().map(|n| n.to_string()).collect());
    row("errors", errors.iter().map(|n| n.to_string()).collect());
    row(
        "mean ms/file (successful runs, best of 3)",
        ms_sum
            .iter()
            .zip(&ms_n)
            .map(|(s, n)| format!("{:.1}", s / (*n).max(1) as f64))
            .collect(),
    );
}
