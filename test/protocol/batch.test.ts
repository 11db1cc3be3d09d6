// Packing several tunnel messages into one event and back: what agentk sends and kas unpacks.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Encoder, PacketType } from 'socket.io-parser';
import {
  type AgentMessage,
  BATCH_MAX_MESSAGES,
  PACK_MAX_CHUNK_BYTES,
  PACK_MAX_TEXT_BYTES,
  packMessages,
  readAgentMessages,
  readKasMessages,
  TUNNEL_EVENT,
  unpackMessages,
} from '../../protocol/messages.ts';
import { AgentMessageSchema } from '../../protocol/messageSchemas.ts';

test('a packed batch unpacks into the same messages, their chunks in one buffer on the wire', () => {
  const messages: AgentMessage[] = [
    { type: 'head', id: 1, status: 200, headers: { 'content-type': 'application/json' } },
    { type: 'data', id: 1, chunk: Buffer.from('{"a":') },
    { type: 'data', id: 2, chunk: Buffer.from('event two\n') },
    { type: 'data', id: 1, chunk: Buffer.from('1}') },
    { type: 'end', id: 1 },
  ];
  const packed = packMessages(messages) as { type: string; bytes: Buffer; messages: unknown[] };
  assert.equal(packed.type, 'batch');
  assert.equal(packed.bytes.toString(), '{"a":event two\n1}');
  const { messages: out, error } = unpackMessages(packed);
  assert.equal(error, undefined);
  const parsed = out.map((m) => AgentMessageSchema.parse(m));
  assert.deepEqual(
    parsed.map((m) => (m.type === 'data' ? { ...m, chunk: Buffer.from(m.chunk).toString() } : m)),
    messages.map((m) => (m.type === 'data' ? { ...m, chunk: Buffer.from(m.chunk).toString() } : m)),
  );
});

test('large chunks are not copied: they stay attachments of their own beside the packed ones', () => {
  const big = Buffer.alloc(PACK_MAX_CHUNK_BYTES + 1, 7);
  const packed = packMessages([
    { type: 'data', id: 1, chunk: Buffer.from('small') },
    { type: 'data', id: 2, chunk: big },
  ]) as { bytes: Buffer; messages: { chunk?: Uint8Array }[] };
  assert.equal(packed.bytes.toString(), 'small');
  assert.equal(packed.messages[1]!.chunk, big, 'the very buffer, uncopied');
  const { messages } = unpackMessages(packed);
  assert.equal(Buffer.from((AgentMessageSchema.parse(messages[0]) as { chunk: Uint8Array }).chunk).toString(), 'small');
  assert.equal((AgentMessageSchema.parse(messages[1]) as { chunk: Uint8Array }).chunk, big);
});

test('one message travels as itself', () => {
  const message: AgentMessage = { type: 'end', id: 7 };
  assert.equal(packMessages([message]), message);
  assert.deepEqual(unpackMessages(message), { messages: [message] });
});

test('malformed batches yield an error and no messages; odd entries are left for validation', () => {
  assert.match(unpackMessages([]).error ?? '', /batch of 0/);
  assert.match(unpackMessages(Array.from({ length: BATCH_MAX_MESSAGES + 1 }, () => ({}))).error ?? '', /batch of 65/);
  assert.match(unpackMessages({ type: 'batch', bytes: 42, messages: [{}] }).error ?? '', /malformed batch: bytes/);
  assert.match(unpackMessages({ type: 'batch', bytes: Buffer.alloc(4), messages: [] }).error ?? '', /malformed batch/);
  assert.match(unpackMessages({ type: 'batch', bytes: Buffer.alloc(4), messages: [{ type: 'data', id: 1, offset: 3, length: 2 }] }).error ?? '', /beyond its 4 bytes/);
  // Text that is not base64 decodes to fewer bytes (Buffer.from skips what is not base64): slices past them are refused.
  assert.match(unpackMessages({ type: 'batch', bytes: '!!!!AAAA', messages: [{ type: 'data', id: 1, offset: 0, length: 4 }] }).error ?? '', /beyond its 3 bytes/);
  // A data entry without a valid slice is passed on as it is, and fails validation there.
  const { messages } = unpackMessages({ type: 'batch', bytes: Buffer.alloc(4), messages: [{ type: 'data', id: 1, offset: -1, length: 2 }] });
  assert.equal(messages.length, 1);
  assert.equal(AgentMessageSchema.safeParse(messages[0]).success, false);
});

test("a text batch's base64 is decoded only once the rest of the batch is well formed", (t) => {
  const from = t.mock.method(Buffer, 'from');
  const text = Buffer.alloc(6 * 1024, 1).toString('base64');
  assert.match(unpackMessages({ type: 'batch', bytes: text, messages: [] }).error ?? '', /messages: 0 of them/);
  assert.match(unpackMessages({ type: 'batch', bytes: text, messages: 'nope' }).error ?? '', /messages: expected an array/);
  assert.equal(from.mock.callCount(), 0, 'nothing decoded for a refused batch');
  assert.equal(unpackMessages({ type: 'batch', bytes: text, messages: [{ type: 'data', id: 1, offset: 0, length: 6 * 1024 }] }).messages.length, 1);
  assert.equal(from.mock.callCount(), 1);
});

test('kas to an agent that takes batches: a plain array, each message validated on its own', () => {
  const request = { type: 'request', id: 1, upstream: 'prometheus', method: 'GET', path: '/api/v1/query', query: 'query=up', headers: {}, timeoutMs: 1000, credit: 1024 };
  const { messages, issues } = readKasMessages([request, { type: 'credit', id: 1, bytes: 64 }, { type: 'credit', id: -1, bytes: 1 }, { type: 'cancel', id: 1, reason: 'gone' }]);
  assert.deepEqual(
    messages.map((m) => m.type),
    ['request', 'credit', 'cancel'],
  );
  assert.equal(issues.length, 1, 'the credit with a negative id is refused alone');
  assert.deepEqual(readKasMessages({ type: 'cancel', id: 2, reason: 'x' }).messages, [{ type: 'cancel', id: 2, reason: 'x' }], 'one message as itself');
  const tooMany = readKasMessages(Array.from({ length: BATCH_MAX_MESSAGES + 1 }, () => ({ type: 'cancel', id: 1, reason: 'x' })));
  assert.deepEqual(tooMany.messages, []);
  assert.match(tooMany.issues[0]!, /a batch of 65 messages/);
  assert.match(readKasMessages([]).issues[0]!, /a batch of 0 messages/);
});

/** The WebSocket frames socket.io makes of one tunnel event: a text frame, plus one per binary attachment. */
const frames = (event: unknown) => new Encoder().encode({ type: PacketType.EVENT, nsp: '/', data: [TUNNEL_EVENT, event] }).length;
const readable = (messages: AgentMessage[]) => messages.map((m) => (m.type === 'data' ? { ...m, chunk: Buffer.from(m.chunk).toString() } : { ...m }));

test('to a kas that reads text batches, a small answer or a lone watch event is one frame, read back as sent', () => {
  const answer: AgentMessage[] = [
    { type: 'head', id: 1, status: 200, headers: { 'content-type': 'application/json' } },
    { type: 'data', id: 1, chunk: Buffer.from('{"status":"success"}') },
    { type: 'end', id: 1 },
  ];
  assert.equal(frames(packMessages(answer)), 2, 'binary: the event and its attachment');
  const text = packMessages(answer, true) as { bytes: unknown };
  assert.equal(typeof text.bytes, 'string');
  assert.equal(frames(text), 1);
  assert.deepEqual(readable(readAgentMessages(text).messages), readable(answer));

  const event: AgentMessage[] = [{ type: 'data', id: 9, chunk: Buffer.from('{"type":"MODIFIED"}\n') }];
  assert.equal(frames(packMessages(event)), 2, 'a lone chunk as itself is an attachment');
  assert.equal(frames(packMessages(event, true)), 1, 'packed as text it is not');
  assert.deepEqual(readable(readAgentMessages(packMessages(event, true)).messages), readable(event));
  const end: AgentMessage = { type: 'end', id: 9 };
  assert.equal(packMessages([end], true), end, 'a lone message without a chunk travels as itself');
});

test('text batches stay binary when base64 would cost more than a frame saves', () => {
  const over: AgentMessage[] = Array.from({ length: 3 }, (_, i) => ({ type: 'data', id: i, chunk: Buffer.alloc(PACK_MAX_CHUNK_BYTES, 97 + i) }));
  assert.ok(over.length * PACK_MAX_CHUNK_BYTES > PACK_MAX_TEXT_BYTES);
  const big = packMessages(over, true) as { bytes: unknown };
  assert.ok(big.bytes instanceof Uint8Array, `more than ${PACK_MAX_TEXT_BYTES} packed bytes stay binary`);
  assert.deepEqual(readable(readAgentMessages(big).messages), readable(over));
  const withAttachment: AgentMessage[] = [
    { type: 'data', id: 1, chunk: Buffer.from('small') },
    { type: 'data', id: 2, chunk: Buffer.alloc(PACK_MAX_CHUNK_BYTES + 1, 7) },
  ];
  const mixed = packMessages(withAttachment, true) as { bytes: unknown };
  assert.ok(mixed.bytes instanceof Uint8Array, 'a batch that has an attachment anyway packs its buffer as binary too');
  assert.equal(frames(mixed), 3);
  assert.deepEqual(readable(readAgentMessages(mixed).messages), readable(withAttachment));
});
