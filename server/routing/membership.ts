// Cluster membership in Redis: which node holds which agent replica. Each node writes its own
// replicas under keys that expire unless it keeps refreshing them (so a crashed node's entries
// vanish), announces changes to the other nodes through the socket.io adapter, and re-reads
// the whole picture periodically to heal anything missed. Routing reads only the registry.
import type { Server } from 'socket.io';
import type { Logger } from 'pino';
import { z } from 'zod';
import { UPSTREAMS } from '../../protocol/messages.ts';
import type { RedisClient } from './redis.ts';
import type { AgentRegistry, ReplicaInfo } from './registry.ts';


const KEY_TTL_MS = 15_000;
const REFRESH_MS = 5_000;
const MEMBERSHIP_EVENT = 'kas:membership';

const nodeKey = (node: string) => `kas:node:${node}`;
const replicasKey = (node: string) => `kas:replicas:${node}`;

const ReplicaInfoSchema = z.object({
  agentId: z.string(),
  key: z.string(),
  replica: z.string(),
  node: z.string(),
  nodeUrl: z.string(),
  connectedAt: z.string(),
  version: z.string(),
  capabilities: z.array(z.enum(UPSTREAMS)),
});

const MembershipMessageSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('up'), info: ReplicaInfoSchema }),
  z.object({ type: z.literal('down'), agentId: z.string(), key: z.string() }),
  z.object({ type: z.literal('node-down'), node: z.string() }),
]);
type MembershipMessage = z.infer<typeof MembershipMessageSchema>;

export class ClusterMembership {
  #redis: RedisClient;
  #io: Server;
  #registry: AgentRegistry;
  #nodeUrl: string;
  #log: Logger;
  #timer: NodeJS.Timeout | undefined;
  #local = new Map<string, ReplicaInfo>();

  constructor(options: { redis: RedisClient; io: Server; registry: AgentRegistry; nodeUrl: string; log: Logger }) {
    this.#redis = options.redis;
    this.#io = options.io;
    this.#registry = options.registry;
    this.#nodeUrl = options.nodeUrl;
    this.#log = options.log;
  }

  get #node(): string {
    return this.#registry.node;
  }

  start(): void {
    this.#io.on(MEMBERSHIP_EVENT as 'connection', (raw: unknown) => this.#onMessage(raw));
    const tick = () => {
      this.#refresh().catch((error: Error) => this.#log.warn({ err: error.message }, 'membership refresh failed'));
    };
    tick();
    this.#timer = setInterval(tick, REFRESH_MS);
  }

  replicaUp(info: ReplicaInfo): void {
    this.#local.set(info.key, info);
    this.#announce({ type: 'up', info });
    this.#redis
      .multi()
      .hSet(replicasKey(this.#node), info.key, JSON.stringify(info))
      .pExpire(replicasKey(this.#node), KEY_TTL_MS)
      .exec()
      .catch((error: Error) => this.#log.warn({ err: error.message }, 'could not record replica in Redis'));
  }

  replicaDown(info: ReplicaInfo): void {
    this.#local.delete(info.key);
    this.#announce({ type: 'down', agentId: info.agentId, key: info.key });
    this.#redis
      .hDel(replicasKey(this.#node), info.key)
      .catch((error: Error) => this.#log.warn({ err: error.message }, 'could not remove replica from Redis'));
  }

  /** Leaves the cluster cleanly: others stop routing here at once instead of after expiry. */
  async stop(): Promise<void> {
    clearInterval(this.#timer);
    this.#announce({ type: 'node-down', node: this.#node });
    await this.#redis.del([nodeKey(this.#node), replicasKey(this.#node)]).catch(() => undefined);
  }

  #announce(message: MembershipMessage): void {
    this.#io.serverSideEmit(MEMBERSHIP_EVENT, message);
  }

  #onMessage(raw: unknown): void {
    const parsed = MembershipMessageSchema.safeParse(raw);
    if (!parsed.success) return;
    const message = parsed.data;
    switch (message.type) {
      case 'up':
        this.#registry.addRemote(message.info);
        return;
      case 'down':
        this.#registry.removeRemote(message.agentId, message.key);
        return;
      case 'node-down':
        this.#registry.removeNode(message.node);
        return;
    }
  }

  /** Keeps this node's keys alive and re-reads every other node's replicas. */
  async #refresh(): Promise<void> {
    const startedAt = Date.now();
    const write = this.#redis.multi().set(nodeKey(this.#node), JSON.stringify({ url: this.#nodeUrl }), { PX: KEY_TTL_MS });
    if (this.#local.size > 0) {
      write.hSet(replicasKey(this.#node), Object.fromEntries([...this.#local].map(([k, v]) => [k, JSON.stringify(v)])));
      write.pExpire(replicasKey(this.#node), KEY_TTL_MS);
    }
    await write.exec();

    const nodes: string[] = [];
    for await (const keys of this.#redis.scanIterator({ MATCH: 'kas:node:*', COUNT: 100 })) {
      for (const key of keys) nodes.push(key.slice('kas:node:'.length));
    }
    const snapshot: ReplicaInfo[] = [];
    for (const node of nodes) {
      if (node === this.#node) continue;
      const entries = await this.#redis.hGetAll(replicasKey(node));
      for (const value of Object.values(entries)) {
        const parsed = ReplicaInfoSchema.safeParse(JSON.parse(value));
        if (parsed.success) snapshot.push(parsed.data);
      }
    }
    this.#registry.applySnapshot(snapshot, startedAt);
  }
}
