//! Layout benchmark: the layout of a pipeline's graph (`chainr_runtime::layout`) against
//! Graphviz `dot`, the classic implementation of the same layered method, on the same DAGs,
//! side by side in one run.
//!
//! Workloads: `layered 2000` and `layered 10000` (the shape of bench/gen_dag.py), and `fan`: one
//! job, a fan-out group of 10,000 instances after it, two jobs after the group (one on its
//! failure) and a `finally` job; laid out with the group collapsed and expanded. `dot` lays out
//! the expanded graph (it has no groups), left to right like chainr, every node 180x36 points
//! (`fixedsize`), from a `.dot` file to `-Tplain`; each run is stopped after
//! `CHAINR_BENCH_DOT_CAP` seconds (default 60) and reported as "over" that.
//!
//! `cargo bench --bench layout`; `CHAINR_BENCH_RUNS=N` sets the timed runs of chainr's layout
//! (default 15), `CHAINR_BENCH_DOT_RUNS=N` those of `dot` (default 3).

// Only the DAG shapes and their `.chainr` form are used here.
#[allow(dead_code)]
mod workload;

use chainr_compiler::ir;
use chainr_runtime::layout::layout_with_stats;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

// The allocator of the `chainrc` binary (and so of the server).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(default)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Median and minimum of `runs` timed calls, after one untimed.
fn time(runs: usize, mut f: impl FnMut()) -> (Duration, Duration) {
    f();
    let mut samples: Vec<Duration> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed()
        })
        .collect();
    samples.sort();
    (samples[samples.len() / 2], samples[0])
}

/// `fan`: `extract`, then `shard` fanned out `n` times, then `load` (after every instance) and
/// `repair` (after any failed), and `report` in `finally`.
fn fan(n: usize) -> String {
    format!(
        r#"pipeline fan {{
  job extract {{ image = "busybox"  run = "true" }}
  job shard for i in 0..{n} after extract {{ image = "busybox"  run = "echo ${{i}}" }}
  job load after shard {{ image = "busybox"  run = "true" }}
  job repair after shard.failed {{ image = "busybox"  run = "true" }}
  finally {{
    job report {{ image = "busybox"  run = "true" }}
  }}
}}
"#
    )
}

/// The pipeline's jobs and dependencies as a Graphviz graph, laid out as chainr lays it out.
fn dot_source(p: &ir::Pipeline) -> String {
    let mut s = String::from(
        "digraph pipeline {\n  rankdir=LR;\n  node [shape=box, width=2.5, height=0.5, fixedsize=true];\n",
    );
    for name in p.jobs.keys() {
        let _ = writeln!(s, "  \"{name}\";");
    }
    for (name, job) in &p.jobs {
        let mut needs: Vec<&str> = job.needs().collect();
        needs.sort_unstable();
        needs.dedup();
        for d in needs {
            let _ = writeln!(s, "  \"{d}\" -> \"{name}\";");
        }
    }
    s.push_str("}\n");
    s
}

/// One run of `dot`, its layout written to `out`: its time, or `None` past the cap (then it
/// is stopped).
fn dot_once(file: &Path, out: &Path, cap: Duration) -> Option<Duration> {
    let start = Instant::now();
    let mut child = Command::new("dot")
        .arg("-Tplain")
        .arg("-o")
        .arg(out)
        .arg(file)
        .stdout(Stdio::null())
        .spawn()
        .expect("dot starts");
    loop {
        if let Some(status) = child.try_wait().expect("dot can be waited for") {
            assert!(status.success(), "dot failed on {}", file.display());
            return Some(start.elapsed());
        }
        if start.elapsed() > cap {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Crossings between edges of neighbouring ranks in `dot -Tplain` output (rankdir=LR: a rank
/// is a column, nodes ordered by y), counted as chainr counts its own.
fn dot_crossings(plain: &str) -> u64 {
    let mut at: HashMap<&str, (i64, i64)> = HashMap::new();
    let mut edges = Vec::new();
    for line in plain.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        match f.first() {
            // Hundredths of an inch are finer than any two ranks or nodes are apart.
            Some(&"node") if f.len() > 3 => {
                let x = (f[2].parse::<f64>().unwrap() * 100.0).round() as i64;
                let y = (f[3].parse::<f64>().unwrap() * 100.0).round() as i64;
                at.insert(f[1], (x, y));
            }
            Some(&"edge") if f.len() > 2 => edges.push((f[1], f[2])),
            _ => {}
        }
    }
    let mut ranks: Vec<i64> = at.values().map(|p| p.0).collect();
    ranks.sort_unstable();
    ranks.dedup();
    let rank = |x: i64| ranks.binary_search(&x).unwrap();
    // Edges between each pair of neighbouring ranks, as (y at the left, y at the right).
    let mut between: HashMap<usize, Vec<(i64, i64)>> = HashMap::new();
    for (a, b) in edges {
        let (pa, pb) = (at[a], at[b]);
        let (ra, rb) = (rank(pa.0), rank(pb.0));
        if rb == ra + 1 {
            between.entry(ra).or_default().push((pa.1, pb.1));
        }
    }
    let mut total = 0;
    for segs in between.values() {
        for (i, a) in segs.iter().enumerate() {
            for b in &segs[i + 1..] {
                if (a.0 - b.0).signum() * (a.1 - b.1).signum() < 0 {
                    total += 1;
                }
            }
        }
    }
    total
}

enum Dot {
    Missing,
    Over(Duration),
    Took(Duration),
}

fn main() {
    let runs = env("CHAINR_BENCH_RUNS", 15) as usize;
    let dot_runs = env("CHAINR_BENCH_DOT_RUNS", 3) as usize;
    let cap = Duration::from_secs(env("CHAINR_BENCH_DOT_CAP", 60));
    let has_dot = Command::new("dot")
        .arg("-V")
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    let dir = std::env::temp_dir().join(format!("chainr-layout-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();

    let compile = |src: &str| {
        chainr_compiler::compile(src, &Default::default())
            .pipeline
            .expect("the workload compiles")
    };
    let layered_2000 = compile(&workload::dag("layered", 2000).chainr());
    let layered_10000 = compile(&workload::dag("layered", 10_000).chainr());
    let fan_10000 = compile(&fan(10_000));
    // (name, pipeline, expanded groups, whether dot lays out the same graph)
    let cases: [(&str, &ir::Pipeline, &[&str], bool); 4] = [
        ("layered 2000", &layered_2000, &[], true),
        ("layered 10000", &layered_10000, &[], true),
        ("fan 10000, collapsed", &fan_10000, &[], false),
        ("fan 10000, expanded", &fan_10000, &["shard"], true),
    ];

    println!(
        "chainr: {runs} runs each, dot: up to {dot_runs} runs each, stopped after {} s; median (min)\n",
        cap.as_secs()
    );
    let mut rows = Vec::new();
    for (name, p, expanded, same_for_dot) in cases {
        let (l, stats) = layout_with_stats(p, expanded);
        let json = serde_json::to_vec(&l).unwrap();
        let edges = l.edges.len();
        let (lay, lay_min) = time(runs, || {
            std::hint::black_box(layout_with_stats(p, expanded));
        });
        let (whole, whole_min) = time(runs, || {
            let (l, _) = layout_with_stats(p, expanded);
            std::hint::black_box(serde_json::to_vec(&l).unwrap());
        });
        println!(
            "{name}: {} jobs, {} nodes, {edges} edges, {} layers, {} virtual points; crossings {} -> {} in {} sweeps; JSON {} KB",
            p.jobs.len(),
            l.nodes.len(),
            stats.layers,
            stats.virtual_points,
            stats.crossings_before,
            stats.crossings,
            stats.sweeps,
            json.len() / 1024
        );
        println!(
            "  chainr layout                {:>10.2} ms ({:.2})",
            ms(lay),
            ms(lay_min)
        );
        println!(
            "  chainr layout + JSON         {:>10.2} ms ({:.2})",
            ms(whole),
            ms(whole_min)
        );
        let dot = if !same_for_dot {
            None
        } else if !has_dot {
            println!("  dot not installed (apt-get install graphviz): skipped");
            Some(Dot::Missing)
        } else {
            let file = dir.join(format!("{}.dot", name.replace([' ', ','], "_")));
            std::fs::write(&file, dot_source(p)).unwrap();
            let out = file.with_extension("plain");
            let mut samples = Vec::new();
            let mut over = false;
            for _ in 0..dot_runs {
                match dot_once(&file, &out, cap) {
                    Some(t) => samples.push(t),
                    None => {
                        over = true;
                        break;
                    }
                }
            }
            samples.sort();
            let d = if over {
                println!("  dot -Tplain                  over {} s", cap.as_secs());
                Dot::Over(cap)
            } else {
                let (med, min) = (samples[samples.len() / 2], samples[0]);
                let crossings = dot_crossings(&std::fs::read_to_string(&out).unwrap());
                println!(
                    "  dot -Tplain                  {:>10.2} ms ({:.2}); crossings {crossings}",
                    ms(med),
                    ms(min)
                );
                Dot::Took(med)
            };
            Some(d)
        };
        rows.push((name, lay, whole, dot));
        println!();
    }

    println!("ratios (medians)");
    for (name, lay, whole, dot) in &rows {
        let target = if name.starts_with("layered 10000") {
            format!(
                "  (target: layout under 100 ms; it took {:.1} ms)",
                ms(*lay)
            )
        } else {
            String::new()
        };
        match dot {
            Some(Dot::Took(med)) => println!(
                "  {name:<22} dot / chainr layout + JSON {:>8.0}x{target}",
                ms(*med) / ms(*whole)
            ),
            Some(Dot::Over(cap)) => println!(
                "  {name:<22} dot / chainr layout + JSON  over {:.0}x{target}",
                ms(*cap) / ms(*whole)
            ),
            _ => println!("  {name:<22} (no reference){target}"),
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
