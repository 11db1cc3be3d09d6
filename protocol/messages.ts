// The tunnel between kas and agentk: the only module both programs import.
//
// One socket.io event carries every message in each direction (TUNNEL_EVENT), and each message
// is a discriminated union on `type`. kas validates everything an agent sends with the zod
// schemas below before looking at it; agentk validates what kas sends the same way.
//
// A request is answered by a stream: `head` once, then `data` chunks, then `end` or `error`.
// Flow control is credit based: kas grants a window of bytes with the request and tops it up
// with `credit` as the caller's HTTP connection drains. An agent never sends more bytes than it
// has credit for, so kas buffers at most one window per stream, whatever the response size.
import { z } from 'zod';

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

/** Largest request body kas sends to an agent (Prometheus form posts are small). */
export const REQUEST_BODY_MAX_BYTES = 512 * 1024;

export const UPSTREAMS = ['prometheus', 'kubernetes'] as const;
export type Upstream = (typeof UPSTREAMS)[number];

export const AGENT_ID_PATTERN = /^[A-Za-z0-9._-]{1,63}$/;

const bytes = z.custom<Uint8Array>((v) => v instanceof Uint8Array, 'expected binary data');
const requestId = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);
const headerValue = z.union([z.string().max(16 * 1024), z.array(z.string().max(16 * 1024)).max(64)]);
const headers = z
  .record(z.string().min(1).max(256), headerValue)
  .refine((h) => Object.keys(h).length <= 128, 'too many headers');

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

// ---- handshake: what an agent sends in socket.io's `auth` ----

export const HandshakeSchema = z.object({
  token: z.string().min(1).max(256),
  replica: z.string().min(1).max(253),
  version: z.string().max(64).default('unknown'),
  capabilities: z.array(z.enum(UPSTREAMS)).max(UPSTREAMS.length).default([]),
  protocol: z.number().int().default(PROTOCOL_VERSION),
  /**
   * The agent takes several kas messages in one socket.io event (a plain array): then kas sends
   * the requests, credit and cancels of one event-loop turn together. Absent (an older agent),
   * kas sends one message per event.
   */
  batches: z.boolean().default(false),
});
export type Handshake = z.infer<typeof HandshakeSchema>;

// ---- kas → agentk ----

export const TunnelRequestSchema = z.object({
  type: z.literal('request'),
  id: requestId,
  upstream: z.enum(UPSTREAMS),
  method: z.enum(['GET', 'HEAD', 'POST']),
  /** Normalised path below the upstream's base URL, starting with `/`. */
  path: z.string().startsWith('/').max(8192),
  /** Raw query string without `?`, passed through untouched. */
  query: z.string().max(64 * 1024),
  headers,
  body: bytes.optional(),
  /** Milliseconds the agent may spend; 0 = unbounded (watches, follows). */
  timeoutMs: z.number().int().nonnegative(),
  credit: z.number().int().positive(),
  /** W3C trace context of the send span, so agentk's span joins the caller's trace. */
  traceparent: z.string().max(128).optional(),
  tracestate: z.string().max(512).optional(),
});
export type TunnelRequest = z.infer<typeof TunnelRequestSchema>;

export const KasMessageSchema = z.discriminatedUnion('type', [
  TunnelRequestSchema,
  z.object({ type: z.literal('credit'), id: requestId, bytes: z.number().int().positive() }),
  z.object({ type: z.literal('cancel'), id: requestId, reason: z.string().max(256) }),
  /** The node is draining: finish what is in flight, then reconnect (to another node). */
  z.object({ type: z.literal('drain') }),
]);
export type KasMessage = z.infer<typeof KasMessageSchema>;

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

export const AgentMessageSchema = z.discriminatedUnion('type', [
  z.object({
    type: z.literal('head'),
    id: requestId,
    status: z.number().int().min(100).max(599),
    headers,
  }),
  z.object({ type: z.literal('data'), id: requestId, chunk: bytes }),
  z.object({ type: z.literal('end'), id: requestId }),
  z.object({
    type: z.literal('error'),
    id: requestId,
    code: z.enum(AGENT_ERROR_CODES),
    message: z.string().max(4096),
  }),
]);
export type AgentMessage = z.infer<typeof AgentMessageSchema>;

// ---- batches ----

export const PackedBatchSchema = z.object({
  type: z.literal('batch'),
  bytes,
  messages: z.array(z.unknown()).min(1).max(BATCH_MAX_MESSAGES),
});

/** A data entry of a packed batch: its chunk is `length` bytes of the batch's buffer from `offset`. */
export const PackedDataSchema = z.object({
  type: z.literal('data'),
  id: requestId,
  offset: z.number().int().nonnegative(),
  length: z.number().int().positive().max(CHUNK_MAX_BYTES),
});

/** PackedDataSchema's rules by hand: every data entry of every packed batch is checked. */
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

/** One message as it is, several as a packed batch with their small chunks in one buffer. */
export function packMessages(messages: AgentMessage[]): unknown {
  if (messages.length === 1) return messages[0];
  let total = 0;
  for (const m of messages) if (m.type === 'data' && m.chunk.byteLength <= PACK_MAX_CHUNK_BYTES) total += m.chunk.byteLength;
  const bytes = Buffer.allocUnsafe(total);
  let offset = 0;
  const entries = messages.map((m) => {
    if (m.type !== 'data' || m.chunk.byteLength > PACK_MAX_CHUNK_BYTES) return m;
    bytes.set(m.chunk, offset);
    const entry = { type: 'data', id: m.id, offset, length: m.chunk.byteLength };
    offset += m.chunk.byteLength;
    return entry;
  });
  return { type: 'batch', bytes, messages: entries };
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
  const { bytes: packed, messages } = raw as { bytes?: unknown; messages?: unknown };
  if (!(packed instanceof Uint8Array) || !Array.isArray(messages) || messages.length < 1 || messages.length > BATCH_MAX_MESSAGES) {
    // The schema's words for what is wrong; the checks above are its rules.
    const batch = PackedBatchSchema.safeParse(raw);
    return { messages: [], error: `a malformed batch: ${batch.success ? 'invalid' : (batch.error.issues[0]?.message ?? 'invalid')}` };
  }
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

// ---- fast paths ----
//
// Every answer carries a head, data and an end, and every request one request message: zod is
// correct but costs more than the rest of a small request's handling. These check the same rules
// by hand (test/hostile/fuzz.test.ts holds them to the schemas); what they cannot tell goes
// through the schema, and a refusal is described in the schema's words.

const isId = (id: unknown): id is number => typeof id === 'number' && Number.isSafeInteger(id) && id >= 0;
const MAX_HEADER_VALUE = 16 * 1024;

/**
 * Headers as the schema takes them, for the plain objects socket.io decodes; anything unusual
 * (another prototype, symbol keys, a `__proto__` key, which the schema drops) is left to the schema.
 */
function isHeaders(headers: unknown): headers is Record<string, string | string[]> {
  if (typeof headers !== 'object' || headers === null) return false;
  const prototype = Object.getPrototypeOf(headers) as unknown;
  if (prototype !== Object.prototype && prototype !== null) return false;
  let count = 0;
  for (const name in headers) {
    if (++count > 128 || name.length === 0 || name.length > 256 || name === '__proto__') return false;
    const value = (headers as Record<string, unknown>)[name];
    if (typeof value === 'string') {
      if (value.length > MAX_HEADER_VALUE) return false;
    } else if (Array.isArray(value)) {
      if (value.length > 64) return false;
      for (const v of value) if (typeof v !== 'string' || v.length > MAX_HEADER_VALUE) return false;
    } else {
      return false;
    }
  }
  return Object.getOwnPropertySymbols(headers).length === 0;
}

/** The fast path's word that the schema would refuse a message too (the fuzz tests hold it to that). */
const REFUSED = Symbol('refused');
const ERROR_CODES: ReadonlySet<unknown> = new Set(AGENT_ERROR_CODES);

/**
 * An agent's message checked by hand: the message as the schema would read it, REFUSED when the
 * schema would refuse it, or undefined when only the schema can tell (headers of an unusual shape).
 * A flood of malformed messages then costs no schema errors, which are made only for the few
 * refusals that are logged (describeRefusal).
 */
function asAgentMessage(raw: unknown): AgentMessage | typeof REFUSED | undefined {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return REFUSED;
  const m = raw as { type?: unknown; id?: unknown; chunk?: unknown; status?: unknown; headers?: unknown; code?: unknown; message?: unknown };
  if (m.type !== 'head' && m.type !== 'data' && m.type !== 'end' && m.type !== 'error') return REFUSED;
  if (!isId(m.id)) return REFUSED;
  switch (m.type) {
    case 'data':
      return m.chunk instanceof Uint8Array ? { type: 'data', id: m.id, chunk: m.chunk } : REFUSED;
    case 'end':
      return { type: 'end', id: m.id };
    case 'head':
      if (typeof m.status !== 'number' || !Number.isInteger(m.status) || m.status < 100 || m.status > 599) return REFUSED;
      return isHeaders(m.headers) ? { type: 'head', id: m.id, status: m.status, headers: m.headers } : undefined;
    case 'error':
      if (!ERROR_CODES.has(m.code) || typeof m.message !== 'string' || m.message.length > 4096) return REFUSED;
      return { type: 'error', id: m.id, code: m.code as AgentErrorCode, message: m.message };
  }
}

/** Why an agent's message is refused, in the schema's words: made only when asked, since it costs. */
export function describeRefusal(raw: unknown): string {
  const parsed = AgentMessageSchema.safeParse(raw);
  if (parsed.success) return 'accepted';
  return parsed.error.issues.slice(0, 3).map((i) => `${i.path.join('.') || '(message)'}: ${i.message}`).join('; ');
}

/** What kas sends, validated: by hand for requests, credit and cancels that pass, else by the schema. */
export function readKasMessage(raw: unknown): { success: true; data: KasMessage } | { success: false; issues: string } {
  const fast = asKasMessage(raw);
  if (fast) return { success: true, data: fast };
  const parsed = KasMessageSchema.safeParse(raw);
  if (parsed.success) return { success: true, data: parsed.data };
  return { success: false, issues: parsed.error.issues.slice(0, 3).map((i) => `${i.path.join('.') || '(message)'}: ${i.message}`).join('; ') };
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

function asKasMessage(raw: unknown): KasMessage | undefined {
  if (typeof raw !== 'object' || raw === null) return undefined;
  const m = raw as Record<string, unknown>;
  switch (m.type) {
    case 'credit':
      return isId(m.id) && typeof m.bytes === 'number' && Number.isSafeInteger(m.bytes) && m.bytes > 0 ? { type: 'credit', id: m.id, bytes: m.bytes } : undefined;
    case 'cancel':
      return isId(m.id) && typeof m.reason === 'string' && m.reason.length <= 256 ? { type: 'cancel', id: m.id, reason: m.reason } : undefined;
    case 'request': {
      const { id, upstream, method, path, query, headers, body, timeoutMs, credit, traceparent, tracestate } = m;
      if (!isId(id) || typeof upstream !== 'string' || !(UPSTREAMS as readonly string[]).includes(upstream)) return undefined;
      if (typeof method !== 'string' || !METHODS.has(method)) return undefined;
      if (typeof path !== 'string' || !path.startsWith('/') || path.length > 8192) return undefined;
      if (typeof query !== 'string' || query.length > 64 * 1024 || !isHeaders(headers)) return undefined;
      if (body !== undefined && !(body instanceof Uint8Array)) return undefined;
      if (typeof timeoutMs !== 'number' || !Number.isSafeInteger(timeoutMs) || timeoutMs < 0) return undefined;
      if (typeof credit !== 'number' || !Number.isSafeInteger(credit) || credit <= 0) return undefined;
      if (traceparent !== undefined && (typeof traceparent !== 'string' || traceparent.length > 128)) return undefined;
      if (tracestate !== undefined && (typeof tracestate !== 'string' || tracestate.length > 512)) return undefined;
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
      return undefined;
  }
}

/**
 * Everything an agent sent in one socket.io event, each message validated once: the ones that
 * pass, the ones that did not (as sent: describeRefusal says why), or what was wrong with the
 * batch as a whole.
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
    const fast = asAgentMessage(entry);
    if (fast === REFUSED) {
      refused.push(entry);
      continue;
    }
    if (fast) {
      messages.push(fast);
      continue;
    }
    const parsed = AgentMessageSchema.safeParse(entry);
    if (parsed.success) messages.push(parsed.data);
    else refused.push(entry);
  }
  return { messages, refused };
}
