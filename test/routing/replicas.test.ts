// Requests for an agent are spread over its connected replicas, wherever they sit, and a replica
// that dies does not fail new requests while another replica of the agent is connected.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { AgentReplica } from '../support/kas.ts';
import { KasCluster } from '../support/kas.ts';
import { waitFor } from '../support/procs.ts';
import { startFakeUpstream, type FakeUpstream } from '../support/upstream.ts';

interface Answer {
  status: number;
  replica: string | null;
  body: string;
}

describe('an agent with two replicas in a cluster of two kas nodes', () => {
  let cluster: KasCluster;
  let upstream: FakeUpstream;
  let token: string;
  // Replicas on different nodes: [0] on kas-0, [1] on kas-1.
  const spread: AgentReplica[] = [];
  // Both replicas on kas-1, reached through kas-0.
  const pair: AgentReplica[] = [];
  // On different nodes again; one is killed and the test waits until kas has seen it.
  const steady: AgentReplica[] = [];
  // Both on kas-1; one is killed while requests wait on it for a slow upstream.
  const busy: AgentReplica[] = [];

  before(async () => {
    [cluster, upstream] = await Promise.all([KasCluster.start({ nodes: 2 }), startFakeUpstream()]);
    const layout: [string, AgentReplica[], number[]][] = [
      ['spread', spread, [0, 1]],
      ['pair', pair, [1, 1]],
      ['steady', steady, [0, 1]],
      ['busy', busy, [1, 1]],
    ];
    token = await cluster.issueToken({ agents: layout.map(([id]) => id) });
    const agentTokens: string[] = [];
    for (const [id] of layout) agentTokens.push(await cluster.registerAgent(id));
    await Promise.all(
      layout.map(async ([id, replicas, nodes], i) => {
        for (const node of nodes) {
          replicas.push(await cluster.startAgent({ id, token: agentTokens[i]!, node, prometheusUrl: upstream.url }));
        }
      }),
    );
    for (const [id] of layout) {
      await cluster.waitForReplicas(id, 2, token, 0);
      await cluster.waitForReplicas(id, 2, token, 1);
    }
  });
  after(async () => {
    await cluster?.stop();
    await upstream?.stop();
  });

  async function query(agentId: string, node: number, params = 'query=up'): Promise<Answer> {
    const res = await cluster.fetch(node, `/api/v1/agents/${agentId}/prometheus/api/v1/query?${params}`, { token });
    return { status: res.status, replica: res.headers.get('x-kas-agent-replica'), body: await res.text() };
  }

  function tally(answers: Answer[]): Map<string | null, number> {
    const counts = new Map<string | null, number>();
    for (const a of answers) counts.set(a.replica, (counts.get(a.replica) ?? 0) + 1);
    return counts;
  }

  function assertAllSucceeded(answers: Answer[], what: string): void {
    const failed = answers.filter((a) => a.status !== 200);
    assert.equal(
      failed.length,
      0,
      `${what}: ${failed.length} of ${answers.length} failed, e.g. ${failed[0]?.status} ${failed[0]?.body}\n${cluster.describe()}`,
    );
    for (const a of answers) assert.equal((JSON.parse(a.body) as { status: string }).status, 'success');
  }

  async function visibleReplicas(agentId: string, node: number): Promise<string[]> {
    const res = await cluster.fetch(node, `/api/v1/agents/${agentId}`, { token });
    const body = (await res.json()) as { replicas: { replica: string }[] };
    return body.replicas.map((r) => r.replica).sort();
  }

  /** Once the victim is surely gone, the survivor is listed alone and answers everything. */
  async function assertOnlySurvivorServes(agentId: string, survivor: AgentReplica, node: number): Promise<void> {
    await waitFor(async () => (await visibleReplicas(agentId, node)).join() === survivor.name, {
      timeoutMs: 20_000,
      what: `${cluster.nodes[node]!.name} to list only ${survivor.name} for ${agentId}`,
    });
    const answers: Answer[] = [];
    for (let i = 0; i < 10; i++) answers.push(await query(agentId, node));
    assertAllSucceeded(answers, 'requests after the kill was seen');
    assert.deepEqual([...tally(answers)], [[survivor.name, 10]]);
  }

  test('100 requests through both nodes reach both replicas when they sit on different nodes', async () => {
    const answers: Answer[] = [];
    // As a load balancer in front of kas would: alternate between the nodes. (A node prefers a
    // replica it holds itself, saving a hop, so the spread here comes from spreading callers.)
    for (let i = 0; i < 100; i++) answers.push(await query('spread', i % 2));
    assertAllSucceeded(answers, 'spread requests');
    const counts = tally(answers);
    for (const replica of spread) assert.ok((counts.get(replica.name) ?? 0) > 0, `${replica.name} served some: ${[...counts]}`);
    assert.equal(counts.size, 2, `only the agent's replicas answer: ${[...counts]}`);
  });

  test('100 requests through the other node reach both replicas when they share a node', async () => {
    const answers: Answer[] = [];
    for (let i = 0; i < 100; i++) answers.push(await query('pair', 0));
    assertAllSucceeded(answers, 'pair requests');
    const counts = tally(answers);
    // Spread, not merely touched: each replica takes a fair part of the load.
    for (const replica of pair) assert.ok((counts.get(replica.name) ?? 0) >= 20, `${replica.name} served its share: ${[...counts]}`);
    assert.equal(counts.size, 2, `only the agent's replicas answer: ${[...counts]}`);
  });

  test('right after a replica is killed, new requests succeed through the other (both replicas on the far node)', async () => {
    const [victim, survivor] = pair as [AgentReplica, AgentReplica];
    // No waiting for kas to notice: kas must retry on the other replica rather than fail.
    victim.proc.signal('SIGKILL');
    const burst = await Promise.all(Array.from({ length: 20 }, () => query('pair', 0)));
    const sequential: Answer[] = [];
    for (let i = 0; i < 20; i++) sequential.push(await query('pair', 0));
    assertAllSucceeded([...burst, ...sequential], 'requests right after the kill');
    await assertOnlySurvivorServes('pair', survivor, 0);
  });

  test('right after a replica is killed, new requests succeed through its node (the other replica is remote)', async () => {
    const [survivor, victim] = spread as [AgentReplica, AgentReplica];
    victim.proc.signal('SIGKILL');
    // Through kas-1, which held the victim: it must move on to the replica on kas-0.
    const burst = await Promise.all(Array.from({ length: 20 }, (_, i) => query('spread', i % 4 === 0 ? 0 : 1)));
    const sequential: Answer[] = [];
    for (let i = 0; i < 20; i++) sequential.push(await query('spread', 1));
    assertAllSucceeded([...burst, ...sequential], 'requests right after the kill');
    await assertOnlySurvivorServes('spread', survivor, 1);
  });

  test('once kas has seen a replica die, every request is served by the other', async () => {
    const [victim, survivor] = steady as [AgentReplica, AgentReplica];
    await victim.proc.kill();
    for (const node of [0, 1]) {
      await waitFor(async () => (await visibleReplicas('steady', node)).join() === survivor.name, {
        timeoutMs: 20_000,
        what: `${cluster.nodes[node]!.name} to list only ${survivor.name}`,
      });
    }
    const answers: Answer[] = [];
    for (let i = 0; i < 50; i++) answers.push(await query('steady', i % 2));
    assertAllSucceeded(answers, 'requests after kas saw the kill');
    assert.deepEqual([...tally(answers)], [[survivor.name, 50]]);
  });

  test('requests waiting on a replica that dies before answering are retried on the other', async () => {
    const [victim, survivor] = busy as [AgentReplica, AgentReplica];
    const params = 'query=slow&ms=1500&case=in-flight';
    const isOurs = (r: { params: URLSearchParams }) => r.params.get('case') === 'in-flight';
    // Through kas-1 (the replicas are local there) and through kas-0 (forwarded to kas-1).
    const pending = Array.from({ length: 8 }, (_, i) => query('busy', i % 2, params));
    await waitFor(() => upstream.requests.filter(isOurs).length >= 8, { what: 'the upstream to hold all 8 requests' });
    await victim.proc.kill();
    const answers = await Promise.all(pending);
    assertAllSucceeded(answers, 'requests in flight when their replica died');
    assert.deepEqual([...tally(answers)], [[survivor.name, 8]]);
    // The victim's upstream requests were cut off with it: those are the ones kas sent again.
    const aborted = upstream.requests.filter((r) => isOurs(r) && r.outcome === 'aborted').length;
    assert.ok(aborted > 0, 'some requests were waiting on the killed replica');
    assert.equal(upstream.requests.filter(isOurs).length, 8 + aborted, 'each cut-off request was sent once more');
  });
});
