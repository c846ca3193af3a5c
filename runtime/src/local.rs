//! The local executor and its driver: runs a pipeline's jobs as child processes on this machine.
//!
//! Each attempt is `sh -c RUN` in a process group of its own, with the caller's environment plus
//! the job's `env` and `CHAINR_RUN_ID`, `CHAINR_JOB`, `CHAINR_ATTEMPT`; its stdout and stderr go
//! straight into one in-memory file (a memfd: no copying, no per-line syscalls), which becomes
//! `JOB.ATTEMPT.log` in the log directory when the attempt ends (no file when it printed nothing:
//! creating files is the slowest part of running tiny jobs). The driver waits in one place for
//! everything: a pidfd per child and the signal pipe in one epoll set, with the next timer
//! (timeouts, retry backoff) as its timeout; an exit wakes it directly, with no thread between. A timeout or a cancel kills the attempt's whole process group, and
//! every group is killed when its attempt ends, so no process outlives its job.

use crate::record::{Run, Status};
use crate::scheduler::{Action, AttemptEnd, JobId, Options, Outcome, RunOutcome, Scheduler};
use chainr_compiler::ir;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::fs::File;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
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
    /// The signal handler or the event set (epoll) could not be set up.
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
    // Each running attempt holds descriptors (its output and its pidfd, two more while it
    // starts): never run more at once than the open-file limit allows, or the extra ones would
    // fail to start instead of waiting for a slot.
    let capacity = descriptor_capacity();
    let mut scheduler = Scheduler::new(
        pipeline,
        Options {
            concurrency: Some(options.concurrency.map_or(capacity, |c| c.min(capacity))),
        },
    )?;
    std::fs::create_dir_all(&options.logs_dir).map_err(|source| RunError::Logs {
        path: options.logs_dir.display().to_string(),
        source,
    })?;
    let names: Vec<&str> = pipeline.jobs.keys().map(String::as_str).collect();
    let jobs: Vec<&ir::Job> = pipeline.jobs.values().collect();
    let mut record = Run::starting(options.run_id.clone(), pipeline);

    let mut events = Events::new(options.handle_signals).map_err(RunError::Setup)?;

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
                    let log = options.logs_dir.join(log_file_name(names[job], attempt));
                    let now = SystemTime::now();
                    record.jobs[job].start_attempt(attempt, now);
                    match spawn(
                        jobs[job],
                        names[job],
                        attempt,
                        &options.run_id,
                        &env,
                        &mut events,
                    ) {
                        Ok((pid, output)) => {
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
                    record_decided(&mut record, job, outcome, cancels > 0);
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
        let timeout = timers
            .peek()
            .map(|Reverse((at, _))| at.saturating_duration_since(Instant::now()));
        let msg = match events.wait(timeout) {
            Ok(m) => m,
            Err(e) => {
                for pid in live.keys() {
                    kill_group(*pid, libc::SIGKILL);
                }
                return Err(RunError::Setup(e));
            }
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
                    match kept {
                        Ok(path) => a.log = path.map(|p| p.display().to_string()),
                        Err(e) => {
                            // The job's result stands; say why its output is missing.
                            let note =
                                format!("its output could not be kept in {}: {e}", l.log.display());
                            a.reason = Some(match a.reason.take() {
                                Some(r) => format!("{r}; {note}"),
                                None => note,
                            });
                        }
                    }
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
                // A wait ends early when a signal interrupts it (Ctrl-Z then `fg`, say): only a
                // timer that is due fires.
                match timers.peek() {
                    Some(Reverse((at, _))) if *at <= Instant::now() => {}
                    _ => continue,
                }
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
    Ok(record)
}

/// How many attempts can run at once within this process's open-file limit.
fn descriptor_capacity() -> usize {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we pass.
    let ok = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0;
    if !ok || limit.rlim_cur == libc::RLIM_INFINITY {
        return usize::MAX;
    }
    // Keep some for ourselves (the log files, the signal pipe, the epoll set, stdio).
    ((limit.rlim_cur as usize).saturating_sub(64) / 4).max(1)
}

/// `CHAINR_RUN_STATUS` and `CHAINR_FAILED_JOBS` for `finally` jobs.
pub(crate) fn finally_env(
    s: &Scheduler,
    names: &[&str],
    job: &ir::Job,
) -> Vec<(&'static str, String)> {
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
fn keep_output(mut output: File, log: &std::path::Path) -> std::io::Result<Option<PathBuf>> {
    use std::io::{Seek, SeekFrom};
    if output.metadata()?.len() == 0 {
        return Ok(None);
    }
    output.seek(SeekFrom::Start(0))?;
    let mut file = File::create(log)?;
    std::io::copy(&mut output, &mut file)?;
    Ok(Some(log.to_path_buf()))
}

/// `JOB.ATTEMPT.log`, with a very long job name shortened (and made unique by a hash) to fit a
/// file name's 255 bytes.
pub(crate) fn log_file_name(name: &str, attempt: u32) -> String {
    if name.len() <= 200 {
        return format!("{name}.{attempt}.log");
    }
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    name.hash(&mut h);
    let mut cut = 180;
    while !name.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}-{:016x}.{attempt}.log", &name[..cut], h.finish())
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
    events: &mut Events,
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
    let pid = child.id() as i32;
    // `events` collects the exit; the `Child` handle is not waited on.
    if let Err(e) = events.watch(pid) {
        kill_group(pid, libc::SIGKILL);
        return Err(e);
    }
    Ok((pid, output))
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

/// Records a job decided without running: skipped, or cancelled (by the user or by fail_fast).
pub(crate) fn record_decided(
    record: &mut Run,
    job: JobId,
    outcome: Outcome,
    cancelled_by_user: bool,
) {
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
        _ if cancelled_by_user => format!("the run was cancelled {when}"),
        _ => format!("fail_fast stopped the run after a failure, {when}"),
    });
}

/// A failed attempt with a retry to come leaves the job pending, not failed.
pub(crate) fn settle_status(run: &mut Run, s: &Scheduler, job: JobId) {
    if s.state(job) == crate::scheduler::JobState::Backoff {
        run.jobs[job].status = Status::Pending;
        run.jobs[job].finished_at = None;
    }
}

pub(crate) fn end_attempt(
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

/// Where the driver waits: a pidfd per running child and the signal pipe, in one epoll set.
struct Events {
    epoll: OwnedFd,
    /// The pidfd of each watched child, by pid; closing it removes it from the set.
    children: HashMap<i32, OwnedFd>,
    signals: Option<(UnixStream, Vec<signal_hook::SigId>)>,
    queue: std::collections::VecDeque<Msg>,
}

/// The epoll key of the signal pipe (pids are positive).
const SIGNAL_KEY: u64 = u64::MAX;

impl Events {
    fn new(handle_signals: bool) -> std::io::Result<Events> {
        // SAFETY: epoll_create1 returns a new descriptor or -1.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: `fd` is a new descriptor that nothing else owns.
        let epoll = unsafe { OwnedFd::from_raw_fd(fd) };
        let mut events = Events {
            epoll,
            children: HashMap::new(),
            signals: None,
            queue: std::collections::VecDeque::new(),
        };
        if handle_signals {
            let (read, write) = UnixStream::pair()?;
            read.set_nonblocking(true)?;
            let mut ids = Vec::new();
            for sig in [libc::SIGINT, libc::SIGTERM] {
                ids.push(signal_hook::low_level::pipe::register(
                    sig,
                    write.try_clone()?,
                )?);
            }
            events.add(read.as_raw_fd(), SIGNAL_KEY)?;
            events.signals = Some((read, ids));
        }
        Ok(events)
    }

    fn add(&self, fd: RawFd, key: u64) -> std::io::Result<()> {
        let mut ev = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: key,
        };
        // SAFETY: adds a valid descriptor to our epoll set; `ev` is read during the call only.
        let rc =
            unsafe { libc::epoll_ctl(self.epoll.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut ev) };
        if rc < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }

    /// Watches a child: its pidfd becomes readable when it exits.
    fn watch(&mut self, pid: i32) -> std::io::Result<()> {
        // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1; the child
        // is ours and not reaped yet, so the pid cannot have been reused.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) } as RawFd;
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: `fd` is a new descriptor that nothing else owns.
        let owned = unsafe { OwnedFd::from_raw_fd(fd) };
        self.add(owned.as_raw_fd(), pid as u64)?;
        self.children.insert(pid, owned);
        Ok(())
    }

    /// The next exit or signal, or `None` when `timeout` passes first.
    fn wait(&mut self, timeout: Option<Duration>) -> std::io::Result<Option<Msg>> {
        if let Some(m) = self.queue.pop_front() {
            return Ok(Some(m));
        }
        let ms = match timeout {
            // Round up, so that a timer is never found early and waited for again.
            Some(t) => t.as_micros().div_ceil(1000).min(i32::MAX as u128) as i32,
            None => -1,
        };
        let mut ready = [libc::epoll_event { events: 0, u64: 0 }; 64];
        // SAFETY: epoll_wait writes at most `ready.len()` events into `ready`.
        let n = unsafe {
            libc::epoll_wait(
                self.epoll.as_raw_fd(),
                ready.as_mut_ptr(),
                ready.len() as i32,
                ms,
            )
        };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            return if e.kind() == std::io::ErrorKind::Interrupted {
                Ok(None)
            } else {
                Err(e)
            };
        }
        for ev in &ready[..n as usize] {
            let key = ev.u64;
            if key == SIGNAL_KEY {
                if let Some((read, _)) = &mut self.signals {
                    let mut buf = [0u8; 16];
                    while let Ok(k) = read.read(&mut buf) {
                        if k == 0 {
                            break;
                        }
                        self.queue.extend((0..k).map(|_| Msg::Signal));
                    }
                }
                continue;
            }
            let pid = key as i32;
            let mut status = 0;
            // SAFETY: waitpid writes the status into a local integer.
            if unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) } == pid {
                self.children.remove(&pid);
                self.queue.push_back(Msg::Exited { pid, status });
            }
        }
        Ok(self.queue.pop_front())
    }
}

impl Drop for Events {
    fn drop(&mut self) {
        if let Some((_, ids)) = self.signals.take() {
            for id in ids {
                signal_hook::low_level::unregister(id);
            }
        }
    }
}
