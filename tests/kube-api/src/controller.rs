//! The Job controller and the garbage collector's part in deletes: a pod per Job attempt,
//! `backoffLimit`, `activeDeadlineSeconds`, the Job status with conditions in the Kubernetes
//! 1.31+ order (`SuccessCriteriaMet` then `Complete`; `FailureTarget` then `Failed`),
//! `ttlSecondsAfterFinished`, and delete propagation (Orphan, Background, Foreground).

use std::collections::BTreeMap;
use std::time::Duration;

use axum::http::StatusCode;
use k8s_openapi::api::batch::v1::{Job, JobCondition, JobStatus, UncountedTerminatedPods};
use k8s_openapi::api::core::v1::{Pod, PodSpec, PodStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::admission;
use crate::http::{ApiError, DeleteOptions};
use crate::kubelet::{self, Progress};
use crate::store::{generate_name, key, new_uid, now, Stored};
use crate::KubeApi;

/// The controller's handle on a Job it runs: set `cancel` when the Job is deleted.
pub(crate) struct JobRt {
    pub cancel: watch::Sender<bool>,
}

/// Stores an admitted Job (409 when the name is taken) and starts its controller.
pub(crate) fn create_job(
    api: &KubeApi,
    mut job: Job,
    generated: bool,
    dry_run: bool,
) -> Result<Job, ApiError> {
    let mut st = api.state();
    let ns = job.metadata.namespace.clone().unwrap_or_default();
    let mut name = job.metadata.name.clone().unwrap_or_default();
    let mut tries = 0;
    while st.get::<Job>(&ns, &name).is_some() {
        let base = job.metadata.generate_name.clone().unwrap_or_default();
        if !generated || tries == 10 {
            return Err(ApiError::already_exists(Job::QUALIFIED, &name));
        }
        name = generate_name(&base);
        tries += 1;
    }
    job.metadata.name = Some(name.clone());
    let uid = new_uid();
    admission::default_job(&mut job, &uid);
    if dry_run {
        return Ok(job);
    }
    let job = st.create(job);
    let (cancel, cancelled) = watch::channel(false);
    st.job_rt.insert(key(&ns, &name), JobRt { cancel });
    drop(st);
    tokio::spawn(run_job(api.clone(), ns, name, uid, cancelled));
    Ok(job)
}

fn condition(type_: &str, reason: &str, message: &str) -> JobCondition {
    let t = now();
    JobCondition {
        type_: type_.into(),
        status: "True".into(),
        reason: Some(reason.into()),
        message: Some(message.into()),
        last_probe_time: Some(t.clone()),
        last_transition_time: Some(t),
    }
}

enum Outcome {
    Succeeded,
    BackoffLimitExceeded,
    DeadlineExceeded { pod: String },
}

enum Step {
    Cancelled,
    Deadline,
    Pod(Progress),
}

async fn cancelled(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|c| *c).await;
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

async fn next_progress(rx: &mut watch::Receiver<Progress>) -> Progress {
    if rx.changed().await.is_err() {
        return match rx.borrow().clone() {
            Progress::Ended(code) => Progress::Ended(code),
            _ => Progress::Gone,
        };
    }
    rx.borrow_and_update().clone()
}

struct JobCtl {
    api: KubeApi,
    ns: String,
    name: String,
    uid: String,
}

impl JobCtl {
    fn status(&self, f: impl FnOnce(&mut JobStatus)) -> Option<Job> {
        self.api
            .state()
            .update::<Job>(&self.ns, &self.name, Some(&self.uid), |j| {
                f(j.status.get_or_insert_with(Default::default))
            })
    }

    /// Creates the next pod of the Job from its template; `None` when the Job is gone.
    fn create_pod(&self) -> Option<(String, watch::Receiver<Progress>)> {
        let mut st = self.api.state();
        let job = st.get::<Job>(&self.ns, &self.name)?.clone();
        if job.metadata.uid.as_deref() != Some(&self.uid) {
            return None;
        }
        let template = job.spec.clone().unwrap_or_default().template;
        let tmeta = template.metadata.unwrap_or_default();
        let base = format!("{}-", self.name);
        let mut pod_name = generate_name(&base);
        while st.get::<Pod>(&self.ns, &pod_name).is_some() {
            pod_name = generate_name(&base);
        }
        let mut spec = template.spec.unwrap_or_else(PodSpec::default);
        spec.service_account_name
            .get_or_insert_with(|| "default".into());
        spec.enable_service_links.get_or_insert(true);
        spec.priority.get_or_insert(0);
        spec.preemption_policy
            .get_or_insert_with(|| "PreemptLowerPriority".into());
        let pod = Pod {
            metadata: ObjectMeta {
                name: Some(pod_name.clone()),
                generate_name: Some(base),
                namespace: Some(self.ns.clone()),
                uid: Some(new_uid()),
                creation_timestamp: Some(now()),
                labels: Some(tmeta.labels.unwrap_or_else(BTreeMap::new)),
                annotations: tmeta.annotations,
                owner_references: Some(vec![OwnerReference {
                    api_version: "batch/v1".into(),
                    kind: "Job".into(),
                    name: self.name.clone(),
                    uid: self.uid.clone(),
                    controller: Some(true),
                    block_owner_deletion: Some(true),
                }]),
                ..Default::default()
            },
            spec: Some(spec),
            status: Some(PodStatus {
                phase: Some("Pending".into()),
                qos_class: Some("BestEffort".into()),
                ..Default::default()
            }),
        };
        let pod = st.create(pod);
        let progress = kubelet::start(&self.api, &mut st, &pod);
        Some((pod_name, progress))
    }
}

/// One Job, from its first pod to its final condition and its TTL.
async fn run_job(
    api: KubeApi,
    ns: String,
    name: String,
    uid: String,
    mut cancel: watch::Receiver<bool>,
) {
    let Some(job) = api.state().get::<Job>(&ns, &name).cloned() else {
        return;
    };
    let spec = job.spec.clone().unwrap_or_default();
    if spec.suspend == Some(true) {
        return;
    }
    let ctl = JobCtl { api, ns, name, uid };
    let backoff_limit = spec.backoff_limit.unwrap_or(6);
    let deadline = spec
        .active_deadline_seconds
        .map(|s| Instant::now() + Duration::from_secs(s.max(0) as u64));
    let mut failed = 0;
    let mut first = true;
    let outcome = 'attempts: loop {
        let Some((pod, mut progress)) = ctl.create_pod() else {
            return;
        };
        ctl.status(|s| {
            if first {
                s.start_time = Some(now());
                s.uncounted_terminated_pods = Some(UncountedTerminatedPods::default());
            }
            s.active = Some(1);
            s.ready = Some(0);
            s.terminating = Some(0);
        });
        first = false;
        let ended = loop {
            let step = tokio::select! {
                _ = cancelled(&mut cancel) => Step::Cancelled,
                _ = sleep_until(deadline) => Step::Deadline,
                p = next_progress(&mut progress) => Step::Pod(p),
            };
            match step {
                Step::Cancelled => return,
                Step::Deadline => break 'attempts Outcome::DeadlineExceeded { pod },
                Step::Pod(Progress::Pending) => {}
                Step::Pod(Progress::Running) => {
                    ctl.status(|s| s.ready = Some(1));
                }
                Step::Pod(Progress::Ended(code)) => break Some(code),
                Step::Pod(Progress::Gone) => break None,
            }
        };
        if ended == Some(0) {
            break Outcome::Succeeded;
        }
        failed += 1;
        if failed > backoff_limit {
            break Outcome::BackoffLimitExceeded;
        }
        ctl.status(|s| {
            s.failed = Some(failed);
            s.active = Some(0);
            s.ready = Some(0);
        });
    };

    match outcome {
        Outcome::Succeeded => {
            const MSG: &str = "Reached expected number of succeeded pods";
            ctl.status(|s| {
                s.active = Some(0);
                s.ready = Some(0);
                s.succeeded = Some(1);
                push_condition(
                    s,
                    condition("SuccessCriteriaMet", "CompletionsReached", MSG),
                );
            });
            ctl.status(|s| {
                s.completion_time = Some(now());
                push_condition(s, condition("Complete", "CompletionsReached", MSG));
            });
        }
        Outcome::BackoffLimitExceeded => {
            const MSG: &str = "Job has reached the specified backoff limit";
            ctl.status(|s| {
                s.active = Some(0);
                s.ready = Some(0);
                s.failed = Some(failed);
                push_condition(s, condition("FailureTarget", "BackoffLimitExceeded", MSG));
            });
            ctl.status(|s| push_condition(s, condition("Failed", "BackoffLimitExceeded", MSG)));
        }
        Outcome::DeadlineExceeded { pod } => {
            const MSG: &str = "Job was active longer than specified deadline";
            ctl.status(|s| push_condition(s, condition("FailureTarget", "DeadlineExceeded", MSG)));
            // The active pod is deleted: the kubelet kills its container, then it goes away.
            let gone = {
                let mut st = ctl.api.state();
                kubelet::delete_pod(&ctl.api, &mut st, &ctl.ns, &pod);
                st.pod_rt
                    .get(&key(&ctl.ns, &pod))
                    .map(|rt| rt.removed.clone())
            };
            if let Some(mut gone) = gone {
                let _ = tokio::time::timeout(Duration::from_secs(10), gone.wait_for(|g| *g)).await;
            }
            ctl.status(|s| {
                s.active = Some(0);
                s.ready = Some(0);
                s.failed = Some(failed + 1);
                push_condition(s, condition("Failed", "DeadlineExceeded", MSG));
            });
        }
    }

    if let Some(ttl) = spec.ttl_seconds_after_finished {
        tokio::select! {
            _ = cancelled(&mut cancel) => {}
            _ = tokio::time::sleep(Duration::from_secs(ttl.max(0) as u64)) => {
                let opts = DeleteOptions {
                    propagation: Some("Background".into()),
                    uid: Some(ctl.uid.clone()),
                    resource_version: None,
                    dry_run: false,
                };
                let _ = delete_job(&ctl.api, &ctl.ns, &ctl.name, &opts);
            }
        }
    }
}

fn push_condition(s: &mut JobStatus, c: JobCondition) {
    s.conditions.get_or_insert_with(Vec::new).push(c);
}

/// Checks DeleteOptions preconditions against an object.
pub(crate) fn check_preconditions<T: Stored>(
    obj: &T,
    opts: &DeleteOptions,
) -> Result<(), ApiError> {
    let meta = obj.metadata();
    let name = meta.name.clone().unwrap_or_default();
    if let Some(uid) = &opts.uid {
        let have = meta.uid.clone().unwrap_or_default();
        if *uid != have {
            return Err(ApiError::conflict(
                T::QUALIFIED,
                &name,
                format!(
                    "Precondition failed: UID in precondition: {uid}, UID in object meta: {have}"
                ),
            ));
        }
    }
    if let Some(rv) = &opts.resource_version {
        let have = meta.resource_version.clone().unwrap_or_default();
        if *rv != have {
            return Err(ApiError::conflict(
                T::QUALIFIED,
                &name,
                format!(
                    "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {have}"
                ),
            ));
        }
    }
    Ok(())
}

/// Deletes a Job with a propagation policy (`Orphan` when none is given, the `batch/v1`
/// default): Orphan leaves its pods running and strips their owner reference; Background
/// removes the Job at once and deletes its pods (killing their processes); Foreground deletes
/// the pods first and removes the Job (marked with a deletionTimestamp and the
/// `foregroundDeletion` finalizer meanwhile) once they are gone.
pub(crate) fn delete_job(
    api: &KubeApi,
    ns: &str,
    name: &str,
    opts: &DeleteOptions,
) -> Result<(StatusCode, Job), ApiError> {
    let mut st = api.state();
    let job = st
        .get::<Job>(ns, name)
        .cloned()
        .ok_or_else(|| ApiError::not_found(Job::QUALIFIED, name))?;
    check_preconditions(&job, opts)?;
    if opts.dry_run {
        return Ok((StatusCode::OK, job));
    }
    let uid = job.metadata.uid.clone().unwrap_or_default();
    if let Some(rt) = st.job_rt.remove(&key(ns, name)) {
        rt.cancel.send_replace(true);
    }
    let owned: Vec<String> = st
        .pods
        .iter()
        .filter(|((pns, _), p)| {
            pns == ns
                && p.metadata
                    .owner_references
                    .iter()
                    .flatten()
                    .any(|r| r.uid == uid)
        })
        .map(|((_, n), _)| n.clone())
        .collect();
    match opts.propagation.as_deref().unwrap_or("Orphan") {
        "Background" => {
            let job = st.remove::<Job>(ns, name, Some(&uid)).unwrap_or(job);
            for pod in &owned {
                kubelet::delete_pod(api, &mut st, ns, pod);
            }
            Ok((StatusCode::OK, job))
        }
        "Foreground" => {
            let job = st
                .update::<Job>(ns, name, Some(&uid), |j| {
                    j.metadata.deletion_timestamp = Some(now());
                    j.metadata.deletion_grace_period_seconds = Some(0);
                    j.metadata
                        .finalizers
                        .get_or_insert_with(Vec::new)
                        .push("foregroundDeletion".into());
                })
                .unwrap_or(job);
            let mut removed = Vec::new();
            for pod in &owned {
                kubelet::delete_pod(api, &mut st, ns, pod);
                if let Some(rt) = st.pod_rt.get(&key(ns, pod)) {
                    removed.push(rt.removed.clone());
                }
            }
            let (api, ns, name) = (api.clone(), ns.to_string(), name.to_string());
            tokio::spawn(async move {
                for mut r in removed {
                    let _ = tokio::time::timeout(Duration::from_secs(10), r.wait_for(|g| *g)).await;
                }
                api.state().remove::<Job>(&ns, &name, Some(&uid));
            });
            Ok((StatusCode::ACCEPTED, job))
        }
        _ => {
            for pod in &owned {
                st.update::<Pod>(ns, pod, None, |p| {
                    if let Some(refs) = &mut p.metadata.owner_references {
                        refs.retain(|r| r.uid != uid);
                    }
                });
            }
            let job = st.remove::<Job>(ns, name, Some(&uid)).unwrap_or(job);
            Ok((StatusCode::OK, job))
        }
    }
}
