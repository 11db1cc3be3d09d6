// Identical Kubernetes watches from many callers on one node share ONE upstream watch: one
// routed request, one kas-to-kas stream, one tunnel stream, one watch on the API server. A
// dashboard open in 500 browsers then costs the cluster and the agent what one viewer costs, and
// each change crosses every hop once before this node copies it to the viewers.
//
// Shared are JSON watches that name a resourceVersion (what informers and kubectl-style clients
// send after their list): "the events after RV". The shared stream keeps its recent events, so a
// caller that asks for the events after RV joins it when RV is where the stream started or the
// resourceVersion of an event it carried: it first gets the events it missed, then the live ones,
// exactly what its own watch would have given it. Anything else (no resourceVersion or "0", which
// ask for the current state first; Table or protobuf answers; a resourceVersion the stream cannot
// replay from) gets an upstream watch of its own, shared in turn with those who come after.
//
// The upstream watch is asked with the first caller's timeoutSeconds (none: it lives while it has
// viewers); a caller that joins with a shorter one is ended by kas when its time is up, one with a
// longer one ends with the upstream watch, as an API server may end any watch early. A viewer
// that stops reading is ended cleanly once it stays behind (see SLOW_VIEWER_BYTES), like an API
// server ends a watcher that falls behind; its client re-watches from its last resourceVersion. Nobody
// else waits for it. Memory is bounded: per viewer by that limit (plus one event), per shared
// watch by its replay buffer, and all replay buffers of a node together by REPLAY_TOTAL_BYTES.
import { EventEmitter } from 'node:events';
import type { Response } from 'express';
import type { Logger } from 'pino';
import { KasError } from '../http/errors.ts';
import type { AgentRequestSpec } from './spec.ts';

/** Events kept for callers that join later, and the bytes they may take. */
export const REPLAY_MAX_EVENTS = 1024;
export const REPLAY_MAX_BYTES = 4 * 1024 * 1024;
/** What the replay buffers of all shared watches on a node may hold together. */
export const REPLAY_TOTAL_BYTES = 64 * 1024 * 1024;
/** A line longer than this is no watch event: the stream is passed on unsplit and not shared further. */
export const EVENT_MAX_BYTES = 8 * 1024 * 1024;
/**
 * A viewer is ended (cleanly: it re-watches from its last event) when it has had more than
 * SLOW_VIEWER_BYTES unsent for SLOW_VIEWER_GRACE_MS, or more than VIEWER_MAX_UNSENT_BYTES at all:
 * a burst of large events does not cut a caller that reads, one that stopped reading goes.
 */
export const SLOW_VIEWER_BYTES = 1024 * 1024;
export const SLOW_VIEWER_GRACE_MS = 10_000;
export const VIEWER_MAX_UNSENT_BYTES = 16 * 1024 * 1024;

const NEWLINE = 0x0a;
/** Upstream headers that are about one response, not about the watch: each viewer keeps its own. */
const OWN_HEADERS = new Set(['x-trace-id']);

export interface ShareableWatch {
  /** Everything that makes two watches the same, except where they start and how long they last. */
  key: string;
  resourceVersion: string;
  /** The caller's timeoutSeconds; undefined = none. */
  timeoutSeconds: number | undefined;
  /** What is sent upstream when this caller starts a shared watch: its request as it is. */
  upstreamSpec: AgentRequestSpec;
}

function acceptsJsonOnly(accept: string | undefined): boolean {
  if (!accept) return true;
  return accept.split(',').every((part) => /^\s*(?:application\/json|\*\/\*)\s*(?:;\s*q=[0-9.]+\s*)?$/i.test(part));
}

/** The sharing key and start of a watch request, or undefined when it cannot be shared. */
export function shareableWatch(spec: AgentRequestSpec): ShareableWatch | undefined {
  if (spec.upstream !== 'kubernetes' || spec.method !== 'GET' || !spec.streaming || spec.body) return undefined;
  const params = new URLSearchParams(spec.query);
  const watch = params.get('watch');
  if (watch !== '1' && watch !== 'true') return undefined;
  const resourceVersion = params.get('resourceVersion');
  // Unset or "0" ask for the current state as synthetic ADDED events first: not replayable.
  if (!resourceVersion || resourceVersion === '0' || params.getAll('resourceVersion').length > 1) return undefined;
  if (params.has('sendInitialEvents')) return undefined;
  if (!acceptsJsonOnly(spec.headers.accept)) return undefined;
  const rawTimeout = params.get('timeoutSeconds');
  let timeoutSeconds: number | undefined;
  if (rawTimeout !== null) {
    if (!/^\d{1,9}$/.test(rawTimeout)) return undefined; // let the API server judge it
    timeoutSeconds = Number(rawTimeout) || undefined;
  }
  const keyed = new URLSearchParams([...params].filter(([name]) => name !== 'resourceVersion' && name !== 'timeoutSeconds'));
  keyed.sort();
  const key = [spec.agentId, spec.path, keyed.toString(), spec.headers.accept ?? '', spec.headers['accept-encoding'] ?? ''].join('\n');
  return { key, resourceVersion, timeoutSeconds, upstreamSpec: spec };
}

/** Runs the shared upstream request, writing its answer into `res` as the router writes any answer. */
export type RunUpstream = (res: Response, spec: AgentRequestSpec) => Promise<void>;

/** What the router learns about one caller's part in a shared watch, for its routing span. */
export interface ViewerHooks {
  /** It joined a running upstream watch (true) or started one (false), now with this many viewers. */
  joined(joined: boolean, viewers: number): void;
  /** The answer's head reached this caller, from this node's (or another node's) replica. */
  answered(node: string, replica: string): void;
}

interface Viewer {
  res: Response;
  hooks: ViewerHooks;
  /** Settles the caller's serve(): its stream ended, or the upstream failed before any head. */
  done: () => void;
  fail: (error: unknown) => void;
  served: { bytes: number; node?: string; replica?: string };
  timer?: NodeJS.Timeout;
  /** Since when it has had more than SLOW_VIEWER_BYTES unsent (performance.now()). */
  behindSince?: number;
  onClose: () => void;
}

interface Head {
  status: number;
  headers: Record<string, string | number | string[]>;
}

interface BufferedEvent {
  resourceVersion: string | undefined;
  line: Buffer;
}

/**
 * The response the router writes the shared upstream answer into: a subset of express's Response
 * (what streamToResponse and forwardToNode use), fanning out to the viewers.
 */
class FanOutResponse extends EventEmitter {
  statusCode = 200;
  headersSent = false;
  destroyed = false;
  writableEnded = false;
  writableFinished = false;
  locals: Record<string, unknown> = {};
  #headers = new Map<string, string | number | string[]>();
  #watch: SharedWatch;

  constructor(watch: SharedWatch) {
    super();
    this.#watch = watch;
  }

  setHeader(name: string, value: string | number | readonly string[]): this {
    this.#headers.set(name.toLowerCase(), Array.isArray(value) ? [...(value as string[])] : (value as string | number));
    return this;
  }
  getHeader(name: string): string | number | string[] | undefined {
    return this.#headers.get(name.toLowerCase());
  }
  writeHead(status: number): this {
    this.statusCode = status;
    this.headersSent = true;
    this.#watch.onHead({ status, headers: Object.fromEntries(this.#headers) });
    return this;
  }
  flushHeaders(): void {}
  /** Always true: viewers are flow-controlled one by one, and cut when one falls behind. */
  write(chunk: Buffer): boolean {
    if (!this.writableEnded) this.#watch.onData(chunk);
    return true;
  }
  end(): this {
    if (this.writableEnded) return this;
    this.writableEnded = true;
    this.writableFinished = true;
    this.#watch.onEnd();
    this.#close();
    return this;
  }
  destroy(error?: Error): this {
    if (this.destroyed) return this;
    this.destroyed = true;
    this.#watch.onDestroy(error);
    this.#close();
    return this;
  }
  /** Every viewer left: as if the caller of the upstream request went away. */
  abandon(): void {
    if (this.destroyed || this.writableEnded) return;
    this.destroyed = true;
    this.#close();
  }
  #close(): void {
    queueMicrotask(() => this.emit('close'));
  }
}

/** The caller's connection closed (perhaps before its 'close' listener was added). */
function callerGone(res: Response): boolean {
  return res.destroyed || (res as { closed?: boolean }).closed === true;
}

function isBlank(line: Buffer): boolean {
  for (const byte of line) if (byte !== 0x0a && byte !== 0x0d && byte !== 0x20 && byte !== 0x09) return false;
  return true;
}

class SharedWatch {
  readonly key: string;
  readonly startVersion: string;
  #viewers = new Set<Viewer>();
  /** Viewers that joined before the head: they get it when it comes. */
  #waiting: Viewer[] = [];
  #head: Head | undefined;
  #events: BufferedEvent[] = [];
  #eventBytes = 0;
  /** The start can no longer be replayed: events after it were dropped from the buffer. */
  #startDropped = false;
  #partial: Buffer[] = [];
  #partialBytes = 0;
  /** Takes no more viewers: ended, failed, or its answer is not a JSON watch stream. */
  #closed = false;
  #joinable = true;
  readonly fanOut: FanOutResponse;
  #log: Logger;
  #onClosed: (watch: SharedWatch) => void;

  /** When the upstream watch ends by itself (its timeoutSeconds), in performance.now() time. */
  readonly #upstreamDeadline: number;

  /** The bytes of every replay buffer on this node (shared by all SharedWatch objects). */
  #budget: { used: number; max: number };

  constructor(watch: ShareableWatch, budget: { used: number; max: number }, log: Logger, onClosed: (watch: SharedWatch) => void) {
    this.#budget = budget;
    this.key = watch.key;
    this.startVersion = watch.resourceVersion;
    this.#upstreamDeadline = watch.timeoutSeconds === undefined ? Infinity : performance.now() + watch.timeoutSeconds * 1000;
    this.#log = log;
    this.#onClosed = onClosed;
    this.fanOut = new FanOutResponse(this);
  }

  get viewers(): number {
    return this.#viewers.size + this.#waiting.length;
  }

  /** The events a caller that asks for "after resourceVersion" has missed, or undefined if unknown. */
  replayFrom(resourceVersion: string): BufferedEvent[] | undefined {
    if (this.#closed || !this.#joinable) return undefined;
    if (resourceVersion === this.startVersion && !this.#startDropped) return this.#events;
    for (let i = this.#events.length - 1; i >= 0; i--) {
      if (this.#events[i]!.resourceVersion === resourceVersion) return this.#events.slice(i + 1);
    }
    return undefined;
  }

  /** Resolves when this viewer's stream ends; rejects when the upstream failed before its head. */
  join(res: Response, watch: ShareableWatch, replay: BufferedEvent[], hooks: ViewerHooks): Promise<void> {
    return new Promise((resolve, reject) => {
      // Gone already (it left while its request was being read): nothing to join.
      if (callerGone(res)) return resolve();
      const served: Viewer['served'] = { bytes: 0 };
      res.locals.served = served;
      const viewer: Viewer = { res, hooks, served, done: resolve, fail: reject, onClose: () => this.#leave(viewer) };
      res.once('close', viewer.onClose);
      // Only a caller whose time is up before the upstream watch's needs a timer of its own.
      const timeoutMs = watch.timeoutSeconds === undefined ? Infinity : watch.timeoutSeconds * 1000;
      if (performance.now() + timeoutMs < this.#upstreamDeadline) {
        viewer.timer = setTimeout(() => this.#endViewer(viewer), timeoutMs);
      }
      if (!this.#head) {
        this.#waiting.push(viewer);
        return;
      }
      this.#start(viewer, this.#head);
      for (const event of replay) this.#send(viewer, event.line);
    });
  }

  #start(viewer: Viewer, head: Head): void {
    const { res } = viewer;
    for (const [name, value] of Object.entries(head.headers)) {
      if (!OWN_HEADERS.has(name)) res.setHeader(name, value);
    }
    viewer.served.node = String(head.headers['x-kas-node'] ?? '');
    viewer.served.replica = String(head.headers['x-kas-agent-replica'] ?? '');
    viewer.hooks.answered(viewer.served.node, viewer.served.replica);
    res.writeHead(head.status);
    res.flushHeaders();
    this.#viewers.add(viewer);
  }

  #send(viewer: Viewer, bytes: Buffer): void {
    const { res } = viewer;
    if (res.writableEnded || res.destroyed) {
      this.#leave(viewer); // its 'close' may still be on the way; it takes nothing more either way
      return;
    }
    // Judged on what is still unsent from earlier events, so one large event alone cuts no one.
    const unsent = res.writableLength;
    if (unsent <= SLOW_VIEWER_BYTES) {
      viewer.behindSince = undefined;
    } else {
      const now = performance.now();
      viewer.behindSince ??= now;
      if (unsent > VIEWER_MAX_UNSENT_BYTES || now - viewer.behindSince > SLOW_VIEWER_GRACE_MS) {
        this.#log.warn({ unsent_bytes: unsent }, 'a watch viewer fell behind; ending its stream so it re-watches');
        this.#endViewer(viewer);
        return;
      }
    }
    viewer.served.bytes += bytes.byteLength;
    res.write(bytes);
  }

  #endViewer(viewer: Viewer): void {
    if (!viewer.res.writableEnded) viewer.res.end();
    this.#leave(viewer);
  }

  #leave(viewer: Viewer): void {
    clearTimeout(viewer.timer);
    viewer.res.off('close', viewer.onClose);
    this.#viewers.delete(viewer);
    const waitingIndex = this.#waiting.indexOf(viewer);
    if (waitingIndex >= 0) this.#waiting.splice(waitingIndex, 1);
    viewer.done(); // settling twice is harmless
    if (this.viewers === 0 && !this.#closed) {
      this.#close();
      this.fanOut.abandon();
    }
  }

  onHead(head: Head): void {
    this.#head = head;
    const type = String(head.headers['content-type'] ?? '');
    // Only a JSON event stream can be replayed to later viewers; anything else goes to those
    // already waiting (they asked the very same thing) and to nobody else.
    if (head.status !== 200 || !/^application\/json\b/i.test(type)) this.#joinable = false;
    const waiting = this.#waiting;
    this.#waiting = [];
    for (const viewer of waiting) this.#start(viewer, head);
  }

  onData(chunk: Buffer): void {
    if (!this.#joinable) {
      // Nobody joins any more: the bytes go on as they come.
      this.#flushPartial();
      for (const viewer of this.#viewers) this.#send(viewer, chunk);
      return;
    }
    let start = 0;
    for (let newline = chunk.indexOf(NEWLINE); newline >= 0; newline = chunk.indexOf(NEWLINE, start)) {
      let line = chunk.subarray(start, newline + 1);
      if (this.#partial.length > 0) {
        line = Buffer.concat([...this.#partial, line]);
        this.#partial = [];
        this.#partialBytes = 0;
      }
      this.#event(line);
      start = newline + 1;
    }
    // Part of an event: viewers get whole events only, so one that joins later starts at one.
    if (start < chunk.byteLength) {
      this.#partial.push(Buffer.from(chunk.subarray(start)));
      this.#partialBytes += chunk.byteLength - start;
      // No event is this large (the API server's objects are at most about 1.5 MB): not a watch
      // stream after all. Pass it on unsplit, and let nobody else join it.
      if (this.#partialBytes > EVENT_MAX_BYTES) {
        this.#joinable = false;
        this.#flushPartial();
      }
    }
  }

  #flushPartial(): void {
    if (this.#partial.length === 0) return;
    const rest = Buffer.concat(this.#partial);
    this.#partial = [];
    this.#partialBytes = 0;
    for (const viewer of this.#viewers) this.#send(viewer, rest);
  }

  #event(line: Buffer): void {
    for (const viewer of this.#viewers) this.#send(viewer, line);
    // A keep-alive blank line (agentk's, on an idle watch): for those watching now, not an event.
    if (!this.#joinable || this.#closed || isBlank(line)) return;
    let resourceVersion: string | undefined;
    try {
      const event = JSON.parse(line.toString('utf8')) as { type?: string; object?: { metadata?: { resourceVersion?: unknown } } };
      const rv = event.object?.metadata?.resourceVersion;
      if (typeof rv === 'string') resourceVersion = rv;
      // After an ERROR (410 Gone, say) the stream is over for anyone new.
      if (event.type === 'ERROR') this.#joinable = false;
    } catch {
      this.#joinable = false; // not a JSON event stream after all
      return;
    }
    // A copy: the line may be a view into a much larger read buffer.
    this.#events.push({ resourceVersion, line: Buffer.from(line) });
    this.#eventBytes += line.byteLength;
    this.#budget.used += line.byteLength;
    // Over the node's budget, the watch that is adding gives back from its own oldest events.
    while (
      this.#events.length > REPLAY_MAX_EVENTS ||
      this.#eventBytes > REPLAY_MAX_BYTES ||
      (this.#budget.used > this.#budget.max && this.#events.length > 0)
    ) {
      const dropped = this.#events.shift()!.line.byteLength;
      this.#eventBytes -= dropped;
      this.#budget.used -= dropped;
      this.#startDropped = true;
    }
  }

  onEnd(): void {
    this.#flushPartial();
    this.#close();
    for (const viewer of [...this.#viewers]) this.#endViewer(viewer);
  }

  onDestroy(error: Error | undefined): void {
    this.#close();
    for (const viewer of [...this.#viewers]) {
      viewer.res.destroy(error);
      this.#leave(viewer);
    }
  }

  /** The upstream request finished (its answer written, or failed before any head). */
  settle(error: unknown): void {
    this.#close();
    if (this.#waiting.length === 0) return;
    const failure =
      error ?? new KasError('bad_gateway', 'the watch ended before the agent answered; retry it');
    const waiting = this.#waiting;
    this.#waiting = [];
    for (const viewer of waiting) {
      clearTimeout(viewer.timer);
      viewer.res.off('close', viewer.onClose);
      viewer.fail(failure);
    }
  }

  #close(): void {
    if (this.#closed) return;
    this.#closed = true;
    // Nobody joins a closed watch: its replay buffer goes.
    this.#budget.used -= this.#eventBytes;
    this.#eventBytes = 0;
    this.#events = [];
    this.#onClosed(this);
  }
}

export class SharedWatches {
  #byKey = new Map<string, Set<SharedWatch>>();
  #budget: { used: number; max: number };
  #log: Logger;

  constructor(log: Logger, options: { replayTotalBytes?: number } = {}) {
    this.#log = log.child({ component: 'shared-watches' });
    this.#budget = { used: 0, max: options.replayTotalBytes ?? REPLAY_TOTAL_BYTES };
  }

  /** Upstream watches open for sharing now, and their viewers: for tests and metrics. */
  stats(): { upstreams: number; viewers: number; replayBytes: number } {
    let upstreams = 0;
    let viewers = 0;
    for (const set of this.#byKey.values()) {
      for (const watch of set) {
        upstreams++;
        viewers += watch.viewers;
      }
    }
    return { upstreams, viewers, replayBytes: this.#budget.used };
  }

  /**
   * Serves a shareable watch: joins a shared upstream watch that can replay from the caller's
   * resourceVersion, or starts one (through `run`) that later callers may join. Resolves when the
   * caller's stream ends.
   */
  async serve(res: Response, watch: ShareableWatch, run: RunUpstream, hooks: ViewerHooks): Promise<void> {
    if (callerGone(res)) return; // the caller left already
    for (const candidate of this.#byKey.get(watch.key) ?? []) {
      const replay = candidate.replayFrom(watch.resourceVersion);
      if (replay) {
        hooks.joined(true, candidate.viewers + 1);
        return candidate.join(res, watch, replay, hooks);
      }
    }
    const shared = new SharedWatch(watch, this.#budget, this.#log, (closed) => this.#forget(closed));
    let set = this.#byKey.get(watch.key);
    if (!set) this.#byKey.set(watch.key, (set = new Set()));
    set.add(shared);
    hooks.joined(false, 1);
    const joined = shared.join(res, watch, [], hooks);
    run(shared.fanOut as unknown as Response, watch.upstreamSpec).then(
      () => shared.settle(undefined),
      (error: unknown) => shared.settle(error),
    );
    return joined;
  }

  #forget(watch: SharedWatch): void {
    const set = this.#byKey.get(watch.key);
    set?.delete(watch);
    if (set?.size === 0) this.#byKey.delete(watch.key);
  }
}
