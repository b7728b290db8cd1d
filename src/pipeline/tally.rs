//! Counting calls: per task, with tokens, repairs, fallbacks and failures, and per task and
//! model (`CallTally`, kept with every row and summed for a job). Makes no calls itself.

use crate::router::CallRecord;
use crate::router::config::Task;
use serde::{Deserialize, Serialize};

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

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    pub(in crate::pipeline) fn record(
        provider: &str,
        model: &str,
        tokens: (u32, u32),
        fallback: bool,
    ) -> CallRecord {
        CallRecord {
            provider: provider.into(),
            model: model.into(),
            prompt_tokens: tokens.0,
            eval_tokens: tokens.1,
            fallback_used: fallback,
            ..Default::default()
        }
    }

    pub(in crate::pipeline) fn usage(
        task: &str,
        model: &str,
        calls: u64,
        tokens: (u64, u64),
    ) -> ModelUsage {
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
}
