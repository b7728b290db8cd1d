//! The `assemble` step: once every batch has finished, reads the plan and all checkpoints,
//! fails the rows no batch answered, patches the answers into the original workbook and writes
//! the review workbook (on a blocking thread), stores both and sets the job's final phase. Does
//! not answer rows.

use super::{Shared, fail, no_plan, retry};
use crate::pipeline::{self, RowOutcome, RowStatus};
use crate::queue::JobPhase;
use bullmq::Job;

impl Shared {
    pub(super) async fn assemble(&self, job: &Job) -> Result<serde_json::Value, bullmq::Error> {
        let id = job
            .data()
            .get("job")
            .and_then(|j| j.as_str())
            .ok_or_else(|| fail("assemble job without 'job'"))?;
        let plan = self.queue.plan(id).await.map_err(no_plan)?;
        let mut rows = self.queue.rows(id).await.map_err(retry)?;
        let failures: Vec<String> = job
            .get_ignored_children_failures()
            .await
            .unwrap_or_default()
            .into_values()
            .map(|why| {
                if why.contains("stalled more than allowable limit") {
                    format!(
                        "poison batch: it stalled or crashed its worker more than {} time(s), \
                         so it was not run again ({why})",
                        self.max_stalls
                    )
                } else {
                    why
                }
            })
            .collect();
        let mut outcomes: Vec<Option<RowOutcome>> =
            (0..plan.rows.len()).map(|i| rows.remove(&i)).collect();
        // A copy whose first copy was answered but not fanned out (its batch crashed between
        // the two writes) takes the answer now.
        for (i, row) in plan.rows.iter().enumerate() {
            if outcomes[i].is_none()
                && let Some(same) = &row.same_as
                && let Some(first) = &outcomes[same.index]
            {
                let copy = pipeline::copy_outcome(&plan, i, first);
                self.commit(id, i, &copy).await?;
                outcomes[i] = Some(copy);
            }
        }
        // Rows no batch answered become failed rows, checkpointed like any other, so the
        // counters add up to the plan (`rfpq retry` runs them again). After a cancel they
        // stay unanswered: they were not done, and did not fail.
        let cancel = self.queue.cancel_requested(id).await.map_err(retry)?;
        let mut all = Vec::with_capacity(outcomes.len());
        for (i, (o, row)) in outcomes.into_iter().zip(&plan.rows).enumerate() {
            let o = match o {
                Some(o) => o,
                None => {
                    let why = failures
                        .first()
                        .cloned()
                        .unwrap_or_else(|| "row was never answered".into());
                    let o = RowOutcome::unanswered(&row.question, format!("batch failed: {why}"));
                    if !cancel {
                        self.commit(id, i, &o).await?;
                    }
                    o
                }
            };
            all.push(o);
        }
        let outcomes = all;
        let original = self.queue.file(id).await.map_err(|e| fail(e.to_string()))?;
        let failed = outcomes
            .iter()
            .filter(|o| o.status == RowStatus::Failed)
            .count();
        let total = outcomes.len();
        // The job report as it stands, for the review workbook's Summary sheet.
        let summary = self
            .queue
            .status(id)
            .await
            .map_err(retry)?
            .report
            .fill_summary();
        let assembled = tokio::task::spawn_blocking(move || {
            pipeline::assemble_with(&original, &plan, &outcomes, &summary)
        })
        .await
        .map_err(|e| fail(format!("assembly crashed: {e}")))?;
        let assembled =
            assembled.map_err(|e| fail(format!("could not write the filled workbook: {e}")))?;
        let _ = self
            .queue
            .record_time(id, crate::queue::Stage::Workbook, assembled.elapsed)
            .await;
        self.queue
            .store_results(id, &assembled.filled, &assembled.review)
            .await
            .map_err(retry)?;
        let (phase, reason) = if cancel {
            let answered = total - failed;
            (
                JobPhase::Cancelled,
                Some(format!(
                    "cancelled by user; {answered} of {} rows were done before the cancel \
                     (see the partial result)",
                    total
                )),
            )
        } else if failed == 0 {
            (JobPhase::Completed, None)
        } else if failed == total {
            (
                JobPhase::Failed,
                Some(format!(
                    "every row failed: {}",
                    failures
                        .first()
                        .cloned()
                        .unwrap_or_else(|| "see the review workbook".into())
                )),
            )
        } else {
            (
                JobPhase::CompletedWithErrors,
                Some(format!("{failed} row(s) failed; see the review workbook")),
            )
        };
        self.queue
            .set_phase(id, phase, reason.as_deref())
            .await
            .map_err(retry)?;
        tracing::info!(job = id, state = phase.as_str(), "assembled");
        Ok(serde_json::json!({"failed_rows": failed}))
    }
}
