// agentk's settings: flags and environment through one table (which also writes --help), and the
// cluster owner's agent.yaml; defaulted here once, read-only afterwards. A new setting is one
// entry in AGENT_SETTINGS.
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import {
  declareSettings,
  hostPort,
  path,
  positiveDuration,
  type RawSettings,
  readSettings,
  type SettingValues,
  text,
  url,
} from '../protocol/settings.ts';
import { readAgentFile } from './agentFile.ts';
import type { AgentFileConfig } from './modules/index.ts';

export type { AgentFileConfig };

export class AgentConfigError extends Error {
  override name = 'AgentConfigError';
}

export const AGENT_SETTINGS = declareSettings('AGENTK_', {
  kasUrl: {
    env: 'AGENTK_KAS_URL',
    required: 'ws://kas:8150',
    kind: url(['ws', 'wss'], 'wss://kas.example:8150'),
    description: "kas's agent port",
  },
  tokenFile: {
    env: 'AGENTK_TOKEN_FILE',
    required: '/etc/agentk/token',
    kind: path,
    description: 'file holding the agent token that kas agent register printed',
  },
  configFile: {
    env: 'AGENTK_CONFIG',
    flag: 'config',
    kind: path,
    description: 'agent.yaml: the Prometheus and Kubernetes API to reach, and the policy',
  },
  caFile: { env: 'AGENTK_CA_FILE', kind: path, description: "PEM CA that signed kas's certificate, for wss:// with a private CA (trusted instead of the system CAs)" },
  observabilityListen: {
    env: 'AGENTK_OBSERVABILITY_LISTEN',
    default: '127.0.0.1:8181',
    kind: hostPort,
    description: '/metrics, /liveness, /readiness',
  },
  watchKeepaliveMs: {
    env: 'AGENTK_WATCH_KEEPALIVE',
    default: '30s',
    kind: positiveDuration,
    description: 'silence after which a watch gets a blank keep-alive line',
  },
  inClusterRoot: {
    env: 'AGENTK_IN_CLUSTER_ROOT',
    default: '/',
    kind: path,
    description: 'in a pod, the service-account token and CA are read from var/run/secrets/kubernetes.io/serviceaccount/ under this directory',
  },
  replica: {
    env: 'POD_NAME',
    default: { shown: '<host name>', compute: () => hostname() },
    kind: text,
    description: "this replica's name (from the downward API in a Deployment)",
  },
});

export type AgentConfig = Omit<SettingValues<typeof AGENT_SETTINGS>, 'tokenFile'> & {
  /** The agent token, read from the token file. */
  readonly token: string;
  /** agent.yaml, or empty without one. */
  readonly file: AgentFileConfig;
};

/**
 * agentk's settings, defaulted and frozen. `fromFlags` names the settings that came from flags,
 * so that an error names the flag the user typed rather than the variable.
 */
export function loadAgentConfig(settings: RawSettings, fromFlags?: ReadonlySet<string>): AgentConfig {
  const { tokenFile, ...values } = readSettings(AGENT_SETTINGS, settings, fromFlags);
  let token: string;
  try {
    token = readFileSync(tokenFile, 'utf8').trim();
  } catch (error) {
    throw new AgentConfigError(`cannot read the token file ${tokenFile}: ${(error as Error).message}`);
  }
  let file: AgentFileConfig = {};
  if (values.configFile) {
    try {
      file = readAgentFile(values.configFile);
    } catch (error) {
      throw new AgentConfigError((error as Error).message);
    }
  }
  return Object.freeze({ ...values, token, file });
}
