// Header and body sizes, request smuggling, Host and X-Forwarded-* spoofing, hop-by-hop headers.
// A request kas cannot read only one way is refused (400) and the connection closed, so that no
// second request hides in it; sizes past the settings are 431 and 413, a body that does not
// arrive in time 408 (the node runs with KAS_BODY_TIMEOUT=1s, KAS_HEADER_TIMEOUT=1s); spoofed
// headers change nothing and never reach an upstream.
import { type HttpCase, KUBE, PROM } from './case.ts';

const query = `${PROM}/api/v1/query?query=up`;
const pods = `${KUBE}/api/v1/namespaces/default/pods`;
const form = [['Content-Type', 'application/x-www-form-urlencoded']] as const;
const MAX_BODY = 512 * 1024;
const pad = (bytes: number) => `query=up&pad=${'x'.repeat(bytes - 'query=up&pad='.length)}`;
/** Refused by Node's parser, answered by kas in the language of the request line's path (all raw requests here ask Prometheus). */
const notHttp = { status: 400, message: /not valid HTTP\/1\.1/, closes: true, body: 'prometheus' } as const;
const smuggled = { ...notHttp, responses: 1 } as const;
const served = { status: 200, body: 'json', message: /"status":"success"/ } as const;
const bodyTimeout = { status: 408, body: 'prometheus', message: /KAS_BODY_TIMEOUT/, closes: true, notBeforeMs: 900, withinMs: 3_500 } as const;
/** Headers no upstream may see: hop-by-hop, credentials, and what would change how kas routes. */
const neverForwarded = [
  'authorization',
  'cookie',
  'proxy-authorization',
  'keep-alive',
  'te',
  'trailer',
  'upgrade',
  'proxy-connection',
  'x-forwarded-for',
  'x-forwarded-host',
  'x-forwarded-proto',
  'forwarded',
  'x-real-ip',
  'x-original-url',
  'x-rewrite-url',
  'impersonate-user',
  'impersonate-group',
  'x-kas-node',
];

/** A raw request to the Prometheus query endpoint with these header lines and body. */
const rawPost = (headerLines: string, body: string) => [`POST {prom}/api/v1/query HTTP/1.1\r\nHost: x\r\n{auth}${headerLines}\r\n${body}`];

export const headerCases: HttpCase[] = [
  // Head sizes (KAS_MAX_HEADER_SIZE, 16 KiB)
  { name: 'a header block just under the limit', path: query, headers: [['X-Pad', 'p'.repeat(14_000)]], expect: served },
  { name: 'one header past the limit', paths: [query, pods, '/api/v1/agents'], headers: [['X-Pad', 'p'.repeat(17_000)]], expect: { status: 431, body: 'language', message: /KAS_MAX_HEADER_SIZE/, closes: true } },
  { name: '3,000 small headers', path: query, headers: Array.from({ length: 3_000 }, (_, i) => [`X-H${i}`, 'v'] as const), expect: { status: 431, body: 'language', message: /KAS_MAX_HEADER_SIZE/ } },
  { name: '500 small headers (within the limit)', path: query, headers: Array.from({ length: 500 }, (_, i) => [`X-H${i}`, 'v'] as const), expect: served },
  { name: 'a request line of 17 KB', paths: [`${query}&q=${'a'.repeat(17_000)}`, `${pods}?labelSelector=${'a'.repeat(17_000)}`], expect: { status: 431, body: 'language', message: /KAS_MAX_HEADER_SIZE/ } },
  { name: 'a header name of 17 KB', path: query, headers: [[`X-${'n'.repeat(17_000)}`, 'v']], expect: { status: 431, body: 'language' } },

  // Body sizes (KAS_MAX_REQUEST_BODY, 512 KiB) and times (KAS_BODY_TIMEOUT)
  { name: 'a form body of exactly the limit', method: 'POST', path: `${PROM}/api/v1/query`, headers: form, body: pad(MAX_BODY), expect: served },
  { name: 'a form body one byte past the limit', method: 'POST', path: `${PROM}/api/v1/query`, headers: form, body: pad(MAX_BODY + 1), expect: { status: 413, body: 'prometheus', message: /524288 bytes \(KAS_MAX_REQUEST_BODY\)/, closes: true } },
  { name: 'a Content-Length of 10 GiB, nothing sent', raw: rawPost('Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 10737418240\r\n', ''), expect: { status: 413, body: 'prometheus', closes: true, withinMs: 500 } },
  {
    name: 'a chunked body past the limit',
    raw: rawPost('Content-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\n', `${'80000\r\n'}${'x'.repeat(0x80000)}\r\n${'10\r\n'}${'y'.repeat(16)}\r\n0\r\n\r\n`),
    expect: { status: 413, body: 'prometheus', closes: true },
  },
  { name: 'Expect: 100-continue with a body past the limit', raw: rawPost('Content-Type: application/x-www-form-urlencoded\r\nExpect: 100-continue\r\nContent-Length: 600000\r\n', ''), expect: { status: 413, body: 'prometheus' } },
  { name: 'an Expect kas does not know (ignored)', path: query, headers: [['Expect', 'the-unexpected']], expect: served },
  { name: 'a Content-Length larger than what is sent', slow: true, raw: rawPost('Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n', 'query=up'), expect: bodyTimeout },
  { name: 'a chunked body that stops', slow: true, raw: rawPost('Content-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\n', '8\r\nquery=up\r\n'), expect: bodyTimeout },
  {
    name: 'a chunked body that trickles a chunk every 300 ms',
    slow: true,
    raw: [...rawPost('Content-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\n', '8\r\nquery=up\r\n'), ...Array.from({ length: 12 }, () => [{ pauseMs: 300 }, '1\r\nx\r\n']).flat()],
    expect: bodyTimeout,
  },
  {
    name: 'a body that trickles a byte every 300 ms',
    slow: true,
    raw: [...rawPost('Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 50\r\n', 'q'), ...Array.from({ length: 12 }, () => [{ pauseMs: 300 }, 'x']).flat()],
    expect: bodyTimeout,
  },
  { name: 'a request head that stops half way', slow: true, raw: ['GET {prom}/api/v1/query?query=up HTTP/1.1\r\nHost: x\r\nX-Half: '], expect: { status: 408, body: 'kas', message: /KAS_HEADER_TIMEOUT/, notBeforeMs: 900, withinMs: 3_500 } },
  { name: 'a request head sent a byte every 200 ms (slowloris)', slow: true, raw: [...'GET /api/v1/agents HTTP/1.1\r\nHost: x\r\n'.split('').flatMap((ch) => [ch, { pauseMs: 200 }])], expect: { status: 408, body: 'kas', message: /KAS_HEADER_TIMEOUT/, withinMs: 3_500 } },
  { name: 'a connection that sends nothing', slow: true, raw: [], expect: { status: 408, body: 'kas', message: /KAS_HEADER_TIMEOUT/, withinMs: 3_500 } },
  { name: 'a GET that announces a body it never sends (answered, then closed)', raw: ['GET {kube}/api/v1/namespaces/default/pods HTTP/1.1\r\nHost: x\r\n{auth}Content-Length: 50\r\n\r\n'], expect: { status: 200, reached: true, closes: true, withinMs: 3_500 } },
  { name: 'a Kubernetes POST is refused before its body', raw: ['POST {kube}/api/v1/namespaces/default/pods HTTP/1.1\r\nHost: x\r\n{auth}Content-Length: 1000\r\nConnection: close\r\n\r\n{'], expect: { status: 403, body: 'kubernetes', withinMs: 500 } },

  // Smuggling: framing that could be read two ways
  { name: 'Content-Length and Transfer-Encoding together (CL.TE)', raw: rawPost('Content-Length: 6\r\nTransfer-Encoding: chunked\r\n', '0\r\n\r\nGET /api/v1/agents HTTP/1.1\r\nHost: x\r\n\r\n'), expect: smuggled },
  { name: 'Transfer-Encoding and Content-Length together (TE.CL)', raw: rawPost('Transfer-Encoding: chunked\r\nContent-Length: 4\r\n', '5c\r\nGPOST /api/v1/agents HTTP/1.1\r\nHost: x\r\nContent-Length: 15\r\n\r\nx=1\r\n0\r\n\r\n'), expect: smuggled },
  { name: 'two Content-Lengths that differ', raw: rawPost('Content-Length: 8\r\nContent-Length: 50\r\n', 'query=up'), expect: smuggled },
  { name: 'two Content-Lengths that agree', raw: rawPost('Content-Length: 8\r\nContent-Length: 8\r\n', 'query=up'), expect: smuggled },
  { name: 'a Content-Length list', raw: rawPost('Content-Length: 8, 8\r\n', 'query=up'), expect: smuggled },
  { name: 'a Content-Length with a plus sign', raw: rawPost('Content-Length: +8\r\n', 'query=up'), expect: smuggled },
  { name: 'a negative Content-Length', raw: rawPost('Content-Length: -1\r\n', 'query=up'), expect: smuggled },
  { name: 'a hexadecimal Content-Length', raw: rawPost('Content-Length: 0x8\r\n', 'query=up'), expect: smuggled },
  { name: 'a Content-Length with a space inside', raw: rawPost('Content-Length: 0 8\r\n', 'query=up'), expect: smuggled },
  { name: 'Transfer-Encoding xchunked', raw: rawPost('Transfer-Encoding: xchunked\r\n', '8\r\nquery=up\r\n0\r\n\r\n'), expect: smuggled },
  { name: 'Transfer-Encoding chunked twice', raw: rawPost('Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n', '8\r\nquery=up\r\n0\r\n\r\n'), expect: smuggled },
  { name: 'Transfer-Encoding chunked, identity', raw: rawPost('Transfer-Encoding: chunked, identity\r\n', '8\r\nquery=up\r\n0\r\n\r\n'), expect: smuggled },
  { name: 'Transfer-Encoding identity alone', raw: rawPost('Transfer-Encoding: identity\r\nContent-Length: 8\r\n', 'query=up'), expect: smuggled },
  { name: 'a space before the colon of Transfer-Encoding', raw: rawPost('Transfer-Encoding : chunked\r\n', '8\r\nquery=up\r\n0\r\n\r\n'), expect: smuggled },
  { name: 'a tab before the colon of Content-Length', raw: rawPost('Content-Length\t: 8\r\n', 'query=up'), expect: smuggled },
  { name: 'Transfer-Encoding hidden in an obs-fold', raw: rawPost('X-Folded: yes\r\n Transfer-Encoding: chunked\r\nContent-Length: 8\r\n', 'query=up'), expect: smuggled },
  { name: 'an obs-folded header value', raw: ['GET {prom}/api/v1/query?query=up HTTP/1.1\r\nHost: x\r\n{auth}X-Folded: a\r\n  b\r\nConnection: close\r\n\r\n'], expect: smuggled },
  { name: 'bare LF line ends', raw: ['GET /api/v1/agents HTTP/1.1\nHost: x\nAuthorization: Bearer {token}\nConnection: close\n\n'], expect: { ...smuggled, body: 'kas' } },
  { name: 'a bare LF inside the head', raw: ['GET {prom}/api/v1/query?query=up HTTP/1.1\r\nHost: x\n{auth}Connection: close\r\n\r\n'], expect: smuggled },
  { name: 'a bare CR inside a header value', raw: ['GET {prom}/api/v1/query?query=up HTTP/1.1\r\nHost: x\r\n{auth}X-CR: a\rb\r\nConnection: close\r\n\r\n'], expect: smuggled },
  { name: 'a NUL inside a header value', raw: ['GET {prom}/api/v1/query?query=up HTTP/1.1\r\nHost: x\r\n{auth}X-NUL: a\u0000b\r\nConnection: close\r\n\r\n'], expect: smuggled },
  { name: 'a NUL in the request target', raw: ['GET {prom}/api/v1/query\u0000?query=up HTTP/1.1\r\nHost: x\r\n{auth}Connection: close\r\n\r\n'], expect: smuggled },
  { name: 'a header name with a space inside', raw: ['GET {prom}/api/v1/query?query=up HTTP/1.1\r\nHost: x\r\n{auth}X Bad: v\r\nConnection: close\r\n\r\n'], expect: smuggled },
  { name: 'a header line without a colon', raw: ['GET {prom}/api/v1/query?query=up HTTP/1.1\r\nHost: x\r\n{auth}NoColonHere\r\nConnection: close\r\n\r\n'], expect: smuggled },
  { name: 'a chunk size that overflows', raw: rawPost('Transfer-Encoding: chunked\r\n', 'ffffffffffffffffff\r\nquery=up\r\n0\r\n\r\n'), expect: smuggled },
  { name: 'a chunk size that is not hexadecimal', raw: rawPost('Transfer-Encoding: chunked\r\n', '8g\r\nquery=up\r\n0\r\n\r\n'), expect: smuggled },
  { name: 'a chunk without its CRLF', raw: rawPost('Transfer-Encoding: chunked\r\n', '8\r\nquery=upX0\r\n\r\n'), expect: smuggled },
  { name: 'chunk extensions of 20 KB', raw: rawPost('Transfer-Encoding: chunked\r\n', `8;ext=${'e'.repeat(20_000)}\r\nquery=up\r\n0\r\n\r\n`), expect: { ...smuggled, status: 400 } },
  { name: 'a chunked body with a trailer (taken)', raw: rawPost('Content-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n', '8\r\nquery=up\r\n0\r\nX-Trailer: t\r\n\r\n'), expect: { ...served, reached: true } },
  {
    name: 'two requests pipelined on one connection (both answered, in order)',
    raw: ['GET {prom}/api/v1/query?query=up HTTP/1.1\r\nHost: x\r\n{auth}\r\nGET /api/v1/agents/good HTTP/1.1\r\nHost: x\r\n{auth}Connection: close\r\n\r\n'],
    expect: { status: 200, responses: 2, reached: true },
  },
  {
    name: 'a GET whose body holds a whole request (it stays a body)',
    raw: ['GET /api/v1/agents/good HTTP/1.1\r\nHost: x\r\n{auth}Content-Length: 69\r\nConnection: close\r\n\r\nGET {prom}/api/v1/query?query=smuggled HTTP/1.1\r\nHost: x\r\n\r\n'.replace('Content-Length: 69', `Content-Length: ${'GET /api/v1/agents/good/prometheus/api/v1/query?query=smuggled HTTP/1.1\r\nHost: x\r\n\r\n'.length}`)],
    expect: { status: 200, responses: 1, reached: false },
  },

  // Host and X-Forwarded-* spoofing: nothing kas answers or sends on depends on them
  { name: 'a Host of another site', path: query, headers: [['Host', 'evil.example']], expect: { ...served, headers: { location: null } } },
  { name: 'an empty Host', path: query, headers: [['Host', '']], expect: served },
  { name: 'a Host with an injected path', path: query, headers: [['Host', 'evil.example/../../admin']], expect: served },
  { name: 'two Host headers', path: query, headers: [['Host', '127.0.0.1'], ['Host', 'evil.example']], expect: { status: 400, body: 'prometheus', message: /more than one Host/ } },
  {
    name: 'X-Forwarded-* and friends',
    paths: [query, pods],
    headers: [
      ['X-Forwarded-For', '10.0.0.1, 127.0.0.1'],
      ['X-Forwarded-Host', 'evil.example'],
      ['X-Forwarded-Proto', 'https'],
      ['X-Forwarded-Prefix', '/../admin'],
      ['Forwarded', 'for=127.0.0.1;host=evil.example;proto=https'],
      ['X-Real-IP', '127.0.0.1'],
      ['X-Client-IP', '127.0.0.1'],
      ['True-Client-IP', '127.0.0.1'],
    ],
    expect: { status: 200, body: 'json', upstreamLacks: neverForwarded, headers: { location: null } },
  },
  { name: 'X-Original-URL and X-Rewrite-URL pointing at admin APIs (ignored)', path: query, headers: [['X-Original-URL', '/api/v1/admin/tsdb/snapshot'], ['X-Rewrite-URL', '/federate']], expect: { ...served, upstreamLacks: neverForwarded } },
  { name: 'X-Original-URL pointing at an allowed path, on a refused one', path: `${PROM}/federate`, headers: [['X-Original-URL', '/api/v1/query']], expect: { status: 403, body: 'prometheus' } },
  { name: 'Impersonate-* headers on the Kubernetes API', path: pods, headers: [['Impersonate-User', 'system:admin'], ['Impersonate-Group', 'system:masters'], ['Impersonate-Uid', '0']], expect: { status: 200, body: 'json', upstreamLacks: ['impersonate-user', 'impersonate-group', 'impersonate-uid'] } },
  { name: 'the caller\'s Authorization and cookies never reach an upstream', paths: [query, pods], headers: [['Cookie', 'session=abc']], expect: { status: 200, upstreamLacks: neverForwarded } },
  { name: 'kas\'s own headers sent by a caller (ignored)', path: query, headers: [['X-Kas-Node', 'forged'], ['X-Kas-Agent-Replica', 'forged'], ['X-Trace-Id', 'f'.repeat(32)], ['X-Kas-Timeout-Ms', '1']], expect: { ...served, headers: { 'x-kas-node': /^kas-\d+$/, 'x-kas-agent-replica': /^good-/, 'x-trace-id': /^(?!f{32})[0-9a-f]{32}$/ }, upstreamLacks: neverForwarded } },

  // Hop-by-hop headers: about this connection only
  { name: 'Connection naming Authorization (kas still reads its token)', path: query, headers: [['Connection', 'close, Authorization']], expect: served },
  { name: 'Connection naming a custom header', path: query, headers: [['Connection', 'close, X-Secret'], ['X-Secret', 's3cr3t']], expect: { ...served, upstreamLacks: ['x-secret'] } },
  { name: 'TE, Trailer, Keep-Alive and Proxy-Connection', paths: [query, pods], headers: [['TE', 'trailers'], ['Trailer', 'X-T'], ['Keep-Alive', 'timeout=99999, max=99999'], ['Proxy-Connection', 'keep-alive']], expect: { status: 200, upstreamLacks: neverForwarded } },
  { name: 'Accept-Encoding: gzip passes (the upstream chooses)', path: pods, headers: [['Accept-Encoding', 'gzip']], expect: { status: 200 } },

  // Trace context: continued when valid, replaced when not
  { name: 'a valid traceparent is continued', path: query, headers: [['traceparent', '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01']], expect: { ...served, headers: { 'x-trace-id': /^0af7651916cd43dd8448eb211c80319c$/ } } },
  { name: 'an all-zero traceparent is not', path: query, headers: [['traceparent', `00-${'0'.repeat(32)}-${'0'.repeat(16)}-01`]], expect: { ...served, headers: { 'x-trace-id': /^(?!0{32})[0-9a-f]{32}$/ } } },
  { name: 'a malformed traceparent is not', paths: [query, pods], headers: [['traceparent', 'not-a-trace'], ['tracestate', 'x'.repeat(4000)]], expect: { status: 200, headers: { 'x-trace-id': /^[0-9a-f]{32}$/ } } },
  { name: 'a traceparent of 8 KB', path: query, headers: [['traceparent', `00-${'a'.repeat(8000)}`]], expect: served },
];
