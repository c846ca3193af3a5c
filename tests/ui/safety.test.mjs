// What a run's data can never do to the page (markup in names and logs shows as text), and who
// may do what: signing in with a token, a read token's pages without actions, and a write from
// another origin refused even with the session cookie.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { startServer, openPage, closeBrowser, submit, waitForRun, WRITE_TOKEN, READ_TOKEN } from './helpers.mjs';

after(closeBrowser);

// Job names have no spaces or `/` (E0906), so the job's markup is what such a name can hold;
// the pipeline's name and the log hold the classic payloads.
const PIPELINE = '<img src=x onerror=alert(1)>';
const JOB = '<b>bold<i>job';
const LOG_LINE = '<img src=x onerror=alert(2)><script>alert(3)</script>';

test('names and log lines that look like HTML show as text and run nothing', async () => {
  const server = await startServer();
  try {
    const run = await submit(server, {
      kind: 'Pipeline',
      name: PIPELINE,
      jobs: { [JOB]: { image: 'busybox', run: `printf '%s\\n' '${LOG_LINE}'` } },
    });
    const uid = run.metadata.uid;
    await waitForRun(server, uid, (r) => r.status === 'SUCCESSFUL');
    const { page } = await openPage(server);
    await page.goto('/');
    await page.getByRole('link', { name: new RegExp(`^${escape(PIPELINE)} run`) }).waitFor();
    await page.goto(`/runs/${uid}`);
    await page.getByRole('heading', { level: 1 }).getByText(PIPELINE).waitFor();
    await page.getByRole('link', { name: `${JOB}: SUCCESSFUL` }).click();
    const log = page.getByRole('region', { name: `Log of ${JOB}, attempt 1` });
    await log.getByText(LOG_LINE, { exact: true }).waitFor();
    await page.getByRole('heading', { level: 2, name: `${JOB}: SUCCESSFUL` }).waitFor();
    // Nothing of it became an element, and nothing ran.
    assert.equal(await page.locator('main img, main script, main b, main i').count(), 0);
    assert.deepEqual(page.dialogs, []);
    assert.deepEqual(page.errors, []);
  } finally {
    await server.stop();
  }
});

function escape(s) {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

test('a token signs in; a read token sees no Cancel, Retry or New run', async () => {
  const server = await startServer({ auth: 'tokens' });
  try {
    const running = await submit(server, {
      kind: 'Pipeline',
      name: 'long',
      jobs: { wait: { image: 'busybox', run: 'sleep 60' } },
    });
    await waitForRun(server, running.metadata.uid, (r) => r.status === 'RUNNING');

    // The writer: asked to sign in first, then back where it was going, with every action.
    const { page } = await openPage(server);
    await page.goto(`/runs/${running.metadata.uid}`);
    await page.waitForURL('**/signin?next=**');
    await page.getByLabel('Token').fill('not-a-token-at-all');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByText('This token is not known to the server.').waitFor();
    await page.getByLabel('Token').fill(WRITE_TOKEN);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.waitForURL(`**/runs/${running.metadata.uid}`);
    await page.getByText('ci (write)').waitFor();
    await page.getByRole('button', { name: 'Cancel' }).waitFor();
    assert.equal(await page.getByRole('link', { name: 'New run' }).count(), 1);
    // The cookie is HttpOnly: the page's scripts cannot read the token.
    assert.equal(await page.evaluate(() => document.cookie), '');
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.waitForURL('**/signin');

    // The reader: the same pages, without what it may not do.
    await page.getByLabel('Token').fill(READ_TOKEN);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByText('viewer (read)').waitFor();
    await page.getByRole('link', { name: /^long run/ }).click();
    await page.getByRole('link', { name: 'wait: RUNNING' }).waitFor();
    assert.equal(await page.getByRole('button', { name: 'Cancel' }).count(), 0);
    assert.equal(await page.getByRole('button', { name: 'Retry' }).count(), 0);
    assert.equal(await page.getByRole('link', { name: 'New run' }).count(), 0);
    await page.goto('/new');
    await page.getByText(/may only read/).waitFor();
    assert.equal(await page.getByRole('button', { name: 'Submit' }).count(), 0);
    assert.deepEqual(page.errors, []);
  } finally {
    await server.stop();
  }
});

test('a write from a page of another origin is refused, even with the session cookie', async () => {
  const server = await startServer({ auth: 'tokens' });
  // Another origin on the same host (so the same site: the SameSite=Strict cookie goes along),
  // as a hostile page next door would be.
  const port = new URL(server.url).port;
  const other = createServer((req, res) => {
    res.setHeader('Content-Type', 'text/html');
    res.end('<!doctype html><title>elsewhere</title><p>elsewhere</p>');
  });
  await new Promise((r) => other.listen(0, '127.0.0.1', r));
  const otherUrl = `http://127.0.0.1:${other.address().port}/`;
  try {
    const { page } = await openPage(server);
    await page.goto('/signin');
    await page.getByLabel('Token').fill(WRITE_TOKEN);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByText('ci (write)').waitFor();

    await page.goto(otherUrl);
    const answered = page.waitForResponse((r) => r.url().endsWith('/api/runs'));
    const seen = await page.evaluate(async (target) => {
      // A "simple" request: the browser sends it without asking first, cookie and all.
      try {
        await fetch(target, {
          method: 'POST',
          mode: 'no-cors',
          credentials: 'include',
          headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
          body: '{"kind":"Pipeline","jobs":{"evil":{"image":"busybox","run":"touch /tmp/owned"}}}',
        });
        return 'sent';
      } catch (e) {
        return e.message;
      }
    }, `http://127.0.0.1:${port}/api/runs`);
    assert.equal(seen, 'sent');
    // 403, not 401: the cookie went along, and the Origin guard refused the write.
    const response = await answered;
    assert.equal(response.status(), 403);
    const list = await server.api('/api/runs');
    assert.equal(list.json.items.length, 0);
  } finally {
    other.close();
    await server.stop();
  }
});
