//! chainr's HTTP API, an adapter around the store: runs are submitted (the original chainr's
//! JSON unchanged, `.chainr` source, or what `curl -d @file` sends), listed with a cursor, read,
//! cancelled and retried; logs are read and followed; run changes stream as server-sent events;
//! a run's planned graph is laid out for drawing; `/healthz`, `/readyz`, `/metrics` and
//! `/api/openapi.json` (generated from the handlers); the web UI at `/`, its files embedded in
//! the binary (`ui.rs`), signed in by a cookie (`session.rs`).
//!
//! Nothing here runs jobs: workers do, through the store (`chainr_runtime::worker`). The binary
//! (`chainrc serve`) wires a store, this router and the workers together.

mod auth;
mod diagnostics;
mod error;
mod events;
mod graph;
mod logs;
mod metrics;
mod notifications;
mod openapi;
mod runs;
mod serve;
mod session;
mod ui;

pub use auth::{hash as hash_token, Auth, Caller, Scope, Tokens, Via};
pub use diagnostics::{check, Checked, DiagnosticJson, Diagnostics, SourceKind};
pub use error::{ApiError, ErrorBody};
pub use metrics::{count_events, count_notification};
pub use openapi::openapi;
pub use runs::RunList;
pub use serve::serve;

use axum::extract::{FromRequestParts, MatchedPath, Request, State};
use axum::http::request::Parts;
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use chainr_runtime::log::LogSink;
use chainr_runtime::outbox::Outbox;
use chainr_runtime::store::Store;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// The default limit of a request body: 8 MiB.
pub const DEFAULT_MAX_BODY: usize = 8 << 20;

/// What the API serves from, and how.
pub struct Api {
    pub store: Arc<dyn Store>,
    /// The store's notifications (the same store, seen as an outbox).
    pub outbox: Arc<dyn Outbox>,
    /// The notification media of the server's configuration: pipelines that name others are
    /// refused. `None`: not checked.
    pub media: Option<Vec<String>>,
    pub logs: Arc<dyn LogSink>,
    pub auth: Auth,
    /// The largest request body accepted (413 beyond).
    pub max_body: usize,
    /// How often streams (events, followed logs) look at the store for news.
    pub poll: Duration,
    /// Turns true when the server drains: streams end, so that in-flight requests finish.
    pub draining: watch::Receiver<bool>,
}

/// What handlers share: the API's parts, and what the server keeps between requests.
pub(crate) struct Shared {
    api: Api,
    /// Layouts of runs' graphs.
    graphs: graph::Graphs,
}

impl Shared {
    fn new(api: Api) -> Shared {
        Shared {
            api,
            graphs: graph::Graphs::default(),
        }
    }
}

impl std::ops::Deref for Shared {
    type Target = Api;

    fn deref(&self) -> &Api {
        &self.api
    }
}

type App = Arc<Shared>;

impl Api {
    /// The stored run with this uid, or a 404 that says so.
    pub(crate) async fn run(
        &self,
        uid: &str,
    ) -> Result<chainr_runtime::store::StoredRun, ApiError> {
        self.store
            .get(uid)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("no run has uid {uid}")))
    }
}

impl FromRequestParts<App> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &App) -> Result<Caller, ApiError> {
        let caller = app.auth.caller(&parts.headers)?;
        if !parts.method.is_safe() {
            auth::same_origin(&parts.headers, caller.via)?;
        }
        Ok(caller)
    }
}

/// The whole HTTP surface: the API, health, metrics, the OpenAPI document, the web UI.
pub fn router(api: Api) -> Router {
    let max_body = api.max_body;
    let app: App = Arc::new(Shared::new(api));
    let (routes, _) = openapi::routes().split_for_parts();
    routes
        .merge(probe_routes())
        .merge(ui::routes())
        .route("/api/openapi.json", axum::routing::get(openapi_json))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::extract::DefaultBodyLimit::max(max_body))
        .layer(axum::middleware::from_fn(observe))
        .with_state(app)
}

/// What every process serves, whatever its roles: liveness, readiness (the store answers) and
/// metrics. No token is needed: they hold no run's data.
fn probe_routes() -> Router<App> {
    Router::new()
        .route("/healthz", axum::routing::get(healthz))
        .route("/readyz", axum::routing::get(readyz))
        .route("/metrics", axum::routing::get(metrics_text))
}

/// The probes alone, for a process without the `api` role (a worker still answers its
/// liveness and readiness probes and is scraped).
pub fn probes(store: Arc<dyn Store>, outbox: Arc<dyn Outbox>, logs: Arc<dyn LogSink>) -> Router {
    let (_tx, draining) = watch::channel(false);
    let app: App = Arc::new(Shared::new(Api {
        store,
        outbox,
        media: None,
        logs,
        auth: Auth::Disabled,
        max_body: 0,
        poll: Duration::from_secs(1),
        draining,
    }));
    probe_routes()
        .fallback(not_found)
        .layer(axum::middleware::from_fn(observe))
        .with_state(app)
}

/// Liveness: the process answers.
async fn healthz() -> &'static str {
    "ok\n"
}

/// Readiness: the store answers.
async fn readyz(State(app): State<App>) -> Response {
    let probe = chainr_runtime::store::ListQuery {
        limit: 1,
        ..Default::default()
    };
    match tokio::time::timeout(Duration::from_secs(2), app.store.list(&probe)).await {
        Ok(Ok(_)) => "ready\n".into_response(),
        Ok(Err(e)) => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {e}"))
            .into_response(),
        Err(_) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: the store did not answer within 2 s",
        )
        .into_response(),
    }
}

async fn metrics_text(State(app): State<App>) -> Response {
    match tokio::time::timeout(Duration::from_secs(2), app.store.counts()).await {
        Ok(Ok(counts)) => metrics::set_runs(&counts),
        // The figures of the last scrape stay; the failure is counted.
        _ => metrics::store_error(),
    }
    match tokio::time::timeout(Duration::from_secs(2), app.outbox.delivery_counts()).await {
        Ok(Ok(counts)) => metrics::set_notifications(&counts),
        _ => metrics::store_error(),
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        metrics::encode(),
    )
        .into_response()
}

async fn openapi_json() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        openapi::document_text(),
    )
        .into_response()
}

async fn not_found(method: Method, uri: axum::http::Uri) -> ApiError {
    ApiError::not_found(format!("no resource at {method} {}", uri.path()))
}

async fn method_not_allowed(method: Method, uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("{method} is not allowed on {}", uri.path()),
    )
}

/// Times every request for the latency histogram, by route (the matched pattern, never the
/// raw path, so that labels stay few).
async fn observe(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().as_str().to_string();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |m| m.as_str())
        .to_string();
    let response = next.run(request).await;
    metrics::request(
        &method,
        &route,
        response.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    response
}
