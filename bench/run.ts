// `npm run bench`: what kas costs on top of talking to Prometheus directly. Starts a real
// Prometheus, a plain reverse proxy in front of it, and two kas nodes sharing a real Redis with
// one agentk on the first node, then measures `GET /api/v1/query?query=up` four ways:
//
//   direct       Prometheus itself
//   proxy        one hop through a minimal node:http reverse proxy (the yardstick)
//   express      one hop through express + http-proxy-middleware (a common, slower proxy)
//   kas same     kas node 0, which holds the agent (caller → kas → WebSocket → agentk → Prometheus)
//   kas cross    kas node 1, which forwards to node 0 first
//
// After a warm-up: BENCH_REQUESTS (2000) requests one at a time per path, interleaved (one to
// each path in turn, so every path sees the same machine), then BENCH_SECONDS (10) seconds at 32
// concurrent keep-alive connections per path, in two rounds in opposite orders. Progress goes to
// stderr, the results (machine, table, ratios) to stdout as markdown.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { openSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { AGENTK_BIN, KAS_BIN, runKas } from '../test/support/kas.ts';
import { freePort } from '../test/support/ports.ts';
import { waitFor } from '../test/support/procs.ts';
import { cpuSeconds } from './procStats.ts';
import { startProxy } from './proxies.ts';
import { startPrometheus, type PrometheusServer } from '../test/support/prometheus.ts';
import { startRedis } from '../test/support/redis.ts';

const REQUESTS_C1 = Number(process.env.BENCH_REQUESTS ?? 2000);
const REQUESTS_CPU = 1000;
const SECONDS_C32 = Number(process.env.BENCH_SECONDS ?? 10);
const CONCURRENCY = 32;
const QUERY = '/api/v1/query?query=up';

interface Target {
  name: string;
  url: URL;
  headers: Record<string, string>;
  /** The processes between the caller and Prometheus, whose CPU is counted per request. */
  pids: number[];
}

interface Cell {
  p50: number;
  p99: number;
  rps: number;
  count: number;
  errors: number;
}

function progress(line: string): void {
  process.stderr.write(`[bench] ${line}\n`);
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

function get(target: Target, agent: http.Agent): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.get(
      { host: target.url.hostname, port: target.url.port, path: target.url.pathname + target.url.search, headers: target.headers, agent },
      (res) => {
        res.resume();
        res.once('end', () => resolve(res.statusCode ?? 0));
        res.once('error', reject);
      },
    );
    req.once('error', reject);
  });
}

/** `requests` requests, or requests for `seconds`, from `concurrency` keep-alive connections. */
async function measure(target: Target, concurrency: number, limit: { requests: number } | { seconds: number }): Promise<Cell> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
  const latencies: number[] = [];
  let errors = 0;
  let issued = 0;
  const started = performance.now();
  const end = 'seconds' in limit ? started + limit.seconds * 1000 : Infinity;
  const more = () => ('requests' in limit ? issued < limit.requests : performance.now() < end);
  const worker = async () => {
    while (more()) {
      issued++;
      const t0 = performance.now();
      const status = await get(target, agent).catch(() => 0);
      latencies.push(performance.now() - t0);
      if (status !== 200) errors++;
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  const elapsed = (performance.now() - started) / 1000;
  agent.destroy();
  latencies.sort((a, b) => a - b);
  return { p50: percentile(latencies, 50), p99: percentile(latencies, 99), rps: latencies.length / elapsed, count: latencies.length, errors };
}

/** c=1, interleaved: one request to each path in turn, so that a busy moment of the machine hits all alike. */
async function interleaved(targets: Target[], requests: number): Promise<Map<string, Cell>> {
  const agents = targets.map(() => new http.Agent({ keepAlive: true, maxSockets: 1 }));
  const latencies = targets.map(() => [] as number[]);
  const errors = targets.map(() => 0);
  for (let i = 0; i < requests; i++) {
    for (const [k, target] of targets.entries()) {
      const t0 = performance.now();
      const status = await get(target, agents[k]!).catch(() => 0);
      latencies[k]!.push(performance.now() - t0);
      if (status !== 200) errors[k]!++;
    }
    if (i % 500 === 499) progress(`c=1: ${i + 1} of ${requests} rounds`);
  }
  for (const agent of agents) agent.destroy();
  return new Map(
    targets.map((target, k) => {
      const sorted = latencies[k]!.sort((a, b) => a - b);
      return [target.name, { p50: percentile(sorted, 50), p99: percentile(sorted, 99), rps: NaN, count: sorted.length, errors: errors[k]! }];
    }),
  );
}

/** CPU time of the processes on each path per request at c=1, one path at a time (µs). */
async function cpuAtC1(targets: Target[]): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (const target of targets) {
    if (target.pids.length === 0) continue;
    progress(`${target.name}: CPU of ${REQUESTS_CPU} requests at concurrency 1`);
    const before = cpuSeconds(target.pids);
    const cell = await measure(target, 1, { requests: REQUESTS_CPU });
    out.set(target.name, ((cpuSeconds(target.pids) - before) * 1e6) / cell.count);
  }
  return out;
}

async function bench(targets: Target[]): Promise<Map<string, { c1: Cell; c32: Cell }>> {
  progress('warm-up');
  for (const target of targets) {
    await measure(target, 1, { requests: 200 });
    await measure(target, CONCURRENCY, { seconds: 1 });
  }
  progress(`${REQUESTS_C1} requests per path at concurrency 1, interleaved`);
  const c1 = await interleaved(targets, REQUESTS_C1);
  const c32 = new Map<string, Cell[]>();
  for (const round of [targets, [...targets].reverse()]) {
    for (const target of round) {
      progress(`${target.name}: ${SECONDS_C32 / 2} s at concurrency ${CONCURRENCY}`);
      const cell = await measure(target, CONCURRENCY, { seconds: SECONDS_C32 / 2 });
      c32.set(target.name, [...(c32.get(target.name) ?? []), cell]);
    }
  }
  const results = new Map<string, { c1: Cell; c32: Cell }>();
  for (const target of targets) {
    const cells = c32.get(target.name)!;
    const merged: Cell = {
      p50: cells.reduce((a, c) => a + c.p50, 0) / cells.length,
      p99: cells.reduce((a, c) => a + c.p99, 0) / cells.length,
      rps: cells.reduce((a, c) => a + c.rps, 0) / cells.length,
      count: cells.reduce((a, c) => a + c.count, 0),
      errors: cells.reduce((a, c) => a + c.errors, 0),
    };
    results.set(target.name, { c1: c1.get(target.name)!, c32: merged });
  }
  return results;
}

function machine(): string[] {
  const model = /^model name\s*:\s*(.*)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? cpus()[0]?.model ?? 'unknown';
  return [
    `- date: ${new Date().toISOString()}`,
    `- CPU: ${model}, ${cpus().length} cores (nproc ${cpus().length})`,
    `- node ${process.version}, prometheus ${prometheusVersion}`,
    `- kas: ${revision()}`,
    `- load average at start: ${loadStart.map((l) => l.toFixed(2)).join(' ')}`,
  ];
}


interface BenchNode {
  apiUrl: string;
  agentUrl: string;
  pid: number;
}

function startLogged(dir: string, name: string, args: string[], env: Record<string, string>): ChildProcess {
  const log = openSync(join(dir, `${name}.log`), 'a');
  const child = spawn(process.execPath, args, { env: { ...process.env, ...env }, stdio: ['ignore', log, log] });
  children.push(child);
  cleanups.push(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
    }
  });
  return child;
}

async function startKasNode(dir: string, env: Record<string, string>, index: number): Promise<BenchNode> {
  const [agent, api, priv, obs] = await Promise.all([freePort(), freePort(), freePort(), freePort()]);
  const child = startLogged(dir, `kas-${index}`, [KAS_BIN, 'serve'], {
    ...env,
    KAS_NODE_NAME: `kas-${index}`,
    KAS_AGENT_LISTEN: `127.0.0.1:${agent}`,
    KAS_API_LISTEN: `127.0.0.1:${api}`,
    KAS_PRIVATE_LISTEN: `127.0.0.1:${priv}`,
    KAS_OBSERVABILITY_LISTEN: `127.0.0.1:${obs}`,
  });
  await waitFor(async () => (await fetch(`http://127.0.0.1:${obs}/readiness`)).ok, {
    timeoutMs: 20_000,
    what: `kas-${index} to be ready (log: ${join(dir, `kas-${index}.log`)})`,
    giveUpIf: () => (child.exitCode !== null ? `kas-${index} exited with ${child.exitCode}` : undefined),
  });
  return { apiUrl: `http://127.0.0.1:${api}`, agentUrl: `ws://127.0.0.1:${agent}`, pid: child.pid! };
}

async function kasCommand(args: string[], env: Record<string, string>): Promise<string> {
  const result = await runKas(args, env);
  if (result.code !== 0) throw new Error(`kas ${args.join(' ')} failed (${result.code}): ${result.stderr}`);
  return result.stdout.trim();
}

function revision(): string {
  try {
    const git = (...args: string[]) => execFileSync('git', args, { cwd: fileURLToPath(new URL('..', import.meta.url)), encoding: 'utf8' }).trim();
    const dirty = git('status', '--porcelain', '--', 'server', 'agent', 'protocol', 'otel', 'bin') !== '';
    return `commit ${git('rev-parse', '--short', 'HEAD')}${dirty ? ' plus uncommitted changes to the programs' : ''}`;
  } catch {
    return 'not a git checkout';
  }
}

let prometheusVersion = 'unknown';
const loadStart = loadavg();
const cleanups: (() => Promise<unknown>)[] = [];
const children: ChildProcess[] = [];
process.on('exit', () => children.forEach((c) => c.exitCode === null && c.kill('SIGKILL')));
process.once('SIGINT', () => process.exit(130));

async function main(): Promise<void> {
  progress('starting prometheus, a plain proxy, redis and two kas nodes');
  const prometheus: PrometheusServer = await startPrometheus({ scrapeIntervalSeconds: 5 });
  cleanups.push(() => prometheus.stop());
  const build = (await (await fetch(`${prometheus.url}/api/v1/status/buildinfo`)).json()) as { data?: { version?: string } };
  prometheusVersion = build.data?.version ?? 'unknown';

  const proxyFor = async (kind: 'minimal' | 'express') => {
    const proxy = await startProxy(`proxy-${kind}`, prometheus.url, kind);
    cleanups.push(() => proxy.stop());
    return proxy;
  };
  const minimalProxy = await proxyFor('minimal');
  const expressProxy = await proxyFor('express');

  // kas nodes and agentk are started here rather than through the test harness, at the default
  // log level as deployed, with their logs going to files: the harness would pipe every
  // per-request log line through this (load-generating) process.
  const dir = await mkdtemp(join(tmpdir(), 'kas-bench-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  const redis = await startRedis();
  cleanups.push(() => redis.stop());
  const env: Record<string, string> = { KAS_DATA_DIR: join(dir, 'data'), KAS_REDIS_URL: redis.url, LOG_LEVEL: 'info' };
  await mkdir(env.KAS_DATA_DIR!, { recursive: true });
  for (const name of ['api-secret', 'private-secret']) {
    await writeFile(join(env.KAS_DATA_DIR!, name), randomBytes(32).toString('base64'), { mode: 0o600 });
  }
  const nodes = [await startKasNode(dir, env, 0), await startKasNode(dir, env, 1)];
  const agentToken = await kasCommand(['agent', 'register', 'bench'], env);
  const token = await kasCommand(['token', 'issue', '--sub', 'bench', '--agents', 'bench', '--ttl', '1h'], env);

  const tokenFile = join(dir, 'bench.token');
  const configFile = join(dir, 'bench.yaml');
  await writeFile(tokenFile, `${agentToken}\n`, { mode: 0o600 });
  await writeFile(configFile, `prometheus:\n  url: ${prometheus.url}\n`);
  const agentObs = await freePort();
  const agentk = startLogged(
    dir,
    'agentk',
    [AGENTK_BIN, '--kas-url', nodes[0]!.agentUrl, '--token-file', tokenFile, '--config', configFile],
    { POD_NAME: 'bench-agent', LOG_LEVEL: 'info', AGENTK_OBSERVABILITY_LISTEN: `127.0.0.1:${agentObs}` },
  );
  await waitFor(async () => (await fetch(`http://127.0.0.1:${agentObs}/readiness`)).ok, { timeoutMs: 20_000, what: 'agentk to connect' });
  // Node 1 learns of the agent through Redis.
  await waitFor(
    async () => {
      const res = await fetch(`${nodes[1]!.apiUrl}/api/v1/agents/bench`, { headers: { authorization: `Bearer ${token}` } });
      return res.ok && ((await res.json()) as { replicas: unknown[] }).replicas.length === 1;
    },
    { timeoutMs: 20_000, what: 'the agent to be visible through kas node 1' },
  );

  const auth = { authorization: `Bearer ${token}` };
  // The CPU of a kas path counts both nodes and agentk: node 1 is idle on the same-node path.
  const kasPids = [nodes[0]!.pid, nodes[1]!.pid, agentk.pid!];
  const targets: Target[] = [
    { name: 'Prometheus direct', url: new URL(QUERY, prometheus.url), headers: {}, pids: [] },
    { name: 'minimal node:http proxy (1 hop)', url: new URL(QUERY, minimalProxy.url), headers: {}, pids: [minimalProxy.pid] },
    { name: 'express + http-proxy-middleware (1 hop)', url: new URL(QUERY, expressProxy.url), headers: {}, pids: [expressProxy.pid] },
    { name: 'kas, same node', url: new URL(`/api/v1/agents/bench/prometheus${QUERY}`, nodes[0]!.apiUrl), headers: auth, pids: kasPids },
    { name: 'kas, cross node', url: new URL(`/api/v1/agents/bench/prometheus${QUERY}`, nodes[1]!.apiUrl), headers: auth, pids: kasPids },
  ];
  // Each path must answer what Prometheus answers before it is timed.
  for (const target of targets) {
    const res = await fetch(target.url, { headers: target.headers });
    const body = (await res.json()) as { status?: string; data?: { result?: unknown[] } };
    if (res.status !== 200 || body.status !== 'success' || !body.data?.result?.length) {
      throw new Error(`${target.name} answered ${res.status} ${JSON.stringify(body)}`);
    }
  }

  const results = await bench(targets);
  const cpu = await cpuAtC1(targets);

  const ms = (v: number) => v.toFixed(2);
  const lines = [
    ...machine(),
    `- cells: ${REQUESTS_C1} sequential requests per path (c=1), interleaved across paths; ${SECONDS_C32} s at c=${CONCURRENCY} per path in two rounds; keep-alive connections; after a warm-up`,
    '',
    `| path | p50 c=1 (ms) | p99 c=1 (ms) | p50 c=${CONCURRENCY} (ms) | p99 c=${CONCURRENCY} (ms) | req/s c=${CONCURRENCY} | errors |`,
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: |',
  ];
  for (const [name, { c1, c32 }] of results) {
    lines.push(`| ${name} | ${ms(c1.p50)} | ${ms(c1.p99)} | ${ms(c32.p50)} | ${ms(c32.p99)} | ${c32.rps.toFixed(0)} | ${c1.errors + c32.errors} |`);
  }
  const [direct, proxied, , same, cross] = targets.map((t) => results.get(t.name)!);
  const ratio = (kas: number, base: number, proxy: number) => (kas - base) / (proxy - base);
  const verdict = (value: number, target: number) => `${value.toFixed(2)}× (target ≤ ${target}×: ${value <= target ? 'met' : 'MISSED'})`;
  const share = (kas: number, proxy: number) => `${((100 * kas) / proxy).toFixed(0)}% (target ≥ 50%: ${kas / proxy >= 0.5 ? 'met' : 'MISSED'})`;
  lines.push(
    '',
    'Added latency over Prometheus direct, as a multiple of what one minimal proxy hop adds (c=1, interleaved):',
    '',
    '| | p50 | p99 |',
    '| --- | --- | --- |',
    `| added by the minimal proxy (ms) | ${ms(proxied!.c1.p50 - direct!.c1.p50)} | ${ms(proxied!.c1.p99 - direct!.c1.p99)} |`,
    `| kas same node ÷ proxy | ${verdict(ratio(same!.c1.p50, direct!.c1.p50, proxied!.c1.p50), 2)} | ${verdict(ratio(same!.c1.p99, direct!.c1.p99, proxied!.c1.p99), 2)} |`,
    `| kas cross node ÷ proxy | ${verdict(ratio(cross!.c1.p50, direct!.c1.p50, proxied!.c1.p50), 3)} | ${verdict(ratio(cross!.c1.p99, direct!.c1.p99, proxied!.c1.p99), 3)} |`,
    '',
    `At c=${CONCURRENCY}: kas same node passes ${share(same!.c32.rps, proxied!.c32.rps)} of the minimal proxy's requests per second; cross node ${((100 * cross!.c32.rps) / proxied!.c32.rps).toFixed(0)}%.`,
    '',
    `CPU per request of the processes on the path (Prometheus not counted), c=1, ${REQUESTS_CPU} requests per path one path at a time, from /proc: ` +
      targets
        .filter((t) => cpu.has(t.name))
        .map((t) => `${t.name} ${cpu.get(t.name)!.toFixed(0)} µs (${(cpu.get(t.name)! / cpu.get(targets[1]!.name)!).toFixed(2)}× the minimal proxy)`)
        .join('; ') +
      '. At c=1 the machine is otherwise idle, so the added latency follows this CPU and the wake-ups of each process on the path.',
    '',
  );
  process.stdout.write(`${lines.join('\n')}\n`);
}

try {
  await main();
} finally {
  progress('stopping');
  for (const cleanup of cleanups.reverse()) await cleanup().catch((error: Error) => progress(`cleanup: ${error.message}`));
}
