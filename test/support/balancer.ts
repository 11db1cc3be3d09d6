// A TCP load balancer in front of kas nodes, as operators run one: it sends each new connection
// to a node whose /readiness answered 200 at its last poll (every 200 ms), taking turns.
import net from 'node:net';

export interface Backend {
  /** host:port connections go to. */
  address: () => string;
  /** Where its readiness is polled. */
  readinessUrl: () => string;
}

export interface Balancer {
  port: number;
  url(scheme: 'http' | 'ws'): string;
  /** The backends that were ready at the last poll. */
  ready(): Backend[];
  stop(): Promise<void>;
}

export async function startBalancer(backends: Backend[], pollMs = 200): Promise<Balancer> {
  let ready: Backend[] = [];
  let turn = 0;
  const poll = async () => {
    const states = await Promise.all(
      backends.map(async (b) => (await fetch(b.readinessUrl(), { signal: AbortSignal.timeout(pollMs) }).catch(() => undefined))?.status === 200),
    );
    ready = backends.filter((_, i) => states[i]);
  };
  await poll();
  const timer = setInterval(() => void poll(), pollMs);
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const choice = ready.length > 0 ? ready[turn++ % ready.length]! : undefined;
    if (!choice) return client.destroy();
    const [host, port] = choice.address().split(':');
    const upstream = net.connect(Number(port), host);
    sockets.add(client).add(upstream);
    const close = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on('error', close).on('close', close);
    upstream.on('error', close).on('close', close);
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    url: (scheme) => `${scheme}://127.0.0.1:${port}`,
    ready: () => ready,
    async stop() {
      clearInterval(timer);
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
