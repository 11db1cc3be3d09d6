// Which replicas of which agents are connected, on this node and (in a cluster) on the others.
// Routing reads only this in-memory view; Redis keeps it current (see membership.ts), so no
// request waits on Redis.
import { EventEmitter } from 'node:events';
import type { Upstream } from '../../protocol/messages.ts';
import type { AgentConnection } from '../tunnel/agentConnection.ts';

export interface ReplicaInfo {
  agentId: string;
  /** Unique across the cluster: the socket.io socket id. */
  key: string;
  replica: string;
  node: string;
  nodeUrl: string;
  connectedAt: string;
  version: string;
  capabilities: Upstream[];
}

export type Route = { kind: 'local'; connection: AgentConnection } | { kind: 'remote'; replica: ReplicaInfo };

const SUSPECT_NODE_MS = 10_000;

export class AgentRegistry {
  readonly node: string;
  #local = new Map<string, Map<string, AgentConnection>>();
  #remote = new Map<string, Map<string, { info: ReplicaInfo; addedAt: number }>>();
  #removedAt = new Map<string, number>();
  #suspectNodes = new Map<string, number>();
  #turn = new Map<string, number>();
  #arrivals = new EventEmitter();

  constructor(node: string) {
    this.node = node;
    this.#arrivals.setMaxListeners(0);
  }

  addLocal(connection: AgentConnection): void {
    const { agentId, key } = connection.info;
    let replicas = this.#local.get(agentId);
    if (!replicas) this.#local.set(agentId, (replicas = new Map()));
    replicas.set(key, connection);
    this.#arrivals.emit(agentId);
  }

  removeLocal(connection: AgentConnection): void {
    const { agentId, key } = connection.info;
    const replicas = this.#local.get(agentId);
    replicas?.delete(key);
    if (replicas?.size === 0) this.#local.delete(agentId);
  }

  localConnections(): AgentConnection[] {
    return [...this.#local.values()].flatMap((replicas) => [...replicas.values()]);
  }

  localConnection(agentId: string, key: string | undefined): AgentConnection | undefined {
    const replicas = this.#local.get(agentId);
    return (key && replicas?.get(key)) || undefined;
  }

  addRemote(info: ReplicaInfo): void {
    if (info.node === this.node) return;
    let replicas = this.#remote.get(info.agentId);
    if (!replicas) this.#remote.set(info.agentId, (replicas = new Map()));
    replicas.set(info.key, { info, addedAt: Date.now() });
    this.#removedAt.delete(info.key);
    this.#suspectNodes.delete(info.node);
    this.#arrivals.emit(info.agentId);
  }

  removeRemote(agentId: string, key: string): void {
    const replicas = this.#remote.get(agentId);
    replicas?.delete(key);
    if (replicas?.size === 0) this.#remote.delete(agentId);
    this.#removedAt.set(key, Date.now());
  }

  removeNode(node: string): void {
    for (const [agentId, replicas] of this.#remote) {
      for (const [key, { info }] of replicas) if (info.node === node) this.removeRemote(agentId, key);
    }
  }

  /**
   * Replaces the remote view with a snapshot read from Redis starting at `readStartedAt`.
   * Events that arrived while the snapshot was being read are newer than it and win.
   */
  applySnapshot(replicas: ReplicaInfo[], readStartedAt: number): void {
    const seen = new Set<string>();
    for (const info of replicas) {
      if (info.node === this.node) continue;
      seen.add(info.key);
      const removedAt = this.#removedAt.get(info.key);
      if (removedAt !== undefined && removedAt >= readStartedAt) continue;
      if (!this.#remote.get(info.agentId)?.has(info.key)) this.addRemote(info);
    }
    for (const [agentId, entries] of this.#remote) {
      for (const [key, { addedAt }] of entries) {
        if (!seen.has(key) && addedAt < readStartedAt) this.removeRemote(agentId, key);
      }
    }
    for (const [key, at] of this.#removedAt) if (at < readStartedAt - 60_000) this.#removedAt.delete(key);
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
    const local = [...(this.#local.get(agentId)?.values() ?? [])].map((c) => c.info);
    const remote = [...(this.#remote.get(agentId)?.values() ?? [])].map((e) => e.info);
    return [...local, ...remote];
  }

  agentIds(): string[] {
    return [...new Set([...this.#local.keys(), ...this.#remote.keys()])].sort();
  }

  /**
   * One replica of the agent that offers `upstream`: a local one if this node has any (no extra
   * hop), else one on another node; successive calls take turns among the candidates.
   */
  pick(agentId: string, upstream: Upstream, exclude: ReadonlySet<string> = new Set()): Route | undefined {
    const usable = (info: ReplicaInfo) => info.capabilities.includes(upstream) && !exclude.has(info.key);
    const local = [...(this.#local.get(agentId)?.values() ?? [])].filter((c) => usable(c.info) && c.isOpen);
    if (local.length > 0) return { kind: 'local', connection: this.#nextOf(agentId, local) };
    const remote = [...(this.#remote.get(agentId)?.values() ?? [])]
      .map((e) => e.info)
      .filter((info) => usable(info) && !this.#isSuspect(info.node));
    if (remote.length > 0) return { kind: 'remote', replica: this.#nextOf(agentId, remote) };
    return undefined;
  }

  #nextOf<T>(agentId: string, candidates: T[]): T {
    const turn = (this.#turn.get(agentId) ?? 0) + 1;
    this.#turn.set(agentId, turn);
    return candidates[turn % candidates.length]!;
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
