// Builds the dashboard into web/dist with Vite. `--if-stale` (npm start) builds only when a source
// is newer than the last build, so a fresh clone and an edited source both serve the current page.
import { existsSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'vite';

const WEB = fileURLToPath(new URL('./', import.meta.url));
const ROOT = join(WEB, '..');
const DIST = join(WEB, 'dist');
const STAMP = join(DIST, '.built');

/** Newest modification time among the files the bundle is made of. */
function newestSource(): number {
  let newest = 0;
  const visit = (path: string) => {
    const st = statSync(path);
    if (st.isDirectory()) {
      for (const entry of readdirSync(path)) if (entry !== 'dist' && entry !== 'node_modules') visit(join(path, entry));
    } else newest = Math.max(newest, st.mtimeMs);
  };
  visit(WEB);
  for (const file of ['protocol/ui.ts', 'package-lock.json']) if (existsSync(join(ROOT, file))) newest = Math.max(newest, statSync(join(ROOT, file)).mtimeMs);
  return newest;
}

export function isStale(): boolean {
  if (!existsSync(STAMP) || !existsSync(join(DIST, 'index.html'))) return true;
  return newestSource() > statSync(STAMP).mtimeMs;
}

export async function buildDashboard(): Promise<void> {
  const started = performance.now();
  await build({
    root: WEB,
    configFile: false,
    logLevel: 'warn',
    base: '/',
    build: {
      outDir: DIST,
      emptyOutDir: true,
      target: 'es2022',
      // Vite's preload polyfill is an inline script; every browser that runs this page has modulepreload.
      modulePreload: { polyfill: false },
      assetsInlineLimit: 0,
      chunkSizeWarningLimit: 1024,
      reportCompressedSize: false,
    },
  });
  writeFileSync(STAMP, `${new Date().toISOString()}\n`);
  process.stderr.write(`[web] dashboard built into web/dist in ${Math.round(performance.now() - started)} ms\n`);
}

if (import.meta.main) {
  if (process.argv.includes('--if-stale') && !isStale()) process.exit(0);
  await buildDashboard();
}
