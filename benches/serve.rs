//! Service benchmark: the release `chainrc serve` on loopback, with its references measured in
//! the same run.
//!
//! 1. Runs accepted per second: `wrk` (2 threads, 64 connections, 10 s) posts the original chainr
//!    README's pipeline JSON to `POST /api/runs` of `chainrc serve --no-auth`, with the roles
//!    `api` (nothing runs the runs) and `api,worker` (workers run them meanwhile), with SQLite
//!    and with Redis (a real `redis-server`, AOF on, `appendfsync everysec`). References: `wrk`
//!    against `GET /healthz`, a handler that does nothing (the HTTP stack's ceiling), and
//!    `redis-benchmark -t set` (Redis's).
//! 2. The cost of durability: `layered 1000` of `true`, two jobs at a time, through `chainrc
//!    serve` (roles `api,worker`, SQLite and Redis; posted as source, read every 200 ms until it
//!    has finished, timed from the POST to the run's `finishedAt`) against `chainrc run` on the
//!    same file, in rounds (one run of each in turn), the first round discarded.
//!
//! `cargo bench --bench serve`; `CHAINR_BENCH_SECS=N` sets the seconds of load per configuration
//! (default 10), `CHAINR_BENCH_CONNECTIONS=N` the connections (default 64), `CHAINR_BENCH_RUNS=N`
//! the timed rounds of part 2 (default 7). `cargo bench --bench serve -- accepted` (or
//! `durability`) runs one part only.

mod redis_server;
// Only the DAG shapes are used here.
#[allow(dead_code)]
mod workload;

use redis_server::RedisServer;
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

const EXE: &str = env!("CARGO_BIN_EXE_chainrc");

/// The original chainr README's pipeline, as its users post it.
const SEED: &str = include_str!("../examples/seed.json");

/// Where a server keeps its state: SQLite in a new directory, or a database of a Redis server.
#[derive(Clone, Copy)]
enum Backend<'a> {
    Sqlite,
    Redis(&'a RedisServer, u8),
}

impl Backend<'_> {
    fn name(&self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Redis(..) => "redis",
        }
    }
}

/// A running `chainrc serve --no-auth`, killed when dropped.
struct Serve {
    child: Child,
    addr: SocketAddr,
    _data: tempfile::TempDir,
}

impl Serve {
    /// Starts `chainrc serve` on a free loopback port with `roles`, and waits for the line that
    /// says where it serves (`chainr serving on http://ADDR`).
    fn start(backend: Backend, roles: &str) -> Serve {
        let data = tempfile::tempdir().unwrap();
        let mut command = Command::new(EXE);
        command.args([
            "serve",
            "--no-auth",
            "--listen",
            "127.0.0.1:0",
            "--roles",
            roles,
        ]);
        match backend {
            Backend::Sqlite => command.arg("--data-dir").arg(data.path()),
            Backend::Redis(server, db) => {
                command.args(["--redis", &format!("{}{db}", server.url())])
            }
        };
        let mut child = command
            .env_remove("CHAINR_REDIS")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("chainrc serve starts");
        // Every line of stderr is read, to its end, so that the server never waits on a full pipe.
        let (tx, rx) = std::sync::mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut said = String::new();
        let addr = loop {
            let wait = deadline.saturating_duration_since(Instant::now());
            let Ok(line) = rx.recv_timeout(wait) else {
                let _ = child.kill();
                panic!("chainrc serve did not say where it serves:\n{said}");
            };
            if let Some((_, rest)) = line.split_once("chainr serving on http://") {
                break rest
                    .split_whitespace()
                    .next()
                    .unwrap_or("")
                    .parse()
                    .unwrap();
            }
            said.push_str(&line);
            said.push('\n');
        };
        Serve {
            child,
            addr,
            _data: data,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// One request on a connection of its own: the status and the body.
    fn request(&self, method: &str, path: &str, content_type: &str, body: &str) -> (u16, String) {
        let mut s = TcpStream::connect(self.addr).unwrap();
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n{body}",
            self.addr,
            body.len()
        )
        .unwrap();
        let mut answer = String::new();
        s.read_to_string(&mut answer).unwrap();
        let status = answer.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
        let body = answer
            .split_once("\r\n\r\n")
            .map_or("", |(_, b)| b)
            .to_string();
        (status, body)
    }

    fn get(&self, path: &str) -> String {
        let (status, body) = self.request("GET", path, "text/plain", "");
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }

    /// `chainr_runs_submitted_total` of `/metrics`: the runs this server has accepted.
    fn submitted(&self) -> u64 {
        self.get("/metrics")
            .lines()
            .find_map(|l| l.strip_prefix("chainr_runs_submitted_total "))
            .and_then(|n| n.trim().parse().ok())
            .expect("/metrics counts the runs submitted")
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What `wrk` measured: responses per second (2xx only), their count, the others (non-2xx
/// answers and socket errors), and the latency's median and 99th percentile.
struct Load {
    per_sec: f64,
    ok: u64,
    failed: u64,
    p50: Duration,
    p99: Duration,
}

/// The end of every `wrk` script: its figures on one line, read by `load`.
const SUMMARY: &str = r#"
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("summary %.0f %.0f %.0f %.0f %.0f %.0f\n", summary.requests,
    summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"#;

/// `wrk` against `url` for `secs` seconds with `connections` connections on 2 threads; with a
/// body, it POSTs it as JSON.
fn load(url: &str, post: Option<&str>, secs: u64, connections: usize) -> Load {
    let mut script = tempfile::NamedTempFile::new().unwrap();
    if let Some(body) = post {
        writeln!(
            script,
            "wrk.method = \"POST\"\nwrk.headers[\"Content-Type\"] = \"application/json\"\nwrk.body = [==[{body}]==]"
        )
        .unwrap();
    }
    script.write_all(SUMMARY.as_bytes()).unwrap();
    let out = Command::new("wrk")
        .args(["-t2", &format!("-c{connections}"), &format!("-d{secs}s")])
        .args(["--timeout", "10s", "-s"])
        .arg(script.path())
        .arg(url)
        .output()
        .expect("wrk runs");
    let text = String::from_utf8_lossy(&out.stdout);
    let n: Vec<f64> = text
        .lines()
        .find_map(|l| l.strip_prefix("summary "))
        .unwrap_or_else(|| panic!("wrk printed no summary:\n{text}"))
        .split_whitespace()
        .map(|n| n.parse().unwrap())
        .collect();
    let (requests, micros, status, socket) = (n[0], n[1], n[2], n[3]);
    let ok = requests - status;
    Load {
        per_sec: ok / (micros / 1e6),
        ok: ok as u64,
        failed: (status + socket) as u64,
        p50: Duration::from_micros(n[4] as u64),
        p99: Duration::from_micros(n[5] as u64),
    }
}

/// `wrk -v`'s first line up to its copyright (`wrk debian/4.1.0-3+b2 [epoll]`), when wrk is
/// installed.
fn wrk_version() -> Option<String> {
    let out = Command::new("wrk").arg("-v").output().ok()?;
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    let line = text.lines().next()?;
    let end = line.find(" Copyright").unwrap_or(line.len());
    Some(line[..end].to_string())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn print_load(what: &str, unit: &str, l: &Load) {
    println!(
        "  {what:<38} {:>8.0} {unit}/s  p50 {:>6.2} ms  p99 {:>6.2} ms  ({} answered 2xx, {} not)",
        l.per_sec,
        ms(l.p50),
        ms(l.p99),
        l.ok,
        l.failed
    );
}

/// Part 1: runs accepted per second, for each store and roles, and the references.
fn accepted(secs: u64, connections: usize) {
    println!(
        "runs accepted by POST /api/runs (the seed JSON): wrk, 2 threads, {connections} connections, {secs} s each"
    );
    let Some(wrk) = wrk_version() else {
        println!("  the load generator, wrk, is not installed: not measured (apt-get install wrk)");
        return;
    };
    println!("  load generator: {wrk}");
    let redis = RedisServer::start();
    let set_rate = redis_server::set_rate(&redis);
    let healthz = {
        let server = Serve::start(Backend::Sqlite, "api");
        load(&server.url("/healthz"), None, secs, connections)
    };
    print_load("reference: GET /healthz", "req", &healthz);
    let mut redis_api = None;
    for (db, roles) in [(1, "api"), (2, "api,worker")] {
        for backend in [Backend::Sqlite, Backend::Redis(&redis, db)] {
            let server = Serve::start(backend, roles);
            let l = load(&server.url("/api/runs"), Some(SEED), secs, connections);
            let stored = server.submitted();
            assert!(
                stored >= l.ok,
                "wrk saw {} runs accepted, the server counts {stored}",
                l.ok
            );
            print_load(&format!("{}, roles {roles}", backend.name()), "runs", &l);
            if db == 1 && matches!(backend, Backend::Redis(..)) {
                redis_api = Some(l.per_sec);
            }
        }
    }
    println!("  reference: redis-benchmark -t set -n 200000 -c 50 {set_rate:>8.0} SET/s");
    if let Some(rate) = redis_api {
        println!("\n  redis, roles api: {rate:.0} runs/s (target at least 2000)");
        println!(
            "    {:.1}% of GET /healthz, {:.1}% of redis-benchmark's SET",
            100.0 * rate / healthz.per_sec,
            100.0 * rate / set_rate
        );
    }
}

/// Posts `source` to `server` and reads the run every 200 ms until it has finished. Answers
/// the time from the POST to the run's `finishedAt` and to its `startedAt` (the server's clock,
/// the same machine's), so that the reads' period does not count; they are few because a read
/// of a 1,000-job run costs the server a few milliseconds (every 20 ms, they made runs 15%
/// slower).
fn submit_and_wait(server: &Serve, source: &str) -> (Duration, Duration) {
    let posted = SystemTime::now();
    let (status, body) = server.request("POST", "/api/runs", "text/x-chainr", source);
    assert_eq!(status, 202, "{body}");
    let run: Value = serde_json::from_str(&body).unwrap();
    let uid = run["metadata"]["uid"].as_str().unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(120);
    let run = loop {
        std::thread::sleep(Duration::from_millis(200));
        let run: Value = serde_json::from_str(&server.get(&format!("/api/runs/{uid}"))).unwrap();
        if run["finishedAt"].is_string() {
            break run;
        }
        assert!(Instant::now() < deadline, "the run did not finish: {run}");
    };
    assert_eq!(run["status"], "SUCCESSFUL", "{}", run["reason"]);
    let since_post = |field: &str| {
        let at = humantime::parse_rfc3339(run[field].as_str().unwrap()).unwrap();
        at.duration_since(posted).unwrap_or_default()
    };
    (since_post("finishedAt"), since_post("startedAt"))
}

fn median(mut v: Vec<Duration>) -> (Duration, Duration) {
    v.sort();
    (v[v.len() / 2], v[0])
}

/// Part 2: `layered 1000` through `chainrc serve` against `chainrc run`, in rounds.
fn durability(rounds: usize, dir: &Path) {
    println!(
        "\nlayered 1000 of `true`, two jobs at a time ({rounds} rounds, one run of each in turn; median (min))"
    );
    let source = workload::dag("layered", 1000)
        .chainr()
        .replacen('{', "{\n  concurrency = 2", 1);
    std::fs::write(dir.join("pipeline.chainr"), &source).unwrap();
    let redis = RedisServer::start();
    let servers = [
        Serve::start(Backend::Sqlite, "api,worker"),
        Serve::start(Backend::Redis(&redis, 3), "api,worker"),
    ];
    let mut run_times = Vec::new();
    let mut finished = vec![Vec::new(); servers.len()];
    let mut started = vec![Vec::new(); servers.len()];
    for round in 0..=rounds {
        let _ = std::fs::remove_dir_all(dir.join("logs"));
        let start = Instant::now();
        let status = Command::new(EXE)
            .args(["run", "--concurrency", "2", "--format", "json"])
            .args(["--logs", "logs", "pipeline.chainr"])
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        let took = start.elapsed();
        assert!(status.success(), "chainrc run failed");
        let serve: Vec<_> = servers
            .iter()
            .map(|s| submit_and_wait(s, &source))
            .collect();
        if round == 0 {
            continue; // the first round warms caches
        }
        run_times.push(took);
        for (k, (done, began)) in serve.into_iter().enumerate() {
            finished[k].push(done);
            started[k].push(began);
        }
    }
    let (run, run_min) = median(run_times);
    println!(
        "  {:<38} {:>8.1} ms ({:>6.1})",
        "chainrc run --concurrency 2",
        ms(run),
        ms(run_min)
    );
    let mut ratios = Vec::new();
    for (k, name) in ["sqlite", "redis"].iter().enumerate() {
        let (done, done_min) = median(finished[k].clone());
        let (began, _) = median(started[k].clone());
        let driven = finished[k]
            .iter()
            .zip(&started[k])
            .map(|(d, b)| d.saturating_sub(*b))
            .collect();
        let (driven, _) = median(driven);
        println!(
            "  {:<38} {:>8.1} ms ({:>6.1}): {:.1} ms until a worker started it, {:.1} ms from its start to its end",
            format!("chainrc serve, {name}: POST to finished"),
            ms(done),
            ms(done_min),
            ms(began),
            ms(driven)
        );
        ratios.push((name, ms(done) / ms(run), ms(driven) / ms(run)));
    }
    println!("\nratios (median)");
    for (name, whole, driven) in ratios {
        println!("  serve {name:<6} / run {whole:>5.2}x   from its start to its end: {driven:.2}x");
    }
}

fn main() {
    let secs = env("CHAINR_BENCH_SECS", 10);
    let connections = env("CHAINR_BENCH_CONNECTIONS", 64) as usize;
    let rounds = env("CHAINR_BENCH_RUNS", 7) as usize;
    // `cargo bench --bench serve -- durability` runs that part only (cargo adds `--bench`).
    let parts: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let part = |name: &str| parts.is_empty() || parts.iter().any(|p| p == name);
    if part("accepted") {
        accepted(secs, connections);
    }
    if part("durability") {
        let dir = tempfile::tempdir().unwrap();
        durability(rounds, dir.path());
    }
}
