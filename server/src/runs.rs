//! Runs: submit (`POST /api/runs`), list (`GET /api/runs`), read (the Run document and its
//! pipeline), cancel and retry; compile
//! without running (`POST /api/check`); the resource list (`GET /api`).

use crate::auth::{Caller, Scope};
use crate::diagnostics::{self, Diagnostics, SourceKind};
use crate::error::{ApiError, ErrorBody};
use crate::App;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chainr_compiler::Params;
use chainr_runtime::record::{Run, Status};
use chainr_runtime::store::{Cursor, ListQuery, NewRun};
use serde::{Deserialize, Serialize};
use std::time::SystemTime;
use utoipa::{IntoParams, ToSchema};

/// A page of runs, newest first (the original chainr's `RunList`, with a cursor).
#[derive(Debug, Serialize, ToSchema)]
pub struct RunList {
    /// Always `RunList`.
    #[schema(example = "RunList")]
    pub kind: &'static str,
    #[schema(value_type = Vec<crate::openapi::RunSchema>)]
    pub items: Vec<Run>,
    /// The URL of the next page, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// Which runs to list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// At most this many (1 to 1000; default 50).
    pub limit: Option<usize>,
    /// The cursor of the page to read (from `next`).
    pub after: Option<String>,
    /// Only runs with this status (`PENDING`, `RUNNING`, `SUCCESSFUL`, `FAILED`, `ERRORED`,
    /// `CANCELLED`).
    pub status: Option<String>,
    /// Only runs of the pipeline with this name.
    pub pipeline: Option<String>,
}

const DEFAULT_PAGE: usize = 50;
const MAX_PAGE: usize = 1000;

/// Lists runs, newest first.
#[utoipa::path(get, path = "/api/runs", tag = "runs", params(ListParams),
    responses(
        (status = 200, description = "A page of runs, newest first", body = RunList),
        (status = 400, description = "A bad filter or cursor", body = ErrorBody),
        (status = 401, description = "No or unknown token", body = ErrorBody),
    ))]
pub async fn list(
    State(app): State<App>,
    caller: Caller,
    params: Result<Query<ListParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    caller.require(Scope::Read, "listing runs")?;
    let Query(params) = params.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let limit = params.limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::bad_request(format!(
            "limit must be between 1 and {MAX_PAGE}, got {limit}"
        )));
    }
    let after = match &params.after {
        Some(a) => Some(a.parse::<Cursor>().map_err(|_| {
            ApiError::bad_request(format!("`{a}` is not a cursor from a `next` link"))
        })?),
        None => None,
    };
    let status = params.status.as_deref().map(parse_status).transpose()?;
    let query = ListQuery {
        limit,
        after,
        status,
        pipeline: params.pipeline.clone(),
    };
    let page = app.store.list(&query).await?;
    let next = page.next.map(|c| {
        let mut q = form_query(&[("limit", limit.to_string()), ("after", c.to_string())]);
        if let Some(s) = &params.status {
            q.push_str(&form_query(&[("status", s.clone())]).replacen('?', "&", 1));
        }
        if let Some(p) = &params.pipeline {
            q.push_str(&form_query(&[("pipeline", p.clone())]).replacen('?', "&", 1));
        }
        format!("/api/runs{q}")
    });
    let body = RunList {
        kind: "RunList",
        items: page.runs,
        next: next.clone(),
    };
    let mut response = Json(body).into_response();
    if let Some(next) = next {
        if let Ok(v) = format!("<{next}>; rel=\"next\"").parse() {
            response.headers_mut().insert(header::LINK, v);
        }
    }
    Ok(response)
}

fn form_query(pairs: &[(&str, String)]) -> String {
    format!(
        "?{}",
        serde_urlencoded::to_string(pairs).unwrap_or_default()
    )
}

fn parse_status(word: &str) -> Result<Status, ApiError> {
    Status::from_word(word).ok_or_else(|| {
        ApiError::bad_request(format!(
            "unknown status `{word}`; expected one of {}",
            Status::ALL.map(Status::word).join(", ")
        ))
    })
}

/// Reads one run.
#[utoipa::path(get, path = "/api/runs/{uid}", tag = "runs",
    params(("uid" = String, Path, description = "The run's uid")),
    responses(
        (status = 200, description = "The Run document", body = crate::openapi::RunSchema,
            headers(("Chainr-Last-Event-Id" = u64, description = "The number of the last event \
                the document holds: the run's events after it continue it (`?after=`)"))),
        (status = 404, description = "No run has this uid", body = ErrorBody),
    ))]
pub async fn get(
    State(app): State<App>,
    caller: Caller,
    Path(uid): Path<String>,
) -> Result<Response, ApiError> {
    caller.require(Scope::Read, "reading a run")?;
    let stored = app.run(&uid).await?;
    Ok((
        [(LAST_EVENT_HEADER, stored.last_seq.to_string())],
        Json(stored.run),
    )
        .into_response())
}

/// The header of `GET /api/runs/{uid}` that says which event the document is the fold up to,
/// so that a client continues it from the run's events without a gap or a repeat.
pub const LAST_EVENT_HEADER: &str = "chainr-last-event-id";

/// Reads the pipeline a run runs: the IR it was submitted as or compiled to, with every job's
/// definition (image, command, conditions, retries, ...).
#[utoipa::path(get, path = "/api/runs/{uid}/pipeline", tag = "runs",
    params(("uid" = String, Path, description = "The run's uid")),
    responses(
        (status = 200, description = "The Pipeline IR", body = crate::openapi::PipelineSchema),
        (status = 404, description = "No run has this uid", body = ErrorBody),
    ))]
pub async fn pipeline(
    State(app): State<App>,
    caller: Caller,
    Path(uid): Path<String>,
) -> Result<Json<chainr_compiler::ir::Pipeline>, ApiError> {
    caller.require(Scope::Read, "reading a run's pipeline")?;
    let stored = app.run(&uid).await?;
    Ok(Json(stored.pipeline))
}

/// Cancels a run: its running jobs are stopped (whole process groups, or their Kubernetes Jobs),
/// `finally` jobs still run, and the run ends `CANCELLED`. Asking again stops `finally` jobs
/// too. Answers the Run document as it is when the request is recorded.
#[utoipa::path(post, path = "/api/runs/{uid}/cancel", tag = "runs",
    params(("uid" = String, Path, description = "The run's uid")),
    responses(
        (status = 202, description = "The cancel is recorded; the run's worker acts on it", body = crate::openapi::RunSchema),
        (status = 403, description = "The token may only read", body = ErrorBody),
        (status = 404, description = "No run has this uid", body = ErrorBody),
        (status = 409, description = "The run has finished", body = ErrorBody),
    ))]
pub async fn cancel(
    State(app): State<App>,
    caller: Caller,
    Path(uid): Path<String>,
) -> Result<Response, ApiError> {
    caller.require(Scope::Write, "cancelling a run")?;
    let requests = app.store.cancel(&uid).await?;
    tracing::info!(run = %uid, by = ?caller.name, requests, "cancel requested");
    let stored = app.run(&uid).await?;
    Ok((StatusCode::ACCEPTED, Json(stored.run)).into_response())
}

/// Retries a finished run: the same run continues. Jobs that did not succeed run again (their
/// attempt numbers go on), with the jobs whose conditions depend on them and the `finally`
/// jobs; succeeded jobs are kept.
#[utoipa::path(post, path = "/api/runs/{uid}/retry", tag = "runs",
    params(("uid" = String, Path, description = "The run's uid")),
    responses(
        (status = 202, description = "Queued again", body = crate::openapi::RunSchema),
        (status = 403, description = "The token may only read", body = ErrorBody),
        (status = 404, description = "No run has this uid", body = ErrorBody),
        (status = 409, description = "The run is still going", body = ErrorBody),
    ))]
pub async fn retry(
    State(app): State<App>,
    caller: Caller,
    Path(uid): Path<String>,
) -> Result<Response, ApiError> {
    caller.require(Scope::Write, "retrying a run")?;
    app.store.retry(&uid).await?;
    tracing::info!(run = %uid, by = ?caller.name, "retry requested");
    let stored = app.run(&uid).await?;
    Ok((StatusCode::ACCEPTED, Json(stored.run)).into_response())
}

/// `?param=NAME=VALUE`, repeatable: values of a `.chainr` pipeline's params. (It documents
/// the query; `params_of` reads it, as repeated keys need.)
#[allow(dead_code)]
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SubmitParams {
    /// `NAME=VALUE`; repeatable. For `.chainr` source only.
    #[serde(default)]
    #[param(value_type = Option<Vec<String>>)]
    pub param: Vec<String>,
}

/// What a client sent: its kind, its text, its params.
struct Submission {
    kind: SourceKind,
    text: String,
    params: Params,
}

/// Reads a submission's body by its content type: the IR as `application/json`, source as
/// `text/x-chainr`, and `application/x-www-form-urlencoded`, which is what `curl -d @file`
/// sends (the file's text as it is, so JSON or source; or a form with a `pipeline` or `source`
/// field).
fn submission(
    headers: &HeaderMap,
    query: Option<&str>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Submission, ApiError> {
    let body = body.map_err(|e| {
        let status = e.status();
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                status,
                "the request body is larger than the server accepts (--max-body)",
            )
        } else {
            ApiError::new(
                status,
                format!("the request body could not be read: {}", e.body_text()),
            )
        }
    })?;
    let params = params_of(query)?;
    let media = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        });
    let text = |bytes: &[u8]| {
        String::from_utf8(bytes.to_vec())
            .map_err(|_| ApiError::bad_request("the request body is not UTF-8 text"))
    };
    let kind_of_text = |t: &str| {
        if t.trim_start().starts_with('{') {
            SourceKind::Json
        } else {
            SourceKind::Chainr
        }
    };
    let (kind, text) = match media.as_deref() {
        Some("application/json") => (SourceKind::Json, text(&body)?),
        Some("text/x-chainr") => (SourceKind::Chainr, text(&body)?),
        Some("application/x-www-form-urlencoded") => {
            let t = text(&body)?;
            match form_field(&t) {
                Some((field, value)) => (field, value),
                None => (kind_of_text(&t), t),
            }
        }
        Some(other) => {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!(
                "content type `{other}` is not accepted; send application/json (the Pipeline IR), \
                     text/x-chainr (source) or application/x-www-form-urlencoded"
            ),
            ))
        }
        None => return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "no content type; send application/json (the Pipeline IR) or text/x-chainr (source)",
        )),
    };
    if kind == SourceKind::Json && !params.0.is_empty() {
        return Err(ApiError::bad_request(
            "params apply to .chainr source only; the IR has its values already",
        ));
    }
    Ok(Submission { kind, text, params })
}

/// A real form (`pipeline=...` or `source=...`), as opposed to a file's text sent as is.
fn form_field(text: &str) -> Option<(SourceKind, String)> {
    let t = text.trim_start();
    if t.starts_with('{') || !(t.starts_with("pipeline=") || t.starts_with("source=")) {
        return None;
    }
    let fields: Vec<(String, String)> = serde_urlencoded::from_str(text).ok()?;
    fields.into_iter().find_map(|(k, v)| match k.as_str() {
        "pipeline" => Some((SourceKind::Json, v)),
        "source" => Some((SourceKind::Chainr, v)),
        _ => None,
    })
}

fn params_of(query: Option<&str>) -> Result<Params, ApiError> {
    let mut params = Vec::new();
    for (k, v) in serde_urlencoded::from_str::<Vec<(String, String)>>(query.unwrap_or(""))
        .map_err(|e| ApiError::bad_request(format!("bad query: {e}")))?
    {
        if k != "param" {
            continue;
        }
        match v.split_once('=') {
            Some((name, value)) if !name.is_empty() => {
                params.push((name.to_string(), value.to_string()))
            }
            _ => {
                return Err(ApiError::bad_request(format!(
                    "param must be NAME=VALUE, got `{v}`"
                )))
            }
        }
    }
    Ok(Params(params))
}

fn invalid(checked: diagnostics::Checked) -> ApiError {
    let n = checked.errors;
    let first = checked
        .diagnostics
        .diagnostics
        .iter()
        .find(|d| d.severity == "error")
        .map(|d| format!(": {} {}", d.code, d.message))
        .unwrap_or_default();
    let mut e = ApiError::bad_request(format!(
        "the pipeline has {n} error{}{first}",
        if n == 1 { "" } else { "s" }
    ));
    e.diagnostics = Some(checked.diagnostics);
    e
}

/// Submits a run: the original chainr's Pipeline JSON unchanged, its superset, or `.chainr`
/// source. Answers 202 with the Run document once it is stored; nothing is stored otherwise.
#[utoipa::path(post, path = "/api/runs", tag = "runs", params(SubmitParams),
    request_body(description = "The pipeline: IR JSON or .chainr source", content(
        (crate::openapi::PipelineSchema = "application/json"),
        (String = "text/x-chainr"),
        (String = "application/x-www-form-urlencoded"),
    )),
    responses(
        (status = 202, description = "Stored and queued", body = crate::openapi::RunSchema,
            headers(("Location" = String, description = "The run's URL"))),
        (status = 400, description = "The pipeline is invalid (with diagnostics)", body = ErrorBody),
        (status = 401, description = "No or unknown token", body = ErrorBody),
        (status = 403, description = "The token may only read", body = ErrorBody),
        (status = 413, description = "The body is over --max-body", body = ErrorBody),
        (status = 415, description = "Not JSON, .chainr source or a form", body = ErrorBody),
    ))]
pub async fn submit(
    State(app): State<App>,
    caller: Caller,
    headers: HeaderMap,
    uri: axum::http::Uri,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    caller.require(Scope::Write, "submitting a run")?;
    let s = submission(&headers, uri.query(), body)?;
    let checked = diagnostics::check(s.kind, &s.text, &s.params, app.media.as_deref());
    let Some(pipeline) = checked.pipeline.clone() else {
        return Err(invalid(checked));
    };
    let id = chainr_runtime::new_run_id();
    let new = NewRun {
        id: id.clone(),
        pipeline,
        submitter: caller.name.clone(),
        created_at: SystemTime::now(),
        source: Some(s.kind.word().to_string()),
    };
    let doc = new.document();
    app.store.create(new).await?;
    crate::metrics::submitted();
    tracing::info!(run = %id, submitter = ?caller.name, "run submitted");
    let location = doc.metadata.self_link.clone();
    let mut response = (StatusCode::ACCEPTED, Json(doc)).into_response();
    if let Ok(v) = location.parse() {
        response.headers_mut().insert(header::LOCATION, v);
    }
    Ok(response)
}

/// The result of `POST /api/check`.
#[derive(Debug, Serialize, ToSchema)]
pub struct CheckResult {
    /// Always `Check`.
    #[schema(example = "Check")]
    pub kind: &'static str,
    /// Whether the pipeline has no error (warnings allowed).
    pub ok: bool,
    #[serde(flatten)]
    pub diagnostics: Diagnostics,
    /// The compiled IR, when there is no error.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<crate::openapi::PipelineSchema>)]
    pub pipeline: Option<chainr_compiler::ir::Pipeline>,
}

/// Compiles a pipeline without running it: every diagnostic, and the IR when it is valid.
#[utoipa::path(post, path = "/api/check", tag = "runs", params(SubmitParams),
    request_body(description = "The pipeline: IR JSON or .chainr source", content(
        (crate::openapi::PipelineSchema = "application/json"),
        (String = "text/x-chainr"),
    )),
    responses(
        (status = 200, description = "The diagnostics (ok is false when there are errors)", body = CheckResult),
        (status = 401, description = "No or unknown token", body = ErrorBody),
        (status = 413, description = "The body is over --max-body", body = ErrorBody),
        (status = 415, description = "Not JSON, .chainr source or a form", body = ErrorBody),
    ))]
pub async fn check(
    State(app): State<App>,
    caller: Caller,
    headers: HeaderMap,
    uri: axum::http::Uri,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<CheckResult>, ApiError> {
    caller.require(Scope::Read, "checking a pipeline")?;
    let s = submission(&headers, uri.query(), body)?;
    let checked = diagnostics::check(s.kind, &s.text, &s.params, app.media.as_deref());
    Ok(Json(CheckResult {
        kind: "Check",
        ok: checked.errors == 0,
        diagnostics: checked.diagnostics,
        pipeline: checked.pipeline,
    }))
}

/// One resource of the API.
#[derive(Debug, Serialize, ToSchema)]
pub struct Resource {
    pub path: String,
    pub methods: Vec<String>,
    /// What it is for.
    pub summary: String,
}

/// The resources of the API (`GET /api`).
#[derive(Debug, Serialize, ToSchema)]
pub struct ResourceList {
    /// Always `ResourceList`.
    pub kind: &'static str,
    pub resources: Vec<Resource>,
}

/// Lists the API's resources: the paths of the OpenAPI document, with their methods.
#[utoipa::path(get, path = "/api", tag = "runs",
    responses((status = 200, description = "The resources", body = ResourceList)))]
pub async fn resources() -> Json<ResourceList> {
    Json(ResourceList {
        kind: "ResourceList",
        resources: crate::openapi::resources(),
    })
}
