// `npm run bench:dashboard`: the dashboard in a real browser (Debian's chromium) against real kas,
// agentk, Prometheus and the Kubernetes simulator, over kas's /ui socket.
//
//   graphs          10 live graphs at a 1 s step in one tab, in front: main-thread CPU over
//                   BENCH_SECONDS (30 s), from CDP Performance.getMetrics (TaskDuration,
//                   ScriptDuration, LayoutDuration), and how many steps every graph drew
//   table           5,000 pods in one live table (BENCH_CHANGES_PER_SECOND pod updates a second)
//                   in a second tab on the same kas: time from opening the view to its first row
//                   and to all rows, main-thread CPU over BENCH_SECONDS, and frames while
//                   scrolling (rAF count in 2 s; 120 is every frame at 60 Hz)
//   logs            time from clicking Logs to the first line shown, for a pod with 10,000 lines
//                   (the view asks for the last 500).
//
// Needs kas's /ui namespace (the lead's server side); prints a Markdown table for bench/README.md.
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import type { CDPSession, Page } from 'playwright-core';
import { launchBrowser } from '../test/support/browser.ts';
import { makePod } from '../demo/k8sSim.ts';
import { startDashboardStack } from '../test/dashboard/stack.ts';

const PODS = Number(process.env.BENCH_PODS ?? 5_000);
const GRAPHS = Number(process.env.BENCH_GRAPHS ?? 10);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 30);
const CHANGES_PER_SECOND = Number(process.env.BENCH_CHANGES_PER_SECOND ?? 50);
const LOG_LINES = 10_000;

interface Cpu {
  task: number;
  script: number;
  layout: number;
}

async function cpu(session: CDPSession): Promise<Cpu> {
  const { metrics } = (await session.send('Performance.getMetrics')) as { metrics: { name: string; value: number }[] };
  const get = (name: string) => metrics.find((m) => m.name === name)?.value ?? 0;
  return { task: get('TaskDuration'), script: get('ScriptDuration'), layout: get('LayoutDuration') };
}

async function signIn(page: Page, token: string): Promise<void> {
  await page.getByLabel('API token').fill(token);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.locator('#connection[data-state="connected"]').waitFor({ timeout: 30_000 });
}

const stack = await startDashboardStack({ pods: 0 });
const browser = await launchBrowser();
const lines: string[] = [];
try {
  process.stderr.write(`[bench] creating ${PODS} pods\n`);
  for (let i = 0; i < PODS; i++) stack.sim.api.create('pods', makePod({ name: `pod-${i}`, namespace: 'bench', labels: { app: `a${i % 20}` } }));

  // ---- 5,000 pods in a table, 10 live graphs on the same page's socket ----
  const graphs = Array.from({ length: GRAPHS }, (_, i) => `g=5m%201s%20${encodeURIComponent(i % 2 ? 'up' : `up * ${i}`)}`).join('&');
  const metricsTab = await browser.open(`${stack.url}/#view=metrics&agent=${stack.agentId}&${graphs}`);
  await signIn(metricsTab.page, stack.token);
  const tab = await browser.open(`${stack.url}/#view=agents&agent=${stack.agentId}`);
  await signIn(tab.page, stack.token);
  const session = await tab.page.context().newCDPSession(tab.page);
  await session.send('Performance.enable');
  const opened = performance.now();
  await tab.page.evaluate(`location.hash = 'view=kubernetes&agent=${stack.agentId}&ns=bench&res=v1/pods'`);
  await tab.page.locator('table.live tbody tr[data-key]').first().waitFor({ timeout: 60_000 });
  const firstRowMs = performance.now() - opened;
  await tab.page.locator('.count', { hasText: `${PODS} of ${PODS} rows` }).waitFor({ timeout: 60_000 });
  const allRowsMs = performance.now() - opened;
  await metricsTab.page.locator('.chart canvas').nth(GRAPHS - 1).waitFor({ timeout: 60_000 });

  // One tab at a time in front: a background tab's animation frames are throttled.
  const metricsSession = await metricsTab.page.context().newCDPSession(metricsTab.page);
  await metricsSession.send('Performance.enable');
  await metricsTab.page.bringToFront();
  const lastT = () => metricsTab.page.evaluate<number>(`Math.min(...[...document.querySelectorAll('.chart')].map((c) => Number(c.dataset.lastT)))`);
  const graphsStart = await cpu(metricsSession);
  const tBefore = await lastT();
  let started = performance.now();
  await sleep(SECONDS * 1000);
  let elapsed = (performance.now() - started) / 1000;
  const graphsEnd = await cpu(metricsSession);
  const stepsDrawn = (await lastT()) - tBefore;
  const share = (a: number, b: number, seconds: number) => `${(((b - a) / seconds) * 100).toFixed(1)}%`;
  const graphsShare = (k: keyof Cpu) => share(graphsStart[k], graphsEnd[k], elapsed);
  const graphsFigure = `${graphsShare('task')} / ${graphsShare('script')} / ${graphsShare('layout')} (${stepsDrawn} steps drawn by every graph)`;

  await tab.page.bringToFront();
  const tableStart = await cpu(session);
  started = performance.now();
  let changes = 0;
  // Pod changes for SECONDS.
  while (performance.now() - started < SECONDS * 1000) {
    const tick = performance.now();
    for (let i = 0; i < CHANGES_PER_SECOND / 10; i++) {
      const n = Math.floor(Math.random() * PODS);
      stack.sim.api.modify('pods', 'bench', `pod-${n}`, (p) => {
        (p.metadata.labels as Record<string, string>).tick = String(changes++);
      });
    }
    await sleep(Math.max(0, 100 - (performance.now() - tick)));
  }
  elapsed = (performance.now() - started) / 1000;
  const tableEnd = await cpu(session);
  const tableShare = (k: keyof Cpu) => share(tableStart[k], tableEnd[k], elapsed);

  // Frames while scrolling through 5,000 rows.
  const frames = await tab.page.evaluate<number>(`new Promise((done) => {
    const box = document.querySelector('.table-scroll');
    let frames = 0;
    const end = performance.now() + 2000;
    const step = () => {
      frames++;
      box.scrollTop += 300;
      if (performance.now() < end) requestAnimationFrame(step); else done(frames);
    };
    requestAnimationFrame(step);
  })`);

  // ---- logs: time to first line ----
  for (let i = 0; i < LOG_LINES; i++) stack.sim.api.appendLog('bench', 'pod-0', `line ${i} ${'x'.repeat(80)}`);
  await tab.page.locator('#table-filter').fill('pod-0 ');
  await tab.page.getByRole('button', { name: 'pod-0', exact: true }).click();
  const clicked = performance.now();
  await tab.page.getByRole('button', { name: 'Logs' }).click();
  await tab.page.locator('pre.log', { hasText: `line ${LOG_LINES - 1} ` }).waitFor({ timeout: 30_000 });
  const firstLineMs = performance.now() - clicked;

  lines.push(
    `| figure | value |`,
    `| --- | --- |`,
    `| time to first row (${PODS} pods) | ${Math.round(firstRowMs)} ms |`,
    `| time to all ${PODS} rows | ${Math.round(allRowsMs)} ms |`,
    `| table of ${PODS} pods, ${CHANGES_PER_SECOND} pod changes/s: main thread over ${SECONDS} s (task / script / layout) | ${tableShare('task')} / ${tableShare('script')} / ${tableShare('layout')} |`,
    `| ${GRAPHS} live graphs at a 1 s step: main thread over ${SECONDS} s (task / script / layout) | ${graphsFigure} |`,
    `| frames in 2 s of scrolling the table | ${frames} |`,
    `| log view: click to last of 500 tail lines shown | ${Math.round(firstLineMs)} ms |`,
  );
  process.stdout.write(`\n## Dashboard (\`bench/dashboard.ts\`)\n\n${lines.join('\n')}\n`);
} finally {
  await browser.close();
  await stack.stop();
}
