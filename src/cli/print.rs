//! How the command line shows things: job status lines and the progress bar, the job report,
//! a fill's and an apply's summary, `rfpq inspect`'s table. Does not run anything.

use crate::pipeline::{self, FillSummary};
use crate::queue::{JobStatus, RfpQueue};
use anyhow::Result;
use std::path::Path;

/// `1h 02m`, `3m 05s`, `12s`.
pub(super) fn human_duration(secs: u64) -> String {
    match secs {
        s if s >= 3600 => format!("{}h {:02}m", s / 3600, s % 3600 / 60),
        s if s >= 60 => format!("{}m {:02}s", s / 60, s % 60),
        s => format!("{s}s"),
    }
}

/// The first status line: id, state, progress, ETA, file.
pub(super) fn status_head(st: &JobStatus) -> String {
    let eta = st
        .eta_s
        .map(|e| format!("  ETA {}", human_duration(e.round() as u64)))
        .unwrap_or_default();
    let cancel = if st.cancel_requested && !st.state.is_final() {
        "  (cancelling)"
    } else {
        ""
    };
    format!(
        "{}  {}{cancel}  {}/{} rows  ({} failed, {} need review){eta}  {}",
        st.id,
        st.state.as_str(),
        st.rows_done,
        st.rows_total,
        st.rows_failed,
        st.needs_review,
        st.file_name
    )
}

/// The indented lines under it that do not change while a job runs.
pub(super) fn status_details(st: &JobStatus) -> String {
    let mut s = String::new();
    if let Some(kb) = &st.kb {
        s.push_str(&format!(
            "\n  knowledge base: {kb} (version {})",
            st.kb_version.as_deref().unwrap_or("unpinned")
        ));
    }
    if let Some(hash) = &st.config_hash {
        s.push_str(&format!("\n  router config: {hash}"));
    }
    for w in &st.warnings {
        s.push_str(&format!("\n  warning: {w}"));
    }
    s
}

pub(super) fn status_line(st: &JobStatus) -> String {
    let mut s = status_head(st);
    if let Some(r) = &st.reason {
        s.push_str(&format!("\n  reason: {r}"));
    }
    if let Some(b) = st.last_heartbeat_ms
        && !st.state.is_final()
    {
        s.push_str(&format!(
            "\n  last heartbeat: {:.1} s ago",
            crate::queue::now_ms().saturating_sub(b) as f64 / 1000.0
        ));
    }
    for e in st.errors.iter().take(5) {
        s.push_str(&format!("\n  error: {e}"));
    }
    if st.errors.len() > 5 {
        s.push_str(&format!(
            "\n  … {} more errors (rfpq status --json)",
            st.errors.len() - 5
        ));
    }
    if !st.models.is_empty() {
        let models: Vec<String> = st
            .models
            .iter()
            .map(|(m, n)| format!("{m} ({n})"))
            .collect();
        s.push_str(&format!("\n  models: {}", models.join(", ")));
    }
    s.push_str(&status_details(st));
    let others: Vec<String> = st
        .config_hashes
        .iter()
        .filter(|(h, _)| Some(*h) != st.config_hash.as_ref())
        .map(|(h, n)| format!("{h} ({n} rows)"))
        .collect();
    if !others.is_empty() {
        s.push_str(&format!(
            "\n  rows answered under other router configs: {}",
            others.join(", ")
        ));
    }
    s.push_str(&report_line(&st.report));
    s
}

/// The pipeline's counts, for `status` and the end of `submit --wait` / `demo`.
pub(super) fn report_line(r: &crate::queue::JobReport) -> String {
    format!(
        "\n  {} questions: {} written into the file, {} drafted for review, {} abstained; {} answered ({} library matches), {} need review, {} not applicable, {} repeats answered once\n  {} LLM calls ({:.2}/question; {}), {} embedding calls, {} prompt + {} output tokens, {:.1} s",
        r.questions,
        r.written,
        r.drafted,
        r.abstained,
        r.answered,
        r.library_matches,
        r.needs_review,
        r.not_applicable,
        r.copies,
        r.llm_calls_total,
        r.llm_calls_per_question,
        r.llm_calls
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(", "),
        r.embed_calls,
        r.prompt_tokens,
        r.eval_tokens,
        r.duration_s
    ) + &usage_lines(r)
}

/// Throughput, calls and tokens per model, and the time split, once the job has them.
pub(super) fn usage_lines(r: &crate::queue::JobReport) -> String {
    let mut s = String::new();
    if !r.calls_by_model.is_empty() {
        let models: Vec<String> = r
            .calls_by_model
            .iter()
            .map(|u| {
                format!(
                    "{} {} ×{} ({} + {} tokens)",
                    u.task, u.model, u.calls, u.prompt_tokens, u.eval_tokens
                )
            })
            .collect();
        s.push_str(&format!(
            "\n  {:.1} questions/min; calls: {}; {} fallbacks",
            r.questions_per_minute,
            models.join(", "),
            r.fallbacks
        ));
    }
    let t = &r.time;
    if t.workbook_s + t.plan_s + t.llm_s + t.embed_s + t.retrieval_s > 0.0 {
        s.push_str(&format!(
            "\n  time: {:.1} s wall, {:.1} s queued, {:.1} s workbook, {:.1} s planning; \
             summed over concurrent rows: {:.1} s LLM, {:.1} s embedding, {:.1} s retrieval",
            t.wall_s, t.queue_s, t.workbook_s, t.plan_s, t.llm_s, t.embed_s, t.retrieval_s
        ));
    }
    s
}

/// The name a unit enum has in `--json` output (`choice`, `merged_non_anchor`), so the text
/// and JSON forms of `inspect` use the same words.
pub(super) fn wire_name(value: &impl serde::Serialize) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// A skipped cell with its reason and what it holds: `C15 (formula, never overwritten;
/// shows "#REF!")`, `C16 (error_value: holds #N/A, not an answer)`, `E10 (prefilled: "Y")`.
fn skipped_cell_text(sk: &crate::workbook::SkippedCell) -> String {
    use crate::workbook::SkipReason;
    let value: String = sk
        .value
        .as_deref()
        .unwrap_or("")
        .replace('\n', " ")
        .chars()
        .take(40)
        .collect();
    let reason = wire_name(&sk.reason);
    let detail = match (sk.reason, value.is_empty()) {
        (SkipReason::Formula, true) => ", never overwritten".to_string(),
        (SkipReason::Formula, false) => format!(", never overwritten; shows \"{value}\""),
        (SkipReason::ErrorValue, _) => format!(": holds {value}, not an answer"),
        (SkipReason::Prefilled, _) => format!(": \"{value}\""),
        _ => String::new(),
    };
    format!("{} ({reason}{detail})", sk.cell)
}

/// `rfpq inspect` as text: per sheet its verdict, every question with its slots, skipped cells
/// with their reason and value; each row a user may expect filled (contact field, no answer
/// cell, error value, note) on its own line with why it is not; a count of the other rows by
/// kind.
pub(super) fn inspect_text(q: &crate::workbook::Questionnaire) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    for w in &q.warnings {
        let _ = writeln!(out, "warning: {w}");
    }
    for s in &q.sheets {
        let header = s
            .header_row
            .map(|h| format!(", header row {h}"))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "sheet '{}': {} ({}){header}, {} questions",
            s.name,
            if s.fill { "fill" } else { "skip" },
            s.reason,
            s.questions.len()
        );
        for qu in &s.questions {
            let slots: Vec<String> = qu
                .slots
                .iter()
                .map(|sl| {
                    let kind = wire_name(&sl.kind);
                    if sl.choices.is_empty() {
                        format!("{} {kind}", sl.cell)
                    } else {
                        format!("{} {kind}({})", sl.cell, sl.choices.join("|"))
                    }
                })
                .collect();
            let text: String = qu.text.replace('\n', " ").chars().take(80).collect();
            let dup = q
                .duplicate_of(&qu.sheet, qu.row)
                .map(|k| format!("  (same as '{}' row {})", k.sheet, k.row))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "  row {:>5}  {:<10} [{}]  {text}{dup}",
                qu.row,
                qu.id.as_deref().unwrap_or("-"),
                slots.join(", ")
            );
            for sk in s.skipped_in_row(qu.row) {
                let _ = writeln!(out, "             skipped {}", skipped_cell_text(sk));
            }
        }
        // Rows a user may expect filled, one line each with why they are not; the rest
        // (banners, headers, sections, footers) as a count per kind.
        let mut kinds: std::collections::BTreeMap<String, Vec<u32>> = Default::default();
        for o in &s.other_rows {
            if !o.kind.may_look_fillable() {
                kinds.entry(wire_name(&o.kind)).or_default().push(o.row);
                continue;
            }
            let detail = match (o.kind, o.cell) {
                (crate::workbook::OtherRowKind::ErrorValue, Some(cell)) => {
                    format!(" ({cell} holds {})", o.text)
                }
                _ => {
                    let cells: Vec<String> =
                        s.skipped_in_row(o.row).map(skipped_cell_text).collect();
                    if cells.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", cells.join("; "))
                    }
                }
            };
            // An error row's text is the error, already in the detail.
            let text: String = if o.cell.is_some() {
                String::new()
            } else {
                let short: String = o.text.replace('\n', " ").chars().take(70).collect();
                format!("  {short}")
            };
            let _ = writeln!(
                out,
                "  not filled: row {:>5}  {:<10} {}{detail}{text}",
                o.row,
                o.id.as_deref().unwrap_or("-"),
                wire_name(&o.kind)
            );
        }
        if !kinds.is_empty() {
            let parts: Vec<String> = kinds
                .iter()
                .map(|(k, rows)| {
                    let shown: Vec<String> = rows.iter().take(5).map(u32::to_string).collect();
                    let more = if rows.len() > 5 { ", …" } else { "" };
                    format!("{} {k} (rows {}{more})", rows.len(), shown.join(", "))
                })
                .collect();
            let _ = writeln!(out, "  other rows: {}", parts.join("; "));
        }
    }
    let copies: usize = q.duplicates.iter().map(|g| g.len().saturating_sub(1)).sum();
    if copies > 0 {
        let _ = writeln!(
            out,
            "{copies} questions repeat an earlier one ({} groups): each is answered once",
            q.duplicates.len()
        );
    }
    out
}

/// Shows a job's progress: a progress bar (rows, ETA from the job's recent throughput) when
/// stderr is a terminal, otherwise one line per change, so logs stay readable.
pub(super) struct Progress {
    bar: Option<indicatif::ProgressBar>,
    quiet: bool,
    last: String,
}

impl Progress {
    pub(super) fn new(quiet: bool) -> Self {
        use std::io::IsTerminal;
        let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
            let pb = indicatif::ProgressBar::new(0);
            pb.set_style(
                indicatif::ProgressStyle::with_template(
                    "{msg:<12} [{bar:30}] {pos}/{len} rows {prefix}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            pb
        });
        Self {
            bar,
            quiet,
            last: String::new(),
        }
    }

    /// Shows `st`; at a final state, finishes the bar and prints the reason.
    pub(super) fn update(&mut self, st: &JobStatus) {
        let line = status_head(st);
        match &self.bar {
            Some(pb) => {
                if self.last.is_empty() {
                    pb.println(format!("{line}{}", status_details(st)));
                }
                pb.set_length(st.rows_total);
                pb.set_position(st.rows_done);
                pb.set_message(st.state.as_str());
                pb.set_prefix(format!(
                    "({} need review, {} failed){}",
                    st.needs_review,
                    st.rows_failed,
                    st.eta_s
                        .map(|e| format!(" ETA {}", human_duration(e.round() as u64)))
                        .unwrap_or_default()
                ));
                self.last = line;
            }
            None if !self.quiet && line != self.last => {
                if self.last.is_empty() {
                    eprintln!("{line}{}", status_details(st));
                } else {
                    eprintln!("{line}");
                }
                self.last = line;
            }
            None => {}
        }
        if st.state.is_final() {
            if let Some(pb) = &self.bar {
                pb.finish_with_message(st.state.as_str());
            }
            if !self.quiet
                && let Some(r) = &st.reason
            {
                eprintln!("  reason: {r}");
            }
        }
    }
}

/// Follows a job until it reaches a final state, showing its progress on stderr.
pub(super) async fn watch(queue: &RfpQueue, id: &str, quiet: bool) -> Result<JobStatus> {
    let mut progress = Progress::new(quiet);
    Ok(queue.follow(id, |st| progress.update(st)).await?)
}

/// An in-process fill's progress line, every 10 rows and at the end.
pub(super) fn print_rows(show: bool, done: usize, total: usize) {
    if show && (done.is_multiple_of(10) || done == total) {
        eprintln!("answered {done}/{total}");
    }
}

/// `rfpq demo`'s running commentary on stderr.
pub(super) struct DemoPrinter {
    progress: Progress,
}

impl Default for DemoPrinter {
    fn default() -> Self {
        Self {
            progress: Progress::new(false),
        }
    }
}

impl crate::demo::DemoProgress for DemoPrinter {
    fn building_kb(&mut self) {
        eprintln!(
            "building the knowledge base from Kestrel Analytics' policies and last year's \
             answered questionnaire…"
        );
    }

    fn kb_built(&mut self, r: &crate::kb::IngestReport, secs: f64) {
        eprintln!(
            "  {} chunks from {} sources ({}) in {secs:.1} s",
            r.chunks, r.sources, r.embed_model
        );
    }

    fn queued(&mut self, questionnaire: &Path, redis_url: &str) {
        eprintln!(
            "queueing {} on {redis_url} and running a worker in this process…",
            questionnaire.display()
        );
    }

    fn status(&mut self, st: &JobStatus) {
        self.progress.update(st);
    }

    fn local(&mut self, why: &str) {
        eprintln!("Redis is not reachable ({why}); answering in-process instead");
    }

    fn rows(&self, done: usize, total: usize) {
        print_rows(true, done, total);
    }
}

pub(super) fn print_applied(r: &pipeline::apply::ApplyReport, output: &Path) {
    println!(
        "{} approved, {} edited, {} kept as rfpq wrote them, {} rejected (left empty), {} drafts without a decision (left empty), {} refused; {} cells written\nfinal workbook: {}",
        r.approved,
        r.edited,
        r.kept,
        r.rejected,
        r.undecided,
        r.refused.len(),
        r.cells,
        output.display()
    );
    for refusal in &r.refused {
        eprintln!("refused: {refusal}");
    }
}

pub(super) fn print_summary(s: &FillSummary, output: &Path, review: &Path) {
    println!(
        "{} questions: {} written into the file, {} drafted for review, {} abstained (no evidence), {} not applicable, {} failed; {} answered ({} from the answer library), {} need review\n{} LLM calls ({:.2} per question: {} classify, {} relevance, {} answer), {} repeated questions answered once, {:.1} s\nfilled workbook: {}\nreview workbook: {}",
        s.questions,
        s.written,
        s.drafted,
        s.abstained,
        s.not_applicable,
        s.failed,
        s.answered,
        s.library_matches,
        s.needs_review,
        s.llm_calls,
        s.llm_calls_per_question,
        s.calls.classify,
        s.calls.relevance,
        s.calls.answer,
        s.copies,
        s.duration_s,
        output.display(),
        review.display()
    );
}

pub(super) fn one_line(text: &str, max: usize) -> String {
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= max {
        return flat;
    }
    let mut cut: String = flat.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}
