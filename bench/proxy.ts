// The bench's baseline hop: the plainest reverse proxy a team would put in front of Prometheus,
// express with http-proxy-middleware and keep-alive to the upstream. No auth, no checks.
import http from 'node:http';
import express from 'express';
import { createProxyMiddleware } from 'http-proxy-middleware';

const target = process.env.PROXY_TARGET;
if (!target) throw new Error('set PROXY_TARGET to the Prometheus URL');

const app = express();
app.disable('x-powered-by');
app.set('etag', false);
app.use(createProxyMiddleware({ target, agent: new http.Agent({ keepAlive: true, maxSockets: 256 }) }));

const server = app.listen(Number(process.env.PROXY_PORT ?? 0), '127.0.0.1', () => {
  const address = server.address();
  process.stdout.write(`proxy listening on ${typeof address === 'object' && address ? address.port : address}\n`);
});
process.once('SIGTERM', () => server.close(() => process.exit(0)));
