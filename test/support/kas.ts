// Starts real kas nodes and agentk replicas as separate processes, the way an operator would:
// through the `kas` and `agentk` commands, on free loopback ports, with a temp data dir.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Agent as UndiciAgent, fetch as undiciFetch } from 'undici';
import { freePort } from './ports.ts';
import { type ExitStatus, Proc, waitFor } from './procs.ts';
import { startRedis, type RedisServer } from './redis.ts';

// BENCH_KAS_ROOT runs another checkout's programs (benchmarks compare a `before` with this one).
const ROOT = process.env.BENCH_KAS_ROOT ?? fileURLToPath(new URL('../../', import.meta.url));
export const KAS_BIN = join(ROOT, 'bin/kas.js');
export const AGENTK_BIN = join(ROOT, 'bin/agentk.js');

export interface KasNode {
  name: string;
  apiUrl: string;
  privateUrl: string;
  agentUrl: string;
  observabilityUrl: string;
  proc: Proc;
  /** The environment it was started with, so restartNode brings it back the same. */
  env: Record<string, string | undefined>;
}

export interface AgentReplica {
  agentId: string;
  name: string;
  node: KasNode;
  observabilityUrl: string;
  proc: Proc;
}

export interface ClusterOptions {
  nodes?: number;
  /** Defaults to true when more than one node is asked for. */
  redis?: boolean;
  env?: Record<string, string>;
  /** PEM of the CA that signed the API port's certificate (with KAS_API_TLS_* in env). */
  caPem?: string;
}

export interface AgentOptions {
  id: string;
  token: string;
  node?: number;
  replica?: string;
  prometheusUrl?: string;
  /** Raw agent.yaml text; overrides prometheusUrl. */
  configYaml?: string;
  env?: Record<string, string>;
  /** Wait until the replica is connected (default true). */
  waitConnected?: boolean;
  /** Dial this instead of the node's agent port (a load balancer, say). */
  kasUrl?: string;
}

/** Runs `kas <args>` to completion; stdout holds the token alone for register and issue. */
export function runKas(args: string[], env: Record<string, string>): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [KAS_BIN, ...args], { env: { ...process.env, ...env }, timeout: 30_000 }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, stdout, stderr });
    });
  });
}

async function waitReady(node: KasNode): Promise<void> {
  await node.proc.waitFor(
    async () => (await fetch(`${node.observabilityUrl}/readiness`).catch(() => undefined))?.ok,
    { timeoutMs: 20_000, what: `${node.name} to be ready` },
  );
}

export class KasCluster {
  readonly dir: string;
  readonly nodes: KasNode[] = [];
  readonly agents: AgentReplica[] = [];
  redis: RedisServer | undefined;
  #env: Record<string, string>;
  #counter = 0;
  #dispatcher: UndiciAgent | undefined;

  private constructor(dir: string, env: Record<string, string>, caPem?: string) {
    this.dir = dir;
    this.#env = env;
    if (caPem) this.#dispatcher = new UndiciAgent({ connect: { ca: caPem } });
  }

  static async start(options: ClusterOptions = {}): Promise<KasCluster> {
    const count = options.nodes ?? 1;
    const dir = await mkdtemp(join(tmpdir(), 'kas-test-'));
    const env: Record<string, string> = { KAS_DATA_DIR: join(dir, 'data'), LOG_LEVEL: 'debug', ...options.env };
    const cluster = new KasCluster(dir, env, options.caPem);
    try {
      // A Redis of the test's own (KAS_REDIS_URL in env: a Redis Cluster, say), or one started here.
      if (env.KAS_REDIS_URL === undefined && (options.redis ?? count > 1)) {
        cluster.redis = await startRedis();
        env.KAS_REDIS_URL = cluster.redis.url;
      }
      if (env.KAS_REDIS_URL !== undefined) {
        // A cluster never invents secrets: give every node the same ones.
        await mkdir(env.KAS_DATA_DIR!, { recursive: true });
        for (const name of ['api-secret', 'private-secret']) {
          await writeFile(join(env.KAS_DATA_DIR!, name), randomBytes(32).toString('base64'), { mode: 0o600 });
        }
      }
      for (let i = 0; i < count; i++) await cluster.addNode();
    } catch (error) {
      await cluster.stop();
      throw error;
    }
    return cluster;
  }

  get env(): Record<string, string> {
    return { ...this.#env };
  }

  async addNode(extraEnv: Record<string, string> = {}): Promise<KasNode> {
    const [agent, api, priv, obs] = await Promise.all([freePort(), freePort(), freePort(), freePort()]);
    const name = `kas-${this.#counter++}`;
    const env: Record<string, string | undefined> = {
      ...process.env,
      ...this.#env,
      KAS_NODE_NAME: name,
      KAS_AGENT_LISTEN: `127.0.0.1:${agent}`,
      KAS_API_LISTEN: `127.0.0.1:${api}`,
      KAS_PRIVATE_LISTEN: `127.0.0.1:${priv}`,
      KAS_OBSERVABILITY_LISTEN: `127.0.0.1:${obs}`,
      ...extraEnv,
    };
    const proc = Proc.start(name, process.execPath, [KAS_BIN, 'serve'], { env });
    const node: KasNode = {
      name,
      apiUrl: `${env.KAS_API_TLS_CERT_FILE ? 'https' : 'http'}://127.0.0.1:${api}`,
      privateUrl: `http://127.0.0.1:${priv}`,
      agentUrl: `${env.KAS_AGENT_TLS_CERT_FILE ? 'wss' : 'ws'}://127.0.0.1:${agent}`,
      observabilityUrl: `http://127.0.0.1:${obs}`,
      proc,
      env,
    };
    await waitReady(node);
    this.nodes.push(node);
    return node;
  }

  /** Stops node `index` with SIGTERM (it drains) and starts it again on the same ports. */
  async restartNode(index: number, options: { downMs?: number; graceMs?: number; onExit?: (status: ExitStatus) => void } = {}): Promise<KasNode> {
    const node = this.nodes[index]!;
    const status = await node.proc.stop('SIGTERM', options.graceMs ?? 5_000);
    options.onExit?.(status);
    if (options.downMs) await new Promise((r) => setTimeout(r, options.downMs));
    node.proc = Proc.start(node.name, process.execPath, [KAS_BIN, 'serve'], { env: node.env });
    await waitReady(node);
    return node;
  }

  async registerAgent(id: string): Promise<string> {
    const result = await runKas(['agent', 'register', id], this.#env);
    if (result.code !== 0 || !result.stdout.startsWith('kasat_')) {
      throw new Error(`kas agent register ${id} failed (${result.code}): ${result.stderr}`);
    }
    return result.stdout.trim();
  }

  async revokeAgent(id: string): Promise<void> {
    const result = await runKas(['agent', 'revoke', id], this.#env);
    if (result.code !== 0) throw new Error(`kas agent revoke ${id} failed: ${result.stderr}`);
  }

  async issueToken(options: { sub?: string; agents?: string[]; ttl?: string } = {}): Promise<string> {
    const args = ['token', 'issue', '--sub', options.sub ?? 'test', '--agents', (options.agents ?? ['*']).join(','), '--ttl', options.ttl ?? '1h'];
    const result = await runKas(args, this.#env);
    if (result.code !== 0 || !result.stdout.startsWith('eyJ')) throw new Error(`kas token issue failed: ${result.stderr}`);
    return result.stdout.trim();
  }

  async startAgent(options: AgentOptions): Promise<AgentReplica> {
    const node = this.nodes[options.node ?? 0]!;
    const name = options.replica ?? `${options.id}-r${this.#counter++}`;
    const tokenFile = join(this.dir, `${name}.token`);
    const configFile = join(this.dir, `${name}.yaml`);
    await writeFile(tokenFile, `${options.token}\n`, { mode: 0o600 });
    const yaml = options.configYaml ?? (options.prometheusUrl ? `prometheus:\n  url: ${options.prometheusUrl}\n` : '{}\n');
    await writeFile(configFile, yaml);
    const obs = await freePort();
    const proc = Proc.start(name, process.execPath, [AGENTK_BIN, '--kas-url', options.kasUrl ?? node.agentUrl, '--token-file', tokenFile, '--config', configFile], {
      env: { ...process.env, POD_NAME: name, AGENTK_OBSERVABILITY_LISTEN: `127.0.0.1:${obs}`, LOG_LEVEL: 'debug', ...options.env },
    });
    const replica: AgentReplica = { agentId: options.id, name, node, observabilityUrl: `http://127.0.0.1:${obs}`, proc };
    this.agents.push(replica);
    if (options.waitConnected ?? true) await proc.waitForLine(/connected to kas"/, 20_000);
    return replica;
  }

  /** Waits until `viaNode` lists `count` replicas of the agent (membership has spread). */
  async waitForReplicas(agentId: string, count: number, token: string, viaNode = 0): Promise<void> {
    await waitFor(
      async () => {
        const res = await this.fetch(viaNode, `/api/v1/agents/${agentId}`, { token });
        if (!res.ok) return false;
        const body = (await res.json()) as { replicas: unknown[] };
        return body.replicas.length === count;
      },
      { timeoutMs: 20_000, what: `${count} replica(s) of ${agentId} visible through ${this.nodes[viaNode]?.name}` },
    );
  }

  fetch(node: number, path: string, init: RequestInit & { token?: string } = {}): Promise<Response> {
    const headers = new Headers(init.headers);
    if (init.token) headers.set('authorization', `Bearer ${init.token}`);
    const url = `${this.nodes[node]!.apiUrl}${path}`;
    if (!this.#dispatcher) return fetch(url, { ...init, headers });
    // The API port speaks TLS with a test CA: undici's own fetch takes it through a dispatcher.
    const undiciInit = { ...init, headers: Object.fromEntries(headers), dispatcher: this.#dispatcher };
    return undiciFetch(url, undiciInit as Parameters<typeof undiciFetch>[1]) as unknown as Promise<Response>;
  }

  describe(): string {
    return [...this.nodes.map((n) => n.proc), ...this.agents.map((a) => a.proc)].map((p) => p.describe()).join('\n');
  }

  async stop(): Promise<void> {
    await Promise.all(this.agents.map((a) => a.proc.stop()));
    await Promise.all(this.nodes.map((n) => n.proc.stop()));
    await this.redis?.stop();
    await this.#dispatcher?.close();
    await rm(this.dir, { recursive: true, force: true });
  }
}
