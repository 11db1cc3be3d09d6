// `agentk`: the in-cluster agent. Flags mirror the environment: `--kas-url` is AGENTK_KAS_URL.
import { createLogger } from '../otel/logger.ts';
import { createMetrics, SECONDS_BUCKETS } from '../otel/metrics.ts';
import { createObservabilityServer } from '../otel/observabilityServer.ts';
import { releaseStartupMemory } from './startupMemory.ts';
import { startTracing } from '../otel/tracing.ts';
import { formatHelp, parseCommandLine, SettingError } from '../protocol/settings.ts';
import { VERSION } from '../protocol/version.ts';
import { AGENT_SETTINGS, AgentConfigError, loadAgentConfig } from './config.ts';
import { KasConnection } from './connection.ts';
import { CapabilitySetupError, createExecutors } from './modules/index.ts';

const HELP = {
  usage: 'agentk --kas-url ws://kas:8150 --token-file /path/token [--config agent.yaml] [flags]',
  about: 'The in-cluster agent: dials out to kas and serves its requests from the Prometheus and Kubernetes API named in agent.yaml.',
  flags: [{ table: AGENT_SETTINGS }],
};

export async function main(argv: string[]): Promise<number> {
  let config;
  try {
    const line = parseCommandLine(argv, process.env, { flags: HELP.flags, command: 'agentk' });
    if (line.help || line.version) {
      process.stdout.write(line.help ? formatHelp(HELP) : `agentk ${VERSION}\n`);
      return 0;
    }
    config = loadAgentConfig(line.settings, line.fromFlags);
  } catch (error) {
    if (!(error instanceof AgentConfigError || error instanceof SettingError)) throw error;
    process.stderr.write(`agentk: ${error.message}\n`);
    return 2;
  }
  const log = createLogger('agentk').child({ replica: config.replica });
  const tracing = await startTracing({ serviceName: 'agentk', instanceId: config.replica, version: VERSION, log });

  let executors;
  try {
    executors = await createExecutors({ file: config.file, env: process.env, watchKeepaliveMs: config.watchKeepaliveMs, inClusterRoot: config.inClusterRoot, log });
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

  const { host, port } = config.observabilityListen;
  const observability = createObservabilityServer(metrics, () => ({ ready: connection.connected, why: 'not connected' }));
  await new Promise<void>((resolve, reject) => observability.once('error', reject).listen(port, host, resolve));

  connection.start();
  releaseStartupMemory();
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
