//! Notification benchmark: what the durable outbox costs on top of sending.
//!
//! N webhook notifications about one failed run (signed the Standard Webhooks way, with the
//! failed job's log tail) go to a receiver on loopback that answers 204 to each request:
//!
//! - **notifier**: the notifications enqueued in a store's outbox, then delivered by
//!   `chainr_notify::Notifier` (claimed, the run and its log read, sent, settled), with SQLite (a
//!   file, `synchronous = FULL`) and with Redis (a real `redis-server`, AOF on, `appendfsync
//!   everysec`); timed from the first claim to the last notification settled as sent;
//! - **reference**: the same N messages sent by `chainr_notify::send::send` directly, the same
//!   number at once (the configuration's `concurrency`, 8), no store: building, signing and
//!   posting alone.
//!
//! Rounds alternate; the first is discarded; medians are reported with the ratio.
//! `cargo bench --bench notify`; `CHAINR_BENCH_NOTIFICATIONS=N` (default 2000),
//! `CHAINR_BENCH_RUNS=N` timed rounds (default 5).

#[path = "../store-redis/tests/it/server.rs"]
mod redis_server;

use chainr_compiler::ir::NotifyEvent;
use chainr_notify::config::Config;
use chainr_notify::message::{jobs_to_show, Context};
use chainr_runtime::event::{AttemptResult, EventKind, RunEvent};
use chainr_runtime::log::{LogKey, LogSink};
use chainr_runtime::outbox::{notification_id, Delivery, DeliveryState, Notification, Outbox};
use chainr_runtime::store::{NewRun, Store};
use chainr_runtime::{Outcome, RunOutcome};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

const SECRET: &str = "whsec_c2VjcmV0LWtleS1mb3ItdGVzdHMtb25seS0wMTIzNDU2Nzg5";
const RUN: &str = "bench-run";

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A receiver that answers 204 to every request, one connection per request (as the notifier
/// sends them); counts them.
fn receiver() -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().map_while(Result::ok) {
            let seen = seen.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(&stream);
                let mut length = 0usize;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let l = line.to_ascii_lowercase();
                    if let Some(v) = l.strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap_or(0);
                    }
                    if line == "\r\n" {
                        break;
                    }
                }
                let mut body = vec![0; length];
                if reader.read_exact(&mut body).is_err() {
                    return;
                }
                seen.fetch_add(1, Ordering::SeqCst);
                let _ = (&stream).write_all(
                    b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
            });
        }
    });
    (port, count)
}

fn config(port: u16) -> Config {
    let text = format!(
        "ui_url = \"https://chainr.example.com\"\n[media.hooks]\ntype = \"webhook\"\nurl = \"http://127.0.0.1:{port}/hook\"\nsecret = {{ env = \"SECRET\" }}\n[delivery]\nconcurrency = 8\n"
    );
    Config::parse(&text, &|_| Some(SECRET.into()), Path::new(".")).unwrap()
}

fn pipeline() -> chainr_compiler::ir::Pipeline {
    let src = "pipeline nightly-etl {\n  job extract { image = \"busybox\" run = \"true\" }\n  job load after extract { image = \"busybox\" run = \"exit 2\" }\n}\n";
    chainr_compiler::compile(src, &Default::default())
        .pipeline
        .unwrap()
}

/// Stores the failed run, and 40 lines of its failed job's output in `logs`.
async fn failed_run(store: &dyn Store, logs: &dyn LogSink) {
    let at = SystemTime::now();
    store
        .create(NewRun {
            id: RUN.into(),
            pipeline: pipeline(),
            submitter: Some("bench".into()),
            created_at: at,
            source: None,
        })
        .await
        .unwrap();
    let lease = store
        .claim("bench", Duration::from_secs(600))
        .await
        .unwrap()
        .unwrap();
    let e = |seq, kind| RunEvent {
        seq,
        at: chainr_runtime::event::millis::whole(at),
        kind,
    };
    let events = vec![
        e(1, EventKind::RunStarted { resumed: false }),
        e(
            2,
            EventKind::AttemptStarted {
                job: 0,
                attempt: 1,
                handle: None,
            },
        ),
        e(
            3,
            EventKind::AttemptEnded {
                job: 0,
                attempt: 1,
                result: AttemptResult::succeeded(),
            },
        ),
        e(
            4,
            EventKind::JobDecided {
                job: 0,
                outcome: Outcome::Succeeded,
                why: None,
            },
        ),
        e(
            5,
            EventKind::AttemptStarted {
                job: 1,
                attempt: 1,
                handle: None,
            },
        ),
        e(
            6,
            EventKind::AttemptEnded {
                job: 1,
                attempt: 1,
                result: AttemptResult::exited(2),
            },
        ),
        e(
            7,
            EventKind::JobDecided {
                job: 1,
                outcome: Outcome::Failed,
                why: None,
            },
        ),
        e(
            8,
            EventKind::RunFinished {
                outcome: RunOutcome::Failed,
            },
        ),
    ];
    store.append(&lease, &events).await.unwrap();
    let key = LogKey {
        run: RUN.into(),
        job: "load".into(),
        attempt: 1,
    };
    let log: String = (0..40)
        .map(|i| format!("row {i}: ERROR duplicate key value violates unique constraint\n"))
        .collect();
    logs.append(&key, log.as_bytes()).await.unwrap();
    logs.finish(&key).await.unwrap();
}

fn notification(i: usize) -> Notification {
    Notification {
        id: notification_id(RUN, i as u64, NotifyEvent::Failed, None, "hooks"),
        run: RUN.into(),
        pipeline: "nightly-etl".into(),
        seq: i as u64,
        event: NotifyEvent::Failed,
        job: None,
        medium: "hooks".into(),
        at: SystemTime::now(),
        after: None,
    }
}

/// Seconds the notifier takes to deliver `n` notifications from `store`'s outbox.
fn through_notifier<S>(
    rt: &tokio::runtime::Runtime,
    store: Arc<S>,
    n: usize,
    port: u16,
    count: &AtomicUsize,
) -> f64
where
    S: Store + Outbox + LogSink + 'static,
{
    rt.block_on(async {
        failed_run(&*store, &*store).await;
        let now = SystemTime::now();
        let deliveries: Vec<Delivery> = (1..=n)
            .map(|i| Delivery::new(notification(i), now))
            .collect();
        store.enqueue(0, 0, &deliveries).await.unwrap();
        let before = count.load(Ordering::SeqCst);
        let notifier = Arc::new(chainr_notify::Notifier {
            store: store.clone(),
            outbox: store.clone(),
            logs: store.clone(),
            config: Arc::new(config(port)),
            owner: "bench".into(),
            observer: None,
            poll: Duration::from_millis(5),
        });
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let started = Instant::now();
        let task = tokio::spawn(notifier.run(stopped));
        loop {
            let sent = store
                .delivery_counts()
                .await
                .unwrap()
                .into_iter()
                .find(|(s, _)| *s == DeliveryState::Sent)
                .map_or(0, |(_, k)| k);
            if sent as usize >= n {
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let took = started.elapsed().as_secs_f64();
        let _ = stop.send(true);
        let _ = task.await;
        assert_eq!(count.load(Ordering::SeqCst) - before, n, "each sent once");
        took
    })
}

/// Seconds `chainr_notify::send::send` takes to send the same `n` messages, 8 at a time.
fn direct(n: usize, port: u16, count: &AtomicUsize) -> f64 {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let store = chainr_runtime::store::MemoryStore::new();
    let logs = chainr_runtime::log::MemoryLogs::new();
    let run = rt.block_on(async {
        failed_run(&store, &logs).await;
        store.get(RUN).await.unwrap().unwrap().run
    });
    let config = config(port);
    let medium = config.media["hooks"].clone();
    let tail = rt.block_on(chainr_runtime::log::tail(
        &logs,
        &LogKey {
            run: RUN.into(),
            job: "load".into(),
            attempt: 1,
        },
        config.log_lines,
    ));
    let tail = tail.unwrap();
    let before = count.load(Ordering::SeqCst);
    let next = AtomicUsize::new(1);
    let started = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..config.concurrency {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i > n {
                    return;
                }
                let n = notification(i);
                let mut jobs = jobs_to_show(&n, &run);
                for j in &mut jobs {
                    j.tail = Some(tail.clone());
                }
                let c = Context {
                    notification: &n,
                    run: &run,
                    jobs,
                    ui_url: config.ui_url.as_deref(),
                };
                chainr_notify::send::send(&medium, &c, config.timeout, SystemTime::now())
                    .expect("the receiver takes it");
            });
        }
    });
    let took = started.elapsed().as_secs_f64();
    assert_eq!(count.load(Ordering::SeqCst) - before, n);
    took
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    let n = env_usize("CHAINR_BENCH_NOTIFICATIONS", 2000);
    let rounds = env_usize("CHAINR_BENCH_RUNS", 5).max(1);
    let (port, count) = receiver();
    let redis = redis_server::RedisServer::start();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let (mut sqlite, mut redis_t, mut reference) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..=rounds {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(
            chainr_store_sqlite::SqliteStore::open(&dir.path().join("chainr.db")).unwrap(),
        );
        let s = through_notifier(&rt, store, n, port, &count);
        let prefix = format!("bench{round}");
        let store = Arc::new(
            rt.block_on(chainr_store_redis::RedisStore::connect_with_prefix(
                &redis.url(),
                &prefix,
            ))
            .unwrap(),
        );
        let r = through_notifier(&rt, store, n, port, &count);
        let d = direct(n, port, &count);
        if round > 0 {
            sqlite.push(s);
            redis_t.push(r);
            reference.push(d);
        }
    }
    let (s, r, d) = (median(sqlite), median(redis_t), median(reference));
    let rate = |t: f64| n as f64 / t;
    println!(
        "notifications: {n} signed webhooks to a receiver on loopback, median of {rounds} rounds"
    );
    println!(
        "  reference (send alone, 8 at once) {:>9.0}/s  {:>7.3} s",
        rate(d),
        d
    );
    println!(
        "  notifier, SQLite outbox           {:>9.0}/s  {:>7.3} s  {:.2}x the reference's time",
        rate(s),
        s,
        s / d
    );
    println!(
        "  notifier, Redis outbox            {:>9.0}/s  {:>7.3} s  {:.2}x the reference's time",
        rate(r),
        r,
        r / d
    );
}
