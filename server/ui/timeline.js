// A run's timeline: one row per job that started, one bar per attempt from its start to its end
// (or to now), coloured and named by its status. Only the rows in view are in the document.

import { link } from './api.js';
import { h, replace, perFrame } from './dom.js';
import { duration, ms } from './format.js';

const ROW = 24;
const NAME_WIDTH = 200;
const OVERSCAN = 10;
/** Never more rows in the page than this, whatever the view's height says. */
const MAX_ROWS = 500;

export function createTimeline(root, { uid, getRun }) {
  const axis = h('div', { class: 'axis', 'aria-hidden': 'true' });
  const rowsEl = h('div', { class: 'rows', role: 'list', 'aria-label': 'Attempts by job' });
  const empty = h('p', { class: 'empty' });
  const scroller = h('div', { class: 'timeline', tabindex: '-1' }, axis, rowsEl, empty);
  replace(root, scroller);
  let visible = false;
  let jobs = [];
  let span = [0, 1];

  function compute() {
    const run = getRun();
    jobs = run.jobs
      .map((j, i) => ({ j, i, start: j.attempts.length ? ms(j.attempts[0].startedAt) : null }))
      .filter((x) => x.start !== null)
      .sort((a, b) => a.start - b.start || a.i - b.i);
    const now = Date.now();
    let t0 = ms(run.startedAt) ?? Infinity;
    let t1 = ms(run.finishedAt) ?? -Infinity;
    for (const { j } of jobs) {
      for (const a of j.attempts) {
        t0 = Math.min(t0, ms(a.startedAt));
        t1 = Math.max(t1, ms(a.finishedAt) ?? now);
      }
    }
    if (!Number.isFinite(t0)) t0 = now;
    if (!Number.isFinite(t1) || t1 <= t0) t1 = t0 + 1000;
    span = [t0, t1];
  }

  function render() {
    if (!visible) return;
    compute();
    empty.textContent = jobs.length ? '' : 'No job has started yet.';
    rowsEl.style.height = `${jobs.length * ROW}px`;
    const width = Math.max(200, scroller.clientWidth - NAME_WIDTH - 16);
    const [t0, t1] = span;
    const x = (t) => NAME_WIDTH + ((t - t0) / (t1 - t0)) * width;
    // The axis: about one tick per 120 px.
    const ticks = Math.max(1, Math.floor(width / 120));
    replace(
      axis,
      Array.from({ length: ticks + 1 }, (_, k) => {
        const t = t0 + ((t1 - t0) * k) / ticks;
        const tick = h('span', { class: 'tick', text: `+${duration(t - t0)}` });
        tick.style.left = `${x(t)}px`;
        return tick;
      }),
    );
    const first = Math.max(0, Math.floor((scroller.scrollTop - 24) / ROW) - OVERSCAN);
    const last = Math.min(jobs.length, Math.ceil((scroller.scrollTop + scroller.clientHeight) / ROW) + OVERSCAN, first + MAX_ROWS);
    const focusedKey = document.activeElement && rowsEl.contains(document.activeElement) ? document.activeElement.dataset.key : null;
    const out = [];
    const now = Date.now();
    for (let r = first; r < last; r++) {
      const { j } = jobs[r];
      const row = h('div', { class: 'row', role: 'listitem' }, h('span', { class: 'name', title: j.name, text: j.name }));
      row.style.top = `${r * ROW}px`;
      for (const a of j.attempts) {
        const start = ms(a.startedAt);
        const end = ms(a.finishedAt) ?? now;
        const label = `${j.name} attempt ${a.attempt}: ${a.status}, ${duration(end - start)}${a.reason ? `, ${a.reason}` : ''}`;
        const bar = h('a', {
          class: `bar b-${a.status.toLowerCase()}`,
          href: `${link.job(uid, j.name)}?attempt=${a.attempt}`,
          'aria-label': label,
          title: label,
        });
        bar.dataset.key = `${j.name}#${a.attempt}`;
        bar.style.left = `${x(start)}px`;
        bar.style.width = `${Math.max(2, x(end) - x(start))}px`;
        row.appendChild(bar);
      }
      out.push(row);
    }
    replace(rowsEl, out);
    if (focusedKey) {
      const again = [...rowsEl.querySelectorAll('.bar')].find((b) => b.dataset.key === focusedKey);
      if (again) again.focus({ preventScroll: true });
    }
  }

  const schedule = perFrame(render);
  scroller.addEventListener('scroll', schedule);
  const resize = new ResizeObserver(schedule);
  resize.observe(scroller);
  let ticker = 0;

  return {
    show(on) {
      visible = on;
      clearInterval(ticker);
      ticker = 0;
      if (on) {
        schedule();
        // Running attempts grow.
        ticker = setInterval(() => {
          if (getRun().status === 'RUNNING') schedule();
        }, 1000);
      }
    },
    update: schedule,
    stop() {
      resize.disconnect();
      clearInterval(ticker);
    },
  };
}
