#!/usr/bin/env node
// OpenTelemetry first: its loader hook must be in place before http loads, so everything else
// comes in by dynamic import.
import '../otel/register.ts';

const { main } = await import('../agent/main.ts');
const code = await main(process.argv.slice(2));
if (code >= 0) process.exitCode = code;
