#!/usr/bin/env node
// OpenTelemetry's context manager and propagator first (otel/register.ts).
import '../otel/register.ts';

const { main } = await import('../agent/main.ts');
const code = await main(process.argv.slice(2));
if (code >= 0) process.exitCode = code;
