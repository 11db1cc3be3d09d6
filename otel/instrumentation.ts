// The instrumentations both programs run with, loaded by otel/register.ts once the ESM hook is in
// place. They report to the global tracer provider, which is a no-op until startTracing sets one.
import type { IncomingMessage } from 'node:http';
import { context, propagation } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { CompositePropagator, W3CBaggagePropagator, W3CTraceContextPropagator } from '@opentelemetry/core';
import { registerInstrumentations } from '@opentelemetry/instrumentation';
import { ExpressInstrumentation, ExpressLayerType } from '@opentelemetry/instrumentation-express';
import { HttpInstrumentation } from '@opentelemetry/instrumentation-http';
import { RedisInstrumentation } from '@opentelemetry/instrumentation-redis';
import { UndiciInstrumentation } from '@opentelemetry/instrumentation-undici';

/** Requests that are not the product's traffic: probes, scrapes and the agents' socket.io handshake. */
const UNTRACED_PATHS = /^\/(?:metrics|liveness|readiness|socket\.io\/)(?:[/?]|$)/;

let installed = false;

export function installInstrumentation(): void {
  if (installed) return;
  installed = true;
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  propagation.setGlobalPropagator(
    new CompositePropagator({ propagators: [new W3CTraceContextPropagator(), new W3CBaggagePropagator()] }),
  );
  registerInstrumentations({
    instrumentations: [
      new HttpInstrumentation({
        ignoreIncomingRequestHook: (req: IncomingMessage) => UNTRACED_PATHS.test(req.url ?? ''),
        // Outgoing calls are traced as part of a request only: agentk's WebSocket dial, the OTLP
        // export itself and background chatter do not each start a trace of their own.
        requireParentforOutgoingSpans: true,
      }),
      // Express gives the server span its route (`GET /api/v1/agents/:agentId/:upstream{/*rest}`,
      // `http.route`); spans of its own per middleware and handler would only add noise and cost.
      new ExpressInstrumentation({
        ignoreLayersType: [ExpressLayerType.MIDDLEWARE, ExpressLayerType.ROUTER, ExpressLayerType.REQUEST_HANDLER],
      }),
      new UndiciInstrumentation({ requireParentforSpans: true }),
      // Membership and the socket.io adapter talk to Redis all the time; only calls made while
      // serving a request belong in a trace.
      new RedisInstrumentation({ requireParentSpan: true }),
    ],
  });
}
