// A run's graph: the layout the server computes once per run (`GET /api/runs/{uid}/graph`,
// nodes and routed edges in one coordinate space), drawn on a canvas, with only what is on
// screen costing anything: each frame draws the nodes and edges that cross the viewport, and
// focusable elements exist only for the nodes on screen (each named "JOB: STATUS"; Enter opens
// its panel). Pan by dragging or scrolling, zoom with Ctrl+scroll or the buttons, arrow keys
// move between jobs, "Find job" brings any job into view.

import { api, link, runPath } from './api.js';
import { h, replace, announce, perFrame } from './dom.js';
import { countByStatus, countsText, duration, elapsed } from './format.js';

/** Focusable elements are made for at most this many nodes on screen at once. */
const MAX_DOM_NODES = 1500;
const MIN_SCALE = 0.002;
const MAX_SCALE = 3;
/** Below this scale nodes are drawn as boxes without text. */
const TEXT_SCALE = 0.3;
const MARGIN = 24;
/** The state a group node shows when its instances differ: the first found in this order. */
const GROUP_PRECEDENCE = ['RUNNING', 'FAILED', 'ERRORED', 'CANCELLED', 'PENDING', 'SKIPPED', 'SUCCESSFUL'];

/**
 * Makes the graph view inside `root`. `getRun()` answers the current Run document;
 * `selected()` the job whose panel is open. Answers {update(), select(jobName), focusJob(jobName), stop()}.
 */
export function createGraph(root, { uid, getRun, selected }) {
  const findInput = h('input', {
    type: 'search',
    id: 'find-job',
    'aria-label': 'Find job',
    placeholder: 'Find job',
    list: 'job-names',
    autocomplete: 'off',
  });
  const names = h('datalist', { id: 'job-names' });
  const zoomOut = h('button', { type: 'button', 'aria-label': 'Zoom out', title: 'Zoom out (-)' }, '−');
  const zoomIn = h('button', { type: 'button', 'aria-label': 'Zoom in', title: 'Zoom in (+)' }, '+');
  const fitButton = h('button', { type: 'button', title: 'Fit the graph to the view (0)' }, 'Fit');
  const info = h('span', { class: 'muted', 'aria-live': 'polite' });
  const canvas = h('canvas', { 'aria-hidden': 'true' });
  const layer = h('div', { class: 'layer', role: 'group', 'aria-label': 'Jobs on screen' });
  const hint = h('p', { class: 'hint', 'aria-live': 'polite' });
  const stage = h(
    'div',
    {
      class: 'graph',
      tabindex: '0',
      role: 'group',
      'aria-label': 'Graph. Arrow keys pan, plus and minus zoom; Tab reaches the jobs on screen.',
    },
    canvas,
    layer,
    hint,
  );
  replace(
    root,
    h(
      'div',
      { class: 'graphbar' },
      findInput,
      names,
      zoomOut,
      zoomIn,
      fitButton,
      info,
    ),
    stage,
  );

  let layout = null;
  let nodes = [];
  const byId = new Map();
  /** The node that holds each job (by index in the Run document). */
  let nodeOfJob = [];
  const expanded = new Set();
  let view = { s: 1, tx: MARGIN, ty: MARGIN };
  let size = { w: 0, h: 0 };
  let selectedId = null;
  let stopped = false;
  let drawnOnce = false;
  const elements = new Map();
  let colours = readColours();

  // ---- Loading the layout ----

  async function load() {
    const q = new URLSearchParams();
    for (const g of expanded) q.append('expand', g);
    const qs = q.toString();
    try {
      layout = await api(runPath(uid, `/graph${qs ? `?${qs}` : ''}`));
    } catch (e) {
      layout = null;
      nodes = [];
      hint.textContent = `The graph could not be read: ${e.message}`;
      draw();
      return false;
    }
    normalize(layout);
    nodes = layout.nodes;
    byId.clear();
    for (const n of nodes) byId.set(n.key, n);
    nodeOfJob = [];
    for (const n of nodes) for (const j of n.jobs) nodeOfJob[j] = n;
    for (const el of elements.values()) el.remove();
    elements.clear();
    const run = getRun();
    replace(names);
    info.textContent = `${run.jobs.length} job${run.jobs.length === 1 ? '' : 's'}`;
    return true;
  }

  /**
   * Fills in what a layout may leave implicit: every node's size (or the layout's one size,
   * `nodeWidth` and `nodeHeight`), its kind (`job` when absent; `finally: true` marks a finally
   * job), and each edge's ends (an edge leaves its source in the middle of the right side and
   * enters its target in the middle of the left side; `points` may hold only the bends).
   */
  function normalize(l) {
    const byKey = new Map();
    for (const n of l.nodes) {
      n.key = String(n.id);
      n.w = n.w ?? l.nodeWidth ?? 180;
      n.h = n.h ?? l.nodeHeight ?? 40;
      n.kind = n.kind || 'job';
      if (n.kind === 'job' && n.finally) n.kind = 'finally';
      byKey.set(n.key, n);
    }
    for (const e of l.edges) {
      const from = byKey.get(String(e.from));
      const to = byKey.get(String(e.to));
      const points = (e.points || []).map(([x, y]) => [x, y]);
      const same = (p, x, y) => p && Math.abs(p[0] - x) < 0.5 && Math.abs(p[1] - y) < 0.5;
      if (from) {
        const [x, y] = [from.x + from.w, from.y + from.h / 2];
        if (!same(points[0], x, y)) points.unshift([x, y]);
      }
      if (to) {
        const [x, y] = [to.x, to.y + to.h / 2];
        if (!same(points[points.length - 1], x, y)) points.push([x, y]);
      }
      e.points = points;
      let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
      for (const [x, y] of points) {
        x0 = Math.min(x0, x); y0 = Math.min(y0, y); x1 = Math.max(x1, x); y1 = Math.max(y1, y);
      }
      e.box = [x0, y0, x1, y1];
      e.kind = edgeKind(e.label);
    }
  }

  // ---- What a node says ----

  function statusOf(node) {
    const run = getRun();
    if (node.kind !== 'group') {
      const job = run.jobs[node.jobs[0]];
      return job ? job.status : 'PENDING';
    }
    const present = new Set(node.jobs.map((j) => run.jobs[j] && run.jobs[j].status));
    return GROUP_PRECEDENCE.find((s) => present.has(s)) || 'PENDING';
  }

  function groupCounts(node) {
    const run = getRun();
    return countByStatus(node.jobs.map((j) => run.jobs[j]).filter(Boolean));
  }

  /** The node's accessible name: "JOB: STATUS", or a group's counts. */
  function nameOf(node) {
    if (node.kind === 'group') {
      return `${node.name}: group of ${node.jobs.length} jobs, ${countsText(groupCounts(node))}`;
    }
    return `${node.name}: ${statusOf(node)}`;
  }

  /** The second line of a node: status, attempts, time. */
  function detailOf(node) {
    const run = getRun();
    if (node.kind === 'group') {
      return `${node.jobs.length} jobs · ${countsText(groupCounts(node))}`;
    }
    const job = run.jobs[node.jobs[0]];
    if (!job) return '';
    const parts = [job.status.toLowerCase()];
    const n = job.attempts.length;
    if (n > 1) parts.push(`${n} attempts`);
    const t = elapsed(job.startedAt, job.finishedAt);
    if (t !== null) parts.push(duration(t));
    if (node.kind === 'finally') parts.push('finally');
    return parts.join(' · ');
  }

  // ---- Drawing ----

  function readColours() {
    const css = getComputedStyle(document.documentElement);
    const v = (name) => css.getPropertyValue(name).trim();
    const byStatus = {};
    for (const s of GROUP_PRECEDENCE) {
      const k = s.toLowerCase();
      byStatus[s] = { solid: v(`--c-${k}`), text: v(`--t-${k}`), tint: v(`--bg-${k}`) };
    }
    return {
      byStatus,
      fg: v('--fg'),
      muted: v('--muted'),
      edge: v('--edge'),
      bg: v('--bg'),
      focus: v('--focus'),
      raised: v('--raised'),
      sans: v('--sans') || 'sans-serif',
    };
  }

  function visibleBox() {
    const { s, tx, ty } = view;
    return [-tx / s, -ty / s, (size.w - tx) / s, (size.h - ty) / s];
  }

  function intersects(a, b) {
    return a[0] <= b[2] && a[2] >= b[0] && a[1] <= b[3] && a[3] >= b[1];
  }

  const truncated = new Map();
  function fit(ctx, text, width, font) {
    const key = `${font}|${width}|${text}`;
    let t = truncated.get(key);
    if (t !== undefined) return t;
    t = text;
    if (ctx.measureText(t).width > width) {
      while (t.length > 1 && ctx.measureText(`${t}…`).width > width) t = t.slice(0, -1);
      t = `${t}…`;
    }
    if (truncated.size > 50_000) truncated.clear();
    truncated.set(key, t);
    return t;
  }

  function draw() {
    if (stopped) return;
    const dpr = window.devicePixelRatio || 1;
    const ctx = canvas.getContext('2d');
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    if (!layout) return;
    const { s, tx, ty } = view;
    ctx.setTransform(dpr * s, 0, 0, dpr * s, dpr * tx, dpr * ty);
    const box = visibleBox();
    const c = colours;

    // Edges: plain ones in one path, labelled ones one by one.
    ctx.lineWidth = 1.25 / Math.max(s, 0.5);
    ctx.strokeStyle = c.edge;
    ctx.fillStyle = c.edge;
    ctx.setLineDash([]);
    ctx.beginPath();
    const labelled = [];
    for (const e of layout.edges) {
      if (!intersects(e.box, box)) continue;
      if (e.label) {
        labelled.push(e);
        continue;
      }
      polyline(ctx, e.points);
    }
    ctx.stroke();
    // Arrowheads, all in one path; too small to see far out.
    if (s >= TEXT_SCALE) {
      ctx.beginPath();
      for (const e of layout.edges) {
        if (!e.label && intersects(e.box, box)) arrowPath(ctx, e.points);
      }
      ctx.fill();
    }
    for (const e of labelled) {
      const colour = e.kind === 'failed' ? c.byStatus.FAILED.solid : e.kind === 'skipped' ? c.byStatus.SKIPPED.solid : c.edge;
      ctx.strokeStyle = colour;
      ctx.setLineDash(e.kind === 'failed' || e.kind === 'skipped' ? [6, 4] : e.kind === 'done' ? [2, 3] : []);
      ctx.beginPath();
      polyline(ctx, e.points);
      ctx.stroke();
      ctx.setLineDash([]);
      ctx.fillStyle = colour;
      ctx.beginPath();
      arrowPath(ctx, e.points);
      ctx.fill();
    }
    if (s >= TEXT_SCALE) {
      ctx.font = `11px ${c.sans}`;
      ctx.textBaseline = 'middle';
      ctx.textAlign = 'center';
      for (const e of labelled) {
        const [mx, my] = middle(e.points);
        const w = ctx.measureText(e.label).width + 8;
        ctx.fillStyle = c.bg;
        ctx.fillRect(mx - w / 2, my - 8, w, 16);
        ctx.fillStyle = e.kind === 'failed' ? c.byStatus.FAILED.text : c.muted;
        ctx.fillText(e.label, mx, my);
      }
      ctx.textAlign = 'left';
    }

    // Nodes. Far out, where no text is readable, one path per state: plain boxes in few calls.
    let running = false;
    if (s < TEXT_SCALE) {
      const byState = new Map();
      for (const n of nodes) {
        if (n.x > box[2] || n.x + n.w < box[0] || n.y > box[3] || n.y + n.h < box[1]) continue;
        const status = statusOf(n);
        if (status === 'RUNNING') running = true;
        let list = byState.get(status);
        if (!list) byState.set(status, (list = []));
        list.push(n);
      }
      for (const [status, list] of byState) {
        ctx.fillStyle = (c.byStatus[status] || c.byStatus.PENDING).solid;
        ctx.beginPath();
        for (const n of list) ctx.rect(n.x, n.y, n.w, n.h);
        ctx.fill();
      }
      const sel = selectedId && byId.get(selectedId);
      if (sel) {
        ctx.lineWidth = 3 / s;
        ctx.strokeStyle = c.focus;
        ctx.strokeRect(sel.x - 3 / s, sel.y - 3 / s, sel.w + 6 / s, sel.h + 6 / s);
      }
      finishFrame(running);
      return;
    }
    const nameFont = `600 13px ${c.sans}`;
    const detailFont = `12px ${c.sans}`;
    const nameFontSmall = `600 12px ${c.sans}`;
    const detailFontSmall = `11px ${c.sans}`;
    for (const n of nodes) {
      if (n.x > box[2] || n.x + n.w < box[0] || n.y > box[3] || n.y + n.h < box[1]) continue;
      const status = statusOf(n);
      if (status === 'RUNNING') running = true;
      const sc = c.byStatus[status] || c.byStatus.PENDING;
      ctx.fillStyle = sc.tint;
      roundRect(ctx, n.x, n.y, n.w, n.h, 8);
      ctx.fill();
      ctx.lineWidth = 1.5 / Math.max(s, 0.5);
      ctx.strokeStyle = sc.solid;
      if (n.kind === 'finally') ctx.setLineDash([5, 3]);
      ctx.stroke();
      ctx.setLineDash([]);
      ctx.fillStyle = sc.solid;
      ctx.fillRect(n.x + 1, n.y + 4, 5, n.h - 8);
      if (n.kind === 'group') drawGroupBar(ctx, n);
      if (n.key === selectedId) {
        ctx.lineWidth = 3 / Math.max(s, 0.3);
        ctx.strokeStyle = c.focus;
        roundRect(ctx, n.x - 3, n.y - 3, n.w + 6, n.h + 6, 10);
        ctx.stroke();
      }
      if (s < TEXT_SCALE) continue;
      const textWidth = n.w - 20;
      const compact = n.h < 44;
      const nf = compact ? nameFontSmall : nameFont;
      const df = compact ? detailFontSmall : detailFont;
      ctx.textBaseline = 'alphabetic';
      ctx.font = nf;
      ctx.fillStyle = c.fg;
      const label = n.kind === 'group' ? `${n.name} ×${n.jobs.length}` : n.name;
      if (n.h >= 30) {
        ctx.fillText(fit(ctx, label, textWidth, nf), n.x + 12, n.y + (compact ? 15 : 20));
        ctx.font = df;
        ctx.fillStyle = sc.text;
        ctx.fillText(fit(ctx, detailOf(n), textWidth, df), n.x + 12, n.y + (compact ? n.h - 8 : Math.min(37, n.h - 8)));
      } else {
        ctx.fillText(fit(ctx, label, textWidth, nf), n.x + 12, n.y + n.h / 2 + 4);
      }
    }
    finishFrame(running);
  }

  function finishFrame(running) {
    tick(running);
    if (!drawnOnce) {
      drawnOnce = true;
      // For anyone measuring (tests/ui/bench-graph.mjs): when the graph was first on screen.
      performance.mark('chainr-graph-drawn');
    }
  }

  function drawGroupBar(ctx, n) {
    const counts = groupCounts(n);
    const total = n.jobs.length || 1;
    let x = n.x + 12;
    const width = n.w - 20;
    for (const [status, count] of counts) {
      const w = (width * count) / total;
      ctx.fillStyle = colours.byStatus[status].solid;
      ctx.fillRect(x, n.y + n.h - 4, Math.max(w - 1, 1), 2);
      x += w;
    }
  }

  // Running jobs' durations move: redraw once a second while any is on screen.
  let ticker = 0;
  function tick(running) {
    if (running && !ticker) ticker = setInterval(() => scheduleDraw(), 1000);
    if (!running && ticker) {
      clearInterval(ticker);
      ticker = 0;
    }
  }

  // ---- Focusable elements for the nodes on screen ----

  function order(a, b) {
    return a.layer - b.layer || a.y - b.y || a.x - b.x;
  }

  function syncElements() {
    if (!layout) return;
    const box = visibleBox();
    const wanted = nodes.filter((n) => !(n.x > box[2] || n.x + n.w < box[0] || n.y > box[3] || n.y + n.h < box[1]));
    const focusedKey = document.activeElement && document.activeElement.dataset ? document.activeElement.dataset.node : null;
    let keep = new Set();
    if (wanted.length <= MAX_DOM_NODES) {
      keep = new Set(wanted.map((n) => n.key));
      hint.textContent = '';
    } else {
      hint.textContent = `${wanted.length} jobs on screen: zoom in to reach them one by one, or use Find job.`;
    }
    // The focused and the selected node stay, on screen or not, so focus is never lost.
    if (focusedKey && byId.has(focusedKey)) keep.add(focusedKey);
    if (selectedId && byId.has(selectedId)) keep.add(selectedId);
    for (const [key, el] of elements) {
      if (!keep.has(key)) {
        el.remove();
        elements.delete(key);
      }
    }
    const sorted = [...keep].map((k) => byId.get(k)).sort(order);
    let nextEl = null;
    for (let i = sorted.length - 1; i >= 0; i--) {
      const n = sorted[i];
      let el = elements.get(n.key);
      if (!el) {
        el = nodeElement(n);
        elements.set(n.key, el);
        layer.insertBefore(el, nextEl);
      } else {
        refreshElement(n, el);
      }
      nextEl = el;
    }
    layer.style.setProperty('--scale', String(view.s));
  }

  function nodeElement(n) {
    const el =
      n.kind === 'group'
        ? h('button', { type: 'button', class: 'node', 'aria-expanded': 'false', on: { click: () => expand(n.name) } })
        : h('a', { class: 'node', href: link.job(uid, n.name) });
    el.dataset.node = n.key;
    el.style.left = `${n.x}px`;
    el.style.top = `${n.y}px`;
    el.style.width = `${n.w}px`;
    el.style.height = `${n.h}px`;
    refreshElement(n, el);
    el.addEventListener('keydown', (e) => onNodeKey(e, n));
    el.addEventListener('focus', () => ensureVisible(n));
    return el;
  }

  function refreshElement(n, el) {
    const label = nameOf(n);
    if (el.getAttribute('aria-label') !== label) el.setAttribute('aria-label', label);
    if (n.key === selectedId) el.setAttribute('aria-current', 'true');
    else el.removeAttribute('aria-current');
  }

  // ---- The view: pan, zoom, fit ----

  const scheduleDraw = perFrame(() => {
    draw();
    syncElements();
  });

  function setView(v) {
    view = { s: clamp(v.s, MIN_SCALE, MAX_SCALE), tx: v.tx, ty: v.ty };
    layer.style.transform = `translate(${view.tx}px, ${view.ty}px) scale(${view.s})`;
    scheduleDraw();
  }

  function zoomAt(factor, px, py) {
    const s = clamp(view.s * factor, MIN_SCALE, MAX_SCALE);
    const k = s / view.s;
    setView({ s, tx: px - (px - view.tx) * k, ty: py - (py - view.ty) * k });
  }

  function fitAll() {
    if (!layout) return;
    const s = clamp(Math.min((size.w - 2 * MARGIN) / layout.width, (size.h - 2 * MARGIN) / layout.height, 1), MIN_SCALE, 1);
    setView({ s, tx: (size.w - layout.width * s) / 2, ty: Math.max(MARGIN, (size.h - layout.height * s) / 2) });
  }

  /** The first view: everything when it is readable so, else the start of the graph. */
  function initialView() {
    if (!layout) return;
    const fitS = Math.min((size.w - 2 * MARGIN) / layout.width, (size.h - 2 * MARGIN) / layout.height, 1);
    if (fitS >= 0.6) fitAll();
    else setView({ s: 0.8, tx: MARGIN, ty: MARGIN });
  }

  function ensureVisible(n, center = false) {
    const { s } = view;
    const left = n.x * s + view.tx;
    const top = n.y * s + view.ty;
    const right = left + n.w * s;
    const bottom = top + n.h * s;
    const inView = left >= 0 && top >= 0 && right <= size.w && bottom <= size.h;
    if (inView && !center) return;
    let { tx, ty } = view;
    if (center || n.w * s > size.w || n.h * s > size.h) {
      tx = size.w / 2 - (n.x + n.w / 2) * s;
      ty = size.h / 2 - (n.y + n.h / 2) * s;
    } else {
      if (left < 0) tx -= left - MARGIN;
      if (right > size.w) tx -= right - size.w + MARGIN;
      if (top < 0) ty -= top - MARGIN;
      if (bottom > size.h) ty -= bottom - size.h + MARGIN;
    }
    setView({ s, tx, ty });
  }

  function clamp(v, lo, hi) {
    return Math.min(hi, Math.max(lo, v));
  }

  // Pointer: drag to pan; a drag that began on a node does not open it.
  let drag = null;
  let suppressClick = false;
  stage.addEventListener('pointerdown', (e) => {
    if (e.button !== 0) return;
    drag = { x: e.clientX, y: e.clientY, tx: view.tx, ty: view.ty, moved: false, id: e.pointerId };
  });
  stage.addEventListener('pointermove', (e) => {
    if (!drag || e.pointerId !== drag.id) return;
    const dx = e.clientX - drag.x;
    const dy = e.clientY - drag.y;
    if (!drag.moved && Math.hypot(dx, dy) < 4) return;
    if (!drag.moved) {
      drag.moved = true;
      stage.setPointerCapture(e.pointerId);
      stage.classList.add('panning');
    }
    setView({ s: view.s, tx: drag.tx + dx, ty: drag.ty + dy });
  });
  const endDrag = () => {
    if (drag && drag.moved) suppressClick = true;
    drag = null;
    stage.classList.remove('panning');
  };
  stage.addEventListener('pointerup', endDrag);
  stage.addEventListener('pointercancel', endDrag);
  stage.addEventListener(
    'click',
    (e) => {
      if (suppressClick) {
        suppressClick = false;
        e.preventDefault();
        e.stopPropagation();
      }
    },
    true,
  );
  stage.addEventListener(
    'wheel',
    (e) => {
      e.preventDefault();
      const r = stage.getBoundingClientRect();
      if (e.ctrlKey || e.metaKey) {
        zoomAt(Math.exp(-e.deltaY * 0.002), e.clientX - r.left, e.clientY - r.top);
      } else {
        setView({ s: view.s, tx: view.tx - e.deltaX, ty: view.ty - e.deltaY });
      }
    },
    { passive: false },
  );
  stage.addEventListener('keydown', (e) => {
    if (e.target !== stage) return;
    const step = 60;
    const moves = { ArrowLeft: [step, 0], ArrowRight: [-step, 0], ArrowUp: [0, step], ArrowDown: [0, -step] };
    if (moves[e.key]) {
      e.preventDefault();
      setView({ s: view.s, tx: view.tx + moves[e.key][0], ty: view.ty + moves[e.key][1] });
    } else if (e.key === '+' || e.key === '=') {
      zoomAt(1.25, size.w / 2, size.h / 2);
    } else if (e.key === '-') {
      zoomAt(0.8, size.w / 2, size.h / 2);
    } else if (e.key === '0') {
      fitAll();
    }
  });
  zoomIn.addEventListener('click', () => zoomAt(1.25, size.w / 2, size.h / 2));
  zoomOut.addEventListener('click', () => zoomAt(0.8, size.w / 2, size.h / 2));
  fitButton.addEventListener('click', fitAll);

  /** Arrow keys on a node go to the nearest node that way. */
  function onNodeKey(e, n) {
    const dirs = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1] };
    const d = dirs[e.key];
    if (!d) return;
    e.preventDefault();
    const cx = n.x + n.w / 2;
    const cy = n.y + n.h / 2;
    let best = null;
    let bestScore = Infinity;
    for (const m of nodes) {
      if (m === n) continue;
      const dx = m.x + m.w / 2 - cx;
      const dy = m.y + m.h / 2 - cy;
      const along = dx * d[0] + dy * d[1];
      if (along <= 1) continue;
      const across = Math.abs(dx * d[1] - dy * d[0]);
      const score = along + 2 * across;
      if (score < bestScore) {
        bestScore = score;
        best = m;
      }
    }
    if (best) focusNode(best);
  }

  function focusNode(n, center = false) {
    ensureVisible(n, center);
    draw();
    syncElements();
    const el = elements.get(n.key);
    if (el) el.focus({ preventScroll: true });
  }

  // ---- Groups ----

  async function expand(group) {
    expanded.add(group);
    const had = view;
    if (await load()) {
      setView(had);
      announce(`Group ${group} expanded`);
    }
  }

  // ---- Find job ----

  function matchingNames(text) {
    const run = getRun();
    const t = text.toLowerCase();
    const out = [];
    for (const j of run.jobs) {
      if (j.name.toLowerCase().includes(t)) out.push(j.name);
      if (out.length >= 50) break;
    }
    return out;
  }

  findInput.addEventListener('input', () => {
    const text = findInput.value.trim();
    replace(names, text ? matchingNames(text).map((n) => h('option', { value: n })) : null);
  });
  findInput.addEventListener('keydown', (e) => {
    if (e.key === 'Enter') {
      e.preventDefault();
      find(findInput.value.trim());
    }
  });
  findInput.addEventListener('change', () => {
    const run = getRun();
    const v = findInput.value.trim();
    if (run.jobs.some((j) => j.name === v)) find(v);
  });

  async function find(text) {
    if (!text) return;
    const run = getRun();
    let index = run.jobs.findIndex((j) => j.name === text);
    if (index < 0) index = run.jobs.findIndex((j) => j.name.toLowerCase().includes(text.toLowerCase()));
    if (index < 0) {
      info.textContent = `No job matches “${text}”`;
      return;
    }
    const name = run.jobs[index].name;
    await focusJob(name, true);
  }

  /** Brings a job's node into view, selects it and focuses it (expanding its group if needed). */
  async function focusJob(name, center = false) {
    const run = getRun();
    const index = run.jobs.findIndex((j) => j.name === name);
    if (index < 0 || !layout) return;
    let n = nodeOfJob[index];
    if (n && n.kind === 'group' && n.jobs.length > 1) {
      const had = view;
      expanded.add(n.name);
      if (!(await load())) return;
      setView(had);
      n = nodeOfJob[index];
    }
    if (!n) return;
    selectedId = n.key;
    focusNode(n, center);
    info.textContent = nameOf(n);
  }

  // ---- Size and theme ----

  const resize = new ResizeObserver(() => {
    const r = stage.getBoundingClientRect();
    const first = size.w === 0;
    size = { w: r.width, h: r.height };
    const dpr = window.devicePixelRatio || 1;
    canvas.width = Math.max(1, Math.round(r.width * dpr));
    canvas.height = Math.max(1, Math.round(r.height * dpr));
    canvas.style.width = `${r.width}px`;
    canvas.style.height = `${r.height}px`;
    if (first && layout) initialView();
    else scheduleDraw();
  });
  resize.observe(stage);
  const scheme = matchMedia('(prefers-color-scheme: dark)');
  const onScheme = () => {
    colours = readColours();
    scheduleDraw();
  };
  scheme.addEventListener('change', onScheme);

  const ready = load().then((ok) => {
    if (ok && size.w > 0) initialView();
    const sel = selected();
    if (sel) select(sel, true);
    scheduleDraw();
  });

  /** Marks the job whose panel is open (without moving focus); `reveal` pans to it. */
  function select(name, reveal = false) {
    const run = getRun();
    const index = name ? run.jobs.findIndex((j) => j.name === name) : -1;
    const n = index >= 0 ? nodeOfJob[index] : null;
    selectedId = n ? n.key : null;
    if (n && reveal && size.w > 0) ensureVisible(n);
    scheduleDraw();
  }

  return {
    ready,
    update: scheduleDraw,
    select,
    focusJob,
    /** Focuses the node of a job if it is on screen (after its panel closes). */
    focusBack(name) {
      const run = getRun();
      const index = run.jobs.findIndex((j) => j.name === name);
      const n = index >= 0 ? nodeOfJob[index] : null;
      if (n) focusNode(n);
    },
    stop() {
      stopped = true;
      resize.disconnect();
      scheme.removeEventListener('change', onScheme);
      if (ticker) clearInterval(ticker);
    },
  };
}

/** What an edge's label asks, for its style: `failed`, `skipped`, `done`, or `other`. */
function edgeKind(label) {
  if (!label) return null;
  const words = label.replace(/^\|\|/, '').split(',');
  if (label.includes('!')) return 'other';
  if (words.some((w) => w === 'failed' || w === 'errored')) return 'failed';
  if (words.includes('skipped')) return 'skipped';
  if (words.includes('done')) return 'done';
  return 'other';
}

function polyline(ctx, points) {
  ctx.moveTo(points[0][0], points[0][1]);
  for (let i = 1; i < points.length; i++) ctx.lineTo(points[i][0], points[i][1]);
}

/** Adds an arrowhead at the end of a polyline to the current path. */
function arrowPath(ctx, points) {
  if (points.length < 2) return;
  const [x1, y1] = points[points.length - 1];
  const [x0, y0] = points[points.length - 2];
  const a = Math.atan2(y1 - y0, x1 - x0);
  const len = 7;
  ctx.moveTo(x1, y1);
  ctx.lineTo(x1 - len * Math.cos(a - 0.45), y1 - len * Math.sin(a - 0.45));
  ctx.lineTo(x1 - len * Math.cos(a + 0.45), y1 - len * Math.sin(a + 0.45));
  ctx.closePath();
}

/** The point halfway along a polyline. */
function middle(points) {
  let total = 0;
  for (let i = 1; i < points.length; i++) total += Math.hypot(points[i][0] - points[i - 1][0], points[i][1] - points[i - 1][1]);
  let rest = total / 2;
  for (let i = 1; i < points.length; i++) {
    const [ax, ay] = points[i - 1];
    const [bx, by] = points[i];
    const d = Math.hypot(bx - ax, by - ay);
    if (d >= rest && d > 0) return [ax + ((bx - ax) * rest) / d, ay + ((by - ay) * rest) / d];
    rest -= d;
  }
  return points[0];
}

function roundRect(ctx, x, y, w, h, r) {
  ctx.beginPath();
  ctx.moveTo(x + r, y);
  ctx.arcTo(x + w, y, x + w, y + h, r);
  ctx.arcTo(x + w, y + h, x, y + h, r);
  ctx.arcTo(x, y + h, x, y, r);
  ctx.arcTo(x, y, x + w, y, r);
  ctx.closePath();
}
