// The page's other pure parts: the YAML of the detail view, the layout in the URL, the
// traceparent of every request, units on the axes, log lines resumed without repeats, and what
// the sign-in can tell from the token itself.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parse } from 'yaml';
import { decodeLayout, encodeLayout, type Layout } from '../../web/src/lib/layout.ts';
import { LogBuffer, splitTimestamp } from '../../web/src/lib/logLines.ts';
import { grantsAgent, readClaims, tokenProblem } from '../../web/src/lib/token.ts';
import { formatTraceparent, parseTraceparent, randomId, Trace, traceLink } from '../../web/src/lib/traceparent.ts';
import { formatValue, unitOf } from '../../web/src/lib/units.ts';
import { toYaml, withoutManagedFields } from '../../web/src/lib/yaml.ts';
import { collectionPath, objectPath, preferredGroupVersions, resourceId, resourcesOf } from '../../web/src/lib/discovery.ts';

describe('YAML of an object', () => {
  const tricky = {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name: 'web-0',
      labels: { app: 'web', 'app.kubernetes.io/version': '1.10', yes: 'no', empty: '', 'with: colon': 'a: b', hash: 'x #y' },
      annotations: { script: 'line one\nline two\n', keepless: 'a\nb', spaced: ' leading', trailing: 'trailing ', multi: '  indented\nfirst' },
    },
    spec: {
      containers: [
        { name: 'app', image: 'nginx:1.27', args: ['--port', '8080', '-v'], ports: [{ containerPort: 80 }], env: [] },
        { name: 'side', command: [['nested', 'array']], resources: {} },
      ],
      nodeSelector: { 'kubernetes.io/os': 'linux' },
      priority: 0,
      ratio: 0.5,
      enabled: true,
      nothing: null,
    },
    status: { phase: 'Running', startTime: '2026-01-01T00:00:00Z', version: '007', octal: '0o17', star: '*', dash: '- x', bracket: '[x]', tilde: '~', nul: 'a\u0000b', unicode: 'héllo ✓' },
  };

  test('reads back (by a real YAML parser) as exactly the object', () => {
    assert.deepEqual(parse(toYaml(tricky)), tricky);
  });

  test('looks like kubectl -o yaml: block style, arrays at their key’s indent, plain scalars where safe', () => {
    const y = toYaml({ metadata: { name: 'web-0', labels: { app: 'web' } }, spec: { containers: [{ name: 'app', image: 'nginx' }] }, count: 3, s: '3', n: 'y' });
    assert.equal(y, ['metadata:', '  name: web-0', '  labels:', '    app: web', 'spec:', '  containers:', '  - name: app', '    image: nginx', 'count: 3', 's: "3"', '"n": "y"', ''].join('\n'));
    assert.match(toYaml(tricky), /script: \|\n {6}line one\n {6}line two\n/);
  });

  test('managedFields are left out, nothing else', () => {
    const obj = { metadata: { name: 'x', managedFields: [{ manager: 'kubectl' }] }, spec: {} };
    assert.deepEqual(withoutManagedFields(obj), { metadata: { name: 'x' }, spec: {} });
  });
});

describe('panel layout in the URL', () => {
  test('round-trips every field, queries with any characters included', () => {
    const layout: Layout = {
      view: 'metrics',
      agent: 'prod-1',
      panels: [
        { query: 'sum by (job) (rate(http_requests_total{code=~"5..", path="/a&b#c"}[5m])) / 2', range: '1h', step: '15s' },
        { query: 'up == 1 and on() vector(1) # ünïcode', range: '5m', step: '1s' },
      ],
      namespace: 'shop',
      resource: 'apps/v1/deployments',
      object: 'shop/api',
      filter: 'crash loop',
    };
    const fragment = encodeLayout(layout);
    assert.doesNotMatch(fragment, /#/);
    assert.deepEqual(decodeLayout(`#${fragment}`), layout);
  });

  test('malformed parts are dropped, not fatal; the token is never part of it', () => {
    const l = decodeLayout('view=nope&agent=bad/agent&g=1h&g=x%20y%20up&g=5m%2015s%20up&res=../../etc&ns=');
    assert.deepEqual(l, { view: 'agents', panels: [{ range: '5m', step: '15s', query: 'up' }], namespace: '' });
    assert.doesNotMatch(encodeLayout(l), /token|eyJ/);
  });
});

describe('traceparent', () => {
  test('one trace per action, a fresh span id per request, W3C format that kas accepts', () => {
    const t = new Trace();
    const [p1, p2] = [t.traceparent(), t.traceparent()];
    const a = parseTraceparent(p1)!;
    const b = parseTraceparent(p2)!;
    assert.match(p1, /^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
    assert.equal(a.traceId, t.traceId);
    assert.equal(b.traceId, t.traceId);
    assert.notEqual(a.spanId, b.spanId);
    assert.equal(a.sampled, true);
    assert.notEqual(new Trace().traceId, t.traceId);
  });

  test('never an all-zero id (invalid in W3C trace context)', () => {
    let calls = 0;
    const zerosFirst = (bytes: Uint8Array<ArrayBuffer>) => {
      calls++;
      if (calls > 1) bytes.fill(7);
      return bytes;
    };
    assert.equal(randomId(8, zerosFirst), '0707070707070707');
    assert.equal(calls, 2);
    assert.equal(parseTraceparent(formatTraceparent('0'.repeat(32), '1'.repeat(16))), undefined);
  });

  test('the trace UI link puts the id into KAS_TRACE_UI_URL; non-web URLs are not links', () => {
    assert.equal(traceLink('http://jaeger:16686/trace/{traceId}', 'ab'.repeat(16)), `http://jaeger:16686/trace/${'ab'.repeat(16)}`);
    assert.equal(traceLink(undefined, 'ab'), undefined);
    assert.equal(traceLink('javascript:alert({traceId})', 'ab'), undefined);
    assert.equal(traceLink('http://tempo/explore', 'ab'), undefined);
  });
});

describe('units on the y axis', () => {
  test('from the metric names and functions of the query', () => {
    assert.equal(unitOf('process_resident_memory_bytes'), 'bytes');
    assert.equal(unitOf('rate(node_network_receive_bytes_total[5m])'), 'bytesPerSecond');
    assert.equal(unitOf('histogram_quantile(0.99, rate(http_request_duration_seconds_bucket[5m]))'), 'perSecond');
    assert.equal(unitOf('http_request_duration_seconds_sum / http_request_duration_seconds_count'), 'seconds');
    assert.equal(unitOf('rate(process_cpu_seconds_total[1m])'), 'ratio');
    assert.equal(unitOf('rate(kas_requests_total{code="200"}[1m])'), 'perSecond');
    assert.equal(unitOf('count(up)'), 'none');
    assert.equal(unitOf('up'), 'none');
  });

  test('formatted with their prefixes', () => {
    assert.equal(formatValue(1536, 'bytes'), '1.5 KiB');
    assert.equal(formatValue(3 * 1024 ** 3, 'bytesPerSecond'), '3 GiB/s');
    assert.equal(formatValue(0.0042, 'seconds'), '4.2ms');
    assert.equal(formatValue(7200, 'seconds'), '2h');
    assert.equal(formatValue(0.257, 'ratio'), '25.7%');
    assert.equal(formatValue(12500, 'perSecond'), '12.5k/s');
    assert.equal(formatValue(null, 'none'), '–');
    assert.equal(formatValue(0, 'none'), '0');
  });
});

describe('log lines', () => {
  test('timestamps are split off; a resumed follow (sinceTime is inclusive) repeats nothing', () => {
    assert.deepEqual(splitTimestamp('2026-01-01T10:00:00.123456789Z hello world'), { time: '2026-01-01T10:00:00.123456789Z', text: 'hello world' });
    assert.deepEqual(splitTimestamp('no stamp'), { time: '', text: 'no stamp' });
    const buf = new LogBuffer(100);
    buf.add(['2026-01-01T10:00:00.1Z a', '2026-01-01T10:00:01.5Z b', '2026-01-01T10:00:01.5Z b']);
    assert.equal(buf.lastTime, '2026-01-01T10:00:01.5Z');
    buf.resuming();
    // The API server resends from the start of that second.
    const added = buf.add(['2026-01-01T10:00:01.2Z x', '2026-01-01T10:00:01.5Z b', '2026-01-01T10:00:01.5Z b', '2026-01-01T10:00:01.5Z c', '2026-01-01T10:00:02Z d']);
    assert.deepEqual(added.map((l) => l.text), ['c', 'd']);
    assert.deepEqual(buf.lines.map((l) => l.text), ['a', 'b', 'b', 'c', 'd']);
  });

  test('the buffer is bounded, the oldest lines go', () => {
    const buf = new LogBuffer(3);
    buf.add(['1', '2', '3', '4', '5']);
    assert.deepEqual(buf.lines.map((l) => l.text), ['3', '4', '5']);
    assert.equal(buf.dropped, 2);
  });
});

describe('the token, read before kas is asked', () => {
  const jwt = (claims: object) => `eyJhbGciOiJIUzI1NiJ9.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.sig`;

  test('expired, agent tokens and non-tokens get their own message', () => {
    const now = Date.parse('2026-01-01T12:00:00Z');
    assert.match(tokenProblem(jwt({ sub: 'x', exp: now / 1000 - 60 }), now)!, /expired/);
    assert.equal(tokenProblem(jwt({ sub: 'x', exp: now / 1000 + 60 }), now), undefined);
    assert.match(tokenProblem(`kasat_${'a'.repeat(43)}`, now)!, /agent token/);
    assert.match(tokenProblem('hello', now)!, /not an API token/);
    assert.match(tokenProblem('  ', now)!, /Paste/);
  });

  test('scope: which agents the token names', () => {
    const claims = readClaims(jwt({ sub: 'ops', agents: ['prod'], exp: 1 }));
    assert.deepEqual(claims, { sub: 'ops', exp: 1, agents: ['prod'] });
    assert.equal(grantsAgent(claims, 'prod'), true);
    assert.equal(grantsAgent(claims, 'staging'), false);
    assert.equal(grantsAgent(readClaims(jwt({ agents: ['*'] })), 'any'), true);
  });
});

describe('discovery to the resource picker', () => {
  test('listable and watchable resources only, no subresources; collection and object paths', () => {
    const core = resourcesOf({
      groupVersion: 'v1',
      resources: [
        { name: 'pods', namespaced: true, kind: 'Pod', verbs: ['get', 'list', 'watch'] },
        { name: 'pods/log', namespaced: true, kind: 'Pod', verbs: ['get'] },
        { name: 'bindings', namespaced: true, kind: 'Binding', verbs: ['create'] },
        { name: 'namespaces', namespaced: false, kind: 'Namespace', verbs: ['list', 'watch'] },
      ],
    });
    assert.deepEqual(core.map(resourceId), ['v1/pods', 'v1/namespaces']);
    const [apps] = resourcesOf({ groupVersion: 'apps/v1', resources: [{ name: 'deployments', namespaced: true, kind: 'Deployment', verbs: ['list', 'watch'] }] });
    assert.equal(collectionPath(core[0]!, 'shop'), '/api/v1/namespaces/shop/pods');
    assert.equal(collectionPath(core[0]!, ''), '/api/v1/pods');
    assert.equal(collectionPath(core[1]!, 'shop'), '/api/v1/namespaces');
    assert.equal(collectionPath(apps!, 'a b'), '/apis/apps/v1/namespaces/a%20b/deployments');
    assert.equal(objectPath(apps!, 'shop', 'api'), '/apis/apps/v1/namespaces/shop/deployments/api');
    assert.deepEqual(preferredGroupVersions({ groups: [{ name: 'apps', preferredVersion: { groupVersion: 'apps/v1', version: 'v1' } }, { name: 'x', versions: [{ groupVersion: 'x/v2', version: 'v2' }] }] }), ['apps/v1', 'x/v2']);
  });
});
