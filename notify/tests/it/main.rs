//! The notifier's pure parts: what each medium is sent for a failed run (snapshots), which
//! notifications an event makes, and the configuration's checks.

mod config;
mod messages;
mod plan;

use chainr_compiler::ir;
use chainr_runtime::event::millis::from_millis;
use chainr_runtime::event::{AttemptResult, EventKind, RunEvent};
use chainr_runtime::record::Run;
use chainr_runtime::{Outcome, RunOutcome};
use std::time::SystemTime;

/// A time `s` seconds after a fixed moment (2026-03-01 02:00:00 UTC).
pub fn t(s: u64) -> SystemTime {
    from_millis(1_772_330_400_000 + s * 1000)
}

pub fn compile(src: &str) -> ir::Pipeline {
    let out = chainr_compiler::compile(src, &Default::default());
    out.pipeline
        .unwrap_or_else(|| panic!("compiles: {:?}", out.diagnostics))
}

/// The nightly ETL pipeline: extract, then load and report, `load` failing.
pub fn nightly() -> ir::Pipeline {
    compile(
        r#"pipeline nightly-etl {
  job extract { image = "busybox" run = "true" }
  job load after extract { image = "busybox" run = "exit 2" retries = 1 }
  job report after extract { image = "busybox" run = "true" }
  job publish after load, report { image = "busybox" run = "true" }
}
"#,
    )
}

fn event(seq: u64, at: u64, kind: EventKind) -> RunEvent {
    RunEvent {
        seq,
        at: t(at),
        kind,
    }
}

/// The events of a failed run of [`nightly`]: `load` fails twice (exit code 2), `publish` is
/// skipped, the run fails after 12 minutes 3 seconds.
pub fn failed_events() -> Vec<RunEvent> {
    use EventKind::*;
    let started = |job, attempt| AttemptStarted {
        job,
        attempt,
        handle: None,
    };
    let ended = |job, attempt, result| AttemptEnded {
        job,
        attempt,
        result,
    };
    vec![
        event(1, 0, RunStarted { resumed: false }),
        event(2, 0, started(0, 1)),
        event(3, 60, ended(0, 1, AttemptResult::succeeded())),
        event(
            4,
            60,
            JobDecided {
                job: 0,
                outcome: Outcome::Succeeded,
                why: None,
            },
        ),
        event(5, 60, started(1, 1)),
        event(6, 60, started(2, 1)),
        event(7, 300, ended(2, 1, AttemptResult::succeeded())),
        event(
            8,
            300,
            JobDecided {
                job: 2,
                outcome: Outcome::Succeeded,
                why: None,
            },
        ),
        event(9, 400, ended(1, 1, AttemptResult::exited(2))),
        event(
            10,
            400,
            RetryScheduled {
                job: 1,
                attempt: 2,
                delay_ms: 10_000,
            },
        ),
        event(11, 410, RetryDue { job: 1, attempt: 2 }),
        event(12, 410, started(1, 2)),
        event(13, 723, ended(1, 2, AttemptResult::exited(2))),
        event(
            14,
            723,
            JobDecided {
                job: 1,
                outcome: Outcome::Failed,
                why: None,
            },
        ),
        event(
            15,
            723,
            JobDecided {
                job: 3,
                outcome: Outcome::Skipped,
                why: Some(chainr_runtime::event::Decision::ConditionFalse),
            },
        ),
        event(
            16,
            723,
            RunFinished {
                outcome: RunOutcome::Failed,
            },
        ),
    ]
}

/// The Run document of the failed run, submitted by `alice`.
pub fn failed_run(uid: &str) -> (ir::Pipeline, Run) {
    let pipeline = nightly();
    let mut run = Run::planned(uid.to_string(), &pipeline);
    run.metadata.submitter = Some("alice".into());
    run.metadata.created_at = Some(t(0));
    for e in failed_events() {
        run.apply(&e);
    }
    (pipeline, run)
}
