// The body of an answer as an async iterable that knows when its chunks are consumed: a chunk
// counts as consumed when the reader asks for the next one. The producer (a tunnel stream, or
// the response of another kas node) is told through `onConsumed` and returns credit, or resumes
// its socket, only then: so a slow reader slows its own producer, and nothing buffers without
// bound in between.

export type BodyOutcome = 'ended' | 'failed' | 'cancelled';

/** The producer's side: told when to send more, and when to stop. */
export interface ChunkQueueHooks {
  /** The reader took `bytes` more (it asked for the chunk after them). */
  onConsumed?: (bytes: number) => void;
  /** The reader stopped before the end (`break`, `return()`, or `cancel()`). */
  onCancel?: (reason: string) => void;
}

/** Whoever accounts for the body (spans, metrics, logs). */
export interface ChunkQueueObserver {
  onFirstChunk?: () => void;
  /** The reader is done with the body: it got its end or its error, or it stopped. Once. */
  onOver?: (outcome: BodyOutcome, detail?: unknown) => void;
}

type Waiter = { resolve: (result: IteratorResult<Uint8Array>) => void; reject: (error: unknown) => void };

export class ChunkQueue implements AsyncIterableIterator<Uint8Array> {
  #chunks: Uint8Array[] = [];
  #queuedBytes = 0;
  #handedOut = 0;
  #waiter: Waiter | undefined;
  /** The producer is done (ended or failed); what is queued is still for the reader. */
  #ended = false;
  #error: unknown;
  /** The reader is done with the body. */
  #over = false;
  #hooks: ChunkQueueHooks;
  #observer: ChunkQueueObserver = {};
  /** Bytes the producer put in, so far. */
  bytes = 0;
  chunks = 0;
  /** When the first chunk came (Date.now()), for an observer that starts watching after it. */
  firstChunkAt: number | undefined;

  constructor(hooks: ChunkQueueHooks = {}) {
    this.#hooks = hooks;
  }

  observe(observer: ChunkQueueObserver): void {
    this.#observer = observer;
  }

  /** Bytes waiting for the reader. */
  get queuedBytes(): number {
    return this.#queuedBytes;
  }

  push(chunk: Uint8Array): void {
    if (this.#ended) return;
    this.bytes += chunk.byteLength;
    if (this.chunks++ === 0) {
      this.firstChunkAt = Date.now();
      this.#observer.onFirstChunk?.();
    }
    const waiter = this.#waiter;
    if (waiter) {
      this.#waiter = undefined;
      this.#handedOut = chunk.byteLength;
      waiter.resolve({ value: chunk, done: false });
      return;
    }
    this.#chunks.push(chunk);
    this.#queuedBytes += chunk.byteLength;
  }

  /** The producer is done: the reader gets what is queued, then the end. */
  end(): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#wakeAtEnd();
  }

  /** The producer failed: the reader gets what is queued, then this error. */
  fail(error: unknown): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#error = error;
    this.#wakeAtEnd();
  }

  /** The reader gives up: queued chunks are dropped and the producer is told to stop. */
  cancel(reason = 'cancelled'): void {
    if (this.#over) return;
    const producing = !this.#ended;
    this.#chunks = [];
    this.#queuedBytes = 0;
    this.#ended = true;
    this.#error = undefined;
    this.#deliverEnd('cancelled', reason);
    if (producing) this.#hooks.onCancel?.(reason);
  }

  /** Whoever watches over the body gives up on it: the producer is stopped, the reader gets `error`. */
  abort(error: unknown, reason = 'aborted'): void {
    if (this.#over) return;
    const producing = !this.#ended;
    this.#chunks = [];
    this.#queuedBytes = 0;
    this.#ended = true;
    this.#error = error;
    this.#wakeAtEnd();
    if (producing) this.#hooks.onCancel?.(reason);
  }

  next(): Promise<IteratorResult<Uint8Array>> {
    if (this.#handedOut > 0) {
      const consumed = this.#handedOut;
      this.#handedOut = 0;
      if (!this.#ended) this.#hooks.onConsumed?.(consumed);
    }
    const chunk = this.#chunks.shift();
    if (chunk) {
      this.#queuedBytes -= chunk.byteLength;
      this.#handedOut = chunk.byteLength;
      return Promise.resolve({ value: chunk, done: false });
    }
    if (this.#ended) {
      if (!this.#over) this.#deliverEnd(this.#error === undefined ? 'ended' : 'failed');
      return this.#error === undefined ? Promise.resolve({ value: undefined, done: true }) : Promise.reject(this.#error);
    }
    if (this.#waiter) return Promise.reject(new Error('ChunkQueue: next() called while another is pending'));
    return new Promise((resolve, reject) => (this.#waiter = { resolve, reject }));
  }

  return(): Promise<IteratorResult<Uint8Array>> {
    this.cancel('reader stopped');
    return Promise.resolve({ value: undefined, done: true });
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  /** The producer ended while the reader waited for more: it gets the end (or the error) now. */
  #wakeAtEnd(): void {
    const waiter = this.#waiter;
    if (!waiter) return;
    this.#waiter = undefined;
    const failed = this.#error !== undefined;
    this.#deliverEnd(failed ? 'failed' : 'ended');
    if (failed) waiter.reject(this.#error);
    else waiter.resolve({ value: undefined, done: true });
  }

  /** `detail`: the error of a failed body, the reason of a cancelled one. */
  #deliverEnd(outcome: BodyOutcome, detail: unknown = this.#error): void {
    if (this.#over) return;
    this.#over = true;
    const waiter = this.#waiter;
    this.#waiter = undefined;
    waiter?.resolve({ value: undefined, done: true });
    this.#observer.onOver?.(outcome, detail);
  }
}
