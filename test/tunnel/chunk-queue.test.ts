// An answer's body as the reader sees it: a chunk counts as consumed only when the reader asks
// for the next one (that is when credit goes back to the agent), and every way a body can be
// over (ended, failed, cancelled, aborted) reaches both the reader and the producer once.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ChunkQueue } from '../../server/tunnel/chunkQueue.ts';

const b = (text: string) => Buffer.from(text);

test('a chunk is consumed when the next one is asked for, not when it is handed out', async () => {
  const consumed: number[] = [];
  const queue = new ChunkQueue({ onConsumed: (bytes) => consumed.push(bytes) });
  queue.push(b('aaa'));
  queue.push(b('bb'));
  assert.equal(queue.queuedBytes, 5);
  assert.equal(Buffer.from((await queue.next()).value!).toString(), 'aaa');
  assert.deepEqual(consumed, []);
  await queue.next();
  assert.deepEqual(consumed, [3]);
  const pending = queue.next();
  assert.deepEqual(consumed, [3, 2]);
  queue.push(b('c'));
  assert.equal(Buffer.from((await pending).value!).toString(), 'c', 'a waiting reader gets a chunk as it comes');
  queue.end();
  assert.equal((await queue.next()).done, true);
  assert.deepEqual(consumed, [3, 2], 'nothing more is owed once the producer is done');
});

test('a failure reaches the reader after what was queued before it; the observer hears of the end once', async () => {
  const over: string[] = [];
  const queue = new ChunkQueue();
  queue.observe({ onOver: (outcome) => over.push(outcome) });
  queue.push(b('kept'));
  queue.fail(new Error('broke'));
  assert.equal(Buffer.from((await queue.next()).value!).toString(), 'kept');
  await assert.rejects(queue.next(), /broke/);
  await assert.rejects(queue.next(), /broke/);
  assert.deepEqual(over, ['failed']);
});

test('a reader that stops tells the producer; one that is aborted gets the error and the producer stops', async () => {
  const cancelled: string[] = [];
  const stopped = new ChunkQueue({ onCancel: (reason) => cancelled.push(reason) });
  stopped.push(b('x'));
  for await (const chunk of stopped) {
    assert.equal(Buffer.from(chunk).toString(), 'x');
    break;
  }
  assert.deepEqual(cancelled, ['reader stopped']);
  stopped.push(b('late'));
  assert.equal((await stopped.next()).done, true, 'nothing comes after the reader stopped');

  const aborted = new ChunkQueue({ onCancel: (reason) => cancelled.push(reason) });
  aborted.push(b('dropped'));
  const over: string[] = [];
  aborted.observe({ onOver: (outcome, detail) => over.push(`${outcome}: ${String(detail)}`) });
  aborted.abort(new Error('too slow'), 'timed out');
  await assert.rejects(aborted.next(), /too slow/);
  assert.deepEqual(cancelled, ['reader stopped', 'timed out']);
  assert.deepEqual(over, ['failed: Error: too slow']);
});

test('cancelling a waiting reader ends its wait with the end', async () => {
  const queue = new ChunkQueue();
  const pending = queue.next();
  queue.cancel('kas node is shutting down');
  assert.equal((await pending).done, true);
});
