//! The Kubernetes executor: each attempt runs as a `batch/v1` Job (see `manifest`), watched
//! through one Job watcher and one Pod watcher per run (label `chainr.io/run`), which recover from
//! 410 Gone and dropped connections by re-listing. Outcomes come from the Job's conditions; pods
//! stuck waiting (image pull failures, unschedulable, missing secrets) error after a grace period;
//! logs are streamed from the pod once it has left Pending; cancel deletes what was created with
//! Background propagation. The scheduler is the same pure state machine as for local runs.

pub mod manifest;

use crate::local::{
    end_attempt, finally_env, log_file_name, record_decided, settle_status, Observer,
};
use crate::record::{Run, Status};
use crate::scheduler::{Action, AttemptEnd, JobId, Options, Scheduler};
use chainr_compiler::ir;
use futures::{AsyncBufReadExt, StreamExt, TryStreamExt};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, LogParams, PostParams};
use kube::runtime::{watcher, WatchStreamExt};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Waiting reasons that never resolve by themselves: reported as errored after the grace period.
const STUCK: [&str; 6] = [
    "ImagePullBackOff",
    "ErrImagePull",
    "InvalidImageName",
    "CreateContainerConfigError",
    "CreateContainerError",
    "Unschedulable",
];

#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    /// The IR names a job that is not in the pipeline (unvalidated IR).
    #[error(transparent)]
    UnknownJob(#[from] crate::scheduler::UnknownJob),
    /// The log directory could not be created.
    #[error("cannot create the log directory {path}: {source}")]
    Logs {
        path: String,
        source: std::io::Error,
    },
    /// The signal handler could not be installed.
    #[error("cannot handle signals: {0}")]
    Signals(std::io::Error),
}

#[derive(Clone, Debug)]
pub struct KubeOptions {
    pub run_id: String,
    pub namespace: String,
    pub concurrency: Option<usize>,
    pub logs_dir: PathBuf,
    pub handle_signals: bool,
    /// How long a pod may wait for a reason in `STUCK` before the attempt errors.
    pub waiting_grace: Duration,
    /// Seconds Kubernetes keeps a finished Job (`ttlSecondsAfterFinished`).
    pub ttl_after_finished: i32,
}

/// The Job manifests of the first attempt of every job, as `--dry-run` prints them.
pub fn manifests(
    pipeline: &ir::Pipeline,
    run_id: &str,
    namespace: &str,
    ttl_after_finished: i32,
) -> Vec<Job> {
    pipeline
        .jobs
        .iter()
        .map(|(name, spec)| {
            let mut job = manifest::job(
                spec,
                &manifest::Attempt {
                    run_id,
                    job_name: name,
                    attempt: 1,
                    extra_env: &[],
                    ttl_after_finished,
                },
            );
            job.metadata.namespace = Some(namespace.to_string());
            job
        })
        .collect()
}

enum Msg {
    Job(Box<Job>),
    JobDeleted(String),
    Pod(Box<Pod>),
    LogDone(String),
    Signal,
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    RetryDue(JobId),
    /// The pod of this Job has waited long enough.
    Stuck(u64),
    /// The Job ended; stop waiting for the rest of its log.
    LogGrace(u64),
    /// A deleted Job's deletion was not seen: end the attempt anyway.
    DeleteGrace(u64),
}

/// One running attempt.
struct Live {
    key: u64,
    job: JobId,
    attempt: u32,
    object: String,
    cancelled: bool,
    log_started: bool,
    log_done: bool,
    waiting: Option<String>,
    /// The container's exit code, from its pod.
    exit_code: Option<i32>,
    /// The end, once known, kept until the log is complete.
    ended: Option<(AttemptEnd, Status, Option<i32>, Option<String>)>,
    output: Arc<Mutex<Vec<u8>>>,
}

impl Live {
    /// The attempt can be reported: it ended, its log is complete, and a failure knows its exit
    /// code (the Job's and the pod's updates arrive on separate watches, in either order).
    fn ready(&self) -> bool {
        match &self.ended {
            None => false,
            Some((AttemptEnd::Failed, _, None, _)) => false,
            // Until then, a timer ends the wait (a pod that never ran has no log to wait for).
            Some(_) => self.log_done,
        }
    }
}

/// Runs a pipeline on Kubernetes through `client` and returns what happened.
pub async fn run(
    client: kube::Client,
    pipeline: &ir::Pipeline,
    options: &KubeOptions,
    observer: &mut dyn Observer,
) -> Result<Run, KubeError> {
    let mut scheduler = Scheduler::new(
        pipeline,
        Options {
            concurrency: options.concurrency,
        },
    )?;
    std::fs::create_dir_all(&options.logs_dir).map_err(|source| KubeError::Logs {
        path: options.logs_dir.display().to_string(),
        source,
    })?;
    let names: Vec<&str> = pipeline.jobs.keys().map(String::as_str).collect();
    let specs: Vec<&ir::Job> = pipeline.jobs.values().collect();
    let mut record = Run::starting(options.run_id.clone(), pipeline);

    let jobs: Api<Job> = Api::namespaced(client.clone(), &options.namespace);
    let pods: Api<Pod> = Api::namespaced(client.clone(), &options.namespace);
    let selector = format!("{}={}", manifest::RUN, options.run_id);
    let (tx, mut rx) = mpsc::unbounded_channel::<Msg>();
    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(watch_jobs(jobs.clone(), selector.clone(), tx.clone()));
    tasks.spawn(watch_pods(pods.clone(), selector, tx.clone()));
    if options.handle_signals {
        let mut interrupt =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
                .map_err(KubeError::Signals)?;
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .map_err(KubeError::Signals)?;
        let tx = tx.clone();
        tasks.spawn(async move {
            loop {
                tokio::select! {
                    _ = interrupt.recv() => {}
                    _ = terminate.recv() => {}
                }
                if tx.send(Msg::Signal).is_err() {
                    return;
                }
            }
        });
    }

    let mut live: HashMap<String, Live> = HashMap::new();
    let mut by_key: HashMap<u64, String> = HashMap::new();
    let mut next_key = 0u64;
    let mut timers: BTreeMap<(Instant, u64), Timer> = BTreeMap::new();
    let mut timer_seq = 0u64;
    let mut add_timer = |timers: &mut BTreeMap<(Instant, u64), Timer>, at: Instant, t: Timer| {
        timer_seq += 1;
        timers.insert((at, timer_seq), t);
    };
    let mut actions = Vec::new();
    let mut outcome = None;
    let mut cancels = 0;
    scheduler.start(&mut actions);
    loop {
        while !actions.is_empty() {
            let batch: Vec<Action> = std::mem::take(&mut actions);
            for action in batch {
                match action {
                    Action::Launch { job, attempt } => {
                        let env = finally_env(&scheduler, &names, specs[job]);
                        let mut manifest = manifest::job(
                            specs[job],
                            &manifest::Attempt {
                                run_id: &options.run_id,
                                job_name: names[job],
                                attempt,
                                extra_env: &env,
                                ttl_after_finished: options.ttl_after_finished,
                            },
                        );
                        let object = manifest.metadata.name.clone().unwrap_or_default();
                        manifest.metadata.namespace = Some(options.namespace.clone());
                        let now = SystemTime::now();
                        record.jobs[job].start_attempt(attempt, now);
                        match create(&jobs, &manifest).await {
                            Ok(()) => {
                                next_key += 1;
                                by_key.insert(next_key, object.clone());
                                live.insert(
                                    object.clone(),
                                    Live {
                                        key: next_key,
                                        job,
                                        attempt,
                                        object,
                                        cancelled: false,
                                        log_started: false,
                                        log_done: false,
                                        waiting: None,
                                        exit_code: None,
                                        ended: None,
                                        output: Arc::new(Mutex::new(Vec::new())),
                                    },
                                );
                                observer.job_started(&record, job);
                            }
                            Err(why) => {
                                end_attempt(&mut record, job, Status::Errored, None, Some(why));
                                scheduler.attempt_ended(job, AttemptEnd::Errored, &mut actions);
                                settle_status(&mut record, &scheduler, job);
                                observer.job_updated(&record, job);
                            }
                        }
                    }
                    Action::Retry { job, delay, .. } => {
                        add_timer(&mut timers, Instant::now() + delay, Timer::RetryDue(job));
                        observer.retrying(&record, job, delay);
                    }
                    Action::Kill { job } => {
                        if let Some(l) = live
                            .values_mut()
                            .find(|l| l.job == job && l.ended.is_none())
                        {
                            l.cancelled = true;
                            delete(&jobs, &l.object).await;
                            add_timer(
                                &mut timers,
                                Instant::now() + Duration::from_secs(10),
                                Timer::DeleteGrace(l.key),
                            );
                        }
                    }
                    Action::Decided { job, outcome } => {
                        record_decided(&mut record, job, outcome, cancels > 0);
                        observer.job_updated(&record, job);
                    }
                    Action::Finished(o) => outcome = Some(o),
                }
            }
        }
        if let Some(o) = outcome {
            record.status = o.into();
            record.finished_at = Some(SystemTime::now());
            break;
        }
        let next = timers.keys().next().map(|(at, _)| *at);
        let msg = tokio::select! {
            m = rx.recv() => m,
            _ = sleep_until(next) => None,
        };
        let mut finished: Vec<String> = Vec::new();
        match msg {
            Some(Msg::Job(job)) => {
                let Some(name) = job.metadata.name.clone() else {
                    continue;
                };
                let Some(l) = live.get_mut(&name) else {
                    continue;
                };
                if l.ended.is_none() {
                    if let Some(end) = outcome_of(&job, specs[l.job], l.exit_code) {
                        l.ended = Some(end);
                        if l.ready() {
                            finished.push(name);
                        } else {
                            // The Job's end can be seen before its pod's: wait a little for the
                            // pod (whose log is then read whole) or for the log to finish.
                            let grace = if l.log_started { 5 } else { 2 };
                            add_timer(
                                &mut timers,
                                Instant::now() + Duration::from_secs(grace),
                                Timer::LogGrace(l.key),
                            );
                        }
                    }
                }
            }
            Some(Msg::JobDeleted(name)) => {
                if let Some(l) = live.get_mut(&name) {
                    if l.ended.is_none() {
                        l.ended = Some(if l.cancelled {
                            (
                                AttemptEnd::Cancelled,
                                Status::Cancelled,
                                None,
                                Some("cancelled".into()),
                            )
                        } else {
                            (
                                AttemptEnd::Errored,
                                Status::Errored,
                                None,
                                Some("its Job was deleted".into()),
                            )
                        });
                    }
                    finished.push(name);
                }
            }
            Some(Msg::Pod(pod)) => {
                let Some(object) = pod_job(&pod) else {
                    continue;
                };
                let Some(l) = live.get_mut(&object) else {
                    continue;
                };
                let phase = pod
                    .status
                    .as_ref()
                    .and_then(|s| s.phase.clone())
                    .unwrap_or_default();
                if let Some(code) = exit_code(&pod) {
                    l.exit_code = Some(code);
                    // A failure already seen gets its exit code.
                    if let Some((AttemptEnd::Failed, _, c @ None, reason)) = &mut l.ended {
                        *c = Some(code);
                        if reason
                            .as_deref()
                            .is_some_and(|r| r.starts_with("the Job failed"))
                        {
                            *reason = Some(format!("exit code {code}"));
                        }
                    }
                    if l.ready() {
                        finished.push(object.clone());
                    }
                }
                if phase != "Pending" && !phase.is_empty() && !l.log_started {
                    l.log_started = true;
                    l.waiting = None;
                    let pod_name = pod.metadata.name.clone().unwrap_or_default();
                    tasks.spawn(stream_log(
                        pods.clone(),
                        pod_name,
                        object.clone(),
                        l.output.clone(),
                        tx.clone(),
                    ));
                } else if phase == "Pending" {
                    match stuck_reason(&pod) {
                        Some(reason) if l.waiting.is_none() => {
                            l.waiting = Some(reason);
                            add_timer(
                                &mut timers,
                                Instant::now() + options.waiting_grace,
                                Timer::Stuck(l.key),
                            );
                        }
                        Some(reason) => l.waiting = Some(reason),
                        None => l.waiting = None,
                    }
                }
            }
            Some(Msg::LogDone(object)) => {
                if let Some(l) = live.get_mut(&object) {
                    l.log_done = true;
                    if l.ready() {
                        finished.push(object);
                    }
                }
            }
            Some(Msg::Signal) => {
                cancels += 1;
                observer.cancelling(&record, cancels > 1);
                scheduler.cancel(&mut actions);
            }
            None => {
                let Some(((at, seq), timer)) = timers.first_key_value().map(|(k, v)| (*k, *v))
                else {
                    continue;
                };
                if at > Instant::now() {
                    continue;
                }
                timers.remove(&(at, seq));
                match timer {
                    Timer::RetryDue(job) => scheduler.retry_due(job, &mut actions),
                    Timer::Stuck(key) | Timer::LogGrace(key) | Timer::DeleteGrace(key) => {
                        let Some(object) = by_key.get(&key).cloned() else {
                            continue;
                        };
                        let Some(l) = live.get_mut(&object) else {
                            continue;
                        };
                        match timer {
                            Timer::Stuck(_) => {
                                if let (Some(reason), None) = (l.waiting.clone(), &l.ended) {
                                    // It will not start by itself: give up on it.
                                    delete(&jobs, &l.object).await;
                                    l.ended = Some((
                                        AttemptEnd::Errored,
                                        Status::Errored,
                                        None,
                                        Some(format!("the pod could not start: {reason}")),
                                    ));
                                    finished.push(object);
                                }
                            }
                            _ => {
                                if l.ended.is_none() {
                                    l.ended = Some((
                                        AttemptEnd::Cancelled,
                                        Status::Cancelled,
                                        None,
                                        Some("cancelled".into()),
                                    ));
                                }
                                finished.push(object);
                            }
                        }
                    }
                }
            }
        }
        for object in finished {
            let Some(l) = live.remove(&object) else {
                continue;
            };
            by_key.remove(&l.key);
            let (end, status, code, reason) =
                l.ended
                    .unwrap_or((AttemptEnd::Errored, Status::Errored, None, None));
            end_attempt(&mut record, l.job, status, code, reason);
            let output = l.output.lock().map(|o| o.clone()).unwrap_or_default();
            if !output.is_empty() {
                let path = options
                    .logs_dir
                    .join(log_file_name(names[l.job], l.attempt));
                if std::fs::write(&path, &output).is_ok() {
                    if let Some(a) = record.jobs[l.job].attempts.last_mut() {
                        a.log = Some(path.display().to_string());
                    }
                }
            }
            scheduler.attempt_ended(l.job, end, &mut actions);
            settle_status(&mut record, &scheduler, l.job);
            observer.job_updated(&record, l.job);
        }
    }
    tasks.abort_all();
    Ok(record)
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => futures::future::pending::<()>().await,
    }
}

/// Deletes a Job and, with Background propagation, its pods (without it they are orphaned).
/// A Job already gone is fine; other failures leave it to its TTL.
async fn delete(jobs: &Api<Job>, name: &str) {
    let _ = jobs.delete(name, &DeleteParams::background()).await;
}

/// Creates the Job; after a crash it may exist already: adopt it when it is ours.
async fn create(jobs: &Api<Job>, job: &Job) -> Result<(), String> {
    let name = job.metadata.name.clone().unwrap_or_default();
    match jobs.create(&PostParams::default(), job).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.is_already_exists() => {
            let existing = jobs
                .get(&name)
                .await
                .map_err(|e| format!("could not read the existing Job {name}: {e}"))?;
            if existing.metadata.labels == job.metadata.labels {
                Ok(())
            } else {
                Err(format!(
                    "a Job named {name} exists and is not this attempt's"
                ))
            }
        }
        Err(e) => Err(format!("could not create the Job {name}: {e}")),
    }
}

/// The attempt's end from the Job's conditions (`SuccessCriteriaMet`/`Complete`,
/// `FailureTarget`/`Failed`), if it has ended.
fn outcome_of(
    job: &Job,
    spec: &ir::Job,
    exit_code: Option<i32>,
) -> Option<(AttemptEnd, Status, Option<i32>, Option<String>)> {
    let conditions = job.status.as_ref()?.conditions.as_ref()?;
    let holds = |t: &str| {
        conditions
            .iter()
            .find(|c| c.type_ == t && c.status == "True")
    };
    if holds("SuccessCriteriaMet")
        .or_else(|| holds("Complete"))
        .is_some()
    {
        return Some((AttemptEnd::Succeeded, Status::Successful, Some(0), None));
    }
    let failed = holds("FailureTarget").or_else(|| holds("Failed"))?;
    let reason = match failed.reason.as_deref() {
        Some("DeadlineExceeded") => {
            format!(
                "timed out after {}",
                spec.timeout.map(|t| t.0.to_string()).unwrap_or_default()
            )
        }
        _ if exit_code.is_some() => format!("exit code {}", exit_code.unwrap_or_default()),
        Some(r) => format!(
            "the Job failed: {r}{}",
            failed
                .message
                .as_deref()
                .map(|m| format!(" ({m})"))
                .unwrap_or_default()
        ),
        None => "the Job failed".to_string(),
    };
    Some((AttemptEnd::Failed, Status::Failed, exit_code, Some(reason)))
}

/// The exit code of the pod's terminated container.
fn exit_code(pod: &Pod) -> Option<i32> {
    let statuses = pod.status.as_ref()?.container_statuses.as_ref()?;
    statuses
        .iter()
        .find_map(|c| c.state.as_ref()?.terminated.as_ref().map(|t| t.exit_code))
}

/// The Job a pod belongs to.
fn pod_job(pod: &Pod) -> Option<String> {
    let labels = pod.metadata.labels.as_ref()?;
    labels
        .get("batch.kubernetes.io/job-name")
        .or_else(|| labels.get("job-name"))
        .cloned()
}

/// Why a pending pod cannot start, when that will not resolve by itself.
fn stuck_reason(pod: &Pod) -> Option<String> {
    let status = pod.status.as_ref()?;
    for c in status.container_statuses.iter().flatten() {
        if let Some(w) = c.state.as_ref().and_then(|s| s.waiting.as_ref()) {
            if let Some(r) = w.reason.as_deref().filter(|r| STUCK.contains(r)) {
                return Some(match &w.message {
                    Some(m) => format!("{r}: {m}"),
                    None => r.to_string(),
                });
            }
        }
    }
    for c in status.conditions.iter().flatten() {
        if c.type_ == "PodScheduled"
            && c.status == "False"
            && c.reason.as_deref() == Some("Unschedulable")
        {
            return Some(format!(
                "Unschedulable: {}",
                c.message.clone().unwrap_or_default()
            ));
        }
    }
    None
}

async fn watch_jobs(api: Api<Job>, selector: String, tx: mpsc::UnboundedSender<Msg>) {
    let stream = watcher(api, watcher::Config::default().labels(&selector)).default_backoff();
    futures::pin_mut!(stream);
    while let Some(event) = stream.next().await {
        let msg = match event {
            Ok(watcher::Event::Apply(j) | watcher::Event::InitApply(j)) => Msg::Job(Box::new(j)),
            Ok(watcher::Event::Delete(j)) => Msg::JobDeleted(j.metadata.name.unwrap_or_default()),
            // Init and InitDone; errors are retried by the backoff.
            _ => continue,
        };
        if tx.send(msg).is_err() {
            return;
        }
    }
}

async fn watch_pods(api: Api<Pod>, selector: String, tx: mpsc::UnboundedSender<Msg>) {
    let stream = watcher(api, watcher::Config::default().labels(&selector)).default_backoff();
    futures::pin_mut!(stream);
    while let Some(event) = stream.next().await {
        let pod = match event {
            Ok(watcher::Event::Apply(p) | watcher::Event::InitApply(p)) => p,
            _ => continue,
        };
        if tx.send(Msg::Pod(Box::new(pod))).is_err() {
            return;
        }
    }
}

/// Follows a pod's log into `output`, with timestamps so that a dropped stream resumes after the
/// last line it gave, without duplicates.
async fn stream_log(
    pods: Api<Pod>,
    pod: String,
    object: String,
    output: Arc<Mutex<Vec<u8>>>,
    tx: mpsc::UnboundedSender<Msg>,
) {
    let mut last: Option<String> = None;
    for _ in 0..5 {
        let params = LogParams {
            follow: true,
            timestamps: true,
            since_time: last.as_deref().and_then(|t| t.parse().ok()),
            ..LogParams::default()
        };
        let Ok(reader) = pods.log_stream(&pod, &params).await else {
            tokio::time::sleep(Duration::from_millis(500)).await;
            continue;
        };
        let mut lines = reader.lines();
        let mut clean = true;
        loop {
            match lines.try_next().await {
                Ok(Some(line)) => {
                    let (stamp, text) = line.split_once(' ').unwrap_or((line.as_str(), ""));
                    if last.as_deref().is_some_and(|l| stamp <= l) {
                        continue; // already have it (a resumed stream repeats the last second)
                    }
                    last = Some(stamp.to_string());
                    if let Ok(mut out) = output.lock() {
                        out.extend_from_slice(text.as_bytes());
                        out.push(b'\n');
                    }
                }
                Ok(None) => break,
                Err(_) => {
                    clean = false;
                    break;
                }
            }
        }
        if clean {
            break;
        }
    }
    let _ = tx.send(Msg::LogDone(object));
}

#[cfg(test)]
mod tests {
    //! The requests the executor sends, checked with a mock API (`tower-test`).
    use super::*;
    use http::{Request, Response};
    use kube::client::Body;

    type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

    fn mock() -> (kube::Client, Handle) {
        let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        (kube::Client::new(service, "ci"), handle)
    }

    async fn body_json(req: Request<Body>) -> serde_json::Value {
        let bytes = req.into_body().collect_bytes().await.unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    fn json_response(code: u16, value: serde_json::Value) -> Response<Body> {
        Response::builder()
            .status(code)
            .header("content-type", "application/json")
            .body(Body::from(serde_json::to_vec(&value).unwrap()))
            .unwrap()
    }

    fn sample_job() -> Job {
        let mut spec = ir::Job::new("busybox:1.36", "echo hi");
        spec.timeout = Some(ir::DurationText(
            chainr_compiler::units::Duration::from_secs(90),
        ));
        let mut job = manifest::job(
            &spec,
            &manifest::Attempt {
                run_id: "run-1",
                job_name: "build",
                attempt: 2,
                extra_env: &[],
                ttl_after_finished: 600,
            },
        );
        job.metadata.namespace = Some("ci".into());
        job
    }

    #[tokio::test]
    async fn create_posts_one_job_per_attempt() {
        let (client, mut handle) = mock();
        let jobs: Api<Job> = Api::namespaced(client, "ci");
        let job = sample_job();
        let call = tokio::spawn(async move { create(&jobs, &job).await });
        let (req, send) = handle.next_request().await.unwrap();
        assert_eq!(req.method(), "POST");
        assert_eq!(req.uri().path(), "/apis/batch/v1/namespaces/ci/jobs");
        let body = body_json(req).await;
        assert_eq!(body["spec"]["backoffLimit"], 0);
        assert_eq!(body["spec"]["activeDeadlineSeconds"], 90);
        assert_eq!(body["spec"]["ttlSecondsAfterFinished"], 600);
        assert_eq!(body["spec"]["template"]["spec"]["restartPolicy"], "Never");
        assert_eq!(
            body["spec"]["template"]["spec"]["containers"][0]["command"],
            serde_json::json!(["sh", "-c"])
        );
        assert_eq!(body["metadata"]["labels"]["chainr.io/attempt"], "2");
        assert_eq!(body["metadata"]["labels"]["chainr.io/run"], "run-1");
        send.send_response(json_response(201, body.clone()));
        assert_eq!(call.await.unwrap(), Ok(()));
    }

    #[tokio::test]
    async fn an_existing_job_of_this_attempt_is_adopted_and_another_is_not() {
        for ours in [true, false] {
            let (client, mut handle) = mock();
            let jobs: Api<Job> = Api::namespaced(client, "ci");
            let job = sample_job();
            let mut existing = serde_json::to_value(&job).unwrap();
            if !ours {
                existing["metadata"]["labels"]["chainr.io/run"] = "another-run".into();
            }
            let call = tokio::spawn(async move { create(&jobs, &job).await });
            let (req, send) = handle.next_request().await.unwrap();
            assert_eq!(req.method(), "POST");
            send.send_response(json_response(
                409,
                serde_json::json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                    "reason": "AlreadyExists", "code": 409, "message": "jobs.batch exists"}),
            ));
            let (req, send) = handle.next_request().await.unwrap();
            assert_eq!(req.method(), "GET");
            let name = manifest::job_object_name("run-1", "build", 2);
            assert_eq!(
                req.uri().path(),
                format!("/apis/batch/v1/namespaces/ci/jobs/{name}")
            );
            send.send_response(json_response(200, existing));
            assert_eq!(call.await.unwrap().is_ok(), ours);
        }
    }

    #[tokio::test]
    async fn logs_follow_with_timestamps_and_resume_without_duplicates() {
        let (client, mut handle) = mock();
        let pods: Api<Pod> = Api::namespaced(client, "ci");
        let output = Arc::new(Mutex::new(Vec::new()));
        let (tx, mut rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(stream_log(
            pods,
            "p-1".into(),
            "job-1".into(),
            output.clone(),
            tx,
        ));
        let (req, send) = handle.next_request().await.unwrap();
        assert_eq!(req.uri().path(), "/api/v1/namespaces/ci/pods/p-1/log");
        let query = req.uri().query().unwrap_or("").to_string();
        assert!(
            query.contains("follow=true") && query.contains("timestamps=true"),
            "{query}"
        );
        send.send_response(
            Response::builder()
                .body(Body::from(
                    "2026-11-27T10:00:00.000000001Z one\n2026-11-27T10:00:00.000000002Z two\n"
                        .as_bytes()
                        .to_vec(),
                ))
                .unwrap(),
        );
        task.await.unwrap();
        assert!(matches!(rx.recv().await, Some(Msg::LogDone(o)) if o == "job-1"));
        assert_eq!(
            String::from_utf8(output.lock().unwrap().clone()).unwrap(),
            "one\ntwo\n"
        );
    }

    #[tokio::test]
    async fn cancel_deletes_with_background_propagation() {
        let (client, mut handle) = mock();
        let jobs: Api<Job> = Api::namespaced(client, "ci");
        let call = tokio::spawn(async move { delete(&jobs, "chainr-run-1-build-abc123-1").await });
        let (req, send) = handle.next_request().await.unwrap();
        assert_eq!(req.method(), "DELETE");
        assert_eq!(
            req.uri().path(),
            "/apis/batch/v1/namespaces/ci/jobs/chainr-run-1-build-abc123-1"
        );
        let body = body_json(req).await;
        assert_eq!(body["propagationPolicy"], "Background");
        send.send_response(json_response(
            200,
            serde_json::json!({"kind": "Status", "status": "Success"}),
        ));
        call.await.unwrap();
    }

    #[tokio::test]
    async fn the_job_watch_selects_this_run() {
        let (client, mut handle) = mock();
        let jobs: Api<Job> = Api::namespaced(client, "ci");
        let (tx, _rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(watch_jobs(jobs, "chainr.io/run=run-1".into(), tx));
        let (req, _send) = handle.next_request().await.unwrap();
        assert_eq!(req.method(), "GET");
        assert_eq!(req.uri().path(), "/apis/batch/v1/namespaces/ci/jobs");
        let query = req.uri().query().unwrap_or("").to_string();
        assert!(
            query.contains("labelSelector=chainr.io%2Frun%3Drun-1"),
            "{query}"
        );
        task.abort();
    }

    #[test]
    fn outcomes_come_from_job_conditions() {
        let spec = ir::Job::new("busybox", "true");
        let with = |conditions: serde_json::Value| -> Job {
            serde_json::from_value(serde_json::json!({"metadata": {"name": "j"}, "status": {"conditions": conditions}})).unwrap()
        };
        let ok = with(
            serde_json::json!([{"type": "SuccessCriteriaMet", "status": "True"}, {"type": "Complete", "status": "True"}]),
        );
        assert_eq!(
            outcome_of(&ok, &spec, Some(0)).unwrap().0,
            AttemptEnd::Succeeded
        );
        let deadline = with(
            serde_json::json!([{"type": "FailureTarget", "status": "True", "reason": "DeadlineExceeded"}]),
        );
        let (end, _, _, reason) = outcome_of(&deadline, &spec, None).unwrap();
        assert_eq!(end, AttemptEnd::Failed);
        assert!(reason.unwrap().starts_with("timed out"));
        let running = with(serde_json::json!([{"type": "Complete", "status": "False"}]));
        assert!(outcome_of(&running, &spec, None).is_none());
        let failed = with(
            serde_json::json!([{"type": "FailureTarget", "status": "True", "reason": "BackoffLimitExceeded"}]),
        );
        assert_eq!(
            outcome_of(&failed, &spec, Some(3)).unwrap().3.as_deref(),
            Some("exit code 3")
        );
    }
}
