// agentk's short-lived Node children (agent/agentFile.ts, the kubeconfig reader), which read
// something once with a library agentk should not keep in memory and print one line of JSON:
// their environment, and what they said.
import module from 'node:module';

/**
 * agentk's environment plus its compile cache (bin/agentk.js turns it on), so that the child
 * reuses the stripped and compiled sources instead of loading Node's TypeScript stripper again,
 * which would make it both slower to start and larger.
 */
export function childEnv(extra: Record<string, string | undefined> = {}): Record<string, string | undefined> {
  const cache = module.getCompileCacheDir();
  return { ...process.env, ...extra, ...(cache === undefined ? {} : { NODE_COMPILE_CACHE: cache }) };
}

/** What a child said, on its last line: `{ "config": … }`, or `{ "error": … }`, thrown. */
export type ChildOutput<T> = { config: T } | { error: string };

export function childResult<T>(stdout: string): T {
  const output = JSON.parse(stdout.trim().split('\n').at(-1)!) as ChildOutput<T>;
  if ('error' in output) throw new Error(output.error);
  return output.config;
}
