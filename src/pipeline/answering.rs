//! Answering rows: the context a row is answered in (router, `answering:` settings, KB,
//! embeddings computed ahead), one planned row from the answer library, retrieval and the
//! answer call (`answer_planned`), and a whole plan in-process (`answer_plan`). Does not plan
//! (that is `plan`), decide after retrieval (that is `decide`) or write any workbook.

use super::classify::RowKind;
use super::config::{self, AnsweringConfig};
use super::{
    Band, Plan, RowOutcome, RowStatus, abstain, confidence, context, copy_outcome, decide, library,
    retrieve,
};
use super::{CallTally, answer, ms_since};
use crate::kb::KnowledgeBase;
use crate::router::Router;
use crate::router::config::Task;
use futures_util::StreamExt;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

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
