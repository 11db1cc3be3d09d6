// The capabilities agentk offers, one line each (their server halves are listed in
// server/modules/index.ts). Each turns the cluster owner's agent.yaml into the executor of its
// requests, or leaves the capability off when the config does not ask for it.
import type { Logger } from 'pino';
import type { Upstream } from '../../protocol/messages.ts';
import type { UpstreamExecutor } from '../tunnel/serveRequest.ts';
import type { AgentFileConfig } from './fileSchema.ts';
import { kubernetesExecutor } from './kubernetes/agent.ts';
import { prometheusExecutor } from './prometheus/agent.ts';

export type { AgentFileConfig } from './fileSchema.ts';

export interface AgentCapabilitySetup {
  file: AgentFileConfig;
  env: Record<string, string | undefined>;
  watchKeepaliveMs: number;
  /** Where the in-cluster service account lives (AGENTK_IN_CLUSTER_ROOT; `/` in a pod). */
  inClusterRoot: string | undefined;
  log: Logger;
}

/** Returns the capability's executor, or undefined when it is off; throws when its config cannot work. */
export type AgentCapability = (setup: AgentCapabilitySetup) => Promise<UpstreamExecutor | undefined>;

const CAPABILITIES: Record<Upstream, AgentCapability> = {
  prometheus: prometheusExecutor,
  kubernetes: kubernetesExecutor,
};

export class CapabilitySetupError extends Error {
  override name = 'CapabilitySetupError';
}

export async function createExecutors(setup: AgentCapabilitySetup): Promise<Partial<Record<Upstream, UpstreamExecutor>>> {
  const executors: Partial<Record<Upstream, UpstreamExecutor>> = {};
  for (const [name, create] of Object.entries(CAPABILITIES) as [Upstream, AgentCapability][]) {
    let executor: UpstreamExecutor | undefined;
    try {
      executor = await create(setup);
    } catch (error) {
      throw new CapabilitySetupError(`cannot set up ${name}: ${(error as Error).message}`);
    }
    if (executor) executors[name] = executor;
  }
  return executors;
}
