//! Policy as small composable layers, each wrapping one `Provider` and implementing `Provider`
//! (tower style). The router stacks them per target, outermost first:
//! `Validate → Breaker → Retry → RateLimit → Concurrency → Budget → backend`.
//! - `Budget`: per-attempt deadlines (first token, total) and the attempt counter.
//! - `Concurrency`: per-provider semaphore (shared by the provider's targets).
//! - `RateLimit`: per-provider requests/tokens per minute, by spacing call starts.
//! - `Retry`: the only retry loop (backon exponential backoff + jitter, honours Retry-After;
//!   connection errors get one fast retry only).
//! - `Breaker`: per-target circuit breaker; reopens only after a health probe succeeds.
//! - `Validate`: empty/refused replies rejected; truncated structured output asked again once
//!   with a larger `max_tokens`; invalid structured output gets one repair re-prompt.
//!
//! Fallback to the next target is not a layer: it is the router's loop over targets.

use super::config::{CooldownConfig, RetryConfig};
use super::error::{FailureKind, ProviderError};
use super::http::with_deadline;
use super::provider::{
    CallMeter, ChatCall, ChatRequest, ChatResponse, Deadlines, EmbedCall, EmbedResponse, Provider,
    estimate_tokens,
};
use super::types::{ChatMessage, Role};
use backon::{ExponentialBuilder, Retryable};
use futures_util::future::BoxFuture;
use serde::Serialize;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

/// The `Provider` methods a layer does not change, delegated to `self.inner` as they are.
macro_rules! pass_through {
    (models) => {
        fn models<'a>(
            &'a self,
            deadlines: Deadlines,
        ) -> BoxFuture<'a, Result<Vec<String>, ProviderError>> {
            self.inner.models(deadlines)
        }
    };
    (models, probe) => {
        pass_through!(models);
        pass_through!(@probe);
    };
    (@probe) => {
        fn probe<'a>(
            &'a self,
            model: &'a str,
            deadlines: Deadlines,
        ) -> BoxFuture<'a, Result<(), ProviderError>> {
            self.inner.probe(model, deadlines)
        }
    };
}

// ---------------------------------------------------------------------------------------------
// Budget

/// Sets the deadlines of each attempt and counts attempts actually sent.
pub struct Budget {
    inner: Arc<dyn Provider>,
    first_token: Option<Duration>,
    total: Option<Duration>,
    idle: Option<Duration>,
}

impl Budget {
    pub fn new(
        inner: Arc<dyn Provider>,
        first_token: Option<Duration>,
        total: Option<Duration>,
        idle: Option<Duration>,
    ) -> Self {
        Self {
            inner,
            first_token,
            total,
            idle,
        }
    }

    fn deadlines(&self, outer: Deadlines) -> Deadlines {
        let now = Instant::now();
        let min = |a: Option<Instant>, b: Option<Instant>| match (a, b) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        Deadlines {
            first_token: min(self.first_token.map(|d| now + d), outer.first_token),
            total: min(self.total.map(|d| now + d), outer.total),
            idle: match (self.idle, outer.idle) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            },
        }
    }
}

impl Provider for Budget {
    fn chat<'a>(
        &'a self,
        call: &'a ChatCall<'a>,
    ) -> BoxFuture<'a, Result<ChatResponse, ProviderError>> {
        Box::pin(async move {
            call.meter.attempt();
            let mut inner = call.clone();
            inner.deadlines = self.deadlines(call.deadlines);
            // Backstop: the wire code honours the deadlines; this also bounds in-process backends.
            with_deadline(inner.deadlines.total, "answer not complete", async {
                self.inner.chat(&inner).await
            })
            .await
        })
    }

    fn embed<'a>(
        &'a self,
        call: &'a EmbedCall<'a>,
    ) -> BoxFuture<'a, Result<EmbedResponse, ProviderError>> {
        Box::pin(async move {
            call.meter.attempt();
            let mut inner = call.clone();
            inner.deadlines = self.deadlines(call.deadlines);
            with_deadline(inner.deadlines.total, "embeddings not complete", async {
                self.inner.embed(&inner).await
            })
            .await
        })
    }

    pass_through!(models);

    fn probe<'a>(
        &'a self,
        model: &'a str,
        deadlines: Deadlines,
    ) -> BoxFuture<'a, Result<(), ProviderError>> {
        Box::pin(async move {
            with_deadline(deadlines.total, "health probe not answered", async {
                self.inner.probe(model, deadlines).await
            })
            .await
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Concurrency

/// At most N calls in flight to one provider; the rest wait here, client-side.
pub struct Concurrency {
    inner: Arc<dyn Provider>,
    limit: Arc<Semaphore>,
}

impl Concurrency {
    pub fn new(inner: Arc<dyn Provider>, limit: Arc<Semaphore>) -> Self {
        Self { inner, limit }
    }
}

fn closed() -> ProviderError {
    ProviderError::new(FailureKind::Disabled, "provider is shutting down")
}

impl Provider for Concurrency {
    fn chat<'a>(
        &'a self,
        call: &'a ChatCall<'a>,
    ) -> BoxFuture<'a, Result<ChatResponse, ProviderError>> {
        Box::pin(async move {
            let _permit = self.limit.acquire().await.map_err(|_| closed())?;
            self.inner.chat(call).await
        })
    }

    fn embed<'a>(
        &'a self,
        call: &'a EmbedCall<'a>,
    ) -> BoxFuture<'a, Result<EmbedResponse, ProviderError>> {
        Box::pin(async move {
            let _permit = self.limit.acquire().await.map_err(|_| closed())?;
            self.inner.embed(call).await
        })
    }

    pass_through!(models, probe);
}

// ---------------------------------------------------------------------------------------------
// RateLimit

/// Shared per-provider limiter: call starts are spaced so that at most `rpm` requests and
/// about `tpm` estimated tokens start per minute (no bursts).
#[derive(Debug)]
pub struct RateLimiter {
    rpm: Option<u32>,
    tpm: Option<u32>,
    next: Mutex<Option<Instant>>,
}

impl RateLimiter {
    pub fn new(rpm: Option<u32>, tpm: Option<u32>) -> Self {
        Self {
            rpm,
            tpm,
            next: Mutex::new(None),
        }
    }

    pub fn is_active(&self) -> bool {
        self.rpm.is_some() || self.tpm.is_some()
    }

    /// Reserves a start slot for a call of `tokens` and waits for it.
    pub async fn acquire(&self, tokens: u32) {
        let mut spacing = Duration::ZERO;
        if let Some(rpm) = self.rpm {
            spacing = spacing.max(Duration::from_secs_f64(60.0 / rpm as f64));
        }
        if let Some(tpm) = self.tpm {
            spacing = spacing.max(Duration::from_secs_f64(60.0 * tokens as f64 / tpm as f64));
        }
        let start = {
            let mut next = self.next.lock().unwrap_or_else(|p| p.into_inner());
            let now = Instant::now();
            let start = next.map_or(now, |n| n.max(now));
            *next = Some(start + spacing);
            start
        };
        tokio::time::sleep_until(start.into()).await;
    }
}

/// Waits for the provider's rate limit before each attempt.
pub struct RateLimit {
    inner: Arc<dyn Provider>,
    limiter: Arc<RateLimiter>,
}

impl RateLimit {
    pub fn new(inner: Arc<dyn Provider>, limiter: Arc<RateLimiter>) -> Self {
        Self { inner, limiter }
    }
}

impl Provider for RateLimit {
    fn chat<'a>(
        &'a self,
        call: &'a ChatCall<'a>,
    ) -> BoxFuture<'a, Result<ChatResponse, ProviderError>> {
        Box::pin(async move {
            let tokens = estimate_tokens(call.req.messages) + call.req.max_tokens;
            self.limiter.acquire(tokens).await;
            self.inner.chat(call).await
        })
    }

    fn embed<'a>(
        &'a self,
        call: &'a EmbedCall<'a>,
    ) -> BoxFuture<'a, Result<EmbedResponse, ProviderError>> {
        Box::pin(async move {
            let chars: usize = call.texts.iter().map(|t| t.chars().count()).sum();
            self.limiter.acquire((chars / 4) as u32 + 1).await;
            self.inner.embed(call).await
        })
    }

    pass_through!(models, probe);
}

// ---------------------------------------------------------------------------------------------
// Retry

/// The one retry loop: retryable failures are tried again on the same target, up to
/// `max_attempts` attempts in total, with exponential backoff and jitter. A Retry-After
/// longer than the backoff is waited for; one above `max_retry_after_s` ends the retries.
pub struct Retry {
    inner: Arc<dyn Provider>,
    cfg: RetryConfig,
}

impl Retry {
    pub fn new(inner: Arc<dyn Provider>, cfg: RetryConfig) -> Self {
        Self { inner, cfg }
    }

    fn backoff(&self) -> ExponentialBuilder {
        let b = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(self.cfg.initial_backoff_ms))
            .with_max_delay(Duration::from_millis(
                self.cfg.max_backoff_ms.max(self.cfg.initial_backoff_ms),
            ))
            .with_factor(self.cfg.multiplier)
            .with_max_times(self.cfg.max_attempts.saturating_sub(1) as usize);
        if self.cfg.jitter { b.with_jitter() } else { b }
    }

    /// The wait before the next attempt, or `None` to stop.
    fn adjust(&self, e: &ProviderError, backoff: Option<Duration>) -> Option<Duration> {
        let d = backoff?;
        match e.retry_after {
            Some(ra) if self.cfg.honor_retry_after => {
                (ra.as_secs_f64() <= self.cfg.max_retry_after_s).then(|| ra.max(d))
            }
            _ => Some(d),
        }
    }
}

/// Which failures the retry loop tries again. Connection errors get one fast retry only: a
/// server that refuses or does not answer a connect will not be back within the backoff.
fn retry_filter() -> impl FnMut(&ProviderError) -> bool {
    let mut connect_failures = 0u32;
    move |e| {
        if e.kind == FailureKind::ConnectError {
            connect_failures += 1;
            connect_failures < 2
        } else {
            e.kind.retryable()
        }
    }
}

impl Retry {
    /// Runs `op` until it succeeds, fails with a kind that is not retried, or runs out of
    /// attempts; each wait is noted on the call's meter.
    async fn attempts<T, Fut>(
        &self,
        meter: &CallMeter,
        op: impl FnMut() -> Fut,
    ) -> Result<T, ProviderError>
    where
        Fut: std::future::Future<Output = Result<T, ProviderError>>,
    {
        op.retry(self.backoff())
            .sleep(tokio::time::sleep)
            .when(retry_filter())
            .adjust(|e, d| self.adjust(e, d))
            .notify(|e, d| meter.note(format!("retry after {} ms: {e}", d.as_millis())))
            .await
    }
}

impl Provider for Retry {
    fn chat<'a>(
        &'a self,
        call: &'a ChatCall<'a>,
    ) -> BoxFuture<'a, Result<ChatResponse, ProviderError>> {
        Box::pin(self.attempts(call.meter, || self.inner.chat(call)))
    }

    fn embed<'a>(
        &'a self,
        call: &'a EmbedCall<'a>,
    ) -> BoxFuture<'a, Result<EmbedResponse, ProviderError>> {
        Box::pin(self.attempts(call.meter, || self.inner.embed(call)))
    }

    pass_through!(models, probe);
}

// ---------------------------------------------------------------------------------------------
// Breaker

/// State of one target's breaker, as shown by `Router::health`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    /// Calls go through.
    Closed,
    /// Calls are refused without contacting the target until the cooldown ends.
    Open,
    /// Cooldown over; the next call first runs a health probe.
    HalfOpen,
}

/// A snapshot of one breaker.
#[derive(Debug, Clone, Serialize)]
pub struct BreakerSnapshot {
    pub state: BreakerState,
    pub consecutive_failures: u32,
    /// Times the breaker opened since the target last answered a real call.
    pub trips: u32,
    /// Remaining cooldown while open.
    pub open_for_ms: u64,
    pub last_failure: Option<String>,
}

#[derive(Debug, Default)]
struct BreakerInner {
    consecutive: u32,
    trips: u32,
    open_until: Option<Instant>,
    probing: bool,
    last_failure: Option<String>,
}

/// Per-target circuit breaker. Opens after `consecutive_failures` failed calls, at once on
/// connection refused / missing model / auth / quota / OOM, and for at least a Retry-After.
/// Each trip lengthens the next open period (a re-trip never shortens one). When the period is
/// over, one caller runs a health probe; only its success lets traffic through again.
pub struct Breaker {
    inner: Arc<dyn Provider>,
    /// `provider:model`, for the cooldown metric.
    target: String,
    cfg: CooldownConfig,
    probe_timeout: Duration,
    state: Mutex<BreakerInner>,
}

/// Resets `probing` even if the probing call is cancelled.
struct ProbeGuard<'a>(&'a Mutex<BreakerInner>);

impl Drop for ProbeGuard<'_> {
    fn drop(&mut self) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).probing = false;
    }
}

impl Breaker {
    /// A breaker for `target` (`provider:model`, the cooldown metric's label) over `inner`.
    pub fn new(
        inner: Arc<dyn Provider>,
        target: impl Into<String>,
        cfg: CooldownConfig,
        probe_timeout: Duration,
    ) -> Self {
        Self {
            inner,
            target: target.into(),
            cfg,
            probe_timeout,
            state: Mutex::new(BreakerInner::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BreakerInner> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn snapshot(&self) -> BreakerSnapshot {
        let s = self.lock();
        let now = Instant::now();
        let (state, open_for) = match s.open_until {
            None => (BreakerState::Closed, Duration::ZERO),
            Some(t) if t > now => (BreakerState::Open, t - now),
            Some(_) => (BreakerState::HalfOpen, Duration::ZERO),
        };
        BreakerSnapshot {
            state,
            consecutive_failures: s.consecutive,
            trips: s.trips,
            open_for_ms: open_for.as_millis() as u64,
            last_failure: s.last_failure.clone(),
        }
    }

    /// Remaining cooldown, if open.
    pub fn open_for(&self) -> Option<Duration> {
        let s = self.lock();
        s.open_until
            .and_then(|t| t.checked_duration_since(Instant::now()))
    }

    fn trip(&self, s: &mut BreakerInner, at_least: Option<Duration>) {
        let c = &self.cfg;
        let secs = (c.initial_s * c.multiplier.powi(s.trips.min(64) as i32)).min(c.max_s);
        let mut d = Duration::from_secs_f64(secs);
        if let Some(min) = at_least {
            d = d.max(min);
        }
        let until = Instant::now() + d;
        s.open_until = Some(s.open_until.map_or(until, |u| u.max(until)));
        s.trips += 1;
        s.consecutive = 0;
        crate::metrics::cooldown(&self.target);
        tracing::warn!(
            target = %self.target,
            cooldown_ms = d.as_millis() as u64,
            trips = s.trips,
            "target cooling down"
        );
    }

    /// Lets a call through, running the half-open health probe first when due.
    async fn admit(&self, model: &str) -> Result<(), ProviderError> {
        {
            let mut s = self.lock();
            match s.open_until {
                None => return Ok(()),
                Some(t) if Instant::now() < t => {
                    return Err(ProviderError::new(
                        FailureKind::CircuitOpen,
                        format!(
                            "skipped for another {} ms after: {}",
                            (t - Instant::now()).as_millis(),
                            s.last_failure.as_deref().unwrap_or("earlier failures")
                        ),
                    ));
                }
                Some(_) if s.probing => {
                    return Err(ProviderError::new(
                        FailureKind::CircuitOpen,
                        "a health probe is checking whether the target is back",
                    ));
                }
                Some(_) => s.probing = true,
            }
        }
        let _guard = ProbeGuard(&self.state);
        let now = Instant::now();
        let deadlines = Deadlines {
            first_token: Some(now + self.probe_timeout),
            total: Some(now + self.probe_timeout),
            idle: None,
        };
        let result = self.inner.probe(model, deadlines).await;
        let mut s = self.lock();
        match result {
            Ok(()) => {
                tracing::info!(model, "health probe succeeded; target back in rotation");
                s.open_until = None;
                s.consecutive = 0;
                Ok(())
            }
            Err(e) => {
                s.last_failure = Some(format!("health probe: {e}"));
                self.trip(&mut s, e.retry_after);
                Err(ProviderError::new(
                    FailureKind::CircuitOpen,
                    format!("health probe failed: {e}"),
                ))
            }
        }
    }

    fn record(&self, err: Option<&ProviderError>) {
        let mut s = self.lock();
        match err {
            None => {
                s.consecutive = 0;
                s.trips = 0;
            }
            Some(e) if e.kind.counts_against_target() => {
                s.consecutive += 1;
                s.last_failure = Some(e.to_string());
                let told_to_wait = e.retry_after.is_some()
                    && matches!(
                        e.kind,
                        FailureKind::RateLimited | FailureKind::QueueFull | FailureKind::Overloaded
                    );
                if e.kind.opens_immediately()
                    || told_to_wait
                    || s.consecutive >= self.cfg.consecutive_failures
                {
                    let at_least = if e.kind.long_cooldown() {
                        Some(Duration::from_secs_f64(self.cfg.max_s))
                    } else {
                        e.retry_after
                    };
                    self.trip(&mut s, at_least);
                }
            }
            Some(_) => {}
        }
    }
}

impl Provider for Breaker {
    fn chat<'a>(
        &'a self,
        call: &'a ChatCall<'a>,
    ) -> BoxFuture<'a, Result<ChatResponse, ProviderError>> {
        Box::pin(async move {
            self.admit(call.model).await?;
            let r = self.inner.chat(call).await;
            self.record(r.as_ref().err());
            r
        })
    }

    fn embed<'a>(
        &'a self,
        call: &'a EmbedCall<'a>,
    ) -> BoxFuture<'a, Result<EmbedResponse, ProviderError>> {
        Box::pin(async move {
            self.admit(call.model).await?;
            let r = self.inner.embed(call).await;
            self.record(r.as_ref().err());
            r
        })
    }

    pass_through!(models, probe);
}

// ---------------------------------------------------------------------------------------------
// Validate

/// Checks replies before they count as answers:
/// - empty output, a refusal or a content-filter stop is `Refused` (the router moves on; no
///   breaker penalty, since this layer sits outside the breaker);
/// - structured output cut off at `max_tokens` (stop reason `length` / `max_tokens`) is asked
///   again once on the same target with twice the `max_tokens` (at most
///   `TRUNCATION_MAX_TOKENS_CAP`); cut off again, it is `Truncated`;
/// - structured output that does not match the schema gets one repair re-prompt (the reply and
///   the problem are shown to the model); a second invalid reply is `InvalidOutput`.
pub struct Validate {
    inner: Arc<dyn Provider>,
}

impl Validate {
    pub fn new(inner: Arc<dyn Provider>) -> Self {
        Self { inner }
    }
}

/// Upper bound of the `max_tokens` used when retrying a truncated structured reply.
pub const TRUNCATION_MAX_TOKENS_CAP: u32 = 4096;

/// The reply stopped because it reached `max_tokens`.
fn hit_limit(r: &ChatResponse) -> bool {
    matches!(
        r.done_reason.as_deref(),
        Some("length") | Some("max_tokens")
    )
}

fn invalid(problem: String, r: &ChatResponse) -> ProviderError {
    let cut = if hit_limit(r) {
        " (the output hit max_tokens)"
    } else {
        ""
    };
    ProviderError::new(FailureKind::InvalidOutput, format!("{problem}{cut}"))
}

/// Empty output (unless cut by max_tokens), a refusal or a content filter: `Refused`.
fn not_refused(r: ChatResponse) -> Result<ChatResponse, ProviderError> {
    let why = match r.done_reason.as_deref() {
        Some("content_filter") => Some("stopped by the content filter".to_string()),
        Some("refusal") => Some("the model refused".to_string()),
        _ if r.text.trim().is_empty() && !hit_limit(&r) => Some(format!(
            "empty output (stop reason {})",
            r.done_reason.as_deref().unwrap_or("none")
        )),
        _ => None,
    };
    match why {
        Some(w) => Err(ProviderError::new(FailureKind::Refused, w)),
        None => Ok(r),
    }
}

fn summed(first: &ChatResponse, second: ChatResponse) -> ChatResponse {
    ChatResponse {
        prompt_tokens: first.prompt_tokens + second.prompt_tokens,
        eval_tokens: first.eval_tokens + second.eval_tokens,
        ..second
    }
}

impl Provider for Validate {
    fn chat<'a>(
        &'a self,
        call: &'a ChatCall<'a>,
    ) -> BoxFuture<'a, Result<ChatResponse, ProviderError>> {
        Box::pin(async move {
            let first = not_refused(self.inner.chat(call).await?)?;
            let Some(schema) = call.req.json_schema else {
                return Ok(first);
            };
            let mut problem = match super::validate::check_output(schema, &first.text) {
                Ok(_) => return Ok(first),
                Err(p) => p,
            };
            let mut first = first;
            let mut req = call.req.clone();
            if hit_limit(&first) {
                let bigger = req
                    .max_tokens
                    .saturating_mul(2)
                    .min(TRUNCATION_MAX_TOKENS_CAP.max(req.max_tokens));
                if bigger <= req.max_tokens {
                    return Err(ProviderError::new(
                        FailureKind::Truncated,
                        format!(
                            "structured output cut off at max_tokens {}: {problem}",
                            req.max_tokens
                        ),
                    ));
                }
                call.meter.note(format!(
                    "output cut off at max_tokens {}; asking again with {bigger}",
                    req.max_tokens
                ));
                req.max_tokens = bigger;
                let again = ChatCall {
                    model: call.model,
                    req: req.clone(),
                    deadlines: call.deadlines,
                    meter: call.meter,
                };
                let second = not_refused(self.inner.chat(&again).await?)?;
                problem = match super::validate::check_output(schema, &second.text) {
                    Ok(_) => return Ok(summed(&first, second)),
                    Err(p) if hit_limit(&second) => {
                        return Err(ProviderError::new(
                            FailureKind::Truncated,
                            format!("structured output cut off at max_tokens {bigger}: {p}"),
                        ));
                    }
                    Err(p) => p,
                };
                first = summed(&first, second);
            }
            tracing::debug!(model = call.model, %problem, "invalid structured output; one repair attempt");
            call.meter.repair();
            let mut messages: Vec<ChatMessage> = req.messages.to_vec();
            messages.push(ChatMessage {
                role: Role::Assistant,
                content: first.text.clone(),
            });
            messages.push(ChatMessage::user(format!(
                "That reply is invalid: {problem}. Reply again with only one JSON object that \
                 matches the requested schema, with no other text."
            )));
            let repair = ChatCall {
                model: call.model,
                req: ChatRequest {
                    messages: &messages,
                    ..req
                },
                deadlines: call.deadlines,
                meter: call.meter,
            };
            let second = self.inner.chat(&repair).await?;
            match super::validate::check_output(schema, &second.text) {
                Ok(_) => Ok(summed(&first, second)),
                Err(p) => Err(invalid(
                    format!("invalid structured output after one repair: {p}"),
                    &second,
                )),
            }
        })
    }

    fn embed<'a>(
        &'a self,
        call: &'a EmbedCall<'a>,
    ) -> BoxFuture<'a, Result<EmbedResponse, ProviderError>> {
        self.inner.embed(call)
    }

    pass_through!(models, probe);
}
