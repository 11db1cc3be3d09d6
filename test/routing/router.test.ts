// The router's one handle, `open`, without the network: replicas are scripted connections whose
// "agent" the test plays, message by message, so that every path of waiting, retrying, timing out
// and draining can be stated exactly. The end-to-end tests show the same through real processes.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { metrics as otelMetrics } from '@opentelemetry/api';
import { pino } from 'pino';
import { createKasMetrics } from '../../otel/kasMetrics.ts';
import type { KasMessage } from '../../protocol/messages.ts';
import { NodeLifecycle } from '../../server/lifecycle.ts';
import { KasError } from '../../server/routing/errors.ts';
import { AgentRegistry, type ReplicaInfo } from '../../server/routing/registry.ts';
import type { AgentRequest } from '../../server/routing/request.ts';
import { AgentRouter } from '../../server/routing/router.ts';
import { type OutgoingRequest, type TunnelConnection, TunnelStream, TunnelStreamError } from '../../server/tunnel/agentConnection.ts';

/** One replica's connection, with the agent played by the test. */
class ScriptedReplica implements TunnelConnection {
  readonly info: ReplicaInfo;
  isOpen = true;
  draining = false;
  /** Everything kas sent to this replica. */
  readonly sent: KasMessage[] = [];
  readonly streams: TunnelStream[] = [];
  #waiters: ((stream: TunnelStream) => void)[] = [];
  #nextId = 1;

  constructor(agentId: string, name: string) {
    this.info = {
      agentId,
      key: `key-${name}`,
      replica: name,
      node: 'kas-0',
      nodeUrl: 'http://127.0.0.1:1',
      connectedAt: new Date().toISOString(),
      version: 'test',
      capabilities: ['prometheus'],
    };
  }

  get inFlight(): number {
    return this.streams.filter((s) => !s.done).length;
  }

  open(request: OutgoingRequest, readyAtHead: boolean): TunnelStream {
    const stream = new TunnelStream(
      { send: (message) => this.sent.push(message), forget: () => undefined },
      this.#nextId++,
      request.method,
      readyAtHead,
    );
    this.sent.push({ type: 'request', id: stream.id, credit: 1, ...request });
    this.streams.push(stream);
    for (const waiter of this.#waiters.splice(0)) waiter(stream);
    return stream;
  }

  /** The next request this replica receives. */
  nextRequest(): Promise<TunnelStream> {
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  /** The agent answers a whole small body. */
  answer(stream: TunnelStream, body: string, status = 200): void {
    for (const message of [
      { type: 'head', id: stream.id, status, headers: { 'content-type': 'text/plain', 'x-trace-id': 'the agents own' } },
      { type: 'data', id: stream.id, chunk: Buffer.from(body) },
      { type: 'end', id: stream.id },
    ] as const) {
      assert.equal(stream.receive(message), undefined, `${message.type} is no protocol violation`);
    }
  }

  /** The replica's connection drops: its streams fail, and it is gone. */
  disconnectNow(): void {
    this.isOpen = false;
    for (const stream of this.streams) stream.fail(new TunnelStreamError('replica_gone', 'the agent replica disconnected (test)'));
  }

  drain(): void {}
  disconnect(): void {
    this.disconnectNow();
  }
}

function setup(options: { routingTimeoutMs?: number } = {}) {
  const registry = new AgentRegistry('kas-0');
  const lifecycle = new NodeLifecycle();
  const router = new AgentRouter({
    registry,
    tokens: { isRegistered: (id: string) => id !== 'unknown' },
    privateSecret: new Uint8Array(32),
    routingTimeoutMs: options.routingTimeoutMs ?? 5_000,
    log: pino({ level: 'silent' }),
    metrics: createKasMetrics(otelMetrics.getMeter('test'), () => true),
    lifecycle,
  });
  const replicaOf = (name: string) => {
    const replica = new ScriptedReplica('a', name);
    registry.addLocal(replica);
    return replica;
  };
  return { registry, lifecycle, router, replicaOf };
}

const request = (overrides: Partial<AgentRequest> = {}): AgentRequest => ({
  agentId: 'a',
  upstream: 'prometheus',
  method: 'GET',
  path: '/api/v1/query',
  query: 'query=up',
  headers: {},
  body: undefined,
  streaming: false,
  timeoutMs: 0,
  ...overrides,
});

async function text(body: AsyncIterable<Uint8Array>): Promise<string> {
  let out = '';
  for await (const chunk of body) out += Buffer.from(chunk).toString();
  return out;
}

describe('the router’s handle', () => {
  test('an answer comes with its head, who answered, and its body; kas’s own headers are not passed on', async () => {
    const { router, replicaOf } = setup();
    const r0 = replicaOf('r0');
    const opened = router.open(request(), { sub: 'test' });
    r0.answer(await r0.nextRequest(), 'hello');
    const stream = await opened;
    assert.equal(stream.status, 200);
    assert.equal(stream.replica, 'r0');
    assert.equal(stream.node, 'kas-0');
    assert.equal(stream.forwarded, false);
    assert.deepEqual(stream.headers, { 'content-type': 'text/plain' });
    assert.equal(await text(stream.body), 'hello');
  });

  test('an unregistered agent is 404 at once', async () => {
    const { router } = setup();
    await assert.rejects(router.open(request({ agentId: 'unknown' }), { sub: 'test' }), (e: unknown) => e instanceof KasError && e.status === 404);
  });

  test('a request waits for a replica to connect, and is served by it once it does', async () => {
    const { router, replicaOf } = setup();
    const opened = router.open(request(), { sub: 'test' });
    await new Promise((r) => setTimeout(r, 50));
    const late = replicaOf('late');
    late.answer(await late.nextRequest(), 'worth the wait');
    assert.equal(await text((await opened).body), 'worth the wait');
  });

  test('no replica within the routing timeout is 503 with Retry-After, saying what to check', async () => {
    const { router } = setup({ routingTimeoutMs: 100 });
    const started = performance.now();
    await assert.rejects(router.open(request(), { sub: 'test' }), (e: unknown) => {
      assert.ok(e instanceof KasError);
      assert.equal(e.status, 503);
      assert.equal(e.retryAfterSeconds, 5);
      assert.match(e.message, /no replica has connected in 100ms; is agentk running/);
      return true;
    });
    assert.ok(performance.now() - started >= 95);
  });

  test('a replica that goes away before answering: the request is retried on another one', async () => {
    const { router, replicaOf } = setup();
    const [r0, r1] = [replicaOf('r0'), replicaOf('r1')];
    const opened = router.open(request(), { sub: 'test' });
    const first = await Promise.race([r0.nextRequest().then((s) => ({ s, r: r0, other: r1 })), r1.nextRequest().then((s) => ({ s, r: r1, other: r0 }))]);
    const second = first.other.nextRequest();
    first.r.disconnectNow();
    first.other.answer(await second, 'from the other');
    const stream = await opened;
    assert.equal(stream.replica, first.other.info.replica);
    assert.equal(await text(stream.body), 'from the other');
  });

  test('a replica that goes away after its head but before its body is retried too: nothing had reached the caller', async () => {
    const { router, replicaOf } = setup();
    const r0 = replicaOf('r0');
    const opened = router.open(request(), { sub: 'test' });
    const stream0 = await r0.nextRequest();
    stream0.receive({ type: 'head', id: stream0.id, status: 200, headers: {} });
    const r1 = replicaOf('r1');
    const retried = r1.nextRequest();
    r0.disconnectNow();
    r1.answer(await retried, 'complete');
    assert.equal(await text((await opened).body), 'complete');
  });

  test('when every replica went away during the request, it waits a moment for one to reconnect, then fails with 502', async () => {
    const { router, replicaOf } = setup({ routingTimeoutMs: 20_000 });
    const r0 = replicaOf('r0');
    const started = performance.now();
    const opened = router.open(request(), { sub: 'test' });
    await r0.nextRequest();
    r0.disconnectNow();
    await assert.rejects(opened, (e: unknown) => e instanceof KasError && e.status === 502 && /went away/.test(e.message));
    const waited = performance.now() - started;
    assert.ok(waited >= 1_900 && waited < 5_000, `waited ${waited} ms: about the grace, not the routing timeout`);
  });

  test('a request whose replica moved (its node drains) is served by the replacement that connects a moment later', async () => {
    const { router, replicaOf } = setup({ routingTimeoutMs: 20_000 });
    const old = replicaOf('r0');
    const opened = router.open(request(), { sub: 'test' });
    await old.nextRequest();
    old.disconnectNow();
    await new Promise((r) => setTimeout(r, 300));
    const moved = replicaOf('r0-elsewhere');
    moved.answer(await moved.nextRequest(), 'from the replacement');
    assert.equal(await text((await opened).body), 'from the replacement');
  });

  test("the agent's refusal is final: 403, no other replica is asked", async () => {
    const { router, replicaOf } = setup();
    const [r0, r1] = [replicaOf('r0'), replicaOf('r1')];
    const opened = router.open(request(), { sub: 'test' });
    const stream = await Promise.race([r0.nextRequest(), r1.nextRequest()]);
    stream.receive({ type: 'error', id: stream.id, code: 'policy_denied', message: 'policy says no' });
    await assert.rejects(opened, (e: unknown) => e instanceof KasError && e.status === 403 && /policy says no/.test(e.message));
    assert.equal(r0.streams.length + r1.streams.length, 1);
  });

  test('a caller that leaves while waiting for a replica: open rejects with its reason, and nothing is sent', async () => {
    const { router, replicaOf } = setup();
    const controller = new AbortController();
    const opened = router.open(request(), { sub: 'test', signal: controller.signal });
    setTimeout(() => controller.abort(new Error('caller went away')), 30);
    await assert.rejects(opened, /caller went away/);
    const r0 = replicaOf('r0');
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(r0.sent.length, 0);
  });

  test('a caller that leaves while the agent works: the agent is told to cancel', async () => {
    const { router, replicaOf } = setup();
    const r0 = replicaOf('r0');
    const controller = new AbortController();
    const opened = router.open(request(), { sub: 'test', signal: controller.signal });
    await r0.nextRequest();
    controller.abort(new Error('caller went away'));
    await assert.rejects(opened, /caller went away/);
    assert.equal(r0.sent.at(-1)?.type, 'cancel');
  });

  test('the request deadline: 504 before the answer, cancelling the agent; a body cut mid-way after it', async () => {
    const { router, replicaOf } = setup();
    const r0 = replicaOf('r0');
    const slow = router.open(request({ timeoutMs: 80 }), { sub: 'test' });
    await r0.nextRequest();
    await assert.rejects(slow, (e: unknown) => e instanceof KasError && e.status === 504 && /KAS_REQUEST_TIMEOUT/.test(e.message));
    assert.equal(r0.sent.at(-1)?.type, 'cancel');

    const trickle = router.open(request({ timeoutMs: 80 }), { sub: 'test' });
    const stream = await r0.nextRequest();
    stream.receive({ type: 'head', id: stream.id, status: 200, headers: {} });
    stream.receive({ type: 'data', id: stream.id, chunk: Buffer.from('part') });
    const answer = await trickle;
    await assert.rejects(text(answer.body), (e: unknown) => e instanceof KasError && e.status === 504);
    assert.equal(r0.sent.at(-1)?.type, 'cancel');
  });

  test('a stream is ready at its head, is not bound by the deadline, and ends cleanly when the node drains', async () => {
    const { router, replicaOf, lifecycle } = setup();
    const r0 = replicaOf('r0');
    const opened = router.open(request({ streaming: true }), { sub: 'test' });
    const stream = await r0.nextRequest();
    stream.receive({ type: 'head', id: stream.id, status: 200, headers: {} });
    const watch = await opened;
    stream.receive({ type: 'data', id: stream.id, chunk: Buffer.from('event 1\n') });
    const read = text(watch.body);
    await new Promise((r) => setTimeout(r, 20));
    lifecycle.startDraining();
    assert.equal(await read, 'event 1\n', 'the body ended cleanly, not with an error');
    assert.equal(r0.sent.at(-1)?.type, 'cancel', 'and the agent stopped its upstream watch');
  });

  test('credit goes back to the agent as the body is read, in batches', async () => {
    const { router, replicaOf } = setup();
    const r0 = replicaOf('r0');
    const opened = router.open(request(), { sub: 'test' });
    const stream = await r0.nextRequest();
    stream.receive({ type: 'head', id: stream.id, status: 200, headers: {} });
    const chunk = Buffer.alloc(16 * 1024, 1);
    for (let i = 0; i < 8; i++) stream.receive({ type: 'data', id: stream.id, chunk });
    const answer = await opened;
    const credits = () => r0.sent.filter((m) => m.type === 'credit');
    assert.equal(credits().length, 0, 'nothing read, nothing given back');
    const iterator = answer.body[Symbol.asyncIterator]();
    for (let i = 0; i < 5; i++) await iterator.next();
    assert.deepEqual(credits().map((m) => m.type === 'credit' && m.bytes), [64 * 1024], 'four chunks consumed: one batch back');
    stream.receive({ type: 'end', id: stream.id });
    answer.body.cancel();
  });
});
