//! A test Kubernetes API server for chainr, faithful enough that the real Kubernetes executor
//! (`kube` 5, `kube::runtime::watcher`, pod logs) runs against it unchanged.
//!
//! It keeps `batch/v1` Jobs and `v1` Pods of any namespace as real `k8s-openapi` objects (uid,
//! creationTimestamp, a global resourceVersion, Job defaulting and validation), serves create,
//! get, list, watch, delete and `pods/{name}/log` with `kind: Status` errors, runs a Job
//! controller (one pod per Job, conditions in Kubernetes 1.31+ order, `activeDeadlineSeconds`,
//! `backoffLimit`, `ttlSecondsAfterFinished`) and a kubelet that runs each pod's first container
//! for real as `command + args` on this machine (`sh -c SCRIPT`), or scripted per image to fail
//! to pull, hang or stay unschedulable.
//!
//! Two ways to use it:
//!
//! ```no_run
//! # async fn doc() {
//! use chainr_kube_api::KubeApi;
//! let api = KubeApi::new();
//! // In-process: a kube::Client over the axum router, no socket.
//! let client = api.client("chainr");
//! // Over loopback: a plain-HTTP server and a kubeconfig for it (for `chainrc run --kube`).
//! let addr = api.serve().await;
//! std::fs::write("/tmp/kubeconfig", api.kubeconfig(addr, "chainr")).unwrap();
//! # let _ = client;
//! # }
//! ```
//!
//! Everything runs on the Tokio runtime of the caller: tasks (the controller, the kubelet, the
//! watch streams, the loopback server) live until that runtime shuts down. Processes are killed
//! when their pod is deleted or their task is dropped.
//!
//! Tests can break things on purpose: [`KubeApi::expire_next_watch`], [`KubeApi::expire_watches`],
//! [`KubeApi::drop_watches`], [`KubeApi::fail_next`], and count the requests a client made with
//! [`KubeApi::requests`] and [`KubeApi::counts`].

mod admission;
mod controller;
mod http;
mod kubelet;
mod selector;
mod store;
mod watch;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;

pub use http::{RequestCounts, RequestKind, RequestRecord};

use crate::http::Traffic;
use crate::store::State;

/// What the kubelet does with a pod whose (first) container's image starts with a given prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Behaviour {
    /// Run the container's `command` + `args` as a process on this machine (the default).
    Run,
    /// The image cannot be pulled: the pod stays Pending, its container waiting with reason
    /// `ErrImagePull`, then `ImagePullBackOff`.
    PullFail,
    /// The pod stays Pending, its container waiting in `ContainerCreating`, forever.
    Hang,
    /// The pod is never scheduled: Pending, condition `PodScheduled=False` with reason
    /// `Unschedulable`, no node, no container status.
    Unschedulable,
    /// The image reference is invalid: the container waits with reason `InvalidImageName`.
    InvalidImageName,
}

/// The test API server. Cheap to clone: clones share one server.
#[derive(Clone)]
pub struct KubeApi {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    state: Mutex<State>,
    traffic: Mutex<Traffic>,
    /// Container processes alive now.
    processes: std::sync::atomic::AtomicUsize,
}

impl Default for KubeApi {
    fn default() -> Self {
        Self::new()
    }
}

impl KubeApi {
    /// An empty server: no objects, every namespace usable, every image runs.
    pub fn new() -> Self {
        KubeApi {
            inner: Arc::new(Inner {
                state: Mutex::new(State::new()),
                traffic: Mutex::new(Traffic::default()),
                processes: std::sync::atomic::AtomicUsize::new(0),
            }),
        }
    }

    pub(crate) fn state(&self) -> MutexGuard<'_, State> {
        self.inner.state()
    }

    /// The HTTP API as an axum router (a tower `Service`). Handlers spawn tasks, so it must be
    /// called from within a Tokio runtime.
    pub fn router(&self) -> axum::Router {
        http::router(self.clone())
    }

    /// A `kube::Client` talking to this server in-process, with `namespace` as its default
    /// namespace. Equivalent to `kube::Client::new(self.router(), namespace)`; must be called
    /// within a Tokio runtime (the client spawns its request buffer there).
    pub fn client(&self, namespace: &str) -> kube::Client {
        kube::Client::new(self.router(), namespace)
    }

    /// Serves the API over plain HTTP on `127.0.0.1` at a free port, until the runtime stops.
    pub async fn serve(&self) -> SocketAddr {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local address");
        let router = self.router();
        tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        addr
    }

    /// A kubeconfig (YAML) for a server started with [`KubeApi::serve`]: cluster
    /// `http://127.0.0.1:PORT`, a current context with `namespace`, and a user with a dummy
    /// bearer token (which the server does not check).
    pub fn kubeconfig(&self, addr: SocketAddr, namespace: &str) -> String {
        format!(
            "apiVersion: v1
kind: Config
clusters:
- name: chainr-test
  cluster:
    server: http://{addr}
contexts:
- name: chainr-test
  context:
    cluster: chainr-test
    namespace: {namespace}
    user: chainr-test
current-context: chainr-test
users:
- name: chainr-test
  user:
    token: chainr-test-token
preferences: {{}}
"
        )
    }

    /// Registers a Secret key: containers whose env uses `valueFrom.secretKeyRef` with this
    /// secret and key get `value`. A pod whose secret or key is missing waits with reason
    /// `CreateContainerConfigError` until it is registered.
    pub fn set_secret(&self, namespace: &str, name: &str, key: &str, value: &str) {
        self.state()
            .secrets
            .entry(store::key(namespace, name))
            .or_default()
            .insert(key.to_string(), value.to_string());
    }

    /// Scripts the kubelet for images starting with `prefix` (the longest matching prefix wins;
    /// images that match none run normally). Applies to pods started afterwards.
    pub fn script_image(&self, prefix: &str, behaviour: Behaviour) {
        let mut st = self.state();
        st.images.retain(|(p, _)| p != prefix);
        st.images.push((prefix.to_string(), behaviour));
    }

    /// How long a `PullFail` pod shows `ErrImagePull` before `ImagePullBackOff` (500 ms).
    pub fn set_pull_backoff_after(&self, after: Duration) {
        self.state().pull_backoff_after = after;
    }

    /// How often a watch with `allowWatchBookmarks=true` gets a BOOKMARK frame (1 s).
    pub fn set_bookmark_interval(&self, every: Duration) {
        self.state().bookmark_interval = every;
    }

    /// How many events are kept for watches that resume from a resourceVersion (10,000); a watch
    /// from a version older than the oldest kept is answered with a 410 Expired ERROR frame, as
    /// after an etcd compaction.
    pub fn set_history_limit(&self, events: usize) {
        let mut st = self.state();
        st.history_limit = events.max(1);
        while st.history.len() > st.history_limit {
            if let Some(old) = st.history.pop_front() {
                st.compacted = old.rv;
            }
        }
    }

    /// The next watch request is answered with a single `ERROR` frame whose object is a Status
    /// 410 `Expired` (too old resource version), then the stream ends. `kube::runtime::watcher`
    /// re-lists.
    pub fn expire_next_watch(&self) {
        self.state().expire_next_watch = true;
    }

    /// Every open watch gets a 410 `Expired` ERROR frame and ends. Returns how many there were.
    pub fn expire_watches(&self) -> usize {
        watch::broadcast(&mut self.state(), watch::WatchMsg::Expire)
    }

    /// Every open watch connection is cut without a proper end (the chunked body is aborted, as
    /// when a connection drops). Returns how many there were.
    pub fn drop_watches(&self) -> usize {
        watch::broadcast(&mut self.state(), watch::WatchMsg::Drop)
    }

    /// How many watch streams are open now.
    pub fn open_watches(&self) -> usize {
        let mut st = self.state();
        st.watchers.retain(|_, sub| !sub.tx.is_closed());
        st.watchers.len()
    }

    /// The next request whose method is `method` (case-insensitive; `"*"` for any) and whose
    /// path contains `path_substring` is answered with `code` and a matching Status (429
    /// `TooManyRequests` with `Retry-After: 1`, 500 `InternalError`, 503 `ServiceUnavailable`,
    /// 410 `Expired`, 409 `Conflict`, 404 `NotFound`, 403 `Forbidden`, 401 `Unauthorized`, ...).
    /// Rules queue up; each answers one request.
    pub fn fail_next(&self, method: &str, path_substring: &str, code: u16) {
        self.inner
            .traffic
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .fail_next(method, path_substring, code);
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.traffic().records.clone()
    }

    /// Requests received so far, counted by kind.
    pub fn counts(&self) -> RequestCounts {
        self.traffic().counts
    }

    /// Forgets the requests received so far (the counts too).
    pub fn reset_requests(&self) {
        let mut t = self.traffic();
        t.records.clear();
        t.counts = RequestCounts::default();
    }

    fn traffic(&self) -> MutexGuard<'_, Traffic> {
        self.inner.traffic.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The Jobs of a namespace, as stored.
    pub fn jobs(&self, namespace: &str) -> Vec<Job> {
        let st = self.state();
        st.jobs
            .iter()
            .filter(|((ns, _), _)| ns == namespace)
            .map(|(_, j)| j.clone())
            .collect()
    }

    /// The Pods of a namespace, as stored.
    pub fn pods(&self, namespace: &str) -> Vec<Pod> {
        let st = self.state();
        st.pods
            .iter()
            .filter(|((ns, _), _)| ns == namespace)
            .map(|(_, p)| p.clone())
            .collect()
    }

    /// The output captured so far from a pod's container, one line per line, without
    /// timestamps; `None` when the pod does not exist.
    pub fn pod_output(&self, namespace: &str, pod: &str) -> Option<String> {
        let st = self.state();
        let logs = st.pod_rt.get(&store::key(namespace, pod))?.logs.clone();
        drop(st);
        let text = logs.borrow().text();
        Some(text)
    }

    /// How many container processes are running now.
    pub fn running_processes(&self) -> usize {
        self.inner
            .processes
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The current resourceVersion (the version of the last write).
    pub fn resource_version(&self) -> u64 {
        self.state().rv
    }
}

impl Inner {
    pub(crate) fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}
