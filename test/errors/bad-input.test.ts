// Hostile or broken requests: path tricks against the Prometheus allow-list, wrong methods,
// oversized bodies and malformed agent ids get a clear 4xx from kas, never reach the upstream,
// and leave the node serving.
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, test } from 'node:test';
import { REQUEST_BODY_MAX_BYTES } from '../../protocol/messages.ts';
import { KasCluster } from '../support/kas.ts';
import { startFakeUpstream, type FakeUpstream } from '../support/upstream.ts';

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
}

/**
 * Sends the request line exactly as given: fetch and `new URL` would resolve `..` and `%2e%2e`
 * on the client side, and the point is to see what kas makes of them.
 */
function send(base: string, path: string, options: { method?: string; headers?: http.OutgoingHttpHeaders; body?: Buffer | string; chunked?: boolean } = {}): Promise<Answer> {
  const { hostname, port } = new URL(base);
  return new Promise((resolve, reject) => {
    const req = http.request({ host: hostname, port, path, method: options.method ?? 'GET', headers: options.headers, agent: false });
    req.once('error', reject);
    req.once('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.once('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text: Buffer.concat(chunks).toString() }));
      res.once('error', reject);
    });
    if (options.chunked && options.body) {
      // Several writes without a Content-Length: the body arrives chunked.
      const body = Buffer.from(options.body);
      for (let offset = 0; offset < body.byteLength; offset += 64 * 1024) req.write(body.subarray(offset, offset + 64 * 1024));
      req.end();
    } else {
      req.end(options.body);
    }
  });
}

function prometheusError(answer: Answer): { errorType: string; error: string } {
  assert.match(answer.headers['x-trace-id'] as string, /^[0-9a-f]{32}$/);
  const body = JSON.parse(answer.text) as { status: string; errorType: string; error: string };
  assert.equal(body.status, 'error', answer.text);
  assert.equal(typeof body.error, 'string');
  return body;
}

describe('bad input', () => {
  let cluster: KasCluster;
  let upstream: FakeUpstream;
  let token: string;
  let auth: { authorization: string };
  let wide: string;
  const base = '/api/v1/agents/good/prometheus';

  before(async () => {
    [cluster, upstream] = await Promise.all([KasCluster.start(), startFakeUpstream()]);
    const agentToken = await cluster.registerAgent('good');
    await cluster.registerAgent('other');
    token = await cluster.issueToken({ agents: ['good'] });
    wide = await cluster.issueToken({ agents: ['*'] });
    auth = { authorization: `Bearer ${token}` };
    await cluster.startAgent({ id: 'good', token: agentToken, prometheusUrl: upstream.url });
  });
  after(async () => {
    await cluster?.stop();
    await upstream?.stop();
  });

  const api = () => cluster.nodes[0]!.apiUrl;

  async function assertServing(): Promise<void> {
    assert.equal(cluster.nodes[0]!.proc.exitStatus, undefined, 'kas is still running');
    const before = upstream.count('/api/v1/query');
    const answer = await send(api(), `${base}/api/v1/query?query=up`, { headers: auth });
    assert.equal(answer.status, 200, answer.text);
    assert.equal(upstream.count('/api/v1/query'), before + 1);
  }

  test('a normal query reaches the upstream (the control for everything below)', async () => {
    await assertServing();
  });

  describe('path tricks against the Prometheus allow-list are 403 and never reach the upstream', () => {
    const tricks = [
      '/api/v1/query/../../../federate',
      '/api/v1/query/../../../api/v1/admin/tsdb/snapshot',
      '/api/v1/label/../../../api/v1/write',
      '/api/v1/query/%2e%2e/%2e%2e/%2e%2e/federate',
      '/api/v1/query/%2E%2E/%2E%2E/%2E%2E/api/v1/admin/tsdb/delete_series',
      '/api/v1/query/.%2e/.%2E/%2e./federate',
      '/api/v1/query/%252e%252e/%252e%252e/%252e%252e/federate',
      '/..',
      '/../../other/prometheus/api/v1/query',
      '/%2e%2e/%2e%2e/other/prometheus/api/v1/query',
      '//federate',
      '//api/v1/admin/tsdb/snapshot',
      '/api/v1/query//..//..//..//federate',
      '/api%2fv1%2fadmin%2ftsdb%2fsnapshot',
      '/api%2Fv1%2Fwrite',
      '/api/v1/query%2f..%2f..%2f..%2ffederate',
      '/api/v1/label%2f..%2f..%2fadmin%2ftsdb%2fsnapshot/values',
      '/api/v1/query%5c..%5c..%5cfederate',
      '/api/v1/query\\..\\..\\federate',
      '/api/v1/query%00',
      '/api/v1/admin/tsdb/snapshot',
      '/api/v1/admin/tsdb/delete_series?match[]=up',
      '/api/v1/admin/tsdb/clean_tombstones',
      '/federate?match[]=up',
      '/api/v1/write',
      '/api/v1/otlp/v1/metrics',
      '/api/v1/status/config',
      '/api/v1/status/flags',
      '/api/v1/targets',
      '/api/v1/rules',
      '/api/v1/alerts',
      '/graph',
      '/',
      '',
      '/-/reload',
      '/-/quit',
      '/API/V1/QUERY',
      '/api/v1/query/extra',
      '/api/v1/label/a/b/values',
    ];
    for (const trick of tricks) {
      for (const method of ['GET', 'POST']) {
        test(`${method} ${trick || '(empty)'}`, async () => {
          const before = upstream.count();
          const answer = await send(api(), `${base}${trick}`, {
            method,
            headers: { ...auth, ...(method === 'POST' ? { 'content-type': 'application/x-www-form-urlencoded' } : {}) },
            body: method === 'POST' ? 'query=up' : undefined,
          });
          assert.equal(answer.status, 403, `${answer.status} ${answer.text}`);
          const body = prometheusError(answer);
          assert.match(body.error, /not allowed|refused|climbs above/);
          assert.equal(upstream.count(), before, 'the upstream was never asked');
        });
      }
    }

    test('a harmless `//` or `.` is normalised: the upstream sees only the clean allowed path', async () => {
      for (const path of ['/api/v1/query/', '//api//v1//query', '/./api/./v1/query', '/api/v1/labels/../query', '/api/v1/%71uery']) {
        const answer = await send(api(), `${base}${path}?query=up&case=clean`, { headers: auth });
        assert.equal(answer.status, 200, `${path}: ${answer.text}`);
        const seen = upstream.requests.at(-1)!;
        assert.equal(seen.path, '/api/v1/query', path);
        assert.equal(seen.params.get('case'), 'clean');
      }
    });

    test('the node keeps serving', assertServing);
  });

  describe('methods', () => {
    for (const method of ['PUT', 'DELETE', 'PATCH', 'OPTIONS']) {
      test(`${method} is 403`, async () => {
        const before = upstream.count();
        for (const path of ['/api/v1/query?query=up', '/api/v1/admin/tsdb/delete_series?match[]=up']) {
          const answer = await send(api(), `${base}${path}`, { method, headers: auth });
          assert.equal(answer.status, 403, answer.text);
          assert.match(prometheusError(answer).error, /not allowed/);
        }
        assert.equal(upstream.count(), before);
      });
    }
  });

  describe('request bodies', () => {
    const form = (bytes: number) => {
      const head = 'query=up&pad=';
      return head + 'x'.repeat(bytes - head.length);
    };
    const postHeaders = () => ({ ...auth, 'content-type': 'application/x-www-form-urlencoded' });

    test(`a body of ${REQUEST_BODY_MAX_BYTES} bytes is accepted`, async () => {
      const answer = await send(api(), `${base}/api/v1/query`, { method: 'POST', headers: postHeaders(), body: form(REQUEST_BODY_MAX_BYTES) });
      assert.equal(answer.status, 200, answer.text);
      const seen = upstream.requests.at(-1)!;
      assert.equal(seen.params.get('pad')?.length, REQUEST_BODY_MAX_BYTES - 'query=up&pad='.length, 'the whole body arrived');
    });

    test('a larger body with Content-Length is 413 and never reaches the upstream', async () => {
      const before = upstream.count();
      const answer = await send(api(), `${base}/api/v1/query`, { method: 'POST', headers: postHeaders(), body: form(REQUEST_BODY_MAX_BYTES + 1) });
      assert.equal(answer.status, 413, answer.text);
      assert.match(prometheusError(answer).error, new RegExp(`${REQUEST_BODY_MAX_BYTES} bytes`));
      assert.equal(upstream.count(), before);
    });

    test('a larger chunked body (no Content-Length) is 413 and never reaches the upstream', async () => {
      const before = upstream.count();
      const answer = await send(api(), `${base}/api/v1/query`, { method: 'POST', headers: postHeaders(), body: form(2 * REQUEST_BODY_MAX_BYTES), chunked: true });
      assert.equal(answer.status, 413, answer.text);
      assert.match(prometheusError(answer).error, new RegExp(`${REQUEST_BODY_MAX_BYTES} bytes`));
      assert.equal(upstream.count(), before);
    });

    test('a Content-Length that lies about a huge body is 413 at once', async () => {
      const answer = await send(api(), `${base}/api/v1/query`, {
        method: 'POST',
        headers: { ...postHeaders(), 'content-length': String(10 * 1024 * 1024 * 1024) },
        body: undefined,
      }).catch((error: Error) => ({ status: 0, headers: {}, text: error.message }));
      assert.equal(answer.status, 413, answer.text);
    });

    test('the node keeps serving', assertServing);
  });

  describe('agent ids', () => {
    const invalid = ['x'.repeat(64), 'bad$id', 'a%20b', 'a%2Fb', 'ag%C3%A9nt', 'a@b', 'a:b'];
    for (const id of invalid) {
      test(`"${id}" gets a 4xx that says what an agent id is`, async () => {
        for (const [path, dialect] of [
          [`/api/v1/agents/${id}/prometheus/api/v1/query?query=up`, 'prometheus'],
          [`/api/v1/agents/${id}`, 'kas'],
        ] as const) {
          const answer = await send(api(), path, { headers: { authorization: `Bearer ${wide}` } });
          assert.ok(answer.status === 400 || answer.status === 404, `${path}: ${answer.status} ${answer.text}`);
          const body = JSON.parse(answer.text) as { error: string | { message: string } };
          const message = dialect === 'prometheus' ? (body.error as string) : (body.error as { message: string }).message;
          assert.match(message, /1-63 characters of A-Za-z0-9\._-/, path);
        }
      });
    }

    test('a 63-character id is a valid id (404 when not registered, not refused as malformed)', async () => {
      const answer = await send(api(), `/api/v1/agents/${'y'.repeat(63)}`, { headers: { authorization: `Bearer ${wide}` } });
      assert.equal(answer.status, 404, answer.text);
      assert.match(answer.text, /not registered/);
    });
  });

  describe('malformed requests', () => {
    test('invalid percent-encoding in the path is 400 in the Prometheus dialect', async () => {
      const before = upstream.count();
      const answer = await send(api(), `${base}/api/v1/%zz`, { headers: auth });
      assert.equal(answer.status, 400, answer.text);
      assert.match(prometheusError(answer).error, /percent-encoding/);
      assert.equal(upstream.count(), before);
    });

    test('invalid percent-encoding in an agent id is 400 or 404, never a kas failure', async () => {
      const answer = await send(api(), '/api/v1/agents/%zz', { headers: auth });
      assert.ok(answer.status === 400 || answer.status === 404, `${answer.status} ${answer.text}`);
    });

    test('an oversized request line is refused (431 or a closed connection), not served', async () => {
      const before = upstream.count();
      const answer = await send(api(), `${base}/api/v1/query?query=${'a'.repeat(64 * 1024)}`, { headers: auth }).catch((error: NodeJS.ErrnoException) => ({
        status: 0,
        headers: {},
        text: error.code ?? error.message,
      }));
      if (answer.status === 0) assert.match(answer.text, /ECONNRESET|EPIPE/);
      else assert.equal(answer.status, 431, answer.text);
      assert.equal(upstream.count(), before);
    });

    test('the node keeps serving', assertServing);
  });
});
