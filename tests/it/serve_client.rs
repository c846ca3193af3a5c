//! The client commands (`submit`, `status`, `logs`, `cancel`) against a real `chainrc serve` on a
//! loopback port: runs followed to their end with the view of `chainrc run`, exit codes,
//! diagnostics of an invalid pipeline, logs read and followed while a job runs, a cancel seen by
//! a wait, tokens, and a wait that goes on across a restart of the server.

use super::serve::Server;
use assert_cmd::Command;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_chainrc");

/// A client command that hangs fails its test instead of hanging the suite.
const LIMIT: Duration = Duration::from_secs(60);

/// A `chainrc serve` (killed when dropped) with its data, and the tests' files, in a temp dir.
struct Served {
    server: Server,
    url: String,
    dir: tempfile::TempDir,
}

impl Served {
    /// Serves without authentication on a port of its own choosing.
    fn start() -> Served {
        Served::on(tempfile::tempdir().unwrap(), "127.0.0.1:0", &["--no-auth"])
    }

    /// Serves with these tokens (`NAME SCOPE SECRET` lines).
    fn with_tokens(tokens: &str) -> Served {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tokens");
        std::fs::write(&file, tokens).unwrap();
        let file = file.display().to_string();
        Served::on(dir, "127.0.0.1:0", &["--tokens", &file])
    }

    /// `chainrc serve --listen LISTEN --data-dir DIR ARGS...`.
    fn on(dir: tempfile::TempDir, listen: &str, args: &[&str]) -> Served {
        let data = dir.path().display().to_string();
        let mut all = vec!["--data-dir", &data, "--lease", "3s"];
        all.extend_from_slice(args);
        let server = Server::start_on(listen, &all);
        let url = format!("http://{}", server.addr);
        Served { server, url, dir }
    }

    /// `chainrc` pointed at this server, with a time limit.
    fn chainrc(&self) -> Command {
        let mut cmd = Command::from_std(client(&self.url));
        cmd.timeout(LIMIT);
        cmd
    }
}

/// `chainrc` as a client of `url`: no token, no proxy of the environment in the way, no colour.
fn client(url: &str) -> std::process::Command {
    let mut cmd = std::process::Command::new(BIN);
    cmd.current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("CHAINR_SERVER", url)
        .env("NO_PROXY", "127.0.0.1")
        .env("no_proxy", "127.0.0.1")
        .env_remove("CHAINR_TOKEN")
        .env_remove("NO_COLOR");
    cmd
}

struct Output {
    code: i32,
    stdout: String,
    stderr: String,
}

fn output(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap();
    Output {
        code: out.status.code().expect("chainrc ended by a signal"),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// The uid in `submit --wait`'s first line: `submitted NAME (N jobs) to URL, run UID; ...`.
fn submitted_uid(stderr: &str) -> String {
    let line = stderr
        .lines()
        .find(|l| l.starts_with("submitted "))
        .unwrap_or_else(|| panic!("no `submitted` line in:\n{stderr}"));
    let (_, rest) = line.split_once(", run ").unwrap();
    rest.split(';').next().unwrap().to_string()
}

/// The uid of a run submitted with `--format json`.
fn submit_json(server: &Served, file: &Path) -> String {
    let out = output(
        server
            .chainrc()
            .args(["submit", "--format", "json"])
            .arg(file),
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    doc["metadata"]["uid"].as_str().unwrap().to_string()
}

#[test]
fn serve_client_submit_wait_shows_the_run_and_status_lists_it() {
    let server = Served::start();
    let out = output(
        server
            .chainrc()
            .args(["submit", "--wait", "examples/seed.chainr"]),
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    let uid = submitted_uid(&out.stderr);
    // The line view of `chainrc run` (stderr is not a terminal), then its summary.
    for line in [
        "started   first (attempt 1)",
        "succeeded second in ",
        "skipped   error: its condition was false",
        "succeeded success in ",
        "SUCCESSFUL example in ",
        "3 successful, 1 skipped",
    ] {
        assert!(out.stderr.contains(line), "no `{line}` in:\n{}", out.stderr);
    }
    assert_eq!(
        out.stderr.matches("succeeded first").count(),
        1,
        "{}",
        out.stderr
    );

    let list = output(server.chainrc().arg("status"));
    assert_eq!(list.code, 0, "{}", list.stderr);
    let row = list
        .stdout
        .lines()
        .find(|l| l.starts_with(&uid))
        .unwrap_or_else(|| panic!("run {uid} is not listed:\n{}", list.stdout));
    assert!(
        row.contains("example") && row.contains("SUCCESSFUL"),
        "{row}"
    );
    assert!(list.stdout.starts_with("UID "), "{}", list.stdout);

    let one = output(server.chainrc().args(["status", &uid]));
    assert_eq!(one.code, 0, "{}", one.stderr);
    assert!(one
        .stdout
        .starts_with(&format!("run {uid}  example  SUCCESSFUL")));
    let job = |name: &str| {
        one.stdout
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("no job {name} in:\n{}", one.stdout))
            .split_whitespace()
            .collect::<Vec<_>>()
    };
    assert_eq!(job("first")[1..4], ["SUCCESSFUL", "1", "0"]);
    assert_eq!(job("error")[1..4], ["SKIPPED", "0", "-"]);
    assert!(job("error").join(" ").ends_with("its condition was false"));

    let json = output(server.chainrc().args(["status", "--format", "json", &uid]));
    let doc: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(doc["status"], "SUCCESSFUL");
    assert_eq!(doc["jobs"].as_array().unwrap().len(), 4);

    let filtered = output(server.chainrc().args(["status", "--status", "failed"]));
    assert_eq!(filtered.code, 0, "{}", filtered.stderr);
    assert!(!filtered.stdout.contains(&uid), "{}", filtered.stdout);
    assert!(
        filtered.stderr.contains("no runs match"),
        "{}",
        filtered.stderr
    );
}

#[test]
fn serve_client_a_failed_run_exits_1_and_its_logs_are_kept() {
    let server = Served::start();
    let file = write(
        server.dir.path(),
        "fails.chainr",
        "pipeline fails {\n  job fail { image = \"busybox\"  run = \"echo boom; exit 3\" }\n  \
         job next after fail { image = \"busybox\"  run = \"true\" }\n}\n",
    );
    let out = output(server.chainrc().args(["submit", "--wait"]).arg(&file));
    assert_eq!(out.code, 1, "{}", out.stderr);
    let uid = submitted_uid(&out.stderr);
    for line in [
        "failed    fail in ",
        "skipped   next: its condition was false",
        // The end of the failed job's output, read from the server.
        &format!("── fail (exit code 3), output (chainrc logs {uid} fail):\n  boom\n"),
        "FAILED fails in ",
    ] {
        assert!(out.stderr.contains(line), "no `{line}` in:\n{}", out.stderr);
    }

    let logs = output(server.chainrc().args(["logs", &uid, "fail"]));
    assert_eq!(
        (logs.code, logs.stdout.as_str()),
        (0, "boom\n"),
        "{}",
        logs.stderr
    );
    let first = output(
        server
            .chainrc()
            .args(["logs", &uid, "fail", "--attempt", "1"]),
    );
    assert_eq!(first.stdout, "boom\n", "{}", first.stderr);
    let none = output(
        server
            .chainrc()
            .args(["logs", &uid, "fail", "--attempt", "2"]),
    );
    assert_eq!(none.code, 1);
    assert!(
        none.stderr.contains("has no attempt 2") && none.stderr.contains("(404 Not Found)"),
        "{}",
        none.stderr
    );

    let status = output(server.chainrc().args(["status", &uid]));
    assert_eq!(status.code, 0, "{}", status.stderr);
    let row: Vec<&str> = status
        .stdout
        .lines()
        .find(|l| l.starts_with("fail "))
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(row[1..4], ["FAILED", "1", "3"], "{}", status.stdout);
    assert!(row.join(" ").ends_with("exit code 3"), "{}", status.stdout);

    let unknown = output(server.chainrc().args(["status", "no-such-run"]));
    assert_eq!(unknown.code, 1);
    assert!(
        unknown
            .stderr
            .contains("error: no run has uid no-such-run (404 Not Found)"),
        "{}",
        unknown.stderr
    );
}

#[test]
fn serve_client_an_invalid_pipeline_is_not_submitted() {
    let server = Served::start();
    let file = write(
        server.dir.path(),
        "typo.chainr",
        "pipeline typo {\n  job build { image = \"busybox\"  run = \"true\" }\n  \
         job test after biuld { image = \"busybox\"  run = \"true\" }\n}\n",
    );
    let out = output(server.chainrc().args(["submit", "--wait"]).arg(&file));
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stdout.is_empty(), "{}", out.stdout);
    // The server's rendering, placed in the file as it was named here.
    for says in [
        "error[E0100]: unknown job `biuld`",
        &format!("┌─ {}:3:18", file.display()),
        "did you mean `build`?",
        "(400 Bad Request)",
    ] {
        assert!(out.stderr.contains(says), "no `{says}` in:\n{}", out.stderr);
    }
    let list = output(server.chainrc().arg("status"));
    assert_eq!(list.code, 0, "{}", list.stderr);
    assert!(list.stdout.is_empty(), "{}", list.stdout);
    assert!(list.stderr.contains("no runs yet"), "{}", list.stderr);

    // IR takes no params: bad usage, as for `chainrc run`, and nothing is sent.
    let ir = write(server.dir.path(), "p.json", "{\"jobs\": {}}");
    let params = output(server.chainrc().args(["submit", "-p", "a=1"]).arg(&ir));
    assert_eq!(params.code, 2, "{}", params.stderr);
}

#[test]
fn serve_client_logs_follow_streams_a_running_job() {
    let server = Served::start();
    let file = write(
        server.dir.path(),
        "count.chainr",
        "pipeline count {\n  job count { image = \"busybox\"  \
         run = \"for i in 1 2 3; do echo line$i; sleep 1; done\" }\n}\n",
    );
    let uid = submit_json(&server, &file);
    // Asked for at once, probably before the job started: it waits for it.
    let mut follow = client(&server.url)
        .args(["logs", "-f", &uid, "count"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(follow.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    assert_eq!(first, "line1");
    // The first line came while the job still ran (two more seconds of it): streamed, not
    // the whole body at the end.
    assert!(
        follow.try_wait().unwrap().is_none(),
        "`logs -f` ended before the job did"
    );
    let deadline = Instant::now() + LIMIT;
    let rest: Vec<String> = lines.map(Result::unwrap).collect();
    assert_eq!(rest, ["line2", "line3"]);
    let status = loop {
        if let Some(s) = follow.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "`logs -f` did not end with the job"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success());
}

#[test]
fn serve_client_tokens_are_asked_for_and_scopes_explained() {
    let reader = "reader-secret-0123456789";
    let writer = "writer-secret-0123456789";
    let server = Served::with_tokens(&format!("viewer read {reader}\nci write {writer}\n"));

    let anonymous = output(server.chainrc().args(["submit", "examples/seed.chainr"]));
    assert_ne!(anonymous.code, 0);
    assert!(
        anonymous.stderr.contains("(401 Unauthorized)"),
        "{}",
        anonymous.stderr
    );
    assert!(
        anonymous.stderr.contains("set CHAINR_TOKEN"),
        "{}",
        anonymous.stderr
    );

    let read = output(
        server
            .chainrc()
            .env("CHAINR_TOKEN", reader)
            .args(["submit", "examples/seed.chainr"]),
    );
    assert_ne!(read.code, 0);
    for says in [
        "scope read",
        "needs scope write",
        "(403 Forbidden)",
        "write token",
    ] {
        assert!(
            read.stderr.contains(says),
            "no `{says}` in:\n{}",
            read.stderr
        );
    }

    let wrong = output(
        server
            .chainrc()
            .env("CHAINR_TOKEN", "not-a-known-token-at-all")
            .arg("status"),
    );
    assert_eq!(wrong.code, 1);
    assert!(
        wrong.stderr.contains("does not accept the token"),
        "{}",
        wrong.stderr
    );

    let written = output(
        server
            .chainrc()
            .env("CHAINR_TOKEN", writer)
            .args(["submit", "examples/seed.chainr"]),
    );
    assert_eq!(written.code, 0, "{}", written.stderr);
    assert!(written.stdout.starts_with("run "), "{}", written.stdout);
    let listed = output(server.chainrc().env("CHAINR_TOKEN", reader).arg("status"));
    assert_eq!(listed.code, 0, "{}", listed.stderr);
    assert!(listed.stdout.contains("example"), "{}", listed.stdout);
    let uid = written.stdout.split_whitespace().nth(1).unwrap();
    let cancel = output(
        server
            .chainrc()
            .env("CHAINR_TOKEN", reader)
            .args(["cancel", uid]),
    );
    assert_eq!(cancel.code, 1);
    assert!(
        cancel.stderr.contains("cancelling a run needs scope write"),
        "{}",
        cancel.stderr
    );

    // A token is never shown.
    for out in [&anonymous, &read, &wrong, &written, &listed, &cancel] {
        for secret in [reader, writer, "not-a-known-token"] {
            assert!(!out.stdout.contains(secret) && !out.stderr.contains(secret));
        }
    }
}

#[test]
fn serve_client_an_unreachable_server_is_said_plainly() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    // --server wins over CHAINR_SERVER.
    let out = output(
        Command::from_std(client("http://127.0.0.1:9"))
            .args(["status", "--server", &url])
            .timeout(LIMIT),
    );
    assert_eq!(out.code, 1);
    assert!(
        out.stderr
            .starts_with(&format!("error: cannot reach the chainr server at {url}: ")),
        "{}",
        out.stderr
    );
    let submit = output(
        Command::from_std(client(&url))
            .args(["submit", "examples/seed.chainr"])
            .timeout(LIMIT),
    );
    assert_eq!(submit.code, 2, "{}", submit.stderr);
}

#[test]
fn serve_client_wait_goes_on_across_a_server_restart() {
    // A port of our own, so that the server comes back where the client reconnects.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let mut served = Served::on(tempfile::tempdir().unwrap(), &listen, &["--no-auth"]);
    let file = write(
        served.dir.path(),
        "steps.chainr",
        "pipeline steps {\n  job one { image = \"busybox\"  run = \"sleep 2\" }\n  \
         job two after one { image = \"busybox\"  run = \"echo two\" }\n}\n",
    );
    let mut wait = client(&served.url)
        .args(["submit", "--wait"])
        .arg(&file)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(700));
    // A drain: the event stream ends, the run is handed back.
    served.server.signal("TERM");
    assert!(served.server.wait(Duration::from_secs(20)).is_some());
    std::thread::sleep(Duration::from_millis(500));
    let _back = Served::on(served.dir, &listen, &["--no-auth"]);
    let deadline = Instant::now() + LIMIT;
    let status = loop {
        if let Some(s) = wait.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = wait.kill();
            panic!("`submit --wait` did not end after the server came back");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let out = wait.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("SUCCESSFUL steps in "), "{stderr}");
    // Every event once: the stream went on after the last one seen.
    assert_eq!(stderr.matches("succeeded one").count(), 1, "{stderr}");
    assert_eq!(stderr.matches("succeeded two").count(), 1, "{stderr}");
}

#[test]
fn serve_client_cancel_ends_a_waited_run_and_a_finished_one_is_409() {
    let server = Served::start();
    let file = write(
        server.dir.path(),
        "long.chainr",
        "pipeline long {\n  job long { image = \"busybox\"  run = \"sleep 30\" }\n  \
         finally {\n    job tidy { image = \"busybox\"  run = \"echo tidy\" }\n  }\n}\n",
    );
    let started = Instant::now();
    let mut wait = client(&server.url)
        .args(["submit", "--wait"])
        .arg(&file)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The wait's lines as they come: its uid, then the job started.
    let (tx, lines) = std::sync::mpsc::channel();
    let stderr = wait.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut seen = String::new();
    while !seen.contains("started   long") {
        match lines.recv_timeout(LIMIT) {
            Ok(line) => seen.push_str(&(line + "\n")),
            Err(_) => panic!("the wait never showed `long` started:\n{seen}"),
        }
    }
    let uid = submitted_uid(&seen);

    let cancel = output(server.chainrc().args(["cancel", &uid]));
    assert_eq!(cancel.code, 0, "{}", cancel.stderr);
    assert!(
        cancel
            .stdout
            .starts_with(&format!("cancel requested for run {uid} (long, ")),
        "{}",
        cancel.stdout
    );

    let status = wait.wait().unwrap();
    seen.extend(lines.iter().map(|l| l + "\n"));
    assert_eq!(status.code(), Some(130), "{seen}");
    assert!(
        started.elapsed() < Duration::from_secs(25),
        "the job was not stopped"
    );
    for line in [
        "cancelling: stopping running jobs; finally jobs still run",
        "cancelled long in ",
        "succeeded tidy in ",
        "CANCELLED long in ",
    ] {
        assert!(seen.contains(line), "no `{line}` in:\n{seen}");
    }

    let again = output(server.chainrc().args(["cancel", &uid]));
    assert_eq!(again.code, 1);
    assert!(
        again
            .stderr
            .contains(&format!("error: run {uid} has finished (409 Conflict)")),
        "{}",
        again.stderr
    );
    assert!(
        again.stderr.contains("nothing is left to cancel"),
        "{}",
        again.stderr
    );
    let unknown = output(server.chainrc().args(["cancel", "no-such-run"]));
    assert_eq!(unknown.code, 1);
    assert!(
        unknown.stderr.contains("(404 Not Found)"),
        "{}",
        unknown.stderr
    );
}
