// Bytes on a raw TCP connection, and the HTTP/1.1 responses that come back, read without any
// HTTP client in between: the corpus must send what clients never would (two Content-Lengths,
// bare LFs, a body that stops) and see exactly what kas answers, including a second response
// that should not be there, or none.
import net from 'node:net';

/** What to write: bytes, or a pause between them (a slow sender). */
export type WireChunk = string | Buffer | { pauseMs: number };

export interface WireResponse {
  status: number;
  reason: string;
  /** Lower-cased names; repeated headers joined with ", " (set-cookie kept apart). */
  headers: Record<string, string>;
  rawHead: string;
  body: Buffer;
  /** The response ended as its framing said (Content-Length, the chunked terminator, or the close it relied on). */
  complete: boolean;
}

export interface WireAnswer {
  responses: WireResponse[];
  /** kas closed the connection (or reset it) before the exchange timed out. */
  closed: boolean;
  reset: boolean;
  /** Milliseconds from the first byte written to the close (or the end of waiting). */
  elapsedMs: number;
}

export interface ExchangeOptions {
  /** Give up waiting for kas after this long (default 5 s). */
  timeoutMs?: number;
  /** Once a complete response is in and the connection stays open, stop after this much quiet (default 300 ms). */
  idleMs?: number;
  /** The request was HEAD: its answer has no body, whatever its Content-Length says. */
  head?: boolean;
}

/** Writes `chunks` to host:port and collects what comes back until kas closes or goes quiet. */
export function exchange(port: number, chunks: readonly WireChunk[], options: ExchangeOptions = {}): Promise<WireAnswer> {
  const timeoutMs = options.timeoutMs ?? 5_000;
  const idleMs = options.idleMs ?? 300;
  return new Promise((resolve) => {
    const socket = net.connect({ port, host: '127.0.0.1' });
    const received: Buffer[] = [];
    const started = performance.now();
    let reset = false;
    let settled = false;
    let idle: NodeJS.Timeout | undefined;
    const finish = (closed: boolean) => {
      if (settled) return;
      settled = true;
      clearTimeout(deadline);
      clearTimeout(idle);
      socket.destroy();
      resolve({ responses: parseResponses(Buffer.concat(received), closed, options.head), closed, reset, elapsedMs: performance.now() - started });
    };
    const deadline = setTimeout(() => finish(false), timeoutMs);
    socket.on('data', (data: Buffer) => {
      received.push(data);
      clearTimeout(idle);
      const responses = parseResponses(Buffer.concat(received), false, options.head);
      if (responses.length > 0 && responses.at(-1)!.complete) idle = setTimeout(() => finish(false), idleMs);
    });
    socket.on('error', (error: NodeJS.ErrnoException) => {
      if (error.code === 'ECONNRESET' || error.code === 'EPIPE') reset = true;
    });
    socket.on('close', () => finish(true));
    socket.once('connect', async () => {
      for (const chunk of chunks) {
        if (socket.destroyed) return;
        if (typeof chunk === 'object' && 'pauseMs' in chunk) await new Promise((r) => setTimeout(r, chunk.pauseMs));
        else socket.write(chunk);
      }
    });
  });
}

/** Every response in `bytes`, the last one possibly incomplete. */
export function parseResponses(bytes: Buffer, closed: boolean, head = false): WireResponse[] {
  const responses: WireResponse[] = [];
  let offset = 0;
  while (offset < bytes.length) {
    const headEnd = bytes.indexOf('\r\n\r\n', offset);
    if (headEnd < 0) break;
    const rawHead = bytes.subarray(offset, headEnd).toString('latin1');
    const [statusLine, ...lines] = rawHead.split('\r\n');
    const match = /^HTTP\/1\.[01] (\d{3}) ?(.*)$/.exec(statusLine ?? '');
    if (!match) break;
    const headers: Record<string, string> = {};
    for (const line of lines) {
      const colon = line.indexOf(':');
      if (colon <= 0) continue;
      const name = line.slice(0, colon).trim().toLowerCase();
      const value = line.slice(colon + 1).trim();
      headers[name] = headers[name] === undefined ? value : `${headers[name]}, ${value}`;
    }
    const status = Number(match[1]);
    let bodyStart = headEnd + 4;
    let body: Buffer;
    let complete: boolean;
    if (status < 200 && status !== 101) {
      // An interim answer (100 Continue): the real one follows.
      offset = bodyStart;
      continue;
    }
    if (status === 204 || status === 304 || (head && responses.length === 0)) {
      body = Buffer.alloc(0);
      complete = true;
    } else if (/chunked/i.test(headers['transfer-encoding'] ?? '')) {
      const chunks: Buffer[] = [];
      complete = false;
      let at = bodyStart;
      for (;;) {
        const lineEnd = bytes.indexOf('\r\n', at);
        if (lineEnd < 0) break;
        const size = parseInt(bytes.subarray(at, lineEnd).toString('latin1'), 16);
        if (!Number.isFinite(size)) break;
        if (size === 0) {
          const trailerEnd = bytes.indexOf('\r\n\r\n', lineEnd);
          if (trailerEnd >= 0) {
            complete = true;
            at = trailerEnd + 4;
          } else if (bytes.indexOf('\r\n', lineEnd + 2) === lineEnd + 2) {
            complete = true;
            at = lineEnd + 4;
          }
          break;
        }
        if (lineEnd + 2 + size + 2 > bytes.length) break;
        chunks.push(bytes.subarray(lineEnd + 2, lineEnd + 2 + size));
        at = lineEnd + 2 + size + 2;
      }
      body = Buffer.concat(chunks);
      bodyStart = at;
    } else if (headers['content-length'] !== undefined) {
      const length = Number(headers['content-length']);
      body = bytes.subarray(bodyStart, Math.min(bytes.length, bodyStart + length));
      complete = body.length === length;
      bodyStart += body.length;
    } else {
      // Delimited by the close.
      body = bytes.subarray(bodyStart);
      complete = closed;
      bodyStart = bytes.length;
    }
    responses.push({ status, reason: match[2] ?? '', headers, rawHead, body, complete });
    if (!complete) break;
    offset = bodyStart;
  }
  return responses;
}
