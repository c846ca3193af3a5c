//! `chainrc serve`: the store (SQLite under `--data-dir`, or Redis), the API (`chainr-server`),
//! workers that drive runs with the local or the Kubernetes executor, and the drain on SIGTERM:
//! stop accepting, finish what is in flight, hand claimed runs back, exit.

use chainr_runtime::log::LogSink;
use chainr_runtime::outbox::Outbox;
use chainr_runtime::store::Store;
use chainr_runtime::worker::{self, Executors, WorkerOptions};
use chainr_server::{Api, Auth, Tokens};
use clap::ValueEnum;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// What one `chainrc serve` process does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Role {
    /// The HTTP API.
    Api,
    /// Claims runs and drives them.
    Worker,
    /// Delivers notifications to the media of `--config` (without it: run starts and ends on
    /// standard output, as the original chainr's notif printed them).
    Notifier,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ExecutorKind {
    /// `sh -c RUN` in a process group on this machine.
    Local,
    /// A Kubernetes Job per attempt.
    Kube,
}

#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    /// Where this process listens: the API (role `api`), and whatever the roles /healthz, /readyz and /metrics.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Keep state in an SQLite database in DIR (default: the user's data directory, e.g. ~/.local/share/chainr).
    #[arg(long, value_name = "DIR", conflicts_with = "redis")]
    data_dir: Option<PathBuf>,
    /// Keep state in Redis instead, shared by any number of `chainrc serve` processes.
    #[arg(long, value_name = "URL", env = "CHAINR_REDIS")]
    redis: Option<String>,
    /// What this process does: a comma list of `api`, `worker` and `notifier`.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "api,worker,notifier"
    )]
    roles: Vec<Role>,
    /// How jobs run.
    #[arg(long, value_enum, default_value_t = ExecutorKind::Local)]
    executor: ExecutorKind,
    /// The notifications' configuration (TOML): media, routes, delivery schedule (docs/notifications.md).
    #[arg(long, value_name = "FILE", env = "CHAINR_CONFIG")]
    config: Option<PathBuf>,
    /// Bearer tokens: one per line, `NAME SCOPE SECRET` (scope `read` or `write`; SECRET the token or `sha256:HEX`). Or set CHAINR_TOKENS to the same text.
    #[arg(long, value_name = "FILE", conflicts_with = "no_auth")]
    tokens: Option<PathBuf>,
    /// Serve without authentication: anyone who reaches the port may submit and cancel runs.
    #[arg(long)]
    no_auth: bool,
    /// The largest request body accepted, in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = chainr_server::DEFAULT_MAX_BODY)]
    max_body: usize,
    /// Keep at most N finished runs (with their events and logs); older ones are deleted.
    #[arg(long, value_name = "N")]
    keep_runs: Option<usize>,
    /// Delete finished runs (with their events and logs) this long after they finished; `0` keeps them forever.
    #[arg(long, value_name = "DURATION", default_value = "90d", value_parser = duration)]
    keep_for: Duration,
    /// How long a worker's claim on a run holds without renewal; another worker takes the run over after it.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = duration)]
    lease: Duration,
    /// At most this many runs at once in this worker.
    #[arg(long, value_name = "N", default_value_t = 16)]
    runs_at_once: usize,
    /// This worker's name in leases (default: host name and process id).
    #[arg(long, value_name = "NAME")]
    worker_id: Option<String>,
    /// The namespace of the Jobs (default: the kubeconfig context's, or the pod's).
    #[arg(long, value_name = "NS")]
    namespace: Option<String>,
    /// The kubeconfig context to use (default: the current one).
    #[arg(long, value_name = "NAME")]
    context: Option<String>,
    /// Seconds a pod may wait for an image or a node before its attempt errors.
    #[arg(long, value_name = "SECONDS", default_value_t = 120)]
    waiting_grace: u64,
}

fn duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| e.to_string())
}

/// How often finished runs past their retention are deleted.
const PRUNE_EVERY: Duration = Duration::from_secs(60);

/// How long the drain may take before the process exits anyway.
const DRAIN: Duration = Duration::from_secs(10);

pub fn serve(args: ServeArgs) -> ExitCode {
    init_tracing();
    let auth = match auth(&args) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args, auth)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

/// Tokens from `--tokens` or `CHAINR_TOKENS`; refusing to start without any unless `--no-auth`.
fn auth(args: &ServeArgs) -> Result<Auth, String> {
    if args.no_auth {
        return Ok(Auth::Disabled);
    }
    let (text, from) = match &args.tokens {
        Some(path) => (
            std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read the tokens file {}: {e}", path.display()))?,
            path.display().to_string(),
        ),
        None => match std::env::var("CHAINR_TOKENS") {
            Ok(t) => (t, "CHAINR_TOKENS".to_string()),
            Err(_) => {
                return Err(
                    "no tokens: give --tokens FILE (or set CHAINR_TOKENS) with lines \
                            `NAME SCOPE SECRET` (`chainrc token NAME` makes one), or --no-auth to \
                            serve without authentication on a machine only you can reach"
                        .to_string(),
                )
            }
        },
    };
    let tokens = Tokens::parse(&text).map_err(|e| format!("{from}: {e}"))?;
    Ok(Auth::Tokens(tokens))
}

/// The store, seen as runs, as notifications and as logs, and where it is.
struct Opened {
    store: Arc<dyn Store>,
    outbox: Arc<dyn Outbox>,
    logs: Arc<dyn LogSink>,
    place: String,
}

impl Opened {
    fn of<S: Store + Outbox + LogSink + 'static>(store: S, place: String) -> Opened {
        let store = Arc::new(store);
        Opened {
            store: store.clone(),
            outbox: store.clone(),
            logs: store,
            place,
        }
    }
}

/// A store and, from the same place, the outbox and the log sink.
async fn open_store(args: &ServeArgs) -> Result<Opened, String> {
    if let Some(url) = &args.redis {
        let store = chainr_store_redis::RedisStore::connect(url)
            .await
            .map_err(|e| format!("cannot use Redis at {url}: {e}"))?;
        return Ok(Opened::of(store, format!("Redis at {}", redact(url))));
    }
    let dir = match &args.data_dir {
        Some(d) => d.clone(),
        None => default_data_dir()?,
    };
    std::fs::create_dir_all(&dir)
        .map_err(|e| format!("cannot create the data directory {}: {e}", dir.display()))?;
    let path = dir.join("chainr.db");
    let store = chainr_store_sqlite::SqliteStore::open(&path)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    Ok(Opened::of(store, format!("SQLite at {}", path.display())))
}

/// The notifications' configuration: `--config`, or without it the original chainr's
/// behaviour (run starts and ends on standard output).
fn notify_config(args: &ServeArgs) -> Result<chainr_notify::Config, String> {
    match &args.config {
        Some(path) => chainr_notify::Config::load(path).map_err(|e| e.to_string()),
        None => Ok(chainr_notify::Config::stdout_only()),
    }
}

/// A Redis URL without its password, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://***@{}", &url[..scheme], &url[at + 1..])
        }
        _ => url.to_string(),
    }
}

fn default_data_dir() -> Result<PathBuf, String> {
    if let Some(d) = std::env::var_os("XDG_DATA_HOME").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(d).join("chainr"));
    }
    match std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        Some(home) => Ok(PathBuf::from(home).join(".local/share/chainr")),
        None => Err("no data directory: give --data-dir DIR (HOME is not set)".to_string()),
    }
}

async fn run(args: ServeArgs, auth: Auth) -> Result<(), String> {
    let config = Arc::new(notify_config(&args)?);
    let Opened {
        store,
        outbox,
        logs,
        place: where_,
    } = open_store(&args).await?;
    let (drain_tx, draining) = watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    let api = args.roles.contains(&Role::Api);
    let work = args.roles.contains(&Role::Worker);
    // Every process listens: the API with the `api` role, the probes and metrics always.
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    let listening = listener.local_addr().ok();
    let router = if api {
        chainr_server::router(Api {
            store: store.clone(),
            outbox: outbox.clone(),
            media: args.config.is_some().then(|| config.medium_names()),
            logs: logs.clone(),
            auth,
            max_body: args.max_body,
            poll: Duration::from_millis(200),
            draining: draining.clone(),
        })
    } else {
        chainr_server::probes(store.clone(), outbox.clone(), logs.clone())
    };
    let mut stop = draining.clone();
    tasks.spawn(async move {
        let stopped = async move {
            let _ = stop.wait_for(|d| *d).await;
        };
        if !chainr_server::serve(listener, router, stopped, DRAIN).await {
            tracing::warn!("some connections were still open when the drain ended");
        }
    });
    if work {
        let id = args.worker_id.clone().unwrap_or_else(worker_name);
        let mut options = WorkerOptions::new(&id);
        options.lease = args.lease;
        options.renew_every = args.lease / 3;
        options.runs_at_once = args.runs_at_once.max(1);
        options.observer = Some(Arc::new(chainr_server::count_events));
        options.on_held = Some(Arc::new(|run: &str, held: &worker::Held| match held {
            worker::Held::Finished => tracing::debug!(run, "run finished"),
            worker::Held::HandedBack => tracing::info!(run, "run handed back"),
            worker::Held::LeaseLost => {
                tracing::warn!(run, "lease lost: another worker has the run now")
            }
            worker::Held::Failed(why) => {
                tracing::warn!(run, why = %why, "stopped driving the run; another worker (or this one) takes it again")
            }
        }));
        let stop = draining.clone();
        let (store, logs) = (store.clone(), logs.clone());
        match args.executor {
            ExecutorKind::Local => {
                // Fails here, before serving, where local processes cannot run.
                chainr_local::LocalExecutor::new(Default::default()).map_err(|e| e.to_string())?;
                options.concurrency = Some(chainr_local::max_concurrency());
                tasks.spawn(async move {
                    worker::work(store, Arc::new(LocalExecutors), logs, options, stop).await;
                });
            }
            ExecutorKind::Kube => {
                let connection =
                    chainr_kube::connect(args.context.as_deref(), args.namespace.as_deref())
                        .await
                        .map_err(|e| format!("cannot reach Kubernetes: {e}"))?;
                let kube_options = chainr_kube::KubeOptions {
                    namespace: connection.namespace.clone(),
                    waiting_grace: Duration::from_secs(args.waiting_grace),
                    ttl_after_finished: 3600,
                };
                let executors = KubeExecutors {
                    connection,
                    options: kube_options,
                };
                tasks.spawn(async move {
                    worker::work(store, Arc::new(executors), logs, options, stop).await;
                });
            }
        }
    }
    if args.roles.contains(&Role::Notifier) {
        let notifier = Arc::new(chainr_notify::Notifier {
            store: store.clone(),
            outbox: outbox.clone(),
            logs: logs.clone(),
            config: config.clone(),
            owner: format!(
                "{}-{}",
                args.worker_id.clone().unwrap_or_else(worker_name),
                chainr_runtime::new_run_id()
            ),
            observer: Some(Arc::new(chainr_server::count_notification)),
            poll: Duration::from_millis(250),
        });
        tasks.spawn(notifier.run(draining.clone()));
    }
    // Retention: any process may prune; it is idempotent.
    if args.keep_runs.is_some() || !args.keep_for.is_zero() {
        let (store, keep_runs, keep_for) = (store.clone(), args.keep_runs, args.keep_for);
        let mut stop = draining.clone();
        tasks.spawn(async move {
            loop {
                let older_than = (!keep_for.is_zero())
                    .then(|| std::time::SystemTime::now().checked_sub(keep_for))
                    .flatten();
                match store.prune(keep_runs, older_than).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!("deleted {n} finished runs past their retention"),
                    Err(e) => tracing::warn!(error = %e, "pruning finished runs failed"),
                }
                tokio::select! {
                    _ = tokio::time::sleep(PRUNE_EVERY) => {}
                    _ = stop.wait_for(|d| *d) => return,
                }
            }
        });
    }
    let roles: Vec<&str> = args
        .roles
        .iter()
        .map(|r| match r {
            Role::Api => "api",
            Role::Worker => "worker",
            Role::Notifier => "notifier",
        })
        .collect();
    match listening {
        Some(addr) => tracing::info!(
            "chainr serving on http://{addr} (roles: {}; store: {where_})",
            roles.join(", ")
        ),
        None => tracing::info!(
            "chainr working (roles: {}; store: {where_})",
            roles.join(", ")
        ),
    }
    shutdown_signal().await;
    tracing::info!("draining: no new requests; runs in hand go back to the store");
    let _ = drain_tx.send(true);
    let drained = tokio::time::timeout(DRAIN + Duration::from_secs(2), async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!("the drain took too long; exiting anyway");
    }
    Ok(())
}

fn worker_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "worker".to_string());
    format!("{host}-{}", std::process::id())
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

struct LocalExecutors;

impl Executors for LocalExecutors {
    type Executor = chainr_local::LocalExecutor;
    fn for_run(&self, _run: &str) -> Result<Self::Executor, String> {
        chainr_local::LocalExecutor::new(Default::default()).map_err(|e| e.to_string())
    }
}

struct KubeExecutors {
    connection: chainr_kube::Connection,
    options: chainr_kube::KubeOptions,
}

impl Executors for KubeExecutors {
    type Executor = chainr_kube::KubeExecutor;
    fn for_run(&self, run: &str) -> Result<Self::Executor, String> {
        Ok(chainr_kube::KubeExecutor::new(
            self.connection.client.clone(),
            run,
            self.options.clone(),
        ))
    }
}

/// `chainrc token NAME`: a new random token, and its line for the tokens file (with its hash).
pub fn token(name: &str, scope: chainr_server::Scope) -> ExitCode {
    let mut bytes = [0u8; 32];
    if let Err(e) = getrandom::fill(&mut bytes) {
        eprintln!("error: no randomness for a token: {e}");
        return ExitCode::FAILURE;
    }
    let token = format!("chainr_{}", hex(&bytes));
    println!("token (give it to the client; it is not kept anywhere):\n  {token}");
    println!(
        "line for the server's tokens file:\n  {name} {} sha256:{}",
        scope.word(),
        hex(&chainr_server::hash_token(&token))
    );
    ExitCode::SUCCESS
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
