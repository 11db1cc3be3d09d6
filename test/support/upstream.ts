import { EventEmitter } from 'node:events';
import { createServer } from 'node:http';
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export type UpstreamOutcome = 'pending' | 'finished' | 'aborted';

export interface UpstreamRequest {
  id: number;
  method: string;
  path: string;
  /** Parameters from the query string and, for form POSTs, the body (as Prometheus accepts both). */
  params: URLSearchParams;
  headers: IncomingHttpHeaders;
  /** Bytes handed to the socket; with backpressure honoured this tracks what the client has consumed. */
  bytesWritten: number;
  /** 'aborted' means the connection closed before the whole response was sent. */
  outcome: UpstreamOutcome;
  ended: Promise<Exclude<UpstreamOutcome, 'pending'>>;
}

export interface UpstreamEvents {
  request: [UpstreamRequest];
  finished: [UpstreamRequest];
  aborted: [UpstreamRequest];
}

export interface FakeUpstream {
  url: string;
  port: number;
  requests: UpstreamRequest[];
  events: EventEmitter<UpstreamEvents>;
  /** Requests seen for a path (e.g. "/api/v1/query"), or in total without one. */
  count(path?: string): number;
  waitForRequest(match?: (r: UpstreamRequest) => boolean, timeoutMs?: number): Promise<UpstreamRequest>;
  /** Resolves with a request (already aborted or aborting later) that the client gave up on. */
  waitForAbort(timeoutMs?: number, match?: (r: UpstreamRequest) => boolean): Promise<UpstreamRequest>;
  stop(): Promise<void>;
}

const chunkSize = 64 * 1024;
const defaultBigBytes = 100 * 1024 * 1024;
const chunk = Buffer.alloc(chunkSize, 'kas-flow-control-'); // recognisable if it leaks into logs

/**
 * A stand-in for the Prometheus an agent talks to, driven by the query text:
 * `big&bytes=N`, `slow&ms=N`, `status&code=N`, anything else answers a one-sample vector.
 */
export async function startFakeUpstream(): Promise<FakeUpstream> {
  const requests: UpstreamRequest[] = [];
  const events = new EventEmitter<UpstreamEvents>();

  const server = createServer((req, res) => {
    void handle(req, res).catch((err: unknown) => {
      if (!res.headersSent) sendJson(res, 500, errorEnvelope('internal', String(err)));
      else res.destroy();
    });
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://upstream');
    const params = new URLSearchParams(url.search);
    const body = await readBody(req);
    if (req.method === 'POST' && (req.headers['content-type'] ?? '').startsWith('application/x-www-form-urlencoded')) {
      for (const [key, value] of new URLSearchParams(body)) params.append(key, value);
    }

    let settle: (outcome: Exclude<UpstreamOutcome, 'pending'>) => void = () => {};
    const record: UpstreamRequest = {
      id: requests.length + 1,
      method: req.method ?? 'GET',
      path: url.pathname,
      params,
      headers: req.headers,
      bytesWritten: 0,
      outcome: 'pending',
      ended: new Promise((resolve) => (settle = resolve)),
    };
    res.once('close', () => {
      record.outcome = res.writableFinished ? 'finished' : 'aborted';
      settle(record.outcome);
      events.emit(record.outcome, record);
    });
    requests.push(record);
    events.emit('request', record);

    if (url.pathname !== '/api/v1/query' && url.pathname !== '/api/v1/query_range') {
      sendJson(res, 404, errorEnvelope('not_found', `fake upstream does not serve ${url.pathname}`), record);
      return;
    }
    const query = params.get('query') ?? '';
    if (query === 'big') {
      await streamBytes(res, numberParam(params, 'bytes', defaultBigBytes), record);
    } else if (query === 'slow') {
      const timer = setTimeout(() => sendJson(res, 200, answer(url.pathname), record), numberParam(params, 'ms', 5_000));
      res.once('close', () => clearTimeout(timer));
    } else if (query === 'status') {
      const code = numberParam(params, 'code', 500);
      sendJson(res, code, errorEnvelope(errorTypeFor(code), `fake upstream answered ${code}`), record);
    } else {
      sendJson(res, 200, answer(url.pathname), record);
    }
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const { port } = server.address() as AddressInfo;

  function waitForRecord(
    already: (r: UpstreamRequest) => boolean,
    event: 'request' | 'aborted',
    what: string,
    timeoutMs: number,
  ): Promise<UpstreamRequest> {
    const seen = requests.find(already);
    if (seen !== undefined) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const listener = (r: UpstreamRequest) => {
        if (!already(r)) return;
        clearTimeout(timer);
        events.off(event, listener);
        resolve(r);
      };
      const timer = setTimeout(() => {
        events.off(event, listener);
        const log = requests.map((r) => `${r.method} ${r.path}?${r.params} ${r.outcome} ${r.bytesWritten}B`).join('\n  ');
        reject(new Error(`timed out after ${timeoutMs}ms waiting for ${what}; upstream saw:\n  ${log || '(nothing)'}`));
      }, timeoutMs);
      events.on(event, listener);
    });
  }

  return {
    url: `http://127.0.0.1:${port}`,
    port,
    requests,
    events,
    count: (path) => requests.filter((r) => path === undefined || r.path === path).length,
    waitForRequest: (match = () => true, timeoutMs = 10_000) =>
      waitForRecord(match, 'request', 'a request to the fake upstream', timeoutMs),
    waitForAbort: (timeoutMs = 10_000, match = () => true) =>
      waitForRecord((r) => r.outcome === 'aborted' && match(r), 'aborted', 'the client to abort an upstream response', timeoutMs),
    async stop() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** Writes in fixed chunks and waits for 'drain', so a slow reader slows the writer down. */
async function streamBytes(res: ServerResponse, total: number, record: UpstreamRequest): Promise<void> {
  res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': String(total) });
  while (record.bytesWritten < total) {
    if (res.destroyed) return;
    const size = Math.min(chunkSize, total - record.bytesWritten);
    record.bytesWritten += size;
    if (!res.write(size === chunkSize ? chunk : chunk.subarray(0, size))) {
      await new Promise<void>((resolve) => {
        const resume = () => {
          res.off('drain', resume);
          res.off('close', resume);
          resolve();
        };
        res.on('drain', resume);
        res.on('close', resume);
      });
    }
  }
  res.end();
}

function sendJson(res: ServerResponse, status: number, value: unknown, record?: UpstreamRequest): void {
  if (res.destroyed) return;
  const body = JSON.stringify(value);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': String(Buffer.byteLength(body)) });
  res.end(body);
  if (record !== undefined) record.bytesWritten += Buffer.byteLength(body);
}

function answer(path: string): unknown {
  const now = Date.now() / 1000;
  const metric = { __name__: 'up', job: 'fake-upstream', instance: 'fake-upstream:9090' };
  if (path === '/api/v1/query_range') {
    return { status: 'success', data: { resultType: 'matrix', result: [{ metric, values: [[now, '1']] }] } };
  }
  return { status: 'success', data: { resultType: 'vector', result: [{ metric, value: [now, '1'] }] } };
}

function errorEnvelope(errorType: string, error: string): unknown {
  return { status: 'error', errorType, error };
}

// The errorType values Prometheus itself pairs with these status codes.
function errorTypeFor(code: number): string {
  if (code === 400) return 'bad_data';
  if (code === 422) return 'execution';
  if (code === 503) return 'unavailable';
  return 'internal';
}

function numberParam(params: URLSearchParams, name: string, fallback: number): number {
  const raw = params.get(name);
  const value = raw === null ? Number.NaN : Number(raw);
  return Number.isFinite(value) && value >= 0 ? value : fallback;
}

async function readBody(req: IncomingMessage): Promise<string> {
  req.setEncoding('utf8');
  let body = '';
  for await (const part of req) body += part as string;
  return body;
}
