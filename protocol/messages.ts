// The tunnel between kas and agentk: the only module both programs import.
//
// One socket.io event carries every message in each direction (TUNNEL_EVENT), and each message
// is a discriminated union on `type`. Each side checks everything the other sends before looking
// at it, by hand here: the zod schemas in messageSchemas.ts are the reference these readers are
// held to (test/hostile/fuzz.test.ts), and what kas uses to say why it refused a message. agentk
// never loads zod (its memory: bench/README.md, footprint).
//
// A request is answered by a stream: `head` once, then `data` chunks, then `end` or `error`.
// Flow control is credit based: kas grants a window of bytes with the request and tops it up
// with `credit` as the caller's HTTP connection drains. An agent never sends more bytes than it
// has credit for, so kas buffers at most one window per stream, whatever the response size.
import type { AgentMessage, KasMessage, TunnelRequest } from './messageSchemas.ts';

export type { AgentMessage, Handshake, KasMessage, TunnelRequest } from './messageSchemas.ts';

export const TUNNEL_EVENT = 'tunnel';
export const PROTOCOL_VERSION = 1;

/** Largest payload of one `data` message. Small chunks let streams on one connection interleave. */
export const CHUNK_MAX_BYTES = 16 * 1024;
/** Bytes an agent may send on a stream before it needs more credit. */
export const INITIAL_CREDIT_BYTES = 256 * 1024;
/** Largest socket.io frame either side accepts; a larger one closes the connection. */
export const FRAME_MAX_BYTES = 1024 * 1024;
/**
 * A sender may put several messages in one socket.io event, so that a small answer's head, data
 * and end cost one WebSocket message (one write, one wake-up) instead of three, and a watch that
 * fans out to many callers does not cost a frame per event. Two forms: a plain array of messages,
 * or a packed batch (what agentk sends) whose data chunks travel as ONE binary attachment, each
 * `data` entry naming its slice; socket.io would otherwise make every chunk an attachment and
 * frame of its own (and refuses a packet with more than 10). Each message in a batch is
 * validated on its own. Batches are bounded in count and in chunk bytes. kas sends plain arrays
 * (requests, credit, cancels of one event-loop turn) to an agent whose handshake says `batches`.
 */
export const BATCH_MAX_MESSAGES = 64;
export const BATCH_MAX_BYTES = 256 * 1024;
/**
 * Only chunks up to this size are packed (copied) into a batch's buffer: watch events and small
 * answers. Larger ones travel as attachments of their own, uncopied, at most
 * BATCH_MAX_ATTACHMENTS per batch (socket.io refuses a packet with more than 10).
 */
export const PACK_MAX_CHUNK_BYTES = 4 * 1024;
export const BATCH_MAX_ATTACHMENTS = 8;
/**
 * A packed batch whose buffer is this small, and which has no attachments of its own, carries
 * its buffer as base64 text in the event (`bytes` a string) to a kas that reads that form
 * (KasFeatures): socket.io sends an event with a binary attachment as two WebSocket frames, so
 * the text form makes a small answer or a watch event one frame (one write, one wake-up) instead
 * of two, which costs less than the encoding. Larger buffers stay binary (base64 is a third larger).
 */
export const PACK_MAX_TEXT_BYTES = 8 * 1024;

/**
 * What kas reads beyond protocol 1, sent as FEATURES_EVENT once an agent is connected; a sender
 * uses a form only once the other side said it reads it. An agent that does not know the event
 * ignores it (socket.io drops events nobody listens to), and an older kas never sends it.
 */
export const FEATURES_EVENT = 'features';
export interface KasFeatures {
  /** Packed batches with `bytes` as base64 text (PACK_MAX_TEXT_BYTES). */
  textBatches?: boolean;
}
export const KAS_FEATURES: KasFeatures = Object.freeze({ textBatches: true });

/** Largest request body kas sends to an agent (Prometheus form posts are small). */
export const REQUEST_BODY_MAX_BYTES = 512 * 1024;

export const UPSTREAMS = ['prometheus', 'kubernetes'] as const;
export type Upstream = (typeof UPSTREAMS)[number];

export const AGENT_ID_PATTERN = /^[A-Za-z0-9._-]{1,63}$/;

// ---- connection refusals ----

/** How a refusal for rate begins; it ends with when to come back: `retry in <ms>ms`. */
export const RATE_LIMITED_PREFIX = 'rate limited: too many agent connections at once';

export function rateLimitedMessage(retryInMs: number): string {
  return `${RATE_LIMITED_PREFIX}; retry in ${Math.max(0, Math.round(retryInMs))}ms`;
}

/** When kas said to come back (a refusal for rate), or undefined for any other refusal. */
export function retryHintMs(message: string): number | undefined {
  if (!message.startsWith(RATE_LIMITED_PREFIX)) return undefined;
  const ms = /retry in (\d{1,7})ms$/.exec(message)?.[1];
  return ms === undefined ? undefined : Number(ms);
}

// ---- agentk → kas ----

/** Why an agent could not produce an upstream response; kas maps each to a status. */
export const AGENT_ERROR_CODES = [
  'upstream_unreachable', // 502
  'upstream_timeout', // 504
  'policy_denied', // 403
  'not_supported', // 403: a capability this agent does not offer
  'bad_request', // 400
  'internal', // 502
] as const;
export type AgentErrorCode = (typeof AGENT_ERROR_CODES)[number];

// ---- batches ----

/** PackedDataSchema's rules (messageSchemas.ts) by hand: every data entry of every packed batch is checked. */
function isPackedData(entry: unknown): entry is { id: number; offset: number; length: number } {
  if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) return false;
  const e = entry as { type?: unknown; id?: unknown; offset?: unknown; length?: unknown };
  return (
    e.type === 'data' &&
    typeof e.id === 'number' &&
    Number.isSafeInteger(e.id) &&
    e.id >= 0 &&
    typeof e.offset === 'number' &&
    Number.isSafeInteger(e.offset) &&
    e.offset >= 0 &&
    typeof e.length === 'number' &&
    Number.isSafeInteger(e.length) &&
    e.length > 0 &&
    e.length <= CHUNK_MAX_BYTES
  );
}

const packable = (m: AgentMessage): boolean => m.type === 'data' && m.chunk.byteLength <= PACK_MAX_CHUNK_BYTES;

/**
 * One message as it is, several as a packed batch with their small chunks in one buffer; with
 * `text` (the kas reads it: KasFeatures), a small buffer goes as base64 text, and a lone small
 * chunk is packed too, so that the event is one WebSocket frame.
 */
export function packMessages(messages: AgentMessage[], text = false): unknown {
  if (messages.length === 1 && !(text && packable(messages[0]!))) return messages[0];
  let total = 0;
  let attachments = 0;
  for (const m of messages) {
    if (m.type !== 'data') continue;
    if (packable(m)) total += m.chunk.byteLength;
    else attachments++;
  }
  const bytes = Buffer.allocUnsafe(total);
  let offset = 0;
  const entries = messages.map((m) => {
    if (m.type !== 'data' || !packable(m)) return m;
    bytes.set(m.chunk, offset);
    const entry = { type: 'data', id: m.id, offset, length: m.chunk.byteLength };
    offset += m.chunk.byteLength;
    return entry;
  });
  const asText = text && attachments === 0 && total <= PACK_MAX_TEXT_BYTES;
  return { type: 'batch', bytes: asText ? bytes.toString('base64') : bytes, messages: entries };
}

/** A data message unpacked from a packed batch: its id and slice were checked on the way out. */
class UnpackedData {
  readonly type = 'data';
  readonly id: number;
  readonly chunk: Uint8Array;
  constructor(id: number, chunk: Uint8Array) {
    this.id = id;
    this.chunk = chunk;
  }
}

/**
 * The messages of one socket.io event, not yet validated one by one: the event itself, the
 * elements of a plain array, or a packed batch's entries with their chunks put back (as views of
 * the batch's buffer). A malformed batch yields an error and no messages.
 */
export function unpackMessages(raw: unknown): { messages: unknown[]; error?: string } {
  if (Array.isArray(raw)) {
    if (raw.length === 0 || raw.length > BATCH_MAX_MESSAGES) return { messages: [], error: `a batch of ${raw.length} messages (1 to ${BATCH_MAX_MESSAGES})` };
    return { messages: raw };
  }
  if (typeof raw !== 'object' || raw === null || (raw as { type?: unknown }).type !== 'batch') return { messages: [raw] };
  const { bytes, messages } = raw as { bytes?: unknown; messages?: unknown };
  const isBytes = typeof bytes === 'string' || bytes instanceof Uint8Array;
  if (!isBytes || !Array.isArray(messages) || messages.length < 1 || messages.length > BATCH_MAX_MESSAGES) {
    const why = !isBytes
      ? 'bytes: expected binary data or base64 text'
      : !Array.isArray(messages)
        ? 'messages: expected an array'
        : `messages: ${messages.length} of them (1 to ${BATCH_MAX_MESSAGES})`;
    return { messages: [], error: `a malformed batch: ${why}` };
  }
  // Decoded only once the rest of the batch's shape is right.
  const packed = typeof bytes === 'string' ? Buffer.from(bytes, 'base64') : bytes;
  const out: unknown[] = [];
  for (const entry of messages as unknown[]) {
    if (!isPackedData(entry)) {
      out.push(entry); // anything else is validated as a message of its own
      continue;
    }
    const { id, offset, length } = entry;
    if (offset + length > packed.byteLength) return { messages: [], error: `a batch entry beyond its ${packed.byteLength} bytes` };
    out.push(new UnpackedData(id, packed.subarray(offset, offset + length)));
  }
  return { messages: out };
}

// ---- readers ----
//
// The schemas' rules checked by hand: every answer carries a head, data and an end, and every
// request one request message, and zod costs more than the rest of a small request's handling
// (and agentk would carry it only for this). test/hostile/fuzz.test.ts holds each reader to its
// schema: the same messages accepted, read the same way.

const isId = (id: unknown): id is number => typeof id === 'number' && Number.isSafeInteger(id) && id >= 0;
const MAX_HEADER_VALUE = 16 * 1024;
const MAX_HEADERS = 128;

function isHeaderValue(value: unknown): value is string | string[] {
  if (typeof value === 'string') return value.length <= MAX_HEADER_VALUE;
  if (!Array.isArray(value) || value.length > 64) return false;
  for (let i = 0; i < value.length; i++) {
    const v: unknown = value[i];
    if (typeof v !== 'string' || v.length > MAX_HEADER_VALUE) return false;
  }
  return true;
}

/** zod's test for a record: an object whose constructor, if it has one, looks like Object. */
function isRecordLike(o: object): boolean {
  const ctor = (o as { constructor?: unknown }).constructor;
  if (typeof ctor !== 'function') return true;
  const prototype = (ctor as { prototype?: unknown }).prototype;
  return typeof prototype === 'object' && prototype !== null && !Array.isArray(prototype) && Object.hasOwn(prototype, 'isPrototypeOf');
}

/**
 * Headers as the schema reads them, or undefined when it would refuse them. The plain objects
 * socket.io decodes come back as they are; anything else the schema takes (another prototype, a
 * `__proto__` key, which it drops) comes back as a copy of its own enumerable string keys.
 */
function readHeaders(raw: unknown): Record<string, string | string[]> | undefined {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return undefined;
  const prototype = Object.getPrototypeOf(raw) as unknown;
  if (prototype === Object.prototype || prototype === null) {
    let count = 0;
    let plain = true;
    for (const name in raw) {
      if (name === '__proto__') {
        plain = false;
        continue;
      }
      if (++count > MAX_HEADERS || name.length === 0 || name.length > 256) return undefined;
      if (!isHeaderValue((raw as Record<string, unknown>)[name])) return undefined;
    }
    if (plain && Object.getOwnPropertySymbols(raw).length === 0) return raw as Record<string, string | string[]>;
  }
  if (!isRecordLike(raw)) return undefined;
  const out: Record<string, string | string[]> = {};
  let count = 0;
  for (const name of Reflect.ownKeys(raw)) {
    if (name === '__proto__' || !Object.prototype.propertyIsEnumerable.call(raw, name)) continue;
    if (typeof name !== 'string' || name.length === 0 || name.length > 256) return undefined;
    const value = (raw as Record<string, unknown>)[name];
    if (!isHeaderValue(value)) return undefined;
    out[name] = Array.isArray(value) ? [...value] : value;
    count++;
  }
  return count > MAX_HEADERS ? undefined : out;
}

const ERROR_CODES: ReadonlySet<unknown> = new Set(AGENT_ERROR_CODES);

/** An agent's message as the schema reads it, or undefined when the schema refuses it. */
function asAgentMessage(raw: unknown): AgentMessage | undefined {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return undefined;
  const m = raw as { type?: unknown; id?: unknown; chunk?: unknown; status?: unknown; headers?: unknown; code?: unknown; message?: unknown };
  if (m.type !== 'head' && m.type !== 'data' && m.type !== 'end' && m.type !== 'error') return undefined;
  if (!isId(m.id)) return undefined;
  switch (m.type) {
    case 'data':
      return m.chunk instanceof Uint8Array ? { type: 'data', id: m.id, chunk: m.chunk } : undefined;
    case 'end':
      return { type: 'end', id: m.id };
    case 'head': {
      if (typeof m.status !== 'number' || !Number.isInteger(m.status) || m.status < 100 || m.status > 599) return undefined;
      const headers = readHeaders(m.headers);
      return headers && { type: 'head', id: m.id, status: m.status, headers };
    }
    case 'error':
      if (!ERROR_CODES.has(m.code) || typeof m.message !== 'string' || m.message.length > 4096) return undefined;
      return { type: 'error', id: m.id, code: m.code as AgentErrorCode, message: m.message };
  }
}

/**
 * Everything an agent sent in one socket.io event, each message validated once: the ones that
 * pass, the ones that did not (as sent: messageSchemas.ts's describeRefusal says why, made only
 * for the few that are logged, so a flood of malformed messages costs no error objects), or what
 * was wrong with the batch as a whole.
 */
export function readAgentMessages(raw: unknown): { messages: AgentMessage[]; refused: unknown[]; batchError?: string } {
  const { messages: entries, error } = unpackMessages(raw);
  if (error) return { messages: [], refused: [], batchError: error };
  const messages: AgentMessage[] = [];
  const refused: unknown[] = [];
  for (const entry of entries) {
    if (entry instanceof UnpackedData) {
      messages.push(entry);
      continue;
    }
    const message = asAgentMessage(entry);
    if (message) messages.push(message);
    else refused.push(entry);
  }
  return { messages, refused };
}

/** What kas sent, validated: the message as the schema reads it, or why the schema would refuse it. */
export function readKasMessage(raw: unknown): { success: true; data: KasMessage } | { success: false; issues: string } {
  const read = asKasMessage(raw);
  return typeof read === 'string' ? { success: false, issues: read } : { success: true, data: read };
}

/**
 * Everything kas sent in one socket.io event (one message, or a plain array of them for an agent
 * that said `batches`), each validated on its own: the ones that pass, and why the others did not.
 */
export function readKasMessages(raw: unknown): { messages: KasMessage[]; issues: string[] } {
  if (!Array.isArray(raw)) {
    const one = readKasMessage(raw);
    return one.success ? { messages: [one.data], issues: [] } : { messages: [], issues: [one.issues] };
  }
  if (raw.length === 0 || raw.length > BATCH_MAX_MESSAGES) return { messages: [], issues: [`a batch of ${raw.length} messages (1 to ${BATCH_MAX_MESSAGES})`] };
  const messages: KasMessage[] = [];
  const issues: string[] = [];
  for (const entry of raw) {
    const one = readKasMessage(entry);
    if (one.success) messages.push(one.data);
    else issues.push(one.issues);
  }
  return { messages, issues };
}

const METHODS = new Set(['GET', 'HEAD', 'POST']);
const isCount = (n: unknown): n is number => typeof n === 'number' && Number.isSafeInteger(n);
const isShortString = (s: unknown, max: number): s is string => typeof s === 'string' && s.length <= max;

/** A message from kas as the schema reads it, or what is wrong with it. */
function asKasMessage(raw: unknown): KasMessage | string {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return '(message): expected an object';
  const m = raw as Record<string, unknown>;
  switch (m.type) {
    case 'drain':
      return { type: 'drain' };
    case 'credit':
      if (!isId(m.id)) return 'id: expected a request id (a whole number ≥ 0)';
      return isCount(m.bytes) && m.bytes > 0 ? { type: 'credit', id: m.id, bytes: m.bytes } : 'bytes: expected a whole number > 0';
    case 'cancel':
      if (!isId(m.id)) return 'id: expected a request id (a whole number ≥ 0)';
      return isShortString(m.reason, 256) ? { type: 'cancel', id: m.id, reason: m.reason } : 'reason: expected a string of at most 256 characters';
    case 'request': {
      const { id, upstream, method, path, query, body, timeoutMs, credit, traceparent, tracestate } = m;
      if (!isId(id)) return 'id: expected a request id (a whole number ≥ 0)';
      if (typeof upstream !== 'string' || !(UPSTREAMS as readonly string[]).includes(upstream)) return `upstream: expected one of ${UPSTREAMS.join(', ')}`;
      if (typeof method !== 'string' || !METHODS.has(method)) return 'method: expected GET, HEAD or POST';
      if (!isShortString(path, 8192) || !path.startsWith('/')) return 'path: expected a string starting with / of at most 8192 characters';
      if (!isShortString(query, 64 * 1024)) return 'query: expected a string of at most 65536 characters';
      const headers = readHeaders(m.headers);
      if (!headers) return `headers: expected at most ${MAX_HEADERS} names of 1 to 256 characters, each a string or up to 64 strings`;
      if (body !== undefined && !(body instanceof Uint8Array)) return 'body: expected binary data';
      if (!isCount(timeoutMs) || timeoutMs < 0) return 'timeoutMs: expected a whole number ≥ 0';
      if (!isCount(credit) || credit <= 0) return 'credit: expected a whole number > 0';
      if (traceparent !== undefined && !isShortString(traceparent, 128)) return 'traceparent: expected a string of at most 128 characters';
      if (tracestate !== undefined && !isShortString(tracestate, 512)) return 'tracestate: expected a string of at most 512 characters';
      return {
        type: 'request',
        id,
        upstream: upstream as Upstream,
        method: method as TunnelRequest['method'],
        path,
        query,
        headers,
        timeoutMs,
        credit,
        ...(body === undefined ? {} : { body }),
        ...(traceparent === undefined ? {} : { traceparent }),
        ...(tracestate === undefined ? {} : { tracestate }),
      };
    }
    default:
      return 'type: expected request, credit, cancel or drain';
  }
}
