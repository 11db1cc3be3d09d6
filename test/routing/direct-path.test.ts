// Which requests the API and private ports serve without express (server/http/directPath.ts): those
// express would hand to the passthrough route with parameters it can decode. The answers on both
// paths are held alike by the rest of the suite (the hostile corpus, errors, traces), which sends
// both kinds.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { directPathUrl } from '../../server/http/directPath.ts';

const takesDirectPath = (url: string, prefix = '/api/v1/agents/') => directPathUrl(url, prefix) !== undefined;

test('the passthrough goes direct; everything express must see, or decode, goes to express', () => {
  for (const url of [
    '/api/v1/agents/prod/prometheus/api/v1/query?query=up',
    '/api/v1/agents/prod/kubernetes/api/v1/namespaces/a/pods?watch=1',
    '/api/v1/agents/prod/prometheus',
    '/api/v1/agents/prod/prometheus/',
    '/api/v1/agents/p%2Erod/prometheus/api/v1/label/a%20b/values',
    '/api/v1/agents/prod/prometheus/api/v1/query?query=%zz', // the query is the capability's to read
    '/api/v1/agents/not..an..id!/prometheus/x', // the handler refuses it, on either path
  ]) {
    assert.equal(takesDirectPath(url), true, url);
  }
  for (const url of [
    '/api/v1/agents',
    '/api/v1/agents/prod',
    '/api/v1/agents/prod/',
    '/api/v1/agents/prod/Prometheus/x', // no capability is spelled so: express answers 404
    '/api/v1/agents/prod/prometheus/%zz', // express cannot decode it: 400 from express's path
    '/api/v1/agents/pr%E0od/prometheus/x',
    '/API/v1/agents/prod/prometheus/x',
    '/private/v1/agents/prod/prometheus/x',
    '/',
    '/assets/index.js',
  ]) {
    assert.equal(takesDirectPath(url), false, url);
  }
});

test('on the private port, the forwarded passthrough goes direct; the peer API and the rest go to express', () => {
  const prefix = '/private/v1/agents/';
  assert.equal(takesDirectPath('/private/v1/agents/prod/prometheus/api/v1/query?query=up', prefix), true);
  assert.equal(takesDirectPath('/private/v1/agents/prod/kubernetes/api/v1/pods?watch=1', prefix), true);
  assert.equal(takesDirectPath('/private/v1/peer/prometheus/prod/live', prefix), false);
  assert.equal(takesDirectPath('/private/v1/agents/prod/prometheus/%zz', prefix), false);
  assert.equal(takesDirectPath('/api/v1/agents/prod/prometheus/x', prefix), false, 'the API prefix is not the private one');
});
