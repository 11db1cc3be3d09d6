// The bench's reference hops in front of Prometheus, what a team would put there themselves:
//
//   PROXY_KIND=minimal   a node:http reverse proxy: forward the request, pipe the answer (the
//                        yardstick: the simplest thing that works)
//   PROXY_KIND=express   express with http-proxy-middleware (a common choice; slower itself)
//
// Keep-alive to the upstream; no auth, no checks.
import http from 'node:http';
import express from 'express';
import { createProxyMiddleware } from 'http-proxy-middleware';

const target = process.env.PROXY_TARGET;
if (!target) throw new Error('set PROXY_TARGET to the Prometheus URL');
const upstream = new URL(target);
// Enough sockets for the Kubernetes bench's 500 watches at once, each a stream that stays open.
const agent = new http.Agent({ keepAlive: true, maxSockets: 1024 });

function minimal(): http.Server {
  return http.createServer((req, res) => {
    const out = http.request({ host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: req.headers, agent }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      // A stream (a watch) may not send a byte for a long time: its head goes at once rather than
      // with the first chunk. An answer of known length keeps head and body in one write.
      if (answer.headers['content-length'] === undefined) res.flushHeaders();
      answer.pipe(res);
    });
    out.on('error', () => res.destroy());
    // The caller went away before the end (a watch it closed): so does the request upstream.
    res.once('close', () => {
      if (!res.writableFinished) out.destroy();
    });
    req.pipe(out);
  });
}

function withExpress(): http.Server {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  app.use(createProxyMiddleware({ target, agent }));
  return http.createServer(app);
}

const server = process.env.PROXY_KIND === 'express' ? withExpress() : minimal();
server.listen(Number(process.env.PROXY_PORT ?? 0), '127.0.0.1', () => {
  const address = server.address();
  process.stdout.write(`proxy listening on ${typeof address === 'object' && address ? address.port : address}\n`);
});
process.once('SIGTERM', () => server.close(() => process.exit(0)));
