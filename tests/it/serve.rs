//! `chainrc serve` end to end: the real binary, a real SQLite file, real processes, raw HTTP
//! over loopback. A server killed with SIGKILL loses no accepted run and runs no attempt twice at
//! once; SIGTERM hands runs back at once; bad input costs nothing.

use serde_json::Value;
use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_chainrc");

/// A running `chainrc serve`, killed when dropped.
pub(crate) struct Server {
    child: Child,
    pub addr: SocketAddr,
    log: Arc<Mutex<String>>,
    out: Arc<Mutex<String>>,
}

impl Server {
    /// Starts `chainrc serve --listen 127.0.0.1:0 ARGS` and waits until it listens.
    pub fn start(args: &[&str]) -> Server {
        Server::start_on("127.0.0.1:0", args)
    }

    /// Starts `chainrc serve --listen LISTEN ARGS` and waits until it listens.
    pub fn start_on(listen: &str, args: &[&str]) -> Server {
        Server::start_with_env(listen, args, &[])
    }

    /// The same, with these variables added to the server's environment (and so to its jobs').
    pub fn start_with_env(listen: &str, args: &[&str], env: &[(&str, &OsStr)]) -> Server {
        let mut child = Command::new(BIN)
            .arg("serve")
            .args(["--listen", listen])
            .args(args)
            .env("RUST_LOG", "info")
            .env_remove("CHAINR_TOKENS")
            .env_remove("CHAINR_REDIS")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("chainrc starts");
        let out = Arc::new(Mutex::new(String::new()));
        let stdout = child.stdout.take().unwrap();
        let printed = out.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let mut out = printed.lock().unwrap();
                out.push_str(&line);
                out.push('\n');
            }
        });
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        let kept = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(at) = line.find("serving on http://") {
                    let rest = &line[at + "serving on http://".len()..];
                    let addr = rest.split_whitespace().next().unwrap_or("").to_string();
                    let _ = tx.send(addr);
                }
                let mut log = kept.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let addr = match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(a) => a.parse().expect("an address"),
            Err(_) => {
                let _ = child.kill();
                panic!("the server did not start:\n{}", log.lock().unwrap());
            }
        };
        Server {
            child,
            addr,
            log,
            out,
        }
    }

    /// What it logged (standard error).
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// What it printed (standard output: the notifier's lines).
    pub fn printed(&self) -> String {
        self.out.lock().unwrap().clone()
    }

    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Answer {
        request(self.addr, method, path, headers, body)
    }

    pub fn get(&self, path: &str) -> Answer {
        self.request("GET", path, &[], b"")
    }

    pub fn post_json(&self, path: &str, body: &str) -> Answer {
        self.request(
            "POST",
            path,
            &[("Content-Type", "application/json")],
            body.as_bytes(),
        )
    }

    /// SIGKILL, as in a crash: nothing is handed back, the jobs it started are left running.
    pub fn kill(mut self) {
        self.child.kill().expect("the server is killed");
        self.child.wait().unwrap();
    }

    pub fn signal(&self, signal: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{signal}");
    }

    /// Waits for the process to exit; its exit code.
    pub fn wait(&mut self, limit: Duration) -> Option<i32> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status.code().unwrap_or(-1));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// Polls a run until its status is terminal.
    pub fn finished(&self, uid: &str, limit: Duration) -> Value {
        let deadline = Instant::now() + limit;
        loop {
            let run = self.get(&format!("/api/runs/{uid}")).json();
            let status = run["status"].as_str().unwrap_or("").to_string();
            if !["PENDING", "RUNNING", ""].contains(&status.as_str()) {
                return run;
            }
            assert!(
                Instant::now() < deadline,
                "run {uid} still {status}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) struct Answer {
    pub status: u16,
    pub head: String,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "{} is not JSON ({e}): {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

/// One HTTP/1.1 request on its own connection (`Connection: close`), read to the end.
pub(crate) fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Answer {
    let mut s = TcpStream::connect(addr).expect("connects");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).unwrap();
    // A server may answer (413) before it has read everything; that is not our failure.
    let _ = s.write_all(body);
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP answer: {:?}", String::from_utf8_lossy(&raw)));
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    let mut body = raw[split + 4..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = dechunk(&body);
    }
    Answer { status, head, body }
}

fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = raw.windows(2).position(|w| w == b"\r\n") {
        let size =
            usize::from_str_radix(std::str::from_utf8(&raw[..eol]).unwrap().trim(), 16).unwrap();
        if size == 0 {
            break;
        }
        out.extend_from_slice(&raw[eol + 2..eol + 2 + size]);
        raw = &raw[eol + 2 + size + 2..];
    }
    out
}

pub(crate) fn uid(answer: &Answer) -> String {
    assert_eq!(
        answer.status,
        202,
        "{}",
        String::from_utf8_lossy(&answer.body)
    );
    answer.json()["metadata"]["uid"]
        .as_str()
        .unwrap()
        .to_string()
}

/// A path fit for a shell string inside JSON.
pub(crate) fn p(path: &Path) -> String {
    let s = path.display().to_string();
    assert!(!s.contains(['"', '\\', '$', '\'', ' ']), "{s}");
    s
}

/// A job that records its start and its end in `markers`, and notes `OVERLAP` if an earlier
/// start of the same job is still running when it starts (a zombie runs nothing: killed
/// orphans stay zombies where the init process does not reap them).
pub(crate) fn marking_job(dir: &Path, name: &str, seconds: u32, after: Option<&str>) -> String {
    let m = p(&dir.join("markers"));
    let lock = p(&dir.join(format!("{name}.pid")));
    let run = format!(
        "if [ -f {lock} ]; then s=$(cut -d' ' -f3 /proc/$(cat {lock})/stat 2>/dev/null); \
         if [ -n \"$s\" ] && [ \"$s\" != Z ]; then echo OVERLAP {name} >> {m}; fi; fi; \
         echo $$ > {lock}; echo start {name} >> {m}; sleep {seconds}; echo end {name} >> {m}"
    );
    let deps = after.map_or(String::new(), |a| {
        format!(r#", "dependsOn": [{{"job": "{a}"}}]"#)
    });
    format!(
        r#""{name}": {{"image": "busybox", "run": {}{deps}}}"#,
        serde_json::to_string(&run).unwrap()
    )
}

pub(crate) fn markers(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("markers"))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

pub(crate) fn wait_for(limit: Duration, what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn data_dir() -> (tempfile::TempDir, PathBuf) {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("data");
    (d, path)
}

/// The original chainr README's example, as it printed it.
const SEED: &str = include_str!("../../examples/seed.json");

#[test]
fn the_seed_json_posted_as_curl_posts_it_runs_to_success() {
    let (_d, data) = data_dir();
    let server = Server::start(&["--no-auth", "--data-dir", data.to_str().unwrap()]);
    // `curl -d @seed.json URL`: the form content type, the file's text as it is.
    let a = server.request(
        "POST",
        "/api/runs",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        SEED.replace('\n', "").as_bytes(),
    );
    let uid = uid(&a);
    let run = server.finished(&uid, Duration::from_secs(30));
    assert_eq!(run["status"], "SUCCESSFUL", "{run}");
    let statuses: Vec<(&str, &str)> = run["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| (j["name"].as_str().unwrap(), j["status"].as_str().unwrap()))
        .collect();
    assert_eq!(
        statuses,
        [
            ("first", "SUCCESSFUL"),
            ("second", "SUCCESSFUL"),
            ("success", "SUCCESSFUL"),
            ("error", "SKIPPED")
        ]
    );
    assert_eq!(server.get("/readyz").status, 200);
    // The notifier role says when it started and how it ended, as the original's notif did.
    wait_for(Duration::from_secs(10), "the notifier's lines", || {
        server.printed().contains(&format!("SUCCESS {uid} "))
    });
    assert!(
        server.printed().contains(&format!("START {uid} ")),
        "{}",
        server.printed()
    );
}

#[test]
fn a_sigkilled_server_restarted_finishes_the_run_without_running_a_job_twice_at_once() {
    let (d, data) = data_dir();
    let dir = d.path();
    let args = [
        "--no-auth",
        "--data-dir",
        data.to_str().unwrap(),
        "--lease",
        "2s",
    ];
    let mut server = Server::start(&args);
    let pipeline = format!(
        r#"{{"kind": "Pipeline", "jobs": {{{}, {}, {}, {}}}}}"#,
        marking_job(dir, "a", 1, None),
        marking_job(dir, "b", 1, Some("a")),
        marking_job(dir, "c", 6, Some("b")),
        marking_job(dir, "d", 1, Some("c")),
    );
    let run = uid(&server.post_json("/api/runs", &pipeline));
    let others: Vec<String> = (0..3)
        .map(|_| uid(&server.post_json("/api/runs", r#"{"kind": "Pipeline", "jobs": {}}"#)))
        .collect();
    wait_for(Duration::from_secs(30), "job c to start", || {
        markers(dir).contains(&"start c".to_string())
    });
    server.signal("KILL");
    assert!(server.wait(Duration::from_secs(5)).is_some());
    drop(server);

    let server = Server::start(&args);
    // Every run accepted before the kill is there.
    let listed = server.get("/api/runs?limit=100").json();
    let uids: Vec<&str> = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["metadata"]["uid"].as_str().unwrap())
        .collect();
    for u in others.iter().chain([&run]) {
        assert!(uids.contains(&u.as_str()), "{u} is missing from {uids:?}");
    }
    let doc = server.finished(&run, Duration::from_secs(60));
    assert_eq!(doc["status"], "SUCCESSFUL", "{doc}\n{}", server.log());
    let m = markers(dir);
    let count = |line: &str| m.iter().filter(|l| *l == line).count();
    assert_eq!(count("start a"), 1, "{m:?}");
    assert_eq!(count("start b"), 1, "{m:?}");
    assert!((1..=2).contains(&count("start c")), "{m:?}");
    assert_eq!(count("end c"), 1, "{m:?}");
    assert_eq!(count("start d"), 1, "{m:?}");
    assert!(!m.iter().any(|l| l.starts_with("OVERLAP")), "{m:?}");
    for u in &others {
        assert_eq!(
            server.finished(u, Duration::from_secs(30))["status"],
            "SUCCESSFUL"
        );
    }
}

#[test]
fn sigterm_drains_and_hands_the_run_back_at_once() {
    let (d, data) = data_dir();
    let dir = d.path();
    // A long lease: a server that did not hand the run back would hold it for a minute.
    let args = [
        "--no-auth",
        "--data-dir",
        data.to_str().unwrap(),
        "--lease",
        "60s",
    ];
    let mut server = Server::start(&args);
    let pipeline = format!(
        r#"{{"kind": "Pipeline", "jobs": {{{}}}}}"#,
        marking_job(dir, "long", 8, None)
    );
    let run = uid(&server.post_json("/api/runs", &pipeline));
    wait_for(Duration::from_secs(20), "the job to start", || {
        markers(dir).contains(&"start long".to_string())
    });
    let asked = Instant::now();
    server.signal("TERM");
    let code = server.wait(Duration::from_secs(15));
    assert_eq!(code, Some(0), "{}", server.log());
    assert!(asked.elapsed() < Duration::from_secs(13));
    drop(server);

    let server = Server::start(&args);
    wait_for(
        Duration::from_secs(10),
        "another start of the job, long before the lease ends",
        || markers(dir).iter().filter(|l| *l == "start long").count() == 2,
    );
    let doc = server.finished(&run, Duration::from_secs(30));
    assert_eq!(doc["status"], "SUCCESSFUL", "{doc}");
    assert!(!markers(dir).iter().any(|l| l.starts_with("OVERLAP")));
}

#[test]
fn without_tokens_the_server_refuses_to_start_and_says_why() {
    let (_d, data) = data_dir();
    let out = Command::new(BIN)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            data.to_str().unwrap(),
        ])
        .env_remove("CHAINR_TOKENS")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--tokens") && err.contains("--no-auth"),
        "{err}"
    );
}

#[test]
fn tokens_from_the_environment_guard_the_api() {
    let (_d, data) = data_dir();
    let mut child = Command::new(BIN)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            data.to_str().unwrap(),
        ])
        .env(
            "CHAINR_TOKENS",
            "ci write ci-secret-0123456789abcdef\nview read view-secret-0123456789abc",
        )
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let addr: SocketAddr = loop {
        let line = lines.next().expect("a log line").unwrap();
        if let Some(at) = line.find("serving on http://") {
            break line[at + 18..]
                .split_whitespace()
                .next()
                .unwrap()
                .parse()
                .unwrap();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    let post = |token: Option<&str>| {
        let auth = token.map(|t| format!("Bearer {t}"));
        let mut headers = vec![("Content-Type", "application/json")];
        if let Some(a) = &auth {
            headers.push(("Authorization", a.as_str()));
        }
        request(addr, "POST", "/api/runs", &headers, SEED.as_bytes())
    };
    let a = post(None);
    assert_eq!(a.status, 401);
    assert!(
        a.head
            .to_ascii_lowercase()
            .contains("www-authenticate: bearer"),
        "{}",
        a.head
    );
    assert_eq!(post(Some("view-secret-0123456789abc")).status, 403);
    let ok = post(Some("ci-secret-0123456789abcdef"));
    assert_eq!(ok.status, 202);
    assert_eq!(ok.json()["metadata"]["submitter"], "ci");
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn bad_input_never_costs_data_and_the_server_keeps_answering() {
    let (_d, data) = data_dir();
    let server = Server::start(&[
        "--no-auth",
        "--data-dir",
        data.to_str().unwrap(),
        "--max-body",
        "1048576",
    ]);
    let kept = uid(&server.post_json("/api/runs", SEED));
    // Malformed.
    assert_eq!(server.post_json("/api/runs", "{\"kind\": ").status, 400);
    // A client that goes away in the middle of its upload.
    {
        let mut s = TcpStream::connect(server.addr).unwrap();
        s.write_all(b"POST /api/runs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 5000\r\n\r\n{\"kind\": \"Pipe")
            .unwrap();
    }
    // 20 MB, far over the limit.
    let big = vec![b' '; 20 << 20];
    let a = server.request(
        "POST",
        "/api/runs",
        &[("Content-Type", "application/json")],
        &big,
    );
    assert_eq!(a.status, 413, "{}", a.head);
    // A slow client (slowloris): the head never ends; the server hangs up on it.
    let mut slow = TcpStream::connect(server.addr).unwrap();
    slow.write_all(b"GET /api/runs HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 256];
    // Meanwhile others are served.
    assert_eq!(server.get("/healthz").status, 200);
    let n = slow.read(&mut buf).unwrap_or(0);
    let answer = String::from_utf8_lossy(&buf[..n]).to_string();
    assert!(n == 0 || answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(started.elapsed() < Duration::from_secs(25));
    // Nothing was stored but the one good run, and it ran.
    let list = server.get("/api/runs").json();
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    assert_eq!(
        server.finished(&kept, Duration::from_secs(30))["status"],
        "SUCCESSFUL"
    );
}

#[test]
fn cancel_stops_the_running_job_and_finally_jobs_still_run() {
    let (d, data) = data_dir();
    let dir = d.path();
    let server = Server::start(&["--no-auth", "--data-dir", data.to_str().unwrap()]);
    let m = p(&dir.join("markers"));
    let pipeline = format!(
        r#"{{"kind": "Pipeline", "jobs": {{{}, "cleanup": {{"image": "busybox", "finally": true, "run": "echo cleanup >> {m}"}}}}}}"#,
        marking_job(dir, "long", 60, None)
    );
    let run = uid(&server.post_json("/api/runs", &pipeline));
    wait_for(Duration::from_secs(20), "the job to start", || {
        markers(dir).contains(&"start long".to_string())
    });
    let pid: i32 = std::fs::read_to_string(dir.join("long.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let a = server.request("POST", &format!("/api/runs/{run}/cancel"), &[], b"");
    assert_eq!(a.status, 202, "{}", String::from_utf8_lossy(&a.body));
    let doc = server.finished(&run, Duration::from_secs(20));
    assert_eq!(doc["status"], "CANCELLED", "{doc}");
    let m = markers(dir);
    assert!(m.contains(&"cleanup".to_string()), "{m:?}");
    assert!(!m.contains(&"end long".to_string()), "{m:?}");
    // The job's process is gone (or a zombie nobody reaps), not left running.
    let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let state = state.rsplit_once(") ").map_or("", |(_, rest)| &rest[..1]);
    assert!(state.is_empty() || state == "Z", "pid {pid} is {state}");
    // Once finished, a cancel is a conflict.
    assert_eq!(
        server
            .request("POST", &format!("/api/runs/{run}/cancel"), &[], b"")
            .status,
        409
    );
}

#[test]
fn a_failed_run_retried_runs_what_failed_and_keeps_what_succeeded() {
    let (d, data) = data_dir();
    let dir = d.path();
    let server = Server::start(&["--no-auth", "--data-dir", data.to_str().unwrap()]);
    let (m, flag) = (p(&dir.join("markers")), p(&dir.join("flag")));
    // `flaky` fails the first time it runs and succeeds after.
    let pipeline = format!(
        r#"{{"kind": "Pipeline", "jobs": {{
            "build": {{"image": "busybox", "run": "echo build >> {m}"}},
            "flaky": {{"image": "busybox", "dependsOn": [{{"job": "build"}}],
                       "run": "echo flaky >> {m}; if [ -f {flag} ]; then exit 0; fi; touch {flag}; exit 3"}},
            "deploy": {{"image": "busybox", "dependsOn": [{{"job": "flaky"}}], "run": "echo deploy >> {m}"}}
        }}}}"#
    );
    let run = uid(&server.post_json("/api/runs", &pipeline));
    let doc = server.finished(&run, Duration::from_secs(20));
    assert_eq!(doc["status"], "FAILED", "{doc}");
    assert_eq!(
        server
            .request("POST", "/api/runs/nope/retry", &[], b"")
            .status,
        404
    );
    let a = server.request("POST", &format!("/api/runs/{run}/retry"), &[], b"");
    assert_eq!(a.status, 202, "{}", String::from_utf8_lossy(&a.body));
    let doc = server.finished(&run, Duration::from_secs(20));
    assert_eq!(doc["status"], "SUCCESSFUL", "{doc}");
    assert_eq!(markers(dir), ["build", "flaky", "flaky", "deploy"]);
    let flaky = doc["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["name"] == "flaky")
        .unwrap();
    let attempts: Vec<u64> = flaky["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["attempt"].as_u64().unwrap())
        .collect();
    assert_eq!(attempts, [1, 2]);
    // The first attempt's log is still there, beside the second's.
    let log = server.get(&format!("/api/runs/{run}/jobs/flaky/logs?attempt=1"));
    assert_eq!(log.status, 200);
}
