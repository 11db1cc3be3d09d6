// The two kinds of viewer of a live graph: an SSE stream (`…/prometheus/live`, for Rails and any
// EventSource) and a subscription on the dashboard's socket. Both get the same events: a catch-up
// when they join (the snapshot, or the appends after the last event they had), one append per
// step, errors; they differ only in framing.
import type { EndReason, FanOutEvent, Viewer } from '../../../fanout/hub.ts';
import { KasError } from '../../../routing/errors.ts';
import type { Reply, UiSink } from '../../capability.ts';
import type { LiveEvent, LiveHead } from './subscription.ts';
import type { Append, LiveWindow } from './window.ts';

/** What a viewer shows, in the contract's payloads: the same for SSE and the dashboard's socket. */
export interface LiveOutput {
  snapshot(tMs: number, window: LiveWindow): void;
  append(append: Append): void;
  error(tMs: number | undefined, errorType: string, error: string, final: boolean): void;
  /** The stream is over (after a final error, or cleanly). */
  end(): void;
  readonly backlog: number;
  readonly gone: boolean;
  onGone(listener: () => void): () => void;
}

/**
 * A viewer of a live graph. `resumeAfterMs`: the step of the last event it had (Last-Event-ID):
 * it gets the appends after it instead of a snapshot, when the window still holds that step.
 */
export class LiveViewer implements Viewer<LiveHead, LiveEvent> {
  #out: LiveOutput;
  #resumeAfterMs: number | undefined;
  /** The latest step this viewer was sent; later appends only. */
  #sentMs: number | undefined;
  #caughtUp = false;

  constructor(out: LiveOutput, resumeAfterMs: number | undefined) {
    this.#out = out;
    this.#resumeAfterMs = resumeAfterMs;
  }

  get gone(): boolean {
    return this.#out.gone;
  }

  onGone(listener: () => void): () => void {
    return this.#out.onGone(listener);
  }

  get backlog(): number {
    return this.#out.backlog;
  }

  start(): void {}

  send(event: FanOutEvent<LiveEvent>): void {
    const live = event.payload;
    switch (live.kind) {
      case 'ready':
        return this.#catchUp(live.window);
      case 'append': {
        const tMs = Math.round(live.append.t * 1000);
        if (!this.#caughtUp || (this.#sentMs !== undefined && tMs <= this.#sentMs)) return;
        this.#sentMs = tMs;
        return this.#out.append(live.append);
      }
      case 'error':
        this.#out.error(live.tMs ?? this.#sentMs, live.errorType, live.error, live.final);
        if (live.final) this.#out.end();
        return;
    }
  }

  #catchUp(window: LiveWindow): void {
    if (this.#caughtUp) return;
    this.#caughtUp = true;
    const last = window.lastMs;
    if (last === undefined) return;
    const resume = this.#resumeAfterMs;
    if (resume !== undefined && (window.holds(resume) || resume === last)) {
      for (const append of window.appendsAfter(resume)) this.#out.append(append);
    } else {
      this.#out.snapshot(last, window);
    }
    this.#sentMs = last;
  }

  end(reason: EndReason): void {
    if (reason === 'slow') {
      this.#out.error(this.#sentMs, 'viewer_too_slow', 'this viewer fell behind the live graph and was dropped; reconnect to resume', true);
    }
    this.#out.end();
  }

  fail(error: unknown): void {
    const message = error instanceof Error ? error.message : String(error);
    this.#out.error(this.#sentMs, error instanceof KasError ? error.code : 'internal', message, true);
    this.#out.end();
  }
}

/** Server-sent events over an HTTP answer. */
export class SseOutput implements LiveOutput {
  #reply: Reply;

  constructor(reply: Reply) {
    this.#reply = reply;
  }

  /** Sends the head at once: an EventSource is open from then on, whatever comes first. */
  open(): void {
    this.#reply.start(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', 'x-accel-buffering': 'no' });
    this.#reply.write('retry: 2000\n\n');
  }

  get backlog(): number {
    return this.#reply.backlog;
  }

  get gone(): boolean {
    return this.#reply.left;
  }

  onGone(listener: () => void): () => void {
    return this.#reply.onClose(listener);
  }

  snapshot(tMs: number, window: LiveWindow): void {
    this.#reply.write(`id: ${tMs / 1000}\nevent: snapshot\ndata: ${window.snapshotJson()}\n\n`);
  }

  append(append: Append): void {
    this.#reply.write(`id: ${append.t}\nevent: append\ndata: ${JSON.stringify(append)}\n\n`);
  }

  error(tMs: number | undefined, errorType: string, error: string): void {
    const id = tMs === undefined ? '' : `id: ${tMs / 1000}\n`;
    this.#reply.write(`${id}event: error\ndata: ${JSON.stringify({ errorType, error })}\n\n`);
  }

  heartbeat(): void {
    this.#reply.write(': heartbeat\n\n');
  }

  end(): void {
    this.#reply.end();
  }
}

/** A subscription on the dashboard's socket: the same payloads as `update` messages with its id. */
export class UiOutput implements LiveOutput {
  #sink: UiSink;
  #id: string;

  constructor(sink: UiSink, id: string) {
    this.#sink = sink;
    this.#id = id;
  }

  get backlog(): number {
    return this.#sink.backlog;
  }

  get gone(): boolean {
    return this.#sink.gone;
  }

  onGone(listener: () => void): () => void {
    return this.#sink.onGone(listener);
  }

  snapshot(tMs: number, window: LiveWindow): void {
    this.#sink.send({ id: this.#id, type: 'snapshot', t: tMs / 1000, data: window.snapshot() });
  }

  append(append: Append): void {
    this.#sink.send({ id: this.#id, type: 'append', t: append.t, data: append });
  }

  error(tMs: number | undefined, errorType: string, error: string, final: boolean): void {
    this.#sink.send({ id: this.#id, type: 'error', ...(tMs === undefined ? {} : { t: tMs / 1000 }), errorType, error, final });
  }

  end(): void {
    this.#sink.end();
  }
}
