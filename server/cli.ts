// The `kas` command line. Flags mirror the environment (`--redis-url x` is KAS_REDIS_URL=x), both
// read through the settings table in config.ts, which also writes each command's --help.
// Commands that print a token print it alone on one stdout line; everything else goes to stderr.
// Exit codes: 0 done, 1 failed (a secret missing, an agent already registered), 2 the command
// line or a setting is wrong.
import { createLogger } from '../otel/logger.ts';
import {
  type CommandLine,
  declareSettings,
  type FlagGroup,
  formatHelp,
  parseCommandLine,
  positiveDuration,
  readSettings,
  SettingError,
  type SettingsTable,
  text,
} from '../protocol/settings.ts';
import { VERSION } from '../protocol/version.ts';
import { AgentTokenError, registerAgent, revokeAgent } from './auth/agentTokens.ts';
import { loadSecret } from './auth/secrets.ts';
import { issueApiToken } from './auth/tokens.ts';
import { ConfigError, KAS_SETTINGS, type KasSettingName, loadConfig } from './config.ts';
import { serve } from './serve.ts';

/** `kas token issue`'s own flags, which no environment variable mirrors. */
const TOKEN_FLAGS = declareSettings('', {
  sub: { flag: 'sub', required: 'rails', kind: text, description: 'who the token is for (the JWT sub)' },
  agents: {
    flag: 'agents',
    required: 'prod,staging',
    kind: { placeholder: 'id,id|*', expected: 'agent ids separated by commas, or *', parse: (v) => v.split(',').map((a) => a.trim()).filter(Boolean) },
    description: 'the agents it may reach, or * for all',
  },
  ttl: { flag: 'ttl', default: '1h', kind: positiveDuration, description: 'how long it is valid' },
});

const TOKEN_STORE: KasSettingName[] = ['dataDir', 'agentTokensFile'];

interface Command {
  usage: string;
  about: string;
  /** The kas settings it reads (all of them when absent). */
  settings?: KasSettingName[];
  /** Flags of its own, listed before the kas settings. */
  ownFlags?: SettingsTable;
  positionals?: string[];
  run(line: CommandLine): Promise<number>;
}

const COMMANDS: Record<string, Command> = {
  serve: {
    usage: 'kas serve [flags]',
    about: 'Runs one kas node until SIGTERM (drains, exits 0). SIGHUP re-reads the agent token store and the TLS files.',
    run: runServe,
  },
  'agent register': {
    usage: 'kas agent register <agentId> [flags]',
    about: 'Creates an agent and prints its token, once, alone on stdout; only a SHA-256 of it is stored.',
    settings: TOKEN_STORE,
    positionals: ['agentId'],
    run: (line) => changeAgent('register', line),
  },
  'agent revoke': {
    usage: 'kas agent revoke <agentId> [flags]',
    about: 'Revokes an agent; running kas nodes disconnect its replicas.',
    settings: TOKEN_STORE,
    positionals: ['agentId'],
    run: (line) => changeAgent('revoke', line),
  },
  'token issue': {
    usage: 'kas token issue --sub <who> --agents <id,id|*> [--ttl <duration>] [flags]',
    about: 'Prints an API token (what Rails would sign) alone on stdout.',
    settings: ['dataDir', 'apiSecretFile', 'redisUrl'],
    ownFlags: TOKEN_FLAGS,
    run: issueToken,
  },
};

const OVERVIEW = `usage: kas <command> [flags]

commands:
${Object.entries(COMMANDS)
  .map(([name, command]) => `  kas ${name.padEnd(16)} ${command.about.split(/[.;] /)[0]!.replace(/\.$/, '')}`)
  .join('\n')}

Every flag mirrors an environment variable (--redis-url is KAS_REDIS_URL); kas <command> --help
lists them with their defaults. kas --version prints the version.`;

function flagsOf(command: Command): FlagGroup[] {
  const kas = { table: KAS_SETTINGS, keys: command.settings };
  return command.ownFlags ? [{ table: command.ownFlags }, kas] : [kas];
}

function helpOf(command: Command): string {
  return formatHelp({ usage: command.usage, about: command.about, flags: flagsOf(command) });
}

async function runServe(line: CommandLine): Promise<number> {
  const config = loadConfig(line.settings, line.fromFlags);
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

async function changeAgent(action: 'register' | 'revoke', line: CommandLine): Promise<number> {
  const [agentId] = line.positionals;
  if (!agentId) throw new SettingError(`kas agent ${action} needs an agent id; see kas agent ${action} --help`);
  const { agentTokensFile } = readSettings(KAS_SETTINGS, line.settings, line.fromFlags, TOKEN_STORE);
  if (action === 'register') {
    process.stdout.write(`${await registerAgent(agentTokensFile, agentId)}\n`);
    process.stderr.write(`registered agent ${agentId} in ${agentTokensFile}; the token above is shown only once\n`);
  } else {
    await revokeAgent(agentTokensFile, agentId);
    process.stderr.write(`revoked agent ${agentId}; running kas nodes disconnect its replicas\n`);
  }
  return 0;
}

async function issueToken(line: CommandLine): Promise<number> {
  const { sub, agents, ttl } = readSettings(TOKEN_FLAGS, line.settings, line.fromFlags);
  const config = readSettings(KAS_SETTINGS, line.settings, line.fromFlags, COMMANDS['token issue']!.settings);
  const secret = await loadSecret(config.apiSecretFile, 'KAS_API_SECRET_FILE', config.redisUrl === undefined);
  process.stdout.write(`${await issueApiToken(secret, { sub, agents, ttlMs: ttl })}\n`);
  return 0;
}

/** The command named by the first words of argv, and the rest of argv. */
function findCommand(argv: string[]): { name: string; command: Command; rest: string[] } | undefined {
  for (const words of [2, 1]) {
    const name = argv.slice(0, words).join(' ');
    const command = COMMANDS[name];
    if (command) return { name, command, rest: argv.slice(words) };
  }
  return undefined;
}

export async function main(argv: string[]): Promise<number> {
  try {
    if (argv[0] === '--version' || argv[0] === 'version') {
      process.stdout.write(`kas ${VERSION}\n`);
      return 0;
    }
    if (argv[0] === '--help' || argv[0] === '-h' || argv[0] === 'help') {
      const found = findCommand(argv.slice(1));
      process.stdout.write(found ? helpOf(found.command) : `${OVERVIEW}\n`);
      return 0;
    }
    const found = findCommand(argv);
    if (!found) {
      process.stderr.write(argv.length === 0 ? `${OVERVIEW}\n` : `kas: unknown command: ${argv.join(' ')}\n\n${OVERVIEW}\n`);
      return 2;
    }
    const { name, command, rest } = found;
    const line = parseCommandLine(rest, process.env, { flags: flagsOf(command), positionals: command.positionals, command: `kas ${name}` });
    if (line.help) {
      process.stdout.write(helpOf(command));
      return 0;
    }
    if (line.version) {
      process.stdout.write(`kas ${VERSION}\n`);
      return 0;
    }
    return await command.run(line);
  } catch (error) {
    if (error instanceof SettingError) {
      process.stderr.write(`kas: ${error.message}\n`);
      return 2;
    }
    if (error instanceof ConfigError || error instanceof AgentTokenError) {
      process.stderr.write(`kas: ${error.message}\n`);
      return 1;
    }
    throw error;
  }
}
