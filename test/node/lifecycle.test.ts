// A node's life: readiness follows Redis, and SIGTERM drains before exiting 0.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { KasCluster } from '../support/kas.ts';
import { Proc, waitFor } from '../support/procs.ts';
import { requireTool } from '../support/tools.ts';
import { startFakeUpstream } from '../support/upstream.ts';

async function readiness(url: string): Promise<number | undefined> {
  return (await fetch(`${url}/readiness`).catch(() => undefined))?.status;
}

describe('a kas node', () => {
  test('is not ready while its Redis is unreachable, and ready again when Redis returns', async (t) => {
    const cluster = await KasCluster.start({ nodes: 1, redis: true });
    t.after(() => cluster.stop());
    const node = cluster.nodes[0]!;
    const redis = cluster.redis!;
    assert.equal(await readiness(node.observabilityUrl), 200);
    assert.equal((await fetch(`${node.observabilityUrl}/liveness`)).status, 200);

    await redis.proc.kill();
    await waitFor(async () => (await readiness(node.observabilityUrl)) === 503, { timeoutMs: 15_000, what: 'readiness 503 without Redis' });
    assert.equal((await fetch(`${node.observabilityUrl}/liveness`)).status, 200, 'a node waiting for Redis is still alive');

    const binary = await requireTool('redis-server');
    const revived = Proc.start('redis-again', binary, ['--port', String(redis.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no']);
    t.after(() => revived.stop());
    await waitFor(async () => (await readiness(node.observabilityUrl)) === 200, { timeoutMs: 20_000, what: 'readiness 200 once Redis is back' });
  });

  test('on SIGTERM turns not ready, lets the in-flight request finish, and exits 0', async (t) => {
    const upstream = await startFakeUpstream();
    const cluster = await KasCluster.start({ nodes: 1, env: { KAS_DRAIN_TIMEOUT: '10s' } });
    t.after(async () => {
      await cluster.stop();
      await upstream.stop();
    });
    const agentToken = await cluster.registerAgent('drained');
    const token = await cluster.issueToken();
    await cluster.startAgent({ id: 'drained', token: agentToken, prometheusUrl: upstream.url });
    const node = cluster.nodes[0]!;

    const inFlight = cluster.fetch(0, '/api/v1/agents/drained/prometheus/api/v1/query?query=slow&ms=2000', { token });
    await upstream.waitForRequest((r) => r.params.get('query') === 'slow');
    node.proc.signal('SIGTERM');
    await waitFor(async () => (await readiness(node.observabilityUrl)) === 503, { timeoutMs: 1_500, what: 'readiness 503 while draining' });

    const answer = await inFlight.catch(async (error) => {
      await node.proc.waitForExit(15_000);
      return assert.fail(`${error}\n${cluster.describe()}`);
    });
    assert.equal(answer.status, 200, cluster.describe());
    await answer.text();
    const exit = await node.proc.waitForExit(15_000);
    assert.equal(exit.code, 0, node.proc.describe());
  });
});
