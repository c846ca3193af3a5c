//! Runs chainr pipelines: the scheduler (a pure state machine over job events), the local
//! executor and its driver, and the Run document that reports what happened.

pub mod kubernetes;
pub mod local;
pub mod record;
pub mod scheduler;

pub use record::{Run, Status};
pub use scheduler::{Action, AttemptEnd, JobId, Outcome, RunOutcome, Scheduler};

/// A new run id: a random UUID, as the original chainr's runs had.
pub fn new_run_id() -> String {
    uuid::Uuid::new_v4().to_string()
}
