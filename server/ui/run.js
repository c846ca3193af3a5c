// A run (`/runs/{uid}`, and `/runs/{uid}/jobs/{job}` with a job's panel open): its status and
// facts, Cancel and Retry for callers who may write, the graph, the timeline and the
// notifications, kept live from the run's events (continued from the event the document was
// read at, so none is missed or applied twice).

import { api, link, runPath } from './api.js';
import { h, replace, announce, perFrame } from './dom.js';
import { badge, duration, elapsed, timeEl, shortUid, isTerminal } from './format.js';
import { follow, liveIndicator } from './live.js';
import { apply } from './record.js';
import { createGraph } from './graph.js';
import { createTimeline } from './timeline.js';
import { createPanel } from './job.js';
import { createNotifications } from './notifications.js';

export async function mount(main, params, ctx) {
  const uid = params.uid;
  replace(main, h('p', { class: 'muted', text: 'Loading the run…' }));
  let run;
  let lastSeq = 0;
  async function read() {
    const response = await api(runPath(uid), { raw: true });
    const seq = Number(response.headers.get('chainr-last-event-id'));
    return { doc: await response.json(), seq: Number.isFinite(seq) ? seq : 0 };
  }
  try {
    const first = await read();
    run = first.doc;
    lastSeq = first.seq;
  } catch (e) {
    replace(main, h('h1', { text: 'Run not found' }), h('p', { class: 'error', text: e.message }), h('a', { href: '/' }, 'See the runs'));
    return {};
  }
  const getRun = () => run;
  let pipelinePromise = null;
  const pipeline = () => {
    if (!pipelinePromise) {
      pipelinePromise = api(runPath(uid, '/pipeline'));
      pipelinePromise.catch(() => {
        pipelinePromise = null;
      });
    }
    return pipelinePromise;
  };

  // ---- Layout ----

  const title = h('h1', { tabindex: '-1' });
  const statusEl = h('span');
  const facts = h('div', { class: 'facts' });
  const live = h('span', { class: 'live off', text: 'Connecting…' });
  const actions = h('div', { class: 'actions' });
  const message = h('p', { class: 'error', role: 'alert' });
  const tabGraph = h('button', { type: 'button', role: 'tab', id: 'tab-graph', 'aria-controls': 'panel-graph' }, 'Graph');
  const tabTime = h('button', { type: 'button', role: 'tab', id: 'tab-timeline', 'aria-controls': 'panel-timeline' }, 'Timeline');
  const graphPanel = h('div', { class: 'tabpanel', role: 'tabpanel', id: 'panel-graph', 'aria-labelledby': 'tab-graph' });
  const timePanel = h('div', { class: 'tabpanel', role: 'tabpanel', id: 'panel-timeline', 'aria-labelledby': 'tab-timeline' });
  const tabNotify = h('button', { type: 'button', role: 'tab', id: 'tab-notifications', 'aria-controls': 'panel-notifications' }, 'Notifications');
  const notifyPanel = h('div', { class: 'tabpanel', role: 'tabpanel', id: 'panel-notifications', 'aria-labelledby': 'tab-notifications' });
  const aside = h('aside', { class: 'panel', hidden: true });
  replace(
    main,
    h('div', { class: 'runhead' }, title, statusEl, facts, live, actions, message),
    h(
      'div',
      { class: 'runbody' },
      h(
        'div',
        { class: 'runmain' },
        h('div', { class: 'tabs', role: 'tablist', 'aria-label': 'Views of the run' }, tabGraph, tabTime, tabNotify),
        graphPanel,
        timePanel,
        notifyPanel,
      ),
      aside,
    ),
  );

  const graph = createGraph(graphPanel, { uid, getRun, selected: () => panel.job });
  const timeline = createTimeline(timePanel, { uid, getRun });
  const panel = createPanel(aside, { uid, getRun, pipeline });
  const notifications = createNotifications(notifyPanel, { uid, canWrite: ctx.canWrite });

  // ---- Tabs ----

  // The views, in their order on the tab bar; `?view=` names one.
  const tabs = [
    { name: 'graph', button: tabGraph, panel: graphPanel },
    { name: 'timeline', button: tabTime, panel: timePanel },
    { name: 'notifications', button: tabNotify, panel: notifyPanel },
  ];
  const asked = params.query.get('view');
  let tab = tabs.some((t) => t.name === asked) ? asked : 'graph';
  function showTab(which, focus = false) {
    tab = which;
    for (const t of tabs) {
      const on = t.name === which;
      t.button.setAttribute('aria-selected', String(on));
      t.button.tabIndex = on ? 0 : -1;
      t.panel.hidden = !on;
      if (on && focus) t.button.focus();
    }
    timeline.show(which === 'timeline');
    notifications.show(which === 'notifications');
    if (which === 'graph') graph.update();
  }
  tabs.forEach((t, i) => {
    t.button.addEventListener('click', () => showTab(t.name));
    t.button.addEventListener('keydown', (e) => {
      if (e.key === 'ArrowRight' || e.key === 'ArrowLeft') {
        e.preventDefault();
        const step = e.key === 'ArrowRight' ? 1 : tabs.length - 1;
        showTab(tabs[(i + step) % tabs.length].name, true);
      }
    });
  });
  showTab(tab);

  // ---- The header ----

  function renderHead() {
    const name = run.metadata.name || 'Run';
    replace(title, `${name} `, h('span', { class: 'muted', title: uid, text: shortUid(uid) }));
    replace(statusEl, badge(run.status));
    replace(
      facts,
      run.metadata.submitter ? h('span', {}, 'by ', run.metadata.submitter) : null,
      h('span', {}, 'submitted ', timeEl(run.metadata.createdAt)),
      run.startedAt ? h('span', {}, 'started ', timeEl(run.startedAt)) : null,
      run.startedAt ? h('span', { class: 'duration', text: duration(elapsed(run.startedAt, run.finishedAt)) }) : null,
      run.reason ? h('span', { class: 'error', text: run.reason }) : null,
    );
    renderActions();
  }

  let busy = false;
  function renderActions() {
    if (!ctx.canWrite()) {
      replace(actions);
      return;
    }
    const focused = actions.contains(document.activeElement) ? document.activeElement.textContent : null;
    const cancel = !isTerminal(run.status)
      ? h('button', { type: 'button', class: 'danger', disabled: busy, on: { click: () => act('cancel') } }, 'Cancel')
      : null;
    const retry = isTerminal(run.status)
      ? h('button', { type: 'button', disabled: busy, on: { click: () => act('retry') } }, 'Retry')
      : null;
    replace(actions, cancel, retry);
    if (focused) {
      const again = [...actions.querySelectorAll('button')].find((b) => b.textContent === focused);
      if (again) again.focus();
      else title.focus();
    }
  }

  async function act(what) {
    busy = true;
    message.textContent = '';
    renderActions();
    try {
      await api(runPath(uid, `/${what}`), { method: 'POST' });
      announce(what === 'cancel' ? 'Cancel requested' : 'Retry requested: the run is queued again');
    } catch (e) {
      message.textContent = e.message;
    }
    busy = false;
    renderActions();
  }

  // ---- Live ----

  const refresh = perFrame(() => {
    renderHead();
    graph.update();
    timeline.update();
    panel.update();
  });

  async function reread() {
    try {
      const again = await read();
      // Only a document at least as new as what the events built replaces it.
      if (again.seq >= lastSeq) {
        run = again.doc;
        lastSeq = again.seq;
        refresh();
      }
    } catch {
      // The next event brings it up to date anyway.
    }
  }

  const stopFollowing = follow(runPath(uid, '/events'), {
    after: lastSeq,
    onState: liveIndicator(live),
    onEvent(ev) {
      if (typeof ev.seq === 'number') {
        if (ev.seq <= lastSeq) return;
        lastSeq = ev.seq;
      }
      if (apply(run, ev)) refresh();
      // The end of a run (or a retry) is read whole once: the document is the reference.
      if (ev.type === 'runFinished' || ev.type === 'runRetried') {
        reread();
        notifications.update();
        if (ev.type === 'runFinished') announce(`The run ended: ${run.status.toLowerCase()}`);
      }
    },
  });

  const ticker = setInterval(() => {
    if (run.status === 'RUNNING') {
      const d = facts.querySelector('.duration');
      if (d) d.textContent = duration(elapsed(run.startedAt, run.finishedAt));
    }
  }, 1000);

  // ---- The job panel ----

  function onKey(e) {
    if (e.key === 'Escape' && panel.job && !e.defaultPrevented) {
      e.preventDefault();
      ctx.navigate(link.run(uid) + (tab === 'graph' ? '' : `?view=${tab}`));
    }
  }
  document.addEventListener('keydown', onKey);

  function update(p) {
    const previous = panel.job;
    if (p.job) {
      const attempt = p.query.get('attempt');
      panel.show(p.job, attempt ? Number(attempt) : null);
      graph.select(p.job);
      if (p.job !== previous) panel.focus();
    } else {
      panel.hide();
      graph.select(null);
      if (previous) graph.focusBack(previous);
    }
    document.title = p.job ? `${p.job} · ${run.metadata.name || 'run'} · chainr` : `${run.metadata.name || 'Run'} ${shortUid(uid)} · chainr`;
  }

  renderHead();
  update(params);
  if (!params.job) title.focus();

  return {
    update,
    stop() {
      stopFollowing();
      clearInterval(ticker);
      document.removeEventListener('keydown', onKey);
      graph.stop();
      timeline.stop();
      notifications.stop();
      panel.stop();
    },
  };
}
