#!/usr/bin/env node
// OpenTelemetry's context manager and propagator first (otel/register.ts). Only `kas serve` is
// traced; the one-shot commands (`agent register`, `token issue`) start faster without it.
const argv = process.argv.slice(2);
if (argv[0] === 'serve') await import('../otel/register.ts');

const { main } = await import('../server/cli.ts');
const code = await main(argv);
if (code >= 0) process.exitCode = code;
