// A registered agent that misbehaves. kas holds an answer that is not a stream until its first
// body bytes (or its end): a violation before them is a 502 (504 for the deadline,
// KAS_REQUEST_TIMEOUT=2s on this node) in the caller's language; after them the answer is cut,
// never ended as if complete; a stream (a watch) is passed on at its head, so it is cut after
// that. The headers kas owns are kas's, whatever the agent sends.
import type { RogueCase, RogueStep } from './case.ts';

const json = { 'content-type': 'application/json' };
type Expect = RogueCase['expect'];

/** The same misbehaviour answering a Prometheus query and a Kubernetes list. */
function both(name: string, script: readonly RogueStep[], expect: Expect): RogueCase[] {
  return [
    { name: `${name} (Prometheus)`, ask: 'prometheus', script, expect },
    { name: `${name} (Kubernetes)`, ask: 'kubernetes', script, expect },
  ];
}

const failed = (message: RegExp): Expect => ({ status: 502, body: 'language', message, ended: 'clean' });
const deadline: Expect = { status: 504, body: 'language', message: /KAS_REQUEST_TIMEOUT/, ended: 'clean', notBeforeMs: 1_800, withinMs: 4_000 };
const cutAfter = (bytes: string): Expect => ({ status: 200, body: { exactly: bytes }, ended: 'cut' });

export const rogueCases: RogueCase[] = [
  // The controls
  ...both('a proper answer', [{ head: 200, headers: json }, { data: '{"status":"success"}' }, 'end'], { status: 200, body: { exactly: '{"status":"success"}' }, ended: 'clean' }),
  ...both('a proper answer with a Content-Length', [{ head: 200, headers: { ...json, 'content-length': '2' } }, { data: '{}' }, 'end'], { status: 200, body: { exactly: '{}' }, ended: 'clean' }),
  ...both('an upstream error passes through', [{ head: 500, headers: json }, { data: '{"upstream":"broke"}' }, 'end'], { status: 500, body: { exactly: '{"upstream":"broke"}' }, ended: 'clean' }),

  // Violations before the first body bytes: a clean error in the caller's language
  ...both('a second head before any body', [{ head: 200 }, { head: 500 }, { data: 'x' }, 'end'], failed(/broke the tunnel protocol: second head/)),
  ...both('a first chunk over the message limit', [{ head: 200 }, { dataBytes: 16 * 1024 + 1 }, 'end'], failed(/chunk of 16385 bytes exceeds 16384/)),
  ...both('a first chunk longer than the Content-Length', [{ head: 200, headers: { 'content-length': '5' } }, { data: 'hello, and more' }, 'end'], failed(/more bytes than the Content-Length of 5/)),
  ...both('an end with none of the Content-Length', [{ head: 200, headers: { 'content-length': '100' } }, 'end'], failed(/end after 0 of the 100 bytes/)),
  ...both('data before the head', [{ data: 'too early' }], failed(/data before head/)),
  ...both('an end before the head', ['end'], failed(/end before head/)),
  ...both('a 1xx status as the answer', [{ head: 101, headers: { upgrade: 'websocket', connection: 'upgrade' } }, { data: 'HTTP/1.1 200 OK\r\n\r\n' }, 'end'], failed(/status 101 is not a final answer/)),
  ...both('a header name HTTP cannot carry', [{ head: 200, headers: { 'bad name': 'v' } }, { data: 'x' }, 'end'], failed(/header "bad name" cannot be sent/)),
  ...both('a header value with a CRLF in it', [{ head: 200, headers: { 'x-evil': 'a\r\nset-cookie: pwned=1' } }, { data: 'x' }, 'end'], { ...failed(/cannot be sent over HTTP/), headers: { 'set-cookie': null, 'x-evil': null } }),
  ...both('a Content-Length that is not a number', [{ head: 200, headers: { 'content-length': 'abc' } }, { data: 'x' }, 'end'], failed(/invalid Content-Length/)),
  ...both('two Content-Lengths that differ', [{ head: 200, headers: { 'content-length': ['1', '2'] } }, { data: 'x' }, 'end'], failed(/invalid Content-Length/)),
  ...both('a head, then the upstream fails', [{ head: 200 }, { error: 'upstream_unreachable' }], failed(/could not reach its .*the rogue says upstream_unreachable/)),
  ...both('the upstream timed out', [{ error: 'upstream_timeout' }], { status: 504, body: 'language', message: /did not answer in time/, ended: 'clean' }),
  ...both('the policy refused', [{ error: 'policy_denied', message: 'policy.kubernetes.deny[0] refuses it' }], { status: 403, body: 'language', message: /refused the request: policy\.kubernetes\.deny\[0\]/, ended: 'clean' }),
  ...both('a capability it does not have', [{ error: 'not_supported' }], { status: 403, body: 'language', ended: 'clean' }),
  ...both('it could not send the request', [{ error: 'bad_request' }], { status: 400, body: 'language', ended: 'clean' }),
  ...both('an error code kas does not know (ignored), then nothing', [{ error: 'made_up' }], deadline),
  ...both('a head, then silence until the deadline', [{ head: 200 }], deadline),
  ...both('nothing at all until the deadline', [], deadline),
  ...both('only malformed messages until the deadline', [{ message: { type: 'head', status: 'ok' } }, { message: { type: 'data', chunk: 'text' } }, { message: { type: 'hijack' } }], deadline),

  // Violations after the first body bytes: the answer is cut short, and what follows never reaches the caller
  ...both('a second head after some body', [{ head: 200 }, { data: 'first;' }, { waitMs: 100 }, { head: 500 }, { data: 'after the violation' }, 'end'], cutAfter('first;')),
  ...both('a chunk over the message limit after some body', [{ head: 200 }, { data: 'first;' }, { waitMs: 100 }, { dataBytes: 16 * 1024 + 1 }, { data: 'after' }, 'end'], cutAfter('first;')),
  ...both('a body shorter than its Content-Length', [{ head: 200, headers: { 'content-length': '100' } }, { data: 'hello' }, { waitMs: 100 }, 'end'], cutAfter('hello')),
  ...both('a head and some body, then silence until the deadline', [{ head: 200 }, { data: 'first;' }], { ...cutAfter('first;'), notBeforeMs: 1_800, withinMs: 4_000 }),
  ...both('some body, then the upstream fails', [{ head: 200 }, { data: 'first;' }, { waitMs: 100 }, { error: 'upstream_unreachable' }], cutAfter('first;')),
  // Every byte the Content-Length promised has gone out: the answer is complete, the rest never leaves.
  ...both('a body longer than its Content-Length', [{ head: 200, headers: { 'content-length': '5' } }, { data: 'hello' }, { waitMs: 100 }, { data: 'HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}' }, 'end'], { status: 200, body: { exactly: 'hello' }, ended: 'clean' }),

  // Streams are passed on at their head
  { name: 'a watch: a second head after the first', ask: 'watch', script: [{ head: 200 }, { waitMs: 100 }, { head: 500 }, { data: '{"type":"ADDED"}\n' }], expect: { status: 200, body: { exactly: '' }, ended: 'cut' } },
  { name: 'a watch: events, then an oversized chunk', ask: 'watch', script: [{ head: 200 }, { data: '{"type":"ADDED"}\n' }, { waitMs: 100 }, { dataBytes: 16 * 1024 + 1 }], expect: { status: 200, body: { exactly: '{"type":"ADDED"}\n' }, ended: 'cut' } },
  // An event and the violation after it read in one go: the event still reaches the caller before the cut.
  { name: 'a watch: an event and an oversized chunk read together', ask: 'watch', script: [{ head: 200 }, { together: [{ data: '{"type":"ADDED"}\n' }, { dataBytes: 16 * 1024 + 1 }] }], expect: { status: 200, body: { exactly: '{"type":"ADDED"}\n' }, ended: 'cut' } },
  { name: 'a watch: an event and an upstream failure read together', ask: 'watch', script: [{ head: 200 }, { together: [{ data: '{"type":"ADDED"}\n' }, { error: 'upstream_unreachable' }] }], expect: { status: 200, body: { exactly: '{"type":"ADDED"}\n' }, ended: 'cut' } },
  ...both('body bytes and an upstream failure read together', [{ head: 200, headers: json }, { together: [{ data: '{"partial":' }, { error: 'upstream_unreachable' }] }], cutAfter('{"partial":')),
  { name: 'a watch that ends cleanly', ask: 'watch', script: [{ head: 200 }, { data: '{"type":"ADDED"}\n' }, 'end'], expect: { status: 200, body: { exactly: '{"type":"ADDED"}\n' }, ended: 'clean' } },
  { name: 'a watch whose upstream fails after an event', ask: 'watch', script: [{ head: 200 }, { data: '{"type":"ADDED"}\n' }, { waitMs: 100 }, { error: 'upstream_unreachable' }], expect: { status: 200, body: { exactly: '{"type":"ADDED"}\n' }, ended: 'cut' } },
  { name: 'a watch that fails before its head', ask: 'watch', script: [{ data: 'x' }], expect: { status: 502, body: 'kubernetes', message: /data before head/, ended: 'clean' } },

  // The headers kas owns, and the hop-by-hop ones, are never the agent's
  ...both(
    "the agent sends kas's own headers and hop-by-hop ones",
    [
      {
        head: 200,
        headers: {
          ...json,
          'X-Trace-Id': 'f'.repeat(32),
          'X-Kas-Node': 'forged-node',
          'X-Kas-Agent-Replica': 'forged-replica',
          'x-kas-not-here': '1',
          'Set-Cookie': 'session=stolen',
          connection: 'close, x-secret',
          'keep-alive': 'timeout=1',
          'proxy-authenticate': 'Basic',
          upgrade: 'h2c',
          trailer: 'x-t',
          'transfer-encoding': 'chunked',
          'x-passes': 'yes',
        },
      },
      { data: '{}' },
      'end',
    ],
    {
      status: 200,
      body: { exactly: '{}' },
      ended: 'clean',
      headers: {
        'x-trace-id': /^(?!f{32})[0-9a-f]{32}$/,
        'x-kas-node': /^kas-0$/,
        'x-kas-agent-replica': /^rogue-/,
        'x-kas-not-here': null,
        'set-cookie': null,
        'keep-alive': null,
        'proxy-authenticate': null,
        upgrade: null,
        trailer: null,
        'x-passes': /^yes$/,
      },
    },
  ),
];
