// agentk batches the messages it sends (a small answer's head, data and end leave as one
// WebSocket message; chunks of many answers share one binary attachment). Many answers at once,
// small and multi-chunk, must all arrive intact without a batch ever breaking socket.io's limits
// (it closes a connection on a packet with more than 10 binary attachments).
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { KasCluster } from '../support/kas.ts';
import { type FakeUpstream, startFakeUpstream } from '../support/upstream.ts';

let cluster: KasCluster;
let upstream: FakeUpstream;
let token: string;

before(async () => {
  upstream = await startFakeUpstream();
  cluster = await KasCluster.start({ nodes: 1 });
  const agentToken = await cluster.registerAgent('many');
  await cluster.startAgent({ id: 'many', token: agentToken, node: 0, prometheusUrl: upstream.url });
  token = await cluster.issueToken();
});

after(async () => {
  await cluster?.stop();
  await upstream?.stop();
});

test('120 concurrent answers, small and multi-chunk, all arrive intact over one agent connection', async () => {
  const big = 200_000; // 13 chunks of at most 16 KiB
  const base = '/api/v1/agents/many/prometheus/api/v1/query';
  const results = await Promise.all(
    Array.from({ length: 120 }, async (_, i) => {
      const path = i % 4 === 0 ? `${base}?query=big&bytes=${big}` : `${base}?query=up${i}`;
      const res = await cluster.fetch(0, path, { token, headers: { 'accept-encoding': 'identity' } });
      const body = Buffer.from(await res.arrayBuffer());
      return { i, status: res.status, body };
    }),
  );
  for (const { i, status, body } of results) {
    assert.equal(status, 200, `request ${i}: ${body.toString('utf8', 0, 300)}`);
    if (i % 4 === 0) assert.equal(body.byteLength, big, `request ${i} is complete`);
    else assert.equal((JSON.parse(body.toString()) as { status: string }).status, 'success');
  }
  const agentLog = cluster.agents[0]!.proc.output();
  assert.doesNotMatch(agentLog, /disconnected from kas/, 'the agent connection survived');
  assert.doesNotMatch(cluster.nodes[0]!.proc.output(), /refused|malformed|broke the tunnel/);
});
