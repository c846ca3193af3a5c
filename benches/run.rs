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

fn time_command(
    runs: usize,
    dir: &Path,
    mut make: impl FnMut() -> Command,
) -> (Duration, Duration) {
    let mut samples = Vec::new();
    for i in 0..=runs {
        let _ = std::fs::remove_file(dir.join(".ninja_log"));
        let _ = std::fs::remove_dir_all(dir.join("logs"));
        let start = Instant::now();
        let status = make()
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        let took = start.elapsed();
        assert!(status.success());
        if i > 0 {
            samples.push(took); // the first run warms caches
        }
    }
    median(samples)
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
        "\nlayered 1000 of `true`, two at a time, whole commands ({runs} runs each, median (min))"
    );
    let run_with = |exe: &str| {
        time_command(runs, &dir, || {
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
        })
    };
    let chainr = run_with(exe);
    println!(
        "  chainrc run --concurrency 2   {:>8.1} ms ({:>6.1})",
        ms(chainr.0),
        ms(chainr.1)
    );
    // Another build of chainrc (an earlier commit, say), measured in the same run.
    let baseline = std::env::var("CHAINR_BENCH_BASELINE").ok().map(|path| {
        let t = run_with(&path);
        println!(
            "  baseline chainrc ({path})\n                                {:>8.1} ms ({:>6.1})",
            ms(t.0),
            ms(t.1)
        );
        t
    });
    let reference = |tool: &str, args: &[&str]| {
        if !installed(tool) {
            println!("  {tool} not installed: skipped");
            return None;
        }
        let t = time_command(runs, &dir, || {
            let mut c = Command::new(tool);
            c.args(args);
            c
        });
        println!(
            "  {:<29} {:>8.1} ms ({:>6.1})",
            format!("{tool} {}", args.join(" ")),
            ms(t.0),
            ms(t.1)
        );
        Some(t)
    };
    let make = reference("make", &["-j2", "-s"]);
    let ninja = reference("ninja", &["-j2"]);
    println!("\nratios (median)");
    if let Some(m) = make {
        println!(
            "  chainrc run / make -j2   {:>5.2}x  (target <= 1.2x)",
            ms(chainr.0) / ms(m.0)
        );
    }
    if let Some(n) = ninja {
        println!(
            "  chainrc run / ninja -j2  {:>5.2}x",
            ms(chainr.0) / ms(n.0)
        );
    }
    if let Some(b) = baseline {
        println!(
            "  chainrc run / baseline   {:>5.2}x",
            ms(chainr.0) / ms(b.0)
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
