// The agent port: socket.io over WebSocket only. Authenticates each replica by its token (the
// agent id comes from the token, never from what the agent says), puts it in the room
// `agent:<id>` and reports it connected and disconnected.
import type http from 'node:http';
import type https from 'node:https';
import { Server, type Socket } from 'socket.io';
import type { Logger } from 'pino';
import { FRAME_MAX_BYTES, HandshakeSchema, PROTOCOL_VERSION } from '../../protocol/messages.ts';
import type { AgentTokenStore } from '../auth/agentTokens.ts';
import { AgentConnection } from './agentConnection.ts';
import type { ReplicaInfo } from './replica.ts';

export const agentRoom = (agentId: string) => `agent:${agentId}`;

export interface AgentServerOptions {
  httpServer: http.Server | https.Server;
  tokens: AgentTokenStore;
  /** This node's name and the URL other nodes reach it at, for the replicas it holds. */
  node: string;
  nodeUrl: string;
  log: Logger;
  onConnected: (connection: AgentConnection) => void;
  onDisconnected: (connection: AgentConnection) => void;
  /** While draining, new replicas are turned away so they connect to another node. */
  isDraining: () => boolean;
}

interface SocketData {
  info: ReplicaInfo;
}

export function createAgentServer(o: AgentServerOptions): Server {
  const io = new Server<Record<string, never>, Record<string, never>, Record<string, never>, SocketData>(o.httpServer, {
    transports: ['websocket'],
    maxHttpBufferSize: FRAME_MAX_BYTES,
    serveClient: false,
    pingInterval: 10_000,
    pingTimeout: 10_000,
    // A dropped agent must not come back as the same socket with stale state.
    connectionStateRecovery: undefined,
  });

  io.use((socket, next) => {
    if (o.isDraining()) return next(new Error('draining'));
    const handshake = HandshakeSchema.safeParse(socket.handshake.auth);
    const agentId = handshake.success ? o.tokens.agentIdForToken(handshake.data.token) : undefined;
    if (!handshake.success || !agentId) {
      o.log.warn({ address: socket.handshake.address }, 'refused an agent connection: unauthorized');
      return next(new Error('unauthorized'));
    }
    if (handshake.data.protocol !== PROTOCOL_VERSION) {
      return next(new Error(`unsupported tunnel protocol ${handshake.data.protocol}; kas speaks ${PROTOCOL_VERSION}`));
    }
    socket.data.info = {
      agentId,
      key: socket.id,
      replica: handshake.data.replica,
      node: o.node,
      nodeUrl: o.nodeUrl,
      connectedAt: new Date().toISOString(),
      version: handshake.data.version,
      capabilities: handshake.data.capabilities,
    };
    next();
  });

  io.on('connection', (socket: Socket) => {
    const info = (socket.data as SocketData).info;
    const log = o.log.child({ agent_id: info.agentId, replica: info.replica });
    const connection = new AgentConnection(socket, info, log);
    void socket.join(agentRoom(info.agentId));
    o.onConnected(connection);
    log.info({ capabilities: info.capabilities, version: info.version }, 'agent replica connected');
    socket.on('disconnect', (reason) => {
      o.onDisconnected(connection);
      log.info({ reason }, 'agent replica disconnected');
    });
  });
  return io;
}
