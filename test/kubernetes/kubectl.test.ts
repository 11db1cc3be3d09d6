// The Kubernetes passthrough end to end, with real clients: kubectl and @kubernetes/client-node
// talk HTTPS to the kas node that does NOT hold the agent; agentk (over wss://, trusting a test
// CA) reads from the Kubernetes API simulator with its own token. Checks that reads work, that
// streams stream, and that everything else is refused before it reaches the cluster.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test, type TestContext } from 'node:test';
import * as k8s from '@kubernetes/client-node';
import { KasCluster } from '../support/kas.ts';
import { makePod, startKubeSim, type KubeSim, type RecordedRequest } from '../../demo/k8sSim.ts';
import { Proc, waitFor } from '../support/procs.ts';
import { makeTestPki, type TestPki } from '../support/tls.ts';
import { requireTool } from '../support/tools.ts';

const CLUSTER_TOKEN = 'cluster-sa-token-for-agentk';

let dir: string;
let pki: TestPki;
let sim: KubeSim;
let cluster: KasCluster;
let kubectlPath: string;
let apiToken: string;
let emptyKubeconfig: string;

/** The base URL kubectl is given: node 1, which does not hold the agent. */
const serverFor = (agent: string, node = 1) => `${cluster.nodes[node]!.apiUrl}/api/v1/agents/${agent}/kubernetes`;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'kas-kube-'));
  [pki, kubectlPath] = await Promise.all([makeTestPki(join(dir, 'pki')), requireTool('kubectl')]);
  emptyKubeconfig = join(dir, 'empty-kubeconfig');
  await writeFile(emptyKubeconfig, '');
  sim = await startKubeSim({ tls: pki, token: CLUSTER_TOKEN, bookmarkIntervalMs: 500 });
  for (let i = 0; i < 5; i++) {
    sim.api.create('pods', makePod({ name: `web-${i}`, namespace: 'shop', labels: { app: i < 3 ? 'web' : 'db' } }));
  }
  sim.api.create('pods', makePod({ name: 'coredns', namespace: 'kube-system' }));
  sim.api.create('secrets', { metadata: { name: 'creds', namespace: 'shop' }, stringData: { password: 'hunter2' } });
  sim.api.create('configmaps', { metadata: { name: 'settings', namespace: 'shop' }, data: { a: '1' } });
  const agentKubeconfig = join(dir, 'agent-kubeconfig');
  await writeFile(agentKubeconfig, sim.kubeconfig({ caFile: pki.caFile, token: CLUSTER_TOKEN }));

  cluster = await KasCluster.start({
    nodes: 2,
    caPem: pki.caPem,
    env: {
      KAS_API_TLS_CERT_FILE: pki.certFile,
      KAS_API_TLS_KEY_FILE: pki.keyFile,
      KAS_AGENT_TLS_CERT_FILE: pki.certFile,
      KAS_AGENT_TLS_KEY_FILE: pki.keyFile,
      KAS_ROUTING_TIMEOUT: '2s',
      // Watches and follows must outlive the bound on ordinary requests.
      KAS_REQUEST_TIMEOUT: '3s',
    },
  });
  const agentEnv = { AGENTK_CA_FILE: pki.caFile };
  const [c1, c2] = await Promise.all([cluster.registerAgent('c1'), cluster.registerAgent('c2'), cluster.registerAgent('idle')]);
  // c1 keeps idle watches alive every second (30 s by default), so kubectl and client-node below
  // also show they take the keep-alive blank lines in their stride.
  await cluster.startAgent({ id: 'c1', token: c1!, node: 0, env: { ...agentEnv, AGENTK_WATCH_KEEPALIVE: '1s' }, configYaml: `kubernetes:\n  kubeconfig: ${agentKubeconfig}\n` });
  // c2's owner shares only namespace shop, no configmaps, no logs.
  await cluster.startAgent({
    id: 'c2',
    token: c2!,
    node: 0,
    env: agentEnv,
    configYaml: [
      'kubernetes:',
      `  kubeconfig: ${agentKubeconfig}`,
      'policy:',
      '  kubernetes:',
      '    allow: [{ namespaces: [shop], resources: ["*"] }]',
      '    deny: [{ resources: [secrets, configmaps] }]',
      '    logs: false',
      '',
    ].join('\n'),
  });
  apiToken = await cluster.issueToken();
  await cluster.waitForReplicas('c1', 1, apiToken, 1);
  await cluster.waitForReplicas('c2', 1, apiToken, 1);
});

after(async () => {
  await cluster?.stop();
  await sim?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function kubectlArgs(args: string[], agent = 'c1'): string[] {
  return [
    '--server', serverFor(agent),
    '--token', apiToken,
    '--certificate-authority', pki.caFile,
    '--cache-dir', join(dir, `kube-cache-${agent}`),
    '--request-timeout', '10s',
    ...args,
  ];
}

const kubectlEnv = () => ({ ...process.env, KUBECONFIG: emptyKubeconfig, HOME: dir });

function kubectl(args: string[], agent = 'c1'): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(kubectlPath, kubectlArgs(args, agent), { env: kubectlEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

async function kubectlOk(args: string[], agent = 'c1'): Promise<string> {
  const run = await kubectl(args, agent);
  assert.equal(run.code, 0, `kubectl ${args.join(' ')} failed:\n${run.stderr}${run.stdout}\n${cluster.describe()}`);
  return run.stdout;
}

/** Prints what the processes said when a test fails. */
function dumpOnFailure(t: TestContext, describe: () => string): void {
  t.after(() => {
    if ((t as TestContext & { passed?: boolean }).passed === false) process.stderr.write(`${describe()}\n`);
  });
}

const rows = (stdout: string) => stdout.trim().split('\n').map((line) => line.trim().split(/\s{2,}/));
const lastSeq = () => sim.api.requests().at(-1)?.seq ?? 0;
const since = (seq: number): RecordedRequest[] => sim.api.requests().filter((r) => r.seq > seq);

describe('kubectl through the node that does not hold the agent', () => {
  test('get pods -A lists every namespace, with only agentk credentials reaching the cluster', async (t) => {
    dumpOnFailure(t, () => cluster.describe());
    const seq = lastSeq();
    const out = rows(await kubectlOk(['get', 'pods', '-A']));
    assert.deepEqual(out[0]!.slice(0, 3), ['NAMESPACE', 'NAME', 'READY']);
    const names = out.slice(1).map((r) => `${r[0]}/${r[1]}`).sort();
    assert.deepEqual(names, ['kube-system/coredns', 'shop/web-0', 'shop/web-1', 'shop/web-2', 'shop/web-3', 'shop/web-4']);
    const seen = since(seq);
    assert.ok(seen.some((r) => r.path === '/api/v1/pods'), 'the list reached the cluster');
    for (const r of seen) {
      assert.equal(r.headers.authorization, `Bearer ${CLUSTER_TOKEN}`, `${r.path} carried the caller's credentials`);
      assert.equal(r.authorized, true);
    }
  });

  test('get pods --chunk-size=2 pages with continue tokens', async () => {
    const seq = lastSeq();
    const out = rows(await kubectlOk(['get', 'pods', '-n', 'shop', '--chunk-size=2']));
    assert.equal(out.length, 6, 'header and five pods');
    const lists = since(seq).filter((r) => r.path === '/api/v1/namespaces/shop/pods');
    assert.equal(lists.length, 3, 'three pages of at most two');
    assert.ok(lists.every((r) => r.params.get('limit') === '2'));
    assert.equal(lists.filter((r) => r.params.get('continue')).length, 2);
  });

  test('get pods -l app=db selects by label', async () => {
    const out = rows(await kubectlOk(['get', 'pods', '-n', 'shop', '-l', 'app=db', '-o', 'custom-columns=NAME:.metadata.name']));
    assert.deepEqual(out.slice(1).map((r) => r[0]), ['web-3', 'web-4']);
  });

  test('get pods -w sees a pod created afterwards, on a watch outliving KAS_REQUEST_TIMEOUT', async (t) => {
    const watcher = Proc.start('kubectl-watch', kubectlPath, kubectlArgs(['get', 'pods', '-n', 'shop', '-w', '--request-timeout', '0']), { env: kubectlEnv() });
    t.after(() => watcher.stop());
    dumpOnFailure(t, () => `${watcher.describe()}\n${cluster.describe()}`);
    await watcher.waitForLine(/web-4/, 15_000);
    // Past the 3 s request timeout: the watch must still be open and deliver.
    await new Promise((r) => setTimeout(r, 3_500));
    sim.api.create('pods', makePod({ name: 'late-arrival', namespace: 'shop', phase: 'Pending' }));
    await watcher.waitForLine(/late-arrival\s+0\/1\s/, 10_000);
  });

  test('an idle watch is kept alive with blank lines between events', async () => {
    const rv = sim.api.resourceVersion();
    const controller = new AbortController();
    const res = await cluster.fetch(1, `/api/v1/agents/c1/kubernetes/api/v1/namespaces/quiet/configmaps?watch=1&resourceVersion=${rv}`, {
      token: apiToken,
      signal: controller.signal,
    });
    assert.equal(res.status, 200);
    const reader = res.body!.getReader();
    let text = '';
    const started = Date.now();
    setTimeout(() => sim.api.create('configmaps', { metadata: { name: 'one', namespace: 'quiet' } }), 2_500);
    while (!text.includes('"ADDED"') && Date.now() - started < 10_000) {
      const { value, done } = await reader.read();
      if (done) break;
      text += Buffer.from(value).toString();
    }
    controller.abort();
    assert.match(text, /^\n+\{"type":"ADDED"/, `the idle watch carried ${JSON.stringify(text.slice(0, 80))}`);
  });

  test('logs -f streams lines as they are appended', async (t) => {
    sim.api.appendLog('shop', 'web-0', 'first line');
    const follower = Proc.start('kubectl-logs', kubectlPath, kubectlArgs(['logs', '-f', '-n', 'shop', 'web-0', '--request-timeout', '0']), { env: kubectlEnv() });
    t.after(() => follower.stop());
    dumpOnFailure(t, () => `${follower.describe()}\n${cluster.describe()}`);
    await follower.waitForLine(/first line/, 15_000);
    sim.api.appendLog('shop', 'web-0', 'second line, appended while following');
    await follower.waitForLine(/second line, appended while following/, 10_000);
  });

  test('get secrets is refused by the default policy, naming the rule; the cluster is never asked', async () => {
    const seq = lastSeq();
    const run = await kubectl(['get', 'secrets', '-n', 'shop']);
    assert.notEqual(run.code, 0);
    assert.match(run.stderr, /Forbidden/i);
    assert.match(run.stderr, /policy\.kubernetes\.deny\[0\]/);
    assert.equal(since(seq).filter((r) => r.path.includes('secrets')).length, 0);
  });

  test('delete pod and exec are refused by kas; the cluster never sees them', async () => {
    const seq = lastSeq();
    const del = await kubectl(['delete', 'pod', 'web-1', '-n', 'shop', '--wait=false']);
    assert.notEqual(del.code, 0);
    assert.match(del.stderr, /Forbidden|forbidden/);
    assert.match(del.stderr, /read only/);
    const exec = await kubectl(['exec', 'web-1', '-n', 'shop', '--', 'sh', '-c', 'id']);
    assert.notEqual(exec.code, 0);
    const seen = since(seq);
    assert.equal(seen.filter((r) => r.method !== 'GET' && r.method !== 'HEAD').length, 0, JSON.stringify(seen.map((r) => `${r.method} ${r.path}`)));
    assert.equal(seen.filter((r) => r.path.endsWith('/exec')).length, 0);
    assert.ok(sim.api.get('pods', 'shop', 'web-1'), 'the pod is still there');
  });
});

describe('the agent policy (c2: namespace shop only, no configmaps, no logs)', () => {
  const get = (path: string) => cluster.fetch(1, `/api/v1/agents/c2/kubernetes${path}`, { token: apiToken });

  for (const [what, path, rule] of [
    ['a namespace outside the allow list', '/api/v1/namespaces/kube-system/pods', /no rule in policy\.kubernetes\.allow covers pods in namespace kube-system/],
    ['a cluster-wide list', '/api/v1/pods', /covers pods across all namespaces/],
    ['a denied resource', '/api/v1/namespaces/shop/configmaps', /policy\.kubernetes\.deny\[0\]/],
    ['logs when logs are off', '/api/v1/namespaces/shop/pods/web-0/log', /policy\.kubernetes\.logs is false/],
  ] as const) {
    test(`${what} is refused by agentk with a Status naming the rule`, async () => {
      const seq = lastSeq();
      const res = await get(path);
      assert.equal(res.status, 403);
      const status = (await res.json()) as { kind: string; status: string; reason: string; code: number; message: string };
      assert.equal(status.kind, 'Status');
      assert.equal(status.status, 'Failure');
      assert.equal(status.reason, 'Forbidden');
      assert.equal(status.code, 403);
      assert.match(status.message, rule);
      assert.equal(since(seq).length, 0, 'the API server was not asked');
    });
  }

  test('what the policy allows still works', async () => {
    const res = await get('/api/v1/namespaces/shop/pods');
    assert.equal(res.status, 200);
    const list = (await res.json()) as { items: Array<{ metadata: { name: string } }> };
    assert.ok(list.items.length >= 5);
  });
});

describe('bad input', () => {
  const call = (path: string, init: RequestInit = {}) => cluster.fetch(1, path, { ...init, token: apiToken });

  test('write verbs are 403 Status, never sent on', async () => {
    const seq = lastSeq();
    for (const method of ['POST', 'PUT', 'PATCH', 'DELETE']) {
      const res = await call('/api/v1/agents/c1/kubernetes/api/v1/namespaces/shop/pods/web-1', {
        method,
        body: method === 'DELETE' ? undefined : '{}',
        headers: { 'content-type': 'application/json' },
      });
      assert.equal(res.status, 403, method);
      const status = (await res.json()) as { kind: string; reason: string };
      assert.equal(status.kind, 'Status');
      assert.equal(status.reason, 'Forbidden');
    }
    assert.equal(since(seq).length, 0);
  });

  test('exec and friends spelled with encodings or extra slashes are 403', async () => {
    const seq = lastSeq();
    for (const path of [
      'api/v1/namespaces/shop/pods/web-1/exec?command=id',
      'api/v1/namespaces/shop/pods/web-1/%65xec?command=id',
      'api/v1/namespaces/shop/pods/web-1//exec',
      'api/v1/namespaces/shop/pods/web-1/log/../exec',
      'api/v1/namespaces/shop/pods/web-1%2fexec',
      'api/v1/namespaces/shop/pods/web-1/attach',
      'api/v1/namespaces/shop/pods/web-1/portforward',
      'api/v1/namespaces/shop/services/web:80/proxy/',
      'api/v1/nodes/node-1/proxy/metrics',
      'logs/',
    ]) {
      const res = await call(`/api/v1/agents/c1/kubernetes/${path}`);
      assert.equal(res.status, 403, path);
      assert.equal(((await res.json()) as { kind: string }).kind, 'Status', path);
    }
    assert.equal(since(seq).length, 0);
  });

  test('an unknown agent is a 404 Status', async () => {
    const res = await call('/api/v1/agents/nobody/kubernetes/api/v1/pods');
    assert.equal(res.status, 404);
    const status = (await res.json()) as { kind: string; reason: string; message: string };
    assert.equal(status.reason, 'NotFound');
    assert.match(status.message, /kas agent register nobody/);
  });

  test('a watch for an agent with no replica waits KAS_ROUTING_TIMEOUT, then 503 with Retry-After', async () => {
    const res = await call('/api/v1/agents/idle/kubernetes/api/v1/pods?watch=1');
    assert.equal(res.status, 503);
    assert.ok(Number(res.headers.get('retry-after')) > 0);
    const status = (await res.json()) as { kind: string; reason: string; message: string };
    assert.equal(status.reason, 'ServiceUnavailable');
    assert.match(status.message, /no replica has connected in 2s/);
  });
});

describe('@kubernetes/client-node', () => {
  test('an informer sees every add, update and delete, across a restart of the kas node it uses', async (t) => {
    dumpOnFailure(t, () => cluster.describe());
    const kc = new k8s.KubeConfig();
    kc.loadFromOptions({
      clusters: [{ name: 'kas', server: serverFor('c1'), caData: Buffer.from(pki.caPem).toString('base64') }],
      users: [{ name: 'rails', token: apiToken }],
      contexts: [{ name: 'kas', cluster: 'kas', user: 'rails' }],
      currentContext: 'kas',
    });
    const api = kc.makeApiClient(k8s.CoreV1Api);
    const informer = k8s.makeInformer(kc, '/api/v1/namespaces/inf/configmaps', () =>
      api.listNamespacedConfigMap({ namespace: 'inf' }),
    );
    const seen: string[] = [];
    informer.on('add', (o) => seen.push(`add ${o.metadata?.name}`));
    informer.on('update', (o) => seen.push(`update ${o.metadata?.name}=${(o as k8s.V1ConfigMap).data?.v}`));
    informer.on('delete', (o) => seen.push(`delete ${o.metadata?.name}`));
    let stopped = false;
    let errors = 0;
    // client-node's documented pattern: an informer stops on error; start it again after a pause.
    informer.on('error', () => {
      errors++;
      if (!stopped) setTimeout(() => void informer.start().catch(() => undefined), 300);
    });
    t.after(async () => {
      stopped = true;
      await informer.stop();
    });
    await informer.start();
    const expect = (entry: string) => waitFor(() => seen.includes(entry), { timeoutMs: 15_000, what: `informer to see "${entry}" (saw ${JSON.stringify(seen)})` });

    sim.api.create('configmaps', { metadata: { name: 'a', namespace: 'inf' }, data: { v: '1' } });
    await expect('add a');
    sim.api.modify('configmaps', 'inf', 'a', (o) => (o.data = { v: '2' }));
    await expect('update a=2');

    // Restart the node the informer talks through; change things while it is down.
    const restart = cluster.restartNode(1, { downMs: 1_000 });
    await new Promise((r) => setTimeout(r, 300));
    sim.api.create('configmaps', { metadata: { name: 'b', namespace: 'inf' }, data: { v: '1' } });
    sim.api.modify('configmaps', 'inf', 'a', (o) => (o.data = { v: '3' }));
    await restart;
    await cluster.waitForReplicas('c1', 1, apiToken, 1);
    sim.api.delete('configmaps', 'inf', 'b');
    sim.api.create('configmaps', { metadata: { name: 'c', namespace: 'inf' }, data: { v: '1' } });

    await expect('add c');
    for (const entry of ['add b', 'update a=3', 'delete b']) assert.ok(seen.includes(entry), `missed "${entry}": ${JSON.stringify(seen)}`);
    assert.ok(seen.indexOf('update a=3') < seen.indexOf('add c'));
    t.diagnostic(`informer events: ${JSON.stringify(seen)}; errors while the node was down: ${errors}`);
  });
});
