// routeToAgent: the one handle capability modules get. Given a checked request for agent N, it
// finds a live replica (here, or on another node), waits for one when none is connected, sends
// the request and streams the answer to the caller. Modules never see nodes or replicas.
import type { Request, Response } from 'express';
import type { Logger } from 'pino';
import { formatDuration } from '../../protocol/durations.ts';
import type { AgentTokenStore } from '../auth/agentTokens.ts';
import { signPrivateToken } from '../auth/tokens.ts';
import { KasError } from '../http/errors.ts';
import type { TraceContext } from '../http/traceContext.ts';
import type { KasMetrics } from '../observability/metrics.ts';
import type { AgentConnection, TunnelStreamError } from '../tunnel/agentConnection.ts';
import { streamToResponse } from '../tunnel/toResponse.ts';
import { ForwardConnectError, forwardToNode, NOT_HERE_HEADER } from './forward.ts';
import type { AgentRegistry, Route } from './registry.ts';
import type { AgentRequestSpec } from './spec.ts';

const MAX_ATTEMPTS = 4;
const RETRY_AFTER_SECONDS = 5;

export interface RouterOptions {
  registry: AgentRegistry;
  tokens: AgentTokenStore;
  privateSecret: Uint8Array;
  routingTimeoutMs: number;
  log: Logger;
  metrics: KasMetrics;
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

export class AgentRouter {
  #o: RouterOptions;

  constructor(options: RouterOptions) {
    this.#o = options;
  }

  /** Serves a request that arrived on the API port: locally when possible, else via another node. */
  async serve(req: Request, res: Response, spec: AgentRequestSpec, sub: string, trace: TraceContext): Promise<void> {
    const { registry, tokens } = this.#o;
    if (!tokens.isRegistered(spec.agentId)) {
      throw new KasError('not_found', `agent ${spec.agentId} is not registered; register it with "kas agent register ${spec.agentId}"`);
    }
    const callerGone = abortOnClose(res);
    const tried = new Set<string>();
    let lastFailure: KasError | undefined;
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const route = await this.#waitForRoute(spec, tried, callerGone);
      if (!route) return; // the caller left while waiting
      if (route.kind === 'local') {
        const failure = await this.#serveLocal(route.connection, spec, res, trace);
        if (!failure) return;
        tried.add(route.connection.info.key);
        lastFailure = errorFromStream(spec, failure);
        if (failure.code !== 'replica_gone') throw lastFailure;
        continue;
      }
      const { replica } = route;
      try {
        const token = await signPrivateToken(this.#o.privateSecret, { sub, agent: spec.agentId, replica: replica.key });
        const outcome = await forwardToNode(replica, spec, token, trace.childTraceparent(), req, res);
        if (outcome.kind === 'answered') return;
        tried.add(replica.key);
      } catch (error) {
        if (!(error instanceof ForwardConnectError)) throw error;
        this.#o.log.warn({ node: replica.node, err: error.message }, 'kas node unreachable; routing around it');
        registry.suspectNode(replica.node);
        tried.add(replica.key);
        lastFailure = new KasError('bad_gateway', `${error.message}; retry the request`);
      }
    }
    throw lastFailure ?? new KasError('bad_gateway', `no replica of agent ${spec.agentId} could take the request; retry it`);
  }

  /** Serves a request another node forwarded here: only from this node's own replicas. */
  async serveLocally(res: Response, spec: AgentRequestSpec, replicaKey: string | undefined, trace: TraceContext): Promise<void> {
    const { registry } = this.#o;
    const tried = new Set<string>();
    let connection = registry.localConnection(spec.agentId, replicaKey);
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      if (!connection?.isOpen) {
        const route = registry.pick(spec.agentId, spec.upstream, tried);
        connection = route?.kind === 'local' ? route.connection : undefined;
      }
      if (!connection) break;
      const failure = await this.#serveLocal(connection, spec, res, trace);
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
      const waited = AbortSignal.any([callerGone, AbortSignal.timeout(left)]);
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

  /** Returns the failure when the stream failed before anything was written, else undefined. */
  async #serveLocal(
    connection: AgentConnection,
    spec: AgentRequestSpec,
    res: Response,
    trace: TraceContext,
  ): Promise<TunnelStreamError | undefined> {
    const stream = connection.open({
      upstream: spec.upstream,
      method: spec.method,
      path: spec.path,
      query: spec.query,
      headers: spec.headers,
      body: spec.body,
      timeoutMs: spec.timeoutMs,
      traceparent: trace.childTraceparent(),
    });
    const headers = {
      'X-Kas-Node': this.#o.registry.node,
      'X-Kas-Agent-Replica': connection.info.replica,
    };
    const outcome = await streamToResponse(stream, res, headers, { flushEachChunk: spec.streaming });
    this.#o.metrics.tunnelBytes.add(outcome.bytes, { direction: 'from_agent' });
    if (spec.body) this.#o.metrics.tunnelBytes.add(spec.body.byteLength, { direction: 'to_agent' });
    return outcome.failedBeforeHead;
  }
}

function abortOnClose(res: Response): AbortSignal {
  const controller = new AbortController();
  res.once('close', () => controller.abort(new Error('caller went away')));
  return controller.signal;
}
