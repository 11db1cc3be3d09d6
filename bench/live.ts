// `npm run bench:live`: live graphs at scale, against the simplest thing a user could do instead
// (every viewer polling query_range through a plain reverse proxy), in one run:
//
//   1,000 viewers   of one graph, spread over 3 kas nodes: upstream evaluations per step (target
//                   1.0), time from a step being due (its time + KAS_LIVE_DELAY) to its append
//                   arriving (p50/p99, target p99 < 250 ms), kas CPU per viewer per step, and
//                   Prometheus's CPU against 1,000 pollers through a proxy
//   10,000 viewers  SSE on one node: kas RSS per viewer (target ≤ 20 KB)
//   200 graphs      distinct, at step 5 s, over 3 nodes: evaluations per step (200) and how they
//                   spread over the nodes
//
// Viewers run in several child processes (bench/liveClients.ts) so the load generator is not the
// bottleneck. Progress goes to stderr, the tables to stdout.
import { type ChildProcess, fork } from 'node:child_process';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { KasCluster } from '../test/support/kas.ts';
import { metricSum } from '../test/support/metrics.ts';
import { startPrometheus, type PrometheusServer } from '../test/support/prometheus.ts';
import { cpuSeconds, rssBytes } from './procStats.ts';

const CLIENT = fileURLToPath(new URL('./liveClients.ts', import.meta.url));
const FLOOR = fileURLToPath(new URL('./sseFloor.ts', import.meta.url));
const VIEWERS = Number(process.env.BENCH_LIVE_VIEWERS ?? 1000);
const MANY = Number(process.env.BENCH_LIVE_MANY ?? 10_000);
const GRAPHS = Number(process.env.BENCH_LIVE_GRAPHS ?? 200);
const MEASURE_S = Number(process.env.BENCH_LIVE_SECONDS ?? 30);
const PROCESSES = 4;
const DELAY_MS = 1000;

function progress(line: string): void {
  process.stderr.write(`[bench:live] ${line}\n`);
}

function percentile(sorted: number[], p: number): number {
  return sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

interface Report {
  connected: number;
  snapshots: number;
  appends: number;
  gaps: number;
  failed: number;
  latencies: number[];
}

class Clients {
  #children: ChildProcess[] = [];

  /** `total` viewers, the i-th of them of `urls[i % urls.length]`, spread over the child processes. */
  constructor(urls: string[], total: number, token: string, stepS: number, mode: 'sse' | 'poll' = 'sse') {
    const per = Math.ceil(total / PROCESSES);
    for (let i = 0; i < PROCESSES; i++) {
      const count = Math.min(per, total - i * per);
      if (count <= 0) break;
      // The viewer k of this child watches urls[(offset + k) % urls.length] (the list once, not per viewer: argv is bounded).
      const job = JSON.stringify({ urls, offset: i * per, count, token, delayMs: DELAY_MS, stepS, mode });
      this.#children.push(fork(CLIENT, [job], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }));
    }
  }

  #ask<T>(child: ChildProcess, message: string): Promise<T> {
    return new Promise((resolve) => {
      child.once('message', (reply) => resolve(reply as T));
      child.send(message);
    });
  }

  async waitForSnapshots(total: number, timeoutMs = 120_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const statuses = await Promise.all(this.#children.map((c) => this.#ask<{ snapshots: number; failed: number; connected: number }>(c, 'status')));
      const snapshots = statuses.reduce((a, s) => a + s.snapshots, 0);
      const failed = statuses.reduce((a, s) => a + s.failed, 0);
      if (snapshots + failed >= total) {
        if (failed > 0) progress(`${failed} viewers were refused`);
        return;
      }
      if (Date.now() > deadline) throw new Error(`only ${snapshots} of ${total} viewers got their snapshot`);
      await new Promise((r) => setTimeout(r, 500));
    }
  }

  /** Starts counting afresh: what came before (the warm-up) is not measured. */
  async reset(): Promise<void> {
    await Promise.all(this.#children.map((c) => this.#ask(c, 'reset')));
  }

  async report(): Promise<Report> {
    const reports = await Promise.all(this.#children.map((c) => this.#ask<Report>(c, 'report')));
    return {
      connected: reports.reduce((a, r) => a + r.connected, 0),
      snapshots: reports.reduce((a, r) => a + r.snapshots, 0),
      appends: reports.reduce((a, r) => a + r.appends, 0),
      gaps: reports.reduce((a, r) => a + r.gaps, 0),
      failed: reports.reduce((a, r) => a + r.failed, 0),
      latencies: reports.flatMap((r) => r.latencies).sort((a, b) => a - b),
    };
  }
}

/** A minimal node:http reverse proxy in front of Prometheus: what a team would put there by hand. */
async function plainProxy(target: string): Promise<{ url: string; close(): void }> {
  const upstream = new URL(target);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 512 });
  const server = http.createServer((req, res) => {
    const out = http.request({ host: upstream.hostname, port: upstream.port, path: req.url, method: req.method, headers: req.headers, agent }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    });
    out.on('error', () => res.destroy());
    req.pipe(out);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, close: () => server.close() };
}

async function agentRequests(cluster: KasCluster): Promise<number> {
  let sum = 0;
  for (const replica of cluster.agents) sum += await metricSum(replica.observabilityUrl, 'agentk_requests_total', { upstream: 'prometheus' });
  return sum;
}

const liveUrl = (node: { apiUrl: string }, query: string, step: string) =>
  `${node.apiUrl}/api/v1/agents/prod/prometheus/live?${new URLSearchParams({ query, range: '5m', step })}`;

async function cluster3(prometheus: PrometheusServer): Promise<{ cluster: KasCluster; token: string }> {
  const cluster = await KasCluster.start({ nodes: 3, env: { LOG_LEVEL: 'warn', KAS_LIVE_MAX_SUBSCRIPTIONS: '1000' } });
  const agentToken = await cluster.registerAgent('prod');
  await cluster.startAgent({ id: 'prod', token: agentToken, node: 0, prometheusUrl: prometheus.url });
  const token = await cluster.issueToken();
  for (const node of [0, 1, 2]) await cluster.waitForReplicas('prod', 1, token, node);
  return { cluster, token };
}

async function oneGraphManyViewers(prometheus: PrometheusServer): Promise<string> {
  const { cluster, token } = await cluster3(prometheus);
  try {
    const query = 'sum by (job) (rate(prometheus_http_requests_total[1m]))';
    const urls = cluster.nodes.map((n) => liveUrl(n, query, '1s'));
    // What the three nodes spend with no viewer at all (membership, heartbeats): taken off below.
    const kasPids = cluster.nodes.map((n) => n.proc.child.pid);
    const idle0 = cpuSeconds(kasPids);
    await new Promise((r) => setTimeout(r, 10_000));
    const idlePerSecond = (cpuSeconds(kasPids) - idle0) / 10;
    progress(`opening ${VIEWERS} viewers of one graph over 3 nodes`);
    const clients = new Clients(urls, VIEWERS, token, 1);
    await clients.waitForSnapshots(VIEWERS);
    await new Promise((r) => setTimeout(r, 3_000));
    const [requests0, cpu0, promCpu0] = [await agentRequests(cluster), cpuSeconds(kasPids), cpuSeconds([prometheus.proc.child.pid])];
    await clients.reset();
    progress(`measuring for ${MEASURE_S} s`);
    await new Promise((r) => setTimeout(r, MEASURE_S * 1000));
    const [requests1, cpu1, promCpu1] = [await agentRequests(cluster), cpuSeconds(kasPids), cpuSeconds([prometheus.proc.child.pid])];
    const report = await clients.report();
    const steps = MEASURE_S;
    const evaluationsPerStep = (requests1 - requests0) / steps;
    const cpuUsPerViewerStep = ((cpu1 - cpu0 - idlePerSecond * MEASURE_S) * 1e6) / (VIEWERS * steps);
    const promCpuPerStep = ((promCpu1 - promCpu0) * 1000) / steps;

    progress(`baseline: ${VIEWERS} pollers of query_range through a plain proxy, once per step`);
    const proxy = await plainProxy(prometheus.url);
    const pollUrl = `${proxy.url}/api/v1/query_range?${new URLSearchParams({ query, step: '1' })}`;
    const pollers = new Clients([pollUrl], VIEWERS, '', 1, 'poll');
    await new Promise((r) => setTimeout(r, 3_000));
    await pollers.reset();
    const pollCpu0 = cpuSeconds([prometheus.proc.child.pid]);
    await new Promise((r) => setTimeout(r, MEASURE_S * 1000));
    const pollCpu1 = cpuSeconds([prometheus.proc.child.pid]);
    const pollReport = await pollers.report();
    proxy.close();
    const pollPromCpuPerStep = ((pollCpu1 - pollCpu0) * 1000) / MEASURE_S;

    const lat = report.latencies;
    return [
      `### ${VIEWERS} viewers of one graph over 3 nodes (step 1 s, ${MEASURE_S} s)`,
      '',
      '| | kas live graph | pollers through a plain proxy |',
      '| --- | ---: | ---: |',
      `| upstream evaluations per step | ${evaluationsPerStep.toFixed(2)} (target 1.0) | ${(pollReport.appends / MEASURE_S).toFixed(0)} |`,
      `| Prometheus CPU per step (ms) | ${promCpuPerStep.toFixed(1)} | ${pollPromCpuPerStep.toFixed(1)} |`,
      `| step due → append received, p50 / p99 (ms) | ${percentile(lat, 50)} / ${percentile(lat, 99)} (target p99 < 250) | ${percentile(pollReport.latencies, 50)} / ${percentile(pollReport.latencies, 99)} |`,
      `| kas CPU per viewer per step (µs), idle nodes' CPU taken off | ${cpuUsPerViewerStep.toFixed(1)} | |`,
      `| viewers connected / snapshots / appends / steps missed | ${report.connected} / ${report.snapshots} / ${report.appends} / ${report.gaps} | ${pollReport.connected} pollers |`,
      '',
    ].join('\n');
  } finally {
    await cluster.stop();
  }
}

/** kas RSS growth per SSE viewer, and the same for a bare node:http SSE server (bench/sseFloor.ts). */
async function manyViewersOneNode(prometheus: PrometheusServer): Promise<string> {
  const measure = async (pid: number | undefined, url: string, token: string): Promise<{ rss0: number; rss1: number; connected: number }> => {
    const warm = new Clients([url], 10, token, 5);
    await warm.waitForSnapshots(10);
    await new Promise((r) => setTimeout(r, 2_000));
    const rss0 = rssBytes(pid);
    const clients = new Clients([url], MANY, token, 5);
    await clients.waitForSnapshots(MANY, 300_000);
    await new Promise((r) => setTimeout(r, 6_000)); // a step or so: every viewer has had an append
    const rss1 = rssBytes(pid);
    const report = await clients.report();
    await warm.report();
    return { rss0, rss1, connected: report.connected };
  };
  const row = (name: string, m: { rss0: number; rss1: number; connected: number }, target: string) =>
    `| ${name} | ${(m.rss0 / 2 ** 20).toFixed(0)} MB | ${(m.rss1 / 2 ** 20).toFixed(0)} MB | ${m.connected} | ${((m.rss1 - m.rss0) / m.connected / 1024).toFixed(1)} KB${target} |`;

  let kas: { rss0: number; rss1: number; connected: number };
  const cluster = await KasCluster.start({ nodes: 1 });
  try {
    const agentToken = await cluster.registerAgent('prod');
    await cluster.startAgent({ id: 'prod', token: agentToken, prometheusUrl: prometheus.url });
    const token = await cluster.issueToken();
    progress(`opening ${MANY} SSE viewers on one node`);
    kas = await measure(cluster.nodes[0]!.proc.child.pid, liveUrl(cluster.nodes[0]!, 'count(up)', '5s'), token);
  } finally {
    await cluster.stop();
  }

  progress(`opening ${MANY} SSE streams on a bare node:http server`);
  const floor = fork(FLOOR, ['5'], { stdio: ['ignore', 'pipe', 'inherit', 'ipc'] });
  let bare: { rss0: number; rss1: number; connected: number };
  try {
    const port = await new Promise<number>((resolve, reject) => {
      floor.stdout!.setEncoding('utf8').on('data', (line: string) => {
        const m = /port (\d+)/.exec(line);
        if (m) resolve(Number(m[1]));
      });
      floor.once('exit', (code) => reject(new Error(`bench/sseFloor.ts exited with ${code}`)));
    });
    bare = await measure(floor.pid, `http://127.0.0.1:${port}/live?query=count(up)&range=5m&step=5s`, 'none');
  } finally {
    floor.kill('SIGTERM');
  }
  return [
    `### ${MANY} SSE viewers on one node`,
    '',
    'RSS of the serving process before the viewers connect and once every one of them has had its snapshot and an append.',
    '',
    '| server | RSS before | after | viewers connected | per viewer |',
    '| --- | ---: | ---: | ---: | ---: |',
    row('kas (a live graph)', kas, ' (target ≤ 20 KB; Grafana Live documents about 50 KB)'),
    row('bare node:http SSE server (the floor)', bare, ''),
    '',
  ].join('\n');
}

async function manyGraphs(prometheus: PrometheusServer): Promise<string> {
  const { cluster, token } = await cluster3(prometheus);
  try {
    const urls: string[] = [];
    for (let g = 0; g < GRAPHS; g++) {
      // Each graph has a viewer on every node, the first of them on a node that takes turns.
      for (let k = 0; k < 3; k++) urls.push(liveUrl(cluster.nodes[(g + k) % 3]!, `count(up) + ${g}`, '5s'));
    }
    progress(`opening ${GRAPHS} distinct graphs, a viewer each on every node`);
    const clients = new Clients(urls, urls.length, token, 5);
    await clients.waitForSnapshots(urls.length);
    await new Promise((r) => setTimeout(r, 6_000));
    await clients.reset();
    const requests0 = await agentRequests(cluster);
    const steps = Math.max(2, Math.round(MEASURE_S / 5));
    await new Promise((r) => setTimeout(r, steps * 5000));
    const requests1 = await agentRequests(cluster);
    const evaluating = await Promise.all(cluster.nodes.map((n) => metricSum(n.observabilityUrl, 'kas_live_evaluating')));
    const report = await clients.report();
    return [
      `### ${GRAPHS} distinct graphs at step 5 s over 3 nodes (${steps} steps)`,
      '',
      '| evaluations per step | evaluated by node 0 / 1 / 2 | steps missed by viewers |',
      '| ---: | ---: | ---: |',
      `| ${((requests1 - requests0) / steps).toFixed(1)} (target ${GRAPHS}) | ${evaluating.join(' / ')} | ${report.gaps} |`,
      '',
    ].join('\n');
  } finally {
    await cluster.stop();
  }
}

const prometheus = await startPrometheus();
try {
  const head = [
    '## Live graphs (`bench/live.ts`)',
    '',
    `- date: ${new Date().toISOString()}`,
    `- CPU: ${readFileSync('/proc/cpuinfo', 'utf8').match(/model name\s*:\s*(.*)/)?.[1] ?? 'unknown'}`,
    `- node ${process.version}`,
    '',
  ].join('\n');
  // BENCH_LIVE_PARTS=one,graphs,many (all by default) runs some of the three.
  const only = new Set((process.env.BENCH_LIVE_PARTS ?? 'one,graphs,many').split(',').map((s) => s.trim()));
  const parts: string[] = [];
  if (only.has('one')) parts.push(await oneGraphManyViewers(prometheus));
  if (only.has('graphs')) parts.push(await manyGraphs(prometheus));
  if (only.has('many')) parts.push(await manyViewersOneNode(prometheus));
  process.stdout.write(`${head}\n${parts.join('\n')}\n`);
} finally {
  await prometheus.stop();
}
