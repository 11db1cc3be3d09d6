// Identical Kubernetes watches from many callers on one node share ONE upstream watch: one
// routed request, one kas-to-kas stream, one tunnel stream, one watch on the API server. A
// dashboard open in 500 browsers then costs the cluster and the agent what one viewer costs, and
// each change crosses every hop once before this node copies it to the viewers. This file is the
// Kubernetes strategy on the fan-out hub (server/fanout/hub.ts): the sharing key, the framing
// (one event per line), and the resume point (an event's resourceVersion).
//
// Shared are JSON watches that name a resourceVersion (what informers and kubectl-style clients
// send after their list): "the events after RV". A caller that asks for the events after RV joins
// a shared stream when RV is where the stream started or the resourceVersion of an event it
// carried: it first gets the events it missed, then the live ones, exactly what its own watch
// would have given it. Anything else (no resourceVersion or "0", which ask for the current state
// first; Table or protobuf answers; a resourceVersion the stream cannot replay from) gets an
// upstream watch of its own, shared in turn with those who come after.
//
// The upstream watch is asked with the first caller's timeoutSeconds (none: it lives while it has
// viewers); a caller that joins with a shorter one is ended by kas when its time is up, one with a
// longer one ends with the upstream watch, as an API server may end any watch early. A viewer
// that stops reading is ended cleanly once it stays behind (the hub's slow-viewer policy), like an
// API server ends a watcher that falls behind; its client re-watches from its last resourceVersion.
import { context, type Span, trace } from '@opentelemetry/api';
import { startRoutingSpan } from '../../../otel/spans.ts';
import { isWatch, readKubernetesPath } from '../../../protocol/kubernetes.ts';
import { failSpan } from '../../../otel/tracing.ts';
import { type FanOutEvent, type FanOutHub, type SharedStream, type Upstream, type Viewer } from '../../fanout/hub.ts';
import { KasError } from '../../routing/errors.ts';
import type { AgentRequest } from '../../routing/request.ts';
import type { Agents, Reply } from '../capability.ts';

/** A line longer than this is no watch event: the stream is passed on unsplit and not shared further. */
export const EVENT_MAX_BYTES = 8 * 1024 * 1024;

const NEWLINE = 0x0a;

export interface WatchHead {
  status: number;
  headers: Readonly<Record<string, string | string[]>>;
  node: string;
  replica: string;
}

export type WatchHub = FanOutHub<WatchHead, Buffer>;

export interface ShareableWatch {
  /** Everything that makes two watches the same, except where they start and how long they last. */
  key: string;
  resourceVersion: string;
  /** The caller's timeoutSeconds; undefined = none. */
  timeoutSeconds: number | undefined;
  /** What is sent upstream when this caller starts a shared watch: its request as it is. */
  request: AgentRequest;
}

function acceptsJsonOnly(accept: string | undefined): boolean {
  if (!accept) return true;
  return accept.split(',').every((part) => /^\s*(?:application\/json|\*\/\*)\s*(?:;\s*q=[0-9.]+\s*)?$/i.test(part));
}

/** The sharing key and start of a watch request, or undefined when it cannot be shared. */
export function shareableWatch(request: AgentRequest): ShareableWatch | undefined {
  if (request.upstream !== 'kubernetes' || request.method !== 'GET' || !request.streaming || request.body) return undefined;
  const params = new URLSearchParams(request.query);
  // A followed log is a stream too, but not a watch: nothing to resume from.
  if (!isWatch(readKubernetesPath(request.path.split('/').slice(1).map(decodeURIComponent)), params)) return undefined;
  const resourceVersion = params.get('resourceVersion');
  // Unset or "0" ask for the current state as synthetic ADDED events first: not replayable.
  if (!resourceVersion || resourceVersion === '0' || params.getAll('resourceVersion').length > 1) return undefined;
  if (params.has('sendInitialEvents')) return undefined;
  if (!acceptsJsonOnly(request.headers.accept)) return undefined;
  const rawTimeout = params.get('timeoutSeconds');
  let timeoutSeconds: number | undefined;
  if (rawTimeout !== null) {
    if (!/^\d{1,9}$/.test(rawTimeout)) return undefined; // let the API server judge it
    timeoutSeconds = Number(rawTimeout) || undefined;
  }
  const keyed = new URLSearchParams([...params].filter(([name]) => name !== 'resourceVersion' && name !== 'timeoutSeconds'));
  keyed.sort();
  const key = [request.agentId, request.path, keyed.toString(), request.headers.accept ?? '', request.headers['accept-encoding'] ?? ''].join('\n');
  return { key, resourceVersion, timeoutSeconds, request };
}

const isSpace = (byte: number) => byte === 0x0a || byte === 0x0d || byte === 0x20 || byte === 0x09;

function isBlank(line: Buffer): boolean {
  for (const byte of line) if (!isSpace(byte)) return false;
  return true;
}

/** The line's first and last bytes that are not white space are `{` and `}`: it may be a JSON object. */
function looksLikeObject(line: Buffer): boolean {
  let first = 0;
  let last = line.byteLength - 1;
  while (first <= last && isSpace(line[first]!)) first++;
  while (last >= first && isSpace(line[last]!)) last--;
  return first < last && line[first] === 0x7b && line[last] === 0x7d;
}

/** When each shared watch's upstream ends by itself (its timeoutSeconds), in performance.now() time. */
const upstreamDeadlines = new WeakMap<SharedStream<WatchHead, Buffer>, number>();

/**
 * Serves a shareable watch to one caller: joins a shared upstream watch that can replay from its
 * resourceVersion, or starts one that later callers may join. Resolves when its answer is over.
 * The caller's routing span says whether it joined one (`kas.watch.shared`) and how many viewers
 * that one has; the shared upstream request is routed under a span of its own, which lives as
 * long as the upstream watch.
 */
export async function serveSharedWatch(hub: WatchHub, agents: Agents, watch: ShareableWatch, sub: string, reply: Reply): Promise<void> {
  const span = startRoutingSpan('route kubernetes', watch.request);
  const over = new Promise<void>((resolve) => reply.onClose(resolve));
  if (joinSharedWatch(hub, agents, watch, sub, new ReplyViewer(reply, span), span)) await over;
  span.end();
}

/**
 * Adds a viewer (an HTTP caller, a dashboard table) to a shared watch it can join, or starts one,
 * under `span` (its routing span). Returns the shared stream, or undefined when the viewer was
 * gone already (nothing was started for it).
 */
export function joinSharedWatch(
  hub: WatchHub,
  agents: Agents,
  watch: ShareableWatch,
  sub: string,
  viewer: Viewer<WatchHead, Buffer>,
  span: Span,
): SharedStream<WatchHead, Buffer> | undefined {
  const served = hub.serve({
    key: watch.key,
    viewer,
    startPosition: watch.resourceVersion,
    catchUp: (stream) => stream.eventsAfter(watch.resourceVersion),
    start: (upstream) => runUpstream(upstream, agents, watch.request, sub, span),
  });
  if (!served) return undefined;
  const { stream, joined } = served;
  span.setAttributes({ 'kas.watch.shared': joined, 'kas.watch.viewers': stream.viewers });
  if (!joined) {
    upstreamDeadlines.set(stream, watch.timeoutSeconds === undefined ? Infinity : performance.now() + watch.timeoutSeconds * 1000);
  } else if (watch.timeoutSeconds !== undefined) {
    // Only a caller whose time is up before the upstream watch's needs a timer of its own.
    const ms = watch.timeoutSeconds * 1000;
    if (performance.now() + ms < (upstreamDeadlines.get(stream) ?? Infinity)) stream.endViewerAfter(viewer, ms, 'timeout');
  }
  return stream;
}

/** The upstream of a shared watch: one routed watch, split into events (lines). */
async function runUpstream(upstream: Upstream<WatchHead, Buffer>, agents: Agents, request: AgentRequest, sub: string, callerSpan: Span): Promise<void> {
  const answer = await agents.open(request, {
    sub,
    signal: upstream.signal,
    spanName: 'route kubernetes shared watch',
    parent: trace.setSpan(context.active(), callerSpan),
  });
  const stopReading = () => answer.body.cancel('every viewer left');
  upstream.signal.addEventListener('abort', stopReading, { once: true });
  upstream.head({ status: answer.status, headers: answer.headers, node: answer.node, replica: answer.replica });
  const type = String(answer.headers['content-type'] ?? '');
  // Only a JSON event stream can be replayed to later viewers; anything else goes to those
  // already waiting (they asked the very same thing) and to nobody else.
  let splitting = answer.status === 200 && /^application\/json\b/i.test(type);
  if (!splitting) upstream.stopJoining();
  const lines = new LineSplitter();
  const passOn = (bytes: Buffer) => upstream.publish({ payload: bytes, bytes: bytes.byteLength }, false);
  try {
    for await (const chunk of answer.body) {
      const bytes = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
      if (!splitting) {
        passOn(bytes);
        continue;
      }
      for (const line of lines.push(bytes)) {
        const event = eventOf(line);
        if (event === 'not an event') {
          splitting = false;
          upstream.stopJoining();
          passOn(line);
          continue;
        }
        upstream.publish(event.event, event.replayable);
        if (event.last) upstream.stopJoining();
      }
      // No event is this large (the API server's objects are at most about 1.5 MB): not a watch
      // stream after all. Pass it on unsplit, and let nobody else join it.
      if (lines.pendingBytes > EVENT_MAX_BYTES) {
        splitting = false;
        upstream.stopJoining();
        passOn(lines.flush()!);
      }
    }
    const rest = lines.flush();
    if (rest) passOn(rest);
  } finally {
    upstream.signal.removeEventListener('abort', stopReading);
  }
}

type ParsedEvent = { type?: unknown; object?: { metadata?: { resourceVersion?: unknown } } };

function parseEvent(line: Buffer): ParsedEvent | undefined {
  try {
    const parsed: unknown = JSON.parse(line.toString('utf8'));
    return typeof parsed === 'object' && parsed !== null ? (parsed as ParsedEvent) : undefined;
  } catch {
    return undefined;
  }
}

function resourceVersionOf(parsed: ParsedEvent | undefined): string | undefined {
  const rv = parsed?.object?.metadata?.resourceVersion;
  return typeof rv === 'string' ? rv : undefined;
}

/**
 * A watch event kept for replay, whose resourceVersion is read from its JSON only when a caller
 * joining later looks for it: most events of most watches are never looked at, and parsing
 * every one (a Pod is several KB) was the largest cost of a watch event in kas after the socket
 * writes (bench/README.md, Kubernetes).
 */
class WatchEvent implements FanOutEvent<Buffer> {
  readonly payload: Buffer;
  readonly bytes: number;
  /** null: not read yet. */
  #position: string | undefined | null;

  /** `read`: the event was parsed already, and this is what it said (its resourceVersion, if any). */
  constructor(payload: Buffer, read?: { position: string | undefined }) {
    this.payload = payload;
    this.bytes = payload.byteLength;
    this.#position = read ? read.position : null;
  }

  get position(): string | undefined {
    if (this.#position === null) this.#position = resourceVersionOf(parseEvent(this.payload));
    return this.#position;
  }
}

const ERROR_TYPE = Buffer.from('"ERROR"');

/**
 * One line as a watch event: replayable (its resourceVersion is where a later caller may resume),
 * a keep-alive (not replayed), or not an event at all (then the stream is passed on unsplit and
 * nobody joins it). A line counts as an event when it is shaped like a JSON object; it is parsed
 * here only when it may be an ERROR event (it names "ERROR" somewhere), which ends the stream for
 * anyone new (a 410 Gone, say).
 */
function eventOf(line: Buffer): { event: FanOutEvent<Buffer>; replayable: boolean; last: boolean } | 'not an event' {
  // A keep-alive blank line (agentk's, on an idle watch): for those watching now, not an event.
  if (isBlank(line)) return { event: { payload: line, bytes: line.byteLength }, replayable: false, last: false };
  if (!looksLikeObject(line)) return 'not an event';
  // A copy: the line may be a view into a much larger read buffer, and it is kept for replay.
  const payload = Buffer.from(line);
  if (!payload.includes(ERROR_TYPE)) return { event: new WatchEvent(payload), replayable: true, last: false };
  const parsed = parseEvent(payload);
  if (!parsed) return 'not an event';
  return { event: new WatchEvent(payload, { position: resourceVersionOf(parsed) }), replayable: true, last: parsed.type === 'ERROR' };
}

/** Splits chunks into whole lines (with their line ends), keeping the part of one that is not complete yet. */
export class LineSplitter {
  #partial: Buffer[] = [];
  pendingBytes = 0;

  push(chunk: Buffer): Buffer[] {
    const lines: Buffer[] = [];
    let start = 0;
    for (let newline = chunk.indexOf(NEWLINE); newline >= 0; newline = chunk.indexOf(NEWLINE, start)) {
      let line = chunk.subarray(start, newline + 1);
      if (this.#partial.length > 0) {
        line = Buffer.concat([...this.#partial, line]);
        this.#partial = [];
        this.pendingBytes = 0;
      }
      lines.push(line);
      start = newline + 1;
    }
    if (start < chunk.byteLength) {
      this.#partial.push(Buffer.from(chunk.subarray(start)));
      this.pendingBytes += chunk.byteLength - start;
    }
    return lines;
  }

  /** What is held of a line not complete yet, given up. */
  flush(): Buffer | undefined {
    if (this.#partial.length === 0) return undefined;
    const rest = Buffer.concat(this.#partial);
    this.#partial = [];
    this.pendingBytes = 0;
    return rest;
  }
}

/** A caller of a shared watch: its HTTP answer, as a viewer of the shared stream. */
class ReplyViewer implements Viewer<WatchHead, Buffer> {
  #reply: Reply;
  #span: Span;

  constructor(reply: Reply, span: Span) {
    this.#reply = reply;
    this.#span = span;
  }

  get gone(): boolean {
    return this.#reply.signal.aborted;
  }

  onGone(listener: () => void): () => void {
    const signal = this.#reply.signal;
    signal.addEventListener('abort', listener, { once: true });
    return () => signal.removeEventListener('abort', listener);
  }

  get backlog(): number {
    return this.#reply.backlog;
  }

  start(head: WatchHead): void {
    this.#span.setAttributes({ 'kas.agent.replica': head.replica, 'kas.node': head.node });
    this.#reply.start(head.status, head.headers, { node: head.node, replica: head.replica });
  }

  send(event: FanOutEvent<Buffer>): void {
    this.#reply.write(event.payload);
  }

  end(): void {
    this.#reply.end();
  }

  fail(error: unknown): void {
    const failure = error instanceof KasError ? error : new KasError('bad_gateway', 'the watch ended before the agent answered; retry it');
    failSpan(this.#span, failure.code, error);
    if (this.#reply.started) this.#reply.destroy(error instanceof Error ? error : undefined);
    else this.#reply.fail(failure);
  }
}
