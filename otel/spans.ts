// The spans kas makes of its routing and tunnel (otel/http.ts makes the HTTP server and client
// spans): their names, kinds and attributes, in one place, so that the code that routes and
// streams does not also build telemetry inline.
import { type Context, context, propagation, type Span, SpanKind, trace } from '@opentelemetry/api';
import { failSpan } from './tracing.ts';

const tracer = trace.getTracer('kas');

/** What identifies one routed request in its spans. */
export interface RoutedRequest {
  agentId: string;
  upstream: string;
  method: string;
  path: string;
}

/**
 * The routing span: from the request to the end of its answer; says which replica
 * (`kas.agent.replica`) on which node (`kas.node`) took it. `parent`: the context it continues
 * (the caller's server span when unset).
 */
export function startRoutingSpan(name: string, request: RoutedRequest, parent: Context = context.active()): Span {
  return tracer.startSpan(name, { attributes: { 'kas.agent.id': request.agentId, 'kas.upstream': request.upstream } }, parent);
}

export function noteReplicaChosen(span: Span, choice: { replica: string; node: string; forwarded: boolean; waitMs: number; attempt: number }): void {
  span.setAttributes({ 'kas.agent.replica': choice.replica, 'kas.node': choice.node, 'kas.forwarded': choice.forwarded });
  span.addEvent('replica chosen', {
    'kas.agent.replica': choice.replica,
    'kas.node': choice.node,
    'kas.routing.wait_ms': Math.round(choice.waitMs),
    attempt: choice.attempt,
  });
}

export function noteAttemptFailed(span: Span, errorType: string, attempt: number): void {
  span.addEvent('attempt failed', { 'error.type': errorType, attempt });
}

/**
 * The PRODUCER span of a request sent down an agent's tunnel, and the trace context to send with
 * it: agentk's CONSUMER span becomes its child across the WebSocket.
 */
export function startSendSpan(
  parent: Context,
  request: RoutedRequest & { replica: string; node: string },
): { span: Span; traceparent?: string; tracestate?: string } {
  const span = tracer.startSpan(
    `send ${request.upstream}`,
    {
      kind: SpanKind.PRODUCER,
      attributes: {
        'messaging.system': 'socket.io',
        'messaging.operation.type': 'send',
        'messaging.destination.name': `agent:${request.agentId}`,
        'kas.agent.id': request.agentId,
        'kas.agent.replica': request.replica,
        'kas.node': request.node,
        'kas.upstream': request.upstream,
        'http.request.method': request.method,
        'url.path': request.path,
      },
    },
    parent,
  );
  const carrier: { traceparent?: string; tracestate?: string } = {};
  propagation.inject(trace.setSpan(parent, span), carrier);
  return { span, ...carrier };
}

/** How a streamed answer ended, for the spans that last as long as it. */
export interface StreamEnd {
  bytes: number;
  chunks: number;
  status?: number;
  /** Set when the stream failed: its error type and the error. */
  failure?: { type: string; error: unknown };
  /** The reader stopped before the end (the caller went away, or kas ended it): why. */
  cancelled?: string;
}

export function endStreamSpan(span: Span, end: StreamEnd): void {
  span.setAttributes({ 'kas.stream.bytes': end.bytes, 'kas.stream.chunks': end.chunks });
  if (end.status !== undefined) span.setAttribute('http.response.status_code', end.status);
  if (end.failure) failSpan(span, end.failure.type, end.failure.error);
  else if (end.cancelled !== undefined) span.addEvent('stream cut', { reason: end.cancelled });
  span.end();
}

/** Runs `fn` under a span that ends with it and records its failure, if any. */
export async function inSpan<T>(span: Span, errorType: (error: unknown) => string, fn: () => Promise<T>): Promise<T> {
  try {
    return await context.with(trace.setSpan(context.active(), span), fn);
  } catch (error) {
    failSpan(span, errorType(error), error);
    throw error;
  } finally {
    span.end();
  }
}
