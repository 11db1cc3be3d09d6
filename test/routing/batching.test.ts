// agentk batches the messages it sends (a small answer's head, data and end leave as one
// WebSocket message; chunks of many answers share one binary attachment). Many answers at once,
// small and multi-chunk, must all arrive intact without a batch ever breaking socket.io's limits
// (it closes a connection on a packet with more than 10 binary attachments). The other way, kas
// sends the requests of one event-loop turn as one event to an agent whose handshake says it
// takes batches, and one per event to an agent that does not.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { io } from 'socket.io-client';
import { BATCH_MAX_MESSAGES, type KasMessage, PROTOCOL_VERSION, TUNNEL_EVENT } from '../../protocol/messages.ts';
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

/** A hand-made agent replica that answers every request with a small 200 and records how kas's events came. */
async function recordingAgent(batches: boolean): Promise<{ events: unknown[]; close(): void }> {
  const agentToken = await cluster.registerAgent(batches ? 'batches' : 'singles');
  // A node takes a newly registered token once it has re-read its token store: retried until then.
  const socket = io(cluster.nodes[0]!.agentUrl, {
    transports: ['websocket'],
    reconnection: false,
    forceNew: true,
    auth: { token: agentToken, replica: 'r1', version: 'test', capabilities: ['prometheus'], protocol: PROTOCOL_VERSION, ...(batches ? { batches: true } : {}) },
  });
  const events: unknown[] = [];
  socket.on(TUNNEL_EVENT, (raw: unknown) => {
    events.push(raw);
    for (const m of Array.isArray(raw) ? raw : [raw]) {
      const message = m as KasMessage;
      if (message.type !== 'request') continue;
      const body = Buffer.from(JSON.stringify({ status: 'success', data: { id: message.id } }));
      socket.emit(TUNNEL_EVENT, [
        { type: 'head', id: message.id, status: 200, headers: { 'content-type': 'application/json', 'content-length': String(body.byteLength) } },
        { type: 'data', id: message.id, chunk: body },
        { type: 'end', id: message.id },
      ]);
    }
  });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the hand-made agent could not connect within 10 s')), 10_000);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.off('connect_error', retry);
      resolve();
    });
    // A refused handshake is not retried by socket.io itself.
    const retry = () => setTimeout(() => socket.connect(), 200);
    socket.on('connect_error', retry);
  });
  return { events, close: () => socket.close() };
}

for (const batches of [true, false]) {
  test(`kas sends the requests of one turn ${batches ? 'as one event to an agent that takes batches' : 'one per event to an agent that did not say it takes batches'}`, async () => {
    const agent = await recordingAgent(batches);
    const id = batches ? 'batches' : 'singles';
    const apiToken = await cluster.issueToken({ agents: [id] });
    try {
      await cluster.waitForReplicas(id, 1, apiToken);
      const statuses = await Promise.all(
        Array.from({ length: 40 }, async (_, i) => {
          const res = await cluster.fetch(0, `/api/v1/agents/${id}/prometheus/api/v1/query?query=up${i}`, { token: apiToken });
          await res.arrayBuffer();
          return res.status;
        }),
      );
      assert.deepEqual(new Set(statuses), new Set([200]), 'every request answered');
      const arrays = agent.events.filter((e) => Array.isArray(e)) as unknown[][];
      const requests = agent.events.flatMap((e) => (Array.isArray(e) ? e : [e])).filter((m) => (m as KasMessage).type === 'request');
      assert.equal(requests.length, 40);
      if (batches) {
        assert.ok(arrays.length > 0 && arrays.some((a) => a.length > 1), `some requests shared an event (${agent.events.length} events for 40 requests)`);
        assert.ok(arrays.every((a) => a.length <= BATCH_MAX_MESSAGES));
      } else {
        assert.equal(arrays.length, 0, 'no arrays to an agent that did not ask for them');
      }
    } finally {
      agent.close();
    }
  });
}
