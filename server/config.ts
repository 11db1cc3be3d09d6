// Every kas setting, in one table: its variable, flag, default, meaning and parsing. `kas serve`
// reads its flags and environment through it and `--help` is written from it; after loadConfig
// the result is read-only. Nothing else reads process.env for kas settings. A new setting is one
// entry here (its field appears in KasConfig by itself).
import { hostname } from 'node:os';
import { join } from 'node:path';
import {
  boolean,
  declareSettings,
  duration,
  type HostPort,
  hostPort,
  path,
  type Kind,
  positiveDuration,
  positiveInteger,
  type RawSettings,
  readSettings,
  SettingError,
  type SettingValues,
  text,
  url,
} from '../protocol/settings.ts';

export type { HostPort };

/** Settings as environment variable names; flags (`--redis-url`) map onto the same names. */
export type Settings = RawSettings;

/** A problem with what the settings point at (a missing secret file), not with their text. */
export class ConfigError extends Error {
  override name = 'ConfigError';
}

/** A loopback-reachable host:port for a listener bound to `value` (0.0.0.0 → 127.0.0.1). */
function reachable(value: string | undefined): string {
  const parsed = value === undefined ? undefined : hostPort.parse(value);
  if (!parsed) return value ?? '';
  const host = parsed.host === '0.0.0.0' || parsed.host === '::' ? '127.0.0.1' : parsed.host;
  return `${host.includes(':') ? `[${host}]` : host}:${parsed.port}`;
}

const BYTE_UNITS: Record<string, number> = { '': 1, B: 1, KiB: 1024, MiB: 1024 ** 2, KB: 1000, MB: 1000 ** 2 };

/** Bytes from `16384`, `16KiB`, `512KiB`, `1MiB` (or KB, MB), from one byte up to `max`. */
function byteSize(max: number): Kind<number> {
  return {
    placeholder: 'size',
    expected: `a size such as 16KiB, 512KiB or 1MiB, at most ${max / 1024 ** 2}MiB`,
    parse(value) {
      const match = /^(\d+)\s*(B|KiB|MiB|KB|MB)?$/.exec(value.trim());
      if (!match) return undefined;
      const bytes = Number(match[1]) * BYTE_UNITS[match[2] ?? '']!;
      return Number.isSafeInteger(bytes) && bytes > 0 && bytes <= max ? bytes : undefined;
    },
  };
}

const inDataDir = (file: string) => ({
  shown: `<data dir>/${file}`,
  compute: (earlier: RawSettings) => join(earlier.KAS_DATA_DIR!, file),
});

export const KAS_SETTINGS = declareSettings('KAS_', {
  agentListen: {
    env: 'KAS_AGENT_LISTEN',
    default: '0.0.0.0:8150',
    kind: hostPort,
    description: 'socket.io (WebSocket only) for agents; the only port exposed to clusters',
  },
  apiListen: {
    env: 'KAS_API_LISTEN',
    default: '127.0.0.1:8153',
    kind: hostPort,
    description: 'HTTP API for Rails, the dashboard, kubectl and Prometheus clients',
  },
  privateListen: { env: 'KAS_PRIVATE_LISTEN', default: '127.0.0.1:8155', kind: hostPort, description: 'kas-to-kas forwarding' },
  privateUrl: {
    env: 'KAS_PRIVATE_URL',
    default: { shown: 'http://<KAS_PRIVATE_LISTEN>', compute: (earlier) => `http://${reachable(earlier.KAS_PRIVATE_LISTEN)}` },
    kind: url(['http', 'https'], 'http://kas-0.kas:8155'),
    description: 'how other nodes reach this one',
  },
  observabilityListen: {
    env: 'KAS_OBSERVABILITY_LISTEN',
    default: '127.0.0.1:8151',
    kind: hostPort,
    description: '/metrics, /liveness, /readiness',
  },
  redisUrl: {
    env: 'KAS_REDIS_URL',
    kind: url(['redis', 'rediss'], 'redis://redis:6379'),
    description: 'the Redis all nodes of a cluster share; unset = a single node',
  },
  redisCluster: {
    env: 'KAS_REDIS_CLUSTER',
    default: 'false',
    kind: boolean,
    description: 'KAS_REDIS_URL is one node of a Redis Cluster (the others are found from it)',
  },
  dataDir: {
    env: 'KAS_DATA_DIR',
    default: './.kas',
    kind: path,
    description: 'where a single node keeps generated secrets and the agent token store',
  },
  apiSecretFile: {
    env: 'KAS_API_SECRET_FILE',
    default: inDataDir('api-secret'),
    kind: path,
    description: 'base64 of >= 32 random bytes; signs API tokens (HS256)',
  },
  privateSecretFile: {
    env: 'KAS_PRIVATE_SECRET_FILE',
    default: inDataDir('private-secret'),
    kind: path,
    description: 'same form; signs kas-to-kas requests; shared by all nodes',
  },
  agentTokensFile: {
    env: 'KAS_AGENT_TOKENS_FILE',
    default: inDataDir('agents.json'),
    kind: path,
    description: 'agent ids with token hashes; re-read on change and on SIGHUP',
  },
  routingTimeoutMs: {
    env: 'KAS_ROUTING_TIMEOUT',
    default: '20s',
    kind: duration,
    description: 'how long a request waits for a replica of its agent to be connected',
  },
  requestTimeoutMs: { env: 'KAS_REQUEST_TIMEOUT', default: '60s', kind: duration, description: 'bound on a non-watch request' },
  drainTimeoutMs: {
    env: 'KAS_DRAIN_TIMEOUT',
    default: '30s',
    kind: duration,
    description: 'on SIGTERM: how long in-flight requests may finish',
  },
  liveDelayMs: {
    env: 'KAS_LIVE_DELAY',
    default: '1s',
    kind: duration,
    description: "how long after a step's time its point is evaluated (live graphs)",
  },
  liveMaxSeries: { env: 'KAS_LIVE_MAX_SERIES', default: '1000', kind: positiveInteger, description: 'series one live graph may have' },
  liveMaxSubscriptions: {
    env: 'KAS_LIVE_MAX_SUBSCRIPTIONS',
    default: '1000',
    kind: positiveInteger,
    description: 'distinct live graphs one node serves (429 beyond)',
  },
  traceUiUrl: {
    env: 'KAS_TRACE_UI_URL',
    kind: url(['http', 'https'], 'http://jaeger:16686/trace/{traceId}', (value) => value.includes('{traceId}')),
    description: 'the dashboard links trace ids to this URL, {traceId} replaced (Jaeger, Tempo)',
  },
  apiTlsCertFile: {
    env: 'KAS_API_TLS_CERT_FILE',
    kind: path,
    description: 'PEM certificate (chain) of the API port; with the key, it serves HTTPS only; re-read on change and on SIGHUP',
  },
  apiTlsKeyFile: { env: 'KAS_API_TLS_KEY_FILE', kind: path, description: "PEM private key of the API port's certificate" },
  agentTlsCertFile: {
    env: 'KAS_AGENT_TLS_CERT_FILE',
    kind: path,
    description: "PEM certificate of the agents' port; with the key, agents connect with wss://; re-read on change and on SIGHUP",
  },
  agentTlsKeyFile: { env: 'KAS_AGENT_TLS_KEY_FILE', kind: path, description: "PEM private key of the agents' port's certificate" },
  headerTimeoutMs: {
    env: 'KAS_HEADER_TIMEOUT',
    default: '10s',
    kind: positiveDuration,
    description: 'how long a caller (API and private ports) or an agent (its port) may take to send a request head; slower ones get 408 and are closed',
  },
  bodyTimeoutMs: {
    env: 'KAS_BODY_TIMEOUT',
    default: '10s',
    kind: positiveDuration,
    description: 'how long a request body may take to arrive in full (API and private ports); beyond, 408 and the connection is closed',
  },
  maxRequestBodyBytes: {
    env: 'KAS_MAX_REQUEST_BODY',
    default: '512KiB',
    kind: byteSize(16 * 1024 * 1024),
    description: 'largest request body kas takes (Prometheus form posts); beyond, 413',
  },
  maxHeaderBytes: {
    env: 'KAS_MAX_HEADER_SIZE',
    default: '16KiB',
    kind: byteSize(1024 * 1024),
    description: 'largest request head (request line and headers) on the API and private ports; beyond, 431',
  },
  agentMaxInflight: {
    env: 'KAS_AGENT_MAX_INFLIGHT',
    default: '256',
    kind: positiveInteger,
    description: "requests one agent serves at once through this node's replicas of it, watches and log follows aside; beyond, 429",
  },
  maxWatchesPerToken: {
    env: 'KAS_MAX_WATCHES_PER_TOKEN',
    default: '1000',
    kind: positiveInteger,
    description: 'Kubernetes watches and log follows one API token may hold open on a node; beyond, 429',
  },
  agentConnectRate: {
    env: 'KAS_AGENT_CONNECT_RATE',
    default: '500',
    kind: positiveInteger,
    description: 'agent connections a node accepts per second (bursts up to as many); beyond, a connect_error agentk backs off from',
  },
  agentConnectRatePerAgent: {
    env: 'KAS_AGENT_CONNECT_RATE_PER_AGENT',
    default: '5',
    kind: positiveInteger,
    description: 'connections a node accepts per second with one agent token (bursts up to as many); beyond, the same connect_error',
  },
  nodeName: {
    env: 'KAS_NODE_NAME',
    default: { shown: '<host name>-<pid>', compute: () => `${hostname()}-${process.pid}` },
    kind: text,
    description: "this node's name in membership, logs, traces and X-Kas-Node",
  },
});

export type KasSettingName = keyof typeof KAS_SETTINGS & string;

export interface TlsFiles {
  certFile: string;
  keyFile: string;
}

export type KasConfig = SettingValues<typeof KAS_SETTINGS> & {
  /** Both TLS files of the API port, when it serves HTTPS. */
  readonly apiTls: TlsFiles | undefined;
  /** Both TLS files of the agents' port, when it serves wss://. */
  readonly agentTls: TlsFiles | undefined;
};

function tlsPair(certFile: string | undefined, keyFile: string | undefined, prefix: string): TlsFiles | undefined {
  if (!certFile && !keyFile) return undefined;
  if (!certFile || !keyFile) throw new SettingError(`${prefix}_CERT_FILE and ${prefix}_KEY_FILE must be set together`);
  return { certFile, keyFile };
}

/**
 * The node's settings, defaulted and frozen. `fromFlags` names the settings that came from
 * flags, so that an error names the flag the user typed rather than the variable.
 */
export function loadConfig(settings: Settings, fromFlags?: ReadonlySet<string>): KasConfig {
  const values = readSettings(KAS_SETTINGS, settings, fromFlags);
  return Object.freeze({
    ...values,
    apiTls: tlsPair(values.apiTlsCertFile, values.apiTlsKeyFile, 'KAS_API_TLS'),
    agentTls: tlsPair(values.agentTlsCertFile, values.agentTlsKeyFile, 'KAS_AGENT_TLS'),
  });
}

/** One host:port setting outside the table (npm start's own), with the table's error. */
export function parseHostPort(value: string, setting: string): HostPort {
  const parsed = hostPort.parse(value);
  if (!parsed) throw new SettingError(`${setting} ${JSON.stringify(value)} is not valid: expected ${hostPort.expected}`);
  return parsed;
}
