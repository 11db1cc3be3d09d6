// The tunnel's messages as zod schemas: the reference for what each side accepts, and the types
// both programs use. kas loads them (it checks an agent's handshake with HandshakeSchema and
// describes a refused message in their words); agentk does not: its readers in messages.ts check
// the same rules by hand (test/hostile/fuzz.test.ts holds them to these schemas), since zod would
// be a few MB of agentk's memory for as long as it runs (bench/README.md, footprint).
import { z } from 'zod';
import { AGENT_ERROR_CODES, BATCH_MAX_MESSAGES, CHUNK_MAX_BYTES, PROTOCOL_VERSION, UPSTREAMS } from './messages.ts';

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
  /** The packed chunks: binary, or base64 text (what Buffer.from makes of it) to a kas that reads it. */
  bytes: z.union([bytes, z.string().transform((text) => new Uint8Array(Buffer.from(text, 'base64')))]),
  messages: z.array(z.unknown()).min(1).max(BATCH_MAX_MESSAGES),
});

/** A data entry of a packed batch: its chunk is `length` bytes of the batch's buffer from `offset`. */
export const PackedDataSchema = z.object({
  type: z.literal('data'),
  id: requestId,
  offset: z.number().int().nonnegative(),
  length: z.number().int().positive().max(CHUNK_MAX_BYTES),
});

/** Why an agent's message is refused, in the schema's words: made only when asked, since it costs. */
export function describeRefusal(raw: unknown): string {
  const parsed = AgentMessageSchema.safeParse(raw);
  if (parsed.success) return 'accepted';
  return parsed.error.issues.slice(0, 3).map((i) => `${i.path.join('.') || '(message)'}: ${i.message}`).join('; ');
}
