// The corpus of hostile inputs (test/hostile/corpus/, one file per family) against real kas
// processes: every case written as raw bytes and its answer checked against what the case says
// kas must answer (status and the body's language or a pattern, or a closed connection), and
// that nothing it refused reached an upstream. Families that share a node run in turn (the
// upstreams' logs tell what reached them); the nodes run side by side.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { io as ioClient } from 'socket.io-client';
import { PROTOCOL_VERSION } from '../../protocol/messages.ts';
import { RATE_LIMITED_PREFIX } from '../../protocol/messages.ts';
import { FULL_LINES_PER_KIND, SUMMARY_INTERVAL_MS } from '../../server/tunnel/logThrottle.ts';
import { metricSum } from '../support/metrics.ts';
import { waitFor } from '../support/procs.ts';
import type { HttpCase } from './corpus/case.ts';
import { agentPortHandshakeCases, agentPortHttpCases } from './corpus/agentPort.ts';
import { headerCases } from './corpus/headers.ts';
import { methodCases } from './corpus/methods.ts';
import { pathCases } from './corpus/paths.ts';
import { privateCases } from './corpus/private.ts';
import { tokenCases } from './corpus/tokens.ts';
import { rogueCases } from './corpus/rogueAgent.ts';
import { RogueAgent } from './rogue.ts';
import { expand, runCase, runHandshakeCase, runRogueCase } from './runner.ts';
import { KasCluster } from '../support/kas.ts';
import { startHostileTarget, type HostileTarget } from './target.ts';

/** Short bounds, so that the slow cases (a body that never ends) are answered quickly. */
const ENV = { KAS_HEADER_TIMEOUT: '1s', KAS_BODY_TIMEOUT: '1s', KAS_REQUEST_TIMEOUT: '5s', KAS_AGENT_CONNECT_RATE: '100' };

/** Registers a family's runs: the quick ones in turn, then the slow ones side by side. */
function family(name: string, cases: readonly HttpCase[], target: () => HostileTarget): void {
  const runs = expand(cases);
  describe(`${name} (${runs.length} cases)`, { concurrency: 1 }, () => {
    for (const { c, path, title } of runs.filter((r) => !r.c.slow)) {
      test(title, () => runCase(target(), c, path));
    }
    const slow = runs.filter((r) => r.c.slow);
    if (slow.length > 0) {
      test(`${slow.length} slow cases side by side`, async () => {
        const before = target().mark();
        const failures: string[] = [];
        await Promise.all(
          slow.map(({ c, path, title }) =>
            runCase(target(), c, path).catch((error: Error) => {
              failures.push(`${title}: ${error.message}`);
            }),
          ),
        );
        assert.deepEqual(failures, []);
        assert.deepEqual(target().headersSince(before), [], 'none of them reached an upstream');
      });
    }
  });
}

describe('hostile input', { concurrency: true }, () => {
  describe('on the API port: tokens, paths, methods', { concurrency: 1 }, () => {
    let target: HostileTarget;
    before(async () => (target = await startHostileTarget({ env: ENV })));
    after(async () => target?.stop());
    family('forged and mangled API tokens', tokenCases, () => target);
    family('path tricks', pathCases, () => target);
    family('methods, overrides and upgrades', methodCases, () => target);
    test('the node is still up and serving', async () => assertServing(target));
  });

  describe('on the API and private ports: sizes, smuggling, spoofing, kas-to-kas', { concurrency: 1 }, () => {
    let target: HostileTarget;
    before(async () => (target = await startHostileTarget({ env: ENV })));
    after(async () => target?.stop());
    family('header and body sizes, smuggling, Host and X-Forwarded-* spoofing, hop-by-hop headers', headerCases, () => target);
    family('the private port', privateCases, () => target);
    test('the node is still up and serving', async () => assertServing(target));
  });

  describe('on the agent port', { concurrency: 1 }, () => {
    let target: HostileTarget;
    let probeToken: string;
    before(async () => {
      target = await startHostileTarget({ env: ENV });
      probeToken = await target.cluster.registerAgent('probe');
    });
    after(async () => target?.stop());
    family('plain HTTP and broken upgrades', agentPortHttpCases, () => target);
    describe(`handshakes and what follows them (${agentPortHandshakeCases.length} cases)`, { concurrency: 1 }, () => {
      for (const c of agentPortHandshakeCases) {
        test(c.name, () => runHandshakeCase(target.node.agentUrl, c, { agentToken: probeToken, apiToken: target.token }));
      }
    });
    test('a storm of 300 bogus handshakes at once: refused for rate beyond KAS_AGENT_CONNECT_RATE, the rest as unauthorized, counted, logged within a budget; agents and callers are still served', async () => {
      const since = new Date().toISOString();
      const metrics = target.node.observabilityUrl;
      const before = { rate: await metricSum(metrics, 'kas_limit_refusals_total', { limit: 'agent_connect_rate' }), unauthorized: await metricSum(metrics, 'kas_agent_connections_refused_total', { reason: 'unauthorized' }) };
      const stormStarted = performance.now();
      const outcomes = await attempts(target.node.agentUrl, 300, () => ({ token: `kasat_${'Z'.repeat(43)}`, replica: 'storm' }));
      const stormSeconds = (performance.now() - stormStarted) / 1000;
      assert.equal(outcomes.connected, 0);
      assert.equal(outcomes.other, 0, JSON.stringify(outcomes));
      // The node's bucket holds 100 (KAS_AGENT_CONNECT_RATE) and refills at 100 a second while the
      // storm lasts: the rest of the 300 are refused for rate before their tokens are looked at.
      const admitted = 100 + Math.ceil(100 * stormSeconds);
      assert.ok(outcomes.rateLimited >= 1 && outcomes.unauthorized <= admitted, `${JSON.stringify(outcomes)} in ${stormSeconds.toFixed(2)} s`);
      assert.equal(outcomes.rateLimited + outcomes.unauthorized, 300);
      await waitFor(async () => (await metricSum(metrics, 'kas_limit_refusals_total', { limit: 'agent_connect_rate' })) - before.rate === outcomes.rateLimited, { what: 'the rate refusals counted' });
      assert.equal((await metricSum(metrics, 'kas_agent_connections_refused_total', { reason: 'unauthorized' })) - before.unauthorized, outcomes.unauthorized);
      const lines = linesOf(target, since, (e) => String(e.msg).startsWith('refused an agent connection'));
      assert.ok(lines <= 2 * FULL_LINES_PER_KIND, `${lines} log lines for 300 refusals`);
      await assertServing(target);
      assert.ok(target.good.proc.output().match(/connected to kas"/g)!.length === 1, 'the agent stayed connected all along');
    });

    test('connections with one agent token past KAS_AGENT_CONNECT_RATE_PER_AGENT are refused for rate, and agentk backs off and connects once they stop', async () => {
      const auth = () => ({ token: probeToken, replica: `probe-${Math.random()}`, capabilities: ['prometheus'] });
      const burst = await attempts(target.node.agentUrl, 12, auth);
      assert.ok(burst.connected >= 1 && burst.connected <= 6, JSON.stringify(burst));
      assert.equal(burst.rateLimited, 12 - burst.connected, JSON.stringify(burst));
      // Keep the agent's bucket empty while a real agentk starts: it is refused, backs off, retries.
      let storming = true;
      const storm = (async () => {
        while (storming) await attempts(target.node.agentUrl, 3, auth);
      })();
      const agentk = await target.cluster.startAgent({ id: 'probe', token: probeToken, prometheusUrl: target.prometheus.url, waitConnected: false, env: { LOG_LEVEL: 'info' } });
      try {
        await agentk.proc.waitForLine((line) => line.includes('kas is taking agents at a limited rate') && line.includes('rate limited'), 15_000);
        storming = false;
        await storm;
        await agentk.proc.waitForLine(/connected to kas"/, 15_000);
      } finally {
        storming = false;
        await agentk.proc.stop();
      }
    });

    test('the node is still up and serving', async () => assertServing(target));
  });

  describe('a registered agent that misbehaves (two nodes: through the one holding it, and forwarded)', { concurrency: 1 }, () => {
    let cluster: KasCluster;
    let rogue: RogueAgent;
    let token: string;
    before(async () => {
      cluster = await KasCluster.start({ nodes: 2, env: { KAS_REQUEST_TIMEOUT: '2s', LOG_LEVEL: 'info' } });
      const rogueToken = await cluster.registerAgent('rogue');
      token = await cluster.issueToken({ agents: ['rogue'] });
      rogue = await RogueAgent.connect(cluster.nodes[0]!.agentUrl, rogueToken, 'rogue-0');
      await cluster.waitForReplicas('rogue', 1, token, 1);
    });
    after(async () => {
      rogue?.close();
      await cluster?.stop();
    });
    describe(`its answers (${rogueCases.length * 2} cases, side by side)`, { concurrency: true }, () => {
      rogueCases.forEach((c, i) => {
        for (const [via, node] of [['its node', 0], ['forwarded', 1]] as const) {
          test(`${c.name} — ${via}`, () => runRogueCase(Number(new URL(cluster.nodes[node]!.apiUrl).port), rogue, c, `${i}-${node}`, token));
        }
      });
    });
    test('60,000 unsolicited messages: every one counted, a handful of log lines, then one summary for the interval', async () => {
      const node = cluster.nodes[0]!;
      const since = new Date().toISOString();
      const before = await metricSum(node.observabilityUrl, 'kas_agent_messages_dropped_total', { kind: 'unknown_request' });
      for (let i = 0; i < 60_000; i += 64) rogue.send(Array.from({ length: Math.min(64, 60_000 - i) }, (_, j) => ({ type: 'end', id: 900_000_000 + i + j })));
      await waitFor(async () => (await metricSum(node.observabilityUrl, 'kas_agent_messages_dropped_total', { kind: 'unknown_request' })) - before === 60_000, { timeoutMs: 20_000, what: '60,000 unsolicited messages counted' });
      // kas logs asynchronously: its lines may reach its output after the counter is read.
      const lines = () => linesOf({ node }, since, (e) => e.msg === 'agent answered a request it was not sent');
      await waitFor(() => lines() >= 1, { what: 'the first of them logged in full' });
      // The rest are in the interval's summary (one line per interval per agent), naming the agent.
      const summarised = () => {
        let total = 0;
        for (const line of node.proc.output().split('\n')) {
          try {
            const entry = JSON.parse(line) as { time: string; msg: string; agent_id?: string; counts?: Record<string, number> };
            if (entry.time >= since && entry.msg.startsWith('agent messages kas dropped or refused') && entry.agent_id === 'rogue') total += entry.counts?.unknown_request ?? 0;
          } catch {
            // not a log line
          }
        }
        return total;
      };
      await waitFor(() => summarised() === 60_000, { timeoutMs: SUMMARY_INTERVAL_MS + 5_000, what: `summaries that account for the 60,000 (${summarised()} so far)` });
      assert.ok(lines() <= FULL_LINES_PER_KIND, `${lines()} lines for 60,000 messages`);
      assert.equal(cluster.nodes[0]!.proc.exitStatus, undefined);
    });

    test('both nodes are still up', () => {
      for (const node of cluster.nodes) assert.equal(node.proc.exitStatus, undefined, node.proc.describe());
    });
  });
});

/** Lines a node logged since `since` that match. */
function linesOf(target: Pick<HostileTarget, 'node'>, since: string, match: (entry: Record<string, unknown>) => boolean): number {
  let count = 0;
  for (const line of target.node.proc.output().split('\n')) {
    try {
      const entry = JSON.parse(line) as Record<string, unknown>;
      if (String(entry.time) >= since && match(entry)) count++;
    } catch {
      // not a log line
    }
  }
  return count;
}

/** `count` socket.io handshakes at once; how each ended. */
async function attempts(agentUrl: string, count: number, auth: () => Record<string, unknown>): Promise<{ connected: number; rateLimited: number; unauthorized: number; other: number }> {
  const outcomes = { connected: 0, rateLimited: 0, unauthorized: 0, other: 0 };
  await Promise.all(
    Array.from({ length: count }, async () => {
      const socket = ioClient(agentUrl, { transports: ['websocket'], reconnection: false, forceNew: true, timeout: 10_000, auth: { version: 'storm', protocol: PROTOCOL_VERSION, ...auth() } });
      const outcome = await new Promise<string>((resolve) => {
        socket.once('connect', () => resolve('connected'));
        socket.once('connect_error', (error) => resolve(error.message));
      });
      socket.close();
      if (outcome === 'connected') outcomes.connected++;
      else if (outcome.startsWith(RATE_LIMITED_PREFIX)) outcomes.rateLimited++;
      else if (outcome === 'unauthorized') outcomes.unauthorized++;
      else outcomes.other++;
    }),
  );
  return outcomes;
}

async function assertServing(target: HostileTarget): Promise<void> {
  assert.equal(target.node.proc.exitStatus, undefined, `kas died\n${target.node.proc.describe()}`);
  const res = await fetch(`${target.node.apiUrl}/api/v1/agents/good/prometheus/api/v1/query?query=up`, { headers: { authorization: `Bearer ${target.token}` } });
  assert.equal(res.status, 200, await res.text());
}
