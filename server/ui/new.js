// New run (`/new`): a pipeline pasted or uploaded (`.chainr` source or the IR's JSON), params for
// source, the compiler's diagnostics (`POST /api/check`, a moment after typing stops) marked on
// the text and listed beside it, and Submit.

import { api, link } from './api.js';
import { h, replace, debounce, announce } from './dom.js';

export function mount(main, params, ctx) {
  document.title = 'New run · chainr';
  if (!ctx.canWrite()) {
    replace(
      main,
      h('h1', { text: 'New run' }),
      h('p', {}, `The token ${ctx.me && ctx.me.name ? `“${ctx.me.name}” ` : ''}may only read: submitting needs a token with scope write.`),
    );
    return {};
  }
  const text = h('textarea', {
    id: 'pipeline-text',
    spellcheck: 'false',
    autocapitalize: 'off',
    autocomplete: 'off',
    'aria-label': 'Pipeline',
    'aria-describedby': 'check-state',
    placeholder: 'pipeline example {\n  job hello { image = "busybox"  run = "echo hello" }\n}',
  });
  const backdrop = h('pre', { class: 'backdrop', 'aria-hidden': 'true' });
  const file = h('input', { type: 'file', id: 'pipeline-file', accept: '.chainr,.json,application/json,text/plain' });
  const kind = h('span', { class: 'muted' });
  const checkState = h('p', { class: 'checkstate', id: 'check-state', 'aria-live': 'polite' });
  const diagList = h('ul', { class: 'diags', 'aria-label': 'Problems' });
  const paramRows = h('div');
  const addParam = h('button', { type: 'button' }, 'Add param');
  const paramsBox = h(
    'fieldset',
    { class: 'params' },
    h('legend', { text: 'Params (.chainr source only)' }),
    paramRows,
    addParam,
  );
  const submit = h('button', { type: 'submit', class: 'primary' }, 'Submit');
  const message = h('p', { class: 'error', role: 'alert' });
  const form = h(
    'form',
    { class: 'newrun', on: { submit: onSubmit } },
    h(
      'div',
      { class: 'editorcol' },
      h('h1', { text: 'New run' }),
      h('div', { class: 'toolbar' }, h('label', { for: 'pipeline-file' }, 'Upload a file '), file, kind),
      h('div', { class: 'editor' }, backdrop, text),
    ),
    h(
      'div',
      { class: 'side' },
      paramsBox,
      h('div', {}, submit),
      message,
      h('h2', { text: 'Problems' }),
      checkState,
      diagList,
    ),
  );
  replace(main, form);
  text.focus();

  // ---- What the text is ----

  function isJson() {
    return text.value.trimStart().startsWith('{');
  }

  function contentType() {
    return isJson() ? 'application/json' : 'text/x-chainr';
  }

  function query() {
    if (isJson()) return '';
    const q = new URLSearchParams();
    for (const row of paramRows.children) {
      const [name, value] = row.querySelectorAll('input');
      if (name.value.trim()) q.append('param', `${name.value.trim()}=${value.value}`);
    }
    const s = q.toString();
    return s ? `?${s}` : '';
  }

  function describeKind() {
    kind.textContent = !text.value.trim() ? '' : isJson() ? 'JSON (the Pipeline IR)' : '.chainr source';
    paramsBox.disabled = isJson();
  }

  // ---- Params ----

  let paramCount = 0;
  function addParamRow(name = '', value = '') {
    paramCount += 1;
    const n = paramCount;
    const nameInput = h('input', { 'aria-label': `Param ${n} name`, placeholder: 'name', value: name, on: { input: scheduleCheck } });
    const valueInput = h('input', { 'aria-label': `Param ${n} value`, placeholder: 'value', value, on: { input: scheduleCheck } });
    const row = h(
      'div',
      { class: 'param' },
      nameInput,
      valueInput,
      h(
        'button',
        {
          type: 'button',
          'aria-label': `Remove param ${n}`,
          on: {
            click: () => {
              row.remove();
              scheduleCheck();
              addParam.focus();
            },
          },
        },
        '×',
      ),
    );
    paramRows.appendChild(row);
    return nameInput;
  }
  addParam.addEventListener('click', () => addParamRow().focus());

  // ---- Diagnostics on the text ----

  let diagnostics = [];

  /** UTF-16 index of each byte offset the server gives (`start`, `end` count UTF-8 bytes). */
  function indexer(s) {
    return (byteOffset) => {
      // Walk characters until their UTF-8 length reaches the offset.
      let bytes = 0;
      let i = 0;
      while (i < s.length && bytes < byteOffset) {
        const cp = s.codePointAt(i);
        bytes += cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
        i += cp > 0xffff ? 2 : 1;
      }
      return i;
    };
  }

  function ranges() {
    const s = text.value;
    const at = indexer(s);
    return diagnostics
      .filter((d) => typeof d.start === 'number')
      .map((d) => {
        const a = at(d.start);
        let b = at(Math.max(d.end ?? d.start, d.start));
        if (b <= a) b = Math.min(s.length, a + 1);
        return { a, b, d };
      })
      .sort((x, y) => x.a - y.a);
  }

  function paint() {
    const s = text.value;
    const parts = [];
    let pos = 0;
    for (const { a, b, d } of ranges()) {
      if (a < pos) continue;
      if (a > pos) parts.push(s.slice(pos, a));
      parts.push(h('mark', { class: d.severity }, s.slice(a, b)));
      pos = b;
    }
    parts.push(s.slice(pos));
    // A final newline needs something after it to take its line's height.
    parts.push('\n');
    replace(backdrop, parts);
    backdrop.scrollTop = text.scrollTop;
  }

  function list() {
    const rs = ranges();
    replace(
      diagList,
      diagnostics.map((d) => {
        const where = d.line ? `${d.line}:${d.column}` : '';
        const item = h(
          'button',
          {
            type: 'button',
            on: {
              click: () => {
                const r = rs.find((x) => x.d === d);
                text.focus();
                if (r) text.setSelectionRange(r.a, r.b);
              },
            },
          },
          h('span', { class: `sev-${d.severity}`, text: `${d.severity} ${d.code}` }),
          where ? h('span', { class: 'where', text: ` at ${where}` }) : null,
          h('div', { text: d.message }),
          d.label ? h('div', { class: 'muted', text: d.label }) : null,
          d.help ? h('div', { class: 'muted', text: `help: ${d.help}` }) : null,
        );
        return h('li', {}, item);
      }),
    );
  }

  function show(found, words) {
    diagnostics = found;
    checkState.textContent = words;
    paint();
    list();
  }

  // ---- Checking as one types ----

  let inFlight = null;
  async function check() {
    describeKind();
    if (inFlight) inFlight.abort();
    if (!text.value.trim()) {
      show([], '');
      return;
    }
    const controller = new AbortController();
    inFlight = controller;
    checkState.textContent = 'Checking…';
    try {
      const result = await api(`/api/check${query()}`, {
        method: 'POST',
        body: text.value,
        type: contentType(),
        signal: controller.signal,
      });
      const errors = result.diagnostics.filter((d) => d.severity === 'error').length;
      const warnings = result.diagnostics.length - errors;
      const words =
        result.diagnostics.length === 0
          ? 'No problems.'
          : [errors ? `${errors} error${errors === 1 ? '' : 's'}` : null, warnings ? `${warnings} warning${warnings === 1 ? '' : 's'}` : null]
              .filter(Boolean)
              .join(', ');
      show(result.diagnostics, words);
    } catch (e) {
      if (e.name === 'AbortError') return;
      show((e.body && e.body.diagnostics) || [], e.message);
    } finally {
      if (inFlight === controller) inFlight = null;
    }
  }
  const scheduleCheck = debounce(check, 350);

  text.addEventListener('input', () => {
    describeKind();
    paint();
    scheduleCheck();
  });
  text.addEventListener('scroll', () => {
    backdrop.scrollTop = text.scrollTop;
  });

  file.addEventListener('change', async () => {
    const f = file.files && file.files[0];
    if (!f) return;
    text.value = await f.text();
    describeKind();
    paint();
    check();
  });

  // ---- Submit ----

  async function onSubmit(e) {
    e.preventDefault();
    message.textContent = '';
    if (!text.value.trim()) {
      message.textContent = 'Paste or upload a pipeline first.';
      text.focus();
      return;
    }
    scheduleCheck.cancel();
    submit.disabled = true;
    try {
      const run = await api(`/api/runs${query()}`, { method: 'POST', body: text.value, type: contentType() });
      announce('Submitted');
      ctx.navigate(link.run(run.metadata.uid));
    } catch (err) {
      message.textContent = err.message;
      if (err.body && err.body.diagnostics) show(err.body.diagnostics, 'The server refused the pipeline.');
      submit.disabled = false;
    }
  }

  return {
    stop() {
      scheduleCheck.cancel();
      if (inFlight) inFlight.abort();
    },
  };
}
