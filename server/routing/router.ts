// routeToAgent: the one handle capability modules get. Given a checked request for agent N, it
// finds a live replica (here, or on another node), waits for one when none is connected, sends
// the request and streams the answer to the caller. Modules never see nodes or replicas.
import { context, propagation, type Span, SpanKind, trace } from '@opentelemetry/api';
import type { Request, Response } from 'express';
import type { Logger } from 'pino';
import { failSpan } from '../../otel/tracing.ts';
import { formatDuration } from '../../protocol/durations.ts';
import type { AgentTokenStore } from '../auth/agentTokens.ts';
import { signPrivateToken } from '../auth/tokens.ts';
import { KasError } from '../http/errors.ts';
import type { KasMetrics } from '../observability/metrics.ts';
import type { AgentConnection, TunnelStreamError } from '../tunnel/agentConnection.ts';
import { streamToResponse } from '../tunnel/toResponse.ts';
import { ForwardConnectError, forwardToNode, NOT_HERE_HEADER } from './forward.ts';
import type { AgentRegistry, Route } from './registry.ts';
import { type ShareableWatch, SharedWatches, shareableWatch } from './sharedWatches.ts';
import type { AgentRequestSpec } from './spec.ts';

const MAX_ATTEMPTS = 4;
const tracer = trace.getTracer('kas');
const RETRY_AFTER_SECONDS = 5;

export interface RouterOptions {
  registry: AgentRegistry;
  tokens: AgentTokenStore;
  privateSecret: Uint8Array;
  routingTimeoutMs: number;
  log: Logger;
  metrics: KasMetrics;
  /** Aborted when the node drains: streams (watches, follows) then end cleanly. */
  drainSignal?: AbortSignal;
}

function errorFromStream(spec: AgentRequestSpec, error: TunnelStreamError): KasError {
  const where = `agent ${spec.agentId}`;
  switch (error.code) {
    case 'upstream_unreachable':
      return new KasError('bad_gateway', `${where} could not reach its ${spec.upstream}: ${error.message}`);
    case 'upstream_timeout':
      return new KasError('timeout', `${where}: ${spec.upstream} did not answer in time: ${error.message}`);
    case 'policy_denied':
    case 'not_supported':
      return new KasError('forbidden', `${where} refused the request: ${error.message}`);
    case 'bad_request':
      return new KasError('bad_request', `${where} could not send the request: ${error.message}`);
    case 'replica_gone':
      return new KasError('bad_gateway', `the replica of ${where} serving this request went away; retry the request`);
    case 'protocol_violation':
    case 'internal':
      return new KasError('bad_gateway', `${where} failed: ${error.message}`);
  }
}

/** What #route needs of the caller's request: whether its connection is gone. */
type CallerRequest = { readonly destroyed: boolean };

export class AgentRouter {
  #o: RouterOptions;
  #sharedWatches: SharedWatches;

  constructor(options: RouterOptions) {
    this.#o = options;
    this.#sharedWatches = new SharedWatches(options.log);
  }

  /**
   * Serves a request that arrived on the API port: locally when possible, else via another node.
   * Traced as the routing span: it lasts until the answer is delivered, and says which replica
   * (`kas.agent.replica`) on which node (`kas.node`) took the request.
   */
  async serve(req: Request, res: Response, spec: AgentRequestSpec, sub: string): Promise<void> {
    if (!this.#o.tokens.isRegistered(spec.agentId)) {
      throw new KasError('not_found', `agent ${spec.agentId} is not registered; register it with "kas agent register ${spec.agentId}"`);
    }
    const shareable = shareableWatch(spec);
    await inRouteSpan(`route ${spec.upstream}`, spec, (span) =>
      shareable ? this.#serveShared(res, shareable, sub, span) : this.#route(req, res, spec, sub, span),
    );
  }

  /**
   * A watch that identical watches may share (see sharedWatches.ts): this caller's routing span
   * says whether it joined one (`kas.watch.shared`) and how many viewers that one has; the shared
   * upstream request is routed under a span of its own, which lives as long as the upstream watch.
   */
  async #serveShared(res: Response, watch: ShareableWatch, sub: string, span: Span): Promise<void> {
    await this.#sharedWatches.serve(
      res,
      watch,
      (fanOut, upstreamSpec) =>
        inRouteSpan('route kubernetes shared watch', upstreamSpec, (upstreamSpan) =>
          this.#route(fanOut as unknown as CallerRequest, fanOut, upstreamSpec, sub, upstreamSpan),
        ),
      {
        joined: (joined, viewers) => span.setAttributes({ 'kas.watch.shared': joined, 'kas.watch.viewers': viewers }),
        answered: (node, replica) => span.setAttributes({ 'kas.agent.replica': replica, 'kas.node': node }),
      },
    );
  }

  async #route(req: CallerRequest, res: Response, spec: AgentRequestSpec, sub: string, span: Span): Promise<void> {
    const { registry } = this.#o;
    const callerGone = abortOnClose(res);
    const tried = new Set<string>();
    let lastFailure: KasError | undefined;
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const waitStarted = performance.now();
      const route = await this.#waitForRoute(spec, tried, callerGone);
      if (!route) {
        span.addEvent('caller went away while waiting for a replica');
        return;
      }
      const chosen = route.kind === 'local' ? route.connection.info : route.replica;
      span.setAttributes({ 'kas.agent.replica': chosen.replica, 'kas.node': chosen.node, 'kas.forwarded': route.kind === 'remote' });
      span.addEvent('replica chosen', {
        'kas.agent.replica': chosen.replica,
        'kas.node': chosen.node,
        'kas.routing.wait_ms': Math.round(performance.now() - waitStarted),
        attempt: attempt + 1,
      });
      if (route.kind === 'local') {
        const failure = await this.#serveLocal(route.connection, spec, res);
        if (!failure) return;
        span.addEvent('attempt failed', { 'error.type': failure.code, attempt: attempt + 1 });
        tried.add(route.connection.info.key);
        lastFailure = errorFromStream(spec, failure);
        if (failure.code !== 'replica_gone') throw lastFailure;
        continue;
      }
      const { replica } = route;
      try {
        const token = await signPrivateToken(this.#o.privateSecret, { sub, agent: spec.agentId, replica: replica.key });
        const endSignal = spec.streaming ? this.#o.drainSignal : undefined;
        // The http instrumentation makes this call the kas-to-kas client span and puts its
        // traceparent on the request.
        const served = noteServed(res, replica.node, replica.replica);
        const outcome = await forwardToNode(replica, spec, token, req, res, endSignal, served);
        if (outcome.kind === 'answered') {
          span.setAttributes({ 'http.response.status_code': outcome.status, 'kas.response.bytes': outcome.bytes });
          return;
        }
        span.addEvent('attempt failed', { 'error.type': outcome.kind, attempt: attempt + 1 });
        if (outcome.kind === 'broken') {
          this.#o.log.info({ node: replica.node, err: outcome.message }, 'forwarded request broke before an answer; trying another replica');
          lastFailure = new KasError('bad_gateway', `${outcome.message}; retry the request`);
        }
        tried.add(replica.key);
      } catch (error) {
        if (!(error instanceof ForwardConnectError)) throw error;
        this.#o.log.warn({ node: replica.node, err: error.message }, 'kas node unreachable; routing around it');
        span.addEvent('attempt failed', { 'error.type': 'node_unreachable', attempt: attempt + 1 });
        registry.suspectNode(replica.node);
        tried.add(replica.key);
        lastFailure = new KasError('bad_gateway', `${error.message}; retry the request`);
      }
    }
    throw lastFailure ?? new KasError('bad_gateway', `no replica of agent ${spec.agentId} could take the request; retry it`);
  }

  /** Serves a request another node forwarded here: only from this node's own replicas. */
  async serveLocally(res: Response, spec: AgentRequestSpec, replicaKey: string | undefined): Promise<void> {
    const { registry } = this.#o;
    const tried = new Set<string>();
    let connection = registry.localConnection(spec.agentId, replicaKey);
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      if (!connection?.isOpen) {
        const route = registry.pick(spec.agentId, spec.upstream, tried);
        connection = route?.kind === 'local' ? route.connection : undefined;
      }
      if (!connection) break;
      const failure = await this.#serveLocal(connection, spec, res);
      if (!failure) return;
      if (failure.code !== 'replica_gone') throw errorFromStream(spec, failure);
      tried.add(connection.info.key);
      connection = undefined;
    }
    // Nothing has been written: the sending node may try a replica elsewhere.
    res.setHeader(NOT_HERE_HEADER, '1');
    throw new KasError('no_replica', `kas node ${registry.node} holds no replica of agent ${spec.agentId}`);
  }

  async #waitForRoute(spec: AgentRequestSpec, tried: Set<string>, callerGone: AbortSignal): Promise<Route | undefined> {
    const { registry, routingTimeoutMs, metrics } = this.#o;
    const started = performance.now();
    const deadline = started + routingTimeoutMs;
    for (;;) {
      const route = registry.pick(spec.agentId, spec.upstream, tried);
      if (route) {
        metrics.routingDuration.record((performance.now() - started) / 1000);
        return route;
      }
      if (callerGone.aborted) return undefined;
      if (tried.size > 0 && registry.replicas(spec.agentId).every((r) => tried.has(r.key))) {
        // Every replica we know has just failed this request: report that rather than wait.
        throw new KasError('bad_gateway', `the replicas of agent ${spec.agentId} went away during the request; retry it`);
      }
      const left = deadline - performance.now();
      if (left <= 0) {
        metrics.routingTimeouts.add(1);
        throw this.#noReplicaError(spec);
      }
      // AbortSignal.timeout takes whole milliseconds only (a fraction throws RangeError).
      const waited = AbortSignal.any([callerGone, AbortSignal.timeout(Math.ceil(left))]);
      await registry.waitForArrival(spec.agentId, waited).catch(() => undefined);
    }
  }

  #noReplicaError(spec: AgentRequestSpec): KasError {
    const connected = this.#o.registry.replicas(spec.agentId);
    const waited = formatDuration(this.#o.routingTimeoutMs);
    const message =
      connected.length === 0
        ? `agent ${spec.agentId} is registered but no replica has connected in ${waited}; is agentk running and able to reach kas?`
        : `agent ${spec.agentId} has ${connected.length} replica(s) connected but none offers ${spec.upstream}; ` +
          `configure ${spec.upstream} in its agentk config`;
    return new KasError('no_replica', message, { retryAfterSeconds: RETRY_AFTER_SECONDS });
  }

  /**
   * Sends the request down one replica's tunnel and streams the answer to the caller. Traced as
   * the PRODUCER span whose context travels in the tunnel request (agentk's CONSUMER span is its
   * child); it ends with the stream, counting bytes and chunks, with the first byte as an event.
   * Returns the failure when the stream failed before anything was written, else undefined.
   */
  async #serveLocal(connection: AgentConnection, spec: AgentRequestSpec, res: Response): Promise<TunnelStreamError | undefined> {
    const node = this.#o.registry.node;
    const span = tracer.startSpan(`send ${spec.upstream}`, {
      kind: SpanKind.PRODUCER,
      attributes: {
        'messaging.system': 'socket.io',
        'messaging.operation.type': 'send',
        'messaging.destination.name': `agent:${spec.agentId}`,
        'kas.agent.id': spec.agentId,
        'kas.agent.replica': connection.info.replica,
        'kas.node': node,
        'kas.upstream': spec.upstream,
        'http.request.method': spec.method,
        'url.path': spec.path,
      },
    });
    const carrier: { traceparent?: string; tracestate?: string } = {};
    propagation.inject(trace.setSpan(context.active(), span), carrier);
    const stream = connection.open({
      upstream: spec.upstream,
      method: spec.method,
      path: spec.path,
      query: spec.query,
      headers: spec.headers,
      body: spec.body,
      timeoutMs: spec.timeoutMs,
      traceparent: carrier.traceparent,
      tracestate: carrier.tracestate,
    });
    span.setAttribute('messaging.message.id', String(stream.id));
    let chunks = 0;
    let streamError: TunnelStreamError | undefined;
    const served = noteServed(res, node, connection.info.replica);
    stream.on('head', (status) => span.addEvent('head', { 'http.response.status_code': status }));
    stream.once('data', () => span.addEvent('first byte'));
    stream.on('data', (chunk) => {
      chunks++;
      served.bytes += chunk.byteLength;
    });
    stream.on('error', (error) => (streamError = error));
    const headers = {
      'X-Kas-Node': node,
      'X-Kas-Agent-Replica': connection.info.replica,
    };
    const outcome = await streamToResponse(stream, res, headers, {
      flushEachChunk: spec.streaming,
      endSignal: spec.streaming ? this.#o.drainSignal : undefined,
    });
    this.#o.metrics.tunnelBytes.add(outcome.bytes, { direction: 'from_agent' });
    if (spec.body) this.#o.metrics.tunnelBytes.add(spec.body.byteLength, { direction: 'to_agent' });
    span.setAttributes({ 'kas.stream.bytes': outcome.bytes, 'kas.stream.chunks': chunks });
    if (outcome.status !== undefined) span.setAttribute('http.response.status_code', outcome.status);
    if (streamError) failSpan(span, streamError.code, streamError);
    else if (!res.writableEnded) span.addEvent('caller went away');
    span.end();
    return outcome.failedBeforeHead;
  }
}

/** Runs `fn` under a routing span that ends with it and records its failure, if any. */
function inRouteSpan(name: string, spec: AgentRequestSpec, fn: (span: Span) => Promise<void>): Promise<void> {
  const attributes = { 'kas.agent.id': spec.agentId, 'kas.upstream': spec.upstream };
  return tracer.startActiveSpan(name, { attributes }, async (span) => {
    try {
      await fn(span);
    } catch (error) {
      failSpan(span, error instanceof KasError ? error.code : 'internal', error);
      throw error;
    } finally {
      span.end();
    }
  });
}

/** Who is answering, and the bytes so far: the API app's log line reads it when the response closes. */
function noteServed(res: Response, node: string, replica: string): { bytes: number } {
  const served = { bytes: 0, node, replica };
  res.locals.served = served;
  return served;
}

function abortOnClose(res: Response): AbortSignal {
  const controller = new AbortController();
  // Only a caller that left before the answer was complete aborts anything (and an Error with its
  // stack trace is made only then: this runs for every request).
  res.once('close', () => {
    if (!res.writableFinished) controller.abort(new Error('caller went away'));
  });
  return controller.signal;
}
