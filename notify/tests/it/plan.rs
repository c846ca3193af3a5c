//! Which notifications an event makes: the pipeline's own rules, or the configuration's routes
//! for a pipeline that declares none; ids that are the same wherever they are computed.

use crate::{compile, failed_events, nightly, t};
use chainr_compiler::ir::NotifyEvent;
use chainr_notify::config::Config;
use chainr_notify::plan::plan;
use chainr_runtime::event::{EventKind, RunEvent};
use chainr_runtime::outbox::Delivery;
use chainr_runtime::RunOutcome;
use std::path::Path;

fn routes() -> Config {
    let text = r#"
[media.console]
type = "stdout"
[media.ops]
type = "stdout"
[[routes]]
on = ["failed", "cancelled"]
pipelines = ["nightly-*"]
to = ["ops"]
[[routes]]
on = ["started", "running_longer_than"]
after = "2h"
to = ["console"]
"#;
    Config::parse(text, &|_| None, Path::new(".")).unwrap()
}

fn summary(ds: &[Delivery]) -> Vec<(NotifyEvent, Option<String>, String)> {
    ds.iter()
        .map(|d| {
            let n = &d.notification;
            (n.event, n.job.clone(), n.medium.clone())
        })
        .collect()
}

fn all(pipeline: &chainr_compiler::ir::Pipeline, config: &Config) -> Vec<Delivery> {
    failed_events()
        .iter()
        .flat_map(|e| plan("r1", pipeline, e, &config.routes))
        .collect()
}

#[test]
fn a_pipeline_that_declares_nothing_takes_the_routes_matching_its_name() {
    let ds = all(&nightly(), &routes());
    assert_eq!(
        summary(&ds),
        [
            (NotifyEvent::Started, None, "console".into()),
            (NotifyEvent::RunningLongerThan, None, "console".into()),
            (NotifyEvent::Failed, None, "ops".into()),
        ]
    );
    let longer = &ds[1];
    assert_eq!(
        longer.due,
        t(2 * 3600),
        "due when the run has run that long"
    );
    assert_eq!(longer.notification.after.as_deref(), Some("2h"));
    assert_eq!(ds[0].due, t(0), "the others are due at once");

    // Another name matches only the route for every pipeline.
    let mut other = nightly();
    other.name = Some("hourly".into());
    let events: Vec<NotifyEvent> = all(&other, &routes())
        .iter()
        .map(|d| d.notification.event)
        .collect();
    assert_eq!(
        events,
        [NotifyEvent::Started, NotifyEvent::RunningLongerThan]
    );
}

#[test]
fn a_pipeline_with_its_own_rules_ignores_the_routes() {
    let mut p = nightly();
    p.notify = vec![chainr_compiler::ir::Notify {
        on: vec![NotifyEvent::Failed, NotifyEvent::Succeeded],
        to: vec!["team-slack".into(), "oncall-mail".into()],
        after: None,
    }];
    p.jobs["load"].notify = vec![chainr_compiler::ir::Notify {
        on: vec![NotifyEvent::Failed, NotifyEvent::Errored],
        to: vec!["team-slack".into()],
        after: None,
    }];
    assert_eq!(
        summary(&all(&p, &routes())),
        [
            (
                NotifyEvent::Failed,
                Some("load".into()),
                "team-slack".into()
            ),
            (NotifyEvent::Failed, None, "team-slack".into()),
            (NotifyEvent::Failed, None, "oncall-mail".into()),
        ]
    );
}

#[test]
fn a_resumed_start_and_other_events_make_nothing() {
    let p = nightly();
    let config = routes();
    let resumed = RunEvent {
        seq: 20,
        at: t(5),
        kind: EventKind::RunStarted { resumed: true },
    };
    assert!(plan("r1", &p, &resumed, &config.routes).is_empty());
    let errored = RunEvent {
        seq: 21,
        at: t(6),
        kind: EventKind::RunFinished {
            outcome: RunOutcome::Errored,
        },
    };
    let ds = plan("r1", &p, &errored, &config.routes);
    assert_eq!(
        summary(&ds),
        [(NotifyEvent::Failed, None, "ops".into())],
        "a run given up failed"
    );
}

#[test]
fn ids_depend_on_the_run_the_event_and_the_medium_only() {
    let p = compile("pipeline p {\n  job a { image = \"busybox\" run = \"true\" }\n}\n");
    let config = Config::stdout_only();
    let start = RunEvent {
        seq: 1,
        at: t(0),
        kind: EventKind::RunStarted { resumed: false },
    };
    let once = plan("r1", &p, &start, &config.routes);
    let again = plan("r1", &p, &start, &config.routes);
    assert_eq!(once, again, "planned twice, the same notifications");
    let other_run = plan("r2", &p, &start, &config.routes);
    assert_ne!(once[0].notification.id, other_run[0].notification.id);
    let later = RunEvent { seq: 2, ..start };
    assert_ne!(
        once[0].notification.id,
        plan("r1", &p, &later, &config.routes)[0].notification.id
    );
}
