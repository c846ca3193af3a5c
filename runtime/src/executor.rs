//! The one interface every executor implements: start an attempt, stop it, and tell what
//! happened to attempts. Executors know nothing of the scheduler, the Run document, timers or
//! logs' destination; the driver (`driver.rs`) turns their events into the run's events.

use crate::event::{AttemptResult, Reason};
use crate::scheduler::{AttemptEnd, JobId};
use chainr_compiler::ir;
use std::future::Future;
use std::time::Duration;

/// What an executor needs to start one attempt.
#[derive(Clone, Debug)]
pub struct AttemptSpec<'a> {
    pub run_id: &'a str,
    pub job: JobId,
    /// The job's name in the pipeline.
    pub name: &'a str,
    pub attempt: u32,
    pub spec: &'a ir::Job,
    /// Variables beyond the job's own (`CHAINR_RUN_STATUS`, `CHAINR_FAILED_JOBS` for `finally`
    /// jobs); the executor adds `CHAINR_RUN_ID`, `CHAINR_JOB` and `CHAINR_ATTEMPT`.
    pub extra_env: &'a [(&'static str, String)],
    /// Set when this attempt was, or may have been, started before by a driver that stopped (a
    /// crash, a lost lease): the handle it was given then, if it was recorded. The executor must
    /// make sure the earlier start is not running alongside the new one (adopt it, or kill it
    /// first).
    pub resume: Option<Option<&'a str>>,
}

/// Something that happened to an attempt.
#[derive(Clone, Debug, PartialEq)]
pub enum ExecEvent {
    /// Output of a running attempt (stdout and stderr interleaved), in order.
    Output {
        job: JobId,
        attempt: u32,
        bytes: Vec<u8>,
    },
    /// The attempt ended; every `Output` of it came before.
    Ended {
        job: JobId,
        attempt: u32,
        result: AttemptResult,
    },
}

/// Runs attempts somewhere (processes on this machine, Kubernetes Jobs, a test double).
pub trait Executor {
    /// After a graceful stop, how long before the driver asks for a forced one (`None`: the
    /// executor's own stop is final).
    fn kill_grace(&self) -> Option<Duration>;

    /// Starts an attempt. `Ok` gives a handle to record (how to find the attempt again after a
    /// take-over), `Err` says in words why it could not start (the attempt then errors).
    fn start(
        &mut self,
        attempt: AttemptSpec<'_>,
    ) -> impl Future<Output = Result<Option<String>, String>> + Send;

    /// Stops a running attempt (`force`: at once, after a graceful stop was not enough). The
    /// attempt still reports its end through [`Executor::next`].
    fn stop(&mut self, job: JobId, attempt: u32, force: bool) -> impl Future<Output = ()> + Send;

    /// The next event of any attempt; `None` when the executor can report nothing more (it
    /// failed). Must be cancel-safe: the driver waits on it alongside timers and commands.
    fn next(&mut self) -> impl Future<Output = Option<ExecEvent>> + Send;

    /// Makes sure nothing of an attempt started before (by a driver that stopped; `attempt.resume`
    /// has its handle) runs any more, without starting it again: the run was cancelled since.
    fn abandon(&mut self, attempt: AttemptSpec<'_>) -> impl Future<Output = ()> + Send;

    /// The run is over: finish what the executor still does for it (deletions in flight, say)
    /// before it is dropped.
    fn finish(&mut self) -> impl Future<Output = ()> + Send {
        std::future::ready(())
    }
}

/// What a scripted attempt of [`InstantExecutor`] does, by job name and attempt number:
/// `Some(end)` ends it so at once, `None` keeps it running until it is stopped.
pub type Script = std::sync::Arc<dyn Fn(&str, u32) -> Option<AttemptEnd> + Send + Sync>;

/// Every attempt started: run, job name, attempt (shared, to count across executors).
pub type Starts = std::sync::Arc<std::sync::Mutex<Vec<(String, String, u32)>>>;

/// An executor that ends every attempt successfully as soon as it starts (or as a [`Script`]
/// says), and counts what it started: for tests and benchmarks of everything around executors
/// (drivers, stores, workers).
#[derive(Default)]
pub struct InstantExecutor {
    ended: std::collections::VecDeque<(JobId, u32, AttemptResult)>,
    /// Attempts that run until they are stopped.
    running: std::collections::HashSet<(JobId, u32)>,
    script: Option<Script>,
    pub started: Starts,
}

impl InstantExecutor {
    /// An executor that records its starts in `started`.
    pub fn recording(started: Starts) -> InstantExecutor {
        InstantExecutor {
            started,
            ..InstantExecutor::default()
        }
    }

    /// An executor whose attempts do what `script` says, recording their starts in `started`.
    pub fn scripted(started: Starts, script: Script) -> InstantExecutor {
        InstantExecutor {
            started,
            script: Some(script),
            ..InstantExecutor::default()
        }
    }
}

impl Executor for InstantExecutor {
    fn kill_grace(&self) -> Option<Duration> {
        None
    }

    async fn start(&mut self, a: AttemptSpec<'_>) -> Result<Option<String>, String> {
        if let Ok(mut started) = self.started.lock() {
            started.push((a.run_id.to_string(), a.name.to_string(), a.attempt));
        }
        let end = match &self.script {
            Some(script) => script(a.name, a.attempt),
            None => Some(AttemptEnd::Succeeded),
        };
        let result = match end {
            None => {
                self.running.insert((a.job, a.attempt));
                return Ok(None);
            }
            Some(AttemptEnd::Succeeded) => AttemptResult::succeeded(),
            Some(AttemptEnd::Failed) => AttemptResult::exited(1),
            Some(AttemptEnd::Errored) => {
                AttemptResult::errored(Reason::CouldNotStart("scripted".into()))
            }
            Some(AttemptEnd::Cancelled) => AttemptResult::cancelled(),
        };
        self.ended.push_back((a.job, a.attempt, result));
        Ok(None)
    }

    async fn stop(&mut self, job: JobId, attempt: u32, _force: bool) {
        if self.running.remove(&(job, attempt)) {
            let killed = AttemptResult::new(AttemptEnd::Failed, None, Some(Reason::Signal(15)));
            self.ended.push_back((job, attempt, killed));
        }
    }

    async fn abandon(&mut self, _: AttemptSpec<'_>) {}

    async fn next(&mut self) -> Option<ExecEvent> {
        match self.ended.pop_front() {
            Some((job, attempt, result)) => Some(ExecEvent::Ended {
                job,
                attempt,
                result,
            }),
            None => std::future::pending().await,
        }
    }
}
