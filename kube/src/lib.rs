//! The Kubernetes executor of chainr: each attempt runs as a `batch/v1` Job (`manifest`), followed
//! through one Job watcher and one Pod watcher per run (`executor`); the connection comes from
//! kubeconfig or the in-cluster service account (`connect`). It implements the runtime's
//! `Executor` trait and knows nothing of the scheduler.

pub mod connect;
pub mod executor;
pub mod manifest;

pub use connect::{connect, ConnectError, Connection};
pub use executor::{manifests, KubeExecutor, KubeOptions};
