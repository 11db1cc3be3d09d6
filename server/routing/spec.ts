import type { Upstream } from '../../protocol/messages.ts';

/** A request for an agent's upstream, after its capability module checked and normalised it. */
export interface AgentRequestSpec {
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
  /** Watches and follows: flushed per chunk and not bounded by KAS_REQUEST_TIMEOUT. */
  streaming: boolean;
  /** Milliseconds left for the whole request; 0 = unbounded. */
  timeoutMs: number;
}
