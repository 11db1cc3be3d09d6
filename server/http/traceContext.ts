// W3C trace context for one request: continues an incoming `traceparent` or starts a trace, so
// every response can carry X-Trace-Id and every hop (kas-to-kas, the tunnel) carries the context.
import { randomBytes } from 'node:crypto';

const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;

export interface TraceContext {
  traceId: string;
  sampled: boolean;
  /** A traceparent for the next hop, with a new span id under this trace. */
  childTraceparent(): string;
}

export function traceContextFrom(traceparent: string | undefined): TraceContext {
  const match = traceparent ? TRACEPARENT.exec(traceparent.trim()) : null;
  const traceId = match && !/^0+$/.test(match[1]!) ? match[1]! : randomBytes(16).toString('hex');
  const sampled = match ? (parseInt(match[3]!, 16) & 1) === 1 : true;
  return {
    traceId,
    sampled,
    childTraceparent: () => `00-${traceId}-${randomBytes(8).toString('hex')}-${sampled ? '01' : '00'}`,
  };
}
