//! The scheduler in named situations: cancel, a second cancel, fail-fast, backoff, concurrency.

use chainr_compiler::compile;
use chainr_runtime::scheduler::{
    jobs_to_retry, Action, AttemptEnd, JobState, Options, Outcome, RunOutcome, Scheduler,
};

fn pipeline(src: &str) -> chainr_compiler::ir::Pipeline {
    let src =
        format!("pipeline t {{\n defaults {{ image = \"busybox\" run = \"true\" }}\n{src}\n}}");
    let out = compile(&src, &Default::default());
    assert!(!out.has_errors(), "{:?}", out.diagnostics);
    out.pipeline.unwrap()
}

struct Harness {
    s: Scheduler,
    p: chainr_compiler::ir::Pipeline,
    names: Vec<String>,
    log: Vec<String>,
}

impl Harness {
    fn new(src: &str, concurrency: Option<usize>) -> Harness {
        let mut h = Harness::unstarted(src, concurrency);
        h.start();
        h
    }

    fn unstarted(src: &str, concurrency: Option<usize>) -> Harness {
        let p = pipeline(src);
        let names = p.jobs.keys().cloned().collect();
        Harness {
            s: Scheduler::new(&p, Options { concurrency }).unwrap(),
            p,
            names,
            log: Vec::new(),
        }
    }

    fn start(&mut self) {
        let mut out = Vec::new();
        self.s.start(&mut out);
        self.record(out);
    }

    fn id(&self, name: &str) -> usize {
        self.names.iter().position(|n| n == name).unwrap()
    }

    fn record(&mut self, actions: Vec<Action>) {
        for a in actions {
            self.log.push(match a {
                Action::Launch { job, attempt } => format!("launch {} #{attempt}", self.names[job]),
                Action::Retry {
                    job,
                    attempt,
                    delay,
                } => format!("retry {} #{attempt} in {delay:?}", self.names[job]),
                Action::Kill { job } => format!("kill {}", self.names[job]),
                Action::Decided { job, outcome } => format!("{outcome:?} {}", self.names[job]),
                Action::Finished(o) => format!("finished {o:?}"),
            });
        }
    }

    fn end(&mut self, name: &str, end: AttemptEnd) {
        let mut out = Vec::new();
        let id = self.id(name);
        self.s.attempt_ended(id, end, &mut out);
        self.record(out);
    }

    fn cancel(&mut self) {
        let mut out = Vec::new();
        self.s.cancel(&mut out);
        self.record(out);
    }

    fn give_up(&mut self) {
        let mut out = Vec::new();
        self.s.give_up(&mut out);
        self.record(out);
    }

    fn retry_due(&mut self, name: &str) {
        let mut out = Vec::new();
        let id = self.id(name);
        self.s.retry_due(id, &mut out);
        self.record(out);
    }

    fn take(&mut self) -> Vec<String> {
        std::mem::take(&mut self.log)
    }

    fn outcome(&self, name: &str) -> Outcome {
        match self.s.state(self.id(name)) {
            JobState::Done(o) => o,
            s => panic!("{name} is {s:?}"),
        }
    }
}

#[test]
fn cancel_kills_running_jobs_cancels_the_rest_and_still_runs_finally() {
    let mut h = Harness::new(
        "job a { }\njob b after a { }\njob c { }\nfinally { job report { } }",
        None,
    );
    assert_eq!(h.take(), ["launch a #1", "launch c #1"]);
    h.cancel();
    assert_eq!(h.take(), ["kill a", "kill c", "Cancelled b"]);
    h.end("a", AttemptEnd::Cancelled);
    assert_eq!(h.take(), Vec::<String>::new());
    h.end("c", AttemptEnd::Cancelled);
    assert_eq!(h.take(), ["launch report #1"]);
    assert_eq!(h.s.outcome_so_far(), RunOutcome::Cancelled);
    h.end("report", AttemptEnd::Succeeded);
    assert_eq!(h.take(), ["finished Cancelled"]);
}

#[test]
fn a_second_cancel_stops_finally_jobs_too() {
    let mut h = Harness::new(
        "job a { }\nfinally { job report { } job after-report after report { } }",
        None,
    );
    h.take();
    h.cancel();
    h.end("a", AttemptEnd::Cancelled);
    assert_eq!(h.take(), ["kill a", "launch report #1"]);
    h.cancel();
    assert_eq!(h.take(), ["kill report", "Cancelled after-report"]);
    h.end("report", AttemptEnd::Cancelled);
    assert_eq!(h.take(), ["finished Cancelled"]);
}

#[test]
fn cancels_before_the_start_launch_nothing_but_what_they_leave() {
    let src = "job a { }\njob b after a { }\nfinally { job report { } }";
    let mut h = Harness::unstarted(src, None);
    h.cancel();
    assert_eq!(h.take(), ["Cancelled a", "Cancelled b"]);
    h.start();
    assert_eq!(h.take(), ["launch report #1"]);
    h.end("report", AttemptEnd::Succeeded);
    assert_eq!(h.take(), ["finished Cancelled"]);
    // Twice: not even the finally job, though the first cancel made it ready.
    let mut h = Harness::unstarted(src, None);
    h.cancel();
    h.cancel();
    assert_eq!(
        h.take(),
        [
            "Cancelled a",
            "Cancelled b",
            "Cancelled report",
            "finished Cancelled"
        ]
    );
    h.start();
    assert_eq!(h.take(), Vec::<String>::new());
}

#[test]
fn a_reopened_run_runs_again_what_did_not_succeed_with_its_retries_afresh() {
    let mut h = Harness::new(
        "job a { }\njob b { retries = 1 }\njob c after b { }\njob d after b.failed { }\njob e after a { }\nfinally { job report { } }",
        None,
    );
    for (job, end) in [("a", AttemptEnd::Succeeded), ("b", AttemptEnd::Failed)] {
        h.end(job, end);
    }
    h.retry_due("b");
    for (job, end) in [
        ("b", AttemptEnd::Failed),
        ("e", AttemptEnd::Succeeded),
        ("d", AttemptEnd::Succeeded),
        ("report", AttemptEnd::Succeeded),
    ] {
        h.end(job, end);
    }
    assert_eq!(h.take().last().map(String::as_str), Some("finished Failed"));
    // b failed; c was skipped for it; d succeeded, but on b's failure; report is a finally job.
    let again = jobs_to_retry(&h.p, |j| {
        matches!(h.s.state(j), JobState::Done(Outcome::Succeeded))
    });
    let names: Vec<&str> = again.iter().map(|&j| h.names[j].as_str()).collect();
    assert_eq!(names, ["b", "c", "d", "report"]);
    h.s.reopen(&again);
    assert_eq!(h.s.state(h.id("b")), JobState::Pending);
    h.start();
    assert_eq!(h.take(), ["launch b #3"]);
    h.end("b", AttemptEnd::Failed);
    assert_eq!(h.take(), ["retry b #4 in 1s"], "its retries count afresh");
    h.retry_due("b");
    h.end("b", AttemptEnd::Succeeded);
    assert_eq!(h.take(), ["launch b #4", "Skipped d", "launch c #1"]);
    h.end("c", AttemptEnd::Succeeded);
    h.end("report", AttemptEnd::Succeeded);
    assert_eq!(h.take(), ["launch report #2", "finished Succeeded"]);
    assert_eq!([h.s.attempts(h.id("a")), h.s.attempts(h.id("e"))], [1, 1]);
    // Reopening is for finished runs only; a run going on is left as it is.
    let mut h = Harness::new("job a { }", None);
    h.s.reopen(&[0]);
    assert_eq!(h.s.state(0), JobState::Running);
}

#[test]
fn a_run_given_up_runs_nothing_more_not_even_finally_and_ends_errored() {
    let mut h = Harness::new(
        "job a { retries = 2 }\njob b after a { }\nfinally { job report { } }",
        None,
    );
    h.take();
    h.give_up();
    assert_eq!(h.take(), ["kill a", "Cancelled b", "Cancelled report"]);
    assert!(h.s.is_cancelled(h.id("report")));
    h.end("a", AttemptEnd::Failed);
    assert_eq!(h.take(), ["finished Errored"], "no retry either");
    // Before the start, nothing is launched at all.
    let mut h = Harness::unstarted("job a { }\nfinally { job report { } }", None);
    h.give_up();
    h.start();
    assert_eq!(
        h.take(),
        ["Cancelled a", "Cancelled report", "finished Errored"]
    );
}

#[test]
fn cancel_does_not_retry_and_a_cancelled_backoff_ends() {
    let mut h = Harness::new("job a { retries = 3 }", None);
    h.take();
    h.end("a", AttemptEnd::Failed);
    assert_eq!(h.take(), ["retry a #2 in 1s"]);
    h.cancel();
    assert_eq!(h.take(), ["Cancelled a", "finished Cancelled"]);
    // A timer that fires late changes nothing.
    h.retry_due("a");
    assert_eq!(h.take(), Vec::<String>::new());
}

#[test]
fn fail_fast_cancels_what_has_not_started_and_lets_running_jobs_finish() {
    let mut h = Harness::new(
        "fail_fast = true\njob a { }\njob b { }\njob c after a { }\njob d after c { }\nfinally { job report { } }",
        None,
    );
    assert_eq!(h.take(), ["launch a #1", "launch b #1"]);
    h.end("a", AttemptEnd::Failed);
    assert_eq!(h.take(), ["Cancelled c", "Cancelled d"]);
    h.end("b", AttemptEnd::Succeeded);
    assert_eq!(h.take(), ["launch report #1"]);
    h.end("report", AttemptEnd::Succeeded);
    assert_eq!(h.take(), ["finished Failed"]);
    assert_eq!(h.outcome("b"), Outcome::Succeeded);
}

#[test]
fn an_allowed_failure_does_not_trip_fail_fast() {
    let mut h = Harness::new(
        "fail_fast = true\njob a { allow_failure = true }\njob b after a { }",
        None,
    );
    h.take();
    h.end("a", AttemptEnd::Failed);
    assert_eq!(h.take(), ["launch b #1"]);
    h.end("b", AttemptEnd::Succeeded);
    assert_eq!(h.take(), ["finished Succeeded"]);
}

#[test]
fn backoff_doubles_up_to_five_minutes() {
    let mut h = Harness::new("job a { retries = 4  backoff = 100s }", None);
    h.take();
    let mut delays = Vec::new();
    for _ in 0..4 {
        h.end("a", AttemptEnd::Errored);
        let log = h.take();
        delays.push(log[0].clone());
        h.retry_due("a");
        h.take();
    }
    assert_eq!(
        delays,
        [
            "retry a #2 in 100s",
            "retry a #3 in 200s",
            "retry a #4 in 300s",
            "retry a #5 in 300s"
        ]
    );
    h.end("a", AttemptEnd::Failed);
    assert_eq!(h.take(), ["finished Failed"]);
    assert_eq!(h.s.attempts(h.id("a")), 5);
}

#[test]
fn concurrency_limits_running_attempts_and_the_pipeline_setting_applies() {
    let mut h = Harness::new("concurrency = 2\njob a { }\njob b { }\njob c { }", Some(5));
    assert_eq!(h.take(), ["launch a #1", "launch b #1"]);
    h.end("b", AttemptEnd::Succeeded);
    assert_eq!(h.take(), ["launch c #1"]);
    let mut h = Harness::new("job a { }\njob b { }\njob c { }", Some(1));
    assert_eq!(h.take(), ["launch a #1"]);
    h.end("a", AttemptEnd::Failed);
    assert_eq!(h.take(), ["launch b #1"]);
}

#[test]
fn an_empty_pipeline_finishes_at_once_and_a_skip_cascades() {
    let p = chainr_compiler::compile_json(r#"{"kind": "Pipeline", "jobs": {}}"#)
        .pipeline
        .unwrap();
    let mut s = Scheduler::new(&p, Options::default()).unwrap();
    let mut out = Vec::new();
    s.start(&mut out);
    assert_eq!(out, [Action::Finished(RunOutcome::Succeeded)]);

    let mut h = Harness::new(
        "job a { }\njob b after a.failed { }\njob c after b { }\njob d after c.failed { }",
        None,
    );
    h.take();
    h.end("a", AttemptEnd::Succeeded);
    assert_eq!(
        h.take(),
        ["Skipped b", "Skipped c", "Skipped d", "finished Succeeded"]
    );
}

#[test]
fn after_fail_fast_trips_a_running_job_that_fails_is_not_retried() {
    let mut h = Harness::new("fail_fast = true\njob a { }\njob b { retries = 2 }", None);
    assert_eq!(h.take(), ["launch a #1", "launch b #1"]);
    h.end("a", AttemptEnd::Failed);
    h.take();
    h.end("b", AttemptEnd::Failed);
    assert_eq!(h.take(), ["finished Failed"]);
    assert_eq!(h.outcome("b"), Outcome::Failed);
}
