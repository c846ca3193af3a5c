//! The test API server driven by `kube` 5 the way chainr's Kubernetes executor drives a real
//! cluster: typed Api calls, `kube::runtime::watcher`, pod logs; in-process and over loopback.

use std::future::Future;
use std::time::Duration;

use chainr_kube_api::{Behaviour, KubeApi, RequestKind};
use futures::{AsyncBufReadExt, StreamExt, TryStreamExt};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams, LogParams, PostParams, WatchEvent, WatchParams};
use kube::runtime::watcher;
use serde_json::json;
use tokio::sync::mpsc;
use tokio::time::{sleep, Instant};

const NS: &str = "chainr-test";

fn job(name: &str, run: &str, image: &str, script: &str) -> Job {
    let labels = json!({
        "app.kubernetes.io/managed-by": "chainr",
        "chainr.io/run": run,
        "chainr.io/job": "j",
        "chainr.io/attempt": "1",
    });
    serde_json::from_value(json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": { "name": name, "labels": labels },
        "spec": {
            "backoffLimit": 0,
            "ttlSecondsAfterFinished": 600,
            "template": {
                "metadata": { "labels": labels },
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{ "name": "main", "image": image, "command": ["sh", "-c", script] }]
                }
            }
        }
    }))
    .unwrap()
}

/// Polls `f` until it gives a value (20 s at most).
async fn until<T, Fut: Future<Output = Option<T>>>(what: &str, mut f: impl FnMut() -> Fut) -> T {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        sleep(Duration::from_millis(20)).await;
    }
}

fn conditions(job: &Job) -> Vec<(String, String)> {
    job.status
        .iter()
        .flat_map(|s| s.conditions.iter().flatten())
        .map(|c| (c.type_.clone(), c.reason.clone().unwrap_or_default()))
        .collect()
}

fn finished(job: &Job) -> bool {
    conditions(job)
        .iter()
        .any(|(t, _)| t == "Complete" || t == "Failed")
}

async fn finished_job(jobs: &Api<Job>, name: &str) -> Job {
    until("the job to finish", || async {
        jobs.get(name).await.ok().filter(finished)
    })
    .await
}

async fn pod_of(pods: &Api<Pod>, job: &str) -> Pod {
    let lp = ListParams::default().labels(&format!("job-name={job}"));
    until("the job's pod", || async {
        pods.list(&lp).await.ok()?.items.into_iter().next()
    })
    .await
}

fn waiting_reason(pod: &Pod) -> Option<String> {
    let cs = pod.status.as_ref()?.container_statuses.as_ref()?.first()?;
    cs.state.as_ref()?.waiting.as_ref()?.reason.clone()
}

fn container_pid(pod: &Pod) -> Option<i32> {
    let cs = pod.status.as_ref()?.container_statuses.as_ref()?.first()?;
    cs.container_id
        .as_ref()?
        .strip_prefix("chainr://")?
        .parse()
        .ok()
}

/// Whether any live (not zombie) process is in process group `pgid`.
fn group_alive(pgid: i32) -> bool {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok())
        .filter_map(|e| std::fs::read_to_string(e.path().join("stat")).ok())
        .any(|stat| {
            let Some((_, rest)) = stat.rsplit_once(") ") else {
                return false;
            };
            let fields: Vec<&str> = rest.split_whitespace().collect();
            fields.first() != Some(&"Z") && fields.get(2) == Some(&pgid.to_string().as_str())
        })
}

/// Runs a watcher in a task of its own (a watcher only makes requests while polled) and hands
/// its events over.
fn drive(
    jobs: Api<Job>,
    labels: &str,
) -> mpsc::UnboundedReceiver<Result<watcher::Event<Job>, String>> {
    let (tx, rx) = mpsc::unbounded_channel();
    let mut events = watcher(jobs, watcher::Config::default().labels(labels)).boxed();
    tokio::spawn(async move {
        while let Some(ev) = events.next().await {
            if tx.send(ev.map_err(|e| e.to_string())).is_err() {
                break;
            }
        }
    });
    rx
}

fn api_error(e: kube::Error) -> Box<kube::core::Status> {
    match e {
        kube::Error::Api(s) => s,
        other => panic!("expected an API error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_get_list_conflict_invalid() {
    let api = KubeApi::new();
    let jobs: Api<Job> = Api::namespaced(api.client(NS), NS);
    api.script_image("hang/", Behaviour::Hang);

    let created = jobs
        .create(&PostParams::default(), &job("a", "r1", "hang/x:1", "true"))
        .await
        .unwrap();
    let meta = &created.metadata;
    assert!(meta.uid.is_some() && meta.creation_timestamp.is_some());
    assert_eq!(meta.generation, Some(1));
    let rv1: u64 = meta.resource_version.as_ref().unwrap().parse().unwrap();
    let spec = created.spec.as_ref().unwrap();
    assert_eq!(
        (spec.completions, spec.parallelism, spec.backoff_limit),
        (Some(1), Some(1), Some(0))
    );
    let uid = meta.uid.clone().unwrap();
    let selector = spec
        .selector
        .as_ref()
        .unwrap()
        .match_labels
        .as_ref()
        .unwrap();
    assert_eq!(
        selector.get("batch.kubernetes.io/controller-uid"),
        Some(&uid)
    );
    let tlabels = spec
        .template
        .metadata
        .as_ref()
        .unwrap()
        .labels
        .as_ref()
        .unwrap();
    assert_eq!(
        tlabels
            .get("batch.kubernetes.io/job-name")
            .map(String::as_str),
        Some("a")
    );
    assert_eq!(tlabels.get("job-name").map(String::as_str), Some("a"));
    assert_eq!(tlabels.get("controller-uid"), Some(&uid));
    assert_eq!(
        spec.template.spec.as_ref().unwrap().containers[0]
            .image_pull_policy
            .as_deref(),
        Some("IfNotPresent")
    );

    jobs.create(&PostParams::default(), &job("b", "r2", "hang/x:1", "true"))
        .await
        .unwrap();
    let got = jobs.get("a").await.unwrap();
    assert_eq!(got.metadata.uid.as_deref(), Some(uid.as_str()));

    let r1 = jobs
        .list(&ListParams::default().labels("chainr.io/run=r1,app.kubernetes.io/managed-by=chainr"))
        .await
        .unwrap();
    assert_eq!(r1.items.len(), 1);
    assert_eq!(r1.items[0].metadata.name.as_deref(), Some("a"));
    let list_rv: u64 = r1
        .metadata
        .resource_version
        .as_ref()
        .unwrap()
        .parse()
        .unwrap();
    assert!(list_rv > rv1);
    let paged = jobs.list(&ListParams::default().limit(1)).await.unwrap();
    assert_eq!(paged.items.len(), 2, "limit is accepted and ignored");
    assert!(paged.metadata.continue_.as_deref().unwrap_or("").is_empty());

    // Re-creating answers 409 AlreadyExists.
    let e = api_error(
        jobs.create(&PostParams::default(), &job("a", "r1", "hang/x:1", "true"))
            .await
            .unwrap_err(),
    );
    assert_eq!((e.code, e.reason.as_str()), (409, "AlreadyExists"));
    assert!(e.is_already_exists());

    // A 64-character name is rejected: it would not fit the job-name label.
    let long = "x".repeat(64);
    let e = api_error(
        jobs.create(
            &PostParams::default(),
            &job(&long, "r1", "hang/x:1", "true"),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!((e.code, e.reason.as_str()), (422, "Invalid"));
    assert!(
        e.message.contains("must be no more than 63 characters"),
        "{}",
        e.message
    );
    let e = api_error(
        jobs.create(
            &PostParams::default(),
            &job("Bad_Name", "r1", "hang/x:1", "true"),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(e.code, 422);
    let ok63 = "y".repeat(63);
    jobs.create(
        &PostParams::default(),
        &job(&ok63, "r1", "hang/x:1", "true"),
    )
    .await
    .unwrap();
    let pods: Api<Pod> = Api::namespaced(api.client(NS), NS);
    let pod = pod_of(&pods, &ok63).await;
    let pod_name = pod.metadata.name.unwrap();
    assert_eq!(
        pod_name.len(),
        63,
        "generateName base is cut to 58 characters"
    );

    // Invalid labels and restart policies, like the real validation.
    let mut bad = job("c", "r1", "hang/x:1", "true");
    bad.metadata
        .labels
        .as_mut()
        .unwrap()
        .insert("chainr.io/job".into(), "v".repeat(64));
    assert_eq!(
        api_error(jobs.create(&PostParams::default(), &bad).await.unwrap_err()).code,
        422
    );
    let mut bad = job("c", "r1", "hang/x:1", "true");
    bad.spec
        .as_mut()
        .unwrap()
        .template
        .spec
        .as_mut()
        .unwrap()
        .restart_policy = None;
    assert_eq!(
        api_error(jobs.create(&PostParams::default(), &bad).await.unwrap_err()).code,
        422
    );

    let e = api_error(jobs.get("missing").await.unwrap_err());
    assert_eq!((e.code, e.reason.as_str()), (404, "NotFound"));
    assert!(e.is_not_found());
    let e = api_error(
        jobs.delete("missing", &DeleteParams::background())
            .await
            .unwrap_err(),
    );
    assert_eq!(e.code, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_job_has_conditions_in_order_and_logs() {
    let api = KubeApi::new();
    let client = api.client(NS);
    let jobs: Api<Job> = Api::namespaced(client.clone(), NS);
    let pods: Api<Pod> = Api::namespaced(client, NS);
    jobs.create(
        &PostParams::default(),
        &job(
            "fails",
            "r1",
            "busybox:1.36",
            "echo hello; echo oops >&2; exit 3",
        ),
    )
    .await
    .unwrap();

    let done = finished_job(&jobs, "fails").await;
    assert_eq!(
        conditions(&done),
        vec![
            (
                "FailureTarget".to_string(),
                "BackoffLimitExceeded".to_string()
            ),
            ("Failed".to_string(), "BackoffLimitExceeded".to_string())
        ]
    );
    let status = done.status.unwrap();
    assert_eq!(
        (status.failed, status.active, status.succeeded),
        (Some(1), Some(0), None)
    );
    assert!(status.start_time.is_some() && status.completion_time.is_none());

    let pod = pod_of(&pods, "fails").await;
    let pod = until("the pod to fail", || async {
        pods.get(pod.metadata.name.as_deref().unwrap())
            .await
            .ok()
            .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Failed"))
    })
    .await;
    let owner = &pod.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str(), owner.controller),
        ("Job", "fails", Some(true))
    );
    let labels = pod.metadata.labels.as_ref().unwrap();
    assert_eq!(labels.get("chainr.io/run").map(String::as_str), Some("r1"));
    assert_eq!(
        labels
            .get("batch.kubernetes.io/job-name")
            .map(String::as_str),
        Some("fails")
    );
    let cs = &pod
        .status
        .as_ref()
        .unwrap()
        .container_statuses
        .as_ref()
        .unwrap()[0];
    let t = cs.state.as_ref().unwrap().terminated.as_ref().unwrap();
    assert_eq!((t.exit_code, t.reason.as_deref()), (3, Some("Error")));

    let name = pod.metadata.name.unwrap();
    let text = pods.logs(&name, &LogParams::default()).await.unwrap();
    assert_eq!(text, "hello\noops\n");
    let stamped = pods
        .logs(
            &name,
            &LogParams {
                timestamps: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let first = stamped.lines().next().unwrap();
    let (ts, line) = first.split_once(' ').unwrap();
    assert_eq!(line, "hello");
    assert!(
        ts.ends_with('Z') && ts.len() == "2024-01-01T00:00:00.000000000Z".len(),
        "{ts}"
    );
    let tail = pods
        .logs(
            &name,
            &LogParams {
                tail_lines: Some(1),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(tail, "oops\n");
    let hour_ago =
        k8s_openapi::jiff::Timestamp::now() - k8s_openapi::jiff::SignedDuration::from_secs(3600);
    let since = LogParams {
        since_time: Some(hour_ago),
        ..Default::default()
    };
    assert_eq!(pods.logs(&name, &since).await.unwrap(), "hello\noops\n");
    let in_an_hour =
        k8s_openapi::jiff::Timestamp::now() + k8s_openapi::jiff::SignedDuration::from_secs(3600);
    let since = LogParams {
        since_time: Some(in_an_hour),
        ..Default::default()
    };
    assert_eq!(pods.logs(&name, &since).await.unwrap(), "");
    let counts = api.counts();
    assert!(counts.log >= 5 && counts.create == 1, "{counts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn succeeding_job_and_followed_logs() {
    let api = KubeApi::new();
    let client = api.client(NS);
    let jobs: Api<Job> = Api::namespaced(client.clone(), NS);
    let pods: Api<Pod> = Api::namespaced(client, NS);
    let mut j = job(
        "ok",
        "r1",
        "alpine",
        "echo A=$(A) $$HOME; for i in 1 2 3; do echo line $i; sleep 0.2; done",
    );
    j.spec
        .as_mut()
        .unwrap()
        .template
        .spec
        .as_mut()
        .unwrap()
        .containers[0]
        .env = Some(vec![serde_json::from_value(
        json!({ "name": "A", "value": "one" }),
    )
    .unwrap()]);
    jobs.create(&PostParams::default(), &j).await.unwrap();
    let pod = pod_of(&pods, "ok").await;
    let name = pod.metadata.name.unwrap();
    // Logs open once the pod has left Pending; follow runs until the container ends.
    until("the pod to run", || async {
        let p = pods.get(&name).await.ok()?;
        (p.status?.phase.as_deref() != Some("Pending")).then_some(())
    })
    .await;
    let lp = LogParams {
        follow: true,
        timestamps: true,
        ..Default::default()
    };
    let mut lines = pods.log_stream(&name, &lp).await.unwrap().lines();
    let mut got = Vec::new();
    while let Some(line) = lines.try_next().await.unwrap() {
        got.push(line.split_once(' ').unwrap().1.to_string());
    }
    let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
    assert_eq!(
        got,
        vec![
            format!("A=one {home}"),
            "line 1".into(),
            "line 2".into(),
            "line 3".into()
        ]
    );

    let done = finished_job(&jobs, "ok").await;
    assert_eq!(
        conditions(&done),
        vec![
            (
                "SuccessCriteriaMet".to_string(),
                "CompletionsReached".to_string()
            ),
            ("Complete".to_string(), "CompletionsReached".to_string())
        ]
    );
    let status = done.status.unwrap();
    assert_eq!((status.succeeded, status.active), (Some(1), Some(0)));
    assert!(status.completion_time.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_failure_and_missing_secret_stay_pending() {
    let api = KubeApi::new();
    api.script_image("registry.invalid/", Behaviour::PullFail);
    api.set_pull_backoff_after(Duration::from_millis(200));
    let client = api.client(NS);
    let jobs: Api<Job> = Api::namespaced(client.clone(), NS);
    let pods: Api<Pod> = Api::namespaced(client, NS);
    jobs.create(
        &PostParams::default(),
        &job("pull", "r1", "registry.invalid/nope:1", "true"),
    )
    .await
    .unwrap();
    let pod = pod_of(&pods, "pull").await;
    let name = pod.metadata.name.unwrap();
    let mut seen: Vec<String> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while seen.last().map(String::as_str) != Some("ImagePullBackOff") {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for ImagePullBackOff: {seen:?}"
        );
        if let Some(r) = waiting_reason(&pods.get(&name).await.unwrap()) {
            if seen.last() != Some(&r) {
                seen.push(r);
            }
        }
        sleep(Duration::from_millis(20)).await;
    }
    assert!(seen.contains(&"ErrImagePull".to_string()), "{seen:?}");
    let p = pods.get(&name).await.unwrap();
    assert_eq!(p.status.unwrap().phase.as_deref(), Some("Pending"));
    let e = api_error(pods.logs(&name, &LogParams::default()).await.unwrap_err());
    assert_eq!((e.code, e.reason.as_str()), (400, "BadRequest"));
    assert!(e.message.contains("is waiting to start"), "{}", e.message);
    assert!(!finished(&jobs.get("pull").await.unwrap()));

    // A Secret reference that does not resolve: CreateContainerConfigError until it does.
    let mut j = job("secret", "r1", "alpine", "echo token=$TOKEN");
    j.spec
        .as_mut()
        .unwrap()
        .template
        .spec
        .as_mut()
        .unwrap()
        .containers[0]
        .env = Some(vec![serde_json::from_value(json!({
        "name": "TOKEN",
        "valueFrom": { "secretKeyRef": { "name": "creds", "key": "token" } }
    }))
    .unwrap()]);
    jobs.create(&PostParams::default(), &j).await.unwrap();
    let pod = pod_of(&pods, "secret").await;
    let name = pod.metadata.name.unwrap();
    until("CreateContainerConfigError", || async {
        let p = pods.get(&name).await.ok()?;
        (waiting_reason(&p)? == "CreateContainerConfigError").then_some(())
    })
    .await;
    api.set_secret(NS, "creds", "token", "s3cret");
    let done = finished_job(&jobs, "secret").await;
    assert_eq!(conditions(&done).last().unwrap().0, "Complete");
    assert_eq!(
        pods.logs(&name, &LogParams::default()).await.unwrap(),
        "token=s3cret\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn active_deadline_kills_and_fails() {
    let api = KubeApi::new();
    let client = api.client(NS);
    let jobs: Api<Job> = Api::namespaced(client.clone(), NS);
    let pods: Api<Pod> = Api::namespaced(client, NS);
    let mut j = job("slow", "r1", "alpine", "echo start; sleep 30");
    j.spec.as_mut().unwrap().active_deadline_seconds = Some(1);
    jobs.create(&PostParams::default(), &j).await.unwrap();
    let pod = pod_of(&pods, "slow").await;
    let name = pod.metadata.name.unwrap();
    let pid = until("the container to start", || async {
        container_pid(&pods.get(&name).await.ok()?)
    })
    .await;
    assert!(group_alive(pid));

    let done = finished_job(&jobs, "slow").await;
    assert_eq!(
        conditions(&done),
        vec![
            ("FailureTarget".to_string(), "DeadlineExceeded".to_string()),
            ("Failed".to_string(), "DeadlineExceeded".to_string())
        ]
    );
    assert_eq!(done.status.unwrap().failed, Some(1));
    assert!(!group_alive(pid), "the container's processes are killed");
    let e = api_error(pods.get(&name).await.unwrap_err());
    assert_eq!(e.code, 404, "the job controller deletes the active pod");
    assert_eq!(api.running_processes(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn background_delete_kills_orphan_leaves() {
    let api = KubeApi::new();
    let client = api.client(NS);
    let jobs: Api<Job> = Api::namespaced(client.clone(), NS);
    let pods: Api<Pod> = Api::namespaced(client, NS);

    for name in ["bg", "orphan"] {
        jobs.create(
            &PostParams::default(),
            &job(name, "r1", "alpine", "echo up; sleep 300"),
        )
        .await
        .unwrap();
    }
    let bg = pod_of(&pods, "bg").await.metadata.name.unwrap();
    let orphan = pod_of(&pods, "orphan").await.metadata.name.unwrap();
    let bg_pid = until("bg to run", || async {
        container_pid(&pods.get(&bg).await.ok()?)
    })
    .await;
    let orphan_pid = until("orphan to run", || async {
        container_pid(&pods.get(&orphan).await.ok()?)
    })
    .await;
    assert_eq!(api.running_processes(), 2);

    jobs.delete("bg", &DeleteParams::background())
        .await
        .unwrap();
    assert_eq!(api_error(jobs.get("bg").await.unwrap_err()).code, 404);
    until("bg's pod to go", || async {
        pods.get(&bg).await.is_err().then_some(())
    })
    .await;
    until("bg's processes to die", || async {
        (!group_alive(bg_pid)).then_some(())
    })
    .await;

    jobs.delete("orphan", &DeleteParams::orphan())
        .await
        .unwrap();
    assert_eq!(api_error(jobs.get("orphan").await.unwrap_err()).code, 404);
    sleep(Duration::from_millis(200)).await;
    let p = pods.get(&orphan).await.unwrap();
    assert_eq!(p.status.unwrap().phase.as_deref(), Some("Running"));
    assert!(p.metadata.owner_references.unwrap_or_default().is_empty());
    assert!(group_alive(orphan_pid));
    assert_eq!(api.running_processes(), 1);

    // Deleting the pod itself kills it too.
    pods.delete(&orphan, &DeleteParams::default())
        .await
        .unwrap();
    until("the orphan to go", || async {
        pods.get(&orphan).await.is_err().then_some(())
    })
    .await;
    assert!(!group_alive(orphan_pid));
    assert_eq!(api.running_processes(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreground_delete_and_ttl() {
    let api = KubeApi::new();
    let client = api.client(NS);
    let jobs: Api<Job> = Api::namespaced(client.clone(), NS);
    let pods: Api<Pod> = Api::namespaced(client, NS);
    jobs.create(
        &PostParams::default(),
        &job("fg", "r1", "alpine", "sleep 300"),
    )
    .await
    .unwrap();
    let pod = pod_of(&pods, "fg").await.metadata.name.unwrap();
    until("fg to run", || async {
        container_pid(&pods.get(&pod).await.ok()?)
    })
    .await;
    jobs.delete("fg", &DeleteParams::foreground())
        .await
        .unwrap();
    until("fg to go", || async {
        jobs.get("fg").await.is_err().then_some(())
    })
    .await;
    assert!(pods.get(&pod).await.is_err());

    let mut j = job("ttl", "r1", "alpine", "true");
    j.spec.as_mut().unwrap().ttl_seconds_after_finished = Some(0);
    jobs.create(&PostParams::default(), &j).await.unwrap();
    until("the TTL to delete the job", || async {
        jobs.get("ttl").await.is_err().then_some(())
    })
    .await;
    let lp = ListParams::default().labels("job-name=ttl");
    until("its pod to go", || async {
        pods.list(&lp).await.ok()?.items.is_empty().then_some(())
    })
    .await;
}

/// The executor's way of watching: one watcher with a label selector, through an expired watch
/// (410: re-list) and a dropped connection (re-watch from the last version).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watcher_survives_expiry_and_dropped_connections() {
    let api = KubeApi::new();
    api.set_bookmark_interval(Duration::from_millis(100));
    api.script_image("hang/", Behaviour::Hang);
    let jobs: Api<Job> = Api::namespaced(api.client(NS), NS);
    let mut events = drive(jobs.clone(), "chainr.io/run=w");
    let mut inits = 0;
    let mut errors = 0;

    // Drives the watcher until `name` is applied.
    macro_rules! until_applied {
        ($name:expr) => {
            tokio::time::timeout(Duration::from_secs(20), async {
                loop {
                    match events.recv().await.expect("the watcher never ends") {
                        Ok(watcher::Event::Init) => inits += 1,
                        Ok(watcher::Event::Apply(j) | watcher::Event::InitApply(j))
                            if j.metadata.name.as_deref() == Some($name) =>
                        {
                            break
                        }
                        Ok(_) => {}
                        Err(_) => errors += 1,
                    }
                }
            })
            .await
            .expect("timed out")
        };
    }

    jobs.create(&PostParams::default(), &job("w1", "w", "hang/x", "true"))
        .await
        .unwrap();
    jobs.create(
        &PostParams::default(),
        &job("other", "not-w", "hang/x", "true"),
    )
    .await
    .unwrap();
    until_applied!("w1");
    assert_eq!(inits, 1);
    until("the watch to open", || async {
        (api.open_watches() == 1).then_some(())
    })
    .await;

    // 410 Expired on the open watch: the watcher reports it and re-lists.
    let lists = api.counts().list;
    assert_eq!(api.expire_watches(), 1);
    jobs.create(&PostParams::default(), &job("w2", "w", "hang/x", "true"))
        .await
        .unwrap();
    until_applied!("w2");
    assert_eq!(inits, 2, "re-listed after 410");
    assert_eq!(errors, 1);
    assert_eq!(api.counts().list, lists + 1);

    // A dropped connection: the watcher watches again from where it was, without a re-list.
    until("the watch to reopen", || async {
        (api.open_watches() == 1).then_some(())
    })
    .await;
    let (lists, watches) = (api.counts().list, api.counts().watch);
    assert_eq!(api.drop_watches(), 1);
    jobs.create(&PostParams::default(), &job("w3", "w", "hang/x", "true"))
        .await
        .unwrap();
    until_applied!("w3");
    assert_eq!(inits, 2, "no re-list after a dropped connection");
    assert_eq!(
        errors, 1,
        "a dropped connection ends the watch like an EOF, without an error"
    );
    assert_eq!(api.counts().list, lists);
    assert!(api.counts().watch > watches);

    // The next watch request expires at once: re-list again.
    api.expire_next_watch();
    api.drop_watches();
    jobs.create(&PostParams::default(), &job("w4", "w", "hang/x", "true"))
        .await
        .unwrap();
    until_applied!("w4");
    assert_eq!(inits, 3);

    // Deletes come through as Delete events.
    jobs.delete("w1", &DeleteParams::background())
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            if let Ok(watcher::Event::Delete(j)) = events.recv().await.unwrap() {
                assert_eq!(j.metadata.name.as_deref(), Some("w1"));
                break;
            }
        }
    })
    .await
    .unwrap();
    let watch_reqs: Vec<_> = api
        .requests()
        .into_iter()
        .filter(|r| r.kind == RequestKind::Watch)
        .collect();
    assert!(
        watch_reqs
            .iter()
            .all(|r| r.query.contains("labelSelector=chainr.io%2Frun%3Dw")),
        "{watch_reqs:?}"
    );
}

/// The streaming-list strategy: `sendInitialEvents=true`, then the `initial-events-end` bookmark.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watcher_with_streaming_lists() {
    let api = KubeApi::new();
    api.script_image("hang/", Behaviour::Hang);
    let jobs: Api<Job> = Api::namespaced(api.client(NS), NS);
    jobs.create(&PostParams::default(), &job("s1", "s", "hang/x", "true"))
        .await
        .unwrap();
    let config = watcher::Config::default()
        .labels("chainr.io/run=s")
        .streaming_lists();
    let mut events = watcher(jobs.clone(), config).boxed();
    let mut got = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            match events.next().await.unwrap().unwrap() {
                watcher::Event::Init => got.push("init".to_string()),
                watcher::Event::InitApply(j) => got.push(j.metadata.name.unwrap()),
                watcher::Event::InitDone => {
                    got.push("done".into());
                    jobs.create(&PostParams::default(), &job("s2", "s", "hang/x", "true"))
                        .await
                        .unwrap();
                }
                watcher::Event::Apply(j) if j.metadata.name.as_deref() == Some("s2") => break,
                _ => {}
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(got, ["init", "s1", "done"]);
    let requests = api.requests();
    let q = &requests
        .iter()
        .find(|r| r.kind == RequestKind::Watch)
        .unwrap()
        .query;
    assert!(q.contains("sendInitialEvents=true"), "{q}");
    assert_eq!(api.counts().list, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_watch_bookmarks_timeout_and_too_old_versions() {
    let api = KubeApi::new();
    api.set_bookmark_interval(Duration::from_millis(50));
    api.script_image("hang/", Behaviour::Hang);
    let jobs: Api<Job> = Api::namespaced(api.client(NS), NS);
    let created = jobs
        .create(&PostParams::default(), &job("b1", "r", "hang/x", "true"))
        .await
        .unwrap();
    let rv = created.metadata.resource_version.unwrap();

    // From the creation's version: later changes only, bookmarks, then the server-side timeout.
    let wp = WatchParams::default().timeout(1);
    let events: Vec<_> = jobs.watch(&wp, &rv).await.unwrap().collect().await;
    let events: Vec<WatchEvent<Job>> = events.into_iter().map(Result::unwrap).collect();
    assert!(events.iter().any(|e| matches!(e, WatchEvent::Bookmark(_))));
    assert!(
        events.iter().all(|e| !matches!(e, WatchEvent::Added(_))),
        "nothing new after {rv}"
    );
    assert!(
        events.iter().any(|e| matches!(e, WatchEvent::Modified(_))),
        "the controller's status writes"
    );

    // From "0": the current state as ADDED.
    let wp = WatchParams::default().timeout(1);
    let events: Vec<_> = jobs.watch(&wp, "0").await.unwrap().collect().await;
    assert!(matches!(events[0], Ok(WatchEvent::Added(_))));

    // Versions older than the kept history: a 410 Expired ERROR frame.
    api.set_history_limit(1);
    let events: Vec<_> = jobs.watch(&wp, "1").await.unwrap().collect().await;
    match &events[..] {
        [Ok(WatchEvent::Error(s))] => assert_eq!((s.code, s.reason.as_str()), (410, "Expired")),
        other => panic!("expected a single 410 frame, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injected_failures_and_request_counts() {
    let api = KubeApi::new();
    let jobs: Api<Job> = Api::namespaced(api.client(NS), NS);
    api.fail_next("GET", "/jobs", 429);
    let e = api_error(jobs.list(&ListParams::default()).await.unwrap_err());
    assert_eq!((e.code, e.reason.as_str()), (429, "TooManyRequests"));
    jobs.list(&ListParams::default()).await.unwrap();
    api.fail_next("post", "/namespaces/chainr-test/jobs", 500);
    let e = api_error(
        jobs.create(&PostParams::default(), &job("x", "r", "alpine", "true"))
            .await
            .unwrap_err(),
    );
    assert_eq!((e.code, e.reason.as_str()), (500, "InternalError"));
    let c = api.counts();
    assert_eq!((c.list, c.create, c.total()), (2, 1, 3));
    let r = &api.requests()[0];
    assert_eq!(
        (r.method.as_str(), r.path.as_str(), r.kind),
        (
            "GET",
            "/apis/batch/v1/namespaces/chainr-test/jobs",
            RequestKind::List
        )
    );
    api.reset_requests();
    assert_eq!(api.counts().total(), 0);
}

/// Over loopback with a generated kubeconfig, as `chainrc run --kube` uses it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_loopback_with_a_kubeconfig() {
    let api = KubeApi::new();
    let addr = api.serve().await;
    let yaml = api.kubeconfig(addr, NS);
    let kc = kube::config::Kubeconfig::from_yaml(&yaml).unwrap();
    let config =
        kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
            .await
            .unwrap();
    assert_eq!(config.default_namespace, NS);
    let client = kube::Client::try_from(config).unwrap();
    let jobs: Api<Job> = Api::default_namespaced(client.clone());
    let pods: Api<Pod> = Api::default_namespaced(client);

    let mut events = drive(jobs.clone(), "chainr.io/run=tcp");
    jobs.create(
        &PostParams::default(),
        &job("tcp", "tcp", "alpine", "echo over tcp"),
    )
    .await
    .unwrap();
    let done = finished_job(&jobs, "tcp").await;
    assert_eq!(conditions(&done).last().unwrap().0, "Complete");
    let pod = pod_of(&pods, "tcp").await.metadata.name.unwrap();
    let lp = LogParams {
        follow: true,
        ..Default::default()
    };
    assert_eq!(pods.logs(&pod, &lp).await.unwrap(), "over tcp\n");

    // The watcher over TCP survives a dropped connection too.
    let mut seen_complete = false;
    let mut dropped = false;
    let (mut inits, mut errors) = (0, 0);
    tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(ev) = events.recv().await {
            match &ev {
                Ok(watcher::Event::Init) => inits += 1,
                Err(_) => errors += 1,
                _ => {}
            }
            if let Ok(watcher::Event::Apply(j) | watcher::Event::InitApply(j)) = ev {
                if j.metadata.name.as_deref() == Some("tcp2") {
                    break;
                }
                if finished(&j) && !seen_complete {
                    seen_complete = true;
                    until("the watch to open", || async {
                        (api.open_watches() >= 1).then_some(())
                    })
                    .await;
                    dropped = api.drop_watches() >= 1;
                    jobs.create(
                        &PostParams::default(),
                        &job("tcp2", "tcp", "alpine", "true"),
                    )
                    .await
                    .unwrap();
                }
            }
        }
    })
    .await
    .expect("timed out");
    assert!(seen_complete && dropped);
    assert_eq!(
        (inits, errors),
        (1, 0),
        "re-watched after the drop, without an error or a re-list"
    );
}
