// The pictures in docs/screenshots/ (shown in the README), taken from a real server with real
// runs: the runs list, a run's graph in light and dark, a job's panel with its log, and New run
// with a diagnostic. Each is also a test that the page shows what the picture is meant to show.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, startServer, openPage, closeBrowser, submit, waitForRun, screenshot } from './helpers.mjs';

after(closeBrowser);

const ESC = '\\033';

/** A release pipeline with a fan-out group, a failure, a skipped job, a running one, a finally. */
function release() {
  const jobs = {
    checkout: { image: 'alpine/git', run: 'echo "Cloning into orders-api..."; echo "HEAD is now at 4f2c9e1"' },
    build: {
      image: 'rust:1.80',
      dependsOn: [{ job: 'checkout' }],
      run: [
        `printf '${ESC}[1;32m   Compiling${ESC}[0m serde v1.0.210\\n'`,
        `printf '${ESC}[1;32m   Compiling${ESC}[0m tokio v1.40.0\\n'`,
        `printf '${ESC}[1;32m   Compiling${ESC}[0m orders-api v1.4.0 (/workspace)\\n'`,
        `printf '${ESC}[1;33mwarning${ESC}[0m${ESC}[1m: unused import: \`std::fmt\`${ESC}[0m\\n'`,
        `printf '${ESC}[1;34m  -->${ESC}[0m src/orders.rs:3:5\\n'`,
        `printf '${ESC}[1;32m    Finished${ESC}[0m release [optimized] target(s) in 41.7s\\n'`,
      ].join('; '),
    },
    lint: {
      image: 'rust:1.80',
      dependsOn: [{ job: 'build' }],
      run: `printf '${ESC}[1;31merror${ESC}[0m: this could be written as a \`let...else\`\\n'; exit 1`,
    },
    deploy: { image: 'alpine', run: 'echo deploy', dependsOn: [{ job: 'lint' }] },
    report: { image: 'alpine', run: 'echo "filing an issue"; sleep 60', dependsOn: [{ job: 'lint', conditions: { failure: true } }] },
    cleanup: { image: 'alpine', run: 'echo cleanup', finally: true },
  };
  for (let i = 0; i < 6; i++) {
    jobs[`test-${i}`] = { image: 'rust:1.80', run: `echo "shard ${i}: 212 passed"`, dependsOn: [{ job: 'build' }], group: 'test' };
    jobs.deploy.dependsOn.push({ job: `test-${i}` });
  }
  return { kind: 'Pipeline', name: 'orders-release', jobs };
}

test('screenshots: the runs list, a graph in light and dark, a job’s log, New run with a problem', async () => {
  const server = await startServer();
  try {
    const seed = readFileSync(join(ROOT, 'examples', 'seed.chainr'), 'utf8');
    const ok = await submit(server, seed);
    await waitForRun(server, ok.metadata.uid, (r) => r.status === 'SUCCESSFUL');
    const failed = await submit(server, {
      kind: 'Pipeline',
      name: 'nightly-backup',
      jobs: { dump: { image: 'postgres:16', run: 'exit 2' }, upload: { image: 'amazon/aws-cli', run: 'true', dependsOn: [{ job: 'dump' }] } },
    });
    await waitForRun(server, failed.metadata.uid, (r) => r.status === 'FAILED');
    const cancelled = await submit(server, { kind: 'Pipeline', name: 'load-test', jobs: { hammer: { image: 'k6', run: 'sleep 60' } } });
    await waitForRun(server, cancelled.metadata.uid, (r) => r.status === 'RUNNING');
    await server.api(`/api/runs/${cancelled.metadata.uid}/cancel`, { method: 'POST' });
    await waitForRun(server, cancelled.metadata.uid, (r) => r.status === 'CANCELLED');
    const run = await submit(server, release());
    const uid = run.metadata.uid;
    await waitForRun(server, uid, (r) => r.jobs.find((j) => j.name === 'report').status === 'RUNNING');

    const { page } = await openPage(server);
    await page.goto('/');
    await page.locator('tbody tr').nth(3).waitFor();
    assert.equal(await page.locator('tbody tr').count(), 4);
    await screenshot(page, 'runs');

    await page.goto(`/runs/${uid}`);
    await page.getByRole('button', { name: /^test: group of 6 jobs, 6 successful/ }).waitFor();
    await page.getByRole('link', { name: 'report: RUNNING' }).waitFor();
    await page.getByRole('link', { name: 'deploy: SKIPPED' }).waitFor();
    await screenshot(page, 'graph-light');
    await page.emulateMedia({ colorScheme: 'dark' });
    await page.waitForTimeout(200);
    await screenshot(page, 'graph-dark');
    await page.emulateMedia({ colorScheme: 'light' });

    await page.getByRole('link', { name: 'build: SUCCESSFUL' }).click();
    const log = page.getByRole('region', { name: 'Log of build, attempt 1' });
    await log.getByText('release [optimized] target(s) in 41.7s').waitFor();
    await page.getByLabel('Search log').fill('orders');
    await page.getByText('1 of 2').waitFor();
    await screenshot(page, 'job-log');

    await page.goto('/new');
    await page.getByLabel('Pipeline').fill(
      'pipeline release {\n  job build { image = "rust:1.80"  run = "cargo build --release" }\n\n  job deploy after biuld {\n    image = "alpine"\n    run = "./deploy.sh"\n  }\n}\n',
    );
    await page.getByText('1 error').waitFor();
    await page.locator('.backdrop mark.error', { hasText: 'biuld' }).waitFor();
    await screenshot(page, 'new-run');
    assert.deepEqual(page.errors, []);
  } finally {
    await server.stop();
  }
});
