// A rogue agent: a replica with a valid, registered token that speaks the tunnel protocol
// badly on purpose. kas validates everything an agent says: whatever the rogue sends is refused
// and logged, only the request it corrupts fails (502 before its head, cut short after), other
// agents' requests on the same node are not disturbed, and the node stays up.
import assert from 'node:assert/strict';
import http, { type IncomingMessage } from 'node:http';
import { after, before, beforeEach, describe, test } from 'node:test';
import { setTimeout as sleep, setImmediate as yieldToIo } from 'node:timers/promises';
import { io, type Socket } from 'socket.io-client';
import {
  CHUNK_MAX_BYTES,
  FRAME_MAX_BYTES,
  INITIAL_CREDIT_BYTES,
  type KasMessage,
  PROTOCOL_VERSION,
  TUNNEL_EVENT,
  type TunnelRequest,
} from '../../protocol/messages.ts';
import { FULL_LINES_PER_KIND } from '../../server/tunnel/logThrottle.ts';
import { type AgentReplica, KasCluster } from '../support/kas.ts';
import { metricSum } from '../support/metrics.ts';
import { waitFor } from '../support/procs.ts';
import { openResponse } from '../support/rawHttp.ts';
import { startFakeUpstream, type FakeUpstream } from '../support/upstream.ts';

type Sent = Extract<KasMessage, { type: 'credit' | 'cancel' }>;
type Cancel = Extract<KasMessage, { type: 'cancel' }>;

/** The rogue: answers whatever it is told to, with a registered agent's valid token. */
class Rogue {
  readonly socket: Socket;
  readonly received: TunnelRequest[] = [];
  readonly control: Sent[] = [];
  #waiters = new Set<() => void>();

  private constructor(socket: Socket) {
    this.socket = socket;
    socket.on(TUNNEL_EVENT, (message: KasMessage) => {
      if (message.type === 'request') this.received.push(message);
      else if (message.type === 'credit' || message.type === 'cancel') this.control.push(message);
      for (const wake of this.#waiters) wake();
    });
  }

  static connect(url: string, token: string, replica: string): Promise<Rogue> {
    const socket = io(url, {
      transports: ['websocket'],
      reconnection: false,
      forceNew: true,
      auth: { token, replica, version: 'rogue', capabilities: ['prometheus'], protocol: PROTOCOL_VERSION },
    });
    return new Promise((resolve, reject) => {
      socket.once('connect', () => resolve(new Rogue(socket)));
      socket.once('connect_error', reject);
    });
  }

  send(message: unknown): void {
    this.socket.emit(TUNNEL_EVENT, message);
  }

  async #until<T>(find: () => T | undefined, what: string, timeoutMs = 5_000): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = find();
      if (found !== undefined) return found;
      if (Date.now() > deadline) throw new Error(`rogue: timed out waiting for ${what}`);
      await new Promise<void>((resolve) => {
        const wake = () => {
          this.#waiters.delete(wake);
          clearTimeout(timer);
          resolve();
        };
        const timer = setTimeout(wake, 100);
        this.#waiters.add(wake);
      });
    }
  }

  /** The request kas sent for the API call tagged `case=<tag>`. */
  request(tag: string): Promise<TunnelRequest> {
    return this.#until(() => this.received.find((r) => new URLSearchParams(r.query).get('case') === tag), `request ${tag}`);
  }

  cancelled(id: number, timeoutMs?: number): Promise<Cancel> {
    return this.#until(() => this.control.find((m): m is Cancel => m.type === 'cancel' && m.id === id), `cancel of ${id}`, timeoutMs);
  }

  creditFor(id: number): number {
    return this.control.reduce((sum, m) => sum + (m.type === 'credit' && m.id === id ? m.bytes : 0), 0);
  }

  close(): void {
    this.socket.close();
  }
}

interface LogEntry {
  time: string;
  level: string;
  msg: string;
  agent_id?: string;
  [key: string]: unknown;
}

describe('a rogue agent with a valid token', () => {
  let cluster: KasCluster;
  let upstream: FakeUpstream;
  let token: string;
  let rogueToken: string;
  let good: AgentReplica;
  let rogue: Rogue;
  let rogues = 0;

  before(async () => {
    [cluster, upstream] = await Promise.all([KasCluster.start({ env: { KAS_REQUEST_TIMEOUT: '5s' } }), startFakeUpstream()]);
    const goodToken = await cluster.registerAgent('good');
    rogueToken = await cluster.registerAgent('rogue');
    token = await cluster.issueToken({ agents: ['good', 'rogue'] });
    good = await cluster.startAgent({ id: 'good', token: goodToken, prometheusUrl: upstream.url });
  });
  beforeEach(async () => {
    if (rogue?.socket.connected) return;
    rogue = await Rogue.connect(cluster.nodes[0]!.agentUrl, rogueToken, `rogue-${++rogues}`);
    await cluster.waitForReplicas('rogue', 1, token);
  });
  after(async () => {
    rogue?.close();
    await cluster?.stop();
    await upstream?.stop();
  });

  const kas = () => cluster.nodes[0]!;
  const url = (agentId: string, params: string) => `${kas().apiUrl}/api/v1/agents/${agentId}/prometheus/api/v1/query?${params}`;
  const ask = (agentId: string, params: string) => fetch(url(agentId, params), { headers: { authorization: `Bearer ${token}` } });

  /**
   * Requests to the well-behaved agent that are in flight while the rogue misbehaves (the slow
   * one spans it); resolves once all were answered correctly by that agent.
   */
  function goodTraffic(spanMs = 600): Promise<void> {
    const one = async (params: string) => {
      const res = await ask('good', params);
      const text = await res.text();
      assert.equal(res.status, 200, `good agent: ${text}`);
      assert.equal(res.headers.get('x-kas-agent-replica'), good.name);
      assert.equal((JSON.parse(text) as { status: string }).status, 'success', text);
    };
    return Promise.all([one(`query=slow&ms=${spanMs}`), one('query=up'), one('query=up')]).then(() => undefined);
  }

  /** Resolves once kas has logged `count` lines since `since` that match. */
  function logged(since: string, match: (e: LogEntry) => boolean, count = 1, timeoutMs = 5_000): Promise<string> {
    let seen = 0;
    return kas().proc.waitForLine((line) => {
      let entry: LogEntry;
      try {
        entry = JSON.parse(line) as LogEntry;
      } catch {
        return false;
      }
      if (entry.time < since || entry.agent_id !== 'rogue' || !match(entry)) return false;
      return ++seen >= count;
    }, timeoutMs);
  }

  /** Lines kas has logged since `since` that match (the output kept of it). */
  function linesSince(since: string, match: (e: LogEntry) => boolean): LogEntry[] {
    return kas()
      .proc.output()
      .split('\n')
      .flatMap((line) => {
        try {
          const entry = JSON.parse(line) as LogEntry;
          return entry.time >= since && entry.agent_id === 'rogue' && match(entry) ? [entry] : [];
        } catch {
          return [];
        }
      });
  }

  /** kas_agent_messages_dropped_total of these kinds, summed. */
  async function dropped(...kinds: string[]): Promise<number> {
    const counts = await Promise.all(kinds.map((kind) => metricSum(kas().observabilityUrl, 'kas_agent_messages_dropped_total', { kind })));
    return counts.reduce((a, b) => a + b, 0);
  }

  /** Waits until the dropped count of these kinds has risen from `from` by exactly `by`. */
  async function droppedRise(from: number, by: number, ...kinds: string[]): Promise<void> {
    let now = from;
    await waitFor(async () => (now = await dropped(...kinds)) >= from + by, { timeoutMs: 5_000, what: `${by} more dropped ${kinds.join('/')} messages` }).catch(
      (error: Error) => assert.fail(`${error.message}: ${now - from} counted`),
    );
    assert.equal(now - from, by, `dropped ${kinds.join('/')} messages counted`);
  }

  /** Reads a response to its end; tells a clean end from a response cut short. */
  function readToEnd(res: IncomingMessage): Promise<{ outcome: 'end' | 'cut'; body: Buffer }> {
    const chunks: Buffer[] = [];
    return new Promise((resolve) => {
      res.on('data', (c: Buffer) => chunks.push(c));
      res.once('end', () => resolve({ outcome: 'end', body: Buffer.concat(chunks) }));
      res.once('error', () => resolve({ outcome: 'cut', body: Buffer.concat(chunks) }));
      res.once('aborted', () => resolve({ outcome: 'cut', body: Buffer.concat(chunks) }));
    });
  }

  async function assertStillServing(): Promise<void> {
    assert.equal(kas().proc.exitStatus, undefined, `kas died\n${kas().proc.describe()}`);
    await goodTraffic(0);
  }

  test('a request to the rogue that it answers properly works (the control)', async () => {
    const pending = ask('rogue', 'query=up&case=control');
    const request = await rogue.request('control');
    assert.equal(request.credit, INITIAL_CREDIT_BYTES);
    rogue.send({ type: 'head', id: request.id, status: 200, headers: { 'content-type': 'text/plain' } });
    rogue.send({ type: 'data', id: request.id, chunk: Buffer.from('rogue says hi') });
    rogue.send({ type: 'end', id: request.id });
    const res = await pending;
    assert.equal(res.status, 200);
    assert.equal(await res.text(), 'rogue says hi');
  });

  test('answers to request ids it was never sent are refused, counted and logged within a budget; other agents\' requests are untouched', async () => {
    const since = new Date().toISOString();
    const before = await dropped('unknown_request', 'late');
    const traffic = goodTraffic();
    await upstream.waitForRequest((r) => r.params.get('query') === 'slow' && r.outcome === 'pending');
    // Ids of requests in flight on the good agent's connection overlap these; and made-up ones.
    const ids = [...Array.from({ length: 40 }, (_, i) => i), 123_456_789, Number.MAX_SAFE_INTEGER];
    for (const id of ids) {
      rogue.send({ type: 'head', id, status: 200, headers: { 'content-type': 'application/json' } });
      rogue.send({ type: 'data', id, chunk: Buffer.from('{"status":"success","data":"POISON"}') });
      rogue.send({ type: 'end', id });
    }
    await traffic;
    // Every one is counted; the first few are logged in full, the rest only in the interval's summary.
    await droppedRise(before, ids.length * 3, 'unknown_request', 'late');
    await logged(since, (e) => e.msg === 'agent answered a request it was not sent' && e.kind === 'unknown_request' && typeof e.requestId === 'number');
    const lines = linesSince(since, (e) => e.msg === 'agent answered a request it was not sent');
    assert.ok(lines.length <= 2 * FULL_LINES_PER_KIND, `${lines.length} lines for ${ids.length * 3} messages`);
    await assertStillServing();
  });

  test('malformed messages are refused, counted and logged, and do not touch the request they name', async () => {
    const since = new Date().toISOString();
    const before = await dropped('malformed', 'malformed_batch');
    const traffic = goodTraffic();
    const pending = ask('rogue', 'query=up&case=malformed');
    const { id } = await rogue.request('malformed');
    const tooManyHeaders = Object.fromEntries(Array.from({ length: 200 }, (_, i) => [`x-h${i}`, 'v']));
    const malformed: unknown[] = [
      'just a string',
      42,
      null,
      [],
      {},
      { type: 'hijack', id },
      { type: 'head', id },
      { type: 'head', id, status: 999, headers: {} },
      { type: 'head', id, status: 42, headers: {} },
      { type: 'head', id, status: 200.5, headers: {} },
      { type: 'head', id, status: '200', headers: {} },
      { type: 'head', id, status: 200, headers: { 'x-n': 5 } },
      { type: 'head', id, status: 200, headers: { 'x-big': 'v'.repeat(17 * 1024) } },
      { type: 'head', id, status: 200, headers: tooManyHeaders },
      { type: 'head', id: String(id), status: 200, headers: {} },
      { type: 'head', id: -1, status: 200, headers: {} },
      { type: 'head', id: id + 0.5, status: 200, headers: {} },
      { type: 'data', id, chunk: 'not binary' },
      { type: 'data', id, chunk: [1, 2, 3] },
      { type: 'data', id },
      { type: 'end' },
      { type: 'error', id, code: 'made_up', message: 'x' },
      { type: 'error', id, code: 'internal', message: 'x'.repeat(5000) },
      { type: 'error', id, code: 'internal' },
    ];
    for (const message of malformed) rogue.send(message);
    rogue.socket.emit('some-other-event', { type: 'end', id });
    await droppedRise(before, malformed.length, 'malformed', 'malformed_batch');
    await logged(since, (e) => e.msg === 'refused a malformed message from agent');

    // None of it counted: the proper answer that follows is what the caller gets.
    rogue.send({ type: 'head', id, status: 201, headers: { 'content-type': 'text/plain', 'x-real': 'yes' } });
    rogue.send({ type: 'data', id, chunk: Buffer.from('the real answer') });
    rogue.send({ type: 'end', id });
    const res = await pending;
    assert.equal(res.status, 201);
    assert.equal(res.headers.get('x-real'), 'yes');
    assert.equal(await res.text(), 'the real answer');
    await traffic;
    await assertStillServing();
  });

  test('batches: an oversized one is refused whole, a good message in a batch counts, a bad one beside it does not', async () => {
    const before = { batches: await dropped('malformed_batch'), messages: await dropped('malformed') };
    const pending = ask('rogue', 'query=up&case=batch');
    const { id } = await rogue.request('batch');
    const poison = { type: 'head', id, status: 200, headers: { 'x-poison': 'yes' } };
    rogue.send(Array.from({ length: 65 }, () => poison));
    await droppedRise(before.batches, 1, 'malformed_batch');
    // A packed batch whose entry points past its bytes is refused whole too.
    rogue.send({ type: 'batch', bytes: Buffer.from('xx'), messages: [poison, { type: 'data', id, offset: 1, length: 5 }] });
    await droppedRise(before.batches + 1, 1, 'malformed_batch');
    rogue.send([{ type: 'head', id, status: 'nope' }, { type: 'head', id, status: 202, headers: { 'x-real': 'batch' } }, { type: 'data', id, chunk: Buffer.from('o') }]);
    // The rest in a packed batch, as agentk sends them: chunks as slices of one buffer.
    rogue.send({ type: 'batch', bytes: Buffer.from('--k--'), messages: [{ type: 'data', id, offset: 2, length: 1 }, { type: 'end', id }] });
    const res = await pending;
    assert.equal(res.status, 202);
    assert.equal(res.headers.get('x-real'), 'batch');
    assert.equal(res.headers.get('x-poison'), null);
    assert.equal(await res.text(), 'ok');
    await droppedRise(before.messages, 1, 'malformed');
    await assertStillServing();
  });

  test('header names and values that HTTP cannot carry are refused, not sent to the caller, and do not crash kas', async () => {
    for (const [tag, headers] of [
      ['crlf-value', { 'x-evil': 'a\r\nset-cookie: pwned=1' }],
      ['bad-name', { 'bad name': 'v' }],
      ['colon-name', { 'x:evil': 'v' }],
      ['nul-value', { 'x-evil': 'a\u0000b' }],
    ] as const) {
      const traffic = goodTraffic(300);
      const pending = ask('rogue', `query=up&case=${tag}`);
      const { id } = await rogue.request(tag);
      rogue.send({ type: 'head', id, status: 200, headers });
      rogue.send({ type: 'data', id, chunk: Buffer.from('body') });
      rogue.send({ type: 'end', id });
      const res = await pending.catch((error: Error) => error);
      if (!(res instanceof Response)) return assert.fail(`${tag}: ${res.message}\n${kas().proc.describe()}`);
      const text = await res.text();
      assert.equal(res.status, 502, `${tag}: ${text}`);
      assert.equal(res.headers.get('set-cookie'), null);
      assert.equal(res.headers.get('x-evil'), null);
      assert.match((JSON.parse(text) as { error: string }).error, /broke the tunnel protocol: header/);
      await traffic.catch((e) => assert.fail(`${e}\n${kas().proc.describe()}`));
      await assertStillServing();
    }
  });

  test('a 1xx status as the final answer is refused with 502', async () => {
    for (const status of [100, 101, 103]) {
      const tag = `status-${status}`;
      const pending = ask('rogue', `query=up&case=${tag}`);
      const { id } = await rogue.request(tag);
      rogue.send({ type: 'head', id, status, headers: { connection: 'upgrade', upgrade: 'websocket' } });
      rogue.send({ type: 'data', id, chunk: Buffer.from('HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\npwned') });
      rogue.send({ type: 'end', id });
      const res = await Promise.race([pending, sleep(5_000).then(() => assert.fail(`${tag}: no answer`))]);
      const text = await res.text();
      assert.equal(res.status, 502, `${tag}: ${text}`);
      assert.match((JSON.parse(text) as { error: string }).error, /broke the tunnel protocol/);
    }
    await assertStillServing();
  });

  describe('a Content-Length that does not match the body', () => {
    /** One keep-alive connection for two requests in a row, as a connection pool would reuse it. */
    async function twoOnOneConnection(tag: string, misbehave: (id: number) => void) {
      const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
      try {
        const get = (path: string) =>
          new Promise<{ status: number; outcome: 'end' | 'cut'; body: string; replica: unknown }>((resolve, reject) => {
            const req = http.get(`${kas().apiUrl}${path}`, { agent, headers: { authorization: `Bearer ${token}` } }, (res) => {
              void readToEnd(res).then(({ outcome, body }) =>
                resolve({ status: res.statusCode ?? 0, outcome, body: body.toString(), replica: res.headers['x-kas-agent-replica'] }),
              );
            });
            req.once('error', (error) => resolve({ status: 0, outcome: 'cut', body: error.message, replica: undefined }));
            req.setTimeout(5_000, () => reject(new Error(`${path}: no complete answer in 5 s`)));
          });
        const first = get(`/api/v1/agents/rogue/prometheus/api/v1/query?query=up&case=${tag}`);
        const { id } = await rogue.request(tag);
        misbehave(id);
        const answer = await first;
        const next = await get('/api/v1/agents/good/prometheus/api/v1/query?query=up');
        return { answer, next };
      } finally {
        agent.destroy();
      }
    }

    test('bytes beyond it never reach the caller, and the next response on the connection is intact', async () => {
      const since = new Date().toISOString();
      const injected = 'HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 28\r\n\r\n{"status":"success","x":"!"}';
      const { answer, next } = await twoOnOneConnection('cl-long', (id) => {
        rogue.send({ type: 'head', id, status: 200, headers: { 'content-length': '5', 'content-type': 'text/plain' } });
        rogue.send({ type: 'data', id, chunk: Buffer.from('hello') });
        rogue.send({ type: 'data', id, chunk: Buffer.from(injected) });
        rogue.send({ type: 'end', id });
      });
      assert.ok(!answer.body.includes('HTTP/1.1'), `the caller got ${JSON.stringify(answer.body)}`);
      if (answer.outcome === 'end') assert.equal(answer.body, 'hello');
      assert.equal(next.status, 200, next.body);
      assert.equal(next.replica, good.name, 'the next answer is the good agent\'s, not the injected one');
      assert.doesNotMatch(next.body, /"x":"!"/);
      await logged(since, (e) => e.msg === 'agent broke the tunnel protocol; failing that request');
    });

    test('a body that ends short of it is cut, so the caller does not wait for bytes that never come', async () => {
      const { answer, next } = await twoOnOneConnection('cl-short', (id) => {
        rogue.send({ type: 'head', id, status: 200, headers: { 'content-length': '100', 'content-type': 'text/plain' } });
        rogue.send({ type: 'data', id, chunk: Buffer.from('hello') });
        rogue.send({ type: 'end', id });
      });
      assert.equal(answer.outcome, 'cut', `the caller got ${JSON.stringify(answer.body)} as if complete`);
      assert.equal(next.status, 200, next.body);
      assert.equal(next.replica, good.name);
    });

    test('an invalid Content-Length is refused with 502', async () => {
      for (const value of ['-1', 'abc', '1e3', ['5', '6']]) {
        const tag = `cl-bad-${String(value).replace(/\W/g, '')}`;
        const pending = ask('rogue', `query=up&case=${tag}`);
        const { id } = await rogue.request(tag);
        rogue.send({ type: 'head', id, status: 200, headers: { 'content-length': value } });
        rogue.send({ type: 'data', id, chunk: Buffer.from('hello') });
        rogue.send({ type: 'end', id });
        const res = await pending.catch((error: Error) => error);
        if (!(res instanceof Response)) return assert.fail(`${JSON.stringify(value)}: ${res.message}`);
        assert.equal(res.status, 502, `${JSON.stringify(value)}: ${await res.text()}`);
      }
      await assertStillServing();
    });
  });

  test('data before head fails only that request, with 502, and kas cancels it at the rogue', async () => {
    const since = new Date().toISOString();
    const traffic = goodTraffic();
    const pending = ask('rogue', 'query=up&case=data-first');
    const other = ask('rogue', 'query=up&case=data-first-sibling');
    const { id } = await rogue.request('data-first');
    const sibling = await rogue.request('data-first-sibling');
    rogue.send({ type: 'data', id, chunk: Buffer.from('too early') });
    const res = await pending;
    const body = (await res.json()) as { status: string; errorType: string; error: string };
    assert.equal(res.status, 502);
    assert.equal(body.status, 'error');
    assert.match(body.error, /rogue .*broke the tunnel protocol: data before head/);
    assert.match(res.headers.get('x-trace-id') ?? '', /^[0-9a-f]{32}$/);
    assert.equal((await rogue.cancelled(id)).reason, 'protocol violation');
    await logged(since, (e) => e.msg === 'agent broke the tunnel protocol; failing that request' && e.violation === 'data before head');

    // The rogue's other request on the same connection is not disturbed.
    rogue.send({ type: 'head', id: sibling.id, status: 200, headers: {} });
    rogue.send({ type: 'data', id: sibling.id, chunk: Buffer.from('sibling ok') });
    rogue.send({ type: 'end', id: sibling.id });
    assert.equal(await (await other).text(), 'sibling ok');
    await traffic;
    await assertStillServing();
  });

  test('end before head fails that request with 502', async () => {
    const since = new Date().toISOString();
    const pending = ask('rogue', 'query=up&case=end-first');
    const { id } = await rogue.request('end-first');
    rogue.send({ type: 'end', id });
    const res = await pending;
    assert.equal(res.status, 502);
    assert.match(((await res.json()) as { error: string }).error, /broke the tunnel protocol: end before head/);
    await logged(since, (e) => e.msg === 'agent broke the tunnel protocol; failing that request' && e.violation === 'end before head');
    await assertStillServing();
  });

  for (const [what, misbehave] of [
    ['an oversized chunk', (id: number) => rogue.send({ type: 'data', id, chunk: Buffer.alloc(CHUNK_MAX_BYTES + 1, 'x') })],
    ['a second head', (id: number) => rogue.send({ type: 'head', id, status: 500, headers: {} })],
  ] as const) {
    test(`${what} mid-response cuts that response short and is logged`, async () => {
      const tag = what.replaceAll(' ', '-');
      const since = new Date().toISOString();
      const traffic = goodTraffic();
      const pending = openResponse(url('rogue', `query=up&case=${tag}`), { headers: { authorization: `Bearer ${token}` } });
      const { id } = await rogue.request(tag);
      rogue.send({ type: 'head', id, status: 200, headers: { 'content-type': 'text/plain' } });
      rogue.send({ type: 'data', id, chunk: Buffer.from('first part;') });
      const { res } = await pending;
      assert.equal(res.statusCode, 200);
      misbehave(id);
      rogue.send({ type: 'data', id, chunk: Buffer.from('after the violation') });
      rogue.send({ type: 'end', id });
      const { outcome, body } = await readToEnd(res);
      assert.equal(outcome, 'cut', `the caller got a clean end with ${JSON.stringify(body.toString())}`);
      assert.ok(!body.toString().includes('after the violation'), 'nothing after the violation reached the caller');
      assert.equal((await rogue.cancelled(id)).reason, 'protocol violation');
      await logged(since, (e) => e.msg === 'agent broke the tunnel protocol; failing that request');
      await traffic;
      await assertStillServing();
    });
  }

  test('data beyond the credit kas granted fails that request, and kas objects only once the credit is spent', async () => {
    const since = new Date().toISOString();
    const traffic = goodTraffic();
    // The caller reads nothing, so kas stops granting credit once its socket is full.
    const { res } = await (async () => {
      const pending = openResponse(url('rogue', 'query=up&case=flood'), { headers: { authorization: `Bearer ${token}` } });
      const { id } = await rogue.request('flood');
      rogue.send({ type: 'head', id, status: 200, headers: { 'content-type': 'application/octet-stream' } });
      rogue.send({ type: 'data', id, chunk: Buffer.alloc(1, 'x') });
      return pending;
    })();
    const { id } = await rogue.request('flood');
    const chunk = Buffer.alloc(CHUNK_MAX_BYTES, 'f');
    let sent = 1;
    while (!rogue.control.some((m) => m.type === 'cancel' && m.id === id) && sent < 256 * 1024 * 1024) {
      for (let i = 0; i < 16; i++) rogue.send({ type: 'data', id, chunk });
      sent += 16 * CHUNK_MAX_BYTES;
      await yieldToIo();
    }
    const cancel = await rogue.cancelled(id, 1_000);
    assert.equal(cancel.reason, 'protocol violation');
    const granted = INITIAL_CREDIT_BYTES + rogue.creditFor(id);
    assert.ok(sent > granted, `kas objected after ${sent} bytes although it had granted ${granted}`);
    await logged(since, (e) => e.msg === 'agent broke the tunnel protocol; failing that request' && /exceeds credit/.test(String(e.violation)));
    res.resume();
    const { outcome } = await readToEnd(res);
    assert.equal(outcome, 'cut');
    await traffic;
    await assertStillServing();
  });

  for (const [what, oversized] of [
    ['binary', (id: number) => ({ type: 'data', id, chunk: Buffer.alloc(FRAME_MAX_BYTES + 1024, 'o') })],
    ['text', (id: number) => ({ type: 'head', id, status: 200, headers: { 'x-huge': 'h'.repeat(FRAME_MAX_BYTES + 1024) } })],
  ] as const) {
    test(`an oversized ${what} frame closes the rogue's connection; its request gets 502`, async () => {
      const tag = `frame-${what}`;
      const since = new Date().toISOString();
      const traffic = goodTraffic();
      const pending = ask('rogue', `query=up&case=${tag}`);
      const { id } = await rogue.request(tag);
      const disconnected = new Promise<string>((resolve) => rogue.socket.once('disconnect', resolve));
      rogue.send(oversized(id));
      const res = await pending;
      const text = await res.text();
      assert.equal(res.status, 502, text);
      assert.match((JSON.parse(text) as { error: string }).error, /went away.*retry/);
      await disconnected;
      await logged(since, (e) => e.msg === 'agent replica disconnected');
      await traffic;
      await assertStillServing();
    });
  }

  test('after all that, the rogue agent id can connect again and be served', async () => {
    const pending = ask('rogue', 'query=up&case=again');
    const { id } = await rogue.request('again');
    rogue.send({ type: 'head', id, status: 200, headers: {} });
    rogue.send({ type: 'end', id });
    assert.equal((await pending).status, 200);
    await assertStillServing();
  });
});
