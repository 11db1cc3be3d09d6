// JSON lines on stdout for both programs. Secrets never reach a log line: redactSecrets below
// censors credentials even if a caller passes a whole header object by mistake. A line written
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
  const logger = pino({
    level,
    base: { service },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }), log: redactSecrets },
    mixin: traceFields,
  }, logDestination());
  // A child's bindings are written once, when it is made; its children inherit this method.
  const child = logger.child;
  logger.child = function (this: Logger, bindings: Record<string, unknown>, options?: object) {
    return child.call(this, redactSecrets(bindings), options);
  } as typeof logger.child;
  return logger;
}

const CENSOR = '[redacted]';
const SECRETS = ['token', 'authorization'];
const HEADER_SECRETS = ['token', 'authorization', 'cookie'];

/**
 * A log line with every credential censored: `token` and `authorization` at the top and one level
 * down (`auth.token`, `headers.authorization`), and `headers.cookie`. It copies only what it
 * changes, so the caller's objects stay as they were. pino's own `redact` would do the same with
 * a wildcard stringifier called for every field of every line, which cost kas about 5% of its CPU
 * per request (bench/README.md, "Where the CPU goes"); this looks at each field once.
 */
export function redactSecrets(line: Record<string, unknown>): Record<string, unknown> {
  let out = line;
  for (const key in line) {
    const value = line[key];
    if (value === undefined || value === null) continue;
    if (key === 'token' || key === 'authorization') {
      if (out === line) out = { ...line };
      out[key] = CENSOR;
      continue;
    }
    if (typeof value !== 'object' || Array.isArray(value)) continue;
    const inner = value as Record<string, unknown>;
    let censored: Record<string, unknown> | undefined;
    for (const name of key === 'headers' ? HEADER_SECRETS : SECRETS) {
      if (inner[name] === undefined) continue;
      censored ??= { ...inner };
      censored[name] = CENSOR;
    }
    if (!censored) continue;
    if (out === line) out = { ...line };
    out[key] = censored;
  }
  return out;
}
