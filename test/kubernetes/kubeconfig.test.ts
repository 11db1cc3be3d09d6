// agentk takes every kubeconfig kubectl takes, with the same meaning of each field: a plain
// http:// API server (no TLS, and no credentials sent, as kubectl sends none over http), a
// `kubectl proxy` config with no user at all (here in front of a real `kubectl proxy`), and an
// https:// cluster with a CA but no user (the CA still verifies the server). And its TLS
// material is read once and kept by identity until the files change, not hashed per request.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Agent } from 'node:http';
import type { AgentOptions } from 'node:https';
import { promisify } from 'node:util';
import { KubeConfig } from '@kubernetes/client-node';
import { ClusterAccess } from '../../agent/modules/kubernetes/clusterAccess.ts';
import { makePod, startKubeSim, type KubeSim } from '../../demo/k8sSim.ts';
import { KasCluster } from '../support/kas.ts';
import { freePort } from '../support/ports.ts';
import { Proc, waitFor } from '../support/procs.ts';
import { makeTestPki, type TestPki } from '../support/tls.ts';
import { requireTool } from '../support/tools.ts';

const run = promisify(execFile);
const TOKEN = 'sim-token-for-kubeconfig-tests';

let dir: string;
let pki: TestPki;
let kubectl: string;
let cluster: KasCluster;
let apiToken: string;
const sims: KubeSim[] = [];

async function sim(options: { tls?: boolean; anonymous?: boolean }): Promise<KubeSim> {
  const started = await startKubeSim({ token: TOKEN, anonymous: options.anonymous, ...(options.tls ? { tls: pki } : {}) });
  started.api.create('pods', makePod({ name: 'web-0', namespace: 'shop' }));
  sims.push(started);
  return started;
}

function kubeconfig(server: string, options: { user?: Record<string, unknown>; ca?: string } = {}): string {
  return JSON.stringify({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'c', cluster: { server, ...(options.ca ? { 'certificate-authority': options.ca } : {}) } }],
    ...(options.user ? { users: [{ name: 'u', user: options.user }] } : {}),
    contexts: [{ name: 'ctx', context: { cluster: 'c', ...(options.user ? { user: 'u' } : {}) } }],
    'current-context': 'ctx',
  });
}

/** Starts an agent with this kubeconfig and lists pods of namespace shop through kas. */
async function listThroughKas(id: string, config: string): Promise<{ status: number; names: string[] }> {
  const file = join(dir, `${id}.kubeconfig`);
  await writeFile(file, config);
  const token = await cluster.registerAgent(id);
  await cluster.startAgent({ id, token, configYaml: `kubernetes:\n  kubeconfig: ${file}\n` });
  const res = await cluster.fetch(0, `/api/v1/agents/${id}/kubernetes/api/v1/namespaces/shop/pods`, { token: apiToken });
  const body = (await res.json()) as { items?: { metadata: { name: string } }[] };
  return { status: res.status, names: (body.items ?? []).map((p) => p.metadata.name) };
}

/** The options a pool was made with (https.Agent keeps them). */
function tlsOptions(agent: Agent): AgentOptions {
  return (agent as Agent & { options: AgentOptions }).options;
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'kas-kubeconfig-'));
  [pki, kubectl] = await Promise.all([makeTestPki(join(dir, 'pki')), requireTool('kubectl')]);
  cluster = await KasCluster.start({ env: { KAS_ROUTING_TIMEOUT: '5s' } });
  apiToken = await cluster.issueToken();
});

after(async () => {
  await cluster?.stop();
  await Promise.all(sims.map((s) => s.stop()));
  await rm(dir, { recursive: true, force: true });
});

describe('agentk with a kubeconfig kubectl accepts', () => {
  test('a plain http:// server with a user: served, and like kubectl agentk sends it no credentials', async () => {
    const plain = await sim({ anonymous: true });
    const config = kubeconfig(plain.url, { user: { token: TOKEN } });
    const result = await listThroughKas('plain-http', config);
    assert.equal(result.status, 200);
    assert.deepEqual(result.names, ['web-0']);
    const agentRequests = plain.api.requests().filter((r) => r.path === '/api/v1/namespaces/shop/pods');
    assert.equal(agentRequests.length, 1);
    assert.equal(agentRequests[0]!.headers.authorization, undefined, 'no token over plain http');

    // kubectl, given the same kubeconfig, does the same: it reaches the server and sends no token.
    const file = join(dir, 'kubectl-plain.kubeconfig');
    await writeFile(file, config);
    plain.api.resetRequests();
    const { stdout } = await run(kubectl, ['--kubeconfig', file, '--cache-dir', join(dir, 'cache'), 'get', 'pods', '-n', 'shop', '-o', 'name']);
    assert.equal(stdout.trim(), 'pod/web-0');
    assert.ok(plain.api.requests().every((r) => r.headers.authorization === undefined));
  });

  test('a kubectl proxy config (http://127.0.0.1:<port>, no user) in front of a real kubectl proxy', async () => {
    const secure = await sim({ tls: true });
    const proxied = join(dir, 'proxied.kubeconfig');
    await writeFile(proxied, secure.kubeconfig({ caFile: pki.caFile, token: TOKEN }));
    const port = await freePort();
    const proxy = Proc.start('kubectl proxy', kubectl, ['proxy', '--kubeconfig', proxied, '--address', '127.0.0.1', '--port', String(port)]);
    try {
      await proxy.waitForLine(/Starting to serve/, 15_000);
      const result = await listThroughKas('via-proxy', kubeconfig(`http://127.0.0.1:${port}`));
      assert.equal(result.status, 200);
      assert.deepEqual(result.names, ['web-0']);
      // The proxy added its own credentials; a watch streams through it too.
      const res = await cluster.fetch(0, '/api/v1/agents/via-proxy/kubernetes/api/v1/namespaces/shop/pods?watch=1&resourceVersion=0', { token: apiToken });
      assert.equal(res.status, 200);
      const reader = res.body!.getReader();
      const first = new TextDecoder().decode((await reader.read()).value);
      assert.match(first, /"type":"ADDED".*"web-0"/);
      await reader.cancel();
    } finally {
      await proxy.stop();
    }
  });

  test('an https:// cluster with a CA and no user: the CA verifies the server', async () => {
    const secure = await sim({ tls: true, anonymous: true });
    const result = await listThroughKas('ca-no-user', kubeconfig(secure.url, { ca: pki.caFile }));
    assert.equal(result.status, 200);
    assert.deepEqual(result.names, ['web-0']);
    // Without the CA the same server is refused (verified, not skipped).
    const refused = await listThroughKas('no-ca', kubeconfig(secure.url));
    assert.equal(refused.status, 502);
  });
});

describe('credentials from a plugin, and configs agentk cannot use', () => {
  test('an exec credential plugin (as cloud providers ship): agentk runs it and sends the token it prints', async () => {
    const secure = await sim({ tls: true });
    const plugin = join(dir, 'credential-plugin.mjs');
    // What `aws eks get-token` and `gke-gcloud-auth-plugin` do: print an ExecCredential.
    await writeFile(plugin, `process.stdout.write(JSON.stringify({ apiVersion: 'client.authentication.k8s.io/v1', kind: 'ExecCredential', status: { token: ${JSON.stringify(TOKEN)} } }));\n`);
    const user = { exec: { apiVersion: 'client.authentication.k8s.io/v1', command: process.execPath, args: [plugin], interactiveMode: 'Never' } };
    const result = await listThroughKas('exec-plugin', kubeconfig(secure.url, { ca: pki.caFile, user }));
    assert.equal(result.status, 200);
    assert.deepEqual(result.names, ['web-0']);
  });

  test('a kubeconfig with no cluster for its context: agentk says so and exits rather than serving nothing', async () => {
    const file = join(dir, 'no-cluster.kubeconfig');
    await writeFile(file, JSON.stringify({ apiVersion: 'v1', kind: 'Config', clusters: [], contexts: [], 'current-context': '' }));
    const token = await cluster.registerAgent('no-cluster');
    const agent = await cluster.startAgent({ id: 'no-cluster', token, configYaml: `kubernetes:\n  kubeconfig: ${file}\n`, waitConnected: false });
    const status = await agent.proc.waitForExit(20_000);
    assert.notEqual(status.code, 0);
    assert.match(agent.proc.output(), /no cluster in the kubeconfig/);
  });
});

describe('TLS material of the cluster', () => {
  test('is kept by identity across requests and replaced only when a file changes', async () => {
    const caFile = join(dir, 'rotating-ca.crt');
    await writeFile(caFile, pki.caPem);
    const kc = new KubeConfig();
    kc.loadFromString(kubeconfig('https://127.0.0.1:6443', { ca: caFile, user: { token: 't' } }));
    const access = new ClusterAccess({ cluster: kc.getCurrentCluster()!, user: kc.getCurrentUser() });
    const first = await access.requestOptions();
    assert.equal(first.headers.authorization, 'Bearer t');
    for (let i = 0; i < 100; i++) assert.equal((await access.requestOptions()).agent, first.agent, 'the same pool');
    assert.equal(tlsOptions(first.agent).ca?.toString(), pki.caPem);

    const other = await makeTestPki(join(dir, 'pki-2'));
    await writeFile(caFile, other.caPem);
    const rotated = await waitFor(async () => {
      const { agent } = await access.requestOptions();
      return agent !== first.agent && agent;
    }, { timeoutMs: 5_000, what: 'a new pool after the CA file changed' });
    assert.equal(tlsOptions(rotated).ca?.toString(), other.caPem);
    assert.equal((await access.requestOptions()).agent, rotated);
  });
});
