//! Validation of IR that arrives as JSON (`chainrc check pipeline.json`, `POST /api/runs`):
//! the same rigour as source. Unknown fields, unknown dependencies, cycles and invalid values are
//! errors that name the jobs, found before anything runs.

use crate::diagnostic::{did_you_mean, Diagnostic};
use crate::graph::find_cycles;
use crate::ir::{self, Pipeline};
use crate::lex::{self, TokenKind};
use crate::limits;
use crate::names;
use crate::syntax::Span;
use crate::units;
use std::collections::HashMap;

/// Parses and validates IR JSON. Returns the pipeline when there is no error.
pub fn validate_json(src: &str) -> (Option<Pipeline>, Vec<Diagnostic>) {
    let pipeline: Pipeline = match serde_json::from_str(src) {
        Ok(p) => p,
        Err(e) => return (None, vec![json_error(src, &e)]),
    };
    let diags = validate(&pipeline, src);
    let ok = !diags.iter().any(Diagnostic::is_error);
    (ok.then_some(pipeline), diags)
}

fn json_error(src: &str, e: &serde_json::Error) -> Diagnostic {
    let offset = offset_of(src, e.line(), e.column());
    let text = e.to_string();
    // serde_json appends " at line L column C"; the label shows where.
    let message = text
        .rsplit_once(" at line ")
        .map_or(text.as_str(), |(m, _)| m)
        .to_string();
    let mut d = Diagnostic::error("E0900", format!("invalid pipeline: {message}"))
        .primary(Span::char_at(src, offset), "here");
    if let Some(rest) = message.strip_prefix("unknown field `") {
        // serde names the field and the expected ones: suggest the closest.
        let field = rest.split('`').next().unwrap_or("");
        let expected: Vec<&str> = rest.split('`').skip(2).step_by(2).collect();
        d = match did_you_mean(field, expected) {
            Some(s) => d.help(format!("did you mean `{s}`?")),
            None => d.help(
                "the fields of the IR are listed in docs/ir.md and docs/pipeline.schema.json",
            ),
        };
    } else if message.contains("unknown variant") && message.contains("Pipeline") {
        d = d.help("a pipeline's `kind` is \"Pipeline\"");
    }
    d
}

fn offset_of(src: &str, line: usize, column: usize) -> usize {
    if line == 0 {
        return 0;
    }
    let line_start = src
        .split_inclusive('\n')
        .take(line - 1)
        .map(str::len)
        .sum::<usize>();
    (line_start + column.saturating_sub(1)).min(src.len())
}

/// Where a job's key is written in the JSON text, for labels: the key of that name in the
/// top-level `jobs` object (not a field or value elsewhere that happens to match).
fn job_span(src: &str, name: &str) -> Span {
    let mut depth = 0usize;
    // The depth of the `jobs` object's members, once its `{` is seen.
    let mut jobs_depth = None;
    let mut pending_jobs = false;
    // JSON's strings, brackets and blanks are tokens of the language's lexer too.
    let mut tokens = lex::tokens(src)
        .filter(|t| t.kind != TokenKind::Whitespace)
        .peekable();
    while let Some(t) = tokens.next() {
        match t.kind {
            TokenKind::Str { .. } => {
                let is_key = tokens.peek().is_some_and(|n| n.is_punct(src, ":"));
                if is_key {
                    let key: Option<String> = serde_json::from_str(t.text(src)).ok();
                    if depth == 1 && key.as_deref() == Some("jobs") {
                        pending_jobs = true;
                    } else if Some(depth) == jobs_depth && key.as_deref() == Some(name) {
                        return t.span();
                    }
                }
            }
            TokenKind::Punct => match src.as_bytes()[t.start] {
                b @ (b'{' | b'[') => {
                    depth += 1;
                    if pending_jobs && b == b'{' && depth == 2 {
                        jobs_depth = Some(2);
                    }
                    pending_jobs = false;
                }
                b'}' | b']' => {
                    if Some(depth) == jobs_depth {
                        jobs_depth = None;
                    }
                    depth = depth.saturating_sub(1);
                }
                _ => {}
            },
            _ => {}
        }
    }
    Span::new(0, 0)
}

fn at(d: Diagnostic, src: &str, job: &str, message: impl Into<String>) -> Diagnostic {
    let span = job_span(src, job);
    if span == Span::new(0, 0) {
        d
    } else {
        d.primary(span, message)
    }
}

/// Checks a pipeline's meaning: names, dependencies, cycles and field values.
pub fn validate(p: &Pipeline, src: &str) -> Vec<Diagnostic> {
    let mut diags = Vec::new();
    let index: HashMap<&str, usize> = p
        .jobs
        .keys()
        .enumerate()
        .map(|(i, k)| (k.as_str(), i))
        .collect();
    let mut edges: Vec<Vec<usize>> = vec![Vec::new(); p.jobs.len()];
    let mut safe: HashMap<String, &str> = HashMap::new();
    if let Some(c) = p
        .concurrency
        .filter(|&c| !limits::CONCURRENCY.contains(c.into()))
    {
        let range = limits::CONCURRENCY;
        diags.push(Diagnostic::error(
            "E0910",
            format!(
                "`concurrency` {c} is out of range ({} to {})",
                range.min, range.max
            ),
        ));
    }
    for problem in notify_problems(&p.notify, ir::NotifyEvent::PIPELINE) {
        diags.push(Diagnostic::error(
            "E0911",
            format!("invalid pipeline notification: {problem}"),
        ));
    }
    for (i, (name, job)) in p.jobs.iter().enumerate() {
        for problem in notify_problems(&job.notify, ir::NotifyEvent::JOB) {
            diags.push(at(
                Diagnostic::error(
                    "E0911",
                    format!("job `{name}`: invalid notification: {problem}"),
                ),
                src,
                name,
                "in this job",
            ));
        }
        if name.is_empty()
            || name.len() > limits::MAX_JOB_NAME_LEN
            || name
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || c == '/')
        {
            diags.push(at(
                Diagnostic::error("E0906", format!("invalid job name {name:?}")),
                src,
                name,
                format!(
                    "job names are 1 to {} bytes, without spaces or `/`",
                    limits::MAX_JOB_NAME_LEN
                ),
            ));
        }
        // Exactly the runtime's derivation: names collide only when they really are equal.
        let k = names::job_segment(name);
        if let Some(other) = safe.insert(k.clone(), name) {
            diags.push(at(
                Diagnostic::error(
                    "E0907",
                    format!("the job names `{other}` and `{name}` collide in Kubernetes"),
                )
                .help(format!(
                    "both get Kubernetes Job names with `{k}` (the first characters of the name and a short hash of all of it); rename one of them"
                )),
                src,
                name,
                "collides",
            ));
        }
        if let Err(why) = units::check_image(&job.image) {
            diags.push(at(
                Diagnostic::error(
                    "E0905",
                    format!("job `{name}`: invalid image `{}`: {why}", job.image),
                ),
                src,
                name,
                "in this job",
            ));
        }
        for key in job.env.keys().chain(job.secret_env.keys()) {
            if !names::is_env_name(key) || key.starts_with(names::RESERVED_ENV_PREFIX) {
                diags.push(at(
                    Diagnostic::error(
                        "E0908",
                        format!("job `{name}`: invalid environment variable name `{key}`"),
                    )
                    .help("use letters, digits and `_`; CHAINR_ names are reserved"),
                    src,
                    name,
                    "in this job",
                ));
            }
        }
        for q in [&job.resources.cpu, &job.resources.memory]
            .into_iter()
            .flatten()
        {
            if let Err((why, suggestion)) = units::check_quantity(q) {
                let mut d = Diagnostic::error(
                    "E0909",
                    format!("job `{name}`: invalid quantity `{q}`: {why}"),
                );
                if let Some(s) = suggestion {
                    d = d.help(format!("did you mean `{s}`?"));
                }
                diags.push(at(d, src, name, "in this job"));
            }
        }
        if job.timeout.is_some_and(|t| t.0 < limits::MIN_TIMEOUT) {
            diags.push(at(
                Diagnostic::error(
                    "E0910",
                    format!("job `{name}`: a timeout of zero would kill every attempt at once"),
                ),
                src,
                name,
                "in this job",
            ));
        }
        if !limits::RETRIES.contains(job.retries.into()) {
            diags.push(at(
                Diagnostic::error(
                    "E0910",
                    format!(
                        "job `{name}`: {} retries is out of range ({} to {})",
                        job.retries,
                        limits::RETRIES.min,
                        limits::RETRIES.max
                    ),
                ),
                src,
                name,
                "in this job",
            ));
        }
        let mut needed: Vec<&str> = job.depends_on.iter().map(|d| d.job.as_str()).collect();
        if let Some(c) = &job.condition {
            c.jobs(&mut needed);
        }
        for dep in needed {
            if dep == name {
                diags.push(at(
                    Diagnostic::error("E0902", format!("the job `{name}` depends on itself")),
                    src,
                    name,
                    "this job",
                ));
                continue;
            }
            let Some(&t) = index.get(dep) else {
                let mut d = Diagnostic::error(
                    "E0901",
                    format!("the job `{name}` depends on `{dep}`, which does not exist"),
                );
                if let Some(s) = did_you_mean(dep, p.jobs.keys().map(String::as_str)) {
                    d = d.help(format!("did you mean `{s}`?"));
                }
                diags.push(at(d, src, name, "in this job"));
                continue;
            };
            if p.jobs[t].finally && !job.finally {
                diags.push(at(
                    Diagnostic::error(
                        "E0904",
                        format!("the job `{name}` depends on `{dep}`, a finally job"),
                    )
                    .help("only finally jobs can depend on finally jobs"),
                    src,
                    name,
                    "in this job",
                ));
                continue;
            }
            edges[i].push(t);
        }
    }
    let names: Vec<&str> = p.jobs.keys().map(String::as_str).collect();
    for cycle in find_cycles(&edges) {
        let mut path: Vec<&str> = cycle.iter().map(|&i| names[i]).collect();
        path.push(names[cycle[0]]);
        diags.push(at(
            Diagnostic::error("E0903", format!("dependency cycle: {}", path.join(" → ")))
                .help("remove one of these dependencies"),
            src,
            names[cycle[0]],
            "part of the cycle",
        ));
    }
    diags
}

/// What is wrong with notifications whose events must be among `allowed`: no events or media,
/// an event out of place or named twice, a bad or repeated medium, `after` without
/// `running_longer_than` or the reverse.
fn notify_problems(notify: &[ir::Notify], allowed: &[ir::NotifyEvent]) -> Vec<String> {
    let mut out = Vec::new();
    for n in notify {
        if n.on.is_empty() {
            out.push("`on` is empty".to_string());
        }
        if n.to.is_empty() {
            out.push("`to` is empty".to_string());
        }
        for (k, e) in n.on.iter().enumerate() {
            if !allowed.contains(e) {
                let names: Vec<&str> = allowed.iter().map(|e| e.name()).collect();
                out.push(format!(
                    "`{}` is not an event here (expected one of {})",
                    e.name(),
                    names.join(", ")
                ));
            } else if n.on[..k].contains(e) {
                out.push(format!("the event `{}` is given twice", e.name()));
            }
        }
        for (k, m) in n.to.iter().enumerate() {
            if !ir::is_medium_name(m) {
                out.push(format!("invalid medium name {m:?}"));
            } else if n.to[..k].contains(m) {
                out.push(format!("the medium `{m}` is given twice"));
            }
        }
        let longer = n.on.contains(&ir::NotifyEvent::RunningLongerThan);
        match &n.after {
            None if longer => out.push("`running_longer_than` needs `after`".to_string()),
            Some(_) if !longer => {
                out.push("`after` is given without `running_longer_than`".to_string())
            }
            Some(d) if d.0 < limits::MIN_RUNNING_LONGER_THAN => {
                out.push("`after` must be above zero".to_string())
            }
            _ => {}
        }
    }
    out
}
