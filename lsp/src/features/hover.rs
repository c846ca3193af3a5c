//! Hover: what a name, field, setting, outcome or notification is; for a job, its condition and
//! what it compiles to.

use super::outcome_doc;
use crate::document::Document;
use chainr_compiler::fields;
use chainr_compiler::index::{Occurrence, SymbolKind};
use chainr_compiler::notify::{self, Level};
use chainr_compiler::syntax::{Item, Span};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hover {
    /// The name or word hovered.
    pub span: Span,
    pub markdown: String,
}

/// What the place at `offset` is, in Markdown, and the span it covers.
pub fn hover(doc: &Document, offset: usize) -> Option<Hover> {
    let (span, occurrence) = doc.index.at(offset)?;
    let text = match occurrence {
        Occurrence::Def(i) | Occurrence::Ref(i) => symbol_hover(doc, *i),
        Occurrence::Field(name) => match fields::job_field(name) {
            Some(f) => format!("**{}**: `{}`\n\n{}", f.name, f.ty, f.doc),
            None => format!("`{name}` is not a job field"),
        },
        Occurrence::Setting(name) => match fields::setting(name) {
            Some(f) => format!("**{}** (pipeline setting): `{}`\n\n{}", f.name, f.ty, f.doc),
            None => format!("`{name}` is not a pipeline setting"),
        },
        Occurrence::Outcome { name, .. } => format!("**.{name}**\n\n{}", outcome_doc(name)),
        Occurrence::Unresolved(name) => format!("`{name}`: not defined in this pipeline"),
        Occurrence::Notify(level) => notify_hover(*level),
        Occurrence::Event { name, level } => match notify::event(name) {
            Some(e) => format!(
                "**{name}**: an event of {}\n\n{}",
                level.noun(),
                notify::event_doc(e, *level)
            ),
            None => format!(
                "`{name}` is not an event: those of {} are {}",
                level.noun(),
                event_names(*level)
            ),
        },
        Occurrence::NotifyKey(key) if key == "to" => "**to**: list of string\n\nThe media to tell: names the server's configuration defines (a chat channel, a mail address, ...). At least one.".to_string(),
        Occurrence::NotifyKey(key) => format!("`{key}` is not a key of `notify`: it holds only `to`"),
    };
    Some(Hover {
        span: *span,
        markdown: text,
    })
}

fn event_names(level: Level) -> String {
    let names: Vec<String> = level
        .events()
        .iter()
        .map(|e| format!("`{}`", e.name()))
        .collect();
    names.join(", ")
}

fn notify_hover(level: Level) -> String {
    let about = match level {
        Level::Run => "A notification about the run",
        Level::Job => "A notification about this job (each instance of a fan-out)",
    };
    let inherit = match level {
        Level::Run => "",
        Level::Job => " Without a block, it sends to the media of the pipeline's notifications.",
    };
    format!(
        "**notify on EVENTS {{ to = [MEDIA] }}**\n\n{about}: when any of its events happens, a message goes to each medium of `to`.{inherit}\n\nEvents of {}: {}.",
        level.noun(),
        event_names(level)
    )
}

fn symbol_hover(doc: &Document, i: usize) -> String {
    let s = &doc.index.symbols[i];
    let decl = doc.text[s.decl.range()].trim();
    match s.kind {
        SymbolKind::Job => job_hover(doc, &s.name, s.finally),
        SymbolKind::Param => format!(
            "```chainr\n{decl}\n```\nPipeline param; set it with `-p {}=VALUE`.",
            s.name
        ),
        SymbolKind::Template => {
            let head = decl.split('{').next().unwrap_or(decl).trim();
            format!(
                "```chainr\ntemplate {}\n```\nUse it as `job NAME = {}(...)`.",
                head.trim_start_matches("template "),
                s.name
            )
        }
        SymbolKind::TemplateParam => format!("```chainr\n{decl}\n```\nTemplate parameter."),
        SymbolKind::LoopVar => format!(
            "`{}`: the fan-out variable, one value per instance.\n\n```chainr\n{decl}\n```",
            s.name
        ),
    }
}

fn job_hover(doc: &Document, name: &str, finally: bool) -> String {
    let mut out = format!("**job {name}**{}", if finally { " (finally)" } else { "" });
    let job = doc.file.items.iter().find_map(|item| match item {
        Item::Job(j) if j.name.name == name => Some(j),
        Item::Finally(f) => f.jobs.iter().find(|j| j.name.name == name),
        _ => None,
    });
    if let Some(j) = job {
        if let Some(a) = &j.after {
            out.push_str(&format!(
                "\n\nruns after: `{}`",
                doc.text[a.cond.span().range()].trim()
            ));
        } else if finally {
            out.push_str("\n\nruns once every other job has ended");
        } else {
            out.push_str("\n\nruns at the start of the run");
        }
    }
    if let Some(p) = &doc.pipeline {
        // The compiled job (after defaults and templates); a fan-out shows its first instance.
        let compiled = p
            .jobs
            .get(name)
            .map(|j| (name.to_string(), j, 1))
            .or_else(|| {
                let instances: Vec<_> = p
                    .jobs
                    .iter()
                    .filter(|(_, j)| j.group.as_deref() == Some(name))
                    .collect();
                instances
                    .first()
                    .map(|(n, j)| ((*n).clone(), *j, instances.len()))
            });
        if let Some((instance, j, count)) = compiled {
            if count > 1 {
                out.push_str(&format!(
                    "\n\nfan-out: {count} instances (`{instance}`, ...)"
                ));
            }
            out.push_str(&format!("\n\nimage: `{}`", j.image));
            if let Some(t) = &j.timeout {
                out.push_str(&format!(" · timeout: {}", t.0));
            }
            if j.retries > 0 {
                out.push_str(&format!(" · retries: {}", j.retries));
            }
            if j.allow_failure {
                out.push_str(" · allow_failure");
            }
            let run: Vec<&str> = j.run.lines().take(6).collect();
            out.push_str(&format!("\n\n```sh\n{}\n```", run.join("\n")));
        }
    }
    out.push_str("\n\n`after ");
    out.push_str(name);
    out.push_str("` waits for it to succeed; `.failed`, `.errored`, `.skipped`, `.cancelled`, `.done` test its other outcomes.");
    out
}
