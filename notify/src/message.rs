//! What a notification says, for each medium: pure functions of the notification, the run's
//! document and the end of its failed jobs' output. Every text that comes from a pipeline, a run
//! or a log is escaped for where it goes (Slack's mrkdwn, HTML).

use chainr_compiler::ir::NotifyEvent;
use chainr_runtime::log::Tail;
use chainr_runtime::outbox::Notification;
use chainr_runtime::record::{JobRecord, Run, Status};
use serde_json::{json, Value};
use std::time::{Duration, SystemTime};

/// A job to show in a message: one that failed or errored, with the end of its last attempt's
/// output.
#[derive(Clone, Debug)]
pub struct ShownJob {
    pub name: String,
    pub status: Status,
    /// Why it ended as it did ("exit code 2", "timed out after 5m").
    pub reason: Option<String>,
    pub attempts: u32,
    /// The number of its last attempt, whose output `tail` ends.
    pub last_attempt: Option<u32>,
    pub tail: Option<Tail>,
}

/// Everything a message is made of.
#[derive(Clone, Debug)]
pub struct Context<'a> {
    pub notification: &'a Notification,
    pub run: &'a Run,
    /// The jobs the message is about: the failed ones of a failed run, or the job of a job's
    /// event.
    pub jobs: Vec<ShownJob>,
    /// The UI's address, for links.
    pub ui_url: Option<&'a str>,
}

/// Failed jobs named in a message at most; the rest are counted.
pub const MAX_JOBS_SHOWN: usize = 10;
/// Slack's limit for a section's text.
const SLACK_SECTION_MAX: usize = 3000;

/// The jobs a message about `n` shows, from the run's document (output tails filled in by the
/// caller, which reads logs).
pub fn jobs_to_show(n: &Notification, run: &Run) -> Vec<ShownJob> {
    let pick = |j: &JobRecord| ShownJob {
        name: j.name.clone(),
        status: j.status,
        reason: j.reason.clone(),
        attempts: j.attempts.len() as u32,
        last_attempt: j.attempts.last().map(|a| a.attempt),
        tail: None,
    };
    match (&n.job, n.event) {
        (Some(job), _) => run
            .jobs
            .iter()
            .filter(|j| &j.name == job)
            .map(pick)
            .collect(),
        (None, NotifyEvent::Failed | NotifyEvent::Cancelled) => run
            .jobs
            .iter()
            .filter(|j| matches!(j.status, Status::Failed | Status::Errored))
            .map(pick)
            .collect(),
        _ => Vec::new(),
    }
}

impl Context<'_> {
    fn pipeline(&self) -> &str {
        &self.notification.pipeline
    }

    fn short_run(&self) -> &str {
        let uid = &self.notification.run;
        uid.get(..8).unwrap_or(uid)
    }

    /// The message in one line: `nightly-etl failed`, `nightly-etl: job load failed`.
    pub fn headline(&self) -> String {
        let n = self.notification;
        let p = self.pipeline();
        match (&n.job, n.event) {
            (Some(job), ev) => format!("{p}: job {job} {}", job_verb(ev)),
            (None, NotifyEvent::Started) => format!("{p} started"),
            (None, NotifyEvent::Succeeded) => format!("{p} succeeded"),
            (None, NotifyEvent::Failed | NotifyEvent::Errored) => format!("{p} failed"),
            (None, NotifyEvent::Cancelled) => format!("{p} was cancelled"),
            (None, NotifyEvent::RunningLongerThan) => format!(
                "{p} is still running after {}",
                n.after.as_deref().unwrap_or("its limit")
            ),
        }
    }

    /// How the run stands: `12 of 14 jobs succeeded, 2 failed · took 12m 3s`.
    pub fn summary(&self) -> String {
        let run = self.run;
        let total = run.jobs.len();
        // A start is told as it was: the run may well have gone on (or ended) before the
        // message is sent.
        if self.notification.event == NotifyEvent::Started && self.notification.job.is_none() {
            let mut text = match total {
                1 => "1 job".to_string(),
                n => format!("{n} jobs"),
            };
            if let Some(who) = &run.metadata.submitter {
                text.push_str(&format!(" · submitted by {who}"));
            }
            return text;
        }
        let mut parts = Vec::new();
        for s in Status::ALL {
            let k = run.jobs.iter().filter(|j| j.status == s).count();
            if k > 0 {
                parts.push((s, k));
            }
        }
        let mut text = match parts.as_slice() {
            [] => "no jobs".to_string(),
            [(s, k)] if *k == total => all_word(*s, total),
            _ => {
                let words: Vec<String> = parts
                    .iter()
                    .enumerate()
                    .map(|(i, (s, k))| {
                        if i == 0 {
                            format!("{k} of {total} jobs {}", status_word(*s))
                        } else {
                            format!("{k} {}", status_word(*s))
                        }
                    })
                    .collect();
                words.join(", ")
            }
        };
        if let Some(took) = self.took() {
            let verb = if run.finished_at.is_some() {
                "took"
            } else {
                "running for"
            };
            text.push_str(&format!(" · {verb} {}", human(took)));
        }
        if let Some(who) = &run.metadata.submitter {
            text.push_str(&format!(" · submitted by {who}"));
        }
        text
    }

    fn took(&self) -> Option<Duration> {
        let start = self.run.started_at?;
        let end = self.run.finished_at.unwrap_or(self.notification.at);
        end.duration_since(start).ok()
    }

    /// The run's page in the UI (the job's, for a job's event).
    pub fn link(&self) -> Option<String> {
        let base = self.ui_url?;
        let run = &self.notification.run;
        Some(match &self.notification.job {
            Some(job) => format!("{base}/runs/{run}/jobs/{}", encode_path(job)),
            None => format!("{base}/runs/{run}"),
        })
    }

    fn event_type(&self) -> String {
        let n = self.notification;
        let scope = if n.job.is_some() { "job" } else { "run" };
        format!("{scope}.{}", n.event.name())
    }

    fn shown(&self) -> &[ShownJob] {
        &self.jobs[..self.jobs.len().min(MAX_JOBS_SHOWN)]
    }

    fn more(&self) -> usize {
        self.jobs.len().saturating_sub(MAX_JOBS_SHOWN)
    }
}

fn job_verb(ev: NotifyEvent) -> &'static str {
    match ev {
        NotifyEvent::Succeeded => "succeeded",
        NotifyEvent::Failed => "failed",
        NotifyEvent::Errored => "could not run (errored)",
        NotifyEvent::Cancelled => "was cancelled",
        NotifyEvent::Started => "started",
        NotifyEvent::RunningLongerThan => "is still running",
    }
}

fn status_word(s: Status) -> &'static str {
    match s {
        Status::Pending => "pending",
        Status::Running => "running",
        Status::Successful => "succeeded",
        Status::Failed => "failed",
        Status::Skipped => "skipped",
        Status::Errored => "errored",
        Status::Cancelled => "cancelled",
    }
}

fn all_word(s: Status, total: usize) -> String {
    match total {
        1 => format!("its job {}", status_word(s)),
        2 => format!("both jobs {}", status_word(s)),
        _ => format!("all {total} jobs {}", status_word(s)),
    }
}

/// `12m 3s`: whole seconds, largest units first.
pub fn human(d: Duration) -> String {
    humantime::format_duration(Duration::from_secs(d.as_secs())).to_string()
}

fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

/// A job's name in a URL path: names may hold any character but `/` and blanks.
fn encode_path(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn job_line(j: &ShownJob) -> String {
    let mut line = format!("{} {}", j.name, status_word(j.status));
    if let Some(r) = &j.reason {
        line.push_str(&format!(" ({r})"));
    }
    if j.attempts > 1 {
        line.push_str(&format!(" after {} attempts", j.attempts));
    }
    line
}

// ------------------------------------------------------------------ webhook

/// The webhook's JSON body, in the Standard Webhooks shape (`type`, `timestamp`, `data`).
pub fn webhook_body(c: &Context) -> Value {
    let n = c.notification;
    let run = c.run;
    let mut counts = serde_json::Map::new();
    for s in Status::ALL {
        let k = run.jobs.iter().filter(|j| j.status == s).count();
        if k > 0 {
            counts.insert(status_word(s).to_string(), json!(k));
        }
    }
    let jobs: Vec<Value> = c
        .shown()
        .iter()
        .map(|j| {
            json!({
                "name": j.name,
                "status": j.status.word(),
                "reason": j.reason,
                "attempts": j.attempts,
                "logTail": j.tail.as_ref().map(|t| t.lines.clone()),
            })
        })
        .collect();
    json!({
        "type": c.event_type(),
        "timestamp": rfc3339(n.at),
        "data": {
            "id": n.id,
            "event": n.event.name(),
            "job": n.job,
            "after": n.after,
            "headline": c.headline(),
            "url": c.link(),
            "run": {
                "uid": run.metadata.uid,
                "pipeline": n.pipeline,
                "status": run.status.word(),
                "submitter": run.metadata.submitter,
                "createdAt": run.metadata.created_at.map(rfc3339),
                "startedAt": run.started_at.map(rfc3339),
                "finishedAt": run.finished_at.map(rfc3339),
                "jobs": counts,
                "selfLink": run.metadata.self_link,
            },
            "jobs": jobs,
            "moreJobs": c.more(),
        }
    })
}

// ------------------------------------------------------------------ Slack

/// Text for Slack's mrkdwn: `&`, `<` and `>` escaped, as Slack asks.
fn mrkdwn(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn emoji(c: &Context) -> &'static str {
    match c.notification.event {
        NotifyEvent::Succeeded => ":white_check_mark:",
        NotifyEvent::Failed | NotifyEvent::Errored => ":x:",
        NotifyEvent::Cancelled => ":no_entry_sign:",
        NotifyEvent::Started => ":arrow_forward:",
        NotifyEvent::RunningLongerThan => ":hourglass:",
    }
}

/// The section of a failed job: its line, then the last lines of its output in a code block,
/// as many as fit in Slack's 3,000 characters.
fn slack_job_section(j: &ShownJob) -> String {
    let head = format!("*{}*", mrkdwn(&job_line(j)));
    let Some(tail) = j.tail.as_ref().filter(|t| !t.lines.is_empty()) else {
        return head;
    };
    // Lines are escaped, and a fence inside one cannot close the block.
    let lines: Vec<String> = tail
        .lines
        .iter()
        .map(|l| mrkdwn(l).replace("```", "`\u{200b}``"))
        .collect();
    let budget = SLACK_SECTION_MAX - head.chars().count() - "\n```\n```".len() - 40;
    let mut kept: Vec<&str> = Vec::new();
    let mut used = 0;
    for l in lines.iter().rev() {
        let len = l.chars().count() + 1;
        if used + len > budget {
            if kept.is_empty() {
                // One line longer than the whole budget: its end.
                let chars: Vec<char> = l.chars().collect();
                let start = chars.len().saturating_sub(budget.saturating_sub(2));
                let cut: String = chars[start..].iter().collect();
                return format!("{head}\n```…{cut}```");
            }
            break;
        }
        used += len;
        kept.push(l);
    }
    kept.reverse();
    let label = if kept.len() < tail.total {
        format!(" _(last {} of {} lines)_", kept.len(), tail.total)
    } else {
        String::new()
    };
    format!("{head}{label}\n```{}```", kept.join("\n"))
}

/// A Slack incoming-webhook message: `blocks`, and `text` for notifications and clients that
/// show no blocks.
pub fn slack_body(c: &Context) -> Value {
    let headline = c.headline();
    let mut summary = format!("{} {}", emoji(c), mrkdwn(&c.summary()));
    summary.push_str(&format!("\nRun `{}`", mrkdwn(&c.notification.run)));
    let mut blocks = vec![
        json!({"type": "header", "text": {"type": "plain_text", "text": clip(&headline, 150), "emoji": true}}),
        json!({"type": "section", "text": {"type": "mrkdwn", "text": clip(&summary, SLACK_SECTION_MAX)}}),
    ];
    for j in c.shown() {
        blocks.push(
            json!({"type": "section", "text": {"type": "mrkdwn", "text": slack_job_section(j)}}),
        );
    }
    if c.more() > 0 {
        blocks.push(json!({"type": "context", "elements": [
            {"type": "mrkdwn", "text": format!("and {} more failed jobs", c.more())}
        ]}));
    }
    if let Some(link) = c.link() {
        let label = if c.notification.job.is_some() {
            "Open job"
        } else {
            "Open run"
        };
        blocks.push(json!({"type": "actions", "elements": [
            {"type": "button", "text": {"type": "plain_text", "text": label}, "url": link, "action_id": "open"}
        ]}));
    }
    let mut text = mrkdwn(&format!("{headline}: {}", c.summary()));
    if let Some(link) = c.link() {
        text.push_str(&format!(" <{link}|open>"));
    }
    json!({"text": text, "blocks": blocks})
}

fn clip(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut out: String = s.chars().take(max - 1).collect();
        out.push('…');
        out
    }
}

// ------------------------------------------------------------------ email

/// An email: subject, plain text and HTML.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mail {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// `last 20 of 214 lines`, when the tail is not the whole output.
fn cut(t: &Tail) -> Option<String> {
    (t.lines.len() < t.total).then(|| format!("last {} of {} lines", t.lines.len(), t.total))
}

pub fn mail(c: &Context) -> Mail {
    let headline = c.headline();
    let subject = format!("[chainr] {headline} (run {})", c.short_run());
    let (summary, link) = (c.summary(), c.link());
    let mut text = format!("{headline}\n\n{summary}\nRun: {}\n", c.notification.run);
    if let Some(link) = &link {
        text.push_str(&format!("Open: {link}\n"));
    }
    for j in c.shown() {
        text.push_str(&format!("\n{}\n", job_line(j)));
        if let Some(t) = &j.tail {
            if let Some(cut) = cut(t) {
                text.push_str(&format!("  ({cut})\n"));
            }
            for l in &t.lines {
                text.push_str(&format!("    {l}\n"));
            }
        }
    }
    if c.more() > 0 {
        text.push_str(&format!("\nand {} more failed jobs\n", c.more()));
    }
    text.push_str("\n-- \nSent by chainr's notifier.\n");

    let e = |s: &str| html_escape::encode_text(s).into_owned();
    let mut html = String::from(
        "<!DOCTYPE html>\n<html><body style=\"font-family: sans-serif; color: #1f2328\">\n",
    );
    html.push_str(&format!("<h2>{}</h2>\n", e(&headline)));
    html.push_str(&format!(
        "<p>{}<br>Run <code>{}</code></p>\n",
        e(&summary),
        e(&c.notification.run)
    ));
    if let Some(link) = &link {
        html.push_str(&format!(
            "<p><a href=\"{}\">Open in chainr</a></p>\n",
            html_escape::encode_double_quoted_attribute(link)
        ));
    }
    for j in c.shown() {
        html.push_str(&format!("<h3>{}</h3>\n", e(&job_line(j))));
        if let Some(t) = &j.tail {
            if let Some(cut) = cut(t) {
                html.push_str(&format!("<p><small>{cut}</small></p>\n"));
            }
            html.push_str(&format!(
                "<pre style=\"background: #f6f8fa; padding: 8px\">{}</pre>\n",
                e(&t.lines.join("\n"))
            ));
        }
    }
    if c.more() > 0 {
        html.push_str(&format!("<p>and {} more failed jobs</p>\n", c.more()));
    }
    html.push_str("</body></html>\n");
    Mail {
        subject,
        text,
        html,
    }
}

// ------------------------------------------------------------------ stdout

/// One line, led by the word the original chainr's notifier printed (`START`, `SUCCESS`,
/// `FAILURE`), then the run and what happened.
pub fn stdout_line(c: &Context) -> String {
    let n = c.notification;
    let word = match (&n.job, n.event) {
        (None, NotifyEvent::Started) => "START",
        (None, NotifyEvent::Succeeded) => "SUCCESS",
        (None, NotifyEvent::Failed | NotifyEvent::Errored) => "FAILURE",
        (None, NotifyEvent::Cancelled) => "CANCELLED",
        (None, NotifyEvent::RunningLongerThan) => "STILL RUNNING",
        (Some(_), NotifyEvent::Succeeded) => "JOB SUCCESS",
        (Some(_), NotifyEvent::Errored) => "JOB ERROR",
        (Some(_), _) => "JOB FAILURE",
    };
    let mut line = format!("{word} {} {}: {}", n.run, c.headline(), c.summary());
    let failed: Vec<&str> = c.shown().iter().map(|j| j.name.as_str()).collect();
    if n.job.is_none() && !failed.is_empty() {
        line.push_str(&format!(" · failed: {}", failed.join(", ")));
        if c.more() > 0 {
            line.push_str(&format!(" and {} more", c.more()));
        }
    }
    if let Some(link) = c.link() {
        line.push_str(&format!(" · {link}"));
    }
    // One line, whatever the names hold.
    line.replace(['\n', '\r'], " ")
}
