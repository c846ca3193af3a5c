//! The fields of jobs, `defaults` and templates, and the pipeline's settings: known keys, no key
//! twice, and each value checked against the field's kind.

use super::{Checker, HashMap, Scope};
use crate::diagnostic::{did_you_mean, Diagnostic};
use crate::fields::{self, FieldKind, PULL_POLICIES, RESOURCE_KEYS};
use crate::ir;
use crate::limits;
use crate::names;
use crate::syntax::*;
use crate::types::{Type, Value};
use crate::units::{self, Duration};
use indexmap::IndexMap;

/// For `notify = ...`, a field or setting that does not exist.
const NOTIFY_HELP: &str =
    "a notification is written `notify on failed { to = [\"team-slack\"] }`, without `=`";

impl<'a> Checker<'a> {
    pub(super) fn setting(
        &mut self,
        e: &'a Entry,
        pipeline: &mut ir::Pipeline,
        seen: &mut HashMap<&'a str, Span>,
        scope: &Scope,
    ) {
        let key = e.key.name.as_str();
        let Some(field) = fields::setting(key) else {
            let mut d = Diagnostic::error("E0601", format!("unknown pipeline setting `{key}`"))
                .primary(e.key.span, "not a setting");
            if fields::job_field(key).is_some() {
                d = d.help(format!(
                    "`{key}` is a job field: set it in a job, or for every job in `defaults {{ {key} = ... }}`"
                ));
            } else if key == "notify" {
                d = d.help(NOTIFY_HELP);
            } else if let Some(s) = did_you_mean(key, fields::SETTINGS.iter().map(|f| f.name)) {
                d = d.help(format!("did you mean `{s}`?")).fix(e.key.span, s);
            } else {
                d = d.help("the settings are description, fail_fast and concurrency");
            }
            self.diags.push(d);
            return;
        };
        if let Some(first) = seen.insert(key, e.key.span) {
            self.duplicate_field(key, e.key.span, first);
            return;
        }
        match (
            field.kind,
            self.eval_field(field.name, field.kind, &e.value, scope),
        ) {
            (_, None) => {}
            (FieldKind::Bool, Some(Value::Bool(b))) => pipeline.fail_fast = b,
            (FieldKind::Int { .. }, Some(Value::Int(n))) => pipeline.concurrency = Some(n as u32),
            (_, Some(Value::Str(s))) => pipeline.description = Some(s),
            _ => {}
        }
    }

    /// Checks the keys of a block (unknown and repeated fields); values are checked per job.
    pub(super) fn check_block_keys(&mut self, block: &Block, what: &str) {
        let mut seen = [None::<Span>; fields::JOB_FIELDS.len()];
        for e in &block.entries {
            let key = e.key.name.as_str();
            match fields::JOB_FIELDS.iter().position(|f| f.name == key) {
                None => self.unknown_field(&e.key, what),
                Some(i) => match seen[i] {
                    Some(first) => self.duplicate_field(key, e.key.span, first),
                    None => seen[i] = Some(e.key.span),
                },
            }
        }
    }

    fn unknown_field(&mut self, key: &Ident, what: &str) {
        let name = key.name.as_str();
        let mut d = Diagnostic::error("E0200", format!("unknown field `{name}` in {what}"))
            .primary(key.span, "not a job field");
        let aliases = [
            ("cmd", "run"),
            ("command", "run"),
            ("script", "run"),
            ("after", "after"),
            ("depends_on", "after"),
            ("dependsOn", "after"),
            ("needs", "after"),
            ("retry", "retries"),
            ("environment", "env"),
            ("continue_on_error", "allow_failure"),
        ];
        if name == "notify" {
            d = d.help(NOTIFY_HELP);
        } else if let Some((_, to)) = aliases.iter().find(|(from, _)| *from == name) {
            if *to == "after" {
                d = d.help(
                    "dependencies are written in the job's header: `job NAME after other { ... }`",
                );
            } else {
                d = d.help(format!("did you mean `{to}`?")).fix(key.span, *to);
            }
        } else if let Some(s) = did_you_mean(name, fields::JOB_FIELDS.iter().map(|f| f.name)) {
            d = d.help(format!("did you mean `{s}`?")).fix(key.span, s);
        } else {
            d = d.help(format!(
                "the job fields are {}",
                fields::JOB_FIELDS
                    .iter()
                    .map(|f| f.name)
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        self.diags.push(d);
    }

    fn duplicate_field(&mut self, key: &str, span: Span, first: Span) {
        self.diags.push(
            Diagnostic::error("E0201", format!("the field `{key}` is set twice"))
                .primary(span, "set again here")
                .secondary(first, "first set here")
                .help("remove one of them"),
        );
    }

    pub(super) fn apply_block(&mut self, block: &Block, scope: &Scope, f: &mut JobFields) {
        for e in &block.entries {
            let Some(field) = fields::job_field(&e.key.name) else {
                // Reported by check_block_keys. A likely misspelling still counts as the field
                // being written, and the names its value uses count as used.
                if let Some(s) =
                    did_you_mean(&e.key.name, fields::JOB_FIELDS.iter().map(|f| f.name))
                {
                    f.mark(s);
                }
                if matches!(e.key.name.as_str(), "cmd" | "command" | "script") {
                    f.mark("run");
                }
                self.mark_used_names(&e.value);
                continue;
            };
            f.mark(field.name);
            match field.kind {
                FieldKind::StringMap | FieldKind::SecretEnv => {
                    self.apply_map(field.name, field.kind, &e.value, scope, f);
                }
                FieldKind::Resources => self.apply_resources(&e.value, scope, f),
                kind => {
                    let Some(v) = self.eval_field(field.name, kind, &e.value, scope) else {
                        continue;
                    };
                    match (field.name, v) {
                        ("image", Value::Str(s)) => f.image = Some(s),
                        ("run", Value::Str(s)) => f.run = Some(s),
                        ("retries", Value::Int(n)) => f.retries = n as u32,
                        ("backoff", Value::Duration(d)) => {
                            if d > limits::MAX_BACKOFF {
                                let cap = limits::MAX_BACKOFF;
                                self.diags.push(
                                    Diagnostic::warning(
                                        "W0004",
                                        format!("a backoff of {d} is above the {cap} cap"),
                                    )
                                    .primary(
                                        e.value.span,
                                        format!("retries never wait longer than {cap}"),
                                    )
                                    .help(format!("use at most {cap}")),
                                );
                            }
                            f.backoff = Some(d)
                        }
                        ("timeout", Value::Duration(d)) => {
                            if d < limits::MIN_TIMEOUT {
                                self.diags.push(
                                    Diagnostic::error("E0213", "a timeout of zero")
                                        .primary(e.value.span, "every attempt would be killed at once")
                                        .help("remove `timeout` for no limit, or give a positive duration"),
                                );
                            }
                            f.timeout = Some(d)
                        }
                        ("allow_failure", Value::Bool(b)) => f.allow_failure = b,
                        ("description", Value::Str(s)) => f.description = Some(s),
                        ("working_dir", Value::Str(s)) => f.working_dir = Some(s),
                        ("service_account", Value::Str(s)) => f.service_account = Some(s),
                        ("image_pull_policy", Value::Str(s)) => {
                            f.image_pull_policy = match s.as_str() {
                                "Always" => Some(ir::PullPolicy::Always),
                                "IfNotPresent" => Some(ir::PullPolicy::IfNotPresent),
                                _ => Some(ir::PullPolicy::Never),
                            }
                        }
                        _ => {}
                    }
                }
            }
        }
    }

    /// Evaluates a scalar field's value and checks it against the field's rules.
    fn eval_field(
        &mut self,
        name: &str,
        kind: FieldKind,
        e: &Expr,
        scope: &Scope,
    ) -> Option<Value> {
        match kind {
            FieldKind::String => self.eval(e, &Type::String, scope),
            FieldKind::Bool => self.eval(e, &Type::Bool, scope),
            FieldKind::Duration => self.eval(e, &Type::Duration, scope),
            FieldKind::Int { min, max } => match self.eval(e, &Type::Int, scope)? {
                Value::Int(n) if n < min || n > max => {
                    let mut d =
                        Diagnostic::error("E0207", format!("`{name}` must be from {min} to {max}"))
                            .primary(e.span, format!("{n} is out of range"));
                    if name == "retries" && n < 0 {
                        d = d.help("`retries = 0` (the default) means a single attempt");
                    }
                    self.diags.push(d);
                    None
                }
                v => Some(v),
            },
            FieldKind::Image => {
                let v = self.eval(e, &Type::String, scope)?;
                if let Value::Str(s) = &v {
                    if let Err(why) = units::check_image(s) {
                        let mut d =
                            Diagnostic::error("E0206", format!("invalid image reference `{s}`"))
                                .primary(e.span, why);
                        let lower = s.to_lowercase();
                        if lower != *s && units::check_image(&lower).is_ok() {
                            d = d.help(format!("did you mean `{lower}`?"));
                            if matches!(e.kind, ExprKind::Str(_)) {
                                d = d.fix(e.span, format!("\"{lower}\""));
                            }
                        } else {
                            d = d.help("an image is `[registry/]name[:tag][@digest]`, such as `ghcr.io/acme/etl:1.4`");
                        }
                        self.diags.push(d);
                        return None;
                    }
                }
                Some(v)
            }
            FieldKind::PullPolicy => {
                let v = self.eval(e, &Type::String, scope)?;
                if let Value::Str(s) = &v {
                    if !PULL_POLICIES.contains(&s.as_str()) {
                        let mut d = Diagnostic::error(
                            "E0210",
                            format!("`{s}` is not an image pull policy"),
                        )
                        .primary(e.span, "expected \"Always\", \"IfNotPresent\" or \"Never\"");
                        if let Some(p) = did_you_mean(s, PULL_POLICIES) {
                            d = d
                                .help(format!("did you mean \"{p}\"?"))
                                .fix(e.span, format!("\"{p}\""));
                        }
                        self.diags.push(d);
                        return None;
                    }
                }
                Some(v)
            }
            FieldKind::StringMap | FieldKind::SecretEnv | FieldKind::Resources => None,
        }
    }

    fn map_block<'e>(&mut self, field: &str, e: &'e Expr) -> Option<&'e Block> {
        match &e.kind {
            ExprKind::Map(b) => Some(b),
            other => {
                self.diags.push(
                    Diagnostic::error("E0203", "mismatched types")
                        .primary(
                            e.span,
                            format!("expected a map, found {}", other.describe()),
                        )
                        .help(format!("write `{field} {{ KEY = \"value\" }}`")),
                );
                None
            }
        }
    }

    fn apply_map(
        &mut self,
        field: &str,
        kind: FieldKind,
        e: &Expr,
        scope: &Scope,
        f: &mut JobFields,
    ) {
        let Some(block) = self.map_block(field, e) else {
            return;
        };
        let mut seen: HashMap<&str, Span> = HashMap::default();
        for entry in &block.entries {
            let key = entry.key.name.as_str();
            if let Some(first) = seen.insert(key, entry.key.span) {
                self.diags.push(
                    Diagnostic::error("E0201", format!("`{key}` is set twice in `{field}`"))
                        .primary(entry.key.span, "set again here")
                        .secondary(first, "first set here")
                        .help("remove one of them"),
                );
                continue;
            }
            if field != "node_selector" {
                if !names::is_env_name(key) {
                    let mut d = Diagnostic::error(
                        "E0209",
                        format!("`{key}` is not a valid environment variable name"),
                    )
                    .primary(
                        entry.key.span,
                        "use letters, digits and `_`, not starting with a digit",
                    );
                    let fixed: String = key
                        .chars()
                        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                        .collect();
                    if names::is_env_name(&fixed) {
                        d = d
                            .help(format!("did you mean `{fixed}`?"))
                            .fix(entry.key.span, fixed);
                    }
                    self.diags.push(d);
                    continue;
                }
                if key.starts_with(names::RESERVED_ENV_PREFIX) {
                    self.diags.push(
                        Diagnostic::error("E0212", format!("`{key}` is reserved"))
                            .primary(entry.key.span, "chainr sets the CHAINR_ variables itself")
                            .help("choose another name"),
                    );
                    continue;
                }
            }
            let Some(text) = self.eval_text(&entry.value, scope) else {
                continue;
            };
            match kind {
                FieldKind::SecretEnv => match text.split_once('/') {
                    Some((secret, k))
                        if !secret.is_empty() && !k.is_empty() && !k.contains('/') =>
                    {
                        f.secret_env.insert(
                            key.to_string(),
                            ir::SecretRef {
                                secret: secret.to_string(),
                                key: k.to_string(),
                            },
                        );
                    }
                    _ => self.diags.push(
                        Diagnostic::error("E0211", format!("`{text}` does not name a secret key"))
                            .primary(entry.value.span, "expected \"SECRET/KEY\"")
                            .help(
                                "write the secret's name and the key in it: \"db-creds/password\"",
                            ),
                    ),
                },
                _ if field == "node_selector" => {
                    f.node_selector.insert(key.to_string(), text);
                }
                _ => {
                    f.env.insert(key.to_string(), text);
                }
            }
        }
    }

    fn apply_resources(&mut self, e: &Expr, scope: &Scope, f: &mut JobFields) {
        let Some(block) = self.map_block("resources", e) else {
            return;
        };
        let mut seen: HashMap<&str, Span> = HashMap::default();
        for entry in &block.entries {
            let key = entry.key.name.as_str();
            if !RESOURCE_KEYS.contains(&key) {
                let mut d = Diagnostic::error("E0208", format!("unknown resource `{key}`"))
                    .primary(entry.key.span, "expected `cpu` or `memory`");
                if key.contains("gpu") {
                    d = d.help("only cpu and memory can be requested; to run on GPU nodes, use `node_selector`");
                } else if let Some(s) = did_you_mean(key, RESOURCE_KEYS).or(match key {
                    "mem" | "ram" => Some("memory"),
                    "cpus" | "cores" => Some("cpu"),
                    _ => None,
                }) {
                    d = d
                        .help(format!("did you mean `{s}`?"))
                        .fix(entry.key.span, s);
                }
                self.diags.push(d);
                continue;
            }
            if let Some(first) = seen.insert(key, entry.key.span) {
                self.duplicate_field(key, entry.key.span, first);
                continue;
            }
            if let Some(Value::Quantity(q)) = self.eval(&entry.value, &Type::Quantity, scope) {
                if key == "cpu" {
                    f.resources.cpu = Some(q);
                } else {
                    f.resources.memory = Some(q);
                }
            }
        }
    }
}

/// A job's fields as `defaults`, its template and its body set them, checked.
#[derive(Default)]
pub(super) struct JobFields {
    /// Bit i: field `JOB_FIELDS[i]` is written somewhere, even if its value was invalid.
    pub(super) present: u32,
    pub(super) image: Option<String>,
    pub(super) run: Option<String>,
    pub(super) description: Option<String>,
    pub(super) env: IndexMap<String, String>,
    pub(super) secret_env: IndexMap<String, ir::SecretRef>,
    pub(super) retries: u32,
    pub(super) backoff: Option<Duration>,
    pub(super) timeout: Option<Duration>,
    pub(super) resources: ir::Resources,
    pub(super) allow_failure: bool,
    pub(super) working_dir: Option<String>,
    pub(super) service_account: Option<String>,
    pub(super) node_selector: IndexMap<String, String>,
    pub(super) image_pull_policy: Option<ir::PullPolicy>,
    /// The notifications of the template, then of the body.
    pub(super) notify: Vec<ir::Notify>,
}

impl JobFields {
    pub(super) fn has(&self, field: &str) -> bool {
        fields::JOB_FIELDS
            .iter()
            .position(|f| f.name == field)
            .is_some_and(|i| self.present & (1 << i) != 0)
    }

    fn mark(&mut self, field: &str) {
        if let Some(i) = fields::JOB_FIELDS.iter().position(|f| f.name == field) {
            self.present |= 1 << i;
        }
    }
}
