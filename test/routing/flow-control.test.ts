// A slow caller slows the agent's upstream read instead of filling kas's memory: kas holds at
// most a credit window per stream, whatever the response size, and other requests on the same
// agent connection keep flowing meanwhile.
import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { KasCluster } from '../support/kas.ts';
import type { Proc } from '../support/procs.ts';
import { openResponse } from '../support/rawHttp.ts';
import { startFakeUpstream, type FakeUpstream } from '../support/upstream.ts';

const MB = 1024 * 1024;
const BIG_BYTES = 100 * MB;
// The garbage collector's heap sizing alone moves RSS by 20-40 MB under this traffic; buffering
// the part of a 100 MB answer the reader has not taken would add far more than the rest.
const RSS_GROWTH_LIMIT = 64 * MB;

/** Samples the resident memory of processes until stopped, keeping each one's peak. */
function watchMemory(procs: Proc[]): { stop(): Map<Proc, { baseline: number; peak: number }> } {
  const seen = new Map(procs.map((p) => [p, { baseline: p.rss(), peak: p.rss() }]));
  const sample = () => {
    for (const [proc, mem] of seen) mem.peak = Math.max(mem.peak, proc.rss());
  };
  const timer = setInterval(sample, 50);
  let stopped = false;
  return {
    stop() {
      if (!stopped) sample();
      stopped = true;
      clearInterval(timer);
      return seen;
    },
  };
}

/** Reads a response at about `bytesPerTick` every `tickMs`, the way a slow client would. */
function readSlowly(res: IncomingMessage, bytesPerTick: number, tickMs: number): { received: () => number; stop: () => void } {
  let received = 0;
  let budget = bytesPerTick;
  res.on('data', (chunk: Buffer) => {
    received += chunk.byteLength;
    budget -= chunk.byteLength;
    if (budget <= 0) res.pause();
  });
  res.pause();
  const timer = setInterval(() => {
    budget = bytesPerTick;
    res.resume();
  }, tickMs);
  return {
    received: () => received,
    stop: () => clearInterval(timer),
  };
}

describe('flow control from agent to caller across two kas nodes', () => {
  let cluster: KasCluster;
  let upstream: FakeUpstream;
  let token: string;

  before(async () => {
    [cluster, upstream] = await Promise.all([KasCluster.start({ nodes: 2 }), startFakeUpstream()]);
    const agentToken = await cluster.registerAgent('prod');
    token = await cluster.issueToken({ agents: ['prod'] });
    // The caller talks to kas-0; the agent is on kas-1: the answer crosses both nodes.
    await cluster.startAgent({ id: 'prod', token: agentToken, node: 1, prometheusUrl: upstream.url });
    await cluster.waitForReplicas('prod', 1, token, 0);
  });
  after(async () => {
    await cluster?.stop();
    await upstream?.stop();
  });

  const bigUrl = (tag: string) =>
    `${cluster.nodes[0]!.apiUrl}/api/v1/agents/prod/prometheus/api/v1/query?query=big&bytes=${BIG_BYTES}&case=${tag}`;
  const auth = () => ({ authorization: `Bearer ${token}` });

  // Runs first: it warms every path (code compiled, heap spaces grown), so that the memory test
  // below measures what a slow reader costs, not the processes' first big answer.
  test('a 100 MB answer read at full speed arrives complete: as many bytes as its Content-Length', async (t) => {
    const started = performance.now();
    const { req, res } = await openResponse(bigUrl('fast'), { headers: auth() });
    assert.equal(res.statusCode, 200);
    assert.equal(res.headers['content-length'], String(BIG_BYTES), 'Content-Length passes through from the upstream');
    let received = 0;
    try {
      for await (const chunk of res) received += (chunk as Buffer).byteLength;
    } finally {
      req.destroy();
    }
    t.diagnostic(`100 MB in ${((performance.now() - started) / 1000).toFixed(1)} s`);
    assert.equal(received, BIG_BYTES);
    assert.ok(res.complete, 'the response ended normally, not cut short');
  });

  test('a slow reader of a 100 MB answer grows neither kas nor agentk memory, and a small query on the agent still answers', async (t) => {
    const procs = [cluster.nodes[0]!.proc, cluster.nodes[1]!.proc, cluster.agents[0]!.proc];
    const memory = watchMemory(procs);
    t.after(() => memory.stop());
    const { req, res } = await openResponse(bigUrl('slow'), { headers: auth() });
    assert.equal(res.statusCode, 200);
    const reader = readSlowly(res, 256 * 1024, 100);
    t.after(() => reader.stop());
    const record = await upstream.waitForRequest((r) => r.params.get('case') === 'slow');
    try {
      await sleep(2_000);
      // While the big answer is stuck behind its reader, the same agent connection serves others.
      for (let i = 0; i < 3; i++) {
        const started = performance.now();
        const small = await cluster.fetch(0, '/api/v1/agents/prod/prometheus/api/v1/query?query=up', {
          token,
          signal: AbortSignal.timeout(10_000),
        });
        assert.equal(small.status, 200);
        assert.equal(((await small.json()) as { status: string }).status, 'success');
        const ms = performance.now() - started;
        t.diagnostic(`small query during the slow read: ${ms.toFixed(0)} ms`);
        assert.ok(ms < 2_000, `a small query took ${ms.toFixed(0)} ms while a big answer was being read slowly`);
        await sleep(1_000);
      }
      await sleep(1_000);
    } finally {
      reader.stop();
      req.destroy();
    }
    const peaks = memory.stop();
    const received = reader.received();
    t.diagnostic(`slow reader got ${(received / MB).toFixed(1)} MB; upstream wrote ${(record.bytesWritten / MB).toFixed(1)} MB`);
    assert.ok(received > 5 * MB, `the slow reader kept reading (${received} bytes)`);
    for (const [proc, { baseline, peak }] of peaks) {
      const growth = peak - baseline;
      t.diagnostic(`${proc.name}: rss ${(baseline / MB).toFixed(0)} MB -> peak ${(peak / MB).toFixed(0)} MB`);
      assert.ok(growth < RSS_GROWTH_LIMIT, `${proc.name} grew by ${(growth / MB).toFixed(1)} MB during the slow read`);
    }
    // Without flow control the agent would read all 100 MB from the upstream at once; with it,
    // the upstream stays ahead of the reader only by what the sockets and windows between hold.
    assert.ok(
      record.bytesWritten - received < 48 * MB,
      `upstream wrote ${(record.bytesWritten / MB).toFixed(1)} MB while the caller read ${(received / MB).toFixed(1)} MB`,
    );
  });

});
