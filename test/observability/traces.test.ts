// One request = one trace across every hop: the kas node it reached, the node holding the agent,
// the WebSocket, agentk and agentk's call to Prometheus. Two kas nodes (Redis) and agentk replicas
// run as separate processes and export OTLP/HTTP (http/json) to a receiver inside this test; a real
// Prometheus is both the agents' upstream and the scraper of every observability port, so kas graphs
// itself: a PromQL query sent through kas returns the requests this test just made.
//
// Kubernetes: an agent reading the Kubernetes API simulator gives a list and a watch one trace
// each, the watch's spans ending with the stream and counting its bytes and chunks.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KasCluster } from '../support/kas.ts';
import { type KubeSim, makePod, startKubeSim } from '../../demo/k8sSim.ts';
import { describeTree, type ExportedSpan, type OtlpReceiver, startOtlpReceiver } from '../support/otlp.ts';
import { freePort } from '../support/ports.ts';
import { makeTestPki } from '../support/tls.ts';
import { waitFor } from '../support/procs.ts';
import { type PrometheusServer, startPrometheus } from '../support/prometheus.ts';

const base = (agent: string) => `/api/v1/agents/${agent}/prometheus`;

/** The one span matching `match`, with the whole tree in the message when there is not exactly one. */
function one(spans: ExportedSpan[], what: string, match: (s: ExportedSpan) => boolean): ExportedSpan {
  const found = spans.filter(match);
  assert.equal(found.length, 1, `expected one ${what}, found ${found.length} in:\n${describeTree(spans)}`);
  return found[0]!;
}

function assertChild(child: ExportedSpan, parent: ExportedSpan, spans: ExportedSpan[]): void {
  assert.equal(child.traceId, parent.traceId);
  assert.equal(child.parentSpanId, parent.spanId, `${child.kind} ${child.name} should be a child of ${parent.kind} ${parent.name}:\n${describeTree(spans)}`);
}

describe('traces, logs and metrics of two kas nodes and their agents', () => {
  let otlp: OtlpReceiver;
  let cluster: KasCluster;
  let prometheus: PrometheusServer;
  let token: string;
  let sim: KubeSim;
  let dir: string;
  const tokens: string[] = [];

  before(async () => {
    otlp = await startOtlpReceiver();
    const otel = {
      OTEL_EXPORTER_OTLP_ENDPOINT: otlp.url,
      OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
      OTEL_BSP_SCHEDULE_DELAY: '100',
    };
    cluster = await KasCluster.start({ nodes: 2, env: { ...otel, KAS_ROUTING_TIMEOUT: '1s' } });
    // Prometheus is the agents' upstream and scrapes them too: their ports are chosen up front.
    const agentPorts = [await freePort(), await freePort()];
    prometheus = await startPrometheus({
      jobs: {
        kas: cluster.nodes.map((n) => new URL(n.observabilityUrl).host),
        agentk: agentPorts.map((p) => `127.0.0.1:${p}`),
      },
    });
    const [prodToken, brokenToken, kubeToken] = [await cluster.registerAgent('prod'), await cluster.registerAgent('broken'), await cluster.registerAgent('kube')];
    await cluster.registerAgent('ghost'); // registered, never connected
    tokens.push(prodToken, brokenToken, kubeToken);
    token = await cluster.issueToken({ agents: ['prod', 'broken', 'ghost', 'kube'] });
    dir = await mkdtemp(join(tmpdir(), 'kas-traces-'));
    const pki = await makeTestPki(join(dir, 'pki'));
    sim = await startKubeSim({ tls: pki, token: 'sa-token-of-agentk' });
    for (let i = 0; i < 3; i++) sim.api.create('pods', makePod({ name: `web-${i}`, namespace: 'shop' }));
    const kubeconfig = join(dir, 'kubeconfig');
    await writeFile(kubeconfig, sim.kubeconfig({ caFile: pki.caFile, token: 'sa-token-of-agentk' }));
    tokens.push(token);
    const nothingListens = await freePort();
    await Promise.all([
      ...agentPorts.map((port, i) =>
        cluster.startAgent({
          id: 'prod',
          token: prodToken,
          node: 1,
          replica: `prod-${i}`,
          prometheusUrl: prometheus.url,
          env: { ...otel, AGENTK_OBSERVABILITY_LISTEN: `127.0.0.1:${port}` },
        }),
      ),
      cluster.startAgent({ id: 'broken', token: brokenToken, node: 1, replica: 'broken-0', prometheusUrl: `http://127.0.0.1:${nothingListens}`, env: otel }),
      cluster.startAgent({ id: 'kube', token: kubeToken, node: 1, replica: 'kube-0', env: otel, configYaml: `kubernetes:\n  kubeconfig: ${kubeconfig}\n` }),
    ]);
    await cluster.waitForReplicas('kube', 1, token, 0);
    await cluster.waitForReplicas('prod', 2, token, 0);
    await cluster.waitForReplicas('broken', 1, token, 0);
  });

  after(async () => {
    await cluster?.stop();
    await prometheus?.stop();
    await otlp?.stop();
    await sim?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  async function traced(node: number, path: string, init: RequestInit = {}): Promise<{ res: Response; body: string; traceId: string }> {
    const res = await cluster.fetch(node, path, { ...init, token });
    const body = await res.text();
    const traceId = res.headers.get('x-trace-id');
    assert.match(traceId ?? '', /^[0-9a-f]{32}$/, `X-Trace-Id on ${path}`);
    return { res, body, traceId: traceId! };
  }

  test('a query on the node holding the agent: server, routing, send, agentk and its Prometheus call in one trace', async () => {
    // The caller's own trace: kas continues it.
    const traceId = randomBytes(16).toString('hex');
    const callerSpan = randomBytes(8).toString('hex');
    // identity: the byte counts on the spans can then be compared with the body read here.
    const headers = { traceparent: `00-${traceId}-${callerSpan}-01`, 'accept-encoding': 'identity' };
    const { res, body } = await traced(1, `${base('prod')}/api/v1/query?query=up`, { headers });
    assert.equal(res.status, 200, body);
    assert.equal(res.headers.get('x-trace-id'), traceId);

    const spans = await otlp.waitForTrace(traceId, (s) => s.length >= 5 && s.some((x) => x.service === 'agentk' && x.kind === 'CLIENT'));
    await sleep(300); // nothing else should arrive
    const all = otlp.trace(traceId);
    assert.equal(all.length, 5, describeTree(all));

    const server = one(spans, 'kas server span', (s) => s.kind === 'SERVER');
    assert.equal(server.parentSpanId, callerSpan, 'the caller’s traceparent is continued');
    assert.equal(server.service, 'kas');
    assert.equal(server.instance, cluster.nodes[1]!.name);
    assert.equal(server.attributes['http.route'], '/api/v1/agents/:agentId/:upstream{/*rest}');
    assert.equal(server.attributes['http.response.status_code'], 200);

    const route = one(spans, 'routing span', (s) => s.name === 'route prometheus');
    assertChild(route, server, spans);
    assert.equal(route.kind, 'INTERNAL');
    assert.equal(route.attributes['kas.agent.id'], 'prod');
    assert.equal(route.attributes['kas.agent.replica'], res.headers.get('x-kas-agent-replica'));
    assert.equal(route.attributes['kas.node'], cluster.nodes[1]!.name);
    assert.equal(route.attributes['kas.forwarded'], false);

    const send = one(spans, 'send span', (s) => s.kind === 'PRODUCER');
    assertChild(send, route, spans);
    assert.equal(send.service, 'kas');
    assert.equal(send.attributes['kas.agent.replica'], res.headers.get('x-kas-agent-replica'));
    assert.equal(send.attributes['messaging.destination.name'], 'agent:prod');
    assert.equal(send.attributes['kas.stream.bytes'], Buffer.byteLength(body));
    assert.ok(Number(send.attributes['kas.stream.chunks']) >= 1);
    assert.ok(send.events.some((e) => e.name === 'first byte'), 'first byte is an event');

    const consume = one(spans, 'agentk span', (s) => s.kind === 'CONSUMER');
    assertChild(consume, send, spans);
    assert.equal(consume.service, 'agentk');
    assert.equal(consume.instance, res.headers.get('x-kas-agent-replica'));
    assert.equal(consume.attributes['kas.stream.bytes'], Buffer.byteLength(body));
    assert.ok(consume.events.some((e) => e.name === 'first byte'));

    const upstream = one(spans, 'agentk HTTP client span', (s) => s.kind === 'CLIENT');
    assertChild(upstream, consume, spans);
    assert.equal(upstream.service, 'agentk');
    assert.equal(upstream.attributes['url.full'], `${prometheus.url}/api/v1/query?query=up`);
    assert.equal(upstream.attributes['http.response.status_code'], 200);
    for (const span of spans) assert.notEqual(span.status.code, 'ERROR', `${span.name} succeeded`);
    // The stream's spans end when it has been delivered.
    assert.ok(send.endNs >= consume.endNs - 5_000_000n, 'the send span lasts until the answer is through');
  });

  test('a query through the other node: the kas-to-kas client and server spans join the trace', async () => {
    const { res, body, traceId } = await traced(0, `${base('prod')}/api/v1/query?query=up`);
    assert.equal(res.status, 200, body);
    assert.equal(res.headers.get('x-kas-node'), cluster.nodes[1]!.name);

    const spans = await otlp.waitForTrace(traceId, (s) => s.length >= 7 && s.some((x) => x.service === 'agentk' && x.kind === 'CLIENT'));
    await sleep(300);
    assert.equal(otlp.trace(traceId).length, 7, describeTree(otlp.trace(traceId)));
    const [node0, node1] = cluster.nodes.map((n) => n.name);

    const server0 = one(spans, 'server span on the node called', (s) => s.kind === 'SERVER' && s.instance === node0);
    assert.equal(server0.parentSpanId, undefined, 'a new trace');
    assert.equal(server0.traceId, traceId, 'X-Trace-Id is the trace of the server span');
    const route = one(spans, 'routing span', (s) => s.name === 'route prometheus');
    assertChild(route, server0, spans);
    assert.equal(route.instance, node0);
    assert.equal(route.attributes['kas.agent.id'], 'prod');
    assert.equal(route.attributes['kas.agent.replica'], res.headers.get('x-kas-agent-replica'));
    assert.equal(route.attributes['kas.node'], node1, 'kas.node is the node that holds the replica');
    assert.equal(route.attributes['kas.forwarded'], true);

    const forward = one(spans, 'kas-to-kas client span', (s) => s.kind === 'CLIENT' && s.service === 'kas');
    assertChild(forward, route, spans);
    assert.match(String(forward.attributes['url.full']), /\/private\/v1\/agents\/prod\/prometheus\/api\/v1\/query\?query=up$/);

    const server1 = one(spans, 'server span on the node holding the agent', (s) => s.kind === 'SERVER' && s.instance === node1);
    assertChild(server1, forward, spans);
    assert.equal(server1.attributes['http.route'], '/private/v1/agents/:agentId/:upstream{/*rest}');

    const send = one(spans, 'send span', (s) => s.kind === 'PRODUCER');
    assertChild(send, server1, spans);
    assert.equal(send.instance, node1);
    const consume = one(spans, 'agentk span', (s) => s.kind === 'CONSUMER');
    assertChild(consume, send, spans);
    const upstream = one(spans, 'agentk HTTP client span', (s) => s.kind === 'CLIENT' && s.service === 'agentk');
    assertChild(upstream, consume, spans);
    assert.equal(new Set(spans.map((s) => s.traceId)).size, 1);
  });

  test('an upstream that cannot be reached: every span on the way says so, with the error class', async () => {
    const { res, body, traceId } = await traced(0, `${base('broken')}/api/v1/query?query=up`);
    assert.equal(res.status, 502, body);
    const spans = await otlp.waitForTrace(traceId, (s) => s.length >= 7 && s.some((x) => x.service === 'agentk' && x.kind === 'CLIENT'));

    const server0 = one(spans, 'server span', (s) => s.kind === 'SERVER' && s.instance === cluster.nodes[0]!.name);
    assert.equal(server0.status.code, 'ERROR');
    assert.equal(server0.attributes['http.response.status_code'], 502);
    const send = one(spans, 'send span', (s) => s.kind === 'PRODUCER');
    assert.equal(send.status.code, 'ERROR');
    assert.equal(send.attributes['error.type'], 'upstream_unreachable');
    assert.ok(send.events.some((e) => e.name === 'exception' && e.attributes['exception.type'] === 'upstream_unreachable'), describeTree(spans));
    const consume = one(spans, 'agentk span', (s) => s.kind === 'CONSUMER');
    assertChild(consume, send, spans);
    assert.equal(consume.status.code, 'ERROR');
    assert.equal(consume.attributes['error.type'], 'upstream_unreachable');
    assert.match(consume.status.message ?? '', /ECONNREFUSED/);
    const upstream = one(spans, 'agentk HTTP client span', (s) => s.kind === 'CLIENT' && s.service === 'agentk');
    assertChild(upstream, consume, spans);
    assert.equal(upstream.status.code, 'ERROR');
  });

  test('an error answer from Prometheus passes through, and the spans record its status', async () => {
    const { res, body, traceId } = await traced(1, `${base('prod')}/api/v1/query?query=${encodeURIComponent('sum(')}`);
    assert.equal(res.status, 400, body);
    assert.equal((JSON.parse(body) as { errorType: string }).errorType, 'bad_data');
    const spans = await otlp.waitForTrace(traceId, (s) => s.length >= 5 && s.some((x) => x.service === 'agentk' && x.kind === 'CLIENT'));
    const upstream = one(spans, 'agentk HTTP client span', (s) => s.kind === 'CLIENT' && s.service === 'agentk');
    assert.equal(upstream.attributes['http.response.status_code'], 400);
    assert.equal(upstream.status.code, 'ERROR', 'a 4xx is an error for an HTTP client span');
    assert.equal(one(spans, 'send span', (s) => s.kind === 'PRODUCER').attributes['http.response.status_code'], 400);
    assert.equal(one(spans, 'server span', (s) => s.kind === 'SERVER').attributes['http.response.status_code'], 400);
  });

  test('a routing timeout: a trace with the error and no agent span', async () => {
    const { res, body, traceId } = await traced(0, `${base('ghost')}/api/v1/query?query=up`);
    assert.equal(res.status, 503, body);
    assert.ok(res.headers.get('retry-after'));
    const spans = await otlp.waitForTrace(traceId, (s) => s.some((x) => x.name === 'route prometheus') && s.some((x) => x.kind === 'SERVER'));
    await sleep(500); // give any (wrong) agent span time to arrive
    const all = otlp.trace(traceId);
    assert.equal(all.length, 2, describeTree(all));
    const server = one(spans, 'server span', (s) => s.kind === 'SERVER');
    assert.equal(server.status.code, 'ERROR');
    assert.equal(server.attributes['http.response.status_code'], 503);
    const route = one(spans, 'routing span', (s) => s.name === 'route prometheus');
    assertChild(route, server, spans);
    assert.equal(route.status.code, 'ERROR');
    assert.equal(route.attributes['kas.agent.id'], 'ghost');
    assert.equal(route.attributes['error.type'], 'no_replica');
    assert.equal(route.attributes['kas.agent.replica'], undefined, 'no replica was chosen');
    const exception = route.events.find((e) => e.name === 'exception');
    assert.equal(exception?.attributes['exception.type'], 'no_replica');
    assert.match(String(exception?.attributes['exception.message']), /no replica has connected in 1s/);
    assert.ok(Number(route.endNs - route.startNs) >= 900e6, 'the routing span covers the wait');
  });

  test('every answer carries X-Trace-Id, errors kas produces included', async () => {
    const unauthenticated = await fetch(`${cluster.nodes[0]!.apiUrl}${base('prod')}/api/v1/query?query=up`);
    assert.equal(unauthenticated.status, 401);
    assert.match(unauthenticated.headers.get('x-trace-id') ?? '', /^[0-9a-f]{32}$/);
    const outOfScope = await traced(0, '/api/v1/agents/nobody/prometheus/api/v1/query?query=up');
    assert.equal(outOfScope.res.status, 403);
    const unknown = await traced(1, '/api/v1/agents/prod/grafana/api/health');
    assert.equal(unknown.res.status, 404);
    const list = await traced(1, '/api/v1/agents');
    assert.equal(list.res.status, 200);
  });

  test('the log lines of a request carry the trace and span ids of its spans, and no secret', async () => {
    const { res, traceId } = await traced(0, `${base('prod')}/api/v1/query?query=up`);
    assert.equal(res.status, 200);
    const spans = await otlp.waitForTrace(traceId, (s) => s.length >= 7);
    const replica = cluster.agents.find((a) => a.name === res.headers.get('x-kas-agent-replica'))!;
    const lineOf = async (proc: typeof replica.proc) =>
      JSON.parse(await proc.waitForLine((l) => l.includes(traceId) && l.includes('"request served"'), 5_000)) as Record<string, unknown>;

    const kasLine = await lineOf(cluster.nodes[0]!.proc);
    assert.equal(kasLine.level, 'info');
    assert.equal(kasLine.trace_id, traceId);
    assert.ok(spans.some((s) => s.spanId === kasLine.span_id && s.instance === cluster.nodes[0]!.name), 'span_id is one of the request’s spans');
    assert.equal(kasLine.agent_id, 'prod');
    assert.equal(kasLine.upstream, 'prometheus');
    assert.equal(kasLine.status, 200);
    assert.equal(kasLine.kas_node, cluster.nodes[1]!.name);
    assert.ok(Number(kasLine.bytes) > 0, 'bytes of the answer');
    assert.equal(typeof kasLine.duration_ms, 'number');

    const agentLine = await lineOf(replica.proc);
    assert.equal(agentLine.trace_id, traceId);
    const consume = one(spans, 'agentk span', (s) => s.kind === 'CONSUMER');
    assert.equal(agentLine.span_id, consume.spanId);

    const logs = [...cluster.nodes.map((n) => n.proc.output()), ...cluster.agents.map((a) => a.proc.output())].join('\n');
    for (const secret of tokens) assert.ok(!logs.includes(secret), 'a token was logged');
    assert.ok(!/"authorization"\s*:\s*"(?:Bearer|Basic)/i.test(logs), 'an Authorization header was logged');
  });

  test('kas graphs itself: Prometheus scrapes both programs, and a PromQL query through kas counts the requests just made', async () => {
    // Requests this test makes, answered 400 by Prometheus (a code no other request here gets at
    // this point), so they can be told apart from the queries that read the counter.
    const direct = async (node: number) => {
      const text = await (await fetch(`${cluster.nodes[node]!.observabilityUrl}/metrics`)).text();
      const line = text.split('\n').find((l) => l.startsWith('kas_requests_total{') && l.includes('code="400"') && l.includes('upstream="prometheus"'));
      return line ? Number(line.split(' ').pop()) : 0;
    };
    const before = [await direct(0), await direct(1)];
    const made = [3, 2];
    for (const [node, count] of made.entries()) {
      for (let i = 0; i < count; i++) {
        const { res } = await traced(node, `${base('prod')}/api/v1/query?query=${encodeURIComponent('rate(')}`);
        assert.equal(res.status, 400);
      }
    }
    assert.deepEqual([await direct(0), await direct(1)], [before[0]! + made[0]!, before[1]! + made[1]!], 'each node counts what it answered');

    const query = async (promql: string) => {
      const { res, body } = await traced(0, `${base('prod')}/api/v1/query?query=${encodeURIComponent(promql)}`);
      assert.equal(res.status, 200, body);
      return (JSON.parse(body) as { data: { result: { metric: Record<string, string>; value: [number, string] }[] } }).data.result;
    };
    const byInstance = await waitFor(
      async () => {
        const result = await query('sum by (instance) (kas_requests_total{job="kas",upstream="prometheus",code="400"})');
        const counts = cluster.nodes.map((n) => Number(result.find((r) => r.metric.instance === new URL(n.observabilityUrl).host)?.value[1] ?? -1));
        return counts[0] === before[0]! + made[0]! && counts[1] === before[1]! + made[1]! ? counts : undefined;
      },
      { timeoutMs: 15_000, intervalMs: 500, what: 'Prometheus to see the requests through kas' },
    );
    assert.equal(byInstance.length, 2);

    // Both programs' metrics, histograms and process metrics are scraped.
    const seen = async (promql: string, min: number) => {
      const result = await waitFor(async () => {
        const r = await query(promql);
        return r.length >= min ? r : undefined;
      }, { timeoutMs: 10_000, intervalMs: 500, what: promql });
      return result;
    };
    await seen('up{job="kas"} == 1', 2);
    await seen('up{job="agentk"} == 1', 2);
    await seen('kas_request_duration_seconds_bucket{job="kas",le="0.001"}', 1);
    await seen('kas_routing_duration_seconds_count{job="kas"}', 1);
    await seen('kas_connected_agent_replicas{job="kas"}', 2);
    await seen('kas_tunnel_bytes_total{job="kas",direction="from_agent"}', 1);
    await seen('kas_routing_timeouts_total{job="kas"} > 0', 1);
    await seen('agentk_requests_total{job="agentk",upstream="prometheus"}', 2);
    await seen('agentk_upstream_duration_seconds_count{job="agentk"}', 2);
    await seen('agentk_connected{job="agentk"} == 1', 2);
    await seen('agentk_reconnects_total{job="agentk"}', 2);
    for (const job of ['kas', 'agentk']) {
      for (const name of ['process_resident_memory_bytes', 'process_cpu_seconds_total', 'process_open_fds', 'nodejs_eventloop_lag_seconds']) {
        await seen(`${name}{job="${job}"}`, 2);
      }
    }
  });

  test('a live graph: every evaluation is a trace of its own down to Prometheus, linked to the subscription that opened the graph', async () => {
    const traceId = randomBytes(16).toString('hex');
    const headers = { traceparent: `00-${traceId}-${randomBytes(8).toString('hex')}-01` };
    const controller = new AbortController();
    const res = await cluster.fetch(0, `${base('prod')}/live?query=${encodeURIComponent('count(up) * 2')}&range=10s&step=1s`, { token, headers, signal: controller.signal });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('x-trace-id'), traceId);
    const reader = res.body!.getReader();
    let text = '';
    while ((text.match(/event: append/g) ?? []).length < 3) text += Buffer.from((await reader.read()).value!).toString();
    controller.abort();
    const evaluations = await waitFor(
      async () => {
        const found = otlp.spans.filter((s) => s.name === 'live evaluate' && s.links.some((l) => l.traceId === traceId));
        return found.length >= 3 ? found : undefined;
      },
      { timeoutMs: 10_000, what: 'evaluation spans linked to the subscription' },
    );
    // The subscription's server span ends (and is exported) once the stream is closed.
    const linked = evaluations[0]!.links[0]!.spanId;
    const subscription = await otlp.waitForTrace(traceId, (t) => t.some((s) => s.spanId === linked));
    for (const evaluation of evaluations.slice(0, 3)) {
      assert.notEqual(evaluation.traceId, traceId, 'not a child of the endless subscription');
      assert.equal(evaluation.parentSpanId, undefined, 'the root of its own trace');
      assert.ok(subscription.some((s) => s.spanId === evaluation.links[0]!.spanId), 'linked to a span of the subscription’s trace');
      const spans = await otlp.waitForTrace(evaluation.traceId, (t) => t.some((x) => x.service === 'agentk' && x.kind === 'CLIENT'));
      const route = one(spans, 'routing span', (s) => s.name === 'route prometheus');
      assertChild(route, evaluation, spans);
      const upstream = one(spans, 'agentk HTTP client span', (s) => s.kind === 'CLIENT' && s.service === 'agentk');
      assert.match(String(upstream.attributes['url.full']), /\/api\/v1\/query_range\?query=count/);
    }
  });

  /** The seven spans of a request through node 0 to the agent on node 1, each checked against its parent. */
  /** `sharedWatch`: a watch others may join, routed under a span of its own below the caller's. */
  function forwardedChain(spans: ExportedSpan[], routeName: string, sharedWatch = false) {
    const server0 = one(spans, 'server span on the node called', (s) => s.kind === 'SERVER' && s.instance === cluster.nodes[0]!.name);
    const route = one(spans, 'routing span', (s) => s.name === routeName);
    assertChild(route, server0, spans);
    let routedBy = route;
    if (sharedWatch) {
      routedBy = one(spans, 'shared watch routing span', (s) => s.name === 'route kubernetes shared watch');
      assertChild(routedBy, route, spans);
    }
    const forward = one(spans, 'kas-to-kas client span', (s) => s.kind === 'CLIENT' && s.service === 'kas');
    assertChild(forward, routedBy, spans);
    const server1 = one(spans, 'server span on the node holding the agent', (s) => s.kind === 'SERVER' && s.instance === cluster.nodes[1]!.name);
    assertChild(server1, forward, spans);
    const send = one(spans, 'send span', (s) => s.kind === 'PRODUCER');
    assertChild(send, server1, spans);
    const consume = one(spans, 'agentk span', (s) => s.kind === 'CONSUMER');
    assertChild(consume, send, spans);
    const upstream = one(spans, 'agentk HTTP client span', (s) => s.kind === 'CLIENT' && s.service === 'agentk');
    assertChild(upstream, consume, spans);
    return { server0, route, routedBy, forward, server1, send, consume, upstream };
  }

  test('a Kubernetes list through the other node: one trace down to the agent’s call to the API server', async () => {
    const headers = { 'accept-encoding': 'identity' };
    const { res, body, traceId } = await traced(0, '/api/v1/agents/kube/kubernetes/api/v1/namespaces/shop/pods', { headers });
    assert.equal(res.status, 200, body);
    assert.equal((JSON.parse(body) as { items: unknown[] }).items.length, 3);
    const spans = await otlp.waitForTrace(traceId, (s) => s.length >= 7 && s.some((x) => x.service === 'agentk' && x.kind === 'CLIENT'));
    await sleep(300);
    assert.equal(otlp.trace(traceId).length, 7, describeTree(otlp.trace(traceId)));
    const { route, send, consume, upstream } = forwardedChain(spans, 'route kubernetes');
    assert.equal(route.attributes['kas.agent.id'], 'kube');
    assert.equal(route.attributes['kas.agent.replica'], 'kube-0');
    assert.equal(route.attributes['kas.node'], cluster.nodes[1]!.name);
    assert.equal(send.attributes['messaging.destination.name'], 'agent:kube');
    assert.equal(send.attributes['kas.stream.bytes'], Buffer.byteLength(body));
    assert.equal(consume.attributes['kas.upstream'], 'kubernetes');
    assert.equal(consume.attributes['kas.stream.bytes'], Buffer.byteLength(body));
    assert.equal(upstream.attributes['url.full'], `${sim.url}/api/v1/namespaces/shop/pods`);
    assert.equal(upstream.attributes['http.response.status_code'], 200);
    for (const span of spans) assert.notEqual(span.status.code, 'ERROR', `${span.name} succeeded`);
  });

  test('a Kubernetes watch: one trace whose stream spans end with the watch and count what it carried', async () => {
    const headers = { 'accept-encoding': 'identity' };
    const rv = sim.api.resourceVersion();
    const started = process.hrtime.bigint();
    const pending = traced(0, `/api/v1/agents/kube/kubernetes/api/v1/namespaces/shop/pods?watch=1&resourceVersion=${rv}&timeoutSeconds=2`, { headers });
    await sleep(500);
    sim.api.create('pods', makePod({ name: 'web-new', namespace: 'shop' }));
    await sleep(300);
    sim.api.delete('pods', 'shop', 'web-0');
    const { res, body, traceId } = await pending;
    const elapsedNs = process.hrtime.bigint() - started;
    assert.equal(res.status, 200, body);
    const events = body.trim().split('\n').map((line) => (JSON.parse(line) as { type: string }).type);
    assert.deepEqual(events, ['ADDED', 'DELETED'], 'the watch saw both changes, then the API server ended it');

    const spans = await otlp.waitForTrace(traceId, (s) => s.length >= 8 && s.some((x) => x.service === 'agentk' && x.kind === 'CLIENT'));
    const { server0, route, routedBy, send, consume, upstream } = forwardedChain(spans, 'route kubernetes', true);
    // A watch from a resourceVersion may be shared: this caller started the upstream watch.
    assert.equal(route.attributes['kas.watch.shared'], false);
    assert.equal(route.attributes['kas.watch.viewers'], 1);
    for (const span of [route, routedBy]) {
      assert.equal(span.attributes['kas.agent.replica'], 'kube-0', span.name);
      assert.equal(span.attributes['kas.node'], cluster.nodes[1]!.name, span.name);
    }
    assert.equal(upstream.attributes['http.response.status_code'], 200);
    assert.match(String(upstream.attributes['url.full']), /\/api\/v1\/namespaces\/shop\/pods\?watch=1&/);
    for (const span of [send, consume]) {
      assert.equal(span.attributes['kas.stream.bytes'], Buffer.byteLength(body), `${span.name} counts the watch's bytes`);
      assert.ok(Number(span.attributes['kas.stream.chunks']) >= 2, `${span.name}: each event went as it happened: ${span.attributes['kas.stream.chunks']} chunks`);
      assert.ok(span.events.some((e) => e.name === 'first byte'));
      // The stream's spans last as long as the watch (2 s), not just until its head was sent.
      assert.ok(span.endNs - span.startNs >= 1_500_000_000n, `${span.name} lasted ${(span.endNs - span.startNs) / 1_000_000n} ms`);
      assert.notEqual(span.status.code, 'ERROR');
    }
    assert.ok(server0.endNs - server0.startNs <= elapsedNs + 50_000_000n);
  });
});
