//! The Run document: what a run did, job by job and attempt by attempt. It is a fold over the
//! run's events ([`Run::apply`]): the same events, replayed, give the same document. `chainrc run
//! --format json` prints it, and the HTTP API serves the same shape (the original chainr's `Run`,
//! with attempts, exit codes and times added).

use crate::event::{EventKind, RunEvent};
use crate::scheduler::{AttemptEnd, JobId, Outcome, RunOutcome};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::time::SystemTime;

/// The status words of the original chainr, plus ERRORED and CANCELLED.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
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
    /// Every status, in the order of a run's life.
    pub const ALL: [Status; 7] = [
        Status::Pending,
        Status::Running,
        Status::Successful,
        Status::Failed,
        Status::Skipped,
        Status::Errored,
        Status::Cancelled,
    ];

    /// The status a word names (`RUNNING`, or `running`).
    pub fn from_word(word: &str) -> Option<Status> {
        Status::ALL
            .into_iter()
            .find(|s| s.word().eq_ignore_ascii_case(word))
    }

    /// The word of the API (`RUNNING`, `SUCCESSFUL`, ...), as stores index it.
    pub fn word(self) -> &'static str {
        match self {
            Status::Pending => "PENDING",
            Status::Running => "RUNNING",
            Status::Successful => "SUCCESSFUL",
            Status::Failed => "FAILED",
            Status::Skipped => "SKIPPED",
            Status::Errored => "ERRORED",
            Status::Cancelled => "CANCELLED",
        }
    }

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
            RunOutcome::Errored => Status::Errored,
        }
    }
}

impl From<AttemptEnd> for Status {
    fn from(e: AttemptEnd) -> Status {
        match e {
            AttemptEnd::Succeeded => Status::Successful,
            AttemptEnd::Failed => Status::Failed,
            AttemptEnd::Errored => Status::Errored,
            AttemptEnd::Cancelled => Status::Cancelled,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Run {
    pub kind: String,
    pub metadata: Metadata,
    pub status: Status,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "time")]
    #[schemars(with = "Option<String>")]
    pub started_at: Option<SystemTime>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "time")]
    #[schemars(with = "Option<String>")]
    pub finished_at: Option<SystemTime>,
    /// Why the run ended as it did, when its jobs do not say (a run given up).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub jobs: Vec<JobRecord>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Metadata {
    pub uid: String,
    pub self_link: String,
    /// The pipeline's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Who submitted the run (the name of the API token; absent without authentication).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub submitter: Option<String>,
    /// When the run was submitted.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "time")]
    #[schemars(with = "Option<String>")]
    pub created_at: Option<SystemTime>,
    /// What the pipeline was submitted as: `json` (the IR) or `chainr` (source).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobRecord {
    pub name: String,
    pub status: Status,
    /// The fan-out job this one is an instance of.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// What the job waits for, in the words of the language (`build && test.failed`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<String>,
    /// The last attempt's exit code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// Why the job ended as it did, in words ("exit code 3", "timed out after 2s", ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "time")]
    #[schemars(with = "Option<String>")]
    pub started_at: Option<SystemTime>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "time")]
    #[schemars(with = "Option<String>")]
    pub finished_at: Option<SystemTime>,
    /// When the job reached its outcome (after its last attempt, or without running).
    #[serde(default, skip_serializing_if = "Option::is_none", with = "time")]
    #[schemars(with = "Option<String>")]
    pub decided_at: Option<SystemTime>,
    pub attempts: Vec<Attempt>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Attempt {
    pub attempt: u32,
    pub status: Status,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(with = "time_always")]
    #[schemars(with = "String")]
    pub started_at: SystemTime,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "time")]
    #[schemars(with = "Option<String>")]
    pub finished_at: Option<SystemTime>,
    /// Where this attempt's output (stdout and stderr, interleaved) is kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log: Option<String>,
}

impl Run {
    /// The document of a run of `pipeline` before anything happened: every job pending.
    pub fn planned(uid: String, pipeline: &chainr_compiler::ir::Pipeline) -> Run {
        let jobs = pipeline
            .jobs
            .iter()
            .map(|(n, j)| JobRecord {
                condition: j.condition_text(),
                ..JobRecord::new(n.clone(), j.group.clone())
            })
            .collect();
        Run {
            kind: "Run".to_string(),
            metadata: Metadata {
                self_link: format!("/api/runs/{uid}"),
                uid,
                name: pipeline.name.clone(),
                submitter: None,
                created_at: None,
                source: None,
            },
            status: Status::Pending,
            started_at: None,
            finished_at: None,
            reason: None,
            jobs,
        }
    }

    /// The document after `events`, from [`Run::planned`].
    pub fn replay<'e>(
        uid: String,
        pipeline: &chainr_compiler::ir::Pipeline,
        events: impl IntoIterator<Item = &'e RunEvent>,
    ) -> Run {
        let mut run = Run::planned(uid, pipeline);
        for e in events {
            run.apply(e);
        }
        run
    }

    /// Folds one event into the document. Events naming a job the pipeline does not have are
    /// ignored (they cannot come from a driver of this pipeline).
    pub fn apply(&mut self, event: &RunEvent) {
        let at = event.at;
        match &event.kind {
            EventKind::RunStarted { .. } => {
                self.status = Status::Running;
                self.started_at.get_or_insert(at);
            }
            EventKind::AttemptStarted { job, attempt, .. } => {
                let Some(rec) = self.jobs.get_mut(*job) else {
                    return;
                };
                rec.status = Status::Running;
                rec.started_at.get_or_insert(at);
                let fresh = Attempt {
                    attempt: *attempt,
                    status: Status::Running,
                    exit_code: None,
                    reason: None,
                    started_at: at,
                    finished_at: None,
                    log: None,
                };
                match rec.attempts.last_mut() {
                    // Started again after a take-over: the attempt begins anew.
                    Some(last) if last.attempt == *attempt => *last = fresh,
                    _ => rec.attempts.push(fresh),
                }
            }
            EventKind::AttemptEnded {
                job,
                attempt,
                result,
            } => {
                let Some(rec) = self.jobs.get_mut(*job) else {
                    return;
                };
                let status = Status::from(result.end);
                let reason = result.describe();
                if let Some(a) = rec
                    .attempts
                    .iter_mut()
                    .rev()
                    .find(|a| a.attempt == *attempt)
                {
                    a.status = status;
                    a.exit_code = result.exit_code;
                    a.reason.clone_from(&reason);
                    a.finished_at = Some(at);
                    a.log.clone_from(&result.log);
                }
                rec.status = status;
                rec.exit_code = result.exit_code;
                rec.reason = reason;
                rec.finished_at = Some(at);
            }
            EventKind::RetryScheduled { job, .. } => {
                // A failed attempt with a retry to come leaves the job pending, not failed.
                if let Some(rec) = self.jobs.get_mut(*job) {
                    rec.status = Status::Pending;
                    rec.finished_at = None;
                }
            }
            EventKind::JobDecided { job, outcome, why } => {
                let Some(rec) = self.jobs.get_mut(*job) else {
                    return;
                };
                rec.status = (*outcome).into();
                rec.finished_at = Some(at);
                rec.decided_at = Some(at);
                if let Some(why) = why {
                    rec.exit_code = None;
                    rec.reason = Some(why.to_string());
                }
            }
            EventKind::CancelRequested { .. } | EventKind::RetryDue { .. } => {}
            EventKind::RunFinished { outcome } => {
                self.status = (*outcome).into();
                self.finished_at = Some(at);
            }
            EventKind::RunRetried { jobs } => {
                for &job in jobs {
                    if let Some(rec) = self.jobs.get_mut(job) {
                        rec.status = Status::Pending;
                        rec.exit_code = None;
                        rec.reason = None;
                        rec.finished_at = None;
                        rec.decided_at = None;
                    }
                }
                self.status = Status::Pending;
                self.finished_at = None;
                self.reason = None;
            }
            EventKind::RunGivenUp { why } => self.reason = Some(why.to_string()),
        }
    }

    /// The jobs a retry of this run runs again (see [`crate::scheduler::jobs_to_retry`]).
    pub fn jobs_to_retry(&self, pipeline: &chainr_compiler::ir::Pipeline) -> Vec<JobId> {
        crate::scheduler::jobs_to_retry(pipeline, |j| {
            self.jobs.get(j).map(|r| r.status) == Some(Status::Successful)
        })
    }
}

impl JobRecord {
    pub fn new(name: String, group: Option<String>) -> JobRecord {
        JobRecord {
            name,
            status: Status::Pending,
            group,
            condition: None,
            exit_code: None,
            reason: None,
            started_at: None,
            finished_at: None,
            decided_at: None,
            attempts: Vec::new(),
        }
    }
}

/// Optional times as RFC 3339 with milliseconds.
pub(crate) mod time {
    use std::time::SystemTime;

    pub fn serialize<S: serde::Serializer>(
        t: &Option<SystemTime>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => super::time_always::serialize(t, s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<Option<SystemTime>, D::Error> {
        use serde::Deserialize;
        match Option::<String>::deserialize(d)? {
            Some(s) => humantime::parse_rfc3339(&s)
                .map(Some)
                .map_err(serde::de::Error::custom),
            None => Ok(None),
        }
    }
}

/// Times as RFC 3339 with milliseconds.
pub(crate) mod time_always {
    use std::time::SystemTime;

    pub fn serialize<S: serde::Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&humantime::format_rfc3339_millis(*t))
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<SystemTime, D::Error> {
        use serde::Deserialize;
        let s = String::deserialize(d)?;
        humantime::parse_rfc3339(&s).map_err(serde::de::Error::custom)
    }
}
