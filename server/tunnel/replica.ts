import type { Upstream } from '../../protocol/messages.ts';

/** One connected agent replica, as every node of the cluster knows it. */
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
