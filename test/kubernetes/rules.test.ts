// The rules both sides apply to Kubernetes requests: kas's read-only allow-list and agentk's
// policy. Pure functions, so every case is cheap to state; the end-to-end tests show the same
// answers reaching kubectl.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { isKubernetesStream, readKubernetesPath } from '../../protocol/kubernetes.ts';
import { KasError } from '../../server/routing/errors.ts';
import { checkKubernetesRequest } from '../../server/modules/kubernetes/allowList.ts';
import { DEFAULT_KUBERNETES_POLICY, policyRefusal } from '../../agent/modules/kubernetes/policy.ts';
import { KubernetesPolicySchema } from '../../agent/modules/kubernetes/policySchema.ts';
import { withIdleKeepalive } from '../../agent/modules/kubernetes/agent.ts';

const seg = (path: string) => path.split('/').filter(Boolean);

describe('Kubernetes path reading', () => {
  test('discovery, resources, namespaced resources and subresources', () => {
    assert.deepEqual(readKubernetesPath(seg('version')), { kind: 'discovery', path: '/version' });
    assert.equal(readKubernetesPath(seg('api')).kind, 'discovery');
    assert.equal(readKubernetesPath(seg('api/v1')).kind, 'discovery');
    assert.equal(readKubernetesPath(seg('apis/apps/v1')).kind, 'discovery');
    assert.equal(readKubernetesPath(seg('openapi/v3/api/v1')).kind, 'discovery');
    assert.equal(readKubernetesPath(seg('logs/kube-apiserver.log')).kind, 'other');
    assert.equal(readKubernetesPath(seg('metrics')).kind, 'other');
    assert.deepEqual(readKubernetesPath(seg('api/v1/namespaces/x/pods/y/log')), {
      kind: 'resource', group: '', version: 'v1', namespace: 'x', resource: 'pods', name: 'y', subresource: 'log', watchPrefix: false,
    });
    assert.deepEqual(readKubernetesPath(seg('apis/apps/v1/namespaces/x/deployments')), {
      kind: 'resource', group: 'apps', version: 'v1', namespace: 'x', resource: 'deployments', name: undefined, subresource: undefined, watchPrefix: false,
    });
    const ns = readKubernetesPath(seg('api/v1/namespaces/x'));
    assert.equal(ns.kind === 'resource' && `${ns.resource}/${ns.name}/${ns.namespace}`, 'namespaces/x/undefined');
    const status = readKubernetesPath(seg('api/v1/namespaces/x/status'));
    assert.equal(status.kind === 'resource' && `${status.resource}/${status.subresource}`, 'namespaces/status');
    const watch = readKubernetesPath(seg('api/v1/watch/namespaces/x/pods'));
    assert.equal(watch.kind === 'resource' && watch.watchPrefix && watch.namespace, 'x');
  });

  test('streams: watch=1/true, the /watch/ prefix, log follow', () => {
    const pods = readKubernetesPath(seg('api/v1/pods'));
    const log = readKubernetesPath(seg('api/v1/namespaces/x/pods/y/log'));
    assert.equal(isKubernetesStream(pods, new URLSearchParams('watch=1')), true);
    assert.equal(isKubernetesStream(pods, new URLSearchParams('watch=true&resourceVersion=5')), true);
    assert.equal(isKubernetesStream(pods, new URLSearchParams('watch=false')), false);
    assert.equal(isKubernetesStream(pods, new URLSearchParams('limit=500')), false);
    assert.equal(isKubernetesStream(log, new URLSearchParams('follow=true')), true);
    assert.equal(isKubernetesStream(log, new URLSearchParams('tailLines=5')), false);
    assert.equal(isKubernetesStream(readKubernetesPath(seg('api/v1/watch/pods')), new URLSearchParams()), true);
  });
});

describe("kas's Kubernetes allow-list", () => {
  const check = (method: string, rawPath: string, query = '', headers: Record<string, string> = {}) =>
    checkKubernetesRequest({ method, rawPath, query, headers });
  const refused = (method: string, rawPath: string, headers: Record<string, string> = {}) => {
    assert.throws(() => check(method, rawPath, '', headers), (e: unknown) => e instanceof KasError && e.status === 403, `${method} ${rawPath}`);
  };

  test('reads pass, normalised, with only safe headers', () => {
    const checked = check('GET', '/api/v1//namespaces/./x/pods', 'limit=2', {
      accept: 'application/json;as=Table;v=v1;g=meta.k8s.io',
      authorization: 'Bearer caller-token',
      'impersonate-user': 'system:admin',
      cookie: 'a=b',
    });
    assert.equal(checked.path, '/api/v1/namespaces/x/pods');
    assert.deepEqual(checked.headers, { accept: 'application/json;as=Table;v=v1;g=meta.k8s.io' });
    assert.equal(checked.streaming, false);
    assert.equal(check('GET', '/api/v1/pods', 'watch=1').streaming, true);
    assert.equal(check('HEAD', '/version').method, 'HEAD');
    assert.equal(check('GET', '/api/v1/namespaces/x/pods/proxy').path, '/api/v1/namespaces/x/pods/proxy', 'a pod named proxy is just a pod');
  });

  test('writes, exec/attach/portforward/proxy and non-API paths are refused, however spelled', () => {
    for (const method of ['POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']) refused(method, '/api/v1/namespaces/x/pods/y');
    for (const path of [
      '/api/v1/namespaces/x/pods/y/exec',
      '/api/v1/namespaces/x/pods/y/attach',
      '/api/v1/namespaces/x/pods/y/portforward',
      '/api/v1/namespaces/x/services/y/proxy',
      '/api/v1/namespaces/x/services/y:80/proxy/admin',
      '/api/v1/nodes/n/proxy',
      '/api/v1/proxy/namespaces/x/pods/y',
      '/api/v1/namespaces/x/pods/y/%65xec',
      '/api/v1/namespaces/x/pods/y//exec',
      '/api/v1/namespaces/x/pods/y/log/../exec',
      '/api/v1/namespaces/x/pods/y/./exec/',
      '/api/v1/namespaces/x/pods/y%2fexec',
      '/api/v1/namespaces/x/pods/y/log/extra',
      '/logs/kube-apiserver.log',
      '/metrics',
      '/../api/v1/pods',
    ]) {
      refused('GET', path);
    }
    refused('GET', '/api/v1/namespaces/x/pods/y/log', { upgrade: 'websocket' });
  });
});

describe("agentk's policy", () => {
  const policy = (raw: unknown) => KubernetesPolicySchema.parse(raw);

  test('the default denies secrets only, and serves reads only', () => {
    const p = DEFAULT_KUBERNETES_POLICY;
    assert.deepEqual(policy({}), p, 'agent.yaml without a policy reads as the default agentk applies');
    assert.equal(policyRefusal(p, 'GET', '/api/v1/namespaces/x/pods'), undefined);
    assert.equal(policyRefusal(p, 'GET', '/api/v1/pods'), undefined);
    assert.equal(policyRefusal(p, 'GET', '/apis/apps/v1/deployments'), undefined);
    assert.equal(policyRefusal(p, 'GET', '/api'), undefined);
    assert.match(policyRefusal(p, 'GET', '/api/v1/namespaces/x/secrets')!, /policy\.kubernetes\.deny\[0\].*secrets/);
    assert.match(policyRefusal(p, 'GET', '/api/v1/secrets')!, /deny\[0\]/);
    assert.match(policyRefusal(p, 'GET', '/api/v1/watch/namespaces/x/secrets/s')!, /deny\[0\]/);
    assert.match(policyRefusal(p, 'DELETE', '/api/v1/namespaces/x/pods/y')!, /read-only/);
    assert.match(policyRefusal(p, 'GET', '/api/v1/namespaces/x/pods/y/exec')!, /never serves exec/);
    assert.match(policyRefusal(p, 'GET', '/api/v1/namespaces/x/pods/y/../y/exec')!, /normal form/);
  });

  test('namespace allow lists, group-qualified resources, logs off', () => {
    const p = policy({
      allow: [{ namespaces: ['team-a'], resources: ['*'] }, { namespaces: ['*'], resources: ['namespaces'] }],
      deny: [{ resources: ['secrets', 'deployments.apps'] }],
      logs: false,
    });
    assert.equal(policyRefusal(p, 'GET', '/api/v1/namespaces/team-a/pods'), undefined);
    assert.equal(policyRefusal(p, 'GET', '/api/v1/namespaces'), undefined);
    assert.equal(policyRefusal(p, 'GET', '/api/v1/namespaces/team-a'), undefined);
    assert.match(policyRefusal(p, 'GET', '/api/v1/namespaces/team-b/pods')!, /no rule in policy\.kubernetes\.allow covers pods in namespace team-b/);
    assert.match(policyRefusal(p, 'GET', '/api/v1/pods')!, /no rule .* covers pods across all namespaces/);
    assert.match(policyRefusal(p, 'GET', '/apis/apps/v1/namespaces/team-a/deployments')!, /deny\[0\].*deployments\.apps/);
    assert.match(policyRefusal(p, 'GET', '/api/v1/namespaces/team-a/pods/y/log')!, /policy\.kubernetes\.logs is false/);
    const denyOne = policy({ deny: [{ namespaces: ['kube-system'], resources: ['*'] }] });
    assert.match(policyRefusal(denyOne, 'GET', '/api/v1/pods')!, /deny\[0\]/, 'a cluster-wide list reaches into the denied namespace');
    assert.equal(policyRefusal(denyOne, 'GET', '/api/v1/namespaces/default/secrets'), undefined, 'a given deny list replaces the default');
  });

  test('a malformed policy is refused with the offending field', () => {
    assert.throws(() => policy({ allow: [{ namespace: ['x'] }] }), /namespace/);
    assert.throws(() => policy({ logs: 'yes' }), /logs/);
  });
});

describe('watch keep-alive', () => {
  test('a silent watch gets blank lines at event boundaries only', async () => {
    async function* source() {
      yield Buffer.from('{"type":"ADDED"}\n');
      // Long against the 40 ms interval, so that a busy machine's late timers still give several.
      await new Promise((r) => setTimeout(r, 400));
      yield Buffer.from('{"type":"MOD');
      await new Promise((r) => setTimeout(r, 120));
      yield Buffer.from('IFIED"}\n');
    }
    const out: string[] = [];
    for await (const chunk of withIdleKeepalive(source(), 40)) out.push(Buffer.from(chunk).toString());
    const text = out.join('');
    assert.match(text, /^\{"type":"ADDED"\}\n\n+\{"type":"MODIFIED"\}\n$/);
    assert.ok(out.filter((c) => c === '\n').length >= 2, `keep-alives: ${JSON.stringify(out)}`);
  });
});
