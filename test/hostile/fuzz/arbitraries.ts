// Generators for the tunnel's decoders: anything at all (what a socket.io event can carry: JSON
// values and binary), and messages that are nearly right, a field or a limit off, which is where
// a hand-written fast path and its schema could disagree.
import fc from 'fast-check';
import { BATCH_MAX_MESSAGES, CHUNK_MAX_BYTES, PROTOCOL_VERSION } from '../../../protocol/messages.ts';

/** Any value with binary leaves, null-prototype objects and awkward keys among them. */
export const anything: fc.Arbitrary<unknown> = fc.anything({
  maxDepth: 3,
  maxKeys: 6,
  withNullPrototype: true,
  withTypedArray: true,
  withSparseArray: true,
  withBoxedValues: true,
  withMap: true,
  withSet: true,
  withDate: true,
  withBigInt: true,
  key: fc.oneof(fc.string({ maxLength: 8 }), fc.constantFrom('type', 'id', 'chunk', 'headers', 'status', '__proto__', 'constructor', 'toString')),
});

const edgeNumbers = fc.constantFrom(
  0,
  1,
  -1,
  0.5,
  -0,
  99,
  100,
  599,
  600,
  2 ** 31,
  2 ** 53,
  Number.MAX_SAFE_INTEGER,
  Number.MAX_SAFE_INTEGER + 1,
  1e300,
  Number.MAX_VALUE,
  Number.NaN,
  Number.POSITIVE_INFINITY,
  Number.NEGATIVE_INFINITY,
);

/** A request id: mostly fine, sometimes one a limit off, sometimes not a number. */
export const requestId: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 6, arbitrary: fc.nat({ max: 1000 }) },
  { weight: 2, arbitrary: edgeNumbers },
  { weight: 1, arbitrary: fc.double() },
  { weight: 1, arbitrary: anything },
);

/** Whole numbers near and past their bounds (and the odd non-number). */
const integerish = (min: number, max: number): fc.Arbitrary<unknown> =>
  fc.oneof(
    { weight: 6, arbitrary: fc.integer({ min, max }) },
    { weight: 3, arbitrary: edgeNumbers },
    { weight: 1, arbitrary: fc.integer() },
    { weight: 1, arbitrary: anything },
  );

const longString = (length: number) => fc.constantFrom('x'.repeat(length), 'y'.repeat(length + 1));

export const bytes: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 6, arbitrary: fc.uint8Array({ maxLength: 48 }) },
  { weight: 2, arbitrary: fc.uint8Array({ maxLength: 48 }).map((a) => Buffer.from(a)) },
  { weight: 1, arbitrary: fc.constantFrom(new Uint8Array(CHUNK_MAX_BYTES), new Uint8Array(CHUNK_MAX_BYTES + 1)) },
  { weight: 1, arbitrary: fc.oneof(fc.string(), fc.array(fc.nat({ max: 255 })), fc.constant(new ArrayBuffer(4)), anything) },
);

const headerName = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom('content-type', 'content-length', 'x-trace-id', 'x-kas-node', 'transfer-encoding', 'set-cookie') },
  { weight: 3, arbitrary: fc.string({ minLength: 0, maxLength: 12 }) },
  { weight: 1, arbitrary: fc.constantFrom('', '__proto__', 'constructor', 'a'.repeat(256), 'b'.repeat(257)) },
);

const headerValue = fc.oneof(
  { weight: 6, arbitrary: fc.string({ maxLength: 16 }) },
  { weight: 3, arbitrary: fc.array(fc.string({ maxLength: 8 }), { maxLength: 4 }) },
  { weight: 1, arbitrary: longString(16 * 1024) },
  { weight: 1, arbitrary: fc.array(fc.constant('v'), { minLength: 63, maxLength: 66 }) },
  { weight: 1, arbitrary: fc.array(fc.oneof(fc.string(), anything), { maxLength: 3 }) },
  { weight: 1, arbitrary: anything },
);

export const headers: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 8, arbitrary: fc.dictionary(headerName, headerValue, { maxKeys: 5 }) },
  { weight: 1, arbitrary: fc.dictionary(headerName, headerValue, { maxKeys: 5, noNullPrototype: false }) },
  { weight: 1, arbitrary: fc.integer({ min: 126, max: 130 }).map((n) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`x-h${i}`, 'v']))) },
  { weight: 1, arbitrary: anything },
);

/** A record with every field most of the time, some missing now and then, and stray extra fields. */
function message(fields: Record<string, fc.Arbitrary<unknown>>): fc.Arbitrary<unknown> {
  return fc
    .tuple(
      fc.oneof({ weight: 4, arbitrary: fc.record(fields) }, { weight: 1, arbitrary: fc.record(fields, { requiredKeys: [] }) }),
      fc.option(fc.dictionary(fc.string({ maxLength: 6 }), anything, { maxKeys: 2 }), { freq: 4 }),
    )
    .map(([record, extra]) => ({ ...(extra ?? {}), ...record }));
}

/** One agent → kas message: nearly right, most of the time. */
export const nearAgentMessage: fc.Arbitrary<unknown> = fc.oneof(
  message({ type: fc.constant('head'), id: requestId, status: integerish(100, 599), headers }),
  message({ type: fc.constant('data'), id: requestId, chunk: bytes }),
  message({ type: fc.constant('end'), id: requestId }),
  message({
    type: fc.constant('error'),
    id: requestId,
    code: fc.oneof(fc.constantFrom('upstream_unreachable', 'upstream_timeout', 'policy_denied', 'not_supported', 'bad_request', 'internal'), fc.string(), anything),
    message: fc.oneof(fc.string({ maxLength: 20 }), longString(4096), anything),
  }),
  message({ type: fc.oneof(fc.string({ maxLength: 8 }), anything), id: requestId }),
);

/** What a packed batch names for a data entry: an offset and length near its buffer's bounds. */
const packedData = (size: number) =>
  message({
    type: fc.constant('data'),
    id: requestId,
    offset: fc.oneof(fc.integer({ min: 0, max: size + 2 }), edgeNumbers, anything),
    length: fc.oneof(fc.integer({ min: 0, max: size + 2 }), fc.constantFrom(CHUNK_MAX_BYTES, CHUNK_MAX_BYTES + 1), edgeNumbers, anything),
  });

/** Batches: plain arrays of messages, and packed batches whose entries slice one buffer. */
export const agentEvent: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 4, arbitrary: nearAgentMessage },
  { weight: 2, arbitrary: anything },
  { weight: 2, arbitrary: fc.array(nearAgentMessage, { maxLength: 6 }) },
  { weight: 1, arbitrary: fc.integer({ min: BATCH_MAX_MESSAGES - 1, max: BATCH_MAX_MESSAGES + 1 }).map((n) => Array.from({ length: n }, (_, i) => ({ type: 'end', id: i }))) },
  {
    weight: 3,
    arbitrary: fc.integer({ min: 0, max: 40 }).chain((size) =>
      message({
        type: fc.constant('batch'),
        bytes: fc.oneof(
          { weight: 4, arbitrary: fc.uint8Array({ minLength: size, maxLength: size }) },
          // base64 text, as agentk sends small batches to a kas that reads them: exact, or a few bytes off
          { weight: 2, arbitrary: fc.uint8Array({ minLength: Math.max(0, size - 2), maxLength: size + 2 }).map((a) => Buffer.from(a).toString('base64')) },
          { weight: 1, arbitrary: bytes },
        ),
        messages: fc.oneof(
          { weight: 5, arbitrary: fc.array(fc.oneof(packedData(size), nearAgentMessage), { minLength: 0, maxLength: 6 }) },
          { weight: 1, arbitrary: fc.constant(Array.from({ length: BATCH_MAX_MESSAGES + 1 }, (_, i) => ({ type: 'end', id: i }))) },
          { weight: 1, arbitrary: anything },
        ),
      }),
    ),
  },
);

/** One kas → agent message: a request, credit, cancel or drain, nearly right. */
export const nearKasMessage: fc.Arbitrary<unknown> = fc.oneof(
  {
    weight: 4,
    arbitrary: message({
      type: fc.constant('request'),
      id: requestId,
      upstream: fc.oneof(fc.constantFrom('prometheus', 'kubernetes'), fc.string({ maxLength: 10 }), anything),
      method: fc.oneof(fc.constantFrom('GET', 'HEAD', 'POST'), fc.constantFrom('get', 'PUT', 'DELETE', 'CONNECT', ''), anything),
      path: fc.oneof(fc.string({ maxLength: 20 }).map((s) => `/${s}`), fc.string({ maxLength: 8 }), longString(8191).map((s) => `/${s}`), anything),
      query: fc.oneof(fc.string({ maxLength: 20 }), longString(64 * 1024), anything),
      headers,
      body: fc.option(bytes, { freq: 2 }).map((b) => b ?? undefined),
      timeoutMs: integerish(0, 120_000),
      credit: integerish(1, 1 << 20),
      traceparent: fc.option(fc.oneof(fc.string({ maxLength: 60 }), longString(128), anything)).map((v) => v ?? undefined),
      tracestate: fc.option(fc.oneof(fc.string({ maxLength: 20 }), longString(512), anything)).map((v) => v ?? undefined),
    }),
  },
  { weight: 2, arbitrary: message({ type: fc.constant('credit'), id: requestId, bytes: integerish(1, 1 << 20) }) },
  { weight: 2, arbitrary: message({ type: fc.constant('cancel'), id: requestId, reason: fc.oneof(fc.string({ maxLength: 20 }), longString(256), anything) }) },
  { weight: 1, arbitrary: message({ type: fc.constant('drain') }) },
  { weight: 1, arbitrary: message({ type: fc.oneof(fc.string({ maxLength: 8 }), anything), id: requestId, protocol: fc.constant(PROTOCOL_VERSION) }) },
  { weight: 2, arbitrary: anything },
);
