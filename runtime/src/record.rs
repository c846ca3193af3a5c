//! The Run document: what a run did, job by job and attempt by attempt. `chainrc run --format
//! json` prints it, and the HTTP API serves the same shape (the original chainr's `Run`, with
//! attempts, exit codes and times added).

use crate::scheduler::{Outcome, RunOutcome};
use serde::Serialize;
use std::time::SystemTime;

/// The status words of the original chainr, plus ERRORED and CANCELLED.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Status {
    Pending,
    Running,
    Successful,
    Failed,
    Skipped,
    Errored,
    Cancelled,
}

impl Status {
    pub fn is_terminal(self) -> bool {
        !matches!(self, Status::Pending | Status::Running)
    }
}

impl From<Outcome> for Status {
    fn from(o: Outcome) -> Status {
        match o {
            Outcome::Succeeded => Status::Successful,
            Outcome::Failed => Status::Failed,
            Outcome::Errored => Status::Errored,
            Outcome::Skipped => Status::Skipped,
            Outcome::Cancelled => Status::Cancelled,
        }
    }
}

impl From<RunOutcome> for Status {
    fn from(o: RunOutcome) -> Status {
        match o {
            RunOutcome::Succeeded => Status::Successful,
            RunOutcome::Failed => Status::Failed,
            RunOutcome::Cancelled => Status::Cancelled,
        }
    }
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Run {
    pub kind: &'static str,
    pub metadata: Metadata,
    pub status: Status,
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "time")]
    pub started_at: Option<SystemTime>,
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "time")]
    pub finished_at: Option<SystemTime>,
    pub jobs: Vec<JobRecord>,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Metadata {
    pub uid: String,
    pub self_link: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JobRecord {
    pub name: String,
    pub status: Status,
    /// The fan-out job this one is an instance of.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// The last attempt's exit code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// Why the job ended as it did, in words ("exit code 3", "timed out after 2s", ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "time")]
    pub started_at: Option<SystemTime>,
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "time")]
    pub finished_at: Option<SystemTime>,
    pub attempts: Vec<Attempt>,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Attempt {
    pub attempt: u32,
    pub status: Status,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(serialize_with = "time_always")]
    pub started_at: SystemTime,
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "time")]
    pub finished_at: Option<SystemTime>,
    /// Where this attempt's output (stdout and stderr, interleaved) is kept.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log: Option<String>,
}

impl Run {
    pub fn new(uid: String, name: Option<String>, jobs: Vec<JobRecord>) -> Run {
        Run {
            kind: "Run",
            metadata: Metadata {
                self_link: format!("/api/runs/{uid}"),
                uid,
                name,
            },
            status: Status::Pending,
            started_at: None,
            finished_at: None,
            jobs,
        }
    }

    /// The record of a run of `pipeline` that starts now: every job pending, the run running.
    pub fn starting(uid: String, pipeline: &chainr_compiler::ir::Pipeline) -> Run {
        let jobs = pipeline
            .jobs
            .iter()
            .map(|(n, j)| JobRecord::new(n.clone(), j.group.clone()))
            .collect();
        let mut run = Run::new(uid, pipeline.name.clone(), jobs);
        run.status = Status::Running;
        run.started_at = Some(SystemTime::now());
        run
    }
}

impl JobRecord {
    pub fn new(name: String, group: Option<String>) -> JobRecord {
        JobRecord {
            name,
            status: Status::Pending,
            group,
            exit_code: None,
            reason: None,
            started_at: None,
            finished_at: None,
            attempts: Vec::new(),
        }
    }

    /// Records that attempt `attempt` of this job started at `now`.
    pub fn start_attempt(&mut self, attempt: u32, now: SystemTime) {
        self.status = Status::Running;
        self.started_at.get_or_insert(now);
        self.attempts.push(Attempt {
            attempt,
            status: Status::Running,
            exit_code: None,
            reason: None,
            started_at: now,
            finished_at: None,
            log: None,
        });
    }
}

fn time<S: serde::Serializer>(t: &Option<SystemTime>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => time_always(t, s),
        None => s.serialize_none(),
    }
}

fn time_always<S: serde::Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&humantime::format_rfc3339_millis(*t))
}
