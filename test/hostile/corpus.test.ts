// The corpus of hostile inputs (test/hostile/corpus/, one file per family) against real kas
// processes: every case written as raw bytes and its answer checked against what the case says
// kas must answer (status and the body's language or a pattern, or a closed connection), and
// that nothing it refused reached an upstream. Families that share a node run in turn (the
// upstreams' logs tell what reached them); the nodes run side by side.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { HttpCase } from './corpus/case.ts';
import { headerCases } from './corpus/headers.ts';
import { methodCases } from './corpus/methods.ts';
import { pathCases } from './corpus/paths.ts';
import { privateCases } from './corpus/private.ts';
import { tokenCases } from './corpus/tokens.ts';
import { expand, runCase } from './runner.ts';
import { startHostileTarget, type HostileTarget } from './target.ts';

/** Short bounds, so that the slow cases (a body that never ends) are answered quickly. */
const ENV = { KAS_HEADER_TIMEOUT: '1s', KAS_BODY_TIMEOUT: '1s', KAS_REQUEST_TIMEOUT: '5s' };

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
});

async function assertServing(target: HostileTarget): Promise<void> {
  assert.equal(target.node.proc.exitStatus, undefined, `kas died\n${target.node.proc.describe()}`);
  const res = await fetch(`${target.node.apiUrl}/api/v1/agents/good/prometheus/api/v1/query?query=up`, { headers: { authorization: `Bearer ${target.token}` } });
  assert.equal(res.status, 200, await res.text());
}
