// How many agent connections a node takes per second, in all and per agent token: a fleet
// reconnecting at once (10,000 agents after a network blip) is let in at a rate the node can
// take. Token buckets: a burst of up to `rate` at once, then `rate` a second. Each refused agent is
// told when to come back: the next free slot after those already promised, so that a storm drains
// at the rate (10,000 agents at 500 a second: 20 s) instead of everyone backing off ever longer.
// Promises reach at most a horizon ahead (30 s for the node, 5 s for one agent), so that callers
// that ignore them and knock again (a storm of bogus handshakes, a misbehaving client) cannot push
// the agents that listen further and further out.

class TokenBucket {
  readonly #rate: number;
  readonly #horizonMs: number;
  #tokens: number;
  #at: number;

  constructor(rate: number, now: number, horizonMs: number) {
    this.#rate = rate;
    this.#horizonMs = horizonMs;
    this.#tokens = rate;
    this.#at = now;
  }

  #refill(now: number): void {
    this.#tokens = Math.min(this.#rate, this.#tokens + ((now - this.#at) / 1000) * this.#rate);
    this.#at = now;
  }

  /** When the slot promised to the last one refused comes (performance.now() time). */
  #promised = 0;

  /** 0 when admitted; else how many milliseconds from now to come back. */
  take(now: number): number {
    this.#refill(now);
    if (this.#tokens >= 1) {
      this.#tokens -= 1;
      return 0;
    }
    this.#promised = Math.min(Math.max(this.#promised, now) + 1000 / this.#rate, now + this.#horizonMs);
    return this.#promised - now;
  }

  /** Full again: it remembers nothing worth keeping. */
  full(now: number): boolean {
    this.#refill(now);
    return this.#tokens >= this.#rate;
  }
}

/** Buckets kept per agent before the full ones are forgotten. */
const PRUNE_ABOVE = 1_000;
/** The furthest a refused agent is told to come back, for the node's bucket and for one agent's. */
export const NODE_HORIZON_MS = 30_000;
export const AGENT_HORIZON_MS = 5_000;

export class ConnectRate {
  readonly #perAgentRate: number;
  readonly #node: TokenBucket;
  readonly #agents = new Map<string, TokenBucket>();

  constructor(options: { perNode: number; perAgent: number }) {
    this.#node = new TokenBucket(options.perNode, performance.now(), NODE_HORIZON_MS);
    this.#perAgentRate = options.perAgent;
  }

  /** A connection attempt to this node, before its token is looked at: 0, or when to come back (ms). */
  admitToNode(): number {
    return this.#node.take(performance.now());
  }

  /** A connection attempt with a valid token of this agent: 0, or when to come back (ms). */
  admitAgent(agentId: string): number {
    const now = performance.now();
    let bucket = this.#agents.get(agentId);
    if (!bucket) {
      if (this.#agents.size >= PRUNE_ABOVE) for (const [id, b] of this.#agents) if (b.full(now)) this.#agents.delete(id);
      this.#agents.set(agentId, (bucket = new TokenBucket(this.#perAgentRate, now, AGENT_HORIZON_MS)));
    }
    return bucket.take(now);
  }
}
