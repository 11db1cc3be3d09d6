// The observability port of both programs: `/metrics` (Prometheus text), `/liveness` and
// `/readiness` (what a load balancer or a kubelet polls).
import http from 'node:http';
import type { MetricsStack } from './metrics.ts';

export function createObservabilityServer(metrics: MetricsStack, readiness: () => { ready: boolean; why?: string }): http.Server {
  return http.createServer((req, res) => {
    const path = req.url?.split('?')[0];
    if (path === '/metrics') return metrics.serve(req, res);
    if (path === '/liveness') return void res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
    if (path === '/readiness') {
      const { ready, why } = readiness();
      return void res.writeHead(ready ? 200 : 503, { 'content-type': 'text/plain' }).end(ready ? `ready${why ? ` (${why})` : ''}\n` : `${why ?? 'not ready'}\n`);
    }
    res.writeHead(404).end();
  });
}
