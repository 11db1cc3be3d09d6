// The built dashboard as kas serves it, in a real browser (Debian's chromium), against a real kas
// with agentk, Prometheus and the Kubernetes simulator: the headers (CSP, caching), a page that
// runs under that CSP without a violation, landmarks and keyboard order, sign-in errors in kas's
// words, PromQL completion from the agent's Prometheus through kas, discovery for the pickers,
// and screenshots at 1280 and 390 px. (Flows that need kas's /ui socket are in e2e.test.ts.)
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { type BrowserHandle, launchBrowser, screenshot, type TabRecord } from '../support/browser.ts';
import { type DashboardStack, startDashboardStack, TRACE_UI_URL } from './stack.ts';

let stack: DashboardStack;
let browser: BrowserHandle;

before(async () => {
  [stack, browser] = await Promise.all([startDashboardStack(), launchBrowser()]);
});
after(async () => {
  await browser?.close();
  await stack?.stop();
});

/** Opens the page and signs in by typing the token, as an operator does. */
async function signIn(tab: TabRecord, token: string): Promise<void> {
  await tab.page.getByLabel('API token').fill(token);
  await tab.page.getByRole('button', { name: 'Sign in' }).click();
}

describe('kas serves the built dashboard', () => {
  test('index.html: a strict CSP with a fresh style nonce per response, no-cache, the trace UI URL written in', async () => {
    const [a, b] = await Promise.all([fetch(`${stack.url}/`), fetch(`${stack.url}/`)]);
    assert.equal(a.status, 200);
    assert.match(a.headers.get('content-type') ?? '', /text\/html/);
    assert.equal(a.headers.get('cache-control'), 'no-cache');
    const csp = a.headers.get('content-security-policy') ?? '';
    const directives = new Map(csp.split(/;\s*/).map((d) => [d.split(' ')[0]!, d.split(' ').slice(1)]));
    assert.deepEqual(directives.get('script-src'), ["'self'"]);
    assert.deepEqual(directives.get('connect-src'), ["'self'"]);
    assert.deepEqual(directives.get('frame-ancestors'), ["'none'"]);
    assert.deepEqual(directives.get('base-uri'), ["'none'"]);
    assert.deepEqual(directives.get('default-src'), ["'none'"]);
    assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/);
    const nonce = /'nonce-([^']+)'/.exec(directives.get('style-src')?.join(' ') ?? '')?.[1];
    assert.ok(nonce, `style-src has a nonce: ${csp}`);
    assert.notEqual(/'nonce-([^']+)'/.exec(b.headers.get('content-security-policy') ?? '')?.[1], nonce, 'each response its own nonce');
    const html = await a.text();
    assert.ok(html.includes(`<meta name="kas-style-nonce" content="${nonce}">`));
    assert.ok(html.includes(`<meta name="kas-trace-ui-url" content="${TRACE_UI_URL}">`));
    assert.doesNotMatch(html, /<script(?![^>]*\bsrc=)[^>]*>/, 'no inline script');
    assert.doesNotMatch(html, /\/src\/main\.ts/, 'the built page, not the source');
    await b.text();
  });

  test('hashed assets are cached for a year, immutable; a missing asset is a 404', async () => {
    const html = await (await fetch(`${stack.url}/`)).text();
    const assets = [...html.matchAll(/(?:src|href)="(\/assets\/[^"]+)"/g)].map((m) => m[1]!);
    assert.ok(assets.some((a) => /\/assets\/index-[\w-]+\.js$/.test(a)), `the page loads a hashed script: ${assets.join(', ')}`);
    assert.ok(assets.some((a) => a.endsWith('.css')));
    for (const asset of assets) {
      const res = await fetch(`${stack.url}${asset}`);
      assert.equal(res.status, 200, asset);
      assert.equal(res.headers.get('cache-control'), 'public, max-age=31536000, immutable', asset);
      await res.arrayBuffer();
    }
    const missing = await fetch(`${stack.url}/assets/index-nothere.js`);
    assert.equal(missing.status, 404);
    assert.notEqual(missing.headers.get('cache-control'), 'public, max-age=31536000, immutable');
    await missing.arrayBuffer();
  });
});

describe('the dashboard in chromium', () => {
  test('loads under the CSP with no violation and no console error; header, nav and main landmarks', async () => {
    const tab = await browser.open(`${stack.url}/`);
    try {
      await tab.page.getByLabel('API token').waitFor();
      assert.equal(await tab.page.getByRole('banner').count(), 1);
      assert.equal(await tab.page.getByRole('navigation', { name: 'Sections' }).count(), 1);
      assert.equal(await tab.page.getByRole('main').count(), 1);
      assert.equal(await tab.page.getByRole('form', { name: 'Sign in' }).count(), 1, 'the sign-in form is a labelled region');
      assert.deepEqual(await tab.cspViolations(), []);
      assert.deepEqual(tab.console.filter((m) => m.type === 'error'), []);
      assert.deepEqual(tab.pageErrors, []);
    } finally {
      await tab.page.close();
    }
  });

  test('keyboard only: the token field has focus, Tab order is skip link, sections, token, Sign in', async () => {
    const tab = await browser.open(`${stack.url}/`);
    try {
      const { page } = tab;
      await page.getByLabel('API token').waitFor();
      assert.equal(await page.evaluate<string>('document.activeElement.id'), 'token');
      const focused = () =>
        page.evaluate<string>(`(() => {
          const el = document.activeElement;
          return el ? el.tagName.toLowerCase() + ':' + (el.id || el.textContent.trim()) : '';
        })()`);
      // From the top of the page: the first stop is the skip link.
      await page.locator('#skip').focus();
      const order: string[] = [await focused()];
      for (let i = 0; i < 5; i++) {
        await page.keyboard.press('Tab');
        order.push(await focused());
      }
      assert.deepEqual(order, ['button:skip', 'a:Agents', 'a:Metrics', 'a:Kubernetes', 'input:token', 'button:Sign in']);
      await page.keyboard.press('Shift+Tab');
      assert.equal(await focused(), 'input:token');
      // Enter submits; an empty token gets a message, not a request.
      await page.keyboard.press('Enter');
      await page.getByRole('alert').filter({ hasText: 'Paste an API token' }).waitFor({ timeout: 5_000 });
      // The skip link moves focus to the main content.
      await page.keyboard.press('Shift+Tab');
      await page.keyboard.press('Shift+Tab');
      await page.keyboard.press('Shift+Tab');
      await page.keyboard.press('Shift+Tab');
      assert.equal(await focused(), 'button:skip');
      await page.keyboard.press('Enter');
      assert.equal(await focused(), 'main:main');
    } finally {
      await tab.page.close();
    }
  });

  test('a token kas refuses shows kas’s reason; an expired one is named expired', async () => {
    const tab = await browser.open(`${stack.url}/`);
    try {
      const { page } = tab;
      // Signed with another key: kas's own 401 message.
      const forged = `${stack.token.split('.').slice(0, 2).join('.')}.${'A'.repeat(43)}`;
      await signIn(tab, forged);
      const refused = page.getByRole('alert').filter({ hasText: 'kas refused the token' });
      await refused.waitFor({ timeout: 10_000 });
      assert.match(await refused.innerText(), /signature|invalid|token/i);
      assert.equal(await page.evaluate<number>('sessionStorage.length'), 0, 'a refused token is not kept');

      const shortLived = await stack.cluster.issueToken({ sub: 'brief', ttl: '1s' });
      await sleep(1_500);
      await signIn(tab, shortLived);
      await page.getByRole('alert').filter({ hasText: 'expired' }).waitFor({ timeout: 5_000 });
      assert.doesNotMatch(page.url(), /eyJ/, 'no token in the URL');
    } finally {
      await tab.page.close();
    }
  });

  test('signed in: the agent shows; the token stays in sessionStorage only; screenshots at 1280 and 390 px', async () => {
    for (const [width, height] of [[1280, 800], [390, 844]] as const) {
      const tab = await browser.open(`${stack.url}/`, { width, height });
      try {
        const { page } = tab;
        await signIn(tab, stack.token);
        // The agents table: filled from kas (the HTTP answer at sign-in, then the live list).
        const row = page.locator(`tr[data-agent="${stack.agentId}"]`);
        await row.first().waitFor({ timeout: 10_000 });
        assert.match(await row.first().innerText(), /prometheus/);
        assert.equal(await page.evaluate<string | null>(`sessionStorage.getItem('kas-api-token')`), stack.token);
        assert.doesNotMatch(page.url(), /eyJ/);
        assert.equal(await page.locator('#agent').inputValue(), stack.agentId);
        const trace = page.locator('#last-trace a.trace-id');
        assert.match((await trace.getAttribute('href')) ?? '', /^http:\/\/jaeger\.example:16686\/trace\/[0-9a-f]{32}$/);
        // Nothing overflows the viewport sideways.
        assert.ok((await page.evaluate<number>('document.documentElement.scrollWidth')) <= width, `no horizontal scroll at ${width} px`);
        await screenshot(page, `agents-${width}`);
        await page.getByRole('link', { name: 'Metrics' }).click();
        await page.locator('.cm-content').first().waitFor({ timeout: 10_000 });
        assert.ok((await page.evaluate<number>('document.documentElement.scrollWidth')) <= width, `no horizontal scroll at ${width} px (metrics)`);
        await screenshot(page, `metrics-${width}`);
        await page.getByRole('link', { name: 'Kubernetes' }).click();
        await page.locator('#k8s-resource:enabled').waitFor({ timeout: 10_000 });
        await screenshot(page, `kubernetes-${width}`);
        assert.deepEqual(await tab.cspViolations(), [], 'CodeMirror, uPlot and the tables run under the CSP');
        assert.deepEqual(tab.pageErrors, []);
      } finally {
        await tab.page.close();
      }
    }
    const tab = await browser.open(`${stack.url}/`, { width: 390, height: 844 });
    await screenshot(tab.page, 'sign-in-390');
    await tab.page.close();
  });

  test('the PromQL editor completes metric names from the agent’s Prometheus through kas, each request traced', async () => {
    const tab = await browser.open(`${stack.url}/#view=metrics&agent=${stack.agentId}&g=5m%205s%20`);
    try {
      const { page } = tab;
      const requests: { url: string; traceparent?: string; authorization?: string }[] = [];
      page.on('request', (r) => {
        if (r.url().includes('/prometheus/')) requests.push({ url: r.url(), traceparent: r.headers().traceparent, authorization: r.headers().authorization });
      });
      await signIn(tab, stack.token);
      const editor = page.locator('.cm-content').first();
      await editor.waitFor({ timeout: 10_000 });
      await editor.click();
      await page.keyboard.type('prometheus_build', { delay: 30 });
      const option = page.locator('.cm-tooltip-autocomplete li').filter({ hasText: 'prometheus_build_info' });
      await option.first().waitFor({ timeout: 10_000 });
      // Accept it with the keyboard, as a person would: not within CodeMirror's interactionDelay
      // (75 ms) of the list opening, when it ignores Enter so that a fast typist's Enter is a newline.
      await new Promise((r) => setTimeout(r, 300));
      await page.keyboard.press('Enter');
      assert.match(await editor.innerText(), /^prometheus_build_info/);
      const names = requests.find((r) => r.url.includes(`/api/v1/agents/${stack.agentId}/prometheus/api/v1/label/__name__/values`));
      assert.ok(names, `completion asked kas for metric names: ${requests.map((r) => r.url).join(', ')}`);
      assert.match(names.traceparent ?? '', /^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
      assert.equal(names.authorization, `Bearer ${stack.token}`);
      // Label names of that metric come next, from the same Prometheus.
      await page.keyboard.type('{', { delay: 30 });
      await page.locator('.cm-tooltip-autocomplete li').filter({ hasText: 'version' }).first().waitFor({ timeout: 10_000 });
      await page.keyboard.type('version="', { delay: 30 });
      // The value Prometheus itself reports, asked directly.
      const build = (await (await fetch(`${stack.prometheus.url}/api/v1/status/buildinfo`)).json()) as { data: { version: string } };
      await page.locator('.cm-tooltip-autocomplete li').filter({ hasText: build.data.version }).first().waitFor({ timeout: 10_000 });
      assert.ok(requests.some((r) => /\/api\/v1\/(series|label\/version\/values)/.test(r.url)), `label values asked through kas: ${requests.map((r) => r.url).join(', ')}`);
      assert.deepEqual(await tab.cspViolations(), []);
    } finally {
      await tab.page.close();
    }
  });

  test('the Kubernetes pickers come from the cluster’s discovery through kas', async () => {
    const tab = await browser.open(`${stack.url}/#view=kubernetes&agent=${stack.agentId}&ns=shop&res=apps/v1/deployments`);
    try {
      const { page } = tab;
      await signIn(tab, stack.token);
      const resource = page.locator('#k8s-resource:enabled');
      // Discovery is a dozen requests through kas and agentk: generous on a machine running the
      // whole suite at once (one CI run timed out at 10 s); what the panel said is in the failure.
      await resource.waitFor({ timeout: 20_000 }).catch(async (error: Error) => {
        const said = await page.locator('.panel-status').allInnerTexts().catch(() => []);
        throw new Error(`${error.message}\nthe panel said: ${JSON.stringify(said)}`);
      });
      assert.equal(await resource.inputValue(), 'apps/v1/deployments', 'the link reopened the resource');
      const options = await resource.locator('option').evaluateAll((os) => os.map((o) => (o as unknown as { value: string }).value));
      for (const r of ['v1/pods', 'v1/namespaces', 'v1/configmaps', 'v1/events', 'apps/v1/deployments']) assert.ok(options.includes(r), `${r} in ${options.join(', ')}`);
      assert.ok(!options.some((o) => o.includes('/log')), 'no subresources');
      const namespaces = await page.locator('#k8s-namespace option').evaluateAll((os) => os.map((o) => (o as unknown as { value: string }).value));
      assert.deepEqual(namespaces.filter((n) => ['', 'shop', 'default', 'kube-system'].includes(n)).sort(), ['', 'default', 'kube-system', 'shop']);
      assert.equal(await page.locator('#k8s-namespace').inputValue(), 'shop');
      // The table's columns for deployments are computed in the browser.
      const headers = await page.locator('table.live th').allInnerTexts();
      assert.deepEqual(headers.map((t) => t.replace(/[▲▼]/g, '').trim()), ['Name', 'Ready', 'Up-to-date', 'Available', 'Age']);
    } finally {
      await tab.page.close();
    }
  });
});
