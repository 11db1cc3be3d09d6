// The dashboard's socket: socket.io namespace `/ui` on the API port, one WebSocket per browser
// tab carrying all its subscriptions (protocol/ui.ts). This edge authenticates the tab, checks
// each subscription's scope, hands it to the capability that serves its kind, and writes the
// capability's updates to the socket; the agents list it serves itself.
import type http from 'node:http';
import type https from 'node:https';
import { context, propagation, ROOT_CONTEXT, trace } from '@opentelemetry/api';
import type { Logger } from 'pino';
import { failSpan } from '../../otel/tracing.ts';
import { Server, type Socket } from 'socket.io';
import {
  type SubscribeReply,
  UI_MAX_SUBSCRIPTIONS,
  UI_NAMESPACE,
  UI_SUBSCRIBE,
  UI_UNSUBSCRIBE,
  UI_UPDATE,
  type UiAgent,
  type UiSubscription,
  UiSubscriptionSchema,
  UiUnsubscribeSchema,
  type UiUpdate,
} from '../../protocol/ui.ts';
import { type Caller, callerMayReach, UnauthenticatedError, verifyApiToken } from '../auth/tokens.ts';
import type { ServerCapability, UiSink } from '../modules/capability.ts';
import { KasError } from '../routing/errors.ts';
import type { AgentRegistry } from '../routing/registry.ts';

const tracer = trace.getTracer('kas');

/** Largest message a tab may send (subscriptions are small). */
const MAX_MESSAGE_BYTES = 64 * 1024;
/** Agents-list updates are coalesced: at most one per this interval. */
const AGENTS_COALESCE_MS = 100;

export interface UiServerOptions {
  httpServer: http.Server | https.Server;
  apiSecret: Uint8Array;
  registry: AgentRegistry;
  capabilities: ReadonlyMap<string, ServerCapability>;
  log: Logger;
}

interface TabData {
  caller: Caller;
}

/** One subscription of a tab: its sink, and how to end it. */
class Subscription implements UiSink {
  readonly id: string;
  #socket: Socket;
  #gone = new AbortController();
  #ended = false;
  #onEnd: () => void;

  constructor(id: string, socket: Socket, onEnd: () => void) {
    this.id = id;
    this.#socket = socket;
    this.#onEnd = onEnd;
  }

  get gone(): boolean {
    return this.#gone.signal.aborted;
  }

  onGone(listener: () => void): () => void {
    const signal = this.#gone.signal;
    if (signal.aborted) {
      queueMicrotask(listener);
      return () => undefined;
    }
    signal.addEventListener('abort', listener, { once: true });
    return () => signal.removeEventListener('abort', listener);
  }

  /** What the tab's socket has not taken yet: the WebSocket's buffer and engine.io's queue. */
  get backlog(): number {
    const conn = this.#socket.conn as unknown as { writeBuffer?: unknown[]; transport?: { socket?: { bufferedAmount?: number } } };
    return (conn.transport?.socket?.bufferedAmount ?? 0) + (conn.writeBuffer?.length ?? 0) * 1024;
  }

  send(update: UiUpdate): void {
    if (!this.gone && !this.#ended) this.#socket.emit(UI_UPDATE, update);
  }

  end(): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#onEnd();
  }

  /** The tab unsubscribed or left. */
  cancel(): void {
    this.#gone.abort(new Error('the tab left the subscription'));
    this.end();
  }
}

export function createUiServer(o: UiServerOptions): Server {
  const io = new Server(o.httpServer, {
    transports: ['websocket'],
    serveClient: false,
    maxHttpBufferSize: MAX_MESSAGE_BYTES,
    pingInterval: 20_000,
    pingTimeout: 20_000,
    // Other paths' upgrade requests are answered by the API's own handler (upgrades.ts).
    destroyUpgrade: false,
  });
  // Only the dashboard's namespace: anything else on this port's socket.io is refused.
  io.of('/').use((_socket, next) => next(new Error('no such namespace; the dashboard uses /ui')));
  const ui = io.of(UI_NAMESPACE);

  ui.use(async (socket, next) => {
    const token = (socket.handshake.auth as { token?: unknown } | undefined)?.token;
    try {
      if (typeof token !== 'string' || token === '') throw new UnauthenticatedError('no API token: give it in the handshake as auth: { token }');
      (socket.data as TabData).caller = await verifyApiToken(o.apiSecret, `Bearer ${token}`);
      next();
    } catch (error) {
      const refusal = Object.assign(new Error('unauthorized'), {
        data: { message: error instanceof UnauthenticatedError ? error.message : 'the API token could not be checked' },
      });
      next(refusal);
    }
  });

  const byKind = new Map<string, ServerCapability>();
  for (const capability of o.capabilities.values()) for (const kind of capability.uiKinds ?? []) byKind.set(kind, capability);

  ui.on('connection', (socket) => {
    const { caller } = socket.data as TabData;
    const subscriptions = new Map<string, Subscription>();
    const log = o.log.child({ component: 'ui', sub: caller.sub });

    socket.on(UI_SUBSCRIBE, (raw: unknown, ack?: unknown) => {
      const reply = typeof ack === 'function' ? (ack as (reply: SubscribeReply) => void) : () => undefined;
      const parsed = UiSubscriptionSchema.safeParse(raw);
      const id = typeof (raw as { id?: unknown } | null)?.id === 'string' ? String((raw as { id: string }).id).slice(0, 64) : '';
      if (!parsed.success) {
        const issue = parsed.error.issues[0];
        return reply({ ok: false, id, status: 400, error: `the subscription is not valid: ${issue ? `${issue.path.join('.') || '(subscription)'}: ${issue.message}` : 'invalid'}` });
      }
      const subscription = parsed.data;
      if (subscriptions.has(subscription.id)) return reply({ ok: false, id, status: 409, error: `subscription ${subscription.id} is open already; unsubscribe it first` });
      if (subscriptions.size >= UI_MAX_SUBSCRIPTIONS) {
        return reply({ ok: false, id, status: 429, error: `a tab may hold ${UI_MAX_SUBSCRIPTIONS} subscriptions at once; close some panels` });
      }
      if ('agentId' in subscription && !callerMayReach(caller, subscription.agentId)) {
        return reply({ ok: false, id, status: 403, error: `the API token does not grant access to agent ${subscription.agentId}; ask for a token that lists it` });
      }
      const sink = new Subscription(subscription.id, socket, () => subscriptions.delete(subscription.id));
      subscriptions.set(subscription.id, sink);
      void serve(subscription, sink, caller, reply, log);
    });

    socket.on(UI_UNSUBSCRIBE, (raw: unknown) => {
      const parsed = UiUnsubscribeSchema.safeParse(raw);
      if (parsed.success) subscriptions.get(parsed.data.id)?.cancel();
    });

    socket.on('disconnect', () => {
      for (const sink of [...subscriptions.values()]) sink.cancel();
    });
  });

  /** Runs one subscription under a span that continues the click's trace, and acks it. */
  async function serve(subscription: UiSubscription, sink: Subscription, caller: Caller, reply: (reply: SubscribeReply) => void, log: Logger): Promise<void> {
    const parent = subscription.traceparent ? propagation.extract(ROOT_CONTEXT, { traceparent: subscription.traceparent }) : ROOT_CONTEXT;
    const span = tracer.startSpan(`ui subscribe ${subscription.kind}`, { attributes: { 'kas.ui.subscription': subscription.id, ...('agentId' in subscription ? { 'kas.agent.id': subscription.agentId } : {}) } }, parent);
    const traceId = span.spanContext().traceId;
    const ctx = trace.setSpan(parent, span);
    let acked = false;
    try {
      if (subscription.kind === 'agents') {
        reply({ ok: true, id: subscription.id, traceId });
        acked = true;
        await context.with(ctx, () => serveAgents(sink, caller));
        return;
      }
      const capability = byKind.get(subscription.kind);
      if (!capability?.subscribe) throw new KasError('not_found', `kas serves no "${subscription.kind}" subscriptions`);
      // A refusal (a bad query, an unknown agent, a limit) is the ack's answer; nothing was sent.
      const run = await context.with(ctx, () => capability.subscribe!(subscription, { sub: caller.sub, parent: ctx }));
      reply({ ok: true, id: subscription.id, traceId });
      acked = true;
      await context.with(ctx, () => run(sink));
    } catch (error) {
      const kasError = error instanceof KasError ? error : undefined;
      if (!kasError) log.error({ err: error }, 'dashboard subscription failed');
      const status = kasError?.status ?? 502;
      const message = kasError?.message ?? 'kas failed to serve the subscription; see the kas logs for this trace id';
      if (acked) sink.send({ id: subscription.id, type: 'error', errorType: kasError?.code ?? 'internal', error: message, status, final: true });
      else reply({ ok: false, id: subscription.id, status, error: message, traceId });
      failSpan(span, kasError?.code ?? 'internal', error);
    } finally {
      span.end();
      sink.end();
    }
  }

  /** The agents list, now and again whenever a replica comes or goes anywhere. */
  function serveAgents(sink: Subscription, caller: Caller): Promise<void> {
    const send = () => sink.send({ id: sink.id, type: 'agents', agents: agentsFor(caller) });
    send();
    let timer: NodeJS.Timeout | undefined;
    const onChange = () => {
      timer ??= setTimeout(() => {
        timer = undefined;
        send();
      }, AGENTS_COALESCE_MS);
    };
    o.registry.on('changed', onChange);
    return new Promise((resolve) =>
      sink.onGone(() => {
        clearTimeout(timer);
        o.registry.off('changed', onChange);
        resolve();
      }),
    );
  }

  function agentsFor(caller: Caller): UiAgent[] {
    return o.registry
      .agentIds()
      .filter((id) => callerMayReach(caller, id))
      .map((id) => ({
        id,
        replicas: o.registry.replicas(id).map((r) => ({ replica: r.replica, node: r.node, connectedAt: r.connectedAt, version: r.version, capabilities: r.capabilities })),
      }));
  }

  return io;
}
