// Which cluster agentk talks to, and as whom: @kubernetes/client-node's KubeConfig (the in-cluster
// service account, a kubeconfig file and context, or the default kubeconfig) read in a short-lived
// child process, which hands back the current cluster and user as plain data. The library is
// large: importing it costs agentk about 55 MB of RSS for as long as it runs (its generated API
// models load with KubeConfig), for what is a few fields read once. Only a user whose credentials
// come from a plugin (exec, an auth provider) needs the library while agentk runs, to run the plugin
// and cache what it returns; ClusterAccess loads it then.
//
// Run as a program (`node kubeconfig.ts <settings JSON>`), this file is that child: it prints one
// line of JSON, the config or the error to report.
import { execFile } from 'node:child_process';
import { homedir } from 'node:os';
import { fileURLToPath } from 'node:url';
import type { Cluster, User } from '@kubernetes/client-node';
import { type ChildOutput, childEnv, childResult } from '../../childEnv.ts';

export interface KubernetesSettings {
  inCluster?: boolean | undefined;
  kubeconfig?: string | undefined;
  context?: string | undefined;
}

/** The current cluster and user of a KubeConfig, as plain data. */
export interface ClusterConfig {
  cluster: Cluster;
  user: User | null;
}

interface ChildInput {
  settings: KubernetesSettings;
  /** Directory the in-cluster service-account files are under (AGENTK_IN_CLUSTER_ROOT). */
  inClusterRoot?: string | undefined;
}

/** Reads the cluster access the settings name, in a child process (see above). */
export async function loadKubeConfig(
  settings: KubernetesSettings,
  env: Record<string, string | undefined>,
  options: { inClusterRoot?: string } = {},
): Promise<ClusterConfig> {
  const input: ChildInput = { settings, inClusterRoot: options.inClusterRoot };
  const stdout = await new Promise<string>((resolve, reject) => {
    execFile(
      process.execPath,
      [fileURLToPath(import.meta.url), JSON.stringify(input)],
      { env: childEnv(env), maxBuffer: 16 * 1024 * 1024, timeout: 30_000 },
      (error, out, err) => {
        if (error && !out) return reject(new Error(`could not read the Kubernetes config: ${err.trim() || error.message}`));
        resolve(out);
      },
    );
  });
  return childResult<ClusterConfig>(stdout);
}

/** The child: loads the KubeConfig as agentk always did, checks it, prints its current cluster and user. */
async function resolveInChild(input: ChildInput): Promise<ClusterConfig> {
  const { KubeConfig } = await import('@kubernetes/client-node');
  const { settings } = input;
  const kc = new KubeConfig();
  const inCluster = settings.inCluster ?? (settings.kubeconfig === undefined && process.env.KUBERNETES_SERVICE_HOST !== undefined);
  if (inCluster) {
    if (!process.env.KUBERNETES_SERVICE_HOST) {
      throw new Error('kubernetes.inCluster is true but KUBERNETES_SERVICE_HOST is not set: is agentk running in a pod?');
    }
    kc.loadFromCluster(input.inClusterRoot?.replace(/\/+$/, '') ?? '');
  } else if (settings.kubeconfig) {
    kc.loadFromFile(settings.kubeconfig.replace(/^~(?=\/)/, homedir()));
  } else {
    kc.loadFromDefault();
  }
  if (settings.context) kc.setCurrentContext(settings.context);
  const cluster = kc.getCurrentCluster();
  if (!cluster) {
    throw new Error(`no cluster in the kubeconfig${settings.context ? ` for context ${settings.context}` : ''}; set kubernetes.kubeconfig and kubernetes.context`);
  }
  if (!/^https?:\/\//.test(cluster.server)) throw new Error(`the cluster's server ${cluster.server} is neither http:// nor https://`);
  return { cluster, user: kc.getCurrentUser() };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const input = JSON.parse(process.argv[2] ?? '{}') as ChildInput;
  let output: ChildOutput<ClusterConfig>;
  try {
    output = { config: await resolveInChild(input) };
  } catch (error) {
    output = { error: (error as Error).message };
  }
  process.stdout.write(`${JSON.stringify(output)}\n`);
}
