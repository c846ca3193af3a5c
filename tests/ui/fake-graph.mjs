// A stand-in for the server's graph layout (`GET /api/runs/{uid}/graph`), in its shape
// ({width, height, nodeWidth, nodeHeight, nodes: [{id, jobs, name, kind?, group?, finally?,
// layer, x, y}], edges: [{from, to, label?, points: the bends}]}), for the tests to use while
// the server has no such route: layers by longest path, `finally` jobs in a column after the
// others, jobs of a fan-out group as one node unless expanded, no ordering. Not a layout anyone
// should look at for long; the UI draws whatever it is given.

const W = 180;
const H = 36;
const GAP_X = 80;
const GAP_Y = 24;

/** What each condition names, with the edge label the contract gives it. */
function references(condition, label, out) {
  if (!condition || typeof condition !== 'object') return;
  const [kind, value] = Object.entries(condition)[0];
  switch (kind) {
    case 'all':
      for (const c of value) references(c, label, out);
      break;
    case 'any':
      for (const c of value) references(c, label || '||', out);
      break;
    case 'not':
      references(value, '!', out);
      break;
    case 'succeeded':
      out.push([value, label]);
      break;
    case 'failed':
    case 'done':
    case 'skipped':
      out.push([value, label || kind]);
      break;
    default:
      out.push([value, label]);
  }
}

export function fakeGraph(pipeline, expand = []) {
  const names = Object.keys(pipeline.jobs);
  const index = new Map(names.map((n, i) => [n, i]));
  const parents = names.map(() => []);
  names.forEach((name, i) => {
    const job = pipeline.jobs[name];
    for (const d of job.dependsOn || []) {
      parents[i].push([index.get(d.job), d.conditions && d.conditions.failure ? 'failed' : undefined]);
    }
    const refs = [];
    references(job.condition, undefined, refs);
    for (const [n, label] of refs) parents[i].push([index.get(n), label]);
  });
  // Longest path from the jobs that wait for nothing.
  const layerOf = new Array(names.length).fill(-1);
  const visit = (i) => {
    if (layerOf[i] >= 0) return layerOf[i];
    layerOf[i] = 0;
    let l = 0;
    for (const [p] of parents[i]) if (p !== undefined) l = Math.max(l, visit(p) + 1);
    layerOf[i] = l;
    return l;
  };
  names.forEach((_, i) => visit(i));
  const last = Math.max(0, ...names.map((n, i) => (pipeline.jobs[n].finally ? 0 : layerOf[i])));
  names.forEach((n, i) => {
    if (pipeline.jobs[n].finally) layerOf[i] += last + 1;
  });
  // Nodes: one per job, or one per collapsed group.
  const nodeOf = [];
  const nodes = [];
  const byGroup = new Map();
  names.forEach((name, i) => {
    const job = pipeline.jobs[name];
    const g = job.group;
    if (g && !expand.includes(g)) {
      let node = byGroup.get(g);
      if (!node) {
        node = { id: nodes.length, jobs: [], name: g, kind: 'group', group: g, layer: layerOf[i] };
        if (job.finally) node.finally = true;
        byGroup.set(g, node);
        nodes.push(node);
      }
      node.jobs.push(i);
      node.layer = Math.max(node.layer, layerOf[i]);
      nodeOf[i] = node;
    } else {
      const node = { id: nodes.length, jobs: [i], name, layer: layerOf[i] };
      if (job.finally) Object.assign(node, { kind: 'finally', finally: true });
      if (g) node.group = g;
      nodes.push(node);
      nodeOf[i] = node;
    }
  });
  const rows = new Map();
  for (const n of nodes) {
    const row = rows.get(n.layer) || 0;
    rows.set(n.layer, row + 1);
    Object.assign(n, { x: GAP_X / 2 + n.layer * (W + GAP_X), y: GAP_Y + row * (H + GAP_Y) });
  }
  const edges = [];
  const seen = new Set();
  names.forEach((_, i) => {
    for (const [p, label] of parents[i]) {
      if (p === undefined) continue;
      const from = nodeOf[p];
      const to = nodeOf[i];
      const key = `${from.id}>${to.id}>${label || ''}`;
      if (from === to || seen.has(key)) continue;
      seen.add(key);
      // The bends only: the ends are the middles of the source's right and the target's left.
      const mid = Math.round((from.x + W + to.x) / 2);
      const edge = { from: from.id, to: to.id, points: [[mid, from.y + H / 2], [mid, to.y + H / 2]] };
      if (label) edge.label = label;
      edges.push(edge);
    }
  });
  const width = Math.max(...nodes.map((n) => n.x + W), 0) + GAP_X / 2;
  const height = Math.max(...nodes.map((n) => n.y + H), 0) + GAP_Y;
  return { width, height, nodeWidth: W, nodeHeight: H, nodes, edges };
}
