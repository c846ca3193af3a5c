// An attempt's log: read whole, or followed while the attempt runs (a streaming fetch of
// `?follow=true`), with terminal colours, a search of its own over the whole text (the page
// shows only the lines in view, so the browser's find could not), links to lines (`#L120`), the
// raw text to download, and times on demand.

import { api, logPath } from './api.js';
import { h, replace, perFrame, debounce } from './dom.js';
import { parse, paint, styled, PLAIN } from './ansi.js';
import { when } from './format.js';

const LINE = 18;
const OVERSCAN = 30;
/** Never more lines in the page than this, whatever the view's height says. */
const MAX_ROWS = 1000;
/** An RFC 3339 time at the start of a line, as `kubectl logs --timestamps` and many tools write. */
const STAMP = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:[.,]\d+)?(?:Z|[+-]\d\d:?\d\d)?) /;

/**
 * Shows the log of `job`'s attempt `attempt` (an Attempt of the Run document) in `root`.
 * Answers {stop()}.
 */
export function createLog(root, { uid, job, attempt }) {
  const n = attempt.attempt;
  const lines = [];
  /** The colour state at the start of each line; a line's plain text once asked for. */
  const startStates = [];
  const plainCache = [];
  let endState = PLAIN;
  let partial = '';
  let hasStamps = null;
  let showTimes = false;
  let following = attempt.finishedAt === undefined || attempt.finishedAt === null;
  let stopped = false;
  const controller = new AbortController();

  const search = h('input', { type: 'search', 'aria-label': 'Search log', placeholder: 'Search log' });
  const prev = h('button', { type: 'button', 'aria-label': 'Previous match', title: 'Previous match (Shift+Enter)' }, '↑');
  const next = h('button', { type: 'button', 'aria-label': 'Next match', title: 'Next match (Enter)' }, '↓');
  const count = h('span', { class: 'count muted', 'aria-live': 'polite' });
  const times = h('input', { type: 'checkbox', id: `times-${n}` });
  const download = h(
    'a',
    { href: logPath(uid, job, n), download: `${job}.${n}.log`, class: 'button' },
    'Download',
  );
  const state = h('span', { class: 'logstate muted', 'aria-live': 'polite' });
  const spacer = h('div');
  const slab = h('div', { class: 'slab' });
  const note = h('div', { class: 'note', hidden: true });
  const scroller = h(
    'div',
    { class: 'log', tabindex: '0', role: 'region', 'aria-label': `Log of ${job}, attempt ${n}` },
    note,
    spacer,
    slab,
  );
  replace(
    root,
    h(
      'div',
      { class: 'logview' },
      h(
        'div',
        { class: 'logbar' },
        search,
        prev,
        next,
        count,
        h('label', { for: `times-${n}`, class: 'muted' }, times, ' Show times'),
        download,
        state,
      ),
      scroller,
    ),
  );

  // ---- Text ----

  function lineCount() {
    return lines.length + (partial ? 1 : 0);
  }

  function rawLine(i) {
    return i < lines.length ? lines[i] : partial;
  }

  function stateAt(i) {
    return i < lines.length ? startStates[i] : endState;
  }

  /** How many characters of line i's plain text are its time stamp (hidden unless asked). */
  function stampLength(plainText) {
    if (!hasStamps || showTimes) return 0;
    const m = STAMP.exec(plainText);
    return m ? m[0].length : 0;
  }

  function fullPlain(i) {
    if (i < lines.length && plainCache[i] !== undefined) return plainCache[i];
    const t = parse(rawLine(i), stateAt(i)).segments.map((s) => s.text).join('');
    if (i < lines.length) plainCache[i] = t;
    return t;
  }

  /** The text of line i as shown (and searched). */
  function shown(i) {
    const t = fullPlain(i);
    return t.slice(stampLength(t));
  }

  function appendText(text) {
    const parts = (partial + text).split('\n');
    partial = parts.pop();
    const first = lines.length;
    for (const line of parts) {
      startStates.push(endState);
      lines.push(line);
      if (line.includes('\x1b')) endState = parse(line, endState).end;
    }
    if (hasStamps === null && lines.length >= 20) detectStamps();
    if (query) searchFrom(first);
    schedule(true);
  }

  function detectStamps() {
    const sample = lines.slice(0, 20).filter((l) => l.length);
    if (sample.length === 0) return;
    hasStamps = sample.filter((l) => STAMP.test(l)).length >= Math.ceil(sample.length * 0.8);
  }

  // ---- Drawing the lines in view ----

  let target = null;

  function renderLine(i) {
    const num = i + 1;
    const row = h('div', { class: `line${target === num ? ' target' : ''}` });
    row.appendChild(h('a', { class: 'ln', href: `#L${num}`, 'aria-label': `Line ${num}`, tabindex: '-1' }, String(num)));
    const text = h('span', { class: 'txt' });
    row.appendChild(text);
    const { segments } = parse(rawLine(i), stateAt(i));
    const stamp = stampLength(fullPlain(i));
    let skip = stamp;
    const ranges = matchesOn(i);
    let offset = 0;
    for (const seg of segments) {
      let piece = seg.text;
      let at = offset;
      offset += piece.length;
      if (skip > 0) {
        const cut = Math.min(skip, piece.length);
        piece = piece.slice(cut);
        at += cut;
        skip -= cut;
      }
      if (piece) appendSegment(text, piece, seg.style, at - stamp, ranges);
    }
    return row;
  }

  /** A segment of text with the search's matches marked inside it. */
  function appendSegment(row, text, style, at, ranges) {
    const wrap = (t) => {
      if (!styled(style)) return document.createTextNode(t);
      const span = h('span', {}, t);
      paint(span, style);
      return span;
    };
    let pos = 0;
    for (const [start, end, current] of ranges) {
      const a = Math.max(start - at, pos);
      const b = Math.min(end - at, text.length);
      if (b <= a) continue;
      if (a > pos) row.appendChild(wrap(text.slice(pos, a)));
      const mark = h('mark', { class: current ? 'current' : null });
      mark.appendChild(wrap(text.slice(a, b)));
      row.appendChild(mark);
      pos = b;
    }
    if (pos < text.length) row.appendChild(wrap(text.slice(pos)));
  }

  let stickToBottom = true;

  function render() {
    if (stopped) return;
    const total = lineCount();
    spacer.style.height = `${total * LINE}px`;
    const top = Math.max(0, scroller.scrollTop - note.offsetHeight);
    const first = Math.max(0, Math.floor(top / LINE) - OVERSCAN);
    const last = Math.min(total, Math.ceil((top + scroller.clientHeight) / LINE) + OVERSCAN, first + MAX_ROWS);
    slab.style.transform = `translateY(${first * LINE + (note.hidden ? 0 : note.offsetHeight)}px)`;
    const rows = [];
    for (let i = first; i < last; i++) rows.push(renderLine(i));
    replace(slab, rows);
  }

  const schedule = perFrame((grew) => {
    const atBottom = stickToBottom;
    render();
    if (grew && atBottom && following && !target) scroller.scrollTop = scroller.scrollHeight;
    updateState();
  });

  scroller.addEventListener('scroll', () => {
    stickToBottom = scroller.scrollTop + scroller.clientHeight >= scroller.scrollHeight - LINE;
    schedule(false);
  });

  function updateState() {
    const total = lineCount();
    const what = total === 0 && !following ? 'No output.' : `${total} line${total === 1 ? '' : 's'}`;
    state.textContent = following ? `Following… ${what}` : what;
  }

  // ---- Search over the whole text ----

  let query = '';
  /** Every match: [line, start, end] in the shown text. */
  let matches = [];
  let current = -1;

  function searchFrom(firstLine) {
    const q = query.toLowerCase();
    const total = lineCount();
    // A partial line searched before may have grown: search it again.
    matches = matches.filter((m) => m[0] < firstLine);
    for (let i = firstLine; i < total; i++) {
      const t = shown(i).toLowerCase();
      let at = t.indexOf(q);
      while (at >= 0) {
        matches.push([i, at, at + q.length]);
        at = t.indexOf(q, at + Math.max(1, q.length));
      }
    }
    showCount();
  }

  function showCount() {
    if (!query) count.textContent = '';
    else if (matches.length === 0) count.textContent = 'No match';
    else count.textContent = current >= 0 ? `${current + 1} of ${matches.length}` : `${matches.length} matches`;
  }

  function matchesOn(i) {
    if (!query) return [];
    // Matches are in line order: find the first on line i.
    let lo = 0;
    let hi = matches.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (matches[mid][0] < i) lo = mid + 1;
      else hi = mid;
    }
    const out = [];
    for (let k = lo; k < matches.length && matches[k][0] === i; k++) {
      out.push([matches[k][1], matches[k][2], k === current]);
    }
    return out;
  }

  function runSearch() {
    query = search.value;
    matches = [];
    current = -1;
    if (query) {
      searchFrom(0);
      if (matches.length) go(0);
    } else {
      showCount();
    }
    schedule(false);
  }

  function go(k) {
    if (!matches.length) return;
    current = ((k % matches.length) + matches.length) % matches.length;
    scrollToLine(matches[current][0], false);
    showCount();
    schedule(false);
  }

  search.addEventListener('input', debounce(runSearch, 150));
  search.addEventListener('keydown', (e) => {
    if (e.key === 'Enter') {
      e.preventDefault();
      if (query !== search.value) runSearch();
      else go(current + (e.shiftKey ? -1 : 1));
    }
  });
  next.addEventListener('click', () => go(current + 1));
  prev.addEventListener('click', () => go(current - 1));

  // ---- Line links ----

  function scrollToLine(i, mark = true) {
    if (mark) target = i + 1;
    const y = i * LINE + (note.hidden ? 0 : note.offsetHeight);
    if (y < scroller.scrollTop || y > scroller.scrollTop + scroller.clientHeight - 2 * LINE) {
      scroller.scrollTop = Math.max(0, y - scroller.clientHeight / 3);
    }
    stickToBottom = false;
  }

  function fromHash() {
    const m = /^#L(\d+)$/.exec(location.hash);
    if (!m) return false;
    const line = Number(m[1]);
    if (line < 1 || line > lineCount()) return false;
    scrollToLine(line - 1);
    schedule(false);
    return true;
  }
  let hashDone = false;
  const onHash = () => {
    hashDone = fromHash();
  };
  window.addEventListener('hashchange', onHash);

  // ---- Times ----

  function showNote() {
    const noTimes = showTimes && hasStamps !== true;
    note.hidden = !noTimes;
    if (noTimes) {
      const end = attempt.finishedAt ? `, ended at ${when(attempt.finishedAt)}` : ', still running';
      note.textContent = `This output has no times of its own: attempt ${n} started at ${when(attempt.startedAt)}${end}.`;
    }
  }

  times.addEventListener('change', () => {
    showTimes = times.checked;
    showNote();
    plainCache.length = 0;
    if (query) runSearch();
    schedule(false);
  });

  // ---- Reading ----

  async function read() {
    updateState();
    let response;
    try {
      response = await api(logPath(uid, job, n, following), { raw: true, signal: controller.signal });
    } catch (e) {
      if (e.name === 'AbortError') return;
      following = false;
      state.textContent = e.status === 404 ? 'No output yet.' : `The log could not be read: ${e.message}`;
      return;
    }
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        appendText(decoder.decode(value, { stream: true }));
        if (!hashDone) hashDone = fromHash();
      }
      appendText(decoder.decode());
    } catch (e) {
      if (e.name === 'AbortError' || stopped) return;
      state.textContent = `The log stream broke: ${e.message}`;
    }
    following = false;
    if (hasStamps === null) detectStamps();
    if (!hashDone) hashDone = fromHash();
    schedule(false);
  }

  const resize = new ResizeObserver(() => schedule(false));
  resize.observe(scroller);
  read();

  return {
    stop() {
      stopped = true;
      controller.abort();
      resize.disconnect();
      window.removeEventListener('hashchange', onHash);
    },
    /** Whether this view still follows (its attempt is running). */
    get following() {
      return following;
    },
  };
}
