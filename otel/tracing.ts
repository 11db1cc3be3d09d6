// The tracer provider of one program, configured by the standard OTEL_* variables only:
//
//   OTEL_EXPORTER_OTLP_ENDPOINT / OTEL_EXPORTER_OTLP_TRACES_ENDPOINT   where to send (unset: nothing is sent)
//   OTEL_EXPORTER_OTLP_PROTOCOL / …_TRACES_PROTOCOL                    http/protobuf (default) or http/json
//   OTEL_EXPORTER_OTLP_HEADERS, …_TIMEOUT, …_COMPRESSION, …_CERTIFICATE  read by the exporter itself
//   OTEL_TRACES_EXPORTER                                               otlp (default), console, none
//   OTEL_TRACES_SAMPLER, OTEL_TRACES_SAMPLER_ARG                       default parentbased_always_on
//   OTEL_BSP_SCHEDULE_DELAY, OTEL_BSP_MAX_QUEUE_SIZE, OTEL_BSP_MAX_EXPORT_BATCH_SIZE, OTEL_BSP_EXPORT_TIMEOUT
//   OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES                        override the resource below
//   OTEL_SDK_DISABLED=true                                             no tracing at all
//   OTEL_LOG_LEVEL                                                     the SDK's own complaints (default warn)
//
// Without an endpoint, spans still get ids (X-Trace-Id, the tunnel's traceparent and log lines use
// them) but nothing is recorded or sent, and the caller's sampling decision passes on unchanged.
import {
  type Context,
  context,
  DiagLogLevel,
  diag,
  INVALID_SPAN_CONTEXT,
  type Span,
  SpanKind,
  type SpanOptions,
  SpanStatusCode,
  trace,
  TraceFlags,
  type Tracer,
  type TracerProvider,
} from '@opentelemetry/api';
import { isTracingSuppressed } from '@opentelemetry/core';
import { detectResources, envDetector, resourceFromAttributes } from '@opentelemetry/resources';
import {
  AlwaysOffSampler,
  AlwaysOnSampler,
  BatchSpanProcessor,
  ConsoleSpanExporter,
  ParentBasedSampler,
  RandomIdGenerator,
  type Sampler,
  SamplingDecision,
  type SpanExporter,
  type SpanProcessor,
  TraceIdRatioBasedSampler,
  TracerProvider as SdkTracerProvider,
} from '@opentelemetry/sdk-trace';
import { ATTR_SERVICE_INSTANCE_ID, ATTR_SERVICE_NAME, ATTR_SERVICE_VERSION } from '@opentelemetry/semantic-conventions';
import type { Logger } from 'pino';

type Env = Record<string, string | undefined>;

export interface TracingOptions {
  serviceName: 'kas' | 'agentk';
  /** The kas node name or the agentk replica name. */
  instanceId: string;
  version?: string;
  log: Logger;
  env?: Env;
}

export interface Tracing {
  /** Where spans go: `otlp http/protobuf → http://…/v1/traces`, or `none`. */
  exporting: string;
  /** Sends what is still buffered and stops. */
  shutdown(): Promise<void>;
}

function numberFrom(env: Env, name: string): number | undefined {
  const raw = env[name]?.trim();
  if (!raw) return undefined;
  const value = Number(raw);
  return Number.isFinite(value) && value >= 0 ? value : undefined;
}

export function samplerFromEnv(env: Env, warn: (message: string) => void): Sampler {
  const name = (env.OTEL_TRACES_SAMPLER ?? 'parentbased_always_on').trim().toLowerCase();
  const rawRatio = numberFrom(env, 'OTEL_TRACES_SAMPLER_ARG');
  const ratio = rawRatio !== undefined && rawRatio <= 1 ? rawRatio : 1;
  switch (name) {
    case 'always_on':
      return new AlwaysOnSampler();
    case 'always_off':
      return new AlwaysOffSampler();
    case 'traceidratio':
      return new TraceIdRatioBasedSampler(ratio);
    case 'parentbased_always_off':
      return new ParentBasedSampler({ root: new AlwaysOffSampler() });
    case 'parentbased_traceidratio':
      return new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(ratio) });
    case 'parentbased_always_on':
      return new ParentBasedSampler({ root: new AlwaysOnSampler() });
    default:
      warn(`OTEL_TRACES_SAMPLER=${name} is not supported; using parentbased_always_on`);
      return new ParentBasedSampler({ root: new AlwaysOnSampler() });
  }
}

/**
 * Used when nothing is exported: spans are ids only (non-recording), so tracing costs next to
 * nothing, yet every request has a trace id, and a caller's sampling decision passes through
 * this process unchanged to the next hop (which may export).
 */
class IdOnlyTracer implements Tracer {
  #ids = new RandomIdGenerator();
  #sampler: Sampler;
  constructor(sampler: Sampler) {
    this.#sampler = sampler;
  }

  startSpan(name: string, options: SpanOptions = {}, ctx: Context = context.active()): Span {
    if (isTracingSuppressed(ctx)) return trace.wrapSpanContext(INVALID_SPAN_CONTEXT);
    const parent = options.root ? undefined : trace.getSpanContext(ctx);
    if (parent && trace.isSpanContextValid(parent)) {
      return trace.wrapSpanContext({ ...parent, spanId: this.#ids.generateSpanId(), isRemote: false });
    }
    const traceId = this.#ids.generateTraceId();
    const kind = options.kind ?? SpanKind.INTERNAL;
    const decision = this.#sampler.shouldSample(ctx, traceId, name, kind, options.attributes ?? {}, []).decision;
    const traceFlags = decision === SamplingDecision.RECORD_AND_SAMPLED ? TraceFlags.SAMPLED : TraceFlags.NONE;
    return trace.wrapSpanContext({ traceId, spanId: this.#ids.generateSpanId(), traceFlags });
  }

  startActiveSpan<F extends (span: Span) => unknown>(name: string, ...args: unknown[]): ReturnType<F> {
    const fn = args.pop() as (span: Span) => ReturnType<F>;
    const [options, ctx] = args as [SpanOptions | undefined, Context | undefined];
    const parentContext = ctx ?? context.active();
    const span = this.startSpan(name, options, parentContext);
    return context.with(trace.setSpan(parentContext, span), fn, undefined, span);
  }
}

class IdOnlyTracerProvider implements TracerProvider {
  #tracer: IdOnlyTracer;
  constructor(sampler: Sampler) {
    this.#tracer = new IdOnlyTracer(sampler);
  }
  getTracer(): Tracer {
    return this.#tracer;
  }
}

async function exporterFromEnv(env: Env, warn: (message: string) => void): Promise<{ exporter?: SpanExporter; describe: string }> {
  const kinds = (env.OTEL_TRACES_EXPORTER ?? 'otlp').split(',').map((s) => s.trim().toLowerCase());
  if (kinds.includes('none')) return { describe: 'none (OTEL_TRACES_EXPORTER=none)' };
  if (kinds.includes('console')) return { exporter: new ConsoleSpanExporter(), describe: 'console' };
  const endpoint = env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT?.trim() || env.OTEL_EXPORTER_OTLP_ENDPOINT?.trim();
  if (!endpoint) return { describe: 'none (no OTEL_EXPORTER_OTLP_ENDPOINT)' };
  let protocol = (env.OTEL_EXPORTER_OTLP_TRACES_PROTOCOL ?? env.OTEL_EXPORTER_OTLP_PROTOCOL ?? 'http/protobuf').trim().toLowerCase();
  if (protocol !== 'http/protobuf' && protocol !== 'http/json') {
    warn(`OTEL_EXPORTER_OTLP_PROTOCOL=${protocol} is not supported (OTLP over HTTP only); using http/protobuf`);
    protocol = 'http/protobuf';
  }
  // Loaded only when used: a process that exports nothing never loads an exporter.
  const { OTLPTraceExporter } =
    protocol === 'http/json' ? await import('@opentelemetry/exporter-trace-otlp-http') : await import('@opentelemetry/exporter-trace-otlp-proto');
  const exporter = new OTLPTraceExporter();
  return { exporter, describe: `otlp ${protocol} → ${endpoint}` };
}

const DIAG_LEVELS: Record<string, DiagLogLevel> = {
  none: DiagLogLevel.NONE,
  error: DiagLogLevel.ERROR,
  warn: DiagLogLevel.WARN,
  info: DiagLogLevel.INFO,
  debug: DiagLogLevel.DEBUG,
  verbose: DiagLogLevel.VERBOSE,
  all: DiagLogLevel.ALL,
};


let started: Tracing | undefined;

/** Sets the global tracer provider; every span of the program reports to it. */
export async function startTracing(o: TracingOptions): Promise<Tracing> {
  if (started) return started;
  const env = o.env ?? process.env;
  const log = o.log.child({ component: 'otel' });
  const warn = (message: string) => log.warn(message);
  if (env.OTEL_SDK_DISABLED?.trim().toLowerCase() === 'true') {
    started = { exporting: 'none (OTEL_SDK_DISABLED=true)', shutdown: async () => {} };
    return started;
  }
  // The SDK's own complaints (an unreachable collector, say) go to our log, never to a crash.
  diag.setLogger(
    {
      error: (message, ...args) => log.error({ args: args.map(String) }, message),
      warn: (message, ...args) => log.warn({ args: args.map(String) }, message),
      info: (message, ...args) => log.info({ args: args.map(String) }, message),
      debug: (message, ...args) => log.debug({ args: args.map(String) }, message),
      verbose: (message, ...args) => log.trace({ args: args.map(String) }, message),
    },
    { logLevel: DIAG_LEVELS[(env.OTEL_LOG_LEVEL ?? 'warn').toLowerCase()] ?? DiagLogLevel.WARN, suppressOverrideMessage: true },
  );

  const resource = resourceFromAttributes({
    [ATTR_SERVICE_NAME]: o.serviceName,
    [ATTR_SERVICE_INSTANCE_ID]: o.instanceId,
    ...(o.version ? { [ATTR_SERVICE_VERSION]: o.version } : {}),
  }).merge(detectResources({ detectors: [envDetector] }));

  const sampler = samplerFromEnv(env, warn);
  const { exporter, describe } = await exporterFromEnv(env, warn);
  const spanProcessors: SpanProcessor[] = [];
  if (exporter) {
    spanProcessors.push(
      new BatchSpanProcessor({
        exporter,
        scheduledDelayMillis: numberFrom(env, 'OTEL_BSP_SCHEDULE_DELAY') ?? 5000,
        maxQueueSize: numberFrom(env, 'OTEL_BSP_MAX_QUEUE_SIZE') ?? 2048,
        maxExportBatchSize: numberFrom(env, 'OTEL_BSP_MAX_EXPORT_BATCH_SIZE') ?? 512,
        exportTimeoutMillis: numberFrom(env, 'OTEL_BSP_EXPORT_TIMEOUT') ?? 30000,
      }),
    );
  }
  if (!exporter) {
    trace.setGlobalTracerProvider(new IdOnlyTracerProvider(sampler));
    started = { exporting: describe, shutdown: async () => {} };
    return started;
  }
  const provider = new SdkTracerProvider({ resource, sampler, spanProcessors });
  trace.setGlobalTracerProvider(provider);
  started = {
    exporting: describe,
    shutdown: () => provider.shutdown().catch((error: unknown) => log.warn({ err: String(error) }, 'could not flush the last spans')),
  };
  return started;
}

/**
 * Marks a span failed: status ERROR, the error's class in `error.type`, and an exception event
 * (`exception.type` = that class, `exception.message`).
 */
export function failSpan(span: Span, errorType: string, error?: unknown): void {
  const message = error instanceof Error ? error.message : typeof error === 'string' ? error : errorType;
  span.setAttribute('error.type', errorType);
  span.recordException({ name: errorType, message });
  span.setStatus({ code: SpanStatusCode.ERROR, message });
}
