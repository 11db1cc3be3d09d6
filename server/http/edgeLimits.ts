// What a caller may send kas before anything else looks at it, on the API and private ports: a
// request head within KAS_MAX_HEADER_SIZE and KAS_HEADER_TIMEOUT, a body within
// KAS_MAX_REQUEST_BODY and KAS_BODY_TIMEOUT. Beyond, a clear answer in the caller's language
// where its URL is known (431, 408, 413; 400 for bytes that are not HTTP/1.1), the connection
// closed, and the refusal counted. Node's parser enforces the head; kas reads the body itself.
import { createHash } from 'node:crypto';
import { STATUS_CODES, type IncomingMessage, type Server, type ServerOptions, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import type { LimitMetrics } from '../../otel/limitMetrics.ts';
import { type ErrorBody, KasError } from './errors.ts';
import { fallbackTraceId } from './traceContext.ts';

export interface EdgeLimits {
  headerTimeoutMs: number;
  bodyTimeoutMs: number;
  maxHeaderBytes: number;
  maxRequestBodyBytes: number;
}

/**
 * Node's own bounds for the head: its size, and the time to receive it. `requestTimeout` is the
 * backstop for a body kas does not read (a GET that declares one): kas's own body timer answers
 * a body it reads first, since it starts no earlier than the head was complete.
 */
export function serverOptions(limits: EdgeLimits): ServerOptions {
  return {
    maxHeaderSize: limits.maxHeaderBytes,
    // Checked by kas itself (requestHead in apiApp.ts), so that the answer says so in the caller's language.
    requireHostHeader: false,
    headersTimeout: limits.headerTimeoutMs,
    requestTimeout: limits.headerTimeoutMs + limits.bodyTimeoutMs,
    // How often Node looks for connections past those bounds (its default is 30 s).
    connectionsCheckingInterval: Math.min(1_000, limits.headerTimeoutMs),
  };
}

/** The request target (its first 8 KiB) when what the parser choked on starts with the request line. */
function requestTarget(raw: Buffer | undefined): string {
  const start = raw?.subarray(0, 8192).toString('latin1') ?? '';
  return /^[A-Z]+ (\/[^\s]*)/.exec(start)?.[1] ?? '/';
}

type ClientError = NodeJS.ErrnoException & { rawPacket?: Buffer; reason?: string };

/**
 * Answers what Node's parser refuses (a head too large or too slow, bytes that are not HTTP)
 * with kas's error in the caller's language, instead of Node's bare status line; counts it; and
 * closes the connection, which cannot be read further.
 */
export function answerClientErrors(server: Server, o: { errorBodyFor: (url: string) => ErrorBody; metrics: LimitMetrics; log: Logger; port: string }): void {
  server.on('clientError', (error: ClientError, socket: Duplex) => {
    const response = (socket as Duplex & { _httpMessage?: ServerResponse })._httpMessage;
    // The caller left, or an answer is already on its way: there is nobody (or nothing) to tell.
    if (error.code === 'ECONNRESET' || error.code === 'EPIPE' || !socket.writable || response?.headersSent) {
      socket.destroy();
      return;
    }
    let kasError: KasError;
    switch (error.code) {
      case 'HPE_HEADER_OVERFLOW':
        o.metrics.refusals.add(1, { limit: 'header_bytes' });
        kasError = new KasError('headers_too_large', 'the request line and headers are larger than KAS_MAX_HEADER_SIZE allows; send fewer or smaller headers');
        break;
      case 'ERR_HTTP_REQUEST_TIMEOUT':
        // A response object exists once the head was read: then it was the body that was slow.
        o.metrics.refusals.add(1, { limit: response ? 'body_timeout' : 'header_timeout' });
        kasError = response
          ? new KasError('request_timeout', 'the request body did not arrive within KAS_BODY_TIMEOUT; send it at once, with a Content-Length that matches it')
          : new KasError('request_timeout', 'the request line and headers did not arrive within KAS_HEADER_TIMEOUT');
        break;
      default: {
        const code = /^HPE_[A-Z_]+$/.test(error.code ?? '') ? error.code! : 'OTHER';
        o.metrics.malformedRequests.add(1, { code });
        kasError = new KasError('bad_request', `the request is not valid HTTP/1.1 (${code}${error.reason ? `: ${error.reason}` : ''}); kas reads each request only one way`);
      }
    }
    o.log.info({ port: o.port, code: error.code, status: kasError.status }, 'refused a request Node could not read');
    const traceId = fallbackTraceId(undefined);
    const body = JSON.stringify(o.errorBodyFor(requestTarget(error.rawPacket))(kasError, traceId));
    const head = [
      `HTTP/1.1 ${kasError.status} ${STATUS_CODES[kasError.status]}`,
      'Content-Type: application/json; charset=utf-8',
      `Content-Length: ${Buffer.byteLength(body)}`,
      `X-Trace-Id: ${traceId}`,
      'Connection: close',
    ];
    socket.end(`${head.join('\r\n')}\r\n\r\n${body}`);
    // A caller that does not read its answer does not keep the connection.
    setTimeout(() => socket.destroy(), 1_000).unref();
  });
}

export class BodyLimits {
  readonly #limits: EdgeLimits;
  readonly #metrics: LimitMetrics;

  constructor(limits: EdgeLimits, metrics: LimitMetrics) {
    this.#limits = limits;
    this.#metrics = metrics;
  }

  /**
   * The caller's body (POST only), refused past KAS_MAX_REQUEST_BODY with 413 and past
   * KAS_BODY_TIMEOUT with 408. Either way the rest of it is never read: the answer says
   * `Connection: close` (sendError), so the connection is not reused.
   */
  async read(req: IncomingMessage): Promise<Buffer | undefined> {
    if (req.method !== 'POST') return undefined;
    const max = this.#limits.maxRequestBodyBytes;
    const declared = Number(req.headers['content-length'] ?? 0);
    if (declared > max) throw this.#tooLarge();
    const chunks: Buffer[] = [];
    let size = 0;
    let timer: NodeJS.Timeout | undefined;
    const timeUp = new Promise<'time up'>((resolve) => (timer = setTimeout(() => resolve('time up'), this.#limits.bodyTimeoutMs)));
    // Stopping early (return) detaches the request from its socket rather than destroying it, so
    // the socket stays open for the answer.
    const body = (req as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
    try {
      for (;;) {
        const next = await Promise.race([body.next(), timeUp]);
        if (next === 'time up') {
          this.#metrics.refusals.add(1, { limit: 'body_timeout' });
          throw new KasError(
            'request_timeout',
            `the request body did not arrive within KAS_BODY_TIMEOUT (${this.#limits.bodyTimeoutMs / 1000} s; ${size} bytes came); send it at once, with a Content-Length that matches it`,
          );
        }
        if (next.done) return Buffer.concat(chunks);
        size += next.value.byteLength;
        if (size > max) throw this.#tooLarge();
        chunks.push(next.value);
      }
    } catch (error) {
      void body.return?.();
      throw error;
    } finally {
      clearTimeout(timer);
    }
  }

  #tooLarge(): KasError {
    this.#metrics.refusals.add(1, { limit: 'body_bytes' });
    const max = this.#limits.maxRequestBodyBytes;
    return new KasError('payload_too_large', `request bodies above ${max} bytes (KAS_MAX_REQUEST_BODY) are refused`);
  }
}

/**
 * Kubernetes watches and log follows open per API token on this node (KAS_MAX_WATCHES_PER_TOKEN):
 * one caller cannot hold the node's streams. Tokens are told apart by a hash of the token itself
 * (never kept in the clear), so one `sub` with many tokens has a bound per token.
 */
export class StreamsPerToken {
  readonly #max: number;
  readonly #metrics: LimitMetrics;
  readonly #open = new Map<string, number>();

  constructor(max: number, metrics: LimitMetrics) {
    this.#max = max;
    this.#metrics = metrics;
  }

  /** Holds one stream for `credential` until `onEnd` calls back; throws 429 past the bound. */
  hold(credential: string, onEnd: (release: () => void) => void): void {
    const key = createHash('sha256').update(credential).digest('base64url');
    const open = this.#open.get(key) ?? 0;
    if (open >= this.#max) {
      this.#metrics.refusals.add(1, { limit: 'watches_per_token' });
      throw new KasError('too_many_requests', `this API token holds ${this.#max} watches and log follows open on this kas node already (KAS_MAX_WATCHES_PER_TOKEN); close some, or use another token`, {
        retryAfterSeconds: 5,
      });
    }
    this.#open.set(key, open + 1);
    let released = false;
    onEnd(() => {
      if (released) return;
      released = true;
      const left = (this.#open.get(key) ?? 1) - 1;
      if (left > 0) this.#open.set(key, left);
      else this.#open.delete(key);
    });
  }
}
