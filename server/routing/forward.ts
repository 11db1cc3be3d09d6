// kas-to-kas: hands a request to the node that holds a replica of the agent, over that node's
// private port, and pipes the answer back. Bytes travel over this HTTP hop (with TCP's own
// backpressure), never through Redis.
import http from 'node:http';
import https from 'node:https';
import { context, propagation } from '@opentelemetry/api';
import type { Response } from 'express';
import { HOP_BY_HOP } from '../tunnel/toResponse.ts';
import type { AgentRequestSpec } from './spec.ts';
import type { ReplicaInfo } from './registry.ts';

/** Set by a node that no longer holds the replica, before any byte: the sender may try another. */
export const NOT_HERE_HEADER = 'x-kas-not-here';

export class ForwardConnectError extends Error {
  override name = 'ForwardConnectError';
}

/**
 * `broken`: the connection to the node was up but closed before any answer (e.g. the replica
 * died mid-answer there): the node is reachable, and nothing has been written to the caller.
 */
export type ForwardOutcome =
  | { kind: 'not_here' }
  | { kind: 'broken'; message: string }
  | { kind: 'answered'; status: number; bytes: number };

// Uncapped: every forwarded watch or log follow holds its connection while it lives, and a cap
// would leave the ones beyond it queued, unanswered, until another ends.
const agents = {
  http: new http.Agent({ keepAlive: true }),
  https: new https.Agent({ keepAlive: true }),
};

export function privatePath(spec: AgentRequestSpec): string {
  const query = spec.query ? `?${spec.query}` : '';
  return `/private/v1/agents/${spec.agentId}/${spec.upstream}${spec.path}${query}`;
}

export function forwardToNode(
  replica: ReplicaInfo,
  spec: AgentRequestSpec,
  privateToken: string,
  /** The caller's request: only whether its connection is gone is read. */
  req: { readonly destroyed: boolean },
  res: Response,
  endSignal?: AbortSignal,
  /** Counts the body bytes passed to the caller as they go (for the request's log line). */
  served: { bytes: number } = { bytes: 0 },
): Promise<ForwardOutcome> {
  const url = new URL(privatePath(spec), replica.nodeUrl);
  const secure = url.protocol === 'https:';
  const headers: http.OutgoingHttpHeaders = {
    ...spec.headers,
    authorization: `Bearer ${privateToken}`,
    'x-kas-timeout-ms': String(spec.timeoutMs),
  };
  delete headers.traceparent;
  delete headers.tracestate;
  // The trace context of this hop (the http instrumentation replaces it with its client span's).
  propagation.inject(context.active(), headers);
  if (spec.body) headers['content-length'] = String(spec.body.byteLength);

  return new Promise((resolve, reject) => {
    let answered = false;
    let abandoned = false;
    const outgoing = (secure ? https : http).request(url, {
      method: spec.method,
      headers,
      agent: secure ? agents.https : agents.http,
    });
    // Only a failure to connect says the node is unreachable; one on a live connection does not.
    let connected = false;
    outgoing.on('socket', (socket) => {
      if (!socket.connecting) connected = true;
      else socket.once('connect', () => (connected = true));
    });
    const onCallerGone = () => {
      abandoned = true;
      outgoing.destroy();
    };
    res.on('close', onCallerGone);

    outgoing.on('response', (incoming) => {
      answered = true;
      if (incoming.headers[NOT_HERE_HEADER]) {
        incoming.resume();
        res.off('close', onCallerGone);
        return resolve({ kind: 'not_here' });
      }
      if (res.headersSent || res.destroyed) {
        incoming.destroy();
        return resolve({ kind: 'answered', status: 499, bytes: served.bytes });
      }
      for (const [name, value] of Object.entries(incoming.headers)) {
        if (value !== undefined && !HOP_BY_HOP.has(name)) res.setHeader(name, value);
      }
      res.writeHead(incoming.statusCode ?? 502);
      res.flushHeaders();
      // This node is going away: end the caller's stream cleanly, so it resumes elsewhere.
      const onEndSignal = () => {
        res.off('close', onCallerGone);
        incoming.destroy();
        outgoing.destroy();
        res.end();
        resolve({ kind: 'answered', status: incoming.statusCode ?? 502, bytes: served.bytes });
      };
      if (endSignal?.aborted) return onEndSignal();
      endSignal?.addEventListener('abort', onEndSignal, { once: true });
      res.once('close', () => endSignal?.removeEventListener('abort', onEndSignal));
      incoming.on('data', (chunk: Buffer) => {
        if (res.writableEnded) return;
        served.bytes += chunk.byteLength;
        if (!res.write(chunk)) incoming.pause();
      });
      res.on('drain', () => incoming.resume());
      incoming.on('end', () => {
        if (!res.writableEnded) res.end();
        resolve({ kind: 'answered', status: incoming.statusCode ?? 502, bytes: served.bytes });
      });
      incoming.on('error', () => {
        res.destroy();
        resolve({ kind: 'answered', status: incoming.statusCode ?? 502, bytes: served.bytes });
      });
      incoming.on('aborted', () => res.destroy());
    });
    outgoing.on('error', (error: NodeJS.ErrnoException) => {
      res.off('close', onCallerGone);
      if (answered) return;
      // The caller left (or kas answered it already, e.g. 504): not the other node's fault.
      if (abandoned || res.headersSent || req.destroyed) return resolve({ kind: 'answered', status: 499, bytes: served.bytes });
      if (connected) {
        return resolve({ kind: 'broken', message: `kas node ${replica.node} closed the connection before answering (${error.code ?? error.message})` });
      }
      reject(new ForwardConnectError(`could not reach kas node ${replica.node} at ${replica.nodeUrl}: ${error.code ?? error.message}`));
    });
    outgoing.end(spec.body);
  });
}
