//! `chainrc run --kube`, the real binary, against the test API server over loopback with a
//! generated kubeconfig: outcomes, logs, timeouts, pull failures, watch disruption, cancel,
//! and the number of API requests per job.

use assert_cmd::cargo::CommandCargoExt;
use chainr_kube_api::{Behaviour, KubeApi};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub(crate) const NS: &str = "ci";

/// The test API server over loopback, a kubeconfig for it, a directory for the test's files.
pub(crate) struct Cluster {
    pub(crate) api: KubeApi,
    pub(crate) kubeconfig: PathBuf,
    pub(crate) dir: tempfile::TempDir,
    _runtime: tokio::runtime::Runtime,
}

pub(crate) fn cluster() -> Cluster {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let api = KubeApi::new();
    let addr = runtime.block_on(api.serve());
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(&kubeconfig, api.kubeconfig(addr, NS)).unwrap();
    Cluster {
        api,
        kubeconfig,
        dir,
        _runtime: runtime,
    }
}

impl Cluster {
    fn file(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    fn command(&self, file: &Path, extra: &[&str]) -> Command {
        let mut cmd = Command::cargo_bin("chainrc").unwrap();
        cmd.env("KUBECONFIG", &self.kubeconfig)
            .args(["run", "--kube", "--format", "json"]);
        // A short grace for stuck pods, unless the test sets its own.
        if !extra.contains(&"--waiting-grace") {
            cmd.args(["--waiting-grace", "1"]);
        }
        cmd.arg("--logs")
            .arg(self.dir.path().join("logs"))
            .args(extra)
            .arg(file)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    }

    fn run(&self, file: &Path, extra: &[&str]) -> (Option<i32>, Value) {
        let out = self.command(file, extra).output().unwrap();
        let doc = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
            panic!(
                "no Run document; stderr: {}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
        (out.status.code(), doc)
    }
}

fn job<'a>(doc: &'a Value, name: &str) -> &'a Value {
    doc["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["name"] == name)
        .unwrap()
}

fn status<'a>(doc: &'a Value, name: &str) -> &'a str {
    job(doc, name)["status"].as_str().unwrap()
}

fn log(doc: &Value, name: &str) -> String {
    let path = job(doc, name)["attempts"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()["log"]
        .as_str()
        .map(str::to_string);
    path.map(|p| std::fs::read_to_string(p).unwrap())
        .unwrap_or_default()
}

#[test]
fn the_seed_example_and_a_fallback_run_as_kubernetes_jobs_with_their_logs() {
    let c = cluster();
    let file = c.file(
        "p.chainr",
        r#"pipeline p {
  defaults { image = "busybox:1.36" }
  job first { run = "echo hello from $CHAINR_JOB attempt $CHAINR_ATTEMPT $(echo as)-written" }
  job second { run = "exit 0" }
  job success after first { run = "exit 0" }
  job error after first.failed { run = "exit 0" }
  job broken after second { run = "echo oh no >&2; exit 3" }
  job fallback after broken.failed { run = "echo falling back" }
}"#,
    );
    let (code, doc) = c.run(&file, &[]);
    assert_eq!(code, Some(1), "{doc}");
    assert_eq!(doc["status"], "FAILED");
    for (name, want) in [
        ("first", "SUCCESSFUL"),
        ("second", "SUCCESSFUL"),
        ("success", "SUCCESSFUL"),
        ("error", "SKIPPED"),
        ("broken", "FAILED"),
        ("fallback", "SUCCESSFUL"),
    ] {
        assert_eq!(status(&doc, name), want, "{name}: {doc}");
    }
    // `$(...)` reaches the shell, not Kubernetes' own `$(VAR)` expansion.
    assert_eq!(
        log(&doc, "first"),
        "hello from first attempt 1 as-written\n"
    );
    assert_eq!(log(&doc, "broken"), "oh no\n");
    assert_eq!(job(&doc, "broken")["reason"], "exit code 3");
    assert_eq!(log(&doc, "fallback"), "falling back\n");
    // Every Job carries the run's labels, one per attempt.
    let jobs = c.api.jobs(NS);
    assert_eq!(jobs.len(), 5, "skipped jobs create nothing");
    for j in &jobs {
        let labels = j.metadata.labels.as_ref().unwrap();
        assert_eq!(labels["app.kubernetes.io/managed-by"], "chainr");
        assert_eq!(
            labels["chainr.io/run"],
            doc["metadata"]["uid"].as_str().unwrap()
        );
        assert_eq!(j.spec.as_ref().unwrap().backoff_limit, Some(0));
    }
}

/// An image that cannot be pulled, in a job whose timeout comes before the grace period for
/// stuck pods: the timeout ends the attempt, and its reason says why the pod never started.
#[test]
fn a_timeout_before_the_pull_grace_says_the_pod_never_started() {
    let c = cluster();
    c.api.script_image("pull-fail.example", Behaviour::PullFail);
    let file = c.file(
        "p.chainr",
        r#"pipeline p {
  job unpullable { image = "pull-fail.example/nope:1" run = "true" timeout = 2s }
}"#,
    );
    let (code, doc) = c.run(&file, &["--waiting-grace", "120"]);
    assert_eq!(code, Some(1));
    assert_eq!(status(&doc, "unpullable"), "FAILED");
    let reason = job(&doc, "unpullable")["reason"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(reason.starts_with("timed out after 2s"), "{reason}");
    assert!(
        reason.contains("ErrImagePull") || reason.contains("ImagePullBackOff"),
        "{reason}"
    );
    assert!(reason.contains("never started"), "{reason}");
}

#[test]
fn timeouts_retries_and_pull_failures() {
    let c = cluster();
    c.api.script_image("pull-fail.example", Behaviour::PullFail);
    let file = c.file(
        "p.chainr",
        r#"pipeline p {
  defaults { image = "busybox:1.36" }
  job slow { run = "sleep 30" timeout = 1s }
  job flaky { run = "test $CHAINR_ATTEMPT -ge 2 || exit 1" retries = 1 backoff = 100ms }
  job unpullable { image = "pull-fail.example/nope:1" run = "true" }
}"#,
    );
    let start = Instant::now();
    let (code, doc) = c.run(&file, &[]);
    assert!(
        start.elapsed() < Duration::from_secs(20),
        "the timeout and the grace period end it"
    );
    assert_eq!(code, Some(1));
    assert_eq!(status(&doc, "slow"), "FAILED");
    assert_eq!(job(&doc, "slow")["reason"], "timed out after 1s");
    assert_eq!(status(&doc, "flaky"), "SUCCESSFUL");
    assert_eq!(job(&doc, "flaky")["attempts"].as_array().unwrap().len(), 2);
    assert_eq!(status(&doc, "unpullable"), "ERRORED");
    assert!(
        job(&doc, "unpullable")["reason"]
            .as_str()
            .unwrap()
            .contains("ErrImagePull")
            || job(&doc, "unpullable")["reason"]
                .as_str()
                .unwrap()
                .contains("ImagePullBackOff")
    );
    // The stuck Job was deleted, its pod with it: Background propagation removes the pod after
    // the Job, as the garbage collector gets to it.
    let images = || -> Vec<String> {
        c.api
            .pods(NS)
            .iter()
            .filter_map(|p| p.spec.as_ref()?.containers[0].image.clone())
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while images().iter().any(|i| i.starts_with("pull-fail")) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let left = images();
    assert!(!left.iter().any(|i| i.starts_with("pull-fail")), "{left:?}");
    assert_eq!(c.api.running_processes(), 0);
}

#[test]
fn expired_and_dropped_watches_do_not_lose_outcomes() {
    let c = cluster();
    let file = c.file(
        "p.chainr",
        r#"pipeline p {
  defaults { image = "busybox:1.36" }
  job a { run = "sleep 0.5; echo a" }
  job b after a { run = "sleep 0.5; echo b" }
  job c after b { run = "sleep 0.5; echo c" }
  job d after c.failed { run = "echo never" }
}"#,
    );
    let child = c.command(&file, &[]).spawn().unwrap();
    let api = c.api.clone();
    let disrupt = std::thread::spawn(move || {
        for k in 0..6 {
            std::thread::sleep(Duration::from_millis(300));
            if k % 2 == 0 {
                api.expire_watches();
            } else {
                api.drop_watches();
            }
        }
    });
    let out = child.wait_with_output().unwrap();
    disrupt.join().unwrap();
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(0), "{doc}");
    for (name, want) in [
        ("a", "SUCCESSFUL"),
        ("b", "SUCCESSFUL"),
        ("c", "SUCCESSFUL"),
        ("d", "SKIPPED"),
    ] {
        assert_eq!(status(&doc, name), want, "{name}");
    }
    assert_eq!(log(&doc, "c"), "c\n");
    assert_eq!(c.api.jobs(NS).len(), 3, "no Job created twice");
}

#[test]
fn cancel_deletes_what_it_created() {
    let c = cluster();
    let file = c.file(
        "p.chainr",
        r#"pipeline p {
  defaults { image = "busybox:1.36" }
  job a { run = "sleep 60" }
  job b { run = "sleep 60" }
  job c after a { run = "true" }
  finally { job report { run = "echo status=$CHAINR_RUN_STATUS" } }
}"#,
    );
    let child = c.command(&file, &[]).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while c.api.running_processes() < 2 {
        assert!(Instant::now() < deadline, "the jobs never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    let killed = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let out = child.wait_with_output().unwrap();
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(130), "{doc}");
    assert_eq!(doc["status"], "CANCELLED");
    for (name, want) in [
        ("a", "CANCELLED"),
        ("b", "CANCELLED"),
        ("c", "CANCELLED"),
        ("report", "SUCCESSFUL"),
    ] {
        assert_eq!(status(&doc, name), want, "{name}: {doc}");
    }
    assert_eq!(log(&doc, "report"), "status=cancelled\n");
    let deadline = Instant::now() + Duration::from_secs(5);
    while c.api.running_processes() > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(c.api.running_processes(), 0, "no container left running");
    let jobs: Vec<String> = c
        .api
        .jobs(NS)
        .iter()
        .filter_map(|j| j.metadata.name.clone())
        .collect();
    assert_eq!(
        jobs.len(),
        1,
        "only the finally job's Job is left (to its TTL): {jobs:?}"
    );
}

#[test]
fn a_thousand_jobs_in_one_run_cost_few_requests_each() {
    let c = cluster();
    let mut src = String::from("pipeline wide {\n  defaults { image = \"busybox:1.36\" }\n");
    for i in 0..1000 {
        src.push_str(&format!("  job j{i} {{ run = \"echo {i}\" }}\n"));
    }
    src.push_str("}\n");
    let file = c.file("wide.chainr", &src);
    c.api.reset_requests();
    let start = Instant::now();
    let (code, doc) = c.run(&file, &[]);
    let took = start.elapsed();
    assert_eq!(code, Some(0), "{}", doc["status"]);
    assert_eq!(log(&doc, "j999"), "999\n");
    let requests = c.api.requests().len();
    let per_job = requests as f64 / 1000.0;
    eprintln!(
        "1000 jobs in {took:?}: {requests} API requests, {per_job:.2} per job ({:?})",
        c.api.counts()
    );
    assert!(per_job <= 4.0, "{per_job} requests per job");
}

/// The opt-in suite for a real cluster (kind, k3d, minikube, a cloud one): ignored by default.
/// Run with `CHAINR_REAL_CLUSTER=1 cargo test --test it kube::real -- --ignored`, with kubeconfig
/// pointing at the cluster and the namespace in `CHAINR_NAMESPACE` (default `chainr`); see
/// docs/kubernetes.md for the setup (namespace, RBAC, images).
#[test]
#[ignore = "needs a real cluster: CHAINR_REAL_CLUSTER=1"]
fn real_cluster_runs_the_seed_example_and_a_failure() {
    assert!(
        std::env::var_os("CHAINR_REAL_CLUSTER").is_some(),
        "set CHAINR_REAL_CLUSTER=1 to run against a cluster"
    );
    let namespace = std::env::var("CHAINR_NAMESPACE").unwrap_or_else(|_| "chainr".into());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("real.chainr");
    std::fs::write(
        &file,
        r#"pipeline real {
  defaults { image = "busybox:1.36" }
  job first { run = "echo hello" }
  job second { run = "exit 0" }
  job success after first { run = "exit 0" }
  job error after first.failed { run = "exit 0" }
  job broken { run = "exit 3" allow_failure = true }
  job slow { run = "sleep 60" timeout = 5s allow_failure = true }
}"#,
    )
    .unwrap();
    let out = Command::cargo_bin("chainrc")
        .unwrap()
        .args([
            "run",
            "--kube",
            "--namespace",
            &namespace,
            "--format",
            "json",
            "--logs",
        ])
        .arg(dir.path().join("logs"))
        .arg(&file)
        .output()
        .unwrap();
    let doc: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(out.status.code(), Some(0), "{doc}");
    for (name, want) in [
        ("first", "SUCCESSFUL"),
        ("second", "SUCCESSFUL"),
        ("success", "SUCCESSFUL"),
        ("error", "SKIPPED"),
        ("broken", "FAILED"),
        ("slow", "FAILED"),
    ] {
        assert_eq!(status(&doc, name), want, "{name}");
    }
    assert_eq!(log(&doc, "first"), "hello\n");
    assert_eq!(job(&doc, "slow")["reason"], "timed out after 5s");
}

/// The examples give the same outcomes on Kubernetes as on this machine (the test kubelet runs
/// the same shell scripts): a check of the executor against the local one. The examples whose
/// runs take minutes (long backoffs and timeouts) or depend on timing (fail_fast) are left out.
#[test]
fn examples_have_the_same_outcomes_on_kubernetes_as_locally() {
    let c = cluster();
    for example in ["seed", "cicd", "params", "templates"] {
        let file = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("examples/{example}.chainr"));
        // The secrets the examples read exist in the test cluster.
        let ir: Value = serde_json::from_slice(
            &Command::cargo_bin("chainrc")
                .unwrap()
                .arg("compile")
                .arg(&file)
                .output()
                .unwrap()
                .stdout,
        )
        .unwrap();
        for job in ir["jobs"].as_object().unwrap().values() {
            for s in job["secretEnv"]
                .as_object()
                .into_iter()
                .flat_map(|m| m.values())
            {
                c.api.set_secret(
                    NS,
                    s["secret"].as_str().unwrap(),
                    s["key"].as_str().unwrap(),
                    "test-value",
                );
            }
        }
        let local = Command::cargo_bin("chainrc")
            .unwrap()
            .args(["run", "--format", "json", "--logs"])
            .arg(c.dir.path().join(format!("local-{example}")))
            .arg(&file)
            .output()
            .unwrap();
        let local: Value = serde_json::from_slice(&local.stdout).unwrap();
        let (_, kube) = c.run(&file, &[]);
        let statuses = |doc: &Value| -> Vec<(String, String)> {
            doc["jobs"]
                .as_array()
                .unwrap()
                .iter()
                .map(|j| {
                    (
                        j["name"].as_str().unwrap().to_string(),
                        j["status"].as_str().unwrap().to_string(),
                    )
                })
                .collect()
        };
        assert_eq!(statuses(&kube), statuses(&local), "{example}");
        assert_eq!(kube["status"], local["status"], "{example}");
    }
}

/// chainrc killed in the middle of a run, then the same run again (`--run-id`): the Job already
/// created is adopted, not started a second time.
#[test]
fn a_run_resumed_after_a_crash_adopts_its_jobs() {
    let c = cluster();
    let file = c.file(
        "p.chainr",
        r#"pipeline p {
  job once { image = "busybox:1.36" run = "sleep 2; echo done" }
}"#,
    );
    let mut first = c.command(&file, &["--run-id", "resume-1"]).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while c.api.running_processes() < 1 {
        assert!(Instant::now() < deadline, "the job never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    first.kill().unwrap(); // SIGKILL: no cleanup, as in a crash
    first.wait().unwrap();
    let (code, doc) = c.run(&file, &["--run-id", "resume-1"]);
    assert_eq!(code, Some(0), "{doc}");
    assert_eq!(status(&doc, "once"), "SUCCESSFUL");
    assert_eq!(log(&doc, "once"), "done\n");
    let jobs = c.api.jobs(NS);
    assert_eq!(jobs.len(), 1, "one Job for the attempt, adopted");
    let pods = c.api.pods(NS);
    assert_eq!(pods.len(), 1, "the script ran once");
}
