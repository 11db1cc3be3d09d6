// The dashboard's live flows over kas's `/ui` socket, in a real browser against real kas, agentk,
// Prometheus and the Kubernetes simulator: sign in and see the agent live, a graph that gains
// points, a pod that appears and disappears within 2 s, a log line within 2 s, a token the socket
// refuses, one WebSocket per tab however many panels, and recovery after kas restarts.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { type BrowserHandle, launchBrowser, screenshot, type TabRecord } from '../support/browser.ts';
import { makePod } from '../../demo/k8sSim.ts';
import { type DashboardStack, startDashboardStack } from './stack.ts';

let stack: DashboardStack;
let browser: BrowserHandle;

before(async () => {
  [stack, browser] = await Promise.all([startDashboardStack(), launchBrowser()]);
});
after(async () => {
  await browser?.close();
  await stack?.stop();
});

async function open(fragment = ''): Promise<TabRecord> {
  const tab = await browser.open(`${stack.url}/${fragment}`);
  await tab.page.getByLabel('API token').fill(stack.token);
  await tab.page.getByRole('button', { name: 'Sign in' }).click();
  await tab.page.locator('#connection[data-state="connected"]').waitFor({ timeout: 15_000 });
  return tab;
}

/** Milliseconds until `check` holds, failing after `limitMs`. */
async function within(limitMs: number, what: string, check: () => Promise<boolean>): Promise<number> {
  const started = performance.now();
  for (;;) {
    if (await check()) return performance.now() - started;
    if (performance.now() - started > limitMs) throw new Error(`${what} did not happen within ${limitMs} ms`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

describe('the dashboard over the /ui socket', () => {
  test('sign in: the connection is live and the agents list follows replicas as they come and go', async () => {
    const tab = await open();
    try {
      const { page } = tab;
      await page.locator(`tr[data-agent="${stack.agentId}"]`).first().waitFor();
      const before = await page.locator(`tr[data-agent="${stack.agentId}"][data-replica]`).count();
      const agentToken = await stack.cluster.registerAgent('second');
      const replica = await stack.cluster.startAgent({ id: 'second', token: agentToken });
      await page.locator('tr[data-agent="second"]').first().waitFor({ timeout: 10_000 });
      await replica.proc.stop();
      await page.locator('tr[data-agent="second"][data-replica]').waitFor({ state: 'detached', timeout: 15_000 });
      assert.equal(await page.locator(`tr[data-agent="${stack.agentId}"][data-replica]`).count(), before);
      assert.equal(tab.webSockets.length, 1);
    } finally {
      await tab.page.close();
    }
  });

  test('a live graph draws the snapshot and gains points step by step', async () => {
    const tab = await open(`#view=metrics&agent=${stack.agentId}&g=5m%201s%20up`);
    try {
      const { page } = tab;
      const chart = page.locator('.chart').first();
      await chart.locator('canvas').waitFor({ timeout: 15_000 });
      const lastT = async () => Number(await chart.getAttribute('data-last-t'));
      const first = await lastT();
      assert.ok(first > Date.now() / 1000 - 30, 'the snapshot ends at a recent step');
      await within(6_000, 'two more points', async () => (await lastT()) >= first + 2);
      assert.ok(Number(await chart.getAttribute('data-series')) >= 1);
      assert.ok((await page.locator('.legend button').count()) >= 1, 'a legend entry per series');
      await page.locator('.panel-status .trace-id').first().waitFor();
      await screenshot(page, 'graph-1280');
      // Series toggling from the keyboard.
      const entry = page.locator('.legend button').first();
      await entry.focus();
      await page.keyboard.press('Enter');
      assert.equal(await entry.getAttribute('aria-pressed'), 'false');
    } finally {
      await tab.page.close();
    }
  });

  test('a query Prometheus rejects shows Prometheus’s error inline', async () => {
    const tab = await open(`#view=metrics&agent=${stack.agentId}&g=5m%205s%20rate(up%5B`);
    try {
      const error = tab.page.locator('.panel .error').first();
      await error.waitFor({ timeout: 15_000 });
      assert.match(await error.innerText(), /bad_data|parse error/);
    } finally {
      await tab.page.close();
    }
  });

  test('a pod created in the cluster appears in the table within 2 s, changes highlighted, and disappears within 2 s when deleted', async () => {
    const tab = await open(`#view=kubernetes&agent=${stack.agentId}&ns=shop&res=v1/pods`);
    try {
      const { page } = tab;
      await page.locator('table.live tbody tr[data-key]').first().waitFor({ timeout: 15_000 });
      const row = page.locator('table.live tbody tr[data-key]', { hasText: 'arrival-1' });
      stack.sim.api.create('pods', makePod({ name: 'arrival-1', namespace: 'shop' }));
      const appeared = await within(2_000, 'the new pod row', async () => (await row.count()) === 1);
      stack.sim.api.modify('pods', 'shop', 'arrival-1', (p) => {
        (p.status as { phase: string }).phase = 'Failed';
      });
      await within(2_000, 'the change', async () => (await row.getAttribute('class'))?.includes('changed') === true && /Failed/.test(await row.innerText()));
      stack.sim.api.delete('pods', 'shop', 'arrival-1');
      const gone = await within(2_000, 'the deleted pod row to go', async () => (await row.count()) === 0);
      process.stderr.write(`[e2e] pod row appeared after ${Math.round(appeared)} ms, went after ${Math.round(gone)} ms\n`);
    } finally {
      await tab.page.close();
    }
  });

  test('a pod’s log opens on its last lines and shows a new line within 2 s; pause holds the view', async () => {
    for (let i = 0; i < 600; i++) stack.sim.api.appendLog('shop', 'web-0', `old line ${i}`, 'app');
    const tab = await open(`#view=kubernetes&agent=${stack.agentId}&ns=shop&res=v1/pods`);
    try {
      const { page } = tab;
      await page.getByRole('button', { name: 'web-0', exact: true }).click();
      // The detail: YAML read fresh through kas, and the pod's events.
      await page.locator('pre.yaml', { hasText: 'name: web-0' }).waitFor({ timeout: 5_000 });
      assert.match(page.url(), /obj=shop%2Fweb-0/, 'the URL names the object');
      await page.getByRole('button', { name: 'Events' }).click();
      await page.locator('table.events', { hasText: 'Pulled' }).waitFor({ timeout: 5_000 });
      await page.getByRole('button', { name: 'Logs' }).click();
      const log = page.locator('pre.log');
      await within(1_000, 'the last 500 lines', async () => /old line 599/.test(await log.innerText()));
      const text = await log.innerText();
      assert.doesNotMatch(text, /(^|\n)old line 99\n/, 'only the tail');
      assert.match(text, /(^|\n)old line 100\n/);
      stack.sim.api.appendLog('shop', 'web-0', 'a fresh line', 'app');
      await within(2_000, 'the new line', async () => /a fresh line/.test(await log.innerText()));
      await page.getByRole('button', { name: 'Pause' }).click();
      stack.sim.api.appendLog('shop', 'web-0', 'while paused', 'app');
      await page.getByRole('button', { name: /Resume \(1 new\)/ }).waitFor({ timeout: 2_000 });
      assert.doesNotMatch(await log.innerText(), /while paused/);
      await page.getByRole('button', { name: /Resume/ }).click();
      assert.match(await log.innerText(), /while paused/);
      // The other container.
      await page.getByLabel('Container').selectOption('sidecar');
      stack.sim.api.appendLog('shop', 'web-0', 'from the sidecar', 'sidecar');
      await within(2_000, 'the sidecar line', async () => /from the sidecar/.test(await log.innerText()));
      assert.doesNotMatch(await log.innerText(), /a fresh line/);
    } finally {
      await tab.page.close();
    }
  });

  test('a link naming an object reopens its detail, with the pod’s containers to pick from', async () => {
    const tab = await open(`#view=kubernetes&agent=${stack.agentId}&ns=shop&res=v1/pods&obj=shop%2Fweb-1`);
    try {
      const { page } = tab;
      await page.locator('pre.yaml', { hasText: 'name: web-1' }).waitFor({ timeout: 15_000 });
      await page.getByRole('button', { name: 'Logs' }).click();
      const containers = await page.getByLabel('Container').locator('option').allInnerTexts();
      assert.deepEqual(containers, ['app', 'sidecar']);
    } finally {
      await tab.page.close();
    }
  });

  test('a token the socket refuses brings back the sign-in with kas’s reason', async () => {
    const tab = await browser.open(`${stack.url}/`);
    try {
      const { page } = tab;
      // Well-formed and unexpired, but signed with another key: only kas can tell.
      const [head] = stack.token.split('.');
      const claims = Buffer.from(JSON.stringify({ sub: 'forger', aud: 'kas', agents: ['*'], exp: Math.floor(Date.now() / 1000) + 3600 })).toString('base64url');
      await page.evaluate(`sessionStorage.setItem('kas-api-token', ${JSON.stringify(`${head}.${claims}.${'A'.repeat(43)}`)})`);
      await page.reload();
      await page.getByRole('alert').filter({ hasText: 'kas refused the token' }).waitFor({ timeout: 10_000 });
      assert.equal(await page.evaluate<number>('sessionStorage.length'), 0);
    } finally {
      await tab.page.close();
    }
  });

  test('one WebSocket per tab, however many graphs, tables and logs are open', async () => {
    const tab = await open(`#view=metrics&agent=${stack.agentId}&g=5m%205s%20up&g=5m%205s%20up%20%3D%3D%201&g=15m%2015s%20count(up)`);
    try {
      const { page } = tab;
      await within(15_000, 'three graphs drawn', async () => (await page.locator('.chart canvas').count()) === 3);
      await page.getByRole('link', { name: 'Kubernetes' }).click();
      await page.locator('table.live tbody tr[data-key]').first().waitFor({ timeout: 15_000 });
      await page.getByRole('button', { name: 'web-1', exact: true }).click();
      await page.getByRole('button', { name: 'Logs' }).click();
      await page.locator('pre.log').waitFor();
      await page.getByRole('link', { name: 'Agents' }).click();
      assert.equal(tab.webSockets.length, 1, tab.webSockets.join('\n'));
      assert.match(tab.webSockets[0]!, /\/socket\.io\/\?EIO=4&transport=websocket/);
      assert.deepEqual(await tab.cspViolations(), [], 'the same-origin WebSocket is allowed by connect-src');
    } finally {
      await tab.page.close();
    }
  });

  test('a restart of kas shows as a lost connection; the tab recovers by itself and the table resumes', async () => {
    const tab = await open(`#view=kubernetes&agent=${stack.agentId}&ns=shop&res=v1/pods`);
    try {
      const { page } = tab;
      await page.locator('table.live tbody tr[data-key]').first().waitFor({ timeout: 15_000 });
      const restarted = stack.cluster.restartNode(0);
      await page.locator('#connection[data-state="lost"]').waitFor({ timeout: 15_000 });
      await restarted;
      await page.locator('#connection[data-state="connected"]').waitFor({ timeout: 30_000 });
      stack.sim.api.create('pods', makePod({ name: 'after-restart', namespace: 'shop' }));
      await page.locator('table.live tbody tr[data-key]', { hasText: 'after-restart' }).waitFor({ timeout: 30_000 });
    } finally {
      await tab.page.close();
    }
  });
});
