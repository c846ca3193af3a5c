//! `chainrc run` driven end to end, as a user would: real pipelines, real processes, the Run
//! document (`--format json`), log files (`--logs DIR`), exit codes, and no process left behind.
//!
//! Process checks use a symlink to `sleep` with a name no other test uses, so `pgrep -f` finds
//! exactly this test's processes even when tests run in parallel (a plain `sleep 30 # marker`
//! would not do: `sh -c` execs a lone command, and the comment is gone from its command line).

use assert_cmd::Command;
use predicates::prelude::*;
use serde_json::Value;
use std::collections::BTreeSet;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const BIN: &str = env!("CARGO_BIN_EXE_chainrc");

/// A run that hangs fails its test instead of hanging the suite.
const RUN_LIMIT: Duration = Duration::from_secs(20);

fn chainrc() -> Command {
    let mut cmd = Command::new(BIN);
    cmd.current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("NO_COLOR")
        .timeout(RUN_LIMIT);
    cmd
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// A path as it may stand inside a `.chainr` string or a JSON string.
fn p(path: &Path) -> String {
    let s = path.display().to_string();
    assert!(
        !s.contains(['"', '\\', '$']),
        "temp path unfit for a pipeline string: {s}"
    );
    s
}

struct Finished {
    code: i32,
    doc: Value,
    stderr: String,
    elapsed: Duration,
}

/// `chainrc run FILE --format json --logs LOGS ARGS...`, the Run document parsed.
fn run_json(file: &Path, logs: &Path, args: &[&str]) -> Finished {
    let started = Instant::now();
    let out = chainrc()
        .arg("run")
        .arg(file)
        .args(["--format", "json", "--logs"])
        .arg(logs)
        .args(args)
        .output()
        .unwrap();
    let elapsed = started.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not a Run document ({e}):\n{}\nstderr:\n{stderr}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    Finished {
        code: out.status.code().expect("chainrc ended by a signal"),
        doc,
        stderr,
        elapsed,
    }
}

fn job<'a>(doc: &'a Value, name: &str) -> &'a Value {
    doc["jobs"]
        .as_array()
        .expect("jobs is a list")
        .iter()
        .find(|j| j["name"] == name)
        .unwrap_or_else(|| panic!("no job `{name}` in the Run document:\n{doc:#}"))
}

fn status<'a>(doc: &'a Value, name: &str) -> &'a str {
    job(doc, name)["status"]
        .as_str()
        .expect("status is a string")
}

/// Each named job's status, for one readable assertion.
fn statuses(doc: &Value, names: &[&str]) -> Vec<(String, String)> {
    names
        .iter()
        .map(|n| (n.to_string(), status(doc, n).to_string()))
        .collect()
}

fn expect(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

fn attempts(doc: &Value, name: &str) -> Vec<Value> {
    job(doc, name)["attempts"]
        .as_array()
        .expect("attempts is a list")
        .clone()
}

fn time(v: &Value) -> SystemTime {
    let s = v.as_str().unwrap_or_else(|| panic!("not a timestamp: {v}"));
    humantime::parse_rfc3339(s).unwrap_or_else(|e| panic!("bad timestamp {s}: {e}"))
}

fn gap(from: SystemTime, to: SystemTime) -> Duration {
    to.duration_since(from)
        .unwrap_or_else(|_| panic!("{to:?} is before {from:?}"))
}

fn log(logs: &Path, job: &str, attempt: u32) -> String {
    let path = logs.join(format!("{job}.{attempt}.log"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// An attempt's output, empty when it wrote no log file (an attempt that printed nothing may
/// leave none).
fn output(logs: &Path, job: &str, attempt: u32) -> String {
    std::fs::read_to_string(logs.join(format!("{job}.{attempt}.log"))).unwrap_or_default()
}

// ------------------------------------------------------------------ processes

/// A name no other test (or test process) uses.
fn unique(tag: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("chainr-it-{tag}-{}-{nanos}", std::process::id())
}

fn sleep_binary() -> &'static str {
    ["/bin/sleep", "/usr/bin/sleep"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("a sleep binary")
}

/// `DIR/NAME`, a symlink to `sleep`: every process it starts has NAME in its command line.
fn sleeper(dir: &Path, name: &str) -> String {
    let path = dir.join(name);
    std::os::unix::fs::symlink(sleep_binary(), &path).unwrap();
    p(&path)
}

/// Live processes whose command line contains `marker` (zombies are dead: they don't count;
/// PID 1 of a container may never reap them).
fn live_processes(marker: &str) -> Vec<String> {
    let out = std::process::Command::new("pgrep")
        .arg("-af")
        .arg(marker)
        .output()
        .expect("pgrep is installed");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|line| {
            let pid = line.split_whitespace().next().unwrap_or("");
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                return false; // gone already
            };
            // `PID (COMM) STATE ...`: COMM may hold spaces and parentheses.
            let state = stat
                .rfind(')')
                .and_then(|i| stat[i + 1..].split_whitespace().next())
                .unwrap_or("");
            state != "Z" && state != "X"
        })
        .map(String::from)
        .collect()
}

/// Waits (a short while) until no live process has `marker`; returns those left.
fn wait_gone(marker: &str, within: Duration) -> Vec<String> {
    let deadline = Instant::now() + within;
    loop {
        let left = live_processes(marker);
        if left.is_empty() || Instant::now() >= deadline {
            return left;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Kills (by pid) whatever this test left behind, so a failing test does not leak `sleep`s.
fn cleanup(marker: &str) {
    for line in live_processes(marker) {
        if let Some(pid) = line.split_whitespace().next() {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", pid])
                .status();
        }
    }
}

// ------------------------------------------------------------------ 1. the seed example

const ORIGINAL_README_JSON: &str = include_str!("../../examples/seed.json");

fn check_seed_run(r: &Finished, name: Option<&str>) {
    assert_eq!(r.code, 0, "stderr:\n{}", r.stderr);
    let doc = &r.doc;
    assert_eq!(doc["kind"], "Run");
    let uid = doc["metadata"]["uid"].as_str().expect("metadata.uid");
    assert!(!uid.is_empty());
    assert_eq!(doc["metadata"]["selfLink"], format!("/api/runs/{uid}"));
    match name {
        Some(n) => assert_eq!(doc["metadata"]["name"], n),
        None => assert!(doc["metadata"].get("name").is_none(), "{doc:#}"),
    }
    assert_eq!(doc["status"], "SUCCESSFUL");
    let run_start = time(&doc["startedAt"]);
    let run_end = time(&doc["finishedAt"]);
    assert!(run_start <= run_end);
    // Jobs in pipeline order.
    let names: Vec<&str> = doc["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["first", "second", "success", "error"]);
    assert_eq!(
        statuses(doc, &["first", "second", "success", "error"]),
        expect(&[
            ("first", "SUCCESSFUL"),
            ("second", "SUCCESSFUL"),
            ("success", "SUCCESSFUL"),
            ("error", "SKIPPED"),
        ])
    );
    for name in ["first", "second", "success"] {
        let j = job(doc, name);
        assert_eq!(j["exitCode"], 0, "{j:#}");
        let (s, f) = (time(&j["startedAt"]), time(&j["finishedAt"]));
        assert!(run_start <= s && s <= f && f <= run_end, "{j:#}");
        let a = attempts(doc, name);
        assert_eq!(a.len(), 1, "{j:#}");
        assert_eq!(a[0]["attempt"], 1);
        assert_eq!(a[0]["status"], "SUCCESSFUL");
        assert_eq!(a[0]["exitCode"], 0);
    }
    // `success` waited for `first`.
    assert!(time(&job(doc, "success")["startedAt"]) >= time(&job(doc, "first")["finishedAt"]));
    // A skipped job never ran.
    let error = job(doc, "error");
    assert!(attempts(doc, "error").is_empty(), "{error:#}");
    assert!(error.get("exitCode").is_none(), "{error:#}");
    assert!(error.get("startedAt").is_none(), "{error:#}");
}

#[test]
fn seed_example_runs_in_chainr_form() {
    let dir = tempfile::tempdir().unwrap();
    let r = run_json(
        Path::new("examples/seed.chainr"),
        &dir.path().join("logs"),
        &[],
    );
    check_seed_run(&r, Some("example"));
}

#[test]
fn seed_example_runs_in_original_json_form() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "seed.json", ORIGINAL_README_JSON);
    let r = run_json(&file, &dir.path().join("logs"), &[]);
    check_seed_run(&r, None);
}

#[test]
fn the_original_empty_pipeline_runs_and_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "empty.json",
        r#"{"kind": "Pipeline", "jobs": {}}"#,
    );
    let r = run_json(&file, &dir.path().join("logs"), &[]);
    assert_eq!(r.code, 0, "stderr:\n{}", r.stderr);
    assert_eq!(r.doc["kind"], "Run");
    assert_eq!(r.doc["status"], "SUCCESSFUL");
    assert_eq!(r.doc["jobs"], serde_json::json!([]));
}

// ------------------------------------------------------------------ 2. the original form's semantics

#[test]
fn original_form_failure_conditions_cascade_and_fail_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "original.json",
        r#"{
  "kind": "Pipeline",
  "jobs": {
    "build": {"image": "busybox", "run": "echo building; exit 3"},
    "fallback": {"image": "busybox", "run": "exit 0", "dependsOn": [{"job": "build", "conditions": {"failure": true}}]},
    "deploy": {"image": "busybox", "run": "exit 0", "dependsOn": [{"job": "build"}]},
    "deploy-failed": {"image": "busybox", "run": "exit 0", "dependsOn": [{"job": "deploy", "conditions": {"failure": true}}]},
    "after-deploy": {"image": "busybox", "run": "exit 0", "dependsOn": [{"job": "deploy"}]},
    "explicit-false": {"image": "busybox", "run": "exit 0", "dependsOn": [{"job": "build", "conditions": {"failure": false}}]},
    "both": {"image": "busybox", "run": "exit 0", "dependsOn": [{"job": "fallback"}, {"job": "build", "conditions": {"failure": true}}]},
    "not-both": {"image": "busybox", "run": "exit 0", "dependsOn": [{"job": "fallback"}, {"job": "build"}]},
    "ok": {"image": "busybox", "run": "exit 0"},
    "ok-failed": {"image": "busybox", "run": "exit 0", "dependsOn": [{"job": "ok", "conditions": {"failure": true}}]}
  }
}"#,
    );
    let logs = dir.path().join("logs");
    let r = run_json(&file, &logs, &[]);
    let names = [
        "build",
        "fallback",
        "deploy",
        "deploy-failed",
        "after-deploy",
        "explicit-false",
        "both",
        "not-both",
        "ok",
        "ok-failed",
    ];
    assert_eq!(
        statuses(&r.doc, &names),
        expect(&[
            ("build", "FAILED"),
            // failure: true, and the dependency failed: runs.
            ("fallback", "SUCCESSFUL"),
            // A plain dependency on a failed job: skipped.
            ("deploy", "SKIPPED"),
            // A dependency that was skipped skips the dependent, even with failure: true.
            ("deploy-failed", "SKIPPED"),
            ("after-deploy", "SKIPPED"),
            ("explicit-false", "SKIPPED"),
            // Several entries are AND.
            ("both", "SUCCESSFUL"),
            ("not-both", "SKIPPED"),
            ("ok", "SUCCESSFUL"),
            // failure: true, and the dependency succeeded: skipped.
            ("ok-failed", "SKIPPED"),
        ])
    );
    let build = job(&r.doc, "build");
    assert_eq!(build["exitCode"], 3);
    assert!(build["reason"].as_str().unwrap().contains("exit code 3"));
    // The run failed although the fallback ran.
    assert_eq!(r.doc["status"], "FAILED");
    assert_eq!(r.code, 1, "stderr:\n{}", r.stderr);
    assert_eq!(log(&logs, "build", 1), "building\n");
}

// ------------------------------------------------------------------ 3. conditions and allow_failure

#[test]
fn conditions_with_or_done_not_and_and() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "conds.chainr",
        r#"pipeline conds {
  defaults { image = "busybox" }
  job a { run = "exit 1" }
  job b { run = "exit 0" }
  job either-failed after a.failed || b.failed { run = "true" }
  job both-failed after a.failed && b.failed { run = "true" }
  job a-done after a.done { run = "true" }
  job b-done after b.done { run = "true" }
  job not-a after !a.succeeded { run = "true" }
  job not-a-failed after !a.failed { run = "true" }
  job grouped after (a.succeeded || b.succeeded) && !a.skipped { run = "true" }
  job comma after a.failed, b { run = "true" }
  job chain after either-failed { run = "true" }
  job skipped-after-skip after both-failed.skipped { run = "true" }
}"#,
    );
    let r = run_json(&file, &dir.path().join("logs"), &[]);
    let names = [
        "a",
        "b",
        "either-failed",
        "both-failed",
        "a-done",
        "b-done",
        "not-a",
        "not-a-failed",
        "grouped",
        "comma",
        "chain",
        "skipped-after-skip",
    ];
    assert_eq!(
        statuses(&r.doc, &names),
        expect(&[
            ("a", "FAILED"),
            ("b", "SUCCESSFUL"),
            ("either-failed", "SUCCESSFUL"),
            ("both-failed", "SKIPPED"),
            ("a-done", "SUCCESSFUL"),
            ("b-done", "SUCCESSFUL"),
            ("not-a", "SUCCESSFUL"),
            ("not-a-failed", "SKIPPED"),
            ("grouped", "SUCCESSFUL"),
            ("comma", "SUCCESSFUL"),
            ("chain", "SUCCESSFUL"),
            ("skipped-after-skip", "SUCCESSFUL"),
        ])
    );
    // A fallback does not rescue the run.
    assert_eq!(r.doc["status"], "FAILED");
    assert_eq!(r.code, 1);
}

#[test]
fn fan_out_groups_are_judged_as_a_whole() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    let file = write(
        dir.path(),
        "fan.chainr",
        r#"pipeline fan {
  defaults { image = "busybox" }
  job shard for i in 0..3 { run = "echo shard ${i}; [ ${i} != 1 ]" }
  job ok for i in 0..2 { run = "true" }
  job all-shards after shard { run = "true" }
  job any-shard-failed after shard.failed { run = "true" }
  job shards-done after shard.done { run = "true" }
  job all-ok after ok { run = "true" }
  job ok-failed after ok.failed { run = "true" }
}"#,
    );
    let r = run_json(&file, &logs, &[]);
    assert_eq!(r.code, 1, "stderr:\n{}", r.stderr);
    assert_eq!(
        statuses(
            &r.doc,
            &[
                "shard-0",
                "shard-1",
                "shard-2",
                "all-shards",
                "any-shard-failed",
                "shards-done",
                "all-ok",
                "ok-failed"
            ]
        ),
        expect(&[
            ("shard-0", "SUCCESSFUL"),
            ("shard-1", "FAILED"),
            ("shard-2", "SUCCESSFUL"),
            ("all-shards", "SKIPPED"),
            ("any-shard-failed", "SUCCESSFUL"),
            ("shards-done", "SUCCESSFUL"),
            ("all-ok", "SUCCESSFUL"),
            ("ok-failed", "SKIPPED"),
        ])
    );
    for i in 0..3 {
        assert_eq!(job(&r.doc, &format!("shard-{i}"))["group"], "shard");
        assert_eq!(log(&logs, &format!("shard-{i}"), 1), format!("shard {i}\n"));
    }
    // The dependents waited for every instance.
    let last_shard = (0..3)
        .map(|i| time(&job(&r.doc, &format!("shard-{i}"))["finishedAt"]))
        .max()
        .unwrap();
    assert!(time(&job(&r.doc, "shards-done")["startedAt"]) >= last_shard);
}

#[test]
fn allow_failure_keeps_the_run_successful_and_bare_after_accepts_it() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    let file = write(
        dir.path(),
        "allow.chainr",
        r#"pipeline allow {
  defaults { image = "busybox" }
  job lint { run = "echo lint broke; exit 2"  allow_failure = true }
  job bare after lint { run = "true" }
  job strict after lint.succeeded { run = "true" }
  job on-failure after lint.failed { run = "true" }
  finally {
    job report { run = "echo \"$CHAINR_RUN_STATUS [$CHAINR_FAILED_JOBS]\"" }
  }
}"#,
    );
    let r = run_json(&file, &logs, &[]);
    assert_eq!(
        statuses(&r.doc, &["lint", "bare", "strict", "on-failure", "report"]),
        expect(&[
            // The job's own status shows what happened.
            ("lint", "FAILED"),
            ("bare", "SUCCESSFUL"),
            ("strict", "SKIPPED"),
            ("on-failure", "SUCCESSFUL"),
            ("report", "SUCCESSFUL"),
        ])
    );
    assert_eq!(job(&r.doc, "lint")["exitCode"], 2);
    assert_eq!(r.doc["status"], "SUCCESSFUL");
    assert_eq!(r.code, 0, "stderr:\n{}", r.stderr);
    // The run so far succeeded; the failed job is still named.
    assert_eq!(log(&logs, "report", 1), "succeeded [lint]\n");
}

// ------------------------------------------------------------------ 4. retries

#[test]
fn retries_succeed_on_a_later_attempt_after_the_backoff() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    let file = write(
        dir.path(),
        "retry.chainr",
        r#"pipeline retry {
  job flaky {
    image = "busybox"
    run = "echo attempt $CHAINR_ATTEMPT; [ \"$CHAINR_ATTEMPT\" -ge 3 ] || exit 7"
    retries = 4
    backoff = 100ms
  }
  job next after flaky { image = "busybox" run = "true" }
}"#,
    );
    let r = run_json(&file, &logs, &[]);
    assert_eq!(r.code, 0, "stderr:\n{}\n{:#}", r.stderr, r.doc);
    assert_eq!(r.doc["status"], "SUCCESSFUL");
    assert_eq!(
        statuses(&r.doc, &["flaky", "next"]),
        expect(&[("flaky", "SUCCESSFUL"), ("next", "SUCCESSFUL")])
    );
    let flaky = job(&r.doc, "flaky");
    assert_eq!(flaky["exitCode"], 0);
    let a = attempts(&r.doc, "flaky");
    // Succeeded on the third attempt: no fourth or fifth.
    assert_eq!(a.len(), 3, "{flaky:#}");
    let got: Vec<(u64, &str, i64)> = a
        .iter()
        .map(|a| {
            (
                a["attempt"].as_u64().unwrap(),
                a["status"].as_str().unwrap(),
                a["exitCode"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [(1, "FAILED", 7), (2, "FAILED", 7), (3, "SUCCESSFUL", 0)]
    );
    // The backoff really waited: 100ms, then twice as long (timestamps are in whole ms).
    let wait1 = gap(time(&a[0]["finishedAt"]), time(&a[1]["startedAt"]));
    let wait2 = gap(time(&a[1]["finishedAt"]), time(&a[2]["startedAt"]));
    assert!(
        wait1 >= Duration::from_millis(99),
        "first backoff {wait1:?}"
    );
    assert!(
        wait2 >= Duration::from_millis(199),
        "second backoff {wait2:?}"
    );
    // ... and it is the job's 100ms, not the 1s default.
    assert!(
        wait1 < Duration::from_millis(900),
        "first backoff {wait1:?}"
    );
    // One log per attempt, each with its own CHAINR_ATTEMPT.
    for n in 1..=3 {
        assert_eq!(log(&logs, "flaky", n), format!("attempt {n}\n"));
        assert_eq!(
            a[n as usize - 1]["log"],
            p(&logs.join(format!("flaky.{n}.log")))
        );
    }
    assert!(!logs.join("flaky.4.log").exists());
    // The dependent ran after the last attempt.
    assert!(time(&job(&r.doc, "next")["startedAt"]) >= time(&a[2]["finishedAt"]));
}

#[test]
fn retries_run_out_and_the_job_fails_with_every_attempt_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "exhaust.chainr",
        r#"pipeline exhaust {
  job never { image = "busybox" run = "exit 4" retries = 2 backoff = 50ms }
  job fallback after never.failed { image = "busybox" run = "true" }
}"#,
    );
    let r = run_json(&file, &dir.path().join("logs"), &[]);
    assert_eq!(r.code, 1);
    assert_eq!(r.doc["status"], "FAILED");
    let never = job(&r.doc, "never");
    assert_eq!(never["status"], "FAILED");
    assert_eq!(never["exitCode"], 4);
    let a = attempts(&r.doc, "never");
    assert_eq!(a.len(), 3, "{never:#}");
    assert!(a
        .iter()
        .all(|a| a["status"] == "FAILED" && a["exitCode"] == 4));
    // The fallback saw the final outcome only (it ran once, after the last attempt).
    assert_eq!(status(&r.doc, "fallback"), "SUCCESSFUL");
    assert!(time(&job(&r.doc, "fallback")["startedAt"]) >= time(&a[2]["finishedAt"]));
}

// ------------------------------------------------------------------ 5. timeouts

#[test]
fn a_timeout_fails_the_attempt_and_kills_its_processes() {
    let dir = tempfile::tempdir().unwrap();
    let marker = unique("timeout");
    let sleep = sleeper(dir.path(), &marker);
    let logs = dir.path().join("logs");
    let file = write(
        dir.path(),
        "timeout.chainr",
        &format!(
            r#"pipeline timeouts {{
  defaults {{ image = "busybox" }}
  // A lone command: `sh` execs it.
  job hang {{ run = "{sleep} 30" timeout = 300ms }}
  // A grandchild in the background and one in the foreground: `sh` stays.
  job hang-deep {{ run = "{sleep} 31 & {sleep} 32; echo never" timeout = 300ms }}
  // A timed-out attempt is a failed one, and is retried.
  job slow-once {{
    run = "if [ $CHAINR_ATTEMPT = 1 ]; then {sleep} 33; fi; echo done $CHAINR_ATTEMPT"
    timeout = 300ms
    retries = 1
    backoff = 100ms
  }}
  job after-hang after hang.failed {{ run = "true" }}
}}"#
        ),
    );
    let r = run_json(&file, &logs, &[]);
    let left = wait_gone(&marker, Duration::from_secs(2));
    cleanup(&marker);
    assert_eq!(r.code, 1, "stderr:\n{}", r.stderr);
    assert_eq!(r.doc["status"], "FAILED");
    assert!(
        r.elapsed < Duration::from_secs(5),
        "the run took {:?}",
        r.elapsed
    );
    for name in ["hang", "hang-deep"] {
        let j = job(&r.doc, name);
        assert_eq!(j["status"], "FAILED", "{j:#}");
        let reason = j["reason"].as_str().unwrap_or_default();
        assert!(reason.contains("timed out"), "{j:#}");
        assert!(reason.contains("300ms"), "{j:#}");
        let a = attempts(&r.doc, name);
        assert_eq!(a.len(), 1);
        assert!(a[0]["reason"].as_str().unwrap().contains("timed out"));
        let took = gap(time(&a[0]["startedAt"]), time(&a[0]["finishedAt"]));
        assert!(
            took >= Duration::from_millis(299) && took < Duration::from_secs(3),
            "{name} took {took:?}"
        );
    }
    assert!(!output(&logs, "hang-deep", 1).contains("never"));
    let slow = job(&r.doc, "slow-once");
    assert_eq!(slow["status"], "SUCCESSFUL", "{slow:#}");
    let a = attempts(&r.doc, "slow-once");
    assert_eq!(a.len(), 2, "{slow:#}");
    assert_eq!(a[0]["status"], "FAILED");
    assert!(a[0]["reason"].as_str().unwrap().contains("timed out"));
    assert_eq!(a[1]["status"], "SUCCESSFUL");
    assert_eq!(log(&logs, "slow-once", 2), "done 2\n");
    assert_eq!(status(&r.doc, "after-hang"), "SUCCESSFUL");
    assert!(left.is_empty(), "processes left behind: {left:#?}");
}

// ------------------------------------------------------------------ 6. finally and the environment

#[test]
fn finally_runs_after_a_failure_and_sees_the_outcome() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    let file = write(
        dir.path(),
        "finally.chainr",
        r#"pipeline fin {
  defaults { image = "busybox" }
  job a { run = "exit 1" }
  job b { run = "exit 0" }
  job c { run = "sleep 0.1; exit 2" }
  job d after b { run = "exit 0" }
  finally {
    job report {
      run = """
        echo "status=$CHAINR_RUN_STATUS"
        echo "failed=$CHAINR_FAILED_JOBS"
      """
    }
    job cleanup after report.done { run = "echo cleanup" }
  }
}"#,
    );
    let r = run_json(&file, &logs, &[]);
    assert_eq!(r.code, 1, "stderr:\n{}", r.stderr);
    assert_eq!(r.doc["status"], "FAILED");
    assert_eq!(
        statuses(&r.doc, &["a", "b", "c", "d", "report", "cleanup"]),
        expect(&[
            ("a", "FAILED"),
            ("b", "SUCCESSFUL"),
            ("c", "FAILED"),
            ("d", "SUCCESSFUL"),
            ("report", "SUCCESSFUL"),
            ("cleanup", "SUCCESSFUL"),
        ])
    );
    // The finally job ran once everything else was terminal.
    let report_start = time(&job(&r.doc, "report")["startedAt"]);
    for other in ["a", "b", "c", "d"] {
        assert!(
            report_start >= time(&job(&r.doc, other)["finishedAt"]),
            "{other}"
        );
    }
    let text = log(&logs, "report", 1);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "status=failed", "{text}");
    let failed: BTreeSet<&str> = lines[1]
        .strip_prefix("failed=")
        .unwrap_or_else(|| panic!("{text}"))
        .split(',')
        .collect();
    assert_eq!(failed, BTreeSet::from(["a", "c"]), "{text}");
    assert_eq!(log(&logs, "cleanup", 1), "cleanup\n");
}

#[test]
fn jobs_see_their_env_and_the_runtime_facts() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    let file = write(
        dir.path(),
        "env.chainr",
        r#"pipeline envs {
  param who: string = "chainr"
  defaults { image = "busybox"  env { TZ = "UTC", MODE = "full" } }
  job show {
    env { GREETING = "hello ${who}", MODE = "fast", COUNT = 3 }
    run = "echo \"$GREETING|$MODE|$TZ|$COUNT|$CHAINR_RUN_ID|$CHAINR_JOB|$CHAINR_ATTEMPT|$OUTER\""
  }
  job shard for i in 0..2 { run = "echo \"$CHAINR_JOB ${i}\"" }
  finally {
    job report { run = "echo \"$CHAINR_RUN_STATUS [$CHAINR_FAILED_JOBS] $CHAINR_JOB\"" }
  }
}"#,
    );
    let out = chainrc()
        .env("OUTER", "from the caller")
        .arg("run")
        .arg(&file)
        .args(["--format", "json", "--logs"])
        .arg(&logs)
        .assert()
        .success();
    let doc: Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    let uid = doc["metadata"]["uid"].as_str().unwrap();
    assert_eq!(
        log(&logs, "show", 1),
        format!("hello chainr|fast|UTC|3|{uid}|show|1|from the caller\n")
    );
    assert_eq!(log(&logs, "shard-0", 1), "shard-0 0\n");
    assert_eq!(log(&logs, "shard-1", 1), "shard-1 1\n");
    assert_eq!(job(&doc, "shard-1")["group"], "shard");
    assert_eq!(log(&logs, "report", 1), "succeeded [] report\n");
}

#[test]
fn finally_variables_do_not_leak_from_the_callers_environment_into_other_jobs() {
    // `chainrc run` started from a finally job of another run (or a shell where they were
    // exported) must not hand that run's CHAINR_RUN_STATUS / CHAINR_FAILED_JOBS to jobs that
    // are not `finally` jobs: only finally jobs get them, with this run's values.
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    let file = write(
        dir.path(),
        "nested.chainr",
        r#"pipeline nested {
  job work {
    image = "busybox"
    run = "echo \"[$${CHAINR_RUN_STATUS-unset}] [$${CHAINR_FAILED_JOBS-unset}] $CHAINR_JOB\""
  }
  finally {
    job report { image = "busybox" run = "echo \"[$CHAINR_RUN_STATUS] [$CHAINR_FAILED_JOBS] $CHAINR_JOB\"" }
  }
}"#,
    );
    chainrc()
        .env("CHAINR_RUN_STATUS", "failed")
        .env("CHAINR_FAILED_JOBS", "outer-job")
        .env("CHAINR_JOB", "outer")
        .arg("run")
        .arg(&file)
        .args(["--format", "json", "--logs"])
        .arg(&logs)
        .assert()
        .success();
    assert_eq!(log(&logs, "report", 1), "[succeeded] [] report\n");
    assert_eq!(log(&logs, "work", 1), "[unset] [unset] work\n");
}

// ------------------------------------------------------------------ 7. cancel

/// `chainrc run FILE --format json --logs LOGS` in the background.
fn spawn_run(file: &Path, logs: &Path) -> std::process::Child {
    std::process::Command::new(BIN)
        .arg("run")
        .arg(file)
        .args(["--format", "json", "--logs"])
        .arg(logs)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

/// Polls `ok` until it holds or `within` has passed.
fn wait_until(within: Duration, mut ok: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if ok() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `kill -SIGNAL PID`, as a user (or a CI runner) would.
fn signal(child: &std::process::Child, sig: &str) {
    let sent = std::process::Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(sent.success(), "kill -{sig} failed");
}

/// Gives up on a background run: kills it and this test's processes, then fails the test.
fn abandon(mut child: std::process::Child, marker: &str, why: &str) -> ! {
    let _ = child.kill();
    let _ = child.wait();
    cleanup(marker);
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut stderr);
    }
    panic!("{why}\nstderr of chainrc:\n{stderr}");
}

/// Waits for the background run to end by itself; its exit code, stdout and stderr.
fn finish(
    mut child: std::process::Child,
    marker: &str,
    within: Duration,
) -> (Option<i32>, String, String) {
    let mut exit = None;
    if !wait_until(within, || {
        exit = child.try_wait().unwrap();
        exit.is_some()
    }) {
        abandon(
            child,
            marker,
            &format!("chainrc did not end within {within:?}"),
        );
    }
    let mut stdout = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    (exit.unwrap().code(), stdout, stderr)
}

#[test]
fn sigint_cancels_the_run_kills_every_process_and_still_runs_finally() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    let marker = unique("cancel");
    let one = sleeper(dir.path(), &format!("{marker}-one"));
    let fg = sleeper(dir.path(), &format!("{marker}-fg"));
    let bg = sleeper(dir.path(), &format!("{marker}-bg"));
    let never = dir.path().join("never-ran");
    // With at most 2 jobs at once: `retrying` fails at once and waits a minute before its
    // retry, `long-one` and `long-two` run, `queued` waits for a slot.
    let file = write(
        dir.path(),
        "cancel.chainr",
        &format!(
            r#"pipeline cancel {{
  concurrency = 2
  defaults {{ image = "busybox" }}
  job retrying {{ run = "exit 1" retries = 3 backoff = 1m }}
  job long-one {{ run = "{one} 60" }}
  job long-two {{ run = "{bg} 60 & {fg} 60; echo never" }}
  job queued {{ run = "touch {never}" }}
  job later after long-one {{ run = "touch {never}" }}
  job later-failed after long-two.failed {{ run = "touch {never}" }}
  finally {{
    job report {{ run = "echo \"status=$CHAINR_RUN_STATUS\"" }}
  }}
}}"#,
            never = p(&never)
        ),
    );
    let child = spawn_run(&file, &logs);
    // Wait until the jobs have really started, the background grandchild included.
    let started = wait_until(Duration::from_secs(5), || {
        ["one", "fg", "bg"]
            .iter()
            .all(|s| !live_processes(&format!("{marker}-{s}")).is_empty())
    });
    if !started {
        abandon(child, &marker, "the jobs did not start within 5s");
    }
    let sent = Instant::now();
    signal(&child, "INT");
    let (code, stdout, stderr) = finish(child, &marker, Duration::from_secs(10));
    let took = sent.elapsed();
    let left = wait_gone(&marker, Duration::from_secs(2));
    cleanup(&marker);

    assert_eq!(code, Some(130), "stderr:\n{stderr}\nstdout:\n{stdout}");
    assert!(took < Duration::from_secs(3), "cancelling took {took:?}");
    let doc: Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("no Run document ({e}):\n{stdout}\nstderr:\n{stderr}"));
    assert_eq!(doc["status"], "CANCELLED", "{doc:#}");
    assert_eq!(
        statuses(
            &doc,
            &[
                "retrying",
                "long-one",
                "long-two",
                "queued",
                "later",
                "later-failed",
                "report"
            ]
        ),
        expect(&[
            // In its backoff: the retry never comes.
            ("retrying", "CANCELLED"),
            ("long-one", "CANCELLED"),
            ("long-two", "CANCELLED"),
            // Waiting for a slot.
            ("queued", "CANCELLED"),
            // Waiting for a job that was cancelled.
            ("later", "CANCELLED"),
            ("later-failed", "CANCELLED"),
            ("report", "SUCCESSFUL"),
        ])
    );
    let retrying = attempts(&doc, "retrying");
    assert_eq!(retrying.len(), 1, "{doc:#}");
    assert_eq!(retrying[0]["status"], "FAILED");
    for running in ["long-one", "long-two"] {
        let a = attempts(&doc, running);
        assert_eq!(a.len(), 1, "{running}");
        assert_eq!(a[0]["status"], "CANCELLED", "{running}");
    }
    for never_started in ["queued", "later", "later-failed"] {
        assert!(attempts(&doc, never_started).is_empty(), "{never_started}");
    }
    assert!(!never.exists(), "a job that never started ran");
    assert!(!output(&logs, "long-two", 1).contains("never"));
    assert_eq!(log(&logs, "report", 1), "status=cancelled\n");
    assert!(left.is_empty(), "processes left behind: {left:#?}");
}

#[test]
fn a_second_signal_stops_the_finally_jobs_too() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    let marker = unique("twice");
    let work = sleeper(dir.path(), &format!("{marker}-work"));
    let fin = sleeper(dir.path(), &format!("{marker}-finally"));
    let after = dir.path().join("after-cleanup");
    let file = write(
        dir.path(),
        "twice.chainr",
        &format!(
            r#"pipeline twice {{
  job work {{ image = "busybox" run = "{work} 60" }}
  finally {{
    job cleanup {{ image = "busybox" run = "{fin} 60" }}
    job after-cleanup after cleanup.done {{ image = "busybox" run = "touch {after}" }}
  }}
}}"#,
            after = p(&after)
        ),
    );
    let child = spawn_run(&file, &logs);
    if !wait_until(Duration::from_secs(5), || {
        !live_processes(&format!("{marker}-work")).is_empty()
    }) {
        abandon(child, &marker, "`work` did not start within 5s");
    }
    // SIGTERM cancels like SIGINT.
    signal(&child, "TERM");
    if !wait_until(Duration::from_secs(5), || {
        !live_processes(&format!("{marker}-finally")).is_empty()
    }) {
        abandon(
            child,
            &marker,
            "the finally job did not start after the first signal",
        );
    }
    signal(&child, "INT");
    let (code, stdout, stderr) = finish(child, &marker, Duration::from_secs(10));
    let left = wait_gone(&marker, Duration::from_secs(2));
    cleanup(&marker);
    assert_eq!(code, Some(130), "stderr:\n{stderr}\nstdout:\n{stdout}");
    let doc: Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("no Run document ({e}):\n{stdout}\nstderr:\n{stderr}"));
    assert_eq!(doc["status"], "CANCELLED");
    assert_eq!(
        statuses(&doc, &["work", "cleanup", "after-cleanup"]),
        expect(&[
            ("work", "CANCELLED"),
            ("cleanup", "CANCELLED"),
            ("after-cleanup", "CANCELLED"),
        ])
    );
    assert_eq!(attempts(&doc, "cleanup").len(), 1);
    assert!(attempts(&doc, "after-cleanup").is_empty());
    assert!(!after.exists());
    assert!(left.is_empty(), "processes left behind: {left:#?}");
}

#[test]
fn background_processes_do_not_outlive_their_job() {
    let dir = tempfile::tempdir().unwrap();
    let marker = unique("orphan");
    let bg = sleeper(dir.path(), &marker);
    let file = write(
        dir.path(),
        "bg.chainr",
        &format!(
            r#"pipeline bg {{
  defaults {{ image = "busybox" }}
  job leaves-one-behind {{ run = "{bg} 60 & echo spawned" }}
  job fails-and-leaves-one {{ run = "{bg} 61 & exit 5" }}
}}"#
        ),
    );
    let r = run_json(&file, &dir.path().join("logs"), &[]);
    let left = wait_gone(&marker, Duration::from_secs(2));
    cleanup(&marker);
    assert_eq!(r.code, 1, "stderr:\n{}", r.stderr);
    assert_eq!(
        statuses(&r.doc, &["leaves-one-behind", "fails-and-leaves-one"]),
        expect(&[
            ("leaves-one-behind", "SUCCESSFUL"),
            ("fails-and-leaves-one", "FAILED"),
        ])
    );
    assert!(r.elapsed < Duration::from_secs(5), "took {:?}", r.elapsed);
    assert!(left.is_empty(), "processes left behind: {left:#?}");
}

// ------------------------------------------------------------------ 8. invalid pipelines

#[test]
fn invalid_pipelines_run_nothing_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let ran = dir.path().join("ran");
    let touch = format!("touch {}", p(&ran));
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "cycle.chainr",
            format!(
                r#"pipeline p {{
  job a after b {{ image = "busybox" run = "true" }}
  job b after a {{ image = "busybox" run = "true" }}
  job c {{ image = "busybox" run = "{touch}" }}
}}"#
            ),
            "dependency cycle: a → b → a",
        ),
        (
            "unknown.chainr",
            format!(
                r#"pipeline p {{
  job a after ghost {{ image = "busybox" run = "true" }}
  job c {{ image = "busybox" run = "{touch}" }}
}}"#
            ),
            "unknown job `ghost`",
        ),
        (
            "syntax.chainr",
            format!(
                r#"pipeline p {{
  job a {{ image = "busybox" run = }}
  job c {{ image = "busybox" run = "{touch}" }}
}}"#
            ),
            "error[E0",
        ),
        (
            "cycle.json",
            format!(
                r#"{{"kind": "Pipeline", "jobs": {{
  "a": {{"image": "busybox", "run": "true", "dependsOn": [{{"job": "b"}}]}},
  "b": {{"image": "busybox", "run": "true", "dependsOn": [{{"job": "a"}}]}},
  "c": {{"image": "busybox", "run": "{touch}"}}
}}}}"#
            ),
            "dependency cycle",
        ),
        (
            "unknown.json",
            format!(
                r#"{{"kind": "Pipeline", "jobs": {{
  "a": {{"image": "busybox", "run": "true", "dependsOn": [{{"job": "ghost"}}]}},
  "c": {{"image": "busybox", "run": "{touch}"}}
}}}}"#
            ),
            "depends on `ghost`, which does not exist",
        ),
        (
            "syntax.json",
            format!(
                r#"{{"kind": "Pipeline", "jobs": {{
  "c": {{"image": "busybox", "run": "{touch}"}},,
}}"#
            ),
            "error[E0",
        ),
    ];
    for (name, text, message) in cases {
        let file = write(dir.path(), name, &text);
        let logs = dir.path().join(format!("logs-{name}"));
        for format in ["json", "text"] {
            chainrc()
                .arg("run")
                .arg(&file)
                .args(["--format", format, "--logs"])
                .arg(&logs)
                .assert()
                .code(2)
                .stdout("")
                .stderr(predicate::str::contains(message))
                .stderr(predicate::str::contains("the pipeline was not compiled"))
                // Nothing started: not even the run's banner.
                .stderr(predicate::str::contains("started").not());
            assert!(!ran.exists(), "{name} (--format {format}): a job ran");
            let attempt_logs = std::fs::read_dir(&logs).map(|d| d.count()).unwrap_or(0);
            assert_eq!(attempt_logs, 0, "{name}: attempt logs were written");
        }
    }
    // A file that cannot be read runs nothing either.
    chainrc()
        .args(["run", "no/such/pipeline.chainr"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("cannot read"));
}

// ------------------------------------------------------------------ 9. concurrency

#[test]
fn concurrency_one_runs_one_job_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let marks = dir.path().join("marks");
    std::fs::create_dir(&marks).unwrap();
    let m = p(&marks);
    let body = |n: &str| {
        format!(
            r#"job {n} {{ run = "date +%s%N > {m}/{n}.start; sleep 0.15; date +%s%N > {m}/{n}.end" }}"#
        )
    };
    let file = write(
        dir.path(),
        "conc.chainr",
        &format!(
            "pipeline conc {{\n  defaults {{ image = \"busybox\" }}\n  {}\n  {}\n  {}\n}}\n",
            body("a"),
            body("b"),
            body("c")
        ),
    );
    let r = run_json(&file, &dir.path().join("logs"), &["--concurrency", "1"]);
    assert_eq!(r.code, 0, "stderr:\n{}", r.stderr);
    assert_eq!(
        statuses(&r.doc, &["a", "b", "c"]),
        expect(&[
            ("a", "SUCCESSFUL"),
            ("b", "SUCCESSFUL"),
            ("c", "SUCCESSFUL")
        ])
    );
    let read = |n: &str, what: &str| -> u128 {
        std::fs::read_to_string(marks.join(format!("{n}.{what}")))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    let mut spans: Vec<(u128, u128, &str)> = ["a", "b", "c"]
        .into_iter()
        .map(|n| (read(n, "start"), read(n, "end"), n))
        .collect();
    spans.sort();
    for w in spans.windows(2) {
        assert!(
            w[0].1 <= w[1].0,
            "{} ran while {} was still running: {spans:?}",
            w[1].2,
            w[0].2
        );
    }
    // The Run document agrees.
    let mut recorded: Vec<(SystemTime, SystemTime)> = ["a", "b", "c"]
        .into_iter()
        .map(|n| {
            let j = job(&r.doc, n);
            (time(&j["startedAt"]), time(&j["finishedAt"]))
        })
        .collect();
    recorded.sort();
    for w in recorded.windows(2) {
        assert!(w[0].1 <= w[1].0, "{recorded:?}");
    }
}

// ------------------------------------------------------------------ 10. fail_fast

#[test]
fn fail_fast_cancels_what_has_not_started_and_finally_still_runs() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    let touched = |n: &str| dir.path().join(n);
    let file = write(
        dir.path(),
        "ff.chainr",
        &format!(
            r#"pipeline ff {{
  fail_fast = true
  defaults {{ image = "busybox" }}
  job lenient {{ run = "exit 1" allow_failure = true }}
  job after-lenient after lenient {{ run = "touch {after_lenient}" }}
  job bad {{ run = "sleep 0.3; exit 1" }}
  job slow {{ run = "sleep 0.8; touch {slow}" }}
  job next after slow {{ run = "touch {next}" }}
  job next-next after next.done {{ run = "touch {next_next}" }}
  // A failed attempt with a retry to come does not fail the run: fail_fast is not tripped.
  job flaky {{ run = "[ $CHAINR_ATTEMPT -ge 2 ]" retries = 1 backoff = 50ms }}
  job after-flaky after flaky {{ run = "true" }}
  // Waiting a minute for its retry when fail_fast trips: it ends cancelled, and the run does
  // not wait for the retry.
  job retrying {{ run = "exit 1" retries = 3 backoff = 1m }}
  finally {{
    job report {{ run = "echo \"$CHAINR_RUN_STATUS [$CHAINR_FAILED_JOBS]\"" }}
  }}
}}"#,
            after_lenient = p(&touched("after-lenient")),
            slow = p(&touched("slow")),
            next = p(&touched("next")),
            next_next = p(&touched("next-next")),
        ),
    );
    let r = run_json(&file, &logs, &[]);
    assert_eq!(r.code, 1, "stderr:\n{}", r.stderr);
    assert_eq!(r.doc["status"], "FAILED");
    assert_eq!(
        statuses(
            &r.doc,
            &[
                "lenient",
                "after-lenient",
                "bad",
                "slow",
                "next",
                "next-next",
                "flaky",
                "after-flaky",
                "retrying",
                "report"
            ]
        ),
        expect(&[
            // An allowed failure does not trip fail_fast.
            ("lenient", "FAILED"),
            ("after-lenient", "SUCCESSFUL"),
            ("bad", "FAILED"),
            // Running when `bad` failed: it is not stopped, only new jobs are.
            ("slow", "SUCCESSFUL"),
            ("next", "CANCELLED"),
            ("next-next", "CANCELLED"),
            ("flaky", "SUCCESSFUL"),
            ("after-flaky", "SUCCESSFUL"),
            ("retrying", "CANCELLED"),
            ("report", "SUCCESSFUL"),
        ])
    );
    assert!(touched("after-lenient").exists());
    assert!(touched("slow").exists());
    assert!(
        !touched("next").exists(),
        "a job started after fail_fast tripped"
    );
    assert!(
        !touched("next-next").exists(),
        "a job started after fail_fast tripped"
    );
    for n in ["next", "next-next"] {
        assert!(attempts(&r.doc, n).is_empty(), "{n}");
    }
    assert_eq!(attempts(&r.doc, "retrying").len(), 1);
    assert!(r.elapsed < Duration::from_secs(10), "took {:?}", r.elapsed);
    let report = log(&logs, "report", 1);
    assert!(report.starts_with("failed ["), "{report}");
    let failed: BTreeSet<&str> = report
        .trim_end()
        .trim_start_matches("failed [")
        .trim_end_matches(']')
        .split(',')
        .collect();
    assert_eq!(failed, BTreeSet::from(["bad", "lenient"]), "{report}");
}

#[test]
fn cancelled_jobs_say_truthfully_why() {
    // fail_fast stops a run that is FAILED, not cancelled; a job waiting for its retry has
    // already run an attempt. Their reasons should not say "the run was cancelled before it
    // started".
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "why.chainr",
        r#"pipeline why {
  fail_fast = true
  defaults { image = "busybox" }
  job retrying { run = "exit 1" retries = 3 backoff = 1m }
  job bad { run = "sleep 0.2; exit 2" }
  job never-started after bad.done { run = "true" }
}"#,
    );
    let r = run_json(&file, &dir.path().join("logs"), &[]);
    assert_eq!(r.code, 1, "stderr:\n{}", r.stderr);
    assert_eq!(r.doc["status"], "FAILED");
    assert_eq!(
        statuses(&r.doc, &["retrying", "bad", "never-started"]),
        expect(&[
            ("retrying", "CANCELLED"),
            ("bad", "FAILED"),
            ("never-started", "CANCELLED"),
        ])
    );
    assert_eq!(attempts(&r.doc, "retrying").len(), 1);
    let reasons: Vec<(&str, &str)> = ["retrying", "never-started"]
        .into_iter()
        .map(|n| (n, job(&r.doc, n)["reason"].as_str().unwrap_or("")))
        .collect();
    for (name, reason) in &reasons {
        assert!(
            !reason.contains("run was cancelled"),
            "`{name}`: the run was not cancelled (it FAILED and fail_fast stopped it), yet the reason is {reason:?}"
        );
    }
    assert!(
        !reasons[0].1.contains("before it started"),
        "`retrying` ran an attempt, yet the reason is {:?}",
        reasons[0].1
    );
}

// ------------------------------------------------------------------ 11. text output

#[test]
fn text_output_without_a_terminal_is_a_line_per_event_and_the_failed_tail() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    let file = write(
        dir.path(),
        "text.chainr",
        r#"pipeline text {
  defaults { image = "busybox" }
  job first { run = "echo fine" }
  job bad {
    run = """
      for i in 01 02 03 04 05 06 07 08 09 10 11 12 13 14 15; do echo "out-$i"; done
      exit 3
    """
  }
  job fallback after bad.failed { run = "true" }
  job deploy after bad { run = "true" }
}"#,
    );
    let out = chainrc()
        .arg("run")
        .arg(&file)
        .arg("--logs")
        .arg(&logs)
        .assert()
        .code(1)
        .stdout("")
        // Not a terminal: no colours, no spinners.
        .stderr(predicate::str::contains("\x1b[").not());
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    let lines: Vec<&str> = stderr.lines().collect();
    let find = |first: &str, second: &str| -> usize {
        lines
            .iter()
            .position(|l| {
                let mut w = l.split_whitespace();
                // `skipped   deploy: its condition was false`
                w.next() == Some(first) && w.next().map(|s| s.trim_end_matches(':')) == Some(second)
            })
            .unwrap_or_else(|| panic!("no line `{first} {second} ...` in:\n{stderr}"))
    };
    assert!(lines[0].starts_with("running text (4 jobs)"), "{stderr}");
    let first = find("succeeded", "first");
    let bad = find("failed", "bad");
    assert!(lines[bad].contains("exit code 3"), "{stderr}");
    let deploy = find("skipped", "deploy");
    let fallback = find("succeeded", "fallback");
    find("started", "first");
    find("started", "bad");
    // A line per event: each outcome once.
    for word in ["first", "bad", "fallback", "deploy"] {
        let n = lines
            .iter()
            .filter(|l| {
                let w: Vec<&str> = l.split_whitespace().collect();
                w.len() >= 2
                    && w[1].trim_end_matches(':') == word
                    && ["succeeded", "failed", "skipped", "cancelled", "errored"].contains(&w[0])
            })
            .count();
        assert_eq!(n, 1, "`{word}` ended {n} times:\n{stderr}");
    }
    assert!(deploy > bad && fallback > bad, "{stderr}");
    // At the end: the failed job's last lines (10 of 15), then the summary.
    let tail = lines
        .iter()
        .position(|l| l.contains("bad") && l.contains("last 10 lines of"))
        .unwrap_or_else(|| panic!("no tail of bad's output:\n{stderr}"));
    assert!(tail > first.max(bad).max(deploy).max(fallback), "{stderr}");
    assert!(
        lines[tail].contains(&p(&logs.join("bad.1.log"))),
        "{stderr}"
    );
    let shown: Vec<&str> = lines[tail + 1..]
        .iter()
        .map(|l| l.trim())
        .filter(|l| l.starts_with("out-"))
        .collect();
    let expected: Vec<String> = (6..=15).map(|i| format!("out-{i:02}")).collect();
    assert_eq!(shown, expected, "{stderr}");
    assert!(!stderr.contains("out-05"), "{stderr}");
    let last = lines.last().unwrap();
    assert!(last.starts_with("FAILED text in "), "{stderr}");
    assert!(last.contains("1 failed"), "{stderr}");
    assert!(last.contains(&p(&logs)), "{stderr}");
}

/// A stop and continue (Ctrl-Z, then `fg`) interrupts the driver's wait; a job's timeout must
/// not fire early because of it.
#[test]
fn stopping_and_continuing_chainrc_does_not_fire_timeouts_early() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "stop.chainr",
        "pipeline stop {\n  job slow { image = \"busybox\" run = \"sleep 1\" timeout = 20s }\n}\n",
    );
    let logs = dir.path().join("logs");
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_chainrc"))
        .args(["run", "--format", "json", "--logs"])
        .arg(&logs)
        .arg(&file)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    signal(&child, "STOP");
    std::thread::sleep(Duration::from_millis(100));
    signal(&child, "CONT");
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status(&doc, "slow"), "SUCCESSFUL", "{doc}");
}
