// The environment of a short-lived Node child of agentk (agent/agentFile.ts, the kubeconfig
// reader): agentk's own plus its compile cache (bin/agentk.js turns it on), so that the child
// reuses the stripped and compiled sources instead of loading Node's TypeScript stripper again,
// which would make the child both slower to start and larger.
import module from 'node:module';

export function childEnv(extra: Record<string, string | undefined> = {}): Record<string, string | undefined> {
  const cache = module.getCompileCacheDir();
  return { ...process.env, ...extra, ...(cache === undefined ? {} : { NODE_COMPILE_CACHE: cache }) };
}
