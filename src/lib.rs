//! rfpq: bulk-answers RFP and security questionnaires from a Redis-backed job queue.
//!
//! The binary (`src/main.rs`) is a thin CLI over these modules; see `ARCHITECTURE.md`.

pub mod api;
pub mod cli;
pub mod demo;
pub mod doctor;
pub mod eval;
pub mod fill;
pub mod guard;
pub mod kb;
pub mod metrics;
pub mod models;
pub mod pipeline;
pub mod queue;
pub mod router;
pub mod submit;
pub mod watch;
pub mod workbook;
pub mod worker;

/// Now, in milliseconds since the Unix epoch (0 if the clock is before it): the one clock of
/// job timestamps and row start times, so they can be compared.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Installs the ring TLS provider for rustls once (reqwest is built without a default one).
pub fn install_tls_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}
