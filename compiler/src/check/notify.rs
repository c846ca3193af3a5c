//! Notifications: `notify on EVENTS { to = [MEDIA] }` at the pipeline's level (about the run)
//! and in the bodies of jobs and templates (about the job). Events of the right level, a
//! duration exactly for `running_longer_than`, media with valid names; a `notify` without a
//! block in a job sends to the media of the pipeline's notifications. Lowered to `ir::Notify`.

use super::{Checker, Scope};
use crate::diagnostic::{did_you_mean, Diagnostic};
use crate::fields;
use crate::ir::{self, NotifyEvent};
use crate::limits;
use crate::notify::{self, Level, MediumUse};
use crate::syntax::*;
use crate::types::{Type, Value};
use crate::units::Duration;

/// The one key of a `notify` block.
const TO: &str = "to";

/// What a `notify`'s block gave: its media, or why there are none.
enum Media {
    /// No block, or a block without `to`.
    None,
    /// A problem, already reported.
    Invalid,
    Names(Vec<String>),
}

impl<'a> Checker<'a> {
    /// A `notify` at the pipeline's level; its media are the ones a job's `notify` without a
    /// block sends to.
    pub(super) fn pipeline_notify(&mut self, n: &Notify, pipeline: &mut ir::Pipeline) {
        let scope = Scope::empty();
        let (events, media) = self.notify_parts(n, Level::Run, &scope);
        let to = match media {
            Media::Names(to) => to,
            Media::Invalid => {
                self.pipeline_media_unknown = true;
                return;
            }
            Media::None => {
                self.no_media(n, Level::Run);
                self.pipeline_media_unknown = true;
                return;
            }
        };
        for m in &to {
            if !self.pipeline_media.contains(m) {
                self.pipeline_media.push(m.clone());
            }
        }
        if let Some((on, after)) = events {
            pipeline.notify.push(ir::Notify { on, to, after });
        }
    }

    /// The `notify` statements of a job's or a template's body, for one instance of a job.
    pub(super) fn job_notify(&mut self, body: &Block, scope: &Scope, out: &mut Vec<ir::Notify>) {
        for n in &body.notify {
            let (events, media) = self.notify_parts(n, Level::Job, scope);
            let to = match media {
                Media::Names(to) => to,
                Media::Invalid => continue,
                Media::None if n.body.is_none() && !self.pipeline_media.is_empty() => {
                    self.pipeline_media.clone()
                }
                // The pipeline's media are unknown (their problem is reported).
                Media::None if n.body.is_none() && self.pipeline_media_unknown => continue,
                Media::None => {
                    self.no_media(n, Level::Job);
                    continue;
                }
            };
            if let Some((on, after)) = events {
                out.push(ir::Notify { on, to, after });
            }
        }
    }

    /// `defaults` gives fields only.
    pub(super) fn no_notify_in_defaults(&mut self, defaults: &Block) {
        for n in &defaults.notify {
            self.diags.push(
                Diagnostic::error("E0706", "`notify` in `defaults`")
                    .primary(n.keyword.to(n.on), "`defaults` gives fields, not notifications")
                    .help("put it in the jobs to hear about (or in a template they use), or at the pipeline's level to hear about the run"),
            );
        }
    }

    /// A `notify`'s events (`None` when one is wrong) and its media.
    #[allow(clippy::type_complexity)]
    fn notify_parts(
        &mut self,
        n: &Notify,
        level: Level,
        scope: &Scope,
    ) -> (Option<(Vec<NotifyEvent>, Option<ir::DurationText>)>, Media) {
        let events = self.events(n, level, scope);
        // `notify on failed, env { ... }`: the block is the field's, reported with the event.
        let field_read_as_event = level == Level::Job
            && n.events.iter().any(|e| {
                notify::event(&e.name.name).is_none() && fields::job_field(&e.name.name).is_some()
            });
        let media = match &n.body {
            Some(b) if field_read_as_event => {
                b.entries
                    .iter()
                    .for_each(|e| self.mark_used_names(&e.value));
                Media::Invalid
            }
            Some(b) => self.media(b, scope),
            None => Media::None,
        };
        (events, media)
    }

    /// The events of a `notify`, each once, and the duration of `running_longer_than`.
    #[allow(clippy::type_complexity)]
    fn events(
        &mut self,
        n: &Notify,
        level: Level,
        scope: &Scope,
    ) -> Option<(Vec<NotifyEvent>, Option<ir::DurationText>)> {
        let mut ok = true;
        let mut on: Vec<(NotifyEvent, Span, Option<Duration>)> = Vec::new();
        for ev in &n.events {
            let name = ev.name.name.as_str();
            let Some(e) = notify::event(name) else {
                self.unknown_event(&ev.name, level);
                ok = false;
                continue;
            };
            if !level.events().contains(&e) {
                self.misplaced_event(&ev.name, e, level);
                ok = false;
                continue;
            }
            let duration = match (&ev.after, notify::takes_duration(e)) {
                (None, false) => None,
                (None, true) => {
                    self.diags.push(
                        Diagnostic::error("E0702", format!("`{name}` needs a duration"))
                            .primary(ev.name.span, "how long a run may run before this is sent?")
                            .help(format!("write the duration after it: `{name} 2h`")),
                    );
                    ok = false;
                    continue;
                }
                (Some(d), false) => {
                    self.diags.push(
                        Diagnostic::error("E0702", format!("`{name}` takes no duration"))
                            .primary(
                                d.span,
                                "only `running_longer_than` is followed by a duration",
                            )
                            .help("remove the duration")
                            .fix(
                                Span::new(ev.name.span.end as usize, d.span.end as usize),
                                "",
                            ),
                    );
                    ok = false;
                    continue;
                }
                (Some(d), true) => match self.eval(d, &Type::Duration, scope) {
                    Some(Value::Duration(t)) if t < limits::MIN_RUNNING_LONGER_THAN => {
                        self.diags.push(
                            Diagnostic::error("E0702", format!("`{name}` of zero"))
                                .primary(d.span, "every run is running when it starts")
                                .help("give a duration above zero"),
                        );
                        ok = false;
                        continue;
                    }
                    Some(Value::Duration(t)) => Some(t),
                    _ => {
                        ok = false;
                        continue;
                    }
                },
            };
            match on.iter().find(|(seen, _, _)| *seen == e) {
                Some((_, first, before)) if duration.is_some() && duration != *before => {
                    self.diags.push(
                        Diagnostic::error(
                            "E0702",
                            format!("`{name}` is given twice with different durations"),
                        )
                        .primary(ev.span, "given again here")
                        .secondary(*first, "first given here")
                        .help("a `notify` has one duration: write one `notify` for each"),
                    );
                    ok = false;
                }
                Some((_, first, _)) => self.diags.push(
                    Diagnostic::warning("W0005", format!("the event `{name}` is named twice"))
                        .primary(ev.span, "named again here")
                        .secondary(*first, "first named here")
                        .help("remove one of them"),
                ),
                None => on.push((e, ev.span, duration)),
            }
        }
        let after = on.iter().find_map(|(_, _, d)| *d).map(ir::DurationText);
        ok.then(|| (on.into_iter().map(|(e, _, _)| e).collect(), after))
    }

    fn unknown_event(&mut self, name: &Ident, level: Level) {
        let word = name.name.as_str();
        let mut d = Diagnostic::error("E0700", format!("unknown event `{word}`"))
            .primary(name.span, format!("not an event of {}", level.noun()));
        let events: Vec<&str> = level.events().iter().map(|e| e.name()).collect();
        if fields::job_field(word).is_some() && level == Level::Job {
            // `notify on failed, env { ... }`: after a `,`, a word and a block read as an event.
            d = d.help(format!(
                "`{word}` is a job field: put the `notify` on a line of its own, or end it with `;`"
            ));
        } else if let Some(s) = notify::suggest_event(word, level) {
            d = d.help(format!("did you mean `{s}`?")).fix(name.span, s);
        } else {
            d = d.help(format!(
                "the events of {} are {}",
                level.noun(),
                join_and(&events)
            ));
        }
        self.diags.push(d);
    }

    fn misplaced_event(&mut self, name: &Ident, e: NotifyEvent, level: Level) {
        let word = e.name();
        let (label, help) = match level {
            Level::Run => (
                "an event of a job",
                format!("to hear of a job that {word}, write `notify on {word}` in that job"),
            ),
            Level::Job => (
                "an event of the run",
                format!(
                    "a job's events are succeeded, failed and errored; to hear of the run, write `notify on {word} ...` at the pipeline's level"
                ),
            ),
        };
        self.diags.push(
            Diagnostic::error(
                "E0701",
                format!("`{word}` is not an event of {}", level.noun()),
            )
            .primary(name.span, label)
            .help(help),
        );
    }

    /// The media of a `notify`'s block: `to = [...]`, valid names, each once.
    fn media(&mut self, b: &Block, scope: &Scope) -> Media {
        let mut to: Option<&Entry> = None;
        let mut ok = true;
        let has_to = b.entries.iter().any(|e| e.key.name == TO);
        for e in &b.entries {
            let key = e.key.name.as_str();
            if key != TO {
                let mut d = Diagnostic::error("E0703", format!("unknown key `{key}` in `notify`"))
                    .primary(e.key.span, "a `notify` block holds only `to`");
                let alias = matches!(
                    key,
                    "media"
                        | "medium"
                        | "channel"
                        | "channels"
                        | "targets"
                        | "target"
                        | "send_to"
                        | "recipients"
                        | "via"
                );
                if has_to {
                    d = d.help("remove it: a `notify` tells the media of `to` of its events");
                } else if alias || did_you_mean(key, [TO]).is_some() {
                    d = d.help("did you mean `to`?").fix(e.key.span, TO);
                } else {
                    d = d.help("write the media to tell: `{ to = [\"team-slack\"] }`");
                }
                self.diags.push(d);
                self.mark_used_names(&e.value);
                ok = false;
                continue;
            }
            if let Some(first) = to {
                self.diags.push(
                    Diagnostic::error("E0201", "the field `to` is set twice")
                        .primary(e.key.span, "set again here")
                        .secondary(first.key.span, "first set here")
                        .help("put every medium in one list"),
                );
                ok = false;
                continue;
            }
            to = Some(e);
        }
        let Some(to) = to else {
            return if ok { Media::None } else { Media::Invalid };
        };
        let names = self.media_list(&to.value, scope);
        match names {
            Some(names) if ok => Media::Names(names),
            _ => Media::Invalid,
        }
    }

    /// The names of `to`'s list, checked, with where each is written.
    fn media_list(&mut self, value: &Expr, scope: &Scope) -> Option<Vec<String>> {
        if let ExprKind::Str(parts) = &value.kind {
            let mut d = Diagnostic::error("E0203", "mismatched types")
                .primary(value.span, "expected a list of strings, found a string")
                .help("`to` is a list, even of one medium");
            if let [StrPart::Text(t)] = parts.as_slice() {
                if ir::is_medium_name(t) {
                    d = d.fix(value.span, format!("[\"{t}\"]"));
                }
            }
            self.diags.push(d);
            self.mark_used_names(value);
            return None;
        }
        let Value::List(items) = self.eval(value, &Type::List(Box::new(Type::String)), scope)?
        else {
            return None;
        };
        if items.is_empty() {
            self.diags.push(
                Diagnostic::error("E0704", "a `notify` with no media")
                    .primary(value.span, "this list is empty")
                    .help("name the media to tell: `to = [\"team-slack\"]`"),
            );
            return None;
        }
        // Where each name is written: the list's own elements, or the expression that gave it.
        let elements = match &value.kind {
            ExprKind::List(es) if es.len() == items.len() => es.iter().map(Some).collect(),
            _ => vec![None; items.len()],
        };
        let mut names: Vec<String> = Vec::with_capacity(items.len());
        let mut first_at: Vec<Span> = Vec::with_capacity(items.len());
        let mut ok = true;
        for (item, element) in items.into_iter().zip(elements) {
            let Value::Str(name) = item else {
                continue;
            };
            let span = element.map_or(value.span, |e| e.span);
            if !ir::is_medium_name(&name) {
                self.diags.push(
                    Diagnostic::error("E0704", format!("`{name}` is not a valid medium name"))
                        .primary(span, "not a medium name")
                        .help("a medium is named with letters, digits, `-` and `_`, starting with a letter, at most 63 bytes, as the server's configuration names it"),
                );
                ok = false;
                continue;
            }
            if let Some(i) = names.iter().position(|n| *n == name) {
                self.diags.push(
                    Diagnostic::warning("W0005", format!("the medium `{name}` is named twice"))
                        .primary(span, "named again here")
                        .secondary(first_at[i], "first named here")
                        .help("remove one of them"),
                );
                continue;
            }
            let literal = element.is_some_and(
                |e| matches!(&e.kind, ExprKind::Str(parts) if matches!(parts.as_slice(), [StrPart::Text(t)] if *t == name)),
            );
            let medium = MediumUse {
                name: name.clone(),
                span: Some(span),
                literal,
                job: None,
            };
            self.media.insert(medium);
            names.push(name);
            first_at.push(span);
        }
        ok.then_some(names)
    }

    /// A `notify` that names no media where it would need to.
    fn no_media(&mut self, n: &Notify, level: Level) {
        let events: Vec<&str> = n.events.iter().map(|e| e.name.name.as_str()).collect();
        let example = format!(
            "notify on {} {{ to = [\"team-slack\"] }}",
            events.join(", ")
        );
        let (message, label, help) = match (level, &n.body) {
            (_, Some(_)) => (
                "a `notify` with no media",
                "this block has no `to`",
                format!("name the media to tell: `{example}`"),
            ),
            (Level::Run, None) => (
                "a `notify` with no media",
                "whom should this tell?",
                format!("name the media to tell: `{example}`"),
            ),
            (Level::Job, None) => (
                "a `notify` with no media, and the pipeline has none to send to",
                "whom should this tell?",
                format!(
                    "name the media: `{example}`; a job's `notify` without a block sends to the media of the pipeline's `notify`"
                ),
            ),
        };
        let span = match &n.body {
            Some(b) => b.span,
            None => n.keyword.to(n.events.last().map_or(n.on, |e| e.span)),
        };
        self.diags.push(
            Diagnostic::error("E0705", message)
                .primary(span, label)
                .help(help),
        );
    }
}

/// `a, b and c`.
fn join_and(words: &[&str]) -> String {
    match words {
        [] => String::new(),
        [one] => one.to_string(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}
