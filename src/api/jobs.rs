//! A job's routes: status JSON, downloads of the filled and review workbooks (named after the
//! upload, typed by format), `POST /jobs/{id}/apply` (a reviewed review workbook applied to
//! the original) and cancel. Does not queue jobs.

use super::*;

/// `rfpq status --json`'s object.
pub(super) async fn job_status(
    State(s): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    check_id(&id)?;
    Ok(Json(s.queue.status(&id).await?.to_json()))
}

pub(super) async fn job_result(
    State(s): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    download(&s, &id, false).await
}

pub(super) async fn job_review(
    State(s): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    download(&s, &id, true).await
}

/// The submitted file's name without its extension, for the names of the files a job returns.
pub(super) fn file_stem(file_name: &str) -> String {
    std::path::Path::new(file_name)
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "workbook".into())
}

/// The content type of a workbook written back in `format` (macros keep their .xlsm type).
pub(super) fn workbook_content_type(format: SourceFormat) -> &'static str {
    if format == SourceFormat::Xlsm {
        XLSM
    } else {
        XLSX
    }
}

/// JSON with every non-ASCII character escaped, fit for a header value.
pub(super) fn ascii_json(v: &Value) -> String {
    let mut out = String::new();
    for ch in v.to_string().chars() {
        if ch.is_ascii() && !ch.is_ascii_control() {
            out.push(ch);
        } else {
            let mut units = [0u16; 2];
            for u in ch.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{u:04x}"));
            }
        }
    }
    out
}

/// `POST /jobs/{id}/apply` (multipart field `file`: the reviewed review workbook; `?strict=true`
/// refuses the whole apply when any row is refused): the job's original with the review
/// applied, losslessly. What was applied is in the `x-rfpq-apply-report` header (JSON).
pub(super) async fn job_apply(
    State(s): State<ApiState>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Response, ApiError> {
    check_id(&id)?;
    let strict = query.as_deref().is_some_and(|q| {
        q.split('&')
            .any(|kv| matches!(kv, "strict" | "strict=true" | "strict=1"))
    });
    let st = s.queue.status(&id).await?;
    if !st.state.is_final() {
        return Err(ApiError {
            state: Some(st.state),
            ..ApiError::new(StatusCode::CONFLICT, "job is running")
        });
    }
    let mp = multipart.map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!(
                "expected a multipart/form-data upload with a 'file' field (the review workbook): {}",
                e.body_text()
            ),
        )
    })?;
    let up = read_upload(mp, s.max_upload_bytes).await?;
    let Some((_, review)) = up.file else {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "missing the multipart field 'file' (the review workbook)",
        ));
    };
    let original = s.queue.file(&id).await?;
    let applied = tokio::task::spawn_blocking(move || {
        crate::pipeline::apply::apply(&original, &review, strict)
    })
    .await
    .map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("applying crashed: {e}"),
        )
    })?;
    use crate::pipeline::apply::ApplyError;
    let applied = applied.map_err(|e| {
        let status = match &e {
            ApplyError::Review(_) | ApplyError::NoMatch | ApplyError::Refused(_) => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, e.to_string())
    })?;
    let mut report = applied.report;
    report.refused.truncate(20);
    report.reviewed.clear();
    let ext = applied.format.output_extension();
    let stem = file_stem(&st.file_name);
    let content_type = workbook_content_type(applied.format);
    let report = HeaderValue::from_str(&ascii_json(&json!(report)))
        .unwrap_or_else(|_| HeaderValue::from_static("{}"));
    Ok((
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (
                header::CONTENT_DISPOSITION,
                content_disposition(&format!("{stem}.final.{ext}")),
            ),
            (
                header::HeaderName::from_static("x-rfpq-apply-report"),
                report,
            ),
        ],
        applied.workbook,
    )
        .into_response())
}

/// `filename` for an ASCII-only quoted form; `filename*` (RFC 5987) keeps the real name.
pub(super) fn content_disposition(file: &str) -> HeaderValue {
    let ascii: String = file
        .chars()
        .map(|c| {
            if (c.is_ascii_graphic() && c != '"' && c != '\\') || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let encoded: String = file
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    HeaderValue::from_str(&format!(
        "attachment; filename=\"{ascii}\"; filename*=UTF-8''{encoded}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("attachment"))
}

pub(super) async fn download(s: &ApiState, id: &str, review: bool) -> Result<Response, ApiError> {
    check_id(id)?;
    let st = s.queue.status(id).await?;
    if !st.state.is_final() {
        return Err(ApiError {
            state: Some(st.state),
            ..ApiError::new(StatusCode::CONFLICT, "job is running")
        });
    }
    let Some(bytes) = s.queue.result(id, review).await? else {
        let why = st.reason.as_deref().unwrap_or("no reason recorded");
        return Err(ApiError {
            state: Some(st.state),
            ..ApiError::new(
                StatusCode::CONFLICT,
                format!("job ended {} without a result: {why}", st.state.as_str()),
            )
        });
    };
    let format = st.format();
    let stem = file_stem(&st.file_name);
    let (file, content_type) = if review {
        (format!("{stem}.review.xlsx"), XLSX)
    } else {
        let ext = format.output_extension();
        (
            format!("{stem}.filled.{ext}"),
            workbook_content_type(format),
        )
    };
    Ok((
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CONTENT_DISPOSITION, content_disposition(&file)),
        ],
        bytes,
    )
        .into_response())
}

pub(super) async fn job_cancel(
    State(s): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    check_id(&id)?;
    let outcome = s.queue.cancel(&id).await?;
    let (name, state) = match outcome {
        CancelOutcome::Cancelled => ("cancelled", JobPhase::Cancelled),
        CancelOutcome::Requested => (
            "requested",
            s.queue
                .status(&id)
                .await
                .map(|st| st.state)
                .unwrap_or(JobPhase::Running),
        ),
        CancelOutcome::AlreadyFinal(p) => ("already_final", p),
    };
    tracing::info!(job = %id, outcome = name, "cancel over HTTP");
    Ok(Json(json!({"outcome": name, "state": state.as_str()})))
}
