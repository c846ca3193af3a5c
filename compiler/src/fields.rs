//! The fields a job, `defaults` and a template may set, and the pipeline's settings: their
//! names, types and documentation (shared by the checker, docs and editors).

use crate::limits;

/// What a field holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldKind {
    String,
    Image,
    Int {
        min: i64,
        max: i64,
    },
    Bool,
    Duration,
    /// A map of names to strings (`env`, `node_selector`).
    StringMap,
    /// `resources { cpu = ..., memory = ... }`.
    Resources,
    /// One of `Always`, `IfNotPresent`, `Never`.
    PullPolicy,
    /// A map of env var names to `"secret-name/key"`.
    SecretEnv,
}

pub struct Field {
    pub name: &'static str,
    pub kind: FieldKind,
    /// The type as users write it, for messages and hover.
    pub ty: &'static str,
    pub doc: &'static str,
}

pub const JOB_FIELDS: &[Field] = &[
    Field {
        name: "image",
        kind: FieldKind::Image,
        ty: "string",
        doc: "The container image to run (an OCI reference such as `busybox:1.36`). Required, unless `defaults` gives it. Not used by the local executor.",
    },
    Field {
        name: "run",
        kind: FieldKind::String,
        ty: "string",
        doc: "The shell script to run, with `sh -c`. Required. Exit code 0 means succeeded; any other code means failed.",
    },
    Field {
        name: "env",
        kind: FieldKind::StringMap,
        ty: "map of string",
        doc: "Environment variables for the job, added to the executor's own (`env { MODE = \"full\" }`).",
    },
    Field {
        name: "retries",
        kind: FieldKind::Int {
            min: limits::RETRIES.min,
            max: limits::RETRIES.max,
        },
        ty: "int",
        doc: "Extra attempts after a failed or errored attempt (not after skipped or cancelled). Default 0.",
    },
    Field {
        name: "backoff",
        kind: FieldKind::Duration,
        ty: "duration",
        doc: "Wait before the first retry; doubles after each retry, capped at 5m. Default 1s.",
    },
    Field {
        name: "timeout",
        kind: FieldKind::Duration,
        ty: "duration",
        doc: "Limit for each attempt. An attempt that runs longer is killed and counts as failed.",
    },
    Field {
        name: "resources",
        kind: FieldKind::Resources,
        ty: "{ cpu: quantity, memory: quantity }",
        doc: "CPU and memory for the job's container, as Kubernetes quantities (`cpu = 500m, memory = 256Mi`).",
    },
    Field {
        name: "allow_failure",
        kind: FieldKind::Bool,
        ty: "bool",
        doc: "When true, a failure of this job does not fail the run, and `after x` accepts it as if it had succeeded (`x.succeeded` stays strict).",
    },
    Field {
        name: "description",
        kind: FieldKind::String,
        ty: "string",
        doc: "What the job is for, shown in the UI and in hovers.",
    },
    Field {
        name: "working_dir",
        kind: FieldKind::String,
        ty: "string",
        doc: "The directory the script starts in.",
    },
    Field {
        name: "service_account",
        kind: FieldKind::String,
        ty: "string",
        doc: "The Kubernetes service account the job's pod runs as.",
    },
    Field {
        name: "node_selector",
        kind: FieldKind::StringMap,
        ty: "map of string",
        doc: "Kubernetes node labels the job's pod must run on (`node_selector { disk = \"ssd\" }`).",
    },
    Field {
        name: "image_pull_policy",
        kind: FieldKind::PullPolicy,
        ty: "\"Always\" | \"IfNotPresent\" | \"Never\"",
        doc: "When Kubernetes pulls the image.",
    },
    Field {
        name: "secret_env",
        kind: FieldKind::SecretEnv,
        ty: "map of \"secret/key\"",
        doc: "Environment variables read from Kubernetes secrets: `secret_env { DB_PASSWORD = \"db-creds/password\" }`.",
    },
];

pub const SETTINGS: &[Field] = &[
    Field {
        name: "description",
        kind: FieldKind::String,
        ty: "string",
        doc: "What the pipeline is for.",
    },
    Field {
        name: "fail_fast",
        kind: FieldKind::Bool,
        ty: "bool",
        doc: "Stop starting new jobs after the first failure that fails the run; jobs that never started end cancelled; `finally` jobs still run. Default false.",
    },
    Field {
        name: "concurrency",
        kind: FieldKind::Int {
            min: limits::CONCURRENCY.min,
            max: limits::CONCURRENCY.max,
        },
        ty: "int",
        doc: "At most this many jobs of a run at once.",
    },
];

pub const RESOURCE_KEYS: [&str; 2] = ["cpu", "memory"];

pub const PULL_POLICIES: [&str; 3] = ["Always", "IfNotPresent", "Never"];

/// The outcomes a condition can test, in the order users read them (defined in
/// [`crate::outcome`]).
pub use crate::outcome::WORDS as OUTCOMES;

pub fn job_field(name: &str) -> Option<&'static Field> {
    JOB_FIELDS.iter().find(|f| f.name == name)
}

pub fn setting(name: &str) -> Option<&'static Field> {
    SETTINGS.iter().find(|f| f.name == name)
}
