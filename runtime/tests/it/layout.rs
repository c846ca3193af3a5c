//! The layout of a pipeline's graph: its invariants (edges go left to right, nodes never
//! overlap, edges never cross a node, `finally` jobs stand apart) on named cases and on random
//! pipelines, labels from conditions, groups collapsed and expanded, crossings reduced, and the
//! same layout every time.

use chainr_compiler::ir::{self, Condition, Dependency, DependencyConditions};
use chainr_runtime::layout::{layout, layout_with_stats, LEdge, LNode, Layout, NodeKind};
use proptest::prelude::*;
use std::collections::BTreeMap;

fn compile(src: &str) -> ir::Pipeline {
    let out = chainr_compiler::compile(src, &Default::default());
    assert!(
        out.diagnostics.iter().all(|d| !d.is_error()),
        "{:?}",
        out.diagnostics
    );
    out.pipeline.expect("it compiles")
}

fn node<'a>(l: &'a Layout, name: &str) -> &'a LNode {
    l.nodes
        .iter()
        .find(|n| n.name == name)
        .unwrap_or_else(|| panic!("no node {name}"))
}

fn edge<'a>(l: &'a Layout, from: &str, to: &str) -> &'a LEdge {
    let (f, t) = (node(l, from).id, node(l, to).id);
    l.edges
        .iter()
        .find(|e| e.from == f && e.to == t)
        .unwrap_or_else(|| panic!("no edge {from} -> {to}"))
}

fn label<'a>(l: &'a Layout, from: &str, to: &str) -> Option<&'a str> {
    edge(l, from, to).label.as_deref()
}

/// What holds of every layout of a pipeline without cycles.
fn check(p: &ir::Pipeline, l: &Layout) {
    check_shape(p, l);
    let layer = |id: usize| l.nodes[id].layer;
    for e in &l.edges {
        assert!(
            layer(e.from) < layer(e.to),
            "{} -> {} goes from layer {} to {}",
            l.nodes[e.from].name,
            l.nodes[e.to].name,
            layer(e.from),
            layer(e.to)
        );
        // Two bends per column crossed, at the columns in between, left to right.
        let crossed = (layer(e.to) - layer(e.from) - 1) as usize;
        assert_eq!(e.points.len(), 2 * crossed, "{e:?}");
        let mut x = l.nodes[e.from].x + l.node_width;
        for p in &e.points {
            assert!(p[0] >= x, "{e:?} goes back");
            x = p[0];
        }
        assert!(x < l.nodes[e.to].x);
    }
    // `finally` jobs come after every other job.
    let last_other = l.nodes.iter().filter(|n| !n.finally).map(|n| n.layer).max();
    let first_finally = l.nodes.iter().filter(|n| n.finally).map(|n| n.layer).min();
    if let (Some(o), Some(f)) = (last_other, first_finally) {
        assert!(o < f, "finally band at {f}, other jobs up to {o}");
    }
}

/// What holds of every layout, cycles or not.
fn check_shape(p: &ir::Pipeline, l: &Layout) {
    // Every job is in exactly one node; ids are places.
    let mut seen = vec![0; p.jobs.len()];
    for (i, n) in l.nodes.iter().enumerate() {
        assert_eq!(n.id, i);
        assert!(!n.jobs.is_empty());
        for &j in &n.jobs {
            seen[j] += 1;
        }
    }
    assert!(seen.iter().all(|&s| s == 1), "{seen:?}");
    // Nodes in a column never overlap; columns never do.
    let (w, h) = (l.node_width, l.node_height);
    let mut columns: BTreeMap<i32, Vec<&LNode>> = BTreeMap::new();
    for n in &l.nodes {
        assert!(n.x >= 0 && n.y >= 0, "{n:?}");
        assert!(n.x + w <= l.width && n.y + h <= l.height, "{n:?} outside");
        columns.entry(n.x).or_default().push(n);
    }
    let xs: Vec<i32> = columns.keys().copied().collect();
    for pair in xs.windows(2) {
        assert!(pair[1] - pair[0] > w, "columns {pair:?} overlap");
    }
    for column in columns.values_mut() {
        assert!(column.iter().all(|n| n.layer == column[0].layer));
        column.sort_by_key(|n| n.y);
        for pair in column.windows(2) {
            assert!(
                pair[1].y - pair[0].y >= h,
                "{} and {} overlap",
                pair[0].name,
                pair[1].name
            );
        }
    }
    // Edges pass through columns clear of their nodes.
    for e in &l.edges {
        assert!(e.from < l.nodes.len() && e.to < l.nodes.len() && e.from != e.to);
        assert_eq!(e.points.len() % 2, 0);
        for run in e.points.chunks(2) {
            let ([x0, y0], [x1, y1]) = (run[0], run[1]);
            assert_eq!(y0, y1);
            assert_eq!((x1 - x0).abs(), w);
            assert!(y0 >= 0 && y0 <= l.height);
            let x = x0.min(x1);
            for n in columns.get(&x).into_iter().flatten() {
                assert!(
                    y0 < n.y || y0 > n.y + h,
                    "{e:?} crosses {} at y {y0}",
                    n.name
                );
            }
        }
    }
}

/// Crossings between straight edges of neighbouring columns.
fn crossings(l: &Layout) -> usize {
    let straight: Vec<&LEdge> = l.edges.iter().filter(|e| e.points.is_empty()).collect();
    let mut count = 0;
    for (i, a) in straight.iter().enumerate() {
        for b in &straight[i + 1..] {
            let (fa, ta, fb, tb) = (
                &l.nodes[a.from],
                &l.nodes[a.to],
                &l.nodes[b.from],
                &l.nodes[b.to],
            );
            if fa.layer != fb.layer || ta.layer != tb.layer || a.from == b.from || a.to == b.to {
                continue;
            }
            if (fa.y < fb.y) != (ta.y < tb.y) {
                count += 1;
            }
        }
    }
    count
}

#[test]
fn layout_of_four_jobs_reads_left_to_right() {
    let p = compile(
        r#"pipeline four {
  job build { image = "busybox"  run = "true" }
  job test after build { image = "busybox"  run = "true" }
  job notify after build.failed { image = "busybox"  run = "true" }
  job publish after test || notify { image = "busybox"  run = "true" }
}"#,
    );
    let l = layout(&p, &[]);
    check(&p, &l);
    let layers: Vec<(&str, u32)> = l.nodes.iter().map(|n| (n.name.as_str(), n.layer)).collect();
    assert_eq!(
        layers,
        [("build", 0), ("test", 1), ("notify", 1), ("publish", 2)]
    );
    assert_eq!(l.nodes[0].jobs, [0]);
    assert!(l.nodes.iter().all(|n| n.kind == NodeKind::Job));
    assert_eq!(label(&l, "build", "test"), None);
    assert_eq!(label(&l, "build", "notify"), Some("failed"));
    assert_eq!(label(&l, "test", "publish"), Some("||"));
    assert_eq!(label(&l, "notify", "publish"), Some("||"));
    assert_eq!(l.edges.len(), 4);
    // Columns left to right, a node's width and a gap apart.
    assert!(node(&l, "test").x > node(&l, "build").x + l.node_width);
    assert_eq!(node(&l, "test").x, node(&l, "notify").x);
    // `build` sits between its two dependents.
    let mid = |n: &LNode| n.y + l.node_height / 2;
    let (t, n) = (mid(node(&l, "test")), mid(node(&l, "notify")));
    assert!(mid(node(&l, "build")) > t.min(n) && mid(node(&l, "build")) < t.max(n));
    // Compact JSON: nothing empty, no kind for plain jobs.
    let json = serde_json::to_string(&l).unwrap();
    assert!(!json.contains("\"kind\""), "{json}");
    assert!(!json.contains("null") && !json.contains("[]"), "{json}");
    assert!(json.contains("\"label\":\"failed\""), "{json}");
    let back: Layout = serde_json::from_str(&json).unwrap();
    assert_eq!(back, l);
}

#[test]
fn layout_labels_come_from_the_condition_types() {
    let p = compile(
        r#"pipeline labels {
  job a { image = "busybox"  run = "true" }
  job b { image = "busybox"  run = "true" }
  job flaky { image = "busybox"  run = "true"  allow_failure = true }
  job on_done after a.done { image = "busybox"  run = "true" }
  job on_skip after a.skipped { image = "busybox"  run = "true" }
  job not_failed after !a.failed { image = "busybox"  run = "true" }
  job not_ok after !a { image = "busybox"  run = "true" }
  job either after a.failed || b.done { image = "busybox"  run = "true" }
  job both after a && b.errored { image = "busybox"  run = "true" }
  job neither after !(a || b) { image = "busybox"  run = "true" }
  job one_of after !(a && b) { image = "busybox"  run = "true" }
  job same after a.failed || a.skipped { image = "busybox"  run = "true" }
  job bare_allowed after flaky || b { image = "busybox"  run = "true" }
}"#,
    );
    let l = layout(&p, &[]);
    check(&p, &l);
    assert_eq!(label(&l, "a", "on_done"), Some("done"));
    assert_eq!(label(&l, "a", "on_skip"), Some("skipped"));
    assert_eq!(label(&l, "a", "not_failed"), Some("!failed"));
    assert_eq!(label(&l, "a", "not_ok"), Some("!"));
    assert_eq!(label(&l, "a", "either"), Some("|| failed"));
    assert_eq!(label(&l, "b", "either"), Some("|| done"));
    assert_eq!(label(&l, "a", "both"), None);
    assert_eq!(label(&l, "b", "both"), Some("errored"));
    // `!(a || b)` is `!a && !b`: negations, not alternatives; `!(a && b)` is `!a || !b`.
    assert_eq!(label(&l, "a", "neither"), Some("!"));
    assert_eq!(label(&l, "a", "one_of"), Some("|| !"));
    // Two tests of one job are not alternatives between jobs.
    assert_eq!(label(&l, "a", "same"), Some("failed,skipped"));
    // A bare reference to a job that may fail, spelled out by the compiler inside `||`.
    assert_eq!(label(&l, "flaky", "bare_allowed"), Some("||"));
    assert_eq!(label(&l, "b", "bare_allowed"), Some("||"));
}

const FAN: &str = r#"pipeline fan {
  job extract { image = "busybox"  run = "true" }
  job shard for i in 0..5 after extract { image = "busybox"  run = "echo ${i}" }
  job load after shard { image = "busybox"  run = "true" }
  job repair after shard.failed { image = "busybox"  run = "true" }
  finally {
    job report { image = "busybox"  run = "true" }
    job cleanup after report.done { image = "busybox"  run = "true" }
  }
}"#;

#[test]
fn layout_collapses_fan_out_groups_unless_expanded() {
    let p = compile(FAN);
    let l = layout(&p, &[]);
    check(&p, &l);
    let names: Vec<&str> = l.nodes.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(
        names,
        ["extract", "shard", "load", "repair", "report", "cleanup"]
    );
    let shard = node(&l, "shard");
    assert_eq!(shard.kind, NodeKind::Group);
    assert_eq!(shard.group.as_deref(), Some("shard"));
    assert_eq!(shard.jobs, [1, 2, 3, 4, 5]);
    // One edge per pair of nodes; `shard.failed` (an any-of over the instances) is `failed`.
    assert_eq!(l.edges.len(), 4, "{:?}", l.edges);
    assert_eq!(label(&l, "extract", "shard"), None);
    assert_eq!(label(&l, "shard", "load"), None);
    assert_eq!(label(&l, "shard", "repair"), Some("failed"));

    let open = layout(&p, &["shard"]);
    check(&p, &open);
    assert_eq!(open.nodes.len(), 10);
    for i in 0..5 {
        let n = node(&open, &format!("shard-{i}"));
        assert_eq!(n.kind, NodeKind::Job);
        assert_eq!(n.group.as_deref(), Some("shard"));
        assert_eq!(n.layer, 1);
        assert_eq!(label(&open, "extract", &n.name), None);
        assert_eq!(label(&open, &n.name, "load"), None);
        // Expanded, the instances are alternatives for `repair`.
        assert_eq!(label(&open, &n.name, "repair"), Some("|| failed"));
    }
    assert_eq!(open.edges.len(), 5 * 3 + 1);
    // Naming a group that does not exist changes nothing.
    assert_eq!(layout(&p, &["nothing"]), l);
}

#[test]
fn layout_puts_finally_jobs_in_a_band_of_their_own() {
    let p = compile(FAN);
    let l = layout(&p, &[]);
    let report = node(&l, "report");
    let cleanup = node(&l, "cleanup");
    assert_eq!(report.kind, NodeKind::Finally);
    assert!(report.finally && cleanup.finally);
    assert!(!node(&l, "load").finally);
    // After the last column of other jobs, a gap wider than between columns.
    let last = node(&l, "load");
    assert_eq!(report.layer, last.layer + 1);
    assert_eq!(cleanup.layer, report.layer + 1);
    let step = node(&l, "load").x - node(&l, "shard").x;
    assert!(report.x - last.x > step);
    assert_eq!(cleanup.x - report.x, step);
    // Only their own conditions are drawn, not "after every other job".
    let report_id = report.id;
    assert!(l.edges.iter().all(|e| e.to != report_id));
    assert_eq!(label(&l, "report", "cleanup"), Some("done"));

    // A finally job waiting for an early job still comes after every other one, its edge
    // passing through the columns between.
    let p = compile(
        r#"pipeline late {
  job a { image = "busybox"  run = "true" }
  job b after a { image = "busybox"  run = "true" }
  job c after b { image = "busybox"  run = "true" }
  finally { job tell after a.failed { image = "busybox"  run = "true" } }
}"#,
    );
    let l = layout(&p, &[]);
    check(&p, &l);
    assert_eq!(node(&l, "tell").layer, 3);
    assert_eq!(edge(&l, "a", "tell").points.len(), 4);
}

#[test]
fn layout_routes_long_edges_around_nodes() {
    let p = compile(
        r#"pipeline long {
  job a { image = "busybox"  run = "true" }
  job b after a { image = "busybox"  run = "true" }
  job c after b { image = "busybox"  run = "true" }
  job d after c { image = "busybox"  run = "true" }
  job e after a, d { image = "busybox"  run = "true" }
  job f after a { image = "busybox"  run = "true" }
  job g after f, c { image = "busybox"  run = "true" }
}"#,
    );
    let (l, stats) = layout_with_stats(&p, &[]);
    check(&p, &l);
    assert_eq!(edge(&l, "a", "e").points.len(), 2 * 3);
    assert_eq!(edge(&l, "f", "g").points.len(), 2);
    assert_eq!(stats.virtual_points, 3 + 1);
    assert_eq!(stats.unrouted, 0);
    // The long edge runs straight: its bends are level.
    let ys: Vec<i32> = edge(&l, "a", "e").points.iter().map(|p| p[1]).collect();
    assert!(ys.windows(2).all(|w| w[0] == w[1]), "{ys:?}");
}

#[test]
fn layout_bounds_the_bends_of_long_edges() {
    // A chain of 500 where every job also waits for the first: the edges from the first
    // would cross 124,000 columns in all.
    let mut src =
        String::from("pipeline long {\n  job j0 { image = \"busybox\"  run = \"true\" }\n");
    for i in 1..500 {
        let after = if i == 1 {
            "j0".to_string()
        } else {
            format!("j0, j{}", i - 1)
        };
        src.push_str(&format!(
            "  job j{i} after {after} {{ image = \"busybox\"  run = \"true\" }}\n"
        ));
    }
    src.push('}');
    let p = compile(&src);
    let (l, stats) = layout_with_stats(&p, &[]);
    check_shape(&p, &l);
    assert!(stats.unrouted > 0);
    assert!(stats.virtual_points <= chainr_runtime::layout::MAX_VIRTUAL + 4 * (500 + 998));
    // The shortest edges keep their bends; the longest are drawn straight.
    assert_eq!(edge(&l, "j0", "j3").points.len(), 2 * 2);
    assert!(edge(&l, "j0", "j499").points.is_empty());
}

#[test]
fn layout_reduces_crossings_when_a_better_order_is_plain() {
    // In source order every edge crosses every other; reversed, none does.
    let mut src = String::from("pipeline cross {\n");
    for i in 0..6 {
        src.push_str(&format!(
            "  job s{i} {{ image = \"busybox\"  run = \"true\" }}\n"
        ));
    }
    for i in 0..6 {
        src.push_str(&format!(
            "  job t{i} after s{} {{ image = \"busybox\"  run = \"true\" }}\n",
            5 - i
        ));
        src.push_str(&format!(
            "  job u{i} after t{i} {{ image = \"busybox\"  run = \"true\" }}\n"
        ));
    }
    src.push('}');
    let p = compile(&src);
    let (l, stats) = layout_with_stats(&p, &[]);
    check(&p, &l);
    assert_eq!(stats.crossings_before, 15);
    assert_eq!(stats.crossings, 0);
    assert_eq!(crossings(&l), 0);
    assert!(stats.sweeps >= 1);

    // Two interleaved ladders: the sweeps find the order without crossings.
    let mut src = String::from("pipeline ladders {\n");
    for i in 0..8 {
        let (prev_a, prev_b) = if i == 0 {
            (String::new(), String::new())
        } else {
            (format!(" after b{}", i - 1), format!(" after a{}", i - 1))
        };
        src.push_str(&format!(
            "  job a{i}{prev_a} {{ image = \"busybox\"  run = \"true\" }}\n  job b{i}{prev_b} {{ image = \"busybox\"  run = \"true\" }}\n"
        ));
    }
    src.push('}');
    let p = compile(&src);
    let (l, stats) = layout_with_stats(&p, &[]);
    check(&p, &l);
    assert_eq!(stats.crossings_before, 7);
    assert_eq!(stats.crossings, 0);
    assert_eq!(crossings(&l), 0);
}

/// docs/server.md shows the layout of this pipeline as the API answers it.
#[test]
fn layout_in_the_docs_is_the_one_computed() {
    let p = compile(
        r#"pipeline docs {
  job build { image = "busybox"  run = "true" }
  job test for s in 0..3 after build { image = "busybox"  run = "true" }
  job publish after test { image = "busybox"  run = "true" }
  finally { job notify after build.failed { image = "busybox"  run = "true" } }
}"#,
    );
    let docs = include_str!("../../../docs/server.md");
    let section = &docs[docs.find("### The graph").expect("the section")..];
    let start = section.find("```json\n").expect("the example") + "```json\n".len();
    let example = &section[start..start + section[start..].find("```").unwrap()];
    let shown: serde_json::Value = serde_json::from_str(example).unwrap();
    assert_eq!(shown, serde_json::to_value(layout(&p, &[])).unwrap());
}

#[test]
fn layout_is_the_same_every_time() {
    let p = compile(FAN);
    let a = serde_json::to_string(&layout(&p, &["shard"])).unwrap();
    for _ in 0..3 {
        assert_eq!(serde_json::to_string(&layout(&p, &["shard"])).unwrap(), a);
    }
    let empty = ir::Pipeline {
        jobs: Default::default(),
        ..p.clone()
    };
    let l = layout(&empty, &[]);
    assert_eq!((l.width, l.height, l.nodes.len()), (0, 0, 0));
}

#[test]
fn layout_of_10000_jobs_is_compact() {
    // `layered 10000` of the benchmarks: 20 layers of 500, each job after up to 3 of the
    // layer before.
    let n = 10_000;
    let per = n / 20;
    let mut state: u64 = 7;
    let mut jobs = indexmap::IndexMap::new();
    for i in 0..n {
        let mut job = ir::Job::new("busybox", "true");
        if i >= per {
            let prev = (i / per - 1) * per;
            let mut deps: Vec<usize> = Vec::new();
            while deps.len() < 3 {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let pick = prev + (state >> 33) as usize % per;
                if !deps.contains(&pick) {
                    deps.push(pick);
                }
            }
            job.depends_on = deps
                .iter()
                .map(|d| Dependency {
                    job: format!("j{d:05}"),
                    conditions: None,
                })
                .collect();
        }
        jobs.insert(format!("j{i:05}"), job);
    }
    let p = ir::Pipeline {
        kind: ir::PipelineKind::Pipeline,
        name: None,
        description: None,
        fail_fast: false,
        concurrency: None,
        notify: Vec::new(),
        jobs,
    };
    let (l, stats) = layout_with_stats(&p, &[]);
    check_shape(&p, &l);
    assert_eq!(stats.layers, 20);
    assert!(stats.crossings < stats.crossings_before);
    let json = serde_json::to_string(&l).unwrap();
    assert!(json.len() < 1_500_000, "{} bytes", json.len());
}

/// A random pipeline as compiled source gives: each job after earlier ones, fan-out groups
/// whose instances share one condition, `finally` jobs that only other `finally` jobs wait for.
#[derive(Clone, Debug)]
struct Spec {
    jobs: Vec<JobSpec>,
    expand: Vec<bool>,
}

/// A declared job: instances (1 for a plain job, more for a group), finally, `dependsOn`
/// (declared job, on failure), and a condition tree.
type JobSpec = (usize, bool, Vec<(usize, bool)>, Option<Tree>);

#[derive(Clone, Debug)]
enum Tree {
    All(Vec<Tree>),
    Any(Vec<Tree>),
    Not(Box<Tree>),
    Leaf(usize, u8),
}

fn tree(targets: usize) -> BoxedStrategy<Tree> {
    let leaf = (0..targets, 0u8..6).prop_map(|(j, t)| Tree::Leaf(j, t));
    leaf.prop_recursive(3, 8, 3, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 1..3).prop_map(Tree::All),
            proptest::collection::vec(inner.clone(), 1..3).prop_map(Tree::Any),
            inner.prop_map(|t| Tree::Not(Box::new(t))),
        ]
    })
    .boxed()
}

fn specs() -> impl Strategy<Value = Spec> {
    (1usize..24).prop_flat_map(|n| {
        let jobs: Vec<BoxedStrategy<JobSpec>> = (0..n)
            .map(|i| {
                let deps = proptest::collection::vec((0..i.max(1), any::<bool>()), 0..4);
                let cond = if i == 0 {
                    Just(None).boxed()
                } else {
                    proptest::option::weighted(0.4, tree(i)).boxed()
                };
                (
                    prop_oneof![4 => Just(1usize), 1 => 2usize..5],
                    proptest::bool::weighted(0.15),
                    deps,
                    cond,
                )
                    .prop_map(move |(k, finally, deps, cond)| {
                        (k, finally, if i == 0 { Vec::new() } else { deps }, cond)
                    })
                    .boxed()
            })
            .collect();
        (jobs, proptest::collection::vec(any::<bool>(), n))
            .prop_map(|(jobs, expand)| Spec { jobs, expand })
    })
}

fn instances(spec: &Spec, d: usize) -> Vec<String> {
    match spec.jobs[d].0 {
        1 => vec![format!("j{d}")],
        k => (0..k).map(|i| format!("j{d}-{i}")).collect(),
    }
}

fn condition(spec: &Spec, t: &Tree, finally: bool) -> Option<Condition> {
    Some(match t {
        Tree::All(ts) => Condition::All(
            ts.iter()
                .filter_map(|t| condition(spec, t, finally))
                .collect(),
        ),
        Tree::Any(ts) => Condition::Any(
            ts.iter()
                .filter_map(|t| condition(spec, t, finally))
                .collect(),
        ),
        Tree::Not(t) => Condition::Not(Box::new(condition(spec, t, finally)?)),
        Tree::Leaf(j, k) => {
            if spec.jobs[*j].1 && !finally {
                return None;
            }
            let each = instances(spec, *j).into_iter().map(|name| match k {
                0 => Condition::Succeeded(name),
                1 => Condition::Failed(name),
                2 => Condition::Errored(name),
                3 => Condition::Skipped(name),
                4 => Condition::Cancelled(name),
                _ => Condition::Done(name),
            });
            let mut each: Vec<Condition> = each.collect();
            if each.len() == 1 {
                each.pop().expect("one")
            } else if *k == 1 {
                Condition::Any(each)
            } else {
                Condition::All(each)
            }
        }
    })
}

fn to_ir(spec: &Spec) -> (ir::Pipeline, Vec<String>) {
    let mut jobs = indexmap::IndexMap::new();
    let mut expanded = Vec::new();
    for (i, (k, finally, deps, tree)) in spec.jobs.iter().enumerate() {
        let depends_on: Vec<Dependency> = deps
            .iter()
            .filter(|(d, _)| *finally || !spec.jobs[*d].1)
            .flat_map(|&(d, failure)| {
                instances(spec, d).into_iter().map(move |job| Dependency {
                    job,
                    conditions: failure.then_some(DependencyConditions { failure: true }),
                })
            })
            .collect();
        let condition = tree.as_ref().and_then(|t| condition(spec, t, *finally));
        for name in instances(spec, i) {
            let mut job = ir::Job::new("busybox", "true");
            job.depends_on = depends_on.clone();
            job.condition = condition.clone();
            job.finally = *finally;
            if *k > 1 {
                job.group = Some(format!("j{i}"));
            }
            jobs.insert(name, job);
        }
        if *k > 1 && spec.expand[i] {
            expanded.push(format!("j{i}"));
        }
    }
    let p = ir::Pipeline {
        kind: ir::PipelineKind::Pipeline,
        name: None,
        description: None,
        fail_fast: false,
        concurrency: None,
        notify: Vec::new(),
        jobs,
    };
    (p, expanded)
}

/// Unchecked IR: any job may name any other (cycles, itself, jobs that are not there), groups
/// and `finally` flags at random.
fn garbage() -> impl Strategy<Value = ir::Pipeline> {
    (1usize..20).prop_flat_map(|n| {
        proptest::collection::vec(
            (
                proptest::collection::vec(0..n + 2, 0..4),
                proptest::option::weighted(0.3, tree(n + 2)),
                proptest::option::weighted(0.3, 0..3usize),
                proptest::bool::weighted(0.2),
            ),
            n,
        )
        .prop_map(|jobs| {
            let mut map = indexmap::IndexMap::new();
            for (i, (deps, tree, group, finally)) in jobs.into_iter().enumerate() {
                let mut job = ir::Job::new("busybox", "true");
                job.depends_on = deps
                    .into_iter()
                    .map(|d| Dependency {
                        job: format!("j{d}"),
                        conditions: None,
                    })
                    .collect();
                job.condition = tree.map(|t| raw_condition(&t));
                job.group = group.map(|g| format!("g{g}"));
                job.finally = finally;
                map.insert(format!("j{i}"), job);
            }
            ir::Pipeline {
                kind: ir::PipelineKind::Pipeline,
                name: None,
                description: None,
                fail_fast: false,
                concurrency: None,
                notify: Vec::new(),
                jobs: map,
            }
        })
    })
}

fn raw_condition(t: &Tree) -> Condition {
    match t {
        Tree::All(ts) => Condition::All(ts.iter().map(raw_condition).collect()),
        Tree::Any(ts) => Condition::Any(ts.iter().map(raw_condition).collect()),
        Tree::Not(t) => Condition::Not(Box::new(raw_condition(t))),
        Tree::Leaf(j, _) => Condition::Failed(format!("j{j}")),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 500, ..ProptestConfig::default() })]

    #[test]
    fn layout_invariants_hold_on_random_pipelines(spec in specs()) {
        let (p, expanded) = to_ir(&spec);
        let names: Vec<&str> = expanded.iter().map(String::as_str).collect();
        let l = layout(&p, &names);
        check(&p, &l);
        // Every reference between two nodes is an edge, once.
        let node_of: Vec<usize> = {
            let mut v = vec![0; p.jobs.len()];
            for n in &l.nodes {
                for &j in &n.jobs {
                    v[j] = n.id;
                }
            }
            v
        };
        let mut pairs: Vec<(usize, usize)> = l.edges.iter().map(|e| (e.from, e.to)).collect();
        let edges = pairs.len();
        pairs.sort_unstable();
        pairs.dedup();
        prop_assert_eq!(pairs.len(), edges);
        for (j, job) in p.jobs.values().enumerate() {
            for d in job.needs() {
                let from = node_of[p.jobs.get_index_of(d).unwrap()];
                if from != node_of[j] {
                    prop_assert!(pairs.binary_search(&(from, node_of[j])).is_ok());
                }
            }
        }
        // Groups collapse unless expanded.
        let groups = l.nodes.iter().filter(|n| n.kind == NodeKind::Group).count();
        let collapsed = spec.jobs.iter().zip(&spec.expand).filter(|((k, ..), e)| *k > 1 && !**e).count();
        prop_assert_eq!(groups, collapsed);
        prop_assert_eq!(layout(&p, &names), l);
    }

    #[test]
    fn layout_never_panics_on_unchecked_ir(p in garbage(), expand in proptest::collection::vec(0..3usize, 0..3)) {
        let expanded: Vec<String> = expand.iter().map(|g| format!("g{g}")).collect();
        let names: Vec<&str> = expanded.iter().map(String::as_str).collect();
        let l = layout(&p, &names);
        check_shape(&p, &l);
        prop_assert_eq!(layout(&p, &names), l);
    }
}
