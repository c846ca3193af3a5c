//! The pure core of chainr's runtime: the scheduler (a state machine over job events), the run's
//! events and the Run document folded from them, the driver (the one run loop over the
//! [`executor::Executor`] trait), the store and log-sink traits with in-memory
//! implementations, and the layout of a pipeline's graph for drawing ([`layout`]). No
//! processes, no Kubernetes, no sockets: executors (`chainr-local`, `chainr-kube`), stores and
//! servers are adapters around it.

pub mod driver;
pub mod event;
pub mod executor;
pub mod layout;
pub mod log;
pub mod outbox;
pub mod record;
pub mod scheduler;
pub mod store;
pub mod worker;

pub use driver::{drive, Command, Driver, DriverOptions, Now, Publish, Subscribers};
pub use event::{AttemptResult, EventKind, Reason, RunEvent};
pub use executor::{AttemptSpec, ExecEvent, Executor};
pub use record::{Run, Status};
pub use scheduler::{Action, AttemptEnd, JobId, Outcome, RunOutcome, Scheduler};

/// A new run id: a random UUID, as the original chainr's runs had.
pub fn new_run_id() -> String {
    uuid::Uuid::new_v4().to_string()
}
