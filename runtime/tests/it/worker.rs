//! Workers on a shared store: every job of every run runs once, however the runs are spread;
//! a run whose worker died is taken over when its lease expires and finished by another, with
//! nothing that was decided run again; a worker told to stop hands its runs back at once.

use chainr_runtime::log::MemoryLogs;
use chainr_runtime::store::{MemoryStore, NewRun, Store};
use chainr_runtime::worker::{
    drive_claimed, work, Executors, Held, InstantExecutors, WorkerOptions,
};
use chainr_runtime::Status;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::sync::watch;

async fn create(store: &dyn Store, id: &str) {
    store
        .create(NewRun {
            id: id.to_string(),
            pipeline: chainr_runtime::store::conformance::five_jobs(),
            submitter: None,
            created_at: SystemTime::now(),
        })
        .await
        .unwrap();
}

/// Leases long enough that none expires on a loaded machine unless a test means it to.
fn options(id: &str) -> WorkerOptions {
    WorkerOptions {
        lease: Duration::from_secs(10),
        renew_every: Duration::from_secs(2),
        idle: Duration::from_millis(20),
        runs_at_once: 4,
        ..WorkerOptions::new(id)
    }
}

#[tokio::test]
async fn two_workers_on_the_memory_store_run_every_job_once() {
    chainr_runtime::store::conformance::two_workers_run_every_job_once(
        Arc::new(MemoryStore::new()),
    )
    .await;
}

/// Never ends an attempt: a worker stuck on it stands for one that died.
struct Stuck;

impl Executors for Stuck {
    type Executor = Hanging;
    fn for_run(&self, _run: &str) -> Result<Hanging, String> {
        Ok(Hanging)
    }
}

struct Hanging;

impl chainr_runtime::Executor for Hanging {
    fn kill_grace(&self) -> Option<Duration> {
        None
    }
    async fn start(
        &mut self,
        _: chainr_runtime::AttemptSpec<'_>,
    ) -> Result<Option<String>, String> {
        Ok(Some("h".into()))
    }
    async fn stop(&mut self, _: usize, _: u32, _: bool) {}
    async fn abandon(&mut self, _: chainr_runtime::AttemptSpec<'_>) {}
    async fn next(&mut self) -> Option<chainr_runtime::ExecEvent> {
        std::future::pending().await
    }
}

#[tokio::test]
async fn a_run_whose_worker_died_is_taken_over_and_finished() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    create(&*store, "r").await;
    // The first worker starts job `a` and then dies: its task is aborted, its lease not renewed.
    let lease = store
        .claim("w1", Duration::from_millis(300))
        .await
        .unwrap()
        .unwrap();
    let first = {
        let store = store.clone();
        tokio::spawn(async move {
            let (_keep, mut stop) = watch::channel(false);
            let opts = WorkerOptions {
                renew_every: Duration::from_secs(3600),
                ..options("w1")
            };
            drive_claimed(store, &Stuck, &MemoryLogs::new(), lease, &opts, &mut stop).await
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    first.abort();
    let before = store.get("r").await.unwrap().unwrap();
    assert_eq!(before.run.jobs[0].status, Status::Running);
    // A second worker finds it once the lease expired, and finishes it.
    let executors = InstantExecutors::default();
    let started = executors.started.clone();
    let (stop_tx, stop) = watch::channel(false);
    let second = tokio::spawn(work(
        store.clone(),
        Arc::new(executors),
        Arc::new(MemoryLogs::new()),
        options("w2"),
        stop,
    ));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !store
        .get("r")
        .await
        .unwrap()
        .unwrap()
        .run
        .status
        .is_terminal()
    {
        assert!(tokio::time::Instant::now() < deadline, "not taken over");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop_tx.send(true).unwrap();
    let ended = second.await.unwrap();
    assert_eq!(ended, [("r".to_string(), Held::Finished)]);
    let after = store.get("r").await.unwrap().unwrap();
    assert_eq!(after.run.status, Status::Successful);
    assert_eq!(after.takeovers, 1);
    // Job `a` was in flight: started again (same attempt); the others ran once each.
    let starts = started.lock().unwrap().clone();
    let names: Vec<&str> = starts.iter().map(|(_, n, _)| n.as_str()).collect();
    assert_eq!(names, ["a", "b", "c", "d", "e"]);
    assert!(starts.iter().all(|(_, _, attempt)| *attempt == 1));
}

#[tokio::test]
async fn a_worker_told_to_stop_hands_its_runs_back_at_once() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    create(&*store, "r").await;
    let (stop_tx, stop) = watch::channel(false);
    let opts = WorkerOptions {
        lease: Duration::from_secs(3600),
        ..options("w1")
    };
    let worker = tokio::spawn(work(
        store.clone(),
        Arc::new(Stuck),
        Arc::new(MemoryLogs::new()),
        opts,
        stop,
    ));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while store.get("r").await.unwrap().unwrap().run.status != Status::Running {
        assert!(tokio::time::Instant::now() < deadline, "not claimed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop_tx.send(true).unwrap();
    let ended = worker.await.unwrap();
    assert_eq!(ended, [("r".to_string(), Held::HandedBack)]);
    // Claimable again at once, though its lease would have held for an hour.
    let again = store.claim("w2", Duration::from_secs(60)).await.unwrap();
    assert_eq!(again.map(|l| l.run).as_deref(), Some("r"));
}
