// Coordination between the nodes of a cluster through Redis, for capabilities that keep one
// piece of work on one node (a live graph evaluated once for every viewer): leases, and sharded
// pub/sub channels for the small messages that work produces. Bulk bytes never go here.
//
// Every call may fail while Redis is unreachable; the caller decides what to do meanwhile (a
// live graph is then evaluated by each node for its own viewers, until Redis returns).
import type { Logger } from 'pino';
import type { RedisClient } from './redis.ts';

/** Extends a lease only when its holder is still the caller (compare-and-expire). */
const RENEW = `if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end`;
/** A command Redis has not answered in this long counts as failed: a live graph cannot wait longer. */
const COMMAND_TIMEOUT_MS = 500;

export class CoordinationUnavailable extends Error {
  override name = 'CoordinationUnavailable';
}

/** Gives a lease up only when its holder is still the caller (compare-and-delete). */
const RELEASE = `if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end`;

export class Coordination {
  #pub: RedisClient;
  #sub: RedisClient;
  #log: Logger;

  constructor(clients: { pub: RedisClient; sub: RedisClient }, log: Logger) {
    this.#pub = clients.pub;
    this.#sub = clients.sub;
    this.#log = log;
  }

  /** Whether Redis answers now (both clients connected). */
  get available(): boolean {
    return this.#pub.isReady && this.#sub.isReady;
  }

  /**
   * Runs a command now, or fails at once: while Redis is away the client would queue commands
   * until it is back, and work that must happen every step cannot wait for that.
   */
  async #now<T>(client: RedisClient, command: () => Promise<T>): Promise<T> {
    if (!client.isReady) throw new CoordinationUnavailable('Redis is unreachable');
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new CoordinationUnavailable(`Redis did not answer within ${COMMAND_TIMEOUT_MS} ms`)), COMMAND_TIMEOUT_MS);
    });
    try {
      return await Promise.race([command(), timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Takes `key` for `holder` when nobody holds it. Resolves true when `holder` holds it now. */
  async acquire(key: string, holder: string, ttlMs: number): Promise<boolean> {
    const set = await this.#now(this.#pub, () => this.#pub.set(key, holder, { NX: true, PX: ttlMs }));
    return set === 'OK';
  }

  /** Extends the lease while `holder` still holds it; false when someone else took it. */
  async renew(key: string, holder: string, ttlMs: number): Promise<boolean> {
    return Number(await this.#now(this.#pub, () => this.#pub.eval(RENEW, { keys: [key], arguments: [holder, String(ttlMs)] }))) === 1;
  }

  async release(key: string, holder: string): Promise<void> {
    await this.#now(this.#pub, () => this.#pub.eval(RELEASE, { keys: [key], arguments: [holder] }));
  }

  /** Who holds the lease now, if anyone. */
  async holder(key: string): Promise<string | undefined> {
    return (await this.#now(this.#pub, () => this.#pub.get(key))) ?? undefined;
  }

  publish(channel: string, message: string): Promise<unknown> {
    return this.#now(this.#pub, () => this.#pub.sPublish(channel, message));
  }

  /** Listens on a sharded channel; returns how to stop. Messages sent while unsubscribed are lost. */
  async subscribe(channel: string, listener: (message: string) => void): Promise<() => Promise<void>> {
    await this.#now(this.#sub, () => this.#sub.sSubscribe(channel, listener));
    return async () => {
      await this.#sub.sUnsubscribe(channel, listener).catch((error: Error) => this.#log.debug({ err: error.message, channel }, 'could not unsubscribe'));
    };
  }
}
