//! The local executor on Linux.

use chainr_runtime::event::{AttemptResult, Reason};
use chainr_runtime::scheduler::AttemptEnd;
use chainr_runtime::{AttemptSpec, ExecEvent, Executor, JobId};
use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::FileExt;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::Duration;
use tokio::io::unix::AsyncFd;

/// How long a stopped attempt gets to exit after SIGTERM before SIGKILL.
const KILL_GRACE: Duration = Duration::from_secs(3);
/// Output is passed on in pieces of at most this size.
const CHUNK: usize = 1 << 20;

/// How to run locally.
#[derive(Clone, Copy, Debug)]
pub struct LocalOptions {
    /// How often the output of running attempts is passed on (`None`: only when they end).
    pub follow: Option<Duration>,
}

impl Default for LocalOptions {
    fn default() -> LocalOptions {
        LocalOptions {
            follow: Some(Duration::from_millis(250)),
        }
    }
}

struct Live {
    job: JobId,
    attempt: u32,
    /// The attempt's output so far, and how much of it was passed on.
    output: File,
    sent: u64,
}

/// An attempt that exited, whose remaining output is being passed on before its end.
struct Exited {
    live: Live,
    status: i32,
}

pub struct LocalExecutor {
    /// One epoll set over the children's pidfds, registered with tokio.
    epoll: AsyncFd<OwnedFd>,
    pidfds: HashMap<i32, OwnedFd>,
    live: HashMap<i32, Live>,
    pid_of: HashMap<JobId, i32>,
    exited: VecDeque<Exited>,
    follow: Option<tokio::time::Interval>,
}

/// How many attempts can run at once within this process's open-file limit: each running
/// attempt holds descriptors (its output and its pidfd, two more while it starts), and one that
/// cannot get them fails to start instead of waiting for a slot.
pub fn max_concurrency() -> usize {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we pass.
    let ok = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0;
    if !ok || limit.rlim_cur == libc::RLIM_INFINITY {
        return usize::MAX;
    }
    // Keep some for the rest of the process (log files, the epoll set, stdio, sockets).
    ((limit.rlim_cur as usize).saturating_sub(64) / 4).max(1)
}

impl LocalExecutor {
    /// An executor; call within a tokio runtime with IO enabled.
    pub fn new(options: LocalOptions) -> std::io::Result<LocalExecutor> {
        // SAFETY: epoll_create1 returns a new descriptor or -1.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: `fd` is a new descriptor that nothing else owns.
        let epoll = unsafe { OwnedFd::from_raw_fd(fd) };
        let follow = options.follow.map(|every| {
            let mut i = tokio::time::interval(every);
            i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            i
        });
        // SAFETY: the OwnedFd is moved into the AsyncFd, which owns it for its whole life, so
        // the descriptor stays open and the same.
        let epoll = unsafe {
            AsyncFd::register_with_interest(epoll, tokio::io::Interest::READABLE)
                .map_err(std::io::Error::from)?
        };
        Ok(LocalExecutor {
            epoll,
            pidfds: HashMap::new(),
            live: HashMap::new(),
            pid_of: HashMap::new(),
            exited: VecDeque::new(),
            follow,
        })
    }

    fn spawn(&mut self, a: &AttemptSpec<'_>) -> std::io::Result<i32> {
        let output = memfd()?;
        let out = output.try_clone()?;
        let err = output.try_clone()?;
        // An absolute path: `sh` alone would make the child search PATH (a failed exec per entry).
        let mut cmd = Command::new("/bin/sh");
        cmd.arg("-c")
            .arg(&a.spec.run)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0)
            .envs(&a.spec.env)
            .env("CHAINR_RUN_ID", a.run_id)
            .env("CHAINR_JOB", a.name)
            .env("CHAINR_ATTEMPT", a.attempt.to_string());
        // Only finally jobs see the run's status; a value inherited from the caller (a finally
        // job of another run, say) would mislead the others.
        cmd.env_remove("CHAINR_RUN_STATUS")
            .env_remove("CHAINR_FAILED_JOBS");
        for (k, v) in a.extra_env {
            cmd.env(k, v);
        }
        let child = cmd.spawn()?;
        let pid = child.id() as i32;
        // The pidfd tells of the exit; the `Child` handle is not waited on.
        if let Err(e) = self.watch(pid) {
            kill_group(pid, libc::SIGKILL);
            let mut child = child;
            let _ = child.wait();
            return Err(e);
        }
        self.live.insert(
            pid,
            Live {
                job: a.job,
                attempt: a.attempt,
                output,
                sent: 0,
            },
        );
        self.pid_of.insert(a.job, pid);
        Ok(pid)
    }

    /// Adds a child's pidfd to the epoll set: it becomes readable when the child exits.
    fn watch(&mut self, pid: i32) -> std::io::Result<()> {
        // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1; the child
        // is ours and not reaped yet, so the pid cannot have been reused.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) } as RawFd;
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: `fd` is a new descriptor that nothing else owns.
        let owned = unsafe { OwnedFd::from_raw_fd(fd) };
        let mut ev = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: pid as u64,
        };
        // SAFETY: adds a valid descriptor to our epoll set; `ev` is read during the call only.
        let rc = unsafe {
            libc::epoll_ctl(
                self.epoll.get_ref().as_raw_fd(),
                libc::EPOLL_CTL_ADD,
                owned.as_raw_fd(),
                &mut ev,
            )
        };
        if rc < 0 {
            return Err(std::io::Error::last_os_error());
        }
        self.pidfds.insert(pid, owned);
        Ok(())
    }

    /// Collects every exit the epoll set reports now, without waiting.
    fn reap(&mut self) -> std::io::Result<()> {
        let mut ready = [libc::epoll_event { events: 0, u64: 0 }; 64];
        loop {
            // SAFETY: epoll_wait writes at most `ready.len()` events into `ready`.
            let n = unsafe {
                libc::epoll_wait(
                    self.epoll.get_ref().as_raw_fd(),
                    ready.as_mut_ptr(),
                    ready.len() as i32,
                    0,
                )
            };
            if n < 0 {
                let e = std::io::Error::last_os_error();
                if e.kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            for ev in &ready[..n as usize] {
                let pid = ev.u64 as i32;
                // Whatever the script left running in its group goes with it; killed while the
                // exited leader, not reaped yet, still holds the group's number.
                kill_group(pid, libc::SIGKILL);
                let mut status = 0;
                // SAFETY: waitpid writes the status into a local integer.
                let got = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
                if got == 0 {
                    continue;
                }
                if got != pid {
                    // Reaped by someone else (SIGCHLD ignored, say): the exit status is lost,
                    // but the attempt has ended.
                    status = -1;
                }
                // Closing the pidfd takes it out of the epoll set.
                self.pidfds.remove(&pid);
                if let Some(live) = self.live.remove(&pid) {
                    if self.pid_of.get(&live.job) == Some(&pid) {
                        self.pid_of.remove(&live.job);
                    }
                    self.exited.push_back(Exited { live, status });
                }
            }
            if (n as usize) < ready.len() {
                return Ok(());
            }
        }
    }

    /// The next piece of output of running attempts, if any is waiting.
    fn pending_output(&mut self) -> Option<ExecEvent> {
        for live in self.live.values_mut() {
            if let Some(bytes) = next_chunk(live) {
                return Some(ExecEvent::Output {
                    job: live.job,
                    attempt: live.attempt,
                    bytes,
                });
            }
        }
        None
    }

    /// What an exited attempt still has to say: its output, then its end.
    fn drain_exited(&mut self) -> Option<ExecEvent> {
        let front = self.exited.front_mut()?;
        if let Some(bytes) = next_chunk(&mut front.live) {
            return Some(ExecEvent::Output {
                job: front.live.job,
                attempt: front.live.attempt,
                bytes,
            });
        }
        let done = self.exited.pop_front()?;
        Some(ExecEvent::Ended {
            job: done.live.job,
            attempt: done.live.attempt,
            result: interpret(done.status),
        })
    }
}

impl Executor for LocalExecutor {
    fn kill_grace(&self) -> Option<Duration> {
        Some(KILL_GRACE)
    }

    async fn start(&mut self, a: AttemptSpec<'_>) -> Result<Option<String>, String> {
        // An earlier start of this attempt (by a worker that stopped) must not run alongside
        // this one: its process group goes first.
        kill_earlier_start(&a).await;
        match self.spawn(&a) {
            Ok(pid) => Ok(Some(handle_of(pid))),
            Err(e) => Err(format!("could not start `sh`: {e}")),
        }
    }

    async fn abandon(&mut self, a: AttemptSpec<'_>) {
        kill_earlier_start(&a).await;
    }

    async fn stop(&mut self, job: JobId, attempt: u32, force: bool) {
        let Some(&pid) = self.pid_of.get(&job) else {
            return;
        };
        if self.live.get(&pid).is_some_and(|l| l.attempt == attempt) {
            kill_group(pid, if force { libc::SIGKILL } else { libc::SIGTERM });
        }
    }

    async fn next(&mut self) -> Option<ExecEvent> {
        loop {
            if let Some(event) = self.drain_exited() {
                return Some(event);
            }
            let follow = self.follow.as_mut().filter(|_| !self.live.is_empty());
            let following = follow.is_some();
            tokio::select! {
                ready = self.epoll.readable() => {
                    // Readiness is cleared before reading the set: an exit that comes after
                    // the read raises it again.
                    let Ok(mut guard) = ready else { return None };
                    guard.clear_ready();
                    drop(guard);
                    if self.reap().is_err() {
                        return None;
                    }
                }
                _ = tick(follow), if following => {
                    if let Some(event) = self.pending_output() {
                        return Some(event);
                    }
                }
            }
        }
    }
}

async fn tick(interval: Option<&mut tokio::time::Interval>) {
    match interval {
        Some(i) => {
            i.tick().await;
        }
        None => std::future::pending().await,
    }
}

impl Drop for LocalExecutor {
    fn drop(&mut self) {
        // Nothing should be left; if the run ended early, leave no process behind, and no
        // zombie either.
        for pid in self.live.keys() {
            kill_group(*pid, libc::SIGKILL);
            let mut status = 0;
            // SAFETY: waitpid writes the status into a local integer; the child is ours.
            unsafe { libc::waitpid(*pid, &mut status, 0) };
        }
    }
}

/// This boot of this machine (`/proc/sys/kernel/random/boot_id`), read once.
fn boot_id() -> &'static str {
    static BOOT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    BOOT.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
            .map(|s| s.trim().to_string())
            .unwrap_or_default()
    })
}

/// How an attempt's process group is found again: its leader's pid and this machine's boot (a
/// handle from another boot names processes that are gone). Before anything is killed by it, the
/// leader's environment must carry the attempt's identity, so a reused pid is never taken for it.
fn handle_of(pid: i32) -> String {
    format!("{pid}:{}", boot_id())
}

/// Kills what an earlier start of a resumed attempt left running: the group its handle names,
/// or, when the start was not recorded, every group whose leader carries the attempt's identity
/// (`CHAINR_RUN_ID`, `CHAINR_JOB`, `CHAINR_ATTEMPT` in its environment), and waits until they are
/// gone. A start on another machine cannot be reached from here.
async fn kill_earlier_start(a: &AttemptSpec<'_>) {
    let identity = identity(a.run_id, a.name, a.attempt);
    let leaders = match a.resume {
        None => return,
        Some(Some(handle)) => {
            let named = handle
                .split_once(':')
                .filter(|(_, boot)| *boot == boot_id())
                .and_then(|(pid, _)| pid.parse::<i32>().ok())
                .filter(|pid| *pid > 1 && leads_attempt(*pid, &identity));
            named.into_iter().collect()
        }
        Some(None) => processes_of(&identity),
    };
    for pid in &leaders {
        kill_group(*pid, libc::SIGKILL);
    }
    for _ in 0..100 {
        if !leaders.iter().any(|pid| group_alive(*pid)) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The environment entries that name an attempt.
fn identity(run_id: &str, job: &str, attempt: u32) -> [String; 3] {
    [
        format!("CHAINR_RUN_ID={run_id}"),
        format!("CHAINR_JOB={job}"),
        format!("CHAINR_ATTEMPT={attempt}"),
    ]
}

/// Whether `pid` leads its process group and its environment names the attempt.
fn leads_attempt(pid: i32, identity: &[String; 3]) -> bool {
    // SAFETY: getpgid only reads the process group of `pid`.
    if unsafe { libc::getpgid(pid) } != pid {
        return false;
    }
    let Ok(environ) = std::fs::read(format!("/proc/{pid}/environ")) else {
        return false;
    };
    let vars: Vec<&[u8]> = environ.split(|b| *b == 0).collect();
    identity.iter().all(|w| vars.contains(&w.as_bytes()))
}

/// The group leaders of this machine whose environment names the attempt.
fn processes_of(identity: &[String; 3]) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_string_lossy().parse::<i32>().ok())
        .filter(|pid| leads_attempt(*pid, identity))
        .collect()
}

/// Whether process group `pgid` has a member that is not a zombie (a zombie runs nothing; its
/// parent, not us, reaps it).
fn group_alive(pgid: i32) -> bool {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return false;
    };
    entries.flatten().any(|entry| {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            return false;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            return false;
        };
        // After the command: state, ppid, pgrp.
        let fields: Vec<&str> = stat
            .rsplit_once(") ")
            .map_or(Vec::new(), |(_, rest)| rest.splitn(4, ' ').collect());
        fields.len() > 2 && fields[0] != "Z" && fields[2] == pgid.to_string()
    })
}

/// Up to `CHUNK` bytes of output not passed on yet.
fn next_chunk(live: &mut Live) -> Option<Vec<u8>> {
    let size = live.output.metadata().ok()?.len();
    if size <= live.sent {
        return None;
    }
    let want = ((size - live.sent) as usize).min(CHUNK);
    let mut buf = vec![0u8; want];
    let n = live.output.read_at(&mut buf, live.sent).ok()?;
    if n == 0 {
        return None;
    }
    buf.truncate(n);
    live.sent += n as u64;
    Some(buf)
}

/// The attempt's result from its wait status.
fn interpret(status: i32) -> AttemptResult {
    if status == -1 {
        return AttemptResult::new(AttemptEnd::Failed, None, Some(Reason::Abnormal));
    }
    if libc::WIFEXITED(status) {
        return AttemptResult::exited(libc::WEXITSTATUS(status));
    }
    if libc::WIFSIGNALED(status) {
        let s = libc::WTERMSIG(status);
        return AttemptResult::new(AttemptEnd::Failed, None, Some(Reason::Signal(s)));
    }
    AttemptResult::new(AttemptEnd::Failed, None, Some(Reason::Abnormal))
}

/// An anonymous in-memory file for an attempt's output.
fn memfd() -> std::io::Result<File> {
    // SAFETY: memfd_create takes a NUL-terminated name and flags, and returns a new descriptor
    // that nothing else owns.
    let fd = unsafe { libc::memfd_create(c"chainr-output".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` is a valid descriptor we own.
    Ok(unsafe { File::from_raw_fd(fd) })
}

fn kill_group(pid: i32, signal: i32) {
    // SAFETY: kill(2) with a negative pid signals a process group; no memory is involved.
    unsafe {
        libc::kill(-pid, signal);
    }
}
