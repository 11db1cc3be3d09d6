// A request for an agent reaches it through any node, with the answer Prometheus itself gives:
// status, the headers that matter and the body, byte for byte.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { gunzipSync } from 'node:zlib';
import type { AgentReplica } from '../support/kas.ts';
import { KasCluster } from '../support/kas.ts';
import { startPrometheus, type PrometheusServer } from '../support/prometheus.ts';
import { rawRequest } from '../support/rawHttp.ts';

describe('a cluster of two kas nodes with the agent on the second', () => {
  let cluster: KasCluster;
  let prometheus: PrometheusServer;
  let token: string;
  let replicas: AgentReplica[];
  // A fixed evaluation time a few scrapes in the past: every sample at or before it is stored,
  // so Prometheus gives the same bytes to both requests.
  let t: number;

  before(async () => {
    let firstSampleAt = 0;
    [prometheus, cluster] = await Promise.all([
      startPrometheus().then((p) => ((firstSampleAt = Date.now()), p)),
      KasCluster.start({ nodes: 2 }),
    ]);
    const agentToken = await cluster.registerAgent('prod');
    token = await cluster.issueToken({ agents: ['prod'] });
    replicas = await Promise.all([
      cluster.startAgent({ id: 'prod', token: agentToken, node: 1, prometheusUrl: prometheus.url }),
      cluster.startAgent({ id: 'prod', token: agentToken, node: 1, prometheusUrl: prometheus.url }),
    ]);
    await cluster.waitForReplicas('prod', 2, token, 0);
    await sleep(Math.max(0, firstSampleAt + 3_000 - Date.now()));
    t = Math.floor(Date.now() / 1000) - 2;
  });
  after(async () => {
    await cluster?.stop();
    await prometheus?.stop();
  });

  const base = '/api/v1/agents/prod/prometheus';

  /** Asks Prometheus directly and kas (through node 0, which does not hold the agent) the same thing. */
  async function both(path: string, init: RequestInit = {}): Promise<{ direct: Response; viaKas: Response }> {
    const direct = await fetch(`${prometheus.url}${path}`, init);
    const viaKas = await cluster.fetch(0, `${base}${path}`, { ...init, token });
    return { direct, viaKas };
  }

  async function assertSameAnswer(path: string, init: RequestInit = {}): Promise<string> {
    const { direct, viaKas } = await both(path, init);
    const [directBody, kasBody] = await Promise.all([direct.text(), viaKas.text()]);
    assert.equal(viaKas.status, direct.status, `${path}: ${kasBody}\n${cluster.describe()}`);
    assert.equal(viaKas.headers.get('content-type'), direct.headers.get('content-type'), path);
    assert.equal(kasBody, directBody, path);
    assert.equal(viaKas.headers.get('x-kas-node'), cluster.nodes[1]!.name, 'the node holding the agent answered');
    return directBody;
  }

  /** The answer must carry data, or comparing two empty answers would prove little. */
  function assertHasData(body: string): void {
    const parsed = JSON.parse(body) as { status: string; data: unknown };
    assert.equal(parsed.status, 'success');
    const data = parsed.data as unknown[] | { result: unknown[] } | Record<string, unknown>;
    const size = Array.isArray(data) ? data.length : 'result' in data ? (data.result as unknown[]).length : Object.keys(data).length;
    assert.ok(size > 0, `expected data in ${body}`);
  }

  test('an instant query equals Prometheus directly', async () => {
    assertHasData(await assertSameAnswer(`/api/v1/query?query=up&time=${t}`));
  });

  test('a range query equals Prometheus directly', async () => {
    const query = encodeURIComponent('sum by (job) (up)');
    assertHasData(await assertSameAnswer(`/api/v1/query_range?query=${query}&start=${t - 30}&end=${t}&step=1`));
  });

  test('a form-encoded POST query equals Prometheus directly', async () => {
    const body = new URLSearchParams({ query: 'up{job="prometheus"}', time: String(t) }).toString();
    const init = { method: 'POST', body, headers: { 'content-type': 'application/x-www-form-urlencoded' } };
    assertHasData(await assertSameAnswer('/api/v1/query', init));
  });

  test('series selected by match[] equal Prometheus directly', async () => {
    assertHasData(await assertSameAnswer(`/api/v1/series?match%5B%5D=up&start=${t - 30}&end=${t}`));
  });

  test('label names equal Prometheus directly', async () => {
    assertHasData(await assertSameAnswer(`/api/v1/labels?match%5B%5D=up&start=${t - 30}&end=${t}`));
  });

  test('the values of a label equal Prometheus directly', async () => {
    assertHasData(await assertSameAnswer(`/api/v1/label/job/values?start=${t - 30}&end=${t}`));
  });

  test('metric metadata equals Prometheus directly', async () => {
    assertHasData(await assertSameAnswer('/api/v1/metadata?metric=prometheus_build_info'));
  });

  test('build information equals Prometheus directly', async () => {
    assertHasData(await assertSameAnswer('/api/v1/status/buildinfo'));
  });

  test('the health check equals Prometheus directly', async () => {
    const body = await assertSameAnswer('/-/healthy');
    assert.match(body, /healthy/i);
  });

  test('a gzip answer passes through compressed, byte for byte', async () => {
    const path = `/api/v1/query?query=up&time=${t}`;
    const headers = { 'accept-encoding': 'gzip' };
    const direct = await rawRequest(`${prometheus.url}${path}`, { headers });
    const viaKas = await rawRequest(`${cluster.nodes[0]!.apiUrl}${base}${path}`, {
      headers: { ...headers, authorization: `Bearer ${token}` },
    });
    assert.equal(direct.headers['content-encoding'], 'gzip', 'Prometheus compresses when asked');
    assert.equal(viaKas.status, 200, viaKas.body.toString());
    assert.equal(viaKas.headers['content-encoding'], 'gzip');
    assert.equal(viaKas.headers['content-type'], direct.headers['content-type']);
    assert.ok(viaKas.body.equals(direct.body), 'the compressed bytes are the ones Prometheus sent');
    assertHasData(gunzipSync(viaKas.body).toString());
  });

  test('an answer names the node and the replica that served it and carries a trace id', async () => {
    const res = await cluster.fetch(0, `${base}/api/v1/query?query=up&time=${t}`, { token });
    await res.arrayBuffer();
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('x-kas-node'), cluster.nodes[1]!.name);
    assert.ok(
      replicas.some((r) => r.name === res.headers.get('x-kas-agent-replica')),
      `X-Kas-Agent-Replica ${res.headers.get('x-kas-agent-replica')} is one of the agent's replicas`,
    );
    assert.match(res.headers.get('x-trace-id') ?? '', /^[0-9a-f]{32}$/);
  });

  test('an incoming traceparent is continued: its trace id comes back as X-Trace-Id', async () => {
    const traceId = randomBytes(16).toString('hex');
    const traceparent = `00-${traceId}-${randomBytes(8).toString('hex')}-01`;
    const res = await cluster.fetch(0, `${base}/api/v1/query?query=up&time=${t}`, { token, headers: { traceparent } });
    await res.arrayBuffer();
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('x-trace-id'), traceId);
  });

  test('every node lists both replicas with their node and capabilities', async () => {
    const expected = replicas.map((r) => r.name).sort();
    const seen = [];
    for (const node of [0, 1]) {
      const res = await cluster.fetch(node, '/api/v1/agents', { token });
      assert.equal(res.status, 200);
      assert.match(res.headers.get('content-type') ?? '', /^application\/json/);
      const body = (await res.json()) as { agents: { id: string; replicas: Record<string, unknown>[] }[] };
      assert.deepEqual(Object.keys(body), ['agents']);
      assert.deepEqual(body.agents.map((a) => a.id), ['prod']);
      const listed = body.agents[0]!.replicas;
      assert.deepEqual(listed.map((r) => r.replica).sort(), expected, `through ${cluster.nodes[node]!.name}`);
      for (const replica of listed) {
        assert.deepEqual(Object.keys(replica).sort(), ['capabilities', 'connectedAt', 'node', 'replica', 'version']);
        assert.equal(replica.node, cluster.nodes[1]!.name);
        assert.deepEqual(replica.capabilities, ['prometheus']);
        assert.equal(typeof replica.version, 'string');
        assert.notEqual(replica.version, '');
        assert.ok(!Number.isNaN(Date.parse(replica.connectedAt as string)), `connectedAt ${replica.connectedAt} is a date`);
      }
      seen.push(listed.toSorted((a, b) => String(a.replica).localeCompare(String(b.replica))));
    }
    assert.deepEqual(seen[0], seen[1], 'both nodes tell the same story');
  });
});
