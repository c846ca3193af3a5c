//! Notifications end to end: `chainrc serve --config` (and `chainrc run --notify`) against real
//! receivers on loopback, written independently in Python (`tests/notify/receivers.py`): a
//! webhook receiver that verifies signatures with the `standardwebhooks` package, a Slack
//! receiver that checks Block Kit's rules, an SMTP server (aiosmtpd) that requires STARTTLS and
//! a password, a receiver that fails three times, one that answers 429 with `Retry-After`, one
//! that never answers, and a port where nothing listens. A notifier SIGKILLed in a burst of 100
//! notifications is restarted: every notification arrives, under one id each.

use crate::serve::{uid, wait_for, Server};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A Standard Webhooks secret (`whsec_` and 32 bytes in base64).
const SECRET: &str = "whsec_c2VjcmV0LWtleS1mb3ItdGVzdHMtb25seS0wMTIzNDU2Nzg5";
const SMTP_PASSWORD: &str = "smtp-pass-Zq81";

/// The receivers, one process; killed when dropped.
struct Receivers {
    child: Child,
    ready: Value,
    records: Arc<Mutex<Vec<Value>>>,
    _dir: tempfile::TempDir,
}

impl Receivers {
    fn start() -> Receivers {
        let dir = tempfile::tempdir().unwrap();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/notify/receivers.py");
        let mut child = Command::new("python3")
            .arg(script)
            .arg("--dir")
            .arg(dir.path())
            .env("WEBHOOK_SECRET", SECRET)
            .env("SMTP_PASSWORD", SMTP_PASSWORD)
            // The script ends when its standard input closes: with this process.
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 runs the receivers (pip install -r tests/notify/requirements.txt)");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let first = lines
            .next()
            .expect("the receivers say they are ready")
            .unwrap();
        let ready: Value = serde_json::from_str(&first).unwrap();
        assert_eq!(ready["ready"], true, "{ready}");
        let records = Arc::new(Mutex::new(Vec::new()));
        let kept = records.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    kept.lock().unwrap().push(v);
                }
            }
        });
        Receivers {
            child,
            ready,
            records,
            _dir: dir,
        }
    }

    fn url(&self, receiver: &str) -> String {
        format!("http://127.0.0.1:{}/{receiver}", self.ready[receiver])
    }

    /// What `receiver` recorded (for SMTP: the messages, not refused commands).
    fn got(&self, receiver: &str) -> Vec<Value> {
        self.records
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r["receiver"] == receiver)
            .filter(|r| receiver != "smtp" || !r["mail"].is_null())
            .cloned()
            .collect()
    }

    fn wait(&self, receiver: &str, n: usize) -> Vec<Value> {
        wait_for(
            Duration::from_secs(30),
            &format!("{n} requests at {receiver}"),
            || self.got(receiver).len() >= n,
        );
        self.got(receiver)
    }
}

impl Drop for Receivers {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free port with nothing listening on it.
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

fn write_config(dir: &Path, text: &str) -> String {
    let path = dir.join("notify.toml");
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

fn secrets_env() -> Vec<(&'static str, &'static OsStr)> {
    vec![
        ("HOOK_SECRET", OsStr::new(SECRET)),
        ("SMTP_PASSWORD", OsStr::new(SMTP_PASSWORD)),
    ]
}

/// `chainrc serve` on SQLite in `dir` with the notifications' configuration `config`.
fn serve_sqlite(dir: &Path, config: &str, env: &[(&str, &OsStr)]) -> Server {
    let data = dir.join("data");
    let args = [
        "--no-auth",
        "--data-dir",
        data.to_str().unwrap(),
        "--config",
        config,
    ];
    Server::start_with_env("127.0.0.1:0", &args, env)
}

/// The server's notifications in `state`.
fn notifications(server: &Server, state: &str) -> Vec<Value> {
    let a = server.get(&format!("/api/notifications?state={state}&limit=1000"));
    assert_eq!(a.status, 200, "{}", a.text());
    a.json()["items"].as_array().unwrap().clone()
}

fn by_medium(items: &[Value]) -> BTreeMap<String, Value> {
    items
        .iter()
        .map(|d| (d["medium"].as_str().unwrap().to_string(), d.clone()))
        .collect()
}

#[test]
fn a_failed_run_reaches_every_medium_and_reads_well() {
    let r = Receivers::start();
    let d = tempfile::tempdir().unwrap();
    let slack_url = r.url("slack") + "/services/T0/B0/SLACKSECRETPATH";
    let config = write_config(
        d.path(),
        &format!(
            r#"ui_url = "http://chainr.test"

[media.hooks]
type = "webhook"
url = "{webhook}"
secret = {{ env = "HOOK_SECRET" }}

[media.team-slack]
type = "slack"
url = {{ env = "SLACK_URL" }}

[media.oncall-mail]
type = "email"
host = "127.0.0.1"
port = {smtp}
username = "chainr"
password = {{ env = "SMTP_PASSWORD" }}
from = "chainr <chainr@example.com>"
to = ["oncall@example.com"]
ca_file = "{ca}"

[media.console]
type = "stdout"
"#,
            webhook = r.url("webhook"),
            smtp = r.ready["smtp"],
            ca = r.ready["smtp_ca"].as_str().unwrap(),
        ),
    );
    let mut env = secrets_env();
    env.push(("SLACK_URL", OsStr::new(&slack_url)));
    let server = serve_sqlite(d.path(), &config, &env);
    let source = |media: &str| {
        format!(
            r#"pipeline nightly-etl {{
  notify on failed {{ to = [{media}] }}
  job extract {{ image = "busybox" run = "echo extracted 3 tables" }}
  job load after extract {{
    image = "busybox"
    run = "echo loading 18204 rows; echo 'ERROR: duplicate key value violates unique constraint' >&2; exit 2"
  }}
}}
"#
        )
    };
    let submit = |text: String| {
        server.request(
            "POST",
            "/api/runs",
            &[("Content-Type", "text/x-chainr")],
            text.as_bytes(),
        )
    };
    // A medium the configuration does not have: refused, with a suggestion, and nothing stored.
    let refused = submit(source(r#""hooks", "team-slak""#));
    assert_eq!(refused.status, 400, "{}", refused.text());
    let body = refused.json();
    assert_eq!(body["diagnostics"][0]["code"], "E0707", "{body}");
    assert!(
        body["rendered"].as_str().unwrap().contains("team-slack"),
        "{body}"
    );
    assert_eq!(
        server.get("/api/runs").json()["items"],
        serde_json::json!([])
    );

    let answer = submit(source(r#""hooks", "team-slack", "oncall-mail", "console""#));
    assert_eq!(answer.status, 202, "{}", answer.text());
    let run = uid(&answer);

    let hook = r.wait("webhook", 1).remove(0);
    assert_eq!(hook["verified"], true, "{hook}");
    assert_eq!(hook["status"], 204);
    let body = &hook["body"];
    assert_eq!(body["type"], "run.failed");
    assert_eq!(body["data"]["run"]["uid"], run.as_str());
    assert_eq!(body["data"]["jobs"][0]["name"], "load");
    assert_eq!(body["data"]["jobs"][0]["reason"], "exit code 2");
    let tail = body["data"]["jobs"][0]["logTail"].to_string();
    assert!(tail.contains("ERROR: duplicate key value"), "{tail}");
    assert_eq!(
        body["data"]["url"],
        format!("http://chainr.test/runs/{run}").as_str()
    );

    let slack = r.wait("slack", 1).remove(0);
    assert_eq!(slack["status"], 200, "{slack}");
    assert_eq!(slack["problems"], serde_json::json!([]), "{slack}");
    assert_eq!(slack["path"], "/slack/services/T0/B0/SLACKSECRETPATH");
    let blocks = slack["body"]["blocks"].to_string();
    assert!(blocks.contains("nightly-etl failed"), "{blocks}");
    assert!(blocks.contains("load failed (exit code 2)"), "{blocks}");
    assert!(blocks.contains("ERROR: duplicate key value"), "{blocks}");

    let mail = r.wait("smtp", 1).remove(0);
    let m = &mail["mail"];
    assert_eq!(m["tls"], true, "{mail}");
    assert_eq!(m["auth_login"], "chainr", "{mail}");
    assert_eq!(m["rcpt_tos"], serde_json::json!(["oncall@example.com"]));
    assert!(m["subject"]
        .as_str()
        .unwrap()
        .starts_with("[chainr] nightly-etl failed (run "));
    assert_eq!(m["content_type"], "multipart/alternative");
    assert_eq!(m["parts"], serde_json::json!(["text/plain", "text/html"]));
    assert!(m["text"]
        .as_str()
        .unwrap()
        .contains("ERROR: duplicate key value"));
    assert!(m["html"]
        .as_str()
        .unwrap()
        .contains("<h2>nightly-etl failed</h2>"));
    assert_eq!(m["bare_lf"], false);

    wait_for(Duration::from_secs(10), "the stdout line", || {
        server
            .printed()
            .contains(&format!("FAILURE {run} nightly-etl failed"))
    });

    // The API knows each as sent once, and the ids are the ones the receivers saw.
    wait_for(Duration::from_secs(10), "four sent", || {
        notifications(&server, "sent").len() == 4
    });
    let sent = by_medium(&notifications(&server, "sent"));
    assert_eq!(sent["hooks"]["id"], hook["id"]);
    assert_eq!(
        m["message_id"].as_str().unwrap(),
        format!("<{}@chainr>", sent["oncall-mail"]["id"].as_str().unwrap())
    );
    for d in sent.values() {
        assert_eq!(d["attempts"], 1, "{d}");
        assert_eq!(d["run"], run.as_str());
    }
    let log = server.log();
    for secret in ["c2VjcmV0LWtleS1", SMTP_PASSWORD, "SLACKSECRETPATH"] {
        assert!(!log.contains(secret), "a secret in the log:\n{log}");
    }
}

#[test]
fn failing_receivers_are_retried_and_dead_letters_resent() {
    let r = Receivers::start();
    let d = tempfile::tempdir().unwrap();
    let down = format!("http://127.0.0.1:{}/", closed_port());
    let mut media = String::new();
    for (name, url) in [
        ("flaky", r.url("flaky")),
        ("ratelimit", r.url("ratelimit")),
        ("silent", r.url("silent")),
        ("down", down),
    ] {
        media.push_str(&format!(
            "[media.{name}]\ntype = \"webhook\"\nurl = \"{url}\"\nsecret = {{ env = \"HOOK_SECRET\" }}\n\n"
        ));
    }
    let config = write_config(
        d.path(),
        &format!(
            "{media}[delivery]\nschedule = [\"300ms\", \"300ms\", \"300ms\"]\ntimeout = \"1s\"\n"
        ),
    );
    let server = serve_sqlite(d.path(), &config, &secrets_env());
    let pipeline = r#"{"kind": "Pipeline", "name": "hourly",
        "notify": [{"on": ["succeeded"], "to": ["flaky", "ratelimit", "silent", "down"]}],
        "jobs": {"a": {"image": "busybox", "run": "true"}}}"#;
    let answer = server.post_json("/api/runs", pipeline);
    assert_eq!(answer.status, 202, "{}", answer.text());

    // Three failures, then delivered: four attempts, the same id each time.
    let flaky = r.wait("flaky", 4);
    let statuses: Vec<&Value> = flaky.iter().map(|x| &x["status"]).collect();
    assert_eq!(statuses, [500, 500, 500, 204]);
    assert!(flaky
        .iter()
        .all(|x| x["verified"] == true && x["id"] == flaky[0]["id"]));
    // 429 with Retry-After: 2 is waited for, though the schedule says 300 ms.
    let limited = r.wait("ratelimit", 2);
    assert_eq!(
        (limited[0]["status"].clone(), limited[1]["status"].clone()),
        (429.into(), 200.into())
    );
    let waited = limited[1]["at"].as_f64().unwrap() - limited[0]["at"].as_f64().unwrap();
    assert!(waited >= 1.9, "retried after {waited} s");

    wait_for(Duration::from_secs(30), "two dead letters", || {
        notifications(&server, "dead").len() == 2
    });
    let dead = by_medium(&notifications(&server, "dead"));
    assert_eq!(dead.keys().collect::<Vec<_>>(), ["down", "silent"]);
    for d in dead.values() {
        assert_eq!(d["attempts"], 4, "{d}");
    }
    let silent_error = dead["silent"]["lastError"].as_str().unwrap();
    assert!(
        silent_error.contains("could not be reached"),
        "{silent_error}"
    );
    assert!(silent_error.contains("after 4 attempts"), "{silent_error}");
    assert!(
        !silent_error.contains(&r.ready["silent"].to_string()),
        "no URL in errors: {silent_error}"
    );
    assert_eq!(
        r.got("silent").len(),
        4,
        "each timed-out attempt reached it"
    );
    wait_for(Duration::from_secs(10), "two sent", || {
        notifications(&server, "sent").len() == 2
    });
    let sent = by_medium(&notifications(&server, "sent"));
    assert_eq!(sent["flaky"]["attempts"], 4);
    assert_eq!(sent["ratelimit"]["attempts"], 2);

    // A dead letter is resent (and dies again: the port is still closed); a sent one is not.
    let id = dead["down"]["id"].as_str().unwrap();
    let again = server.post_json(&format!("/api/notifications/{id}/resend"), "");
    assert_eq!(again.status, 202, "{}", again.text());
    assert_eq!(again.json()["state"], "pending");
    assert_eq!(again.json()["attempts"], 0);
    let sent_id = sent["flaky"]["id"].as_str().unwrap();
    let refused = server.post_json(&format!("/api/notifications/{sent_id}/resend"), "");
    assert_eq!(refused.status, 409, "{}", refused.text());
    assert_eq!(
        server
            .post_json("/api/notifications/nope/resend", "")
            .status,
        404
    );
    wait_for(
        Duration::from_secs(20),
        "the resent letter dead again",
        || {
            let one = server.get(&format!("/api/notifications/{id}")).json();
            one["state"] == "dead" && one["attempts"] == 4
        },
    );
    assert_eq!(server.get("/api/notifications?state=lost").status, 400);

    let metrics = server.get("/metrics").text();
    for line in [
        "chainr_notification_attempts_total{medium=\"flaky\",result=\"retried\"} 3",
        "chainr_notification_attempts_total{medium=\"flaky\",result=\"sent\"} 1",
        "chainr_notification_attempts_total{medium=\"down\",result=\"dead\"} 2",
        "chainr_notifications{state=\"dead\"} 2",
        "chainr_notifications{state=\"sent\"} 2",
    ] {
        assert!(metrics.contains(line), "{line} not in\n{metrics}");
    }
}

#[test]
fn a_notifier_sigkilled_in_a_burst_of_100_loses_and_repeats_nothing() {
    let r = Receivers::start();
    let redis = crate::serve_crash::RedisServer::start();
    let url = redis.url();
    let d = tempfile::tempdir().unwrap();
    let config = write_config(
        d.path(),
        &format!(
            "[media.hooks]\ntype = \"webhook\"\nurl = \"{}\"\nsecret = {{ env = \"HOOK_SECRET\" }}\n\n[delivery]\nschedule = [\"200ms\", \"200ms\", \"200ms\", \"200ms\"]\ntimeout = \"1s\"\nconcurrency = 4\n",
            r.url("webhook")
        ),
    );
    let api = Server::start(&["--no-auth", "--redis", &url, "--roles", "api,worker"]);
    let notifier_args = [
        "--no-auth",
        "--redis",
        &url,
        "--roles",
        "notifier",
        "--config",
        &config,
    ];
    let first = Server::start_with_env("127.0.0.1:0", &notifier_args, &secrets_env());
    // A chain of 100 jobs, each telling the webhook when it succeeded: the notifications come
    // as the jobs end, over a few seconds.
    let mut jobs = Vec::new();
    for i in 0..100 {
        let after = if i == 0 {
            String::new()
        } else {
            format!(r#", "dependsOn": [{{"job": "j{}"}}]"#, i - 1)
        };
        jobs.push(format!(
            r#""j{i}": {{"image": "busybox", "run": "sleep 0.02"{after}, "notify": [{{"on": ["succeeded"], "to": ["hooks"]}}]}}"#
        ));
    }
    let pipeline = format!(
        r#"{{"kind": "Pipeline", "name": "burst", "jobs": {{{}}}}}"#,
        jobs.join(", ")
    );
    let answer = api.post_json("/api/runs", &pipeline);
    assert_eq!(answer.status, 202, "{}", answer.text());
    let run = uid(&answer);

    r.wait("webhook", 20);
    first.kill();
    let at_kill = r.got("webhook").len();
    assert!(
        at_kill < 100,
        "the kill came too late to test anything ({at_kill})"
    );
    let _second = Server::start_with_env("127.0.0.1:0", &notifier_args, &secrets_env());
    let distinct = || -> BTreeSet<String> {
        r.got("webhook")
            .iter()
            .map(|x| x["id"].as_str().unwrap().to_string())
            .collect()
    };
    wait_for(
        Duration::from_secs(60),
        "100 distinct notifications",
        || distinct().len() >= 100,
    );
    wait_for(Duration::from_secs(10), "all 100 recorded as sent", || {
        notifications(&api, "sent").len() == 100
    });
    // Nothing more comes.
    std::thread::sleep(Duration::from_secs(1));
    let got = r.got("webhook");
    let ids = distinct();
    assert_eq!(ids.len(), 100, "one id per notification");
    assert!(got.iter().all(|x| x["verified"] == true));
    let jobs: BTreeSet<String> = got
        .iter()
        .map(|x| x["body"]["data"]["job"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(jobs.len(), 100, "one notification per job");
    assert!(got
        .iter()
        .all(|x| x["body"]["data"]["run"]["uid"] == run.as_str()));
    // Only what was in flight when the notifier died may have come twice, under its id (which
    // is how a receiver that follows Standard Webhooks knows it has it already).
    let repeats = got.len() - ids.len();
    assert!(
        repeats <= 4,
        "{repeats} repeated deliveries (concurrency 4)"
    );
    let sent_ids: BTreeSet<String> = notifications(&api, "sent")
        .iter()
        .map(|d| d["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(sent_ids, ids);
}

#[test]
fn chainrc_run_notify_delivers_a_local_runs_notifications() {
    let r = Receivers::start();
    let d = tempfile::tempdir().unwrap();
    let config = write_config(
        d.path(),
        &format!(
            "[media.hooks]\ntype = \"webhook\"\nurl = \"{}\"\nsecret = {{ env = \"HOOK_SECRET\" }}\n\n[media.console]\ntype = \"stdout\"\n",
            r.url("webhook")
        ),
    );
    let pipeline = d.path().join("p.json");
    std::fs::write(
        &pipeline,
        r#"{"kind": "Pipeline", "name": "local",
            "notify": [{"on": ["started", "failed"], "to": ["hooks", "console"]}],
            "jobs": {"a": {"image": "busybox", "run": "echo broken >&2; exit 3"}}}"#,
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_chainrc"))
        .args(["run", "--notify", &config, "--logs"])
        .arg(d.path().join("logs"))
        .arg(&pipeline)
        .env("HOOK_SECRET", SECRET)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stdout.contains("START "), "{stdout}");
    assert!(stdout.contains("FAILURE "), "{stdout}");
    // Sent before the command ended.
    let got = r.got("webhook");
    let types: BTreeSet<&str> = got
        .iter()
        .map(|x| x["body"]["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        BTreeSet::from(["run.started", "run.failed"]),
        "{stderr}"
    );
    assert!(got.iter().all(|x| x["verified"] == true));
    let failed = got
        .iter()
        .find(|x| x["body"]["type"] == "run.failed")
        .unwrap();
    assert!(failed["body"]["data"]["jobs"][0]["logTail"]
        .to_string()
        .contains("broken"));
    assert!(!stderr.contains("not delivered"), "{stderr}");

    // With the Run document on standard output, the lines go to standard error.
    let out = Command::new(env!("CARGO_BIN_EXE_chainrc"))
        .args(["run", "--format", "json", "--notify", &config, "--logs"])
        .arg(d.path().join("logs2"))
        .arg(&pipeline)
        .env("HOOK_SECRET", SECRET)
        .output()
        .unwrap();
    let doc: Value = serde_json::from_slice(&out.stdout).expect("stdout is the Run document");
    assert_eq!(doc["status"], "FAILED");
    assert!(String::from_utf8_lossy(&out.stderr).contains("FAILURE "));
}

#[test]
fn check_and_run_with_a_configuration_refuse_unknown_media() {
    let d = tempfile::tempdir().unwrap();
    let config = write_config(d.path(), "[media.team-slack]\ntype = \"stdout\"\n");
    let pipeline = d.path().join("p.chainr");
    std::fs::write(
        &pipeline,
        "pipeline p {\n  notify on failed { to = [\"team-slak\"] }\n  job a { image = \"busybox\" run = \"touch ran\" }\n}\n",
    )
    .unwrap();
    let chainrc = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_chainrc"))
            .args(args)
            .arg(&pipeline)
            .current_dir(d.path())
            .env("NO_COLOR", "1")
            .output()
            .unwrap()
    };
    let checked = chainrc(&["check", "--notify", &config]);
    let stderr = String::from_utf8_lossy(&checked.stderr);
    assert_eq!(checked.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("error[E0707]"), "{stderr}");
    assert!(stderr.contains("team-slack"), "did you mean: {stderr}");
    // Without the configuration the media are not known, and not checked.
    assert_eq!(chainrc(&["check"]).status.code(), Some(0));

    let ran = chainrc(&["run", "--notify", &config]);
    assert_eq!(
        ran.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&ran.stderr)
    );
    assert!(!d.path().join("ran").exists(), "nothing ran");
}

#[test]
fn running_longer_than_fires_for_a_slow_run_and_is_skipped_for_a_quick_one() {
    let r = Receivers::start();
    let d = tempfile::tempdir().unwrap();
    let config = write_config(
        d.path(),
        &format!(
            "[media.hooks]\ntype = \"webhook\"\nurl = \"{}\"\nsecret = {{ env = \"HOOK_SECRET\" }}\n",
            r.url("webhook")
        ),
    );
    let server = serve_sqlite(d.path(), &config, &secrets_env());
    let submit = |name: &str, limit: &str, run: &str| {
        let text = format!(
            "pipeline {name} {{\n  notify on running_longer_than {limit} {{ to = [\"hooks\"] }}\n  job a {{ image = \"busybox\" run = \"{run}\" }}\n}}\n"
        );
        let a = server.request(
            "POST",
            "/api/runs",
            &[("Content-Type", "text/x-chainr")],
            text.as_bytes(),
        );
        assert_eq!(a.status, 202, "{}", a.text());
        uid(&a)
    };
    let slow = submit("slow", "500ms", "sleep 3");
    let quick = submit("quick", "2s", "true");

    let hook = r.wait("webhook", 1).remove(0);
    assert_eq!(hook["body"]["type"], "run.running_longer_than", "{hook}");
    assert_eq!(hook["body"]["data"]["run"]["uid"], slow.as_str());
    assert_eq!(hook["body"]["data"]["after"], "500ms");
    assert_eq!(hook["body"]["data"]["run"]["status"], "RUNNING");
    assert_eq!(
        hook["body"]["data"]["headline"],
        "slow is still running after 500ms"
    );

    wait_for(
        Duration::from_secs(15),
        "the quick run's alert skipped",
        || {
            notifications(&server, "skipped")
                .iter()
                .any(|n| n["run"] == quick.as_str())
        },
    );
    let skipped = notifications(&server, "skipped");
    assert_eq!(skipped[0]["lastError"], "the run finished in time");
    assert_eq!(r.got("webhook").len(), 1, "the quick run said nothing");
}
