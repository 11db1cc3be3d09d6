// A Redis Cluster of three masters on free loopback ports, made as an operator would: three
// redis-server processes with cluster mode on, joined by `redis-cli --cluster create`.
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort } from './ports.ts';
import { Proc, waitFor } from './procs.ts';
import { requireTool } from './tools.ts';

const run = promisify(execFile);

export interface RedisClusterServer {
  /** One node's URL: what KAS_REDIS_URL names with KAS_REDIS_CLUSTER=true. */
  url: string;
  ports: number[];
  procs: Proc[];
  stop(): Promise<void>;
}

export async function startRedisCluster(masters = 3): Promise<RedisClusterServer> {
  const server = await requireTool('redis-server');
  const cli = await requireTool('redis-cli');
  const dir = await mkdtemp(join(tmpdir(), 'kas-redis-cluster-'));
  const ports: number[] = [];
  const procs: Proc[] = [];
  const stop = async () => {
    await Promise.all(procs.map((p) => p.stop('SIGTERM', 5_000)));
    await rm(dir, { recursive: true, force: true });
  };
  try {
    for (let i = 0; i < masters; i++) {
      const port = await freePort();
      ports.push(port);
      procs.push(
        Proc.start(`redis-cluster-${i}`, server, [
          '--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no',
          '--cluster-enabled', 'yes', '--cluster-config-file', join(dir, `nodes-${port}.conf`), '--dir', dir,
        ]),
      );
    }
    for (const [i, port] of ports.entries()) {
      await procs[i]!.waitFor(async () => (await run(cli, ['-p', String(port), 'ping'])).stdout.trim() === 'PONG', { timeoutMs: 10_000, what: `redis on ${port}` });
    }
    await run(cli, ['--cluster', 'create', ...ports.map((p) => `127.0.0.1:${p}`), '--cluster-replicas', '0', '--cluster-yes']);
    await waitFor(
      async () => {
        for (const port of ports) if (!(await run(cli, ['-p', String(port), 'cluster', 'info'])).stdout.includes('cluster_state:ok')) return false;
        return true;
      },
      { timeoutMs: 20_000, what: 'the Redis Cluster to be ok' },
    );
    return { url: `redis://127.0.0.1:${ports[0]}`, ports, procs, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}
