//! Splits extracted text into chunks that respect headings and sentences (text-splitter's
//! Markdown splitter, with overlap), each carrying its heading path, page and byte offsets.
//! Does not read files or embed.

use super::extract::Page;
use super::library::LibraryAnswer;
use super::{Chunk, RecordKind};
use text_splitter::{ChunkConfig, MarkdownSplitter};

/// Chunk size in characters (all-MiniLM-L6-v2 reads at most 256 word pieces, ~1,000 chars).
pub const CHUNK_CHARS: std::ops::Range<usize> = 300..900;
/// Characters shared by neighbouring chunks, so a sentence cut at a boundary is whole in one.
pub const OVERLAP_CHARS: usize = 120;
/// Bumped when chunking changes, so a re-ingest rebuilds chunks instead of reusing them.
pub const CHUNKER_VERSION: u32 = 2;

/// Chunks of a document's pages, in order; `heading` is the path of Markdown headings above
/// each chunk (carried across PDF pages), `start..end` its byte range in its page's text.
pub fn chunk_pages(source: &str, pages: &[Page]) -> Vec<Chunk> {
    let config = ChunkConfig::new(CHUNK_CHARS)
        .with_overlap(OVERLAP_CHARS)
        .expect("overlap is smaller than the chunk size");
    let splitter = MarkdownSplitter::new(config);
    let mut out = Vec::new();
    // (level, title) of the headings in force, carried from page to page.
    let mut path: Vec<(usize, String)> = Vec::new();
    for page in pages {
        let text = page.text.as_str();
        let mut headings: Vec<(usize, usize, &str)> = Vec::new();
        let mut offset = 0;
        for line in text.split_inclusive('\n') {
            let level = line.bytes().take_while(|b| *b == b'#').count();
            if level > 0 && line[level..].starts_with(' ') {
                headings.push((offset, level, line[level..].trim()));
            }
            offset += line.len();
        }
        let mut next_heading = 0;
        for (start, piece) in splitter.chunk_indices(text) {
            // Apply every heading that starts at or before this chunk: each replaces those of
            // its level and deeper.
            while let Some((at, level, title)) = headings.get(next_heading) {
                if *at > start {
                    break;
                }
                path.retain(|(l, _)| l < level);
                path.push((*level, title.to_string()));
                next_heading += 1;
            }
            let heading = (!path.is_empty()).then(|| {
                path.iter()
                    .map(|(_, t)| t.as_str())
                    .collect::<Vec<_>>()
                    .join(" > ")
            });
            out.push(Chunk {
                id: 0,
                kind: RecordKind::Doc,
                source: source.to_string(),
                heading,
                page: page.number,
                start,
                end: start + piece.len(),
                text: piece.to_string(),
                answer: None,
            });
        }
        // Headings after the page's last chunk start still govern the next page.
        for (_, level, title) in &headings[next_heading.min(headings.len())..] {
            path.retain(|(l, _)| l < level);
            path.push((*level, title.to_string()));
        }
    }
    out
}

/// An answer-library record as a chunk: the question and its values as text.
pub fn answer_chunk(source: &str, answer: LibraryAnswer) -> Chunk {
    Chunk {
        id: 0,
        kind: RecordKind::Answer,
        source: source.to_string(),
        heading: answer.section.clone(),
        page: None,
        start: 0,
        end: 0,
        text: answer.display_text(),
        answer: Some(answer),
    }
}

/// The text embedded for a chunk. An answer record embeds its question only, so a new
/// question is compared with past questions; a document chunk embeds its heading path too.
pub fn embedding_text(c: &Chunk) -> String {
    if let Some(a) = &c.answer {
        return a.question.clone();
    }
    match &c.heading {
        Some(h) if !c.text.contains(h.rsplit(" > ").next().unwrap_or(h)) => {
            format!("{h}\n{}", c.text)
        }
        _ => c.text.clone(),
    }
}

/// The text scored lexically (BM25): everything a keyword could match, ids included.
pub fn lexical_text(c: &Chunk) -> String {
    match &c.heading {
        Some(h) => format!("{h}\n{}", c.text),
        None => c.text.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(number: Option<u32>, text: &str) -> Page {
        Page {
            number,
            text: text.to_string(),
        }
    }

    #[test]
    fn chunks_carry_their_heading_path_and_offsets() {
        let text = "# Access control\n\n## MFA\n\n### Do you enforce MFA?\n\nYes. All staff use hardware keys.\n\n## Passwords\n\nMinimum 14 characters.\n";
        let chunks = chunk_pages("a.md", &[page(None, text)]);
        assert!(!chunks.is_empty());
        for c in &chunks {
            assert_eq!(&text[c.start..c.end], c.text);
        }
        let last = chunks.last().unwrap();
        assert!(last.text.contains("14 characters"));
        assert!(
            last.heading
                .as_deref()
                .unwrap()
                .starts_with("Access control"),
            "{:?}",
            last.heading
        );
    }

    #[test]
    fn long_text_overlaps_and_pages_keep_their_numbers() {
        let sentence = "Backups are encrypted and copied to a second region every night. ";
        let body = sentence.repeat(40);
        let pages = [
            page(Some(1), &format!("# 4 Backups\n\n{body}")),
            page(Some(2), &body),
        ];
        let chunks = chunk_pages("p.pdf", &pages);
        assert!(chunks.len() > 4, "{}", chunks.len());
        assert!(
            chunks
                .iter()
                .all(|c| c.text.chars().count() <= CHUNK_CHARS.end)
        );
        let on_two: Vec<_> = chunks.iter().filter(|c| c.page == Some(2)).collect();
        assert!(!on_two.is_empty());
        assert_eq!(
            on_two[0].heading.as_deref(),
            Some("4 Backups"),
            "carried across pages"
        );
        let first_page: Vec<_> = chunks.iter().filter(|c| c.page == Some(1)).collect();
        assert!(
            first_page.windows(2).any(|w| w[1].start < w[0].end),
            "neighbouring chunks overlap"
        );
    }
}
