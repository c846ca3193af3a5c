//! Tests of the runtime as a library: the scheduler against a reference model, scenarios of
//! cancel, fail-fast and concurrency, and its cost on large pipelines.

mod scheduler_model;
mod scheduler_scenarios;
