// Which requests the API port serves without express (server/http/apiApp.ts): exactly those
// express would hand to the passthrough route with parameters it can decode. The answers on both
// paths are held alike by the rest of the suite (the hostile corpus, errors, traces), which sends
// both kinds.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { takesDirectPath } from '../../server/http/apiApp.ts';

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
