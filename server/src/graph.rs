//! A run's planned graph, laid out for drawing: `GET /api/runs/{uid}/graph` answers the
//! layout of the run's pipeline (`chainr_runtime::layout`), its fan-out groups collapsed unless
//! named by `?expand=GROUP`.
//!
//! A run's pipeline never changes, so neither does its layout: each one is computed once (on a
//! blocking thread: 10,000 jobs take tens of milliseconds), serialized and compressed once, and
//! kept in a bounded cache by run and expanded groups. Answers carry an `ETag` (a hash of the
//! JSON) and `Cache-Control: private`, so a browser asks again only to revalidate.

use crate::auth::{Caller, Scope};
use crate::error::{ApiError, ErrorBody};
use crate::App;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chainr_compiler::ir;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::io::Write as _;
use std::sync::Mutex;
use utoipa::IntoParams;

/// At most this many layouts are kept...
const MAX_ENTRIES: usize = 64;
/// ...holding at most this many bytes (JSON and gzip together); the least recently used go
/// first.
const MAX_BYTES: usize = 64 << 20;
/// At most this many `expand` parameters in one request.
const MAX_EXPAND: usize = 256;
/// How long a browser keeps an answer before revalidating it with its `ETag`.
const CACHE_CONTROL: &str = "private, max-age=3600";

#[allow(dead_code)] // It documents the query; `expanded` reads it, as repeated keys need.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct GraphParams {
    /// A fan-out group to draw job by job; repeatable. Groups are collapsed into one node
    /// otherwise. Names that are not groups of the pipeline are ignored.
    #[serde(default)]
    #[param(value_type = Option<Vec<String>>)]
    pub expand: Vec<String>,
}

/// A layout as it is sent: its JSON, the same gzipped, and their validator.
#[derive(Clone)]
struct Rendered {
    json: Bytes,
    gzip: Option<Bytes>,
    /// The hash of the JSON, quoted; the gzipped answer's ETag adds `-gzip` inside the quotes.
    tag: String,
}

impl Rendered {
    fn new(pipeline: &ir::Pipeline, expanded: &[String]) -> Rendered {
        let expanded: Vec<&str> = expanded.iter().map(String::as_str).collect();
        let layout = chainr_runtime::layout::layout(pipeline, &expanded);
        let json = serde_json::to_vec(&layout).unwrap_or_default();
        let hash = Sha256::digest(&json);
        let tag = hex::encode(&hash[..16]);
        // Small answers are not worth compressing.
        let gzip = (json.len() > 1024).then(|| {
            let mut e = flate2::write::GzEncoder::new(
                Vec::with_capacity(json.len() / 4),
                flate2::Compression::default(),
            );
            let _ = e.write_all(&json);
            Bytes::from(e.finish().unwrap_or_default())
        });
        Rendered {
            json: Bytes::from(json),
            gzip,
            tag,
        }
    }

    fn bytes(&self) -> usize {
        self.json.len() + self.gzip.as_ref().map_or(0, Bytes::len)
    }

    fn etag(&self, gzip: bool) -> String {
        if gzip {
            format!("\"{}-gzip\"", self.tag)
        } else {
            format!("\"{}\"", self.tag)
        }
    }
}

/// Layouts by run and expanded groups (sorted, without repeats), least recently used out
/// first.
#[derive(Default)]
pub(crate) struct Graphs {
    inner: Mutex<Lru>,
}

type Key = (String, Vec<String>);

#[derive(Default)]
struct Lru {
    entries: HashMap<Key, (Rendered, u64)>,
    clock: u64,
    bytes: usize,
}

impl Graphs {
    fn get(&self, key: &Key) -> Option<Rendered> {
        let mut lru = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        lru.clock += 1;
        let now = lru.clock;
        lru.entries.get_mut(key).map(|(r, used)| {
            *used = now;
            r.clone()
        })
    }

    fn insert(&self, key: Key, rendered: Rendered) {
        let size = rendered.bytes();
        if size > MAX_BYTES {
            return;
        }
        let mut lru = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        lru.clock += 1;
        let now = lru.clock;
        if let Some((old, _)) = lru.entries.insert(key, (rendered, now)) {
            lru.bytes -= old.bytes();
        }
        lru.bytes += size;
        while lru.entries.len() > MAX_ENTRIES || lru.bytes > MAX_BYTES {
            let Some(oldest) = lru
                .entries
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            if let Some((r, _)) = lru.entries.remove(&oldest) {
                lru.bytes -= r.bytes();
            }
        }
    }
}

/// The layout of a run's planned graph, left to right: one node per job, fan-out groups
/// collapsed into one node (with their jobs) unless expanded, `finally` jobs in a band after
/// the rest; edges from each dependency to its dependent, labelled when they ask more than
/// success (`failed`, `done`, `||`, `!`, ...). It never changes during the run: revalidate
/// with `If-None-Match`.
#[utoipa::path(get, path = "/api/runs/{uid}/graph", tag = "runs",
    params(("uid" = String, Path, description = "The run's uid"), GraphParams,
           ("If-None-Match" = Option<String>, Header, description = "The ETag of a layout already held")),
    responses(
        (status = 200, description = "The layout (gzipped when the client accepts it)",
            body = crate::openapi::LayoutSchema,
            headers(("ETag" = String, description = "Identifies this layout"),
                    ("Cache-Control" = String, description = "private, max-age=3600"))),
        (status = 304, description = "The layout is the one the client holds"),
        (status = 400, description = "A bad query", body = ErrorBody),
        (status = 401, description = "No or unknown token", body = ErrorBody),
        (status = 404, description = "No run has this uid", body = ErrorBody),
    ))]
pub async fn graph(
    State(app): State<App>,
    caller: Caller,
    Path(uid): Path<String>,
    uri: axum::http::Uri,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    caller.require(Scope::Read, "reading a run's graph")?;
    let key = (uid, expanded(uri.query())?);
    let rendered = match app.graphs.get(&key) {
        Some(r) => r,
        None => {
            let stored = app.run(&key.0).await?;
            let groups = key.1.clone();
            let r = tokio::task::spawn_blocking(move || Rendered::new(&stored.pipeline, &groups))
                .await
                .map_err(|e| {
                    tracing::error!(run = %key.0, error = %e, "laying out a graph failed");
                    ApiError::new(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "the graph could not be laid out",
                    )
                })?;
            app.graphs.insert(key, r.clone());
            r
        }
    };
    Ok(answer(&headers, &rendered))
}

/// The groups to expand: every `expand` of the query, sorted, without repeats or empties.
fn expanded(query: Option<&str>) -> Result<Vec<String>, ApiError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query.unwrap_or(""))
        .map_err(|e| ApiError::bad_request(format!("bad query: {e}")))?;
    let mut groups: Vec<String> = pairs
        .into_iter()
        .filter(|(k, v)| k == "expand" && !v.is_empty())
        .map(|(_, v)| v)
        .collect();
    if groups.len() > MAX_EXPAND {
        return Err(ApiError::bad_request(format!(
            "at most {MAX_EXPAND} groups can be expanded at once, got {}",
            groups.len()
        )));
    }
    groups.sort_unstable();
    groups.dedup();
    Ok(groups)
}

fn answer(headers: &HeaderMap, r: &Rendered) -> Response {
    let gzip = r.gzip.is_some() && accepts_gzip(headers);
    let etag = r.etag(gzip);
    let mut response = if matches(headers, r) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let body = match (&r.gzip, gzip) {
            (Some(g), true) => g.clone(),
            _ => r.json.clone(),
        };
        let mut response = body.into_response();
        let h = response.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if gzip {
            h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        }
        response
    };
    let h = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(CACHE_CONTROL),
    );
    h.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    response
}

/// `If-None-Match` names this layout (in either encoding), or is `*`.
fn matches(headers: &HeaderMap, r: &Rendered) -> bool {
    let ours = [r.etag(false), r.etag(true)];
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim())
        .any(|t| t == "*" || ours.iter().any(|o| t.strip_prefix("W/").unwrap_or(t) == o))
}

/// `Accept-Encoding` allows gzip (by name or `*`, with a non-zero `q`).
fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|coding| {
            let mut parts = coding.split(';');
            let name = parts.next().unwrap_or("").trim();
            let q = parts
                .filter_map(|p| p.trim().strip_prefix("q="))
                .find_map(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            (name.eq_ignore_ascii_case("gzip") || name == "*") && q > 0.0
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rendered(n: usize) -> Rendered {
        let mut p: ir::Pipeline =
            serde_json::from_str(r#"{"kind": "Pipeline", "jobs": {}}"#).unwrap();
        for i in 0..n {
            p.jobs
                .insert(format!("j{i}"), ir::Job::new("busybox", "true"));
        }
        Rendered::new(&p, &[])
    }

    #[test]
    fn the_cache_keeps_the_most_recently_used_within_its_bounds() {
        let graphs = Graphs::default();
        let key = |i: usize| (format!("run-{i}"), Vec::new());
        for i in 0..MAX_ENTRIES + 10 {
            graphs.insert(key(i), rendered(1));
            // The first stays in use.
            assert!(graphs.get(&key(0)).is_some());
        }
        assert!(graphs.get(&key(0)).is_some());
        assert!(graphs.get(&key(1)).is_none());
        assert!(graphs.get(&key(MAX_ENTRIES + 9)).is_some());
        let lru = graphs.inner.lock().unwrap();
        assert_eq!(lru.entries.len(), MAX_ENTRIES);
        let bytes: usize = lru.entries.values().map(|(r, _)| r.bytes()).sum();
        assert_eq!(lru.bytes, bytes);
    }

    #[test]
    fn gzip_is_sent_only_to_clients_that_accept_it() {
        let r = rendered(200);
        assert!(r.gzip.as_ref().unwrap().len() < r.json.len() / 4);
        let with = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::ACCEPT_ENCODING, HeaderValue::from_str(v).unwrap());
            h
        };
        assert!(accepts_gzip(&with("gzip, deflate, br")));
        assert!(accepts_gzip(&with("br;q=1.0, gzip;q=0.8")));
        assert!(accepts_gzip(&with("*")));
        assert!(!accepts_gzip(&with("gzip;q=0")));
        assert!(!accepts_gzip(&with("br, identity")));
        assert!(!accepts_gzip(&HeaderMap::new()));
        // Small layouts are sent as they are.
        assert!(rendered(1).gzip.is_none());
    }

    #[test]
    fn expand_is_repeatable_and_normalized() {
        assert_eq!(expanded(None).unwrap(), Vec::<String>::new());
        assert_eq!(
            expanded(Some("expand=b&expand=a&expand=b&expand=&other=x")).unwrap(),
            ["a", "b"]
        );
        let many = vec!["expand=g"; MAX_EXPAND + 1].join("&");
        assert_eq!(
            expanded(Some(&many)).unwrap_err().status,
            StatusCode::BAD_REQUEST
        );
    }
}
