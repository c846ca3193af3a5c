//! The HTTP surface: routes, `kind: Status` errors, the request log and injected failures.

use std::collections::{HashMap, VecDeque};

use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use serde_json::{json, Value};

use crate::selector::Selector;
use crate::store::{Filter, Stored};
use crate::{admission, controller, kubelet, watch, KubeApi};

type Params = Query<HashMap<String, String>>;

/// One request as the server received it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestRecord {
    /// `GET`, `POST`, `DELETE`, ...
    pub method: String,
    pub path: String,
    /// The raw query string, empty when there is none.
    pub query: String,
    pub kind: RequestKind,
}

/// What a request was for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RequestKind {
    Create,
    Get,
    List,
    Watch,
    Delete,
    Log,
    Other,
}

/// Requests counted by kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RequestCounts {
    pub create: u64,
    pub get: u64,
    pub list: u64,
    pub watch: u64,
    pub delete: u64,
    pub log: u64,
    pub other: u64,
}

impl RequestCounts {
    pub fn total(&self) -> u64 {
        self.create + self.get + self.list + self.watch + self.delete + self.log + self.other
    }

    fn add(&mut self, kind: RequestKind) {
        let n = match kind {
            RequestKind::Create => &mut self.create,
            RequestKind::Get => &mut self.get,
            RequestKind::List => &mut self.list,
            RequestKind::Watch => &mut self.watch,
            RequestKind::Delete => &mut self.delete,
            RequestKind::Log => &mut self.log,
            RequestKind::Other => &mut self.other,
        };
        *n += 1;
    }
}

struct FailRule {
    method: String,
    path_substring: String,
    code: u16,
}

#[derive(Default)]
pub(crate) struct Traffic {
    pub records: Vec<RequestRecord>,
    pub counts: RequestCounts,
    rules: VecDeque<FailRule>,
}

impl Traffic {
    pub fn fail_next(&mut self, method: &str, path_substring: &str, code: u16) {
        self.rules.push_back(FailRule {
            method: method.to_ascii_uppercase(),
            path_substring: path_substring.to_string(),
            code,
        });
    }

    fn take_rule(&mut self, method: &str, path: &str) -> Option<u16> {
        let i = self.rules.iter().position(|r| {
            (r.method == "*" || r.method == method) && path.contains(&r.path_substring)
        })?;
        self.rules.remove(i).map(|r| r.code)
    }
}

fn classify(method: &str, path: &str, query: &str) -> RequestKind {
    let watch = query
        .split('&')
        .any(|p| p == "watch=true" || p == "watch=1");
    let last = path.trim_end_matches('/').rsplit('/').next().unwrap_or("");
    match method {
        "POST" => RequestKind::Create,
        "DELETE" => RequestKind::Delete,
        "GET" if last == "log" => RequestKind::Log,
        "GET" if watch => RequestKind::Watch,
        "GET" if last == "jobs" || last == "pods" => RequestKind::List,
        "GET" if path.contains("/jobs/") || path.contains("/pods/") => RequestKind::Get,
        _ => RequestKind::Other,
    }
}

/// Records the request, then answers it with an injected failure if one matches.
async fn traffic(State(api): State<KubeApi>, req: Request, next: Next) -> Response {
    let method = req.method().as_str().to_string();
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let kind = classify(&method, &path, &query);
    let injected = {
        let mut t = api.traffic();
        t.counts.add(kind);
        let code = t.take_rule(&method, &path);
        t.records.push(RequestRecord {
            method,
            path,
            query,
            kind,
        });
        code
    };
    match injected {
        Some(code) => ApiError::injected(code).into_response(),
        None => next.run(req).await,
    }
}

pub(crate) fn router(api: KubeApi) -> Router {
    Router::new()
        .route("/version", get(version))
        .route("/apis/batch/v1/jobs", get(collection_all::<Job>))
        .route(
            "/apis/batch/v1/namespaces/{ns}/jobs",
            get(collection::<Job>).post(create_job),
        )
        .route(
            "/apis/batch/v1/namespaces/{ns}/jobs/{name}",
            get(get_one::<Job>).delete(delete_job),
        )
        .route("/api/v1/pods", get(collection_all::<Pod>))
        .route("/api/v1/namespaces/{ns}/pods", get(collection::<Pod>))
        .route(
            "/api/v1/namespaces/{ns}/pods/{name}",
            get(get_one::<Pod>).delete(delete_pod),
        )
        .route("/api/v1/namespaces/{ns}/pods/{name}/log", get(pod_log))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(api.clone(), traffic))
        .with_state(api)
}

async fn version() -> Json<Value> {
    Json(json!({
        "major": "1",
        "minor": "33",
        "gitVersion": "v1.33.0-chainr-test",
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2025-01-01T00:00:00Z",
        "goVersion": "go1.24",
        "compiler": "gc",
        "platform": "linux/amd64"
    }))
}

async fn not_found() -> ApiError {
    ApiError::new(
        404,
        "NotFound",
        "the server could not find the requested resource",
    )
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        405,
        "MethodNotAllowed",
        "the server does not allow this method on the requested resource",
    )
}

pub(crate) fn is_true(v: Option<&String>) -> bool {
    v.is_some_and(|v| v == "true" || v == "1")
}

fn filter<T: Stored>(
    namespace: Option<String>,
    q: &HashMap<String, String>,
) -> Result<Filter, ApiError> {
    let labels = match q.get("labelSelector") {
        Some(s) => Selector::labels(s).map_err(ApiError::bad_request)?,
        None => Selector::everything(),
    };
    let fields = match q.get("fieldSelector") {
        Some(s) => Selector::fields(s, T::FIELDS).map_err(ApiError::bad_request)?,
        None => Selector::everything(),
    };
    Ok(Filter {
        kind: T::KIND,
        namespace,
        labels,
        fields,
    })
}

async fn collection_all<T: Stored>(
    State(api): State<KubeApi>,
    Query(q): Params,
) -> Result<Response, ApiError> {
    list_or_watch::<T>(&api, None, &q)
}

async fn collection<T: Stored>(
    State(api): State<KubeApi>,
    Path(ns): Path<String>,
    Query(q): Params,
) -> Result<Response, ApiError> {
    list_or_watch::<T>(&api, Some(ns), &q)
}

/// A list (`limit` and `continue` are accepted and ignored: everything comes in one page) or,
/// with `watch=true`, a watch.
fn list_or_watch<T: Stored>(
    api: &KubeApi,
    namespace: Option<String>,
    q: &HashMap<String, String>,
) -> Result<Response, ApiError> {
    let filter = filter::<T>(namespace, q)?;
    if is_true(q.get("watch")) {
        return watch::serve::<T>(api, filter, q);
    }
    let st = api.state();
    let items = st.list::<T>(&filter);
    let body = json!({
        "kind": format!("{}List", T::KIND),
        "apiVersion": T::API_VERSION,
        "metadata": { "resourceVersion": st.rv.to_string() },
        "items": items,
    });
    drop(st);
    Ok(Json(body).into_response())
}

async fn get_one<T: Stored>(
    State(api): State<KubeApi>,
    Path((ns, name)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let st = api.state();
    match st.get::<T>(&ns, &name) {
        Some(obj) => Ok(Json(obj.clone()).into_response()),
        None => Err(ApiError::not_found(T::QUALIFIED, &name)),
    }
}

async fn create_job(
    State(api): State<KubeApi>,
    Path(ns): Path<String>,
    Query(q): Params,
    body: Bytes,
) -> Result<Response, ApiError> {
    let (job, generated) = admission::admit_job(&body, &ns)?;
    let dry_run = q.contains_key("dryRun");
    let job = controller::create_job(&api, job, generated, dry_run)?;
    Ok((StatusCode::CREATED, Json(job)).into_response())
}

/// DeleteOptions, from the body and the query (the query wins, as in the real server's
/// decoding order for the fields it carries).
pub(crate) struct DeleteOptions {
    pub propagation: Option<String>,
    pub uid: Option<String>,
    pub resource_version: Option<String>,
    pub dry_run: bool,
}

fn delete_options(q: &HashMap<String, String>, body: &[u8]) -> Result<DeleteOptions, ApiError> {
    let body: Value = if body.iter().all(u8::is_ascii_whitespace) {
        Value::Null
    } else {
        serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("invalid DeleteOptions: {e}")))?
    };
    let mut propagation = body["propagationPolicy"].as_str().map(str::to_string);
    if let Some(orphan) = body["orphanDependents"].as_bool() {
        propagation.get_or_insert_with(|| if orphan { "Orphan" } else { "Background" }.to_string());
    }
    if let Some(p) = q.get("propagationPolicy") {
        propagation = Some(p.clone());
    }
    if let Some(p) = &propagation {
        if !["Orphan", "Background", "Foreground"].contains(&p.as_str()) {
            return Err(ApiError::bad_request(format!(
                "DeleteOptions.propagationPolicy: Unsupported value: \"{p}\": supported values: \"Foreground\", \"Background\", \"Orphan\""
            )));
        }
    }
    Ok(DeleteOptions {
        propagation,
        uid: body["preconditions"]["uid"].as_str().map(str::to_string),
        resource_version: body["preconditions"]["resourceVersion"]
            .as_str()
            .map(str::to_string),
        dry_run: q.contains_key("dryRun")
            || body["dryRun"].as_array().is_some_and(|a| !a.is_empty()),
    })
}

async fn delete_job(
    State(api): State<KubeApi>,
    Path((ns, name)): Path<(String, String)>,
    Query(q): Params,
    body: Bytes,
) -> Result<Response, ApiError> {
    let opts = delete_options(&q, &body)?;
    let (code, job) = controller::delete_job(&api, &ns, &name, &opts)?;
    Ok((code, Json(job)).into_response())
}

async fn delete_pod(
    State(api): State<KubeApi>,
    Path((ns, name)): Path<(String, String)>,
    Query(q): Params,
    body: Bytes,
) -> Result<Response, ApiError> {
    let opts = delete_options(&q, &body)?;
    let pod = kubelet::delete_pod_request(&api, &ns, &name, &opts)?;
    Ok(Json(pod).into_response())
}

async fn pod_log(
    State(api): State<KubeApi>,
    Path((ns, name)): Path<(String, String)>,
    Query(q): Params,
) -> Result<Response, ApiError> {
    kubelet::logs(&api, &ns, &name, &q)
}

/// An error answered as a `kind: Status` object.
#[derive(Debug)]
pub(crate) struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    pub details: Option<Value>,
}

impl ApiError {
    pub fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            code,
            reason,
            message: message.into(),
            details: None,
        }
    }

    fn resource_details(qualified: &str, name: &str) -> Value {
        match qualified.split_once('.') {
            Some((kind, group)) => json!({ "name": name, "group": group, "kind": kind }),
            None => json!({ "name": name, "kind": qualified }),
        }
    }

    pub fn not_found(qualified: &str, name: &str) -> Self {
        ApiError {
            details: Some(Self::resource_details(qualified, name)),
            ..Self::new(404, "NotFound", format!("{qualified} \"{name}\" not found"))
        }
    }

    pub fn already_exists(qualified: &str, name: &str) -> Self {
        ApiError {
            details: Some(Self::resource_details(qualified, name)),
            ..Self::new(
                409,
                "AlreadyExists",
                format!("{qualified} \"{name}\" already exists"),
            )
        }
    }

    pub fn conflict(qualified: &str, name: &str, message: String) -> Self {
        ApiError {
            details: Some(Self::resource_details(qualified, name)),
            ..Self::new(
                409,
                "Conflict",
                format!("Operation cannot be fulfilled on {qualified} \"{name}\": {message}"),
            )
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    /// A response chosen by [`crate::KubeApi::fail_next`].
    fn injected(code: u16) -> Self {
        let (reason, message) = match code {
            400 => ("BadRequest", "injected bad request"),
            401 => ("Unauthorized", "Unauthorized"),
            403 => ("Forbidden", "injected: forbidden"),
            404 => (
                "NotFound",
                "injected: the server could not find the requested resource",
            ),
            409 => ("Conflict", "injected: conflict"),
            410 => ("Expired", "injected: too old resource version"),
            422 => ("Invalid", "injected: invalid"),
            429 => (
                "TooManyRequests",
                "injected: too many requests, please try again later",
            ),
            500 => (
                "InternalError",
                "injected: an error on the server has prevented the request from succeeding",
            ),
            503 => (
                "ServiceUnavailable",
                "injected: the server is currently unable to handle the request",
            ),
            504 => (
                "Timeout",
                "injected: the server was unable to return a response in the time allotted",
            ),
            _ => ("", "injected failure"),
        };
        let mut e = Self::new(code, reason, message);
        if code == 429 {
            e.details = Some(json!({ "retryAfterSeconds": 1 }));
        }
        e
    }

    pub fn status_json(&self) -> Value {
        let mut v = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let Some(d) = &self.details {
            v["details"] = d.clone();
        }
        v
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = StatusCode::from_u16(self.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut res = (code, Json(self.status_json())).into_response();
        if self.code == 429 {
            res.headers_mut()
                .insert("retry-after", HeaderValue::from_static("1"));
        }
        res
    }
}
