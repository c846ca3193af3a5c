//! An attempt's output: `GET /api/runs/{uid}/jobs/{job}/logs` answers the plain text of the
//! job's last attempt (or `?attempt=N`); with `?follow=true` it streams the output as it
//! arrives and ends when the attempt ends.

use crate::auth::{Caller, Scope};
use crate::error::{ApiError, ErrorBody};
use crate::App;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use chainr_runtime::log::LogKey;
use serde::Deserialize;
use utoipa::IntoParams;

/// How much is read from the store at a time.
const CHUNK: usize = 256 << 10;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LogParams {
    /// The attempt (1 is the first); default: the last one.
    pub attempt: Option<u32>,
    /// Stream the output while the attempt runs; the answer ends when it ends.
    #[serde(default)]
    pub follow: bool,
}

/// An attempt's output (stdout and stderr, interleaved), as plain text.
#[utoipa::path(get, path = "/api/runs/{uid}/jobs/{job}/logs", tag = "logs",
    params(("uid" = String, Path, description = "The run's uid"),
           ("job" = String, Path, description = "The job's name"), LogParams),
    responses(
        (status = 200, description = "The output", body = String, content_type = "text/plain"),
        (status = 404, description = "No such run, job or attempt", body = ErrorBody),
    ))]
pub async fn logs(
    State(app): State<App>,
    caller: Caller,
    Path((uid, job)): Path<(String, String)>,
    params: Result<Query<LogParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    caller.require(Scope::Read, "reading logs")?;
    let Query(params) = params.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let stored = app.run(&uid).await?;
    let record = stored
        .run
        .jobs
        .iter()
        .find(|j| j.name == job)
        .ok_or_else(|| ApiError::not_found(format!("run {uid} has no job named `{job}`")))?;
    let attempt = match params.attempt {
        Some(n) => record
            .attempts
            .iter()
            .find(|a| a.attempt == n)
            .ok_or_else(|| {
                ApiError::not_found(format!(
                    "job `{job}` has no attempt {n} (it has {})",
                    record.attempts.len()
                ))
            })?,
        None => record.attempts.last().ok_or_else(|| {
            ApiError::not_found(format!(
                "job `{job}` has not started ({})",
                record.status.word()
            ))
        })?,
    };
    let key = LogKey {
        run: uid,
        job,
        attempt: attempt.attempt,
    };
    let headers = [
        (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
        (header::CACHE_CONTROL, "no-store"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    ];
    if !params.follow || attempt.finished_at.is_some() {
        // The whole log as it is now.
        let mut text = Vec::new();
        let mut offset = 0;
        loop {
            let chunk = app
                .logs
                .read(&key, offset, CHUNK)
                .await
                .map_err(|e| ApiError::new(axum::http::StatusCode::SERVICE_UNAVAILABLE, e.0))?;
            let done = chunk.bytes.is_empty();
            text.extend_from_slice(&chunk.bytes);
            offset = chunk.next;
            if done || chunk.complete {
                break;
            }
        }
        return Ok((headers, text).into_response());
    }
    let stream = follow(app, key);
    Ok((headers, Body::from_stream(stream)).into_response())
}

/// The output from the start, then as it arrives, until the attempt's log is complete, the
/// attempt is over without one (its worker died; it will run again as a new start), or the
/// server drains.
fn follow(
    app: App,
    key: LogKey,
) -> impl futures_util::Stream<Item = Result<Vec<u8>, std::io::Error>> {
    futures_util::stream::unfold(
        (app, key, 0u64, false),
        |(app, key, offset, done)| async move {
            if done {
                return None;
            }
            let mut draining = app.draining.clone();
            let mut quiet = 0u32;
            loop {
                if *draining.borrow() {
                    return None;
                }
                let chunk = match app.logs.read(&key, offset, CHUNK).await {
                    Ok(c) => c,
                    Err(e) => {
                        return Some((Err(std::io::Error::other(e.0)), (app, key, offset, true)))
                    }
                };
                if !chunk.bytes.is_empty() || chunk.complete {
                    let done = chunk.complete;
                    return Some((Ok(chunk.bytes), (app, key, chunk.next, done)));
                }
                // Nothing new: is the attempt still going? Asked now and then, not at every poll.
                quiet += 1;
                if quiet.is_multiple_of(8) && !attempt_running(&app, &key).await {
                    // One last read: what arrived in between.
                    let last = app.logs.read(&key, offset, CHUNK).await.ok()?;
                    return Some((Ok(last.bytes), (app, key, last.next, true)));
                }
                tokio::select! {
                    _ = tokio::time::sleep(app.poll) => {}
                    _ = draining.changed() => {}
                }
            }
        },
    )
}

async fn attempt_running(app: &App, key: &LogKey) -> bool {
    let stored = match app.store.get(&key.run).await {
        Ok(Some(stored)) => stored,
        // The run is gone (retention).
        Ok(None) => return false,
        // A store that does not answer: keep following, it may come back.
        Err(_) => return true,
    };
    stored
        .run
        .jobs
        .iter()
        .find(|j| j.name == key.job)
        .and_then(|j| j.attempts.iter().find(|a| a.attempt == key.attempt))
        .is_some_and(|a| a.finished_at.is_none())
}
