// What the browser tests share: a real `chainrc serve` per test (its own port, data directory and
// tokens), Debian's chromium driven by playwright-core with a fresh profile, and the checks every
// page gets (no script error, no failed request to the UI's own files).

import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const SCREENSHOTS = join(ROOT, 'docs', 'screenshots');

/** The binary under test: CHAINRC, or the debug build in CARGO_TARGET_DIR (or ./target). */
export const CHAINRC =
  process.env.CHAINRC || join(process.env.CARGO_TARGET_DIR || join(ROOT, 'target'), 'debug', 'chainrc');

export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';

/** Chromium's flags for tests (docs: /work/shared/design/ui.md's conventions). */
export const CHROMIUM_FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
];

export const WRITE_TOKEN = 'ui-test-writer-token-0123456789';
export const READ_TOKEN = 'ui-test-reader-token-0123456789';

/**
 * Starts `chainrc serve` on a free loopback port with a data directory of its own.
 * `auth`: 'none' (--no-auth) or 'tokens' (a writer `ci` and a reader `viewer`).
 * `dataDir` and `listen` let a test restart a server on the same data and port.
 */
export async function startServer({ auth = 'none', dataDir, listen = '127.0.0.1:0', extra = [] } = {}) {
  const dir = dataDir || mkdtempSync(join(tmpdir(), 'chainr-ui-'));
  const args = ['serve', '--listen', listen, '--data-dir', dir, ...extra];
  if (auth === 'none') {
    args.push('--no-auth');
  } else {
    const file = join(dir, 'tokens');
    writeFileSync(file, `ci write ${WRITE_TOKEN}\nviewer read ${READ_TOKEN}\n`);
    args.push('--tokens', file);
  }
  const proc = spawn(CHAINRC, args, {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, RUST_LOG: 'info', NO_COLOR: '1' },
  });
  let log = '';
  const url = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`chainrc serve did not start:\n${log}`)), 20_000);
    proc.stderr.on('data', (chunk) => {
      log += chunk;
      const m = /chainr serving on (http:\/\/[0-9.:]+)/.exec(log);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
    proc.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`chainrc serve exited with ${code}:\n${log}`));
    });
  });
  proc.stderr.on('data', (chunk) => {
    log += chunk;
  });
  const server = {
    url,
    dataDir: dir,
    proc,
    log: () => log,
    /** SIGTERM (a drain) and wait for the exit. */
    async stop({ keepData = false } = {}) {
      if (proc.exitCode === null && proc.signalCode === null) {
        const exited = new Promise((r) => proc.once('exit', r));
        proc.kill('SIGTERM');
        await exited;
      }
      if (!keepData && !dataDir) rmSync(dir, { recursive: true, force: true });
    },
    /** An API request from the test itself (as a client with the writer's token). */
    async api(path, { method = 'GET', body, type, token = auth === 'none' ? null : WRITE_TOKEN, headers = {} } = {}) {
      const h = { ...headers };
      if (token) h.Authorization = `Bearer ${token}`;
      if (type) h['Content-Type'] = type;
      const r = await fetch(url + path, { method, body, headers: h });
      const text = await r.text();
      let json = null;
      try {
        json = JSON.parse(text);
      } catch {
        json = null;
      }
      return { status: r.status, json, text, headers: r.headers };
    },
  };
  return server;
}

/** Submits a pipeline (IR JSON as an object, or source text) and answers the Run document. */
export async function submit(server, pipeline) {
  const source = typeof pipeline === 'string';
  const r = await server.api('/api/runs', {
    method: 'POST',
    body: source ? pipeline : JSON.stringify(pipeline),
    type: source ? 'text/x-chainr' : 'application/json',
  });
  if (r.status !== 202) throw new Error(`submit: ${r.status} ${r.text}`);
  return r.json;
}

/** Waits until the run's document satisfies `ok`. */
export async function waitForRun(server, uid, ok, timeout = 20_000) {
  const until = Date.now() + timeout;
  let last = null;
  while (Date.now() < until) {
    const r = await server.api(`/api/runs/${uid}`);
    last = r.json;
    if (last && ok(last)) return last;
    await new Promise((res) => setTimeout(res, 100));
  }
  throw new Error(`run ${uid} never got there: ${JSON.stringify(last && last.status)}`);
}

let browser = null;

/** One chromium for the whole file (each test gets its own context: a fresh profile's state). */
export async function launchBrowser() {
  if (!browser) {
    browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_FLAGS, headless: true });
  }
  return browser;
}

export async function closeBrowser() {
  if (browser) await browser.close();
  browser = null;
}

/**
 * A page on `server` in a new context: script errors and failed requests fail the test
 * (`page.errors` collects them; answers the UI expects, 401, 403, 404 and 409, excepted), and
 * dialogs are recorded (`page.dialogs`) and dismissed.
 */
export async function openPage(server, { colorScheme = 'light', viewport = { width: 1280, height: 800 } } = {}) {
  const b = await launchBrowser();
  const context = await b.newContext({ colorScheme, viewport, baseURL: server.url, reducedMotion: 'reduce' });
  const page = await context.newPage();
  page.errors = [];
  page.dialogs = [];
  page.on('pageerror', (e) => page.errors.push(e.message));
  page.on('console', (m) => {
    if (m.type() === 'error' && !/Failed to load resource: the server responded with a status of 40[1349]/.test(m.text())) {
      page.errors.push(m.text());
    }
  });
  page.on('dialog', (d) => {
    page.dialogs.push(d.message());
    d.dismiss().catch(() => {});
  });
  return { context, page };
}

/** Writes a screenshot into docs/screenshots/. */
export async function screenshot(page, name) {
  mkdirSync(SCREENSHOTS, { recursive: true });
  await page.screenshot({ path: join(SCREENSHOTS, `${name}.png`) });
}
