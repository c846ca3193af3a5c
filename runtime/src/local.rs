//! The local executor and its driver: runs a pipeline's jobs as child processes on this machine.
//!
//! Each attempt is `sh -c RUN` in a process group of its own, with the caller's environment plus
//! the job's `env` and `CHAINR_RUN_ID`, `CHAINR_JOB`, `CHAINR_ATTEMPT`; its stdout and stderr go
//! straight into one in-memory file (a memfd: no copying, no per-line syscalls), which becomes
//! `JOB.ATTEMPT.log` in the log directory when the attempt ends (no file when it printed nothing:
//! creating files is the slowest part of running tiny jobs). One reaper thread collects exits
//! with `waitpid(-1)`; the driver loop feeds them to the scheduler and keeps the timers
//! (timeouts, retry backoff). A timeout or a cancel kills the attempt's whole process group, and
//! every group is killed when its attempt ends, so no process outlives its job.

use crate::record::{Attempt, JobRecord, Run, Status};
use crate::scheduler::{Action, AttemptEnd, JobId, Options, Outcome, RunOutcome, Scheduler};
use chainr_compiler::ir;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};

/// How long a killed attempt gets to exit after SIGTERM before SIGKILL.
const KILL_GRACE: Duration = Duration::from_secs(3);

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The IR names a job that is not in the pipeline (unvalidated IR).
    #[error(transparent)]
    UnknownJob(#[from] crate::scheduler::UnknownJob),
    /// The log directory could not be created.
    #[error("cannot create the log directory {path}: {source}")]
    Logs {
        path: String,
        source: std::io::Error,
    },
    /// The signal handler or the reaper thread could not be set up.
    #[error("cannot start the run: {0}")]
    Setup(std::io::Error),
}

/// How to run, beyond the pipeline.
#[derive(Clone, Debug)]
pub struct RunOptions {
    pub run_id: String,
    pub concurrency: Option<usize>,
    /// Where each attempt's output is written (`JOB.ATTEMPT.log`).
    pub logs_dir: PathBuf,
    /// Handle SIGINT and SIGTERM by cancelling the run (a second one stops `finally` jobs too).
    pub handle_signals: bool,
}

/// What a driver tells about a run while it goes; every method has a do-nothing default.
pub trait Observer {
    fn job_started(&mut self, _run: &Run, _job: JobId) {}
    /// The job reached a terminal status, or an attempt ended and a retry is coming.
    fn job_updated(&mut self, _run: &Run, _job: JobId) {}
    fn retrying(&mut self, _run: &Run, _job: JobId, _delay: Duration) {}
    /// The run is being cancelled (`again`: the second time, finally jobs stop too).
    fn cancelling(&mut self, _run: &Run, _again: bool) {}
}

/// An observer that says nothing.
pub struct Quiet;
impl Observer for Quiet {}

enum Msg {
    Exited { pid: i32, status: i32 },
    Signal,
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    RetryDue(JobId),
    Timeout(JobId, u32),
    Escalate(JobId, u32),
}

struct Live {
    job: JobId,
    attempt: u32,
    /// The attempt's output so far.
    output: File,
    /// Where the output is kept once the attempt ends.
    log: PathBuf,
    timed_out: bool,
    cancelled: bool,
}

/// Runs a pipeline to the end on this machine and returns what happened.
pub fn run(
    pipeline: &ir::Pipeline,
    options: &RunOptions,
    observer: &mut dyn Observer,
) -> Result<Run, RunError> {
    let mut scheduler = Scheduler::new(
        pipeline,
        Options {
            concurrency: options.concurrency,
        },
    )?;
    std::fs::create_dir_all(&options.logs_dir).map_err(|source| RunError::Logs {
        path: options.logs_dir.display().to_string(),
        source,
    })?;
    let names: Vec<&str> = pipeline.jobs.keys().map(String::as_str).collect();
    let jobs: Vec<&ir::Job> = pipeline.jobs.values().collect();
    let mut record = Run::new(
        options.run_id.clone(),
        pipeline.name.clone(),
        pipeline
            .jobs
            .iter()
            .map(|(n, j)| JobRecord::new(n.clone(), j.group.clone()))
            .collect(),
    );
    record.status = Status::Running;
    record.started_at = Some(SystemTime::now());

    let (tx, rx) = mpsc::channel::<Msg>();
    let reaper = Reaper::start(tx.clone()).map_err(RunError::Setup)?;
    let signals = if options.handle_signals {
        Some(watch_signals(tx).map_err(RunError::Setup)?)
    } else {
        None
    };

    let mut live: HashMap<i32, Live> = HashMap::new();
    let mut pid_of: Vec<Option<i32>> = vec![None; jobs.len()];
    let mut timers: BinaryHeap<Reverse<(Instant, Timer)>> = BinaryHeap::new();
    let mut actions = Vec::new();
    let mut outcome = None;
    let mut cancels = 0;
    scheduler.start(&mut actions);
    loop {
        let mut i = 0;
        while i < actions.len() {
            match actions[i].clone() {
                Action::Launch { job, attempt } => {
                    let env = finally_env(&scheduler, &names, jobs[job]);
                    let log = options
                        .logs_dir
                        .join(format!("{}.{attempt}.log", names[job]));
                    let now = SystemTime::now();
                    let rec = &mut record.jobs[job];
                    rec.status = Status::Running;
                    rec.started_at.get_or_insert(now);
                    rec.attempts.push(Attempt {
                        attempt,
                        status: Status::Running,
                        exit_code: None,
                        reason: None,
                        started_at: now,
                        finished_at: None,
                        log: None,
                    });
                    match spawn(jobs[job], names[job], attempt, &options.run_id, &env) {
                        Ok((pid, output)) => {
                            reaper.spawned();
                            live.insert(
                                pid,
                                Live {
                                    job,
                                    attempt,
                                    timed_out: false,
                                    cancelled: false,
                                    output,
                                    log,
                                },
                            );
                            pid_of[job] = Some(pid);
                            if let Some(t) = jobs[job].timeout {
                                timers.push(Reverse((
                                    Instant::now() + t.0.as_std(),
                                    Timer::Timeout(job, attempt),
                                )));
                            }
                            observer.job_started(&record, job);
                        }
                        Err(e) => {
                            let reason = format!("could not start `sh`: {e}");
                            end_attempt(&mut record, job, Status::Errored, None, Some(reason));
                            scheduler.attempt_ended(job, AttemptEnd::Errored, &mut actions);
                            settle_status(&mut record, &scheduler, job);
                            observer.job_updated(&record, job);
                        }
                    }
                }
                Action::Retry { job, delay, .. } => {
                    timers.push(Reverse((Instant::now() + delay, Timer::RetryDue(job))));
                    observer.retrying(&record, job, delay);
                }
                Action::Kill { job } => {
                    if let Some(pid) = pid_of[job] {
                        if let Some(l) = live.get_mut(&pid) {
                            l.cancelled = true;
                            kill_group(pid, libc::SIGTERM);
                            timers.push(Reverse((
                                Instant::now() + KILL_GRACE,
                                Timer::Escalate(job, l.attempt),
                            )));
                        }
                    }
                }
                Action::Decided { job, outcome } => {
                    let rec = &mut record.jobs[job];
                    rec.status = outcome.into();
                    rec.finished_at = Some(SystemTime::now());
                    rec.exit_code = None;
                    let when = if rec.attempts.is_empty() {
                        "before it started"
                    } else {
                        "before its next attempt"
                    };
                    rec.reason = Some(match outcome {
                        Outcome::Skipped => "its condition was false".to_string(),
                        _ if cancels > 0 => format!("the run was cancelled {when}"),
                        _ => format!("fail_fast stopped the run after a failure, {when}"),
                    });
                    observer.job_updated(&record, job);
                }
                Action::Finished(o) => outcome = Some(o),
            }
            i += 1;
        }
        actions.clear();
        if let Some(o) = outcome {
            record.status = o.into();
            record.finished_at = Some(SystemTime::now());
            break;
        }
        // Wait for an exit, a signal or the next timer.
        let msg = match timers.peek() {
            Some(Reverse((at, _))) => {
                let now = Instant::now();
                if *at <= now {
                    None
                } else {
                    match rx.recv_timeout(*at - now) {
                        Ok(m) => Some(m),
                        Err(mpsc::RecvTimeoutError::Timeout) => None,
                        Err(mpsc::RecvTimeoutError::Disconnected) => break,
                    }
                }
            }
            None => match rx.recv() {
                Ok(m) => Some(m),
                Err(_) => break,
            },
        };
        match msg {
            Some(Msg::Exited { pid, status }) => {
                let Some(l) = live.remove(&pid) else { continue };
                // Whatever the script left running in its group goes with it.
                kill_group(pid, libc::SIGKILL);
                pid_of[l.job] = None;
                let (end, st, code, reason) = interpret(status, &l, jobs[l.job]);
                end_attempt(&mut record, l.job, st, code, reason);
                let kept = keep_output(l.output, &l.log);
                if let Some(a) = record.jobs[l.job].attempts.last_mut() {
                    a.log = kept.map(|p| p.display().to_string());
                }
                scheduler.attempt_ended(l.job, end, &mut actions);
                settle_status(&mut record, &scheduler, l.job);
                observer.job_updated(&record, l.job);
            }
            Some(Msg::Signal) => {
                cancels += 1;
                observer.cancelling(&record, cancels > 1);
                scheduler.cancel(&mut actions);
            }
            None => {
                let Some(Reverse((_, timer))) = timers.pop() else {
                    continue;
                };
                match timer {
                    Timer::RetryDue(job) => scheduler.retry_due(job, &mut actions),
                    Timer::Timeout(job, attempt) | Timer::Escalate(job, attempt) => {
                        let Some(pid) = pid_of[job] else { continue };
                        let Some(l) = live.get_mut(&pid) else {
                            continue;
                        };
                        if l.attempt != attempt {
                            continue;
                        }
                        if let Timer::Timeout(..) = timer {
                            l.timed_out = true;
                            kill_group(pid, libc::SIGTERM);
                            timers.push(Reverse((
                                Instant::now() + KILL_GRACE,
                                Timer::Escalate(job, attempt),
                            )));
                        } else {
                            kill_group(pid, libc::SIGKILL);
                        }
                    }
                }
            }
        }
    }
    // Nothing should be left; if the loop ended early, leave no process behind.
    for pid in live.keys() {
        kill_group(*pid, libc::SIGKILL);
    }
    drop(signals);
    reaper.stop();
    Ok(record)
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
    };
    let failed: Vec<&str> = s.failed_jobs().iter().map(|&j| names[j]).collect();
    vec![
        ("CHAINR_RUN_STATUS", status.to_string()),
        ("CHAINR_FAILED_JOBS", failed.join(",")),
    ]
}

/// Writes an attempt's output to its log file; `None` when it printed nothing or the file could
/// not be written (the run goes on: output is not worth failing a job for).
fn keep_output(mut output: File, log: &std::path::Path) -> Option<PathBuf> {
    use std::io::{Seek, SeekFrom};
    let len = output.metadata().ok()?.len();
    if len == 0 {
        return None;
    }
    output.seek(SeekFrom::Start(0)).ok()?;
    let mut file = File::create(log).ok()?;
    std::io::copy(&mut output, &mut file).ok()?;
    Some(log.to_path_buf())
}

/// An anonymous in-memory file for an attempt's output.
fn memfd() -> std::io::Result<File> {
    use std::os::fd::FromRawFd;
    // SAFETY: memfd_create takes a NUL-terminated name and flags, and returns a new descriptor
    // that nothing else owns.
    let fd = unsafe { libc::memfd_create(c"chainr-output".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` is a valid descriptor we own.
    Ok(unsafe { File::from_raw_fd(fd) })
}

fn spawn(
    job: &ir::Job,
    name: &str,
    attempt: u32,
    run_id: &str,
    extra: &[(&'static str, String)],
) -> std::io::Result<(i32, File)> {
    let output = memfd()?;
    let out = output.try_clone()?;
    let err = output.try_clone()?;
    // An absolute path: `sh` alone would make the child search PATH (a failed exec per entry).
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c")
        .arg(&job.run)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0)
        .envs(&job.env)
        .env("CHAINR_RUN_ID", run_id)
        .env("CHAINR_JOB", name)
        .env("CHAINR_ATTEMPT", attempt.to_string());
    // Only finally jobs see the run's status; a value inherited from the caller (a finally job
    // of another run, say) would mislead the others.
    cmd.env_remove("CHAINR_RUN_STATUS")
        .env_remove("CHAINR_FAILED_JOBS");
    for (k, v) in extra {
        cmd.env(k, v);
    }
    let child = cmd.spawn()?;
    // The reaper collects the exit; the `Child` handle is not waited on.
    Ok((child.id() as i32, output))
}

fn interpret(
    status: i32,
    l: &Live,
    job: &ir::Job,
) -> (AttemptEnd, Status, Option<i32>, Option<String>) {
    let code = libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status));
    let signal = libc::WIFSIGNALED(status).then(|| libc::WTERMSIG(status));
    if l.cancelled {
        return (
            AttemptEnd::Cancelled,
            Status::Cancelled,
            code,
            Some("cancelled".into()),
        );
    }
    if l.timed_out {
        let limit = job.timeout.map(|t| t.0.to_string()).unwrap_or_default();
        return (
            AttemptEnd::Failed,
            Status::Failed,
            code,
            Some(format!("timed out after {limit}")),
        );
    }
    match (code, signal) {
        (Some(0), _) => (AttemptEnd::Succeeded, Status::Successful, Some(0), None),
        (Some(c), _) => (
            AttemptEnd::Failed,
            Status::Failed,
            Some(c),
            Some(format!("exit code {c}")),
        ),
        (None, Some(s)) => (
            AttemptEnd::Failed,
            Status::Failed,
            None,
            Some(format!("killed by signal {s}")),
        ),
        _ => (
            AttemptEnd::Failed,
            Status::Failed,
            None,
            Some("ended abnormally".into()),
        ),
    }
}

/// A failed attempt with a retry to come leaves the job pending, not failed.
fn settle_status(run: &mut Run, s: &Scheduler, job: JobId) {
    if s.state(job) == crate::scheduler::JobState::Backoff {
        run.jobs[job].status = Status::Pending;
        run.jobs[job].finished_at = None;
    }
}

fn end_attempt(
    run: &mut Run,
    job: JobId,
    status: Status,
    code: Option<i32>,
    reason: Option<String>,
) {
    let now = SystemTime::now();
    let rec = &mut run.jobs[job];
    if let Some(a) = rec.attempts.last_mut() {
        a.status = status;
        a.exit_code = code;
        a.reason = reason.clone();
        a.finished_at = Some(now);
    }
    rec.exit_code = code;
    rec.reason = reason;
    rec.status = status;
    rec.finished_at = Some(now);
}

fn kill_group(pid: i32, signal: i32) {
    // SAFETY: kill(2) with a negative pid signals a process group; no memory is involved.
    unsafe {
        libc::kill(-pid, signal);
    }
}

/// The one thread that collects exits of child processes (`waitpid(-1)`), so that no thread is
/// spent per job. It blocks in `waitpid` only while children exist.
struct Reaper {
    spawned: mpsc::Sender<()>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Reaper {
    fn start(out: mpsc::Sender<Msg>) -> std::io::Result<Reaper> {
        let (spawned, rx) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("chainr-reaper".into())
            .spawn(move || {
                // Children spawned minus children reaped; below zero briefly when an exit is
                // collected before its spawn message arrives.
                let mut live: i64 = 0;
                loop {
                    while let Ok(()) = rx.try_recv() {
                        live += 1;
                    }
                    if live <= 0 {
                        match rx.recv() {
                            Ok(()) => live += 1,
                            Err(_) => return,
                        }
                        continue;
                    }
                    let mut status = 0;
                    // SAFETY: waitpid writes the status into a local integer.
                    let pid = unsafe { libc::waitpid(-1, &mut status, 0) };
                    if pid > 0 {
                        live -= 1;
                        if out.send(Msg::Exited { pid, status }).is_err() {
                            return;
                        }
                    } else if std::io::Error::last_os_error().raw_os_error() == Some(libc::ECHILD) {
                        live = 0;
                    }
                }
            })?;
        Ok(Reaper {
            spawned,
            thread: Some(thread),
        })
    }

    fn spawned(&self) {
        let _ = self.spawned.send(());
    }

    fn stop(mut self) {
        // Closing the channel ends the thread once it has no child to wait for.
        let (dead, _) = mpsc::channel();
        self.spawned = dead;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct SignalWatch {
    handle: signal_hook::iterator::Handle,
    thread: Option<std::thread::JoinHandle<()>>,
}

fn watch_signals(out: mpsc::Sender<Msg>) -> std::io::Result<SignalWatch> {
    let mut signals = signal_hook::iterator::Signals::new([libc::SIGINT, libc::SIGTERM])?;
    let handle = signals.handle();
    let thread = std::thread::Builder::new()
        .name("chainr-signals".into())
        .spawn(move || {
            for s in signals.forever() {
                let _ = s;
                if out.send(Msg::Signal).is_err() {
                    return;
                }
            }
        })?;
    Ok(SignalWatch {
        handle,
        thread: Some(thread),
    })
}

impl Drop for SignalWatch {
    fn drop(&mut self) {
        self.handle.close();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
