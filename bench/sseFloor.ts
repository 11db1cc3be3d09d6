// A child process of bench/live.ts: the least an SSE server can hold per viewer, to judge kas's
// memory per live-graph viewer against. A bare node:http server on a free loopback port (printed
// on stdout as `port <n>`) that answers every GET as kas answers a live graph (the same head, a
// `retry`, a snapshot event) and writes one small append to every open stream per step, aligned to
// the wall clock. No authentication, no routing, no window: only the connections themselves.
import http from 'node:http';
import type { AddressInfo } from 'node:net';

const STEP_MS = Number(process.argv[2] ?? 5) * 1000;
const open = new Set<http.ServerResponse>();

const server = http.createServer((req, res) => {
  req.resume();
  const t = Math.floor(Date.now() / STEP_MS) * (STEP_MS / 1000);
  res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', 'x-accel-buffering': 'no' });
  res.write(`retry: 2000\n\nid: ${t}\nevent: snapshot\ndata: {"t":${t},"series":[{"metric":{},"values":[[${t},"1"]]}]}\n\n`);
  open.add(res);
  res.on('close', () => open.delete(res));
});
server.keepAliveTimeout = 0;
server.headersTimeout = 0;
server.requestTimeout = 0;

function tick(): void {
  const t = Math.floor(Date.now() / STEP_MS) * (STEP_MS / 1000);
  const event = `id: ${t}\nevent: append\ndata: {"t":${t},"series":[{"metric":{},"values":[[${t},"1"]]}]}\n\n`;
  for (const res of open) res.write(event);
  setTimeout(tick, STEP_MS - (Date.now() % STEP_MS));
}

server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`port ${(server.address() as AddressInfo).port}\n`);
  setTimeout(tick, STEP_MS - (Date.now() % STEP_MS));
});
process.on('SIGTERM', () => process.exit(0));
