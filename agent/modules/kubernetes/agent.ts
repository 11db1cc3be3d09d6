// The agent half of the Kubernetes capability: checks the cluster owner's policy, then sends
// the (already kas-checked) read to the API server with agentk's own credentials, from
// @kubernetes/client-node's KubeConfig (in-cluster service account, or a kubeconfig context:
// kubeconfig.ts),
// and streams the answer back untouched. Watches and followed logs stream as they arrive.
import http from 'node:http';
import https from 'node:https';
import { startClientSpan } from '../../../otel/http.ts';
import { isWatch, readKubernetesPath } from '../../../protocol/kubernetes.ts';
import type { TunnelRequest } from '../../../protocol/messages.ts';
import { type UpstreamExecutor, UpstreamError, type UpstreamResponse } from '../../tunnel/serveRequest.ts';
import type { AgentCapability } from '../index.ts';
import { ClusterAccess } from './clusterAccess.ts';
import { type ClusterConfig, loadKubeConfig } from './kubeconfig.ts';
import { DEFAULT_KUBERNETES_POLICY, type KubernetesPolicy, policyRefusal } from './policy.ts';

/** How long a watch may stay silent before agentk sends a blank line to keep every hop open. */
export const WATCH_KEEPALIVE_MS = 30_000;

export const kubernetesExecutor: AgentCapability = async ({ file, env, watchKeepaliveMs, inClusterRoot, log }) => {
  if (!file.kubernetes && !env.KUBERNETES_SERVICE_HOST) {
    log.info('no kubernetes section in the agent config and not in a pod: the kubernetes capability is off');
    return undefined;
  }
  const config = await loadKubeConfig(file.kubernetes ?? {}, env, inClusterRoot === undefined ? {} : { inClusterRoot });
  const policy = file.policy?.kubernetes ?? DEFAULT_KUBERNETES_POLICY;
  log.info({ server: config.cluster.server, policy }, 'kubernetes capability on');
  return kubernetesUpstream(config, policy, { keepaliveMs: watchKeepaliveMs });
};

export function kubernetesUpstream(
  config: ClusterConfig,
  policy: KubernetesPolicy,
  options: { keepaliveMs?: number } = {},
): UpstreamExecutor {
  const access = new ClusterAccess(config);
  const keepaliveMs = options.keepaliveMs ?? WATCH_KEEPALIVE_MS;
  return async (request: TunnelRequest, signal: AbortSignal): Promise<UpstreamResponse> => {
    const refusal = policyRefusal(policy, request.method, request.path);
    if (refusal) throw new UpstreamError('policy_denied', refusal);

    const url = access.url(request.path, request.query);
    const { agent, headers: credentials, auth } = await access.requestOptions();
    const span = startClientSpan(request.method, url);
    const headers: http.OutgoingHttpHeaders = { ...request.headers, ...credentials, ...span.headers };
    const incoming = await new Promise<http.IncomingMessage>((resolve, reject) => {
      const outgoing = (url.protocol === 'https:' ? https : http).request(url, { method: request.method, headers, auth, agent, signal });
      outgoing.on('response', (answer) => {
        span.answered(answer.statusCode ?? 0);
        answer.once('close', () => span.end());
        resolve(answer);
      });
      outgoing.on('error', (error) => {
        span.failed(error);
        span.end();
        reject(error);
      });
      outgoing.end();
    });
    const responseHeaders: Record<string, string | string[]> = {};
    for (const [name, value] of Object.entries(incoming.headers)) if (value !== undefined) responseHeaders[name] = value;
    const watch = isWatch(readKubernetesPath(request.path.split('/').slice(1).map(decodeURIComponent)), new URLSearchParams(request.query));
    const json = /^application\/json\b/.test(String(incoming.headers['content-type'] ?? ''));
    const body = watch && json && incoming.statusCode === 200 ? withIdleKeepalive(incoming, keepaliveMs) : incoming;
    return { status: incoming.statusCode ?? 502, headers: responseHeaders, body };
  };
}

/**
 * Passes a JSON watch stream through and, when it has been silent for `ms` at an event
 * boundary, adds a blank line: JSON stream decoders (kubectl's, client-node's) skip it, and it
 * keeps load balancers and proxies on the way from closing an idle watch.
 */
export async function* withIdleKeepalive(body: AsyncIterable<Uint8Array>, ms: number): AsyncGenerator<Uint8Array> {
  const iterator = body[Symbol.asyncIterator]();
  let atBoundary = true;
  let pending: Promise<IteratorResult<Uint8Array>> | undefined;
  const blank = new Uint8Array([0x0a]);
  try {
    for (;;) {
      pending ??= iterator.next();
      let timer: NodeJS.Timeout | undefined;
      const idle = new Promise<'idle'>((resolve) => (timer = setTimeout(() => resolve('idle'), ms)));
      const next = await Promise.race([pending, idle]).finally(() => clearTimeout(timer));
      if (next === 'idle') {
        if (atBoundary) yield blank;
        continue;
      }
      pending = undefined;
      if (next.done) return;
      if (next.value.byteLength > 0) atBoundary = next.value[next.value.byteLength - 1] === 0x0a;
      yield next.value;
    }
  } finally {
    await iterator.return?.();
  }
}
