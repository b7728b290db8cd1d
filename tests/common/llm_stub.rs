//! A protocol-faithful LLM server stub over real HTTP/1.1 on 127.0.0.1:0, speaking the Ollama
//! native, OpenAI-compatible or Anthropic wire format: non-streaming JSON, NDJSON (Ollama) and
//! SSE (OpenAI, Anthropic) streaming with chunked transfer encoding, exact error bodies,
//! scripted latency (before headers, before the first token, between tokens), parallel capacity
//! per model with a bounded queue (like OLLAMA_NUM_PARALLEL; 503 when full, like
//! OLLAMA_MAX_QUEUE), and faults (reset, 404 model
//! missing, any status with headers, cut streams, error lines inside a 200 stream, truncation via
//! `prompt_eval_count`). `stop()` closes the port (connection refused), `restart()` reopens it;
//! `Blackhole` gives an address whose connects hang (full accept queue). Every request is
//! recorded, and so is a client closing the connection during a scripted delay
//! (`disconnects()`, Ollama's 499). A chat request asking for `logprobs` gets them in the
//! protocol's format (OpenAI `choices[0].logprobs.content[]`, Ollama `logprobs[]`; streamed one
//! token per chunk, tokens being runs of letters/digits or of other characters), with scripted
//! probabilities per token (`logprobs_at`), or is refused with a 400 (`reject_logprobs`; an
//! Ollama stub then ignores the field, as Ollama before v0.12.11 does). Not a general HTTP
//! server: one request per connection unless `keep_alive()`.
#![allow(dead_code)]

use serde_json::{Value, json};
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

/// Which wire format the stub speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    Ollama,
    OpenAi,
    Anthropic,
}

/// A scripted successful answer, rendered in the stub's wire format (streamed when asked).
#[derive(Debug, Clone)]
pub struct Answer {
    pub text: String,
    pub prompt_tokens: u32,
    pub eval_tokens: u32,
    pub delay_headers: Duration,
    pub delay_first: Duration,
    pub delay_between: Duration,
    /// Close the connection after this many content chunks (no end marker, no final chunk).
    pub cut_after: Option<usize>,
    /// Send the protocol's in-stream error after this many content chunks (HTTP stays 200).
    pub error_after: Option<usize>,
    /// `stop`/`length` (Ollama, OpenAI) or `end_turn`/`max_tokens` (Anthropic).
    pub done_reason: Option<String>,
}

impl Answer {
    pub fn new(text: &str) -> Self {
        Self {
            text: text.to_string(),
            prompt_tokens: 34,
            eval_tokens: 12,
            delay_headers: Duration::ZERO,
            delay_first: Duration::ZERO,
            delay_between: Duration::ZERO,
            cut_after: None,
            error_after: None,
            done_reason: None,
        }
    }
    pub fn prompt_tokens(mut self, n: u32) -> Self {
        self.prompt_tokens = n;
        self
    }
    pub fn delay_headers(mut self, ms: u64) -> Self {
        self.delay_headers = Duration::from_millis(ms);
        self
    }
    pub fn delay_first(mut self, ms: u64) -> Self {
        self.delay_first = Duration::from_millis(ms);
        self
    }
    pub fn delay_between(mut self, ms: u64) -> Self {
        self.delay_between = Duration::from_millis(ms);
        self
    }
    pub fn cut_after(mut self, chunks: usize) -> Self {
        self.cut_after = Some(chunks);
        self
    }
    pub fn error_after(mut self, chunks: usize) -> Self {
        self.error_after = Some(chunks);
        self
    }
    pub fn done_reason(mut self, r: &str) -> Self {
        self.done_reason = Some(r.to_string());
        self
    }
}

/// One scripted response.
#[derive(Debug, Clone)]
pub enum Step {
    Answer(Answer),
    /// A status with a JSON body and extra headers.
    Status {
        status: u16,
        body: String,
        headers: Vec<(String, String)>,
        delay: Duration,
    },
    /// Close the connection without answering.
    Reset,
}

impl Step {
    pub fn answer(text: &str) -> Self {
        Step::Answer(Answer::new(text))
    }
    pub fn status(status: u16, body: Value) -> Self {
        Step::Status {
            status,
            body: body.to_string(),
            headers: vec![],
            delay: Duration::ZERO,
        }
    }
    /// A raw (possibly non-JSON) body.
    pub fn raw(status: u16, body: &str) -> Self {
        Step::Status {
            status,
            body: body.to_string(),
            headers: vec![],
            delay: Duration::ZERO,
        }
    }
    pub fn header(mut self, k: &str, v: &str) -> Self {
        if let Step::Status { headers, .. } = &mut self {
            headers.push((k.to_string(), v.to_string()));
        }
        self
    }
    pub fn delayed(mut self, ms: u64) -> Self {
        if let Step::Status { delay, .. } = &mut self {
            *delay = Duration::from_millis(ms);
        }
        self
    }
}

/// Ollama's error body: `{"error":"…"}`.
pub fn ollama_error(status: u16, message: &str) -> Step {
    Step::status(status, json!({ "error": message }))
}

/// OpenAI's error body.
pub fn openai_error(status: u16, ty: &str, code: Option<&str>, message: &str) -> Step {
    Step::status(
        status,
        json!({"error": {"message": message, "type": ty, "param": null, "code": code}}),
    )
}

/// Anthropic's error body.
pub fn anthropic_error(status: u16, ty: &str, message: &str) -> Step {
    Step::status(
        status,
        json!({"type": "error", "error": {"type": ty, "message": message}, "request_id": "req_stub"}),
    )
}

/// One request the stub received.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub headers: HashMap<String, String>,
    pub body: Value,
    pub at: Instant,
}

struct State {
    proto: Proto,
    scripts: Mutex<HashMap<String, VecDeque<Step>>>,
    defaults: Mutex<HashMap<String, Step>>,
    models: Mutex<Vec<String>>,
    seen: Mutex<Vec<Seen>>,
    /// Parallel slots per model (`capacity`'s first number), made when a model is first asked.
    capacity: Option<usize>,
    slots: Mutex<HashMap<String, Arc<Semaphore>>>,
    /// Most requests running at once, per model (with `capacity`).
    peaks: Mutex<HashMap<String, usize>>,
    max_queue: usize,
    waiting: AtomicUsize,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    disconnects: AtomicUsize,
    dims: usize,
    keep_alive: bool,
    logprobs: LogprobsCfg,
}

/// What the stub does with requests that ask for logprobs.
#[derive(Debug, Clone, Default)]
struct LogprobsCfg {
    /// 400 naming logprobs (OpenAI-compatible, Anthropic); Ollama ignores the field.
    reject: bool,
    /// Per token text: its probability and the alternatives listed after it.
    at: HashMap<String, (f64, Vec<(String, f64)>)>,
}

/// Probability of a token without a scripted one.
const DEFAULT_TOKEN_PROB: f64 = 0.99;

tokio::task_local! {
    /// Whether the connection being answered stays open for the next request.
    static KEEP_ALIVE: bool;
}

/// A running stub.
pub struct LlmStub {
    pub addr: SocketAddr,
    state: Arc<State>,
    accept: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

/// Configures a stub before it starts.
pub struct Builder {
    proto: Proto,
    models: Vec<String>,
    capacity: Option<(usize, usize)>,
    dims: usize,
    keep_alive: bool,
    logprobs: LogprobsCfg,
}

impl Builder {
    /// Asked for logprobs, the stub gives token `token` probability `p` and lists
    /// `alternatives` (token, probability) after it in `top_logprobs` (cut to the requested
    /// count); any other token gets 0.99 and no alternatives.
    pub fn logprobs_at(mut self, token: &str, p: f64, alternatives: &[(&str, f64)]) -> Self {
        let alts = alternatives
            .iter()
            .map(|(t, q)| (t.to_string(), *q))
            .collect();
        self.logprobs.at.insert(token.to_string(), (p, alts));
        self
    }
    /// Refuses chat requests that ask for logprobs with a 400 naming them, like a server
    /// without logprobs support (an Ollama stub ignores the field instead, like old Ollama).
    pub fn reject_logprobs(mut self) -> Self {
        self.logprobs.reject = true;
        self
    }
    pub fn models(mut self, models: &[&str]) -> Self {
        self.models = models.iter().map(|m| m.to_string()).collect();
        self
    }
    /// `parallel` requests run at once, `max_queue` more wait; beyond that: 503.
    pub fn capacity(mut self, parallel: usize, max_queue: usize) -> Self {
        self.capacity = Some((parallel, max_queue));
        self
    }
    pub fn dims(mut self, dims: usize) -> Self {
        self.dims = dims;
        self
    }
    /// Keep connections open between requests, like a real server (HTTP/1.1 keep-alive);
    /// by default each connection carries one request and is closed.
    pub fn keep_alive(mut self) -> Self {
        self.keep_alive = true;
        self
    }
    pub async fn start(self) -> LlmStub {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(State {
            proto: self.proto,
            scripts: Mutex::new(HashMap::new()),
            defaults: Mutex::new(HashMap::new()),
            models: Mutex::new(self.models),
            seen: Mutex::new(Vec::new()),
            capacity: self.capacity.map(|(p, _)| p),
            slots: Mutex::new(HashMap::new()),
            peaks: Mutex::new(HashMap::new()),
            max_queue: self.capacity.map(|(_, q)| q).unwrap_or(usize::MAX),
            waiting: AtomicUsize::new(0),
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
            disconnects: AtomicUsize::new(0),
            dims: self.dims,
            keep_alive: self.keep_alive,
            logprobs: self.logprobs,
        });
        let handle = tokio::spawn(accept_loop(listener, state.clone()));
        LlmStub {
            addr,
            state,
            accept: Mutex::new(Some(handle)),
        }
    }
}

impl LlmStub {
    pub fn builder(proto: Proto) -> Builder {
        let models = match proto {
            Proto::Ollama => vec!["qwen2.5:7b", "all-minilm:latest", "llama3.2:3b"],
            Proto::OpenAi => vec!["gpt-4o-mini", "text-embedding-3-small"],
            Proto::Anthropic => vec!["claude-3-haiku-20240307"],
        };
        Builder {
            proto,
            models: models.into_iter().map(String::from).collect(),
            capacity: None,
            dims: 4,
            keep_alive: false,
            logprobs: LogprobsCfg::default(),
        }
    }

    pub async fn start(proto: Proto) -> LlmStub {
        Self::builder(proto).start().await
    }

    /// The base URL a provider config uses (OpenAI-compatible: with `/v1`).
    pub fn url(&self) -> String {
        match self.state.proto {
            Proto::OpenAi => format!("http://{}/v1", self.addr),
            _ => format!("http://{}", self.addr),
        }
    }

    /// The chat endpoint of this protocol.
    pub fn chat_path(&self) -> &'static str {
        match self.state.proto {
            Proto::Ollama => "/api/chat",
            Proto::OpenAi => "/v1/chat/completions",
            Proto::Anthropic => "/v1/messages",
        }
    }

    /// Queues steps for `path`, used one per request before the default.
    pub fn script(&self, path: &str, steps: impl IntoIterator<Item = Step>) {
        self.state
            .scripts
            .lock()
            .unwrap()
            .entry(path.to_string())
            .or_default()
            .extend(steps);
    }

    /// The response for `path` once its script is used up.
    pub fn set_default(&self, path: &str, step: Step) {
        self.state
            .defaults
            .lock()
            .unwrap()
            .insert(path.to_string(), step);
    }

    pub fn set_models(&self, models: &[&str]) {
        *self.state.models.lock().unwrap() = models.iter().map(|m| m.to_string()).collect();
    }

    pub fn requests(&self) -> Vec<Seen> {
        self.state.seen.lock().unwrap().clone()
    }

    /// Requests received on `path`.
    pub fn hits(&self, path: &str) -> usize {
        self.requests().iter().filter(|r| r.path == path).count()
    }

    /// Most requests that were being processed at once (queued ones excluded).
    /// Most requests for `model` running at once (with `capacity`; 0 when never asked).
    pub fn max_in_flight_of(&self, model: &str) -> usize {
        self.state
            .peaks
            .lock()
            .unwrap()
            .get(model)
            .copied()
            .unwrap_or(0)
    }
    pub fn max_in_flight(&self) -> usize {
        self.state.max_in_flight.load(Ordering::SeqCst)
    }

    /// Connections the client closed while the stub was still answering (during a delay).
    pub fn disconnects(&self) -> usize {
        self.state.disconnects.load(Ordering::SeqCst)
    }

    /// Closes the listening socket: new connections are refused.
    pub fn stop(&self) {
        if let Some(h) = self.accept.lock().unwrap().take() {
            h.abort();
        }
    }

    /// Closes the port and waits until it is closed.
    pub async fn refuse(&self) {
        self.stop();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    /// Listens again on the same port.
    pub async fn restart(&self) {
        self.stop();
        let mut listener = None;
        for _ in 0..50 {
            match TcpListener::bind(self.addr).await {
                Ok(l) => {
                    listener = Some(l);
                    break;
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
        let listener = listener.expect("port can be bound again");
        *self.accept.lock().unwrap() =
            Some(tokio::spawn(accept_loop(listener, self.state.clone())));
    }
}

impl Drop for LlmStub {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A loopback address whose TCP connects hang until the client's connect timeout: a listener
/// with a full accept queue (backlog 0, one connection held and never accepted) drops SYNs.
/// Non-routable addresses (10.255.255.1) are not used: sandboxes and CI proxies may answer them.
pub struct Blackhole {
    pub addr: SocketAddr,
    _listener: TcpListener,
    _filler: std::net::TcpStream,
}

impl Blackhole {
    pub fn start() -> Blackhole {
        let sock = tokio::net::TcpSocket::new_v4().unwrap();
        sock.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = sock.local_addr().unwrap();
        let listener = sock.listen(0).unwrap();
        let filler = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)).unwrap();
        Blackhole {
            addr,
            _listener: listener,
            _filler: filler,
        }
    }
}

/// OpenAI's structured-output refusal (non-streamed reply with `message.refusal`).
pub fn openai_refusal(message: &str) -> Step {
    Step::status(
        200,
        json!({"id": "chatcmpl-1", "object": "chat.completion", "created": 1741569952, "model": "gpt-4o-mini",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": null, "refusal": message, "annotations": []},
                         "logprobs": null, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 19, "completion_tokens": 10, "total_tokens": 29}}),
    )
}

/// Waits `d`, or fails early if the client closes the connection meanwhile.
async fn pause(sock: &mut TcpStream, d: Duration) -> std::io::Result<()> {
    if d.is_zero() {
        return Ok(());
    }
    let until = tokio::time::Instant::now() + d;
    let mut buf = [0u8; 64];
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(until) => return Ok(()),
            r = sock.read(&mut buf) => match r {
                Ok(0) | Err(_) => {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::ConnectionAborted,
                        "client closed the connection",
                    ));
                }
                Ok(_) => {}
            },
        }
    }
}

async fn accept_loop(listener: TcpListener, state: Arc<State>) {
    while let Ok((sock, _)) = listener.accept().await {
        let state = state.clone();
        tokio::spawn(KEEP_ALIVE.scope(state.keep_alive, async move {
            let mut sock = sock;
            // Like Go's net/http (Ollama) and most servers: no Nagle delay between a reply's
            // head and body, which on a kept-alive connection would wait for a delayed ACK.
            let _ = sock.set_nodelay(true);
            // One request per connection unless keep-alive is on and the answer completed.
            while handle(&mut sock, state.clone()).await && state.keep_alive {}
        }));
    }
}

async fn read_request(
    sock: &mut TcpStream,
) -> Option<(String, String, HashMap<String, String>, Value)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let (head_end, len) = loop {
        let n = match sock.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..pos]).to_lowercase();
            let len = head
                .lines()
                .find_map(|l| {
                    l.strip_prefix("content-length:")
                        .map(|v| v.trim().parse().unwrap_or(0))
                })
                .unwrap_or(0usize);
            break (pos + 4, len);
        }
    };
    while buf.len() < head_end + len {
        match sock.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.lines();
    let mut first = lines.next().unwrap_or("").split_whitespace();
    let method = first.next().unwrap_or("GET").to_string();
    let path = first.next().unwrap_or("/").to_string();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_lowercase(), v.trim().to_string()))
        .collect();
    let body = serde_json::from_slice(&buf[head_end..]).unwrap_or(Value::Null);
    Some((method, path, headers, body))
}

/// Decrements in-flight when the request ends, however it ends.
struct Flight<'a>(&'a State);

impl Drop for Flight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Answers one request; true when the answer was sent completely.
async fn handle(sock: &mut TcpStream, state: Arc<State>) -> bool {
    let Some((method, path, headers, body)) = read_request(sock).await else {
        return false;
    };
    state.seen.lock().unwrap().push(Seen {
        method,
        path: path.clone(),
        headers,
        body: body.clone(),
        at: Instant::now(),
    });
    let generating = matches!(
        path.as_str(),
        "/api/chat" | "/api/embed" | "/v1/chat/completions" | "/v1/embeddings" | "/v1/messages"
    );
    // Like Ollama, each model has its own parallel slots and queue.
    let slots = match (state.capacity, generating) {
        (Some(parallel), true) => {
            let model = body["model"].as_str().unwrap_or_default().to_string();
            let mut all = state.slots.lock().unwrap();
            let sem = all
                .entry(model.clone())
                .or_insert_with(|| Arc::new(Semaphore::new(parallel)))
                .clone();
            Some((model, sem))
        }
        _ => None,
    };
    let _permit = match slots {
        Some((model, sem)) => {
            let permit = match sem.clone().try_acquire_owned() {
                Ok(p) => Some(p),
                Err(_) => {
                    if state.waiting.load(Ordering::SeqCst) >= state.max_queue {
                        let step = busy(state.proto);
                        return respond(sock, &state, &path, &body, step).await;
                    }
                    state.waiting.fetch_add(1, Ordering::SeqCst);
                    let p = sem.clone().acquire_owned().await.ok();
                    state.waiting.fetch_sub(1, Ordering::SeqCst);
                    p
                }
            };
            let busy_now = state.capacity.unwrap_or(0) - sem.available_permits();
            let mut peaks = state.peaks.lock().unwrap();
            let peak = peaks.entry(model).or_default();
            *peak = (*peak).max(busy_now);
            permit
        }
        None => None,
    };
    let _flight = if generating {
        let now = state.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        state.max_in_flight.fetch_max(now, Ordering::SeqCst);
        Some(Flight(&state))
    } else {
        None
    };
    let step = choose(&state, &path, &body);
    respond(sock, &state, &path, &body, step).await
}

fn busy(proto: Proto) -> Step {
    match proto {
        Proto::Ollama => ollama_error(
            503,
            "server busy, please try again.  maximum pending requests exceeded",
        ),
        Proto::OpenAi => openai_error(
            503,
            "server_error",
            Some("server_is_overloaded"),
            "The server is overloaded.",
        ),
        Proto::Anthropic => anthropic_error(529, "overloaded_error", "Overloaded"),
    }
}

fn has_model(state: &State, model: &str) -> bool {
    let norm = |s: &str| {
        if s.contains(':') || state.proto != Proto::Ollama {
            s.to_string()
        } else {
            format!("{s}:latest")
        }
    };
    state
        .models
        .lock()
        .unwrap()
        .iter()
        .any(|m| norm(m) == norm(model))
}

fn model_missing(proto: Proto, model: &str) -> Step {
    match proto {
        Proto::Ollama => ollama_error(404, &format!("model '{model}' not found")),
        Proto::OpenAi => openai_error(
            404,
            "invalid_request_error",
            Some("model_not_found"),
            &format!("The model `{model}` does not exist or you do not have access to it."),
        ),
        Proto::Anthropic => anthropic_error(404, "not_found_error", &format!("model: {model}")),
    }
}

fn choose(state: &State, path: &str, body: &Value) -> Step {
    let model = body.get("model").and_then(|m| m.as_str()).unwrap_or("");
    let needs_model = matches!(
        path,
        "/api/chat"
            | "/api/embed"
            | "/api/show"
            | "/v1/chat/completions"
            | "/v1/embeddings"
            | "/v1/messages"
    );
    if needs_model && !has_model(state, model) {
        return model_missing(state.proto, model);
    }
    if state.logprobs.reject && body["logprobs"] == json!(true) {
        match state.proto {
            Proto::Ollama => {}
            Proto::OpenAi => {
                return Step::status(
                    400,
                    json!({"error": {"message": "logprobs is not supported with this model",
                        "type": "invalid_request_error", "param": "logprobs", "code": null}}),
                );
            }
            Proto::Anthropic => {
                return anthropic_error(
                    400,
                    "invalid_request_error",
                    "logprobs: Extra inputs are not permitted",
                );
            }
        }
    }
    if let Some(step) = state
        .scripts
        .lock()
        .unwrap()
        .get_mut(path)
        .and_then(|q| q.pop_front())
    {
        return step;
    }
    if let Some(step) = state.defaults.lock().unwrap().get(path) {
        return step.clone();
    }
    builtin(state, path, body)
}

fn builtin(state: &State, path: &str, body: &Value) -> Step {
    let models = state.models.lock().unwrap().clone();
    match (state.proto, path) {
        (_, "/api/chat" | "/v1/chat/completions" | "/v1/messages") => Step::answer("stub answer"),
        (Proto::Ollama, "/api/tags") => Step::status(
            200,
            json!({"models": models.iter().map(|m| json!({"name": m, "model": m, "size": 4683075271u64,
                "digest": "sha256:stub", "details": {"family": "qwen2", "parameter_size": "7.6B", "quantization_level": "Q4_K_M"}})).collect::<Vec<_>>()}),
        ),
        (Proto::Ollama, "/api/version") => Step::status(200, json!({"version": "0.33.0"})),
        (Proto::Ollama, "/") => Step::raw(200, "Ollama is running"),
        (Proto::Ollama, "/api/show") => Step::status(
            200,
            json!({"model_info": {"general.architecture": "qwen2", "qwen2.context_length": 32768},
                   "capabilities": ["completion"]}),
        ),
        (Proto::Ollama, "/api/embed") | (Proto::OpenAi, "/v1/embeddings") => {
            let inputs: Vec<String> = match body.get("input") {
                Some(Value::String(s)) => vec![s.clone()],
                Some(Value::Array(a)) => a
                    .iter()
                    .map(|v| v.as_str().unwrap_or("").to_string())
                    .collect(),
                _ => vec![],
            };
            let vecs: Vec<Vec<f32>> = inputs.iter().map(|t| vector(t, state.dims)).collect();
            if state.proto == Proto::Ollama {
                Step::status(
                    200,
                    json!({"model": body["model"], "embeddings": vecs,
                    "total_duration": 14143917, "load_duration": 1019500, "prompt_eval_count": 8}),
                )
            } else {
                Step::status(
                    200,
                    json!({"object": "list", "model": body["model"],
                    "data": vecs.iter().enumerate().map(|(i, v)| json!({"object": "embedding", "index": i, "embedding": v})).collect::<Vec<_>>(),
                    "usage": {"prompt_tokens": 8, "total_tokens": 8}}),
                )
            }
        }
        (Proto::OpenAi | Proto::Anthropic, "/v1/models") => Step::status(
            200,
            json!({"object": "list", "data": models.iter().map(|m| json!({"id": m, "object": "model", "type": "model"})).collect::<Vec<_>>()}),
        ),
        (Proto::Ollama, "/api/pull") => Step::Status {
            status: 200,
            body: String::new(),
            headers: vec![("x-stub-pull".into(), "1".into())],
            delay: Duration::ZERO,
        },
        _ => Step::raw(404, "404 page not found"),
    }
}

/// A deterministic unit vector for `text`.
fn vector(text: &str, dims: usize) -> Vec<f32> {
    let mut h: u64 = 1469598103934665603;
    for b in text.bytes() {
        h = (h ^ b as u64).wrapping_mul(1099511628211);
    }
    let v: Vec<f32> = (0..dims)
        .map(|i| (((h >> (i * 7 % 56)) & 0xff) as f32 + 1.0) / 256.0)
        .collect();
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.into_iter().map(|x| x / n).collect()
}

async fn write_head(
    sock: &mut TcpStream,
    status: u16,
    content_type: &str,
    headers: &[(String, String)],
    len: Option<usize>,
) -> std::io::Result<()> {
    let connection = if KEEP_ALIVE.try_with(|k| *k).unwrap_or(false) {
        "keep-alive"
    } else {
        "close"
    };
    let mut h = format!(
        "HTTP/1.1 {status} {}\r\ncontent-type: {content_type}\r\nconnection: {connection}\r\n",
        reason(status)
    );
    for (k, v) in headers {
        h.push_str(&format!("{k}: {v}\r\n"));
    }
    match len {
        Some(n) => h.push_str(&format!("content-length: {n}\r\n")),
        None => h.push_str("transfer-encoding: chunked\r\n"),
    }
    h.push_str("\r\n");
    sock.write_all(h.as_bytes()).await
}

/// A whole `200 OK` JSON reply with a content-length (not streamed).
async fn write_json_ok(sock: &mut TcpStream, body: &str) -> std::io::Result<()> {
    write_head(
        sock,
        200,
        "application/json; charset=utf-8",
        &[],
        Some(body.len()),
    )
    .await?;
    sock.write_all(body.as_bytes()).await
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

async fn chunk(sock: &mut TcpStream, data: &str) -> std::io::Result<()> {
    sock.write_all(format!("{:x}\r\n{data}\r\n", data.len()).as_bytes())
        .await
}

/// Sends `step`; true when it was sent completely (a keep-alive connection may go on).
async fn respond(sock: &mut TcpStream, state: &State, path: &str, req: &Value, step: Step) -> bool {
    let r = match step {
        Step::Reset => {
            let _ = sock.set_zero_linger();
            return false;
        }
        Step::Status { headers, .. } if headers.iter().any(|(k, _)| k == "x-stub-pull") => {
            pull(sock, state, req).await
        }
        Step::Status {
            status,
            body,
            headers,
            delay,
        } => {
            tokio::time::sleep(delay).await;
            let ct = if body.starts_with('{') {
                "application/json; charset=utf-8"
            } else {
                "text/plain; charset=utf-8"
            };
            let r = write_head(sock, status, ct, &headers, Some(body.len())).await;
            match r {
                Ok(()) => sock.write_all(body.as_bytes()).await,
                e => e,
            }
        }
        Step::Answer(a) => {
            let lp = (state.proto != Proto::Anthropic
                && !state.logprobs.reject
                && req["logprobs"] == json!(true))
            .then_some(&state.logprobs);
            answer(sock, state.proto, path, req, a, lp).await
        }
    };
    if r.as_ref()
        .is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionAborted)
    {
        state.disconnects.fetch_add(1, Ordering::SeqCst);
    }
    // A cut stream returns an error: no orderly shutdown then.
    if r.is_ok() && !state.keep_alive {
        let _ = sock.shutdown().await;
    }
    r.is_ok()
}

async fn pull(sock: &mut TcpStream, state: &State, req: &Value) -> std::io::Result<()> {
    let model = req["model"].as_str().unwrap_or("").to_string();
    write_head(sock, 200, "application/x-ndjson", &[], None).await?;
    let total = 1000u64;
    let mut lines = vec![json!({"status": "pulling manifest"})];
    for done in [0, 500, 1000] {
        lines.push(json!({"status": "pulling sha256:aaaa", "digest": "sha256:aaaa", "total": total, "completed": done}));
    }
    lines.push(json!({"status": "verifying sha256 digest"}));
    lines.push(json!({"status": "writing manifest"}));
    lines.push(json!({"status": "success"}));
    for l in lines {
        chunk(sock, &format!("{l}\n")).await?;
    }
    state.models.lock().unwrap().push(model);
    sock.write_all(b"0\r\n\r\n").await
}

/// Splits the answer into stream pieces of about 4 characters.
fn pieces(text: &str) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    chars.chunks(4).map(|c| c.iter().collect()).collect()
}

/// The stub's tokens: runs of letters/digits and runs of other characters
/// (`{"status": "Yes"}` → `{"`, `status`, `": "`, `Yes`, `"}`).
fn tokens(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut last: Option<bool> = None;
    for c in text.chars() {
        let word = c.is_alphanumeric();
        match out.last_mut() {
            Some(t) if last == Some(word) => t.push(c),
            _ => out.push(c.to_string()),
        }
        last = Some(word);
    }
    out
}

/// One token's logprobs item in the wire format (`top_logprobs` cut to what was asked for).
fn logprob_item(proto: Proto, cfg: &LogprobsCfg, token: &str, top_n: usize) -> Value {
    let (p, alts) = cfg
        .at
        .get(token)
        .cloned()
        .unwrap_or((DEFAULT_TOKEN_PROB, vec![]));
    let entry = |t: &str, p: f64| json!({"token": t, "logprob": p.ln(), "bytes": t.as_bytes()});
    let top: Vec<Value> = std::iter::once((token.to_string(), p))
        .chain(alts)
        .take(top_n)
        .map(|(t, q)| entry(&t, q))
        .collect();
    let mut item = entry(token, p);
    // Ollama omits an empty top_logprobs; OpenAI always sends the array.
    if proto == Proto::OpenAi || !top.is_empty() {
        item["top_logprobs"] = json!(top);
    }
    item
}

async fn answer(
    sock: &mut TcpStream,
    proto: Proto,
    path: &str,
    req: &Value,
    a: Answer,
    logprobs: Option<&LogprobsCfg>,
) -> std::io::Result<()> {
    pause(sock, a.delay_headers).await?;
    let top_n = req["top_logprobs"].as_u64().unwrap_or(0) as usize;
    let items = |text: &str| -> Vec<Value> {
        match logprobs {
            Some(cfg) => tokens(text)
                .iter()
                .map(|t| logprob_item(proto, cfg, t, top_n))
                .collect(),
            None => vec![],
        }
    };
    // Ollama: an empty message list loads the model (warm-up).
    if proto == Proto::Ollama
        && path == "/api/chat"
        && req["messages"].as_array().is_some_and(|m| m.is_empty())
    {
        let body = json!({"model": req["model"], "created_at": "2024-12-06T00:46:58Z",
            "message": {"role": "assistant", "content": ""}, "done_reason": "load", "done": true})
        .to_string();
        return write_json_ok(sock, &body).await;
    }
    let stream = match proto {
        Proto::Ollama => req.get("stream").and_then(|s| s.as_bool()).unwrap_or(true),
        _ => req.get("stream").and_then(|s| s.as_bool()).unwrap_or(false),
    };
    let tool = proto == Proto::Anthropic && req.get("tool_choice").is_some();
    let model = req["model"].as_str().unwrap_or("").to_string();
    if !stream {
        pause(sock, a.delay_first).await?;
        let body = match proto {
            Proto::Ollama => {
                let mut v = json!({"model": model, "created_at": "2024-12-06T00:46:58.265747Z",
                "message": {"role": "assistant", "content": a.text}, "done_reason": a.done_reason.as_deref().unwrap_or("stop"), "done": true,
                "total_duration": 2254970291u64, "load_duration": 574751416u64, "prompt_eval_count": a.prompt_tokens,
                "prompt_eval_duration": 1502000000u64, "eval_count": a.eval_tokens, "eval_duration": 175000000u64});
                if logprobs.is_some() {
                    v["logprobs"] = json!(items(&a.text));
                }
                v
            }
            Proto::OpenAi => json!({"id": "chatcmpl-1", "object": "chat.completion", "created": 1741569952, "model": model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": a.text, "refusal": null},
                             "logprobs": logprobs.map(|_| json!({"content": items(&a.text), "refusal": null})),
                             "finish_reason": a.done_reason.as_deref().unwrap_or("stop")}],
                "usage": {"prompt_tokens": a.prompt_tokens, "completion_tokens": a.eval_tokens, "total_tokens": a.prompt_tokens + a.eval_tokens}}),
            Proto::Anthropic => {
                let content = if tool {
                    json!([{"type": "tool_use", "id": "toolu_1", "name": "answer",
                        "input": serde_json::from_str::<Value>(&a.text).unwrap_or(json!({}))}])
                } else {
                    json!([{"type": "text", "text": a.text}])
                };
                json!({"id": "msg_01234", "type": "message", "role": "assistant", "model": model, "content": content,
                    "stop_reason": a.done_reason.as_deref().unwrap_or(if tool { "tool_use" } else { "end_turn" }), "stop_sequence": null,
                    "usage": {"input_tokens": a.prompt_tokens, "output_tokens": a.eval_tokens}})
            }
        }
        .to_string();
        return write_json_ok(sock, &body).await;
    }
    let ct = if proto == Proto::Ollama {
        "application/x-ndjson"
    } else {
        "text/event-stream"
    };
    write_head(sock, 200, ct, &[], None).await?;
    sock.flush().await?;
    if proto == Proto::Anthropic {
        let start = json!({"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant",
            "model": model, "content": [], "stop_reason": null, "usage": {"input_tokens": a.prompt_tokens, "output_tokens": 1}}});
        chunk(sock, &format!("event: message_start\ndata: {start}\n\n")).await?;
        let block = if tool {
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "tool_use", "id": "toolu_1", "name": "answer", "input": {}}})
        } else {
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})
        };
        chunk(
            sock,
            &format!("event: content_block_start\ndata: {block}\n\n"),
        )
        .await?;
        chunk(sock, "event: ping\ndata: {\"type\": \"ping\"}\n\n").await?;
    }
    if proto == Proto::OpenAi {
        let first = json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1694268190, "model": model,
            "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "logprobs": null, "finish_reason": null}], "usage": null});
        chunk(sock, &format!("data: {first}\n\n")).await?;
    }
    pause(sock, a.delay_first).await?;
    // Asked for logprobs, one token per chunk, as real servers stream them.
    let chunks = if logprobs.is_some() {
        tokens(&a.text)
    } else {
        pieces(&a.text)
    };
    for (i, piece) in chunks.iter().enumerate() {
        if a.cut_after == Some(i) {
            // Cut: no terminating chunk, connection reset.
            let _ = sock.set_zero_linger();
            return Err(std::io::Error::other("stream cut on purpose"));
        }
        if a.error_after == Some(i) {
            let err = match proto {
                Proto::Ollama => json!({"error": "an error was encountered while running the model: unexpected EOF"}).to_string() + "\n",
                Proto::OpenAi => format!("data: {}\n\n", json!({"error": {"message": "The server had an error while processing your request.", "type": "server_error", "param": null, "code": null}})),
                Proto::Anthropic => format!("event: error\ndata: {}\n\n", json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})),
            };
            chunk(sock, &err).await?;
            return sock.write_all(b"0\r\n\r\n").await;
        }
        if i > 0 {
            pause(sock, a.delay_between).await?;
        }
        let line = match proto {
            Proto::Ollama => {
                let mut v = json!({"model": model, "created_at": "2023-08-04T08:52:19.385406455-07:00",
                "message": {"role": "assistant", "content": piece}, "done": false});
                if logprobs.is_some() {
                    v["logprobs"] = json!(items(piece));
                }
                v.to_string() + "\n"
            }
            Proto::OpenAi => format!(
                "data: {}\n\n",
                json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1694268190,
                "model": model, "choices": [{"index": 0, "delta": {"content": piece},
                "logprobs": logprobs.map(|_| json!({"content": items(piece), "refusal": null})),
                "finish_reason": null}], "usage": null})
            ),
            Proto::Anthropic => {
                let delta = if tool {
                    json!({"type": "input_json_delta", "partial_json": piece})
                } else {
                    json!({"type": "text_delta", "text": piece})
                };
                format!(
                    "event: content_block_delta\ndata: {}\n\n",
                    json!({"type": "content_block_delta", "index": 0, "delta": delta})
                )
            }
        };
        chunk(sock, &line).await?;
        sock.flush().await?;
    }
    let tail = match proto {
        Proto::Ollama => json!({"model": model, "created_at": "2023-08-04T19:22:45.499127Z",
            "message": {"role": "assistant", "content": ""}, "done": true, "done_reason": a.done_reason.as_deref().unwrap_or("stop"),
            "total_duration": 4883583458u64, "load_duration": 1334875, "prompt_eval_count": a.prompt_tokens,
            "prompt_eval_duration": 342546000, "eval_count": a.eval_tokens, "eval_duration": 4535599000u64}).to_string() + "\n",
        Proto::OpenAi => {
            let mut t = format!("data: {}\n\n", json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1694268190,
                "model": model, "choices": [{"index": 0, "delta": {}, "logprobs": null, "finish_reason": a.done_reason.as_deref().unwrap_or("stop")}], "usage": null}));
            if req.pointer("/stream_options/include_usage") == Some(&json!(true)) {
                t += &format!("data: {}\n\n", json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1694268190,
                    "model": model, "choices": [], "usage": {"prompt_tokens": a.prompt_tokens, "completion_tokens": a.eval_tokens,
                    "total_tokens": a.prompt_tokens + a.eval_tokens}}));
            }
            t + "data: [DONE]\n\n"
        }
        Proto::Anthropic => format!(
            "event: content_block_stop\ndata: {}\n\nevent: message_delta\ndata: {}\n\nevent: message_stop\ndata: {}\n\n",
            json!({"type": "content_block_stop", "index": 0}),
            json!({"type": "message_delta", "delta": {"stop_reason": a.done_reason.as_deref().unwrap_or(if tool { "tool_use" } else { "end_turn" }), "stop_sequence": null},
                   "usage": {"output_tokens": a.eval_tokens}}),
            json!({"type": "message_stop"})
        ),
    };
    chunk(sock, &tail).await?;
    sock.write_all(b"0\r\n\r\n").await
}
