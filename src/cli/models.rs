//! `rfpq models …`: the configured targets, their health, pulling and warming models. Calls
//! `router::admin`; prints.

use super::args::*;
use anyhow::{Result, bail};
use std::time::Duration;

/// `rfpq models check|pull|warm` over `router::admin`.
pub(super) async fn models(g: &Global, command: ModelsCommand) -> Result<()> {
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
