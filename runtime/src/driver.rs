//! The driver: the one run loop for every executor. [`Driver`] is its pure core: it holds the
//! scheduler, the timers (retry backoff, timeouts, the escalation of a stop), what each running
//! attempt was asked to do, and the Run document; it turns what happens (an attempt started or
//! ended, a timer is due, a cancel) into effects for the executor and numbered [`RunEvent`]s. It
//! reads no clock: every input carries [`Now`]. [`drive`] is the thin async loop around it that
//! waits on the executor, the next timer and commands, writes output to a [`LogSink`] and
//! publishes events.
//!
//! A driver can also continue a run from its stored events ([`Driver::resume`]): the scheduler is
//! brought to the same state by replaying the inputs the events record, attempts that were in
//! flight are started again (the executor adopts or kills what the earlier start left), and
//! decisions that were taken but not recorded are recorded.

use crate::event::{
    millis, millis_of, AttemptResult, Decision, EventKind, GiveUp, Reason, RunEvent,
};
use crate::executor::{AttemptSpec, ExecEvent, Executor};
use crate::log::{LogKey, LogSink};
use crate::record::Run;
use crate::scheduler::{
    Action, AttemptEnd, JobId, JobState, Options, Outcome, RunOutcome, Scheduler, UnknownJob,
};
use async_trait::async_trait;
use chainr_compiler::ir;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::mpsc;

/// The time of an input: a monotonic instant for timers, the wall clock for events.
#[derive(Clone, Copy, Debug)]
pub struct Now {
    pub instant: Instant,
    pub wall: SystemTime,
}

impl Now {
    /// The time now: tokio's clock (which tests can pause and advance) and the wall clock.
    pub fn current() -> Now {
        Now {
            instant: tokio::time::Instant::now().into_std(),
            wall: SystemTime::now(),
        }
    }
}

/// The clock of one drive: the wall clock read once at the start, then advanced by tokio's
/// monotonic clock, so that event times follow timers (and virtual time in tests).
struct Clock {
    instant: tokio::time::Instant,
    wall: SystemTime,
}

impl Clock {
    fn start() -> Clock {
        Clock {
            instant: tokio::time::Instant::now(),
            wall: SystemTime::now(),
        }
    }

    fn now(&self) -> Now {
        let instant = tokio::time::Instant::now();
        Now {
            instant: instant.into_std(),
            wall: self.wall + instant.duration_since(self.instant),
        }
    }
}

/// How to drive, beyond the pipeline.
#[derive(Clone, Copy, Debug, Default)]
pub struct DriverOptions {
    /// At most this many attempts at once (the pipeline's `concurrency` applies too).
    pub concurrency: Option<usize>,
    /// After a graceful stop, how long before a forced one (the executor's
    /// [`Executor::kill_grace`]).
    pub kill_grace: Option<Duration>,
    /// Keep at most this many bytes of one attempt's output; past it, a marker line says where
    /// the output was cut and the rest is dropped (`None`: keep everything).
    pub log_cap: Option<u64>,
}

/// What the executor is asked to do.
#[derive(Clone, Debug, PartialEq)]
pub enum Effect {
    Start {
        job: JobId,
        attempt: u32,
        extra_env: Vec<(&'static str, String)>,
        /// Started before by a driver that stopped: the handle it recorded (see
        /// [`AttemptSpec::resume`]).
        resume: Option<Option<String>>,
    },
    Stop {
        job: JobId,
        attempt: u32,
        force: bool,
    },
    /// An attempt started by a driver that stopped, in a run cancelled since: make sure nothing
    /// of it runs any more, then report it ended ([`Driver::ended`]).
    Abandon {
        job: JobId,
        attempt: u32,
        handle: Option<String>,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    RetryDue(JobId),
    Timeout(JobId, u32),
    Escalate(JobId, u32),
}

/// Why the driver stopped an attempt; it decides how the attempt's end is reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum StopReason {
    Timeout,
    Cancel,
}

/// An attempt the driver asked to start and that has not ended.
#[derive(Debug)]
struct Live {
    attempt: u32,
    stop: Option<StopReason>,
    output_lost: Option<String>,
    /// Output bytes passed to the log sink so far, and whether the cap cut it.
    logged: u64,
    cut: bool,
}

pub struct Driver<'p> {
    run_id: String,
    names: Vec<&'p str>,
    specs: Vec<&'p ir::Job>,
    scheduler: Scheduler,
    run: Run,
    seq: u64,
    live: Vec<Option<Live>>,
    timers: BTreeMap<(Instant, u64), Timer>,
    timer_seq: u64,
    /// Cancels taken so far (`CancelRequested` events).
    cancels: u32,
    /// Cancels asked for before [`Driver::begin`], taken by it, and the run given up.
    queued_cancels: u32,
    queued_give_up: Option<GiveUp>,
    kill_grace: Option<Duration>,
    log_cap: Option<u64>,
    actions: Vec<Action>,
    effects: Vec<Effect>,
    events: Vec<RunEvent>,
    resumed: bool,
    /// Whether the scheduler was started (a `RunStarted` event): not yet for a new run.
    started: bool,
    /// Found by [`Driver::resume`], carried out by [`Driver::begin`]: decisions to record, and
    /// attempts an earlier driver started (or may have started: no handle) to start again or
    /// abandon.
    backlog: Vec<EventKind>,
    earlier: Vec<(JobId, u32, Option<String>)>,
    begun: bool,
    /// Set by [`Driver::taken_over`]: any attempt launched may have been started already.
    taken_over: bool,
}

impl<'p> Driver<'p> {
    /// A driver for a new run of `pipeline`.
    pub fn new(
        run_id: &str,
        pipeline: &'p ir::Pipeline,
        options: DriverOptions,
    ) -> Result<Driver<'p>, UnknownJob> {
        let scheduler = Scheduler::new(
            pipeline,
            Options {
                concurrency: options.concurrency,
            },
        )?;
        let n = pipeline.jobs.len();
        Ok(Driver {
            run_id: run_id.to_string(),
            names: pipeline.jobs.keys().map(String::as_str).collect(),
            specs: pipeline.jobs.values().collect(),
            scheduler,
            run: Run::planned(run_id.to_string(), pipeline),
            seq: 0,
            live: (0..n).map(|_| None).collect(),
            timers: BTreeMap::new(),
            timer_seq: 0,
            cancels: 0,
            queued_cancels: 0,
            queued_give_up: None,
            kill_grace: options.kill_grace,
            log_cap: options.log_cap,
            actions: Vec::new(),
            effects: Vec::new(),
            events: Vec::new(),
            resumed: false,
            started: false,
            backlog: Vec::new(),
            earlier: Vec::new(),
            begun: false,
            taken_over: false,
        })
    }

    /// A driver that continues a run from the events stored so far.
    pub fn resume(
        run_id: &str,
        pipeline: &'p ir::Pipeline,
        options: DriverOptions,
        events: &[RunEvent],
        now: Now,
    ) -> Result<Driver<'p>, UnknownJob> {
        let mut d = Driver::new(run_id, pipeline, options)?;
        if events.is_empty() {
            return Ok(d);
        }
        d.resumed = true;
        d.run = Run::replay(run_id.to_string(), pipeline, events);
        d.seq = events.last().map_or(0, |e| e.seq);
        // Bring the scheduler to where the events say it was, by giving it the same inputs in
        // the same order (`RunStarted` is its start).
        let mut actions = Vec::new();
        let mut launched: HashSet<(JobId, u32)> = HashSet::new();
        let mut in_flight: HashMap<JobId, (u32, Option<String>)> = HashMap::new();
        let mut retry_at: HashMap<JobId, SystemTime> = HashMap::new();
        let mut decided: HashSet<JobId> = HashSet::new();
        let mut finished = false;
        let note = |actions: &mut Vec<Action>, launched: &mut HashSet<(JobId, u32)>| {
            for a in actions.drain(..) {
                if let Action::Launch { job, attempt } = a {
                    launched.insert((job, attempt));
                }
            }
        };
        for e in events {
            match &e.kind {
                EventKind::AttemptStarted {
                    job,
                    attempt,
                    handle,
                } => {
                    let (job, attempt) = (*job, *attempt);
                    if job >= d.live.len() {
                        continue;
                    }
                    // A launch the scheduler decided, or the same attempt started again after
                    // an earlier take-over.
                    launched.remove(&(job, attempt));
                    retry_at.remove(&job);
                    in_flight.insert(job, (attempt, handle.clone()));
                }
                EventKind::RetryDue { job, .. } => {
                    if *job < d.live.len() {
                        d.scheduler.retry_due(*job, &mut actions);
                        note(&mut actions, &mut launched);
                    }
                }
                EventKind::AttemptEnded {
                    job,
                    attempt,
                    result,
                } => {
                    // Running, or launched and abandoned with no recorded start.
                    if in_flight.remove(job).is_some() || launched.remove(&(*job, *attempt)) {
                        d.scheduler.attempt_ended(*job, result.end, &mut actions);
                        note(&mut actions, &mut launched);
                    }
                }
                EventKind::RetryScheduled { job, delay_ms, .. } => {
                    retry_at.insert(*job, e.at + Duration::from_millis(*delay_ms));
                }
                EventKind::CancelRequested { .. } => {
                    d.cancels += 1;
                    d.scheduler.cancel(&mut actions);
                    note(&mut actions, &mut launched);
                }
                EventKind::RunGivenUp { .. } => {
                    d.scheduler.give_up(&mut actions);
                    note(&mut actions, &mut launched);
                }
                EventKind::JobDecided { job, .. } => {
                    decided.insert(*job);
                }
                EventKind::RunFinished { .. } => finished = true,
                EventKind::RunRetried { jobs } => {
                    // A new round: nothing is in flight, the retried jobs are undecided, and
                    // the next `RunStarted` starts the scheduler again.
                    d.scheduler.reopen(jobs);
                    d.started = false;
                    d.cancels = 0;
                    launched.clear();
                    in_flight.clear();
                    retry_at.clear();
                    decided.retain(|&j| matches!(d.scheduler.state(j), JobState::Done(_)));
                    finished = false;
                }
                EventKind::RunStarted { .. } => {
                    if !d.started {
                        d.started = true;
                        d.scheduler.start(&mut actions);
                        note(&mut actions, &mut launched);
                    }
                }
            }
        }
        // Attempts that were running, and attempts decided with no recorded start (the earlier
        // driver may have started them and stopped before recording it: they have no handle,
        // and the executor finds what may run by the attempt's identity, a Job's name or a
        // process's environment). `begin` starts them again, or, if the run was cancelled,
        // abandons them: not started again only to be stopped.
        d.earlier = in_flight
            .into_iter()
            .map(|(job, (attempt, handle))| (job, attempt, handle))
            .chain(
                launched
                    .into_iter()
                    .map(|(job, attempt)| (job, attempt, None)),
            )
            .collect();
        d.earlier.sort();
        // Retries waiting for their time, and decisions taken but not recorded.
        for job in 0..d.live.len() {
            match d.scheduler.state(job) {
                JobState::Backoff => {
                    let at = retry_at.get(&job).copied().unwrap_or(now.wall);
                    let wait = at.duration_since(now.wall).unwrap_or_default();
                    d.add_timer(now.instant + wait, Timer::RetryDue(job));
                }
                JobState::Done(outcome) if !decided.contains(&job) => {
                    // A job that ran says why through its last attempt.
                    let ran = d.run.jobs[job]
                        .attempts
                        .last()
                        .is_some_and(|a| a.status.is_terminal() && a.status == outcome.into());
                    let why = if ran { None } else { d.why(job, outcome) };
                    d.backlog.push(EventKind::JobDecided { job, outcome, why });
                }
                _ => {}
            }
        }
        if d.scheduler.is_finished() && !finished {
            d.backlog.push(EventKind::RunFinished {
                outcome: d.scheduler.outcome_so_far(),
            });
        }
        Ok(d)
    }

    /// Records that the run (re)started and decides what runs first. Cancels that came before
    /// are taken first: a run cancelled before it started launches nothing but its `finally`
    /// jobs (and not even those when cancelled twice). Their `CancelRequested` events then come
    /// before `RunStarted`, as the scheduler took them, so that a replay takes them in the same
    /// order.
    pub fn begin(&mut self, now: Now) {
        if self.begun {
            return;
        }
        self.begun = true;
        let fresh = !self.started;
        if fresh {
            self.take_queued(now);
        }
        self.emit(
            EventKind::RunStarted {
                resumed: self.resumed,
            },
            now,
        );
        for kind in std::mem::take(&mut self.backlog) {
            self.emit(kind, now);
        }
        if fresh {
            self.started = true;
            self.scheduler.start(&mut self.actions);
        } else {
            self.take_queued(now);
        }
        for (job, attempt, handle) in std::mem::take(&mut self.earlier) {
            if self.scheduler.is_cancelled(job) {
                self.live[job] = Some(Live {
                    attempt,
                    stop: Some(StopReason::Cancel),
                    output_lost: None,
                    logged: 0,
                    cut: false,
                });
                self.effects.push(Effect::Abandon {
                    job,
                    attempt,
                    handle,
                });
            } else {
                self.launch(job, attempt, Some(handle));
            }
        }
        self.settle(now);
    }

    fn take_queued(&mut self, now: Now) {
        for _ in 0..std::mem::take(&mut self.queued_cancels) {
            self.request_cancel(now);
        }
        if let Some(why) = self.queued_give_up.take() {
            self.request_give_up(why, now);
        }
    }

    /// The executor's answer to an [`Effect::Start`].
    pub fn started(
        &mut self,
        job: JobId,
        attempt: u32,
        outcome: Result<Option<String>, String>,
        now: Now,
    ) {
        if !self.is_live(job, attempt) {
            return;
        }
        match outcome {
            Ok(handle) => {
                self.emit(
                    EventKind::AttemptStarted {
                        job,
                        attempt,
                        handle,
                    },
                    now,
                );
                if let Some(t) = self.specs[job].timeout {
                    self.add_timer(now.instant + t.0.as_std(), Timer::Timeout(job, attempt));
                }
            }
            Err(why) => {
                self.emit(
                    EventKind::AttemptStarted {
                        job,
                        attempt,
                        handle: None,
                    },
                    now,
                );
                self.ended(
                    job,
                    attempt,
                    AttemptResult::errored(Reason::CouldNotStart(why)),
                    now,
                );
            }
        }
    }

    /// What of a piece of an attempt's output goes to its log: all of it, up to the log cap,
    /// then once a marker that says the output was cut, then nothing.
    pub fn output_to_keep<'b>(
        &mut self,
        job: JobId,
        attempt: u32,
        bytes: &'b [u8],
    ) -> std::borrow::Cow<'b, [u8]> {
        use std::borrow::Cow;
        let cap = self.log_cap;
        let Some(Some(l)) = self.live.get_mut(job) else {
            return Cow::Borrowed(bytes);
        };
        if l.attempt != attempt {
            return Cow::Borrowed(bytes);
        }
        let Some(cap) = cap else {
            return Cow::Borrowed(bytes);
        };
        if l.cut {
            return Cow::Borrowed(&[]);
        }
        let room = cap.saturating_sub(l.logged);
        if (bytes.len() as u64) <= room {
            l.logged += bytes.len() as u64;
            return Cow::Borrowed(bytes);
        }
        l.cut = true;
        l.logged = cap;
        let mut kept = bytes[..room as usize].to_vec();
        kept.extend_from_slice(crate::log::cut_marker(cap).as_bytes());
        Cow::Owned(kept)
    }

    /// The output of an attempt could not be kept; its result will say so.
    pub fn output_lost(&mut self, job: JobId, attempt: u32, why: String) {
        if let Some(Some(l)) = self.live.get_mut(job) {
            if l.attempt == attempt {
                l.output_lost.get_or_insert(why);
            }
        }
    }

    /// An attempt ended, as the executor saw it. The driver's own reasons for stopping it (a
    /// cancel, a timeout) decide how it is reported.
    pub fn ended(&mut self, job: JobId, attempt: u32, mut result: AttemptResult, now: Now) {
        if !self.is_live(job, attempt) {
            return;
        }
        let Some(live) = self.live[job].take() else {
            return;
        };
        match live.stop {
            Some(StopReason::Cancel) => {
                result.end = AttemptEnd::Cancelled;
                result.reason = Some(if self.is_given_up() {
                    Reason::GivenUp
                } else {
                    Reason::Cancelled
                });
            }
            Some(StopReason::Timeout) => {
                result.end = AttemptEnd::Failed;
                let limit = self.specs[job]
                    .timeout
                    .map(|t| t.0.to_string())
                    .unwrap_or_default();
                result.reason = Some(Reason::TimedOut(limit));
            }
            None => {}
        }
        if result.output_lost.is_none() {
            result.output_lost = live.output_lost;
        }
        let end = result.end;
        self.emit(
            EventKind::AttemptEnded {
                job,
                attempt,
                result,
            },
            now,
        );
        self.scheduler.attempt_ended(job, end, &mut self.actions);
        if let JobState::Done(outcome) = self.scheduler.state(job) {
            self.emit(
                EventKind::JobDecided {
                    job,
                    outcome,
                    why: None,
                },
                now,
            );
        }
        self.settle(now);
    }

    /// Cancels the run (a second time: `finally` jobs stop too). Before [`Driver::begin`], the
    /// cancel waits for it.
    pub fn cancel(&mut self, now: Now) {
        if !self.begun {
            self.queued_cancels += 1;
            return;
        }
        self.request_cancel(now);
        self.settle(now);
    }

    /// The run is taken over from a driver that stopped without handing it back (its lease
    /// expired). Its last step may not have been stored, and what it started then may still
    /// run: so every attempt launched from now on is started as one that may have been started
    /// before (`resume: Some(None)`), for the executor to find it by the attempt's identity (a
    /// process's environment, a Job's name) rather than run a second copy beside it.
    pub fn taken_over(&mut self) {
        self.taken_over = true;
    }

    /// Gives the run up: it is not driven any more (see [`EventKind::RunGivenUp`]). Before
    /// [`Driver::begin`], it waits for it, like a cancel.
    pub fn give_up(&mut self, why: GiveUp, now: Now) {
        if !self.begun {
            self.queued_give_up = Some(why);
            return;
        }
        self.request_give_up(why, now);
        self.settle(now);
    }

    fn request_give_up(&mut self, why: GiveUp, now: Now) {
        if self.scheduler.is_finished() {
            return;
        }
        self.emit(EventKind::RunGivenUp { why }, now);
        self.scheduler.give_up(&mut self.actions);
    }

    /// How many cancels the run has taken since it was last retried (its `CancelRequested`
    /// events, and those queued for [`Driver::begin`]).
    pub fn cancels(&self) -> u32 {
        self.cancels + self.queued_cancels
    }

    fn request_cancel(&mut self, now: Now) {
        if self.scheduler.is_finished() {
            return;
        }
        self.cancels += 1;
        self.emit(
            EventKind::CancelRequested {
                again: self.cancels > 1,
            },
            now,
        );
        self.scheduler.cancel(&mut self.actions);
    }

    /// Fires the timers that are due.
    pub fn tick(&mut self, now: Now) {
        while let Some((&(at, seq), &timer)) = self.timers.first_key_value() {
            if at > now.instant {
                break;
            }
            self.timers.remove(&(at, seq));
            match timer {
                Timer::RetryDue(job) => {
                    if self.scheduler.state(job) == JobState::Backoff {
                        let attempt = self.scheduler.attempts(job) + 1;
                        self.emit(EventKind::RetryDue { job, attempt }, now);
                        self.scheduler.retry_due(job, &mut self.actions);
                    }
                }
                Timer::Timeout(job, attempt) => {
                    if self.is_live(job, attempt) {
                        self.stop(job, StopReason::Timeout, now);
                    }
                }
                Timer::Escalate(job, attempt) => {
                    if self.is_live(job, attempt) {
                        self.effects.push(Effect::Stop {
                            job,
                            attempt,
                            force: true,
                        });
                    }
                }
            }
        }
        self.settle(now);
    }

    /// When the next timer is due.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.timers.keys().next().map(|(at, _)| *at)
    }

    pub fn take_effects(&mut self) -> Vec<Effect> {
        std::mem::take(&mut self.effects)
    }

    pub fn take_events(&mut self) -> Vec<RunEvent> {
        std::mem::take(&mut self.events)
    }

    /// The Run document so far (the fold of every event).
    pub fn run(&self) -> &Run {
        &self.run
    }

    pub fn into_run(self) -> Run {
        self.run
    }

    pub fn is_finished(&self) -> bool {
        self.run.status.is_terminal() && self.live.iter().all(Option::is_none)
    }

    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// The job's name and definition.
    pub fn job(&self, job: JobId) -> (&'p str, &'p ir::Job) {
        (self.names[job], self.specs[job])
    }

    /// Where an attempt's output goes.
    pub fn log_key(&self, job: JobId, attempt: u32) -> LogKey {
        LogKey {
            run: self.run_id.clone(),
            job: self.names[job].to_string(),
            attempt,
        }
    }

    // ------------------------------------------------------------ internals

    fn is_given_up(&self) -> bool {
        self.scheduler.outcome_so_far() == RunOutcome::Errored
    }

    fn is_live(&self, job: JobId, attempt: u32) -> bool {
        matches!(self.live.get(job), Some(Some(l)) if l.attempt == attempt)
    }

    fn add_timer(&mut self, at: Instant, timer: Timer) {
        self.timer_seq += 1;
        self.timers.insert((at, self.timer_seq), timer);
    }

    fn emit(&mut self, kind: EventKind, now: Now) {
        self.seq += 1;
        // Milliseconds, as events are stored: a replayed document equals the live one.
        let at = millis::whole(now.wall);
        let event = RunEvent {
            seq: self.seq,
            at,
            kind,
        };
        self.run.apply(&event);
        self.events.push(event);
    }

    /// Asks the executor to start an attempt (`resume`: again, after an earlier driver).
    fn launch(&mut self, job: JobId, attempt: u32, resume: Option<Option<String>>) {
        self.live[job] = Some(Live {
            attempt,
            stop: None,
            output_lost: None,
            logged: 0,
            cut: false,
        });
        self.effects.push(Effect::Start {
            job,
            attempt,
            extra_env: finally_env(&self.scheduler, &self.names, self.specs[job]),
            resume,
        });
    }

    fn stop(&mut self, job: JobId, reason: StopReason, now: Now) {
        let grace = self.kill_grace;
        let Some(Some(live)) = self.live.get_mut(job) else {
            return;
        };
        let first = live.stop.is_none();
        // A cancel outranks a timeout: the attempt ends cancelled.
        if first || reason == StopReason::Cancel {
            live.stop = Some(reason);
        }
        if !first {
            return;
        }
        let attempt = live.attempt;
        self.effects.push(Effect::Stop {
            job,
            attempt,
            force: false,
        });
        if let Some(g) = grace {
            self.add_timer(now.instant + g, Timer::Escalate(job, attempt));
        }
    }

    /// Why a job decided without (another) attempt ended as it did.
    fn why(&self, job: JobId, outcome: Outcome) -> Option<Decision> {
        let started = !self.run.jobs[job].attempts.is_empty();
        match outcome {
            Outcome::Skipped => Some(Decision::ConditionFalse),
            Outcome::Cancelled if self.is_given_up() => Some(Decision::GivenUp { started }),
            Outcome::Cancelled if self.cancels > 0 => Some(Decision::Cancelled { started }),
            Outcome::Cancelled => Some(Decision::FailFast { started }),
            _ => None,
        }
    }

    /// Turns the scheduler's actions into effects and events.
    fn settle(&mut self, now: Now) {
        let mut i = 0;
        while i < self.actions.len() {
            let action = self.actions[i].clone();
            i += 1;
            match action {
                Action::Launch { job, attempt } => {
                    self.launch(job, attempt, self.taken_over.then_some(None))
                }
                Action::Retry {
                    job,
                    attempt,
                    delay,
                } => {
                    self.add_timer(now.instant + delay, Timer::RetryDue(job));
                    self.emit(
                        EventKind::RetryScheduled {
                            job,
                            attempt,
                            delay_ms: millis_of(delay),
                        },
                        now,
                    );
                }
                Action::Kill { job } => self.stop(job, StopReason::Cancel, now),
                Action::Decided { job, outcome } => {
                    let why = self.why(job, outcome);
                    self.emit(EventKind::JobDecided { job, outcome, why }, now);
                }
                Action::Finished(outcome) => self.emit(EventKind::RunFinished { outcome }, now),
            }
        }
        self.actions.clear();
    }
}

/// `CHAINR_RUN_STATUS` and `CHAINR_FAILED_JOBS` for `finally` jobs.
fn finally_env(s: &Scheduler, names: &[&str], job: &ir::Job) -> Vec<(&'static str, String)> {
    if !job.finally {
        return Vec::new();
    }
    let status = match s.outcome_so_far() {
        RunOutcome::Succeeded => "succeeded",
        RunOutcome::Failed => "failed",
        RunOutcome::Cancelled => "cancelled",
        RunOutcome::Errored => "errored",
    };
    let failed: Vec<&str> = s.failed_jobs().iter().map(|&j| names[j]).collect();
    vec![
        ("CHAINR_RUN_STATUS", status.to_string()),
        ("CHAINR_FAILED_JOBS", failed.join(",")),
    ]
}

/// What the outside asks of a run while it goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    /// Cancel the run (again: stop `finally` jobs too).
    Cancel,
}

/// Where a driver's events go (subscribers, a store). Called once per step with the events of
/// that step, before the driver waits again.
#[async_trait]
pub trait Publish: Send {
    async fn publish(&mut self, events: &[RunEvent]) -> Result<(), PublishError>;
}

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// Another worker holds the run now: this driver must stop.
    #[error("the run's lease was lost: {0}")]
    LeaseLost(String),
    /// The events could not be stored.
    #[error("the run's events could not be stored: {0}")]
    Store(String),
}

#[derive(Debug, thiserror::Error)]
pub enum DriveError {
    #[error(transparent)]
    Publish(#[from] PublishError),
    /// The executor stopped reporting while attempts were running.
    #[error("the executor stopped reporting while attempts were running")]
    ExecutorStopped,
}

/// Subscribers that each get every event through their own channel. Sending never waits, so a
/// slow subscriber never holds up scheduling.
#[derive(Default)]
pub struct Subscribers {
    senders: Vec<mpsc::UnboundedSender<RunEvent>>,
}

impl Subscribers {
    pub fn new() -> Subscribers {
        Subscribers::default()
    }

    pub fn subscribe(&mut self) -> mpsc::UnboundedReceiver<RunEvent> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.senders.push(tx);
        rx
    }
}

#[async_trait]
impl Publish for Subscribers {
    async fn publish(&mut self, events: &[RunEvent]) -> Result<(), PublishError> {
        // A subscriber that went away is dropped, not waited for.
        self.senders
            .retain(|tx| events.iter().all(|e| tx.send(e.clone()).is_ok()));
        Ok(())
    }
}

/// Two destinations in order: the first (a store) must accept before the second sees them.
#[async_trait]
impl<A: Publish, B: Publish> Publish for (A, B) {
    async fn publish(&mut self, events: &[RunEvent]) -> Result<(), PublishError> {
        self.0.publish(events).await?;
        self.1.publish(events).await
    }
}

/// Drives a run to its end: the one loop. Starts and stops attempts through `executor`, keeps
/// their output in `logs`, takes commands (cancel) from `commands`, and publishes every event.
pub async fn drive<E: Executor + Send>(
    driver: &mut Driver<'_>,
    executor: &mut E,
    logs: &dyn LogSink,
    commands: &mut mpsc::UnboundedReceiver<Command>,
    publish: &mut dyn Publish,
) -> Result<(), DriveError> {
    let clock = Clock::start();
    // Commands sent before the drive (a cancel of a run not started yet) are taken by `begin`.
    while let Ok(Command::Cancel) = commands.try_recv() {
        driver.cancel(clock.now());
    }
    driver.begin(clock.now());
    let mut commands_open = true;
    loop {
        // Carry out what was decided; a start that fails decides more.
        loop {
            let effects = driver.take_effects();
            if effects.is_empty() {
                break;
            }
            for effect in effects {
                match effect {
                    Effect::Start {
                        job,
                        attempt,
                        extra_env,
                        resume,
                    } => {
                        let key = driver.log_key(job, attempt);
                        if resume.is_some() {
                            if let Err(e) = logs.reset(&key).await {
                                driver.output_lost(job, attempt, e.to_string());
                            }
                        }
                        let (name, spec) = driver.job(job);
                        let outcome = executor
                            .start(AttemptSpec {
                                run_id: driver.run_id(),
                                job,
                                name,
                                attempt,
                                spec,
                                extra_env: &extra_env,
                                resume: resume.as_ref().map(|h| h.as_deref()),
                            })
                            .await;
                        driver.started(job, attempt, outcome, clock.now());
                    }
                    Effect::Stop {
                        job,
                        attempt,
                        force,
                    } => executor.stop(job, attempt, force).await,
                    Effect::Abandon {
                        job,
                        attempt,
                        handle,
                    } => {
                        let (name, spec) = driver.job(job);
                        executor
                            .abandon(AttemptSpec {
                                run_id: driver.run_id(),
                                job,
                                name,
                                attempt,
                                spec,
                                extra_env: &[],
                                resume: Some(handle.as_deref()),
                            })
                            .await;
                        driver.ended(job, attempt, AttemptResult::cancelled(), clock.now());
                    }
                }
            }
        }
        let events = driver.take_events();
        if !events.is_empty() {
            publish.publish(&events).await?;
        }
        if driver.is_finished() {
            executor.finish().await;
            return Ok(());
        }
        let deadline = driver.next_deadline();
        tokio::select! {
            // Commands and timers first: a chatty executor must not hold up a cancel.
            biased;
            command = commands.recv(), if commands_open => match command {
                Some(Command::Cancel) => driver.cancel(clock.now()),
                None => commands_open = false,
            },
            _ = sleep_until(deadline) => driver.tick(clock.now()),
            event = executor.next() => match event {
                Some(ExecEvent::Output { job, attempt, bytes }) => {
                    let key = driver.log_key(job, attempt);
                    let kept = driver.output_to_keep(job, attempt, &bytes);
                    if !kept.is_empty() {
                        if let Err(e) = logs.append(&key, &kept).await {
                            driver.output_lost(job, attempt, e.to_string());
                        }
                    }
                }
                Some(ExecEvent::Ended { job, attempt, mut result }) => {
                    let key = driver.log_key(job, attempt);
                    match logs.finish(&key).await {
                        Ok(location) => result.log = location,
                        Err(e) => driver.output_lost(job, attempt, e.to_string()),
                    }
                    driver.ended(job, attempt, result, clock.now());
                }
                None => return Err(DriveError::ExecutorStopped),
            },
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await,
        None => std::future::pending::<()>().await,
    }
}
