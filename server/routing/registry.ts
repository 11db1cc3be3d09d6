// Which replicas of which agents are connected, on this node and (in a cluster) on the others.
// Routing reads only this in-memory view; Redis keeps it current (see membership.ts), so no
// request waits on Redis.
import { EventEmitter } from 'node:events';
import type { Upstream } from '../../protocol/messages.ts';
import type { TunnelConnection } from '../tunnel/agentConnection.ts';
import type { ReplicaInfo } from '../tunnel/replica.ts';

export type { ReplicaInfo };

type LocalRoute = { readonly kind: 'local'; readonly connection: TunnelConnection };
type RemoteRoute = { readonly kind: 'remote'; readonly replica: ReplicaInfo };
export type Route = LocalRoute | RemoteRoute;

/** A replica on another node; its route is made once, so picking it allocates nothing. */
interface RemoteEntry {
  info: ReplicaInfo;
  addedAt: number;
  route: RemoteRoute;
}

const NONE: ReadonlySet<string> = new Set();

const SUSPECT_NODE_MS = 10_000;

/** Knows every connected replica; emits `changed` when one comes or goes anywhere. */
export class AgentRegistry extends EventEmitter<{ changed: [] }> {
  readonly node: string;
  #local = new Map<string, Map<string, LocalRoute>>();
  #remote = new Map<string, Map<string, RemoteEntry>>();
  #removedAt = new Map<string, number>();
  #suspectNodes = new Map<string, number>();
  #turn = new Map<string, number>();
  #arrivals = new EventEmitter();

  constructor(node: string) {
    super();
    this.node = node;
    this.#arrivals.setMaxListeners(0);
    this.setMaxListeners(0);
  }

  addLocal(connection: TunnelConnection): void {
    const { agentId, key } = connection.info;
    let replicas = this.#local.get(agentId);
    if (!replicas) this.#local.set(agentId, (replicas = new Map()));
    replicas.set(key, { kind: 'local', connection });
    this.#arrivals.emit(agentId);
    this.emit('changed');
  }

  removeLocal(connection: TunnelConnection): void {
    const { agentId, key } = connection.info;
    const replicas = this.#local.get(agentId);
    if (!replicas?.delete(key)) return;
    if (replicas.size === 0) this.#local.delete(agentId);
    this.emit('changed');
  }

  localConnections(): TunnelConnection[] {
    return [...this.#local.values()].flatMap((replicas) => [...replicas.values()].map((route) => route.connection));
  }

  localConnection(agentId: string, key: string | undefined): TunnelConnection | undefined {
    const replicas = this.#local.get(agentId);
    return (key && replicas?.get(key)?.connection) || undefined;
  }

  addRemote(info: ReplicaInfo): void {
    if (info.node === this.node) return;
    let replicas = this.#remote.get(info.agentId);
    if (!replicas) this.#remote.set(info.agentId, (replicas = new Map()));
    replicas.set(info.key, { info, addedAt: Date.now(), route: { kind: 'remote', replica: info } });
    this.#removedAt.delete(info.key);
    this.#suspectNodes.delete(info.node);
    this.#arrivals.emit(info.agentId);
    this.emit('changed');
  }

  removeRemote(agentId: string, key: string): void {
    const replicas = this.#remote.get(agentId);
    this.#removedAt.set(key, Date.now());
    if (!replicas?.delete(key)) return;
    if (replicas.size === 0) this.#remote.delete(agentId);
    this.emit('changed');
  }

  removeNode(node: string): void {
    for (const [agentId, replicas] of this.#remote) {
      for (const [key, { info }] of replicas) if (info.node === node) this.removeRemote(agentId, key);
    }
  }

  /**
   * Replaces what this node knows of `node`'s replicas with a list read from Redis starting at
   * `readStartedAt`. Announcements that arrived while the list was being read are newer than it
   * and win: a replica removed since is not brought back, one added since is not dropped.
   */
  applyNodeSnapshot(node: string, replicas: ReplicaInfo[], readStartedAt: number): void {
    if (node === this.node) return;
    const seen = new Set<string>();
    for (const info of replicas) {
      if (info.node !== node) continue;
      seen.add(info.key);
      const removedAt = this.#removedAt.get(info.key);
      if (removedAt !== undefined && removedAt >= readStartedAt) continue;
      if (!this.#remote.get(info.agentId)?.has(info.key)) this.addRemote(info);
    }
    for (const [agentId, entries] of this.#remote) {
      for (const [key, { info, addedAt }] of entries) {
        if (info.node === node && !seen.has(key) && addedAt < readStartedAt) this.removeRemote(agentId, key);
      }
    }
    for (const [key, at] of this.#removedAt) if (at < readStartedAt - 60_000) this.#removedAt.delete(key);
  }

  /** Replaces the whole remote view with a snapshot of every node, read from Redis starting at `readStartedAt`. */
  applySnapshot(replicas: ReplicaInfo[], readStartedAt: number): void {
    const nodes = new Set([...replicas.map((r) => r.node), ...this.remoteNodes()]);
    for (const node of nodes) this.applyNodeSnapshot(node, replicas, readStartedAt);
  }

  /** The other nodes this node knows replicas on. */
  remoteNodes(): Set<string> {
    const nodes = new Set<string>();
    for (const entries of this.#remote.values()) for (const { info } of entries.values()) nodes.add(info.node);
    return nodes;
  }

  /** A forward to this node failed to connect: route around it until membership says otherwise. */
  suspectNode(node: string): void {
    this.#suspectNodes.set(node, Date.now() + SUSPECT_NODE_MS);
  }

  #isSuspect(node: string): boolean {
    const until = this.#suspectNodes.get(node);
    if (until === undefined) return false;
    if (until > Date.now()) return true;
    this.#suspectNodes.delete(node);
    return false;
  }

  replicas(agentId: string): ReplicaInfo[] {
    const local = [...(this.#local.get(agentId)?.values() ?? [])].map((route) => route.connection.info);
    const remote = [...(this.#remote.get(agentId)?.values() ?? [])].map((e) => e.info);
    return [...local, ...remote];
  }

  agentIds(): string[] {
    return [...new Set([...this.#local.keys(), ...this.#remote.keys()])].sort();
  }

  /**
   * One replica of the agent that offers `upstream`: a local one if this node has any (no extra
   * hop), else one on another node; successive calls take turns among the candidates. Called for
   * every request, so it allocates nothing: it counts the candidates, then walks to its turn's.
   */
  pick(agentId: string, upstream: Upstream, exclude: ReadonlySet<string> = NONE): Route | undefined {
    const local = this.#local.get(agentId);
    if (local) {
      let count = 0;
      for (const route of local.values()) if (localUsable(route, upstream, exclude)) count++;
      if (count > 0) {
        let n = this.#turnOf(agentId) % count;
        for (const route of local.values()) if (localUsable(route, upstream, exclude) && n-- === 0) return route;
      }
    }
    const remote = this.#remote.get(agentId);
    if (remote) {
      let count = 0;
      for (const entry of remote.values()) if (this.#remoteUsable(entry, upstream, exclude)) count++;
      if (count > 0) {
        let n = this.#turnOf(agentId) % count;
        for (const entry of remote.values()) if (this.#remoteUsable(entry, upstream, exclude) && n-- === 0) return entry.route;
      }
    }
    return undefined;
  }

  #remoteUsable({ info }: RemoteEntry, upstream: Upstream, exclude: ReadonlySet<string>): boolean {
    return usable(info, upstream, exclude) && !this.#isSuspect(info.node);
  }

  #turnOf(agentId: string): number {
    const turn = (this.#turn.get(agentId) ?? 0) + 1;
    this.#turn.set(agentId, turn);
    return turn;
  }

  /** Resolves when a replica of `agentId` is added (anywhere), or rejects on abort. */
  waitForArrival(agentId: string, signal: AbortSignal): Promise<void> {
    return new Promise((resolve, reject) => {
      const onArrival = () => {
        signal.removeEventListener('abort', onAbort);
        resolve();
      };
      const onAbort = () => {
        this.#arrivals.off(agentId, onArrival);
        reject(signal.reason);
      };
      if (signal.aborted) return reject(signal.reason);
      this.#arrivals.once(agentId, onArrival);
      signal.addEventListener('abort', onAbort, { once: true });
    });
  }
}

function localUsable({ connection }: LocalRoute, upstream: Upstream, exclude: ReadonlySet<string>): boolean {
  return connection.isOpen && !connection.draining && usable(connection.info, upstream, exclude);
}

function usable(info: ReplicaInfo, upstream: Upstream, exclude: ReadonlySet<string>): boolean {
  return info.capabilities.includes(upstream) && !exclude.has(info.key);
}
