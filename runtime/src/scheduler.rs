//! The scheduler: a pure state machine per run. It takes events (an attempt ended, a retry is
//! due, the run is cancelled) and answers with actions (launch an attempt, wait before a retry,
//! kill an attempt, the run is over). No IO, no clock, no threads: executors and timers live in
//! the driver. Each event costs O(edges touched): a job's dependents are visited once, when it
//! ends.

use chainr_compiler::ir;
use std::collections::VecDeque;
use std::time::Duration;

/// Index of a job in the pipeline (IR order).
pub type JobId = usize;

/// How a job ended (the compiler defines the outcomes and what conditions ask of them).
pub use chainr_compiler::outcome::Outcome;
use chainr_compiler::outcome::OutcomeTest as Test;

/// How one attempt ended, as the executor saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum AttemptEnd {
    Succeeded,
    Failed,
    Errored,
    Cancelled,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobState {
    /// Waiting for the jobs its condition names.
    Pending,
    /// Its condition held; waiting for a free slot (concurrency).
    Ready,
    Running,
    /// Waiting before its next attempt.
    Backoff,
    Done(Outcome),
}

/// How a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum RunOutcome {
    Succeeded,
    Failed,
    Cancelled,
    /// The run could not be driven, and was given up ([`Scheduler::give_up`]).
    Errored,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Start attempt `attempt` (1-based) of `job`; report its end with [`Scheduler::attempt_ended`].
    Launch { job: JobId, attempt: u32 },
    /// Call [`Scheduler::retry_due`] for `job` after `delay`.
    Retry {
        job: JobId,
        attempt: u32,
        delay: Duration,
    },
    /// Stop the running attempt of `job` (cancel); it still reports its end.
    Kill { job: JobId },
    /// A job was decided without running (skipped or cancelled before it started).
    Decided { job: JobId, outcome: Outcome },
    /// Every job is terminal.
    Finished(RunOutcome),
}

/// A condition over outcomes, with job names resolved to indices.
#[derive(Clone, Debug)]
enum Cond {
    All(Vec<Cond>),
    Any(Vec<Cond>),
    Not(Box<Cond>),
    Is(JobId, Test),
}

struct Job {
    cond: Option<Cond>,
    retries: u32,
    backoff: Duration,
    allow_failure: bool,
    finally: bool,
}

/// Options of a run that are not in the pipeline.
#[derive(Clone, Copy, Debug, Default)]
pub struct Options {
    /// At most this many attempts at once (the pipeline's `concurrency` applies too).
    pub concurrency: Option<usize>,
}

/// The first retry waits the job's backoff (default 1s); each next one twice as long, capped.
pub const DEFAULT_BACKOFF: Duration = chainr_compiler::limits::DEFAULT_BACKOFF.as_std();
pub const MAX_BACKOFF: Duration = chainr_compiler::limits::MAX_BACKOFF.as_std();

pub struct Scheduler {
    jobs: Vec<Job>,
    /// `dependents[k]`: the jobs whose condition names `k` (each once).
    dependents: Vec<Vec<JobId>>,
    /// Jobs named by each job's condition that are not terminal yet.
    remaining: Vec<u32>,
    state: Vec<JobState>,
    attempts: Vec<u32>,
    /// Attempts made before the run was last reopened ([`Scheduler::reopen`]): retries are
    /// counted from there.
    attempts_before: Vec<u32>,
    ready: VecDeque<JobId>,
    running: usize,
    concurrency: usize,
    fail_fast: bool,
    /// Non-finally jobs not terminal yet; finally jobs wait for zero.
    others_left: usize,
    finally_jobs: Vec<JobId>,
    done: usize,
    failed: Vec<JobId>,
    run_failed: bool,
    /// fail_fast tripped: no new non-finally job starts.
    stopping: bool,
    cancelled: bool,
    /// Cancelled a second time, or given up: finally jobs do not run either.
    terminated: bool,
    /// Given up: the run ends errored.
    given_up: bool,
    /// Nothing is launched before [`Scheduler::start`].
    started: bool,
    finished: bool,
}

/// What the scheduler can't accept: the IR names a job that does not exist. Validated IR
/// never does; this guards callers that skip validation.
#[derive(Debug, thiserror::Error)]
#[error("job `{job}` depends on `{missing}`, which is not in the pipeline")]
pub struct UnknownJob {
    pub job: String,
    pub missing: String,
}

impl Scheduler {
    pub fn new(pipeline: &ir::Pipeline, options: Options) -> Result<Scheduler, UnknownJob> {
        let n = pipeline.jobs.len();
        let index = |name: &str, from: &str| {
            pipeline.jobs.get_index_of(name).ok_or_else(|| UnknownJob {
                job: from.to_string(),
                missing: name.to_string(),
            })
        };
        let mut jobs = Vec::with_capacity(n);
        let mut dependents: Vec<Vec<JobId>> = vec![Vec::new(); n];
        let mut remaining = vec![0u32; n];
        let mut finally_jobs = Vec::new();
        let mut needs: Vec<JobId> = Vec::new();
        for (i, (name, job)) in pipeline.jobs.iter().enumerate() {
            let mut parts = Vec::with_capacity(job.depends_on.len() + 1);
            for d in &job.depends_on {
                let t = index(&d.job, name)?;
                parts.push(Cond::Is(
                    t,
                    if d.on_failure() {
                        Test::Failed
                    } else {
                        Test::Bare
                    },
                ));
            }
            if let Some(c) = &job.condition {
                parts.push(lower(c, &|n| index(n, name))?);
            }
            let cond = match parts.len() {
                0 => None,
                1 => parts.pop(),
                _ => Some(Cond::All(parts)),
            };
            needs.clear();
            if let Some(c) = &cond {
                c.jobs(&mut needs);
            }
            needs.sort_unstable();
            needs.dedup();
            for &t in &needs {
                dependents[t].push(i);
            }
            remaining[i] = needs.len() as u32;
            if job.finally {
                finally_jobs.push(i);
            }
            jobs.push(Job {
                cond,
                retries: job.retries,
                backoff: job.backoff.map_or(DEFAULT_BACKOFF, |b| b.0.as_std()),
                allow_failure: job.allow_failure,
                finally: job.finally,
            });
        }
        let limit = [
            options.concurrency,
            pipeline.concurrency.map(|c| c as usize),
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(usize::MAX)
        .max(1);
        Ok(Scheduler {
            others_left: n - finally_jobs.len(),
            jobs,
            dependents,
            remaining,
            state: vec![JobState::Pending; n],
            attempts: vec![0; n],
            attempts_before: vec![0; n],
            ready: VecDeque::new(),
            running: 0,
            concurrency: limit,
            fail_fast: pipeline.fail_fast,
            finally_jobs,
            done: 0,
            failed: Vec::new(),
            run_failed: false,
            stopping: false,
            cancelled: false,
            terminated: false,
            given_up: false,
            started: false,
            finished: false,
        })
    }

    /// The first actions: launch what can start.
    pub fn start(&mut self, out: &mut Vec<Action>) {
        self.started = true;
        let mut decided = Vec::new();
        let mut work = Vec::new();
        for i in 0..self.jobs.len() {
            if self.remaining[i] == 0 && !self.jobs[i].finally {
                self.decide(i, &mut decided, &mut work);
            }
        }
        if self.others_left == 0 {
            self.release_finally(&mut decided, &mut work);
        }
        self.propagate(work, &mut decided);
        self.settle(decided, out);
    }

    /// An attempt of `job` ended.
    pub fn attempt_ended(&mut self, job: JobId, end: AttemptEnd, out: &mut Vec<Action>) {
        if self.state[job] != JobState::Running {
            return;
        }
        self.running -= 1;
        let outcome = match end {
            AttemptEnd::Succeeded => Outcome::Succeeded,
            AttemptEnd::Failed => Outcome::Failed,
            AttemptEnd::Errored => Outcome::Errored,
            AttemptEnd::Cancelled => Outcome::Cancelled,
        };
        let attempt = self.attempts[job];
        // This round's attempts: a retried run gives each job its retries again.
        let tries = attempt - self.attempts_before[job];
        let retryable = matches!(outcome, Outcome::Failed | Outcome::Errored);
        // Once the run is cancelled or fail_fast has tripped, a failed attempt is not retried.
        let stopped =
            self.terminated || ((self.cancelled || self.stopping) && !self.jobs[job].finally);
        let mut decided = Vec::new();
        if retryable && tries <= self.jobs[job].retries && !stopped {
            self.state[job] = JobState::Backoff;
            let delay = self.jobs[job]
                .backoff
                .saturating_mul(1u32 << (tries - 1).min(16))
                .min(MAX_BACKOFF);
            out.push(Action::Retry {
                job,
                attempt: attempt + 1,
                delay,
            });
        } else {
            self.complete(job, outcome, &mut decided);
        }
        self.settle(decided, out);
    }

    /// The wait before a retry of `job` is over.
    pub fn retry_due(&mut self, job: JobId, out: &mut Vec<Action>) {
        if self.state[job] != JobState::Backoff {
            return;
        }
        self.state[job] = JobState::Ready;
        self.ready.push_back(job);
        self.settle(Vec::new(), out);
    }

    /// Cancels the run: jobs not started end cancelled, running ones are killed. `finally` jobs
    /// still run, unless the run is cancelled a second time. May come before [`Scheduler::start`],
    /// which then launches only what the cancels left (`finally` jobs, after a single cancel).
    pub fn cancel(&mut self, out: &mut Vec<Action>) {
        if self.finished {
            return;
        }
        let second = self.cancelled;
        self.cancelled = true;
        self.terminated = second;
        self.stop(out);
    }

    /// Gives the run up (it cannot be driven): as after a second cancel, running jobs are
    /// killed and nothing more starts, not even `finally` jobs; the run ends errored. May come
    /// before [`Scheduler::start`], like a cancel.
    pub fn give_up(&mut self, out: &mut Vec<Action>) {
        if self.finished {
            return;
        }
        self.cancelled = true;
        self.terminated = true;
        self.given_up = true;
        self.stop(out);
    }

    /// Kills the running jobs the run's cancels stop and cancels those that have not started.
    fn stop(&mut self, out: &mut Vec<Action>) {
        let mut decided = Vec::new();
        for job in 0..self.jobs.len() {
            if !self.is_cancelled(job) {
                continue;
            }
            match self.state[job] {
                JobState::Running => out.push(Action::Kill { job }),
                JobState::Ready | JobState::Backoff | JobState::Pending => {
                    decided.push((job, Outcome::Cancelled));
                    self.complete(job, Outcome::Cancelled, &mut decided);
                }
                _ => {}
            }
        }
        self.settle(decided, out);
    }

    /// Reopens a finished run for a retry: `jobs` (see [`jobs_to_retry`]) are undecided again,
    /// keeping their attempt counts (the next attempt continues the numbering) but with their
    /// retries afresh; the other jobs keep their outcomes. Cancels, giving up and fail_fast are
    /// forgotten.
    /// Then [`Scheduler::start`] launches what can run, as for a new run. A run that has not
    /// finished is not reopened.
    pub fn reopen(&mut self, jobs: &[JobId]) {
        if !self.finished {
            return;
        }
        for &j in jobs {
            if j < self.jobs.len() {
                self.state[j] = JobState::Pending;
            }
        }
        self.attempts_before.clone_from(&self.attempts);
        let done = |s: &JobState| matches!(s, JobState::Done(_));
        self.remaining.iter_mut().for_each(|r| *r = 0);
        for k in 0..self.jobs.len() {
            if !done(&self.state[k]) {
                for &j in &self.dependents[k] {
                    self.remaining[j] += 1;
                }
            }
        }
        self.done = self.state.iter().filter(|s| done(s)).count();
        self.others_left = (0..self.jobs.len())
            .filter(|&j| !self.jobs[j].finally && !done(&self.state[j]))
            .count();
        let state = &self.state;
        self.failed.retain(|&j| done(&state[j]));
        self.run_failed = self.failed.iter().any(|&j| !self.jobs[j].allow_failure);
        self.ready.clear();
        self.stopping = false;
        self.cancelled = false;
        self.terminated = false;
        self.given_up = false;
        self.started = false;
        self.finished = false;
    }

    /// Whether the run's cancels stop `job`: every job after a second cancel (or when the run
    /// was given up), all but `finally` jobs after the first.
    pub fn is_cancelled(&self, job: JobId) -> bool {
        self.terminated || (self.cancelled && !self.jobs[job].finally)
    }

    pub fn state(&self, job: JobId) -> JobState {
        self.state[job]
    }

    pub fn attempts(&self, job: JobId) -> u32 {
        self.attempts[job]
    }

    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// The run's outcome so far (what `finally` jobs see as `CHAINR_RUN_STATUS`).
    pub fn outcome_so_far(&self) -> RunOutcome {
        if self.given_up {
            RunOutcome::Errored
        } else if self.cancelled {
            RunOutcome::Cancelled
        } else if self.run_failed {
            RunOutcome::Failed
        } else {
            RunOutcome::Succeeded
        }
    }

    /// Jobs that failed or errored, in the order they ended.
    pub fn failed_jobs(&self) -> &[JobId] {
        &self.failed
    }

    // ------------------------------------------------------------ internals

    /// Marks `job` terminal and wakes what waits for it; newly decided jobs go to `decided`.
    fn complete(&mut self, job: JobId, outcome: Outcome, decided: &mut Vec<(JobId, Outcome)>) {
        if let JobState::Done(_) = self.state[job] {
            return;
        }
        self.state[job] = JobState::Done(outcome);
        self.done += 1;
        let fails_run = matches!(outcome, Outcome::Failed | Outcome::Errored);
        if fails_run {
            self.failed.push(job);
        }
        let mut work = vec![job];
        if fails_run && !self.jobs[job].allow_failure {
            self.run_failed = true;
            if self.fail_fast && !self.stopping {
                self.stopping = true;
                // Nothing new starts; what has not started ends cancelled.
                for j in 0..self.jobs.len() {
                    if self.jobs[j].finally {
                        continue;
                    }
                    match self.state[j] {
                        JobState::Pending | JobState::Ready | JobState::Backoff => {
                            self.state[j] = JobState::Done(Outcome::Cancelled);
                            self.done += 1;
                            decided.push((j, Outcome::Cancelled));
                            work.push(j);
                        }
                        _ => {}
                    }
                }
            }
        }
        self.propagate(work, decided);
    }

    /// Wakes the jobs that wait for the newly terminal jobs in `work`, transitively.
    fn propagate(&mut self, mut work: Vec<JobId>, decided: &mut Vec<(JobId, Outcome)>) {
        while let Some(k) = work.pop() {
            if !self.jobs[k].finally {
                self.others_left -= 1;
                if self.others_left == 0 {
                    self.release_finally(decided, &mut work);
                }
            }
            for d in 0..self.dependents[k].len() {
                let j = self.dependents[k][d];
                self.remaining[j] -= 1;
                if self.remaining[j] == 0 && !(self.jobs[j].finally && self.others_left > 0) {
                    self.decide(j, decided, &mut work);
                }
            }
        }
    }

    /// Decides a job whose condition's jobs are all terminal: ready, or skipped/cancelled.
    /// Returns the outcome when the job will not run.
    fn evaluate(&mut self, j: JobId) -> Option<Outcome> {
        let stopped = if self.jobs[j].finally {
            self.terminated
        } else {
            self.cancelled || self.stopping
        };
        if stopped {
            return Some(Outcome::Cancelled);
        }
        let holds = self.jobs[j].cond.as_ref().is_none_or(|c| self.holds(c));
        if holds {
            self.state[j] = JobState::Ready;
            self.ready.push_back(j);
            None
        } else {
            Some(Outcome::Skipped)
        }
    }

    /// A job whose condition's jobs are all terminal: queued to run, or decided (skipped,
    /// cancelled) and put on `work` so that its own dependents are woken.
    fn decide(&mut self, j: JobId, decided: &mut Vec<(JobId, Outcome)>, work: &mut Vec<JobId>) {
        if self.state[j] != JobState::Pending {
            return;
        }
        if let Some(o) = self.evaluate(j) {
            self.state[j] = JobState::Done(o);
            self.done += 1;
            decided.push((j, o));
            work.push(j);
        }
    }

    /// Every other job is terminal: the finally jobs that wait for nothing else are decided.
    fn release_finally(&mut self, decided: &mut Vec<(JobId, Outcome)>, work: &mut Vec<JobId>) {
        for f in 0..self.finally_jobs.len() {
            let j = self.finally_jobs[f];
            if self.remaining[j] == 0 {
                self.decide(j, decided, work);
            }
        }
    }

    /// Reports decisions, starts what fits, and reports the end of the run.
    fn settle(&mut self, decided: Vec<(JobId, Outcome)>, out: &mut Vec<Action>) {
        for (job, outcome) in decided {
            out.push(Action::Decided { job, outcome });
        }
        while self.started && self.running < self.concurrency {
            let Some(job) = self.ready.pop_front() else {
                break;
            };
            // Entries of jobs cancelled while queued are dropped here rather than searched for.
            if self.state[job] != JobState::Ready {
                continue;
            }
            self.state[job] = JobState::Running;
            self.attempts[job] += 1;
            self.running += 1;
            out.push(Action::Launch {
                job,
                attempt: self.attempts[job],
            });
        }
        if !self.finished && self.done == self.jobs.len() {
            self.finished = true;
            out.push(Action::Finished(self.outcome_so_far()));
        }
    }

    fn holds(&self, c: &Cond) -> bool {
        match c {
            Cond::All(cs) => cs.iter().all(|c| self.holds(c)),
            Cond::Any(cs) => cs.iter().any(|c| self.holds(c)),
            Cond::Not(c) => !self.holds(c),
            Cond::Is(j, test) => {
                let JobState::Done(o) = self.state[*j] else {
                    return false;
                };
                test.holds(o, self.jobs[*j].allow_failure)
            }
        }
    }
}

/// The jobs a retry of a finished run runs again: every job that did not succeed, every job
/// whose condition names one of those (its outcome was decided on one that may change), and
/// so on, and, when any job runs again, the `finally` jobs (they wait for every other job). The
/// others keep their outcome. `succeeded(job)` tells whether a job succeeded.
pub fn jobs_to_retry(pipeline: &ir::Pipeline, succeeded: impl Fn(JobId) -> bool) -> Vec<JobId> {
    let n = pipeline.jobs.len();
    let mut dependents: Vec<Vec<JobId>> = vec![Vec::new(); n];
    for (j, job) in pipeline.jobs.values().enumerate() {
        for k in job
            .needs()
            .filter_map(|name| pipeline.jobs.get_index_of(name))
        {
            dependents[k].push(j);
        }
    }
    let mut again: Vec<bool> = (0..n).map(|j| !succeeded(j)).collect();
    if again.contains(&true) {
        for (j, job) in pipeline.jobs.values().enumerate() {
            again[j] |= job.finally;
        }
    }
    let mut work: Vec<JobId> = (0..n).filter(|&j| again[j]).collect();
    while let Some(k) = work.pop() {
        for &j in &dependents[k] {
            if !again[j] {
                again[j] = true;
                work.push(j);
            }
        }
    }
    (0..n).filter(|&j| again[j]).collect()
}

impl Cond {
    fn jobs(&self, out: &mut Vec<JobId>) {
        match self {
            Cond::All(cs) | Cond::Any(cs) => cs.iter().for_each(|c| c.jobs(out)),
            Cond::Not(c) => c.jobs(out),
            Cond::Is(j, _) => out.push(*j),
        }
    }
}

fn lower(
    c: &ir::Condition,
    index: &dyn Fn(&str) -> Result<JobId, UnknownJob>,
) -> Result<Cond, UnknownJob> {
    use ir::Condition as C;
    Ok(match c {
        C::All(cs) => Cond::All(
            cs.iter()
                .map(|c| lower(c, index))
                .collect::<Result<_, _>>()?,
        ),
        C::Any(cs) => Cond::Any(
            cs.iter()
                .map(|c| lower(c, index))
                .collect::<Result<_, _>>()?,
        ),
        C::Not(c) => Cond::Not(Box::new(lower(c, index)?)),
        C::Succeeded(j) => Cond::Is(index(j)?, Test::Succeeded),
        C::Failed(j) => Cond::Is(index(j)?, Test::Failed),
        C::Errored(j) => Cond::Is(index(j)?, Test::Errored),
        C::Skipped(j) => Cond::Is(index(j)?, Test::Skipped),
        C::Cancelled(j) => Cond::Is(index(j)?, Test::Cancelled),
        C::Done(j) => Cond::Is(index(j)?, Test::Done),
    })
}
