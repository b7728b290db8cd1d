//! The answer pipeline. `plan` runs once per questionnaire (classify, dependent-question
//! context, duplicates, language); `answer_planned` answers one row (library match, else
//! retrieve → one structured answer call, or an abstention) into a `RowOutcome`, the per-row
//! checkpoint; `assemble` turns outcomes into the filled and the review workbook. Knows
//! nothing about queues.

pub mod answer;
pub mod classify;
pub mod confidence;
pub mod context;
pub mod dedup;
pub mod library;
pub mod plan;
pub mod retrieve;

pub use confidence::Band;
pub use plan::{Plan, PlannedRow};

use crate::kb::{Hit, KnowledgeBase};
use crate::router::config::Task;
use crate::router::{CallRecord, Router};
use crate::workbook::review::{ReviewRow, write_review};
use crate::workbook::{CellRef, CellWrite, QuestionRow, WorkbookError};
use classify::RowKind;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;

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
}

/// Calls made for a row or a job, by task, with tokens.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallTally {
    pub classify: u32,
    pub relevance: u32,
    pub answer: u32,
    /// Embedding calls (not LLM generations).
    pub embed: u32,
    /// Calls that failed on every target.
    pub failed: u32,
    /// Structured-output repair re-prompts.
    pub repairs: u32,
    pub prompt_tokens: u64,
    pub eval_tokens: u64,
}

impl CallTally {
    /// Counts one successful call.
    pub fn add(&mut self, task: Task, record: &CallRecord) {
        match task {
            Task::Classify => self.classify += 1,
            Task::Relevance => self.relevance += 1,
            Task::Answer | Task::Translate => self.answer += 1,
            Task::Embed => self.embed += 1,
        }
        self.repairs += record.repairs;
        self.prompt_tokens += u64::from(record.prompt_tokens);
        self.eval_tokens += u64::from(record.eval_tokens);
    }

    /// LLM generation calls (classify + relevance + answer; embeddings are not counted).
    pub fn llm_calls(&self) -> u32 {
        self.classify + self.relevance + self.answer
    }

    pub fn merge(&mut self, o: &CallTally) {
        self.classify += o.classify;
        self.relevance += o.relevance;
        self.answer += o.answer;
        self.embed += o.embed;
        self.failed += o.failed;
        self.repairs += o.repairs;
        self.prompt_tokens += o.prompt_tokens;
        self.eval_tokens += o.eval_tokens;
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
    /// The worker that wrote the checkpoint (`host:pid:boot-id`; none in-process).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker: Option<String>,
}

/// What the pipeline needs: the router, optionally a knowledge base, and the job's plan.
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
            worker: None,
        }
    }

    /// The outcome of a question row that could not be answered, with the reason.
    pub fn unanswered(q: &QuestionRow, note: String) -> Self {
        Self::new(q, RowKind::Question).failed(note)
    }

    fn failed(mut self, note: String) -> Self {
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
    fn apply(&mut self, q: &QuestionRow, values: Vec<Option<String>>) -> bool {
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

    fn add_note(&mut self, note: impl Into<String>) {
        let note = note.into();
        self.note = Some(match self.note.take() {
            Some(n) => format!("{n}; {note}"),
            None => note,
        });
    }
}

fn source_line(h: &Hit, cited: bool) -> String {
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

/// Answers one planned row: not-a-question and ruled-out rows end at once; then the answer
/// library, then retrieval and one structured answer call, or an abstention when the
/// knowledge base holds nothing close enough. `parent` is the outcome of the question a
/// dependent row hangs on, when it is known. Never panics on bad data: every failure becomes
/// a `Failed` outcome with its reason.
pub async fn answer_planned(
    ctx: &PipelineContext,
    plan: &Plan,
    index: usize,
    parent: Option<&RowOutcome>,
) -> RowOutcome {
    let row = &plan.rows[index];
    let q = &row.question;
    let mut out = RowOutcome::new(q, row.kind);
    if let Some(n) = &row.kind_note {
        out.note = Some(n.clone());
    }
    if row.kind != RowKind::Question {
        out.add_note(format!("classified as {:?}, not answered", row.kind).to_lowercase());
        return out;
    }
    let cfg = &ctx.router.config().answering;
    let mut prompt_ctx = answer::PromptContext {
        parent: None,
        language: (plan.language != context::Language::En).then(|| plan.language.name()),
    };
    if let Some(link) = &row.parent {
        let p = &plan.rows[link.index].question;
        out.parent = Some(format!("{}!{}", p.sheet, p.row));
        let known = parent.and_then(RowOutcome::deciding_answer);
        if let Some(answer) = known
            && context::rules_out(link.condition, answer)
        {
            out.status = RowStatus::NotApplicable;
            out.add_note(format!(
                "not applicable: it applies only if {}!{} is {}, which was answered {answer}",
                p.sheet,
                p.row,
                match link.condition {
                    context::Condition::Yes => "yes",
                    _ => "no",
                }
            ));
            return out;
        }
        prompt_ctx.parent = Some((p.text.clone(), known.map(str::to_string)));
    }
    let Some(kb) = &ctx.kb else {
        return abstain(
            out,
            "no knowledge base was given, so there is no evidence".into(),
        );
    };
    // One embedding call: the question (compared with past questions) and the query with its
    // section (searched). A dependent question ("If yes, describe…") means little alone, so
    // both start with its parent question: that also keeps it from matching a past "If yes,
    // describe…" that followed a different question.
    let parent_text = prompt_ctx.parent.as_ref().map(|(p, _)| p.as_str());
    let own = match parent_text {
        Some(p) => format!("{p} {}", q.text),
        None => q.text.clone(),
    };
    let query = match parent_text {
        Some(p) => format!("{p} {}", retrieve::query_text(q)),
        None => retrieve::query_text(q),
    };
    let texts = if query == own {
        vec![own]
    } else {
        vec![own, query.clone()]
    };
    let vectors = match ctx.router.embed(&texts).await {
        Ok((v, record)) => {
            out.calls.add(Task::Embed, &record);
            v
        }
        Err(e) => return out.failed(format!("embedding the question failed: {e}")),
    };
    let (Some(bare), Some(query_vec)) = (vectors.first(), vectors.last()) else {
        return out.failed("the embedding model returned no vector".into());
    };
    match kb.library_match(bare, cfg.library_threshold) {
        Ok(Some(hit)) => match library::fit(&hit, &q.slots) {
            Ok(fit) => {
                out.apply(q, fit.values);
                out.confidence = confidence::library(fit.similarity, cfg.library_threshold);
                out.band = Some(Band::Library);
                out.status = RowStatus::Answered;
                out.model = "library".into();
                out.sources = vec![format!(
                    "{} ({:.2}) [library match]",
                    fit.source, fit.similarity
                )];
                return out;
            }
            Err(why) => out.add_note(format!("library match not used: {why}")),
        },
        Ok(None) => {}
        Err(e) => return out.failed(format!("library search failed: {e}")),
    }
    let mut evidence = match retrieve::retrieve(kb, &query, query_vec, cfg) {
        Ok(h) => h,
        Err(e) => return out.failed(format!("retrieval failed: {e}")),
    };
    if cfg.relevance_check {
        evidence = retrieve::relevance_check(&ctx.router, q, evidence, &mut out.calls).await;
    }
    if evidence.is_empty() {
        return abstain(
            out,
            format!(
                "insufficient evidence: no knowledge-base record is similar enough to this \
                 question (cosine below {:.2})",
                cfg.min_evidence_score
            ),
        );
    }
    let budget = ctx
        .router
        .config()
        .parameters(Task::Answer)
        .evidence_chars
        .unwrap_or(answer::DEFAULT_EVIDENCE_CHARS);
    let messages = answer::prompt(q, &evidence, budget, &prompt_ctx);
    let schema = answer::answer_schema(&q.slots, evidence.len());
    let (reply, record) = match ctx
        .router
        .chat(Task::Answer, &messages, Some(&schema))
        .await
    {
        Ok(r) => r,
        Err(e) => {
            out.calls.failed += 1;
            return out.failed(e.to_string());
        }
    };
    out.calls.add(Task::Answer, &record);
    out.model = format!("{}:{}", record.provider, record.model);
    let parsed = match answer::parse_reply(&reply.text, &q.slots, &q.text) {
        Ok(v) => v,
        Err(e) => return out.failed(e),
    };
    let cited = parsed.cited.filter(|c| *c < evidence.len());
    let mut order: Vec<usize> = (0..evidence.len()).collect();
    if let Some(c) = cited {
        order.retain(|&i| i != c);
        order.insert(0, c);
    }
    out.sources = order
        .iter()
        .map(|&i| source_line(&evidence[i], Some(i) == cited))
        .collect();
    if parsed.insufficient {
        return abstain(
            out,
            "insufficient evidence: the model found no source that supports an answer".into(),
        );
    }
    let text_answer: Option<String> = q
        .slots
        .iter()
        .zip(&parsed.values)
        .find(|(s, v)| s.kind == crate::workbook::SlotKind::Text && v.is_some())
        .and_then(|(_, v)| v.clone());
    let empty_texts = q
        .slots
        .iter()
        .zip(&parsed.values)
        .filter(|(s, v)| s.kind == crate::workbook::SlotKind::Text && v.is_none())
        .count();
    let all_choices = out.apply(q, parsed.values);
    let source = &evidence[cited.unwrap_or(0)];
    // Agreement: the written explanation against the cited source (one embedding call).
    let mut agreement = None;
    if let (Some(text), Some(source_vec)) = (&text_answer, kb.vector(source.id)) {
        match ctx.router.embed(std::slice::from_ref(text)).await {
            Ok((v, record)) => {
                out.calls.add(Task::Embed, &record);
                agreement = v.first().map(|v| crate::kb::search::cosine(v, &source_vec));
            }
            Err(e) => out.add_note(format!("agreement not measured: {e}")),
        }
    }
    let signals = confidence::Signals {
        source_similarity: source.vector_score,
        cited: cited.is_some(),
        agreement,
        repaired: record.repairs > 0,
        missing_choice: !all_choices,
        missing_text: empty_texts > 0,
    };
    out.confidence = confidence::generated(&signals);
    let band = confidence::band(out.confidence, cfg.review_threshold);
    out.band = Some(band);
    if !all_choices {
        out.add_note("a choice cell got no legal value and was left empty");
    }
    if empty_texts > 0 {
        out.add_note("the explanation was unusable (no words left after cleaning) and left empty");
    }
    if cited.is_none() {
        out.add_note("the model cited no source");
    }
    if let Some(a) = agreement
        && a < 0.3
    {
        out.add_note(format!(
            "the explanation agrees poorly with its source ({a:.2})"
        ));
    }
    out.status = if band == Band::Review || out.values.is_empty() {
        RowStatus::NeedsReview
    } else {
        RowStatus::Answered
    };
    if out.status == RowStatus::NeedsReview && out.note.is_none() {
        out.add_note(format!(
            "confidence {:.2} is below the review threshold {:.2}",
            out.confidence, cfg.review_threshold
        ));
    }
    out
}

/// Ends a row without an answer: choice slots stay empty and the reason goes to the reviewer.
fn abstain(mut out: RowOutcome, why: String) -> RowOutcome {
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
    out
}

/// Answers a whole plan in-process (no Redis): `parallel` groups at a time, where a group is
/// a question and the questions that depend on it (answered in order, so each sees its
/// parent's answer); repeated questions take their answer from the first copy. `progress`
/// gets (done, total) after each row. Outcomes come back in plan order.
pub async fn answer_plan(
    ctx: &PipelineContext,
    plan: &Plan,
    parallel: usize,
    progress: impl Fn(usize, usize),
) -> Vec<RowOutcome> {
    let total = plan.rows.len();
    let groups = plan.groups();
    let mut done = 0;
    let answered: Vec<(usize, RowOutcome)> = futures_util::stream::iter(groups)
        .map(|group| async move {
            let mut outs: Vec<(usize, RowOutcome)> = Vec::with_capacity(group.len());
            for i in group {
                let parent = plan
                    .parent_key(i)
                    .and_then(|p| outs.iter().find(|(j, _)| *j == p).map(|(_, o)| o.clone()));
                let o = answer_planned(ctx, plan, i, parent.as_ref()).await;
                outs.push((i, o));
            }
            futures_util::stream::iter(outs)
        })
        .buffer_unordered(parallel.max(1))
        .flatten()
        .inspect(|_| {
            done += 1;
            progress(done, total);
        })
        .collect()
        .await;
    let mut by_index: HashMap<usize, RowOutcome> = answered.into_iter().collect();
    for (i, row) in plan.rows.iter().enumerate() {
        if let Some(same) = &row.same_as {
            let copy = match by_index.get(&same.index) {
                Some(a) => copy_outcome(plan, i, a),
                None => {
                    RowOutcome::unanswered(&row.question, "its first copy was not answered".into())
                }
            };
            by_index.insert(i, copy);
            done += 1;
            progress(done, total);
        }
    }
    (0..total)
        .map(|i| {
            by_index.remove(&i).unwrap_or_else(|| {
                RowOutcome::unanswered(&plan.rows[i].question, "row was never answered".into())
            })
        })
        .collect()
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
            row: o.row,
            band: o.band.map(|b| b.as_str().to_string()).unwrap_or_default(),
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

/// What a fill did (`fill --json`, the job report).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct FillSummary {
    /// Rows classified as questions.
    pub questions: usize,
    /// Answered without a flag (library and high bands).
    pub answered: usize,
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
            if o.same_as.is_some() {
                s.copies += 1;
            }
            s.calls.merge(&o.calls);
        }
        s.llm_calls = s.calls.llm_calls();
        s.llm_calls_per_question = if s.questions == 0 {
            0.0
        } else {
            f64::from(s.llm_calls) / s.questions as f64
        };
        s
    }
}
