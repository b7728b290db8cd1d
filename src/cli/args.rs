//! The command line's arguments (clap) and the settings built from the global ones: the router
//! config (with `--write-drafts`), the router and the queue's address. Does not run commands.

use crate::pipeline::config::{AnsweringConfig, Settings, WriteDrafts};
use crate::queue::QueueConfig;
use crate::router::Router;
use crate::router::config::RouterConfig;
use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Parser)]
#[command(
    name = "rfpq",
    version,
    about = "Bulk-answers RFP and security questionnaires from a Redis job queue"
)]
pub struct Cli {
    #[command(flatten)]
    pub(super) global: Global,
    #[command(subcommand)]
    pub(super) command: Command,
}

#[derive(Args, Clone)]
pub(super) struct Global {
    /// Router config (default: the built-in config/llm_models.yaml).
    #[arg(long, global = true, env = "RFPQ_CONFIG")]
    pub(super) config: Option<PathBuf>,
    /// Redis URL.
    #[arg(
        long,
        global = true,
        env = "RFPQ_REDIS_URL",
        default_value = "redis://127.0.0.1:6379"
    )]
    pub(super) redis_url: String,
    /// Key prefix (hash-tagged so one job's keys share a cluster slot).
    #[arg(long, global = true, env = "RFPQ_PREFIX", default_value = "{rfpq}")]
    pub(super) prefix: String,
    /// Log format.
    #[arg(long, global = true, value_parser = ["text", "json"], default_value = "text")]
    pub(super) log_format: String,
    /// Where untrusted drafts go: `review_only` (the review workbook; default from the
    /// config's `answering.write_drafts`) or `cells` (the customer's file too).
    #[arg(long, global = true, env = "RFPQ_WRITE_DRAFTS", value_parser = ["review_only", "cells"])]
    pub(super) write_drafts: Option<String>,
}

#[derive(Subcommand)]
pub(super) enum Command {
    /// Fill the bundled real checklist with the embedded models (through the queue when Redis answers).
    Demo {
        /// Where the demo writes its files.
        #[arg(long, default_value = "rfpq-demo")]
        out: PathBuf,
    },
    /// Answer a workbook in-process, without Redis.
    Fill {
        input: PathBuf,
        #[arg(long)]
        kb: Option<PathBuf>,
        #[arg(short, long)]
        output: PathBuf,
        /// Review workbook path (default: OUTPUT with .review.xlsx).
        #[arg(long)]
        review: Option<PathBuf>,
        /// Rows answered at once.
        #[arg(long, default_value_t = 2)]
        parallel: usize,
        /// Also write every row's outcome (answer, band, confidence signals, sources, KB
        /// version, config hash) as JSON lines to this file, for audit and calibration.
        #[arg(long)]
        outcomes: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Compare a filled questionnaire with a labelled copy: precision of written choices,
    /// coverage, drafts, recall of each true value, each beside the always-majority baseline
    /// (and, with --baseline, copying another questionnaire's answers); text similarity and a
    /// reliability table of confidence bands (from the review workbook).
    Eval {
        filled: PathBuf,
        truth: PathBuf,
        /// The filled copy's review workbook (default: FILLED with .review.xlsx, if present).
        #[arg(long)]
        review: Option<PathBuf>,
        /// An answered questionnaire (e.g. last year's) for the copy-nearest baseline: each
        /// question takes the answer of its most similar question there.
        #[arg(long, value_name = "OTHER.xlsx")]
        baseline: Option<PathBuf>,
        /// Text answers at least this similar (cosine) to the truth count as similar.
        #[arg(long, default_value_t = 0.7)]
        similar_at: f32,
        #[arg(long)]
        json: bool,
    },
    /// Validate a workbook and queue it.
    Submit {
        file: PathBuf,
        /// A KB directory (published to Redis for the workers) or a published KB name.
        #[arg(long)]
        kb: Option<String>,
        /// Rows per batch job.
        #[arg(long, default_value_t = crate::submit::DEFAULT_BATCH_SIZE)]
        batch_size: usize,
        /// Wait until the job finishes, showing progress.
        #[arg(long)]
        wait: bool,
    },
    /// Run a worker until SIGINT/SIGTERM.
    Worker {
        #[arg(long, default_value_t = 2)]
        concurrency: usize,
        /// Job lock, renewed every half of it; a dead worker's batch is re-run about this
        /// long after it died (at least three stall checks).
        #[arg(long, default_value_t = 15_000)]
        lock_ms: u64,
        /// How often batches of dead workers are looked for.
        #[arg(long, default_value_t = 5_000)]
        stalled_ms: u64,
        /// Stalls after which a batch is failed as a poison batch.
        #[arg(long, default_value_t = 3)]
        max_stalls: usize,
        /// At SIGTERM, how long rows in flight may finish before the batch is handed back.
        #[arg(long, default_value_t = 25_000)]
        grace_ms: u64,
        /// Rows one batch answers at once (0: the answer provider's `max_concurrency`, so a
        /// single batch fills the backend's parallel slots).
        #[arg(long, default_value_t = 0)]
        rows_in_flight: usize,
        /// Do not load the models at start (by default the answer model and the embedding
        /// model are loaded before the first batch needs them).
        #[arg(long)]
        no_warm_up: bool,
        /// Serve Prometheus metrics (`GET /metrics`, no authentication) on HOST:PORT; port 0
        /// picks a free one. The bound address is logged: `metrics listening on ADDR`.
        #[arg(long, value_name = "HOST:PORT")]
        metrics_addr: Option<std::net::SocketAddr>,
    },
    /// Cancel a job from any machine: a queued job at once, a running one within a second
    /// (rows in flight are dropped; finished rows are kept in a partial result).
    Cancel { job: String },
    /// Answer again only the failed rows of a finished job (and rows a cancel left undone).
    Retry {
        job: String,
        /// Wait until the job finishes, showing progress.
        #[arg(long)]
        wait: bool,
    },
    /// Watch a drop folder: queue every questionnaire written into INBOX, put the filled and
    /// review workbooks (or NAME.error.txt) into OUTBOX, move originals to INBOX/.done.
    Watch {
        inbox: PathBuf,
        #[arg(long)]
        out: PathBuf,
        /// A KB directory (published to Redis for the workers) or a published KB name.
        #[arg(long)]
        kb: Option<String>,
        #[arg(long, default_value_t = crate::submit::DEFAULT_BATCH_SIZE)]
        batch_size: usize,
        /// How often INBOX and the jobs are looked at.
        #[arg(long, default_value_t = 1000)]
        poll_ms: u64,
        /// A file must be unchanged this long before it is taken.
        #[arg(long, default_value_t = 2000)]
        settle_ms: u64,
    },
    /// Serve the HTTP API: upload (POST /jobs), status, result, review, cancel, /healthz,
    /// /metrics and /openapi.json, behind a bearer token.
    Serve {
        #[arg(long, default_value = "127.0.0.1:8080")]
        addr: std::net::SocketAddr,
        /// Environment variable holding the bearer token (the token itself is never logged).
        #[arg(long, default_value = "RFPQ_API_TOKEN")]
        token_env: String,
        /// Serve without authentication (a warning is printed; a token in the variable is ignored).
        #[arg(long)]
        no_auth: bool,
        /// Default KB for uploads that name none: a KB directory or a published KB name.
        #[arg(long)]
        kb: Option<String>,
        /// Largest workbook an upload may carry, in MiB.
        #[arg(long, default_value_t = 50)]
        max_upload_mb: usize,
        /// Rows per batch job for uploads that do not say.
        #[arg(long, default_value_t = crate::submit::DEFAULT_BATCH_SIZE)]
        batch_size: usize,
    },
    /// List the live workers: host, pid, concurrency, active jobs, last beat, memory.
    Workers {
        #[arg(long)]
        json: bool,
    },
    /// Show a job's state and progress.
    Status {
        job: String,
        #[arg(long)]
        json: bool,
        /// Refresh until the job finishes.
        #[arg(long)]
        watch: bool,
    },
    /// Download a finished job's filled workbook (and review workbook); with `--apply`, write
    /// the job's original with a reviewed review workbook applied instead (see `apply`).
    Result {
        job: String,
        #[arg(short, long)]
        output: PathBuf,
        #[arg(long)]
        review: Option<PathBuf>,
        /// A reviewed review workbook of this job to apply to its original.
        #[arg(long, value_name = "REVIEW")]
        apply: Option<PathBuf>,
        /// With --apply: fail, writing nothing, when any row is refused.
        #[arg(long, requires = "apply")]
        strict: bool,
    },
    /// Write the reviewer's decisions into the customer's original file: approved and edited
    /// answers (Decision and Final columns of the review workbook), and rfpq's written answers
    /// nobody rejected; rejected rows stay empty; illegal values are refused with the row.
    Apply {
        /// The customer's original questionnaire.
        original: PathBuf,
        /// The review workbook rfpq wrote for it, as the reviewer left it.
        review: PathBuf,
        #[arg(short, long)]
        output: PathBuf,
        /// Also add the approved and edited answers to this KB's answer library (marked
        /// reviewer-approved), so the next questionnaire reuses them.
        #[arg(long, value_name = "KB")]
        learn: Option<PathBuf>,
        /// Fail, writing nothing, when any row is refused.
        #[arg(long)]
        strict: bool,
        #[arg(long)]
        json: bool,
    },
    /// Show the questions and answer slots rfpq detects in a workbook.
    Inspect {
        file: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// List every difference between two workbooks outside the answer cells rfpq detects in
    /// the original (exit 1 when there is any).
    Verify {
        original: PathBuf,
        filled: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// One routed LLM call; prints the answer and what the router did.
    Ask {
        #[arg(long, default_value = "answer")]
        task: String,
        prompt: String,
        #[arg(long)]
        json: bool,
    },
    /// Knowledge base commands.
    Kb {
        #[command(subcommand)]
        command: KbCommand,
    },
    /// Check, pull or warm the models the router config names.
    Models {
        #[command(subcommand)]
        command: ModelsCommand,
    },
    /// CPU, RAM and GPUs of this machine, and which configured models fit it.
    Doctor {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub(super) enum ModelsCommand {
    /// Which providers answer and which configured models they lack (exit 1 if any).
    Check {
        #[arg(long)]
        json: bool,
    },
    /// Pull Ollama models with a progress bar: the given `provider:model`, or every missing one.
    Pull {
        targets: Vec<String>,
        /// Give up on one model after this many seconds.
        #[arg(long, default_value_t = 3600)]
        timeout_s: u64,
    },
    /// Load Ollama models into memory so the first question does not wait for it.
    Warm {
        targets: Vec<String>,
        #[arg(long, default_value_t = 600)]
        timeout_s: u64,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub(super) enum KbCommand {
    /// Add or update documents (.md, .txt, .html, .pdf, .docx) and answered questionnaires
    /// (.xlsx, .xlsm, .xls, .ods) in a knowledge base; unchanged files are not re-read.
    Ingest {
        #[arg(required = true)]
        inputs: Vec<PathBuf>,
        #[arg(long)]
        kb: PathBuf,
        /// Start from an empty KB (needed after changing the embedding model).
        #[arg(long)]
        rebuild: bool,
        /// Vector storage: f32, f16 (half the memory) or i8 (a quarter).
        #[arg(long)]
        quantization: Option<crate::kb::Quantization>,
        /// Do not read or write the on-disk embedding cache.
        #[arg(long)]
        no_cache: bool,
        #[arg(long)]
        json: bool,
    },
    /// Remove sources (by name as `kb stats` lists them, or by file name).
    Remove {
        #[arg(long)]
        kb: PathBuf,
        #[arg(required = true)]
        sources: Vec<String>,
    },
    /// What a knowledge base holds.
    Stats {
        #[arg(long)]
        kb: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Search a knowledge base (hybrid: vectors + keywords, answer library first).
    Search {
        #[arg(long)]
        kb: PathBuf,
        query: String,
        #[arg(short, default_value_t = 5)]
        k: usize,
        #[arg(long)]
        json: bool,
    },
    /// Recall@k and MRR of labelled questions (JSONL: {"question", "expected": [source]}).
    Eval {
        #[arg(long)]
        kb: PathBuf,
        labels: PathBuf,
        #[arg(short, default_value_t = 3)]
        k: usize,
        #[arg(long)]
        json: bool,
    },
    /// Publish the current snapshot for workers on other machines: to Redis, or with --dir
    /// to a shared directory.
    Publish {
        kb: PathBuf,
        #[arg(long)]
        name: String,
        /// A shared directory instead of Redis.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Published knowledge bases in Redis and their current versions.
    List,
}

/// The config file's settings (`--config`, else the built-in ones), with `--write-drafts`.
pub(super) fn settings(g: &Global) -> Result<Settings> {
    let mut cfg = match &g.config {
        Some(path) => Settings::load(path)?,
        None => Settings::builtin(),
    };
    if let Some(w) = write_drafts(g)? {
        cfg.answering.write_drafts = w;
    }
    Ok(cfg)
}

/// The global `--write-drafts`, checked.
pub(super) fn write_drafts(g: &Global) -> Result<Option<WriteDrafts>> {
    match g.write_drafts.as_deref() {
        None => Ok(None),
        Some(w) => match WriteDrafts::parse(w) {
            Some(w) => Ok(Some(w)),
            None => bail!("--write-drafts takes review_only or cells, not '{w}'"),
        },
    }
}

/// The router config of the config file.
pub(super) fn router_config(g: &Global) -> Result<RouterConfig> {
    Ok(settings(g)?.router)
}

pub(super) fn load_router(g: &Global) -> Result<Arc<Router>> {
    Ok(load_pipeline(g)?.0)
}

/// The router and the pipeline's `answering:` settings, from one config file.
pub(super) fn load_pipeline(g: &Global) -> Result<(Arc<Router>, AnsweringConfig)> {
    let cfg = settings(g)?;
    let router = Router::new(cfg.router).context("cannot set up the model router")?;
    Ok((Arc::new(router), cfg.answering))
}

pub(super) fn queue_config(g: &Global) -> QueueConfig {
    QueueConfig::new(g.redis_url.clone(), g.prefix.clone())
}
