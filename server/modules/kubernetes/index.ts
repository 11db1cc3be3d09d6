// The server half of the Kubernetes capability: `/api/v1/agents/{id}/kubernetes` is a Kubernetes
// API server URL for kubectl and client libraries. Reads only (discovery, get, list, watch, logs);
// identical watches share one upstream watch per node (sharedWatch.ts).
import type { Logger } from 'pino';
import { FanOutHub, type Budget } from '../../fanout/hub.ts';
import { KasError } from '../../routing/errors.ts';
import type { AgentRequest } from '../../routing/request.ts';
import type { Agents, CapabilityRequest, Reply, ServerCapability } from '../capability.ts';
import { checkKubernetesRequest } from './allowList.ts';
import { serveSharedWatch, shareableWatch, type WatchHead } from './sharedWatch.ts';
import { kubernetesStatus } from './status.ts';
import { takeLog, takeTable } from './ui.ts';

export function kubernetesCapability(deps: { agents: Agents; log: Logger; budget: Budget }): ServerCapability & { readonly watches: FanOutHub<WatchHead, Buffer> } {
  const watches = new FanOutHub<WatchHead, Buffer>(deps.log.child({ component: 'shared-watches' }), deps.budget);

  async function check(request: CapabilityRequest): Promise<AgentRequest> {
    const checked = checkKubernetesRequest(request);
    return {
      agentId: request.agentId,
      upstream: 'kubernetes',
      ...checked,
      query: request.query,
      body: undefined,
      timeoutMs: checked.streaming ? 0 : request.requestTimeoutMs,
    };
  }

  return {
    name: 'kubernetes',
    watches,
    check,
    async serve(request: CapabilityRequest, reply: Reply) {
      const agentRequest = await check(request);
      if (agentRequest.streaming) request.holdStream?.();
      const shareable = shareableWatch(agentRequest);
      if (shareable) return serveSharedWatch(watches, deps.agents, shareable, request.sub, reply);
      const stream = await deps.agents.open(agentRequest, { sub: request.sub, signal: reply.signal });
      await reply.pass(stream, agentRequest.streaming);
    },
    errorBody: kubernetesStatus,
    uiKinds: ['kubernetes', 'logs'],
    async subscribe(subscription, ui) {
      const uiDeps = { agents: deps.agents, watches };
      if (subscription.kind === 'kubernetes') return takeTable(uiDeps, subscription, ui);
      if (subscription.kind === 'logs') return takeLog(uiDeps, subscription, ui);
      throw new KasError('not_found', `the kubernetes capability serves no "${subscription.kind}" subscriptions`);
    },
  };
}
