// The dashboard at `/`: the built page from web/dist (npm run build; npm start builds it when a
// source is newer). Hashed assets are cached for a year; index.html is revalidated every time and
// carries a strict Content-Security-Policy with a fresh style nonce per response (CodeMirror adds
// its styles at run time), and the trace UI link template as a <meta> kas writes in.
import { randomBytes } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import express, { type Request, type Response } from 'express';

export interface DashboardOptions {
  /** KAS_TRACE_UI_URL: the dashboard links trace ids to it, `{traceId}` replaced. */
  traceUiUrl?: string;
  /** Where the built page is; web/dist by default. */
  distDir?: string;
}

const DEFAULT_DIST = fileURLToPath(new URL('../../web/dist/', import.meta.url));

export function contentSecurityPolicy(nonce: string): string {
  return [
    "default-src 'none'",
    "script-src 'self'",
    `style-src 'self' 'nonce-${nonce}'`,
    // CodeMirror draws lint underlines with data: SVG backgrounds.
    "img-src 'self' data:",
    "font-src 'self'",
    // 'self' covers the same-origin WebSocket of the /ui socket.
    "connect-src 'self'",
    "manifest-src 'self'",
    "form-action 'none'",
    "frame-ancestors 'none'",
    "base-uri 'none'",
    "object-src 'none'",
  ].join('; ');
}

function escapeAttribute(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/"/g, '&quot;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

function setMeta(html: string, name: string, content: string): string {
  return html.replace(new RegExp(`<meta name="${name}" content="[^"]*">`), `<meta name="${name}" content="${escapeAttribute(content)}">`);
}

function commonHeaders(res: Response): void {
  res.setHeader('X-Content-Type-Options', 'nosniff');
  res.setHeader('Referrer-Policy', 'no-referrer');
}

export function dashboard(options: DashboardOptions = {}): express.Router {
  const dist = options.distDir ?? DEFAULT_DIST;
  const indexFile = join(dist, 'index.html');
  // Re-read when the file changes (a rebuild while kas runs), not on every request.
  let cached: { mtimeMs: number; html: string } | undefined;
  const indexHtml = (): string | undefined => {
    try {
      const { mtimeMs } = statSync(indexFile);
      if (!cached || cached.mtimeMs !== mtimeMs) cached = { mtimeMs, html: readFileSync(indexFile, 'utf8') };
      return cached.html;
    } catch {
      cached = undefined;
      return undefined;
    }
  };

  const router = express.Router();
  router.use(
    '/assets',
    express.static(join(dist, 'assets'), {
      index: false,
      etag: false,
      setHeaders: (res) => {
        commonHeaders(res);
        // File names carry a hash of their content: a new build is new names.
        res.setHeader('Cache-Control', 'public, max-age=31536000, immutable');
      },
    }),
  );
  const page = (_req: Request, res: Response) => {
    commonHeaders(res);
    res.setHeader('Cache-Control', 'no-cache');
    const html = indexHtml();
    if (html === undefined) {
      res.status(503).type('text/plain').send('The dashboard is not built: run "npm run build" (npm start builds it for you).\n');
      return;
    }
    const nonce = randomBytes(16).toString('base64');
    res.setHeader('Content-Security-Policy', contentSecurityPolicy(nonce));
    let out = setMeta(html, 'kas-style-nonce', nonce);
    out = setMeta(out, 'kas-trace-ui-url', options.traceUiUrl ?? '');
    res.type('html').send(out);
  };
  router.get(['/', '/index.html'], page);
  return router;
}
