//! One questionnaire filled in-process, without a queue: plan → answer every row → assemble
//! the filled and the review workbook. Reads and writes no files (the caller does) and prints
//! nothing (warnings come back to the caller).

use super::config::AnsweringConfig;
use super::{FillSummary, PipelineContext, Plan, RowOutcome, answer_plan, assemble_with};
use crate::kb::KnowledgeBase;
use crate::router::Router;
use crate::workbook::{Questionnaire, WorkbookError};
use std::sync::Arc;

/// What an in-process fill produced.
pub struct Filled {
    /// The customer's workbook with the written answers patched in.
    pub filled: Vec<u8>,
    /// The review workbook.
    pub review: Vec<u8>,
    /// One outcome per planned row, in plan order.
    pub outcomes: Vec<RowOutcome>,
    pub summary: FillSummary,
    /// What planning warned about (shown to the user).
    pub warnings: Vec<String>,
}

/// Fills `questionnaire` (read from `original`) with `parallel` rows at a time, deciding with
/// `answering`; `progress` gets (done, total) after each row. Answering runs on the async
/// runtime; patching and the review workbook on a blocking thread.
pub async fn fill(
    router: Arc<Router>,
    answering: AnsweringConfig,
    kb: Option<Arc<KnowledgeBase>>,
    original: Vec<u8>,
    questionnaire: &Questionnaire,
    parallel: usize,
    progress: impl Fn(usize, usize),
) -> Result<Filled, WorkbookError> {
    let started = std::time::Instant::now();
    let plan = Plan::build(&router, &answering, questionnaire).await;
    let ctx = PipelineContext::new(router, answering, kb);
    let outcomes = answer_plan(&ctx, &plan, parallel, progress).await;
    let mut summary = FillSummary::of(&outcomes, &plan.calls).timed(&plan, started.elapsed());
    let report = summary.clone();
    let (assembled, outcomes, plan) = tokio::task::spawn_blocking(move || {
        let assembled = assemble_with(&original, &plan, &outcomes, &report);
        (assembled, outcomes, plan)
    })
    .await
    .map_err(|e| WorkbookError::Review(format!("assembling the workbooks crashed: {e}")))?;
    let assembled = assembled?;
    summary.time.workbook_s = assembled.elapsed.as_secs_f64();
    Ok(Filled {
        filled: assembled.filled,
        review: assembled.review,
        outcomes,
        summary,
        warnings: plan.warnings.clone(),
    })
}
