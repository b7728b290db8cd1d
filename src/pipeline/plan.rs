//! The plan of a questionnaire, made once before any row is answered: each detected row with
//! its kind (classify), the question it depends on (context), the row whose answer it copies
//! (dedup) and the questionnaire's language. Also the grouping of rows for answering and
//! batching, so a dependent question is answered after, and with, its parent.

use super::CallTally;
use super::classify::{self, RowKind};
use super::config::{AnsweringConfig, WriteDrafts};
use super::context::{self, Language, ParentLink};
use super::dedup::{self, SameAs};
use crate::router::Router;
use crate::router::config::Task;
use crate::workbook::{QuestionRow, Questionnaire};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// One detected row and what planning found out about it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlannedRow {
    pub question: QuestionRow,
    pub kind: RowKind,
    /// How the kind was decided, when not by heuristics (or why the classifier failed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind_note: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<ParentLink>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub same_as: Option<SameAs>,
}

/// Every row of a questionnaire to fill, in sheet then row order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub rows: Vec<PlannedRow>,
    pub language: Language,
    /// Calls made while planning (classification windows, embeddings for duplicates).
    pub calls: CallTally,
    /// What the user should know about the plan (a failed classifier, say).
    #[serde(default)]
    pub warnings: Vec<String>,
    /// How long `build` took (milliseconds).
    #[serde(default)]
    pub build_ms: u64,
    /// The job's own `write_drafts` (from `--write-drafts` at submit or fill); `None`: the
    /// answering worker's config decides.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write_drafts: Option<WriteDrafts>,
    /// The hash of the configuration that planned it (`config::config_hash`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_hash: Option<String>,
}

impl Plan {
    /// Plans a detected questionnaire: classifies rows (LLM only for ambiguous ones), links
    /// dependent questions to their parents, finds repeated questions (same ID, same text,
    /// near-identical wording) and detects the language, with the windows and thresholds of
    /// `answering`.
    pub async fn build(
        router: &Router,
        answering: &AnsweringConfig,
        questionnaire: &Questionnaire,
    ) -> Plan {
        let started = std::time::Instant::now();
        let questions: Vec<QuestionRow> = questionnaire.questions().cloned().collect();
        let mut calls = CallTally::default();
        let mut warnings = Vec::new();
        let window = answering.classify_window;
        let kinds = classify::classify_rows(router, &questions, window, &mut calls).await;
        if calls.failed > 0 {
            warnings.push(format!(
                "{} classification call(s) failed; those rows were treated as questions",
                calls.failed
            ));
        }
        let parents = context::link_parents(&questions);
        let dependent: Vec<bool> = parents.iter().map(Option::is_some).collect();
        // The question texts in calls of EMBED_BATCH, sent together: the router's limit for
        // the embedding provider decides how many run at once.
        let chunks: Vec<Vec<String>> = questions
            .chunks(super::EMBED_BATCH)
            .map(|c| c.iter().map(|q| q.text.clone()).collect())
            .collect();
        let replies =
            futures_util::future::join_all(chunks.iter().map(|texts| router.embed(texts))).await;
        let mut vectors: Vec<Vec<f32>> = Vec::new();
        for (texts, reply) in chunks.iter().zip(replies) {
            match reply {
                Ok((v, record)) if v.len() == texts.len() => {
                    calls.add(Task::Embed, &record);
                    vectors.extend(v);
                }
                Ok(_) | Err(_) => {
                    warnings.push(
                        "embedding the questions failed: only exact repeats (same ID or text) \
                         are answered once"
                            .into(),
                    );
                    vectors.clear();
                    break;
                }
            }
        }
        let similarity = answering.duplicate_similarity;
        let copies =
            dedup::find_copies(&questions, questionnaire, &vectors, similarity, &dependent);
        let language = context::detect_language(questions.iter().map(|q| q.text.as_str()));
        let rows = questions
            .into_iter()
            .zip(kinds)
            .zip(parents)
            .zip(copies)
            .map(
                |(((question, (kind, kind_note)), parent), same_as)| PlannedRow {
                    question,
                    kind,
                    kind_note,
                    parent,
                    same_as,
                },
            )
            .collect();
        Plan {
            rows,
            language,
            calls,
            warnings,
            build_ms: started.elapsed().as_millis() as u64,
            write_drafts: None,
            config_hash: Some(super::config::config_hash(router.config(), answering)),
        }
    }

    /// The row whose outcome a dependent row `i` needs: its parent, or the row the parent
    /// copies when the parent is a repeated question.
    pub fn parent_key(&self, i: usize) -> Option<usize> {
        let p = self.rows[i].parent.as_ref()?.index;
        Some(self.rows[p].same_as.as_ref().map_or(p, |s| s.index))
    }

    /// Rows answered together, in order: each question with the questions that depend on it.
    /// Repeated questions (copies) are in no group: they take their first copy's answer.
    pub fn groups(&self) -> Vec<Vec<usize>> {
        let mut groups: Vec<Vec<usize>> = Vec::new();
        let mut group_of: HashMap<usize, usize> = HashMap::new();
        for (i, row) in self.rows.iter().enumerate() {
            if row.same_as.is_some() {
                continue;
            }
            match self.parent_key(i).and_then(|p| group_of.get(&p).copied()) {
                Some(g) => {
                    groups[g].push(i);
                    group_of.insert(i, g);
                }
                None => {
                    group_of.insert(i, groups.len());
                    groups.push(vec![i]);
                }
            }
        }
        groups
    }

    /// Index ranges `[start, end)` of about `size` rows for batch jobs, never cutting between
    /// a question and a dependent question right below it.
    pub fn batch_ranges(&self, size: usize) -> Vec<(usize, usize)> {
        let size = size.max(1);
        let mut ranges = Vec::new();
        let mut start = 0;
        for i in 1..self.rows.len() {
            let follows_parent = self.rows[i]
                .parent
                .as_ref()
                .is_some_and(|p| p.index >= start && p.index < i);
            if i - start >= size && !follows_parent {
                ranges.push((start, i));
                start = i;
            }
        }
        if start < self.rows.len() {
            ranges.push((start, self.rows.len()));
        }
        ranges
    }

    /// Rows classified as questions.
    pub fn question_count(&self) -> usize {
        self.rows
            .iter()
            .filter(|r| r.kind == RowKind::Question)
            .count()
    }

    /// For each answered row, the copies that take its answer.
    pub fn copies_of(&self, i: usize) -> impl Iterator<Item = usize> + '_ {
        self.rows
            .iter()
            .enumerate()
            .filter(move |(_, r)| r.same_as.as_ref().is_some_and(|s| s.index == i))
            .map(|(j, _)| j)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::context::Condition;

    fn row(i: u32, parent: Option<usize>, same_as: Option<usize>) -> PlannedRow {
        PlannedRow {
            question: QuestionRow {
                sheet: "S".into(),
                row: i + 2,
                id: None,
                text: format!("q{i}"),
                section: None,
                slots: vec![],
            },
            kind: RowKind::Question,
            kind_note: None,
            parent: parent.map(|index| ParentLink {
                index,
                condition: Condition::Yes,
            }),
            same_as: same_as.map(|index| SameAs {
                index,
                how: "same id".into(),
            }),
        }
    }

    #[test]
    fn dependents_stay_with_their_parent() {
        let plan = Plan {
            rows: vec![
                row(0, None, None),
                row(1, None, None),
                row(2, Some(1), None),
                row(3, Some(1), None),
                row(4, None, Some(0)),
                row(5, Some(4), None),
            ],
            language: Language::En,
            calls: CallTally::default(),
            warnings: vec![],
            build_ms: 0,
            write_drafts: None,
            config_hash: None,
        };
        assert_eq!(plan.groups(), vec![vec![0, 5], vec![1, 2, 3]]);
        assert_eq!(plan.batch_ranges(2), vec![(0, 4), (4, 6)]);
        assert_eq!(plan.batch_ranges(1), vec![(0, 1), (1, 4), (4, 6)]);
        assert_eq!(plan.parent_key(5), Some(0));
        assert_eq!(plan.copies_of(0).collect::<Vec<_>>(), vec![4]);
    }
}
