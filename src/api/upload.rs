//! `POST /jobs`: reads a multipart upload within its size limit (file name cleaned, form fields
//! bounded), picks its KB (a published name only, or the operator's `--kb`) and queues it
//! through `submit::check` + `submit::enqueue` like every producer. Does not serve job results.

use super::*;

/// The uploaded file's name without any directory part or control characters.
pub(super) fn upload_name(raw: Option<&str>) -> String {
    let base = raw
        .unwrap_or_default()
        .rsplit(['/', '\\'])
        .next()
        .unwrap_or_default();
    let clean: String = base.chars().filter(|c| !c.is_control()).take(200).collect();
    let clean = clean.trim();
    if clean.is_empty() || clean == "." || clean == ".." {
        "workbook.xlsx".into()
    } else {
        clean.to_string()
    }
}

/// What a multipart upload carried.
#[derive(Default)]
pub(super) struct Upload {
    pub(super) file: Option<(String, Vec<u8>)>,
    pub(super) kb: Option<String>,
    pub(super) batch_size: Option<usize>,
}

pub(super) fn too_large(limit: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!(
            "the upload is larger than the limit of {} bytes ({:.1} MiB)",
            limit,
            limit as f64 / (1024.0 * 1024.0)
        ),
    )
}

pub(super) fn multipart_error(
    e: axum::extract::multipart::MultipartError,
    limit: usize,
) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        too_large(limit)
    } else {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("bad multipart body: {}", e.body_text()),
        )
    }
}

/// Reads a field, refusing it past `limit` bytes without reading the rest.
pub(super) async fn read_field(
    field: &mut Field<'_>,
    limit: usize,
    upload_limit: usize,
) -> Result<Option<Vec<u8>>, ApiError> {
    let mut buf = Vec::new();
    while let Some(chunk) = field
        .chunk()
        .await
        .map_err(|e| multipart_error(e, upload_limit))?
    {
        if buf.len() + chunk.len() > limit {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(Some(buf))
}

pub(super) async fn read_upload(mut mp: Multipart, limit: usize) -> Result<Upload, ApiError> {
    let mut up = Upload::default();
    while let Some(mut field) = mp
        .next_field()
        .await
        .map_err(|e| multipart_error(e, limit))?
    {
        let name = field.name().unwrap_or_default().to_string();
        match name.as_str() {
            "file" => {
                if up.file.is_some() {
                    return Err(ApiError::new(
                        StatusCode::BAD_REQUEST,
                        "more than one 'file' field: upload one workbook per request",
                    ));
                }
                let file_name = upload_name(field.file_name());
                let bytes = read_field(&mut field, limit, limit)
                    .await?
                    .ok_or_else(|| too_large(limit))?;
                up.file = Some((file_name, bytes));
            }
            "kb" | "batch_size" => {
                let bytes = read_field(&mut field, MAX_TEXT_FIELD, limit)
                    .await?
                    .ok_or_else(|| {
                        ApiError::new(
                            StatusCode::BAD_REQUEST,
                            format!("field '{name}' is too long"),
                        )
                    })?;
                let text = String::from_utf8(bytes).map_err(|_| {
                    ApiError::new(
                        StatusCode::BAD_REQUEST,
                        format!("field '{name}' is not UTF-8"),
                    )
                })?;
                let text = text.trim();
                if name == "kb" {
                    up.kb = (!text.is_empty()).then(|| text.to_string());
                } else if !text.is_empty() {
                    let n = text
                        .parse::<usize>()
                        .ok()
                        .filter(|n| (1..=MAX_BATCH_SIZE).contains(n))
                        .ok_or_else(|| {
                            ApiError::new(
                                StatusCode::BAD_REQUEST,
                                format!(
                                    "batch_size must be a whole number from 1 to {MAX_BATCH_SIZE}"
                                ),
                            )
                        })?;
                    up.batch_size = Some(n);
                }
            }
            // Unknown fields are skipped (next_field discards their data).
            _ => {}
        }
    }
    Ok(up)
}

/// The KB an upload uses: a published name from the form (never a server path), else the
/// server's default (which may be a directory), else none.
pub(super) async fn upload_kb(
    s: &ApiState,
    asked: Option<&str>,
) -> Result<Option<KbRef>, ApiError> {
    let refused = |e: SubmitError| match e {
        SubmitError::Queue(q) => ApiError::from(q),
        other => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, other.to_string()),
    };
    let resolved = match (asked, &s.kb) {
        (Some(name), _) => submit::resolve_published(&s.queue, name).await,
        (None, Some(kb)) => submit::resolve_kb(&s.queue, kb).await,
        (None, None) => return Ok(None),
    };
    resolved.map(Some).map_err(refused)
}

pub(super) async fn create_job(
    State(s): State<ApiState>,
    headers: HeaderMap,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Response, ApiError> {
    let limit = s.max_upload_bytes;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit.saturating_add(MULTIPART_SLACK) as u64) {
        s.counters.too_large.fetch_add(1, Ordering::Relaxed);
        return Err(too_large(limit));
    }
    let mp = multipart.map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!(
                "expected a multipart/form-data upload with a 'file' field: {}",
                e.body_text()
            ),
        )
    })?;
    let up = match read_upload(mp, limit).await {
        Ok(up) => up,
        Err(e) => {
            if e.status == StatusCode::PAYLOAD_TOO_LARGE {
                s.counters.too_large.fetch_add(1, Ordering::Relaxed);
            }
            return Err(e);
        }
    };
    let Some((name, bytes)) = up.file else {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "missing the multipart field 'file' (the workbook)",
        ));
    };
    let refuse = |why: String| {
        s.counters.refused.fetch_add(1, Ordering::Relaxed);
        tracing::info!(file = %name, reason = %why, "upload refused");
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, why)
    };
    // The same checks and the same queueing as `rfpq submit`, on the uploaded bytes.
    let checked = submit::check(&name, &name, bytes)
        .await
        .map_err(|e| refuse(e.to_string()))?;
    let kb = upload_kb(&s, up.kb.as_deref()).await.inspect_err(|e| {
        if e.status == StatusCode::UNPROCESSABLE_ENTITY {
            s.counters.refused.fetch_add(1, Ordering::Relaxed);
        }
    })?;
    let opts = submit::SubmitOptions {
        batch_size: up.batch_size.unwrap_or(s.batch_size),
        write_drafts: None,
    };
    let submitted = submit::enqueue(&s.queue, &checked, kb.as_ref(), &opts)
        .await
        .map_err(|e| match e {
            SubmitError::Queue(q) => ApiError::from(q),
            other => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, other.to_string()),
        })?;
    let (id, q) = (submitted.id, &checked.questionnaire);
    s.counters.submitted.fetch_add(1, Ordering::Relaxed);
    tracing::info!(job = %id, file = %name, format = q.source_format.as_str(), "job queued over HTTP");
    let url = format!("/jobs/{id}");
    let mut resp = (
        StatusCode::CREATED,
        Json(json!({"id": id, "status_url": url, "warnings": q.warnings})),
    )
        .into_response();
    if let Ok(v) = HeaderValue::from_str(&url) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    Ok(resp)
}
