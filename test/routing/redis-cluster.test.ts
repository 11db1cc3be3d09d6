// kas on a Redis Cluster of three masters, as a deployment that outgrew one Redis runs it: the
// same code with KAS_REDIS_CLUSTER=true. Membership, kas-to-kas routing, the socket.io adapter
// (an agent revoked on one node is disconnected everywhere) and live graphs' one evaluation per
// step all work across the cluster's slots.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { KasCluster } from '../support/kas.ts';
import { metricSum } from '../support/metrics.ts';
import { waitFor } from '../support/procs.ts';
import { startRedisCluster, type RedisClusterServer } from '../support/redisCluster.ts';
import { SseClient } from '../support/sse.ts';
import { startFakeUpstream, type FakeUpstream } from '../support/upstream.ts';
import { startPrometheus, type PrometheusServer } from '../support/prometheus.ts';

describe('kas on a Redis Cluster of three masters', () => {
  let redis: RedisClusterServer;
  let cluster: KasCluster;
  let upstream: FakeUpstream;
  let prometheus: PrometheusServer;
  let token: string;

  before(async () => {
    [redis, upstream, prometheus] = await Promise.all([startRedisCluster(3), startFakeUpstream(), startPrometheus()]);
    cluster = await KasCluster.start({ nodes: 2, env: { KAS_REDIS_URL: redis.url, KAS_REDIS_CLUSTER: 'true', LOG_LEVEL: 'info' } });
    const agentToken = await cluster.registerAgent('prod');
    await cluster.startAgent({ id: 'prod', token: agentToken, node: 1, prometheusUrl: prometheus.url });
    token = await cluster.issueToken();
  });

  after(async () => {
    await cluster?.stop();
    await Promise.all([redis?.stop(), upstream?.stop(), prometheus?.stop()]);
  });

  test('membership spreads through the cluster: the node without the agent lists it and routes to it', async () => {
    await cluster.waitForReplicas('prod', 1, token, 0);
    const res = await cluster.fetch(0, '/api/v1/agents/prod/prometheus/api/v1/query?query=up', { token });
    assert.equal(res.status, 200, await res.text());
    assert.equal(res.headers.get('x-kas-node'), cluster.nodes[1]!.name);
  });

  test('live graphs: viewers on both nodes, one evaluation per step', async () => {
    const url = (node: number) => `${cluster.nodes[node]!.apiUrl}/api/v1/agents/prod/prometheus/live?query=${encodeURIComponent('count(up)')}&range=30s&step=1s`;
    const viewers = [await SseClient.open(url(0), token), await SseClient.open(url(1), token)];
    await Promise.all(viewers.map((v) => v.waitFor((c) => c.of('append').length >= 4, 20_000, 'four appends')));
    const evaluating = await Promise.all(cluster.nodes.map((n) => metricSum(n.observabilityUrl, 'kas_live_evaluating')));
    assert.equal(evaluating[0]! + evaluating[1]!, 1, `one node evaluates: ${evaluating}`);
    const steps = viewers.map((v) => v.of<{ t: number }>('append').map((a) => a.data.t));
    const common = steps[0]!.filter((t) => steps[1]!.includes(t));
    assert.ok(common.length >= 2, 'both nodes’ viewers got the same steps');
    for (const v of viewers) v.close();
  });

  test('an agent revoked is disconnected from the node holding it, whichever node saw the change', async () => {
    await cluster.revokeAgent('prod');
    await waitFor(async () => (await metricSum(cluster.nodes[1]!.observabilityUrl, 'kas_connected_agent_replicas')) === 0, { timeoutMs: 15_000, what: 'the replica to be disconnected' });
  });
});
