// agentk's URL for a Prometheus request (upstreamUrls): parsed once from a string where that reads
// the same as the URL setters, which it must match for every path and query kas may send.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { upstreamUrls } from '../../agent/modules/prometheus/agent.ts';

function bySetters(base: URL, prefix: string, path: string, query: string): string {
  const url = new URL(base);
  url.pathname = prefix + path;
  url.search = query;
  return url.href;
}

const bases = ['http://prometheus:9090', 'https://user:p%40ss@prom.example:8443/prefix/', 'http://127.0.0.1:9090/a%20b', 'http://[::1]:9090/x/y/'];
const piece = fc.oneof(
  fc.string({ maxLength: 12 }),
  fc.constantFrom('..', '.', '%2e%2E', '%2F', '\\\\', '?', '#', '%', '%zz', ' ', 'ü', '//', ';x=1', '@', ':', '\t', '\n', '\r', '\u0000', '\u001f', '\u007f', '??', '[', ']', '|', '^', '`', '{}', '"', '<>'),
);
const path = fc.array(piece, { maxLength: 5 }).map((parts) => `/${parts.join('/')}`);
const query = fc.oneof(fc.constant(''), fc.constant('query=up&time=1'), fc.array(piece, { maxLength: 4 }).map((parts) => parts.join('&')));

test('one parse makes the URL the setters make, for any path and query', () => {
  for (const raw of bases) {
    const base = new URL(raw);
    const prefix = base.pathname.replace(/\/+$/, '');
    const urlOf = upstreamUrls(raw);
    fc.assert(
      fc.property(path, query, (p, q) => {
        assert.equal(urlOf(p, q).href, bySetters(base, prefix, p, q));
      }),
      { numRuns: 3000 },
    );
  }
});

test('credentials in the base URL are kept', () => {
  const url = upstreamUrls('http://user:secret@prom:9090')('/api/v1/query', 'query=up');
  assert.equal(url.username, 'user');
  assert.equal(url.password, 'secret');
  assert.equal(url.href, 'http://user:secret@prom:9090/api/v1/query?query=up');
});
