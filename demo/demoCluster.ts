// The demo Kubernetes cluster of `npm start`: the API server simulator the tests use
// (demo/k8sSim.ts), on a loopback port, with a namespace `demo` that keeps changing (a
// ConfigMap beats every few seconds, a worker pod logs a line each time), so lists, watches and
// `logs -f` through kas show something live without a real cluster.
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { type KubeSim, makeDeployment, makePod, startKubeSim } from './k8sSim.ts';

export const DEMO_NAMESPACE = 'demo';
const BEAT_MS = 5_000;

export interface DemoCluster {
  url: string;
  /** Stops the changes and the server. */
  stop(): Promise<void>;
}

function seed(sim: KubeSim): void {
  const { api } = sim;
  api.create('deployments', makeDeployment({ name: 'web', namespace: DEMO_NAMESPACE, replicas: 3 }));
  for (const suffix of ['7c9d4-h2x8k', '7c9d4-m4p2q', '7c9d4-z9r5t']) {
    api.create('pods', makePod({ name: `web-${suffix}`, namespace: DEMO_NAMESPACE, labels: { app: 'web' } }));
  }
  api.create('pods', makePod({ name: 'worker-0', namespace: DEMO_NAMESPACE, labels: { app: 'worker' } }));
  api.create('pods', makePod({ name: 'migrate-x7f2c', namespace: DEMO_NAMESPACE, labels: { app: 'migrate' }, phase: 'Succeeded' }));
  api.create('configmaps', { metadata: { name: 'heartbeat', namespace: DEMO_NAMESPACE }, data: { beat: '0' } });
  api.create('secrets', { metadata: { name: 'db-password', namespace: DEMO_NAMESPACE }, type: 'Opaque', data: { password: 'ZGVtbw==' } });
  api.appendLog(DEMO_NAMESPACE, 'worker-0', 'worker started');
}

/**
 * Starts the demo cluster over HTTPS with this certificate (for 127.0.0.1) and writes a
 * kubeconfig for it (its CA, a random token) to `kubeconfigFile`.
 */
export async function startDemoCluster(kubeconfigFile: string, tls: { certFile: string; keyFile: string; caFile: string }): Promise<DemoCluster> {
  const token = randomBytes(24).toString('base64url');
  const sim = await startKubeSim({ token, tls });
  seed(sim);
  let beat = 0;
  const timer = setInterval(() => {
    beat++;
    sim.api.modify('configmaps', DEMO_NAMESPACE, 'heartbeat', (o) => (o.data = { beat: String(beat) }));
    sim.api.appendLog(DEMO_NAMESPACE, 'worker-0', `processed batch ${beat}`);
  }, BEAT_MS);
  timer.unref();
  // Over HTTPS, as kubectl and agentk send credentials to no http:// server.
  await writeFile(kubeconfigFile, `${sim.kubeconfig({ namespace: DEMO_NAMESPACE, caFile: tls.caFile })}\n`, { mode: 0o600 });
  return {
    url: sim.url,
    stop: async () => {
      clearInterval(timer);
      await sim.stop();
    },
  };
}
