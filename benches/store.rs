//! Store benchmark: job transitions per second through the Redis store, against
//! `redis-benchmark`'s SET rate on the same server, measured in the same run.
//!
//! A real `redis-server` (AOF on, `appendfsync everysec`) is started on a free port;
//! `redis-benchmark -t set -c 50` gives the reference. Then runs of `layered 100` are driven to
//! their end by the one run loop with an executor that ends every attempt at once, each run
//! claimed from the store and its events appended under its lease (`store::Journal`), many runs
//! at once, as workers would. A transition is one stored event (an attempt started or ended, a
//! job decided, ...). The same for the SQLite store, for comparison.
//!
//! `cargo bench --bench store`; `CHAINR_BENCH_RUNS=N` sets the number of runs (default 200).

mod redis_server;
// Only the DAG shapes are used here.
#[allow(dead_code)]
mod workload;

use chainr_runtime::driver::{drive, Driver, DriverOptions};
use chainr_runtime::executor::InstantExecutor;
use chainr_runtime::log::MemoryLogs;
use chainr_runtime::store::{Journal, NewRun, Store};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// Creates `runs` runs, then `workers` tasks claim and drive them until none is left.
/// Answers the events stored per second and the number of events.
async fn transitions(store: Arc<dyn Store>, runs: usize, workers: usize) -> (f64, u64) {
    let pipeline =
        chainr_compiler::compile(&workload::dag("layered", 100).chainr(), &Default::default())
            .pipeline
            .expect("the workload compiles");
    let tag = chainr_runtime::new_run_id();
    for i in 0..runs {
        store
            .create(NewRun {
                id: format!("{tag}-{i}"),
                pipeline: pipeline.clone(),
                submitter: None,
                created_at: SystemTime::now(),
                source: None,
            })
            .await
            .unwrap();
    }
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..workers {
        let store = store.clone();
        tasks.spawn(async move {
            let mut events = 0u64;
            while let Some(lease) = store
                .claim(&format!("w{w}"), Duration::from_secs(60))
                .await
                .unwrap()
            {
                let stored = store.get(&lease.run).await.unwrap().unwrap();
                let mut driver =
                    Driver::new(&lease.run, &stored.pipeline, DriverOptions::default()).unwrap();
                let mut journal = Journal {
                    store: store.clone(),
                    lease: lease.clone(),
                };
                let (_tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
                let logs = MemoryLogs::new();
                drive(
                    &mut driver,
                    &mut InstantExecutor::default(),
                    &logs,
                    &mut rx,
                    &mut journal,
                )
                .await
                .unwrap();
                events += store.get(&lease.run).await.unwrap().unwrap().last_seq;
                store.release(&lease).await.unwrap();
            }
            events
        });
    }
    let mut total = 0;
    while let Some(n) = tasks.join_next().await {
        total += n.unwrap();
    }
    (total as f64 / started.elapsed().as_secs_f64(), total)
}

fn main() {
    let runs: usize = std::env::var("CHAINR_BENCH_RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let server = redis_server::RedisServer::start();
    let set_rate = redis_server::set_rate(&server);
    println!("redis-benchmark -t set -n 200000 -c 50: {set_rate:>10.0} SET/s");
    let url = server.url();
    for workers in [1, 8, 32] {
        let (rate, events) = runtime.block_on(async {
            let store = chainr_store_redis::RedisStore::connect_with_prefix(
                &url,
                &format!("bench{workers}:"),
            )
            .await
            .unwrap();
            transitions(Arc::new(store), runs, workers).await
        });
        println!(
            "redis store, {workers:>2} workers, {runs} runs of layered 100: {rate:>10.0} transitions/s ({events} events), {:.0}% of SET",
            100.0 * rate / set_rate
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let (rate, events) = runtime.block_on(async {
        let store = chainr_store_sqlite::SqliteStore::open(&dir.path().join("bench.db")).unwrap();
        transitions(Arc::new(store), runs, 8).await
    });
    println!(
        "sqlite store, 8 workers, {runs} runs of layered 100: {rate:>10.0} transitions/s ({events} events)"
    );
}
