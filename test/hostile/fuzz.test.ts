// Fuzzing the tunnel's decoders, the code that reads what the other program sent: kas reading an
// agent's events (readAgentMessages, unpackMessages) and agentk reading kas's (readKasMessage).
// Both are written by hand (agentk carries no zod); the schemas in messageSchemas.ts are the reference.
// For any input: nothing throws, nothing the schema refuses is accepted, and what is accepted is
// what the schema makes of it. A fixed time budget per property here (FUZZ_BUDGET_MS, default
// 1.5 s); `npm run fuzz` gives each a minute. A failure prints fast-check's seed and the
// shrunk counterexample, which `FUZZ_SEED=<seed>` replays.
import assert from 'node:assert/strict';
import { describe, test, type TestContext } from 'node:test';
import fc from 'fast-check';
import { BATCH_MAX_MESSAGES, CHUNK_MAX_BYTES, readAgentMessages, readKasMessage, unpackMessages } from '../../protocol/messages.ts';
import { AgentMessageSchema, describeRefusal, KasMessageSchema, PackedBatchSchema, PackedDataSchema } from '../../protocol/messageSchemas.ts';
import { agentEvent, anything, nearAgentMessage, nearKasMessage } from './fuzz/arbitraries.ts';

const BUDGET_MS = Number(process.env.FUZZ_BUDGET_MS ?? 1_500);
const SEED = process.env.FUZZ_SEED === undefined ? undefined : Number(process.env.FUZZ_SEED);

function check<T>(t: TestContext, arbitrary: fc.Arbitrary<T>, property: (value: T) => void): void {
  const details = fc.check(fc.property(arbitrary, property), {
    numRuns: Number.MAX_SAFE_INTEGER,
    interruptAfterTimeLimit: BUDGET_MS,
    markInterruptAsFailure: false,
    ...(SEED === undefined ? {} : { seed: SEED }),
  });
  if (details.failed) assert.fail(fc.defaultReportMessage(details) ?? 'property failed');
  t.diagnostic(`${details.numRuns} cases in ${BUDGET_MS} ms`);
  // A budget that ran out before any case would prove nothing.
  assert.ok(details.numRuns >= 100, `only ${details.numRuns} cases ran in ${BUDGET_MS} ms`);
}

/**
 * The same message: the same own keys with the same values, binary compared by its bytes. The
 * prototype does not matter (the fast paths hand back the object they were given, the schema a
 * copy of it).
 */
function same(a: unknown, b: unknown): boolean {
  if (a instanceof Uint8Array || b instanceof Uint8Array) {
    return a instanceof Uint8Array && b instanceof Uint8Array && Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(b);
  }
  if (Array.isArray(a) || Array.isArray(b)) {
    return Array.isArray(a) && Array.isArray(b) && a.length === b.length && a.every((v, i) => same(v, b[i]));
  }
  if (typeof a === 'object' && a !== null && typeof b === 'object' && b !== null) {
    const keys = Object.keys(a).filter((k) => (a as Record<string, unknown>)[k] !== undefined).sort();
    const other = Object.keys(b).filter((k) => (b as Record<string, unknown>)[k] !== undefined).sort();
    return same(keys, other) && keys.every((k) => same((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]));
  }
  return Object.is(a, b);
}

const show = (value: unknown) => fc.stringify(value).slice(0, 400);

describe('the tunnel decoder (kas reading an agent)', () => {
  test('one message: accepted exactly when the schema accepts it, as the schema reads it', (t) => {
    check(t, fc.oneof(nearAgentMessage, anything), (raw) => {
      if (Array.isArray(raw) || (raw as { type?: unknown } | null)?.type === 'batch') return;
      const { messages, refused, batchError } = readAgentMessages(raw);
      const reference = AgentMessageSchema.safeParse(raw);
      assert.equal(batchError, undefined);
      assert.equal(messages.length + refused.length, 1);
      assert.equal(messages.length === 1, reference.success, `decoder ${messages.length ? 'accepted' : 'refused'} ${show(raw)}`);
      if (reference.success) assert.ok(same(messages[0], reference.data), `${show(messages[0])} is not ${show(reference.data)}`);
      else assert.ok(describeRefusal(refused[0]).length > 0 && describeRefusal(refused[0]) !== 'accepted', 'a refusal says why');
    });
  });

  test('batches: never throws; every message it yields is one the schema accepts, every chunk within its limits', (t) => {
    check(t, agentEvent, (raw) => {
      const { messages, refused, batchError } = readAgentMessages(raw);
      if (batchError !== undefined) assert.equal(messages.length + refused.length, 0, 'a refused batch yields nothing');
      assert.ok(messages.length + refused.length <= BATCH_MAX_MESSAGES, 'no more messages than a batch may hold');
      for (const message of messages) {
        assert.ok(AgentMessageSchema.safeParse(message).success, `accepted ${show(message)}`);
        if (message.type === 'data') assert.ok(message.chunk instanceof Uint8Array);
      }
    });
  });

  test('plain arrays: each entry is judged as a message of its own; 1 to 64 of them', (t) => {
    check(t, fc.array(nearAgentMessage, { maxLength: BATCH_MAX_MESSAGES + 2 }), (raw) => {
      const { messages, refused, batchError } = readAgentMessages(raw);
      if (raw.length === 0 || raw.length > BATCH_MAX_MESSAGES) {
        assert.ok(batchError, `a batch of ${raw.length} was not refused whole`);
        return;
      }
      assert.equal(batchError, undefined);
      const accepted = raw.map((m) => AgentMessageSchema.safeParse(m)).filter((r) => r.success);
      assert.equal(messages.length, accepted.length);
      assert.equal(refused.length, raw.length - accepted.length);
      messages.forEach((m, i) => assert.ok(same(m, accepted[i]!.data), show(m)));
    });
  });

  test('packed batches: each data entry becomes its slice of the batch buffer, in bounds; other entries are left as they are', (t) => {
    check(t, agentEvent, (raw) => {
      if (Array.isArray(raw) || (raw as { type?: unknown } | null)?.type !== 'batch') return;
      const unpacked = unpackMessages(raw);
      const batch = PackedBatchSchema.safeParse(raw);
      if (!batch.success) {
        assert.ok(unpacked.error, `a malformed batch was unpacked: ${show(raw)}`);
        return;
      }
      const buffer = batch.data.bytes;
      const entries = batch.data.messages.map((entry) => ({ entry, data: PackedDataSchema.safeParse(entry) }));
      const beyond = entries.some(({ data }) => data.success && data.data.offset + data.data.length > buffer.byteLength);
      assert.equal(unpacked.error !== undefined, beyond, `error ${unpacked.error} for ${show(raw)}`);
      if (beyond) return assert.equal(unpacked.messages.length, 0);
      assert.equal(unpacked.messages.length, entries.length);
      entries.forEach(({ entry, data }, i) => {
        const out = unpacked.messages[i] as { type?: unknown; id?: unknown; chunk?: unknown };
        if (!data.success) return assert.equal(out, entry, 'an entry that is no packed data is judged as a message of its own');
        const { id, offset, length } = data.data;
        assert.equal(out.type, 'data');
        assert.equal(out.id, id);
        assert.ok(out.chunk instanceof Uint8Array && out.chunk.byteLength === length && length <= CHUNK_MAX_BYTES);
        assert.ok(Buffer.from(buffer.subarray(offset, offset + length)).equals(out.chunk), 'the slice it names');
      });
    });
  });
});

describe("the agent's request decoder (agentk reading kas)", () => {
  test('accepted exactly when the schema accepts it, as the schema reads it; never throws', (t) => {
    check(t, fc.oneof(nearKasMessage, anything), (raw) => {
      const decoded = readKasMessage(raw);
      const reference = KasMessageSchema.safeParse(raw);
      assert.equal(decoded.success, reference.success, `decoder ${decoded.success ? 'accepted' : 'refused'} ${show(raw)}`);
      if (decoded.success && reference.success) assert.ok(same(decoded.data, reference.data), `${show(decoded.data)} is not ${show(reference.data)}`);
      if (!decoded.success) assert.ok(decoded.issues.length > 0, 'a refusal says why');
    });
  });
});

describe('headers of unusual shapes, which JSON decoding rarely makes and the fuzzer may not', () => {
  class Headers {
    'content-type' = 'text/plain';
  }
  const withHidden = Object.defineProperty({ a: 'b' }, 'hidden', { value: 'x', enumerable: false });
  const many = (n: number, extra: Record<string, unknown> = {}) => Object.assign(Object.fromEntries(Array.from({ length: n }, (_, i) => [`x-h${i}`, 'v'])), extra);
  const shapes: [string, unknown][] = [
    ['a __proto__ key, as JSON.parse makes it', JSON.parse('{"__proto__": "x", "a": "b"}')],
    ['only a __proto__ key', JSON.parse('{"__proto__": ["x"]}')],
    ['128 headers and a __proto__ key', many(128, JSON.parse('{"__proto__": "x"}'))],
    ['129 headers', many(129)],
    ['a null prototype', Object.assign(Object.create(null), { a: 'b', c: ['d'] })],
    ['an inherited header', Object.assign(Object.create({ inherited: 'x' }), { a: 'b' })],
    ['a class instance', new Headers()],
    ['a Map', new Map([['a', 'b']])],
    ['a symbol key', { a: 'b', [Symbol('s')]: 'c' }],
    ['a non-enumerable key', withHidden],
    ['an own constructor key', { constructor: 'x', a: 'b' }],
    ['a sparse array value', { a: [, 'b'] }],
    ['an empty name', { '': 'b' }],
  ];
  for (const [name, headers] of shapes) {
    test(name, () => {
      const head = { type: 'head', id: 1, status: 200, headers };
      const { messages } = readAgentMessages(head);
      const reference = AgentMessageSchema.safeParse(head);
      assert.equal(messages.length === 1, reference.success, `kas ${messages.length ? 'accepted' : 'refused'} it`);
      if (reference.success) assert.ok(same(messages[0], reference.data), `${show(messages[0])} is not ${show(reference.data)}`);
      const request = { type: 'request', id: 1, upstream: 'prometheus', method: 'GET', path: '/', query: '', headers, timeoutMs: 0, credit: 1 };
      const read = readKasMessage(request);
      const expected = KasMessageSchema.safeParse(request);
      assert.equal(read.success, expected.success, `agentk ${read.success ? 'accepted' : 'refused'} it`);
      if (read.success && expected.success) assert.ok(same(read.data, expected.data), `${show(read.data)} is not ${show(expected.data)}`);
    });
  }
});
