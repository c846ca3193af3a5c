//! Attempts as Jobs, followed through one Job watcher and one Pod watcher per run (label
//! `chainr.io/run`), which recover from 410 Gone and dropped connections by re-listing. Outcomes
//! come from the Job's conditions and exit codes from its pod; a pod stuck waiting (image pull
//! failures, unschedulable, missing secrets) errors after a grace period, and whatever ends an
//! attempt whose container never started carries the pod's last waiting state. Logs are streamed
//! from the pod once it has left Pending; a stop deletes the Job with Background propagation.

use crate::manifest;
use chainr_compiler::ir;
use chainr_runtime::event::{AttemptResult, Reason, Waiting};
use chainr_runtime::scheduler::AttemptEnd;
use chainr_runtime::{AttemptSpec, ExecEvent, Executor, JobId};
use futures::{AsyncBufReadExt, StreamExt, TryStreamExt};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, LogParams, PostParams};
use kube::runtime::{watcher, WatchStreamExt};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Waiting reasons that never resolve by themselves: the attempt errors after the grace period.
const STUCK: [&str; 6] = [
    "ImagePullBackOff",
    "ErrImagePull",
    "InvalidImageName",
    "CreateContainerConfigError",
    "CreateContainerError",
    "Unschedulable",
];

#[derive(Clone, Debug)]
pub struct KubeOptions {
    pub namespace: String,
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
    Output(String, Vec<u8>),
    LogDone(String),
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
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
    /// The timeout as written, for a Job that exceeded its deadline.
    timeout: Option<String>,
    /// Deleted by a stop.
    stopping: bool,
    log_started: bool,
    log_done: bool,
    /// The pod's last reason for waiting, while its container has not started.
    waiting: Option<Waiting>,
    stuck: bool,
    /// The container's exit code, from its pod.
    exit_code: Option<i32>,
    /// The end, once known, kept until the log is complete.
    ended: Option<AttemptResult>,
}

impl Live {
    /// The attempt can be reported: it ended, its log is complete, and a failure knows its exit
    /// code (the Job's and the pod's updates arrive on separate watches, in either order).
    fn ready(&self) -> bool {
        match &self.ended {
            None => false,
            Some(r) if r.end == AttemptEnd::Failed && r.exit_code.is_none() => false,
            // Until then, a timer ends the wait (a pod that never ran has no log to wait for).
            Some(_) => self.log_done,
        }
    }
}

/// Runs attempts as Jobs of one run in one namespace.
pub struct KubeExecutor {
    jobs: Api<Job>,
    pods: Api<Pod>,
    options: KubeOptions,
    tx: mpsc::UnboundedSender<Msg>,
    rx: mpsc::UnboundedReceiver<Msg>,
    tasks: tokio::task::JoinSet<()>,
    /// Deletions in flight: detached tasks (dropping the executor does not cancel them),
    /// awaited by `finish`.
    deletes: Vec<tokio::task::JoinHandle<()>>,
    live: HashMap<String, Live>,
    by_key: HashMap<u64, String>,
    next_key: u64,
    timers: BTreeMap<(Instant, u64), Timer>,
    timer_seq: u64,
    queue: VecDeque<ExecEvent>,
}

impl KubeExecutor {
    /// An executor for run `run_id`; starts watching its Jobs and pods (call within a tokio
    /// runtime).
    pub fn new(client: kube::Client, run_id: &str, options: KubeOptions) -> KubeExecutor {
        let jobs: Api<Job> = Api::namespaced(client.clone(), &options.namespace);
        let pods: Api<Pod> = Api::namespaced(client, &options.namespace);
        let selector = format!("{}={}", manifest::RUN, run_id);
        let (tx, rx) = mpsc::unbounded_channel::<Msg>();
        let mut tasks = tokio::task::JoinSet::new();
        tasks.spawn(watch_jobs(jobs.clone(), selector.clone(), tx.clone()));
        tasks.spawn(watch_pods(pods.clone(), selector, tx.clone()));
        KubeExecutor {
            jobs,
            pods,
            options,
            tx,
            rx,
            tasks,
            deletes: Vec::new(),
            live: HashMap::new(),
            by_key: HashMap::new(),
            next_key: 0,
            timers: BTreeMap::new(),
            timer_seq: 0,
            queue: VecDeque::new(),
        }
    }

    fn add_timer(&mut self, after: Duration, timer: Timer) {
        self.timer_seq += 1;
        self.timers
            .insert((Instant::now() + after, self.timer_seq), timer);
    }

    /// Deletes a Job in the background (a stop must not wait for the API server).
    fn delete(&mut self, object: &str) {
        let jobs = self.jobs.clone();
        let object = object.to_string();
        self.deletes.retain(|d| !d.is_finished());
        self.deletes
            .push(tokio::spawn(async move { delete(&jobs, &object).await }));
    }

    /// Handles one message; attempts that can be reported go to the queue.
    fn handle(&mut self, msg: Msg) {
        let mut finished: Vec<String> = Vec::new();
        match msg {
            Msg::Job(job) => {
                let Some(name) = job.metadata.name.clone() else {
                    return;
                };
                let Some(l) = self.live.get_mut(&name) else {
                    return;
                };
                if l.ended.is_some() {
                    return;
                }
                let Some(end) = outcome_of(&job, l.timeout.as_deref(), l.exit_code) else {
                    return;
                };
                l.ended = Some(end);
                if l.ready() {
                    finished.push(name);
                } else {
                    // The Job's end can be seen before its pod's: wait a little for the pod
                    // (whose log is then read whole) or for the log to finish.
                    let grace = if l.log_started { 5 } else { 2 };
                    let key = l.key;
                    self.add_timer(Duration::from_secs(grace), Timer::LogGrace(key));
                }
            }
            Msg::JobDeleted(name) => {
                if let Some(l) = self.live.get_mut(&name) {
                    if l.ended.is_none() {
                        l.ended = Some(if l.stopping {
                            AttemptResult::cancelled()
                        } else {
                            AttemptResult::errored(Reason::JobDeleted)
                        });
                    }
                    if l.log_started && !l.log_done {
                        // Its log is still being read: its last lines (why a timeout was hit,
                        // say) are worth a short wait.
                        let key = l.key;
                        self.add_timer(Duration::from_secs(5), Timer::LogGrace(key));
                    } else {
                        finished.push(name);
                    }
                }
            }
            Msg::Pod(pod) => self.pod_changed(&pod, &mut finished),
            Msg::Output(object, bytes) => {
                if let Some(l) = self.live.get(&object) {
                    self.queue.push_back(ExecEvent::Output {
                        job: l.job,
                        attempt: l.attempt,
                        bytes,
                    });
                }
            }
            Msg::LogDone(object) => {
                if let Some(l) = self.live.get_mut(&object) {
                    l.log_done = true;
                    if l.ready() {
                        finished.push(object);
                    }
                }
            }
        }
        self.report(finished);
    }

    fn pod_changed(&mut self, pod: &Pod, finished: &mut Vec<String>) {
        let Some(object) = pod_job(pod) else {
            return;
        };
        let Some(l) = self.live.get_mut(&object) else {
            return;
        };
        let phase = pod
            .status
            .as_ref()
            .and_then(|s| s.phase.clone())
            .unwrap_or_default();
        if let Some(code) = exit_code(pod) {
            l.exit_code = Some(code);
            // A failure already seen gets its exit code.
            if let Some(r) = &mut l.ended {
                if r.end == AttemptEnd::Failed && r.exit_code.is_none() {
                    r.exit_code = Some(code);
                    if matches!(r.reason, Some(Reason::JobFailed { .. })) {
                        r.reason = Some(Reason::ExitCode(code));
                    }
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
            self.tasks.spawn(stream_log(
                self.pods.clone(),
                pod_name,
                object.clone(),
                self.tx.clone(),
            ));
        } else if phase == "Pending" {
            l.waiting = waiting_state(pod).or(l.waiting.take());
            let stuck = l
                .waiting
                .as_ref()
                .is_some_and(|w| STUCK.contains(&w.reason.as_str()));
            if stuck && !l.stuck {
                l.stuck = true;
                let key = l.key;
                let grace = self.options.waiting_grace;
                self.add_timer(grace, Timer::Stuck(key));
            } else if !stuck {
                l.stuck = false;
            }
        }
    }

    fn fire(&mut self, timer: Timer) {
        let (Timer::Stuck(key) | Timer::LogGrace(key) | Timer::DeleteGrace(key)) = timer;
        let Some(object) = self.by_key.get(&key).cloned() else {
            return;
        };
        let Some(l) = self.live.get_mut(&object) else {
            return;
        };
        match timer {
            Timer::Stuck(_) => {
                if !l.stuck || l.ended.is_some() {
                    return;
                }
                let Some(waiting) = l.waiting.clone() else {
                    return;
                };
                // It will not start by itself: give up on it.
                l.ended = Some(AttemptResult::errored(Reason::PodCouldNotStart(waiting)));
                self.delete(&object);
            }
            _ => {
                if l.ended.is_none() {
                    l.ended = Some(AttemptResult::cancelled());
                }
            }
        }
        self.report(vec![object]);
    }

    /// Reports attempts that ended.
    fn report(&mut self, finished: Vec<String>) {
        for object in finished {
            let Some(l) = self.live.remove(&object) else {
                continue;
            };
            self.by_key.remove(&l.key);
            let mut result = l
                .ended
                .unwrap_or_else(|| AttemptResult::errored(Reason::JobDeleted));
            if !l.log_started && result.waiting.is_none() {
                result.waiting = l.waiting;
            }
            self.queue.push_back(ExecEvent::Ended {
                job: l.job,
                attempt: l.attempt,
                result,
            });
        }
    }
}

impl Drop for KubeExecutor {
    fn drop(&mut self) {
        self.tasks.abort_all();
    }
}

impl Executor for KubeExecutor {
    fn kill_grace(&self) -> Option<Duration> {
        // A deletion is final; a deletion that is not seen ends the attempt after a while.
        None
    }

    async fn start(&mut self, a: AttemptSpec<'_>) -> Result<Option<String>, String> {
        let mut job = manifest::job(
            a.spec,
            &manifest::Attempt {
                run_id: a.run_id,
                job_name: a.name,
                attempt: a.attempt,
                extra_env: a.extra_env,
                ttl_after_finished: self.options.ttl_after_finished,
            },
        );
        let object = job.metadata.name.clone().unwrap_or_default();
        job.metadata.namespace = Some(self.options.namespace.clone());
        // After a take-over the Job exists already and is adopted by its name: never created
        // twice, nor asked to be.
        match a.resume {
            Some(_) => adopt_or_create(&self.jobs, &job).await?,
            None => create(&self.jobs, &job).await?,
        }
        self.next_key += 1;
        self.by_key.insert(self.next_key, object.clone());
        self.live.insert(
            object.clone(),
            Live {
                key: self.next_key,
                job: a.job,
                attempt: a.attempt,
                timeout: a.spec.timeout.map(|t| t.0.to_string()),
                stopping: false,
                log_started: false,
                log_done: false,
                waiting: None,
                stuck: false,
                exit_code: None,
                ended: None,
            },
        );
        Ok(Some(object))
    }

    async fn stop(&mut self, job: JobId, attempt: u32, _force: bool) {
        let Some((object, key)) = self
            .live
            .iter_mut()
            .find(|(_, l)| l.job == job && l.attempt == attempt && l.ended.is_none())
            .map(|(o, l)| {
                l.stopping = true;
                (o.clone(), l.key)
            })
        else {
            return;
        };
        self.delete(&object);
        self.add_timer(Duration::from_secs(10), Timer::DeleteGrace(key));
    }

    async fn finish(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        for d in std::mem::take(&mut self.deletes) {
            let _ = tokio::time::timeout_at(deadline, d).await;
        }
    }

    async fn abandon(&mut self, a: AttemptSpec<'_>) {
        // The Job of that attempt has a name derived from it: delete it (and its pod).
        let object = manifest::job_object_name(a.run_id, a.name, a.attempt);
        delete(&self.jobs, &object).await;
    }

    async fn next(&mut self) -> Option<ExecEvent> {
        loop {
            if let Some(event) = self.queue.pop_front() {
                return Some(event);
            }
            let next = self.timers.keys().next().map(|(at, _)| *at);
            tokio::select! {
                msg = self.rx.recv() => self.handle(msg?),
                _ = sleep_until(next) => {
                    let Some((&key, &timer)) = self.timers.first_key_value() else {
                        continue;
                    };
                    if key.0 <= Instant::now() {
                        self.timers.remove(&key);
                        self.fire(timer);
                    }
                }
            }
        }
    }
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
            adopt(&existing, job)
        }
        Err(e) => Err(format!("could not create the Job {name}: {e}")),
    }
}

/// The Job of an attempt started before (by a worker that stopped): read by its name and
/// adopted when it is ours; created when it is not there (its creation never reached the API
/// server, or it was deleted since).
async fn adopt_or_create(jobs: &Api<Job>, job: &Job) -> Result<(), String> {
    let name = job.metadata.name.clone().unwrap_or_default();
    match jobs.get_opt(&name).await {
        Ok(Some(existing)) => adopt(&existing, job),
        Ok(None) => create(jobs, job).await,
        Err(e) => Err(format!("could not read the existing Job {name}: {e}")),
    }
}

/// An existing Job is this attempt's when it carries the attempt's labels.
fn adopt(existing: &Job, job: &Job) -> Result<(), String> {
    if existing.metadata.labels == job.metadata.labels {
        Ok(())
    } else {
        let name = job.metadata.name.as_deref().unwrap_or_default();
        Err(format!(
            "a Job named {name} exists and is not this attempt's"
        ))
    }
}

/// The attempt's end from the Job's conditions (`SuccessCriteriaMet`/`Complete`,
/// `FailureTarget`/`Failed`), if it has ended. `timeout` is the job's limit as written.
fn outcome_of(job: &Job, timeout: Option<&str>, exit_code: Option<i32>) -> Option<AttemptResult> {
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
        return Some(AttemptResult::succeeded());
    }
    let failed = holds("FailureTarget").or_else(|| holds("Failed"))?;
    let reason = match (failed.reason.as_deref(), exit_code) {
        (Some("DeadlineExceeded"), _) => Reason::TimedOut(timeout.unwrap_or_default().to_string()),
        (_, Some(code)) => Reason::ExitCode(code),
        (r, None) => Reason::JobFailed {
            reason: r.map(str::to_string),
            message: failed.message.clone(),
        },
    };
    Some(AttemptResult::new(
        AttemptEnd::Failed,
        exit_code,
        Some(reason),
    ))
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

/// Why a pending pod's container is not running: its waiting state, or the scheduler's
/// `Unschedulable` condition.
fn waiting_state(pod: &Pod) -> Option<Waiting> {
    let status = pod.status.as_ref()?;
    for c in status.container_statuses.iter().flatten() {
        if let Some(w) = c.state.as_ref().and_then(|s| s.waiting.as_ref()) {
            if let Some(r) = w.reason.as_deref() {
                return Some(Waiting {
                    reason: r.to_string(),
                    message: w.message.clone(),
                });
            }
        }
    }
    for c in status.conditions.iter().flatten() {
        if c.type_ == "PodScheduled"
            && c.status == "False"
            && c.reason.as_deref() == Some("Unschedulable")
        {
            return Some(Waiting {
                reason: "Unschedulable".to_string(),
                message: c.message.clone(),
            });
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

/// Follows a pod's log, passing each line on as it comes, with timestamps so that a dropped
/// stream resumes after the last line it gave, without duplicates.
async fn stream_log(pods: Api<Pod>, pod: String, object: String, tx: mpsc::UnboundedSender<Msg>) {
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
                    let mut bytes = Vec::with_capacity(text.len() + 1);
                    bytes.extend_from_slice(text.as_bytes());
                    bytes.push(b'\n');
                    if tx.send(Msg::Output(object.clone(), bytes)).is_err() {
                        return;
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
        let mut spec = chainr_compiler::ir::Job::new("busybox:1.36", "echo hi");
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
    async fn a_resumed_attempt_reads_its_job_by_name_and_creates_it_only_when_missing() {
        for exists in [true, false] {
            let (client, mut handle) = mock();
            let jobs: Api<Job> = Api::namespaced(client, "ci");
            let job = sample_job();
            let existing = serde_json::to_value(&job).unwrap();
            let call = tokio::spawn(async move { adopt_or_create(&jobs, &job).await });
            let (req, send) = handle.next_request().await.unwrap();
            assert_eq!(req.method(), "GET");
            let name = manifest::job_object_name("run-1", "build", 2);
            assert_eq!(
                req.uri().path(),
                format!("/apis/batch/v1/namespaces/ci/jobs/{name}")
            );
            if exists {
                send.send_response(json_response(200, existing));
            } else {
                send.send_response(json_response(
                    404,
                    serde_json::json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                        "reason": "NotFound", "code": 404, "message": "jobs.batch not found"}),
                ));
                let (req, send) = handle.next_request().await.unwrap();
                assert_eq!(req.method(), "POST");
                send.send_response(json_response(201, existing));
            }
            assert_eq!(call.await.unwrap(), Ok(()));
            // Nothing more was asked: the client is gone and the mock has no request left.
            let more = tokio::time::timeout(Duration::from_secs(5), handle.next_request()).await;
            assert!(matches!(more, Ok(None)), "another request");
        }
    }

    #[tokio::test]
    async fn logs_follow_with_timestamps_and_resume_without_duplicates() {
        let (client, mut handle) = mock();
        let pods: Api<Pod> = Api::namespaced(client, "ci");
        let (tx, mut rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(stream_log(pods, "p-1".into(), "job-1".into(), tx));
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
        let mut output = Vec::new();
        loop {
            match rx.recv().await {
                Some(Msg::Output(o, bytes)) => {
                    assert_eq!(o, "job-1");
                    output.extend(bytes);
                }
                Some(Msg::LogDone(o)) => {
                    assert_eq!(o, "job-1");
                    break;
                }
                _ => panic!("expected output, then the end of the log"),
            }
        }
        assert_eq!(String::from_utf8(output).unwrap(), "one\ntwo\n");
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
        let with = |conditions: serde_json::Value| -> Job {
            serde_json::from_value(serde_json::json!({"metadata": {"name": "j"}, "status": {"conditions": conditions}})).unwrap()
        };
        let ok = with(
            serde_json::json!([{"type": "SuccessCriteriaMet", "status": "True"}, {"type": "Complete", "status": "True"}]),
        );
        assert_eq!(
            outcome_of(&ok, None, Some(0)).unwrap().end,
            AttemptEnd::Succeeded
        );
        let deadline = with(
            serde_json::json!([{"type": "FailureTarget", "status": "True", "reason": "DeadlineExceeded"}]),
        );
        let r = outcome_of(&deadline, Some("20s"), None).unwrap();
        assert_eq!(r.end, AttemptEnd::Failed);
        assert_eq!(r.reason, Some(Reason::TimedOut("20s".into())));
        let running = with(serde_json::json!([{"type": "Complete", "status": "False"}]));
        assert!(outcome_of(&running, None, None).is_none());
        let failed = with(
            serde_json::json!([{"type": "FailureTarget", "status": "True", "reason": "BackoffLimitExceeded"}]),
        );
        assert_eq!(
            outcome_of(&failed, None, Some(3)).unwrap().reason,
            Some(Reason::ExitCode(3))
        );
    }

    fn pending_pod(waiting: serde_json::Value) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "labels": {"batch.kubernetes.io/job-name": "obj"}},
            "status": {"phase": "Pending", "containerStatuses": [
                {"name": "job", "image": "x", "imageID": "", "ready": false, "restartCount": 0,
                 "state": {"waiting": waiting}}]}
        }))
        .unwrap()
    }

    #[test]
    fn the_last_waiting_state_is_read_from_the_pod() {
        let pod = pending_pod(
            serde_json::json!({"reason": "ErrImagePull", "message": "pull access denied for nope:1"}),
        );
        let w = waiting_state(&pod).unwrap();
        assert_eq!(w.reason, "ErrImagePull");
        assert_eq!(w.to_string(), "ErrImagePull: pull access denied for nope:1");
        let unschedulable: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p"},
            "status": {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False",
                "reason": "Unschedulable", "message": "0/3 nodes are available: 3 Insufficient cpu."}]}
        }))
        .unwrap();
        assert_eq!(
            waiting_state(&unschedulable).unwrap().to_string(),
            "Unschedulable: 0/3 nodes are available: 3 Insufficient cpu."
        );
    }
}
