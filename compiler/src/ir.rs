//! The JSON Pipeline IR: the contract between the compiler and the runtime.
//!
//! A superset of the original chainr format: every pipeline the original accepted
//! (`{"kind": "Pipeline", "jobs": {NAME: {"image", "run", "dependsOn"}}}`) deserializes unchanged
//! and means the same. Unknown fields are rejected, as the original did. [`crate::validate_json`]
//! checks IR that arrives as JSON with the same rigour as source (names, dependencies, cycles).

use crate::outcome::OutcomeTest;
use crate::units::Duration;
use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::borrow::Cow;

/// A pipeline: jobs and the conditions under which each runs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(title = "chainr Pipeline IR")]
pub struct Pipeline {
    /// Always `"Pipeline"`.
    pub kind: PipelineKind,
    /// The pipeline's name (`pipeline NAME { ... }` in source).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Stop starting new jobs after the first failure that fails the run; `finally` jobs still run.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "is_false"
    )]
    pub fail_fast: bool,
    /// At most this many jobs of one run at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = crate::limits::CONCURRENCY.min, max = crate::limits::CONCURRENCY.max))]
    pub concurrency: Option<u32>,
    /// Notifications about the run (`notify on failed { to = [...] }` in source).
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub notify: Vec<Notify>,
    /// The jobs by name, in source order.
    #[serde(deserialize_with = "unique_jobs")]
    pub jobs: IndexMap<String, Job>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum PipelineKind {
    Pipeline,
}

/// One job: a command run in a container image.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Job {
    /// The original form of conditions: every entry must hold (AND).
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub depends_on: Vec<Dependency>,
    /// A condition beyond `dependsOn`; both must hold for the job to run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<Condition>,
    /// The container image (OCI reference).
    pub image: String,
    /// The shell script, run with `sh -c`.
    pub run: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Environment variables, added to the executor's own.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "IndexMap::is_empty"
    )]
    pub env: IndexMap<String, String>,
    /// Environment variables read from Kubernetes secrets.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "IndexMap::is_empty"
    )]
    pub secret_env: IndexMap<String, SecretRef>,
    /// Extra attempts after a failed or errored one.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "is_zero"
    )]
    #[schemars(range(max = crate::limits::RETRIES.max))]
    pub retries: u32,
    /// Wait before the first retry; doubles after each, capped at 5m. Default 1s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff: Option<DurationText>,
    /// Limit per attempt; an attempt that runs longer fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<DurationText>,
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Resources::is_empty"
    )]
    pub resources: Resources,
    /// A failure of this job does not fail the run, and `after x` accepts it.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "is_false"
    )]
    pub allow_failure: bool,
    /// Runs once every other job is terminal, whatever happened.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "is_false"
    )]
    pub finally: bool,
    /// The fan-out job this one is an instance of (`job shard for i in 0..4` gives `shard`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account: Option<String>,
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "IndexMap::is_empty"
    )]
    pub node_selector: IndexMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_policy: Option<PullPolicy>,
    /// Notifications about this job (`notify on failed` in a job's body).
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub notify: Vec<Notify>,
}

/// One notification: when any event of `on` happens, a message goes to every medium of `to`.
/// Media are named in the server's configuration, not in the pipeline.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Notify {
    /// The events, at least one. A pipeline's: `started`, `succeeded`, `failed`, `cancelled`,
    /// `running_longer_than`; a job's: `succeeded`, `failed`, `errored`.
    pub on: Vec<NotifyEvent>,
    /// The media to tell, at least one, each named once.
    pub to: Vec<String>,
    /// How long a run may run before `running_longer_than` fires; given exactly when `on` has it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<DurationText>,
}

/// What a notification is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum NotifyEvent {
    Started,
    Succeeded,
    Failed,
    Cancelled,
    Errored,
    RunningLongerThan,
}

impl NotifyEvent {
    /// The events a pipeline's `notify` may name.
    pub const PIPELINE: &'static [NotifyEvent] = &[
        NotifyEvent::Started,
        NotifyEvent::Succeeded,
        NotifyEvent::Failed,
        NotifyEvent::Cancelled,
        NotifyEvent::RunningLongerThan,
    ];
    /// The events a job's `notify` may name.
    pub const JOB: &'static [NotifyEvent] = &[
        NotifyEvent::Succeeded,
        NotifyEvent::Failed,
        NotifyEvent::Errored,
    ];

    /// The event's name, as written in source and in the IR.
    pub fn name(self) -> &'static str {
        match self {
            NotifyEvent::Started => "started",
            NotifyEvent::Succeeded => "succeeded",
            NotifyEvent::Failed => "failed",
            NotifyEvent::Cancelled => "cancelled",
            NotifyEvent::Errored => "errored",
            NotifyEvent::RunningLongerThan => "running_longer_than",
        }
    }
}

/// Whether `name` can name a notification medium: letters, digits, `-` and `_`, starting with a
/// letter, at most 63 bytes.
pub fn is_medium_name(name: &str) -> bool {
    name.len() <= 63
        && name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

impl Job {
    pub fn new(image: impl Into<String>, run: impl Into<String>) -> Job {
        Job {
            depends_on: Vec::new(),
            condition: None,
            image: image.into(),
            run: run.into(),
            description: None,
            env: IndexMap::new(),
            secret_env: IndexMap::new(),
            retries: 0,
            backoff: None,
            timeout: None,
            resources: Resources::default(),
            allow_failure: false,
            finally: false,
            group: None,
            working_dir: None,
            service_account: None,
            node_selector: IndexMap::new(),
            image_pull_policy: None,
            notify: Vec::new(),
        }
    }

    /// What the job waits for, in the words of the language (`a && b.failed && (c.done ||
    /// !d.skipped)`): its `dependsOn` entries and its `condition`, every one of which must hold.
    /// `None` when it waits for nothing.
    pub fn condition_text(&self) -> Option<String> {
        let mut out = String::new();
        for d in &self.depends_on {
            if !out.is_empty() {
                out.push_str(" && ");
            }
            out.push_str(&d.job);
            if d.on_failure() {
                out.push_str(".failed");
            }
        }
        if let Some(c) = &self.condition {
            let place = if out.is_empty() {
                Place::Top
            } else {
                out.push_str(" && ");
                Place::Operand
            };
            c.write(&mut out, place);
        }
        (!out.is_empty()).then_some(out)
    }

    /// Every job this one's conditions name, `dependsOn` first.
    pub fn needs(&self) -> impl Iterator<Item = &str> {
        let mut from_condition = Vec::new();
        if let Some(c) = &self.condition {
            c.jobs(&mut from_condition);
        }
        self.depends_on
            .iter()
            .map(|d| d.job.as_str())
            .chain(from_condition)
    }
}

/// One entry of `dependsOn`: `{"job": "x"}` holds when x succeeded (or, when x has
/// `allowFailure`, also when it failed or errored); `{"job": "x", "conditions": {"failure": true}}`
/// holds when x failed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Dependency {
    pub job: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conditions: Option<DependencyConditions>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DependencyConditions {
    #[serde(default)]
    pub failure: bool,
}

impl Dependency {
    pub fn on_failure(&self) -> bool {
        self.conditions.as_ref().is_some_and(|c| c.failure)
    }
}

/// A condition over the outcomes of other jobs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum Condition {
    /// Every condition holds.
    All(Vec<Condition>),
    /// At least one condition holds.
    Any(Vec<Condition>),
    /// The condition does not hold.
    Not(Box<Condition>),
    /// The named job exited 0.
    Succeeded(String),
    /// The named job exited non-zero or timed out.
    Failed(String),
    /// The named job could not run (image pull failure, unschedulable, executor error).
    Errored(String),
    /// The named job's own condition was false.
    Skipped(String),
    /// The run was cancelled before the named job finished.
    Cancelled(String),
    /// The named job is terminal, whatever its outcome.
    Done(String),
}

/// Where a condition is written, for parentheses: `||` binds less than `&&`, which binds less
/// than `!`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Place {
    Top,
    /// An operand of `&&` or `||`.
    Operand,
    /// After `!`.
    Negated,
}

impl Condition {
    /// Writes the condition in the words of the language, with the parentheses its place needs.
    fn write(&self, out: &mut String, place: Place) {
        let (cs, op, parens) = match self {
            Condition::All(cs) => (cs, " && ", place == Place::Negated),
            Condition::Any(cs) => (cs, " || ", place != Place::Top),
            Condition::Not(c) => {
                out.push('!');
                return c.write(out, Place::Negated);
            }
            Condition::Succeeded(j)
            | Condition::Failed(j)
            | Condition::Errored(j)
            | Condition::Skipped(j)
            | Condition::Cancelled(j)
            | Condition::Done(j) => {
                let test = match self {
                    Condition::Succeeded(_) => OutcomeTest::Succeeded,
                    Condition::Failed(_) => OutcomeTest::Failed,
                    Condition::Errored(_) => OutcomeTest::Errored,
                    Condition::Skipped(_) => OutcomeTest::Skipped,
                    Condition::Cancelled(_) => OutcomeTest::Cancelled,
                    _ => OutcomeTest::Done,
                };
                out.push_str(j);
                out.push('.');
                out.push_str(test.word().unwrap_or_default());
                return;
            }
        };
        if parens {
            out.push('(');
        }
        for (i, c) in cs.iter().enumerate() {
            if i > 0 {
                out.push_str(op);
            }
            c.write(out, Place::Operand);
        }
        if parens {
            out.push(')');
        }
    }

    /// The job names this condition mentions, left to right.
    pub fn jobs<'a>(&'a self, out: &mut Vec<&'a str>) {
        match self {
            Condition::All(cs) | Condition::Any(cs) => cs.iter().for_each(|c| c.jobs(out)),
            Condition::Not(c) => c.jobs(out),
            Condition::Succeeded(j)
            | Condition::Failed(j)
            | Condition::Errored(j)
            | Condition::Skipped(j)
            | Condition::Cancelled(j)
            | Condition::Done(j) => out.push(j),
        }
    }
}

/// CPU and memory, as Kubernetes quantities (`500m`, `256Mi`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<String>,
}

impl Resources {
    pub fn is_empty(&self) -> bool {
        self.cpu.is_none() && self.memory.is_none()
    }
}

/// A key of a Kubernetes secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SecretRef {
    pub secret: String,
    pub key: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum PullPolicy {
    Always,
    IfNotPresent,
    Never,
}

/// A duration written as text (`30s`, `1h30m`); parsed and checked when the IR is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DurationText(pub Duration);

impl Serialize for DurationText {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for DurationText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = Cow::<str>::deserialize(d)?;
        Duration::parse(&text)
            .map(DurationText)
            .map_err(|e| serde::de::Error::custom(format!("invalid duration `{text}`: {e}")))
    }
}

impl JsonSchema for DurationText {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "A duration: numbers with units d, h, m, s, ms, largest first (`30s`, `1h30m`).",
            "type": "string",
            "pattern": "^([0-9]+(\\.[0-9]+)?(d|h|m|s|ms))+$"
        })
    }
}

/// `null` reads as the default: Go clients of the original wrote `null` for empty lists.
fn null_as_default<'de, D: Deserializer<'de>, T: Deserialize<'de> + Default>(
    d: D,
) -> Result<T, D::Error> {
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// A JSON object with the same job name twice is an error, not "the last one wins".
fn unique_jobs<'de, D: Deserializer<'de>>(d: D) -> Result<IndexMap<String, Job>, D::Error> {
    struct Jobs;
    impl<'de> serde::de::Visitor<'de> for Jobs {
        type Value = IndexMap<String, Job>;

        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a map of job names to jobs")
        }

        fn visit_map<A: serde::de::MapAccess<'de>>(
            self,
            mut map: A,
        ) -> Result<Self::Value, A::Error> {
            let mut jobs = IndexMap::with_capacity(map.size_hint().unwrap_or(0));
            while let Some(name) = map.next_key::<String>()? {
                if jobs.contains_key(&name) {
                    return Err(serde::de::Error::custom(format!(
                        "the job `{name}` is defined twice"
                    )));
                }
                let job: Job = map.next_value()?;
                jobs.insert(name, job);
            }
            Ok(jobs)
        }
    }
    d.deserialize_map(Jobs)
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// The JSON Schema of the IR, as checked in under `docs/pipeline.schema.json`.
pub fn json_schema() -> String {
    let schema = schemars::schema_for!(Pipeline);
    let mut text = serde_json::to_string_pretty(&schema).expect("a schema serializes");
    text.push('\n');
    text
}
