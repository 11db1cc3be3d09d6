// The agent port: socket.io over WebSocket only. Authenticates each replica by its token (the
// agent id comes from the token, never from what the agent says), puts it in the room
// `agent:<id>` and reports it connected and disconnected. It is the one port exposed to
// clusters, so it turns away cheaply what is not an agent: a plain HTTP request gets a 400 that
// says what the port is, connection attempts beyond KAS_AGENT_CONNECT_RATE (per node) and
// KAS_AGENT_CONNECT_RATE_PER_AGENT (per token) get a connect_error agentk backs off from, and
// refused handshakes are closed at once, counted, and logged within a budget.
import { EventEmitter } from 'node:events';
import http from 'node:http';
import type { Duplex } from 'node:stream';
import type https from 'node:https';
import { Server, type Socket } from 'socket.io';
import type { Logger } from 'pino';
import type { ConnectionRefusal, LimitMetrics } from '../../otel/limitMetrics.ts';
import { FEATURES_EVENT, FRAME_MAX_BYTES, KAS_FEATURES, PROTOCOL_VERSION, rateLimitedMessage } from '../../protocol/messages.ts';
import { HandshakeSchema } from '../../protocol/messageSchemas.ts';
import type { AgentTokenStore } from '../auth/agentTokens.ts';
import { AgentConnection, AgentLoad } from './agentConnection.ts';
import { ConnectRate } from './connectRate.ts';
import { LogThrottle } from './logThrottle.ts';
import type { ReplicaInfo } from './replica.ts';



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
  metrics: LimitMetrics;
  /** KAS_AGENT_MAX_INFLIGHT, KAS_AGENT_CONNECT_RATE, KAS_AGENT_CONNECT_RATE_PER_AGENT. */
  limits: { agentMaxInflight: number; agentConnectRate: number; agentConnectRatePerAgent: number };
}

interface SocketData {
  info: ReplicaInfo;
  /** The agent takes several messages in one event (its handshake said `batches`). */
  batches: boolean;
}

/** How long a WebSocket may stay open without completing the socket.io handshake. */
const CONNECT_TIMEOUT_MS = 10_000;

/** Answers plain HTTP on the agent port: it is no API, and saying so beats silence. */
export function refusePlainHttp(_req: http.IncomingMessage, res: http.ServerResponse): void {
  const body = JSON.stringify({
    error: {
      code: 'bad_request',
      message: "this is kas's agent port: agentk connects here over a WebSocket (socket.io); API callers use kas's API port (KAS_API_LISTEN)",
    },
  });
  res.writeHead(400, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': Buffer.byteLength(body), Connection: 'close' });
  res.end(body);
}

/**
 * engine.io's stand-in response for a WebSocket upgrade puts a `close` listener on the TCP socket,
 * for middlewares that wait for a response's end; it keeps the response, and through it the
 * upgrade request, for as long as the connection lives. kas has no such middleware, so the
 * listener goes as soon as it is there: this runs as an engine middleware, right after the
 * response was made and before ws adds its own listeners, so the newest `close` listener is
 * engine.io's (a `once` wrapper; ws's are plain functions). A plain HTTP request is left alone.
 */
export function dropUpgradeResponseListener(_req: http.IncomingMessage, res: unknown, next: (error?: Error) => void): void {
  if (!(res instanceof http.ServerResponse)) {
    const tcp = (res as { socket?: Duplex }).socket;
    const newest = tcp?.rawListeners('close').at(-1) as (((...args: unknown[]) => void) & { listener?: unknown }) | undefined;
    if (newest?.listener) tcp!.removeListener('close', newest);
  }
  next();
}

/**
 * Lets go of the WebSocket's upgrade request once the connection is open. engine.io keeps it as
 * `socket.request`, with its headers and stream state and a property store that V8 keeps as a
 * hash table (engine.io deletes one of its properties); and the WebSocket keeps engine.io's
 * `onUpgradeError` listener, whose closure holds the upgrade's context. Nothing reads either after
 * the connection opened: the handshake's address is copied before, and kas takes the token in
 * its middleware from the handshake's `auth`. With `dropUpgradeResponseListener`, nothing holds
 * the request any more: a connection's live heap went from 13.5 to 10.2 KB (bench/README.md, Scale).
 */
export function releaseUpgradeRequest(raw: { request: http.IncomingMessage | null; transport?: { socket?: unknown } }): void {
  raw.request = null;
  const websocket = raw.transport?.socket as EventEmitter | undefined;
  if (!(websocket instanceof EventEmitter)) return;
  for (const listener of websocket.listeners('error')) {
    if (listener.name === 'onUpgradeError') websocket.removeListener('error', listener as (...args: unknown[]) => void);
  }
}

export function createAgentServer(o: AgentServerOptions): Server {
  // Before socket.io attaches: it passes on to earlier listeners what is not its own.
  o.httpServer.on('request', refusePlainHttp);
  const io = new Server<Record<string, never>, Record<string, never>, Record<string, never>, SocketData>(o.httpServer, {
    transports: ['websocket'],
    maxHttpBufferSize: FRAME_MAX_BYTES,
    serveClient: false,
    pingInterval: 10_000,
    pingTimeout: 10_000,
    connectTimeout: CONNECT_TIMEOUT_MS,
    // Upgrade requests for other paths get the plain-HTTP answer (serve.ts), not a silent close.
    destroyUpgrade: false,
    // Refused before the WebSocket opens: engine.io would open it, then write a 400 into it.
    allowRequest: (req, callback) => {
      const ok = new URL(req.url ?? '/', 'http://agent-port').searchParams.get('EIO') === '4';
      callback(ok ? null : 'kas speaks engine.io protocol 4 (socket.io 4) only', ok);
    },
    // A dropped agent must not come back as the same socket with stale state.
    connectionStateRecovery: undefined,
  });
  io.engine.use(dropUpgradeResponseListener);
  io.engine.on('connection', releaseUpgradeRequest);
  const rate = new ConnectRate({ perNode: o.limits.agentConnectRate, perAgent: o.limits.agentConnectRatePerAgent });
  const refusals = new LogThrottle(o.log, 'agent connections refused (summary of the interval)');
  const loads = new Map<string, AgentLoad>();

  io.use((socket, next) => {
    const refuse = (reason: ConnectionRefusal, message: string, fields: Record<string, unknown> = {}) => {
      o.metrics.agentConnectionsRefused.add(1, { reason });
      refusals.note(reason, reason === 'draining' ? 'info' : 'warn', { address: socket.handshake.address, ...fields }, `refused an agent connection: ${reason}`);
      next(new Error(message));
      // The refusal goes out first (socket.io sends it on the next tick); then the WebSocket closes
      // rather than idling until the client gives up.
      setImmediate(() => socket.conn.close());
    };
    if (o.isDraining()) return refuse('draining', 'draining');
    const nodeWait = rate.admitToNode();
    if (nodeWait > 0) {
      o.metrics.refusals.add(1, { limit: 'agent_connect_rate' });
      return refuse('rate_limited', rateLimitedMessage(nodeWait), { limit: 'KAS_AGENT_CONNECT_RATE' });
    }
    const handshake = HandshakeSchema.safeParse(socket.handshake.auth);
    const agentId = handshake.success ? o.tokens.agentIdForToken(handshake.data.token) : undefined;
    if (!handshake.success || !agentId) return refuse('unauthorized', 'unauthorized');
    const agentWait = rate.admitAgent(agentId);
    if (agentWait > 0) {
      o.metrics.refusals.add(1, { limit: 'agent_connect_rate_per_agent' });
      return refuse('rate_limited', rateLimitedMessage(agentWait), { agent_id: agentId, limit: 'KAS_AGENT_CONNECT_RATE_PER_AGENT' });
    }
    if (handshake.data.protocol !== PROTOCOL_VERSION) {
      return refuse('unsupported_protocol', `unsupported tunnel protocol ${handshake.data.protocol}; kas speaks ${PROTOCOL_VERSION}`, { agent_id: agentId });
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
    socket.data.batches = handshake.data.batches;
    // The token is checked; the connection need not carry it for its lifetime.
    socket.handshake.auth = {};
    next();
  });

  io.on('connection', (socket: Socket) => {
    const { info, batches } = socket.data as SocketData;
    // Per-replica fields on each line, without a child logger per connection (they add up at 10,000 agents).
    const fields = { agent_id: info.agentId, replica: info.replica };
    const log = o.log;
    let load = loads.get(info.agentId);
    if (!load) loads.set(info.agentId, (load = new AgentLoad(o.log.child({ agent_id: info.agentId }), o.limits.agentMaxInflight)));
    load.connections++;
    const connection = new AgentConnection(socket, info, log, { load, metrics: o.metrics, batches });
    socket.emit(FEATURES_EVENT, KAS_FEATURES);
    o.onConnected(connection);
    log.info({ ...fields, capabilities: info.capabilities, version: info.version }, 'agent replica connected');
    socket.on('disconnect', (reason) => {
      o.onDisconnected(connection);
      log.info({ ...fields, reason }, 'agent replica disconnected');
      if (--load.connections === 0) {
        load.complaints.flush();
        loads.delete(info.agentId);
      }
    });
  });
  return io;
}
