// What a node needs to be part of a cluster: Redis, the socket.io adapter over it, membership,
// coordination and kas-to-kas reads. Loaded only when KAS_REDIS_URL is set, so that a single node
// carries none of it.
import { createShardedAdapter } from '@socket.io/redis-adapter';
import type { Logger } from 'pino';
import type { Server } from 'socket.io';
import { Coordination } from './coordination.ts';
import { ClusterMembership } from './membership.ts';
import { Peers } from './peers.ts';
import { connectRedis } from './redis.ts';
import type { AgentRegistry } from './registry.ts';

export interface Cluster {
  /** Both Redis connections are up. */
  readonly ready: boolean;
  readonly coordination: Coordination;
  readonly peers: Peers;
  /** Links the agent port's socket.io to the other nodes and starts membership. */
  attach(io: Server, registry: AgentRegistry, nodeUrl: string): ClusterMembership;
  close(): Promise<void>;
}

export async function joinCluster(o: { redisUrl: string; redisCluster: boolean; privateSecret: Uint8Array; node: string; log: Logger }): Promise<Cluster> {
  const redis = await connectRedis(o.redisUrl, o.log, { cluster: o.redisCluster });
  return {
    get ready() {
      return redis.pub.isReady && redis.sub.isReady;
    },
    coordination: new Coordination(redis, o.log.child({ component: 'coordination' })),
    peers: new Peers(o.privateSecret, o.node),
    attach(io, registry, nodeUrl) {
      // Rooms are local matters here (an agent's replicas are disconnected by each node that
      // holds them): no Redis channel per room, which would be one per agent.
      io.adapter(createShardedAdapter(redis.raw.pub, redis.raw.sub, { subscriptionMode: 'static' }));
      const membership = new ClusterMembership({ redis: redis.pub, io, registry, nodeUrl, log: o.log });
      membership.start();
      return membership;
    },
    async close() {
      await Promise.all([redis.pub.close(), redis.sub.close()].map((p) => p.catch(() => undefined)));
    },
  };
}
