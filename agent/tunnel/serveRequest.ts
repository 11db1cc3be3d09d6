// agentk's side of one tunnelled request: runs it against the upstream and streams the answer
// back in small chunks, never further ahead than the credit kas has granted, so a slow caller at
// the far end slows this upstream read instead of filling memory anywhere on the way.
import {
  type AgentErrorCode,
  type AgentMessage,
  CHUNK_MAX_BYTES,
  type TunnelRequest,
  type Upstream,
} from '../../protocol/messages.ts';

export interface UpstreamResponse {
  status: number;
  headers: Record<string, string | string[]>;
  body: AsyncIterable<Uint8Array>;
}

/** Runs one request against an upstream; rejects with an UpstreamError when it cannot. */
export type UpstreamExecutor = (request: TunnelRequest, signal: AbortSignal) => Promise<UpstreamResponse>;

export class UpstreamError extends Error {
  override name = 'UpstreamError';
  readonly code: AgentErrorCode;
  constructor(code: AgentErrorCode, message: string) {
    super(message);
    this.code = code;
  }
}

export interface RequestOutcome {
  status: number | undefined;
  bytes: number;
  error: AgentErrorCode | 'cancelled' | undefined;
  /** What went wrong, in words, when `error` is set. */
  message?: string;
}

/** One request in flight; kas's `credit` and `cancel` messages reach it through this object. */
export class InflightRequest {
  readonly request: TunnelRequest;
  #credit: number;
  #creditWaiter: (() => void) | undefined;
  #abort = new AbortController();
  #cancelled = false;

  constructor(request: TunnelRequest) {
    this.request = request;
    this.#credit = request.credit;
  }

  addCredit(bytes: number): void {
    this.#credit += bytes;
    this.#creditWaiter?.();
  }

  cancel(reason: string): void {
    this.#cancelled = true;
    this.#abort.abort(new Error(reason));
    this.#creditWaiter?.();
  }

  async #waitForCredit(bytes: number): Promise<boolean> {
    while (this.#credit < bytes && !this.#cancelled) {
      await new Promise<void>((resolve) => (this.#creditWaiter = resolve));
      this.#creditWaiter = undefined;
    }
    return !this.#cancelled;
  }

  async run(executor: UpstreamExecutor | undefined, send: (message: AgentMessage) => void): Promise<RequestOutcome> {
    const { id, timeoutMs, upstream } = this.request;
    const outcome: RequestOutcome = { status: undefined, bytes: 0, error: undefined };
    const fail = (code: AgentErrorCode, message: string) => {
      outcome.error = code;
      outcome.message = message;
      send({ type: 'error', id, code, message });
      return outcome;
    };
    if (!executor) return fail('not_supported', `this agent has no ${upstream} configured`);

    // One controller for both kas's cancel and the deadline: AbortSignal.any and AbortSignal.timeout
    // cost more per request (weak references, a finalizer) than the rest of a small request's setup.
    const signal = this.#abort.signal;
    const deadline =
      timeoutMs > 0 ? setTimeout(() => this.#abort.abort(new DOMException(`${upstream} did not answer within ${timeoutMs}ms`, 'TimeoutError')), timeoutMs) : undefined;
    try {
      const response = await executor(this.request, signal);
      outcome.status = response.status;
      send({ type: 'head', id, status: response.status, headers: response.headers });
      for await (const chunk of response.body) {
        for (let offset = 0; offset < chunk.byteLength; offset += CHUNK_MAX_BYTES) {
          const piece = chunk.subarray(offset, offset + CHUNK_MAX_BYTES);
          if (!(await this.#waitForCredit(piece.byteLength))) throw signal.reason;
          this.#credit -= piece.byteLength;
          outcome.bytes += piece.byteLength;
          send({ type: 'data', id, chunk: piece });
        }
      }
      send({ type: 'end', id });
      return outcome;
    } catch (error) {
      if (this.#cancelled) {
        outcome.error = 'cancelled';
        return outcome;
      }
      if (signal.aborted) return fail('upstream_timeout', `${upstream} did not answer within ${timeoutMs}ms`);
      if (error instanceof UpstreamError) return fail(error.code, error.message);
      return fail('upstream_unreachable', describeUpstreamFailure(upstream, error));
    } finally {
      clearTimeout(deadline);
    }
  }
}

function describeUpstreamFailure(upstream: Upstream, error: unknown): string {
  const e = error as NodeJS.ErrnoException;
  return `request to ${upstream} failed: ${e.code ? `${e.code} ` : ''}${e.message ?? String(error)}`;
}
