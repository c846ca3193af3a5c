//! `chainrc run`: how a run is shown. The views subscribe to the run's events on a thread of
//! their own (a slow terminal never holds up the run): a live view on a terminal (finished jobs
//! scroll above, running jobs spin below), one line per event otherwise, or nothing and the Run
//! document as JSON at the end.

use chainr_runtime::event::{EventKind, RunEvent};
pub use chainr_runtime::log::Tail;
use chainr_runtime::record::{JobRecord, Run, Status};
use chainr_runtime::JobId;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::{IsTerminal, Write};
use std::time::Duration;

/// What a view shows of a run; every method has a do-nothing default.
pub trait Observer {
    fn job_started(&mut self, _run: &Run, _job: JobId) {}
    /// The job reached a terminal status, or an attempt failed and a retry is coming.
    fn job_updated(&mut self, _run: &Run, _job: JobId) {}
    fn retrying(&mut self, _run: &Run, _job: JobId, _delay: Duration) {}
    /// The run is being cancelled (`again`: the second time, finally jobs stop too).
    fn cancelling(&mut self, _run: &Run, _again: bool) {}
}

/// Shows the events from `events` with `view` until their sender is dropped (the run's driver,
/// or the client following a run on a server); `run` is the document before the first event,
/// which the view keeps up to date by folding each one.
pub fn show(
    mut run: Run,
    mut events: tokio::sync::mpsc::UnboundedReceiver<RunEvent>,
    view: &mut dyn Observer,
) {
    while let Some(e) = events.blocking_recv() {
        run.apply(&e);
        match e.kind {
            EventKind::AttemptStarted { job, .. } => view.job_started(&run, job),
            EventKind::RetryScheduled { job, delay_ms, .. } => {
                view.job_updated(&run, job);
                view.retrying(&run, job, Duration::from_millis(delay_ms));
            }
            EventKind::JobDecided { job, .. } => view.job_updated(&run, job),
            EventKind::CancelRequested { again } => view.cancelling(&run, again),
            EventKind::AttemptEnded { .. }
            | EventKind::RetryDue { .. }
            | EventKind::RunStarted { .. }
            | EventKind::RunFinished { .. }
            | EventKind::RunRetried { .. }
            | EventKind::RunGivenUp { .. } => {}
        }
    }
}

/// Shows a run's events on stderr, on the calling thread, until `events` closes: the live view
/// on a terminal, a line per event otherwise. `chainrc run` and `chainrc submit --wait` both
/// show runs with it.
pub fn watch(planned: Run, events: tokio::sync::mpsc::UnboundedReceiver<RunEvent>, color: bool) {
    if std::io::stderr().is_terminal() {
        let mut live = Live::new(planned.jobs.len(), color);
        show(planned, events, &mut live);
        live.finish();
    } else {
        show(planned, events, &mut Plain);
    }
}

/// The terminal view: a spinner per running job and a progress line for the run.
pub struct Live {
    multi: MultiProgress,
    overall: ProgressBar,
    bars: Vec<Option<ProgressBar>>,
    color: bool,
}

impl Live {
    pub fn new(jobs: usize, color: bool) -> Live {
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
        let overall = multi.add(ProgressBar::new(jobs as u64));
        overall.set_style(
            ProgressStyle::with_template("{elapsed:>6} [{bar:30}] {pos}/{len} jobs done {msg}")
                .expect("a valid template")
                .progress_chars("=> "),
        );
        overall.enable_steady_tick(Duration::from_millis(200));
        Live {
            multi,
            overall,
            bars: vec![None; jobs],
            color,
        }
    }

    /// Clears the view, with the spinners of jobs still running (when a client stops watching).
    pub fn finish(&mut self) {
        for bar in self.bars.iter_mut().filter_map(Option::take) {
            bar.finish_and_clear();
            self.multi.remove(&bar);
        }
        self.overall.finish_and_clear();
        let _ = self.multi.clear();
    }
}

impl Observer for Live {
    fn job_started(&mut self, run: &Run, job: JobId) {
        let j = &run.jobs[job];
        let bar = self
            .multi
            .insert_before(&self.overall, ProgressBar::new_spinner());
        bar.set_style(
            ProgressStyle::with_template("{spinner} {msg} {elapsed}").expect("a valid template"),
        );
        let attempt = j.attempts.len();
        bar.set_message(if attempt > 1 {
            format!("{} (attempt {attempt})", j.name)
        } else {
            j.name.clone()
        });
        bar.enable_steady_tick(Duration::from_millis(100));
        self.bars[job] = Some(bar);
    }

    fn job_updated(&mut self, run: &Run, job: JobId) {
        if let Some(bar) = self.bars[job].take() {
            bar.finish_and_clear();
            self.multi.remove(&bar);
        }
        let j = &run.jobs[job];
        if j.status.is_terminal() {
            self.overall.inc(1);
        }
        let _ = self.multi.println(line(j, self.color));
    }

    fn retrying(&mut self, run: &Run, job: JobId, delay: Duration) {
        let j = &run.jobs[job];
        let _ = self.multi.println(format!(
            "retrying  {} in {}",
            j.name,
            humantime::format_duration(delay)
        ));
    }

    fn cancelling(&mut self, _run: &Run, again: bool) {
        let text = if again {
            "cancelling: stopping finally jobs too"
        } else {
            "cancelling: stopping running jobs; finally jobs still run (Ctrl-C again to stop them)"
        };
        let _ = self.multi.println(paint(text, "1;33", self.color));
        self.overall.set_message("· cancelling");
    }
}

/// One line per event, for logs and pipes.
pub struct Plain;

impl Observer for Plain {
    fn job_started(&mut self, run: &Run, job: JobId) {
        let j = &run.jobs[job];
        eprintln!("started   {} (attempt {})", j.name, j.attempts.len());
    }

    fn job_updated(&mut self, run: &Run, job: JobId) {
        eprintln!("{}", line(&run.jobs[job], false));
    }

    fn retrying(&mut self, run: &Run, job: JobId, delay: Duration) {
        let j = &run.jobs[job];
        eprintln!(
            "retrying  {} in {}",
            j.name,
            humantime::format_duration(delay)
        );
    }

    fn cancelling(&mut self, _run: &Run, again: bool) {
        eprintln!(
            "{}",
            if again {
                "cancelling: stopping finally jobs too"
            } else {
                "cancelling: stopping running jobs; finally jobs still run"
            }
        );
    }
}

/// How long the job's last attempt took.
fn duration(j: &JobRecord) -> Option<Duration> {
    let a = j.attempts.last()?;
    a.finished_at?.duration_since(a.started_at).ok()
}

pub fn seconds(d: Duration) -> String {
    if d < Duration::from_secs(60) {
        format!("{:.2}s", d.as_secs_f64())
    } else {
        humantime::format_duration(Duration::from_secs(d.as_secs())).to_string()
    }
}

fn line(j: &JobRecord, color: bool) -> String {
    let took = duration(j)
        .map(|d| format!(" in {}", seconds(d)))
        .unwrap_or_default();
    let reason = j
        .reason
        .as_deref()
        .map(|r| format!(": {r}"))
        .unwrap_or_default();
    let (word, code) = match j.status {
        Status::Successful => ("succeeded", "32"),
        Status::Failed => ("failed   ", "31"),
        Status::Errored => ("errored  ", "31"),
        Status::Skipped => ("skipped  ", "2"),
        Status::Cancelled => ("cancelled", "33"),
        // An attempt failed and another one comes.
        Status::Pending => ("failed   ", "33"),
        Status::Running => ("running  ", "0"),
    };
    let took = if matches!(j.status, Status::Skipped)
        || (j.status == Status::Cancelled && j.attempts.is_empty())
    {
        String::new()
    } else {
        took
    };
    let attempt = if j.status == Status::Pending || j.attempts.len() > 1 {
        format!(" (attempt {})", j.attempts.len())
    } else {
        String::new()
    };
    format!(
        "{} {}{attempt}{took}{reason}",
        paint(word, code, color),
        j.name
    )
}

fn paint(text: &str, code: &str, color: bool) -> String {
    if color {
        format!("\x1b[{code}m{text}\x1b[0m")
    } else {
        text.to_string()
    }
}

/// The end of a text run: a summary line, then the last lines of each failed job's output,
/// read from the log files.
pub fn summary(run: &Run, logs: &std::path::Path, color: bool) {
    summary_with(run, &logs.display().to_string(), color, &mut |_, log| {
        // Unreadable reads as empty: the label still says where the output was meant to be.
        let tail = std::fs::File::open(log)
            .and_then(|f| Tail::read(f, TAIL_LINES))
            .unwrap_or_default();
        (tail, log.to_string())
    });
}

/// How many lines of a failed job's output the summary shows.
pub const TAIL_LINES: usize = 10;

/// The summary, with the output of a failed job's last attempt from `output` (given the job and
/// its attempt's `log`, it answers the tail and where the whole output is); `logs` says where
/// every job's output is.
pub fn summary_with(
    run: &Run,
    logs: &str,
    color: bool,
    output: &mut dyn FnMut(&JobRecord, &str) -> (Tail, String),
) {
    let mut counts: Vec<(Status, usize)> = Vec::new();
    for j in &run.jobs {
        match counts.iter_mut().find(|(s, _)| *s == j.status) {
            Some((_, n)) => *n += 1,
            None => counts.push((j.status, 1)),
        }
    }
    let took = match (run.started_at, run.finished_at) {
        (Some(a), Some(b)) => b.duration_since(a).map(seconds).unwrap_or_default(),
        _ => String::new(),
    };
    let parts: Vec<String> = counts
        .iter()
        .map(|(s, n)| format!("{n} {}", format!("{s:?}").to_lowercase()))
        .collect();
    let status = format!("{:?}", run.status).to_uppercase();
    let code = if run.status == Status::Successful {
        "1;32"
    } else {
        "1;31"
    };
    let mut err = std::io::stderr().lock();
    for j in run
        .jobs
        .iter()
        .filter(|j| matches!(j.status, Status::Failed | Status::Errored))
    {
        let why = j.reason.as_deref().unwrap_or("failed");
        let Some(log) = j.attempts.last().and_then(|a| a.log.as_deref()) else {
            let _ = writeln!(
                err,
                "\n{} {} ({why}): no output",
                paint("──", code, color),
                j.name
            );
            continue;
        };
        let (tail, source) = output(j, log);
        let _ = writeln!(
            err,
            "\n{} {} ({why}), {}:",
            paint("──", code, color),
            j.name,
            tail_label(tail.lines.len(), tail.total, &source)
        );
        for l in &tail.lines {
            let _ = writeln!(err, "  {l}");
        }
    }
    let _ = writeln!(
        err,
        "\n{} {} in {took}: {}  (logs: {logs})",
        paint(&status, code, color),
        run.metadata.name.as_deref().unwrap_or("run"),
        parts.join(", "),
    );
}

fn tail_label(shown: usize, total: usize, log: &str) -> String {
    if total == 0 {
        format!("no output ({log})")
    } else if shown < total {
        format!("last {shown} lines of {log}")
    } else {
        format!("output ({log})")
    }
}

/// Writes a JSON value as YAML. Every string is double-quoted (JSON's escapes are valid YAML), so
/// no reader can take `2026-01-01`, `on` or `1e3` for a date, a boolean or a number.
pub fn yaml(value: &serde_json::Value, indent: usize, out: &mut String) {
    use serde_json::Value;
    let pad = "  ".repeat(indent);
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                let key = if !k.is_empty()
                    && k.chars()
                        .all(|c| c.is_ascii_alphanumeric() || "_./-".contains(c))
                {
                    k.clone()
                } else {
                    Value::String(k.clone()).to_string()
                };
                match v {
                    Value::Object(m) if !m.is_empty() => {
                        out.push_str(&format!("{pad}{key}:\n"));
                        yaml(v, indent + 1, out);
                    }
                    Value::Array(a) if !a.is_empty() => {
                        out.push_str(&format!("{pad}{key}:\n"));
                        yaml(v, indent, out);
                    }
                    _ => out.push_str(&format!("{pad}{key}: {}\n", scalar(v))),
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                let mut inner = String::new();
                match item {
                    Value::Object(m) if !m.is_empty() => yaml(item, indent + 1, &mut inner),
                    Value::Array(a) if !a.is_empty() => yaml(item, indent + 1, &mut inner),
                    _ => inner = format!("{}  {}\n", pad, scalar(item)),
                }
                // The first line of the item goes after its dash.
                let body = inner.trim_start_matches(' ');
                out.push_str(&format!("{pad}- {body}"));
            }
        }
        other => out.push_str(&format!("{pad}{}\n", scalar(other))),
    }
}

fn scalar(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Object(_) => "{}".into(),
        serde_json::Value::Array(_) => "[]".into(),
        // Numbers, booleans, null and strings (quoted, escaped) are written as JSON writes them.
        other => other.to_string(),
    }
}

/// Runs `pipeline` to its end through `executor`: the driver, the log files, the view on its own
/// thread, and SIGINT/SIGTERM as cancel (a second one stops `finally` jobs too).
pub async fn execute<E: chainr_runtime::Executor + Send>(
    pipeline: &chainr_compiler::ir::Pipeline,
    run_id: &str,
    concurrency: Option<usize>,
    executor: &mut E,
    logs_dir: &std::path::Path,
    view: crate::View,
    notify: Option<std::sync::Arc<chainr_notify::Config>>,
) -> Result<Run, String> {
    use chainr_runtime::driver::{drive, Command, Driver, DriverOptions, Subscribers};
    use tokio::signal::unix::{signal, SignalKind};

    let logs = std::sync::Arc::new(crate::logs::FileLogs::new(logs_dir)?);
    let mut driver = Driver::new(
        run_id,
        pipeline,
        DriverOptions {
            concurrency,
            kill_grace: executor.kill_grace(),
            // A local run's log files keep everything, as the jobs' own output would.
            log_cap: None,
        },
    )
    .map_err(|e| e.to_string())?;
    // Registered before the first job starts, so that an early Ctrl-C cancels rather than kills.
    let mut interrupt =
        signal(SignalKind::interrupt()).map_err(|e| format!("cannot handle signals: {e}"))?;
    let mut terminate =
        signal(SignalKind::terminate()).map_err(|e| format!("cannot handle signals: {e}"))?;
    let (tx, mut commands) = tokio::sync::mpsc::unbounded_channel();
    let signals = tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            }
            if tx.send(Command::Cancel).is_err() {
                return;
            }
        }
    });
    let mut subscribers = Subscribers::new();
    let shown = (view.format == crate::Format::Text).then(|| {
        let events = subscribers.subscribe();
        let planned = driver.run().clone();
        let color = view.color;
        std::thread::spawn(move || watch(planned, events, color))
    });
    let result = match notify {
        None => {
            drive(
                &mut driver,
                executor,
                &*logs,
                &mut commands,
                &mut subscribers,
            )
            .await
        }
        Some(config) => {
            let notifying = Notifying::start(pipeline, run_id, config, logs.clone()).await?;
            let mut both = (notifying.journal(), subscribers);
            let result = drive(&mut driver, executor, &*logs, &mut commands, &mut both).await;
            subscribers = both.1;
            notifying.finish().await;
            result
        }
    };
    signals.abort();
    drop(subscribers);
    if let Some(view) = shown {
        let _ = view.join();
    }
    result.map_err(|e| e.to_string())?;
    Ok(driver.into_run())
}

/// `chainrc run --notify`: the run's events go to an in-memory store as well, and a notifier
/// reads them from there as `chainrc serve`'s does, with the same configuration.
struct Notifying {
    store: std::sync::Arc<chainr_runtime::store::MemoryStore>,
    lease: chainr_runtime::store::Lease,
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

/// How long notifications may still take once the run has finished.
const NOTIFY_WAIT: Duration = Duration::from_secs(60);

impl Notifying {
    async fn start(
        pipeline: &chainr_compiler::ir::Pipeline,
        run_id: &str,
        config: std::sync::Arc<chainr_notify::Config>,
        logs: std::sync::Arc<crate::logs::FileLogs>,
    ) -> Result<Notifying, String> {
        use chainr_runtime::store::{NewRun, Store};
        let store = std::sync::Arc::new(chainr_runtime::store::MemoryStore::new());
        let fail =
            |e: chainr_runtime::store::StoreError| format!("cannot start notifications: {e}");
        store
            .create(NewRun {
                id: run_id.to_string(),
                pipeline: pipeline.clone(),
                submitter: None,
                created_at: std::time::SystemTime::now(),
                source: None,
            })
            .await
            .map_err(fail)?;
        // One run, one driver: the lease never needs renewing.
        let lease = store
            .claim("chainrc-run", Duration::from_secs(100 * 365 * 86_400))
            .await
            .map_err(fail)?
            .ok_or("cannot start notifications: the run was not stored")?;
        let notifier = std::sync::Arc::new(chainr_notify::Notifier {
            store: store.clone(),
            outbox: store.clone(),
            logs,
            config,
            owner: "chainrc-run".into(),
            observer: None,
            poll: Duration::from_millis(100),
        });
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(notifier.run(stopped));
        Ok(Notifying {
            store,
            lease,
            stop,
            task,
        })
    }

    fn journal(&self) -> chainr_runtime::store::Journal {
        chainr_runtime::store::Journal {
            store: self.store.clone(),
            lease: self.lease.clone(),
        }
    }

    /// Waits until every notification due by now was sent or given up (at most
    /// [`NOTIFY_WAIT`]), then says on standard error which were not delivered.
    async fn finish(self) {
        use chainr_runtime::outbox::{DeliveryState, Outbox};
        use chainr_runtime::store::Store;
        let deadline = tokio::time::Instant::now() + NOTIFY_WAIT;
        loop {
            let planned = match (
                self.store.last_change().await,
                self.store.notify_cursor().await,
            ) {
                (Ok(last), Ok(cursor)) => cursor >= last,
                _ => true,
            };
            let pending = self
                .store
                .deliveries(Some(DeliveryState::Pending), None, 1000)
                .await
                .map(|p| p.deliveries)
                .unwrap_or_default();
            // What is due only later (`running_longer_than` of a run that has finished) waits for
            // nothing.
            let waiting = pending.iter().any(|d| {
                d.due <= std::time::SystemTime::now() + NOTIFY_WAIT
                    && d.notification.event != chainr_compiler::ir::NotifyEvent::RunningLongerThan
            });
            if planned && !waiting || tokio::time::Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = self.stop.send(true);
        let _ = self.task.await;
        let mut undelivered = Vec::new();
        for state in [DeliveryState::Dead, DeliveryState::Pending] {
            if let Ok(page) = self.store.deliveries(Some(state), None, 1000).await {
                undelivered.extend(page.deliveries.into_iter().filter(|d| {
                    d.notification.event != chainr_compiler::ir::NotifyEvent::RunningLongerThan
                }));
            }
        }
        for d in undelivered {
            eprintln!(
                "warning: the {} notification to {} was not delivered: {}",
                d.notification.event.name(),
                d.notification.medium,
                d.last_error.as_deref().unwrap_or("not attempted in time")
            );
        }
    }
}
