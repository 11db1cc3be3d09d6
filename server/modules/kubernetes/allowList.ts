// kas lets only reads through to the Kubernetes API (discovery, get, list, watch, logs), whatever
// the agent's own policy says. Defence in depth: agentk enforces the cluster owner's policy too,
// and a request refused here never reaches any agent.
import { encodedMoreThanOnce, isKubernetesStream, READ_SUBRESOURCES, readKubernetesPath, subresourceKind } from '../../../protocol/kubernetes.ts';
import { KasError } from '../../routing/errors.ts';
import { pickHeaders } from '../headers.ts';
import { encodePath, normalisePath } from '../paths.ts';

/**
 * Request headers the API server may see. Never the caller's Authorization (kas's token is not
 * the cluster's), cookies, or `Impersonate-*` (which would let a caller act as someone else).
 */
const FORWARDED_HEADERS = ['accept', 'accept-encoding', 'user-agent', 'content-type'];

export interface CheckedKubernetesRequest {
  method: 'GET' | 'HEAD';
  path: string;
  headers: Record<string, string>;
  /** A watch or a followed log. */
  streaming: boolean;
}

export function checkKubernetesRequest(request: {
  method: string;
  rawPath: string;
  query: string;
  headers: Readonly<Record<string, string | string[] | undefined>>;
}): CheckedKubernetesRequest {
  const method = request.method;
  if (method !== 'GET' && method !== 'HEAD') {
    throw new KasError('forbidden', `${method} is not allowed on the Kubernetes API through kas: it is read only (get, list, watch, logs)`);
  }
  if (request.headers.upgrade) {
    throw new KasError('forbidden', 'connection upgrades (exec, attach, port-forward) are not allowed on the Kubernetes API through kas');
  }
  const segments = normalisePath(request.rawPath);
  if (encodedMoreThanOnce(segments)) {
    throw new KasError('forbidden', `Kubernetes path ${request.rawPath} is not allowed through kas: it is percent-encoded more than once`);
  }
  const target = readKubernetesPath(segments);
  if (target.kind === 'other') {
    throw new KasError('forbidden', `Kubernetes path ${target.path} is not allowed through kas; only discovery and resource reads are`);
  }
  if (target.kind === 'resource') {
    const kind = subresourceKind(target);
    const what = target.subresource === undefined ? `the Kubernetes ${target.resource} API` : `the ${target.resource}/${target.subresource} subresource`;
    if (kind === 'forbidden') throw new KasError('forbidden', `${what} is not allowed through kas: it is not a read`);
    if (kind === 'unknown') {
      throw new KasError('forbidden', `${what} is not allowed through kas: the subresources it lets through are ${[...READ_SUBRESOURCES].join(', ')}`);
    }
  }
  return {
    method,
    path: encodePath(segments),
    headers: pickHeaders(request.headers, FORWARDED_HEADERS),
    streaming: isKubernetesStream(target, new URLSearchParams(request.query)),
  };
}
