//! `chainrc`: the command line of chainr. A thin shell over the crates: it reads files, calls
//! the compiler, prints results, and chooses exit codes.

mod client;
mod logs;
mod parallel;
mod run;
mod serve;

use chainr_compiler::{self as compiler, Compiled, Params};
use clap::{CommandFactory, Parser, Subcommand, ValueEnum};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

// Compiling allocates many small objects; mimalloc makes that markedly cheaper than glibc's malloc.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "chainrc",
    version,
    about = "Compile, check and run chainr pipelines",
    long_about = "chainr chains container jobs. `chainrc` compiles `.chainr` pipelines to the JSON Pipeline IR, \
                  checks them and IR files, and runs them.",
    after_help = "Exit codes of compile and check: 0 success, 1 the pipeline has errors (or a file could not be read), 2 bad usage.\n\
                  Exit codes of run: 0 the run succeeded, 1 it failed, 2 nothing ran (invalid pipeline or bad usage), 130 it was cancelled.\n\
                  Exit codes of submit: 0 submitted, 2 not submitted (invalid pipeline, server unreachable or refusing); with --wait those of run (Ctrl-C stops waiting: 130).\n\
                  Exit codes of status, logs, cancel and retry: 0 done, 1 the server said no (the run was not found, say) or could not be reached."
)]
struct Cli {
    /// When to colour diagnostics: auto (a terminal, and NO_COLOR unset), always or never.
    #[arg(long, value_enum, default_value_t = Color::Auto, global = true)]
    color: Color,
    #[command(subcommand)]
    command: Command,
}

/// Running on Kubernetes instead of this machine.
#[derive(clap::Args, Clone, Debug)]
struct KubeArgs {
    /// Run every job as a Kubernetes Job, with the credentials of kubeconfig (or the in-cluster service account).
    #[arg(long)]
    kube: bool,
    /// The namespace of the Jobs (default: the kubeconfig context's, or `default`).
    #[arg(long, requires = "kube", value_name = "NS")]
    namespace: Option<String>,
    /// The kubeconfig context to use (default: the current one).
    #[arg(long, requires = "kube", value_name = "NAME")]
    context: Option<String>,
    /// Print the Job manifests (YAML) of every job's first attempt instead of running them.
    #[arg(long, requires = "kube")]
    dry_run: bool,
    /// Use this run id instead of a new one: after chainrc was killed, running the pipeline again
    /// with its run id adopts the Jobs already created instead of starting them twice.
    #[arg(long, requires = "kube", value_name = "ID", value_parser = run_id)]
    run_id: Option<String>,
    /// Seconds a pod may wait for an image or a node before its attempt errors.
    #[arg(long, requires = "kube", value_name = "SECONDS", default_value_t = 120)]
    waiting_grace: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, ValueEnum)]
enum Format {
    Text,
    Json,
}

#[derive(Clone, Copy, ValueEnum)]
enum TokenScope {
    Read,
    Write,
}

#[derive(Clone, Copy, ValueEnum)]
enum Color {
    Auto,
    Always,
    Never,
}

#[derive(Subcommand)]
enum Command {
    /// Compile a pipeline to the JSON Pipeline IR (`.chainr` source, or IR `.json` to validate and normalize).
    Compile {
        /// The pipeline file.
        file: PathBuf,
        /// Write the IR here instead of standard output.
        #[arg(short, long, value_name = "OUT")]
        output: Option<PathBuf>,
        /// Set a param: `-p date=2026-01-01`. Repeatable.
        #[arg(short = 'p', long = "param", value_name = "NAME=VALUE", value_parser = param_pair)]
        params: Vec<(String, String)>,
    },
    /// Check pipelines (`.chainr` and IR `.json` files) and report every problem; writes nothing.
    Check {
        /// The files to check.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Set a param: `-p date=2026-01-01`. Repeatable.
        #[arg(short = 'p', long = "param", value_name = "NAME=VALUE", value_parser = param_pair)]
        params: Vec<(String, String)>,
        /// Check the notification media pipelines name against those of CONFIG (the server's `--config` file).
        #[arg(long, value_name = "CONFIG")]
        notify: Option<PathBuf>,
    },
    /// Run a pipeline on this machine: each job is `sh -c RUN` in a local process (images are not used).
    Run {
        /// The pipeline: `.chainr` source or IR `.json`.
        file: PathBuf,
        /// Set a param: `-p date=2026-01-01`. Repeatable.
        #[arg(short = 'p', long = "param", value_name = "NAME=VALUE", value_parser = param_pair)]
        params: Vec<(String, String)>,
        /// At most N jobs at once (the pipeline's own `concurrency` applies too).
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
        concurrency: Option<u32>,
        /// `text`: a live view on a terminal, a line per event otherwise. `json`: the Run document on stdout at the end.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
        /// Keep each attempt's output in DIR as JOB.ATTEMPT.log (default: a new directory in the system's temp dir).
        #[arg(long, value_name = "DIR")]
        logs: Option<PathBuf>,
        /// Deliver the run's notifications with the media of CONFIG (the TOML file `chainrc serve --config` takes).
        #[arg(long, value_name = "CONFIG")]
        notify: Option<PathBuf>,
        #[command(flatten)]
        kube: KubeArgs,
    },
    /// Format `.chainr` files in place, in the one canonical layout (comments kept).
    Fmt {
        /// The files to format.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Change nothing; list the files that are not formatted and exit 1 if there are any.
        #[arg(long)]
        check: bool,
    },
    /// Serve the HTTP API and run submitted pipelines: state in SQLite (default) or Redis.
    Serve(serve::ServeArgs),
    /// Submit a pipeline to a chainr server; `--wait` follows the run to its end, as `chainrc run` shows a run.
    Submit(client::SubmitArgs),
    /// The recent runs on a chainr server, or one run's jobs, attempts, exit codes and reasons.
    Status(client::StatusArgs),
    /// Print a job's output from a chainr server; `-f` follows it while the job runs.
    Logs(client::LogsArgs),
    /// Cancel a run on a chainr server (running jobs are stopped, finally jobs still run).
    Cancel(client::RunArgs),
    /// Run a finished run's pipeline again on a chainr server.
    Retry(client::RunArgs),
    /// Make a bearer token for `chainrc serve`: prints the token and its line for the tokens file.
    Token {
        /// The token's name: who uses it (shown as the submitter of its runs).
        name: String,
        /// What it may do: `read`, or `write` (also submit, cancel and retry runs).
        #[arg(long, value_enum, default_value_t = TokenScope::Write)]
        scope: TokenScope,
    },
    /// Start the language server on standard input and output (for editors).
    Lsp,
    /// Print the JSON Schema of the Pipeline IR.
    Schema,
    /// Print a shell completion script: `chainrc completions bash > /etc/bash_completion.d/chainrc`.
    Completions { shell: clap_complete::Shell },
}

/// A run id is a Kubernetes label value: letters, digits, `-`, `_`, `.`, at most 63.
fn run_id(s: &str) -> Result<String, String> {
    let valid = !s.is_empty()
        && s.len() <= 63
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.ends_with(|c: char| c.is_ascii_alphanumeric());
    if valid {
        Ok(s.to_string())
    } else {
        Err("a run id is 1 to 63 letters, digits, `-`, `_` or `.`, starting and ending with a letter or digit".into())
    }
}

fn param_pair(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("expected NAME=VALUE, got `{s}`")),
    }
}

/// How a run is shown on the terminal.
pub struct View {
    format: Format,
    color: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let color = match cli.color {
        Color::Always => true,
        Color::Never => false,
        Color::Auto => {
            std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
                && std::io::stderr().is_terminal()
        }
    };
    match cli.command {
        Command::Compile {
            file,
            output,
            params,
        } => compile(&file, output.as_deref(), Params(params), color),
        Command::Check {
            files,
            params,
            notify,
        } => check(&files, &Params(params), notify.as_deref(), color),
        Command::Run {
            file,
            params,
            concurrency,
            format,
            logs,
            notify,
            kube,
        } => run_local(
            &file,
            Params(params),
            concurrency,
            View { format, color },
            logs,
            notify.as_deref(),
            &kube,
        ),
        Command::Fmt { files, check } => fmt(&files, check, color),
        Command::Serve(args) => serve::serve(args),
        Command::Submit(args) => client::submit(args, color),
        Command::Status(args) => client::status(args),
        Command::Logs(args) => client::logs(args),
        Command::Cancel(args) => client::cancel(args),
        Command::Retry(args) => client::retry(args),
        Command::Token { name, scope } => serve::token(
            &name,
            match scope {
                TokenScope::Read => chainr_server::Scope::Read,
                TokenScope::Write => chainr_server::Scope::Write,
            },
        ),
        Command::Lsp => match chainr_lsp::serve_stdio() {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: the language server stopped: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Schema => {
            print!("{}", compiler::ir::json_schema());
            ExitCode::SUCCESS
        }
        Command::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "chainrc",
                &mut std::io::stdout(),
            );
            ExitCode::SUCCESS
        }
    }
}

fn read(path: &Path) -> Result<String, ExitCode> {
    std::fs::read_to_string(path).map_err(|e| {
        eprintln!("error: cannot read {}: {e}", path.display());
        ExitCode::FAILURE
    })
}

fn report(path: &Path, src: &str, out: &Compiled, color: bool) {
    if out.diagnostics.is_empty() {
        return;
    }
    let text = compiler::render(&out.diagnostics, &path.display().to_string(), src, color);
    let _ = std::io::stderr().write_all(text.as_bytes());
}

fn compile(path: &Path, output: Option<&Path>, params: Params, color: bool) -> ExitCode {
    let src = match read(path) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let name = path.to_string_lossy();
    if let Err(code) = params_apply(path, &params) {
        return code;
    }
    let out = compile_file(&name, &src, &params);
    report(path, &src, &out, color);
    let Some(pipeline) = out.pipeline else {
        summary(&out, color);
        return ExitCode::FAILURE;
    };
    // Written straight to the destination: a large IR is never held twice in memory.
    let written = match output {
        Some(o) => std::fs::File::create(o)
            .and_then(|f| write_ir(std::io::BufWriter::new(f), &pipeline))
            .map_err(|e| format!("cannot write {}: {e}", o.display())),
        None => write_ir(std::io::BufWriter::new(std::io::stdout().lock()), &pipeline)
            .map_err(|e| format!("cannot write the IR: {e}")),
    };
    match written {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn write_ir(mut w: impl Write, pipeline: &compiler::ir::Pipeline) -> std::io::Result<()> {
    serde_json::to_writer_pretty(&mut w, pipeline)?;
    w.write_all(b"\n")?;
    w.flush()
}

/// `--kube --dry-run`: the Job manifests, as YAML documents, for review or `kubectl apply`.
fn dry_run(pipeline: &compiler::ir::Pipeline, run_id: &str, namespace: &str) -> ExitCode {
    let mut out = std::io::stdout().lock();
    for (i, job) in chainr_kube::manifests(pipeline, run_id, namespace, 3600)
        .iter()
        .enumerate()
    {
        let mut value = serde_json::to_value(job).unwrap_or_default();
        if let Some(o) = value.as_object_mut() {
            // apiVersion and kind first, as kubectl writes them.
            let mut ordered = serde_json::Map::new();
            ordered.insert("apiVersion".into(), "batch/v1".into());
            ordered.insert("kind".into(), "Job".into());
            for (k, v) in o.iter() {
                if k != "apiVersion" && k != "kind" {
                    ordered.insert(k.clone(), v.clone());
                }
            }
            value = serde_json::Value::Object(ordered);
        }
        let mut yaml = String::new();
        run::yaml(&value, 0, &mut yaml);
        if i > 0 {
            let _ = out.write_all(b"---\n");
        }
        let _ = out.write_all(yaml.as_bytes());
    }
    ExitCode::SUCCESS
}

/// Exit code of a run that was cancelled (as for a shell command stopped by Ctrl-C).
const CANCELLED: u8 = 130;
/// Exit code when the pipeline is invalid and nothing ran.
const INVALID: u8 = 2;

fn run_local(
    path: &Path,
    params: Params,
    concurrency: Option<u32>,
    view: View,
    logs: Option<PathBuf>,
    notify: Option<&Path>,
    kube: &KubeArgs,
) -> ExitCode {
    let View { format, color } = view;
    let notify = match notify.map(chainr_notify::Config::load).transpose() {
        Ok(c) => c.map(|mut c| {
            // Standard output is the Run document's.
            if format == Format::Json {
                c.stdout_to_stderr();
            }
            std::sync::Arc::new(c)
        }),
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(INVALID);
        }
    };
    let Ok(src) = read(path) else {
        return ExitCode::from(INVALID);
    };
    let name = path.to_string_lossy();
    if let Err(code) = params_apply(path, &params) {
        return code;
    }
    let media = notify.as_ref().map(|c| c.medium_names());
    let mut out = compile_file(&name, &src, &params);
    if let Some(known) = &media {
        out.check_media(known);
    }
    report(path, &src, &out, color);
    let Some(pipeline) = out.pipeline else {
        summary(&out, color);
        return ExitCode::from(INVALID);
    };
    let run_id = kube
        .run_id
        .clone()
        .unwrap_or_else(chainr_runtime::new_run_id);
    if kube.dry_run {
        return dry_run(
            &pipeline,
            &run_id,
            kube.namespace.as_deref().unwrap_or("default"),
        );
    }
    let logs_dir = logs.unwrap_or_else(|| std::env::temp_dir().join("chainr").join(&run_id));
    let concurrency = concurrency.map(|c| c as usize);
    let jobs = pipeline.jobs.len();
    let label = pipeline
        .name
        .as_deref()
        .unwrap_or("the pipeline")
        .to_string();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the run: {e}");
            return ExitCode::from(INVALID);
        }
    };
    let view = View { format, color };
    let result = runtime.block_on(async {
        if kube.kube {
            let connection =
                chainr_kube::connect(kube.context.as_deref(), kube.namespace.as_deref())
                    .await
                    .map_err(|e| format!("cannot reach Kubernetes: {e}"))?;
            if format == Format::Text {
                eprintln!(
                    "running {label} ({jobs} jobs) on Kubernetes, namespace {}, run {run_id}",
                    connection.namespace
                );
            }
            let options = chainr_kube::KubeOptions {
                namespace: connection.namespace,
                waiting_grace: std::time::Duration::from_secs(kube.waiting_grace),
                ttl_after_finished: 3600,
            };
            let mut executor = chainr_kube::KubeExecutor::new(connection.client, &run_id, options);
            run::execute(&pipeline, &run_id, concurrency, &mut executor, &logs_dir, view, notify).await
        } else {
            let mut executor = chainr_local::LocalExecutor::new(Default::default())
                .map_err(|e| format!("cannot start the run: {e}"))?;
            if format == Format::Text {
                eprintln!("running {label} ({jobs} jobs) on this machine, run {run_id}; images are not used locally");
            }
            let concurrency = Some(concurrency.map_or(chainr_local::max_concurrency(), |c| {
                c.min(chainr_local::max_concurrency())
            }));
            run::execute(&pipeline, &run_id, concurrency, &mut executor, &logs_dir, view, notify).await
        }
    });
    let record = match result {
        Ok(r) => r,
        // The run could not start (the log directory, say): nothing ran.
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(INVALID);
        }
    };
    match format {
        Format::Json => {
            let mut stdout = std::io::stdout().lock();
            let _ = serde_json::to_writer_pretty(&mut stdout, &record);
            let _ = stdout.write_all(b"\n");
        }
        Format::Text => run::summary(&record, &logs_dir, color),
    }
    match record.status {
        chainr_runtime::Status::Successful => ExitCode::SUCCESS,
        chainr_runtime::Status::Cancelled => ExitCode::from(CANCELLED),
        _ => ExitCode::FAILURE,
    }
}

fn fmt(files: &[PathBuf], check_only: bool, color: bool) -> ExitCode {
    let (mut changed, mut failed) = (0, 0);
    for path in files {
        let Ok(src) = read(path) else {
            failed += 1;
            continue;
        };
        match compiler::format::format(&src) {
            Ok(formatted) if formatted == src => {}
            Ok(formatted) => {
                changed += 1;
                if check_only {
                    eprintln!("would reformat {}", path.display());
                } else if let Err(e) = std::fs::write(path, formatted) {
                    eprintln!("error: cannot write {}: {e}", path.display());
                    failed += 1;
                }
            }
            Err(diagnostics) => {
                let text = compiler::render(&diagnostics, &path.display().to_string(), &src, color);
                let _ = std::io::stderr().write_all(text.as_bytes());
                eprintln!(
                    "error: {} was not formatted: it has syntax errors",
                    path.display()
                );
                failed += 1;
            }
        }
    }
    if check_only && changed > 0 {
        eprintln!(
            "{} not formatted; run `chainrc fmt` on {}",
            plural(changed, "file"),
            if changed == 1 { "it" } else { "them" }
        );
    }
    if failed > 0 || (check_only && changed > 0) {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn summary(out: &Compiled, color: bool) {
    let errors = out.diagnostics.iter().filter(|d| d.is_error()).count();
    let warnings = out.diagnostics.len() - errors;
    let mut line = plural(errors, "error");
    if warnings > 0 {
        line = format!("{line}, {}", plural(warnings, "warning"));
    }
    if color {
        eprintln!("\x1b[1;31merror\x1b[0m\x1b[1m: the pipeline was not compiled ({line})\x1b[0m");
    } else {
        eprintln!("error: the pipeline was not compiled ({line})");
    }
}

fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

/// `-p` sets params of `.chainr` source; IR's values are already concrete: bad usage (exit 2).
fn params_apply(path: &Path, params: &Params) -> Result<(), ExitCode> {
    if compiler::is_ir_file(&path.to_string_lossy()) && !params.0.is_empty() {
        eprintln!(
            "error: -p sets params of `.chainr` source; {} is IR, whose values are already concrete",
            path.display()
        );
        return Err(ExitCode::from(INVALID));
    }
    Ok(())
}

fn check(files: &[PathBuf], params: &Params, notify: Option<&Path>, color: bool) -> ExitCode {
    let media = match notify.map(chainr_notify::Config::load).transpose() {
        Ok(c) => c.map(|c| c.medium_names()),
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let (mut errors, mut warnings, mut unreadable) = (0, 0, 0);
    for path in files {
        if let Err(code) = params_apply(path, params) {
            return code;
        }
        let Ok(src) = read(path) else {
            unreadable += 1;
            continue;
        };
        let name = path.to_string_lossy();
        let mut out = compile_file(&name, &src, params);
        if let Some(known) = &media {
            out.check_media(known);
        }
        report(path, &src, &out, color);
        let e = out.diagnostics.iter().filter(|d| d.is_error()).count();
        errors += e;
        warnings += out.diagnostics.len() - e;
    }
    let files_text = plural(files.len(), "file");
    if errors == 0 && warnings == 0 && unreadable == 0 {
        eprintln!("checked {files_text}: no problems");
    } else {
        let mut parts = vec![plural(errors, "error"), plural(warnings, "warning")];
        if unreadable > 0 {
            parts.push(format!("{unreadable} unreadable"));
        }
        eprintln!("checked {files_text}: {}", parts.join(", "));
    }
    if errors > 0 || unreadable > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// Compiles a file by kind, as `compiler::compile_file` does, with large source files parsed on
/// two threads.
fn compile_file(name: &str, src: &str, params: &Params) -> Compiled {
    if compiler::is_ir_file(name) {
        compiler::compile_json(src)
    } else {
        compiler::compile_parsed(parallel::parse(src), params)
    }
}
