// How fast a run's graph is on screen and how smoothly it pans, for runs of 2,000 and 10,000
// jobs, in Debian's chromium. Not a test: `node bench-graph.mjs [JOBS...]` prints a Markdown
// table (docs/benchmarks.md, "The web UI's graph").
//
// The server runs with `--roles api` (no worker), so every job stays pending: what is measured
// is the page reading the Run document and the layout (`GET /api/runs/{uid}/graph`, computed by
// the server on the first load and kept for the next), drawing, and the focusable elements.

import { startServer, openPage, closeBrowser, submit } from './helpers.mjs';

const sizes = process.argv.slice(2).map(Number).filter((n) => n > 0);
const JOBS = sizes.length ? sizes : [2000, 10000];
const ROUNDS = 3;

/** A layered pipeline: layers of `width` jobs, each waiting for one or two of the layer before. */
function pipeline(n) {
  const width = Math.max(1, Math.round(Math.sqrt(n) / 2));
  const jobs = {};
  for (let i = 0; i < n; i++) {
    const layer = Math.floor(i / width);
    const job = { image: 'busybox', run: 'true' };
    if (layer > 0) {
      const prev = (layer - 1) * width;
      const deps = new Set([prev + (i % width), prev + ((i * 7 + 3) % width)]);
      job.dependsOn = [...deps].map((d) => ({ job: `job-${d}` }));
    }
    jobs[`job-${i}`] = job;
  }
  return { kind: 'Pipeline', name: `layered-${n}`, jobs };
}

/**
 * Frames per second while the view pans: inside the page, one wheel event per animation frame
 * for `frames` frames (so that no round trip to the test process is counted), 60 at most.
 */
function panFps(page, frames = 120) {
  return page.evaluate(
    (count) =>
      new Promise((resolve) => {
        const graph = document.querySelector('.graph');
        const r = graph.getBoundingClientRect();
        let f = 0;
        let start = 0;
        const step = (t) => {
          if (f === 0) start = t;
          if (f === count) {
            resolve((count * 1000) / (t - start));
            return;
          }
          const deltaY = f % 60 < 30 ? 40 : -40;
          graph.dispatchEvent(
            new WheelEvent('wheel', { deltaY, clientX: r.x + r.width / 2, clientY: r.y + r.height / 2, bubbles: true, cancelable: true }),
          );
          f += 1;
          requestAnimationFrame(step);
        };
        requestAnimationFrame(step);
      }),
    frames,
  );
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

const rows = [];
const server = await startServer({ extra: ['--roles', 'api'] });
try {
  for (const n of JOBS) {
    const run = await submit(server, pipeline(n));
    const uid = run.metadata.uid;
    const firstDraw = [];
    const afterLayout = [];
    let fpsDefault = 0;
    let fpsFit = 0;
    let elements = 0;
    let allElements = 0;
    for (let round = 0; round < ROUNDS; round++) {
      const { context, page } = await openPage(server);
      await page.goto(`/runs/${uid}`);
      await page.waitForFunction(() => performance.getEntriesByName('chainr-graph-drawn').length > 0, null, { timeout: 120_000 });
      const [drawn, layoutAt] = await page.evaluate(() => [
        performance.getEntriesByName('chainr-graph-drawn')[0].startTime,
        performance.getEntriesByType('resource').find((e) => /\/graph(\?|$)/.test(e.name)).responseEnd,
      ]);
      firstDraw.push(drawn);
      afterLayout.push(drawn - layoutAt);
      if (round === ROUNDS - 1) {
        await page.waitForTimeout(300);
        elements = await page.locator('.graph .node').count();
        fpsDefault = await panFps(page);
        await page.getByRole('button', { name: 'Fit' }).click();
        await page.waitForTimeout(300);
        allElements = await page.locator('.graph .node').count();
        fpsFit = await panFps(page);
      }
      if (page.errors.length) throw new Error(page.errors.join('\n'));
      await context.close();
    }
    rows.push({ n, firstDraw: median(firstDraw), afterLayout: median(afterLayout), fpsDefault, fpsFit, elements, allElements });
    console.error(`${n} jobs: first draw ${median(firstDraw).toFixed(0)} ms`);
  }
} finally {
  await closeBrowser();
  await server.stop();
}

console.log(
  '| jobs | page opened → graph drawn | of which: layout received → drawn | panning at the first zoom | focusable nodes | panning with everything in view | focusable nodes |',
);
console.log('|---:|---:|---:|---:|---:|---:|---:|');
for (const r of rows) {
  console.log(
    `| ${r.n.toLocaleString('en')} | ${r.firstDraw.toFixed(0)} ms | ${r.afterLayout.toFixed(0)} ms | ${r.fpsDefault.toFixed(0)} frames/s | ${r.elements} | ${r.fpsFit.toFixed(0)} frames/s | ${r.allElements} |`,
  );
}
