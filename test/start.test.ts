// `npm start` end to end: one command brings up kas, an agent, a demo Kubernetes cluster and (when
// on PATH) Prometheus; the printed token and curl examples work; SIGINT stops every child and
// exits 0.
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { freePort } from './support/ports.ts';
import { dumpOnFailure, Proc } from './support/procs.ts';

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

test('npm start runs kas, an agent and Prometheus; the printed token works; SIGINT stops it all', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'kas-start-'));
  const [api, agent, priv, obs, agentObs, prom] = await Promise.all(Array.from({ length: 6 }, freePort));
  const proc = Proc.start('npm start', process.execPath, [START], {
    env: {
      ...process.env,
      KAS_DATA_DIR: join(dir, 'data'),
      KAS_API_LISTEN: `127.0.0.1:${api}`,
      KAS_AGENT_LISTEN: `127.0.0.1:${agent}`,
      KAS_PRIVATE_LISTEN: `127.0.0.1:${priv}`,
      KAS_OBSERVABILITY_LISTEN: `127.0.0.1:${obs}`,
      AGENTK_OBSERVABILITY_LISTEN: `127.0.0.1:${agentObs}`,
      PROMETHEUS_LISTEN: `127.0.0.1:${prom}`,
    },
  });
  dumpOnFailure(t, proc);
  let children: number[] = [];
  t.after(async () => {
    await proc.stop('SIGKILL', 0);
    for (const pid of children) if (alive(pid)) process.kill(pid, 'SIGKILL');
    await rm(dir, { recursive: true, force: true });
  });

  const tokenLine = await proc.waitForLine(/^export TOKEN=/, 18_000);
  const token = tokenLine.slice('export TOKEN='.length).trim();
  const curl = await proc.waitForLine(/curl -H "Authorization: Bearer \$TOKEN"/, 1_000);
  const url = /'(http:\/\/[^']+)'/.exec(curl)?.[1];
  assert.equal(url, `http://127.0.0.1:${api}/api/v1/agents/local/prometheus/api/v1/query?query=up`);
  children = descendants(proc.pid!);
  assert.ok(children.length >= 2, `kas and agentk run as children of the start script\n${proc.describe()}`);

  const res = await fetch(url, { headers: { authorization: `Bearer ${token}` } });
  const body = (await res.json()) as { status: string; data?: { result: unknown[] } };
  // The script looks for prometheus on PATH only (it never installs anything).
  const prometheusOnPath = (process.env.PATH ?? '').split(delimiter).some((d) => d && existsSync(join(d, 'prometheus')));
  if (!prometheusOnPath) {
    // Without Prometheus the script says how to get one, and the agent has no prometheus capability.
    assert.match(proc.output(), /PROMETHEUS_URL=/);
  } else {
    assert.equal(res.status, 200, JSON.stringify(body));
    assert.equal(body.status, 'success');
    assert.ok((body.data?.result.length ?? 0) > 0, `up has series: ${JSON.stringify(body)}`);
    assert.ok(res.headers.get('x-kas-node'), 'the answer came through an agent');
  }

  // The demo Kubernetes cluster answers through kas too.
  const kubeCurl = await proc.waitForLine(/curl -H .*\/kubernetes\/api\/v1\/namespaces\/demo\/pods'/, 1_000);
  const kubeUrl = /'(http:\/\/[^']+)'/.exec(kubeCurl)?.[1];
  assert.equal(kubeUrl, `http://127.0.0.1:${api}/api/v1/agents/local/kubernetes/api/v1/namespaces/demo/pods`);
  const pods = await fetch(kubeUrl, { headers: { authorization: `Bearer ${token}` } });
  const podList = (await pods.json()) as { kind: string; items: { metadata: { name: string } }[] };
  assert.equal(pods.status, 200, JSON.stringify(podList));
  assert.equal(podList.kind, 'PodList');
  assert.ok(podList.items.some((p) => p.metadata.name === 'worker-0'), JSON.stringify(podList.items.map((p) => p.metadata.name)));

  proc.signal('SIGINT');
  const exit = await proc.waitForExit(15_000);
  assert.deepEqual(exit, { code: 0, signal: null }, proc.describe());
  const left = children.filter(alive);
  assert.deepEqual(left, [], `children still running after npm start exited\n${proc.describe()}`);
});
