// `agentk`: the in-cluster agent. Flags mirror the environment: `--kas-url` is AGENTK_KAS_URL.
import { createLogger } from '../otel/logger.ts';
import { createMetrics, SECONDS_BUCKETS } from '../otel/metrics.ts';
import { createObservabilityServer } from '../otel/observabilityServer.ts';
import { startTracing } from '../otel/tracing.ts';
import { AgentConfigError, loadAgentConfig } from './config.ts';
import { KasConnection } from './connection.ts';
import { CapabilitySetupError, createExecutors } from './modules/index.ts';

const VERSION = '0.1.0';

const USAGE = `usage: agentk --kas-url ws://kas:8150 --token-file /path/token [--config agent.yaml]
  env: AGENTK_KAS_URL, AGENTK_TOKEN_FILE, AGENTK_CONFIG, AGENTK_CA_FILE, AGENTK_OBSERVABILITY_LISTEN, AGENTK_WATCH_KEEPALIVE, POD_NAME`;

function settingsFrom(argv: string[]): Record<string, string | undefined> {
  const settings: Record<string, string | undefined> = { ...process.env };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--help' || !arg.startsWith('--')) throw new AgentConfigError(arg === '--help' ? '' : `unexpected argument ${arg}`);
    const [flag, inline] = arg.slice(2).split(/=(.*)/s, 2);
    const value = inline ?? argv[++i];
    if (!flag || value === undefined) throw new AgentConfigError(`flag ${arg} needs a value`);
    settings[`AGENTK_${flag.toUpperCase().replaceAll('-', '_')}`] = value;
  }
  return settings;
}

export async function main(argv: string[]): Promise<number> {
  let config;
  try {
    config = loadAgentConfig(settingsFrom(argv));
  } catch (error) {
    if (!(error instanceof AgentConfigError)) throw error;
    process.stderr.write(error.message ? `agentk: ${error.message}\n\n${USAGE}\n` : `${USAGE}\n`);
    return error.message ? 2 : 0;
  }
  const log = createLogger('agentk').child({ replica: config.replica });
  const tracing = await startTracing({ serviceName: 'agentk', instanceId: config.replica, version: VERSION, log });

  let executors;
  try {
    executors = await createExecutors({ file: config.file, env: process.env, watchKeepaliveMs: config.watchKeepaliveMs, log });
  } catch (error) {
    if (!(error instanceof CapabilitySetupError)) throw error;
    process.stderr.write(`agentk: ${error.message}\n`);
    return 2;
  }

  const metrics = createMetrics('agentk', config.replica);
  const requests = metrics.meter.createCounter('agentk_requests', { description: 'Tunnelled requests, by upstream and status' });
  const upstreamDuration = metrics.meter.createHistogram('agentk_upstream_duration_seconds', {
    description: 'Time from request to the end of the upstream answer',
    advice: { explicitBucketBoundaries: SECONDS_BUCKETS },
  });
  const connection = new KasConnection({
    kasUrl: config.kasUrl,
    token: config.token,
    replica: config.replica,
    version: VERSION,
    caFile: config.caFile,
    executors,
    log,
    onRequestDone: (upstream, outcome, seconds) => {
      const code = outcome.error ?? String(outcome.status);
      requests.add(1, { upstream, code });
      upstreamDuration.record(seconds, { upstream });
      // kas logs every request it routes; agentk's own line is for debugging an agent.
      log.debug({ upstream, status: outcome.status, bytes: outcome.bytes, error: outcome.error, duration_ms: Math.round(seconds * 1000) }, 'request served');
    },
  });
  metrics.meter
    .createObservableGauge('agentk_connected', { description: '1 while connected to kas' })
    .addCallback((r) => r.observe(connection.connected ? 1 : 0));
  metrics.meter
    .createObservableCounter('agentk_reconnects', { description: 'Reconnection attempts to kas' })
    .addCallback((r) => r.observe(connection.reconnects));

  const [host, port] = [config.observabilityListen.replace(/:\d+$/, ''), Number(config.observabilityListen.split(':').pop())];
  const observability = createObservabilityServer(metrics, () => ({ ready: connection.connected, why: 'not connected' }));
  await new Promise<void>((resolve, reject) => observability.once('error', reject).listen(port, host, resolve));

  connection.start();
  const stop = () => {
    log.info('stopping');
    connection.stop();
    observability.close();
    void Promise.all([metrics.shutdown(), tracing.shutdown()]).then(() => process.exit(0));
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
  return -1;
}
