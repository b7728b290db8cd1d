//! Drop-folder producer: watches an inbox directory, queues every questionnaire dropped into it
//! (through `submit::submit_file`, so a bad file is refused with the same reasons as
//! `rfpq submit`), and writes each job's filled and review workbooks, or an `.error.txt` saying
//! why not, into an outbox.
//!
//! Intended CLI (wired in `cli`):
//! `rfpq watch INBOX --out OUTBOX [--kb KB] [--batch-size N] [--poll-ms N]`
//!
//! What it does:
//! - Polls INBOX every `poll` (no file-system notifications, so it works on network shares).
//!   Creates OUTBOX and `INBOX/.done` when missing; INBOX itself must exist.
//! - Takes a file only when it is fully written: non-empty, and its size and mtime unchanged for
//!   at least `settle`. Temp and lock files (`~$*`, `.~lock*`, `*.tmp`, `*.part`,
//!   `*.crdownload`, dotfiles) and directories are ignored, and so is a workbook that Excel or
//!   LibreOffice still has open (its `~$name` / `.~lock.name#` owner file is next to it). A
//!   package whose end is missing (a zip without its central directory, an OLE file that is not
//!   whole sectors) is a copy that stalled: it gets up to `incomplete_grace` to grow before it is
//!   submitted (and then refused as damaged).
//! - Only `.xlsx`, `.xlsm`, `.xls` and `.ods` names are submitted. Anything else gets
//!   `OUTBOX/<stem>.error.txt` naming the accepted formats and is moved to `INBOX/.done`.
//! - A refused workbook gets `OUTBOX/<stem>.error.txt` (the reason, then what to do) and is moved
//!   to `INBOX/.done`. An accepted one is moved to `INBOX/.done` at once, and
//!   `OUTBOX/<stem>.job` holds its job id (first line) for `rfpq status`.
//! - Tracks every submitted job; when one ends: `completed` / `completed_with_errors` →
//!   `<stem>.filled.xlsx` (`.xlsm` for a macro-enabled workbook; `.xls`/`.ods` come back as
//!   `.xlsx`) and `<stem>.review.xlsx`; `failed` (or any other end, e.g. `cancelled`) →
//!   `<stem>.error.txt` with the job's reason. The `.job` file is then removed. `.job` files
//!   left by an earlier run are picked up again.
//! - Never overwrites: a clashing name in `.done` or OUTBOX gets `-2`, `-3`… Outputs are
//!   written under a temporary dotfile name in OUTBOX and renamed, so a downstream watcher never
//!   sees half a file.
//! - Nothing stops the loop: IO errors are logged (and reported in an `.error.txt` where
//!   possible); Redis errors, and a KB that cannot be resolved, are retried on the next poll.
//! - When `shutdown` resolves it stops taking files and returns a [`WatchReport`]. Jobs in flight
//!   keep running in the queue; their `.job` files say where they are.
//!
//! What it does not do: answer anything itself (workers do), delete anything from INBOX (files
//! are moved, never removed), coordinate several watchers on one inbox (run one per inbox), or
//! retry a failed job (drop the file again).

mod files;

use crate::queue::{JobPhase, JobStatus, QueueError, RfpQueue};
use crate::submit::{self, SubmitError};
use files::{extension, is_ignored, looks_incomplete, one_line, stem, unique_path};
use futures_util::FutureExt;
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

/// Folder inside INBOX that taken files are moved to.
pub const DONE_DIR: &str = ".done";
/// Extensions the drop folder submits (case-insensitive).
pub const ACCEPTED_EXTENSIONS: [&str; 4] = ["xlsx", "xlsm", "xls", "ods"];

/// How to watch.
#[derive(Debug, Clone)]
pub struct WatchOptions {
    pub inbox: PathBuf,
    pub outbox: PathBuf,
    /// KB directory or published KB name, as for `rfpq submit --kb`.
    pub kb: Option<String>,
    /// Rows per batch job.
    pub batch_size: usize,
    /// Time between two looks at INBOX (and at the jobs in flight).
    pub poll: Duration,
    /// How long a file's size and mtime must stay unchanged before it is taken.
    pub settle: Duration,
    /// How long a package that looks cut off (no zip central directory, partial OLE sector) may
    /// stay unchanged before it is submitted anyway (and refused as damaged).
    pub incomplete_grace: Duration,
    /// The jobs' own `write_drafts` (`None`: the workers' config decides).
    pub write_drafts: Option<crate::pipeline::config::WriteDrafts>,
}

impl WatchOptions {
    /// Defaults: no KB, `DEFAULT_BATCH_SIZE`, poll 1 s, settle 2 s, incomplete grace 60 s.
    pub fn new(inbox: impl Into<PathBuf>, outbox: impl Into<PathBuf>) -> Self {
        Self {
            inbox: inbox.into(),
            outbox: outbox.into(),
            kb: None,
            batch_size: submit::DEFAULT_BATCH_SIZE,
            poll: Duration::from_secs(1),
            settle: Duration::from_secs(2),
            incomplete_grace: Duration::from_secs(60),
            write_drafts: None,
        }
    }
}

/// What one `watch` run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WatchReport {
    /// Files submitted as jobs.
    pub taken: usize,
    /// Files answered with an `.error.txt` and no job (unsupported name, refused by submit).
    pub refused: usize,
    /// Jobs whose filled and review workbooks were written (including `completed_with_errors`).
    pub completed: usize,
    /// Jobs that ended `failed` (or vanished from the queue): an `.error.txt` was written.
    pub failed: usize,
    /// Job ids still running when the watch stopped (each has its `.job` file in OUTBOX).
    pub in_flight: Vec<String>,
}

/// Why a watch could not start.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error("inbox {0} is not a directory (create it first)")]
    NoInbox(String),
    #[error("cannot create {path}: {source}")]
    CreateDir {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot use the knowledge base: {0}")]
    Kb(#[source] SubmitError),
}

/// Watches `opts.inbox` until `shutdown` resolves; see the module documentation.
pub async fn watch(
    queue: &RfpQueue,
    opts: &WatchOptions,
    shutdown: impl Future<Output = ()>,
) -> Result<WatchReport, WatchError> {
    if !opts.inbox.is_dir() {
        return Err(WatchError::NoInbox(opts.inbox.display().to_string()));
    }
    let done = opts.inbox.join(DONE_DIR);
    for dir in [&opts.outbox, &done] {
        tokio::fs::create_dir_all(dir)
            .await
            .map_err(|source| WatchError::CreateDir {
                path: dir.display().to_string(),
                source,
            })?;
    }
    // A wrong --kb is refused once here rather than on every file.
    if let Some(kb) = &opts.kb {
        submit::resolve_kb(queue, kb)
            .await
            .map_err(WatchError::Kb)?;
    }
    let mut w = Watcher {
        queue,
        opts,
        done,
        seen: HashMap::new(),
        handled: HashMap::new(),
        warned: HashMap::new(),
        jobs: Vec::new(),
        report: WatchReport::default(),
        tmp_counter: 0,
    };
    w.resume().await;
    tracing::info!(
        inbox = %opts.inbox.display(),
        outbox = %opts.outbox.display(),
        resumed = w.jobs.len(),
        "watching the drop folder"
    );

    let mut shutdown = std::pin::pin!(shutdown.fuse());
    'watch: loop {
        for file in w.scan().await {
            if shutdown.as_mut().now_or_never().is_some() {
                break 'watch;
            }
            w.take(file).await;
        }
        w.poll_jobs().await;
        tokio::select! {
            _ = shutdown.as_mut() => break,
            _ = tokio::time::sleep(opts.poll) => {}
        }
    }
    w.report.in_flight = w.jobs.iter().map(|j| j.id.clone()).collect();
    tracing::info!(report = ?w.report, "drop folder watch stopped");
    Ok(w.report)
}

/// Size and mtime: a file is taken once these stop changing.
type Fingerprint = (u64, Option<SystemTime>);

struct Seen {
    print: Fingerprint,
    since: Instant,
}

/// A file in INBOX that has settled.
struct Ready {
    path: PathBuf,
    name: String,
    print: Fingerprint,
    stable_since: Instant,
}

/// A submitted job: `base` is its reserved output name in OUTBOX.
struct Tracked {
    id: String,
    base: String,
}

struct Watcher<'a> {
    queue: &'a RfpQueue,
    opts: &'a WatchOptions,
    done: PathBuf,
    /// Last fingerprint of each candidate file in INBOX and since when it has not changed.
    seen: HashMap<PathBuf, Seen>,
    /// Files already dealt with that could not be moved to `.done`: skipped while unchanged.
    handled: HashMap<PathBuf, Fingerprint>,
    /// Last warning per file or job, so a retried problem is logged once, not every poll.
    warned: HashMap<String, String>,
    jobs: Vec<Tracked>,
    report: WatchReport,
    tmp_counter: u64,
}

/// Result of trying to finish a job.
enum Finish {
    Done,
    Retry,
}

impl Watcher<'_> {
    /// Warns about `key` unless the same message was the last one for it.
    fn warn_once(&mut self, key: &str, message: String) {
        if self.warned.get(key) != Some(&message) {
            tracing::warn!(what = key, "{message}");
            self.warned.insert(key.to_string(), message);
        }
    }

    /// Picks up `.job` files an earlier run left in OUTBOX.
    async fn resume(&mut self) {
        let Ok(mut dir) = tokio::fs::read_dir(&self.opts.outbox).await else {
            return;
        };
        while let Ok(Some(entry)) = dir.next_entry().await {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(base) = name.strip_suffix(".job") else {
                continue;
            };
            if base.is_empty() || is_ignored(&name) {
                continue;
            }
            match tokio::fs::read_to_string(entry.path()).await {
                Ok(text) => match text.lines().next().map(str::trim) {
                    Some(id) if !id.is_empty() => {
                        tracing::info!(job = id, base, "resuming a job from an earlier run");
                        self.jobs.push(Tracked {
                            id: id.to_string(),
                            base: base.to_string(),
                        });
                    }
                    _ => tracing::warn!(file = %entry.path().display(), "empty .job file ignored"),
                },
                Err(e) => tracing::warn!(file = %entry.path().display(), "cannot read: {e}"),
            }
        }
    }

    /// Looks at INBOX once and returns the files that have settled, by name.
    async fn scan(&mut self) -> Vec<Ready> {
        let mut dir = match tokio::fs::read_dir(&self.opts.inbox).await {
            Ok(dir) => dir,
            Err(e) => {
                let inbox = self.opts.inbox.display().to_string();
                self.warn_once(&inbox, format!("cannot list the inbox: {e}"));
                return Vec::new();
            }
        };
        let now = Instant::now();
        let mut present = HashSet::new();
        let mut names = HashSet::new();
        let mut candidates = Vec::new();
        loop {
            let entry = match dir.next_entry().await {
                Ok(Some(entry)) => entry,
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!("cannot list the inbox: {e}");
                    break;
                }
            };
            let name = entry.file_name().to_string_lossy().into_owned();
            names.insert(name.clone());
            if is_ignored(&name) {
                continue;
            }
            let path = entry.path();
            // Follows symlinks: a link to a file is a file.
            let Ok(meta) = tokio::fs::metadata(&path).await else {
                continue;
            };
            if !meta.is_file() {
                continue;
            }
            present.insert(path.clone());
            candidates.push((path, name, (meta.len(), meta.modified().ok())));
        }
        self.seen.retain(|p, _| present.contains(p));
        self.handled.retain(|p, _| present.contains(p));

        let mut ready = Vec::new();
        for (path, name, print) in candidates {
            if self.handled.get(&path) == Some(&print) {
                continue;
            }
            self.handled.remove(&path);
            if print.0 == 0 {
                self.seen.remove(&path);
                continue;
            }
            let since = match self.seen.get(&path) {
                Some(s) if s.print == print => s.since,
                _ => {
                    self.seen.insert(path, Seen { print, since: now });
                    continue;
                }
            };
            if now.duration_since(since) < self.opts.settle {
                continue;
            }
            if names.contains(&format!("~${name}")) || names.contains(&format!(".~lock.{name}#")) {
                tracing::debug!(file = %name, "still open in an editor");
                continue;
            }
            ready.push(Ready {
                path,
                name,
                print,
                stable_since: since,
            });
        }
        ready.sort_by(|a, b| a.name.cmp(&b.name));
        ready
    }

    /// Deals with one settled file: refuses it, submits it, or leaves it for a later poll.
    async fn take(&mut self, file: Ready) {
        let ext = extension(&file.name);
        if !ACCEPTED_EXTENSIONS.contains(&ext.as_str()) {
            let why = format!(
                "{}: not a questionnaire workbook; the drop folder accepts {} files",
                file.name,
                ACCEPTED_EXTENSIONS.map(|e| format!(".{e}")).join(", ")
            );
            let todo = "Save it as an Excel workbook (.xlsx) and drop it into the inbox again.";
            self.refuse(&file, &why, todo).await;
            return;
        }
        if file.stable_since.elapsed() < self.opts.incomplete_grace {
            let path = file.path.clone();
            let incomplete = tokio::task::spawn_blocking(move || looks_incomplete(&path))
                .await
                .unwrap_or(false);
            if incomplete {
                tracing::debug!(file = %file.name, "the package is cut off: waiting for the rest");
                return;
            }
        }
        let kb = self.opts.kb.as_deref();
        match submit::submit_file(
            self.queue,
            &file.path,
            kb,
            self.opts.batch_size,
            self.opts.write_drafts,
        )
        .await
        {
            Ok(submitted) => {
                self.warned.remove(&file.name);
                self.seen.remove(&file.path);
                let base = self.reserve_base(stem(&file.name)).await;
                let moved = self.move_to_done(&file).await;
                let text = format!(
                    "{id}\nfile: {name}\nsubmitted: {at}\noriginal: {orig}\n\
                     progress: rfpq status {id}\n",
                    id = submitted.id,
                    name = file.name,
                    at = crate::queue::now_ms(),
                    orig = moved
                        .as_ref()
                        .map(|p| p.display().to_string())
                        .unwrap_or_else(|_| file.path.display().to_string()),
                );
                if let Err(e) = self
                    .write_output(&format!("{base}.job"), text.as_bytes())
                    .await
                {
                    tracing::error!(job = %submitted.id, "cannot write {base}.job: {e}");
                }
                for w in &submitted.warnings {
                    tracing::warn!(job = %submitted.id, file = %file.name, "{w}");
                }
                tracing::info!(job = %submitted.id, file = %file.name, output = %base, "queued");
                self.jobs.push(Tracked {
                    id: submitted.id,
                    base,
                });
                self.report.taken += 1;
            }
            Err(SubmitError::Read { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                self.seen.remove(&file.path);
            }
            Err(
                e @ (SubmitError::Read { .. }
                | SubmitError::Queue(_)
                | SubmitError::Kb(_)
                | SubmitError::UnknownKb(_)),
            ) => {
                // Not the file's fault (or maybe a passing lock): try again on the next poll.
                self.warn_once(&file.name, format!("not queued yet, will retry: {e}"));
            }
            Err(e) => {
                let todo = match e {
                    SubmitError::NoQuestions { .. } => {
                        "rfpq needs a sheet with a header row, a question column and an answer \
                         column (check with `rfpq inspect FILE`); fix the layout and drop it into \
                         the inbox again."
                    }
                    _ => {
                        "Open it in Excel or LibreOffice, make sure it is not password-protected \
                         or damaged, save it as .xlsx and drop it into the inbox again."
                    }
                };
                self.warned.remove(&file.name);
                self.refuse(&file, &e.to_string(), todo).await;
            }
        }
    }

    /// Writes `<stem>.error.txt` for a file that gets no job and moves it to `.done`.
    async fn refuse(&mut self, file: &Ready, why: &str, todo: &str) {
        tracing::warn!(file = %file.name, "refused: {why}");
        self.seen.remove(&file.path);
        let base = self.reserve_base(stem(&file.name)).await;
        let moved = self.move_to_done(file).await;
        let where_now = match &moved {
            Ok(p) => format!("The original was moved to {}.", p.display()),
            Err(e) => format!(
                "The original could not be moved out of the inbox ({e}); it stays at {}.",
                file.path.display()
            ),
        };
        let text = format!("{}\n{todo}\n{where_now}\n", one_line(why));
        if let Err(e) = self
            .write_output(&format!("{base}.error.txt"), text.as_bytes())
            .await
        {
            tracing::error!(file = %file.name, "cannot write {base}.error.txt: {e}");
        }
        self.report.refused += 1;
    }

    /// Moves a taken file to `INBOX/.done` under a name that is not used yet. When that fails
    /// the file is remembered, so it is not taken again while it stays unchanged.
    async fn move_to_done(&mut self, file: &Ready) -> std::io::Result<PathBuf> {
        let result = async {
            let target = unique_path(&self.done, &file.name).await;
            tokio::fs::rename(&file.path, &target).await?;
            Ok(target)
        }
        .await;
        if let Err(e) = &result {
            tracing::error!(file = %file.name, "cannot move it to {}: {e}", self.done.display());
            self.handled.insert(file.path.clone(), file.print);
        }
        result
    }

    /// A base name in OUTBOX that no job in flight and no existing output uses.
    async fn reserve_base(&self, stem: &str) -> String {
        let stem = if stem.is_empty() { "workbook" } else { stem };
        for n in 1.. {
            let base = if n == 1 {
                stem.to_string()
            } else {
                format!("{stem}-{n}")
            };
            if self.jobs.iter().any(|j| j.base == base) {
                continue;
            }
            let mut taken = false;
            for suffix in [
                ".job",
                ".error.txt",
                ".filled.xlsx",
                ".filled.xlsm",
                ".review.xlsx",
            ] {
                if tokio::fs::try_exists(self.opts.outbox.join(format!("{base}{suffix}")))
                    .await
                    .unwrap_or(true)
                {
                    taken = true;
                    break;
                }
            }
            if !taken {
                return base;
            }
        }
        unreachable!("an unbounded range always yields a free name")
    }

    /// Writes `OUTBOX/name` atomically: a temporary dotfile, flushed, then renamed.
    async fn write_output(&mut self, name: &str, bytes: &[u8]) -> std::io::Result<()> {
        use tokio::io::AsyncWriteExt;
        self.tmp_counter += 1;
        let tmp = self.opts.outbox.join(format!(
            ".{name}.{}-{}.tmp",
            std::process::id(),
            self.tmp_counter
        ));
        let result = async {
            let mut f = tokio::fs::File::create(&tmp).await?;
            f.write_all(bytes).await?;
            f.sync_all().await?;
            drop(f);
            tokio::fs::rename(&tmp, self.opts.outbox.join(name)).await
        }
        .await;
        if result.is_err() {
            let _ = tokio::fs::remove_file(&tmp).await;
        }
        result
    }

    /// Checks every job in flight once and writes the outputs of those that ended.
    async fn poll_jobs(&mut self) {
        if self.jobs.is_empty() {
            return;
        }
        let statuses =
            futures_util::future::join_all(self.jobs.iter().map(|j| self.queue.status(&j.id)))
                .await;
        let jobs = std::mem::take(&mut self.jobs);
        let mut still = Vec::with_capacity(jobs.len());
        for (job, status) in jobs.into_iter().zip(statuses) {
            let outcome = match status {
                Ok(st) if !st.state.is_final() => Finish::Retry,
                Ok(st) => self.finish(&job, &st).await,
                Err(QueueError::UnknownJob(_)) => {
                    let why = format!(
                        "job {} is not in the queue: it is older than the 7-day retention, or was \
                         submitted to another queue (Redis URL or prefix)",
                        job.id
                    );
                    self.fail(&job, &why, "Drop the file into the inbox again.")
                        .await
                }
                Err(e) => {
                    self.warn_once(&job.id, format!("cannot read job status, will retry: {e}"));
                    Finish::Retry
                }
            };
            if let Finish::Retry = outcome {
                still.push(job);
            } else {
                self.warned.remove(&job.id);
            }
        }
        // Jobs taken while finishing (none today) would be in self.jobs; keep both.
        still.append(&mut self.jobs);
        self.jobs = still;
    }

    async fn finish(&mut self, job: &Tracked, st: &JobStatus) -> Finish {
        match st.state {
            JobPhase::Completed | JobPhase::CompletedWithErrors => {}
            // Failed, cancelled, or any other terminal state: no workbook to hand back.
            other => {
                let reason = st.reason.as_deref().unwrap_or("no reason was recorded");
                let why = format!(
                    "{}: job {} ended {}: {reason}",
                    st.file_name,
                    job.id,
                    other.as_str()
                );
                let todo = format!(
                    "See `rfpq status {}` for details; fix the file and drop it into the inbox \
                     again.",
                    job.id
                );
                return self.fail(job, &why, &todo).await;
            }
        }
        let (filled, review) = match tokio::join!(
            self.queue.result(&job.id, false),
            self.queue.result(&job.id, true)
        ) {
            (Ok(f), Ok(r)) => (f, r),
            (Err(e), _) | (_, Err(e)) => {
                self.warn_once(
                    &job.id,
                    format!("cannot fetch the results, will retry: {e}"),
                );
                return Finish::Retry;
            }
        };
        let Some(filled) = filled else {
            let why = format!(
                "{}: job {} finished ({}) but no filled workbook is stored",
                st.file_name,
                job.id,
                st.state.as_str()
            );
            return self
                .fail(job, &why, "Drop the file into the inbox again.")
                .await;
        };
        let ext = st.format().output_extension();
        let filled_name = format!("{}.filled.{ext}", job.base);
        if let Err(e) = self.write_output(&filled_name, &filled).await {
            self.warn_once(
                &job.id,
                format!("cannot write {filled_name}, will retry: {e}"),
            );
            return Finish::Retry;
        }
        if let Some(review) = review {
            let review_name = format!("{}.review.xlsx", job.base);
            if let Err(e) = self.write_output(&review_name, &review).await {
                self.warn_once(
                    &job.id,
                    format!("cannot write {review_name}, will retry: {e}"),
                );
                return Finish::Retry;
            }
        } else {
            tracing::warn!(job = %job.id, "no review workbook stored");
        }
        self.remove_job_file(job).await;
        tracing::info!(
            job = %job.id,
            state = st.state.as_str(),
            rows = st.rows_total,
            needs_review = st.needs_review,
            output = %filled_name,
            "answered"
        );
        self.report.completed += 1;
        Finish::Done
    }

    /// Writes `<base>.error.txt` for a job that ended without a result.
    async fn fail(&mut self, job: &Tracked, why: &str, todo: &str) -> Finish {
        let name = format!("{}.error.txt", job.base);
        let text = format!("{}\n{todo}\n", one_line(why));
        if let Err(e) = self.write_output(&name, text.as_bytes()).await {
            self.warn_once(&job.id, format!("cannot write {name}, will retry: {e}"));
            return Finish::Retry;
        }
        tracing::warn!(job = %job.id, "{why}");
        self.remove_job_file(job).await;
        self.report.failed += 1;
        Finish::Done
    }

    async fn remove_job_file(&self, job: &Tracked) {
        let path = self.opts.outbox.join(format!("{}.job", job.base));
        if let Err(e) = tokio::fs::remove_file(&path).await
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(file = %path.display(), "cannot remove: {e}");
        }
    }
}
