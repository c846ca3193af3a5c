//! The layout of a pipeline's planned graph, for drawing: a layered (Sugiyama) layout, left to
//! right, so that a pipeline reads like a timeline: a job's column is the longest chain of
//! dependencies before it.
//!
//! 1. **Nodes**: one per job, except that the instances of a fan-out group are one node unless
//!    the group is expanded. `finally` jobs form a band of their own after every other job; the
//!    implicit "after every other job" of a `finally` job is not drawn, only its own conditions.
//! 2. **Edges**: from each dependency to its dependent (between nodes, once), labelled from the
//!    IR's condition types when the condition is more than success (`failed`, `done`, `||`, ...).
//! 3. **Layers** by longest path (cycles, which only unchecked IR can have, are broken by
//!    reversing DFS back edges); long edges pass through virtual points, one per layer they
//!    cross, so that they never cross a node.
//! 4. **Order** within layers by barycentre sweeps, down and up, keeping the order with the
//!    fewest crossings (counted with a Fenwick tree, O(E log V) per count) and stopping when the
//!    sweeps stop improving it; then neighbours are swapped where that removes crossings
//!    (transposition, a few linear passes).
//! 5. **Coordinates** across layers: each layer in turn is placed as close as it can be to the
//!    weighted mean of its neighbours in the layer before, then after, then both, keeping its
//!    order and the gaps between nodes: an isotonic regression solved exactly by pooling
//!    adjacent violators, linear in the layer's size. Edges between virtual points weigh most,
//!    so long edges run straight.
//!
//! Every step is linear or O(n log n) in nodes, edges and virtual points, and the number of
//! virtual points is bounded ([`MAX_VIRTUAL`]). Pure: no IO, no clock, no randomness; the same
//! pipeline gives the same layout, byte for byte.

use crate::scheduler::JobId;
use chainr_compiler::ir;
use chainr_compiler::outcome::OutcomeTest;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};

/// The width of every node, in layout units (the UI scales).
pub const NODE_WIDTH: i32 = 180;
/// The height of every node.
pub const NODE_HEIGHT: i32 = 36;
/// Between two columns (room for an edge's label).
const LAYER_GAP: i32 = 72;
/// Added before the band of `finally` jobs.
const BAND_GAP: i32 = 72;
/// Between two nodes of a column.
const NODE_GAP: f64 = 16.0;
/// Between an edge passing through a column and its neighbours.
const EDGE_GAP: f64 = 10.0;
/// At most this many virtual points, beyond a share per node and edge: an edge that would
/// take more (the longest ones first) is drawn straight from end to end, and may cross nodes.
pub const MAX_VIRTUAL: usize = 100_000;
/// At most this many rounds of ordering sweeps (one down and one up each).
const MAX_SWEEP_ROUNDS: usize = 12;
/// Passes of neighbour swaps after the sweeps, at most.
const TRANSPOSE_PASSES: usize = 8;
/// Rounds of coordinate placement (one down and one up each), before the last one that looks
/// both ways.
const PLACE_ROUNDS: usize = 4;

/// A pipeline's graph, laid out left to right. Node positions are their top-left corners; every
/// node is `nodeWidth` by `nodeHeight`. Units are whole and arbitrary (the UI scales them).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Layout {
    /// The extent of the drawing: every node and edge is within `0..width` and `0..height`.
    pub width: i32,
    pub height: i32,
    pub node_width: i32,
    pub node_height: i32,
    pub nodes: Vec<LNode>,
    pub edges: Vec<LEdge>,
}

/// One node: a job, or a collapsed fan-out group with its instances.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LNode {
    /// Its index in `nodes`, which edges name.
    pub id: usize,
    /// The jobs it stands for (indexes in the pipeline's `jobs`, as events name them): one, or
    /// the instances of a collapsed group.
    pub jobs: Vec<JobId>,
    /// The job's name, or the group's.
    pub name: String,
    /// `job` when absent.
    #[serde(default, skip_serializing_if = "NodeKind::is_job")]
    pub kind: NodeKind,
    /// The fan-out group its jobs are instances of: on a collapsed group, and on each instance
    /// of an expanded one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// In the band of `finally` jobs, after every other column (a `finally` job, or a collapsed
    /// group of them).
    #[serde(default, skip_serializing_if = "is_false")]
    pub finally: bool,
    /// Its column, from 0.
    pub layer: u32,
    pub x: i32,
    pub y: i32,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum NodeKind {
    /// One job.
    #[default]
    Job,
    /// A collapsed fan-out group: `jobs` are its instances.
    Group,
    /// One `finally` job.
    Finally,
}

impl NodeKind {
    fn is_job(&self) -> bool {
        *self == NodeKind::Job
    }
}

/// An edge from a dependency to its dependent. It leaves `from` in the middle of its right side
/// and enters `to` in the middle of its left side, through `points` in between.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LEdge {
    pub from: usize,
    pub to: usize,
    /// What the dependent asks of the dependency when it is more than success: an outcome
    /// (`failed`, `errored`, `skipped`, `cancelled`, `done`, several joined by `,`), negated
    /// with `!` (a bare `!` negates success), and `||` first when the dependency is one of
    /// alternatives (an any-of).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// The bends between the two ends, two per column crossed (where the edge enters and leaves
    /// it); none for an edge between neighbouring columns, nor for the rare long edge left
    /// straight when a graph would need too many bends ([`MAX_VIRTUAL`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub points: Vec<[i32; 2]>,
}

/// Figures about one layout, for tests and benchmarks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub layers: usize,
    /// Virtual points made for long edges.
    pub virtual_points: usize,
    /// Long edges drawn straight because of [`MAX_VIRTUAL`].
    pub unrouted: usize,
    /// Crossings between neighbouring columns, in the first order and in the one kept.
    pub crossings_before: u64,
    pub crossings: u64,
    /// Ordering sweeps made (down or up).
    pub sweeps: usize,
}

/// Lays out `pipeline`, with the fan-out groups named in `expanded` drawn job by job.
pub fn layout(pipeline: &ir::Pipeline, expanded: &[&str]) -> Layout {
    layout_with_stats(pipeline, expanded).0
}

/// [`layout`], with figures about how it went.
pub fn layout_with_stats(pipeline: &ir::Pipeline, expanded: &[&str]) -> (Layout, Stats) {
    let graph = Graph::new(pipeline, expanded);
    let mut stats = Stats::default();
    let layers = graph.layers();
    let mut net = Net::new(&graph, &layers, &mut stats);
    net.order(&mut stats);
    let y = net.place();
    stats.layers = net.layers.len();
    (net.finish(graph, &y), stats)
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// A node before it is placed.
struct Node {
    jobs: Vec<JobId>,
    name: String,
    kind: NodeKind,
    group: Option<String>,
    finally: bool,
}

/// An edge between nodes, with what its references ask.
struct Edge {
    from: usize,
    to: usize,
    /// One bit per (negated, test): see [`test_bit`].
    tests: u16,
    /// Some reference is one of alternatives.
    alternative: bool,
    /// The dependency (some job of it) has `allowFailure`.
    allow_failure: bool,
}

/// The nodes and edges to draw.
struct Graph {
    nodes: Vec<Node>,
    edges: Vec<Edge>,
}

impl Graph {
    fn new(pipeline: &ir::Pipeline, expanded: &[&str]) -> Graph {
        let expanded: HashSet<&str> = expanded.iter().copied().collect();
        let mut nodes: Vec<Node> = Vec::new();
        let mut node_of = Vec::with_capacity(pipeline.jobs.len());
        let mut groups: HashMap<(&str, bool), usize> = HashMap::new();
        for (i, (name, job)) in pipeline.jobs.iter().enumerate() {
            let single_kind = if job.finally {
                NodeKind::Finally
            } else {
                NodeKind::Job
            };
            let id = match job.group.as_deref() {
                Some(g) if !expanded.contains(g) => {
                    *groups.entry((g, job.finally)).or_insert_with(|| {
                        nodes.push(Node {
                            jobs: Vec::new(),
                            name: g.to_string(),
                            kind: NodeKind::Group,
                            group: Some(g.to_string()),
                            finally: job.finally,
                        });
                        nodes.len() - 1
                    })
                }
                group => {
                    nodes.push(Node {
                        jobs: Vec::new(),
                        name: name.clone(),
                        kind: single_kind,
                        group: group.map(str::to_string),
                        finally: job.finally,
                    });
                    nodes.len() - 1
                }
            };
            nodes[id].jobs.push(i);
            node_of.push(id);
        }
        let mut refs = Refs {
            pipeline,
            node_of: &node_of,
            dependent: 0,
            edges: Vec::new(),
            index: HashMap::new(),
        };
        for (i, job) in pipeline.jobs.values().enumerate() {
            refs.dependent = node_of[i];
            for d in &job.depends_on {
                let test = if d.on_failure() {
                    OutcomeTest::Failed
                } else {
                    OutcomeTest::Bare
                };
                refs.reference(&d.job, test, false, false);
            }
            if let Some(c) = &job.condition {
                refs.visit(c, false, false);
            }
        }
        Graph {
            nodes,
            edges: refs.edges,
        }
    }

    /// Each node's layer: the longest path to it, `finally` nodes after every other one.
    fn layers(&self) -> Vec<u32> {
        let n = self.nodes.len();
        let has_finally = self.nodes.iter().any(|x| x.finally);
        // A barrier after every other node and before every `finally` node, for layering only.
        let barrier = n;
        let vertices = n + usize::from(has_finally);
        // (from, to, length)
        let mut arcs: Vec<(usize, usize, u32)> = self
            .edges
            .iter()
            .map(|e| (e.from, e.to, 1))
            .collect::<Vec<_>>();
        if has_finally {
            for (i, node) in self.nodes.iter().enumerate() {
                arcs.push(if node.finally {
                    (barrier, i, 0)
                } else {
                    (i, barrier, 1)
                });
            }
        }
        let out = Csr::new(vertices, arcs.iter().map(|a| (a.0, a.1)));
        let back = back_arcs(&out);
        // The arcs, with back arcs turned around; a back arc of the barrier is dropped.
        let drawn = self.edges.len();
        let mut oriented: Vec<(usize, usize, u32)> = Vec::with_capacity(arcs.len());
        for (k, &(a, b, len)) in arcs.iter().enumerate() {
            if !back[out.place[k] as usize] {
                oriented.push((a, b, len));
            } else if k < drawn {
                oriented.push((b, a, len));
            }
        }
        longest_path(vertices, &oriented)[..n].to_vec()
    }
}

/// Walks conditions, gathering edges.
struct Refs<'a> {
    pipeline: &'a ir::Pipeline,
    node_of: &'a [usize],
    /// The node of the job whose condition is walked.
    dependent: usize,
    edges: Vec<Edge>,
    index: HashMap<(usize, usize), usize>,
}

impl Refs<'_> {
    /// `negated`: under an odd number of `!`; `alternative`: under a disjunction between
    /// several nodes.
    fn visit(&mut self, c: &ir::Condition, negated: bool, alternative: bool) {
        use ir::Condition as C;
        match c {
            C::All(cs) | C::Any(cs) => {
                // `!(a && b)` is `!a || !b`: what is a disjunction depends on the negations.
                let disjunction = matches!(c, C::Any(_)) != negated;
                let alternative = alternative || (disjunction && self.several_nodes(cs));
                for c in cs {
                    self.visit(c, negated, alternative);
                }
            }
            C::Not(c) => self.visit(c, !negated, alternative),
            C::Succeeded(j) => self.reference(j, OutcomeTest::Succeeded, negated, alternative),
            C::Failed(j) => self.reference(j, OutcomeTest::Failed, negated, alternative),
            C::Errored(j) => self.reference(j, OutcomeTest::Errored, negated, alternative),
            C::Skipped(j) => self.reference(j, OutcomeTest::Skipped, negated, alternative),
            C::Cancelled(j) => self.reference(j, OutcomeTest::Cancelled, negated, alternative),
            C::Done(j) => self.reference(j, OutcomeTest::Done, negated, alternative),
        }
    }

    /// Whether the conditions name jobs of more than one node (`shard.failed` is an any-of
    /// over the group's instances: one node while the group is collapsed).
    fn several_nodes(&self, cs: &[ir::Condition]) -> bool {
        let mut first = None;
        cs.iter().any(|c| self.another_node(c, &mut first))
    }

    fn another_node(&self, c: &ir::Condition, first: &mut Option<usize>) -> bool {
        use ir::Condition as C;
        let j = match c {
            C::All(cs) | C::Any(cs) => return cs.iter().any(|c| self.another_node(c, first)),
            C::Not(c) => return self.another_node(c, first),
            C::Succeeded(j)
            | C::Failed(j)
            | C::Errored(j)
            | C::Skipped(j)
            | C::Cancelled(j)
            | C::Done(j) => j,
        };
        let Some(i) = self.pipeline.jobs.get_index_of(j.as_str()) else {
            return false;
        };
        let node = self.node_of[i];
        match *first {
            None => {
                *first = Some(node);
                false
            }
            Some(f) => f != node,
        }
    }

    fn reference(&mut self, job: &str, test: OutcomeTest, negated: bool, alternative: bool) {
        // Unchecked IR may name a job that is not there: nothing to draw.
        let Some((i, _, dependency)) = self.pipeline.jobs.get_full(job) else {
            return;
        };
        let from = self.node_of[i];
        let to = self.dependent;
        if from == to {
            return;
        }
        let edges = &mut self.edges;
        let k = *self.index.entry((from, to)).or_insert_with(|| {
            edges.push(Edge {
                from,
                to,
                tests: 0,
                alternative: false,
                allow_failure: false,
            });
            edges.len() - 1
        });
        let e = &mut self.edges[k];
        e.tests |= test_bit(test, negated);
        e.alternative |= alternative;
        e.allow_failure |= dependency.allow_failure;
    }
}

/// The tests in the order labels write them (the order of the outcome words); a bare reference
/// counts as `succeeded`.
const TESTS: [OutcomeTest; 6] = OutcomeTest::NAMED;

fn test_bit(test: OutcomeTest, negated: bool) -> u16 {
    let t = if test == OutcomeTest::Bare {
        OutcomeTest::Succeeded
    } else {
        test
    };
    let i = TESTS.iter().position(|&x| x == t).unwrap_or(0);
    1 << (i + if negated { TESTS.len() } else { 0 })
}

/// An edge's label: `None` when it asks for success only.
fn label(e: &Edge) -> Option<String> {
    let all = (1u16 << TESTS.len()) - 1;
    let succeeded = test_bit(OutcomeTest::Succeeded, false);
    let mut positive = e.tests & all;
    let negative = (e.tests >> TESTS.len()) & all;
    // A bare reference to a job with `allowFailure`, spelled out (inside `||` or `!`):
    // `x.succeeded || x.failed || x.errored`.
    let bare_allowed =
        succeeded | test_bit(OutcomeTest::Failed, false) | test_bit(OutcomeTest::Errored, false);
    if e.allow_failure && positive == bare_allowed {
        positive = succeeded;
    }
    let mut words: Vec<String> = Vec::new();
    if positive != succeeded {
        for (i, t) in TESTS.iter().enumerate() {
            if positive & (1 << i) != 0 {
                words.push(t.word().unwrap_or_default().to_string());
            }
        }
    }
    if negative == succeeded && positive == 0 {
        words.push("!".to_string());
    } else {
        for (i, t) in TESTS.iter().enumerate() {
            if negative & (1 << i) != 0 {
                words.push(format!("!{}", t.word().unwrap_or_default()));
            }
        }
    }
    let words = words.join(",");
    match (e.alternative, words.is_empty()) {
        (false, true) => None,
        (false, false) => Some(words),
        (true, true) => Some("||".to_string()),
        (true, false) => Some(format!("|| {words}")),
    }
}

/// Adjacency in compressed rows: the targets of `v` are `targets[start[v]..start[v + 1]]`, in
/// the order the pairs came.
struct Csr {
    start: Vec<u32>,
    targets: Vec<u32>,
    /// For each pair in the order given, its place in `targets`.
    place: Vec<u32>,
}

impl Csr {
    fn new(n: usize, pairs: impl Iterator<Item = (usize, usize)> + Clone) -> Csr {
        let mut start = vec![0u32; n + 1];
        for (a, _) in pairs.clone() {
            start[a + 1] += 1;
        }
        for v in 0..n {
            start[v + 1] += start[v];
        }
        let mut fill = start.clone();
        let mut targets = vec![0u32; start[n] as usize];
        let mut place = Vec::with_capacity(targets.len());
        for (a, b) in pairs {
            let at = fill[a] as usize;
            targets[at] = b as u32;
            place.push(at as u32);
            fill[a] += 1;
        }
        Csr {
            start,
            targets,
            place,
        }
    }

    fn of(&self, v: usize) -> &[u32] {
        &self.targets[self.start[v] as usize..self.start[v + 1] as usize]
    }
}

/// Which arcs (by place in `targets`) close a cycle: the back arcs of a depth-first search
/// from each vertex in turn. Turning them around leaves a DAG.
fn back_arcs(out: &Csr) -> Vec<bool> {
    let n = out.start.len() - 1;
    // 0: unseen, 1: on the stack, 2: done.
    let mut state = vec![0u8; n];
    let mut back = vec![false; out.targets.len()];
    let mut stack: Vec<(usize, usize)> = Vec::new();
    for root in 0..n {
        if state[root] != 0 {
            continue;
        }
        state[root] = 1;
        stack.push((root, out.start[root] as usize));
        while let Some(top) = stack.last_mut() {
            let (v, at) = *top;
            if at == out.start[v + 1] as usize {
                state[v] = 2;
                stack.pop();
                continue;
            }
            top.1 += 1;
            let w = out.targets[at] as usize;
            match state[w] {
                0 => {
                    state[w] = 1;
                    stack.push((w, out.start[w] as usize));
                }
                1 => back[at] = true,
                _ => {}
            }
        }
    }
    back
}

/// Longest paths over a DAG of weighted arcs, from 0 at every source.
fn longest_path(n: usize, arcs: &[(usize, usize, u32)]) -> Vec<u32> {
    let out = Csr::new(n, arcs.iter().map(|a| (a.0, a.1)));
    let mut len = vec![0u32; out.targets.len()];
    for (k, a) in arcs.iter().enumerate() {
        len[out.place[k] as usize] = a.2;
    }
    let mut indegree = vec![0u32; n];
    for a in arcs {
        indegree[a.1] += 1;
    }
    let mut layer = vec![0u32; n];
    let mut ready: Vec<usize> = (0..n).filter(|&v| indegree[v] == 0).collect();
    while let Some(v) = ready.pop() {
        let row = out.start[v] as usize..out.start[v + 1] as usize;
        for (&w, &length) in out.targets[row.clone()].iter().zip(&len[row]) {
            let w = w as usize;
            layer[w] = layer[w].max(layer[v] + length);
            indegree[w] -= 1;
            if indegree[w] == 0 {
                ready.push(w);
            }
        }
    }
    layer
}

/// The layered network: the nodes and the virtual points of long edges, in layers, with the
/// segments between neighbouring layers.
struct Net {
    /// Nodes first (their ids), then virtual points.
    layer_of: Vec<u32>,
    real: usize,
    layers: Vec<Vec<u32>>,
    /// Segments to the layer after and the layer before.
    down: Csr,
    up: Csr,
    /// Per drawn edge: its first virtual point and how many (consecutive ids), and whether
    /// it was turned around (unchecked IR with a cycle).
    chains: Vec<(u32, u32, bool)>,
    /// The first layer of the `finally` band, if there is one.
    band: Option<u32>,
}

impl Net {
    fn new(graph: &Graph, layer: &[u32], stats: &mut Stats) -> Net {
        let real = graph.nodes.len();
        let mut layer_of: Vec<u32> = layer.to_vec();
        // Each edge from its earlier end to its later one.
        let spans: Vec<(usize, usize, bool)> = graph
            .edges
            .iter()
            .map(|e| {
                if layer[e.from] < layer[e.to] {
                    (e.from, e.to, false)
                } else {
                    (e.to, e.from, true)
                }
            })
            .collect();
        let needed = |&(a, b, _): &(usize, usize, bool)| (layer[b] - layer[a]) as usize - 1;
        let total: usize = spans.iter().map(needed).sum();
        let budget = MAX_VIRTUAL + 4 * (real + graph.edges.len());
        let mut routed = vec![true; spans.len()];
        if total > budget {
            // The shortest edges first.
            let mut by_span: Vec<usize> = (0..spans.len()).collect();
            by_span.sort_by_key(|&k| (needed(&spans[k]), k));
            let mut left = budget;
            for k in by_span {
                let need = needed(&spans[k]);
                if need > left {
                    routed[k] = false;
                    stats.unrouted += 1;
                } else {
                    left -= need;
                }
            }
        }
        let mut segments: Vec<(usize, usize)> = Vec::new();
        let mut chains = Vec::with_capacity(spans.len());
        for (k, &(a, b, reversed)) in spans.iter().enumerate() {
            let first = layer_of.len();
            if routed[k] {
                let mut prev = a;
                for l in layer[a] + 1..layer[b] {
                    let v = layer_of.len();
                    layer_of.push(l);
                    segments.push((prev, v));
                    prev = v;
                }
                segments.push((prev, b));
            } else if layer[b] == layer[a] + 1 {
                segments.push((a, b));
            }
            chains.push((first as u32, (layer_of.len() - first) as u32, reversed));
        }
        stats.virtual_points = layer_of.len() - real;
        let vertices = layer_of.len();
        let depth = layer_of.iter().max().map_or(0, |&l| l as usize + 1);
        let mut layers: Vec<Vec<u32>> = vec![Vec::new(); depth];
        for (v, &l) in layer_of.iter().enumerate() {
            layers[l as usize].push(v as u32);
        }
        let down = Csr::new(vertices, segments.iter().copied());
        let up = Csr::new(vertices, segments.iter().map(|&(a, b)| (b, a)));
        let band = graph
            .nodes
            .iter()
            .zip(layer)
            .filter(|(n, _)| n.finally)
            .map(|(_, &l)| l)
            .min()
            .filter(|&l| l > 0);
        Net {
            layer_of,
            real,
            layers,
            down,
            up,
            chains,
            band,
        }
    }

    /// Orders every layer by barycentre sweeps, keeping the order with the fewest crossings.
    fn order(&mut self, stats: &mut Stats) {
        let mut pos = vec![0u32; self.layer_of.len()];
        for layer in &self.layers {
            for (i, &v) in layer.iter().enumerate() {
                pos[v as usize] = i as u32;
            }
        }
        let mut fenwick = Vec::new();
        let mut best = self.crossings(&pos, &mut fenwick);
        stats.crossings_before = best;
        let mut best_layers = self.layers.clone();
        let mut stale = 0;
        let mut keyed = Vec::new();
        let mut sorted = Sorted::default();
        for _ in 0..MAX_SWEEP_ROUNDS {
            if best == 0 {
                break;
            }
            let mut improved = false;
            for downwards in [true, false] {
                let depth = self.layers.len();
                let (adj, sequence): (&Csr, Vec<usize>) = if downwards {
                    (&self.up, (1..depth).collect())
                } else {
                    (&self.down, (0..depth.saturating_sub(1)).rev().collect())
                };
                for l in sequence {
                    sort_by_barycentre(&mut self.layers[l], adj, &mut pos, &mut keyed);
                }
                stats.sweeps += 1;
                let c = self.crossings(&pos, &mut fenwick);
                if c < best {
                    best = c;
                    best_layers.clone_from(&self.layers);
                    improved = true;
                }
            }
            if improved {
                stale = 0;
            } else {
                stale += 1;
                if stale == 2 {
                    break;
                }
            }
        }
        self.layers = best_layers;
        for layer in &self.layers {
            for (i, &v) in layer.iter().enumerate() {
                pos[v as usize] = i as u32;
            }
        }
        if best > 0 {
            self.transpose(&mut pos, &mut sorted);
            best = self.crossings(&pos, &mut fenwick);
        }
        stats.crossings = best;
    }

    /// Swaps neighbours in each layer, left to right, where that removes crossings (between
    /// their segments and those of their neighbours, above and below); [`TRANSPOSE_PASSES`]
    /// passes over every layer at most. A swap changes only crossings between the two.
    fn transpose(&mut self, pos: &mut [u32], s: &mut Sorted) {
        for _ in 0..TRANSPOSE_PASSES {
            let mut improved = false;
            for l in 0..self.layers.len() {
                if self.layers[l].len() < 2 {
                    continue;
                }
                // The positions of each vertex's neighbours, sorted: those above, then below.
                s.ends.clear();
                s.range.clear();
                for &v in &self.layers[l] {
                    let a = s.ends.len();
                    s.ends
                        .extend(self.up.of(v as usize).iter().map(|&w| pos[w as usize]));
                    s.ends[a..].sort_unstable();
                    let b = s.ends.len();
                    s.ends
                        .extend(self.down.of(v as usize).iter().map(|&w| pos[w as usize]));
                    s.ends[b..].sort_unstable();
                    s.range.push((a as u32, b as u32, s.ends.len() as u32));
                }
                // `order[i]`: which vertex (by its place before this pass) is at `i` now.
                s.order.clear();
                s.order.extend(0..self.layers[l].len() as u32);
                let layer = &mut self.layers[l];
                for i in 0..layer.len() - 1 {
                    let (x, y) = (
                        s.range[s.order[i] as usize],
                        s.range[s.order[i + 1] as usize],
                    );
                    let span = |r: (u32, u32, u32), up: bool| {
                        if up {
                            &s.ends[r.0 as usize..r.1 as usize]
                        } else {
                            &s.ends[r.1 as usize..r.2 as usize]
                        }
                    };
                    let (mut kept, mut swapped) = (0u64, 0u64);
                    for up in [true, false] {
                        let (k, w) = pair_crossings(span(x, up), span(y, up));
                        kept += k;
                        swapped += w;
                    }
                    if swapped < kept {
                        layer.swap(i, i + 1);
                        s.order.swap(i, i + 1);
                        pos[layer[i] as usize] = i as u32;
                        pos[layer[i + 1] as usize] = i as u32 + 1;
                        improved = true;
                    }
                }
            }
            if !improved {
                break;
            }
        }
    }

    /// Crossings between every two neighbouring layers: inversions among the segments' lower
    /// ends, taken in the order of their upper ends.
    fn crossings(&self, pos: &[u32], fenwick: &mut Vec<u32>) -> u64 {
        let mut total = 0u64;
        let mut ends: Vec<u32> = Vec::new();
        for l in 0..self.layers.len().saturating_sub(1) {
            ends.clear();
            for &v in &self.layers[l] {
                let from = ends.len();
                ends.extend(self.down.of(v as usize).iter().map(|&w| pos[w as usize]));
                ends[from..].sort_unstable();
            }
            let size = self.layers[l + 1].len();
            fenwick.clear();
            fenwick.resize(size + 1, 0);
            for (seen, &p) in ends.iter().enumerate() {
                // How many ends seen so far are at or before p.
                let mut i = p as usize + 1;
                let mut at_or_before = 0u32;
                while i > 0 {
                    at_or_before += fenwick[i];
                    i &= i - 1;
                }
                total += (seen as u32 - at_or_before) as u64;
                let mut i = p as usize + 1;
                while i <= size {
                    fenwick[i] += 1;
                    i += i & i.wrapping_neg();
                }
            }
        }
        total
    }

    /// Half the height of a vertex: nodes have one, virtual points none.
    fn half(&self, v: u32) -> f64 {
        if (v as usize) < self.real {
            NODE_HEIGHT as f64 / 2.0
        } else {
            0.0
        }
    }

    /// The least distance between the centres of two neighbours in a layer.
    fn separation(&self, a: u32, b: u32) -> f64 {
        let gap = if (a as usize) < self.real && (b as usize) < self.real {
            NODE_GAP
        } else {
            EDGE_GAP
        };
        self.half(a) + gap + self.half(b)
    }

    /// Cross-axis coordinates (centres) of every node and virtual point.
    fn place(&self) -> Vec<f64> {
        let n = self.layer_of.len();
        // Each layer's offsets: where each vertex would be, packed from 0.
        let mut offsets: Vec<Vec<f64>> = Vec::with_capacity(self.layers.len());
        let mut y = vec![0.0f64; n];
        for layer in &self.layers {
            let mut o = Vec::with_capacity(layer.len());
            let mut at = 0.0;
            for (i, &v) in layer.iter().enumerate() {
                if i > 0 {
                    at += self.separation(layer[i - 1], v);
                }
                o.push(at);
            }
            // Centred on 0 to begin with.
            for (i, &v) in layer.iter().enumerate() {
                y[v as usize] = o[i] - at / 2.0;
            }
            offsets.push(o);
        }
        let mut scratch = Scratch::default();
        let depth = self.layers.len();
        for _ in 0..PLACE_ROUNDS {
            for l in 1..depth {
                self.place_layer(l, &offsets, &[&self.up], &mut y, &mut scratch);
            }
            for l in (0..depth.saturating_sub(1)).rev() {
                self.place_layer(l, &offsets, &[&self.down], &mut y, &mut scratch);
            }
        }
        for l in 0..depth {
            self.place_layer(l, &offsets, &[&self.up, &self.down], &mut y, &mut scratch);
        }
        self.straighten(&mut y);
        y
    }

    /// Levels the virtual points of each long edge where their neighbours leave room, so that
    /// it runs straight through the columns it crosses.
    fn straighten(&self, y: &mut [f64]) {
        let mut index = vec![0u32; self.layer_of.len()];
        for layer in &self.layers {
            for (i, &v) in layer.iter().enumerate() {
                index[v as usize] = i as u32;
            }
        }
        for &(first, count, _) in &self.chains {
            if count < 2 {
                continue;
            }
            let (mut lo, mut hi, mut sum) = (f64::NEG_INFINITY, f64::INFINITY, 0.0);
            for v in first..first + count {
                let layer = &self.layers[self.layer_of[v as usize] as usize];
                let i = index[v as usize] as usize;
                if i > 0 {
                    let prev = layer[i - 1];
                    lo = lo.max(y[prev as usize] + self.separation(prev, v));
                }
                if let Some(&next) = layer.get(i + 1) {
                    hi = hi.min(y[next as usize] - self.separation(v, next));
                }
                sum += y[v as usize];
            }
            if lo <= hi {
                let level = (sum / count as f64).clamp(lo, hi);
                for v in first..first + count {
                    y[v as usize] = level;
                }
            }
        }
    }

    /// Places layer `l` as near as its order and gaps allow to the weighted mean of its
    /// neighbours through `adj`.
    fn place_layer(
        &self,
        l: usize,
        offsets: &[Vec<f64>],
        adj: &[&Csr],
        y: &mut [f64],
        s: &mut Scratch,
    ) {
        let layer = &self.layers[l];
        s.target.clear();
        s.weight.clear();
        for &v in layer {
            let v = v as usize;
            let (mut sum, mut weight) = (0.0, 0.0);
            for a in adj {
                for &w in a.of(v) {
                    let w = w as usize;
                    // Straight long edges matter most.
                    let omega = match (v >= self.real, w >= self.real) {
                        (true, true) => 8.0,
                        (false, false) => 1.0,
                        _ => 2.0,
                    };
                    sum += omega * y[w];
                    weight += omega;
                }
            }
            if weight == 0.0 {
                // Nothing pulls it: it stays unless pushed.
                s.target.push(y[v]);
                s.weight.push(0.01);
            } else {
                s.target.push(sum / weight);
                s.weight.push(weight);
            }
        }
        // With z[i] = y[i] - offsets[i], the gaps hold when z is non-decreasing: the nearest
        // such z (weighted least squares) pools adjacent violators.
        s.blocks.clear();
        let offsets = &offsets[l];
        for ((&w, &target), &offset) in s.weight.iter().zip(&s.target).zip(offsets) {
            let mut block = Block {
                weight: w,
                sum: w * (target - offset),
                len: 1,
            };
            while let Some(last) = s.blocks.last() {
                if last.sum * block.weight < block.sum * last.weight {
                    break;
                }
                block.weight += last.weight;
                block.sum += last.sum;
                block.len += last.len;
                s.blocks.pop();
            }
            s.blocks.push(block);
        }
        let mut i = 0;
        for b in &s.blocks {
            let z = b.sum / b.weight;
            for _ in 0..b.len {
                y[layer[i] as usize] = z + offsets[i];
                i += 1;
            }
        }
    }

    fn column_x(&self, layer: u32) -> i32 {
        let band = match self.band {
            Some(b) if layer >= b => BAND_GAP,
            _ => 0,
        };
        layer as i32 * (NODE_WIDTH + LAYER_GAP) + band
    }

    fn finish(&self, graph: Graph, y: &[f64]) -> Layout {
        let half = NODE_HEIGHT as f64 / 2.0;
        let (mut top, mut bottom) = (f64::INFINITY, f64::NEG_INFINITY);
        for (v, &c) in y.iter().enumerate() {
            let h = if v < self.real { half } else { 0.0 };
            top = top.min(c - h);
            bottom = bottom.max(c + h);
        }
        if y.is_empty() {
            (top, bottom) = (0.0, 0.0);
        }
        let at = |c: f64| (c - top).round() as i32;
        let nodes: Vec<LNode> = graph
            .nodes
            .into_iter()
            .enumerate()
            .map(|(id, n)| LNode {
                id,
                jobs: n.jobs,
                name: n.name,
                kind: n.kind,
                group: n.group,
                finally: n.finally,
                layer: self.layer_of[id],
                x: self.column_x(self.layer_of[id]),
                y: at(y[id] - half),
            })
            .collect();
        let edges: Vec<LEdge> = graph
            .edges
            .iter()
            .zip(&self.chains)
            .map(|(e, &(first, count, reversed))| {
                let mut points = Vec::with_capacity(2 * count as usize);
                for v in first..first + count {
                    let x = self.column_x(self.layer_of[v as usize]);
                    let py = at(y[v as usize]);
                    points.push([x, py]);
                    points.push([x + NODE_WIDTH, py]);
                }
                if reversed {
                    points.reverse();
                }
                LEdge {
                    from: e.from,
                    to: e.to,
                    label: label(e),
                    points,
                }
            })
            .collect();
        let width = self
            .layers
            .len()
            .checked_sub(1)
            .map_or(0, |last| self.column_x(last as u32) + NODE_WIDTH);
        Layout {
            width,
            height: (bottom - top).round() as i32,
            node_width: NODE_WIDTH,
            node_height: NODE_HEIGHT,
            nodes,
            edges,
        }
    }
}

/// Buffers of [`Net::transpose`].
#[derive(Default)]
struct Sorted {
    ends: Vec<u32>,
    /// Per vertex of the layer: where its neighbours above start, below start, and end.
    range: Vec<(u32, u32, u32)>,
    order: Vec<u32>,
}

/// The crossings between the segments of two neighbours of a layer, given the sorted
/// positions of their other ends in one neighbouring layer: with `a` first, and with `b`
/// first. Linear in the two lists.
fn pair_crossings(a: &[u32], b: &[u32]) -> (u64, u64) {
    // With a first, x of a and y of b cross when y < x; with b first, when x < y.
    let (mut a_first, mut b_first) = (0u64, 0u64);
    let mut j = 0;
    for &x in a {
        while j < b.len() && b[j] < x {
            j += 1;
        }
        a_first += j as u64;
    }
    let mut i = 0;
    for &y in b {
        while i < a.len() && a[i] < y {
            i += 1;
        }
        b_first += i as u64;
    }
    (a_first, b_first)
}

#[derive(Default)]
struct Scratch {
    target: Vec<f64>,
    weight: Vec<f64>,
    blocks: Vec<Block>,
}

struct Block {
    weight: f64,
    sum: f64,
    len: usize,
}

/// Sorts a layer by the mean position of each vertex's neighbours through `adj`; a vertex
/// without any keeps its place.
fn sort_by_barycentre(layer: &mut [u32], adj: &Csr, pos: &mut [u32], keyed: &mut Vec<(f64, u32)>) {
    keyed.clear();
    for &v in layer.iter() {
        let ns = adj.of(v as usize);
        if !ns.is_empty() {
            let sum: u64 = ns.iter().map(|&w| pos[w as usize] as u64).sum();
            keyed.push((sum as f64 / ns.len() as f64, v));
        }
    }
    if keyed.is_empty() {
        return;
    }
    keyed.sort_by(|a, b| {
        a.0.total_cmp(&b.0)
            .then(pos[a.1 as usize].cmp(&pos[b.1 as usize]))
    });
    let mut next = keyed.iter();
    for slot in layer.iter_mut() {
        if !adj.of(*slot as usize).is_empty() {
            if let Some(&(_, v)) = next.next() {
                *slot = v;
            }
        }
    }
    for (i, &v) in layer.iter().enumerate() {
        pos[v as usize] = i as u32;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pair_crossings_counts_both_orders() {
        // a's segments end at 0 and 2, b's at 1: a first, 2 crosses 1; b first, 0 crosses 1.
        assert_eq!(pair_crossings(&[0, 2], &[1]), (1, 1));
        assert_eq!(pair_crossings(&[3, 4], &[0, 1]), (4, 0));
        // A shared end crosses nothing either way.
        assert_eq!(pair_crossings(&[1], &[1]), (0, 0));
        assert_eq!(pair_crossings(&[], &[1, 2]), (0, 0));
        assert_eq!(pair_crossings(&[0, 1, 1, 5], &[1, 3]), (2, 1 + 3));
    }
}
