//! Which notifications an event of a run makes: pure. A pipeline's own `notify` rules decide
//! for it; a pipeline that declares none takes the configuration's routes that match its name.

use crate::config::Route;
use chainr_compiler::ir::{self, NotifyEvent};
use chainr_runtime::event::{EventKind, RunEvent};
use chainr_runtime::outbox::{notification_id, Delivery, Notification};
use chainr_runtime::{Outcome, RunOutcome};
use std::time::Duration;

/// One rule: these events go to these media (after `after`, for `running_longer_than`).
struct Rule<'a> {
    on: &'a [NotifyEvent],
    to: &'a [String],
    after: Option<(Duration, String)>,
}

fn rules_of(notify: &[ir::Notify]) -> Vec<Rule<'_>> {
    notify
        .iter()
        .map(|n| Rule {
            on: &n.on,
            to: &n.to,
            after: n.after.as_ref().map(|d| (d.0.as_std(), d.0.to_string())),
        })
        .collect()
}

/// Whether the pipeline says anything about notifications itself.
pub fn declares(pipeline: &ir::Pipeline) -> bool {
    !pipeline.notify.is_empty() || pipeline.jobs.values().any(|j| !j.notify.is_empty())
}

/// The notifications event `event` of run `run` (of `pipeline`) makes, each due when it may
/// first be sent: at once, or for `running_longer_than` when the run has run that long.
pub fn plan(
    run: &str,
    pipeline: &ir::Pipeline,
    event: &RunEvent,
    routes: &[Route],
) -> Vec<Delivery> {
    let name = pipeline.name.as_deref().unwrap_or("unnamed pipeline");
    let declared = declares(pipeline);
    let run_rules = || -> Vec<Rule<'_>> {
        if declared {
            rules_of(&pipeline.notify)
        } else {
            routes
                .iter()
                .filter(|r| r.matches(name))
                .map(|r| Rule {
                    on: &r.on,
                    to: &r.to,
                    after: r.after.clone(),
                })
                .collect()
        }
    };
    let mut out = Vec::new();
    let mut add =
        |ev: NotifyEvent, job: Option<&str>, to: &[String], after: Option<&(Duration, String)>| {
            for medium in to {
                let at = event.at + after.map(|a| a.0).unwrap_or_default();
                let id = notification_id(run, event.seq, ev, job, medium);
                if out.iter().any(|d: &Delivery| d.notification.id == id) {
                    continue;
                }
                out.push(Delivery::new(
                    Notification {
                        id,
                        run: run.to_string(),
                        pipeline: name.to_string(),
                        seq: event.seq,
                        event: ev,
                        job: job.map(str::to_string),
                        medium: medium.clone(),
                        at,
                        after: after.map(|a| a.1.clone()),
                    },
                    at,
                ));
            }
        };
    match &event.kind {
        EventKind::RunStarted { resumed: false } => {
            for r in run_rules() {
                if r.on.contains(&NotifyEvent::Started) {
                    add(NotifyEvent::Started, None, r.to, None);
                }
                if r.on.contains(&NotifyEvent::RunningLongerThan) {
                    if let Some(after) = &r.after {
                        add(NotifyEvent::RunningLongerThan, None, r.to, Some(after));
                    }
                }
            }
        }
        EventKind::RunFinished { outcome } => {
            let ev = match outcome {
                RunOutcome::Succeeded => NotifyEvent::Succeeded,
                // A run that could not be driven failed, as far as people are concerned.
                RunOutcome::Failed | RunOutcome::Errored => NotifyEvent::Failed,
                RunOutcome::Cancelled => NotifyEvent::Cancelled,
            };
            for r in run_rules() {
                if r.on.contains(&ev) {
                    add(ev, None, r.to, None);
                }
            }
        }
        EventKind::JobDecided { job, outcome, .. } => {
            let ev = match outcome {
                Outcome::Succeeded => NotifyEvent::Succeeded,
                Outcome::Failed => NotifyEvent::Failed,
                Outcome::Errored => NotifyEvent::Errored,
                Outcome::Skipped | Outcome::Cancelled => return out,
            };
            let Some((job_name, j)) = pipeline.jobs.get_index(*job) else {
                return out;
            };
            for r in rules_of(&j.notify) {
                if r.on.contains(&ev) {
                    add(ev, Some(job_name), r.to, None);
                }
            }
        }
        _ => {}
    }
    out
}
