// `npm start`: a complete local kas in one command, no Redis. Starts one kas node with its API
// port over TLS (a CA and a certificate for 127.0.0.1 and localhost made in <data dir>/tls/ on
// first start, reused afterwards), registers an agent "local" (once: its token is kept in
// <data dir>/local-agent.token), runs agentk with it, starts a Prometheus when one is on PATH
// (scraping kas and agentk) and a demo Kubernetes cluster (the API server simulator,
// demo/demoCluster.ts), issues a 24h API token, writes <data dir>/kubeconfig (the CA, the token,
// a context per agent) and a promtool HTTP config, and prints how to use them with curl, promtool
// and kubectl. Ctrl-C or SIGTERM stops everything and exits 0.
//
// Settings: the usual KAS_* variables (ports, KAS_DATA_DIR, LOG_LEVEL; KAS_API_TLS_* to serve
// your own certificate), AGENTK_OBSERVABILITY_LISTEN, plus four of this script's own:
// PLAIN_HTTP=1 (the API port speaks plain HTTP; kubectl then cannot send its token),
// PROMETHEUS_URL (use this Prometheus, start none), PROMETHEUS_LISTEN (where the started one
// listens; default 127.0.0.1:9090, or a free port) and AGENT_KUBECONFIG (let the agent reach the
// cluster of this kubeconfig instead of the demo one).
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import { createServer } from 'node:net';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { DEMO_NAMESPACE, type DemoCluster, startDemoCluster } from '../demo/demoCluster.ts';
import { ensureLocalTls } from './localTls.ts';
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

/** GETs JSON with node's own client, which takes the local CA (fetch would need a dispatcher). */
function getJson(url: string, token: string, ca: string | undefined): Promise<{ status: number; body: unknown }> {
  return new Promise((resolveGet, reject) => {
    const client = url.startsWith('https:') ? https : http;
    const req = client.get(url, { headers: { authorization: `Bearer ${token}` }, ...(ca ? { ca } : {}) }, (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (chunk: string) => (text += chunk));
      res.on('end', () => {
        try {
          resolveGet({ status: res.statusCode ?? 0, body: JSON.parse(text) });
        } catch (error) {
          reject(error as Error);
        }
      });
    });
    req.once('error', reject);
  });
}

async function writePrivateFile(file: string, text: string): Promise<void> {
  await writeFile(`${file}.tmp`, text, { mode: 0o600 });
  await rename(`${file}.tmp`, file);
}

/** A kubeconfig with one context per registered agent, the local one current. JSON is valid YAML. */
function kubeconfigFor(options: { apiUrl: string; agents: string[]; token: string; caPem: string | undefined; namespace: string }): string {
  const clusters = options.agents.map((id) => ({
    name: `kas-${id}`,
    cluster: {
      server: `${options.apiUrl}/api/v1/agents/${id}/kubernetes`,
      ...(options.caPem ? { 'certificate-authority-data': Buffer.from(options.caPem).toString('base64') } : {}),
    },
  }));
  const contexts = options.agents.map((id) => ({
    name: id,
    context: { cluster: `kas-${id}`, user: 'kas', ...(id === AGENT_ID ? { namespace: options.namespace } : {}) },
  }));
  const config = {
    apiVersion: 'v1',
    kind: 'Config',
    clusters,
    users: [{ name: 'kas', user: { token: options.token } }],
    contexts,
    'current-context': AGENT_ID,
    preferences: {},
  };
  return `${JSON.stringify(config, null, 2)}\n`;
}

/**
 * The promtool example: its TLS settings through --http.config.file where promtool has it
 * (2.43 and later), else the CA through SSL_CERT_FILE (which Go reads) and the token as the
 * Basic-auth password, which kas accepts as Prometheus tools send it.
 */
function promtoolLine(base: string, httpConfig: string, caFile: string | undefined): string {
  const promtool = findExecutable('promtool');
  const help = promtool ? spawnSync(promtool, ['query', 'instant', '--help'], { encoding: 'utf8', timeout: 5_000 }) : undefined;
  if (!help || `${help.stdout}${help.stderr}`.includes('http.config.file')) {
    return `  promtool query instant --http.config.file=${httpConfig} '${base}' up`;
  }
  const withToken = base.replace(/^(https?:\/\/)/, '$1kas:$TOKEN@');
  return `  ${caFile ? `SSL_CERT_FILE=${caFile} ` : ''}promtool query instant "${withToken}" up`;
}

let prometheusDir: string | undefined;
let demoCluster: DemoCluster | undefined;

async function main(): Promise<void> {
  const env: NodeJS.ProcessEnv = { ...process.env, KAS_DATA_DIR: resolve(process.env.KAS_DATA_DIR || join(ROOT, '.kas')) };
  if (env.KAS_REDIS_URL) {
    say('ignoring KAS_REDIS_URL: npm start runs a single node without Redis');
    delete env.KAS_REDIS_URL;
  }
  const dataDir = env.KAS_DATA_DIR!;
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  // The local CA serves the demo cluster, and the API port unless told otherwise.
  const localTls = await ensureLocalTls(join(dataDir, 'tls'));
  if (localTls.made !== 'nothing') say(`made ${localTls.made === 'server certificate' ? 'a new server certificate' : 'a local CA and a server certificate'} in ${join(dataDir, 'tls')}`);
  const plainHttp = /^(1|true|yes|on)$/i.test(env.PLAIN_HTTP ?? '');
  const ownCertificate = Boolean(env.KAS_API_TLS_CERT_FILE || env.KAS_API_TLS_KEY_FILE);
  const localCa = !plainHttp && !ownCertificate;
  if (localCa) Object.assign(env, { KAS_API_TLS_CERT_FILE: localTls.certFile, KAS_API_TLS_KEY_FILE: localTls.keyFile });
  if (plainHttp && ownCertificate) throw new StartError('PLAIN_HTTP=1 and KAS_API_TLS_* contradict each other: unset one');
  const childEnv = { ...env, LOG_LEVEL: env.LOG_LEVEL ?? 'warn' };
  const config = loadConfig(env);
  const agentkObservability = parseHostPort(env.AGENTK_OBSERVABILITY_LISTEN ?? '127.0.0.1:8181', 'AGENTK_OBSERVABILITY_LISTEN');

  await requirePort(config.apiListen, 'KAS_API_LISTEN', 'the kas API');
  await requirePort(config.agentListen, 'KAS_AGENT_LISTEN', 'kas agent connections');
  await requirePort(config.privateListen, 'KAS_PRIVATE_LISTEN', 'kas-to-kas forwarding');
  await requirePort(config.observabilityListen, 'KAS_OBSERVABILITY_LISTEN', 'kas metrics and health');
  await requirePort(agentkObservability, 'AGENTK_OBSERVABILITY_LISTEN', "agentk's metrics and health");

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
    demoCluster = await startDemoCluster(kubeconfig, localTls);
  }
  const agentConfig = [
    '# written by npm start; PROMETHEUS_URL and AGENT_KUBECONFIG choose what the agent reaches',
    prometheusUrl ? `prometheus:\n  url: ${prometheusUrl}` : '# no Prometheus was found: set PROMETHEUS_URL or put prometheus on PATH',
    `kubernetes:\n  kubeconfig: ${JSON.stringify(kubeconfig)}`,
    '',
  ];
  await writeFile(agentConfigFile, agentConfig.join('\n'));

  const guard = ['--import', join(ROOT, 'scripts/exit-with-parent.ts')];
  const kas = startChild('kas', process.execPath, [...guard, join(ROOT, 'bin/kas.js'), 'serve'], childEnv);
  await waitUntil('kas to be ready', kas, 30_000, async () => (await fetch(`${observabilityUrl}/readiness`)).ok);

  await ensureAgentToken(config.agentTokensFile, tokenFile);
  const apiSecret = await loadSecret(config.apiSecretFile, 'KAS_API_SECRET_FILE', true);
  const token = await issueApiToken(apiSecret, { sub: AGENT_ID, agents: ['*'], ttlMs: TOKEN_TTL_MS });

  const agentk = startChild(
    'agentk',
    process.execPath,
    [...guard, join(ROOT, 'bin/agentk.js'), '--kas-url', `${config.agentTls ? 'wss' : 'ws'}://${reachable(config.agentListen)}`, '--token-file', tokenFile, '--config', agentConfigFile],
    { ...childEnv, AGENTK_OBSERVABILITY_LISTEN: `${agentkObservability.host}:${agentkObservability.port}` },
  );
  const apiCa = localCa ? localTls.caPem : undefined;
  await waitUntil(`agent ${AGENT_ID} to connect`, agentk, 30_000, async () => {
    const res = await getJson(`${apiUrl}/api/v1/agents/${AGENT_ID}`, token, apiCa);
    return res.status === 200 && (res.body as { replicas: unknown[] }).replicas.length > 0;
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

  // For promtool: the token from a file and the CA (promtool takes TLS settings only this way).
  const apiTokenFile = join(config.dataDir, 'api-token');
  const promtoolConfig = join(config.dataDir, 'promtool-http.yml');
  await writePrivateFile(apiTokenFile, `${token}\n`);
  const promtoolLines = [
    '# written by npm start: promtool query … --http.config.file=<this file>',
    'authorization:',
    '  type: Bearer',
    `  credentials_file: ${JSON.stringify(apiTokenFile)}`,
    ...(localCa ? ['tls_config:', `  ca_file: ${JSON.stringify(localTls.caFile)}`] : []),
    '',
  ];
  await writePrivateFile(promtoolConfig, promtoolLines.join('\n'));
  // For kubectl: a context per registered agent (kubectl sends its token over https only).
  const kubeconfigFile = join(config.dataDir, 'kubeconfig');
  if (!plainHttp) {
    const store = JSON.parse(await readFile(config.agentTokensFile, 'utf8')) as { agents: Record<string, unknown> };
    const agents = [AGENT_ID, ...Object.keys(store.agents).filter((id) => id !== AGENT_ID).sort()];
    await writePrivateFile(kubeconfigFile, kubeconfigFor({ apiUrl, agents, token, caPem: apiCa, namespace }));
  }

  const cacert = localCa ? ` --cacert ${localTls.caFile}` : '';
  const lines = [
    '',
    `kas is running: one node, data in ${config.dataDir}`,
    '',
    `  API        ${apiUrl}${localCa ? `   (TLS; its CA is ${localTls.caFile})` : ''}`,
    `  dashboard  ${apiUrl}/   (paste the token${localCa ? '; trust the CA above or accept the warning' : ''})`,
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
    `  curl${cacert} -H "Authorization: Bearer $TOKEN" '${base}/api/v1/query?query=up'`,
    promtoolLine(base, promtoolConfig, localCa ? localTls.caFile : undefined),
    `  curl${cacert} -H "Authorization: Bearer $TOKEN" '${kubernetesBase}/api/v1/namespaces/${namespace}/pods'`,
    `  curl${cacert} -N -H "Authorization: Bearer $TOKEN" '${kubernetesBase}/api/v1/namespaces/${namespace}/configmaps?watch=1'${demoCluster ? '   # a change every 5 s' : ''}`,
    '',
  ];
  if (plainHttp) {
    lines.push('(PLAIN_HTTP is set: kubectl sends its token over https only, so it cannot be used; unset it for kubectl.)', '');
  } else {
    lines.push(
      `kubectl, with a context per agent in ${kubeconfigFile}:`,
      '',
      `  KUBECONFIG=${kubeconfigFile} kubectl get pods -A`,
      `  KUBECONFIG=${kubeconfigFile} kubectl get pods -w${demoCluster ? `   # namespace ${DEMO_NAMESPACE}` : ''}`,
      ...(demoCluster ? [`  KUBECONFIG=${kubeconfigFile} kubectl logs -f worker-0   # a line every 5 s`] : []),
      '',
    );
  }
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
