// The runs list (`/`): newest first, filtered by status and pipeline, a page at a time with the
// server's cursor (`next`), and live: rows change as their runs' events arrive on
// `/api/events`, and new runs appear on the first page.

import { api, link, runPath } from './api.js';
import { h, replace, perFrame, debounce } from './dom.js';
import { STATUSES, badge, jobBar, timeEl, duration, elapsed, shortUid, ms } from './format.js';
import { follow, liveIndicator } from './live.js';
import { apply } from './record.js';

const PAGE = 50;

export function mount(main, params, ctx) {
  const query = params.query;
  const filters = {
    status: query.get('status') || '',
    pipeline: query.get('pipeline') || '',
    after: query.get('after') || '',
  };
  const firstPage = !filters.after;
  document.title = 'Runs · chainr';

  /** The runs shown, by uid; `order` is their order on screen (newest first). */
  const runs = new Map();
  let order = [];
  let next = null;
  let loaded = false;
  /** Events that arrived before the page was read, applied after it. */
  const early = [];

  const live = h('span', { class: 'live off', text: 'Connecting…' });
  const statusSelect = h(
    'select',
    { id: 'f-status', on: { change: applyFilters } },
    h('option', { value: '', text: 'Any status' }),
    STATUSES.filter((s) => s !== 'SKIPPED').map((s) =>
      h('option', { value: s, text: s.toLowerCase(), selected: s === filters.status }),
    ),
  );
  const pipelineInput = h('input', {
    id: 'f-pipeline',
    type: 'search',
    value: filters.pipeline,
    placeholder: 'name',
    list: 'pipelines',
    on: { input: debounce(applyFilters, 400), change: applyFilters },
  });
  const pipelines = h('datalist', { id: 'pipelines' });
  const tbody = h('tbody');
  const table = h(
    'table',
    { class: 'runs' },
    h('caption', { class: 'visually-hidden', text: 'Runs, newest first' }),
    h(
      'thead',
      {},
      h(
        'tr',
        {},
        ['Status', 'Pipeline', 'Run', 'Submitter', 'Started', 'Duration', 'Jobs'].map((t) =>
          h('th', { scope: 'col', text: t }),
        ),
      ),
    ),
    tbody,
  );
  const message = h('p', { class: 'error', role: 'alert' });
  const pages = h('nav', { class: 'pages', 'aria-label': 'Pages' });

  replace(
    main,
    h(
      'div',
      { class: 'toolbar' },
      h('h1', { text: 'Runs' }),
      h('div', { class: 'field' }, h('label', { for: 'f-status', text: 'Status' }), statusSelect),
      h('div', { class: 'field' }, h('label', { for: 'f-pipeline', text: 'Pipeline' }), pipelineInput, pipelines),
      h('span', { class: 'spacer' }),
      live,
    ),
    message,
    table,
    pages,
  );

  function applyFilters() {
    const q = new URLSearchParams();
    if (statusSelect.value) q.set('status', statusSelect.value);
    if (pipelineInput.value.trim()) q.set('pipeline', pipelineInput.value.trim());
    const url = q.toString() ? `/?${q}` : '/';
    if (url !== location.pathname + location.search) ctx.navigate(url, { replace: true });
  }

  function matches(run) {
    if (filters.status && run.status !== filters.status) return false;
    if (filters.pipeline && (run.metadata.name || '') !== filters.pipeline) return false;
    return true;
  }

  // Rows, keyed by uid, re-rendered when their run changes.
  const rows = new Map();

  function row(run) {
    const uid = run.metadata.uid;
    const name = run.metadata.name || '(unnamed)';
    const tr = h(
      'tr',
      { 'data-uid': uid },
      h('td', {}, badge(run.status)),
      h('td', { class: 'pipeline' }, h('a', { href: link.run(uid), 'aria-label': `${name} run ${shortUid(uid)}` }, name)),
      h('td', {}, h('code', { title: uid, text: shortUid(uid) })),
      h('td', { text: run.metadata.submitter || '—' }),
      h('td', {}, run.startedAt ? timeEl(run.startedAt) : h('span', { class: 'muted', title: `submitted ${run.metadata.createdAt || ''}`, text: 'not yet' })),
      h('td', { class: 'duration', text: duration(elapsed(run.startedAt, run.finishedAt)) }),
      h('td', {}, jobBar(run.jobs)),
    );
    return tr;
  }

  function renderRow(uid, fresh = false) {
    const run = runs.get(uid);
    const tr = row(run);
    if (fresh) tr.classList.add('fresh');
    const old = rows.get(uid);
    // Keep focus where it was when a row is redrawn under it.
    const focused = old && old.contains(document.activeElement) ? document.activeElement.tagName : null;
    if (old) old.replaceWith(tr);
    rows.set(uid, tr);
    if (focused === 'A') tr.querySelector('a').focus();
    return tr;
  }

  function renderAll() {
    rows.clear();
    replace(tbody, order.map((uid) => renderRow(uid)));
    if (order.length === 0) {
      replace(tbody, h('tr', {}, h('td', { colspan: 7, class: 'empty', text: loaded ? 'No runs yet.' : 'Loading…' })));
    }
    const names = new Set([...runs.values()].map((r) => r.metadata.name).filter(Boolean));
    replace(pipelines, [...names].sort().map((n) => h('option', { value: n })));
    const q = new URLSearchParams();
    if (filters.status) q.set('status', filters.status);
    if (filters.pipeline) q.set('pipeline', filters.pipeline);
    const here = q.toString();
    replace(
      pages,
      firstPage ? null : h('a', { href: here ? `/?${here}` : '/' }, 'Newest runs'),
      next ? h('a', { href: nextLink(next) }, 'Next page') : null,
    );
  }

  /** The UI's URL for the API's `next` link (its cursor and filters). */
  function nextLink(apiNext) {
    const u = new URL(apiNext, location.href);
    const q = new URLSearchParams();
    for (const k of ['after', 'status', 'pipeline']) {
      const v = u.searchParams.get(k);
      if (v) q.set(k, v);
    }
    return `/?${q}`;
  }

  async function load() {
    const q = new URLSearchParams({ limit: String(PAGE) });
    for (const k of ['status', 'pipeline', 'after']) if (filters[k]) q.set(k, filters[k]);
    try {
      const list = await api(`/api/runs?${q}`);
      for (const run of list.items) runs.set(run.metadata.uid, run);
      order = list.items.map((r) => r.metadata.uid);
      next = list.next || null;
    } catch (e) {
      message.textContent = e.message;
    }
    loaded = true;
    renderAll();
    for (const ev of early.splice(0)) onEvent(ev);
  }

  /** Runs being fetched because an event named them: each once. */
  const fetching = new Set();

  async function fetchNew(uid) {
    if (fetching.has(uid) || runs.has(uid)) return;
    fetching.add(uid);
    try {
      const run = await api(runPath(uid));
      if (runs.has(uid) || !matches(run)) return;
      // Only runs newer than the oldest shown belong on this page.
      const created = ms(run.metadata.createdAt) ?? 0;
      const oldest = order.length ? ms(runs.get(order[order.length - 1]).metadata.createdAt) ?? 0 : 0;
      if (order.length >= PAGE && created < oldest) return;
      runs.set(uid, run);
      const at = order.findIndex((u) => (ms(runs.get(u).metadata.createdAt) ?? 0) < created);
      if (at < 0) order.push(uid);
      else order.splice(at, 0, uid);
      if (order.length === 1) renderAll();
      else {
        const tr = renderRow(uid, true);
        const before = at < 0 ? null : rows.get(order[at + 1]);
        tbody.insertBefore(tr, before || null);
      }
    } catch {
      // Gone already (retention), or not readable: nothing to show.
    } finally {
      fetching.delete(uid);
    }
  }

  const changed = new Set();
  const flush = perFrame(() => {
    for (const uid of changed) if (rows.has(uid)) renderRow(uid);
    changed.clear();
  });

  function onEvent(ev) {
    if (!loaded) {
      early.push(ev);
      return;
    }
    const run = runs.get(ev.run);
    if (!run) {
      // A new run, or one that now matches the filter: the first page shows it.
      const entersFilter = filters.status && ['runStarted', 'runFinished', 'runRetried'].includes(ev.type);
      if (firstPage && (ev.type === 'runCreated' || entersFilter)) fetchNew(ev.run);
      return;
    }
    if (apply(run, ev)) {
      changed.add(ev.run);
      flush();
    }
  }

  let opened = false;
  const stopFollowing = follow('/api/events', {
    onEvent,
    onState: liveIndicator(live),
    // The page is read once the stream is open, so that no change falls between the two.
    onOpen: () => {
      if (!opened) {
        opened = true;
        load();
      }
    },
  });
  renderAll();

  // Durations of running runs go on.
  const ticker = setInterval(() => {
    for (const uid of order) {
      const run = runs.get(uid);
      if (run.status === 'RUNNING' && rows.has(uid)) {
        const cell = rows.get(uid).querySelector('.duration');
        if (cell) cell.textContent = duration(elapsed(run.startedAt, run.finishedAt));
      }
    }
  }, 1000);

  // If the stream cannot open at all (a proxy that buffers it), the page is still read.
  const fallback = setTimeout(() => {
    if (!opened) {
      opened = true;
      load();
    }
  }, 3000);

  return {
    stop() {
      stopFollowing();
      clearInterval(ticker);
      clearTimeout(fallback);
    },
  };
}
