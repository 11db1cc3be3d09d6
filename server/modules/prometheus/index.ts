// The server half of the Prometheus capability: `/api/v1/agents/{id}/prometheus` is a Prometheus
// base URL for any Prometheus HTTP API client; its read-only query APIs pass to the agent's
// Prometheus, byte for byte. `…/prometheus/live` is a live graph (live/).
import { KasError } from '../../routing/errors.ts';
import type { AgentRequest } from '../../routing/request.ts';
import type { CapabilityRequest, Reply, ServerCapability } from '../capability.ts';
import type { CapabilityDeps } from '../index.ts';
import { checkPrometheusRequest } from './allowList.ts';
import { prometheusErrorBody } from './envelope.ts';
import { LiveGraphs } from './live/index.ts';

export function prometheusCapability(deps: CapabilityDeps): ServerCapability & { readonly live: LiveGraphs } {
  const live = new LiveGraphs({
    agents: deps.agents,
    coordination: deps.coordination,
    peers: deps.peers,
    node: deps.node,
    nodeUrl: deps.nodeUrl,
    delayMs: deps.settings.liveDelayMs,
    maxSeries: deps.settings.liveMaxSeries,
    maxSubscriptions: deps.settings.liveMaxSubscriptions,
    drainSignal: deps.drainSignal,
    log: deps.log,
    meter: deps.meter,
    budget: deps.budget,
  });

  async function check(request: CapabilityRequest): Promise<AgentRequest> {
    const checked = checkPrometheusRequest(request);
    return {
      agentId: request.agentId,
      upstream: 'prometheus',
      ...checked,
      query: request.query,
      body: await request.readBody(),
      streaming: false,
      timeoutMs: request.requestTimeoutMs,
    };
  }
  return {
    name: 'prometheus',
    live,
    check,
    async serve(request, reply: Reply) {
      if (request.rawPath === '/live') return live.serveSse(request, reply);
      const agentRequest = await check(request);
      const stream = await deps.agents.open(agentRequest, { sub: request.sub, signal: reply.signal });
      await reply.pass(stream, false);
    },
    errorBody: prometheusErrorBody,
    uiKinds: ['live'],
    async subscribe(subscription, ui) {
      if (subscription.kind !== 'live') throw new KasError('not_found', `the prometheus capability serves no "${subscription.kind}" subscriptions`);
      return live.subscribe(subscription, ui);
    },
    servePeer: (_agentId, rawPath, query, reply) => live.servePeer(rawPath, query, reply),
  };
}
