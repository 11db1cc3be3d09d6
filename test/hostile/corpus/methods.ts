// Methods, method overrides and connection upgrades. kas judges the method on the request line and
// nothing else: Prometheus takes GET and POST, Kubernetes GET and HEAD, and an override header is
// neither honoured nor passed on. An upgrade request is never upgraded: it is answered like any
// other request (exec and friends refused), instead of hanging until the connection drops.
import { EVERY_LANGUAGE, type HttpCase, KUBE, PROM } from './case.ts';

const query = `${PROM}/api/v1/query?query=up`;
const pods = `${KUBE}/api/v1/namespaces/default/pods`;
const pod = `${KUBE}/api/v1/namespaces/default/pods/web-0`;
const forbidden = (message: RegExp) => ({ status: 403, body: 'language', message }) as const;
const notHttp = { status: 400, body: 'kas', message: /not valid HTTP\/1\.1/ } as const;
/** When the request line was readable, the refusal speaks its path's language. */
const notHttpAt = { status: 400, body: 'language', message: /not valid HTTP\/1\.1/ } as const;
const websocket = [
  ['Connection', 'Upgrade'],
  ['Upgrade', 'websocket'],
  ['Sec-WebSocket-Version', '13'],
  ['Sec-WebSocket-Key', 'dGhlIHNhbXBsZSBub25jZQ=='],
] as const;
const spdy = [
  ['Connection', 'Upgrade'],
  ['Upgrade', 'SPDY/3.1'],
  ['X-Stream-Protocol-Version', 'v4.channel.k8s.io'],
] as const;

export const methodCases: HttpCase[] = [
  // What each capability takes
  ...['PUT', 'DELETE', 'PATCH', 'OPTIONS', 'TRACE', 'PROPFIND', 'MKCOL', 'PURGE', 'LOCK', 'SEARCH', 'REPORT'].map((method) => ({
    name: `${method} on the Prometheus API`,
    method,
    path: query,
    expect: forbidden(new RegExp(`${method} is not allowed on the Prometheus API`)),
  })),
  { name: 'HEAD on the Prometheus API (GET and POST only)', method: 'HEAD', path: query, expect: { status: 403, body: 'empty' } },
  ...['POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'TRACE', 'PROPFIND'].map((method) => ({
    name: `${method} on the Kubernetes API`,
    method,
    paths: [pods, pod, `${KUBE}/api/v1/namespaces/default/pods/web-0/eviction`],
    body: method === 'POST' || method === 'PUT' || method === 'PATCH' ? '{"kind":"Pod"}' : undefined,
    expect: forbidden(/not allowed on the Kubernetes API through kas: it is read only/),
  })),
  { name: 'HEAD on the Kubernetes API (a read)', method: 'HEAD', path: pods, expect: { status: 200, body: 'empty' } },
  { name: 'DELETE of the agents list', method: 'DELETE', path: '/api/v1/agents', expect: { status: 404, body: 'kas', message: /no route for DELETE/ } },

  // Methods Node does not take
  { name: 'an unknown method', method: 'FROBNICATE', paths: EVERY_LANGUAGE, expect: notHttpAt },
  { name: 'a lower-case method', method: 'get', paths: EVERY_LANGUAGE, expect: notHttp },
  // Node's parser takes a run of spaces after the method; the target is still unambiguous.
  { name: 'two spaces after the method', raw: [`GET  {prom}/api/v1/query?query=up HTTP/1.1\r\nHost: x\r\n{auth}Connection: close\r\n\r\n`], expect: { status: 200, reached: true } },

  // Overrides: not honoured, not passed on
  ...['X-HTTP-Method-Override', 'X-HTTP-Method', 'X-Method-Override'].map((header) => ({
    name: `${header}: DELETE on a Kubernetes GET`,
    path: pods,
    headers: [[header, 'DELETE']] as const,
    expect: { status: 200, body: 'json' as const, message: /"kind":"PodList"/, upstreamLacks: [header] },
  })),
  ...['X-HTTP-Method-Override', 'X-HTTP-Method'].map((header) => ({
    name: `${header}: GET on a Kubernetes POST`,
    method: 'POST',
    path: pods,
    body: '{}',
    headers: [[header, 'GET']] as const,
    expect: forbidden(/POST is not allowed/),
  })),
  {
    name: 'X-HTTP-Method-Override: PUT on a Prometheus query',
    path: query,
    headers: [['X-HTTP-Method-Override', 'PUT']],
    expect: { status: 200, body: 'json', message: /"status":"success"/, upstreamLacks: ['x-http-method-override'] },
  },
  { name: 'a _method=DELETE query parameter (passed on as a parameter, no more)', path: `${pods}?_method=DELETE`, expect: { status: 200, body: 'json', message: /"kind":"PodList"/ } },

  // Upgrades: never upgraded, answered
  { name: 'a WebSocket upgrade to exec (kubectl exec over WebSocket)', paths: [`${pod}/exec?command=sh&stdin=true&tty=true`, `${pod}/attach?stdin=true`], headers: websocket, expect: forbidden(/connection upgrades \(exec, attach, port-forward\) are not allowed/) },
  { name: 'a SPDY upgrade to exec (kubectl exec over SPDY)', path: `${pod}/exec?command=sh`, headers: spdy, expect: forbidden(/connection upgrades/) },
  { name: 'a SPDY upgrade to portforward', path: `${pod}/portforward?ports=8080`, headers: spdy, expect: forbidden(/connection upgrades/) },
  { name: 'a WebSocket upgrade of a log read', path: `${pod}/log?follow=true`, headers: websocket, expect: forbidden(/connection upgrades .* are not allowed/) },
  { name: 'an Upgrade header without Connection: upgrade, on a log read', path: `${pod}/log`, headers: [['Upgrade', 'websocket']], expect: forbidden(/connection upgrades .* are not allowed/) },
  { name: 'a WebSocket upgrade of a Prometheus query (answered as a query)', path: query, headers: websocket, expect: { status: 200, body: 'json', message: /"status":"success"/, upstreamLacks: ['upgrade', 'sec-websocket-key'] } },
  { name: 'an h2c upgrade of a Prometheus query (answered over HTTP/1.1)', path: query, headers: [['Connection', 'Upgrade, HTTP2-Settings'], ['Upgrade', 'h2c'], ['HTTP2-Settings', 'AAMAAABkAARAAAAAAAIAAAAA']], expect: { status: 200, body: 'json', upstreamLacks: ['upgrade', 'http2-settings'] } },
  { name: 'a WebSocket upgrade without a token', path: `${pod}/exec?command=sh`, auth: null, headers: websocket, expect: { status: 401, body: 'kubernetes', message: /no API token/ } },
  { name: 'a WebSocket upgrade of the agents list', path: '/api/v1/agents', headers: websocket, expect: { status: 200, body: 'json', message: /"agents"/ } },
  { name: 'CONNECT (kas is no proxy)', method: 'CONNECT', path: '127.0.0.1:22', headers: [['Host', '127.0.0.1:22']], expect: { status: 403, body: 'kas', message: /kas is no proxy/ } },
  { name: 'CONNECT to the agent', method: 'CONNECT', path: 'good:443', headers: [['Host', 'good:443']], expect: { status: 403, body: 'kas', message: /kas is no proxy/ } },

  // Protocol versions
  { name: 'HTTP/1.0 without a Host header', raw: [`GET {prom}/api/v1/query?query=up HTTP/1.0\r\n{auth}\r\n`], expect: { status: 200, body: 'json', message: /"status":"success"/, reached: true } },
  { name: 'HTTP/1.1 without a Host header', raw: [`GET {prom}/api/v1/query?query=up HTTP/1.1\r\n{auth}Connection: close\r\n\r\n`], expect: { status: 400, body: 'prometheus', message: /needs a Host header/ } },
  // Node reads a request line without a version as HTTP/0.9; kas speaks HTTP/1.x only.
  { name: 'an HTTP/0.9 request line', raw: ['GET /api/v1/agents\r\n\r\n'], expect: { status: 400, body: 'kas', message: /HTTP\/0\.9 is not spoken here/ } },
  { name: 'HTTP/2.0 on the request line', raw: [`GET {prom}/api/v1/query?query=up HTTP/2.0\r\nHost: x\r\n{auth}\r\n`], expect: { status: 400, body: 'prometheus', message: /HTTP\/2\.0 is not spoken here/ } },
  { name: 'HTTP/3.0 on the request line', raw: [`GET {prom}/api/v1/query?query=up HTTP/3.0\r\nHost: x\r\n{auth}\r\n`], expect: { ...notHttp, body: 'prometheus' } },
  { name: 'the HTTP/2 connection preface', raw: ['PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'], expect: notHttp },
  { name: 'a TLS ClientHello on the plain-HTTP API port', raw: ['\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03'], expect: notHttp },
  { name: 'a request line of binary garbage', raw: ['\x00\x01\x02\x03\xff\xfe\r\n\r\n'], expect: notHttp },
];
