import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:https';
import type { IncomingHttpHeaders } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import * as k8s from '@kubernetes/client-node';
import { makeDeployment, makePod, startKubeSim } from '../../demo/k8sSim.ts';
import type { KubeSim, RecordedRequest } from '../../demo/k8sSim.ts';
import { Proc, dumpOnFailure, waitFor } from './procs.ts';
import { makeTestPki } from './tls.ts';
import type { TestPki } from './tls.ts';
import { requireTool } from './tools.ts';

const token = 'sim-token-0123456789';

let dir: string;
let pki: TestPki;
let sim: KubeSim;
let kubectlPath: string;
let emptyKubeconfig: string;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'kas-k8ssim-'));
  [pki, kubectlPath] = await Promise.all([makeTestPki(join(dir, 'pki')), requireTool('kubectl')]);
  emptyKubeconfig = join(dir, 'kubeconfig');
  await writeFile(emptyKubeconfig, '');
  sim = await startKubeSim({ tls: pki, token, bookmarkIntervalMs: 300 });

  for (let i = 0; i < 5; i++) {
    sim.api.create('pods', makePod({ name: `shop-${i}`, namespace: 'shop', labels: { app: i < 3 ? 'web' : 'db', tier: `t${i}` } }));
  }
  sim.api.create('pods', makePod({ name: 'waiting', namespace: 'default', phase: 'Pending' }));
  sim.api.create('pods', makePod({ name: 'done', namespace: 'default', phase: 'Succeeded' }));
  sim.api.create('deployments', makeDeployment({ name: 'web', namespace: 'shop', replicas: 3, ready: 2 }));
  sim.api.create('deployments', makeDeployment({ name: 'coredns', namespace: 'kube-system', replicas: 2 }));
  sim.api.create('configmaps', { metadata: { name: 'settings', namespace: 'shop' }, data: { a: '1', b: '2' } });
  sim.api.create('secrets', { metadata: { name: 'creds', namespace: 'shop' }, stringData: { password: 'x' } });
});

after(async () => {
  await sim?.stop();
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

// ---------------------------------------------------------------------------------------------
// helpers

function kubectlArgs(args: string[], options: { token?: string; server?: string } = {}): string[] {
  return [
    '--server', options.server ?? sim.url,
    '--token', options.token ?? token,
    '--certificate-authority', pki.caFile,
    '--cache-dir', join(dir, 'kube-cache'),
    '--request-timeout', '10s',
    ...args,
  ];
}

function kubectlEnv(): NodeJS.ProcessEnv {
  // An empty KUBECONFIG and a private HOME keep the user's configuration out of it.
  return { ...process.env, KUBECONFIG: emptyKubeconfig, HOME: dir };
}

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function kubectl(args: string[], options: { token?: string; server?: string } = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(kubectlPath, kubectlArgs(args, options), { env: kubectlEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

async function kubectlOk(args: string[]): Promise<string> {
  const run = await kubectl(args);
  assert.equal(run.code, 0, `kubectl ${args.join(' ')} failed:\n${run.stderr}${run.stdout}`);
  assert.equal(run.stderr, '', `kubectl ${args.join(' ')} printed to stderr:\n${run.stderr}`);
  return run.stdout;
}

function startKubectl(name: string, args: string[]): Proc {
  return Proc.start(name, kubectlPath, kubectlArgs(args), { env: kubectlEnv() });
}

function table(stdout: string): string[][] {
  return stdout
    .trim()
    .split('\n')
    .map((line) => line.trim().split(/\s{2,}/));
}

interface RawResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

/** One HTTPS request to the simulator, trusting the test CA; the body is read to its end. */
function raw(path: string, options: { method?: string; accept?: string; token?: string | null; timeoutMs?: number } = {}): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = {};
    if (options.token !== null) headers['Authorization'] = `Bearer ${options.token ?? token}`;
    if (options.accept !== undefined) headers['Accept'] = options.accept;
    const req = request(`${sim.url}${path}`, { method: options.method ?? 'GET', headers, ca: pki.caPem }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => (body += d));
      res.once('end', () => {
        clearTimeout(timer);
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body });
      });
    });
    const timer = setTimeout(() => req.destroy(new Error(`${path} did not finish in ${options.timeoutMs ?? 5000}ms`)), options.timeoutMs ?? 5000);
    req.once('error', reject);
    req.end();
  });
}

/** Reads a watch until `count` events arrived, then hangs up. */
function watchEvents(path: string, count: number, accept?: string): Promise<Array<{ type: string; object: Record<string, any> }>> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { Authorization: `Bearer ${token}` };
    if (accept !== undefined) headers['Accept'] = accept;
    const req = request(`${sim.url}${path}`, { headers, ca: pki.caPem }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => {
        body += d;
        const events = lines(body.slice(0, body.lastIndexOf('\n') + 1));
        if (events.length < count) return;
        clearTimeout(timer);
        req.destroy();
        resolve(events);
      });
    });
    const timer = setTimeout(() => req.destroy(new Error(`${path} sent fewer than ${count} events in 5s`)), 5000);
    req.once('error', reject);
    req.end();
  });
}

function lines(body: string): Array<{ type: string; object: Record<string, any> }> {
  return body
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l));
}

function requestsSince(seq: number): RecordedRequest[] {
  return sim.api.requests().filter((r) => r.seq > seq);
}

function lastSeq(): number {
  return sim.api.requests().at(-1)?.seq ?? 0;
}

// ---------------------------------------------------------------------------------------------
// kubectl

test('kubectl get pods -A prints the server-side table with a NAMESPACE column', async () => {
  const out = table(await kubectlOk(['get', 'pods', '-A']));
  assert.deepEqual(out[0], ['NAMESPACE', 'NAME', 'READY', 'STATUS', 'RESTARTS', 'AGE']);
  const rows = new Map(out.slice(1).map((r) => [r[1], r]));
  assert.equal(rows.size, 7);
  assert.deepEqual(rows.get('shop-0')?.slice(0, 5), ['shop', 'shop-0', '1/1', 'Running', '0']);
  assert.deepEqual(rows.get('waiting')?.slice(0, 5), ['default', 'waiting', '0/1', 'ContainerCreating', '0']);
  assert.deepEqual(rows.get('done')?.slice(0, 5), ['default', 'done', '0/1', 'Completed', '0']);
  assert.match(rows.get('shop-0')?.[5] ?? '', /^\d+s$/);
});

test('kubectl get --chunk-size pages with continue tokens', async () => {
  const seq = lastSeq();
  const out = table(await kubectlOk(['get', 'pods', '-n', 'shop', '--chunk-size=2']));
  assert.deepEqual(
    out.slice(1).map((r) => r[0]),
    ['shop-0', 'shop-1', 'shop-2', 'shop-3', 'shop-4'],
  );
  const lists = requestsSince(seq).filter((r) => r.path === '/api/v1/namespaces/shop/pods');
  assert.deepEqual(
    lists.map((r) => r.params.get('limit')),
    ['2', '2', '2'],
  );
  assert.equal(lists[0]?.params.get('continue'), null);
  assert.ok(lists[1]?.params.get('continue') && lists[2]?.params.get('continue'), 'the second and third pages use continue tokens');
});

test('kubectl get with label and field selectors', async () => {
  let out = table(await kubectlOk(['get', 'pods', '-n', 'shop', '-l', 'app=web']));
  assert.deepEqual(out.slice(1).map((r) => r[0]), ['shop-0', 'shop-1', 'shop-2']);
  out = table(await kubectlOk(['get', 'pods', '-n', 'shop', '-l', 'app in (web,db),tier notin (t0,t4),!missing']));
  assert.deepEqual(out.slice(1).map((r) => r[0]), ['shop-1', 'shop-2', 'shop-3']);
  out = table(await kubectlOk(['get', 'pods', '-A', '--field-selector', 'metadata.namespace=default,status.phase!=Pending']));
  assert.deepEqual(out.slice(1).map((r) => r[1]), ['done']);
  const bad = await kubectl(['get', 'pods', '--field-selector', 'spec.nope=1']);
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, /field label not supported: spec\.nope/);
});

test('kubectl get -o json', async () => {
  const list = JSON.parse(await kubectlOk(['get', 'pods', '-n', 'shop', '-o', 'json']));
  assert.equal(list.items.length, 5);
  assert.equal(list.items[0].kind, 'Pod');
  assert.equal(list.items[0].metadata.namespace, 'shop');
  assert.match(list.items[0].metadata.uid, /^[0-9a-f-]{36}$/);
  const pod = JSON.parse(await kubectlOk(['get', 'pod', 'shop-1', '-n', 'shop', '-o', 'json']));
  assert.equal(pod.metadata.name, 'shop-1');
  assert.equal(pod.status.phase, 'Running');
});

test('kubectl get ns, deploy -A, configmaps and secrets', async () => {
  let out = table(await kubectlOk(['get', 'ns']));
  assert.deepEqual(out[0], ['NAME', 'STATUS', 'AGE']);
  assert.deepEqual(out.slice(1).map((r) => [r[0], r[1]]), [
    ['default', 'Active'],
    ['kube-node-lease', 'Active'],
    ['kube-public', 'Active'],
    ['kube-system', 'Active'],
    ['shop', 'Active'],
  ]);
  out = table(await kubectlOk(['get', 'deploy', '-A']));
  assert.deepEqual(out[0], ['NAMESPACE', 'NAME', 'READY', 'UP-TO-DATE', 'AVAILABLE', 'AGE']);
  assert.deepEqual(out.slice(1).map((r) => r.slice(0, 5)), [
    ['kube-system', 'coredns', '2/2', '2', '2'],
    ['shop', 'web', '2/3', '3', '2'],
  ]);
  out = table(await kubectlOk(['get', 'cm,secret', '-n', 'shop']));
  assert.deepEqual(out.slice(0, 2), [['NAME', 'DATA', 'AGE'], ['configmap/settings', '2', out[1]?.[2] ?? '']]);
  assert.deepEqual(out[4]?.slice(0, 3), ['secret/creds', 'Opaque', '1']);
  const missing = await kubectl(['get', 'pod', 'nope', '-n', 'shop']);
  assert.notEqual(missing.code, 0);
  assert.match(missing.stderr, /Error from server \(NotFound\): pods "nope" not found/);
});

test('kubectl api-resources and version use aggregated discovery', async () => {
  const seq = lastSeq();
  const out = table(await kubectlOk(['api-resources', '--cache-dir', join(dir, 'fresh-cache')]));
  assert.deepEqual(out[0], ['NAME', 'SHORTNAMES', 'APIVERSION', 'NAMESPACED', 'KIND']);
  const names = new Map(out.slice(1).map((r) => [r[0], r]));
  assert.deepEqual(names.get('pods'), ['pods', 'po', 'v1', 'true', 'Pod']);
  assert.deepEqual(names.get('namespaces'), ['namespaces', 'ns', 'v1', 'false', 'Namespace']);
  assert.deepEqual(names.get('deployments'), ['deployments', 'deploy', 'apps/v1', 'true', 'Deployment']);
  const discovery = requestsSince(seq).filter((r) => r.path.startsWith('/api'));
  assert.deepEqual(discovery.map((r) => r.path).sort(), ['/api', '/apis'], 'aggregated discovery needs no per-group requests');
  assert.match(await kubectlOk(['version']), /Server Version: v1\.32\.5/);
});

test('kubectl falls back to the plain discovery documents', async (t) => {
  const plain = await startKubeSim({ tls: pki, token, aggregatedDiscovery: false });
  t.after(() => plain.stop());
  plain.api.create('deployments', makeDeployment({ name: 'api', namespace: 'prod' }));
  const run = await kubectl(['get', 'deploy', '-A', '-v=6', '--cache-dir', join(dir, 'plain-cache')], { server: plain.url });
  assert.equal(run.code, 0, run.stderr);
  assert.match(run.stdout, /^prod\s+api\s+1\/1\s+1\s+1\s+\d+s$/m);
  const problems = run.stderr.split('\n').filter((l) => /^[WE]\d{4}/.test(l) || / [45]\d\d /.test(l));
  assert.deepEqual(problems, [], 'no warnings or errors at -v=6');
  const paths = plain.api.requests().map((r) => r.path);
  for (const p of ['/api', '/apis', '/api/v1', '/apis/apps/v1']) assert.ok(paths.includes(p), `kubectl asked for ${p}: ${paths.join(' ')}`);
});

test('kubectl with a bad token gets Unauthorized; writes get MethodNotAllowed', async () => {
  const run = await kubectl(['get', 'pods'], { token: 'wrong' });
  assert.notEqual(run.code, 0);
  assert.match(run.stderr, /Unauthorized/);
  const del = await kubectl(['delete', 'pod', 'shop-0', '-n', 'shop']);
  assert.notEqual(del.code, 0);
  assert.match(del.stderr, /MethodNotAllowed/);
  assert.ok(sim.api.get('pods', 'shop', 'shop-0'));
});

test('kubectl get -w sees pods created and changed later', async (t) => {
  sim.api.create('pods', makePod({ name: 'first', namespace: 'watched' }));
  const proc = startKubectl('kubectl get -w', ['get', 'pods', '-n', 'watched', '-w']);
  dumpOnFailure(t, proc);
  t.after(() => proc.kill());
  await proc.waitForLine(/^NAME\s+READY\s+STATUS\s+RESTARTS\s+AGE$/);
  await proc.waitForLine(/^first\s+1\/1\s+Running\s+0\s/);
  await sim.api.waitForRequest((r) => r.watch && r.path === '/api/v1/namespaces/watched/pods');
  sim.api.create('pods', makePod({ name: 'late', namespace: 'watched', phase: 'Pending' }));
  await proc.waitForLine(/^late\s+0\/1\s+ContainerCreating\s+0\s/);
  sim.api.modify('pods', 'watched', 'late', (pod) => {
    Object.assign(pod, { status: makePod({ name: 'late' })['status'] });
  });
  await proc.waitForLine(/^late\s+1\/1\s+Running\s+0\s/);
  const watch = sim.api.requests().find((r) => r.watch && r.path === '/api/v1/namespaces/watched/pods');
  assert.match(String(watch?.headers.accept), /as=Table/);
});

test('kubectl logs -f streams appended lines', async (t) => {
  sim.api.appendLog('shop', 'shop-2', 'old line 1');
  sim.api.appendLog('shop', 'shop-2', 'old line 2');
  const tail = await kubectlOk(['logs', '-n', 'shop', 'shop-2', '--tail=1']);
  assert.equal(tail, 'old line 2\n');
  const proc = startKubectl('kubectl logs -f', ['logs', '-f', '-n', 'shop', 'shop-2']);
  dumpOnFailure(t, proc);
  t.after(() => proc.kill());
  await proc.waitForLine(/^old line 2$/);
  sim.api.appendLog('shop', 'shop-2', 'fresh line');
  await proc.waitForLine(/^fresh line$/);
  sim.api.endLogs('shop', 'shop-2');
  assert.equal((await proc.waitForExit()).code, 0);
  const missing = await kubectl(['logs', '-n', 'shop', 'nope']);
  assert.match(missing.stderr, /pods "nope" not found/);
});

// ---------------------------------------------------------------------------------------------
// @kubernetes/client-node

function clientConfig(): k8s.KubeConfig {
  const kc = new k8s.KubeConfig();
  kc.loadFromString(sim.kubeconfig({ caFile: pki.caFile }));
  return kc;
}

test('client-node CoreV1Api lists and reads', async () => {
  const core = clientConfig().makeApiClient(k8s.CoreV1Api);
  const list = await core.listNamespacedPod({ namespace: 'shop', labelSelector: 'app=db' });
  assert.deepEqual(list.items.map((p) => p.metadata?.name), ['shop-3', 'shop-4']);
  assert.equal(list.metadata?.resourceVersion, sim.api.resourceVersion());
  const pod = await core.readNamespacedPod({ namespace: 'shop', name: 'shop-0' });
  assert.equal(pod.status?.phase, 'Running');
  await assert.rejects(core.readNamespacedPod({ namespace: 'shop', name: 'nope' }), (err: { code?: number }) => err.code === 404);
});

test('client-node informer sees add, update and delete', async (t) => {
  const kc = clientConfig();
  const core = kc.makeApiClient(k8s.CoreV1Api);
  sim.api.create('pods', makePod({ name: 'existing', namespace: 'inf' }));
  const informer = k8s.makeInformer(kc, '/api/v1/namespaces/inf/pods', () => core.listNamespacedPod({ namespace: 'inf' }));
  const seen: string[] = [];
  informer.on('add', (p) => seen.push(`add ${p.metadata?.name}`));
  informer.on('update', (p) => seen.push(`update ${p.metadata?.name} ${p.status?.phase}`));
  informer.on('delete', (p) => seen.push(`delete ${p.metadata?.name}`));
  informer.on('error', (err) => seen.push(`error ${String(err)}`));
  await informer.start();
  t.after(() => informer.stop());
  await waitFor(() => seen.includes('add existing'), { what: 'the listed pod' });
  await sim.api.waitForRequest((r) => r.watch && r.path === '/api/v1/namespaces/inf/pods');

  sim.api.create('pods', makePod({ name: 'new', namespace: 'inf', phase: 'Pending' }));
  sim.api.modify('pods', 'inf', 'new', (p) => (p['status'].phase = 'Running'));
  sim.api.delete('pods', 'inf', 'existing');
  await waitFor(() => seen.length >= 4, { what: `informer events, saw ${seen.join(', ')}` });
  assert.deepEqual(seen, ['add existing', 'add new', 'update new Running', 'delete existing']);
  assert.deepEqual(informer.list('inf').map((p) => p.metadata?.name), ['new']);
});

test('client-node watch from a compacted resourceVersion gets 410 Gone', async () => {
  const old = sim.api.resourceVersion();
  sim.api.create('configmaps', { metadata: { name: 'c1', namespace: 'compact' } });
  sim.api.compact();
  const events: Array<{ type: string; obj: any }> = [];
  const done = new Promise<unknown>((resolve) => {
    void new k8s.Watch(clientConfig()).watch(
      '/api/v1/namespaces/compact/configmaps',
      { resourceVersion: old },
      (type, obj) => events.push({ type, obj }),
      resolve,
    );
  });
  assert.equal(await done, null, 'the watch ends normally after the ERROR event');
  assert.equal(events.length, 1);
  assert.equal(events[0]?.type, 'ERROR');
  assert.equal(events[0]?.obj.code, 410);
  assert.equal(events[0]?.obj.reason, 'Expired');
});

// ---------------------------------------------------------------------------------------------
// protocol details kubectl and client-node do not exercise above

test('requests are recorded; unauthenticated ones get a 401 Status', async () => {
  const res = await raw('/api/v1/pods', { token: null });
  assert.equal(res.status, 401);
  assert.equal(res.headers['content-type'], 'application/json');
  assert.deepEqual(JSON.parse(res.body), {
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Failure',
    message: 'Unauthorized',
    reason: 'Unauthorized',
    code: 401,
  });
  const recordedRequest = sim.api.requests().at(-1);
  assert.equal(recordedRequest?.path, '/api/v1/pods');
  assert.equal(recordedRequest?.authorized, false);
  assert.equal(recordedRequest?.status, 401);

  const post = await raw('/api/v1/namespaces/shop/pods', { method: 'POST' });
  assert.equal(post.status, 405);
  assert.equal(JSON.parse(post.body).reason, 'MethodNotAllowed');
  const headReq = await raw('/api/v1/namespaces/shop/pods', { method: 'HEAD' });
  assert.equal(headReq.status, 200);
  assert.equal(headReq.body, '');
  assert.equal((await raw('/openapi/v2')).status, 404);
  const missing = JSON.parse((await raw('/apis/apps/v1/namespaces/shop/deployments/nope')).body);
  assert.equal(missing.message, 'deployments.apps "nope" not found');
  assert.deepEqual(missing.details, { name: 'nope', group: 'apps', kind: 'deployments' });
  assert.equal((await raw('/api/v1/pods', { accept: 'application/vnd.kubernetes.protobuf' })).status, 406);
});

test('continue tokens list a consistent snapshot until compaction expires them', async () => {
  const first = JSON.parse((await raw('/api/v1/namespaces/shop/pods?limit=2')).body);
  assert.deepEqual(first.items.map((p: any) => p.metadata.name), ['shop-0', 'shop-1']);
  assert.equal(first.items[0].kind, undefined, 'list items carry no kind, as from kube-apiserver');
  assert.equal(first.metadata.remainingItemCount, 3);
  sim.api.delete('pods', 'shop', 'shop-3');
  sim.api.create('pods', makePod({ name: 'shop-25', namespace: 'shop' }));
  const token = encodeURIComponent(first.metadata.continue);
  const second = JSON.parse((await raw(`/api/v1/namespaces/shop/pods?limit=2&continue=${token}`)).body);
  assert.deepEqual(second.items.map((p: any) => p.metadata.name), ['shop-2', 'shop-3']);
  assert.equal(second.metadata.resourceVersion, first.metadata.resourceVersion);
  sim.api.compact();
  const expired = await raw(`/api/v1/namespaces/shop/pods?limit=2&continue=${token}`);
  assert.equal(expired.status, 410);
  assert.equal(JSON.parse(expired.body).reason, 'Expired');
  sim.api.create('pods', makePod({ name: 'shop-3', namespace: 'shop', labels: { app: 'db', tier: 't3' } }));
  sim.api.delete('pods', 'shop', 'shop-25');
});

test('watch: history replay, selector transitions, bookmarks and timeoutSeconds', async () => {
  const from = sim.api.resourceVersion();
  sim.api.create('pods', makePod({ name: 'a', namespace: 'w', labels: { role: 'x' } }));
  sim.api.create('pods', makePod({ name: 'b', namespace: 'w', labels: { role: 'y' } }));
  sim.api.modify('pods', 'w', 'a', (p) => (p.metadata.labels = { role: 'y' }));
  sim.api.modify('pods', 'w', 'b', (p) => (p.metadata.labels = { role: 'x' }));
  const started = Date.now();
  const res = await raw(`/api/v1/namespaces/w/pods?watch=1&resourceVersion=${from}&labelSelector=role%3Dx&allowWatchBookmarks=true&timeoutSeconds=1`);
  assert.ok(Date.now() - started >= 900, 'timeoutSeconds ends the watch');
  assert.equal(res.headers['transfer-encoding'], 'chunked');
  const events = lines(res.body);
  assert.deepEqual(
    events.filter((e) => e.type !== 'BOOKMARK').map((e) => `${e.type} ${e.object['metadata'].name}`),
    ['ADDED a', 'DELETED a', 'ADDED b'],
  );
  const bookmarks = events.filter((e) => e.type === 'BOOKMARK');
  assert.ok(bookmarks.length >= 2, `periodic bookmarks, got ${bookmarks.length}`);
  assert.equal(bookmarks.at(-1)?.object['metadata'].resourceVersion, sim.api.resourceVersion());
  const rvs = events.map((e) => Number(e.object['metadata'].resourceVersion));
  assert.deepEqual(rvs, [...rvs].sort((x, y) => x - y), 'resourceVersions increase');

  const initial = await watchEvents(
    '/api/v1/namespaces/w/pods?watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true',
    3,
  );
  assert.deepEqual(initial.map((e) => e.type), ['ADDED', 'ADDED', 'BOOKMARK']);
  assert.equal(initial[2]?.object['metadata'].annotations['k8s.io/initial-events-end'], 'true');

  const tableWatch = await watchEvents('/api/v1/namespaces/w/pods?watch=true', 2, 'application/json;as=Table;v=v1;g=meta.k8s.io,application/json');
  assert.equal(tableWatch[0]?.object['kind'], 'Table');
  assert.equal(tableWatch[0]?.object['columnDefinitions'][0].name, 'Name');
  assert.equal(tableWatch[1]?.object['columnDefinitions'], undefined, 'only the first event carries columns');
  assert.equal(tableWatch[1]?.object['rows'][0].object.kind, 'PartialObjectMetadata');
  await waitFor(() => sim.api.activeWatches() === 0, { what: 'watches to end when their clients hang up' });
});
