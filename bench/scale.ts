// `npm run bench:scale`: how many agents one kas node holds, and what membership costs a cluster.
//
//   one node    BENCH_SCALE_AGENTS (10,000) agent connections (100 agents × 100 replicas) dialling
//               one kas node at once, from cold: how long until all are connected (a connect
//               storm, with the agent-connection limits in place), kas RSS per connected agent
//               (10 s and a minute after the storm), the live JS heap and RSS per agent after a
//               full collection (kas runs with --inspect for that), and the latency of a query to
//               one of them while the storm lasts
//   membership  3 nodes × BENCH_SCALE_PER_NODE (10,000) replicas, idle: Redis commands and kas CPU
//               per minute spent on keeping the cluster's view current
//
// The agents are child processes (bench/scaleAgents.ts) speaking agentk's tunnel protocol, many
// per process. BENCH_KAS_ROOT runs another checkout's kas (a `before` to compare with: check it
// out with `git worktree add /tmp/kas-before <commit> && (cd /tmp/kas-before && npm ci)`).
import { type ChildProcess, execFileSync, fork, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { openSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { registerAgent } from '../server/auth/agentTokens.ts';
import { runKas } from '../test/support/kas.ts';
import { freePort } from '../test/support/ports.ts';
import { waitFor } from '../test/support/procs.ts';
import { startRedis, type RedisServer } from '../test/support/redis.ts';
import { cpuSeconds, rssBytes } from './procStats.ts';

const ROOT = process.env.BENCH_KAS_ROOT ?? fileURLToPath(new URL('..', import.meta.url));
const CLIENT = fileURLToPath(new URL('./scaleAgents.ts', import.meta.url));
const AGENTS = Number(process.env.BENCH_SCALE_AGENTS ?? 10_000);
const PER_NODE = Number(process.env.BENCH_SCALE_PER_NODE ?? 10_000);
const MEASURE_S = Number(process.env.BENCH_SCALE_SECONDS ?? 60);
const REPLICAS_PER_AGENT = 10;
const PER_PROCESS = 2_500;

function progress(line: string): void {
  process.stderr.write(`[bench:scale] ${line}\n`);
}

/** What Redis has done so far: commands, CPU seconds, bytes in and out. */
function redisWork(redis: RedisServer): { commands: number; cpu: number; bytes: number } {
  const info = execFileSync('redis-cli', ['-p', String(redis.port), 'info', 'all'], { encoding: 'utf8' });
  const field = (name: string) => Number(new RegExp(`${name}:([\\d.]+)`).exec(info)![1]);
  return {
    commands: field('total_commands_processed'),
    cpu: field('used_cpu_sys') + field('used_cpu_user'),
    bytes: field('total_net_input_bytes') + field('total_net_output_bytes'),
  };
}

function percentile(sorted: number[], p: number): number {
  return sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

interface Node {
  name: string;
  child: ChildProcess;
  apiUrl: string;
  agentUrl: string;
  obsUrl: string;
}

const cleanups: (() => Promise<unknown>)[] = [];

/**
 * The live JS heap of a process started with `--inspect`: a full collection first (over the
 * DevTools protocol), then `process.memoryUsage()`. RSS after a connect storm also holds the
 * storm's garbage and whatever room V8 keeps to grow, which vary from run to run; this does not.
 */
async function liveHeap(inspectPort: number): Promise<{ heapUsed: number; rss: number }> {
  const targets = (await (await fetch(`http://127.0.0.1:${inspectPort}/json/list`)).json()) as { webSocketDebuggerUrl: string }[];
  const ws = new WebSocket(targets[0]!.webSocketDebuggerUrl);
  await new Promise((resolve, reject) => {
    ws.onopen = resolve;
    ws.onerror = reject;
  });
  let next = 0;
  const call = (method: string, params: object = {}) =>
    new Promise<{ result?: { result?: { value?: string } } }>((resolve) => {
      const id = ++next;
      const listener = (event: MessageEvent) => {
        const message = JSON.parse(String(event.data)) as { id?: number };
        if (message.id !== id) return;
        ws.removeEventListener('message', listener);
        resolve(message as { result?: { result?: { value?: string } } });
      };
      ws.addEventListener('message', listener);
      ws.send(JSON.stringify({ id, method, params }));
    });
  await call('HeapProfiler.collectGarbage');
  await call('HeapProfiler.collectGarbage');
  const answer = await call('Runtime.evaluate', { expression: 'JSON.stringify(process.memoryUsage())' });
  ws.close();
  return JSON.parse(answer.result!.result!.value!) as { heapUsed: number; rss: number };
}

async function startNode(dir: string, env: Record<string, string>, index: number, inspectPort?: number): Promise<Node> {
  const [agent, api, priv, obs] = await Promise.all([freePort(), freePort(), freePort(), freePort()]);
  const name = `kas-${index}`;
  const log = openSync(join(dir, `${name}.log`), 'a');
  const inspect = inspectPort ? [`--inspect=127.0.0.1:${inspectPort}`] : [];
  const child = spawn(process.execPath, [...inspect, join(ROOT, 'bin/kas.js'), 'serve'], {
    env: {
      ...process.env,
      ...env,
      KAS_NODE_NAME: name,
      KAS_AGENT_LISTEN: `127.0.0.1:${agent}`,
      KAS_API_LISTEN: `127.0.0.1:${api}`,
      KAS_PRIVATE_LISTEN: `127.0.0.1:${priv}`,
      KAS_OBSERVABILITY_LISTEN: `127.0.0.1:${obs}`,
    },
    stdio: ['ignore', log, log],
  });
  cleanups.push(async () => {
    if (child.exitCode !== null) return;
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
  });
  await waitFor(async () => (await fetch(`http://127.0.0.1:${obs}/readiness`)).ok, { timeoutMs: 30_000, what: `${name} to be ready` });
  return { name, child, apiUrl: `http://127.0.0.1:${api}`, agentUrl: `ws://127.0.0.1:${agent}`, obsUrl: `http://127.0.0.1:${obs}` };
}

async function setUp(dir: string, redis: RedisServer, agents: number): Promise<{ env: Record<string, string>; replicas: [string, string][]; apiToken: string }> {
  const env: Record<string, string> = { KAS_DATA_DIR: join(dir, 'data'), KAS_REDIS_URL: redis.url, LOG_LEVEL: 'warn' };
  await mkdir(env.KAS_DATA_DIR!, { recursive: true });
  for (const name of ['api-secret', 'private-secret']) await writeFile(join(env.KAS_DATA_DIR!, name), randomBytes(32).toString('base64'), { mode: 0o600 });
  const replicas: [string, string][] = [];
  for (let a = 0; a < Math.ceil(agents / REPLICAS_PER_AGENT); a++) {
    const token = await registerAgent(join(env.KAS_DATA_DIR!, 'agents.json'), `scale-${a}`);
    for (let r = 0; r < REPLICAS_PER_AGENT && replicas.length < agents; r++) replicas.push([token, `scale-${a}-${r}`]);
  }
  const issued = await runKas(['token', 'issue', '--sub', 'bench', '--agents', '*', '--ttl', '1h'], env);
  return { env, replicas, apiToken: issued.stdout.trim() };
}

class Fleet {
  #children: ChildProcess[] = [];

  /** Starts the client processes and, once every one of them is loaded, gives them their replicas. */
  static async start(kasUrls: string[][], replicas: [string, string][], perSecond: number): Promise<Fleet> {
    const fleet = new Fleet();
    const jobs: object[] = [];
    for (let i = 0; i * PER_PROCESS < replicas.length; i++) {
      const slice = replicas.slice(i * PER_PROCESS, (i + 1) * PER_PROCESS);
      jobs.push({ kasUrls: kasUrls[i % kasUrls.length], replicas: slice, perSecond: perSecond / Math.ceil(replicas.length / PER_PROCESS) });
      fleet.#children.push(fork(CLIENT, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }));
    }
    await Promise.all(fleet.#children.map((c) => new Promise((resolve) => c.once('message', resolve))));
    fleet.#children.forEach((child, i) => child.send(jobs[i]!));
    return fleet;
  }

  async status(): Promise<{ connected: number; lastConnectedAt: number; refused: number }> {
    const all = await Promise.all(
      this.#children.map(
        (c) =>
          new Promise<{ connected: number; lastConnectedAt: number; refused: number }>((resolve) => {
            c.once('message', (m) => resolve(m as { connected: number; lastConnectedAt: number; refused: number }));
            c.send('status');
          }),
      ),
    );
    return { connected: all.reduce((a, s) => a + s.connected, 0), lastConnectedAt: Math.max(...all.map((s) => s.lastConnectedAt)), refused: all.reduce((a, s) => a + s.refused, 0) };
  }

  stop(): void {
    for (const child of this.#children) child.send('stop');
  }
}

function query(url: string, token: string, agent: http.Agent): Promise<number> {
  return new Promise((resolve) => {
    const t0 = performance.now();
    http
      .get(url, { agent, headers: { authorization: `Bearer ${token}` } }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode === 200 ? performance.now() - t0 : NaN));
      })
      .on('error', () => resolve(NaN));
  });
}

async function oneNode(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'kas-scale-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  const redis = await startRedis();
  cleanups.push(() => redis.stop());
  const { env, replicas, apiToken } = await setUp(dir, redis, AGENTS);
  const inspectPort = await freePort();
  const node = await startNode(dir, env, 0, inspectPort);
  await new Promise((r) => setTimeout(r, 3_000));
  const rss0 = rssBytes(node.child.pid);
  const heap0 = await liveHeap(inspectPort);
  progress(`starting the client processes, then a storm of ${AGENTS} agent connections onto one node`);
  const fleet = await Fleet.start([[node.agentUrl]], replicas, 1_000_000);
  const started = Date.now();
  // Meanwhile, one query after the other to one agent, through the node.
  const latencies: number[] = [];
  let failed = 0;
  let storming = true;
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const asker = (async () => {
    while (storming) {
      const ms = await query(`${node.apiUrl}/api/v1/agents/scale-0/prometheus/api/v1/query?query=up`, apiToken, agent);
      if (Number.isNaN(ms)) failed++;
      else latencies.push(ms);
      await new Promise((r) => setTimeout(r, 20));
    }
  })();
  let status = await fleet.status();
  while (status.connected < AGENTS && Date.now() - started < 180_000) {
    await new Promise((r) => setTimeout(r, 1_000));
    status = await fleet.status();
    progress(`${status.connected} connected after ${((Date.now() - started) / 1000).toFixed(0)} s (${status.refused} refusals so far)`);
  }
  storming = false;
  await asker;
  const stormSeconds = (status.lastConnectedAt - started) / 1000;
  await new Promise((r) => setTimeout(r, 10_000));
  const rss1 = rssBytes(node.child.pid);
  // A node that holds its agents for a while: what V8 gives back by itself once the storm is over.
  progress('kas RSS 10 s after the storm; waiting 50 s more for it to settle');
  await new Promise((r) => setTimeout(r, 50_000));
  const rssSettled = rssBytes(node.child.pid);
  const heap1 = await liveHeap(inspectPort);
  fleet.stop();
  const perAgentKB = (before: number, after: number) => ((after - before) / status.connected / 1024).toFixed(1);
  latencies.sort((a, b) => a - b);
  return [
    `### ${AGENTS} agent connections onto one kas node (${AGENTS / REPLICAS_PER_AGENT} agents × ${REPLICAS_PER_AGENT} replicas)`,
    '',
    '| all connected after | refusals meanwhile | kas RSS before / after | per connected agent | query to one agent during the storm, p50 / p99 (failed) |',
    '| ---: | ---: | ---: | ---: | ---: |',
    `| ${stormSeconds.toFixed(1)} s (target ≤ 30 s) | ${status.refused} | ${(rss0 / 2 ** 20).toFixed(0)} / ${(rss1 / 2 ** 20).toFixed(0)} MB | ${perAgentKB(rss0, rss1)} KB (target ≤ 15 KB) | ${percentile(latencies, 50).toFixed(1)} / ${percentile(latencies, 99).toFixed(1)} ms (${failed}) |`,
    '',
    `A minute after the storm, kas RSS was ${(rssSettled / 2 ** 20).toFixed(0)} MB, ${perAgentKB(rss0, rssSettled)} KB per agent. After a full collection then (forced over the inspector, as before the storm): live JS heap ${(heap0.heapUsed / 2 ** 20).toFixed(1)} / ${(heap1.heapUsed / 2 ** 20).toFixed(1)} MB, **${perAgentKB(heap0.heapUsed, heap1.heapUsed)} KB per connected agent**; RSS then ${(heap0.rss / 2 ** 20).toFixed(0)} / ${(heap1.rss / 2 ** 20).toFixed(0)} MB, ${perAgentKB(heap0.rss, heap1.rss)} KB per agent.`,
    '',
  ].join('\n');
}

async function membership(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'kas-scale-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  const redis = await startRedis();
  cleanups.push(() => redis.stop());
  const total = 3 * PER_NODE;
  const { env, replicas } = await setUp(dir, redis, total);
  const nodes = [await startNode(dir, env, 0), await startNode(dir, env, 1), await startNode(dir, env, 2)];
  progress(`${total} replicas, ${PER_NODE} on each of 3 nodes`);
  const fleet = await Fleet.start(nodes.map((n) => [n.agentUrl]), replicas, 2_000);
  for (let status = await fleet.status(); status.connected < total; status = await fleet.status()) {
    await new Promise((r) => setTimeout(r, 2_000));
    progress(`${status.connected} of ${total} connected`);
  }
  await new Promise((r) => setTimeout(r, 20_000)); // the first full reads are done
  const pids = nodes.map((n) => n.child.pid);
  const [redis0, cpu0] = [redisWork(redis), cpuSeconds(pids)];
  progress(`measuring ${MEASURE_S} s of an idle cluster`);
  await new Promise((r) => setTimeout(r, MEASURE_S * 1000));
  const [redis1, cpu1] = [redisWork(redis), cpuSeconds(pids)];
  fleet.stop();
  const perMinute = (v: number) => (v * 60) / MEASURE_S;
  return [
    `### Membership, 3 nodes × ${PER_NODE} replicas, idle (${ROOT === fileURLToPath(new URL('..', import.meta.url)) ? 'this checkout' : ROOT})`,
    '',
    '| Redis commands per minute | Redis CPU per minute | Redis traffic per minute | kas CPU per minute (3 nodes) |',
    '| ---: | ---: | ---: | ---: |',
    `| ${perMinute(redis1.commands - redis0.commands).toFixed(0)} | ${perMinute(redis1.cpu - redis0.cpu).toFixed(2)} s | ${(perMinute(redis1.bytes - redis0.bytes) / 2 ** 20).toFixed(1)} MB | ${perMinute(cpu1 - cpu0).toFixed(1)} s |`,
    '',
  ].join('\n');
}

try {
  const parts: string[] = [];
  if (process.env.BENCH_SCALE_PART !== 'membership') parts.push(await oneNode());
  if (process.env.BENCH_SCALE_PART !== 'one-node') parts.push(await membership());
  process.stdout.write(`## Scale (\`bench/scale.ts\`)\n\n- date: ${new Date().toISOString()}\n- node ${process.version}\n\n${parts.join('\n')}\n`);
} catch (error) {
  process.stderr.write(`[bench:scale] failed: ${(error as Error).stack}\n`);
  process.exitCode = 1;
} finally {
  for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
  process.exit();
}
