// `node bench/tracing.ts`: what tracing costs. One kas node and one agentk (separate processes,
// as deployed) in front of a small fake Prometheus (test/support/upstream.ts), measured three ways:
//
//   disabled   OTEL_SDK_DISABLED=true: no instrumentation loaded at all (reference only)
//   off        the default: instrumented, no OTLP endpoint, so spans are ids only, nothing sent
//   on         OTEL_TRACES_SAMPLER=always_on, every span exported (http/protobuf, the default) to
//              a local OTLP receiver in this process, which reads and discards the batches
//
// For each: a warm-up, then BENCH_REQUESTS (1000) requests one at a time (p50, p99 latency), then
// BENCH_SECONDS (10) seconds at 32 concurrent keep-alive connections (req/s, p50), during which the
// CPU time kas and agentk spend (from /proc) is divided by the requests answered: the cost of a
// request to the two programs alone, which the load generator and the OTLP receiver sharing this
// small machine do not blur the way they blur req/s. The modes run in turns for BENCH_ROUNDS (5)
// rounds, each with fresh processes and each round in another order (so no mode always runs first
// or after the same one), and the median of the rounds is reported. Results go to stdout as
// markdown, progress to stderr.
import http from 'node:http';
import { cpus, loadavg, totalmem } from 'node:os';
import { KasCluster } from '../test/support/kas.ts';
import { startOtlpReceiver } from '../test/support/otlp.ts';
import { startFakeUpstream } from '../test/support/upstream.ts';
import { cpuSeconds } from './procStats.ts';

const REQUESTS_C1 = Number(process.env.BENCH_REQUESTS ?? 1000);
const SECONDS_C32 = Number(process.env.BENCH_SECONDS ?? 10);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const CONCURRENCY = 32;
const PATH = '/api/v1/agents/bench/prometheus/api/v1/query?query=up';

type Mode = 'disabled' | 'off' | 'on';
const MODES: Mode[] = ['disabled', 'off', 'on'];

interface Result {
  c1p50: number;
  c1p99: number;
  rps: number;
  c32p50: number;
  /** CPU of kas and agentk together per request answered at c32, µs. */
  cpuUs: number;
  errors: number;
}

function progress(line: string): void {
  process.stderr.write(`[bench] ${line}\n`);
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] ?? NaN;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

function get(url: URL, token: string, agent: http.Agent): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.get(
      { host: url.hostname, port: url.port, path: PATH, headers: { authorization: `Bearer ${token}` }, agent },
      (res) => {
        res.resume();
        res.once('end', () => resolve(res.statusCode ?? 0));
        res.once('error', reject);
      },
    );
    req.once('error', reject);
  });
}

async function measure(url: URL, token: string, pids: number[]): Promise<Result> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: CONCURRENCY });
  let errors = 0;
  const timed = async () => {
    const start = performance.now();
    const status = await get(url, token, agent).catch(() => 0);
    if (status !== 200) errors++;
    return performance.now() - start;
  };
  try {
    // Warm-up: JIT, keep-alive sockets on every hop.
    const warmEnd = performance.now() + 2000;
    await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
      while (performance.now() < warmEnd) await timed();
    }));
    errors = 0;
    const c1: number[] = [];
    for (let i = 0; i < REQUESTS_C1; i++) c1.push(await timed());
    c1.sort((a, b) => a - b);
    const c32: number[] = [];
    const cpuBefore = cpuSeconds(pids);
    const started = performance.now();
    const end = started + SECONDS_C32 * 1000;
    await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
      while (performance.now() < end) c32.push(await timed());
    }));
    const elapsed = (performance.now() - started) / 1000;
    const cpuUs = ((cpuSeconds(pids) - cpuBefore) / c32.length) * 1e6;
    c32.sort((a, b) => a - b);
    return { c1p50: percentile(c1, 50), c1p99: percentile(c1, 99), rps: c32.length / elapsed, c32p50: percentile(c32, 50), cpuUs, errors };
  } finally {
    agent.destroy();
  }
}

async function runMode(mode: Mode, upstreamUrl: string, receiverUrl: string): Promise<Result> {
  const env: Record<string, string> = { LOG_LEVEL: 'info' };
  if (mode === 'disabled') env.OTEL_SDK_DISABLED = 'true';
  if (mode === 'on') Object.assign(env, { OTEL_EXPORTER_OTLP_ENDPOINT: receiverUrl, OTEL_TRACES_SAMPLER: 'always_on' });
  const cluster = await KasCluster.start({ nodes: 1, env });
  try {
    const agentToken = await cluster.registerAgent('bench');
    const token = await cluster.issueToken({ agents: ['bench'] });
    const agent = await cluster.startAgent({ id: 'bench', token: agentToken, prometheusUrl: upstreamUrl, env });
    return await measure(new URL(cluster.nodes[0]!.apiUrl), token, [cluster.nodes[0]!.proc.pid!, agent.proc.pid!]);
  } finally {
    await cluster.stop();
  }
}

const upstream = await startFakeUpstream();
const receiver = await startOtlpReceiver();
const results: Record<Mode, Result[]> = { disabled: [], off: [], on: [] };
const startedAt = new Date();
const loadBefore = loadavg();
try {
  for (let round = 1; round <= ROUNDS; round++) {
    // Each round starts with another mode, and every other round runs them backwards.
    const rotated = MODES.map((_, i) => MODES[(i + round - 1) % MODES.length]!);
    for (const mode of round % 2 ? rotated : rotated.reverse()) {
      const bytesBefore = receiver.stats.bytes;
      const r = await runMode(mode, upstream.url, receiver.url);
      results[mode].push(r);
      progress(
        `round ${round} ${mode.padEnd(8)} c1 p50 ${r.c1p50.toFixed(2)} ms, p99 ${r.c1p99.toFixed(2)} ms; ` +
          `c32 ${r.rps.toFixed(0)} req/s, p50 ${r.c32p50.toFixed(2)} ms, kas+agentk CPU ${r.cpuUs.toFixed(0)} µs/request; errors ${r.errors}` +
          (mode === 'on' ? `; exported ${((receiver.stats.bytes - bytesBefore) / 1e6).toFixed(1)} MB` : ''),
      );
    }
  }
} finally {
  await upstream.stop();
  await receiver.stop();
}

const summary = Object.fromEntries(
  MODES.map((m) => [
    m,
    {
      c1p50: median(results[m].map((r) => r.c1p50)),
      c1p99: median(results[m].map((r) => r.c1p99)),
      rps: median(results[m].map((r) => r.rps)),
      c32p50: median(results[m].map((r) => r.c32p50)),
      cpuUs: median(results[m].map((r) => r.cpuUs)),
      errors: results[m].reduce((n, r) => n + r.errors, 0),
    },
  ]),
) as Record<Mode, Result>;

const { disabled, off, on } = summary;
const less = (a: Result, b: Result) => (1 - a.rps / b.rps) * 100;
const more = (a: Result, b: Result) => (a.cpuUs / b.cpuUs - 1) * 100;
const verdict = (cost: number, target: number) => `${cost.toFixed(1)}% (target ≤ ${target}%: ${cost <= target ? 'met' : 'MISSED'})`;
const p50Added = on.c1p50 - off.c1p50;
const lines = [
  `Measured ${startedAt.toISOString()} on ${cpus().length} × ${cpus()[0]?.model ?? 'unknown CPU'}, ${Math.round(totalmem() / 2 ** 30)} GiB, ` +
    `Node ${process.version}; load average before ${loadBefore.map((l) => l.toFixed(2)).join(' ')}, after ${loadavg().map((l) => l.toFixed(2)).join(' ')}.`,
  `${ROUNDS} rounds, medians shown; c1 = ${REQUESTS_C1} sequential requests, c32 = ${SECONDS_C32} s at 32 concurrent connections.`,
  '',
  '| mode | c1 p50 (ms) | c1 p99 (ms) | c32 req/s | c32 p50 (ms) | kas + agentk CPU per request (µs) | errors |',
  '| --- | ---: | ---: | ---: | ---: | ---: | ---: |',
  ...MODES.map((m) => {
    const r = summary[m];
    return `| ${m} | ${r.c1p50.toFixed(2)} | ${r.c1p99.toFixed(2)} | ${r.rps.toFixed(0)} | ${r.c32p50.toFixed(2)} | ${r.cpuUs.toFixed(0)} | ${r.errors} |`;
  }),
  '',
  '| cost | in req/s at c32 | in CPU per request |',
  '| --- | ---: | ---: |',
  `| off against disabled | ${verdict(less(off, disabled), 5)} | ${verdict(more(off, disabled), 5)} |`,
  `| on against off | ${verdict(less(on, off), 15)} | ${verdict(more(on, off), 15)} |`,
  '',
  `Tracing on adds ${p50Added >= 0 ? '+' : ''}${p50Added.toFixed(2)} ms p50 at c1 and ${on.c32p50 - off.c32p50 >= 0 ? '+' : ''}${(on.c32p50 - off.c32p50).toFixed(2)} ms p50 at c32.`,
  '',
  'Per round:',
  '',
  ...MODES.flatMap((m) =>
    results[m].map((r, i) => `- ${m} round ${i + 1}: c1 p50 ${r.c1p50.toFixed(2)} ms, c32 ${r.rps.toFixed(0)} req/s, c32 p50 ${r.c32p50.toFixed(2)} ms, ${r.cpuUs.toFixed(0)} µs CPU per request`),
  ),
];
process.stdout.write(`${lines.join('\n')}\n`);
