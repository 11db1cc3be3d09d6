// `npm start` end to end: one command brings up kas (its API over TLS with a CA it makes once), an
// agent, a demo Kubernetes cluster and (when on PATH) Prometheus; every example it prints (curl,
// promtool, kubectl with the kubeconfig it writes) is run exactly as printed and works; SIGINT
// stops every child and exits 0. Started again with PLAIN_HTTP=1 it reuses its CA and serves
// plain HTTP.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { freePort } from './support/ports.ts';
import { dumpOnFailure, Proc } from './support/procs.ts';
import { requireTool } from './support/tools.ts';

const START = fileURLToPath(new URL('../scripts/start.ts', import.meta.url));

/** Every live descendant of pid, from /proc. */
function descendants(pid: number): number[] {
  const parents = new Map<number, number[]>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      // The command name may hold spaces and parentheses: the ppid follows the last ")".
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      parents.set(ppid, [...(parents.get(ppid) ?? []), Number(entry)]);
    } catch {
      // exited while we looked
    }
  }
  const found: number[] = [];
  const queue = [pid];
  while (queue.length > 0) for (const child of parents.get(queue.shift()!) ?? []) queue.push(child), found.push(child);
  return found;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return !/^\S+ \(.*\) Z/s.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

interface Shell {
  code: number | null;
  /** What it printed on stdout (curl's progress meter goes to stderr). */
  output: string;
  stderr: string;
}

/**
 * Runs one printed line with bash, as a user pasting it would. With `until`, the command is a
 * stream (a watch, -w, -f): it is stopped (its whole process group) once its output matches.
 */
function runAsPrinted(line: string, env: NodeJS.ProcessEnv, options: { until?: RegExp; timeoutMs?: number } = {}): Promise<Shell> {
  return new Promise((resolve, reject) => {
    const child = spawn('/bin/bash', ['-c', line], { env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    let output = '';
    let stderr = '';
    let done = false;
    const finish = (code: number | null) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      resolve({ code, output, stderr });
    };
    const stop = () => {
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        // already gone
      }
    };
    const timer = setTimeout(() => {
      stop();
      reject(new Error(`"${line}" did not ${options.until ? `print ${options.until}` : 'finish'} within ${options.timeoutMs ?? 20_000}ms:\n${output}\n${stderr}`));
    }, options.timeoutMs ?? 20_000);
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      output += chunk;
      if (options.until?.test(output)) {
        stop();
        finish(0);
      }
    });
    child.once('error', reject);
    child.once('close', (code) => finish(code));
  });
}

/** The example commands npm start printed: the indented lines that start a program. */
function printedCommands(output: string): string[] {
  return output.split('\n').filter((l) => /^ {2}(curl|promtool|kubectl|[A-Z_]+=\S+ (promtool|kubectl))\b/.test(l)).map((l) => l.trim());
}

function startEnv(dataDir: string, ports: number[], extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const [api, agent, priv, obs, agentObs, prom] = ports;
  return {
    ...process.env,
    KAS_DATA_DIR: dataDir,
    KAS_API_LISTEN: `127.0.0.1:${api}`,
    KAS_AGENT_LISTEN: `127.0.0.1:${agent}`,
    KAS_PRIVATE_LISTEN: `127.0.0.1:${priv}`,
    KAS_OBSERVABILITY_LISTEN: `127.0.0.1:${obs}`,
    AGENTK_OBSERVABILITY_LISTEN: `127.0.0.1:${agentObs}`,
    PROMETHEUS_LISTEN: `127.0.0.1:${prom}`,
    ...extra,
  };
}

// The script looks for prometheus on PATH only (it never installs anything).
const prometheusOnPath = (process.env.PATH ?? '').split(delimiter).some((d) => d && existsSync(join(d, 'prometheus')));

test('npm start serves TLS with its own CA; every printed curl, promtool and kubectl line works as printed; SIGINT stops it all', async (t) => {
  await Promise.all([requireTool('kubectl'), requireTool('promtool')]);
  const dir = await mkdtemp(join(tmpdir(), 'kas-start-'));
  const dataDir = join(dir, 'data');
  const ports = await Promise.all(Array.from({ length: 6 }, freePort));
  const api = ports[0]!;
  const proc = Proc.start('npm start', process.execPath, [START], { env: startEnv(dataDir, ports) });
  dumpOnFailure(t, proc);
  let children: number[] = [];
  t.after(async () => {
    await proc.stop('SIGKILL', 0);
    for (const pid of children) if (alive(pid)) process.kill(pid, 'SIGKILL');
    await rm(dir, { recursive: true, force: true });
  });

  const tokenLine = await proc.waitForLine(/^export TOKEN=/, 25_000);
  const token = tokenLine.slice('export TOKEN='.length).trim();
  await proc.waitForLine(/^Ctrl-C stops everything/, 2_000);
  children = descendants(proc.pid!);
  assert.ok(children.length >= 2, `kas and agentk run as children of the start script\n${proc.describe()}`);

  // The CA and the server certificate it made, and the kubeconfig with the CA embedded.
  const caFile = join(dataDir, 'tls', 'ca.crt');
  assert.ok(existsSync(caFile) && existsSync(join(dataDir, 'tls', 'server.crt')));
  const kubeconfig = JSON.parse(readFileSync(join(dataDir, 'kubeconfig'), 'utf8')) as {
    clusters: { name: string; cluster: { server: string; 'certificate-authority-data': string } }[];
    contexts: { name: string; context: { cluster: string; namespace?: string } }[];
    users: { user: { token: string } }[];
    'current-context': string;
  };
  assert.deepEqual(kubeconfig.contexts.map((c) => c.name), ['local'], 'one context per registered agent');
  assert.equal(kubeconfig['current-context'], 'local');
  assert.equal(kubeconfig.clusters[0]!.cluster.server, `https://127.0.0.1:${api}/api/v1/agents/local/kubernetes`);
  assert.equal(Buffer.from(kubeconfig.clusters[0]!.cluster['certificate-authority-data'], 'base64').toString(), readFileSync(caFile, 'utf8'));
  assert.equal(kubeconfig.users[0]!.user.token, token);

  const commands = printedCommands(proc.output());
  const curl = commands.find((c) => c.includes('/prometheus/api/v1/query?query=up'));
  assert.equal(/'(https?:\/\/[^']+)'/.exec(curl ?? '')?.[1], `https://127.0.0.1:${api}/api/v1/agents/local/prometheus/api/v1/query?query=up`);
  assert.ok(curl?.includes(`--cacert ${caFile}`), curl);
  const expected: [RegExp, RegExp, { stream?: boolean }?][] = [
    [/curl .*\/prometheus\/api\/v1\/query\?query=up/, /"status":"success".*"__name__":"up"/],
    [/promtool query instant/, /^up\{.*\} => 1/m],
    [/curl .*\/namespaces\/demo\/pods'/, /"kind":"PodList".*"worker-0"/],
    [/curl .*-N .*configmaps\?watch=1/, /"type":"ADDED".*"heartbeat"/, { stream: true }],
    [/kubectl get pods -A/, /^demo +worker-0 +1\/1 +Running/m],
    [/kubectl get pods -w/, /^worker-0 +1\/1 +Running/m, { stream: true }],
    [/kubectl logs -f worker-0/, /worker started\n(.*\n)*processed batch \d+/, { stream: true }],
  ];
  assert.equal(commands.length, expected.length, `printed commands:\n${commands.join('\n')}`);
  // kubectl keeps its discovery cache under HOME: a fresh one, as a new user has.
  const env = { ...process.env, TOKEN: token, HOME: join(dir, 'home') };
  for (const [which, answer, options] of expected) {
    const command = commands.find((c) => which.test(c));
    assert.ok(command, `printed ${which}`);
    if (!prometheusOnPath && /promtool|prometheus/.test(command)) continue; // checked below
    const result = await runAsPrinted(command, env, options?.stream ? { until: answer } : {});
    assert.equal(result.code, 0, `${command}\n${result.output}\n${result.stderr}`);
    assert.match(result.output, answer, command);
  }
  if (!prometheusOnPath) {
    // Without Prometheus the script says how to get one, and the agent has no prometheus capability.
    assert.match(proc.output(), /PROMETHEUS_URL=/);
  }

  proc.signal('SIGINT');
  const exit = await proc.waitForExit(15_000);
  assert.deepEqual(exit, { code: 0, signal: null }, proc.describe());
  const left = children.filter(alive);
  assert.deepEqual(left, [], `children still running after npm start exited\n${proc.describe()}`);

  // Again, with PLAIN_HTTP=1: the same CA is reused (for the demo cluster) and the API is plain HTTP.
  const caBefore = readFileSync(caFile, 'utf8');
  const plain = Proc.start('npm start (PLAIN_HTTP)', process.execPath, [START], { env: startEnv(dataDir, ports, { PLAIN_HTTP: '1' }) });
  dumpOnFailure(t, plain);
  t.after(() => plain.stop('SIGKILL', 0));
  const plainToken = (await plain.waitForLine(/^export TOKEN=/, 25_000)).slice('export TOKEN='.length).trim();
  await plain.waitForLine(/^Ctrl-C stops everything/, 2_000);
  assert.equal(readFileSync(caFile, 'utf8'), caBefore, 'the CA made on first start is reused');
  assert.doesNotMatch(plain.output(), /made a local CA/);
  const plainCommands = printedCommands(plain.output());
  assert.ok(!plainCommands.some((c) => c.includes('kubectl')), 'no kubectl lines over plain HTTP');
  const pods = plainCommands.find((c) => /\/namespaces\/demo\/pods'/.test(c))!;
  assert.match(pods, new RegExp(`^curl -H "Authorization: Bearer \\$TOKEN" 'http://127\\.0\\.0\\.1:${api}/`));
  const result = await runAsPrinted(pods, { ...process.env, TOKEN: plainToken });
  assert.match(result.output, /"kind":"PodList".*"worker-0"/);
  plain.signal('SIGINT');
  assert.deepEqual(await plain.waitForExit(15_000), { code: 0, signal: null }, plain.describe());
});
