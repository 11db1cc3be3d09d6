// kas-to-kas: hands a request to the node that holds a replica of the agent, over that node's
// private port, and reads the answer back as a body with backpressure (the socket is paused while
// the reader lags). Bytes travel over this HTTP hop, never through Redis.
import http from 'node:http';
import https from 'node:https';
import { startClientSpan } from '../../otel/http.ts';
import { ChunkQueue } from '../tunnel/chunkQueue.ts';
import type { ReplicaInfo } from '../tunnel/replica.ts';
import type { AgentRequest } from './request.ts';

/** Set by a node that no longer holds the replica, before any byte: the sender may try another. */
export const NOT_HERE_HEADER = 'x-kas-not-here';
/** How the node holding the agent tells the sender who answered. */
export const NODE_HEADER = 'x-kas-node';
export const REPLICA_HEADER = 'x-kas-agent-replica';

/** The reader may lag this far behind the socket before the socket is paused. */
const READ_AHEAD_BYTES = 64 * 1024;

export class ForwardConnectError extends Error {
  override name = 'ForwardConnectError';
}

/** The answer of another node broke mid-body (its connection closed early). */
export class ForwardBrokenError extends Error {
  override name = 'ForwardBrokenError';
}

/**
 * `broken`: the connection to the node was up but closed before any answer (e.g. the replica
 * died mid-answer there): the node is reachable, and nothing has been passed on.
 */
export type ForwardOutcome =
  | { kind: 'not_here' }
  | { kind: 'broken'; message: string }
  | { kind: 'answered'; status: number; headers: http.IncomingHttpHeaders; body: ChunkQueue };

// Uncapped: every forwarded watch or log follow holds its connection while it lives, and a cap
// would leave the ones beyond it queued, unanswered, until another ends.
const agents = {
  http: new http.Agent({ keepAlive: true }),
  https: new https.Agent({ keepAlive: true }),
};

export function privatePath(request: AgentRequest): string {
  const query = request.query ? `?${request.query}` : '';
  return `/private/v1/agents/${request.agentId}/${request.upstream}${request.path}${query}`;
}

/**
 * Sends the request to `replica`'s node. Resolves with its answer (or why there is none);
 * rejects with ForwardConnectError when the node cannot be reached, and with `signal.reason`
 * when the signal aborts before the answer's head.
 */
export function forwardToNode(replica: ReplicaInfo, request: AgentRequest, privateToken: string, signal?: AbortSignal): Promise<ForwardOutcome> {
  const url = new URL(privatePath(request), replica.nodeUrl);
  const secure = url.protocol === 'https:';
  // The kas-to-kas CLIENT span; its context travels in the request's traceparent.
  const span = startClientSpan(request.method, url);
  const headers: http.OutgoingHttpHeaders = {
    ...request.headers,
    ...span.headers,
    authorization: `Bearer ${privateToken}`,
    'x-kas-timeout-ms': String(request.timeoutMs),
  };
  if (request.body) headers['content-length'] = String(request.body.byteLength);

  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    let answered = false;
    const outgoing = (secure ? https : http).request(url, {
      method: request.method,
      headers,
      agent: secure ? agents.https : agents.http,
    });
    // Only a failure to connect says the node is unreachable; one on a live connection does not.
    let connected = false;
    outgoing.on('socket', (socket) => {
      if (!socket.connecting) connected = true;
      else socket.once('connect', () => (connected = true));
    });
    const onAbort = () => outgoing.destroy();
    signal?.addEventListener('abort', onAbort, { once: true });

    outgoing.on('response', (incoming) => {
      answered = true;
      signal?.removeEventListener('abort', onAbort);
      span.answered(incoming.statusCode ?? 0);
      incoming.once('close', () => span.end());
      if (incoming.headers[NOT_HERE_HEADER]) {
        incoming.resume();
        return resolve({ kind: 'not_here' });
      }
      resolve({ kind: 'answered', status: incoming.statusCode ?? 502, headers: incoming.headers, body: bodyOf(incoming, outgoing) });
    });
    outgoing.on('error', (error: NodeJS.ErrnoException) => {
      signal?.removeEventListener('abort', onAbort);
      if (answered) return;
      span.failed(error);
      span.end();
      if (signal?.aborted) return reject(signal.reason);
      if (connected) {
        return resolve({ kind: 'broken', message: `kas node ${replica.node} closed the connection before answering (${error.code ?? error.message})` });
      }
      reject(new ForwardConnectError(`could not reach kas node ${replica.node} at ${replica.nodeUrl}: ${error.code ?? error.message}`));
    });
    outgoing.end(request.body);
  });
}

/** The answer's body, read no further ahead of its reader than READ_AHEAD_BYTES. */
function bodyOf(incoming: http.IncomingMessage, outgoing: http.ClientRequest): ChunkQueue {
  const body: ChunkQueue = new ChunkQueue({
    onConsumed: () => {
      if (incoming.isPaused() && body.queuedBytes < READ_AHEAD_BYTES) incoming.resume();
    },
    onCancel: () => {
      incoming.destroy();
      outgoing.destroy();
    },
  });
  incoming.on('data', (chunk: Buffer) => {
    body.push(chunk);
    if (body.queuedBytes >= READ_AHEAD_BYTES) incoming.pause();
  });
  incoming.on('end', () => body.end());
  incoming.on('aborted', () => body.fail(new ForwardBrokenError('the kas node holding the agent closed the answer early')));
  incoming.on('error', (error) => body.fail(new ForwardBrokenError(`the answer from the kas node holding the agent broke: ${error.message}`)));
  return body;
}
