// Building DOM from data. Text always goes in as text (textContent, text nodes): no function here
// parses HTML, so a job name or a log line that looks like markup shows as what it is.

/**
 * h('a', {href: '/', class: 'x', on: {click: f}}, 'text', child, [more])
 * Props: `class`, `text`, `on` (listeners), `hidden`, `value`, `checked`, `disabled`,
 * `dataset`; anything else is an attribute. Children: nodes, strings (as text), arrays,
 * and null/false/undefined (skipped).
 */
export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  if (props) {
    for (const [key, value] of Object.entries(props)) {
      if (value === undefined || value === null || value === false) continue;
      switch (key) {
        case 'class':
          el.className = value;
          break;
        case 'text':
          el.textContent = String(value);
          break;
        case 'on':
          for (const [type, fn] of Object.entries(value)) el.addEventListener(type, fn);
          break;
        case 'dataset':
          Object.assign(el.dataset, value);
          break;
        case 'hidden':
        case 'value':
        case 'checked':
        case 'disabled':
        case 'selected':
          el[key] = value;
          break;
        default:
          el.setAttribute(key, value === true ? '' : String(value));
      }
    }
  }
  append(el, children);
  return el;
}

/** Appends children (nodes, strings as text, arrays), skipping empty ones. */
export function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else if (c instanceof Node) el.appendChild(c);
    else el.appendChild(document.createTextNode(String(c)));
  }
  return el;
}

/** Replaces every child of `el`. */
export function replace(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

/** Says something to screen readers (the page's polite live region). */
export function announce(text) {
  const region = document.getElementById('announce');
  if (!region) return;
  region.textContent = '';
  // A new text node in a later task, so that saying the same thing twice is heard twice.
  setTimeout(() => {
    region.textContent = text;
  }, 30);
}

/** Calls `fn` at most once per animation frame, with the last arguments. */
export function perFrame(fn) {
  let queued = false;
  let lastArgs = [];
  return (...args) => {
    lastArgs = args;
    if (queued) return;
    queued = true;
    requestAnimationFrame(() => {
      queued = false;
      fn(...lastArgs);
    });
  };
}

/** Calls `fn` once `ms` have passed without another call. */
export function debounce(fn, ms) {
  let timer = 0;
  const call = (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
  call.cancel = () => clearTimeout(timer);
  return call;
}
