// One metrics stack for both programs: OpenTelemetry instruments read out in Prometheus text
// format by the exporter, served on each program's observability port.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Meter } from '@opentelemetry/api';
import { PrometheusExporter } from '@opentelemetry/exporter-prometheus';
import { MeterProvider } from '@opentelemetry/sdk-metrics';

/** Latency buckets from 1 ms to 16 s, doubling. */
export const SECONDS_BUCKETS = Array.from({ length: 15 }, (_, i) => 0.001 * 2 ** i);

export interface MetricsStack {
  meter: Meter;
  serve(req: IncomingMessage, res: ServerResponse): void;
  shutdown(): Promise<void>;
}

export function createMetrics(serviceName: string): MetricsStack {
  const exporter = new PrometheusExporter({ preventServerStart: true, withoutScopeInfo: true });
  const provider = new MeterProvider({ readers: [exporter] });
  return {
    meter: provider.getMeter(serviceName),
    serve: (req, res) => exporter.getMetricsRequestHandler(req, res),
    shutdown: () => provider.shutdown(),
  };
}
