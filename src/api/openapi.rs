//! The OpenAPI 3.0 description of the HTTP API (`GET /openapi.json`). Describes; serves nothing
//! else.

use super::*;

pub(super) async fn openapi() -> Json<Value> {
    Json(openapi_document())
}

/// The hand-written OpenAPI 3.0 description served at `/openapi.json`.
pub fn openapi_document() -> Value {
    let error = |description: &str| {
        json!({
            "description": description,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
        })
    };
    let id_param = json!([{
        "name": "id", "in": "path", "required": true,
        "description": "Job id (as returned by POST /jobs).",
        "schema": {"type": "string"}
    }]);
    let workbook = |what: &str| {
        json!({
            "description": what,
            "headers": {"Content-Disposition": {
                "description": "attachment; filename=\"<stem>.filled.xlsx\" (.xlsm for a macro-enabled workbook; <stem>.review.xlsx for the review)",
                "schema": {"type": "string"}
            }},
            "content": {
                XLSX: {"schema": {"type": "string", "format": "binary"}},
                XLSM: {"schema": {"type": "string", "format": "binary"}}
            }
        })
    };
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "rfpq HTTP API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Queue security questionnaires (.xlsx, .xlsm, .xls, .ods) for rfpq workers, follow them and download the filled and review workbooks."
        },
        "security": [{"bearerAuth": []}],
        "paths": {
            "/jobs": {"post": {
                "summary": "Validate a workbook and queue it (like `rfpq submit`)",
                "requestBody": {"required": true, "content": {"multipart/form-data": {"schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {"type": "string", "format": "binary", "description": "The workbook; its file name is kept for the result's name."},
                        "kb": {"type": "string", "description": "A KB name published with `rfpq kb publish` (default: the server's --kb)."},
                        "batch_size": {"type": "integer", "minimum": 1, "maximum": MAX_BATCH_SIZE, "description": "Rows per batch job."}
                    }
                }}}},
                "responses": {
                    "201": {"description": "Queued", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Submitted"}}}},
                    "400": error("Not a multipart upload, no 'file' field, or a bad field"),
                    "401": error("Missing or invalid bearer token (nothing is read or queued)"),
                    "413": error("The upload is over the size limit"),
                    "422": error("The workbook is refused (not a workbook, damaged, encrypted, no questions) or the KB is unknown; nothing is queued"),
                    "503": error("Redis is unreachable")
                }
            }},
            "/jobs/{id}": {"get": {
                "summary": "A job's status (as `rfpq status --json`)",
                "parameters": id_param,
                "responses": {
                    "200": {"description": "Status", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/JobStatus"}}}},
                    "401": error("Missing or invalid bearer token"),
                    "404": error("Unknown job (or older than the 7-day retention)"),
                    "503": error("Redis is unreachable")
                }
            }},
            "/jobs/{id}/result": {"get": {
                "summary": "The filled workbook",
                "parameters": id_param,
                "responses": {
                    "200": workbook("The filled workbook"),
                    "401": error("Missing or invalid bearer token"),
                    "404": error("Unknown job"),
                    "409": error("The job has not finished (`job is running`), or it ended without a result")
                }
            }},
            "/jobs/{id}/review": {"get": {
                "summary": "The review workbook (confidence, sources, rows that need review)",
                "parameters": id_param,
                "responses": {
                    "200": workbook("The review workbook (.xlsx)"),
                    "401": error("Missing or invalid bearer token"),
                    "404": error("Unknown job"),
                    "409": error("The job has not finished (`job is running`), or it ended without a result")
                }
            }},
            "/jobs/{id}/apply": {"post": {
                "summary": "The job's original with a reviewed review workbook applied (approved and edited answers, rfpq's written answers nobody rejected), verified lossless; ?strict=true refuses it all when any row is refused",
                "parameters": id_param,
                "requestBody": {"required": true, "content": {"multipart/form-data": {"schema": {
                    "type": "object", "required": ["file"],
                    "properties": {"file": {"type": "string", "format": "binary", "description": "The review workbook, as the reviewer left it"}}
                }}}},
                "responses": {
                    "200": workbook("The final workbook; the x-rfpq-apply-report header holds what was applied (JSON)"),
                    "401": error("Missing or invalid bearer token"),
                    "404": error("Unknown job"),
                    "409": error("The job has not finished"),
                    "422": error("Not a review workbook of this job, or (strict) a row was refused: the message names the rows and reasons")
                }
            }},
            "/jobs/{id}/cancel": {"post": {
                "summary": "Cancel a job (a queued job at once, a running one within a second; finished rows are kept)",
                "parameters": id_param,
                "responses": {
                    "200": {"description": "What the cancel did", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/CancelResult"}}}},
                    "401": error("Missing or invalid bearer token"),
                    "404": error("Unknown job")
                }
            }},
            "/healthz": {"get": {
                "summary": "Whether Redis answers",
                "security": [],
                "responses": {
                    "200": {"description": "Redis answers", "content": {"application/json": {"schema": {
                        "type": "object", "properties": {"redis": {"type": "string", "enum": ["ok"]}}
                    }}}},
                    "503": {"description": "Redis is down", "content": {"application/json": {"schema": {
                        "type": "object", "properties": {"redis": {"type": "string", "enum": ["down"]}, "error": {"type": "string"}}
                    }}}}
                }
            }},
            "/metrics": {"get": {
                "summary": "Prometheus metrics: rfpq_jobs{state}, rfpq_queue_depth{state}, rfpq_workers_live, rfpq_worker_slots, rfpq_worker_active_jobs and rfpq_redis_up (read from Redis at scrape time), the process's recorded rfpq_* series, and this server's rfpq_api_* counters",
                "description": "When Redis does not answer, the response is still 200: rfpq_redis_up is 0 and the series read from Redis are left out.",
                "responses": {
                    "200": {"description": "Prometheus text exposition format 0.0.4", "content": {"text/plain": {"schema": {"type": "string"}}}},
                    "401": error("Missing or invalid bearer token")
                }
            }},
            "/openapi.json": {"get": {
                "summary": "This document",
                "security": [],
                "responses": {"200": {"description": "OpenAPI 3.0 document", "content": {"application/json": {"schema": {"type": "object"}}}}}
            }}
        },
        "components": {
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": {"type": "object", "required": ["error"], "properties": {
                    "error": {"type": "string"},
                    "state": {"type": "string", "description": "The job's state, when it explains the error"}
                }},
                "Submitted": {"type": "object", "required": ["id", "status_url", "warnings"], "properties": {
                    "id": {"type": "string"},
                    "status_url": {"type": "string", "example": "/jobs/0190f3c2-…"},
                    "warnings": {"type": "array", "items": {"type": "string"}}
                }},
                "CancelResult": {"type": "object", "required": ["outcome", "state"], "properties": {
                    "outcome": {"type": "string", "enum": ["cancelled", "requested", "already_final"]},
                    "state": {"$ref": "#/components/schemas/JobState"}
                }},
                "JobState": {"type": "string", "enum": ["queued", "running", "completed", "completed_with_errors", "failed", "cancelled"]},
                "JobStatus": {"type": "object", "properties": {
                    "id": {"type": "string"},
                    "state": {"$ref": "#/components/schemas/JobState"},
                    "file_name": {"type": "string"},
                    "rows_total": {"type": "integer"},
                    "rows_done": {"type": "integer"},
                    "rows_failed": {"type": "integer"},
                    "needs_review": {"type": "integer"},
                    "reason": {"type": "string", "nullable": true},
                    "kb": {"type": "string", "nullable": true},
                    "kb_version": {"type": "string", "nullable": true},
                    "config_hash": {"type": "string", "nullable": true, "description": "Hash of the router configuration the job was planned with; with kb_version, what its answers depend on besides the workbook"},
                    "config_hashes": {"type": "object", "additionalProperties": {"type": "integer"}, "description": "Rows answered per router configuration hash (more than one: workers with different configurations)"},
                    "source_format": {"type": "string", "enum": ["xlsx", "xlsm", "xls", "ods"]},
                    "warnings": {"type": "array", "items": {"type": "string"}},
                    "created_ms": {"type": "integer"},
                    "finished_ms": {"type": "integer", "nullable": true},
                    "eta_s": {"type": "number", "nullable": true},
                    "last_heartbeat_ms": {"type": "integer", "nullable": true},
                    "cancel_requested": {"type": "boolean"},
                    "models": {"type": "object", "additionalProperties": {"type": "integer"}},
                    "report": {"type": "object", "description": "The pipeline's counts (questions, answered, library_matches, needs_review, abstained, llm_calls, tokens, duration_s …)"}
                }}
            }
        }
    })
}
