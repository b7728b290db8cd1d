//! `rfpq doctor`: what this machine has (CPU, RAM, GPUs and their memory) and whether each
//! configured model fits it. Reads sysinfo and, when present, `nvidia-smi`; contacts no server.

use crate::router::config::{ProviderKind, RouterConfig};
use serde::Serialize;
use std::collections::BTreeSet;
use sysinfo::System;

const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

/// One GPU and its memory, in GiB.
#[derive(Debug, Clone, Serialize)]
pub struct Gpu {
    pub name: String,
    pub memory_total_gib: f64,
    pub memory_used_gib: Option<f64>,
    /// `sysinfo` or `nvidia-smi`.
    pub source: &'static str,
}

/// Whether one configured model fits the machine.
#[derive(Debug, Clone, Serialize)]
pub struct ModelFit {
    /// `provider:model` as configured.
    pub target: String,
    /// Parameter count read from the model name (`7b`, `135m`), in billions.
    pub params_b: Option<f64>,
    /// Memory the weights need at Q4_K_M (Ollama's default), plus runtime overhead, in GiB.
    pub estimated_gib: Option<f64>,
    /// `gpu` (fits the largest GPU's free memory), `cpu` (fits available RAM only),
    /// `no` (fits neither), `unknown` (size not in the name), `remote` (runs elsewhere).
    pub fits: &'static str,
}

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct DoctorReport {
    pub cpu_model: String,
    pub logical_cpus: usize,
    pub physical_cores: Option<usize>,
    pub memory_total_gib: f64,
    pub memory_available_gib: f64,
    pub gpus: Vec<Gpu>,
    /// A sentence a person can act on ("no GPU: …").
    pub summary: String,
    pub models: Vec<ModelFit>,
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// Parameter count in billions from a model name: `qwen2.5:7b` → 7, `smollm2-135m` → 0.135,
/// `llama3.1:70b-instruct-q4_K_M` → 70, `mixtral:8x7b` → 56.
pub fn params_from_name(name: &str) -> Option<f64> {
    let lower = name.to_ascii_lowercase();
    let bytes = lower.as_bytes();
    let mut best = None;
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i].is_ascii_digit() && (i == 0 || !bytes[i - 1].is_ascii_alphanumeric()) {
            let start = i;
            while i < bytes.len()
                && (bytes[i].is_ascii_digit() || bytes[i] == b'.' || bytes[i] == b'x')
            {
                i += 1;
            }
            let unit = bytes.get(i).copied();
            let boundary = bytes.get(i + 1).is_none_or(|b| !b.is_ascii_alphanumeric());
            if let (Some(u @ (b'b' | b'm')), true) = (unit, boundary) {
                let num = &lower[start..i];
                let value = match num.split_once('x') {
                    Some((n, each)) => n
                        .parse::<f64>()
                        .ok()
                        .zip(each.parse::<f64>().ok())
                        .map(|(a, b)| a * b),
                    None => num.parse::<f64>().ok(),
                };
                if let Some(v) = value {
                    best = Some(if u == b'm' { v / 1000.0 } else { v });
                }
            }
        } else {
            i += 1;
        }
    }
    best
}

/// GiB a model needs at Q4_K_M: about 0.57 GiB per billion parameters plus 0.5 GiB of
/// runtime and context (7B ≈ 4.5, 13B ≈ 8, 70B ≈ 40, as Ollama's library lists them).
pub fn estimated_gib(params_b: f64) -> f64 {
    round1(params_b * 0.57 + 0.5)
}

fn nvidia_smi() -> Vec<Gpu> {
    let out = std::process::Command::new("nvidia-smi")
        .args([
            "--query-gpu=name,memory.total,memory.used",
            "--format=csv,noheader,nounits",
        ])
        .output();
    let Ok(out) = out else { return Vec::new() };
    if !out.status.success() {
        return Vec::new();
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(',').map(str::trim).collect();
            let mib = |s: &str| s.parse::<f64>().ok().map(|m| round1(m / 1024.0));
            Some(Gpu {
                name: f.first()?.to_string(),
                memory_total_gib: mib(f.get(1)?)?,
                memory_used_gib: f.get(2).and_then(|s| mib(s)),
                source: "nvidia-smi",
            })
        })
        .collect()
}

/// Reads the machine and judges every model the router config names.
pub fn run(cfg: &RouterConfig) -> DoctorReport {
    let mut sys = match System::new() {
        Ok(sys) => sys,
        Err(e) => {
            return DoctorReport {
                cpu_model: "unknown".into(),
                logical_cpus: 0,
                physical_cores: None,
                memory_total_gib: 0.0,
                memory_available_gib: 0.0,
                gpus: Vec::new(),
                summary: format!("cannot read this machine's facts: {e}"),
                models: Vec::new(),
            };
        }
    };
    sys.refresh_memory();
    sys.refresh_cpu_all();
    let cpu_model = sys
        .cpus()
        .first()
        .map(|c| c.brand().trim().to_string())
        .filter(|b| !b.is_empty())
        .unwrap_or_else(|| "unknown".into());
    let mut gpus = nvidia_smi();
    if gpus.is_empty()
        && let Ok(list) = sysinfo::Gpus::new_with_refreshed_list()
    {
        gpus = list
            .iter()
            .map(|g| Gpu {
                name: [g.vendor(), g.model()]
                    .into_iter()
                    .flatten()
                    .collect::<Vec<_>>()
                    .join(" "),
                memory_total_gib: round1(g.total_memory().unwrap_or(0) as f64 / GIB),
                memory_used_gib: g.used_memory().map(|u| round1(u as f64 / GIB)),
                source: "sysinfo",
            })
            .collect();
    }
    let total = round1(sys.total_memory() as f64 / GIB);
    let available = round1(sys.available_memory() as f64 / GIB);
    let best_gpu_free = gpus
        .iter()
        .map(|g| g.memory_total_gib - g.memory_used_gib.unwrap_or(0.0))
        .fold(0.0_f64, f64::max);

    let mut seen = BTreeSet::new();
    let mut models = Vec::new();
    for t in cfg.all_targets() {
        let name = t.to_string();
        if !seen.insert(name.clone()) {
            continue;
        }
        let kind = cfg.provider(&t.provider).map(|p| p.kind);
        let local = matches!(kind, Some(ProviderKind::Ollama | ProviderKind::Embedded));
        let params_b = params_from_name(&t.model);
        let est = params_b.map(estimated_gib);
        let fits = match (local, est) {
            (false, _) => "remote",
            (true, None) => "unknown",
            (true, Some(gib)) if gib <= best_gpu_free => "gpu",
            (true, Some(gib)) if gib <= available => "cpu",
            _ => "no",
        };
        models.push(ModelFit {
            target: name,
            params_b,
            estimated_gib: est,
            fits,
        });
    }
    let summary = if gpus.is_empty() {
        format!(
            "no GPU: local models run on the CPU ({} logical CPUs, {available} GiB RAM available); \
             expect a 7B model at a few tokens per second",
            sys.cpus().len()
        )
    } else {
        format!(
            "{} GPU(s), the largest with {:.1} GiB free",
            gpus.len(),
            best_gpu_free
        )
    };
    DoctorReport {
        cpu_model,
        logical_cpus: sys.cpus().len(),
        physical_cores: System::physical_core_count().ok(),
        memory_total_gib: total,
        memory_available_gib: available,
        gpus,
        summary,
        models,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_read_from_model_names() {
        assert_eq!(params_from_name("qwen2.5:7b"), Some(7.0));
        assert_eq!(params_from_name("smollm2-135m-instruct"), Some(0.135));
        assert_eq!(params_from_name("llama3.1:70b-instruct-q4_K_M"), Some(70.0));
        assert_eq!(params_from_name("mixtral:8x7b"), Some(56.0));
        assert_eq!(params_from_name("all-minilm-l6-v2"), None);
        assert_eq!(params_from_name("gpt-4o-mini"), None);
        assert_eq!(estimated_gib(7.0), 4.5);
        assert_eq!(estimated_gib(70.0), 40.4);
    }
}
