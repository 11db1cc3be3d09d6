// `npm start`: a complete local kas in one command, no Redis. Starts one kas node, registers an
// agent "local" (once: its token is kept in <data dir>/local-agent.token), runs agentk with it,
// starts a Prometheus when one is on PATH (scraping kas and agentk) and a demo Kubernetes cluster
// (the API server simulator, demo/demoCluster.ts), issues a 24h API token and prints how to
// use it. Ctrl-C or SIGTERM stops everything and exits 0.
//
// Settings: the usual KAS_* variables (ports, KAS_DATA_DIR, LOG_LEVEL), AGENTK_OBSERVABILITY_LISTEN,
// plus three of this script's own: PROMETHEUS_URL (use this Prometheus, start none),
// PROMETHEUS_LISTEN (where the started one listens; default 127.0.0.1:9090, or a free port) and
// AGENT_KUBECONFIG (let the agent reach the cluster of this kubeconfig instead of the demo one).
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { DEMO_NAMESPACE, type DemoCluster, startDemoCluster } from '../demo/demoCluster.ts';
import { findExecutable } from './which.ts';
import { AgentTokenStore, registerAgent, revokeAgent } from '../server/auth/agentTokens.ts';
import { loadSecret } from '../server/auth/secrets.ts';
import { issueApiToken } from '../server/auth/tokens.ts';
import { SettingError } from '../protocol/settings.ts';
import { ConfigError, type HostPort, loadConfig, parseHostPort } from '../server/config.ts';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const AGENT_ID = 'local';
const TOKEN_TTL_MS = 24 * 3_600_000;
const SCRAPE_INTERVAL = '5s';

class StartError extends Error {
  override name = 'StartError';
}

function say(line: string): void {
  process.stderr.write(`[start] ${line}\n`);
}

/** A loopback-reachable address for a listener bound to host:port. */
function reachable({ host, port }: HostPort): string {
  const h = host === '0.0.0.0' || host === '::' || host === '' ? '127.0.0.1' : host;
  return `${h.includes(':') ? `[${h}]` : h}:${port}`;
}

/** Resolves when host:port could be bound a moment ago; rejects with the OS error code otherwise. */
function portFree({ host, port }: HostPort): Promise<true> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once('error', (error: NodeJS.ErrnoException) => reject(error));
    server.listen({ port, host, exclusive: true }, () => server.close(() => resolvePort(true)));
  });
}

async function requirePort(address: HostPort, setting: string, what: string): Promise<void> {
  try {
    await portFree(address);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const taken = code === 'EADDRINUSE' ? 'is already in use (another kas or npm start?)' : `cannot be bound (${code})`;
    throw new StartError(
      `port ${address.port} for ${what} (${setting}=${address.host}:${address.port}) ${taken}. ` +
        `Stop whatever holds it, or choose another port: ${setting}=${address.host}:<port> npm start`,
    );
  }
}

function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (address && typeof address === 'object' ? resolvePort(address.port) : reject(new Error('no port'))));
    });
  });
}

/** pino JSON lines become `level message {fields}`; anything else passes as is. */
function formatLine(line: string): string {
  if (!line.startsWith('{')) return line;
  try {
    const { level, msg, time: _t, service: _s, pid: _p, hostname: _h, replica: _r, ...rest } = JSON.parse(line) as Record<string, unknown>;
    const fields = Object.keys(rest).length > 0 ? ` ${JSON.stringify(rest)}` : '';
    return `${String(level ?? '')} ${String(msg ?? '')}${fields}`;
  } catch {
    return line;
  }
}

interface Child {
  name: string;
  proc: ChildProcess;
  exited: Promise<void>;
  exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
}

const children: Child[] = [];
let stopping = false;

function startChild(name: string, command: string, args: string[], env: NodeJS.ProcessEnv): Child {
  // Own process group: a terminal's Ctrl-C reaches only this script, which then stops the
  // children once each, in order (a second signal would cut kas's drain short).
  const proc = spawn(command, args, { cwd: ROOT, env, stdio: ['pipe', 'pipe', 'pipe'], detached: true });
  const child: Child = { name, proc, exit: undefined, exited: Promise.resolve() };
  child.exited = new Promise((done) => {
    proc.once('error', (error) => {
      say(`could not run ${name}: ${error.message}`);
      child.exit = { code: null, signal: null };
      done();
    });
    proc.once('exit', (code, signal) => {
      child.exit = { code, signal };
      done();
    });
  });
  for (const stream of [proc.stdout!, proc.stderr!]) {
    let partial = '';
    stream.setEncoding('utf8').on('data', (chunk: string) => {
      const lines = (partial + chunk).split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines) if (line.trim()) process.stderr.write(`[${name}] ${formatLine(line)}\n`);
    });
    stream.on('end', () => partial && process.stderr.write(`[${name}] ${formatLine(partial)}\n`));
  }
  proc.stdin!.on('error', () => undefined);
  void child.exited.then(() => {
    if (!stopping) {
      const how = child.exit?.signal ? `by ${child.exit.signal}` : `with code ${child.exit?.code}`;
      say(`${name} exited ${how}; stopping everything`);
      void shutdown(1);
    }
  });
  children.push(child);
  return child;
}

async function stopChild(child: Child | undefined, graceMs: number): Promise<void> {
  if (!child || child.exit) return;
  child.proc.kill('SIGTERM');
  const timer = setTimeout(() => {
    say(`${child.name} did not stop within ${graceMs / 1000}s; killing it`);
    child.proc.kill('SIGKILL');
  }, graceMs);
  await child.exited;
  clearTimeout(timer);
}

let shuttingDown: Promise<void> | undefined;
function shutdown(code: number): Promise<void> {
  shuttingDown ??= (async () => {
    stopping = true;
    const byName = (name: string) => children.find((c) => c.name === name);
    // The agent first, so kas has nothing in flight and drains at once; then the rest.
    await stopChild(byName('agentk'), 5_000);
    await Promise.all([stopChild(byName('kas'), 35_000), stopChild(byName('prometheus'), 10_000), demoCluster?.stop()]);
    if (prometheusDir) await rm(prometheusDir, { recursive: true, force: true }).catch(() => undefined);
    if (code === 0) say('stopped');
    process.exit(code);
  })();
  return shuttingDown;
}

async function waitUntil(what: string, child: Child | undefined, timeoutMs: number, probe: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child?.exit) throw new StartError(`${child.name} exited while waiting for ${what}`);
    if (await probe().catch(() => false)) return;
    if (Date.now() > deadline) throw new StartError(`timed out after ${timeoutMs / 1000}s waiting for ${what}`);
    await sleep(100);
  }
}

/** The local agent's token: reused while the store still knows it, else registered afresh. */
async function ensureAgentToken(tokensFile: string, tokenFile: string): Promise<string> {
  const saved = await readFile(tokenFile, 'utf8').then((t) => t.trim(), () => undefined);
  const store = await AgentTokenStore.open(tokensFile);
  const valid = saved !== undefined && store.agentIdForToken(saved) === AGENT_ID;
  const registered = store.isRegistered(AGENT_ID);
  store.close();
  if (valid) return saved;
  if (registered) {
    say(`agent ${AGENT_ID} is registered but ${tokenFile} does not hold its token; revoking and registering it again`);
    await revokeAgent(tokensFile, AGENT_ID);
  }
  const token = await registerAgent(tokensFile, AGENT_ID);
  await writeFile(tokenFile, `${token}\n`, { mode: 0o600 });
  say(`registered agent ${AGENT_ID}; its token is kept in ${tokenFile}`);
  return token;
}

let prometheusDir: string | undefined;
let demoCluster: DemoCluster | undefined;

async function main(): Promise<void> {
  const env: NodeJS.ProcessEnv = { ...process.env, KAS_DATA_DIR: resolve(process.env.KAS_DATA_DIR || join(ROOT, '.kas')) };
  if (env.KAS_REDIS_URL) {
    say('ignoring KAS_REDIS_URL: npm start runs a single node without Redis');
    delete env.KAS_REDIS_URL;
  }
  const childEnv = { ...env, LOG_LEVEL: env.LOG_LEVEL ?? 'warn' };
  const config = loadConfig(env);
  const agentkObservability = parseHostPort(env.AGENTK_OBSERVABILITY_LISTEN ?? '127.0.0.1:8181', 'AGENTK_OBSERVABILITY_LISTEN');

  await requirePort(config.apiListen, 'KAS_API_LISTEN', 'the kas API');
  await requirePort(config.agentListen, 'KAS_AGENT_LISTEN', 'kas agent connections');
  await requirePort(config.privateListen, 'KAS_PRIVATE_LISTEN', 'kas-to-kas forwarding');
  await requirePort(config.observabilityListen, 'KAS_OBSERVABILITY_LISTEN', 'kas metrics and health');
  await requirePort(agentkObservability, 'AGENTK_OBSERVABILITY_LISTEN', "agentk's metrics and health");

  await mkdir(config.dataDir, { recursive: true, mode: 0o700 });
  const tokenFile = join(config.dataDir, `${AGENT_ID}-agent.token`);
  const agentConfigFile = join(config.dataDir, 'agent.yaml');
  const apiUrl = `${config.apiTls ? 'https' : 'http'}://${reachable(config.apiListen)}`;
  const observabilityUrl = `http://${reachable(config.observabilityListen)}`;

  // Prometheus: the one given, one we start, or none (and say how to add one).
  let prometheusUrl = env.PROMETHEUS_URL?.replace(/\/+$/, '') || undefined;
  let ownPrometheus: Child | undefined;
  const prometheusBinary = prometheusUrl ? undefined : findExecutable('prometheus');
  if (prometheusBinary) {
    let listen = parseHostPort(env.PROMETHEUS_LISTEN ?? '127.0.0.1:9090', 'PROMETHEUS_LISTEN');
    if (!(await portFree(listen).catch(() => false))) {
      if (env.PROMETHEUS_LISTEN) await requirePort(listen, 'PROMETHEUS_LISTEN', 'Prometheus');
      listen = { host: '127.0.0.1', port: await freePort() };
      say(`port 9090 is taken; the local Prometheus listens on ${listen.port} instead`);
    }
    prometheusDir = join(config.dataDir, 'prometheus');
    await rm(prometheusDir, { recursive: true, force: true });
    await mkdir(prometheusDir, { recursive: true });
    const configFile = join(prometheusDir, 'prometheus.yml');
    const job = (name: string, target: string) => ({ job_name: name, static_configs: [{ targets: [target] }] });
    // JSON is valid YAML.
    const prometheusConfig = {
      global: { scrape_interval: SCRAPE_INTERVAL, scrape_timeout: SCRAPE_INTERVAL, evaluation_interval: SCRAPE_INTERVAL },
      scrape_configs: [
        job('prometheus', reachable(listen)),
        job('kas', reachable(config.observabilityListen)),
        job('agentk', reachable(agentkObservability)),
      ],
    };
    await writeFile(configFile, `${JSON.stringify(prometheusConfig, null, 2)}\n`);
    prometheusUrl = `http://${reachable(listen)}`;
    ownPrometheus = startChild('prometheus', prometheusBinary, [
      `--config.file=${configFile}`,
      `--storage.tsdb.path=${join(prometheusDir, 'data')}`,
      `--web.listen-address=${listen.host}:${listen.port}`,
      '--log.level=warn',
    ], env);
  }
  // Kubernetes: the cluster of AGENT_KUBECONFIG, else the demo cluster.
  let kubeconfig = env.AGENT_KUBECONFIG ? resolve(env.AGENT_KUBECONFIG) : undefined;
  if (!kubeconfig) {
    kubeconfig = join(config.dataDir, 'demo-kubeconfig');
    demoCluster = await startDemoCluster(kubeconfig);
  }
  const agentConfig = [
    '# written by npm start; PROMETHEUS_URL and AGENT_KUBECONFIG choose what the agent reaches',
    prometheusUrl ? `prometheus:\n  url: ${prometheusUrl}` : '# no Prometheus was found: set PROMETHEUS_URL or put prometheus on PATH',
    `kubernetes:\n  kubeconfig: ${JSON.stringify(kubeconfig)}`,
    '',
  ];
  await writeFile(agentConfigFile, agentConfig.join('\n'));

  const guard = ['--import', join(ROOT, 'scripts/exit-with-parent.ts')];
  const kas = startChild('kas', process.execPath, [...guard, join(ROOT, 'bin/kas.ts'), 'serve'], childEnv);
  await waitUntil('kas to be ready', kas, 30_000, async () => (await fetch(`${observabilityUrl}/readiness`)).ok);

  await ensureAgentToken(config.agentTokensFile, tokenFile);
  const apiSecret = await loadSecret(config.apiSecretFile, 'KAS_API_SECRET_FILE', true);
  const token = await issueApiToken(apiSecret, { sub: AGENT_ID, agents: ['*'], ttlMs: TOKEN_TTL_MS });

  const agentk = startChild(
    'agentk',
    process.execPath,
    [...guard, join(ROOT, 'bin/agentk.ts'), '--kas-url', `${config.agentTls ? 'wss' : 'ws'}://${reachable(config.agentListen)}`, '--token-file', tokenFile, '--config', agentConfigFile],
    { ...childEnv, AGENTK_OBSERVABILITY_LISTEN: `${agentkObservability.host}:${agentkObservability.port}` },
  );
  await waitUntil(`agent ${AGENT_ID} to connect`, agentk, 30_000, async () => {
    const res = await fetch(`${apiUrl}/api/v1/agents/${AGENT_ID}`, { headers: { authorization: `Bearer ${token}` } });
    return res.ok && ((await res.json()) as { replicas: unknown[] }).replicas.length > 0;
  });
  if (ownPrometheus) {
    // So the first query already has data: the first scrape lands within one interval.
    await waitUntil('the first Prometheus scrape', ownPrometheus, 30_000, async () => {
      const res = await fetch(`${prometheusUrl}/api/v1/query?query=up`);
      return (((await res.json()) as { data?: { result?: unknown[] } }).data?.result?.length ?? 0) > 0;
    });
  }

  const base = `${apiUrl}/api/v1/agents/${AGENT_ID}/prometheus`;
  const kubernetesBase = `${apiUrl}/api/v1/agents/${AGENT_ID}/kubernetes`;
  const namespace = demoCluster ? DEMO_NAMESPACE : 'default';
  const hostPart = apiUrl.replace(/^https?:\/\//, '');
  const lines = [
    '',
    `kas is running: one node, data in ${config.dataDir}`,
    '',
    `  API        ${apiUrl}`,
    `  dashboard  ${apiUrl}/   (paste the token)`,
    `  agent      ${AGENT_ID}, connected${prometheusUrl ? `; its Prometheus is ${prometheusUrl}` : ', no Prometheus'}`,
    demoCluster
      ? `  cluster    a demo Kubernetes cluster (simulated, at ${demoCluster.url}); AGENT_KUBECONFIG=~/.kube/config npm start for yours`
      : `  cluster    the one in ${kubeconfig}`,
    '',
    'An API token for every agent, valid 24h:',
    '',
    `export TOKEN=${token}`,
    '',
    'Try it:',
    '',
    `  curl -H "Authorization: Bearer $TOKEN" '${base}/api/v1/query?query=up'`,
    `  promtool query instant "${apiUrl.startsWith('https') ? 'https' : 'http'}://kas:$TOKEN@${hostPart}/api/v1/agents/${AGENT_ID}/prometheus" up`,
    `  curl -H "Authorization: Bearer $TOKEN" '${kubernetesBase}/api/v1/namespaces/${namespace}/pods'`,
    `  curl -N -H "Authorization: Bearer $TOKEN" '${kubernetesBase}/api/v1/namespaces/${namespace}/configmaps?watch=1'${demoCluster ? '   # a change every 5 s' : ''}`,
    '',
    '(kubectl sends its token over https only: see "Kubernetes" in README.md for kas with TLS.)',
    '',
  ];
  if (!prometheusUrl) {
    lines.push(
      'No prometheus binary is on PATH, so the agent has no Prometheus to reach: queries wait',
      `KAS_ROUTING_TIMEOUT and then answer 503 ("none offers prometheus"). Either install one`,
      '(Debian/Ubuntu: sudo apt-get install prometheus) and run npm start again, or point the',
      'agent at a Prometheus you already have:',
      '',
      '  PROMETHEUS_URL=http://my-prometheus:9090 npm start',
      '',
    );
  }
  lines.push('Ctrl-C stops everything.', '');
  process.stdout.write(lines.join('\n'));
}

process.on('SIGINT', () => void shutdown(0));
process.on('SIGTERM', () => void shutdown(0));
main().catch((error: Error) => {
  if (error instanceof StartError || error instanceof ConfigError || error instanceof SettingError) say(error.message);
  else say(`failed: ${error.stack ?? error.message}`);
  void shutdown(1);
});
