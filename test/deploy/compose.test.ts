// docker-compose.yml cannot be brought up here (no Docker daemon in CI), so what it is made of is
// checked piece by piece: its init script really makes secrets and tokens that a two-node kas
// cluster (Redis) configured with the compose file's own settings accepts, Grafana's token
// included (as a Basic-auth password, as Grafana sends it); every setting it names is one the
// programs read, and each service's settings load; every kas and agentk sends traces to Jaeger and
// the dashboard links to Jaeger's trace page; Grafana's data source is the kas passthrough; every
// file it mounts exists; promtool accepts its Prometheus config; agentk accepts its agent.yaml; the
// Dockerfile builds the dashboard in a stage of its own and runs as non-root with a HEALTHCHECK
// whose command really tells a live kas from a dead one.
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { closeSync, existsSync, openSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { AGENT_SETTINGS, loadAgentConfig } from '../../agent/config.ts';
import { parseCommandLine } from '../../protocol/settings.ts';
import { loadConfig } from '../../server/config.ts';
import { KAS_BIN, KasCluster } from '../support/kas.ts';
import { freePort } from '../support/ports.ts';
import { requireTool } from '../support/tools.ts';

const run = promisify(execFile);

/**
 * Like `run`, but the child's stderr goes to a file rather than a pipe. Node's native debug lines
 * (NODE_DEBUG_NATIVE) are written to a stderr that Node made non-blocking: on a busy machine,
 * once the reader lags and a pipe's 64 KB fill up, the lines that do not fit are lost, where a
 * file takes them all.
 */
async function runWithStderrFile(command: string, args: string[], options: { cwd?: string; env: NodeJS.ProcessEnv }, dir: string): Promise<{ stdout: string; stderr: string }> {
  const file = join(dir, `stderr-${Date.now()}-${Math.random().toString(36).slice(2)}.txt`);
  const fd = openSync(file, 'w');
  try {
    const child = spawn(command, args, { ...options, stdio: ['ignore', 'pipe', fd] });
    let stdout = '';
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    const code = await new Promise<number | null>((resolve, reject) => {
      child.once('error', reject);
      child.once('close', resolve);
    });
    const stderr = await readFile(file, 'utf8');
    if (code !== 0) throw new Error(`${command} ${args.join(' ')} exited with ${code}: ${stderr.slice(-2000)}`);
    return { stdout, stderr };
  } finally {
    closeSync(fd);
  }
}
const readdirRecursive = (dir: string): string[] => readdirSync(dir, { recursive: true, encoding: 'utf8' }).map((f) => join(dir, f));
const ROOT = fileURLToPath(new URL('../../', import.meta.url));

interface Service {
  image?: string;
  ports?: string[];
  build?: string;
  entrypoint?: string[];
  command?: string[];
  environment?: Record<string, string>;
  volumes?: string[];
  depends_on?: string[] | Record<string, unknown>;
}

let grafanaTokenPath: string | undefined;

const compose = parse(readFileSync(join(ROOT, 'docker-compose.yml'), 'utf8'), { merge: true }) as { services: Record<string, Service> };
const services = compose.services;

/** Every source file of the programs, to check that a setting the compose file names is read. */
async function sources(): Promise<string> {
  const texts: string[] = [];
  for (const dir of ['server', 'agent', 'otel', 'bin']) {
    for (const entry of await readdir(join(ROOT, dir), { recursive: true })) {
      if (entry.endsWith('.ts')) texts.push(await readFile(join(ROOT, dir, entry), 'utf8'));
    }
  }
  return texts.join('\n');
}

describe('docker-compose.yml', () => {
  test('names only settings the programs read, services that exist and files that are there', async () => {
    const code = await sources();
    for (const [name, service] of Object.entries(services)) {
      for (const variable of Object.keys(service.environment ?? {})) {
        if (!/^(KAS|AGENTK|OTEL)_|^POD_NAME$/.test(variable)) continue;
        assert.ok(code.includes(variable), `${name}: ${variable} is read by neither kas nor agentk`);
      }
      const deps = Array.isArray(service.depends_on) ? service.depends_on : Object.keys(service.depends_on ?? {});
      for (const dep of deps) assert.ok(services[dep], `${name} depends on ${dep}, which is not a service`);
      for (const volume of service.volumes ?? []) {
        const source = volume.split(':')[0]!;
        if (source.startsWith('./')) assert.ok(existsSync(join(ROOT, source)), `${name} mounts ${source}, which does not exist`);
      }
      for (const part of [...(service.entrypoint ?? []), ...(service.command ?? [])]) {
        if (part.startsWith('/app/')) assert.ok(existsSync(join(ROOT, part.slice('/app/'.length))), `${name} runs ${part}, which the image lacks`);
      }
    }
    const dockerfile = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');
    for (const [, source] of dockerfile.matchAll(/^COPY (?!--from=)(\S+) /gm)) assert.ok(existsSync(join(ROOT, source!)), `Dockerfile copies ${source}`);
  });

  test('every kas and agentk exports traces to Jaeger, and the dashboard links to its trace page', () => {
    const jaeger = services.jaeger!;
    assert.match(jaeger.image ?? '', /^jaegertracing\/all-in-one:/);
    const published = (jaeger.ports ?? []).map((p) => p.split(':').slice(-2).join(':'));
    assert.ok(published.includes('16686:16686'), 'the Jaeger UI is published');
    const programs = Object.entries(services).filter(([, s]) => s.image === 'kas:dev' && s.entrypoint?.[0] !== '/bin/sh');
    assert.deepEqual(programs.map(([name]) => name).sort(), ['agentk-1', 'agentk-2', 'kas-1', 'kas-2']);
    for (const [name, service] of programs) {
      assert.equal(service.environment?.OTEL_EXPORTER_OTLP_ENDPOINT, 'http://jaeger:4318', `${name} sends OTLP/HTTP to Jaeger`);
      if (name.startsWith('kas')) {
        const url = loadConfig({ ...service.environment, KAS_DATA_DIR: '/tmp/unused' }).traceUiUrl;
        assert.equal(url, 'http://127.0.0.1:16686/trace/{traceId}', `${name}: a trace link opens Jaeger's trace page`);
      }
    }
  });

  test("each kas and agentk service's settings and command line load", async (t) => {
    const volume = await mkdtemp(join(tmpdir(), 'kas-compose-settings-'));
    t.after(() => rm(volume, { recursive: true, force: true }));
    await writeFile(join(volume, 'demo.token'), 'kasat_from_the_init_script\n');
    const shared = () => volume;
    for (const [name, service] of Object.entries(services)) {
      if (service.image !== 'kas:dev' || service.entrypoint?.[0] === '/bin/sh') continue;
      const env = Object.fromEntries(Object.entries(service.environment ?? {}).map(([k, v]) => [k, v.replace('/shared', shared())]));
      if (name.startsWith('kas')) {
        const config = loadConfig(env);
        assert.equal(config.apiListen.port, 8153, name);
        assert.ok(config.redisUrl && config.privateUrl === `http://${name}:8155`, name);
        assert.equal(config.nodeName, name);
      } else {
        const args = (service.command ?? []).map((a) => a.replace('/shared', shared()).replace('/etc/agentk/agent.yaml', join(ROOT, 'deploy/compose/agent.yaml')));
        const line = parseCommandLine(args, env, { flags: [{ table: AGENT_SETTINGS }], command: 'agentk' });
        const config = loadAgentConfig(line.settings, line.fromFlags);
        assert.equal(config.replica, name);
        assert.match(config.kasUrl, /^ws:\/\/kas-\d:8150$/);
      }
    }
  });

  test("Grafana's data source is the kas passthrough, its password a file the init script writes", () => {
    const grafana = services.grafana!;
    const mounts = new Map((grafana.volumes ?? []).map((v) => [v.split(':')[1]!, v.split(':')[0]!]));
    const file = mounts.get('/etc/grafana/provisioning/datasources/kas.yaml');
    assert.ok(file, 'a provisioned data source');
    const { datasources } = parse(readFileSync(join(ROOT, file), 'utf8')) as { datasources: { type: string; url: string; basicAuth: boolean; secureJsonData: { basicAuthPassword: string } }[] };
    assert.equal(datasources.length, 1);
    const source = datasources[0]!;
    assert.equal(source.type, 'prometheus');
    const url = new URL(source.url);
    const kas = services[url.hostname]!;
    assert.equal(url.port, kas.environment!.KAS_API_LISTEN!.split(':').pop(), 'the API port of a kas service');
    assert.equal(url.pathname, '/api/v1/agents/demo/prometheus');
    assert.equal(source.basicAuth, true);
    const password = /^\$__file\{(.+)\}$/.exec(source.secureJsonData.basicAuthPassword)?.[1];
    assert.ok(password?.startsWith('/shared/') && mounts.get('/shared') === 'shared', 'read from the shared volume');
    grafanaTokenPath = password!.slice('/shared/'.length);
    const deps = Object.keys(grafana.depends_on ?? {});
    assert.ok(deps.includes('init'), 'after the init script made the token');
  });

  test('the Dockerfile builds the dashboard in a build stage and ships a non-root runtime with a HEALTHCHECK', () => {
    const dockerfile = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');
    const stages = dockerfile.split(/^(?=FROM )/m).filter((s) => s.startsWith('FROM '));
    assert.ok(stages.length >= 2, 'more than one stage');
    const build = stages.find((s) => /^FROM \S+ AS build$/m.test(s));
    assert.ok(build && /^RUN npm run build$/m.test(build), 'the build stage runs npm run build');
    assert.match(build!, /^RUN npm ci --ignore-scripts$/m, 'with the dev dependencies');
    const runtime = stages.at(-1)!;
    assert.match(runtime, /^COPY --from=build \S+\/web\/dist \.\/web\/dist$/m, 'the built dashboard');
    for (const [, source] of runtime.matchAll(/^COPY (?!--from)(\S+) /gm)) {
      assert.ok(!/^(test|bench|web|scripts|demo|\.)$/.test(source!), `the runtime ships ${source}`);
    }
    assert.doesNotMatch(runtime, /npm (ci|install)(?!.*--omit=dev)/, 'no dev dependencies in the runtime');
    const user = /^USER (\S+)$/m.exec(runtime)?.[1];
    assert.ok(user && user !== 'root' && user !== '0', 'runs as non-root');
    const healthcheck = /^HEALTHCHECK .*CMD \["node", "\/app\/(bin\/healthcheck\.ts)"\]$/m.exec(runtime);
    assert.ok(healthcheck && existsSync(join(ROOT, healthcheck[1]!)), 'a HEALTHCHECK');
    assert.match(readFileSync(join(ROOT, healthcheck[1]!), 'utf8'), /\/liveness/);
  });

  test("the image's compile-cache warm-up covers every source, so the programs start without stripping types", async () => {
    const dockerfile = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');
    const runtime = dockerfile.split(/^(?=FROM )/m).at(-1)!;
    const cacheDir = /^ENV NODE_COMPILE_CACHE=(\S+)$/m.exec(runtime)?.[1];
    assert.ok(cacheDir, 'the runtime sets NODE_COMPILE_CACHE');
    const warm = /^RUN (node --input-type=module -e '[^']+') \\\n && node bin\/kas\.js --version && node bin\/agentk\.js --version$/m.exec(runtime)?.[1];
    assert.ok(warm, 'the runtime warms the cache with every source and both programs');
    const script = /-e '([^']+)'/.exec(warm!)![1]!.replaceAll('"/app/"', JSON.stringify(ROOT));
    const dir = await mkdtemp(join(tmpdir(), 'kas-compile-cache-'));
    try {
      const env = { ...process.env, NODE_COMPILE_CACHE: dir };
      await run(process.execPath, ['--input-type=module', '-e', script], { cwd: ROOT, env });
      for (const bin of ['bin/kas.js', 'bin/agentk.js']) await run(process.execPath, [join(ROOT, bin), '--version'], { env });
      // Every source again, now reporting what the cache gave: each one's stripped text, none stripped anew.
      const debug = { ...env, NODE_DEBUG_NATIVE: 'COMPILE_CACHE' };
      const again = await runWithStderrFile(process.execPath, ['--input-type=module', '-e', script], { cwd: ROOT, env: debug }, dir);
      const sources = ['server', 'agent', 'protocol', 'otel'].flatMap((d) => readdirRecursive(join(ROOT, d))).filter((f) => f.endsWith('.ts'));
      const hits = again.stderr.match(/retrieving transpile cache for StrippedTypeScript \S+\.\.\.success/g) ?? [];
      const missed = sources.filter((f) => !hits.some((hit) => hit.includes(`${f}...`)));
      assert.equal(hits.length, sources.length, `every source came from the cache; not: ${missed.join(', ')}`);
      assert.doesNotMatch(again.stderr, /no transpile cache/);
      for (const bin of ['bin/kas.js', 'bin/agentk.js']) {
        const started = await runWithStderrFile(process.execPath, [join(ROOT, bin), '--version'], { env: debug }, dir);
        assert.match(started.stdout, /^(kas|agentk) \d/);
        assert.doesNotMatch(started.stderr, /no transpile cache/, `${bin} strips no TypeScript`);
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test("the HEALTHCHECK command is 0 for a live kas and 1 when nothing answers", async () => {
    const cluster = await KasCluster.start();
    try {
      const obs = cluster.nodes[0]!.env.KAS_OBSERVABILITY_LISTEN!;
      const healthy = await run(process.execPath, [join(ROOT, 'bin/healthcheck.ts')], { env: { ...process.env, KAS_OBSERVABILITY_LISTEN: obs } });
      assert.equal(healthy.stdout, '');
      const dead = `127.0.0.1:${await freePort()}`;
      await assert.rejects(
        run(process.execPath, [join(ROOT, 'bin/healthcheck.ts')], { env: { ...process.env, KAS_OBSERVABILITY_LISTEN: dead, AGENTK_OBSERVABILITY_LISTEN: dead } }),
        (error: { code?: number }) => error.code === 1,
      );
    } finally {
      await cluster.stop();
    }
  });

  test('its Prometheus configuration passes promtool check config', async () => {
    const promtool = await requireTool('promtool');
    const { stdout } = await run(promtool, ['check', 'config', join(ROOT, 'deploy/compose/prometheus.yml')]);
    assert.match(stdout, /SUCCESS/);
  });

  test('its agent.yaml is a valid agentk configuration', () => {
    const config = loadAgentConfig({ AGENTK_KAS_URL: 'ws://kas-1:8150', AGENTK_TOKEN_FILE: '/dev/null', AGENTK_CONFIG: join(ROOT, 'deploy/compose/agent.yaml') });
    assert.equal(config.file.prometheus?.url, 'http://prometheus:9090');
  });

  describe('its init script', () => {
    let shared: string;
    let cluster: KasCluster;
    before(async () => {
      shared = await mkdtemp(join(tmpdir(), 'kas-compose-'));
    });
    after(async () => {
      await cluster?.stop();
      await rm(shared, { recursive: true, force: true });
    });

    test('makes secrets and tokens that a two-node cluster with the compose settings accepts, and keeps them on a second run', async () => {
      const env: Record<string, string | undefined> = { ...process.env, SHARED: shared, KAS: `${process.execPath} ${KAS_BIN}` };
      for (const [key, value] of Object.entries(services.init!.environment!)) env[key] = value.replace('/shared', shared);
      const first = await run('/bin/sh', [join(ROOT, 'deploy/compose/init.sh')], { env });
      assert.match(first.stdout, /registered agent demo/);
      for (const file of ['api-secret', 'private-secret', 'demo.token']) {
        assert.equal(statSync(join(shared, file)).mode & 0o077, 0, `${file} is private`);
      }
      assert.ok(Buffer.from(readFileSync(join(shared, 'api-secret'), 'utf8').trim(), 'base64').length >= 32);
      const agentToken = readFileSync(join(shared, 'demo.token'), 'utf8').trim();
      const secrets = ['api-secret', 'private-secret', 'agents.json'].map((f) => readFileSync(join(shared, f), 'utf8'));
      const second = await run('/bin/sh', [join(ROOT, 'deploy/compose/init.sh')], { env });
      assert.doesNotMatch(second.stdout, /registered|made/);
      assert.deepEqual(['api-secret', 'private-secret', 'agents.json'].map((f) => readFileSync(join(shared, f), 'utf8')), secrets, 'a second run changes nothing');
      const apiToken = readFileSync(join(shared, 'api.token'), 'utf8').trim();

      // The kas nodes of the compose file read the secrets from the shared volume.
      const kasEnv = services['kas-1']!.environment!;
      cluster = await KasCluster.start({
        nodes: 2,
        env: {
          KAS_API_SECRET_FILE: kasEnv.KAS_API_SECRET_FILE!.replace('/shared', shared),
          KAS_PRIVATE_SECRET_FILE: kasEnv.KAS_PRIVATE_SECRET_FILE!.replace('/shared', shared),
          KAS_AGENT_TOKENS_FILE: kasEnv.KAS_AGENT_TOKENS_FILE!.replace('/shared', shared),
        },
      });
      await cluster.startAgent({ id: 'demo', token: agentToken, node: 0, configYaml: readFileSync(join(ROOT, 'deploy/compose/agent.yaml'), 'utf8') });
      await cluster.waitForReplicas('demo', 1, apiToken, 1);
      const res = await cluster.fetch(1, '/api/v1/agents/demo', { token: apiToken });
      assert.equal(res.status, 200);
      const body = (await res.json()) as { replicas: { capabilities?: string[] }[] };
      assert.equal(body.replicas.length, 1);

      // Grafana's token, sent as Grafana sends it: the Basic-auth password.
      assert.ok(grafanaTokenPath, 'the data source names the file');
      const grafanaToken = readFileSync(join(shared, grafanaTokenPath), 'utf8').trim();
      const basic = `Basic ${Buffer.from(`grafana:${grafanaToken}`).toString('base64')}`;
      const viaBasic = await cluster.fetch(0, '/api/v1/agents/demo', { headers: { authorization: basic } });
      assert.equal(viaBasic.status, 200);
    });
  });
});
