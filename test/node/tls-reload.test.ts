// Certificates rotate without a restart: after the files of the API and agents' ports are
// replaced, SIGHUP (or just waiting, since the files are watched) puts the new pair in place for
// new connections while the same process keeps serving and its agent stays connected. A pair
// that does not load leaves the old one serving. SIGHUP also re-reads the agent token store.
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { copyFile, mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { connect } from 'node:tls';
import { KasCluster, type KasNode } from '../support/kas.ts';
import { waitFor } from '../support/procs.ts';
import { makeTestPki, type TestPki } from '../support/tls.ts';

let dir: string;
let first: TestPki;
let second: TestPki;
let third: TestPki;
let cluster: KasCluster;
let node: KasNode;
let certFile: string;
let keyFile: string;

/** The fingerprint of the certificate a new TLS connection to `url`'s port is given. */
function servedFingerprint(url: string): Promise<string> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect({ host: hostname, port: Number(port), rejectUnauthorized: false, servername: 'localhost' }, () => {
      const fingerprint = socket.getPeerCertificate().fingerprint256;
      socket.end();
      resolve(fingerprint);
    });
    socket.once('error', reject);
  });
}

const fingerprintOf = (pki: TestPki) => new X509Certificate(pki.certPem).fingerprint256;

/** Replaces the served files the way a rotation does: each by an atomic rename. */
async function install(pki: TestPki, parts: ('cert' | 'key')[] = ['key', 'cert']): Promise<void> {
  for (const part of parts) {
    const [from, to] = part === 'cert' ? [pki.certFile, certFile] : [pki.keyFile, keyFile];
    await copyFile(from, `${to}.new`);
    await rename(`${to}.new`, to);
  }
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'kas-tls-reload-'));
  const made = await Promise.all(['a', 'b', 'c'].map((name) => makeTestPki(join(dir, name))));
  [first, second, third] = [made[0]!, made[1]!, made[2]!];
  certFile = join(dir, 'served.crt');
  keyFile = join(dir, 'served.key');
  await install(first);
  cluster = await KasCluster.start({
    caPem: [first.caPem, second.caPem, third.caPem].join('\n'),
    env: { KAS_API_TLS_CERT_FILE: certFile, KAS_API_TLS_KEY_FILE: keyFile, KAS_AGENT_TLS_CERT_FILE: certFile, KAS_AGENT_TLS_KEY_FILE: keyFile },
  });
  node = cluster.nodes[0]!;
});

after(async () => {
  await cluster?.stop();
  await rm(dir, { recursive: true, force: true });
});

describe('rotating the TLS files of a running node', () => {
  test('SIGHUP: new connections get the new certificate on both ports; the same process serves on, its agent connected', async () => {
    assert.equal(await servedFingerprint(node.apiUrl), fingerprintOf(first));
    const token = await cluster.registerAgent('steady');
    // The agent trusts every CA of this test, as an agent does during a CA rotation.
    await writeFile(join(dir, 'bundle.crt'), [first.caPem, second.caPem, third.caPem].join('\n'));
    const agent = await cluster.startAgent({ id: 'steady', token, env: { AGENTK_CA_FILE: join(dir, 'bundle.crt') } });
    const apiToken = await cluster.issueToken();

    await install(second);
    node.proc.signal('SIGHUP');
    await node.proc.waitForLine(/SIGHUP: re-read the agent token store and the TLS files/, 10_000);
    assert.equal(await servedFingerprint(node.apiUrl), fingerprintOf(second));
    assert.equal(await servedFingerprint(node.agentUrl.replace(/^wss:/, 'https:')), fingerprintOf(second));

    assert.equal(node.proc.exitStatus, undefined, 'kas is still running');
    assert.equal(agent.proc.exitStatus, undefined);
    const res = await cluster.fetch(0, '/api/v1/agents/steady', { token: apiToken });
    assert.equal(res.status, 200);
    assert.equal(((await res.json()) as { replicas: unknown[] }).replicas.length, 1, 'the agent that connected before the rotation is still connected');
  });

  test('without a signal the change of the files is noticed by itself', async () => {
    await install(third);
    await waitFor(async () => (await servedFingerprint(node.apiUrl)) === fingerprintOf(third), { timeoutMs: 8_000, what: 'the third certificate' });
    assert.equal(node.proc.exitStatus, undefined);
  });

  test('a half-written rotation (a key that does not match) is logged and the current certificate keeps serving', async () => {
    await install(first, ['cert']); // the key is still the third's
    await node.proc.waitForLine(/the new TLS files do not load/, 8_000);
    assert.equal(await servedFingerprint(node.apiUrl), fingerprintOf(third));
    await install(first, ['key']);
    await waitFor(async () => (await servedFingerprint(node.apiUrl)) === fingerprintOf(first), { timeoutMs: 8_000, what: 'the completed rotation' });
  });

  test('SIGHUP re-reads the agent token store', async () => {
    await cluster.registerAgent('second');
    node.proc.signal('SIGHUP');
    const line = await waitFor(() => node.proc.output().split('\n').filter((l) => /SIGHUP: re-read/.test(l)).find((l) => /"agents":2/.test(l)), {
      timeoutMs: 10_000,
      what: 'a SIGHUP log line counting both agents',
    });
    assert.match(line, /"agent_tokens":"reloaded"/);
  });
});
