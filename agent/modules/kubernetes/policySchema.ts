// `policy.kubernetes` of agent.yaml as a zod schema. Only the short-lived child that checks
// agent.yaml (agent/agentFile.ts) loads it, and tests; agentk itself reads the checked result.
import { z } from 'zod';
import { DEFAULT_KUBERNETES_POLICY, type KubernetesPolicy } from './policy.ts';

const names = z.array(z.string().min(1)).min(1);
const RuleSchema = z.object({ namespaces: names.default(['*']), resources: names.default(['*']) }).strict();
const copy = (rules: KubernetesPolicy['allow']): KubernetesPolicy['allow'] => rules.map((r) => ({ namespaces: [...r.namespaces], resources: [...r.resources] }));

export const KubernetesPolicySchema = z
  .object({
    allow: z.array(RuleSchema).default(() => copy(DEFAULT_KUBERNETES_POLICY.allow)),
    /** Replaces the default (secrets denied) when given; `deny: []` allows secrets. */
    deny: z.array(RuleSchema).default(() => copy(DEFAULT_KUBERNETES_POLICY.deny)),
    logs: z.boolean().default(DEFAULT_KUBERNETES_POLICY.logs),
  })
  .strict() satisfies z.ZodType<KubernetesPolicy>;
