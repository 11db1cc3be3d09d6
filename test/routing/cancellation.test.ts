// A caller that goes away cancels its request all the way down: the agent aborts the upstream
// request instead of reading an answer nobody will receive, whether or not the caller reached
// the node that holds the agent.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { after, before, describe, test } from 'node:test';
import { KasCluster } from '../support/kas.ts';
import { openResponse, startRequest } from '../support/rawHttp.ts';
import { startFakeUpstream, type FakeUpstream, type UpstreamRequest } from '../support/upstream.ts';

const BIG_BYTES = 100 * 1024 * 1024;

describe('a caller that disconnects', () => {
  let cluster: KasCluster;
  let upstream: FakeUpstream;
  let token: string;

  before(async () => {
    [cluster, upstream] = await Promise.all([KasCluster.start({ nodes: 2 }), startFakeUpstream()]);
    token = await cluster.issueToken({ agents: ['near', 'far'] });
    // Callers always talk to kas-0: "near" is connected there, "far" to kas-1.
    const nearToken = await cluster.registerAgent('near');
    const farToken = await cluster.registerAgent('far');
    await Promise.all([
      cluster.startAgent({ id: 'near', token: nearToken, node: 0, prometheusUrl: upstream.url }),
      cluster.startAgent({ id: 'far', token: farToken, node: 1, prometheusUrl: upstream.url }),
    ]);
    await cluster.waitForReplicas('near', 1, token, 0);
    await cluster.waitForReplicas('far', 1, token, 0);
  });
  after(async () => {
    await cluster?.stop();
    await upstream?.stop();
  });

  const url = (agentId: string, params: string) =>
    `${cluster.nodes[0]!.apiUrl}/api/v1/agents/${agentId}/prometheus/api/v1/query?${params}`;
  const auth = () => ({ authorization: `Bearer ${token}` });
  const tagged = (tag: string) => (r: UpstreamRequest) => r.params.get('case') === tag;

  for (const [where, agentId] of [
    ['on the node holding the agent', 'near'],
    ['on another node than the agent', 'far'],
  ] as const) {
    test(`mid-response, ${where}, aborts the upstream request`, async () => {
      const tag = `mid-${agentId}`;
      const { req, res } = await openResponse(url(agentId, `query=big&bytes=${BIG_BYTES}&case=${tag}`), { headers: auth() });
      assert.equal(res.statusCode, 200);
      const [first] = (await once(res, 'data')) as [Buffer];
      assert.ok(first.byteLength > 0, 'the first bytes arrived');
      req.destroy();
      const aborted = await upstream.waitForAbort(10_000, tagged(tag));
      assert.ok(aborted.bytesWritten < BIG_BYTES, `the upstream stopped after ${aborted.bytesWritten} bytes`);
    });

    test(`before the answer began, ${where}, aborts the upstream request`, async () => {
      const tag = `early-${agentId}`;
      // The upstream takes 30 s to answer: the caller leaves long before that.
      const { req, response } = startRequest(url(agentId, `query=slow&ms=30000&case=${tag}`), { headers: auth() });
      response.catch(() => undefined); // destroying the request rejects it, as intended
      const request = await upstream.waitForRequest(tagged(tag));
      assert.equal(request.outcome, 'pending');
      req.destroy();
      const aborted = await upstream.waitForAbort(10_000, tagged(tag));
      assert.equal(aborted.bytesWritten, 0, 'the upstream never answered');
    });
  }
});
