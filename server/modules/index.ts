// The capabilities kas offers, one line each. A new capability is a folder here (its server
// half), one under agent/modules/ (its agent half), what both share in protocol/, and a line in
// this list and in agent/modules/index.ts.
import type { Meter } from '@opentelemetry/api';
import type { Logger } from 'pino';
import type { Budget } from '../fanout/hub.ts';
import type { Coordination } from '../routing/coordination.ts';
import type { Peers } from '../routing/peers.ts';
import type { Agents, ServerCapability } from './capability.ts';
import { kubernetesCapability } from './kubernetes/index.ts';
import { prometheusCapability } from './prometheus/index.ts';

export interface CapabilityDeps {
  agents: Agents;
  log: Logger;
  meter: Meter;
  /** The node's replay budget, shared by every capability's shared streams. */
  budget: Budget;
  /** Redis coordination and kas-to-kas reads, in a cluster; undefined on a single node. */
  coordination: Coordination | undefined;
  peers: Peers | undefined;
  node: string;
  nodeUrl: string;
  drainSignal: AbortSignal;
  settings: { liveDelayMs: number; liveMaxSeries: number; liveMaxSubscriptions: number };
}

export function createCapabilities(deps: CapabilityDeps): Map<string, ServerCapability> {
  const capabilities = [prometheusCapability(deps), kubernetesCapability(deps)];
  return new Map(capabilities.map((capability) => [capability.name, capability]));
}
