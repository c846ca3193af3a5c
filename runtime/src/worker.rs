//! A worker: claims runs from the store, drives each with the one run loop (continuing it from
//! its stored events when another worker had it before), renews the run's lease while it works,
//! and hands runs back at once when it is told to stop. A worker whose lease was lost stops
//! driving that run: another worker has it now, and its writes would be refused anyway. A run
//! taken over from a worker whose lease expired has each attempt started as one that may have
//! been started before (the dead worker's last step may not have been stored). A run
//! whose workers kept dying while they drove it (taken over more than
//! [`WorkerOptions::max_takeovers`] times) is given up: finished as errored, not driven again.

use crate::driver::{drive, Command, DriveError, Driver, DriverOptions, Now, PublishError};
use crate::event::GiveUp;
use crate::executor::{Executor, InstantExecutor, Script, Starts};
use crate::log::LogSink;
use crate::scheduler::AttemptEnd;
use crate::store::{Journal, Lease, Store, StoreError};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// How a worker works.
#[derive(Clone)]
pub struct WorkerOptions {
    /// Its name in leases.
    pub id: String,
    /// How long a claim holds without renewal.
    pub lease: Duration,
    /// How often a held lease is renewed (well within `lease`).
    pub renew_every: Duration,
    /// How long to wait before looking for work again when there was none.
    pub idle: Duration,
    /// At most this many runs at once.
    pub runs_at_once: usize,
    /// At most this many attempts at once in one run.
    pub concurrency: Option<usize>,
    /// At most this many bytes of one attempt's output are kept.
    pub log_cap: Option<u64>,
    /// How often the store is asked whether a run being driven was cancelled.
    pub poll: Duration,
    /// A run taken over more times than this (its workers kept stopping while they drove it)
    /// is given up: finished as errored rather than driven again.
    pub max_takeovers: u32,
    /// Told of every batch of events once it is stored (metrics, logs of the process).
    pub observer: Option<Observer>,
    /// Told how each hold on a run ended (the process's log: a run handed back because the
    /// store failed should not go unsaid).
    pub on_held: Option<HeldObserver>,
}

/// Sees how a hold ended: `on_held(run_id, how)`.
pub type HeldObserver = Arc<dyn Fn(&str, &Held) + Send + Sync>;

/// Sees a run's events after they are stored: `observer(run_id, events)`.
pub type Observer = Arc<dyn Fn(&str, &[crate::event::RunEvent]) + Send + Sync>;

/// The store first, then the observer: what was not stored was not seen.
struct Observed {
    journal: Journal,
    observer: Option<Observer>,
}

#[async_trait::async_trait]
impl crate::driver::Publish for Observed {
    async fn publish(
        &mut self,
        events: &[crate::event::RunEvent],
    ) -> Result<(), crate::driver::PublishError> {
        self.journal.publish(events).await?;
        if let Some(observe) = &self.observer {
            observe(&self.journal.lease.run, events);
        }
        Ok(())
    }
}

impl WorkerOptions {
    pub fn new(id: &str) -> WorkerOptions {
        WorkerOptions {
            id: id.to_string(),
            lease: Duration::from_secs(30),
            renew_every: Duration::from_secs(10),
            idle: Duration::from_millis(500),
            runs_at_once: 16,
            concurrency: None,
            log_cap: Some(crate::log::DEFAULT_LOG_CAP),
            poll: Duration::from_millis(250),
            max_takeovers: 3,
            observer: None,
            on_held: None,
        }
    }
}

/// Makes the executor of each run a worker drives.
pub trait Executors: Send + Sync + 'static {
    type Executor: Executor + Send + 'static;
    fn for_run(&self, run_id: &str) -> Result<Self::Executor, String>;
}

/// Instant executors (every attempt succeeds at once, or does what a script says) that record
/// every start in one shared list: run, job, attempt. For tests and benchmarks of workers and
/// stores.
#[derive(Clone, Default)]
pub struct InstantExecutors {
    pub started: Starts,
    pub script: Option<Script>,
}

impl InstantExecutors {
    /// Executors whose attempts do what `script` says (see [`Script`]).
    pub fn scripted(
        script: impl Fn(&str, u32) -> Option<AttemptEnd> + Send + Sync + 'static,
    ) -> Self {
        InstantExecutors {
            started: Starts::default(),
            script: Some(Arc::new(script)),
        }
    }
}

impl Executors for InstantExecutors {
    type Executor = InstantExecutor;
    fn for_run(&self, _run: &str) -> Result<InstantExecutor, String> {
        let started = self.started.clone();
        Ok(match &self.script {
            Some(script) => InstantExecutor::scripted(started, script.clone()),
            None => InstantExecutor::recording(started),
        })
    }
}

/// How a worker's hold on a run ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Held {
    /// The run finished.
    Finished,
    /// Another worker has it now.
    LeaseLost,
    /// The worker was told to stop and handed the run back.
    HandedBack,
    /// It could not be driven (the store failed, the executor could not start, ...); the lease
    /// was released so that another worker may try.
    Failed(String),
}

/// Drives one claimed run until it finishes, its lease is lost, or `stop` turns true.
pub async fn drive_claimed<X: Executors>(
    store: Arc<dyn Store>,
    executors: &X,
    logs: &dyn LogSink,
    lease: Lease,
    options: &WorkerOptions,
    stop: &mut watch::Receiver<bool>,
) -> Held {
    let loaded = async {
        let stored = store
            .get(&lease.run)
            .await?
            .ok_or_else(|| StoreError::NotFound(lease.run.clone()))?;
        let events = store.events(&lease.run, 0, usize::MAX).await?;
        Ok::<_, StoreError>((stored, events))
    };
    let (stored, events) = match loaded.await {
        Ok(x) => x,
        Err(e) => return give_back(&*store, &lease, e.to_string()).await,
    };
    let mut executor = match executors.for_run(&lease.run) {
        Ok(x) => x,
        Err(e) => return give_back(&*store, &lease, e).await,
    };
    let driver_options = DriverOptions {
        concurrency: options.concurrency,
        kill_grace: executor.kill_grace(),
        log_cap: options.log_cap,
    };
    let mut driver = match Driver::resume(
        &lease.run,
        &stored.pipeline,
        driver_options,
        &events,
        Now::current(),
    ) {
        Ok(d) => d,
        Err(e) => return give_back(&*store, &lease, e.to_string()).await,
    };
    if lease.takeovers > 0 {
        driver.taken_over();
    }
    if lease.takeovers > options.max_takeovers {
        let why = GiveUp::WorkerStopped {
            times: lease.takeovers,
        };
        driver.give_up(why, Now::current());
    }
    let mut journal = Observed {
        journal: Journal {
            store: store.clone(),
            lease: lease.clone(),
        },
        observer: options.observer.clone(),
    };
    // Cancels come through the store: those asked for before the claim are taken before
    // anything starts, later ones as the store is polled.
    let (commands_tx, mut commands) = mpsc::unbounded_channel::<Command>();
    let mut cancels = driver.cancels();
    forward_cancels(&*store, &lease.run, &mut cancels, &commands_tx).await;
    let poll = async {
        loop {
            tokio::time::sleep(options.poll).await;
            forward_cancels(&*store, &lease.run, &mut cancels, &commands_tx).await;
        }
    };
    let renew = async {
        loop {
            tokio::time::sleep(options.renew_every).await;
            // Any other failure: the store may come back before the lease expires, keep trying.
            if let Err(StoreError::LeaseLost(_)) = store.renew(&lease, options.lease).await {
                return;
            }
        }
    };
    let stopped = async {
        while !*stop.borrow() {
            if stop.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        driven = drive(&mut driver, &mut executor, logs, &mut commands, &mut journal) => {
            match driven {
                Ok(()) => {
                    let _ = store.release(&lease).await;
                    Held::Finished
                }
                Err(DriveError::Publish(PublishError::LeaseLost(_))) => Held::LeaseLost,
                Err(e) => give_back(&*store, &lease, e.to_string()).await,
            }
        }
        _ = renew => Held::LeaseLost,
        () = poll => unreachable!("polling for cancels goes on while the run is driven"),
        _ = stopped => {
            let _ = store.release(&lease).await;
            // Told to stop as the run's last events were being stored: it finished all the same.
            match store.get(&lease.run).await {
                Ok(Some(stored)) if stored.run.status.is_terminal() => Held::Finished,
                _ => Held::HandedBack,
            }
        }
    }
}

/// Sends the driver a cancel for each request the store has that it has not taken (`taken`):
/// the first cancels the run, the second stops `finally` jobs too, more change nothing. A store
/// that does not answer is asked again at the next poll.
async fn forward_cancels(
    store: &dyn Store,
    run: &str,
    taken: &mut u32,
    commands: &mpsc::UnboundedSender<Command>,
) {
    let Ok(requests) = store.cancel_requests(run).await else {
        return;
    };
    while *taken < requests.min(2) {
        *taken += 1;
        let _ = commands.send(Command::Cancel);
    }
}

async fn give_back(store: &dyn Store, lease: &Lease, why: String) -> Held {
    let _ = store.release(lease).await;
    Held::Failed(why)
}

/// Works until `stop` turns true: claims runs while it has room, drives them, and at the end
/// hands back what it holds. Answers how each hold ended, in the order they ended.
pub async fn work<X: Executors>(
    store: Arc<dyn Store>,
    executors: Arc<X>,
    logs: Arc<dyn LogSink>,
    options: WorkerOptions,
    mut stop: watch::Receiver<bool>,
) -> Vec<(String, Held)> {
    let mut running = tokio::task::JoinSet::new();
    let mut ended = Vec::new();
    loop {
        if *stop.borrow() {
            break;
        }
        let mut claimed_any = false;
        while running.len() < options.runs_at_once.max(1) {
            let Ok(Some(lease)) = store.claim(&options.id, options.lease).await else {
                break;
            };
            claimed_any = true;
            let (store, executors, logs, options, mut stop) = (
                store.clone(),
                executors.clone(),
                logs.clone(),
                options.clone(),
                stop.clone(),
            );
            running.spawn(async move {
                let run = lease.run.clone();
                let held =
                    drive_claimed(store, &*executors, &*logs, lease, &options, &mut stop).await;
                (run, held)
            });
        }
        let idle = if claimed_any {
            Duration::ZERO
        } else {
            options.idle
        };
        tokio::select! {
            Some(done) = running.join_next() => {
                if let Ok(done) = done {
                    if let Some(tell) = &options.on_held {
                        tell(&done.0, &done.1);
                    }
                    ended.push(done);
                }
            }
            _ = tokio::time::sleep(idle), if running.len() < options.runs_at_once.max(1) => {}
            _ = stop.changed() => {}
        }
    }
    // Stopping: every run hands itself back (each task sees `stop` too).
    while let Some(done) = running.join_next().await {
        if let Ok(done) = done {
            if let Some(tell) = &options.on_held {
                tell(&done.0, &done.1);
            }
            ended.push(done);
        }
    }
    ended
}
