//! What each medium is sent for a failed run: the messages as people read them (snapshots),
//! and the limits of each medium.

use crate::{failed_run, t};
use chainr_compiler::ir::NotifyEvent;
use chainr_notify::message::{self, jobs_to_show, Context};
use chainr_runtime::log::Tail;
use chainr_runtime::outbox::{notification_id, Notification};
use chainr_runtime::record::Run;

const UID: &str = "5f0c2a8e-4b1d-4c3e-9a7f-2d6b8e1c0f34";

fn notification(event: NotifyEvent, job: Option<&str>, medium: &str) -> Notification {
    Notification {
        id: notification_id(UID, 16, event, job, medium),
        run: UID.into(),
        pipeline: "nightly-etl".into(),
        seq: 16,
        event,
        job: job.map(str::to_string),
        medium: medium.into(),
        at: t(723),
        after: None,
    }
}

fn load_tail() -> Tail {
    Tail {
        lines: vec![
            "loading 18,204 rows into warehouse.orders".into(),
            "ERROR: duplicate key value violates unique constraint \"orders_pkey\"".into(),
            "DETAIL: Key (id)=(88231) already exists.".into(),
            "<script>alert('and & escaped')</script>".into(),
        ],
        total: 214,
    }
}

fn context<'a>(n: &'a Notification, run: &'a Run) -> Context<'a> {
    let mut jobs = jobs_to_show(n, run);
    for j in &mut jobs {
        j.tail = Some(load_tail());
    }
    Context {
        notification: n,
        run,
        jobs,
        ui_url: Some("https://chainr.example.com"),
    }
}

#[test]
fn a_failed_run_as_a_webhook_body() {
    let (_, run) = failed_run(UID);
    let n = notification(NotifyEvent::Failed, None, "hooks");
    insta::assert_json_snapshot!(message::webhook_body(&context(&n, &run)));
}

#[test]
fn a_failed_run_as_a_slack_message() {
    let (_, run) = failed_run(UID);
    let n = notification(NotifyEvent::Failed, None, "team-slack");
    insta::assert_json_snapshot!(message::slack_body(&context(&n, &run)));
}

#[test]
fn a_failed_run_as_an_email() {
    let (_, run) = failed_run(UID);
    let n = notification(NotifyEvent::Failed, None, "oncall-mail");
    let mail = message::mail(&context(&n, &run));
    insta::assert_snapshot!("email_subject", mail.subject);
    insta::assert_snapshot!("email_text", mail.text);
    insta::assert_snapshot!("email_html", mail.html);
}

#[test]
fn a_failed_run_on_stdout() {
    let (_, run) = failed_run(UID);
    let n = notification(NotifyEvent::Failed, None, "console");
    insta::assert_snapshot!(message::stdout_line(&context(&n, &run)));
}

#[test]
fn a_failed_job_as_each_medium_says_it() {
    let (_, run) = failed_run(UID);
    let n = notification(NotifyEvent::Failed, Some("load"), "team-slack");
    let c = context(&n, &run);
    assert_eq!(c.headline(), "nightly-etl: job load failed");
    assert_eq!(
        c.link().as_deref(),
        Some("https://chainr.example.com/runs/5f0c2a8e-4b1d-4c3e-9a7f-2d6b8e1c0f34/jobs/load")
    );
    insta::assert_snapshot!(message::stdout_line(&c));
    let slack = message::slack_body(&c);
    assert_eq!(
        slack["blocks"][0]["text"]["text"],
        "nightly-etl: job load failed"
    );
}

#[test]
fn html_and_mrkdwn_escape_what_pipelines_and_logs_hold() {
    let (_, run) = failed_run(UID);
    let n = notification(NotifyEvent::Failed, None, "m");
    let c = context(&n, &run);
    let html = message::mail(&c).html;
    assert!(!html.contains("<script>"), "{html}");
    assert!(html.contains("&lt;script&gt;"), "{html}");
    let slack = message::slack_body(&c).to_string();
    assert!(!slack.contains("<script>"), "{slack}");
    assert!(slack.contains("&lt;script&gt;alert('and &amp; escaped')&lt;/script&gt;"));
}

#[test]
fn slack_sections_stay_within_3000_characters_whatever_the_log() {
    let (_, run) = failed_run(UID);
    let n = notification(NotifyEvent::Failed, None, "team-slack");
    let mut c = context(&n, &run);
    // Long lines, many of them, one longer than a whole section, and a fence inside.
    let mut lines: Vec<String> = (0..500)
        .map(|i| format!("{i}: {}", "x".repeat(90)))
        .collect();
    lines.push("```".into());
    lines.push("y".repeat(10_000));
    for j in &mut c.jobs {
        j.tail = Some(Tail {
            lines: lines.clone(),
            total: 100_000,
        });
    }
    let body = message::slack_body(&c);
    let blocks = body["blocks"].as_array().unwrap();
    assert!(blocks.len() <= 50);
    for b in blocks {
        if let Some(text) = b["text"]["text"].as_str() {
            let limit = if b["type"] == "header" { 150 } else { 3000 };
            assert!(
                text.chars().count() <= limit,
                "{} chars: {text}",
                text.chars().count()
            );
        }
    }
    assert!(body["text"].as_str().is_some_and(|t| !t.is_empty()));
}

#[test]
fn many_failed_jobs_are_counted_beyond_ten() {
    let src = {
        let mut s = String::from("pipeline wide {\n");
        for i in 0..14 {
            s.push_str(&format!(
                "  job j{i} {{ image = \"busybox\" run = \"exit 1\" }}\n"
            ));
        }
        s.push_str("}\n");
        s
    };
    let pipeline = crate::compile(&src);
    let mut run = Run::planned(UID.into(), &pipeline);
    for j in &mut run.jobs {
        j.status = chainr_runtime::record::Status::Failed;
    }
    let n = notification(NotifyEvent::Failed, None, "team-slack");
    let c = Context {
        notification: &n,
        run: &run,
        jobs: jobs_to_show(&n, &run),
        ui_url: None,
    };
    let slack = message::slack_body(&c);
    let blocks = slack["blocks"].as_array().unwrap();
    let sections = blocks.iter().filter(|b| b["type"] == "section").count();
    assert_eq!(sections, 1 + 10, "the summary and ten jobs");
    assert!(slack.to_string().contains("and 4 more failed jobs"));
    assert!(c.link().is_none(), "no UI address, no link");
    assert_eq!(c.summary(), "all 14 jobs failed");
}

#[test]
fn a_start_is_told_as_it_was_even_when_sent_after_the_end() {
    let (_, run) = failed_run(UID);
    let n = notification(NotifyEvent::Started, None, "console");
    let c = context(&n, &run);
    assert_eq!(c.headline(), "nightly-etl started");
    assert_eq!(c.summary(), "4 jobs · submitted by alice");
    assert!(
        message::stdout_line(&c).starts_with(&format!("START {UID} nightly-etl started: 4 jobs"))
    );
}
