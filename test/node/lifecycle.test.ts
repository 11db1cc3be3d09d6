// A node's life: ready once it has joined through Redis (and while Redis is away after that), and
// SIGTERM drains before exiting 0.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { KAS_BIN, KasCluster } from '../support/kas.ts';
import { metricSum } from '../support/metrics.ts';
import { Proc, waitFor } from '../support/procs.ts';
import { requireTool } from '../support/tools.ts';
import { startFakeUpstream } from '../support/upstream.ts';

async function readiness(url: string): Promise<number | undefined> {
  return (await fetch(`${url}/readiness`).catch(() => undefined))?.status;
}

async function readinessText(url: string): Promise<string> {
  return (await (await fetch(`${url}/readiness`).catch(() => undefined))?.text()) ?? '';
}

describe('a kas node', () => {
  test('is not ready until it has joined through Redis, then stays ready and serves its agents while Redis is away', async (t) => {
    const upstream = await startFakeUpstream();
    const cluster = await KasCluster.start({ nodes: 1, redis: true });
    t.after(async () => {
      await cluster.stop();
      await upstream.stop();
    });
    const node = cluster.nodes[0]!;
    const redis = cluster.redis!;
    const agentToken = await cluster.registerAgent('steady');
    const token = await cluster.issueToken();
    await cluster.startAgent({ id: 'steady', token: agentToken, prometheusUrl: upstream.url });
    assert.equal(await readiness(node.observabilityUrl), 200);
    assert.equal(await metricSum(node.observabilityUrl, 'kas_redis_connected'), 1);

    // Redis away (every node sees that at once): the node stays in its load balancer and serves.
    await redis.proc.kill();
    await waitFor(async () => (await readinessText(node.observabilityUrl)).includes('Redis unreachable'), { timeoutMs: 15_000, what: 'readiness to say Redis is unreachable' });
    assert.equal(await readiness(node.observabilityUrl), 200, 'a joined node stays ready without Redis');
    assert.equal(await metricSum(node.observabilityUrl, 'kas_redis_connected'), 0, 'kas_redis_connected says Redis is away');
    assert.equal((await fetch(`${node.observabilityUrl}/liveness`)).status, 200);
    const answer = await cluster.fetch(0, '/api/v1/agents/steady/prometheus/api/v1/query?query=up', { token });
    assert.equal(answer.status, 200, await answer.text());

    // A node that starts while Redis is away has not joined: not ready, until Redis returns.
    await node.proc.stop('SIGTERM', 10_000);
    node.proc = Proc.start(node.name, process.execPath, [KAS_BIN, 'serve'], { env: node.env });
    await waitFor(async () => (await readiness(node.observabilityUrl)) === 503, { timeoutMs: 15_000, what: 'readiness 503 before joining' });
    assert.match(await readinessText(node.observabilityUrl), /waiting for Redis/);
    assert.equal((await fetch(`${node.observabilityUrl}/liveness`)).status, 200, 'a node waiting for Redis is still alive');

    const binary = await requireTool('redis-server');
    const revived = Proc.start('redis-again', binary, ['--port', String(redis.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no']);
    t.after(() => revived.stop());
    await waitFor(async () => (await readiness(node.observabilityUrl)) === 200, { timeoutMs: 20_000, what: 'readiness 200 once Redis is back' });
    assert.equal(await readinessText(node.observabilityUrl), 'ready\n');
    assert.equal(await metricSum(node.observabilityUrl, 'kas_redis_connected'), 1);
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
