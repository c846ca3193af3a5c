//! Live changes as server-sent events. `GET /api/runs/{uid}/events` streams one run's events
//! from the start (or after `Last-Event-ID` / `?after=N`), each with `id:` its number in the run,
//! so that a client that reconnects misses nothing and sees nothing twice.

use crate::auth::{Caller, Scope};
use crate::error::{ApiError, ErrorBody};
use crate::App;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use chainr_compiler::ir;
use chainr_runtime::event::RunEvent;
use serde::Deserialize;
use std::convert::Infallible;
use std::time::Duration;
use utoipa::IntoParams;

/// How many stored events are read at a time.
const BATCH: usize = 500;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StreamParams {
    /// Start after this event (as `Last-Event-ID` does; the header wins).
    pub after: Option<u64>,
}

/// Where a stream starts: after `Last-Event-ID`, else after `?after=`, else from the start.
fn start(headers: &HeaderMap, after: Option<u64>) -> Result<u64, ApiError> {
    match headers.get("last-event-id") {
        Some(v) => v
            .to_str()
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .ok_or_else(|| ApiError::bad_request("Last-Event-ID must be an event number")),
        None => Ok(after.unwrap_or(0)),
    }
}

/// An event as a client reads it: the run's event with the run's uid and the job's name.
pub fn event_json(run: &str, pipeline: &ir::Pipeline, event: &RunEvent) -> serde_json::Value {
    let mut v = serde_json::to_value(event).unwrap_or_default();
    if let Some(obj) = v.as_object_mut() {
        obj.insert("run".into(), run.into());
        if let Some(job) = obj.get("job").and_then(|j| j.as_u64()) {
            if let Some((name, _)) = pipeline.jobs.get_index(job as usize) {
                obj.insert("jobName".into(), name.clone().into());
            }
        }
    }
    v
}

/// One run's events as they happen (`text/event-stream`). Each event's `event:` is its type
/// (`runStarted`, `attemptStarted`, `attemptEnded`, `jobDecided`, `runFinished`, ...) and its
/// data the event as JSON with `run` and `jobName`.
#[utoipa::path(get, path = "/api/runs/{uid}/events", tag = "events",
    params(("uid" = String, Path, description = "The run's uid"), StreamParams,
           ("Last-Event-ID" = Option<u64>, Header, description = "The last event seen")),
    responses(
        (status = 200, description = "Server-sent events", content_type = "text/event-stream", body = String),
        (status = 404, description = "No run has this uid", body = ErrorBody),
    ))]
pub async fn run_events(
    State(app): State<App>,
    caller: Caller,
    Path(uid): Path<String>,
    headers: HeaderMap,
    params: Result<Query<StreamParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Sse<impl futures_util::Stream<Item = Result<Event, Infallible>>>, ApiError> {
    caller.require(Scope::Read, "reading events")?;
    let Query(params) = params.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let after = start(&headers, params.after)?;
    let stored = app
        .store
        .get(&uid)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no run has uid {uid}")))?;
    let pipeline = stored.pipeline;
    let state = (
        app,
        uid,
        pipeline,
        after,
        Vec::<RunEvent>::new().into_iter(),
    );
    let stream = futures_util::stream::unfold(
        state,
        |(app, uid, pipeline, after, mut queued)| async move {
            let mut draining = app.draining.clone();
            loop {
                if let Some(e) = queued.next() {
                    let event = Event::default()
                        .id(e.seq.to_string())
                        .event(event_type(&e))
                        .json_data(event_json(&uid, &pipeline, &e))
                        .unwrap_or_default();
                    let seq = e.seq;
                    return Some((Ok(event), (app, uid, pipeline, seq, queued)));
                }
                if *draining.borrow() {
                    return None;
                }
                match app.store.events(&uid, after, BATCH).await {
                    Ok(batch) if !batch.is_empty() => {
                        queued = batch.into_iter();
                        continue;
                    }
                    // Nothing new, or the store is away for a moment: look again soon.
                    _ => {}
                }
                tokio::select! {
                    _ = tokio::time::sleep(app.poll) => {}
                    _ = draining.changed() => {}
                }
            }
        },
    );
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

/// The `type` of an event, as its SSE `event:` name.
fn event_type(e: &RunEvent) -> String {
    serde_json::to_value(&e.kind)
        .ok()
        .and_then(|v| v.get("type").and_then(|t| t.as_str()).map(str::to_string))
        .unwrap_or_else(|| "event".to_string())
}
