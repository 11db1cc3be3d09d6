// One metrics stack for both programs: OpenTelemetry instruments read out in Prometheus text
// format by the exporter, served on each program's observability port. Process metrics (memory,
// CPU, file descriptors, event loop delay) are observable instruments of the same stack, read
// only when scraped.
import { readdirSync, readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import type { Meter } from '@opentelemetry/api';
import { PrometheusExporter } from '@opentelemetry/exporter-prometheus';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { MeterProvider } from '@opentelemetry/sdk-metrics';
import { ATTR_SERVICE_INSTANCE_ID, ATTR_SERVICE_NAME } from '@opentelemetry/semantic-conventions';

/** Latency buckets from 1 ms to 16 s, doubling. */
export const SECONDS_BUCKETS = Array.from({ length: 15 }, (_, i) => 0.001 * 2 ** i);

export interface MetricsStack {
  meter: Meter;
  serve(req: IncomingMessage, res: ServerResponse): void;
  shutdown(): Promise<void>;
}

/** `instanceId`: the kas node or agentk replica name, shown in `target_info`. */
export function createMetrics(serviceName: string, instanceId?: string): MetricsStack {
  const exporter = new PrometheusExporter({ preventServerStart: true, withoutScopeInfo: true });
  const resource = resourceFromAttributes({
    [ATTR_SERVICE_NAME]: serviceName,
    ...(instanceId ? { [ATTR_SERVICE_INSTANCE_ID]: instanceId } : {}),
  });
  const provider = new MeterProvider({ resource, readers: [exporter] });
  const meter = provider.getMeter(serviceName);
  const stopProcessMetrics = registerProcessMetrics(meter);
  return {
    meter,
    serve: (req, res) => exporter.getMetricsRequestHandler(req, res),
    shutdown: () => {
      stopProcessMetrics();
      return provider.shutdown();
    },
  };
}

function maxFds(): number | undefined {
  try {
    const limit = /^Max open files\s+(\d+)/m.exec(readFileSync('/proc/self/limits', 'utf8'))?.[1];
    return limit === undefined ? undefined : Number(limit);
  } catch {
    return undefined;
  }
}

function openFds(): number | undefined {
  try {
    return readdirSync('/proc/self/fd').length;
  } catch {
    return undefined; // not Linux
  }
}

/** The usual `process_*` and `nodejs_*` series, so stock dashboards and alerts work. */
export function registerProcessMetrics(meter: Meter): () => void {
  const startSeconds = Math.round((Date.now() - performance.now()) / 1000);
  meter
    .createObservableCounter('process_cpu_seconds', { description: 'User and system CPU time spent, in seconds' })
    .addCallback((r) => {
      const { user, system } = process.cpuUsage();
      r.observe((user + system) / 1e6);
    });
  meter
    .createObservableGauge('process_resident_memory_bytes', { description: 'Resident memory size in bytes' })
    .addCallback((r) => r.observe(process.memoryUsage.rss()));
  meter
    .createObservableGauge('nodejs_heap_used_bytes', { description: 'V8 heap in use, in bytes' })
    .addCallback((r) => r.observe(process.memoryUsage().heapUsed));
  meter
    .createObservableGauge('process_start_time_seconds', { description: 'Start time of the process since the Unix epoch, in seconds' })
    .addCallback((r) => r.observe(startSeconds));
  meter
    .createObservableGauge('process_open_fds', { description: 'Open file descriptors' })
    .addCallback((r) => {
      const open = openFds();
      if (open !== undefined) r.observe(open);
    });
  const limit = maxFds();
  if (limit !== undefined) {
    meter.createObservableGauge('process_max_fds', { description: 'Limit on open file descriptors' }).addCallback((r) => r.observe(limit));
  }
  // Sampled natively every 10 ms; each scrape reads the window since the last one. The sampler's
  // own 10 ms interval is part of every sample, so it is taken off: an idle loop reads 0.
  const resolutionNs = 10e6;
  const delay = monitorEventLoopDelay({ resolution: resolutionNs / 1e6 });
  delay.enable();
  const lagSeconds = (ns: number) => Math.max(0, ns - resolutionNs) / 1e9;
  const window = { mean: 0, p99: 0, max: 0 };
  const readWindow = () => {
    if (delay.count === 0) return;
    window.mean = lagSeconds(delay.mean);
    window.p99 = lagSeconds(delay.percentile(99));
    window.max = lagSeconds(delay.max);
    delay.reset();
  };
  const mean = meter.createObservableGauge('nodejs_eventloop_lag_seconds', { description: 'Mean event loop delay since the last scrape' });
  const p99 = meter.createObservableGauge('nodejs_eventloop_lag_p99_seconds', { description: '99th percentile of event loop delay since the last scrape' });
  const max = meter.createObservableGauge('nodejs_eventloop_lag_max_seconds', { description: 'Longest event loop delay since the last scrape' });
  meter.addBatchObservableCallback(
    (r) => {
      readWindow();
      r.observe(mean, window.mean);
      r.observe(p99, window.p99);
      r.observe(max, window.max);
    },
    [mean, p99, max],
  );
  return () => delay.disable();
}
