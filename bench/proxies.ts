// Starts the bench's reference proxy (bench/proxy.ts) as a process of its own, in front of any
// HTTP target: Prometheus in the passthrough bench, the Kubernetes API simulator (or another
// proxy, to chain hops) in the Kubernetes bench.
import { fileURLToPath } from 'node:url';
import { Proc } from '../test/support/procs.ts';

export interface StartedProxy {
  url: string;
  port: number;
  pid: number;
  stop(): Promise<unknown>;
}

export async function startProxy(name: string, target: string, kind: 'minimal' | 'express' = 'minimal'): Promise<StartedProxy> {
  const proc = Proc.start(name, process.execPath, [fileURLToPath(new URL('proxy.ts', import.meta.url))], {
    env: { ...process.env, PROXY_TARGET: target, PROXY_KIND: kind },
  });
  const port = Number(/proxy listening on (\d+)/.exec(await proc.waitForLine(/proxy listening on/, 20_000))![1]);
  return { url: `http://127.0.0.1:${port}`, port, pid: proc.child.pid!, stop: () => proc.stop() };
}
