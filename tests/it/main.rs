//! End-to-end tests of `chainrc`: snapshots of every example and error fixture, the CLI as a
//! user drives it, and checks that the docs match the repository (`tidy`).

mod cli;
mod kube;
mod lsp;
mod lsp_client;
mod notify;
mod run;
mod serve;
mod serve_client;
mod serve_crash;
mod snapshots;
mod tidy;
