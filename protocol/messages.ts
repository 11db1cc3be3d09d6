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
 * A sender may put several messages in one socket.io event, as an array: a small answer's head,
 * data and end then cost one WebSocket frame (one write, one wake-up) instead of three. Each
 * message in a batch is validated on its own. Batches are bounded in count and in chunk bytes.
 */
export const BATCH_MAX_MESSAGES = 64;
export const BATCH_MAX_BYTES = 256 * 1024;
/**
 * Binary chunks per batch: each is a socket.io attachment, and socket.io's parser closes the
 * connection on a packet with more than 10 of them.
 */
export const BATCH_MAX_CHUNKS = 8;
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

// ---- handshake: what an agent sends in socket.io's `auth` ----

export const HandshakeSchema = z.object({
  token: z.string().min(1).max(256),
  replica: z.string().min(1).max(253),
  version: z.string().max(64).default('unknown'),
  capabilities: z.array(z.enum(UPSTREAMS)).max(UPSTREAMS.length).default([]),
  protocol: z.number().int().default(PROTOCOL_VERSION),
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
