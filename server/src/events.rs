//! Live changes as server-sent events. `GET /api/runs/{uid}/events` streams one run's events
//! from the start (or after `Last-Event-ID` / `?after=N`), each with `id:` its number in the run;
//! `GET /api/events` streams every run's changes from now (or after `Last-Event-ID`), each with
//! `id:` its place in the store's feed. Either way a client that reconnects with the last id it
//! saw misses nothing and sees nothing twice.

use crate::auth::{Caller, Scope};
use crate::error::{ApiError, ErrorBody};
use crate::App;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use chainr_compiler::ir;
use chainr_runtime::event::RunEvent;
use chainr_runtime::store::Change;
use futures_util::StreamExt;
use serde::Deserialize;
use std::collections::HashMap;
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
    let stored = app.run(&uid).await?;
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

/// How many runs' pipelines the feed stream keeps at hand (to name jobs).
const PIPELINES_KEPT: usize = 256;

/// Every run's changes as they happen: `runCreated` when a run is submitted, then each event of
/// each run (as on a run's stream, with `run` and `jobName`). Starts from now unless
/// `Last-Event-ID` (or `?after=`) says where the client left off; a stream from now begins with
/// a `ready` event whose id is the place it starts from.
#[utoipa::path(get, path = "/api/events", tag = "events",
    params(StreamParams,
           ("Last-Event-ID" = Option<u64>, Header, description = "The last event seen")),
    responses(
        (status = 200, description = "Server-sent events", content_type = "text/event-stream", body = String),
    ))]
pub async fn all_events(
    State(app): State<App>,
    caller: Caller,
    headers: HeaderMap,
    params: Result<Query<StreamParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Sse<impl futures_util::Stream<Item = Result<Event, Infallible>>>, ApiError> {
    caller.require(Scope::Read, "reading events")?;
    let Query(params) = params.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let resumed = headers.contains_key("last-event-id") || params.after.is_some();
    let after = if resumed {
        start(&headers, params.after)?
    } else {
        app.store.last_change().await?
    };
    // From now: the stream begins by saying where it starts (a `ready` event with that id), so
    // that a client that loses the connection before any change resumes from there rather than
    // from a later "now".
    let place = (!resumed).then(|| {
        let data = serde_json::json!({"type": "ready", "after": after});
        Ok(Event::default()
            .id(after.to_string())
            .event("ready")
            .json_data(data)
            .unwrap_or_default())
    });
    let state = (
        app,
        after,
        Vec::<Change>::new().into_iter(),
        HashMap::<String, Option<ir::Pipeline>>::new(),
    );
    let stream = futures_util::stream::unfold(
        state,
        |(app, after, mut queued, mut pipelines)| async move {
            let mut draining = app.draining.clone();
            loop {
                if let Some(c) = queued.next() {
                    let id = c.id;
                    let event = change_event(&app, &c, &mut pipelines).await;
                    return Some((Ok(event), (app, id, queued, pipelines)));
                }
                if *draining.borrow() {
                    return None;
                }
                if let Ok(batch) = app.store.feed(after, BATCH).await {
                    if !batch.is_empty() {
                        queued = batch.into_iter();
                        continue;
                    }
                }
                tokio::select! {
                    _ = tokio::time::sleep(app.poll) => {}
                    _ = draining.changed() => {}
                }
            }
        },
    );
    let stream = futures_util::stream::iter(place).chain(stream);
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

async fn change_event(
    app: &App,
    change: &Change,
    pipelines: &mut HashMap<String, Option<ir::Pipeline>>,
) -> Event {
    let base = Event::default().id(change.id.to_string());
    let Some(e) = &change.event else {
        let data = serde_json::json!({"type": "runCreated", "run": change.run});
        return base.event("runCreated").json_data(data).unwrap_or_default();
    };
    if !pipelines.contains_key(&change.run) {
        if pipelines.len() >= PIPELINES_KEPT {
            pipelines.clear();
        }
        let pipeline = app
            .store
            .get(&change.run)
            .await
            .ok()
            .flatten()
            .map(|s| s.pipeline);
        pipelines.insert(change.run.clone(), pipeline);
    }
    let data = match pipelines.get(&change.run) {
        Some(Some(p)) => event_json(&change.run, p, e),
        // A run deleted since: its events still name their run.
        _ => {
            let mut v = serde_json::to_value(e).unwrap_or_default();
            if let Some(obj) = v.as_object_mut() {
                obj.insert("run".into(), change.run.clone().into());
            }
            v
        }
    };
    base.event(event_type(e))
        .json_data(data)
        .unwrap_or_default()
}
