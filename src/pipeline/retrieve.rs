//! Finds evidence for a question in the knowledge base: top chunks above a score floor, capped.
//! Does not call an LLM to judge relevance (the score floor does that job here).

use crate::kb::{Hit, KbError, KnowledgeBase};
use crate::router::Router;
use crate::workbook::QuestionRow;

/// At most this many sources are shown to the model and cited.
pub const MAX_SOURCES: usize = 3;
/// Chunks below this cosine similarity are not evidence.
pub const MIN_SCORE: f32 = 0.30;

/// The query text embedded for a question: section context, then the question.
pub fn query_text(q: &QuestionRow) -> String {
    match &q.section {
        Some(s) if !s.is_empty() => format!("{s}: {}", q.text),
        _ => q.text.clone(),
    }
}

/// Evidence for one question, best first.
pub async fn retrieve(
    kb: &KnowledgeBase,
    router: &Router,
    q: &QuestionRow,
) -> Result<Vec<Hit>, KbError> {
    let hits = kb.search(router, &query_text(q), MAX_SOURCES * 2).await?;
    Ok(hits
        .into_iter()
        .filter(|h| h.score >= MIN_SCORE)
        .take(MAX_SOURCES)
        .collect())
}
