import assert from 'node:assert/strict';
import { createServer, get } from 'node:http';
import type { IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { createClient } from '@redis/client';
import { freePort } from './ports.ts';
import { Proc, dumpOnFailure, waitFor } from './procs.ts';
import { startPrometheus } from './prometheus.ts';
import { startRedis } from './redis.ts';
import { requireTool } from './tools.ts';
import { startFakeUpstream } from './upstream.ts';

describe('test support', { concurrency: true }, () => {
  test('requireTool finds installed binaries by absolute path', async () => {
    const path = await requireTool('redis-server');
    assert.match(path, /^\/.*redis-server$/);
  });

  test('freePort gives distinct usable ports', async () => {
    const ports = await Promise.all([freePort(), freePort(), freePort()]);
    for (const port of ports) assert.ok(port > 0 && port < 65536);
  });

  test('Proc captures output, waits for lines, reports rss and stops', async (t) => {
    const script = "console.log('ready'); process.on('SIGTERM', () => { console.log('bye'); process.exit(3); }); setInterval(() => {}, 1000);";
    const proc = Proc.start('echoer', process.execPath, ['-e', script]);
    dumpOnFailure(t, proc);
    assert.equal(await proc.waitForLine(/^ready$/, 5_000), 'ready');
    assert.ok(proc.rss() > 1024 * 1024, 'a node process uses more than 1 MiB');
    const status = await proc.stop();
    assert.deepEqual(status, { code: 3, signal: null });
    assert.match(proc.output(), /ready\nbye\n/);
    await assert.rejects(proc.waitForLine(/never/, 1_000), /exited with code 3 before printing/);
  });

  test('Proc.stop escalates to SIGKILL after the grace period', async () => {
    const proc = Proc.start('stubborn', process.execPath, ['-e', "process.on('SIGTERM', () => {}); console.log('up'); setInterval(() => {}, 1000);"]);
    await proc.waitForLine(/^up$/);
    assert.deepEqual(await proc.stop('SIGTERM', 200), { code: null, signal: 'SIGKILL' });
  });

  test('waitFor reports what it waited for and the last error', async () => {
    await assert.rejects(
      waitFor(() => { throw new Error('not yet'); }, { timeoutMs: 100, what: 'the impossible' }),
      /timed out after 100ms waiting for the impossible: not yet/,
    );
    let calls = 0;
    assert.equal(await waitFor(() => ++calls >= 3 && 'done', { intervalMs: 1 }), 'done');
  });

  test('startRedis runs a private redis that answers commands and stops', async (t) => {
    const redis = await startRedis();
    dumpOnFailure(t, redis.proc);
    assert.notEqual(redis.port, 6379);
    const client = createClient({ url: redis.url });
    await client.connect();
    await client.set('kas-test', 'ok');
    assert.equal(await client.get('kas-test'), 'ok');
    client.destroy();
    await redis.stop();
    assert.notEqual(redis.proc.exitStatus, undefined);
  });

  test('startPrometheus scrapes itself and the given targets', async (t) => {
    const target = createServer((_req, res) => res.end('kas_support_test_metric 42\n'));
    await new Promise<void>((resolve) => target.listen(0, '127.0.0.1', resolve));
    t.after(() => target.close());
    const { port: targetPort } = target.address() as AddressInfo;

    const prometheus = await startPrometheus({ scrapeTargets: [`127.0.0.1:${targetPort}`] });
    dumpOnFailure(t, prometheus.proc);
    t.after(() => prometheus.stop());
    const value = await waitFor(
      async () => {
        const res = await fetch(`${prometheus.url}/api/v1/query?query=kas_support_test_metric`);
        const body = (await res.json()) as { data: { result: Array<{ metric: Record<string, string>; value: [number, string] }> } };
        return body.data.result[0];
      },
      { timeoutMs: 15_000, what: 'the scrape target to be scraped' },
    );
    assert.equal(value.value[1], '42');
    assert.equal(value.metric['job'], 'targets');
    await prometheus.stop();
    assert.notEqual(prometheus.proc.exitStatus, undefined);
  });

  test('fake upstream honours backpressure and sees the client abort', async (t) => {
    const upstream = await startFakeUpstream();
    t.after(() => upstream.stop());
    const total = 64 * 1024 * 1024;

    const req = get(`${upstream.url}/api/v1/query?query=big&bytes=${total}`);
    const res = await new Promise<IncomingMessage>((resolve) => req.once('response', resolve));
    assert.equal(res.headers['content-type'], 'application/octet-stream');
    res.pause(); // a reader that never reads: the upstream must stall, not buffer 64 MiB
    const record = await upstream.waitForRequest();
    // The kernel's socket buffers grow for a while (TCP autotuning), so the writer advances in
    // steps; what matters is that it stops far short of the 64 MiB it was asked for.
    await sleep(1_500);
    assert.ok(record.bytesWritten < 16 * 1024 * 1024, `upstream wrote ${record.bytesWritten} bytes to a paused reader`);
    await sleep(500);
    assert.ok(record.bytesWritten < 16 * 1024 * 1024, `upstream kept writing to a paused reader: ${record.bytesWritten} bytes`);

    req.destroy();
    const aborted = await upstream.waitForAbort(5_000);
    assert.equal(aborted, record);
    assert.equal(await record.ended, 'aborted');
  });

  test('fake upstream answers vectors, statuses and slow queries, counting requests', async (t) => {
    const upstream = await startFakeUpstream();
    t.after(() => upstream.stop());

    const up = await fetch(`${upstream.url}/api/v1/query?query=up`);
    assert.equal(((await up.json()) as { data: { resultType: string } }).data.resultType, 'vector');

    const posted = await fetch(`${upstream.url}/api/v1/query`, { method: 'POST', body: new URLSearchParams({ query: 'status', code: '422' }) });
    assert.equal(posted.status, 422);
    assert.deepEqual(await posted.json(), { status: 'error', errorType: 'execution', error: 'fake upstream answered 422' });

    await assert.rejects(fetch(`${upstream.url}/api/v1/query?query=slow&ms=5000`, { signal: AbortSignal.timeout(200) }));
    const aborted = await upstream.waitForAbort(5_000);
    assert.equal(aborted.params.get('query'), 'slow');

    const full = await fetch(`${upstream.url}/api/v1/query?query=big&bytes=100000`);
    assert.equal((await full.arrayBuffer()).byteLength, 100_000);
    const big = upstream.requests.at(-1);
    assert.equal(await big?.ended, 'finished');

    assert.equal(upstream.count('/api/v1/query'), 4);
    assert.equal(upstream.count('/api/v1/query_range'), 0);
  });
});
