//! What one row ended as: its status, values, sources, calls and times (`RowOutcome`, the
//! per-row checkpoint), how an abstention and a repeated question's copy are made, and
//! whether its values go into the customer's file. Makes no calls and reads no workbook.

use super::classify::RowKind;
use super::config::WriteDrafts;
use super::{Band, CallTally, Plan, confidence, dedup};
use crate::kb::Hit;
use crate::workbook::{CellRef, QuestionRow};
use serde::{Deserialize, Serialize};
use std::time::Instant;

/// How a row ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RowStatus {
    Answered,
    NeedsReview,
    /// Not a question (header, instruction): reported, not filled.
    Skipped,
    /// A dependent question its parent's answer rules out ("If yes…" after "No").
    NotApplicable,
    Failed,
}

impl RowStatus {
    pub fn label(self) -> &'static str {
        match self {
            RowStatus::Answered => "answered",
            RowStatus::NeedsReview => "needs review",
            RowStatus::Skipped => "skipped",
            RowStatus::NotApplicable => "not applicable",
            RowStatus::Failed => "failed",
        }
    }

    /// The job-status counter this status increments (besides `rows_done`).
    pub fn counter(self) -> &'static str {
        match self {
            RowStatus::Answered => "answered",
            RowStatus::NeedsReview => "needs_review",
            RowStatus::Skipped => "skipped",
            RowStatus::NotApplicable => "not_applicable",
            RowStatus::Failed => "rows_failed",
        }
    }

    /// The `outcome` label of `rfpq_rows_total` (the status's wire name).
    pub fn metric_label(self) -> &'static str {
        match self {
            RowStatus::Answered => "answered",
            RowStatus::NeedsReview => "needs_review",
            RowStatus::Skipped => "skipped",
            RowStatus::NotApplicable => "not_applicable",
            RowStatus::Failed => "failed",
        }
    }
}

/// Where one row's time went, measured while answering it (milliseconds). Copies of a
/// repeated question and rows checkpointed before this existed have zeros.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RowTimes {
    /// When answering the row began (Unix ms; 0: not measured).
    pub started_ms: u64,
    /// The whole row, from start to outcome.
    pub total_ms: u64,
    /// Waiting on chat calls (relevance check, answer), failed calls included.
    pub llm_ms: u64,
    /// Waiting on embedding calls (the question, the agreement check).
    pub embed_ms: u64,
    /// The answer-library match and knowledge-base retrieval.
    pub retrieval_ms: u64,
}

pub(super) fn ms_since(t: Instant) -> u64 {
    t.elapsed().as_millis() as u64
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
    /// The value of each answer slot, in slot order (`None`: left empty).
    #[serde(default)]
    pub slot_values: Vec<Option<String>>,
    /// The answer per answered slot as the reviewer reads it (a mark slot's chosen label).
    #[serde(default)]
    pub answers: Vec<String>,
    pub confidence: f32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub band: Option<Band>,
    /// The row was not answered for lack of evidence (its choice slots stay empty).
    #[serde(default)]
    pub abstained: bool,
    /// Sources, cited first: "file › heading (0.71)".
    pub sources: Vec<String>,
    pub model: String,
    pub status: RowStatus,
    /// Why the row failed, needs review or was not answered.
    pub note: Option<String>,
    /// For a repeated question: "Sheet!row" of the row whose answer it takes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub same_as: Option<String>,
    /// For a dependent question: "Sheet!row" of the question it depends on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    #[serde(default)]
    pub calls: CallTally,
    /// Where the row's time went.
    #[serde(default)]
    pub time: RowTimes,
    /// The worker that wrote the checkpoint (`host:pid:boot-id`; none in-process).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker: Option<String>,
    /// The row's values go into the customer's file (a trusted answer, or any draft under
    /// `write_drafts: cells`); otherwise they are a draft in the review workbook only.
    #[serde(default)]
    pub written: bool,
    /// The knowledge-base version the row was answered from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kb_version: Option<String>,
    /// The hash of the configuration that answered the row (`config::config_hash`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_hash: Option<String>,
    /// What a generated answer's confidence was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signals: Option<confidence::Signals>,
}

impl RowOutcome {
    pub(super) fn new(q: &QuestionRow, kind: RowKind) -> Self {
        Self {
            sheet: q.sheet.clone(),
            row: q.row,
            id: q.id.clone(),
            question: q.text.clone(),
            kind,
            values: vec![],
            slot_values: vec![None; q.slots.len()],
            answers: vec![],
            confidence: 0.0,
            band: None,
            abstained: false,
            sources: vec![],
            model: String::new(),
            status: RowStatus::Skipped,
            note: None,
            same_as: None,
            parent: None,
            calls: CallTally::default(),
            time: RowTimes::default(),
            worker: None,
            written: false,
            kb_version: None,
            config_hash: None,
            signals: None,
        }
    }

    /// A trusted answer: from the answer library or in the `high` band, not flagged.
    pub fn trusted(&self) -> bool {
        self.status == RowStatus::Answered
            && matches!(self.band, Some(Band::Library) | Some(Band::High))
    }

    /// A draft with at least one value that is not written into the customer's file.
    pub fn drafted(&self) -> bool {
        !self.written && !self.abstained && !self.values.is_empty()
    }

    /// Whether a copy can keep its first copy's `written`: it has values and, unless its
    /// first copy was written as a draft (`write_drafts: cells`), it is still trusted.
    pub(super) fn trusted_or_drafts_written(&self, first: &RowOutcome) -> bool {
        !self.values.is_empty() && (self.trusted() || !first.trusted())
    }

    /// Decides whether the row's values go into the customer's file under `policy`.
    pub fn decide_written(&mut self, policy: WriteDrafts) {
        self.written = !self.values.is_empty()
            && match policy {
                WriteDrafts::ReviewOnly => self.trusted(),
                WriteDrafts::Cells => {
                    matches!(self.status, RowStatus::Answered | RowStatus::NeedsReview)
                }
            };
    }

    /// The outcome of a question row that could not be answered, with the reason.
    pub fn unanswered(q: &QuestionRow, note: String) -> Self {
        Self::new(q, RowKind::Question).failed(note)
    }

    pub(super) fn failed(mut self, note: String) -> Self {
        self.status = RowStatus::Failed;
        self.note = Some(note);
        self.band = None;
        self
    }

    /// "Sheet!row".
    pub fn location(&self) -> String {
        format!("{}!{}", self.sheet, self.row)
    }

    /// Puts one value per slot into the row; returns whether every choice slot got a legal
    /// value.
    pub(super) fn apply(&mut self, q: &QuestionRow, values: Vec<Option<String>>) -> bool {
        let mut all_choices = true;
        self.values.clear();
        self.answers.clear();
        for (slot, value) in q.slots.iter().zip(&values) {
            match value {
                // The slot decides which cells get what (an X-matrix marks one cell of its group).
                Some(value) => {
                    let writes = slot.writes_for(&q.sheet, value);
                    if writes.is_empty() && slot.is_choice() {
                        all_choices = false;
                    }
                    self.values.extend(writes.into_iter().map(|w| SlotValue {
                        cell: w.cell,
                        value: w.value,
                    }));
                    self.answers.push(value.clone());
                }
                None if slot.is_choice() => all_choices = false,
                None => {}
            }
        }
        self.slot_values = values;
        self.slot_values.resize(q.slots.len(), None);
        all_choices
    }

    /// The answer a dependent question hangs on: the first choice value, else the first value.
    pub fn deciding_answer(&self) -> Option<&str> {
        self.slot_values.iter().flatten().next().map(String::as_str)
    }

    pub(super) fn add_note(&mut self, note: impl Into<String>) {
        let note = note.into();
        self.note = Some(match self.note.take() {
            Some(n) => format!("{n}; {note}"),
            None => note,
        });
    }
}

pub(super) fn source_line(h: &Hit, cited: bool) -> String {
    let mut s = h.source.clone();
    if let Some(head) = &h.heading {
        s.push_str(&format!(" › {head}"));
    }
    if let Some(p) = h.page {
        s.push_str(&format!(" p.{p}"));
    }
    s.push_str(&format!(" ({:.2})", h.vector_score));
    if cited {
        s.push_str(" [cited]");
    }
    s
}

/// Ends a row without an answer: choice slots stay empty and the reason goes to the reviewer.
pub(super) fn abstain(mut out: RowOutcome, why: String) -> RowOutcome {
    out.values.clear();
    out.answers.clear();
    out.slot_values = vec![None; out.slot_values.len()];
    out.abstained = true;
    out.confidence = 0.0;
    out.band = Some(Band::Review);
    out.status = RowStatus::NeedsReview;
    out.add_note(why);
    out
}

/// The outcome of a repeated question from the outcome of the row answered for it: the same
/// answer mapped onto this row's own slots, with this row's own place and provenance.
pub fn copy_outcome(plan: &Plan, index: usize, answered: &RowOutcome) -> RowOutcome {
    let row = &plan.rows[index];
    let q = &row.question;
    let mut out = RowOutcome::new(q, answered.kind);
    out.same_as = Some(answered.location());
    out.confidence = answered.confidence;
    out.band = answered.band;
    out.abstained = answered.abstained;
    out.sources = answered.sources.clone();
    out.model = answered.model.clone();
    out.status = answered.status;
    out.note = answered.note.clone();
    let how = row
        .same_as
        .as_ref()
        .map(|s| s.how.as_str())
        .unwrap_or("same question");
    let values = dedup::map_values(&answered.slot_values, &q.slots);
    let filled = values.iter().flatten().count();
    let all_choices = out.apply(q, values);
    if answered.status == RowStatus::Answered && (!all_choices || filled == 0) {
        out.status = RowStatus::NeedsReview;
        out.band = Some(Band::Review);
        out.add_note("the answer does not fit this copy's answer cells");
    }
    out.add_note(format!("answered once for {} ({how})", answered.location()));
    // The first copy's decision, unless this copy's own cells could not take the answer.
    out.written = answered.written && out.trusted_or_drafts_written(answered);
    out.kb_version = answered.kb_version.clone();
    out.config_hash = answered.config_hash.clone();
    out
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::pipeline::tally::tests::record;
    use crate::router::config::Task;

    pub(in crate::pipeline) fn question() -> QuestionRow {
        QuestionRow {
            sheet: "S".into(),
            row: 2,
            id: None,
            text: "Is data encrypted?".into(),
            section: None,
            slots: vec![],
        }
    }

    #[test]
    fn row_metric_labels_are_the_wire_names() {
        for status in [
            RowStatus::Answered,
            RowStatus::NeedsReview,
            RowStatus::Skipped,
            RowStatus::NotApplicable,
            RowStatus::Failed,
        ] {
            let wire = serde_json::to_value(status).unwrap();
            assert_eq!(wire.as_str(), Some(status.metric_label()));
        }
        assert_eq!(RowStatus::NeedsReview.metric_label(), "needs_review");
        assert_eq!(RowStatus::NotApplicable.metric_label(), "not_applicable");
        assert_eq!(RowStatus::Failed.metric_label(), "failed");
    }

    #[test]
    fn old_checkpoints_load_without_usage_or_times() {
        let mut o = RowOutcome::new(&question(), RowKind::Question);
        o.calls
            .add(Task::Answer, &record("stub", "m", (1, 1), false));
        o.time.llm_ms = 7;
        let mut json: serde_json::Value = serde_json::to_value(&o).unwrap();
        let back: RowOutcome = serde_json::from_value(json.clone()).unwrap();
        assert_eq!((back.calls, back.time), (o.calls.clone(), o.time));
        json.as_object_mut().unwrap().remove("time");
        for k in ["fallbacks", "by_model"] {
            json["calls"].as_object_mut().unwrap().remove(k);
        }
        let old: RowOutcome = serde_json::from_value(json).unwrap();
        assert_eq!(old.time, RowTimes::default());
        assert!(old.calls.by_model.is_empty());
        assert_eq!(old.calls.answer, 1);
    }
}
