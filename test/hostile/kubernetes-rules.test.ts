// kas's Kubernetes allow-list and agentk's policy read a path the same way (protocol/kubernetes.ts),
// so they refuse the same tricks: subresources compared exactly (`EXEC`, `exec;x` and `log/extra`
// are not reads they know), and segments that are still percent-encoded after one decoding
// (`%252e`, `%2565xec`) refused at any depth. Each path here is tried on both: kas must refuse it
// before it leaves, and agentk must refuse it too should a kas (an older one, say) send it on.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { DEFAULT_KUBERNETES_POLICY, policyRefusal } from '../../agent/modules/kubernetes/policy.ts';
import { checkKubernetesRequest } from '../../server/modules/kubernetes/allowList.ts';
import { KasError } from '../../server/routing/errors.ts';

const pod = '/api/v1/namespaces/x/pods/y';

const REFUSED: [path: string, kasSays: RegExp, agentkSays: RegExp][] = [
  [`${pod}/exec`, /not a read/, /never serves exec/],
  [`${pod}/EXEC`, /not a read/, /never serves exec/],
  [`${pod}/Exec`, /not a read/, /never serves exec/],
  [`${pod}/exec;x`, /not a read/, /never serves exec/],
  [`${pod}/exec%3bx`, /not a read/, /never serves exec/],
  [`${pod}/execute`, /not a read/, /never serves exec/],
  [`${pod}/ATTACH`, /not a read/, /never serves exec/],
  [`${pod}/PortForward`, /not a read/, /never serves exec/],
  [`${pod}/portforward;ports=80`, /not a read/, /never serves exec/],
  ['/api/v1/namespaces/x/services/y/PROXY', /not a read/, /never serves exec/],
  ['/api/v1/namespaces/x/services/y:80/Proxy/admin', /not a read/, /never serves exec/],
  ['/api/v1/PROXY/namespaces/x/pods/y', /not a read/, /never serves exec/],
  ['/api/v1/namespaces/x/Proxy', /not a read/, /never serves exec/],
  [`${pod}/LOG`, /subresources it lets through are log, status, scale/, /serves only the log, status, scale subresources/],
  [`${pod}/Log`, /subresources it lets through/, /serves only the log/],
  [`${pod}/log;x`, /subresources it lets through/, /serves only the log/],
  [`${pod}/log%3b`, /subresources it lets through/, /serves only the log/],
  [`${pod}/log/extra`, /subresources it lets through/, /serves only the log/],
  [`${pod}/status/x`, /subresources it lets through/, /serves only the log/],
  [`${pod}/binding`, /subresources it lets through/, /serves only the log/],
  [`${pod}/eviction`, /subresources it lets through/, /serves only the log/],
  [`${pod}/ephemeralcontainers`, /subresources it lets through/, /serves only the log/],
  ['/api/v1/namespaces/x/serviceaccounts/default/token', /subresources it lets through/, /serves only the log/],
  [`${pod}/%2565xec`, /more than once/, /more than once/],
  [`${pod}/%25252565xec`, /more than once/, /more than once/],
  [`${pod}%252fexec`, /more than once/, /more than once/],
  [`${pod}/%252e%252e/%252e%252e/exec`, /more than once/, /more than once/],
  ['/api/v1/namespaces/%2578/pods', /more than once/, /more than once/],
  ['/api/v1/namespaces/x/pods/%25', /more than once/, /more than once/],
  ['/api/%2576%2531/pods', /more than once/, /more than once/],
  ['/apis/apps/v1/namespaces/x/deployments/d/%2573cale', /more than once/, /more than once/],
];

const ALLOWED = [
  `${pod}/log`,
  `${pod}/status`,
  '/apis/apps/v1/namespaces/x/deployments/d/scale',
  '/api/v1/namespaces/x/status',
  '/api/v1/namespaces/watch/pods',
  '/api/v1/namespaces/x/pods/exec',
  '/api/v1/namespaces/x/pods/exec/log',
  '/api/v1/namespaces/exec/pods/proxy/log',
  `${pod}/%6cog`,
  '/api/v1/namespaces/x/pods/y%3bexec',
];

describe('hostile Kubernetes paths', () => {
  for (const [path, kasSays, agentkSays] of REFUSED) {
    test(`${path}: refused by kas and by agentk`, () => {
      assert.throws(
        () => checkKubernetesRequest({ method: 'GET', rawPath: path, query: '', headers: {} }),
        (error: unknown) => error instanceof KasError && error.status === 403 && kasSays.test(error.message),
        `kas on ${path}`,
      );
      const refusal = policyRefusal(DEFAULT_KUBERNETES_POLICY, 'GET', path);
      assert.ok(refusal, `agentk let ${path} through`);
      assert.match(refusal, agentkSays, path);
    });
  }

  for (const path of ALLOWED) {
    test(`${path}: a read both let through, as the same path`, () => {
      const checked = checkKubernetesRequest({ method: 'GET', rawPath: path, query: '', headers: {} });
      assert.equal(policyRefusal(DEFAULT_KUBERNETES_POLICY, 'GET', checked.path), undefined, `agentk refused ${checked.path}`);
    });
  }

  test('a namespace called watch is a namespace, not a watch', () => {
    assert.equal(checkKubernetesRequest({ method: 'GET', rawPath: '/api/v1/namespaces/watch/pods', query: '', headers: {} }).streaming, false);
    assert.equal(checkKubernetesRequest({ method: 'GET', rawPath: '/api/v1/watch/namespaces/watch/pods', query: '', headers: {} }).streaming, true);
  });
});
