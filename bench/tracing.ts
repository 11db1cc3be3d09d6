// `node bench/tracing.ts`: what tracing costs. One kas node and one agentk (separate processes,
// as deployed) in front of a small fake Prometheus (test/support/upstream.ts), measured three ways:
//
//   disabled   OTEL_SDK_DISABLED=true: no instrumentation loaded at all (reference only)
//   off        the default: instrumented, no OTLP endpoint, so spans are ids only, nothing sent
//   on         OTEL_TRACES_SAMPLER=always_on, every span exported (http/protobuf, the default) to
//              a local OTLP receiver in this process, which reads and discards the batches
//
// For each: a warm-up, then BENCH_REQUESTS (1000) requests one at a time (p50, p99 latency), then
// BENCH_SECONDS (10) seconds at 32 concurrent keep-alive connections (req/s, p50). The modes run
// in turns for BENCH_ROUNDS (3) rounds, each with fresh processes, and the median of the rounds
// is reported, which evens out some of what else the machine does. Results go to stdout as
// markdown, progress to stderr.
import http from 'node:http';
import { cpus, loadavg, totalmem } from 'node:os';
import { KasCluster } from '../test/support/kas.ts';
import { startOtlpReceiver } from '../test/support/otlp.ts';
import { startFakeUpstream } from '../test/support/upstream.ts';

const REQUESTS_C1 = Number(process.env.BENCH_REQUESTS ?? 1000);
const SECONDS_C32 = Number(process.env.BENCH_SECONDS ?? 10);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const CONCURRENCY = 32;
const PATH = '/api/v1/agents/bench/prometheus/api/v1/query?query=up';

type Mode = 'disabled' | 'off' | 'on';
const MODES: Mode[] = ['disabled', 'off', 'on'];

interface Result {
  c1p50: number;
  c1p99: number;
  rps: number;
  c32p50: number;
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

async function measure(url: URL, token: string): Promise<Result> {
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
    const started = performance.now();
    const end = started + SECONDS_C32 * 1000;
    await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
      while (performance.now() < end) c32.push(await timed());
    }));
    const elapsed = (performance.now() - started) / 1000;
    c32.sort((a, b) => a - b);
    return { c1p50: percentile(c1, 50), c1p99: percentile(c1, 99), rps: c32.length / elapsed, c32p50: percentile(c32, 50), errors };
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
    await cluster.startAgent({ id: 'bench', token: agentToken, prometheusUrl: upstreamUrl, env });
    return await measure(new URL(cluster.nodes[0]!.apiUrl), token);
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
    for (const mode of MODES) {
      const bytesBefore = receiver.stats.bytes;
      const r = await runMode(mode, upstream.url, receiver.url);
      results[mode].push(r);
      progress(
        `round ${round} ${mode.padEnd(8)} c1 p50 ${r.c1p50.toFixed(2)} ms, p99 ${r.c1p99.toFixed(2)} ms; ` +
          `c32 ${r.rps.toFixed(0)} req/s, p50 ${r.c32p50.toFixed(2)} ms; errors ${r.errors}` +
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
      errors: results[m].reduce((n, r) => n + r.errors, 0),
    },
  ]),
) as Record<Mode, Result>;

const off = summary.off;
const on = summary.on;
const rpsDrop = (1 - on.rps / off.rps) * 100;
const p50Added = on.c1p50 - off.c1p50;
const lines = [
  `Measured ${startedAt.toISOString()} on ${cpus().length} × ${cpus()[0]?.model ?? 'unknown CPU'}, ${Math.round(totalmem() / 2 ** 30)} GiB, ` +
    `Node ${process.version}; load average before ${loadBefore.map((l) => l.toFixed(2)).join(' ')}, after ${loadavg().map((l) => l.toFixed(2)).join(' ')}.`,
  `${ROUNDS} rounds, medians shown; c1 = ${REQUESTS_C1} sequential requests, c32 = ${SECONDS_C32} s at 32 concurrent connections.`,
  '',
  '| mode | c1 p50 (ms) | c1 p99 (ms) | c32 req/s | c32 p50 (ms) | errors |',
  '| --- | ---: | ---: | ---: | ---: | ---: |',
  ...MODES.map((m) => {
    const r = summary[m];
    return `| ${m} | ${r.c1p50.toFixed(2)} | ${r.c1p99.toFixed(2)} | ${r.rps.toFixed(0)} | ${r.c32p50.toFixed(2)} | ${r.errors} |`;
  }),
  '',
  `Tracing on vs off: ${rpsDrop.toFixed(1)}% fewer req/s at c32 (target ≤ 15%), ${p50Added >= 0 ? '+' : ''}${p50Added.toFixed(2)} ms p50 at c1 ` +
    `(target ≤ 0.3 ms), ${on.c32p50 - off.c32p50 >= 0 ? '+' : ''}${(on.c32p50 - off.c32p50).toFixed(2)} ms p50 at c32.`,
  '',
  'Per round:',
  '',
  ...MODES.flatMap((m) => results[m].map((r, i) => `- ${m} round ${i + 1}: c1 p50 ${r.c1p50.toFixed(2)} ms, c32 ${r.rps.toFixed(0)} req/s, c32 p50 ${r.c32p50.toFixed(2)} ms`)),
];
process.stdout.write(`${lines.join('\n')}\n`);
