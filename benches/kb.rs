//! Knowledge-base benchmark: ingest throughput without embedding (extract + chunk of the
//! fixture documents), and, on synthetic clustered 384-d vectors, index build (one thread),
//! snapshot open (load) time, top-10 search p50/p99 (vector and hybrid) through HNSW and
//! through exact search (where `kb::EXACT_SEARCH_MAX` comes from), HNSW recall against exact
//! search and memory. Run with `cargo bench --bench kb [-- --sizes 100000,1000000 --quant f32,i8]`;
//! each size runs in a child process so its peak RSS is its own. Figures go to BENCHMARKS.md.

use rfpq::kb::{self, Chunk, FORMAT, Manifest, Quantization, RecordKind, SourceKind};
use std::process::Command;
use std::time::Instant;

const DIMS: usize = 384;
const CLUSTERS: usize = 2_000;
const QUERIES: usize = 1_000;

fn rss_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// xorshift64* and Box-Muller: reproducible without a crate.
struct Rng(u64);
impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn uniform(&mut self) -> f32 {
        ((self.next_u64() >> 40) as f32 + 0.5) / (1u64 << 24) as f32
    }
    fn gauss(&mut self) -> f32 {
        let (u, v) = (self.uniform(), self.uniform());
        (-2.0 * u.ln()).sqrt() * (std::f32::consts::TAU * v).cos()
    }
}

fn normalize(v: &mut [f32]) {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
    v.iter_mut().for_each(|x| *x /= n);
}

/// Vectors around random cluster centres, like sentence embeddings of related texts.
struct Synthetic {
    rng: Rng,
    centres: Vec<Vec<f32>>,
}
impl Synthetic {
    fn new(seed: u64) -> Self {
        let mut rng = Rng(seed);
        let centres = (0..CLUSTERS)
            .map(|_| {
                let mut c: Vec<f32> = (0..DIMS).map(|_| rng.gauss()).collect();
                normalize(&mut c);
                c
            })
            .collect();
        Self { rng, centres }
    }
    fn sample(&mut self) -> (usize, Vec<f32>) {
        let c = (self.rng.next_u64() % CLUSTERS as u64) as usize;
        let mut v: Vec<f32> = self.centres[c]
            .iter()
            .map(|x| x + 0.08 * self.rng.gauss())
            .collect();
        normalize(&mut v);
        (c, v)
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// Ingest without embedding: every fixture document extracted and chunked, 20 rounds.
fn ingest_case() {
    let mut files = Vec::new();
    for dir in ["fixtures/answer-bank-plainanswer", "fixtures/kb"] {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            if let Some(kind) = SourceKind::of(&p) {
                if p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with("corrupt")
                {
                    continue;
                }
                files.push((p.display().to_string(), kind, std::fs::read(&p).unwrap()));
            }
        }
    }
    let bytes: usize = files.iter().map(|f| f.2.len()).sum();
    let rounds = 20;
    let mut chunks = 0;
    let mut by_kind: std::collections::BTreeMap<String, f64> = Default::default();
    let started = Instant::now();
    for _ in 0..rounds {
        for (name, kind, data) in &files {
            let t = Instant::now();
            chunks += kb::ingest::records_of(name, *kind, data.clone())
                .map(|c| c.chunks.len())
                .unwrap_or(0);
            *by_kind.entry(format!("{kind:?}")).or_default() += t.elapsed().as_secs_f64();
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let kinds: Vec<String> = by_kind
        .iter()
        .map(|(k, s)| format!("\"{k}_ms_per_round\":{:.2}", s * 1000.0 / rounds as f64))
        .collect();
    println!(
        "{{\"case\":\"ingest_without_embedding\",\"files\":{},\"mib\":{:.3},\"rounds\":{rounds},\"chunks_per_s\":{:.0},\"mib_per_s\":{:.2},{}}}",
        files.len(),
        bytes as f64 / 1048576.0,
        chunks as f64 / secs,
        (bytes * rounds) as f64 / 1048576.0 / secs,
        kinds.join(",")
    );
}

/// One size: build (or reuse) a synthetic snapshot, open it, search it.
fn search_case(n: usize, quant: Quantization, dir: &std::path::Path) {
    let mut synth = Synthetic::new(42);
    let kb_dir = dir.join(format!("synthetic-{n}-{quant:?}"));
    let mut build_s = None;
    if kb::store::current_version(&kb_dir).ok().flatten().is_none() {
        let mut vectors = Vec::with_capacity(n);
        let mut chunks = Vec::with_capacity(n);
        for i in 0..n {
            let (c, v) = synth.sample();
            vectors.push(v);
            chunks.push(Chunk {
                id: i as u64,
                kind: RecordKind::Doc,
                source: format!("doc-{}.md", c),
                heading: Some(format!("Topic {c}")),
                page: None,
                start: 0,
                end: 0,
                text: format!(
                    "Chunk {i} on topic {c}: control OPS-{:03} evidence text.",
                    i % 997
                ),
                answer: None,
            });
        }
        let mut manifest = Manifest {
            format: FORMAT,
            version: format!("synthetic{n}{quant:?}").to_ascii_lowercase(),
            created_unix: 0,
            embed_model: "synthetic".into(),
            dimensions: DIMS,
            quantization: quant,
            chunker: 0,
            chunks: n,
            answers: 0,
            sources: Vec::new(),
            files: Vec::new(),
        };
        let t = Instant::now();
        kb::store::write_snapshot(&kb_dir, &mut manifest, &chunks, &vectors).unwrap();
        build_s = Some(t.elapsed().as_secs_f64());
    } else {
        // Advance the generator past the stored vectors so queries are fresh samples.
        for _ in 0..n {
            synth.sample();
        }
    }
    let rss0 = rss_kib("VmRSS:");
    let t = Instant::now();
    let mut base = kb::KnowledgeBase::open(&kb_dir).unwrap();
    let open_s = t.elapsed().as_secs_f64();
    let rss_open = rss_kib("VmRSS:");
    let queries: Vec<Vec<f32>> = (0..QUERIES).map(|_| synth.sample().1).collect();
    // Hybrid: the first call builds the lexical index (timed separately).
    base.set_exact_search_max(0);
    let t = Instant::now();
    base.search_embedded("control OPS-123 evidence", &queries[0], 10)
        .unwrap();
    let lexical_build_s = t.elapsed().as_secs_f64();
    // Exact search: the first query reads every vector out of the index (timed separately).
    base.set_exact_search_max(usize::MAX);
    let rss_before_exact = rss_kib("VmRSS:");
    let t = Instant::now();
    base.search_vector(&queries[0], 10).unwrap();
    let exact_load_s = t.elapsed().as_secs_f64();
    let exact_mib = rss_kib("VmRSS:").saturating_sub(rss_before_exact) as f64 / 1024.0;
    // The same queries through HNSW and exact search, alternating so both see the same load.
    let mut times: [[Vec<f64>; 2]; 2] = Default::default();
    let mut found = 0;
    for (i, q) in queries.iter().enumerate() {
        let text = format!("topic evidence for control OPS-{:03}", i % 997);
        let mut ids: [Vec<u64>; 2] = Default::default();
        for (mode, limit) in [(0, 0), (1, usize::MAX)] {
            base.set_exact_search_max(limit);
            let t = Instant::now();
            let hits = base.search_vector(q, 10).unwrap();
            times[mode][0].push(t.elapsed().as_secs_f64() * 1000.0);
            assert_eq!(hits.len(), 10);
            ids[mode] = hits.iter().map(|h| h.id).collect();
            let t = Instant::now();
            base.search_embedded(&text, q, 10).unwrap();
            times[mode][1].push(t.elapsed().as_secs_f64() * 1000.0);
        }
        // HNSW recall@10 against exact search.
        found += ids[0].iter().filter(|id| ids[1].contains(id)).count();
    }
    for mode in &mut times {
        for t in mode {
            t.sort_by(f64::total_cmp);
        }
    }
    let p = |t: &Vec<f64>| format!("{:.3}/{:.3}", percentile(t, 0.5), percentile(t, 0.99));
    let st = base.stats();
    println!(
        "{{\"case\":\"search\",\"n\":{n},\"quantization\":\"{quant:?}\",\"build_s\":{},\"index_mib\":{:.1},\"open_s\":{open_s:.4},\"rss_open_mib\":{:.1},\"hnsw_vector_p50_p99_ms\":\"{}\",\"exact_vector_p50_p99_ms\":\"{}\",\"lexical_build_s\":{lexical_build_s:.2},\"hnsw_hybrid_p50_p99_ms\":\"{}\",\"exact_hybrid_p50_p99_ms\":\"{}\",\"exact_load_s\":{exact_load_s:.3},\"exact_rss_mib\":{exact_mib:.1},\"recall_at_10\":{:.3},\"rss_peak_mib\":{:.1}}}",
        build_s.map_or("null".to_string(), |s| format!("{s:.1}")),
        st.index_bytes as f64 / 1048576.0,
        (rss_open.saturating_sub(rss0)) as f64 / 1024.0,
        p(&times[0][0]),
        p(&times[1][0]),
        p(&times[0][1]),
        p(&times[1][1]),
        found as f64 / (QUERIES * 10) as f64,
        rss_kib("VmHWM:") as f64 / 1024.0,
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|p| args.get(p + 1))
            .cloned()
    };
    let dir =
        std::path::PathBuf::from(arg("--dir").unwrap_or_else(|| "target/bench-kb".to_string()));
    if let Some(n) = arg("--case-search") {
        let quant: Quantization = arg("--quant").unwrap().parse().unwrap();
        search_case(n.parse().unwrap(), quant, &dir);
        return;
    }
    if args.iter().any(|a| a == "--case-ingest") {
        ingest_case();
        return;
    }
    let sizes = arg("--sizes").unwrap_or_else(|| "100000".to_string());
    let quants = arg("--quant").unwrap_or_else(|| "f32".to_string());
    let exe = std::env::current_exe().unwrap();
    let run = |extra: &[&str]| {
        let out = Command::new(&exe).args(extra).output().unwrap();
        if !out.status.success() {
            eprintln!("{extra:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        print!("{}", String::from_utf8_lossy(&out.stdout));
    };
    run(&["--case-ingest"]);
    for n in sizes.split(',') {
        for q in quants.split(',') {
            run(&[
                "--case-search",
                n,
                "--quant",
                q,
                "--dir",
                dir.to_str().unwrap(),
            ]);
        }
    }
}
