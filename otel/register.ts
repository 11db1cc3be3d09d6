// Loaded before anything else by both programs (bin/kas.ts, bin/agentk.ts; only the bin/*.js that
// turn on the compile cache come first): the context manager that carries the active span across
// async calls, and the W3C propagator. No module is patched: the HTTP spans are made by
// otel/http.ts where requests are served and sent, kas's own spans by otel/spans.ts, so nothing
// is loaded that the program does not use. Which tracer provider receives the spans (and whether
// anything is exported) is decided later by startTracing, once the program knows its name and
// instance (otel/tracing.ts).
import { context, propagation } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { CompositePropagator, W3CBaggagePropagator, W3CTraceContextPropagator } from '@opentelemetry/core';

const REGISTERED = Symbol.for('kas.otel.registered');
const state = globalThis as { [REGISTERED]?: boolean };

if (!state[REGISTERED] && process.env.OTEL_SDK_DISABLED?.trim().toLowerCase() !== 'true') {
  state[REGISTERED] = true;
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  propagation.setGlobalPropagator(new CompositePropagator({ propagators: [new W3CTraceContextPropagator(), new W3CBaggagePropagator()] }));
}
