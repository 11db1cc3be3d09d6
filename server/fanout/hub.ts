// One upstream stream, many viewers. A capability that can serve identical requests from one
// upstream (Kubernetes watches, live graphs) keys its streams here; the hub keeps each shared
// stream's head and its recent events, so that a viewer who joins later first gets what it
// missed and then the live events, each viewer behind its own bounds. The upstream knows
// nothing of who views it; a viewer knows nothing of how the events arrive (client-go's shared
// informers are this shape).
//
// Memory is bounded: per viewer by the slow-viewer policy (see SLOW_VIEWER_BYTES), per shared
// stream by its replay buffer, and all replay buffers of a node together by the hub's budget;
// over it, the stream that adds gives back its own oldest events.
import type { Logger } from 'pino';

/** Events kept for viewers that join later, and the bytes they may take, per shared stream. */
export const REPLAY_MAX_EVENTS = 1024;
export const REPLAY_MAX_BYTES = 4 * 1024 * 1024;
/** What the replay buffers of all shared streams on a node may hold together. */
export const REPLAY_TOTAL_BYTES = 64 * 1024 * 1024;
/**
 * A viewer is ended when it has had more than SLOW_VIEWER_BYTES unsent for SLOW_VIEWER_GRACE_MS,
 * or more than VIEWER_MAX_UNSENT_BYTES at all: a burst of large events does not cut a viewer
 * that reads, one that stopped reading goes, and nobody else waits for it.
 */
export const SLOW_VIEWER_BYTES = 1024 * 1024;
export const SLOW_VIEWER_GRACE_MS = 10_000;
export const VIEWER_MAX_UNSENT_BYTES = 16 * 1024 * 1024;

export interface FanOutEvent<P> {
  payload: P;
  /** What it takes in memory (the replay budget) and in a viewer's backlog. */
  bytes: number;
  /** Where a viewer may resume after it (a resourceVersion, a timestamp); unset: nowhere. */
  position?: string;
}

/** Why a viewer's stream was ended by kas. */
export type EndReason = 'ended' | 'slow' | 'timeout';

/** One viewer of a shared stream: an HTTP answer, a dashboard subscription, a test's recorder. */
export interface Viewer<H, P> {
  /** True once the viewer went away by itself (its connection closed). */
  readonly gone: boolean;
  /** Calls `listener` when the viewer goes away by itself; returns a function that stops that. */
  onGone(listener: () => void): () => void;
  /** Bytes sent to it that its connection has not taken yet. */
  readonly backlog: number;
  /** The shared stream's head, before any event. */
  start(head: H): void;
  send(event: FanOutEvent<P>): void;
  /** Its stream is over: end it cleanly. */
  end(reason: EndReason): void;
  /** The upstream failed: before the head (it got nothing yet) or in the middle. */
  fail(error: unknown): void;
}

/** The producer's side of a shared stream: what the upstream of one key calls. */
export interface Upstream<H, P> {
  /** Aborted when every viewer left: stop the upstream. */
  readonly signal: AbortSignal;
  head(head: H): void;
  /** `replayable`: kept for viewers that join later (a keep-alive is not, say). */
  publish(event: FanOutEvent<P>, replayable: boolean): void;
  /** Nobody new may join from now on (the stream turned out not to be replayable). */
  stopJoining(): void;
  viewers(): number;
}

/** What a viewer needs to join a stream: the events to catch up on, or undefined when it cannot join it. */
export type CatchUp<H, P> = (stream: SharedStream<H, P>) => FanOutEvent<P>[] | undefined;

/** A viewer's own deadline, when it has one, and what becomes of it then. */
interface ViewerState<H, P> {
  viewer: Viewer<H, P>;
  /** Since when it has had more than SLOW_VIEWER_BYTES unsent (performance.now()). */
  behindSince?: number;
  timer?: NodeJS.Timeout;
  stopWatching: () => void;
}

export interface Budget {
  used: number;
  readonly max: number;
}

export class SharedStream<H, P> {
  readonly key: string;
  /** Where the upstream started: a viewer asking to resume from here needs every event. */
  readonly startPosition: string | undefined;
  #states = new Map<Viewer<H, P>, ViewerState<H, P>>();
  /** Viewers that joined before the head: they get it when it comes. */
  #waiting = new Set<Viewer<H, P>>();
  #head: H | undefined;
  #events: FanOutEvent<P>[] = [];
  #eventBytes = 0;
  /** The start can no longer be replayed: events after it were dropped from the buffer. */
  #startDropped = false;
  #joinable = true;
  /** Takes no more viewers and no more events: ended, failed, or abandoned. */
  #closed = false;
  #budget: Budget;
  #log: Logger;
  #abort = new AbortController();
  #onClosed: (stream: SharedStream<H, P>) => void;

  constructor(key: string, startPosition: string | undefined, budget: Budget, log: Logger, onClosed: (stream: SharedStream<H, P>) => void) {
    this.key = key;
    this.startPosition = startPosition;
    this.#budget = budget;
    this.#log = log;
    this.#onClosed = onClosed;
  }

  get viewers(): number {
    return this.#states.size;
  }

  get head(): H | undefined {
    return this.#head;
  }

  get joinable(): boolean {
    return this.#joinable && !this.#closed;
  }

  /** The events after `position` (all of them from the start), or undefined when they are not all kept. */
  eventsAfter(position: string): FanOutEvent<P>[] | undefined {
    if (!this.joinable) return undefined;
    if (position === this.startPosition && !this.#startDropped) return this.#events;
    for (let i = this.#events.length - 1; i >= 0; i--) {
      if (this.#events[i]!.position === position) return this.#events.slice(i + 1);
    }
    return undefined;
  }

  /** The most recent events kept (for a capability that builds a viewer's catch-up itself). */
  get events(): readonly FanOutEvent<P>[] {
    return this.#events;
  }

  join(viewer: Viewer<H, P>, catchUp: readonly FanOutEvent<P>[]): void {
    const state: ViewerState<H, P> = { viewer, stopWatching: viewer.onGone(() => this.leave(viewer)) };
    this.#states.set(viewer, state);
    if (this.#head === undefined) {
      this.#waiting.add(viewer);
      return;
    }
    viewer.start(this.#head);
    for (const event of catchUp) this.#send(state, event);
  }

  /** Ends one viewer at `ms` from now, unless it is gone or the stream is over before. */
  endViewerAfter(viewer: Viewer<H, P>, ms: number, reason: EndReason): void {
    const state = this.#states.get(viewer);
    if (state) state.timer = setTimeout(() => this.#endViewer(state, reason), ms);
  }

  leave(viewer: Viewer<H, P>): void {
    const state = this.#states.get(viewer);
    if (!state) return;
    clearTimeout(state.timer);
    state.stopWatching();
    this.#states.delete(viewer);
    this.#waiting.delete(viewer);
    if (this.#states.size === 0 && !this.#closed) {
      // Nobody watches any more: the upstream stops.
      this.#close();
      this.#abort.abort(new Error('every viewer left'));
    }
  }

  /** The producer's handle on this stream. */
  upstream(): Upstream<H, P> {
    return {
      signal: this.#abort.signal,
      head: (head) => this.#onHead(head),
      publish: (event, replayable) => this.#publish(event, replayable),
      stopJoining: () => (this.#joinable = false),
      viewers: () => this.#states.size,
    };
  }

  #onHead(head: H): void {
    if (this.#closed || this.#head !== undefined) return;
    this.#head = head;
    const waiting = [...this.#waiting];
    this.#waiting.clear();
    for (const viewer of waiting) viewer.start(head);
  }

  #publish(event: FanOutEvent<P>, replayable: boolean): void {
    if (this.#closed && this.#states.size === 0) return;
    for (const state of [...this.#states.values()]) this.#send(state, event);
    if (!replayable || !this.joinable) return;
    this.#events.push(event);
    this.#eventBytes += event.bytes;
    this.#budget.used += event.bytes;
    // Over the node's budget, the stream that is adding gives back from its own oldest events.
    while (
      this.#events.length > REPLAY_MAX_EVENTS ||
      this.#eventBytes > REPLAY_MAX_BYTES ||
      (this.#budget.used > this.#budget.max && this.#events.length > 0)
    ) {
      const dropped = this.#events.shift()!.bytes;
      this.#eventBytes -= dropped;
      this.#budget.used -= dropped;
      this.#startDropped = true;
    }
  }

  #send(state: ViewerState<H, P>, event: FanOutEvent<P>): void {
    const { viewer } = state;
    if (viewer.gone) {
      this.leave(viewer); // its 'gone' may still be on the way; it takes nothing more either way
      return;
    }
    // Judged on what is still unsent from earlier events, so one large event alone cuts no one.
    const unsent = viewer.backlog;
    if (unsent <= SLOW_VIEWER_BYTES) {
      state.behindSince = undefined;
    } else {
      const now = performance.now();
      state.behindSince ??= now;
      if (unsent > VIEWER_MAX_UNSENT_BYTES || now - state.behindSince > SLOW_VIEWER_GRACE_MS) {
        this.#log.warn({ unsent_bytes: unsent, key: this.key }, 'a viewer fell behind its shared stream; ending it');
        this.#endViewer(state, 'slow');
        return;
      }
    }
    viewer.send(event);
  }

  #endViewer(state: ViewerState<H, P>, reason: EndReason): void {
    this.leave(state.viewer);
    state.viewer.end(reason);
  }

  /** The upstream is over. `error`: it failed (before its head, or in the middle). */
  settle(error: unknown): void {
    this.#close();
    const states = [...this.#states.values()];
    for (const state of states) this.leave(state.viewer);
    for (const { viewer } of states) {
      if (error !== undefined) viewer.fail(error);
      else if (this.#head === undefined) viewer.fail(new Error('the upstream ended before it answered'));
      else viewer.end('ended');
    }
  }

  #close(): void {
    if (this.#closed) return;
    this.#closed = true;
    // Nobody joins a closed stream: its replay buffer goes.
    this.#budget.used -= this.#eventBytes;
    this.#eventBytes = 0;
    this.#events = [];
    this.#onClosed(this);
  }
}

export interface ServeOptions<H, P> {
  key: string;
  viewer: Viewer<H, P>;
  /** What the viewer needs to join a running stream, or undefined when it cannot join that one. */
  catchUp: CatchUp<H, P>;
  /** Where a new stream's upstream starts (what later viewers may resume from). */
  startPosition?: string;
  /**
   * Runs the upstream of a new shared stream: it calls `upstream.head` once, then `publish` per
   * event, and resolves when the upstream ended (rejects when it failed).
   */
  start: (upstream: Upstream<H, P>) => Promise<void>;
}

/** The replay budget of one node, shared by the hubs of every capability. */
export function nodeBudget(max = REPLAY_TOTAL_BYTES): Budget {
  return { used: 0, max };
}

/** The shared streams of one capability (H: its head, P: its events' payload). */
export class FanOutHub<H, P> {
  #byKey = new Map<string, Set<SharedStream<H, P>>>();
  #budget: Budget;
  #log: Logger;

  constructor(log: Logger, budget: Budget = nodeBudget()) {
    this.#log = log;
    this.#budget = budget;
  }

  /** Shared streams open now, their viewers and the bytes their replay buffers hold. */
  stats(): { upstreams: number; viewers: number; replayBytes: number } {
    let upstreams = 0;
    let viewers = 0;
    for (const set of this.#byKey.values()) {
      for (const stream of set) {
        upstreams++;
        viewers += stream.viewers;
      }
    }
    return { upstreams, viewers, replayBytes: this.#budget.used };
  }

  /**
   * Adds a viewer to a shared stream of `key` that it can join, or starts a new one for it (which
   * later viewers may join). Returns the stream and whether it joined a running one; undefined
   * when the viewer was gone already (nothing is started for it).
   */
  serve(o: ServeOptions<H, P>): { stream: SharedStream<H, P>; joined: boolean } | undefined {
    if (o.viewer.gone) return undefined;
    for (const candidate of this.#byKey.get(o.key) ?? []) {
      if (!candidate.joinable) continue;
      const catchUp = o.catchUp(candidate);
      if (catchUp) {
        candidate.join(o.viewer, catchUp);
        return { stream: candidate, joined: true };
      }
    }
    const stream = new SharedStream<H, P>(o.key, o.startPosition, this.#budget, this.#log, (closed) => this.#forget(closed));
    let set = this.#byKey.get(o.key);
    if (!set) this.#byKey.set(o.key, (set = new Set()));
    set.add(stream);
    stream.join(o.viewer, []);
    const upstream = stream.upstream();
    o.start(upstream).then(
      () => stream.settle(undefined),
      (error: unknown) => stream.settle(error ?? new Error('the upstream failed')),
    );
    return { stream, joined: false };
  }

  #forget(stream: SharedStream<H, P>): void {
    const set = this.#byKey.get(stream.key);
    set?.delete(stream);
    if (set?.size === 0) this.#byKey.delete(stream.key);
  }
}
