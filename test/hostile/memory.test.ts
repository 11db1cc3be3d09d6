// Memory after a storm of hostile agent traffic returns near its baseline. The node holding a
// misbehaving agent is measured (RSS, and the V8 heap from /metrics) before, during and after
// rounds of: tens of thousands of unsolicited and malformed messages, requests the agent answers
// with protocol violations before and after their first bytes, answers it leaves to time out,
// and oversized frames that make kas close its connection. Nothing of it may stay behind.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { KasCluster } from '../support/kas.ts';
import { metricSum } from '../support/metrics.ts';
import { exchange } from './wire.ts';
import { RogueAgent } from './rogue.ts';
import type { RogueStep } from './corpus/case.ts';

const MiB = 1024 * 1024;
const ROUNDS = 6;
/**
 * What the allocators alone keep of such traffic after it: V8 keeps the heap it grew to until a
 * collection it has no reason to run while idle, and glibc keeps freed Buffer memory in its arena
 * (both level off; the live heap itself returns to its size). Before kas stopped making a schema
 * error for every refused message, six rounds left some 120 MiB behind.
 */
const SETTLED_GROWTH_LIMIT = 64 * MiB;

let cluster: KasCluster;
let rogueToken: string;
let token: string;
let rogue: RogueAgent;
let apiPort: number;

before(async () => {
  cluster = await KasCluster.start({ env: { KAS_REQUEST_TIMEOUT: '1s', LOG_LEVEL: 'info' } });
  rogueToken = await cluster.registerAgent('rogue');
  token = await cluster.issueToken({ agents: ['rogue'] });
  rogue = await RogueAgent.connect(cluster.nodes[0]!.agentUrl, rogueToken, 'rogue-0');
  await cluster.waitForReplicas('rogue', 1, token);
  apiPort = Number(new URL(cluster.nodes[0]!.apiUrl).port);
});
after(async () => {
  rogue?.close();
  await cluster?.stop();
});

let tags = 0;
/** One request to the rogue, answered with `script`; resolves when the caller's answer is over. */
async function ask(script: readonly RogueStep[]): Promise<void> {
  const tag = `m${tags++}`;
  rogue.scripts.set(tag, script);
  await exchange(apiPort, [`GET /api/v1/agents/rogue/prometheus/api/v1/query?query=up&case=${tag} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token}\r\nConnection: close\r\n\r\n`], { timeoutMs: 5_000, idleMs: 5_000 });
  rogue.scripts.delete(tag);
}

const MISBEHAVIOURS: readonly (readonly RogueStep[])[] = [
  [{ head: 200 }, { head: 500 }],
  [{ head: 200 }, { dataBytes: 16 * 1024 + 1 }],
  [{ head: 200, headers: { 'content-length': '100' } }, 'end'],
  [{ head: 200 }, { dataBytes: 8 * 1024 }, { head: 500 }],
  [{ head: 200 }, { dataBytes: 8 * 1024 }, { dataBytes: 16 * 1024 + 1 }],
  [{ head: 200 }, { dataBytes: 16 * 1024 }],
  [{ head: 200 }],
  [{ data: 'early' }],
  [{ head: 200, headers: { 'x-big': 'h'.repeat(16 * 1024) } }, { dataBytes: 16 * 1024 }, 'end'],
];

async function storm(): Promise<void> {
  // Unsolicited and malformed messages, 64 to an event as agentk batches them.
  for (let i = 0; i < 40_000; i += 64) {
    rogue.send(Array.from({ length: 64 }, (_, j) => (j % 4 === 0 ? { type: 'head', id: 'x', status: 'nope' } : { type: 'end', id: 50_000_000 + i + j })));
    if (i % 4096 === 0) await sleep(0);
  }
  // Packed batches of unsolicited data, their chunks slices of one buffer; and as base64 text,
  // twice what agentk puts in a text batch.
  const text = Buffer.alloc(16 * 1024, 1).toString('base64');
  for (let i = 0; i < 200; i++) {
    rogue.send({ type: 'batch', bytes: Buffer.alloc(64 * 1024), messages: Array.from({ length: 16 }, (_, j) => ({ type: 'data', id: 60_000_000 + j, offset: j * 4096, length: 4096 })) });
    rogue.send({ type: 'batch', bytes: text, messages: Array.from({ length: 4 }, (_, j) => ({ type: 'data', id: 61_000_000 + j, offset: j * 4096, length: 4096 })) });
  }
  // Requests answered with violations before and after their first bytes, and left to time out.
  for (let batch = 0; batch < 4; batch++) {
    await Promise.all(Array.from({ length: 60 }, (_, i) => ask(MISBEHAVIOURS[i % MISBEHAVIOURS.length]!)));
  }
  // An oversized frame: kas closes the connection; the rogue comes back as a new replica.
  const gone = new Promise((resolve) => rogue.socket.once('disconnect', resolve));
  rogue.send({ type: 'data', id: 1, chunk: Buffer.alloc(1024 * 1024 + 1024) });
  await gone;
  rogue = await RogueAgent.connect(cluster.nodes[0]!.agentUrl, rogueToken, `rogue-${tags}`);
  await cluster.waitForReplicas('rogue', 1, token);
}

async function heapUsed(): Promise<number> {
  return metricSum(cluster.nodes[0]!.observabilityUrl, 'nodejs_heap_used_bytes');
}

/**
 * The least heap in use over `ms`: the live heap plus the least garbage seen. One reading can
 * catch the heap just before a collection (on a busy machine, 20 MiB of garbage either way); what
 * stays behind stays in every reading.
 */
async function leastHeapUsed(ms: number): Promise<number> {
  let least = await heapUsed();
  for (const end = performance.now() + ms; performance.now() < end; ) {
    await sleep(250);
    least = Math.min(least, await heapUsed());
  }
  return least;
}

test('the node holding a misbehaving agent returns near its memory baseline after the storm', async (t) => {
  const proc = cluster.nodes[0]!.proc;
  // Warm up: the code paths of the storm are compiled and the heap has its working size.
  await storm();
  await storm();
  const baseline = { heap: await leastHeapUsed(3_000), rss: proc.rss() };
  let peak = baseline.rss;
  const sampler = setInterval(() => (peak = Math.max(peak, proc.rss())), 100);
  try {
    for (let round = 0; round < ROUNDS; round++) {
      const started = performance.now();
      await storm();
      t.diagnostic(`round ${round}: ${Math.round(performance.now() - started)} ms, RSS ${(proc.rss() / MiB).toFixed(0)} MiB`);
    }
  } finally {
    clearInterval(sampler);
  }
  const during = peak;
  // Answers left to time out are over within KAS_REQUEST_TIMEOUT.
  // V8's memory reducer collects a heap that went idle after work within about ten seconds.
  await sleep(3_000);
  const settled = { heap: await leastHeapUsed(12_000), rss: proc.rss() };
  const figures = `RSS baseline ${(baseline.rss / MiB).toFixed(0)} MiB, peak during ${(during / MiB).toFixed(0)} MiB, after ${(settled.rss / MiB).toFixed(0)} MiB; heap used ${(baseline.heap / MiB).toFixed(0)} → ${(settled.heap / MiB).toFixed(0)} MiB`;
  t.diagnostic(figures);
  assert.equal(proc.exitStatus, undefined, 'kas is still running');
  assert.ok(settled.rss - baseline.rss < SETTLED_GROWTH_LIMIT, figures);
  assert.ok(settled.heap - baseline.heap < 24 * MiB, figures);
  // And it still serves the agent when it answers properly.
  const tag = 'after';
  rogue.scripts.set(tag, [{ head: 200 }, { data: 'ok' }, 'end']);
  const res = await fetch(`${cluster.nodes[0]!.apiUrl}/api/v1/agents/rogue/prometheus/api/v1/query?query=up&case=${tag}`, { headers: { authorization: `Bearer ${token}` } });
  assert.equal(await res.text(), 'ok');
});
