// What both halves of the Kubernetes capability share: what a Kubernetes API path means
// (discovery, or a resource: group, version, namespace, resource, name, subresource) and whether
// a request is a watch or a followed log. kas (its allow-list, its shared watches) and agentk (the
// cluster owner's policy, its keep-alive lines) judge requests by this one reading, so they cannot
// disagree about what a request asks for.
//
// Input is the normalised, decoded segment list (server/modules/paths.ts normalisePath), e.g.
// `api/v1/namespaces/x/pods/y/log` → ['api','v1','namespaces','x','pods','y','log'].

export type KubernetesTarget =
  | { kind: 'discovery'; path: string }
  | {
      kind: 'resource';
      /** '' for the core group. */
      group: string;
      version: string;
      namespace: string | undefined;
      resource: string;
      name: string | undefined;
      subresource: string | undefined;
      /** The deprecated `/watch/` path prefix was used. */
      watchPrefix: boolean;
    }
  | { kind: 'other'; path: string };

/** Subresources that are not reads, whatever the verb: they open a shell, a tunnel or a proxy. */
export const FORBIDDEN_SUBRESOURCES = new Set(['exec', 'attach', 'portforward', 'proxy']);

/**
 * The subresources that are reads (`kubectl logs`, `kubectl get --subresource=status|scale`),
 * compared exactly: the API server's paths are case-sensitive, and anything else (`EXEC`,
 * `exec;x`, `log/extra`) is not something kas and agentk know to be a read.
 */
export const READ_SUBRESOURCES: ReadonlySet<string> = new Set(['log', 'status', 'scale']);

/**
 * What a resource path asks for beyond the resource itself: nothing or a read subresource (`read`),
 * one that opens a shell, tunnel or proxy in any spelling (`forbidden`: also a resource of that
 * name, as the legacy `/api/v1/proxy/…` paths are), or one neither side knows (`unknown`).
 */
export function subresourceKind(target: Extract<KubernetesTarget, { kind: 'resource' }>): 'read' | 'forbidden' | 'unknown' {
  const first = target.subresource?.split('/')[0];
  if (FORBIDDEN_SUBRESOURCES.has(target.resource.toLowerCase())) return 'forbidden';
  if (first === undefined) return 'read';
  // `EXEC`, `exec;x`, `execute`: refused as the worst thing they could be read as.
  const lower = first.toLowerCase();
  if ([...FORBIDDEN_SUBRESOURCES].some((name) => lower.startsWith(name))) return 'forbidden';
  return READ_SUBRESOURCES.has(target.subresource!) ? 'read' : 'unknown';
}

/**
 * A decoded segment that still holds `%` was percent-encoded more than once (`%252e` is `%2e`
 * after one decoding): a server or proxy that decodes again would see another path than the one
 * judged, so both sides refuse it. No Kubernetes name or resource contains `%`.
 */
export function encodedMoreThanOnce(segments: readonly string[]): boolean {
  return segments.some((segment) => segment.includes('%'));
}

export function readKubernetesPath(segments: readonly string[]): KubernetesTarget {
  const path = `/${segments.join('/')}`;
  const [root, ...rest] = segments;
  if (root === 'version' && rest.length === 0) return { kind: 'discovery', path };
  if (root === 'openapi') return { kind: 'discovery', path };
  let group: string;
  let version: string | undefined;
  let tail: string[];
  if (root === 'api') {
    if (rest.length === 0) return { kind: 'discovery', path };
    group = '';
    version = rest[0];
    tail = rest.slice(1);
  } else if (root === 'apis') {
    if (rest.length <= 2) return { kind: 'discovery', path };
    group = rest[0]!;
    version = rest[1];
    tail = rest.slice(2);
  } else {
    return { kind: 'other', path };
  }
  if (!version) return { kind: 'other', path };
  if (tail.length === 0) return { kind: 'discovery', path };
  let watchPrefix = false;
  if (tail[0] === 'watch') {
    watchPrefix = true;
    tail = tail.slice(1);
    if (tail.length === 0) return { kind: 'other', path };
  }
  let namespace: string | undefined;
  // `namespaces/{ns}/{resource}…` is a namespaced resource; `namespaces` and `namespaces/{ns}`
  // (and its own subresources such as `namespaces/{ns}/status`, read as such) are the resource
  // called namespaces.
  if (tail[0] === 'namespaces' && tail.length >= 3 && !isNamespaceSubresource(tail[2]!, tail.length)) {
    namespace = tail[1];
    tail = tail.slice(2);
  }
  const [resource, name, ...sub] = tail;
  return {
    kind: 'resource',
    group,
    version,
    namespace,
    resource: resource!,
    name,
    subresource: sub.length > 0 ? sub.join('/') : undefined,
    watchPrefix,
  };
}

/** `namespaces/{ns}/status` and `/finalize` are subresources of a namespace, not resources in it. */
function isNamespaceSubresource(third: string, length: number): boolean {
  return length === 3 && (third === 'status' || third === 'finalize');
}

/**
 * A boolean query parameter as the API server reads it (Go's strconv.ParseBool): `1`, `t`, `true`
 * in any of Go's spellings are true, `0`, `f`, `false` false; anything else is no answer (the API
 * server refuses it with 400, so kas treats it as not set and lets the API server say so).
 */
function boolParam(query: URLSearchParams, name: string): boolean {
  const value = query.get(name);
  return value !== null && TRUE_VALUES.has(value);
}
const TRUE_VALUES = new Set(['1', 't', 'T', 'TRUE', 'true', 'True']);

/** A watch: `watch=true` on a resource path, or the deprecated `/watch/` prefix. */
export function isWatch(target: KubernetesTarget, query: URLSearchParams): boolean {
  return target.kind === 'resource' && (target.watchPrefix || boolParam(query, 'watch'));
}

/** A pod log with `follow=true`. */
export function isLogFollow(target: KubernetesTarget, query: URLSearchParams): boolean {
  return target.kind === 'resource' && target.subresource === 'log' && boolParam(query, 'follow');
}

/** Whether the request is a long-lived stream: a watch or a followed log. */
export function isKubernetesStream(target: KubernetesTarget, query: URLSearchParams): boolean {
  return isWatch(target, query) || isLogFollow(target, query);
}

/** `pods`, or `deployments.apps` for a non-core group: how policies name resources. */
export function qualifiedResource(target: Extract<KubernetesTarget, { kind: 'resource' }>): string {
  return target.group ? `${target.resource}.${target.group}` : target.resource;
}
