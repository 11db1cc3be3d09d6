// agent.yaml as a zod schema: each capability's section (absent = that capability off), and the
// owner's policy. Only the short-lived child that checks agent.yaml (agent/agentFile.ts) loads
// it, and tests; agentk itself reads the checked result.
import { z } from 'zod';
import { KubernetesPolicySchema } from './kubernetes/policySchema.ts';

export const AgentFileSchema = z
  .object({
    prometheus: z.object({ url: z.url() }).strict().optional(),
    kubernetes: z
      .object({ inCluster: z.boolean().optional(), kubeconfig: z.string().optional(), context: z.string().optional() })
      .strict()
      .optional(),
    policy: z.object({ kubernetes: KubernetesPolicySchema.optional() }).strict().optional(),
  })
  .strict();
export type AgentFileConfig = z.infer<typeof AgentFileSchema>;
