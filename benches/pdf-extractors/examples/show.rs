//! Prints what pdf_oxide extracts from one PDF, page by page (for eyeballing line structure).
fn main() {
    let path = std::env::args().nth(1).expect("pdf path");
    let doc = pdf_oxide::PdfDocument::from_bytes(std::fs::read(path).unwrap()).unwrap();
    let _ = doc.authenticate(b"");
    for i in 0..doc.page_count().unwrap() {
        println!("=== page {}\n{}", i + 1, doc.extract_text(i).unwrap());
    }
}
