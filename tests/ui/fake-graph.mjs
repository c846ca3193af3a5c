// A stand-in for the server's graph layout (`GET /api/runs/{uid}/graph`), in its shape
// ({width, height, nodes, edges}), for the tests to use while the server has no such route:
// layers by longest path, jobs of a fan-out group as one node unless expanded, straight
// edges. Not a layout anyone should look at for long; the UI draws whatever it is given.

const W = 180;
const H = 48;
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
        node = { id: `group:${g}`, jobs: [], name: g, kind: 'group', layer: layerOf[i] };
        byGroup.set(g, node);
        nodes.push(node);
      }
      node.jobs.push(i);
      node.layer = Math.max(node.layer, layerOf[i]);
      nodeOf[i] = node;
    } else {
      const node = { id: `job:${i}`, jobs: [i], name, kind: job.finally ? 'finally' : 'job', layer: layerOf[i] };
      nodes.push(node);
      nodeOf[i] = node;
    }
  });
  const rows = new Map();
  for (const n of nodes) {
    const row = rows.get(n.layer) || 0;
    rows.set(n.layer, row + 1);
    Object.assign(n, { x: GAP_X / 2 + n.layer * (W + GAP_X), y: GAP_Y + row * (H + GAP_Y), w: W, h: H });
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
      const x0 = from.x + from.w;
      const y0 = from.y + from.h / 2;
      const x1 = to.x;
      const y1 = to.y + to.h / 2;
      const mid = (x0 + x1) / 2;
      const edge = { from: from.id, to: to.id, points: [[x0, y0], [mid, y0], [mid, y1], [x1, y1]] };
      if (label) edge.label = label;
      edges.push(edge);
    }
  });
  const width = Math.max(...nodes.map((n) => n.x + n.w), 0) + GAP_X / 2;
  const height = Math.max(...nodes.map((n) => n.y + n.h), 0) + GAP_Y;
  return { width, height, nodes, edges };
}
