import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './ports.ts';
import { Proc } from './procs.ts';
import { requireTool } from './tools.ts';

export interface PrometheusOptions {
  /** host:port targets scraped under job "targets" (instance label tells them apart). */
  scrapeTargets?: string[];
  /** Extra jobs by name, for tests that want to tell targets apart by job. */
  jobs?: Record<string, string[]>;
  scrapeIntervalSeconds?: number;
  /** Prometheus logs every query it evaluates to this file (one JSON line each), for tests that count them. */
  queryLogFile?: string;
}

export interface PrometheusServer {
  url: string;
  port: number;
  proc: Proc;
  stop(): Promise<void>;
}

/** A real Prometheus on a free loopback port, with at least one sample of `up` stored. */
export async function startPrometheus(options: PrometheusOptions = {}): Promise<PrometheusServer> {
  const binary = await requireTool('prometheus');
  const dir = await mkdtemp(join(tmpdir(), 'kas-prometheus-'));
  try {
    // Another process can take the free port before prometheus binds it; a fresh port fixes that.
    for (let attempt = 1; ; attempt++) {
      const port = await freePort();
      const configFile = join(dir, 'prometheus.yml');
      await writeFile(configFile, JSON.stringify(config(port, options), null, 2));
      const proc = Proc.start('prometheus', binary, [
        `--config.file=${configFile}`,
        `--storage.tsdb.path=${join(dir, 'data')}`,
        `--web.listen-address=127.0.0.1:${port}`,
      ]);
      const url = `http://127.0.0.1:${port}`;
      try {
        await proc.waitFor(async () => (await fetch(`${url}/-/ready`, { signal: AbortSignal.timeout(1_000) })).ok, {
          timeoutMs: 30_000,
          intervalMs: 100,
          what: `prometheus on port ${port} to be ready`,
        });
      } catch (err) {
        await proc.kill();
        if (attempt < 3 && /address already in use/i.test(proc.output())) continue;
        throw err;
      }
      try {
        // Tests query right away; the first scrape lands up to one interval after startup.
        await proc.waitFor(() => hasSelfSample(url), { timeoutMs: 30_000, intervalMs: 200, what: 'a sample of up{job="prometheus"}' });
      } catch (err) {
        await proc.kill();
        throw err;
      }
      return {
        url,
        port,
        proc,
        async stop() {
          await proc.stop('SIGTERM', 5_000);
          await rm(dir, { recursive: true, force: true });
        },
      };
    }
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}

// JSON is valid YAML, so no YAML writer is needed.
function config(port: number, { scrapeTargets = [], jobs = {}, scrapeIntervalSeconds = 1, queryLogFile }: PrometheusOptions): object {
  const interval = `${Math.round(scrapeIntervalSeconds * 1000)}ms`;
  const job = (name: string, targets: string[]) => ({ job_name: name, static_configs: [{ targets }] });
  const scrapeConfigs = [job('prometheus', [`127.0.0.1:${port}`])];
  if (scrapeTargets.length > 0) scrapeConfigs.push(job('targets', scrapeTargets));
  for (const [name, targets] of Object.entries(jobs)) scrapeConfigs.push(job(name, targets));
  return {
    // The default scrape_timeout (10s) is longer than short intervals, which Prometheus rejects.
    global: {
      scrape_interval: interval,
      scrape_timeout: interval,
      evaluation_interval: interval,
      ...(queryLogFile ? { query_log_file: queryLogFile } : {}),
    },
    scrape_configs: scrapeConfigs,
  };
}

async function hasSelfSample(url: string): Promise<boolean> {
  const query = encodeURIComponent('up{job="prometheus"}');
  const res = await fetch(`${url}/api/v1/query?query=${query}`, { signal: AbortSignal.timeout(2_000) });
  const body = (await res.json()) as { status?: string; data?: { result?: unknown[] } };
  return body.status === 'success' && (body.data?.result?.length ?? 0) > 0;
}
