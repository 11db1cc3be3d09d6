// One live graph on one node: the upstream of its shared stream (server/fanout/hub.ts), which
// every viewer of the graph on this node watches. Across the cluster, ONE node evaluates the
// graph at each step: the holder of its lease in Redis. It runs one query_range per step (from
// the step after the last one it knows to the step now due, so a step missed during a takeover is
// filled by the next evaluation), keeps the window, and publishes each step's append on the
// graph's sharded channel. Every other node with viewers follows that channel, keeps its own copy
// of the window for its late joiners, and tries to take the lease at every step, which succeeds
// only once the holder stopped renewing it (it died) or gave it up (it drains).
//
// Without Redis (one node), or while Redis is unreachable, a node evaluates for its own viewers.
import { type Context, context, type Link, ROOT_CONTEXT, SpanKind, trace } from '@opentelemetry/api';
import type { Logger } from 'pino';
import { failSpan } from '../../../../otel/tracing.ts';
import type { Upstream } from '../../../fanout/hub.ts';
import type { Coordination } from '../../../routing/coordination.ts';
import { KasError } from '../../../routing/errors.ts';
import type { Peers } from '../../../routing/peers.ts';
import type { Agents } from '../../capability.ts';
import type { LiveSpec } from './spec.ts';
import { type Append, LiveWindow, type Series } from './window.ts';

const tracer = trace.getTracer('kas');

/** What viewers of a live graph are sent. */
export type LiveEvent =
  /** The window exists now: a viewer's catch-up (snapshot, or appends after its last event) comes from it. */
  | { kind: 'ready'; window: LiveWindow }
  | { kind: 'append'; append: Append }
  /** `tMs`: the step it is about. `final`: the graph is over (a limit was passed). */
  | { kind: 'error'; tMs?: number; errorType: string; error: string; final: boolean };

/** The SSE stream's head is the same for every viewer; nothing in it varies. */
export type LiveHead = Record<string, never>;

/** Messages on a graph's channel between nodes. */
type ChannelMessage =
  | { type: 'append'; from: string; append: Append }
  | { type: 'error'; from: string; tMs?: number; errorType: string; error: string; final: boolean }
  /** The holder gave the lease up (it drains): take it now, not when it would have expired. */
  | { type: 'release'; from: string };

export interface LiveDeps {
  agents: Agents;
  coordination: Coordination | undefined;
  peers: Peers | undefined;
  /** This node's name and private URL: the lease says who holds it and where to ask for its window. */
  node: string;
  nodeUrl: string;
  delayMs: number;
  maxSeries: number;
  log: Logger;
  /** An evaluation was made (one query_range to an agent). */
  onUpstreamQuery: () => void;
  /** Aborted when the node drains. */
  drainSignal: AbortSignal;
}

/** Largest query_range answer kas reads for a live graph. */
const MAX_ANSWER_BYTES = 64 * 1024 * 1024;
/**
 * Appends of one evaluation sent to the other nodes: a step's, or the few of a takeover's gap. A
 * node further behind than this asks the holder for what it missed instead.
 */
const MAX_BROADCAST_APPENDS = 120;
/** Appends kept from the channel while this node's window is not there yet. */
const MAX_PENDING_APPENDS = 1024;

export const channelOf = (spec: LiveSpec) => `kas:live:{${spec.id}}`;
const leaseOf = (spec: LiveSpec) => `kas:live:lease:{${spec.id}}`;

/**
 * How long a lease taken or renewed now lasts: until half a step after the next tick. It outlives
 * one missed renewal but not two, so a takeover happens within two steps, and it is counted from
 * the tick, not from when the renewal ran: a holder whose renewal ran late (a busy machine) does
 * not push the lease past the tick at which the others would take it over.
 */
export const leaseMs = (nextTickMs: number, stepMs: number, nowMs = Date.now()) =>
  Math.max(Math.round(stepMs / 2), Math.round(nextTickMs + stepMs / 2 - nowMs));

class PrometheusError extends Error {
  override name = 'PrometheusError';
  readonly errorType: string;
  constructor(errorType: string, message: string) {
    super(message);
    this.errorType = errorType;
  }
}

export class LiveSubscription {
  readonly spec: LiveSpec;
  readonly window: LiveWindow;
  #deps: LiveDeps;
  #upstream: Upstream<LiveHead, LiveEvent>;
  #holder: string;
  #owner = false;
  #ready = false;
  #evaluating = false;
  #stopped = false;
  /** Appends that arrived from the channel before the window was there. */
  #pending: Append[] = [];
  #timer: NodeJS.Timeout | undefined;
  #unsubscribe: (() => Promise<void>) | undefined;
  #log: Logger;
  #links: Link[];
  #done!: () => void;

  constructor(spec: LiveSpec, upstream: Upstream<LiveHead, LiveEvent>, deps: LiveDeps, subscribedFrom: Context) {
    this.spec = spec;
    this.window = new LiveWindow(spec.rangeMs, spec.stepMs);
    this.#upstream = upstream;
    this.#deps = deps;
    this.#holder = `${deps.node} ${deps.nodeUrl}`;
    this.#log = deps.log.child({ live_graph: spec.id, agent_id: spec.agentId });
    // Each evaluation is a trace of its own, linked to the subscription that started this graph here.
    const subscription = trace.getSpanContext(subscribedFrom);
    this.#links = subscription ? [{ context: subscription }] : [];
  }

  get owner(): boolean {
    return this.#owner;
  }

  get ready(): boolean {
    return this.#ready;
  }

  /** Runs until every viewer left, the node drains, or a limit ends the graph. */
  run(): Promise<void> {
    const over = new Promise<void>((resolve) => (this.#done = resolve));
    const stop = () => this.#stop();
    this.#upstream.signal.addEventListener('abort', stop, { once: true });
    this.#deps.drainSignal.addEventListener('abort', stop, { once: true });
    this.#upstream.head({});
    void this.#start().catch((error: unknown) => {
      this.#log.error({ err: String(error) }, 'live graph failed to start');
      this.#stop();
    });
    return over.finally(() => {
      this.#upstream.signal.removeEventListener('abort', stop);
      this.#deps.drainSignal.removeEventListener('abort', stop);
    });
  }

  async #start(): Promise<void> {
    const { coordination } = this.#deps;
    if (coordination) {
      try {
        this.#unsubscribe = await coordination.subscribe(channelOf(this.spec), (raw) => this.#onChannel(raw));
      } catch (error) {
        this.#log.warn({ err: (error as Error).message }, 'cannot follow the live graph channel; evaluating here');
      }
    }
    if (this.#stopped) return;
    await this.#claim();
    await this.#catchUp();
    this.#schedule();
  }

  /** Gets the window: from the lease holder when another node evaluates, else by evaluating. */
  async #catchUp(): Promise<void> {
    if (!this.#owner && (await this.#fetchWindow())) this.#becomeReady();
    else await this.#evaluate();
  }

  /** Follows the graph's channel, if it does not yet (Redis was unreachable when it started). */
  async #follow(): Promise<void> {
    const { coordination } = this.#deps;
    if (!coordination || this.#unsubscribe) return;
    try {
      this.#unsubscribe = await coordination.subscribe(channelOf(this.spec), (raw) => this.#onChannel(raw));
      this.#log.info('following the live graph channel again');
    } catch {
      // still unreachable: this node keeps evaluating for its own viewers
    }
  }

  /** Takes the lease if nobody holds it, keeps it if this node does; without Redis, this node evaluates. */
  async #claim(): Promise<void> {
    const { coordination } = this.#deps;
    if (!coordination || !this.#unsubscribe) {
      this.#owner = true;
      return;
    }
    const lease = leaseOf(this.spec);
    const ttl = leaseMs(this.#nextTickMs(), this.spec.stepMs);
    try {
      // A lease that is gone (Redis restarted) is taken again at once rather than a step later.
      const holds =
        (this.#owner && (await coordination.renew(lease, this.#holder, ttl))) || (await coordination.acquire(lease, this.#holder, ttl));
      if (holds && !this.#owner) this.#log.info('evaluating this live graph for the cluster');
      if (!holds && this.#owner) this.#log.info('another node evaluates this live graph now');
      this.#owner = holds;
    } catch (error) {
      // Redis is unreachable: keep this node's viewers served until it returns.
      if (!this.#owner) this.#log.warn({ err: (error as Error).message }, 'Redis unreachable; evaluating this live graph here meanwhile');
      this.#owner = true;
    }
  }

  /** Asks the lease holder for its window, so that a late joiner here costs no upstream query. */
  async #fetchWindow(afterMs?: number): Promise<boolean> {
    const { coordination, peers } = this.#deps;
    if (!coordination || !peers) return false;
    try {
      const holder = await coordination.holder(leaseOf(this.spec));
      const [node, url] = holder?.split(' ') ?? [];
      if (!node || !url || node === this.#deps.node) return false;
      const rest = `/live/${this.spec.id}${afterMs === undefined ? '' : `?after=${afterMs}`}`;
      const { status, body } = await peers.get(url, 'prometheus', this.spec.agentId, rest, { maxBytes: MAX_ANSWER_BYTES, timeoutMs: 10_000 });
      if (status !== 200) return false;
      const state = JSON.parse(body.toString('utf8')) as WindowState;
      if (afterMs === undefined) {
        if (state.lastMs === undefined || !state.snapshot) return false;
        this.window.takeRange(state.snapshot.result, state.lastMs - this.spec.rangeMs, state.lastMs);
      } else {
        for (const append of state.appends ?? []) this.#applyAppend(append);
      }
      return true;
    } catch (error) {
      this.#log.debug({ err: (error as Error).message }, 'could not fetch the live graph window from its holder');
      return false;
    }
  }

  #becomeReady(): void {
    if (this.#ready) return;
    this.#ready = true;
    this.#upstream.publish({ payload: { kind: 'ready', window: this.window }, bytes: 0 }, false);
    for (const append of this.#pending.splice(0)) this.#applyAppend(append);
  }

  /** The step now due: the latest multiple of the step that the clock passed by the delay. */
  #dueMs(): number {
    const { stepMs } = this.spec;
    return Math.floor((Date.now() - this.#deps.delayMs) / stepMs) * stepMs;
  }

  /** When the next step falls due: its time plus the delay. */
  #nextTickMs(): number {
    return this.#dueMs() + this.spec.stepMs + this.#deps.delayMs;
  }

  #schedule(): void {
    if (this.#stopped) return;
    this.#timer = setTimeout(() => void this.#tick(), Math.max(0, this.#nextTickMs() - Date.now()));
  }

  async #tick(): Promise<void> {
    if (this.#stopped) return;
    this.#schedule();
    await this.#follow();
    await this.#claim();
    if (this.#stopped) return;
    if (this.#owner) await this.#evaluate();
    else if (!this.#ready) await this.#catchUp();
  }

  /** One query_range from the step after the last known one to the step now due; its appends go to viewers and to the channel. */
  async #evaluate(): Promise<void> {
    if (this.#evaluating || this.#stopped) return; // the next evaluation covers these steps too
    this.#evaluating = true;
    const { stepMs, rangeMs } = this.spec;
    const untilMs = this.#dueMs();
    const last = this.window.lastMs;
    const fromMs = last === undefined ? untilMs - rangeMs : Math.max(last + stepMs, untilMs - rangeMs);
    try {
      if (last !== undefined && fromMs > untilMs) return;
      const result = await this.#queryRange(fromMs, untilMs);
      if (this.#stopped) return;
      const appends = this.window.takeRange(result, fromMs, untilMs);
      if (this.window.seriesCount > this.#deps.maxSeries) {
        return this.#limit(`the query returns ${this.window.seriesCount} series, more than KAS_LIVE_MAX_SERIES (${this.#deps.maxSeries}) a live graph may have; narrow it (by labels, or sum/topk)`);
      }
      if (!this.#ready) this.#becomeReady();
      else for (const append of appends) this.#emit({ kind: 'append', append });
      // The first window of a graph is nobody else's news; later steps are.
      if (this.#owner && last !== undefined) {
        for (const append of appends.slice(-MAX_BROADCAST_APPENDS)) this.#broadcast({ type: 'append', from: this.#deps.node, append });
      }
    } catch (error) {
      if (this.#stopped) return;
      const errorType = error instanceof PrometheusError ? error.errorType : error instanceof KasError ? error.code : 'internal';
      const message = (error as Error).message;
      this.#emit({ kind: 'error', tMs: untilMs, errorType, error: message, final: false });
      if (this.#owner) this.#broadcast({ type: 'error', from: this.#deps.node, tMs: untilMs, errorType, error: message, final: false });
    } finally {
      this.#evaluating = false;
    }
  }

  async #queryRange(fromMs: number, untilMs: number): Promise<Series[]> {
    const { spec } = this;
    const params = new URLSearchParams({ query: spec.query, start: String(fromMs / 1000), end: String(untilMs / 1000), step: String(spec.stepMs / 1000) });
    const span = tracer.startSpan('live evaluate', { kind: SpanKind.INTERNAL, links: this.#links, attributes: { 'kas.agent.id': spec.agentId, 'kas.live.graph': spec.id, 'db.query.text': spec.query, 'kas.live.steps': (untilMs - fromMs) / spec.stepMs + 1 } }, ROOT_CONTEXT);
    this.#deps.onUpstreamQuery();
    try {
      const stream = await this.#deps.agents.open(
        {
          agentId: spec.agentId,
          upstream: 'prometheus',
          method: 'GET',
          path: '/api/v1/query_range',
          query: params.toString(),
          headers: { accept: 'application/json' },
          body: undefined,
          streaming: false,
          timeoutMs: Math.max(spec.stepMs, 10_000),
        },
        // A graph evaluates again at its next step: waiting longer for a replica helps nobody.
        { sub: 'kas-live', parent: trace.setSpan(context.active(), span), routingTimeoutMs: Math.min(spec.stepMs, 5_000) },
      );
      const chunks: Uint8Array[] = [];
      let size = 0;
      for await (const chunk of stream.body) {
        size += chunk.byteLength;
        if (size > MAX_ANSWER_BYTES) {
          stream.body.cancel('too large');
          throw new PrometheusError('too_large', `the answer exceeds ${MAX_ANSWER_BYTES} bytes`);
        }
        chunks.push(chunk);
      }
      const answer = JSON.parse(Buffer.concat(chunks).toString('utf8')) as {
        status?: string;
        errorType?: string;
        error?: string;
        data?: { resultType?: string; result?: Series[] };
      };
      if (answer.status !== 'success') throw new PrometheusError(answer.errorType ?? 'upstream', answer.error ?? `Prometheus answered ${stream.status}`);
      if (answer.data?.resultType !== 'matrix' || !Array.isArray(answer.data.result)) throw new PrometheusError('bad_data', 'query_range did not answer a matrix');
      span.setAttribute('kas.live.series', answer.data.result.length);
      return answer.data.result;
    } catch (error) {
      failSpan(span, error instanceof PrometheusError ? error.errorType : error instanceof KasError ? error.code : 'internal', error);
      if (error instanceof SyntaxError) throw new PrometheusError('bad_data', `Prometheus answered something that is not JSON: ${error.message}`);
      throw error;
    } finally {
      span.end();
    }
  }

  #onChannel(raw: string): void {
    let message: ChannelMessage;
    try {
      message = JSON.parse(raw) as ChannelMessage;
    } catch {
      return;
    }
    if (message.from === this.#deps.node || this.#stopped) return;
    switch (message.type) {
      case 'append':
        if (this.#ready) this.#applyAppend(message.append);
        else if (this.#pending.push(message.append) > MAX_PENDING_APPENDS) this.#pending.shift();
        return;
      case 'error':
        if (!this.#owner) this.#emit({ kind: 'error', ...(message.tMs === undefined ? {} : { tMs: message.tMs }), errorType: message.errorType, error: message.error, final: message.final });
        if (message.final) this.#stop();
        return;
      case 'release':
        // The holder drains: whoever takes the lease now evaluates from the next step on, no gap.
        if (!this.#owner) void this.#claim();
        return;
    }
  }

  #applyAppend(append: Append): void {
    const last = this.window.lastMs;
    const tMs = Math.round(append.t * 1000);
    if (last !== undefined && tMs > last + this.spec.stepMs && !this.#owner) {
      // Steps were missed (a message lost while Redis was away): ask the holder for them first.
      const missedAfter = last;
      void this.#fetchWindow(missedAfter).finally(() => {
        if (this.window.takeAppend(append)) this.#emit({ kind: 'append', append });
      });
      return;
    }
    if (this.window.takeAppend(append)) this.#emit({ kind: 'append', append });
  }

  #emit(event: LiveEvent): void {
    if (event.kind === 'append') {
      this.#upstream.publish({ payload: event, bytes: appendBytes(event.append), position: String(Math.round(event.append.t * 1000)) }, false);
    } else {
      this.#upstream.publish({ payload: event, bytes: 256 }, false);
    }
  }

  #broadcast(message: ChannelMessage): void {
    const { coordination } = this.#deps;
    if (!coordination || !this.#unsubscribe) return;
    coordination.publish(channelOf(this.spec), JSON.stringify(message)).catch((error: Error) => {
      this.#log.debug({ err: error.message }, 'could not publish to the live graph channel');
    });
  }

  /** A limit was passed: the graph ends for every viewer, on every node. */
  #limit(message: string): void {
    const event: LiveEvent = { kind: 'error', errorType: 'limit', error: message, final: true };
    this.#emit(event);
    this.#broadcast({ type: 'error', from: this.#deps.node, errorType: 'limit', error: message, final: true });
    this.#stop();
  }

  #stop(): void {
    if (this.#stopped) return;
    this.#stopped = true;
    clearTimeout(this.#timer);
    const { coordination } = this.#deps;
    const wasOwner = this.#owner;
    this.#owner = false;
    void (async () => {
      if (coordination && this.#unsubscribe && wasOwner) {
        await coordination.release(leaseOf(this.spec), this.#holder).catch(() => undefined);
        this.#broadcast({ type: 'release', from: this.#deps.node });
      }
      await this.#unsubscribe?.();
    })().finally(() => this.#done());
  }
}

/** What a node tells another about its window: the snapshot, or the appends after a step. */
export interface WindowState {
  lastMs: number | undefined;
  snapshot?: { resultType: 'matrix'; result: Series[] };
  appends?: Append[];
}

function appendBytes(append: Append): number {
  let bytes = 32;
  for (const sample of append.result) {
    bytes += 24 + sample.value[1].length;
    for (const name in sample.metric) bytes += name.length + sample.metric[name]!.length + 6;
  }
  return bytes;
}
