// A request for an agent reaches it through any node, with the answer Prometheus itself gives.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { KasCluster } from '../support/kas.ts';
import { startPrometheus, type PrometheusServer } from '../support/prometheus.ts';

describe('a cluster of two kas nodes with the agent on the second', () => {
  let cluster: KasCluster;
  let prometheus: PrometheusServer;
  let token: string;

  before(async () => {
    prometheus = await startPrometheus();
    cluster = await KasCluster.start({ nodes: 2 });
    const agentToken = await cluster.registerAgent('prod');
    token = await cluster.issueToken({ agents: ['prod'] });
    await cluster.startAgent({ id: 'prod', token: agentToken, node: 1, prometheusUrl: prometheus.url });
    await cluster.startAgent({ id: 'prod', token: agentToken, node: 1, prometheusUrl: prometheus.url });
    await cluster.waitForReplicas('prod', 2, token, 0);
  });
  after(async () => {
    await cluster?.stop();
    await prometheus?.stop();
  });

  test('a query through the node that does not hold the agent equals Prometheus directly', async () => {
    const path = '/api/v1/query?query=up&time=1700000000';
    const direct = await fetch(`${prometheus.url}${path}`);
    const viaKas = await cluster.fetch(0, `/api/v1/agents/prod/prometheus${path}`, { token });
    assert.equal(viaKas.status, 200, cluster.describe());
    assert.equal(viaKas.headers.get('x-kas-node'), cluster.nodes[1]!.name);
    assert.match(viaKas.headers.get('x-trace-id') ?? '', /^[0-9a-f]{32}$/);
    assert.equal(await viaKas.text(), await direct.text());
  });
});
