// Answering an error kas itself produces. The body is in the caller's language: the capability
// the URL is for renders it (the Prometheus envelope, a Kubernetes Status); anything else gets
// kas's own shape.
import type { Response } from 'express';
import { KasError } from '../routing/errors.ts';

export { KasError };

/** Renders an error's body in one language. */
export type ErrorBody = (error: KasError, traceId: string) => unknown;

export const kasErrorBody: ErrorBody = (error, traceId) => ({ error: { code: error.code, message: error.message, traceId } });

export function sendError(res: Response, error: KasError, body: ErrorBody = kasErrorBody): void {
  if (res.headersSent) {
    cutShort(res, error);
    return;
  }
  const traceId = String(res.getHeader('x-trace-id') ?? '');
  if (error.retryAfterSeconds !== undefined) res.setHeader('Retry-After', String(error.retryAfterSeconds));
  if (error.status === 401) res.setHeader('WWW-Authenticate', 'Bearer realm="kas", Basic realm="kas"');
  // The rest of a body refused unread (too large, too slow, not wanted) would be taken for the next
  // request on the connection: there is no next one.
  if (!res.req.complete || error.code === 'payload_too_large' || error.code === 'request_timeout') res.setHeader('Connection', 'close');
  // With node:http's own calls (what express's res.json would send), so that an answer express
  // never saw (apiApp.ts's direct path) is answered alike.
  const payload = JSON.stringify(body(error, traceId));
  res.statusCode = error.status;
  res.setHeader('Content-Type', 'application/json; charset=utf-8');
  res.setHeader('Content-Length', Buffer.byteLength(payload));
  res.end(payload);
}

/**
 * Ends an answer that has begun without its end (a chunked body without its last chunk): the only
 * honest signal left once the head is out. What was written before is sent first: node:http corks
 * the socket for each chunked write until the next tick, and destroying it in the same tick (the
 * agent's event and its failure read from one TCP segment) would drop those bytes unsent.
 */
export function cutShort(res: Response, error?: Error): void {
  const socket = res.socket;
  while (socket && socket.writableCorked > 0) socket.uncork();
  res.destroy(error);
}
