// The limits a node puts on what callers and agents may hold, each a setting, each refused in the
// caller's language and counted in kas_limit_refusals_total{limit}: requests in flight per agent
// (KAS_AGENT_MAX_INFLIGHT, watches aside), watches and follows per API token
// (KAS_MAX_WATCHES_PER_TOKEN), request body and head sizes (KAS_MAX_REQUEST_BODY,
// KAS_MAX_HEADER_SIZE). The agent here is a rogue that answers when the test says so.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { loadConfig } from '../../server/config.ts';
import { SettingError } from '../../protocol/settings.ts';
import { AGENT_HORIZON_MS, ConnectRate, NODE_HORIZON_MS } from '../../server/tunnel/connectRate.ts';
import { KasCluster } from '../support/kas.ts';
import { metricSum } from '../support/metrics.ts';
import { waitFor } from '../support/procs.ts';
import { errorMessage } from './runner.ts';
import { RogueAgent } from './rogue.ts';
import { exchange, type WireAnswer } from './wire.ts';

describe('limit settings', () => {
  test('each has a default, and sizes are read with their unit', () => {
    const config = loadConfig({});
    assert.equal(config.headerTimeoutMs, 10_000);
    assert.equal(config.bodyTimeoutMs, 10_000);
    assert.equal(config.maxRequestBodyBytes, 512 * 1024);
    assert.equal(config.maxHeaderBytes, 16 * 1024);
    assert.equal(config.agentMaxInflight, 256);
    assert.equal(config.maxWatchesPerToken, 1000);
    assert.equal(config.agentConnectRate, 500);
    assert.equal(config.agentConnectRatePerAgent, 5);
    assert.equal(loadConfig({ KAS_MAX_REQUEST_BODY: '1MiB' }).maxRequestBodyBytes, 1024 * 1024);
    assert.equal(loadConfig({ KAS_MAX_REQUEST_BODY: '2048' }).maxRequestBodyBytes, 2048);
    assert.equal(loadConfig({ KAS_MAX_HEADER_SIZE: '64KB' }).maxHeaderBytes, 64_000);
    for (const bad of ['lots', '0', '-1KiB', '1GiB', '17MiB']) {
      assert.throws(() => loadConfig({ KAS_MAX_REQUEST_BODY: bad }), (e: Error) => e instanceof SettingError && /KAS_MAX_REQUEST_BODY .* expected a size such as 16KiB/.test(e.message), bad);
    }
    assert.throws(() => loadConfig({ KAS_HEADER_TIMEOUT: '0s' }), /KAS_HEADER_TIMEOUT "0s" is not valid: expected a duration above zero/);
    assert.throws(() => loadConfig({ KAS_AGENT_MAX_INFLIGHT: 'many' }), /KAS_AGENT_MAX_INFLIGHT "many" is not valid/);
  });
});

describe('the agent connection rate', () => {
  test('a burst of the rate is let in; each one refused after it is told a later slot, never beyond the horizon', () => {
    const rate = new ConnectRate({ perNode: 10, perAgent: 5 });
    for (let i = 0; i < 10; i++) assert.equal(rate.admitToNode(), 0, `attempt ${i} of the burst`);
    const hints = Array.from({ length: 400 }, () => rate.admitToNode());
    // One slot every 100 ms after those promised: 100, 200, 300 ms … (less the microseconds this takes).
    for (const [i, expected] of [[0, 100], [1, 200], [9, 1000]] as const) assert.ok(Math.abs(hints[i]! - expected) < 20, `hint ${i}: ${hints[i]}`);
    for (let i = 1; i < hints.length; i++) assert.ok(hints[i]! >= hints[i - 1]! - 20, `hints do not go back: ${hints[i - 1]} then ${hints[i]}`);
    // Callers that knock again and again cannot push the others past the horizon.
    assert.ok(Math.max(...hints) <= NODE_HORIZON_MS, `the furthest hint: ${Math.max(...hints)}`);
    assert.ok(hints.at(-1)! > NODE_HORIZON_MS - 100, `hints reach the horizon: ${hints.at(-1)}`);
  });

  test('each agent token has its own bucket and a shorter horizon', () => {
    const rate = new ConnectRate({ perNode: 1000, perAgent: 5 });
    for (let i = 0; i < 5; i++) assert.equal(rate.admitAgent('a'), 0);
    assert.ok(rate.admitAgent('a') > 150, 'the sixth of one agent waits');
    assert.equal(rate.admitAgent('b'), 0, 'another agent is let in meanwhile');
    const hints = Array.from({ length: 100 }, () => rate.admitAgent('a'));
    assert.ok(Math.max(...hints) <= AGENT_HORIZON_MS && hints.at(-1)! > AGENT_HORIZON_MS - 100, `the furthest hint: ${Math.max(...hints)}`);
  });
});

describe('limits on a running node', () => {
  let cluster: KasCluster;
  let rogue: RogueAgent;
  let token: string;
  let otherToken: string;
  let port: number;
  let tags = 0;

  before(async () => {
    cluster = await KasCluster.start({
      env: { KAS_AGENT_MAX_INFLIGHT: '3', KAS_MAX_WATCHES_PER_TOKEN: '2', KAS_MAX_REQUEST_BODY: '1KiB', KAS_MAX_HEADER_SIZE: '4KiB', LOG_LEVEL: 'info' },
    });
    const agentToken = await cluster.registerAgent('busy');
    token = await cluster.issueToken({ agents: ['busy'] });
    otherToken = await cluster.issueToken({ sub: 'someone-else', agents: ['busy'] });
    rogue = await RogueAgent.connect(cluster.nodes[0]!.agentUrl, agentToken, 'busy-0');
    await cluster.waitForReplicas('busy', 1, token);
    port = Number(new URL(cluster.nodes[0]!.apiUrl).port);
  });
  after(async () => {
    rogue?.close();
    await cluster?.stop();
  });

  const refusals = (limit: string) => metricSum(cluster.nodes[0]!.observabilityUrl, 'kas_limit_refusals_total', { limit });

  /** A request whose answer the agent holds until `release` is called. */
  function held(path: string, options: { token?: string; watch?: boolean } = {}) {
    const tag = `h${tags++}`;
    rogue.scripts.set(tag, options.watch ? [{ head: 200 }, { data: '{"type":"ADDED"}\n' }] : []);
    const answer = exchange(port, [`GET ${path}${path.includes('?') ? '&' : '?'}case=${tag} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${options.token ?? token}\r\nConnection: close\r\n\r\n`], { timeoutMs: 10_000, idleMs: 10_000 });
    return {
      tag,
      answer,
      async arrived() {
        await waitFor(() => rogue.requests.has(tag), { what: `request ${tag} at the agent` });
      },
      release() {
        const id = rogue.requests.get(tag)!.id;
        rogue.send({ type: 'head', id, status: 200, headers: { 'content-type': 'text/plain' } });
        rogue.send({ type: 'data', id, chunk: Buffer.from('released') });
        rogue.send({ type: 'end', id });
      },
    };
  }

  /** One request answered at once by the agent; the answer kas gave. */
  async function ask(path: string, extra = ''): Promise<WireAnswer> {
    const tag = `a${tags++}`;
    rogue.scripts.set(tag, [{ head: 200, headers: { 'content-type': 'text/plain' } }, { data: 'ok' }, 'end']);
    return exchange(port, [`GET ${path}${path.includes('?') ? '&' : '?'}case=${tag} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token}\r\n${extra}Connection: close\r\n\r\n`], { timeoutMs: 10_000, idleMs: 10_000 });
  }

  const QUERY = '/api/v1/agents/busy/prometheus/api/v1/query?query=up';
  const PODS = '/api/v1/agents/busy/kubernetes/api/v1/namespaces/default/pods';

  test('past KAS_AGENT_MAX_INFLIGHT requests held by the agent: 429 in the caller\'s language, watches aside; room again as answers end', async () => {
    const before = await refusals('agent_inflight');
    const busy = [held(QUERY), held(QUERY), held(PODS)];
    await Promise.all(busy.map((b) => b.arrived()));

    const prometheus = (await ask(QUERY)).responses[0]!;
    assert.equal(prometheus.status, 429);
    assert.match(errorMessage(prometheus, 'prometheus'), /agent busy is serving 3 requests through this kas node already \(KAS_AGENT_MAX_INFLIGHT\); retry shortly/);
    assert.equal(JSON.parse(prometheus.body.toString()).errorType, 'too_many_requests');
    assert.equal(prometheus.headers['retry-after'], '1');
    const kubernetes = (await ask(PODS)).responses[0]!;
    assert.equal(kubernetes.status, 429);
    assert.match(errorMessage(kubernetes, 'kubernetes'), /KAS_AGENT_MAX_INFLIGHT/);
    assert.equal(JSON.parse(kubernetes.body.toString()).reason, 'TooManyRequests');

    // A watch is a stream: bounded per token, not by this.
    const watch = held(`${PODS}?watch=1`, { watch: true });
    await watch.arrived();

    assert.equal((await refusals('agent_inflight')) - before, 2);
    busy[0]!.release();
    assert.equal((await busy[0]!.answer).responses[0]!.status, 200);
    assert.equal((await ask(QUERY)).responses[0]!.status, 200, 'room for one more');
    for (const b of busy.slice(1)) b.release();
    await Promise.all(busy.slice(1).map((b) => b.answer));
    const again = await Promise.all([ask(QUERY), ask(QUERY), ask(PODS)]);
    assert.deepEqual(again.map((a) => a.responses[0]!.status), [200, 200, 200], 'every slot came back');
    rogue.send({ type: 'end', id: rogue.requests.get(watch.tag)!.id });
    await watch.answer;
  });

  test('past KAS_MAX_WATCHES_PER_TOKEN open watches and follows: 429 for that token only, and room again once one closes', async () => {
    const before = await refusals('watches_per_token');
    const watches = [held(`${PODS}?watch=1`, { watch: true }), held('/api/v1/agents/busy/kubernetes/api/v1/namespaces/default/pods/web-0/log?follow=true', { watch: true })];
    await Promise.all(watches.map((w) => w.arrived()));
    const third = (await ask(`${PODS}?watch=true`)).responses[0]!;
    assert.equal(third.status, 429);
    assert.match(errorMessage(third, 'kubernetes'), /this API token holds 2 watches and log follows open on this kas node already \(KAS_MAX_WATCHES_PER_TOKEN\)/);
    assert.equal(third.headers['retry-after'], '5');
    assert.equal((await refusals('watches_per_token')) - before, 1);

    const someoneElse = held(`${PODS}?watch=1`, { watch: true, token: otherToken });
    await someoneElse.arrived();
    assert.equal((await ask(PODS)).responses[0]!.status, 200, 'a list is no watch');

    rogue.send({ type: 'end', id: rogue.requests.get(watches[0]!.tag)!.id });
    await watches[0]!.answer;
    const next = held(`${PODS}?watch=1`, { watch: true });
    await next.arrived();
    for (const w of [watches[1]!, someoneElse, next]) rogue.send({ type: 'end', id: rogue.requests.get(w.tag)!.id });
    await Promise.all([watches[1]!.answer, someoneElse.answer, next.answer]);
  });

  test('KAS_MAX_REQUEST_BODY and KAS_MAX_HEADER_SIZE are what the node enforces', async () => {
    const before = { body: await refusals('body_bytes'), head: await refusals('header_bytes') };
    const post = (bytes: number) => {
      const tag = `p${tags++}`;
      rogue.scripts.set(tag, [{ head: 200, headers: { 'content-type': 'text/plain' } }, { data: 'ok' }, 'end']);
      const body = `query=up&pad=${'x'.repeat(bytes - 13)}`;
      return exchange(port, [`POST /api/v1/agents/busy/prometheus/api/v1/query?case=${tag} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`], { timeoutMs: 5_000, idleMs: 5_000 });
    };
    assert.equal((await post(1024)).responses[0]!.status, 200);
    const tooLarge = (await post(1025)).responses[0]!;
    assert.equal(tooLarge.status, 413);
    assert.match(errorMessage(tooLarge, 'prometheus'), /request bodies above 1024 bytes \(KAS_MAX_REQUEST_BODY\) are refused/);
    assert.equal((await ask(QUERY, `X-Pad: ${'p'.repeat(3_000)}\r\n`)).responses[0]!.status, 200);
    const headTooLarge = (await ask(QUERY, `X-Pad: ${'p'.repeat(5_000)}\r\n`)).responses[0]!;
    assert.equal(headTooLarge.status, 431);
    assert.match(errorMessage(headTooLarge, 'prometheus'), /KAS_MAX_HEADER_SIZE/);
    assert.equal((await refusals('body_bytes')) - before.body, 1);
    assert.equal((await refusals('header_bytes')) - before.head, 1);
  });
});
