// X-Trace-Id when tracing is off altogether (OTEL_SDK_DISABLED=true): the trace id of an incoming
// W3C `traceparent`, else a random one. With tracing on, the id is the HTTP server span's, which
// OpenTelemetry's propagator already continued from the same header.
import { randomBytes } from 'node:crypto';

const TRACEPARENT = /^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}/;

export function fallbackTraceId(traceparent: string | undefined): string {
  const traceId = traceparent ? TRACEPARENT.exec(traceparent.trim())?.[1] : undefined;
  return traceId && !/^0+$/.test(traceId) ? traceId : randomBytes(16).toString('hex');
}
