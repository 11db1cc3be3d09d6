// The server half of the Prometheus capability: `/api/v1/agents/{id}/prometheus` is a Prometheus
// base URL for any Prometheus HTTP API client; its read-only query APIs pass to the agent's
// Prometheus, byte for byte.
import type { Agents, CapabilityRequest, Reply, ServerCapability } from '../capability.ts';
import type { AgentRequest } from '../../routing/request.ts';
import { checkPrometheusRequest } from './allowList.ts';
import { prometheusErrorBody } from './envelope.ts';

export function prometheusCapability(deps: { agents: Agents }): ServerCapability {
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
    check,
    async serve(request, reply: Reply) {
      const agentRequest = await check(request);
      const stream = await deps.agents.open(agentRequest, { sub: request.sub, signal: reply.signal });
      await reply.pass(stream, false);
    },
    errorBody: prometheusErrorBody,
  };
}
