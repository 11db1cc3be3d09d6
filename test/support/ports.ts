import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';

/**
 * A loopback port that was free a moment ago, for a server a test is about to start.
 *
 * Chosen at random BELOW the kernel's ephemeral range (ip_local_port_range, usually 32768-60999):
 * a port the kernel hands out itself (listen on port 0) can be taken by any outgoing connection
 * of a parallel test process before our server binds it, and was (agentk failing with
 * EADDRINUSE). Outside that range only another listener can take it, and the random pick makes
 * two test processes choosing the same one in the same instant unlikely. Within one process no
 * port is handed out twice.
 */
export async function freePort(): Promise<number> {
  const [low, high] = portRange();
  for (let attempt = 0; attempt < 200; attempt++) {
    const port = low + Math.floor(Math.random() * (high - low));
    if (handedOut.has(port) || FETCH_BLOCKED.has(port)) continue;
    if (await canBind(port)) {
      handedOut.add(port);
      return port;
    }
  }
  // Every pick was taken (a crowded machine): fall back to one the kernel chooses.
  return kernelPort();
}

const handedOut = new Set<number>();
/**
 * Ports that fetch() and browsers refuse to connect to ("bad port", the Fetch standard's port
 * blocking list), above 1024: a server on one of them is unreachable from undici and chromium
 * (a benchmark failed on 10080).
 */
const FETCH_BLOCKED = new Set([1719, 1720, 1723, 2049, 3659, 4045, 4190, 5060, 5061, 6000, 6566, 6665, 6666, 6667, 6668, 6669, 6679, 6697, 10080]);
let range: [number, number] | undefined;

/** [low, high) outside the ephemeral range, with room for thousands of ports. */
function portRange(): [number, number] {
  if (range) return range;
  let ephemeral: [number, number] = [32768, 60999];
  try {
    const [a, b] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    if (Number.isInteger(a) && Number.isInteger(b)) ephemeral = [a!, b!];
  } catch {
    // not Linux: keep the usual range
  }
  range = ephemeral[0] - 10_000 >= 5_000 ? [10_000, ephemeral[0]] : [ephemeral[1] + 1, 65_536];
  if (range[1] - range[0] < 1_000) range = [10_000, 65_536];
  return range;
}

function canBind(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.unref();
    server.once('error', () => resolve(false));
    server.listen({ port, host: '127.0.0.1', exclusive: true }, () => server.close(() => resolve(true)));
  });
}

function kernelPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      if (address === null || typeof address === 'string') {
        server.close();
        reject(new Error('could not read the port of a loopback listener'));
        return;
      }
      server.close(() => resolve(address.port));
    });
  });
}
