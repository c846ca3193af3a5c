//! Compile benchmark: `chainrc compile` against Debian's jsonnet on the equivalent program, and
//! against only parsing and re-serialising the equivalent IR JSON, side by side in one run.
//!
//! `cargo bench --bench compile` (workload: `layered 10000`, as in bench/gen_dag.py).
//! `CHAINR_BENCH_DIR=DIR` uses DIR/pipeline.{chainr,json,jsonnet} instead (from gen_dag.py);
//! `CHAINR_BENCH_RUNS=N` sets the number of timed runs of each command (default 15).

#[path = "../src/parallel.rs"]
mod parallel;
mod workload;

use chainr_compiler::{compile, compile_parsed, parse, to_json, Params};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

// The same allocator as the `chainrc` binary, for the in-process measurements of both sides.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Timing {
    median: Duration,
    min: Duration,
}

fn time(runs: usize, mut f: impl FnMut()) -> Timing {
    f(); // warm-up: caches, page cache, allocator
    let mut samples: Vec<Duration> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed()
        })
        .collect();
    samples.sort();
    Timing {
        median: samples[samples.len() / 2],
        min: samples[0],
    }
}

fn run(cmd: &mut Command) {
    let status = cmd
        .stdout(Stdio::null())
        .status()
        .expect("the command starts");
    assert!(status.success(), "{cmd:?} failed");
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn main() {
    // `cargo bench` passes `--bench`; there are no options to read.
    let runs: usize = std::env::var("CHAINR_BENCH_RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(15);
    let tmp;
    let dir: PathBuf = match std::env::var_os("CHAINR_BENCH_DIR") {
        Some(d) => PathBuf::from(d),
        None => {
            tmp = std::env::temp_dir().join(format!("chainr-bench-{}", std::process::id()));
            std::fs::create_dir_all(&tmp).unwrap();
            workload::dag("layered", 10_000).write_all(&tmp);
            tmp.clone()
        }
    };
    let chainr_src = std::fs::read_to_string(dir.join("pipeline.chainr")).unwrap();
    let json_src = std::fs::read_to_string(dir.join("pipeline.json")).unwrap();
    let params = Params::default();
    let out = compile(&chainr_src, &params);
    assert!(
        out.diagnostics.is_empty(),
        "the workload must compile cleanly"
    );
    let jobs = out.pipeline.as_ref().map_or(0, |p| p.jobs.len());
    // The two forms must be the same pipeline (apart from the name the source gives it).
    let mut ours: serde_json::Value = serde_json::to_value(out.pipeline.unwrap()).unwrap();
    ours.as_object_mut().unwrap().remove("name");
    let theirs: serde_json::Value = serde_json::from_str(&json_src).unwrap();
    assert_eq!(ours, theirs, "pipeline.chainr and pipeline.json differ");

    println!(
        "workload: {} ({} jobs; .chainr {} KB, IR JSON {} KB), {runs} runs each, median (min)\n",
        dir.display(),
        jobs,
        chainr_src.len() / 1024,
        json_src.len() / 1024
    );

    let parse_seq = time(runs, || {
        std::hint::black_box(parse::parse(&chainr_src));
    });
    // As `chainrc` parses: in two parts on two threads (for files over 128 KB).
    let parse_par = time(runs, || {
        std::hint::black_box(parallel::parse(&chainr_src));
    });
    // As `chainrc compile` does it: parsed in parts on two threads, then checked and lowered.
    let full = time(runs, || {
        let out = compile_parsed(parallel::parse(&chainr_src), &params);
        std::hint::black_box(to_json(out.pipeline.as_ref().unwrap()));
    });
    let json_roundtrip = time(runs, || {
        let v: serde_json::Value = serde_json::from_str(&json_src).unwrap();
        std::hint::black_box(serde_json::to_string_pretty(&v).unwrap());
    });

    let exe = env!("CARGO_BIN_EXE_chainrc");
    let chainrc_src = time(runs, || {
        run(Command::new(exe)
            .arg("compile")
            .arg(dir.join("pipeline.chainr")))
    });
    let chainrc_json = time(runs, || {
        run(Command::new(exe)
            .arg("compile")
            .arg(dir.join("pipeline.json")))
    });
    let jsonnet_ok = Command::new("jsonnet")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    let jsonnet = jsonnet_ok.then(|| {
        time(runs, || {
            run(Command::new("jsonnet").arg(dir.join("pipeline.jsonnet")))
        })
    });

    let row = |name: &str, t: &Timing| {
        println!("{name:<58} {:>8.1} ms ({:>6.1})", ms(t.median), ms(t.min))
    };
    println!("in process");
    row("  parse .chainr, one thread", &parse_seq);
    row("  parse .chainr (two threads for large files)", &parse_par);
    row(
        "  compile .chainr to pretty IR JSON (parse, check, lower)",
        &full,
    );
    row(
        "  reference: serde_json parse + pretty print of the IR",
        &json_roundtrip,
    );
    println!("whole command");
    row("  chainrc compile pipeline.chainr", &chainrc_src);
    row(
        "  reference: chainrc compile pipeline.json (validate + print)",
        &chainrc_json,
    );
    match &jsonnet {
        Some(t) => row("  reference: jsonnet pipeline.jsonnet", t),
        None => println!("  jsonnet not installed (apt-get install jsonnet): skipped"),
    }
    println!("\nratios (median)");
    let ratio = |a: &Timing, b: &Timing| ms(a.median) / ms(b.median);
    if let Some(j) = &jsonnet {
        println!(
            "  jsonnet / chainrc compile                      {:>6.1}x  (target >= 10x)",
            ratio(j, &chainrc_src)
        );
    }
    println!(
        "  compile / JSON round trip, in process          {:>6.2}x  (target <= 3x)",
        ratio(&full, &json_roundtrip)
    );
    println!(
        "  chainrc compile .chainr / .json, whole command {:>6.2}x",
        ratio(&chainrc_src, &chainrc_json)
    );
    println!(
        "  parse: one thread / two threads               {:>6.2}x",
        ratio(&parse_seq, &parse_par)
    );
    if std::env::var_os("CHAINR_BENCH_DIR").is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
}
