//! What a fill did: counts by status and band, calls and tokens by task and model, rates and
//! where the time went (`FillSummary`, `TimeSplit`), and the review workbook's Summary sheet
//! made from them. Pure arithmetic over outcomes; reads and writes nothing.

use super::classify::RowKind;
use super::{Band, CallTally, ModelUsage, Plan, RowOutcome, RowStatus, RowTimes};
use crate::workbook::review::{ReviewReport, UsageLine};
use serde::{Deserialize, Serialize};

/// Where a job's time went, in seconds. `llm_s`, `embed_s` and `retrieval_s` are summed over
/// rows, and rows run concurrently, so each can exceed `wall_s`; planning's own calls count in
/// `plan_s`, not in them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TimeSplit {
    /// From submission (in-process: from planning) to the end, or to now while running.
    pub wall_s: f64,
    /// Waiting for a worker: submission to planning, plus planning's end to the first row's
    /// start (0 in-process).
    pub queue_s: f64,
    /// Reading and detecting the workbook, and writing the filled and review workbooks.
    pub workbook_s: f64,
    /// Planning, the workbook aside: classification, dependent questions, duplicates.
    pub plan_s: f64,
    /// Rows waiting on chat calls (relevance check, answer), summed over rows.
    pub llm_s: f64,
    /// Rows waiting on embedding calls, summed over rows.
    pub embed_s: f64,
    /// Rows' answer-library matches and knowledge-base retrieval, summed over rows.
    pub retrieval_s: f64,
}

impl TimeSplit {
    /// (label, seconds) for reports, in field order.
    pub fn lines(&self) -> [(&'static str, f64); 7] {
        [
            ("Wall clock", self.wall_s),
            ("Queue wait", self.queue_s),
            ("Workbook (read, detect, write)", self.workbook_s),
            ("Planning", self.plan_s),
            ("LLM calls (summed over rows)", self.llm_s),
            ("Embeddings (summed over rows)", self.embed_s),
            ("Retrieval (summed over rows)", self.retrieval_s),
        ]
    }
}

/// `n` per minute over `ms` milliseconds (at least 1 ms, so a burst still has a rate).
pub fn per_minute(n: u64, ms: u64) -> f64 {
    n as f64 * 60_000.0 / ms.max(1) as f64
}

/// What a fill did (`fill --json`, the job report).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct FillSummary {
    /// Rows classified as questions.
    pub questions: usize,
    /// Answered without a flag (library and high bands).
    pub answered: usize,
    /// Rows whose answer was written into the customer's file.
    #[serde(default)]
    pub written: usize,
    /// Rows with a draft in the review workbook only (not written, not abstained).
    #[serde(default)]
    pub drafted: usize,
    pub library_matches: usize,
    pub needs_review: usize,
    /// Left unanswered for lack of evidence (counted in `needs_review` too).
    pub abstained: usize,
    pub not_applicable: usize,
    /// Repeated questions that took the answer of their first copy.
    pub copies: usize,
    pub failed: usize,
    /// Rows offered as questions that are headers or instructions.
    pub skipped: usize,
    /// Calls by task, plan-time classification included.
    pub calls: CallTally,
    /// LLM generation calls (classify + relevance + answer).
    pub llm_calls: u32,
    /// `llm_calls` / `questions`.
    pub llm_calls_per_question: f64,
    pub duration_s: f64,
    /// Successful calls and tokens per task and model (`provider:model`), planning included.
    #[serde(default)]
    pub calls_by_model: Vec<ModelUsage>,
    /// Successful calls answered by a fallback target.
    #[serde(default)]
    pub fallbacks: u64,
    /// Question rows finished (answered, needing review, not applicable or failed) per
    /// minute, from the first row's start to the last row's end.
    #[serde(default)]
    pub questions_per_minute: f64,
    /// Where the time went (no queue in-process).
    #[serde(default)]
    pub time: TimeSplit,
}

impl FillSummary {
    /// The summary of a plan's outcomes; `plan_calls` are the calls made while planning.
    pub fn of(outcomes: &[RowOutcome], plan_calls: &CallTally) -> Self {
        let mut s = FillSummary {
            calls: plan_calls.clone(),
            ..Default::default()
        };
        for o in outcomes {
            match o.status {
                RowStatus::Answered => s.answered += 1,
                RowStatus::NeedsReview => s.needs_review += 1,
                RowStatus::Failed => s.failed += 1,
                RowStatus::Skipped => s.skipped += 1,
                RowStatus::NotApplicable => s.not_applicable += 1,
            }
            if o.kind == RowKind::Question {
                s.questions += 1;
            }
            if o.band == Some(Band::Library) {
                s.library_matches += 1;
            }
            if o.abstained {
                s.abstained += 1;
            }
            s.written += usize::from(o.written);
            s.drafted += usize::from(o.drafted());
            if o.same_as.is_some() {
                s.copies += 1;
            }
            s.calls.merge(&o.calls);
        }
        s.llm_calls = s.calls.llm_calls();
        s.calls_by_model = s.calls.by_model.clone();
        s.fallbacks = u64::from(s.calls.fallbacks);
        let ms = |f: fn(&RowTimes) -> u64| outcomes.iter().map(|o| f(&o.time)).sum::<u64>();
        s.time.llm_s = ms(|t| t.llm_ms) as f64 / 1000.0;
        s.time.embed_s = ms(|t| t.embed_ms) as f64 / 1000.0;
        s.time.retrieval_s = ms(|t| t.retrieval_ms) as f64 / 1000.0;
        let timed = outcomes.iter().map(|o| o.time).filter(|t| t.started_ms > 0);
        let first = timed.clone().map(|t| t.started_ms).min();
        let last = timed.map(|t| t.started_ms + t.total_ms).max();
        if let (Some(first), Some(last)) = (first, last) {
            let finished = outcomes
                .iter()
                .filter(|o| o.kind == RowKind::Question && o.status != RowStatus::Skipped)
                .count();
            s.questions_per_minute = per_minute(finished as u64, last.saturating_sub(first));
        }
        s.llm_calls_per_question = if s.questions == 0 {
            0.0
        } else {
            f64::from(s.llm_calls) / s.questions as f64
        };
        s
    }

    /// Adds the whole fill's time: `elapsed` since planning began (`duration_s`, `wall_s`) and
    /// the plan's own time.
    pub fn timed(mut self, plan: &Plan, elapsed: std::time::Duration) -> Self {
        self.duration_s = elapsed.as_secs_f64();
        self.time.wall_s = self.duration_s;
        self.time.plan_s = plan.build_ms as f64 / 1000.0;
        self
    }

    /// The job report of the review workbook's Summary sheet.
    pub fn review_report(&self) -> ReviewReport {
        let figures = [
            ("Questions", self.questions as f64),
            ("Answered", self.answered as f64),
            ("Written into the file", self.written as f64),
            ("Drafted for review", self.drafted as f64),
            ("Library matches", self.library_matches as f64),
            ("Needs review", self.needs_review as f64),
            ("Abstained (no evidence)", self.abstained as f64),
            ("Not applicable", self.not_applicable as f64),
            ("Failed", self.failed as f64),
            ("Repeats answered once", self.copies as f64),
            ("Questions per minute", self.questions_per_minute),
            ("LLM calls", f64::from(self.llm_calls)),
            ("Embedding calls", f64::from(self.calls.embed)),
            ("Prompt tokens", self.calls.prompt_tokens as f64),
            ("Output tokens", self.calls.eval_tokens as f64),
            ("Fallbacks", self.fallbacks as f64),
        ];
        ReviewReport {
            figures: figures.map(|(l, v)| (l.to_string(), v)).to_vec(),
            usage: self
                .calls_by_model
                .iter()
                .map(|u| UsageLine {
                    task: u.task.clone(),
                    model: u.model.clone(),
                    calls: u.calls,
                    prompt_tokens: u.prompt_tokens,
                    eval_tokens: u.eval_tokens,
                })
                .collect(),
            time: self.time.lines().map(|(l, v)| (l.to_string(), v)).to_vec(),
            time_note: "Rows run concurrently, so the times summed over rows can exceed the wall \
                        clock. Planning's own calls count in Planning. Times are as of assembly."
                .into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::outcome::tests::question;
    use crate::pipeline::tally::tests::{record, usage};
    use crate::router::config::Task;

    #[test]
    fn fill_summary_sums_row_times_and_rates_questions() {
        let q = question();
        let row = |started_ms, total_ms, llm_ms, status| {
            let mut o = RowOutcome::new(&q, RowKind::Question);
            o.status = status;
            o.time = RowTimes {
                started_ms,
                total_ms,
                llm_ms,
                embed_ms: 10,
                retrieval_ms: 5,
            };
            o.calls
                .add(Task::Answer, &record("stub", "m", (34, 12), llm_ms > 100));
            o
        };
        // Three question rows over 0.5 s (two concurrent), and a header row (not counted).
        let mut header = RowOutcome::new(&q, RowKind::Header);
        header.time.started_ms = 1_000;
        let outcomes = vec![
            row(1_000, 300, 250, RowStatus::Answered),
            row(1_100, 200, 150, RowStatus::NeedsReview),
            row(1_300, 200, 50, RowStatus::Failed),
            header,
        ];
        let mut plan_calls = CallTally::default();
        plan_calls.add(Task::Classify, &record("stub", "m", (100, 3), false));
        let s = FillSummary::of(&outcomes, &plan_calls);
        assert_eq!(s.time.llm_s, 0.45);
        assert_eq!(s.time.embed_s, 0.03);
        assert_eq!(s.time.retrieval_s, 0.015);
        assert_eq!(s.questions_per_minute, 3.0 * 60.0 / 0.5);
        assert_eq!(s.fallbacks, 2);
        assert_eq!(
            s.calls_by_model,
            vec![
                usage("answer", "stub:m", 3, (102, 36)),
                usage("classify", "stub:m", 1, (100, 3)),
            ]
        );
        let report = s.review_report();
        let figure = |label: &str| {
            report
                .figures
                .iter()
                .find(|(l, _)| l == label)
                .map(|(_, v)| *v)
        };
        assert_eq!(figure("Questions"), Some(3.0));
        assert_eq!(figure("Fallbacks"), Some(2.0));
        assert_eq!(figure("Questions per minute"), Some(360.0));
        assert_eq!(report.usage.len(), 2);
        assert_eq!(report.usage[0].calls, 3);
        assert_eq!(
            report.time[4],
            ("LLM calls (summed over rows)".into(), 0.45)
        );
    }
}
