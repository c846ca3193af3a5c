// Words and numbers as people read them: statuses, durations, times.

import { h } from './dom.js';

/** Every status, in the order of a run's life (as the server's `Status::ALL`). */
export const STATUSES = ['PENDING', 'RUNNING', 'SUCCESSFUL', 'FAILED', 'SKIPPED', 'ERRORED', 'CANCELLED'];

/** Statuses that are final. */
export function isTerminal(status) {
  return status !== 'PENDING' && status !== 'RUNNING';
}

/** A status as a badge: its word, coloured by the style sheet (the word carries the meaning). */
export function badge(status) {
  return h('span', { class: `badge s-${status.toLowerCase()}`, text: status });
}

/** Milliseconds of an RFC 3339 time, or null. */
export function ms(time) {
  if (!time) return null;
  const t = Date.parse(time);
  return Number.isNaN(t) ? null : t;
}

/** A length of time: `850 ms`, `4.2 s`, `3 m 07 s`, `2 h 05 m`. */
export function duration(millis) {
  if (millis === null || millis === undefined || !Number.isFinite(millis)) return '';
  const m = Math.max(0, millis);
  if (m < 1000) return `${Math.round(m)} ms`;
  if (m < 60_000) return `${(m / 1000).toFixed(m < 10_000 ? 1 : 0)} s`;
  const s = Math.floor(m / 1000);
  if (s < 3600) return `${Math.floor(s / 60)} m ${String(s % 60).padStart(2, '0')} s`;
  const mins = Math.floor(s / 60);
  if (mins < 48 * 60) return `${Math.floor(mins / 60)} h ${String(mins % 60).padStart(2, '0')} m`;
  return `${Math.floor(mins / 1440)} d ${Math.floor((mins % 1440) / 60)} h`;
}

/** How long something took, or has taken so far. */
export function elapsed(startedAt, finishedAt, now = Date.now()) {
  const start = ms(startedAt);
  if (start === null) return null;
  return (ms(finishedAt) ?? now) - start;
}

const dateTime = new Intl.DateTimeFormat(undefined, {
  year: 'numeric',
  month: 'short',
  day: 'numeric',
  hour: '2-digit',
  minute: '2-digit',
  second: '2-digit',
});
const timeOnly = new Intl.DateTimeFormat(undefined, {
  hour: '2-digit',
  minute: '2-digit',
  second: '2-digit',
});

/** A time in the reader's zone: the time alone when it is today. */
export function when(time) {
  const t = ms(time);
  if (t === null) return '';
  const d = new Date(t);
  const today = new Date();
  return d.toDateString() === today.toDateString() ? timeOnly.format(d) : dateTime.format(d);
}

/** A `<time>` element with the full time on hover and for machines. */
export function timeEl(time) {
  if (!time) return h('span', { class: 'muted', text: '—' });
  return h('time', { datetime: time, title: time, text: when(time) });
}

/** Counts of jobs by status, in the order of STATUSES, leaving out zeros. */
export function countByStatus(jobs) {
  const counts = new Map();
  for (const j of jobs) counts.set(j.status, (counts.get(j.status) || 0) + 1);
  return STATUSES.filter((s) => counts.has(s)).map((s) => [s, counts.get(s)]);
}

/** `3 successful, 1 failed` */
export function countsText(counts) {
  return counts.map(([s, n]) => `${n} ${s.toLowerCase()}`).join(', ');
}

/** A bar of jobs' states: one segment per status, as wide as its share. */
export function jobBar(jobs) {
  const counts = countByStatus(jobs);
  const label = `${jobs.length} job${jobs.length === 1 ? '' : 's'}: ${countsText(counts)}`;
  const bar = h('span', { class: 'jobbar', role: 'img', 'aria-label': label, title: label });
  for (const [status, n] of counts) {
    const seg = h('span', { class: `seg b-${status.toLowerCase()}` });
    seg.style.flexGrow = String(n);
    bar.appendChild(seg);
  }
  return bar;
}

/** The short form of a uid, for tables. */
export function shortUid(uid) {
  return uid.length > 12 ? uid.slice(0, 8) : uid;
}
