// Terminal colours in logs: SGR escape sequences (`ESC [ ... m`) turned into styled segments of
// plain text: the 16 colours (as classes the themes define), 256 colours and 24-bit colours,
// bold, dim, italic, underline and inverse. Other escape sequences are dropped. The state
// carries from one line to the next, as in a terminal.

/** The state of no styling. */
export const PLAIN = Object.freeze({ fg: null, bg: null, bold: false, dim: false, italic: false, underline: false, inverse: false });

// ESC [ params final-byte (CSI), ESC ] ... BEL or ESC \ (OSC), or ESC and one character.
const ESCAPE = /\x1b(?:\[([0-9;:?]*)([@-~])|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[@-Z\\-_])/g;

/** The 256-colour palette's entry `n` (16 and up) as CSS. */
function xterm(n) {
  if (n < 16) return n;
  if (n < 232) {
    const v = [0, 95, 135, 175, 215, 255];
    const k = n - 16;
    return `rgb(${v[Math.floor(k / 36)]}, ${v[Math.floor(k / 6) % 6]}, ${v[k % 6]})`;
  }
  const g = 8 + (n - 232) * 10;
  return `rgb(${g}, ${g}, ${g})`;
}

/** Applies SGR parameters to a state; answers the new state. */
function sgr(state, params) {
  const s = { ...state };
  const p = params === '' ? [0] : params.split(/[;:]/).map((x) => (x === '' ? 0 : Number(x)));
  for (let i = 0; i < p.length; i++) {
    const c = p[i];
    if (c === 0) Object.assign(s, PLAIN);
    else if (c === 1) s.bold = true;
    else if (c === 2) s.dim = true;
    else if (c === 3) s.italic = true;
    else if (c === 4) s.underline = true;
    else if (c === 7) s.inverse = true;
    else if (c === 22) s.bold = s.dim = false;
    else if (c === 23) s.italic = false;
    else if (c === 24) s.underline = false;
    else if (c === 27) s.inverse = false;
    else if (c >= 30 && c <= 37) s.fg = c - 30;
    else if (c >= 90 && c <= 97) s.fg = c - 90 + 8;
    else if (c === 39) s.fg = null;
    else if (c >= 40 && c <= 47) s.bg = c - 40;
    else if (c >= 100 && c <= 107) s.bg = c - 100 + 8;
    else if (c === 49) s.bg = null;
    else if (c === 38 || c === 48) {
      let colour = null;
      if (p[i + 1] === 5 && i + 2 < p.length) {
        colour = xterm(Math.max(0, Math.min(255, p[i + 2])));
        i += 2;
      } else if (p[i + 1] === 2 && i + 4 < p.length) {
        const [r, g, b] = p.slice(i + 2, i + 5).map((v) => Math.max(0, Math.min(255, v)));
        colour = `rgb(${r}, ${g}, ${b})`;
        i += 4;
      } else {
        break;
      }
      if (c === 38) s.fg = colour;
      else s.bg = colour;
    }
  }
  return s;
}

/**
 * Splits a line into segments `{text, style}` from the state at its start; answers
 * `{segments, end}` with the state at its end. A carriage return inside the line keeps what
 * follows it only (a progress bar redrawn in place shows its last state).
 */
export function parse(line, start = PLAIN) {
  const text = line.endsWith('\r') ? line.slice(0, -1) : line;
  // What a carriage return overwrote is not shown, but its colours still count.
  const cut = text.lastIndexOf('\r') + 1;
  const segments = [];
  const emit = (from, to, style) => {
    const a = Math.max(from, cut);
    if (to > a) segments.push({ text: text.slice(a, to), style });
  };
  let state = start;
  if (!text.includes('\x1b')) {
    emit(0, text.length, state);
    return { segments, end: state };
  }
  let last = 0;
  ESCAPE.lastIndex = 0;
  let m;
  while ((m = ESCAPE.exec(text)) !== null) {
    emit(last, m.index, state);
    if (m[2] === 'm') state = sgr(state, m[1] || '');
    last = ESCAPE.lastIndex;
  }
  emit(last, text.length, state);
  return { segments, end: state };
}

/** The text of a line without escape sequences (what search looks through). */
export function plain(line) {
  return parse(line).segments.map((s) => s.text).join('');
}

/** Whether a state draws anything differently from plain text. */
export function styled(style) {
  return style !== PLAIN && (style.fg !== null || style.bg !== null || style.bold || style.dim || style.italic || style.underline || style.inverse);
}

/** Puts a segment's style on an element: classes for the 16 colours, CSSOM for others. */
export function paint(el, style) {
  let { fg, bg } = style;
  if (style.inverse) [fg, bg] = [bg === null ? 'inverse-fg' : bg, fg === null ? 'inverse-bg' : fg];
  const classes = [];
  if (style.bold) classes.push('ansi-bold');
  if (style.dim) classes.push('ansi-dim');
  if (style.italic) classes.push('ansi-italic');
  if (style.underline) classes.push('ansi-underline');
  if (typeof fg === 'number') classes.push(`fg${fg}`);
  else if (fg === 'inverse-fg') el.style.color = 'var(--log-bg)';
  else if (fg) el.style.color = fg;
  if (typeof bg === 'number') classes.push(`bg${bg}`);
  else if (bg === 'inverse-bg') el.style.background = 'var(--fg)';
  else if (bg) el.style.background = bg;
  if (classes.length) el.className = classes.join(' ');
}
