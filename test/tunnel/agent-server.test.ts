// What one agent connection holds on kas's agent port: once the WebSocket is open, neither the
// upgrade request (engine.io would keep it, with its headers and a hash-table property store, for
// as long as the connection lives, twice over) nor the agent's token stays with it: the request
// is garbage, collected by a forced collection; and the connection still works both ways and
// closes cleanly after that.
import assert from 'node:assert/strict';
import { type EventEmitter, once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import type { Duplex } from 'node:stream';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { metrics } from '@opentelemetry/api';
import pino from 'pino';
import type { Server } from 'socket.io';
import { io as connect } from 'socket.io-client';
import { createLimitMetrics } from '../../otel/limitMetrics.ts';
import { FEATURES_EVENT, PROTOCOL_VERSION } from '../../protocol/messages.ts';
import { AgentTokenStore, registerAgent } from '../../server/auth/agentTokens.ts';
import type { AgentConnection } from '../../server/tunnel/agentConnection.ts';
import { createAgentServer } from '../../server/tunnel/agentServer.ts';
import { waitFor } from '../support/procs.ts';

let dir: string;
let httpServer: http.Server;
let server: Server;
let tokens: AgentTokenStore;
let token: string;
let url: string;
const upgrades: { req: WeakRef<http.IncomingMessage>; tcp: Duplex }[] = [];
const connected: AgentConnection[] = [];
const disconnected: AgentConnection[] = [];

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'kas-agent-server-'));
  const file = join(dir, 'agents.json');
  token = await registerAgent(file, 'lean');
  tokens = await AgentTokenStore.open(file);
  httpServer = http.createServer();
  server = createAgentServer({
    httpServer,
    tokens,
    node: 'node-a',
    nodeUrl: 'http://127.0.0.1:1',
    log: pino({ level: 'silent' }),
    onConnected: (c) => connected.push(c),
    onDisconnected: (c) => disconnected.push(c),
    isDraining: () => false,
    metrics: createLimitMetrics(metrics.getMeter('test')),
    limits: { agentMaxInflight: 100, agentConnectRate: 100, agentConnectRatePerAgent: 100 },
  });
  // Sees each upgrade request before engine.io does, without keeping it, to look for it again once the agent is in.
  httpServer.prependListener('upgrade', (req: http.IncomingMessage, tcp: Duplex) => upgrades.push({ req: new WeakRef(req), tcp }));
  httpServer.listen(0, '127.0.0.1');
  await once(httpServer, 'listening');
  url = `ws://127.0.0.1:${(httpServer.address() as AddressInfo).port}`;
});

after(async () => {
  await server?.close();
  tokens?.close();
  await rm(dir, { recursive: true, force: true });
});

/** A full collection, from a test process started without --expose-gc. */
async function collectGarbage(): Promise<void> {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  // A WeakRef's target survives the job that created or dereferenced it: collect on a later turn.
  await new Promise((resolve) => setImmediate(resolve));
  gc();
}

test('an open agent connection keeps neither its upgrade request nor its token, and still works both ways', async () => {
  const client = connect(url, { transports: ['websocket'], reconnection: false, auth: { token, replica: 'r1', protocol: PROTOCOL_VERSION } });
  const features = await new Promise<unknown>((resolve) => client.once(FEATURES_EVENT, resolve));
  assert.ok(features && typeof features === 'object', 'kas announces its features on an accepted connection');
  assert.equal(connected.length, 1);

  const [socket] = [...server.of('/').sockets.values()];
  assert.ok(socket);
  assert.equal(socket.conn.request, null, "engine.io's reference to the upgrade request is gone");
  assert.equal(upgrades.length, 1);
  assert.deepEqual(upgrades[0]!.tcp.listeners('close').map((l) => l.name), ['socketOnClose'], "the TCP socket's only close listener is ws's");
  const websocket = (socket.conn.transport as unknown as { socket: EventEmitter }).socket;
  assert.ok(!websocket.listeners('error').some((l) => l.name === 'onUpgradeError'), "engine.io's upgrade-time error listener is gone");
  await collectGarbage();
  assert.equal(upgrades[0]!.req.deref(), undefined, 'nothing holds the upgrade request: a full collection freed it');
  assert.deepEqual(socket.handshake.auth, {}, 'the token is not kept with the connection');
  assert.equal(socket.handshake.address, '127.0.0.1', 'the handshake keeps the address it logs');

  // Both ways, after the request was let go.
  const fromAgent = once(socket, 'probe');
  client.emit('probe', 'up');
  assert.deepEqual(await fromAgent, ['up']);
  const toAgent = new Promise<unknown>((resolve) => client.once('probe', resolve));
  socket.emit('probe', 'down');
  assert.equal(await toAgent, 'down');

  // And it closes cleanly: kas sees the replica go, and the TCP socket closes.
  const tcpClosed = once(upgrades[0]!.tcp, 'close');
  client.disconnect();
  await tcpClosed;
  await waitFor(() => disconnected.length === 1, { timeoutMs: 2000, what: 'kas to see the replica go' });
  assert.equal(disconnected[0], connected[0]);
});
