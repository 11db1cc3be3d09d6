// Many watches at once through the node that does not hold the agent: each holds a connection at
// every hop (caller → kas, kas → kas, agentk → API server) for as long as it lives, so no hop may
// cap its connections below what dashboards open. 520 is past both caps this code once had (256
// in agentk, 512 between kas nodes): every watch must open and see the change. They ask for the
// current state first (no resourceVersion), so kas cannot share them (sharedWatches.ts): each is
// its own stream at every hop.
import assert from 'node:assert/strict';
import http from 'node:http';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { KasCluster } from '../support/kas.ts';
import { type KubeSim, startKubeSim } from '../../demo/k8sSim.ts';
import { makeTestPki } from '../support/tls.ts';

const WATCHES = 520;
let dir: string;
let sim: KubeSim;
let cluster: KasCluster;
let token: string;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'kas-watches-'));
  const pki = await makeTestPki(join(dir, 'pki'));
  sim = await startKubeSim({ tls: pki, token: 'sa' });
  sim.api.create('configmaps', { metadata: { name: 'watched', namespace: 'default' }, data: { n: '0' } });
  const kubeconfig = join(dir, 'kubeconfig');
  await writeFile(kubeconfig, sim.kubeconfig({ caFile: pki.caFile, token: 'sa' }));
  cluster = await KasCluster.start({ nodes: 2, env: { LOG_LEVEL: 'info' } });
  const agentToken = await cluster.registerAgent('busy');
  await cluster.startAgent({ id: 'busy', token: agentToken, node: 0, configYaml: `kubernetes:\n  kubeconfig: ${kubeconfig}\n`, env: { LOG_LEVEL: 'info' } });
  token = await cluster.issueToken();
  await cluster.waitForReplicas('busy', 1, token, 1);
});

after(async () => {
  await cluster?.stop();
  await sim?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

test(`${WATCHES} concurrent watches through the other node all open and all see a change`, async () => {
  const agent = new http.Agent({ keepAlive: false });
  const url = new URL(`${cluster.nodes[1]!.apiUrl}/api/v1/agents/busy/kubernetes/api/v1/namespaces/default/configmaps?watch=1`);
  const requests: http.ClientRequest[] = [];
  let sawChange = 0;
  let allSaw: () => void;
  const everyoneSaw = new Promise<void>((resolve) => (allSaw = resolve));
  const open = () =>
    new Promise<void>((resolve, reject) => {
      const req = http.get(url, { agent, headers: { authorization: `Bearer ${token}` } }, (res) => {
        if (res.statusCode !== 200) return reject(new Error(`a watch answered ${res.statusCode}`));
        let buffer = '';
        let seen = false;
        res.setEncoding('utf8').on('data', (chunk: string) => {
          buffer += chunk;
          if (!seen && buffer.includes('"MODIFIED"')) {
            seen = true;
            if (++sawChange === WATCHES) allSaw();
          }
        });
        res.on('error', () => undefined);
        resolve();
      });
      req.on('error', (error) => (req.destroyed && sawChange === WATCHES ? undefined : reject(error)));
      requests.push(req);
    });
  try {
    const opened = Promise.all(Array.from({ length: WATCHES }, open));
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`not every watch opened within 60 s (${WATCHES} asked)`)), 60_000);
    });
    await Promise.race([opened, timeout]).finally(() => clearTimeout(timer));
    assert.equal(sim.api.activeWatches(), WATCHES, 'each watch is its own watch on the API server');
    sim.api.modify('configmaps', 'default', 'watched', (o) => (o.data = { n: '1' }));
    const changeTimeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`only ${sawChange} of ${WATCHES} watches saw the change within 30 s`)), 30_000);
    });
    await Promise.race([everyoneSaw, changeTimeout]).finally(() => clearTimeout(timer));
    assert.equal(sawChange, WATCHES);
  } finally {
    for (const req of requests) req.destroy();
  }
});
