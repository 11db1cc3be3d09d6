// The `kas` command line. Flags mirror the environment: `--redis-url x` is KAS_REDIS_URL=x.
// Commands that print a token print it alone on one stdout line; everything else goes to stderr.
import { createLogger } from '../otel/logger.ts';
import { parseDuration } from '../protocol/durations.ts';
import { AgentTokenError, registerAgent, revokeAgent } from './auth/agentTokens.ts';
import { loadSecret } from './auth/secrets.ts';
import { issueApiToken } from './auth/tokens.ts';
import { ConfigError, loadConfig, type Settings } from './config.ts';
import { serve } from './serve.ts';

const USAGE = `usage:
  kas serve [--redis-url redis://…] [--api-listen host:port] [--agent-listen host:port] …
  kas agent register <agentId>       create an agent and print its token (once)
  kas agent revoke <agentId>         revoke an agent; its replicas are disconnected
  kas token issue --sub <who> --agents <id,id|*> --ttl <duration>
                                     print an API token

Every KAS_* environment variable can be given as a flag: KAS_REDIS_URL is --redis-url.`;

class UsageError extends Error {
  override name = 'UsageError';
}

/** Splits `--some-flag value` pairs into KAS_SOME_FLAG settings, returning the rest. */
function splitFlags(args: string[]): { settings: Settings; rest: string[] } {
  const settings: Settings = {};
  const rest: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (!arg.startsWith('--')) {
      rest.push(arg);
      continue;
    }
    const [flag, inline] = arg.slice(2).split(/=(.*)/s, 2);
    const value = inline ?? args[++i];
    if (!flag || value === undefined) throw new UsageError(`flag ${arg} needs a value`);
    settings[flag] = value;
  }
  return { settings, rest };
}

function kasSettings(flags: Settings): Settings {
  const settings: Settings = { ...process.env };
  for (const [flag, value] of Object.entries(flags)) settings[`KAS_${flag.toUpperCase().replaceAll('-', '_')}`] = value;
  return settings;
}

async function issueToken(argv: string[]): Promise<void> {
  const { settings, rest } = splitFlags(argv);
  const { sub, agents, ttl = '1h', ...kasFlags } = settings;
  if (rest.length > 0) throw new UsageError(`unexpected argument ${rest[0]}`);
  if (!sub || !agents) throw new UsageError('kas token issue needs --sub <who> and --agents <id,id|*>');
  const ttlMs = parseDuration(ttl);
  if (ttlMs === undefined || ttlMs <= 0) throw new UsageError(`--ttl ${ttl} is not a duration such as 15m or 1h`);
  const config = loadConfig(kasSettings(kasFlags));
  const secret = await loadSecret(config.apiSecretFile, 'KAS_API_SECRET_FILE', config.redisUrl === undefined);
  const ids = agents.split(',').map((a) => a.trim()).filter(Boolean);
  process.stdout.write(`${await issueApiToken(secret, { sub, agents: ids, ttlMs })}\n`);
}

export async function main(argv: string[]): Promise<number> {
  const [command, sub, ...more] = argv;
  try {
    if (command === 'serve') {
      const config = loadConfig(kasSettings(splitFlags(argv.slice(1)).settings));
      const log = createLogger('kas');
      const running = await serve(config, log);
      const stop = () => {
        running.shutdown().then(
          () => process.exit(0),
          (error: Error) => {
            log.error({ err: error.message }, 'shutdown failed');
            process.exit(1);
          },
        );
      };
      process.once('SIGTERM', stop);
      process.once('SIGINT', stop);
      return -1; // keep running
    }
    if (command === 'agent' && (sub === 'register' || sub === 'revoke')) {
      const { settings, rest } = splitFlags(more);
      const [agentId] = rest;
      if (!agentId) throw new UsageError(`kas agent ${sub} needs an agent id`);
      const config = loadConfig(kasSettings(settings));
      if (sub === 'register') {
        process.stdout.write(`${await registerAgent(config.agentTokensFile, agentId)}\n`);
        process.stderr.write(`registered agent ${agentId} in ${config.agentTokensFile}; the token above is shown only once\n`);
      } else {
        await revokeAgent(config.agentTokensFile, agentId);
        process.stderr.write(`revoked agent ${agentId}; running kas nodes disconnect its replicas\n`);
      }
      return 0;
    }
    if (command === 'token' && sub === 'issue') {
      await issueToken(more);
      return 0;
    }
    if (command === undefined || command === '--help' || command === 'help') {
      process.stderr.write(`${USAGE}\n`);
      return command === undefined ? 2 : 0;
    }
    throw new UsageError(`unknown command: ${argv.join(' ')}`);
  } catch (error) {
    if (error instanceof UsageError) {
      process.stderr.write(`kas: ${error.message}\n\n${USAGE}\n`);
      return 2;
    }
    if (error instanceof ConfigError || error instanceof AgentTokenError) {
      process.stderr.write(`kas: ${error.message}\n`);
      return 1;
    }
    throw error;
  }
}
