//! Command-line interface: parses arguments and calls the library; prints results.
//! Holds no business logic of its own.

use crate::kb::{self, KnowledgeBase};
use crate::pipeline::config::{AnsweringConfig, Settings, WriteDrafts};
use crate::pipeline::{self, FillSummary};
use crate::queue::{JobPhase, JobStatus, QueueConfig, RfpQueue};
use crate::router::Router;
use crate::router::config::{RouterConfig, Task};
use crate::router::types::ChatMessage;
use crate::workbook::SourceFormat;
use crate::worker::{RunningWorker, WorkerSettings};
use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "rfpq",
    version,
    about = "Bulk-answers RFP and security questionnaires from a Redis job queue"
)]
pub struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Clone)]
struct Global {
    /// Router config (default: the built-in config/llm_models.yaml).
    #[arg(long, global = true, env = "RFPQ_CONFIG")]
    config: Option<PathBuf>,
    /// Redis URL.
    #[arg(
        long,
        global = true,
        env = "RFPQ_REDIS_URL",
        default_value = "redis://127.0.0.1:6379"
    )]
    redis_url: String,
    /// Key prefix (hash-tagged so one job's keys share a cluster slot).
    #[arg(long, global = true, env = "RFPQ_PREFIX", default_value = "{rfpq}")]
    prefix: String,
    /// Log format.
    #[arg(long, global = true, value_parser = ["text", "json"], default_value = "text")]
    log_format: String,
    /// Where untrusted drafts go: `review_only` (the review workbook; default from the
    /// config's `answering.write_drafts`) or `cells` (the customer's file too).
    #[arg(long, global = true, env = "RFPQ_WRITE_DRAFTS", value_parser = ["review_only", "cells"])]
    write_drafts: Option<String>,
}

#[derive(Subcommand)]
enum Command {
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
enum ModelsCommand {
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
enum KbCommand {
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

fn init_logging(format: &str, default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if format == "json" {
        let _ = builder.json().try_init();
    } else {
        let _ = builder.try_init();
    }
}

/// The config file's settings (`--config`, else the built-in ones), with `--write-drafts`.
fn settings(g: &Global) -> Result<Settings> {
    let mut cfg = match &g.config {
        Some(path) => Settings::load(path)?,
        None => Settings::builtin(),
    };
    if let Some(w) = write_drafts(g)? {
        cfg.answering.write_drafts = w;
    }
    Ok(cfg)
}

fn router_config(g: &Global) -> Result<RouterConfig> {
    Ok(settings(g)?.router)
}

/// The global `--write-drafts`, checked.
fn write_drafts(g: &Global) -> Result<Option<WriteDrafts>> {
    match g.write_drafts.as_deref() {
        None => Ok(None),
        Some(w) => match WriteDrafts::parse(w) {
            Some(w) => Ok(Some(w)),
            None => bail!("--write-drafts takes review_only or cells, not '{w}'"),
        },
    }
}

fn load_router(g: &Global) -> Result<Arc<Router>> {
    Ok(load_pipeline(g)?.0)
}

/// The router and the pipeline's `answering:` settings, from one config file.
fn load_pipeline(g: &Global) -> Result<(Arc<Router>, AnsweringConfig)> {
    let cfg = settings(g)?;
    let router = Router::new(cfg.router).context("cannot set up the model router")?;
    Ok((Arc::new(router), cfg.answering))
}

fn queue_config(g: &Global) -> QueueConfig {
    QueueConfig::new(g.redis_url.clone(), g.prefix.clone())
}

fn review_path(output: &Path, review: Option<PathBuf>) -> PathBuf {
    review.unwrap_or_else(|| {
        let stem = output
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "filled".into());
        output.with_file_name(format!("{stem}.review.xlsx"))
    })
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    std::fs::write(path, bytes).with_context(|| format!("cannot write {}", path.display()))
}

/// Entry point of the binary.
pub async fn run(cli: Cli) -> Result<()> {
    let g = cli.global.clone();
    let default_log = if matches!(cli.command, Command::Worker { .. }) {
        "info"
    } else {
        "warn"
    };
    init_logging(&g.log_format, default_log);
    crate::install_tls_provider();
    match cli.command {
        Command::Demo { out } => demo(&g, &out).await,
        Command::Fill {
            input,
            kb,
            output,
            review,
            parallel,
            outcomes,
            json,
        } => {
            let (router, answering) = load_pipeline(&g)?;
            let review = review_path(&output, review);
            let files = FillFiles {
                input: &input,
                kb: kb.as_deref(),
                output: &output,
                review: &review,
                outcomes: outcomes.as_deref(),
            };
            let summary = fill(router, answering, &files, parallel, !json).await?;
            if json {
                let v = serde_json::json!({"output": output, "review": review, "summary": summary});
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                print_summary(&summary, &output, &review);
            }
            Ok(())
        }
        Command::Eval {
            filled,
            truth,
            review,
            baseline,
            similar_at,
            json,
        } => {
            let router = load_router(&g)?;
            let review = review.or_else(|| {
                let p = review_path(&filled, None);
                p.exists().then_some(p)
            });
            let read =
                |p: &Path| std::fs::read(p).with_context(|| format!("cannot read {}", p.display()));
            let report = crate::eval::evaluate(
                &router,
                read(&filled)?,
                read(&truth)?,
                review.as_deref().map(read).transpose()?,
                baseline.as_deref().map(read).transpose()?,
                similar_at,
            )
            .await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", report.render());
            }
            Ok(())
        }
        Command::Submit {
            file,
            kb,
            batch_size,
            wait,
        } => {
            let queue = RfpQueue::connect(queue_config(&g)).await?;
            let submitted = crate::submit::submit_file(
                &queue,
                &file,
                kb.as_deref(),
                batch_size,
                write_drafts(&g)?,
            )
            .await?;
            for w in &submitted.warnings {
                eprintln!("warning: {w}");
            }
            let id = submitted.id;
            println!("{id}");
            if wait {
                let st = watch(&queue, &id, false).await?;
                if st.state == JobPhase::Failed {
                    bail!("job {id} failed: {}", st.reason.unwrap_or_default());
                }
            }
            Ok(())
        }
        Command::Worker {
            concurrency,
            lock_ms,
            stalled_ms,
            max_stalls,
            grace_ms,
            rows_in_flight,
            no_warm_up,
            metrics_addr,
        } => {
            let (router, answering) = load_pipeline(&g)?;
            let settings = WorkerSettings {
                concurrency,
                lock_duration: Duration::from_millis(lock_ms.max(1000)),
                stalled_interval: Duration::from_millis(stalled_ms.max(100)),
                shutdown_grace: Duration::from_millis(grace_ms),
                max_stalls: max_stalls.max(1),
                rows_in_flight,
                warm_up: !no_warm_up,
                answering,
            };
            if let Some(addr) = metrics_addr {
                let queue = RfpQueue::connect(queue_config(&g)).await?;
                crate::metrics::serve(addr, queue)
                    .await
                    .with_context(|| format!("cannot serve metrics on {addr}"))?;
            }
            let worker = RunningWorker::start(queue_config(&g), router, settings).await?;
            tracing::info!(redis = %g.redis_url, prefix = %g.prefix, concurrency, "worker started");
            shutdown_signal().await;
            tracing::info!("shutting down");
            worker.shutdown().await?;
            Ok(())
        }
        Command::Cancel { job } => {
            let queue = RfpQueue::connect(queue_config(&g)).await?;
            match queue.cancel(&job).await? {
                crate::queue::CancelOutcome::Cancelled => {
                    println!("{job}: cancelled (it had not started)")
                }
                crate::queue::CancelOutcome::Requested => println!(
                    "{job}: cancel requested; its workers stop within a second and keep the rows already answered (rfpq status {job})"
                ),
                crate::queue::CancelOutcome::AlreadyFinal(p) => {
                    println!("{job}: already {}; nothing to cancel", p.as_str())
                }
            }
            Ok(())
        }
        Command::Retry { job, wait } => {
            let queue = RfpQueue::connect(queue_config(&g)).await?;
            let n = queue.retry(&job).await?;
            println!("{job}: {n} row(s) queued again");
            if wait {
                let st = watch(&queue, &job, false).await?;
                if st.state == JobPhase::Failed {
                    bail!("job {job} failed: {}", st.reason.unwrap_or_default());
                }
            }
            Ok(())
        }
        Command::Watch {
            inbox,
            out,
            kb,
            batch_size,
            poll_ms,
            settle_ms,
        } => {
            let queue = RfpQueue::connect(queue_config(&g)).await?;
            let mut opts = crate::watch::WatchOptions::new(inbox, out);
            opts.write_drafts = write_drafts(&g)?;
            opts.kb = kb;
            opts.batch_size = batch_size;
            opts.poll = Duration::from_millis(poll_ms.max(50));
            opts.settle = Duration::from_millis(settle_ms);
            eprintln!(
                "watching {} → {} (Ctrl-C to stop; running jobs keep going in the queue)",
                opts.inbox.display(),
                opts.outbox.display()
            );
            let report = crate::watch::watch(&queue, &opts, shutdown_signal()).await?;
            eprintln!(
                "stopped: {} taken, {} refused, {} completed, {} failed, {} still running",
                report.taken,
                report.refused,
                report.completed,
                report.failed,
                report.in_flight.len()
            );
            Ok(())
        }
        Command::Serve {
            addr,
            token_env,
            no_auth,
            kb,
            max_upload_mb,
            batch_size,
        } => {
            let token = std::env::var(&token_env)
                .ok()
                .filter(|t| !t.trim().is_empty());
            let token = match (token, no_auth) {
                (_, true) => {
                    eprintln!(
                        "warning: --no-auth: the API accepts requests from anyone who can reach {addr}"
                    );
                    None
                }
                (Some(t), false) => Some(t.trim().to_string()),
                (None, false) => bail!(
                    "no API token: set the environment variable {token_env} (or name another with --token-env), or pass --no-auth to serve without authentication"
                ),
            };
            let queue = RfpQueue::connect(queue_config(&g)).await?;
            let opts = crate::api::ServeOptions {
                addr,
                token,
                max_upload_bytes: max_upload_mb.max(1).saturating_mul(1024 * 1024),
                kb,
                batch_size,
            };
            if let Some(kb) = &opts.kb {
                crate::submit::resolve_kb(&queue, kb)
                    .await
                    .context("cannot use the knowledge base")?;
            }
            let listener = crate::api::bind(addr).await?;
            eprintln!(
                "serving the rfpq API on http://{} ({}; Ctrl-C to stop)",
                listener.local_addr()?,
                if opts.token.is_some() {
                    "bearer token required"
                } else {
                    "no authentication"
                }
            );
            crate::api::serve_on(listener, queue, opts, shutdown_signal()).await?;
            Ok(())
        }
        Command::Workers { json } => {
            let queue = RfpQueue::connect(queue_config(&g)).await?;
            let workers = queue.workers().await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&workers)?);
            } else if workers.is_empty() {
                println!("no live workers on {} (prefix {})", g.redis_url, g.prefix);
            } else {
                let now = crate::queue::now_ms();
                for w in &workers {
                    println!(
                        "{}  pid {}  concurrency {}  {} active job(s){}  last beat {:.1} s ago  RSS {} MiB  up {}",
                        w.host,
                        w.pid,
                        w.concurrency,
                        w.active_jobs.len(),
                        if w.active_jobs.is_empty() {
                            String::new()
                        } else {
                            format!(" [{}]", w.active_jobs.join(", "))
                        },
                        now.saturating_sub(w.last_beat_ms) as f64 / 1000.0,
                        w.rss_bytes / (1024 * 1024),
                        human_duration(now.saturating_sub(w.started_ms) / 1000)
                    );
                }
            }
            Ok(())
        }
        Command::Status {
            job,
            json,
            watch: w,
        } => {
            let queue = RfpQueue::connect(queue_config(&g)).await?;
            let st = if w {
                watch(&queue, &job, json).await?
            } else {
                queue.status(&job).await?
            };
            if json {
                println!("{}", serde_json::to_string(&st.to_json())?);
            } else if !w {
                println!("{}", status_line(&st));
            }
            Ok(())
        }
        Command::Result {
            job,
            output,
            review: _,
            apply: Some(reviewed),
            strict,
        } => {
            let queue = RfpQueue::connect(queue_config(&g)).await?;
            let original = queue.file(&job).await?;
            let review = read_input(&reviewed)?;
            let applied = apply_review(original, review, strict).await?;
            check_output_extension(&output, applied.format)?;
            write_file(&output, &applied.workbook)?;
            print_applied(&applied.report, &output);
            Ok(())
        }
        Command::Apply {
            original,
            review,
            output,
            learn,
            strict,
            json,
        } => {
            let applied =
                apply_review(read_input(&original)?, read_input(&review)?, strict).await?;
            check_output_extension(&output, applied.format)?;
            write_file(&output, &applied.workbook)?;
            let learnt = match &learn {
                Some(kb_dir) if !applied.report.reviewed.is_empty() => {
                    let router = load_router(&g)?;
                    let r = kb::ingest(
                        &router,
                        std::slice::from_ref(&review),
                        kb_dir,
                        &kb::IngestOptions::default(),
                    )
                    .await?;
                    Some((kb_dir.clone(), r))
                }
                _ => None,
            };
            if json {
                let v = serde_json::json!({
                    "output": output,
                    "report": applied.report,
                    "learnt": learnt.as_ref().map(|(dir, r)| serde_json::json!({"kb": dir, "version": r.version, "rows": applied.report.reviewed.len(), "skipped": r.skipped})),
                });
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                print_applied(&applied.report, &output);
                if let Some((_, r)) = &learnt {
                    for skipped in &r.skipped {
                        eprintln!("not learnt: {}: {}", skipped.path, skipped.reason);
                    }
                }
                if let Some((dir, r)) = learnt.as_ref().filter(|(_, r)| r.skipped.is_empty()) {
                    println!(
                        "learnt: {} reviewer-approved answers into {} (KB version {})",
                        applied.report.reviewed.len(),
                        dir.display(),
                        r.version
                    );
                }
            }
            Ok(())
        }
        Command::Result {
            job,
            output,
            review,
            apply: None,
            ..
        } => {
            let queue = RfpQueue::connect(queue_config(&g)).await?;
            let st = queue.status(&job).await?;
            check_output_extension(&output, st.format())?;
            let Some(filled) = queue.result(&job, false).await? else {
                bail!("job {job} has no result yet (state: {})", st.state.as_str());
            };
            write_file(&output, &filled)?;
            let review = review_path(&output, review);
            if let Some(r) = queue.result(&job, true).await? {
                write_file(&review, &r)?;
            }
            println!(
                "filled workbook: {}\nreview workbook: {}",
                output.display(),
                review.display()
            );
            Ok(())
        }
        Command::Inspect { file, json } => {
            let bytes =
                std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
            let q = crate::workbook::detect::inspect(&bytes)
                .with_context(|| file.display().to_string())?;
            if json {
                println!("{}", serde_json::to_string_pretty(&q)?);
            } else {
                print!("{}", inspect_text(&q));
            }
            Ok(())
        }
        Command::Verify {
            original,
            filled,
            json,
        } => verify(&original, &filled, json),
        Command::Models { command } => models(&g, command).await,
        Command::Doctor { json } => {
            let cfg = router_config(&g)?;
            let report = tokio::task::spawn_blocking(move || crate::doctor::run(&cfg)).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                println!(
                    "CPU: {} ({} logical CPUs{})\nRAM: {} GiB, {} GiB available\n{}",
                    report.cpu_model,
                    report.logical_cpus,
                    report
                        .physical_cores
                        .map(|c| format!(", {c} cores"))
                        .unwrap_or_default(),
                    report.memory_total_gib,
                    report.memory_available_gib,
                    report.summary
                );
                for g in &report.gpus {
                    println!(
                        "GPU: {} ({} GiB, from {})",
                        g.name, g.memory_total_gib, g.source
                    );
                }
                for m in &report.models {
                    let size = m
                        .estimated_gib
                        .map(|e| format!("≈{e} GiB at Q4_K_M"))
                        .unwrap_or_else(|| "size unknown".into());
                    println!("  {:<40} {:<20} fits: {}", m.target, size, m.fits);
                }
            }
            Ok(())
        }
        Command::Ask { task, prompt, json } => {
            let task: Task = task.parse().map_err(anyhow::Error::msg)?;
            let router = load_router(&g)?;
            if task == Task::Embed {
                let (v, record) = router.embed(&[prompt]).await?;
                let dims = v.first().map(Vec::len).unwrap_or(0);
                let out = serde_json::json!({"dimensions": dims, "record": record});
                println!(
                    "{}",
                    if json {
                        serde_json::to_string(&out)?
                    } else {
                        format!(
                            "{dims}-dimensional vector from {}:{}",
                            record.provider, record.model
                        )
                    }
                );
                return Ok(());
            }
            let messages = [ChatMessage::user(prompt)];
            let (reply, record) = router.chat(task, &messages, None).await?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string(
                        &serde_json::json!({"text": reply.text, "record": record})
                    )?
                );
            } else {
                println!(
                    "{}\n-- {}:{} in {} ms",
                    reply.text, record.provider, record.model, record.latency_ms
                );
            }
            Ok(())
        }
        Command::Kb { command } => kb_command(&g, command).await,
    }
}

fn verify(original: &Path, filled: &Path, json: bool) -> Result<()> {
    let read = |p: &Path| std::fs::read(p).with_context(|| format!("cannot read {}", p.display()));
    let (a, b) = (read(original)?, read(filled)?);
    let plan =
        crate::workbook::detect::inspect(&a).with_context(|| original.display().to_string())?;
    let declared: Vec<_> = plan.questions().flat_map(|q| q.answer_cells()).collect();
    let diffs = crate::workbook::verify::verify(&a, &b, &declared)
        .with_context(|| filled.display().to_string())?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(
                &serde_json::json!({"declared_cells": declared.len(), "differences": diffs})
            )?
        );
    } else if diffs.is_empty() {
        println!("no differences outside the {} answer cells", declared.len());
    } else {
        for d in &diffs {
            println!("{d}");
        }
    }
    if !diffs.is_empty() {
        bail!("{} difference(s) outside the answer cells", diffs.len());
    }
    Ok(())
}

fn absolute(p: &Path) -> Result<String> {
    Ok(std::path::absolute(p)
        .with_context(|| format!("bad path {}", p.display()))?
        .to_string_lossy()
        .into_owned())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! { _ = ctrl_c => {}, _ = term.recv() => {} }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

/// `1h 02m`, `3m 05s`, `12s`.
fn human_duration(secs: u64) -> String {
    match secs {
        s if s >= 3600 => format!("{}h {:02}m", s / 3600, s % 3600 / 60),
        s if s >= 60 => format!("{}m {:02}s", s / 60, s % 60),
        s => format!("{s}s"),
    }
}

/// The first status line: id, state, progress, ETA, file.
fn status_head(st: &JobStatus) -> String {
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
fn status_details(st: &JobStatus) -> String {
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

fn status_line(st: &JobStatus) -> String {
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
fn report_line(r: &crate::queue::JobReport) -> String {
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
fn usage_lines(r: &crate::queue::JobReport) -> String {
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

/// `rfpq models check|pull|warm` over `router::admin`.
async fn models(g: &Global, command: ModelsCommand) -> Result<()> {
    use crate::router::admin;
    use crate::router::config::parse_target;
    let cfg = router_config(g)?;
    let parse = |targets: &[String]| -> Result<Vec<crate::router::config::Target>> {
        targets
            .iter()
            .map(|t| parse_target(t).map_err(anyhow::Error::msg))
            .collect()
    };
    match command {
        ModelsCommand::Check { json } => {
            let report = admin::check(&cfg).await;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                for p in &report.providers {
                    let state = if !p.contacted {
                        "not contacted (cloud provider under data_policy local_only)".to_string()
                    } else if p.reachable {
                        format!("reachable in {} ms", p.latency_ms)
                    } else {
                        format!("UNREACHABLE: {}", p.error.as_deref().unwrap_or("no answer"))
                    };
                    println!(
                        "{} ({:?}{}): {state}",
                        p.provider,
                        p.kind,
                        p.base_url
                            .as_deref()
                            .map(|u| format!(", {u}"))
                            .unwrap_or_default()
                    );
                    if !p.missing.is_empty() && p.reachable {
                        println!("  missing: {}", p.missing.join(", "));
                    } else if !p.missing.is_empty() && p.contacted {
                        println!("  configured here: {}", p.configured.join(", "));
                    }
                    if p.api_key == "missing" {
                        println!("  API key: missing (set the variable named by api_key_env)");
                    }
                }
            }
            if !report.ok {
                bail!("some providers are unreachable or lack configured models");
            }
            Ok(())
        }
        ModelsCommand::Pull { targets, timeout_s } => {
            let mut targets = parse(&targets)?;
            if targets.is_empty() {
                let report = admin::check(&cfg).await;
                for p in report.providers.iter().filter(|p| {
                    p.kind == crate::router::config::ProviderKind::Ollama && p.reachable
                }) {
                    for m in &p.missing {
                        targets.push(
                            parse_target(&format!("{}:{m}", p.provider))
                                .map_err(anyhow::Error::msg)?,
                        );
                    }
                }
                if targets.is_empty() {
                    println!("nothing to pull: every configured Ollama model is present");
                    return Ok(());
                }
            }
            for t in targets {
                let bar = indicatif::ProgressBar::new(0);
                bar.set_style(
                    indicatif::ProgressStyle::with_template(
                        "{prefix} {msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
                    )
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                    .progress_chars("=> "),
                );
                bar.set_prefix(t.to_string());
                let report = admin::pull(&cfg, &t, Duration::from_secs(timeout_s), |p| {
                    if let Some(total) = p.total {
                        bar.set_length(total);
                    }
                    if let Some(done) = p.completed {
                        bar.set_position(done);
                    }
                    bar.set_message(p.status.clone());
                })
                .await;
                bar.finish_and_clear();
                let report = report?;
                println!(
                    "{t}: {} in {:.1} s",
                    report.status,
                    report.elapsed_ms as f64 / 1000.0
                );
            }
            Ok(())
        }
        ModelsCommand::Warm {
            targets,
            timeout_s,
            json,
        } => {
            let mut targets = parse(&targets)?;
            if targets.is_empty() {
                targets = cfg
                    .all_targets()
                    .into_iter()
                    .filter(|t| {
                        cfg.provider(&t.provider).map(|p| p.kind)
                            == Some(crate::router::config::ProviderKind::Ollama)
                    })
                    .collect();
                targets.dedup_by(|a, b| a.to_string() == b.to_string());
            }
            for t in targets {
                let r = admin::warm(&cfg, &t, Duration::from_secs(timeout_s)).await?;
                if json {
                    println!("{}", serde_json::to_string(&r)?);
                } else {
                    println!("{t}: loaded in {} ms", r.load_ms);
                }
            }
            Ok(())
        }
    }
}

/// The name a unit enum has in `--json` output (`choice`, `merged_non_anchor`), so the text
/// and JSON forms of `inspect` use the same words.
fn wire_name(value: &impl serde::Serialize) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// `rfpq inspect` as text: per sheet its verdict, every question with its slots, skipped cells
/// with their reason, and a count of the other rows by kind.
fn inspect_text(q: &crate::workbook::Questionnaire) -> String {
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
                let reason = wire_name(&sk.reason);
                let _ = writeln!(out, "             skipped {} ({reason})", sk.cell);
            }
        }
        if !s.other_rows.is_empty() {
            let mut kinds: std::collections::BTreeMap<String, Vec<u32>> = Default::default();
            for o in &s.other_rows {
                let kind = wire_name(&o.kind);
                kinds.entry(kind).or_default().push(o.row);
            }
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

/// Refuses an output name Excel would not open: a macro-enabled workbook must stay `.xlsm`,
/// everything else (including answers to an .xls/.ods) is written as `.xlsx`.
fn check_output_extension(output: &Path, format: SourceFormat) -> Result<()> {
    let want = format.output_extension();
    let ext = output
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    if ext != want {
        let hint = if format == SourceFormat::Xlsm {
            " (the workbook is macro-enabled; Excel refuses it under another extension)"
        } else if format.is_converted() {
            " (answers to an .xls/.ods are written into a new .xlsx)"
        } else {
            ""
        };
        bail!("the output {} must end in .{want}{hint}", output.display());
    }
    Ok(())
}

/// Polls a job until it reaches a final state, printing progress lines to stderr.
/// Follows a job until it ends: a progress bar (rows, ETA from the job's recent throughput)
/// when stderr is a terminal, otherwise one line per change, so logs stay readable.
async fn watch(queue: &RfpQueue, id: &str, quiet: bool) -> Result<JobStatus> {
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
    let mut last = String::new();
    loop {
        let st = queue.status(id).await?;
        let line = status_head(&st);
        match &bar {
            Some(pb) => {
                if last.is_empty() {
                    pb.println(format!("{line}{}", status_details(&st)));
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
                last = line;
            }
            None if !quiet && line != last => {
                if last.is_empty() {
                    eprintln!("{line}{}", status_details(&st));
                } else {
                    eprintln!("{line}");
                }
                last = line;
            }
            None => {}
        }
        if st.state.is_final() {
            if let Some(pb) = &bar {
                pb.finish_with_message(st.state.as_str());
            }
            if !quiet && let Some(r) = &st.reason {
                eprintln!("  reason: {r}");
            }
            return Ok(st);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
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

/// In-process fill (`pipeline::run::fill`): reads the input and the KB, writes the files.
pub async fn fill(
    router: Arc<Router>,
    answering: AnsweringConfig,
    files: &FillFiles<'_>,
    parallel: usize,
    show_progress: bool,
) -> Result<FillSummary> {
    let (bytes, questionnaire) = crate::submit::validate_file(files.input).await?;
    check_output_extension(files.output, questionnaire.source_format)?;
    for w in &questionnaire.warnings {
        eprintln!("warning: {w}");
    }
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
        bytes,
        &questionnaire,
        parallel,
        |done, total| {
            if show_progress && (done % 10 == 0 || done == total) {
                eprintln!("answered {done}/{total}");
            }
        },
    )
    .await?;
    for w in &done.warnings {
        eprintln!("warning: {w}");
    }
    if let Some(path) = files.outcomes {
        let mut lines = String::new();
        for o in &done.outcomes {
            lines.push_str(&serde_json::to_string(o)?);
            lines.push('\n');
        }
        write_file(path, lines.as_bytes())?;
    }
    write_file(files.output, &done.filled)?;
    write_file(files.review, &done.review)?;
    Ok(done.summary)
}

fn read_input(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}

/// `pipeline::apply::apply` on a blocking thread (it parses and patches workbooks).
async fn apply_review(
    original: Vec<u8>,
    review: Vec<u8>,
    strict: bool,
) -> Result<pipeline::apply::Applied> {
    Ok(
        tokio::task::spawn_blocking(move || pipeline::apply::apply(&original, &review, strict))
            .await??,
    )
}

fn print_applied(r: &pipeline::apply::ApplyReport, output: &Path) {
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

fn print_summary(s: &FillSummary, output: &Path, review: &Path) {
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

async fn demo(g: &Global, out: &Path) -> Result<()> {
    let (router, answering) = load_pipeline(g)?;
    let files =
        crate::demo::unpack(out).with_context(|| format!("cannot write into {}", out.display()))?;
    let kb_dir = out.join("kb");
    eprintln!(
        "building the knowledge base from Kestrel Analytics' policies and last year's answered \
         questionnaire…"
    );
    let started = std::time::Instant::now();
    let report = kb::ingest(
        &router,
        &files.kb_sources,
        &kb_dir,
        &kb::IngestOptions::default(),
    )
    .await?;
    eprintln!(
        "  {} chunks from {} sources ({}) in {:.1} s",
        report.chunks,
        report.sources,
        report.embed_model,
        started.elapsed().as_secs_f64()
    );
    let checklist = files.questionnaire;
    let stem = checklist
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let output = out.join(format!("{stem}.filled.xlsx"));
    let review = out.join(format!("{stem}.review.xlsx"));
    match RfpQueue::connect(queue_config(g)).await {
        Ok(queue) => {
            eprintln!(
                "queueing {} on {} and running a worker in this process…",
                checklist.display(),
                g.redis_url
            );
            let settings = WorkerSettings {
                answering,
                ..WorkerSettings::default()
            };
            let worker = RunningWorker::start(queue_config(g), router, settings).await?;
            let id = crate::submit::submit_file(
                &queue,
                &checklist,
                Some(&absolute(&kb_dir)?),
                crate::submit::DEFAULT_BATCH_SIZE,
                write_drafts(g)?,
            )
            .await?
            .id;
            let job_started = std::time::Instant::now();
            let st = watch(&queue, &id, false).await;
            let job_secs = job_started.elapsed().as_secs_f64();
            worker.shutdown().await?;
            let st = st?;
            if st.state == JobPhase::Failed {
                bail!("demo job {id} failed: {}", st.reason.unwrap_or_default());
            }
            let filled = queue
                .result(&id, false)
                .await?
                .context("job finished without a result")?;
            write_file(&output, &filled)?;
            if let Some(r) = queue.result(&id, true).await? {
                write_file(&review, &r)?;
            }
            let r = &st.report;
            println!(
                "job {id}: {} in {job_secs:.1} s, {}/{} rows\n  {} answers written into the customer's file ({} reused from last year's answers, {} grounded in a policy sentence)\n  {} drafts left for review, {} without evidence, {} failed\nfilled workbook: {}\nreview workbook: {}",
                st.state.as_str(),
                st.rows_done,
                st.rows_total,
                r.written,
                r.library_matches,
                r.written.saturating_sub(r.library_matches),
                r.drafted,
                r.abstained,
                st.rows_failed,
                output.display(),
                review.display()
            );
        }
        Err(e) => {
            eprintln!("Redis is not reachable ({e}); answering in-process instead");
            let files = FillFiles {
                input: &checklist,
                kb: Some(&kb_dir),
                output: &output,
                review: &review,
                outcomes: None,
            };
            let summary = fill(router, answering, &files, 2, true).await?;
            print_summary(&summary, &output, &review);
        }
    }
    println!(
        "next: review the drafts in {} (Decision: approve / edit / reject, Final answer columns), then\n  rfpq apply {} {} -o {} --learn {}",
        review.display(),
        checklist.display(),
        review.display(),
        out.join(format!("{stem}.final.xlsx")).display(),
        kb_dir.display()
    );
    Ok(())
}

fn one_line(text: &str, max: usize) -> String {
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= max {
        return flat;
    }
    let mut cut: String = flat.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

async fn kb_command(g: &Global, command: KbCommand) -> Result<()> {
    match command {
        KbCommand::Ingest {
            inputs,
            kb,
            rebuild,
            quantization,
            no_cache,
            json,
        } => {
            let router = load_router(g)?;
            let opts = kb::IngestOptions {
                rebuild,
                quantization,
                embed_cache: if no_cache {
                    None
                } else {
                    kb::IngestOptions::default().embed_cache
                },
                progress: !json,
            };
            let r = kb::ingest(&router, &inputs, &kb, &opts).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&r)?);
                return Ok(());
            }
            if r.unchanged {
                println!(
                    "{}: unchanged (version {}, {} sources, {} chunks)",
                    kb.display(),
                    r.version,
                    r.sources,
                    r.chunks
                );
            } else {
                println!(
                    "{}: version {} — {} sources, {} chunks ({} answer-library records); {} added, {} updated, {} unchanged; {} embedded, {} vectors reused ({}, {} dimensions, {:?})",
                    kb.display(),
                    r.version,
                    r.sources,
                    r.chunks,
                    r.answers,
                    r.added.len(),
                    r.updated.len(),
                    r.unchanged_files,
                    r.embedded,
                    r.reused_vectors,
                    r.embed_model,
                    r.dimensions,
                    r.quantization
                );
            }
            if !r.skipped.is_empty() {
                println!("{} file(s) skipped:", r.skipped.len());
                for s in &r.skipped {
                    println!("  {}: {}", s.path, s.reason);
                }
            }
            Ok(())
        }
        KbCommand::Remove { kb, sources } => {
            let r = tokio::task::spawn_blocking(move || kb::remove(&kb, &sources)).await??;
            println!(
                "removed {}; version {} has {} sources, {} chunks",
                r.removed.join(", "),
                r.version,
                r.sources,
                r.chunks
            );
            Ok(())
        }
        KbCommand::Stats { kb, json } => {
            let base = tokio::task::spawn_blocking(move || KnowledgeBase::open(&kb)).await??;
            let st = base.stats();
            if json {
                println!("{}", serde_json::to_string_pretty(&st)?);
                return Ok(());
            }
            println!(
                "version {}  ({}, {} dimensions, {:?})\n{} sources, {} chunks, {} answer-library records\nindex {:.1} MiB on disk (memory-mapped; {:.1} MiB allocated)\n{}",
                st.version,
                st.embed_model,
                st.dimensions,
                st.quantization,
                st.sources,
                st.chunks,
                st.answers,
                st.index_bytes as f64 / 1048576.0,
                st.index_memory_bytes as f64 / 1048576.0,
                st.path.display()
            );
            for s in &st.by_source {
                println!(
                    "  {:<60} {:>5} chunks {:>4} answers  {:?}",
                    s.name, s.chunks, s.answers, s.kind
                );
            }
            Ok(())
        }
        KbCommand::Search { kb, query, k, json } => {
            let router = load_router(g)?;
            let base = tokio::task::spawn_blocking(move || KnowledgeBase::open(&kb)).await??;
            let hits = base.search(&router, &query, k).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&hits)?);
                return Ok(());
            }
            for h in hits {
                let place = match (&h.heading, h.page) {
                    (Some(hd), Some(p)) => format!(" [{hd}, p. {p}]"),
                    (Some(hd), None) => format!(" [{hd}]"),
                    (None, Some(p)) => format!(" [p. {p}]"),
                    (None, None) => String::new(),
                };
                let kind = if h.library_match {
                    "LIBRARY"
                } else if h.kind == kb::RecordKind::Answer {
                    "answer"
                } else {
                    "doc"
                };
                println!(
                    "{:.3}  {kind:<7} {}{place}\n       {}",
                    h.score,
                    h.source,
                    one_line(&h.text, 110)
                );
            }
            Ok(())
        }
        KbCommand::Eval {
            kb,
            labels,
            k,
            json,
        } => {
            let router = load_router(g)?;
            let base = tokio::task::spawn_blocking(move || KnowledgeBase::open(&kb)).await??;
            base.check_model(&router)?;
            let labels = kb::eval::read_labels(&labels)?;
            let r = kb::eval::evaluate(&base, &router, &labels, k.max(1)).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&r)?);
                return Ok(());
            }
            let cuts: Vec<String> = r
                .recall
                .iter()
                .map(|c| format!("recall@{} {:.3}", c.k, c.recall))
                .collect();
            println!(
                "{} questions, KB version {}: recall@{} = {:.3}, MRR = {:.3}\n{}",
                r.questions,
                r.kb_version,
                r.k,
                r.recall_at_k,
                r.mrr,
                cuts.join(", ")
            );
            for m in &r.misses {
                println!(
                    "  miss (rank {}): {}\n    expected {}; got {}",
                    m.rank.map_or("-".to_string(), |r| r.to_string()),
                    m.question,
                    m.expected.join(" | "),
                    m.top.join(", ")
                );
            }
            Ok(())
        }
        KbCommand::Publish { kb, name, dir } => {
            let r = match dir {
                Some(shared) => {
                    tokio::task::spawn_blocking(move || {
                        kb::publish::publish_dir(&kb, &shared, &name)
                    })
                    .await??
                }
                None => {
                    let queue = RfpQueue::connect(queue_config(g)).await?;
                    kb::publish::publish_redis(&queue, &kb, Some(&name)).await?
                }
            };
            println!(
                "published {} as '{}' version {} to {} ({})",
                if r.uploaded {
                    "the snapshot"
                } else {
                    "(already stored)"
                },
                r.name,
                r.version,
                r.target,
                if r.uploaded {
                    format!("{:.1} MiB", r.bytes as f64 / 1048576.0)
                } else {
                    "name moved only".to_string()
                }
            );
            Ok(())
        }
        KbCommand::List => {
            let queue = RfpQueue::connect(queue_config(g)).await?;
            let names = queue.kb_names().await?;
            if names.is_empty() {
                println!("no knowledge base is published (rfpq kb publish DIR --name NAME)");
            }
            for (name, version) in names {
                println!("{name}\t{version}");
            }
            Ok(())
        }
    }
}
