// A scrape target whose series the test sets: series that appear, change and disappear, as real
// workloads' do, for Prometheus to scrape and live graphs to show.
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface ToyMetrics {
  /** host:port, for a Prometheus scrape config. */
  target: string;
  /** The series of `toy_value` by their `series` label; a name left out is gone. */
  set(values: Record<string, number>): void;
  stop(): Promise<void>;
}

export async function startToyMetrics(): Promise<ToyMetrics> {
  let values: Record<string, number> = {};
  const server = createServer((req, res) => {
    if (req.url !== '/metrics') return void res.writeHead(404).end();
    const lines = ['# TYPE toy_value gauge', ...Object.entries(values).map(([name, value]) => `toy_value{series="${name}"} ${value}`)];
    res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' }).end(`${lines.join('\n')}\n`);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    target: `127.0.0.1:${port}`,
    set: (next) => (values = { ...next }),
    stop: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
