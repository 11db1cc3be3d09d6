// `npm run bench:footprint`: what kas and agentk cost at rest, and how fast a large answer goes
// through them.
//
//   idle memory   RSS of one kas node and of agentk BENCH_IDLE_S (10) seconds after they are up,
//                 with tracing configured (an OTLP endpoint that receives the spans): agentk with
//                 Prometheus only, and with Prometheus and Kubernetes configured. Targets: kas ≤
//                 120 MB, agentk ≤ 80 MB. Beside them, what a bare Node process takes on this
//                 machine (the floor under both).
//   1 GiB answer  BENCH_BIG_BYTES (1 GiB) from a fake Prometheus, read as fast as the caller can:
//                 directly, through a minimal node:http proxy, through kas on the node holding
//                 the agent and through the other node (target: cross node ≥ 50% of direct).
//
// BENCH_FOOTPRINT_PARTS=idle or =big runs one part.
// Progress goes to stderr, the results to stdout as markdown.
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startKubeSim } from '../demo/k8sSim.ts';
import { KasCluster } from '../test/support/kas.ts';
import { startOtlpReceiver } from '../test/support/otlp.ts';
import { rssBytes } from './procStats.ts';
import { startProxy } from './proxies.ts';
import { startFakeUpstream } from '../test/support/upstream.ts';

const IDLE_S = Number(process.env.BENCH_IDLE_S ?? 10);
const BIG_BYTES = Number(process.env.BENCH_BIG_BYTES ?? 2 ** 30);
const ROUNDS = Number(process.env.BENCH_BIG_ROUNDS ?? 2);
const ROOT = process.env.BENCH_KAS_ROOT ?? fileURLToPath(new URL('..', import.meta.url));

function progress(line: string): void {
  process.stderr.write(`[bench] ${line}\n`);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A bare Node process (the same binary and flags kas runs with): the floor under kas and agentk. */
async function bareNode(code: string): Promise<number> {
  const child = spawn(process.execPath, ['--input-type=module', '-e', `${code}; setInterval(() => {}, 1000)`], { stdio: 'ignore' });
  await sleep(3000);
  const rss = rssBytes(child.pid) / 2 ** 20;
  child.kill();
  return rss;
}

/** Reads one answer to the end as fast as it comes; MB/s (10^6 bytes) and bytes read. */
function download(url: string, headers: Record<string, string>): Promise<{ mbps: number; bytes: number }> {
  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint();
    http
      .get(url, { headers }, (res) => {
        if (res.statusCode !== 200) {
          res.resume();
          return reject(new Error(`${url}: HTTP ${res.statusCode}`));
        }
        let bytes = 0;
        res.on('data', (chunk: Buffer) => (bytes += chunk.length));
        res.on('end', () => {
          const seconds = Number(process.hrtime.bigint() - started) / 1e9;
          resolve({ mbps: bytes / 1e6 / seconds, bytes });
        });
        res.on('error', reject);
      })
      .on('error', reject);
  });
}

/** RSS of kas and of agentk (Prometheus only, then with Kubernetes too), idle, tracing configured. */
async function idleRss(compileCache: string): Promise<{ kas: number; agent: number; agentBoth: number }> {
  const otlp = await startOtlpReceiver();
  const prometheus = await startFakeUpstream();
  const sim = await startKubeSim({ token: 'footprint', anonymous: true });
  const dir = await mkdtemp(join(tmpdir(), 'kas-footprint-'));
  const kubeconfig = join(dir, 'kubeconfig');
  await writeFile(kubeconfig, sim.kubeconfig({ token: 'footprint' }));
  const tracing = { OTEL_EXPORTER_OTLP_ENDPOINT: otlp.url, LOG_LEVEL: 'info', NODE_COMPILE_CACHE: compileCache };
  const cluster = await KasCluster.start({ nodes: 1, env: tracing });
  try {
    const agentToken = await cluster.registerAgent('idle');
    const token = await cluster.issueToken();
    progress('idle memory: kas and agentk (Prometheus only)');
    const promOnly = await cluster.startAgent({ id: 'idle', token: agentToken, prometheusUrl: prometheus.url, env: tracing });
    await cluster.waitForReplicas('idle', 1, token);
    // One request through each, so what the first request loads is counted too.
    const base = `${cluster.nodes[0]!.apiUrl}/api/v1/agents/idle`;
    await (await fetch(`${base}/prometheus/api/v1/query?query=up`, { headers: { authorization: `Bearer ${token}` } })).text();
    await sleep(IDLE_S * 1000);
    const kas = rssBytes(cluster.nodes[0]!.proc.pid) / 2 ** 20;
    const agent = rssBytes(promOnly.proc.pid) / 2 ** 20;
    await promOnly.proc.stop();
    progress('idle memory: agentk with Prometheus and Kubernetes');
    const both = await cluster.startAgent({
      id: 'idle',
      token: agentToken,
      configYaml: `prometheus:\n  url: ${prometheus.url}\nkubernetes:\n  kubeconfig: ${kubeconfig}\n`,
      env: tracing,
    });
    await cluster.waitForReplicas('idle', 1, token);
    await (await fetch(`${base}/prometheus/api/v1/query?query=up`, { headers: { authorization: `Bearer ${token}` } })).text();
    await (await fetch(`${base}/kubernetes/api/v1/namespaces`, { headers: { authorization: `Bearer ${token}` } })).text();
    await sleep(IDLE_S * 1000);
    return { kas, agent, agentBoth: rssBytes(both.proc.pid) / 2 ** 20 };
  } finally {
    await cluster.stop();
    await Promise.all([otlp.stop(), prometheus.stop(), sim.stop()]);
    await rm(dir, { recursive: true, force: true });
  }
}

async function idleMemory(): Promise<string[]> {
  progress('idle memory: bare node processes');
  const bare = await bareNode('');
  const bareHttp = await bareNode(`import http from 'node:http'; http.createServer().listen(0)`);
  // Node's compile cache (bin/*.js turn it on) in a directory of the bench's own: the first start
  // fills it, as a new machine's first start would; the second is every start after (and every
  // start of the image, whose cache is warmed when it is built).
  const cache = await mkdtemp(join(tmpdir(), 'kas-footprint-cache-'));
  try {
    progress('idle memory, first start (compile cache empty)');
    const cold = await idleRss(cache);
    progress('idle memory, second start (compile cache warm)');
    const warm = await idleRss(cache);
    const mark = (value: number, target: number) => `${value.toFixed(0)} MB (target ≤ ${target} MB: ${value <= target ? 'met' : 'MISSED'})`;
    return [
      `### Idle memory, ${IDLE_S} s after start and one request, tracing configured`,
      '',
      '| process | first start (compile cache empty) | every start after |',
      '| --- | ---: | ---: |',
      `| bare node (no code) | ${bare.toFixed(0)} MB | |`,
      `| bare node with a node:http server | ${bareHttp.toFixed(0)} MB | |`,
      `| kas, one node, no Redis | ${cold.kas.toFixed(0)} MB | ${mark(warm.kas, 120)} |`,
      `| agentk, Prometheus | ${cold.agent.toFixed(0)} MB | ${mark(warm.agent, 80)} |`,
      `| agentk, Prometheus and Kubernetes | ${cold.agentBoth.toFixed(0)} MB | ${mark(warm.agentBoth, 80)} |`,
      '',
    ];
  } finally {
    await rm(cache, { recursive: true, force: true });
  }
}

async function bigAnswer(): Promise<string[]> {
  const prometheus = await startFakeUpstream();
  const proxy = await startProxy('proxy', prometheus.url);
  const cluster = await KasCluster.start({ nodes: 2, env: { LOG_LEVEL: 'info' } });
  try {
    const agentToken = await cluster.registerAgent('big');
    await cluster.startAgent({ id: 'big', token: agentToken, node: 0, prometheusUrl: prometheus.url, env: { LOG_LEVEL: 'info' } });
    const token = await cluster.issueToken();
    await cluster.waitForReplicas('big', 1, token, 1);
    const query = `/api/v1/query?query=big&bytes=${BIG_BYTES}`;
    const auth = { authorization: `Bearer ${token}` };
    const paths: [string, string, Record<string, string>][] = [
      ['direct', `${prometheus.url}${query}`, {}],
      ['minimal node:http proxy', `${proxy.url}${query}`, {}],
      ['kas, same node', `${cluster.nodes[0]!.apiUrl}/api/v1/agents/big/prometheus${query}`, auth],
      ['kas, cross node', `${cluster.nodes[1]!.apiUrl}/api/v1/agents/big/prometheus${query}`, auth],
    ];
    const best = new Map<string, number>();
    for (let round = 1; round <= ROUNDS; round++) {
      for (const [name, url, headers] of round % 2 ? paths : [...paths].reverse()) {
        progress(`1 GiB answer, round ${round}/${ROUNDS}: ${name}`);
        const { mbps, bytes } = await download(url, headers);
        if (bytes !== BIG_BYTES) throw new Error(`${name}: read ${bytes} bytes of ${BIG_BYTES}`);
        best.set(name, Math.max(best.get(name) ?? 0, mbps));
      }
    }
    const direct = best.get('direct')!;
    const cross = best.get('kas, cross node')!;
    return [
      `### A ${(BIG_BYTES / 2 ** 30).toFixed(BIG_BYTES % 2 ** 30 ? 2 : 0)} GiB answer (best of ${ROUNDS} rounds, alternating order)`,
      '',
      '| path | MB/s | of direct |',
      '| --- | ---: | ---: |',
      ...paths.map(([name]) => `| ${name} | ${best.get(name)!.toFixed(0)} | ${((best.get(name)! / direct) * 100).toFixed(0)}% |`),
      '',
      `Target: cross node ≥ 50% of direct: **${((cross / direct) * 100).toFixed(0)}%** (${cross / direct >= 0.5 ? 'met' : 'MISSED'}).`,
      '',
    ];
  } finally {
    await cluster.stop();
    await proxy.stop();
    await prometheus.stop();
  }
}

const startedAt = new Date();
const load = loadavg().map((l) => l.toFixed(2)).join(' ');
const parts = (process.env.BENCH_FOOTPRINT_PARTS ?? 'idle,big').split(',');
const memory = parts.includes('idle') ? await idleMemory() : [];
const big = parts.includes('big') ? await bigAnswer() : [];
process.stdout.write(
  [
    `## Footprint (\`bench/footprint.ts\`)`,
    '',
    `Measured ${startedAt.toISOString()} on ${cpus().length} × ${cpus()[0]?.model ?? 'unknown CPU'}, ${Math.round(totalmem() / 2 ** 30)} GiB, node ${process.version}; load average at start ${load}; kas from ${ROOT}.`,
    '',
    ...memory,
    ...big,
  ].join('\n') + '\n',
);
