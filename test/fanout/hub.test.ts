// The fan-out hub with plain viewer objects: one upstream per key, many viewers, replay for late
// joiners within a per-node budget, and the slow-viewer policy. Capabilities plug their strategy
// on top (test/kubernetes/shared-watches.test.ts shows the Kubernetes one through real processes).
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { pino } from 'pino';
import {
  type EndReason,
  type FanOutEvent,
  FanOutHub,
  nodeBudget,
  type Upstream,
  VIEWER_MAX_UNSENT_BYTES,
  type Viewer,
} from '../../server/fanout/hub.ts';

/** A viewer that records what it gets; the test sets its backlog and makes it go away. */
class RecordingViewer implements Viewer<string, string> {
  head: string | undefined;
  events: string[] = [];
  ended: EndReason | undefined;
  failed: unknown;
  backlog = 0;
  #gone = false;
  #listeners = new Set<() => void>();

  get gone(): boolean {
    return this.#gone;
  }
  onGone(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }
  start(head: string): void {
    this.head = head;
  }
  send(event: FanOutEvent<string>): void {
    this.events.push(event.payload);
  }
  end(reason: EndReason): void {
    this.ended = reason;
  }
  fail(error: unknown): void {
    this.failed = error;
  }
  leave(): void {
    this.#gone = true;
    for (const listener of this.#listeners) listener();
  }
}

const log = pino({ level: 'silent' });
const ev = (n: number, payload = `e${n}`): FanOutEvent<string> => ({ payload, bytes: payload.length, position: String(n) });

/** A hub whose upstreams the test drives: `upstreams[i]` is the i-th one started. */
function harness(budget = nodeBudget()) {
  const hub = new FanOutHub<string, string>(log, budget);
  const upstreams: { up: Upstream<string, string>; finish: (error?: unknown) => void }[] = [];
  const serve = (viewer: RecordingViewer, from: string, key = 'k') =>
    hub.serve({
      key,
      viewer,
      startPosition: from,
      catchUp: (stream) => stream.eventsAfter(from),
      start: (up) =>
        new Promise<void>((resolve, reject) => upstreams.push({ up, finish: (error) => (error === undefined ? resolve() : reject(error)) })),
    });
  return { hub, upstreams, serve };
}
const tick = () => new Promise((r) => setImmediate(r));

describe('the fan-out hub', () => {
  test('viewers that join before the head get it when it comes; every event reaches every viewer', async () => {
    const { hub, upstreams, serve } = harness();
    const [a, b] = [new RecordingViewer(), new RecordingViewer()];
    assert.equal(serve(a, '0')?.joined, false);
    assert.equal(serve(b, '0')?.joined, true, 'the second viewer joins the first one’s stream');
    assert.equal(upstreams.length, 1, 'one upstream for both');
    const { up, finish } = upstreams[0]!;
    up.head('HEAD');
    up.publish(ev(1), true);
    up.publish(ev(2), true);
    assert.deepEqual([a.head, b.head], ['HEAD', 'HEAD']);
    assert.deepEqual(a.events, ['e1', 'e2']);
    assert.deepEqual(b.events, ['e1', 'e2']);
    finish();
    await tick();
    assert.deepEqual([a.ended, b.ended], ['ended', 'ended']);
    assert.deepEqual(hub.stats(), { upstreams: 0, viewers: 0, replayBytes: 0 });
  });

  test('a late viewer gets the events after its position, then the live ones; an unknown position starts its own upstream', async () => {
    const { upstreams, serve } = harness();
    serve(new RecordingViewer(), '0');
    const { up } = upstreams[0]!;
    up.head('H');
    for (let i = 1; i <= 5; i++) up.publish(ev(i), true);
    up.publish({ payload: 'keep-alive', bytes: 10 }, false);
    const late = new RecordingViewer();
    assert.equal(serve(late, '3')?.joined, true);
    assert.deepEqual(late.events, ['e4', 'e5'], 'what it missed, without what was not replayable');
    up.publish(ev(6), true);
    assert.deepEqual(late.events, ['e4', 'e5', 'e6']);
    const fromStart = new RecordingViewer();
    serve(fromStart, '0');
    assert.deepEqual(fromStart.events, ['e1', 'e2', 'e3', 'e4', 'e5', 'e6'], 'from where the upstream started: everything');
    const elsewhere = new RecordingViewer();
    assert.equal(serve(elsewhere, '99')?.joined, false);
    assert.equal(upstreams.length, 2);
  });

  test('a stream that stopped joining takes nobody new', () => {
    const { upstreams, serve } = harness();
    serve(new RecordingViewer(), '0');
    upstreams[0]!.up.head('H');
    upstreams[0]!.up.stopJoining();
    assert.equal(serve(new RecordingViewer(), '0')?.joined, false);
  });

  test('a viewer that falls behind is ended alone; the others keep getting every event', () => {
    const { upstreams, serve } = harness();
    const [slow, fast] = [new RecordingViewer(), new RecordingViewer()];
    serve(slow, '0');
    serve(fast, '0');
    const { up } = upstreams[0]!;
    up.head('H');
    up.publish(ev(1), true);
    slow.backlog = VIEWER_MAX_UNSENT_BYTES + 1;
    up.publish(ev(2), true);
    up.publish(ev(3), true);
    assert.equal(slow.ended, 'slow');
    assert.deepEqual(slow.events, ['e1']);
    assert.deepEqual(fast.events, ['e1', 'e2', 'e3']);
    assert.equal(fast.ended, undefined);
  });

  test('when the last viewer leaves, the upstream is told to stop and the stream is gone', async () => {
    const { hub, upstreams, serve } = harness();
    const [a, b] = [new RecordingViewer(), new RecordingViewer()];
    serve(a, '0');
    serve(b, '0');
    const { up } = upstreams[0]!;
    up.head('H');
    up.publish(ev(1), true);
    a.leave();
    assert.equal(up.signal.aborted, false);
    b.leave();
    assert.equal(up.signal.aborted, true);
    assert.deepEqual(hub.stats(), { upstreams: 0, viewers: 0, replayBytes: 0 });
  });

  test('an upstream that fails: viewers waiting for the head and viewers in the middle all hear of it', async () => {
    const { upstreams, serve } = harness();
    const waiting = new RecordingViewer();
    serve(waiting, '0');
    upstreams[0]!.finish(new Error('refused'));
    await tick();
    assert.match(String(waiting.failed), /refused/);
    assert.equal(waiting.head, undefined);
    const watching = new RecordingViewer();
    serve(watching, '0');
    upstreams[1]!.up.head('H');
    upstreams[1]!.finish(new Error('broke'));
    await tick();
    assert.equal(watching.head, 'H');
    assert.match(String(watching.failed), /broke/);
  });

  test('a viewer gone before it joins starts nothing', () => {
    const { hub, upstreams, serve } = harness();
    const gone = new RecordingViewer();
    gone.leave();
    assert.equal(serve(gone, '0'), undefined);
    assert.equal(upstreams.length, 0);
    assert.deepEqual(hub.stats(), { upstreams: 0, viewers: 0, replayBytes: 0 });
  });

  test('a viewer’s own deadline ends it alone', async () => {
    const { upstreams, serve } = harness();
    const [short, long] = [new RecordingViewer(), new RecordingViewer()];
    serve(long, '0');
    const { stream } = serve(short, '0')!;
    upstreams[0]!.up.head('H');
    stream.endViewerAfter(short, 20, 'timeout');
    await new Promise((r) => setTimeout(r, 40));
    assert.equal(short.ended, 'timeout');
    assert.equal(long.ended, undefined);
    upstreams[0]!.up.publish(ev(1), true);
    assert.deepEqual(short.events, []);
    assert.deepEqual(long.events, ['e1']);
  });

  test('all replay buffers of a node share one budget, across hubs; the one adding gives back its oldest', () => {
    const budget = nodeBudget(1_000);
    const one = harness(budget);
    const two = harness(budget);
    one.serve(new RecordingViewer(), '0');
    two.serve(new RecordingViewer(), '0');
    one.upstreams[0]!.up.head('H');
    two.upstreams[0]!.up.head('H');
    for (let i = 1; i <= 30; i++) {
      one.upstreams[0]!.up.publish(ev(i, 'x'.repeat(40)), true);
      two.upstreams[0]!.up.publish(ev(i, 'y'.repeat(40)), true);
    }
    assert.ok(budget.used <= 1_000, `${budget.used} bytes kept`);
    assert.ok(budget.used >= 900, `and the budget is used (${budget.used} bytes)`);
    // The start was dropped from the first hub's stream: a viewer from it cannot join.
    assert.equal(one.serve(new RecordingViewer(), '0')?.joined, false);
    // A recent position still can.
    const recent = new RecordingViewer();
    assert.equal(one.serve(recent, '29')?.joined, true);
    assert.equal(recent.events.length, 1);
  });
});
