//! The answer pipeline. `plan` runs once per questionnaire (classify, dependent-question
//! context, duplicates, language); `answer_planned` answers one row (library match, else
//! retrieve → one structured answer call, or an abstention) into a `RowOutcome`, the per-row
//! checkpoint; `assemble` turns outcomes into the filled and the review workbook. Knows
//! nothing about queues.

pub mod answer;
pub mod apply;
pub mod classify;
pub mod confidence;
pub mod config;
pub mod context;
pub mod decide;
pub mod dedup;
pub mod library;
pub mod plan;
pub mod retrieve;
pub mod run;
pub mod support;

pub use confidence::Band;
pub use plan::{Plan, PlannedRow};

use crate::kb::{Hit, KnowledgeBase};
use crate::router::config::Task;
use crate::router::{CallRecord, Router};
use crate::workbook::review::{
    ReviewReport, ReviewRow, ReviewSlot, UsageLine, write_review_report,
};
use crate::workbook::{CellRef, CellWrite, QuestionRow, WorkbookError};
use classify::RowKind;
use config::{AnsweringConfig, WriteDrafts};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;
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
}

/// Calls made for a row or a job, by task, with tokens; also by task and model.
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
    /// Successful calls answered by a fallback target (not the task's first).
    #[serde(default)]
    pub fallbacks: u32,
    /// Successful calls and their tokens per (task, `provider:model`), sorted by task then
    /// model.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub by_model: Vec<ModelUsage>,
}

/// Calls and tokens of one task on one model.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelUsage {
    /// `classify`, `relevance`, `answer`, `translate` or `embed`.
    pub task: String,
    /// The target that answered, `provider:model`.
    pub model: String,
    pub calls: u64,
    pub prompt_tokens: u64,
    /// Generated tokens (0 for embeddings).
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
        self.fallbacks += u32::from(record.fallback_used);
        let usage = self.usage_mut(
            task.as_str(),
            &format!("{}:{}", record.provider, record.model),
        );
        usage.calls += 1;
        usage.prompt_tokens += u64::from(record.prompt_tokens);
        usage.eval_tokens += u64::from(record.eval_tokens);
    }

    /// The usage line of `task` on `model`, added (in sorted place) when new.
    fn usage_mut(&mut self, task: &str, model: &str) -> &mut ModelUsage {
        let at = match self
            .by_model
            .binary_search_by(|u| (u.task.as_str(), u.model.as_str()).cmp(&(task, model)))
        {
            Ok(i) => i,
            Err(i) => {
                self.by_model.insert(
                    i,
                    ModelUsage {
                        task: task.into(),
                        model: model.into(),
                        ..Default::default()
                    },
                );
                i
            }
        };
        &mut self.by_model[at]
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
        self.fallbacks += o.fallbacks;
        for u in &o.by_model {
            let mine = self.usage_mut(&u.task, &u.model);
            mine.calls += u.calls;
            mine.prompt_tokens += u.prompt_tokens;
            mine.eval_tokens += u.eval_tokens;
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

fn ms_since(t: Instant) -> u64 {
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

/// What the pipeline needs: the router, its `answering:` settings, optionally a knowledge
/// base, and embeddings computed ahead for the rows it will answer.
#[derive(Clone)]
pub struct PipelineContext {
    pub router: Arc<Router>,
    /// The thresholds and source caps rows are answered with.
    pub answering: Arc<AnsweringConfig>,
    /// [`config::config_hash`] of the router's configuration and `answering`, recorded with
    /// every row ([`PipelineContext::new`] computes it).
    pub config_hash: Arc<str>,
    pub kb: Option<Arc<KnowledgeBase>>,
    /// Embeddings by text from [`prefetch_embeddings`]: a row whose texts are all here makes no
    /// embedding call of its own.
    pub prefetched: Arc<HashMap<String, Vec<f32>>>,
    /// Embeddings of evidence sentences already computed for earlier rows (rows of one
    /// questionnaire retrieve the same passages again and again).
    pub sentence_vectors: Arc<std::sync::Mutex<HashMap<String, Vec<f32>>>>,
}

impl PipelineContext {
    /// A context without prefetched embeddings (each row embeds its own texts).
    pub fn new(
        router: Arc<Router>,
        answering: impl Into<Arc<AnsweringConfig>>,
        kb: Option<Arc<KnowledgeBase>>,
    ) -> Self {
        let answering = answering.into();
        Self {
            config_hash: config::config_hash(router.config(), &answering).into(),
            router,
            answering,
            kb,
            prefetched: Arc::default(),
            sentence_vectors: Arc::default(),
        }
    }
}

/// Texts per embedding call when prefetching (the model's batch; the plan uses the same).
pub const EMBED_BATCH: usize = 64;

/// The texts row `index` embeds: its question (compared with past questions in the answer
/// library) and, when different, its retrieval query (the question with its section). A
/// dependent question ("If yes, describe…") means little alone, so both start with its parent
/// question: that also keeps it from matching a past "If yes, describe…" that followed a
/// different question.
pub fn embedding_texts(plan: &Plan, index: usize) -> Vec<String> {
    let row = &plan.rows[index];
    let q = &row.question;
    let parent = row
        .parent
        .as_ref()
        .map(|link| plan.rows[link.index].question.text.as_str());
    let own = match parent {
        Some(p) => format!("{p} {}", q.text),
        None => q.text.clone(),
    };
    let query = match parent {
        Some(p) => format!("{p} {}", retrieve::query_text(q)),
        None => retrieve::query_text(q),
    };
    if query == own {
        vec![own]
    } else {
        vec![own, query]
    }
}

/// Embeddings computed ahead for several rows, with what computing them cost.
#[derive(Debug, Default)]
pub struct Prefetched {
    pub vectors: HashMap<String, Vec<f32>>,
    /// The embedding calls made.
    pub calls: CallTally,
    /// Time spent waiting on them (milliseconds).
    pub embed_ms: u64,
}

/// Embeds the texts of the question rows among `rows` in calls of up to [`EMBED_BATCH`]
/// texts, instead of one call per row. A failed call is only logged: its rows then embed
/// their own texts, and fail there with the reason if the model is really down.
pub async fn prefetch_embeddings(
    router: &Router,
    plan: &Plan,
    rows: impl IntoIterator<Item = usize>,
) -> Prefetched {
    let mut texts: Vec<String> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for i in rows {
        if plan.rows[i].kind != RowKind::Question || plan.rows[i].same_as.is_some() {
            continue;
        }
        for t in embedding_texts(plan, i) {
            if seen.insert(t.clone()) {
                texts.push(t);
            }
        }
    }
    let mut out = Prefetched::default();
    for chunk in texts.chunks(EMBED_BATCH) {
        let t = Instant::now();
        let embedded = router.embed(chunk).await;
        out.embed_ms += ms_since(t);
        match embedded {
            Ok((v, record)) if v.len() == chunk.len() => {
                out.calls.add(Task::Embed, &record);
                out.vectors.extend(chunk.iter().cloned().zip(v));
            }
            Ok((v, _)) => tracing::warn!(
                texts = chunk.len(),
                vectors = v.len(),
                "prefetching embeddings: wrong number of vectors; rows embed on their own"
            ),
            Err(e) => tracing::warn!(
                error = %e,
                "prefetching embeddings failed; rows embed on their own"
            ),
        }
    }
    out
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
    fn trusted_or_drafts_written(&self, first: &RowOutcome) -> bool {
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
/// a `Failed` outcome with its reason. `time` says where the row's time went.
pub async fn answer_planned(
    ctx: &PipelineContext,
    plan: &Plan,
    index: usize,
    parent: Option<&RowOutcome>,
) -> RowOutcome {
    let started_ms = crate::now_ms();
    let started = Instant::now();
    let mut out = answer_row(ctx, plan, index, parent).await;
    out.decide_written(plan.write_drafts.unwrap_or(ctx.answering.write_drafts));
    out.time.started_ms = started_ms;
    out.time.total_ms = ms_since(started);
    out
}

/// [`answer_planned`] without the row's start and total time.
async fn answer_row(
    ctx: &PipelineContext,
    plan: &Plan,
    index: usize,
    parent: Option<&RowOutcome>,
) -> RowOutcome {
    let row = &plan.rows[index];
    let q = &row.question;
    let mut out = RowOutcome::new(q, row.kind);
    out.config_hash = Some(ctx.config_hash.to_string());
    out.kb_version = ctx.kb.as_ref().map(|kb| kb.version().to_string());
    if let Some(n) = &row.kind_note {
        out.note = Some(n.clone());
    }
    if row.kind != RowKind::Question {
        out.add_note(format!("classified as {:?}, not answered", row.kind).to_lowercase());
        return out;
    }
    let cfg = ctx.answering.as_ref();
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
    // The question (compared with past questions) and the query with its section (searched),
    // embedded ahead for the batch or in one call here.
    let texts = embedding_texts(plan, index);
    let query = texts.last().cloned().unwrap_or_default();
    let ahead: Option<Vec<Vec<f32>>> = texts
        .iter()
        .map(|t| ctx.prefetched.get(t).cloned())
        .collect();
    let vectors = match ahead {
        Some(v) => v,
        None => {
            let t = Instant::now();
            let embedded = ctx.router.embed(&texts).await;
            out.time.embed_ms += ms_since(t);
            match embedded {
                Ok((v, record)) => {
                    out.calls.add(Task::Embed, &record);
                    v
                }
                Err(e) => return out.failed(format!("embedding the question failed: {e}")),
            }
        }
    };
    let (Some(bare), Some(query_vec)) = (vectors.first(), vectors.last()) else {
        return out.failed("the embedding model returned no vector".into());
    };
    let t = Instant::now();
    let library_hit = kb.library_match(bare, cfg.library_threshold);
    out.time.retrieval_ms += ms_since(t);
    match library_hit {
        Ok(Some(hit)) => match library::fit(&hit, &q.slots, &q.text) {
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
    let t = Instant::now();
    let retrieved = retrieve::retrieve(kb, &query, query_vec, cfg);
    out.time.retrieval_ms += ms_since(t);
    let mut evidence = match retrieved {
        Ok(h) => h,
        Err(e) => return out.failed(format!("retrieval failed: {e}")),
    };
    if cfg.relevance_check {
        let t = Instant::now();
        evidence = retrieve::relevance_check(&ctx.router, q, evidence, &mut out.calls).await;
        out.time.llm_ms += ms_since(t);
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
    decide::decide(ctx, q, evidence, bare, &prompt_ctx, out).await
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
    // The first copy's decision, unless this copy's own cells could not take the answer.
    out.written = answered.written && out.trusted_or_drafts_written(answered);
    out.kb_version = answered.kb_version.clone();
    out.config_hash = answered.config_hash.clone();
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
    /// How long patching and writing both workbooks took.
    pub elapsed: std::time::Duration,
}

/// Patches every outcome's values into the original package and writes the review workbook,
/// whose Summary sheet reports what the outcomes themselves tell (row calls and times; no
/// planning or queue figures). Callers that know the whole job use [`assemble_with`].
pub fn assemble(original: &[u8], outcomes: &[RowOutcome]) -> Result<Assembled, WorkbookError> {
    assemble_with(
        original,
        outcomes,
        &FillSummary::of(outcomes, &CallTally::default()),
    )
}

/// [`assemble`] with the job's summary (plan-time calls, queue and workbook times) for the
/// review workbook's Summary sheet.
pub fn assemble_with(
    original: &[u8],
    outcomes: &[RowOutcome],
    summary: &FillSummary,
) -> Result<Assembled, WorkbookError> {
    let started = Instant::now();
    let writes: Vec<CellWrite> = outcomes
        .iter()
        .filter(|o| o.written)
        .flat_map(|o| {
            o.values.iter().map(|v| CellWrite {
                sheet: o.sheet.clone(),
                cell: v.cell,
                value: v.value.clone(),
            })
        })
        .collect();
    let filled = crate::workbook::patch::patch(original, &writes)?;
    // The slots (headers, legal values) of every question, for the editable Final columns.
    let questionnaire = crate::workbook::detect(&crate::workbook::read::open(original)?);
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
            written: o.written,
            slots: review_slots(questionnaire.question(&o.sheet, o.row), o),
            kb_version: o.kb_version.clone(),
            config_hash: o.config_hash.clone(),
        })
        .collect();
    let review = write_review_report(&rows, &summary.review_report())?;
    Ok(Assembled {
        filled,
        review,
        elapsed: started.elapsed(),
    })
}

/// The review workbook's slots of a row: header, kind and legal values from the questionnaire,
/// the draft from the outcome (a row the questionnaire does not list gets none).
fn review_slots(q: Option<&QuestionRow>, o: &RowOutcome) -> Vec<ReviewSlot> {
    let Some(q) = q else {
        return Vec::new();
    };
    q.slots
        .iter()
        .enumerate()
        .map(|(i, slot)| ReviewSlot {
            header: slot.header.clone(),
            kind: slot.kind,
            choices: slot.choices.clone(),
            draft: o.slot_values.get(i).cloned().flatten(),
        })
        .collect()
}

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

    fn record(provider: &str, model: &str, tokens: (u32, u32), fallback: bool) -> CallRecord {
        CallRecord {
            provider: provider.into(),
            model: model.into(),
            prompt_tokens: tokens.0,
            eval_tokens: tokens.1,
            fallback_used: fallback,
            ..Default::default()
        }
    }

    fn question() -> QuestionRow {
        QuestionRow {
            sheet: "S".into(),
            row: 2,
            id: None,
            text: "Is data encrypted?".into(),
            section: None,
            slots: vec![],
        }
    }

    fn usage(task: &str, model: &str, calls: u64, tokens: (u64, u64)) -> ModelUsage {
        ModelUsage {
            task: task.into(),
            model: model.into(),
            calls,
            prompt_tokens: tokens.0,
            eval_tokens: tokens.1,
        }
    }

    #[test]
    fn tally_counts_calls_and_tokens_per_task_and_model() {
        let mut row = CallTally::default();
        row.add(Task::Answer, &record("stub", "qwen2.5:7b", (34, 12), false));
        row.add(Task::Embed, &record("embedded", "minilm", (9, 0), false));
        row.add(Task::Answer, &record("stub", "qwen2.5:7b", (30, 10), false));
        row.add(Task::Answer, &record("backup", "llama3", (5, 2), true));
        assert_eq!((row.answer, row.embed, row.fallbacks), (3, 1, 1));
        assert_eq!(
            row.by_model,
            vec![
                usage("answer", "backup:llama3", 1, (5, 2)),
                usage("answer", "stub:qwen2.5:7b", 2, (64, 22)),
                usage("embed", "embedded:minilm", 1, (9, 0)),
            ],
            "sorted by task, then model"
        );

        let mut job = CallTally::default();
        job.add(
            Task::Classify,
            &record("stub", "qwen2.5:7b", (100, 3), false),
        );
        job.merge(&row);
        job.merge(&row);
        assert_eq!((job.classify, job.answer, job.fallbacks), (1, 6, 2));
        assert_eq!(job.by_model.len(), 4);
        assert_eq!(
            job.by_model[1],
            usage("answer", "stub:qwen2.5:7b", 4, (128, 44))
        );
        assert_eq!(
            job.by_model[0],
            usage("answer", "backup:llama3", 2, (10, 4))
        );
        assert_eq!(
            job.by_model[2],
            usage("classify", "stub:qwen2.5:7b", 1, (100, 3))
        );
        // Per-model tokens add up to the task-level totals.
        let tokens: u64 = job.by_model.iter().map(|u| u.prompt_tokens).sum();
        assert_eq!(tokens, job.prompt_tokens);
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
