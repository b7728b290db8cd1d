//! Command-line interface: parses arguments and calls the library; prints results.
//! Holds no business logic of its own.
//!
//! `args` holds the clap definitions, `print` how results are shown, `models` and `kb` their
//! command groups; this file dispatches. Running a job in-process is `fill`, the demo is
//! `demo`, queueing is `submit`: the CLI only reads arguments and files and prints.

mod args;
mod kb;
mod models;
mod print;

pub use args::Cli;
use args::*;
use print::*;

use crate::pipeline::{self};
use crate::queue::{JobPhase, RfpQueue};
use crate::router::config::Task;
use crate::router::types::ChatMessage;
use crate::worker::{RunningWorker, WorkerSettings};
use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::time::Duration;

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
    Ok(crate::fill::write_file(path, bytes)?)
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
            let files = crate::fill::FillFiles {
                input: &input,
                kb: kb.as_deref(),
                output: &output,
                review: &review,
                outcomes: outcomes.as_deref(),
            };
            let report = crate::fill::fill(router, answering, &files, parallel, |done, total| {
                print_rows(!json, done, total)
            })
            .await?;
            for w in &report.warnings {
                eprintln!("warning: {w}");
            }
            let summary = report.summary;
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
                crate::worker::serve_metrics(addr, queue)
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
            crate::fill::check_output_extension(&output, applied.format)?;
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
            crate::fill::check_output_extension(&output, applied.format)?;
            write_file(&output, &applied.workbook)?;
            let learnt = match &learn {
                Some(kb_dir) if !applied.report.reviewed.is_empty() => {
                    let router = load_router(&g)?;
                    let r = crate::kb::ingest(
                        &router,
                        std::slice::from_ref(&review),
                        kb_dir,
                        &crate::kb::IngestOptions::default(),
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
            crate::fill::check_output_extension(&output, st.format())?;
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
        Command::Models { command } => models::models(&g, command).await,
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
        Command::Kb { command } => kb::kb_command(&g, command).await,
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

async fn demo(g: &Global, out: &Path) -> Result<()> {
    let (router, answering) = load_pipeline(g)?;
    let mut progress = DemoPrinter::default();
    let done = crate::demo::run(
        router,
        answering,
        queue_config(g),
        write_drafts(g)?,
        out,
        &mut progress,
    )
    .await?;
    let p = &done.paths;
    match &done.run {
        crate::demo::DemoRun::Queued { id, status, secs } => {
            let (st, r) = (status, &status.report);
            println!(
                "job {id}: {} in {secs:.1} s, {}/{} rows\n  {} answers written into the customer's file ({} reused from last year's answers, {} grounded in a policy sentence)\n  {} drafts left for review, {} without evidence, {} failed\nfilled workbook: {}\nreview workbook: {}",
                st.state.as_str(),
                st.rows_done,
                st.rows_total,
                r.written,
                r.library_matches,
                r.written.saturating_sub(r.library_matches),
                r.drafted,
                r.abstained,
                st.rows_failed,
                p.filled.display(),
                p.review.display()
            );
        }
        crate::demo::DemoRun::Local { summary, warnings } => {
            for w in warnings {
                eprintln!("warning: {w}");
            }
            print_summary(summary, &p.filled, &p.review);
        }
    }
    println!(
        "next: review the drafts in {} (Decision: approve / edit / reject, Final answer columns), then\n  rfpq apply {} {} -o {} --learn {}",
        p.review.display(),
        p.questionnaire.display(),
        p.review.display(),
        p.final_output.display(),
        p.kb_dir.display()
    );
    Ok(())
}
