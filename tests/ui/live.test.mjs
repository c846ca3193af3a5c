// Keyboard alone from the runs list to a job's log, and a runs list that misses nothing when its
// event stream is cut: the server is stopped (SIGTERM ends the stream), other runs are submitted
// and finished by another server on the same data meanwhile, and the first server comes back on
// the same address; the browser's EventSource reconnects by itself with Last-Event-ID, without a
// reload or any polling.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer, openPage, closeBrowser, submit, waitForRun } from './helpers.mjs';

after(closeBrowser);

/** The focused element's accessible name as the tests read it. */
function focusedName(page) {
  return page.evaluate(() => {
    const el = document.activeElement;
    return el ? el.getAttribute('aria-label') || el.textContent.trim() : '';
  });
}

/** Presses Tab until the focused element's name matches, at most `limit` times. */
async function tabTo(page, name, limit = 40) {
  const names = [];
  for (let i = 0; i < limit; i++) {
    await page.keyboard.press('Tab');
    const now = await focusedName(page);
    names.push(now);
    if (typeof name === 'string' ? now === name : name.test(now)) return;
  }
  throw new Error(`Tab never reached ${name}; went through: ${names.join(' | ')}`);
}

test('the keyboard alone goes from the runs list to a job’s log, with focus always visible', async () => {
  const server = await startServer();
  try {
    const run = await submit(server, {
      kind: 'Pipeline',
      name: 'keys',
      jobs: {
        build: { image: 'busybox', run: 'echo built it' },
        test: { image: 'busybox', run: 'echo tested it', dependsOn: [{ job: 'build' }] },
      },
    });
    const uid = run.metadata.uid;
    await waitForRun(server, uid, (r) => r.status === 'SUCCESSFUL');
    const { page } = await openPage(server);
    await page.goto('/');
    await page.getByRole('link', { name: /^keys run/ }).waitFor();
    await tabTo(page, /^keys run/);
    await page.keyboard.press('Enter');
    await page.waitForURL(`**/runs/${uid}`);
    await page.getByRole('link', { name: 'test: SUCCESSFUL' }).waitFor();
    await tabTo(page, 'build: SUCCESSFUL');
    const outline = await page.evaluate(() => getComputedStyle(document.activeElement).outlineStyle);
    assert.notEqual(outline, 'none');
    // Arrow keys move between jobs.
    await page.keyboard.press('ArrowRight');
    assert.equal(await focusedName(page), 'test: SUCCESSFUL');
    await page.keyboard.press('Enter');
    await page.waitForURL(`**/runs/${uid}/jobs/test`);
    // Focus moved to the panel; the log is the next stop but for the panel's controls.
    assert.equal(await focusedName(page), 'test: SUCCESSFUL');
    await tabTo(page, 'Log of test, attempt 1');
    await page.getByRole('region', { name: 'Log of test, attempt 1' }).getByText('tested it').waitFor();
    // Escape closes the panel and focus goes back to the job.
    await page.keyboard.press('Escape');
    await page.waitForURL(`**/runs/${uid}`);
    assert.equal(await focusedName(page), 'test: SUCCESSFUL');
    // Find job brings a job into view and focuses it.
    await page.getByLabel('Find job').fill('buil');
    await page.getByLabel('Find job').press('Enter');
    assert.equal(await focusedName(page), 'build: SUCCESSFUL');
    assert.deepEqual(page.errors, []);
  } finally {
    await server.stop();
  }
});

test('the runs list misses no change while its event stream is cut and resumed', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'chainr-ui-reconnect-'));
  const servers = [];
  try {
    const first = await startServer({ dataDir: dir });
    servers.push(first);
    const address = new URL(first.url).host;
    const { page } = await openPage(first);
    await page.goto('/');
    await page.locator('.live.on').waitFor();
    await page.evaluate(() => {
      window.notReloaded = true;
    });

    // The server goes away before the page saw any change (so only the place the stream
    // started from tells where to resume): the stream ends; the page says it is reconnecting.
    await first.stop();
    await page.locator('.live.off').waitFor();

    // Meanwhile, another server on the same data takes two runs and finishes them.
    const other = await startServer({ dataDir: dir });
    servers.push(other);
    const missed = [];
    for (const name of ['while-away-1', 'while-away-2']) {
      const run = await submit(other, { kind: 'Pipeline', name, jobs: { a: { image: 'busybox', run: 'true' } } });
      missed.push(run.metadata.uid);
    }
    for (const uid of missed) await waitForRun(other, uid, (r) => r.status === 'SUCCESSFUL');
    await other.stop();

    // The first server comes back where it was: the page catches up by itself.
    const again = await startServer({ dataDir: dir, listen: address });
    servers.push(again);
    for (const uid of missed) {
      const row = page.locator(`tr[data-uid="${uid}"]`);
      await row.getByText('SUCCESSFUL').waitFor({ timeout: 30_000 });
    }
    await page.locator('.live.on').waitFor();
    assert.equal(await page.evaluate(() => window.notReloaded), true);
    // Each run once, newest first.
    const shown = await page.locator('tbody tr').evaluateAll((rows) => rows.map((r) => r.dataset.uid));
    assert.deepEqual(shown, [missed[1], missed[0]]);
    const unexpected = page.errors.filter((e) => !/ERR_CONNECTION_REFUSED|net::ERR/.test(e));
    assert.deepEqual(unexpected, []);
  } finally {
    for (const s of servers) await s.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});
