// API callers authenticate with a JWT (HS256, API secret, aud "kas", exp required) sent as a
// bearer token or as the Basic-auth password. Anything else is 401; an agent outside the
// token's "agents" is 403. Errors speak the caller's dialect and carry X-Trace-Id.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { SignJWT } from 'jose';
import { KasCluster } from '../support/kas.ts';
import { rawRequest } from '../support/rawHttp.ts';
import { startFakeUpstream, type FakeUpstream } from '../support/upstream.ts';

const QUERY = '/prometheus/api/v1/query?query=up';

function b64url(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url');
}

function basic(user: string, password: string): string {
  return `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
}

interface Claims {
  sub?: string;
  agents?: string[];
  aud?: string | string[];
  exp?: number;
}

async function sign(secret: Uint8Array, claims: Claims, alg = 'HS256'): Promise<string> {
  return new SignJWT({ ...claims }).setProtectedHeader({ alg, typ: 'JWT' }).setIssuedAt().sign(secret);
}

describe('API tokens', () => {
  let cluster: KasCluster;
  let upstream: FakeUpstream;
  let apiSecret: Uint8Array;
  let privateSecret: Uint8Array;
  const inAnHour = () => Math.floor(Date.now() / 1000) + 3600;
  const valid = (claims: Claims = {}) =>
    sign(apiSecret, { sub: 'tester', agents: ['*'], aud: 'kas', exp: inAnHour(), ...claims });

  before(async () => {
    [cluster, upstream] = await Promise.all([KasCluster.start(), startFakeUpstream()]);
    const dataDir = cluster.env.KAS_DATA_DIR!;
    const readSecret = async (name: string) =>
      new Uint8Array(Buffer.from((await readFile(join(dataDir, name), 'utf8')).trim(), 'base64'));
    [apiSecret, privateSecret] = await Promise.all([readSecret('api-secret'), readSecret('private-secret')]);
    const [alpha, beta] = [await cluster.registerAgent('alpha'), await cluster.registerAgent('beta')];
    await Promise.all([
      cluster.startAgent({ id: 'alpha', token: alpha, prometheusUrl: upstream.url }),
      cluster.startAgent({ id: 'beta', token: beta, prometheusUrl: upstream.url }),
    ]);
  });
  after(async () => {
    await cluster?.stop();
    await upstream?.stop();
  });

  const get = (path: string, authorization?: string) =>
    cluster.fetch(0, path, { headers: authorization === undefined ? {} : { authorization } });

  async function listedIds(authorization: string): Promise<string[]> {
    const res = await get('/api/v1/agents', authorization);
    const text = await res.text();
    assert.equal(res.status, 200, text);
    return (JSON.parse(text) as { agents: { id: string }[] }).agents.map((a) => a.id);
  }

  /** A successful passthrough: the fake upstream's answer, served by the agent. */
  async function assertQueryOk(path: string, authorization: string): Promise<void> {
    const before = upstream.count('/api/v1/query');
    const res = await get(path, authorization);
    const text = await res.text();
    assert.equal(res.status, 200, text);
    assert.equal((JSON.parse(text) as { status: string }).status, 'success');
    assert.ok(res.headers.get('x-kas-agent-replica'), 'the answer came from an agent replica');
    assert.equal(upstream.count('/api/v1/query'), before + 1, 'the upstream was asked once');
  }

  async function assertError(res: Response, status: number, dialect: 'kas' | 'prometheus' | 'kubernetes', message: RegExp): Promise<void> {
    const text = await res.text();
    assert.equal(res.status, status, text);
    assert.match(res.headers.get('content-type') ?? '', /^application\/json/);
    const traceId = res.headers.get('x-trace-id') ?? '';
    assert.match(traceId, /^[0-9a-f]{32}$/);
    const body = JSON.parse(text) as Record<string, unknown>;
    if (dialect === 'prometheus') {
      assert.deepEqual(Object.keys(body).sort(), ['error', 'errorType', 'status']);
      assert.equal(body.status, 'error');
      assert.equal(typeof body.errorType, 'string');
      assert.match(body.error as string, message);
    } else if (dialect === 'kubernetes') {
      assert.equal(body.kind, 'Status');
      assert.equal(body.status, 'Failure');
      assert.equal(body.code, status);
      assert.equal(typeof body.reason, 'string');
      assert.match(body.message as string, message);
    } else {
      const error = body.error as { code: string; message: string; traceId: string };
      assert.deepEqual(Object.keys(body), ['error']);
      assert.equal(typeof error.code, 'string');
      assert.match(error.message, message);
      assert.equal(error.traceId, traceId, 'the body names the trace of X-Trace-Id');
    }
    if (status === 401) assert.match(res.headers.get('www-authenticate') ?? '', /Bearer/);
  }

  describe('a valid token', () => {
    test('is accepted as a bearer token on /api/v1/agents and on the Prometheus passthrough', async () => {
      const token = await cluster.issueToken({ agents: ['*'] });
      assert.deepEqual(await listedIds(`Bearer ${token}`), ['alpha', 'beta']);
      await assertQueryOk(`/api/v1/agents/alpha${QUERY}`, `Bearer ${token}`);
    });

    test('is accepted as the Basic-auth password, whatever the user name', async () => {
      const token = await cluster.issueToken({ agents: ['*'] });
      for (const user of ['kas', 'grafana', '', 'any user']) {
        assert.deepEqual(await listedIds(basic(user, token)), ['alpha', 'beta'], `user "${user}"`);
        await assertQueryOk(`/api/v1/agents/beta${QUERY}`, basic(user, token));
      }
    });

    test('in the URL, as promtool and Grafana send it (http://user:<JWT>@host/…), reaches the passthrough', async () => {
      const token = await valid();
      const url = new URL(`${cluster.nodes[0]!.apiUrl}/api/v1/agents/alpha${QUERY}`);
      url.username = 'promtool';
      url.password = token;
      // node:http turns URL credentials into Basic auth, as Go's and Ruby's HTTP clients do.
      const res = await rawRequest(url.toString());
      assert.equal(res.status, 200, res.body.toString());
      assert.equal((JSON.parse(res.body.toString()) as { status: string }).status, 'success');
    });
  });

  describe('is 401, in the caller\'s dialect, for', () => {
    const cases: [string, () => Promise<string | undefined>, RegExp][] = [
      ['no Authorization header', async () => undefined, /no API token/],
      ['an empty bearer token', async () => 'Bearer ', /no API token/],
      ['an unknown scheme', async () => `Token ${await valid()}`, /no API token/],
      ['garbage', async () => 'Bearer not-a-jwt', /malformed/],
      ['garbage as Basic password', async () => basic('u', 'garbage.garbage.garbage'), /malformed/],
      ['Basic auth that is not base64 of user:password', async () => 'Basic !!!', /no API token/],
      ['an expired token', async () => `Bearer ${await valid({ exp: Math.floor(Date.now() / 1000) - 60 })}`, /expired/],
      [
        'an unsigned token (alg: none)',
        async () => {
          const claims = { sub: 'tester', agents: ['*'], aud: 'kas', exp: inAnHour() };
          return `Bearer ${b64url({ alg: 'none', typ: 'JWT' })}.${b64url(claims)}.`;
        },
        /.+/,
      ],
      [
        'alg: none as the Basic password',
        async () => {
          const claims = { sub: 'tester', agents: ['*'], aud: 'kas', exp: inAnHour() };
          return basic('u', `${b64url({ alg: 'none' })}.${b64url(claims)}.`);
        },
        /.+/,
      ],
      [
        'a token signed with another key',
        async () => `Bearer ${await sign(randomBytes(32), { sub: 'tester', agents: ['*'], aud: 'kas', exp: inAnHour() })}`,
        /signature/,
      ],
      [
        'a token signed with the kas-to-kas secret',
        async () => `Bearer ${await sign(privateSecret, { sub: 'tester', agents: ['*'], aud: 'kas', exp: inAnHour() })}`,
        /signature/,
      ],
      [
        'a token with the right key but HS512',
        async () => `Bearer ${await sign(apiSecret, { sub: 'tester', agents: ['*'], aud: 'kas', exp: inAnHour() }, 'HS512')}`,
        /HS256/,
      ],
      ['a token for another audience', async () => `Bearer ${await valid({ aud: 'kas-private' })}`, /aud/],
      [
        'a token without an audience',
        async () => `Bearer ${await sign(apiSecret, { sub: 'tester', agents: ['*'], exp: inAnHour() })}`,
        /aud/,
      ],
      [
        'a token without exp',
        async () => `Bearer ${await sign(apiSecret, { sub: 'tester', agents: ['*'], aud: 'kas' })}`,
        /exp/,
      ],
      [
        'a token without sub',
        async () => `Bearer ${await sign(apiSecret, { agents: ['*'], aud: 'kas', exp: inAnHour() })}`,
        /sub/,
      ],
      [
        'a token without agents',
        async () => `Bearer ${await sign(apiSecret, { sub: 'tester', aud: 'kas', exp: inAnHour() })}`,
        /agents/,
      ],
    ];
    for (const [what, authorization, message] of cases) {
      test(what, async () => {
        const auth = await authorization();
        const queriesBefore = upstream.count();
        await assertError(await get('/api/v1/agents', auth), 401, 'kas', message);
        await assertError(await get('/api/v1/agents/alpha', auth), 401, 'kas', message);
        await assertError(await get(`/api/v1/agents/alpha${QUERY}`, auth), 401, 'prometheus', message);
        await assertError(await get('/api/v1/agents/alpha/kubernetes/api/v1/namespaces', auth), 401, 'kubernetes', message);
        assert.equal(upstream.count(), queriesBefore, 'nothing reached the upstream');
      });
    }
  });

  describe('the token\'s agents scope', () => {
    test('an agent outside it is 403 on the passthrough and on the agent, and the upstream is not asked', async () => {
      const token = await cluster.issueToken({ agents: ['alpha'] });
      const before = upstream.count();
      await assertError(await get(`/api/v1/agents/beta${QUERY}`, `Bearer ${token}`), 403, 'prometheus', /agent beta/);
      await assertError(await get('/api/v1/agents/beta', `Bearer ${token}`), 403, 'kas', /agent beta/);
      await assertError(await get('/api/v1/agents/beta/kubernetes/api/v1/pods', `Bearer ${token}`), 403, 'kubernetes', /agent beta/);
      // Not registered at all: still 403, so a token cannot probe which agents exist.
      await assertError(await get(`/api/v1/agents/ghost${QUERY}`, `Bearer ${token}`), 403, 'prometheus', /agent ghost/);
      assert.equal(upstream.count(), before);
      await assertQueryOk(`/api/v1/agents/alpha${QUERY}`, `Bearer ${token}`);
    });

    test('the same holds for the Basic-auth password', async () => {
      const token = await cluster.issueToken({ agents: ['beta'] });
      await assertError(await get(`/api/v1/agents/alpha${QUERY}`, basic('x', token)), 403, 'prometheus', /agent alpha/);
      await assertQueryOk(`/api/v1/agents/beta${QUERY}`, basic('x', token));
    });

    test('["*"] reaches every agent', async () => {
      const token = await valid({ agents: ['*'] });
      await assertQueryOk(`/api/v1/agents/alpha${QUERY}`, `Bearer ${token}`);
      await assertQueryOk(`/api/v1/agents/beta${QUERY}`, `Bearer ${token}`);
    });

    test('an empty list reaches none', async () => {
      const token = await valid({ agents: [] });
      assert.deepEqual(await listedIds(`Bearer ${token}`), []);
      await assertError(await get(`/api/v1/agents/alpha${QUERY}`, `Bearer ${token}`), 403, 'prometheus', /agent alpha/);
    });

    test('/api/v1/agents lists only the agents in scope', async () => {
      assert.deepEqual(await listedIds(`Bearer ${await cluster.issueToken({ agents: ['alpha'] })}`), ['alpha']);
      assert.deepEqual(await listedIds(`Bearer ${await valid({ agents: ['beta', 'not-connected'] })}`), ['beta']);
      assert.deepEqual(await listedIds(basic('x', await valid({ agents: ['alpha', 'beta'] }))), ['alpha', 'beta']);
    });
  });
});
