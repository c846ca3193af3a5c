// Submitting from New run and watching the run; a job's log while it runs; Cancel and Retry.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { ROOT, startServer, openPage, closeBrowser, submit, waitForRun } from './helpers.mjs';

after(closeBrowser);

test('the seed example submitted from New run is drawn before it starts and watched to its end', async () => {
  const server = await startServer();
  try {
    const { page } = await openPage(server);
    await page.goto('/');
    await page.getByRole('link', { name: 'New run' }).click();
    await page.waitForURL('**/new');
    await page.locator('#pipeline-file').setInputFiles(join(ROOT, 'examples', 'seed.chainr'));
    await page.getByText('No problems.').waitFor();
    assert.match(await page.getByLabel('Pipeline').inputValue(), /pipeline example/);
    await page.getByRole('button', { name: 'Submit' }).click();
    await page.waitForURL(/\/runs\/[0-9a-f-]+$/);
    // Every planned job is there from the start, then each ends as the seed says.
    for (const [job, status] of [
      ['first', 'SUCCESSFUL'],
      ['second', 'SUCCESSFUL'],
      ['success', 'SUCCESSFUL'],
      ['error', 'SKIPPED'],
    ]) {
      await page.getByRole('link', { name: `${job}: ${status}` }).waitFor({ timeout: 20_000 });
    }
    await page.locator('.runhead .badge', { hasText: 'SUCCESSFUL' }).waitFor();
    // The timeline shows the three attempts.
    await page.getByRole('tab', { name: 'Timeline' }).click();
    await page.getByRole('link', { name: /^first attempt 1: SUCCESSFUL/ }).waitFor();
    assert.equal(await page.locator('.timeline .bar').count(), 3);
    assert.deepEqual(page.errors, []);
  } finally {
    await server.stop();
  }
});

test('New run passes params to source and checks again as they change', async () => {
  const server = await startServer();
  try {
    const { page } = await openPage(server);
    await page.goto('/new');
    await page.getByLabel('Pipeline').fill('pipeline greet {\n  param who: string\n  job hello { image = "busybox"  run = "echo hello ${who}" }\n}\n');
    await page.getByText('1 error').waitFor();
    await page.getByText('error E0304').waitFor();
    await page.locator('.backdrop mark.error', { hasText: 'who' }).waitFor();
    await page.getByRole('button', { name: 'Add param' }).click();
    await page.getByLabel('Param 1 name').fill('who');
    await page.getByLabel('Param 1 value').fill('world');
    await page.getByText('No problems.').waitFor();
    assert.equal(await page.locator('.backdrop mark').count(), 0);
    await page.getByRole('button', { name: 'Submit' }).click();
    await page.waitForURL(/\/runs\/[0-9a-f-]+$/);
    await page.getByRole('link', { name: 'hello: SUCCESSFUL' }).click();
    await page.getByRole('region', { name: 'Log of hello, attempt 1' }).getByText('hello world').waitFor();
    assert.deepEqual(page.errors, []);
  } finally {
    await server.stop();
  }
});

test('a running job’s log shows lines as they arrive, in colour, searchable, with line links', async () => {
  const server = await startServer();
  try {
    const run = await submit(server, {
      kind: 'Pipeline',
      name: 'slow-printer',
      jobs: {
        print: {
          image: 'busybox',
          run:
            "printf '\\033[1;31mred and bold\\033[0m plain\\n'; " +
            'for i in 1 2 3 4 5 6 7 8; do echo "line $i"; sleep 0.7; done',
        },
      },
    });
    const uid = run.metadata.uid;
    await waitForRun(server, uid, (r) => r.jobs[0].status === 'RUNNING');
    const { page } = await openPage(server);
    await page.goto(`/runs/${uid}/jobs/print`);
    const log = page.getByRole('region', { name: 'Log of print, attempt 1' });
    await log.getByText('line 1', { exact: true }).waitFor();
    // Still going: the last line has not been printed yet, and the view says it follows.
    assert.equal(await log.getByText('line 8', { exact: true }).count(), 0);
    await page.getByText(/^Following…/).waitFor();
    await log.getByText('line 8', { exact: true }).waitFor({ timeout: 15_000 });
    await page.getByText(/^9 lines$/).waitFor({ timeout: 10_000 });
    // Colours and bold from the escape sequences, and no escape characters shown.
    const red = log.locator('span.fg1.ansi-bold', { hasText: 'red and bold' });
    await red.waitFor();
    assert.doesNotMatch(await log.innerText(), /\x1b|\[1;31m/);
    // Search looks through the whole text.
    await page.getByLabel('Search log').fill('line 7');
    await page.getByText('1 of 1').waitFor();
    assert.equal(await log.locator('mark.current').innerText(), 'line 7');
    // A line link marks its line.
    await page.goto(`/runs/${uid}/jobs/print#L4`);
    await log.locator('.line.target', { hasText: 'line 3' }).waitFor();
    const download = page.getByRole('link', { name: 'Download' });
    assert.equal(await download.getAttribute('href'), `/api/runs/${uid}/jobs/print/logs?attempt=1`);
    assert.deepEqual(page.errors, []);
  } finally {
    await server.stop();
  }
});

test('search finds lines far outside the few the log view draws', async () => {
  const server = await startServer();
  try {
    const run = await submit(server, {
      kind: 'Pipeline',
      name: 'chatty',
      jobs: { count: { image: 'busybox', run: 'seq 1 200000 | sed "s/^/entry /"; echo "needle in the haystack"' } },
    });
    const uid = run.metadata.uid;
    await waitForRun(server, uid, (r) => r.status === 'SUCCESSFUL');
    const { page } = await openPage(server);
    await page.goto(`/runs/${uid}/jobs/count`);
    await page.getByText(/^200001 lines$/).waitFor({ timeout: 20_000 });
    const log = page.getByRole('region', { name: 'Log of count, attempt 1' });
    // Only the lines in view are in the page: the last one is not.
    assert.ok((await log.locator('.line').count()) < 500);
    assert.equal(await log.getByText('needle in the haystack').count(), 0);
    await page.getByLabel('Search log').fill('NEEDLE');
    await page.getByText('1 of 1').waitFor();
    await log.locator('mark.current', { hasText: 'needle' }).waitFor();
    // Many matches are counted over the whole text, and Enter goes from one to the next.
    await page.getByLabel('Search log').fill('entry 19999');
    await page.getByText('1 of 11').waitFor();
    await page.getByLabel('Search log').press('Enter');
    await page.getByText('2 of 11').waitFor();
    assert.equal(await log.locator('mark.current').innerText(), 'entry 19999');
    assert.deepEqual(page.errors, []);
  } finally {
    await server.stop();
  }
});

test('Cancel stops a running run and Retry runs a failed one again', async () => {
  const server = await startServer();
  try {
    const { page } = await openPage(server);
    const long = await submit(server, {
      kind: 'Pipeline',
      name: 'long',
      jobs: { wait: { image: 'busybox', run: 'sleep 60' } },
    });
    await waitForRun(server, long.metadata.uid, (r) => r.jobs[0].status === 'RUNNING');
    await page.goto(`/runs/${long.metadata.uid}`);
    await page.getByRole('link', { name: 'wait: RUNNING' }).waitFor();
    assert.equal(await page.getByRole('button', { name: 'Retry' }).count(), 0);
    await page.getByRole('button', { name: 'Cancel' }).click();
    await page.getByRole('link', { name: 'wait: CANCELLED' }).waitFor({ timeout: 15_000 });
    await page.locator('.runhead .badge', { hasText: 'CANCELLED' }).waitFor();
    // Once it ended, Retry is offered instead.
    await page.getByRole('button', { name: 'Retry' }).waitFor();

    const failing = await submit(server, {
      kind: 'Pipeline',
      name: 'failing',
      jobs: { flaky: { image: 'busybox', run: 'echo attempt; exit 3' } },
    });
    const uid = failing.metadata.uid;
    await waitForRun(server, uid, (r) => r.status === 'FAILED');
    await page.goto(`/runs/${uid}/jobs/flaky`);
    await page.getByRole('cell', { name: '3', exact: true }).waitFor();
    await page.getByRole('button', { name: 'Retry' }).click();
    // The same run goes on: attempt 2 appears in the panel and fails as the first did.
    await page.getByRole('link', { name: 'Attempt 2 output' }).waitFor({ timeout: 15_000 });
    await page.locator('.runhead .badge', { hasText: 'FAILED' }).waitFor({ timeout: 15_000 });
    const doc = await waitForRun(server, uid, (r) => r.status === 'FAILED' && r.jobs[0].attempts.length === 2);
    assert.equal(doc.jobs[0].attempts[1].exitCode, 3);
    assert.deepEqual(page.errors, []);
  } finally {
    await server.stop();
  }
});
