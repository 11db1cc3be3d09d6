import type { Upstream } from '../../protocol/messages.ts';
import type { ChunkQueue } from '../tunnel/chunkQueue.ts';

/** A request for an agent's upstream, after its capability checked and normalised it. */
export interface AgentRequest {
  agentId: string;
  upstream: Upstream;
  method: 'GET' | 'HEAD' | 'POST';
  /** Normalised path below the upstream's base URL, starting with `/`. */
  path: string;
  /** Raw query string, without `?`. */
  query: string;
  /** Request headers the upstream may see: never the caller's credentials. */
  headers: Record<string, string>;
  body: Buffer | undefined;
  /**
   * A long-lived stream (a watch, a followed log): ready at its head, not bounded by
   * KAS_REQUEST_TIMEOUT, and ended cleanly when the node drains.
   */
  streaming: boolean;
  /** Milliseconds the agent may spend on it; 0 = unbounded. */
  timeoutMs: number;
}

/** An agent's answer: its head, who answered, and its body. */
export interface AgentStream {
  readonly status: number;
  /** The upstream's headers that may pass on: no hop-by-hop headers, none that kas sets itself. */
  readonly headers: Readonly<Record<string, string | string[]>>;
  /** The node that holds the replica, and the replica. */
  readonly node: string;
  readonly replica: string;
  readonly forwarded: boolean;
  /**
   * The body: iterate it (credit goes back to the agent as chunks are consumed), or `cancel()` it
   * to stop the upstream request. It fails (throws while iterated) when the answer breaks mid-way.
   */
  readonly body: ChunkQueue;
}

/** Response headers that describe one HTTP hop, or that kas sets itself: never passed on. */
const NOT_PASSED = new Set([
  'connection',
  'keep-alive',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'set-cookie',
  'x-trace-id',
  'x-kas-node',
  'x-kas-agent-replica',
  'x-kas-not-here',
]);

export function passableHeaders(headers: Readonly<Record<string, string | string[] | undefined>>): Record<string, string | string[]> {
  const passable: Record<string, string | string[]> = {};
  for (const name in headers) {
    const value = headers[name];
    if (value !== undefined && !NOT_PASSED.has(name.toLowerCase())) passable[name] = value;
  }
  return passable;
}
