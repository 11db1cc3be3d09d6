// Live graphs on one kas node (no Redis), against a real Prometheus scraping series that appear
// and disappear: after a minute, what a viewer holds equals what query_range answers for the same
// window and step, through a spell of the agent being away; and every limit answers clearly.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { type AgentReplica, KasCluster } from '../support/kas.ts';
import { startPrometheus, type PrometheusServer } from '../support/prometheus.ts';
import { SseClient } from '../support/sse.ts';
import { startToyMetrics, type ToyMetrics } from '../support/toyMetrics.ts';

interface Sample {
  metric: Record<string, string>;
  value: [number, string];
}
interface Series {
  metric: Record<string, string>;
  values: [number, string][];
}

const key = (metric: Record<string, string>) => JSON.stringify(Object.entries(metric).sort());

/** What a viewer holds for the window ending at its last step: series → t → value. */
function held(client: SseClient, rangeS: number): { last: number; points: Map<string, Map<number, string>> } {
  const points = new Map<string, Map<number, string>>();
  const put = (metric: Record<string, string>, t: number, v: string) => {
    const k = key(metric);
    if (!points.has(k)) points.set(k, new Map());
    assert.ok(!points.get(k)!.has(t) || points.get(k)!.get(t) === v, `a point is never sent twice with another value (${k} @ ${t})`);
    points.get(k)!.set(t, v);
  };
  let last = 0;
  for (const event of client.events) {
    if (event.event === 'snapshot') {
      last = Number(event.id);
      for (const s of (JSON.parse(event.data) as { result: Series[] }).result) for (const [t, v] of s.values) put(s.metric, t, v);
    } else if (event.event === 'append') {
      const append = JSON.parse(event.data) as { t: number; result: Sample[] };
      assert.ok(append.t > last, `appends go forward (${append.t} after ${last})`);
      last = append.t;
      for (const s of append.result) {
        assert.equal(s.value[0], append.t, 'each point sits at its append’s step');
        put(s.metric, s.value[0], s.value[1]);
      }
    }
  }
  for (const series of points.values()) for (const t of [...series.keys()]) if (t < last - rangeS) series.delete(t);
  for (const [k, series] of [...points]) if (series.size === 0) points.delete(k);
  return { last, points };
}

describe('live graphs on one node', () => {
  let prometheus: PrometheusServer;
  let toy: ToyMetrics;
  let cluster: KasCluster;
  let token: string;
  let agentToken: string;
  let agent: AgentReplica;

  before(async () => {
    toy = await startToyMetrics();
    toy.set({ a: 1 });
    prometheus = await startPrometheus({ jobs: { toy: [toy.target] } });
    cluster = await KasCluster.start({ env: { KAS_LIVE_MAX_SERIES: '3', KAS_LIVE_MAX_SUBSCRIPTIONS: '4', LOG_LEVEL: 'info' } });
    agentToken = await cluster.registerAgent('prod');
    agent = await cluster.startAgent({ id: 'prod', token: agentToken, prometheusUrl: prometheus.url });
    token = await cluster.issueToken();
  });

  after(async () => {
    await cluster?.stop();
    await prometheus?.stop();
    await toy?.stop();
  });

  const liveUrl = (query: string, range: string, step: string) =>
    `${cluster.nodes[0]!.apiUrl}/api/v1/agents/prod/prometheus/live?${new URLSearchParams({ query, range, step })}`;

  test('after a minute, a viewer holds what query_range answers for its window: series that come and go, and the agent away for a while', async () => {
    const rangeS = 60;
    const viewers = await Promise.all(['toy_value', 'sum(toy_value)'].map((q) => SseClient.open(liveUrl(q, `${rangeS}s`, '1s'), token)));
    const started = Date.now();
    const at = (s: number) => sleep(Math.max(0, started + s * 1000 - Date.now()));
    await at(8);
    toy.set({ a: 2, b: 10 });
    await at(16);
    toy.set({ b: 11, c: 5 });
    await at(24);
    await agent.proc.stop(); // the agent goes away: error events, and the graph goes on once it is back
    await at(30);
    agent = await cluster.startAgent({ id: 'prod', token: agentToken, prometheusUrl: prometheus.url });
    await at(40);
    toy.set({ c: 6 });
    await at(61);
    for (const [i, viewer] of viewers.entries()) {
      const query = ['toy_value', 'sum(toy_value)'][i]!;
      const errors = viewer.of<{ errorType: string; error: string }>('error');
      assert.ok(errors.length >= 2, `${query}: error events while the agent was away (${errors.length})`);
      assert.ok(errors.every((e) => e.data.error.length > 0 && e.id !== undefined), 'each names its step and says what failed');
      assert.ok(viewer.comments >= 3, `${query}: a heartbeat at least every 15 s (${viewer.comments})`);
      const { last, points } = held(viewer, rangeS);
      const params = new URLSearchParams({ query, start: String(last - rangeS), end: String(last), step: '1' });
      const direct = (await (await fetch(`${prometheus.url}/api/v1/query_range?${params}`)).json()) as { data: { result: Series[] } };
      const expected = new Map(direct.data.result.map((s) => [key(s.metric), new Map(s.values.map(([t, v]) => [t, v]))]));
      assert.deepEqual([...points.keys()].sort(), [...expected.keys()].sort(), `${query}: the same series`);
      for (const [k, series] of expected) assert.deepEqual(new Map([...points.get(k)!].sort(([a], [b]) => a - b)), series, `${query}: the points of ${k}`);
      viewer.close();
    }
  });

  test('more series than KAS_LIVE_MAX_SERIES: an error event naming the limit, and the stream ends', async () => {
    toy.set({ a: 1, b: 2, c: 3, d: 4 });
    await sleep(2_500);
    const viewer = await SseClient.open(liveUrl('toy_value', '10s', '1s'), token);
    await viewer.waitFor((c) => c.ended, 10_000, 'the end of the stream');
    const [error] = viewer.of<{ errorType: string; error: string }>('error');
    assert.ok(error, 'an error event');
    assert.match(error.data.error, /KAS_LIVE_MAX_SERIES \(3\)/);
  });

  test('more distinct graphs than KAS_LIVE_MAX_SUBSCRIPTIONS on a node: 429 in the Prometheus envelope; an open one can still be viewed', async () => {
    const open = await Promise.all([1, 2, 3, 4].map((n) => SseClient.open(liveUrl(`vector(${n})`, '10s', '1s'), token)));
    await Promise.all(open.map((c) => c.waitFor((x) => x.events.length > 0, 10_000, 'a first event')));
    const refused = await SseClient.open(liveUrl('vector(5)', '10s', '1s'), token);
    await refused.waitFor((c) => c.ended, 5_000, 'the refusal');
    assert.equal(refused.status, 429);
    assert.ok(refused.headers['retry-after']);
    const body = JSON.parse(refused.text()) as { status: string; errorType: string; error: string };
    assert.equal(body.status, 'error');
    assert.match(body.error, /KAS_LIVE_MAX_SUBSCRIPTIONS/);
    const another = await SseClient.open(liveUrl('vector(1)', '10s', '1s'), token);
    await another.waitFor((c) => c.of('snapshot').length === 1, 5_000, 'a snapshot of the open graph');
    for (const c of [...open, another]) c.close();
  });
});
