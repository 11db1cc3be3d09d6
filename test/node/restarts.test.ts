// What operators do to kas: restart every node in turn (SIGTERM, as an upgrade does), kill one
// (SIGKILL), restart Redis, all under load. Three nodes behind a TCP load balancer that polls
// /readiness every 200 ms, an agent with two replicas dialling kas through it, 100 requests a
// second through it and a few Kubernetes watches that re-watch from their last resourceVersion
// whenever kas ends them.
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { startBalancer, type Balancer } from '../support/balancer.ts';
import { KasCluster } from '../support/kas.ts';
import { type KubeSim, makePod, startKubeSim } from '../../demo/k8sSim.ts';
import { metricSum } from '../support/metrics.ts';
import type { ExitStatus } from '../support/procs.ts';
import { startFakeUpstream, type FakeUpstream } from '../support/upstream.ts';

/** 100 requests a second through the load balancer, each one's outcome kept. */
class Load {
  ok = 0;
  failures: string[] = [];
  #timer: NodeJS.Timeout | undefined;
  #agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
  #pending = new Set<Promise<void>>();
  readonly url: string;
  readonly token: string;

  constructor(url: string, token: string) {
    this.url = url;
    this.token = token;
  }

  start(perSecond = 100): void {
    this.#timer = setInterval(() => {
      const sent = Date.now();
      const done = this.#one().then(
        ({ status, body }) => (status === 200 ? void this.ok++ : void this.failures.push(`${new Date(sent).toISOString()} status ${status} ${body.slice(0, 300)}`)),
        (error: Error) => void this.failures.push(`${new Date(sent).toISOString()} ${error.message}`),
      );
      this.#pending.add(done);
      void done.finally(() => this.#pending.delete(done));
    }, 1000 / perSecond);
  }

  async stop(): Promise<void> {
    clearInterval(this.#timer);
    await Promise.all(this.#pending);
    this.#agent.destroy();
  }

  #one(): Promise<{ status: number; body: string }> {
    return new Promise((resolve, reject) => {
      const req = http.get(`${this.url}/api/v1/agents/acc/prometheus/api/v1/query?query=up`, { agent: this.#agent, headers: { authorization: `Bearer ${this.token}` } }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (body += chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        res.on('error', reject);
      });
      req.setTimeout(15_000, () => req.destroy(new Error('no answer in 15 s')));
      req.on('error', reject);
    });
  }
}

/** A watch that re-watches from its last resourceVersion whenever its stream ends, as informers do. */
class Watcher {
  cleanEnds = 0;
  resets: string[] = [];
  events = 0;
  #rv: string;
  #stopped = false;
  #request: http.ClientRequest | undefined;
  readonly url: string;
  readonly token: string;

  constructor(url: string, token: string, rv: string) {
    this.url = url;
    this.token = token;
    this.#rv = rv;
    void this.#loop();
  }

  async #loop(): Promise<void> {
    while (!this.#stopped) {
      await new Promise<void>((resolve) => {
        const req = http.get(`${this.url}?watch=1&resourceVersion=${this.#rv}`, { agent: false, headers: { authorization: `Bearer ${this.token}` } }, (res) => {
          if (res.statusCode !== 200) {
            this.resets.push(`status ${res.statusCode}`);
            res.resume();
            return void res.on('end', resolve);
          }
          let buffer = '';
          res.setEncoding('utf8');
          res.on('data', (chunk: string) => {
            buffer += chunk;
            let nl: number;
            while ((nl = buffer.indexOf('\n')) >= 0) {
              const line = buffer.slice(0, nl).trim();
              buffer = buffer.slice(nl + 1);
              if (!line) continue;
              const event = JSON.parse(line) as { object?: { metadata?: { resourceVersion?: string } } };
              if (event.object?.metadata?.resourceVersion) this.#rv = event.object.metadata.resourceVersion;
              this.events++;
            }
          });
          // A clean end (the chunked terminator) is how an API server ends a watch: re-watch.
          res.on('end', () => {
            if (!this.#stopped) this.cleanEnds++;
            resolve();
          });
          res.on('error', (error) => {
            if (!this.#stopped) this.resets.push(error.message);
            resolve();
          });
        });
        req.on('error', (error) => {
          if (!this.#stopped) this.resets.push(error.message);
          resolve();
        });
        this.#request = req;
      });
      if (!this.#stopped) await sleep(50);
    }
  }

  stop(): void {
    this.#stopped = true;
    this.#request?.destroy();
  }
}

describe('kas under restarts', () => {
  let cluster: KasCluster;
  let upstream: FakeUpstream;
  let sim: KubeSim;
  let agents: Balancer;
  let api: Balancer;
  let token: string;

  before(async () => {
    upstream = await startFakeUpstream();
    // Plain HTTP, as behind `kubectl proxy`: agentk sends no credentials there, as kubectl does not.
    sim = await startKubeSim({ token: 'sim-token', anonymous: true });
    cluster = await KasCluster.start({ nodes: 3, env: { KAS_DRAIN_TIMEOUT: '15s', LOG_LEVEL: 'info' } });
    const backend = (i: number, port: 'agentUrl' | 'apiUrl') => ({
      address: () => new URL(cluster.nodes[i]![port]).host,
      readinessUrl: () => `${cluster.nodes[i]!.observabilityUrl}/readiness`,
    });
    agents = await startBalancer([0, 1, 2].map((i) => backend(i, 'agentUrl')));
    api = await startBalancer([0, 1, 2].map((i) => backend(i, 'apiUrl')));
    const agentToken = await cluster.registerAgent('acc');
    const kubeconfig = `${cluster.dir}/kubeconfig`;
    await (await import('node:fs/promises')).writeFile(
      kubeconfig,
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'Config',
        clusters: [{ name: 'sim', cluster: { server: sim.url } }],
        contexts: [{ name: 'c', context: { cluster: 'sim' } }],
        'current-context': 'c',
      }),
    );
    const configYaml = `prometheus:\n  url: ${upstream.url}\nkubernetes:\n  kubeconfig: ${kubeconfig}\n`;
    for (const replica of ['acc-0', 'acc-1']) await cluster.startAgent({ id: 'acc', token: agentToken, replica, configYaml, kasUrl: agents.url('ws') });
    token = await cluster.issueToken();
    for (const node of [0, 1, 2]) await cluster.waitForReplicas('acc', 2, token, node);
  });

  after(async () => {
    await agents?.stop();
    await api?.stop();
    await cluster?.stop();
    await upstream?.stop();
    await sim?.stop();
  });

  test('a rolling restart of every node: no request fails, every stream kas ends ends cleanly, every node exits 0', async (t) => {
    const load = new Load(api.url('http'), token);
    const watchUrl = `${api.url('http')}/api/v1/agents/acc/kubernetes/api/v1/namespaces/roll/pods`;
    const watchers = [1, 2, 3, 4].map(() => new Watcher(watchUrl, token, sim.api.resourceVersion()));
    const churn = setInterval(() => sim.api.apply('pods', makePod({ name: `p-${Date.now() % 5}`, namespace: 'roll' })), 200);
    load.start(100);
    const exits: ExitStatus[] = [];
    const drains: number[] = [];
    try {
      await sleep(2_000);
      for (const index of [0, 1, 2]) {
        const started = Date.now();
        await cluster.restartNode(index, { graceMs: 20_000, onExit: (status) => (exits.push(status), drains.push(Date.now() - started)) });
        assert.ok(Date.now() - started < 20_000, `node ${index} drained within KAS_DRAIN_TIMEOUT`);
        for (const node of [0, 1, 2]) await cluster.waitForReplicas('acc', 2, token, node);
        await sleep(1_500);
      }
      await sleep(1_000);
    } finally {
      clearInterval(churn);
      await load.stop();
      for (const watcher of watchers) watcher.stop();
    }
    assert.deepEqual(exits.map((e) => e.code), [0, 0, 0], 'every node exited 0');
    assert.deepEqual(load.failures, [], `${load.failures.length} of ${load.ok + load.failures.length} requests failed`);
    assert.ok(load.ok > 1_000, `requests answered: ${load.ok}`);
    for (const watcher of watchers) {
      assert.deepEqual(watcher.resets, [], `no watch stream was cut (${watcher.cleanEnds} ended cleanly)`);
      assert.ok(watcher.events > 10, `the watch kept seeing changes (${watcher.events})`);
    }
    const cleanEnds = watchers.reduce((a, w) => a + w.cleanEnds, 0);
    assert.ok(cleanEnds >= 1, `watches that kas ended, cleanly: ${cleanEnds}`);
    t.diagnostic(
      `rolling restart of 3 nodes: ${load.ok} requests answered, ${load.failures.length} failed; ${watchers.length} watches saw ` +
        `${watchers.reduce((a, w) => a + w.events, 0)} events, ${cleanEnds} streams ended cleanly by kas, ${watchers.reduce((a, w) => a + w.resets.length, 0)} cut; ` +
        `drains took ${drains.map((d) => `${(d / 1000).toFixed(1)} s`).join(', ')}; exit codes ${exits.map((e) => e.code).join(', ')}`,
    );
  });

  test('a node killed (SIGKILL): requests succeed again within 5 s, and no other node lists its replicas after 5 s', async (t) => {
    const load = new Load(api.url('http'), token);
    load.start(100);
    const victim = cluster.nodes[1]!;
    const killedAt = Date.now();
    await victim.proc.kill();
    await sleep(5_000);
    const failuresBy5s = load.failures.length;
    await sleep(3_000);
    await load.stop();
    const late = load.failures.slice(failuresBy5s);
    assert.deepEqual(late, [], `requests failed more than 5 s after the kill (${failuresBy5s} before)`);
    const lastFailure = load.failures.at(-1)?.slice(0, 24);
    t.diagnostic(
      `SIGKILL of one node: ${load.failures.length} of ${load.ok + load.failures.length} requests failed, the last ` +
        `${lastFailure ? `${((Date.parse(lastFailure) - killedAt) / 1000).toFixed(1)} s after the kill` : '(none)'}`,
    );
    for (const node of [0, 2]) {
      const listed = await (await cluster.fetch(node, '/api/v1/agents/acc', { token })).json() as { replicas: { node: string }[] };
      assert.ok(listed.replicas.every((r) => r.node !== victim.name), `${cluster.nodes[node]!.name} no longer lists replicas on ${victim.name}`);
    }
    assert.ok(Date.now() - killedAt < 15_000);
    await cluster.restartNode(1);
    for (const node of [0, 1, 2]) await cluster.waitForReplicas('acc', 2, token, node);
  });

  test('Redis restarted under load: cross-node requests are back within 5 s, and a node started while Redis was down joins when it returns', async (t) => {
    const load = new Load(api.url('http'), token);
    load.start(100);
    await sleep(1_000);
    const redisDown = cluster.redis!.restart(3_000);
    await sleep(1_000);
    // A node that starts while Redis is away waits, not ready, and joins once it is back.
    const late = cluster.addNode().catch((error: Error) => error);
    await redisDown;
    const backAt = Date.now();
    const joined = await late;
    assert.ok(!(joined instanceof Error), `the late node became ready: ${joined instanceof Error ? joined.message : ''}`);
    await sleep(5_000);
    const failuresBy5s = load.failures.length;
    await sleep(3_000);
    await load.stop();
    assert.deepEqual(load.failures.slice(failuresBy5s), [], `requests failing more than 5 s after Redis returned (${failuresBy5s} before)`);
    t.diagnostic(`Redis restarted (3 s down): ${load.failures.length} of ${load.ok + load.failures.length} requests failed ${JSON.stringify(load.failures.slice(0, 3))}`);
    // Every node, the late one included, routes to the agent again.
    for (let node = 0; node < cluster.nodes.length; node++) {
      const res = await cluster.fetch(node, '/api/v1/agents/acc/prometheus/api/v1/query?query=up', { token });
      assert.equal(res.status, 200, `${cluster.nodes[node]!.name}: ${await res.text()}`);
    }
    assert.ok(Date.now() - backAt < 30_000);
    assert.ok((await metricSum(cluster.nodes[0]!.observabilityUrl, 'kas_ready')) === 1);
  });
});
