//! What happens to a run, as data: `RunEvent`s numbered within their run, and the result of an
//! attempt as a type. The Run document is a fold over these events (`record.rs`); the terminal
//! views, the store, event streams and notifiers all read them. Reasons are enums here and become
//! words only where they are shown (`Display`).

use crate::scheduler::{AttemptEnd, JobId, Outcome, RunOutcome};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// One change of a run. `seq` counts from 1 within the run, with no gaps.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunEvent {
    pub seq: u64,
    /// When it happened (milliseconds since the Unix epoch).
    #[serde(with = "millis")]
    pub at: SystemTime,
    #[serde(flatten)]
    pub kind: EventKind,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(
    tag = "type",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
pub enum EventKind {
    /// The run began (or was taken over and continued: `resumed`).
    RunStarted {
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        resumed: bool,
    },
    /// An attempt of a job was started. `handle` is what the executor needs to find it again
    /// after a take-over (a process group, a Job's name). The same attempt is started again when
    /// a run is resumed while it was in flight.
    AttemptStarted {
        job: JobId,
        attempt: u32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        handle: Option<String>,
    },
    /// An attempt ended.
    AttemptEnded {
        job: JobId,
        attempt: u32,
        result: AttemptResult,
    },
    /// A failed attempt will be followed by attempt `attempt` after `delay_ms`.
    RetryScheduled {
        job: JobId,
        attempt: u32,
        delay_ms: u64,
    },
    /// The wait before attempt `attempt` of a job is over: it runs when a slot is free. (An input
    /// of the scheduler, recorded so that a resumed run takes the same decisions.)
    RetryDue { job: JobId, attempt: u32 },
    /// The job reached its final outcome (after its attempts, or without running).
    JobDecided {
        job: JobId,
        outcome: Outcome,
        /// Why a job that did not run ended as it did; `None` when its last attempt says why.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        why: Option<Decision>,
    },
    /// The run is being cancelled; `again`: a second time, which stops `finally` jobs too.
    CancelRequested {
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        again: bool,
    },
    /// Every job is decided.
    RunFinished { outcome: RunOutcome },
    /// The run is given up: its workers kept stopping while they drove it. What may still run
    /// of its attempts is abandoned, nothing more starts (not even `finally` jobs), and it ends
    /// errored.
    RunGivenUp { why: GiveUp },
    /// The finished run was retried (written by the store, not a driver): `jobs` are undecided
    /// again and run anew, continuing their attempts' numbering; the others keep their outcome
    /// (see [`crate::scheduler::jobs_to_retry`]). The run waits for a worker again.
    RunRetried { jobs: Vec<JobId> },
}

/// Why a run was given up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", rename_all_fields = "camelCase")]
pub enum GiveUp {
    /// Its workers stopped (their leases expired and the run was taken over) this many times
    /// while driving it.
    WorkerStopped { times: u32 },
}

impl fmt::Display for GiveUp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GiveUp::WorkerStopped { times } => write!(
                f,
                "its worker stopped {times} times while driving it; not taken over again"
            ),
        }
    }
}

/// Why a job was decided without (another) attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Decision {
    /// Its condition was false.
    ConditionFalse,
    /// The run was cancelled; `started`: after an attempt, before the next one.
    Cancelled { started: bool },
    /// `fail_fast` stopped the run after a failure.
    FailFast { started: bool },
    /// The run was given up (see [`GiveUp`]).
    GivenUp { started: bool },
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let when = |started: bool| {
            if started {
                "before its next attempt"
            } else {
                "before it started"
            }
        };
        match self {
            Decision::ConditionFalse => f.write_str("its condition was false"),
            Decision::Cancelled { started } => {
                write!(f, "the run was cancelled {}", when(*started))
            }
            Decision::FailFast { started } => write!(
                f,
                "fail_fast stopped the run after a failure, {}",
                when(*started)
            ),
            Decision::GivenUp { started } => {
                write!(f, "the run was given up {}", when(*started))
            }
        }
    }
}

/// How an attempt ended, with the facts that explain it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AttemptResult {
    pub end: AttemptEnd,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<Reason>,
    /// The last reason the attempt's container was waiting to start (Kubernetes), kept whatever
    /// ended the attempt, so that a pod that never started says so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting: Option<Waiting>,
    /// The attempt's output could not be kept (the log sink failed); the result stands.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_lost: Option<String>,
    /// Where the attempt's output is kept, when it printed anything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log: Option<String>,
}

impl AttemptResult {
    pub fn new(end: AttemptEnd, exit_code: Option<i32>, reason: Option<Reason>) -> AttemptResult {
        AttemptResult {
            end,
            exit_code,
            reason,
            waiting: None,
            output_lost: None,
            log: None,
        }
    }

    pub fn succeeded() -> AttemptResult {
        AttemptResult::new(AttemptEnd::Succeeded, Some(0), None)
    }

    /// A process that exited with `code`.
    pub fn exited(code: i32) -> AttemptResult {
        if code == 0 {
            AttemptResult::succeeded()
        } else {
            AttemptResult::new(AttemptEnd::Failed, Some(code), Some(Reason::ExitCode(code)))
        }
    }

    pub fn errored(reason: Reason) -> AttemptResult {
        AttemptResult::new(AttemptEnd::Errored, None, Some(reason))
    }

    pub fn cancelled() -> AttemptResult {
        AttemptResult::new(AttemptEnd::Cancelled, None, Some(Reason::Cancelled))
    }

    /// The whole explanation in words: the reason, the waiting state, a lost output.
    pub fn describe(&self) -> Option<String> {
        let mut parts: Vec<String> = Vec::new();
        if let Some(r) = &self.reason {
            parts.push(r.to_string());
        }
        if let Some(w) = &self.waiting {
            if !matches!(&self.reason, Some(Reason::PodCouldNotStart(_))) {
                parts.push(format!("the container never started ({w})"));
            }
        }
        if let Some(lost) = &self.output_lost {
            parts.push(format!("its output could not be kept: {lost}"));
        }
        (!parts.is_empty()).then(|| parts.join("; "))
    }
}

/// Why an attempt ended as it did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "detail", rename_all = "camelCase")]
pub enum Reason {
    /// The process exited with a non-zero code.
    ExitCode(i32),
    /// The process was killed by a signal.
    Signal(i32),
    /// The process ended neither by exiting nor by a signal.
    Abnormal,
    /// The job's `timeout` passed (the limit as written, e.g. `20s`).
    TimedOut(String),
    /// The run was cancelled while the attempt ran.
    Cancelled,
    /// The run was given up while the attempt ran (see [`GiveUp`]).
    GivenUp,
    /// The executor could not start the attempt.
    CouldNotStart(String),
    /// The pod waited for something that does not resolve by itself, past the grace period.
    PodCouldNotStart(Waiting),
    /// The Job failed for a reason other than its container's exit code.
    JobFailed {
        reason: Option<String>,
        message: Option<String>,
    },
    /// The attempt's Job was deleted by someone else.
    JobDeleted,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::ExitCode(c) => write!(f, "exit code {c}"),
            Reason::Signal(s) => write!(f, "killed by signal {s}"),
            Reason::Abnormal => f.write_str("ended abnormally"),
            Reason::TimedOut(limit) => write!(f, "timed out after {limit}"),
            Reason::Cancelled => f.write_str("cancelled"),
            Reason::GivenUp => f.write_str("the run was given up"),
            Reason::CouldNotStart(why) => f.write_str(why),
            Reason::PodCouldNotStart(w) => write!(f, "the pod could not start: {w}"),
            Reason::JobFailed { reason, message } => {
                f.write_str("the Job failed")?;
                if let Some(r) = reason {
                    write!(f, ": {r}")?;
                }
                if let Some(m) = message {
                    write!(f, " ({m})")?;
                }
                Ok(())
            }
            Reason::JobDeleted => f.write_str("its Job was deleted"),
        }
    }
}

/// Why a container is waiting: Kubernetes' reason word and its message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Waiting {
    pub reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl fmt::Display for Waiting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.message {
            Some(m) if !m.is_empty() => write!(f, "{}: {m}", self.reason),
            _ => f.write_str(&self.reason),
        }
    }
}

/// `Duration` in milliseconds, saturating.
pub fn millis_of(d: Duration) -> u64 {
    d.as_millis().min(u128::from(u64::MAX)) as u64
}

/// Times as milliseconds since the Unix epoch.
pub mod millis {
    use super::*;

    pub fn to_millis(t: SystemTime) -> u64 {
        millis_of(t.duration_since(UNIX_EPOCH).unwrap_or_default())
    }

    pub fn from_millis(ms: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(ms)
    }

    /// The time as events keep it: in whole milliseconds.
    pub fn whole(t: SystemTime) -> SystemTime {
        from_millis(to_millis(t))
    }

    pub fn serialize<S: serde::Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(to_millis(*t))
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<SystemTime, D::Error> {
        u64::deserialize(d).map(from_millis)
    }
}
