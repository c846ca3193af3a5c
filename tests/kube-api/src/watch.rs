//! Watches: newline-delimited `{"type":...,"object":...}` frames for the changes after a
//! resourceVersion, BOOKMARK frames when asked, the server-side `timeoutSeconds`, `410 Expired`
//! ERROR frames for versions older than the kept history, `sendInitialEvents`, and the injected
//! expiry and dropped connections.

use std::collections::HashMap;
use std::io;
use std::time::Duration;

use axum::body::Body;
use axum::body::Bytes;
use axum::http::header;
use axum::response::Response;
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio::time::{Instant, Interval};

use crate::http::{is_true, ApiError};
use crate::store::{Filter, State, Stored};
use crate::KubeApi;

#[derive(Clone)]
pub(crate) enum WatchMsg {
    /// A serialized event.
    Frame(Bytes),
    /// Send a 410 Expired ERROR frame and end.
    Expire,
    /// Abort the connection.
    Drop,
}

/// An open watch, registered in the store, which hands it every matching event.
pub(crate) struct WatchSub {
    pub filter: Filter,
    pub tx: mpsc::UnboundedSender<WatchMsg>,
}

/// Sends `msg` to every open watch; returns how many received it.
pub(crate) fn broadcast(st: &mut State, msg: WatchMsg) -> usize {
    st.watchers
        .retain(|_, sub| sub.tx.send(msg.clone()).is_ok());
    st.watchers.len()
}

fn frame(kind: &str, object: &Value) -> Bytes {
    let mut v = serde_json::to_vec(&json!({ "type": kind, "object": object })).expect("json");
    v.push(b'\n');
    Bytes::from(v)
}

fn expired_frame(message: String) -> Bytes {
    frame(
        "ERROR",
        &ApiError::new(410, "Expired", message).status_json(),
    )
}

fn bookmark_frame(kind: &str, api_version: &str, rv: u64, initial_end: bool) -> Bytes {
    let mut meta = json!({ "resourceVersion": rv.to_string() });
    if initial_end {
        meta["annotations"] = json!({ "k8s.io/initial-events-end": "true" });
    }
    frame(
        "BOOKMARK",
        &json!({ "kind": kind, "apiVersion": api_version, "metadata": meta }),
    )
}

fn added_frame<T: Stored>(obj: &T) -> Bytes {
    frame("ADDED", &serde_json::to_value(obj).expect("json"))
}

/// Answers a watch request: the frames due now are computed under the lock together with the
/// registration, so no change falls between them.
pub(crate) fn serve<T: Stored>(
    api: &KubeApi,
    filter: Filter,
    q: &HashMap<String, String>,
) -> Result<Response, ApiError> {
    let timeout = q
        .get("timeoutSeconds")
        .and_then(|s| s.parse::<u64>().ok())
        .filter(|s| *s > 0)
        .map_or(Duration::from_secs(1800), Duration::from_secs);
    let bookmarks = is_true(q.get("allowWatchBookmarks"));
    let initial_events = is_true(q.get("sendInitialEvents"));
    let rv = match q.get("resourceVersion").filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => Some(
            s.parse::<u64>()
                .map_err(|_| ApiError::bad_request(format!("invalid resource version: {s}")))?,
        ),
    };

    let mut st = api.state();
    let mut initial = Vec::new();
    let mut keep_open = true;
    if std::mem::take(&mut st.expire_next_watch) {
        initial.push(expired_frame(format!(
            "too old resource version: {} ({})",
            rv.unwrap_or(0),
            st.rv
        )));
        keep_open = false;
    } else if initial_events {
        initial.extend(st.list::<T>(&filter).iter().map(added_frame));
        if bookmarks {
            initial.push(bookmark_frame(T::KIND, T::API_VERSION, st.rv, true));
        }
    } else {
        match rv {
            // "Start at most recent" / "any": the current state as ADDED events, then changes.
            None | Some(0) => initial.extend(st.list::<T>(&filter).iter().map(added_frame)),
            Some(n) if n < st.compacted => {
                initial.push(expired_frame(format!(
                    "too old resource version: {n} ({})",
                    st.compacted + 1
                )));
                keep_open = false;
            }
            Some(n) => initial.extend(
                st.history
                    .iter()
                    .filter(|e| {
                        e.rv > n && filter.matches_parts(e.kind, &e.namespace, &e.labels, &e.fields)
                    })
                    .map(|e| e.frame.clone()),
            ),
        }
    }
    let (tx, rx) = mpsc::unbounded_channel();
    let id = keep_open.then(|| {
        let id = st.next_watch_id;
        st.next_watch_id += 1;
        st.watchers.insert(id, WatchSub { filter, tx });
        id
    });
    let bookmark_every = bookmarks.then_some(st.bookmark_interval);
    drop(st);

    let (out_tx, out_rx) = mpsc::channel::<Result<Bytes, io::Error>>(64);
    let pump = Pump {
        api: api.clone(),
        kind: T::KIND,
        api_version: T::API_VERSION,
        out: out_tx,
    };
    tokio::spawn(pump.run(id, initial, rx, timeout, bookmark_every));
    let body = Body::from_stream(futures::stream::unfold(out_rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    }));
    Ok(Response::builder()
        .header(header::CONTENT_TYPE, "application/json")
        .body(body)
        .expect("response"))
}

struct Pump {
    api: KubeApi,
    kind: &'static str,
    api_version: &'static str,
    out: mpsc::Sender<Result<Bytes, io::Error>>,
}

impl Pump {
    async fn run(
        self,
        id: Option<u64>,
        initial: Vec<Bytes>,
        mut rx: mpsc::UnboundedReceiver<WatchMsg>,
        timeout: Duration,
        bookmark_every: Option<Duration>,
    ) {
        for f in initial {
            if self.out.send(Ok(f)).await.is_err() {
                break;
            }
        }
        let Some(id) = id else { return };
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        let mut ticker = bookmark_every.map(|d| tokio::time::interval_at(Instant::now() + d, d));
        loop {
            let go_on = tokio::select! {
                _ = &mut deadline => false,
                _ = self.out.closed() => false,
                msg = rx.recv() => match msg {
                    Some(msg) => self.forward(msg).await,
                    None => false,
                },
                _ = tick(&mut ticker) => {
                    // Take what is queued under the lock, so the bookmark's version covers it.
                    let (pending, rv) = {
                        let st = self.api.state();
                        let mut pending = Vec::new();
                        while let Ok(m) = rx.try_recv() {
                            pending.push(m);
                        }
                        (pending, st.rv)
                    };
                    let mut go_on = true;
                    for m in pending {
                        go_on = self.forward(m).await;
                        if !go_on {
                            break;
                        }
                    }
                    go_on
                        && self
                            .out
                            .send(Ok(bookmark_frame(self.kind, self.api_version, rv, false)))
                            .await
                            .is_ok()
                }
            };
            if !go_on {
                break;
            }
        }
        self.api.state().watchers.remove(&id);
    }

    /// Sends one message on; false when the stream is over.
    async fn forward(&self, msg: WatchMsg) -> bool {
        match msg {
            WatchMsg::Frame(f) => self.out.send(Ok(f)).await.is_ok(),
            WatchMsg::Expire => {
                let rv = self.api.state().rv;
                let msg = format!("too old resource version: {rv} ({})", rv + 1);
                let _ = self.out.send(Ok(expired_frame(msg))).await;
                false
            }
            WatchMsg::Drop => {
                let _ = self
                    .out
                    .send(Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "watch connection dropped (injected)",
                    )))
                    .await;
                false
            }
        }
    }
}

async fn tick(ticker: &mut Option<Interval>) {
    match ticker {
        Some(t) => {
            t.tick().await;
        }
        None => std::future::pending().await,
    }
}
