//! A minimal protocol-faithful LLM server stub over real HTTP/1.1 (one request per connection):
//! each route answers with a scripted status and body in the exact Ollama / OpenAI wire format,
//! and every request body is recorded for assertions. Issue 4 grows this into the full stub.
#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// One scripted reply.
#[derive(Clone)]
pub struct Reply {
    pub status: u16,
    pub body: String,
}

impl Reply {
    pub fn json(status: u16, body: serde_json::Value) -> Self {
        Self {
            status,
            body: body.to_string(),
        }
    }
}

/// A running stub: `url()` is its base URL; `requests()` what it received as (path, body).
#[derive(Clone)]
pub struct Stub {
    pub addr: std::net::SocketAddr,
    seen: Arc<Mutex<Vec<(String, serde_json::Value)>>>,
}

impl Stub {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
    pub fn requests(&self) -> Vec<(String, serde_json::Value)> {
        self.seen.lock().unwrap().clone()
    }
}

/// Starts a stub that answers each path with its scripted reply (404 for unknown paths).
pub async fn start(routes: HashMap<&'static str, Reply>) -> Stub {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let stub = Stub {
        addr,
        seen: seen.clone(),
    };
    let routes = Arc::new(routes);
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let routes = routes.clone();
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 8192];
                let (head_end, content_length) = loop {
                    let n = match sock.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buf[..pos]).to_lowercase();
                        let len = head
                            .lines()
                            .find_map(|l| {
                                l.strip_prefix("content-length:")
                                    .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                            })
                            .unwrap_or(0);
                        break (pos + 4, len);
                    }
                };
                while buf.len() < head_end + content_length {
                    match sock.read(&mut chunk).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
                let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
                let body =
                    serde_json::from_slice(&buf[head_end..]).unwrap_or(serde_json::Value::Null);
                seen.lock().unwrap().push((path.clone(), body));
                let reply = routes.get(path.as_str()).cloned().unwrap_or(Reply {
                    status: 404,
                    body: r#"{"error":"404 page not found"}"#.into(),
                });
                let response = format!(
                    "HTTP/1.1 {} X\r\ncontent-type: application/json; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{}",
                    reply.status,
                    reply.body.len(),
                    reply.body
                );
                let _ = sock.write_all(response.as_bytes()).await;
                let _ = sock.shutdown().await;
            });
        }
    });
    stub
}

/// Ollama `/api/chat` non-streaming success body.
pub fn ollama_chat(content: &str) -> Reply {
    Reply::json(
        200,
        serde_json::json!({"model": "qwen2.5:7b", "created_at": "2024-12-06T00:46:58.265747Z",
            "message": {"role": "assistant", "content": content}, "done_reason": "stop", "done": true,
            "total_duration": 2254970291u64, "load_duration": 574751416u64, "prompt_eval_count": 34,
            "prompt_eval_duration": 1502000000u64, "eval_count": 12, "eval_duration": 175000000u64}),
    )
}

/// OpenAI `/v1/chat/completions` success body.
pub fn openai_chat(content: &str) -> Reply {
    Reply::json(
        200,
        serde_json::json!({"id": "chatcmpl-1", "object": "chat.completion", "created": 1741569952, "model": "gpt-4o-mini",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content, "refusal": null},
                         "logprobs": null, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 19, "completion_tokens": 10, "total_tokens": 29}}),
    )
}
