//! The kubelet: runs each pod's first container as a process on this machine (`command` +
//! `args` with `$(VAR)` expansion, the container's env with Secret references resolved, a
//! process group of its own, stdout and stderr captured per line with a timestamp), or follows
//! the script for its image (pull failure, hang, unschedulable). Reports the pod through Pending,
//! Running, Succeeded/Failed; kills the process group when the pod is deleted; serves
//! `pods/{name}/log`.

use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::process::Stdio;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::header;
use axum::response::Response;
use k8s_openapi::api::core::v1::{
    Container, ContainerState, ContainerStateRunning, ContainerStateTerminated,
    ContainerStateWaiting, ContainerStatus, Pod, PodCondition, PodIP,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use tokio::io::AsyncBufReadExt;
use tokio::sync::watch;

use crate::controller::check_preconditions;
use crate::http::{is_true, ApiError, DeleteOptions};
use crate::store::{key, now, State, Stored};
use crate::{Behaviour, KubeApi};

const NODE: &str = "chainr-test-node";
const NODE_IP: &str = "127.0.0.1";

/// How far a pod has come, as its Job controller needs to know.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Progress {
    Pending,
    Running,
    /// The container ended with this exit code.
    Ended(i32),
    /// The pod went away (deleted) before its container ended by itself.
    Gone,
}

/// The kubelet's handle on a pod it runs.
pub(crate) struct PodRt {
    /// Set to kill the container (the pod is being deleted).
    pub cancel: watch::Sender<bool>,
    pub progress: watch::Receiver<Progress>,
    pub logs: Arc<watch::Sender<LogState>>,
    /// Becomes true once the pod is removed from the store.
    pub removed: watch::Receiver<bool>,
    removed_tx: watch::Sender<bool>,
}

#[derive(Default)]
pub(crate) struct LogState {
    pub lines: Vec<LogLine>,
    /// The container has ended: no more lines will come.
    pub closed: bool,
}

pub(crate) struct LogLine {
    pub ts: Timestamp,
    pub text: String,
}

impl LogState {
    pub fn text(&self) -> String {
        self.lines.iter().map(|l| format!("{}\n", l.text)).collect()
    }
}

/// Registers a new pod and starts its kubelet task.
pub(crate) fn start(api: &KubeApi, st: &mut State, pod: &Pod) -> watch::Receiver<Progress> {
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    let name = pod.metadata.name.clone().unwrap_or_default();
    let (cancel, cancelled) = watch::channel(false);
    let (progress_tx, progress) = watch::channel(Progress::Pending);
    let (removed_tx, removed) = watch::channel(false);
    let logs = Arc::new(watch::channel(LogState::default()).0);
    st.pod_rt.insert(
        key(&ns, &name),
        PodRt {
            cancel,
            progress: progress.clone(),
            logs: logs.clone(),
            removed,
            removed_tx,
        },
    );
    let kubelet = Kubelet {
        api: api.clone(),
        uid: pod.metadata.uid.clone().unwrap_or_default(),
        ns,
        name,
        cancelled,
        progress: progress_tx,
        logs,
    };
    tokio::spawn(kubelet.run());
    progress
}

/// Deletes a pod the way the API server and kubelet do: the pod gets a deletionTimestamp, the
/// kubelet kills its container, then the pod is removed. Returns the pod as marked for deletion.
pub(crate) fn delete_pod(api: &KubeApi, st: &mut State, ns: &str, name: &str) -> Option<Pod> {
    let pod = st.get::<Pod>(ns, name)?.clone();
    if pod.metadata.deletion_timestamp.is_some() {
        return Some(pod);
    }
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let grace = pod
        .spec
        .as_ref()
        .and_then(|s| s.termination_grace_period_seconds)
        .unwrap_or(30);
    let pod = st.update::<Pod>(ns, name, Some(&uid), |p| {
        let at = Timestamp::now()
            .checked_add(SignedDuration::from_secs(grace))
            .unwrap_or_else(|_| Timestamp::now());
        p.metadata.deletion_timestamp = Some(Time(at));
        p.metadata.deletion_grace_period_seconds = Some(grace);
    })?;
    let progress = st.pod_rt.get(&key(ns, name)).map(|rt| {
        rt.cancel.send_replace(true);
        rt.progress.clone()
    });
    let (api, ns, name) = (api.clone(), ns.to_string(), name.to_string());
    tokio::spawn(async move {
        if let Some(mut p) = progress {
            let done = p.wait_for(|p| matches!(p, Progress::Ended(_) | Progress::Gone));
            let _ = tokio::time::timeout(Duration::from_secs(10), done).await;
        }
        let mut st = api.state();
        if st.remove::<Pod>(&ns, &name, Some(&uid)).is_some() {
            if let Some(rt) = st.pod_rt.remove(&key(&ns, &name)) {
                rt.removed_tx.send_replace(true);
            }
        }
    });
    Some(pod)
}

/// `DELETE .../pods/{name}`.
pub(crate) fn delete_pod_request(
    api: &KubeApi,
    ns: &str,
    name: &str,
    opts: &DeleteOptions,
) -> Result<Pod, ApiError> {
    let mut st = api.state();
    let pod = st
        .get::<Pod>(ns, name)
        .cloned()
        .ok_or_else(|| ApiError::not_found(Pod::QUALIFIED, name))?;
    check_preconditions(&pod, opts)?;
    if opts.dry_run {
        return Ok(pod);
    }
    Ok(delete_pod(api, &mut st, ns, name).unwrap_or(pod))
}

struct Kubelet {
    api: KubeApi,
    ns: String,
    name: String,
    uid: String,
    cancelled: watch::Receiver<bool>,
    progress: watch::Sender<Progress>,
    logs: Arc<watch::Sender<LogState>>,
}

/// Kills a container's process group when dropped (the task was dropped or ended early).
struct ProcessGroup {
    pgid: i32,
    api: KubeApi,
    alive: bool,
}

impl ProcessGroup {
    fn kill(&mut self) {
        if self.alive {
            // SAFETY: kill(2) with a negative pid signals a process group; no memory involved.
            unsafe {
                libc::kill(-self.pgid, libc::SIGKILL);
            }
            self.alive = false;
            self.api.inner.processes.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        self.kill();
    }
}

fn condition(
    type_: &str,
    status: bool,
    reason: Option<&str>,
    message: Option<String>,
) -> PodCondition {
    PodCondition {
        type_: type_.into(),
        status: if status { "True" } else { "False" }.into(),
        reason: reason.map(str::to_string),
        message,
        last_transition_time: Some(now()),
        ..Default::default()
    }
}

/// A container's status as the kubelet reports it.
fn container_status(
    image: &str,
    name: &str,
    state: ContainerState,
    id: Option<String>,
) -> ContainerStatus {
    let running = state.running.is_some();
    ContainerStatus {
        name: name.into(),
        image: image.into(),
        image_id: if id.is_some() {
            format!("{image}@sha256:{}", "0".repeat(64))
        } else {
            String::new()
        },
        container_id: id,
        ready: running,
        restart_count: 0,
        started: Some(running),
        state: Some(state),
        ..Default::default()
    }
}

/// Replaces a pod's conditions, keeping the transition time of those whose status is unchanged.
fn set_conditions(s: &mut k8s_openapi::api::core::v1::PodStatus, mut new: Vec<PodCondition>) {
    for c in &mut new {
        let old = s
            .conditions
            .iter()
            .flatten()
            .find(|o| o.type_ == c.type_ && o.status == c.status);
        if let Some(old) = old {
            c.last_transition_time = old.last_transition_time.clone();
        }
    }
    s.conditions = Some(new);
}

fn waiting(reason: &str, message: Option<String>) -> ContainerState {
    ContainerState {
        waiting: Some(ContainerStateWaiting {
            reason: Some(reason.into()),
            message,
        }),
        ..Default::default()
    }
}

/// Go's time.Time formatted as Kubernetes writes log timestamps: RFC 3339 with nine digits.
pub(crate) fn log_timestamp(ts: Timestamp) -> String {
    let secs = k8s_openapi::jiff::fmt::strtime::format("%Y-%m-%dT%H:%M:%S", ts).unwrap_or_default();
    format!("{secs}.{:09}Z", ts.subsec_nanosecond())
}

impl Kubelet {
    fn update(&self, f: impl FnOnce(&mut Pod)) -> Option<Pod> {
        self.api
            .state()
            .update::<Pod>(&self.ns, &self.name, Some(&self.uid), f)
    }

    /// Sets the state of the (first) container.
    fn container(&self, image: &str, container: &str, state: ContainerState) {
        self.update(|p| {
            let status = p.status.get_or_insert_with(Default::default);
            status.container_statuses = Some(vec![container_status(image, container, state, None)]);
        });
    }

    async fn wait_cancel(&mut self) {
        let _ = self.cancelled.wait_for(|c| *c).await;
    }

    /// Sleeps; true when cancelled meanwhile.
    async fn sleep_or_cancel(&mut self, d: Duration) -> bool {
        tokio::select! {
            _ = tokio::time::sleep(d) => false,
            _ = self.cancelled.wait_for(|c| *c) => true,
        }
    }

    async fn run(mut self) {
        let end = self.lifecycle().await;
        self.logs.send_modify(|l| l.closed = true);
        self.progress.send_replace(match end {
            Some(code) => Progress::Ended(code),
            None => Progress::Gone,
        });
    }

    /// The pod's life; the exit code of its container, or `None` when it never ran to the end.
    async fn lifecycle(&mut self) -> Option<i32> {
        tokio::task::yield_now().await;
        let (pod, behaviour, backoff_after) = {
            let st = self.api.state();
            let pod = st.get::<Pod>(&self.ns, &self.name)?.clone();
            let image = pod
                .spec
                .as_ref()
                .and_then(|s| s.containers.first())
                .and_then(|c| c.image.clone())
                .unwrap_or_default();
            let b = st.behaviour(&image);
            (pod, b, st.pull_backoff_after)
        };
        if pod.metadata.uid.as_deref() != Some(&self.uid) {
            return None;
        }
        let spec = pod.spec.clone().unwrap_or_default();
        let Some(c) = spec.containers.first().cloned() else {
            self.wait_cancel().await;
            return None;
        };
        let image = c.image.clone().unwrap_or_default();

        if behaviour == Behaviour::Unschedulable {
            self.update(|p| {
                let s = p.status.get_or_insert_with(Default::default);
                set_conditions(s, vec![condition(
                    "PodScheduled",
                    false,
                    Some("Unschedulable"),
                    Some("0/1 nodes are available: 1 Insufficient cpu. preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod.".into()),
                )]);
            });
            self.wait_cancel().await;
            return None;
        }

        let not_ready = format!("containers with unready status: [{}]", c.name);
        self.update(|p| {
            p.spec.get_or_insert_with(Default::default).node_name = Some(NODE.into());
            let s = p.status.get_or_insert_with(Default::default);
            s.phase = Some("Pending".into());
            s.host_ip = Some(NODE_IP.into());
            s.start_time = Some(now());
            set_conditions(
                s,
                vec![
                    condition("PodReadyToStartContainers", false, None, None),
                    condition("Initialized", true, None, None),
                    condition(
                        "Ready",
                        false,
                        Some("ContainersNotReady"),
                        Some(not_ready.clone()),
                    ),
                    condition(
                        "ContainersReady",
                        false,
                        Some("ContainersNotReady"),
                        Some(not_ready.clone()),
                    ),
                    condition("PodScheduled", true, None, None),
                ],
            );
            let creating = waiting("ContainerCreating", None);
            s.container_statuses = Some(vec![container_status(&image, &c.name, creating, None)]);
        });

        match behaviour {
            Behaviour::PullFail => {
                let pull = format!(
                    "failed to pull and unpack image \"{image}\": failed to resolve reference \"{image}\": not found"
                );
                self.container(&image, &c.name, waiting("ErrImagePull", Some(pull)));
                if self.sleep_or_cancel(backoff_after).await {
                    return None;
                }
                let backoff = format!("Back-off pulling image \"{image}\"");
                self.container(&image, &c.name, waiting("ImagePullBackOff", Some(backoff)));
                self.wait_cancel().await;
                return None;
            }
            Behaviour::InvalidImageName => {
                let msg = format!(
                    "Failed to apply default image tag \"{image}\": couldn't parse image name \"{image}\": invalid reference format"
                );
                self.container(&image, &c.name, waiting("InvalidImageName", Some(msg)));
                self.wait_cancel().await;
                return None;
            }
            Behaviour::Hang => {
                self.wait_cancel().await;
                return None;
            }
            Behaviour::Run | Behaviour::Unschedulable => {}
        }

        let mut shown = None;
        let env = loop {
            let res = resolve_env(&self.api.state(), &pod, &c);
            match res {
                Ok(env) => break env,
                Err(msg) => {
                    if shown.as_ref() != Some(&msg) {
                        let state = waiting("CreateContainerConfigError", Some(msg.clone()));
                        self.container(&image, &c.name, state);
                        shown = Some(msg);
                    }
                    if self.sleep_or_cancel(Duration::from_millis(100)).await {
                        return None;
                    }
                }
            }
        };
        if *self.cancelled.borrow() {
            return None;
        }
        self.execute(&pod, &c, &image, env).await
    }

    /// Runs the container's process to its end (or until the pod is deleted).
    async fn execute(
        &mut self,
        pod: &Pod,
        c: &Container,
        image: &str,
        env: Vec<(String, String)>,
    ) -> Option<i32> {
        let lookup = |name: &str| {
            env.iter()
                .rev()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        };
        let argv: Vec<String> = c
            .command
            .iter()
            .flatten()
            .chain(c.args.iter().flatten())
            .map(|a| expand(a, lookup))
            .collect();
        let started_at = now();
        let spawned = spawn(&argv, pod, &env);
        let (mut child, pgid, reader) = match spawned {
            Ok(s) => s,
            Err(e) => {
                let t = ContainerStateTerminated {
                    exit_code: 128,
                    reason: Some("StartError".into()),
                    message: Some(e),
                    started_at: Some(Time(Timestamp::UNIX_EPOCH)),
                    finished_at: Some(now()),
                    ..Default::default()
                };
                self.terminated(image, &c.name, t);
                return Some(128);
            }
        };
        self.api.inner.processes.fetch_add(1, Ordering::SeqCst);
        let mut group = ProcessGroup {
            pgid,
            api: self.api.clone(),
            alive: true,
        };
        let container_id = format!("chainr://{pgid}");
        let reader = tokio::spawn(read_lines(reader, self.logs.clone()));

        let running = ContainerState {
            running: Some(ContainerStateRunning {
                started_at: Some(started_at.clone()),
            }),
            ..Default::default()
        };
        self.update(|p| {
            let s = p.status.get_or_insert_with(Default::default);
            s.phase = Some("Running".into());
            s.pod_ip = Some(NODE_IP.into());
            s.pod_ips = Some(vec![PodIP { ip: NODE_IP.into() }]);
            set_conditions(
                s,
                vec![
                    condition("PodReadyToStartContainers", true, None, None),
                    condition("Initialized", true, None, None),
                    condition("Ready", true, None, None),
                    condition("ContainersReady", true, None, None),
                    condition("PodScheduled", true, None, None),
                ],
            );
            let cs = container_status(image, &c.name, running, Some(container_id.clone()));
            s.container_statuses = Some(vec![cs]);
        });
        self.progress.send_replace(Progress::Running);

        let status = tokio::select! {
            s = child.wait() => s.ok(),
            _ = self.cancelled.wait_for(|c| *c) => None,
        };
        // The container ends with its main process: whatever it left behind goes too.
        group.kill();
        let exit_code = match status {
            Some(s) => exit_code(s),
            None => {
                let _ = child.wait().await;
                128 + libc::SIGKILL
            }
        };
        if tokio::time::timeout(Duration::from_secs(2), reader)
            .await
            .is_err()
        {
            // A process outside the group still holds the pipe: stop reading.
        }
        self.logs.send_modify(|l| l.closed = true);
        let t = ContainerStateTerminated {
            exit_code,
            reason: Some(if exit_code == 0 { "Completed" } else { "Error" }.into()),
            started_at: Some(started_at),
            finished_at: Some(now()),
            container_id: Some(container_id),
            ..Default::default()
        };
        self.terminated(image, &c.name, t);
        Some(exit_code)
    }

    fn terminated(&self, image: &str, container: &str, t: ContainerStateTerminated) {
        let ok = t.exit_code == 0;
        let id = t.container_id.clone();
        let state = ContainerState {
            terminated: Some(t),
            ..Default::default()
        };
        self.update(|p| {
            let s = p.status.get_or_insert_with(Default::default);
            s.phase = Some(if ok { "Succeeded" } else { "Failed" }.into());
            set_conditions(
                s,
                vec![
                    condition("PodReadyToStartContainers", false, None, None),
                    condition("Initialized", true, Some("PodCompleted"), None),
                    condition("Ready", false, Some("PodCompleted"), None),
                    condition("ContainersReady", false, Some("PodCompleted"), None),
                    condition("PodScheduled", true, None, None),
                ],
            );
            s.container_statuses = Some(vec![container_status(image, container, state, id)]);
        });
    }
}

fn exit_code(s: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    s.code().unwrap_or_else(|| 128 + s.signal().unwrap_or(0))
}

type Spawned = (tokio::process::Child, i32, tokio::net::unix::pipe::Receiver);

/// Starts `argv` in a process group of its own, stdout and stderr into one pipe, with only the
/// container's environment (plus `PATH`, `HOME` and `HOSTNAME`, as an image would give).
fn spawn(argv: &[String], pod: &Pod, env: &[(String, String)]) -> Result<Spawned, String> {
    let Some((program, args)) = argv.split_first() else {
        return Err(
            "no command specified: the test kubelet does not know image entrypoints".into(),
        );
    };
    let (reader, writer) = std::io::pipe().map_err(|e| e.to_string())?;
    let writer2 = writer.try_clone().map_err(|e| e.to_string())?;
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .env_clear()
        .env(
            "PATH",
            std::env::var("PATH").unwrap_or_else(|_| {
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into()
            }),
        )
        .env(
            "HOME",
            std::env::var("HOME").unwrap_or_else(|_| "/root".into()),
        )
        .env("HOSTNAME", pod.metadata.name.clone().unwrap_or_default())
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::from(writer))
        .stderr(Stdio::from(writer2))
        .process_group(0)
        .kill_on_drop(true);
    let child = cmd
        .spawn()
        .map_err(|e| format!("failed to create containerd task: exec: \"{program}\": {e}"))?;
    drop(cmd);
    let pgid = child
        .id()
        .map(|p| p as i32)
        .ok_or("the process ended at once")?;
    let reader = tokio::net::unix::pipe::Receiver::from_owned_fd(OwnedFd::from(reader))
        .map_err(|e| e.to_string())?;
    Ok((child, pgid, reader))
}

async fn read_lines(reader: tokio::net::unix::pipe::Receiver, logs: Arc<watch::Sender<LogState>>) {
    let mut r = tokio::io::BufReader::new(reader);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match r.read_until(b'\n', &mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                if buf.last() == Some(&b'\n') {
                    buf.pop();
                }
                let text = String::from_utf8_lossy(&buf).into_owned();
                let ts = Timestamp::now();
                logs.send_modify(|l| l.lines.push(LogLine { ts, text }));
            }
        }
    }
}

/// The container's environment: `envFrom` Secrets, then `env` (literal values with `$(VAR)`
/// expansion over the variables before them, Secret keys, pod fields). A missing Secret or key
/// is the error the kubelet reports as `CreateContainerConfigError`.
fn resolve_env(st: &State, pod: &Pod, c: &Container) -> Result<Vec<(String, String)>, String> {
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    let mut out: Vec<(String, String)> = Vec::new();
    let set = |out: &mut Vec<(String, String)>, k: String, v: String| {
        out.retain(|(x, _)| *x != k);
        out.push((k, v));
    };
    for from in c.env_from.iter().flatten() {
        let prefix = from.prefix.clone().unwrap_or_default();
        if let Some(s) = &from.secret_ref {
            match st.secrets.get(&key(&ns, &s.name)) {
                Some(keys) => {
                    for (k, v) in keys {
                        set(&mut out, format!("{prefix}{k}"), v.clone());
                    }
                }
                None if s.optional == Some(true) => {}
                None => return Err(format!("secret \"{}\" not found", s.name)),
            }
        }
        if let Some(cm) = &from.config_map_ref {
            if cm.optional != Some(true) {
                return Err(format!("configmap \"{}\" not found", cm.name));
            }
        }
    }
    for e in c.env.iter().flatten() {
        let value = if let Some(v) = &e.value {
            let defined = out.clone();
            expand(v, |name| {
                defined
                    .iter()
                    .rev()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v.clone())
            })
        } else if let Some(from) = &e.value_from {
            if let Some(sk) = &from.secret_key_ref {
                let optional = sk.optional == Some(true);
                match st.secrets.get(&key(&ns, &sk.name)) {
                    None if optional => continue,
                    None => return Err(format!("secret \"{}\" not found", sk.name)),
                    Some(keys) => match keys.get(&sk.key) {
                        Some(v) => v.clone(),
                        None if optional => continue,
                        None => {
                            return Err(format!(
                                "couldn't find key {} in Secret {ns}/{}",
                                sk.key, sk.name
                            ))
                        }
                    },
                }
            } else if let Some(cm) = &from.config_map_key_ref {
                if cm.optional == Some(true) {
                    continue;
                }
                return Err(format!("configmap \"{}\" not found", cm.name));
            } else if let Some(f) = &from.field_ref {
                let meta = &pod.metadata;
                match f.field_path.as_str() {
                    "metadata.name" => meta.name.clone().unwrap_or_default(),
                    "metadata.namespace" => ns.clone(),
                    "metadata.uid" => meta.uid.clone().unwrap_or_default(),
                    "spec.nodeName" => NODE.into(),
                    "spec.serviceAccountName" => "default".into(),
                    "status.podIP" | "status.hostIP" => NODE_IP.into(),
                    path => path
                        .strip_prefix("metadata.labels['")
                        .and_then(|k| k.strip_suffix("']"))
                        .and_then(|k| meta.labels.as_ref()?.get(k).cloned())
                        .unwrap_or_default(),
                }
            } else {
                String::new()
            }
        } else {
            String::new()
        };
        set(&mut out, e.name.clone(), value);
    }
    Ok(out)
}

/// Kubernetes' expansion of `$(VAR)` in command, args and env values: a defined variable is
/// replaced, an undefined reference is left as it is, and `$$` is an escaped `$`.
pub(crate) fn expand(input: &str, lookup: impl Fn(&str) -> Option<String>) -> String {
    let bytes = input.as_bytes();
    let mut out = String::with_capacity(input.len());
    let mut checkpoint = 0;
    let mut cursor = 0;
    while cursor < bytes.len() {
        if bytes[cursor] == b'$' && cursor + 1 < bytes.len() {
            out.push_str(&input[checkpoint..cursor]);
            let rest = &input[cursor + 1..];
            let advance = match bytes[cursor + 1] {
                b'$' => {
                    out.push('$');
                    1
                }
                b'(' => match rest[1..].find(')') {
                    Some(i) => {
                        let name = &rest[1..1 + i];
                        match lookup(name) {
                            Some(v) => out.push_str(&v),
                            None => {
                                out.push_str("$(");
                                out.push_str(name);
                                out.push(')');
                            }
                        }
                        i + 2
                    }
                    None => {
                        out.push_str("$(");
                        1
                    }
                },
                _ => {
                    let ch = rest.chars().next().unwrap_or_default();
                    out.push('$');
                    out.push(ch);
                    ch.len_utf8()
                }
            };
            cursor += advance;
            checkpoint = cursor + 1;
        }
        cursor += 1;
    }
    out.push_str(&input[checkpoint.min(input.len())..]);
    out
}

/// `GET .../pods/{name}/log`: 400 while the container waits to start; otherwise its output
/// (`timestamps`, `sinceTime`, `sinceSeconds`, `tailLines`, `limitBytes`), followed until the
/// container ends when `follow` is set.
pub(crate) fn logs(
    api: &KubeApi,
    ns: &str,
    name: &str,
    q: &HashMap<String, String>,
) -> Result<Response, ApiError> {
    let st = api.state();
    let pod = st
        .get::<Pod>(ns, name)
        .ok_or_else(|| ApiError::not_found(Pod::QUALIFIED, name))?;
    let spec = pod.spec.clone().unwrap_or_default();
    let names: Vec<String> = spec.containers.iter().map(|c| c.name.clone()).collect();
    let container = match q.get("container") {
        Some(c) if names.contains(c) => c.clone(),
        Some(c) => {
            return Err(ApiError::bad_request(format!(
                "container {c} is not valid for pod {name}"
            )))
        }
        None if names.len() > 1 => {
            return Err(ApiError::bad_request(format!(
                "a container name must be specified for pod {name}, choose one of: [{}]",
                names.join(" ")
            )))
        }
        None => names.first().cloned().unwrap_or_default(),
    };
    if is_true(q.get("previous")) {
        return Err(ApiError::bad_request(format!(
            "previous terminated container \"{container}\" in pod \"{name}\" not found"
        )));
    }
    if spec.node_name.is_none() {
        return Err(ApiError::bad_request(format!(
            "pod {name} does not have a host assigned"
        )));
    }
    let state = pod
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.name == container))
        .and_then(|c| c.state.clone())
        .unwrap_or_default();
    if state.running.is_none() && state.terminated.is_none() {
        let reason = state
            .waiting
            .and_then(|w| w.reason)
            .unwrap_or_else(|| "ContainerCreating".into());
        let why = match reason.as_str() {
            "ErrImagePull" => "image can't be pulled".to_string(),
            "ImagePullBackOff" => "trying and failing to pull image".to_string(),
            _ => reason,
        };
        return Err(ApiError::bad_request(format!(
            "container \"{container}\" in pod \"{name}\" is waiting to start: {why}"
        )));
    }
    let Some(logs) = st.pod_rt.get(&key(ns, name)).map(|rt| rt.logs.clone()) else {
        return Ok(text_response(Body::empty()));
    };
    drop(st);

    let bad = |what: &str, v: &str| ApiError::bad_request(format!("invalid {what}: {v}"));
    let mut since: Option<Timestamp> = match q.get("sinceTime") {
        Some(v) => Some(v.parse().map_err(|_| bad("sinceTime", v))?),
        None => None,
    };
    if let Some(v) = q.get("sinceSeconds") {
        let secs: i64 = v.parse().map_err(|_| bad("sinceSeconds", v))?;
        let t = Timestamp::now()
            .checked_sub(SignedDuration::from_secs(secs))
            .map_err(|_| bad("sinceSeconds", v))?;
        since = Some(since.map_or(t, |s| s.max(t)));
    }
    let tail: Option<usize> = match q.get("tailLines") {
        Some(v) => Some(v.parse().map_err(|_| bad("tailLines", v))?),
        None => None,
    };
    let limit: Option<usize> = match q.get("limitBytes") {
        Some(v) => Some(v.parse().map_err(|_| bad("limitBytes", v))?),
        None => None,
    };
    let mut rx = logs.subscribe();
    let start = {
        let l = rx.borrow_and_update();
        let from = since.map_or(0, |s| l.lines.iter().take_while(|x| x.ts < s).count());
        match tail {
            Some(n) => from.max(l.lines.len().saturating_sub(n)),
            None => from,
        }
    };
    let cursor = LogCursor {
        rx,
        next: start,
        follow: is_true(q.get("follow")),
        timestamps: is_true(q.get("timestamps")),
        remaining: limit,
    };
    let stream = futures::stream::unfold(cursor, |mut c| async move {
        c.next_chunk()
            .await
            .map(|b| (Ok::<_, std::io::Error>(b), c))
    });
    Ok(text_response(Body::from_stream(stream)))
}

fn text_response(body: Body) -> Response {
    Response::builder()
        .header(header::CONTENT_TYPE, "text/plain")
        .body(body)
        .expect("response")
}

struct LogCursor {
    rx: watch::Receiver<LogState>,
    next: usize,
    follow: bool,
    timestamps: bool,
    remaining: Option<usize>,
}

impl LogCursor {
    /// The next piece of output; `None` at the end.
    async fn next_chunk(&mut self) -> Option<Bytes> {
        loop {
            if self.remaining == Some(0) {
                return None;
            }
            let (mut chunk, closed) = {
                let l = self.rx.borrow_and_update();
                let mut chunk = String::new();
                for line in &l.lines[self.next.min(l.lines.len())..] {
                    if self.timestamps {
                        chunk.push_str(&log_timestamp(line.ts));
                        chunk.push(' ');
                    }
                    chunk.push_str(&line.text);
                    chunk.push('\n');
                }
                self.next = l.lines.len();
                (chunk, l.closed)
            };
            if let Some(rem) = &mut self.remaining {
                if chunk.len() > *rem {
                    let mut cut = *rem;
                    while !chunk.is_char_boundary(cut) {
                        cut -= 1;
                    }
                    chunk.truncate(cut);
                }
                *rem -= chunk.len();
            }
            if !chunk.is_empty() {
                return Some(Bytes::from(chunk));
            }
            if closed || !self.follow {
                return None;
            }
            if self.rx.changed().await.is_err() {
                return None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "A" => Some("1".into()),
            "B" => Some("two".into()),
            _ => None,
        }
    }

    #[test]
    fn expansion_follows_kubernetes() {
        assert_eq!(expand("$(A)-$(B)", env), "1-two");
        assert_eq!(expand("$(C)", env), "$(C)");
        assert_eq!(expand("$$(A)", env), "$(A)");
        assert_eq!(expand("echo $$; $HOME $", env), "echo $; $HOME $");
        assert_eq!(expand("$(A", env), "$(A");
        assert_eq!(expand("é$é", env), "é$é");
        assert_eq!(expand("", env), "");
    }

    #[test]
    fn log_timestamps_have_nine_digits() {
        let ts: Timestamp = "2024-05-06T07:08:09.5Z".parse().unwrap();
        assert_eq!(log_timestamp(ts), "2024-05-06T07:08:09.500000000Z");
    }
}
