// The private port (kas-to-kas forwarding): it answers nothing without a kas-to-kas token, takes
// no API token and no token of another key, audience or lifetime, serves a token's own agent
// only, and judges every request again by its capability's rules.
import type { HttpCase } from './case.ts';

const PRIVATE_PROM = '/private/v1/agents/good/prometheus';
const PRIVATE_KUBE = '/private/v1/agents/good/kubernetes';
const query = `${PRIVATE_PROM}/api/v1/query?query=up`;
const pods = `${PRIVATE_KUBE}/api/v1/namespaces/default/pods`;
const paths = [query, pods];
const unauthorized = { status: 401, body: 'language', message: /the private port takes kas-to-kas requests only/ } as const;
const served = { status: 200, body: 'json' } as const;

export const privateCases: HttpCase[] = [
  { name: 'a valid kas-to-kas token (the control)', port: 'private', paths, expect: served },
  { name: 'no token', port: 'private', paths: [...paths, '/', '/api/v1/agents', '/private/v1/peer/prometheus/good/window'], auth: null, expect: unauthorized },
  { name: 'a valid API token', port: 'private', paths, auth: { bearer: 'api-token' }, expect: unauthorized },
  { name: 'an API token as the Basic password', port: 'private', paths, auth: { basic: { key: 'api' } }, expect: unauthorized },
  { name: 'kas-to-kas claims signed with the API secret', port: 'private', paths, auth: { bearer: { key: 'api', claims: { aud: 'kas-private', agent: 'good', agents: null, exp: 30 } } }, expect: unauthorized },
  { name: 'signed with a key kas never had', port: 'private', paths, auth: { bearer: { key: 'stranger', claims: { aud: 'kas-private', agent: 'good', agents: null, exp: 30 } } }, expect: unauthorized },
  { name: 'alg none', port: 'private', paths, auth: { bearer: { key: 'private', alg: 'none' } }, expect: unauthorized },
  { name: 'alg HS512 with the right key', port: 'private', paths, auth: { bearer: { key: 'private', alg: 'HS512' } }, expect: unauthorized },
  { name: 'audience kas', port: 'private', paths, auth: { bearer: { key: 'private', claims: { aud: 'kas' } } }, expect: unauthorized },
  { name: 'no audience', port: 'private', paths, auth: { bearer: { key: 'private', claims: { aud: null } } }, expect: unauthorized },
  { name: 'a lifetime of 61 s (over the 60 s bound)', port: 'private', paths, auth: { bearer: { key: 'private', claims: { iat: -1, exp: 60 } } }, expect: unauthorized },
  { name: 'a lifetime of a day', port: 'private', paths, auth: { bearer: { key: 'private', claims: { exp: 86_400 } } }, expect: unauthorized },
  { name: 'a lifetime of exactly 60 s', port: 'private', paths, auth: { bearer: { key: 'private', claims: { iat: 0, exp: 60 } } }, expect: served },
  { name: 'no iat (the lifetime cannot be told)', port: 'private', paths, auth: { bearer: { key: 'private', claims: { iat: null } } }, expect: unauthorized },
  { name: 'expired', port: 'private', paths, auth: { bearer: { key: 'private', claims: { iat: -90, exp: -30 } } }, expect: unauthorized },
  { name: 'no sub', port: 'private', paths, auth: { bearer: { key: 'private', claims: { sub: null } } }, expect: unauthorized },
  { name: 'no agent claim', port: 'private', paths, auth: { bearer: { key: 'private', claims: { agent: null } } }, expect: unauthorized },
  { name: 'an agent claim that is no agent id', port: 'private', paths, auth: { bearer: { key: 'private', claims: { agent: '../good' } } }, expect: unauthorized },
  { name: 'a replica claim that is not a string', port: 'private', paths, auth: { bearer: { key: 'private', claims: { replica: 42 } } }, expect: unauthorized },
  { name: 'a token for another agent', port: 'private', paths, auth: { bearer: { key: 'private', claims: { agent: 'other' } } }, expect: { status: 403, body: 'language', message: /token is for another agent/ } },
  { name: "a token for agent good, on another agent's path", port: 'private', paths: ['/private/v1/agents/other/prometheus/api/v1/query?query=up', '/private/v1/agents/other/kubernetes/api/v1/pods'], expect: { status: 403, body: 'language', message: /token is for another agent/ } },
  { name: "a token for agent good, on another agent's peer path", port: 'private', path: '/private/v1/peer/prometheus/other/window', expect: { status: 403, body: 'kas', message: /token is for another agent/ } },
  { name: 'a replica that is not connected (another local one serves)', port: 'private', paths, auth: { bearer: { key: 'private', claims: { replica: 'gone-replica' } } }, expect: served },
  { name: 'a token for an agent with no replica here', port: 'private', path: '/private/v1/agents/other/prometheus/api/v1/query?query=up', auth: { bearer: { key: 'private', claims: { agent: 'other' } } }, expect: { status: 503, body: 'prometheus', message: /holds no replica of agent other/, headers: { 'x-kas-not-here': /^1$/ } } },
  { name: 'two Authorization headers', port: 'private', paths, headers: [['Authorization', 'Bearer x']], expect: { status: 400, body: 'language', message: /more than one Authorization/ } },

  // Judged again by the capability's rules
  { name: 'a Prometheus path the allow-list refuses', port: 'private', paths: [`${PRIVATE_PROM}/api/v1/admin/tsdb/snapshot`, `${PRIVATE_PROM}/federate`, `${PRIVATE_PROM}/api/v1/query/%2e%2e/%2e%2e/%2e%2e/federate`, `${PRIVATE_PROM}/api%2fv1%2fwrite`], expect: { status: 403, body: 'prometheus' } },
  { name: 'a Kubernetes path the allow-list refuses', port: 'private', paths: [`${PRIVATE_KUBE}/api/v1/namespaces/default/pods/web-0/exec`, `${PRIVATE_KUBE}/api/v1/namespaces/default/pods/web-0/EXEC`, `${PRIVATE_KUBE}/api/v1/namespaces/default/pods/web-0/%2565xec`, `${PRIVATE_KUBE}/api/v1/nodes/n/proxy`], expect: { status: 403, body: 'kubernetes' } },
  { name: 'a method the capability refuses', port: 'private', method: 'DELETE', paths, expect: { status: 403, body: 'language', message: /not allowed/ } },
  { name: 'a capability kas does not offer', port: 'private', path: '/private/v1/agents/good/loki/api/v1/query', expect: { status: 404, body: 'kas', message: /kas offers no "loki"/ } },
  { name: 'an API route on the private port', port: 'private', paths: ['/api/v1/agents', '/api/v1/agents/good/prometheus/api/v1/query?query=up'], expect: { status: 404, body: 'language', message: /no route/ } },
  { name: 'X-Kas-Timeout-Ms far above KAS_REQUEST_TIMEOUT (capped)', port: 'private', path: query, headers: [['X-Kas-Timeout-Ms', '999999999999']], expect: served },
  { name: 'X-Kas-Timeout-Ms that is no number, negative or zero (the default bound)', port: 'private', paths: [query, `${query}&t=0`], headers: [['X-Kas-Timeout-Ms', 'soon']], expect: served },
  { name: 'X-Kas-Timeout-Ms: 0 on a query that takes 6 s is still bounded (KAS_REQUEST_TIMEOUT, 5 s)', port: 'private', path: `${PRIVATE_PROM}/api/v1/query?query=slow&ms=6000`, headers: [['X-Kas-Timeout-Ms', '0']], expect: { status: 504, body: 'prometheus', message: /KAS_REQUEST_TIMEOUT|did not answer within 5000ms/, reached: true, withinMs: 6_000 } },
  { name: 'a body past KAS_MAX_REQUEST_BODY', port: 'private', method: 'POST', path: `${PRIVATE_PROM}/api/v1/query`, headers: [['Content-Type', 'application/x-www-form-urlencoded']], body: `query=up&pad=${'x'.repeat(600_000)}`, expect: { status: 413, body: 'prometheus', closes: true } },
  { name: 'a head past KAS_MAX_HEADER_SIZE', port: 'private', path: query, headers: [['X-Pad', 'p'.repeat(17_000)]], expect: { status: 431, body: 'prometheus' } },
  { name: 'a connection that sends nothing', port: 'private', slow: true, raw: [], expect: { status: 408, body: 'kas', message: /KAS_HEADER_TIMEOUT/ } },
  { name: 'a body that never completes', port: 'private', slow: true, raw: ['POST /private/v1/agents/good/prometheus/api/v1/query HTTP/1.1\r\nHost: x\r\n{privauth}Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\nquery=up'], expect: { status: 408, body: 'prometheus', message: /KAS_BODY_TIMEOUT/, closes: true } },
];
