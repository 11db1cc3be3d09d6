// The Redis of a kas cluster: one server, or a Redis Cluster (KAS_REDIS_CLUSTER) when one server is
// no longer enough. Everything kas keeps there is written so that both work unchanged: every
// command names one key (or keys that share a hash tag), pub/sub is sharded (SPUBLISH/SSUBSCRIBE),
// nothing SCANs the keyspace.
import type { Logger } from 'pino';
import { createClient, createCluster } from '@redis/client';

function makeClient(url: string) {
  return createClient({ url, socket: { reconnectStrategy: (retries) => Math.min(100 * 2 ** retries, 5000) } });
}

function makeCluster(url: string) {
  return createCluster({
    rootNodes: [{ url }],
    defaults: { socket: { reconnectStrategy: (retries: number) => Math.min(100 * 2 ** retries, 5000) } },
  });
}

type Single = ReturnType<typeof makeClient>;
type Clustered = ReturnType<typeof makeCluster>;

/**
 * The commands kas uses, the same for one server and for a Redis Cluster (the cluster client
 * routes each by its key). `multi` groups commands on keys of one hash slot only.
 */
export type RedisClient = Pick<Single, 'set' | 'get' | 'del' | 'hSet' | 'hDel' | 'hGetAll' | 'pExpire' | 'zAdd' | 'zRangeByScore' | 'zRem' | 'zRemRangeByScore' | 'eval' | 'sPublish' | 'sSubscribe' | 'sUnsubscribe' | 'multi' | 'on' | 'close'> & {
  /** Connected and answering. */
  readonly isReady: boolean;
};

function asClient(client: Single | Clustered, cluster: boolean): RedisClient {
  if (!cluster) return client as Single;
  // A cluster client has no isReady of its own: it is ready when its slots are known and open.
  const clustered = client as Clustered;
  return new Proxy(clustered, {
    get(target, property, receiver) {
      if (property === 'isReady') return target.isOpen && target.masters.length > 0;
      const value = Reflect.get(target, property, receiver);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  }) as unknown as RedisClient;
}

/** Two clients: socket.io's adapter needs one of them for subscriptions only. */
export async function connectRedis(url: string, log: Logger, options: { cluster?: boolean } = {}): Promise<{ pub: RedisClient; sub: RedisClient; raw: { pub: unknown; sub: unknown } }> {
  const cluster = options.cluster ?? false;
  const pub = cluster ? makeCluster(url) : makeClient(url);
  const sub = pub.duplicate();
  for (const [name, client] of [['pub', pub], ['sub', sub]] as const) {
    (client as Single).on('error', (error: Error) => log.warn({ client: name, err: error.message }, 'Redis connection problem'));
  }
  log.info({ redis: url.replace(/\/\/[^@]*@/, '//***@'), cluster }, 'connecting to Redis');
  await Promise.all([pub.connect(), sub.connect()]);
  return { pub: asClient(pub, cluster), sub: asClient(sub, cluster), raw: { pub, sub } };
}
