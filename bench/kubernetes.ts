// `npm run bench` (Kubernetes part): what kas adds to watch event latency and list throughput.
// Starts the Kubernetes API simulator in this process, two kas nodes sharing a real Redis and
// one agentk on node 0, then measures: the simulator directly; through chains of 1, 2 and 3
// minimal node:http proxies (bench/proxy.ts: the yardstick, as many processes on the path as
// kas puts there: kas same node is two, kas and agentk; cross node three); kas node 0 (holds
// the agent: same node) and kas node 1 (forwards first: cross node).
//
//   watch latency  object changed in the simulator → its event parsed by the caller, with 1 and
//                  BENCH_WATCHES (500) watches open at once, BENCH_WATCH_ROUNDS changes each;
//                  the 500 either identical (a dashboard open 500 times: kas shares them, see
//                  server/routing/sharedWatches.ts) or distinct (each its own label selector,
//                  so each is its own stream at every hop)
//   list           GET /api/v1/pods over 10,000 pods (about 30 MB of JSON), MB/s
//
// The simulator and every watching client share this process, so absolute figures include
// their own event-loop time; the added latency (kas minus direct) is the figure that matters.
import http from 'node:http';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { KasCluster } from '../test/support/kas.ts';
import { makePod, startKubeSim, type KubeSim } from '../demo/k8sSim.ts';
import { cpuSeconds } from './procStats.ts';
import { type StartedProxy, startProxy } from './proxies.ts';

const WATCHES = Number(process.env.BENCH_WATCHES ?? 500);
const ROUNDS_SINGLE = Number(process.env.BENCH_WATCH_ROUNDS ?? 200);
const ROUNDS_MANY = Math.max(10, Math.round(ROUNDS_SINGLE / 5));
const PODS = Number(process.env.BENCH_PODS ?? 10_000);
const LIST_REPEATS = 3;
const NAMESPACE = 'bench';

interface Target {
  name: string;
  base: URL;
  token: string;
  /** The processes between the caller and the simulator, whose CPU is counted per event. */
  pids: number[];
}

/** The proxy chains' names, by how many processes they put on the path. */
const CHAIN = ['', 'minimal proxy, 1 hop', 'minimal proxy, 2 hops', 'minimal proxy, 3 hops'] as const;

export interface WatchCell {
  watches: number;
  /** Each watch with its own label selector (nothing to share), else all the same. */
  distinct: boolean;
  p50: number;
  p99: number;
  samples: number;
  /** CPU time the kas nodes and agentk spent per event delivered, while the changes ran (µs): steadier than latency on a busy machine. */
  cpuUsPerEvent?: number;
}

function progress(line: string): void {
  process.stderr.write(`[bench:kubernetes] ${line}\n`);
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

function url(target: Target, path: string): URL {
  const u = new URL(target.base);
  const [pathname, search] = path.split('?');
  u.pathname = u.pathname.replace(/\/$/, '') + pathname;
  u.search = search ?? '';
  return u;
}

/** Opens one watch; `onEvent` gets each event's object name and the time it was parsed. */
function openWatch(target: Target, agent: http.Agent, rv: string, selector: string, onEvent: (name: string, at: number) => void): Promise<http.ClientRequest> {
  return new Promise((resolve, reject) => {
    const u = url(target, `/api/v1/namespaces/${NAMESPACE}/configmaps?watch=1&resourceVersion=${rv}${selector}`);
    const req = http.get(u, { agent, headers: { authorization: `Bearer ${target.token}` } }, (res) => {
      if (res.statusCode !== 200) return reject(new Error(`${target.name}: watch answered ${res.statusCode}`));
      let buffer = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        const at = performance.now();
        buffer += chunk;
        let newline: number;
        while ((newline = buffer.indexOf('\n')) >= 0) {
          const line = buffer.slice(0, newline);
          buffer = buffer.slice(newline + 1);
          if (line.trim() === '') continue;
          const event = JSON.parse(line) as { type: string; object: { metadata: { name: string } } };
          if (event.type === 'MODIFIED') onEvent(event.object.metadata.name, at);
        }
      });
      res.on('error', () => undefined);
      resolve(req);
    });
    req.on('error', (error) => {
      if (!req.destroyed) reject(error);
    });
  });
}

async function watchLatency(sim: KubeSim, target: Target, watches: number, distinct: boolean, rounds: number, cpu: () => number): Promise<WatchCell> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: watches + 8 });
  const name = `probe-${target.name.replace(/\W+/g, '-')}-${watches}${distinct ? '-distinct' : ''}`;
  sim.api.apply('configmaps', { metadata: { name, namespace: NAMESPACE }, data: { round: '0' } });
  const rv = sim.api.resourceVersion();
  let pending = new Map<number, number>(); // round → change time
  const latencies: number[] = [];
  let received = 0;
  let roundDone: (() => void) | undefined;
  const requests: http.ClientRequest[] = [];
  const currentRound = { n: 0 };
  const onEvent = (object: string, at: number) => {
    if (object !== name) return;
    const changedAt = pending.get(currentRound.n);
    if (changedAt === undefined) return;
    latencies.push(at - changedAt);
    if (++received === watches) roundDone?.();
  };
  for (let i = 0; i < watches; i += 50) {
    // "not labelled w=<n>": matches the probe like no selector does, yet makes each watch different.
    const selector = (n: number) => (distinct ? `&labelSelector=${encodeURIComponent(`w!=${n}`)}` : '');
    const batch = Array.from({ length: Math.min(50, watches - i) }, (_, j) => openWatch(target, agent, rv, selector(i + j), onEvent));
    requests.push(...(await Promise.all(batch)));
  }
  // Let every watch settle (kas may still be routing the last ones).
  await new Promise((r) => setTimeout(r, 500));
  const cpuBefore = cpu();
  for (let round = 1; round <= rounds; round++) {
    received = 0;
    currentRound.n = round;
    const done = new Promise<void>((resolve, reject) => {
      roundDone = resolve;
      setTimeout(() => reject(new Error(`${target.name}: round ${round} got ${received}/${watches} events in 10s`)), 10_000).unref();
    });
    pending = new Map([[round, performance.now()]]);
    sim.api.modify('configmaps', NAMESPACE, name, (o) => (o.data = { round: String(round) }));
    await done;
    await new Promise((r) => setTimeout(r, watches > 1 ? 20 : 2));
  }
  const cpuUsPerEvent = ((cpu() - cpuBefore) * 1e6) / latencies.length;
  for (const req of requests) req.destroy();
  agent.destroy();
  latencies.sort((a, b) => a - b);
  return { watches, distinct, p50: percentile(latencies, 50), p99: percentile(latencies, 99), samples: latencies.length, ...(Number.isFinite(cpuUsPerEvent) && cpuUsPerEvent > 0 ? { cpuUsPerEvent } : {}) };
}

async function listThroughput(target: Target): Promise<{ mbps: number; bytes: number }> {
  const agent = new http.Agent({ keepAlive: true });
  let bytes = 0;
  const started = performance.now();
  for (let i = 0; i < LIST_REPEATS; i++) {
    bytes += await new Promise<number>((resolve, reject) => {
      http
        .get(url(target, '/api/v1/pods'), { agent, headers: { authorization: `Bearer ${target.token}`, accept: 'application/json' } }, (res) => {
          if (res.statusCode !== 200) return reject(new Error(`${target.name}: list answered ${res.statusCode}`));
          let size = 0;
          res.on('data', (c: Buffer) => (size += c.byteLength));
          res.on('end', () => resolve(size));
          res.on('error', reject);
        })
        .on('error', reject);
    });
  }
  const seconds = (performance.now() - started) / 1000;
  agent.destroy();
  return { mbps: bytes / 1e6 / seconds, bytes: bytes / LIST_REPEATS };
}

export interface KubernetesResults {
  watch: Record<string, WatchCell[]>;
  list: Record<string, { mbps: number; bytes: number }>;
}

export async function benchKubernetes(): Promise<KubernetesResults> {
  const clusterToken = 'bench-cluster-token';
  progress(`starting the simulator with ${PODS} pods`);
  const sim = await startKubeSim({ token: clusterToken, anonymous: true, historyLimit: 100_000 });
  for (let i = 0; i < PODS; i++) {
    sim.api.create('pods', makePod({ name: `pod-${i}`, namespace: `ns-${i % 50}`, labels: { app: `app-${i % 7}` } }));
  }
  let cluster: KasCluster | undefined;
  const proxies: StartedProxy[] = [];
  try {
    progress('starting a chain of 3 minimal proxies in front of the simulator');
    for (let i = 0; i < 3; i++) proxies.push(await startProxy(`proxy-${i + 1}`, i === 0 ? sim.url : proxies[i - 1]!.url));
    progress('starting 2 kas nodes (Redis) and agentk on node 0');
    cluster = await KasCluster.start({ nodes: 2, env: { LOG_LEVEL: 'warn' } });
    const agentToken = await cluster.registerAgent('bench');
    const kubeconfig = join(cluster.dir, 'kubeconfig');
    // The simulator speaks plain HTTP here, so "direct" is not charged for TLS that kas's path
    // does not have; over http agentk (like kubectl) sends no credentials, which it accepts.
    await writeFile(kubeconfig, sim.kubeconfig());
    await cluster.startAgent({ id: 'bench', token: agentToken, node: 0, configYaml: `kubernetes:\n  kubeconfig: ${kubeconfig}\n` });
    const apiToken = await cluster.issueToken({ agents: ['bench'] });
    await cluster.waitForReplicas('bench', 1, apiToken, 1);
    const kasPids = [...cluster.nodes.map((n) => n.proc.pid!), ...cluster.agents.map((a) => a.proc.pid!)];
    const targets: Target[] = [
      { name: 'direct', base: new URL(sim.url), token: clusterToken, pids: [] },
      ...proxies.map((proxy, i) => ({ name: CHAIN[i + 1]!, base: new URL(proxy.url), token: clusterToken, pids: proxies.slice(0, i + 1).map((p) => p.pid) })),
      { name: 'kas same node', base: new URL(`${cluster.nodes[0]!.apiUrl}/api/v1/agents/bench/kubernetes`), token: apiToken, pids: kasPids },
      { name: 'kas cross node', base: new URL(`${cluster.nodes[1]!.apiUrl}/api/v1/agents/bench/kubernetes`), token: apiToken, pids: kasPids },
    ];
    const results: KubernetesResults = { watch: {}, list: {} };
    for (const target of targets) {
      results.watch[target.name] = [];
      for (const [watches, distinct, rounds] of [[1, false, ROUNDS_SINGLE], [WATCHES, false, ROUNDS_MANY], [WATCHES, true, ROUNDS_MANY]] as const) {
        const what = `${watches} ${distinct ? 'distinct ' : watches > 1 ? 'identical ' : ''}watch(es)`;
        progress(`${target.name}: watch latency, ${what}, ${rounds} changes`);
        const pids = target.pids;
        const cell = await watchLatency(sim, target, watches, distinct, rounds, () => (pids.length > 0 ? cpuSeconds(pids) : NaN));
        results.watch[target.name]!.push(cell);
        const cpu = cell.cpuUsPerEvent === undefined ? '' : `, CPU on the path ${cell.cpuUsPerEvent.toFixed(0)} µs per event`;
        progress(`${target.name}: ${what}: p50 ${cell.p50.toFixed(2)} ms, p99 ${cell.p99.toFixed(2)} ms (${cell.samples} events)${cpu}`);
      }
      progress(`${target.name}: listing ${PODS} pods ${LIST_REPEATS} times`);
      results.list[target.name] = await listThroughput(target);
      progress(`${target.name}: ${results.list[target.name]!.mbps.toFixed(1)} MB/s`);
    }
    return results;
  } finally {
    await cluster?.stop();
    await Promise.all(proxies.map((p) => p.stop()));
    await sim.stop();
  }
}

export function kubernetesMarkdown(r: KubernetesResults): string {
  const names = Object.keys(r.watch);
  const direct = r.watch.direct!;
  const many = direct[1]?.watches ?? WATCHES;
  const lines = [
    `### Watch event latency (change in the API server → event parsed by the caller), ms`,
    '',
    `${many} identical watches: the same URL and resourceVersion, as when a dashboard is open ${many} times (kas serves them from one upstream watch). ` +
      `${many} distinct watches: each with a label selector of its own, so nothing can be shared and each is its own stream at every hop. ` +
      'Added p99: the path minus direct in the same column; CPU: what the processes on the path (the proxies; the kas nodes and agentk) spent per event delivered.',
    '',
    `| path | 1 watch p50 | 1 watch p99 | ${many} identical p50 | p99 | added p99 | CPU µs/event | ${many} distinct p50 | p99 | added p99 | CPU µs/event |`,
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
  ];
  const cells = (cell: WatchCell | undefined, base: WatchCell | undefined, isDirect: boolean) => {
    if (!cell) return ['', '', '', ''];
    const added = isDirect || !base ? '' : (cell.p99 - base.p99).toFixed(2);
    const cpu = cell.cpuUsPerEvent === undefined ? '' : cell.cpuUsPerEvent.toFixed(0);
    return [cell.p50.toFixed(2), cell.p99.toFixed(2), added, cpu];
  };
  for (const name of names) {
    const [one, same, distinct] = r.watch[name]!;
    const isDirect = name === 'direct';
    lines.push(`| ${[name, one!.p50.toFixed(2), one!.p99.toFixed(2), ...cells(same, direct[1], isDirect), ...cells(distinct, direct[2], isDirect)].join(' | ')} |`);
  }
  const list = r.list;
  lines.push(
    '',
    `### List of ${PODS} pods (${((list.direct?.bytes ?? 0) / 1e6).toFixed(1)} MB of JSON per list)`,
    '',
    '| path | MB/s |',
    '| --- | ---: |',
    ...Object.entries(list).map(([name, cell]) => `| ${name} | ${cell.mbps.toFixed(1)} |`),
  );
  const cross = r.watch['kas cross node'];
  for (const [index, kind] of [[1, 'identical'], [2, 'distinct']] as const) {
    const cell = cross?.[index];
    const base = direct[index];
    if (!cell || !base) continue;
    const added = cell.p99 - base.p99;
    lines.push('', `Target: added p99 event latency ≤ 5 ms cross node with ${cell.watches} ${kind} watches open: **${added.toFixed(2)} ms** (${added <= 5 ? 'met' : 'missed'}).`);
    // The yardstick: as many minimal proxies as kas has processes on the path.
    const yard = (kas: string, chain: string) => {
      const k = r.watch[kas]?.[index];
      const c = r.watch[chain]?.[index];
      return k && c ? `${kas} ${(k.p99 - base.p99).toFixed(2)} ms against ${chain} ${(c.p99 - base.p99).toFixed(2)} ms` : '';
    };
    lines.push(`Against the yardstick (added p99): ${[yard('kas same node', CHAIN[2]), yard('kas cross node', CHAIN[3])].filter(Boolean).join('; ')}.`);
  }
  return lines.join('\n');
}

if (import.meta.main) {
  const results = await benchKubernetes();
  process.stdout.write(`${kubernetesMarkdown(results)}\n`);
  process.exit(0);
}
