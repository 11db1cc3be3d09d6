// The command-line conventions of both programs: --help lists every flag with its variable and
// default, --version prints the package's version, flags mirror the environment, and unknown
// flags or bad values fail with exit 2 naming the flag and what is expected. The settings come
// from one table per program; a new entry shows up in the config and the help by itself.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { AGENT_SETTINGS } from '../../agent/config.ts';
import { declareSettings, describeDefault, formatHelp, parseCommandLine, positiveInteger, readSettings, SettingError } from '../../protocol/settings.ts';
import { KAS_SETTINGS, loadConfig } from '../../server/config.ts';
import { AGENTK_BIN, KAS_BIN } from '../support/kas.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const VERSION = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a program with only the environment given (and PATH), so the host's KAS_* do not leak in. */
function run(bin: string, args: string[], env: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, [bin, ...args], { env: { PATH: process.env.PATH ?? '', ...env }, timeout: 30_000 }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : -1) : 0, stdout, stderr });
    });
  });
}

/** The settings table of the contract (CONTRACT.md, "kas settings"), every one of which kas must have. */
const CONTRACT_KAS_SETTINGS: Record<string, string> = {
  KAS_AGENT_LISTEN: '0.0.0.0:8150',
  KAS_API_LISTEN: '127.0.0.1:8153',
  KAS_PRIVATE_LISTEN: '127.0.0.1:8155',
  KAS_PRIVATE_URL: 'http://<KAS_PRIVATE_LISTEN>',
  KAS_OBSERVABILITY_LISTEN: '127.0.0.1:8151',
  KAS_REDIS_URL: 'unset',
  KAS_DATA_DIR: './.kas',
  KAS_API_SECRET_FILE: '<data dir>/api-secret',
  KAS_PRIVATE_SECRET_FILE: '<data dir>/private-secret',
  KAS_AGENT_TOKENS_FILE: '<data dir>/agents.json',
  KAS_ROUTING_TIMEOUT: '20s',
  KAS_REQUEST_TIMEOUT: '60s',
  KAS_DRAIN_TIMEOUT: '30s',
  KAS_LIVE_DELAY: '1s',
  KAS_LIVE_MAX_SERIES: '1000',
  KAS_LIVE_MAX_SUBSCRIPTIONS: '1000',
  KAS_TRACE_UI_URL: 'unset',
  KAS_API_TLS_CERT_FILE: 'unset',
  KAS_API_TLS_KEY_FILE: 'unset',
  KAS_AGENT_TLS_CERT_FILE: 'unset',
  KAS_AGENT_TLS_KEY_FILE: 'unset',
  KAS_NODE_NAME: '<host name>-<pid>',
};

/** The help line of one flag: `--flag <placeholder>   ENV   default: …`. */
function helpLine(help: string, flag: string): string | undefined {
  return help.split('\n').find((line) => line.trimStart().startsWith(`--${flag} `));
}

describe('kas settings table', () => {
  test('has every setting of the contract with its default, each with a flag that mirrors the variable', () => {
    const byEnv = new Map(Object.values(KAS_SETTINGS).map((s) => [s.env, s]));
    for (const [env, shown] of Object.entries(CONTRACT_KAS_SETTINGS)) {
      const setting = byEnv.get(env);
      assert.ok(setting, `${env} is in the table`);
      assert.equal(describeDefault(setting), shown, `${env}'s default`);
      assert.equal(`--${setting.flag}`, `--${env.slice('KAS_'.length).toLowerCase().replaceAll('_', '-')}`);
    }
  });

  test('loadConfig defaults every setting, derives the dependent ones and returns a frozen object', () => {
    const config = loadConfig({ KAS_DATA_DIR: '/srv/kas', KAS_PRIVATE_LISTEN: '0.0.0.0:9155' });
    assert.ok(Object.isFrozen(config));
    assert.deepEqual(config.agentListen, { host: '0.0.0.0', port: 8150 });
    assert.deepEqual(config.apiListen, { host: '127.0.0.1', port: 8153 });
    assert.equal(config.privateUrl, 'http://127.0.0.1:9155', 'a wildcard listener is reached on loopback');
    assert.equal(config.apiSecretFile, '/srv/kas/api-secret');
    assert.equal(config.privateSecretFile, '/srv/kas/private-secret');
    assert.equal(config.agentTokensFile, '/srv/kas/agents.json');
    assert.equal(config.routingTimeoutMs, 20_000);
    assert.equal(config.requestTimeoutMs, 60_000);
    assert.equal(config.drainTimeoutMs, 30_000);
    assert.equal(config.liveDelayMs, 1_000);
    assert.equal(config.liveMaxSeries, 1000);
    assert.equal(config.liveMaxSubscriptions, 1000);
    assert.equal(config.traceUiUrl, undefined);
    assert.equal(config.redisUrl, undefined);
    assert.equal(config.apiTls, undefined);
    assert.equal(config.nodeName, `${hostname()}-${process.pid}`);
    assert.throws(() => {
      (config as { routingTimeoutMs: number }).routingTimeoutMs = 1;
    }, TypeError);
  });

  test('given values are parsed; an empty one counts as unset', () => {
    const config = loadConfig({
      KAS_REDIS_URL: '',
      KAS_LIVE_DELAY: '250ms',
      KAS_LIVE_MAX_SERIES: '50',
      KAS_TRACE_UI_URL: 'http://jaeger:16686/trace/{traceId}',
      KAS_PRIVATE_URL: 'http://kas-0.kas:8155/',
      KAS_API_TLS_CERT_FILE: 'tls/kas.crt',
      KAS_API_TLS_KEY_FILE: 'tls/kas.key',
    });
    assert.equal(config.redisUrl, undefined);
    assert.equal(config.liveDelayMs, 250);
    assert.equal(config.liveMaxSeries, 50);
    assert.equal(config.traceUiUrl, 'http://jaeger:16686/trace/{traceId}');
    assert.equal(config.privateUrl, 'http://kas-0.kas:8155');
    assert.deepEqual(config.apiTls, { certFile: join(process.cwd(), 'tls/kas.crt'), keyFile: join(process.cwd(), 'tls/kas.key') });
  });

  test('a bad value names the variable (or the flag it came from) and what is expected', () => {
    const cases: [Record<string, string>, RegExp][] = [
      [{ KAS_API_LISTEN: 'nope' }, /KAS_API_LISTEN "nope" is not valid: expected host:port/],
      [{ KAS_ROUTING_TIMEOUT: '3x' }, /KAS_ROUTING_TIMEOUT "3x" is not valid: expected a duration/],
      [{ KAS_LIVE_MAX_SERIES: '-1' }, /KAS_LIVE_MAX_SERIES "-1" is not valid: expected a whole number above zero/],
      [{ KAS_REDIS_URL: 'http://redis' }, /KAS_REDIS_URL "http:\/\/redis" is not valid: expected a redis:\/\/ or rediss:\/\/ URL/],
      [{ KAS_TRACE_UI_URL: 'http://jaeger:16686/' }, /KAS_TRACE_UI_URL .* expected .*\{traceId\}/],
      [{ KAS_API_TLS_CERT_FILE: 'kas.crt' }, /KAS_API_TLS_CERT_FILE and KAS_API_TLS_KEY_FILE must be set together/],
    ];
    for (const [settings, message] of cases) assert.throws(() => loadConfig(settings), (e: Error) => e instanceof SettingError && message.test(e.message));
    assert.throws(() => loadConfig({ KAS_API_LISTEN: 'nope' }, new Set(['KAS_API_LISTEN'])), /^SettingError: --api-listen "nope" is not valid/);
  });

  test('a new setting is one entry: it is read, defaulted, parsed as a flag and listed in the help', () => {
    const table = declareSettings('DEMO_', {
      widgets: { env: 'DEMO_MAX_WIDGETS', default: '3', kind: positiveInteger, description: 'how many widgets' },
    });
    assert.equal(readSettings(table, {}).widgets, 3);
    const line = parseCommandLine(['--max-widgets', '7'], {}, { flags: [{ table }], command: 'demo' });
    assert.equal(readSettings(table, line.settings, line.fromFlags).widgets, 7);
    assert.match(formatHelp({ usage: 'demo', about: 'a demo', flags: [{ table }] }), /--max-widgets <n> +DEMO_MAX_WIDGETS +default: 3\n +how many widgets/);
  });
});

describe('the kas command', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kas-cli-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test('kas --help names every command; kas serve --help lists every setting with its variable and default', async () => {
    const overview = await run(KAS_BIN, ['--help']);
    assert.equal(overview.code, 0);
    for (const command of ['serve', 'agent register', 'agent revoke', 'token issue']) assert.match(overview.stdout, new RegExp(`kas ${command} `));
    for (const args of [['serve', '--help'], ['help', 'serve']]) {
      const help = await run(KAS_BIN, args);
      assert.equal(help.code, 0, help.stderr);
      for (const setting of Object.values(KAS_SETTINGS)) {
        const line = helpLine(help.stdout, setting.flag);
        assert.ok(line, `${args.join(' ')} lists --${setting.flag}`);
        assert.ok(line.includes(setting.env!) && line.includes(`default: ${describeDefault(setting)}`), line);
      }
    }
  });

  test("each subcommand's --help lists its flags with their variables and defaults", async () => {
    const register = await run(KAS_BIN, ['agent', 'register', '--help']);
    assert.equal(register.code, 0);
    assert.match(helpLine(register.stdout, 'agent-tokens-file')!, /KAS_AGENT_TOKENS_FILE +default: <data dir>\/agents\.json/);
    assert.match(helpLine(register.stdout, 'data-dir')!, /KAS_DATA_DIR +default: \.\/\.kas/);
    assert.equal(helpLine(register.stdout, 'redis-url'), undefined, 'only the settings the command reads');
    const revoke = await run(KAS_BIN, ['agent', 'revoke', '--help']);
    assert.match(helpLine(revoke.stdout, 'agent-tokens-file')!, /KAS_AGENT_TOKENS_FILE/);
    const issue = await run(KAS_BIN, ['token', 'issue', '--help']);
    assert.equal(issue.code, 0);
    assert.match(helpLine(issue.stdout, 'sub')!, /default: required/);
    assert.match(helpLine(issue.stdout, 'agents')!, /default: required/);
    assert.match(helpLine(issue.stdout, 'ttl')!, /default: 1h/);
    assert.match(helpLine(issue.stdout, 'api-secret-file')!, /KAS_API_SECRET_FILE +default: <data dir>\/api-secret/);
  });

  test('kas --version prints the package version', async () => {
    for (const args of [['--version'], ['serve', '--version']]) {
      const result = await run(KAS_BIN, args);
      assert.equal(result.code, 0);
      assert.equal(result.stdout, `kas ${VERSION}\n`);
    }
  });

  test('unknown flags, missing values and bad values exit 2 naming the flag and what is expected', async () => {
    const cases: [string[], Record<string, string>, RegExp][] = [
      [['serve', '--bogus', '1'], {}, /unknown flag --bogus for kas serve; see kas serve --help/],
      [['serve', '--api-listen', 'nope'], {}, /--api-listen "nope" is not valid: expected host:port/],
      [['serve', '--routing-timeout=soon'], {}, /--routing-timeout "soon" is not valid: expected a duration such as 500ms/],
      [['serve'], { KAS_LIVE_MAX_SUBSCRIPTIONS: 'many' }, /KAS_LIVE_MAX_SUBSCRIPTIONS "many" is not valid: expected a whole number/],
      [['serve', '--drain-timeout'], {}, /flag --drain-timeout needs a value: expected a duration/],
      [['agent', 'register', 'x', '--redis-url', 'redis://r'], {}, /unknown flag --redis-url for kas agent register/],
      [['agent', 'register', 'x', 'y'], {}, /unexpected argument y for kas agent register/],
      [['token', 'issue', '--sub', 'me'], {}, /--agents is required: expected agent ids/],
      [['token', 'issue', '--sub', 'me', '--agents', '*', '--ttl', '0s'], {}, /--ttl "0s" is not valid: expected a duration above zero/],
      [['frobnicate'], {}, /unknown command: frobnicate/],
    ];
    const results = await Promise.all(cases.map(([args, env]) => run(KAS_BIN, args, { KAS_DATA_DIR: join(dir, 'never'), ...env })));
    for (const [i, [args, , message]] of cases.entries()) {
      const result = results[i]!;
      assert.equal(result.code, 2, `kas ${args.join(' ')}: ${result.stderr}`);
      assert.match(result.stderr, message, `kas ${args.join(' ')}`);
      assert.equal(result.stdout, '');
    }
    assert.ok(!existsSync(join(dir, 'never')), 'a refused command leaves nothing behind');
  });

  test('flags mirror the environment: --agent-tokens-file is KAS_AGENT_TOKENS_FILE', async () => {
    const byFlag = join(dir, 'by-flag.json');
    const byEnv = join(dir, 'by-env.json');
    assert.equal((await run(KAS_BIN, ['agent', 'register', 'one', '--agent-tokens-file', byFlag])).code, 0);
    assert.equal((await run(KAS_BIN, ['agent', 'register', 'two'], { KAS_AGENT_TOKENS_FILE: byEnv })).code, 0);
    // A flag wins over the variable.
    assert.equal((await run(KAS_BIN, ['agent', 'register', 'three', `--agent-tokens-file=${byFlag}`], { KAS_AGENT_TOKENS_FILE: byEnv })).code, 0);
    assert.deepEqual(Object.keys((JSON.parse(await readFile(byFlag, 'utf8')) as { agents: object }).agents), ['one', 'three']);
    assert.deepEqual(Object.keys((JSON.parse(await readFile(byEnv, 'utf8')) as { agents: object }).agents), ['two']);
  });
});

describe('the agentk command', () => {
  test('agentk --help lists every flag with its variable and default; --version prints the version', async () => {
    const help = await run(AGENTK_BIN, ['--help']);
    assert.equal(help.code, 0, help.stderr);
    for (const setting of Object.values(AGENT_SETTINGS)) {
      const line = helpLine(help.stdout, setting.flag);
      assert.ok(line, `agentk --help lists --${setting.flag}`);
      assert.ok(line.includes(setting.env!) && line.includes(`default: ${describeDefault(setting)}`), line);
    }
    for (const flag of ['kas-url', 'token-file', 'config', 'ca-file', 'observability-listen', 'pod-name', 'in-cluster-root']) {
      assert.ok(helpLine(help.stdout, flag), `--${flag}`);
    }
    const version = await run(AGENTK_BIN, ['--version']);
    assert.equal(version.stdout, `agentk ${VERSION}\n`);
  });

  test('unknown flags and bad or missing values exit 2 naming the flag and what is expected', async () => {
    const cases: [string[], Record<string, string>, RegExp][] = [
      [['--kas-url', 'ws://kas:8150', '--token-file', '/dev/null', '--bogus=1'], {}, /unknown flag --bogus for agentk/],
      [['--token-file', '/dev/null'], {}, /--kas-url is required \(or set AGENTK_KAS_URL\): expected a ws:\/\/ or wss:\/\/ URL/],
      [['--kas-url', 'http://kas:8150', '--token-file', '/dev/null'], {}, /--kas-url "http:\/\/kas:8150" is not valid: expected a ws:\/\/ or wss:\/\/ URL/],
      [['--kas-url', 'ws://kas:8150'], {}, /--token-file is required/],
      [[], { AGENTK_KAS_URL: 'ws://kas:8150', AGENTK_TOKEN_FILE: '/dev/null', AGENTK_WATCH_KEEPALIVE: '0s' }, /AGENTK_WATCH_KEEPALIVE "0s" is not valid: expected a duration above zero/],
      [['--kas-url', 'ws://kas:8150', '--token-file', '/dev/null', '--observability-listen', '8181'], {}, /--observability-listen "8181" is not valid: expected host:port/],
    ];
    const results = await Promise.all(cases.map(([args, env]) => run(AGENTK_BIN, args, env)));
    for (const [i, [args, , message]] of cases.entries()) {
      const result = results[i]!;
      assert.equal(result.code, 2, `agentk ${args.join(' ')}: ${result.stderr}`);
      assert.match(result.stderr, message, `agentk ${args.join(' ')}`);
    }
  });
});
