//! `chainrc serve` crashes across processes: the real binary on a real Redis (`redis-server`
//! with AOF, on a free port, killed with SIGKILL and restarted on the same port and data) and on
//! the project's test Kubernetes API server over loopback. A worker process killed mid-run is
//! taken over by another once its lease expires while the API goes on answering; a Redis killed
//! mid-run is reconnected to by itself; two workers share fifty runs without running a job twice;
//! a Kubernetes Job in flight is adopted by the worker that takes its run over, not created again.

#[path = "../../store-redis/tests/it/server.rs"]
mod redis_server;

use crate::kube::{cluster, NS};
use crate::serve::{markers, marking_job, p, uid, wait_for, Server};
use chainr_kube_api::RequestKind;
pub(crate) use redis_server::RedisServer;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::path::Path;
use std::time::{Duration, Instant};

/// A run that is no longer pending or running.
fn terminal(doc: &Value) -> bool {
    !["PENDING", "RUNNING", ""].contains(&doc["status"].as_str().unwrap_or(""))
}

/// A job's status in the run's document as the server has it stored ("" if it cannot say).
fn job_status(server: &Server, run: &str, job: &str) -> String {
    let a = server.get(&format!("/api/runs/{run}"));
    if a.status != 200 {
        return String::new();
    }
    let doc = a.json();
    doc["jobs"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|j| j["name"] == job)
        .and_then(|j| j["status"].as_str())
        .unwrap_or("")
        .to_string()
}

/// The uids of the runs the server lists (the first 500).
fn listed(server: &Server) -> BTreeSet<String> {
    let a = server.get("/api/runs?limit=500");
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    a.json()["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["metadata"]["uid"].as_str().unwrap().to_string())
        .collect()
}

/// How many lines of the markers file are `line`.
fn count(dir: &Path, line: &str) -> usize {
    markers(dir).iter().filter(|l| *l == line).count()
}

fn worker_args<'a>(url: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["--no-auth", "--redis", url, "--roles", "worker"];
    args.extend_from_slice(extra);
    args
}

#[test]
fn a_sigkilled_worker_process_is_taken_over_by_another_while_the_api_answers() {
    let redis = RedisServer::start();
    let url = redis.url();
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let api = Server::start(&["--no-auth", "--redis", &url, "--roles", "api"]);
    let first = Server::start(&worker_args(
        &url,
        &["--lease", "2s", "--worker-id", "first"],
    ));
    let pipeline = format!(
        r#"{{"kind": "Pipeline", "jobs": {{{}, {}, {}, {}}}}}"#,
        marking_job(dir, "a", 1, None),
        marking_job(dir, "b", 1, Some("a")),
        marking_job(dir, "c", 8, Some("b")),
        marking_job(dir, "d", 1, Some("c")),
    );
    let run = uid(&api.post_json("/api/runs", &pipeline));
    // In flight: started, and its start (with b's end) stored.
    wait_for(Duration::from_secs(60), "job c to run", || {
        markers(dir).contains(&"start c".to_string()) && job_status(&api, &run, "c") == "RUNNING"
    });
    let killed = Instant::now();
    first.kill();
    let second = Server::start(&worker_args(
        &url,
        &["--lease", "2s", "--worker-id", "second"],
    ));
    // The API answers every poll, through the outage and the take-over, until the run ends.
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut polls = 0;
    let mut taken_over = None;
    let doc = loop {
        let a = api.get(&format!("/api/runs/{run}"));
        assert_eq!(
            a.status,
            200,
            "poll {polls}: {}",
            String::from_utf8_lossy(&a.body)
        );
        polls += 1;
        if taken_over.is_none() && count(dir, "start c") == 2 {
            taken_over = Some(killed.elapsed());
        }
        let doc = a.json();
        if terminal(&doc) {
            break doc;
        }
        assert!(
            Instant::now() < deadline,
            "run still {}:\n{}",
            doc["status"],
            second.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(doc["status"], "SUCCESSFUL", "{doc}\n{}", second.log());
    // Not before the lease (2 s, renewed every 2/3 s) could have expired; a second worker that
    // ignored it would have started c again as soon as it was up.
    if let Some(after) = taken_over {
        assert!(
            after >= Duration::from_millis(500),
            "c again after {after:?}"
        );
    }
    let m = markers(dir);
    for finished_before in ["a", "b"] {
        assert_eq!(count(dir, &format!("start {finished_before}")), 1, "{m:?}");
        assert_eq!(count(dir, &format!("end {finished_before}")), 1, "{m:?}");
    }
    assert!((1..=2).contains(&count(dir, "start c")), "{m:?}");
    assert!((1..=2).contains(&count(dir, "end c")), "{m:?}");
    assert_eq!(count(dir, "start d"), 1, "{m:?}");
    assert!(!m.iter().any(|l| l.starts_with("OVERLAP")), "{m:?}");
    eprintln!("{polls} polls, all answered; c started again {taken_over:?} after the kill");
}

#[test]
fn redis_sigkilled_mid_run_and_restarted_is_reconnected_to_and_loses_no_run() {
    let mut redis = RedisServer::start();
    let url = redis.url();
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let api = Server::start(&["--no-auth", "--redis", &url, "--roles", "api"]);
    let worker = Server::start(&worker_args(&url, &["--lease", "2s"]));
    let pipeline = format!(
        r#"{{"kind": "Pipeline", "jobs": {{{}, {}, {}}}}}"#,
        marking_job(dir, "a", 1, None),
        marking_job(dir, "b", 3, Some("a")),
        marking_job(dir, "c", 1, Some("b")),
    );
    let run = uid(&api.post_json("/api/runs", &pipeline));
    let empty = r#"{"kind": "Pipeline", "jobs": {}}"#;
    let accepted: Vec<String> = (0..5)
        .map(|_| uid(&api.post_json("/api/runs", empty)))
        .chain([run.clone()])
        .collect();
    wait_for(Duration::from_secs(60), "job b to run", || {
        markers(dir).contains(&"start b".to_string()) && job_status(&api, &run, "b") == "RUNNING"
    });
    redis.kill();
    for (name, server) in [("api", &api), ("worker", &worker)] {
        wait_for(
            Duration::from_secs(30),
            &format!("{name}: not ready"),
            || server.get("/readyz").status == 503,
        );
    }
    // Nothing is accepted while Redis is down, and the refusal says when to try again.
    let refused = api.post_json("/api/runs", empty);
    assert_eq!(
        refused.status,
        503,
        "{}",
        String::from_utf8_lossy(&refused.body)
    );
    assert!(
        refused.head.to_ascii_lowercase().contains("retry-after:"),
        "{}",
        refused.head
    );
    // b ends while Redis is down: its end cannot be stored.
    wait_for(Duration::from_secs(30), "job b to end", || {
        markers(dir).contains(&"end b".to_string())
    });
    redis.restart();
    for (name, server) in [("api", &api), ("worker", &worker)] {
        wait_for(
            Duration::from_secs(60),
            &format!("{name}: ready again"),
            || server.get("/readyz").status == 200,
        );
    }
    let doc = api.finished(&run, Duration::from_secs(120));
    assert_eq!(doc["status"], "SUCCESSFUL", "{doc}\n{}", worker.log());
    let now = listed(&api);
    for u in &accepted {
        assert!(now.contains(u), "{u} is missing from {now:?}");
        assert_eq!(
            api.finished(u, Duration::from_secs(60))["status"],
            "SUCCESSFUL"
        );
    }
    assert_eq!(now.len(), accepted.len(), "the refused run was not stored");
    // a ended before the kill and ran once. b's end was lost with Redis, so b ran again; c may
    // have been started on that end before the worker learnt that nothing could be stored (its
    // driver then stopped, killing c), and so ran again too. Never two at once.
    let m = markers(dir);
    assert_eq!(count(dir, "start a"), 1, "{m:?}");
    for again in ["b", "c"] {
        assert!(
            (1..=2).contains(&count(dir, &format!("start {again}"))),
            "{m:?}"
        );
    }
    assert!(!m.iter().any(|l| l.starts_with("OVERLAP")), "{m:?}");
    eprintln!("starts and ends: {m:?}");
}

#[test]
fn two_worker_processes_on_one_redis_run_every_job_of_fifty_runs_once() {
    let redis = RedisServer::start();
    let url = redis.url();
    let d = tempfile::tempdir().unwrap();
    let m = p(&d.path().join("markers"));
    let api = Server::start(&["--no-auth", "--redis", &url, "--roles", "api"]);
    // One line per start: the run, the job, and the worker process (from its environment).
    let job = |name: &str, after: &[&str]| {
        let deps: Vec<String> = after
            .iter()
            .map(|a| format!(r#"{{"job": "{a}"}}"#))
            .collect();
        let deps = if deps.is_empty() {
            String::new()
        } else {
            format!(r#", "dependsOn": [{}]"#, deps.join(", "))
        };
        format!(
            r#""{name}": {{"image": "busybox", "run": "echo start $CHAINR_RUN_ID $CHAINR_JOB $MARK_WORKER >> {m}"{deps}}}"#
        )
    };
    let pipeline = format!(
        r#"{{"kind": "Pipeline", "jobs": {{{}, {}, {}, {}, {}}}}}"#,
        job("j1", &[]),
        job("j2", &["j1"]),
        job("j3", &["j1"]),
        job("j4", &["j2", "j3"]),
        job("j5", &[]),
    );
    let runs: Vec<String> = (0..50)
        .map(|_| uid(&api.post_json("/api/runs", &pipeline)))
        .collect();
    // Both workers start at once on the queued runs, four runs at a time each.
    let started = Instant::now();
    let workers: Vec<Server> = std::thread::scope(|s| {
        let url = url.as_str();
        let spawned: Vec<_> = ["one", "two"]
            .into_iter()
            .map(|name| {
                s.spawn(move || {
                    Server::start_with_env(
                        "127.0.0.1:0",
                        &worker_args(url, &["--runs-at-once", "4", "--worker-id", name]),
                        &[("MARK_WORKER", OsStr::new(name))],
                    )
                })
            })
            .collect();
        spawned.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for r in &runs {
        let doc = api.finished(r, Duration::from_secs(180));
        assert_eq!(
            doc["status"],
            "SUCCESSFUL",
            "{doc}\n{}\n{}",
            workers[0].log(),
            workers[1].log()
        );
    }
    let took = started.elapsed();
    let lines = std::fs::read_to_string(d.path().join("markers")).unwrap();
    let mut starts: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for line in lines.lines() {
        let w: Vec<&str> = line.split(' ').collect();
        assert!(w.len() == 4 && w[0] == "start", "{line:?}");
        starts
            .entry((w[1].to_string(), w[2].to_string()))
            .or_default()
            .push(w[3].to_string());
    }
    for r in &runs {
        for j in ["j1", "j2", "j3", "j4", "j5"] {
            let by = starts.remove(&(r.clone(), j.to_string()));
            assert_eq!(by.as_ref().map(Vec::len), Some(1), "{r} {j}: {by:?}");
        }
    }
    assert!(starts.is_empty(), "starts of no submitted run: {starts:?}");
    let per_worker = |w: &str| {
        lines
            .lines()
            .filter(|l| l.ends_with(&format!(" {w}")))
            .count()
    };
    let (one, two) = (per_worker("one"), per_worker("two"));
    assert_eq!(one + two, 250);
    assert!(
        one > 0 && two > 0,
        "one worker did everything: {one} / {two}"
    );
    eprintln!("250 jobs in {took:?}: {one} by one worker, {two} by the other");
}

#[test]
fn a_sigkilled_kube_worker_is_taken_over_and_its_job_adopted_not_created_again() {
    let c = cluster();
    let data = c.dir.path().join("data");
    let args = [
        "--no-auth",
        "--data-dir",
        data.to_str().unwrap(),
        "--executor",
        "kube",
        "--lease",
        "2s",
    ];
    let env = [("KUBECONFIG", c.kubeconfig.as_os_str())];
    let first = Server::start_with_env("127.0.0.1:0", &args, &env);
    // One job, so every Job create the API server sees is for this job's one attempt.
    let pipeline = r#"{"kind": "Pipeline", "jobs": {
        "slow": {"image": "busybox:1.36", "run": "sleep 5; echo done"}}}"#;
    let run = uid(&first.post_json("/api/runs", pipeline));
    wait_for(
        Duration::from_secs(60),
        "the Job's container to run",
        || c.api.running_processes() == 1 && job_status(&first, &run, "slow") == "RUNNING",
    );
    first.kill();
    let second = Server::start_with_env("127.0.0.1:0", &args, &env);
    let doc = second.finished(&run, Duration::from_secs(90));
    assert_eq!(doc["status"], "SUCCESSFUL", "{doc}\n{}", second.log());
    let log = second.get(&format!("/api/runs/{run}/jobs/slow/logs"));
    assert_eq!(String::from_utf8_lossy(&log.body), "done\n");
    let creates: Vec<_> = c
        .api
        .requests()
        .into_iter()
        .filter(|r| r.kind == RequestKind::Create && r.path.ends_with("/jobs"))
        .collect();
    assert_eq!(creates.len(), 1, "{creates:?}");
    assert_eq!(c.api.jobs(NS).len(), 1);
    assert_eq!(c.api.pods(NS).len(), 1, "the script ran once");
}
