//! The local executor: runs attempts as child processes on this machine (Linux only: it needs
//! process groups, pidfds and memfds).
//!
//! Each attempt is `/bin/sh -c RUN` in a process group of its own, with the caller's environment
//! plus the job's `env` and `CHAINR_RUN_ID`, `CHAINR_JOB`, `CHAINR_ATTEMPT`. Its stdout and stderr
//! go straight into one in-memory file (a memfd: no pipe to pump, no per-line syscalls); what it
//! wrote is passed on as output while it runs (every `follow` interval) and when it ends. The
//! executor waits in one place: a pidfd per child in one epoll set, itself registered with
//! tokio, so an exit wakes the driver directly. Every attempt's whole group is killed when the
//! attempt ends, so no process outlives its job.

#[cfg(target_os = "linux")]
mod linux;

#[cfg(target_os = "linux")]
pub use linux::{max_concurrency, LocalExecutor, LocalOptions};

/// Why the local executor cannot run here.
#[derive(Debug)]
pub struct Unsupported;

impl std::fmt::Display for Unsupported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(
            "running jobs on this machine needs Linux (process groups, pidfds and memfds); \
             use --kube to run them on Kubernetes",
        )
    }
}

impl std::error::Error for Unsupported {}

#[cfg(not(target_os = "linux"))]
mod elsewhere {
    use super::Unsupported;
    use chainr_runtime::{AttemptSpec, ExecEvent, Executor, JobId};
    use std::time::Duration;

    /// How to run locally (accepted everywhere, usable only on Linux).
    #[derive(Clone, Copy, Debug, Default)]
    pub struct LocalOptions {
        pub follow: Option<Duration>,
    }

    /// Not available on this system: [`LocalExecutor::new`] says why.
    pub enum LocalExecutor {}

    impl LocalExecutor {
        pub fn new(_options: LocalOptions) -> Result<LocalExecutor, Unsupported> {
            Err(Unsupported)
        }
    }

    pub fn max_concurrency() -> usize {
        1
    }

    impl Executor for LocalExecutor {
        fn kill_grace(&self) -> Option<Duration> {
            match *self {}
        }
        async fn start(&mut self, _: AttemptSpec<'_>) -> Result<Option<String>, String> {
            match *self {}
        }
        async fn stop(&mut self, _: JobId, _: u32, _: bool) {
            match *self {}
        }
        async fn next(&mut self) -> Option<ExecEvent> {
            match *self {}
        }
        async fn abandon(&mut self, _: AttemptSpec<'_>) {
            match *self {}
        }
    }
}

#[cfg(not(target_os = "linux"))]
pub use elsewhere::{max_concurrency, LocalExecutor, LocalOptions};
