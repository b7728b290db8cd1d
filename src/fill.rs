//! `rfpq fill`: one workbook file answered in this process, without Redis. Checks it like a
//! producer (`submit::validate_file`), opens the KB, runs the in-process job runner
//! (`pipeline::run::fill`: plan, answer, assemble — the same steps the worker runs as queue
//! jobs) and writes the filled and review workbooks. Also used by `rfpq demo` when Redis is not
//! reachable. Prints nothing: warnings and the summary go back to the caller.

use crate::kb::{KbError, KnowledgeBase};
use crate::pipeline::config::AnsweringConfig;
use crate::pipeline::{self, FillSummary};
use crate::router::Router;
use crate::submit::SubmitError;
use crate::workbook::{SourceFormat, WorkbookError};
use std::path::Path;
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum FillError {
    #[error(transparent)]
    Submit(#[from] SubmitError),
    #[error(transparent)]
    Kb(#[from] KbError),
    #[error(transparent)]
    Workbook(#[from] WorkbookError),
    #[error("the output {path} must end in .{want}{hint}")]
    OutputExtension {
        path: String,
        want: &'static str,
        hint: &'static str,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
}

/// The files of an in-process fill.
pub struct FillFiles<'a> {
    pub input: &'a Path,
    pub kb: Option<&'a Path>,
    pub output: &'a Path,
    pub review: &'a Path,
    /// Where to write each row's outcome as a JSON line.
    pub outcomes: Option<&'a Path>,
}

/// What a fill did: its summary and what the user must be told.
pub struct FillReport {
    pub summary: FillSummary,
    /// The file's own warnings (format, conversion) and planning's.
    pub warnings: Vec<String>,
}

/// Refuses an output name whose extension does not fit the workbook's format: a macro-enabled
/// workbook must stay `.xlsm`, and answers to an `.xls`/`.ods` go into a new `.xlsx`.
pub fn check_output_extension(output: &Path, format: SourceFormat) -> Result<(), FillError> {
    let want = format.output_extension();
    let ext = output
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    if ext == want {
        return Ok(());
    }
    let hint = if format == SourceFormat::Xlsm {
        " (the workbook is macro-enabled; Excel refuses it under another extension)"
    } else if format.is_converted() {
        " (answers to an .xls/.ods are written into a new .xlsx)"
    } else {
        ""
    };
    Err(FillError::OutputExtension {
        path: output.display().to_string(),
        want,
        hint,
    })
}

/// Writes `bytes` to `path`, creating its directory.
pub fn write_file(path: &Path, bytes: &[u8]) -> Result<(), FillError> {
    let failed = |source| FillError::Write {
        path: path.display().to_string(),
        source,
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(failed)?;
    }
    std::fs::write(path, bytes).map_err(failed)
}

/// Fills `files.input` (the pipeline set by `answering`) with `parallel` rows at a time and writes the results; `progress` gets
/// (done, total) after each row.
pub async fn fill(
    router: Arc<Router>,
    answering: AnsweringConfig,
    files: &FillFiles<'_>,
    parallel: usize,
    progress: impl Fn(usize, usize),
) -> Result<FillReport, FillError> {
    let checked = crate::submit::validate_file(files.input).await?;
    let questionnaire = checked.questionnaire;
    check_output_extension(files.output, questionnaire.source_format)?;
    let kb = match files.kb {
        Some(p) => {
            let base = KnowledgeBase::open(p)?;
            base.check_model(&router)?;
            Some(Arc::new(base))
        }
        None => None,
    };
    let done = pipeline::run::fill(
        router,
        answering,
        kb,
        checked.bytes,
        &questionnaire,
        parallel,
        progress,
    )
    .await?;
    if let Some(path) = files.outcomes {
        let mut lines = String::new();
        for o in &done.outcomes {
            lines.push_str(&serde_json::to_string(o).unwrap_or_default());
            lines.push('\n');
        }
        write_file(path, lines.as_bytes())?;
    }
    write_file(files.output, &done.filled)?;
    write_file(files.review, &done.review)?;
    let mut warnings = questionnaire.warnings;
    warnings.extend(done.warnings);
    Ok(FillReport {
        summary: done.summary,
        warnings,
    })
}
