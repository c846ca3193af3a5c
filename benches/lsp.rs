//! Language server latency, over the real `chainrc lsp` on stdio: a 5,000-job file, one
//! character changed, time until its diagnostics arrive, over 100 edits sent as ranges
//! (incremental sync) and 100 sent as the whole new text (as some clients always do); then
//! hover and completion. Reports median and p95.
//!
//! `cargo bench --bench lsp`.

#[path = "../tests/it/lsp_client.rs"]
mod lsp_client;
// The lsp bench uses only the `.chainr` form of the workloads.
#[allow(dead_code)]
mod workload;

use lsp_client::{position, Client};
use serde_json::json;
use std::path::Path;
use std::time::{Duration, Instant};

fn stats(mut v: Vec<Duration>) -> (Duration, Duration) {
    v.sort();
    (v[v.len() / 2], v[(v.len() * 95).div_ceil(100) - 1])
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn main() {
    let text = workload::dag("layered", 5000).chainr();
    let mut client = Client::start(Path::new(env!("CARGO_BIN_EXE_chainrc")));
    let uri = "file:///bench/pipeline.chainr";
    let opened = Instant::now();
    let d = client.open(uri, &text);
    assert!(d.is_empty(), "the workload compiles cleanly");
    println!(
        "5000 jobs, {} KB; open to first diagnostics: {:.1} ms\n",
        text.len() / 1024,
        ms(opened.elapsed())
    );

    // Each edit turns one job's `run = "true"` into `"trux"` or back, one character, spread
    // over the file; every edit gets its diagnostics (none: the file stays valid).
    let runs: Vec<usize> = text.match_indices("\"true\"").map(|(i, _)| i + 4).collect();
    let mut current = text.clone();
    let mut version = 1;
    let mut edit_times = Vec::new();
    let mut whole_times = Vec::new();
    for (whole, times) in [(false, &mut edit_times), (true, &mut whole_times)] {
        for k in 0..100 {
            let at = runs[(k * 7919) % runs.len()];
            let old = &current[at..at + 1];
            let new = if old == "e" { "x" } else { "e" };
            let range = json!({"start": position(&current, at), "end": position(&current, at + 1)});
            current.replace_range(at..at + 1, new);
            let change = if whole {
                json!({"text": current})
            } else {
                json!({"range": range, "text": new})
            };
            version += 1;
            let params = json!({"textDocument": {"uri": uri, "version": version}, "contentChanges": [change]});
            let start = Instant::now();
            client.notify("textDocument/didChange", params);
            let d = client.diagnostics(uri);
            times.push(start.elapsed());
            assert!(d.is_empty());
        }
    }
    // A job's name near the end, for hover; completion after `after` on a new job's header.
    let probe = current.rfind("after j").unwrap() + "after j".len();
    let mut hover_times = Vec::new();
    for _ in 0..100 {
        let start = Instant::now();
        let h = client.request(
            "textDocument/hover",
            json!({"textDocument": {"uri": uri}, "position": position(&current, probe)}),
        );
        hover_times.push(start.elapsed());
        assert!(h["contents"]["value"].as_str().unwrap().contains("**job j"));
    }
    let end = current.rfind('}').unwrap();
    let insert = "  job new after j00001, ";
    client.notify(
        "textDocument/didChange",
        json!({"textDocument": {"uri": uri, "version": 1000}, "contentChanges": [{
            "range": {"start": position(&current, end), "end": position(&current, end)}, "text": insert
        }]}),
    );
    current.insert_str(end, insert);
    client.diagnostics(uri);
    let cursor = end + insert.len();
    let mut completion_times = Vec::new();
    for _ in 0..100 {
        let start = Instant::now();
        let items = client.request(
            "textDocument/completion",
            json!({"textDocument": {"uri": uri}, "position": position(&current, cursor)}),
        );
        completion_times.push(start.elapsed());
        assert!(items.as_array().unwrap().len() >= 5000);
    }
    client.shutdown();

    println!("{:<48} {:>9} {:>9}", "100 requests each", "median", "p95");
    for (name, times, target) in [
        (
            "one-character edit (range) to diagnostics",
            edit_times,
            "p95 < 20 ms",
        ),
        (
            "one-character edit (whole text) to diagnostics",
            whole_times,
            "p95 < 20 ms",
        ),
        ("hover on a job reference", hover_times, ""),
        ("completion of 5,000 job names", completion_times, ""),
    ] {
        let (median, p95) = stats(times);
        println!(
            "{name:<48} {:>6.1} ms {:>6.1} ms  {target}",
            ms(median),
            ms(p95)
        );
    }
}
