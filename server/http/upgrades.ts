// Requests Node does not hand to the request listener: connection upgrades (`Upgrade:`) on a port
// whose socket.io takes upgrades, CONNECT, and an Expect other than 100-continue. socket.io takes its own path's upgrades; without
// this, every other upgrade request would hang until socket.io dropped it a second later, with
// no answer, and a CONNECT would be closed. Here they are answered as ordinary requests by the
// port's own handler (which sees the Upgrade header like any other: the Kubernetes allow-list
// refuses exec and friends, a prometheus query is answered as a query); none is ever upgraded.
import { type IncomingMessage, type RequestListener, type Server, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { KasError, kasErrorBody } from './errors.ts';
import { fallbackTraceId } from './traceContext.ts';

export const SOCKET_IO_PATH = '/socket.io/';

/** CONNECT on a port that is no proxy: a 403 that says so, in kas's own shape. */
export const refuseConnect: RequestListener = (_req, res) => {
  const traceId = fallbackTraceId(undefined);
  const body = JSON.stringify(kasErrorBody(new KasError('forbidden', 'kas is no proxy: CONNECT is not allowed'), traceId));
  res.writeHead(403, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': Buffer.byteLength(body), 'X-Trace-Id': traceId });
  res.end(body);
};

/**
 * Answers upgrade requests for paths other than socket.io's with `handler`, CONNECT with
 * `connect`, and requests whose Expect is not 100-continue with `handler` as if it were not there
 * (RFC 9110 lets a server ignore it; Node would answer a bare 417).
 */
export function answerEveryRequest(server: Server, handler: RequestListener, connect: RequestListener = handler): void {
  server.on('checkExpectation', handler);
  const answer = (req: IncomingMessage, socket: Duplex, head: Buffer, listener: RequestListener) => {
    if (head.byteLength > 0) socket.unshift(head);
    const res = new ServerResponse(req);
    res.shouldKeepAlive = false;
    res.assignSocket(socket as Parameters<ServerResponse['assignSocket']>[0]);
    res.once('finish', () => {
      res.detachSocket(socket as Parameters<ServerResponse['detachSocket']>[0]);
      socket.end();
    });
    socket.once('error', () => socket.destroy());
    listener(req, res);
  };
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    if (req.url?.startsWith(SOCKET_IO_PATH)) return; // socket.io's own
    answer(req, socket, head, handler);
  });
  server.on('connect', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    answer(req, socket, head, connect);
  });
}
