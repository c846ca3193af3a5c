//! Notifications (`notify on failed { to = ["team-slack"] }`): the events a `notify` may name
//! where it stands and what each means (for the checker, hover and completion), and the check
//! of the media a pipeline names against the media a server knows.
//!
//! Media are defined in the server's configuration, which the compiler never reads: the checker
//! only checks the shape of a medium's name ([`ir::is_medium_name`]). A caller that knows the
//! configured media (the CLI given the server's configuration, the server itself) passes their
//! names to [`check_media`] (or [`Compiled::check_media`]), which reports every other name. Like
//! the rest of the compiler, this does no IO.

use crate::diagnostic::{self, did_you_mean, Diagnostic};
use crate::ir::{self, NotifyEvent};
use crate::lex::{self, TokenKind};
use crate::syntax::Span;
use crate::Compiled;

/// Where a `notify` stands: at the pipeline's level it is about the run; in a job's body (or a
/// template's) it is about the job.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Level {
    Run,
    Job,
}

impl Level {
    /// The events a `notify` may name here.
    pub fn events(self) -> &'static [NotifyEvent] {
        match self {
            Level::Run => NotifyEvent::PIPELINE,
            Level::Job => NotifyEvent::JOB,
        }
    }

    /// What its events are about, in messages: "the run", "a job".
    pub fn noun(self) -> &'static str {
        match self {
            Level::Run => "the run",
            Level::Job => "a job",
        }
    }
}

/// Every event, at either level, in the order users read them.
pub const EVENTS: [NotifyEvent; 6] = [
    NotifyEvent::Started,
    NotifyEvent::Succeeded,
    NotifyEvent::Failed,
    NotifyEvent::Cancelled,
    NotifyEvent::Errored,
    NotifyEvent::RunningLongerThan,
];

/// The event written `name`, whatever its level; `None` when no event has that name.
pub fn event(name: &str) -> Option<NotifyEvent> {
    EVENTS.into_iter().find(|e| e.name() == name)
}

/// Whether an event is written with a duration after it (`running_longer_than 2h`).
pub fn takes_duration(e: NotifyEvent) -> bool {
    e == NotifyEvent::RunningLongerThan
}

/// What an event means at a level, for hover and completion.
pub fn event_doc(e: NotifyEvent, level: Level) -> &'static str {
    use NotifyEvent as E;
    match (e, level) {
        (E::Started, Level::Run) => "The run started: its first job started.",
        (E::Succeeded, Level::Run) => {
            "The run finished and succeeded: no job failed or errored, other than jobs with `allow_failure`."
        }
        (E::Failed, Level::Run) => {
            "The run finished and failed: a job without `allow_failure` failed or errored."
        }
        (E::Cancelled, Level::Run) => "The run finished cancelled.",
        (E::RunningLongerThan, Level::Run) => {
            "The run is still running this long after it started (`running_longer_than 2h`). Sent once per run."
        }
        (E::Succeeded, Level::Job) => {
            "The job succeeded: its final outcome, after its retries. For a fan-out job, each instance is told of."
        }
        (E::Failed, Level::Job) => {
            "The job failed: its last attempt exited non-zero or ran past its timeout, after its retries. For a fan-out job, each instance is told of."
        }
        (E::Errored, Level::Job) => {
            "The job errored: it could not run (image pull failure, unschedulable, evicted, executor error), after its retries. For a fan-out job, each instance is told of."
        }
        (E::Errored, Level::Run) => {
            "Not an event of the run: `notify on errored` in a job tells of that job erroring."
        }
        (E::Started | E::Cancelled | E::RunningLongerThan, Level::Job) => {
            "Not an event of a job: a `notify` at the pipeline's level tells of the run starting, being cancelled or running long."
        }
    }
}

/// The event a word that is not one of a level's events most likely means (`failure` →
/// `failed`, `timeout` → `running_longer_than`), for "did you mean" help.
pub fn suggest_event(word: &str, level: Level) -> Option<&'static str> {
    let synonym = match word {
        "success" | "succeed" | "successful" | "ok" | "passed" | "done" | "finished" => {
            Some(NotifyEvent::Succeeded)
        }
        "failure" | "fail" | "failing" => Some(NotifyEvent::Failed),
        "error" | "err" | "errors" => Some(NotifyEvent::Errored),
        "canceled" | "cancel" | "aborted" => Some(NotifyEvent::Cancelled),
        "start" | "begin" | "begun" | "running" => Some(NotifyEvent::Started),
        "timeout"
        | "slow"
        | "running_longer"
        | "longer_than"
        | "running-longer-than"
        | "running_for"
        | "after" => Some(NotifyEvent::RunningLongerThan),
        _ => None,
    };
    match synonym {
        Some(e) if level.events().contains(&e) => Some(e.name()),
        _ => did_you_mean(word, level.events().iter().map(|e| e.name())),
    }
}

/// Whether an event of a `notify` goes at `at`: right after `notify on`, or after a `,` of its
/// events. Read with the lexer from `from` (before the `notify`), so that it works on text that
/// does not parse: for syntax errors, and for an editor's completion.
pub fn expects_event(src: &str, from: usize, at: usize) -> bool {
    let tokens: Vec<lex::Token> = lex::tokens_from(src, from)
        .take_while(|t| t.start < at)
        .filter(|t| !t.kind.is_trivia())
        .collect();
    let word = |t: &lex::Token, w: &str| t.kind == TokenKind::Word && t.text(src) == w;
    match tokens.last() {
        Some(t) if word(t, "on") || t.is_punct(src, ",") => {}
        _ => return false,
    }
    for (i, t) in tokens.iter().enumerate().rev() {
        if word(t, "on") {
            return i > 0 && word(&tokens[i - 1], "notify");
        }
        if !(matches!(t.kind, TokenKind::Word | TokenKind::Number) || t.is_punct(src, ",")) {
            return false;
        }
    }
    false
}

/// One place a pipeline names a notification medium.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct MediumUse {
    /// The medium's name, as the IR holds it.
    pub name: String,
    /// Where it is written: the string in source (or the expression that gave it, a param or an
    /// interpolation), the string in IR JSON; `None` for a pipeline that has no text.
    pub span: Option<Span>,
    /// The span is the name's own string literal, so writing another name's literal there
    /// fixes a misspelling.
    pub literal: bool,
    /// For IR, the job whose notification names it (`None`: the pipeline's). Source has spans
    /// instead and leaves this `None`.
    pub job: Option<String>,
}

/// The media of a compiled pipeline that `known` does not name, as errors (E0707) with a
/// did-you-mean among `known`: for source at the string that names the medium, for IR JSON at
/// the string too and with the job's name. `known` is every medium the server's configuration
/// defines.
///
/// Call it on what [`crate::compile`], [`crate::compile_file`] or [`crate::compile_json`]
/// returned, when it has no error; its [`Compiled::media`] says where each medium is named:
///
/// ```
/// let src = r#"pipeline p {
///   notify on failed { to = ["team-slak"] }
///   job a { image = "busybox" run = "true" }
/// }"#;
/// let out = chainr_compiler::compile(src, &Default::default());
/// let problems = chainr_compiler::notify::check_media(&out, &["team-slack", "oncall-mail"]);
/// assert_eq!(problems[0].code, "E0707");
/// assert_eq!(problems[0].help.as_deref(), Some("did you mean `team-slack`?"));
/// ```
pub fn check_media<S: AsRef<str>>(compiled: &Compiled, known: &[S]) -> Vec<Diagnostic> {
    unknown_media(&compiled.media, known)
}

fn unknown_media<S: AsRef<str>>(uses: &[MediumUse], known: &[S]) -> Vec<Diagnostic> {
    let known: Vec<&str> = known.iter().map(AsRef::as_ref).collect();
    let mut out = Vec::new();
    for u in uses.iter().filter(|u| !known.contains(&u.name.as_str())) {
        let message = match &u.job {
            Some(job) => format!("job `{job}`: unknown notification medium `{}`", u.name),
            None => format!("unknown notification medium `{}`", u.name),
        };
        let mut d = Diagnostic::error("E0707", message);
        if let Some(span) = u.span {
            d = d.primary(span, "the server has no medium of this name");
        }
        d = match did_you_mean(&u.name, known.iter().copied()) {
            Some(s) => {
                let d = d.help(format!("did you mean `{s}`?"));
                match u.span {
                    Some(span) if u.literal => d.fix(span, format!("\"{s}\"")),
                    _ => d,
                }
            }
            None if known.is_empty() => d.help(
                "the server has no notification media; they are defined in its configuration",
            ),
            None => d.help(format!("the server's media are {}", known.join(", "))),
        };
        out.push(d);
    }
    diagnostic::normalize(&mut out);
    out
}

/// The media a pipeline names, each name once: the pipeline's notifications first, then the
/// jobs' in order.
fn media_of(p: &ir::Pipeline) -> Vec<MediumUse> {
    let mut out: Vec<MediumUse> = Vec::new();
    let places = std::iter::once((None, &p.notify))
        .chain(p.jobs.iter().map(|(name, j)| (Some(name), &j.notify)));
    for (job, notify) in places {
        for medium in notify.iter().flat_map(|n| &n.to) {
            if !out.iter().any(|u| u.name == *medium) {
                out.push(MediumUse {
                    name: medium.clone(),
                    span: None,
                    literal: false,
                    job: job.cloned(),
                });
            }
        }
    }
    out
}

/// The media of IR that arrived as JSON, at the strings of `src` that name them.
pub(crate) fn media_in_json(p: &ir::Pipeline, src: &str) -> Vec<MediumUse> {
    let strings = json_media_strings(src);
    let mut uses = media_of(p);
    for u in &mut uses {
        if let Some((_, _, span)) = strings
            .iter()
            .find(|(job, name, _)| *job == u.job && *name == u.name)
        {
            u.span = Some(*span);
            u.literal = true;
        }
    }
    uses
}

/// Every string in a `to` of a `notify` of IR JSON, in order, with the job it is in (`None`
/// for the pipeline's notifications) and its span.
fn json_media_strings(src: &str) -> Vec<(Option<String>, String, Span)> {
    /// An object or array, with the key it is the value of.
    struct Open {
        array: bool,
        key: Option<String>,
    }
    let mut out = Vec::new();
    let mut open: Vec<Open> = Vec::new();
    let mut key: Option<String> = None;
    // JSON's strings, brackets and blanks are tokens of the language's lexer too.
    let mut tokens = lex::tokens(src).filter(|t| !t.kind.is_trivia()).peekable();
    while let Some(t) = tokens.next() {
        match t.kind {
            TokenKind::Str { .. } => {
                let Ok(text) = serde_json::from_str::<String>(t.text(src)) else {
                    continue;
                };
                if tokens.peek().is_some_and(|n| n.is_punct(src, ":")) {
                    key = Some(text);
                    continue;
                }
                let n = open.len();
                let key_of = |i: usize| open[i].key.as_deref();
                let in_to = n >= 4
                    && open[n - 1].array
                    && key_of(n - 1) == Some("to")
                    && !open[n - 2].array
                    && open[n - 3].array
                    && key_of(n - 3) == Some("notify");
                let job = match n {
                    4 if in_to => None,
                    6 if in_to && key_of(1) == Some("jobs") => open[2].key.clone(),
                    _ => continue,
                };
                out.push((job, text, t.span()));
            }
            TokenKind::Punct => match src.as_bytes()[t.start] {
                b @ (b'{' | b'[') => open.push(Open {
                    array: b == b'[',
                    key: key.take(),
                }),
                b'}' | b']' => {
                    open.pop();
                    key = None;
                }
                _ => {}
            },
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{compile, compile_json, Params};

    const SOURCE: &str = r#"pipeline p {
  param team: string = "team-slak"
  notify on failed, cancelled { to = ["team-slack", "oncall-mial"] }
  job a {
    image = "busybox"
    run = "true"
    notify on failed { to = ["${team}", "pager"] }
  }
  job b { image = "busybox" run = "true" notify on errored }
}
"#;

    fn codes_and_texts(src: &str, diags: &[Diagnostic]) -> Vec<(String, String)> {
        diags
            .iter()
            .map(|d| {
                let span = d.primary_span().expect("a label");
                (d.message.clone(), src[span.range()].to_string())
            })
            .collect()
    }

    #[test]
    fn unknown_media_in_source_are_reported_where_they_are_written() {
        let out = compile(SOURCE, &Params::default());
        assert!(out.diagnostics.is_empty(), "{:?}", out.diagnostics);
        let known = ["team-slack", "oncall-mail", "pager"];
        let problems = check_media(&out, &known);
        assert_eq!(
            codes_and_texts(SOURCE, &problems),
            [
                (
                    "unknown notification medium `oncall-mial`".to_string(),
                    "\"oncall-mial\"".to_string()
                ),
                (
                    "unknown notification medium `team-slak`".to_string(),
                    "\"${team}\"".to_string()
                ),
            ]
        );
        assert!(problems.iter().all(|d| d.code == "E0707"));
        // A literal can be fixed in place; an interpolation cannot.
        assert_eq!(
            problems[0].help.as_deref(),
            Some("did you mean `oncall-mail`?")
        );
        assert_eq!(
            problems[0].fix.as_ref().unwrap().replacement,
            "\"oncall-mail\""
        );
        assert_eq!(
            problems[1].help.as_deref(),
            Some("did you mean `team-slack`?")
        );
        assert!(problems[1].fix.is_none());
        // `b`'s bare `notify on errored` sends to the pipeline's media: reported there only.
        let all = ["team-slack", "oncall-mial", "pager", "team-slak"];
        assert!(
            check_media(&out, &all).is_empty(),
            "{:?}",
            check_media(&out, &all)
        );
    }

    #[test]
    fn without_known_media_every_medium_is_unknown() {
        let out = compile(SOURCE, &Params::default());
        let none: [&str; 0] = [];
        let problems = check_media(&out, &none);
        assert_eq!(problems.len(), 4);
        assert!(problems[0]
            .help
            .as_deref()
            .unwrap()
            .contains("no notification media"));
        let far = check_media(&out, &["zzz".to_string()]);
        assert_eq!(far[0].help.as_deref(), Some("the server's media are zzz"));
    }

    #[test]
    fn unknown_media_in_ir_json_name_the_job_and_the_string() {
        let src = r#"{"kind": "Pipeline",
  "notify": [{"on": ["failed"], "to": ["team-slack"]}],
  "jobs": {
    "to": {"image": "busybox", "run": "true", "env": {"to": "x"},
           "notify": [{"on": ["failed"], "to": ["team-slack", "pagr"]}]}
  }
}"#;
        let out = compile_json(src);
        assert!(out.diagnostics.is_empty(), "{:?}", out.diagnostics);
        let problems = check_media(&out, &["team-slack", "pager"]);
        assert_eq!(
            codes_and_texts(src, &problems),
            [(
                "job `to`: unknown notification medium `pagr`".to_string(),
                "\"pagr\"".to_string()
            )]
        );
        assert_eq!(problems[0].fix.as_ref().unwrap().replacement, "\"pager\"");
    }

    #[test]
    fn where_an_event_goes() {
        let at_end = |text: &str| expects_event(text, 0, text.len());
        assert!(at_end("pipeline p { notify on "));
        assert!(at_end("pipeline p { job a { notify on failed, "));
        assert!(at_end("notify on running_longer_than 2h,"));
        assert!(!at_end("pipeline p { notify on failed "));
        assert!(!at_end("pipeline p { job a after b, "));
        assert!(!at_end("notify on failed { to = [\"a\", "));
        assert!(!at_end("job on "));
    }

    #[test]
    fn events_by_level() {
        assert_eq!(
            event("running_longer_than"),
            Some(NotifyEvent::RunningLongerThan)
        );
        assert_eq!(event("skipped"), None);
        assert_eq!(suggest_event("failure", Level::Job), Some("failed"));
        assert_eq!(
            suggest_event("timeout", Level::Run),
            Some("running_longer_than")
        );
        assert_eq!(suggest_event("erored", Level::Job), Some("errored"));
        // `error` means `errored`, which is not the run's: the closest of the run's instead.
        assert_eq!(suggest_event("error", Level::Run), None);
        assert_eq!(suggest_event("canceled", Level::Run), Some("cancelled"));
        assert_eq!(suggest_event("deploy", Level::Run), None);
        for level in [Level::Run, Level::Job] {
            for e in EVENTS {
                assert!(!event_doc(e, level).is_empty());
            }
        }
    }
}
