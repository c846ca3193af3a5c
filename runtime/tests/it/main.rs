//! Tests of the runtime as a library: the scheduler against a reference model, scenarios of
//! cancel, fail-fast and concurrency; the driver with a scripted executor in virtual time
//! (timers, stops, events, replay and resume); the store conformance suite on the memory store; workers on a shared store (every job once, take-over after a lease expires, stop hands runs back); the layout of a
//! pipeline's graph.

mod driver;
mod layout;
mod scheduler_model;
mod scheduler_scenarios;
mod store;
mod tail;
pub mod worker;
