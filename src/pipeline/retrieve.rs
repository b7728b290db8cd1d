//! Finds evidence for a question in the knowledge base: hybrid search (vectors + keywords,
//! answer library first), capped, dropping records whose cosine similarity is below a floor.
//! Does not call an LLM to judge relevance (the floor does that job here).

use crate::kb::{Hit, KbError, KnowledgeBase};
use crate::router::Router;
use crate::workbook::QuestionRow;

/// At most this many sources are shown to the model and cited.
pub const MAX_SOURCES: usize = 3;
/// Records below this cosine similarity are not evidence (a keyword hit alone is not enough).
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
        .filter(|h| h.vector_score >= MIN_SCORE)
        .take(MAX_SOURCES)
        .collect())
}
