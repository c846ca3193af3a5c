//! Run benchmark, side by side in one run:
//! - `chainrc run --concurrency 2` on `layered 1000` of `true` against `make -j2` and
//!   `ninja -j2` on the same DAG (whole commands; make and ninja skipped when not installed);
//! - the scheduler alone on `layered 10000` and `chain 10000` with an instant in-process
//!   executor: time and peak memory.
//!
//! `cargo bench --bench run`; `CHAINR_BENCH_RUNS=N` sets the timed runs of each command (default 7);
//! `CHAINR_BENCH_BASELINE=PATH` also times another `chainrc` binary (an earlier build) side by side.

mod workload;

use chainr_runtime::scheduler::{Action, AttemptEnd, Options, Scheduler};
use std::alloc::{GlobalAlloc, Layout, System};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Counts live and peak heap bytes, to report the scheduler's peak memory.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwards to the system allocator with the caller's layout.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `alloc` above with this layout.
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn median(mut v: Vec<Duration>) -> (Duration, Duration) {
    v.sort();
    (v[v.len() / 2], v[0])
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Drives a whole run with an executor that ends every attempt at once (successfully).
fn schedule_all(p: &chainr_compiler::ir::Pipeline) -> usize {
    let mut s = Scheduler::new(p, Options::default()).unwrap();
    let mut actions = Vec::new();
    let mut pending = Vec::new();
    let mut launched = 0;
    s.start(&mut actions);
    loop {
        for a in actions.drain(..) {
            match a {
                Action::Launch { job, .. } => {
                    launched += 1;
                    pending.push(job);
                }
                Action::Finished(_) => return launched,
                _ => {}
            }
        }
        let job = pending.pop().expect("a run always ends");
        s.attempt_ended(job, AttemptEnd::Succeeded, &mut actions);
    }
}

/// Times each command `runs` times, round-robin (one run of each in turn, so that a change in the
/// machine's load touches every command alike), after one warm-up run each; median and minimum.
fn time_commands(runs: usize, dir: &Path, commands: &[Command]) -> Vec<(Duration, Duration)> {
    let mut samples = vec![Vec::new(); commands.len()];
    for i in 0..=runs {
        for (k, c) in commands.iter().enumerate() {
            let _ = std::fs::remove_file(dir.join(".ninja_log"));
            let _ = std::fs::remove_dir_all(dir.join("logs"));
            let mut cmd = Command::new(c.get_program());
            cmd.args(c.get_args())
                .current_dir(dir)
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            let start = Instant::now();
            let status = cmd.status().unwrap();
            let took = start.elapsed();
            assert!(status.success(), "{c:?} failed");
            if i > 0 {
                samples[k].push(took); // the first round warms caches
            }
        }
    }
    samples.into_iter().map(median).collect()
}

fn installed(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn main() {
    let runs: usize = std::env::var("CHAINR_BENCH_RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(7);

    println!("scheduler alone, instant executor ({runs} runs each, median (min))");
    for shape in ["layered", "chain"] {
        let dag = workload::dag(shape, 10_000);
        let out = chainr_compiler::compile(&dag.chainr(), &Default::default());
        let p = out.pipeline.expect("the workload compiles");
        let mut samples = Vec::new();
        let mut peak = 0;
        for _ in 0..=runs {
            let base = LIVE.load(Ordering::Relaxed);
            PEAK.store(base, Ordering::Relaxed);
            let start = Instant::now();
            let launched = schedule_all(&p);
            samples.push(start.elapsed());
            peak = PEAK.load(Ordering::Relaxed) - base;
            assert_eq!(launched, 10_000);
        }
        samples.remove(0);
        let (med, min) = median(samples);
        let edges: usize = dag.deps.iter().map(Vec::len).sum();
        println!(
            "  {shape:<8} 10000 jobs, {edges:>5} edges: {:>7.2} ms ({:>6.2})  peak memory {:.1} MB  ({:.0} ns per job)",
            ms(med),
            ms(min),
            peak as f64 / 1e6,
            med.as_nanos() as f64 / 10_000.0
        );
    }

    let dir = std::env::temp_dir().join(format!("chainr-run-bench-{}", std::process::id()));
    workload::dag("layered", 1000).write_all(&dir);
    let exe = env!("CARGO_BIN_EXE_chainrc");
    println!(
        "\nlayered 1000 of `true`, two at a time, whole commands ({runs} rounds, one run of each in turn; median (min))"
    );
    let chainrc = |exe: &str| {
        let mut c = Command::new(exe);
        c.args([
            "run",
            "--concurrency",
            "2",
            "--format",
            "json",
            "--logs",
            "logs",
            "pipeline.chainr",
        ]);
        c
    };
    let tool = |name: &str, args: &[&str]| {
        let mut c = Command::new(name);
        c.args(args);
        c
    };
    // Another build of chainrc (an earlier commit, say), measured in the same rounds.
    let baseline = std::env::var("CHAINR_BENCH_BASELINE").ok();
    let mut names = vec!["chainrc run --concurrency 2".to_string()];
    let mut commands = vec![chainrc(exe)];
    if let Some(path) = &baseline {
        names.push(format!("baseline {path}"));
        commands.push(chainrc(path));
    }
    for (name, args) in [("make", &["-j2", "-s"][..]), ("ninja", &["-j2"][..])] {
        if installed(name) {
            names.push(format!("{name} {}", args.join(" ")));
            commands.push(tool(name, args));
        } else {
            println!("  {name} not installed: skipped");
        }
    }
    let times = time_commands(runs, &dir, &commands);
    for (name, t) in names.iter().zip(&times) {
        println!("  {name:<29} {:>8.1} ms ({:>6.1})", ms(t.0), ms(t.1));
    }
    println!("\nratios (median)");
    let ours = ms(times[0].0);
    for (name, t) in names.iter().zip(&times).skip(1) {
        let target = if name.starts_with("make") {
            "  (target <= 1.2x)"
        } else {
            ""
        };
        let label = name.split(' ').next().unwrap_or(name);
        println!(
            "  chainrc run / {label:<10} {:>5.2}x{target}",
            ours / ms(t.0)
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
