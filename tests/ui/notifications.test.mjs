// A run's Notifications tab: what went to each medium, dead letters with their error, and
// "Send again" for a caller who may write. The server has a stdout medium and a webhook whose
// port has nothing listening, with a short retry schedule.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer, submit, waitForRun, openPage, closeBrowser, screenshot } from './helpers.mjs';

after(closeBrowser);

/** A loopback port with nothing listening on it. */
async function closedPort() {
  const s = createServer();
  await new Promise((resolve) => s.listen(0, '127.0.0.1', resolve));
  const { port } = s.address();
  await new Promise((resolve) => s.close(resolve));
  return port;
}

test('the Notifications tab lists each medium and sends a dead letter again', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'chainr-ui-notify-'));
  const config = join(dir, 'notify.toml');
  process.env.UI_TEST_HOOK_SECRET = 'whsec_c2VjcmV0LWtleS1mb3ItdGVzdHMtb25seS0wMTIzNDU2Nzg5';
  writeFileSync(
    config,
    `[media.console]
type = "stdout"

[media.ops-hook]
type = "webhook"
url = "http://127.0.0.1:${await closedPort()}/hook"
secret = { env = "UI_TEST_HOOK_SECRET" }

[delivery]
schedule = ["100ms"]
timeout = "1s"
`,
  );
  const server = await startServer({ extra: ['--config', config] });
  try {
    const run = await submit(
      server,
      `pipeline nightly {
  notify on failed { to = ["console", "ops-hook"] }
  job load { image = "busybox" run = "echo broken; exit 2" }
}
`,
    );
    const uid = run.metadata.uid;
    await waitForRun(server, uid, (r) => r.status === 'FAILED');
    const dead = async () => {
      const r = await server.api(`/api/runs/${uid}/notifications`);
      return r.json.items.find((d) => d.state === 'dead');
    };
    const until = Date.now() + 15_000;
    while (!(await dead()) && Date.now() < until) await new Promise((res) => setTimeout(res, 100));
    assert.ok(await dead(), 'the webhook notification became a dead letter');

    const { page } = await openPage(server);
    await page.goto(`/runs/${uid}`);
    // The tab bar goes round with the arrow keys: Graph, Timeline, Notifications.
    await page.getByRole('tab', { name: 'Graph' }).focus();
    await page.keyboard.press('ArrowRight');
    await page.keyboard.press('ArrowRight');
    const tab = page.getByRole('tab', { name: 'Notifications' });
    assert.equal(await tab.getAttribute('aria-selected'), 'true');
    const table = page.getByRole('table');
    const sentRow = table.getByRole('row').filter({ hasText: 'console' });
    const deadRow = table.getByRole('row').filter({ hasText: 'ops-hook' });
    await sentRow.getByText('sent', { exact: true }).waitFor();
    await deadRow.getByText('dead', { exact: true }).waitFor();
    assert.match(await deadRow.textContent(), /could not be reached/);
    assert.match(await deadRow.textContent(), /failed/);
    assert.equal(await sentRow.getByRole('button').count(), 0, 'only a dead letter can be sent again');
    await screenshot(page, 'run-notifications');

    await deadRow.getByRole('button', { name: 'Send again to ops-hook' }).click();
    await page.locator('#announce', { hasText: 'The notification is sent again' }).waitFor();
    // Resent, it failed again, twice: its attempts counted once more from the start.
    const metricsUntil = Date.now() + 15_000;
    let metrics = '';
    while (Date.now() < metricsUntil) {
      metrics = (await server.api('/metrics')).text;
      if (metrics.includes('chainr_notification_attempts_total{medium="ops-hook",result="dead"} 2')) break;
      await new Promise((res) => setTimeout(res, 100));
    }
    assert.match(metrics, /chainr_notification_attempts_total\{medium="ops-hook",result="dead"\} 2/);
    // The view link keeps the tab.
    await page.goto(`/runs/${uid}?view=notifications`);
    assert.equal(await page.getByRole('tab', { name: 'Notifications' }).getAttribute('aria-selected'), 'true');
    await table.getByRole('row').filter({ hasText: 'ops-hook' }).waitFor();
    assert.deepEqual(page.errors, []);
  } finally {
    await server.stop();
  }
});
