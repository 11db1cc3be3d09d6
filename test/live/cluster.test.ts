// Live graphs across a cluster of three kas nodes (separate processes), a real Redis and a real
// Prometheus: one evaluation per step for every viewer on every node, counted by the agent and
// by Prometheus's own query log; the dashboard's socket gets the same points; the node that
// evaluates can die or drain and another takes over; Redis can go away and come back.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, afterEach, before, describe, test } from 'node:test';
import { io as connectUi } from 'socket.io-client';
import type { UiUpdate } from '../../protocol/ui.ts';
import { KasCluster } from '../support/kas.ts';
import { metricSum } from '../support/metrics.ts';
import { startPrometheus, type PrometheusServer } from '../support/prometheus.ts';
import { SseClient } from '../support/sse.ts';

const STEP_S = 1;

interface Append {
  t: number;
  result: { metric: Record<string, string>; value: [number, string] }[];
}

/** The steps a viewer has points for, in order: its snapshot's last step, then its appends'. */
function steps(client: SseClient): number[] {
  const out: number[] = [];
  for (const event of client.events) {
    if (event.event === 'snapshot') out.push(Number(event.id));
    if (event.event === 'append') out.push((JSON.parse(event.data) as Append).t);
  }
  return out;
}

/** The steps missing between the first and the last a viewer has. */
function gaps(client: SseClient): number[] {
  const seen = steps(client);
  const missing: number[] = [];
  for (let i = 1; i < seen.length; i++) {
    for (let t = seen[i - 1]! + STEP_S; t < seen[i]!; t += STEP_S) missing.push(t);
    assert.ok(seen[i]! > seen[i - 1]!, `steps go forward: ${seen.slice(Math.max(0, i - 3), i + 2).join(' ')}`);
  }
  return missing;
}

describe('live graphs across three kas nodes', () => {
  let prometheus: PrometheusServer;
  let cluster: KasCluster;
  let token: string;
  let queryLog: string;

  before(async () => {
    cluster = await KasCluster.start({ nodes: 3, env: { KAS_LIVE_DELAY: '1s', LOG_LEVEL: 'info' } });
    queryLog = join(cluster.dir, 'queries.log');
    prometheus = await startPrometheus({ queryLogFile: queryLog });
    const agentToken = await cluster.registerAgent('prod');
    // The agent's replicas sit on nodes 1 and 2: node 0 may die without taking the agent along.
    await cluster.startAgent({ id: 'prod', token: agentToken, node: 1, prometheusUrl: prometheus.url });
    await cluster.startAgent({ id: 'prod', token: agentToken, node: 2, prometheusUrl: prometheus.url });
    token = await cluster.issueToken();
    for (const node of [0, 1, 2]) await cluster.waitForReplicas('prod', 2, token, node);
  });

  /** Every viewer a test opened; closed after it even when it failed, so no graph outlives its test. */
  const opened = new Set<SseClient>();
  afterEach(() => {
    for (const client of opened) client.close();
    opened.clear();
  });

  after(async () => {
    await cluster?.stop();
    await prometheus?.stop();
  });

  const liveUrl = (node: number, query: string, range = '30s', step = `${STEP_S}s`) =>
    `${cluster.nodes[node]!.apiUrl}/api/v1/agents/prod/prometheus/live?${new URLSearchParams({ query, range, step })}`;

  /** Opens `count` viewers on `node`, each once it has its snapshot. */
  async function viewers(node: number, query: string, count: number): Promise<SseClient[]> {
    const clients = await Promise.all(Array.from({ length: count }, () => SseClient.open(liveUrl(node, query), token)));
    for (const client of clients) opened.add(client);
    await Promise.all(clients.map((c) => c.waitFor((x) => x.events.some((e) => e.event === 'snapshot'), 20_000, 'a snapshot')));
    return clients;
  }

  /** Agent-side evaluations of `query` so far: the Prometheus requests the agent made (both replicas). */
  const agentRequests = async () => {
    let sum = 0;
    for (const replica of cluster.agents) sum += await metricSum(replica.observabilityUrl, 'agentk_requests_total', { upstream: 'prometheus' });
    return sum;
  };

  /** query_range evaluations of `query` in Prometheus's own query log, by the step they ended at. */
  async function loggedEvaluations(query: string): Promise<number[]> {
    const text = await readFile(queryLog, 'utf8').catch(() => '');
    return text
      .split('\n')
      .filter(Boolean)
      .map((line) => JSON.parse(line) as { params?: { query?: string; end?: string; step?: number } })
      .filter((entry) => entry.params?.query === query && entry.params.step !== 0)
      .map((entry) => Date.parse(entry.params!.end!) / 1000);
  }

  const owner = async () => {
    const evaluating = await Promise.all(cluster.nodes.map((n) => metricSum(n.observabilityUrl, 'kas_live_evaluating')));
    return evaluating;
  };

  test('300 viewers over three nodes: one evaluation per step, counted by the agent and by Prometheus; every viewer gets every step', async () => {
    const query = 'sum by (job) (up)';
    const first = await viewers(0, query, 1);
    const rest = [...(await viewers(0, query, 99)), ...(await viewers(1, query, 100)), ...(await viewers(2, query, 100))];
    const all = [...first, ...rest];
    assert.deepEqual(await owner(), [1, 0, 0], 'the node of the first viewer evaluates the graph for the cluster');
    // Count from a step every viewer has seen, over 20 s.
    const lastOf = (c: SseClient) => steps(c).at(-1)!;
    await Promise.all(all.map((c) => c.waitFor((x) => lastOf(x) >= lastOf(first[0]!), 5_000, 'the latest step')));
    const t0 = lastOf(first[0]!);
    const requests0 = await agentRequests();
    await first[0]!.waitFor((c) => lastOf(c) >= t0 + 20, 30_000, '20 steps');
    const t1 = t0 + 20;
    await Promise.all(all.map((c) => c.waitFor((x) => lastOf(x) >= t1, 5_000, `step ${t1} on every viewer`)));
    const requests1 = await agentRequests();
    const evaluatedSteps = (t1 - t0) / STEP_S;
    const byAgent = requests1 - requests0;
    const logged = (await loggedEvaluations(query)).filter((end) => end > t0 && end <= t1);
    // The agent's counter is read while steps go on, so the step at either edge may fall on
    // either side of a reading: one off is allowed, in whole requests (19 / 20 - 1 is not -0.05
    // in floating point, and a ratio check once failed on exactly that).
    assert.ok(Math.abs(byAgent - evaluatedSteps) <= 1, `evaluations seen by the agent: ${byAgent} for ${evaluatedSteps} steps`);
    assert.equal(logged.length, evaluatedSteps, `query_range evaluations in Prometheus's query log: ${logged.length} for ${evaluatedSteps} steps`);
    assert.deepEqual(new Set(logged).size, logged.length, 'no step was evaluated twice');
    for (const client of all) {
      assert.equal(client.of('snapshot').length, 1, 'one snapshot each');
      assert.deepEqual(gaps(client), [], 'no step missing');
    }
    // Late joiners got their snapshot from the window, not from Prometheus: only the first one queried it.
    const snapshots = (await loggedEvaluations(query)).length - logged.length;
    assert.ok(snapshots <= 25, `the other queries of this graph were its first window and the steps before t0 (${snapshots})`);
    for (const client of all) client.close();
  });

  test('the dashboard socket gets the same graph, the same points, as an SSE viewer', async () => {
    const query = 'count(up)';
    const sse = (await viewers(2, query, 1))[0]!;
    const socket = connectUi(`${cluster.nodes[1]!.apiUrl}/ui`, { transports: ['websocket'], auth: { token } });
    const updates: UiUpdate[] = [];
    socket.on('update', (u: UiUpdate) => updates.push(u));
    try {
      const ack = await socket.timeout(10_000).emitWithAck('subscribe', { kind: 'live', id: 'g1', agentId: 'prod', query, range: '30s', step: '1s' });
      assert.equal(ack.ok, true, JSON.stringify(ack));
      await sse.waitFor(() => updates.filter((u) => u.type === 'append').length >= 3, 15_000, 'three appends on the socket');
      const snapshot = updates.find((u) => u.type === 'snapshot');
      assert.ok(snapshot && snapshot.type === 'snapshot' && snapshot.data.result.length === 1);
      const sseAppends = new Map(sse.of<Append>('append').map((a) => [a.data.t, JSON.stringify(a.data.result)]));
      const socketAppends = updates.filter((u) => u.type === 'append');
      await sse.waitFor((c) => c.of<Append>('append').some((a) => a.data.t >= socketAppends.at(-1)!.t), 5_000, 'the same steps over SSE');
      for (const a of sse.of<Append>('append')) sseAppends.set(a.data.t, JSON.stringify(a.data.result));
      for (const update of socketAppends) assert.equal(JSON.stringify(update.data.result), sseAppends.get(update.t), `step ${update.t}`);
    } finally {
      socket.close();
      sse.close();
    }
  });

  test('a viewer that reconnects with Last-Event-ID gets the appends it missed, with no new query upstream', async () => {
    const query = 'max(up)';
    const [steady] = await viewers(1, query, 1);
    const leaving = await SseClient.open(liveUrl(1, query), token);
    opened.add(leaving);
    await leaving.waitFor((c) => steps(c).length >= 3, 10_000, 'a few steps');
    const lastId = leaving.lastEventId!;
    leaving.close();
    await steady!.waitFor((c) => steps(c).at(-1)! >= Number(lastId) + 3, 10_000, 'three more steps');
    const before = await loggedEvaluations(query);
    const back = await SseClient.open(liveUrl(1, query), token, lastId);
    opened.add(back);
    await back.waitFor((c) => c.events.length >= 3, 10_000, 'the missed appends');
    assert.equal(back.of('snapshot').length, 0, 'no snapshot: it resumed');
    assert.equal(steps(back)[0], Number(lastId) + STEP_S, 'from the step after its last one');
    assert.deepEqual(gaps(back), []);
    const afterResume = await loggedEvaluations(query);
    const upstreamForResume = afterResume.filter((end) => !before.includes(end) && end <= Number(lastId) + 3);
    assert.deepEqual(upstreamForResume, [], 'the missed steps came from the window kept in kas');
    back.close();
    steady!.close();
  });

  test('the evaluating node drains (SIGTERM): another takes over, and viewers elsewhere miss nothing and wait for nothing', async () => {
    const query = 'min(up)';
    await viewers(0, query, 1);
    const watching = [...(await viewers(1, query, 5)), ...(await viewers(2, query, 5))];
    assert.deepEqual(await owner(), [1, 0, 0]);
    await new Promise((r) => setTimeout(r, 2_500));
    const drainedAt = Date.now();
    await cluster.restartNode(0);
    await watching[0]!.waitFor((c) => c.events.some((e) => e.at > drainedAt + 5_000), 15_000, 'steps after the drain');
    const evaluating = await owner();
    assert.equal(evaluating.reduce((a, b) => a + b, 0), 1, `exactly one node evaluates now: ${evaluating}`);
    for (const client of watching) {
      assert.deepEqual(gaps(client), [], 'no step missing');
      // Every step arrived about when it was due (step time + delay), none a step late.
      for (const event of client.events.filter((e) => e.event === 'append' && e.at > drainedAt)) {
        const due = (Number(event.id) + 1) * 1000;
        assert.ok(event.at - due < 1_500, `step ${event.id} arrived ${event.at - due} ms after it was due`);
      }
      client.close();
    }
  });

  test('the evaluating node dies (SIGKILL): another takes over within two steps; viewers elsewhere miss no point', async () => {
    const query = 'avg(up)';
    await viewers(0, query, 1);
    const watching = [...(await viewers(1, query, 5)), ...(await viewers(2, query, 5))];
    assert.deepEqual(await owner(), [1, 0, 0]);
    await new Promise((r) => setTimeout(r, 2_500));
    const killedAt = Date.now();
    await cluster.nodes[0]!.proc.kill();
    const lastBefore = Math.floor((killedAt - 1000) / 1000);
    await watching[0]!.waitFor((c) => steps(c).at(-1)! >= lastBefore + 6, 20_000, 'steps after the kill');
    for (const client of watching) {
      assert.deepEqual(gaps(client), [], 'no step missing: the new evaluator filled the ones it took over');
      const firstAfter = client.events.find((e) => e.event === 'append' && Number(e.id) > lastBefore);
      assert.ok(firstAfter, 'steps go on');
      const due = (Number(firstAfter.id) + 1) * 1000;
      assert.ok(firstAfter.at - due <= 2 * STEP_S * 1000 + 700, `the first step after the kill came ${firstAfter.at - due} ms after it was due`);
      client.close();
    }
    await cluster.restartNode(0);
  });

  test('Redis away for a while: viewers keep getting every step from their own node; one evaluation per step again once it is back', async () => {
    const query = 'stddev(up)';
    await viewers(1, query, 1);
    const watching = [...(await viewers(1, query, 2)), ...(await viewers(2, query, 2))];
    await new Promise((r) => setTimeout(r, 1_500));
    const down = Date.now();
    await cluster.redis!.restart(4_000);
    const up = Date.now();
    await watching[0]!.waitFor((c) => c.events.some((e) => e.at > up + 6_000), 20_000, 'steps after Redis returned');
    for (const client of watching) {
      const during = client.events.filter((e) => e.event === 'append' && e.at > down + 1_500 && e.at < up);
      assert.ok(during.length >= 2, `steps kept coming while Redis was away (${during.length})`);
      assert.deepEqual(gaps(client), []);
    }
    // Converged: over the next steps, one evaluation per step across the cluster.
    const t0 = steps(watching[0]!).at(-1)!;
    const logged0 = await loggedEvaluations(query);
    await watching[0]!.waitFor((c) => steps(c).at(-1)! >= t0 + 5, 10_000, 'five more steps');
    const logged = (await loggedEvaluations(query)).filter((end) => end > t0 && end <= t0 + 5 && !logged0.includes(end));
    assert.equal(logged.length, 5, `evaluations of the five steps after converging: ${logged.join(' ')}`);
    for (const client of watching) client.close();
  });

  test('a step below 1s, too many points or no query are refused in the Prometheus envelope', async () => {
    const refused = async (url: string, status: number, pattern: RegExp) => {
      const client = await SseClient.open(url, token);
      await client.waitFor((c) => c.ended, 5_000, 'the answer');
      assert.equal(client.status, status, client.text());
      const body = JSON.parse(client.text()) as { status: string; errorType: string; error: string };
      assert.equal(body.status, 'error');
      assert.match(body.error, pattern);
    };
    await refused(liveUrl(1, 'up', '1m', '500ms'), 400, /smallest live step, 1s/);
    await refused(liveUrl(1, 'up', '4h', '1s'), 400, /11,000 points/);
    await refused(liveUrl(1, ''), 400, /query is required/);
  });
});
