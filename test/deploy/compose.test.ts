// docker-compose.yml cannot be brought up here (no Docker daemon in CI), so what it is made of is
// checked piece by piece: its init script really makes secrets and tokens that a two-node kas
// cluster (Redis) configured with the compose file's own settings accepts; every setting it names
// is one the programs read; every file it mounts exists; promtool accepts its Prometheus config;
// agentk accepts its agent.yaml.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { loadAgentConfig } from '../../agent/config.ts';
import { KAS_BIN, KasCluster } from '../support/kas.ts';
import { requireTool } from '../support/tools.ts';

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL('../../', import.meta.url));

interface Service {
  image?: string;
  build?: string;
  entrypoint?: string[];
  command?: string[];
  environment?: Record<string, string>;
  volumes?: string[];
  depends_on?: string[] | Record<string, unknown>;
}

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
    for (const [, source] of dockerfile.matchAll(/^COPY (\S+) /gm)) assert.ok(existsSync(join(ROOT, source!)), `Dockerfile copies ${source}`);
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
    });
  });
});
