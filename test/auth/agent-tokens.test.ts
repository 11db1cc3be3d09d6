// Agents authenticate the WebSocket handshake with a `kasat_` token of which kas stores only a
// SHA-256; a bad or revoked token gets `unauthorized`, revocation cuts replicas on every node,
// and the private (kas-to-kas) port answers nothing without a kas-private JWT.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { SignJWT } from 'jose';
import { io, type Socket } from 'socket.io-client';
import { PROTOCOL_VERSION } from '../../protocol/messages.ts';
import { type AgentReplica, KasCluster, runKas } from '../support/kas.ts';
import { waitFor } from '../support/procs.ts';
import { startFakeUpstream, type FakeUpstream } from '../support/upstream.ts';

const TOKEN_LINE = /^kasat_[A-Za-z0-9_-]{43}\n$/;

type Handshake = { connected: Socket } | { refused: string };

/** Dials the agent port the way agentk does, once, and reports how the handshake ended. */
function dial(agentUrl: string, auth: Record<string, unknown> | undefined): Promise<Handshake> {
  const socket = io(agentUrl, { transports: ['websocket'], reconnection: false, forceNew: true, timeout: 5_000, auth });
  return new Promise((resolve) => {
    socket.once('connect', () => resolve({ connected: socket }));
    socket.once('connect_error', (error) => {
      socket.close();
      resolve({ refused: error.message });
    });
  });
}

function handshake(token: unknown, extra: Record<string, unknown> = {}) {
  return { token, replica: `probe-${randomBytes(3).toString('hex')}`, version: 'test', capabilities: ['prometheus'], protocol: PROTOCOL_VERSION, ...extra };
}

async function readSecret(dataDir: string, name: string): Promise<Uint8Array> {
  return new Uint8Array(Buffer.from((await readFile(join(dataDir, name), 'utf8')).trim(), 'base64'));
}

describe('agent tokens and kas-to-kas tokens, on a cluster of two nodes', () => {
  let cluster: KasCluster;
  let upstream: FakeUpstream;
  let apiToken: string;
  let survivorToken: string;
  let privateSecret: Uint8Array;
  let apiSecret: Uint8Array;
  const sockets: Socket[] = [];

  before(async () => {
    [cluster, upstream] = await Promise.all([KasCluster.start({ nodes: 2 }), startFakeUpstream()]);
    apiToken = await cluster.issueToken({ agents: ['*'] });
    survivorToken = await cluster.registerAgent('survivor');
    await cluster.startAgent({ id: 'survivor', token: survivorToken, node: 1, prometheusUrl: upstream.url });
    privateSecret = await readSecret(cluster.env.KAS_DATA_DIR!, 'private-secret');
    apiSecret = await readSecret(cluster.env.KAS_DATA_DIR!, 'api-secret');
  });
  after(async () => {
    for (const socket of sockets) socket.close();
    await cluster?.stop();
    await upstream?.stop();
  });

  async function listed(node: number): Promise<Record<string, string[]>> {
    const res = await cluster.fetch(node, '/api/v1/agents', { token: apiToken });
    assert.equal(res.status, 200);
    const body = (await res.json()) as { agents: { id: string; replicas: { replica: string }[] }[] };
    return Object.fromEntries(body.agents.map((a) => [a.id, a.replicas.map((r) => r.replica).sort()]));
  }

  describe('kas agent register', () => {
    test('prints the token alone on stdout and stores only its SHA-256', async () => {
      const result = await runKas(['agent', 'register', 'fresh'], cluster.env);
      assert.equal(result.code, 0, result.stderr);
      assert.match(result.stdout, TOKEN_LINE);
      const token = result.stdout.trim();
      assert.ok(!result.stderr.includes(token), 'the token is not repeated on stderr');

      const dataDir = cluster.env.KAS_DATA_DIR!;
      const store = JSON.parse(await readFile(join(dataDir, 'agents.json'), 'utf8')) as {
        agents: Record<string, Record<string, string>>;
      };
      const entry = store.agents.fresh!;
      assert.ok(entry, 'the agent is in the store');
      assert.ok(Object.values(entry).includes(createHash('sha256').update(token).digest('hex')), JSON.stringify(entry));
      // Neither the token nor its secret part is stored anywhere in the data dir.
      const secretPart = token.slice('kasat_'.length);
      for (const name of await readdir(dataDir)) {
        const text = await readFile(join(dataDir, name), 'utf8').catch(() => '');
        assert.ok(!text.includes(secretPart), `${name} does not hold the token`);
      }
    });

    test('refuses an invalid agent id or a second registration, printing nothing on stdout', async () => {
      for (const id of ['bad id', 'a/b', 'x'.repeat(64)]) {
        const result = await runKas(['agent', 'register', id], cluster.env);
        assert.notEqual(result.code, 0, `register "${id}"`);
        assert.equal(result.stdout, '');
        assert.match(result.stderr, /1-63 characters/);
      }
      const again = await runKas(['agent', 'register', 'survivor'], cluster.env);
      assert.notEqual(again.code, 0);
      assert.equal(again.stdout, '');
      assert.match(again.stderr, /already registered/);
      const probe = await dial(cluster.nodes[0]!.agentUrl, handshake(survivorToken));
      assert.ok('connected' in probe, 'the first token still works');
      probe.connected.close();
    });

    test('the token never reaches kas logs', () => {
      for (const node of cluster.nodes) assert.ok(!node.proc.output().includes(survivorToken.slice(6)), node.name);
    });
  });

  describe('the agent handshake', () => {
    test('a valid token connects, and the agent id comes from the token, not from what the agent says', async () => {
      const probe = await dial(cluster.nodes[0]!.agentUrl, handshake(survivorToken, { agentId: 'impostor', agent: 'impostor', replica: 'claims-to-be-impostor' }));
      if (!('connected' in probe)) return assert.fail(`refused: ${probe.refused}`);
      sockets.push(probe.connected);
      await waitFor(async () => (await listed(0)).survivor?.includes('claims-to-be-impostor'), { what: 'the probe listed under survivor' });
      assert.equal((await listed(0)).impostor, undefined);
      probe.connected.close();
      await waitFor(async () => !(await listed(0)).survivor?.includes('claims-to-be-impostor'), { what: 'the probe gone' });
    });

    const bad: [string, () => Record<string, unknown> | undefined][] = [
      ['no auth at all', () => undefined],
      ['no token', () => handshake(undefined)],
      ['a token that is not a string', () => handshake(42)],
      ['garbage', () => handshake('hunter2')],
      ['a well-formed token nobody registered', () => handshake(`kasat_${randomBytes(32).toString('base64url')}`)],
      ['a registered token with one character changed', () => handshake(survivorToken.slice(0, -1) + (survivorToken.endsWith('A') ? 'B' : 'A'))],
      ['the stored SHA-256 instead of the token', () => handshake(createHash('sha256').update(survivorToken).digest('hex'))],
      ['a registered token with whitespace around it', () => handshake(` ${survivorToken} `)],
      ['an API token', () => handshake(apiToken)],
    ];
    for (const [what, auth] of bad) {
      test(`${what} gets connect_error "unauthorized"`, async () => {
        for (const node of cluster.nodes) {
          const result = await dial(node.agentUrl, auth());
          if ('connected' in result) result.connected.close();
          assert.deepEqual(result, { refused: 'unauthorized' }, `through ${node.name}`);
        }
      });
    }
  });

  describe('kas agent revoke', () => {
    let doomedToken: string;
    let doomed: AgentReplica[];

    before(async () => {
      doomedToken = await cluster.registerAgent('doomed');
      doomed = await Promise.all([0, 1].map((node) => cluster.startAgent({ id: 'doomed', token: doomedToken, node, prometheusUrl: upstream.url })));
      await cluster.waitForReplicas('doomed', 2, apiToken, 0);
      await cluster.waitForReplicas('doomed', 2, apiToken, 1);
      await cluster.waitForReplicas('survivor', 1, apiToken, 0);
    });

    test('disconnects the agent\'s replicas on every node, and their reconnects are refused', async () => {
      const res = await cluster.fetch(0, '/api/v1/agents/doomed/prometheus/api/v1/query?query=up', { token: apiToken });
      assert.equal(res.status, 200, await res.text());

      await cluster.revokeAgent('doomed');
      await Promise.all(
        doomed.map(async (replica) => {
          await replica.proc.waitForLine((l) => l.includes('"msg":"disconnected from kas"') && l.includes('io server disconnect'), 10_000);
          await replica.proc.waitForLine(/kas refused the agent token/, 10_000);
        }),
      );
      for (const node of [0, 1]) {
        await waitFor(async () => (await listed(node)).doomed === undefined, { what: `doomed gone from ${cluster.nodes[node]!.name}` });
        assert.equal((await listed(node)).survivor?.length, 1, 'the other agent stays connected');
      }
      const after = await cluster.fetch(0, '/api/v1/agents/doomed/prometheus/api/v1/query?query=up', { token: apiToken });
      assert.equal(after.status, 404, await after.text());
      const survivor = await cluster.fetch(0, '/api/v1/agents/survivor/prometheus/api/v1/query?query=up', { token: apiToken });
      assert.equal(survivor.status, 200, await survivor.text());
    });

    test('the revoked token gets connect_error "unauthorized" on every node', async () => {
      for (const node of cluster.nodes) {
        const result = await dial(node.agentUrl, handshake(doomedToken));
        if ('connected' in result) result.connected.close();
        assert.deepEqual(result, { refused: 'unauthorized' }, `through ${node.name}`);
      }
    });
  });

  describe('the private port', () => {
    const path = '/private/v1/agents/survivor/prometheus/api/v1/query?query=up';
    const now = () => Math.floor(Date.now() / 1000);

    function privateJwt(secret: Uint8Array, claims: { aud?: string; iat?: number; exp?: number; agent?: string }) {
      const { aud = 'kas-private', iat = now(), exp = now() + 30, agent = 'survivor' } = claims;
      return new SignJWT({ agent }).setProtectedHeader({ alg: 'HS256' }).setSubject('tester').setAudience(aud).setIssuedAt(iat).setExpirationTime(exp).sign(secret);
    }

    async function assertRefused(authorization: string | undefined, url = `${cluster.nodes[1]!.privateUrl}${path}`): Promise<void> {
      const before = upstream.count();
      const res = await fetch(url, { headers: authorization ? { authorization } : {} });
      const text = await res.text();
      assert.equal(res.status, 401, text);
      assert.ok(!text.includes('survivor-'), 'nothing about the agent leaks');
      assert.equal(upstream.count(), before, 'nothing reached the agent');
    }

    test('answers a valid kas-private JWT (the control for the cases below)', async () => {
      const res = await fetch(`${cluster.nodes[1]!.privateUrl}${path}`, { headers: { authorization: `Bearer ${await privateJwt(privateSecret, {})}` } });
      assert.equal(res.status, 200, await res.text());
    });

    test('answers 401 without a token, on any path', async () => {
      for (const p of [path, '/', '/private/v1/agents', '/api/v1/agents', '/metrics']) {
        await assertRefused(undefined, `${cluster.nodes[1]!.privateUrl}${p}`);
      }
    });

    test('answers 401 to a JWT with the wrong audience', async () => {
      await assertRefused(`Bearer ${await privateJwt(privateSecret, { aud: 'kas' })}`);
    });

    test('answers 401 to an API token', async () => {
      await assertRefused(`Bearer ${apiToken}`);
      await assertRefused(`Bearer ${await privateJwt(apiSecret, {})}`);
    });

    test('answers 401 to an expired JWT or one that lives longer than 60 s', async () => {
      await assertRefused(`Bearer ${await privateJwt(privateSecret, { iat: now() - 120, exp: now() - 60 })}`);
      await assertRefused(`Bearer ${await privateJwt(privateSecret, { exp: now() + 3600 })}`);
    });

    test('answers 401 to an unsigned JWT', async () => {
      const part = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
      const claims = { sub: 'tester', agent: 'survivor', aud: 'kas-private', iat: now(), exp: now() + 30 };
      await assertRefused(`Bearer ${part({ alg: 'none' })}.${part(claims)}.`);
    });
  });
});
