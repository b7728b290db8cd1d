//! Retrieval quality on labelled questions: recall@k and MRR for (question → expected
//! sources) pairs read from JSONL. Does not judge answers (that is `rfpq eval`, issue 6).

use super::{KbError, KnowledgeBase};
use crate::router::Router;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// One labelled question: `{"question": "...", "expected": ["answers_04-access-control.md"]}`
/// (`expected` may also be a single string). A source matches when it equals an expected name
/// or ends with `/<name>`.
#[derive(Debug, Clone, Deserialize)]
pub struct Label {
    pub question: String,
    #[serde(deserialize_with = "one_or_many")]
    pub expected: Vec<String>,
}

fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => vec![s],
        OneOrMany::Many(v) => v,
    })
}

/// Recall at one cut-off.
#[derive(Debug, Clone, Serialize)]
pub struct RecallAt {
    pub k: usize,
    pub recall: f64,
}

/// A question whose expected source was not in the top k.
#[derive(Debug, Clone, Serialize)]
pub struct Miss {
    pub question: String,
    pub expected: Vec<String>,
    /// 1-based rank of the first expected source within the top 20, if any.
    pub rank: Option<usize>,
    pub top: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct EvalReport {
    pub questions: usize,
    /// The cut-off asked for.
    pub k: usize,
    pub recall_at_k: f64,
    /// Mean reciprocal rank of the first expected source (0 when not in the top 20).
    pub mrr: f64,
    pub recall: Vec<RecallAt>,
    pub misses: Vec<Miss>,
    pub kb_version: String,
}

/// Sources a label accepts.
fn matches(source: &str, expected: &[String]) -> bool {
    expected
        .iter()
        .any(|e| source == e || source.ends_with(&format!("/{e}")))
}

/// Reads labels; errors name the line.
pub fn read_labels(path: &Path) -> Result<Vec<Label>, KbError> {
    let text = std::fs::read_to_string(path).map_err(|e| super::io_err(path, e))?;
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let label: Label = serde_json::from_str(line).map_err(|e| {
            super::io_err(
                path,
                format!(
                    "line {}: {e} (expected {{\"question\": \"…\", \"expected\": [\"source\"]}})",
                    n + 1
                ),
            )
        })?;
        out.push(label);
    }
    if out.is_empty() {
        return Err(super::io_err(path, "no labelled questions"));
    }
    Ok(out)
}

/// Searches every label's question and scores where its expected sources rank. Ranks count
/// distinct sources (several chunks of one file count once).
pub async fn evaluate(
    kb: &KnowledgeBase,
    router: &Router,
    labels: &[Label],
    k: usize,
) -> Result<EvalReport, KbError> {
    const DEPTH: usize = 20;
    let cutoffs: Vec<usize> = {
        let mut c = vec![1, 3, 5, 10, k];
        c.sort_unstable();
        c.dedup();
        c
    };
    let mut ranks: Vec<Option<usize>> = Vec::new();
    let mut misses = Vec::new();
    for label in labels {
        let hits = kb.search(router, &label.question, DEPTH * 3).await?;
        let mut sources: Vec<String> = Vec::new();
        for h in hits {
            if !sources.contains(&h.source) {
                sources.push(h.source);
            }
        }
        sources.truncate(DEPTH);
        let rank = sources
            .iter()
            .position(|s| matches(s, &label.expected))
            .map(|p| p + 1);
        if rank.is_none_or(|r| r > k) {
            misses.push(Miss {
                question: label.question.clone(),
                expected: label.expected.clone(),
                rank,
                top: sources.iter().take(k.max(3)).cloned().collect(),
            });
        }
        ranks.push(rank);
    }
    let n = labels.len() as f64;
    let recall_at =
        |cut: usize| ranks.iter().filter(|r| r.is_some_and(|r| r <= cut)).count() as f64 / n;
    Ok(EvalReport {
        questions: labels.len(),
        k,
        recall_at_k: recall_at(k),
        mrr: ranks
            .iter()
            .map(|r| r.map_or(0.0, |r| 1.0 / r as f64))
            .sum::<f64>()
            / n,
        recall: cutoffs
            .into_iter()
            .map(|c| RecallAt {
                k: c,
                recall: recall_at(c),
            })
            .collect(),
        misses,
        kb_version: kb.version().to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_take_one_or_many_sources_and_suffixes_match() {
        let one: Label = serde_json::from_str(r#"{"question":"q","expected":"a.md"}"#).unwrap();
        let many: Label =
            serde_json::from_str(r#"{"question":"q","expected":["a.md","b.pdf"]}"#).unwrap();
        assert_eq!(one.expected, vec!["a.md"]);
        assert_eq!(many.expected.len(), 2);
        assert!(matches("bank/a.md", &one.expected));
        assert!(matches("a.md", &one.expected));
        assert!(!matches("bank/xa.md", &one.expected));
    }
}
