// agentk's settings: flags, environment and the cluster owner's agent.yaml, defaulted here once.
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { parse as parseYaml } from 'yaml';
import { parseDuration } from '../protocol/durations.ts';
import { AgentFileSchema, type AgentFileConfig } from './modules/index.ts';

export type { AgentFileConfig };

export class AgentConfigError extends Error {
  override name = 'AgentConfigError';
}


export interface AgentConfig {
  readonly kasUrl: string;
  readonly token: string;
  readonly replica: string;
  readonly caFile: string | undefined;
  readonly observabilityListen: string;
  /** Silence after which a watch gets a keep-alive blank line (AGENTK_WATCH_KEEPALIVE). */
  readonly watchKeepaliveMs: number;
  readonly file: AgentFileConfig;
}

export function loadAgentConfig(settings: Record<string, string | undefined>): AgentConfig {
  const kasUrl = settings.AGENTK_KAS_URL;
  const tokenFile = settings.AGENTK_TOKEN_FILE;
  if (!kasUrl) throw new AgentConfigError('no kas URL: pass --kas-url ws://kas:8150 (or set AGENTK_KAS_URL)');
  if (!/^wss?:\/\//.test(kasUrl)) throw new AgentConfigError(`--kas-url ${kasUrl} must start with ws:// or wss://`);
  if (!tokenFile) throw new AgentConfigError('no token: pass --token-file /path/token (or set AGENTK_TOKEN_FILE)');
  let token: string;
  try {
    token = readFileSync(tokenFile, 'utf8').trim();
  } catch (error) {
    throw new AgentConfigError(`cannot read the token file ${tokenFile}: ${(error as Error).message}`);
  }
  let file: AgentFileConfig = {};
  const configFile = settings.AGENTK_CONFIG;
  if (configFile) {
    let raw: unknown;
    try {
      raw = parseYaml(readFileSync(configFile, 'utf8')) ?? {};
    } catch (error) {
      throw new AgentConfigError(`cannot read the config file ${configFile}: ${(error as Error).message}`);
    }
    const parsed = AgentFileSchema.safeParse(raw);
    if (!parsed.success) {
      const issues = parsed.error.issues.map((i) => `${i.path.join('.') || '(top)'}: ${i.message}`).join('; ');
      throw new AgentConfigError(`${configFile} is not a valid agentk config: ${issues}`);
    }
    file = parsed.data;
  }
  return Object.freeze({
    kasUrl,
    token,
    replica: settings.POD_NAME || hostname(),
    caFile: settings.AGENTK_CA_FILE || undefined,
    observabilityListen: settings.AGENTK_OBSERVABILITY_LISTEN ?? '127.0.0.1:8181',
    watchKeepaliveMs: durationSetting(settings, 'AGENTK_WATCH_KEEPALIVE', '30s'),
    file,
  });
}

function durationSetting(settings: Record<string, string | undefined>, name: string, fallback: string): number {
  const raw = settings[name] ?? fallback;
  const ms = parseDuration(raw);
  if (ms === undefined || ms <= 0) throw new AgentConfigError(`${name}=${raw} is not a duration; write it like 500ms, 20s, 5m or 1h`);
  return ms;
}
