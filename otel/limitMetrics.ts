import type { Counter, Meter } from '@opentelemetry/api';

/** Why kas refused something because a limit was reached: the `limit` label of kas_limit_refusals_total. */
export type LimitName =
  | 'header_timeout'
  | 'body_timeout'
  | 'header_bytes'
  | 'body_bytes'
  | 'agent_inflight'
  | 'watches_per_token'
  | 'agent_connect_rate'
  | 'agent_connect_rate_per_agent';

const LIMITS: readonly LimitName[] = [
  'header_timeout',
  'body_timeout',
  'header_bytes',
  'body_bytes',
  'agent_inflight',
  'watches_per_token',
  'agent_connect_rate',
  'agent_connect_rate_per_agent',
];

/** What an agent sent that kas dropped: the `kind` label of kas_agent_messages_dropped_total. */
export type DroppedKind = 'malformed' | 'malformed_batch' | 'unknown_request' | 'late' | 'protocol_violation';
const DROPPED: readonly DroppedKind[] = ['malformed', 'malformed_batch', 'unknown_request', 'late', 'protocol_violation'];

/** Why an agent's connection was turned away (limits aside): `reason` of kas_agent_connections_refused_total. */
export type ConnectionRefusal = 'unauthorized' | 'unsupported_protocol' | 'draining' | 'rate_limited';
const REFUSALS: readonly ConnectionRefusal[] = ['unauthorized', 'unsupported_protocol', 'draining', 'rate_limited'];

/**
 * kas's counters of hostile or excessive input. Labels are bounded sets (never an agent id, a
 * token or a path), so a flood cannot grow /metrics; the log lines name who it was.
 */
export interface LimitMetrics {
  /** Requests and connections refused because a limit was reached, by `limit`. */
  refusals: Counter<{ limit: LimitName }>;
  /** Messages from agents that kas dropped, by `kind`. */
  agentMessagesDropped: Counter<{ kind: DroppedKind }>;
  /** Agent connections turned away at the handshake, by `reason`. */
  agentConnectionsRefused: Counter<{ reason: ConnectionRefusal }>;
  /** Requests that were not HTTP kas could read (Node's parser code: HPE_…), answered 400 and closed. */
  malformedRequests: Counter<{ code: string }>;
}

export function createLimitMetrics(meter: Meter): LimitMetrics {
  const metrics: LimitMetrics = {
    refusals: meter.createCounter('kas_limit_refusals', { description: 'Requests and agent connections refused because a limit was reached, by limit' }),
    agentMessagesDropped: meter.createCounter('kas_agent_messages_dropped', {
      description: 'Messages from agents that kas dropped: malformed, for requests never sent or already over, or breaking the protocol',
    }),
    agentConnectionsRefused: meter.createCounter('kas_agent_connections_refused', { description: 'Agent connections turned away at the handshake, by reason' }),
    malformedRequests: meter.createCounter('kas_http_malformed_requests', { description: 'Requests that were not valid HTTP/1.1, answered 400 and closed, by parser code' }),
  };
  // Every series on /metrics from the start, so rate() and alerts work on a fresh node.
  for (const limit of LIMITS) metrics.refusals.add(0, { limit });
  for (const kind of DROPPED) metrics.agentMessagesDropped.add(0, { kind });
  for (const reason of REFUSALS) metrics.agentConnectionsRefused.add(0, { reason });
  return metrics;
}
