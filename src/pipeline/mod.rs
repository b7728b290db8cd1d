//! The answer pipeline. `plan` runs once per questionnaire (classify, dependent-question
//! context, duplicates, language); `answer_planned` answers one row (library match, else
//! retrieve → one structured answer call, or an abstention) into a `RowOutcome`, the per-row
//! checkpoint; `assemble` turns outcomes into the filled and the review workbook. Knows
//! nothing about queues.
//!
//! This module only declares and re-exports: `answering` answers rows, `outcome` is a row's
//! result, `tally` counts calls, `summary` sums up a fill, `assemble` writes the two
//! workbooks and `config` holds the pipeline's settings (`answering:` in the config file).

pub mod answer;
mod answering;
pub mod apply;
mod assemble;
pub mod classify;
pub mod confidence;
pub mod config;
pub mod context;
pub mod decide;
pub mod dedup;
pub mod library;
mod outcome;
pub mod plan;
pub mod retrieve;
pub mod run;
mod summary;
pub mod support;
mod tally;

pub use answering::{
    EMBED_BATCH, PipelineContext, Prefetched, answer_plan, answer_planned, embedding_texts,
    prefetch_embeddings,
};
pub use assemble::{Assembled, assemble, assemble_with};
pub use confidence::Band;
pub use outcome::{RowOutcome, RowStatus, RowTimes, SlotValue, copy_outcome};
pub use plan::{Plan, PlannedRow};
pub use summary::{FillSummary, TimeSplit, per_minute};
pub use tally::{CallTally, ModelUsage};

use outcome::{abstain, ms_since, source_line};
