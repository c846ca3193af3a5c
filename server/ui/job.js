// A job's panel (`/runs/{uid}/jobs/{job}`): its definition from the run's pipeline (image,
// command, condition in the words of the language, retries, ...), its attempts with exit codes
// and reasons, and the output of one attempt (the last, or `?attempt=N`).

import { link } from './api.js';
import { h, replace } from './dom.js';
import { badge, duration, elapsed, timeEl } from './format.js';
import { createLog } from './log.js';

export function createPanel(aside, { uid, getRun, pipeline }) {
  const heading = h('h2', { tabindex: '-1' });
  const status = h('span');
  const close = h('a', { class: 'button', href: link.run(uid), 'aria-label': 'Close job panel', title: 'Close (Escape)' }, 'Close');
  const definition = h('section', { 'aria-label': 'Definition' });
  const attempts = h('section', { 'aria-label': 'Attempts' });
  const logHeading = h('h3');
  const logRoot = h('div');
  replace(
    aside,
    h('div', { class: 'panelhead' }, heading, status, close),
    h('div', { class: 'panelbody' }, definition, attempts, h('section', { class: 'logsection' }, logHeading, logRoot)),
  );

  let jobName = null;
  /** The attempt asked for in the URL; null: the last one, whichever it becomes. */
  let wanted = null;
  let log = null;
  let logKey = null;
  let lastAttempts = '';

  function job() {
    return getRun().jobs.find((j) => j.name === jobName) || null;
  }

  async function renderDefinition() {
    const name = jobName;
    replace(definition, h('p', { class: 'muted', text: 'Loading the definition…' }));
    let ir;
    try {
      ir = await pipeline();
    } catch (e) {
      replace(definition, h('p', { class: 'error', text: `The definition could not be read: ${e.message}` }));
      return;
    }
    if (name !== jobName) return;
    const spec = (ir.jobs || {})[name];
    const rec = job();
    if (!spec || !rec) {
      replace(definition, h('p', { class: 'error', text: `No job ${name} in this run.` }));
      return;
    }
    const rows = [];
    const row = (term, value) => {
      if (value === undefined || value === null || value === '' || value === false) return;
      rows.push(h('dt', { text: term }), h('dd', {}, value));
    };
    row('Description', spec.description);
    row('Image', h('code', { text: spec.image }));
    row('Run', h('pre', { class: 'script', text: spec.run }));
    row('Condition', rec.condition ? h('code', { text: rec.condition }) : h('span', { class: 'muted', text: 'none: it starts with the run' }));
    row('Group', rec.group ? `an instance of ${rec.group}` : null);
    row('Finally', spec.finally ? 'yes: it runs whatever happened before' : null);
    row('Allow failure', spec.allowFailure ? 'yes: its failure does not fail the run' : null);
    row('Retries', spec.retries ? String(spec.retries) : null);
    row('Backoff', spec.backoff);
    row('Timeout', spec.timeout);
    const res = spec.resources || {};
    row('Resources', res.cpu || res.memory ? [res.cpu ? `cpu ${res.cpu}` : null, res.memory ? `memory ${res.memory}` : null].filter(Boolean).join(', ') : null);
    row('Working directory', spec.workingDir);
    row('Service account', spec.serviceAccount);
    const env = Object.entries(spec.env || {});
    row('Environment', env.length ? h('pre', { class: 'script', text: env.map(([k, v]) => `${k}=${v}`).join('\n') }) : null);
    const secrets = Object.entries(spec.secretEnv || {});
    row('Secrets', secrets.length ? h('pre', { class: 'script', text: secrets.map(([k, v]) => `${k} from ${v.secret}/${v.key}`).join('\n') }) : null);
    replace(definition, h('h3', { text: 'Definition' }), h('dl', { class: 'def' }, rows));
  }

  function renderAttempts() {
    const rec = job();
    if (!rec) return;
    replace(status, badge(rec.status));
    heading.setAttribute('aria-label', `${rec.name}: ${rec.status}`);
    const key = JSON.stringify([rec.status, rec.reason, rec.attempts]);
    if (key === lastAttempts) return;
    lastAttempts = key;
    const shownAttempt = currentAttemptNumber(rec);
    const why = rec.reason ? h('p', {}, h('strong', { text: 'Why: ' }), rec.reason) : null;
    if (rec.attempts.length === 0) {
      replace(attempts, h('h3', { text: 'Attempts' }), why, h('p', { class: 'muted', text: `Not started (${rec.status.toLowerCase()}).` }));
      return;
    }
    const body = rec.attempts.map((a) =>
      h(
        'tr',
        { 'aria-current': a.attempt === shownAttempt ? 'true' : null },
        h('td', {}, h('a', { href: `${link.job(uid, rec.name)}?attempt=${a.attempt}`, 'aria-label': `Attempt ${a.attempt} output` }, String(a.attempt))),
        h('td', {}, badge(a.status)),
        h('td', { text: a.exitCode ?? '—' }),
        h('td', { text: a.reason || '' }),
        h('td', {}, timeEl(a.startedAt)),
        h('td', { text: duration(elapsed(a.startedAt, a.finishedAt)) }),
      ),
    );
    replace(
      attempts,
      h('h3', { text: 'Attempts' }),
      why,
      h(
        'table',
        { class: 'attempts' },
        h('thead', {}, h('tr', {}, ['#', 'Status', 'Exit code', 'Reason', 'Started', 'Duration'].map((t) => h('th', { scope: 'col', text: t })))),
        h('tbody', {}, body),
      ),
    );
  }

  function currentAttemptNumber(rec) {
    if (wanted !== null && rec.attempts.some((a) => a.attempt === wanted)) return wanted;
    const last = rec.attempts[rec.attempts.length - 1];
    return last ? last.attempt : null;
  }

  /** Opens the log of the attempt to show, when it changed (a new attempt started). */
  function renderLog() {
    const rec = job();
    if (!rec) return;
    const number = currentAttemptNumber(rec);
    const attempt = rec.attempts.find((a) => a.attempt === number);
    const key = attempt ? `${rec.name}#${number}` : null;
    if (key === logKey) return;
    if (log) log.stop();
    log = null;
    logKey = key;
    if (!attempt) {
      replace(logHeading, 'Output');
      replace(logRoot, h('p', { class: 'muted', text: 'No output: the job has not started.' }));
      return;
    }
    replace(logHeading, `Output of attempt ${number}`);
    log = createLog(logRoot, { uid, job: rec.name, attempt });
  }

  return {
    /** Shows `name`'s panel (attempt `attempt`, or the last). */
    show(name, attempt) {
      const changed = name !== jobName;
      jobName = name;
      wanted = attempt;
      aside.hidden = false;
      aside.setAttribute('aria-label', `Job ${name}`);
      replace(heading, name);
      if (changed) {
        lastAttempts = '';
        renderDefinition();
      }
      lastAttempts = '';
      renderAttempts();
      renderLog();
    },
    hide() {
      aside.hidden = true;
      jobName = null;
      if (log) log.stop();
      log = null;
      logKey = null;
    },
    /** The run changed: statuses, attempts, perhaps a new attempt to follow. */
    update() {
      if (jobName === null) return;
      renderAttempts();
      renderLog();
    },
    focus() {
      heading.focus();
    },
    get job() {
      return jobName;
    },
    stop() {
      if (log) log.stop();
    },
  };
}
