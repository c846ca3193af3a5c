//! The object store: Jobs and Pods of any number of namespaces as real `k8s-openapi` objects, a
//! global resourceVersion bumped on every write, and the event history that watches are served
//! from. Every write goes through [`State::create`], [`State::update`] or [`State::remove`], which
//! record the watch event and hand it to the open watches whose filter it passes.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::body::Bytes;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use k8s_openapi::{Metadata, Resource};
use serde::Serialize;

use crate::controller::JobRt;
use crate::kubelet::PodRt;
use crate::selector::Selector;
use crate::watch::{WatchMsg, WatchSub};
use crate::Behaviour;

/// `(namespace, name)`.
pub(crate) type Key = (String, String);

pub(crate) fn key(ns: &str, name: &str) -> Key {
    (ns.to_string(), name.to_string())
}

/// A kind this server stores: where its objects live and which fields a field selector may use.
pub(crate) trait Stored:
    Clone + Serialize + Resource + Metadata<Ty = ObjectMeta> + Send + Sync + 'static
{
    /// The plural resource name with its group, as errors name it: `jobs.batch`, `pods`.
    const QUALIFIED: &'static str;
    /// The field labels a field selector may use.
    const FIELDS: &'static [&'static str];

    fn map(st: &State) -> &BTreeMap<Key, Self>;
    fn map_mut(st: &mut State) -> &mut BTreeMap<Key, Self>;
    fn fields(&self) -> BTreeMap<String, String>;
}

fn meta_fields(meta: &ObjectMeta) -> BTreeMap<String, String> {
    let mut f = BTreeMap::new();
    f.insert(
        "metadata.name".into(),
        meta.name.clone().unwrap_or_default(),
    );
    f.insert(
        "metadata.namespace".into(),
        meta.namespace.clone().unwrap_or_default(),
    );
    f
}

impl Stored for Job {
    const QUALIFIED: &'static str = "jobs.batch";
    const FIELDS: &'static [&'static str] =
        &["metadata.name", "metadata.namespace", "status.successful"];

    fn map(st: &State) -> &BTreeMap<Key, Self> {
        &st.jobs
    }
    fn map_mut(st: &mut State) -> &mut BTreeMap<Key, Self> {
        &mut st.jobs
    }
    fn fields(&self) -> BTreeMap<String, String> {
        let mut f = meta_fields(&self.metadata);
        let succeeded = self.status.as_ref().and_then(|s| s.succeeded).unwrap_or(0);
        f.insert("status.successful".into(), succeeded.to_string());
        f
    }
}

impl Stored for Pod {
    const QUALIFIED: &'static str = "pods";
    const FIELDS: &'static [&'static str] = &[
        "metadata.name",
        "metadata.namespace",
        "spec.nodeName",
        "spec.restartPolicy",
        "spec.schedulerName",
        "spec.serviceAccountName",
        "status.phase",
        "status.podIP",
    ];

    fn map(st: &State) -> &BTreeMap<Key, Self> {
        &st.pods
    }
    fn map_mut(st: &mut State) -> &mut BTreeMap<Key, Self> {
        &mut st.pods
    }
    fn fields(&self) -> BTreeMap<String, String> {
        let mut f = meta_fields(&self.metadata);
        let spec = self.spec.clone().unwrap_or_default();
        let status = self.status.clone().unwrap_or_default();
        f.insert("spec.nodeName".into(), spec.node_name.unwrap_or_default());
        f.insert(
            "spec.restartPolicy".into(),
            spec.restart_policy.unwrap_or_default(),
        );
        f.insert(
            "spec.schedulerName".into(),
            spec.scheduler_name.unwrap_or_default(),
        );
        f.insert(
            "spec.serviceAccountName".into(),
            spec.service_account_name.unwrap_or_default(),
        );
        f.insert("status.phase".into(), status.phase.unwrap_or_default());
        f.insert("status.podIP".into(), status.pod_ip.unwrap_or_default());
        f
    }
}

/// What a list or watch selects: a kind, a namespace (or all) and label and field selectors.
#[derive(Clone, Debug)]
pub(crate) struct Filter {
    pub kind: &'static str,
    pub namespace: Option<String>,
    pub labels: Selector,
    pub fields: Selector,
}

impl Filter {
    pub fn matches_parts(
        &self,
        kind: &str,
        ns: &str,
        labels: &BTreeMap<String, String>,
        fields: &BTreeMap<String, String>,
    ) -> bool {
        kind == self.kind
            && self.namespace.as_deref().is_none_or(|want| want == ns)
            && self.labels.matches(labels)
            && self.fields.matches(fields)
    }

    pub fn matches<T: Stored>(&self, obj: &T) -> bool {
        let meta = obj.metadata();
        let labels = meta.labels.clone().unwrap_or_default();
        self.matches_parts(
            T::KIND,
            meta.namespace.as_deref().unwrap_or_default(),
            &labels,
            &obj.fields(),
        )
    }
}

/// One recorded change, with its frame serialized once.
pub(crate) struct Event {
    pub rv: u64,
    pub kind: &'static str,
    pub namespace: String,
    pub labels: BTreeMap<String, String>,
    pub fields: BTreeMap<String, String>,
    /// `{"type":...,"object":...}\n`
    pub frame: Bytes,
}

/// Everything behind the server's one lock.
pub(crate) struct State {
    pub rv: u64,
    pub jobs: BTreeMap<Key, Job>,
    pub pods: BTreeMap<Key, Pod>,
    /// Recent events, oldest first, for watches that resume from a resourceVersion.
    pub history: VecDeque<Event>,
    pub history_limit: usize,
    /// The highest resourceVersion whose event was dropped from `history`: a watch from an older
    /// version is answered 410 Expired.
    pub compacted: u64,
    pub watchers: HashMap<u64, WatchSub>,
    pub next_watch_id: u64,
    pub expire_next_watch: bool,
    pub bookmark_interval: Duration,
    pub job_rt: HashMap<Key, JobRt>,
    pub pod_rt: HashMap<Key, PodRt>,
    pub secrets: HashMap<Key, BTreeMap<String, String>>,
    pub images: Vec<(String, Behaviour)>,
    pub pull_backoff_after: Duration,
}

impl State {
    pub fn new() -> Self {
        State {
            rv: 1,
            jobs: BTreeMap::new(),
            pods: BTreeMap::new(),
            history: VecDeque::new(),
            history_limit: 10_000,
            compacted: 0,
            watchers: HashMap::new(),
            next_watch_id: 1,
            expire_next_watch: false,
            bookmark_interval: Duration::from_secs(1),
            job_rt: HashMap::new(),
            pod_rt: HashMap::new(),
            secrets: HashMap::new(),
            images: Vec::new(),
            pull_backoff_after: Duration::from_millis(500),
        }
    }

    pub fn get<T: Stored>(&self, ns: &str, name: &str) -> Option<&T> {
        T::map(self).get(&key(ns, name))
    }

    pub fn list<T: Stored>(&self, filter: &Filter) -> Vec<T> {
        T::map(self)
            .values()
            .filter(|o| filter.matches(*o))
            .cloned()
            .collect()
    }

    /// Stores a new object (its name, namespace and uid already set) and records ADDED.
    pub fn create<T: Stored>(&mut self, mut obj: T) -> T {
        self.rv += 1;
        let meta = obj.metadata_mut();
        meta.resource_version = Some(self.rv.to_string());
        let k = key(
            meta.namespace.as_deref().unwrap_or_default(),
            meta.name.as_deref().unwrap_or_default(),
        );
        T::map_mut(self).insert(k, obj.clone());
        self.record("ADDED", &obj);
        obj
    }

    /// Changes an object in place (when it exists and, if `uid` is given, is still that one) and
    /// records MODIFIED. Returns the new object.
    pub fn update<T: Stored>(
        &mut self,
        ns: &str,
        name: &str,
        uid: Option<&str>,
        f: impl FnOnce(&mut T),
    ) -> Option<T> {
        let k = key(ns, name);
        let obj = T::map_mut(self).get_mut(&k)?;
        if uid.is_some_and(|uid| obj.metadata().uid.as_deref() != Some(uid)) {
            return None;
        }
        let mut new = obj.clone();
        f(&mut new);
        self.rv += 1;
        new.metadata_mut().resource_version = Some(self.rv.to_string());
        T::map_mut(self).insert(k, new.clone());
        self.record("MODIFIED", &new);
        Some(new)
    }

    /// Removes an object and records DELETED (with the deletion's resourceVersion, as the real
    /// API server does).
    pub fn remove<T: Stored>(&mut self, ns: &str, name: &str, uid: Option<&str>) -> Option<T> {
        let k = key(ns, name);
        let obj = T::map(self).get(&k)?;
        if uid.is_some_and(|uid| obj.metadata().uid.as_deref() != Some(uid)) {
            return None;
        }
        let mut obj = T::map_mut(self).remove(&k)?;
        self.rv += 1;
        obj.metadata_mut().resource_version = Some(self.rv.to_string());
        self.record("DELETED", &obj);
        Some(obj)
    }

    fn record<T: Stored>(&mut self, kind: &str, obj: &T) {
        #[derive(Serialize)]
        struct Frame<'a, T> {
            #[serde(rename = "type")]
            type_: &'a str,
            object: &'a T,
        }
        let mut frame = serde_json::to_vec(&Frame {
            type_: kind,
            object: obj,
        })
        .expect("k8s-openapi objects serialize");
        frame.push(b'\n');
        let meta = obj.metadata();
        let event = Event {
            rv: self.rv,
            kind: T::KIND,
            namespace: meta.namespace.clone().unwrap_or_default(),
            labels: meta.labels.clone().unwrap_or_default(),
            fields: obj.fields(),
            frame: Bytes::from(frame),
        };
        self.watchers.retain(|_, sub| {
            if !sub
                .filter
                .matches_parts(event.kind, &event.namespace, &event.labels, &event.fields)
            {
                return true;
            }
            sub.tx.send(WatchMsg::Frame(event.frame.clone())).is_ok()
        });
        self.history.push_back(event);
        while self.history.len() > self.history_limit {
            if let Some(old) = self.history.pop_front() {
                self.compacted = old.rv;
            }
        }
    }

    /// The behaviour scripted for an image: the longest matching prefix wins.
    pub fn behaviour(&self, image: &str) -> Behaviour {
        self.images
            .iter()
            .filter(|(prefix, _)| image.starts_with(prefix.as_str()))
            .max_by_key(|(prefix, _)| prefix.len())
            .map(|(_, b)| *b)
            .unwrap_or(Behaviour::Run)
    }
}

pub(crate) fn now() -> Time {
    Time(Timestamp::now())
}

static SEED: AtomicU64 = AtomicU64::new(0);

/// A pseudo-random number (splitmix64 over the clock and a counter): names and uids only need
/// to differ, not to be unpredictable.
pub(crate) fn random() -> u64 {
    let clock = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let mut z = SEED
        .fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed)
        .wrapping_add(clock);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Five characters from the alphabet Kubernetes uses for generated names (no vowels, no
/// look-alikes).
pub(crate) fn random_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut n = random();
    (0..5)
        .map(|_| {
            let c = ALPHABET[(n % ALPHABET.len() as u64) as usize] as char;
            n /= ALPHABET.len() as u64;
            c
        })
        .collect()
}

/// `name-xxxxx` the way the API server expands `generateName`: the base is cut to 58 characters.
pub(crate) fn generate_name(base: &str) -> String {
    let base = if base.len() > 58 { &base[..58] } else { base };
    format!("{base}{}", random_suffix())
}

pub(crate) fn new_uid() -> String {
    let a = random();
    let b = random();
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        0x8000 | (b >> 48) & 0x3fff,
        b & 0xffff_ffff_ffff
    )
}
