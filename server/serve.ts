// `kas serve`: wires one node together from its parts and runs it until SIGTERM.
import http from 'node:http';
import type { Logger } from 'pino';
import type { Server as IoServer } from 'socket.io';
import { createKasMetrics } from '../otel/kasMetrics.ts';
import { createLimitMetrics } from '../otel/limitMetrics.ts';
import { createMetrics } from '../otel/metrics.ts';
import { traceServer } from '../otel/http.ts';
import { createObservabilityServer } from '../otel/observabilityServer.ts';
import { startTracing } from '../otel/tracing.ts';
import { AgentTokenStore } from './auth/agentTokens.ts';
import { loadSecret } from './auth/secrets.ts';
import type { KasConfig } from './config.ts';
import { nodeBudget } from './fanout/hub.ts';
import { createApiApp, errorBodyFor } from './http/apiApp.ts';
import { answerClientErrors, BodyLimits, serverOptions, StreamsPerToken } from './http/edgeLimits.ts';
import { close, listen } from './http/listen.ts';
import { createServer, reloadTlsOnChange } from './http/tls.ts';
import { createPrivateApp } from './http/privateApp.ts';
import { createUiServer } from './http/ui.ts';
import { answerEveryRequest, refuseConnect } from './http/upgrades.ts';
import { UI_NAMESPACE } from '../protocol/ui.ts';
import { NodeLifecycle } from './lifecycle.ts';
import { createCapabilities } from './modules/index.ts';
import type { Cluster } from './routing/cluster.ts';
import type { ClusterMembership } from './routing/membership.ts';
import { AgentRegistry } from './routing/registry.ts';
import { AgentRouter } from './routing/router.ts';
import { createAgentServer, refusePlainHttp } from './tunnel/agentServer.ts';

/** A draining node serves at least this long: load balancers take a readiness poll or two to notice. */
const DRAIN_MINIMUM_MS = 2_000;
/** How long a draining node waits for an agent's new connection elsewhere before closing its old one anyway. */
const REPLACEMENT_WAIT_MS = 10_000;

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

  const lifecycle = new NodeLifecycle();
  let cluster: Cluster | undefined;
  // A node needs Redis to join the cluster, not to stay in it: once joined it keeps serving while
  // Redis is away (its own agents' requests, and forwarding to the nodes it knew), so that a Redis
  // restart or failover, which every node sees at once, does not take every node out of its load
  // balancer together.
  const readiness = (): { ready: boolean; why?: string } => {
    if (lifecycle.draining) return { ready: false, why: 'draining' };
    if (clustered && !cluster) return { ready: false, why: 'waiting for Redis to join the cluster' };
    if (cluster && !cluster.ready) return { ready: true, why: "Redis unreachable: serving this node's agents and forwarding to the nodes it knew" };
    return { ready: true };
  };
  const isReady = () => readiness().ready;

  const tracing = await startTracing({ serviceName: 'kas', instanceId: config.nodeName, log });
  const metricsStack = createMetrics('kas', config.nodeName);
  const metrics = createKasMetrics(metricsStack.meter, isReady);
  const limitMetrics = createLimitMetrics(metricsStack.meter);
  if (clustered) {
    // Readiness no longer says when Redis is away (above): this does.
    metricsStack.meter
      .createObservableGauge('kas_redis_connected', { description: '1 while both of the node\'s Redis connections are up' })
      .addCallback((result) => result.observe(cluster?.ready ? 1 : 0));
  }
  const registry = new AgentRegistry(config.nodeName);

  // Observability first, so a node waiting for Redis already answers /readiness with "not yet".
  const observability = createObservabilityServer(metricsStack, readiness);
  await listen(observability, config.observabilityListen);

  if (config.redisUrl) {
    const { joinCluster } = await import('./routing/cluster.ts');
    cluster = await joinCluster({ redisUrl: config.redisUrl, redisCluster: config.redisCluster, privateSecret, node: config.nodeName, log });
  }

  const router = new AgentRouter({
    registry,
    tokens,
    privateSecret,
    routingTimeoutMs: config.routingTimeoutMs,
    log,
    metrics,
    lifecycle,
  });
  const capabilities = createCapabilities({
    agents: router,
    log,
    meter: metricsStack.meter,
    budget: nodeBudget(),
    coordination: cluster?.coordination,
    peers: cluster?.peers,
    node: config.nodeName,
    nodeUrl: config.privateUrl,
    drainSignal: lifecycle.drainSignal,
    settings: config,
  });
  // What callers may send before anything looks at it (KAS_HEADER_TIMEOUT, KAS_BODY_TIMEOUT, KAS_MAX_*).
  const edge = serverOptions(config);
  const bodies = new BodyLimits(config, limitMetrics);
  const streams = new StreamsPerToken(config.maxWatchesPerToken, limitMetrics);
  // Every request to the API and private ports is a SERVER span (otel/http.ts).
  const apiApp = traceServer(
    createApiApp({ apiSecret, tokens, registry, capabilities, requestTimeoutMs: config.requestTimeoutMs, metrics, log, lifecycle, traceUiUrl: config.traceUiUrl, bodies, streams }),
    config.apiTls ? 'https' : 'http',
  );
  const apiServer = createServer(config.apiTls, apiApp, edge);
  const uiIo = createUiServer({ httpServer: apiServer, apiSecret, registry, capabilities, log });
  const privateApp = traceServer(createPrivateApp({ privateSecret, router, capabilities, maxTimeoutMs: config.requestTimeoutMs, log, lifecycle, bodies }), 'http');
  const privateServer = http.createServer(edge, privateApp);
  for (const [port, server, app] of [['api', apiServer, apiApp], ['private', privateServer, privateApp]] as const) {
    answerClientErrors(server, { errorBodyFor: (url) => errorBodyFor(capabilities, url), metrics: limitMetrics, log, port });
    answerEveryRequest(server, app, refuseConnect);
  }
  const agentHttp = createServer(config.agentTls, undefined, { headersTimeout: config.headerTimeoutMs, requestTimeout: config.headerTimeoutMs, connectionsCheckingInterval: 1_000 });
  answerEveryRequest(agentHttp, refusePlainHttp);
  const stopTlsReload = reloadTlsOnChange({ servers: { api: apiServer, agent: agentHttp }, tokens, log });

  let membership: ClusterMembership | undefined;
  const io: IoServer = createAgentServer({
    httpServer: agentHttp,
    tokens,
    node: config.nodeName,
    nodeUrl: config.privateUrl,
    log,
    onConnected: (connection) => {
      registry.addLocal(connection);
      metrics.connectedReplicas.add(1);
      membership?.replicaUp(connection.info);
    },
    onDisconnected: (connection) => {
      registry.removeLocal(connection);
      metrics.connectedReplicas.add(-1);
      membership?.replicaDown(connection.info);
    },
    isDraining: () => lifecycle.draining,
    metrics: limitMetrics,
    limits: config,
  });
  membership = cluster?.attach(io, registry, config.privateUrl);

  // Every node follows the token store, so each disconnects the replicas it holds.
  tokens.on('revoked', (ids) => {
    const revoked = new Set(ids);
    for (const id of ids) log.info({ agent_id: id }, 'agent token revoked; disconnecting its replicas');
    for (const connection of registry.localConnections()) if (revoked.has(connection.info.agentId)) connection.disconnect();
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
      log.info({ in_flight: lifecycle.inFlight, drain_timeout_ms: config.drainTimeoutMs }, 'draining');
      const started = Date.now();
      const deadline = started + config.drainTimeoutMs;
      // Readiness turns off, watches and follows end cleanly (their clients resume from their last
      // resourceVersion through another node), live graphs hand their leases over.
      lifecycle.startDraining();
      // Each agent opens a new connection (to a node that stays) before this one closes; other
      // nodes stop sending its requests here at once.
      for (const connection of registry.localConnections()) {
        connection.drain();
        membership?.replicaDown(connection.info);
      }
      // Dashboard tabs reconnect through the load balancer to a node that stays, and resume there.
      uiIo.of(UI_NAMESPACE).local.disconnectSockets(true);
      const minimumMs = Math.min(DRAIN_MINIMUM_MS, config.drainTimeoutMs);
      while (Date.now() < deadline) {
        for (const connection of registry.localConnections()) {
          // Closed once its requests here are done and its replacement is up elsewhere (or cannot be).
          const replaced = !clustered || Date.now() - started > REPLACEMENT_WAIT_MS || registry.replicas(connection.info.agentId).some((r) => r.replica === connection.info.replica && r.node !== registry.node);
          if (connection.inFlight === 0 && replaced) connection.disconnect();
        }
        const idle = lifecycle.inFlight === 0 && registry.localConnections().length === 0;
        // A load balancer polling readiness keeps sending for a moment: serve what it sends.
        if (idle && Date.now() - started >= minimumMs) break;
        await new Promise((r) => setTimeout(r, 50));
      }
      if (lifecycle.inFlight > 0) log.warn({ in_flight: lifecycle.inFlight }, 'drain timeout passed; cutting remaining requests');
      await membership?.stop();
      // This node's agents only: with the Redis adapter, io.disconnectSockets() reaches every node's.
      io.local.disconnectSockets(true);
      // Let finished answers flush and idle keep-alive connections close; then cut what is left.
      const closing = Promise.all([close(apiServer), close(privateServer)]);
      apiServer.closeIdleConnections();
      privateServer.closeIdleConnections();
      await Promise.race([closing, new Promise((r) => setTimeout(r, 1000))]);
      apiServer.closeAllConnections();
      privateServer.closeAllConnections();
      await Promise.all([closing, io.close().catch(() => undefined), uiIo.close().catch(() => undefined)]);
      stopTlsReload();
      tokens.close();
      await cluster?.close();
      observability.closeAllConnections();
      await close(observability);
      await metricsStack.shutdown();
      await tracing.shutdown();
      log.info('stopped');
    },
  };
}
