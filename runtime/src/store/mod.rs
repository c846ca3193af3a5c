//! Where runs live: the [`Store`] trait (runs and their events, a queue of runs waiting for a
//! worker, and leases that fence a worker's writes), an in-memory implementation, and the
//! conformance suite every implementation must pass (`conformance`). See
//! `docs/`-level semantics in the store trait's method docs: a run is its events; a worker may
//! write a run's events only while it holds the run's lease, and a lease that expired is lost.

pub mod conformance;
mod memory;

pub use memory::MemoryStore;

use crate::driver::{Publish, PublishError};
use crate::event::RunEvent;
use crate::record::{Run, Status};
use async_trait::async_trait;
use chainr_compiler::ir;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// A run to store: its pipeline, who submitted it, when.
#[derive(Clone, Debug)]
pub struct NewRun {
    pub id: String,
    pub pipeline: ir::Pipeline,
    pub submitter: Option<String>,
    pub created_at: SystemTime,
    /// What the pipeline was submitted as (`json`, `chainr`), when known.
    pub source: Option<String>,
}

impl NewRun {
    /// The run's document when it is stored: every job pending, and who submitted it, when and
    /// as what. Stores keep it and fold the run's events into it.
    pub fn document(&self) -> Run {
        let mut doc = Run::planned(self.id.clone(), &self.pipeline);
        doc.metadata.submitter = self.submitter.clone();
        doc.metadata.created_at = Some(self.created_at);
        doc.metadata.source = self.source.clone();
        doc
    }
}

/// A stored run: its pipeline, its document (the fold of its events) and how far its events go.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredRun {
    pub pipeline: ir::Pipeline,
    pub run: Run,
    pub submitter: Option<String>,
    pub created_at: SystemTime,
    /// The `seq` of the last event (0: none yet).
    pub last_seq: u64,
    /// How many times a worker's lease on it expired and another worker took it.
    pub takeovers: u32,
}

/// The right to drive a run, until it expires. `token` fences: once another worker has taken
/// the run, writes with an older token are refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    pub run: String,
    pub worker: String,
    pub token: String,
    /// How many times the run was taken over before this claim (0: a first claim or a release).
    pub takeovers: u32,
}

/// One change in the store's feed of every run's changes: a run created, or an event appended.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Change {
    /// Global and strictly increasing (from 1), written with the change it stands for; an id
    /// is never reused, though ids may leave gaps.
    pub id: u64,
    pub run: String,
    /// The event appended; `None`: the run was created (submitted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<RunEvent>,
}

/// A position in the list of runs (newest first); opaque to clients.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Cursor(pub u64);

impl std::fmt::Display for Cursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl std::str::FromStr for Cursor {
    type Err = std::num::ParseIntError;
    fn from_str(s: &str) -> Result<Cursor, Self::Err> {
        s.parse().map(Cursor)
    }
}

/// Which runs to list.
#[derive(Clone, Debug, Default)]
pub struct ListQuery {
    /// At most this many (at least 1).
    pub limit: usize,
    /// Runs older than this position.
    pub after: Option<Cursor>,
    pub status: Option<Status>,
    /// The pipeline's name.
    pub pipeline: Option<String>,
}

/// One page of runs, newest first; `next` reads the following page.
#[derive(Clone, Debug)]
pub struct Page {
    pub runs: Vec<Run>,
    pub next: Option<Cursor>,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A run with this id exists already.
    #[error("a run with id {0} exists already")]
    Exists(String),
    /// No run has this id.
    #[error("no run has id {0}")]
    NotFound(String),
    /// The lease expired or another worker holds the run now.
    #[error("the lease on run {0} is no longer held")]
    LeaseLost(String),
    /// Events must continue the run's numbering without a gap.
    #[error("run {run}: expected event {expected}, got {got}")]
    OutOfOrder {
        run: String,
        expected: u64,
        got: u64,
    },
    /// The store could not be reached or failed; the operation may be retried.
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
    /// What the store holds cannot be read.
    #[error("stored data is unreadable: {0}")]
    Corrupt(String),
    /// The run is not in a state that allows the operation (the message says why, in plain
    /// words: "run X has finished").
    #[error("{0}")]
    Conflict(String),
}

impl StoreError {
    /// The run has finished: what can only be done to an unfinished run is refused.
    pub fn finished(id: &str) -> StoreError {
        StoreError::Conflict(format!("run {id} has finished"))
    }
}

#[async_trait]
pub trait Store: Send + Sync {
    /// Stores a new run, queued for a worker. Fails with `Exists` if the id is taken.
    async fn create(&self, run: NewRun) -> Result<(), StoreError>;

    async fn get(&self, id: &str) -> Result<Option<StoredRun>, StoreError>;

    /// The run's events with `seq > after`, in order, at most `limit`.
    async fn events(&self, id: &str, after: u64, limit: usize)
        -> Result<Vec<RunEvent>, StoreError>;

    /// Runs newest first.
    async fn list(&self, query: &ListQuery) -> Result<Page, StoreError>;

    /// Takes the oldest run that waits for a worker (never claimed, released, or whose lease
    /// expired) and leases it to `worker` for `ttl`.
    async fn claim(&self, worker: &str, ttl: Duration) -> Result<Option<Lease>, StoreError>;

    /// Extends a lease that is still held.
    async fn renew(&self, lease: &Lease, ttl: Duration) -> Result<(), StoreError>;

    /// Gives a run back at once (a worker that stops); a finished run stays finished.
    async fn release(&self, lease: &Lease) -> Result<(), StoreError>;

    /// Appends events under a held lease, atomically: all or none. They must continue the
    /// run's numbering. A `RunFinished` event takes the run out of the queue for good.
    async fn append(&self, lease: &Lease, events: &[RunEvent]) -> Result<(), StoreError>;

    /// Records a request to cancel the run, whoever asks (not fenced: any API process may) and
    /// answers how many there are now. The worker driving the run cancels it at the first
    /// request and stops its `finally` jobs too at the second. `NotFound` for an unknown run,
    /// `Conflict` for a finished one.
    async fn cancel(&self, id: &str) -> Result<u32, StoreError>;

    /// Retries a finished run (`Conflict` if it is pending or running, `NotFound`): appends a
    /// `RunRetried` event, which makes the jobs that did not succeed (and what depends on them,
    /// and the `finally` jobs) undecided again, puts the run back to `PENDING` and in the queue,
    /// and clears its lease, take-overs and cancel requests, all at once. The same run goes on:
    /// a worker claims it and runs those jobs, their attempts numbered on from the last. Not
    /// fenced: any API process may ask. Answers the events appended.
    async fn retry(&self, id: &str) -> Result<Vec<RunEvent>, StoreError>;

    /// Deletes finished runs (never one that has not finished) with their events, logs and
    /// changes in the feed: those beyond the newest `keep_runs` finished runs (newest by the
    /// time they finished), and those that finished before `older_than`; either limit deletes
    /// what it names, and with neither nothing is deleted. Answers how many runs were deleted.
    /// Change ids are never reused: `last_change` does not go back.
    async fn prune(
        &self,
        keep_runs: Option<usize>,
        older_than: Option<SystemTime>,
    ) -> Result<usize, StoreError>;

    /// Every run's changes with an id above `after` (0: from the first), oldest first, at most
    /// `limit`: each run created and each event appended (by a worker or by
    /// [`Store::retry`]), in the order they were written. A change is written with what it
    /// stands for, atomically, so a reader that goes on from the last id it read misses nothing.
    async fn feed(&self, after: u64, limit: usize) -> Result<Vec<Change>, StoreError>;

    /// The id of the last change written (0: none yet): where a reader that wants only what
    /// comes next starts.
    async fn last_change(&self) -> Result<u64, StoreError>;

    /// How many runs have each status (a status no run has may be left out). For metrics:
    /// answered from the stores' status indexes, never by reading runs.
    async fn counts(&self) -> Result<Vec<(Status, u64)>, StoreError>;

    /// How many cancel requests the run has had (`NotFound` for an unknown run). Cheap: a
    /// worker asks for it every [`WorkerOptions::poll`](crate::worker::WorkerOptions::poll).
    async fn cancel_requests(&self, id: &str) -> Result<u32, StoreError>;
}

/// What appending events does to what stores index of a run: its status, and when it
/// finished.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StatusChange {
    /// The new status, if it moved: the status moves only when the run starts, finishes and is
    /// retried.
    pub status: Option<Status>,
    /// When the run finished, if the events finish it.
    pub finished_at: Option<SystemTime>,
}

/// What appending `events` does to what stores index of the run.
pub fn status_change(events: &[RunEvent]) -> StatusChange {
    let mut change = StatusChange::default();
    for e in events {
        match &e.kind {
            crate::event::EventKind::RunStarted { .. } => change.status = Some(Status::Running),
            crate::event::EventKind::RunFinished { outcome } => {
                change.status = Some((*outcome).into());
                change.finished_at = Some(e.at);
            }
            crate::event::EventKind::RunRetried { .. } => {
                change.status = Some(Status::Pending);
                change.finished_at = None;
            }
            _ => {}
        }
    }
    change
}

/// The events that retry a run (see [`Store::retry`]), as of what is stored: refused with
/// `Conflict` unless the run finished.
pub fn retry_events(
    id: &str,
    stored: &StoredRun,
    at: SystemTime,
) -> Result<Vec<RunEvent>, StoreError> {
    let status = stored.run.status;
    if !status.is_terminal() {
        return Err(StoreError::Conflict(format!(
            "run {id} is {}; only a finished run can be retried",
            status.word().to_lowercase()
        )));
    }
    Ok(vec![RunEvent {
        seq: stored.last_seq + 1,
        at: crate::event::millis::whole(at),
        kind: crate::event::EventKind::RunRetried {
            jobs: stored.run.jobs_to_retry(&stored.pipeline),
        },
    }])
}

/// A driver's events written to the store under its lease (the first destination of a worker's
/// events: what was not stored was not published).
pub struct Journal {
    pub store: Arc<dyn Store>,
    pub lease: Lease,
}

#[async_trait]
impl Publish for Journal {
    async fn publish(&mut self, events: &[RunEvent]) -> Result<(), PublishError> {
        match self.store.append(&self.lease, events).await {
            Ok(()) => Ok(()),
            Err(StoreError::LeaseLost(run)) => Err(PublishError::LeaseLost(run)),
            Err(e) => Err(PublishError::Store(e.to_string())),
        }
    }
}
