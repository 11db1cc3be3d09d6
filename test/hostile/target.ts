// The real processes a family of hostile cases runs against: one kas node (its own process, as
// an operator starts it), an agentk replica of agent `good` reaching a stand-in Prometheus and
// the Kubernetes API simulator, and what the runner needs to sign and forge tokens (the node's
// secrets, from its data dir) and to tell whether a request reached an upstream.
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makePod, startKubeSim, type KubeSim } from '../../demo/k8sSim.ts';
import { type AgentReplica, KasCluster, type KasNode } from '../support/kas.ts';
import { startFakeUpstream, type FakeUpstream } from '../support/upstream.ts';

export interface UpstreamMark {
  prometheus: number;
  kube: number;
}

export interface HostileTarget {
  cluster: KasCluster;
  node: KasNode;
  ports: { api: number; private: number; agent: number; observability: number };
  apiSecret: Uint8Array;
  privateSecret: Uint8Array;
  /** An API token for agent `good` (the default of every case). */
  token: string;
  /** agentk's token for agent `good`. */
  agentToken: string;
  good: AgentReplica;
  prometheus: FakeUpstream;
  kube: KubeSim;
  /** Where the upstreams' request logs stand now. */
  mark(): UpstreamMark;
  /** The headers of each request the upstreams saw since `mark`. */
  headersSince(mark: UpstreamMark): Record<string, unknown>[];
  stop(): Promise<void>;
}

const port = (url: string) => Number(new URL(url).port);

async function secret(dir: string, name: string): Promise<Uint8Array> {
  return new Uint8Array(Buffer.from((await readFile(join(dir, name), 'utf8')).trim(), 'base64'));
}

export async function startHostileTarget(options: { env?: Record<string, string> } = {}): Promise<HostileTarget> {
  const dir = await mkdtemp(join(tmpdir(), 'kas-hostile-'));
  const [prometheus, kube] = await Promise.all([startFakeUpstream(), startKubeSim({ token: 'sa', anonymous: true })]);
  kube.api.create('pods', makePod({ name: 'web-0', namespace: 'default' }));
  const cluster = await KasCluster.start({ env: { LOG_LEVEL: 'info', ...options.env } });
  try {
    const node = cluster.nodes[0]!;
    const agentToken = await cluster.registerAgent('good');
    await cluster.registerAgent('other');
    const token = await cluster.issueToken({ agents: ['good'] });
    const kubeconfig = join(dir, 'kubeconfig');
    await writeFile(kubeconfig, kube.kubeconfig());
    const good = await cluster.startAgent({
      id: 'good',
      token: agentToken,
      configYaml: `prometheus:\n  url: ${prometheus.url}\nkubernetes:\n  kubeconfig: ${kubeconfig}\n`,
      env: { LOG_LEVEL: 'info' },
    });
    const dataDir = cluster.env.KAS_DATA_DIR!;
    return {
      cluster,
      node,
      ports: { api: port(node.apiUrl), private: port(node.privateUrl), agent: port(node.agentUrl), observability: port(node.observabilityUrl) },
      apiSecret: await secret(dataDir, 'api-secret'),
      privateSecret: await secret(dataDir, 'private-secret'),
      token,
      agentToken,
      good,
      prometheus,
      kube,
      mark: () => ({ prometheus: prometheus.requests.length, kube: kube.api.requests().length }),
      headersSince: (mark) => [
        ...prometheus.requests.slice(mark.prometheus).map((r) => r.headers),
        ...kube.api.requests().slice(mark.kube).map((r) => r.headers),
      ],
      async stop() {
        await cluster.stop();
        await Promise.all([prometheus.stop(), kube.stop()]);
        await rm(dir, { recursive: true, force: true });
      },
    };
  } catch (error) {
    await cluster.stop();
    await Promise.all([prometheus.stop(), kube.stop()]);
    await rm(dir, { recursive: true, force: true });
    throw error;
  }
}
