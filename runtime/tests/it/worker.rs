//! Workers on a shared store: every job of every run runs once, however the runs are spread;
//! a run whose worker died is taken over when its lease expires and finished by another, with
//! nothing that was decided run again; a run whose workers keep dying is given up as errored; a
//! worker told to stop hands its runs back at once.

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
            source: None,
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

/// A worker claims run `r` for `lease`, starts its first job, and dies: its task is aborted,
/// its lease not renewed. Answers how many times the run had been taken over at the claim.
async fn claim_and_die(store: &Arc<dyn Store>, lease: Duration) -> u32 {
    let lease = store.claim("w", lease).await.unwrap().expect("claimable");
    let takeovers = lease.takeovers;
    let dying = {
        let store = store.clone();
        tokio::spawn(async move {
            let (_keep, mut stop) = watch::channel(false);
            let opts = WorkerOptions {
                renew_every: Duration::from_secs(3600),
                ..options("w")
            };
            drive_claimed(store, &Stuck, &MemoryLogs::new(), lease, &opts, &mut stop).await
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    dying.abort();
    takeovers
}

/// A worker with `executors` works until run `r` is finished; answers how its holds ended.
async fn work_until_finished(
    store: &Arc<dyn Store>,
    executors: &InstantExecutors,
) -> Vec<(String, Held)> {
    let (stop_tx, stop) = watch::channel(false);
    let worker = tokio::spawn(work(
        store.clone(),
        Arc::new(executors.clone()),
        Arc::new(MemoryLogs::new()),
        options("w-last"),
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
        assert!(tokio::time::Instant::now() < deadline, "not finished");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop_tx.send(true).unwrap();
    worker.await.unwrap()
}

#[tokio::test]
async fn a_run_whose_worker_died_is_taken_over_and_finished() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    create(&*store, "r").await;
    claim_and_die(&store, Duration::from_millis(300)).await;
    let before = store.get("r").await.unwrap().unwrap();
    assert_eq!(before.run.jobs[0].status, Status::Running);
    // Another worker finds it once the lease expired, and finishes it.
    let executors = InstantExecutors::default();
    let ended = work_until_finished(&store, &executors).await;
    assert_eq!(ended, [("r".to_string(), Held::Finished)]);
    let after = store.get("r").await.unwrap().unwrap();
    assert_eq!(after.run.status, Status::Successful);
    assert_eq!(after.takeovers, 1);
    // Job `a` was in flight: started again (same attempt); the others ran once each.
    let starts = executors.started.lock().unwrap().clone();
    let names: Vec<&str> = starts.iter().map(|(_, n, _)| n.as_str()).collect();
    assert_eq!(names, ["a", "b", "c", "d", "e"]);
    assert!(starts.iter().all(|(_, _, attempt)| *attempt == 1));
}

#[tokio::test]
async fn a_run_whose_workers_keep_dying_is_given_up_as_errored() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    create(&*store, "r").await;
    // Four workers in turn take the run (the first claims it, three take it over), start job
    // `a` and die.
    let short = Duration::from_millis(200);
    for i in 0..4 {
        assert_eq!(claim_and_die(&store, short).await, i);
        tokio::time::sleep(short).await;
    }
    // The fifth finds it taken over four times: it gives the run up rather than drive it.
    let executors = InstantExecutors::default();
    let ended = work_until_finished(&store, &executors).await;
    assert_eq!(ended, [("r".to_string(), Held::Finished)]);
    assert!(
        executors.started.lock().unwrap().is_empty(),
        "nothing started"
    );
    let run = store.get("r").await.unwrap().unwrap().run;
    assert_eq!(run.status, Status::Errored);
    assert_eq!(
        run.reason.as_deref(),
        Some("its worker stopped 4 times while driving it; not taken over again")
    );
    // Job `a` was in flight: abandoned. The others never started.
    assert_eq!(run.jobs[0].status, Status::Cancelled);
    assert_eq!(run.jobs[0].reason.as_deref(), Some("the run was given up"));
    for job in &run.jobs[1..] {
        assert_eq!(job.status, Status::Cancelled);
        assert_eq!(
            job.reason.as_deref(),
            Some("the run was given up before it started")
        );
    }
    // A run given up is finished: a retry may run it again, from where it was.
    store.retry("r").await.unwrap();
    assert_eq!(store.get("r").await.unwrap().unwrap().run.reason, None);
}

#[tokio::test]
async fn a_worker_told_to_stop_hands_its_runs_back_at_once() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    create(&*store, "r").await;
    let (stop_tx, stop) = watch::channel(false);
    let told: Arc<std::sync::Mutex<Vec<(String, Held)>>> = Arc::default();
    let tell = told.clone();
    let opts = WorkerOptions {
        lease: Duration::from_secs(3600),
        on_held: Some(Arc::new(move |run: &str, held: &Held| {
            tell.lock().unwrap().push((run.to_string(), held.clone()))
        })),
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
    // And the process was told, to say so in its log.
    assert_eq!(*told.lock().unwrap(), ended);
    // Claimable again at once, though its lease would have held for an hour.
    let again = store.claim("w2", Duration::from_secs(60)).await.unwrap();
    assert_eq!(again.map(|l| l.run).as_deref(), Some("r"));
}

/// How each attempt was asked to start: job name, `resume`.
type Noted = Arc<std::sync::Mutex<Vec<(String, Option<Option<String>>)>>>;

/// Notes how each attempt was asked to start, and ends it successfully at once.
#[derive(Clone, Default)]
struct Noting(Noted);

struct NotingExecutor {
    noted: Noted,
    ended: std::collections::VecDeque<(usize, u32)>,
}

impl Executors for Noting {
    type Executor = NotingExecutor;
    fn for_run(&self, _run: &str) -> Result<NotingExecutor, String> {
        Ok(NotingExecutor {
            noted: self.0.clone(),
            ended: Default::default(),
        })
    }
}

impl chainr_runtime::Executor for NotingExecutor {
    fn kill_grace(&self) -> Option<Duration> {
        None
    }
    async fn start(
        &mut self,
        a: chainr_runtime::AttemptSpec<'_>,
    ) -> Result<Option<String>, String> {
        let resume = a.resume.map(|h| h.map(str::to_string));
        self.noted
            .lock()
            .unwrap()
            .push((a.name.to_string(), resume));
        self.ended.push_back((a.job, a.attempt));
        Ok(Some(format!("{}#{}", a.name, a.attempt)))
    }
    async fn stop(&mut self, _: usize, _: u32, _: bool) {}
    async fn abandon(&mut self, _: chainr_runtime::AttemptSpec<'_>) {}
    async fn next(&mut self) -> Option<chainr_runtime::ExecEvent> {
        match self.ended.pop_front() {
            Some((job, attempt)) => Some(chainr_runtime::ExecEvent::Ended {
                job,
                attempt,
                result: chainr_runtime::event::AttemptResult::succeeded(),
            }),
            None => std::future::pending().await,
        }
    }
}

/// A worker that died after it started the run's first job but before the step was stored
/// leaves nothing in the store to say so, while what it started may still run: the worker that
/// takes the run over starts every attempt as one that may have been started before, for its
/// executor to find the earlier start (and kill or adopt it) rather than run a second copy. A
/// run claimed for the first time starts its attempts as new ones.
#[tokio::test]
async fn a_run_taken_over_starts_its_attempts_as_ones_that_may_have_been_started() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    create(&*store, "r").await;
    let short = Duration::from_millis(50);
    store.claim("w", short).await.unwrap().expect("claimable");
    tokio::time::sleep(short * 2).await;
    let drive = |lease| {
        let (store, noting) = (store.clone(), Noting::default());
        async move {
            let (_keep, mut stop) = watch::channel(false);
            let logs = MemoryLogs::new();
            let held = drive_claimed(store, &noting, &logs, lease, &options("w2"), &mut stop).await;
            assert_eq!(held, Held::Finished);
            let noted = noting.0.lock().unwrap().clone();
            noted
        }
    };
    let lease = store.claim("w2", Duration::from_secs(10)).await.unwrap();
    let lease = lease.expect("claimable once the lease expired");
    assert_eq!(lease.takeovers, 1);
    let noted = drive(lease).await;
    let names: Vec<&str> = noted.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["a", "b", "c", "d", "e"]);
    assert!(noted.iter().all(|(_, r)| *r == Some(None)), "{noted:?}");
    create(&*store, "fresh").await;
    let lease = store.claim("w2", Duration::from_secs(10)).await.unwrap();
    let lease = lease.expect("the new run");
    assert_eq!((lease.run.as_str(), lease.takeovers), ("fresh", 0));
    let noted = drive(lease).await;
    assert_eq!(noted.len(), 5);
    assert!(noted.iter().all(|(_, r)| r.is_none()), "{noted:?}");
}
