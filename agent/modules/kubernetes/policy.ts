// The cluster owner's word on what kas may read, from agent.yaml. agentk checks every request
// against it before anything reaches the API server; kas cannot widen it. A refusal names the
// rule that refused, so the owner knows what to change.
import {
  encodedMoreThanOnce,
  type KubernetesTarget,
  qualifiedResource,
  READ_SUBRESOURCES,
  readKubernetesPath,
  subresourceKind,
} from '../../../protocol/kubernetes.ts';

/** A rule of `policy.kubernetes` (agent.yaml; its schema: policySchema.ts). */
interface Rule {
  namespaces: string[];
  resources: string[];
}

/** `policy.kubernetes` of agent.yaml, defaulted. */
export interface KubernetesPolicy {
  allow: Rule[];
  deny: Rule[];
  logs: boolean;
}

/** The policy without a `policy.kubernetes` section (and each field's default in policySchema.ts). */
export const DEFAULT_KUBERNETES_POLICY: KubernetesPolicy = Object.freeze({
  allow: [{ namespaces: ['*'], resources: ['*'] }],
  /** Replaced by `deny` when given; `deny: []` allows secrets. */
  deny: [{ namespaces: ['*'], resources: ['secrets'] }],
  logs: true,
});

/** Why a request is refused, or undefined when the policy lets it through. */
export function policyRefusal(policy: KubernetesPolicy, method: string, path: string): string | undefined {
  if (method !== 'GET' && method !== 'HEAD') return `${method} refused: agentk serves read-only requests (get, list, watch, logs) only`;
  const segments: string[] = [];
  for (const raw of path.split('/').slice(1)) {
    let segment: string;
    try {
      segment = decodeURIComponent(raw);
    } catch {
      return `path ${path} is not valid percent-encoding`;
    }
    if (segment === '' || segment === '.' || segment === '..' || segment.includes('/')) return `path ${path} is not in normal form`;
    segments.push(segment);
  }
  if (encodedMoreThanOnce(segments)) return `path ${path} refused: it is percent-encoded more than once`;
  const target = readKubernetesPath(segments);
  if (target.kind === 'discovery') return undefined;
  if (target.kind === 'other') return `path ${target.path} is not a Kubernetes resource or discovery path`;
  const sub = target.subresource?.split('/')[0];
  const kind = subresourceKind(target);
  if (kind === 'forbidden') return `${target.resource}/${sub ?? target.resource} refused: agentk never serves exec, attach, port-forward or proxy`;
  if (kind === 'unknown') {
    return `${target.resource}/${target.subresource} refused: agentk serves only the ${[...READ_SUBRESOURCES].join(', ')} subresources`;
  }
  const resource = qualifiedResource(target);
  const namespace = target.namespace ?? (target.resource === 'namespaces' && target.group === '' ? target.name : undefined);
  const where = namespace === undefined ? 'across all namespaces' : `in namespace ${namespace}`;

  for (const [index, rule] of policy.deny.entries()) {
    if (matches(rule, target, namespace, 'deny')) {
      return `policy.kubernetes.deny[${index}] (${describe(rule)}) refuses ${resource} ${where}`;
    }
  }
  if (sub === 'log' && !policy.logs) return `policy.kubernetes.logs is false: this cluster's owner does not share pod logs`;
  if (!policy.allow.some((rule) => matches(rule, target, namespace, 'allow'))) {
    return `no rule in policy.kubernetes.allow covers ${resource} ${where}`;
  }
  return undefined;
}

function matches(
  rule: Rule,
  target: Extract<KubernetesTarget, { kind: 'resource' }>,
  namespace: string | undefined,
  as: 'allow' | 'deny',
): boolean {
  const resourceMatches = rule.resources.some((r) => r === '*' || r === target.resource || r === qualifiedResource(target));
  if (!resourceMatches) return false;
  if (rule.namespaces.includes('*')) return true;
  // A request spanning every namespace (or a cluster-scoped one) reaches into the named ones
  // too: a deny rule for any namespace catches it, an allow rule for some namespaces does not.
  if (namespace === undefined) return as === 'deny';
  return rule.namespaces.includes(namespace);
}

function describe(rule: Rule): string {
  return `namespaces: ${rule.namespaces.join(', ')}; resources: ${rule.resources.join(', ')}`;
}
