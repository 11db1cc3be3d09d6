// `npm run bench:profile`: where kas and agentk spend their CPU on the Prometheus passthrough.
// One kas node and one agentk (both under `--cpu-prof`) in front of a fake Prometheus, BENCH_SECONDS
// (15) of `GET /api/v1/query` at 32 concurrent keep-alive connections; then each process's profile
// is summed by where the code comes from (Node's own modules, each npm package, kas's files, the
// garbage collector, native code) and by function. The raw .cpuprofile files are kept (the path is
// printed) for a flame graph in Chrome DevTools or speedscope. BENCH_PROFILE_TRACING=1 turns tracing
// on (every request sampled, exported over OTLP to a receiver in this process). BENCH_PROFILE_BIG=<bytes>
// profiles answers of that size instead, one at a time, for BENCH_SECONDS.
import { readdirSync, readFileSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import http from 'node:http';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { KasCluster } from '../test/support/kas.ts';
import { startOtlpReceiver } from '../test/support/otlp.ts';
import { startFakeUpstream } from '../test/support/upstream.ts';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 15);
const BIG = Number(process.env.BENCH_PROFILE_BIG ?? 0);
const CONCURRENCY = Number(process.env.BENCH_PROFILE_CONCURRENCY ?? (BIG ? 1 : 32));
const TOP = 12;

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

function progress(line: string): void {
  process.stderr.write(`[bench] ${line}\n`);
}

/** Where a frame's code comes from: a Node module, an npm package, a kas file, or the VM itself. */
function origin(frame: ProfileNode['callFrame']): string {
  const { url, functionName } = frame;
  if (!url) return functionName.startsWith('(') ? functionName : '(native)';
  if (url.startsWith('node:')) return url.replace(/^node:(internal\/)?/, 'node:');
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (pkg) return pkg[1]!;
  const own = /\/((?:server|agent|protocol|otel|bin)\/.*)$/.exec(url);
  return own ? own[1]! : url;
}

/** Self time (ms) by origin and by function, without the idle time. */
function summarise(profile: Profile): { busyMs: number; byOrigin: [string, number][]; byFunction: [string, number][] } {
  const nodes = new Map(profile.nodes.map((n) => [n.id, n]));
  const selfUs = new Map<number, number>();
  for (let i = 0; i < profile.samples.length; i++) {
    const id = profile.samples[i]!;
    selfUs.set(id, (selfUs.get(id) ?? 0) + (profile.timeDeltas[i + 1] ?? 0));
  }
  const byOrigin = new Map<string, number>();
  const byFunction = new Map<string, number>();
  let busy = 0;
  for (const [id, us] of selfUs) {
    const { callFrame } = nodes.get(id)!;
    if (callFrame.functionName === '(idle)') continue;
    busy += us;
    const where = origin(callFrame);
    byOrigin.set(where, (byOrigin.get(where) ?? 0) + us);
    const fn = `${callFrame.functionName || '(anonymous)'} (${where}${callFrame.url ? `:${callFrame.lineNumber + 1}` : ''})`;
    byFunction.set(fn, (byFunction.get(fn) ?? 0) + us);
  }
  const sorted = (m: Map<string, number>) => [...m].sort((a, b) => b[1] - a[1]).map(([k, v]) => [k, v / 1000] as [string, number]);
  return { busyMs: busy / 1000, byOrigin: sorted(byOrigin), byFunction: sorted(byFunction) };
}

function load(url: string, headers: Record<string, string>, seconds: number): Promise<number> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: CONCURRENCY });
  const until = Date.now() + seconds * 1000;
  let count = 0;
  const one = (): Promise<void> =>
    new Promise((resolve, reject) => {
      http
        .get(url, { agent, headers }, (res) => {
          res.resume();
          res.on('end', () => {
            count++;
            resolve();
          });
        })
        .on('error', reject);
    });
  const worker = async () => {
    while (Date.now() < until) await one();
  };
  return Promise.all(Array.from({ length: CONCURRENCY }, worker)).then(() => {
    agent.destroy();
    return count;
  });
}

const dir = await mkdtemp(join(tmpdir(), 'kas-profile-'));
const tracing = process.env.BENCH_PROFILE_TRACING === '1';
const otlp = tracing ? await startOtlpReceiver() : undefined;
const traceEnv: Record<string, string> = otlp ? { OTEL_EXPORTER_OTLP_ENDPOINT: otlp.url } : {};
const profiling = { NODE_OPTIONS: `--cpu-prof --cpu-prof-dir=${dir}`, LOG_LEVEL: 'info', ...traceEnv };
const prometheus = await startFakeUpstream();
const cluster = await KasCluster.start({ nodes: 0, env: { LOG_LEVEL: 'info' } });
let requests = 0;
let pids: { kas: number; agentk: number };
try {
  const agentToken = await cluster.registerAgent('prof');
  const token = await cluster.issueToken();
  // The node under the profiler (the CLI runs above are not).
  await cluster.addNode({ NODE_OPTIONS: profiling.NODE_OPTIONS, ...traceEnv });
  const agent = await cluster.startAgent({ id: 'prof', token: agentToken, prometheusUrl: prometheus.url, env: profiling });
  await cluster.waitForReplicas('prof', 1, token);
  pids = { kas: cluster.nodes[0]!.proc.pid!, agentk: agent.proc.pid! };
  const url = `${cluster.nodes[0]!.apiUrl}/api/v1/agents/prof/prometheus/api/v1/query?query=${BIG ? `big&bytes=${BIG}` : 'up'}`;
  const headers = { authorization: `Bearer ${token}` };
  progress('warm-up');
  await load(url, headers, 3);
  progress(`${SECONDS} s at c=${CONCURRENCY}`);
  requests = await load(url, headers, SECONDS);
  await agent.proc.stop();
} finally {
  await cluster.stop();
  await prometheus.stop();
  await otlp?.stop();
}

const out: string[] = [
  '## Where the CPU goes (`bench/profile.ts`)',
  '',
  `Measured ${new Date().toISOString()} on ${cpus().length} × ${cpus()[0]?.model ?? 'unknown CPU'}, node ${process.version}: one kas node and agentk in front of a fake Prometheus, ${requests} ${BIG ? `answers of ${BIG} bytes` : 'requests'} in ${SECONDS} s at c=${CONCURRENCY} (${BIG ? `${((requests * BIG) / SECONDS / 1e6).toFixed(0)} MB/s` : `${Math.round(requests / SECONDS)} req/s`}, warm-up and start-up included in the profiles), tracing ${tracing ? 'on (every request sampled and exported)' : 'off (the default: no endpoint)'}. Self time, idle left out; the profiles are in ${dir}.`,
  '',
];
for (const [name, pid] of Object.entries(pids!)) {
  const file = readdirSync(dir).find((f) => f.includes(`.${pid}.`) && f.endsWith('.cpuprofile'));
  if (!file) {
    out.push(`No profile written by ${name} (pid ${pid}).`, '');
    continue;
  }
  const { busyMs, byOrigin, byFunction } = summarise(JSON.parse(readFileSync(join(dir, file), 'utf8')) as Profile);
  const perRequest = (ms: number) => ((ms * 1000) / requests).toFixed(1);
  out.push(`### ${name}: ${(busyMs / 1000).toFixed(1)} s busy, ${perRequest(busyMs)} µs per request`, '');
  out.push('| where the code comes from | self % | µs per request |', '| --- | ---: | ---: |');
  for (const [where, ms] of byOrigin.slice(0, TOP)) out.push(`| ${where} | ${((ms / busyMs) * 100).toFixed(1)} | ${perRequest(ms)} |`);
  out.push('', '| function | self % |', '| --- | ---: |');
  for (const [fn, ms] of byFunction.slice(0, TOP)) out.push(`| ${fn.replaceAll('|', '\\|')} | ${((ms / busyMs) * 100).toFixed(1)} |`);
  out.push('');
}
process.stdout.write(`${out.join('\n')}\n`);
