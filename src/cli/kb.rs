//! `rfpq kb …`: ingest, remove, search, list, evaluate and publish knowledge bases. Calls `kb`
//! and `queue`; prints.

use super::args::*;
use super::print::*;
use crate::kb::{self, KnowledgeBase};
use crate::queue::RfpQueue;
use anyhow::Result;

pub(super) async fn kb_command(g: &Global, command: KbCommand) -> Result<()> {
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
            for t in &r.textless_pages {
                println!(
                    "  {}: {} page(s) without text (scanned?): {}",
                    t.path,
                    t.pages.len(),
                    kb::page_list(&t.pages)
                );
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
                    crate::queue::publish_kb(&queue, &kb, Some(&name)).await?
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
