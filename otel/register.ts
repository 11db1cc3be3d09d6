// Loaded before anything else by both programs: bin/kas.ts and bin/agentk.ts import it first and
// only then import the rest, and `node --import ./otel/register.ts …` works too (loading it twice
// is harmless). It installs OpenTelemetry's ESM loader hook, so that http, express and redis are
// instrumented although they are imported as ES modules, and sets the context manager and the
// W3C propagator. Which tracer provider receives the spans (and whether anything is exported)
// is decided later by startTracing, once the program knows its name and instance (otel/tracing.ts).
import { register } from 'node:module';
import { register as registerInThread, supportsSyncHooks } from 'import-in-the-middle/register-hooks.mjs';

const REGISTERED = Symbol.for('kas.otel.registered');
const state = globalThis as { [REGISTERED]?: boolean };

if (!state[REGISTERED] && process.env.OTEL_SDK_DISABLED?.trim().toLowerCase() !== 'true') {
  state[REGISTERED] = true;
  // Only the modules that instrumentations patch are wrapped: our own .ts files and every other
  // package load as they would without the hook.
  const include = ['http', 'https', 'node:http', 'node:https', 'express', 'redis', '@redis/client'];
  // In-thread hooks (module.registerHooks) where this Node has them working, which keeps start-up
  // fast; else the same hook through module.register on the loader thread.
  if (supportsSyncHooks()) registerInThread({ include });
  else register('@opentelemetry/instrumentation/hook.mjs', import.meta.url, { data: { include } });
  // Imported only now: the instrumentations must exist before express, http or redis load.
  const { installInstrumentation } = await import('./instrumentation.ts');
  installInstrumentation();
}
