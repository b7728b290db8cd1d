//! Decides one row's answer from its retrieved evidence: finds the sentences that address the
//! question (and abstains when none does), asks one structured call for the choices and the
//! citation, builds the explanation from the cited passage (extractive) or checks the model's
//! own text against it (generated), and rates the result from support, the sentence's
//! polarity and the model's own choice probability. Does not search, and writes nothing.

use super::confidence::{self, Band};
use super::support::{self, Polarity};
use super::{PipelineContext, RowOutcome, RowStatus, abstain, answer, ms_since, source_line};
use crate::kb::Hit;
use crate::kb::search::cosine;
use crate::router::Router;
use crate::router::config::{ProviderKind, RouterConfig, Target, Task, TextMode};
use crate::router::layers::BreakerState;
use crate::router::provider::ChatResponse;
use crate::workbook::{QuestionRow, SlotKind};
use std::collections::HashMap;
use std::time::Instant;

/// Explanations built from a passage are cut to this many characters.
pub const EXTRACT_CHARS: usize = 400;
/// Sentences of the evidence embedded per row, at most.
const MAX_SENTENCES: usize = 32;
/// Passages shown to a model that does not write the text (extractive mode), at most.
const FOCUSED_SOURCES: usize = 3;

/// How the answer task's first usable target (not disabled, breaker not open) writes free
/// text; see [`mode_of`].
pub fn text_mode(router: &Router) -> TextMode {
    let cfg = router.config();
    let health = router.health();
    let targets = cfg.targets(Task::Answer);
    let usable = |t: &&Target| {
        let name = t.to_string();
        health
            .iter()
            .find(|h| h.target == name)
            .is_none_or(|h| h.disabled.is_none() && h.breaker.state != BreakerState::Open)
    };
    match targets.iter().find(usable).or(targets.first()) {
        Some(t) => mode_of(cfg, t),
        None => TextMode::Extractive,
    }
}

/// How `target` writes free text: `text:` of its model entry, else extractive for the
/// embedded provider (a 135M model's prose is not evidence), generated otherwise.
pub fn mode_of(cfg: &RouterConfig, target: &Target) -> TextMode {
    if let Some(mode) = cfg.model(target).and_then(|m| m.text) {
        return mode;
    }
    match cfg.provider(&target.provider).map(|p| p.kind) {
        Some(ProviderKind::Embedded) | None => TextMode::Extractive,
        Some(_) => TextMode::Generated,
    }
}

/// One sentence of the evidence and how close it is to the question.
#[derive(Debug, Clone)]
pub struct Sentence {
    /// Index into the evidence.
    pub hit: usize,
    /// Position in its passage.
    pub pos: usize,
    pub text: String,
    /// Cosine similarity with the question.
    pub score: f32,
}

/// The evidence's sentences (at most [`MAX_SENTENCES`], passages in rank order), each with
/// its similarity to the question, best first (ties: passage rank, then position).
async fn rank_sentences(
    ctx: &PipelineContext,
    evidence: &[Hit],
    question_vec: &[f32],
    out: &mut RowOutcome,
) -> Result<Vec<Sentence>, String> {
    let mut found: Vec<Sentence> = Vec::new();
    for (hit, h) in evidence.iter().enumerate() {
        // A past answer's evidence is what it said (its comment), not "Q: … Answer: Yes".
        let body = match &h.answer {
            Some(a) => a
                .values
                .iter()
                .map(|v| v.value.trim())
                .filter(|v| v.split_whitespace().count() >= 4)
                .collect::<Vec<_>>()
                .join("\n"),
            None => support::without_heading(&h.text, h.heading.as_deref()),
        };
        for (pos, text) in support::sentences(&body).into_iter().enumerate() {
            if found.len() < MAX_SENTENCES {
                found.push(Sentence {
                    hit,
                    pos,
                    text,
                    score: 0.0,
                });
            }
        }
    }
    // Sentences seen by earlier rows are not embedded again.
    let mut vectors: HashMap<String, Vec<f32>> = HashMap::new();
    {
        let cache = ctx
            .sentence_vectors
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        for s in &found {
            if let Some(v) = cache.get(&s.text) {
                vectors.insert(s.text.clone(), v.clone());
            }
        }
    }
    let mut missing: Vec<String> = found
        .iter()
        .filter(|s| !vectors.contains_key(&s.text))
        .map(|s| s.text.clone())
        .collect();
    missing.sort();
    missing.dedup();
    if !missing.is_empty() {
        let t = Instant::now();
        let embedded = ctx.router.embed(&missing).await;
        out.time.embed_ms += ms_since(t);
        let (fresh, record) =
            embedded.map_err(|e| format!("embedding the evidence failed: {e}"))?;
        out.calls.add(Task::Embed, &record);
        if fresh.len() != missing.len() {
            return Err("the embedding model returned the wrong number of vectors".into());
        }
        let mut cache = ctx
            .sentence_vectors
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        for (text, v) in missing.into_iter().zip(fresh) {
            cache.insert(text.clone(), v.clone());
            vectors.insert(text, v);
        }
    }
    for s in &mut found {
        s.score = vectors
            .get(&s.text)
            .map(|v| cosine(v, question_vec))
            .unwrap_or(0.0);
    }
    found.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then(a.hit.cmp(&b.hit))
            .then(a.pos.cmp(&b.pos))
    });
    Ok(found)
}

/// The explanation built from passage `hit`: its sentence closest to the question, plus the
/// next closest when the first is short, in passage order, cut to [`EXTRACT_CHARS`].
fn extract(ranked: &[Sentence], hit: usize) -> Option<(String, f32)> {
    let mine: Vec<&Sentence> = ranked.iter().filter(|s| s.hit == hit).collect();
    let best = *mine.first()?;
    let mut chosen = vec![best];
    if best.text.chars().count() < 90
        && let Some(next) = mine.get(1)
        && next.score >= best.score - 0.1
    {
        chosen.push(next);
    }
    chosen.sort_by_key(|s| s.pos);
    let text = chosen
        .iter()
        .map(|s| s.text.as_str())
        .collect::<Vec<_>>()
        .join(" ");
    Some((support::cut(&text, EXTRACT_CHARS), best.score))
}

/// The model's probability of `value` for the schema field `key`, when the backend gave it.
fn choice_prob(reply: &ChatResponse, key: &str, value: &str) -> Option<f32> {
    reply.prob_of(key, value)
}

/// Answers a row that has evidence: everything after retrieval. `question_vec` is the
/// question's embedding; `evidence` is non-empty.
pub async fn decide(
    ctx: &PipelineContext,
    q: &QuestionRow,
    evidence: Vec<Hit>,
    question_vec: &[f32],
    prompt_ctx: &answer::PromptContext,
    mut out: RowOutcome,
) -> RowOutcome {
    let router = ctx.router.as_ref();
    let cfg = ctx.answering.as_ref();
    let mut mode = text_mode(router);
    let has_text = q.slots.iter().any(|s| s.kind == SlotKind::Text);
    let has_choice = q
        .slots
        .iter()
        .any(|s| s.is_choice() || s.kind == SlotKind::Date);
    // Which sentences of the evidence address the question. Extractive mode needs them before
    // the call (to abstain without one, and to show the model only what matters).
    let mut ranked = match rank_sentences(ctx, &evidence, question_vec, &mut out).await {
        Ok(r) => r,
        Err(e) => return out.failed(e),
    };
    let best = ranked.first().map(|s| s.score).unwrap_or(0.0);
    if best < cfg.min_support {
        out.sources = evidence.iter().map(|h| source_line(h, false)).collect();
        return abstain(
            out,
            format!(
                "insufficient evidence: no sentence of the retrieved passages addresses this \
                 question (best {best:.2}, below answering.min_support {:.2})",
                cfg.min_support
            ),
        );
    }
    // Passages in the order of their best sentence; in extractive mode the model reads each
    // passage's two closest sentences, not the whole chunk.
    let mut order: Vec<usize> = Vec::new();
    for s in &ranked {
        if !order.contains(&s.hit) {
            order.push(s.hit);
        }
    }
    for i in 0..evidence.len() {
        if !order.contains(&i) {
            order.push(i);
        }
    }
    let evidence: Vec<Hit> = order.iter().map(|&i| evidence[i].clone()).collect();
    for s in &mut ranked {
        s.hit = order.iter().position(|&i| i == s.hit).unwrap_or(s.hit);
    }
    let shown: Vec<Hit> = match mode {
        TextMode::Generated => evidence.clone(),
        // The small model reads each of the best passages' closest sentence only (the
        // passage order is by that sentence, so [1] is the closest): a short, focused prompt.
        TextMode::Extractive => evidence
            .iter()
            .take(FOCUSED_SOURCES)
            .enumerate()
            .map(|(i, h)| {
                let mut mine: Vec<&Sentence> =
                    ranked.iter().filter(|s| s.hit == i).take(1).collect();
                mine.sort_by_key(|s| s.pos);
                let mut h = h.clone();
                if !mine.is_empty() {
                    h.text = mine
                        .iter()
                        .map(|s| s.text.as_str())
                        .collect::<Vec<_>>()
                        .join(" ");
                }
                h
            })
            .collect(),
    };
    let ask_text = mode == TextMode::Generated;
    let mut values: Vec<Option<String>> = vec![None; q.slots.len()];
    let mut cited: Option<usize> = None;
    let mut probs: Vec<Option<f32>> = vec![None; q.slots.len()];
    let mut repaired = false;
    if has_choice || ask_text {
        let budget = router
            .config()
            .parameters(Task::Answer)
            .evidence_chars
            .unwrap_or(answer::DEFAULT_EVIDENCE_CHARS);
        let messages = answer::prompt(q, &shown, budget, prompt_ctx, ask_text);
        let schema = answer::answer_schema(&q.slots, shown.len(), ask_text);
        let t = Instant::now();
        let answered = router.chat(Task::Answer, &messages, Some(&schema)).await;
        out.time.llm_ms += ms_since(t);
        let (reply, record) = match answered {
            Ok(r) => r,
            Err(e) => {
                out.calls.failed += 1;
                return out.failed(e.to_string());
            }
        };
        out.calls.add(Task::Answer, &record);
        out.model = format!("{}:{}", record.provider, record.model);
        repaired = record.repairs > 0;
        // A fallback target that must not write prose (the embedded model after the server
        // went down) gets the extractive explanation instead of its own.
        let answered_by = Target {
            provider: record.provider.clone(),
            model: record.model.clone(),
        };
        if mode_of(router.config(), &answered_by) == TextMode::Extractive {
            mode = TextMode::Extractive;
        }
        let parsed = match answer::parse_reply(&reply.text, &q.slots, &q.text) {
            Ok(v) => v,
            Err(e) => return out.failed(e),
        };
        cited = parsed.cited.filter(|c| *c < evidence.len());
        if parsed.insufficient {
            out.sources = evidence.iter().map(|h| source_line(h, false)).collect();
            return abstain(
                out,
                "insufficient evidence: the model found no source that supports an answer".into(),
            );
        }
        let keys = answer::slot_keys(&q.slots);
        for (i, (slot, v)) in q.slots.iter().zip(parsed.values).enumerate() {
            if slot.kind == SlotKind::Text && mode == TextMode::Extractive {
                continue;
            }
            if slot.is_choice()
                && let Some(v) = &v
            {
                probs[i] = choice_prob(&reply, &keys[i], v);
            }
            values[i] = v;
        }
    } else {
        out.model = "extractive".into();
    }
    // The passage the answer rests on: the cited one, else the one that addresses the
    // question best. A citation of a passage with no sentence near the question is weak.
    let addressed = ranked.first().map(|s| s.hit).unwrap_or(0);
    let basis = cited.unwrap_or(addressed);
    let (explanation, support_score) = match extract(&ranked, basis) {
        Some((text, score)) if score >= cfg.min_support => (text, score),
        _ => {
            if cited.is_some() {
                out.add_note(format!(
                    "the cited source [{}] does not address the question; [{}] does",
                    basis + 1,
                    addressed + 1
                ));
            }
            match extract(&ranked, addressed) {
                Some((text, score)) => (text, score * 0.85),
                None => (String::new(), 0.0),
            }
        }
    };
    let mut ord: Vec<usize> = (0..evidence.len()).collect();
    ord.retain(|&i| i != basis);
    ord.insert(0, basis);
    out.sources = ord
        .iter()
        .map(|&i| source_line(&evidence[i], Some(i) == cited))
        .collect();
    let sentence = ranked
        .iter()
        .find(|s| s.hit == basis)
        .map(|s| s.text.clone())
        .unwrap_or_default();
    let polarity = support::polarity(&sentence);
    // Free text: extractive, or the model's own, checked against the passage it rests on.
    let mut text_supported = true;
    let mut first_text = true;
    for (i, slot) in q.slots.iter().enumerate() {
        if slot.kind != SlotKind::Text {
            continue;
        }
        match mode {
            TextMode::Extractive => {
                values[i] = (first_text && !explanation.is_empty()).then(|| explanation.clone());
            }
            TextMode::Generated => {
                if let Some(text) = &values[i] {
                    let source = &evidence[basis].text;
                    let overlap = support::overlap(text, source);
                    if overlap < cfg.min_text_overlap {
                        text_supported = false;
                        out.add_note(format!(
                            "the written explanation is not supported by its source: {:.0} % \
                             of its content words are in the cited passage (needs {:.0} %)",
                            overlap * 100.0,
                            cfg.min_text_overlap * 100.0
                        ));
                    }
                }
            }
        }
        first_text = false;
    }
    // Agreement of generated text with its source, by embedding (one call).
    let mut agreement = None;
    if mode == TextMode::Generated
        && let Some(text) = q
            .slots
            .iter()
            .zip(&values)
            .find(|(s, v)| s.kind == SlotKind::Text && v.is_some())
            .and_then(|(_, v)| v.clone())
    {
        let passage = evidence[basis].text.clone();
        let t = Instant::now();
        let embedded = router.embed(&[text, passage]).await;
        out.time.embed_ms += ms_since(t);
        match embedded {
            Ok((v, record)) if v.len() == 2 => {
                out.calls.add(Task::Embed, &record);
                let a = cosine(&v[0], &v[1]);
                agreement = Some(a);
                if a < cfg.min_text_agreement {
                    text_supported = false;
                    out.add_note(format!(
                        "the written explanation agrees poorly with its source ({a:.2}, needs \
                         {:.2})",
                        cfg.min_text_agreement
                    ));
                }
            }
            Ok(_) => out.add_note("agreement not measured: wrong number of vectors"),
            Err(e) => out.add_note(format!("agreement not measured: {e}")),
        }
    }
    if !text_supported {
        // Unsupported prose never reaches a cell: the explanation becomes the passage's own
        // sentence, and the row is a draft.
        for (i, slot) in q.slots.iter().enumerate() {
            if slot.kind == SlotKind::Text && values[i].is_some() {
                values[i] = (!explanation.is_empty()).then(|| explanation.clone());
            }
        }
    }
    let empty_texts = has_text
        && !values
            .iter()
            .zip(&q.slots)
            .any(|(v, s)| s.kind == SlotKind::Text && v.is_some());
    let all_choices = out.apply(q, values);
    // The choice against what its sentence says.
    let mut conflict = false;
    let mut choice_p: Option<f32> = None;
    let sentence_choice = q
        .slots
        .iter()
        .find(|s| s.is_choice())
        .and_then(|s| polarity.choice(&s.choices));
    for (i, slot) in q.slots.iter().enumerate() {
        if !slot.is_choice() {
            continue;
        }
        let Some(v) = out.slot_values[i].clone() else {
            continue;
        };
        choice_p = choice_p.or(probs[i]);
        if let Some(meant) = Polarity::of_choice(&v)
            && meant != polarity
        {
            conflict = true;
            let suggested = polarity
                .choice(&slot.choices)
                .map(|c| format!(" (it suggests {c})"))
                .unwrap_or_default();
            out.add_note(format!(
                "the model chose {v}, but the sentence it rests on reads as {}{suggested}",
                match polarity {
                    Polarity::Affirms => "in place",
                    Polarity::Denies => "not in place",
                    Polarity::NotApplicable => "not applicable",
                }
            ));
        }
    }
    let signals = confidence::Signals {
        source_similarity: support_score,
        cited: cited.is_some() || !has_choice,
        agreement,
        repaired,
        missing_choice: !all_choices,
        missing_text: empty_texts,
        choice_probability: choice_p,
        choice_count: q
            .slots
            .iter()
            .find(|s| s.is_choice())
            .map(|s| s.choices.len() as u32)
            .unwrap_or(0),
        polarity_conflict: conflict,
        text_unsupported: !text_supported,
        sentence_choice,
    };
    out.confidence = confidence::generated(&signals);
    out.signals = Some(signals);
    let mut band = confidence::band(out.confidence, cfg.review_threshold);
    if !text_supported || conflict || !all_choices {
        band = Band::Review;
    }
    out.band = Some(band);
    if !all_choices {
        out.add_note("a choice cell got no legal value and was left empty");
    }
    if empty_texts {
        out.add_note("no explanation could be taken from the cited source");
    }
    if has_choice && cited.is_none() {
        out.add_note("the model cited no source");
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
