// WCAG AA contrast of the UI's colours, read from server/ui/style.css for both themes: text at
// least 4.5:1 on the backgrounds it is drawn on, state colours of bars and graph nodes at least
// 3:1 against the page (non-text contrast, WCAG 1.4.11).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from './helpers.mjs';

const css = readFileSync(join(ROOT, 'server', 'ui', 'style.css'), 'utf8');

/** The custom properties of the first block after `marker` (`:root {` then the dark one). */
function variables(block) {
  const out = {};
  for (const m of block.matchAll(/--([a-z0-9-]+):\s*(#[0-9a-fA-F]{6})\b/g)) out[m[1]] = m[2];
  return out;
}

const lightBlock = css.slice(css.indexOf(':root {'), css.indexOf('@media (prefers-color-scheme: dark)'));
const darkStart = css.indexOf('@media (prefers-color-scheme: dark)');
const darkBlock = css.slice(darkStart, css.indexOf('\n}\n', darkStart));
const light = variables(lightBlock);
const dark = { ...light, ...variables(darkBlock) };

function luminance(hex) {
  const [r, g, b] = [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16) / 255).map((c) => (c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4));
  return 0.2126 * r + 0.7152 * g + 0.0722 * b;
}

function ratio(a, b) {
  const [x, y] = [luminance(a), luminance(b)].sort((p, q) => q - p);
  return (x + 0.05) / (y + 0.05);
}

const STATES = ['pending', 'running', 'successful', 'failed', 'skipped', 'errored', 'cancelled'];

/** [foreground, background, minimum] pairs the UI draws. */
function pairs() {
  const out = [];
  for (const bg of ['bg', 'panel', 'raised']) {
    out.push(['fg', bg, 4.5], ['muted', bg, 4.5], ['link', bg, 4.5], ['danger', bg, 4.5]);
  }
  for (const s of STATES) {
    // Badges and graph nodes: the state's word on its tint; the node's name on the tint too.
    out.push([`t-${s}`, `bg-${s}`, 4.5], ['fg', `bg-${s}`, 4.5], [`t-${s}`, 'bg', 4.5]);
    // Bars and node borders against the page.
    out.push([`c-${s}`, 'bg', 3]);
  }
  out.push(['accent-fg', 'accent', 4.5], ['focus', 'bg', 3], ['fg', 'mark', 4.5], ['fg', 'mark-current', 4.5]);
  for (let i = 0; i <= 15; i++) out.push([`ansi-${i}`, 'log-bg', 4.5]);
  return out;
}

for (const [theme, vars] of [['light', light], ['dark', dark]]) {
  test(`${theme} theme: text and state colours meet WCAG AA`, () => {
    const failures = [];
    for (const [fg, bg, min] of pairs()) {
      assert.ok(vars[fg] && vars[bg], `--${fg} or --${bg} is not defined in the ${theme} theme`);
      const r = ratio(vars[fg], vars[bg]);
      if (r < min) failures.push(`--${fg} ${vars[fg]} on --${bg} ${vars[bg]}: ${r.toFixed(2)} < ${min}`);
    }
    assert.deepEqual(failures, []);
  });
}
