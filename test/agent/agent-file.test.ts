// agent.yaml is read and checked in a short-lived child (agent/agentFile.ts): agentk gets the
// config with every default applied, a broken file is reported in words that say what to fix,
// and agentk's own process never loads the YAML parser or zod.
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { AgentConfigError, loadAgentConfig } from '../../agent/config.ts';
import { DEFAULT_KUBERNETES_POLICY } from '../../agent/modules/kubernetes/policy.ts';
import { freePort } from '../support/ports.ts';
import { Proc } from '../support/procs.ts';

const AGENTK = fileURLToPath(new URL('../../bin/agentk.js', import.meta.url));
let dir: string;
let tokenFile: string;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'kas-agent-file-'));
  tokenFile = join(dir, 'token');
  await writeFile(tokenFile, 'agent-token\n');
});
after(() => rm(dir, { recursive: true, force: true }));

async function load(yaml: string) {
  const file = join(dir, `agent-${Math.random().toString(36).slice(2)}.yaml`);
  await writeFile(file, yaml);
  return { file, load: () => loadAgentConfig({ AGENTK_KAS_URL: 'ws://kas:8150', AGENTK_TOKEN_FILE: tokenFile, AGENTK_CONFIG: file }) };
}

test('a valid agent.yaml comes back checked, with the defaults applied', async () => {
  const { load: read } = await load('prometheus:\n  url: http://prometheus:9090\nkubernetes:\n  inCluster: true\npolicy:\n  kubernetes:\n    logs: false\n');
  const config = read();
  assert.equal(config.token, 'agent-token');
  assert.deepEqual(config.file, {
    prometheus: { url: 'http://prometheus:9090' },
    kubernetes: { inCluster: true },
    policy: { kubernetes: { allow: DEFAULT_KUBERNETES_POLICY.allow, deny: DEFAULT_KUBERNETES_POLICY.deny, logs: false } },
  });
  const empty = await load('');
  assert.deepEqual(empty.load().file, {}, 'an empty file turns everything off');
});

test('a broken agent.yaml is refused in words that name the file and what is wrong', async () => {
  const cases: [string, RegExp][] = [
    ['prometheus:\n  url: [unclosed\n', /^cannot read the config file .*agent-\w+\.yaml: .*/],
    ['prometheus:\n  url: not a url\n', /agent-\w+\.yaml is not a valid agentk config: prometheus\.url: /],
    ['prometheus:\n  url: http://p:9090\n  timeout: 5\n', /is not a valid agentk config: prometheus: Unrecognized key.*timeout/],
    ['policy:\n  kubernetes:\n    deny:\n      - namespaces: []\n', /policy\.kubernetes\.deny\.0\.namespaces: /],
  ];
  for (const [yaml, expected] of cases) {
    const { load: read } = await load(yaml);
    assert.throws(read, (error: Error) => error instanceof AgentConfigError && expected.test(error.message), `for ${JSON.stringify(yaml)}`);
  }
  assert.throws(
    () => loadAgentConfig({ AGENTK_KAS_URL: 'ws://kas:8150', AGENTK_TOKEN_FILE: tokenFile, AGENTK_CONFIG: join(dir, 'missing.yaml') }),
    (error: Error) => error instanceof AgentConfigError && /cannot read the config file .*missing\.yaml: ENOENT/.test(error.message),
  );
});

test("agentk's own process loads neither the YAML parser nor zod, with every capability configured", async (t) => {
  const kubeconfig = join(dir, 'kubeconfig');
  await writeFile(
    kubeconfig,
    JSON.stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'c', cluster: { server: 'https://127.0.0.1:1' } }],
      users: [{ name: 'u', user: { token: 't' } }],
      contexts: [{ name: 'x', context: { cluster: 'c', user: 'u' } }],
      'current-context': 'x',
    }),
  );
  const { file } = await load(`prometheus:\n  url: http://127.0.0.1:1\nkubernetes:\n  kubeconfig: ${kubeconfig}\npolicy:\n  kubernetes:\n    logs: false\n`);
  const loaded = join(dir, 'modules.txt');
  // Every module agentk's process loads, written down as it exits.
  const hook = `data:text/javascript,${encodeURIComponent(`
    import { registerHooks } from 'node:module';
    import { writeFileSync } from 'node:fs';
    const seen = new Set();
    registerHooks({ resolve(specifier, context, next) { const r = next(specifier, context); seen.add(r.url); return r; } });
    process.on('exit', () => writeFileSync(${JSON.stringify(loaded)}, [...seen].join('\\n')));
  `)}`;
  const observability = await freePort();
  const kasPort = await freePort(); // nothing listens: agentk keeps retrying, which is all this needs
  const agent = Proc.start('agentk', process.execPath, ['--import', hook, AGENTK, '--kas-url', `ws://127.0.0.1:${kasPort}`, '--token-file', tokenFile, '--config', file], {
    env: { ...process.env, AGENTK_OBSERVABILITY_LISTEN: `127.0.0.1:${observability}`, OTEL_SDK_DISABLED: 'true' },
  });
  t.after(() => agent.kill());
  await agent.waitForLine(/kubernetes capability on/, 30_000);
  await agent.waitForLine(/connecting to kas/, 5_000);
  await agent.stop();
  const modules = (await readFile(loaded, 'utf8')).split('\n');
  assert.ok(modules.some((url) => url.includes('/agent/connection.ts')), 'the hook saw agentk load');
  const heavy = modules.filter((url) => /\/node_modules\/(zod|yaml|@kubernetes\/client-node)\//.test(url));
  assert.deepEqual(heavy, [], 'agentk loaded what only its short-lived children need');
});
