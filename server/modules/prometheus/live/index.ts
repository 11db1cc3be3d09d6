// Live graphs: `GET …/prometheus/live?query=&range=&step=` (server-sent events) and the
// dashboard's `live` subscriptions. Identical subscriptions (agent, query, range, step) share one
// stream per node on the fan-out hub, and one evaluation per step cluster-wide (subscription.ts).
import { context, type Meter } from '@opentelemetry/api';
import { FanOutHub, type Budget } from '../../../fanout/hub.ts';
import { KasError } from '../../../routing/errors.ts';
import type { CapabilityRequest, Reply, UiContext, UiRun } from '../../capability.ts';
import { type LiveSpec, liveSpec } from './spec.ts';
import { type LiveDeps, type LiveEvent, type LiveHead, LiveSubscription, type WindowState } from './subscription.ts';
import { LiveViewer, SseOutput, UiOutput } from './viewers.ts';

/** A comment at least this often keeps idle SSE streams open through proxies and load balancers. */
const HEARTBEAT_MS = 15_000;

export interface LiveGraphsOptions extends Omit<LiveDeps, 'onUpstreamQuery'> {
  maxSubscriptions: number;
  meter: Meter;
  budget: Budget;
}

export class LiveGraphs {
  #hub: FanOutHub<LiveHead, LiveEvent>;
  #subscriptions = new Map<string, LiveSubscription>();
  #sse = new Set<SseOutput>();
  #o: LiveGraphsOptions;
  #deps: LiveDeps;
  #heartbeat: NodeJS.Timeout;

  constructor(options: LiveGraphsOptions) {
    this.#o = options;
    this.#hub = new FanOutHub(options.log.child({ component: 'live-graphs' }), options.budget);
    const queries = options.meter.createCounter('kas_live_upstream_queries', { description: 'Upstream evaluations this node made for live graphs' });
    queries.add(0);
    this.#deps = { ...options, onUpstreamQuery: () => queries.add(1) };
    options.meter
      .createObservableGauge('kas_live_subscriptions', { description: 'Distinct live graphs with viewers on this node' })
      .addCallback((r) => r.observe(this.#subscriptions.size));
    options.meter
      .createObservableGauge('kas_live_viewers', { description: 'Viewers of live graphs on this node' })
      .addCallback((r) => r.observe(this.#hub.stats().viewers));
    options.meter
      .createObservableGauge('kas_live_evaluating', { description: 'Live graphs this node evaluates for the cluster' })
      .addCallback((r) => r.observe(this.stats().evaluating));
    this.#heartbeat = setInterval(() => {
      for (const sse of this.#sse) sse.heartbeat();
    }, HEARTBEAT_MS);
    this.#heartbeat.unref();
  }

  /** Graphs with viewers here, their viewers, and which this node evaluates: for tests and benchmarks. */
  stats(): { subscriptions: number; viewers: number; evaluating: number } {
    let evaluating = 0;
    for (const subscription of this.#subscriptions.values()) if (subscription.owner) evaluating++;
    return { subscriptions: this.#subscriptions.size, viewers: this.#hub.stats().viewers, evaluating };
  }

  /**
   * The SSE stream of one live graph. Returns once the viewer has joined, not when it is over: a
   * viewer is held by its graph and its response alone, so that no request's async frames (the
   * route's, express's) stay alive per viewer for as long as it watches.
   */
  serveSse(request: CapabilityRequest, reply: Reply): void {
    if (request.method !== 'GET') throw new KasError('forbidden', `${request.method} is not allowed on a live graph; use GET`);
    const params = new URLSearchParams(request.query);
    const spec = liveSpec(request.agentId, { query: params.get('query'), range: params.get('range'), step: params.get('step') });
    this.#checkCapacity(spec);
    const lastEventId = request.headers['last-event-id'];
    const resume = typeof lastEventId === 'string' && /^\d+(?:\.\d+)?$/.test(lastEventId.trim()) ? Math.round(Number(lastEventId) * 1000) : undefined;
    const sse = new SseOutput(reply);
    sse.open();
    this.#sse.add(sse);
    reply.onClose(() => this.#sse.delete(sse));
    this.#join(spec, new LiveViewer(sse, resume));
  }

  /** A dashboard subscription to a live graph: refused at once when its graph or a limit is wrong. */
  async subscribe(subscription: { id: string; agentId: string; query: string; range: string; step: string; after?: number | undefined }, ui: UiContext): Promise<UiRun> {
    const spec = liveSpec(subscription.agentId, subscription);
    this.#checkCapacity(spec);
    const resume = subscription.after === undefined ? undefined : Math.round(subscription.after * 1000);
    return async (sink) => {
      const over = new Promise<void>((resolve) => sink.onGone(resolve));
      context.with(ui.parent, () => this.#join(spec, new LiveViewer(new UiOutput(sink, subscription.id), resume)));
      await over;
    };
  }

  /** What this node knows of a graph it has, for a node whose viewers need it: its snapshot, or the appends after a step. */
  async servePeer(rawPath: string, query: URLSearchParams, reply: Reply): Promise<void> {
    const id = /^\/live\/([A-Za-z0-9_-]{1,64})$/.exec(rawPath)?.[1];
    const subscription = id ? this.#subscriptions.get(id) : undefined;
    if (!subscription?.ready) throw new KasError('not_found', 'this node has no window of that live graph');
    const { window } = subscription;
    const after = query.get('after');
    const state: WindowState = { lastMs: window.lastMs };
    if (after === null) state.snapshot = window.snapshot();
    else if (window.holds(Number(after))) state.appends = window.appendsAfter(Number(after));
    else throw new KasError('not_found', 'this node no longer holds that step of the live graph');
    reply.start(200, { 'content-type': 'application/json' });
    reply.write(JSON.stringify(state));
    reply.end();
  }

  #checkCapacity(spec: LiveSpec): void {
    if (this.#subscriptions.has(spec.id) || this.#subscriptions.size < this.#o.maxSubscriptions) return;
    throw new KasError(
      'too_many_requests',
      `this kas node serves ${this.#subscriptions.size} distinct live graphs, its limit (KAS_LIVE_MAX_SUBSCRIPTIONS); view one that is open already, or try another node`,
      { retryAfterSeconds: 30 },
    );
  }

  #join(spec: LiveSpec, viewer: LiveViewer): void {
    const subscribedFrom = context.active();
    this.#hub.serve({
      key: spec.id,
      viewer,
      catchUp: () => {
        const subscription = this.#subscriptions.get(spec.id);
        return subscription?.ready ? [{ payload: { kind: 'ready', window: subscription.window }, bytes: 0 }] : [];
      },
      start: (upstream) => {
        const subscription = new LiveSubscription(spec, upstream, this.#deps, subscribedFrom);
        this.#subscriptions.set(spec.id, subscription);
        return subscription.run().finally(() => {
          if (this.#subscriptions.get(spec.id) === subscription) this.#subscriptions.delete(spec.id);
        });
      },
    });
  }

  close(): void {
    clearInterval(this.#heartbeat);
  }
}
