//! End-to-end tests of `chainrc`: snapshots of every example and error fixture, and the CLI as a
//! user drives it.

mod cli;
mod kube;
mod lsp;
mod lsp_client;
mod run;
mod snapshots;
