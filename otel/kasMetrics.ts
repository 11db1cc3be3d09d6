import type { Counter, Histogram, Meter, ObservableGauge, UpDownCounter } from '@opentelemetry/api';
import { SECONDS_BUCKETS } from './metrics.ts';

/** kas's core instruments, named as the contract lists them (capabilities make their own). */
export interface KasMetrics {
  connectedReplicas: UpDownCounter;
  requests: Counter;
  requestDuration: Histogram;
  routingDuration: Histogram;
  routingTimeouts: Counter;
  tunnelBytes: Counter;
  ready: ObservableGauge;
}

export function createKasMetrics(meter: Meter, isReady: () => boolean): KasMetrics {
  const seconds = { advice: { explicitBucketBoundaries: SECONDS_BUCKETS } };
  const ready = meter.createObservableGauge('kas_ready', { description: '1 when this node takes traffic' });
  ready.addCallback((result) => result.observe(isReady() ? 1 : 0));
  const metrics: KasMetrics = {
    connectedReplicas: meter.createUpDownCounter('kas_connected_agent_replicas', {
      description: 'Agent replicas connected to this node',
    }),
    requests: meter.createCounter('kas_requests', { description: 'Requests for agents, by upstream and status' }),
    requestDuration: meter.createHistogram('kas_request_duration_seconds', {
      description: 'Time from request to the end of its answer',
      ...seconds,
    }),
    routingDuration: meter.createHistogram('kas_routing_duration_seconds', {
      description: 'Time to find a replica for a request',
      ...seconds,
    }),
    routingTimeouts: meter.createCounter('kas_routing_timeouts', {
      description: 'Requests that found no replica within KAS_ROUTING_TIMEOUT',
    }),
    tunnelBytes: meter.createCounter('kas_tunnel_bytes', { description: 'Bytes through agent tunnels, by direction' }),
    ready,
  };
  // Every contract series is on /metrics from the start (at 0), not only once it first moves, so
  // dashboards and alerts (rate(), absent()) work on a fresh node.
  metrics.connectedReplicas.add(0);
  metrics.routingTimeouts.add(0);
  metrics.tunnelBytes.add(0, { direction: 'to_agent' });
  metrics.tunnelBytes.add(0, { direction: 'from_agent' });
  return metrics;
}
