// The registry without the network: which replica a request goes to, and how the cluster's view
// is kept current when a snapshot read from Redis races with newer announcements.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { AgentRegistry, type ReplicaInfo } from '../../server/routing/registry.ts';
import type { TunnelConnection } from '../../server/tunnel/agentConnection.ts';

const replica = (agentId: string, key: string, node: string, capabilities: ReplicaInfo['capabilities'] = ['prometheus']): ReplicaInfo => ({
  agentId,
  key,
  replica: `${agentId}-${key}`,
  node,
  nodeUrl: `http://${node}:8155`,
  connectedAt: '2026-12-02T00:00:00.000Z',
  version: 'test',
  capabilities,
});

/** A connection that never carries anything: the registry only reads its info and whether it is open. */
function connection(info: ReplicaInfo, open = true): TunnelConnection & { isOpen: boolean; draining: boolean } {
  return {
    info,
    isOpen: open,
    draining: false,
    inFlight: 0,
    open: () => assert.fail('the registry opens no streams'),
    drain: () => undefined,
    disconnect: () => undefined,
  };
}

const picked = (registry: AgentRegistry, agentId: string, times: number, exclude?: Set<string>) =>
  Array.from({ length: times }, () => {
    const route = registry.pick(agentId, 'prometheus', exclude);
    return route === undefined ? 'none' : route.kind === 'local' ? `local:${route.connection.info.key}` : `remote:${route.replica.key}`;
  });

describe('picking a replica', () => {
  test('a local replica is preferred to remote ones; several local ones take turns', () => {
    const registry = new AgentRegistry('kas-0');
    registry.addRemote(replica('a', 'r1', 'kas-1'));
    registry.addLocal(connection(replica('a', 'l1', 'kas-0')));
    registry.addLocal(connection(replica('a', 'l2', 'kas-0')));
    const routes = picked(registry, 'a', 6);
    assert.deepEqual(new Set(routes), new Set(['local:l1', 'local:l2']));
    assert.equal(routes.filter((r) => r === 'local:l1').length, 3, `turns: ${routes.join(' ')}`);
  });

  test('with no local replica, the remote ones take turns; excluded and closed ones are skipped', () => {
    const registry = new AgentRegistry('kas-0');
    registry.addRemote(replica('a', 'r1', 'kas-1'));
    registry.addRemote(replica('a', 'r2', 'kas-2'));
    assert.deepEqual(new Set(picked(registry, 'a', 4)), new Set(['remote:r1', 'remote:r2']));
    assert.deepEqual(new Set(picked(registry, 'a', 4, new Set(['r1']))), new Set(['remote:r2']));
    const closed = connection(replica('a', 'l1', 'kas-0'), false);
    registry.addLocal(closed);
    assert.ok(picked(registry, 'a', 4).every((r) => r.startsWith('remote:')), 'a closed local connection is not used');
    closed.isOpen = true;
    assert.deepEqual(new Set(picked(registry, 'a', 2)), new Set(['local:l1']));
    closed.draining = true;
    assert.ok(picked(registry, 'a', 4).every((r) => r.startsWith('remote:')), 'a draining connection takes nothing new');
  });

  test('only replicas offering the upstream are picked; none at all is undefined', () => {
    const registry = new AgentRegistry('kas-0');
    registry.addLocal(connection(replica('a', 'l1', 'kas-0', ['kubernetes'])));
    assert.equal(registry.pick('a', 'prometheus'), undefined);
    assert.equal(registry.pick('a', 'kubernetes')?.kind, 'local');
    assert.equal(registry.pick('nobody', 'prometheus'), undefined);
  });

  test('a node a forward could not reach is routed around', () => {
    const registry = new AgentRegistry('kas-0');
    registry.addRemote(replica('a', 'r1', 'kas-1'));
    registry.addRemote(replica('a', 'r2', 'kas-2'));
    registry.suspectNode('kas-1');
    assert.deepEqual(new Set(picked(registry, 'a', 4)), new Set(['remote:r2']));
    // Membership saying the node is there again clears the suspicion.
    registry.addRemote(replica('a', 'r3', 'kas-1'));
    assert.ok(picked(registry, 'a', 6).some((r) => r === 'remote:r1'));
  });

  test('the same route object comes back for the same replica: picking allocates no route', () => {
    const registry = new AgentRegistry('kas-0');
    registry.addRemote(replica('a', 'r1', 'kas-1'));
    assert.equal(registry.pick('a', 'prometheus'), registry.pick('a', 'prometheus'));
    registry.addLocal(connection(replica('a', 'l1', 'kas-0')));
    assert.equal(registry.pick('a', 'prometheus'), registry.pick('a', 'prometheus'));
  });
});

describe("the cluster's view", () => {
  test("a node's own replicas are never remote, and a node going down takes its replicas with it", () => {
    const registry = new AgentRegistry('kas-0');
    registry.addRemote(replica('a', 'self', 'kas-0'));
    assert.deepEqual(registry.replicas('a'), []);
    registry.addRemote(replica('a', 'r1', 'kas-1'));
    registry.addRemote(replica('b', 'r2', 'kas-1'));
    registry.addRemote(replica('b', 'r3', 'kas-2'));
    registry.removeNode('kas-1');
    assert.deepEqual(registry.agentIds(), ['b']);
    assert.deepEqual(registry.replicas('b').map((r) => r.key), ['r3']);
  });

  test('a snapshot replaces the view, but announcements newer than the read win', async () => {
    const registry = new AgentRegistry('kas-0');
    registry.addRemote(replica('a', 'stale', 'kas-1')); // gone from Redis: the snapshot drops it
    await new Promise((r) => setTimeout(r, 5)); // the registry's clock is in milliseconds
    const readStartedAt = Date.now();
    // While the snapshot was being read: one replica left, another arrived.
    registry.addRemote(replica('a', 'left', 'kas-1'));
    registry.removeRemote('a', 'left');
    registry.addRemote(replica('a', 'arrived', 'kas-2'));
    registry.applySnapshot([replica('a', 'left', 'kas-1'), replica('a', 'kept', 'kas-1')], readStartedAt);
    assert.deepEqual(registry.replicas('a').map((r) => r.key).sort(), ['arrived', 'kept']);
  });

  test('waiting for an agent ends when a replica arrives anywhere, or when the wait is aborted', async () => {
    const registry = new AgentRegistry('kas-0');
    const local = registry.waitForArrival('a', AbortSignal.timeout(5000));
    registry.addLocal(connection(replica('a', 'l1', 'kas-0')));
    await local;
    const remote = registry.waitForArrival('b', AbortSignal.timeout(5000));
    registry.addRemote(replica('b', 'r1', 'kas-1'));
    await remote;
    const controller = new AbortController();
    const aborted = registry.waitForArrival('c', controller.signal);
    controller.abort(new Error('caller went away'));
    await assert.rejects(aborted, /caller went away/);
  });
});
