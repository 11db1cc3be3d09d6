// The caller's HTTP answer as capabilities write it (the Reply of server/modules/capability.ts):
// an agent's answer passed on with backpressure, or an answer kas composes, or an error in the
// capability's language. The one place that writes agents' answers to HTTP responses.
import type { Response } from 'express';
import type { Reply } from '../modules/capability.ts';
import type { KasError } from '../routing/errors.ts';
import type { AgentStream } from '../routing/request.ts';
import { cutShort, type ErrorBody, sendError } from './errors.ts';

/** Who answered, and how much: the request's log line reads it when the response closes. */
export interface Served {
  bytes: number;
  node?: string;
  replica?: string;
}

export class CallerGoneError extends Error {
  override name = 'CallerGoneError';
  constructor() {
    super('the caller went away');
  }
}

export class HttpReply implements Reply {
  readonly served: Served = { bytes: 0 };
  #res: Response;
  #errorBody: ErrorBody;
  /** Made when first asked for: a long stream (an SSE viewer) needs none, and one costs memory. */
  #gone: AbortController | undefined;
  #left = false;

  constructor(res: Response, errorBody: ErrorBody) {
    this.#res = res;
    this.#errorBody = errorBody;
    // Only a caller that left before the answer was complete aborts anything (and an Error is
    // made only then: this runs for every request).
    res.once('close', () => {
      if (res.writableFinished) return;
      this.#left = true;
      this.#gone?.abort(new CallerGoneError());
    });
  }

  get signal(): AbortSignal {
    if (!this.#gone) {
      this.#gone = new AbortController();
      if (this.#left) this.#gone.abort(new CallerGoneError());
    }
    return this.#gone.signal;
  }

  /** The caller left before the answer was complete. */
  get left(): boolean {
    return this.#left;
  }

  get started(): boolean {
    return this.#res.headersSent;
  }

  get backlog(): number {
    return this.#res.writableLength;
  }

  async pass(stream: AgentStream, streaming: boolean): Promise<void> {
    const res = this.#res;
    if (res.headersSent || res.destroyed) {
      // kas answered already (or the caller left): the late answer is dropped.
      stream.body.cancel('answered already');
      return;
    }
    this.#head(stream.status, stream.headers, stream);
    // Watches and follows must reach the caller at once, before their first event.
    if (streaming) res.flushHeaders();
    const onClose = () => stream.body.cancel('caller went away');
    res.once('close', onClose);
    try {
      for await (const chunk of stream.body) {
        this.served.bytes += chunk.byteLength;
        if (!res.write(chunk)) await drained(res);
      }
      if (!res.writableEnded) res.end();
    } catch (error) {
      // The answer broke mid-body. If the caller already has every byte its Content-Length
      // promised, the answer is complete and cutting the connection would only break its next
      // request on it; else cutting the answer short is the only honest signal left.
      const declared = res.getHeader('content-length');
      if (declared !== undefined && Number(declared) === this.served.bytes && !res.writableEnded) res.end();
      else cutShort(res, error as Error);
    } finally {
      res.off('close', onClose);
    }
  }

  start(status: number, headers: Readonly<Record<string, string | number | readonly string[]>>, servedBy?: { node: string; replica: string }): void {
    this.#head(status, headers, servedBy);
    this.#res.flushHeaders();
  }

  write(chunk: Uint8Array | string): void {
    if (this.#res.writableEnded || this.#res.destroyed) return;
    this.served.bytes += typeof chunk === 'string' ? Buffer.byteLength(chunk) : chunk.byteLength;
    this.#res.write(chunk);
  }

  end(): void {
    if (!this.#res.writableEnded) this.#res.end();
  }

  destroy(error?: Error): void {
    cutShort(this.#res, error);
  }

  fail(error: KasError): void {
    sendError(this.#res, error, this.#errorBody);
  }

  onClose(listener: () => void): () => void {
    const res = this.#res;
    if (res.closed) {
      queueMicrotask(listener);
      return () => undefined;
    }
    res.once('close', listener);
    return () => res.off('close', listener);
  }

  #head(status: number, headers: Readonly<Record<string, string | number | readonly string[]>>, servedBy?: { node: string; replica: string }): void {
    const res = this.#res;
    for (const name in headers) res.setHeader(name, headers[name]!);
    // What is left of a body kas did not read would be taken for the next request: no next one.
    if (!res.req.complete) res.setHeader('Connection', 'close');
    if (servedBy) {
      // kas's own headers: whatever the agent sent, these say who answered.
      res.setHeader('X-Kas-Node', servedBy.node);
      res.setHeader('X-Kas-Agent-Replica', servedBy.replica);
      this.served.node = servedBy.node;
      this.served.replica = servedBy.replica;
    }
    res.writeHead(status);
  }
}

/** Resolves when the response can take more, or is gone. */
function drained(res: Response): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.on('drain', done);
    res.on('close', done);
  });
}
