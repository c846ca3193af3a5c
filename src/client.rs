//! The client of `chainrc serve`: `submit`, `status`, `logs`, `cancel` and `retry` over the HTTP
//! API, with blocking requests (ureq). `submit --wait` follows the run's server-sent events and
//! shows them with the views of `chainrc run` (`run::watch`), reconnecting after the last event
//! it saw when the connection drops. The token comes from `CHAINR_TOKEN` and is never printed.

use crate::run::{self, Tail};
use crate::{Format, CANCELLED, INVALID};
use chainr_compiler::{self as compiler, Params};
use chainr_runtime::event::{EventKind, RunEvent};
use chainr_runtime::record::{JobRecord, Run, Status};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime};
use ureq::http::{Response, StatusCode};
use ureq::Body;

const DEFAULT_SERVER: &str = "http://127.0.0.1:8080";

/// Where the server is.
#[derive(clap::Args, Debug)]
pub struct ServerArgs {
    /// The chainr server (`chainrc serve`). The token, if it wants one, is read from CHAINR_TOKEN.
    #[arg(long, value_name = "URL", env = "CHAINR_SERVER", default_value = DEFAULT_SERVER)]
    server: String,
}

#[derive(clap::Args, Debug)]
pub struct SubmitArgs {
    /// The pipeline: `.chainr` source or IR `.json`.
    file: PathBuf,
    /// Set a param: `-p date=2026-01-01`. Repeatable.
    #[arg(short = 'p', long = "param", value_name = "NAME=VALUE", value_parser = crate::param_pair)]
    params: Vec<(String, String)>,
    /// Follow the run to its end with the view of `chainrc run`, and exit as `chainrc run` does.
    /// Ctrl-C stops waiting; the run goes on.
    #[arg(long)]
    wait: bool,
    /// `text`: the run's uid and URL (with --wait: the live view and a summary). `json`: the Run
    /// document on stdout (with --wait: once the run has finished).
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    #[command(flatten)]
    server: ServerArgs,
}

#[derive(clap::Args, Debug)]
pub struct StatusArgs {
    /// A run's uid: its jobs, attempts, exit codes and reasons. Without it: the recent runs.
    run: Option<String>,
    /// At most this many runs, newest first.
    #[arg(long, value_name = "N", default_value_t = 20, conflicts_with = "run",
          value_parser = clap::value_parser!(u32).range(1..=1000))]
    limit: u32,
    /// Only runs with this status (`running`, `successful`, `failed`, `errored`, `cancelled`, `pending`).
    #[arg(long, value_name = "STATUS", conflicts_with = "run")]
    status: Option<String>,
    /// Only runs of the pipeline with this name.
    #[arg(long, value_name = "NAME", conflicts_with = "run")]
    pipeline: Option<String>,
    /// `text`: a table. `json`: the server's document (a RunList, or the Run).
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    #[command(flatten)]
    server: ServerArgs,
}

#[derive(clap::Args, Debug)]
pub struct LogsArgs {
    /// The run's uid.
    run: String,
    /// The job's name (a fan-out instance by its own name, as `shard-0`).
    job: String,
    /// Follow the output while the attempt runs (waiting for the job to start); ends when it ends.
    #[arg(short, long)]
    follow: bool,
    /// This attempt (1 is the first) instead of the last one.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    attempt: Option<u32>,
    #[command(flatten)]
    server: ServerArgs,
}

#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// The run's uid.
    run: String,
    /// `text`: what happened, in words. `json`: the Run document the server answered.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    #[command(flatten)]
    server: ServerArgs,
}

/// How long connecting may take.
const CONNECT: Duration = Duration::from_secs(10);
/// How long the server may take to answer a request's headers.
const ANSWER: Duration = Duration::from_secs(60);
/// An event stream with nothing, not even the server's keep-alive (every 15 s), for this long
/// is taken for broken and opened again.
const EVENTS_IDLE: Duration = Duration::from_secs(45);
/// The pauses between reconnections: the first, doubled up to the last.
const RECONNECT_FIRST: Duration = Duration::from_millis(250);
const RECONNECT_MAX: Duration = Duration::from_secs(5);
/// Waiting gives up when the server could not be reached for this long in a row.
const GIVE_UP: Duration = Duration::from_secs(60);
/// The largest JSON document read from the server.
const MAX_DOCUMENT: u64 = 256 << 20;

/// What went wrong talking to the server.
#[derive(Debug)]
enum Failure {
    /// Something on this side failed (no runtime, no signal handler).
    Here(String),
    /// The server could not be reached, or the connection broke.
    Unreachable(String),
    /// The server answered with an error.
    Refused {
        status: StatusCode,
        /// The server's `error` (or its text, when the answer is not the API's JSON).
        message: String,
        body: Option<Value>,
    },
    /// The server answered something this client cannot read.
    Garbled(String),
}

/// The characters a path segment or a query value keeps as they are; the rest is
/// percent-encoded.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

fn segment(s: &str) -> String {
    utf8_percent_encode(s, SEGMENT).to_string()
}

#[derive(Clone)]
struct Client {
    /// The server's URL, without a trailing `/`.
    base: String,
    agent: ureq::Agent,
    token: Option<String>,
    /// What a command suggested to the user needs to reach the same server (` --server URL`,
    /// or nothing when the default or CHAINR_SERVER gives it).
    server_flag: String,
}

impl Client {
    /// A client of the server of `args`, or why there cannot be one.
    fn new(args: &ServerArgs) -> Result<Client, String> {
        let base = args.server.trim_end_matches('/').to_string();
        let rest = base
            .strip_prefix("http://")
            .or_else(|| base.strip_prefix("https://"));
        if rest.is_none_or(str::is_empty) {
            return Err(format!(
                "the server must be an http:// or https:// URL, got `{}`",
                args.server
            ));
        }
        let token = std::env::var("CHAINR_TOKEN")
            .ok()
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty());
        if token
            .as_deref()
            .is_some_and(|t| !t.bytes().all(|b| b.is_ascii_graphic()))
        {
            return Err(
                "CHAINR_TOKEN holds characters a token cannot have (spaces, control or non-ASCII characters)".into(),
            );
        }
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(CONNECT))
            .timeout_recv_response(Some(ANSWER))
            .user_agent(concat!("chainrc/", env!("CARGO_PKG_VERSION")))
            .build()
            .new_agent();
        let implied = std::env::var("CHAINR_SERVER").unwrap_or_else(|_| DEFAULT_SERVER.into());
        let server_flag = if implied.trim_end_matches('/') == base {
            String::new()
        } else {
            format!(" --server {base}")
        };
        Ok(Client {
            base,
            agent,
            token,
            server_flag,
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn run_path(uid: &str) -> String {
        format!("/api/runs/{}", segment(uid))
    }

    fn authorized<B>(&self, request: ureq::RequestBuilder<B>) -> ureq::RequestBuilder<B> {
        match &self.token {
            Some(t) => request.header("Authorization", format!("Bearer {t}")),
            None => request,
        }
    }

    /// A successful answer, or what went wrong.
    fn answer(&self, sent: Result<Response<Body>, ureq::Error>) -> Result<Response<Body>, Failure> {
        let response = sent.map_err(|e| {
            Failure::Unreachable(match e {
                ureq::Error::Io(e) => e.to_string(),
                e => e.to_string(),
            })
        })?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status();
        let text = response
            .into_body()
            .with_config()
            .limit(MAX_DOCUMENT)
            .lossy_utf8(true)
            .read_to_string()
            .unwrap_or_default();
        let body = serde_json::from_str::<Value>(&text).ok();
        let message = match body.as_ref().and_then(|b| b.get("error")?.as_str()) {
            Some(e) => e.to_string(),
            None if !text.trim().is_empty() => {
                let t = text.trim();
                // Not the API's error: a proxy's page, say. Enough of it to recognise.
                match t.char_indices().nth(300) {
                    Some((cut, _)) => format!("{}…", &t[..cut]),
                    None => t.to_string(),
                }
            }
            None => status
                .canonical_reason()
                .unwrap_or("no explanation")
                .to_lowercase(),
        };
        Err(Failure::Refused {
            status,
            message,
            body,
        })
    }

    fn get(&self, path: &str) -> Result<Response<Body>, Failure> {
        let request = self.authorized(self.agent.get(self.url(path)));
        self.answer(request.call())
    }

    fn post(&self, path: &str) -> Result<Response<Body>, Failure> {
        let request = self.authorized(self.agent.post(self.url(path)));
        self.answer(request.send_empty())
    }

    /// An answer's JSON document.
    fn json(response: Response<Body>) -> Result<Value, Failure> {
        let text = response
            .into_body()
            .with_config()
            .limit(MAX_DOCUMENT)
            .read_to_string()
            .map_err(|e| Failure::Unreachable(format!("the answer broke off: {e}")))?;
        serde_json::from_str(&text).map_err(|e| Failure::Garbled(format!("not JSON: {e}")))
    }

    fn get_json(&self, path: &str) -> Result<Value, Failure> {
        Client::json(self.get(path)?)
    }

    /// An attempt's output: the last attempt's unless `attempt`; streamed while it runs with
    /// `follow`.
    fn log(
        &self,
        uid: &str,
        job: &str,
        attempt: Option<u32>,
        follow: bool,
    ) -> Result<Response<Body>, Failure> {
        let path = format!("{}/jobs/{}/logs", Client::run_path(uid), segment(job));
        let mut request = self.agent.get(self.url(&path));
        if let Some(n) = attempt {
            request = request.query("attempt", n.to_string());
        }
        if follow {
            request = request.query("follow", "true");
        }
        self.answer(self.authorized(request).call())
    }

    /// A run's event stream, after event `after` (0: from the start).
    fn events(&self, uid: &str, after: u64) -> Result<Response<Body>, Failure> {
        let path = format!("{}/events", Client::run_path(uid));
        let mut request = self
            .agent
            .get(self.url(&path))
            .header("Accept", "text/event-stream");
        if after > 0 {
            request = request.header("Last-Event-ID", after.to_string());
        }
        let request = request.config().timeout_per_read(Some(EVENTS_IDLE)).build();
        self.answer(self.authorized(request).call())
    }

    /// Says what went wrong on stderr, with what to do about it where that is known.
    fn report(&self, failure: &Failure) {
        match failure {
            Failure::Here(m) => eprintln!("error: {m}"),
            Failure::Unreachable(m) => {
                eprintln!(
                    "error: cannot reach the chainr server at {}: {m}",
                    self.base
                )
            }
            Failure::Garbled(m) => eprintln!(
                "error: the server at {} answered something chainrc cannot read: {m}",
                self.base
            ),
            Failure::Refused {
                status, message, ..
            } => {
                eprintln!("error: {message} ({})", status_text(*status));
                match *status {
                    StatusCode::UNAUTHORIZED if self.token.is_none() => eprintln!(
                        "  the server wants a token: set CHAINR_TOKEN to one of its tokens \
                         (`chainrc token NAME` makes one for its tokens file)"
                    ),
                    StatusCode::UNAUTHORIZED => eprintln!(
                        "  the server does not accept the token in CHAINR_TOKEN: check it \
                         against the server's tokens file"
                    ),
                    StatusCode::FORBIDDEN => eprintln!(
                        "  a read token lists and reads runs but cannot submit, cancel or retry \
                         them: set CHAINR_TOKEN to a write token"
                    ),
                    StatusCode::NOT_FOUND if message.starts_with("no resource at") => eprintln!(
                        "  the server at {} does not offer this; it may be older than this chainrc",
                        self.base
                    ),
                    _ => {}
                }
            }
        }
    }
}

fn status_text(status: StatusCode) -> String {
    match status.canonical_reason() {
        Some(reason) => format!("{} {reason}", status.as_u16()),
        None => status.as_u16().to_string(),
    }
}

fn print_json(value: &Value) {
    let mut out = std::io::stdout().lock();
    let _ = serde_json::to_writer_pretty(&mut out, value);
    let _ = out.write_all(b"\n");
}

fn run_of(doc: &Value) -> Result<Run, Failure> {
    serde_json::from_value(doc.clone())
        .map_err(|e| Failure::Garbled(format!("not a Run document: {e}")))
}

/// `chainrc submit`: exit 2 when nothing was submitted (as `chainrc run` when nothing ran);
/// with `--wait`, the run's own exit code.
pub fn submit(args: SubmitArgs, color: bool) -> ExitCode {
    let client = match Client::new(&args.server) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(INVALID);
        }
    };
    let path = &args.file;
    let params = Params(args.params);
    if let Err(code) = crate::params_apply(path, &params) {
        return code;
    }
    let Ok(text) = crate::read(path) else {
        return ExitCode::from(INVALID);
    };
    let ir = compiler::is_ir_file(&path.to_string_lossy());
    let mut request = client.agent.post(client.url("/api/runs")).header(
        "Content-Type",
        if ir {
            "application/json"
        } else {
            "text/x-chainr"
        },
    );
    for (name, value) in &params.0 {
        request = request.query("param", format!("{name}={value}"));
    }
    let sent = client.answer(client.authorized(request).send(&text));
    let doc = match sent.and_then(Client::json) {
        Ok(doc) => doc,
        Err(Failure::Refused {
            status: StatusCode::BAD_REQUEST,
            message,
            body: Some(body),
        }) if body.get("rendered").is_some() => {
            // The compiler's findings, rendered by the server against its own name for the file.
            let rendered = body["rendered"].as_str().unwrap_or_default();
            let server_name = if ir {
                "pipeline.json"
            } else {
                "pipeline.chainr"
            };
            let rendered = rendered.replace(
                &format!("┌─ {server_name}:"),
                &format!("┌─ {}:", path.display()),
            );
            let _ = std::io::stderr().write_all(rendered.as_bytes());
            eprintln!(
                "error: {message} ({})",
                status_text(StatusCode::BAD_REQUEST)
            );
            return ExitCode::from(INVALID);
        }
        Err(f) => {
            client.report(&f);
            return ExitCode::from(INVALID);
        }
    };
    let planned = match run_of(&doc) {
        Ok(r) => r,
        // Accepted, so submitted, but not understood.
        Err(f) => {
            client.report(&f);
            return ExitCode::FAILURE;
        }
    };
    let uid = planned.metadata.uid.clone();
    let url = client.url(&Client::run_path(&uid));
    let label = planned
        .metadata
        .name
        .clone()
        .unwrap_or_else(|| "the pipeline".into());
    let jobs = planned.jobs.len();
    if !args.wait {
        match args.format {
            Format::Json => print_json(&doc),
            Format::Text => println!("run {uid} submitted: {label}, {jobs} jobs\n{url}"),
        }
        return ExitCode::SUCCESS;
    }
    if args.format == Format::Text {
        eprintln!(
            "submitted {label} ({jobs} jobs) to {}, run {uid}; Ctrl-C stops waiting, not the run",
            client.base
        );
    }
    let show = args.format == Format::Text;
    let finished = match wait(&client, planned, show, color) {
        Waited::Finished(run) => run,
        Waited::Stopped => {
            let flag = &client.server_flag;
            eprintln!(
                "stopped waiting; run {uid} goes on on the server\n  \
                 chainrc status {uid}{flag}   how it goes\n  \
                 chainrc cancel {uid}{flag}   to cancel it"
            );
            return ExitCode::from(CANCELLED);
        }
        Waited::Lost(f) => {
            client.report(&f);
            eprintln!(
                "stopped waiting for run {uid}; it may go on on the server: chainrc status {uid}{}",
                client.server_flag
            );
            return ExitCode::FAILURE;
        }
    };
    match args.format {
        Format::Json => match client.get_json(&Client::run_path(&uid)) {
            Ok(doc) => print_json(&doc),
            Err(f) => {
                client.report(&f);
                return ExitCode::FAILURE;
            }
        },
        Format::Text => {
            let logs = format!("chainrc logs {uid} JOB{}", client.server_flag);
            run::summary_with(&finished, &logs, color, &mut |job, _| {
                client.tail(&uid, job)
            });
        }
    }
    match finished.status {
        Status::Successful => ExitCode::SUCCESS,
        Status::Cancelled => ExitCode::from(CANCELLED),
        _ => ExitCode::FAILURE,
    }
}

impl Client {
    /// The end of the output of `job`'s last attempt, and the command that prints all of it.
    fn tail(&self, uid: &str, job: &JobRecord) -> (Tail, String) {
        let source = format!("chainrc logs {uid} {}{}", job.name, self.server_flag);
        let attempt = job.attempts.last().map(|a| a.attempt);
        let tail = self
            .log(uid, &job.name, attempt, false)
            .map_err(|f| match f {
                Failure::Refused { message, .. } => message,
                Failure::Unreachable(m) | Failure::Garbled(m) | Failure::Here(m) => m,
            })
            .and_then(|r| {
                Tail::read(r.into_body().into_reader(), run::TAIL_LINES).map_err(|e| e.to_string())
            });
        match tail {
            Ok(tail) => (tail, source),
            Err(e) => (
                Tail {
                    lines: vec![format!("(the output could not be read: {e})")],
                    total: 1,
                },
                source,
            ),
        }
    }
}

/// How waiting for a run ended.
enum Waited {
    /// The run finished; the document as its events left it.
    Finished(Run),
    /// Ctrl-C.
    Stopped,
    /// The events could not be read any more.
    Lost(Failure),
}

/// Follows a run's events until the run has its outcome, showing them with `run::watch` when `show`. The
/// stream is read on a thread of its own; this one waits for events and for Ctrl-C.
fn wait(client: &Client, planned: Run, show: bool, color: bool) -> Waited {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => return Waited::Lost(Failure::Here(format!("cannot wait: {e}"))),
    };
    let uid = planned.metadata.uid.clone();
    let (to_view, view_events) = tokio::sync::mpsc::unbounded_channel();
    let view = show.then(|| {
        let planned = planned.clone();
        std::thread::spawn(move || run::watch(planned, view_events, color))
    });
    let (tx, mut events) = tokio::sync::mpsc::unbounded_channel();
    {
        let client = client.clone();
        let uid = uid.clone();
        std::thread::spawn(move || stream_events(&client, &uid, &tx));
    }
    let mut run = planned;
    let ended = runtime.block_on(async {
        use tokio::signal::unix::{signal, SignalKind};
        let mut interrupt = signal(SignalKind::interrupt())
            .map_err(|e| Failure::Here(format!("cannot handle Ctrl-C: {e}")))?;
        loop {
            tokio::select! {
                got = events.recv() => match got {
                    Some(Ok(e)) => {
                        run.apply(&e);
                        let _ = to_view.send(e);
                        // `runFinished`, or any event that leaves the run with its outcome.
                        if run.status.is_terminal() {
                            return Ok(true);
                        }
                    }
                    Some(Err(f)) => return Err(f),
                    None => return Err(Failure::Unreachable("the event stream ended".into())),
                },
                _ = interrupt.recv() => return Ok(false),
            }
        }
    });
    // The view ends with its events, its live lines cleared, before anything else is printed.
    drop(to_view);
    if let Some(view) = view {
        let _ = view.join();
    }
    match ended {
        Ok(true) => Waited::Finished(run),
        Ok(false) => Waited::Stopped,
        Err(f) => Waited::Lost(f),
    }
}

/// Whether an error answer may go away by itself (the server restarting or overloaded).
fn passing(status: StatusCode) -> bool {
    status.is_server_error()
        || status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::REQUEST_TIMEOUT
}

/// Reads a run's events into `tx` up to `runFinished`, or until nobody reads them. A stream that breaks (or stays silent
/// past `EVENTS_IDLE`) is opened again after the last event read (`Last-Event-ID`), after a
/// pause that doubles while reconnecting fails; an answer that will not change (404, 401, 403)
/// or a server unreachable for `GIVE_UP` ends it with the failure.
fn stream_events(
    client: &Client,
    uid: &str,
    tx: &tokio::sync::mpsc::UnboundedSender<Result<RunEvent, Failure>>,
) {
    let mut last = 0u64;
    let mut failing_since: Option<Instant> = None;
    let mut pause = RECONNECT_FIRST;
    loop {
        match client.events(uid, last) {
            Ok(response) => {
                failing_since = None;
                let mut stream = BufReader::new(response.into_body().into_reader());
                // Until the stream ends or breaks.
                while let Some(Ok(sse)) = next_event(&mut stream) {
                    let event = match serde_json::from_str::<RunEvent>(&sse.data) {
                        Ok(e) => e,
                        // An event this chainrc does not know (a newer server): passed over.
                        Err(_) => {
                            if let Some(id) = sse.id.and_then(|i| i.parse().ok()) {
                                last = last.max(id);
                            }
                            continue;
                        }
                    };
                    if event.seq <= last {
                        continue;
                    }
                    last = event.seq;
                    pause = RECONNECT_FIRST;
                    let done = matches!(event.kind, EventKind::RunFinished { .. });
                    if tx.send(Ok(event)).is_err() || done {
                        return;
                    }
                }
            }
            Err(f @ Failure::Refused { status, .. }) if !passing(status) => {
                let _ = tx.send(Err(f));
                return;
            }
            Err(f) => {
                let since = *failing_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= GIVE_UP {
                    let _ = tx.send(Err(f));
                    return;
                }
            }
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(RECONNECT_MAX);
    }
}

/// One server-sent event: its `id:` and its `data:` lines, joined.
struct Sse {
    id: Option<String>,
    data: String,
}

/// The next event of a `text/event-stream`; `None` at its end. Comments (the keep-alives),
/// `event:` and `retry:` lines are passed over; an event without data is no event.
fn next_event(r: &mut impl BufRead) -> Option<std::io::Result<Sse>> {
    let mut id = None;
    let mut data: Option<String> = None;
    let mut line = String::new();
    loop {
        line.clear();
        match r.read_line(&mut line) {
            // What the stream cut off mid-event is dropped.
            Ok(0) => return None,
            Ok(_) => {}
            Err(e) => return Some(Err(e)),
        }
        let l = line.strip_suffix('\n').unwrap_or(&line);
        let l = l.strip_suffix('\r').unwrap_or(l);
        if l.is_empty() {
            match data.take() {
                Some(data) => return Some(Ok(Sse { id, data })),
                None => {
                    id = None;
                    continue;
                }
            }
        }
        let (field, value) = match l.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (l, ""),
        };
        match field {
            "id" => id = Some(value.to_string()),
            "data" => match &mut data {
                Some(d) => {
                    d.push('\n');
                    d.push_str(value);
                }
                None => data = Some(value.to_string()),
            },
            _ => {}
        }
    }
}

/// `chainrc status [RUN]`: 0 when found, 1 otherwise.
pub fn status(args: StatusArgs) -> ExitCode {
    let client = match Client::new(&args.server) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let shown = match &args.run {
        Some(uid) => client
            .get_json(&Client::run_path(uid))
            .and_then(|doc| match args.format {
                Format::Json => {
                    print_json(&doc);
                    Ok(())
                }
                Format::Text => {
                    let run = run_of(&doc)?;
                    print!("{}", run_details(&client, &run));
                    Ok(())
                }
            }),
        None => {
            let mut path = format!("/api/runs?limit={}", args.limit);
            for (key, value) in [("status", &args.status), ("pipeline", &args.pipeline)] {
                if let Some(v) = value {
                    path.push_str(&format!("&{key}={}", segment(v)));
                }
            }
            client.get_json(&path).and_then(|doc| match args.format {
                Format::Json => {
                    print_json(&doc);
                    Ok(())
                }
                Format::Text => {
                    let runs: Vec<Run> = doc
                        .get("items")
                        .cloned()
                        .map(serde_json::from_value)
                        .transpose()
                        .map_err(|e| Failure::Garbled(format!("not a RunList: {e}")))?
                        .unwrap_or_default();
                    print!("{}", runs_table(&runs));
                    if runs.is_empty() {
                        let filtered = args.status.is_some() || args.pipeline.is_some();
                        eprintln!("no runs{}", if filtered { " match" } else { " yet" });
                    } else if doc.get("next").is_some_and(|n| !n.is_null()) {
                        eprintln!("(the newest {}; --limit N shows more)", args.limit);
                    }
                    Ok(())
                }
            })
        }
    };
    match shown {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            client.report(&f);
            ExitCode::FAILURE
        }
    }
}

/// Columns padded to their widest cell; the last one is not padded.
fn table(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|cell| cell.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            if c + 1 == row.len() {
                line.push_str(cell);
            } else {
                line.push_str(cell);
                let pad = widths[c] - cell.chars().count() + 2;
                line.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// How long ago `t` was, roughly: `12s ago`, `3m ago`, `5h ago`, `2d ago`.
fn ago(t: SystemTime) -> String {
    let secs = SystemTime::now()
        .duration_since(t)
        .unwrap_or_default()
        .as_secs();
    match secs {
        0..60 => format!("{secs}s ago"),
        60..3600 => format!("{}m ago", secs / 60),
        3600..86400 => format!("{}h ago", secs / 3600),
        _ => format!("{}d ago", secs / 86400),
    }
}

/// From `start` to `end`, or to now while it goes on.
fn took(start: Option<SystemTime>, end: Option<SystemTime>) -> String {
    match start {
        Some(s) => end
            .unwrap_or_else(SystemTime::now)
            .duration_since(s)
            .map(run::seconds)
            .unwrap_or_else(|_| "-".into()),
        None => "-".into(),
    }
}

fn runs_table(runs: &[Run]) -> String {
    if runs.is_empty() {
        return String::new();
    }
    let mut rows = vec![vec![
        "UID".to_string(),
        "PIPELINE".into(),
        "STATUS".into(),
        "STARTED".into(),
        "DURATION".into(),
    ]];
    for r in runs {
        rows.push(vec![
            r.metadata.uid.clone(),
            r.metadata.name.clone().unwrap_or_else(|| "-".into()),
            r.status.word().to_string(),
            r.started_at.map_or_else(|| "-".into(), ago),
            took(r.started_at, r.finished_at),
        ]);
    }
    table(&rows)
}

/// A run's header, then its jobs (and each attempt of a job that had more than one).
fn run_details(client: &Client, run: &Run) -> String {
    let uid = &run.metadata.uid;
    let mut out = format!(
        "run {uid}  {}  {}\n",
        run.metadata.name.as_deref().unwrap_or("-"),
        run.status.word()
    );
    let mut facts = Vec::new();
    match run.started_at {
        Some(s) => {
            facts.push(format!("started {}", ago(s)));
            let verb = if run.finished_at.is_some() {
                "took"
            } else {
                "running for"
            };
            facts.push(format!("{verb} {}", took(Some(s), run.finished_at)));
        }
        None => facts.push("not started yet".into()),
    }
    if let Some(who) = &run.metadata.submitter {
        facts.push(format!("submitted by {who}"));
    }
    out.push_str(&format!(
        "  {}\n  {}\n\n",
        facts.join(", "),
        client.url(&Client::run_path(uid))
    ));
    let mut rows = vec![vec![
        "JOB".to_string(),
        "STATUS".into(),
        "ATTEMPTS".into(),
        "EXIT".into(),
        "TOOK".into(),
        "REASON".into(),
    ]];
    let exit = |code: Option<i32>| code.map_or_else(|| "-".into(), |c| c.to_string());
    for j in &run.jobs {
        let last = j.attempts.last();
        rows.push(vec![
            j.name.clone(),
            j.status.word().to_string(),
            j.attempts.len().to_string(),
            exit(j.exit_code),
            last.map_or_else(|| "-".into(), |a| took(Some(a.started_at), a.finished_at)),
            j.reason.clone().unwrap_or_default(),
        ]);
        if j.attempts.len() > 1 {
            for a in &j.attempts {
                rows.push(vec![
                    format!("  #{}", a.attempt),
                    a.status.word().to_string(),
                    String::new(),
                    exit(a.exit_code),
                    took(Some(a.started_at), a.finished_at),
                    a.reason.clone().unwrap_or_default(),
                ]);
            }
        }
    }
    out.push_str(&table(&rows));
    out
}

/// `chainrc logs RUN JOB`: the output, written as it arrives.
pub fn logs(args: LogsArgs) -> ExitCode {
    let client = match Client::new(&args.server) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let answer = match client.log(&args.run, &args.job, args.attempt, args.follow) {
        // Followed before the job started: wait for it, then follow.
        Err(
            f @ Failure::Refused {
                status: StatusCode::NOT_FOUND,
                ..
            },
        ) if args.follow => match client.until_started(&args.run, &args.job, args.attempt) {
            Ok(true) => client.log(&args.run, &args.job, args.attempt, true),
            Ok(false) => Err(f),
            Err(g) => Err(g),
        },
        other => other,
    };
    let response = match answer {
        Ok(r) => r,
        Err(f) => {
            client.report(&f);
            return ExitCode::FAILURE;
        }
    };
    let mut body = response.into_body().into_reader();
    let mut out = std::io::stdout().lock();
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let n = match body.read(&mut buf) {
            Ok(0) => return ExitCode::SUCCESS,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                let _ = out.flush();
                eprintln!(
                    "error: the output from the chainr server at {} broke off: {e}",
                    client.base
                );
                return ExitCode::FAILURE;
            }
        };
        if let Err(e) = out.write_all(&buf[..n]).and_then(|()| out.flush()) {
            // A reader that went away (`| head`) has what it wanted.
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                return ExitCode::SUCCESS;
            }
            eprintln!("error: cannot write the output: {e}");
            return ExitCode::FAILURE;
        }
    }
}

impl Client {
    /// Waits until `job` of run `uid` has `attempt` (or any attempt); `false` when it never
    /// will (no such job, or the job or the run ended without it).
    fn until_started(&self, uid: &str, job: &str, attempt: Option<u32>) -> Result<bool, Failure> {
        let mut told = false;
        loop {
            let run = run_of(&self.get_json(&Client::run_path(uid))?)?;
            let Some(j) = run.jobs.iter().find(|j| j.name == job) else {
                return Ok(false);
            };
            let started = match attempt {
                Some(n) => j.attempts.iter().any(|a| a.attempt == n),
                None => !j.attempts.is_empty(),
            };
            if started {
                return Ok(true);
            }
            if j.status.is_terminal() || run.status.is_terminal() {
                return Ok(false);
            }
            if !told {
                eprintln!(
                    "waiting for job `{job}` to start ({})",
                    j.status.word().to_lowercase()
                );
                told = true;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

/// `chainrc cancel RUN`.
pub fn cancel(args: RunArgs) -> ExitCode {
    act(args, "cancel")
}

/// `chainrc retry RUN`.
pub fn retry(args: RunArgs) -> ExitCode {
    act(args, "retry")
}

/// Asks the server to cancel or retry a run and says what came of it.
fn act(args: RunArgs, action: &str) -> ExitCode {
    let client = match Client::new(&args.server) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let uid = &args.run;
    let path = format!("{}/{action}", Client::run_path(uid));
    let doc = match client.post(&path).and_then(Client::json) {
        Ok(doc) => doc,
        Err(f) => {
            client.report(&f);
            if let Failure::Refused {
                status: StatusCode::CONFLICT,
                ..
            } = f
            {
                let flag = &client.server_flag;
                if action == "cancel" {
                    eprintln!(
                        "  nothing is left to cancel; chainrc status {uid}{flag} shows how it ended"
                    );
                } else {
                    eprintln!(
                        "  a run is retried once it has finished: wait for it, or cancel it \
                         first (chainrc cancel {uid}{flag})"
                    );
                }
            }
            return ExitCode::FAILURE;
        }
    };
    if args.format == Format::Json {
        print_json(&doc);
        return ExitCode::SUCCESS;
    }
    let run = match run_of(&doc) {
        Ok(r) => r,
        Err(f) => {
            client.report(&f);
            return ExitCode::FAILURE;
        }
    };
    let name = run.metadata.name.as_deref().unwrap_or("the pipeline");
    let new = &run.metadata.uid;
    let flag = &client.server_flag;
    if action == "cancel" {
        println!(
            "cancel requested for run {uid} ({name}, {}): its running jobs are stopped, its \
             finally jobs still run (cancel again to stop them too)",
            run.status.word()
        );
    } else if new != uid {
        println!(
            "run {uid} is retried as run {new} ({name}, {} jobs)\n{}",
            run.jobs.len(),
            client.url(&Client::run_path(new))
        );
    } else {
        println!("run {uid} ({name}) is retried: {}", run.status.word());
    }
    println!("  chainrc status {new}{flag}   how it goes");
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_sent_events_are_read_as_the_server_writes_them() {
        let text = ": keep-alive\n\nid: 1\nevent: runStarted\ndata: {\"seq\":1}\n\n\
                    id: 2\r\ndata: a\r\ndata:b\r\n\r\nretry: 10\n\ndata: cut off";
        let mut r = text.as_bytes();
        let first = next_event(&mut r).unwrap().unwrap();
        assert_eq!(
            (first.id.as_deref(), first.data.as_str()),
            (Some("1"), "{\"seq\":1}")
        );
        let second = next_event(&mut r).unwrap().unwrap();
        assert_eq!(
            (second.id.as_deref(), second.data.as_str()),
            (Some("2"), "a\nb")
        );
        assert!(next_event(&mut r).is_none());
    }

    #[test]
    fn tables_pad_every_column_but_the_last() {
        let rows = vec![
            vec!["A".to_string(), "BB".into(), "C".into()],
            vec!["aaa".to_string(), "b".into(), String::new()],
        ];
        assert_eq!(table(&rows), "A    BB  C\naaa  b\n");
    }

    #[test]
    fn path_segments_are_encoded() {
        assert_eq!(segment("shard-0"), "shard-0");
        assert_eq!(segment("a b/c?"), "a%20b%2Fc%3F");
    }
}
