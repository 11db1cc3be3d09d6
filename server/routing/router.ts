// The one handle capabilities get: `open(request)` finds a live replica of the agent (here, or
// on another node), waits for one when none is connected, sends the request, retries on another
// replica when one goes away before answering, and resolves with the answer as an AgentStream.
// Capabilities never see nodes, replicas, tunnels or the private port; nothing here knows HTTP
// servers or any capability by name.
import { type Context, context, type Span, trace } from '@opentelemetry/api';
import type { Logger } from 'pino';
import type { KasMetrics } from '../../otel/kasMetrics.ts';
import {
  endStreamSpan,
  noteAttemptFailed,
  noteReplicaChosen,
  startRoutingSpan,
  startSendSpan,
  type StreamEnd,
} from '../../otel/spans.ts';
import { failSpan } from '../../otel/tracing.ts';
import { formatDuration } from '../../protocol/durations.ts';
import type { AgentTokenStore } from '../auth/agentTokens.ts';
import { signPrivateToken } from '../auth/tokens.ts';
import type { NodeLifecycle } from '../lifecycle.ts';
import type { BodyOutcome } from '../tunnel/chunkQueue.ts';
import type { TunnelConnection, TunnelStreamError } from '../tunnel/agentConnection.ts';
import { KasError } from './errors.ts';
import { ForwardBrokenError, ForwardConnectError, forwardToNode, NODE_HEADER, REPLICA_HEADER } from './forward.ts';
import type { AgentRegistry, ReplicaInfo, Route } from './registry.ts';
import { type AgentRequest, type AgentStream, passableHeaders } from './request.ts';

const MAX_ATTEMPTS = 4;
/** How long a request whose every replica failed waits for one that reconnects elsewhere. */
const REPLACEMENT_GRACE_MS = 2_000;
const RETRY_AFTER_SECONDS = 5;

export interface RouterOptions {
  registry: AgentRegistry;
  tokens: Pick<AgentTokenStore, 'isRegistered'>;
  privateSecret: Uint8Array;
  routingTimeoutMs: number;
  log: Logger;
  metrics: KasMetrics;
  lifecycle: NodeLifecycle;
}

export interface OpenOptions {
  /** Who asks (the API token's `sub`), vouched for to the node holding the agent. */
  sub: string;
  /**
   * Aborts waiting for a replica and for the answer; `open` then rejects with its reason. Once
   * `open` resolved, the reader owns the body: cancel it to stop the request.
   */
  signal?: AbortSignal;
  /** The trace context the routing span continues (default: the active one). */
  parent?: Context;
  /** The routing span's name (default `route <upstream>`). */
  spanName?: string;
  /** Told the routing span, so the caller may annotate it. */
  onSpan?: (span: Span) => void;
  /** How long to wait for a replica (default KAS_ROUTING_TIMEOUT): work that repeats soon may give up sooner. */
  routingTimeoutMs?: number;
}

/** The node holding the agent's replica answers no more for it: the sender may try another. */
export class NotHereError extends KasError {
  override name = 'NotHereError';
}

function errorFromStream(request: AgentRequest, error: TunnelStreamError): KasError {
  const where = `agent ${request.agentId}`;
  switch (error.code) {
    case 'upstream_unreachable':
      return new KasError('bad_gateway', `${where} could not reach its ${request.upstream}: ${error.message}`);
    case 'upstream_timeout':
      return new KasError('timeout', `${where}: ${request.upstream} did not answer in time: ${error.message}`);
    case 'policy_denied':
    case 'not_supported':
      return new KasError('forbidden', `${where} refused the request: ${error.message}`);
    case 'bad_request':
      return new KasError('bad_request', `${where} could not send the request: ${error.message}`);
    case 'replica_gone':
      return new KasError('bad_gateway', `the replica of ${where} serving this request went away; retry the request`);
    case 'agent_busy':
      return new KasError('too_many_requests', `${where} ${error.message}; retry shortly`, { retryAfterSeconds: 1 });
    case 'protocol_violation':
    case 'internal':
      return new KasError('bad_gateway', `${where} failed: ${error.message}`);
  }
}

/** One attempt's result: an answer, or a failure the next attempt may get around. */
type Attempt = { stream: AgentStream; sendSpan?: Span } | { retry: KasError; errorType: string };

export class AgentRouter {
  #o: RouterOptions;

  constructor(options: RouterOptions) {
    this.#o = options;
  }

  get node(): string {
    return this.#o.registry.node;
  }

  /**
   * Opens a request to one of the agent's replicas, wherever it is connected, under the routing
   * span, which lasts until the body is over. Rejects with a KasError when no replica could
   * answer (404 unregistered, 503 none connected in time, 502 they failed, …).
   */
  async open(request: AgentRequest, options: OpenOptions): Promise<AgentStream> {
    if (!this.#o.tokens.isRegistered(request.agentId)) {
      throw new KasError('not_found', `agent ${request.agentId} is not registered; register it with "kas agent register ${request.agentId}"`);
    }
    const parent = options.parent ?? context.active();
    const span = startRoutingSpan(options.spanName ?? `route ${request.upstream}`, request, parent);
    options.onSpan?.(span);
    const ctx = trace.setSpan(parent, span);
    const deadline = new Deadline(request.timeoutMs, options.signal);
    try {
      const attempt = await context.with(ctx, () => this.#route(request, { ...options, signal: deadline.signal }, span, ctx));
      this.#account(request, attempt, span, deadline);
      return attempt.stream;
    } catch (error) {
      deadline.clear();
      failSpan(span, error instanceof KasError ? error.code : 'caller_gone', error);
      span.end();
      throw error;
    }
  }

  /**
   * Opens a request another node forwarded here, on one of this node's own replicas (the one it
   * picked, when still connected). Rejects with NotHereError when this node holds none.
   */
  async openHere(request: AgentRequest, replicaKey: string | undefined, signal?: AbortSignal): Promise<AgentStream> {
    const { registry } = this.#o;
    const tried = new Set<string>();
    const deadline = new Deadline(request.timeoutMs, signal);
    let connection = registry.localConnection(request.agentId, replicaKey);
    try {
      for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
        if (!connection?.isOpen || connection.draining) {
          const route = registry.pick(request.agentId, request.upstream, tried);
          connection = route?.kind === 'local' ? route.connection : undefined;
        }
        if (!connection) break;
        const result = await this.#attemptLocal(connection, request, context.active(), deadline.signal);
        if ('stream' in result) {
          this.#account(request, result, undefined, deadline);
          return result.stream;
        }
        if (result.errorType !== 'replica_gone') throw result.retry;
        tried.add(connection.info.key);
        connection = undefined;
      }
    } catch (error) {
      deadline.clear();
      throw error;
    }
    deadline.clear();
    throw new NotHereError('no_replica', `kas node ${registry.node} holds no replica of agent ${request.agentId}`);
  }

  async #route(request: AgentRequest, options: OpenOptions, span: Span, ctx: Context): Promise<{ stream: AgentStream; sendSpan?: Span }> {
    const tried = new Set<string>();
    let lastFailure: KasError | undefined;
    for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
      const waitStarted = performance.now();
      const route = await this.#waitForRoute(request, tried, options.signal, options.routingTimeoutMs ?? this.#o.routingTimeoutMs);
      const replica = route.kind === 'local' ? route.connection.info : route.replica;
      noteReplicaChosen(span, {
        replica: replica.replica,
        node: replica.node,
        forwarded: route.kind === 'remote',
        waitMs: performance.now() - waitStarted,
        attempt,
      });
      const result =
        route.kind === 'local'
          ? await this.#attemptLocal(route.connection, request, ctx, options.signal)
          : await this.#attemptRemote(route.replica, request, options);
      if ('stream' in result) return result;
      noteAttemptFailed(span, result.errorType, attempt);
      tried.add(replica.key);
      lastFailure = result.retry;
      // Only a replica that went away, or a node that could not be reached, is worth another try.
      if (!['replica_gone', 'not_here', 'broken', 'node_unreachable'].includes(result.errorType)) throw result.retry;
    }
    throw lastFailure ?? new KasError('bad_gateway', `no replica of agent ${request.agentId} could take the request; retry it`);
  }

  async #waitForRoute(request: AgentRequest, tried: Set<string>, signal: AbortSignal | undefined, routingTimeoutMs: number): Promise<Route> {
    const { registry, metrics } = this.#o;
    const started = performance.now();
    let deadline = started + routingTimeoutMs;
    let allTried = false;
    for (;;) {
      const route = registry.pick(request.agentId, request.upstream, tried);
      if (route) {
        metrics.routingDuration.record((performance.now() - started) / 1000);
        return route;
      }
      if (signal?.aborted) throw signal.reason;
      if (tried.size > 0 && registry.replicas(request.agentId).every((r) => tried.has(r.key))) {
        // Every replica this node knows has just failed this request. One that moves (its node
        // drains) is connected elsewhere a moment later: wait that long for it, not the whole
        // routing timeout, then say what happened.
        if (allTried && performance.now() >= deadline) {
          throw new KasError('bad_gateway', `the replicas of agent ${request.agentId} went away during the request; retry it`);
        }
        if (!allTried) deadline = Math.min(deadline, performance.now() + REPLACEMENT_GRACE_MS);
        allTried = true;
      }
      const left = deadline - performance.now();
      if (left <= 0) {
        if (allTried) throw new KasError('bad_gateway', `the replicas of agent ${request.agentId} went away during the request; retry it`);
        metrics.routingTimeouts.add(1);
        throw this.#noReplicaError(request, routingTimeoutMs);
      }
      // AbortSignal.timeout takes whole milliseconds only (a fraction throws RangeError).
      const timeout = AbortSignal.timeout(Math.ceil(left));
      await registry.waitForArrival(request.agentId, signal ? AbortSignal.any([signal, timeout]) : timeout).catch(() => undefined);
    }
  }

  #noReplicaError(request: AgentRequest, routingTimeoutMs: number): KasError {
    const connected = this.#o.registry.replicas(request.agentId);
    const waited = formatDuration(routingTimeoutMs);
    const message =
      connected.length === 0
        ? `agent ${request.agentId} is registered but no replica has connected in ${waited}; is agentk running and able to reach kas?`
        : `agent ${request.agentId} has ${connected.length} replica(s) connected but none offers ${request.upstream}; ` +
          `configure ${request.upstream} in its agentk config`;
    return new KasError('no_replica', message, { retryAfterSeconds: RETRY_AFTER_SECONDS });
  }

  /** Sends the request down one replica's tunnel, under its PRODUCER span, and waits until it is ready. */
  async #attemptLocal(connection: TunnelConnection, request: AgentRequest, parent: Context, signal: AbortSignal | undefined): Promise<Attempt> {
    const { node } = this.#o.registry;
    const { replica } = connection.info;
    const send = startSendSpan(parent, { ...request, replica, node });
    const tunnel = connection.open(
      {
        upstream: request.upstream,
        method: request.method,
        path: request.path,
        query: request.query,
        headers: request.headers,
        body: request.body,
        timeoutMs: request.timeoutMs,
        traceparent: send.traceparent,
        tracestate: send.tracestate,
      },
      request.streaming,
    );
    send.span.setAttribute('messaging.message.id', String(tunnel.id));
    const onAbort = () => tunnel.cancel('caller went away');
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      const head = await tunnel.ready;
      send.span.addEvent('head', { 'http.response.status_code': head.status });
      send.span.setAttribute('http.response.status_code', head.status);
      const body = tunnel.body;
      const stream: AgentStream = { status: head.status, headers: passableHeaders(head.headers), node, replica, forwarded: false, body };
      return { stream, sendSpan: send.span };
    } catch (error) {
      if (signal?.aborted) {
        endStreamSpan(send.span, { bytes: 0, chunks: 0, cancelled: 'caller went away' });
        throw signal.reason;
      }
      const failure = error as TunnelStreamError;
      endStreamSpan(send.span, { bytes: 0, chunks: 0, failure: { type: failure.code, error: failure } });
      return { retry: errorFromStream(request, failure), errorType: failure.code };
    } finally {
      signal?.removeEventListener('abort', onAbort);
    }
  }

  /** Hands the request to the node holding the replica (forward.ts traces this hop as a CLIENT span). */
  async #attemptRemote(replica: ReplicaInfo, request: AgentRequest, options: OpenOptions): Promise<Attempt> {
    const token = await signPrivateToken(this.#o.privateSecret, { sub: options.sub, agent: request.agentId, replica: replica.key });
    try {
      const outcome = await forwardToNode(replica, request, token, options.signal);
      switch (outcome.kind) {
        case 'answered': {
          const node = String(outcome.headers[NODE_HEADER] ?? replica.node);
          const replicaName = String(outcome.headers[REPLICA_HEADER] ?? replica.replica);
          const headers = passableHeaders(outcome.headers);
          return { stream: { status: outcome.status, headers, node, replica: replicaName, forwarded: true, body: outcome.body } };
        }
        case 'not_here':
          return { retry: new KasError('bad_gateway', `kas node ${replica.node} no longer holds that replica; retry the request`), errorType: 'not_here' };
        case 'broken':
          this.#o.log.info({ node: replica.node, err: outcome.message }, 'forwarded request broke before an answer; trying another replica');
          return { retry: new KasError('bad_gateway', `${outcome.message}; retry the request`), errorType: 'broken' };
      }
    } catch (error) {
      if (!(error instanceof ForwardConnectError)) throw error;
      this.#o.log.warn({ node: replica.node, err: error.message }, 'kas node unreachable; routing around it');
      this.#o.registry.suspectNode(replica.node);
      return { retry: new KasError('bad_gateway', `${error.message}; retry the request`), errorType: 'node_unreachable' };
    }
  }

  /**
   * Watches the body to its end: ends the send and routing spans, counts tunnel bytes, ends a
   * stream cleanly when the node drains, and turns a mid-body failure into a KasError.
   */
  #account(request: AgentRequest, attempt: { stream: AgentStream; sendSpan?: Span }, routingSpan: Span | undefined, deadline: Deadline): void {
    const { stream, sendSpan } = attempt;
    const { metrics, lifecycle } = this.#o;
    // The answer began in time; if its body does not end in time, it is cut.
    deadline.onExpiry((error) => stream.body.abort(error, 'the request timed out'));
    const drain = lifecycle.drainSignal;
    const onDrain = () => stream.body.cancel('kas node is shutting down');
    if (request.streaming) {
      if (drain.aborted) queueMicrotask(onDrain);
      else drain.addEventListener('abort', onDrain, { once: true });
    }
    if (request.body && !stream.forwarded) metrics.tunnelBytes.add(request.body.byteLength, { direction: 'to_agent' });
    const { firstChunkAt } = stream.body;
    if (firstChunkAt !== undefined) sendSpan?.addEvent('first byte', firstChunkAt);
    stream.body.observe({
      onFirstChunk: () => sendSpan?.addEvent('first byte'),
      onOver: (outcome: BodyOutcome, detail: unknown) => {
        deadline.clear();
        drain.removeEventListener('abort', onDrain);
        const { bytes, chunks } = stream.body;
        if (!stream.forwarded) metrics.tunnelBytes.add(bytes, { direction: 'from_agent' });
        const end: StreamEnd = { bytes, chunks, status: stream.status };
        if (outcome === 'failed') end.failure = { type: failureType(detail), error: detail };
        if (outcome === 'cancelled') end.cancelled = String(detail);
        if (sendSpan) endStreamSpan(sendSpan, end);
        if (routingSpan) {
          routingSpan.setAttributes({ 'http.response.status_code': stream.status, 'kas.response.bytes': bytes });
          if (end.failure) failSpan(routingSpan, end.failure.type, end.failure.error);
          routingSpan.end();
        }
      },
    });
  }
}

/**
 * The bound on a request that is not a stream (KAS_REQUEST_TIMEOUT, or what the forwarding node
 * asked for): its signal aborts with a 504 KasError when the time is up, or with the caller's
 * reason when the caller's signal aborts first.
 */
class Deadline {
  readonly signal: AbortSignal | undefined;
  #timer: NodeJS.Timeout | undefined;
  #onExpiry: ((error: KasError) => void) | undefined;
  #callerSignal: AbortSignal | undefined;
  #onCallerAbort: (() => void) | undefined;

  constructor(ms: number, callerSignal: AbortSignal | undefined) {
    if (ms <= 0) {
      this.signal = callerSignal;
      return;
    }
    const controller = new AbortController();
    this.signal = controller.signal;
    // Joined by hand: AbortSignal.any costs more than the rest of a small request's routing.
    if (callerSignal) {
      if (callerSignal.aborted) controller.abort(callerSignal.reason);
      this.#callerSignal = callerSignal;
      this.#onCallerAbort = () => controller.abort(callerSignal.reason);
      callerSignal.addEventListener('abort', this.#onCallerAbort, { once: true });
    }
    this.#timer = setTimeout(() => {
      const error = new KasError('timeout', `the request took longer than KAS_REQUEST_TIMEOUT (${formatDuration(ms)}); narrow the query or raise the limit`);
      controller.abort(error);
      this.#onExpiry?.(error);
    }, ms);
  }

  onExpiry(listener: (error: KasError) => void): void {
    this.#onExpiry = listener;
  }

  clear(): void {
    clearTimeout(this.#timer);
    this.#onExpiry = undefined;
    if (this.#onCallerAbort) this.#callerSignal?.removeEventListener('abort', this.#onCallerAbort);
  }
}

function failureType(error: unknown): string {
  if (error instanceof KasError) return error.code;
  if (error instanceof ForwardBrokenError) return 'forward_broken';
  return (error as TunnelStreamError | undefined)?.code ?? 'internal';
}
