// Every kas setting, its default and its parsing, in one place. After loadConfig the result is
// read-only; nothing else reads process.env for kas settings.
import { hostname } from 'node:os';
import { join, resolve } from 'node:path';
import { parseDuration } from '../protocol/durations.ts';

export interface HostPort {
  host: string;
  port: number;
}

export interface KasConfig {
  readonly agentListen: HostPort;
  readonly apiListen: HostPort;
  readonly privateListen: HostPort;
  readonly privateUrl: string;
  readonly observabilityListen: HostPort;
  readonly redisUrl: string | undefined;
  readonly dataDir: string;
  readonly apiSecretFile: string;
  readonly privateSecretFile: string;
  readonly agentTokensFile: string;
  readonly routingTimeoutMs: number;
  readonly requestTimeoutMs: number;
  readonly drainTimeoutMs: number;
  readonly apiTls: TlsFiles | undefined;
  readonly agentTls: TlsFiles | undefined;
  /** This node's name in membership, logs and `X-Kas-Node`. */
  readonly nodeName: string;
  readonly liveDelayMs: number;
  readonly liveMaxSeries: number;
  readonly liveMaxSubscriptions: number;
  readonly traceUiUrl: string | undefined;
}

export interface TlsFiles {
  certFile: string;
  keyFile: string;
}

/** Settings as environment variable names; flags (`--redis-url`) map onto the same names. */
export type Settings = Record<string, string | undefined>;

export class ConfigError extends Error {
  override name = 'ConfigError';
}

export function parseHostPort(value: string, setting: string): HostPort {
  const match = /^(.*):(\d{1,5})$/.exec(value);
  const port = match ? Number(match[2]) : NaN;
  if (!match || port > 65535) {
    throw new ConfigError(`${setting}=${value} is not host:port (for example 127.0.0.1:8153)`);
  }
  const host = match[1]!.replace(/^\[(.*)\]$/, '$1');
  return { host: host === '' ? '0.0.0.0' : host, port };
}

function duration(settings: Settings, name: string, fallback: string): number {
  const value = settings[name] ?? fallback;
  const ms = parseDuration(value);
  if (ms === undefined) throw new ConfigError(`${name}=${value} is not a duration such as 500ms, 20s, 5m or 1h`);
  return ms;
}

function count(settings: Settings, name: string, fallback: number): number {
  const raw = settings[name];
  if (raw === undefined || raw === '') return fallback;
  if (!/^\d+$/.test(raw.trim()) || Number(raw) < 1) throw new ConfigError(`${name}=${raw} is not a whole number of at least 1`);
  return Number(raw);
}

function tls(settings: Settings, prefix: string): TlsFiles | undefined {
  const certFile = settings[`${prefix}_CERT_FILE`];
  const keyFile = settings[`${prefix}_KEY_FILE`];
  if (!certFile && !keyFile) return undefined;
  if (!certFile || !keyFile) throw new ConfigError(`${prefix}_CERT_FILE and ${prefix}_KEY_FILE must be set together`);
  return { certFile, keyFile };
}

export function loadConfig(settings: Settings): KasConfig {
  const dataDir = resolve(settings.KAS_DATA_DIR ?? './.kas');
  const privateListen = parseHostPort(settings.KAS_PRIVATE_LISTEN ?? '127.0.0.1:8155', 'KAS_PRIVATE_LISTEN');
  const privateHost = privateListen.host === '0.0.0.0' ? '127.0.0.1' : privateListen.host;
  const redisUrl = settings.KAS_REDIS_URL || undefined;
  return Object.freeze({
    agentListen: parseHostPort(settings.KAS_AGENT_LISTEN ?? '0.0.0.0:8150', 'KAS_AGENT_LISTEN'),
    apiListen: parseHostPort(settings.KAS_API_LISTEN ?? '127.0.0.1:8153', 'KAS_API_LISTEN'),
    privateListen,
    privateUrl: (settings.KAS_PRIVATE_URL ?? `http://${privateHost}:${privateListen.port}`).replace(/\/+$/, ''),
    observabilityListen: parseHostPort(
      settings.KAS_OBSERVABILITY_LISTEN ?? '127.0.0.1:8151',
      'KAS_OBSERVABILITY_LISTEN',
    ),
    redisUrl,
    dataDir,
    apiSecretFile: resolve(settings.KAS_API_SECRET_FILE ?? join(dataDir, 'api-secret')),
    privateSecretFile: resolve(settings.KAS_PRIVATE_SECRET_FILE ?? join(dataDir, 'private-secret')),
    agentTokensFile: resolve(settings.KAS_AGENT_TOKENS_FILE ?? join(dataDir, 'agents.json')),
    routingTimeoutMs: duration(settings, 'KAS_ROUTING_TIMEOUT', '20s'),
    requestTimeoutMs: duration(settings, 'KAS_REQUEST_TIMEOUT', '60s'),
    drainTimeoutMs: duration(settings, 'KAS_DRAIN_TIMEOUT', '30s'),
    apiTls: tls(settings, 'KAS_API_TLS'),
    agentTls: tls(settings, 'KAS_AGENT_TLS'),
    nodeName: settings.KAS_NODE_NAME ?? `${hostname()}-${process.pid}`,
    liveDelayMs: duration(settings, 'KAS_LIVE_DELAY', '1s'),
    liveMaxSeries: count(settings, 'KAS_LIVE_MAX_SERIES', 1000),
    liveMaxSubscriptions: count(settings, 'KAS_LIVE_MAX_SUBSCRIPTIONS', 1000),
    traceUiUrl: settings.KAS_TRACE_UI_URL || undefined,
  });
}
