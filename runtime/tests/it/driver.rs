//! The driver with a scripted executor, in virtual time (tokio's paused clock): the loop's
//! decisions (timers, stops and their escalation, cancel, retries, the end of the run) and its
//! events; the Run document as a fold of the events; a run resumed from a prefix of its events.

use crate::scheduler_model::{legal, pipeline_specs, to_ir};
use chainr_compiler::ir;
use chainr_runtime::driver::{
    drive, Command, Driver, DriverOptions, Effect, Now, Publish, PublishError,
};
use chainr_runtime::event::{AttemptResult, EventKind, GiveUp, Reason, RunEvent};
use chainr_runtime::log::{LogKey, MemoryLogs};
use chainr_runtime::scheduler::{AttemptEnd, JobId};
use chainr_runtime::store::{Journal, MemoryStore, NewRun, Store};
use chainr_runtime::{AttemptSpec, ExecEvent, Executor, Run, Status};
use proptest::prelude::*;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// How a scripted attempt behaves.
#[derive(Clone, Debug)]
struct Script {
    takes: Duration,
    end: AttemptEnd,
    /// Ignores a graceful stop; only a forced one ends it.
    stubborn: bool,
}

/// Which script an attempt (job name, attempt number) plays.
type Scripts = Box<dyn Fn(&str, u32) -> Script + Send>;

/// An executor that plays scripts: every attempt prints a line and ends after its time.
struct Fake {
    names: Vec<String>,
    script: Scripts,
    due: BTreeMap<(Instant, u64), (JobId, u32, AttemptResult)>,
    seq: u64,
    running: HashMap<JobId, (u32, bool)>,
    most_at_once: usize,
    starts: Vec<(String, u32, Option<Option<String>>)>,
    stops: Vec<(String, u32, bool, Duration)>,
    abandoned: Vec<(String, u32, Option<String>)>,
    began: Instant,
    queue: std::collections::VecDeque<ExecEvent>,
}

impl Fake {
    fn new(p: &ir::Pipeline, script: impl Fn(&str, u32) -> Script + Send + 'static) -> Fake {
        Fake {
            names: p.jobs.keys().cloned().collect(),
            script: Box::new(script),
            due: BTreeMap::new(),
            seq: 0,
            running: HashMap::new(),
            most_at_once: 0,
            starts: Vec::new(),
            stops: Vec::new(),
            abandoned: Vec::new(),
            began: Instant::now(),
            queue: Default::default(),
        }
    }

    fn end_at(&mut self, at: Instant, job: JobId, attempt: u32, result: AttemptResult) {
        self.due
            .retain(|_, (j, a, _)| !(*j == job && *a == attempt));
        self.seq += 1;
        self.due.insert((at, self.seq), (job, attempt, result));
    }
}

impl Executor for Fake {
    fn kill_grace(&self) -> Option<Duration> {
        Some(Duration::from_secs(3))
    }

    async fn start(&mut self, a: AttemptSpec<'_>) -> Result<Option<String>, String> {
        self.starts.push((
            a.name.to_string(),
            a.attempt,
            a.resume.map(|h| h.map(str::to_string)),
        ));
        let s = (self.script)(a.name, a.attempt);
        self.running.insert(a.job, (a.attempt, s.stubborn));
        self.most_at_once = self.most_at_once.max(self.running.len());
        let result = match s.end {
            AttemptEnd::Succeeded => AttemptResult::succeeded(),
            AttemptEnd::Failed => AttemptResult::exited(3),
            AttemptEnd::Errored => AttemptResult::errored(Reason::CouldNotStart("scripted".into())),
            AttemptEnd::Cancelled => AttemptResult::cancelled(),
        };
        self.end_at(Instant::now() + s.takes, a.job, a.attempt, result);
        Ok(Some(format!("{}#{}", a.name, a.attempt)))
    }

    async fn stop(&mut self, job: JobId, attempt: u32, force: bool) {
        let since = Instant::now() - self.began;
        self.stops
            .push((self.names[job].clone(), attempt, force, since));
        let Some(&(a, stubborn)) = self.running.get(&job) else {
            return;
        };
        if a == attempt && (force || !stubborn) {
            let signal = if force { 9 } else { 15 };
            let r = AttemptResult::new(AttemptEnd::Failed, None, Some(Reason::Signal(signal)));
            self.end_at(Instant::now() + Duration::from_millis(5), job, attempt, r);
        }
    }

    async fn abandon(&mut self, a: AttemptSpec<'_>) {
        self.abandoned.push((
            a.name.to_string(),
            a.attempt,
            a.resume.flatten().map(str::to_string),
        ));
    }

    async fn next(&mut self) -> Option<ExecEvent> {
        if let Some(e) = self.queue.pop_front() {
            return Some(e);
        }
        // Nothing scheduled: wait (for a start, a stop or the driver's timers).
        let Some((&key, _)) = self.due.first_key_value() else {
            return std::future::pending().await;
        };
        tokio::time::sleep_until(key.0).await;
        let (job, attempt, result) = self.due.remove(&key)?;
        self.running.remove(&job);
        // Output first, then the end, as executors report them.
        self.queue.push_back(ExecEvent::Ended {
            job,
            attempt,
            result,
        });
        Some(ExecEvent::Output {
            job,
            attempt,
            bytes: format!("{} attempt {attempt}\n", self.names[job]).into_bytes(),
        })
    }
}

fn ok(takes_ms: u64) -> Script {
    Script {
        takes: Duration::from_millis(takes_ms),
        end: AttemptEnd::Succeeded,
        stubborn: false,
    }
}

fn pipeline(body: &str) -> ir::Pipeline {
    let src =
        format!("pipeline t {{\n defaults {{ image = \"busybox\" run = \"true\" }}\n{body}\n}}");
    let out = chainr_compiler::compile(&src, &Default::default());
    assert!(!out.has_errors(), "{:?}", out.diagnostics);
    out.pipeline.unwrap()
}

/// Keeps every event it is given.
#[derive(Default)]
struct Recorder(Vec<RunEvent>);

#[async_trait::async_trait]
impl Publish for Recorder {
    async fn publish(&mut self, events: &[RunEvent]) -> Result<(), PublishError> {
        self.0.extend_from_slice(events);
        Ok(())
    }
}

struct Outcome {
    run: Run,
    events: Vec<RunEvent>,
    fake: Fake,
    logs: MemoryLogs,
}

async fn run_with(
    p: &ir::Pipeline,
    fake: Fake,
    concurrency: Option<usize>,
    commands: Vec<(Duration, Command)>,
) -> Outcome {
    let mut fake = fake;
    let logs = MemoryLogs::new();
    let mut driver = Driver::new(
        "run-1",
        p,
        DriverOptions {
            concurrency,
            kill_grace: fake.kill_grace(),
            log_cap: None,
        },
    )
    .unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel();
    for (after, c) in commands {
        send_at(&tx, after, c);
    }
    drop(tx);
    let mut recorder = Recorder::default();
    drive(&mut driver, &mut fake, &logs, &mut rx, &mut recorder)
        .await
        .unwrap();
    Outcome {
        run: driver.into_run(),
        events: recorder.0,
        fake,
        logs,
    }
}

/// Sends `command` after `after` of virtual time; at zero, at once: before the drive begins.
fn send_at(tx: &mpsc::UnboundedSender<Command>, after: Duration, command: Command) {
    if after.is_zero() {
        let _ = tx.send(command);
        return;
    }
    let tx = tx.clone();
    tokio::spawn(async move {
        tokio::time::sleep(after).await;
        let _ = tx.send(command);
    });
}

fn status(run: &Run, job: &str) -> Status {
    run.jobs.iter().find(|j| j.name == job).unwrap().status
}

fn reason(run: &Run, job: &str) -> Option<String> {
    run.jobs
        .iter()
        .find(|j| j.name == job)
        .unwrap()
        .reason
        .clone()
}

#[tokio::test(start_paused = true)]
async fn events_are_numbered_and_fold_into_the_returned_document() {
    let p = pipeline("job a {}\n job b after a {}\n job c after b.failed {}");
    let fake = Fake::new(&p, |_, _| ok(100));
    let o = run_with(&p, fake, None, vec![]).await;
    let seqs: Vec<u64> = o.events.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=o.events.len() as u64).collect::<Vec<_>>());
    assert!(matches!(
        o.events[0].kind,
        EventKind::RunStarted { resumed: false }
    ));
    assert!(matches!(
        o.events.last().unwrap().kind,
        EventKind::RunFinished { .. }
    ));
    assert_eq!(o.run, Run::replay("run-1".into(), &p, &o.events));
    assert_eq!(o.run.status, Status::Successful);
    assert_eq!(status(&o.run, "c"), Status::Skipped);
    assert_eq!(
        reason(&o.run, "c").as_deref(),
        Some("its condition was false")
    );
    // b started only after a ended: 100 ms of virtual time apart.
    let a = &o.run.jobs[0].attempts[0];
    let b = &o.run.jobs[1].attempts[0];
    assert_eq!(
        b.started_at.duration_since(a.started_at).unwrap(),
        Duration::from_millis(100)
    );
}

#[tokio::test(start_paused = true)]
async fn the_document_says_what_each_job_waited_for_and_when_it_was_decided() {
    let p = pipeline("job a {}\n job b after a {}\n job c after b.failed || a.errored {}");
    let o = run_with(&p, Fake::new(&p, |_, _| ok(100)), None, vec![]).await;
    let doc = serde_json::to_value(&o.run).unwrap();
    let jobs = doc["jobs"].as_array().unwrap();
    assert!(jobs[0].get("condition").is_none(), "{:#}", jobs[0]);
    assert_eq!(jobs[1]["condition"], "a");
    assert_eq!(jobs[2]["condition"], "b.failed || a.errored");
    // Each job is decided when its last attempt ends, or, skipped, when what it waits for is.
    assert_eq!(jobs[1]["decidedAt"], jobs[1]["finishedAt"]);
    assert_eq!(jobs[2]["decidedAt"], jobs[1]["finishedAt"]);
    // A retry undecides the jobs it runs again.
    let mut run = o.run.clone();
    run.apply(&RunEvent {
        seq: o.events.len() as u64 + 1,
        at: o.run.finished_at.unwrap(),
        kind: EventKind::RunRetried { jobs: vec![2] },
    });
    assert_eq!(run.jobs[2].decided_at, None);
    assert_eq!(run.jobs[1].decided_at, o.run.jobs[1].decided_at);
}

#[tokio::test(start_paused = true)]
async fn a_timeout_stops_gracefully_then_by_force_and_says_timed_out() {
    let p = pipeline("job slow { timeout = 2s }\n job stubborn { timeout = 2s }");
    let fake = Fake::new(&p, |name, _| Script {
        takes: Duration::from_secs(60),
        end: AttemptEnd::Succeeded,
        stubborn: name == "stubborn",
    });
    let o = run_with(&p, fake, None, vec![]).await;
    assert_eq!(status(&o.run, "slow"), Status::Failed);
    assert_eq!(
        reason(&o.run, "slow").as_deref(),
        Some("timed out after 2s")
    );
    assert_eq!(
        reason(&o.run, "stubborn").as_deref(),
        Some("timed out after 2s")
    );
    let stops: Vec<(&str, bool, u64)> = o
        .fake
        .stops
        .iter()
        .map(|(n, _, f, at)| (n.as_str(), *f, at.as_secs()))
        .collect();
    // Graceful at the timeout; forced after the grace period only for the one that ignored it.
    assert_eq!(
        stops,
        [
            ("slow", false, 2),
            ("stubborn", false, 2),
            ("stubborn", true, 5)
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn cancel_stops_running_jobs_and_finally_still_runs() {
    let p = pipeline("job a {}\n job b after a {}\n finally { job cleanup {} }");
    let fake = Fake::new(&p, |_, _| ok(10_000));
    let o = run_with(
        &p,
        fake,
        None,
        vec![(Duration::from_secs(1), Command::Cancel)],
    )
    .await;
    assert_eq!(o.run.status, Status::Cancelled);
    assert_eq!(status(&o.run, "a"), Status::Cancelled);
    assert_eq!(reason(&o.run, "a").as_deref(), Some("cancelled"));
    assert_eq!(status(&o.run, "b"), Status::Cancelled);
    assert_eq!(
        reason(&o.run, "b").as_deref(),
        Some("the run was cancelled before it started")
    );
    assert_eq!(status(&o.run, "cleanup"), Status::Successful);
    assert!(o
        .events
        .iter()
        .any(|e| matches!(e.kind, EventKind::CancelRequested { again: false })));
}

#[tokio::test(start_paused = true)]
async fn retries_wait_their_backoff_and_the_run_ends_when_the_last_attempt_does() {
    let p = pipeline("job flaky { retries = 2 backoff = 1s }");
    let fake = Fake::new(&p, |_, attempt| Script {
        takes: Duration::from_millis(10),
        end: if attempt < 3 {
            AttemptEnd::Failed
        } else {
            AttemptEnd::Succeeded
        },
        stubborn: false,
    });
    let o = run_with(&p, fake, None, vec![]).await;
    let delays: Vec<u64> = o
        .events
        .iter()
        .filter_map(|e| match e.kind {
            EventKind::RetryScheduled { delay_ms, .. } => Some(delay_ms),
            _ => None,
        })
        .collect();
    assert_eq!(delays, [1000, 2000]);
    let attempts = &o.run.jobs[0].attempts;
    assert_eq!(attempts.len(), 3);
    let gap = attempts[2]
        .started_at
        .duration_since(attempts[1].finished_at.unwrap())
        .unwrap();
    assert_eq!(gap, Duration::from_secs(2));
    assert_eq!(o.run.status, Status::Successful);
}

#[tokio::test(start_paused = true)]
async fn concurrency_is_respected_and_output_reaches_the_log_sink() {
    let p = pipeline("job a {}\n job b {}\n job c {}\n job d {}");
    let fake = Fake::new(&p, |_, _| ok(50));
    let o = run_with(&p, fake, Some(2), vec![]).await;
    assert_eq!(o.fake.most_at_once, 2);
    assert_eq!(o.run.status, Status::Successful);
    let key = LogKey {
        run: "run-1".into(),
        job: "a".into(),
        attempt: 1,
    };
    assert_eq!(o.logs.text(&key).as_deref(), Some("a attempt 1\n"));
    assert_eq!(
        o.run.jobs[0].attempts[0].log.as_deref(),
        Some("memory:run-1/a.1")
    );
}

/// Runs `p` with results from the scheduler model's spec, stopping after `cut` events have been
/// published (a worker that crashed), then resumes from those events with a fresh executor.
async fn crash_and_resume(
    p: &ir::Pipeline,
    plan: Vec<Vec<AttemptEnd>>,
    cut: usize,
    options: DriverOptions,
    cancel_at: Option<Duration>,
) -> (Run, Fake, Vec<RunEvent>) {
    let script = move |plan: Vec<Vec<AttemptEnd>>| {
        move |name: &str, attempt: u32| {
            let i: usize = name[1..].parse().unwrap();
            Script {
                takes: Duration::from_millis(10 + 7 * i as u64),
                end: plan[i]
                    .get(attempt as usize - 1)
                    .copied()
                    .unwrap_or(AttemptEnd::Succeeded),
                stubborn: false,
            }
        }
    };
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    store
        .create(NewRun {
            id: "r".into(),
            pipeline: p.clone(),
            submitter: None,
            created_at: std::time::SystemTime::now(),
            source: None,
        })
        .await
        .unwrap();
    let lease = store
        .claim("w1", Duration::from_secs(3600))
        .await
        .unwrap()
        .unwrap();
    // The first worker publishes `cut` events and then stops, as if killed.
    struct Crash {
        journal: Journal,
        left: usize,
    }
    #[async_trait::async_trait]
    impl Publish for Crash {
        async fn publish(&mut self, events: &[RunEvent]) -> Result<(), PublishError> {
            let n = events.len().min(self.left);
            self.left -= n;
            self.journal.publish(&events[..n]).await?;
            if self.left == 0 {
                return Err(PublishError::Store("killed".into()));
            }
            Ok(())
        }
    }
    let mut first = Fake::new(p, script(plan.clone()));
    let mut driver = Driver::new("r", p, options).unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel();
    if let Some(at) = cancel_at {
        send_at(&tx, at, Command::Cancel);
    }
    let mut crash = Crash {
        journal: Journal {
            store: store.clone(),
            lease: lease.clone(),
        },
        left: cut,
    };
    let logs = MemoryLogs::new();
    let _ = drive(&mut driver, &mut first, &logs, &mut rx, &mut crash).await;
    drop(driver);
    store.release(&lease).await.unwrap();
    // Another worker takes it over and continues from the stored events.
    let lease = store
        .claim("w2", Duration::from_secs(3600))
        .await
        .unwrap()
        .unwrap();
    let stored = store.events("r", 0, usize::MAX).await.unwrap();
    let mut second = Fake::new(p, script(plan));
    let mut driver = Driver::resume("r", p, options, &stored, Now::current()).unwrap();
    let (_tx, mut rx) = mpsc::unbounded_channel::<Command>();
    drop(tx);
    let mut journal = Journal {
        store: store.clone(),
        lease,
    };
    // In virtual time a driver that waits for nothing would wait forever: a day is a hang.
    let resumed = tokio::time::timeout(
        Duration::from_secs(86_400),
        drive(&mut driver, &mut second, &logs, &mut rx, &mut journal),
    )
    .await;
    assert!(
        matches!(resumed, Ok(Ok(()))),
        "the resumed run did not finish: {resumed:?}\nstored: {stored:#?}\nafter: {:#?}",
        driver.run()
    );
    let run = driver.into_run();
    // The stored document is the driver's, on top of what the submission said.
    let mut kept = store.get("r").await.unwrap().unwrap().run;
    assert!(kept.metadata.created_at.is_some());
    kept.metadata.submitter = None;
    kept.metadata.created_at = None;
    kept.metadata.source = None;
    assert_eq!(kept, run);
    (run, second, stored)
}

#[test]
fn output_past_the_log_cap_is_cut_once_with_a_marker() {
    let p = pipeline("job a {}");
    let options = DriverOptions {
        log_cap: Some(10),
        ..DriverOptions::default()
    };
    let mut d = Driver::new("r", &p, options).unwrap();
    let now = Now::current();
    d.begin(now);
    assert!(matches!(
        d.take_effects()[..],
        [Effect::Start {
            job: 0,
            attempt: 1,
            ..
        }]
    ));
    d.started(0, 1, Ok(None), now);
    assert_eq!(&*d.output_to_keep(0, 1, b"12345"), b"12345");
    let cut = d.output_to_keep(0, 1, b"6789abcdef").into_owned();
    let marker = chainr_runtime::log::cut_marker(10);
    assert_eq!(cut, [b"6789a".as_slice(), marker.as_bytes()].concat());
    assert!(marker.contains("cut here, at 10 bytes"), "{marker}");
    assert!(
        d.output_to_keep(0, 1, b"more").is_empty(),
        "nothing after the cut"
    );
}

#[test]
fn a_run_cancelled_before_a_crash_abandons_what_was_running_and_still_runs_finally() {
    let p = pipeline("job j0 {}\n job j1 after j0 {}\n finally { job j2 {} }");
    // Job 0 takes 17 ms; the cancel comes at 5 ms, while it runs. The first worker stores the
    // events up to the cancel request and dies.
    let whole = paused().block_on(async {
        let fake = Fake::new(&p, |_, _| ok(17));
        run_with(
            &p,
            fake,
            None,
            vec![(Duration::from_millis(5), Command::Cancel)],
        )
        .await
    });
    let cut = whole
        .events
        .iter()
        .position(|e| matches!(e.kind, EventKind::CancelRequested { .. }))
        .unwrap()
        + 1;
    let (run, second, _) = paused().block_on(crash_and_resume(
        &p,
        vec![vec![]; 3],
        cut,
        DriverOptions::default(),
        Some(Duration::from_millis(5)),
    ));
    assert_eq!(run.status, Status::Cancelled);
    assert_eq!(status(&run, "j0"), Status::Cancelled);
    assert_eq!(status(&run, "j1"), Status::Cancelled);
    assert_eq!(status(&run, "j2"), Status::Successful);
    assert_eq!(
        second.abandoned,
        [("j0".to_string(), 1, Some("j0#1".to_string()))]
    );
    let started: Vec<&str> = second.starts.iter().map(|(n, ..)| n.as_str()).collect();
    assert_eq!(
        started,
        ["j2"],
        "only the finally job runs after the take-over"
    );
}

/// Drives to the end with a cancel sent before the drive; answers the events.
async fn drive_cancelled_first(driver: &mut Driver<'_>, fake: &mut Fake) -> Vec<RunEvent> {
    let (tx, mut rx) = mpsc::unbounded_channel();
    tx.send(Command::Cancel).unwrap();
    drop(tx);
    let mut recorder = Recorder::default();
    drive(driver, fake, &MemoryLogs::new(), &mut rx, &mut recorder)
        .await
        .unwrap();
    recorder.0
}

#[tokio::test(start_paused = true)]
async fn a_cancel_sent_before_the_drive_is_taken_before_anything_launches() {
    let p = pipeline("job a {}\n job b after a {}\n finally { job cleanup {} }");
    let mut fake = Fake::new(&p, |_, _| ok(100));
    let mut driver = Driver::new("run-1", &p, DriverOptions::default()).unwrap();
    let events = drive_cancelled_first(&mut driver, &mut fake).await;
    let started: Vec<&str> = fake.starts.iter().map(|(n, ..)| n.as_str()).collect();
    assert_eq!(started, ["cleanup"]);
    assert!(fake.stops.is_empty());
    let kinds: Vec<&EventKind> = events.iter().map(|e| &e.kind).collect();
    assert!(matches!(
        kinds[..2],
        [
            EventKind::CancelRequested { again: false },
            EventKind::RunStarted { resumed: false }
        ]
    ));
    let run = driver.into_run();
    assert_eq!(run.status, Status::Cancelled);
    assert_eq!(
        reason(&run, "a").as_deref(),
        Some("the run was cancelled before it started")
    );
    assert_eq!(status(&run, "cleanup"), Status::Successful);
    assert_eq!(run, Run::replay("run-1".into(), &p, &events));
}

#[test]
fn a_run_cancelled_before_it_began_and_cut_anywhere_resumes_the_same() {
    let p = pipeline("job j0 {}\n job j1 after j0 {}\n finally { job j2 {} job j3 after j2 {} }");
    let whole = paused().block_on(async {
        let fake = Fake::new(&p, |_, _| ok(10));
        run_with(&p, fake, None, vec![(Duration::ZERO, Command::Cancel)]).await
    });
    assert_eq!(whole.run.status, Status::Cancelled);
    for cut in 1..whole.events.len() {
        let (run, second, _) = paused().block_on(crash_and_resume(
            &p,
            vec![vec![]; 4],
            cut,
            DriverOptions::default(),
            Some(Duration::ZERO),
        ));
        let outcomes = |r: &Run| r.jobs.iter().map(|j| j.status).collect::<Vec<_>>();
        assert_eq!(outcomes(&run), outcomes(&whole.run), "cut after {cut}");
        assert!(
            second.starts.iter().all(|(n, ..)| n == "j2" || n == "j3"),
            "cut after {cut}: {:?}",
            second.starts
        );
    }
}

#[test]
fn an_attempt_abandoned_before_its_start_was_recorded_is_over_for_the_next_driver() {
    let p = pipeline("job j0 {}\n finally { job j1 {} }");
    // The first driver launched j0 and died before recording its start.
    let first = vec![RunEvent {
        seq: 1,
        at: std::time::SystemTime::UNIX_EPOCH,
        kind: EventKind::RunStarted { resumed: false },
    }];
    // The second is cancelled as it takes over: j0 is abandoned, not started.
    let (second, fake) = paused().block_on(async {
        let mut fake = Fake::new(&p, |_, _| ok(10));
        let mut d =
            Driver::resume("r", &p, DriverOptions::default(), &first, Now::current()).unwrap();
        (drive_cancelled_first(&mut d, &mut fake).await, fake)
    });
    assert_eq!(fake.abandoned, [("j0".to_string(), 1, None)]);
    let started: Vec<&str> = fake.starts.iter().map(|(n, ..)| n.as_str()).collect();
    assert_eq!(started, ["j1"]);
    // A third driver over every event finds nothing in flight and nothing to decide.
    let all: Vec<RunEvent> = first.into_iter().chain(second).collect();
    let mut third =
        Driver::resume("r", &p, DriverOptions::default(), &all, Now::current()).unwrap();
    assert_eq!(third.run().status, Status::Cancelled);
    third.begin(Now::current());
    assert_eq!(third.take_effects(), []);
    let kinds: Vec<EventKind> = third.take_events().into_iter().map(|e| e.kind).collect();
    assert_eq!(kinds, [EventKind::RunStarted { resumed: true }]);
}

/// Continues a run from `stored` with a fresh driver and executor, to its end: the document,
/// the executor, the new events.
fn resume_to_the_end(
    p: &ir::Pipeline,
    stored: &[RunEvent],
    script: impl Fn(&str, u32) -> Script + Send + 'static,
) -> (Run, Fake, Vec<RunEvent>) {
    paused().block_on(async {
        let mut fake = Fake::new(p, script);
        let mut d =
            Driver::resume("run-1", p, DriverOptions::default(), stored, Now::current()).unwrap();
        let (_, mut rx) = mpsc::unbounded_channel::<Command>();
        let mut recorder = Recorder::default();
        let day = Duration::from_secs(86_400);
        let logs = MemoryLogs::new();
        let driven = drive(&mut d, &mut fake, &logs, &mut rx, &mut recorder);
        let ended = tokio::time::timeout(day, driven).await;
        assert!(matches!(ended, Ok(Ok(()))), "{ended:?}");
        (d.into_run(), fake, recorder.0)
    })
}

#[test]
fn a_retried_run_cut_anywhere_in_its_new_round_resumes_to_the_same_end() {
    let p = pipeline(
        "job j0 { retries = 1 }\n job j1 after j0 {}\n job j2 after j0.failed {}\n job j4 {}\n finally { job j3 {} }",
    );
    // j0 fails both attempts of the first round and succeeds at its third.
    let script = |name: &str, attempt: u32| Script {
        takes: Duration::from_millis(10),
        end: if name == "j0" && attempt <= 2 {
            AttemptEnd::Failed
        } else {
            AttemptEnd::Succeeded
        },
        stubborn: false,
    };
    let first = paused().block_on(run_with(&p, Fake::new(&p, script), None, vec![]));
    assert_eq!(first.run.status, Status::Failed);
    let jobs = first.run.jobs_to_retry(&p);
    assert_eq!(jobs, [0, 1, 2, 4], "all but j4, which succeeded on its own");
    let mut stored = first.events;
    stored.push(RunEvent {
        seq: stored.len() as u64 + 1,
        at: stored.last().unwrap().at,
        kind: EventKind::RunRetried { jobs },
    });
    let (whole, fake, second) = resume_to_the_end(&p, &stored, script);
    let statuses = |r: &Run| r.jobs.iter().map(|j| j.status).collect::<Vec<_>>();
    use Status::{Skipped as K, Successful as S};
    assert_eq!(statuses(&whole), [S, S, K, S, S]);
    assert_eq!(whole.status, S);
    let starts: Vec<(&str, u32)> = fake
        .starts
        .iter()
        .map(|(n, a, _)| (n.as_str(), *a))
        .collect();
    assert_eq!(starts, [("j0", 3), ("j1", 1), ("j3", 2)]);
    let all: Vec<RunEvent> = stored.iter().chain(&second).cloned().collect();
    assert_eq!(whole, Run::replay("run-1".into(), &p, &all));
    for cut in 1..second.len() {
        let prefix: Vec<RunEvent> = stored.iter().chain(&second[..cut]).cloned().collect();
        let (run, again, _) = resume_to_the_end(&p, &prefix, script);
        assert_eq!(statuses(&run), statuses(&whole), "cut after {cut}");
        let decided: Vec<String> = second[..cut]
            .iter()
            .filter_map(|e| match e.kind {
                EventKind::JobDecided { job, .. } => Some(format!("j{job}")),
                _ => None,
            })
            .collect();
        for (name, attempt, _) in &again.starts {
            assert!(!decided.contains(name), "cut after {cut}: {name} ran again");
            assert!(
                *attempt > 1 || name == "j1",
                "cut after {cut}: {name} #{attempt}"
            );
        }
    }
}

#[test]
fn a_run_given_up_as_it_is_taken_over_abandons_what_ran_and_ends_errored() {
    let p = pipeline("job j0 {}\n job j1 {}\n job j2 after j0 {}\n finally { job j3 {} }");
    let at = std::time::SystemTime::UNIX_EPOCH;
    let stored: Vec<RunEvent> = [
        EventKind::RunStarted { resumed: false },
        EventKind::AttemptStarted {
            job: 0,
            attempt: 1,
            handle: Some("j0#1".into()),
        },
    ]
    .into_iter()
    .enumerate()
    .map(|(i, kind)| RunEvent {
        seq: i as u64 + 1,
        at,
        kind,
    })
    .collect();
    // j1's launch was decided but its start not recorded.
    let (events, fake, run) = paused().block_on(async {
        let mut fake = Fake::new(&p, |_, _| ok(10));
        let mut d = Driver::resume(
            "run-1",
            &p,
            DriverOptions::default(),
            &stored,
            Now::current(),
        )
        .unwrap();
        d.give_up(GiveUp::WorkerStopped { times: 4 }, Now::current());
        let (_, mut rx) = mpsc::unbounded_channel::<Command>();
        let mut recorder = Recorder::default();
        let logs = MemoryLogs::new();
        drive(&mut d, &mut fake, &logs, &mut rx, &mut recorder)
            .await
            .unwrap();
        (recorder.0, fake, d.into_run())
    });
    assert!(fake.starts.is_empty(), "{:?}", fake.starts);
    assert_eq!(
        fake.abandoned,
        [
            ("j0".to_string(), 1, Some("j0#1".to_string())),
            ("j1".to_string(), 1, None)
        ]
    );
    assert!(matches!(
        events[1].kind,
        EventKind::RunGivenUp {
            why: GiveUp::WorkerStopped { times: 4 }
        }
    ));
    assert_eq!(run.status, Status::Errored);
    assert_eq!(
        run.reason.as_deref(),
        Some("its worker stopped 4 times while driving it; not taken over again")
    );
    assert_eq!(reason(&run, "j0").as_deref(), Some("the run was given up"));
    assert_eq!(
        reason(&run, "j3").as_deref(),
        Some("the run was given up before it started")
    );
    let all: Vec<RunEvent> = stored.iter().chain(&events).cloned().collect();
    assert_eq!(run, Run::replay("run-1".into(), &p, &all));
}

fn paused() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 120, ..ProptestConfig::default() })]

    /// Replaying a finished run's events, through their JSON form, gives its document.
    #[test]
    fn replaying_the_events_gives_the_document(specs in pipeline_specs()) {
        let specs = legal(specs);
        let p = to_ir(&specs);
        let plan: Vec<Vec<AttemptEnd>> = specs.iter().map(|s| s.results.clone()).collect();
        let o = paused().block_on(async {
            let fake = Fake::new(&p, move |name, attempt| {
                let i: usize = name[1..].parse().unwrap();
                Script {
                    takes: Duration::from_millis(5 + i as u64),
                    end: plan[i].get(attempt as usize - 1).copied().unwrap_or(AttemptEnd::Succeeded),
                    stubborn: false,
                }
            });
            run_with(&p, fake, Some(3), vec![]).await
        });
        let json = serde_json::to_string(&o.events).unwrap();
        let back: Vec<RunEvent> = serde_json::from_str(&json).unwrap();
        prop_assert_eq!(Run::replay("run-1".into(), &p, &back), o.run.clone());
        prop_assert!(o.run.status.is_terminal());
    }

    /// A run cut short after any number of events and resumed by another driver ends as an
    /// uninterrupted run does; no job decided before the cut runs again, and attempts in flight
    /// at the cut are started again with the handle they had.
    #[test]
    fn a_resumed_run_ends_as_an_uninterrupted_one(
        specs in pipeline_specs(),
        cut in any::<usize>(),
        concurrency in proptest::option::of(1usize..3),
    ) {
        let specs = legal(specs);
        let p = to_ir(&specs);
        let plan: Vec<Vec<AttemptEnd>> = specs.iter().map(|s| s.results.clone()).collect();
        let whole = paused().block_on(async {
            let plan = plan.clone();
            let fake = Fake::new(&p, move |name, attempt| {
                let i: usize = name[1..].parse().unwrap();
                Script {
                    takes: Duration::from_millis(10 + 7 * i as u64),
                    end: plan[i].get(attempt as usize - 1).copied().unwrap_or(AttemptEnd::Succeeded),
                    stubborn: false,
                }
            });
            run_with(&p, fake, concurrency, vec![]).await
        });
        // Cut anywhere before the last event (a run whose events were all stored is finished).
        let cut = 1 + cut % (whole.events.len() - 1).max(1);
        prop_assume!(cut < whole.events.len());
        let options = DriverOptions {
            concurrency,
            kill_grace: Some(Duration::from_secs(3)),
            log_cap: None,
        };
        let (resumed, second, stored) =
            paused().block_on(crash_and_resume(&p, plan, cut, options, None));
        let outcomes = |r: &Run| r.jobs.iter().map(|j| (j.name.clone(), j.status)).collect::<Vec<_>>();
        prop_assert_eq!(outcomes(&resumed), outcomes(&whole.run));
        prop_assert_eq!(resumed.status, whole.run.status);
        let decided_before: Vec<String> = stored.iter().filter_map(|e| match e.kind {
            EventKind::JobDecided { job, .. } => Some(format!("j{job}")),
            _ => None,
        }).collect();
        for (name, _, _) in &second.starts {
            prop_assert!(!decided_before.contains(name), "{} ran again after it was decided", name);
        }
        let mut in_flight: HashMap<usize, (u32, Option<String>)> = HashMap::new();
        for e in &stored {
            match &e.kind {
                EventKind::AttemptStarted { job, attempt, handle } => { in_flight.insert(*job, (*attempt, handle.clone())); }
                EventKind::AttemptEnded { job, .. } => { in_flight.remove(job); }
                _ => {}
            }
        }
        for (job, (attempt, handle)) in in_flight {
            let restarted = second.starts.iter().find(|(n, a, _)| *n == format!("j{job}") && *a == attempt);
            prop_assert_eq!(restarted.map(|s| s.2.clone()), Some(Some(handle)));
        }
    }
}
