// Cluster membership in Redis: which node holds which agent replica. Costs grow with changes,
// not with the size of the cluster:
//
// * Each node writes its own replicas into its hash `kas:replicas:<node>` when they come and go
//   (and announces each change to the other nodes through the socket.io adapter, so that they
//   know at once).
// * Each node keeps a heartbeat alive (every HEARTBEAT_MS, expiring after NODE_TTL_MS): its key
//   `kas:node:{<node>}`, holding its URL and a version that grows with every change of its
//   replicas, and its entry in the sorted set `kas:nodes`, scored by when it expires. Its hash
//   (same hash tag, so one MULTI refreshes both) expires with it, so a node that crashed vanishes
//   from Redis within NODE_TTL_MS.
// * Each node reads the live members of `kas:nodes` and their heartbeats once per HEARTBEAT_MS:
//   a node missing at two checks in a row is dead (its replicas leave the registry: within about
//   4 s of a crash), a new one is read, and a node whose version differs from the one last read
//   has changes this node may have missed: only that node's hash is re-read.
//
// Every command names one key or keys of one hash slot, and nothing scans the keyspace, so this
// works unchanged on a Redis Cluster.
//
// Routing reads only the registry, never Redis.
import type { Server } from 'socket.io';
import type { Logger } from 'pino';
import { z } from 'zod';
import { UPSTREAMS } from '../../protocol/messages.ts';
import type { RedisClient } from './redis.ts';
import type { AgentRegistry, ReplicaInfo } from './registry.ts';

export const HEARTBEAT_MS = 1_000;
export const NODE_TTL_MS = 2_500;
/**
 * A node is dead once its heartbeat is missing at this many checks in a row: one miss may be a
 * Redis that restarted empty a moment ago (every node beats again within HEARTBEAT_MS).
 */
const MISSES_TO_DROP = 2;
const MEMBERSHIP_EVENT = 'kas:membership';

const NODES_KEY = 'kas:nodes';
const nodeKey = (node: string) => `kas:node:{${node}}`;
const replicasKey = (node: string) => `kas:replicas:{${node}}`;

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

const HeartbeatSchema = z.object({ url: z.string(), boot: z.string(), version: z.number() });
type Heartbeat = z.infer<typeof HeartbeatSchema>;

const MembershipMessageSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('up'), info: ReplicaInfoSchema }),
  z.object({ type: z.literal('down'), agentId: z.string(), key: z.string() }),
  z.object({ type: z.literal('node-down'), node: z.string() }),
]);
type MembershipMessage = z.infer<typeof MembershipMessageSchema>;

/** What the Redis commands of membership cost, for the scale benchmark. */
export interface MembershipStats {
  commands: number;
  replicasRead: number;
}

export class ClusterMembership {
  #redis: RedisClient;
  #io: Server;
  #registry: AgentRegistry;
  #nodeUrl: string;
  #log: Logger;
  #timers: NodeJS.Timeout[] = [];
  #local = new Map<string, ReplicaInfo>();
  /** This node's version of its replicas, and the boot it belongs to (a restarted node starts anew). */
  #version = 0;
  #boot = `${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
  /** What was last read of each other node: its boot and version. */
  #seen = new Map<string, { boot: string; version: number }>();
  #misses = new Map<string, number>();
  #busy = false;
  readonly stats: MembershipStats = { commands: 0, replicasRead: 0 };

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
    const every = (ms: number, task: () => Promise<void>, what: string) => {
      const run = () => {
        task().catch((error: Error) => this.#log.warn({ err: error.message }, `membership ${what} failed`));
      };
      run();
      this.#timers.push(setInterval(run, ms));
    };
    every(HEARTBEAT_MS, () => this.#heartbeat(), 'heartbeat');
  }

  replicaUp(info: ReplicaInfo): void {
    this.#local.set(info.key, info);
    this.#version++;
    this.#announce({ type: 'up', info });
    this.stats.commands += 2;
    this.#redis
      .multi()
      .hSet(replicasKey(this.#node), info.key, JSON.stringify(info))
      .pExpire(replicasKey(this.#node), NODE_TTL_MS)
      .exec()
      .catch((error: Error) => this.#log.warn({ err: error.message }, 'could not record replica in Redis'));
  }

  replicaDown(info: ReplicaInfo): void {
    if (!this.#local.delete(info.key)) return;
    this.#version++;
    this.#announce({ type: 'down', agentId: info.agentId, key: info.key });
    this.stats.commands++;
    this.#redis
      .hDel(replicasKey(this.#node), info.key)
      .catch((error: Error) => this.#log.warn({ err: error.message }, 'could not remove replica from Redis'));
  }

  /** Leaves the cluster cleanly: others stop routing here at once instead of after expiry. */
  async stop(): Promise<void> {
    for (const timer of this.#timers) clearInterval(timer);
    this.#announce({ type: 'node-down', node: this.#node });
    await Promise.all([this.#redis.del([nodeKey(this.#node), replicasKey(this.#node)]), this.#redis.zRem(NODES_KEY, this.#node)]).catch(() => undefined);
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
        this.#seen.delete(message.node);
        return;
    }
  }

  /** Keeps this node alive in Redis, then checks the others: gone, new, or changed since last read. */
  async #heartbeat(): Promise<void> {
    if (this.#busy) return; // Redis is slow: the next beat catches up
    this.#busy = true;
    try {
      const now = Date.now();
      const beat: Heartbeat = { url: this.#nodeUrl, boot: this.#boot, version: this.#version };
      // One MULTI: the node's key and its hash share their hash tag.
      const write = this.#redis.multi().set(nodeKey(this.#node), JSON.stringify(beat), { PX: NODE_TTL_MS });
      write.pExpire(replicasKey(this.#node), NODE_TTL_MS);
      this.stats.commands += 4;
      const [[, extended]] = await Promise.all([write.exec(), this.#redis.zAdd(NODES_KEY, { score: now + NODE_TTL_MS, value: this.#node })]);
      // The hash is gone (Redis restarted empty, or it expired while this node was stalled): write it again.
      if (Number(extended) === 0 && this.#local.size > 0) await this.#rewriteReplicas();
      const alive = new Set(await this.#redis.zRangeByScore(NODES_KEY, now, '+inf'));
      alive.delete(this.#node);
      // Long-dead entries are cleared by whoever sees them (a node that left cleanly removed its own).
      if (Math.random() < 0.05) void this.#redis.zRemRangeByScore(NODES_KEY, '-inf', now - 60_000).catch(() => undefined);
      // Nodes known before are checked too: missing twice in a row, they are gone.
      for (const node of this.#seen.keys()) alive.add(node);
      const nodes = [...alive];
      this.stats.commands += nodes.length;
      const beats = await Promise.all(nodes.map((node) => this.#redis.get(nodeKey(node))));
      for (const [i, node] of nodes.entries()) {
        const raw = beats[i];
        if (raw === null || raw === undefined) {
          if (!this.#seen.has(node)) continue;
          const misses = (this.#misses.get(node) ?? 0) + 1;
          this.#misses.set(node, misses);
          if (misses < MISSES_TO_DROP) continue;
          this.#log.info({ node }, 'kas node left the cluster (its heartbeat expired); dropping its replicas');
          this.#seen.delete(node);
          this.#misses.delete(node);
          this.#registry.removeNode(node);
          continue;
        }
        this.#misses.delete(node);
        const parsed = HeartbeatSchema.safeParse(JSON.parse(String(raw)));
        if (!parsed.success) continue;
        const last = this.#seen.get(node);
        if (!last || last.boot !== parsed.data.boot || last.version !== parsed.data.version) await this.#readNode(node, parsed.data);
      }
    } finally {
      this.#busy = false;
    }
  }


  async #rewriteReplicas(): Promise<void> {
    this.#version++;
    this.stats.commands += 3;
    await this.#redis
      .multi()
      .hSet(replicasKey(this.#node), Object.fromEntries([...this.#local].map(([key, info]) => [key, JSON.stringify(info)])))
      .pExpire(replicasKey(this.#node), NODE_TTL_MS)
      .set(nodeKey(this.#node), JSON.stringify({ url: this.#nodeUrl, boot: this.#boot, version: this.#version }), { PX: NODE_TTL_MS })
      .exec();
  }

  /** Re-reads one node's replicas: it changed since this node last looked, or is new. */
  async #readNode(node: string, beat: Heartbeat): Promise<void> {
    const startedAt = Date.now();
    this.stats.commands++;
    const entries = await this.#redis.hGetAll(replicasKey(node));
    const replicas: ReplicaInfo[] = [];
    for (const value of Object.values(entries)) {
      const parsed = ReplicaInfoSchema.safeParse(JSON.parse(value));
      if (parsed.success) replicas.push(parsed.data);
    }
    this.stats.replicasRead += replicas.length;
    this.#registry.applyNodeSnapshot(node, replicas, startedAt);
    this.#seen.set(node, { boot: beat.boot, version: beat.version });
  }
}
