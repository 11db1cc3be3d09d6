// Identical watches share one upstream watch (server/modules/kubernetes/sharedWatch.ts): through the node
// that does NOT hold the agent, several callers watching the same thing from the same
// resourceVersion cost the API server one watch, and every caller still gets exactly the events
// its own watch would have given it: late joiners get what they missed, each caller's
// timeoutSeconds is its own, a caller that stops reading is ended without holding up the others,
// and the upstream watch ends with its last viewer.
import assert from 'node:assert/strict';
import http from 'node:http';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { pino } from 'pino';
import { FanOutHub, nodeBudget } from '../../server/fanout/hub.ts';
import type { Agents, Reply } from '../../server/modules/capability.ts';
import { serveSharedWatch, shareableWatch, type WatchHead } from '../../server/modules/kubernetes/sharedWatch.ts';
import type { KasError } from '../../server/routing/errors.ts';
import type { AgentRequest, AgentStream } from '../../server/routing/request.ts';
import { ChunkQueue } from '../../server/tunnel/chunkQueue.ts';
import { KasCluster } from '../support/kas.ts';
import { type KubeSim, startKubeSim } from '../../demo/k8sSim.ts';
import { waitFor } from '../support/procs.ts';
import { makeTestPki } from '../support/tls.ts';

describe('which watches may be shared', () => {
  const spec = (query: string, headers: Record<string, string> = {}): AgentRequest => ({
    agentId: 'a',
    upstream: 'kubernetes',
    method: 'GET',
    path: '/api/v1/namespaces/x/pods',
    query,
    headers,
    body: undefined,
    streaming: true,
    timeoutMs: 0,
  });

  test('the same watch from another resourceVersion or with another timeout shares a key', () => {
    const a = shareableWatch(spec('watch=1&resourceVersion=10&labelSelector=app%3Dx&timeoutSeconds=30'))!;
    const b = shareableWatch(spec('labelSelector=app%3Dx&resourceVersion=12&watch=1', { accept: 'application/json, */*' }))!;
    const c = shareableWatch(spec('labelSelector=app%3Dx&resourceVersion=12&watch=1'))!;
    assert.equal(a.key, c.key);
    assert.notEqual(a.key, b.key, 'another Accept is another answer');
    assert.equal(a.resourceVersion, '10');
    assert.equal(a.timeoutSeconds, 30);
    assert.equal(new URLSearchParams(a.request.query).get('timeoutSeconds'), '30', 'the first caller asks the API server as it would');
    assert.equal(new URLSearchParams(a.request.query).get('resourceVersion'), '10');
    assert.notEqual(shareableWatch(spec('watch=1&resourceVersion=10&labelSelector=app%3Dy'))!.key, a.key);
    assert.ok(shareableWatch(spec('watch=true&resourceVersion=10', { accept: 'application/json' })));
  });

  test('watches that ask for the current state, Tables, protobuf, lists and logs are not shared', () => {
    assert.equal(shareableWatch(spec('watch=1')), undefined);
    assert.equal(shareableWatch(spec('watch=1&resourceVersion=0')), undefined);
    assert.equal(shareableWatch(spec('watch=1&resourceVersion=5&sendInitialEvents=true')), undefined);
    assert.equal(shareableWatch(spec('watch=1&resourceVersion=5', { accept: 'application/json;as=Table;v=v1;g=meta.k8s.io' })), undefined);
    assert.equal(shareableWatch(spec('watch=1&resourceVersion=5', { accept: 'application/vnd.kubernetes.protobuf' })), undefined);
    assert.equal(shareableWatch(spec('watch=1&resourceVersion=5&timeoutSeconds=abc')), undefined);
    assert.equal(shareableWatch({ ...spec('resourceVersion=5'), streaming: false }), undefined);
    assert.equal(shareableWatch({ ...spec('follow=true'), path: '/api/v1/namespaces/x/pods/p/log' }), undefined);
    assert.equal(shareableWatch({ ...spec('watch=1&resourceVersion=5'), upstream: 'prometheus' }), undefined);
  });
});

interface WatchEvent {
  type: string;
  object: { metadata?: { name?: string; resourceVersion?: string }; code?: number };
}

/** One caller's watch: every event it parsed, and whether its stream ended. */
class Watcher {
  events: WatchEvent[] = [];
  ended = false;
  status = 0;
  headers: http.IncomingHttpHeaders = {};
  res: http.IncomingMessage | undefined;
  #req: http.ClientRequest;
  #opened: Promise<void>;

  constructor(url: string, token: string, headers: Record<string, string> = {}) {
    let buffer = '';
    this.#req = http.get(url, { agent: false, headers: { authorization: `Bearer ${token}`, ...headers } });
    this.#opened = new Promise((resolve, reject) => {
      this.#req.on('error', reject);
      this.#req.on('response', (res) => {
        this.res = res;
        this.status = res.statusCode ?? 0;
        this.headers = res.headers;
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          buffer += chunk;
          for (let nl = buffer.indexOf('\n'); nl >= 0; nl = buffer.indexOf('\n')) {
            const line = buffer.slice(0, nl);
            buffer = buffer.slice(nl + 1);
            if (line.trim()) this.events.push(JSON.parse(line) as WatchEvent);
          }
        });
        res.on('end', () => (this.ended = true));
        res.on('error', () => (this.ended = true));
        resolve();
      });
    });
  }

  opened(): Promise<void> {
    return this.#opened;
  }

  versions(type = 'MODIFIED'): string[] {
    return this.events.filter((e) => e.type === type).map((e) => e.object.metadata?.resourceVersion ?? '?');
  }

  close(): void {
    this.#req.destroy();
  }
}

let dir: string;
let sim: KubeSim;
let cluster: KasCluster;
let token: string;
let base: string;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'kas-shared-'));
  const pki = await makeTestPki(join(dir, 'pki'));
  sim = await startKubeSim({ tls: pki, token: 'sa' });
  const kubeconfig = join(dir, 'kubeconfig');
  await writeFile(kubeconfig, sim.kubeconfig({ caFile: pki.caFile, token: 'sa' }));
  cluster = await KasCluster.start({ nodes: 2 });
  const agentToken = await cluster.registerAgent('shared');
  // Keep-alive lines on idle watches every 300 ms: they must not stop a watch from being shared.
  await cluster.startAgent({
    id: 'shared',
    token: agentToken,
    node: 0,
    configYaml: `kubernetes:\n  kubeconfig: ${kubeconfig}\n`,
    env: { AGENTK_WATCH_KEEPALIVE: '300ms' },
  });
  token = await cluster.issueToken();
  await cluster.waitForReplicas('shared', 1, token, 1);
  base = `${cluster.nodes[1]!.apiUrl}/api/v1/agents/shared/kubernetes`;
});

after(async () => {
  await cluster?.stop();
  await sim?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

function change(namespace: string, name: string, n: number): string {
  return sim.api.modify('configmaps', namespace, name, (o) => (o.data = { n: String(n) })).metadata!.resourceVersion!;
}

async function closeAll(watchers: Watcher[]): Promise<void> {
  for (const w of watchers) w.close();
  await waitFor(() => sim.api.activeWatches() === 0, { what: 'the upstream watches to end', timeoutMs: 10_000 });
}

test('identical watches through the other node cost one watch on the API server; each caller gets every event', async () => {
  sim.api.create('configmaps', { metadata: { name: 'one', namespace: 'share-a' }, data: { n: '0' } });
  const rv = sim.api.resourceVersion();
  const url = `${base}/api/v1/namespaces/share-a/configmaps?watch=1&resourceVersion=${rv}`;
  const watchers = [new Watcher(url, token), new Watcher(url, token), new Watcher(url, token, { accept: 'application/json' })];
  try {
    await Promise.all(watchers.map((w) => w.opened()));
    for (const w of watchers) assert.equal(w.status, 200);
    assert.equal(sim.api.activeWatches(), 2, 'one upstream watch for the two identical ones, one for the other Accept');
    const versions = [change('share-a', 'one', 1), change('share-a', 'one', 2), change('share-a', 'one', 3)];
    await waitFor(() => watchers.every((w) => w.versions().length === 3), { what: 'every caller to see 3 changes', timeoutMs: 10_000 });
    for (const w of watchers) assert.deepEqual(w.versions(), versions);
    assert.ok(watchers.every((w) => w.headers['x-kas-node'] === 'kas-0'), 'answered by the node holding the agent');
    assert.notEqual(watchers[0]!.headers['x-trace-id'], watchers[1]!.headers['x-trace-id'], 'each caller keeps its own trace id');
  } finally {
    await closeAll(watchers);
  }
});

test('a caller that joins later, from the resourceVersion of an event or of the start, gets what it missed, once', async () => {
  sim.api.create('configmaps', { metadata: { name: 'two', namespace: 'share-b' }, data: { n: '0' } });
  const start = sim.api.resourceVersion();
  const url = (rv: string) => `${base}/api/v1/namespaces/share-b/configmaps?watch=1&resourceVersion=${rv}`;
  const first = new Watcher(url(start), token);
  const watchers = [first];
  try {
    await first.opened();
    const versions = [change('share-b', 'two', 1), change('share-b', 'two', 2), change('share-b', 'two', 3)];
    await waitFor(() => first.versions().length === 3, { what: 'the first caller to see 3 changes', timeoutMs: 10_000 });
    // Idle long enough for keep-alive lines to pass: the watch can still be joined afterwards.
    await new Promise((r) => setTimeout(r, 800));
    const fromEvent = new Watcher(url(versions[0]!), token);
    const fromStart = new Watcher(url(start), token);
    watchers.push(fromEvent, fromStart);
    await Promise.all([fromEvent.opened(), fromStart.opened()]);
    await waitFor(() => fromEvent.versions().length === 2 && fromStart.versions().length === 3, { what: 'the late callers to catch up', timeoutMs: 10_000 });
    assert.equal(sim.api.activeWatches(), 1, 'the late callers joined the running watch');
    versions.push(change('share-b', 'two', 4));
    await waitFor(() => watchers.every((w) => w.versions().at(-1) === versions[3]), { what: 'everyone to see the 4th change', timeoutMs: 10_000 });
    assert.deepEqual(first.versions(), versions);
    assert.deepEqual(fromEvent.versions(), versions.slice(1));
    assert.deepEqual(fromStart.versions(), versions);
    // A resourceVersion the shared watch cannot replay from gets an upstream watch of its own.
    sim.api.create('configmaps', { metadata: { name: 'other', namespace: 'default' }, data: {} });
    const elsewhere = new Watcher(url(sim.api.resourceVersion()), token);
    watchers.push(elsewhere);
    await elsewhere.opened();
    assert.equal(sim.api.activeWatches(), 2);
    versions.push(change('share-b', 'two', 5));
    await waitFor(() => elsewhere.versions().length === 1, { what: 'the separate caller to see the 5th change', timeoutMs: 10_000 });
    assert.deepEqual(elsewhere.versions(), [versions[4]]);
    await waitFor(() => first.versions().length === 5, { what: 'the first caller to see the 5th change', timeoutMs: 10_000 });
  } finally {
    await closeAll(watchers);
  }
});

test("a caller's shorter timeoutSeconds ends it alone; the upstream watch ends with the last caller, or its own timeout", async () => {
  sim.api.create('configmaps', { metadata: { name: 'three', namespace: 'share-c' }, data: { n: '0' } });
  const rv = sim.api.resourceVersion();
  const url = `${base}/api/v1/namespaces/share-c/configmaps?watch=1&resourceVersion=${rv}`;
  const long = new Watcher(url, token);
  await long.opened();
  const short = new Watcher(`${url}&timeoutSeconds=1`, token);
  let first: Watcher | undefined;
  let joined: Watcher | undefined;
  try {
    await short.opened();
    assert.equal(sim.api.activeWatches(), 1);
    await waitFor(() => short.ended, { what: 'the 1 s watch to end', timeoutMs: 5_000 });
    assert.equal(long.ended, false);
    const version = change('share-c', 'three', 1);
    await waitFor(() => long.versions().length === 1, { what: 'the remaining caller to see the change', timeoutMs: 10_000 });
    assert.deepEqual(long.versions(), [version]);
    assert.deepEqual(short.versions(), []);
    assert.equal(sim.api.activeWatches(), 1);
    long.close();
    await waitFor(() => sim.api.activeWatches() === 0, { what: 'the upstream watch to end with its last caller', timeoutMs: 10_000 });

    // Started by a caller with a timeout: the API server ends it then, and every caller with it.
    // 3 s: time enough for the second caller to join even on a busy machine.
    first = new Watcher(`${url}&timeoutSeconds=3`, token);
    await first.opened();
    joined = new Watcher(`${url}&timeoutSeconds=60`, token);
    await joined.opened();
    assert.equal(sim.api.activeWatches(), 1);
    assert.equal(sim.api.requests().findLast((r) => r.path.includes('share-c'))?.params.get('timeoutSeconds'), '3', "the first caller's timeout");
    await waitFor(() => first!.ended && joined!.ended, { what: 'both to end with the upstream watch', timeoutMs: 10_000 });
    assert.equal(sim.api.activeWatches(), 0);
  } finally {
    await closeAll([short, long, ...(first ? [first] : []), ...(joined ? [joined] : [])]);
  }
});

test('a caller that stops reading is ended once far behind; the others get everything meanwhile', async () => {
  const big = 'x'.repeat(100_000);
  sim.api.create('configmaps', { metadata: { name: 'four', namespace: 'share-d' }, data: { big, n: '0' } });
  const rv = sim.api.resourceVersion();
  const url = `${base}/api/v1/namespaces/share-d/configmaps?watch=1&resourceVersion=${rv}`;
  const reader = new Watcher(url, token);
  const stalled = new Watcher(url, token);
  try {
    await Promise.all([reader.opened(), stalled.opened()]);
    stalled.res!.pause();
    // 50 MB of events: past what the sockets on the way buffer plus the 16 MiB kas lets a caller
    // have unsent; in bursts of 1 MB that a caller that reads keeps up with.
    const changes = 500;
    for (let n = 1; n <= changes; n++) {
      sim.api.modify('configmaps', 'share-d', 'four', (o) => (o.data = { big, n: String(n) }));
      if (n % 10 === 0) await new Promise((r) => setTimeout(r, 10));
    }
    await waitFor(() => reader.versions().length === changes, { what: 'the reading caller to get every change', timeoutMs: 30_000 });
    assert.equal(reader.ended, false);
    stalled.res!.resume();
    await waitFor(() => stalled.ended, { what: 'the stalled caller to be ended', timeoutMs: 30_000 });
    const got = stalled.versions();
    assert.ok(got.length < changes, `the stalled caller was ended before the end (${got.length} of ${changes})`);
    assert.deepEqual(got, reader.versions().slice(0, got.length), 'what it got is a prefix, in order: it re-watches from its last one');
  } finally {
    await closeAll([reader, stalled]);
  }
});

test('a refusal or a 410 reaches every caller waiting on the shared watch', async () => {
  // Policy: secrets are denied by agentk; both callers get its 403 Status.
  const rv = sim.api.resourceVersion();
  const denied = `${base}/api/v1/namespaces/share-e/secrets?watch=1&resourceVersion=${rv}`;
  const refused = [new Watcher(denied, token), new Watcher(denied, token)];
  await Promise.all(refused.map((w) => w.opened()));
  await waitFor(() => refused.every((w) => w.ended), { what: 'both refusals to be read', timeoutMs: 5_000 });
  for (const w of refused) assert.equal(w.status, 403);

  // A compacted resourceVersion: the watch answers 200 with an ERROR 410 event, to each caller.
  sim.api.create('configmaps', { metadata: { name: 'five', namespace: 'share-e' }, data: {} });
  const old = rv;
  change('share-e', 'five', 1);
  sim.api.compact();
  const url = `${base}/api/v1/namespaces/share-e/configmaps?watch=1&resourceVersion=${old}`;
  const gone = [new Watcher(url, token), new Watcher(url, token)];
  try {
    await Promise.all(gone.map((w) => w.opened()));
    await waitFor(() => gone.every((w) => w.events.length > 0), { what: 'both to get the ERROR event', timeoutMs: 10_000 });
    for (const w of gone) {
      assert.equal(w.events[0]!.type, 'ERROR');
      assert.equal(w.events[0]!.object.code, 410);
    }
  } finally {
    await closeAll(gone);
  }
});

/** A caller's answer as the shared watch writes it, recorded. */
class RecordingReply implements Reply {
  status = 0;
  headers: Record<string, unknown> = {};
  body = '';
  ended = false;
  destroyed = false;
  failure: KasError | undefined;
  backlog = 0;
  #gone = new AbortController();
  #closeListeners = new Set<() => void>();

  get signal(): AbortSignal {
    return this.#gone.signal;
  }
  get left(): boolean {
    return this.#gone.signal.aborted;
  }
  get started(): boolean {
    return this.status !== 0;
  }
  async pass(): Promise<void> {
    throw new Error('a shared watch composes its answers');
  }
  start(status: number, headers: Readonly<Record<string, unknown>>) {
    this.status = status;
    Object.assign(this.headers, headers);
  }
  write(chunk: Uint8Array | string) {
    this.body += Buffer.from(chunk).toString();
  }
  end() {
    this.ended = true;
    this.#close();
  }
  destroy() {
    this.destroyed = true;
    this.#close();
  }
  fail(error: KasError) {
    this.failure = error;
    this.#close();
  }
  onClose(listener: () => void) {
    this.#closeListeners.add(listener);
    return () => this.#closeListeners.delete(listener);
  }
  /** The caller goes away. */
  leave() {
    this.#gone.abort(new Error('caller went away'));
    this.destroyed = true;
    this.#close();
  }
  #close() {
    for (const listener of this.#closeListeners) listener();
    this.#closeListeners.clear();
  }
}

/** The router's handle, answering each watch with a body the test writes (or not at all). */
class ScriptedAgents implements Agents {
  opened = 0;
  answers: { body: ChunkQueue; cancelled: Promise<void> }[] = [];
  async open(): Promise<AgentStream> {
    this.opened++;
    let cancelled!: () => void;
    const gone = new Promise<void>((resolve) => (cancelled = resolve));
    const body = new ChunkQueue({ onCancel: () => cancelled() });
    this.answers.push({ body, cancelled: gone });
    return { status: 200, headers: { 'content-type': 'application/json' }, node: 'kas-x', replica: 'r-0', forwarded: false, body };
  }
}

describe('shared watches without the network', () => {
  const log = pino({ level: 'silent' });
  const watchSpec = (rv: string) =>
    shareableWatch({
      agentId: 'a',
      upstream: 'kubernetes',
      method: 'GET',
      path: '/api/v1/configmaps',
      query: `watch=1&resourceVersion=${rv}`,
      headers: {},
      body: undefined,
      streaming: true,
      timeoutMs: 0,
    })!;
  const event = (rv: number, pad = '') => `{"type":"MODIFIED","object":{"metadata":{"resourceVersion":"${rv}"},"pad":"${pad}"}}\n`;
  const newHub = (replayTotalBytes?: number) => new FanOutHub<WatchHead, Buffer>(log, nodeBudget(replayTotalBytes));

  /** Starts a shared watch whose upstream answer is written by the test through `upstream`. */
  async function start(hub: FanOutHub<WatchHead, Buffer>, rv: string) {
    const agents = new ScriptedAgents();
    const res = new RecordingReply();
    const served = serveSharedWatch(hub, agents, watchSpec(rv), 'test', res);
    await waitFor(async () => agents.answers.length > 0 || undefined, { timeoutMs: 1000, what: 'the upstream watch' });
    const { body, cancelled } = agents.answers[0]!;
    const upstream = { write: (text: string) => body.push(Buffer.from(text)), end: () => body.end(), gone: cancelled };
    await new Promise((r) => setImmediate(r));
    return { res, served, upstream: () => upstream, agents };
  }
  const join = (hub: FanOutHub<WatchHead, Buffer>, rv: string) => {
    const res = new RecordingReply();
    const agents = new ScriptedAgents();
    const served = serveSharedWatch(hub, agents, watchSpec(rv), 'test', res);
    return { res, served, agents };
  };
  const settle = () => new Promise((r) => setImmediate(r));

  test('events split across chunks reach callers whole; blank keep-alive lines pass but are not replayed', async () => {
    const hub = newHub();
    const first = await start(hub, '1');
    const up = first.upstream();
    const text = event(2) + '\n' + event(3);
    up.write(text.slice(0, 10));
    up.write(text.slice(10, 70));
    up.write(text.slice(70));
    await settle();
    assert.equal(first.res.body, text);
    const late = join(hub, '2');
    assert.equal(late.agents.opened, 0, 'the late caller joined the running watch');
    assert.equal(late.res.body, event(3), 'replayed from the event after resourceVersion 2, without the blank line');
    up.end();
    await Promise.all([first.served, late.served]);
    assert.ok(first.res.ended && late.res.ended);
    assert.deepEqual(hub.stats(), { upstreams: 0, viewers: 0, replayBytes: 0 });
  });

  test('all replay buffers together stay within the budget; a start that was dropped cannot be joined', async () => {
    const hub = newHub(10_000);
    const a = await start(hub, '1');
    const b = await start(hub, '1000');
    for (let i = 0; i < 100; i++) {
      a.upstream().write(event(2 + i, 'x'.repeat(100)));
      b.upstream().write(event(1001 + i, 'y'.repeat(100)));
      await settle();
    }
    const { replayBytes, upstreams } = hub.stats();
    assert.equal(upstreams, 2);
    assert.ok(replayBytes <= 10_000, `replay buffers hold ${replayBytes} bytes`);
    assert.ok(replayBytes > 5_000, `and still replay recent events (${replayBytes} bytes)`);
    // The start of a was dropped: a caller from it gets its own upstream watch, not a gap.
    const fromStart = join(hub, '1');
    await waitFor(async () => fromStart.agents.opened > 0 || undefined, { timeoutMs: 1000, what: 'an upstream watch of its own' });
    fromStart.res.leave();
    await fromStart.served;
    // A recent event can still be joined from.
    const recent = join(hub, String(2 + 98));
    assert.equal(recent.agents.opened, 0);
    assert.equal(recent.res.body, event(2 + 99, 'x'.repeat(100)));
    recent.res.leave();
    a.res.leave();
    b.res.leave();
    await Promise.all([a.upstream().gone, b.upstream().gone]);
    assert.equal(hub.stats().replayBytes, 0, 'closed watches give their replay bytes back');
  });

  test('an answer with no line ends is passed on unsplit, and nobody joins it', async () => {
    const hub = newHub();
    const first = await start(hub, '1');
    const piece = 'z'.repeat(1024 * 1024);
    for (let i = 0; i < 9; i++) {
      first.upstream().write(piece);
      await settle();
    }
    assert.equal(first.res.body.length, 9 * piece.length, 'held back no more than one event may be');
    const other = join(hub, '1');
    await waitFor(async () => other.agents.opened > 0 || undefined, { timeoutMs: 1000, what: 'a second upstream watch' });
    assert.equal(other.agents.opened, 1, 'a second caller got its own upstream watch');
    other.res.leave();
    first.upstream().write('tail');
    await settle();
    assert.ok(first.res.body.endsWith('tail'));
    first.upstream().end();
    await first.served;
  });

  test("an event's JSON is read only when a caller joining later looks for its resourceVersion, and once", async (t) => {
    const parse = t.mock.method(JSON, 'parse');
    const eventsParsed = () => parse.mock.calls.filter((call) => String(call.arguments[0]).includes('"MODIFIED"')).length;
    const hub = newHub();
    const first = await start(hub, '1');
    for (let rv = 2; rv <= 51; rv++) first.upstream().write(event(rv));
    await settle();
    assert.equal(eventsParsed(), 0, 'passing 50 events on parsed none of them');
    const late = join(hub, '41');
    assert.equal(late.agents.opened, 0, 'the late caller joined');
    assert.equal(late.res.body, Array.from({ length: 10 }, (_, i) => event(42 + i)).join(''));
    const scanned = eventsParsed();
    assert.ok(scanned >= 10 && scanned <= 11, `only the events back to resourceVersion 41 were read (${scanned})`);
    const again = join(hub, '41');
    assert.equal(again.res.body, late.res.body);
    assert.equal(eventsParsed(), scanned, 'each event is read at most once');
    for (const caller of [first, late, again]) caller.res.leave();
    await first.upstream().gone;
  });

  test('a line that is not a JSON object, or an ERROR event, ends joining; the first caller gets every byte', async () => {
    for (const ending of ['not a watch event\n', '{"type":"ERROR","object":{"kind":"Status","code":410,"reason":"Expired"}}\n']) {
      const hub = newHub();
      const first = await start(hub, '1');
      first.upstream().write(event(2) + ending + event(3));
      await settle();
      assert.equal(first.res.body, event(2) + ending + event(3));
      const late = join(hub, '2');
      await waitFor(async () => late.agents.opened > 0 || undefined, { timeoutMs: 1000, what: 'an upstream watch of its own' });
      late.res.leave();
      first.res.leave();
      await Promise.all([late.served, first.upstream().gone]);
    }
  });

  test('a caller that left before it could join starts nothing', async () => {
    const hub = newHub();
    const res = new RecordingReply();
    res.leave();
    const agents = new ScriptedAgents();
    await serveSharedWatch(hub, agents, watchSpec('5'), 'test', res);
    assert.equal(agents.opened, 0);
    assert.deepEqual(hub.stats(), { upstreams: 0, viewers: 0, replayBytes: 0 });
  });
});
