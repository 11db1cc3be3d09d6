// promtool, an unmodified Prometheus client, works against an agent's kas URL with the API token
// as the Basic-auth password (Debian's promtool has no other way to send credentials), and
// prints exactly what it prints against Prometheus itself.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { KasCluster } from '../support/kas.ts';
import { startPrometheus, type PrometheusServer } from '../support/prometheus.ts';
import { requireTool } from '../support/tools.ts';

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function run(binary: string, args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(binary, args, { timeout: 30_000 }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, stdout, stderr });
    });
  });
}

describe('promtool pointed at kas', () => {
  let promtool: string;
  let cluster: KasCluster;
  let prometheus: PrometheusServer;
  let kasUrl: string;
  // Fixed times a few scrapes in the past, so both runs see the same stored samples.
  let t: number;

  before(async () => {
    let firstSampleAt = 0;
    [promtool, prometheus, cluster] = await Promise.all([
      requireTool('promtool'),
      startPrometheus().then((p) => ((firstSampleAt = Date.now()), p)),
      KasCluster.start({ nodes: 2 }),
    ]);
    const agentToken = await cluster.registerAgent('prod');
    const token = await cluster.issueToken({ sub: 'promtool-user', agents: ['prod'] });
    await cluster.startAgent({ id: 'prod', token: agentToken, node: 1, prometheusUrl: prometheus.url });
    await cluster.waitForReplicas('prod', 1, token, 0);
    // Through the node that does not hold the agent: the forwarding hop is part of the path.
    const api = new URL(cluster.nodes[0]!.apiUrl);
    kasUrl = `http://x:${token}@${api.host}/api/v1/agents/prod/prometheus`;
    await sleep(Math.max(0, firstSampleAt + 3_000 - Date.now()));
    t = Math.floor(Date.now() / 1000) - 2;
  });
  after(async () => {
    await cluster?.stop();
    await prometheus?.stop();
  });

  async function assertSameOutput(args: (server: string) => string[]): Promise<void> {
    const direct = await run(promtool, args(prometheus.url));
    const viaKas = await run(promtool, args(kasUrl));
    assert.equal(direct.code, 0, `promtool against Prometheus failed: ${direct.stderr}`);
    assert.equal(viaKas.code, 0, `promtool against kas failed: ${viaKas.stderr}\n${cluster.describe()}`);
    assert.match(direct.stdout, /job="prometheus"/, 'the query found samples, so the comparison means something');
    assert.equal(viaKas.stdout, direct.stdout);
  }

  test('promtool query instant prints what it prints against Prometheus', async () => {
    await assertSameOutput((server) => ['query', 'instant', `--time=${t}`, server, 'up']);
  });

  test('promtool query range prints what it prints against Prometheus', async () => {
    await assertSameOutput((server) => ['query', 'range', `--start=${t - 20}`, `--end=${t}`, '--step=1s', server, 'up']);
  });

  test('promtool without the token is refused', async () => {
    // The same URL without credentials: proves the token in the URL is what let the runs above in.
    const withoutToken = kasUrl.replace(/\/\/x:[^@]+@/, '//');
    const result = await run(promtool, ['query', 'instant', `--time=${t}`, withoutToken, 'up']);
    assert.notEqual(result.code, 0);
    assert.match(result.stderr, /401|unauthori[sz]ed|no API token/i);
  });
});
