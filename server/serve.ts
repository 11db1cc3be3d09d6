// `kas serve`: wires one node together from its parts and runs it until SIGTERM.
import http from 'node:http';
import { createShardedAdapter } from '@socket.io/redis-adapter';
import type { Logger } from 'pino';
import type { Server as IoServer } from 'socket.io';
import { createMetrics } from '../otel/metrics.ts';
import { startTracing } from '../otel/tracing.ts';
import { AgentTokenStore } from './auth/agentTokens.ts';
import { loadSecret } from './auth/secrets.ts';
import type { KasConfig } from './config.ts';
import { createApiApp } from './http/apiApp.ts';
import { close, listen } from './http/listen.ts';
import { createServer, reloadTlsOnChange } from './http/tls.ts';
import { createPrivateApp } from './http/privateApp.ts';
import type { CapabilityChecks } from './modules/capability.ts';
import { checkKubernetesRequest } from './modules/kubernetes/server.ts';
import { checkPrometheusRequest } from './modules/prometheus/server.ts';
import { createKasMetrics } from './observability/metrics.ts';
import { ClusterMembership } from './routing/membership.ts';
import { connectRedis } from './routing/redis.ts';
import { AgentRegistry } from './routing/registry.ts';
import { AgentRouter } from './routing/router.ts';
import { agentRoom, createAgentServer } from './tunnel/agentServer.ts';

const CAPABILITIES: CapabilityChecks = { prometheus: checkPrometheusRequest, kubernetes: checkKubernetesRequest };

export interface RunningKas {
  /** Drains (readiness off, agents asked to move, in-flight requests finish) and stops. */
  shutdown(): Promise<void>;
}

export async function serve(config: KasConfig, log: Logger): Promise<RunningKas> {
  const clustered = config.redisUrl !== undefined;
  const apiSecret = await loadSecret(config.apiSecretFile, 'KAS_API_SECRET_FILE', !clustered);
  const privateSecret = await loadSecret(config.privateSecretFile, 'KAS_PRIVATE_SECRET_FILE', !clustered);
  const tokens = await AgentTokenStore.open(config.agentTokensFile);
  tokens.on('error', (error) => log.error({ err: error.message }, 'could not re-read the agent token store'));

  let draining = false;
  let redis: Awaited<ReturnType<typeof connectRedis>> | undefined;
  const isReady = () => !draining && (!clustered || (redis !== undefined && redis.pub.isReady && redis.sub.isReady));

  const tracing = await startTracing({ serviceName: 'kas', instanceId: config.nodeName, log });
  const metricsStack = createMetrics('kas', config.nodeName);
  const metrics = createKasMetrics(metricsStack.meter, isReady);
  const registry = new AgentRegistry(config.nodeName);
  const inFlight = { count: 0 };

  // Observability first, so a node waiting for Redis already answers /readiness with "not yet".
  const observability = http.createServer((req, res) => {
    const path = req.url?.split('?')[0];
    if (path === '/metrics') return metricsStack.serve(req, res);
    if (path === '/liveness') return void res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
    if (path === '/readiness') {
      const ready = isReady();
      return void res.writeHead(ready ? 200 : 503, { 'content-type': 'text/plain' }).end(ready ? 'ready\n' : 'not ready\n');
    }
    res.writeHead(404).end();
  });
  await listen(observability, config.observabilityListen);

  if (config.redisUrl) redis = await connectRedis(config.redisUrl, log);

  const drain = new AbortController();
  const router = new AgentRouter({
    registry,
    tokens,
    privateSecret,
    routingTimeoutMs: config.routingTimeoutMs,
    log,
    metrics,
    drainSignal: drain.signal,
  });
  const apiServer = createServer(
    config.apiTls,
    createApiApp({
      apiSecret,
      tokens,
      registry,
      router,
      checks: CAPABILITIES,
      requestTimeoutMs: config.requestTimeoutMs,
      metrics,
      log,
      inFlight,
    }),
  );
  const privateServer = http.createServer(
    createPrivateApp({ privateSecret, router, checks: CAPABILITIES, maxTimeoutMs: config.requestTimeoutMs, log, inFlight }),
  );
  const agentHttp = createServer(config.agentTls);
  const stopTlsReload = reloadTlsOnChange({ servers: { api: apiServer, agent: agentHttp }, tokens, log });

  let membership: ClusterMembership | undefined;
  const io: IoServer = createAgentServer({
    httpServer: agentHttp,
    tokens,
    registry,
    nodeUrl: config.privateUrl,
    metrics,
    log,
    onReplicaUp: (info) => membership?.replicaUp(info),
    onReplicaDown: (info) => membership?.replicaDown(info),
    isDraining: () => draining,
  });
  if (redis) {
    io.adapter(createShardedAdapter(redis.pub, redis.sub));
    membership = new ClusterMembership({ redis: redis.pub, io, registry, nodeUrl: config.privateUrl, log });
    membership.start();
  }

  tokens.on('revoked', (ids) => {
    for (const id of ids) {
      log.info({ agent_id: id }, 'agent token revoked; disconnecting its replicas');
      io.in(agentRoom(id)).disconnectSockets(true);
    }
  });

  await listen(privateServer, config.privateListen);
  await listen(apiServer, config.apiListen);
  await listen(agentHttp, config.agentListen);
  log.info(
    {
      node: config.nodeName,
      api: `${config.apiTls ? 'https' : 'http'}://${config.apiListen.host}:${config.apiListen.port}`,
      agents: `${config.agentTls ? 'wss' : 'ws'}://${config.agentListen.host}:${config.agentListen.port}`,
      private: config.privateUrl,
      observability: `http://${config.observabilityListen.host}:${config.observabilityListen.port}`,
      mode: clustered ? 'cluster (Redis)' : 'single node',
      traces: tracing.exporting,
    },
    'kas is serving',
  );

  return {
    async shutdown() {
      draining = true;
      log.info({ in_flight: inFlight.count, drain_timeout_ms: config.drainTimeoutMs }, 'draining');
      for (const connection of registry.localConnections()) connection.drain();
      // Watches and follows never finish by themselves: end them cleanly now, so their
      // clients resume (from their last resourceVersion) through another node.
      drain.abort();
      const deadline = Date.now() + config.drainTimeoutMs;
      while (inFlight.count > 0 && Date.now() < deadline) {
        // An agent whose requests here are done may move now rather than when the node stops.
        for (const connection of registry.localConnections()) if (connection.inFlight === 0) connection.disconnect();
        await new Promise((r) => setTimeout(r, 50));
      }
      if (inFlight.count > 0) log.warn({ in_flight: inFlight.count }, 'drain timeout passed; cutting remaining requests');
      await membership?.stop();
      io.disconnectSockets(true);
      // Let finished answers flush and idle keep-alive connections close; then cut what is left.
      const closing = Promise.all([close(apiServer), close(privateServer)]);
      apiServer.closeIdleConnections();
      privateServer.closeIdleConnections();
      await Promise.race([closing, new Promise((r) => setTimeout(r, 1000))]);
      apiServer.closeAllConnections();
      privateServer.closeAllConnections();
      await Promise.all([closing, io.close().catch(() => undefined)]);
      stopTlsReload();
      tokens.close();
      await Promise.all([redis?.pub.close(), redis?.sub.close()].map((p) => p?.catch(() => undefined)));
      observability.closeAllConnections();
      await close(observability);
      await metricsStack.shutdown();
      await tracing.shutdown();
      log.info('stopped');
    },
  };
}
