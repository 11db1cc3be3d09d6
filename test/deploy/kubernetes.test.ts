// deploy/kubernetes/: `kubectl kustomize` (kustomize as kubectl ships it) renders the agentk base,
// its overlays and the kas base; the rendered objects have the properties the README promises
// (read-only RBAC without secrets, replicas, probes on the observability port, resources,
// non-root, read-only root filesystem, the downward API). And the rendered agentk container
// runs: its command and environment, started as a process against a test kas, with the pod's
// mounts and the simulator's in-cluster environment (KUBERNETES_SERVICE_HOST/PORT, a
// service-account token and CA at the standard paths under a temp root), connects and serves a
// list. The rendered kas container runs the same way as a node of a Redis cluster.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { cp, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { parseAllDocuments } from 'yaml';
import { loadAgentConfig } from '../../agent/config.ts';
import { makePod, startKubeSim, type KubeSim } from '../../demo/k8sSim.ts';
import { KasCluster, runKas } from '../support/kas.ts';
import { freePort } from '../support/ports.ts';
import { Proc, dumpOnFailure, waitFor } from '../support/procs.ts';
import { startRedis, type RedisServer } from '../support/redis.ts';
import { makeTestPki, type TestPki } from '../support/tls.ts';
import { requireTool } from '../support/tools.ts';

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL('../../', import.meta.url));

// Rendered objects are free-form YAML; `any` keeps the property checks readable.
type K8sObject = Record<string, any>;

interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: { fieldRef?: { fieldPath: string } };
}

let dir: string;
let kubectl: string;
let pki: TestPki;

/** `kubectl kustomize` of a folder of the copy under `dir`, as parsed objects. */
async function render(path: string): Promise<K8sObject[]> {
  const { stdout } = await run(kubectl, ['kustomize', join(dir, 'kubernetes', path)], { maxBuffer: 16 * 1024 * 1024 });
  return parseAllDocuments(stdout).map((d) => d.toJSON() as K8sObject);
}

function one(objects: K8sObject[], kind: string, name?: string): K8sObject {
  const found = objects.filter((o) => o.kind === kind && (name === undefined || o.metadata.name === name || o.metadata.name.startsWith(`${name}-`)));
  assert.equal(found.length, 1, `one ${kind}${name ? ` ${name}` : ''} in ${objects.map((o) => `${o.kind}/${o.metadata.name}`).join(', ')}`);
  return found[0]!;
}

/** Checks what every long-running container here must have: probes, resources, no root, no writes. */
function checkContainer(pod: K8sObject, container: K8sObject, listenEnv: string): void {
  const env = container.env as EnvVar[];
  const listen = env.find((e) => e.name === listenEnv)?.value;
  const port = Number(listen?.split(':').pop());
  const named = (container.ports as { name: string; containerPort: number }[]).find((p) => p.name === 'observability');
  assert.equal(named?.containerPort, port, `the observability port is the one ${listenEnv} listens on`);
  assert.equal(listen?.startsWith('0.0.0.0:'), true, 'reachable by the kubelet');
  assert.deepEqual(container.livenessProbe.httpGet, { path: '/liveness', port: 'observability' });
  assert.deepEqual(container.readinessProbe.httpGet, { path: '/readiness', port: 'observability' });
  for (const kind of ['requests', 'limits']) {
    assert.ok(container.resources[kind].cpu && container.resources[kind].memory, `${kind} for cpu and memory`);
  }
  assert.equal(pod.securityContext.runAsNonRoot, true);
  assert.ok(pod.securityContext.runAsUser > 0);
  assert.equal(container.securityContext.readOnlyRootFilesystem, true);
  assert.equal(container.securityContext.allowPrivilegeEscalation, false);
  assert.deepEqual(container.securityContext.capabilities.drop, ['ALL']);
}

/** Where a pod's mounts sit under `root`: each volume's ConfigMap or Secret keys written as files. */
async function layOutMounts(objects: K8sObject[], pod: K8sObject, container: K8sObject, root: string): Promise<void> {
  for (const mount of container.volumeMounts as { name: string; mountPath: string }[]) {
    const volume = (pod.volumes as K8sObject[]).find((v) => v.name === mount.name)!;
    const target = join(root, mount.mountPath);
    await mkdir(target, { recursive: true });
    const source = volume.configMap
      ? { data: one(objects, 'ConfigMap', volume.configMap.name).data as Record<string, string>, base64: false }
      : volume.secret
        ? { data: one(objects, 'Secret', volume.secret.secretName).data as Record<string, string>, base64: true }
        : undefined;
    for (const [key, value] of Object.entries(source?.data ?? {})) {
      await writeFile(join(target, key), source!.base64 ? Buffer.from(value, 'base64') : value, { mode: 0o600 });
    }
  }
}

/**
 * The container's command line and environment as a local process: `node` is this Node, /app the
 * repository, paths under the pod's mounts are under `root`, fieldRefs are the pod's fields,
 * `$(VAR)` expands as the kubelet does, and `overrides` replace what must point at this machine.
 */
function asProcess(container: K8sObject, root: string, pod: Record<string, string>, overrides: Record<string, string>): { command: string; args: string[]; env: Record<string, string> } {
  const mounts = (container.volumeMounts as { mountPath: string }[]).map((m) => m.mountPath);
  const local = (value: string) => {
    if (value.startsWith('/app/')) return join(ROOT, value.slice('/app/'.length));
    return mounts.some((m) => value.startsWith(`${m}/`)) ? join(root, value) : value;
  };
  const env: Record<string, string> = {};
  for (const variable of container.env as EnvVar[]) {
    const raw = variable.valueFrom?.fieldRef ? pod[variable.valueFrom.fieldRef.fieldPath] : variable.value;
    assert.ok(raw !== undefined, `${variable.name} has a value`);
    env[variable.name] = local(raw.replace(/\$\(([A-Z_]+)\)/g, (_m, name: string) => env[name] ?? ''));
  }
  const [program, ...rest] = [...(container.command as string[]), ...((container.args as string[] | undefined) ?? [])];
  assert.equal(program, 'node');
  return { command: process.execPath, args: rest.map(local), env: { ...env, ...overrides } };
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'kas-deploy-k8s-'));
  [kubectl, pki] = await Promise.all([requireTool('kubectl'), makeTestPki(join(dir, 'pki'))]);
  // A copy with the files an operator adds (git-ignored in the repository).
  await cp(join(ROOT, 'deploy/kubernetes'), join(dir, 'kubernetes'), { recursive: true });
  await writeFile(join(dir, 'kubernetes/agentk/base/agent.token'), 'kasat_placeholder\n');
  await writeFile(join(dir, 'kubernetes/agentk/overlays/private-ca/kas-ca.crt'), pki.caPem);
  for (const name of ['api-secret', 'private-secret']) await writeFile(join(dir, 'kubernetes/kas', name), `${randomBytes(32).toString('base64')}\n`);
  await writeFile(join(dir, 'kubernetes/kas/agents.json'), '{"agents":{}}\n');
});

after(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('deploy/kubernetes/agentk', () => {
  test('the base renders: namespace, read-only RBAC without secrets, token Secret, config, 2 replicas, PDB', async () => {
    const objects = await render('agentk/base');
    const namespace = one(objects, 'Namespace').metadata.name;
    for (const o of objects) if (!['Namespace', 'ClusterRole', 'ClusterRoleBinding'].includes(o.kind)) assert.equal(o.metadata.namespace, namespace, `${o.kind} ${o.metadata.name}`);

    const role = one(objects, 'ClusterRole');
    const resources = new Set<string>();
    for (const rule of role.rules as { apiGroups: string[]; resources: string[]; verbs: string[] }[]) {
      assert.deepEqual([...rule.verbs].sort(), ['get', 'list', 'watch'], 'read-only verbs');
      assert.ok(!rule.apiGroups.includes('*') && !rule.resources.includes('*'), 'nothing by wildcard');
      for (const r of rule.resources) resources.add(`${rule.apiGroups[0] || 'core'}/${r}`);
    }
    assert.ok(![...resources].some((r) => r.endsWith('/secrets')), 'no secrets');
    for (const r of ['core/pods', 'core/pods/log', 'core/namespaces', 'core/events', 'apps/deployments']) assert.ok(resources.has(r), r);

    const account = one(objects, 'ServiceAccount');
    assert.equal(account.automountServiceAccountToken, false, 'its token goes only where asked for');
    const binding = one(objects, 'ClusterRoleBinding');
    assert.deepEqual(binding.roleRef, { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: role.metadata.name });
    assert.deepEqual(binding.subjects, [{ kind: 'ServiceAccount', name: account.metadata.name, namespace }]);

    const deployment = one(objects, 'Deployment');
    assert.equal(deployment.spec.replicas, 2);
    const pod = deployment.spec.template.spec;
    assert.equal(pod.serviceAccountName, account.metadata.name);
    assert.equal(pod.automountServiceAccountToken, true);
    assert.equal(pod.containers.length, 1);
    const container = pod.containers[0];
    checkContainer(pod, container, 'AGENTK_OBSERVABILITY_LISTEN');
    const podName = (container.env as EnvVar[]).find((e) => e.name === 'POD_NAME');
    assert.deepEqual(podName?.valueFrom, { fieldRef: { fieldPath: 'metadata.name' } });

    const secret = one(objects, 'Secret', 'agentk-token');
    assert.equal(Buffer.from(secret.data.token, 'base64').toString(), 'kasat_placeholder\n', 'the token from the file');
    assert.ok(pod.volumes.some((v: K8sObject) => v.secret?.secretName === secret.metadata.name), 'the Deployment mounts the generated Secret');
    const config = one(objects, 'ConfigMap', 'agentk-config');
    assert.ok(pod.volumes.some((v: K8sObject) => v.configMap?.name === config.metadata.name));
    const configFile = join(dir, 'base-agent.yaml');
    await writeFile(configFile, config.data['agent.yaml']);
    const loaded = loadAgentConfig({ AGENTK_KAS_URL: 'wss://kas:8150', AGENTK_TOKEN_FILE: '/dev/null', AGENTK_CONFIG: configFile });
    assert.equal(loaded.file.kubernetes?.inCluster, true);

    const budget = one(objects, 'PodDisruptionBudget');
    assert.equal(budget.spec.minAvailable, 1);
    for (const [key, value] of Object.entries(budget.spec.selector.matchLabels as Record<string, string>)) {
      assert.equal(deployment.spec.template.metadata.labels[key], value, 'the PDB selects the pods');
    }
    assert.deepEqual(deployment.spec.selector.matchLabels, budget.spec.selector.matchLabels);
  });

  test('the overlays render: a private CA for wss:// and a Prometheus URL', async () => {
    const withCa = await render('agentk/overlays/private-ca');
    const pod = one(withCa, 'Deployment').spec.template.spec;
    const container = pod.containers[0];
    const caFile = (container.env as EnvVar[]).find((e) => e.name === 'AGENTK_CA_FILE')?.value;
    const mount = (container.volumeMounts as { name: string; mountPath: string }[]).find((m) => caFile?.startsWith(`${m.mountPath}/`));
    assert.ok(mount, 'AGENTK_CA_FILE is in a mounted volume');
    const volume = (pod.volumes as K8sObject[]).find((v) => v.name === mount.name)!;
    const secret = one(withCa, 'Secret', volume.secret.secretName);
    assert.equal(Buffer.from(secret.data[caFile!.slice(mount.mountPath.length + 1)], 'base64').toString(), pki.caPem);

    const withPrometheus = await render('agentk/overlays/prometheus');
    const config = one(withPrometheus, 'ConfigMap', 'agentk-config');
    const file = join(dir, 'prometheus-agent.yaml');
    await writeFile(file, config.data['agent.yaml']);
    const loaded = loadAgentConfig({ AGENTK_KAS_URL: 'wss://kas:8150', AGENTK_TOKEN_FILE: '/dev/null', AGENTK_CONFIG: file });
    assert.match(loaded.file.prometheus?.url ?? '', /^http/);
    const volumes = one(withPrometheus, 'Deployment').spec.template.spec.volumes as K8sObject[];
    assert.ok(volumes.some((v) => v.configMap?.name === config.metadata.name), 'the Deployment mounts the replaced config');
  });

  describe('the rendered agentk container, run as a process in a simulated pod', () => {
    let sim: KubeSim;
    let cluster: KasCluster;
    let agentk: Proc | undefined;
    const saToken = `sa-${randomBytes(8).toString('hex')}`;
    before(async () => {
      sim = await startKubeSim({ tls: pki, token: saToken });
      sim.api.create('pods', makePod({ name: 'web-0', namespace: 'shop' }));
      sim.api.create('secrets', { metadata: { name: 'db', namespace: 'shop' }, stringData: { password: 'x' } });
      cluster = await KasCluster.start({ env: { KAS_AGENT_TLS_CERT_FILE: pki.certFile, KAS_AGENT_TLS_KEY_FILE: pki.keyFile, KAS_ROUTING_TIMEOUT: '5s' } });
    });
    after(async () => {
      await agentk?.stop();
      await cluster?.stop();
      await sim?.stop();
    });

    test('connects to kas over wss:// with the private CA and serves a list with its service account', async (t) => {
      const token = await cluster.registerAgent('in-cluster');
      await writeFile(join(dir, 'kubernetes/agentk/base/agent.token'), `${token}\n`);
      const objects = await render('agentk/overlays/private-ca');
      const pod = one(objects, 'Deployment').spec.template.spec;
      const root = join(dir, 'pod-root');
      await layOutMounts(objects, pod, pod.containers[0], root);
      // What the kubelet mounts for the service account.
      const serviceAccount = join(root, 'var/run/secrets/kubernetes.io/serviceaccount');
      await mkdir(serviceAccount, { recursive: true });
      await Promise.all([
        writeFile(join(serviceAccount, 'token'), saToken),
        writeFile(join(serviceAccount, 'ca.crt'), pki.caPem),
        writeFile(join(serviceAccount, 'namespace'), one(objects, 'Namespace').metadata.name),
      ]);
      const obs = await freePort();
      const { command, args, env } = asProcess(pod.containers[0], root, { 'metadata.name': 'agentk-7d9f-x2k4q' }, {
        AGENTK_KAS_URL: cluster.nodes[0]!.agentUrl,
        AGENTK_OBSERVABILITY_LISTEN: `127.0.0.1:${obs}`,
        AGENTK_IN_CLUSTER_ROOT: root,
        KUBERNETES_SERVICE_HOST: '127.0.0.1',
        KUBERNETES_SERVICE_PORT: String(sim.port),
      });
      agentk = Proc.start('agentk (rendered)', command, args, { env: { PATH: process.env.PATH ?? '', ...env } });
      dumpOnFailure(t, agentk);
      await agentk.waitForLine(/connected to kas"/, 20_000);

      const apiToken = await cluster.issueToken();
      const res = await cluster.fetch(0, '/api/v1/agents/in-cluster/kubernetes/api/v1/namespaces/shop/pods', { token: apiToken });
      const body = (await res.json()) as { kind: string; items: { metadata: { name: string } }[] };
      assert.equal(res.status, 200, JSON.stringify(body));
      assert.deepEqual(body.items.map((p) => p.metadata.name), ['web-0']);
      const seen = sim.api.requests().find((r) => r.path === '/api/v1/namespaces/shop/pods');
      assert.equal(seen?.headers.authorization, `Bearer ${saToken}`, 'with the service-account token from the standard path');
      const replicas = (await (await cluster.fetch(0, '/api/v1/agents/in-cluster', { token: apiToken })).json()) as { replicas: { replica: string }[] };
      assert.deepEqual(replicas.replicas.map((r) => r.replica), ['agentk-7d9f-x2k4q'], 'named by POD_NAME from the downward API');
      const refused = await cluster.fetch(0, '/api/v1/agents/in-cluster/kubernetes/api/v1/namespaces/shop/secrets', { token: apiToken });
      assert.equal(refused.status, 403, 'the config map policy denies secrets');
      assert.equal((await fetch(`http://127.0.0.1:${obs}/readiness`)).status, 200, 'the readiness probe passes');
    });
  });
});

describe('deploy/kubernetes/kas', () => {
  test('renders 3 nodes, a Service for agents and one for the API, and names Redis without bundling it', async () => {
    const objects = await render('kas');
    const deployment = one(objects, 'Deployment');
    assert.equal(deployment.spec.replicas, 3);
    const pod = deployment.spec.template.spec;
    const container = pod.containers[0];
    checkContainer(pod, container, 'KAS_OBSERVABILITY_LISTEN');
    assert.ok(pod.terminationGracePeriodSeconds > 30, 'longer than the drain timeout');
    const env = new Map((container.env as EnvVar[]).map((e) => [e.name, e]));
    assert.match(env.get('KAS_REDIS_URL')?.value ?? '', /^redis:\/\//);
    assert.ok(!objects.some((o) => /redis/i.test(o.metadata.name) && ['Deployment', 'StatefulSet'].includes(o.kind)), 'Redis is not bundled');
    assert.deepEqual(env.get('KAS_NODE_NAME')?.valueFrom, { fieldRef: { fieldPath: 'metadata.name' } });
    assert.equal(env.get('KAS_PRIVATE_URL')?.value, 'http://$(POD_IP):8155');
    assert.deepEqual(env.get('POD_IP')?.valueFrom, { fieldRef: { fieldPath: 'status.podIP' } });

    const ports = new Map((container.ports as { name: string; containerPort: number }[]).map((p) => [p.name, p.containerPort]));
    for (const [service, portName, listen] of [['kas-agents', 'agents', 'KAS_AGENT_LISTEN'], ['kas-api', 'api', 'KAS_API_LISTEN']] as const) {
      const svc = one(objects, 'Service', service);
      assert.equal(svc.spec.ports.length, 1);
      assert.equal(svc.spec.ports[0].targetPort, portName);
      assert.equal(ports.get(portName), Number(env.get(listen)?.value?.split(':').pop()));
      for (const [key, value] of Object.entries(svc.spec.selector as Record<string, string>)) assert.equal(deployment.spec.template.metadata.labels[key], value);
    }
    for (const file of ['KAS_API_SECRET_FILE', 'KAS_PRIVATE_SECRET_FILE', 'KAS_AGENT_TOKENS_FILE']) {
      const path = env.get(file)!.value!;
      const mount = (container.volumeMounts as { name: string; mountPath: string }[]).find((m) => path.startsWith(`${m.mountPath}/`));
      const volume = (pod.volumes as K8sObject[]).find((v) => v.name === mount?.name);
      assert.ok(volume?.secret && one(objects, 'Secret', volume.secret.secretName).data[path.slice(mount!.mountPath.length + 1)], `${file} comes from a Secret`);
    }
    const budget = one(objects, 'PodDisruptionBudget');
    assert.equal(budget.spec.maxUnavailable, 1);
    assert.deepEqual(budget.spec.selector.matchLabels, deployment.spec.selector.matchLabels);
  });

  describe('the rendered kas container, run as a process', () => {
    let redis: RedisServer;
    let node: Proc | undefined;
    before(async () => {
      redis = await startRedis();
    });
    after(async () => {
      await node?.stop();
      await redis?.stop();
    });

    test('serves as a node of a Redis cluster with the mounted secrets and token store', async (t) => {
      const store = join(dir, 'kubernetes/kas/agents.json');
      await rm(store);
      const registered = await runKas(['agent', 'register', 'prod'], { KAS_AGENT_TOKENS_FILE: store });
      assert.equal(registered.code, 0, registered.stderr);
      const objects = await render('kas');
      const pod = one(objects, 'Deployment').spec.template.spec;
      const root = join(dir, 'kas-root');
      await layOutMounts(objects, pod, pod.containers[0], root);
      const [agents, api, priv, obs] = await Promise.all([freePort(), freePort(), freePort(), freePort()]);
      const { command, args, env } = asProcess(pod.containers[0], root, { 'metadata.name': 'kas-5c8d-abcde', 'status.podIP': '127.0.0.1' }, {
        KAS_REDIS_URL: redis.url,
        KAS_AGENT_LISTEN: `127.0.0.1:${agents}`,
        KAS_API_LISTEN: `127.0.0.1:${api}`,
        KAS_PRIVATE_LISTEN: `127.0.0.1:${priv}`,
        KAS_OBSERVABILITY_LISTEN: `127.0.0.1:${obs}`,
        KAS_DATA_DIR: join(root, 'tmp/kas'),
      });
      assert.equal(env.KAS_PRIVATE_URL, 'http://127.0.0.1:8155', '$(POD_IP) expanded');
      node = Proc.start('kas (rendered)', command, args, { env: { PATH: process.env.PATH ?? '', ...env, KAS_PRIVATE_URL: `http://127.0.0.1:${priv}` } });
      dumpOnFailure(t, node);
      await node.waitFor(async () => (await fetch(`http://127.0.0.1:${obs}/readiness`).catch(() => undefined))?.ok, { timeoutMs: 20_000, what: 'kas ready' });
      const secret = join(root, dirname(env.KAS_API_SECRET_FILE!.slice(root.length)), 'api-secret');
      const issued = await runKas(['token', 'issue', '--sub', 'ops', '--agents', 'prod'], { KAS_API_SECRET_FILE: secret, KAS_REDIS_URL: redis.url });
      assert.equal(issued.code, 0, issued.stderr);
      const res = await waitFor(async () => {
        const r = await fetch(`http://127.0.0.1:${api}/api/v1/agents/prod`, { headers: { authorization: `Bearer ${issued.stdout.trim()}` } });
        return r.status === 200 && r;
      }, { timeoutMs: 5_000, what: 'agent prod known to the node' });
      assert.deepEqual(((await res.json()) as { replicas: unknown[] }).replicas, []);
      assert.match(await readFile(env.KAS_AGENT_TOKENS_FILE!, 'utf8'), /"prod"/);
    });
  });
});
