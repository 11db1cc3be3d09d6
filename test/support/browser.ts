// A real browser for the dashboard tests: Debian's chromium driven by playwright-core (which
// never downloads a browser of its own). The test setup installs chromium when it can (root on
// Debian) and otherwise names the command, like every other tool in test/support/tools.ts.
// Each launch gets a fresh profile in a temp dir; what the page logged, its CSP violations and its
// WebSockets are recorded for the assertions.
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type BrowserContext, chromium, type Page } from 'playwright-core';
import { requireTool } from './tools.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
/** Screenshots and other things a person may want to look at after a run (gitignored). */
export const ARTIFACTS_DIR = join(ROOT, 'test-artifacts');

// Flags for this sandbox: no GPU, no network chatter of the browser's own, no setuid sandbox.
const FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

export interface BrowserHandle {
  context: BrowserContext;
  /** A new tab with its console, CSP violations and WebSockets recorded. */
  open(url: string, viewport?: { width: number; height: number }): Promise<TabRecord>;
  close(): Promise<void>;
}

export interface TabRecord {
  page: Page;
  console: { type: string; text: string }[];
  pageErrors: string[];
  /** WebSocket URLs the tab opened, in order. */
  webSockets: string[];
  /** The page's own securitypolicyviolation events, as "directive blocked-uri". */
  cspViolations(): Promise<string[]>;
}

export async function launchBrowser(): Promise<BrowserHandle> {
  await requireTool('chromium');
  const profile = await mkdtemp(join(tmpdir(), 'kas-chromium-'));
  let context: BrowserContext;
  try {
    // A persistent context is how Playwright takes a user data dir of our choosing.
    context = await chromium.launchPersistentContext(profile, {
      executablePath: '/usr/bin/chromium',
      headless: true,
      args: FLAGS,
      viewport: { width: 1280, height: 800 },
      timeout: 60_000,
    });
  } catch (error) {
    await rm(profile, { recursive: true, force: true });
    throw error;
  }
  // Listens before any page script runs, in every tab: CSP violations the console might word differently.
  // (Page code is given as text: this file is type-checked for Node, without the DOM's types.)
  await context.addInitScript(`
    window.__cspViolations = [];
    document.addEventListener('securitypolicyviolation', (e) => window.__cspViolations.push(e.violatedDirective + ' ' + e.blockedURI));
  `);
  return {
    context,
    async open(url, viewport = { width: 1280, height: 800 }) {
      const page = await context.newPage();
      await page.setViewportSize(viewport);
      const record: TabRecord = {
        page,
        console: [],
        pageErrors: [],
        webSockets: [],
        cspViolations: () => page.evaluate<string[]>('window.__cspViolations.slice()'),
      };
      page.on('console', (m) => record.console.push({ type: m.type(), text: m.text() }));
      page.on('pageerror', (e) => record.pageErrors.push(e.message));
      page.on('websocket', (ws) => record.webSockets.push(ws.url()));
      await page.goto(url, { waitUntil: 'load' });
      return record;
    },
    async close() {
      await context.close().catch(() => undefined);
      await rm(profile, { recursive: true, force: true });
    },
  };
}

export async function screenshot(page: Page, name: string): Promise<string> {
  await mkdir(ARTIFACTS_DIR, { recursive: true });
  const path = join(ARTIFACTS_DIR, `${name}.png`);
  await page.screenshot({ path, fullPage: true });
  return path;
}
