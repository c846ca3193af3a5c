//! The notifier's configuration: a TOML file naming the media (webhook, Slack, email, stdout),
//! the routes for pipelines that declare no `notify` of their own, and the delivery schedule.
//! Secrets (a webhook's signing secret, an SMTP password, a Slack URL) come from environment
//! variables or files, are read once when the file is loaded, and never appear in `Debug`
//! output, logs or errors. `docs/notifications.md` describes the file.

use chainr_compiler::ir::{self, NotifyEvent};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A configuration that cannot be used, in words that say where and why (never a secret).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

fn err(msg: impl Into<String>) -> ConfigError {
    ConfigError(msg.into())
}

/// A value that must not be shown: `Debug` prints where it came from, never what it is.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret {
    value: String,
    from: String,
}

impl Secret {
    pub fn expose(&self) -> &str {
        &self.value
    }

    /// Where the secret came from (`environment variable X`, `file F`, `the configuration`).
    pub fn source(&self) -> &str {
        &self.from
    }

    pub(crate) fn from_parts(value: &str, from: &str) -> Secret {
        Secret {
            value: value.to_string(),
            from: from.to_string(),
        }
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "<secret from {}>", self.from)
    }
}

/// How a secret is written: `{ env = "NAME" }`, `{ file = "PATH" }`, or (where allowed) the value.
#[derive(Deserialize)]
#[serde(untagged)]
enum SecretSpec {
    Env { env: String },
    File { file: PathBuf },
    Inline(String),
}

fn resolve(
    spec: SecretSpec,
    what: &str,
    inline_ok: bool,
    env: &dyn Fn(&str) -> Option<String>,
    base: &Path,
) -> Result<Secret, ConfigError> {
    match spec {
        SecretSpec::Env { env: name } => match env(&name) {
            Some(v) if !v.trim().is_empty() => Ok(Secret {
                value: v.trim().to_string(),
                from: format!("environment variable {name}"),
            }),
            _ => Err(err(format!(
                "{what}: the environment variable {name} is not set (or empty)"
            ))),
        },
        SecretSpec::File { file } => {
            let path = base.join(&file);
            match std::fs::read_to_string(&path) {
                Ok(v) if !v.trim().is_empty() => Ok(Secret {
                    value: v.trim().to_string(),
                    from: format!("file {}", path.display()),
                }),
                Ok(_) => Err(err(format!("{what}: the file {} is empty", path.display()))),
                Err(e) => Err(err(format!(
                    "{what}: cannot read the file {}: {e}",
                    path.display()
                ))),
            }
        }
        SecretSpec::Inline(v) if inline_ok => Ok(Secret {
            value: v,
            from: "the configuration".into(),
        }),
        SecretSpec::Inline(_) => Err(err(format!(
            "{what} is a secret: give it as {{ env = \"NAME\" }} or {{ file = \"PATH\" }}, not in the file"
        ))),
    }
}

/// How an email medium protects the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// Plain connection upgraded with STARTTLS, which the server must offer (port 587).
    #[default]
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
    /// No TLS at all: only for a relay on the same host.
    None,
}

/// One medium, ready to send with.
#[derive(Clone, Debug)]
pub enum Medium {
    /// A JSON body signed the Standard Webhooks way.
    Webhook { url: Secret, key: Secret },
    /// A Slack-compatible incoming webhook.
    Slack { url: Secret },
    /// Email over SMTP.
    Email(Email),
    /// A line on standard output (on standard error where standard output is taken: `chainrc
    /// run --format json`).
    Stdout { to_stderr: bool },
}

#[derive(Clone, Debug)]
pub struct Email {
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    pub username: Option<String>,
    pub password: Option<Secret>,
    pub from: String,
    pub to: Vec<String>,
    /// A PEM file of certificates to trust besides the usual roots (a private relay's CA).
    pub ca_file: Option<PathBuf>,
}

impl Medium {
    /// The medium's kind, as the configuration names it.
    pub fn kind(&self) -> &'static str {
        match self {
            Medium::Webhook { .. } => "webhook",
            Medium::Slack { .. } => "slack",
            Medium::Email(_) => "email",
            Medium::Stdout { .. } => "stdout",
        }
    }
}

/// Where notifications go for pipelines that declare no `notify` of their own.
#[derive(Clone, Debug, PartialEq)]
pub struct Route {
    pub on: Vec<NotifyEvent>,
    /// Pipeline names or glob patterns (`nightly-*`); empty: every pipeline.
    pub pipelines: Vec<glob::Pattern>,
    pub to: Vec<String>,
    /// For `running_longer_than`.
    pub after: Option<(Duration, String)>,
}

impl Route {
    pub fn matches(&self, pipeline: &str) -> bool {
        self.pipelines.is_empty() || self.pipelines.iter().any(|p| p.matches(pipeline))
    }
}

/// When failed attempts are tried again: the waits after the first, second, ... failure; after
/// the last, the delivery is dead.
#[derive(Clone, Debug, PartialEq)]
pub struct Schedule(pub Vec<Duration>);

impl Schedule {
    /// 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h: eight attempts over about 28 hours.
    pub fn standard() -> Schedule {
        let m = 60;
        Schedule(
            [5, 5 * m, 30 * m, 2 * 3600, 5 * 3600, 10 * 3600, 10 * 3600]
                .into_iter()
                .map(Duration::from_secs)
                .collect(),
        )
    }

    /// The wait after failed attempt number `attempts` (from 1), or `None`: give up.
    pub fn after_attempt(&self, attempts: u32) -> Option<Duration> {
        self.0.get(attempts.checked_sub(1)? as usize).copied()
    }
}

/// The whole configuration, checked and with its secrets read.
#[derive(Clone, Debug)]
pub struct Config {
    /// The UI's address as people reach it, for links in messages.
    pub ui_url: Option<String>,
    pub media: BTreeMap<String, Medium>,
    pub routes: Vec<Route>,
    pub schedule: Schedule,
    /// How long one attempt may take.
    pub timeout: Duration,
    /// Deliveries attempted at once by one notifier.
    pub concurrency: usize,
    /// Lines of a failed job's output shown in a message.
    pub log_lines: usize,
}

impl Default for Config {
    /// No media: nothing is sent.
    fn default() -> Config {
        Config {
            ui_url: None,
            media: BTreeMap::new(),
            routes: Vec::new(),
            schedule: Schedule::standard(),
            timeout: Duration::from_secs(10),
            concurrency: 8,
            log_lines: 20,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    ui_url: Option<String>,
    #[serde(default)]
    media: BTreeMap<String, MediumSpec>,
    #[serde(default)]
    routes: Vec<RouteSpec>,
    #[serde(default)]
    delivery: DeliverySpec,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct DeliverySpec {
    schedule: Option<Vec<String>>,
    timeout: Option<String>,
    concurrency: Option<usize>,
    log_lines: Option<usize>,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
enum MediumSpec {
    Webhook {
        url: SecretSpec,
        secret: SecretSpec,
    },
    Slack {
        url: SecretSpec,
    },
    Email {
        host: String,
        port: Option<u16>,
        #[serde(default)]
        tls: SmtpTls,
        username: Option<String>,
        password: Option<SecretSpec>,
        from: String,
        to: Vec<String>,
        ca_file: Option<PathBuf>,
    },
    Stdout {},
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RouteSpec {
    on: Vec<String>,
    #[serde(default)]
    pipelines: Vec<String>,
    to: Vec<String>,
    after: Option<String>,
}

fn duration(text: &str, what: &str) -> Result<Duration, ConfigError> {
    humantime::parse_duration(text).map_err(|e| {
        err(format!(
            "{what}: {text:?} is not a duration ({e}); write e.g. 5m or 2h"
        ))
    })
}

/// The events a route may name: those of a run.
const ROUTE_EVENTS: &[NotifyEvent] = NotifyEvent::PIPELINE;

impl Config {
    /// Reads and checks the file at `path`, taking secrets from the process's environment and
    /// from files (relative to the configuration's directory).
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| err(format!("cannot read {}: {e}", path.display())))?;
        let base = path.parent().unwrap_or(Path::new("."));
        Config::parse(&text, &|name| std::env::var(name).ok(), base)
            .map_err(|e| err(format!("{}: {}", path.display(), e.0)))
    }

    /// Checks a configuration's text; `env` answers environment variables, `base` is where
    /// relative paths start.
    pub fn parse(
        text: &str,
        env: &dyn Fn(&str) -> Option<String>,
        base: &Path,
    ) -> Result<Config, ConfigError> {
        let file: File = toml::from_str(text).map_err(|e| err(e.to_string().trim_end()))?;
        let mut config = Config {
            ui_url: file.ui_url.map(|u| u.trim_end_matches('/').to_string()),
            ..Config::default()
        };
        for (name, spec) in file.media {
            if !ir::is_medium_name(&name) {
                return Err(err(format!(
                    "media.{name}: a medium's name has letters, digits, `-` and `_`, starts with a letter, and has at most 63 characters"
                )));
            }
            let at = format!("media.{name}");
            let medium = match spec {
                MediumSpec::Webhook { url, secret } => {
                    let url = resolve(url, &format!("{at}.url"), true, env, base)?;
                    check_url(&url, &at)?;
                    let key = resolve(secret, &format!("{at}.secret"), false, env, base)?;
                    let key = crate::send::webhook_key(&key)
                        .map_err(|e| err(format!("{at}.secret (from {}): {e}", key.source())))?;
                    Medium::Webhook { url, key }
                }
                MediumSpec::Slack { url } => {
                    let url = resolve(url, &format!("{at}.url"), true, env, base)?;
                    check_url(&url, &at)?;
                    Medium::Slack { url }
                }
                MediumSpec::Email {
                    host,
                    port,
                    tls,
                    username,
                    password,
                    from,
                    to,
                    ca_file,
                } => {
                    let password = password
                        .map(|p| resolve(p, &format!("{at}.password"), false, env, base))
                        .transpose()?;
                    if password.is_some() != username.is_some() {
                        return Err(err(format!(
                            "{at}: give both username and password, or neither"
                        )));
                    }
                    if to.is_empty() {
                        return Err(err(format!("{at}.to: at least one address")));
                    }
                    for a in std::iter::once(&from).chain(&to) {
                        a.parse::<lettre::message::Mailbox>().map_err(|e| {
                            err(format!("{at}: {a:?} is not an email address ({e})"))
                        })?;
                    }
                    let port = port.unwrap_or(match tls {
                        SmtpTls::Starttls => 587,
                        SmtpTls::Tls => 465,
                        SmtpTls::None => 25,
                    });
                    Medium::Email(Email {
                        host,
                        port,
                        tls,
                        username,
                        password,
                        from,
                        to,
                        ca_file: ca_file.map(|f| base.join(f)),
                    })
                }
                MediumSpec::Stdout {} => Medium::Stdout { to_stderr: false },
            };
            config.media.insert(name, medium);
        }
        for (i, r) in file.routes.into_iter().enumerate() {
            let at = format!("routes[{i}]");
            let mut on = Vec::new();
            for e in &r.on {
                match ROUTE_EVENTS.iter().find(|k| k.name() == e) {
                    Some(k) => on.push(*k),
                    None => {
                        let names: Vec<&str> = ROUTE_EVENTS.iter().map(|k| k.name()).collect();
                        return Err(err(format!(
                            "{at}.on: unknown event {e:?}; a route takes {}",
                            names.join(", ")
                        )));
                    }
                }
            }
            if on.is_empty() {
                return Err(err(format!("{at}.on: at least one event")));
            }
            let longer = on.contains(&NotifyEvent::RunningLongerThan);
            let after = match (r.after, longer) {
                (Some(a), true) => Some((duration(&a, &format!("{at}.after"))?, a)),
                (None, true) => {
                    return Err(err(format!(
                        "{at}: running_longer_than needs `after` (how long, e.g. \"2h\")"
                    )))
                }
                (Some(_), false) => {
                    return Err(err(format!("{at}.after: only for running_longer_than")))
                }
                (None, false) => None,
            };
            if r.to.is_empty() {
                return Err(err(format!("{at}.to: at least one medium")));
            }
            for m in &r.to {
                if !config.media.contains_key(m) {
                    return Err(err(format!(
                        "{at}.to: no medium is named {m:?}{}",
                        known(config.media.keys())
                    )));
                }
            }
            let pipelines = r
                .pipelines
                .iter()
                .map(|p| {
                    glob::Pattern::new(p).map_err(|e| err(format!("{at}.pipelines: {p:?}: {e}")))
                })
                .collect::<Result<_, _>>()?;
            config.routes.push(Route {
                on,
                pipelines,
                to: r.to,
                after,
            });
        }
        let d = file.delivery;
        if let Some(s) = d.schedule {
            config.schedule = Schedule(
                s.iter()
                    .map(|t| duration(t, "delivery.schedule"))
                    .collect::<Result<_, _>>()?,
            );
        }
        if let Some(t) = d.timeout {
            config.timeout = duration(&t, "delivery.timeout")?;
            if config.timeout.is_zero() {
                return Err(err("delivery.timeout: more than zero"));
            }
        }
        if let Some(c) = d.concurrency {
            if c == 0 {
                return Err(err("delivery.concurrency: at least 1"));
            }
            config.concurrency = c;
        }
        if let Some(n) = d.log_lines {
            config.log_lines = n;
        }
        Ok(config)
    }

    /// Without a configuration file: each run's start and end on standard output, for every
    /// pipeline that declares no `notify` of its own (what the original chainr's notifier did).
    pub fn stdout_only() -> Config {
        let mut config = Config::default();
        config
            .media
            .insert("stdout".into(), Medium::Stdout { to_stderr: false });
        config.routes.push(Route {
            on: vec![
                NotifyEvent::Started,
                NotifyEvent::Succeeded,
                NotifyEvent::Failed,
                NotifyEvent::Cancelled,
            ],
            pipelines: Vec::new(),
            to: vec!["stdout".into()],
            after: None,
        });
        config
    }

    /// Stdout media write to standard error instead (standard output carries something else).
    pub fn stdout_to_stderr(&mut self) {
        for m in self.media.values_mut() {
            if let Medium::Stdout { to_stderr } = m {
                *to_stderr = true;
            }
        }
    }

    /// The media's names, for the checker's did-you-mean.
    pub fn medium_names(&self) -> Vec<String> {
        self.media.keys().cloned().collect()
    }
}

fn known<'a>(names: impl Iterator<Item = &'a String>) -> String {
    let names: Vec<&str> = names.map(|s| s.as_str()).collect();
    if names.is_empty() {
        " (no media are defined)".into()
    } else {
        format!(" (the media are {})", names.join(", "))
    }
}

fn check_url(url: &Secret, at: &str) -> Result<(), ConfigError> {
    let u = url.expose();
    if u.starts_with("https://") || u.starts_with("http://") {
        Ok(())
    } else {
        Err(err(format!(
            "{at}.url (from {}): not an http:// or https:// address",
            url.source()
        )))
    }
}
