// What the dashboard tests run against: one real kas node (with KAS_TRACE_UI_URL set), a real
// Prometheus, the Kubernetes API simulator with a namespace of pods, and agentk reaching both.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KasCluster } from '../support/kas.ts';
import { type KubeSim, makeDeployment, makePod, startKubeSim } from '../../demo/k8sSim.ts';
import { startPrometheus, type PrometheusServer } from '../support/prometheus.ts';
import { makeTestPki } from '../support/tls.ts';

export const TRACE_UI_URL = 'http://jaeger.example:16686/trace/{traceId}';
const CLUSTER_TOKEN = 'dashboard-test-cluster-token';

export interface DashboardStack {
  cluster: KasCluster;
  prometheus: PrometheusServer;
  sim: KubeSim;
  /** An API token for every agent. */
  token: string;
  agentId: string;
  url: string;
  stop(): Promise<void>;
}

export async function startDashboardStack(options: { pods?: number } = {}): Promise<DashboardStack> {
  const dir = await mkdtemp(join(tmpdir(), 'kas-dashboard-'));
  // client-node (in agentk) speaks to an API server over https only.
  const pki = await makeTestPki(join(dir, 'pki'));
  const [prometheus, sim, cluster] = await Promise.all([
    startPrometheus(),
    startKubeSim({ tls: pki, token: CLUSTER_TOKEN, bookmarkIntervalMs: 1_000 }),
    KasCluster.start({ env: { KAS_TRACE_UI_URL: TRACE_UI_URL } }),
  ]);
  const pods = options.pods ?? 5;
  for (let i = 0; i < pods; i++) sim.api.create('pods', makePod({ name: `web-${i}`, namespace: 'shop', labels: { app: 'web' }, containers: ['app', 'sidecar'] }));
  sim.api.create('deployments', makeDeployment({ name: 'web', namespace: 'shop', replicas: pods }));
  const first = sim.api.get('pods', 'shop', 'web-0');
  if (first) {
    sim.api.create('events', {
      metadata: { name: 'web-0.pulled', namespace: 'shop' },
      involvedObject: { kind: 'Pod', name: 'web-0', namespace: 'shop', uid: first.metadata?.uid },
      reason: 'Pulled',
      message: 'Container image "registry.example/app:1.0" already present on machine',
      type: 'Normal',
      source: { component: 'kubelet' },
      lastTimestamp: new Date().toISOString(),
    });
  }
  const kubeconfig = join(dir, 'kubeconfig');
  await writeFile(kubeconfig, sim.kubeconfig({ caFile: pki.caFile, token: CLUSTER_TOKEN }));
  const agentId = 'prod';
  const agentToken = await cluster.registerAgent(agentId);
  const token = await cluster.issueToken({ sub: 'operator', agents: ['*'] });
  await cluster.startAgent({
    id: agentId,
    token: agentToken,
    configYaml: `prometheus:\n  url: ${prometheus.url}\nkubernetes:\n  kubeconfig: ${kubeconfig}\n`,
  });
  await cluster.waitForReplicas(agentId, 1, token);
  return {
    cluster,
    prometheus,
    sim,
    token,
    agentId,
    url: cluster.nodes[0]!.apiUrl,
    async stop() {
      await cluster.stop();
      await Promise.all([prometheus.stop(), sim.stop()]);
      await rm(dir, { recursive: true, force: true });
    },
  };
}
