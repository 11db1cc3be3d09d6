// JSON lines on stdout for both programs. Secrets never reach a log line: the serializers below
// drop credentials even if a caller passes a whole header object by mistake. A line written
// while a request is in scope carries `trace_id` and `span_id` of the active span, so a log
// search and a trace lead to each other.
import { trace } from '@opentelemetry/api';
import { pino, type Logger } from 'pino';

/** `trace_id`/`span_id` of the active span, read for each line (cheap: one AsyncLocalStorage lookup). */
export function traceFields(): { trace_id?: string; span_id?: string } {
  const span = trace.getActiveSpan();
  if (!span) return {};
  const ctx = span.spanContext();
  if (!trace.isSpanContextValid(ctx)) return {};
  return { trace_id: ctx.traceId, span_id: ctx.spanId };
}

/**
 * stdout, written asynchronously and in batches: lines are handed to the kernel off the request's
 * path (a write to a pipe costs more than the rest of a small request), at least 4 KiB at a time
 * or every 200 ms, whichever comes first; whatever is still buffered is flushed synchronously when
 * the process exits, crashes included.
 */
let destination: ReturnType<typeof pino.destination> | undefined;
function logDestination(): ReturnType<typeof pino.destination> {
  destination ??= pino.destination({ dest: 1, sync: false, minLength: 4096, periodicFlush: 200 });
  return destination;
}

export function createLogger(service: string, level = process.env.LOG_LEVEL ?? 'info'): Logger {
  return pino({
    level,
    base: { service },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
    mixin: traceFields,
    redact: {
      paths: ['token', 'headers.authorization', 'headers.cookie', '*.token', 'auth.token', 'authorization', '*.authorization'],
      censor: '[redacted]',
    },
  }, logDestination());
}
