// Every row of the contract's "Errors kas itself produces", answered in the caller's dialect
// with a message that says what happened and what to do; and upstream errors, which are not
// kas's, pass through untouched.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { type AgentReplica, KasCluster } from '../support/kas.ts';
import { freePort } from '../support/ports.ts';
import { openResponse } from '../support/rawHttp.ts';
import { startFakeUpstream, type FakeUpstream, type UpstreamRequest } from '../support/upstream.ts';

type Dialect = 'kas' | 'prometheus' | 'kubernetes';

/** Checks status, dialect, X-Trace-Id and message of an error kas produced; returns the message. */
async function assertKasError(res: Response, status: number, dialect: Dialect, message?: RegExp): Promise<string> {
  const text = await res.text();
  assert.equal(res.status, status, text);
  assert.match(res.headers.get('content-type') ?? '', /^application\/json/, text);
  const traceId = res.headers.get('x-trace-id') ?? '';
  assert.match(traceId, /^[0-9a-f]{32}$/);
  const body = JSON.parse(text) as Record<string, any>;
  let said: string;
  if (dialect === 'prometheus') {
    assert.deepEqual(Object.keys(body).sort(), ['error', 'errorType', 'status'], text);
    assert.equal(body.status, 'error');
    assert.equal(typeof body.errorType, 'string');
    said = body.error;
  } else if (dialect === 'kubernetes') {
    assert.equal(body.kind, 'Status', text);
    assert.equal(body.status, 'Failure');
    assert.equal(body.code, status);
    assert.equal(typeof body.reason, 'string');
    said = body.message;
  } else {
    assert.deepEqual(Object.keys(body), ['error'], text);
    assert.equal(typeof body.error.code, 'string');
    assert.equal(body.error.traceId, traceId);
    said = body.error.message;
  }
  assert.equal(typeof said, 'string');
  if (message) assert.match(said, message);
  return said;
}

describe('errors kas produces', () => {
  let cluster: KasCluster;
  let upstream: FakeUpstream;
  let token: string;
  const agentTokens: Record<string, string> = {};
  const mortal: AgentReplica[] = [];

  // kas-0 gives up quickly (routing 1 s, requests 2 s); kas-1 waits the default 20 s for a replica.
  before(async () => {
    [cluster, upstream] = await Promise.all([
      KasCluster.start({ env: { KAS_ROUTING_TIMEOUT: '1s', KAS_REQUEST_TIMEOUT: '2s' } }),
      startFakeUpstream(),
    ]);
    const ids = ['ok', 'absent', 'closed', 'noprom', 'late', 'mortal-early', 'mortal-mid'];
    const [closedPort] = await Promise.all([
      freePort(),
      cluster.addNode({ KAS_ROUTING_TIMEOUT: '20s', KAS_REQUEST_TIMEOUT: '60s' }),
      ...ids.map(async (id) => (agentTokens[id] = await cluster.registerAgent(id))),
      cluster.issueToken({ agents: ['*'] }).then((t) => (token = t)),
    ]);
    const started = await Promise.all([
      cluster.startAgent({ id: 'ok', token: agentTokens.ok!, prometheusUrl: upstream.url }),
      cluster.startAgent({ id: 'closed', token: agentTokens.closed!, prometheusUrl: `http://127.0.0.1:${closedPort}` }),
      cluster.startAgent({ id: 'noprom', token: agentTokens.noprom! }),
      cluster.startAgent({ id: 'mortal-early', token: agentTokens['mortal-early']!, prometheusUrl: upstream.url }),
      cluster.startAgent({ id: 'mortal-mid', token: agentTokens['mortal-mid']!, prometheusUrl: upstream.url }),
    ]);
    mortal.push(started[3]!, started[4]!);
  });
  after(async () => {
    await cluster?.stop();
    await upstream?.stop();
  });

  const prom = (agentId: string, params: string) => `/api/v1/agents/${agentId}/prometheus/api/v1/query?${params}`;
  const tagged = (tag: string) => (r: UpstreamRequest) => r.params.get('case') === tag;

  test('401 without a valid token, in each dialect', async () => {
    await assertKasError(await cluster.fetch(0, '/api/v1/agents'), 401, 'kas', /Authorization: Bearer/);
    await assertKasError(await cluster.fetch(0, prom('ok', 'query=up')), 401, 'prometheus', /Authorization: Bearer/);
    await assertKasError(await cluster.fetch(0, '/api/v1/agents/ok/kubernetes/api/v1/pods'), 401, 'kubernetes', /Authorization: Bearer/);
  });

  test('403 for an agent outside the token\'s scope and for a path that is not allowed', async () => {
    const narrow = await cluster.issueToken({ agents: ['absent'] });
    await assertKasError(await cluster.fetch(0, prom('ok', 'query=up'), { token: narrow }), 403, 'prometheus', /token that lists it/);
    await assertKasError(await cluster.fetch(0, '/api/v1/agents/ok', { token: narrow }), 403, 'kas', /token that lists it/);
    await assertKasError(await cluster.fetch(0, '/api/v1/agents/ok/kubernetes/api/v1/pods', { token: narrow }), 403, 'kubernetes', /token that lists it/);
    await assertKasError(await cluster.fetch(0, '/api/v1/agents/ok/prometheus/federate', { token }), 403, 'prometheus', /not allowed/);
  });

  test('404 for an agent that is not registered, saying how to register it', async () => {
    await assertKasError(await cluster.fetch(0, prom('ghost', 'query=up'), { token }), 404, 'prometheus', /ghost is not registered.*kas agent register ghost/);
    await assertKasError(await cluster.fetch(0, '/api/v1/agents/ghost', { token }), 404, 'kas', /ghost is not registered.*kas agent register ghost/);
    await assertKasError(await cluster.fetch(0, '/api/v1/agents/ghost/kubernetes/api/v1/pods', { token }), 404, 'kubernetes');
  });

  test('503 with Retry-After when no replica connects within KAS_ROUTING_TIMEOUT', async () => {
    const started = Date.now();
    const res = await cluster.fetch(0, prom('absent', 'query=up'), { token });
    const waited = Date.now() - started;
    const retryAfter = res.headers.get('retry-after');
    await assertKasError(res, 503, 'prometheus', /absent is registered but no replica has connected in 1s; is agentk running and able to reach kas\?/);
    assert.match(retryAfter ?? '', /^[1-9]\d*$/, `Retry-After: ${retryAfter}`);
    assert.ok(waited >= 900 && waited < 5_000, `answered after ${waited} ms, about KAS_ROUTING_TIMEOUT`);
  });

  test('503 with Retry-After when the connected replicas do not offer the upstream, saying what to configure', async () => {
    const res = await cluster.fetch(0, prom('noprom', 'query=up'), { token });
    const retryAfter = res.headers.get('retry-after');
    await assertKasError(res, 503, 'prometheus', /noprom has 1 replica\(s\) connected but none offers prometheus; configure prometheus/);
    assert.match(retryAfter ?? '', /^[1-9]\d*$/);
  });

  test('a request waiting for a replica is served once one connects', async () => {
    const pending = cluster.fetch(1, prom('late', 'query=up&case=late'), { token });
    await sleep(300);
    const replica = await cluster.startAgent({ id: 'late', token: agentTokens.late!, node: 1, prometheusUrl: upstream.url });
    const res = await pending;
    const text = await res.text();
    assert.equal(res.status, 200, text);
    assert.equal(res.headers.get('x-kas-agent-replica'), replica.name);
    assert.equal((JSON.parse(text) as { status: string }).status, 'success');
    assert.equal(upstream.requests.filter(tagged('late')).length, 1);
  });

  test('502 when the agent cannot reach its upstream', async () => {
    await assertKasError(
      await cluster.fetch(0, prom('closed', 'query=up'), { token }),
      502,
      'prometheus',
      /agent closed could not reach its prometheus: .*ECONNREFUSED/,
    );
  });

  test('502 when the replica dies before the upstream answered', async () => {
    const pending = cluster.fetch(0, prom('mortal-early', 'query=slow&ms=30000&case=mortal-early'), { token });
    await upstream.waitForRequest(tagged('mortal-early'));
    await mortal[0]!.proc.kill();
    await assertKasError(await pending, 502, 'prometheus', /mortal-early .*went away.*retry/);
    const aborted = await upstream.waitForAbort(5_000, tagged('mortal-early'));
    assert.equal(aborted.bytesWritten, 0);
  });

  test('a response is cut short, not completed, when the replica dies mid-body', async () => {
    const url = `${cluster.nodes[0]!.apiUrl}${prom('mortal-mid', 'query=big&bytes=104857600&case=mortal-mid')}`;
    const { res } = await openResponse(url, { headers: { authorization: `Bearer ${token}` } });
    assert.equal(res.statusCode, 200);
    const expected = Number(res.headers['content-length']);
    let received = 0;
    res.on('data', (chunk: Buffer) => (received += chunk.byteLength));
    await once(res, 'data');
    res.pause();
    // Listening before the kill: kas may cut the answer before the kill is seen to be over, and a
    // response emits no 'error' to nobody (node:http), so a later listener would wait forever.
    const ended = new Promise<string>((resolve) => {
      res.once('end', () => resolve('end'));
      res.once('error', () => resolve('error'));
      res.once('aborted', () => resolve('aborted'));
      res.once('close', () => resolve(res.complete ? 'end' : 'closed'));
    });
    await mortal[1]!.proc.kill();
    res.resume();
    const outcome = await ended;
    assert.notEqual(outcome, 'end', 'the caller must not take a truncated body for a whole one');
    assert.ok(received < expected, `got ${received} of ${expected} bytes`);
    await upstream.waitForAbort(5_000, tagged('mortal-mid'));
  });

  test('504 after KAS_REQUEST_TIMEOUT, with the upstream request aborted', async () => {
    const started = Date.now();
    const res = await cluster.fetch(0, prom('ok', 'query=slow&ms=30000&case=deadline'), { token });
    const waited = Date.now() - started;
    await assertKasError(res, 504, 'prometheus', /2s/);
    assert.ok(waited >= 1_900 && waited < 8_000, `answered after ${waited} ms, about KAS_REQUEST_TIMEOUT`);
    const aborted = await upstream.waitForAbort(5_000, tagged('deadline'));
    assert.equal(aborted.bytesWritten, 0);
  });

  describe('upstream errors pass through unchanged', () => {
    for (const code of [400, 422, 500, 503]) {
      test(`${code} from Prometheus`, async () => {
        const params = `query=status&code=${code}`;
        const direct = await fetch(`${upstream.url}/api/v1/query?${params}`);
        const viaKas = await cluster.fetch(0, prom('ok', params), { token });
        const [directBody, kasBody] = await Promise.all([direct.text(), viaKas.text()]);
        assert.equal(viaKas.status, code, kasBody);
        assert.equal(kasBody, directBody);
        assert.equal(viaKas.headers.get('content-type'), direct.headers.get('content-type'));
        assert.equal(viaKas.headers.get('retry-after'), null, 'kas adds no Retry-After to an upstream error');
        assert.ok(viaKas.headers.get('x-kas-agent-replica'), 'the answer came from the agent');
      });
    }

    test('a 404 from Prometheus is not mistaken for an unregistered agent', async () => {
      const path = '/api/v1/labels';
      const direct = await fetch(`${upstream.url}${path}`);
      const viaKas = await cluster.fetch(0, `/api/v1/agents/ok/prometheus${path}`, { token });
      assert.equal(viaKas.status, 404);
      assert.equal(await viaKas.text(), await direct.text());
      assert.ok(viaKas.headers.get('x-kas-agent-replica'));
    });
  });

  test('the node still serves normal queries', async () => {
    const res = await cluster.fetch(0, prom('ok', 'query=up'), { token });
    assert.equal(res.status, 200, await res.text());
  });
});
