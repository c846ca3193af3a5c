// The runs list's filters and pages, and a run's fan-out group: one node until expanded, and
// Find job reaching an instance inside it.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, openPage, closeBrowser, submit, waitForRun } from './helpers.mjs';

after(closeBrowser);

/** Waits until the list shows `n` rows (a filter re-reads the page after the URL changed). */
function rows(page, n) {
  return page.waitForFunction((count) => document.querySelectorAll('tbody tr[data-uid]').length === count, n);
}

test('runs are filtered by status and pipeline and read a page at a time', async () => {
  // Without a worker every run stays pending.
  const server = await startServer({ extra: ['--roles', 'api'] });
  try {
    const uids = [];
    for (let i = 0; i < 53; i++) {
      const name = i % 10 === 0 ? 'nightly' : 'ci';
      const run = await submit(server, { kind: 'Pipeline', name, jobs: { a: { image: 'busybox', run: 'true' } } });
      uids.push(run.metadata.uid);
    }
    const { page } = await openPage(server);
    await page.goto('/');
    await page.locator('tbody tr').nth(49).waitFor();
    assert.equal(await page.locator('tbody tr').count(), 50);
    // Newest first.
    assert.equal(await page.locator('tbody tr').first().getAttribute('data-uid'), uids[52]);
    await page.getByRole('link', { name: 'Next page' }).click();
    await page.waitForURL(/\?after=/);
    await page.locator(`tr[data-uid="${uids[0]}"]`).waitFor();
    await rows(page, 3);
    assert.equal(await page.getByRole('link', { name: 'Next page' }).count(), 0);
    await page.getByRole('link', { name: 'Newest runs' }).click();
    await page.locator(`tr[data-uid="${uids[52]}"]`).waitFor();
    // A run no worker took yet is drawn whole, every job pending.
    await page.goto(`/runs/${uids[52]}`);
    await page.getByRole('link', { name: 'a: PENDING' }).waitFor();
    await page.goto('/');

    await page.getByLabel('Pipeline').fill('nightly');
    await page.waitForURL(/pipeline=nightly/);
    await rows(page, 6);
    await page.getByLabel('Status').selectOption('FAILED');
    await page.waitForURL(/status=FAILED/);
    await page.getByText('No runs yet.').waitFor();
    await page.getByLabel('Status').selectOption('PENDING');
    await rows(page, 6);
    // A filtered page still shows new runs that match, live.
    const fresh = await submit(server, { kind: 'Pipeline', name: 'nightly', jobs: { a: { image: 'busybox', run: 'true' } } });
    await page.locator(`tr[data-uid="${fresh.metadata.uid}"]`).waitFor();
    assert.equal(await page.locator('tbody tr').first().getAttribute('data-uid'), fresh.metadata.uid);
    const other = await submit(server, { kind: 'Pipeline', name: 'ci', jobs: { a: { image: 'busybox', run: 'true' } } });
    await page.waitForTimeout(1000);
    assert.equal(await page.locator(`tr[data-uid="${other.metadata.uid}"]`).count(), 0);
    assert.deepEqual(page.errors, []);
  } finally {
    await server.stop();
  }
});

test('a fan-out group is one node with its counts until expanded; Find job reaches an instance', async () => {
  const server = await startServer();
  try {
    const run = await submit(
      server,
      `pipeline fan {
  job prepare { image = "busybox"  run = "true" }
  job shard for i in 0..4 after prepare { image = "busybox"  run = "echo shard \${i}" }
  job merge after shard { image = "busybox"  run = "true" }
}
`,
    );
    const uid = run.metadata.uid;
    await waitForRun(server, uid, (r) => r.status === 'SUCCESSFUL');
    const { page } = await openPage(server);
    await page.goto(`/runs/${uid}`);
    const group = page.getByRole('button', { name: 'shard: group of 4 jobs, 4 successful' });
    await group.waitFor();
    assert.equal(await page.getByRole('link', { name: 'shard-2: SUCCESSFUL' }).count(), 0);
    await group.click();
    await page.getByRole('link', { name: 'shard-2: SUCCESSFUL' }).waitFor();
    assert.equal(await page.getByRole('button', { name: /^shard: group/ }).count(), 0);

    // On a fresh page the group is collapsed again; Find job expands it to reach the instance.
    await page.goto(`/runs/${uid}`);
    await page.getByRole('button', { name: /^shard: group/ }).waitFor();
    await page.getByLabel('Find job').fill('shard-3');
    await page.getByLabel('Find job').press('Enter');
    await page.waitForFunction(() => document.activeElement.getAttribute('aria-label') === 'shard-3: SUCCESSFUL');
    await page.keyboard.press('Enter');
    await page.waitForURL(`**/runs/${uid}/jobs/shard-3`);
    await page.getByRole('region', { name: 'Log of shard-3, attempt 1' }).getByText('shard 3').waitFor();
    assert.match(await page.locator('dl.def').innerText(), /an instance of shard/);
    assert.deepEqual(page.errors, []);
  } finally {
    await server.stop();
  }
});
