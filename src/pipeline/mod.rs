//! The answer pipeline for one question row: classify → retrieve → answer, producing a
//! `RowOutcome` (the per-row checkpoint), and the assembly of outcomes into the filled
//! workbook and the review workbook. Knows nothing about queues.

pub mod answer;
pub mod classify;
pub mod retrieve;

use crate::kb::KnowledgeBase;
use crate::router::Router;
use crate::router::config::Task;
use crate::workbook::review::{ReviewRow, write_review};
use crate::workbook::{CellRef, CellWrite, QuestionRow, WorkbookError};
use classify::RowKind;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Below this confidence a row is flagged for human review.
pub const REVIEW_THRESHOLD: f32 = 0.55;

/// How a row ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RowStatus {
    Answered,
    NeedsReview,
    /// Not a question (header, instruction): reported, not filled.
    Skipped,
    Failed,
}

impl RowStatus {
    pub fn label(self) -> &'static str {
        match self {
            RowStatus::Answered => "answered",
            RowStatus::NeedsReview => "needs review",
            RowStatus::Skipped => "skipped",
            RowStatus::Failed => "failed",
        }
    }
}

/// One value for one answer cell.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SlotValue {
    pub cell: CellRef,
    pub value: String,
}

/// The result for one question row: what the worker checkpoints, exactly once per row.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RowOutcome {
    pub sheet: String,
    pub row: u32,
    pub id: Option<String>,
    pub question: String,
    pub kind: RowKind,
    /// Cell writes; a mark slot's answer is an "X" in the chosen column.
    pub values: Vec<SlotValue>,
    /// The answer per answered slot as the reviewer reads it (a mark slot's chosen label).
    #[serde(default)]
    pub answers: Vec<String>,
    pub confidence: f32,
    pub sources: Vec<String>,
    pub model: String,
    pub status: RowStatus,
    /// Why the row failed or needs review.
    pub note: Option<String>,
    pub llm_calls: u32,
    pub prompt_tokens: u32,
    pub eval_tokens: u32,
}

/// What the pipeline needs: the router and, optionally, a knowledge base.
#[derive(Clone)]
pub struct PipelineContext {
    pub router: Arc<Router>,
    pub kb: Option<Arc<KnowledgeBase>>,
}

impl RowOutcome {
    fn new(q: &QuestionRow, kind: RowKind) -> Self {
        Self {
            sheet: q.sheet.clone(),
            row: q.row,
            id: q.id.clone(),
            question: q.text.clone(),
            kind,
            values: vec![],
            answers: vec![],
            confidence: 0.0,
            sources: vec![],
            model: String::new(),
            status: RowStatus::Skipped,
            note: None,
            llm_calls: 0,
            prompt_tokens: 0,
            eval_tokens: 0,
        }
    }

    /// The outcome of a question row that could not be answered, with the reason.
    pub fn unanswered(q: &QuestionRow, note: String) -> Self {
        Self::new(q, RowKind::Question).failed(note)
    }

    fn failed(mut self, note: String) -> Self {
        self.status = RowStatus::Failed;
        self.note = Some(note);
        self
    }
}

/// Runs classify → retrieve → answer for one question row. Never panics on bad data:
/// every failure becomes a `Failed` outcome with its reason.
pub async fn answer_row(ctx: &PipelineContext, q: &QuestionRow) -> RowOutcome {
    let kind = classify::classify(q);
    let mut out = RowOutcome::new(q, kind);
    if kind != RowKind::Question {
        out.note = Some(format!("classified as {kind:?}, not answered"));
        return out;
    }
    let evidence = match &ctx.kb {
        Some(kb) => match retrieve::retrieve(kb, &ctx.router, q).await {
            Ok(hits) => hits,
            Err(e) => return out.failed(format!("retrieval failed: {e}")),
        },
        None => vec![],
    };
    let schema = answer::answer_schema(&q.slots);
    let budget = ctx
        .router
        .config()
        .parameters(Task::Answer)
        .evidence_chars
        .unwrap_or(answer::DEFAULT_EVIDENCE_CHARS);
    let messages = answer::prompt(q, &evidence, budget);
    let (reply, record) = match ctx
        .router
        .chat(Task::Answer, &messages, Some(&schema))
        .await
    {
        Ok(r) => r,
        Err(e) => return out.failed(e.to_string()),
    };
    out.llm_calls = 1;
    out.model = format!("{}:{}", record.provider, record.model);
    out.prompt_tokens = record.prompt_tokens;
    out.eval_tokens = record.eval_tokens;
    let values = match answer::parse_reply(&reply.text, &q.slots) {
        Ok(v) => v,
        Err(e) => return out.failed(e),
    };
    let mut notes = Vec::new();
    let mut all_choices_legal = true;
    for (slot, value) in q.slots.iter().zip(values) {
        match value {
            // The slot decides which cells get what (an X-matrix marks one cell of its group).
            Some(value) => {
                out.values
                    .extend(
                        slot.writes_for(&q.sheet, &value)
                            .into_iter()
                            .map(|w| SlotValue {
                                cell: w.cell,
                                value: w.value,
                            }),
                    );
                out.answers.push(value);
            }
            None if slot.is_choice() => {
                all_choices_legal = false;
                notes.push(format!(
                    "{}: no legal value chosen, left empty",
                    slot.header
                ));
            }
            None => {}
        }
    }
    out.sources = evidence
        .iter()
        .map(|h| match &h.heading {
            Some(head) => format!("{} › {} ({:.2})", h.source, head, h.score),
            None => format!("{} ({:.2})", h.source, h.score),
        })
        .collect();
    let top = evidence.first().map(|h| h.score).unwrap_or(0.0);
    out.confidence = if evidence.is_empty() {
        0.2
    } else {
        top.clamp(0.0, 1.0)
    };
    if !all_choices_legal {
        out.confidence *= 0.5;
    }
    if evidence.is_empty() {
        notes.push("no evidence found in the knowledge base".into());
    }
    out.status = if out.confidence >= REVIEW_THRESHOLD && !out.values.is_empty() {
        RowStatus::Answered
    } else {
        RowStatus::NeedsReview
    };
    if !notes.is_empty() {
        out.note = Some(notes.join("; "));
    }
    out
}

/// The two files a finished job produces.
pub struct Assembled {
    pub filled: Vec<u8>,
    pub review: Vec<u8>,
}

/// Patches every outcome's values into the original package and writes the review workbook.
pub fn assemble(original: &[u8], outcomes: &[RowOutcome]) -> Result<Assembled, WorkbookError> {
    let writes: Vec<CellWrite> = outcomes
        .iter()
        .flat_map(|o| {
            o.values.iter().map(|v| CellWrite {
                sheet: o.sheet.clone(),
                cell: v.cell,
                value: v.value.clone(),
            })
        })
        .collect();
    let filled = crate::workbook::patch::patch(original, &writes)?;
    let rows: Vec<ReviewRow> = outcomes
        .iter()
        .filter(|o| o.kind == RowKind::Question)
        .map(|o| ReviewRow {
            sheet: o.sheet.clone(),
            cells: o
                .values
                .iter()
                .map(|v| v.cell.to_string())
                .collect::<Vec<_>>()
                .join(", "),
            id: o.id.clone(),
            question: o.question.clone(),
            answers: o.answers.join(" | "),
            confidence: o.confidence,
            sources: o.sources.clone(),
            model: o.model.clone(),
            status: o.status.label().to_string(),
            note: o.note.clone(),
        })
        .collect();
    let review = write_review(&rows)?;
    Ok(Assembled { filled, review })
}

/// Counts over a set of outcomes (job report, `fill --json`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct FillSummary {
    pub questions: usize,
    pub answered: usize,
    pub needs_review: usize,
    pub failed: usize,
    pub skipped: usize,
    pub llm_calls: u32,
    pub prompt_tokens: u64,
    pub eval_tokens: u64,
}

impl FillSummary {
    pub fn of(outcomes: &[RowOutcome]) -> Self {
        let mut s = FillSummary::default();
        for o in outcomes {
            match o.status {
                RowStatus::Answered => s.answered += 1,
                RowStatus::NeedsReview => s.needs_review += 1,
                RowStatus::Failed => s.failed += 1,
                RowStatus::Skipped => s.skipped += 1,
            }
            if o.kind == RowKind::Question {
                s.questions += 1;
            }
            s.llm_calls += o.llm_calls;
            s.prompt_tokens += u64::from(o.prompt_tokens);
            s.eval_tokens += u64::from(o.eval_tokens);
        }
        s
    }
}

/// Answers every question in-process (no Redis), `parallel` rows at a time, in row order.
/// `progress` is called after each row with (done, total).
pub async fn answer_all(
    ctx: &PipelineContext,
    questions: &[QuestionRow],
    parallel: usize,
    progress: impl Fn(usize, usize),
) -> Vec<RowOutcome> {
    let total = questions.len();
    let mut done = 0;
    let mut results: Vec<(usize, RowOutcome)> =
        futures_util::stream::iter(questions.iter().enumerate())
            .map(|(i, q)| async move { (i, answer_row(ctx, q).await) })
            .buffer_unordered(parallel.max(1))
            .inspect(|_| {
                done += 1;
                progress(done, total);
            })
            .collect()
            .await;
    results.sort_by_key(|(i, _)| *i);
    results.into_iter().map(|(_, o)| o).collect()
}
