//! The HTTP API (`rfpq serve`, module `api`) against real Redis: auth before anything is read
//! or queued, upload → status → cancel, refusals (422, 413), and a full run with an in-process
//! worker whose filled workbook is downloaded over HTTP and whose reviewed review workbook is
//! applied over HTTP.

mod common;

use reqwest::StatusCode;
use reqwest::multipart::{Form, Part};
use rfpq::api::ServeOptions;
use rfpq::queue::RfpQueue;
use serde_json::Value;
use std::time::{Duration, Instant};

const TOKEN: &str = "test-token-0123456789";

/// A server on a free local port, stopped when dropped.
struct Server {
    base: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<Result<(), rfpq::api::ServeError>>>,
}

impl Server {
    async fn start(queue: RfpQueue, opts: ServeOptions) -> Self {
        let listener = rfpq::api::bind("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(rfpq::api::serve_on(listener, queue, opts, async move {
            let _ = rx.await;
        }));
        Self {
            base,
            stop: Some(tx),
            task: Some(task),
        }
    }

    /// A server on the test Redis under a fresh key prefix for `test` (returned, with the
    /// queue config for workers), requiring [`TOKEN`]; `opts` sets everything else.
    async fn with_token(
        test: &str,
        opts: ServeOptions,
    ) -> (String, rfpq::queue::QueueConfig, Self) {
        let prefix = common::prefix(test);
        let (cfg, queue) = common::queue(&prefix).await;
        let opts = ServeOptions {
            token: Some(TOKEN.into()),
            ..opts
        };
        (prefix, cfg, Self::start(queue, opts).await)
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// GET `path` with the bearer token.
    async fn get(&self, http: &reqwest::Client, path: &str) -> reqwest::Response {
        http.get(self.url(path))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap()
    }

    /// POST `form` to `/jobs` (an upload) with the bearer token.
    async fn submit(&self, http: &reqwest::Client, form: Form) -> reqwest::Response {
        http.post(self.url("/jobs"))
            .bearer_auth(TOKEN)
            .multipart(form)
            .send()
            .await
            .unwrap()
    }

    async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(10), task)
                .await
                .expect("the server stops")
                .unwrap()
                .expect("the server ran without error");
        }
    }
}

fn client() -> reqwest::Client {
    rfpq::install_tls_provider();
    reqwest::Client::new()
}

fn upload(name: &str, bytes: Vec<u8>) -> Form {
    Form::new().part("file", Part::bytes(bytes).file_name(name.to_string()))
}

/// Keys under `prefix` matching `pattern` (after the prefix).
async fn keys(prefix: &str, pattern: &str) -> Vec<String> {
    let client = redis::Client::open(common::redis_url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let mut found = Vec::new();
    let mut cursor: u64 = 0;
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{prefix}{pattern}"))
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut conn)
            .await
            .unwrap();
        found.extend(batch);
        if next == 0 {
            return found;
        }
        cursor = next;
    }
}

async fn json(resp: reqwest::Response) -> Value {
    let text = resp.text().await.unwrap();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// The `error` string of a JSON error response (panics when there is none).
async fn error_text(resp: reqwest::Response) -> String {
    let body = json(resp).await;
    body["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no error string: {body}"))
        .to_string()
}

/// An upload of a one-question workbook named `name`.
fn encryption_question(name: &str) -> Form {
    upload(
        name,
        common::questionnaire(&["Is customer data encrypted at rest?"]),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_the_token_nothing_is_read_or_queued() {
    let (prefix, _, server) = Server::with_token("api-auth", ServeOptions::default()).await;
    let http = client();
    let workbook = common::questionnaire(&["Is customer data encrypted at rest?"]);

    // No token, then a wrong one (same length, then another length): 401 JSON + challenge.
    for auth in [None, Some("test-token-0123456788"), Some("nope")] {
        let mut req = http
            .post(server.url("/jobs"))
            .multipart(upload("q.xlsx", workbook.clone()));
        if let Some(t) = auth {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{auth:?}");
        assert!(
            resp.headers()["www-authenticate"]
                .to_str()
                .unwrap()
                .starts_with("Bearer"),
        );
        let why = error_text(resp).await;
        assert!(why.contains("token"), "{why}");
    }
    assert!(
        keys(&prefix, "*rfpq-job*").await.is_empty(),
        "a refused upload left job keys"
    );
    assert!(
        keys(&prefix, "*-plan*").await.is_empty(),
        "a refused upload left a BullMQ job"
    );

    for path in ["/jobs/x", "/jobs/x/result", "/jobs/x/review", "/metrics"] {
        let resp = http.get(server.url(path)).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{path}");
    }
    let resp = http
        .post(server.url("/jobs/x/cancel"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);

    // Health and the API description need no token.
    let resp = http.get(server.url("/healthz")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(json(resp).await["redis"], "ok");
    let resp = http.get(server.url("/openapi.json")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let doc = json(resp).await;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.0"));
    let status = &doc["components"]["schemas"]["JobStatus"]["properties"];
    for key in ["kb_version", "config_hash", "config_hashes"] {
        assert!(status[key].is_object(), "JobStatus.{key} is described");
    }
    assert_eq!(
        doc["components"]["securitySchemes"]["bearerAuth"]["scheme"],
        "bearer"
    );

    // With the token, metrics are Prometheus text; an unknown path is JSON 404.
    let resp = server.get(&http, "/metrics").await;
    assert_eq!(resp.status(), StatusCode::OK);
    let text = resp.text().await.unwrap();
    assert!(
        text.contains("# TYPE rfpq_workers_live gauge\nrfpq_workers_live 0\n"),
        "{text}"
    );
    assert!(text.contains("rfpq_api_unauthorized_total 8"), "{text}");
    let resp = http.get(server.url("/nope")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    assert!(json(resp).await["error"].is_string());

    server.stop().await;
    common::cleanup(&prefix).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn upload_status_cancel_and_refusals() {
    let (prefix, _, server) = Server::with_token(
        "api-jobs",
        ServeOptions {
            max_upload_bytes: 64 * 1024,
            ..Default::default()
        },
    )
    .await;
    let http = client();
    let started = Instant::now();

    // Upload → 201 with an id and where to follow it.
    let resp = server
        .submit(&http, encryption_question("q.xlsx").text("batch_size", "3"))
        .await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let created = json(resp).await;
    let id = created["id"].as_str().unwrap().to_string();
    assert_eq!(created["status_url"], format!("/jobs/{id}"));
    assert_eq!(created["warnings"], serde_json::json!([]));

    // Status: `rfpq status --json`'s object.
    let resp = server.get(&http, &format!("/jobs/{id}")).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let st = json(resp).await;
    assert_eq!(st["id"], id.as_str());
    assert_eq!(st["state"], "queued");
    assert_eq!(st["file_name"], "q.xlsx");
    assert_eq!(st["source_format"], "xlsx");
    for field in ["rows_total", "rows_done", "rows_failed", "needs_review"] {
        assert!(st[field].is_u64(), "{field}: {st}");
    }
    assert!(st["report"].is_object());

    // No result while queued.
    for part in ["result", "review"] {
        let resp = server.get(&http, &format!("/jobs/{id}/{part}")).await;
        assert_eq!(resp.status(), StatusCode::CONFLICT, "{part}");
        let body = json(resp).await;
        assert_eq!(body["error"], "job is running");
        assert_eq!(body["state"], "queued");
    }

    // Cancel: queued → cancelled at once; again → already final.
    let cancel = |id: String| {
        let req = http
            .post(server.url(&format!("/jobs/{id}/cancel")))
            .bearer_auth(TOKEN);
        async move { req.send().await.unwrap() }
    };
    let resp = cancel(id.clone()).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        json(resp).await,
        serde_json::json!({"outcome": "cancelled", "state": "cancelled"})
    );
    let resp = cancel(id.clone()).await;
    assert_eq!(
        json(resp).await,
        serde_json::json!({"outcome": "already_final", "state": "cancelled"})
    );
    let resp = server.get(&http, &format!("/jobs/{id}")).await;
    assert_eq!(json(resp).await["state"], "cancelled");

    // Unknown ids: 404 JSON.
    for path in [
        "/jobs/0190f3c2-7b1a-7c3e-9a51-0123456789ab".to_string(),
        "/jobs/no:such:job/result".to_string(),
    ] {
        let resp = server.get(&http, &path).await;
        assert_eq!(resp.status(), StatusCode::NOT_FOUND, "{path}");
        assert!(json(resp).await["error"].is_string());
    }
    let resp = cancel("0190f3c2-7b1a-7c3e-9a51-0123456789ab".into()).await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);

    // A text file named .xlsx: 422 with the reason, and nothing queued.
    let jobs_before = keys(&prefix, "*rfpq-job*:meta").await.len();
    let resp = server
        .submit(
            &http,
            upload(
                "notes.xlsx",
                b"Meeting notes\nnothing to see here\n".to_vec(),
            ),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let why = error_text(resp).await;
    assert!(why.contains("not a workbook"), "{why}");
    assert!(why.starts_with("notes.xlsx: "), "{why}");

    // An unknown KB name: 422, nothing queued; a path is never taken from the form.
    for kb in ["no-such-kb", "/etc"] {
        let resp = server
            .submit(&http, encryption_question("q.xlsx").text("kb", kb))
            .await;
        assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY, "{kb}");
        let why = error_text(resp).await;
        assert!(why.contains("no knowledge base"), "{why}");
    }

    // Bad requests: no file field, a bad batch size, not multipart.
    let resp = server.submit(&http, Form::new().text("kb", "x")).await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert!(error_text(resp).await.contains("'file'"));
    let resp = server
        .submit(
            &http,
            upload("q.xlsx", common::questionnaire(&["Q?"])).text("batch_size", "0"),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let resp = http
        .post(server.url("/jobs"))
        .bearer_auth(TOKEN)
        .body("hello")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert!(json(resp).await["error"].is_string());

    // Over the 64 KiB limit: 413 JSON (the declared length is refused before reading).
    let big = vec![b'x'; 200 * 1024];
    let resp = server.submit(&http, upload("big.xlsx", big)).await;
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert!(error_text(resp).await.contains("limit"));
    // The same without a declared length (streamed): refused while reading.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        (0..50).map(|_| Ok(vec![b'y'; 4096])).collect();
    let streamed = Part::stream(reqwest::Body::wrap_stream(futures_util::stream::iter(
        chunks,
    )))
    .file_name("big.xlsx");
    // The server answers 413 and closes as soon as the limit is passed, so the client may
    // still be writing the body: it then sees the connection cut (a broken pipe) instead of
    // the response. Either way the server refused it; the too-large counter below proves it.
    match http
        .post(server.url("/jobs"))
        .bearer_auth(TOKEN)
        .multipart(Form::new().part("file", streamed))
        .send()
        .await
    {
        Ok(resp) => {
            assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
            assert!(json(resp).await["error"].is_string());
        }
        Err(e) => assert!(e.is_request() || e.is_body(), "not a cut upload: {e:?}"),
    }
    assert_eq!(
        keys(&prefix, "*rfpq-job*:meta").await.len(),
        jobs_before,
        "a refused upload was queued"
    );

    let resp = server.get(&http, "/metrics").await;
    let text = resp.text().await.unwrap();
    assert!(text.contains("rfpq_api_jobs_submitted_total 1\n"), "{text}");
    assert!(
        text.contains("rfpq_api_uploads_refused_total 3\n"),
        "{text}"
    );
    assert!(
        text.contains("rfpq_api_uploads_too_large_total 2\n"),
        "{text}"
    );

    eprintln!("api round trips took {:?}", started.elapsed());
    server.stop().await;
    common::cleanup(&prefix).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_job_uploaded_over_http_is_answered_and_downloaded() {
    let tmp = tempfile::tempdir().unwrap();
    let router = common::embedded_router();
    let kb = common::small_kb(&router, tmp.path()).await;
    // The server's default KB is a directory: published to Redis for the worker.
    let (prefix, cfg, server) = Server::with_token(
        "api-run",
        ServeOptions {
            kb: Some(kb.to_str().unwrap().to_string()),
            ..Default::default()
        },
    )
    .await;
    let worker = common::start_worker(cfg, router).await;
    let http = client();

    let resp = server
        .submit(&http, encryption_question("Vendor Q.xlsx"))
        .await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let id = json(resp).await["id"].as_str().unwrap().to_string();

    let started = Instant::now();
    let st = loop {
        let resp = server.get(&http, &format!("/jobs/{id}")).await;
        let st = json(resp).await;
        if ["completed", "completed_with_errors", "failed", "cancelled"]
            .contains(&st["state"].as_str().unwrap())
        {
            break st;
        }
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "the job did not finish: {st}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    eprintln!("job finished in {:?}", started.elapsed());
    assert_eq!(st["state"], "completed", "{st}");
    assert!(st["kb_version"].is_string(), "{st}");
    // … and the router config that planned and answered it.
    let hash = st["config_hash"]
        .as_str()
        .expect("config_hash in the status");
    assert_eq!(st["config_hashes"][hash], 1, "{st}");

    let resp = server.get(&http, &format!("/jobs/{id}/result")).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.headers()["content-type"],
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    );
    let disposition = resp.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        disposition.starts_with("attachment; filename=\"Vendor Q.filled.xlsx\""),
        "{disposition}"
    );
    let bytes = resp.bytes().await.unwrap();
    assert!(bytes.starts_with(b"PK"), "not a zip package");

    let resp = server.get(&http, &format!("/jobs/{id}/review")).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(
        resp.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .contains("filename=\"Vendor Q.review.xlsx\"")
    );
    let review = resp.bytes().await.unwrap().to_vec();
    assert!(review.starts_with(b"PK"));

    // The reviewer's decisions go back over HTTP: the job's original with them applied.
    let range = common::sheet_cells(&review, "Review");
    let col = |name: &str| {
        (0..range.width() as u32)
            .find(|c| common::cell_text(&range, 0, *c) == name)
            .unwrap()
    };
    let reviewed = |answer: &str| {
        let edit = |c: &str, v: &str| rfpq::workbook::CellWrite {
            sheet: "Review".into(),
            cell: rfpq::workbook::CellRef::new(1, col(c)),
            value: v.into(),
        };
        rfpq::workbook::patch::patch(
            &review,
            &[
                edit("Decision", "edit"),
                edit("Final: Answer", answer),
                edit(
                    "Final: Comments",
                    "AES-256 at rest, reviewed by the security team.",
                ),
            ],
        )
        .unwrap()
    };
    let apply = |bytes: Vec<u8>, query: &str| {
        http.post(server.url(&format!("/jobs/{id}/apply{query}")))
            .bearer_auth(TOKEN)
            .multipart(upload("Vendor Q.review.xlsx", bytes))
            .send()
    };
    let resp = apply(reviewed("yes"), "").await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(
        resp.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .contains("filename=\"Vendor Q.final.xlsx\"")
    );
    let report: Value =
        serde_json::from_str(resp.headers()["x-rfpq-apply-report"].to_str().unwrap()).unwrap();
    assert_eq!(
        (report["edited"].as_u64(), report["cells"].as_u64()),
        (Some(1), Some(2)),
        "{report}"
    );
    let final_bytes = resp.bytes().await.unwrap().to_vec();
    let sheet = common::sheet_cells(&final_bytes, "Security");
    assert_eq!(
        (
            common::cell_text(&sheet, 1, 2),
            common::cell_text(&sheet, 1, 3)
        ),
        (
            "Yes".to_string(),
            "AES-256 at rest, reviewed by the security team.".to_string()
        )
    );
    // An illegal value under ?strict=true refuses the whole apply, naming the row.
    let resp = apply(reviewed("Maybe"), "?strict=true").await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body = json(resp).await;
    assert!(
        body.to_string().contains("Security!2") && body.to_string().contains("'Maybe'"),
        "{body}"
    );
    // The CLI does the same for a queued job: `rfpq result JOB --apply REVIEW -o FINAL`.
    let reviewed_path = tmp.path().join("reviewed.xlsx");
    std::fs::write(&reviewed_path, reviewed("no")).unwrap();
    let cli_final = tmp.path().join("final.xlsx");
    let out = common::rfpq_command(&prefix)
        .args([
            "result",
            &id,
            "--apply",
            reviewed_path.to_str().unwrap(),
            "-o",
            cli_final.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sheet = common::sheet_cells(&std::fs::read(&cli_final).unwrap(), "Security");
    assert_eq!(common::cell_text(&sheet, 1, 2), "No");
    // A file that is not a review workbook is refused.
    let resp = apply(common::questionnaire(&["Anything?"]), "")
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);

    worker.shutdown().await.unwrap();
    server.stop().await;
    common::cleanup(&prefix).await;
}
