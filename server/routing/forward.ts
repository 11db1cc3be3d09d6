// kas-to-kas: hands a request to the node that holds a replica of the agent, over that node's
// private port, and pipes the answer back. Bytes travel over this HTTP hop (with TCP's own
// backpressure), never through Redis.
import http from 'node:http';
import https from 'node:https';
import type { Request, Response } from 'express';
import { HOP_BY_HOP } from '../tunnel/toResponse.ts';
import type { AgentRequestSpec } from './spec.ts';
import type { ReplicaInfo } from './registry.ts';

/** Set by a node that no longer holds the replica, before any byte: the sender may try another. */
export const NOT_HERE_HEADER = 'x-kas-not-here';

export class ForwardConnectError extends Error {
  override name = 'ForwardConnectError';
}

export type ForwardOutcome = { kind: 'not_here' } | { kind: 'answered'; status: number };

const agents = {
  http: new http.Agent({ keepAlive: true, maxSockets: 512 }),
  https: new https.Agent({ keepAlive: true, maxSockets: 512 }),
};

export function privatePath(spec: AgentRequestSpec): string {
  const query = spec.query ? `?${spec.query}` : '';
  return `/private/v1/agents/${spec.agentId}/${spec.upstream}${spec.path}${query}`;
}

export function forwardToNode(
  replica: ReplicaInfo,
  spec: AgentRequestSpec,
  privateToken: string,
  traceparent: string,
  req: Request,
  res: Response,
): Promise<ForwardOutcome> {
  const url = new URL(privatePath(spec), replica.nodeUrl);
  const secure = url.protocol === 'https:';
  const headers: http.OutgoingHttpHeaders = {
    ...spec.headers,
    authorization: `Bearer ${privateToken}`,
    traceparent,
    'x-kas-timeout-ms': String(spec.timeoutMs),
  };
  if (spec.body) headers['content-length'] = String(spec.body.byteLength);

  return new Promise((resolve, reject) => {
    let answered = false;
    let abandoned = false;
    const outgoing = (secure ? https : http).request(url, {
      method: spec.method,
      headers,
      agent: secure ? agents.https : agents.http,
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
        return resolve({ kind: 'answered', status: 499 });
      }
      for (const [name, value] of Object.entries(incoming.headers)) {
        if (value !== undefined && !HOP_BY_HOP.has(name)) res.setHeader(name, value);
      }
      res.writeHead(incoming.statusCode ?? 502);
      res.flushHeaders();
      incoming.on('data', (chunk: Buffer) => {
        if (!res.write(chunk)) incoming.pause();
      });
      res.on('drain', () => incoming.resume());
      incoming.on('end', () => {
        res.end();
        resolve({ kind: 'answered', status: incoming.statusCode ?? 502 });
      });
      incoming.on('error', () => {
        res.destroy();
        resolve({ kind: 'answered', status: incoming.statusCode ?? 502 });
      });
      incoming.on('aborted', () => res.destroy());
    });
    outgoing.on('error', (error: NodeJS.ErrnoException) => {
      res.off('close', onCallerGone);
      if (answered) return;
      // The caller left (or kas answered it already, e.g. 504): not the other node's fault.
      if (abandoned || res.headersSent || req.destroyed) return resolve({ kind: 'answered', status: 499 });
      reject(new ForwardConnectError(`could not reach kas node ${replica.node} at ${replica.nodeUrl}: ${error.code ?? error.message}`));
    });
    outgoing.end(spec.body);
  });
}
